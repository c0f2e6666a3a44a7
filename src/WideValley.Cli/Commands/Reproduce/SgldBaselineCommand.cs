using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce sgld-baseline`: App. C.1, plain SGLD against Entropy-SGD on LeNet, as the library's
/// <see cref="SgldBaseline.Comparison"/> defines it (run by <see cref="ComparisonCommand"/>). The Entropy-SGD runs are
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
            var c = CultureInfo.InvariantCulture;
            var commandLine = $"widevalley reproduce sgld-baseline --seeds {s.Seeds} --budget {Budgets.Name(b)}" +
                              string.Format(c, " --sgld-lr {0} --sgld-decay {1}", eta, exponent) +
                              (data.MnistDir is null ? "" : " --mnist-dir MNIST_DIR");
            return ComparisonCommand.Execute(ctx, SgldBaseline.Comparison(s.ToRunSettings(data, commandLine), eta, exponent));
        });
        return command;
    }
}
