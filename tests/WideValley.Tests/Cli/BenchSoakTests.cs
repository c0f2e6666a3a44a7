using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley bench soak` in its shortest form: the readings, their JSON and the report. No timing or memory level is asserted.</summary>
public class BenchSoakTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Fact]
    public void FortyStepsGiveFiveReadingsWithTensorCountsInTheJsonAndTheReport()
    {
        using var dir = new TempDir();
        var report = dir.File("results/soak.md");
        var (code, output, err) = Run("bench", "soak", "--steps", "40", "--model", "small-mnistfc", "-L", "2", "--batch-size", "64",
            "--samples-every", "10", "--threads", "2", "--json", "--report", report);
        Assert.True(code == ExitCodes.Ok, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        var json = JsonNode.Parse(lines[0])!;
        Assert.Equal("soak", (string?)json["benchmark"]);
        Assert.Equal(("small-mnistfc", "entropy-sgd", 2, 64), ((string?)json["model"], (string?)json["optimizer"], (int)json["L"]!, (int)json["batch_size"]!));
        Assert.Equal((40, 40, "completed"), ((int)json["steps_requested"]!, (int)json["steps"]!, (string?)json["status"]));
        // L = 2 closure calls per step, and one more every 10 steps for Entropy-SGD's default diagnostics.
        Assert.Equal(40 * 2 + 4, (int)json["grad_evals"]!);

        var samples = json["samples"]!.AsArray();
        Assert.Equal(new long[] { 0, 10, 20, 30, 40 }, samples.Select(s => (long)s!["step"]!));
        foreach (var s in samples)
        {
            Assert.True((long)s!["live_tensors"]! > 0, s.ToJsonString());
            Assert.True((long)s["resident_bytes"]! > 0, s.ToJsonString());
            Assert.True((long)s["managed_heap_bytes"]! > 0, s.ToJsonString());
        }
        var elapsed = samples.Select(s => (double)s!["elapsed_seconds"]!).ToArray();
        Assert.Equal(elapsed.Order(), elapsed);
        var residentMiB = samples.Select(s => (long)s!["resident_bytes"]! / (1024.0 * 1024.0)).ToArray();
        Assert.Equal(Math.Round(residentMiB[0], 2), (double)json["resident_first_mib"]!);
        Assert.Equal(Math.Round(residentMiB[^1], 2), (double)json["resident_last_mib"]!);
        Assert.Equal(Math.Round(residentMiB.Max(), 2), (double)json["resident_max_mib"]!);
        var tensors = samples.Select(s => (long)s!["live_tensors"]!).ToArray();
        Assert.Equal((tensors[0], tensors[^1], tensors.Max()), ((long)json["live_tensors_first"]!, (long)json["live_tensors_last"]!, (long)json["live_tensors_max"]!));
        Assert.NotNull(json["resident_slope_second_half_mib_per_1000_steps"]); // readings at 20, 30 and 40

        // The report holds every reading, and the JSON beside it is the object printed.
        var markdown = File.ReadAllText(report);
        Assert.Contains("| step | elapsed s | resident MiB | live tensors | managed heap MiB |", markdown);
        Assert.Equal(5, markdown.Split('\n').Count(line => System.Text.RegularExpressions.Regex.IsMatch(line, @"^\| \d+ \| [0-9.]+ \| [0-9.]+ \| \d+ \| [0-9.]+ \|$")));
        Assert.Contains("[soak.json](soak.json)", markdown);
        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(dir.File("results/soak.json")))));
        Assert.Empty(dir.Leftovers());
    }

    [Fact]
    public void AnOptimizerWithoutLangevinStepsHasNoLAndTheLastStepIsAlwaysRead()
    {
        var (code, output, err) = Run("bench", "soak", "--steps", "25", "--optimizer", "sgd", "--batch-size", "64", "--samples-every", "10", "--threads", "2", "--json");
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Null(json["L"]);
        Assert.Equal(25, (int)json["grad_evals"]!);
        Assert.Equal(new long[] { 0, 10, 20, 25 }, json["samples"]!.AsArray().Select(s => (long)s!["step"]!));
    }

    [Fact]
    public void TextModeSaysFirstLastAndMax()
    {
        var (code, output, err) = Run("bench", "soak", "--steps", "6", "--samples-every", "3", "-L", "1", "--threads", "2");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("bench soak: 6 steps of entropy-sgd on small-mnistfc, L = 1, batch 128, a reading every 3 steps", output);
        Assert.Contains("6 steps of entropy-sgd on small-mnistfc (L = 1), batch 128", output);
        Assert.Contains("resident memory: first ", output);
        Assert.Contains("live tensors: first ", output);
        Assert.Contains("(3 samples, every 3 steps)", output);
        Assert.DoesNotContain("{", output);
    }

    [Fact]
    public void AboutFiftyReadingsByDefault()
    {
        Assert.Equal(200, new SoakBenchmarkOptions().SampleInterval);
        Assert.Equal(1, new SoakBenchmarkOptions { Steps = 40 }.SampleInterval);
        Assert.Equal(7, new SoakBenchmarkOptions { Steps = 40, SamplesEvery = 7 }.SampleInterval);
    }

    [Fact]
    public void TheSlopeIsALeastSquaresFitOverTheSecondHalfOnly()
    {
        const long MiB = 1 << 20;
        // A warm-up jump in the first half, then 3 MiB per 1,000 steps plus a symmetric wobble the fit must average out.
        long[] steps = [0, 250, 500, 750, 1000];
        double[] resident = [100, 180, 200, 200.75 + 0.5, 201.5];
        var samples = steps.Select((s, i) => new SoakSample(s, i, (long)(resident[i] * MiB), 10 + s / 250, 5 * MiB)).ToList();
        var r = new SoakBenchmarkResult
        {
            Model = "m", Optimizer = "o", L = null, Parameters = 1, BatchSize = 1, StepsRequested = 1000, StepsTaken = 1000, GradEvals = 1000,
            SamplesEvery = 250, Status = "completed", Threads = 1, Data = "d", ElapsedSeconds = 4, Samples = samples,
        };
        // Least squares over (500, 200), (750, 201.25), (1000, 201.5): slope = sum dx dy / sum dx^2 = (250 * 1.5) / (2 * 250^2).
        Assert.Equal(1000 * 250 * 1.5 / (2 * 250.0 * 250), r.SecondHalfSlopeMiBPer1000Steps!.Value, 9);
        Assert.Equal(4.0, r.SecondHalfTensorSlopePer1000Steps!.Value, 9);
        Assert.Equal((100, 201.5, 201.5), (r.FirstResidentMiB, r.LastResidentMiB, r.MaxResidentMiB));
        Assert.Equal((10L, 14L, 14L), (r.FirstLiveTensors, r.LastLiveTensors, r.MaxLiveTensors));
        // One reading in the second half (at step 500) fits no line.
        Assert.Null((r with { Samples = samples.Take(3).ToList() }).SecondHalfSlopeMiBPer1000Steps);
    }

    [Theory]
    [InlineData(new[] { "--samples-every", "-1" }, "--samples-every must be 0")]
    [InlineData(new[] { "--steps", "0" }, "--steps must be at least 1, got 0")]
    [InlineData(new[] { "--optimizer", "nope" }, "unknown optimizer 'nope'")]
    [InlineData(new[] { "--model", "char-lstm" }, "--model char-lstm: the soak benchmark needs an image classifier")]
    [InlineData(new[] { "-L", "0" }, "-L must be at least 1, got 0")]
    [InlineData(new[] { "--report", "REPORT.json" }, "expected a Markdown file name ending in .md")]
    public void BadInputExitsWithCode2BeforeTrainingAndWritesNothing(string[] args, string expected)
    {
        using var dir = new TempDir();
        var withPaths = args.Select(a => a.StartsWith("REPORT", StringComparison.Ordinal) ? dir.File(a) : a).ToArray();
        var report = args.Contains("--report") ? Array.Empty<string>() : new[] { "--report", dir.File("soak.md") };
        var (code, output, err) = Run(["bench", "soak", "--json", .. withPaths, .. report]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.Empty(output);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
