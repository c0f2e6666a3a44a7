namespace WideValley.Landscape;

/// <summary>How a layer's eigenvalue density is compared with the full Hessian's (<see cref="SpectralSimilarity"/>).</summary>
public enum SimilarityMeasure
{
    /// <summary>
    /// The authors' code (<c>match_distros.py</c> of github yashkhasbage25/HTR) exactly: each density's VALUE array is
    /// transformed (zeros replaced by the smallest positive value, log, min-max scaled, divided by its sum) and the two
    /// arrays are compared by <c>scipy.stats.wasserstein_distance(u_values, v_values)</c>, i.e. as two samples of
    /// numbers. Oddity: where on the eigenvalue axis the mass lies never enters; two densities with the same histogram
    /// of values (e.g. one the mirror image or a shift of the other) are at distance 0.
    /// </summary>
    AuthorsCode,
    /// <summary>Wasserstein-1 distance between the two densities as distributions of eigenvalues, on a common eigenvalue grid (ours; the default).</summary>
    W1OnGrid,
    /// <summary>Kullback-Leibler divergence KL(layer || full) between the two densities on a common eigenvalue grid (ours).</summary>
    KLOnGrid,
}

/// <summary>
/// Distances between two eigenvalue densities: the authors' measure as coded, and Wasserstein-1 and KL between the
/// densities on one eigenvalue grid.
/// </summary>
public static class SpectralSimilarity
{
    /// <summary>
    /// Relative floor applied to both densities before <see cref="KullbackLeibler"/>: values below this fraction of a
    /// density's maximum are raised to it and the density is renormalised. It keeps KL finite where the full density
    /// vanishes but the layer's does not (the truncated kernels make exact zeros common), at the price of a bias of the
    /// order of the floor's mass; ours.
    /// </summary>
    public const double KLFloor = 1e-10;

    /// <summary>Grid points of the common grid <see cref="Compare"/> builds (ours).</summary>
    public const int CommonGridPoints = 2048;

    /// <summary>
    /// The distance of <paramref name="layer"/>'s density from <paramref name="full"/>'s under <paramref name="measure"/>.
    /// <see cref="SimilarityMeasure.AuthorsCode"/> uses each density's own 1024 values (<see cref="LanczosDensityResult.Density"/>);
    /// the grid measures evaluate both densities on <see cref="CommonGridPoints"/> points spanning both bounds.
    /// </summary>
    public static double Compare(LanczosDensityResult full, LanczosDensityResult layer, SimilarityMeasure measure)
    {
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(layer);
        if (measure == SimilarityMeasure.AuthorsCode)
            return AuthorsCode(full.Density().Density, layer.Density().Density);
        var grid = CommonGrid(full, layer, CommonGridPoints);
        var p = layer.Evaluate(grid);
        var q = full.Evaluate(grid);
        return measure switch
        {
            SimilarityMeasure.W1OnGrid => Wasserstein1OnGrid(grid, p, q),
            SimilarityMeasure.KLOnGrid => KullbackLeibler(grid, p, q),
            _ => throw new ArgumentOutOfRangeException(nameof(measure), measure, "SpectralSimilarity: unknown measure."),
        };
    }

    /// <summary><paramref name="points"/> equally spaced eigenvalues from the smaller lower bound to the larger upper bound of the two densities.</summary>
    public static double[] CommonGrid(LanczosDensityResult a, LanczosDensityResult b, int points)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (points < 2) throw new ArgumentException($"SpectralSimilarity.CommonGrid: at least 2 points; got {points}.", nameof(points));
        var lo = Math.Min(a.LowerBound, b.LowerBound);
        var hi = Math.Max(a.UpperBound, b.UpperBound);
        return Enumerable.Range(0, points).Select(i => lo + (hi - lo) * i / (points - 1)).ToArray();
    }

    /// <summary>
    /// The authors' transform of a density array (<c>density_transform</c> in match_distros.py): eps_i = min of the
    /// positive entries where p_i == 0, else 0; q = log(p + eps); q = (q - min q) / (max q - min q); q = q / sum q.
    /// A constant array gives 0/0 = NaN everywhere, as numpy does.
    /// </summary>
    /// <exception cref="ArgumentException">Empty, negative or non-finite entries, or no positive entry (numpy's min of an empty array raises too).</exception>
    public static double[] AuthorsTransform(IReadOnlyList<double> density)
    {
        ArgumentNullException.ThrowIfNull(density);
        if (density.Count == 0) throw new ArgumentException("SpectralSimilarity.AuthorsTransform: the density array is empty.", nameof(density));
        for (var i = 0; i < density.Count; i++)
            if (!(density[i] >= 0) || !double.IsFinite(density[i]))
                throw new ArgumentException($"SpectralSimilarity.AuthorsTransform: entry {i} is {density[i]}; a density is finite and non-negative.", nameof(density));
        var positive = density.Where(x => x > 0).ToArray();
        if (positive.Length == 0) throw new ArgumentException("SpectralSimilarity.AuthorsTransform: the density is zero everywhere (the authors' code fails on it too).", nameof(density));
        var eps = positive.Min();
        var q = density.Select(x => Math.Log(x + (x == 0 ? eps : 0))).ToArray();
        var min = q.Min();
        var max = q.Max();
        for (var i = 0; i < q.Length; i++) q[i] = (q[i] - min) / (max - min);
        var sum = q.Sum();
        for (var i = 0; i < q.Length; i++) q[i] /= sum;
        return q;
    }

    /// <summary>
    /// The authors' similarity as coded: <c>scipy.stats.wasserstein_distance(T(full), T(layer))</c> with T =
    /// <see cref="AuthorsTransform"/>: the two transformed arrays are treated as SAMPLES of numbers (equal weights), and
    /// their 1-D Wasserstein distance is taken. See <see cref="SimilarityMeasure.AuthorsCode"/> for why this ignores
    /// where the eigenvalues are.
    /// </summary>
    public static double AuthorsCode(IReadOnlyList<double> fullDensity, IReadOnlyList<double> layerDensity) =>
        WassersteinBetweenSamples(AuthorsTransform(fullDensity), AuthorsTransform(layerDensity));

    /// <summary>
    /// <c>scipy.stats.wasserstein_distance(u_values, v_values)</c> with equal weights: the integral of |F_u - F_v| over the
    /// merged sorted values, with F the empirical CDFs (scipy's <c>_cdf_distance(1, ...)</c>: searchsorted 'right' on the
    /// sorted samples at every merged value but the last, times the gaps between merged values).
    /// </summary>
    /// <exception cref="ArgumentException">An empty sample or a NaN.</exception>
    public static double WassersteinBetweenSamples(IReadOnlyList<double> u, IReadOnlyList<double> v)
    {
        ArgumentNullException.ThrowIfNull(u);
        ArgumentNullException.ThrowIfNull(v);
        if (u.Count == 0 || v.Count == 0) throw new ArgumentException("SpectralSimilarity.WassersteinBetweenSamples: both samples need at least one value.");
        if (u.Any(double.IsNaN) || v.Any(double.IsNaN)) return double.NaN;
        var us = u.OrderBy(x => x).ToArray();
        var vs = v.OrderBy(x => x).ToArray();
        var all = us.Concat(vs).OrderBy(x => x).ToArray();
        double total = 0;
        for (var k = 0; k < all.Length - 1; k++)
        {
            var delta = all[k + 1] - all[k];
            if (delta == 0) continue;
            var fu = (double)UpperBound(us, all[k]) / us.Length;
            var fv = (double)UpperBound(vs, all[k]) / vs.Length;
            total += Math.Abs(fu - fv) * delta;
        }
        return total;
    }

    /// <summary>Number of entries of the sorted <paramref name="sorted"/> that are &lt;= x (numpy's searchsorted side='right').</summary>
    private static int UpperBound(double[] sorted, double x)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (sorted[mid] <= x) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>
    /// Wasserstein-1 distance between two densities given on one ascending grid: each is normalised to unit mass
    /// (trapezoid rule), its CDF accumulated by the trapezoid rule, and W1 = integral of |F_p - F_q| (trapezoid).
    /// </summary>
    /// <exception cref="ArgumentException">Mismatched lengths, a grid that is not ascending, negative or non-finite values, or zero mass.</exception>
    public static double Wasserstein1OnGrid(IReadOnlyList<double> grid, IReadOnlyList<double> p, IReadOnlyList<double> q)
    {
        var fp = Cdf(grid, p, "p");
        var fq = Cdf(grid, q, "q");
        double w = 0;
        for (var i = 1; i < grid.Count; i++)
            w += 0.5 * (grid[i] - grid[i - 1]) * (Math.Abs(fp[i - 1] - fq[i - 1]) + Math.Abs(fp[i] - fq[i]));
        return w;
    }

    /// <summary>
    /// KL(p || q) = integral of p log(p / q) for two densities on one ascending grid (trapezoid rule), each first floored
    /// at <see cref="KLFloor"/> times its maximum and renormalised to unit mass (so zeros, common with truncated
    /// kernels, give a large finite value instead of infinity). <see cref="Compare"/> passes p = the layer's density
    /// and q = the full Hessian's.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Wasserstein1OnGrid"/>.</exception>
    public static double KullbackLeibler(IReadOnlyList<double> grid, IReadOnlyList<double> p, IReadOnlyList<double> q)
    {
        var pn = Floored(grid, p, "p");
        var qn = Floored(grid, q, "q");
        double kl = 0;
        for (var i = 1; i < grid.Count; i++)
        {
            var a = pn[i - 1] * Math.Log(pn[i - 1] / qn[i - 1]);
            var b = pn[i] * Math.Log(pn[i] / qn[i]);
            kl += 0.5 * (grid[i] - grid[i - 1]) * (a + b);
        }
        return kl;
    }

    private static double[] Floored(IReadOnlyList<double> grid, IReadOnlyList<double> density, string name)
    {
        Check(grid, density, name);
        var max = density.Max();
        var floor = KLFloor * max;
        var floored = density.Select(x => Math.Max(x, floor)).ToArray();
        var mass = Trapezoid(grid, floored);
        return floored.Select(x => x / mass).ToArray();
    }

    private static double[] Cdf(IReadOnlyList<double> grid, IReadOnlyList<double> density, string name)
    {
        Check(grid, density, name);
        var cdf = new double[grid.Count];
        for (var i = 1; i < grid.Count; i++)
            cdf[i] = cdf[i - 1] + 0.5 * (grid[i] - grid[i - 1]) * (density[i - 1] + density[i]);
        var mass = cdf[^1];
        for (var i = 0; i < cdf.Length; i++) cdf[i] /= mass;
        return cdf;
    }

    private static double Trapezoid(IReadOnlyList<double> grid, IReadOnlyList<double> y)
    {
        double sum = 0;
        for (var i = 1; i < grid.Count; i++) sum += 0.5 * (grid[i] - grid[i - 1]) * (y[i - 1] + y[i]);
        return sum;
    }

    private static void Check(IReadOnlyList<double> grid, IReadOnlyList<double> density, string name)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentNullException.ThrowIfNull(density, name);
        if (grid.Count < 2) throw new ArgumentException($"SpectralSimilarity: the grid needs at least 2 points; got {grid.Count}.", nameof(grid));
        if (density.Count != grid.Count)
            throw new ArgumentException($"SpectralSimilarity: density {name} has {density.Count} values for a grid of {grid.Count} points.", name);
        for (var i = 1; i < grid.Count; i++)
            if (!(grid[i] > grid[i - 1]))
                throw new ArgumentException($"SpectralSimilarity: the grid must be strictly ascending; point {i} ({grid[i]}) follows {grid[i - 1]}.", nameof(grid));
        for (var i = 0; i < density.Count; i++)
            if (!(density[i] >= 0) || !double.IsFinite(density[i]))
                throw new ArgumentException($"SpectralSimilarity: density {name} has {density[i]} at point {i}; densities are finite and non-negative.", name);
        if (!(Trapezoid(grid, density) > 0))
            throw new ArgumentException($"SpectralSimilarity: density {name} has zero mass on the grid.", name);
    }
}
