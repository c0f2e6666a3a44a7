using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce hessian-universality`: seed 003 Sec. 5.1 (Figs. 1 and 3). A shell over
/// <see cref="HessianUniversalityRunner"/> (train each network unless its run folder holds the finished run, measure
/// its spectrum unless the measurement folder holds it, write the report): parses the options, prints the plan, shows
/// the runner's progress (<see cref="ExperimentConsole"/>) and prints the results.
/// </summary>
public static class HessianUniversalityCommand
{
    /// <summary>Debian's fortunes file (package fortunes-min): the char-LSTM's text when --corpus is not given.</summary>
    public const string DefaultCorpus = "/usr/share/games/fortunes/fortunes";

    public static Command Create(CliContext ctx)
    {
        var networks = new Option<string>("--networks")
        {
            Description = $"Comma-separated networks: {string.Join(", ", HessianUniversality.NetworkNames)}.",
            DefaultValueFactory = _ => string.Join(",", HessianUniversality.NetworkNames),
        };
        var budget = ReproduceOptions.Budget();
        var runs = new Option<string>("--runs")
        {
            Description = "Folder of the run folders (RUNS/hessian-universality-BUDGET/NETWORK, measurements in its hessian-METHOD subfolders).",
            DefaultValueFactory = _ => Path.Combine("runs", "reproduce"),
        };
        var output = ReproduceOptions.Output();
        var mnistDir = new Option<string?>("--mnist-dir") { Description = "Folder with the MNIST files; without it Fashion-MNIST stands in for MNIST." };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var cifarDir = new Option<string?>("--cifar10-dir") { Description = "CIFAR-10 binary folder for All-CNN-BN's diagonal Fisher; without it that network is skipped." };
        var corpus = new Option<string?>("--corpus")
        {
            Description = $"UTF-8 text the char-LSTM's lines are cut from (default {DefaultCorpus} when installed; without any, the char-LSTM is skipped).",
        };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = libtorch's default); the exact Hessian runs as many column workers.", DefaultValueFactory = _ => 0 };
        var command = new Command("hessian-universality",
            "Sec. 5.1 (Figs. 1, 3): train small-LeNet, small-mnistfc and a small char-LSTM to a minimum, measure their Hessian spectra (All-CNN-BN: " +
            "diagonal Fisher) and report the near-zero fractions, extremes and tails beside the paper's; resumable; writes hessian-universality[-BUDGET].md/.json and plots.")
        {
            networks, budget, runs, output, mnistDir, fashionDir, cifarDir, corpus, threads,
        };
        command.SetAction(p =>
        {
            var selected = HessianUniversality.ParseNetworks(p.GetValue(networks)!);
            var t = p.GetValue(threads);
            if (t < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {t}");
            var data = new ExperimentData
            {
                MnistDir = ReproduceOptions.ExistingFolder(p.GetValue(mnistDir), "--mnist-dir"),
                FashionMnistDir = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir"),
                Cifar10Dir = ReproduceOptions.ExistingFolder(p.GetValue(cifarDir), "--cifar10-dir"),
                Corpus = ReproduceOptions.ExistingFile(p.GetValue(corpus), "--corpus") ?? (File.Exists(DefaultCorpus) ? DefaultCorpus : null),
            };
            var b = Budgets.Parse(p.GetValue(budget)!);
            return Execute(ctx, new UniversalityRequest
            {
                Networks = selected,
                Budget = b,
                Data = data,
                Threads = t,
                RunsRoot = Path.GetFullPath(p.GetValue(runs)!),
                OutDir = Path.GetFullPath(p.GetValue(output)!),
                CommandLine = CommandLine(selected, b, data),
                Machine = ReproduceOptions.Machine(t),
            });
        });
        return command;
    }

    /// <summary>Plans, prints the plan, runs the experiment with <see cref="HessianUniversalityRunner"/>, prints the results; returns the exit code.</summary>
    static int Execute(CliContext ctx, UniversalityRequest request)
    {
        var c = CultureInfo.InvariantCulture;
        var plan = HessianUniversalityRunner.Plan(request);
        ctx.Out.WriteLine($"hessian-universality (budget {Budgets.Name(request.Budget)}): {HessianUniversality.DescribeBudget(request.Budget)}");
        foreach (var p in plan.Networks)
            ctx.Out.WriteLine(p.SkipReason is string why
                ? $"  {p.Network.Name}: skipped: {why}"
                : $"  {p.Network.Name}: training {Describe(p.State!.Value)}; {p.Spectrum.Describe()} over {p.Spectrum.Samples:N0} {p.SampleUnit}; in {p.Folder}");
        ctx.Out.WriteLine(string.Format(c, "hessian-universality: {0} trainings planned, {1} finished already, {2} to train; {3} measurements planned, {4} finished already, {5} to run",
            plan.TrainingsPlanned, plan.TrainingsPlanned - plan.TrainingsToRun, plan.TrainingsToRun, plan.MeasurementsPlanned, plan.MeasurementsDone,
            plan.MeasurementsPlanned - plan.MeasurementsDone));

        var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => HessianUniversalityRunner.Run(plan, progress, cancellation));
        foreach (var r in outcome.Report.Results) PrintResult(ctx, r);
        ctx.Out.WriteLine($"report {outcome.Files[^1]} ({outcome.Files.Count} files in {request.OutDir})");
        if (outcome.Status == UniversalityStatus.Interrupted) ctx.Out.WriteLine("interrupted: run the same command again to continue where it stopped");
        return outcome.Status switch
        {
            UniversalityStatus.Interrupted => ExitCodes.Interrupted,
            UniversalityStatus.Failed => ExitCodes.Failure,
            _ => ExitCodes.Ok,
        };
    }

    static string Describe(RunFolderState state) => state switch
    {
        RunFolderState.Empty => "to run",
        RunFolderState.Resumable => "to resume",
        RunFolderState.Finished => "finished",
        _ => "diverged (reported as such)",
    };

    static void PrintResult(CliContext ctx, UniversalityResult r)
    {
        var c = CultureInfo.InvariantCulture;
        if (r.SkipReason is not null) ctx.Out.WriteLine($"{r.Network.Name}: skipped");
        else if (!r.Measured) ctx.Out.WriteLine($"{r.Network.Name}: {r.Pending}");
        else
        {
            var s = r.Summary!;
            var quoted = string.Join(", ", r.Network.Paper.FractionAbsBelow.Select(kv =>
                string.Format(c, "|λ| < {0:0.#####}: {1:0.00}% (paper about {2:0}%)", kv.Key, 100 * s.FractionBelow(kv.Key), 100 * kv.Value)));
            ctx.Out.WriteLine(string.Format(c, "{0}: {1}; {2}; λ_max {3:G4}, λ_min {4:G4}", r.Network.Name, r.TrainingOutcome, quoted, s.LambdaMax, s.LambdaMin));
        }
    }

    /// <summary>The command that reproduces the report (without machine-specific options).</summary>
    static string CommandLine(IReadOnlyList<UniversalityNetwork> networks, Budget budget, ExperimentData data)
    {
        var parts = new List<string>
        {
            "widevalley reproduce hessian-universality", $"--budget {Budgets.Name(budget)}", $"--networks {string.Join(",", networks.Select(n => n.Name))}",
        };
        if (data.MnistDir is not null) parts.Add("--mnist-dir MNIST_DIR");
        if (data.Cifar10Dir is not null) parts.Add("--cifar10-dir CIFAR10_DIR");
        if (data.Corpus is not null && networks.Any(n => n.IsLanguageModel)) parts.Add($"--corpus {data.Corpus}");
        return string.Join(" ", parts);
    }
}
