using System.Globalization;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>What a random direction holds for one-dimensional parameters (biases, BatchNorm scales and shifts).</summary>
public enum OneDimensionalParameters
{
    /// <summary>Zero: these parameters stay where they are (Li et al.'s "ignore biasbn"). Default.</summary>
    Zero,
    /// <summary>The parameter's own values (what Li et al.'s code does when they are not ignored).</summary>
    CopyWeights,
    /// <summary>A random vector rescaled to the parameter's norm (the whole vector treated as one filter).</summary>
    FilterNormalized,
}

/// <summary>One point of a slice: coordinates along the direction(s) and the loss and error there.</summary>
/// <param name="Alpha">Coordinate along the first direction (for interpolation: t, with 0 at the start and 1 at the end).</param>
/// <param name="Beta">Coordinate along the second direction (0 for 1-D slices).</param>
/// <param name="Loss">Mean loss over the evaluation set.</param>
/// <param name="ErrorPercent">Error rate in percent (NaN when the output is not (N, C) logits).</param>
public sealed record SlicePoint(double Alpha, double Beta, double Loss, double ErrorPercent);

/// <summary>Settings of the random-direction slices.</summary>
public sealed record SliceOptions
{
    /// <summary>Points per axis (default 41).</summary>
    public int Points { get; init; } = 41;

    /// <summary>First coordinate along each axis (default -1).</summary>
    public double From { get; init; } = -1;

    /// <summary>Last coordinate along each axis (default 1).</summary>
    public double To { get; init; } = 1;

    /// <summary>Seed of the directions (default 0).</summary>
    public long Seed { get; init; }

    /// <summary>Biases and BatchNorm parameters in the directions (default: zero).</summary>
    public OneDimensionalParameters OneDimensional { get; init; } = OneDimensionalParameters.Zero;

    /// <summary>Loss, parameters, BatchNorm and dropout handling.</summary>
    public LandscapeOptions Landscape { get; init; } = new();

    /// <summary>Reported after each evaluated point (method "slice"; Done and Total count points).</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Stops the sweep between points (<see cref="OperationCanceledException"/>; the weights are restored).</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>
/// Loss-surface slices: along the line between two parameter vectors (e.g. two checkpoints, t from -0.5 to 1.5), and
/// along one or two random directions with filter normalisation (Li, Xu, Taylor, Studer and Goldstein 2018: each
/// filter, i.e. slice along the first dimension, of a direction is rescaled to the norm of the same filter of the
/// weights, so that slices of networks with different weight scales are comparable). The model's weights and modes
/// are restored afterwards, also after an error.
/// </summary>
public static class Slices
{
    /// <summary>The selected parameters of <paramref name="model"/> as one new flat vector (e.g. after loading a checkpoint).</summary>
    public static Tensor FlatParameters(nn.Module model, ParameterSelection? selection = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var names = (selection ?? ParameterSelection.All).ResolveNames(model);
        var byName = model.named_parameters().ToDictionary(np => np.name, np => np.parameter);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // clone(): TorchSharp's cat of a single tensor may hand back a view of the parameter itself.
        return cat(names.Select(n => byName[n].detach().reshape(-1)).ToArray(), 0).clone().MoveToOuterDisposeScope();
    }

    /// <summary>Loss and error at w(t) = from + t (to - from) for <paramref name="points"/> values of t in [start, end].</summary>
    /// <remarks>Both end points must be finite (<see cref="NonFiniteValuesException"/> names the first parameter that is not).</remarks>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="evaluationSet">The batches the loss is the mean over.</param>
    /// <param name="from">The start point w(0), flat in the layout of the selected parameters.</param>
    /// <param name="to">The end point w(1), in the same layout.</param>
    /// <param name="points">Values of t, evenly spaced.</param>
    /// <param name="start">First t.</param>
    /// <param name="end">Last t.</param>
    /// <param name="options">Loss, parameters, BatchNorm and dropout handling.</param>
    /// <param name="progress">Reported after each evaluated point (method "slice").</param>
    /// <param name="cancellation">Stops the sweep between points, as for the random-direction slices.</param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was cancelled; the weights are restored.</exception>
    public static IReadOnlyList<SlicePoint> Interpolation(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        Tensor from, Tensor to, int points = 41, double start = -0.5, double end = 1.5, LandscapeOptions? options = null,
        IProgress<CurvatureProgress>? progress = null, CancellationToken cancellation = default)
    {
        CheckAxis(points, start, end, "Slices.Interpolation");
        using var loss = new LandscapeLoss(model, evaluationSet, options, "Slices.Interpolation");
        using var scope = NewDisposeScope();
        var a = loss.Conform(from, nameof(from), "Slices.Interpolation");
        var b = loss.Conform(to, nameof(to), "Slices.Interpolation");
        FiniteChecks.RequireFiniteFlat(a, loss.Layout, "the start point", "Slices.Interpolation");
        FiniteChecks.RequireFiniteFlat(b, loss.Layout, "the end point", "Slices.Interpolation");
        var direction = b.sub(a);
        return Sweep(loss, a, direction, null, Axis(points, start, end), [0.0], progress, cancellation);
    }

    /// <summary>Loss and error at w + alpha d along one filter-normalised random direction d.</summary>
    public static IReadOnlyList<SlicePoint> RandomDirection1D(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        SliceOptions? options = null)
    {
        var o = options ?? new SliceOptions();
        CheckAxis(o.Points, o.From, o.To, "Slices.RandomDirection1D");
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Slices.RandomDirection1D");
        using var scope = NewDisposeScope();
        var center = loss.GetFlat();
        using var generator = new Generator((ulong)o.Seed);
        var d = FilterNormalizedDirection(loss.Layout, center, generator, o.OneDimensional);
        return Sweep(loss, center, d, null, Axis(o.Points, o.From, o.To), [0.0], o.Progress, o.Cancellation);
    }

    /// <summary>
    /// Loss and error at w + alpha d along a given direction <paramref name="direction"/> (flat, in the layout of the
    /// selected parameters; e.g. a top eigenvector from <see cref="Lanczos"/>), for alpha on the options' axis. The
    /// direction is used as given (not normalised). Seed and OneDimensional of the options are not used.
    /// </summary>
    public static IReadOnlyList<SlicePoint> AlongDirection(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        Tensor direction, SliceOptions? options = null)
    {
        var o = options ?? new SliceOptions();
        CheckAxis(o.Points, o.From, o.To, "Slices.AlongDirection");
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Slices.AlongDirection");
        using var scope = NewDisposeScope();
        var center = loss.GetFlat();
        var d = loss.Conform(direction, nameof(direction), "Slices.AlongDirection");
        return Sweep(loss, center, d, null, Axis(o.Points, o.From, o.To), [0.0], o.Progress, o.Cancellation);
    }

    /// <summary>A 1-D slice of an open loss: along <paramref name="direction"/>, or a seeded filter-normalised random one when null.</summary>
    internal static IReadOnlyList<SlicePoint> Line(LandscapeLoss loss, Tensor? direction, SliceOptions o, string where)
    {
        CheckAxis(o.Points, o.From, o.To, where);
        using var scope = NewDisposeScope();
        var center = loss.GetFlat();
        Tensor d;
        if (direction is null)
        {
            using var generator = new Generator((ulong)o.Seed);
            d = FilterNormalizedDirection(loss.Layout, center, generator, o.OneDimensional);
        }
        else
        {
            d = loss.Conform(direction, nameof(direction), where);
        }
        return Sweep(loss, center, d, null, Axis(o.Points, o.From, o.To), [0.0], o.Progress, o.Cancellation);
    }

    /// <summary>Loss and error at w + alpha d1 + beta d2 on a Points x Points grid, with two filter-normalised random directions.</summary>
    public static IReadOnlyList<SlicePoint> RandomDirections2D(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        SliceOptions? options = null)
    {
        var o = options ?? new SliceOptions();
        CheckAxis(o.Points, o.From, o.To, "Slices.RandomDirections2D");
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Slices.RandomDirections2D");
        using var scope = NewDisposeScope();
        var center = loss.GetFlat();
        using var generator = new Generator((ulong)o.Seed);
        var d1 = FilterNormalizedDirection(loss.Layout, center, generator, o.OneDimensional);
        var d2 = FilterNormalizedDirection(loss.Layout, center, generator, o.OneDimensional);
        var axis = Axis(o.Points, o.From, o.To);
        return Sweep(loss, center, d1, d2, axis, axis, o.Progress, o.Cancellation);
    }

    /// <summary>
    /// A Gaussian random direction shaped like <paramref name="weights"/> (flat, in <paramref name="layout"/>), with each
    /// filter (row along the first dimension) of every multi-dimensional parameter rescaled to the norm of the same
    /// filter of the weights; one-dimensional parameters as <paramref name="oneDimensional"/> says.
    /// </summary>
    public static Tensor FilterNormalizedDirection(ParameterLayout layout, Tensor weights, Generator generator,
        OneDimensionalParameters oneDimensional = OneDimensionalParameters.Zero)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(generator);
        layout.CheckVector(weights, nameof(weights), "Slices.FilterNormalizedDirection");
        using var scope = NewDisposeScope();
        var direction = randn(layout.Dimension, ScalarType.Float64, generator: generator).to(weights.dtype, weights.device);
        foreach (var block in layout.Blocks)
        {
            var d = direction.narrow(0, block.Offset, block.Count);
            var w = weights.narrow(0, block.Offset, block.Count);
            if (block.Shape.Length <= 1)
            {
                switch (oneDimensional)
                {
                    case OneDimensionalParameters.Zero: d.zero_(); break;
                    case OneDimensionalParameters.CopyWeights: d.copy_(w); break;
                    default: d.mul_(w.norm().div(d.norm().Plus(1e-10))); break;
                }
                continue;
            }
            var filters = d.view(block.Shape[0], -1);
            var weightFilters = w.reshape(block.Shape[0], -1);
            // 1e-10 keeps a zero direction filter from producing NaN; it changes nothing otherwise.
            var scale = weightFilters.norm(1, keepdim: true).div(filters.norm(1, keepdim: true).Plus(1e-10));
            filters.mul_(scale);
        }
        return direction.MoveToOuterDisposeScope();
    }

    /// <summary>Writes points as CSV (alpha,loss,error_percent; with beta for 2-D slices), atomically, invariant culture.</summary>
    public static void WriteCsv(string path, IReadOnlyList<SlicePoint> points, bool twoDimensional = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(points);
        var text = new StringBuilder(twoDimensional ? "alpha,beta,loss,error_percent\n" : "alpha,loss,error_percent\n");
        foreach (var p in points)
        {
            text.Append(p.Alpha.ToString("R", CultureInfo.InvariantCulture)).Append(',');
            if (twoDimensional) text.Append(p.Beta.ToString("R", CultureInfo.InvariantCulture)).Append(',');
            text.Append(p.Loss.ToString("R", CultureInfo.InvariantCulture)).Append(',')
                .Append(p.ErrorPercent.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }
        AtomicFile.WriteAllText(path, text.ToString());
    }

    private static IReadOnlyList<SlicePoint> Sweep(LandscapeLoss loss, Tensor origin, Tensor d1, Tensor? d2, double[] alphas, double[] betas,
        IProgress<CurvatureProgress>? progress, CancellationToken cancellation)
    {
        var total = (long)alphas.Length * betas.Length;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var saved = loss.GetFlat();
        var results = new List<SlicePoint>(alphas.Length * betas.Length);
        try
        {
            using var point = origin.clone();
            foreach (var beta in betas)
            {
                foreach (var alpha in alphas)
                {
                    cancellation.ThrowIfCancellationRequested();
                    using (no_grad())
                    {
                        point.copy_(origin).AddScaled_(d1, alpha);
                        if (d2 is not null) point.AddScaled_(d2, beta);
                    }
                    loss.SetFlat(point);
                    var (l, error) = loss.Evaluate();
                    results.Add(new SlicePoint(alpha, beta, l, error));
                    progress?.Report(new CurvatureProgress("slice", results.Count, total, watch.Elapsed));
                }
            }
            return results;
        }
        finally
        {
            loss.SetFlat(saved);
            saved.Dispose();
        }
    }

    private static double[] Axis(int points, double from, double to) =>
        Enumerable.Range(0, points).Select(i => points == 1 ? from : from + (to - from) * i / (points - 1)).ToArray();

    private static void CheckAxis(int points, double from, double to, string where)
    {
        if (points < 1) throw new ArgumentException($"{where}: at least one point per axis; got {points}.", nameof(points));
        if (!double.IsFinite(from) || !double.IsFinite(to) || (points > 1 && !(to > from)))
            throw new ArgumentException($"{where}: the range [{from}, {to}] must be finite and increasing.");
    }
}
