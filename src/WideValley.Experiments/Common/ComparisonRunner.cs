using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>A comparison of Entropy-SGD with a baseline over rows and seeds (Table 1, App. C.1): what to train, where, and how to report it.</summary>
public sealed record ComparisonRequest
{
    /// <summary>The comparison's name in reports, e.g. "table1".</summary>
    public required string Name { get; init; }

    /// <summary>The rows, in report order.</summary>
    public required IReadOnlyList<ComparisonRow> Rows { get; init; }

    /// <summary>Why a row cannot run (null: it can).</summary>
    public required Func<ComparisonRow, string?> SkipReason { get; init; }

    /// <summary>The dataset a row trains on, as the report names it.</summary>
    public required Func<ComparisonRow, string> DatasetOf { get; init; }

    /// <summary>The baseline and Entropy arms of a row for a seed.</summary>
    public required Func<ComparisonRow, long, (ExperimentArm Baseline, ExperimentArm Entropy)> Arms { get; init; }

    /// <summary>The run folder of a (row, arm, seed); two comparisons may share folders of identical runs.</summary>
    public required Func<ComparisonRow, ExperimentArm, long, string> Folder { get; init; }

    /// <summary>Independent runs per row and arm (at least 1).</summary>
    public required int Seeds { get; init; }

    /// <summary>The first run's seed; the others follow consecutively.</summary>
    public required long FirstSeed { get; init; }

    /// <summary>Train nothing: write the report from the runs that have finished, the others shown as pending.</summary>
    public bool ReportOnly { get; init; }

    /// <summary>The report's folder.</summary>
    public required string OutDir { get; init; }

    /// <summary>Builds the report input from the rows' results.</summary>
    public required Func<IReadOnlyList<ComparisonRowResult>, ComparisonReportInput> Report { get; init; }

    /// <summary>The seeds, <see cref="FirstSeed"/> on.</summary>
    public IEnumerable<long> SeedValues => Enumerable.Range(0, Seeds).Select(i => FirstSeed + i);
}

/// <summary>One training run of a comparison: a row's arm at a seed, in its folder.</summary>
/// <param name="Row">The row.</param>
/// <param name="Arm">The optimizer and its complete configuration.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Folder">The run folder.</param>
public sealed record PlannedRun(ComparisonRow Row, ExperimentArm Arm, long Seed, string Folder)
{
    /// <summary>The run's name in reports: ROW/ARM/seed-SEED.</summary>
    public string Label => $"{Row.Name}/{Arm.Key}/seed-{Seed}";
}

/// <summary>A checked <see cref="ComparisonRequest"/>: every run it needs, and the rows it skips and why.</summary>
/// <param name="Request">The request.</param>
/// <param name="Runs">Every (row, arm, seed) of the rows that can run, seeds outermost.</param>
/// <param name="Skipped">The rows that cannot run, with the reason, in row order.</param>
public sealed record ComparisonPlan(ComparisonRequest Request, IReadOnlyList<PlannedRun> Runs, IReadOnlyList<(ComparisonRow Row, string Reason)> Skipped);

/// <summary>What a comparison did: whether it was interrupted, the report's input and the files written.</summary>
/// <param name="Interrupted">Cancelled during a run, whose checkpoint was saved; the same request continues it.</param>
/// <param name="Report">What the report shows.</param>
/// <param name="Files">The report's files (Markdown, JSON, plots), full paths.</param>
public sealed record ComparisonOutcome(bool Interrupted, ComparisonReportInput Report, IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// Runs a <see cref="ComparisonRequest"/>: trains every (row, arm, seed) whose folder holds no finished run, resuming
/// interrupted ones, then writes the report from all finished runs. Cancelling saves the current run's checkpoint and
/// still writes a report of what has finished; the same request continues later.
/// </summary>
public static class ComparisonRunner
{
    /// <summary>Checks every run's configuration, without reading any folder.</summary>
    /// <exception cref="ArgumentException">Fewer than one seed, or a run configuration that cannot run (names the setting).</exception>
    public static ComparisonPlan Plan(ComparisonRequest request)
    {
        if (request.Seeds < 1) throw new ArgumentException($"a comparison needs at least one seed, got {request.Seeds}", nameof(request));
        var runs = new List<PlannedRun>();
        foreach (var seed in request.SeedValues)
            foreach (var row in request.Rows)
            {
                if (request.SkipReason(row) is not null) continue;
                var (baseline, entropy) = request.Arms(row, seed);
                foreach (var arm in new[] { baseline, entropy })
                {
                    RunSetup.Validate(arm.Config);
                    runs.Add(new PlannedRun(row, arm, seed, request.Folder(row, arm, seed)));
                }
            }
        var skipped = request.Rows.Select(r => (Row: r, Reason: request.SkipReason(r))).Where(x => x.Reason is not null).Select(x => (x.Row, x.Reason!)).ToList();
        return new ComparisonPlan(request, runs, skipped);
    }

    /// <summary>
    /// Looks at every run folder first (one holding another experiment is an error before anything trains, not after
    /// hours of training the runs before it), reports <see cref="ComparisonPlanned"/>, trains what is missing (unless
    /// <see cref="ComparisonRequest.ReportOnly"/>), and writes the report.
    /// </summary>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings, or unreadable files.</exception>
    /// <exception cref="IOException">Another process trains in a folder; the report cannot be written.</exception>
    public static ComparisonOutcome Run(ComparisonPlan plan, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var request = plan.Request;
        var states = plan.Runs.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Arm.Config));
        var todo = plan.Runs.Where(r => states[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        progress?.Report(new ComparisonPlanned(request.Name, plan.Runs.Count, plan.Runs.Count - todo.Count, todo.Count, request.ReportOnly));

        var interrupted = false;
        if (!request.ReportOnly)
        {
            for (var i = 0; i < todo.Count && !interrupted; i++)
            {
                if (cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                var run = todo[i];
                var result = RunTraining.Train(run.Arm.Config, run.Folder, run.Label, new RunPosition(i + 1, todo.Count), progress, cancellation);
                interrupted = result?.Status == TrainingStatus.Interrupted;
            }
        }

        var report = request.Report(Results(plan));
        var files = ComparisonReport.Write(request.OutDir, report, message => progress?.Report(new ExperimentWarning(message)));
        return new ComparisonOutcome(interrupted, report, files);
    }

    /// <summary>The rows' results from the finished (and diverged) runs their folders hold.</summary>
    static List<ComparisonRowResult> Results(ComparisonPlan plan)
    {
        var request = plan.Request;
        var rows = new List<ComparisonRowResult>();
        foreach (var row in request.Rows)
        {
            var dataset = request.DatasetOf(row);
            if (request.SkipReason(row) is string why)
            {
                rows.Add(new ComparisonRowResult(row, dataset, why, null, null));
                continue;
            }
            ArmResult Arm(bool entropy)
            {
                var planned = plan.Runs.Where(r => r.Row == row && r.Arm.IsEntropy == entropy).ToList();
                var finished = planned
                    .Where(r => RunFolders.Inspect(r.Folder, r.Arm.Config) is RunFolderState.Finished or RunFolderState.Diverged)
                    .Select(r => RunFolders.Read(r.Folder))
                    .ToList();
                var arm = planned[0].Arm;
                return new ArmResult(arm.Key, arm.Label, entropy, finished, request.Seeds);
            }
            rows.Add(new ComparisonRowResult(row, dataset, null, Arm(false), Arm(true)));
        }
        return rows;
    }
}

/// <summary>How a paper comparison (Table 1, App. C.1) runs: budget, seeds, data, where the runs and the report go, and what the report quotes.</summary>
public sealed record ComparisonRunSettings
{
    /// <summary>The compute budget.</summary>
    public required Budget Budget { get; init; }

    /// <summary>Independent runs per row and arm (at least 1).</summary>
    public required int Seeds { get; init; }

    /// <summary>The first run's seed; the others follow consecutively.</summary>
    public long FirstSeed { get; init; } = 1;

    /// <summary>Where the data are.</summary>
    public required ExperimentData Data { get; init; }

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

    /// <summary>The command that reproduces the report, as the report quotes it.</summary>
    public required string CommandLine { get; init; }

    /// <summary>The machine in one line, as the report quotes it.</summary>
    public required string Machine { get; init; }
}
