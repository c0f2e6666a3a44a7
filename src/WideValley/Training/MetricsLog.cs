using System.Text;
using System.Text.Json;
using TorchSharp;

namespace WideValley.Training;

/// <summary>
/// Writes per-epoch metrics to metrics.jsonl (one JSON object per line, flushed each epoch) and to TensorBoard event
/// files under tensorboard/.
/// </summary>
public sealed class MetricsLog : IDisposable
{
    readonly string _path;
    readonly TorchSharp.Modules.SummaryWriter? _tensorboard;

    /// <summary>The metrics.jsonl file.</summary>
    public string Path => _path;

    /// <param name="directory">The run folder.</param>
    /// <param name="keepEpochsUpTo">
    /// On resume: lines for epochs after this one came from work the checkpoint does not contain (the run stopped after
    /// logging but before checkpointing) and are dropped, so each epoch appears once. Null starts a new file.
    /// </param>
    /// <param name="tensorboard">Also write TensorBoard event files.</param>
    /// <param name="keepWithinEpochUpToGradEvals">
    /// On resume: the checkpoint's gradient evaluations; within-epoch lines (<see cref="EpochMetrics.WithinEpoch"/>)
    /// measured at or before them are kept, later ones dropped (see <see cref="RepairForResume"/>).
    /// </param>
    public MetricsLog(string directory, int? keepEpochsUpTo, bool tensorboard, long? keepWithinEpochUpToGradEvals = null)
    {
        Directory.CreateDirectory(directory);
        _path = System.IO.Path.Combine(directory, "metrics.jsonl");
        if (keepEpochsUpTo is int keep)
            RepairForResume(_path, keep, keepWithinEpochUpToGradEvals);
        else
            AtomicFile.WriteAllText(_path, "");
        if (tensorboard)
            _tensorboard = torch.utils.tensorboard.SummaryWriter(System.IO.Path.Combine(directory, "tensorboard"));
    }

    /// <summary>Writes one epoch's line (and its TensorBoard scalars), flushed.</summary>
    public void Append(EpochMetrics m)
    {
        using (var stream = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(m.ToJsonLine());
            writer.Write('\n');
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }
        // TensorBoard's step is the epoch; a within-epoch point would collide with its epoch's end.
        if (_tensorboard is null || m.WithinEpoch == true) return;
        void Scalar(string tag, double? v)
        {
            if (v is double x) _tensorboard!.add_scalar(tag, (float)x, m.Epoch);
        }
        Scalar("train/loss", m.TrainLoss);
        Scalar("train/error", m.TrainError);
        Scalar("train/perplexity", m.TrainPerplexity);
        Scalar("train/eval_loss", m.TrainEvalLoss);
        Scalar("train/eval_error", m.TrainEvalError);
        Scalar("val/loss", m.ValLoss);
        Scalar("val/error", m.ValError);
        Scalar("val/perplexity", m.ValPerplexity);
        Scalar("test/loss", m.TestLoss);
        Scalar("test/error", m.TestError);
        Scalar("test/perplexity", m.TestPerplexity);
        Scalar("progress/lr", m.Lr);
        Scalar("progress/effective_epochs", m.EffectiveEpochs);
        Scalar("progress/grad_evals", m.GradEvals);
        Scalar("progress/seconds", m.Seconds);
        if (m.Extra is not null)
            foreach (var (k, v) in m.Extra)
                if (v is double d) Scalar("optimizer/" + k, d);
    }

    /// <summary>
    /// Makes a run's metrics.jsonl agree with its checkpoint before a resume: lines of epochs after
    /// <paramref name="keepEpochsUpTo"/> (logged after the checkpoint was written), lines that are not valid JSON, and a
    /// torn last line (a crash while appending, so no end of line) are dropped, and the file is rewritten atomically.
    /// A file that needs no repair is not touched. Returns the kept lines and, when something was dropped, a message
    /// for the user that says what.
    /// </summary>
    /// <param name="path">The metrics.jsonl file (need not exist).</param>
    /// <param name="keepEpochsUpTo">The checkpoint's completed epochs.</param>
    /// <param name="keepWithinEpochUpToGradEvals">
    /// The checkpoint's gradient evaluations: a within-epoch line (<see cref="EpochMetrics.WithinEpoch"/>) of an epoch
    /// after <paramref name="keepEpochsUpTo"/> is kept when it was measured at or before them (the checkpoint lies
    /// inside that epoch, after the evaluation), and dropped otherwise. Null: such lines are judged by their epoch only.
    /// </param>
    public static MetricsRepair RepairForResume(string path, int keepEpochsUpTo, long? keepWithinEpochUpToGradEvals = null)
    {
        if (!File.Exists(path)) return new MetricsRepair([], null);
        var text = File.ReadAllText(path);
        var lines = text.Split('\n');
        var kept = new List<(string Line, EpochMetrics Metrics)>();
        var dropped = new List<string>();
        var changed = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            var isTail = i == lines.Length - 1;
            if (line.Trim().Length == 0)
            {
                changed |= !isTail;
                continue;
            }
            EpochMetrics? m = null;
            try { m = EpochMetrics.FromJsonLine(line); }
            catch (JsonException) { }
            if (m is null)
            {
                dropped.Add(isTail
                    ? $"a torn last line ({Encoding.UTF8.GetByteCount(line)} bytes with no end of line: a crash while appending)"
                    : $"line {i + 1}, which is not valid JSON");
                changed = true;
            }
            else if (m.Epoch > keepEpochsUpTo && !(m.WithinEpoch == true && m.GradEvals <= keepWithinEpochUpToGradEvals))
            {
                dropped.Add(m.WithinEpoch == true
                    ? $"line {i + 1} (an evaluation inside epoch {m.Epoch} at {m.GradEvals:N0} gradient evaluations, logged after the checkpoint was written)"
                    : $"line {i + 1} (epoch {m.Epoch}, logged after the checkpoint was written)");
                changed = true;
            }
            else
            {
                kept.Add((line, m));
                changed |= isTail; // complete JSON but no end of line: written back with one
            }
        }
        if (changed)
            AtomicFile.WriteAllText(path, string.Concat(kept.Select(k => k.Line + "\n")));
        var message = dropped.Count == 0 ? null
            : $"{path}: repaired to the checkpoint (epoch {keepEpochsUpTo} done): dropped {string.Join("; ", dropped)}";
        return new MetricsRepair(kept.Select(k => k.Metrics).ToList(), message);
    }

    /// <summary>Every line of a metrics.jsonl file.</summary>
    public static IReadOnlyList<EpochMetrics> Read(string path) =>
        File.ReadAllLines(path).Where(l => l.Trim().Length > 0).Select(EpochMetrics.FromJsonLine).ToList();

    /// <summary>Closes the files.</summary>
    public void Dispose() { }
}

/// <summary>The outcome of <see cref="MetricsLog.RepairForResume"/>.</summary>
/// <param name="Kept">The metrics lines kept, in file order.</param>
/// <param name="Message">What was dropped, for the user; null when nothing was.</param>
public sealed record MetricsRepair(IReadOnlyList<EpochMetrics> Kept, string? Message);
