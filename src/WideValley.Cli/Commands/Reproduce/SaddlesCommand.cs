using System.CommandLine;
using System.Globalization;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Models;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce saddles`: "Are saddles good enough?" (arXiv 1706.02052; protocol ours): networks trained on
/// Fashion-MNIST with SGD, Adam, Entropy-SGD and perturbed gradient descent, the Hessian at the end of training
/// classified (fractions of negative, near-zero and positive eigenvalues at several tau, index, degeneracy, gradient
/// norm) and Wigner's semicircle fitted to its bulk, as the library's <see cref="SaddlesExperiment"/> defines and runs
/// it. Ctrl-C keeps what has finished and still writes the report; the same command continues later.
/// </summary>
public static class SaddlesCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int?>("--seeds") { Description = "Independent runs per network and optimizer (default: 1 at smoke, 2 at small, 3 at paper)." };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({SaddlesExperiment.DescribeBudget(Budget.Smoke)}), small ({SaddlesExperiment.DescribeBudget(Budget.Small)}), " +
                             $"paper ({SaddlesExperiment.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var networks = new Option<string>("--networks")
        {
            Description = $"Networks, comma-separated: {string.Join(", ", SaddlesExperiment.ImageNetworks)} (and {ModelZoo.AllCnnName}, added by --cifar10).",
            DefaultValueFactory = _ => string.Join(",", SaddlesExperiment.ImageNetworks),
        };
        var optimizers = new Option<string>("--optimizers")
        {
            Description = $"Optimizers, comma-separated: {string.Join(", ", SaddlesExperiment.Optimizers)}.",
            DefaultValueFactory = _ => string.Join(",", SaddlesExperiment.Optimizers),
        };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var cifar = new Option<string?>("--cifar10") { Description = "Folder with CIFAR-10's binary files: adds All-CNN-BN on CIFAR-10 (skipped, with the reason, without it)." };
        var threads = MeasurementOptions.Threads();
        var reportOnly = new Option<bool>("--report-only") { Description = "Train and measure nothing; write the report from what has finished." };
        var command = new Command(SaddlesExperiment.Name,
            "\"Are saddles good enough?\" (arXiv 1706.02052; protocol ours): classify the Hessian at the end of training (negative / near-zero / positive fractions, index, " +
            "degeneracy, gradient norm) for SGD, Adam, Entropy-SGD and PGD on small-LeNet, mnistfc and LeNet, and fit Wigner's semicircle to the bulk; writes saddles[-BUDGET].md/.json and plots.")
        {
            seeds, firstSeed, budget, runs, output, networks, optimizers, fashionDir, cifar, threads, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var seedCount = p.GetValue(seeds) ?? SaddlesExperiment.DefaultSeeds(b);
            var threadCount = p.GetValue(threads);
            if (threadCount < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
            var cifarDir = ReproduceOptions.ExistingFolder(p.GetValue(cifar), "--cifar10");
            var nets = p.GetValue(networks)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
            if (cifarDir is not null && !nets.Contains(ModelZoo.AllCnnName) && p.GetResult(networks) is not { Implicit: false }) nets.Add(ModelZoo.AllCnnName);
            var opts = p.GetValue(optimizers)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var fashion = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir");
            if (!p.GetValue(reportOnly))
            {
                // Missing data is a usage error before anything trains.
                try
                {
                    DatasetCatalog.ResolveFolder(DatasetCatalog.FashionMnist, fashion);
                }
                catch (DataException e)
                {
                    throw new UsageException($"Fashion-MNIST is needed: {e.Message} (give --fashion-mnist-dir DIR)");
                }
            }
            var commandLine = $"widevalley reproduce saddles --budget {Budgets.Name(b)} --seeds {seedCount}" +
                              (nets.SequenceEqual(SaddlesExperiment.ImageNetworks) ? "" : $" --networks {string.Join(",", nets)}") +
                              (opts.SequenceEqual(SaddlesExperiment.Optimizers) ? "" : $" --optimizers {string.Join(",", opts)}") +
                              (p.GetValue(firstSeed) == 1 ? "" : $" --first-seed {p.GetValue(firstSeed)}") +
                              (cifarDir is null ? "" : $" --cifar10 {cifarDir}") +
                              (threadCount > 0 ? $" --threads {threadCount}" : "");
            var settings = new SaddlesSettings
            {
                Budget = b,
                Seeds = seedCount,
                FirstSeed = p.GetValue(firstSeed),
                Networks = nets,
                Optimizers = opts,
                FashionMnistDir = fashion,
                Cifar10Dir = cifarDir,
                Threads = threadCount,
                RunsRoot = Path.GetFullPath(p.GetValue(runs)!),
                OutDir = Path.GetFullPath(p.GetValue(output)!),
                ReportOnly = p.GetValue(reportOnly),
                CommandLine = commandLine,
                Machine = ReproduceOptions.Machine(threadCount),
            };
            try
            {
                settings.Validate();
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            ReportFolders.CheckWritable(settings.OutDir, SaddlesExperiment.Name);
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => SaddlesExperiment.Run(settings, progress, cancellation));
            var c = CultureInfo.InvariantCulture;
            foreach (var (run, m) in outcome.Runs.Where(r => r.Result is not null))
                ctx.Out.WriteLine(string.Format(c, "{0}: {1}", run.Label, m!.Exact is { } e ? $"exact block {e.Describe()}; slq {m.Slq.Describe()}" : m.Slq.Describe()));
            foreach (var v in SaddlesReport.Verdicts(outcome.Runs.Where(r => r.Result is not null).Select(r => r.Result!).ToList()))
                ctx.Out.WriteLine($"claim: {v.Claim}: {v.Verdict} ({v.Evidence})");
            foreach (var (network, reason) in outcome.Skipped) ctx.Out.WriteLine($"{network} skipped: {reason}");
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }
}
