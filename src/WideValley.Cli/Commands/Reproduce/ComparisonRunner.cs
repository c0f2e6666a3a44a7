using System.Globalization;
using WideValley.Experiments;
using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>A comparison of Entropy-SGD with a baseline over rows and seeds, as a `reproduce` command asks for it.</summary>
internal sealed record ComparisonRequest
{
    /// <summary>Command name for messages, e.g. "table1".</summary>
    public required string Name { get; init; }
    public required IReadOnlyList<ComparisonRow> Rows { get; init; }
    /// <summary>Why a row cannot run (null: it can).</summary>
    public required Func<ComparisonRow, string?> SkipReason { get; init; }
    /// <summary>The dataset a row trains on, as the report names it.</summary>
    public required Func<ComparisonRow, string> DatasetOf { get; init; }
    /// <summary>The baseline and Entropy arms of a row for a seed.</summary>
    public required Func<ComparisonRow, long, (ExperimentArm Baseline, ExperimentArm Entropy)> Arms { get; init; }
    /// <summary>The run folder of a (row, arm, seed); two commands may share folders of identical runs.</summary>
    public required Func<ComparisonRow, ExperimentArm, long, string> Folder { get; init; }
    public required int Seeds { get; init; }
    public required long FirstSeed { get; init; }
    public required bool ReportOnly { get; init; }
    public required string OutDir { get; init; }
    /// <summary>Builds the report input from the rows' results.</summary>
    public required Func<IReadOnlyList<ComparisonRowResult>, ComparisonReportInput> Report { get; init; }

    public IEnumerable<long> SeedValues => Enumerable.Range(0, Seeds).Select(i => FirstSeed + i);
}

/// <summary>
/// Runs a <see cref="ComparisonRequest"/>: trains every (row, arm, seed) whose folder holds no finished run, resuming
/// interrupted ones, then writes the report from all finished runs. Ctrl-C saves the current run's checkpoint and
/// still writes a report of what has finished; the same command continues later.
/// </summary>
internal static class ComparisonRunner
{
    sealed record PlannedRun(ComparisonRow Row, ExperimentArm Arm, long Seed, string Folder)
    {
        public string Label => $"{Row.Name}/{Arm.Key}/seed-{Seed}";
    }

    public static int Execute(CliContext ctx, ComparisonRequest request)
    {
        if (request.Seeds < 1) throw new UsageException($"--seeds must be at least 1, got {request.Seeds}");
        var c = CultureInfo.InvariantCulture;
        var plan = new List<PlannedRun>();
        foreach (var seed in request.SeedValues)
            foreach (var row in request.Rows)
            {
                if (request.SkipReason(row) is not null) continue;
                var (baseline, entropy) = request.Arms(row, seed);
                foreach (var arm in new[] { baseline, entropy })
                {
                    RunSetup.Validate(arm.Config);
                    plan.Add(new PlannedRun(row, arm, seed, request.Folder(row, arm, seed)));
                }
            }
        foreach (var row in request.Rows)
            if (request.SkipReason(row) is string why) ctx.Out.WriteLine($"{request.Name}: row {row.Name} skipped: {why}");

        // Look at every folder before training anything: a folder holding another experiment is an error now, not
        // after hours of training the runs before it.
        var states = plan.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Arm.Config));
        var todo = plan.Where(r => states[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        ctx.Out.WriteLine(string.Format(c, "{0}: {1} runs planned, {2} finished already, {3} to {4}",
            request.Name, plan.Count, plan.Count - todo.Count, todo.Count, request.ReportOnly ? "report as pending (--report-only)" : "train"));

        var exit = ExitCodes.Ok;
        if (!request.ReportOnly)
        {
            for (var i = 0; i < todo.Count; i++)
            {
                var run = todo[i];
                var result = ReproduceRuns.Train(ctx, run.Arm.Config, run.Folder, run.Label, $"[{i + 1}/{todo.Count}] ");
                if (result?.Status == TrainingStatus.Interrupted)
                {
                    exit = ExitCodes.Interrupted;
                    break;
                }
            }
        }

        var report = request.Report(Results(request, plan));
        var files = ComparisonReport.Write(request.OutDir, report);
        foreach (var row in report.Rows) PrintRow(ctx, row);
        ctx.Out.WriteLine($"report {files.First(f => f.EndsWith(".md", StringComparison.Ordinal))} ({files.Count} files in {request.OutDir})");
        return exit;
    }

    static List<ComparisonRowResult> Results(ComparisonRequest request, List<PlannedRun> plan)
    {
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
                var planned = plan.Where(r => r.Row == row && r.Arm.IsEntropy == entropy).ToList();
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

    static void PrintRow(CliContext ctx, ComparisonRowResult row)
    {
        var c = CultureInfo.InvariantCulture;
        if (row.SkipReason is not null)
        {
            ctx.Out.WriteLine($"{row.Row.Name}: skipped");
            return;
        }
        foreach (var arm in new[] { row.Entropy!, row.Baseline! })
        {
            var values = arm.Runs.Where(r => !r.Diverged).Select(r => ComparisonReport.TestMetric(row.Row, r.Final) ?? double.NaN);
            var s = SeedStatistic.Of(values);
            var what = row.Row.Metric == ComparisonMetric.Perplexity ? "test perplexity" : "test error %";
            ctx.Out.WriteLine(s is SeedStatistic v
                ? string.Format(c, "{0} {1}: {2} {3:0.000}{4} over {5} of {6} seeds", row.Row.Name, arm.Key, what, v.Mean,
                    v.Std is double sd ? string.Format(c, " ± {0:0.000}", sd) : "", v.Count, arm.SeedsPlanned)
                : $"{row.Row.Name} {arm.Key}: no finished run");
        }
    }
}
