using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce level-sets`: seed 002 (Freeman and Bruna, ICLR 2017, Fig. 1) with Garipov et al.'s curves
/// between the same pairs. A shell: parses and checks the options, locks the pieces folder
/// (RUNS/level-sets-BUDGET-seed-S, one finished task and level per file), runs the parts asked for with Ctrl-C / SIGTERM
/// stopping them between pairs (finished levels are kept; the same command continues), and writes the report from
/// every finished level (<see cref="LevelSetsReport"/>).
/// </summary>
public static class LevelSetsCommand
{
    /// <summary>The subcommand's name and the stem of its report files.</summary>
    public const string Name = LevelSetsExperiment.Name;

    /// <summary>The values of --part.</summary>
    public static readonly IReadOnlyList<string> Parts = ["all", "toys", "networks"];

    /// <summary>The subcommand, to be added to `reproduce`.</summary>
    public static Command Create(CliContext ctx)
    {
        var budget = ReproduceOptions.Budget();
        var output = ReproduceOptions.Output();
        var runs = new Option<string>("--runs")
        {
            Description = "Folder of the finished pieces (RUNS/level-sets-BUDGET-seed-S/TASK-L<L0>.json, one per task and level); a run continues from them.",
            DefaultValueFactory = _ => Path.Combine("runs", "reproduce"),
        };
        var part = new Option<string>("--part")
        {
            Description = "toys (the quadratic and cubic regression networks), networks (the CNN, and the char-LSTM or with --ptb the paper's PTB LSTM) or all.",
            DefaultValueFactory = _ => "all",
        };
        part.AcceptOnlyFromAmong([.. Parts]);
        var seed = new Option<long>("--seed") { Description = "Seed of the samples, endpoints and curves (each level derives its own).", DefaultValueFactory = _ => 1 };
        var pairs = new Option<int?>("--pairs") { Description = "Endpoint pairs per level of the toys (default: the budget's; smoke 2, small 3, paper 10)." };
        var depth = new Option<int?>("--depth") { Description = "d_max of the toys' string search: depths before it gives up (default 10, the authors')." };
        var quadraticLevels = new Option<string?>("--quadratic-levels") { Description = "Comma-separated L0 (MAE) of the quadratic, ascending (default: the budget's)." };
        var cubicLevels = new Option<string?>("--cubic-levels") { Description = "Comma-separated L0 (MAE) of the cubic, ascending (default: the budget's)." };
        var curveSteps = new Option<long?>("--curve-steps") { Description = "Training steps of each Bézier curve between the toys' pairs (default: the budget's; smoke 1,000, otherwise 10,000)." };
        var fashionMnist = new Option<string>("--fashion-mnist")
        {
            Description = "Folder of Fashion-MNIST's four idx files, for the CNN of the networks' part.",
            DefaultValueFactory = _ => LevelSetsNetworkSettings.DefaultFashionMnistDir,
        };
        var corpus = new Option<string>("--corpus")
        {
            Description = "UTF-8 text file for the char-LSTM of the networks' part.",
            DefaultValueFactory = _ => LevelSetsNetworkSettings.DefaultCorpus,
        };
        var ptb = new Option<string?>("--ptb")
        {
            Description = "Penn Treebank folder (ptb.train.txt, ptb.valid.txt, ptb.test.txt): the networks' part then runs the paper's own PTB network " +
                          "(ptb-small-lstm, word level) over perplexity levels in the char-LSTM's place.",
        };
        var threads = MeasurementOptions.Threads();
        var json = new Option<bool>("--json") { Description = "Print one JSON summary object (progress goes to stderr)." };
        var command = new Command(Name,
            "Freeman & Bruna Fig. 1: Dynamic String Sampling between trained endpoints over grids of L0 (normalised length and bead count beside the paper's), " +
            "Bézier curves between the same pairs (barrier beside the straight line's), verdicts per claim; resumable per level; writes level-sets[-BUDGET].md/.json/.csv/.png.")
        {
            budget, output, runs, part, seed, pairs, depth, quadraticLevels, cubicLevels, curveSteps, fashionMnist, corpus, ptb, threads, json,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var which = (p.GetValue(part) ?? "").Trim().ToLowerInvariant();
            if (!Parts.Contains(which)) throw new UsageException($"--part must be one of {string.Join(", ", Parts)}, got '{p.GetValue(part)}'");
            var s = p.GetValue(seed);
            if (s < 0) throw new UsageException($"--seed must be zero or positive, got {s}");
            if (p.GetValue(pairs) is < 1) throw new UsageException($"--pairs must be at least 1 endpoint pair per level, got {p.GetValue(pairs)}");
            if (p.GetValue(depth) is < 1) throw new UsageException($"--depth must be at least 1, got {p.GetValue(depth)}");
            if (p.GetValue(curveSteps) is < 1) throw new UsageException($"--curve-steps must be at least 1, got {p.GetValue(curveSteps)}");
            var defaults = LevelSetsSettings.For(b);
            var settings = defaults with
            {
                Seed = (ulong)s,
                Pairs = p.GetValue(pairs) ?? defaults.Pairs,
                MaxDepth = p.GetValue(depth) ?? defaults.MaxDepth,
                QuadraticLevels = p.GetValue(quadraticLevels) is string q ? ParseLevels(q, "--quadratic-levels") : defaults.QuadraticLevels,
                CubicLevels = p.GetValue(cubicLevels) is string c ? ParseLevels(c, "--cubic-levels") : defaults.CubicLevels,
                CurveSteps = p.GetValue(curveSteps) ?? defaults.CurveSteps,
            };
            var runToys = which is "toys" or "all";
            var runNetworks = which is "networks" or "all";
            var networkSettings = LevelSetsNetworkSettings.For(b) with
            {
                Seed = (ulong)s, FashionMnistDir = Path.GetFullPath(p.GetValue(fashionMnist)!), Corpus = Path.GetFullPath(p.GetValue(corpus)!),
            };
            if (p.GetValue(ptb) is string ptbDir) networkSettings = networkSettings.WithPtb(Path.GetFullPath(ptbDir));
            ReproduceOptions.CheckBeforeTraining(() =>
            {
                settings.Validate();
                // Before anything runs: a missing data folder or corpus is named now, not after the toys' part.
                if (runNetworks) networkSettings.Validate();
            });
            var t = p.GetValue(threads);
            if (t < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {t}");
            var outDir = Path.GetFullPath(p.GetValue(output)!);
            var stem = Budgets.ReportStem(Name, b);
            ReportFolders.CheckWritable(outDir, stem);
            var piecesDir = Path.Combine(Path.GetFullPath(p.GetValue(runs)!), $"{Name}-{Budgets.Name(b)}-seed-{s.ToString(CultureInfo.InvariantCulture)}");
            var asJson = p.GetValue(json);
            var log = asJson ? ctx.Error : ctx.Out;
            var commandLine = CommandLine(b, which, settings, defaults);

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(t);
            using var claim = RunFolderLock.Acquire(piecesDir);
            var toyText = !runToys ? "" : string.Create(CultureInfo.InvariantCulture,
                $"; toys at {string.Join("; ", settings.Tasks.Select(task => $"{LevelSetsExperiment.TaskName(task)} L0 in {{{string.Join(", ", settings.Levels(task))}}}"))}, " +
                $"{settings.Pairs} pairs each, curves {settings.CurveSteps:N0} steps");
            var networkText = !runNetworks ? "" : string.Create(CultureInfo.InvariantCulture,
                $"; networks at {string.Join("; ", networkSettings.Networks.Select(n => $"{n} L0 in {{{string.Join(", ", networkSettings.Levels(n))}}}"))}, {networkSettings.Pairs} pairs each");
            log.WriteLine($"{Name}: budget {Budgets.Name(b)}, part {which}{toyText}{networkText}; pieces in {piecesDir}");
            var (levels, computed, interrupted, missing, seconds) = ExperimentConsole.Run(ctx, (progress, cancellation) =>
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                void Log(string line)
                {
                    // The console shows a log line above its live display; with --json the lines go to stderr.
                    if (asJson) ctx.Error.WriteLine("  " + line);
                    else progress.Report(new TrainingLog(Name, line));
                }
                // Every part adds its finished levels to one list; the report is written from all of them.
                var all = new List<LevelSetsLevelResult>();
                var notRun = new List<string>();
                var made = 0;
                var stopped = false;
                if (runToys)
                {
                    var toys = LevelSetsExperiment.RunToys(settings, piecesDir, Log, cancellation);
                    all.AddRange(toys.Levels);
                    made += toys.Computed;
                    stopped |= toys.Interrupted;
                }
                if (runNetworks && !stopped)
                {
                    var networks = LevelSetsNetworks.Run(networkSettings, piecesDir, Log, cancellation);
                    all.AddRange(networks.Levels);
                    made += networks.Computed;
                    stopped |= networks.Interrupted;
                }
                return (all, made, stopped, notRun, watch.Elapsed.TotalSeconds);
            });

            if (levels.Count == 0)
            {
                if (interrupted)
                {
                    log.WriteLine($"interrupted before any level finished; nothing to report. Run the same command again to continue ({piecesDir})");
                    return ExitCodes.Interrupted;
                }
                ctx.Error.WriteLine($"widevalley: {Name}: nothing to report: {string.Join(" ", missing)}");
                return ExitCodes.Failure;
            }
            var input = new LevelSetsReportInput
            {
                Levels = levels, Budget = b, CommandLine = commandLine, Machine = ReproduceOptions.Machine(t), ToySettings = runToys ? settings : null,
                Protocols = runNetworks ? [networkSettings.Describe()] : [],
                Missing = missing, Interrupted = interrupted, Seconds = seconds,
            };
            var (summary, files) = LevelSetsReport.Write(input, outDir, stem, message => ctx.Error.WriteLine($"widevalley: warning: {message}"));
            if (asJson) ctx.Out.WriteLine(summary);
            else
            {
                foreach (var line in LevelSetsReport.Verdicts(levels)) ctx.Out.WriteLine(line);
                foreach (var line in missing) ctx.Out.WriteLine($"not run: {line}");
                ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{seconds:0.0} s; computed {computed} level(s) ({levels.Count - computed} finished before); wrote {outDir}: {string.Join(", ", files)}"));
            }
            if (interrupted)
            {
                log.WriteLine($"interrupted: the finished levels are kept in {piecesDir} and reported; run the same command again to continue");
                return ExitCodes.Interrupted;
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>"0.1,0.125" as ascending positive levels; a clear error naming <paramref name="option"/> otherwise.</summary>
    /// <exception cref="UsageException">A value that is not a positive finite number, or levels not distinct and ascending.</exception>
    public static IReadOnlyList<double> ParseLevels(string text, string option)
    {
        var levels = new List<double>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var level) || !double.IsFinite(level) || level <= 0)
                throw new UsageException($"{option} {text}: '{part}' is not a level; expected comma-separated positive numbers, e.g. 0.1,0.125");
            levels.Add(level);
        }
        if (!levels.SequenceEqual(levels.Distinct().Order()))
            throw new UsageException($"{option} {text}: levels must be distinct and ascending");
        return levels;
    }

    /// <summary>The command that reproduces the report (options at their budget's defaults and the machine's folders left out).</summary>
    static string CommandLine(Budget budget, string part, LevelSetsSettings s, LevelSetsSettings defaults)
    {
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string> { "widevalley", "reproduce", Name, "--budget", Budgets.Name(budget) };
        if (part != "all") parts.AddRange(["--part", part]);
        if (s.Seed != 1) parts.AddRange(["--seed", s.Seed.ToString(c)]);
        if (s.Pairs != defaults.Pairs) parts.AddRange(["--pairs", s.Pairs.ToString(c)]);
        if (s.MaxDepth != defaults.MaxDepth) parts.AddRange(["--depth", s.MaxDepth.ToString(c)]);
        if (!s.QuadraticLevels.SequenceEqual(defaults.QuadraticLevels)) parts.AddRange(["--quadratic-levels", string.Join(",", s.QuadraticLevels.Select(l => l.ToString("R", c)))]);
        if (!s.CubicLevels.SequenceEqual(defaults.CubicLevels)) parts.AddRange(["--cubic-levels", string.Join(",", s.CubicLevels.Select(l => l.ToString("R", c)))]);
        if (s.CurveSteps != defaults.CurveSteps) parts.AddRange(["--curve-steps", s.CurveSteps.ToString(c)]);
        return string.Join(' ', parts);
    }
}
