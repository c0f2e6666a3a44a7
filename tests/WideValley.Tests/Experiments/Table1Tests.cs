using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>The Table 1 configurations carry the paper's settings (Sec. 5, ../shared/paper-notes.md).</summary>
public class Table1Tests
{
    static readonly ExperimentData Data = new() { Corpus = "/tmp/corpus.txt", Cifar10Dir = "/tmp/cifar", PtbDir = "/tmp/ptb" };

    [Theory]
    [InlineData("mnistfc", 0.15)]
    [InlineData("lenet", 0.25)]
    public void MnistRowsUseThePapersAdamAndEntropySgdSettings(string row, double entropyDropout)
    {
        var (adam, esgd) = Table1.Arms(Table1.Row(row), Budget.Paper, 3, Data);
        Assert.Equal(("adam", 1e-3, 100, "step:5:30", 128), (adam.Config.Optimizer, Lr(adam.Config), adam.Config.Epochs, adam.Config.LrSchedule, adam.Config.BatchSize));
        var e = esgd.Config;
        var o = Assert.IsType<EntropySgdOptions>(e.OptimizerOptions);
        var le = o.LocalEntropy;
        Assert.Equal(("entropy-sgd", 1.0, 5, "after:10:2", 20), (e.Optimizer, o.LearningRate, e.Epochs, e.LrSchedule, le.L));
        Assert.Equal((0.1, 1e-3, (ScopeSchedule)new ExponentialScope(1e-4, 1e-3)), (le.LangevinLr, le.Noise, le.Scope));
        Assert.Equal((0.9, true, 0.9, true), (o.Momentum, o.Nesterov, le.LangevinMomentum, le.LangevinNesterov));
        Assert.Equal(entropyDropout, e.Dropout);
        Assert.Equal(10, le.DiagnosticsEvery);
        // The paper's versions of the choices where the reference code differs.
        Assert.Equal((LangevinNoiseScaling.Paper, LangevinAverage.Paper, ScopeCounting.Paper, false),
            (le.NoiseScaling, le.Average, le.ScopeCounting, le.ExtraClosureEvaluation));
        Assert.Equal(3, e.Seed);
        Assert.Equal("Entropy-SGD (L = 20)", esgd.Label);
        Assert.Equal("fashion-mnist", e.Data);
        RunSetup.Validate(adam.Config);
        RunSetup.Validate(e);
    }

    [Fact]
    public void LanguageRowsUseThePapersSettings()
    {
        var (sgd, esgd) = Table1.Arms(Table1.Row("ptb-lstm"), Budget.Paper, 1, Data);
        Assert.Equal(("sgd", 1.0, 0.0, 55, 10.0), (sgd.Config.Optimizer, Lr(sgd.Config), Assert.IsType<SgdOptions>(sgd.Config.OptimizerOptions).Momentum, sgd.Config.Epochs, sgd.Config.ClipGradNorm));
        var zaremba = LearningRateSchedule.Parse(sgd.Config.LrSchedule);
        Assert.Equal(1.0, zaremba.Factor(14));
        Assert.Equal(Math.Pow(1.15, -2), zaremba.Factor(16), 12);
        var ptb = Assert.IsType<EntropySgdOptions>(esgd.Config.OptimizerOptions);
        Assert.Equal((5, 5, (ScopeSchedule)new ConstantScope(1e-3), 1.0, 1e-4, 0.5),
            (esgd.Config.Epochs, ptb.LocalEntropy.L, ptb.LocalEntropy.Scope, ptb.LocalEntropy.LangevinLr, ptb.LocalEntropy.Noise, ptb.Momentum));
        var schedule = LearningRateSchedule.Parse(esgd.Config.LrSchedule);
        Assert.Equal([1.0, 1.0, 1.0, 0.1, 0.01], Enumerable.Range(1, 5).Select(schedule.Factor).Select(f => Math.Round(f, 12)));

        var (adam, eadam) = Table1.Arms(Table1.Row("char-lstm"), Budget.Paper, 1, Data);
        Assert.Equal(("adam", 0.002, 50, "step:2:5"), (adam.Config.Optimizer, Lr(adam.Config), adam.Config.Epochs, adam.Config.LrSchedule));
        var ea = Assert.IsType<EntropyAdamOptions>(eadam.Config.OptimizerOptions);
        Assert.Equal(("entropy-adam", 0.01, 5, "step:2:1", 0.5, (ScopeSchedule)new ConstantScope(0.01)),
            (eadam.Config.Optimizer, ea.LearningRate, eadam.Config.Epochs, eadam.Config.LrSchedule, ea.Beta1, ea.LocalEntropy.Scope));
    }

    [Fact]
    public void BudgetsShortenRunsWithoutChangingTheirSettings()
    {
        var row = Table1.Row("lenet");
        var (paperAdam, paperEsgd) = Table1.Arms(row, Budget.Paper, 1, Data);
        var (smallAdam, smallEsgd) = Table1.Arms(row, Budget.Small, 1, Data);
        Assert.Equal(paperAdam.Config with { MaxTrainSamples = Table1.SmallBudgetTrainingImages }, smallAdam.Config);
        Assert.Equal(paperEsgd.Config with { MaxTrainSamples = Table1.SmallBudgetTrainingImages }, smallEsgd.Config);
        var (smokeAdam, smokeEsgd) = Table1.Arms(row, Budget.Smoke, 1, Data);
        Assert.Equal((1, Table1.SmokeEffectiveEpochs, Table1.SmokeTrainingImages), (smokeAdam.Config.Epochs, smokeAdam.Config.EffectiveEpochBudget, smokeAdam.Config.MaxTrainSamples));
        Assert.Equal(2, Assert.IsType<EntropySgdOptions>(smokeEsgd.Config.OptimizerOptions).LocalEntropy.L);
        // Only L changes in the optimizer's options.
        Assert.Equal(((EntropySgdOptions)paperEsgd.Config.OptimizerOptions!).LocalEntropy with { L = 2 },
            ((EntropySgdOptions)smokeEsgd.Config.OptimizerOptions!).LocalEntropy);
        Assert.Equal(paperAdam.Config.OptimizerOptions, smokeAdam.Config.OptimizerOptions);
        Assert.Equal("Entropy-SGD (L = 2)", smokeEsgd.Label);
    }

    [Fact]
    public void RowsWithoutTheirDataAreSkippedWithTheReasonAndMnistIsUsedWhenGiven()
    {
        var none = new ExperimentData();
        Assert.Null(Table1.SkipReason(Table1.Row("mnistfc"), none));
        Assert.Contains("--cifar10-dir", Table1.SkipReason(Table1.Row("allcnn"), none));
        Assert.Contains("--ptb-dir", Table1.SkipReason(Table1.Row("ptb-lstm"), none));
        Assert.Contains("--corpus", Table1.SkipReason(Table1.Row("char-lstm"), none));
        Assert.Throws<ArgumentException>(() => Table1.Arms(Table1.Row("allcnn"), Budget.Paper, 1, none));
        var (adam, _) = Table1.Arms(Table1.Row("mnistfc"), Budget.Paper, 1, new ExperimentData { MnistDir = "/data/mnist" });
        Assert.Equal(("mnist", "/data/mnist"), (adam.Config.Data, adam.Config.DataDir));
    }

    static double Lr(RunConfig c) => c.ResolvedOptimizerOptions.LearningRate;

    [Fact]
    public void RowListsKeepThePapersOrder() =>
        Assert.Equal(["mnistfc", "lenet", "char-lstm"], Table1.ParseRows("char-lstm, lenet,mnistfc").Select(r => r.Name));
}
