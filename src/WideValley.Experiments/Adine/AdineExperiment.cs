using System.Globalization;
using System.Text.Json;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How `reproduce adine` runs: budget, seeds, networks, data, folders, what the report quotes.</summary>
public sealed record AdineRunSettings : ReproductionSettings
{
    /// <summary>The networks, from <see cref="AdineExperiment.Networks"/>.</summary>
    public IReadOnlyList<string> Networks { get; init; } = AdineExperiment.Networks;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ValidateShared();
        ValidateSubset(Networks, AdineExperiment.Networks, "--nets");
    }
}

/// <summary>One training run of the comparison.</summary>
/// <param name="Network">mnistfc or lenet.</param>
/// <param name="Arm">"sgd" or "adine".</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The complete configuration.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record AdinePlannedRun(string Network, string Arm, long Seed, RunConfig Config, string Folder)
{
    /// <summary>NET/ARM/seed-K, the run's name in messages.</summary>
    public string Label => $"{Network}/{Arm}/seed-{Seed}";
}

/// <summary>What the comparison found.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run and its finished result (null: not finished).</param>
/// <param name="Interrupted">Cancelled during a run, whose checkpoint was saved.</param>
/// <param name="Files">The report's files, full paths.</param>
public sealed record AdineOutcome(AdineRunSettings Settings, IReadOnlyList<(AdinePlannedRun Run, FinishedRun? Result)> Runs, bool Interrupted, IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce adine` (issue 19 §3; protocol ours, the paper gives none): ADINE with its defaults against heavy-ball SGD
/// with momentum 0.9 at the same learning rate and epochs, on mnistfc and LeNet (LeNet-BN) with Fashion-MNIST, several
/// seeds. Both arms share everything but the optimizer; the training loss is measured the same way for both, over the
/// whole training (sub)set in eval mode at every epoch end (<see cref="RunConfig.EvalTrain"/>). Each run lives in its own
/// folder; finished runs are never trained again, interrupted ones resume.
/// </summary>
public static class AdineExperiment
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "adine";

    /// <summary>The networks compared (model zoo names).</summary>
    public static IReadOnlyList<string> Networks { get; } = [ModelZoo.LeNetName, ModelZoo.MnistFcName];

    /// <summary>The arms.</summary>
    public static IReadOnlyList<string> Arms { get; } = ["sgd", "adine"];

    /// <summary>The learning rate of both arms: ADINE's default.</summary>
    public static double LearningRate => new AdineOptions().LearningRate;

    /// <summary>The baseline's momentum.</summary>
    public const double BaselineMomentum = 0.9;

    /// <summary>Minibatch size of both arms (ours; the networks' usual 128).</summary>
    public const int BatchSize = 128;

    /// <summary>Fashion-MNIST's training images.</summary>
    public const long TrainingImages = 60_000;

    /// <summary>Epochs of the paper budget (ours: the paper states no protocol).</summary>
    public const int PaperEpochs = 20;

    /// <summary>Epochs of the small budget.</summary>
    public const int SmallEpochs = 10;

    /// <summary>Training images of the small budget.</summary>
    public const long SmallTrainingImages = 15_000;

    /// <summary>Training images of a smoke run.</summary>
    public const long SmokeTrainingImages = 512;

    /// <summary>Epochs of a smoke run.</summary>
    public const int SmokeEpochs = 2;

    /// <summary>"Much faster" (ours): ADINE reaches SGD's final training loss in at most this fraction of SGD's epochs on every seed.</summary>
    public const double MuchFasterFraction = 2.0 / 3.0;

    /// <summary>Fraction of the paper budget's compute (images × epochs).</summary>
    public static double ComputeFraction(Budget budget) => budget switch
    {
        Budget.Paper => 1,
        Budget.Small => SmallTrainingImages / (double)TrainingImages * SmallEpochs / PaperEpochs,
        Budget.Smoke => SmokeTrainingImages / (double)TrainingImages * SmokeEpochs / PaperEpochs,
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => $"{PaperEpochs} epochs (ours: the paper states none), constant lr, all {TrainingImages:N0} training images",
        Budget.Small => string.Create(CultureInfo.InvariantCulture,
            $"{SmallEpochs} epochs, constant lr, the first {SmallTrainingImages:N0} training images: {ComputeFraction(Budget.Small):0.###} of the paper budget's compute"),
        Budget.Smoke => $"{SmokeEpochs} epochs on {SmokeTrainingImages} training images: for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>
    /// The run of <paramref name="arm"/> on <paramref name="network"/> for a seed. Both arms: Fashion-MNIST, batch 128,
    /// the network's default dropout, constant lr (ADINE's default 0.01), no weight decay, whole-training-set evaluation
    /// at every epoch end. SGD: heavy ball with momentum 0.9. ADINE: its defaults.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings, network or arm.</exception>
    public static RunConfig Config(AdineRunSettings s, string network, string arm, long seed)
    {
        s.Validate();
        if (!Networks.Contains(network)) throw new ArgumentException($"unknown network '{network}'");
        if (!Arms.Contains(arm)) throw new ArgumentException($"unknown ADINE arm '{arm}'; the arms are {string.Join(", ", Arms)}");
        var (epochs, images) = s.Budget switch
        {
            Budget.Paper => (PaperEpochs, (long?)null),
            Budget.Small => (SmallEpochs, SmallTrainingImages),
            Budget.Smoke => (SmokeEpochs, SmokeTrainingImages),
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
        return arm == "sgd"
            ? common.WithOptimizer(new SgdOptions { LearningRate = LearningRate, Momentum = BaselineMomentum })
            : common.WithOptimizer(new AdineOptions());
    }

    /// <summary>RUNS/adine-BUDGET/NET/ARM/seed-K.</summary>
    public static string RunFolder(AdineRunSettings s, string network, string arm, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", network, arm, $"seed-{seed}");

    /// <summary>Every run, seeds outermost.</summary>
    public static IReadOnlyList<AdinePlannedRun> Plan(AdineRunSettings s)
    {
        s.Validate();
        var runs = new List<AdinePlannedRun>();
        for (var k = 0; k < s.Seeds; k++)
        {
            var seed = s.FirstSeed + k;
            foreach (var network in s.Networks)
                foreach (var arm in Arms)
                {
                    var config = Config(s, network, arm, seed);
                    RunSetup.Validate(config);
                    runs.Add(new AdinePlannedRun(network, arm, seed, config, RunFolder(s, network, arm, seed)));
                }
        }
        return runs;
    }

    /// <summary>
    /// The first epoch (1-based) whose whole-training-set loss is at or below <paramref name="target"/>; null when no
    /// epoch reaches it (or no epoch has the measure).
    /// </summary>
    public static int? EpochsToReach(IReadOnlyList<EpochMetrics> history, double target)
    {
        ArgumentNullException.ThrowIfNull(history);
        for (var e = 0; e < history.Count; e++)
            if (history[e].TrainEvalLoss is double loss && loss <= target) return history[e].Epoch;
        return null;
    }

    /// <summary>The mean over epochs of ADINE's fraction of steps taken at m_low (its diagnostics), null when not recorded.</summary>
    public static double? LowMomentumFraction(IReadOnlyList<EpochMetrics> history)
    {
        var values = history.Select(m => m.Extra is { } extra && extra.TryGetValue("adine_low_fraction", out var v) ? AsDouble(v) : null)
            .Where(v => v is not null).Select(v => v!.Value).ToList();
        return values.Count == 0 ? null : values.Average();
    }

    static double? AsDouble(object value) => value switch
    {
        double d => d,
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
        _ => null,
    };

    /// <summary>
    /// Looks at every run folder first (a folder holding another run is an error before anything trains), trains what
    /// is missing (unless <see cref="ReproductionSettings.ReportOnly"/>), and writes the report from every finished run.
    /// Cancelling saves the current run's checkpoint and still writes the report of what has finished.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings.</exception>
    public static AdineOutcome Run(AdineRunSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
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
        var files = AdineReport.Write(s, results, message => progress?.Report(new ExperimentWarning(message)));
        return new AdineOutcome(s, results, interrupted, files);
    }
}
