using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley bench connect` on a tiny configuration: what it counts, that both sides compute the same numbers, its report. Timings are not judged.</summary>
public class BenchConnectCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static readonly string[] Tiny =
    [
        "bench", "connect", "--model", "small-mnistfc", "--data", "synthetic", "--batch-size", "16", "--steps", "3", "--check-every", "2",
        "--eval-samples", "64", "--grid", "3", "--toy-steps", "4", "--toy-check-every", "3", "--toy-grid", "4", "--toy-repeats", "2", "--rounds", "3", "--warmup", "0",
        "--threads", "1",
    ];

    [Fact]
    public void ATinyRunCountsTheSameWorkOnBothSidesAndWritesItsReport()
    {
        using var dir = new TempDir();
        var report = dir.File("results/bench-connect.md");
        var outFile = dir.File("out.json");
        var (code, output, err) = Run([.. Tiny, "--json", "--report", report, "--out", outFile]);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Equal("connect", (string?)json["benchmark"]);
        Assert.Equal(("small-mnistfc", 50_890L, false), ((string?)json["model"], (long)json["parameters"]!, (bool)json["batch_norm"]!));
        Assert.Equal(24L, (long)json["toy_parameters"]!); // the quadratic toy: 1·4 + 4·4 + 4·1 weights, no biases

        var rows = json["rows"]!.AsArray();
        // Bead measures: at the start, after every c steps and after the last (3 steps checked every 2: 0, 2, 3; 4 every 3: 0, 3, 4).
        // Segment measures: G − 1 (t = 0 is the bead's own measure).
        var expected = new (string Problem, string Operation, int Steps, int Evaluations)[]
        {
            ("network", "bead", 3, 3), ("network", "segment", 0, 2), ("toy", "bead", 4, 3), ("toy", "segment", 0, 3),
        };
        Assert.Equal(expected, rows.Select(r => ((string)r!["problem"]!, (string)r["operation"]!, (int)r["steps"]!, (int)r["evaluations"]!)));
        foreach (var (row, pairs) in rows.Zip([3, 3, 6, 6])) // 3 rounds; the toy rows 2 pairs per round
        {
            var library = (double)row!["library_ms"]!;
            var plain = (double)row["plain_ms"]!;
            Assert.True(library > 0 && plain > 0, row.ToJsonString());
            var libraryTimes = row["library_times_ms"]!.AsArray().Select(t => (double)t!).ToArray();
            var plainTimes = row["plain_times_ms"]!.AsArray().Select(t => (double)t!).ToArray();
            Assert.Equal(pairs, libraryTimes.Length);
            Assert.Equal(pairs, plainTimes.Length);
            Assert.Equal(library / plain, (double)row["ratio"]!, 0.01 * library / plain + 1e-3); // from the unrounded medians
            // The paired ratio is the median of the pairs' ratios (odd count: the middle one; even: the mean of the middle two).
            var ratios = libraryTimes.Zip(plainTimes, (l, p) => l / p).Order().ToArray();
            var median = ratios.Length % 2 == 1 ? ratios[ratios.Length / 2] : 0.5 * (ratios[ratios.Length / 2 - 1] + ratios[ratios.Length / 2]);
            Assert.Equal(median, (double)row["paired_ratio"]!, 0.01 * median + 1e-3); // the times are rounded to 1 µs
            Assert.Equal((double)row["paired_ratio"]! <= 1.2, (bool)row["target_met"]!);
        }
        // The plain sides compute what the library measures: the same model, the same evaluation set.
        Assert.InRange((double)json["network_evaluation_difference"]!, 0, 1e-5);
        Assert.InRange((double)json["toy_evaluation_difference"]!, 0, 1e-12);
        Assert.Equal(1, (int)json["threads"]!);
        Assert.True((double)json["load_ms"]! > 0);

        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(dir.File("results/bench-connect.json")))));
        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(outFile))));
        var markdown = File.ReadAllText(report);
        Assert.Contains("| problem | operation | library ms (median) | plain ms (median) | ratio of medians | paired ratio (median) | target <= 1.2 |", markdown);
        Assert.Contains("| small-mnistfc | bead: 3 Adam steps of batch 16, 3 measures |", markdown);
        Assert.Contains("| polynomial toy | segment: G = 4, 3 measures |", markdown);
        Assert.Contains("widevalley bench connect --model small-mnistfc", markdown);
        Assert.Contains("Raw output: [bench-connect.json](bench-connect.json)", markdown);
        Assert.Contains("loading a point from the flat vector into the network's 50,890 parameters takes", markdown);
        Assert.Contains("bench connect: small-mnistfc on synthetic", err); // progress goes to stderr with --json
        Assert.Contains("round 3:", err);
    }

    [Fact]
    public void WithoutJsonItPrintsOneLinePerRowAndTheCheck()
    {
        var (code, output, err) = Run(Tiny);
        Assert.True(code == ExitCodes.Ok, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("small-mnistfc bead: 3 Adam steps of batch 16, 3 measures: library", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("polynomial toy segment: G = 4, 3 measures: library", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("evaluation check |plain - library|: network", StringComparison.Ordinal));
    }

    [Fact]
    public void WithBatchNormEveryLibraryMeasureRecalibratesAndStillMatchesThePlainEvaluation()
    {
        using var dir = new TempDir();
        var report = dir.File("bench-connect-lenet.md");
        string[] args = [.. Tiny.Select(a => a == "small-mnistfc" ? "lenet" : a), "--bn-minibatches", "2", "--json", "--report", report];
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.True((bool)json["batch_norm"]!);
        Assert.Equal(2, (int)json["bn_minibatches"]!);
        // The plain evaluation runs on the statistics the library's last measure recomputed: the same loss.
        Assert.InRange((double)json["network_evaluation_difference"]!, 0, 1e-5);
        Assert.Contains("load the point into the model, recompute BatchNorm statistics (2 minibatches), evaluate", File.ReadAllText(report));
    }

    [Theory]
    [InlineData("--rounds", "2", "--rounds must be at least 3")]
    [InlineData("--grid", "1", "--grid must be at least 2")]
    [InlineData("--toy-grid", "1", "--toy-grid must be at least 2")]
    [InlineData("--model", "no-such-net", "--model no-such-net: unknown network")]
    [InlineData("--model", "ptb-small-lstm", "--model ptb-small-lstm: a language model")]
    [InlineData("--data", "cifar10", "--data cifar10: expected fashion-mnist or synthetic")]
    [InlineData("--report", "bench-connect.txt", "expected a Markdown file name ending in .md")]
    [InlineData("--steps", "0", "--steps")]
    [InlineData("--toy-repeats", "0", "--toy-repeats must be at least 1")]
    public void BadOptionsAreUsageErrorsThatNameTheOption(string option, string value, string message)
    {
        // Synthetic data, so that an option checked only after loading would still be reached quickly.
        string[] args = option == "--data" ? ["bench", "connect", option, value] : ["bench", "connect", "--data", "synthetic", option, value];
        var (code, _, err) = Run(args);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public void MissingFashionMnistIsAFailureThatSaysWhatWasSought()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("bench", "connect", "--model", "small-mnistfc", "--data-dir", dir.File("nothing-here"), "--rounds", "3");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("fashion-mnist", err);
    }

    [Theory]
    [InlineData(20, 10, 3)]
    [InlineData(300, 15, 21)]
    [InlineData(3, 2, 3)]
    [InlineData(1, 5, 2)]
    public void ABeadMeasuresAtTheStartEveryCStepsAndAfterTheLast(int steps, int checkEvery, int measures) =>
        Assert.Equal(measures, ConnectBenchmarkOptions.BeadMeasures(steps, checkEvery));
}
