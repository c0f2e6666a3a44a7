using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce sgld-baseline`: App. C.1, plain SGLD against Entropy-SGD on LeNet. The Entropy-SGD runs are
/// Table 1's (same folders), so running both reproductions trains them once.
/// </summary>
public static class SgldBaselineCommand
{
    public static Command Create(CliContext ctx)
    {
        var common = new ComparisonOptions(3, "Independent runs per optimizer.");
        var lr = new Option<double>("--sgld-lr") { Description = "SGLD's initial step size eta (the paper does not publish its choice; the default won our search, docs/results/sgld-search.md).", DefaultValueFactory = _ => SgldBaseline.DefaultLearningRate };
        var decay = new Option<double>("--sgld-decay") { Description = "SGLD's decay exponent b in eta / (1 + t)^b.", DefaultValueFactory = _ => SgldBaseline.DefaultDecay };
        var command = new Command("sgld-baseline",
            "App. C.1: SGLD (step eta / (1 + t)^b, temperature 1) against Entropy-SGD on LeNet; shares the Entropy-SGD runs with 'reproduce table1'; " +
            "writes sgld-baseline[-BUDGET].md/.json and a plot.")
        {
            lr, decay,
        };
        foreach (var option in common.All) command.Add(option);
        command.SetAction(p =>
        {
            var s = common.Read(p);
            var b = s.Budget;
            var data = new ExperimentData { MnistDir = s.MnistDir, FashionMnistDir = s.FashionMnistDir };
            var eta = p.GetValue(lr);
            var exponent = p.GetValue(decay);
            // Checks the SGLD settings before anything else happens.
            SgldBaseline.Arms(b, s.FirstSeed, data, eta, exponent, s.Threads, s.Device);
            var c = CultureInfo.InvariantCulture;
            var commandLine = $"widevalley reproduce sgld-baseline --seeds {s.Seeds} --budget {Budgets.Name(b)}" +
                              string.Format(c, " --sgld-lr {0} --sgld-decay {1}", eta, exponent) +
                              (data.MnistDir is null ? "" : " --mnist-dir MNIST_DIR");
            return ComparisonCommand.Execute(ctx, new ComparisonRequest
            {
                Name = "sgld-baseline",
                Rows = [SgldBaseline.Row],
                SkipReason = _ => null,
                DatasetOf = _ => data.MnistRowsDataset,
                Arms = (_, seed) => SgldBaseline.Arms(b, seed, data, eta, exponent, s.Threads, s.Device),
                // The Entropy-SGD arm lives where Table 1 keeps it; SGLD gets its own tree.
                Folder = (row, arm, seed) => arm.IsEntropy
                    ? Table1.RunFolder(s.RunsRoot, b, row, arm, seed)
                    : Path.Combine(s.RunsRoot, $"sgld-baseline-{Budgets.Name(b)}", row.Name, string.Format(c, "sgld-lr{0}-b{1}", eta, exponent), $"seed-{seed}"),
                Seeds = s.Seeds,
                FirstSeed = s.FirstSeed,
                ReportOnly = s.ReportOnly,
                OutDir = s.OutDir,
                Report = results => new ComparisonReportInput(
                    Budgets.ReportStem("sgld-baseline", b),
                    $"SGLD against Entropy-SGD on LeNet, {data.MnistRowsDataset} (App. C.1, budget `{Budgets.Name(b)}`)",
                    Introduction(b, data, eta, exponent), b, commandLine, ReproduceOptions.Machine(s.Threads), results),
            });
        });
        return command;
    }

    static List<string> Introduction(Budget budget, ExperimentData data, double eta, double decay)
    {
        var c = CultureInfo.InvariantCulture;
        var paragraphs = new List<string>
        {
            "Appendix C.1 of Chaudhari et al. (ICLR 2017) asks whether plain SGLD does as well as Entropy-SGD, whose inner loop is SGLD. " +
            string.Format(c, "SGLD here: step size eta / (1 + t)^b with eta = {0}, b = {1}, temperature 1 (noise sqrt(2 eta_t / N) per step, N the training-set size), ", eta, decay) +
            $"{SgldBaseline.PaperEpochs} epochs, with LeNet's dropout and batch size as in Table 1. The paper does not publish the result of its hyper-parameter search; " +
            (eta == SgldBaseline.DefaultLearningRate && decay == SgldBaseline.DefaultDecay
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
