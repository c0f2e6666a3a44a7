using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce spin-glass`: seed 001's Fig. 3 on the p = 3 spherical spin glass (see
/// <see cref="SpinGlassExperiment"/>). A shell: parses and checks the options, locks the pieces folder
/// (RUNS/spin-glass-BUDGET-seed-S, one finished N per file), runs the experiment with Ctrl-C / SIGTERM stopping it
/// between steps (finished sizes are kept; the same command continues), and writes the report.
/// </summary>
public static class SpinGlassCommand
{
    /// <summary>The subcommand's name and the stem of its report files.</summary>
    public const string Name = SpinGlassExperiment.Name;

    /// <summary>The subcommand, to be added to `reproduce`.</summary>
    public static Command Create(CliContext ctx)
    {
        var budget = ReproduceOptions.Budget();
        var output = ReproduceOptions.Output();
        var runs = new Option<string>("--runs")
        {
            Description = "Folder of the finished pieces (RUNS/spin-glass-BUDGET-seed-S/n-NNNN.json, one per N); a run continues from them.",
            DefaultValueFactory = _ => Path.Combine("runs", "reproduce"),
        };
        var seed = new Option<long>("--seed") { Description = "Seed of the couplings, starts and splits (each N derives its own).", DefaultValueFactory = _ => 0 };
        var threads = MeasurementOptions.Threads();
        var json = new Option<bool>("--json") { Description = "Print one JSON summary object (progress goes to stderr)." };
        var command = new Command(Name,
            "Fig. 3: final energies of projected SGD on the p = 3 spherical spin glass for N = 25..500 (histograms with −E0 and −E∞, spread against N, " +
            "indices, distinct minima) and the complexity curves of Figs. 1/2; resumable per N; writes spin-glass[-BUDGET].md/.json/.png.")
        {
            budget, output, runs, seed, threads, json,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var settings = SpinGlassSettings.For(b) with { Seed = p.GetValue(seed) };
            settings.Validate();
            var t = p.GetValue(threads);
            if (t < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {t}");
            var outDir = Path.GetFullPath(p.GetValue(output)!);
            var stem = Budgets.ReportStem(Name, b);
            ReportFolders.CheckWritable(outDir, stem);
            var piecesDir = Path.Combine(Path.GetFullPath(p.GetValue(runs)!), $"{Name}-{Budgets.Name(b)}-seed-{settings.Seed.ToString(CultureInfo.InvariantCulture)}");
            var asJson = p.GetValue(json);
            var log = asJson ? ctx.Error : ctx.Out;
            var commandLine = CommandLine(b, settings.Seed);

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(t);
            using var claim = RunFolderLock.Acquire(piecesDir);
            log.WriteLine($"{Name}: budget {Budgets.Name(b)}, p = {settings.Order}, N in {{{string.Join(", ", settings.Sizes)}}}, {settings.Starts} starts each; pieces in {piecesDir}");
            var outcome = ExperimentConsole.Run(ctx, (progress, cancellation) =>
                SpinGlassExperiment.Run(settings, piecesDir, line =>
                {
                    // The console shows a log line above its live display; with --json the lines go to stderr.
                    if (asJson) ctx.Error.WriteLine("  " + line);
                    else progress.Report(new TrainingLog(Name, line));
                }, cancellation));
            if (outcome.Result is not { } result)
            {
                log.WriteLine($"interrupted: finished sizes N = {string.Join(", ", outcome.Finished)} are kept in {piecesDir}; run the same command again to continue");
                return ExitCodes.Interrupted;
            }
            var (summary, files) = SpinGlassReport.Write(result, commandLine, ReproduceOptions.Machine(t), outDir, stem,
                message => ctx.Error.WriteLine($"widevalley: warning: {message}"));
            if (asJson) ctx.Out.WriteLine(summary);
            else
            {
                foreach (var line in SpinGlassReport.Verdicts(result)) ctx.Out.WriteLine(line);
                ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{result.Seconds:0.0} s; computed N = {(result.Computed.Count == 0 ? "none (all finished before)" : string.Join(", ", result.Computed))}; wrote {outDir}: {string.Join(", ", files)}"));
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The command that reproduces the report (defaults and the machine's folders and threads left out).</summary>
    static string CommandLine(Budget budget, long seed)
    {
        var parts = new List<string> { "widevalley", "reproduce", Name, "--budget", Budgets.Name(budget) };
        if (seed != 0) parts.AddRange(["--seed", seed.ToString(CultureInfo.InvariantCulture)]);
        return string.Join(' ', parts);
    }
}
