using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Cli.Commands;

/// <summary>`widevalley train`: one training run from the command line into a run folder.</summary>
public static class TrainCommand
{
    /// <summary>Options whose values may differ from the stored configuration when a run is resumed.</summary>
    static readonly HashSet<string> ResumeOverridable = ["--epochs", "--effective-epochs", "--threads", "--device", "--out", "--resume", "--no-tensorboard"];

    /// <summary>The train options, shared with commands that start runs of their own.</summary>
    public sealed class RunOptions
    {
        public readonly Option<string> Model = new("--model", "-m")
        {
            Description = "Network: " + string.Join(", ", ModelZoo.Names),
            DefaultValueFactory = _ => "mnistfc",
        };
        public readonly Option<string?> Data = new("--data", "-d")
        {
            Description = "Dataset: fashion-mnist, mnist, cifar10, ptb, or text (with --corpus). Default: the model's usual one (fashion-mnist for the MNIST networks).",
        };
        public readonly Option<string?> DataDir = new("--data-dir")
        {
            Description = $"Folder holding the dataset's files (default: ${DatasetCatalog.EnvironmentVariable}/NAME, then /usr/share/datasets/fashion-mnist for fashion-mnist).",
        };
        public readonly Option<string?> Corpus = new("--corpus") { Description = "UTF-8 text file for char-level models (--data text)." };
        public readonly Option<string> Optimizer = new("--optimizer", "-o")
        {
            Description = "Optimizer: " + string.Join(", ", OptimizerFactory.Names),
            DefaultValueFactory = _ => "sgd",
        };
        public readonly Option<double?> Lr = new("--lr") { Description = "Learning rate (default: sgd 0.1, adam 0.001)." };
        public readonly Option<double> Momentum = new("--momentum") { Description = "SGD momentum.", DefaultValueFactory = _ => 0.0 };
        public readonly Option<bool> Nesterov = new("--nesterov") { Description = "Nesterov momentum (SGD)." };
        public readonly Option<double> WeightDecay = new("--weight-decay") { Description = "L2 weight decay.", DefaultValueFactory = _ => 0.0 };
        public readonly Option<double> Beta1 = new("--beta1") { Description = "Adam beta1.", DefaultValueFactory = _ => 0.9 };
        public readonly Option<double> Beta2 = new("--beta2") { Description = "Adam beta2.", DefaultValueFactory = _ => 0.999 };
        public readonly Option<double> AdamEps = new("--adam-eps") { Description = "Adam epsilon.", DefaultValueFactory = _ => 1e-8 };
        public readonly Option<int> BatchSize = new("--batch-size", "-b") { Description = "Minibatch size (language models: rows).", DefaultValueFactory = _ => 128 };
        public readonly Option<int> Epochs = new("--epochs", "-e")
        {
            Description = "Epochs; each is training-set size / batch size optimizer steps, however many minibatches a step draws.",
            DefaultValueFactory = _ => 10,
        };
        public readonly Option<double?> EffectiveEpochs = new("--effective-epochs")
        {
            Description = "Also stop once this many effective epochs (gradient evaluations x batch / training-set size) are done.",
        };
        public readonly Option<string> LrSchedule = new("--lr-schedule")
        {
            Description = "Learning-rate schedule: " + LearningRateSchedule.Syntax,
            DefaultValueFactory = _ => "const",
        };
        public readonly Option<double?> Dropout = new("--dropout") { Description = "Override the model's (hidden-layer) dropout probability." };
        public readonly Option<double?> InputDropout = new("--input-dropout") { Description = "Override the model's input dropout probability." };
        public readonly Option<int?> HiddenSize = new("--hidden-size") { Description = "LSTM hidden units (default: the paper's)." };
        public readonly Option<int?> Layers = new("--layers") { Description = "LSTM layers (default: the paper's)." };
        public readonly Option<long> Seed = new("--seed") { Description = "Seed for initialisation, data order and dropout.", DefaultValueFactory = _ => 1L };
        public readonly Option<int> Threads = new("--threads") { Description = "libtorch threads (0 = libtorch's default).", DefaultValueFactory = _ => 0 };
        public readonly Option<string> Device = new("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        public readonly Option<long?> MaxTrainSamples = new("--max-train-samples") { Description = "Use only the first N training images (quick runs)." };
        public readonly Option<long> ValidationSize = new("--validation-size") { Description = "Hold out N training images as a validation set (0 = none).", DefaultValueFactory = _ => 0L };
        public readonly Option<double> ClipGradNorm = new("--clip-grad-norm") { Description = "Clip the gradient norm of each gradient evaluation (0 = off).", DefaultValueFactory = _ => 0.0 };
        public readonly Option<string> BnRecalibrate = new("--bn-recalibrate")
        {
            Description = "Recollect BatchNorm statistics at the weights before evaluating: auto (the optimizer's default), on, off.",
            DefaultValueFactory = _ => "auto",
        };
        public readonly Option<int> BnRecalibrateBatches = new("--bn-recalibrate-batches") { Description = "Minibatches fed for that (0 = a full pass).", DefaultValueFactory = _ => 0 };
        public readonly Option<bool> EvalTrain = new("--eval-train") { Description = "Also evaluate the whole training set at the end of each epoch." };
        public readonly Option<string> Scaling = new("--scaling")
        {
            Description = "Pixel scaling: unit (x/255), standard (per-channel z-score of the training set), raw (0..255).",
            DefaultValueFactory = _ => PixelScaling.Unit,
        };
        public readonly Option<int?> Unroll = new("--unroll") { Description = "BPTT length for language models (default: 35 ptb-lstm, 50 char-lstm)." };
        public readonly Option<int?> EvalBatchSize = new("--eval-batch-size") { Description = "Batch size for evaluation." };
        public readonly Option<bool> NoTensorBoard = new("--no-tensorboard") { Description = "Do not write TensorBoard event files." };

        // Local-entropy optimizers (entropy-sgd, entropy-adam); defaults are the paper's MNIST settings.
        public readonly Option<int> L = new("-L", "--langevin-steps") { Description = "Langevin steps per outer update (closure calls per step).", DefaultValueFactory = _ => 20 };
        public readonly Option<double> Gamma = new("--gamma") { Description = "Initial scope gamma0.", DefaultValueFactory = _ => 1e-4 };
        public readonly Option<double> Scoping = new("--scoping") { Description = "Scoping rate gamma1 (tau for the bounded schedule).", DefaultValueFactory = _ => 1e-3 };
        public readonly Option<string> ScopingSchedule = new("--scoping-schedule")
        {
            Description = "gamma(t): exp (gamma0 (1+gamma1)^t, the paper's), const, linear (gamma0 (1+gamma1 t)), quadratic (gamma0 (1+gamma1 t)^2), bounded (gamma0 (1-exp(-tau t))).",
            DefaultValueFactory = _ => "exp",
        };
        public readonly Option<double> LangevinLr = new("--langevin-lr") { Description = "Langevin step size eta'.", DefaultValueFactory = _ => 0.1 };
        public readonly Option<double> Noise = new("--noise") { Description = "Thermal noise eps of the Langevin steps.", DefaultValueFactory = _ => 1e-3 };
        public readonly Option<double> Alpha = new("--alpha") { Description = "Weight of the new sample in the running average mu.", DefaultValueFactory = _ => 0.75 };
        public readonly Option<double> LangevinMomentum = new("--langevin-momentum") { Description = "Momentum of the Langevin steps.", DefaultValueFactory = _ => 0.0 };
        public readonly Option<bool> LangevinNesterov = new("--langevin-nesterov") { Description = "Nesterov momentum in the Langevin steps." };
        public readonly Option<double> LangevinWeightDecay = new("--langevin-weight-decay") { Description = "Weight decay inside the Langevin loop.", DefaultValueFactory = _ => 0.0 };
        public readonly Option<string> NoiseScaling = new("--noise-scaling") { Description = "paper: sqrt(eta') eps; reference: sqrt(2 eta') eps (the public code).", DefaultValueFactory = _ => "paper" };
        public readonly Option<string> MuAverage = new("--mu-average") { Description = "paper: mu = (1-alpha) mu + alpha x'; reference: mu = alpha mu + (1-alpha) x'.", DefaultValueFactory = _ => "paper" };
        public readonly Option<string> LangevinMomentumOn = new("--langevin-momentum-on") { Description = "drift: the whole dx' (paper); gradient: the loss gradient only (reference).", DefaultValueFactory = _ => "drift" };
        public readonly Option<string> LeGradient = new("--le-gradient") { Description = "unscaled: x - mu (Sec. 4.3, the experiments'); scaled: gamma (x - mu) (Alg. 1).", DefaultValueFactory = _ => "unscaled" };
        public readonly Option<string> ScopeCounter = new("--scope-counter") { Description = "paper: t counts outer updates; frozen: gamma stays gamma0 (the reference's bug).", DefaultValueFactory = _ => "paper" };
        public readonly Option<bool> ExtraClosure = new("--extra-closure") { Description = "Evaluate one extra, discarded minibatch per step, as the reference code does." };
        public readonly Option<bool> ReferenceCode = new("--reference-code") { Description = "All of the reference code's behaviours at once (noise, mu average, momentum target, frozen scope, extra closure)." };
        public readonly Option<int> DiagnosticsEvery = new("--diagnostics-every") { Description = "Log gamma, ||x - mu||, gradient norms and their cosine every K outer steps (0 = off).", DefaultValueFactory = _ => 10 };
        public readonly Option<string> LangevinKernel = new("--langevin-kernel") { Description = "auto, fused (CPU float32, vectorised) or tensor-ops (any device).", DefaultValueFactory = _ => "auto" };
        // SGLD.
        public readonly Option<double> SgldDecay = new("--sgld-decay") { Description = "SGLD step-size decay exponent b in lr / (1 + t)^b.", DefaultValueFactory = _ => 0.55 };
        public readonly Option<double> SgldTemperature = new("--sgld-temperature") { Description = "SGLD temperature T (1 = Bayesian posterior).", DefaultValueFactory = _ => 1.0 };

        public RunOptions()
        {
            Model.AcceptOnlyFromAmong([.. ModelZoo.Names]);
            Optimizer.AcceptOnlyFromAmong([.. OptimizerFactory.Names]);
            BnRecalibrate.AcceptOnlyFromAmong("auto", "on", "off");
            Scaling.AcceptOnlyFromAmong([.. PixelScaling.All]);
            ScopingSchedule.AcceptOnlyFromAmong("exp", "const", "linear", "quadratic", "bounded");
            NoiseScaling.AcceptOnlyFromAmong("paper", "reference");
            MuAverage.AcceptOnlyFromAmong("paper", "reference");
            LangevinMomentumOn.AcceptOnlyFromAmong("drift", "gradient");
            LeGradient.AcceptOnlyFromAmong("unscaled", "scaled");
            ScopeCounter.AcceptOnlyFromAmong("paper", "frozen");
            LangevinKernel.AcceptOnlyFromAmong("auto", "fused", "tensor-ops");
        }

        public IEnumerable<Option> All =>
        [
            Model, Data, DataDir, Corpus, Optimizer, Lr, Momentum, Nesterov, WeightDecay, Beta1, Beta2, AdamEps, BatchSize,
            Epochs, EffectiveEpochs, LrSchedule, Dropout, InputDropout, HiddenSize, Layers, Seed, Threads, Device,
            MaxTrainSamples, ValidationSize, ClipGradNorm, BnRecalibrate, BnRecalibrateBatches, EvalTrain, Scaling, Unroll,
            EvalBatchSize, NoTensorBoard, L, Gamma, Scoping, ScopingSchedule, LangevinLr, Noise, Alpha, LangevinMomentum,
            LangevinNesterov, LangevinWeightDecay, NoiseScaling, MuAverage, LangevinMomentumOn, LeGradient, ScopeCounter,
            ExtraClosure, ReferenceCode, DiagnosticsEvery, LangevinKernel, SgldDecay, SgldTemperature,
        ];

        public RunConfig ToConfig(ParseResult p) => new()
        {
            Model = p.GetValue(Model)!,
            Data = p.GetValue(Data),
            DataDir = p.GetValue(DataDir),
            Corpus = p.GetValue(Corpus),
            Optimizer = p.GetValue(Optimizer)!,
            Lr = p.GetValue(Lr),
            Momentum = p.GetValue(Momentum),
            Nesterov = p.GetValue(Nesterov),
            WeightDecay = p.GetValue(WeightDecay),
            Beta1 = p.GetValue(Beta1),
            Beta2 = p.GetValue(Beta2),
            AdamEps = p.GetValue(AdamEps),
            BatchSize = p.GetValue(BatchSize),
            Epochs = p.GetValue(Epochs),
            EffectiveEpochBudget = p.GetValue(EffectiveEpochs),
            LrSchedule = p.GetValue(LrSchedule)!,
            Dropout = p.GetValue(Dropout),
            InputDropout = p.GetValue(InputDropout),
            HiddenSize = p.GetValue(HiddenSize),
            Layers = p.GetValue(Layers),
            Seed = p.GetValue(Seed),
            Threads = p.GetValue(Threads),
            Device = p.GetValue(Device)!,
            MaxTrainSamples = p.GetValue(MaxTrainSamples),
            ValidationSize = p.GetValue(ValidationSize),
            ClipGradNorm = p.GetValue(ClipGradNorm),
            BnRecalibrate = p.GetValue(BnRecalibrate)!,
            BnRecalibrateBatches = p.GetValue(BnRecalibrateBatches),
            EvalTrain = p.GetValue(EvalTrain),
            Scaling = p.GetValue(Scaling)!,
            Unroll = p.GetValue(Unroll),
            EvalBatchSize = p.GetValue(EvalBatchSize),
            TensorBoard = !p.GetValue(NoTensorBoard),
            L = p.GetValue(L),
            Gamma = p.GetValue(Gamma),
            Scoping = p.GetValue(Scoping),
            ScopingSchedule = p.GetValue(ScopingSchedule)!,
            LangevinLr = p.GetValue(LangevinLr),
            Noise = p.GetValue(Noise),
            Alpha = p.GetValue(Alpha),
            LangevinMomentum = p.GetValue(LangevinMomentum),
            LangevinNesterov = p.GetValue(LangevinNesterov),
            LangevinWeightDecay = p.GetValue(LangevinWeightDecay),
            NoiseScaling = p.GetValue(NoiseScaling)!,
            MuAverage = p.GetValue(MuAverage)!,
            LangevinMomentumOn = p.GetValue(LangevinMomentumOn)!,
            LocalEntropyGradient = p.GetValue(LeGradient)!,
            ScopeCounter = p.GetValue(ScopeCounter)!,
            ExtraClosure = p.GetValue(ExtraClosure),
            ReferenceCode = p.GetValue(ReferenceCode),
            DiagnosticsEvery = p.GetValue(DiagnosticsEvery),
            LangevinKernel = p.GetValue(LangevinKernel)!,
            SgldDecay = p.GetValue(SgldDecay),
            SgldTemperature = p.GetValue(SgldTemperature),
        };

        /// <summary>Names of the options the user typed (not defaults).</summary>
        public IEnumerable<string> Explicit(ParseResult p) =>
            All.Where(o => p.GetResult(o) is OptionResult r && !r.Implicit).Select(o => o.Name);
    }

    public static Command Create(CliContext ctx)
    {
        var options = new RunOptions();
        var output = new Option<string?>("--out")
        {
            Description = "Run folder for metrics.jsonl, summary.json, TensorBoard files and the checkpoint (default: runs/MODEL-OPTIMIZER-TIME).",
        };
        var resume = new Option<bool>("--resume")
        {
            Description = "Continue the run in --out from its checkpoint, with its stored settings (--epochs, --effective-epochs, --threads and --device may change).",
        };
        var command = new Command("train", "Train a network and write metrics, TensorBoard logs and a checkpoint per epoch.");
        foreach (var o in options.All) command.Add(o);
        command.Add(output);
        command.Add(resume);
        command.SetAction(p => Execute(ctx, options, p, p.GetValue(output), p.GetValue(resume)));
        return command;
    }

    static int Execute(CliContext ctx, RunOptions options, ParseResult p, string? outDir, bool resume)
    {
        var config = options.ToConfig(p);
        if (resume)
        {
            if (string.IsNullOrWhiteSpace(outDir)) throw new UsageException("--resume needs --out RUN_FOLDER (the run to continue)");
            config = ResumedConfig(Path.GetFullPath(outDir), config, options.Explicit(p).ToList());
        }
        else
        {
            outDir ??= Path.Combine("runs", $"{config.Model}-{config.Optimizer}-{DateTime.Now:yyyyMMdd-HHmmss}");
            var existing = Path.Combine(outDir, Trainer.CheckpointFileName);
            if (File.Exists(existing))
                throw new UsageException($"{Path.GetFullPath(outDir)} already holds a run ({Trainer.CheckpointFileName}); pass --resume to continue it, or choose another --out");
        }
        outDir = Path.GetFullPath(outDir!);
        RunSetup.Validate(config);
        return RunAndReport(ctx, config, outDir, resume, label: "");
    }

    /// <summary>Trains one configuration into <paramref name="outDir"/> and prints the result; returns the exit code.</summary>
    public static int RunAndReport(CliContext ctx, RunConfig config, string outDir, bool resume, string label)
    {
        using var run = RunSetup.Prepare(config, outDir, message => ctx.Out.WriteLine(message));
        ctx.Out.WriteLine($"model {config.Model} ({run.Parameters:N0} parameters), optimizer {config.Optimizer}, device {run.Device}, threads {TorchSharp.torch.get_num_threads()}, {TorchRuntime.CpuBackendNote}");
        ctx.Out.WriteLine($"data {run.DataDescription}");
        ctx.Out.WriteLine($"run folder {outDir}{(resume ? " (resuming)" : "")}");
        var result = TrainingConsole.Train(ctx, run, resume, label);
        return Report(ctx, result, outDir);
    }

    public static int Report(CliContext ctx, TrainingResult result, string outDir)
    {
        var c = CultureInfo.InvariantCulture;
        var last = result.Last;
        switch (result.Status)
        {
            case TrainingStatus.Completed:
                var what = last is null ? "no epoch ran"
                    : last.TestPerplexity is double ppl ? string.Format(c, "test perplexity {0:0.000} (loss {1:0.0000})", ppl, last.TestLoss)
                    : last.TestError is double err ? string.Format(c, "test error {0:0.00}% (loss {1:0.0000})", err, last.TestLoss)
                    : "no test evaluation";
                ctx.Out.WriteLine(string.Format(c, "finished: {0} after {1} epochs, {2:0.00} effective epochs, {3:0.0} s; run folder {4}",
                    what, last?.Epoch ?? 0, result.EffectiveEpochs, result.TotalSeconds, outDir));
                return ExitCodes.Ok;
            case TrainingStatus.Interrupted:
                ctx.Out.WriteLine($"interrupted: {result.Message}");
                return ExitCodes.Interrupted;
            default:
                ctx.Error.WriteLine($"widevalley: {result.Message}");
                return ExitCodes.Failure;
        }
    }

    /// <summary>
    /// The stored configuration of the run in <paramref name="outDir"/>, with the few settings that may change on resume
    /// taken from the command line. Any other option given with a different value is an error: silently ignoring it
    /// would mislead, and honouring it would make the resumed run a different experiment.
    /// </summary>
    static RunConfig ResumedConfig(string outDir, RunConfig given, IReadOnlyList<string> explicitOptions)
    {
        var checkpoint = Path.Combine(outDir, Trainer.CheckpointFileName);
        if (!File.Exists(checkpoint))
            throw new UsageException($"--resume: {outDir} has no {Trainer.CheckpointFileName}; nothing to resume");
        var meta = Checkpoint.ReadMeta(checkpoint);
        var stored = meta.RunConfig is JsonNode node ? RunConfig.FromJson(node)
            : throw new UsageException($"--resume: {checkpoint} does not record its run configuration");
        var storedJson = stored.ToJson().AsObject();
        var givenJson = given.ToJson().AsObject();
        var conflicts = new List<string>();
        foreach (var option in explicitOptions.Where(o => !ResumeOverridable.Contains(o)))
        {
            var key = option.TrimStart('-').Replace('-', '_');
            key = key switch
            {
                "no_tensorboard" => "tensorboard",
                "effective_epochs" => "effective_epoch_budget",
                "langevin_steps" => "l",
                "le_gradient" => "local_entropy_gradient",
                _ => key,
            };
            if (!storedJson.ContainsKey(key)) continue;
            var a = storedJson[key]?.ToJsonString() ?? "null";
            var b = givenJson[key]?.ToJsonString() ?? "null";
            if (a != b) conflicts.Add($"{option} {b} (the run has {a})");
        }
        if (conflicts.Count > 0)
            throw new UsageException(
                "--resume keeps the run's settings; these options differ: " + string.Join("; ", conflicts) +
                ". Only --epochs, --effective-epochs, --threads and --device may change when resuming.");
        return stored with
        {
            Epochs = explicitOptions.Contains("--epochs") ? given.Epochs : stored.Epochs,
            EffectiveEpochBudget = explicitOptions.Contains("--effective-epochs") ? given.EffectiveEpochBudget : stored.EffectiveEpochBudget,
            Threads = explicitOptions.Contains("--threads") ? given.Threads : stored.Threads,
            Device = explicitOptions.Contains("--device") ? given.Device : stored.Device,
            TensorBoard = explicitOptions.Contains("--no-tensorboard") ? given.TensorBoard : stored.TensorBoard,
        };
    }
}
