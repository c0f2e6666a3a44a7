using System.Text.Json.Nodes;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// A trained run opened for a landscape measurement: the network rebuilt from a run configuration with the
/// checkpoint's weights, and the first N training samples of the run's own data, in their stored order, as batches.
/// For a language model the samples are the training text cut into consecutive sequences of unroll + 1 tokens
/// (inputs and next-token targets), each run from the zero state, so that the measured loss is a function of the
/// weights alone. Owns everything it loads.
/// </summary>
public sealed class MeasurableRun : IDisposable
{
    readonly PreparedRun prepared;

    MeasurableRun(string checkpointPath, CheckpointMeta meta, RunConfig config, PreparedRun prepared,
        List<(Tensor Inputs, Tensor Labels)> evaluationSet, long samples, Func<Tensor, Tensor, Tensor>? loss)
    {
        CheckpointPath = checkpointPath;
        Meta = meta;
        Config = config;
        this.prepared = prepared;
        EvaluationSet = evaluationSet;
        Samples = samples;
        Loss = loss;
    }

    /// <summary>Full path of the checkpoint file.</summary>
    public string CheckpointPath { get; }

    /// <summary>The run folder (the checkpoint's folder).</summary>
    public string Folder => Path.GetDirectoryName(CheckpointPath)!;

    /// <summary>The checkpoint's metadata.</summary>
    public CheckpointMeta Meta { get; }

    /// <summary>The configuration the network and data were rebuilt from.</summary>
    public RunConfig Config { get; }

    /// <summary>The prepared run (model, data, optimizer), for callers that load other weights into the same network.</summary>
    public PreparedRun Prepared => prepared;

    /// <summary>The network at the checkpoint's weights.</summary>
    public nn.Module<Tensor, Tensor> Model => (nn.Module<Tensor, Tensor>)prepared.Task.Model;

    /// <summary>The evaluation set: the first <see cref="Samples"/> samples, in order, as batches (views of the run's data).</summary>
    public IReadOnlyList<(Tensor Inputs, Tensor Labels)> EvaluationSet { get; }

    /// <summary>Number of samples in the evaluation set (sequences for a language model).</summary>
    public long Samples { get; }

    /// <summary>
    /// The per-batch loss of a language model (mean cross-entropy per token over (B, T, V) logits); null for a
    /// classifier, whose loss is the landscape default (cross-entropy of (N, C) logits).
    /// </summary>
    public Func<Tensor, Tensor, Tensor>? Loss { get; }

    /// <summary>The stable name of <see cref="Loss"/> for fingerprints (null with the default loss).</summary>
    public string? LossName => Loss is null ? null : "per-token-cross-entropy";

    /// <summary>Number of trainable parameters of the whole network.</summary>
    public long Parameters => prepared.Parameters;

    /// <summary>Adds what was measured to a result's JSON: the run's model, parameter count, optimizer, epoch and checkpoint.</summary>
    public void Describe(JsonObject json)
    {
        json["model"] = Meta.Model;
        json["model_params"] = Parameters;
        json["optimizer"] = Meta.Optimizer;
        json["epoch"] = Meta.CompletedEpochs;
        json["checkpoint"] = CheckpointPath;
    }

    /// <summary>Whether the run trained a language model (its samples are token sequences).</summary>
    public static bool IsLanguageModel(RunConfig config) => ModelZoo.Describe(config.Model).Kind == ModelKind.LanguageModel;

    /// <summary>
    /// The checkpoint of a run folder, its metadata and stored configuration. When the newest checkpoint is damaged
    /// and the previous generation is intact, the previous one, with a notice naming the damage (null otherwise).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder holds no checkpoint.</exception>
    /// <exception cref="InvalidDataException">No generation is intact, or the checkpoint holds no run configuration.</exception>
    public static (string CheckpointPath, CheckpointMeta Meta, RunConfig Config, string? Notice) ReadRun(string runFolder)
    {
        var checkpoint = Path.Combine(Path.GetFullPath(runFolder), Trainer.CheckpointFileName);
        if (!File.Exists(checkpoint)) throw new FileNotFoundException($"{runFolder}: the folder holds no {Trainer.CheckpointFileName}", checkpoint);
        var chosen = Checkpoint.SelectIntactForReading(checkpoint);
        var notice = chosen.DamagedNewest is { } damaged
            ? $"{damaged.Message}; measuring the previous checkpoint {chosen.Path} ({Checkpoint.DescribePosition(chosen.Meta)}) instead"
            : null;
        return (chosen.Path, chosen.Meta, chosen.Meta.RequireRunConfig(chosen.Path), notice);
    }

    /// <summary>
    /// Rebuilds the run of <paramref name="config"/> (its stored configuration, perhaps with other threads, device or
    /// data folder), loads the weights of <paramref name="checkpointPath"/> and takes the first
    /// <paramref name="samples"/> training samples (all of them, up to <paramref name="defaultSamples"/>, when null)
    /// in batches of <paramref name="batchSize"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 1 sample or batch size; more samples than the training set holds.</exception>
    /// <exception cref="InvalidDataException">The checkpoint does not fit the network.</exception>
    public static MeasurableRun Open(string checkpointPath, CheckpointMeta meta, RunConfig config, int? samples, long defaultSamples, int batchSize)
    {
        if (samples is < 1) throw new ArgumentException($"--samples must be at least 1, got {samples}");
        if (batchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {batchSize}");
        var languageModel = IsLanguageModel(config);
        var prepared = RunSetup.Prepare(config, outputDirectory: null);
        try
        {
            Checkpoint.LoadWeights(checkpointPath, prepared.Task.Model);
            var (inputs, labels, what) = languageModel
                ? Sequences((LanguageModelTask)prepared.Task, config.Unroll ?? RunSetup.DefaultUnroll(config.Model))
                : (((ClassificationTask)prepared.Task).Data.Train.Inputs, ((ClassificationTask)prepared.Task).Data.Train.Labels, "samples");
            var available = inputs.shape[0];
            if (samples is int wanted && wanted > available)
                throw new ArgumentException(
                    $"--samples {wanted}: the run's training set has only {available:N0} {what} (it was trained with {(config.MaxTrainSamples is long m ? $"--max-train-samples {m}" : "the whole set")}); ask for at most {available:N0}");
            var count = samples ?? Math.Min(defaultSamples, available);
            Func<Tensor, Tensor, Tensor>? loss = languageModel
                ? (logits, targets) => nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1))
                : null;
            return new MeasurableRun(checkpointPath, meta, config, prepared, Batches(inputs, labels, count, batchSize), count, loss);
        }
        catch
        {
            prepared.Dispose();
            throw;
        }
    }

    /// <summary>The first <paramref name="count"/> samples in batches of <paramref name="batchSize"/> (views; the caller's tensors keep them).</summary>
    public static List<(Tensor Inputs, Tensor Labels)> Batches(Tensor inputs, Tensor labels, long count, int batchSize)
    {
        var batches = new List<(Tensor, Tensor)>();
        for (long start = 0; start < count; start += batchSize)
        {
            var length = Math.Min(batchSize, count - start);
            batches.Add((inputs.narrow(0, start, length), labels.narrow(0, start, length)));
        }
        return batches;
    }

    /// <summary>
    /// The training tokens as consecutive sequences of unroll + 1 tokens: inputs (S, unroll) and targets (S, unroll),
    /// the inputs shifted by one. Views of the corpus, which the prepared run owns.
    /// </summary>
    static (Tensor Inputs, Tensor Targets, string What) Sequences(LanguageModelTask task, int unroll)
    {
        var tokens = task.Corpus.Train;
        var count = tokens.shape[0] / (unroll + 1);
        if (count < 1)
            throw new ArgumentException($"the run's training text has {tokens.shape[0]:N0} tokens, fewer than one sequence of {unroll + 1} (unroll + 1)");
        var sequences = tokens.narrow(0, 0, count * (unroll + 1)).view(count, unroll + 1);
        return (sequences.narrow(1, 0, unroll), sequences.narrow(1, 1, unroll), $"sequences of {unroll + 1} tokens");
    }

    /// <summary>Frees the data, the network and the optimizer built with them.</summary>
    public void Dispose() => prepared.Dispose();
}
