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
    /// Options whose values may differ from the stored configuration when a run is resumed: how long, on what, where the
    /// data lies (a run moved to another machine finds its data elsewhere; its identity is checked), and how gently it
    /// steps on (the learning-rate schedule, clipping and the divergence guard, so that a diverged run can go on from
    /// its last good checkpoint), never what is trained.
    /// </summary>
    static readonly HashSet<string> ResumeOverridable =
    [
        "--epochs", "--effective-epochs", "--threads", "--device", "--data-dir", "--corpus", "--out", "--resume", "--no-tensorboard",
        "--lr-schedule", "--clip-grad-norm", "--divergence-factor", "--divergence-patience", "--checkpoint-every",
    ];

    /// <summary>The overridable options whose change is reported and logged (the run continues differently).</summary>
    static readonly string[] ReportedChanges = ["--lr-schedule", "--clip-grad-norm", "--divergence-factor", "--divergence-patience", "--checkpoint-every", "--threads", "--data-dir", "--corpus"];

    /// <summary>Log of the changes made on resume, one line each, in the run folder.</summary>
    public const string RunLogFileName = "run.log";

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
        public readonly Option<double?> EvalEvery = new("--eval-every")
        {
            Description = "Also evaluate every E effective epochs, inside long epochs too (an Entropy-SGD epoch is L effective epochs); such points are marked within_epoch in metrics.jsonl. Default: at epoch ends only.",
        };
        public readonly Option<bool> EvalTrain = new("--eval-train") { Description = "Also evaluate the whole training set at the end of each epoch." };
        public readonly Option<string> Scaling = new("--scaling")
        {
            Description = "Pixel scaling: unit (x/255), standard (per-channel z-score of the training set), raw (0..255).",
            DefaultValueFactory = _ => PixelScaling.Unit,
        };
        public readonly Option<int?> Unroll = new("--unroll") { Description = "BPTT length for language models (default: 35 ptb-lstm, 50 char-lstm)." };
        public readonly Option<int?> EvalBatchSize = new("--eval-batch-size") { Description = "Batch size for evaluation." };
        public readonly Option<bool> NoTensorBoard = new("--no-tensorboard") { Description = "Do not write TensorBoard event files." };
        public readonly Option<double> DivergenceFactor = new("--divergence-factor")
        {
            Description = "Stop as diverged when the training loss (averaged over a tenth of an epoch) exceeds this multiple of its smallest value so far (0 = off).",
            DefaultValueFactory = _ => DivergenceGuardOptions.DefaultLossFactor,
        };
        public readonly Option<string?> CheckpointEvery = new("--checkpoint-every")
        {
            Description = "Also checkpoint every N optimizer steps (500) or every so long (90s, 10m, 2h), besides epoch ends, so that a crash loses at most that much (default: epoch ends only).",
        };
        public readonly Option<string?> Distributed = new("--distributed")
        {
            Description = "Train over the ranks of an MPI job (mpirun -np K widevalley train ...): data-parallel (--batch-size per rank, " +
                          "gradients averaged every minibatch), parle or elastic (one replica per rank, coupled by that optimizer). See docs/distributed.md.",
        };
        public readonly Option<int> DivergencePatience = new("--divergence-patience")
        {
            Description = "Stop as diverged when the training loss grew at this many consecutive checks (10 per epoch; 0 = off).",
            DefaultValueFactory = _ => DivergenceGuardOptions.DefaultGrowthChecks,
        };

        public readonly Option<double?> HtrGamma = new("--htr-gamma")
        {
            Description = "Add the Hessian-trace regulariser (HTR, Sankar et al.) gamma * (1/K) sum v^T H v to the loss, with this gamma (off when not given).",
        };
        public readonly Option<int> HtrProbes = new("--htr-probes") { Description = "HTR: Hutchinson probes K per application, one Hessian-vector product each.", DefaultValueFactory = _ => 10 };
        public readonly Option<int> HtrFreq = new("--htr-freq") { Description = "HTR: apply on steps 0, N, 2N, ... of each epoch (1 = every step).", DefaultValueFactory = _ => 50 };
        public readonly Option<int> HtrStartEpoch = new("--htr-start-epoch")
        {
            Description = "HTR: first epoch (1-based) with the penalty; the authors' -sp s is s + 1.",
            DefaultValueFactory = _ => 1,
        };
        public readonly Option<string> HtrProbe = new("--htr-probe") { Description = "HTR: probe distribution, gaussian (the authors' code) or rademacher.", DefaultValueFactory = _ => "gaussian" };
        public readonly Option<string> HtrLayers = new("--htr-layers")
        {
            Description = "HTR: penalised tensors: all, middle (the authors' mask: named parameters n/4..3n/4), non-middle, or a comma-separated list of parameter or module names.",
            DefaultValueFactory = _ => "all",
        };
        public readonly Option<string> HtrEstimator = new("--htr-estimator")
        {
            Description = "HTR: how v^T H v is computed: exact (the authors' double backward, default), finite-difference " +
                          "(ours: (L(w+eps v) - 2 L(w) + L(w-eps v))/eps^2 and the same difference of gradients; 2 forward+backward passes per probe, bias O(eps^2)) " +
                          "or antithetic (ours: trains on (L(w+s v) + L(w-s v))/2 with s = sqrt(2 gamma), the penalised loss up to O(gamma^2); " +
                          "2 forward+backward passes per probe and no backward pass at w; --htr-fd-step does not apply).",
            DefaultValueFactory = _ => "exact",
        };
        public readonly Option<double> HtrFdStep = new("--htr-fd-step")
        {
            Description = "HTR finite-difference: the perturbation's length relative to the penalised weights' norm, c in eps = c*max(|w|,1)/|v| (0 < c < 1).",
            DefaultValueFactory = _ => 0.01,
        };

        /// <summary>Reads --htr-estimator: exact, finite-difference or antithetic.</summary>
        static HessianTraceEstimator ParseEstimator(string text) => text.Trim().ToLowerInvariant() switch
        {
            "exact" => HessianTraceEstimator.Exact,
            "finite-difference" or "fd" => HessianTraceEstimator.FiniteDifference,
            "antithetic" => HessianTraceEstimator.Antithetic,
            _ => throw new ArgumentException($"--htr-estimator: expected exact, finite-difference or antithetic; got '{text}'"),
        };

        /// <summary>The --htr-* values given, over <paramref name="stored"/>'s for those not given (unvalidated; for comparing on resume).</summary>
        public HessianTraceRegularizerOptions HessianTraceAsGiven(ParseResult p, HessianTraceRegularizerOptions stored) => stored with
        {
            Gamma = p.GetValue(HtrGamma) ?? stored.Gamma,
            Probes = p.GetValue(HtrProbes),
            Frequency = p.GetValue(HtrFreq),
            StartEpoch = p.GetValue(HtrStartEpoch),
            Probe = Enum.Parse<HessianTraceProbe>(p.GetValue(HtrProbe)!, ignoreCase: true),
            Parameters = HessianTraceParameters.Parse(p.GetValue(HtrLayers)!),
            Estimator = ParseEstimator(p.GetValue(HtrEstimator)!),
            FiniteDifferenceStep = p.GetValue(HtrFdStep),
        };

        /// <summary>Every --htr-* option.</summary>
        public IEnumerable<Option> HtrOptions => [HtrGamma, .. HtrSettings];

        /// <summary>The HTR options, which need --htr-gamma.</summary>
        IEnumerable<Option> HtrSettings => [HtrProbes, HtrFreq, HtrStartEpoch, HtrProbe, HtrLayers, HtrEstimator, HtrFdStep];

        /// <summary>The regulariser the command line asks for (null without --htr-gamma); its probes are seeded by --seed.</summary>
        HessianTraceRegularizerOptions? HessianTraceFrom(ParseResult p, bool resuming)
        {
            if (p.GetValue(HtrGamma) is not double gamma)
            {
                if (!resuming && HtrSettings.FirstOrDefault(o => p.GetResult(o) is OptionResult r && !r.Implicit) is Option given)
                    throw new ArgumentException($"{given.Name} sets the Hessian-trace regulariser, which is off: give --htr-gamma too");
                return null;
            }
            return new HessianTraceRegularizerOptions
            {
                Gamma = gamma,
                Probes = p.GetValue(HtrProbes),
                Frequency = p.GetValue(HtrFreq),
                StartEpoch = p.GetValue(HtrStartEpoch),
                Probe = Enum.Parse<HessianTraceProbe>(p.GetValue(HtrProbe)!, ignoreCase: true),
                Parameters = HessianTraceParameters.Parse(p.GetValue(HtrLayers)!),
                Estimator = ParseEstimator(p.GetValue(HtrEstimator)!),
                FiniteDifferenceStep = p.GetValue(HtrFdStep),
                Seed = p.GetValue(Seed),
            };
        }

        public readonly Option<bool> TrackCurvature = new("--track-curvature")
        {
            Description = "After every epoch (and at the initial weights) record lambda_max and the trace of the Hessian, full and per layer " +
                          "(each Conv/Linear weight), over a fixed subset of the training set, into curvature.jsonl and curvature.png in the run folder. " +
                          "Cost per epoch: at most (1 + layers) x --track-lanczos-iterations + --track-hutchinson-probes Hessian-vector products " +
                          "(plus (1 + layers) x 128, or x 192 for the authors' preset, with --track-spectra), each one double-backward pass over the subset " +
                          "(LeNet with the defaults: at most 110 products on 100 examples).",
        };
        public readonly Option<int> TrackExamplesPerClass = new("--track-examples-per-class") { Description = "--track-curvature: training examples per class the Hessian is taken over (the authors' 10).", DefaultValueFactory = _ => 10 };
        public readonly Option<int> TrackLanczosIterations = new("--track-lanczos-iterations") { Description = "--track-curvature: most Lanczos steps per lambda_max (full and per layer).", DefaultValueFactory = _ => 20 };
        public readonly Option<int> TrackHutchinsonProbes = new("--track-hutchinson-probes") { Description = "--track-curvature: Hutchinson probes for the traces (per-layer traces come from the same products).", DefaultValueFactory = _ => 10 };
        public readonly Option<string> TrackLayers = new("--track-layers")
        {
            Description = "--track-curvature: layers: weights (every Conv/Linear weight, the authors' layers) or a comma-separated list of parameter or module names.",
            DefaultValueFactory = _ => "weights",
        };
        public readonly Option<string> TrackSpectra = new("--track-spectra")
        {
            Description = "--track-curvature: also record eigenvalue densities: none, ours (Lanczos with reorthogonalisation) or authors (Sankar et al.'s preset).",
            DefaultValueFactory = _ => "none",
        };
        public readonly Option<long> TrackSeed = new("--track-seed") { Description = "--track-curvature: seed of the subset, Lanczos start vectors and Hutchinson probes (the authors' subset seed is 0).", DefaultValueFactory = _ => 0L };

        /// <summary>The --track-* settings (they need --track-curvature).</summary>
        public IEnumerable<Option> TrackSettings => [TrackExamplesPerClass, TrackLanczosIterations, TrackHutchinsonProbes, TrackLayers, TrackSpectra, TrackSeed];

        /// <summary>Every --track-* option.</summary>
        public IEnumerable<Option> TrackOptions => [TrackCurvature, .. TrackSettings];

        /// <summary>The --track-* values as given (defaults for those not given).</summary>
        public CurvatureTrackingOptions CurvatureTrackingAsGiven(ParseResult p) => new()
        {
            ExamplesPerClass = p.GetValue(TrackExamplesPerClass),
            LanczosIterations = p.GetValue(TrackLanczosIterations),
            HutchinsonProbes = p.GetValue(TrackHutchinsonProbes),
            Layers = p.GetValue(TrackLayers)!,
            Spectra = Enum.Parse<CurvatureSpectra>(p.GetValue(TrackSpectra)!, ignoreCase: true),
            Seed = p.GetValue(TrackSeed),
        };

        /// <summary>The tracking the command line asks for (null without --track-curvature).</summary>
        CurvatureTrackingOptions? CurvatureTrackingFrom(ParseResult p, bool resuming)
        {
            if (!p.GetValue(TrackCurvature))
            {
                if (!resuming && TrackSettings.FirstOrDefault(o => p.GetResult(o) is OptionResult r && !r.Implicit) is Option given)
                    throw new ArgumentException($"{given.Name} sets the curvature tracking, which is off: give --track-curvature too");
                return null;
            }
            return CurvatureTrackingAsGiven(p);
        }

        /// <summary>The optimizer options: one table mapping flags onto the options records' properties.</summary>
        public readonly OptimizerFlags OptimizerFlags = new();

        public RunOptions()
        {
            Model.AcceptOnlyFromAmong([.. ModelZoo.Names]);
            Optimizer.AcceptOnlyFromAmong([.. OptimizerFactory.Names]);
            BnRecalibrate.AcceptOnlyFromAmong("auto", "on", "off");
            Scaling.AcceptOnlyFromAmong([.. PixelScaling.All]);
            Distributed.AcceptOnlyFromAmong([.. DistributedTraining.Names]);
            HtrProbe.AcceptOnlyFromAmong("gaussian", "rademacher");
            TrackSpectra.AcceptOnlyFromAmong("none", "ours", "authors");
        }

        /// <summary>The run-level options (everything but the optimizer's options).</summary>
        public IEnumerable<Option> RunLevel =>
        [
            Model, Data, DataDir, Corpus, Optimizer, BatchSize, Epochs, EffectiveEpochs, LrSchedule, Dropout, InputDropout, HiddenSize,
            Layers, Seed, Threads, Device, MaxTrainSamples, ValidationSize, ClipGradNorm, BnRecalibrate, BnRecalibrateBatches, EvalTrain, EvalEvery,
            Scaling, Unroll, EvalBatchSize, NoTensorBoard, DivergenceFactor, DivergencePatience, CheckpointEvery, Distributed,
            HtrGamma, HtrProbes, HtrFreq, HtrStartEpoch, HtrProbe, HtrLayers, HtrEstimator, HtrFdStep,
            TrackCurvature, TrackExamplesPerClass, TrackLanczosIterations, TrackHutchinsonProbes, TrackLayers, TrackSpectra, TrackSeed,
        ];

        /// <summary>Every train option.</summary>
        public IEnumerable<Option> All => RunLevel.Concat(OptimizerFlags.Options);

        /// <summary>The run-level settings the command line gives, with the optimizer's default options.</summary>
        /// <param name="p">The parsed command line.</param>
        /// <param name="resuming">True for a resume, where --htr-* options without --htr-gamma repeat the run's settings.</param>
        public RunConfig ToRunLevelConfig(ParseResult p, bool resuming = false) => new()
        {
            Model = p.GetValue(Model)!,
            Data = p.GetValue(Data),
            DataDir = p.GetValue(DataDir),
            Corpus = p.GetValue(Corpus),
            Optimizer = OptimizerFor(p),
            Distributed = p.GetValue(Distributed),
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
            EvalEveryEffectiveEpochs = p.GetValue(EvalEvery),
            Scaling = p.GetValue(Scaling)!,
            Unroll = p.GetValue(Unroll),
            EvalBatchSize = p.GetValue(EvalBatchSize),
            TensorBoard = !p.GetValue(NoTensorBoard),
            DivergenceFactor = p.GetValue(DivergenceFactor),
            DivergencePatience = p.GetValue(DivergencePatience),
            CheckpointEvery = p.GetValue(CheckpointEvery),
            HessianTrace = HessianTraceFrom(p, resuming),
            CurvatureTracking = CurvatureTrackingFrom(p, resuming),
        };

        /// <summary>
        /// --optimizer, or the optimizer a replica mode trains with (--distributed parle: parle, elastic: elastic-sgd); an
        /// explicit other --optimizer with a replica mode is refused.
        /// </summary>
        string OptimizerFor(ParseResult p)
        {
            var given = p.GetValue(Optimizer)!;
            if (DistributedTraining.OptimizerOf(p.GetValue(Distributed)) is not string required) return given;
            if (p.GetResult(Optimizer) is OptionResult { Implicit: false } && given != required)
                throw new UsageException(
                    $"--distributed {p.GetValue(Distributed)} trains with the optimizer {required}, but --optimizer {given} was given; " +
                    $"leave --optimizer out, or use --distributed {DistributedTraining.DataParallelName} to train {given} over the ranks");
            return required;
        }

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
            Description = "Continue the run in --out from its checkpoint, with its stored settings (--epochs, --effective-epochs, --threads, --device, " +
                          "--data-dir, --corpus, --lr-schedule, --clip-grad-norm and the --divergence options may change).",
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
        // Under an MPI launcher every rank runs this command; MPI is started only then (a plain run never loads it).
        var collectives = WideValley.Distributed.Collectives.LaunchedByMpi ? WideValley.Distributed.Collectives.Create()
            : p.GetValue(options.Distributed) is not null ? new WideValley.Distributed.SingleProcessCollectives() : null;
        if (collectives is not { Size: > 1 }) return Execute(ctx, options, p, outDir, resume, collectives);
        try
        {
            return Execute(ctx, options, p, outDir, resume, collectives);
        }
        catch (Exception e)
        {
            // One rank failing alone would leave the others waiting in their next collective for ever: end the whole job.
            collectives.Abort(e is UsageException ? e.Message : $"{e.GetType().Name}: {e.Message}");
            return ExitCodes.Failure; // Abort does not return
        }
    }

    static int Execute(CliContext ctx, RunOptions options, ParseResult p, string? outDir, bool resume, WideValley.Distributed.ICollectives? collectives)
    {
        var rank = collectives?.Rank ?? 0;
        if (collectives is { Size: > 1 } && string.IsNullOrWhiteSpace(outDir))
            throw new UsageException($"a training job of {collectives.Size} ranks needs --out RUN_FOLDER (one folder that every rank names alike; rank 0 writes into it)");
        RunConfig? fresh = null;
        if (resume)
        {
            if (string.IsNullOrWhiteSpace(outDir)) throw new UsageException("--resume needs --out RUN_FOLDER (the run to continue)");
            var checkpoint = Path.Combine(Path.GetFullPath(outDir), Trainer.CheckpointFileName);
            if (!File.Exists(checkpoint))
                throw new UsageException($"--resume: {Path.GetFullPath(outDir)} has no {Trainer.CheckpointFileName}; nothing to resume");
        }
        else
        {
            fresh = options.ToConfig(p);
            outDir ??= Path.Combine("runs", $"{fresh.Model}-{fresh.Optimizer}-{DateTime.Now:yyyyMMdd-HHmmss}");
        }
        outDir = Path.GetFullPath(outDir!);
        var created = !Directory.Exists(outDir) && rank == 0;
        try
        {
            // One trainer per run folder, for the whole run, checks included: a second one is refused before it reads
            // or writes anything (RunFolderLockedException: exit 1, naming the holder). Rank 0 holds it for the job.
            using var claim = rank == 0 ? RunFolderLock.Acquire(outDir) : null;
            RunConfig config;
            IReadOnlyList<string> changes = [];
            if (resume) (config, changes) = ResumedConfig(outDir, options, p);
            else
            {
                config = fresh!;
                if (File.Exists(Path.Combine(outDir, Trainer.CheckpointFileName)) && rank == 0)
                    throw new UsageException($"{outDir} already holds a run ({Trainer.CheckpointFileName}); pass --resume to continue it, or choose another --out");
            }
            try
            {
                RunSetup.Validate(config);
            }
            catch (OptionsException e)
            {
                throw new UsageException(e.Describe(OptimizerFlags.FlagFor));
            }
            return RunAndReport(ctx, config, outDir, resume, label: "", changes, collectives);
        }
        finally
        {
            // A folder this command created and left holding nothing but its lock is removed again.
            if (created) RemoveIfOnlyLock(outDir);
        }
    }

    static void RemoveIfOnlyLock(string folder)
    {
        try
        {
            if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder)
                    .All(e => Path.GetFileName(e) is RunFolderLock.FileName or RunFolderLock.OwnerFileName))
                Directory.Delete(folder, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Trains one configuration into <paramref name="outDir"/> and prints the result; returns the exit code.</summary>
    /// <param name="ctx">Console and cancellation.</param>
    /// <param name="config">The run.</param>
    /// <param name="outDir">The run folder (absolute).</param>
    /// <param name="resume">Continue the run in <paramref name="outDir"/> from its checkpoint.</param>
    /// <param name="label">Prefix of the progress lines.</param>
    /// <param name="resumeChanges">Settings changed on resume ("--clip-grad-norm 1 (was none)"): printed, and logged in the run folder once the run is set up.</param>
    /// <param name="collectives">The ranks of a distributed run (--distributed); null: one process. Only rank 0 prints and writes.</param>
    public static int RunAndReport(CliContext ctx, RunConfig config, string outDir, bool resume, string label, IReadOnlyList<string>? resumeChanges = null,
        WideValley.Distributed.ICollectives? collectives = null)
    {
        PreparedRun run;
        var rank = collectives?.Rank ?? 0;
        try
        {
            run = RunSetup.Prepare(config, outDir, message => { if (rank == 0) ctx.Out.WriteLine(message); }, collectives);
        }
        catch (OptionsException e)
        {
            throw new UsageException(e.Describe(OptimizerFlags.FlagFor));
        }
        using var _ = run;
        if (rank > 0)
        {
            // The other ranks train and stay quiet: rank 0 prints, logs and checkpoints for the job.
            var quiet = TrainingConsole.Train(ctx, run, resume, label, quiet: true);
            return quiet.Status == TrainingStatus.Diverged ? ExitCodes.Failure : quiet.Status == TrainingStatus.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        }
        if (collectives is not null)
            ctx.Out.WriteLine($"distributed: --distributed {config.Distributed} on {collectives.Size} rank{(collectives.Size == 1 ? "" : "s")} ({collectives.Description})");
        ctx.Out.WriteLine($"model {config.Model} ({run.Parameters:N0} parameters), optimizer {config.Optimizer}, device {run.Device}, threads {TorchSharp.torch.get_num_threads()}, {TorchRuntime.CpuBackendNote}");
        ctx.Out.WriteLine($"data {run.DataDescription}");
        ctx.Out.WriteLine($"run folder {outDir}{(resume ? " (resuming)" : "")}");
        if (resume && resumeChanges is { Count: > 0 })
        {
            var changed = "resumed with " + string.Join(", ", resumeChanges);
            ctx.Out.WriteLine(changed);
            var meta = Checkpoint.ReadMeta(Checkpoint.SelectIntact(Path.Combine(outDir, Trainer.CheckpointFileName)).Path);
            File.AppendAllText(Path.Combine(outDir, RunLogFileName), string.Create(CultureInfo.InvariantCulture,
                $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {changed}, from epoch {meta.CompletedEpochs + 1} step {meta.StepInEpoch + 1}\n"));
        }
        if (config.CurvatureTracking is { } tracking)
            ctx.Out.WriteLine($"curvature tracking: at most {tracking.MaxProductsPerEpoch(((CurvatureTracker)run.TrainerOptions.EpochEndHook!).ResolveLayers(run.Task.Model).Count):N0} " +
                              $"Hessian-vector products per epoch on {((CurvatureTracker)run.TrainerOptions.EpochEndHook!).Examples} examples, into {CurvatureTracker.FileName}");
        var result = TrainingConsole.Train(ctx, run, resume, label);
        if (config.CurvatureTracking is not null)
        {
            var figure = WideValley.Experiments.CurvatureTrackingPlot.TryWrite(outDir, out var skipped);
            ctx.Out.WriteLine(figure is not null ? $"curvature: {Path.Combine(outDir, CurvatureTracker.FileName)}, {figure}" : $"curvature plot not drawn: {skipped}");
        }
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
    /// The stored configuration of the run in <paramref name="outDir"/>, with the settings that may change on resume
    /// taken from the command line, and those changes in words. Any other option given with a different value is an
    /// error: silently ignoring it would mislead, and honouring it would make the resumed run a different experiment.
    /// </summary>
    static (RunConfig Config, IReadOnlyList<string> Changes) ResumedConfig(string outDir, RunOptions options, ParseResult p)
    {
        var checkpoint = Path.Combine(outDir, Trainer.CheckpointFileName);
        if (!File.Exists(checkpoint))
            throw new UsageException($"--resume: {outDir} has no {Trainer.CheckpointFileName}; nothing to resume");
        var meta = Checkpoint.ReadMeta(Checkpoint.SelectIntact(checkpoint).Path);
        var stored = meta.RunConfig ?? throw new UsageException($"--resume: {checkpoint} does not record its run configuration");
        var explicitOptions = options.Explicit(p).ToHashSet();
        var given = options.ToRunLevelConfig(p, resuming: true);
        var storedJson = stored.ToJson();
        var givenJson = given.ToJson();
        var conflicts = new List<string>();
        foreach (var option in options.RunLevel.Select(o => o.Name).Where(o => explicitOptions.Contains(o) && !ResumeOverridable.Contains(o)))
        {
            var key = JsonKey(option);
            if (!storedJson.ContainsKey(key)) continue;
            var a = storedJson[key]?.ToJsonString() ?? "null";
            var b = givenJson[key]?.ToJsonString() ?? "null";
            if (a != b) conflicts.Add($"{option} {b} (the run has {a})");
        }
        // The --htr-* options are the fields of one stored object: each given one must equal its field.
        foreach (var option in options.HtrOptions.Select(o => o.Name).Where(explicitOptions.Contains))
        {
            if (stored.HessianTrace is null)
            {
                conflicts.Add($"{option} (the run has no Hessian-trace regulariser)");
                continue;
            }
            var key = option switch
            {
                "--htr-freq" => "frequency",
                "--htr-layers" => "parameters",
                "--htr-fd-step" => "finite_difference_step",
                _ => option["--htr-".Length..].Replace('-', '_'),
            };
            var givenHtr = System.Text.Json.JsonSerializer.SerializeToNode(options.HessianTraceAsGiven(p, stored.HessianTrace), RunConfig.Json);
            var a = storedJson["hessian_trace"]?[key]?.ToJsonString() ?? "null";
            var b = givenHtr?[key]?.ToJsonString() ?? "null";
            if (a != b) conflicts.Add($"{option} {b} (the run has {a})");
        }
        // The --track-* options are the fields of one stored object: when any is given, together they must equal it.
        if (options.TrackOptions.Any(o => explicitOptions.Contains(o.Name)))
        {
            var a = stored.CurvatureTracking is null ? "none" : System.Text.Json.JsonSerializer.Serialize(stored.CurvatureTracking, RunConfig.Json);
            var b = System.Text.Json.JsonSerializer.Serialize(options.CurvatureTrackingAsGiven(p), RunConfig.Json);
            if (stored.CurvatureTracking is null || a != b)
                conflicts.Add($"--track-* {b.ReplaceLineEndings(" ")} (the run has {a.ReplaceLineEndings(" ")}; a resumed run tracks as it started, give no --track-* option)");
        }
        conflicts.AddRange(options.OptimizerFlags.Conflicts(p, OptimizerFactory.Describe(stored.Optimizer), stored.ResolvedOptimizerOptions));
        if (conflicts.Count > 0)
            throw new UsageException(
                "--resume keeps the run's settings; these options differ: " + string.Join("; ", conflicts) +
                ". Only --epochs, --effective-epochs, --threads, --device, --data-dir, --corpus, --lr-schedule, --clip-grad-norm, " +
                "--divergence-factor, --divergence-patience and --checkpoint-every may change when resuming.");
        var located = RunSetup.LocateData(stored, outDir,
            explicitOptions.Contains("--data-dir") ? given.DataDir : null,
            explicitOptions.Contains("--corpus") ? given.Corpus : null);
        var resumed = located with
        {
            Epochs = explicitOptions.Contains("--epochs") ? given.Epochs : stored.Epochs,
            EffectiveEpochBudget = explicitOptions.Contains("--effective-epochs") ? given.EffectiveEpochBudget : stored.EffectiveEpochBudget,
            Threads = explicitOptions.Contains("--threads") ? given.Threads : stored.Threads,
            Device = explicitOptions.Contains("--device") ? given.Device : stored.Device,
            TensorBoard = explicitOptions.Contains("--no-tensorboard") ? given.TensorBoard : stored.TensorBoard,
            LrSchedule = explicitOptions.Contains("--lr-schedule") ? given.LrSchedule : stored.LrSchedule,
            ClipGradNorm = explicitOptions.Contains("--clip-grad-norm") ? given.ClipGradNorm : stored.ClipGradNorm,
            DivergenceFactor = explicitOptions.Contains("--divergence-factor") ? given.DivergenceFactor : stored.DivergenceFactor,
            DivergencePatience = explicitOptions.Contains("--divergence-patience") ? given.DivergencePatience : stored.DivergencePatience,
            CheckpointEvery = explicitOptions.Contains("--checkpoint-every") ? given.CheckpointEvery : stored.CheckpointEvery,
        };
        var resumedJson = resumed.ToJson();
        var changes = new List<string>();
        foreach (var option in ReportedChanges.Where(explicitOptions.Contains))
        {
            var key = JsonKey(option);
            var was = Describe(option, storedJson[key]);
            var now = Describe(option, resumedJson[key]);
            if (was == now) continue;
            // libtorch's reductions (matrix products, sums) are split by thread count: the run goes on, but not bit for bit.
            changes.Add(option == "--threads"
                ? $"--threads {now} (was {was}; the run is no longer bit-identical to one never stopped)"
                : $"{option} {now} (was {was})");
        }
        return (resumed, changes);
    }

    static string JsonKey(string option) => option.TrimStart('-').Replace('-', '_') switch
    {
        "effective_epochs" => "effective_epoch_budget",
        var key => key,
    };

    /// <summary>A stored setting in the words of its option: 0 means off for the clip and the guard.</summary>
    static string Describe(string option, System.Text.Json.Nodes.JsonNode? value)
    {
        if (value is null) return "none";
        var text = value.GetValueKind() == System.Text.Json.JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString();
        if (option == "--threads" && text == "0") return "libtorch's default";
        return option is "--clip-grad-norm" or "--divergence-factor" or "--divergence-patience" && text == "0" ? "none" : text;
    }
}
