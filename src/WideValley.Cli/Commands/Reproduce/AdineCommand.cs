using System.CommandLine;
using WideValley.Data;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce adine`: ADINE (our design of the abstract's method) against SGD with momentum 0.9 on LeNet and
/// mnistfc, Fashion-MNIST, equal epochs and lr, 3 seeds, as the library's <see cref="AdineExperiment"/> defines and
/// runs it. Ctrl-C saves the current run's checkpoint and still writes a report of what has finished; the same command
/// continues later.
/// </summary>
public static class AdineCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int>("--seeds") { Description = "Independent runs per network and optimizer.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({AdineExperiment.DescribeBudget(Budget.Smoke)}), small ({AdineExperiment.DescribeBudget(Budget.Small)}), " +
                             $"paper ({AdineExperiment.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var nets = new Option<string>("--nets") { Description = "Networks, comma-separated: lenet, mnistfc.", DefaultValueFactory = _ => string.Join(",", AdineExperiment.Networks) };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = MeasurementOptions.Threads();
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing; write the report from the runs that have finished." };
        var command = new Command(AdineExperiment.Name,
            "ADINE (adaptive momentum above 1; our design of the abstract's method) against SGD with momentum 0.9 on LeNet and mnistfc, Fashion-MNIST, equal epochs " +
            "and lr, 3 seeds: epochs to SGD's final training loss and final test error; writes adine[-BUDGET].md/.json and a plot per network.")
        {
            seeds, firstSeed, budget, runs, output, nets, fashionDir, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            var networks = p.GetValue(nets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var commandLine = $"widevalley reproduce adine --seeds {p.GetValue(seeds)} --budget {Budgets.Name(b)}" +
                              (networks.SequenceEqual(AdineExperiment.Networks) ? "" : $" --nets {string.Join(",", networks)}") +
                              (p.GetValue(firstSeed) == 1 ? "" : $" --first-seed {p.GetValue(firstSeed)}") +
                              (threadCount > 0 ? $" --threads {threadCount}" : "");
            var settings = new AdineRunSettings
            {
                Budget = b,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                Networks = networks,
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
            }, settings.OutDir, AdineExperiment.Name);
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => AdineExperiment.Run(settings, progress, cancellation));
            foreach (var v in AdineReport.Verdicts(settings, outcome.Runs))
                ctx.Out.WriteLine($"{v.Network}: {v.Pairs.Count} seed pair(s); much faster convergence: {v.Convergence} ({v.ConvergenceText}); " +
                                  $"generalisation not compromised: {v.Generalisation} ({v.GeneralisationText})");
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }
}
