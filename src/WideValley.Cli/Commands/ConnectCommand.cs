using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TorchSharp;
using WideValley.Connectivity;
using WideValley.Data;
using WideValley.Experiments.Connectivity;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley connect A B`: a path between two trained runs of the same architecture inside a level set of the test
/// error (classifiers) or perplexity (language models), by Dynamic String Sampling (Freeman &amp; Bruna) or a trained
/// Bézier curve or polygonal chain (Garipov et al.), beside the straight line. A shell over the library's
/// <see cref="ConnectionService"/>: it opens both runs, checks their architectures, builds the
/// <see cref="ModuleProblem"/>, and prints the summary (or one JSON object); the service writes the folder.
/// Ctrl-C saves the string or curve in the output folder, and the same command continues it.
/// </summary>
public static class ConnectCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create(CliContext ctx)
    {
        var a = new Argument<string>("A")
        {
            Description = "The first model: a 'widevalley train' run folder or checkpoint file, or a model file (TorchScript, or TorchSharp weights with " +
                          "--model or --model-factory) measured on --data NAME.",
        };
        var b = new Argument<string>("B") { Description = "The second model, of the same architecture, read like A." };
        var method = new Option<string>("--method")
        {
            Description = "string (Dynamic String Sampling, default), bezier (a Bézier curve) or polychain (a polygonal chain), the curves trained between the endpoints.",
            DefaultValueFactory = _ => "string",
        };
        var level = new Option<double?>("--level")
        {
            Description = "The level L0 of the metric (error in percent, loss, or perplexity); default: the worse endpoint's value. Both endpoints must be below m x L0.",
        };
        var metric = new Option<string?>("--metric") { Description = "loss, error or perplexity (default: error for classifiers, perplexity for language models)." };
        var split = new Option<string>("--split") { Description = "Where every point is measured: test (default, as the authors), train or validation.", DefaultValueFactory = _ => "test" };
        var grid = new Option<int?>("--grid")
        {
            Description = "string: points G per segment, at t = k/G (default: 20, the authors'); curves: G + 1 evaluation points along the curve (default G = 40).",
        };
        var insert = new Option<string?>("--insert") { Description = "string: where a failing segment gets its bead: midpoint or argmax (default: argmax for classifiers, midpoint for language models)." };
        var alpha = new Option<double?>("--alpha") { Description = "string: each bead is trained to alpha x L0, alpha in (0, 1] (default 0.98)." };
        var accept = new Option<double?>("--accept") { Description = "m: a segment (or curve) passes when its maximum is below m x L0, m >= 1 (default: 1.02 for classifiers, 1.1 for language models)." };
        var depth = new Option<int>("--depth") { Description = "string: most depths (rounds of training and bisecting) before giving up.", DefaultValueFactory = _ => 10 };
        var bends = new Option<int>("--bends") { Description = "curves: trainable middle points (1: the quadratic Bézier curve, a two-segment chain).", DefaultValueFactory = _ => 1 };
        var steps = new Option<long>("--steps") { Description = "curves: training steps, one random t and one minibatch each.", DefaultValueFactory = _ => 1000 };
        var lr = new Option<double>("--lr") { Description = "curves: SGD learning rate.", DefaultValueFactory = _ => 0.01 };
        var momentum = new Option<double>("--momentum") { Description = "curves: SGD momentum.", DefaultValueFactory = _ => 0.9 };
        var beadOptimizer = new Option<string>("--bead-optimizer") { Description = "string: adam (default, the authors') or sgd, fresh for each bead.", DefaultValueFactory = _ => "adam" };
        var beadLr = new Option<double?>("--bead-lr") { Description = "string: the bead optimizer's learning rate (default: 1e-4 for classifiers, the authors'; 1e-3 for language models)." };
        var beadMaxSteps = new Option<long>("--bead-max-steps") { Description = "string: most optimizer steps per bead.", DefaultValueFactory = _ => ModuleProblemOptions.DefaultMaxSteps };
        var checkEvery = new Option<int>("--check-every") { Description = "string: optimizer steps between two measures of a training bead.", DefaultValueFactory = _ => ModuleProblemOptions.DefaultCheckEvery };
        var bnMinibatches = new Option<int>("--bn-minibatches")
        {
            Description = "Training minibatches that recompute BatchNorm statistics before each measure (0 = one full pass over the training set, exact but slow). Ignored without BatchNorm.",
            DefaultValueFactory = _ => 0,
        };
        var batch = BatchSize("training minibatch of beads and curves; default: the run's own");
        var seed = new Option<long>("--seed") { Description = "Seed of the training minibatch stream and of the curves' t.", DefaultValueFactory = _ => 0 };
        var threads = Threads();
        var source = new ModelSourceCommandOptions();
        var output = Out("A/connect-METHOD (the run folder of A)");
        var json = Json();
        var command = new Command("connect",
            "A low-loss path between two trained runs of one architecture: Dynamic String Sampling in a level set of the test error (or perplexity), " +
            "or a trained Bézier curve or polygonal chain; the metric along it against the straight line's, its normalised length and beads.")
        {
            a, b, method, level, metric, split, grid, insert, alpha, accept, depth, bends, steps, lr, momentum, beadOptimizer, beadLr, beadMaxSteps,
            checkEvery, bnMinibatches, batch, seed, threads, output, json,
        };
        // The model-source options of the measuring commands, except --model-file (A and B are arguments) and .npy data
        // (a bead needs a training and a test split).
        foreach (var option in new Option[] { source.Format, source.Model, source.ModelFactory, source.Data, source.DataDir, source.Device })
            command.Options.Add(option);
        command.SetAction(p => Execute(ctx, new Settings
        {
            A = p.GetValue(a)!,
            B = p.GetValue(b)!,
            Method = p.GetValue(method)!.ToLowerInvariant(),
            Level = p.GetValue(level),
            Metric = p.GetValue(metric)?.ToLowerInvariant(),
            Split = p.GetValue(split)!.ToLowerInvariant(),
            Grid = p.GetValue(grid),
            Insert = p.GetValue(insert)?.ToLowerInvariant(),
            Alpha = p.GetValue(alpha),
            Accept = p.GetValue(accept),
            Depth = p.GetValue(depth),
            Bends = p.GetValue(bends),
            Steps = p.GetValue(steps),
            LearningRate = p.GetValue(lr),
            Momentum = p.GetValue(momentum),
            BeadOptimizer = p.GetValue(beadOptimizer)!.ToLowerInvariant(),
            BeadLearningRate = p.GetValue(beadLr),
            BeadMaxSteps = p.GetValue(beadMaxSteps),
            CheckEvery = p.GetValue(checkEvery),
            BatchNormMinibatches = p.GetValue(bnMinibatches),
            BatchSize = p.GetValue(batch),
            Seed = p.GetValue(seed),
            Threads = p.GetValue(threads),
            DataDir = p.GetValue(source.DataDir),
            Device = p.GetValue(source.Device),
            Format = p.GetValue(source.Format)!.ToLowerInvariant(),
            ZooModel = p.GetValue(source.Model),
            Factory = p.GetValue(source.ModelFactory),
            Data = p.GetValue(source.Data),
            Out = p.GetValue(output),
            Json = p.GetValue(json),
        }));
        return command.WithRanges();
    }

    /// <summary>The command line, parsed.</summary>
    private sealed record Settings
    {
        public required string A { get; init; }
        public required string B { get; init; }
        public required string Method { get; init; }
        public double? Level { get; init; }
        public string? Metric { get; init; }
        public required string Split { get; init; }
        public int? Grid { get; init; }
        public string? Insert { get; init; }
        public double? Alpha { get; init; }
        public double? Accept { get; init; }
        public int Depth { get; init; }
        public int BatchNormMinibatches { get; init; }
        public int Bends { get; init; }
        public long Steps { get; init; }
        public double LearningRate { get; init; }
        public double Momentum { get; init; }
        public required string BeadOptimizer { get; init; }
        public double? BeadLearningRate { get; init; }
        public long BeadMaxSteps { get; init; }
        public int CheckEvery { get; init; }
        public int? BatchSize { get; init; }
        public long Seed { get; init; }
        public int Threads { get; init; }
        public string? DataDir { get; init; }
        public string? Device { get; init; }
        public required string Format { get; init; }
        public string? ZooModel { get; init; }
        public string? Factory { get; init; }
        public string? Data { get; init; }
        public string? Out { get; init; }
        public bool Json { get; init; }
    }

    private static ConnectionMethod ParseMethod(string text) => text switch
    {
        "string" => ConnectionMethod.String,
        "bezier" => ConnectionMethod.Bezier,
        "polychain" => ConnectionMethod.PolyChain,
        _ => throw new UsageException($"--method {text}: expected string, bezier or polychain"),
    };

    private static LevelMetric? ParseMetric(string? text) => text switch
    {
        null => null,
        "loss" => LevelMetric.Loss,
        "error" => LevelMetric.ErrorPercent,
        "perplexity" => LevelMetric.Perplexity,
        _ => throw new UsageException($"--metric {text}: expected loss, error or perplexity"),
    };

    private static EvaluationSplit ParseSplit(string text) => text switch
    {
        "test" => EvaluationSplit.Test,
        "train" => EvaluationSplit.Train,
        "validation" => EvaluationSplit.Validation,
        _ => throw new UsageException($"--split {text}: expected test, train or validation"),
    };

    private static InsertionRule? ParseInsert(string? text) => text switch
    {
        null => null,
        "midpoint" => InsertionRule.Midpoint,
        "argmax" => InsertionRule.Argmax,
        _ => throw new UsageException($"--insert {text}: expected midpoint or argmax"),
    };

    /// <summary>Opens both runs, connects them into the output folder and prints; returns the exit code.</summary>
    private static int Execute(CliContext ctx, Settings s)
    {
        // Every option is read before anything is opened, so a bad value costs nothing.
        var connection = ParseMethod(s.Method);
        var askedMetric = ParseMetric(s.Metric);
        var split = ParseSplit(s.Split);
        var askedInsert = ParseInsert(s.Insert);
        if (s.BeadOptimizer is not ("adam" or "sgd")) throw new UsageException($"--bead-optimizer {s.BeadOptimizer}: expected adam or sgd");
        if (s.Level is double l && !(l > 0)) throw new UsageException($"--level must be a positive number, got {l}");
        if (s.Depth < 1) throw new UsageException($"--depth must be at least 1, got {s.Depth}");
        if (s.Grid is < 1) throw new UsageException($"--grid must be at least 1, got {s.Grid}");
        if (s.Steps < 1) throw new UsageException($"--steps must be at least 1, got {s.Steps}");
        var log = s.Json ? ctx.Error : ctx.Out;

        var format = s.Format switch
        {
            "auto" => ModelFormat.Auto,
            "run" => ModelFormat.Run,
            "torchscript" => ModelFormat.TorchScript,
            "torchsharp" => ModelFormat.TorchSharp,
            _ => throw new UsageException($"--format {s.Format}: expected auto, run, torchscript or torchsharp"),
        };
        foreach (var (argument, path) in new[] { ("A", s.A), ("B", s.B) })
            if (!File.Exists(path) && !Directory.Exists(path))
                throw new UsageException($"{argument} {path}: no such run folder, checkpoint or model file");

        TorchRuntime.EnsureInitialized();
        using var pair = IsRunPair(s, format) ? OpenRuns(ctx, s) : OpenModelFiles(ctx, s, format);
        var languageModel = pair.LanguageModel;
        var metric = askedMetric ?? (languageModel ? LevelMetric.Perplexity : LevelMetric.ErrorPercent);
        if (metric == LevelMetric.Perplexity && !languageModel)
            throw new UsageException($"--metric perplexity: A {s.A} is a classifier; use error or loss");
        if (metric == LevelMetric.ErrorPercent && languageModel)
            throw new UsageException($"--metric error: A {s.A} is a language model; use perplexity or loss");
        var difference = ParameterCompatibility.FirstDifference(ParameterSignature.Of(pair.Task.Model), ParameterSignature.Of(pair.ModelB), s.A, s.B);
        if (difference is not null)
            throw new UsageException($"A {s.A} ({pair.DescriptionA}) and B {s.B} ({pair.DescriptionB}) are not the same architecture: {difference.Message}; " +
                                     "a path needs two models of the same architecture");

        var beadLr = s.BeadLearningRate ?? (languageModel ? 1e-3 : 1e-4);
        using var problem = new ModuleProblem(pair.Task, new ModuleProblemOptions
        {
            OptimizerFactory = s.BeadOptimizer == "adam" ? ModuleProblemOptions.Adam(beadLr) : parameters => optim.SGD(parameters, beadLr),
            Split = split,
            CheckEvery = s.CheckEvery,
            MaxSteps = s.BeadMaxSteps,
            BatchNormMinibatches = s.BatchNormMinibatches,
            ClipGradNorm = languageModel ? 5 : 0,
        });
        using var pointA = problem.CurrentPoint();
        using var pointB = problem.PointOf(pair.ModelB, s.B);

        var preset = languageModel ? StringSamplingOptions.ForLanguageModel(1) : StringSamplingOptions.ForMnist(1);
        var stringOptions = preset with
        {
            Metric = metric,
            GridPoints = connection == ConnectionMethod.String ? s.Grid ?? preset.GridPoints : preset.GridPoints,
            InsertAt = askedInsert ?? preset.InsertAt,
            BeadTargetFactor = s.Alpha ?? preset.BeadTargetFactor,
            AcceptFactor = s.Accept ?? preset.AcceptFactor,
            MaxDepth = s.Depth,
        };
        var request = new ConnectionRequest
        {
            Method = connection,
            Level = s.Level,
            String = stringOptions,
            Curve = new CurveTrainingOptions
            {
                Bends = s.Bends, Steps = s.Steps, LearningRate = s.LearningRate, Momentum = s.Momentum, Seed = s.Seed,
                EvaluationPoints = connection == ConnectionMethod.String ? 41 : (s.Grid ?? 40) + 1,
            },
            EndpointA = new ConnectionEndpoint(s.A, pair.DescriptionA),
            EndpointB = new ConnectionEndpoint(s.B, pair.DescriptionB),
            ProblemSettings = new JsonObject
            {
                ["split"] = s.Split,
                ["bead_optimizer"] = s.BeadOptimizer,
                ["bead_lr"] = beadLr,
                ["bead_max_steps"] = s.BeadMaxSteps,
                ["check_every"] = s.CheckEvery,
                ["batch_size"] = pair.BatchSize,
                ["data"] = pair.DataDescription,
            },
        };
        var folder = Path.GetFullPath(s.Out ?? pair.DefaultOutBase + $"connect-{ConnectionService.MethodName(connection)}");
        log.WriteLine($"connect {ConnectionService.MethodName(connection)}: {s.A} to {s.B}, {problem.Dimension:N0} parameters, {ConnectionService.MetricName(metric)} on the {s.Split} split; " +
                      $"{(File.Exists(Path.Combine(folder, ConnectionService.CheckpointFileName)) ? "continuing" : "writing")} {folder}");

        ConnectionResult result;
        using (var stop = new HessianCommand.StopOnSignal(log, "connect: stopping and saving the path so far (Ctrl-C again aborts at once)"))
        {
            try
            {
                result = s.Json || !ctx.Interactive
                    ? ConnectionService.Run(problem, pointA, pointB, request, folder, new Lines(log), stop.Token)
                    : WithProgressBar(ctx, connection, progress => ConnectionService.Run(problem, pointA, pointB, request, folder, progress, stop.Token));
            }
            catch (OperationCanceledException)
            {
                ctx.Error.WriteLine($"widevalley: interrupted; the path so far is saved in {Path.Combine(folder, ConnectionService.CheckpointFileName)}: run the same command to continue.");
                return ExitCodes.Interrupted;
            }
            catch (CheckpointDamagedException damaged)
            {
                throw new UsageException($"{damaged.Message}. The output folder {folder} is left as it was: delete {damaged.Path} to start afresh, or choose another --out");
            }
            catch (ConnectivityCheckpointMismatchException mismatch)
            {
                throw new UsageException($"{mismatch.Message}. The output folder {folder} holds another connection: choose another --out, or delete {mismatch.Path} to start afresh");
            }
        }
        if (result.PlotSkipped is { } skipped) ctx.Error.WriteLine($"widevalley: warning: connect.png and connect.svg not drawn: {skipped}");
        if (s.Json)
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, ConnectionService.JsonFileName)))!.AsObject();
            summary["out"] = folder;
            ctx.Out.WriteLine(summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return ExitCodes.Ok;
        }
        var name = ConnectionService.MetricName(metric);
        ctx.Out.WriteLine($"{(result.Connected ? "connected" : "NOT connected")} at {name} L0 = {F(result.Level)} (m x L0 = {F(result.AcceptBound)}): " +
                          $"max along the path {F(result.MaxAlongPath)}, along the straight line {F(result.MaxAlongStraight)}");
        ctx.Out.WriteLine(connection == ConnectionMethod.String
            ? $"beads {result.Beads} (endpoints included), depth {result.Depth}; normalised length {F(result.Lengths.WeightsOnly)} (weights only), {F(result.Lengths.AllParameters)} (all parameters)"
            : $"control points {result.Beads}; normalised length {F(result.Lengths.WeightsOnly)} (weights only), {F(result.Lengths.AllParameters)} (all parameters)");
        ctx.Out.WriteLine($"loss barrier {F(result.Barrier.Loss)} (straight line {F(result.StraightBarrier.Loss)})" +
                          (result.Barrier.ErrorPercent is double e && result.StraightBarrier.ErrorPercent is double se ? $"; error barrier {F(e)} % (straight line {F(se)} %)" : "") +
                          (result.Barrier.Perplexity is double q && result.StraightBarrier.Perplexity is double sq ? $"; perplexity barrier {F(q)} (straight line {F(sq)})" : ""));
        ctx.Out.WriteLine($"wrote {folder}: {string.Join(", ", result.Files)}");
        return ExitCodes.Ok;
    }

    /// <summary>The two models opened: A's task (model and data), B's network, and how to name them.</summary>
    private sealed class OpenedPair(Action dispose) : IDisposable
    {
        public required ITrainingTask Task { get; init; }
        public required nn.Module ModelB { get; init; }
        public required string DescriptionA { get; init; }
        public required string DescriptionB { get; init; }
        public required bool LanguageModel { get; init; }
        public required string DataDescription { get; init; }
        public required int BatchSize { get; init; }
        /// <summary>What the default output folder's name is appended to: RUN/ for a run, DIR/STEM- for a model file.</summary>
        public required string DefaultOutBase { get; init; }
        public void Dispose() => dispose();
    }

    /// <summary>Both are WideValley runs (folders or checkpoint files) and nothing says to read them otherwise.</summary>
    private static bool IsRunPair(Settings s, ModelFormat format)
    {
        if (format == ModelFormat.Run) return true;
        if (format != ModelFormat.Auto || s.ZooModel is not null || s.Factory is not null || s.Data is not null) return false;
        return ModelSource.Detect(s.A) == ModelFormat.Run && ModelSource.Detect(s.B) == ModelFormat.Run;
    }

    /// <summary>Two runs: A rebuilt from its stored configuration (its data) with its weights, B's network likewise.</summary>
    private static OpenedPair OpenRuns(CliContext ctx, Settings s)
    {
        var checkpointA = MeasuredRun.SelectCheckpoint(s.A, "A", ctx.Error, "connecting");
        var checkpointB = MeasuredRun.SelectCheckpoint(s.B, "B", ctx.Error, "connecting");
        var (metaA, storedA) = MeasuredRun.ReadConfig(checkpointA.Path);
        var (metaB, storedB) = MeasuredRun.ReadConfig(checkpointB.Path);
        var overrides = new RunOverrides(s.Threads, s.Device, s.DataDir);
        RunConfig Configure(RunConfig stored) => overrides.Apply(stored) with { BatchSize = s.BatchSize ?? stored.BatchSize, Seed = s.Seed };
        var preparedA = RunSetup.Prepare(Configure(storedA), outputDirectory: null);
        PreparedRun? preparedB = null;
        try
        {
            Checkpoint.LoadWeights(checkpointA.Path, preparedA.Task.Model);
            preparedB = RunSetup.Prepare(Configure(storedB), outputDirectory: null);
            // Weights of another architecture do not load: the parameter comparison (by the caller) names the difference first.
            if (ParameterCompatibility.FirstDifference(preparedA.Task.Model, preparedB.Task.Model) is null)
                Checkpoint.LoadWeights(checkpointB.Path, preparedB.Task.Model);
            var b = preparedB;
            return new OpenedPair(() => { b.Dispose(); preparedA.Dispose(); })
            {
                Task = preparedA.Task,
                ModelB = preparedB.Task.Model,
                DescriptionA = $"'{metaA.Model}' {checkpointA.Path}, {Checkpoint.DescribePosition(metaA)}",
                DescriptionB = $"'{metaB.Model}' {checkpointB.Path}, {Checkpoint.DescribePosition(metaB)}",
                LanguageModel = WideValley.Experiments.MeasurableRun.IsLanguageModel(storedA),
                DataDescription = preparedA.DataDescription,
                BatchSize = preparedA.Config.BatchSize,
                DefaultOutBase = Path.GetDirectoryName(checkpointA.Path)! + Path.DirectorySeparatorChar,
            };
        }
        catch
        {
            preparedB?.Dispose();
            preparedA.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Model files (or runs read as models) of an image classifier, on the named dataset (--data): A's network trained
    /// and measured on its training and test splits, B's read the same way.
    /// </summary>
    private static OpenedPair OpenModelFiles(CliContext ctx, Settings s, ModelFormat format)
    {
        if (s.Data is null)
            throw new UsageException($"A {s.A} and B {s.B} are not both WideValley runs: name the data to connect them on with --data NAME " +
                                     $"({string.Join(", ", DatasetCatalog.Names)}) [--data-dir DIR]");
        if (s.Threads < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {s.Threads}");
        TorchRuntime.SetThreads(s.Threads);
        var request = new ModelSourceRequest
        {
            File = s.A, FileOption = "A", Format = format, ZooModel = s.ZooModel, FactorySpecification = s.Factory, Data = s.Data, DataDir = s.DataDir, Device = s.Device,
        };
        var device = TorchRuntime.ResolveDevice(s.Device ?? "cpu");
        var dataset = DatasetCatalog.LoadClassification(s.Data, new DataOptions { DataDir = s.DataDir });
        LoadedModel? modelA = null, modelB = null;
        try
        {
            modelA = request.OpenModel(dataset.Train, device, s.A);
            if (modelA.Notice is string noticeA) ctx.Error.WriteLine($"widevalley: warning: {noticeA}");
            modelB = request.OpenModel(dataset.Train, device, s.B);
            if (modelB.Notice is string noticeB) ctx.Error.WriteLine($"widevalley: warning: {noticeB}");
            var batchSize = s.BatchSize ?? 128;
            var task = new ClassificationTask(modelA.Module, dataset, batchSize, s.Seed, ownsData: false);
            var (a, b) = (modelA, modelB);
            var path = Path.GetFullPath(modelA.Path);
            return new OpenedPair(() => { task.Dispose(); b.Dispose(); a.Dispose(); dataset.Dispose(); })
            {
                Task = task,
                ModelB = modelB.Module,
                DescriptionA = modelA.Description,
                DescriptionB = modelB.Description,
                LanguageModel = false,
                DataDescription = $"{dataset.Name} ({dataset.Train.Count:N0} train, {dataset.Test.Count:N0} test; {dataset.Source})",
                BatchSize = batchSize,
                DefaultOutBase = modelA.Format == ModelFormat.Run
                    ? Path.GetDirectoryName(path)! + Path.DirectorySeparatorChar
                    : Path.Combine(Path.GetDirectoryName(path)!, Path.GetFileNameWithoutExtension(path) + "-"),
            };
        }
        catch
        {
            modelB?.Dispose();
            modelA?.Dispose();
            dataset.Dispose();
            throw;
        }
    }

    /// <summary>Progress as plain lines (redirected output, --json on stderr).</summary>
    private sealed class Lines(TextWriter log) : IProgress<ConnectionProgress>
    {
        private int tenths = -1;

        /// <summary>Every bead and check of a string; a curve's steps only at each tenth of the way (a line per step would flood a log).</summary>
        public void Report(ConnectionProgress value)
        {
            var now = (int)Math.Floor(10 * value.Fraction);
            if (value.Message.StartsWith("step ", StringComparison.Ordinal) && now == tenths) return;
            tenths = now;
            log.WriteLine($"connect: {value.Message}");
        }
    }

    /// <summary>A Spectre.Console bar over the search (depths of the string, steps of a curve) on a terminal.</summary>
    private static ConnectionResult WithProgressBar(CliContext ctx, ConnectionMethod method, Func<IProgress<ConnectionProgress>, ConnectionResult> body)
    {
        ConnectionResult result = null!;
        ctx.ProgressBars().Start(progress =>
        {
            var bar = progress.AddTask(Markup.Escape($"connect {ConnectionService.MethodName(method)}"), maxValue: 1000);
            result = body(new Bar(bar, ConnectionService.MethodName(method)));
            bar.Value = 1000;
            bar.StopTask();
        });
        return result;
    }

    private sealed class Bar(ProgressTask bar, string name) : IProgress<ConnectionProgress>
    {
        public void Report(ConnectionProgress value)
        {
            bar.Value = Math.Round(1000 * value.Fraction);
            bar.Description = Markup.Escape($"connect {name}: {value.Message}");
        }
    }
}
