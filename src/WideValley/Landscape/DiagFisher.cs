using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Summary statistics of a non-negative per-parameter quantity (for reports and histograms).</summary>
/// <param name="Count">Number of entries.</param>
/// <param name="Sum">Sum (the trace of the diagonal matrix).</param>
/// <param name="Mean">Mean.</param>
/// <param name="Min">Smallest entry.</param>
/// <param name="Max">Largest entry.</param>
/// <param name="Quantiles">(q, value) for q = 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99.</param>
/// <param name="FractionBelow">(threshold, fraction of entries below it) for 1e-8 ... 1e-1.</param>
public sealed record DiagonalSummary(long Count, double Sum, double Mean, double Min, double Max,
    IReadOnlyList<(double Quantile, double Value)> Quantiles, IReadOnlyList<(double Threshold, double Fraction)> FractionBelow)
{
    /// <summary>The median (0.5 quantile).</summary>
    public double Median => Quantiles.First(q => q.Quantile == 0.5).Value;
}

/// <summary>A histogram: bin edges (one more than counts) and counts.</summary>
/// <param name="Edges">Bin edges, ascending (log10 of the value for a log histogram).</param>
/// <param name="Counts">Entries per bin.</param>
/// <param name="BelowRange">Entries below the first edge (for a log histogram: below the floor, including zeros).</param>
public sealed record Histogram(double[] Edges, long[] Counts, long BelowRange);

/// <summary>The diagonal empirical Fisher over minibatches and the mean gradient. Dispose to free the vectors.</summary>
/// <param name="Diagonal">Var_b(g_b) = E_b(g_b^2) - (E_b g_b)^2 per parameter, float64, flat in <see cref="Layout"/> order.</param>
/// <param name="MeanGradient">E_b g_b per parameter, float64.</param>
/// <param name="Minibatches">Number of minibatches (gradients) averaged.</param>
/// <param name="Layout">Which parameter each entry belongs to.</param>
public sealed record DiagFisherResult(Tensor Diagonal, Tensor MeanGradient, int Minibatches, ParameterLayout Layout) : IDisposable
{
    /// <summary>Count, sum, mean, extremes, quantiles and fractions below thresholds of the diagonal.</summary>
    public DiagonalSummary Summary()
    {
        using var scope = NewDisposeScope();
        var values = Diagonal.cpu();
        var sorted = values.sort().Values.data<double>().ToArray();
        double Quantile(double q) => sorted[(int)Math.Clamp(Math.Round(q * (sorted.Length - 1)), 0, sorted.Length - 1)];
        var quantiles = new[] { 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99 }.Select(q => (q, Quantile(q))).ToArray();
        var thresholds = new[] { 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1 };
        var fractions = thresholds.Select(t => (t, (double)LowerBound(sorted, t) / sorted.Length)).ToArray();
        var sum = values.sum().ToDouble();
        return new DiagonalSummary(sorted.Length, sum, sum / sorted.Length, sorted[0], sorted[^1], quantiles, fractions);
    }

    /// <summary>
    /// Histogram of log10(diagonal) in <paramref name="bins"/> equal bins from log10(<paramref name="floor"/>) to the
    /// log10 of the largest entry; entries below the floor (zeros included) are counted in <see cref="Histogram.BelowRange"/>.
    /// </summary>
    public Histogram LogHistogram(int bins = 50, double floor = 1e-12)
    {
        if (bins < 1) throw new ArgumentException($"DiagFisherResult.LogHistogram: bins must be positive; got {bins}.", nameof(bins));
        if (!(floor > 0)) throw new ArgumentException($"DiagFisherResult.LogHistogram: floor must be positive; got {floor}.", nameof(floor));
        using var scope = NewDisposeScope();
        var values = Diagonal.cpu().data<double>().ToArray();
        var lo = Math.Log10(floor);
        var hi = Math.Max(lo + 1e-9, Math.Log10(Math.Max(floor, values.Max())));
        var edges = Enumerable.Range(0, bins + 1).Select(i => lo + (hi - lo) * i / bins).ToArray();
        var counts = new long[bins];
        long below = 0;
        foreach (var v in values)
        {
            if (!(v >= floor)) { below++; continue; }
            var bin = (int)Math.Min(bins - 1, Math.Floor((Math.Log10(v) - lo) / (hi - lo) * bins));
            counts[bin]++;
        }
        return new Histogram(edges, counts, below);
    }

    private static int LowerBound(double[] sorted, double value)
    {
        var index = Array.BinarySearch(sorted, value);
        if (index < 0) return ~index;
        while (index > 0 && sorted[index - 1] == value) index--;
        return index;
    }

    /// <summary>Frees the vectors.</summary>
    public void Dispose()
    {
        Diagonal.Dispose();
        MeanGradient.Dispose();
    }
}

/// <summary>
/// The diagonal of the empirical Fisher in the form the paper uses for large networks (seed 003, Fig. 3c):
/// E_b(g_b^2) - (E_b g_b)^2, the per-parameter variance of minibatch gradients g_b (each the gradient of one
/// minibatch's mean loss), accumulated in float64. Minibatches count equally, whatever their sizes. Over your own batch
/// type, give the loss as any <see cref="IStreamedLoss"/> (<see cref="StreamedLoss{TBatch}"/> or
/// <see cref="StreamedOutputLoss{TBatch}"/>): each of its batches is one minibatch.
/// </summary>
/// <example><code>
/// using var fisher = DiagFisher.Compute(model, minibatches);               // (inputs, labels) minibatches
/// using var same = DiagFisher.Compute(model, new StreamedLoss&lt;Pair&gt;(() =&gt; loader.Batches(),
///     (m, b) =&gt; F.cross_entropy(((MySiamese)m).call(b.Left, b.Right), b.Target), b =&gt; b.Target.shape[0]));
/// var summary = fisher.Summary();
/// </code></example>
public static class DiagFisher
{
    /// <summary>
    /// Computes the diagonal over <paramref name="minibatches"/> (at least two) with BatchNorm, dropout, parameter
    /// selection and loss as <paramref name="options"/> say; the model's modes are restored afterwards.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two minibatches, or as for <see cref="Hvp"/>.</exception>
    public static DiagFisherResult Compute(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> minibatches,
        LandscapeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(minibatches);
        if (minibatches.Count < 2)
            throw new ArgumentException($"DiagFisher: a variance over minibatches needs at least 2 minibatches; got {minibatches.Count}.", nameof(minibatches));
        using var loss = new LandscapeLoss(model, minibatches, options, nameof(DiagFisher));
        return Compute(loss);
    }

    /// <summary>
    /// Computes the diagonal over the batches of <paramref name="streamedLoss"/> (at least two; each batch is one
    /// minibatch, its gradient that of its mean loss), with BatchNorm, dropout and parameter selection as
    /// <paramref name="options"/> say. The batches are enumerated twice (once to count them, once for the gradients).
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two batches, or as for <see cref="Hvp"/>.</exception>
    public static DiagFisherResult Compute(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, LandscapeOptions? options = null)
    {
        using var loss = new LandscapeLoss(model, streamedLoss, options, nameof(DiagFisher));
        if (loss.BatchCount < 2)
            throw new ArgumentException($"DiagFisher: a variance over minibatches needs at least 2 minibatches; the streamed loss has {loss.BatchCount}.",
                nameof(streamedLoss));
        return Compute(loss);
    }

    private static DiagFisherResult Compute(LandscapeLoss loss)
    {
        var n = loss.Layout.Dimension;
        var sum = zeros(n, ScalarType.Float64, loss.Device).DetachFromDisposeScope();
        var sumSquares = zeros(n, ScalarType.Float64, loss.Device).DetachFromDisposeScope();
        try
        {
            using var gradient = loss.NewVector();
            var count = loss.ForEachBatchGradient(gradient, g =>
            {
                var g64 = g.to(ScalarType.Float64);
                sum.Accumulate_(g64);
                sumSquares.AddMultiplied_(g64, g64, 1.0);
            });
            if (loss.Ranks is not null)
            {
                // Each rank summed its own share of the minibatches: one allreduce of both sums and the count.
                using var both = cat([sum, sumSquares]);
                count = (int)Math.Round(loss.SumOverRanks(both, count)[0]);
                using (var first = both.narrow(0, 0, n)) sum.copy_(first);
                using (var second = both.narrow(0, n, n)) sumSquares.copy_(second);
            }
            if (count < 2)
                throw new InvalidOperationException(
                    $"DiagFisher: the streamed loss gave {count} batch(es) on its second pass, after {loss.BatchCount} on its first; it must give the same batches on every pass.");
            sum.DivideBy_(count);
            sumSquares.DivideBy_(count);
            // E(g^2) - (E g)^2 can come out a hair below zero by round-off; a variance is not negative.
            using var zero = 0.0.ToScalar();
            sumSquares.AddMultiplied_(sum, sum, -1.0).clamp_min_(zero);
            return new DiagFisherResult(sumSquares, sum, count, loss.Layout);
        }
        catch
        {
            sum.Dispose();
            sumSquares.Dispose();
            throw;
        }
    }
}
