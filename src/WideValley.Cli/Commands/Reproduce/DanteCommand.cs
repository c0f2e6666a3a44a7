using System.CommandLine;
using System.Globalization;
using WideValley.Data;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce dante`: DANTE (our design of the abstract's alternating minimisation by SNGD) against backprop
/// with SGD and Adam on one- and two-hidden-layer MLPs (sigmoid, ReLU, generalised ReLU), Fashion-MNIST, equal epochs,
/// several seeds, as the library's <see cref="DanteComparison"/> defines and runs it. Ctrl-C saves the current run's
/// checkpoint and still writes a report of what has finished; the same command continues later.
/// </summary>
public static class DanteCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int>("--seeds") { Description = "Independent runs per network and optimizer.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({DanteComparison.DescribeBudget(Budget.Smoke)}), small ({DanteComparison.DescribeBudget(Budget.Small)}), " +
                             $"paper ({DanteComparison.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var nets = new Option<string>("--nets")
        {
            Description = $"Networks, comma-separated: {string.Join(", ", DanteComparison.Networks)}.",
            DefaultValueFactory = _ => string.Join(",", DanteComparison.Networks),
        };
        var danteLr = new Option<double>("--dante-lr")
        {
            Description = "DANTE's eta, the length of each normalised step (ours: 0.1, chosen by validation error in a pilot; see docs/seed-004.md).",
            DefaultValueFactory = _ => DanteComparison.DefaultDanteLearningRate,
        };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = MeasurementOptions.Threads();
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing; write the report from the runs that have finished." };
        var command = new Command(DanteComparison.Name,
            "DANTE (alternating minimisation by stochastic normalised gradient descent; our design) against SGD and Adam on one- and two-hidden-layer " +
            "MLPs (sigmoid, ReLU, generalised ReLU), Fashion-MNIST, equal epochs, 3 seeds; writes dante[-BUDGET].md/.json and a plot per network.")
        {
            seeds, firstSeed, budget, runs, output, nets, danteLr, fashionDir, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            if (threadCount < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
            var networks = p.GetValue(nets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var eta = p.GetValue(danteLr);
            var c = CultureInfo.InvariantCulture;
            var commandLine = $"widevalley reproduce dante --seeds {p.GetValue(seeds)} --budget {Budgets.Name(b)}" +
                              (networks.SequenceEqual(DanteComparison.Networks) ? "" : $" --nets {string.Join(",", networks)}") +
                              (eta == DanteComparison.DefaultDanteLearningRate ? "" : string.Format(c, " --dante-lr {0}", eta)) +
                              (p.GetValue(firstSeed) == 1 ? "" : $" --first-seed {p.GetValue(firstSeed)}");
            var settings = new DanteRunSettings
            {
                Budget = b,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                Networks = networks,
                DanteLearningRate = eta,
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
                // Missing data is a usage error found before anything trains (a report-only call needs none).
                if (!settings.ReportOnly) DatasetCatalog.Locate(DatasetCatalog.FashionMnist, settings.FashionMnistDir);
            }, settings.OutDir, DanteComparison.Name);
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => DanteComparison.Run(settings, progress, cancellation));
            foreach (var v in DanteReport.Verdicts(settings, outcome.Runs))
                ctx.Out.WriteLine(string.Format(c, "{0}: test error DANTE {1}, SGD {2}, Adam {3} (%); {4}", v.Network,
                    Show(v.Arms[0]), Show(v.Arms[1]), Show(v.Arms[2]), v.Text));
            ctx.Out.WriteLine($"verdict: {DanteReport.Overall(DanteReport.Verdicts(settings, outcome.Runs))}");
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }

    static string Show(DanteReport.ArmResult arm) => arm.Error is Stat s
        ? string.Format(CultureInfo.InvariantCulture, s.Count > 1 ? "{0:0.00} ± {1:0.00}" : "{0:0.00}", s.Mean, s.Std)
        : "n/a";
}
