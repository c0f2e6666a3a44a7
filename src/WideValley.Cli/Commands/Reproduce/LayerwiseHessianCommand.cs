using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce layerwise-hessian`: the layerwise Hessian spectra of Sankar et al. (AAAI 2021) on Fashion-MNIST,
/// as the library's <see cref="LayerwiseHessianExperiment"/> defines and runs it. Ctrl-C keeps the current run's
/// checkpoint (and its spectra so far) and still writes a report of what has finished; the same command continues.
/// </summary>
public static class LayerwiseHessianCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var seeds = new Option<int>("--seeds") { Description = "Independent training runs.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({LayerwiseHessianExperiment.DescribeBudget(Budget.Smoke)}), small ({LayerwiseHessianExperiment.DescribeBudget(Budget.Small)}), " +
                             $"paper ({LayerwiseHessianExperiment.DescribeBudget(Budget.Paper)}).";
        var model = new Option<string>("--model") { Description = "Model-zoo image classifier (default our lenet).", DefaultValueFactory = _ => "lenet" };
        var density = new Option<string>("--density")
        {
            Description = "Spectral density: authors (their Lanczos preset: 64 + 128 steps, no reorthogonalisation; the default here, for parity) or ours (128 steps with reorthogonalisation).",
            DefaultValueFactory = _ => "authors",
        };
        density.AcceptOnlyFromAmong("authors", "ours");
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = MeasurementOptions.Threads();
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing; write the report from the runs that have finished." };
        var command = new Command(LayerwiseHessianExperiment.Name,
            "Layerwise Hessian spectra (Sankar et al., AAAI 2021): LeNet on Fashion-MNIST, full and per-layer densities, lambda_max and trace after every epoch; " +
            "distance to the full spectrum against depth (three measures) and verdicts; writes layerwise-hessian[-BUDGET].md/.json and plots.")
        {
            seeds, firstSeed, budget, model, density, runs, output, fashionDir, threads, device, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            if (threadCount < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
            var mode = p.GetValue(density) == "ours" ? CurvatureSpectra.Ours : CurvatureSpectra.Authors;
            var modelName = p.GetValue(model)!;
            var commandLine = $"widevalley reproduce {LayerwiseHessianExperiment.Name} --seeds {p.GetValue(seeds)} --budget {Budgets.Name(b)}" +
                              (modelName == "lenet" ? "" : $" --model {modelName}") +
                              (mode == CurvatureSpectra.Authors ? "" : " --density ours") +
                              (p.GetValue(firstSeed) == 1 ? "" : $" --first-seed {p.GetValue(firstSeed)}") +
                              (threadCount > 0 ? $" --threads {threadCount}" : "");
            var settings = new LayerwiseHessianSettings
            {
                Budget = b,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                Model = modelName,
                Density = mode,
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
                LayerwiseHessianExperiment.Plan(settings);
            }, settings.OutDir, LayerwiseHessianReport.Stem(settings));
            TorchRuntime.EnsureInitialized();
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) => LayerwiseHessianExperiment.Run(settings, progress, cancellation));
            var finished = outcome.Runs.Where(r => r.Analysis is not null).Select(r => r.Analysis!).ToList();
            foreach (var v in LayerwiseHessianReport.MiddleVerdicts(finished).Append(LayerwiseHessianReport.FallVerdict(finished)))
                ctx.Out.WriteLine($"{v.Claim}: {v.Verdict} ({v.Evidence})");
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }
}
