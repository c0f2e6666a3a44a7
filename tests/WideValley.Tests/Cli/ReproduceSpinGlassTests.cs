using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley reproduce spin-glass --budget smoke` and `widevalley bench spin-glass` in-process, end to end.</summary>
public class ReproduceSpinGlassTests
{
    const string Stem = "spin-glass-smoke";

    static (int Code, string Out, string Err) Run(params string[] args) => LandscapeCliTests.Run(["reproduce", "spin-glass", .. args]);

    static JsonArray Energies(string piece) => JsonNode.Parse(File.ReadAllText(piece))!["EnergyPerSpin"]!.AsArray();

    [Fact]
    public void SmokeWritesTheReportResumesAMissingSizeAndRecomputesNothingWhenDone()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var outDir = dir.File("out");
        var runs = dir.File("runs");
        var (code, output, err) = Run("--budget", "smoke", "--out", outDir, "--runs", runs, "--seed", "3", "--json");
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        foreach (var file in SpinGlassReport.Files(Stem)) Assert.True(File.Exists(Path.Combine(outDir, file)), $"{file} was not written");
        Assert.Empty(dir.Leftovers());

        var json = JsonNode.Parse(Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)))!.AsObject();
        Assert.Equal(json.ToJsonString(), JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, $"{Stem}.json")))!.ToJsonString());
        Assert.Equal(("smoke", "spin-glass", 3, 3L), ((string)json["budget"]!, (string)json["experiment"]!, (int)json["order"]!, (long)json["seed"]!));
        Assert.Equal(1.656998, (double)json["ground_state_energy"]!, 5);
        Assert.Equal(1.632993, (double)json["energy_barrier"]!, 5);
        var sizes = json["sizes"]!.AsArray();
        Assert.Equal([25, 50], sizes.Select(s => (int)s!["n"]!));
        foreach (var s in sizes)
        {
            foreach (var key in new[] { "mean", "std", "min", "fraction_in_band", "fraction_converged", "distinct_minima", "index_sample", "coupling_seed" })
                Assert.NotNull(s![key]);
            Assert.Equal(50, (int)s!["starts"]!);
            Assert.InRange((double)s["fraction_in_band"]!, 0, 1);
            Assert.Equal(5, s["index_sample"]!.AsArray().Count);
        }
        var claims = json["claims"]!.AsArray();
        Assert.Equal(["concentrate_in_band", "concentrate_near_barrier", "spread_falls", "poor_minima_at_small_n", "end_points_are_minima"],
            claims.Select(c => (string)c!["id"]!));
        Assert.All(claims, c => Assert.Contains((string)c!["verdict"]!, new[] { "agrees", "partly", "disagrees" }));
        var markdown = File.ReadAllText(Path.Combine(outDir, $"{Stem}.md"));
        Assert.Contains("| claim | measured | verdict |", markdown);
        foreach (var c in claims) Assert.Contains((string)c!["claim"]!, markdown);
        Assert.Contains("Smoke budget", markdown);

        // Resume: only the deleted size is computed again, to the same numbers; the other piece is not touched.
        var pieces = Path.Combine(runs, "spin-glass-smoke-seed-3");
        var last = SpinGlassExperiment.PiecePath(pieces, 50);
        var firstPiece = SpinGlassExperiment.PiecePath(pieces, 25);
        var before = Energies(last).ToJsonString();
        var firstWritten = File.GetLastWriteTimeUtc(firstPiece);
        File.Delete(last);
        (code, output, err) = Run("--budget", "smoke", "--out", outDir, "--runs", runs, "--seed", "3");
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        Assert.Contains("computed N = 50;", output);
        Assert.Contains("N = 25: finished before", output);
        Assert.Equal(before, Energies(last).ToJsonString());
        Assert.Equal(firstWritten, File.GetLastWriteTimeUtc(firstPiece));

        // Everything done: nothing is computed, the report is written again.
        var lastWritten = File.GetLastWriteTimeUtc(last);
        (code, output, err) = Run("--budget", "smoke", "--out", outDir, "--runs", runs, "--seed", "3");
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        Assert.Contains("computed N = none", output);
        Assert.Equal(lastWritten, File.GetLastWriteTimeUtc(last));
    }

    [Fact]
    public void AFolderInUseIsRefusedWithoutWriting()
    {
        using var dir = new TempDir();
        using var claim = RunFolderLock.Acquire(Path.Combine(dir.File("runs"), "spin-glass-smoke-seed-0"));
        var (code, _, err) = Run("--budget", "smoke", "--out", dir.File("out"), "--runs", dir.File("runs"));
        Assert.NotEqual(ExitCodes.Ok, code);
        Assert.Contains("another process", err);
        Assert.False(File.Exists(Path.Combine(dir.File("out"), $"{Stem}.md")));
    }

    [Theory]
    [InlineData("--budget", "huge")]
    [InlineData("--threads", "-1")]
    [InlineData("--seed", "abc")]
    public void BadOptionsAreRefusedWithExitTwoNamingTheOption(string option, string value)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("--budget", "smoke", "--out", dir.File("out"), "--runs", dir.File("runs"), option, value);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(option, err);
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    [Fact]
    public void BenchPrintsTheStepTheProductAndTheirRatio()
    {
        using var dir = new TempDir();
        var report = dir.File("bench.md");
        var (code, output, err) = LandscapeCliTests.Run("bench", "spin-glass", "--n", "12", "--starts", "7", "--rounds", "3", "--warmup", "1", "--json", "--report", report);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)))!;
        Assert.Equal(("spin-glass", 12, 7, 3), ((string)json["benchmark"]!, (int)json["n"]!, (int)json["starts"]!, (int)json["p"]!));
        Assert.Equal(3, json["step_times_ms"]!.AsArray().Count);
        Assert.Equal(3, json["product_times_ms"]!.AsArray().Count);
        var step = (double)json["step_ms"]!;
        var product = (double)json["product_ms"]!;
        Assert.True(step > 0 && product > 0);
        // The times are rounded to microseconds in the JSON, the ratio is not: it lies within what that rounding allows
        // (at N = 12 a product takes only tens of microseconds, so a fixed relative band is too tight).
        const double half = 0.0005;
        Assert.InRange((double)json["ratio"]!, (step - half) / (product + half) - 1e-12, (step + half) / (product - half) + 1e-12);
        Assert.Equal((bool)json["target_met"]!, (double)json["ratio"]! <= 2);
        Assert.True((double)json["step_gflops"]! > 0);
        Assert.True(File.Exists(report) && File.Exists(dir.File("bench.json")));
        Assert.Contains("Ratio step / product", File.ReadAllText(report));

        var refused = LandscapeCliTests.Run("bench", "spin-glass", "--n", "1");
        Assert.Equal(ExitCodes.Usage, refused.Code);
        Assert.Contains("--n", refused.Err);
    }
}
