using System.CommandLine;
using System.Globalization;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Models;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce htr`: the Hessian-trace regulariser's Fashion-MNIST/LeNet experiment with the authors' grid
/// (SGD, SGD+L2, SGD+HTR, SGD+HTR(middle), and our epoch-matched SGD control, 3 seeds, test error and the trace at the end), as the library's
/// <see cref="HtrExperiment"/> defines and runs it. Ctrl-C keeps what has finished and still writes the report; the same
/// command continues later.
/// </summary>
public static class HtrCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int>("--seeds") { Description = "Independent runs per arm (the authors' 3 reruns).", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({HtrExperiment.DescribeBudget(Budget.Smoke)}), small ({HtrExperiment.DescribeBudget(Budget.Small)}), " +
                             $"paper ({HtrExperiment.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var model = new Option<string>("--model") { Description = "Zoo image classifier (default lenet5, the authors' LeNet).", DefaultValueFactory = _ => ModelZoo.LeNet5Name };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = MeasurementOptions.Threads();
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train and measure nothing; write the report from what has finished." };
        var command = new Command(HtrExperiment.Name,
            "Hessian-trace regularisation (Sankar et al., AAAI 2021) on Fashion-MNIST with the authors' grid: SGD, SGD+L2, SGD+HTR, SGD+HTR(middle) and an epoch-matched SGD control (ours), 3 seeds; " +
            "test error and the Hessian trace at the end; writes htr[-BUDGET].md/.json and a plot.")
        {
            seeds, firstSeed, budget, runs, output, model, fashionDir, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            var network = p.GetValue(model)!;
            var commandLine = $"widevalley reproduce htr --seeds {p.GetValue(seeds)} --budget {Budgets.Name(b)}" +
                              (network == ModelZoo.LeNet5Name ? "" : $" --model {network}") +
                              (p.GetValue(firstSeed) == 1 ? "" : $" --first-seed {p.GetValue(firstSeed)}") +
                              (threadCount > 0 ? $" --threads {threadCount}" : "");
            var settings = new HtrRunSettings
            {
                Budget = b,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                Model = network,
                FashionMnistDir = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir"),
                Threads = threadCount,
                Device = p.GetValue(device)!,
                RunsRoot = Path.GetFullPath(p.GetValue(runs)!),
                OutDir = Path.GetFullPath(p.GetValue(output)!),
                ReportOnly = p.GetValue(reportOnly),
                CommandLine = commandLine,
                Machine = ReproduceOptions.Machine(threadCount),
            };
            ReproduceOptions.CheckBeforeTraining(() =>
            {
                settings.Validate();
                if (!settings.ReportOnly) DatasetCatalog.Locate(DatasetCatalog.FashionMnist, settings.FashionMnistDir);
            }, settings.OutDir, HtrExperiment.Name);
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => HtrExperiment.Run(settings, progress, cancellation));
            var c = CultureInfo.InvariantCulture;
            foreach (var v in HtrReport.Verdicts(settings, outcome.Runs))
                ctx.Out.WriteLine(string.Format(c, "{0} ({1} − SGD, {2}: {3:+0.000;-0.000;0.000} ± {4:0.000}, {5} seeds): {6}",
                    v.Claim, HtrReport.Title(v.Arm), v.Quantity, v.Mean, v.StandardError, v.Differences.Count, v.Word));
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }
}
