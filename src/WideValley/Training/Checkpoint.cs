using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>Everything about a checkpoint except its tensors; stored as JSON at the start of the file.</summary>
public sealed class CheckpointMeta
{
    public int FormatVersion { get; set; } = Checkpoint.FormatVersion;
    /// <summary>Epochs fully done (trained, evaluated and logged).</summary>
    public int CompletedEpochs { get; set; }
    /// <summary>Outer steps already taken in epoch <c>CompletedEpochs + 1</c> (non-zero only for an interrupted run).</summary>
    public long StepInEpoch { get; set; }
    public long GradEvals { get; set; }
    public long OuterSteps { get; set; }
    public double ElapsedSeconds { get; set; }
    /// <summary>Training loss/error sums of the unfinished epoch, so its metrics come out as if never interrupted.</summary>
    public double PartialLossSum { get; set; }
    public long PartialErrors { get; set; }
    public long PartialCount { get; set; }
    public double PartialSeconds { get; set; }
    public string Model { get; set; } = "";
    public string Optimizer { get; set; } = "";
    public long Parameters { get; set; }
    public string Reason { get; set; } = "";
    public string SavedAtUtc { get; set; } = "";
    public string WideValleyVersion { get; set; } = "";
    /// <summary>The run's configuration as given by whoever started it (the CLI stores its options here).</summary>
    public JsonNode? RunConfig { get; set; }
}

/// <summary>
/// A single-file training checkpoint: metadata, model parameters and buffers, optimizer state (TorchSharp's state
/// dictionary plus any <see cref="IExtraOptimizerState"/>), the global random generator's state (dropout masks), and
/// the task's stream positions and carried state. Written atomically (temporary file, then rename), so a crash while
/// saving leaves the previous checkpoint intact.
/// </summary>
public static class Checkpoint
{
    public const int FormatVersion = 1;
    static readonly byte[] Magic = Encoding.ASCII.GetBytes("WVCKPT\0\u0001");
    const string EndMarker = "WideValley checkpoint end";

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
    };

    public static void Save(string path, CheckpointMeta meta, nn.Module model, optim.Optimizer optimizer, ITrainingTask task)
    {
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot save its state");
        AtomicFile.Write(path, stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            w.Write(JsonSerializer.Serialize(meta, Json));
            model.save(w);
            helper.save_state_dict(w);
            w.Write(optimizer is IExtraOptimizerState);
            if (optimizer is IExtraOptimizerState extra) extra.SaveExtraState(w);
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
            var hasExtra = r.ReadBoolean();
            if (hasExtra != optimizer is IExtraOptimizerState)
                throw new InvalidDataException($"{path}: optimizer state layout differs from optimizer {optimizer.GetType().Name}");
            if (optimizer is IExtraOptimizerState extra) extra.LoadExtraState(r);
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
            var magic = r.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException($"{path}: not a WideValley checkpoint (wrong magic bytes)");
            var meta = JsonSerializer.Deserialize<CheckpointMeta>(r.ReadString(), Json)
                       ?? throw new InvalidDataException($"{path}: empty checkpoint metadata");
            if (meta.FormatVersion != FormatVersion)
                throw new InvalidDataException($"{path}: checkpoint format {meta.FormatVersion}; this WideValley reads format {FormatVersion}");
            return meta;
        }
        catch (Exception e) when (e is EndOfStreamException or JsonException)
        {
            throw new InvalidDataException($"{path}: the checkpoint header is truncated or corrupt ({e.Message})", e);
        }
    }
}
