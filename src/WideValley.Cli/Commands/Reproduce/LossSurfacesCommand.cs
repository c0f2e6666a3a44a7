using System.CommandLine;
using System.Globalization;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce loss-surfaces`: Choromanska et al.'s network experiment (Sec. 5, Fig. 3 right, Fig. 4,
/// Table 1). A shell over <see cref="LossSurfaces"/> (train each width's networks together unless the work folder
/// holds them, measure the index sample) and <see cref="LossSurfacesReport"/>: parses and checks the options, shows
/// the progress (<see cref="ExperimentConsole"/>: Ctrl-C stops between epochs and pieces) and prints the verdicts.
/// </summary>
public static class LossSurfacesCommand
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = LossSurfacesReport.Name;

    public static Command Create(CliContext ctx)
    {
        var budget = ReproduceOptions.Budget();
        var output = ReproduceOptions.Output();
        var runs = new Option<string>("--runs")
        {
            Description = "Folder of the work folders (RUNS/loss-surfaces-BUDGET holds each finished width and index; never computed again).",
            DefaultValueFactory = _ => Path.Combine("runs", "reproduce"),
        };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var sizes = new Option<string?>("--sizes") { Description = "Comma-separated hidden-layer widths n1 (default: the budget's; paper and small: 25,50,100,250,500)." };
        var networks = new Option<int?>("--network-count") { Description = "Networks per width (default: the budget's; the paper trains 1,000)." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs of SGD (default: the budget's; the paper: 200)." };
        var trainSamples = new Option<int?>("--max-train-samples") { Description = "Training images used, the first N of the training set (default: the budget's)." };
        var batch = new Option<int?>("--batch-size") { Description = "Minibatch size (default: the budget's)." };
        var lr = new Option<double?>("--lr") { Description = "Learning rate of the first epoch; it decays exponentially to 1/100 of it at the last (default 0.1)." };
        var seed = new Option<long>("--seed") { Description = "Seed of every network's start and sample order.", DefaultValueFactory = _ => 0 };
        var threads = MeasurementOptions.Threads();
        var command = new Command(Name,
            "Choromanska et al. Sec. 5: many one-hidden-layer ReLU networks per width on 10x10 Fashion-MNIST, trained together by SGD with lr decay; " +
            "histograms of the scaled test loss, spread and train/test correlation against n1 beside Table 1, normalised Hessian index of a sample; resumable.")
        {
            budget, output, runs, fashionDir, sizes, networks, epochs, trainSamples, batch, lr, seed, threads,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var defaults = LossSurfacesSettings.For(b);
            var t = p.GetValue(threads);
            if (t < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {t}");
            var settings = defaults with
            {
                Sizes = p.GetValue(sizes) is string text ? ParseSizes(text) : defaults.Sizes,
                Networks = p.GetValue(networks) ?? defaults.Networks,
                Epochs = p.GetValue(epochs) ?? defaults.Epochs,
                TrainSamples = p.GetValue(trainSamples) ?? defaults.TrainSamples,
                BatchSize = p.GetValue(batch) ?? defaults.BatchSize,
                Lr = p.GetValue(lr) ?? defaults.Lr,
                Seed = p.GetValue(seed),
                DataDir = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir"),
                Threads = t,
            };
            ReproduceOptions.CheckBeforeTraining(() =>
            {
                settings.Validate();
            });
            var outDir = Path.GetFullPath(p.GetValue(output)!);
            var stem = Budgets.ReportStem(Name, b);
            ReportFolders.CheckWritable(outDir, stem);
            var work = Path.Combine(Path.GetFullPath(p.GetValue(runs)!), $"{Name}-{Budgets.Name(b)}");
            var commandLine = CommandLine(settings, defaults, p.GetValue(fashionDir) is not null);
            var machine = ReproduceOptions.Machine(t);

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(t);
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Name} (budget {Budgets.Name(b)}): n1 in {{{string.Join(", ", settings.Sizes)}}}, {settings.Networks} networks each, {settings.Epochs} epochs on {settings.TrainSamples:N0} images; work folder {work}"));
            var result = ExperimentConsole.Run(ctx, (progress, cancellation) => LossSurfaces.Run(settings, work, progress, cancellation));
            var files = LossSurfacesReport.Write(result, commandLine, machine, outDir, stem, message => ctx.Error.WriteLine($"widevalley: warning: {message}"));
            foreach (var line in LossSurfacesReport.Summary(result)) ctx.Out.WriteLine(line);
            ctx.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{result.Seconds:0.0} s; report {files[^1]} ({files.Count} files in {outDir})"));
            if (!result.Complete)
            {
                ctx.Out.WriteLine("interrupted: run the same command again to continue where it stopped");
                return ExitCodes.Interrupted;
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>"25,50,100" as widths; a clear error naming --sizes otherwise.</summary>
    public static IReadOnlyList<int> ParseSizes(string text)
    {
        var sizes = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1)
                throw new UsageException($"--sizes {text}: '{part}' is not a hidden-layer width; expected comma-separated whole numbers of at least 1, e.g. 25,50,100");
            sizes.Add(n);
        }
        if (sizes.Distinct().Count() != sizes.Count) throw new UsageException($"--sizes {text}: each width once");
        return sizes;
    }

    /// <summary>The command that reproduces the report (options at their budget's defaults left out; machine-specific folders as placeholders).</summary>
    static string CommandLine(LossSurfacesSettings s, LossSurfacesSettings defaults, bool fashionDir)
    {
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string> { "widevalley", "reproduce", Name, "--budget", Budgets.Name(s.Budget) };
        if (!s.Sizes.SequenceEqual(defaults.Sizes)) parts.AddRange(["--sizes", string.Join(",", s.Sizes)]);
        if (s.Networks != defaults.Networks) parts.AddRange(["--network-count", s.Networks.ToString(c)]);
        if (s.Epochs != defaults.Epochs) parts.AddRange(["--epochs", s.Epochs.ToString(c)]);
        if (s.TrainSamples != defaults.TrainSamples) parts.AddRange(["--max-train-samples", s.TrainSamples.ToString(c)]);
        if (s.BatchSize != defaults.BatchSize) parts.AddRange(["--batch-size", s.BatchSize.ToString(c)]);
        if (s.Lr != defaults.Lr) parts.AddRange(["--lr", s.Lr.ToString("R", c)]);
        if (s.Seed != 0) parts.AddRange(["--seed", s.Seed.ToString(c)]);
        if (fashionDir) parts.AddRange(["--fashion-mnist-dir", "FASHION_MNIST_DIR"]);
        return string.Join(' ', parts);
    }
}
