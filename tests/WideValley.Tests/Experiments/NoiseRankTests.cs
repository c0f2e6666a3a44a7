using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>
/// `reproduce noise-rank`: the smoke budget end to end (report contents, resuming, refusal of other settings, bad
/// options) and the verdict rules on hand-made pieces whose answers are known.
/// </summary>
public sealed class NoiseRankTests
{
    [Fact]
    public void SmokeWritesAWellFormedReportReusesItsPiecesAndRefusesOtherSettings()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "noise-rank", "--budget", "smoke", "--threads", "2", "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("(2 pieces computed, 0 reused)", output);
        Assert.Contains(output.Split('\n'), l => l.StartsWith("(1) noise raises the rank of the product", StringComparison.Ordinal));
        Assert.Contains(output.Split('\n'), l => l.StartsWith("(2) noise helps reach the global optimum", StringComparison.Ordinal));
        foreach (var file in new[] { "noise-rank-smoke.md", "noise-rank-smoke.json", "noise-rank-smoke.csv", "noise-rank-smoke-spectra.csv",
                     "noise-rank-smoke-L3-w8-rank-deficient.png", "noise-rank-smoke-L3-w8-standard.svg" })
            Assert.True(File.Exists(dir.File($"report/{file}")), $"{file} was not written");
        Assert.Empty(dir.Leftovers());

        var md = dir.File("report/noise-rank-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("widevalley reproduce noise-rank --budget smoke --threads 2 --out", text);
        Assert.Contains("the protocol below is ours", text);
        Assert.Contains("## L = 3, width 8, d_0 = d_L = 8, rank-deficient start", text);
        Assert.Contains("| gradient 0.1 |", text);
        ReproduceReportChecks.AssertImagesExist(md);

        var json = ReproduceReportChecks.ReadJson(dir.File("report/noise-rank-smoke.json"));
        Assert.Equal("smoke", json["budget"]!.GetValue<string>());
        var pieces = json["pieces"]!.AsArray();
        Assert.Equal(["rank-deficient", "standard"], pieces.Select(p => p!["start"]!.GetValue<string>()));
        // Smoke: target rank 4, width 8, so the rank-deficient start has rank 2 and the standard start full rank 8.
        Assert.Equal(2, pieces[0]!["init_rank"]!.GetValue<int>());
        var deficient = pieces[0]!["conditions"]!.AsArray();
        Assert.Equal(6, deficient.Count);
        // Without noise, and with input or output noise, the rank-deficient start keeps rank 2 exactly (the invariant).
        foreach (var kind in new[] { "none", "inputs", "outputs" })
        {
            var c = deficient.Single(x => x!["kind"]!.GetValue<string>() == kind)!;
            Assert.Equal(2.0, c["final_rank"]!["mean"]!.GetValue<double>());
            Assert.Equal(0, c["reached_optimum"]!.GetValue<int>());
        }
        var gradient = deficient.Single(x => x!["kind"]!.GetValue<string>() == "gradient")!;
        Assert.Equal(2, gradient["rank_above_no_noise"]!.GetValue<int>());
        Assert.Equal(8.0, pieces[1]!["conditions"]![0]!["final_rank"]!["mean"]!.GetValue<double>());
        Assert.NotNull(json["claims"]!["noise_raises_rank"]);

        var (again, secondOutput, secondErr) = InProcessCli.Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Contains("(0 pieces computed, 2 reused)", secondOutput);

        var (refused, _, refusal) = InProcessCli.Run([.. args, "--steps", "50"]);
        Assert.Equal(ExitCodes.Failure, refused);
        Assert.Contains("other settings", refusal);
    }

    [Fact]
    public void DivergedRunsAreReportedAsSuchAndTheirPiecesReadBack()
    {
        using var dir = new TempDir();
        string[] args = ["reproduce", "noise-rank", "--budget", "smoke", "--lr", "3", "--steps", "60", "--json", "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        var json = System.Text.Json.Nodes.JsonNode.Parse(output)!.AsObject();
        Assert.Equal("not testable (diverged)", json["claims"]!["noise_raises_rank"]!.GetValue<string>());
        var none = json["pieces"]![0]!["conditions"]![0]!;
        Assert.Equal(2, none["diverged"]!.GetValue<int>());
        Assert.Null(none["final_rank"]!["mean"]);
        // The pieces hold NaN losses; they must read back.
        var (again, secondOutput, secondErr) = InProcessCli.Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Equal(2, System.Text.Json.Nodes.JsonNode.Parse(secondOutput)!["pieces_reused"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("--depth", "1", "--depth must be at least 2")]
    [InlineData("--target-rank", "9", "--target-rank must be between 1 and the input/output dimension 8")]
    [InlineData("--gradient-scales", "0.1,x", "--gradient-scales: 'x' is not a number")]
    [InlineData("--weights-scales", "-0.1", "--weights-scales: every scale must be positive")]
    public void BadOptionsAreUsageErrorsNamingTheOption(string option, string value, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run("reproduce", "noise-rank", "--budget", "smoke", option, value, "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(dir.File("runs")), "nothing may run before the options are checked");
    }

    static NoiseRankRun Run(long seed, NoiseRankKind kind, double scale, int finalRank, double finalExcess) =>
        new(seed, kind, scale, ZeroLoss: 10, OptimalLoss: 0, Loss: [10, finalExcess], ExcessLoss: [10, finalExcess], Distance: [3, Math.Sqrt(2 * finalExcess)],
            Rank: [2, finalRank], Spectrum: [[2, 1, 0], [2, 1, finalRank > 2 ? 0.5 : 1e-17]], LayerRanks: [[2, 2], [finalRank, finalRank]]);

    [Fact]
    public void VerdictRulesPairSeedsWithTheNoNoiseRun()
    {
        var settings = new NoiseRankSettings
        {
            Seeds = 3, GradientScales = [0.1, 0.3], WeightScales = [0.1], ActivationScales = [0.1], InputScales = [0.1], OutputScales = [0.1],
        };
        var runs = new List<NoiseRankRun>();
        for (var seed = 1; seed <= 3; seed++)
        {
            runs.Add(Run(seed, NoiseRankKind.None, 0, 2, 2.0));
            // Gradient 0.1 raises the rank in seeds 1 and 2 only; 0.3 in every seed and reaches the optimum (excess 1e-3 of L(0) = 0.01).
            runs.Add(Run(seed, NoiseRankKind.Gradient, 0.1, seed < 3 ? 3 : 2, 1.0));
            runs.Add(Run(seed, NoiseRankKind.Gradient, 0.3, 3, 0.005));
            runs.Add(Run(seed, NoiseRankKind.Weights, 0.1, seed == 1 ? 3 : 2, seed == 1 ? 0.005 : 2.0));
            runs.Add(Run(seed, NoiseRankKind.Activations, 0.1, 2, 2.0));
            runs.Add(Run(seed, NoiseRankKind.Inputs, 0.1, 2, 2.0));
            runs.Add(Run(seed, NoiseRankKind.Outputs, 0.1, 1, 2.0));
        }
        var piece = new NoiseRankPiece(3, 3, 3, NoiseRankStart.RankDeficient, 2, [0, 100], runs, 1);
        var summaries = NoiseRankReport.Summaries(settings, piece);
        var gradientLow = summaries.Single(x => x.Condition == new NoiseRankCondition(NoiseRankKind.Gradient, 0.1));
        Assert.Equal(2, gradientLow.RankAboveNone);
        Assert.Equal(0, gradientLow.Reached);
        var gradientHigh = summaries.Single(x => x.Condition == new NoiseRankCondition(NoiseRankKind.Gradient, 0.3));
        Assert.Equal(3, gradientHigh.Reached);
        Assert.Equal(3, gradientHigh.ReachedWhereNoneDidNot);
        Assert.Equal(100, gradientHigh.MeanStepsToReach);
        Assert.Equal(3.0, gradientHigh.Rank.Mean);
        Assert.Equal(3, summaries.Single(x => x.Condition.Kind == NoiseRankKind.Outputs).RankBelowNone);

        var claims = NoiseRankReport.Claims(settings, piece).ToDictionary(c => c.Kind);
        Assert.Equal("raises", claims[NoiseRankKind.Gradient].RankVerdict);
        Assert.Equal(0.3, claims[NoiseRankKind.Gradient].RankScale);
        Assert.Equal("helps", claims[NoiseRankKind.Gradient].OptimumVerdict);
        Assert.Equal("partly", claims[NoiseRankKind.Weights].RankVerdict);
        Assert.Equal("partly helps", claims[NoiseRankKind.Weights].OptimumVerdict);
        Assert.Equal("does not raise", claims[NoiseRankKind.Activations].RankVerdict);
        Assert.Equal("does not help", claims[NoiseRankKind.Activations].OptimumVerdict);
        Assert.Equal("does not raise", claims[NoiseRankKind.Outputs].RankVerdict);
    }
}
