using System.Globalization;
using WideValley.Data;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How `reproduce annealsgd` runs: budget, seeds, networks, AnnealSGD's field, data, folders, what the report quotes.</summary>
public sealed record AnnealSgdRunSettings
{
    /// <summary>The compute budget (see <see cref="AnnealSgdComparison.DescribeBudget"/>).</summary>
    public required Budget Budget { get; init; }

    /// <summary>Independent runs per network and optimizer (the issue asks for 3).</summary>
    public int Seeds { get; init; } = 3;

    /// <summary>The first run's seed; the others follow consecutively.</summary>
    public long FirstSeed { get; init; } = 1;

    /// <summary>The networks, from <see cref="AnnealSgdComparison.Networks"/>.</summary>
    public IReadOnlyList<string> Networks { get; init; } = AnnealSgdComparison.Networks;

    /// <summary>AnnealSGD's h0 (our fixed choice, <see cref="AnnealSgdComparison.DefaultFieldSize"/>).</summary>
    public double FieldSize { get; init; } = AnnealSgdComparison.DefaultFieldSize;

    /// <summary>AnnealSGD's field mode (default fixed: the magnetic-field reading).</summary>
    public AnnealFieldMode FieldMode { get; init; } = AnnealFieldMode.Fixed;

    /// <summary>A Fashion-MNIST folder (default: the usual search).</summary>
    public string? FashionMnistDir { get; init; }

    /// <summary>libtorch threads per run (0: libtorch's default).</summary>
    public int Threads { get; init; }

    /// <summary>cpu, cuda or cuda:N.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The folder of the run folders.</summary>
    public required string RunsRoot { get; init; }

    /// <summary>The report's folder.</summary>
    public required string OutDir { get; init; }

    /// <summary>Train nothing: report the runs that have finished, the others as pending.</summary>
    public bool ReportOnly { get; init; }

    /// <summary>The command that reproduces the report.</summary>
    public required string CommandLine { get; init; }

    /// <summary>The machine in one line.</summary>
    public required string Machine { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        if (Seeds < 1) throw new ArgumentException($"--seeds must be at least 1, got {Seeds}");
        if (Networks is null || Networks.Count == 0) throw new ArgumentException($"--nets must name at least one of {string.Join(", ", AnnealSgdComparison.Networks)}");
        foreach (var n in Networks)
            if (!AnnealSgdComparison.Networks.Contains(n)) throw new ArgumentException($"--nets: unknown network '{n}'; the networks are {string.Join(", ", AnnealSgdComparison.Networks)}");
        if (Networks.Distinct().Count() != Networks.Count) throw new ArgumentException($"--nets: a network is named twice in {string.Join(",", Networks)}");
        if (!(FieldSize > 0) || !double.IsFinite(FieldSize)) throw new ArgumentException($"--field-size must be positive for the AnnealSGD arm (0 would be SGD itself), got {FieldSize}");
        if (!Enum.IsDefined(FieldMode)) throw new ArgumentException($"--field-mode must be fixed or fresh, got {FieldMode}");
    }
}

/// <summary>One training run of the comparison.</summary>
/// <param name="Network">mnistfc or lenet.</param>
/// <param name="Arm">"sgd" or "annealsgd".</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The complete configuration.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record AnnealSgdPlannedRun(string Network, string Arm, long Seed, RunConfig Config, string Folder)
{
    /// <summary>NET/ARM/seed-K, the run's name in messages.</summary>
    public string Label => $"{Network}/{Arm}/seed-{Seed}";
}

/// <summary>What the comparison found: the finished runs of every network and arm.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run and its finished result (null: not finished).</param>
/// <param name="Interrupted">Cancelled during a run, whose checkpoint was saved.</param>
/// <param name="Files">The report's files, full paths.</param>
public sealed record AnnealSgdOutcome(AnnealSgdRunSettings Settings, IReadOnlyList<(AnnealSgdPlannedRun Run, FinishedRun? Result)> Runs, bool Interrupted,
    IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce annealsgd` (issue 17, seed 000; protocol ours): AnnealSGD against SGD with Nesterov momentum on
/// mnistfc and LeNet, Fashion-MNIST, equal epochs, several seeds. Both arms share every setting (data, model,
/// dropout, batch, learning rate and schedule, momentum, weight decay, epochs, seed); AnnealSGD adds a Gaussian field of
/// per-coordinate size h0, annealed linearly to zero over the first half of the run's steps, so the second half is
/// plain SGD. Each run lives in its own folder, finished runs are never trained again, interrupted ones resume.
/// </summary>
public static class AnnealSgdComparison
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "annealsgd";

    /// <summary>The networks compared (model zoo names).</summary>
    public static IReadOnlyList<string> Networks { get; } = ["mnistfc", "lenet"];

    /// <summary>
    /// h0 (ours, fixed, not tuned on any data): 1e-3 per coordinate. The field's norm is then h0·√P, about 1.4 for
    /// mnistfc's ~1.9 M weights and 0.36 for LeNet's ~0.13 M: the order of a minibatch gradient's norm early in training,
    /// the network analogue of the glass's regime where field and landscape gradient are comparable (anneal-field).
    /// </summary>
    public const double DefaultFieldSize = 1e-3;

    /// <summary>Fashion-MNIST's training images (no validation split is carved out).</summary>
    public const long TrainingImages = 60_000;

    /// <summary>The paper budget's epochs: Table 1's mnistfc / LeNet baseline epochs (100), with its schedule (lr / 5 every 30 epochs).</summary>
    public const int PaperEpochs = 100;

    /// <summary>Small budget: epochs, schedule and training images.</summary>
    public const int SmallEpochs = 10;

    /// <summary>Training images of the small budget (a fifth of the training set, as Table 1's small budget).</summary>
    public const long SmallTrainingImages = 12_000;

    /// <summary>Training images of a smoke run.</summary>
    public const long SmokeTrainingImages = 512;

    /// <summary>Effective epochs after which a smoke run stops.</summary>
    public const double SmokeEffectiveEpochs = 0.25;

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => $"Table 1's mnistfc/LeNet baseline length: {PaperEpochs} epochs, lr divided by 5 every 30 epochs, all {TrainingImages:N0} training images",
        Budget.Small => $"{SmallEpochs} epochs, lr divided by 5 every 3 epochs (the paper schedule compressed tenfold), the first {SmallTrainingImages:N0} training images, whole test set",
        Budget.Smoke => $"at most {SmokeEffectiveEpochs} effective epochs on {SmokeTrainingImages} training images: for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>
    /// The SGD and AnnealSGD runs of <paramref name="network"/> for a seed. SGD: Table 1's SGD baseline (the All-CNN
    /// row's optimizer settings: lr 0.1, Nesterov momentum 0.9, weight decay 1e-3) with the mnistfc/LeNet rows' length and
    /// schedule, batch 128, the networks' default dropout. AnnealSGD: the same plus the field.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    public static (RunConfig Sgd, RunConfig AnnealSgd) Arms(AnnealSgdRunSettings s, string network, long seed)
    {
        s.Validate();
        if (!Networks.Contains(network)) throw new ArgumentException($"unknown network '{network}'");
        var (epochs, schedule, images, budget) = s.Budget switch
        {
            Budget.Paper => (PaperEpochs, "step:5:30", (long?)null, (double?)null),
            Budget.Small => (SmallEpochs, "step:5:3", SmallTrainingImages, null),
            Budget.Smoke => (1, "const", SmokeTrainingImages, SmokeEffectiveEpochs),
            _ => throw new ArgumentOutOfRangeException(nameof(s), s.Budget, "unknown budget"),
        };
        var common = new RunConfig
        {
            Model = network,
            Data = DatasetCatalog.FashionMnist,
            DataDir = s.FashionMnistDir,
            BatchSize = 128,
            Epochs = epochs,
            LrSchedule = schedule,
            MaxTrainSamples = images,
            EffectiveEpochBudget = budget,
            Seed = seed,
            Threads = s.Threads,
            Device = s.Device,
            EvalTrain = true,
            TensorBoard = false,
        };
        var stepsPerEpoch = (long)Math.Ceiling((images ?? TrainingImages) / (double)common.BatchSize);
        var totalSteps = (long)Math.Ceiling(stepsPerEpoch * (budget ?? epochs));
        var sgd = common.WithOptimizer(new SgdOptions { LearningRate = 0.1, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3 });
        var anneal = common.WithOptimizer(new AnnealSgdOptions
        {
            LearningRate = 0.1, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3,
            FieldSize = s.FieldSize, FieldMode = s.FieldMode, FieldSchedule = AnnealSchedule.Linear,
            FieldAnnealSteps = Math.Max(1, totalSteps / 2),
        });
        return (sgd, anneal);
    }

    /// <summary>RUNS/annealsgd-BUDGET/NET/ARM/seed-K (the AnnealSGD arm's folder names its h0 and mode).</summary>
    public static string RunFolder(AnnealSgdRunSettings s, string network, string arm, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", network, arm == "sgd" ? "sgd" : string.Create(CultureInfo.InvariantCulture,
            $"annealsgd-h{s.FieldSize:R}-{(s.FieldMode == AnnealFieldMode.Fixed ? "fixed" : "fresh")}"), $"seed-{seed}");

    /// <summary>Every run, seeds outermost (so that a partial reproduction has both networks and arms at the first seeds).</summary>
    public static IReadOnlyList<AnnealSgdPlannedRun> Plan(AnnealSgdRunSettings s)
    {
        s.Validate();
        var runs = new List<AnnealSgdPlannedRun>();
        for (var k = 0; k < s.Seeds; k++)
        {
            var seed = s.FirstSeed + k;
            foreach (var network in s.Networks)
            {
                var (sgd, anneal) = Arms(s, network, seed);
                RunSetup.Validate(sgd);
                RunSetup.Validate(anneal);
                runs.Add(new AnnealSgdPlannedRun(network, "sgd", seed, sgd, RunFolder(s, network, "sgd", seed)));
                runs.Add(new AnnealSgdPlannedRun(network, "annealsgd", seed, anneal, RunFolder(s, network, "annealsgd", seed)));
            }
        }
        return runs;
    }

    /// <summary>
    /// Looks at every run folder first (a folder holding another run is an error before anything trains), trains what
    /// is missing (unless <see cref="AnnealSgdRunSettings.ReportOnly"/>), and writes the report from every finished run.
    /// Cancelling saves the current run's checkpoint and still writes the report of what has finished.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings.</exception>
    public static AnnealSgdOutcome Run(AnnealSgdRunSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var plan = Plan(s);
        var states = plan.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Config));
        var todo = plan.Where(r => states[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        progress?.Report(new ComparisonPlanned(Name, plan.Count, plan.Count - todo.Count, todo.Count, s.ReportOnly));
        var interrupted = false;
        if (!s.ReportOnly)
            for (var i = 0; i < todo.Count && !interrupted; i++)
            {
                if (cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                var run = todo[i];
                var result = RunTraining.Train(run.Config, run.Folder, run.Label, new RunPosition(i + 1, todo.Count), progress, cancellation);
                interrupted = result?.Status == TrainingStatus.Interrupted;
            }
        var results = plan.Select(r => (r, RunFolders.Inspect(r.Folder, r.Config) is RunFolderState.Finished or RunFolderState.Diverged ? RunFolders.Read(r.Folder) : null))
            .ToList();
        var files = AnnealSgdReport.Write(s, results, message => progress?.Report(new ExperimentWarning(message)));
        return new AnnealSgdOutcome(s, results, interrupted, files);
    }
}
