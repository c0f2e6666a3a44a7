using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TorchSharp;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>
/// Everything about a checkpoint except its tensors: its format version, the training progress, what was trained
/// (<see cref="Run"/>) and, for runs built from a <see cref="Training.RunConfig"/>, that configuration.
/// </summary>
public sealed class CheckpointMeta
{
    /// <summary>The format the checkpoint was written in (<see cref="Checkpoint.FormatVersion"/> for new ones).</summary>
    public int FormatVersion { get; set; } = Checkpoint.FormatVersion;
    /// <summary>Epochs fully done (trained, evaluated and logged).</summary>
    public int CompletedEpochs { get; set; }
    /// <summary>Outer steps already taken in epoch <c>CompletedEpochs + 1</c> (non-zero only for an interrupted run).</summary>
    public long StepInEpoch { get; set; }
    /// <summary>Gradient evaluations (closure calls) so far.</summary>
    public long GradEvals { get; set; }
    /// <summary>Optimizer steps so far.</summary>
    public long OuterSteps { get; set; }
    /// <summary>Training time so far, over all sessions.</summary>
    public double ElapsedSeconds { get; set; }
    /// <summary>Training loss/error sums of the unfinished epoch, so its metrics come out as if never interrupted.</summary>
    public double PartialLossSum { get; set; }
    /// <summary>Misclassified samples of the unfinished epoch.</summary>
    public long PartialErrors { get; set; }
    /// <summary>Samples of the unfinished epoch.</summary>
    public long PartialCount { get; set; }
    /// <summary>Seconds spent in the unfinished epoch.</summary>
    public double PartialSeconds { get; set; }
    /// <summary>The model's name (zoo name, or whatever the trainer was told).</summary>
    public string Model { get; set; } = "";
    /// <summary>The optimizer's name.</summary>
    public string Optimizer { get; set; } = "";
    /// <summary>Number of trainable and frozen parameters.</summary>
    public long Parameters { get; set; }
    /// <summary>Why it was written: epoch-end, interrupted.</summary>
    public string Reason { get; set; } = "";
    /// <summary>UTC time of writing, ISO 8601.</summary>
    public string SavedAtUtc { get; set; } = "";
    /// <summary>Version of the WideValley assembly that wrote it.</summary>
    public string WideValleyVersion { get; set; } = "";
    /// <summary>What was trained, as far as the trainer could tell (format 2; null in format-1 checkpoints).</summary>
    public RunDescription? Run { get; set; }
    /// <summary>
    /// The configuration the run was built from (null for runs of a model the model zoo cannot rebuild, e.g. a
    /// library user's own network). Stored as a JSON document of its own, not in the header.
    /// </summary>
    [JsonIgnore]
    public RunConfig? RunConfig { get; set; }

    /// <summary>
    /// <see cref="RunConfig"/>, or an error that says what the run holds and what is needed to rebuild its network.
    /// </summary>
    public RunConfig RequireRunConfig(string path)
    {
        if (RunConfig is RunConfig config) return config;
        if (Run is RunDescription run)
            throw new CustomModelRunException(path, run,
                $"{path}: this run holds a custom model '{run.ModelName}' (type {run.ModelType}, {run.Parameters.Count} parameter tensors, " +
                $"{run.Parameters.Sum(p => p.Elements):N0} parameters; optimizer {run.Optimizer}; data: {run.Data ?? run.Task}), not a model-zoo " +
                "network, so it stores no run configuration to rebuild it from. Its network must come from a model factory " +
                "(widevalley: pass --model-factory ASSEMBLY:TYPE) and its data from the data options");
        throw new InvalidDataException($"{path} stores no run configuration, so its network and data cannot be rebuilt");
    }
}

/// <summary>What the trainer knows about any run it writes, zoo model or not.</summary>
public sealed record RunDescription
{
    /// <summary>The name the trainer was given for the model (<see cref="TrainerOptions.ModelName"/>), else its type's name.</summary>
    public string ModelName { get; init; } = "";
    /// <summary>The model's CLR type, assembly-qualified without version (e.g. "MyApp.MyNet, MyApp").</summary>
    public string ModelType { get; init; } = "";
    /// <summary>Every parameter's name (as in <c>named_parameters</c>) and shape.</summary>
    public IReadOnlyList<ParameterShape> Parameters { get; init; } = [];
    /// <summary>The optimizer's registered name, else its type's name.</summary>
    public string Optimizer { get; init; } = "";
    /// <summary>The optimizer's options record as JSON, if <see cref="OptimizerFactory"/> built it.</summary>
    public JsonObject? OptimizerOptions { get; init; }
    /// <summary>The training task's type (classification, language model, or the user's).</summary>
    public string Task { get; init; } = "";
    /// <summary>Training samples (or tokens) per pass.</summary>
    public long TrainingSize { get; init; }
    /// <summary>What the data was, as the caller described it (<see cref="TrainerOptions.DataDescription"/>).</summary>
    public string? Data { get; init; }
}

/// <summary>A parameter tensor's name and shape.</summary>
/// <param name="Name">Name as in <c>named_parameters</c>, e.g. "fc1.weight".</param>
/// <param name="Shape">Sizes of its dimensions.</param>
public sealed record ParameterShape(string Name, long[] Shape)
{
    /// <summary>Number of elements.</summary>
    [JsonIgnore]
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// The run in a checkpoint is of a model the model zoo cannot rebuild: whoever opens it needs the network from
/// elsewhere. <see cref="Run"/> says what was trained.
/// </summary>
public sealed class CustomModelRunException(string path, RunDescription run, string message) : IOException(message)
{
    /// <summary>The checkpoint file.</summary>
    public string Path { get; } = path;
    /// <summary>What the checkpoint holds.</summary>
    public RunDescription Run { get; } = run;
}

/// <summary>
/// A single-file training checkpoint (see docs/run-format.md): magic bytes with the format version, a JSON header
/// (<see cref="CheckpointMeta"/>: progress and what was trained), the run configuration as a JSON document of its own,
/// then the tensors: model parameters and buffers, optimizer state (TorchSharp's state dictionary, which carries the
/// optimizers' own counters and generators), the global random generator's state (dropout masks), and the task's
/// stream positions and carried state. Written atomically (temporary file, then rename), so a crash while saving
/// leaves the previous checkpoint intact. Format-1 checkpoints (run configuration inside the header, a flat object
/// of CLI settings) are still read.
/// </summary>
public static class Checkpoint
{
    /// <summary>The format this code writes.</summary>
    public const int FormatVersion = 2;
    /// <summary>The oldest format this code reads.</summary>
    public const int OldestReadableFormat = 1;
    static readonly byte[] MagicPrefix = Encoding.ASCII.GetBytes("WVCKPT\0");
    const string EndMarker = "WideValley checkpoint end";

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
    };

    /// <summary>
    /// Writes a checkpoint; <paramref name="meta"/>'s <see cref="CheckpointMeta.RunConfig"/> (may be null) is stored as
    /// the run configuration document.
    /// </summary>
    public static void Save(string path, CheckpointMeta meta, nn.Module model, optim.Optimizer optimizer, ITrainingTask task)
    {
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot save its state");
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            w.Write(MagicPrefix);
            w.Write((byte)FormatVersion);
            meta.FormatVersion = FormatVersion;
            w.Write(JsonSerializer.Serialize(meta, Json));
            w.Write(meta.RunConfig is RunConfig config ? config.ToJson().ToJsonString(RunConfig.Json) : "");
            model.save(w);
            helper.save_state_dict(w);
            using (var rng = random.get_rng_state())
            {
                var bytes = rng.data<byte>().ToArray();
                w.Write(bytes.Length);
                w.Write(bytes);
            }
            task.SaveState(w);
            w.Write(EndMarker);
        });
    }

    /// <summary>Reads only the metadata (fast; does not touch tensors).</summary>
    public static CheckpointMeta ReadMeta(string path)
    {
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        return ReadHeader(path, r);
    }

    /// <summary>
    /// Restores only the network's weights (and buffers such as BatchNorm statistics) from <paramref name="path"/>,
    /// for evaluation and landscape measurements, which need neither the optimizer nor the data stream.
    /// </summary>
    public static CheckpointMeta LoadWeights(string path, nn.Module model)
    {
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var meta = ReadHeader(path, r);
        LoadModel(path, r, meta, model);
        return meta;
    }

    static void LoadModel(string path, BinaryReader r, CheckpointMeta meta, nn.Module model)
    {
        try
        {
            model.load(r, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or EndOfStreamException)
        {
            throw new InvalidDataException(
                $"{path}: the checkpoint's weights do not fit this network (checkpoint model '{meta.Model}', " +
                $"{meta.Parameters:N0} parameters; this network has {CountParameters(model):N0}): {e.Message}", e);
        }
    }

    /// <summary>
    /// Restores model, optimizer, random generator and task state from <paramref name="path"/>. The model and
    /// optimizer must have been built the same way as when the checkpoint was written.
    /// </summary>
    public static CheckpointMeta Load(string path, nn.Module model, optim.Optimizer optimizer, ITrainingTask task)
    {
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot load state");
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var meta = ReadHeader(path, r);
        LoadModel(path, r, meta, model);
        try
        {
            helper.load_state_dict(r);
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException)
        {
            throw new InvalidDataException(
                $"{path}: the checkpoint's optimizer state ('{meta.Optimizer}') does not fit optimizer {optimizer.GetType().Name}: {e.Message}", e);
        }
        try
        {
            // Format 1 wrote a flag for a never-implemented extra-state interface: always false.
            if (meta.FormatVersion == 1 && r.ReadBoolean())
                throw new InvalidDataException($"{path}: format-1 checkpoint with extra optimizer state, which no WideValley optimizer ever wrote");
            var n = r.ReadInt32();
            var bytes = r.ReadBytes(n);
            if (bytes.Length != n) throw new EndOfStreamException();
            using (var rng = tensor(bytes, ScalarType.Byte))
                random.set_rng_state(rng);
            try
            {
                task.LoadState(r);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{path}: the checkpoint's data-stream state does not fit this task: {e.Message}", e);
            }
            if (r.ReadString() != EndMarker) throw new InvalidDataException($"{path}: end marker missing; the file is corrupt");
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: the checkpoint ends early; it is truncated or corrupt", e);
        }
        return meta;
    }

    /// <summary>Elements in all of <paramref name="model"/>'s parameters.</summary>
    public static long CountParameters(nn.Module model) => model.parameters().Sum(p => p.numel());

    static FileStream OpenChecked(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no checkpoint there", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    static CheckpointMeta ReadHeader(string path, BinaryReader r)
    {
        try
        {
            var magic = r.ReadBytes(MagicPrefix.Length + 1);
            if (magic.Length != MagicPrefix.Length + 1 || !magic.AsSpan(0, MagicPrefix.Length).SequenceEqual(MagicPrefix))
                throw new InvalidDataException($"{path}: not a WideValley checkpoint (wrong magic bytes)");
            int version = magic[^1];
            if (version < OldestReadableFormat || version > FormatVersion)
                throw new InvalidDataException($"{path}: checkpoint format {version}; this WideValley reads formats {OldestReadableFormat} to {FormatVersion}");
            var header = JsonNode.Parse(r.ReadString()) as JsonObject
                         ?? throw new InvalidDataException($"{path}: empty checkpoint header");
            var meta = header.Deserialize<CheckpointMeta>(Json) ?? throw new InvalidDataException($"{path}: empty checkpoint header");
            if (meta.FormatVersion != version)
                throw new InvalidDataException($"{path}: the header says format {meta.FormatVersion}, the magic bytes format {version}; the file is corrupt");
            if (version == 1)
            {
                // Format 1 kept the run configuration (a flat object of CLI settings) inside the header.
                meta.RunConfig = header["run_config"] is JsonObject flat ? RunConfig.FromJson(flat) : null;
            }
            else
            {
                var document = r.ReadString();
                meta.RunConfig = document.Length == 0 ? null : RunConfig.FromJson(JsonNode.Parse(document)!);
            }
            return meta;
        }
        catch (Exception e) when (e is EndOfStreamException or JsonException or FormatException)
        {
            throw new InvalidDataException($"{path}: the checkpoint header is truncated or corrupt ({e.Message})", e);
        }
    }
}
