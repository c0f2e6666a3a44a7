using System.Diagnostics;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley bench step-memory`: readings per L, in one process and in one process per L. No memory level is asserted.</summary>
public class BenchStepMemoryTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static void AssertReadings(JsonNode json, int[] ls, int evaluations)
    {
        Assert.Equal("step-memory", (string?)json["benchmark"]);
        var readings = json["readings"]!.AsArray();
        Assert.Equal(ls, readings.Select(r => (int)r!["L"]!));
        foreach (var r in readings)
        {
            var before = (double)r!["resident_before_mib"]!;
            var peak = (double)r["peak_mib"]!;
            Assert.True(before > 0 && peak >= before - 0.01, r.ToJsonString()); // the high-water mark is reset to the resident memory
            Assert.Equal(Math.Round(peak - before, 2), (double)r["step_overhead_mib"]!, 0.0101); // each side rounded to 0.01 on its own
            // ceil(evaluations / L) steps of L closure calls (Entropy-SGD's diagnostics add one at steps 1, 11, 21, ...).
            var l = (int)r["L"]!;
            var steps = (evaluations + l - 1) / l;
            Assert.Equal(steps, (int)r["steps"]!);
            Assert.Equal(l * steps + (steps + 9) / 10, (long)r["grad_evals"]!);
        }
    }

    [Fact]
    public void InProcessEveryLIsReadInOrderAndTheReportHoldsTheTableAndTheJson()
    {
        using var dir = new TempDir();
        var report = dir.File("results/step-memory.md");
        var (code, output, err) = Run("bench", "step-memory", "--in-process", "--model", "small-mnistfc", "--ls", "3,1", "--batch-size", "64",
            "--evaluations", "12", "--threads", "2", "--json", "--report", report);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        AssertReadings(json, [3, 1], 12);
        Assert.False((bool)json["isolated"]!);
        Assert.Equal(("small-mnistfc", "entropy-sgd", 64, 12), ((string?)json["model"], (string?)json["optimizer"], (int)json["batch_size"]!, (int)json["evaluations_per_L"]!));

        var markdown = File.ReadAllText(report);
        Assert.Contains("| L | steps | gradient evaluations | resident before (MiB) | peak (MiB) | over the start (MiB) | s per step |", markdown);
        Assert.Contains("all L in one process, in the order shown", markdown);
        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(dir.File("results/step-memory.json")))));
        // What was written reads back to the same readings (the overhead is recomputed from the rounded MiB, so to 0.01).
        var again = StepMemoryBenchmark.ToJson(StepMemoryBenchmark.FromJson(json));
        foreach (var key in new[] { "model", "parameters", "optimizer", "batch_size", "evaluations_per_L", "threads", "isolated" })
            Assert.True(JsonNode.DeepEquals(json[key], again[key]), key);
        foreach (var (a, b) in json["readings"]!.AsArray().Zip(again["readings"]!.AsArray()))
        {
            foreach (var key in new[] { "L", "resident_before_mib", "peak_mib", "steps", "grad_evals", "seconds_per_step" })
                Assert.True(JsonNode.DeepEquals(a![key], b![key]), $"{key}: {a[key]} against {b[key]}");
            Assert.Equal((double)a!["step_overhead_mib"]!, (double)b!["step_overhead_mib"]!, 0.0101);
        }
    }

    [Fact]
    public async Task TheBuiltToolMeasuresEachLInAFreshProcess()
    {
        var info = new ProcessStartInfo(CliProcessTests.Executable()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "bench", "step-memory", "--model", "small-mnistfc", "--ls", "1,2", "--batch-size", "64", "--evaluations", "2", "--threads", "1", "--json" })
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var errorsRead = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var output = await p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        await p.WaitForExitAsync(TestContext.Current.CancellationToken);
        var errors = await errorsRead;
        Assert.True(p.ExitCode == 0, errors);
        var json = JsonNode.Parse(output.Trim())!;
        AssertReadings(json, [1, 2], 2);
        Assert.True((bool)json["isolated"]!);
        Assert.Contains("  L = 2: peak", errors); // each child's progress line is passed on
    }

    [Theory]
    [InlineData("--ls", "1,x", "--ls 1,x: 'x' is not a number of Langevin steps")]
    [InlineData("--ls", "0", "--ls 0: '0' is not a number of Langevin steps")]
    [InlineData("--ls", "1,,2", "--ls 1,,2: '' is not a number of Langevin steps")]
    [InlineData("--optimizer", "sgd", "--optimizer sgd: takes no Langevin steps")]
    [InlineData("--model", "char-lstm", "--model char-lstm: the step-memory benchmark needs an image classifier")]
    [InlineData("--batch-size", "0", "--batch-size must be at least 1, got 0")]
    [InlineData("--evaluations", "0", "--evaluations must be at least 1, got 0")]
    public void BadSettingsAreRefusedBeforeAnythingRuns(string option, string value, string message)
    {
        var (code, _, err) = Run("bench", "step-memory", "--in-process", option, value);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public void APeakThatGrowsWithLIsCalledSo()
    {
        const long mib = 1024 * 1024;
        StepMemoryBenchmarkResult Result(params (int L, long PeakMiB)[] readings) => new()
        {
            Model = "mnistfc", Parameters = 1, Optimizer = "entropy-sgd", BatchSize = 500, Evaluations = 300, Threads = 1,
            Readings = readings.Select(r => new StepMemoryReading(r.L, 300 * mib, r.PeakMiB * mib, 300 / r.L, 300, 1)).ToArray(),
        };
        // Before the per-closure dispose scopes: 344 / 623 / 1,453 MB at L = 1 / 25 / 100.
        var leaking = Result((1, 344), (25, 623), (100, 1453));
        Assert.False(leaking.FlatInL);
        Assert.Equal(1109, leaking.PeakGrowthMiB, 6);
        Assert.Equal(1109.0 / 99, leaking.PeakGrowthMiBPerLangevinStep, 6);
        Assert.Contains("GROWS with L", StepMemoryBenchmark.Summary(leaking)[^1]);
        // Order of measurement does not matter; the growth is between the smallest and the largest L.
        var flat = Result((100, 515), (1, 560), (25, 508));
        Assert.True(flat.FlatInL);
        Assert.Equal(-45, flat.PeakGrowthMiB, 6);
        Assert.Contains("flat in L", StepMemoryBenchmark.Summary(flat)[^1]);
        Assert.True(Result((1, 500), (100, 560)).FlatInL);   // within 64 MiB
        Assert.False(Result((1, 500), (100, 566)).FlatInL);  // above both 64 MiB and 10%
    }
}
