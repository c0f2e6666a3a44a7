using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Cli.Commands;
using WideValley.Landscape.Flatness;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>
/// `widevalley bench flatness`: its option checks, the ratio and status of a measure from hand-made numbers, and a
/// tiny end-to-end run (small-mnistfc, 32 synthetic samples, quick budget) that writes one row per measure and the
/// whole-report row. Timings are never judged here.
/// </summary>
public class BenchFlatnessCommandTests
{
    static readonly string[] Tiny =
    [
        "bench", "flatness", "--model", "small-mnistfc", "--data", "synthetic", "--samples", "32", "--budget", "quick", "--epochs", "1", "--threads", "1",
    ];

    static readonly UnitTimes Units = new(HvpSeconds: 0.5, ForwardSeconds: 0.1, GradientSeconds: 0.2, SampleGradientSeconds: 0.001, GaussNewtonSeconds: 1.5);

    // 10 HVPs x 0.5 + 5 passes x 0.1 + 2 gradients x 0.2 + 100 sample gradients x 0.001 + 2 Gauss-Newton products x 1.5 = 9 s.
    static readonly MeasureCost Used = new(10, 5, 2, 100, 2);

    [Theory]
    [InlineData(new[] { "--model", "char-lstm" }, "--model: 'char-lstm' is a language model")]
    [InlineData(new[] { "--model", "resnet-9000" }, "--model: unknown network 'resnet-9000'; known: mnistfc, lenet")]
    [InlineData(new[] { "--data", "cifar-10" }, "--data cifar-10: expected fashion-mnist or synthetic")]
    [InlineData(new[] { "--budget", "lavish" }, "--budget must be one of quick, standard, thorough, got 'lavish'")]
    [InlineData(new[] { "--measures", "hessian-trace,curvature-vibes" }, "--measures: curvature-vibes is not a measure; the measures are loss,")]
    [InlineData(new[] { "--samples", "0" }, "--samples")]
    [InlineData(new[] { "--rounds", "0" }, "--rounds")]
    [InlineData(new[] { "--epochs", "0" }, "--epochs")]
    [InlineData(new[] { "--threads", "-1" }, "--threads")]
    [InlineData(new[] { "--unit-repeats", "0" }, "--unit-repeats must be at least 1, got 0")]
    [InlineData(new[] { "--report", "speed.txt" }, "--report speed.txt: expected a Markdown file name ending in .md")]
    public void BadOptionsAreUsageErrorsNamingTheOption(string[] bad, string message)
    {
        // Refused before any data is loaded or network built (the defaults are lenet on Fashion-MNIST).
        var (code, _, err) = InProcessCli.Run(["bench", "flatness", .. bad]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public void TheOptionsRecordRefusesWhatTheCommandLineCannotCatch()
    {
        Assert.Throws<UsageException>(() => new BenchFlatnessCommand.Options { Epochs = 0 }.Validate());
        Assert.Throws<UsageException>(() => new BenchFlatnessCommand.Options { Rounds = 0 }.Validate());
        Assert.Throws<UsageException>(() => new BenchFlatnessCommand.Options { UnitRepeats = 0 }.Validate());
        var (budget, measures) = new BenchFlatnessCommand.Options { Measures = "surface,loss" }.Validate();
        Assert.Equal("standard", budget.Name);
        Assert.Equal(["loss", "surface"], measures.Select(m => m.Name)); // the report's order, not the command line's
    }

    [Fact]
    public void TheRatioIsMeasuredOverTheUsedWorkAtTheUnitTimesAndItsMedianOverRoundsIsJudged()
    {
        Assert.Equal(9.0, Used.Seconds(Units), 12);
        // Three rounds at the same unit times: ratios 1.1, 1.3 and 1.5; the median 1.3 misses 1.2.
        var missed = BenchFlatnessCommand.Row("x", [Round(9.9, Units), Round(11.7, Units), Round(13.5, Units)]);
        Assert.Equal(11.7, missed.Seconds, 12);
        Assert.Equal(9.0, missed.PredictedSeconds, 12);
        Assert.Equal([1.1, 1.3, 1.5], missed.RoundRatios.Select(r => Math.Round(r, 12)));
        Assert.Equal(1.3, missed.Ratio, 12);
        Assert.False(missed.Met);
        Assert.Equal("missed", missed.Status);

        // The ratio is taken round by round at that round's unit times (twice as slow units: 18 s predicted), then the median.
        var slower = Units with { HvpSeconds = 1.0, ForwardSeconds = 0.2, GradientSeconds = 0.4, SampleGradientSeconds = 0.002, GaussNewtonSeconds = 3.0 };
        var met = BenchFlatnessCommand.Row("y", [Round(18.9, slower), Round(9.9, Units)]);
        Assert.Equal([1.05, 1.1], met.RoundRatios.Select(r => Math.Round(r, 12)));
        Assert.Equal(1.075, met.Ratio, 12);
        Assert.Equal(13.5, met.PredictedSeconds, 12);
        Assert.Equal(14.4, met.Seconds, 12);
        Assert.True(met.Met);
        Assert.Equal("met", met.Status);

        // The estimate (what is stated up front: 10 more HVPs, 14 s and 28 s) is reported beside, but the ratio uses the work done.
        Assert.Equal(21.0, met.EstimatedSeconds, 12);

        var nothing = BenchFlatnessCommand.Row("z", [new BenchFlatnessCommand.MeasureRound(MeasureCost.None, MeasureCost.None, 0.3, 0.3, Units)]);
        Assert.True(double.IsNaN(nothing.Ratio));
        Assert.False(nothing.Met);
        Assert.Equal("no work counted", nothing.Status);
        Assert.Throws<ArgumentException>(() => BenchFlatnessCommand.Row("w", []));
    }

    static BenchFlatnessCommand.MeasureRound Round(double seconds, UnitTimes units) => new(Used with { Hvps = 20 }, Used, seconds, seconds - 0.01, units);

    [Fact]
    public void TheWholeReportIsJudgedOnTheMedianRoundAgainstTenMinutes()
    {
        static BenchFlatnessCommand.ReportRound Report(double measures) => new(Units, 2, measures, 8, 20, Units);
        Assert.Equal(110, Report(100).TotalSeconds, 12);
        static BenchFlatnessCommand.Result Result(params BenchFlatnessCommand.ReportRound[] rounds) =>
            new(new BenchFlatnessCommand.Options(), FlatnessBudget.Standard, 1, "d", 1, 1, 1, 1, [], rounds, 2, null, null);
        var met = Result(Report(490), Report(690), Report(540));
        Assert.Equal(550, met.ReportSeconds, 12);
        Assert.True(met.ReportMet);
        var missed = Result(Report(590), Report(595));
        Assert.Equal(602.5, missed.ReportSeconds, 12);
        Assert.False(missed.ReportMet);
    }

    [Fact]
    public void ATinyRunWritesOneRowPerMeasureAndTheWholeReportRow()
    {
        using var dir = new TempDir();
        var report = dir.File("results/bench-flatness.md");
        var (code, output, err) = InProcessCli.Run([.. Tiny, "--json", "--report", report]);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(dir.File("results/bench-flatness.json")))));
        Assert.Equal("flatness", (string?)json["benchmark"]);
        Assert.Equal(50_890L, (long)json["parameters"]!);
        Assert.Equal("quick", (string?)json["budget"]);
        Assert.Equal(1, (int)json["rounds"]!);
        var rows = json["measures"]!.AsArray();
        Assert.Equal(FlatnessMeasures.All.Select(m => m.Name), rows.Select(r => (string)r!["measure"]!));
        Assert.True((double)json["unit_times"]!["hvp_seconds"]![0]! > 0);
        Assert.Equal(5, (int)json["unit_times"]!["repeats"]!);
        Assert.True((double)json["runner_unit_times"]!["hvp_seconds"]![0]! > 0);
        double sum = 0;
        foreach (var row in rows)
        {
            var used = row!["used"]!;
            var estimate = row["estimate"]!;
            foreach (var unit in new[] { "hvps", "forward_passes", "gradients", "sample_gradients", "gauss_newton_products" })
                Assert.True((double)used[unit]! <= (double)estimate[unit]! + 1e-9, $"{row["measure"]}: {unit} used {used[unit]}, estimated {estimate[unit]}");
            Assert.True((double)used["hvps"]! + (double)used["forward_passes"]! + (double)used["gradients"]! + (double)used["gauss_newton_products"]! > 0, $"{row["measure"]} counted no work");
            var seconds = (double)row["seconds"]!;
            Assert.Equal(seconds, (double)row["round_seconds"]![0]!);
            Assert.Equal((double)row["ratio"]!, (double)row["round_ratios"]![0]!);
            Assert.Equal((double)row["ratio"]! <= BenchFlatnessCommand.CostTarget, (bool)row["target_met"]!);
            Assert.Equal((bool)row["target_met"]! ? "met" : "missed", (string?)row["status"]);
            // The runner's wall time of a measure includes the time the measure took itself.
            Assert.True(seconds + 1e-3 >= (double)row["self_timed_seconds"]!, $"{row["measure"]}: {seconds} s against {row["self_timed_seconds"]} s self-timed");
            sum += seconds;
        }
        var whole = json["report"]!;
        Assert.Equal(BenchFlatnessCommand.WallTargetSeconds, (double)whole["target_seconds"]!);
        Assert.True((double)whole["seconds"]! + 0.01 >= sum, $"whole report {whole["seconds"]} s, measures {sum} s");
        Assert.Equal((double)whole["seconds"]! <= BenchFlatnessCommand.WallTargetSeconds, (bool)whole["target_met"]!);
        Assert.True((int)whole["files"]! > 3); // flatness.md, .html, .json and CSV files

        var markdown = File.ReadAllText(report);
        foreach (var measure in FlatnessMeasures.All)
            Assert.Contains($"\n| {measure.Name} | ", markdown);
        Assert.Contains("| **whole report** | unit times ", markdown);
        Assert.Contains("widevalley bench flatness --model small-mnistfc", markdown);
        Assert.Contains("of 14 measures within 1.2x", markdown);
        Assert.Contains("round 1: whole report", err);
    }

    [Fact]
    public void MeasuresPicksTheRowsAndRoundsRepeatTheWholeReport()
    {
        var (code, output, err) = InProcessCli.Run([.. Tiny, "--measures", "hessian-trace,loss", "--rounds", "2", "--json"]);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        var rows = json["measures"]!.AsArray();
        Assert.Equal(["loss", "hessian-trace"], rows.Select(r => (string)r!["measure"]!));
        Assert.All(rows, r => Assert.Equal(2, r!["round_seconds"]!.AsArray().Count));
        Assert.Equal(10.0, (double)rows[1]!["used"]!["hvps"]!); // the quick budget's 10 Hutchinson probes, in each round
        Assert.Equal(2, json["report"]!["round_seconds"]!.AsArray().Count);
        Assert.Equal(2, json["unit_times"]!["hvp_seconds"]!.AsArray().Count);
        Assert.Contains("round 2: whole report", err);
    }
}
