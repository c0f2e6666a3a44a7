using System.Globalization;

namespace WideValley.DeepLinear;

/// <summary>How a noise scale decays with the step t (t = 0 is the first step).</summary>
public enum AnnealingKind
{
    /// <summary>sigma_t = sigma_0 at every step.</summary>
    Constant,

    /// <summary>
    /// Neelakantan et al. (arXiv 1511.06807): the variance decays as sigma_t^2 = sigma_0^2 / (1 + t)^gamma, so the
    /// standard deviation is sigma_0 / (1 + t)^(gamma / 2); their gamma is 0.55.
    /// </summary>
    InverseTimePower,

    /// <summary>sigma_t = sigma_0 * 2^(-t / h), h the half-life in steps.</summary>
    Exponential,
}

/// <summary>
/// A noise scale and its annealing: <see cref="StandardDeviationAt"/> gives the standard deviation sigma_t of the
/// noise drawn at step t. <see cref="Scale"/> is always the standard deviation at t = 0 (for multiplicative noise, the
/// s of N(1, s^2)); the parameter the kind does not use is ignored.
/// </summary>
/// <param name="Kind">How the scale decays.</param>
/// <param name="Scale">sigma_0, the standard deviation at step 0 (0: no noise).</param>
/// <param name="Gamma">The exponent of <see cref="AnnealingKind.InverseTimePower"/> (Neelakantan et al.'s 0.55).</param>
/// <param name="HalfLife">The half-life in steps of <see cref="AnnealingKind.Exponential"/>.</param>
public sealed record NoiseSchedule(AnnealingKind Kind, double Scale, double Gamma = NoiseSchedule.NeelakantanGamma, double HalfLife = 1000)
{
    /// <summary>gamma = 0.55, the exponent Neelakantan et al. use.</summary>
    public const double NeelakantanGamma = 0.55;

    /// <summary>No noise.</summary>
    public static NoiseSchedule None { get; } = new(AnnealingKind.Constant, 0);

    /// <summary>A constant standard deviation <paramref name="scale"/>.</summary>
    public static NoiseSchedule Constant(double scale) => new(AnnealingKind.Constant, scale);

    /// <summary>Neelakantan et al.'s annealing: variance <paramref name="scale"/>^2 / (1 + t)^<paramref name="gamma"/>.</summary>
    public static NoiseSchedule InverseTimePower(double scale, double gamma = NeelakantanGamma) => new(AnnealingKind.InverseTimePower, scale, gamma);

    /// <summary>Exponential decay of the standard deviation with half-life <paramref name="halfLife"/> steps.</summary>
    public static NoiseSchedule Exponential(double scale, double halfLife) => new(AnnealingKind.Exponential, scale, HalfLife: halfLife);

    /// <summary>Whether this schedule ever draws noise (sigma_0 &gt; 0).</summary>
    public bool IsActive => Scale > 0;

    /// <summary>The standard deviation of the noise drawn at step <paramref name="step"/> (0-based).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative step.</exception>
    public double StandardDeviationAt(long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (Scale == 0) return 0;
        return Kind switch
        {
            AnnealingKind.Constant => Scale,
            AnnealingKind.InverseTimePower => Scale * Math.Pow(1.0 + step, -Gamma / 2),
            AnnealingKind.Exponential => Scale * Math.Pow(2, -step / HalfLife),
            _ => throw new InvalidOperationException($"unknown annealing kind {Kind}"),
        };
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="what"/> and the bad value.</summary>
    public void Validate(string what)
    {
        if (!double.IsFinite(Scale) || Scale < 0) throw new ArgumentException($"{what}: the noise scale must be finite and >= 0, got {Text(Scale)}");
        if (!Enum.IsDefined(Kind)) throw new ArgumentException($"{what}: unknown annealing kind {(int)Kind}");
        if (Kind == AnnealingKind.InverseTimePower && (!double.IsFinite(Gamma) || Gamma < 0))
            throw new ArgumentException($"{what}: the annealing exponent gamma must be finite and >= 0, got {Text(Gamma)}");
        if (Kind == AnnealingKind.Exponential && (!double.IsFinite(HalfLife) || HalfLife <= 0))
            throw new ArgumentException($"{what}: the half-life must be a positive number of steps, got {Text(HalfLife)}");
    }

    /// <summary>A short description, e.g. "0.1/(1+t)^0.275" (the standard deviation's formula).</summary>
    public override string ToString() => Scale == 0 ? "none" : Kind switch
    {
        AnnealingKind.Constant => Text(Scale),
        AnnealingKind.InverseTimePower => $"{Text(Scale)}/(1+t)^{Text(Gamma / 2)}",
        _ => $"{Text(Scale)}*2^(-t/{Text(HalfLife)})",
    };

    static string Text(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
