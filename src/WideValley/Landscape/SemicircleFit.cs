using System.Globalization;
using System.Text.Json.Nodes;

namespace WideValley.Landscape;

/// <summary>Settings of <see cref="SemicircleFit"/>.</summary>
public sealed record SemicircleFitOptions
{
    /// <summary>
    /// C, the number of top eigenvalues dropped as outliers before fitting the bulk (e.g. the number of classes, Sagun et
    /// al. 2017; for SLQ, a mass of C/n from the top). Null (default): the iterative rule (<see cref="OutlierMargin"/>).
    /// </summary>
    public int? TopOutliers { get; init; }

    /// <summary>
    /// The iterative rule's margin delta (default 0.05): fit the semicircle by moments (l0 = mean, R = 2 std), drop what lies
    /// outside [l0 - R (1 + delta), l0 + R (1 + delta)], refit, until nothing is dropped or half the spectrum is gone.
    /// </summary>
    public double OutlierMargin { get; init; } = 0.05;


    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        if (TopOutliers is < 0) throw new ArgumentException($"SemicircleFitOptions.TopOutliers must be zero or positive, got {TopOutliers}.", nameof(TopOutliers));
        if (!(OutlierMargin >= 0) || !double.IsFinite(OutlierMargin))
            throw new ArgumentException($"SemicircleFitOptions.OutlierMargin must be zero or positive, got {OutlierMargin.ToString(CultureInfo.InvariantCulture)}.", nameof(OutlierMargin));
    }
}

/// <summary>One candidate law fitted to the bulk, with its distances to it.</summary>
/// <param name="Name">"semicircle", "gaussian" or "marchenko-pastur".</param>
/// <param name="Parameters">Its parameters by name (semicircle: l0, R; gaussian: mean, std; marchenko-pastur: scale, ratio).</param>
/// <param name="Ks">Kolmogorov-Smirnov distance sup |F_bulk - F_law| (for SLQ, against the quadrature nodes' distribution).</param>
/// <param name="W1">Wasserstein-1 distance, the integral of |F_bulk - F_law|.</param>
/// <param name="L1">SLQ: integral of |rho_slq - rho_law * kernel| (the law smoothed by the same Gaussian kernel); exact: NaN.</param>
public sealed record LawFit(string Name, IReadOnlyDictionary<string, double> Parameters, double Ks, double W1, double L1)
{
    /// <summary>The distance the candidates are ranked by: KS for exact spectra, W1 for SLQ.</summary>
    public double Distance(bool slq) => slq ? W1 : Ks;
}

/// <summary>
/// Wigner's semicircle rho(l) = 2 / (pi R^2) sqrt(R^2 - (l - l0)^2) fitted to the bulk of a spectrum, and two other laws
/// fitted to the same bulk so that the verdict is not vacuous.
/// </summary>
/// <param name="Source">"exact" or "slq".</param>
/// <param name="Center">l0.</param>
/// <param name="Radius">R.</param>
/// <param name="BulkCount">Eigenvalues in the bulk (SLQ: n times the bulk's mass, rounded).</param>
/// <param name="DroppedTop">Dropped above the bulk (SLQ: estimated count).</param>
/// <param name="DroppedBottom">Dropped below the bulk by the iterative rule.</param>
/// <param name="OutlierRule">"top C = ..." or "iterative, margin ...".</param>
/// <param name="Candidates">Semicircle (least squares on the distribution function, or least W1), Gaussian (moments), Marchenko-Pastur (moments; absent when the bulk's mean is not positive).</param>
/// <param name="KsBound">Exact: 1.63 / sqrt(bulk), Kolmogorov's 1% critical value for independent samples (lenient here: the parameters are fitted and eigenvalues repel); SLQ: NaN.</param>
public sealed record SemicircleFitResult(string Source, double Center, double Radius, long BulkCount, long DroppedTop, long DroppedBottom, string OutlierRule,
    IReadOnlyList<LawFit> Candidates, double KsBound)
{
    /// <summary>The semicircle's entry in <see cref="Candidates"/>.</summary>
    public LawFit Semicircle => Candidates[0];

    /// <summary>The semicircle's distance (KS for exact spectra, W1 for SLQ).</summary>
    public double Distance => Semicircle.Distance(Source == "slq");

    /// <summary>The candidate with the smallest distance.</summary>
    public LawFit Best => Candidates.MinBy(c => c.Distance(Source == "slq"))!;

    /// <summary>
    /// Whether the semicircle describes the bulk: it is the closest candidate and, for exact spectra, its KS distance is
    /// within <see cref="KsBound"/>; for SLQ, its W1 distance is below 5% of R (ours).
    /// </summary>
    public bool SemicircleFits => Best.Name == "semicircle" && (Source == "slq" ? Semicircle.W1 <= 0.05 * Radius : Semicircle.Ks <= KsBound);

    /// <summary>As JSON: l0, R, the bulk and outlier rule, the distance and bound, the closest law, the verdict and every candidate's parameters and distances.</summary>
    public JsonObject ToJson() => new()
    {
        ["source"] = Source,
        ["l0"] = CriticalPoints.Number(Center),
        ["R"] = CriticalPoints.Number(Radius),
        ["bulk"] = BulkCount,
        ["dropped_top"] = DroppedTop,
        ["dropped_bottom"] = DroppedBottom,
        ["outlier_rule"] = OutlierRule,
        ["distance"] = CriticalPoints.Number(Distance),
        ["distance_kind"] = Source == "slq" ? "W1" : "KS",
        ["ks_bound"] = CriticalPoints.Number(KsBound),
        ["closest"] = Best.Name,
        ["semicircle_fits"] = SemicircleFits,
        ["candidates"] = new JsonArray(Candidates.Select(c => (JsonNode?)new JsonObject
        {
            ["name"] = c.Name,
            ["parameters"] = new JsonObject(c.Parameters.Select(p => KeyValuePair.Create(p.Key, CriticalPoints.Number(p.Value)))),
            ["ks"] = CriticalPoints.Number(c.Ks),
            ["w1"] = CriticalPoints.Number(c.W1),
            ["l1"] = CriticalPoints.Number(c.L1),
        }).ToArray()),
    };

    /// <summary>One line for a person.</summary>
    public string Describe() => string.Format(CultureInfo.InvariantCulture,
        "semicircle ({0}): l0 {1:G4}, R {2:G4}, bulk {3:N0} ({4}, dropped {5:N0} top, {6:N0} bottom); {7}; {8}",
        Source, Center, Radius, BulkCount, OutlierRule, DroppedTop, DroppedBottom,
        string.Join(", ", Candidates.Select(c => Source == "slq"
            ? $"{c.Name} W1 {c.W1.ToString("G3", CultureInfo.InvariantCulture)} L1 {c.L1.ToString("G3", CultureInfo.InvariantCulture)}"
            : $"{c.Name} KS {c.Ks.ToString("G3", CultureInfo.InvariantCulture)}")),
        SemicircleFits ? "the semicircle fits" : $"the semicircle does not fit (closest: {Best.Name}" + (Source == "slq" ? ")" : $", KS bound {KsBound.ToString("G3", CultureInfo.InvariantCulture)})"));
}

/// <summary>
/// Fits Wigner's semicircle law to the bulk of a Hessian spectrum (arXiv 1706.02052 reports it "verified"; the fit and
/// the distance are ours): outliers dropped (top C, or an iterative rule), then (exact) a least-squares fit of the
/// distribution function to the bulk's (Cramer-von Mises) from the moment fit, with the KS distance to the eigenvalues; or (SLQ) a fit of
/// the distribution function to the quadrature nodes' by least W1, with W1 and the L1 distance between the smoothed
/// densities. The same bulk is fitted by a Gaussian and by Marchenko-Pastur (by moments), and the semicircle only "fits"
/// when it is the closest of the three and within the stated bound.
/// </summary>
public static class SemicircleFit
{
    /// <summary>The semicircle density 2 / (pi R^2) sqrt(R^2 - (l - l0)^2) (zero outside [l0 - R, l0 + R]).</summary>
    public static double Density(double l, double center, double radius)
    {
        var u = (l - center) / radius;
        return Math.Abs(u) >= 1 ? 0 : 2 / (Math.PI * radius) * Math.Sqrt(1 - u * u);
    }

    /// <summary>The semicircle's distribution function 1/2 + (u sqrt(1 - u^2) + asin u) / pi, u = (l - l0) / R clamped to [-1, 1].</summary>
    public static double Cdf(double l, double center, double radius)
    {
        var u = Math.Clamp((l - center) / radius, -1, 1);
        return 0.5 + (u * Math.Sqrt(1 - u * u) + Math.Asin(u)) / Math.PI;
    }

    /// <summary>Fits the bulk of an exact spectrum.</summary>
    /// <exception cref="ArgumentException">Fewer than 3 eigenvalues left in the bulk, a non-finite eigenvalue, or bad options.</exception>
    public static SemicircleFitResult FromEigenvalues(IReadOnlyList<double> eigenvalues, SemicircleFitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(eigenvalues);
        var o = options ?? new SemicircleFitOptions();
        o.Validate();
        if (eigenvalues.Any(v => !double.IsFinite(v))) throw new ArgumentException("SemicircleFit: every eigenvalue must be finite.", nameof(eigenvalues));
        var sorted = eigenvalues.Order().ToArray();
        var measure = new Measure(sorted, Enumerable.Repeat(1.0 / sorted.Length, sorted.Length).ToArray());
        var (bulk, top, bottom, rule) = Bulk(measure, sorted.Length, o);
        var n = bulk.Values.Length;
        if (n < 3) throw new ArgumentException($"SemicircleFit: the bulk holds {n} eigenvalues after dropping outliers ({rule}); at least 3 are needed.", nameof(eigenvalues));
        var (mean, std) = bulk.Moments();
        if (!(std > 0)) throw new ArgumentException("SemicircleFit: the bulk's eigenvalues are all equal; there is no width to fit.", nameof(eigenvalues));

        // Least squares between distribution functions (Cramer-von Mises: sum_i (F(x_(i)) - (i - 1/2)/n)^2) from the moment
        // fit (l0 = mean, R = 2 std): unlike a histogram, it needs no bins, and a spike at zero cannot pull the fit off the data.
        var values = bulk.Values;
        var best = NelderMead(p =>
        {
            var r = Math.Exp(p[1]);
            double sum = 0;
            for (var i = 0; i < n; i++)
            {
                var d = Cdf(values[i], p[0], r) - (i + 0.5) / n;
                sum += d * d;
            }
            return sum;
        }, [mean, Math.Log(2 * std)], [0.1 * std, 0.1]);
        var center = best[0];
        var radius = Math.Exp(best[1]);
        var candidates = Candidates(bulk, center, radius, mean, std, kernel: null);
        return new SemicircleFitResult("exact", center, radius, n, top, bottom, rule, candidates, 1.63 / Math.Sqrt(n));
    }

    /// <summary>
    /// Fits the bulk of an SLQ estimate: the quadrature nodes (weights averaged over probes) are the spectral measure;
    /// outliers are removed by mass; (l0, R) minimise W1 to the nodes' distribution; L1 compares the density smoothed
    /// with <paramref name="sigma"/> against each law smoothed by the same kernel.
    /// </summary>
    /// <param name="slq">The quadrature.</param>
    /// <param name="sigma">Kernel width of the L1 comparison (default: the <see cref="SlqResult.Density"/> default, 1% of the Ritz range).</param>
    /// <param name="options">Outlier rule.</param>
    public static SemicircleFitResult FromSlq(SlqResult slq, double? sigma = null, SemicircleFitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(slq);
        var o = options ?? new SemicircleFitOptions();
        o.Validate();
        var probes = slq.Nodes.Length;
        var pairs = slq.Nodes.SelectMany((nodes, l) => nodes.Select((theta, i) => (theta, w: slq.Weights[l][i] / probes))).OrderBy(p => p.theta).ToArray();
        var total = pairs.Sum(p => p.w);
        var measure = new Measure(pairs.Select(p => p.theta).ToArray(), pairs.Select(p => p.w / total).ToArray());
        var (bulk, top, bottom, rule) = Bulk(measure, slq.Dimension, o);
        if (bulk.Values.Length < 3) throw new ArgumentException($"SemicircleFit: the SLQ bulk holds {bulk.Values.Length} nodes after dropping outliers ({rule}); at least 3 are needed.", nameof(slq));
        var (mean, std) = bulk.Moments();
        if (!(std > 0)) throw new ArgumentException("SemicircleFit: the SLQ bulk's nodes are all equal; there is no width to fit.", nameof(slq));
        var (min, max) = slq.Range;
        var s = sigma ?? Math.Max((max - min) * 0.01, 1e-12 * Math.Max(1, Math.Abs(max)));
        var best = NelderMead(p => W1(bulk, x => Cdf(x, p[0], Math.Exp(p[1])), p[0] - Math.Exp(p[1]), p[0] + Math.Exp(p[1])),
            [mean, Math.Log(2 * std)], [0.1 * std, 0.1]);
        var center = best[0];
        var radius = Math.Exp(best[1]);
        var candidates = Candidates(bulk, center, radius, mean, std, kernel: s);
        var bulkCount = (long)Math.Round(bulk.Mass * slq.Dimension);
        return new SemicircleFitResult("slq", center, radius, bulkCount, top, bottom, rule, candidates, double.NaN);
    }

    /// <summary>A discrete measure: sorted values with weights (summing to the measure's mass).</summary>
    sealed class Measure(double[] values, double[] weights)
    {
        public double[] Values { get; } = values;
        public double[] Weights { get; } = weights;
        public double Mass => Weights.Sum();

        /// <summary>The normalised measure's mean and standard deviation.</summary>
        public (double Mean, double Std) Moments()
        {
            var m = Mass;
            double mean = 0;
            for (var i = 0; i < Values.Length; i++) mean += Weights[i] * Values[i];
            mean /= m;
            double variance = 0;
            for (var i = 0; i < Values.Length; i++) variance += Weights[i] * (Values[i] - mean) * (Values[i] - mean);
            return (mean, Math.Sqrt(variance / m));
        }

        /// <summary>The normalised measure's distribution function (right-continuous).</summary>
        public double Cdf(double x)
        {
            // Cumulative sums are built on first use.
            cumulative ??= Cumulative();
            var i = Array.BinarySearch(Values, x);
            if (i < 0) i = ~i;
            else while (i < Values.Length && Values[i] <= x) i++;
            return i == 0 ? 0 : cumulative[i - 1];
        }

        double[]? cumulative;

        double[] Cumulative()
        {
            var m = Mass;
            var c = new double[Values.Length];
            double sum = 0;
            for (var i = 0; i < Values.Length; i++) c[i] = (sum += Weights[i]) / m;
            return c;
        }

        /// <summary>The atoms from index <paramref name="from"/> up to (not including) <paramref name="to"/>.</summary>
        public Measure Between(int from, int to) => new(Values[from..to], Weights[from..to]);
    }

    /// <summary>The bulk: top C dropped (by count or mass), or the iterative moment rule on both ends.</summary>
    static (Measure Bulk, long Top, long Bottom, string Rule) Bulk(Measure all, long dimension, SemicircleFitOptions o)
    {
        if (o.TopOutliers is int c)
        {
            // Remove a mass of C/n from the top (whole values for an exact spectrum, where each weighs 1/n).
            var remove = (double)c / dimension;
            var values = all.Values.ToList();
            var weights = all.Weights.ToList();
            while (remove > 1e-12 && values.Count > 0)
            {
                var w = weights[^1];
                if (w <= remove + 1e-12)
                {
                    remove -= w;
                    values.RemoveAt(values.Count - 1);
                    weights.RemoveAt(weights.Count - 1);
                }
                else
                {
                    weights[^1] = w - remove;
                    remove = 0;
                }
            }
            return (new Measure([.. values], [.. weights]), c, 0, $"top C = {c}");
        }
        int from = 0, to = all.Values.Length;
        while (true)
        {
            var (mean, std) = all.Between(from, to).Moments();
            var reach = 2 * std * (1 + o.OutlierMargin);
            int f = from, t = to;
            while (f < t && all.Values[f] < mean - reach) f++;
            while (t > f && all.Values[t - 1] > mean + reach) t--;
            var keptMass = all.Between(f, t).Mass;
            if ((f == from && t == to) || keptMass < 0.5 * all.Mass) break;
            (from, to) = (f, t);
        }
        var below = (long)Math.Round(all.Between(0, from).Mass / all.Mass * dimension);
        var above = (long)Math.Round(all.Between(to, all.Values.Length).Mass / all.Mass * dimension);
        return (all.Between(from, to), above, below, $"iterative, margin {o.OutlierMargin.ToString("G3", CultureInfo.InvariantCulture)}");
    }

    /// <summary>The semicircle and the two rival laws, with their distances to the bulk.</summary>
    static List<LawFit> Candidates(Measure bulk, double center, double radius, double mean, double std, double? kernel)
    {
        var laws = new List<(string Name, Dictionary<string, double> Parameters, Func<double, double> Cdf, Func<double, double> Density, double Lo, double Hi)>
        {
            ("semicircle", new() { ["l0"] = center, ["R"] = radius }, x => Cdf(x, center, radius), x => Density(x, center, radius), center - radius, center + radius),
            ("gaussian", new() { ["mean"] = mean, ["std"] = std }, x => CriticalPoints.NormalCdf((x - mean) / std),
                x => Math.Exp(-0.5 * (x - mean) * (x - mean) / (std * std)) / (Math.Sqrt(2 * Math.PI) * std), mean - 6 * std, mean + 6 * std),
        };
        if (mean > 0)
        {
            var mp = new MarchenkoPastur(mean, std * std / (mean * mean));
            laws.Add(("marchenko-pastur", new() { ["scale"] = mp.Scale, ["ratio"] = mp.Ratio }, mp.Cdf, mp.Density, 0, mp.Upper));
        }
        return laws.Select(law => new LawFit(law.Name, law.Parameters, Ks(bulk, law.Cdf), W1(bulk, law.Cdf, law.Lo, law.Hi),
            kernel is double s ? SmoothedL1(bulk, law.Density, law.Lo, law.Hi, s) : double.NaN)).ToList();
    }

    /// <summary>sup |F_bulk - F| over the atoms (both one-sided limits).</summary>
    static double Ks(Measure bulk, Func<double, double> cdf)
    {
        var m = bulk.Mass;
        double before = 0, worst = 0;
        for (var i = 0; i < bulk.Values.Length; i++)
        {
            var f = cdf(bulk.Values[i]);
            var after = before + bulk.Weights[i] / m;
            worst = Math.Max(worst, Math.Max(Math.Abs(f - before), Math.Abs(after - f)));
            before = after;
        }
        return worst;
    }

    /// <summary>The integral of |F_bulk - F| over the union of both supports (trapezoid rule on 4,000 intervals).</summary>
    static double W1(Measure bulk, Func<double, double> cdf, double lawLo, double lawHi)
    {
        var lo = Math.Min(bulk.Values[0], lawLo);
        var hi = Math.Max(bulk.Values[^1], lawHi);
        if (!(hi > lo)) return 0;
        const int intervals = 4000;
        var h = (hi - lo) / intervals;
        double sum = 0, previous = Math.Abs(bulk.Cdf(lo) - cdf(lo));
        for (var i = 1; i <= intervals; i++)
        {
            var x = lo + i * h;
            var current = Math.Abs(bulk.Cdf(x) - cdf(x));
            sum += 0.5 * h * (previous + current);
            previous = current;
        }
        return sum;
    }

    /// <summary>The integral of |rho_bulk * k - rho_law * k| for a Gaussian kernel k of width sigma, on a grid of 2,000 points.</summary>
    static double SmoothedL1(Measure bulk, Func<double, double> density, double lawLo, double lawHi, double sigma)
    {
        var lo = Math.Min(bulk.Values[0], lawLo) - 5 * sigma;
        var hi = Math.Max(bulk.Values[^1], lawHi) + 5 * sigma;
        const int points = 2000;
        var h = (hi - lo) / (points - 1);
        var grid = Enumerable.Range(0, points).Select(i => lo + i * h).ToArray();
        var m = bulk.Mass;
        var norm = 1 / (Math.Sqrt(2 * Math.PI) * sigma);
        // The nodes smoothed exactly; the law's density sampled on the grid and convolved by the trapezoid rule.
        var law = grid.Select(density).ToArray();
        var span = (int)Math.Ceiling(6 * sigma / h);
        double sum = 0;
        for (var g = 0; g < points; g++)
        {
            double smoothedBulk = 0;
            for (var i = 0; i < bulk.Values.Length; i++)
            {
                var z = (grid[g] - bulk.Values[i]) / sigma;
                smoothedBulk += bulk.Weights[i] / m * Math.Exp(-0.5 * z * z);
            }
            smoothedBulk *= norm;
            double smoothedLaw = 0;
            for (var j = Math.Max(0, g - span); j <= Math.Min(points - 1, g + span); j++)
            {
                var z = (grid[g] - grid[j]) / sigma;
                smoothedLaw += law[j] * Math.Exp(-0.5 * z * z);
            }
            smoothedLaw *= norm * h;
            sum += Math.Abs(smoothedBulk - smoothedLaw) * h;
        }
        return sum;
    }

    /// <summary>Marchenko-Pastur with scale s (the mean) and ratio q (variance s^2 q), with its atom 1 - 1/q at 0 when q &gt; 1.</summary>
    sealed class MarchenkoPastur
    {
        readonly double[] grid;
        readonly double[] cdf;

        public MarchenkoPastur(double scale, double ratio)
        {
            Scale = scale;
            Ratio = ratio;
            Lower = scale * Math.Pow(1 - Math.Sqrt(ratio), 2);
            Upper = scale * Math.Pow(1 + Math.Sqrt(ratio), 2);
            Atom = ratio > 1 ? 1 - 1 / ratio : 0;
            // The continuous part's CDF tabulated on x = a + (b - a)(1 - cos phi)/2, which follows the square-root edges.
            const int points = 4001;
            grid = new double[points];
            cdf = new double[points];
            for (var i = 0; i < points; i++) grid[i] = Lower + (Upper - Lower) * (1 - Math.Cos(Math.PI * i / (points - 1))) / 2;
            for (var i = 1; i < points; i++)
                cdf[i] = cdf[i - 1] + 0.5 * (grid[i] - grid[i - 1]) * (Density(grid[i - 1]) + Density(grid[i]));
            var continuous = cdf[^1];
            for (var i = 0; i < points; i++) cdf[i] = Atom + (1 - Atom) * cdf[i] / continuous;
        }

        public double Scale { get; }
        public double Ratio { get; }
        public double Lower { get; }
        public double Upper { get; }
        public double Atom { get; }

        /// <summary>The continuous part's density (the atom excluded).</summary>
        public double Density(double x) =>
            x <= Lower || x >= Upper || x <= 0 ? 0 : Math.Sqrt((Upper - x) * (x - Lower)) / (2 * Math.PI * Scale * Ratio * x);

        public double Cdf(double x)
        {
            if (x < 0) return 0;
            if (x <= Lower) return Atom;
            if (x >= Upper) return 1;
            var i = Array.BinarySearch(grid, x);
            if (i >= 0) return cdf[i];
            i = ~i;
            var t = (x - grid[i - 1]) / (grid[i] - grid[i - 1]);
            return cdf[i - 1] + t * (cdf[i] - cdf[i - 1]);
        }
    }

    /// <summary>Nelder-Mead minimisation in two dimensions from <paramref name="start"/> with initial steps <paramref name="step"/>.</summary>
    static double[] NelderMead(Func<double[], double> f, double[] start, double[] step, int iterations = 400)
    {
        var d = start.Length;
        var simplex = new double[d + 1][];
        var values = new double[d + 1];
        simplex[0] = (double[])start.Clone();
        for (var i = 0; i < d; i++)
        {
            simplex[i + 1] = (double[])start.Clone();
            simplex[i + 1][i] += step[i] == 0 ? 1e-3 : step[i];
        }
        for (var i = 0; i <= d; i++) values[i] = f(simplex[i]);
        for (var it = 0; it < iterations; it++)
        {
            var order = Enumerable.Range(0, d + 1).OrderBy(i => values[i]).ToArray();
            simplex = order.Select(i => simplex[i]).ToArray();
            values = order.Select(i => values[i]).ToArray();
            if (Math.Abs(values[d] - values[0]) <= 1e-12 * (Math.Abs(values[0]) + 1e-300)) break;
            var centroid = new double[d];
            for (var i = 0; i < d; i++)
                for (var k = 0; k < d; k++) centroid[k] += simplex[i][k] / d;
            double[] Toward(double t) => centroid.Select((c, k) => c + t * (simplex[d][k] - c)).ToArray();
            var reflected = Toward(-1);
            var fr = f(reflected);
            if (fr < values[0])
            {
                var expanded = Toward(-2);
                var fe = f(expanded);
                (simplex[d], values[d]) = fe < fr ? (expanded, fe) : (reflected, fr);
            }
            else if (fr < values[d - 1])
            {
                (simplex[d], values[d]) = (reflected, fr);
            }
            else
            {
                var contracted = Toward(fr < values[d] ? -0.5 : 0.5);
                var fc = f(contracted);
                if (fc < Math.Min(fr, values[d])) (simplex[d], values[d]) = (contracted, fc);
                else
                    for (var i = 1; i <= d; i++)
                    {
                        simplex[i] = simplex[i].Select((x, k) => simplex[0][k] + 0.5 * (x - simplex[0][k])).ToArray();
                        values[i] = f(simplex[i]);
                    }
            }
        }
        var bestIndex = Array.IndexOf(values, values.Min());
        return simplex[bestIndex];
    }
}
