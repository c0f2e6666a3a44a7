using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Cli.Commands;

/// <summary>`widevalley train`: one training run from the command line into a run folder.</summary>
public static class TrainCommand
{
    /// <summary>
    /// Options whose values may differ from the stored configuration when a run is resumed: how long, on what, and
    /// where the data lies (a run moved to another machine finds its data elsewhere), never what is trained.
    /// </summary>
    static readonly HashSet<string> ResumeOverridable = ["--epochs", "--effective-epochs", "--threads", "--device", "--data-dir", "--out", "--resume", "--no-tensorboard"];

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

        /// <summary>The optimizer options: one table mapping flags onto the options records' properties.</summary>
        public readonly OptimizerFlags OptimizerFlags = new();

        public RunOptions()
        {
            Model.AcceptOnlyFromAmong([.. ModelZoo.Names]);
            Optimizer.AcceptOnlyFromAmong([.. OptimizerFactory.Names]);
            BnRecalibrate.AcceptOnlyFromAmong("auto", "on", "off");
            Scaling.AcceptOnlyFromAmong([.. PixelScaling.All]);
        }

        /// <summary>The run-level options (everything but the optimizer's options).</summary>
        public IEnumerable<Option> RunLevel =>
        [
            Model, Data, DataDir, Corpus, Optimizer, BatchSize, Epochs, EffectiveEpochs, LrSchedule, Dropout, InputDropout, HiddenSize,
            Layers, Seed, Threads, Device, MaxTrainSamples, ValidationSize, ClipGradNorm, BnRecalibrate, BnRecalibrateBatches, EvalTrain,
            Scaling, Unroll, EvalBatchSize, NoTensorBoard,
        ];

        /// <summary>Every train option.</summary>
        public IEnumerable<Option> All => RunLevel.Concat(OptimizerFlags.Options);

        /// <summary>The run-level settings the command line gives, with the optimizer's default options.</summary>
        public RunConfig ToRunLevelConfig(ParseResult p) => new()
        {
            Model = p.GetValue(Model)!,
            Data = p.GetValue(Data),
            DataDir = p.GetValue(DataDir),
            Corpus = p.GetValue(Corpus),
            Optimizer = p.GetValue(Optimizer)!,
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
            BnRecalibrate = Enum.Parse<BatchNormRecalibrationMode>(p.GetValue(BnRecalibrate)!, ignoreCase: true),
            BnRecalibrateBatches = p.GetValue(BnRecalibrateBatches),
            EvalTrain = p.GetValue(EvalTrain),
            Scaling = p.GetValue(Scaling)!,
            Unroll = p.GetValue(Unroll),
            EvalBatchSize = p.GetValue(EvalBatchSize),
            TensorBoard = !p.GetValue(NoTensorBoard),
        };

        /// <summary>The run the command line describes: run-level settings and the optimizer's options with the given flags applied.</summary>
        public RunConfig ToConfig(ParseResult p)
        {
            var config = ToRunLevelConfig(p);
            var descriptor = OptimizerFactory.Describe(config.Optimizer);
            return config with { OptimizerOptions = OptimizerFlags.Apply(p, descriptor, descriptor.Defaults) };
        }

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
            Description = "Continue the run in --out from its checkpoint, with its stored settings (--epochs, --effective-epochs, --threads, --device and --data-dir may change).",
        };
        var command = new Command("train", "Train a network and write metrics, TensorBoard logs and a checkpoint per epoch.");
        foreach (var o in options.All) command.Add(o);
        command.Add(output);
        command.Add(resume);
        command.SetAction(p => Execute(ctx, options, p, p.GetValue(output), p.GetValue(resume)));
        return command.WithRanges();
    }

    static int Execute(CliContext ctx, RunOptions options, ParseResult p, string? outDir, bool resume)
    {
        RunConfig config;
        if (resume)
        {
            if (string.IsNullOrWhiteSpace(outDir)) throw new UsageException("--resume needs --out RUN_FOLDER (the run to continue)");
            config = ResumedConfig(Path.GetFullPath(outDir), options, p);
        }
        else
        {
            config = options.ToConfig(p);
            outDir ??= Path.Combine("runs", $"{config.Model}-{config.Optimizer}-{DateTime.Now:yyyyMMdd-HHmmss}");
            var existing = Path.Combine(outDir, Trainer.CheckpointFileName);
            if (File.Exists(existing))
                throw new UsageException($"{Path.GetFullPath(outDir)} already holds a run ({Trainer.CheckpointFileName}); pass --resume to continue it, or choose another --out");
        }
        outDir = Path.GetFullPath(outDir!);
        try
        {
            RunSetup.Validate(config);
        }
        catch (OptionsException e)
        {
            throw new UsageException(e.Describe(OptimizerFlags.FlagFor));
        }
        return RunAndReport(ctx, config, outDir, resume, label: "");
    }

    /// <summary>Trains one configuration into <paramref name="outDir"/> and prints the result; returns the exit code.</summary>
    public static int RunAndReport(CliContext ctx, RunConfig config, string outDir, bool resume, string label)
    {
        PreparedRun run;
        try
        {
            run = RunSetup.Prepare(config, outDir, message => ctx.Out.WriteLine(message));
        }
        catch (OptionsException e)
        {
            throw new UsageException(e.Describe(OptimizerFlags.FlagFor));
        }
        using var _ = run;
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
    static RunConfig ResumedConfig(string outDir, RunOptions options, ParseResult p)
    {
        var checkpoint = Path.Combine(outDir, Trainer.CheckpointFileName);
        if (!File.Exists(checkpoint))
            throw new UsageException($"--resume: {outDir} has no {Trainer.CheckpointFileName}; nothing to resume");
        var meta = Checkpoint.ReadMeta(checkpoint);
        var stored = meta.RunConfig ?? throw new UsageException($"--resume: {checkpoint} does not record its run configuration");
        var explicitOptions = options.Explicit(p).ToHashSet();
        var given = options.ToRunLevelConfig(p);
        var storedJson = stored.ToJson();
        var givenJson = given.ToJson();
        var conflicts = new List<string>();
        foreach (var option in options.RunLevel.Select(o => o.Name).Where(o => explicitOptions.Contains(o) && !ResumeOverridable.Contains(o)))
        {
            var key = option.TrimStart('-').Replace('-', '_');
            key = key switch
            {
                "effective_epochs" => "effective_epoch_budget",
                _ => key,
            };
            if (!storedJson.ContainsKey(key)) continue;
            var a = storedJson[key]?.ToJsonString() ?? "null";
            var b = givenJson[key]?.ToJsonString() ?? "null";
            if (a != b) conflicts.Add($"{option} {b} (the run has {a})");
        }
        conflicts.AddRange(options.OptimizerFlags.Conflicts(p, OptimizerFactory.Describe(stored.Optimizer), stored.ResolvedOptimizerOptions));
        if (conflicts.Count > 0)
            throw new UsageException(
                "--resume keeps the run's settings; these options differ: " + string.Join("; ", conflicts) +
                ". Only --epochs, --effective-epochs, --threads, --device and --data-dir may change when resuming.");
        return stored with
        {
            Epochs = explicitOptions.Contains("--epochs") ? given.Epochs : stored.Epochs,
            EffectiveEpochBudget = explicitOptions.Contains("--effective-epochs") ? given.EffectiveEpochBudget : stored.EffectiveEpochBudget,
            Threads = explicitOptions.Contains("--threads") ? given.Threads : stored.Threads,
            Device = explicitOptions.Contains("--device") ? given.Device : stored.Device,
            DataDir = explicitOptions.Contains("--data-dir") ? given.DataDir : stored.DataDir,
            TensorBoard = explicitOptions.Contains("--no-tensorboard") ? given.TensorBoard : stored.TensorBoard,
        };
    }
}
