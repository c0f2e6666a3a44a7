using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce local-entropy-toy`: the paper's Fig. 2 on a 1-D landscape with a wide shallow and a sharp deep
/// valley, where local entropy is known exactly by quadrature: -F(x, gamma) for two scopes with the Langevin estimates
/// overlaid, and where Entropy-SGD and plain gradient descent end from a grid of starts. Writes
/// local-entropy-toy.{md,png,svg,json,csv} (plus -langevin.csv and -ends.csv) to the output folder.
/// </summary>
public static class LocalEntropyToyCommand
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = LocalEntropyToyReport.Name;

    /// <summary>Where the reports go unless --out says otherwise (relative to the working directory).</summary>
    public const string DefaultOut = "docs/results";

    public static Command Create(CliContext ctx)
    {
        var budget = new Option<string>("--budget")
        {
            Description = "smoke (seconds: every code path, coarse numbers), small (about ten times more), paper (dense grids, 2,048 chains per Langevin point, 328 runs; minutes).",
            DefaultValueFactory = _ => "paper",
        };
        var output = new Option<string>("--out") { Description = $"Report folder (default {DefaultOut}).", DefaultValueFactory = _ => DefaultOut };
        var json = new Option<bool>("--json") { Description = "Print one JSON summary object (progress goes to stderr)." };
        var scopes = new Option<string>("--scopes")
        {
            Description = "The two scopes gamma of the figure, SMALL,LARGE (default 1,100); Entropy-SGD scopes from SMALL to 5 x SMALL.",
            DefaultValueFactory = _ => "1,100",
        };
        var temperature = new Option<double>("--temperature") { Description = "T of the Gibbs measure (the paper's 1 / beta = 1).", DefaultValueFactory = _ => 1 };
        var seed = new Option<long>("--seed") { Description = "Seed of the Langevin noise.", DefaultValueFactory = _ => 0 };
        var threads = Threads();
        var command = new Command(Name,
            "Fig. 2: -F(x, gamma) of a wide and a sharp valley by quadrature with Langevin estimates, and where Entropy-SGD and SGD end from a grid of starts.")
        {
            budget, output, json, scopes, temperature, seed, threads,
        };
        command.SetAction(p =>
        {
            var budgetValue = Budgets.Parse(p.GetValue(budget)!);
            var (small, large) = ParseScopes(p.GetValue(scopes)!);
            var settings = LocalEntropyToySettings.For(budgetValue) with
            {
                SmallScope = small,
                LargeScope = large,
                Temperature = p.GetValue(temperature),
                Seed = p.GetValue(seed),
            };
            settings.Validate();
            var threadCount = p.GetValue(threads);
            if (threadCount < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
            var outDir = Path.GetFullPath(p.GetValue(output)!);
            ReportFolders.CheckWritable(outDir, Name);
            var asJson = p.GetValue(json);
            var log = asJson ? ctx.Error : ctx.Out;

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(threadCount);
            log.WriteLine($"{Name}: budget {Budgets.Name(budgetValue)}, gamma {F(small)} and {F(large)}, T = {F(settings.Temperature)}");
            var result = LocalEntropyToy.Run(settings, line => log.WriteLine("  " + line));
            var commandLine = CommandLine(settings, p.GetValue(output)!, threadCount);

            var stem = Budgets.ReportStem(Name, budgetValue);
            var figureSkipped = false;
            var summaryText = LocalEntropyToyReport.Write(result, commandLine, outDir, stem, message =>
            {
                figureSkipped = true;
                ctx.Error.WriteLine($"widevalley: warning: {message}");
            });
            var files = LocalEntropyToyReport.Files(stem, withFigure: !figureSkipped);

            if (asJson)
            {
                ctx.Out.WriteLine(summaryText);
            }
            else
            {
                foreach (var line in LocalEntropyToyReport.Verdicts(result)) ctx.Out.WriteLine(line);
                ctx.Out.WriteLine($"{F(result.Seconds, "0.0")} s; wrote {outDir}: {string.Join(", ", files)}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>"SMALL,LARGE" into two positive numbers, SMALL below LARGE.</summary>
    public static (double Small, double Large) ParseScopes(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 2)
            throw new UsageException($"--scopes must be two values SMALL,LARGE, e.g. 1,100; got '{text}'");
        var values = new double[2];
        for (var i = 0; i < 2; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !double.IsFinite(values[i]))
                throw new UsageException($"--scopes: '{parts[i]}' is not a number");
            if (!(values[i] > 0)) throw new UsageException($"--scopes: gamma must be positive, got {parts[i]}");
        }
        if (!(values[1] > values[0])) throw new UsageException($"--scopes: the large scope must exceed the small one, got {text}");
        return (values[0], values[1]);
    }

    /// <summary>The command that reproduces this report (default options left out).</summary>
    static string CommandLine(LocalEntropyToySettings s, string outText, int threads)
    {
        var parts = new List<string> { "widevalley", "reproduce", Name, "--budget", Budgets.Name(s.Budget) };
        if (s.SmallScope != 1 || s.LargeScope != 100) parts.AddRange(["--scopes", $"{F(s.SmallScope, "R")},{F(s.LargeScope, "R")}"]);
        if (s.Temperature != 1) parts.AddRange(["--temperature", F(s.Temperature, "R")]);
        if (s.Seed != 0) parts.AddRange(["--seed", s.Seed.ToString(CultureInfo.InvariantCulture)]);
        if (threads != 0) parts.AddRange(["--threads", threads.ToString(CultureInfo.InvariantCulture)]);
        if (outText != DefaultOut) parts.AddRange(["--out", outText]);
        return string.Join(' ', parts);
    }

}
