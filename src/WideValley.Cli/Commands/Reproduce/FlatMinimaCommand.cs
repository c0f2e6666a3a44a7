using System.CommandLine;
using System.Globalization;
using WideValley.Data;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce flat-minima`: every flat-minima method at equal cost on the same networks and seeds, with a
/// search of each arm's grid on a validation split, test error, wall time and the flatness report's measures in one
/// table, as the library's <see cref="FlatMinimaExperiment"/> defines and runs it. Ctrl-C keeps what has finished and
/// still writes the report; the same command continues later.
/// </summary>
public static class FlatMinimaCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var networks = new Option<string>("--networks")
        {
            Description = $"Comma-separated networks: {string.Join(", ", FlatMinimaDesign.Networks.Select(n => n.Name))} (mlp1 is the one-hidden-layer MLP mlp1-grelu, the only network DANTE runs on; char-lstm needs --corpus, allcnn --cifar10-dir; skipped with the reason otherwise).",
            DefaultValueFactory = _ => string.Join(",", FlatMinimaDesign.Networks.Select(n => n.Name)),
        };
        var arms = new Option<string>("--arms")
        {
            Description = $"Comma-separated arms: {string.Join(", ", FlatMinimaDesign.Arms.Select(a => a.Key))} (entropy is Entropy-Adam on the char-LSTM; noise is annealed gradient noise; dante runs only on mlp1, it is defined for one hidden layer: " +
                          "not applicable on the other networks, and an error when no arm asked for can run on any network asked for).",
            DefaultValueFactory = _ => string.Join(",", FlatMinimaDesign.Arms.Select(a => a.Key)),
        };
        var seeds = new Option<int>("--seeds") { Description = "Final runs per arm with the chosen hyper-parameters.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first final run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var trials = new Option<int>("--search-trials")
        {
            Description = $"Search trials per arm, the same for every arm: the first N candidates of each arm's grid (1 to {FlatMinimaDesign.GridSize}).",
            DefaultValueFactory = _ => FlatMinimaDesign.GridSize,
        };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({FlatMinimaDesign.DescribeBudget(Budget.Smoke)}), small ({FlatMinimaDesign.DescribeBudget(Budget.Small)}), paper ({FlatMinimaDesign.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var corpus = new Option<string?>("--corpus") { Description = "UTF-8 text for char-lstm (e.g. /usr/share/games/fortunes/fortunes); without it char-lstm is skipped." };
        var cifarDir = new Option<string?>("--cifar10-dir") { Description = "CIFAR-10 binary folder; without it allcnn is skipped." };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = MeasurementOptions.Threads();
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train and measure nothing; write the report from what has finished." };
        var command = new Command(FlatMinimaDesign.Name,
            "Every flat-minima method (SGD and Adam baselines, Entropy-SGD/Entropy-Adam, SGLD, AnnealSGD, SAM, ASAM, SGD+HTR, ADINE, gradient noise, DANTE) at equal cost " +
            "(effective epochs) on LeNet, mnistfc and the one-hidden-layer MLP mlp1 (Fashion-MNIST; DANTE on mlp1 only), the char-LSTM and All-CNN-BN when their data is given: " +
            "a search per arm on a validation split, " +
            "3 seeds of the chosen values, test error, wall time and flatness measures; writes flat-minima[-BUDGET].md/.json, CSV files and plots.")
        {
            networks, arms, seeds, firstSeed, trials, budget, runs, output, corpus, cifarDir, fashionDir, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            static List<string> List(string text) => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList();
            var networkList = List(p.GetValue(networks)!);
            var armList = List(p.GetValue(arms)!);
            var corpusPath = ReproduceOptions.ExistingFile(p.GetValue(corpus), "--corpus");
            var cifarPath = ReproduceOptions.ExistingFolder(p.GetValue(cifarDir), "--cifar10-dir");
            var c = CultureInfo.InvariantCulture;
            var commandLine = $"widevalley reproduce {FlatMinimaDesign.Name} --budget {Budgets.Name(b)} --networks {string.Join(",", networkList)} --arms {string.Join(",", armList)}" +
                              $" --seeds {p.GetValue(seeds)} --search-trials {p.GetValue(trials)}" +
                              (p.GetValue(firstSeed) == 1 ? "" : string.Create(c, $" --first-seed {p.GetValue(firstSeed)}")) +
                              (corpusPath is null ? "" : $" --corpus {corpusPath}") +
                              (cifarPath is null ? "" : " --cifar10-dir CIFAR10_DIR") +
                              (threadCount > 0 ? $" --threads {threadCount}" : "");
            var settings = new FlatMinimaSettings
            {
                Budget = b,
                Networks = networkList,
                Arms = armList,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                SearchTrials = p.GetValue(trials),
                Corpus = corpusPath,
                Cifar10Dir = cifarPath,
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
                if (File.Exists(settings.RunsRoot)) throw new ArgumentException($"--runs {settings.RunsRoot} is a file; give a folder for the run folders");
                if (!settings.ReportOnly && settings.NetworkList.Any(n => FlatMinimaDesign.Base(n, settings.Data, 0, 0, "cpu").Data == DatasetCatalog.FashionMnist))
                    DatasetCatalog.Locate(DatasetCatalog.FashionMnist, settings.FashionMnistDir);
                FlatMinimaExperiment.PlanSearch(settings); // every run's configuration is checked before anything trains
            }, settings.OutDir, FlatMinimaDesign.Name);
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => FlatMinimaExperiment.Run(settings, progress, cancellation));
            foreach (var n in outcome.Networks)
            {
                if (n.SkipReason is not null)
                {
                    ctx.Out.WriteLine($"{n.Network.Title}: skipped ({n.SkipReason})");
                    continue;
                }
                foreach (var row in FlatMinimaReport.Rows(settings, n).Where(r => r.Scores.Count > 0))
                    ctx.Out.WriteLine(string.Create(c, $"{n.Network.Title} {row.Title}: test {row.Scores.Average():0.00} ({row.Scores.Count} seeds)") +
                                      (row.VersusSgd is { } v ? string.Create(c, $", vs SGD {v.Difference:+0.00;-0.00;0.00}: {v.Word}") : "") +
                                      (row.VersusAdam is { } a ? string.Create(c, $", vs Adam {a.Difference:+0.00;-0.00;0.00}: {a.Word}") : ""));
            }
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }
}
