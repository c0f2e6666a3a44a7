using System.Buffers.Binary;
using System.IO.Hashing;
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
    /// <summary>Outer steps already taken in epoch <c>CompletedEpochs + 1</c> (non-zero only for a checkpoint written within an epoch).</summary>
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
    /// <summary>Why it was written: epoch-end, periodic (<see cref="TrainerOptions.CheckpointEvery"/>), interrupted.</summary>
    public string Reason { get; set; } = "";
    /// <summary>UTC time of writing, ISO 8601.</summary>
    public string SavedAtUtc { get; set; } = "";
    /// <summary>Version of the WideValley assembly that wrote it.</summary>
    public string WideValleyVersion { get; set; } = "";
    /// <summary>
    /// How the run was spread over processes (format 4): "data-parallel" or "replicas"; null for a run of one process
    /// without --distributed.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Distributed { get; set; }
    /// <summary>The number of ranks (processes) that wrote it (format 4); null for a run without --distributed.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? WorldSize { get; set; }
    /// <summary>
    /// True when the weights section holds the replicas' mean, the model a replica run evaluates and reports, and the
    /// rank-states section holds every rank's own replica, rank 0's included (replica runs since this field exists);
    /// null otherwise: the weights are rank 0's own and the rank-states section holds ranks 1 to K - 1.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? WeightsAreReplicaMean { get; set; }
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
/// A checkpoint file fails its integrity check: a section's checksum does not match its bytes, the file ends early,
/// or its frame (magic bytes, section names and lengths) is unreadable. <see cref="Section"/> names the damaged part.
/// (An <see cref="IOException"/>: <see cref="InvalidDataException"/> is sealed, and is kept for files that are intact but
/// do not fit, e.g. weights of another network.)
/// </summary>
public sealed class CheckpointDamagedException(string path, string section, string message, Exception? inner = null)
    : IOException(message, inner)
{
    /// <summary>The checkpoint file.</summary>
    public string Path { get; } = path;
    /// <summary>The damaged part: "magic bytes", "header", "run configuration", "weights", "optimizer state", "random generator", "data stream" or "end marker".</summary>
    public string Section { get; } = section;
}

/// <summary>Which checkpoint file to read (<see cref="Checkpoint.SelectIntact"/>).</summary>
/// <param name="Path">The newest intact generation: the checkpoint itself, or its previous generation.</param>
/// <param name="FallbackMessage">Null when the newest is intact; else what was damaged and which file is used instead.</param>
public sealed record CheckpointGeneration(string Path, string? FallbackMessage);

/// <summary>A checkpoint chosen for reading (<see cref="Checkpoint.SelectIntactForReading"/>).</summary>
/// <param name="Path">The newest intact generation: the checkpoint itself, or its previous generation.</param>
/// <param name="Meta">Its header, verified.</param>
/// <param name="DamagedNewest">Null when the newest generation is intact; else why it was passed over (file and section).</param>
public sealed record IntactCheckpoint(string Path, CheckpointMeta Meta, CheckpointDamagedException? DamagedNewest);

/// <summary>
/// A single-file training checkpoint (see docs/run-format.md). Format 3: magic bytes with the format version, then
/// named sections, each with its length and an XxHash64 checksum: the JSON header (<see cref="CheckpointMeta"/>:
/// progress and what was trained), the run configuration as a JSON document of its own, the model's parameters and
/// buffers, the optimizer state (TorchSharp's state dictionary, which carries the optimizers' own counters and
/// generators), the global random generator's state (dropout masks), and the task's stream positions and carried
/// state; then an end marker. Every read verifies the checksums of the sections it uses before it touches the model,
/// so a damaged file is refused with the name of the damaged section instead of loading garbage.
/// <para>
/// Written atomically (temporary file flushed to disk, then renamed), and the replaced checkpoint, when intact, is kept
/// as the previous generation (<see cref="PreviousGenerationPath"/>): a damaged newest file falls back to it
/// (<see cref="SelectIntact"/>). Formats 1 and 2 (no checksums) are still read.
/// </para>
/// </summary>
public static class Checkpoint
{
    /// <summary>The format this code writes for a run of one process.</summary>
    public const int FormatVersion = 3;
    /// <summary>
    /// The format of a distributed run's checkpoint (<c>train --distributed</c>): format 3 with one more section, the
    /// serialised states of ranks 1 to K - 1 (the main sections hold rank 0's).
    /// </summary>
    public const int DistributedFormatVersion = 4;
    /// <summary>The newest format this code reads.</summary>
    public const int NewestReadableFormat = DistributedFormatVersion;
    /// <summary>The oldest format this code reads.</summary>
    public const int OldestReadableFormat = 1;
    static readonly byte[] MagicPrefix = Encoding.ASCII.GetBytes("WVCKPT\0");
    const string EndMarker = "WideValley checkpoint end";

    const string HeaderSection = "header";
    const string RunConfigSection = "run configuration";
    const string WeightsSection = "weights";
    const string OptimizerSection = "optimizer state";
    const string GeneratorSection = "random generator";
    const string DataStreamSection = "data stream";
    /// <summary>Format 3's sections, in file order.</summary>
    static readonly string[] Sections = [HeaderSection, RunConfigSection, WeightsSection, OptimizerSection, GeneratorSection, DataStreamSection];
    const string RankStatesSection = "other ranks";
    /// <summary>Format 4's sections: format 3's, then the other ranks' states.</summary>
    static readonly string[] DistributedSections = [.. Sections, RankStatesSection];

    static string[] SectionsOf(int version) => version >= DistributedFormatVersion ? DistributedSections : Sections;

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
    };

    /// <summary>
    /// The previous generation kept beside <paramref name="path"/>: "checkpoint.bin" becomes "checkpoint.prev.bin".
    /// </summary>
    public static string PreviousGenerationPath(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full)!;
        return System.IO.Path.Combine(directory,
            System.IO.Path.GetFileNameWithoutExtension(full) + ".prev" + System.IO.Path.GetExtension(full));
    }

    /// <summary>
    /// Writes a checkpoint; <paramref name="meta"/>'s <see cref="CheckpointMeta.RunConfig"/> (may be null) is stored as
    /// the run configuration document. The new file is written to a temporary name and flushed to disk; then the
    /// checkpoint it replaces, if intact and <paramref name="keepPreviousGeneration"/>, is copied (atomically) to
    /// <see cref="PreviousGenerationPath"/>; then the new file is renamed into place. At no moment is there no
    /// complete checkpoint at <paramref name="path"/>, and a damaged old checkpoint never replaces a good previous one.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="meta">Progress and what was trained.</param>
    /// <param name="model">The network.</param>
    /// <param name="optimizer">The optimizer (a TorchSharp <c>OptimizerHelper</c>).</param>
    /// <param name="task">The task, whose data-stream state is stored.</param>
    /// <param name="keepPreviousGeneration">
    /// Keep the replaced checkpoint as the previous generation. False for the first save of a new run, whose folder
    /// may still hold another run's checkpoint.
    /// </param>
    /// <param name="otherRanks">
    /// A distributed run's states of ranks 1 to K - 1 (<see cref="CaptureRankState"/>), or of every rank when
    /// <see cref="CheckpointMeta.WeightsAreReplicaMean"/>, written as format 4; null for a run of one process (format 3).
    /// </param>
    public static void Save(string path, CheckpointMeta meta, nn.Module model, optim.Optimizer optimizer, ITrainingTask task,
        bool keepPreviousGeneration = true, IReadOnlyList<byte[]>? otherRanks = null)
    {
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot save its state");
        var version = otherRanks is null ? FormatVersion : DistributedFormatVersion;
        meta.FormatVersion = version;
        var header = JsonSerializer.Serialize(meta, Json);
        var runConfig = meta.RunConfig is RunConfig config ? config.ToJson().ToJsonString(RunConfig.Json) : "";
        AtomicFile.Write(path, stream =>
        {
            stream.Write(MagicPrefix);
            stream.WriteByte((byte)version);
            WriteSection(stream, HeaderSection, w => w.Write(header));
            WriteSection(stream, RunConfigSection, w => w.Write(runConfig));
            WriteSection(stream, WeightsSection, w => model.save(w));
            WriteSection(stream, OptimizerSection, w => helper.save_state_dict(w));
            WriteSection(stream, GeneratorSection, w =>
            {
                using var rng = random.get_rng_state();
                var bytes = rng.data<byte>().ToArray();
                w.Write(bytes.Length);
                w.Write(bytes);
            });
            WriteSection(stream, DataStreamSection, task.SaveState);
            if (otherRanks is not null)
                WriteSection(stream, RankStatesSection, w =>
                {
                    w.Write(otherRanks.Count);
                    foreach (var state in otherRanks)
                    {
                        w.Write(state.Length);
                        w.Write(state);
                    }
                });
            using var end = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            end.Write(EndMarker);
        }, beforeReplace: () =>
        {
            var previous = PreviousGenerationPath(path);
            if (keepPreviousGeneration && File.Exists(path) && IsIntact(path))
                AtomicFile.Write(previous, target =>
                {
                    using var source = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                    source.CopyTo(target);
                });
        });
    }

    /// <summary>
    /// One section: its name, its payload's length (int64), the payload, and an XxHash64 over payload, length and name.
    /// The length is patched in after the payload is written, so writers need not know their size in advance.
    /// </summary>
    static void WriteSection(FileStream stream, string name, Action<BinaryWriter> fill)
    {
        using var frame = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        frame.Write(name);
        frame.Flush();
        var lengthAt = stream.Position;
        frame.Write(0L);
        frame.Flush();
        var start = stream.Position;
        var hash = new XxHash64();
        using (var hashing = new HashingStream(stream, hash))
        using (var w = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
        {
            fill(w);
            w.Flush();
        }
        var end = stream.Position;
        var length = end - start;
        stream.Position = lengthAt;
        frame.Write(length);
        frame.Flush();
        stream.Position = end;
        frame.Write(FinishChecksum(hash, name, length));
        frame.Flush();
    }

    static ulong FinishChecksum(XxHash64 hash, string name, long length)
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(lengthBytes, length);
        hash.Append(lengthBytes);
        hash.Append(Encoding.UTF8.GetBytes(name));
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>
    /// Checks every section's checksum and the file's framing (format 3), or that the header parses (formats 1 and 2,
    /// which have no checksums), without touching any tensor. Throws <see cref="CheckpointDamagedException"/> naming
    /// the damaged section; returns the header.
    /// </summary>
    public static CheckpointMeta Verify(string path)
    {
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var version = ReadMagic(path, r);
        if (version < 3) return ReadLegacyHeader(path, r, version);
        var layout = ReadLayout(path, stream, r, SectionsOf(version), SectionsOf(version).Length, requireEnd: true);
        return ReadHeader(path, stream, r, layout, version);
    }

    /// <summary>
    /// Format 3's sections of an intact file: name, offset of the frame (the name's first byte), offset and length of
    /// the payload (for tests that damage one section on purpose).
    /// </summary>
    internal static IReadOnlyList<(string Name, long FrameStart, long PayloadStart, long Length)> DescribeSections(string path)
    {
        Verify(path);
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var version = ReadMagic(path, r);
        var sections = new List<(string, long, long, long)>();
        foreach (var _ in SectionsOf(version))
        {
            var frame = stream.Position;
            var name = r.ReadString();
            var length = r.ReadInt64();
            sections.Add((name, frame, stream.Position, length));
            stream.Position += length + sizeof(ulong);
        }
        return sections;
    }

    /// <summary>
    /// In words, which checkpoint a run folder keeps at <paramref name="path"/> (for messages after a failure): "the
    /// checkpoint at the end of epoch 3 is kept in PATH", or that there is none.
    /// </summary>
    public static string DescribeKept(string path)
    {
        try
        {
            var generation = SelectIntact(path);
            var meta = ReadMeta(generation.Path);
            var at = meta.StepInEpoch > 0 ? $"epoch {meta.CompletedEpochs + 1}, step {meta.StepInEpoch}" : $"the end of epoch {meta.CompletedEpochs}";
            return $"the checkpoint of {at} is kept in {generation.Path}";
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return $"no intact checkpoint is kept in {System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))}";
        }
    }

    /// <summary>Where <see cref="SetAsideIfWrittenAfter"/> keeps a checkpoint set aside: "checkpoint.bin" becomes "checkpoint.diverged.bin".</summary>
    public static string DivergedPath(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        return System.IO.Path.Combine(System.IO.Path.GetDirectoryName(full)!,
            System.IO.Path.GetFileNameWithoutExtension(full) + ".diverged" + System.IO.Path.GetExtension(full));
    }

    /// <summary>
    /// After a divergence: when the newest checkpoint at <paramref name="path"/> was written after
    /// <paramref name="suspectFromOuterStep"/> outer steps or later (its weights may be those that produced the diverging
    /// losses) and the previous generation was written before, the newest is moved to <see cref="DivergedPath"/> (kept
    /// for inspection) and the previous one copied into its place, so that <c>--resume</c> starts from weights written
    /// before the loss went wrong. Every file operation is a copy to a temporary name and a rename, so a crash leaves
    /// an intact checkpoint at <paramref name="path"/>. Returns what was done (or found) in words and whether the
    /// checkpoint now at <paramref name="path"/> is still in doubt (both generations written in the diverging stretch);
    /// null when the newest checkpoint predates the diverging stretch or there is none.
    /// </summary>
    public static (string Said, bool KeptIsSuspect)? SetAsideIfWrittenAfter(string path, long suspectFromOuterStep)
    {
        static CheckpointMeta? TryVerify(string file)
        {
            if (!File.Exists(file)) return null;
            try
            {
                return Verify(file);
            }
            catch (Exception e) when (e is CheckpointDamagedException or InvalidDataException or IOException)
            {
                return null;
            }
        }
        var newest = TryVerify(path);
        if (newest is null || newest.OuterSteps < suspectFromOuterStep) return null;
        var previousPath = PreviousGenerationPath(path);
        var previous = TryVerify(previousPath);
        if (previous is null || previous.OuterSteps >= suspectFromOuterStep)
            return ($"the newest checkpoint ({DescribePosition(newest)}) was written after the loss began to diverge and may hold diverged weights; " +
                    (previous is null ? "there is no earlier one" : $"so was the previous one ({DescribePosition(previous)})"), true);
        CopyAtomically(path, DivergedPath(path));
        CopyAtomically(previousPath, path);
        return ($"the newest checkpoint ({DescribePosition(newest)}) was written after the loss began to diverge; it is set aside as " +
                $"{System.IO.Path.GetFileName(DivergedPath(path))} and the previous one ({DescribePosition(previous)}) is the checkpoint again", false);
    }

    static void CopyAtomically(string from, string to)
    {
        var temporary = to + $".{Guid.NewGuid():N}.part";
        File.Copy(from, temporary);
        File.Move(temporary, to, overwrite: true);
    }

    static bool IsIntact(string path)
    {
        try
        {
            Verify(path);
            return true;
        }
        catch (Exception e) when (e is CheckpointDamagedException or InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>
    /// The file to resume from: <paramref name="path"/> if it passes <see cref="Verify"/>; else, when the previous
    /// generation beside it (<see cref="PreviousGenerationPath"/>) is intact, that one, with a message that says what
    /// was damaged and what is used instead. Throws <see cref="CheckpointDamagedException"/> when both are damaged (or
    /// the newest is damaged and there is no previous one).
    /// </summary>
    public static CheckpointGeneration SelectIntact(string path)
    {
        CheckpointDamagedException newest;
        try
        {
            Verify(path);
            return new CheckpointGeneration(path, null);
        }
        catch (CheckpointDamagedException e)
        {
            newest = e;
        }
        var previous = PreviousGenerationPath(path);
        if (!File.Exists(previous))
            throw new CheckpointDamagedException(path, newest.Section,
                $"{newest.Message}; there is no previous checkpoint ({previous}) to fall back to", newest);
        CheckpointMeta meta;
        try
        {
            meta = Verify(previous);
        }
        catch (CheckpointDamagedException e)
        {
            throw new CheckpointDamagedException(path, newest.Section,
                $"{newest.Message}, and the previous checkpoint is damaged too ({e.Message}); neither generation can be used", e);
        }
        var at = meta.StepInEpoch > 0
            ? $"epoch {meta.CompletedEpochs + 1}, step {meta.StepInEpoch}"
            : $"end of epoch {meta.CompletedEpochs}";
        return new CheckpointGeneration(previous,
            $"{newest.Message}; falling back to the previous checkpoint {previous} ({at}): the work after it is done again");
    }

    /// <summary>
    /// For readers of a run's weights (evaluation, landscape measurements): the newest intact generation of
    /// <paramref name="path"/> with its verified header, and, when that is the previous generation, the damage that
    /// ruled out the newest. Throws <see cref="CheckpointDamagedException"/> (from <see cref="SelectIntact"/>) when no
    /// generation is intact.
    /// </summary>
    public static IntactCheckpoint SelectIntactForReading(string path)
    {
        try
        {
            return new IntactCheckpoint(path, Verify(path), null);
        }
        catch (CheckpointDamagedException newest)
        {
            var generation = SelectIntact(path);
            return new IntactCheckpoint(generation.Path, Verify(generation.Path), newest);
        }
    }

    /// <summary>
    /// Where in training a checkpoint was written, in words: "end of epoch 2", or "epoch 3, step 50" for a checkpoint
    /// inside an epoch (periodic or interrupted).
    /// </summary>
    public static string DescribePosition(CheckpointMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        return meta.StepInEpoch > 0 ? $"epoch {meta.CompletedEpochs + 1}, step {meta.StepInEpoch}" : $"end of epoch {meta.CompletedEpochs}";
    }

    /// <summary>Reads only the metadata (fast: verifies the header and run-configuration sections, touches no tensor).</summary>
    public static CheckpointMeta ReadMeta(string path)
    {
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var version = ReadMagic(path, r);
        if (version < 3) return ReadLegacyHeader(path, r, version);
        var layout = ReadLayout(path, stream, r, SectionsOf(version), sectionsToVerify: 2, requireEnd: false);
        return ReadHeader(path, stream, r, layout, version);
    }

    /// <summary>
    /// Restores only the network's weights (and buffers such as BatchNorm statistics) from <paramref name="path"/>,
    /// for evaluation and landscape measurements, which need neither the optimizer nor the data stream. Every
    /// section's checksum is verified first.
    /// </summary>
    public static CheckpointMeta LoadWeights(string path, nn.Module model)
    {
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var version = ReadMagic(path, r);
        if (version < 3)
        {
            var legacy = ReadLegacyHeader(path, r, version);
            LoadModel(path, r, legacy, model);
            return legacy;
        }
        var layout = ReadLayout(path, stream, r, SectionsOf(version), SectionsOf(version).Length, requireEnd: true);
        var meta = ReadHeader(path, stream, r, layout, version);
        stream.Position = layout[WeightsSection];
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
    /// optimizer must have been built the same way as when the checkpoint was written. Every section's checksum is
    /// verified before anything is restored.
    /// </summary>
    public static CheckpointMeta Load(string path, nn.Module model, optim.Optimizer optimizer, ITrainingTask task)
    {
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot load state");
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var version = ReadMagic(path, r);
        IReadOnlyDictionary<string, long>? layout = null;
        CheckpointMeta meta;
        if (version < 3)
            meta = ReadLegacyHeader(path, r, version);
        else
        {
            layout = ReadLayout(path, stream, r, SectionsOf(version), SectionsOf(version).Length, requireEnd: true);
            meta = ReadHeader(path, stream, r, layout, version);
            stream.Position = layout[WeightsSection];
        }
        LoadModel(path, r, meta, model);
        try
        {
            if (layout is not null) stream.Position = layout[OptimizerSection];
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
            if (layout is not null) stream.Position = layout[GeneratorSection];
            var n = r.ReadInt32();
            var bytes = r.ReadBytes(n);
            if (bytes.Length != n) throw new EndOfStreamException();
            using (var rng = tensor(bytes, ScalarType.Byte))
                random.set_rng_state(rng);
            try
            {
                if (layout is not null) stream.Position = layout[DataStreamSection];
                task.LoadState(r);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{path}: the checkpoint's data-stream state does not fit this task: {e.Message}", e);
            }
            if (layout is null && r.ReadString() != EndMarker) throw new InvalidDataException($"{path}: end marker missing; the file is corrupt");
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: the checkpoint ends early; it is truncated or corrupt", e);
        }
        return meta;
    }

    /// <summary>
    /// The states of ranks 1 to K - 1 stored in a distributed run's checkpoint (format 4), in rank order; empty for a
    /// checkpoint of one process. Every section's checksum is verified first.
    /// </summary>
    public static IReadOnlyList<byte[]> ReadOtherRanks(string path)
    {
        using var stream = OpenChecked(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        var version = ReadMagic(path, r);
        if (version < DistributedFormatVersion) return [];
        var layout = ReadLayout(path, stream, r, SectionsOf(version), SectionsOf(version).Length, requireEnd: true);
        stream.Position = layout[RankStatesSection];
        try
        {
            var count = r.ReadInt32();
            var states = new List<byte[]>(count);
            for (var i = 0; i < count; i++)
            {
                var n = r.ReadInt32();
                var bytes = r.ReadBytes(n);
                if (bytes.Length != n) throw new EndOfStreamException();
                states.Add(bytes);
            }
            return states;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: the other ranks' states end early although their checksum matched: the writer wrote something this code cannot read", e);
        }
    }

    /// <summary>
    /// This process's training state as one byte array, for a distributed run's checkpoint: the model's parameters and
    /// buffers, the optimizer state, the global random generator and the task's stream, as the main sections hold them.
    /// </summary>
    public static byte[] CaptureRankState(nn.Module model, optim.Optimizer optimizer, ITrainingTask task)
    {
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot save its state");
        using var memory = new MemoryStream();
        using (var w = new BinaryWriter(memory, Encoding.UTF8, leaveOpen: true))
        {
            model.save(w);
            helper.save_state_dict(w);
            using (var rng = random.get_rng_state())
            {
                var bytes = rng.data<byte>().ToArray();
                w.Write(bytes.Length);
                w.Write(bytes);
            }
            task.SaveState(w);
        }
        return memory.ToArray();
    }

    /// <summary>Restores what <see cref="CaptureRankState"/> captured (the model and optimizer must be built as the writer's).</summary>
    public static void RestoreRankState(byte[] state, nn.Module model, optim.Optimizer optimizer, ITrainingTask task)
    {
        ArgumentNullException.ThrowIfNull(state);
        var helper = optimizer as TorchSharp.Modules.OptimizerHelper
                     ?? throw new NotSupportedException($"optimizer {optimizer.GetType().Name} cannot load state");
        using var memory = new MemoryStream(state, writable: false);
        using var r = new BinaryReader(memory, Encoding.UTF8);
        model.load(r, strict: true);
        helper.load_state_dict(r);
        var n = r.ReadInt32();
        using (var rng = tensor(r.ReadBytes(n), ScalarType.Byte))
            random.set_rng_state(rng);
        task.LoadState(r);
        if (memory.Position != memory.Length)
            throw new InvalidDataException($"a rank's stored state has {memory.Length - memory.Position:N0} bytes more than this rank's model, optimizer and task read: it was written by another configuration");
    }

    /// <summary>Elements in all of <paramref name="model"/>'s parameters.</summary>
    public static long CountParameters(nn.Module model) => model.parameters().Sum(p => p.numel());

    static FileStream OpenChecked(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no checkpoint there", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    /// <summary>The magic bytes and the format version.</summary>
    static int ReadMagic(string path, BinaryReader r)
    {
        var magic = r.ReadBytes(MagicPrefix.Length + 1);
        if (magic.Length != MagicPrefix.Length + 1 || !magic.AsSpan(0, MagicPrefix.Length).SequenceEqual(MagicPrefix))
            throw new CheckpointDamagedException(path, "magic bytes", $"{path}: not a WideValley checkpoint (wrong magic bytes)");
        int version = magic[^1];
        if (version < OldestReadableFormat || version > NewestReadableFormat)
            throw new InvalidDataException(
                $"{path}: checkpoint format {version}; this WideValley reads formats {OldestReadableFormat} to {NewestReadableFormat}");
        return version;
    }

    /// <summary>
    /// Walks format 3's section frames: checks each name and length, verifies the checksums of the first
    /// <paramref name="sectionsToVerify"/> sections (the rest are only skipped), and with <paramref name="requireEnd"/>
    /// checks the end marker and that nothing follows it. Returns each section's payload offset.
    /// </summary>
    static Dictionary<string, long> ReadLayout(string path, FileStream stream, BinaryReader r, string[] sections, int sectionsToVerify, bool requireEnd)
    {
        var layout = new Dictionary<string, long>();
        var fileLength = stream.Length;
        var buffer = new byte[1 << 20];
        for (var i = 0; i < sections.Length; i++)
        {
            var expected = sections[i];
            if (i >= sectionsToVerify && !requireEnd) break;
            string name;
            long length;
            try
            {
                name = r.ReadString();
                length = r.ReadInt64();
            }
            catch (Exception e) when (e is EndOfStreamException or IOException or FormatException)
            {
                throw new CheckpointDamagedException(path, expected,
                    $"{path}: the file ends before the {expected} section, or its frame is damaged ({fileLength:N0} bytes; truncated or damaged)", e);
            }
            if (name != expected)
                throw new CheckpointDamagedException(path, expected,
                    $"{path}: the {expected} section is damaged (its frame names it '{Printable(name)}')");
            var start = stream.Position;
            if (length < 0 || length > fileLength - start - sizeof(ulong))
                throw new CheckpointDamagedException(path, expected,
                    $"{path}: the file ends inside the {expected} section (it claims {length:N0} bytes, {Math.Max(0, fileLength - start - sizeof(ulong)):N0} remain): truncated or damaged");
            layout[expected] = start;
            if (i < sectionsToVerify)
            {
                var hash = new XxHash64();
                for (var left = length; left > 0;)
                {
                    var n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (n <= 0) throw new CheckpointDamagedException(path, expected, $"{path}: the file ends inside the {expected} section: truncated");
                    hash.Append(buffer.AsSpan(0, n));
                    left -= n;
                }
                var stored = r.ReadUInt64();
                if (stored != FinishChecksum(hash, expected, length))
                    throw new CheckpointDamagedException(path, expected, $"{path}: the {expected} section is damaged (checksum mismatch)");
            }
            else
            {
                stream.Position = start + length + sizeof(ulong);
            }
        }
        if (requireEnd)
        {
            string marker;
            try
            {
                marker = r.ReadString();
            }
            catch (Exception e) when (e is EndOfStreamException or IOException or FormatException)
            {
                throw new CheckpointDamagedException(path, "end marker", $"{path}: the end marker is missing: the file is truncated or damaged", e);
            }
            if (marker != EndMarker)
                throw new CheckpointDamagedException(path, "end marker", $"{path}: the end marker is damaged");
            if (stream.Position != fileLength)
                throw new CheckpointDamagedException(path, "end marker",
                    $"{path}: {fileLength - stream.Position:N0} unexpected bytes follow the end marker: the file is damaged");
        }
        return layout;
    }

    static string Printable(string s) =>
        new string(s.Take(40).Select(c => char.IsControl(c) || char.IsSurrogate(c) ? '?' : c).ToArray());

    /// <summary>Format 3's header and run-configuration sections (already verified).</summary>
    static CheckpointMeta ReadHeader(string path, FileStream stream, BinaryReader r, IReadOnlyDictionary<string, long> layout, int version)
    {
        try
        {
            stream.Position = layout[HeaderSection];
            var meta = ParseHeader(path, r.ReadString(), version, out _);
            stream.Position = layout[RunConfigSection];
            var document = r.ReadString();
            meta.RunConfig = document.Length == 0 ? null : RunConfig.FromJson(JsonNode.Parse(document)!);
            return meta;
        }
        catch (Exception e) when (e is EndOfStreamException or JsonException or FormatException)
        {
            // The checksums matched, so this is no damage: the writer wrote something this code cannot read.
            throw new InvalidDataException($"{path}: the checkpoint header cannot be read ({e.Message})", e);
        }
    }

    static CheckpointMeta ParseHeader(string path, string text, int version, out JsonObject header)
    {
        header = JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException($"{path}: empty checkpoint header");
        var meta = header.Deserialize<CheckpointMeta>(Json) ?? throw new InvalidDataException($"{path}: empty checkpoint header");
        if (meta.FormatVersion != version)
            throw new CheckpointDamagedException(path, HeaderSection,
                $"{path}: the header says format {meta.FormatVersion}, the magic bytes format {version}; the file is corrupt");
        return meta;
    }

    /// <summary>Formats 1 and 2: header and run configuration, read in sequence, with no checksums.</summary>
    static CheckpointMeta ReadLegacyHeader(string path, BinaryReader r, int version)
    {
        try
        {
            var meta = ParseHeader(path, r.ReadString(), version, out var header);
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
            throw new CheckpointDamagedException(path, HeaderSection, $"{path}: the checkpoint header is truncated or corrupt ({e.Message})", e);
        }
    }

    /// <summary>A write-only pass-through that feeds every byte written to a checksum.</summary>
    sealed class HashingStream(Stream inner, XxHash64 hash) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.Append(buffer);
            inner.Write(buffer);
        }
        public override void WriteByte(byte value) => Write([value]);
    }
}
