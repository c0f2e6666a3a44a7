using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Which curvature matrix a <see cref="HessianAnalysis"/> measures.</summary>
public enum CurvatureKind
{
    /// <summary>The Hessian of the mean loss (<see cref="Hvp"/>). Default.</summary>
    Hessian,
    /// <summary>The generalised Gauss-Newton matrix (<see cref="GaussNewton"/>): positive semi-definite for a convex loss.</summary>
    GaussNewton,
    /// <summary>The empirical Fisher matrix (<see cref="EmpiricalFisher"/>), from per-sample gradients held in memory.</summary>
    EmpiricalFisher,
}

/// <summary>
/// The common measurements of a model's loss landscape in one object, in the spirit of PyHessian: top eigenvalues,
/// trace, eigenvalue density, a 1-D slice and the dense matrix, for your own model, data and loss. Everything is
/// computed over the same fixed batches (the mean loss over all of them, weighted by batch size), in evaluation mode
/// (BatchNorm running statistics, dropout off) unless the options say otherwise; the model is left as it was.
/// For finer control use the pieces directly: <see cref="Hvp"/>, <see cref="GaussNewton"/>,
/// <see cref="EmpiricalFisher"/>, <see cref="Lanczos"/>, <see cref="Slq"/>, <see cref="Hutchinson"/>,
/// <see cref="ExactHessian"/>, <see cref="Slices"/>.
/// </summary>
/// <example><code>
/// using var h = new HessianAnalysis(model, batches, loss: (logits, y) => nn.functional.cross_entropy(logits, y, label_smoothing: 0.1));
/// var top = h.TopEigenvalues(5);                 // LanczosResult: Eigenvalues, Residuals, Converged
/// var trace = h.Trace();                         // HutchinsonResult: Total.Trace, Total.StandardError, per layer
/// var density = h.Density();                     // SlqResult: .Density() on a grid, moments, near-zero fractions
/// var slice = h.Slice();                         // loss along a random filter-normalised direction
/// Console.WriteLine($"lambda_max {top.Eigenvalues[0]:G4}, trace {trace.Total.Trace:G4}");
/// </code></example>
public sealed class HessianAnalysis : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> model;
    private readonly IReadOnlyList<(Tensor Inputs, Tensor Labels)>? batches;
    private readonly IStreamedLoss? streamedLoss;
    private readonly ICurvatureOperator op;

    /// <summary>Prepares the measurements of <paramref name="model"/> over <paramref name="batches"/>.</summary>
    /// <param name="model">Your network (any TorchSharp module from a tensor to a tensor).</param>
    /// <param name="batches">(inputs, labels) batches held in memory; their sizes may differ.</param>
    /// <param name="loss">Mean loss of one batch from (output, labels); default cross-entropy of (N, C) logits.</param>
    /// <param name="options">Parameters, modes, compute type, model factory (a <paramref name="loss"/> given here replaces the options' loss).</param>
    /// <param name="curvature">Which matrix: the Hessian (default), the Gauss-Newton matrix or the empirical Fisher.</param>
    /// <exception cref="ArgumentException">Empty batches, mismatched shapes, an empty or frozen parameter selection.</exception>
    public HessianAnalysis(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> batches,
        Func<Tensor, Tensor, Tensor>? loss = null, LandscapeOptions? options = null, CurvatureKind curvature = CurvatureKind.Hessian)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batches);
        this.model = model;
        this.batches = batches;
        Options = loss is null ? options ?? new LandscapeOptions() : (options ?? new LandscapeOptions()) with { Loss = loss };
        Curvature = curvature;
        op = curvature switch
        {
            CurvatureKind.Hessian => new Hvp(model, batches, Options),
            CurvatureKind.GaussNewton => new GaussNewton(model, batches, Options),
            CurvatureKind.EmpiricalFisher => new EmpiricalFisher(model, batches, Options),
            _ => throw new ArgumentOutOfRangeException(nameof(curvature), $"HessianAnalysis: unknown curvature kind {curvature}."),
        };
    }

    /// <summary>
    /// Prepares the measurements of <paramref name="model"/> under the general loss <paramref name="loss"/>:
    /// (model, batch) -&gt; mean loss over any sequence of batches, streamed (see <see cref="StreamedLoss{TBatch}"/>).
    /// The Gauss-Newton matrix and the empirical Fisher need the loss split at the model's output: a
    /// <see cref="StreamedOutputLoss{TBatch}"/>.
    /// </summary>
    /// <param name="model">Your network.</param>
    /// <param name="loss">The batches and the loss.</param>
    /// <param name="options">Parameters, modes, compute type, model factory.</param>
    /// <param name="curvature">Which matrix: the Hessian (default), the Gauss-Newton matrix or the empirical Fisher.</param>
    /// <exception cref="ArgumentException">No batches, an empty or frozen parameter selection, or a Gauss-Newton or
    /// Fisher matrix asked of a loss that does not expose the model's output.</exception>
    public HessianAnalysis(nn.Module<Tensor, Tensor> model, IStreamedLoss loss, LandscapeOptions? options = null,
        CurvatureKind curvature = CurvatureKind.Hessian)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(loss);
        this.model = model;
        streamedLoss = loss;
        Options = options ?? new LandscapeOptions();
        Curvature = curvature;
        op = (curvature, loss) switch
        {
            (CurvatureKind.Hessian, _) => new Hvp(model, loss, Options),
            (CurvatureKind.GaussNewton, IStreamedOutputLoss split) => new GaussNewton(model, split, Options),
            (CurvatureKind.EmpiricalFisher, IStreamedOutputLoss split) => new EmpiricalFisher(model, split, Options),
            (CurvatureKind.GaussNewton or CurvatureKind.EmpiricalFisher, _) => throw new ArgumentException(
                $"HessianAnalysis: the {curvature} matrix needs the model's outputs and per-sample losses; give the loss as a StreamedOutputLoss " +
                "(forward: (model, batch) -> outputs, sampleLosses: (outputs, batch) -> one loss per sample) instead of a StreamedLoss.", nameof(loss)),
            _ => throw new ArgumentOutOfRangeException(nameof(curvature), $"HessianAnalysis: unknown curvature kind {curvature}."),
        };
    }

    /// <summary>The options in force (with the loss given to the constructor).</summary>
    public LandscapeOptions Options { get; }

    /// <summary>The matrix measured.</summary>
    public CurvatureKind Curvature { get; }

    /// <summary>The curvature operator, for the solvers' full options.</summary>
    public ICurvatureOperator Operator => op;

    /// <summary>Number of parameters measured (the matrix is Dimension x Dimension).</summary>
    public long Dimension => op.Dimension;

    /// <summary>Operator applications so far (Hessian-vector products for the Hessian).</summary>
    public long Applications => op.Applications;

    /// <summary>The <paramref name="k"/> algebraically largest eigenvalues, descending, by Lanczos (default tolerance: 1e-8 in float64, 1e-4 in float32).</summary>
    public LanczosResult TopEigenvalues(int k = 5, LanczosOptions? options = null) =>
        Lanczos.Run(op, k, SpectrumEnd.Largest, options ?? DefaultLanczos(k));

    /// <summary>The <paramref name="k"/> algebraically smallest (most negative) eigenvalues, ascending, by Lanczos.</summary>
    public LanczosResult BottomEigenvalues(int k = 5, LanczosOptions? options = null) =>
        Lanczos.Run(op, k, SpectrumEnd.Smallest, options ?? DefaultLanczos(k));

    /// <summary>The trace, whole and per layer, by Hutchinson's estimator (Hutch++ on request in the options); default 100 probes.</summary>
    public HutchinsonResult Trace(HutchinsonOptions? options = null) => Hutchinson.Run(op, options);

    /// <summary>The eigenvalue density by stochastic Lanczos quadrature; call <see cref="SlqResult.Density"/> on the result for a grid.</summary>
    public SlqResult Density(SlqOptions? options = null) => Slq.Run(op, options);

    /// <summary>
    /// The loss and error along a line through the current weights: w + alpha d for alpha on the options' axis
    /// (default 41 points in [-1, 1]), d the given <paramref name="direction"/> (flat, in <see cref="ICurvatureOperator.Layout"/>;
    /// e.g. an eigenvector) or, when null, a seeded random filter-normalised direction (Li et al. 2018).
    /// </summary>
    public IReadOnlyList<SlicePoint> Slice(Tensor? direction = null, SliceOptions? options = null)
    {
        var o = (options ?? new SliceOptions()) with { Landscape = Options };
        // The slice writes the weights in place and puts them back: equal values, but autograd counts the writes, and
        // a kept gradient graph that saved those tensors could no longer be differentiated (libtorch aborts).
        if (op is Hvp hvp) hvp.Loss.DropGradientGraph();
        if (streamedLoss is not null)
        {
            using var line = new LandscapeLoss(model, streamedLoss, Options, "HessianAnalysis.Slice");
            return Slices.Line(line, direction, o, "HessianAnalysis.Slice");
        }
        return direction is null ? Slices.RandomDirection1D(model, batches!, o) : Slices.AlongDirection(model, batches!, direction, o);
    }

    /// <summary>The dense matrix, one application per column (for small selections; see <see cref="ExactHessian"/>). Dispose the result.</summary>
    public ExactHessianResult Exact(ExactHessianOptions? options = null) => ExactHessian.Compute(op, options);

    /// <summary>All eigenvalues of the dense matrix, ascending (float64; for small selections).</summary>
    public double[] AllEigenvalues(ExactHessianOptions? options = null)
    {
        using var dense = Exact(options);
        using var values = ExactHessian.Eigenvalues(dense.Hessian);
        return values.data<double>().ToArray();
    }

    private LanczosOptions DefaultLanczos(int k) => new()
    {
        MaxIterations = (int)Math.Min(op.Dimension, Math.Max(300, 3L * k)),
        Tolerance = op.Dtype == ScalarType.Float64 ? 1e-8 : 1e-4,
    };

    /// <summary>Releases the operator's copies and buffers (the model and batches are the caller's).</summary>
    public void Dispose() => (op as IDisposable)?.Dispose();
}
