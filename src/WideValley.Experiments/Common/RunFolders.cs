using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>What a run folder of an experiment holds.</summary>
public enum RunFolderState
{
    /// <summary>No run yet: train from the start.</summary>
    Empty,
    /// <summary>A checkpoint of an unfinished run: continue it.</summary>
    Resumable,
    /// <summary>The run finished; its summary and metrics are the result.</summary>
    Finished,
    /// <summary>The run stopped on a non-finite loss; that is its result (rerunning would diverge again).</summary>
    Diverged,
}

/// <summary>A finished (or diverged) run read back from its folder.</summary>
/// <param name="Folder">The run folder.</param>
/// <param name="Config">The configuration it ran with.</param>
/// <param name="Status">"finished" or "diverged".</param>
/// <param name="TotalSeconds">Wall time of the training, summed over resumptions.</param>
/// <param name="EffectiveEpochs">Gradient evaluations x batch / training-set size.</param>
/// <param name="History">One entry per epoch, in order.</param>
public sealed record FinishedRun(string Folder, RunConfig Config, string Status, double TotalSeconds, double EffectiveEpochs, IReadOnlyList<EpochMetrics> History)
{
    /// <summary>The last epoch's metrics (null when no epoch completed).</summary>
    public EpochMetrics? Final => History.Count > 0 ? History[^1] : null;

    /// <summary>Whether the run stopped on a non-finite loss (<see cref="Status"/> is "diverged").</summary>
    public bool Diverged => Status == "diverged";
}

/// <summary>
/// The run folders of an experiment: each holds one training run (checkpoint.bin, metrics.jsonl, summary.json).
/// An experiment driver asks what a folder holds before training, so that a reproduction interrupted at any point
/// continues where it stopped and never redoes a finished run, and refuses a folder that holds a different
/// experiment instead of silently mixing results.
/// </summary>
public static class RunFolders
{
    /// <summary>Settings that may differ between the stored run and the requested one: they do not change the result.</summary>
    static readonly string[] IncidentalKeys = ["threads", "device", "tensor_board", "data_fingerprint"];

    /// <summary>What <paramref name="folder"/> holds for a run of <paramref name="expected"/>.</summary>
    /// <exception cref="InvalidDataException">The folder holds a run with other settings, or unreadable files.</exception>
    public static RunFolderState Inspect(string folder, RunConfig expected)
    {
        var summaryPath = Path.Combine(folder, Trainer.SummaryFileName);
        var checkpointPath = Path.Combine(folder, Trainer.CheckpointFileName);
        string? status = null;
        if (File.Exists(summaryPath))
        {
            var summary = ReadSummary(summaryPath);
            status = summary["status"]?.GetValue<string>();
            if (summary["config"] is JsonNode stored) RequireSame(folder, RunConfig.FromJson(stored), expected);
            if (status is "finished") return RunFolderState.Finished;
            if (status is "diverged") return RunFolderState.Diverged;
        }
        if (File.Exists(checkpointPath))
        {
            // The generation a resume would use: a damaged newest checkpoint falls back to the previous one, as in train.
            var meta = Checkpoint.ReadMeta(Checkpoint.SelectIntact(checkpointPath).Path);
            if (meta.RunConfig is RunConfig stored) RequireSame(folder, stored, expected);
            return RunFolderState.Resumable;
        }
        return RunFolderState.Empty;
    }

    /// <summary>Name of the lock file a process holds while it trains in a run folder (<see cref="RunFolderLock.FileName"/>).</summary>
    public const string LockFileName = RunFolderLock.FileName;

    /// <summary>
    /// Claims <paramref name="folder"/> for training until disposed, so that two processes never train the same run
    /// (both would write its checkpoint): <see cref="RunFolderLock.Acquire"/>, the lock <c>widevalley train</c> takes too.
    /// </summary>
    /// <exception cref="RunFolderLockedException">Another trainer holds the folder.</exception>
    public static IDisposable Lock(string folder) => RunFolderLock.Acquire(folder);

    /// <summary>Reads a finished or diverged run.</summary>
    /// <exception cref="InvalidDataException">The folder holds no finished run, or its files are malformed.</exception>
    public static FinishedRun Read(string folder)
    {
        var summaryPath = Path.Combine(folder, Trainer.SummaryFileName);
        if (!File.Exists(summaryPath)) throw new InvalidDataException($"{folder}: no {Trainer.SummaryFileName}; the run has not finished");
        var summary = ReadSummary(summaryPath);
        var status = summary["status"]?.GetValue<string>();
        if (status is not ("finished" or "diverged"))
            throw new InvalidDataException($"{summaryPath}: status '{status}', expected 'finished' or 'diverged'");
        try
        {
            var config = summary["config"] is JsonNode node ? RunConfig.FromJson(node)
                : throw new InvalidDataException($"{summaryPath}: no 'config' entry");
            var metricsPath = Path.Combine(folder, "metrics.jsonl");
            var history = File.Exists(metricsPath) ? MetricsLog.Read(metricsPath) : [];
            return new FinishedRun(folder, config, status, summary["total_seconds"]!.GetValue<double>(),
                summary["effective_epochs"]!.GetValue<double>(), history);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new InvalidDataException($"{folder}: the finished run's files are malformed ({e.Message})", e);
        }
    }

    static JsonNode ReadSummary(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions())
                ?? throw new InvalidDataException($"{path}: empty file");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}); delete the folder to rerun that run", e);
        }
    }

    static void RequireSame(string folder, RunConfig stored, RunConfig expected)
    {
        // Both with their optimizer's options resolved, and through JSON, so that settings added after the run was
        // stored take their defaults instead of reading as differences; nested options compare setting by setting.
        static Dictionary<string, JsonNode?> Settings(RunConfig c) =>
            Flatten(Comparable((c with { OptimizerOptions = c.ResolvedOptimizerOptions }).ToJson()));
        var a = Settings(stored);
        var b = Settings(expected);
        var differences = a.Select(kv => kv.Key)
            .Union(b.Select(kv => kv.Key))
            .Where(key => Text(a, key) != Text(b, key))
            .Select(key => $"{key}: stored {Text(a, key)}, requested {Text(b, key)}")
            .ToList();
        if (differences.Count > 0)
            throw new InvalidDataException(
                $"{folder} holds a run with other settings ({string.Join("; ", differences.Take(5))}{(differences.Count > 5 ? "; ..." : "")}). " +
                "Its results would not answer this request: use another --runs folder, or delete that run folder to train it again.");
    }

    static string Text(Dictionary<string, JsonNode?> settings, string key) =>
        settings.TryGetValue(key, out var node) ? node?.ToJsonString() ?? "null" : "absent";

    /// <summary>"optimizer_options.local_entropy.l" → value, for every leaf.</summary>
    static Dictionary<string, JsonNode?> Flatten(JsonObject o, string prefix = "", Dictionary<string, JsonNode?>? into = null)
    {
        into ??= [];
        foreach (var (key, value) in o)
        {
            if (value is JsonObject child) Flatten(child, prefix + key + ".", into);
            else into[prefix + key] = value;
        }
        return into;
    }

    static JsonObject Comparable(JsonObject o)
    {
        foreach (var key in IncidentalKeys) o.Remove(key);
        // Runs store their data paths absolute; a request may name them relative to the current directory.
        foreach (var key in new[] { "data_dir", "corpus" })
            if (o[key] is JsonValue v && v.TryGetValue<string>(out var path) && !string.IsNullOrWhiteSpace(path))
                o[key] = Path.GetFullPath(path);
        return o;
    }
}
