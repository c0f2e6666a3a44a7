using System.Globalization;
using WideValley.Landscape;
using WideValley.Landscape.Flatness;
using WideValley.Models;

namespace WideValley.Experiments.Flatness;

/// <summary>How `reproduce wide-valleys` runs: which Table 1 runs, where they live, which flatness budget and evaluation set, and what the report quotes.</summary>
public sealed record WideValleysSettings
{
    /// <summary>The Table 1 budget of the runs (smoke, small, paper); it also picks the default flatness budget and evaluation set.</summary>
    public required Budget Budget { get; init; }

    /// <summary>The networks: Table 1's mnistfc and LeNet rows, or a subset (see <see cref="WideValleys.ParseNetworks"/>).</summary>
    public IReadOnlyList<ComparisonRow> Networks { get; init; } = WideValleys.Networks;

    /// <summary>Runs per network and optimizer (at least 1; the verdicts want at least 2 per arm).</summary>
    public int Seeds { get; init; } = WideValleys.DefaultSeeds;

    /// <summary>The first run's seed; the others follow consecutively.</summary>
    public long FirstSeed { get; init; } = 1;

    /// <summary>Where the data are (as for `reproduce table1`).</summary>
    public required ExperimentData Data { get; init; }

    /// <summary>The flatness budget; null: <see cref="WideValleys.DefaultFlatnessBudget"/> of <see cref="Budget"/>.</summary>
    public FlatnessBudget? FlatnessBudget { get; init; }

    /// <summary>The evaluation set; null: <see cref="WideValleys.DefaultEvaluationSet"/> of <see cref="Budget"/>.</summary>
    public WideValleysEvaluationSet? EvaluationSet { get; init; }

    /// <summary>The measures (default all of <see cref="FlatnessMeasures.All"/>).</summary>
    public IReadOnlyList<IFlatnessMeasure> Measures { get; init; } = FlatnessMeasures.All;

    /// <summary>Seed of every probe and random direction, the same for every run (common random numbers across runs).</summary>
    public long FlatnessSeed { get; init; } = 1;

    /// <summary>libtorch threads (0: libtorch's default).</summary>
    public int Threads { get; init; }

    /// <summary>cpu, cuda or cuda:N (training; the measurements use the device each run was trained on).</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The folder of the run folders, as `reproduce table1 --runs` takes it.</summary>
    public required string RunsRoot { get; init; }

    /// <summary>The report's folder.</summary>
    public required string OutDir { get; init; }

    /// <summary>Train and measure nothing: report what has finished and been measured.</summary>
    public bool ReportOnly { get; init; }

    /// <summary>The command that reproduces the report, as the report quotes it.</summary>
    public required string CommandLine { get; init; }

    /// <summary>The machine in one line.</summary>
    public required string Machine { get; init; }
}

/// <summary>The samples every flatness measure is taken on.</summary>
/// <param name="TrainSamples">The first this many training samples of the run's own training set (in their stored order).</param>
/// <param name="TestSamples">The first this many test samples for the loss and error gap; null: the whole test set.</param>
public sealed record WideValleysEvaluationSet(int TrainSamples, int? TestSamples)
{
    /// <summary>One line for the report.</summary>
    public string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"the first {TrainSamples:N0} training samples of each run's own training set (in their stored order) and ") +
        (TestSamples is int t ? string.Create(CultureInfo.InvariantCulture, $"the first {t:N0} test samples") : "the whole test set");
}

/// <summary>What the runs folder held for one Table 1 run, and what its flatness measures gave.</summary>
/// <param name="Network">The Table 1 row (mnistfc, lenet).</param>
/// <param name="Optimizer">The arm's key (adam, entropy-sgd).</param>
/// <param name="OptimizerLabel">The arm's label.</param>
/// <param name="IsEntropy">Whether it is the Entropy-SGD arm.</param>
/// <param name="Seed">The training seed.</param>
/// <param name="Folder">The run folder, relative to the runs folder.</param>
/// <param name="Status">pending (not trained), diverged, not measured, measured.</param>
/// <param name="TestError">The run's final test error (%) over the whole test set, as Table 1 reports it (NaN when not finished).</param>
/// <param name="ModelId">The hash of the final weights that keys the stored measurements (null when not opened).</param>
/// <param name="Values">Every value the measures gave, with the measure that gave it (empty unless measured).</param>
/// <param name="MeasuredNow">Measures computed in this invocation.</param>
/// <param name="Reused">Measures read from the store.</param>
/// <param name="Note">Why a run is not measured, or a warning about it.</param>
public sealed record WideValleyRun(string Network, string Optimizer, string OptimizerLabel, bool IsEntropy, long Seed, string Folder, string Status,
    double TestError, string? ModelId, IReadOnlyList<WideValleyValue> Values, int MeasuredNow, int Reused, string? Note)
{
    /// <summary>Status of a finished run whose every measure is available.</summary>
    public const string Measured = "measured";

    /// <summary>The value named <paramref name="name"/>, if measured.</summary>
    public FlatnessValue? Value(string name) => Values.FirstOrDefault(v => v.Value.Name == name)?.Value;
}

/// <summary>One value of a measure on one run.</summary>
/// <param name="Measure">The measure's name.</param>
/// <param name="Rescaling">Whether the measure is invariant to ReLU rescaling.</param>
/// <param name="Value">The value.</param>
public sealed record WideValleyValue(string Measure, ReluRescaling Rescaling, FlatnessValue Value);

/// <summary>Both verdicts for one flatness value of one network.</summary>
/// <param name="Measure">The measure that reported it.</param>
/// <param name="Name">The value's key.</param>
/// <param name="Label">Its readable label.</param>
/// <param name="Flatter">Which way is flatter.</param>
/// <param name="Rescaling">Whether it is invariant to ReLU rescaling.</param>
/// <param name="Wider">Claim (a): is Entropy-SGD flatter.</param>
/// <param name="Correlation">Claim (b): does flatness go with lower test error across the runs.</param>
public sealed record WideValleysVerdict(string Measure, string Name, string Label, FlatterWhen Flatter, ReluRescaling Rescaling, WiderVerdict Wider, CorrelationVerdict Correlation);

/// <summary>One network's runs and verdicts.</summary>
/// <param name="Row">The Table 1 row.</param>
/// <param name="Dataset">Its dataset.</param>
/// <param name="Runs">Every planned run, Entropy-SGD's first, by seed.</param>
/// <param name="Verdicts">One per flatness value (a value with a flatter direction) that any run reported, in measure order.</param>
/// <param name="SeedsWanted">Seeds asked for per optimizer.</param>
/// <param name="Arms">The two arms' run settings (Entropy-SGD, Adam), for the report.</param>
public sealed record WideValleysNetwork(ComparisonRow Row, string Dataset, IReadOnlyList<WideValleyRun> Runs, IReadOnlyList<WideValleysVerdict> Verdicts,
    int SeedsWanted, IReadOnlyList<ExperimentArm> Arms)
{
    /// <summary>Measured runs per arm.</summary>
    public int MeasuredRuns(bool entropy) => Runs.Count(r => r.IsEntropy == entropy && r.Status == WideValleyRun.Measured);

    /// <summary>How many verdicts of claim (a) or (b) are <paramref name="verdict"/>.</summary>
    public int Count(bool wider, ClaimVerdict verdict) => Verdicts.Count(v => (wider ? v.Wider.Verdict : v.Correlation.Verdict) == verdict);
}

/// <summary>Everything the report states.</summary>
public sealed record WideValleysResults
{
    /// <summary>The Table 1 budget.</summary>
    public required Budget Budget { get; init; }

    /// <summary>The flatness budget used.</summary>
    public required FlatnessBudget FlatnessBudget { get; init; }

    /// <summary>The evaluation set.</summary>
    public required WideValleysEvaluationSet EvaluationSet { get; init; }

    /// <summary>The probes' seed.</summary>
    public long FlatnessSeed { get; init; }

    /// <summary>The networks.</summary>
    public required IReadOnlyList<WideValleysNetwork> Networks { get; init; }

    /// <summary>Data, threads and command.</summary>
    public required WideValleysSettings Settings { get; init; }

    /// <summary>Whether nothing was trained or measured by request.</summary>
    public bool ReportOnly => Settings.ReportOnly;
}

/// <summary>What an invocation did.</summary>
/// <param name="Interrupted">Cancelled while training or measuring; what finished is kept and the same request continues.</param>
/// <param name="Results">What the report shows.</param>
/// <param name="Files">The report's files, full paths.</param>
/// <param name="Planned">Table 1 runs needed.</param>
/// <param name="FinishedBefore">Of those, finished (or diverged) before this invocation.</param>
/// <param name="TrainedNow">Finished by this invocation.</param>
/// <param name="MeasuredNow">Flatness measures computed by this invocation (over all runs).</param>
/// <param name="Reused">Flatness measures read from the store.</param>
public sealed record WideValleysOutcome(bool Interrupted, WideValleysResults Results, IReadOnlyList<string> Files, int Planned, int FinishedBefore,
    int TrainedNow, int MeasuredNow, int Reused)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce wide-valleys`: the paper's central claim measured. Trains the Table 1 runs of mnistfc and LeNet that
/// are missing (Entropy-SGD against Adam, through <see cref="Table1.Comparison"/> and <see cref="ComparisonRunner"/>,
/// in the same run folders `reproduce table1 --runs` uses), measures every flatness measure on each finished run's
/// final weights in evaluation mode (<see cref="FlatnessRunner"/>, stored under RUNS/.wide-valleys-flatness so a rerun
/// measures nothing twice), and judges per measure (a) whether Entropy-SGD's minimum is flatter (Welch, 2 standard
/// errors) and (b) whether flatness goes with lower test error across the runs (Spearman, exact permutation p &lt; 0.05).
/// </summary>
public static class WideValleys
{
    /// <summary>The report's name.</summary>
    public const string Name = "wide-valleys";

    /// <summary>The runs per optimizer the issue asks for.</summary>
    public const int DefaultSeeds = 3;

    /// <summary>The folder under the runs folder that holds the stored flatness measurements (FlatnessRunner's OUT).</summary>
    public const string FlatnessFolder = ".wide-valleys-flatness";

    /// <summary>The folder under the runs folder where the Table 1 runner writes its own report of the runs used.</summary>
    public const string Table1ReportFolder = ".wide-valleys-table1";

    /// <summary>Batch size of the measurements' forward and backward passes.</summary>
    public const int BatchSize = 500;

    /// <summary>The Table 1 rows this experiment measures (the image classifiers the flatness measures take).</summary>
    public static IReadOnlyList<ComparisonRow> Networks { get; } = [Table1.Row("mnistfc"), Table1.Row("lenet")];

    /// <summary>Parses --networks: a comma-separated subset of mnistfc, lenet, in Table 1's order.</summary>
    /// <exception cref="ArgumentException">Empty, unknown (including Table 1's other rows) or repeated names.</exception>
    public static IReadOnlyList<ComparisonRow> ParseNetworks(string text) =>
        NameLists.Parse(text, Networks, r => r.Name,
            name => Networks.FirstOrDefault(r => r.Name == name)
                    ?? throw new ArgumentException($"--networks: unknown network '{name}'; wide-valleys measures Table 1's {string.Join(" and ", Networks.Select(r => r.Name))}"),
            "--networks", $"--networks must name at least one of {string.Join(", ", Networks.Select(r => r.Name))}");

    /// <summary>The flatness budget of a Table 1 budget: quick for smoke and small, standard for paper.</summary>
    public static FlatnessBudget DefaultFlatnessBudget(Budget budget) => budget switch
    {
        Budget.Smoke or Budget.Small => FlatnessBudget.Quick,
        Budget.Paper => FlatnessBudget.Standard,
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>The evaluation set of a Table 1 budget: smoke 64 training and 256 test samples; small and paper 1,000 training samples and the whole test set.</summary>
    public static WideValleysEvaluationSet DefaultEvaluationSet(Budget budget) => budget switch
    {
        Budget.Smoke => new(64, 256),
        Budget.Small or Budget.Paper => new(1000, null),
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>The report's file stem: wide-valleys[-BUDGET].</summary>
    public static string Stem(Budget budget) => Budgets.ReportStem(Name, budget);

    /// <summary>The Table 1 comparison whose runs this experiment uses (its report goes under RUNS/<see cref="Table1ReportFolder"/>).</summary>
    public static ComparisonRequest Table1Request(WideValleysSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return Table1.Comparison(s.Networks, new ComparisonRunSettings
        {
            Budget = s.Budget, Seeds = s.Seeds, FirstSeed = s.FirstSeed, Data = s.Data, Threads = s.Threads, Device = s.Device,
            RunsRoot = s.RunsRoot, OutDir = Path.Combine(s.RunsRoot, Table1ReportFolder), ReportOnly = s.ReportOnly,
            CommandLine = $"widevalley reproduce table1 --rows {string.Join(",", s.Networks.Select(r => r.Name))} --seeds {s.Seeds} --budget {Budgets.Name(s.Budget)}" +
                          (s.FirstSeed != 1 ? $" --first-seed {s.FirstSeed}" : "") + (s.Data.MnistDir is null ? "" : " --mnist-dir MNIST_DIR"),
            Machine = s.Machine,
        });
    }

    /// <summary>Checks the settings before anything is read: seeds, networks, the flatness budget, the evaluation set, the report folder.</summary>
    /// <exception cref="ArgumentException">A setting out of range (the message names it).</exception>
    /// <exception cref="IOException">The report folder cannot be written.</exception>
    public static ComparisonPlan Plan(WideValleysSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (s.Seeds < 1) throw new ArgumentException($"--seeds must be at least 1, got {s.Seeds}");
        if (s.Networks.Count == 0) throw new ArgumentException("name at least one network (mnistfc, lenet)");
        foreach (var row in s.Networks)
            if (!Networks.Contains(row)) throw new ArgumentException($"--networks: {row.Name} is not one of {string.Join(", ", Networks.Select(r => r.Name))}");
        if (s.Measures.Count == 0) throw new ArgumentException("give at least one flatness measure");
        (s.FlatnessBudget ?? DefaultFlatnessBudget(s.Budget)).Validate();
        var eval = s.EvaluationSet ?? DefaultEvaluationSet(s.Budget);
        if (eval.TrainSamples < 1) throw new ArgumentException($"the evaluation set needs at least 1 training sample, got {eval.TrainSamples}");
        if (eval.TestSamples is < 1) throw new ArgumentException($"the evaluation set needs at least 1 test sample, got {eval.TestSamples}");
        if (File.Exists(s.RunsRoot)) throw new ArgumentException($"--runs {s.RunsRoot} is a file; name a folder");
        ReportFolders.CheckWritable(s.OutDir, Stem(s.Budget));
        return ComparisonRunner.Plan(Table1Request(s));
    }

    /// <summary>
    /// Trains what is missing (unless <see cref="WideValleysSettings.ReportOnly"/>), measures what is not stored, and
    /// writes the report. Cancelling stops after the current training step (saving a checkpoint) or between
    /// measurements (keeping the finished ones) and still writes a report of what is done.
    /// </summary>
    /// <exception cref="InvalidDataException">A run folder holds a run with other settings, or unreadable files.</exception>
    public static WideValleysOutcome Run(WideValleysSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(s);
        var plan = Plan(s);
        var flatnessBudget = s.FlatnessBudget ?? DefaultFlatnessBudget(s.Budget);
        var eval = s.EvaluationSet ?? DefaultEvaluationSet(s.Budget);
        bool Done(PlannedRun r) => RunFolders.Inspect(r.Folder, r.Arm.Config) is RunFolderState.Finished or RunFolderState.Diverged;
        var finishedBefore = plan.Runs.Count(Done);

        // (1) Table 1's own runner trains the missing runs in Table 1's run folders (and, with ReportOnly, trains nothing).
        var table1 = ComparisonRunner.Run(plan, progress, cancellation);
        var interrupted = table1.Interrupted;
        var trainedNow = plan.Runs.Count(Done) - finishedBefore;

        // (2) The flatness measures on each finished run's final weights.
        TorchRuntime.SetThreads(s.Threads);
        var storeDir = Path.Combine(s.RunsRoot, FlatnessFolder);
        var networks = new List<WideValleysNetwork>();
        int measuredNow = 0, reused = 0;
        foreach (var rowResult in table1.Report.Rows)
        {
            var row = rowResult.Row;
            var runs = new List<WideValleyRun>();
            foreach (var armResult in new[] { rowResult.Entropy!, rowResult.Baseline! })
                foreach (var planned in plan.Runs.Where(r => r.Row == row && r.Arm.Key == armResult.Key).OrderBy(r => r.Seed))
                {
                    var relative = Path.GetRelativePath(s.RunsRoot, planned.Folder);
                    var finished = armResult.Runs.FirstOrDefault(f => Path.GetFullPath(f.Folder) == Path.GetFullPath(planned.Folder));
                    WideValleyRun Make(string status, double error, string? id = null, IReadOnlyList<WideValleyValue>? values = null, int now = 0, int old = 0, string? note = null) =>
                        new(row.Name, armResult.Key, armResult.Label, armResult.IsEntropy, planned.Seed, relative, status, error, id, values ?? [], now, old, note);
                    if (finished is null)
                    {
                        runs.Add(Make("pending", double.NaN, note: "not trained yet"));
                        continue;
                    }
                    var error = ComparisonReport.TestMetric(row, finished.Final) ?? double.NaN;
                    if (finished.Diverged)
                    {
                        runs.Add(Make("diverged", error, note: "training diverged; no minimum to measure"));
                        continue;
                    }
                    if (interrupted)
                    {
                        runs.Add(Make("not measured", error, note: "interrupted before this run was measured"));
                        continue;
                    }
                    try
                    {
                        var m = Measure(planned, relative, s, flatnessBudget, eval, storeDir, progress, cancellation);
                        measuredNow += m.MeasuredNow;
                        reused += m.Reused;
                        runs.Add(Make(m.Values is null ? "not measured" : WideValleyRun.Measured, error, m.Id, m.Values, m.MeasuredNow, m.Reused, m.Note));
                    }
                    catch (OperationCanceledException)
                    {
                        interrupted = true;
                        runs.Add(Make("not measured", error, note: "interrupted while it was measured; the finished measures are stored"));
                    }
                }
            networks.Add(new WideValleysNetwork(row, rowResult.Dataset, runs, Verdicts(runs), s.Seeds, Arms(plan, row)));
        }

        // (3) The report.
        var results = new WideValleysResults
        {
            Budget = s.Budget, FlatnessBudget = flatnessBudget, EvaluationSet = eval, FlatnessSeed = s.FlatnessSeed, Networks = networks, Settings = s,
        };
        var files = WideValleysReport.Write(s.OutDir, results, message => progress?.Report(new ExperimentWarning(message)));
        return new WideValleysOutcome(interrupted, results, files, plan.Runs.Count, finishedBefore, trainedNow, measuredNow, reused);
    }

    /// <summary>The Entropy-SGD and Adam arms of a row (seed 1's configurations; only the seed differs between seeds).</summary>
    static List<ExperimentArm> Arms(ComparisonPlan plan, ComparisonRow row)
    {
        var first = plan.Runs.Where(r => r.Row == row).ToList();
        return [first.First(r => r.Arm.IsEntropy).Arm, first.First(r => !r.Arm.IsEntropy).Arm];
    }

    sealed record Measurement(string? Id, IReadOnlyList<WideValleyValue>? Values, int MeasuredNow, int Reused, string? Note);

    /// <summary>
    /// Opens the run folder as `widevalley flatness RUN` does (<see cref="ModelSource.Open"/>: the run rebuilds its
    /// network and data, loads the final weights), takes the evaluation set, and reads every measure from the store
    /// or (unless report-only) measures it.
    /// </summary>
    static Measurement Measure(PlannedRun run, string relative, WideValleysSettings s, FlatnessBudget budget, WideValleysEvaluationSet eval, string storeDir,
        IProgress<ExperimentEvent>? progress, CancellationToken cancellation)
    {
        using var loaded = ModelSource.Open(run.Folder, new ModelSourceOptions { Format = ModelFormat.Run });
        if (loaded.Notice is { } notice) progress?.Report(new ExperimentWarning($"{run.Label}: {notice}"));
        var data = loaded.RunData ?? throw new InvalidDataException($"{relative}: the run holds no classification data");
        var trainCount = Math.Min(eval.TrainSamples, data.Train.Count);
        var testCount = Math.Min(eval.TestSamples ?? data.Test.Count, data.Test.Count);
        var model = new FlatnessModel
        {
            Name = run.Label,
            Source = relative,
            Module = loaded.Module,
            Train = MeasurableRun.Batches(data.Train.Inputs, data.Train.Labels, trainCount, BatchSize),
            Test = MeasurableRun.Batches(data.Test.Inputs, data.Test.Labels, testCount, BatchSize),
            Data = string.Create(CultureInfo.InvariantCulture, $"{trainCount:N0} training and {testCount:N0} test samples of the run's own data"),
            Landscape = new LandscapeOptions { BatchNorm = BatchNormMode.RunningStatistics, Dropout = DropoutMode.Off },
        };
        var id = model.Id;
        var stored = new List<WideValleyValue>();
        var missing = new List<IFlatnessMeasure>();
        foreach (var measure in s.Measures)
        {
            var result = FlatnessRunner.TryReadStored(FlatnessRunner.StoredPath(storeDir, id, measure.Name),
                FlatnessRunner.SettingsKey(measure, model, budget, s.FlatnessSeed), out _);
            if (result is null) missing.Add(measure);
            else stored.AddRange(result.Values.Select(v => new WideValleyValue(measure.Name, measure.Rescaling, v)));
        }
        if (missing.Count == 0)
        {
            progress?.Report(new MeasurementLog(run.Label, $"{run.Label}: all {s.Measures.Count} flatness measures already stored, reused"));
            return new Measurement(id, Ordered(stored, s.Measures), 0, s.Measures.Count, null);
        }
        if (s.ReportOnly)
            return new Measurement(id, null, 0, 0, $"--report-only: {missing.Count} of {s.Measures.Count} measures not stored ({string.Join(", ", missing.Select(m => m.Name))})");

        var settings = new FlatnessRunSettings
        {
            Budget = budget, Seed = s.FlatnessSeed, Measures = s.Measures, Interpolations = false, OutDir = storeDir, Cancellation = cancellation,
            Events = e => progress?.Report(new MeasurementLog(run.Label, e.Message)),
            Progress = progress is null ? null : new Forward(p => progress.Report(new MeasurementProgressed(run.Label, p))),
        };
        progress?.Report(new MeasurementStarted(run.Label, $"flatness, budget {budget.Name}", Path.Combine(storeDir, FlatnessRunner.StoreFolder, id)));
        var estimates = FlatnessRunner.Estimate([model], settings);
        progress?.Report(new MeasurementLog(run.Label,
            $"{run.Label}: {estimates[0].Measures.Count(m => !m.Stored)} measures to do on {model.Data}, about {FlatnessRunner.Say(estimates[0].SecondsToSpend)}"));
        var results = FlatnessRunner.Run([model], settings, estimates);
        var items = results.Models[0].Measurements;
        var values = items.SelectMany(i => i.Result.Values.Select(v => new WideValleyValue(i.Measure, i.Rescaling, v))).ToList();
        return new Measurement(id, values, items.Count(i => !i.Reused), items.Count(i => i.Reused), null);
    }

    static List<WideValleyValue> Ordered(List<WideValleyValue> values, IReadOnlyList<IFlatnessMeasure> measures) =>
        values.OrderBy(v => measures.Select((m, i) => (m, i)).First(x => x.m.Name == v.Measure).i).ToList();

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool and reorder the reports).</summary>
    sealed class Forward(Action<CurvatureProgress> report) : IProgress<CurvatureProgress>
    {
        public void Report(CurvatureProgress value) => report(value);
    }

    /// <summary>Both verdicts for every flatness value any measured run of a network reported.</summary>
    public static IReadOnlyList<WideValleysVerdict> Verdicts(IReadOnlyList<WideValleyRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var measured = runs.Where(r => r.Status == WideValleyRun.Measured).ToList();
        var verdicts = new List<WideValleysVerdict>();
        var seen = new HashSet<string>();
        foreach (var value in measured.SelectMany(r => r.Values))
        {
            if (value.Value.Flatter == FlatterWhen.NotJudged || !seen.Add(value.Value.Name)) continue;
            var name = value.Value.Name;
            double Of(WideValleyRun r) => r.Value(name)?.Value ?? double.NaN;
            var wider = WideValleysStatistics.Wider(measured.Where(r => r.IsEntropy).Select(Of), measured.Where(r => !r.IsEntropy).Select(Of), value.Value.Flatter);
            var correlation = WideValleysStatistics.WidthAndError(measured.Select(r => (Of(r), r.TestError)).ToList(), value.Value.Flatter);
            verdicts.Add(new WideValleysVerdict(value.Measure, name, value.Value.Label, value.Value.Flatter, value.Rescaling, wider, correlation));
        }
        return verdicts;
    }
}
