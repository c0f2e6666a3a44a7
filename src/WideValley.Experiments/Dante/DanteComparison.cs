using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How `reproduce dante` runs: budget, seeds, networks, DANTE's step length, data, folders, what the report quotes.</summary>
public sealed record DanteRunSettings : ReproductionSettings
{
    /// <summary>The networks (zoo names), from <see cref="DanteComparison.Networks"/>.</summary>
    public IReadOnlyList<string> Networks { get; init; } = DanteComparison.Networks;

    /// <summary>DANTE's eta, the length of each SNGD step (ours: <see cref="DanteComparison.DefaultDanteLearningRate"/>).</summary>
    public double DanteLearningRate { get; init; } = DanteComparison.DefaultDanteLearningRate;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ValidateShared();
        ValidateSubset(Networks, DanteComparison.Networks, "--nets");
        if (!(DanteLearningRate > 0) || !double.IsFinite(DanteLearningRate))
            throw new ArgumentException($"--dante-lr must be a positive number, got {DanteLearningRate}");
    }
}

/// <summary>One training run of the comparison.</summary>
/// <param name="Network">A zoo name from <see cref="DanteComparison.Networks"/>.</param>
/// <param name="Arm">"dante", "sgd" or "adam".</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The complete configuration.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record DantePlannedRun(string Network, string Arm, long Seed, RunConfig Config, string Folder)
{
    /// <summary>NET/ARM/seed-K, the run's name in messages.</summary>
    public string Label => $"{Network}/{Arm}/seed-{Seed}";
}

/// <summary>What the comparison found: every planned run and its result.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run and its finished result (null: not finished).</param>
/// <param name="Interrupted">Cancelled during a run, whose checkpoint was saved.</param>
/// <param name="Files">The report's files, full paths.</param>
public sealed record DanteOutcome(DanteRunSettings Settings, IReadOnlyList<(DantePlannedRun Run, FinishedRun? Result)> Runs, bool Interrupted,
    IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce dante` (issue 19 §4; protocol ours, the DANTE abstract gives none): DANTE (block-cyclic SNGD,
/// <see cref="Dante"/>) against backprop with SGD (momentum) and Adam, on one- and two-hidden-layer MLPs with sigmoid,
/// ReLU and the generalised ReLU, Fashion-MNIST, equal epochs, several seeds. Every arm shares data, network,
/// initial weights (the seed), minibatch order, batch size and epochs; only the optimizer differs. Each run lives in its
/// own folder; finished runs are never trained again, interrupted ones resume.
/// </summary>
public static class DanteComparison
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "dante";

    /// <summary>The optimizers compared, DANTE first.</summary>
    public static IReadOnlyList<string> Arms { get; } = ["dante", "sgd", "adam"];

    /// <summary>The networks: one and two hidden layers of <see cref="Mlp.ZooWidth"/> units, each activation.</summary>
    public static IReadOnlyList<string> Networks { get; } =
        [.. from depth in new[] { 1, 2 } from activation in Enum.GetValues<MlpActivation>() select Mlp.ZooNameOf(depth, activation)];

    /// <summary>
    /// DANTE's eta in this experiment (ours): 0.1, the best mean validation error of a pilot over {0.01, 0.03, 0.1, 0.3}
    /// (mlp1-relu and mlp2-sigmoid, 10 epochs on 50,000 training images, 10,000 held out; never the test set). The
    /// optimizer's own default stays the SNGD convention 0.01, which trained 2-3x slower here (docs/seed-004.md).
    /// </summary>
    public const double DefaultDanteLearningRate = 0.1;

    /// <summary>SGD's learning rate (ours) with momentum <see cref="SgdMomentum"/>.</summary>
    public const double SgdLearningRate = 0.05;

    /// <summary>SGD's (heavy-ball) momentum (ours).</summary>
    public const double SgdMomentum = 0.9;

    /// <summary>Adam's learning rate (Kingma &amp; Ba's default).</summary>
    public const double AdamLearningRate = 1e-3;

    /// <summary>Minibatch size of every arm (ours).</summary>
    public const int BatchSize = 128;

    /// <summary>Fashion-MNIST's training images (no validation split is carved out).</summary>
    public const long TrainingImages = 60_000;

    /// <summary>Epochs of the paper budget (ours: the paper's are not in the abstract).</summary>
    public const int PaperEpochs = 50;

    /// <summary>Epochs of the small budget.</summary>
    public const int SmallEpochs = 10;

    /// <summary>Training images of a smoke run.</summary>
    public const long SmokeTrainingImages = 512;

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => $"{PaperEpochs} epochs on all {TrainingImages:N0} training images (ours: the abstract gives no protocol)",
        Budget.Small => $"{SmallEpochs} epochs on all {TrainingImages:N0} training images, a fifth of the paper budget's epochs",
        Budget.Smoke => $"1 epoch on {SmokeTrainingImages} training images: for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>
    /// The three runs of <paramref name="network"/> for a seed: constant learning rates, no weight decay, no dropout,
    /// batch <see cref="BatchSize"/>. DANTE: eta from the settings, one epoch per block, forward order. SGD: lr
    /// <see cref="SgdLearningRate"/>, momentum <see cref="SgdMomentum"/>. Adam: lr <see cref="AdamLearningRate"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings or an unknown network.</exception>
    public static IReadOnlyDictionary<string, RunConfig> ArmsOf(DanteRunSettings s, string network, long seed)
    {
        s.Validate();
        if (!Networks.Contains(network)) throw new ArgumentException($"unknown network '{network}'");
        var (epochs, images) = s.Budget switch
        {
            Budget.Paper => (PaperEpochs, (long?)null),
            Budget.Small => (SmallEpochs, (long?)null),
            Budget.Smoke => (1, SmokeTrainingImages),
            _ => throw new ArgumentOutOfRangeException(nameof(s), s.Budget, "unknown budget"),
        };
        var common = new RunConfig
        {
            Model = network,
            Data = DatasetCatalog.FashionMnist,
            DataDir = s.FashionMnistDir,
            BatchSize = BatchSize,
            Epochs = epochs,
            LrSchedule = "const",
            MaxTrainSamples = images,
            Seed = seed,
            Threads = s.Threads,
            Device = s.Device,
            EvalTrain = true,
            TensorBoard = false,
        };
        return new Dictionary<string, RunConfig>
        {
            ["dante"] = common.WithOptimizer(new DanteOptions { LearningRate = s.DanteLearningRate }),
            ["sgd"] = common.WithOptimizer(new SgdOptions { LearningRate = SgdLearningRate, Momentum = SgdMomentum }),
            ["adam"] = common.WithOptimizer(new AdamOptions { LearningRate = AdamLearningRate }),
        };
    }

    /// <summary>RUNS/dante-BUDGET/NET/ARM/seed-K (DANTE's folder names its eta when it is not the default).</summary>
    public static string RunFolder(DanteRunSettings s, string network, string arm, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", network,
            arm == "dante" && s.DanteLearningRate != DefaultDanteLearningRate
                ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"dante-lr{s.DanteLearningRate:R}")
                : arm,
            $"seed-{seed}");

    /// <summary>Every run, seeds outermost (so that a partial reproduction has every network and arm at the first seeds).</summary>
    public static IReadOnlyList<DantePlannedRun> Plan(DanteRunSettings s)
    {
        s.Validate();
        var runs = new List<DantePlannedRun>();
        for (var k = 0; k < s.Seeds; k++)
        {
            var seed = s.FirstSeed + k;
            foreach (var network in s.Networks)
            {
                var arms = ArmsOf(s, network, seed);
                foreach (var arm in Arms)
                {
                    RunSetup.Validate(arms[arm]);
                    runs.Add(new DantePlannedRun(network, arm, seed, arms[arm], RunFolder(s, network, arm, seed)));
                }
            }
        }
        return runs;
    }

    /// <summary>
    /// Looks at every run folder first (a folder holding another run is an error before anything trains), checks that
    /// the data is there, trains what is missing (unless <see cref="ReproductionSettings.ReportOnly"/>), and writes the report
    /// from every finished run. Cancelling saves the current run's checkpoint and still writes the report of what has
    /// finished.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings.</exception>
    /// <exception cref="DatasetNotFoundException">Fashion-MNIST is missing and there is something to train.</exception>
    public static DanteOutcome Run(DanteRunSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var plan = Plan(s);
        var states = plan.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Config));
        var todo = plan.Where(r => states[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        if (!s.ReportOnly && todo.Count > 0) DatasetCatalog.Locate(DatasetCatalog.FashionMnist, s.FashionMnistDir);
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
        var files = DanteReport.Write(s, results, message => progress?.Report(new ExperimentWarning(message)));
        return new DanteOutcome(s, results, interrupted, files);
    }
}
