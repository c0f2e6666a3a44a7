using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// The generalised Gauss-Newton matrix G = sum_b w_b J_b^T H_b J_b of the mean loss over a fixed evaluation set
/// (Schraudolph 2002; Martens 2020), as a curvature operator: J_b is the Jacobian of the model's output on batch b with
/// respect to the selected parameters, H_b the Hessian of the batch loss with respect to that output (for
/// cross-entropy, diag(p) - p p^T per sample, over the batch size), w_b = n_b / N. It drops the second-derivative-of-
/// the-network term of the Hessian, so it is positive semi-definite whenever the loss is convex in the output, and it
/// equals the Hessian for a model linear in its parameters. Each product costs a forward pass and four backward passes
/// per batch. BatchNorm, dropout, compute type and parameter selection follow <see cref="LandscapeOptions"/> as for
/// <see cref="Hvp"/>.
/// <para>
/// Over your own batch type, give the loss as a <see cref="StreamedOutputLoss{TBatch}"/>: <c>forward(model, batch)</c>
/// for the output (J's function) and <c>sampleLosses(output, batch)</c> for the loss on it (H's); the batches are
/// enumerated afresh for every product.
/// </para>
/// </summary>
/// <example><code>
/// using var ggn = new GaussNewton(model, batches);
/// var top = Lanczos.Run(ggn, k: 5);
/// // your batch type, any number of inputs:
/// using var ggn2 = new GaussNewton(model, new StreamedOutputLoss&lt;Pair&gt;(() =&gt; loader.Batches(),
///     (m, b) =&gt; ((MySiamese)m).call(b.Left, b.Right), (output, b) =&gt; F.cross_entropy(output, b.Target, reduction: nn.Reduction.None),
///     b =&gt; b.Target.shape[0]));
/// </code></example>
public sealed class GaussNewton : ICurvatureOperator, IDisposable
{
    private readonly LandscapeLoss loss;

    /// <summary>Prepares products for <paramref name="model"/> over <paramref name="evaluationSet"/> ((inputs, labels) batches).</summary>
    /// <exception cref="ArgumentException">Empty set, mismatched batch shapes, empty or frozen parameter selection,
    /// or a compute type that needs a model copy without a <see cref="LandscapeOptions.ModelFactory"/>.</exception>
    public GaussNewton(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet, LandscapeOptions? options = null)
    {
        loss = new LandscapeLoss(model, evaluationSet, options, nameof(GaussNewton));
    }

    /// <summary>
    /// Prepares products for <paramref name="model"/> over a streamed loss split at the model's output (see
    /// <see cref="StreamedOutputLoss{TBatch}"/>): J is the Jacobian of its forward function's output, H the Hessian of
    /// its per-sample losses' mean with respect to that output. Nothing is held; each product enumerates the batches.
    /// </summary>
    /// <exception cref="ArgumentException">No batches, an empty or frozen parameter selection, or a compute type without a ModelFactory.</exception>
    public GaussNewton(nn.Module<Tensor, Tensor> model, IStreamedOutputLoss streamedLoss, LandscapeOptions? options = null)
    {
        loss = new LandscapeLoss(model, streamedLoss, options, nameof(GaussNewton));
    }

    /// <inheritdoc/>
    public long Dimension => loss.Layout.Dimension;

    /// <inheritdoc/>
    public ScalarType Dtype => loss.Dtype;

    /// <inheritdoc/>
    public Device Device => loss.Device;

    /// <inheritdoc/>
    public ParameterLayout Layout => loss.Layout;

    /// <inheritdoc/>
    public long Applications { get; private set; }

    /// <summary>False: the diagonal needs n products.</summary>
    public bool HasDiagonal => false;

    /// <summary>Not available: see <see cref="HasDiagonal"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public Tensor Diagonal() =>
        throw new NotSupportedException("GaussNewton.Diagonal: the diagonal needs one product per parameter; use ExactHessian.Compute for small n.");

    /// <summary>Writes G v into <paramref name="result"/> (flat, <see cref="Dtype"/>, on <see cref="Device"/>).</summary>
    public void Apply(Tensor v, Tensor result)
    {
        CurvatureOperators.CheckResult(this, result, "GaussNewton.Apply");
        using var scope = NewDisposeScope();
        var conformed = loss.Conform(v, nameof(v), "GaussNewton.Apply");
        loss.GaussNewtonVectorProduct(conformed, result);
        Applications++;
    }

    /// <summary>Releases the model copy and converted batches, if any.</summary>
    public void Dispose() => loss.Dispose();
}

/// <summary>
/// The empirical Fisher matrix F = (1/N) sum_i g_i g_i^T of the evaluation set's N samples, g_i the gradient of
/// sample i's own loss, as a curvature operator. The per-sample gradients are computed once, at construction (one
/// backward pass per sample), and held as an N x n matrix G, so that each product F v = G^T (G v) / N is two
/// matrix-vector products and the diagonal is exact. The operator is a snapshot: later changes to the weights do not
/// affect it. It is positive semi-definite with rank at most N. Over your own batch type, give the loss as a
/// <see cref="StreamedOutputLoss{TBatch}"/>: sample i's loss is then entry i of its per-sample losses.
/// </summary>
/// <example><code>
/// using var fisher = new EmpiricalFisher(model, batches);
/// var trace = Hutchinson.Run(fisher);           // or, exactly: fisher.Diagonal().sum()
/// </code></example>
public sealed class EmpiricalFisher : ICurvatureOperator, IDisposable
{
    private readonly Tensor gradients;
    private long applications;

    /// <summary>Default most bytes the per-sample gradient matrix may take (2 GiB).</summary>
    public const long DefaultMaxGradientBytes = 2L << 30;

    /// <summary>Computes the per-sample gradients of <paramref name="model"/> over <paramref name="evaluationSet"/>.</summary>
    /// <param name="model">The network.</param>
    /// <param name="evaluationSet">(inputs, labels) batches; every sample counts once.</param>
    /// <param name="options">Loss, parameters, modes, compute type, as for <see cref="Hvp"/>.</param>
    /// <param name="maxGradientBytes">Refuse when the N x n gradient matrix would exceed this.</param>
    /// <exception cref="ArgumentException">As for <see cref="Hvp"/>, or the gradient matrix above <paramref name="maxGradientBytes"/>.</exception>
    public EmpiricalFisher(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet, LandscapeOptions? options = null,
        long maxGradientBytes = DefaultMaxGradientBytes)
        : this(new LandscapeLoss(model, evaluationSet, options, nameof(EmpiricalFisher)), maxGradientBytes)
    {
    }

    /// <summary>
    /// Computes the per-sample gradients of <paramref name="model"/> over a streamed loss split at the model's output
    /// (see <see cref="StreamedOutputLoss{TBatch}"/>): g_i is the gradient of entry i of a batch's per-sample losses.
    /// The batches are enumerated twice (once to count the samples, once for the gradients) and not held.
    /// </summary>
    /// <param name="model">The network.</param>
    /// <param name="streamedLoss">The batches, the forward function and the per-sample losses; every sample counts once.</param>
    /// <param name="options">Parameters, modes, compute type, as for <see cref="Hvp"/> (the loss is the streamed one).</param>
    /// <param name="maxGradientBytes">Refuse when the N x n gradient matrix would exceed this.</param>
    /// <exception cref="ArgumentException">As for <see cref="Hvp"/>, or the gradient matrix above <paramref name="maxGradientBytes"/>.</exception>
    public EmpiricalFisher(nn.Module<Tensor, Tensor> model, IStreamedOutputLoss streamedLoss, LandscapeOptions? options = null,
        long maxGradientBytes = DefaultMaxGradientBytes)
        : this(new LandscapeLoss(model, streamedLoss, options, nameof(EmpiricalFisher)), maxGradientBytes)
    {
    }

    /// <summary>Takes <paramref name="source"/> (and disposes it): the gradients are all this operator keeps.</summary>
    private EmpiricalFisher(LandscapeLoss source, long maxGradientBytes)
    {
        using var loss = source;
        var n = loss.Layout.Dimension;
        var bytes = loss.SampleCount * n * (loss.Dtype == ScalarType.Float64 ? 8L : 4L);
        if (bytes > maxGradientBytes)
            throw new ArgumentException(
                $"EmpiricalFisher: {loss.SampleCount:N0} per-sample gradients of {n:N0} parameters take {HessianMemoryPlan.Size(bytes)}, above the limit of " +
                $"{HessianMemoryPlan.Size(maxGradientBytes)}; use fewer samples, select fewer parameters, use DiagFisher, or raise maxGradientBytes.",
                nameof(maxGradientBytes));
        Layout = loss.Layout;
        Dtype = loss.Dtype;
        Device = loss.Device;
        SampleCount = loss.SampleCount;
        gradients = zeros(SampleCount, n, Dtype, Device).DetachFromDisposeScope();
        try
        {
            loss.PerSampleGradients(gradients);
        }
        catch
        {
            gradients.Dispose();
            throw;
        }
    }

    /// <summary>N, the number of samples (the rank of F is at most N).</summary>
    public long SampleCount { get; }

    /// <summary>The per-sample gradients as rows (N x n); owned by this operator.</summary>
    public Tensor Gradients => gradients;

    /// <inheritdoc/>
    public long Dimension => Layout.Dimension;

    /// <inheritdoc/>
    public ScalarType Dtype { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <inheritdoc/>
    public ParameterLayout Layout { get; }

    /// <inheritdoc/>
    public long Applications => Interlocked.Read(ref applications);

    /// <summary>True: diag F = (1/N) sum_i g_i^2, from the stored gradients.</summary>
    public bool HasDiagonal => true;

    /// <inheritdoc/>
    public void Apply(Tensor v, Tensor result)
    {
        Layout.CheckVector(v, nameof(v), "EmpiricalFisher.Apply");
        CurvatureOperators.CheckResult(this, result, "EmpiricalFisher.Apply");
        using var scope = NewDisposeScope();
        var x = v.dtype == Dtype && v.IsOn(Device) ? v : v.to(Dtype, Device);
        result.copy_(gradients.T.mv(gradients.mv(x)).DivideBy_(SampleCount));
        Interlocked.Increment(ref applications);
    }

    /// <inheritdoc/>
    public Tensor Diagonal()
    {
        using var scope = NewDisposeScope();
        return gradients.square().sum(dim: 0).DivideBy_(SampleCount).MoveToOuterDisposeScope();
    }

    /// <summary>Frees the gradient matrix.</summary>
    public void Dispose() => gradients.Dispose();
}
