using System.Globalization;
using WideValley.Landscape;
using WideValley.Landscape.Flatness;
using WideValley.Models;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>What <c>widevalley reproduce flat-minima</c> runs: networks, arms, trials, seeds, data, folders.</summary>
public sealed record FlatMinimaSettings : ReproductionSettings
{
    /// <summary>The networks (names of <see cref="FlatMinimaDesign.Networks"/>), in any order; the report keeps the design's order.</summary>
    public IReadOnlyList<string> Networks { get; init; } = FlatMinimaDesign.Networks.Select(n => n.Name).ToList();

    /// <summary>The arms (keys of <see cref="FlatMinimaDesign.Arms"/>).</summary>
    public IReadOnlyList<string> Arms { get; init; } = FlatMinimaDesign.Arms.Select(a => a.Key).ToList();

    /// <summary>Search trials per arm, the same for every arm (1 to <see cref="FlatMinimaDesign.GridSize"/>).</summary>
    public int SearchTrials { get; init; } = FlatMinimaDesign.GridSize;

    /// <summary>The CIFAR-10 binary folder (All-CNN-BN is skipped without it).</summary>
    public string? Cifar10Dir { get; init; }

    /// <summary>A UTF-8 text file for the char-LSTM (skipped without it).</summary>
    public string? Corpus { get; init; }

    /// <summary>The data as the design takes it.</summary>
    public FlatMinimaData Data => new() { FashionMnistDir = FashionMnistDir, Cifar10Dir = Cifar10Dir, Corpus = Corpus };

    /// <summary>The networks asked for, in the design's order.</summary>
    public IReadOnlyList<FlatMinimaNetwork> NetworkList => FlatMinimaDesign.Networks.Where(n => Networks.Contains(n.Name)).ToList();

    /// <summary>The arms asked for, in the design's order.</summary>
    public IReadOnlyList<FlatMinimaArm> ArmList => FlatMinimaDesign.Arms.Where(a => Arms.Contains(a.Key)).ToList();

    /// <summary>The arms asked for that apply to none of the networks asked for (reported as not applicable, with a warning).</summary>
    public IReadOnlyList<FlatMinimaArm> ArmsApplyingNowhere => ArmList.Where(a => !NetworkList.Any(n => FlatMinimaDesign.Applies(a, n))).ToList();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value with its command-line option.</summary>
    public void Validate()
    {
        ValidateShared();
        ValidateSubset(Networks, FlatMinimaDesign.Networks.Select(n => n.Name).ToList(), "--networks");
        ValidateSubset(Arms, FlatMinimaDesign.Arms.Select(a => a.Key).ToList(), "--arms", "arm");
        // An arm that applies to none of the networks asked for is reported as not applicable; asking for nothing that
        // can run at all (e.g. --networks lenet --arms dante) is an error.
        if (NetworkList.Count > 0 && ArmList.Count > 0 && !NetworkList.Any(n => ArmList.Any(a => FlatMinimaDesign.Applies(a, n))))
            throw new ArgumentException(
                $"--arms {string.Join(",", Arms)} with --networks {string.Join(",", Networks)}: nothing to run; " +
                string.Join("; ", ArmList.Select(a => $"{a.Key} is defined for {a.DefinedFor} and runs only on {a.OnlyOn}")) +
                $" (add {string.Join(",", ArmList.Select(a => a.OnlyOn).Distinct())} to --networks, or ask for other arms)");
        if (SearchTrials < 1 || SearchTrials > FlatMinimaDesign.GridSize)
            throw new ArgumentException($"--search-trials must be between 1 and {FlatMinimaDesign.GridSize} (the size of every arm's grid), got {SearchTrials}");
    }
}

/// <summary>One search trial: a candidate of an arm's grid on a network, trained on the search split.</summary>
/// <param name="Network">The network.</param>
/// <param name="Arm">The arm.</param>
/// <param name="Index">The candidate's place in the grid (0-based).</param>
/// <param name="Candidate">The candidate.</param>
/// <param name="Config">The trial's run.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record FlatMinimaTrial(FlatMinimaNetwork Network, FlatMinimaArm Arm, int Index, FlatMinimaCandidate Candidate, RunConfig Config, string Folder)
{
    /// <summary>The trial's name in progress reports.</summary>
    public string Label => $"{Network.Name}/search/{Arm.Key}/trial-{Index + 1}";
}

/// <summary>A finished (or pending) search trial with the number it is judged by.</summary>
/// <param name="Trial">The trial.</param>
/// <param name="Result">The finished run, null while pending.</param>
public sealed record FlatMinimaTrialResult(FlatMinimaTrial Trial, FinishedRun? Result)
{
    /// <summary>
    /// The final validation error (%) (perplexity for the language model); +infinity for a diverged trial (never chosen
    /// over one that finished); null while pending.
    /// </summary>
    public double? ValidationScore => Result is null ? null
        : Result.Diverged ? double.PositiveInfinity
        : Trial.Network.IsLanguageModel ? Result.Final?.ValPerplexity ?? double.PositiveInfinity
        : Result.Final?.ValError ?? double.PositiveInfinity;
}

/// <summary>One final run: the chosen candidate at a seed.</summary>
/// <param name="Network">The network.</param>
/// <param name="Arm">The arm.</param>
/// <param name="Chosen">The index of the chosen candidate.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The run.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record FlatMinimaRun(FlatMinimaNetwork Network, FlatMinimaArm Arm, int Chosen, long Seed, RunConfig Config, string Folder)
{
    /// <summary>The run's name in progress reports and in the flatness store.</summary>
    public string Label => $"{Network.Name}/{Arm.Key}/seed-{Seed}";
}

/// <summary>The flatness measures of a final model (<see cref="FlatnessRunner"/> at the quick budget).</summary>
/// <param name="Values">Measure value name (lambda_max, hessian_trace, ...) to value, for the report's columns.</param>
/// <param name="Data">The evaluation set in words.</param>
public sealed record FlatMinimaFlatness(IReadOnlyDictionary<string, double> Values, string Data);

/// <summary>A final run's result.</summary>
/// <param name="Run">The run.</param>
/// <param name="Result">The finished run, null while pending.</param>
/// <param name="Flatness">Its flatness measures, null when not (yet) measured or not measurable (the language model).</param>
public sealed record FlatMinimaRunResult(FlatMinimaRun Run, FinishedRun? Result, FlatMinimaFlatness? Flatness)
{
    /// <summary>The final test error (%) or perplexity; null while pending or when diverged.</summary>
    public double? TestScore => Result is null or { Diverged: true } ? null
        : Run.Network.IsLanguageModel ? Result.Final?.TestPerplexity : Result.Final?.TestError;

    /// <summary>Gradient evaluations per training sample the run cost (counted ones times <see cref="FlatMinimaDesign.CostPerCountedGradient"/>).</summary>
    public double? CostEffectiveEpochs => Result is null ? null : Result.EffectiveEpochs * FlatMinimaDesign.CostPerCountedGradient(Run.Config);
}

/// <summary>One network's part of the benchmark.</summary>
/// <param name="Network">The network.</param>
/// <param name="SkipReason">Why it did not run (null: it did).</param>
/// <param name="Trials">Every search trial.</param>
/// <param name="Runs">The final runs of the arms whose search has finished.</param>
/// <param name="ArmsAwaitingSearch">Arms whose search is not finished (no final runs yet).</param>
public sealed record FlatMinimaNetworkResult(FlatMinimaNetwork Network, string? SkipReason, IReadOnlyList<FlatMinimaTrialResult> Trials,
    IReadOnlyList<FlatMinimaRunResult> Runs, IReadOnlyList<FlatMinimaArm> ArmsAwaitingSearch);

/// <summary>What the benchmark did: whether it was interrupted, its results and the report's files.</summary>
public sealed record FlatMinimaOutcome(FlatMinimaSettings Settings, IReadOnlyList<FlatMinimaNetworkResult> Networks, bool Interrupted, IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// <c>widevalley reproduce flat-minima</c> as a library service: for each network, a search of every arm's grid on a
/// validation split (the same number of trials per arm), the chosen candidate trained at several seeds at equal cost,
/// each final model's flatness measured, then the report (<see cref="FlatMinimaReport"/>). Every run lives in its own
/// resumable folder under the runs folder; a finished run is never trained again, and a stored flatness measurement is
/// never taken again.
/// </summary>
public static class FlatMinimaExperiment
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The flatness measures taken of every final model (the flatness report's, at its quick budget).</summary>
    public static IReadOnlyList<string> FlatnessMeasureNames { get; } =
        ["loss", "hessian-extremes", "hessian-trace", "epsilon-sharpness", "pac-bayes-sigma", "local-entropy"];

    /// <summary>The flatness budget.</summary>
    public static FlatnessBudget FlatnessBudget => FlatnessBudget.Quick;

    /// <summary>Seed of the flatness measures' random directions and probes, the same for every model.</summary>
    public const long FlatnessSeed = 0;

    /// <summary>RUNS/flat-minima-SEARCHBUDGET-search/NETWORK/ARM/trial-K: the small budget's search serves the paper budget too.</summary>
    public static string TrialFolder(FlatMinimaSettings s, FlatMinimaNetwork network, FlatMinimaArm arm, int index) =>
        Path.Combine(s.RunsRoot, $"{FlatMinimaDesign.Name}-{Budgets.Name(FlatMinimaDesign.SearchBudget(s.Budget))}-search", network.Name, arm.Key, $"trial-{index + 1}");

    /// <summary>RUNS/flat-minima-BUDGET/NETWORK/ARM/trial-K/seed-N: keyed by the chosen candidate, so a different choice never meets another's runs.</summary>
    public static string RunFolder(FlatMinimaSettings s, FlatMinimaNetwork network, FlatMinimaArm arm, int chosen, long seed) =>
        Path.Combine(s.RunsRoot, $"{FlatMinimaDesign.Name}-{Budgets.Name(s.Budget)}", network.Name, arm.Key, $"trial-{chosen + 1}", $"seed-{seed}");

    /// <summary>RUNS/flat-minima-BUDGET/NETWORK/flatness: the flatness runner's store (its .flatness folder) for the network's final models.</summary>
    public static string FlatnessFolder(FlatMinimaSettings s, FlatMinimaNetwork network) =>
        Path.Combine(s.RunsRoot, $"{FlatMinimaDesign.Name}-{Budgets.Name(s.Budget)}", network.Name, "flatness");

    /// <summary>
    /// Every search trial of the networks that can run, trial index outermost (a partial search has every arm's first
    /// trials); an arm not applicable to a network (DANTE off the one-hidden-layer network) has none there.
    /// </summary>
    public static IReadOnlyList<FlatMinimaTrial> PlanSearch(FlatMinimaSettings s)
    {
        s.Validate();
        var trials = new List<FlatMinimaTrial>();
        foreach (var network in s.NetworkList.Where(n => FlatMinimaDesign.SkipReason(n, s.Data) is null))
            for (var k = 0; k < s.SearchTrials; k++)
                foreach (var arm in s.ArmList.Where(a => FlatMinimaDesign.Applies(a, network)))
                {
                    var candidate = FlatMinimaDesign.Grid(arm, network)[k];
                    var config = FlatMinimaDesign.SearchConfig(network, candidate, s.Budget, s.Data, s.Threads, s.Device);
                    RunSetup.Validate(config);
                    trials.Add(new FlatMinimaTrial(network, arm, k, candidate, config, TrialFolder(s, network, arm, k)));
                }
        return trials;
    }

    /// <summary>
    /// The chosen candidate of each arm: the trial with the lowest final validation error (perplexity), the first in grid
    /// order on a tie; null while a trial is pending. A diverged trial scores +infinity.
    /// </summary>
    public static int? Choose(IReadOnlyList<FlatMinimaTrialResult> armTrials)
    {
        if (armTrials.Count == 0 || armTrials.Any(t => t.ValidationScore is null)) return null;
        var best = armTrials.OrderBy(t => t.ValidationScore!.Value).ThenBy(t => t.Trial.Index).First();
        return best.Trial.Index;
    }

    /// <summary>The final runs of an arm whose search chose <paramref name="chosen"/>, seeds in order.</summary>
    public static IReadOnlyList<FlatMinimaRun> PlanFinal(FlatMinimaSettings s, FlatMinimaNetwork network, FlatMinimaArm arm, int chosen)
    {
        var candidate = FlatMinimaDesign.Grid(arm, network)[chosen];
        return s.SeedValues.Select(seed =>
        {
            var config = FlatMinimaDesign.FinalConfig(network, candidate, s.Budget, seed, s.Data, s.Threads, s.Device);
            RunSetup.Validate(config);
            return new FlatMinimaRun(network, arm, chosen, seed, config, RunFolder(s, network, arm, chosen, seed));
        }).ToList();
    }

    /// <summary>
    /// Runs the benchmark: checks every search folder first (one holding another run is an error before anything
    /// trains), trains the missing trials, chooses, trains the missing final runs, measures the flatness of every final
    /// model not yet measured (unless <see cref="ReproductionSettings.ReportOnly"/>), and writes the report. Cancelling
    /// keeps what has finished and still writes the report; the same call continues later.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings.</exception>
    public static FlatMinimaOutcome Run(FlatMinimaSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var trials = PlanSearch(s);
        foreach (var arm in s.ArmsApplyingNowhere)
            progress?.Report(new ExperimentWarning($"{arm.Title} is defined for {arm.DefinedFor} and runs only on {arm.OnlyOn}, which is not among --networks: not applicable here"));
        var states = trials.ToDictionary(t => t, t => RunFolders.Inspect(t.Folder, t.Config));
        var todo = trials.Where(t => states[t] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        progress?.Report(new ComparisonPlanned($"{FlatMinimaDesign.Name} search", trials.Count, trials.Count - todo.Count, todo.Count, s.ReportOnly));
        var interrupted = false;
        if (!s.ReportOnly)
        {
            for (var i = 0; i < todo.Count && !interrupted; i++)
            {
                if (cancellation.IsCancellationRequested) { interrupted = true; break; }
                var t = todo[i];
                var result = RunTraining.Train(t.Config, t.Folder, t.Label, new RunPosition(i + 1, todo.Count), progress, cancellation);
                interrupted = result?.Status == TrainingStatus.Interrupted;
            }
        }

        var trialResults = trials.Select(t => new FlatMinimaTrialResult(t, ReadFinished(t.Folder, t.Config))).ToList();
        var finals = new List<FlatMinimaRun>();
        foreach (var network in s.NetworkList.Where(n => FlatMinimaDesign.SkipReason(n, s.Data) is null))
            foreach (var arm in s.ArmList.Where(a => FlatMinimaDesign.Applies(a, network)))
                if (Choose(trialResults.Where(t => t.Trial.Network == network && t.Trial.Arm == arm).ToList()) is int chosen)
                    finals.AddRange(PlanFinal(s, network, arm, chosen));
        // Seeds outermost: a partial benchmark has every arm at the first seeds.
        finals = finals.OrderBy(r => r.Seed).ThenBy(r => s.NetworkList.ToList().IndexOf(r.Network)).ToList();
        var finalStates = finals.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Config));
        var finalTodo = finals.Where(r => finalStates[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        progress?.Report(new ComparisonPlanned($"{FlatMinimaDesign.Name} final runs", finals.Count, finals.Count - finalTodo.Count, finalTodo.Count, s.ReportOnly));
        if (!s.ReportOnly && !interrupted)
        {
            for (var i = 0; i < finalTodo.Count && !interrupted; i++)
            {
                if (cancellation.IsCancellationRequested) { interrupted = true; break; }
                var r = finalTodo[i];
                var result = RunTraining.Train(r.Config, r.Folder, r.Label, new RunPosition(i + 1, finalTodo.Count), progress, cancellation);
                interrupted = result?.Status == TrainingStatus.Interrupted;
            }
        }

        var runResults = new List<FlatMinimaRunResult>();
        foreach (var r in finals)
        {
            var finished = ReadFinished(r.Folder, r.Config);
            FlatMinimaFlatness? flatness = null;
            if (finished is { Diverged: false } && !r.Network.IsLanguageModel)
            {
                if (!s.ReportOnly && !interrupted)
                {
                    try
                    {
                        flatness = MeasureFlatness(s, r, progress, cancellation, storedOnly: false);
                    }
                    catch (OperationCanceledException)
                    {
                        interrupted = true;
                    }
                }
                else flatness = MeasureFlatness(s, r, progress, cancellation, storedOnly: true);
            }
            runResults.Add(new FlatMinimaRunResult(r, finished, flatness));
        }

        var networks = s.NetworkList.Select(n =>
        {
            var skip = FlatMinimaDesign.SkipReason(n, s.Data);
            var mine = trialResults.Where(t => t.Trial.Network == n).ToList();
            var awaiting = skip is not null ? [] : s.ArmList.Where(a => FlatMinimaDesign.Applies(a, n) && Choose(mine.Where(t => t.Trial.Arm == a).ToList()) is null).ToList();
            return new FlatMinimaNetworkResult(n, skip, mine, runResults.Where(r => r.Run.Network == n).ToList(), awaiting);
        }).ToList();
        var files = FlatMinimaReport.Write(s, networks, message => progress?.Report(new ExperimentWarning(message)));
        return new FlatMinimaOutcome(s, networks, interrupted, files);
    }

    static FinishedRun? ReadFinished(string folder, RunConfig config) =>
        RunFolders.Inspect(folder, config) is RunFolderState.Finished or RunFolderState.Diverged ? RunFolders.Read(folder) : null;

    /// <summary>
    /// The flatness measures of a final run's model, through <see cref="FlatnessRunner"/> at the quick budget on the
    /// first <see cref="FlatMinimaScale.FlatnessSamples"/> training images and as many test images; stored under the
    /// network's flatness folder and read back from there when measured before. With <paramref name="storedOnly"/>,
    /// only what is stored is read (null when a measure is missing).
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled between measurements (the finished ones are kept).</exception>
    public static FlatMinimaFlatness? MeasureFlatness(FlatMinimaSettings s, FlatMinimaRun run, IProgress<ExperimentEvent>? progress = null,
        CancellationToken cancellation = default, bool storedOnly = false)
    {
        var scale = FlatMinimaDesign.Scale(run.Network, s.Budget);
        var (checkpoint, meta, stored, notice) = MeasurableRun.ReadRun(run.Folder);
        if (notice is not null) progress?.Report(new ExperimentWarning($"{run.Label}: {notice}"));
        var config = stored with { Threads = s.Threads, TensorBoard = false, DataDir = run.Config.DataDir };
        var samples = (int)Math.Min(scale.FlatnessSamples, stored.MaxTrainSamples ?? long.MaxValue);
        using var measurable = MeasurableRun.Open(checkpoint, meta, config, samples, samples, 256);
        var test = ((ClassificationTask)measurable.Prepared.Task).Data.Test;
        var testCount = Math.Min(samples, test.Count);
        var model = new FlatnessModel
        {
            Name = run.Label,
            Source = Path.GetRelativePath(s.RunsRoot, run.Folder),
            Module = measurable.Model,
            Train = measurable.EvaluationSet,
            Test = MeasurableRun.Batches(test.Inputs, test.Labels, testCount, 256),
            Data = string.Create(C, $"the first {samples:N0} training images and the first {testCount:N0} test images"),
            Landscape = new LandscapeOptions { ModelFactory = ZooCopies.FactoryFor(measurable.Model) },
        };
        var settings = new FlatnessRunSettings
        {
            Budget = FlatnessBudget,
            Seed = FlatnessSeed,
            Measures = FlatnessMeasureNames.Select(FlatnessMeasures.Named).ToList(),
            Interpolations = false,
            OutDir = FlatnessFolder(s, run.Network),
            Cancellation = cancellation,
            Events = e => { if (e.Kind is FlatnessEventKind.MeasureFinished or FlatnessEventKind.MeasureReused) progress?.Report(new MeasurementLog(run.Label, e.Message)); },
        };
        if (storedOnly)
        {
            var values = new Dictionary<string, double>();
            foreach (var measure in settings.Measures)
            {
                var path = FlatnessRunner.StoredPath(settings.OutDir, model.Id, measure.Name);
                var key = FlatnessRunner.SettingsKey(measure, model, settings.Budget, settings.Seed);
                if (FlatnessRunner.TryReadStored(path, key, out _) is not { } result) return null;
                foreach (var v in result.Values) values[v.Name] = v.Value;
            }
            return new FlatMinimaFlatness(values, model.Data);
        }
        var results = FlatnessRunner.Run([model], settings);
        var measured = results.Models[0].Measurements.SelectMany(m => m.Result.Values).ToDictionary(v => v.Name, v => v.Value);
        return new FlatMinimaFlatness(measured, model.Data);
    }
}
