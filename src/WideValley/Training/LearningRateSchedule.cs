using System.Globalization;

namespace WideValley.Training;

/// <summary>
/// An epoch-wise learning-rate schedule: the factor by which each parameter group's initial learning rate is scaled
/// during a given epoch. Epochs are counted from 1, so "divide by 10 after epoch 2" keeps the initial rate in epochs 1
/// and 2 and uses a tenth of it from epoch 3 on, as the paper's wording reads.
/// </summary>
public abstract class LearningRateSchedule
{
    /// <summary>Multiplier of the initial learning rate during <paramref name="epoch"/> (1-based).</summary>
    public abstract double Factor(int epoch);

    /// <summary>The textual form accepted by <see cref="Parse"/>; round-trips.</summary>
    public abstract string Spec { get; }

    /// <summary>The <see cref="Spec"/>.</summary>
    public override string ToString() => Spec;

    /// <summary>The accepted forms, for help and error messages.</summary>
    public const string Syntax =
        "const | step:K:N (divide by K every N epochs) | after:K:E1[,E2,...] (divide by K after each listed epoch) | " +
        "custom:E1=F1,E2=F2,... (from epoch Ei on, multiply the initial rate by Fi; epochs before E1 use 1)";

    /// <summary>
    /// Parses a schedule. Examples: <c>step:5:30</c> (the paper's Adam baseline: /5 every 30 epochs), <c>after:10:2</c>
    /// (Entropy-SGD on MNIST: /10 after epoch 2), <c>after:10:3,4</c> (PTB: /10 after epochs 3 and 4),
    /// <c>custom:1=1,3=0.1</c>.
    /// </summary>
    public static LearningRateSchedule Parse(string text)
    {
        var spec = (text ?? "").Trim();
        var parts = spec.Split(':');
        FormatException Fail(string why) => new($"learning-rate schedule '{text}': {why}. Expected {Syntax}.");
        switch (parts[0].ToLowerInvariant())
        {
            case "const" or "constant" when parts.Length == 1:
                return new ConstantSchedule();
            case "step" when parts.Length == 3:
            {
                var k = ParseFactor(parts[1], "K", Fail);
                if (!int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1)
                    throw Fail($"N = '{parts[2]}' must be a positive whole number of epochs");
                return new StepDecaySchedule(k, n);
            }
            case "after" when parts.Length == 3:
            {
                var k = ParseFactor(parts[1], "K", Fail);
                var epochs = new List<int>();
                foreach (var item in parts[2].Split(','))
                {
                    if (!int.TryParse(item.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var e) || e < 1)
                        throw Fail($"epoch '{item}' must be a positive whole number");
                    epochs.Add(e);
                }
                return new DivideAfterSchedule(k, epochs);
            }
            case "custom" when parts.Length == 2:
            {
                var points = new SortedDictionary<int, double>();
                foreach (var item in parts[1].Split(','))
                {
                    var kv = item.Split('=');
                    if (kv.Length != 2) throw Fail($"'{item}' is not EPOCH=FACTOR");
                    if (!int.TryParse(kv[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var e) || e < 1)
                        throw Fail($"epoch '{kv[0]}' must be a positive whole number");
                    if (!double.TryParse(kv[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) || !(f > 0) || double.IsInfinity(f))
                        throw Fail($"factor '{kv[1]}' must be a positive number");
                    if (!points.TryAdd(e, f)) throw Fail($"epoch {e} is given twice");
                }
                return new PiecewiseSchedule(points);
            }
            default:
                throw Fail("unknown form");
        }
    }

    static double ParseFactor(string s, string name, Func<string, FormatException> fail)
    {
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var k) || !(k > 0) || double.IsInfinity(k))
            throw fail($"{name} = '{s}' must be a positive number");
        return k;
    }

    /// <summary>A number as schedule specs write it: shortest round-trip form, invariant culture.</summary>
    public static string Format(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>The initial learning rate throughout.</summary>
public sealed class ConstantSchedule : LearningRateSchedule
{
    /// <inheritdoc/>
    public override double Factor(int epoch) => 1.0;
    /// <inheritdoc/>
    public override string Spec => "const";
}

/// <summary>Divide by <see cref="Divisor"/> every <see cref="Every"/> epochs: factor = Divisor^-floor((epoch-1)/Every).</summary>
public sealed class StepDecaySchedule(double divisor, int every) : LearningRateSchedule
{
    /// <summary>What the rate is divided by at each step.</summary>
    public double Divisor { get; } = divisor;
    /// <summary>Epochs between steps.</summary>
    public int Every { get; } = every;
    /// <inheritdoc/>
    public override double Factor(int epoch) => Math.Pow(Divisor, -((Math.Max(epoch, 1) - 1) / Every));
    /// <inheritdoc/>
    public override string Spec => $"step:{Format(Divisor)}:{Every}";
}

/// <summary>Divide by <see cref="Divisor"/> once after each listed epoch.</summary>
public sealed class DivideAfterSchedule(double divisor, IEnumerable<int> afterEpochs) : LearningRateSchedule
{
    /// <summary>What the rate is divided by at each step.</summary>
    public double Divisor { get; } = divisor;
    /// <summary>The epochs after which the rate is divided.</summary>
    public IReadOnlyList<int> AfterEpochs { get; } = afterEpochs.OrderBy(e => e).ToList();
    /// <inheritdoc/>
    public override double Factor(int epoch) => Math.Pow(Divisor, -AfterEpochs.Count(e => e < epoch));
    /// <inheritdoc/>
    public override string Spec => $"after:{Format(Divisor)}:{string.Join(",", AfterEpochs)}";
}

/// <summary>Piecewise-constant factors given per starting epoch.</summary>
public sealed class PiecewiseSchedule(IDictionary<int, double> points) : LearningRateSchedule
{
    /// <summary>Starting epoch → factor.</summary>
    public IReadOnlyDictionary<int, double> Points { get; } = new SortedDictionary<int, double>(points);
    /// <inheritdoc/>
    public override double Factor(int epoch)
    {
        var factor = 1.0;
        foreach (var (start, f) in Points)
            if (start <= epoch) factor = f;
        return factor;
    }
    /// <inheritdoc/>
    public override string Spec => "custom:" + string.Join(",", Points.Select(p => $"{p.Key}={Format(p.Value)}"));
}
