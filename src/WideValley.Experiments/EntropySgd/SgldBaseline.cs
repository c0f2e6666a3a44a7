using System.Globalization;
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

    /// <summary>RUNS/sgld-baseline-BUDGET/lenet/sgld-lrETA-bDECAY/seed-K: SGLD's own tree (the Entropy-SGD arm lives in Table 1's).</summary>
    public static string RunFolder(string runsRoot, Budget budget, double learningRate, double decay, long seed) =>
        Path.Combine(runsRoot, $"sgld-baseline-{Budgets.Name(budget)}", Row.Name, string.Format(CultureInfo.InvariantCulture, "sgld-lr{0}-b{1}", learningRate, decay), $"seed-{seed}");

    /// <summary>
    /// The comparison as <see cref="ComparisonRunner"/> runs it: SGLD in its own <see cref="RunFolder"/>, the
    /// Entropy-SGD arm in Table 1's folders (so running both reproductions trains it once), reported as
    /// sgld-baseline[-BUDGET].md/.json with a plot.
    /// </summary>
    /// <exception cref="ArgumentException">Non-positive learning rate or negative decay.</exception>
    public static ComparisonRequest Comparison(ComparisonRunSettings s, double learningRate = DefaultLearningRate, double decay = DefaultDecay)
    {
        var (b, data) = (s.Budget, s.Data);
        // Checks the SGLD settings before anything else happens.
        Arms(b, s.FirstSeed, data, learningRate, decay, s.Threads, s.Device);
        return new ComparisonRequest
        {
            Name = "sgld-baseline",
            Rows = [Row],
            SkipReason = _ => null,
            DatasetOf = _ => data.MnistRowsDataset,
            Arms = (_, seed) => Arms(b, seed, data, learningRate, decay, s.Threads, s.Device),
            Folder = (row, arm, seed) => arm.IsEntropy ? Table1.RunFolder(s.RunsRoot, b, row, arm, seed) : RunFolder(s.RunsRoot, b, learningRate, decay, seed),
            Seeds = s.Seeds,
            FirstSeed = s.FirstSeed,
            ReportOnly = s.ReportOnly,
            OutDir = s.OutDir,
            Report = results => new ComparisonReportInput(
                Budgets.ReportStem("sgld-baseline", b),
                $"SGLD against Entropy-SGD on LeNet, {data.MnistRowsDataset} (App. C.1, budget `{Budgets.Name(b)}`)",
                Introduction(b, data, learningRate, decay), b, s.CommandLine, s.Machine, results),
        };
    }

    /// <summary>The report's introduction: SGLD's settings and where they come from, the budget, the data.</summary>
    internal static List<string> Introduction(Budget budget, ExperimentData data, double eta, double decay)
    {
        var c = CultureInfo.InvariantCulture;
        var paragraphs = new List<string>
        {
            "Appendix C.1 of Chaudhari et al. (ICLR 2017) asks whether plain SGLD does as well as Entropy-SGD, whose inner loop is SGLD. " +
            string.Format(c, "SGLD here: step size eta / (1 + t)^b with eta = {0}, b = {1}, temperature 1 (noise sqrt(2 eta_t / N) per step, N the training-set size), ", eta, decay) +
            $"{PaperEpochs} epochs, with LeNet's dropout and batch size as in Table 1. The paper does not publish the result of its hyper-parameter search; " +
            (eta == DefaultLearningRate && decay == DefaultDecay
                ? "these are the defaults, the best of our small search (eta 0.05 to 2, b 0.33 or 0.55, judged by validation error after the first 6 epochs; " +
                  "[sgld-search.md](sgld-search.md)), which favours values that learn fast early. "
                : "these values were given on the command line. ") +
            "The Entropy-SGD runs are Table 1's LeNet arm. " +
            $"Budget `{Budgets.Name(budget)}`: {Table1.DescribeBudget(budget)}.",
        };
        if (data.MnistDir is null)
            paragraphs.Add($"**Data.** No MNIST folder was given, so {data.MnistRowsDataset} stands in for MNIST: compare the two optimizers with each other, not with the paper's absolute numbers.");
        return paragraphs;
    }
}
