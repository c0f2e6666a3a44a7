using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using WideValley.Data;
using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>Which eigenvalue densities <see cref="CurvatureTracker"/> records besides lambda_max and the trace.</summary>
public enum CurvatureSpectra
{
    /// <summary>None (the default): lambda_max and trace only.</summary>
    None,
    /// <summary>Our Lanczos density (<see cref="LanczosDensityOptions.Default"/>: 128 steps with reorthogonalisation) of the full Hessian and every layer.</summary>
    Ours,
    /// <summary>The authors' preset (<see cref="LanczosDensityOptions.Authors"/>: 64 + 128 steps, no reorthogonalisation) of the full Hessian and every layer.</summary>
    Authors,
}

/// <summary>
/// Settings of <see cref="CurvatureTracker"/> (<c>train --track-curvature</c>): the Hessian of the mean cross-entropy
/// over a fixed class-balanced subset of the training set, after every epoch, full and per layer.
/// </summary>
public sealed record CurvatureTrackingOptions
{
    /// <summary>Training examples per class the Hessian is taken over (the authors' 10). Fixed for the whole run.</summary>
    public int ExamplesPerClass { get; init; } = 10;

    /// <summary>Seed of the subset, the Lanczos start vectors and the Hutchinson probes (the authors' subset seed is 0). The same probes every epoch.</summary>
    public long Seed { get; init; }

    /// <summary>Most Lanczos steps for each lambda_max (full and per layer); stops earlier once the error bound is 1e-3 relative.</summary>
    public int LanczosIterations { get; init; } = 20;

    /// <summary>Hutchinson probes for the traces; the per-layer traces come from the same products as the full one.</summary>
    public int HutchinsonProbes { get; init; } = 10;

    /// <summary>
    /// The layers: "weights" (the authors' layers: the weight of every convolution and linear module), or a comma-separated
    /// list of parameter names ("body.fc3.weight") or module names (a module stands for its weight).
    /// </summary>
    public string Layers { get; init; } = "weights";

    /// <summary>Densities to record as well (default none).</summary>
    public CurvatureSpectra Spectra { get; init; } = CurvatureSpectra.None;

    /// <summary>
    /// Lanczos steps of each density instead of the preset's 128 (the authors' bound run then takes half as many); null:
    /// the preset's. For quick checks only: the kernel width follows the steps, so fewer steps give a coarser density.
    /// </summary>
    public int? DensitySteps { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the command-line option of the first invalid value.</summary>
    public void Validate()
    {
        if (ExamplesPerClass < 1) throw new ArgumentException($"--track-examples-per-class must be at least 1, got {ExamplesPerClass}");
        if (LanczosIterations < 2) throw new ArgumentException($"--track-lanczos-iterations must be at least 2, got {LanczosIterations}");
        if (HutchinsonProbes < 1) throw new ArgumentException($"--track-hutchinson-probes must be at least 1, got {HutchinsonProbes}");
        if (string.IsNullOrWhiteSpace(Layers) || Layers.Split(',').Any(s => s.Trim().Length == 0))
            throw new ArgumentException($"--track-layers must be 'weights' or a comma-separated list of parameter or module names, got '{Layers}'");
        if (!Enum.IsDefined(Spectra)) throw new ArgumentException($"--track-spectra must be none, ours or authors, got '{Spectra}'");
        if (DensitySteps is < 4) throw new ArgumentException($"the density's Lanczos steps must be at least 4, got {DensitySteps}");
    }

    /// <summary>
    /// The most Hessian-vector products one measurement takes, for L layers: (1 + L) x LanczosIterations +
    /// HutchinsonProbes, plus (1 + L) x the density's steps (128 ours, 64 + 128 authors) when spectra are recorded.
    /// Each product is one double-backward pass over ExamplesPerClass x classes examples.
    /// </summary>
    public long MaxProductsPerEpoch(int layers)
    {
        var density = DensityOptions is { } d ? d.BoundSteps + (long)d.Probes * d.Iterations : 0;
        return (1L + layers) * (LanczosIterations + density) + HutchinsonProbes;
    }

    /// <summary>The density settings of <see cref="Spectra"/> (null for none), seeded.</summary>
    [JsonIgnore]
    public LanczosDensityOptions? DensityOptions => Spectra switch
    {
        CurvatureSpectra.Ours => LanczosDensityOptions.Default with { Seed = Seed, Iterations = DensitySteps ?? LanczosDensityOptions.Default.Iterations },
        CurvatureSpectra.Authors => LanczosDensityOptions.Authors with
        {
            Seed = Seed,
            Iterations = DensitySteps ?? LanczosDensityOptions.Authors.Iterations,
            BoundSteps = DensitySteps is int steps ? steps / 2 : LanczosDensityOptions.Authors.BoundSteps,
        },
        _ => null,
    };
}

/// <summary>A logged Lanczos density (<see cref="LanczosDensityResult"/> without the arrays' computed parts).</summary>
public sealed record DensityRecord
{
    /// <summary>Ritz values per probe (eigenvalue units).</summary>
    public double[][] Nodes { get; init; } = [];
    /// <summary>Their weights per probe.</summary>
    public double[][] Weights { get; init; } = [];
    /// <summary>lb after the margin.</summary>
    public double LowerBound { get; init; }
    /// <summary>ub after the margin.</summary>
    public double UpperBound { get; init; }
    /// <summary>Grid points of the density.</summary>
    public int Points { get; init; }
    /// <summary>Kernel sigma on [-1, 1].</summary>
    public double NormalizedSigma { get; init; }
    /// <summary>Kernel cut-off on [-1, 1].</summary>
    public double NormalizedCutoff { get; init; }
    /// <summary>Whether the Lanczos runs reorthogonalised.</summary>
    public bool Reorthogonalized { get; init; }
    /// <summary>Hessian-vector products spent.</summary>
    public long Products { get; init; }

    /// <summary>The record of a density.</summary>
    public static DensityRecord From(LanczosDensityResult r) => new()
    {
        Nodes = r.Nodes, Weights = r.Weights, LowerBound = r.LowerBound, UpperBound = r.UpperBound, Points = r.Points,
        NormalizedSigma = r.NormalizedSigma, NormalizedCutoff = r.NormalizedCutoff, Reorthogonalized = r.Reorthogonalized, Products = r.OperatorApplications,
    };

    /// <summary>The density again.</summary>
    public LanczosDensityResult ToResult() =>
        new(Nodes, Weights, LowerBound, UpperBound, Points, NormalizedSigma, NormalizedCutoff, Products, Reorthogonalized);
}

/// <summary>The curvature of one operator (the full Hessian or a layer's diagonal block) at one epoch.</summary>
public sealed record OperatorCurvature
{
    /// <summary>"full", or the layer's module name.</summary>
    public string Name { get; init; } = "";
    /// <summary>The layer's parameter name (null for the full Hessian).</summary>
    public string? Parameter { get; init; }
    /// <summary>Scalars in the block.</summary>
    public long Count { get; init; }
    /// <summary>The layer's relative depth (null for the full Hessian).</summary>
    public double? RelativeDepth { get; init; }
    /// <summary>Largest eigenvalue (Lanczos with reorthogonalisation).</summary>
    public double LambdaMax { get; init; }
    /// <summary>Lanczos's bound on its error.</summary>
    public double LambdaMaxErrorBound { get; init; }
    /// <summary>Lanczos steps taken.</summary>
    public int LanczosSteps { get; init; }
    /// <summary>Trace (Hutchinson).</summary>
    public double Trace { get; init; }
    /// <summary>Its standard error over probes.</summary>
    public double TraceStandardError { get; init; }
    /// <summary>The density, when recorded.</summary>
    public DensityRecord? Density { get; init; }
}

/// <summary>One line of curvature.jsonl: the measurement after one epoch (epoch 0: at the initial weights).</summary>
public sealed record CurvatureRecord
{
    /// <summary>The epoch (0 = before training).</summary>
    public int Epoch { get; init; }
    /// <summary>Examples the Hessian was taken over.</summary>
    public long Examples { get; init; }
    /// <summary>Hessian-vector products spent.</summary>
    public long Products { get; init; }
    /// <summary>Wall time of the measurement.</summary>
    public double Seconds { get; init; }
    /// <summary>The full Hessian.</summary>
    public OperatorCurvature Full { get; init; } = new();
    /// <summary>Every layer's diagonal block, in depth order.</summary>
    public IReadOnlyList<OperatorCurvature> Layers { get; init; } = [];

    /// <summary>snake_case, NaN allowed, one line.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>This record as one JSON line (no line break).</summary>
    public string ToJsonLine() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads one line.</summary>
    public static CurvatureRecord FromJsonLine(string line) =>
        JsonSerializer.Deserialize<CurvatureRecord>(line, Json) ?? throw new JsonException("empty curvature line");
}

/// <summary>
/// Records lambda_max and the trace of the Hessian, full and per layer (<see cref="LayerwiseHessian"/>), after every
/// epoch of a training run, over a fixed class-balanced subset of the training set, into curvature.jsonl in the run
/// folder (one line per epoch; epoch 0 at the initial weights of a new run). An <see cref="IEpochEndHook"/>: the trainer
/// knows nothing of it. Cost per epoch: at most <see cref="CurvatureTrackingOptions.MaxProductsPerEpoch"/>
/// Hessian-vector products on ExamplesPerClass x classes examples. BatchNorm uses its running statistics and dropout
/// is off (the network as evaluated); the model's weights, modes and buffers are left as they were, and no global
/// random generator is touched, so a tracked run trains exactly as an untracked one.
/// </summary>
public sealed class CurvatureTracker : IEpochEndHook, IDisposable
{
    /// <summary>The log's file name in the run folder.</summary>
    public const string FileName = "curvature.jsonl";

    private readonly CurvatureTrackingOptions options;
    private readonly Tensor inputs;
    private readonly Tensor labels;
    private string? path;
    private IReadOnlyList<HessianLayer>? layers;

    /// <summary>Tracks with <paramref name="options"/> over a subset of <paramref name="training"/> drawn now.</summary>
    /// <exception cref="ArgumentException">Invalid options, or a class with too few examples.</exception>
    public CurvatureTracker(CurvatureTrackingOptions options, LabeledData training)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(training);
        options.Validate();
        this.options = options;
        (inputs, labels) = LayerwiseHessian.ExamplesPerClass(training, options.ExamplesPerClass, options.Seed);
        inputs = inputs.DetachFromDisposeScope();
        labels = labels.DetachFromDisposeScope();
    }

    /// <summary>The settings.</summary>
    public CurvatureTrackingOptions Options => options;

    /// <summary>Examples the Hessian is taken over.</summary>
    public long Examples => labels.shape[0];

    /// <summary>Measurements written so far in this session.</summary>
    public IReadOnlyList<CurvatureRecord> Written => written;
    private readonly List<CurvatureRecord> written = [];

    /// <summary>
    /// The layers <see cref="CurvatureTrackingOptions.Layers"/> names in <paramref name="model"/>; refuses unknown names
    /// with the model's parameter names.
    /// </summary>
    /// <exception cref="ArgumentException">A name that is neither a parameter nor a module with a weight.</exception>
    public IReadOnlyList<HessianLayer> ResolveLayers(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (options.Layers.Trim().Equals("weights", StringComparison.OrdinalIgnoreCase)) return LayerwiseHessian.WeightLayers(model);
        var parameters = model.named_parameters().Select(np => np.name).ToHashSet(StringComparer.Ordinal);
        var names = new List<string>();
        foreach (var raw in options.Layers.Split(','))
        {
            var name = raw.Trim();
            var resolved = parameters.Contains(name) ? name : parameters.Contains(name + ".weight") ? name + ".weight" : null;
            if (resolved is null)
                throw new ArgumentException(
                    $"--track-layers: '{name}' is neither a parameter nor a module with a weight; the model's parameters are {string.Join(", ", model.named_parameters().Select(np => np.name))}");
            if (!names.Contains(resolved)) names.Add(resolved);
        }
        return LayerwiseHessian.Layers(model, ParameterSelection.Named([.. names]));
    }

    /// <inheritdoc/>
    public string? Start(nn.Module model, string? outputDirectory, int completedEpochs, bool resuming)
    {
        layers = ResolveLayers(model);
        path = outputDirectory is null ? null : Path.Combine(outputDirectory, FileName);
        string? message = null;
        if (path is not null)
        {
            Directory.CreateDirectory(outputDirectory!);
            if (!resuming) AtomicFile.WriteAllText(path, "");
            else message = Repair(path, completedEpochs);
        }
        // Epoch 0 is the initial weights: measured at the start of a new run only (a resume inside epoch 1 has moved on).
        if (!resuming) Record(model, 0);
        return message;
    }

    /// <inheritdoc/>
    public void EpochEnded(EpochEndContext context) => Record(context.Model, context.Epoch);

    /// <summary>Measures the model now and appends the line of <paramref name="epoch"/>.</summary>
    public CurvatureRecord Record(nn.Module model, int epoch)
    {
        var record = Measure(model, epoch);
        written.Add(record);
        if (path is not null)
        {
            using var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
            var bytes = Encoding.UTF8.GetBytes(record.ToJsonLine() + "\n");
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }
        return record;
    }

    /// <summary>The full Hessian's and every layer's lambda_max, trace and (optionally) density at the model's current weights.</summary>
    /// <exception cref="ArgumentException">The model does not map a tensor to a tensor.</exception>
    public CurvatureRecord Measure(nn.Module model, int epoch)
    {
        if (model is not nn.Module<Tensor, Tensor> network)
            throw new ArgumentException($"--track-curvature needs a network from a tensor to a tensor; got {model.GetType().Name}.");
        var list = layers ?? ResolveLayers(model);
        var watch = Stopwatch.StartNew();
        IReadOnlyList<(Tensor Inputs, Tensor Labels)> batches = [(inputs, labels)];
        long products = 0;
        OperatorCurvature full;
        HutchinsonResult trace;
        using (var op = LayerwiseHessian.FullOperator(network, batches))
        {
            trace = Hutchinson.Run(op, new HutchinsonOptions { Probes = options.HutchinsonProbes, Seed = options.Seed, Grouping = LayerGrouping.PerParameterTensor });
            full = Describe(op, "full", null, null, trace.Total);
            products += op.HvpCount;
        }
        var perLayer = new List<OperatorCurvature>();
        foreach (var layer in list)
        {
            using var op = LayerwiseHessian.LayerOperator(network, batches, layer);
            var estimate = trace.Layers.First(t => t.Name == layer.Parameter);
            perLayer.Add(Describe(op, layer.Name, layer.Parameter, layer.RelativeDepth, estimate));
            products += op.HvpCount;
        }
        return new CurvatureRecord
        {
            Epoch = epoch,
            Examples = Examples,
            Products = products,
            Seconds = watch.Elapsed.TotalSeconds,
            Full = full,
            Layers = perLayer,
        };
    }

    private OperatorCurvature Describe(Hvp op, string name, string? parameter, double? depth, TraceEstimate trace)
    {
        var top = Lanczos.Run(op, 1, SpectrumEnd.Largest, new LanczosOptions
        {
            MaxIterations = (int)Math.Min(options.LanczosIterations, op.Dimension),
            Tolerance = 1e-3,
            StoppingRule = LanczosStoppingRule.ErrorBound,
            Seed = options.Seed,
        });
        var density = options.DensityOptions is { } d ? DensityRecord.From(LanczosDensity.Run(op, d)) : null;
        return new OperatorCurvature
        {
            Name = name,
            Parameter = parameter,
            Count = op.Dimension,
            RelativeDepth = depth,
            LambdaMax = top.Eigenvalues[0],
            LambdaMaxErrorBound = top.ErrorBounds[0],
            LanczosSteps = top.Iterations,
            Trace = trace.Trace,
            TraceStandardError = trace.StandardError,
            Density = density,
        };
    }

    /// <summary>
    /// Keeps the lines of epochs up to <paramref name="completedEpochs"/> (the checkpoint's) and drops later ones, lines that
    /// are not valid JSON and a torn last line; rewrites the file atomically when something was dropped. Returns what
    /// was dropped, or null.
    /// </summary>
    public static string? Repair(string path, int completedEpochs)
    {
        if (!File.Exists(path)) return null;
        var lines = File.ReadAllText(path).Split('\n');
        var kept = new List<string>();
        var dropped = new List<string>();
        var seen = new HashSet<int>();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            CurvatureRecord? r = null;
            try { r = CurvatureRecord.FromJsonLine(line); }
            catch (JsonException) { }
            if (r is null) dropped.Add(i == lines.Length - 1 ? "a torn last line" : $"line {i + 1} (not valid JSON)");
            else if (r.Epoch > completedEpochs) dropped.Add($"line {i + 1} (epoch {r.Epoch}, measured after the checkpoint was written)");
            else if (!seen.Add(r.Epoch)) dropped.Add($"line {i + 1} (epoch {r.Epoch} again)");
            else kept.Add(line);
        }
        var text = string.Concat(kept.Select(k => k + "\n"));
        if (dropped.Count == 0 && File.ReadAllText(path) == text) return null;
        AtomicFile.WriteAllText(path, text);
        return dropped.Count == 0 ? null : $"{path}: repaired to the checkpoint (epoch {completedEpochs} done): dropped {string.Join("; ", dropped)}";
    }

    /// <summary>Every line of a curvature.jsonl file.</summary>
    public static IReadOnlyList<CurvatureRecord> Read(string path) =>
        File.ReadAllLines(path).Where(l => l.Trim().Length > 0).Select(CurvatureRecord.FromJsonLine).ToList();

    /// <summary>Frees the subset.</summary>
    public void Dispose()
    {
        inputs.Dispose();
        labels.Dispose();
    }
}
