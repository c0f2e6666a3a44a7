using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>When the trainer recollects BatchNorm statistics at the weights before evaluating.</summary>
public enum BatchNormRecalibrationMode
{
    /// <summary>As the optimizer prefers (<see cref="OptimizerDescriptor.RecalibratesBatchNormByDefault"/>).</summary>
    Auto,
    /// <summary>Always.</summary>
    On,
    /// <summary>Never.</summary>
    Off,
}

/// <summary>
/// Everything that defines a training run built from the model zoo: model, data, optimizer (its name and typed
/// options), schedule, epochs, seed. What the CLI's <c>train</c> options map to and what the experiment drivers
/// construct. Its JSON form (<see cref="ToJson"/>: snake_case names, the optimizer's options as one object) is stored
/// in checkpoints and summaries; it is not the checkpoint format itself (see <see cref="Checkpoint"/>).
/// </summary>
public sealed record RunConfig : IJsonOnDeserialized
{
    OptimizerOptionsBase? _optimizerOptions;
    JsonObject? _pendingOptimizerOptions;

    /// <summary>Model-zoo name.</summary>
    public string Model { get; init; } = "mnistfc";
    /// <summary>Dataset name (fashion-mnist, mnist, cifar10, ptb, text); null = the model's usual dataset.</summary>
    public string? Data { get; init; }
    /// <summary>Folder holding the dataset (null = the usual search path).</summary>
    public string? DataDir { get; init; }
    /// <summary>UTF-8 text file for char-level models (data "text").</summary>
    public string? Corpus { get; init; }
    /// <summary>Vocabulary of a char-level corpus: null = the text's own characters, "ascii" = newline and printable
    /// ASCII whatever the text uses (<see cref="TextCorpora.CharacterSet"/>).</summary>
    public string? CharacterSet { get; init; }
    /// <summary>Registered optimizer name (<see cref="OptimizerFactory.Names"/>).</summary>
    public string Optimizer { get; init; } = "sgd";

    /// <summary>
    /// The optimizer's options record (its type must be the one <see cref="Optimizer"/> is registered with); null =
    /// the optimizer's defaults. <see cref="RunSetup.Prepare"/> stores the resolved record, so that a run's settings
    /// stay what they were even if defaults change.
    /// </summary>
    [JsonIgnore]
    public OptimizerOptionsBase? OptimizerOptions { get => _optimizerOptions; init => _optimizerOptions = value; }

    /// <summary>Minibatch size (language models: rows).</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Outer epochs.</summary>
    public int Epochs { get; init; } = 10;
    /// <summary>Stop once this many effective epochs are done (null = no budget).</summary>
    public double? EffectiveEpochBudget { get; init; }
    /// <summary>
    /// Also evaluate every this many effective epochs, inside long outer epochs too
    /// (<see cref="TrainerOptions.EvaluateEveryEffectiveEpochs"/>); null = at epoch ends only. Left out of the JSON when
    /// null, so that runs without it store what they stored before.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? EvalEveryEffectiveEpochs { get; init; }
    /// <summary>Learning-rate schedule (<see cref="LearningRateSchedule.Syntax"/>).</summary>
    public string LrSchedule { get; init; } = "const";
    /// <summary>Hidden-layer dropout (null = the model's).</summary>
    public double? Dropout { get; init; }
    /// <summary>Input dropout (null = the model's).</summary>
    public double? InputDropout { get; init; }
    /// <summary>LSTM hidden units (null = the paper's).</summary>
    public int? HiddenSize { get; init; }
    /// <summary>LSTM layers (null = the paper's).</summary>
    public int? Layers { get; init; }
    /// <summary>Seed of initialisation, data order, dropout and the optimizer's own noise.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>cpu, cuda or cuda:N.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Use only the first N training samples.</summary>
    public long? MaxTrainSamples { get; init; }
    /// <summary>Hold out N training samples as a validation set.</summary>
    public long ValidationSize { get; init; }
    /// <summary>Clip the gradient norm of each gradient evaluation (0 = off).</summary>
    public double ClipGradNorm { get; init; }
    /// <summary>Recollect BatchNorm statistics before evaluating.</summary>
    public BatchNormRecalibrationMode BnRecalibrate { get; init; } = BatchNormRecalibrationMode.Auto;
    /// <summary>Minibatches fed for BN recalibration, 0 = one full pass.</summary>
    public int BnRecalibrateBatches { get; init; }
    /// <summary>Also evaluate the whole training set after each epoch.</summary>
    public bool EvalTrain { get; init; }
    /// <summary>Pixel scaling (<see cref="PixelScaling"/>).</summary>
    public string Scaling { get; init; } = PixelScaling.Unit;
    /// <summary>BPTT window length for language models; null = the model's paper value.</summary>
    public int? Unroll { get; init; }
    /// <summary>Evaluation batch size (classification: images per forward pass; language models: rows).</summary>
    public int? EvalBatchSize { get; init; }
    /// <summary>Write TensorBoard event files.</summary>
    public bool TensorBoard { get; init; } = true;
    /// <summary>
    /// Stop the run as diverged when the training loss of a check exceeds this multiple of the smallest so far
    /// (<see cref="DivergenceGuardOptions.LossFactor"/>; 0 = off). May change on resume.
    /// </summary>
    public double DivergenceFactor { get; init; } = DivergenceGuardOptions.DefaultLossFactor;
    /// <summary>
    /// Stop the run as diverged when the training loss grew at this many consecutive checks
    /// (<see cref="DivergenceGuardOptions.GrowthChecks"/>; 0 = off). May change on resume.
    /// </summary>
    public int DivergencePatience { get; init; } = DivergenceGuardOptions.DefaultGrowthChecks;
    /// <summary>
    /// Also write a checkpoint every this many optimizer steps ("500") or this much time ("10m", "90s", "2h"), besides
    /// epoch ends and interruptions (<see cref="CheckpointInterval.Parse"/>); null = at epoch ends only. A crash then
    /// loses at most that much work. May change on resume.
    /// </summary>
    public string? CheckpointEvery { get; init; }
    /// <summary>
    /// Identity of the data the run was trained on (<see cref="RunSetup.Fingerprint(ClassificationDataset)"/>), set by
    /// <see cref="RunSetup.Prepare"/>: where the data lies may change (a moved run, <c>--data-dir</c> on resume), what
    /// it is may not. Null for runs stored before it was recorded.
    /// </summary>
    public string? DataFingerprint { get; init; }
    /// <summary>
    /// The Hessian-trace regulariser added to the loss (<see cref="HessianTraceRegularizer"/>); null = none. Its probe
    /// seed is its own <see cref="HessianTraceRegularizerOptions.Seed"/>.
    /// </summary>
    public HessianTraceRegularizerOptions? HessianTrace { get; init; }
    /// <summary>
    /// Curvature recorded after every epoch (<see cref="CurvatureTracker"/>, <c>--track-curvature</c>); null = none.
    /// </summary>
    public CurvatureTrackingOptions? CurvatureTracking { get; init; }
    /// <summary>
    /// How the run is spread over the ranks of an MPI job (<c>--distributed</c>: data-parallel, parle or elastic;
    /// <see cref="DistributedTraining"/>); null = one process. Left out of the JSON when null.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Distributed { get; init; }

    /// <summary>The divergence guard's settings, for <see cref="TrainerOptions.Divergence"/>.</summary>
    [JsonIgnore]
    public DivergenceGuardOptions Divergence => new() { LossFactor = DivergenceFactor, GrowthChecks = DivergencePatience };

    /// <summary><see cref="OptimizerOptions"/>, or the optimizer's defaults when that is null.</summary>
    [JsonIgnore]
    public OptimizerOptionsBase ResolvedOptimizerOptions => OptimizerOptions ?? OptimizerFactory.Describe(Optimizer).Defaults;

    /// <summary>This configuration with <paramref name="options"/>' optimizer (named by its registration) and options.</summary>
    public RunConfig WithOptimizer(OptimizerOptionsBase options) =>
        this with { Optimizer = OptimizerFactory.DescribeOptions(options).Name, OptimizerOptions = options };

    /// <summary>The options as one JSON object, for serialisation; see <see cref="OptimizerDescriptor.ToJson"/>.</summary>
    [JsonInclude, JsonPropertyName("optimizer_options")]
    private JsonObject? OptimizerOptionsJson
    {
        get => _optimizerOptions is null ? null : OptimizerFactory.DescribeOptions(_optimizerOptions).ToJson(_optimizerOptions);
        init => _pendingOptimizerOptions = value;
    }

    void IJsonOnDeserialized.OnDeserialized()
    {
        if (_pendingOptimizerOptions is not JsonObject pending) return;
        _optimizerOptions = OptimizerFactory.Describe(Optimizer).FromJson(pending);
        _pendingOptimizerOptions = null;
    }

    /// <summary>snake_case names, enums as snake_case strings, every property written.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
    };

    /// <summary>This configuration as one JSON object.</summary>
    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, Json)!.AsObject();

    /// <summary>
    /// A configuration from <see cref="ToJson"/>'s form, or from the flat form of checkpoint format 1 (every optimizer
    /// setting a top-level CLI-named value), which is converted to the typed options.
    /// </summary>
    public static RunConfig FromJson(JsonNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        try
        {
            if (LegacyRunConfig.IsLegacy(node)) return LegacyRunConfig.Convert(node.AsObject());
            return node.Deserialize<RunConfig>(Json) ?? throw new JsonException("empty run configuration");
        }
        catch (ArgumentException e)
        {
            throw new JsonException($"run configuration: {e.Message}", e);
        }
    }
}

/// <summary>
/// Our estimate of the memory a training run needs (<see cref="RunSetup.EstimateTrainingMemory"/>): not a measurement,
/// and on the low side (workspaces, the data and evaluation are left out).
/// </summary>
/// <param name="Parameters">The model's parameter count (exact).</param>
/// <param name="ParameterCopies">Parameter-sized tensors kept: weights, gradients, optimizer state (<see cref="RunSetup.ParameterCopies"/>).</param>
/// <param name="ParameterBytes">Parameters x copies x 4 bytes.</param>
/// <param name="ActivationBytes">The values one batch's forward pass keeps for the backward pass, x 4 bytes (rough).</param>
/// <param name="TotalBytes">The sum.</param>
public sealed record TrainingMemoryEstimate(long Parameters, int ParameterCopies, long ParameterBytes, long ActivationBytes, long TotalBytes);

/// <summary>A run ready to train: task (model + data), optimizer and trainer options. Owns them.</summary>
public sealed class PreparedRun : IDisposable
{
    /// <summary>The configuration, with the optimizer's options resolved.</summary>
    public required RunConfig Config { get; init; }
    /// <summary>Model and data.</summary>
    public required ITrainingTask Task { get; init; }
    /// <summary>The optimizer over the model's parameters (on its device).</summary>
    public required optim.Optimizer Optimizer { get; init; }
    /// <summary>The trainer's options, including the configuration to store in checkpoints.</summary>
    public required TrainerOptions TrainerOptions { get; init; }
    /// <summary>Where the model and data live.</summary>
    public required Device Device { get; init; }
    /// <summary>The resolved dataset name and where it came from, for the console and reports.</summary>
    public required string DataDescription { get; init; }
    /// <summary>Number of model parameters.</summary>
    public long Parameters => Checkpoint.CountParameters(Task.Model);

    /// <summary>A trainer for this run.</summary>
    public Trainer CreateTrainer() => new(Task, Optimizer, TrainerOptions);

    /// <summary>Frees data, optimizer and model.</summary>
    public void Dispose()
    {
        (TrainerOptions.EpochEndHook as IDisposable)?.Dispose();
        Task.Dispose();
        Optimizer.Dispose();
        Task.Model.Dispose();
    }
}

/// <summary>Turns a <see cref="RunConfig"/> into a <see cref="PreparedRun"/>: data, model, task, optimizer.</summary>
public static class RunSetup
{
    /// <summary>The Penn Treebank (word level), read from a folder.</summary>
    public const string Ptb = "ptb";
    /// <summary>Any UTF-8 text file at character level (<see cref="RunConfig.Corpus"/>).</summary>
    public const string Text = "text";

    /// <summary>The dataset a model is trained on when none is named.</summary>
    public static string DefaultData(string model) => model switch
    {
        "allcnn" => DatasetCatalog.Cifar10Name,
        "ptb-lstm" or "ptb-small-lstm" => Ptb,
        "char-lstm" or "small-char-lstm" => Text,
        _ => DatasetCatalog.FashionMnist,
    };

    /// <summary>
    /// The paper's BPTT length: 35 for PTB-LSTM, 50 for char-LSTM, 32 for the small char-LSTM (32-char lines), 20 for
    /// the small PTB LSTM (Zaremba et al.'s small configuration, as Freeman and Bruna use it).
    /// </summary>
    public static int DefaultUnroll(string model) => model switch
    {
        "ptb-lstm" => 35,
        "ptb-small-lstm" => 20,
        "small-char-lstm" => 32,
        _ => 50,
    };

    /// <summary>
    /// Most libtorch threads a run may ask for: 4 per logical core. More only oversubscribes the cores (100,000 made
    /// libtorch start thousands of threads and print nothing for minutes).
    /// </summary>
    public static int MaxThreads => 4 * Environment.ProcessorCount;

    /// <summary>
    /// Refuses a minibatch larger than the training set it is drawn from (each step would then see the whole set,
    /// several times over in the effective-epoch count); names both numbers.
    /// </summary>
    /// <exception cref="ArgumentException">The batch is larger than the set.</exception>
    public static void ValidateBatchAgainstTrainingSet(RunConfig c, long trainingSamples)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.BatchSize > trainingSamples)
            throw new ArgumentException(
                $"--batch-size {c.BatchSize} is larger than the training set ({trainingSamples:N0} samples{(c.MaxTrainSamples is long m ? $" with --max-train-samples {m}" : "")}" +
                $"{(c.ValidationSize > 0 ? $", after holding out --validation-size {c.ValidationSize}" : "")}); use a batch of at most {trainingSamples:N0}");
    }

    /// <summary>Bytes per parameter and per activation: the zoo's networks train in float32.</summary>
    const int BytesPerValue = sizeof(float);

    /// <summary>
    /// How many parameter-sized tensors training keeps: the weights, their gradients, and the optimizer's state. SGD:
    /// a momentum buffer when momentum is on. Adam: the two moment estimates. SGLD: none (its noise is drawn per
    /// tensor). Entropy-SGD and Entropy-Adam: the local-entropy estimator's anchor x0 and average mu, the Langevin
    /// velocity when Langevin momentum is on (<see cref="LocalEntropy.BufferElements"/>), plus the outer SGD's
    /// momentum or Adam's moments. Parle (per replica): Entropy-SGD's copies plus the coupling's reference buffer;
    /// Elastic-SGD: SGD's plus the reference buffer. An optimizer registered elsewhere counts as none (the check is not meant to refuse
    /// on a guess). Transient copies inside a step (a weight-decay term, the noise) are not counted.
    /// </summary>
    public static int ParameterCopies(OptimizerOptionsBase options)
    {
        ArgumentNullException.ThrowIfNull(options);
        const int weightsAndGradients = 2;
        return weightsAndGradients + options switch
        {
            SgdOptions sgd => sgd.Momentum > 0 ? 1 : 0,
            AdamOptions => 2,
            SgldOptions => 0,
            EntropySgdOptions entropy => LocalEntropyCopies(entropy.LocalEntropy) + (entropy.Momentum > 0 ? 1 : 0),
            EntropyAdamOptions entropy => LocalEntropyCopies(entropy.LocalEntropy) + 2,
            // Each replica: the local-entropy buffers, the outer momentum, and the coupling's reference (the replicas' mean).
            ParleOptions parle => LocalEntropyCopies(parle.LocalEntropy) + (parle.Momentum > 0 ? 1 : 0) + 1,
            ElasticSgdOptions elastic => (elastic.Momentum > 0 ? 1 : 0) + 1,
            ILocalEntropyOptimizerOptions entropy => LocalEntropyCopies(entropy.LocalEntropy),
            SharpnessAwareOptions sam => (sam.IsAdaptive ? 3 : 2) + ParameterCopies(sam.BaseOptions()) - weightsAndGradients, // e, the saved weights (ASAM: T), the base's state
            _ => 0,
        };
    }

    static int LocalEntropyCopies(LocalEntropyOptions o) => 2 + (o.LangevinMomentum > 0 ? 1 : 0);

    /// <summary>
    /// Our estimate (not a measurement) of the memory training <paramref name="c"/>'s model needs, from its size
    /// (<see cref="ModelZoo.EstimateSize"/>, built with <paramref name="model"/>) without building it:
    /// 4 bytes x (parameters x <see cref="ParameterCopies"/> + activations of one batch), where a batch is
    /// <see cref="RunConfig.BatchSize"/> images, or batch x unroll tokens for a language model. An Entropy-SGD step
    /// keeps only one minibatch's activations at a time, so L does not enter. The activation term is rough and leaves
    /// out libtorch's workspaces, the data set and the evaluation pass, so the real peak is higher: the estimate
    /// errs on the low side, to refuse only what clearly cannot fit.
    /// </summary>
    public static TrainingMemoryEstimate EstimateTrainingMemory(RunConfig c, ModelOptions model)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(model);
        var size = ModelZoo.EstimateSize(c.Model, model);
        var copies = ParameterCopies(c.ResolvedOptimizerOptions);
        var isText = ModelZoo.Describe(c.Model).Kind == ModelKind.LanguageModel;
        var examples = (Int128)c.BatchSize * (isText ? c.Unroll ?? DefaultUnroll(c.Model) : 1);
        var parameterBytes = MemoryBudget.Saturate((Int128)size.Parameters * copies * BytesPerValue);
        var activationBytes = MemoryBudget.Saturate(examples * size.ActivationsPerExample * BytesPerValue);
        return new TrainingMemoryEstimate(size.Parameters, copies, parameterBytes, activationBytes,
            MemoryBudget.Saturate((Int128)parameterBytes + activationBytes));
    }

    /// <summary>
    /// Refuses (<see cref="MemoryBudgetException"/>) a configuration whose <see cref="EstimateTrainingMemory"/> is above
    /// the memory available (<paramref name="available"/>, default <see cref="MemoryBudget.Available()"/>), naming the
    /// model and its size options, the parameter count, the optimizer, the estimate and the memory there is, and what
    /// to lower. <paramref name="vocabularyIsLowerBound"/>: the language model's vocabulary in <paramref name="model"/>
    /// is a lower bound (the corpus is not read yet), so the count is "at least".
    /// </summary>
    public static void EnsureTrainingFits(RunConfig c, ModelOptions model, bool vocabularyIsLowerBound = false, AvailableMemory? available = null)
    {
        var estimate = EstimateTrainingMemory(c, model);
        var there = available ?? MemoryBudget.Available();
        if (estimate.TotalBytes <= there.Bytes) return;
        var isText = ModelZoo.Describe(c.Model).Kind == ModelKind.LanguageModel;
        var settings = new List<string>();
        if (c.HiddenSize is int hidden) settings.Add($"--hidden-size {hidden}");
        if (c.Layers is int layers) settings.Add($"--layers {layers}");
        var count = estimate.Parameters >= 1_000_000_000
            ? estimate.Parameters.ToString("0.0e0", System.Globalization.CultureInfo.InvariantCulture)
            : estimate.Parameters.ToString("N0", System.Globalization.CultureInfo.InvariantCulture);
        var batch = isText ? $"{c.BatchSize} x {c.Unroll ?? DefaultUnroll(c.Model)} tokens" : $"{c.BatchSize} images";
        var what = $"the model {c.Model}{(settings.Count > 0 ? " with " + string.Join(" and ", settings) : "")} has " +
                   $"{(vocabularyIsLowerBound ? "at least " : "")}{count} parameters; training it with {c.Optimizer} " +
                   $"({estimate.ParameterCopies} parameter-sized copies: weights, gradients and the optimizer's state, {MemoryBudget.Format(estimate.ParameterBytes)}; " +
                   $"activations of a batch of {batch}, {MemoryBudget.Format(estimate.ActivationBytes)})";
        // Name what must come down: the size options when the parameters alone do not fit, the batch when its
        // activations alone do not (for a language model the size options shrink those too), either when only the sum does not.
        var sizeOptions = new List<string>();
        if (c.HiddenSize is not null) sizeOptions.Add("--hidden-size");
        if (c.Layers is not null) sizeOptions.Add("--layers");
        var size = sizeOptions.Count > 0 ? string.Join(" or ", sizeOptions)
            : isText ? "the model's size (--hidden-size or --layers; or use a corpus with a smaller vocabulary)" : "the model's size";
        var batchOptions = isText ? "--batch-size or --unroll" : "--batch-size";
        var parametersAloneTooBig = estimate.ParameterBytes > there.Bytes;
        var activationsAloneTooBig = estimate.ActivationBytes > there.Bytes;
        var lower = (parametersAloneTooBig, activationsAloneTooBig) switch
        {
            (true, false) => size,
            (false, true) => isText && sizeOptions.Count > 0 ? $"{batchOptions}, or {size}" : batchOptions,
            (true, true) => $"{size}, and {batchOptions} if that is not enough",
            _ => $"{size}, or {batchOptions}",
        };
        MemoryBudget.EnsureFits(estimate.TotalBytes, what, $"lower {lower} (the estimate is ours and errs on the low side)", there);
    }

    /// <summary>
    /// The memory check of <see cref="Validate"/>, before any data is read: for a language model, with the vocabulary
    /// the character set fixes or else one token (a lower bound: the LSTM layers alone decide whether a huge
    /// --hidden-size or --layers fits). Image classifiers are checked by <see cref="Prepare"/> once the images' shape
    /// is known.
    /// </summary>
    static void EnsureTrainingFitsBeforeLoading(RunConfig c, ModelInfo info)
    {
        if (info.Kind != ModelKind.LanguageModel) return;
        var vocabulary = c.CharacterSet is string set ? TextCorpora.CharacterSet(set).Count : 1;
        EnsureTrainingFits(c, LanguageModelOptions(c, vocabulary), vocabularyIsLowerBound: c.CharacterSet is null);
    }

    static ModelOptions LanguageModelOptions(RunConfig c, int vocabulary) => new()
    {
        Dropout = c.Dropout,
        InputDropout = c.InputDropout,
        VocabularySize = vocabulary,
        HiddenSize = c.HiddenSize,
        Layers = c.Layers,
    };

    /// <summary>
    /// Checks the configuration without loading anything; throws <see cref="ArgumentException"/> naming the option
    /// (an <see cref="OptionsException"/> naming the property of the optimizer's options record).
    /// </summary>
    public static void Validate(RunConfig c)
    {
        var info = ModelZoo.Describe(c.Model);
        var data = c.Data ?? DefaultData(c.Model);
        var isText = data is Ptb or Text;
        if (info.Kind == ModelKind.LanguageModel && !isText)
            throw new ArgumentException($"--model {c.Model} is a language model; --data must be {Ptb} or {Text}, not '{data}'");
        if (info.Kind == ModelKind.Classifier && isText)
            throw new ArgumentException($"--model {c.Model} classifies images; --data '{data}' is text (use fashion-mnist, mnist or cifar10)");
        if (!isText && !DatasetCatalog.Names.Contains(data))
            throw new ArgumentException($"unknown dataset '{data}'; expected one of: {string.Join(", ", DatasetCatalog.Names.Append(Ptb).Append(Text))}");
        if (data == Text && string.IsNullOrWhiteSpace(c.Corpus))
            throw new ArgumentException("--data text needs --corpus FILE (any UTF-8 text file, e.g. /usr/share/games/fortunes/fortunes)");
        if (c.CharacterSet is string set)
        {
            if (data != Text) throw new ArgumentException($"a character set applies to --data {Text}, not '{data}'");
            TextCorpora.CharacterSet(set);
        }
        var descriptor = OptimizerFactory.Describe(c.Optimizer);
        if (c.OptimizerOptions is OptimizerOptionsBase options) descriptor.Validate(options);
        else descriptor.Defaults.Validate();
        if (c.BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {c.BatchSize}");
        if (c.Epochs < 1) throw new ArgumentException($"--epochs must be at least 1, got {c.Epochs}");
        if (c.EffectiveEpochBudget is double b && (!(b > 0) || double.IsInfinity(b)))
            throw new ArgumentException($"--effective-epochs must be a positive number, got {b}");
        if (c.EvalEveryEffectiveEpochs is double interval && (!(interval > 0) || double.IsInfinity(interval)))
            throw new ArgumentException($"--eval-every (the evaluation interval in effective epochs) must be a positive number, got {interval}");
        if (c.Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {c.Threads}");
        if (c.Threads > MaxThreads)
            throw new ArgumentException($"--threads must be at most {MaxThreads} (4 x this machine's {Environment.ProcessorCount} logical cores), got {c.Threads}");
        if (c.MaxTrainSamples is < 1) throw new ArgumentException($"--max-train-samples must be at least 1, got {c.MaxTrainSamples}");
        if (info.Kind == ModelKind.Classifier && c.MaxTrainSamples is long most && most < c.BatchSize)
            throw new ArgumentException(
                $"--batch-size {c.BatchSize} is larger than the training set of --max-train-samples {most}: every step would use the whole set " +
                $"({(double)c.BatchSize / most:0.##} times over); use --batch-size {most} or less, or more samples");
        if (c.ValidationSize < 0) throw new ArgumentException($"--validation-size must be 0 or positive, got {c.ValidationSize}");
        if (!(c.ClipGradNorm >= 0) || double.IsInfinity(c.ClipGradNorm))
            throw new ArgumentException($"--clip-grad-norm must be 0 (off) or a positive number, got {c.ClipGradNorm}");
        if (!Enum.IsDefined(c.BnRecalibrate)) throw new ArgumentException($"--bn-recalibrate must be auto, on or off, got '{c.BnRecalibrate}'");
        if (c.BnRecalibrateBatches < 0) throw new ArgumentException($"--bn-recalibrate-batches must be 0 (full pass) or positive, got {c.BnRecalibrateBatches}");
        c.HessianTrace?.Validate();
        c.CurvatureTracking?.Validate();
        if (c.CurvatureTracking is not null && info.Kind != ModelKind.Classifier)
            throw new ArgumentException($"--track-curvature measures an image classifier's Hessian over examples of every class; --model {c.Model} is a language model");
        ValidateDistributed(c, info);
        if (c.Unroll is < 1) throw new ArgumentException($"--unroll must be at least 1, got {c.Unroll}");
        if (c.EvalBatchSize is < 1) throw new ArgumentException($"--eval-batch-size must be at least 1, got {c.EvalBatchSize}");
        if (c.Dropout is double d && !(d >= 0 && d < 1)) throw new ArgumentException($"--dropout must be in [0, 1), got {d}");
        if (c.InputDropout is double di && !(di >= 0 && di < 1)) throw new ArgumentException($"--input-dropout must be in [0, 1), got {di}");
        if (!(c.DivergenceFactor == 0 || (double.IsFinite(c.DivergenceFactor) && c.DivergenceFactor > 1)))
            throw new ArgumentException($"--divergence-factor must be 0 (off) or a finite number above 1, got {c.DivergenceFactor}");
        if (c.DivergencePatience < 0) throw new ArgumentException($"--divergence-patience must be 0 (off) or positive, got {c.DivergencePatience}");
        if (c.CheckpointEvery is { } every)
        {
            try { CheckpointInterval.Parse(every); }
            catch (FormatException e) { throw new ArgumentException($"--checkpoint-every: {e.Message}"); }
        }
        LearningRateSchedule.Parse(c.LrSchedule);
        TorchRuntime.ResolveDevice(c.Device);
        EnsureTrainingFitsBeforeLoading(c, info);
    }

    /// <summary>
    /// The stored configuration of the run in <paramref name="runFolder"/> with its data located: an override
    /// (<paramref name="dataDir"/>, <paramref name="corpus"/>: where the data lies now) replaces the stored path; a
    /// stored absolute path must exist; a relative one (stored by runs before paths were made absolute) is looked for
    /// relative to the current directory, then to the run folder and each folder above it (a project moved as a whole
    /// keeps its layout). Whether the data found is the run's is checked by <see cref="Prepare"/> against
    /// <see cref="RunConfig.DataFingerprint"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The data is nowhere to be found; the message says where it looked and what to pass.</exception>
    public static RunConfig LocateData(RunConfig stored, string runFolder, string? dataDir = null, string? corpus = null)
    {
        ArgumentNullException.ThrowIfNull(stored);
        runFolder = Path.GetFullPath(runFolder);
        var located = stored;
        if (!string.IsNullOrWhiteSpace(dataDir)) located = located with { DataDir = Path.GetFullPath(dataDir) };
        else if (stored.DataDir is string storedDir)
            located = located with { DataDir = Locate(storedDir, runFolder, "--data-dir", "folder", Directory.Exists) };
        if (!string.IsNullOrWhiteSpace(corpus)) located = located with { Corpus = Path.GetFullPath(corpus) };
        else if (stored.Corpus is string storedCorpus)
            located = located with { Corpus = Locate(storedCorpus, runFolder, "--corpus", "file", File.Exists) };
        return located;
    }

    static string Locate(string stored, string runFolder, string option, string kind, Func<string, bool> exists)
    {
        if (Path.IsPathFullyQualified(stored))
        {
            if (exists(stored)) return stored;
            throw new ArgumentException(
                $"the run in {runFolder} was trained on the data {kind} {stored}, which does not exist (moved?); " +
                $"pass {option} {(kind == "file" ? "FILE" : "DIR")} with where that data lies now (it must be the same data: its identity is checked)");
        }
        var candidates = new List<string> { Path.GetFullPath(stored) };
        for (var folder = runFolder; folder is not null; folder = Path.GetDirectoryName(folder))
            candidates.Add(Path.GetFullPath(Path.Combine(folder, stored)));
        candidates = candidates.Distinct().ToList();
        var found = candidates.FirstOrDefault(exists);
        if (found is not null) return found;
        throw new ArgumentException(
            $"the run in {runFolder} stores the relative data {kind} '{stored}' (as runs did before paths were stored absolute); " +
            $"it is not at any of {string.Join(", ", candidates)}; pass {option} {(kind == "file" ? "FILE" : "DIR")} with where that data lies now " +
            "(it must be the same data: its identity is checked)");
    }

    /// <summary>
    /// Identity of a classification dataset as loaded for a run: SHA-256 over its splits' sizes, sample shape, class
    /// count and labels in order. Labels rather than pixels, so that the identity does not depend on floating-point
    /// preprocessing (standard scaling sums with as many threads as the run has) or on the files' compression; two
    /// datasets with the same labels in the same order and the same shapes are not told apart.
    /// </summary>
    public static string Fingerprint(ClassificationDataset dataset)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        AppendLongs(hash, [dataset.NumClasses, .. dataset.SampleShape]);
        foreach (var split in new[] { dataset.Train, dataset.Validation, dataset.Test })
        {
            AppendLongs(hash, [split?.Count ?? -1]);
            if (split is not null) AppendTensor(hash, split.Labels);
        }
        return "labels-sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Identity of a token corpus as loaded for a run: SHA-256 over its vocabulary and the three splits' tokens.</summary>
    public static string Fingerprint(TokenCorpus corpus)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        AppendLongs(hash, [corpus.Vocabulary.Count]);
        foreach (var token in corpus.Vocabulary.Tokens)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(token));
            hash.AppendData([0]);
        }
        foreach (var split in new[] { corpus.Train, corpus.Validation, corpus.Test })
        {
            AppendLongs(hash, [split.NumberOfElements]);
            AppendTensor(hash, split);
        }
        return "tokens-sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    static void AppendLongs(System.Security.Cryptography.IncrementalHash hash, long[] values) =>
        hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    static void AppendTensor(System.Security.Cryptography.IncrementalHash hash, Tensor t)
    {
        using var scope = NewDisposeScope();
        var values = t.to(ScalarType.Int64).cpu().contiguous().data<long>().ToArray();
        AppendLongs(hash, values);
    }

    /// <summary>Refuses data whose identity differs from the run's stored one.</summary>
    static void RequireSameData(RunConfig c, string fingerprint, string description)
    {
        if (c.DataFingerprint is not string stored || stored == fingerprint) return;
        var where = c.Corpus is string corpus ? $"--corpus {corpus}" : c.DataDir is string dir ? $"--data-dir {dir}" : "the default data location";
        throw new ArgumentException(
            $"the data at {where} is not the data this run was trained on (found {description}; its identity {fingerprint} differs from the run's {stored}); " +
            "point --data-dir or --corpus at the run's own data");
    }

    /// <summary>
    /// Loads data, builds the model (seeded), moves it to the device, then builds the optimizer (TorchSharp keys
    /// optimizer state by tensor handle, so the optimizer must see the moved parameters).
    /// </summary>
    /// <param name="c">The run.</param>
    /// <param name="outputDirectory">The run folder (null: nothing written).</param>
    /// <param name="log">Progress messages of data loading.</param>
    /// <param name="collectives">
    /// The ranks of the job for a distributed run (<see cref="RunConfig.Distributed"/>); null: one process. Rank r &gt;
    /// 0 seeds its global generator (dropout) with <see cref="DistributedTraining.RankSeed"/>; in replica runs its data
    /// order and the optimizer's noise too.
    /// </param>
    public static PreparedRun Prepare(RunConfig c, string? outputDirectory, Action<string>? log = null, Distributed.ICollectives? collectives = null)
    {
        Validate(c);
        // Data paths are stored absolute, so that the run folder can be resumed and evaluated from anywhere.
        c = c with
        {
            DataDir = string.IsNullOrWhiteSpace(c.DataDir) ? c.DataDir : Path.GetFullPath(c.DataDir),
            Corpus = string.IsNullOrWhiteSpace(c.Corpus) ? c.Corpus : Path.GetFullPath(c.Corpus),
        };
        // Store the resolved options, so that the run keeps its settings even if an optimizer's defaults change.
        c = c with { OptimizerOptions = c.ResolvedOptimizerOptions };
        TorchRuntime.EnsureLoadable();
        TorchRuntime.SetThreads(c.Threads);
        var device = TorchRuntime.ResolveDevice(c.Device);
        var info = ModelZoo.Describe(c.Model);
        var data = c.Data ?? DefaultData(c.Model);
        var descriptor = OptimizerFactory.Describe(c.Optimizer);
        var mode = DistributedTraining.ModeOf(c.Distributed);
        var (rank, ranks) = (collectives?.Rank ?? 0, collectives?.Size ?? 1);
        if (mode == DistributedMode.None && ranks > 1)
            throw new ArgumentException($"this process is rank {rank} of an MPI job of {ranks}; pass --distributed data-parallel, parle or elastic (or run one process without mpirun)");
        // Replicas see their own data order and draw their own noise; data-parallel ranks share both (identical steps).
        var rankSeed = DistributedTraining.RankSeed(c.Seed, rank);
        var streamSeed = mode == DistributedMode.Replicas ? rankSeed : c.Seed;

        ITrainingTask task;
        string description;
        if (info.Kind == ModelKind.Classifier)
        {
            var dataset = DatasetCatalog.LoadClassification(data, new DataOptions
            {
                DataDir = c.DataDir,
                ValidationSize = c.ValidationSize,
                MaxTrainSamples = c.MaxTrainSamples,
                Seed = c.Seed,
                Scaling = c.Scaling,
                Log = log,
            });
            var fingerprint = Fingerprint(dataset);
            try
            {
                RequireSameData(c, fingerprint, $"{dataset.Train.Count} train, {dataset.Test.Count} test samples; {dataset.Source}");
                ValidateBatchAgainstTrainingSet(c, dataset.Train.Count);
                if (mode == DistributedMode.DataParallel && (long)c.BatchSize * ranks > dataset.Train.Count)
                    throw new ArgumentException(
                        $"--batch-size {c.BatchSize} per rank on {ranks} ranks makes a global minibatch of {(long)c.BatchSize * ranks:N0}, larger than the training set ({dataset.Train.Count:N0} samples); " +
                        $"use --batch-size {Math.Max(1, dataset.Train.Count / ranks)} or less");
                EnsureTrainingFits(c, ClassifierOptions(c, dataset));
            }
            catch
            {
                dataset.Dispose();
                throw;
            }
            c = c with { DataFingerprint = fingerprint };
            TorchRuntime.Seed(c.Seed);
            var model = ModelZoo.Create(c.Model, ClassifierOptions(c, dataset));
            model.to(device);
            // Initialisation drew from the run seed on every rank (rank 0's weights are broadcast anyway); dropout masks differ per rank.
            if (rank > 0) TorchRuntime.Seed(rankSeed);
            var onDevice = device.type == DeviceType.CPU ? dataset : MoveTo(dataset, device);
            task = new ClassificationTask((nn.Module<Tensor, Tensor>)model, onDevice, c.BatchSize, streamSeed, c.EvalBatchSize ?? 1000,
                shard: mode == DistributedMode.DataParallel ? new DataShard(rank, ranks) : null);
            description = $"{data} ({dataset.Train.Count} train, {dataset.Validation?.Count ?? 0} validation, {dataset.Test.Count} test; {dataset.Source}; {dataset.Preprocessing})";
        }
        else
        {
            var corpus = data == Ptb
                ? TextCorpora.LoadPtb(ResolvePtbFolder(c.DataDir))
                : TextCorpora.LoadCharacters(c.Corpus!, characterSet: c.CharacterSet);
            var fingerprint = Fingerprint(corpus);
            try
            {
                RequireSameData(c, fingerprint, $"{corpus.Name}, {corpus.Train.shape[0]} training tokens; {corpus.Source}");
                // A data-parallel job cuts the text into --batch-size rows per rank, as one process with the K-times batch would.
                var rows = mode == DistributedMode.DataParallel ? c.BatchSize * ranks : c.BatchSize;
                LanguageModelTask.ValidateBatchAgainstCorpus(corpus.Train.shape[0], rows, c.Unroll ?? DefaultUnroll(c.Model), corpus.Name);
                EnsureTrainingFits(c, LanguageModelOptions(c, corpus.Vocabulary.Count));
            }
            catch
            {
                corpus.Dispose();
                throw;
            }
            c = c with { DataFingerprint = fingerprint };
            TorchRuntime.Seed(c.Seed);
            var model = ModelZoo.Create(c.Model, LanguageModelOptions(c, corpus.Vocabulary.Count));
            model.to(device);
            // Initialisation drew from the run seed on every rank (rank 0's weights are broadcast anyway); dropout masks differ per rank.
            if (rank > 0) TorchRuntime.Seed(rankSeed);
            // Evaluation cuts a split into as many rows as training does (the state carried along a row depends on the
            // cut): a data-parallel job evaluates with its global batch, as one process with that batch would.
            var dataParallel = mode == DistributedMode.DataParallel;
            task = new LanguageModelTask(model, corpus, c.BatchSize, c.Unroll ?? DefaultUnroll(c.Model), device,
                c.EvalBatchSize ?? (dataParallel ? c.BatchSize * ranks : null), shard: dataParallel ? new DataShard(rank, ranks) : null);
            description = $"{corpus.Name} ({corpus.Level}-level, vocabulary {corpus.Vocabulary.Count}, {corpus.Train.shape[0]} / {corpus.Validation.shape[0]} / {corpus.Test.shape[0]} tokens; {corpus.Source})";
        }

        var context = new OptimizerContext
        {
            TrainingSetSize = task.TrainingSize,
            RunSeed = mode == DistributedMode.Replicas ? rankSeed : c.Seed,
            StepsPerEpoch = (long)Math.Ceiling(task.MinibatchesPerPass - 1e-9),
            Model = task.Model,
            Collectives = collectives,
        };
        optim.Optimizer optimizer;
        HessianTraceRegularizer? regularizer = null;
        CurvatureTracker? tracker = null;
        try
        {
            optimizer = descriptor.Create(task.Model.parameters(), c.OptimizerOptions, context);
            if (c.HessianTrace is { } htr)
            {
                regularizer = new HessianTraceRegularizer(htr);
                regularizer.SelectedNames(task.Model); // an unknown --htr-layers name is refused now, not at the first penalised step
                if (htr.Estimator != HessianTraceEstimator.Exact)
                {
                    // Refused now, not at the first penalised step (which may come many epochs in).
                    var name = htr.Estimator == HessianTraceEstimator.Antithetic ? "antithetic" : "finite-difference";
                    if (task is not ClassificationTask)
                        throw new ArgumentException($"--htr-estimator {name} re-runs each penalised minibatch at perturbed weights, which only image classifiers' tasks can do; {c.Model} is a language model: use --htr-estimator exact");
                    if (device.type != DeviceType.CPU)
                        throw new ArgumentException($"--htr-estimator {name} writes the perturbed weights through CPU memory; this run is on {device}: use --htr-estimator exact or --device cpu");
                }
            }
            if (c.CurvatureTracking is { } tracking)
            {
                tracker = new CurvatureTracker(tracking, ((ClassificationTask)task).Data.Train);
                tracker.ResolveLayers(task.Model); // an unknown --track-layers name is refused now, not after the first epoch
            }
        }
        catch
        {
            tracker?.Dispose();
            task.Dispose();
            throw;
        }
        var recalibrate = c.BnRecalibrate switch
        {
            BatchNormRecalibrationMode.On => true,
            BatchNormRecalibrationMode.Off => false,
            _ => descriptor.RecalibratesBatchNormByDefault,
        };
        var options = new TrainerOptions
        {
            Epochs = c.Epochs,
            MaxEffectiveEpochs = c.EffectiveEpochBudget,
            EvaluateEveryEffectiveEpochs = c.EvalEveryEffectiveEpochs,
            Schedule = LearningRateSchedule.Parse(c.LrSchedule),
            ClipGradNorm = c.ClipGradNorm,
            Divergence = c.Divergence,
            CheckpointEvery = c.CheckpointEvery is { } every ? CheckpointInterval.Parse(every) : null,
            RecalibrateBatchNorm = recalibrate,
            RecalibrationMinibatches = c.BnRecalibrateBatches,
            EvaluateTrainingSet = c.EvalTrain,
            OutputDirectory = outputDirectory,
            TensorBoard = c.TensorBoard,
            ModelName = c.Model,
            OptimizerName = c.Optimizer,
            RunConfig = c,
            DataDescription = description,
            Regularizer = regularizer,
            EpochEndHook = tracker,
            Collectives = collectives,
            Distributed = mode,
        };
        return new PreparedRun
        {
            Config = c,
            Task = task,
            Optimizer = optimizer,
            TrainerOptions = options,
            Device = device,
            DataDescription = description,
        };
    }

    static ModelOptions ClassifierOptions(RunConfig c, ClassificationDataset dataset) => new()
    {
        Dropout = c.Dropout,
        InputDropout = c.InputDropout,
        InputChannels = (int)dataset.SampleShape[0],
        ImageSize = (int)dataset.SampleShape[^1],
        NumClasses = dataset.NumClasses,
        HiddenSize = c.HiddenSize,
        Layers = c.Layers,
    };

    static void ValidateDistributed(RunConfig c, ModelInfo info)
    {
        if (c.Distributed is not string name) return;
        DistributedTraining.ModeOf(name); // an unknown mode is refused with the list of known ones
        if (DistributedTraining.OptimizerOf(name) is string required && c.Optimizer != required)
            throw new ArgumentException($"--distributed {name} trains with the optimizer {required}; the run asks for --optimizer {c.Optimizer}. " +
                                        $"Leave --optimizer out (or give --optimizer {required}), or use --distributed {DistributedTraining.DataParallelName} for {c.Optimizer}");
        if (info.Kind != ModelKind.Classifier && DistributedTraining.ModeOf(name) == DistributedMode.Replicas)
            throw new ArgumentException($"--distributed {name} trains image classifiers for now; --model {c.Model} is a language model, whose BPTT stream has no " +
                                        $"shuffled order to give each replica its own (use --distributed {DistributedTraining.DataParallelName}, which shares its rows out)");
        if (!c.Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--distributed moves tensors through MPI in CPU memory; --device {c.Device} is not supported with it yet (use --device cpu)");
        if (c.HessianTrace is not null || c.CurvatureTracking is not null)
            throw new ArgumentException("--distributed does not yet combine with the Hessian-trace regulariser (--htr-*) or --track-curvature");
    }

    /// <summary>PTB has no default location: --data-dir, else $WIDEVALLEY_DATA/ptb.</summary>
    static string ResolvePtbFolder(string? dataDir)
    {
        if (!string.IsNullOrWhiteSpace(dataDir)) return dataDir;
        var root = Environment.GetEnvironmentVariable(DatasetCatalog.EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(root)) return Path.Combine(root, Ptb);
        throw new DataException("ptb",
            $"no folder for the Penn Treebank: pass --data-dir DIR (holding {string.Join(", ", TextCorpora.PtbFiles)}) " +
            $"or set ${DatasetCatalog.EnvironmentVariable} to a folder with a ptb/ subfolder");
    }

    static ClassificationDataset MoveTo(ClassificationDataset d, Device device) => new()
    {
        Name = d.Name,
        Train = d.Train.To(device),
        Validation = d.Validation?.To(device),
        Test = d.Test.To(device),
        Source = d.Source,
        Preprocessing = d.Preprocessing,
    };
}
