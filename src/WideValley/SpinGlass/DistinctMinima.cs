using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>The clusters of end points found by <see cref="DistinctMinima.Cluster"/>.</summary>
/// <param name="Threshold">The overlap above which two points count as one minimum.</param>
/// <param name="ClusterOf">For each point, its cluster (0-based, in order of creation).</param>
/// <param name="Representatives">For each cluster, the point that founded it (the lowest-energy member when energies were given).</param>
/// <param name="Sizes">For each cluster, its number of points.</param>
public sealed record DistinctMinimaResult(double Threshold, IReadOnlyList<int> ClusterOf, IReadOnlyList<int> Representatives, IReadOnlyList<int> Sizes)
{
    /// <summary>The number of distinct minima (clusters).</summary>
    public int Count => Representatives.Count;

    /// <summary>The size of the largest cluster.</summary>
    public int LargestSize => Sizes.Count == 0 ? 0 : Sizes.Max();
}

/// <summary>
/// Counts distinct end points by overlap q = ⟨w, w'⟩/N (1 for the same point on the sphere |w|² = N): greedy
/// clustering (ours): points are taken in order of ascending energy (or in order when no energies are given); each
/// joins the first existing cluster whose representative it overlaps by at least the threshold, or founds a new
/// cluster. With a threshold near 1 (default 0.99) two end points count as one minimum only if they are within
/// |w − w'|² = 2N(1 − q) ≤ 0.02·N of each other.
/// </summary>
/// <remarks>
/// For even p, H(−w) = H(w) without a field: w and −w are different points with the same energy and count as two
/// minima here, as they are two points on the sphere (set <c>identifyMirrorImages</c> to merge them).
/// </remarks>
public static class DistinctMinima
{
    /// <summary>The default overlap threshold, 0.99.</summary>
    public const double DefaultThreshold = 0.99;

    /// <summary>Clusters the rows of <paramref name="points"/> [K, N].</summary>
    /// <param name="points">End points [K, N] (on the sphere).</param>
    /// <param name="threshold">Overlap in (0, 1] at or above which two points are one minimum.</param>
    /// <param name="energies">Optional energies (any scale), one per point: representatives are then the lowest.</param>
    /// <param name="identifyMirrorImages">Compare |q| instead of q, so w and −w are one cluster.</param>
    /// <exception cref="ArgumentOutOfRangeException">A threshold outside (0, 1].</exception>
    /// <exception cref="ArgumentException">Points that are not [K, N] with K ≥ 1 finite rows, or energies of another length.</exception>
    public static DistinctMinimaResult Cluster(Tensor points, double threshold = DefaultThreshold, IReadOnlyList<double>? energies = null, bool identifyMirrorImages = false)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (!(threshold > 0 && threshold <= 1))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, $"DistinctMinima.Cluster: the overlap threshold must be in (0, 1]; got {threshold}.");
        if (points.dim() != 2 || points.shape[0] < 1 || points.shape[1] < 1)
            throw new ArgumentException($"DistinctMinima.Cluster: points must be [K, N] with K ≥ 1; got shape [{string.Join(", ", points.shape)}].", nameof(points));
        var k = (int)points.shape[0];
        if (energies is not null && energies.Count != k)
            throw new ArgumentException($"DistinctMinima.Cluster: {energies.Count} energies for {k} points; one per point expected.", nameof(energies));
        using var overlapTensor = Sphere.Overlaps(points, points);
        var q = overlapTensor.data<double>().ToArray();
        if (q.Any(v => !double.IsFinite(v)))
            throw new ArgumentException("DistinctMinima.Cluster: the points have non-finite entries.", nameof(points));
        var order = Enumerable.Range(0, k).ToArray();
        if (energies is not null) order = [.. order.OrderBy(i => energies[i]).ThenBy(i => i)];
        var clusterOf = new int[k];
        var representatives = new List<int>();
        var sizes = new List<int>();
        foreach (var i in order)
        {
            var found = -1;
            for (var c = 0; c < representatives.Count && found < 0; c++)
            {
                var overlap = q[i * k + representatives[c]];
                if ((identifyMirrorImages ? Math.Abs(overlap) : overlap) >= threshold) found = c;
            }
            if (found < 0)
            {
                found = representatives.Count;
                representatives.Add(i);
                sizes.Add(0);
            }
            clusterOf[i] = found;
            sizes[found]++;
        }
        return new DistinctMinimaResult(threshold, clusterOf, representatives, sizes);
    }
}
