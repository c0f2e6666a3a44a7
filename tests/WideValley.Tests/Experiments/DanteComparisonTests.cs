using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>`reproduce dante`'s protocol (arms that differ only in the optimizer, budgets, folders) and its verdict rule.</summary>
public class DanteComparisonTests
{
    static DanteRunSettings Settings(Budget budget = Budget.Small) =>
        new() { Budget = budget, RunsRoot = "/tmp/runs", OutDir = "/tmp/out", CommandLine = "c", Machine = "m" };

    [Theory]
    [InlineData(Budget.Paper, 50, null)]
    [InlineData(Budget.Small, 10, null)]
    [InlineData(Budget.Smoke, 1, 512L)]
    public void TheArmsDifferOnlyInTheOptimizer(Budget budget, int epochs, long? images)
    {
        var s = Settings(budget);
        var arms = DanteComparison.ArmsOf(s, "mlp2-sigmoid", seed: 4);
        Assert.Equal(new[] { "dante", "sgd", "adam" }, DanteComparison.Arms);
        var dante = arms["dante"];
        Assert.Equal((epochs, images, 128, "const", 4L, "mlp2-sigmoid"), (dante.Epochs, dante.MaxTrainSamples, dante.BatchSize, dante.LrSchedule, dante.Seed, dante.Model));
        foreach (var arm in new[] { "sgd", "adam" })
            Assert.Equal(dante with { Optimizer = arms[arm].Optimizer, OptimizerOptions = arms[arm].OptimizerOptions }, arms[arm]);
        var d = Assert.IsType<DanteOptions>(dante.ResolvedOptimizerOptions);
        Assert.Equal((DanteComparison.DefaultDanteLearningRate, 0L, DanteOrder.Forward), (d.LearningRate, d.StepsPerBlock, d.SweepOrder));
        var sgd = Assert.IsType<SgdOptions>(arms["sgd"].ResolvedOptimizerOptions);
        Assert.Equal((0.05, 0.9), (sgd.LearningRate, sgd.Momentum));
        Assert.Equal(1e-3, Assert.IsType<AdamOptions>(arms["adam"].ResolvedOptimizerOptions).LearningRate);
        Assert.Equal(3 * 6 * 3, DanteComparison.Plan(s).Count);
        Assert.Equal(DanteComparison.Plan(s).Count, DanteComparison.Plan(s).Select(r => r.Folder).Distinct().Count());
        // Another eta gets its own folders and report.
        var other = s with { DanteLearningRate = 0.5 };
        Assert.NotEqual(DanteComparison.RunFolder(s, "mlp1-relu", "dante", 1), DanteComparison.RunFolder(other, "mlp1-relu", "dante", 1));
        Assert.Equal(DanteComparison.RunFolder(s, "mlp1-relu", "sgd", 1), DanteComparison.RunFolder(other, "mlp1-relu", "sgd", 1));
        Assert.NotEqual(DanteReport.Stem(s), DanteReport.Stem(other));
    }

    static FinishedRun Finished(string arm, double testError, double seconds, bool diverged = false) =>
        new($"/tmp/{arm}", new RunConfig(), diverged ? "diverged" : "completed", seconds, 10,
            [new EpochMetrics { Epoch = 10, TestError = testError, TrainEvalLoss = 0.3 }]);

    static IReadOnlyList<(DantePlannedRun, FinishedRun?)> Runs(DanteRunSettings s, params (string Arm, long Seed, double Error, double Seconds)[] results) =>
        DanteComparison.Plan(s with { Networks = ["mlp1-relu"] })
            .Select(r => (r, results.Where(x => x.Arm == r.Arm && x.Seed == r.Seed).Select(x => (FinishedRun?)Finished(x.Arm, x.Error, x.Seconds)).FirstOrDefault()))
            .ToList();

    [Fact]
    public void TheVerdictComparesWithTheBetterBackpropArmAndSgdsWallTime()
    {
        var s = Settings() with { Seeds = 2, Networks = ["mlp1-relu"] };
        // DANTE 13.5 vs Adam 12.6 (better than SGD's 14): within 1 point; time 1.05x SGD's: competitive on both.
        var agree = DanteReport.Verdicts(s, Runs(s, ("dante", 1, 13, 10.5), ("dante", 2, 14, 10.5), ("sgd", 1, 14, 10), ("sgd", 2, 14, 10),
            ("adam", 1, 12.5, 30), ("adam", 2, 12.7, 30))).Single();
        Assert.Equal("adam", agree.BestBackprop!.Arm);
        Assert.Equal(13.5 - 12.6, agree.QualityGap, 1e-12);
        Assert.Equal(1.05, agree.TimeRatio, 1e-12);
        Assert.Equal("agrees", agree.Verdict);
        // 1.5 points worse, but faster: partly.
        var partly = DanteReport.Verdicts(s, Runs(s, ("dante", 1, 15.5, 5), ("dante", 2, 15.5, 5), ("sgd", 1, 14, 10), ("sgd", 2, 14, 10),
            ("adam", 1, 16, 10), ("adam", 2, 16, 10))).Single();
        Assert.Equal(("sgd", false, true, "partly"), (partly.BestBackprop!.Arm, partly.QualityCompetitive, partly.SpeedCompetitive, partly.Verdict));
        // Worse and slower: disagrees.
        var disagree = DanteReport.Verdicts(s, Runs(s, ("dante", 1, 20, 12), ("sgd", 1, 14, 10), ("adam", 1, 15, 10))).Single();
        Assert.Equal("disagrees", disagree.Verdict);
        Assert.Equal("disagrees", DanteReport.Overall([disagree]));
        Assert.Equal("partly", DanteReport.Overall([agree, disagree]));
        Assert.Equal("disagrees", DanteReport.Overall([partly, disagree])); // quality fails on both: the conjunction fails everywhere
        // An arm without a finished run: no verdict.
        var pending = DanteReport.Verdicts(s, Runs(s, ("dante", 1, 13, 10), ("sgd", 1, 14, 10))).Single();
        Assert.False(pending.Judged);
        Assert.StartsWith("not testable", DanteReport.Overall([pending]));
    }

    [Fact]
    public void BadSettingsAreRefusedByTheirOption()
    {
        Assert.Contains("--nets: unknown network 'lenet'", Assert.Throws<ArgumentException>(() => DanteComparison.Plan(Settings() with { Networks = ["lenet"] })).Message);
        Assert.Contains("--seeds must be at least 1", Assert.Throws<ArgumentException>(() => DanteComparison.Plan(Settings() with { Seeds = 0 })).Message);
        Assert.Contains("--dante-lr must be a positive number", Assert.Throws<ArgumentException>(() => DanteComparison.Plan(Settings() with { DanteLearningRate = double.NaN })).Message);
    }
}
