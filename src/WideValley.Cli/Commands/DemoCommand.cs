using System.CommandLine;
using System.Globalization;
using WideValley.Cli.DemoData;
using WideValley.Data;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley demo`: a few-minute comparison that shows the whole pipeline working on this machine: finds
/// Fashion-MNIST (or, without it, uses the subset built into the tool; see <see cref="FashionMnistSubset"/>), trains the paper's mnistfc with Adam and with Entropy-SGD for the same number of effective
/// epochs (gradient evaluations), and prints a small table of test error, training loss and time.
/// </summary>
public static class DemoCommand
{
    public static Command Create(CliContext ctx)
    {
        var budget = new Option<double>("--effective-epochs") { Description = "Budget of each run in effective epochs (passes over the data counting every minibatch; about 12 s each on 2 cores).", DefaultValueFactory = _ => 5 };
        var l = new Option<int>("-L", "--langevin-steps") { Description = "Langevin steps per Entropy-SGD update (the paper uses 20 with a 100-epoch budget).", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder with the full Fashion-MNIST IDX files." };
        var data = new Option<string>("--data")
        {
            Description = "Which data: auto (the full Fashion-MNIST when installed, else the built-in 10k/2k subset), " +
                          "full (the full set; downloaded to the user data folder if not found), subset (the built-in subset).",
            DefaultValueFactory = _ => DataChoice.Auto,
        };
        data.AcceptOnlyFromAmong(DataChoice.All);
        var output = new Option<string?>("--out") { Description = "Folder for the two runs (default: runs/demo-TIME)." };
        var command = new Command("demo",
            "Train mnistfc on Fashion-MNIST with Adam and with Entropy-SGD at the same budget (a few minutes) and compare them.")
        {
            budget, l, threads, data, dataDir, output,
        };
        command.SetAction(p =>
        {
            var effectiveEpochs = p.GetValue(budget);
            var langevinSteps = p.GetValue(l);
            if (langevinSteps < 1) throw new UsageException($"-L must be at least 1, got {langevinSteps}");
            var source = LocateData(ctx, p.GetValue(data)!, p.GetValue(dataDir));
            if (source is null) return ExitCodes.Failure;
            var folder = source.Value.Folder;
            var outDir = Path.GetFullPath(p.GetValue(output) ?? Path.Combine("runs", $"demo-{DateTime.Now:yyyyMMdd-HHmmss}"));
            var runs = Runs(folder, effectiveEpochs, langevinSteps, p.GetValue(threads));
            ctx.Out.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "WideValley demo: mnistfc (784-1024-1024-10, BatchNorm, dropout) on Fashion-MNIST ({2}), Adam against Entropy-SGD (L = {0}), {1:0.##} effective epochs each.",
                langevinSteps, effectiveEpochs, source.Value.Subset ? "built-in subset" : "full set"));
            var results = new List<(string Label, RunConfig Config, TrainingResult Result)>();
            foreach (var (label, config) in runs)
            {
                var runDir = Path.Combine(outDir, label);
                ctx.Out.WriteLine($"== {label}: {Describe(config)}");
                using var run = RunSetup.Prepare(config, runDir, message => ctx.Out.WriteLine(message));
                var result = TrainingConsole.Train(ctx, run, resume: false, label: label);
                if (result.Status != TrainingStatus.Completed)
                    return TrainCommand.Report(ctx, result with { Message = ResumeAdvice(result.Message, runDir) }, runDir);
                results.Add((label, config, result));
            }
            WriteTable(ctx, results);
            ctx.Out.WriteLine($"runs (metrics.jsonl, TensorBoard, checkpoints) in {outDir}");
            return ExitCodes.Ok;
        });
        return command.WithRanges();
    }

    /// <summary>
    /// The trainer's message with its advice to pass --resume (an option of <c>train</c>, not of <c>demo</c>) turned
    /// into the command that continues that run: <c>widevalley train --resume --out RUN</c>.
    /// </summary>
    internal static string ResumeAdvice(string? message, string runDir)
    {
        var continueWith = $"'widevalley train --resume --out {runDir}' (demo has no --resume; run the demo again to start over)";
        if (string.IsNullOrEmpty(message)) return $"continue this run with {continueWith}";
        return message.Contains("with --resume", StringComparison.Ordinal)
            ? message.Replace("with --resume", "with " + continueWith, StringComparison.Ordinal)
            : message.Replace("--resume", continueWith, StringComparison.Ordinal);
    }

    /// <summary>
    /// The two runs. Adam: the paper's mnistfc baseline (lr 1e-3, dropout 0.2 input / 0.5 hidden). Entropy-SGD: the
    /// paper's mnistfc settings (lr 1 with Nesterov momentum 0.9 in both loops, eta' = 0.1, eps = 1e-3, gamma0 = 1e-4,
    /// gamma1 = 1e-3, hidden dropout 0.15) with the outer learning rate divided by 10 for the last half of the budget,
    /// as the paper does after its second of five epochs.
    /// </summary>
    internal static IReadOnlyList<(string Label, RunConfig Config)> Runs(string dataFolder, double effectiveEpochs, int l, int threads)
    {
        var common = new RunConfig
        {
            Model = "mnistfc",
            Data = DatasetCatalog.FashionMnist,
            DataDir = dataFolder,
            BatchSize = 128,
            Threads = threads,
            Seed = 1,
            EffectiveEpochBudget = effectiveEpochs,
        };
        var adam = (common with { Epochs = (int)Math.Ceiling(effectiveEpochs - 1e-9) }).WithOptimizer(new AdamOptions { LearningRate = 1e-3 });
        var outerEpochs = effectiveEpochs / l;
        var esgd = (common with
        {
            Dropout = 0.15,
            Epochs = Math.Max(1, (int)Math.Ceiling(outerEpochs - 1e-9)),
            LrSchedule = outerEpochs >= 2 ? $"after:10:{(int)Math.Floor(outerEpochs / 2)}" : "const",
        }).WithOptimizer(new EntropySgdOptions
        {
            LearningRate = 1,
            Momentum = 0.9,
            Nesterov = true,
            LocalEntropy = new LocalEntropyOptions
            {
                L = l, LangevinLr = 0.1, Noise = 1e-3, Scope = new ExponentialScope(1e-4, 1e-3),
                LangevinMomentum = 0.9, LangevinNesterov = true, DiagnosticsEvery = 10,
            },
        });
        return [("adam", adam), ("entropy-sgd", esgd)];
    }

    static string Describe(RunConfig c) => c.ResolvedOptimizerOptions is ILocalEntropyOptimizerOptions le
        ? string.Format(CultureInfo.InvariantCulture, "Entropy-SGD lr {0} ({1}), L {2}, {3} outer epoch(s), dropout {4}",
            c.ResolvedOptimizerOptions.LearningRate, c.LrSchedule, le.LocalEntropy.L, c.Epochs, c.Dropout)
        : string.Format(CultureInfo.InvariantCulture, "Adam lr {0}, {1} epochs", c.ResolvedOptimizerOptions.LearningRate, c.Epochs);

    static void WriteTable(CliContext ctx, List<(string Label, RunConfig Config, TrainingResult Result)> results)
    {
        var c = CultureInfo.InvariantCulture;
        ctx.Out.WriteLine();
        ctx.Out.WriteLine($"{"optimizer",-12} {"eff. epochs",11} {"test error",10} {"test loss",10} {"train loss*",11} {"seconds",8}");
        foreach (var (label, _, result) in results)
        {
            var last = result.Last;
            ctx.Out.WriteLine(string.Format(c, "{0,-12} {1,11:0.00} {2,9:0.00}% {3,10:0.0000} {4,11:0.0000} {5,8:0.0}",
                label, result.EffectiveEpochs, last?.TestError ?? double.NaN, last?.TestLoss ?? double.NaN,
                last?.TrainLoss ?? double.NaN, result.TotalSeconds));
        }
        ctx.Out.WriteLine("* mean minibatch loss over the last epoch, dropout on; for Entropy-SGD at the Langevin iterates x'.");
        ctx.Out.WriteLine("  'widevalley evaluate RUN' measures the loss at the weights on the whole training set.");
        ctx.Out.WriteLine();
    }

    /// <summary>Values of the demo's --data option.</summary>
    internal static class DataChoice
    {
        /// <summary>The full set when a complete folder is found, else the built-in subset (the default).</summary>
        public const string Auto = "auto";
        /// <summary>The full set: the folder given or found, else a checksum-verified download into the user data folder.</summary>
        public const string Full = "full";
        /// <summary>The built-in subset, even when the full set is installed (fast, and the same on every machine).</summary>
        public const string Subset = "subset";

        public static string[] All { get; } = [Auto, Full, Subset];
    }

    /// <summary>
    /// The Fashion-MNIST folder for <paramref name="choice"/> (see <see cref="DataChoice"/>) and whether it is the built-in
    /// subset. An explicit --data-dir must hold the full set. When nothing works, prints exactly what to do and
    /// returns null.
    /// </summary>
    static (string Folder, bool Subset)? LocateData(CliContext ctx, string choice, string? dataDir)
    {
        if (choice == DataChoice.Subset)
        {
            if (dataDir is not null)
                throw new UsageException("--data-dir names a folder with the full Fashion-MNIST; it cannot be combined with --data subset");
            return (UseSubset(ctx), true);
        }
        try
        {
            var location = DatasetCatalog.Locate(DatasetCatalog.FashionMnist, dataDir);
            foreach (var skipped in location.SkippedFolders) ctx.Out.WriteLine($"note: skipped {skipped}");
            return (location.Folder, false);
        }
        catch (DatasetNotFoundException notFound) when (dataDir is null)
        {
            foreach (var skipped in notFound.IncompleteFolders) ctx.Out.WriteLine($"note: skipped {skipped}");
            if (choice == DataChoice.Auto)
            {
                ctx.Out.WriteLine($"Fashion-MNIST is not installed, so the demo uses {FashionMnistSubset.Description}. " +
                                  "For the whole set (60,000 training and 10,000 test images): sudo apt-get install dataset-fashion-mnist, " +
                                  "or widevalley data download fashion-mnist, or pass --data-dir FOLDER.");
                return (UseSubset(ctx), true);
            }
            return Download(ctx, notFound);
        }
    }

    static string UseSubset(CliContext ctx) => FashionMnistSubset.Materialize(log: m => ctx.Out.WriteLine(m));

    static (string Folder, bool Subset)? Download(CliContext ctx, DatasetNotFoundException notFound)
    {
        var target = DatasetCatalog.UserFolder(DatasetCatalog.FashionMnist);
        ctx.Out.WriteLine($"Fashion-MNIST is not installed; downloading it to {target} (checksums verified) ...");
        try
        {
            DatasetDownloader.Download(DatasetCatalog.FashionMnist, target, log: m => ctx.Out.WriteLine("  " + m));
            return (DatasetCatalog.ResolveFolder(DatasetCatalog.FashionMnist, target), false);
        }
        catch (Exception e) when (e is IOException or HttpRequestException or TaskCanceledException or InvalidDataException)
        {
            ctx.Error.WriteLine($"widevalley: the download failed (nothing was left behind): {e.Message}");
            ctx.Error.WriteLine(notFound.Message);
            ctx.Error.WriteLine("To get the data on Debian or Ubuntu:  sudo apt-get install dataset-fashion-mnist");
            ctx.Error.WriteLine("or put the four IDX files in a folder and run:  widevalley demo --data-dir FOLDER");
            ctx.Error.WriteLine("or run the demo on the built-in subset:  widevalley demo --data subset");
            return null;
        }
    }
}
