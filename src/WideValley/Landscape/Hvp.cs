using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// Hessian-vector products (and plain gradients) of the mean loss over a fixed evaluation set, with respect to a
/// selection of parameters, by double backward (Pearlmutter's trick: H v = d(g . v)/dw). Vectors are flat, laid out as
/// <see cref="Layout"/> says. Batches are weighted by their sizes, so the result is exactly that of one batch holding
/// the whole set. BatchNorm and dropout follow <see cref="LandscapeOptions"/> (default: running statistics, dropout
/// off) and every call leaves the caller's model in the train/eval modes it had.
/// </summary>
/// <example><code>
/// using var hvp = new Hvp(model, Batches.InOrder(data, 500).ToList());
/// using var v = torch.randn(hvp.Dimension);
/// using var hv = hvp.Apply(v);
/// </code></example>
public sealed class Hvp : ICurvatureOperator, IDisposable
{
    private readonly LandscapeLoss loss;

    /// <summary>
    /// Prepares products for <paramref name="model"/> over <paramref name="evaluationSet"/> (a list of (inputs,
    /// labels) batches, held as given; copied only when the compute type or device differs).
    /// </summary>
    /// <exception cref="ArgumentException">Empty set, mismatched batch shapes, empty or frozen parameter selection,
    /// or a compute type that needs a model copy the library cannot build.</exception>
    public Hvp(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet, LandscapeOptions? options = null)
    {
        loss = new LandscapeLoss(model, evaluationSet, options, nameof(Hvp));
    }

    /// <summary>
    /// Prepares products of the general loss <paramref name="streamedLoss"/>: (model, batch) -&gt; mean loss over a sequence
    /// of batches of any type, enumerated afresh for every product (nothing is held; each product is a forward and two
    /// backward passes per batch, as no gradient graph is kept).
    /// </summary>
    /// <exception cref="ArgumentException">No batches, an empty or frozen parameter selection, or a compute type without a ModelFactory.</exception>
    public Hvp(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, LandscapeOptions? options = null)
    {
        loss = new LandscapeLoss(model, streamedLoss, options, nameof(Hvp));
    }

    private Hvp(LandscapeLoss replica) => loss = replica;

    /// <summary>
    /// The same products on a copy of the model (built by <see cref="LandscapeOptions.ModelFactory"/>) over the same evaluation batches, shared read-only. Each thread of a parallel
    /// computation differentiates its own replica. Dispose it when done; the caller's model is untouched.
    /// </summary>
    /// <exception cref="ArgumentException">No ModelFactory is set, or it builds another architecture.</exception>
    public Hvp Replicate() => new(loss.Replicate("Hvp.Replicate"));

    /// <summary>Adds products computed on replicas to <see cref="HvpCount"/>, so the total stays in one place.</summary>
    internal void CountProducts(long products) => HvpCount += products;

    internal LandscapeLoss Loss => loss;

    /// <summary>Number of selected scalar parameters: the Hessian is Dimension x Dimension.</summary>
    public long Dimension => loss.Layout.Dimension;

    /// <summary>Where each selected parameter tensor lies in the flat vectors.</summary>
    public ParameterLayout Layout => loss.Layout;

    /// <summary>The floating type of the computation (and of returned vectors).</summary>
    public ScalarType Dtype => loss.Dtype;

    /// <summary>The device of the computation.</summary>
    public Device Device => loss.Device;

    /// <summary>The options in force.</summary>
    public LandscapeOptions Options => loss.Options;

    /// <summary>Number of samples in the evaluation set.</summary>
    public long SampleCount => loss.SampleCount;

    /// <summary>Hessian-vector products computed so far (each is one pass of double backward over the whole set).</summary>
    public long HvpCount { get; private set; }

    /// <inheritdoc/>
    public long Applications => HvpCount;

    /// <summary>False: the Hessian's diagonal needs n products (<see cref="ExactHessian"/>) or an estimate (<see cref="Hutchinson"/>).</summary>
    public bool HasDiagonal => false;

    /// <summary>Not available: see <see cref="HasDiagonal"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public Tensor Diagonal() =>
        throw new NotSupportedException("Hvp.Diagonal: the Hessian's diagonal needs one product per parameter; use ExactHessian.Compute for small n or Hutchinson for an estimate of its sum.");

    /// <summary>Gradients computed so far (each is one forward and backward pass over the whole set).</summary>
    public long GradientCount { get; private set; }

    /// <summary>H v as a new flat vector in <see cref="Dtype"/>. <paramref name="v"/> may be of any floating type.</summary>
    public Tensor Apply(Tensor v)
    {
        var result = loss.NewVector();
        try
        {
            Apply(v, result);
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Writes H v into <paramref name="result"/> (flat, <see cref="Dtype"/>, on <see cref="Device"/>).</summary>
    public void Apply(Tensor v, Tensor result)
    {
        CurvatureOperators.CheckResult(this, result, "Hvp.Apply");
        using var scope = NewDisposeScope();
        var conformed = loss.Conform(v, nameof(v), "Hvp.Apply");
        loss.HessianVectorProduct(conformed, result);
        HvpCount++;
    }

    /// <summary>
    /// Column <paramref name="index"/> of H, but only its rows from parameter tensor <paramref name="firstBlock"/>
    /// (of <see cref="Layout"/>) on, into <paramref name="tail"/>: the entries a dense computation cannot take from
    /// symmetry. Cheaper than <see cref="Apply(Tensor, Tensor)"/> for columns of late layers, because autograd skips
    /// the branches to earlier layers. Counted as one product.
    /// </summary>
    internal void ColumnTail(long index, int firstBlock, Tensor tail)
    {
        loss.HessianColumnTail(index, firstBlock, tail);
        HvpCount++;
    }

    /// <summary>The products as a linear operator on flat vectors, for <see cref="Lanczos"/>, <see cref="Slq"/> and friends.</summary>
    public Func<Tensor, Tensor> AsOperator() => Apply;

    /// <summary>The gradient of the mean loss over the set as a new flat vector, and the loss.</summary>
    public (Tensor Gradient, double Loss) Gradient()
    {
        var result = loss.NewVector();
        try
        {
            var value = loss.Gradient(result);
            GradientCount++;
            return (result, value);
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Mean loss and error rate (percent; NaN when the model's output is not (N, C) logits) over the set.</summary>
    public (double Loss, double ErrorPercent) Evaluate() => loss.Evaluate();

    /// <summary>The selected parameters' current values as a new flat vector (in <see cref="Dtype"/>).</summary>
    public Tensor Parameters() => loss.GetFlat();

    /// <summary>
    /// SHA-256 of the model's parameters and buffers, the evaluation set and the options, as hex: equal fingerprints
    /// mean the same Hessian.
    /// </summary>
    public string Fingerprint() => loss.Fingerprint();

    /// <summary>Releases the model copy and converted batches, if any (the caller's model and tensors are untouched).</summary>
    public void Dispose() => loss.Dispose();
}
