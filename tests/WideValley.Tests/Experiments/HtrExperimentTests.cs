using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>`reproduce htr`: the authors' Fashion-MNIST grid as configured, the budgets' scaling, trace files, and the smoke run end to end.</summary>
public class HtrExperimentTests
{
    static HtrRunSettings Settings(Budget budget, string runs = "/tmp/htr-runs") =>
        new() { Budget = budget, RunsRoot = runs, OutDir = "/tmp/htr-out", CommandLine = "c", Machine = "m" };

    [Fact]
    public void PaperBudgetIsTheAuthorsFashionMnistGrid()
    {
        var s = Settings(Budget.Paper);
        var sgd = HtrExperiment.Config(s, "sgd", 5);
        Assert.Equal(("lenet5", "fashion-mnist", 256, 30, "after:4:10,20", (long?)null, 5L), (sgd.Model, sgd.Data, sgd.BatchSize, sgd.Epochs, sgd.LrSchedule, sgd.MaxTrainSamples, sgd.Seed));
        Assert.Equal("unit", sgd.Scaling);
        Assert.Null(sgd.HessianTrace);
        var o = Assert.IsType<SgdOptions>(sgd.ResolvedOptimizerOptions);
        Assert.Equal((0.01, 0.9, false, 0.0), (o.LearningRate, o.Momentum, o.Nesterov, o.WeightDecay));

        var l2 = HtrExperiment.Config(s, "sgd-l2", 5);
        Assert.Equal(1e-13, Assert.IsType<SgdOptions>(l2.ResolvedOptimizerOptions).WeightDecay);
        Assert.Equal(sgd with { OptimizerOptions = l2.OptimizerOptions }, l2);

        // HTR: sp 20 (0-based) is our 1-based start epoch 21; 40 epochs; gamma 1e-5, freq 50, K 10, Gaussian, all tensors.
        var htr = HtrExperiment.Config(s, "sgd-htr", 5);
        Assert.Equal(40, htr.Epochs);
        var h = htr.HessianTrace!;
        Assert.Equal((1e-5, 10, 50, 21, HessianTraceProbe.Gaussian, HessianTraceParameters.All, 5L), (h.Gamma, h.Probes, h.Frequency, h.StartEpoch, h.Probe, h.Parameters, h.Seed));
        Assert.Equal(sgd with { Epochs = 40, HessianTrace = h }, htr);
        var middle = HtrExperiment.Config(s, "sgd-htr-middle", 5).HessianTrace!;
        Assert.Equal(h with { Gamma = 1e-6, Parameters = HessianTraceParameters.AuthorsMiddle }, middle);
        Assert.Equal(1.0, HtrExperiment.ComputeFraction(Budget.Paper));
    }

    [Fact]
    public void SmallBudgetHalvesEpochsMilestonesAndSpOnAQuarterOfTheImages()
    {
        var s = Settings(Budget.Small);
        var sgd = HtrExperiment.Config(s, "sgd", 1);
        var htr = HtrExperiment.Config(s, "sgd-htr", 1);
        Assert.Equal((15, "after:4:5,10", (long?)15_000), (sgd.Epochs, sgd.LrSchedule, sgd.MaxTrainSamples));
        Assert.Equal(20, htr.Epochs);
        Assert.Equal(11, htr.HessianTrace!.StartEpoch); // the authors' sp 20 halved is 10, i.e. from our epoch 11
        Assert.Equal(0.125, HtrExperiment.ComputeFraction(Budget.Small));
        Assert.Contains("0.125 of the paper's training compute", HtrExperiment.DescribeBudget(Budget.Small));
    }

    [Fact]
    public void PlanPairsEveryArmBySeedInSeparateFolders()
    {
        var plan = HtrExperiment.Plan(Settings(Budget.Paper) with { Seeds = 2, FirstSeed = 4 });
        Assert.Equal(10, plan.Count);
        Assert.Equal(["sgd", "sgd-l2", "sgd-htr", "sgd-htr-middle", "sgd-long", "sgd", "sgd-l2", "sgd-htr", "sgd-htr-middle", "sgd-long"], plan.Select(r => r.Arm));
        Assert.Equal([4L, 4, 4, 4, 4, 5, 5, 5, 5, 5], plan.Select(r => r.Seed));
        Assert.Equal(10, plan.Select(r => r.Folder).Distinct().Count());
        Assert.EndsWith("/htr-paper/lenet5/sgd-long/seed-5", plan[^1].Folder);
        // The epoch-matched control (ours) is SGD with SGD's settings for the HTR arms' epochs.
        var control = plan[^1].Config;
        var sgd = plan[5].Config;
        Assert.Equal((HtrExperiment.HtrEpochs, (HessianTraceRegularizerOptions?)null), (control.Epochs, control.HessianTrace));
        Assert.Equal(sgd with { Epochs = control.Epochs }, control);
        Assert.Throws<ArgumentException>(() => HtrExperiment.Plan(Settings(Budget.Paper) with { Model = "char-lstm" }));
    }

    [Fact]
    public void ATraceFileMeasuredUnderOtherSettingsIsRefusedNamingIt()
    {
        using var dir = new TempDir();
        var folder = dir.File("run");
        Directory.CreateDirectory(folder);
        var small = HtrExperiment.Scale(Budget.Small);
        Assert.Null(HtrExperiment.ReadTrace(folder, small));
        var path = Path.Combine(folder, HtrExperiment.TraceFileName);
        File.WriteAllText(path, new JsonObject { ["trace"] = 12.5, ["standard_error"] = 0.5, ["probes"] = small.TraceProbes, ["samples"] = small.TraceSamples, ["probe_seed"] = 0, ["epoch"] = 20 }.ToJsonString());
        Assert.Equal(new HtrTrace(12.5, 0.5, small.TraceProbes, small.TraceSamples, 0, 20), HtrExperiment.ReadTrace(folder, small));
        var e = Assert.Throws<InvalidDataException>(() => HtrExperiment.ReadTrace(folder, HtrExperiment.Scale(Budget.Paper)));
        Assert.Contains(path, e.Message);
        File.WriteAllText(path, "{ not json");
        Assert.Contains("not a trace file", Assert.Throws<InvalidDataException>(() => HtrExperiment.ReadTrace(folder, small)).Message);
    }

    [Fact]
    public void VerdictsJudgePairedDifferencesAgainstTwoStandardErrors()
    {
        var s = Settings(Budget.Small);
        var results = new List<HtrRunResult>();
        // SGD 6.0, 6.2, 6.4; HTR lower by 0.5, 0.6, 0.4 (mean -0.5, SE 0.058: agrees); middle higher by 0.1, -0.1, 0.3 (disagrees).
        // The epoch-matched control 5.4, 5.5, 5.9: HTR is higher than it by 0.1 each time (disagrees against the control).
        double[] sgd = [6.0, 6.2, 6.4], htr = [5.5, 5.6, 6.0], middle = [6.1, 6.1, 6.7], control = [5.4, 5.5, 5.9];
        foreach (var (arm, errors) in new[] { ("sgd", sgd), ("sgd-htr", htr), ("sgd-htr-middle", middle), ("sgd-l2", sgd), ("sgd-long", control) })
            for (var k = 0; k < 3; k++)
            {
                var run = new HtrPlannedRun(arm, k + 1, HtrExperiment.Config(s, arm, k + 1), "/x");
                var history = new List<EpochMetrics> { new() { Epoch = 1, TestError = errors[k] } };
                results.Add(new HtrRunResult(run, new FinishedRun("/x", run.Config, "finished", 1, 1, history), null));
            }
        var verdicts = HtrReport.Verdicts(s, results);
        Assert.Equal("agrees", verdicts[0].Word);
        Assert.Equal(-0.5, verdicts[0].Mean, 1e-12);
        Assert.Equal("disagrees", verdicts[1].Word);
        Assert.Equal("not testable", verdicts[2].Word); // no traces measured
        Assert.Equal(("sgd-htr", "sgd-long", "test error", "disagrees"), (verdicts[4].Arm, verdicts[4].Baseline, verdicts[4].Quantity, verdicts[4].Word));
        Assert.Equal(0.1, verdicts[4].Mean, 1e-12);
        Assert.Equal("not testable", HtrReport.Verdicts(s with { Budget = Budget.Smoke }, results)[0].Word);
    }

    [Fact]
    public void SmokeRunWritesAWellFormedReportAndASecondRunTrainsAndMeasuresNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "htr", "--budget", "smoke", "--seeds", "1", "--threads", "2", "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("5 runs planned, 0 finished already, 5 to train", output);
        foreach (var arm in HtrExperiment.Arms)
            Assert.True(File.Exists(dir.File($"runs/htr-smoke/lenet5/{arm}/seed-1/{HtrExperiment.TraceFileName}")), arm);
        var md = dir.File("report/htr-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("widevalley reproduce htr --seeds 1 --budget smoke --threads 2", text);
        Assert.Contains("| SGD+HTR | 4 |", text);
        Assert.Contains("| SGD, HTR arms' epochs (ours) | 4 |", text);
        Assert.Contains("SGD+HTR − SGD, HTR arms' epochs (ours), test error", text);
        Assert.Contains("5.43 ± 0.10", text);
        Assert.Contains("3d4ce32", text);
        Assert.Contains("No augmentation", text);
        Assert.Contains("**not testable**", text);
        ReproduceReportChecks.AssertImagesExist(md);
        var json = ReproduceReportChecks.ReadJson(dir.File("report/htr-smoke.json"));
        var arms = json["arms"]!.AsArray();
        Assert.Equal(HtrExperiment.Arms, arms.Select(a => a!["arm"]!.GetValue<string>()));
        foreach (var arm in arms)
        {
            Assert.Equal(1, arm!["seeds_finished"]!.GetValue<int>());
            Assert.InRange(arm["test_error_mean"]!.GetValue<double>(), 0, 100);
            Assert.True(double.IsFinite(arm["trace_mean"]!.GetValue<double>()));
        }
        Assert.Equal("middle", arms[3]!["htr"]!["parameters"]!.GetValue<string>());
        Assert.Equal(8, json["verdicts"]!.AsArray().Count);

        var (again, secondOutput, secondErr) = InProcessCli.Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Contains("5 runs planned, 5 finished already, 0 to train", secondOutput);
        Assert.DoesNotContain("Hutchinson trace", secondOutput + secondErr);
    }

    [Theory]
    [InlineData(new[] { "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "--model", "char-lstm" }, "--model char-lstm: expected a zoo image classifier")]
    [InlineData(new[] { "--fashion-mnist-dir", "/nonexistent/fashion" }, "--fashion-mnist-dir /nonexistent/fashion: no such folder")]
    public void BadOptionsExitWithAUsageError(string[] options, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run(["reproduce", "htr", "--runs", dir.File("runs"), "--out", dir.File("out"), .. options]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
    }
}
