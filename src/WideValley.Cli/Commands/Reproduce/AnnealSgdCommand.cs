using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using WideValley.Optim;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce annealsgd`: AnnealSGD against SGD with Nesterov momentum on mnistfc and LeNet, Fashion-MNIST,
/// equal epochs, several seeds (issue 17; protocol ours), as the library's <see cref="AnnealSgdComparison"/> defines
/// and runs it. Ctrl-C saves the current run's checkpoint and still writes a report of what has finished; the same
/// command continues later.
/// </summary>
public static class AnnealSgdCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int>("--seeds") { Description = "Independent runs per network and optimizer.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({AnnealSgdComparison.DescribeBudget(Budget.Smoke)}), small ({AnnealSgdComparison.DescribeBudget(Budget.Small)}), " +
                             $"paper ({AnnealSgdComparison.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var nets = new Option<string>("--nets") { Description = "Networks, comma-separated: mnistfc, lenet.", DefaultValueFactory = _ => string.Join(",", AnnealSgdComparison.Networks) };
        var fieldSize = new Option<double>("--field-size")
        {
            Description = "AnnealSGD's h0, the field's per-coordinate size at the first step (ours: 1e-3, not tuned; see docs/annealsgd.md).",
            DefaultValueFactory = _ => AnnealSgdComparison.DefaultFieldSize,
        };
        var fieldMode = new Option<string>("--field-mode") { Description = "AnnealSGD field: fixed (one Gaussian direction, the magnetic field) or fresh (annealed gradient noise).", DefaultValueFactory = _ => "fixed" };
        fieldMode.AcceptOnlyFromAmong("fixed", "fresh");
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = MeasurementOptions.Threads();
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing; write the report from the runs that have finished." };
        var command = new Command(AnnealSgdComparison.Name,
            "AnnealSGD (our reading of the abstract) against SGD with Nesterov momentum on mnistfc and LeNet, Fashion-MNIST, equal epochs, 3 seeds; " +
            "writes annealsgd[-BUDGET].md/.json and a plot per network.")
        {
            seeds, firstSeed, budget, runs, output, nets, fieldSize, fieldMode, fashionDir, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            if (threadCount < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
            var networks = p.GetValue(nets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var mode = p.GetValue(fieldMode) == "fresh" ? AnnealFieldMode.Fresh : AnnealFieldMode.Fixed;
            var h0 = p.GetValue(fieldSize);
            var c = CultureInfo.InvariantCulture;
            var commandLine = $"widevalley reproduce annealsgd --seeds {p.GetValue(seeds)} --budget {Budgets.Name(b)}" +
                              (networks.SequenceEqual(AnnealSgdComparison.Networks) ? "" : $" --nets {string.Join(",", networks)}") +
                              (h0 == AnnealSgdComparison.DefaultFieldSize ? "" : string.Format(c, " --field-size {0}", h0)) +
                              (mode == AnnealFieldMode.Fixed ? "" : " --field-mode fresh") +
                              (p.GetValue(firstSeed) == 1 ? "" : $" --first-seed {p.GetValue(firstSeed)}");
            var settings = new AnnealSgdRunSettings
            {
                Budget = b,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                Networks = networks,
                FieldSize = h0,
                FieldMode = mode,
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
            }, settings.OutDir, AnnealSgdComparison.Name);
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => AnnealSgdComparison.Run(settings, progress, cancellation));
            foreach (var v in AnnealSgdReport.Verdicts(settings, outcome.Runs))
                ctx.Out.WriteLine(string.Format(c, "{0}: SGD {1} seed(s), AnnealSGD {2}; AnnealSGD - SGD {3:+0.000;-0.000;0.000} points (SE {4:0.000}): {5}",
                    v.Network, v.Sgd.Count, v.AnnealSgd.Count, v.MeanDifference, v.DifferenceError, v.Text));
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }
}
