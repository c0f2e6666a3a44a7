using System.Globalization;
using WideValley.Landscape.Flatness;

namespace WideValley.Experiments.Flatness;

/// <summary>A verdict on one of the paper's two claims for one measure.</summary>
public enum ClaimVerdict
{
    /// <summary>The data support the claim.</summary>
    Agrees,

    /// <summary>The data support the opposite.</summary>
    Disagrees,

    /// <summary>Neither, at the stated threshold.</summary>
    Inconclusive,

    /// <summary>Too few finished runs (or no spread) to judge.</summary>
    NotTestable,
}

/// <summary>
/// Claim (a), "Entropy-SGD's minimum is wider", on one measure: the flatness of each arm over seeds (oriented so that
/// larger = flatter), the difference of the means and its standard error from the seed spread (Welch).
/// </summary>
/// <param name="EntropyCount">Entropy-SGD seeds with a finite value.</param>
/// <param name="AdamCount">Adam seeds with a finite value.</param>
/// <param name="EntropyMean">Mean of the measure (as reported, not oriented) over Entropy-SGD's seeds (NaN without one).</param>
/// <param name="EntropyStd">Sample standard deviation over Entropy-SGD's seeds (NaN for fewer than two).</param>
/// <param name="AdamMean">Mean over Adam's seeds.</param>
/// <param name="AdamStd">Sample standard deviation over Adam's seeds.</param>
/// <param name="FlatnessDifference">Entropy-SGD's oriented mean minus Adam's: positive when Entropy-SGD is flatter.</param>
/// <param name="StandardError">sqrt(s_E^2 / n_E + s_A^2 / n_A) (NaN when not testable).</param>
/// <param name="Z">FlatnessDifference / StandardError (infinite when the spread is zero and the means differ; NaN when not testable).</param>
/// <param name="Verdict">Agrees when Z &gt; 2, disagrees when Z &lt; -2, else inconclusive; not testable with fewer than two seeds in an arm.</param>
public sealed record WiderVerdict(int EntropyCount, int AdamCount, double EntropyMean, double EntropyStd, double AdamMean, double AdamStd,
    double FlatnessDifference, double StandardError, double Z, ClaimVerdict Verdict);

/// <summary>
/// Claim (b), "width goes with lower test error", on one measure: the Spearman rank correlation between flatness
/// (oriented so that larger = flatter) and test error across the runs of a network, with an exact two-sided
/// permutation p-value.
/// </summary>
/// <param name="Count">Runs with a finite value and test error.</param>
/// <param name="Rho">Spearman's rho (NaN when not testable).</param>
/// <param name="P">Two-sided p-value: the fraction of orderings whose |rho| is at least the observed one (NaN when not testable).</param>
/// <param name="Exact">True when every ordering was enumerated; false when the p-value is a seeded Monte Carlo estimate (more than <see cref="WideValleysStatistics.ExactPermutationLimit"/> runs).</param>
/// <param name="Verdict">Agrees when rho &lt; 0 and p &lt; 0.05, disagrees when rho &gt; 0 and p &lt; 0.05, else inconclusive; not testable with fewer than three runs or no spread in either ranking.</param>
public sealed record CorrelationVerdict(int Count, double Rho, double P, bool Exact, ClaimVerdict Verdict);

/// <summary>
/// The statistics of the wide-valleys verdicts: Welch's standard error of a difference of means, Spearman's rho with
/// average ranks for ties, and its exact permutation p-value. Everything in float64 on plain arrays.
/// </summary>
public static class WideValleysStatistics
{
    /// <summary>A difference of more than this many standard errors decides claim (a).</summary>
    public const double SigmaThreshold = 2;

    /// <summary>The significance level of claim (b).</summary>
    public const double Alpha = 0.05;

    /// <summary>Up to this many runs every ordering is enumerated (10! = 3,628,800); above it a seeded Monte Carlo estimate.</summary>
    public const int ExactPermutationLimit = 10;

    /// <summary>Random orderings of the Monte Carlo p-value above <see cref="ExactPermutationLimit"/> runs.</summary>
    public const int MonteCarloPermutations = 200_000;

    /// <summary>
    /// Orients a value so that larger means flatter: as is for <see cref="FlatterWhen.Higher"/>, negated for
    /// <see cref="FlatterWhen.Lower"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><see cref="FlatterWhen.NotJudged"/>: the value has no flatter direction.</exception>
    public static double Oriented(double value, FlatterWhen flatter) => flatter switch
    {
        FlatterWhen.Higher => value,
        FlatterWhen.Lower => -value,
        _ => throw new ArgumentException("a value that is not a flatness measure has no flatter direction", nameof(flatter)),
    };

    /// <summary>Claim (a) from the measure's values on Entropy-SGD's and Adam's seeds (non-finite values are left out).</summary>
    public static WiderVerdict Wider(IEnumerable<double> entropy, IEnumerable<double> adam, FlatterWhen flatter)
    {
        ArgumentNullException.ThrowIfNull(entropy);
        ArgumentNullException.ThrowIfNull(adam);
        var e = entropy.Where(double.IsFinite).ToArray();
        var a = adam.Where(double.IsFinite).ToArray();
        var (me, se) = MeanAndStd(e);
        var (ma, sa) = MeanAndStd(a);
        if (e.Length < 2 || a.Length < 2)
            return new WiderVerdict(e.Length, a.Length, me, se, ma, sa, double.NaN, double.NaN, double.NaN, ClaimVerdict.NotTestable);
        var difference = Oriented(me, flatter) - Oriented(ma, flatter);
        var error = Math.Sqrt(se * se / e.Length + sa * sa / a.Length);
        var z = error > 0 ? difference / error : difference == 0 ? 0 : Math.CopySign(double.PositiveInfinity, difference);
        var verdict = z > SigmaThreshold ? ClaimVerdict.Agrees : z < -SigmaThreshold ? ClaimVerdict.Disagrees : ClaimVerdict.Inconclusive;
        return new WiderVerdict(e.Length, a.Length, me, se, ma, sa, difference, error, z, verdict);
    }

    /// <summary>
    /// Claim (b) from pairs (measure value, test error) of the runs of one network; pairs with a non-finite member are
    /// left out. <paramref name="seed"/> seeds the Monte Carlo p-value above <see cref="ExactPermutationLimit"/> runs.
    /// </summary>
    public static CorrelationVerdict WidthAndError(IReadOnlyList<(double Value, double TestError)> runs, FlatterWhen flatter, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var finite = runs.Where(r => double.IsFinite(r.Value) && double.IsFinite(r.TestError)).ToList();
        var n = finite.Count;
        if (n < 3) return new CorrelationVerdict(n, double.NaN, double.NaN, true, ClaimVerdict.NotTestable);
        var flatness = finite.Select(r => Oriented(r.Value, flatter)).ToArray();
        var error = finite.Select(r => r.TestError).ToArray();
        var rho = Spearman(flatness, error);
        if (double.IsNaN(rho)) return new CorrelationVerdict(n, double.NaN, double.NaN, true, ClaimVerdict.NotTestable);
        var exact = n <= ExactPermutationLimit;
        var p = exact ? ExactPermutationP(flatness, error) : MonteCarloPermutationP(flatness, error, MonteCarloPermutations, seed);
        var verdict = p < Alpha ? rho < 0 ? ClaimVerdict.Agrees : rho > 0 ? ClaimVerdict.Disagrees : ClaimVerdict.Inconclusive : ClaimVerdict.Inconclusive;
        return new CorrelationVerdict(n, rho, p, exact, verdict);
    }

    /// <summary>Mean and sample standard deviation (NaN mean for none, NaN deviation for fewer than two).</summary>
    public static (double Mean, double Std) MeanAndStd(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) return (double.NaN, double.NaN);
        var mean = values.Average();
        if (values.Count < 2) return (mean, double.NaN);
        var sum = values.Sum(v => (v - mean) * (v - mean));
        return (mean, Math.Sqrt(sum / (values.Count - 1)));
    }

    /// <summary>Ranks 1..n, tied values sharing the average of their ranks.</summary>
    public static double[] Ranks(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]]) end++;
            var rank = (start + end) / 2.0 + 1;
            for (var k = start; k <= end; k++) ranks[order[k]] = rank;
            start = end + 1;
        }
        return ranks;
    }

    /// <summary>Spearman's rho: Pearson's correlation of the ranks (average ranks for ties); NaN when either ranking has no spread.</summary>
    /// <exception cref="ArgumentException">Lists of different lengths.</exception>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count) throw new ArgumentException($"Spearman: {x.Count} values against {y.Count}; give one pair per run");
        return Pearson(Ranks(x), Ranks(y));
    }

    /// <summary>Pearson's correlation; NaN when either list has no spread.</summary>
    static double Pearson(double[] x, double[] y)
    {
        var mx = x.Average();
        var my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < x.Length; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxx > 0 && syy > 0 ? sxy / Math.Sqrt(sxx * syy) : double.NaN;
    }

    /// <summary>
    /// The two-sided exact permutation p-value of Spearman's rho: over all n! orderings of <paramref name="y"/>'s ranks
    /// against <paramref name="x"/>'s, the fraction whose |rho| reaches the observed |rho| (within a relative 1e-9, so
    /// that orderings equal up to rounding count). The observed ordering is one of them, so p &gt;= 1/n!.
    /// </summary>
    /// <exception cref="ArgumentException">Lists of different lengths, or more than <see cref="ExactPermutationLimit"/> values.</exception>
    public static double ExactPermutationP(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count) throw new ArgumentException($"permutation test: {x.Count} values against {y.Count}");
        if (x.Count > ExactPermutationLimit)
            throw new ArgumentException($"permutation test: {x.Count} values; the exact enumeration takes at most {ExactPermutationLimit}");
        var rx = Ranks(x);
        var ry = Ranks(y);
        var observed = Math.Abs(Pearson(rx, ry));
        var threshold = observed * (1 - 1e-9);
        var permuted = (double[])ry.Clone();
        long extreme = 0, total = 0;
        // Heap's algorithm: every ordering once, one swap apart.
        var n = permuted.Length;
        var c = new int[n];
        void Count()
        {
            total++;
            if (Math.Abs(Pearson(rx, permuted)) >= threshold) extreme++;
        }
        Count();
        for (var i = 0; i < n;)
        {
            if (c[i] < i)
            {
                var j = i % 2 == 0 ? 0 : c[i];
                (permuted[j], permuted[i]) = (permuted[i], permuted[j]);
                Count();
                c[i]++;
                i = 0;
            }
            else
            {
                c[i] = 0;
                i++;
            }
        }
        return (double)extreme / total;
    }

    /// <summary>The Monte Carlo version of <see cref="ExactPermutationP"/>: (extreme + 1) / (draws + 1) over seeded random orderings.</summary>
    public static double MonteCarloPermutationP(IReadOnlyList<double> x, IReadOnlyList<double> y, int draws, int seed)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var rx = Ranks(x);
        var ry = Ranks(y);
        var threshold = Math.Abs(Pearson(rx, ry)) * (1 - 1e-9);
        var random = new Random(seed);
        var permuted = (double[])ry.Clone();
        long extreme = 0;
        for (var d = 0; d < draws; d++)
        {
            random.Shuffle(permuted);
            if (Math.Abs(Pearson(rx, permuted)) >= threshold) extreme++;
        }
        return (extreme + 1.0) / (draws + 1.0);
    }

    /// <summary>The verdict as the report spells it.</summary>
    public static string Say(ClaimVerdict verdict) => verdict switch
    {
        ClaimVerdict.Agrees => "agrees",
        ClaimVerdict.Disagrees => "disagrees",
        ClaimVerdict.Inconclusive => "inconclusive",
        _ => "not testable",
    };

    /// <summary>A number for a report: four significant digits, "n/a" for NaN.</summary>
    internal static string Number(double value) =>
        double.IsNaN(value) ? "n/a" : double.IsInfinity(value) ? (value > 0 ? "∞" : "-∞") : Reports.PlotStyle.Number(value);
}
