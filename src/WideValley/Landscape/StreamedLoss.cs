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

/// <summary>
/// A streamed loss split at the model's output, for the curvature matrices that need the output itself: the
/// generalised Gauss-Newton matrix (<see cref="GaussNewton"/>, which takes the loss's Hessian with respect to the
/// output) and the empirical Fisher (<see cref="EmpiricalFisher"/>, which needs each sample's own loss). It is also an
/// <see cref="IStreamedLoss"/> (the batch's mean loss is the mean of its per-sample losses), so the same object serves
/// <see cref="Hvp"/>, <see cref="DiagFisher"/> and the rest. See <see cref="StreamedOutputLoss{TBatch}"/>.
/// </summary>
public interface IStreamedOutputLoss : IStreamedLoss
{
    /// <summary>One pass over the batches: for each, its sample count, the model's output, and the per-sample losses of an output.</summary>
    internal IEnumerable<StreamedOutputBatch> OutputPass();
}

/// <summary>One batch of an <see cref="IStreamedOutputLoss"/> pass.</summary>
/// <param name="Count">Samples in the batch.</param>
/// <param name="Forward">The model's output on the batch, with its graph.</param>
/// <param name="SampleLosses">The per-sample losses (a vector of <paramref name="Count"/>) of an output of the batch, checked.</param>
internal readonly record struct StreamedOutputBatch(long Count, Func<nn.Module<Tensor, Tensor>, Tensor> Forward, Func<Tensor, Tensor> SampleLosses);

/// <summary>
/// A streamed loss over batches of type <typeparamref name="TBatch"/> given in two parts: <c>forward(model, batch)</c>,
/// the model's output (any shape; any number of inputs go in), and <c>sampleLosses(output, batch)</c>, the loss of
/// each sample of the batch as a vector, whose mean is the batch's mean loss (PyTorch's <c>reduction: none</c>,
/// averaged over every axis but the first if the loss has more). Batches are enumerated afresh for every pass, as for
/// <see cref="StreamedLoss{TBatch}"/>, and weighted by their sample counts.
/// <para>
/// The split is what the generalised Gauss-Newton matrix G = sum_b J_b^T H_b J_b needs: J_b is the Jacobian of
/// <c>forward</c>'s output, H_b the Hessian of the loss with respect to that output; and what the empirical Fisher needs:
/// the gradient of each sample's own loss. Use it with <see cref="GaussNewton"/>, <see cref="EmpiricalFisher"/>,
/// <see cref="DiagFisher"/> and <see cref="Hvp"/>.
/// </para>
/// <para>
/// As with <see cref="StreamedLoss{TBatch}"/>, <c>forward</c> receives the model it must evaluate (the caller's, or a
/// float64 copy under <see cref="LandscapeOptions.ComputeType"/>), so floating-point inputs should be converted to the
/// type of that model's parameters, and floating-point targets to the output's type in <c>sampleLosses</c>.
/// </para>
/// </summary>
/// <typeparam name="TBatch">Your batch type, e.g. a record holding several input tensors and targets.</typeparam>
/// <example><code>
/// record Pair(Tensor Left, Tensor Right, Tensor Target);
/// var loss = new StreamedOutputLoss&lt;Pair&gt;(
///     () =&gt; myLoader.Batches(),
///     (model, b) =&gt; ((MySiamese)model).call(b.Left, b.Right),                     // outputs, (n, classes)
///     (output, b) =&gt; F.cross_entropy(output, b.Target, reduction: nn.Reduction.None), // one loss per sample, (n)
///     b =&gt; b.Target.shape[0],
///     identity: "pairs-v1/cross-entropy");
/// using var ggn = new GaussNewton(model, loss);
/// using var fisher = new EmpiricalFisher(model, loss);
/// </code></example>
public sealed class StreamedOutputLoss<TBatch> : IStreamedOutputLoss
{
    private readonly Func<IEnumerable<TBatch>> batches;
    private readonly Func<nn.Module<Tensor, Tensor>, TBatch, Tensor> forward;
    private readonly Func<Tensor, TBatch, Tensor> sampleLosses;
    private readonly Func<TBatch, long> sampleCount;

    /// <summary>Describes the loss.</summary>
    /// <param name="batches">Returns the batches; called once per pass.</param>
    /// <param name="forward">The model's output on a batch, with its graph to the model's parameters.</param>
    /// <param name="sampleLosses">The loss of each sample of the batch from that output: a vector with one entry per sample.</param>
    /// <param name="sampleCount">The number of samples in a batch (its weight, and the length <paramref name="sampleLosses"/> must return).</param>
    /// <param name="identity">A stable name of data and loss, for fingerprints (resumable exact computations need one).</param>
    public StreamedOutputLoss(Func<IEnumerable<TBatch>> batches, Func<nn.Module<Tensor, Tensor>, TBatch, Tensor> forward,
        Func<Tensor, TBatch, Tensor> sampleLosses, Func<TBatch, long> sampleCount, string? identity = null)
    {
        this.batches = batches ?? throw new ArgumentNullException(nameof(batches));
        this.forward = forward ?? throw new ArgumentNullException(nameof(forward));
        this.sampleLosses = sampleLosses ?? throw new ArgumentNullException(nameof(sampleLosses));
        this.sampleCount = sampleCount ?? throw new ArgumentNullException(nameof(sampleCount));
        Identity = identity;
    }

    /// <inheritdoc/>
    public string? Identity { get; }

    IEnumerable<StreamedOutputBatch> IStreamedOutputLoss.OutputPass()
    {
        var index = 0;
        foreach (var batch in batches() ?? throw new InvalidOperationException("StreamedOutputLoss: the batch function returned null."))
        {
            var count = sampleCount(batch);
            var at = index++;
            if (count < 1) throw new ArgumentException($"StreamedOutputLoss: batch {at} has {count} samples; every batch needs at least one.");
            yield return new StreamedOutputBatch(count,
                model => forward(model, batch) ?? throw new InvalidOperationException($"StreamedOutputLoss: the forward function returned null for batch {at}."),
                output =>
                {
                    var losses = sampleLosses(output, batch)
                                 ?? throw new InvalidOperationException($"StreamedOutputLoss: the sample-loss function returned null for batch {at}.");
                    if (losses.dim() != 1 || losses.shape[0] != count)
                        throw new ArgumentException(
                            $"StreamedOutputLoss: for batch {at} the sample-loss function returned shape ({string.Join(", ", losses.shape)}); expected one loss " +
                            $"per sample, a vector of {count} (reduction: none; average any further axes).");
                    return losses;
                });
        }
    }

    IEnumerable<(long Count, Func<nn.Module<Tensor, Tensor>, Tensor> MeanLoss)> IStreamedLoss.Pass()
    {
        foreach (var b in ((IStreamedOutputLoss)this).OutputPass())
            yield return (b.Count, model => b.SampleLosses(b.Forward(model)).mean());
    }
}
