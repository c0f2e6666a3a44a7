using WideValley.Distributed;
using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>
/// `reproduce parle` without training: the plan's arms at equal gradient evaluations, the budgets, the skipped network,
/// the refusals, the report's speed-up and verdict rules on made-up curves, and rank-0 agreement in one process.
/// </summary>
public class ParleReproductionTests
{
    static ParleRunSettings Settings(Budget budget = Budget.Small, int seeds = 2, string? cifar = null, int replicas = 3) => new()
    {
        Budget = budget,
        Seeds = seeds,
        Replicas = replicas,
        Cifar10Dir = cifar,
        RunsRoot = "/tmp/parle-plan-test/runs",
        OutDir = "/tmp/parle-plan-test/out",
        CommandLine = "widevalley reproduce parle",
        Machine = "test",
    };

    [Theory]
    [InlineData(Budget.Smoke, 3)]
    [InlineData(Budget.Small, 3)]
    [InlineData(Budget.Paper, 3)]
    [InlineData(Budget.Small, 4)]
    public void EveryArmMakesTheSameGradientEvaluationsOnEveryRank(Budget budget, int k)
    {
        var s = Settings(budget, replicas: k);
        var arms = ParleReproduction.ArmsOf(s, "lenet", 1);
        var images = ParleReproduction.Scale("lenet", budget).TrainingImages ?? 60_000;
        // Gradient evaluations per rank = the trainer's effective-epoch budget x its minibatches per pass.
        double PerRank(RunConfig c, int globalBatch) => c.EffectiveEpochBudget!.Value * images / globalBatch;
        var parle = arms[ParleReproduction.ParleArm];
        var dp = arms[ParleReproduction.DataParallelArm];
        var elastic = arms[ParleReproduction.ElasticArm];
        Assert.Equal(PerRank(parle, 128), PerRank(dp, 128 * k), 1e-9);
        Assert.Equal(PerRank(parle, 128), PerRank(elastic, 128), 1e-9);
        Assert.Equal(ParleReproduction.TotalEffectiveEpochs(parle, parle.EffectiveEpochBudget!.Value, k),
            ParleReproduction.TotalEffectiveEpochs(dp, dp.EffectiveEpochBudget!.Value, k), 1e-9);
        Assert.Equal(("parle", "parle"), (parle.Distributed, parle.Optimizer));
        Assert.Equal(("data-parallel", "sgd"), (dp.Distributed, dp.Optimizer));
        Assert.Equal(("elastic", "elastic-sgd"), (elastic.Distributed, elastic.Optimizer));
        Assert.All(arms.Values, c => Assert.Equal(128, c.BatchSize));
        Assert.All(arms.Values, c => Assert.Equal("const", c.LrSchedule));
        // Every epoch of the budget is run: the effective-epoch budget ends each run, not the epoch count.
        Assert.All(arms.Values, c => Assert.True(c.Epochs > c.EffectiveEpochBudget));
        // The grid: one effective epoch over the ranks, i.e. 1/K of a replica's pass; data-parallel SGD at its epoch ends.
        Assert.Equal(1.0 / k, parle.EvalEveryEffectiveEpochs!.Value, 1e-12);
        Assert.Null(dp.EvalEveryEffectiveEpochs);
        var sgd = Assert.IsType<SgdOptions>(dp.OptimizerOptions);
        Assert.Equal((0.1, 0.9, true), (sgd.LearningRate, sgd.Momentum, sgd.Nesterov));
    }

    [Fact]
    public void ParleKeepsTheAuthorsHyperParametersWithTheirGrowthForTheDataSize()
    {
        var s = Settings(Budget.Small);
        var parle = Assert.IsType<ParleOptions>(ParleReproduction.ArmsOf(s, "lenet", 1)[ParleReproduction.ParleArm].OptimizerOptions);
        var growth = 0.5 / Math.Ceiling(12_000 / 128.0);
        Assert.Equal(growth, ParleReproduction.CouplingGrowth(12_000), 1e-15);
        Assert.Equal(25, parle.LocalEntropy.L);
        Assert.Equal(new ExponentialScope(0.01, growth), parle.LocalEntropy.Scope);
        Assert.Equal((1.0, growth, 10.0, 1.0), (parle.ElasticRho, parle.ElasticRhoGrowth, parle.ElasticRhoMax, parle.GammaMax));
        Assert.Equal((0.1, 0.9, true), (parle.LearningRate, parle.Momentum, parle.Nesterov));
        Assert.Equal((0.1, 0.9, 0.0), (parle.LocalEntropy.LangevinLr, parle.LocalEntropy.LangevinMomentum, parle.LocalEntropy.Noise));
    }

    [Fact]
    public void ThePlanSkipsAllCnnWithoutCifarAndNamesTheReplicasInEveryFolder()
    {
        var s = Settings(seeds: 2);
        var plan = ParleReproduction.Plan(s);
        Assert.Equal(2 * 3, plan.Count);
        Assert.All(plan, r => Assert.Equal("lenet", r.Network));
        Assert.All(plan, r => Assert.Contains($"{Path.DirectorySeparatorChar}k3{Path.DirectorySeparatorChar}", r.Folder));
        Assert.Equal([1L, 1, 1, 2, 2, 2], plan.Select(r => r.Seed));
        Assert.Contains("--cifar10-dir", ParleReproduction.SkipReason(s, "allcnn"));
        var withCifar = ParleReproduction.Plan(Settings(seeds: 1, cifar: "/tmp/cifar"));
        Assert.Equal(["lenet", "allcnn"], withCifar.Select(r => r.Network).Distinct());
        Assert.Equal("cifar10", withCifar.First(r => r.Network == "allcnn").Config.Data);
    }

    [Theory]
    [InlineData(new[] { "parle", "elastic" }, 3, "--arms must include data-parallel")]
    [InlineData(new[] { "parle", "data-parallel", "adam" }, 3, "--arms: unknown arm 'adam'")]
    [InlineData(new[] { "parle", "data-parallel" }, 1, "--replicas must be at least 2")]
    public void BadSettingsAreRefusedWithTheirOption(string[] arms, int replicas, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => (Settings(replicas: replicas) with { Arms = arms }).Validate());
        Assert.Contains(expected, e.Message);
    }

    static FinishedRun Run(RunConfig config, params (double TrainerEpochs, double Seconds, double Error)[] points) =>
        new("/tmp/x", config, "finished", points[^1].Seconds, points[^1].TrainerEpochs,
            [.. points.Select((p, i) => new EpochMetrics { Epoch = 1, EffectiveEpochs = p.TrainerEpochs, GradEvals = i + 1, TestError = p.Error, TotalSeconds = p.Seconds })]);

    static IReadOnlyList<(ParlePlannedRun, FinishedRun?)> Runs(ParleRunSettings s, Func<string, long, FinishedRun?> result) =>
        [.. ParleReproduction.Plan(s).Select(r => (r, result(r.Arm, r.Seed)))];

    [Fact]
    public void TheSpeedUpComparesTheFirstPointsAtDataParallelSgdsFinalError()
    {
        var s = Settings(seeds: 1);
        var arms = ParleReproduction.ArmsOf(s, "lenet", 1);
        // Data-parallel SGD (x in total effective epochs): 12% at 3, 10% at 6 (its final). Parle (x per replica, times 3):
        // 10% at 1 replica epoch = 3 total; wall 30 s against 60 s: 2x in both.
        var results = ParleReport.Results(s, Runs(s, (arm, _) => arm switch
        {
            "data-parallel" => Run(arms[arm], (3, 30, 12), (6, 60, 10)),
            "parle" => Run(arms[arm], (1, 30, 10), (2, 60, 9.5)),
            _ => Run(arms[arm], (1, 30, 13), (2, 60, 11)),
        }));
        var n = results.Single(r => r.Network == "lenet");
        Assert.Equal(10, n.Target, 1e-12);
        Assert.Equal(2, n.ParleReach!.EpochSpeedup, 1e-12);
        Assert.Equal(2, n.ParleReach.WallSpeedup, 1e-12);
        Assert.Equal("agrees", n.SpeedVerdict);
        Assert.Equal(-0.5, n.ErrorDifference, 1e-12);
        Assert.Equal("agrees", n.ErrorVerdict);
        Assert.Contains("better", n.ErrorText);
        Assert.Null(n.Reaches.Single(r => r.Arm == "elastic").Reached);
    }

    [Fact]
    public void ParleThatNeverReachesTheErrorOrIsWorseDisagrees()
    {
        var s = Settings(seeds: 1);
        var arms = ParleReproduction.ArmsOf(s, "lenet", 1);
        var results = ParleReport.Results(s, Runs(s, (arm, _) => arm switch
        {
            "data-parallel" => Run(arms[arm], (3, 30, 12), (6, 60, 10)),
            _ => Run(arms[arm], (1, 30, 12), (2, 60, 11)),
        }));
        var n = results.Single(r => r.Network == "lenet");
        Assert.Equal("disagrees", n.SpeedVerdict);
        Assert.Contains("did not reach", n.SpeedText);
        Assert.Equal("disagrees", n.ErrorVerdict);
        Assert.Contains("worse", n.ErrorText);
        Assert.Equal("disagrees", ParleReport.Overall([n.SpeedVerdict]));
        Assert.Equal("partly", ParleReport.Overall(["agrees", "disagrees", "not judged (smoke budget)"]));
        Assert.Equal("not judged", ParleReport.Overall(["not judged: runs missing"]));
    }

    [Fact]
    public void ASpeedUpBetweenOneAndTwoIsPartlyAndSmokeJudgesNothing()
    {
        var s = Settings(seeds: 1);
        var arms = ParleReproduction.ArmsOf(s, "lenet", 1);
        FinishedRun? Result(string arm, long _) => arm switch
        {
            "data-parallel" => Run(arms[arm], (3, 30, 12), (6, 60, 10)),
            "parle" => Run(arms[arm], (1, 40, 11), (1.5, 45, 10)), // 6 / 4.5 epochs, 60 / 45 s: 1.33x
            _ => null,
        };
        var n = ParleReport.Results(s, Runs(s, Result)).Single(r => r.Network == "lenet");
        Assert.Equal(4.0 / 3, n.Speedup, 1e-12);
        Assert.Equal("partly", n.SpeedVerdict);
        Assert.Equal("agrees", n.ErrorVerdict); // comparable: 0 points
        Assert.Equal(1, n.Of("elastic")!.Pending);
        var smoke = Settings(Budget.Smoke, seeds: 1);
        var smokeArms = ParleReproduction.ArmsOf(smoke, "lenet", 1);
        var m = ParleReport.Results(smoke, Runs(smoke, (arm, _) => Run(smokeArms[arm], (1, 1, 50)))).Single(r => r.Network == "lenet");
        Assert.Equal("not judged (smoke budget)", m.SpeedVerdict);
        Assert.Equal("not judged (smoke budget)", m.ErrorVerdict);
    }

    [Fact]
    public void OneProcessAgreesWithItselfAndKeepsRankZerosException()
    {
        using var single = new SingleProcessCollectives();
        Assert.Equal([1.5, 2.5], RankAgreement.FromRoot(single, 2, () => [1.5, 2.5]));
        Assert.True(RankAgreement.FromRoot(single, () => true));
        var e = Assert.Throws<InvalidDataException>(() => RankAgreement.FromRoot(single, 1, () => throw new InvalidDataException("folder holds another run")));
        Assert.Equal("folder holds another run", e.Message);
        Assert.Throws<InvalidOperationException>(() => RankAgreement.FromRoot(single, 2, () => [1.0]));
    }

    [Fact]
    public void TheSettingsLineSaysTheReplicasCoupling()
    {
        var parle = new RunConfig { Model = "lenet", Optimizer = "parle", OptimizerOptions = new ParleOptions(), Distributed = "parle" };
        var said = ComparisonReport.Settings(parle);
        Assert.Contains("momentum 0.9 (Nesterov)", said);
        Assert.Contains("L = 25", said);
        Assert.Contains("gamma capped at 1, rho 1 growing by 0.001 per outer step to at most 10", said);
        var elastic = new RunConfig { Model = "lenet", Optimizer = "elastic-sgd", OptimizerOptions = new ElasticSgdOptions { ElasticRhoGrowth = 0 }, Distributed = "elastic" };
        Assert.Contains("rho 1 (constant)", ComparisonReport.Settings(elastic));
        Assert.Contains("rho 1 growing by 0.001 per step to at most 10", ComparisonReport.Settings(elastic with { OptimizerOptions = new ElasticSgdOptions() }));
        Assert.DoesNotContain("rho", ComparisonReport.Settings(new RunConfig { Model = "lenet", Optimizer = "sgd" }));
    }
}
