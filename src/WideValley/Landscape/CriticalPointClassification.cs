using System.Globalization;
using System.Text.Json.Nodes;

namespace WideValley.Landscape;

/// <summary>What kind of point the Hessian and the gradient say a network sits at (<see cref="CriticalPoints"/>).</summary>
public enum CriticalPointKind
{
    /// <summary>The gradient is larger than the tolerance: not a critical point, whatever the Hessian says.</summary>
    NotCritical,
    /// <summary>Small gradient, no eigenvalue below -tau, few near zero: a strict local minimum.</summary>
    Minimum,
    /// <summary>Small gradient, no eigenvalue below -tau, a large fraction within [-tau, tau]: a flat (degenerate) minimum. Not a saddle.</summary>
    DegenerateMinimum,
    /// <summary>Small gradient, at least one eigenvalue below -tau, few near zero: a saddle.</summary>
    Saddle,
    /// <summary>Small gradient, at least one eigenvalue below -tau and a large fraction within [-tau, tau]: a degenerate saddle (the paper's "good saddle").</summary>
    DegenerateSaddle,
}

/// <summary>The thresholds of a classification (all ours where arXiv 1706.02052 is silent; docs/seed-004.md).</summary>
public sealed record CriticalPointCriteria
{
    /// <summary>The band half-widths tau reported (default 1e-4, 1e-3, 1e-2).</summary>
    public IReadOnlyList<double> Taus { get; init; } = CriticalPoints.DefaultTaus;

    /// <summary>The tau the verdict uses (default 1e-3, the cut-off Choromanska et al. 2015 used for the index); must be one of <see cref="Taus"/>.</summary>
    public double PrimaryTau { get; init; } = CriticalPoints.DefaultTau;

    /// <summary>The largest gradient norm of a critical point (default 1e-2); above it the point is <see cref="CriticalPointKind.NotCritical"/>.</summary>
    public double GradientTolerance { get; init; } = 1e-2;

    /// <summary>The near-zero fraction at <see cref="PrimaryTau"/> from which a point is called degenerate (default 0.5: most directions flat).</summary>
    public double DegenerateFraction { get; init; } = 0.5;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        if (Taus is null || Taus.Count == 0) throw new ArgumentException("CriticalPointCriteria.Taus: give at least one band half-width tau.", nameof(Taus));
        foreach (var t in Taus)
            if (!(t > 0) || !double.IsFinite(t))
                throw new ArgumentException($"CriticalPointCriteria.Taus: every tau must be a positive finite number, got {t.ToString(CultureInfo.InvariantCulture)}.", nameof(Taus));
        if (!Taus.Contains(PrimaryTau))
            throw new ArgumentException($"CriticalPointCriteria.PrimaryTau {PrimaryTau.ToString(CultureInfo.InvariantCulture)} is not one of Taus ({string.Join(", ", Taus.Select(t => t.ToString(CultureInfo.InvariantCulture)))}).", nameof(PrimaryTau));
        if (!(GradientTolerance > 0) || !double.IsFinite(GradientTolerance))
            throw new ArgumentException($"CriticalPointCriteria.GradientTolerance must be a positive finite number, got {GradientTolerance.ToString(CultureInfo.InvariantCulture)}.", nameof(GradientTolerance));
        if (!(DegenerateFraction > 0 && DegenerateFraction <= 1))
            throw new ArgumentException($"CriticalPointCriteria.DegenerateFraction must be in (0, 1], got {DegenerateFraction.ToString(CultureInfo.InvariantCulture)}.", nameof(DegenerateFraction));
    }
}

/// <summary>
/// The fractions of eigenvalues in the three bands of one tau: negative (lambda &lt; -tau), near zero (|lambda| &lt;= tau)
/// and positive (lambda &gt; tau). Exact spectra give exact counts and zero errors; SLQ gives estimates with three errors.
/// </summary>
/// <param name="Tau">The band half-width.</param>
/// <param name="Negative">Fraction below -tau (the normalised index).</param>
/// <param name="NearZero">Fraction within [-tau, tau] (the degeneracy).</param>
/// <param name="Positive">Fraction above tau.</param>
/// <param name="NegativeCount">Exact spectra: the index (number below -tau); SLQ: round(Negative x n).</param>
/// <param name="KernelError">
/// SLQ: a bound on how far the smoothed density's band masses can be from the quadrature nodes' own (the weight of nodes
/// within 3 sigma of -tau or tau plus 2 Phi(-3)); 0 for exact spectra.
/// </param>
/// <param name="ProbeStandardError">SLQ: the largest standard error of the three fractions across probes; 0 for exact spectra.</param>
/// <param name="QuadratureNegativeError">
/// SLQ: the Chebyshev-Markov-Stieltjes bound at -tau, averaged over probes: a Gauss rule's nodes x_k &lt; t &lt;= x_(k+1) bracket
/// the probe's spectral mass below t within max(w_k, w_(k+1)) of the nodes' (so a heavy node near zero makes the sign of
/// its mass unknown); 0 for exact spectra.
/// </param>
/// <param name="QuadraturePositiveError">SLQ: the same bound at +tau; 0 for exact spectra.</param>
public sealed record EigenvalueBands(double Tau, double Negative, double NearZero, double Positive, long NegativeCount, double KernelError, double ProbeStandardError,
    double QuadratureNegativeError = 0, double QuadraturePositiveError = 0)
{
    /// <summary>
    /// The stated error of each fraction: kernel bound, both quadrature bounds (the near-zero band has two edges) and
    /// three probe standard errors (0 for exact spectra).
    /// </summary>
    public double Error => KernelError + QuadratureNegativeError + QuadraturePositiveError + 3 * ProbeError;

    /// <summary>The stated error of <see cref="Negative"/>: kernel bound, the quadrature bound at -tau and three probe standard errors.</summary>
    public double NegativeError => KernelError + QuadratureNegativeError + 3 * ProbeError;

    double ProbeError => double.IsNaN(ProbeStandardError) ? 0 : ProbeStandardError;

    /// <summary>Whether some eigenvalue lies below -tau: exact, at least one; SLQ, a negative fraction above its stated error.</summary>
    public bool HasNegative => Error == 0 ? NegativeCount > 0 : Negative > NegativeError;
}

/// <summary>
/// The classification of one point: the bands at every tau, the gradient norm, the verdict at the primary tau, and
/// how the spectrum was obtained.
/// </summary>
/// <param name="Dimension">n, the number of eigenvalues.</param>
/// <param name="Source">"exact" or "slq".</param>
/// <param name="Bands">One entry per tau, ascending.</param>
/// <param name="GradientNorm">||grad L|| at the point (NaN when not measured: then the verdict cannot be a critical point).</param>
/// <param name="LambdaMin">Smallest eigenvalue (SLQ: smallest Ritz value).</param>
/// <param name="LambdaMax">Largest eigenvalue (SLQ: largest Ritz value).</param>
/// <param name="Criteria">The thresholds used.</param>
/// <param name="Kind">The verdict at <see cref="CriticalPointCriteria.PrimaryTau"/>.</param>
public sealed record CriticalPointClassification(long Dimension, string Source, IReadOnlyList<EigenvalueBands> Bands, double GradientNorm,
    double LambdaMin, double LambdaMax, CriticalPointCriteria Criteria, CriticalPointKind Kind)
{
    /// <summary>The bands at the primary tau.</summary>
    public EigenvalueBands Primary => Bands.First(b => b.Tau == Criteria.PrimaryTau);

    /// <summary>The index at the primary tau: number of eigenvalues below -tau (SLQ: estimated).</summary>
    public long Index => Primary.NegativeCount;

    /// <summary>The degeneracy at the primary tau: the fraction of eigenvalues within [-tau, tau].</summary>
    public double Degeneracy => Primary.NearZero;

    /// <summary>Whether the gradient is within the tolerance.</summary>
    public bool IsCritical => GradientNorm <= Criteria.GradientTolerance;

    /// <summary>"degenerate saddle", "minimum", ...: the verdict in words.</summary>
    public string KindName => CriticalPoints.Name(Kind);

    /// <summary>
    /// As JSON: source, dimension, kind, gradient norm and tolerance, index, degeneracy, the extremes, and per tau the three
    /// fractions, the index and the stated errors (non-finite numbers as null).
    /// </summary>
    public JsonObject ToJson() => new()
    {
        ["source"] = Source,
        ["dimension"] = Dimension,
        ["kind"] = KindName,
        ["gradient_norm"] = CriticalPoints.Number(GradientNorm),
        ["gradient_tolerance"] = Criteria.GradientTolerance,
        ["primary_tau"] = Criteria.PrimaryTau,
        ["degenerate_fraction"] = Criteria.DegenerateFraction,
        ["index"] = Index,
        ["degeneracy"] = CriticalPoints.Number(Degeneracy),
        ["lambda_min"] = CriticalPoints.Number(LambdaMin),
        ["lambda_max"] = CriticalPoints.Number(LambdaMax),
        ["bands"] = new JsonArray(Bands.Select(b => (JsonNode?)new JsonObject
        {
            ["tau"] = b.Tau,
            ["negative"] = CriticalPoints.Number(b.Negative),
            ["near_zero"] = CriticalPoints.Number(b.NearZero),
            ["positive"] = CriticalPoints.Number(b.Positive),
            ["negative_count"] = b.NegativeCount,
            ["error"] = CriticalPoints.Number(b.Error),
            ["negative_error"] = CriticalPoints.Number(b.NegativeError),
            ["kernel_error"] = CriticalPoints.Number(b.KernelError),
            ["quadrature_error"] = CriticalPoints.Number(b.QuadratureNegativeError + b.QuadraturePositiveError),
            ["probe_standard_error"] = CriticalPoints.Number(b.ProbeStandardError),
        }).ToArray()),
    };

    /// <summary>One line: n, source, verdict, gradient norm, and the three fractions at each tau.</summary>
    public string Describe() =>
        string.Format(CultureInfo.InvariantCulture, "{0} ({1}, n = {2:N0}): |grad| {3:G3} (tolerance {4:G3}), index {5:N0}, degeneracy {6:P2} at tau {7:G3}; ",
            KindName, Source, Dimension, GradientNorm, Criteria.GradientTolerance, Index, Degeneracy, Criteria.PrimaryTau) +
        string.Join("; ", Bands.Select(b => string.Format(CultureInfo.InvariantCulture, "tau {0:G3}: neg {1:P2} zero {2:P2} pos {3:P2}{4}",
            b.Tau, b.Negative, b.NearZero, b.Positive, b.Error > 0 ? string.Format(CultureInfo.InvariantCulture, " (± {0:P2})", b.Error) : "")));
}

/// <summary>
/// Classifies a point of a loss surface from its Hessian spectrum and gradient (Dauphin et al. 2014; Sagun et al. 2017;
/// "Are saddles good enough?", arXiv 1706.02052, whose thresholds we do not have): the fractions of eigenvalues below
/// -tau, within [-tau, tau] and above tau for several tau, the index, the degeneracy and a verdict. A point is only a
/// critical point when its gradient is small, so the gradient norm enters the verdict:
/// <code>
/// |g| &gt; tolerance                         -&gt; not critical
/// index(tau) = 0, degeneracy(tau) &lt; d      -&gt; minimum         index(tau) = 0, degeneracy &gt;= d -&gt; degenerate minimum
/// index(tau) &gt; 0, degeneracy(tau) &lt; d      -&gt; saddle          index(tau) &gt; 0, degeneracy &gt;= d -&gt; degenerate saddle
/// </code>
/// From an SLQ result the fractions come from integrating the Gaussian-smoothed density over each band (exactly, by the
/// normal CDF at each node) with a stated error: the kernel bound of <see cref="EigenvalueBands.KernelError"/>, the
/// quadrature's own resolution at the band edges (<see cref="EigenvalueBands.QuadratureNegativeError"/>: Gauss nodes are not
/// eigenvalues, and a heavy node near zero may represent mass on either side of -tau) and three standard errors across
/// probes; "index &gt; 0" then means a negative fraction above its error.
/// </summary>
public static class CriticalPoints
{
    /// <summary>The taus reported by default: 1e-4, 1e-3, 1e-2 (ours; the paper's Sec. 5.1 bands are not available to us).</summary>
    public static readonly double[] DefaultTaus = [1e-4, 1e-3, 1e-2];

    /// <summary>The tau of the verdict by default: 1e-3 (Choromanska et al. 2015's cut-off for the index).</summary>
    public const double DefaultTau = 1e-3;

    /// <summary>The kernel's reach, in standard deviations, within which a node counts as straddling a band edge.</summary>
    public const double KernelReach = 3;

    /// <summary>Classifies from all eigenvalues of the Hessian (exact counts).</summary>
    /// <param name="eigenvalues">Every eigenvalue (any order), finite.</param>
    /// <param name="gradientNorm">||grad L|| at the point (NaN: unknown, which the verdict treats as not critical).</param>
    /// <param name="criteria">Thresholds (default <see cref="CriticalPointCriteria"/>).</param>
    /// <exception cref="ArgumentException">No eigenvalues, a non-finite one, or invalid criteria.</exception>
    public static CriticalPointClassification FromEigenvalues(IReadOnlyList<double> eigenvalues, double gradientNorm, CriticalPointCriteria? criteria = null)
    {
        ArgumentNullException.ThrowIfNull(eigenvalues);
        var c = criteria ?? new CriticalPointCriteria();
        c.Validate();
        if (eigenvalues.Count == 0) throw new ArgumentException("CriticalPoints.FromEigenvalues: no eigenvalues given.", nameof(eigenvalues));
        for (var i = 0; i < eigenvalues.Count; i++)
            if (!double.IsFinite(eigenvalues[i]))
                throw new ArgumentException($"CriticalPoints.FromEigenvalues: eigenvalue {i} is {eigenvalues[i].ToString(CultureInfo.InvariantCulture)}, not a finite number.", nameof(eigenvalues));
        double n = eigenvalues.Count;
        var bands = c.Taus.Order().Select(tau =>
        {
            long negative = 0, zero = 0, positive = 0;
            foreach (var l in eigenvalues)
            {
                if (l < -tau) negative++;
                else if (l > tau) positive++;
                else zero++;
            }
            return new EigenvalueBands(tau, negative / n, zero / n, positive / n, negative, 0, 0);
        }).ToArray();
        return Classify(eigenvalues.Count, "exact", bands, gradientNorm, eigenvalues.Min(), eigenvalues.Max(), c);
    }

    /// <summary>
    /// Classifies from stochastic Lanczos quadrature: each band's mass is the integral of the density smoothed by a
    /// Gaussian of width sigma, (1/probes) sum_l sum_i w_li [Phi((b - theta_li)/sigma) - Phi((a - theta_li)/sigma)].
    /// </summary>
    /// <param name="slq">The quadrature.</param>
    /// <param name="gradientNorm">||grad L|| at the point.</param>
    /// <param name="criteria">Thresholds.</param>
    /// <param name="sigma">Kernel width; null: tau / 10 for each tau (so the kernel resolves the band it measures: a node at 0 leaks 2 Phi(-10) of its weight).</param>
    public static CriticalPointClassification FromSlq(SlqResult slq, double gradientNorm, CriticalPointCriteria? criteria = null, double? sigma = null)
    {
        ArgumentNullException.ThrowIfNull(slq);
        var c = criteria ?? new CriticalPointCriteria();
        c.Validate();
        if (sigma is double s0 && !(s0 > 0)) throw new ArgumentException($"CriticalPoints.FromSlq: sigma must be positive, got {s0.ToString(CultureInfo.InvariantCulture)}.", nameof(sigma));
        var probes = slq.Nodes.Length;
        var n = slq.Dimension;
        var bands = c.Taus.Order().Select(tau =>
        {
            var s = sigma ?? tau / 10;
            var negative = new double[probes];
            var zero = new double[probes];
            var positive = new double[probes];
            double straddling = 0;
            for (var l = 0; l < probes; l++)
                for (var i = 0; i < slq.Nodes[l].Length; i++)
                {
                    var theta = slq.Nodes[l][i];
                    var w = slq.Weights[l][i];
                    var below = NormalCdf((-tau - theta) / s);
                    var above = 1 - NormalCdf((tau - theta) / s);
                    negative[l] += w * below;
                    positive[l] += w * above;
                    zero[l] += w * (1 - below - above);
                    if (Math.Abs(theta + tau) <= KernelReach * s || Math.Abs(theta - tau) <= KernelReach * s) straddling += w / probes;
                }
            var kernel = straddling + 2 * NormalCdf(-KernelReach);
            var quadratureNegative = Enumerable.Range(0, probes).Average(l => Bracket(slq.Nodes[l], slq.Weights[l], -tau, strictBelow: true));
            var quadraturePositive = Enumerable.Range(0, probes).Average(l => Bracket(slq.Nodes[l], slq.Weights[l], tau, strictBelow: false));
            var (neg, negError) = SlqResult.MeanAndError(negative);
            var (near, zeroError) = SlqResult.MeanAndError(zero);
            var (pos, posError) = SlqResult.MeanAndError(positive);
            var probeError = probes < 2 ? double.NaN : Math.Max(negError, Math.Max(zeroError, posError));
            return new EigenvalueBands(tau, neg, near, pos, (long)Math.Round(neg * n), kernel, probeError, quadratureNegative, quadraturePositive);
        }).ToArray();
        var (min, max) = slq.Range;
        return Classify(n, "slq", bands, gradientNorm, min, max, c);
    }

    /// <summary>
    /// max(w_k, w_(k+1)) for the nodes bracketing <paramref name="edge"/> (x_k the last node on the lower side, x_(k+1) the
    /// first on the upper side; a missing one weighs 0): by the Chebyshev-Markov-Stieltjes inequalities the probe's
    /// spectral mass on the lower side lies within that of the nodes' mass there.
    /// </summary>
    static double Bracket(double[] nodes, double[] weights, double edge, bool strictBelow)
    {
        double lower = 0, upper = 0, lowerAt = double.NegativeInfinity, upperAt = double.PositiveInfinity;
        for (var i = 0; i < nodes.Length; i++)
        {
            var below = strictBelow ? nodes[i] < edge : nodes[i] <= edge;
            if (below && nodes[i] >= lowerAt) (lower, lowerAt) = (weights[i], nodes[i]);
            if (!below && nodes[i] <= upperAt) (upper, upperAt) = (weights[i], nodes[i]);
        }
        return Math.Max(lower, upper);
    }

    static CriticalPointClassification Classify(long n, string source, EigenvalueBands[] bands, double gradientNorm, double min, double max, CriticalPointCriteria c)
    {
        var primary = bands.First(b => b.Tau == c.PrimaryTau);
        var degenerate = primary.NearZero >= c.DegenerateFraction;
        var kind = !(gradientNorm <= c.GradientTolerance)
            ? CriticalPointKind.NotCritical
            : primary.HasNegative
                ? degenerate ? CriticalPointKind.DegenerateSaddle : CriticalPointKind.Saddle
                : degenerate ? CriticalPointKind.DegenerateMinimum : CriticalPointKind.Minimum;
        return new CriticalPointClassification(n, source, bands, gradientNorm, min, max, c, kind);
    }

    /// <summary>The verdict in words: "not a critical point", "minimum", "degenerate minimum", "saddle", "degenerate saddle".</summary>
    public static string Name(CriticalPointKind kind) => kind switch
    {
        CriticalPointKind.NotCritical => "not a critical point",
        CriticalPointKind.Minimum => "minimum",
        CriticalPointKind.DegenerateMinimum => "degenerate minimum",
        CriticalPointKind.Saddle => "saddle",
        CriticalPointKind.DegenerateSaddle => "degenerate saddle",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    internal static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    /// <summary>The standard normal CDF Phi(x) (erfc form, accurate in the tails to about 1e-7 relative).</summary>
    public static double NormalCdf(double x) => 0.5 * Erfc(-x / Math.Sqrt(2));

    /// <summary>Complementary error function (Numerical Recipes' Chebyshev fit, fractional error below 1.2e-7).</summary>
    static double Erfc(double x)
    {
        var z = Math.Abs(x);
        var t = 1 / (1 + 0.5 * z);
        var r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
            t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2 - r;
    }
}
