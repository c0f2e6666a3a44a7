using WideValley.Landscape;

namespace WideValley.Experiments;

/// <summary>
/// The statistics seed 003 Sec. 5.1 reads off a Hessian spectrum (Figs. 1 and 3): how much of it sits near zero, the
/// extreme eigenvalues, and the shape of the two tails. Computed from all eigenvalues (exact), from a quadrature
/// (SLQ, with Lanczos extremes), or from any list of non-negative values standing in for eigenvalues (the diagonal
/// Fisher of Fig. 3c).
/// </summary>
/// <param name="Count">Number of eigenvalues, or null for a quadrature estimate (fractions of spectral mass).</param>
/// <param name="FractionAbsBelow">Fraction of |λ| &lt; t for each t of <see cref="Thresholds"/>.</param>
/// <param name="LambdaMax">Largest eigenvalue.</param>
/// <param name="LambdaMin">Smallest (most negative) eigenvalue.</param>
/// <param name="NegativeFraction">Fraction with λ &lt; −<see cref="NegativeThreshold"/>: negative beyond the near-zero band.</param>
/// <param name="RightTailFraction">Fraction with λ &gt; <see cref="TailThreshold"/>.</param>
/// <param name="LeftTailFraction">Fraction with λ &lt; −<see cref="TailThreshold"/>.</param>
public sealed record SpectrumSummary(long? Count, IReadOnlyList<double> FractionAbsBelow, double LambdaMax, double LambdaMin,
    double NegativeFraction, double RightTailFraction, double LeftTailFraction)
{
    /// <summary>The t of "fraction of |λ| &lt; t": the paper quotes 1e-5 (Fig. 3b, c), 1e-4 (Fig. 1) and 1e-2 (Fig. 3a).</summary>
    public static IReadOnlyList<double> Thresholds { get; } = [1e-5, 1e-4, 1e-3, 1e-2];

    /// <summary>
    /// Where a tail starts: |λ| above 1e-2, the widest of the paper's near-zero bands (Fig. 3a's clipped peak), so
    /// that a tail eigenvalue is curvature by any of the paper's readings.
    /// </summary>
    public const double TailThreshold = 1e-2;

    /// <summary>
    /// Below −1e-4 an eigenvalue counts as negative: the paper's near-zero band (Fig. 1), ten times above the
    /// float32 round-off of a Hessian with λ_max around 100, where the sign of a smaller eigenvalue is noise.
    /// </summary>
    public const double NegativeThreshold = 1e-4;

    /// <summary>
    /// Right tail over left tail by mass: how many more eigenvalues lie above +1e-2 than below −1e-2 (the paper:
    /// "the right tails of the eigenspectra are much longer than the left tails"). Null when the left tail is empty.
    /// </summary>
    public double? TailMassRatio => LeftTailFraction > 0 ? RightTailFraction / LeftTailFraction : null;

    /// <summary>
    /// λ_max / |λ_min|: how much farther the right tail reaches than the left. Null when λ_min is not below
    /// −<see cref="NegativeThreshold"/>: a ratio to a round-off-sized λ_min would be a meaningless huge number.
    /// </summary>
    public double? TailExtentRatio => LambdaMin < -NegativeThreshold ? LambdaMax / -LambdaMin : null;

    /// <summary>The fraction for threshold <paramref name="threshold"/> (one of <see cref="Thresholds"/>).</summary>
    /// <exception cref="ArgumentException">Not one of the thresholds.</exception>
    public double FractionBelow(double threshold)
    {
        for (var i = 0; i < Thresholds.Count; i++)
            if (Math.Abs(Thresholds[i] - threshold) <= 1e-12 * threshold) return FractionAbsBelow[i];
        throw new ArgumentException($"SpectrumSummary: {threshold} is not one of the thresholds {string.Join(", ", Thresholds)}", nameof(threshold));
    }

    /// <summary>Statistics of a complete list of eigenvalues (or of values standing in for them).</summary>
    /// <exception cref="ArgumentException">No values, or a value that is not finite.</exception>
    public static SpectrumSummary FromEigenvalues(IReadOnlyList<double> eigenvalues)
    {
        ArgumentNullException.ThrowIfNull(eigenvalues);
        if (eigenvalues.Count == 0) throw new ArgumentException("SpectrumSummary: a spectrum needs at least one eigenvalue", nameof(eigenvalues));
        for (var i = 0; i < eigenvalues.Count; i++)
            if (!double.IsFinite(eigenvalues[i]))
                throw new ArgumentException($"SpectrumSummary: eigenvalue {i} is {eigenvalues[i]}; every eigenvalue must be finite", nameof(eigenvalues));
        double n = eigenvalues.Count;
        double Fraction(Func<double, bool> predicate) => eigenvalues.Count(predicate) / n;
        return new SpectrumSummary(eigenvalues.Count,
            Thresholds.Select(t => Fraction(x => Math.Abs(x) < t)).ToArray(),
            eigenvalues.Max(), eigenvalues.Min(),
            Fraction(x => x < -NegativeThreshold), Fraction(x => x > TailThreshold), Fraction(x => x < -TailThreshold));
    }

    /// <summary>
    /// Statistics of a stochastic Lanczos quadrature: every fraction is the quadrature weight of the nodes in the band
    /// (an estimate of the fraction of eigenvalues, blind to bands narrower than its node spacing); the extremes come
    /// from Lanczos runs at the two ends, which converge to the actual eigenvalues.
    /// </summary>
    public static SpectrumSummary FromQuadrature(SlqResult quadrature, double lambdaMax, double lambdaMin)
    {
        ArgumentNullException.ThrowIfNull(quadrature);
        double Fraction(Func<double, bool> predicate) => quadrature.Estimate(x => predicate(x) ? 1 : 0).Estimate;
        return new SpectrumSummary(null,
            Thresholds.Select(t => Fraction(x => Math.Abs(x) < t)).ToArray(),
            lambdaMax, lambdaMin,
            Fraction(x => x < -NegativeThreshold), Fraction(x => x > TailThreshold), Fraction(x => x < -TailThreshold));
    }

    /// <summary>
    /// The absolute accuracy of eigenvalues computed in <paramref name="dtype"/> ("float32" or "float64") from a
    /// matrix of norm |λ|max: unit round-off times the norm. Bands narrower than this hold round-off, not curvature.
    /// </summary>
    public static double RoundOffFloor(double largestMagnitude, string dtype) =>
        Math.Abs(largestMagnitude) * (dtype == "float64" ? Math.Pow(2, -53) : Math.Pow(2, -24));
}
