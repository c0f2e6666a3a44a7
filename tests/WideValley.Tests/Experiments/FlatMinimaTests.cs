using WideValley.Cli;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>
/// `reproduce flat-minima`: the search (chosen by validation error, the same trial count for every arm), equal-cost
/// accounting, the verdict and rank-correlation code on hand-made numbers, and a smoke run end to end.
/// </summary>
public class FlatMinimaTests
{
    static FlatMinimaSettings Settings(Budget budget, string runs = "/tmp/flat-minima-runs") =>
        new() { Budget = budget, RunsRoot = runs, OutDir = "/tmp/flat-minima-out", CommandLine = "c", Machine = "m" };

    static FlatMinimaTrialResult Trial(FlatMinimaArm arm, int index, double? validationError, string status = "finished")
    {
        var network = FlatMinimaDesign.Network("mnistfc");
        var candidate = FlatMinimaDesign.Grid(arm, network)[index];
        var trial = new FlatMinimaTrial(network, arm, index, candidate, new RunConfig(), "/x");
        if (validationError is null) return new FlatMinimaTrialResult(trial, null);
        var history = new List<EpochMetrics> { new() { Epoch = 1, ValError = 90 }, new() { Epoch = 2, ValError = validationError } };
        return new FlatMinimaTrialResult(trial, new FinishedRun("/x", trial.Config, status, 1, 1, history));
    }

    [Fact]
    public void TheSearchChoosesTheLowestFinalValidationErrorAndGivesEveryArmTheSameTrials()
    {
        var sam = FlatMinimaDesign.Arm("sam");
        // The final epoch's validation error decides (not the earlier 90); a diverged trial never wins; a tie goes to the first.
        Assert.Equal(1, FlatMinimaExperiment.Choose([Trial(sam, 0, 12.5), Trial(sam, 1, 11.0), Trial(sam, 2, 1.0, "diverged"), Trial(sam, 3, 11.0)]));
        Assert.Equal(0, FlatMinimaExperiment.Choose([Trial(sam, 0, 30), Trial(sam, 1, 31)]));
        Assert.Null(FlatMinimaExperiment.Choose([Trial(sam, 0, 10), Trial(sam, 1, null)])); // a pending trial: no choice yet

        foreach (var network in FlatMinimaDesign.Networks)
            foreach (var arm in FlatMinimaDesign.Arms.Where(a => FlatMinimaDesign.Applies(a, network)))
                Assert.Equal(FlatMinimaDesign.GridSize, FlatMinimaDesign.Grid(arm, network).Count);
        var s = Settings(Budget.Small) with { Networks = ["lenet", "mnistfc"], SearchTrials = 3 };
        var trials = FlatMinimaExperiment.PlanSearch(s);
        // Every arm but DANTE (defined for one hidden layer only) on both networks.
        Assert.Equal(2 * (FlatMinimaDesign.Arms.Count - 1) * 3, trials.Count);
        Assert.DoesNotContain(trials, t => t.Arm.Key == "dante");
        Assert.All(trials.GroupBy(t => (t.Network, t.Arm)), g => Assert.Equal(3, g.Count()));
        // Every trial: the same seed, the same split (10% of 12,000 held out) and the same cost.
        Assert.All(trials, t =>
        {
            Assert.Equal(FlatMinimaDesign.SearchSeed, t.Config.Seed);
            Assert.Equal((10_800L, 1_200L), (t.Config.MaxTrainSamples!.Value, t.Config.ValidationSize));
            Assert.Equal(5, t.Config.EffectiveEpochBudget!.Value * FlatMinimaDesign.CostPerCountedGradient(t.Config), 9);
        });
        // The paper budget searches at the small budget, in the same folders.
        var paper = FlatMinimaExperiment.PlanSearch(s with { Budget = Budget.Paper });
        Assert.Equal(trials.Select(t => (t.Folder, t.Config)), paper.Select(t => (t.Folder, t.Config)));
    }

    [Fact]
    public void TheLanguageModelAndCifarNetworksRunWhenTheirDataIsGivenAndAreSkippedWithAReasonOtherwise()
    {
        var s = Settings(Budget.Paper) with { Networks = ["char-lstm", "allcnn"] };
        Assert.Empty(FlatMinimaExperiment.PlanSearch(s));
        Assert.Contains("--corpus", FlatMinimaDesign.SkipReason(FlatMinimaDesign.Network("char-lstm"), s.Data));
        Assert.Contains("--cifar10-dir", FlatMinimaDesign.SkipReason(FlatMinimaDesign.Network("allcnn"), s.Data));

        // With data named, every arm's every candidate is a valid run (checked without reading the data).
        var given = s with { Corpus = "/usr/share/games/fortunes/fortunes", Cifar10Dir = "/tmp/cifar10" };
        var trials = FlatMinimaExperiment.PlanSearch(given);
        Assert.Equal(2 * (FlatMinimaDesign.Arms.Count - 1) * FlatMinimaDesign.GridSize, trials.Count); // no DANTE on either
        var lstm = trials.Where(t => t.Network.Name == "char-lstm").ToList();
        Assert.All(lstm, t => Assert.Equal((RunSetup.Text, 0L, (long?)null), (t.Config.Data, t.Config.ValidationSize, t.Config.MaxTrainSamples)));
        // Entropy-Adam on the LSTM; HTR's exact estimator there (the antithetic one needs an image task), at its cost.
        Assert.IsType<EntropyAdamOptions>(lstm.First(t => t.Arm.Key == "entropy").Config.ResolvedOptimizerOptions);
        Assert.Equal("Entropy-Adam", FlatMinimaDesign.Title(FlatMinimaDesign.Arm("entropy"), FlatMinimaDesign.Network("char-lstm")));
        var htr = lstm.First(t => t.Arm.Key == "sgd-htr").Config;
        Assert.Equal(HessianTraceEstimator.Exact, htr.HessianTrace!.Estimator);
        Assert.Equal(1.2, FlatMinimaDesign.CostPerCountedGradient(htr), 12);
        var allcnn = FlatMinimaExperiment.PlanFinal(given, FlatMinimaDesign.Network("allcnn"), FlatMinimaDesign.Arm("sgd"), 0);
        Assert.Equal([1L, 2, 3], allcnn.Select(r => r.Seed));
        Assert.All(allcnn, r => Assert.Equal((60.0, (long?)null), (r.Config.EffectiveEpochBudget!.Value, r.Config.MaxTrainSamples)));
    }

    [Fact]
    public void DanteRunsOnlyOnTheOneHiddenLayerNetworkWithTheSameSearchAndBudgetsAsEveryArm()
    {
        var mlp1 = FlatMinimaDesign.Network("mlp1");
        var lenet = FlatMinimaDesign.Network("lenet");
        var dante = FlatMinimaDesign.Arm("dante");
        // The zoo's one-hidden-layer MLP with the generalised ReLU, one of the networks `reproduce dante` trains.
        Assert.Equal(Mlp.ZooNameOf(1, MlpActivation.GeneralizedRelu), mlp1.Model);
        Assert.Contains(mlp1.Model, DanteComparison.Networks);
        Assert.Contains("mlp1", Settings(Budget.Small).Networks); // in the default --networks

        // DANTE applies to mlp1 only; every other arm to every network.
        Assert.Null(FlatMinimaDesign.NotApplicable(dante, mlp1));
        foreach (var network in FlatMinimaDesign.Networks.Where(n => n != mlp1))
        {
            Assert.Equal("not applicable (defined for one hidden layer)", FlatMinimaDesign.NotApplicable(dante, network));
            Assert.Contains("runs only on mlp1", Assert.Throws<ArgumentException>(() => FlatMinimaDesign.Grid(dante, network)).Message);
        }
        Assert.All(FlatMinimaDesign.Arms.Where(a => a != dante), a => Assert.All(FlatMinimaDesign.Networks, n => Assert.True(FlatMinimaDesign.Applies(a, n))));

        // Its grid: as many candidates as every arm's, eta around the reproduction's 0.1 (first), DANTE as registered.
        var grid = FlatMinimaDesign.Grid(dante, mlp1);
        Assert.Equal(FlatMinimaDesign.GridSize, grid.Count);
        Assert.Equal(["eta 0.1", "eta 0.03", "eta 0.3", "eta 0.01"], grid.Select(c => c.Description));
        var options = grid.Select(c => Assert.IsType<DanteOptions>(c.Apply(new RunConfig()).ResolvedOptimizerOptions)).ToList();
        Assert.Equal([DanteComparison.DefaultDanteLearningRate, 0.03, 0.3, 0.01], options.Select(o => o.LearningRate));
        // K = one epoch of the run's own training split (0: the trainer passes its steps per epoch), forward sweeps.
        Assert.All(options, o => Assert.Equal((0L, DanteOrder.Forward, true), (o.StepsPerBlock, o.SweepOrder, o.FreezeInactive)));

        // Every arm runs on mlp1 with the same trials; DANTE on no other network.
        var s = Settings(Budget.Small) with { Networks = ["lenet", "mlp1"] };
        var trials = FlatMinimaExperiment.PlanSearch(s);
        Assert.Equal(FlatMinimaDesign.Arms.Count * FlatMinimaDesign.GridSize, trials.Count(t => t.Network == mlp1));
        Assert.Equal((FlatMinimaDesign.Arms.Count - 1) * FlatMinimaDesign.GridSize, trials.Count(t => t.Network == lenet));
        Assert.All(trials.Where(t => t.Arm == dante), t => Assert.Equal(mlp1, t.Network));
        Assert.All(trials.Where(t => t.Network == mlp1), t => Assert.Equal(("mlp1-grelu", DatasetCatalog.FashionMnist, 10_800L, 1_200L),
            (t.Config.Model, t.Config.Data, t.Config.MaxTrainSamples!.Value, t.Config.ValidationSize)));
        // The same image budgets as LeNet and mnistfc, and DANTE's runs cost what every arm's cost.
        foreach (var budget in new[] { Budget.Smoke, Budget.Small, Budget.Paper })
            Assert.Equal(FlatMinimaDesign.Scale(lenet, budget), FlatMinimaDesign.Scale(mlp1, budget));
        var final = FlatMinimaExperiment.PlanFinal(s with { Budget = Budget.Paper }, mlp1, dante, 2);
        Assert.All(final, r => Assert.Equal((30.0, 1.0, (long?)null, 0.3), (r.Config.EffectiveEpochBudget!.Value, r.Config.EvalEveryEffectiveEpochs!.Value,
            r.Config.MaxTrainSamples, r.Config.ResolvedOptimizerOptions.LearningRate)));
        Assert.Equal(1, FlatMinimaDesign.CostPerCountedGradient(final[0].Config));
    }

    [Fact]
    public void EqualCostCountsEveryGradientEvaluation()
    {
        // SAM's two gradients per step are two closure calls: at one effective epoch it takes half of SGD's steps.
        (long Steps, long GradEvals) Train(string optimizer, OptimizerOptionsBase options)
        {
            var model = Synthetic.Mlp();
            using var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 3, evalBatchSize: 100);
            var created = OptimizerFactory.Create(optimizer, model.parameters(), options,
                new OptimizerContext { TrainingSetSize = 320, StepsPerEpoch = 10, Model = model });
            var result = new Trainer(task, created, new TrainerOptions { Epochs = 100, MaxEffectiveEpochs = 1, TensorBoard = false, EvaluateTest = false }).Run();
            return (result.Epochs[^1].OuterSteps, result.GradEvals);
        }
        Assert.Equal((10L, 10L), Train("sgd", new SgdOptions { LearningRate = 0.05, Momentum = 0.9, Nesterov = true }));
        Assert.Equal((5L, 10L), Train("sam", new SamOptions { LearningRate = 0.05, Rho = 0.05, Momentum = 0.9, Nesterov = true }));
        // DANTE's step evaluates its active block's gradient in one closure call: one counted gradient per step, as SGD.
        Assert.Equal((10L, 10L), Train("dante", new DanteOptions { LearningRate = 0.1 }));

        // HTR's passes are not closure calls: antithetic, K = 1, every 10 steps costs 1 + (2K - 1)/10 per counted gradient.
        var network = FlatMinimaDesign.Network("lenet");
        var htr = FlatMinimaDesign.FinalConfig(network, FlatMinimaDesign.Grid(FlatMinimaDesign.Arm("sgd-htr"), network)[0], Budget.Small, 1, new FlatMinimaData(), 0, "cpu");
        Assert.Equal(HessianTraceEstimator.Antithetic, htr.HessianTrace!.Estimator);
        Assert.Equal(1.1, FlatMinimaDesign.CostPerCountedGradient(htr), 12);
        Assert.Equal(10 / 1.1, htr.EffectiveEpochBudget!.Value, 12);
        Assert.Equal(1 / 1.1, htr.EvalEveryEffectiveEpochs!.Value, 12);
        // Every arm's final run costs the same gradient evaluations per sample and is evaluated on the same grid.
        foreach (var arm in FlatMinimaDesign.Arms.Where(a => FlatMinimaDesign.Applies(a, network)))
        {
            var c = FlatMinimaDesign.FinalConfig(network, FlatMinimaDesign.Grid(arm, network)[0], Budget.Small, 1, new FlatMinimaData(), 0, "cpu");
            var factor = FlatMinimaDesign.CostPerCountedGradient(c);
            Assert.Equal(10, c.EffectiveEpochBudget!.Value * factor, 9);
            Assert.Equal(1, c.EvalEveryEffectiveEpochs!.Value * factor, 9);
            Assert.Equal(12_000L, c.MaxTrainSamples);
            Assert.Equal(0, c.ValidationSize);
        }
    }

    [Fact]
    public void VerdictsAreJudgedAtTwoStandardErrors()
    {
        // SE = sqrt(1/3 + 1/3) = 0.8165: a difference of -3 is -3.67 SE.
        var better = FlatMinimaStatistics.Compare([1, 2, 3], [4, 5, 6]);
        Assert.Equal((-3.0, FlatMinimaVerdictKind.Better, "better"), (better.Difference, better.Kind, better.Word));
        Assert.Equal(Math.Sqrt(2.0 / 3), better.StandardError, 12);
        Assert.Equal(-3 / Math.Sqrt(2.0 / 3), better.InStandardErrors, 12);
        Assert.Equal(FlatMinimaVerdictKind.Worse, FlatMinimaStatistics.Compare([4, 5, 6], [1, 2, 3]).Kind);
        // -0.5 against an SE of 0.8165: within 2 SE.
        Assert.Equal(FlatMinimaVerdictKind.NoDifference, FlatMinimaStatistics.Compare([1, 2, 3], [1.5, 2.5, 3.5]).Kind);
        Assert.Equal(FlatMinimaVerdictKind.NotJudged, FlatMinimaStatistics.Compare([1], [4, 5, 6]).Kind);
        Assert.Equal(FlatMinimaVerdictKind.NotJudged, FlatMinimaStatistics.Compare([1, 2, 3], [4, 5, 6], judge: false).Kind);
        Assert.Equal(FlatMinimaVerdictKind.NotJudged, FlatMinimaStatistics.Compare([double.NaN, 1], [4, 5]).Kind); // one finite value left
    }

    [Fact]
    public void ABaselineWhoseSeedsSpreadMoreThanTheirMeanIsFlagged()
    {
        // The char-LSTM's SGD at lr 3 at the paper budget: two seeds near 13, one blown up to about 1,820.
        Assert.True(FlatMinimaReport.SpreadExceedsMean([13.1, 14.9, 1820.0]));
        Assert.False(FlatMinimaReport.SpreadExceedsMean([10.52, 10.53, 10.54]));
        Assert.False(FlatMinimaReport.SpreadExceedsMean([1820.0])); // one seed has no spread
        Assert.False(FlatMinimaReport.SpreadExceedsMean([]));
    }

    [Fact]
    public void SpearmanAndTheReachAreComputedOnHandMadeNumbers()
    {
        Assert.Equal(1, FlatMinimaStatistics.Spearman([1, 2, 3, 4], [10, 20, 30, 400]), 12);
        Assert.Equal(-1, FlatMinimaStatistics.Spearman([1, 2, 3, 4], [4, 3, 2, 1]), 12);
        Assert.Equal(0.5, FlatMinimaStatistics.Spearman([1, 2, 3], [1, 3, 2]), 12);
        // Ties take average ranks: x ranks (1.5, 1.5, 3, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 * 5).
        Assert.Equal(4.5 / Math.Sqrt(22.5), FlatMinimaStatistics.Spearman([1, 1, 2, 3], [1, 2, 3, 4]), 12);
        // Non-finite pairs are left out; fewer than 3 pairs give NaN.
        Assert.Equal(1, FlatMinimaStatistics.Spearman([1, double.NaN, 2, 3], [1, 5, 2, 3]), 12);
        Assert.True(double.IsNaN(FlatMinimaStatistics.Spearman([1, 2], [2, 1])));

        var (x, y) = FlatMinimaStatistics.MeanCurve([[(1, 10), (2, 8), (3, 6)], [(1, 12), (2, 6)]]);
        Assert.Equal([1.0, 2.0], x);
        Assert.Equal([11.0, 7.0], y);
        Assert.Equal(2.0, FlatMinimaStatistics.FirstReach(x, y, 7));
        Assert.Null(FlatMinimaStatistics.FirstReach(x, y, 6.9));
    }

    [Fact]
    public void SmokeRunTrainsMeasuresAndReportsAndASecondRunTrainsNothing()
    {
        using var dir = new TempDir();
        string[] args = ["reproduce", "flat-minima", "--budget", "smoke", "--networks", "mnistfc", "--arms", "sgd,sam", "--seeds", "1", "--search-trials", "1",
            "--threads", "2", "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        // The search (2 arms x 1 trial), then the final runs (2 arms x 1 seed).
        Assert.Equal(2, output.Split("2 runs planned, 0 finished already, 2 to train").Length - 1);
        var md = File.ReadAllText(dir.File("report/flat-minima-smoke.md"));
        Assert.Contains("| SGD (Nesterov) |", md);
        Assert.Contains("| SAM |", md);
        Assert.Contains("same **1 trial(s)**", md);
        Assert.Contains("### Search", md);
        var json = ReproduceReportChecks.ReadJson(dir.File("report/flat-minima-smoke.json"));
        var network = json["networks"]!.AsArray().Single()!;
        Assert.Equal(2, network["search"]!.AsArray().Count);
        var runs = network["runs"]!.AsArray();
        Assert.Equal(["sgd", "sam"], runs.Select(r => r!["arm"]!.GetValue<string>()));
        foreach (var run in runs)
        {
            Assert.Equal("finished", run!["status"]!.GetValue<string>());
            Assert.InRange(run["test_score"]!.GetValue<double>(), 0, 100);
            Assert.Equal(1, run["effective_epochs_at_cost"]!.GetValue<double>(), 6);
            // Evaluated on the same grid (every 0.5): inside the run and at its end.
            Assert.True(run["curve"]!.AsArray().Count >= 2);
            var flatness = run["flatness"]!;
            foreach (var key in new[] { "lambda_max", "hessian_trace", "epsilon_sharpness", "pac_bayes_sigma", "loss_gap" })
                Assert.True(flatness[key] is not null, key);
        }
        Assert.True(File.Exists(dir.File("report/flat-minima-smoke-runs.csv")));
        Assert.True(File.Exists(dir.File("report/flat-minima-smoke-search.csv")));
        Assert.True(Directory.Exists(dir.File("runs/flat-minima-smoke/mnistfc/flatness/.flatness")));
        foreach (var file in Directory.GetFiles(dir.File("report")).Where(f => f.EndsWith(".md") || f.EndsWith(".json") || f.EndsWith(".csv")))
            Assert.DoesNotContain(dir.Path, File.ReadAllText(file));

        var store = Directory.GetFiles(dir.File("runs/flat-minima-smoke/mnistfc/flatness/.flatness"), "*.json", SearchOption.AllDirectories)
            .ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Assert.Equal(2 * FlatMinimaExperiment.FlatnessMeasureNames.Count, store.Count);

        var (again, secondOutput, secondErr) = InProcessCli.Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Equal(2, secondOutput.Split("2 runs planned, 2 finished already, 0 to train").Length - 1);
        // Nothing measured again: every stored measurement is reused as it was.
        Assert.All(store, kv => Assert.Equal(kv.Value, File.GetLastWriteTimeUtc(kv.Key)));
    }

    [Fact]
    public void SmokeRunOfTheOneHiddenLayerNetworkTrainsDanteAndTheReportMarksItNotApplicableElsewhere()
    {
        using var dir = new TempDir();
        string[] common = ["reproduce", "flat-minima", "--budget", "smoke", "--seeds", "1", "--search-trials", "1", "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run([.. common, "--networks", "mlp1", "--arms", "sgd,dante"]);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Equal(2, output.Split("2 runs planned, 0 finished already, 2 to train").Length - 1);
        var json = ReproduceReportChecks.ReadJson(dir.File("report/flat-minima-smoke.json"));
        Assert.Contains("runs only on the one-hidden-layer network `mlp1`", json["dante"]!.GetValue<string>());
        var network = json["networks"]!.AsArray().Single()!;
        Assert.Equal(("mlp1", "mlp1-grelu"), (network["network"]!.GetValue<string>(), network["model"]!.GetValue<string>()));
        var runs = network["runs"]!.AsArray();
        Assert.Equal(["sgd", "dante"], runs.Select(r => r!["arm"]!.GetValue<string>()));
        foreach (var run in runs)
        {
            Assert.Equal("finished", run!["status"]!.GetValue<string>());
            Assert.InRange(run["test_score"]!.GetValue<double>(), 0, 100);
            Assert.Equal(1, run["effective_epochs_at_cost"]!.GetValue<double>(), 6);
            Assert.True(run["flatness"]!["lambda_max"] is not null);
        }
        var md = File.ReadAllText(dir.File("report/flat-minima-smoke.md"));
        Assert.Contains("| DANTE | eta 0.1 |", md);
        Assert.Contains("| DANTE | **eta 0.1: ", md); // its search trial, chosen
        Assert.DoesNotContain("not applicable", md.Split("## MLP with one hidden layer")[1]);
        Assert.DoesNotContain("left out", md);

        // With LeNet asked for too (report only: nothing trains), DANTE's LeNet cells say why they are empty, not "pending".
        (code, output, err) = InProcessCli.Run([.. common, "--networks", "lenet,mlp1", "--arms", "sgd,dante", "--report-only"]);
        Assert.True(code == ExitCodes.Ok, err + output);
        md = File.ReadAllText(dir.File("report/flat-minima-smoke.md"));
        var lenet = md.Split("## LeNet")[1].Split("## MLP with one hidden layer")[0];
        Assert.Contains("| SGD (Nesterov) | search pending | pending |", lenet);
        Assert.Contains("| DANTE | – | not applicable (defined for one hidden layer) | – |", lenet);
        Assert.Contains("| DANTE | not applicable (defined for one hidden layer) |", lenet.Split("### Search")[1]);
        Assert.DoesNotContain("DANTE", lenet.Split("Search not finished for:").Skip(1).FirstOrDefault() ?? "");
        var arms = ReproduceReportChecks.ReadJson(dir.File("report/flat-minima-smoke.json"))["networks"]!.AsArray()
            .Single(n => n!["network"]!.GetValue<string>() == "lenet")!["arms"]!.AsArray();
        Assert.Equal("not applicable (defined for one hidden layer)", arms.Single(a => a!["arm"]!.GetValue<string>() == "dante")!["not_applicable"]!.GetValue<string>());
        Assert.Null(arms.Single(a => a!["arm"]!.GetValue<string>() == "sgd")!["not_applicable"]);

        // DANTE asked for beside a network it does not apply to, and no network it does: a warning, and its cells as above.
        (code, output, err) = InProcessCli.Run([.. common, "--networks", "lenet", "--arms", "sgd,dante", "--report-only"]);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("DANTE is defined for one hidden layer and runs only on mlp1, which is not among --networks: not applicable here", err + output);
    }

    [Theory]
    [InlineData(new[] { "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "--networks", "resnet" }, "--networks: unknown network 'resnet'")]
    [InlineData(new[] { "--networks", "lenet", "--arms", "dante" },
        "--arms dante with --networks lenet: nothing to run; dante is defined for one hidden layer and runs only on mlp1 (add mlp1 to --networks")]
    [InlineData(new[] { "--arms", "sgd,dante,adam,dante" }, "--arms: arm 'dante' is given twice")]
    [InlineData(new[] { "--arms", "sgd,sgd" }, "--arms: arm 'sgd' is given twice")]
    [InlineData(new[] { "--search-trials", "5" }, "--search-trials must be between 1 and 4")]
    [InlineData(new[] { "--corpus", "/nonexistent/corpus.txt" }, "--corpus /nonexistent/corpus.txt: no such file")]
    public void BadOptionsExitWithAUsageError(string[] options, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run(["reproduce", "flat-minima", "--runs", dir.File("runs"), "--out", dir.File("out"), .. options]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
    }
}
