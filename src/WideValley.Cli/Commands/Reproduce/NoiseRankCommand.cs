using System.CommandLine;
using System.Globalization;
using WideValley.DeepLinear;
using WideValley.Experiments;
using static TorchSharp.torch;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce noise-rank`: noise and the rank of the weight product in deep linear networks (seed 004,
/// arXiv 1807.08140; protocol ours). A shell over <see cref="NoiseRankExperiment"/> (every seed and condition of a
/// configuration and start trained as one batch, one piece each, kept in the runs folder) and
/// <see cref="NoiseRankReport"/>; writes noise-rank[-BUDGET].{md,json,csv} and one figure per piece.
/// </summary>
public static class NoiseRankCommand
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = NoiseRankReport.Name;

    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var budget = ReproduceOptions.Budget();
        budget.Description = "smoke (L = 3, width 8, 300 steps, 2 seeds; seconds), small (L = 2, 4, width 16, rank 8, 12,000 steps, 5 seeds, 2 scales per kind; about 10 minutes), " +
                             "paper (L = 2, 3, 4, 6 x width 16, 32; 30,000 steps; 3-4 scales per kind).";
        var output = ReproduceOptions.Output();
        var runs = ReproduceOptions.Runs();
        var json = new Option<bool>("--json") { Description = "Print one JSON summary object (progress goes to stderr)." };
        var depth = new Option<string?>("--depth") { Description = "Depths L (weight matrices), comma-separated, each at least 2 (default: the budget's)." };
        var width = new Option<string?>("--width") { Description = "Hidden widths, comma-separated (default: the budget's)." };
        var dims = new Option<int?>("--dims") { Description = "Input and output dimension d_0 = d_L (default: the hidden width)." };
        var targetRank = new Option<int?>("--target-rank") { Description = "rank(A) of the teacher (default: the budget's)." };
        var initRank = new Option<int?>("--init-rank") { Description = "Rank of the rank-deficient start (default: half of min(target rank, narrowest width))." };
        var steps = new Option<int?>("--steps") { Description = "Gradient-descent steps (default: the budget's)." };
        var logEvery = new Option<int?>("--log-every") { Description = "Measure every this many steps (default: the budget's)." };
        var lr = new Option<double?>("--lr") { Description = "Step size (default 0.05)." };
        var samples = new Option<int?>("--samples") { Description = "Training samples N per seed (default 64)." };
        var inputs = new Option<string>("--inputs") { Description = "whitened (X X^T/N = I exactly) or gaussian.", DefaultValueFactory = _ => "whitened" };
        inputs.AcceptOnlyFromAmong("whitened", "gaussian");
        var schedule = new Option<string>("--schedule") { Description = "Annealing of every noise scale: neelakantan (variance / (1+t)^gamma), constant or exponential.", DefaultValueFactory = _ => "neelakantan" };
        schedule.AcceptOnlyFromAmong("neelakantan", "constant", "exponential");
        var gamma = new Option<double>("--gamma") { Description = "gamma of the neelakantan schedule.", DefaultValueFactory = _ => NoiseSchedule.NeelakantanGamma };
        var halfLife = new Option<double>("--half-life") { Description = "Half-life in steps of the exponential schedule.", DefaultValueFactory = _ => 1000 };
        var scaleOptions = NoiseRankSettings.Kinds.Skip(1).ToDictionary(k => k, k => new Option<string?>($"--{NoiseRankSettings.KindName(k)}-scales")
        {
            Description = $"Initial scales sigma_0 of {NoiseRankSettings.KindName(k)} noise, comma-separated (default: the budget's).",
        });
        var seeds = new Option<int?>("--seeds") { Description = "Seeds per condition (default: the budget's; 5 for small and paper)." };
        var firstSeed = new Option<long>("--first-seed") { Description = "The first seed; the others follow.", DefaultValueFactory = _ => 1 };
        var dtype = new Option<string>("--dtype") { Description = "float64 (default; exact invariants) or float32 (rounding is noise too).", DefaultValueFactory = _ => "float64" };
        dtype.AcceptOnlyFromAmong("float64", "float32");
        var threads = Threads();
        var command = new Command(Name,
            "Noise and the rank of the weight product (arXiv 1807.08140; protocol ours): deep linear networks on a low-rank teacher from a rank-deficient and a standard start, " +
            "with gradient, weight, activation, input or output noise against none; rank, loss and distance to the optimum against steps over seeds; resumable.")
        {
            budget, output, runs, json, depth, width, dims, targetRank, initRank, steps, logEvery, lr, samples, inputs, schedule, gamma, halfLife, seeds, firstSeed, dtype, threads,
        };
        foreach (var option in scaleOptions.Values) command.Add(option);
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var defaults = NoiseRankSettings.For(b);
            var t = p.GetValue(threads);
            if (t < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {t}");
            IReadOnlyList<double> Scales(NoiseRankKind kind) =>
                p.GetValue(scaleOptions[kind]) is { } text ? ParseList(text, $"--{NoiseRankSettings.KindName(kind)}-scales", s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture)) : defaults.ScalesOf(kind);
            var settings = defaults with
            {
                Depths = p.GetValue(depth) is { } depthText ? ParseList(depthText, "--depth", ParseInt) : defaults.Depths,
                Widths = p.GetValue(width) is { } widthText ? ParseList(widthText, "--width", ParseInt) : defaults.Widths,
                Dims = p.GetValue(dims) ?? defaults.Dims,
                TargetRank = p.GetValue(targetRank) ?? defaults.TargetRank,
                InitRank = p.GetValue(initRank) ?? defaults.InitRank,
                Steps = p.GetValue(steps) ?? defaults.Steps,
                LogEvery = p.GetValue(logEvery) ?? (p.GetValue(steps) is int st ? Math.Max(1, st / 100) : defaults.LogEvery),
                LearningRate = p.GetValue(lr) ?? defaults.LearningRate,
                Samples = p.GetValue(samples) ?? defaults.Samples,
                Inputs = p.GetValue(inputs) == "gaussian" ? InputDistribution.Gaussian : InputDistribution.Whitened,
                Schedule = p.GetValue(schedule) switch { "constant" => AnnealingKind.Constant, "exponential" => AnnealingKind.Exponential, _ => AnnealingKind.InverseTimePower },
                Gamma = p.GetValue(gamma),
                HalfLife = p.GetValue(halfLife),
                GradientScales = Scales(NoiseRankKind.Gradient),
                WeightScales = Scales(NoiseRankKind.Weights),
                ActivationScales = Scales(NoiseRankKind.Activations),
                InputScales = Scales(NoiseRankKind.Inputs),
                OutputScales = Scales(NoiseRankKind.Outputs),
                Seeds = p.GetValue(seeds) ?? defaults.Seeds,
                FirstSeed = p.GetValue(firstSeed),
                Dtype = p.GetValue(dtype) == "float32" ? ScalarType.Float32 : ScalarType.Float64,
            };
            ReproduceOptions.CheckBeforeTraining(() =>
            {
                settings.Validate();
            });
            var outDir = Path.GetFullPath(p.GetValue(output)!);
            var stem = Budgets.ReportStem(Name, b);
            ReportFolders.CheckWritable(outDir, stem);
            var work = NoiseRankExperiment.WorkFolder(Path.GetFullPath(p.GetValue(runs)!), b);
            var asJson = p.GetValue(json);
            var log = asJson ? ctx.Error : ctx.Out;

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(t);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Name}: budget {Budgets.Name(b)}, L in {{{string.Join(", ", settings.Depths)}}}, width in {{{string.Join(", ", settings.Widths)}}}, target rank {settings.TargetRank}, " +
                $"{settings.Conditions.Count} conditions x {settings.Seeds} seeds x 2 starts, {settings.Steps:N0} steps; pieces in {work}"));
            var result = ExperimentConsole.Run(ctx, (progress, cancellation) => NoiseRankExperiment.Run(settings, work, line =>
            {
                if (asJson) ctx.Error.WriteLine("  " + line);
                else progress.Report(new TrainingLog(Name, line));
            }, cancellation));
            if (result.Interrupted)
            {
                ctx.Error.WriteLine($"widevalley: interrupted; {result.PiecesComputed} pieces finished this time are kept in {work}; run the same command again to continue");
                return ExitCodes.Interrupted;
            }
            var commandLine = CommandLine(settings, defaults, p.GetValue(output)!, t);
            var figureSkipped = false;
            var summary = NoiseRankReport.Write(result, commandLine, ReproduceOptions.Machine(t), outDir, stem, message =>
            {
                figureSkipped = true;
                ctx.Error.WriteLine($"widevalley: warning: {message}");
            });
            if (asJson)
            {
                ctx.Out.WriteLine(summary);
            }
            else
            {
                foreach (var line in NoiseRankReport.Verdicts(result)) ctx.Out.WriteLine(line);
                ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{result.Seconds:0.0} s ({result.PiecesComputed} pieces computed, {result.PiecesReused} reused); wrote {outDir}: {string.Join(", ", NoiseRankReport.Files(result, stem, !figureSkipped))}"));
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    static int ParseInt(string s) => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture);

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
    static string CommandLine(NoiseRankSettings s, NoiseRankSettings d, string outText, int threads)
    {
        var c = CultureInfo.InvariantCulture;
        static string List<T>(IEnumerable<T> values) where T : IFormattable => string.Join(",", values.Select(v => v.ToString(null, CultureInfo.InvariantCulture)));
        var parts = new List<string> { "widevalley", "reproduce", Name, "--budget", Budgets.Name(s.Budget) };
        if (!s.Depths.SequenceEqual(d.Depths)) parts.AddRange(["--depth", List(s.Depths)]);
        if (!s.Widths.SequenceEqual(d.Widths)) parts.AddRange(["--width", List(s.Widths)]);
        if (s.Dims != d.Dims) parts.AddRange(["--dims", s.Dims!.Value.ToString(c)]);
        if (s.TargetRank != d.TargetRank) parts.AddRange(["--target-rank", s.TargetRank.ToString(c)]);
        if (s.InitRank != d.InitRank) parts.AddRange(["--init-rank", s.InitRank!.Value.ToString(c)]);
        if (s.Steps != d.Steps) parts.AddRange(["--steps", s.Steps.ToString(c)]);
        if (s.LogEvery != d.LogEvery) parts.AddRange(["--log-every", s.LogEvery.ToString(c)]);
        if (s.LearningRate != d.LearningRate) parts.AddRange(["--lr", s.LearningRate.ToString("R", c)]);
        if (s.Samples != d.Samples) parts.AddRange(["--samples", s.Samples.ToString(c)]);
        if (s.Inputs != d.Inputs) parts.AddRange(["--inputs", "gaussian"]);
        if (s.Schedule != d.Schedule) parts.AddRange(["--schedule", s.Schedule == AnnealingKind.Constant ? "constant" : "exponential"]);
        if (s.Gamma != d.Gamma) parts.AddRange(["--gamma", s.Gamma.ToString("R", c)]);
        if (s.HalfLife != d.HalfLife) parts.AddRange(["--half-life", s.HalfLife.ToString("R", c)]);
        foreach (var kind in NoiseRankSettings.Kinds.Skip(1))
            if (!s.ScalesOf(kind).SequenceEqual(d.ScalesOf(kind))) parts.AddRange([$"--{NoiseRankSettings.KindName(kind)}-scales", List(s.ScalesOf(kind))]);
        if (s.Seeds != d.Seeds) parts.AddRange(["--seeds", s.Seeds.ToString(c)]);
        if (s.FirstSeed != 1) parts.AddRange(["--first-seed", s.FirstSeed.ToString(c)]);
        if (s.Dtype != d.Dtype) parts.AddRange(["--dtype", "float32"]);
        if (threads != 0) parts.AddRange(["--threads", threads.ToString(c)]);
        if (outText != Path.Combine("docs", "results")) parts.AddRange(["--out", outText]);
        return string.Join(' ', parts);
    }
}
