using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using WideValley.Experiments.Flatness;
using WideValley.Landscape.Flatness;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce wide-valleys`: parses the options into the library's <see cref="WideValleys"/> experiment
/// (train the missing Table 1 runs of mnistfc and LeNet, measure every flatness measure on each finished run, judge
/// the paper's claim per measure, write the report), runs it with progress lines and Ctrl-C handling
/// (<see cref="ExperimentConsole"/>) and prints what it did and the verdicts.
/// </summary>
public static class WideValleysCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliContext ctx)
    {
        var networks = new Option<string>("--networks")
        {
            Description = $"Comma-separated Table 1 networks: {string.Join(", ", WideValleys.Networks.Select(r => r.Name))}.",
            DefaultValueFactory = _ => string.Join(",", WideValleys.Networks.Select(r => r.Name)),
        };
        var flatnessBudget = new Option<string?>("--flatness-budget")
        {
            Description = $"The flatness budget ({string.Join(", ", FlatnessBudget.Names)}); default quick for --budget smoke and small, standard for paper.",
        };
        var common = new ComparisonOptions(WideValleys.DefaultSeeds, "Runs per optimizer and network (the issue: 3).");
        var command = new Command("wide-valleys",
            "The paper's claim measured: Table 1's mnistfc and LeNet runs (Entropy-SGD against Adam; the missing ones are trained in the " +
            "`reproduce table1 --runs` folders), every flatness measure on each, and a verdict per measure: is Entropy-SGD's minimum wider, and does " +
            "width go with lower test error? Resumable; writes wide-valleys[-BUDGET].md/.json/.csv and one plot grid per network.")
        {
            networks, flatnessBudget,
        };
        foreach (var option in common.All) command.Add(option);
        command.SetAction(p =>
        {
            var selected = WideValleys.ParseNetworks(p.GetValue(networks)!);
            var s = common.Read(p);
            if (s.Seeds < 1) throw new UsageException($"--seeds must be at least 1, got {s.Seeds}");
            if (s.Threads < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {s.Threads}");
            var budgetName = p.GetValue(flatnessBudget);
            if (budgetName is not null && !FlatnessBudget.Names.Contains(budgetName.ToLowerInvariant()))
                throw new UsageException($"--flatness-budget must be one of {string.Join(", ", FlatnessBudget.Names)}, got '{budgetName}'");
            var data = new ExperimentData { MnistDir = s.MnistDir, FashionMnistDir = s.FashionMnistDir };
            var settings = new WideValleysSettings
            {
                Budget = s.Budget, Networks = selected, Seeds = s.Seeds, FirstSeed = s.FirstSeed, Data = data,
                FlatnessBudget = budgetName is null ? null : FlatnessBudget.Named(budgetName),
                Threads = s.Threads, Device = s.Device, RunsRoot = s.RunsRoot, OutDir = s.OutDir, ReportOnly = s.ReportOnly,
                CommandLine = CommandLine(selected, s.Seeds, s.FirstSeed, s.Budget, budgetName, data),
                Machine = ReproduceOptions.Machine(s.Threads),
            };
            return Execute(ctx, settings);
        });
        return command;
    }

    static int Execute(CliContext ctx, WideValleysSettings settings)
    {
        WideValleys.Plan(settings);
        var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => WideValleys.Run(settings, progress, cancellation));
        var c = CultureInfo.InvariantCulture;
        ctx.Out.WriteLine(string.Format(c, "wide-valleys: {0} Table 1 runs planned, {1} finished before, {2} trained now; {3} flatness measures computed, {4} reused from the store",
            outcome.Planned, outcome.FinishedBefore, outcome.TrainedNow, outcome.MeasuredNow, outcome.Reused));
        foreach (var network in outcome.Results.Networks)
            ctx.Out.WriteLine($"{network.Row.Name}: {WideValleysReport.Overall(network)}");
        ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
        return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
    }

    /// <summary>The command that reproduces the report (without machine-specific options).</summary>
    static string CommandLine(IReadOnlyList<ComparisonRow> networks, int seeds, long firstSeed, Budget budget, string? flatnessBudget, ExperimentData data)
    {
        var parts = new List<string>
        {
            "widevalley reproduce wide-valleys", $"--networks {string.Join(",", networks.Select(r => r.Name))}", $"--seeds {seeds}", $"--budget {Budgets.Name(budget)}",
        };
        if (firstSeed != 1) parts.Add($"--first-seed {firstSeed}");
        if (flatnessBudget is not null) parts.Add($"--flatness-budget {flatnessBudget.ToLowerInvariant()}");
        if (data.MnistDir is not null) parts.Add("--mnist-dir MNIST_DIR");
        return string.Join(" ", parts);
    }
}
