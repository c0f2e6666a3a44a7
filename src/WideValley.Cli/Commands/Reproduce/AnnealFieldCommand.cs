using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce anneal-field`: AnnealSGD's mechanism on the spherical p = 3 glass (issue 17): distinct
/// minima and end-point energies against the field strength, and an annealed field against plain projected gradient
/// descent from the same starts (<see cref="AnnealField"/>; protocol ours). Finished pieces are kept in the runs
/// folder, so an interrupted run continues; writes anneal-field[-BUDGET].{md,json,csv,png,svg}.
/// </summary>
public static class AnnealFieldCommand
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = AnnealFieldReport.Name;

    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var budget = ReproduceOptions.Budget();
        budget.Description = "smoke (N = 25, 50; 24 starts; seconds), small (N = 50, 100; 100 starts; 10 fields), paper (N = 50, 100; 200 starts; 16 fields; minutes).";
        var output = ReproduceOptions.Output();
        var runs = ReproduceOptions.Runs();
        var json = new Option<bool>("--json") { Description = "Print one JSON summary object (progress goes to stderr)." };
        var sizes = new Option<string?>("--sizes") { Description = "N of the glasses, comma-separated (default: the budget's)." };
        var starts = new Option<int?>("--starts") { Description = "Random starts per glass (default: the budget's)." };
        var fields = new Option<string?>("--fields") { Description = "Positive field strengths of the sweep, ascending, comma-separated (h = 0 is always added; default: the budget's log-spaced 0.01 to 10)." };
        var overlap = new Option<double>("--overlap") { Description = "Overlap q = <w, w'>/N at or above which two end points are one minimum.", DefaultValueFactory = _ => 0.99 };
        var stages = new Option<int>("--anneal-stages") { Description = "Non-zero field stages of the annealed protocol (5 down to 0.05, then h = 0).", DefaultValueFactory = _ => 10 };
        var directions = new Option<int?>("--field-directions") { Description = "Field directions of the annealed protocol (default: the budget's)." };
        var seed = new Option<long>("--seed") { Description = "Seed of the couplings, starts and field directions.", DefaultValueFactory = _ => 0 };
        var threads = Threads();
        var command = new Command(Name,
            "AnnealSGD's field on the p = 3 spin glass (seed 000; protocol ours): distinct minima and energies against the field strength, and an annealed field against plain projected gradient descent.")
        {
            budget, output, runs, json, sizes, starts, fields, overlap, stages, directions, seed, threads,
        };
        command.SetAction(p =>
        {
            var budgetValue = Budgets.Parse(p.GetValue(budget)!);
            var defaults = AnnealFieldSettings.For(budgetValue);
            var settings = defaults with
            {
                Sizes = p.GetValue(sizes) is { } sizeText ? ParseList(sizeText, "--sizes", s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture)) : defaults.Sizes,
                Starts = p.GetValue(starts) ?? defaults.Starts,
                Fields = p.GetValue(fields) is { } fieldText ? ParseList(fieldText, "--fields", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture)) : defaults.Fields,
                OverlapThreshold = p.GetValue(overlap),
                AnnealStages = p.GetValue(stages),
                FieldDirections = p.GetValue(directions) ?? defaults.FieldDirections,
                Seed = p.GetValue(seed),
            };
            ReproduceOptions.CheckBeforeTraining(() =>
            {
                settings.Validate();
            });
            var threadCount = p.GetValue(threads);
            if (threadCount < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
            var outDir = Path.GetFullPath(p.GetValue(output)!);
            ReportFolders.CheckWritable(outDir, Name);
            var workFolder = AnnealField.WorkFolder(Path.GetFullPath(p.GetValue(runs)!), budgetValue);
            var asJson = p.GetValue(json);
            var log = asJson ? ctx.Error : ctx.Out;

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(threadCount);
            log.WriteLine($"{Name}: budget {Budgets.Name(budgetValue)}, N = {string.Join(", ", settings.Sizes)}, {settings.Starts} starts, " +
                          $"{settings.Fields.Count} fields, pieces in {workFolder}");
            // Piece lines go through the console's progress sink (above any live display on a terminal), or to stderr with --json.
            var result = ExperimentConsole.Run(ctx, (progress, cancellation) => AnnealField.Run(settings, workFolder, line =>
            {
                if (asJson) ctx.Error.WriteLine("  " + line);
                else progress.Report(new TrainingLog(Name, line));
            }, cancellation));
            if (result.Interrupted)
            {
                ctx.Error.WriteLine($"widevalley: interrupted; {result.PiecesComputed} pieces finished this time are kept in {workFolder}; run the same command again to continue");
                return ExitCodes.Interrupted;
            }
            var commandLine = CommandLine(settings, defaults, p.GetValue(output)!, threadCount);
            var stem = Budgets.ReportStem(Name, budgetValue);
            var figureSkipped = false;
            var summaryText = AnnealFieldReport.Write(result, commandLine, ReproduceOptions.Machine(threadCount), outDir, stem, message =>
            {
                figureSkipped = true;
                ctx.Error.WriteLine($"widevalley: warning: {message}");
            });
            if (asJson)
            {
                ctx.Out.WriteLine(summaryText);
            }
            else
            {
                foreach (var line in AnnealFieldReport.Verdicts(result)) ctx.Out.WriteLine(line);
                ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{result.Seconds:0.0} s ({result.PiecesComputed} pieces computed, {result.PiecesReused} reused); wrote {outDir}: {string.Join(", ", AnnealFieldReport.Files(stem, !figureSkipped))}"));
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>A comma-separated list, each item parsed by <paramref name="parse"/>; a bad item is a usage error naming the option.</summary>
    static T[] ParseList<T>(string text, string option, Func<string, T> parse)
    {
        var items = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.Length == 0) throw new UsageException($"{option} needs at least one value, got '{text}'");
        return items.Select(item =>
        {
            try
            {
                return parse(item);
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw new UsageException($"{option}: '{item}' is not a number");
            }
        }).ToArray();
    }

    /// <summary>The command that reproduces this report (options at their budget's default left out).</summary>
    static string CommandLine(AnnealFieldSettings s, AnnealFieldSettings defaults, string outText, int threads)
    {
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string> { "widevalley", "reproduce", Name, "--budget", Budgets.Name(s.Budget) };
        if (!s.Sizes.SequenceEqual(defaults.Sizes)) parts.AddRange(["--sizes", string.Join(",", s.Sizes)]);
        if (s.Starts != defaults.Starts) parts.AddRange(["--starts", s.Starts.ToString(c)]);
        if (!s.Fields.SequenceEqual(defaults.Fields)) parts.AddRange(["--fields", string.Join(",", s.Fields.Select(v => v.ToString("R", c)))]);
        if (s.OverlapThreshold != defaults.OverlapThreshold) parts.AddRange(["--overlap", s.OverlapThreshold.ToString("R", c)]);
        if (s.AnnealStages != defaults.AnnealStages) parts.AddRange(["--anneal-stages", s.AnnealStages.ToString(c)]);
        if (s.FieldDirections != defaults.FieldDirections) parts.AddRange(["--field-directions", s.FieldDirections.ToString(c)]);
        if (s.Seed != 0) parts.AddRange(["--seed", s.Seed.ToString(c)]);
        if (threads != 0) parts.AddRange(["--threads", threads.ToString(c)]);
        if (outText != Path.Combine("docs", "results")) parts.AddRange(["--out", outText]);
        return string.Join(' ', parts);
    }
}
