using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley bench seed-004` on a tiny configuration: its rows, the penalty counts that check the frequency, its report. Timings are not judged.</summary>
public class BenchSeed004CommandTests
{
    static readonly string[] Tiny =
    [
        "bench", "seed-004", "--models", "lenet5", "--data", "synthetic", "--batch-size", "8", "--steps", "2", "--freq", "4", "--probes", "2",
        "--rounds", "3", "--warmup", "1", "--threads", "1",
    ];

    [Fact]
    public void ATinyRunHasTenRowsPenalisesAtTheStatedFrequencyAndWritesItsReport()
    {
        using var dir = new TempDir();
        var report = dir.File("results/bench-seed-004.md");
        var (code, output, err) = InProcessCli.Run([.. Tiny, "--json", "--report", report]);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Equal("seed-004", (string?)json["benchmark"]);
        Assert.Equal(61_706L, (long)json["parameters"]!["lenet5"]!);
        var rows = json["rows"]!.AsArray();
        Assert.Equal(["htr-k1-freq1", "htr-fd-k1-freq1", "htr-k1-amortised", "htr-fd-k1-amortised", "htr-authors", "htr-fd-authors",
                "htr-anti-k1-freq1", "htr-anti-k1-amortised", "htr-anti-authors", "adine"],
            rows.Select(r => (string)r!["row"]!));
        Assert.Equal([2, 2, 4, 4, 4, 4, 2, 4, 4, 2], rows.Select(r => (int)r!["steps"]!));
        Assert.Equal([3.0, 3.0, 1.05, 1.05, 1.05, 1.05, 3.0, 1.05, 1.05, 1.05], rows.Select(r => (double)r!["target_ratio"]!));
        // 4 rounds (1 warm-up): every step penalised at freq 1 (4 x 2), one step in each block of 4 at freq 4, none for ADINE.
        Assert.Equal([8L, 8L, 4L, 4L, 4L, 4L, 8L, 4L, 4L, 0L], rows.Select(r => (long)r!["penalties"]!));
        foreach (var row in rows)
        {
            var method = row!["method_times_ms"]!.AsArray().Select(t => (double)t!).ToArray();
            var baseline = row["baseline_times_ms"]!.AsArray().Select(t => (double)t!).ToArray();
            Assert.Equal(3, method.Length);
            Assert.Equal(3, baseline.Length);
            var ratios = method.Zip(baseline, (m, b) => m / b).Order().ToArray();
            Assert.Equal(ratios[1], (double)row["paired_ratio"]!, 0.01 * ratios[1] + 1e-3);
            Assert.Equal((double)row["paired_ratio"]! <= (double)row["target_ratio"]!, (bool)row["target_met"]!);
        }
        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(dir.File("results/bench-seed-004.json")))));
        var markdown = File.ReadAllText(report);
        Assert.Contains("| lenet5 | 61,706 | htr-authors |", markdown);
        Assert.Contains("widevalley bench seed-004 --models lenet5", markdown);
        Assert.Contains("one penalised step with K = 1 costs", markdown);
        Assert.Contains("lenet5 (antithetic): one penalised step", markdown);
        Assert.Contains("round 4:", err);
    }

    [Fact]
    public void RowsPicksTheRowsMeasuredAndTheReportStillReads()
    {
        using var dir = new TempDir();
        var report = dir.File("results/bench-seed-004.md");
        var (code, output, err) = InProcessCli.Run([.. Tiny, "--rows", "htr-anti-k1-amortised,adine", "--json", "--report", report]);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Equal(["htr-anti-k1-amortised", "adine"], json["rows"]!.AsArray().Select(r => (string)r!["row"]!));
        Assert.Equal(61_706L, (long)json["parameters"]!["lenet5"]!);
        var markdown = File.ReadAllText(report);
        Assert.Contains("| lenet5 | 61,706 | htr-anti-k1-amortised |", markdown);
        Assert.DoesNotContain("one penalised step with K = 1 costs", markdown); // needs the every-step and authors' rows
        var (badCode, _, badErr) = InProcessCli.Run([.. Tiny, "--rows", "htr-anti-k1-amortised,sam"]);
        Assert.Equal(ExitCodes.Usage, badCode);
        Assert.Contains("--rows: unknown row 'sam'; known: htr-k1-freq1,", badErr);
    }

    [Fact]
    public void BadOptionsAreUsageErrorsNamingTheOption()
    {
        var (code, _, err) = InProcessCli.Run("bench", "seed-004", "--models", "lenet5,char-lstm", "--data", "synthetic");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--models: 'char-lstm' is a language model", err);
        Assert.Throws<ArgumentException>(() => new Seed004BenchmarkOptions { Rounds = 2 }.Validate());
    }
}
