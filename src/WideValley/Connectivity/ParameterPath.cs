using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>Which entries of the parameter vectors a normalised length counts.</summary>
public enum LengthVersion
{
    /// <summary>
    /// Only the entries where <see cref="IConnectivityProblem.WeightMask"/> is 1 (the authors' <c>SpringNorm</c>, which
    /// sums over weights and leaves out biases); the same as <see cref="AllParameters"/> when the mask is null.
    /// </summary>
    WeightsOnly,
    /// <summary>Every entry of the parameter vectors, biases included.</summary>
    AllParameters,
}

/// <summary>A chain's normalised length in both versions (Freeman &amp; Bruna's normalised geodesic length).</summary>
/// <param name="WeightsOnly">Σ‖w_{i+1} − w_i‖ / ‖w_last − w_first‖ over the weight entries (the authors' SpringNorm).</param>
/// <param name="AllParameters">The same ratio over every entry.</param>
public readonly record struct NormalizedLengths(double WeightsOnly, double AllParameters)
{
    /// <summary>The value of <paramref name="version"/>.</summary>
    public double Of(LengthVersion version) => version == LengthVersion.WeightsOnly ? WeightsOnly : AllParameters;
}

/// <summary>
/// Geometry of piecewise-linear paths between flat parameter vectors: the interpolation every path search uses (for
/// the grid maxima and the inserted beads alike) and the normalised length of a chain, computed in float64.
/// </summary>
public static class ParameterPath
{
    /// <summary>
    /// interp(a, b, t) = (1 − t)·a + t·b, a new tensor of the dtype and device of <paramref name="a"/>. t = 0 gives a,
    /// t = 1 gives b, t = ½ gives ½(a + b); computed as written ((1 − t)·a, then + t·b), so the grid maxima and the
    /// inserted beads see exactly the same points.
    /// </summary>
    /// <exception cref="ArgumentException">The two points differ in shape, or t is not finite.</exception>
    public static Tensor Interpolate(Tensor a, Tensor b, double t)
    {
        ArgumentNullException.ThrowIfNull(a);
        var destination = empty_like(a);
        try
        {
            return InterpolateInto(destination, a, b, t);
        }
        catch
        {
            destination.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes interp(a, b, t) = (1 − t)·a + t·b into <paramref name="destination"/> (same shape) and returns it: the
    /// same arithmetic as <see cref="Interpolate"/>, without allocating (for scanning many t along one segment).
    /// </summary>
    /// <exception cref="ArgumentException">The tensors differ in shape, or t is not finite.</exception>
    public static Tensor InterpolateInto(Tensor destination, Tensor a, Tensor b, double t)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!double.IsFinite(t)) throw new ArgumentException($"the interpolation parameter t must be finite, got {t}", nameof(t));
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"cannot interpolate between points of shapes [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}]", nameof(b));
        if (!destination.shape.SequenceEqual(a.shape))
            throw new ArgumentException($"the destination has shape [{string.Join(", ", destination.shape)}], the points [{string.Join(", ", a.shape)}]", nameof(destination));
        return destination.copy_(a).Scale_(1 - t).AddScaled_(b, t);
    }

    /// <summary>
    /// Σ_i ‖w_{i+1} − w_i‖₂ / ‖w_last − w_first‖₂ over the chain, in float64, for the entries <paramref name="version"/>
    /// counts (<paramref name="weightMask"/>: 1 for a weight, 0 otherwise; null when every entry is a weight).
    /// 1 for a straight chain, more for a bent one.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// Fewer than two points, points of different lengths, a mask of another length, or endpoints that coincide on
    /// the counted entries (the ratio is undefined).
    /// </exception>
    public static double NormalizedLength(IReadOnlyList<Tensor> chain, Tensor? weightMask, LengthVersion version)
    {
        var (sum, direct) = Lengths(chain, version == LengthVersion.WeightsOnly ? weightMask : null, version);
        return sum / direct;
    }

    /// <summary>Both normalised lengths of a chain (see <see cref="NormalizedLength"/>).</summary>
    public static NormalizedLengths NormalizedLengths(IReadOnlyList<Tensor> chain, Tensor? weightMask) =>
        new(NormalizedLength(chain, weightMask, LengthVersion.WeightsOnly),
            NormalizedLength(chain, weightMask, LengthVersion.AllParameters));

    /// <summary>Σ_i ‖w_{i+1} − w_i‖₂ over every entry, in float64 (the chain's length, not normalised).</summary>
    public static double Length(IReadOnlyList<Tensor> chain)
    {
        ValidateChain(chain, null);
        double sum = 0;
        for (var i = 0; i + 1 < chain.Count; i++) sum += Distance(chain[i], chain[i + 1], null);
        return sum;
    }

    /// <summary>‖b − a‖₂ in float64 over the entries where <paramref name="mask"/> is nonzero (all when null).</summary>
    public static double Distance(Tensor a, Tensor b, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var difference = b.to(ScalarType.Float64).sub(a.to(ScalarType.Float64));
        if (mask is not null) difference = difference.mul_(mask.to(ScalarType.Float64, difference.device));
        return difference.norm().item<double>();
    }

    static (double Sum, double Direct) Lengths(IReadOnlyList<Tensor> chain, Tensor? mask, LengthVersion version)
    {
        ValidateChain(chain, mask);
        var direct = Distance(chain[0], chain[^1], mask);
        if (!(direct > 0))
            throw new ArgumentException(
                $"the chain's endpoints coincide{(mask is null ? "" : " on the weight entries")} (‖w_last − w_first‖ = {direct}), " +
                $"so its {(version == LengthVersion.WeightsOnly ? "weights-only" : "all-parameters")} normalised length is undefined", nameof(chain));
        double sum = 0;
        for (var i = 0; i + 1 < chain.Count; i++) sum += Distance(chain[i], chain[i + 1], mask);
        return (sum, direct);
    }

    static void ValidateChain(IReadOnlyList<Tensor> chain, Tensor? mask)
    {
        ArgumentNullException.ThrowIfNull(chain);
        if (chain.Count < 2) throw new ArgumentException($"a chain needs at least two points, got {chain.Count}", nameof(chain));
        var n = chain[0].numel();
        for (var i = 1; i < chain.Count; i++)
            if (chain[i].numel() != n)
                throw new ArgumentException($"chain point {i} has {chain[i].numel()} entries, point 0 has {n}", nameof(chain));
        if (mask is not null && mask.numel() != n)
            throw new ArgumentException($"the weight mask has {mask.numel()} entries, the chain's points {n}", nameof(mask));
    }
}
