using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace WideValley.Optim;

/// <summary>
/// The scope gamma(t) of local entropy as a function of t, the number of outer parameter updates made so far
/// (seed 003, Sec. 4.3). Increasing gamma ("scoping") makes the Langevin chain explore ever smaller neighbourhoods.
/// </summary>
[JsonConverter(typeof(ScopeScheduleJsonConverter))]
public abstract record ScopeSchedule
{
    /// <summary>gamma at outer update <paramref name="t"/> (t = 0 for the first update).</summary>
    public abstract double Gamma(long t);

    /// <summary>Text accepted by <see cref="Parse"/>; round-trips.</summary>
    public abstract string Spec { get; }

    /// <summary>The accepted forms, for help and error messages.</summary>
    public const string Syntax =
        "const:G0 | exp:G0:G1 (G0 (1+G1)^t, the paper's) | linear:G0:G1 (G0 (1 + G1 t)) | quadratic:G0:G1 (G0 (1 + G1 t)^2) | " +
        "bounded:G0:TAU (G0 (1 - exp(-TAU t)))";

    /// <summary>A schedule from its <see cref="Spec"/> text; <see cref="FormatException"/> naming the form when it is not one.</summary>
    public static ScopeSchedule Parse(string text)
    {
        var parts = (text ?? "").Trim().Split(':');
        FormatException Fail(string why) => new($"scoping schedule '{text}': {why}. Expected {Syntax}.");
        double Number(int i, string name, bool allowZero)
        {
            if (i >= parts.Length || !double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ||
                double.IsNaN(v) || double.IsInfinity(v) || v < 0 || (!allowZero && v == 0))
                throw Fail($"{name} must be a {(allowZero ? "non-negative" : "positive")} number");
            return v;
        }
        var kind = parts[0].ToLowerInvariant();
        var arity = kind == "const" ? 2 : 3;
        if (parts.Length != arity) throw Fail(kind is "const" or "exp" or "linear" or "quadratic" or "bounded" ? "wrong number of values" : "unknown form");
        return kind switch
        {
            "const" => new ConstantScope(Number(1, "G0", false)),
            "exp" => new ExponentialScope(Number(1, "G0", false), Number(2, "G1", true)),
            "linear" => new LinearScope(Number(1, "G0", false), Number(2, "G1", true)),
            "quadratic" => new QuadraticScope(Number(1, "G0", false), Number(2, "G1", true)),
            "bounded" => new BoundedExponentialScope(Number(1, "G0", false), Number(2, "TAU", false)),
            _ => throw Fail("unknown form"),
        };
    }

    /// <summary>The CLI's --gamma/--scoping/--scoping-schedule triple as a schedule.</summary>
    public static ScopeSchedule From(string kind, double gamma0, double rate) => Parse(
        kind == "const" ? $"const:{F(gamma0)}" : $"{kind}:{F(gamma0)}:{F(rate)}");

    /// <summary>Round-trip invariant text of a number.</summary>
    protected static string F(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>gamma(t) = gamma0: no scoping.</summary>
public sealed record ConstantScope(double Gamma0) : ScopeSchedule
{
    /// <inheritdoc/>
    public override double Gamma(long t) => Gamma0;
    /// <inheritdoc/>
    public override string Spec => $"const:{F(Gamma0)}";
}

/// <summary>gamma(t) = gamma0 (1 + gamma1)^t, the schedule of the paper's experiments.</summary>
public sealed record ExponentialScope(double Gamma0, double Gamma1) : ScopeSchedule
{
    /// <inheritdoc/>
    public override double Gamma(long t) => Gamma0 * Math.Pow(1 + Gamma1, t);
    /// <inheritdoc/>
    public override string Spec => $"exp:{F(Gamma0)}:{F(Gamma1)}";
}

/// <summary>gamma(t) = gamma0 (1 + gamma1 t).</summary>
public sealed record LinearScope(double Gamma0, double Gamma1) : ScopeSchedule
{
    /// <inheritdoc/>
    public override double Gamma(long t) => Gamma0 * (1 + Gamma1 * t);
    /// <inheritdoc/>
    public override string Spec => $"linear:{F(Gamma0)}:{F(Gamma1)}";
}

/// <summary>gamma(t) = gamma0 (1 + gamma1 t)^2.</summary>
public sealed record QuadraticScope(double Gamma0, double Gamma1) : ScopeSchedule
{
    /// <inheritdoc/>
    public override double Gamma(long t) => Gamma0 * (1 + Gamma1 * t) * (1 + Gamma1 * t);
    /// <inheritdoc/>
    public override string Spec => $"quadratic:{F(Gamma0)}:{F(Gamma1)}";
}

/// <summary>gamma(t) = gamma0 (1 - exp(-tau t)): rises from 0 and saturates at gamma0.</summary>
public sealed record BoundedExponentialScope(double Gamma0, double Tau) : ScopeSchedule
{
    /// <inheritdoc/>
    public override double Gamma(long t) => Gamma0 * (1 - Math.Exp(-Tau * t));
    /// <inheritdoc/>
    public override string Spec => $"bounded:{F(Gamma0)}:{F(Tau)}";
}

/// <summary>Writes a schedule as its <see cref="ScopeSchedule.Spec"/> text ("exp:0.0001:0.001") and reads it back.</summary>
public sealed class ScopeScheduleJsonConverter : JsonConverter<ScopeSchedule>
{
    /// <inheritdoc/>
    public override ScopeSchedule Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException($"a scope schedule is a string ({ScopeSchedule.Syntax})");
        try
        {
            return ScopeSchedule.Parse(reader.GetString()!);
        }
        catch (FormatException e)
        {
            throw new JsonException(e.Message, e);
        }
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, ScopeSchedule value, JsonSerializerOptions options) => writer.WriteStringValue(value.Spec);
}
