using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Settings of <see cref="Hutchinson"/>.</summary>
public sealed record HutchinsonOptions
{
    /// <summary>Operator applications to spend (Hutchinson: one per probe; Hutch++: split in three). Default 100.</summary>
    public int Probes { get; init; } = 100;

    /// <summary>Seed of the probes. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>How per-layer traces group the parameters. Default: per module (weight and bias of a layer together).</summary>
    public LayerGrouping Grouping { get; init; } = LayerGrouping.PerModule;

    /// <summary>
    /// Hutch++ (Meyer, Musco, Musco and Woodruff 2021): a third of the budget sketches the dominant range Q of H, whose
    /// contribution is computed exactly; the rest estimates the remainder (I - QQ^T) H with Hutchinson probes. Much
    /// lower variance when a few eigenvalues dominate, as they do for trained networks. Default false.
    /// </summary>
    public bool HutchPlusPlus { get; init; }

    /// <summary>Told after every operator application, on the calling thread. Default none.</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Checked before every operator application; a cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>A trace estimate of one block (or of the whole operator).</summary>
/// <param name="Name">Block name ("total" for the whole).</param>
/// <param name="Offset">First index of the block in the flat vector.</param>
/// <param name="Count">Block size (number of parameters).</param>
/// <param name="Trace">Estimated trace of the diagonal block.</param>
/// <param name="StandardError">Standard error of the estimate (sample standard deviation over probes / sqrt(probes)).</param>
public sealed record TraceEstimate(string Name, long Offset, long Count, double Trace, double StandardError);

/// <summary>Trace of the whole operator and of each diagonal block, all from the same probes.</summary>
/// <param name="Total">The whole trace; its value is the sum of the block values.</param>
/// <param name="Layers">Per-layer (diagonal block) traces.</param>
/// <param name="Probes">Random probes used for the stochastic part.</param>
/// <param name="OperatorApplications">Operator (HVP) applications spent.</param>
/// <param name="Method">"hutchinson" or "hutch++".</param>
public sealed record HutchinsonResult(TraceEstimate Total, IReadOnlyList<TraceEstimate> Layers, int Probes, long OperatorApplications, string Method);

/// <summary>
/// Trace of a symmetric operator by Hutchinson's estimator, tr H = E[z^T H z] with Rademacher z, for the whole network
/// and per layer. Per-layer traces are tr(H_bb) = E[z_b^T (H z)_b], taken from the same products, so for every probe
/// the layers' terms add up to the whole and so do the estimates.
/// </summary>
public static class Hutchinson
{
    /// <summary>Trace of a curvature operator (Hessian, Gauss-Newton, Fisher, dense matrix), whole and per layer (grouped as the options say).</summary>
    /// <param name="op">The symmetric operator.</param>
    /// <param name="options">Probes, seed, grouping, Hutch++.</param>
    public static HutchinsonResult Run(ICurvatureOperator op, HutchinsonOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(op);
        var o = options ?? new HutchinsonOptions();
        var groups = op.Layout.Groups(o.Grouping);
        return Run(op.AsFunction(), op.Dimension, groups, o, op.Dtype, op.Device);
    }

    /// <summary>
    /// Trace of the operator <paramref name="apply"/> on vectors of length <paramref name="n"/>, and of the diagonal
    /// blocks <paramref name="blocks"/> (name, offset, count; consecutive, covering 0..n; null: one block).
    /// </summary>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled.</exception>
    public static HutchinsonResult Run(Func<Tensor, Tensor> apply, long n, IReadOnlyList<(string Name, long Offset, long Count)>? blocks,
        HutchinsonOptions? options = null, ScalarType operatorType = ScalarType.Float64, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(apply);
        var o = options ?? new HutchinsonOptions();
        if (n < 1) throw new ArgumentException($"Hutchinson: the operator dimension must be positive; got n = {n}.", nameof(n));
        var groups = blocks ?? [("all", 0, n)];
        long covered = 0;
        foreach (var (name, offset, count) in groups)
        {
            if (offset != covered || count < 1)
                throw new ArgumentException($"Hutchinson: block '{name}' (offset {offset}, count {count}) must start at {covered} and be non-empty; blocks must tile 0..{n}.", nameof(blocks));
            covered += count;
        }
        if (covered != n) throw new ArgumentException($"Hutchinson: the blocks cover {covered} of the {n} coordinates; they must cover all.", nameof(blocks));
        var dev = device ?? CPU;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        long done = 0;
        var method = o.HutchPlusPlus ? "hutch++" : "hutchinson";
        var inner = apply;
        apply = v =>
        {
            o.Cancellation.ThrowIfCancellationRequested();
            var r = inner(v);
            o.Progress?.Report(new CurvatureProgress(method, ++done, o.Probes, watch.Elapsed));
            return r;
        };
        if (o.HutchPlusPlus)
        {
            if (o.Probes < 3) throw new ArgumentException($"Hutchinson: Hutch++ needs at least 3 operator applications; got Probes = {o.Probes}.", nameof(options));
            return HutchPlusPlus(apply, n, groups, o, operatorType, dev);
        }
        if (o.Probes < 1) throw new ArgumentException($"Hutchinson: Probes must be positive; got {o.Probes}.", nameof(options));

        var perBlock = groups.Select(_ => new double[o.Probes]).ToArray();
        using var generator = new Generator((ulong)o.Seed);
        for (var l = 0; l < o.Probes; l++)
        {
            using var scope = NewDisposeScope();
            var z = RandomVectors.Draw(generator, n, ProbeDistribution.Rademacher, dev);
            var hz = ApplyFloat64(apply, z, operatorType, dev);
            var products = z.mul(hz);
            for (var b = 0; b < groups.Count; b++)
                perBlock[b][l] = products.narrow(0, groups[b].Offset, groups[b].Count).sum().ToDouble();
        }
        return Summarise(groups, perBlock, new double[groups.Count], o.Probes, o.Probes, "hutchinson");
    }

    private static HutchinsonResult HutchPlusPlus(Func<Tensor, Tensor> apply, long n, IReadOnlyList<(string Name, long Offset, long Count)> groups,
        HutchinsonOptions o, ScalarType operatorType, Device dev)
    {
        // Budget m: k = m / 3 products for the sketch H S, k for H Q, the rest for the residual probes.
        var k = (int)Math.Min(o.Probes / 3, n);
        var residualProbes = o.Probes - 2 * k;
        using var generator = new Generator((ulong)o.Seed);
        using var scope = NewDisposeScope();
        var sketch = zeros(n, k, ScalarType.Float64, dev);
        for (var j = 0; j < k; j++)
        {
            using var inner = NewDisposeScope();
            var s = RandomVectors.Draw(generator, n, ProbeDistribution.Rademacher, dev);
            sketch[.., j].copy_(ApplyFloat64(apply, s, operatorType, dev));
        }
        var (q, _) = linalg.qr(sketch);
        var hq = zeros(n, k, ScalarType.Float64, dev);
        for (var j = 0; j < k; j++)
        {
            using var inner = NewDisposeScope();
            hq[.., j].copy_(ApplyFloat64(apply, q[.., j].contiguous(), operatorType, dev));
        }
        // Exact part per block: tr_b(Q Q^T H) = sum over rows i in b of (Q o HQ)_i, since H is symmetric.
        var exactRows = q.mul(hq).sum(1);
        var exact = groups.Select(g => exactRows.narrow(0, g.Offset, g.Count).sum().ToDouble()).ToArray();
        // Remainder tr_b((I - Q Q^T) H) = E[z_b^T ((I - Q Q^T) H z)_b], estimated with fresh probes.
        var perBlock = groups.Select(_ => new double[residualProbes]).ToArray();
        for (var l = 0; l < residualProbes; l++)
        {
            using var inner = NewDisposeScope();
            var z = RandomVectors.Draw(generator, n, ProbeDistribution.Rademacher, dev);
            var hz = ApplyFloat64(apply, z, operatorType, dev);
            hz.sub_(q.mv(q.T.mv(hz)));
            var products = z.mul(hz);
            for (var b = 0; b < groups.Count; b++)
                perBlock[b][l] = products.narrow(0, groups[b].Offset, groups[b].Count).sum().ToDouble();
        }
        return Summarise(groups, perBlock, exact, residualProbes, 2L * k + residualProbes, "hutch++");
    }

    private static HutchinsonResult Summarise(IReadOnlyList<(string Name, long Offset, long Count)> groups, double[][] perBlock,
        double[] exact, int probes, long applications, string method)
    {
        var layers = new List<TraceEstimate>();
        var totals = new double[probes];
        for (var b = 0; b < groups.Count; b++)
        {
            var (mean, error) = probes > 0 ? SlqResult.MeanAndError(perBlock[b]) : (0.0, double.NaN);
            layers.Add(new TraceEstimate(groups[b].Name, groups[b].Offset, groups[b].Count, exact[b] + mean, error));
            for (var l = 0; l < probes; l++) totals[l] += perBlock[b][l];
        }
        var (_, totalError) = probes > 0 ? SlqResult.MeanAndError(totals) : (0.0, double.NaN);
        // The total is the sum of the block estimates by construction (same probes), not a separate average.
        var total = new TraceEstimate("total", 0, groups.Sum(g => g.Count), layers.Sum(l => l.Trace), totalError);
        return new HutchinsonResult(total, layers, probes, applications, method);
    }

    internal static Tensor ApplyFloat64(Func<Tensor, Tensor> apply, Tensor v, ScalarType operatorType, Device device)
    {
        using var input = v.to(operatorType, device);
        var output = apply(input);
        if (output.dim() != 1 || output.shape[0] != v.shape[0])
            throw new InvalidOperationException($"The operator returned shape ({string.Join(", ", output.shape)}) for a vector of length {v.shape[0]}.");
        if (output.dtype == ScalarType.Float64 && output.IsOn(device)) return output;
        using (output) return output.to(ScalarType.Float64, device);
    }
}
