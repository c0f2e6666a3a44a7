using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using WideValley.Reports;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce sgld-baseline`: App. C.1, plain SGLD against Entropy-SGD on LeNet. The Entropy-SGD runs are
/// Table 1's (same folders), so running both reproductions trains them once.
/// </summary>
public static class SgldBaselineCommand
{
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int>("--seeds") { Description = "Independent runs per optimizer.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var mnistDir = new Option<string?>("--mnist-dir") { Description = "Folder with the MNIST files; without it Fashion-MNIST stands in for MNIST." };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var lr = new Option<double>("--sgld-lr") { Description = "SGLD's initial step size eta (the paper does not publish its choice).", DefaultValueFactory = _ => SgldBaseline.DefaultLearningRate };
        var decay = new Option<double>("--sgld-decay") { Description = "SGLD's decay exponent b in eta / (1 + t)^b.", DefaultValueFactory = _ => SgldBaseline.DefaultDecay };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = libtorch's default).", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing; write the report from the runs that have finished." };
        var command = new Command("sgld-baseline",
            "App. C.1: SGLD (step eta / (1 + t)^b, temperature 1) against Entropy-SGD on LeNet; shares the Entropy-SGD runs with 'reproduce table1'; " +
            "writes sgld-baseline[-BUDGET].md/.json and a plot.")
        {
            seeds, firstSeed, budget, runs, output, mnistDir, fashionDir, lr, decay, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var data = new ExperimentData
            {
                MnistDir = ReproduceOptions.ExistingFolder(p.GetValue(mnistDir), "--mnist-dir"),
                FashionMnistDir = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir"),
            };
            var eta = p.GetValue(lr);
            var exponent = p.GetValue(decay);
            var t = p.GetValue(threads);
            var d = p.GetValue(device)!;
            var n = p.GetValue(seeds);
            var runsRoot = Path.GetFullPath(p.GetValue(runs)!);
            SgldBaseline.Arms(b, p.GetValue(firstSeed), data, eta, exponent, t, d);
            var c = CultureInfo.InvariantCulture;
            var commandLine = $"widevalley reproduce sgld-baseline --seeds {n} --budget {Budgets.Name(b)}" +
                              string.Format(c, " --sgld-lr {0} --sgld-decay {1}", eta, exponent) +
                              (data.MnistDir is null ? "" : " --mnist-dir MNIST_DIR");
            return ComparisonRunner.Execute(ctx, new ComparisonRequest
            {
                Name = "sgld-baseline",
                Rows = [SgldBaseline.Row],
                SkipReason = _ => null,
                DatasetOf = _ => data.MnistRowsDataset,
                Arms = (_, seed) => SgldBaseline.Arms(b, seed, data, eta, exponent, t, d),
                // The Entropy-SGD arm lives where Table 1 keeps it; SGLD gets its own tree.
                Folder = (row, arm, seed) => arm.IsEntropy
                    ? Table1.RunFolder(runsRoot, b, row, arm, seed)
                    : Path.Combine(runsRoot, $"sgld-baseline-{Budgets.Name(b)}", row.Name, string.Format(c, "sgld-lr{0}-b{1}", eta, exponent), $"seed-{seed}"),
                Seeds = n,
                FirstSeed = p.GetValue(firstSeed),
                ReportOnly = p.GetValue(reportOnly),
                OutDir = Path.GetFullPath(p.GetValue(output)!),
                Report = results => new ComparisonReportInput(
                    ComparisonReport.FileStem("sgld-baseline", b),
                    $"SGLD against Entropy-SGD on LeNet, {data.MnistRowsDataset} (App. C.1, budget `{Budgets.Name(b)}`)",
                    Introduction(b, data, eta, exponent), b, commandLine, MachineDescription.Describe(t), results),
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
            "these values are ours, not tuned. The Entropy-SGD runs are Table 1's LeNet arm. " +
            $"Budget `{Budgets.Name(budget)}`: {Table1.DescribeBudget(budget)}.",
        };
        if (data.MnistDir is null)
            paragraphs.Add($"**Data.** No MNIST folder was given, so {data.MnistRowsDataset} stands in for MNIST: compare the two optimizers with each other, not with the paper's absolute numbers.");
        return paragraphs;
    }
}
