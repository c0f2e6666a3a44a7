using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>`reproduce adine`: the arms as configured, the epochs-to-target measure, the verdict rules, and the smoke run end to end.</summary>
public class AdineExperimentTests
{
    static AdineRunSettings Settings(Budget budget) => new() { Budget = budget, RunsRoot = "/tmp/adine-runs", OutDir = "/tmp/adine-out", CommandLine = "c", Machine = "m" };

    [Theory]
    [InlineData(Budget.Paper, 20, null)]
    [InlineData(Budget.Small, 10, 15_000L)]
    public void ArmsDifferOnlyInTheOptimizerAtEqualLearningRateAndEpochs(Budget budget, int epochs, long? images)
    {
        foreach (var network in new[] { "lenet", "mnistfc" })
        {
            var sgd = AdineExperiment.Config(Settings(budget), network, "sgd", 3);
            var adine = AdineExperiment.Config(Settings(budget), network, "adine", 3);
            Assert.Equal((network, epochs, images, "const", 128, true), (sgd.Model, sgd.Epochs, sgd.MaxTrainSamples, sgd.LrSchedule, sgd.BatchSize, sgd.EvalTrain));
            Assert.Equal(sgd with { Optimizer = adine.Optimizer, OptimizerOptions = adine.OptimizerOptions }, adine);
            var s = Assert.IsType<SgdOptions>(sgd.ResolvedOptimizerOptions);
            var a = Assert.IsType<AdineOptions>(adine.ResolvedOptimizerOptions);
            Assert.Equal(new AdineOptions(), a); // ADINE's own defaults
            Assert.Equal((a.LearningRate, 0.9, false, 0.0), (s.LearningRate, s.Momentum, s.Nesterov, s.WeightDecay));
        }
        Assert.Equal(budget == Budget.Paper ? 1.0 : 0.125, AdineExperiment.ComputeFraction(budget));
    }

    static List<EpochMetrics> History(params double[] losses) =>
        losses.Select((l, i) => new EpochMetrics { Epoch = i + 1, TrainEvalLoss = l, TestError = 10 }).ToList();

    [Fact]
    public void EpochsToReachIsTheFirstEpochAtOrBelowTheTarget()
    {
        var h = History(1.0, 0.6, 0.5, 0.55, 0.4);
        Assert.Equal(3, AdineExperiment.EpochsToReach(h, 0.5));
        Assert.Equal(2, AdineExperiment.EpochsToReach(h, 0.6));
        Assert.Equal(5, AdineExperiment.EpochsToReach(h, 0.45));
        Assert.Null(AdineExperiment.EpochsToReach(h, 0.3));
        Assert.Null(AdineExperiment.EpochsToReach([new EpochMetrics { Epoch = 1 }], 5)); // no whole-set measure
    }

    static (AdinePlannedRun, FinishedRun?) Run(AdineRunSettings s, string arm, long seed, List<EpochMetrics> history, double testError, string status = "finished")
    {
        history[^1].TestError = testError;
        var run = new AdinePlannedRun("lenet", arm, seed, AdineExperiment.Config(s, "lenet", arm, seed), "/x");
        return (run, new FinishedRun("/x", run.Config, status, 1, history.Count, history));
    }

    [Fact]
    public void VerdictsFollowTheStatedRules()
    {
        var s = Settings(Budget.Small) with { Networks = ["lenet"] };
        // SGD ends at 0.30 after 6 epochs; ADINE reaches 0.30 at epoch 3 and 4 (<= 2/3 of 6): much faster.
        var fast = new[]
        {
            Run(s, "sgd", 1, History(1, 0.8, 0.6, 0.5, 0.4, 0.30), 10.0), Run(s, "adine", 1, History(0.9, 0.5, 0.3, 0.2, 0.2, 0.2), 10.1),
            Run(s, "sgd", 2, History(1, 0.8, 0.6, 0.5, 0.4, 0.30), 10.4), Run(s, "adine", 2, History(0.9, 0.5, 0.35, 0.3, 0.2, 0.2), 10.3),
        };
        var v = Assert.Single(AdineReport.Verdicts(s, fast));
        Assert.Equal([3, 4], v.Pairs.Select(p => p.AdineEpochs!.Value));
        Assert.Equal([6, 6], v.Pairs.Select(p => p.SgdEpochs));
        Assert.Equal("agrees", v.Convergence);
        Assert.Equal("agrees", v.Generalisation); // +0.1 and -0.1: no difference
        // ADINE at epoch 5 on one seed: earlier, not much earlier.
        var slower = fast.ToArray();
        slower[3] = Run(s, "adine", 2, History(0.9, 0.5, 0.4, 0.35, 0.3, 0.2), 11.4);
        v = Assert.Single(AdineReport.Verdicts(s, slower));
        Assert.Equal("partly", v.Convergence);
        // Never reaching it (or diverging) disagrees; a test error higher on both seeds by a steady margin disagrees.
        var never = fast.ToArray();
        never[1] = Run(s, "adine", 1, History(0.9, 0.8, 0.7, 0.6, 0.5, 0.4), 12.0);
        never[3] = Run(s, "adine", 2, History(0.9, 0.5, 0.4, 0.35, 0.3, 0.2), 12.3);
        v = Assert.Single(AdineReport.Verdicts(s, never));
        Assert.Equal("disagrees", v.Convergence);
        Assert.Equal("disagrees", v.Generalisation); // +2.0 and +1.9
        Assert.Equal("not testable", Assert.Single(AdineReport.Verdicts(s with { Budget = Budget.Smoke }, fast)).Convergence);
    }

    [Fact]
    public void SmokeRunWritesAWellFormedReportAndASecondRunTrainsNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "adine", "--budget", "smoke", "--seeds", "2", "--nets", "mnistfc", "--threads", "2", "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("4 runs planned, 0 finished already, 4 to train", output);
        Assert.Contains("mnistfc: 2 seed pair(s); much faster convergence: not testable", output);
        var md = dir.File("report/adine-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("widevalley reproduce adine --seeds 2 --budget smoke --nets mnistfc --threads 2", text);
        Assert.Contains("| mnistfc |", text);
        Assert.Contains("our design", text);
        ReproduceReportChecks.AssertImagesExist(md);
        var json = ReproduceReportChecks.ReadJson(dir.File("report/adine-smoke.json"));
        var network = Assert.Single(json["networks"]!.AsArray())!;
        Assert.Equal(2, network["pairs"]!.AsArray().Count);
        foreach (var run in network["runs"]!.AsArray())
        {
            Assert.Equal(AdineExperiment.SmokeEpochs, run!["training_loss_by_epoch"]!.AsArray().Count);
            Assert.InRange(run["test_error"]!.GetValue<double>(), 0, 100);
        }
        Assert.Equal("not testable", network["convergence_verdict"]!.GetValue<string>());

        var (again, secondOutput, secondErr) = InProcessCli.Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Contains("4 runs planned, 4 finished already, 0 to train", secondOutput);
    }

    [Theory]
    [InlineData(new[] { "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "--nets", "lenet,resnet" }, "--nets: unknown network 'resnet'")]
    [InlineData(new[] { "--nets", "lenet,lenet" }, "--nets: network 'lenet' is given twice")]
    public void BadOptionsExitWithAUsageError(string[] options, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run(["reproduce", "adine", "--runs", dir.File("runs"), "--out", dir.File("out"), .. options]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
    }
}
