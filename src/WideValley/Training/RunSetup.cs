using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>
/// Everything that defines a training run, by name and number: what the CLI's <c>train</c> options map to, what the
/// experiment drivers construct, and what a checkpoint stores so that the run can be resumed or its network rebuilt.
/// </summary>
public sealed record RunConfig
{
    public string Model { get; init; } = "mnistfc";
    /// <summary>Dataset name (fashion-mnist, mnist, cifar10, ptb, text); null = the model's usual dataset.</summary>
    public string? Data { get; init; }
    public string? DataDir { get; init; }
    /// <summary>UTF-8 text file for char-level models (data "text").</summary>
    public string? Corpus { get; init; }
    /// <summary>Vocabulary of a char-level corpus: null = the text's own characters, "ascii" = newline and printable
    /// ASCII whatever the text uses (<see cref="TextCorpora.CharacterSet"/>).</summary>
    public string? CharacterSet { get; init; }
    public string Optimizer { get; init; } = "sgd";
    /// <summary>Null = the optimizer's default (see <see cref="OptimizerDescriptor.DefaultLearningRate"/>).</summary>
    public double? Lr { get; init; }
    public double Momentum { get; init; }
    public bool Nesterov { get; init; }
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double AdamEps { get; init; } = 1e-8;
    public int BatchSize { get; init; } = 128;
    public int Epochs { get; init; } = 10;
    /// <summary>Stop once this many effective epochs are done (null = no budget).</summary>
    public double? EffectiveEpochBudget { get; init; }
    public string LrSchedule { get; init; } = "const";
    public double? Dropout { get; init; }
    public double? InputDropout { get; init; }
    public int? HiddenSize { get; init; }
    public int? Layers { get; init; }
    public long Seed { get; init; } = 1;
    public int Threads { get; init; }
    public string Device { get; init; } = "cpu";
    public long? MaxTrainSamples { get; init; }
    public long ValidationSize { get; init; }
    public double ClipGradNorm { get; init; }
    /// <summary>auto (the optimizer's default), on, or off.</summary>
    public string BnRecalibrate { get; init; } = "auto";
    /// <summary>Minibatches fed for BN recalibration, 0 = one full pass.</summary>
    public int BnRecalibrateBatches { get; init; }
    public bool EvalTrain { get; init; }
    public string Scaling { get; init; } = PixelScaling.Unit;
    /// <summary>BPTT window length for language models; null = the model's paper value.</summary>
    public int? Unroll { get; init; }
    /// <summary>Evaluation batch size (classification: images per forward pass; language models: rows).</summary>
    public int? EvalBatchSize { get; init; }
    public bool TensorBoard { get; init; } = true;

    // Local-entropy optimizers (entropy-sgd, entropy-adam). Defaults: the paper's MNIST settings.
    /// <summary>Langevin steps per outer update.</summary>
    public int L { get; init; } = 20;
    /// <summary>gamma0 of the scope schedule.</summary>
    public double Gamma { get; init; } = 1e-4;
    /// <summary>gamma1 (or tau for "bounded") of the scope schedule.</summary>
    public double Scoping { get; init; } = 1e-3;
    /// <summary>exp (the paper's), const, linear, quadratic or bounded.</summary>
    public string ScopingSchedule { get; init; } = "exp";
    public double LangevinLr { get; init; } = 0.1;
    public double Noise { get; init; } = 1e-3;
    public double Alpha { get; init; } = 0.75;
    public double LangevinMomentum { get; init; }
    public bool LangevinNesterov { get; init; }
    public double LangevinWeightDecay { get; init; }
    /// <summary>paper (sqrt(eta') eps) or reference (sqrt(2 eta') eps).</summary>
    public string NoiseScaling { get; init; } = "paper";
    /// <summary>paper (weight alpha on the new sample) or reference (weight 1 - alpha).</summary>
    public string MuAverage { get; init; } = "paper";
    /// <summary>drift (the paper's line 5) or gradient (the reference: loss gradient only).</summary>
    public string LangevinMomentumOn { get; init; } = "drift";
    /// <summary>unscaled (x - mu, Sec. 4.3) or scaled (gamma (x - mu), Alg. 1).</summary>
    public string LocalEntropyGradient { get; init; } = "unscaled";
    /// <summary>paper (t counts outer updates) or frozen (the reference: gamma stays gamma0).</summary>
    public string ScopeCounter { get; init; } = "paper";
    /// <summary>Evaluate the closure once more per step and discard it, as the reference does.</summary>
    public bool ExtraClosure { get; init; }
    /// <summary>Switch on every reference-code behaviour at once.</summary>
    public bool ReferenceCode { get; init; }
    /// <summary>Collect local-entropy diagnostics every K outer steps (0 = off).</summary>
    public int DiagnosticsEvery { get; init; } = 10;
    /// <summary>auto, fused or tensor-ops.</summary>
    public string LangevinKernel { get; init; } = "auto";
    // SGLD.
    public double SgldDecay { get; init; } = 0.55;
    public double SgldTemperature { get; init; } = 1;

    /// <summary>The local-entropy options these settings describe (the seed is the run's, decorrelated).</summary>
    public LocalEntropyOptions ToLocalEntropyOptions()
    {
        static T Pick<T>(string option, string value, params (string Name, T Value)[] choices) =>
            choices.FirstOrDefault(c => c.Name == value) is var hit && hit.Name is not null
                ? hit.Value
                : throw new ArgumentException($"{option} must be one of {string.Join(", ", choices.Select(c => c.Name))}, got '{value}'");
        var options = new LocalEntropyOptions
        {
            L = L,
            Scope = ScopeSchedule.From(ScopingSchedule, Gamma, Scoping),
            LangevinLr = LangevinLr,
            Noise = Noise,
            Alpha = Alpha,
            LangevinMomentum = LangevinMomentum,
            LangevinNesterov = LangevinNesterov,
            LangevinWeightDecay = LangevinWeightDecay,
            NoiseScaling = Pick("--noise-scaling", NoiseScaling, ("paper", LangevinNoiseScaling.Paper), ("reference", LangevinNoiseScaling.Reference)),
            Average = Pick("--mu-average", MuAverage, ("paper", LangevinAverage.Paper), ("reference", LangevinAverage.Reference)),
            MomentumTarget = Pick("--langevin-momentum-on", LangevinMomentumOn, ("drift", LangevinMomentumTarget.Drift), ("gradient", LangevinMomentumTarget.LossGradient)),
            Gradient = Pick("--le-gradient", LocalEntropyGradient, ("unscaled", Optim.LocalEntropyGradient.Unscaled), ("scaled", Optim.LocalEntropyGradient.ScaledByGamma)),
            ScopeCounting = Pick("--scope-counter", ScopeCounter, ("paper", ScopeCounting.Paper), ("frozen", ScopeCounting.FrozenAsReference)),
            ExtraClosureEvaluation = ExtraClosure,
            Seed = unchecked(Seed * 7919 + 17),
            DiagnosticsEvery = DiagnosticsEvery,
            Kernel = Pick("--langevin-kernel", LangevinKernel, ("auto", Optim.LangevinKernel.Auto), ("fused", Optim.LangevinKernel.FusedCpu), ("tensor-ops", Optim.LangevinKernel.TensorOps)),
        };
        if (ReferenceCode) options = options.AsReferenceCode();
        options.Validate();
        return options;
    }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public JsonNode ToJson() => JsonSerializer.SerializeToNode(this, Json)!;
    public static RunConfig FromJson(JsonNode node) =>
        node.Deserialize<RunConfig>(Json) ?? throw new JsonException("empty run configuration");
}

/// <summary>A run ready to train: task (model + data), optimizer and trainer options. Owns them.</summary>
public sealed class PreparedRun : IDisposable
{
    public required RunConfig Config { get; init; }
    public required ITrainingTask Task { get; init; }
    public required optim.Optimizer Optimizer { get; init; }
    public required TrainerOptions TrainerOptions { get; init; }
    public required Device Device { get; init; }
    /// <summary>The resolved dataset name and where it came from, for the console and reports.</summary>
    public required string DataDescription { get; init; }
    public long Parameters => Checkpoint.CountParameters(Task.Model);

    public Trainer CreateTrainer() => new(Task, Optimizer, TrainerOptions);

    public void Dispose()
    {
        Task.Dispose();
        Optimizer.Dispose();
        Task.Model.Dispose();
    }
}

/// <summary>Turns a <see cref="RunConfig"/> into a <see cref="PreparedRun"/>: data, model, task, optimizer.</summary>
public static class RunSetup
{
    public const string Ptb = "ptb";
    public const string Text = "text";

    /// <summary>The dataset a model is trained on when none is named.</summary>
    public static string DefaultData(string model) => model switch
    {
        "allcnn" => DatasetCatalog.Cifar10Name,
        "ptb-lstm" => Ptb,
        "char-lstm" or "small-char-lstm" => Text,
        _ => DatasetCatalog.FashionMnist,
    };

    /// <summary>The paper's BPTT length: 35 for PTB-LSTM, 50 for char-LSTM, 32 for the small char-LSTM (32-char lines).</summary>
    public static int DefaultUnroll(string model) => model switch
    {
        "ptb-lstm" => 35,
        "small-char-lstm" => 32,
        _ => 50,
    };

    /// <summary>
    /// Checks the configuration without loading anything; throws <see cref="ArgumentException"/> naming the option.
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
        OptimizerFactory.Describe(c.Optimizer);
        if (c.BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {c.BatchSize}");
        if (c.Epochs < 1) throw new ArgumentException($"--epochs must be at least 1, got {c.Epochs}");
        if (c.EffectiveEpochBudget is double b && !(b > 0)) throw new ArgumentException($"--effective-epochs must be positive, got {b}");
        if (c.Lr is double lr && (!(lr > 0) || double.IsInfinity(lr))) throw new ArgumentException($"--lr must be a positive number, got {lr}");
        if (c.Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {c.Threads}");
        if (c.MaxTrainSamples is < 1) throw new ArgumentException($"--max-train-samples must be at least 1, got {c.MaxTrainSamples}");
        if (c.ValidationSize < 0) throw new ArgumentException($"--validation-size must be 0 or positive, got {c.ValidationSize}");
        if (c.ClipGradNorm < 0) throw new ArgumentException($"--clip-grad-norm must be 0 (off) or positive, got {c.ClipGradNorm}");
        if (c.BnRecalibrate is not ("auto" or "on" or "off")) throw new ArgumentException($"--bn-recalibrate must be auto, on or off, got '{c.BnRecalibrate}'");
        if (c.BnRecalibrateBatches < 0) throw new ArgumentException($"--bn-recalibrate-batches must be 0 (full pass) or positive, got {c.BnRecalibrateBatches}");
        if (c.Unroll is < 1) throw new ArgumentException($"--unroll must be at least 1, got {c.Unroll}");
        if (c.EvalBatchSize is < 1) throw new ArgumentException($"--eval-batch-size must be at least 1, got {c.EvalBatchSize}");
        if (c.Dropout is double d && !(d >= 0 && d < 1)) throw new ArgumentException($"--dropout must be in [0, 1), got {d}");
        if (c.InputDropout is double di && !(di >= 0 && di < 1)) throw new ArgumentException($"--input-dropout must be in [0, 1), got {di}");
        LearningRateSchedule.Parse(c.LrSchedule);
        if (c.Optimizer.StartsWith("entropy-", StringComparison.Ordinal)) c.ToLocalEntropyOptions();
        TorchRuntime.ResolveDevice(c.Device);
    }

    /// <summary>
    /// Loads data, builds the model (seeded), moves it to the device, then builds the optimizer (TorchSharp keys
    /// optimizer state by tensor handle, so the optimizer must see the moved parameters).
    /// </summary>
    public static PreparedRun Prepare(RunConfig c, string? outputDirectory, Action<string>? log = null)
    {
        Validate(c);
        TorchRuntime.EnsureLoadable();
        TorchRuntime.SetThreads(c.Threads);
        var device = TorchRuntime.ResolveDevice(c.Device);
        var info = ModelZoo.Describe(c.Model);
        var data = c.Data ?? DefaultData(c.Model);
        var descriptor = OptimizerFactory.Describe(c.Optimizer);

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
            var shape = dataset.SampleShape;
            TorchRuntime.Seed(c.Seed);
            var model = ModelZoo.Create(c.Model, new ModelOptions
            {
                Dropout = c.Dropout,
                InputDropout = c.InputDropout,
                InputChannels = (int)shape[0],
                ImageSize = (int)shape[^1],
                NumClasses = dataset.NumClasses,
                HiddenSize = c.HiddenSize,
                Layers = c.Layers,
            });
            model.to(device);
            var onDevice = device.type == DeviceType.CPU ? dataset : MoveTo(dataset, device);
            task = new ClassificationTask((nn.Module<Tensor, Tensor>)model, onDevice, c.BatchSize, c.Seed, c.EvalBatchSize ?? 1000);
            description = $"{data} ({dataset.Train.Count} train, {dataset.Validation?.Count ?? 0} validation, {dataset.Test.Count} test; {dataset.Source}; {dataset.Preprocessing})";
        }
        else
        {
            var corpus = data == Ptb
                ? TextCorpora.LoadPtb(ResolvePtbFolder(c.DataDir))
                : TextCorpora.LoadCharacters(c.Corpus!, characterSet: c.CharacterSet);
            TorchRuntime.Seed(c.Seed);
            var model = ModelZoo.Create(c.Model, new ModelOptions
            {
                Dropout = c.Dropout,
                InputDropout = c.InputDropout,
                VocabularySize = corpus.Vocabulary.Count,
                HiddenSize = c.HiddenSize,
                Layers = c.Layers,
            });
            model.to(device);
            task = new LanguageModelTask(model, corpus, c.BatchSize, c.Unroll ?? DefaultUnroll(c.Model), device, c.EvalBatchSize);
            description = $"{corpus.Name} ({corpus.Level}-level, vocabulary {corpus.Vocabulary.Count}, {corpus.Train.shape[0]} / {corpus.Validation.shape[0]} / {corpus.Test.shape[0]} tokens; {corpus.Source})";
        }

        var settings = new OptimizerSettings
        {
            LearningRate = c.Lr ?? descriptor.DefaultLearningRate,
            Momentum = c.Momentum,
            Nesterov = c.Nesterov,
            WeightDecay = c.WeightDecay,
            Beta1 = c.Beta1,
            Beta2 = c.Beta2,
            Epsilon = c.AdamEps,
            LocalEntropy = c.Optimizer.StartsWith("entropy-", StringComparison.Ordinal) ? c.ToLocalEntropyOptions() : new LocalEntropyOptions(),
            SgldDecay = c.SgldDecay,
            SgldTemperature = c.SgldTemperature,
            TrainingSetSize = task.TrainingSize,
            Seed = unchecked(c.Seed * 104729 + 3),
        };
        optim.Optimizer optimizer;
        try
        {
            optimizer = descriptor.Create(task.Model.parameters(), settings);
        }
        catch
        {
            task.Dispose();
            throw;
        }
        var recalibrate = c.BnRecalibrate switch
        {
            "on" => true,
            "off" => false,
            _ => descriptor.RecalibratesBatchNormByDefault,
        };
        var options = new TrainerOptions
        {
            Epochs = c.Epochs,
            MaxEffectiveEpochs = c.EffectiveEpochBudget,
            Schedule = LearningRateSchedule.Parse(c.LrSchedule),
            ClipGradNorm = c.ClipGradNorm,
            RecalibrateBatchNorm = recalibrate,
            RecalibrationMinibatches = c.BnRecalibrateBatches,
            EvaluateTrainingSet = c.EvalTrain,
            OutputDirectory = outputDirectory,
            TensorBoard = c.TensorBoard,
            ModelName = c.Model,
            OptimizerName = c.Optimizer,
            RunConfig = c.ToJson(),
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
