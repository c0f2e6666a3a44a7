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
    public MetricsLog(string directory, int? keepEpochsUpTo, bool tensorboard)
    {
        Directory.CreateDirectory(directory);
        _path = System.IO.Path.Combine(directory, "metrics.jsonl");
        if (keepEpochsUpTo is int keep && File.Exists(_path))
        {
            var kept = File.ReadAllLines(_path)
                .Where(l => l.Trim().Length > 0)
                .Where(l => { try { return EpochMetrics.FromJsonLine(l).Epoch <= keep; } catch (System.Text.Json.JsonException) { return false; } })
                .ToList();
            AtomicFile.WriteAllText(_path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        else
        {
            AtomicFile.WriteAllText(_path, "");
        }
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
        if (_tensorboard is null) return;
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

    /// <summary>Every line of a metrics.jsonl file.</summary>
    public static IReadOnlyList<EpochMetrics> Read(string path) =>
        File.ReadAllLines(path).Where(l => l.Trim().Length > 0).Select(EpochMetrics.FromJsonLine).ToList();

    /// <summary>Closes the files.</summary>
    public void Dispose() { }
}
