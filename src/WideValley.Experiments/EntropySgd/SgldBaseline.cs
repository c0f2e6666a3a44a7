using WideValley.Optim;
namespace WideValley.Experiments;

/// <summary>
/// Appendix C.1 of Chaudhari et al. (ICLR 2017): plain SGLD (Welling &amp; Teh 2011) with the step size
/// eta / (1 + t)^b against Entropy-SGD on LeNet. The paper reports 0.63 +- 0.1% after 300 epochs of SGLD (after a
/// hyper-parameter search whose result it does not give) against 0.50 +- 0.01% for Entropy-SGD. The Entropy-SGD arm
/// is exactly Table 1's LeNet arm, so the two reproductions share its runs.
/// </summary>
public static class SgldBaseline
{
    /// <summary>
    /// Our choice of eta (the paper does not publish its search's result): 0.5, decaying to about 0.01 over 300 epochs
    /// with b = 0.33. It had the lowest validation error of a 10-point search (docs/results/sgld-search.md).
    /// </summary>
    public const double DefaultLearningRate = 0.5;

    /// <summary>Our choice of b; Chen et al. (2015), whom the paper follows, use exponents of about 1/3, and 0.33 beat 0.55 at every eta we tried.</summary>
    public const double DefaultDecay = 0.33;

    /// <summary>SGLD epochs in App. C.1.</summary>
    public const int PaperEpochs = 300;

    /// <summary>
    /// The comparison row of App. C.1: LeNet on MNIST, Entropy-SGD's 0.50 +- 0.01% test error against SGLD's
    /// 0.63 +- 0.1% after <see cref="PaperEpochs"/> epochs.
    /// </summary>
    public static ComparisonRow Row { get; } = new("lenet", "LeNet", ComparisonMetric.ErrorPercent, new(0.50, 0.01, 80), new(0.63, 0.1, PaperEpochs), "MNIST");

    /// <summary>The SGLD arm and Table 1's LeNet Entropy-SGD arm for one seed at a budget.</summary>
    /// <exception cref="ArgumentException">Non-positive learning rate or negative decay.</exception>
    public static (ExperimentArm Baseline, ExperimentArm Entropy) Arms(Budget budget, long seed, ExperimentData data, double learningRate = DefaultLearningRate,
        double decay = DefaultDecay, int threads = 0, string device = "cpu")
    {
        if (!(learningRate > 0) || double.IsInfinity(learningRate)) throw new ArgumentException($"--sgld-lr must be a positive number, got {learningRate}");
        if (!(decay >= 0) || double.IsInfinity(decay)) throw new ArgumentException($"--sgld-decay must be zero or positive, got {decay}");
        var table1Row = Table1.Row("lenet");
        var (adam, _) = Table1.Arms(table1Row, Budget.Paper, seed, data, threads, device);
        var (_, entropy) = Table1.Arms(table1Row, budget, seed, data, threads, device);
        // Same data, model, dropout, batch size and evaluation as the Table 1 baseline; only the optimizer differs.
        var sgld = new ExperimentArm("sgld", "SGLD", false, (adam.Config with { Epochs = PaperEpochs, LrSchedule = "const" })
            .WithOptimizer(new SgldOptions { LearningRate = learningRate, Decay = decay, Temperature = 1 }));
        return (Table1.Shorten(sgld, budget, table1Row), entropy);
    }
}
