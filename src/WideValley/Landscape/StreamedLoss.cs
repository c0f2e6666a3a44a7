using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// The loss of a landscape measurement in its general form: <c>(model, batch) -&gt; mean loss of the batch</c> over any
/// sequence of batches of any type (several input tensors, masks, targets of any shape), streamed: the sequence is
/// enumerated afresh for every pass (each gradient, each Hessian-vector product), so it need not fit in memory.
/// Batches are weighted by their sample counts, so the measured loss is the mean over every sample.
/// See <see cref="StreamedLoss{TBatch}"/>.
/// </summary>
public interface IStreamedLoss
{
    /// <summary>A stable name of data and loss together (null: anonymous; such a loss is not checkpointed).</summary>
    string? Identity { get; }

    /// <summary>One pass over the batches: for each, its sample count and a function from the model to its mean loss.</summary>
    internal IEnumerable<(long Count, Func<nn.Module<Tensor, Tensor>, Tensor> MeanLoss)> Pass();
}

/// <summary>
/// A streamed loss over batches of type <typeparamref name="TBatch"/> (see <see cref="IStreamedLoss"/>).
/// The loss function receives the model it must evaluate: the caller's, or a copy of it in
/// <see cref="LandscapeOptions.ComputeType"/> (float64), so floating-point inputs should be converted to the type and
/// device of that model's parameters. BatchNorm and dropout follow <see cref="LandscapeOptions"/>.
/// </summary>
/// <typeparam name="TBatch">Your batch type, e.g. a record holding several input tensors and targets.</typeparam>
/// <example><code>
/// record Pair(Tensor Left, Tensor Right, Tensor Target);
/// var loss = new StreamedLoss&lt;Pair&gt;(
///     () =&gt; myLoader.Batches(),                                       // enumerated afresh for every pass
///     (model, b) =&gt; F.mse_loss(((MySiamese)model).call(b.Left, b.Right), b.Target),
///     b =&gt; b.Target.shape[0],
///     identity: "pairs-v1/mse");
/// using var hvp = new Hvp(model, loss);
/// </code></example>
public sealed class StreamedLoss<TBatch> : IStreamedLoss
{
    private readonly Func<IEnumerable<TBatch>> batches;
    private readonly Func<nn.Module<Tensor, Tensor>, TBatch, Tensor> meanLoss;
    private readonly Func<TBatch, long> sampleCount;

    /// <summary>Describes the loss.</summary>
    /// <param name="batches">Returns the batches; called once per pass.</param>
    /// <param name="meanLoss">The MEAN loss of one batch, a scalar with its graph to the model's parameters.</param>
    /// <param name="sampleCount">The number of samples in a batch (its weight).</param>
    /// <param name="identity">A stable name of data and loss, for fingerprints (resumable exact Hessians need one).</param>
    public StreamedLoss(Func<IEnumerable<TBatch>> batches, Func<nn.Module<Tensor, Tensor>, TBatch, Tensor> meanLoss, Func<TBatch, long> sampleCount,
        string? identity = null)
    {
        this.batches = batches ?? throw new ArgumentNullException(nameof(batches));
        this.meanLoss = meanLoss ?? throw new ArgumentNullException(nameof(meanLoss));
        this.sampleCount = sampleCount ?? throw new ArgumentNullException(nameof(sampleCount));
        Identity = identity;
    }

    /// <inheritdoc/>
    public string? Identity { get; }

    IEnumerable<(long Count, Func<nn.Module<Tensor, Tensor>, Tensor> MeanLoss)> IStreamedLoss.Pass()
    {
        var index = 0;
        foreach (var batch in batches() ?? throw new InvalidOperationException("StreamedLoss: the batch function returned null."))
        {
            var count = sampleCount(batch);
            if (count < 1) throw new ArgumentException($"StreamedLoss: batch {index} has {count} samples; every batch needs at least one.");
            index++;
            yield return (count, model => meanLoss(model, batch));
        }
    }
}
