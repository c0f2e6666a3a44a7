using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Cli.Commands;

/// <summary>
/// A network opened for a landscape measurement (`hessian`, `landscape`), with its evaluation set: either a trained
/// run (`--checkpoint RUN`: the network rebuilt from the stored run configuration with the checkpoint's weights, the
/// first N training samples of the run's own data in their stored order) or a model source (`--model-file`: a
/// TorchScript archive, TorchSharp weights with a zoo or factory architecture, or a run, on the data named: the first
/// N samples of the .npy arrays, of a named dataset's training split, or of a run's training split, in order). Owns
/// everything it loads.
/// </summary>
internal sealed class MeasuredRun : IDisposable
{
    private readonly MeasurableRun? measurable;
    private readonly OpenedModelAndData? opened;
    private readonly ModelSourceRequest? request;
    private readonly List<(Tensor Inputs, Tensor Labels)> evaluationSet;

    private PreparedRun? prepared => measurable?.Prepared;

    private MeasuredRun(MeasurableRun measurable)
    {
        this.measurable = measurable;
        Folder = measurable.Folder;
        CheckpointPath = measurable.CheckpointPath;
        Meta = measurable.Meta;
        Config = measurable.Config;
        evaluationSet = [.. measurable.EvaluationSet];
        Samples = measurable.Samples;
        Loss = measurable.Loss;
        Name = measurable.Meta.Model;
        DefaultOutBase = Folder + Path.DirectorySeparatorChar;
    }

    private MeasuredRun(ModelSourceRequest request, OpenedModelAndData opened, List<(Tensor Inputs, Tensor Labels)> evaluationSet, long samples)
    {
        this.request = request;
        this.opened = opened;
        this.evaluationSet = evaluationSet;
        Samples = samples;
        var path = Path.GetFullPath(opened.Model.Path);
        CheckpointPath = path;
        if (opened.Model.Format == ModelFormat.Run)
        {
            // A run read as a model source (its own or a named architecture): outputs go into the run folder, as for --checkpoint.
            Folder = Path.GetDirectoryName(path)!;
            Name = Path.GetFileName(Folder);
            DefaultOutBase = Folder + Path.DirectorySeparatorChar;
        }
        else
        {
            // A model file: outputs go next to it, named after it (net.pt -> net-hessian-lanczos).
            Folder = Path.GetDirectoryName(path)!;
            Name = Path.GetFileName(path);
            DefaultOutBase = Path.Combine(Folder, Path.GetFileNameWithoutExtension(path) + "-");
        }
    }

    /// <summary>The run folder (the checkpoint's folder when a file was named), or the folder of a model file.</summary>
    public string Folder { get; }

    /// <summary>Full path of the checkpoint file, or of the model file.</summary>
    public string CheckpointPath { get; }

    /// <summary>A short name of the network for titles and log lines: the run's zoo model, or the model file's name.</summary>
    public string Name { get; }

    /// <summary>What the default output folder's name is appended to: RUN/ for runs, DIR/STEM- for a model file DIR/STEM.EXT.</summary>
    private string DefaultOutBase { get; }

    /// <summary>The checkpoint's metadata (runs opened by --checkpoint only).</summary>
    public CheckpointMeta? Meta { get; }

    /// <summary>The stored run configuration with the command's thread, device and data overrides (runs opened by --checkpoint only).</summary>
    public RunConfig? Config { get; }

    /// <summary>The network at the checkpoint's (or file's) weights.</summary>
    public nn.Module<Tensor, Tensor> Model => prepared is not null ? (nn.Module<Tensor, Tensor>)prepared.Task.Model : opened!.Model.Module;

    /// <summary>The evaluation set: the first <see cref="Samples"/> samples, in order, as batches.</summary>
    public IReadOnlyList<(Tensor Inputs, Tensor Labels)> EvaluationSet => evaluationSet;

    /// <summary>Number of samples in the evaluation set (sequences for a language model).</summary>
    public long Samples { get; }

    /// <summary>
    /// The per-batch loss of a language model (mean cross-entropy per token over (B, T, V) logits); null for a
    /// classifier, whose loss is the landscape default (cross-entropy of (N, C) logits).
    /// </summary>
    public Func<Tensor, Tensor, Tensor>? Loss { get; }

    /// <summary>
    /// Builds a fresh network of this architecture, for the model copies of a measurement (float64, parallel
    /// workers): the model source's own copy (a TorchScript archive read again, the factory called again), else the
    /// zoo's factory for a run's network.
    /// </summary>
    public Func<nn.Module<Tensor, Tensor>>? ModelFactory => opened?.Model.CreateCopy ?? ZooCopies.FactoryFor(Model);

    /// <summary>The stable name of <see cref="Loss"/> for fingerprints (null with the default loss).</summary>
    public string? LossName => Loss is null ? null : "per-token-cross-entropy";

    /// <summary>Number of trainable parameters of the whole network.</summary>
    public long Parameters => prepared?.Parameters ?? Model.parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>The default output folder of a measurement called <paramref name="name"/>: RUN/NAME, or FILE-NAME next to a model file.</summary>
    public string DefaultOut(string name) => Path.GetFullPath(DefaultOutBase + name);

    /// <summary>Adds what was measured to a result's JSON: the run's model, optimizer, epoch and checkpoint, or the model file, its format and the data.</summary>
    public void Describe(JsonObject json)
    {
        if (measurable is not null)
        {
            measurable.Describe(json);
            return;
        }
        json["model"] = opened!.Model.Description;
        json["model_params"] = Parameters;
        json["model_file"] = CheckpointPath;
        json["format"] = opened.Model.Format.ToString().ToLowerInvariant();
        json["data"] = opened.DataDescription;
    }

    /// <summary>
    /// The checkpoint file that <paramref name="path"/> names: a run folder holding checkpoint.bin, or the file itself.
    /// </summary>
    /// <exception cref="UsageException">Neither exists.</exception>
    public static string ResolveCheckpoint(string path, string option)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            var file = Path.Combine(full, Trainer.CheckpointFileName);
            if (!File.Exists(file))
                throw new UsageException($"{option} {path}: the folder holds no {Trainer.CheckpointFileName}; expected the folder of a 'widevalley train' run (or its checkpoint file)");
            return file;
        }
        if (File.Exists(full)) return full;
        throw new UsageException($"{option} {path}: no such run folder or checkpoint file");
    }

    /// <summary>Where notices of a model file read at another checkpoint than named (a damaged newest one) go; null: nowhere.</summary>
    private TextWriter? warnings;

    /// <summary>
    /// The checkpoint to read for <paramref name="path"/>. For a run folder, its newest intact generation: when
    /// checkpoint.bin is damaged and checkpoint.prev.bin is intact, the latter, with a one-line warning on
    /// <paramref name="warnings"/> that names the damaged file and section and the checkpoint used (its epoch and step).
    /// A checkpoint file named explicitly is never swapped for another: a damaged one is refused, and its previous
    /// generation, when there is one, is named as an option.
    /// </summary>
    /// <param name="path">A run folder or a checkpoint file, as the user wrote it.</param>
    /// <param name="option">The option or argument that named it, for messages.</param>
    /// <param name="warnings">Where the fallback warning goes (stderr); null says nothing.</param>
    /// <param name="doing">What is done with the checkpoint, for the warning: "measuring", "evaluating".</param>
    /// <exception cref="UsageException">Neither a run folder with a checkpoint nor a file.</exception>
    /// <exception cref="CheckpointDamagedException">No generation that may be used is intact (the CLI exits 1; nothing is written).</exception>
    public static IntactCheckpoint SelectCheckpoint(string path, string option, TextWriter? warnings, string doing = "measuring")
    {
        var file = ResolveCheckpoint(path, option);
        if (!Directory.Exists(Path.GetFullPath(path)))
        {
            try
            {
                return new IntactCheckpoint(file, Checkpoint.Verify(file), null);
            }
            catch (CheckpointDamagedException e)
            {
                var previous = Checkpoint.PreviousGenerationPath(file);
                throw new CheckpointDamagedException(file, e.Section,
                    $"{option} {path}: {e.Message}; a checkpoint file named explicitly is not replaced by another" +
                    (File.Exists(previous) && previous != file
                        ? $". The previous generation {previous} may be intact: name it ({option} {previous}), or name the run folder " +
                          $"({option} {Path.GetDirectoryName(file)}) to fall back to it with a warning"
                        : ""), e);
            }
        }
        var chosen = Checkpoint.SelectIntactForReading(file);
        if (chosen.DamagedNewest is { } damaged)
        {
            var section = damaged.Message.Contains(damaged.Section, StringComparison.Ordinal) ? "" : $" (damaged section: {damaged.Section})";
            warnings?.WriteLine($"widevalley: warning: {damaged.Message}{section}; {doing} the previous checkpoint {chosen.Path} " +
                                $"({Checkpoint.DescribePosition(chosen.Meta)}) instead");
        }
        return chosen;
    }

    /// <summary>Reads a checkpoint's metadata and stored configuration, refusing files that cannot be rebuilt.</summary>
    public static (CheckpointMeta Meta, RunConfig Config) ReadConfig(string checkpointPath)
    {
        var meta = Checkpoint.ReadMeta(checkpointPath);
        return (meta, meta.RequireRunConfig(checkpointPath));
    }

    /// <summary>
    /// Opens the run at <paramref name="path"/>: rebuilds its data and network, loads the weights and takes the first
    /// <paramref name="samples"/> training samples (all of them, up to <paramref name="defaultSamples"/>, when null) in
    /// batches of <paramref name="batchSize"/>. A language model is refused unless <paramref name="languageModels"/>:
    /// its samples are then the training text cut into consecutive sequences of unroll + 1 tokens (inputs and
    /// next-token targets), each run from the zero state, so that the measured loss is a function of the weights alone.
    /// A run folder whose newest checkpoint is damaged is opened at its intact previous generation, with a warning on
    /// <paramref name="warnings"/> (<see cref="SelectCheckpoint"/>).
    /// </summary>
    public static MeasuredRun Open(string path, string option, int? samples, long defaultSamples, int batchSize, RunOverrides overrides,
        bool languageModels = false, TextWriter? warnings = null)
    {
        if (samples is < 1) throw new UsageException($"--samples must be at least 1, got {samples}");
        if (batchSize < 1) throw new UsageException($"--batch-size must be at least 1, got {batchSize}");
        // A run folder whose newest checkpoint is damaged is measured at its previous generation (with a warning).
        var (checkpoint, meta, _) = SelectCheckpoint(path, option, warnings);
        var stored = meta.RequireRunConfig(checkpoint);
        var isLanguageModel = ModelZoo.Describe(stored.Model).Kind == ModelKind.LanguageModel;
        if (isLanguageModel && !languageModels)
            throw new UsageException(
                $"{option} {path}: the run trained '{stored.Model}', a language model; landscape measurements take image classifiers (cross-entropy on labelled images)");
        var config = overrides.Apply(stored);
        // The run rebuilt with its weights and first samples: the library's service, which the experiments share.
        return new MeasuredRun(MeasurableRun.Open(checkpoint, meta, config, samples, defaultSamples, batchSize));
    }

    /// <summary>
    /// Opens a model source (<see cref="ModelSourceRequest"/>: a TorchScript archive, TorchSharp weights with their
    /// architecture, or a run) and its data, and takes the first <paramref name="samples"/> samples of the data (all
    /// of them, up to <paramref name="defaultSamples"/>, when null) in order, in batches of <paramref name="batchSize"/>:
    /// of the .npy arrays, or of the training split of a named dataset or of the run's own data.
    /// </summary>
    public static MeasuredRun OpenModel(ModelSourceRequest request, int? samples, long defaultSamples, int batchSize, int threads, TextWriter? warnings = null)
    {
        if (samples is < 1) throw new UsageException($"--samples must be at least 1, got {samples}");
        if (batchSize < 1) throw new UsageException($"--batch-size must be at least 1, got {batchSize}");
        if (threads < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threads}");
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(threads);
        var opened = request.Open();
        if (opened.Model.Notice is string notice) warnings?.WriteLine($"widevalley: warning: {notice}");
        try
        {
            var (name, data) = opened.Splits[0];
            var available = data.Count;
            if (samples is int wanted && wanted > available)
                throw new UsageException(
                    $"--samples {wanted}: {(name == "data" ? "the data" : $"the {name} split of {opened.DataDescription}")} has only {available:N0} samples ({opened.DataDescription}); ask for at most {available:N0}");
            var count = samples ?? Math.Min(defaultSamples, available);
            return new MeasuredRun(request, opened, MeasurableRun.Batches(data.Inputs, data.Labels, count, batchSize), count) { warnings = warnings };
        }
        catch
        {
            opened.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The flat (selected) parameters of the other end point of an interpolation, <paramref name="otherPath"/>, read
    /// the way this network was (another checkpoint of the same run architecture, or another model file of the same
    /// kind), after checking that it is the same architecture; the messages name both. This network keeps its own
    /// weights and buffers.
    /// </summary>
    public Tensor OtherParameters(string otherPath, string thisArgument, ParameterSelection selection)
    {
        if (prepared is not null)
        {
            // The generation the command chose (and warned about) for --other before this network was opened.
            LoadOtherWeights(SelectCheckpoint(otherPath, "--other", warnings: null).Path, otherPath, thisArgument);
            try
            {
                return Slices.FlatParameters(Model, selection);
            }
            finally
            {
                ReloadOwnWeights();
            }
        }

        var data = opened!.Splits[0].Data;
        using var other = request!.OpenModel(data, Model.parameters().First().device, otherPath);
        if (other.Notice is string notice) this.warnings?.WriteLine($"widevalley: warning: {notice}");
        var mine = Model.named_parameters().Select(p => $"{p.name} [{string.Join(", ", p.parameter.shape)}]").ToList();
        var theirs = other.Module.named_parameters().Select(p => $"{p.name} [{string.Join(", ", p.parameter.shape)}]").ToList();
        if (!mine.SequenceEqual(theirs))
        {
            var i = Enumerable.Range(0, Math.Min(mine.Count, theirs.Count)).FirstOrDefault(k => mine[k] != theirs[k], Math.Min(mine.Count, theirs.Count));
            throw new UsageException(
                $"--other {otherPath} ({other.Description}) is not the same architecture as {thisArgument} ({opened.Model.Description}): " +
                $"parameter {i + 1} is {(i < theirs.Count ? theirs[i] : "missing")} there and {(i < mine.Count ? mine[i] : "missing")} here");
        }
        var flat = Slices.FlatParameters(other.Module, selection);
        // The result outlives the other network; Slices.FlatParameters gives a tensor of its own (a concatenation).
        return flat;
    }

    /// <summary>
    /// Loads the weights of another checkpoint into this run's network, after checking that it was written for the same
    /// architecture; the message names both runs when it was not.
    /// </summary>
    public void LoadOtherWeights(string otherCheckpoint, string otherArgument, string thisArgument)
    {
        var (meta, config) = ReadConfig(otherCheckpoint);
        string Describe(string argument, string model, long parameters, RunConfig c) =>
            $"{argument} ('{model}', {parameters:N0} parameters{(c.HiddenSize is int h ? $", hidden size {h}" : "")})";
        var mine = Describe(thisArgument, Meta!.Model, Meta.Parameters, Config!);
        var theirs = Describe(otherArgument, meta.Model, meta.Parameters, config);
        if (meta.Model != Meta.Model || meta.Parameters != Meta.Parameters || config.HiddenSize != Config!.HiddenSize || config.Layers != Config.Layers)
            throw new UsageException($"--other {theirs} is not the same architecture as --checkpoint {mine}; both checkpoints must hold the same network");
        try
        {
            Checkpoint.LoadWeights(otherCheckpoint, prepared!.Task.Model);
        }
        catch (InvalidDataException e)
        {
            throw new UsageException($"--other {theirs} does not fit the network of --checkpoint {mine}: {e.Message}");
        }
    }

    /// <summary>Puts this run's own weights (and buffers) back.</summary>
    public void ReloadOwnWeights() => Checkpoint.LoadWeights(CheckpointPath, prepared!.Task.Model);

    /// <summary>Frees the data, the network and the optimizer built with them.</summary>
    public void Dispose()
    {
        measurable?.Dispose();
        opened?.Dispose();
    }
}

/// <summary>Settings a measurement may change in the stored run configuration: threads, device, data folder.</summary>
/// <param name="Threads">libtorch threads (0: default).</param>
/// <param name="Device">Device to compute on (null: the run's).</param>
/// <param name="DataDir">Where to read the data (null: where the run found it).</param>
internal sealed record RunOverrides(int Threads, string? Device, string? DataDir)
{
    /// <summary>The stored configuration with these overrides and without TensorBoard output.</summary>
    public RunConfig Apply(RunConfig stored)
    {
        if (Threads < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
        var config = stored with { Threads = Threads, TensorBoard = false };
        if (Device is string device) config = config with { Device = device };
        if (DataDir is string dir) config = config with { DataDir = dir };
        return config;
    }
}

/// <summary>Options shared by the landscape commands, and their parsing into library settings.</summary>
internal static class MeasurementOptions
{
    public static Option<int?> Samples(long defaultSamples) => new("--samples")
    {
        Description = $"Evaluation set: the first N samples, in order, of the run's training set, or of the data named with --model-file (the .npy arrays, " +
                      $"a named dataset's training split) (default {defaultSamples:N0}, or all if fewer).",
    };

    public static Option<int?> BatchSize(string defaultText) => new("--batch-size") { Description = $"Samples per forward pass ({defaultText})." };

    public static Option<string> Dtype() => new("--dtype")
    {
        Description = "float32 (the network's type) or float64 (a float64 copy of the network; reference quality).",
        DefaultValueFactory = _ => "float32",
    };

    public static Option<string> BatchNorm() => new("--bn")
    {
        Description = "BatchNorm during the measurement: running (eval-mode statistics, default) or batch (each batch's own statistics).",
        DefaultValueFactory = _ => "running",
    };

    public static Option<string> Dropout() => new("--dropout")
    {
        Description = "Dropout during the measurement: off (default; a deterministic loss) or on (a random loss).",
        DefaultValueFactory = _ => "off",
    };

    public static Option<string?> Params() => new("--params")
    {
        Description = "Measure with respect to the parameters whose names start with these comma-separated prefixes (e.g. body.fc2); default all.",
    };

    public static Option<long> Seed() => new("--seed") { Description = "Seed of the random probes and directions.", DefaultValueFactory = _ => 0 };

    public static Option<int> Threads() => new("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };

    public static Option<string?> Out(string defaultText) => new("--out") { Description = $"Output folder (default {defaultText})." };

    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object (progress goes to stderr)." };

    /// <summary>Float32 (null: compute in the model's own type) or Float64.</summary>
    public static ScalarType? ParseDtype(string text) => text.ToLowerInvariant() switch
    {
        "float32" or "fp32" => null,
        "float64" or "fp64" or "double" => ScalarType.Float64,
        _ => throw new UsageException($"--dtype must be float32 or float64, got '{text}'"),
    };

    public static BatchNormMode ParseBatchNorm(string text) => text.ToLowerInvariant() switch
    {
        "running" => BatchNormMode.RunningStatistics,
        "batch" => BatchNormMode.BatchStatistics,
        _ => throw new UsageException($"--bn must be running or batch, got '{text}'"),
    };

    public static DropoutMode ParseDropout(string text) => text.ToLowerInvariant() switch
    {
        "off" => DropoutMode.Off,
        "on" => DropoutMode.On,
        _ => throw new UsageException($"--dropout must be off or on, got '{text}'"),
    };

    public static ParameterSelection ParseParams(string? text)
    {
        if (text is null) return ParameterSelection.All;
        var prefixes = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (prefixes.Length == 0) throw new UsageException("--params: give at least one parameter-name prefix, e.g. body.fc2");
        return ParameterSelection.ByPrefix(prefixes);
    }

    /// <summary>"float32" or "float64": the type the measurement actually ran in.</summary>
    public static string DtypeName(ScalarType type) => type switch
    {
        ScalarType.Float64 => "float64",
        ScalarType.Float32 => "float32",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>A JSON number, or null for NaN and infinities (which JSON cannot hold).</summary>
    public static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    /// <summary>A JSON array of numbers (non-finite entries as null).</summary>
    public static JsonArray Numbers(IEnumerable<double> values) => new(values.Select(Number).ToArray());

    /// <summary>Invariant-culture formatting for the readable output lines.</summary>
    public static string F(double value, string format = "G6") => value.ToString(format, CultureInfo.InvariantCulture);
}
