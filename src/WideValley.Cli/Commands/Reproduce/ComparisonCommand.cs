using System.Globalization;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// The shell of a comparison command (table1, sgld-baseline): checks the request, runs it with the library's
/// <see cref="ComparisonRunner"/> (which trains what is missing and writes the report), and prints what it reports
/// and each row's result. Ctrl-C saves the current run's checkpoint and still writes a report of what has finished;
/// the same command continues later.
/// </summary>
internal static class ComparisonCommand
{
    public static int Execute(CliContext ctx, ComparisonRequest request)
    {
        if (request.Seeds < 1) throw new UsageException($"--seeds must be at least 1, got {request.Seeds}");
        var plan = ComparisonRunner.Plan(request);
        foreach (var (row, why) in plan.Skipped) ctx.Out.WriteLine($"{request.Name}: row {row.Name} skipped: {why}");
        var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => ComparisonRunner.Run(plan, progress, cancellation));
        foreach (var row in outcome.Report.Rows) PrintRow(ctx, row);
        ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {request.OutDir})");
        return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
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
