using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Spectre.Console;
using TorchSharp;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Experiments.Flatness;
using WideValley.Landscape;
using WideValley.Landscape.Flatness;
using WideValley.Models;
using static TorchSharp.torch;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley flatness MODEL [MODEL ...] --data ... [--budget quick|standard|thorough] [--out DIR]`: every flatness
/// measure of the library (<see cref="FlatnessMeasures"/>) for each model on its first N training samples (and test
/// samples for the gap), the interpolation between every pair, and a comparison with one column per model. States the
/// cost first (from timed unit costs), stores each finished measurement under OUT/.flatness/ so that a rerun resumes,
/// and writes flatness.md, flatness.html, flatness.json and CSV files and plots (<see cref="FlatnessReport"/>). Every check of the
/// input happens before the first measurement.
/// </summary>
public static class FlatnessCommand
{
    /// <summary>Default size of the evaluation set.</summary>
    public const long DefaultSamples = 1000;

    /// <summary>Builds the command.</summary>
    public static Command Create(CliContext ctx)
    {
        var models = new Argument<string[]>("MODEL")
        {
            Description = "The networks: run folders, checkpoints, TorchScript archives or TorchSharp weights (with --model or --model-factory), read as --model-file reads them.",
            Arity = ArgumentArity.OneOrMore,
        };
        var budget = new Option<string>("--budget")
        {
            Description = "quick (a smoke test), standard or thorough: fixes every measure's probes, steps, samples and points.",
            DefaultValueFactory = _ => "standard",
        };
        var samples = Samples(DefaultSamples);
        var testSamples = new Option<int?>("--test-samples") { Description = "Test samples for the generalisation gap (default: as many as --samples, or all if fewer)." };
        var batch = BatchSize("default 500");
        var dtype = Dtype();
        var bn = MeasurementOptions.BatchNorm();
        var dropout = MeasurementOptions.Dropout();
        var parameters = Params();
        var seed = Seed();
        var threads = Threads();
        var scopes = new Option<string?>("--scopes") { Description = "Local entropy: comma-separated positive scopes gamma (default: the budget's)." };
        var radius = new Option<double?>("--slice-radius") { Description = "Slices and surface: alpha runs over [-R, R] (default: the budget's, 1)." };
        var measures = new Option<string?>("--measures")
        {
            Description = $"Comma-separated measures to run (default all: {string.Join(", ", FlatnessMeasures.All.Select(m => m.Name))}).",
        };
        var noInterpolation = new Option<bool>("--no-interpolation") { Description = "Skip the interpolations between pairs of models." };
        var output = Out("next to the first model: DIR/NAME-flatness for a file, RUN/flatness for a run");
        var source = new ModelSourceCommandOptions();
        var command = new Command("flatness",
            "A flatness report for one or more models: loss and gap, Hessian extremes, trace (per layer) and density, Gauss-Newton and Fisher traces, " +
            "local entropy, filter-normalised slices, a surface and the interpolations between the models, compared side by side. Resumes after an interruption.")
        {
            models, budget, samples, testSamples, batch, dtype, bn, dropout, parameters, seed, threads, scopes, radius, measures, noInterpolation, output,
        };
        foreach (var option in new Option[] { source.Format, source.Model, source.ModelFactory, source.Inputs, source.Labels, source.Data, source.DataDir, source.Device })
            command.Options.Add(option);
        command.SetAction(p =>
        {
            var settings = new Settings
            {
                Models = p.GetValue(models)!,
                Budget = ParseBudget(p.GetValue(budget)!, p.GetValue(scopes), p.GetValue(radius)),
                Measures = ParseMeasures(p.GetValue(measures)),
                Interpolations = !p.GetValue(noInterpolation),
                Samples = p.GetValue(samples),
                TestSamples = p.GetValue(testSamples),
                BatchSize = p.GetValue(batch) ?? 500,
                Landscape = new LandscapeOptions
                {
                    Parameters = ParseParams(p.GetValue(parameters)),
                    BatchNorm = ParseBatchNorm(p.GetValue(bn)!),
                    Dropout = ParseDropout(p.GetValue(dropout)!),
                    ComputeType = ParseDtype(p.GetValue(dtype)!),
                },
                Seed = p.GetValue(seed),
                Threads = p.GetValue(threads),
                Out = p.GetValue(output),
                Command = "widevalley " + string.Join(" ", p.Tokens.Select(t => t.Value.Contains(' ', StringComparison.Ordinal) ? $"\"{t.Value}\"" : t.Value)),
            };
            return Execute(ctx, settings, model => source.Parse(p, model, "MODEL"));
        });
        return command.WithRanges();
    }

    /// <summary>What the command line asks for.</summary>
    internal sealed record Settings
    {
        public required string[] Models { get; init; }
        public required FlatnessBudget Budget { get; init; }
        public IReadOnlyList<IFlatnessMeasure> Measures { get; init; } = FlatnessMeasures.All;
        public bool Interpolations { get; init; } = true;
        public int? Samples { get; init; }
        public int? TestSamples { get; init; }
        public int BatchSize { get; init; } = 500;
        public required LandscapeOptions Landscape { get; init; }
        public long Seed { get; init; }
        public int Threads { get; init; }
        public string? Out { get; init; }
        public required string Command { get; init; }
    }

    /// <summary>The named budget with the command line's scopes and slice radius, checked (non-positive values are refused here, before anything is read).</summary>
    internal static FlatnessBudget ParseBudget(string name, string? scopesText, double? radius)
    {
        if (!FlatnessBudget.Names.Contains(name.ToLowerInvariant()))
            throw new UsageException($"--budget must be one of {string.Join(", ", FlatnessBudget.Names)}, got '{name}'");
        var budget = FlatnessBudget.Named(name);
        if (scopesText is not null)
        {
            var scopes = new List<double>();
            foreach (var part in scopesText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var gamma))
                    throw new UsageException($"--scopes: '{part}' is not a number; give positive scopes gamma, e.g. --scopes 100,1000");
                if (!(gamma > 0) || !double.IsFinite(gamma))
                    throw new UsageException($"--scopes: every scope gamma must be positive and finite, got {part}");
                scopes.Add(gamma);
            }
            if (scopes.Count == 0) throw new UsageException("--scopes: give at least one positive scope gamma, e.g. --scopes 100,1000");
            budget = budget with { Name = budget.Name + "+", Scopes = scopes };
        }
        if (radius is double r)
        {
            if (!(r > 0) || !double.IsFinite(r)) throw new UsageException($"--slice-radius must be positive and finite, got {r.ToString(CultureInfo.InvariantCulture)}");
            budget = budget with { Name = budget.Name.TrimEnd('+') + "+", SliceRadius = r };
        }
        try
        {
            budget.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        return budget;
    }

    /// <summary>The measures named by --measures (all when null), in the report's order.</summary>
    internal static IReadOnlyList<IFlatnessMeasure> ParseMeasures(string? text)
    {
        if (text is null) return FlatnessMeasures.All;
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
        if (names.Count == 0) throw new UsageException("--measures: name at least one measure, e.g. --measures hessian-trace,slice-random");
        var unknown = names.Where(n => FlatnessMeasures.All.All(m => m.Name != n)).ToList();
        if (unknown.Count > 0)
            throw new UsageException($"--measures: {string.Join(", ", unknown)} {(unknown.Count == 1 ? "is not a measure" : "are not measures")}; " +
                                     $"the measures are {string.Join(", ", FlatnessMeasures.All.Select(m => m.Name))}");
        return FlatnessMeasures.All.Where(m => names.Contains(m.Name)).ToList();
    }

    /// <summary>An opened model with its data, owned until the run ends.</summary>
    private sealed class OpenedModel(OpenedModelAndData opened, FlatnessModel model) : IDisposable
    {
        public FlatnessModel Model { get; } = model;

        public void Dispose() => opened.Dispose();
    }

    /// <summary>
    /// Measures and writes the report; returns the exit code. Under an MPI launcher (`mpirun -np K widevalley flatness
    /// ...`) the K ranks share every evaluation set (training and test samples, each rank every Kth batch): rank 0 prints,
    /// keeps the store and writes the report, the others stay silent, and a rank that fails or is interrupted ends the
    /// whole job (the measurements finished so far stay stored, and the same command resumes after them).
    /// </summary>
    internal static int Execute(CliContext ctx, Settings s, Func<string, ModelSourceRequest> request) =>
        OverRanks.Run("flatness", ranks => Execute(ctx, ranks is null ? s : s with { Landscape = s.Landscape with { Collectives = ranks } }, request, ranks));

    private static int Execute(CliContext ctx, Settings s, Func<string, ModelSourceRequest> request, WideValley.Distributed.ICollectives? ranks)
    {
        // Rank 0 (or the one process) speaks and writes; the other ranks of a job measure the same numbers silently but still say their errors.
        var speaks = WideValley.Distributed.Collectives.SpeaksForTheJob(ranks);
        var say = speaks ? ctx.Out : TextWriter.Null;
        // The output folder first: a file in its place is refused before anything is loaded.
        var outArgument = s.Out;
        if (outArgument is not null && File.Exists(outArgument))
            throw new UsageException($"--out {outArgument} is a file; name a folder (it is created if missing)");
        if (s.Threads < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {s.Threads}");
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(s.Threads);

        var opened = new List<OpenedModel>();
        try
        {
            foreach (var path in s.Models) opened.Add(Open(path, request(path), s));
            var outDir = Path.GetFullPath(outArgument ?? DefaultOut(s.Models[0]));
            if (File.Exists(outDir)) throw new UsageException($"the output folder {outDir} is a file; name a folder with --out");
            var models = opened.Select(o => o.Model).ToList();
            var names = models.GroupBy(m => m.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            if (names.Count > 0)
                models = models.Select((m, i) => names.Contains(m.Name) ? m with { Name = $"{m.Name} ({i + 1})" } : m).ToList();

            using var stop = new HessianCommand.StopOnSignal(say, "flatness: stopping; finished measurements are kept and the same command resumes");
            var settings = new FlatnessRunSettings
            {
                Budget = s.Budget, Seed = s.Seed, OutDir = outDir, Cancellation = stop.Token, Measures = s.Measures, Interpolations = s.Interpolations,
                Events = e => { if (e.Kind != FlatnessEventKind.MeasureStarted || !ctx.Interactive) say.WriteLine(e.Message); },
            };
            try
            {
                if (ranks is not null) say.WriteLine(OverRanks.Sharing("flatness", ranks));
                var estimates = FlatnessRunner.Estimate(models, settings);
                SayEstimate(say, estimates, s.Budget, FlatnessRunner.InterpolationSeconds(models, estimates, settings));
                var results = RunWithProgress(ctx, models, settings, estimates);
                if (!speaks) return ExitCodes.Ok;
                // The split does not change the numbers, but the report says how they were computed.
                var machine = MachineDescription.Current().OneLine() + (ranks is { Size: > 1 } job ? $"; {job.Size} MPI ranks sharing the evaluation sets" : "");
                var files = FlatnessReport.Write(results, outDir, new FlatnessReportContext { Command = s.Command, Machine = machine, Estimates = estimates });
                foreach (var warning in files.Warnings) ctx.Error.WriteLine($"widevalley: warning: {warning}");
                foreach (var row in results.Comparison.Where(r => r.Flatter != FlatterWhen.NotJudged && results.Models.Count > 1))
                    ctx.Out.WriteLine($"{row.Label}: {row.Verdict}");
                ctx.Out.WriteLine($"flatness: {results.Models.Count} model(s) in {FlatnessRunner.Say(results.Seconds)}; wrote {outDir}: {FlatnessReport.MarkdownFile}, {FlatnessHtmlReport.FileName}, {FlatnessReport.JsonFile} and {files.Files.Count - 3} CSV and plot files");
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException)
            {
                ctx.Error.WriteLine($"widevalley: interrupted; the finished measurements are kept in {Path.Combine(outDir, FlatnessRunner.StoreFolder)} and the same command resumes after them");
                return ExitCodes.Interrupted;
            }
            catch (NonFiniteValuesException e)
            {
                ctx.Error.WriteLine($"widevalley: {e.Message}");
                return ExitCodes.Failure;
            }
        }
        finally
        {
            foreach (var o in opened) o.Dispose();
        }
    }

    /// <summary>The default output folder: DIR/STEM-flatness next to a model file, RUN/flatness in a run folder.</summary>
    private static string DefaultOut(string firstModel)
    {
        var full = Path.GetFullPath(firstModel.TrimEnd(Path.DirectorySeparatorChar));
        if (Directory.Exists(full)) return Path.Combine(full, "flatness");
        return Path.Combine(Path.GetDirectoryName(full)!, Path.GetFileNameWithoutExtension(full) + "-flatness");
    }

    /// <summary>Opens one model and its data and checks that they fit: a forward pass on two samples, the output against the labels.</summary>
    private static OpenedModel Open(string path, ModelSourceRequest request, Settings s)
    {
        var opened = request.Open();
        try
        {
            var (trainName, train) = opened.Splits[0];
            var test = opened.Splits.FirstOrDefault(x => x.Name == "test").Data;
            var available = train.Count;
            if (s.Samples is int wanted && wanted > available)
                throw new UsageException($"--samples {wanted}: the {trainName} split of {opened.DataDescription} has only {available:N0} samples; ask for at most {available:N0}");
            var count = s.Samples ?? Math.Min(DefaultSamples, available);
            var testCount = test is null ? 0 : Math.Min(s.TestSamples ?? count, test.Count);
            if (s.TestSamples is int t && test is not null && t > test.Count)
                throw new UsageException($"--test-samples {t}: the test split of {opened.DataDescription} has only {test.Count:N0} samples");
            CheckFit(path, opened.Model, train);
            var batches = MeasurableRun.Batches(train.Inputs, train.Labels, count, s.BatchSize);
            var testBatches = test is null ? null : MeasurableRun.Batches(test.Inputs, test.Labels, testCount, s.BatchSize);
            var full = Path.GetFullPath(opened.Model.Path);
            var name = opened.Model.Format == ModelFormat.Run
                ? Path.GetFileName(Directory.Exists(full) ? full : Path.GetDirectoryName(full)!)
                : Path.GetFileName(full);
            var model = new FlatnessModel
            {
                Name = name,
                Source = full,
                Module = opened.Model.Module,
                Train = batches,
                Test = testBatches,
                Data = $"{opened.DataDescription}; {count:N0} {trainName} samples{(test is null ? "" : $", {testCount:N0} test samples")}",
                // A run's zoo network has no CreateCopy: its copies (float64, parallel workers) come from the zoo, as for hessian.
                Landscape = s.Landscape with { ModelFactory = opened.Model.CreateCopy ?? ZooCopies.FactoryFor(opened.Model.Module) },
            };
            return new OpenedModel(opened, model);
        }
        catch
        {
            opened.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Refuses a model and data that do not fit, before any measurement: samples the network cannot take (the data's
    /// sample shape is not its input shape), an output that is not (N, C) logits, or fewer classes than the labels need.
    /// </summary>
    internal static void CheckFit(string path, LoadedModel model, LabeledData data)
    {
        using var scope = NewDisposeScope();
        var take = Math.Min(2, data.Count);
        var inputs = data.Inputs.narrow(0, 0, take);
        var shape = $"[{string.Join(", ", inputs.shape.Skip(1))}]";
        Tensor output;
        var wasTraining = model.Module.training;
        try
        {
            model.Module.eval();
            using var noGrad = no_grad();
            var parameter = model.Module.parameters().FirstOrDefault();
            output = model.Module.call(parameter is null ? inputs : inputs.to(parameter.device).to(parameter.dtype));
        }
        catch (Exception e) when (e is ExternalException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new UsageException($"MODEL {path}: the data's samples of shape {shape} do not fit the network's input ({model.Description}): {FirstLine(e.Message)}");
        }
        finally
        {
            model.Module.train(wasTraining);
        }
        if (output.dim() != 2)
            throw new UsageException($"MODEL {path}: the network's output has shape [{string.Join(", ", output.shape)}] for samples of shape {shape}; " +
                                     "the flatness measures take classifiers whose output is (N, C) logits");
        var classes = output.shape[1];
        var needed = data.Labels.numel() == 0 ? 0 : data.Labels.max().ToInt64() + 1;
        if (classes < Math.Max(needed, 2) || classes < data.NumClasses)
            throw new UsageException($"MODEL {path}: the network gives {classes} outputs per sample but the labels have {Math.Max(needed, data.NumClasses)} classes " +
                                     $"(labels up to {needed - 1}); the outputs must be one logit per class");
    }

    private static string FirstLine(string message)
    {
        var line = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? message;
        return line.Length > 300 ? line[..300] + "..." : line;
    }

    /// <summary>Prints the cost estimate: per model, each measure's work and time, and the total.</summary>
    private static void SayEstimate(TextWriter log, IReadOnlyList<ModelEstimate> estimates, FlatnessBudget budget, double interpolationSeconds)
    {
        log.WriteLine($"flatness: budget {budget.Name}; estimated cost from timed unit costs (upper bounds where a method may stop early):");
        foreach (var e in estimates)
        {
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {e.Model} (id {e.Id}, {e.Size.Parameters:N0} parameters, {e.Size.TrainSamples:N0} samples): one HVP {e.Units.HvpSeconds * 1e3:0.##} ms, " +
                $"one forward pass {e.Units.ForwardSeconds * 1e3:0.##} ms, one gradient {e.Units.GradientSeconds * 1e3:0.##} ms"));
            foreach (var m in e.Measures)
                log.WriteLine($"    {m.Measure,-20} {(m.Stored ? "stored, reused" : $"{m.Cost}; about {FlatnessRunner.Say(m.Seconds)}")}");
        }
        if (estimates.Count > 1)
            log.WriteLine($"  interpolations between the models ({budget.SlicePoints} forward passes each): about {FlatnessRunner.Say(interpolationSeconds)}");
        var total = estimates.Sum(e => e.SecondsToSpend) + interpolationSeconds;
        log.WriteLine($"flatness: about {FlatnessRunner.Say(total)} in all");
    }

    /// <summary>Runs with a live Spectre.Console bar per measure on a terminal; plain event lines otherwise.</summary>
    private static FlatnessResults RunWithProgress(CliContext ctx, IReadOnlyList<FlatnessModel> models, FlatnessRunSettings settings, IReadOnlyList<ModelEstimate> estimates)
    {
        if (!ctx.Interactive) return FlatnessRunner.Run(models, settings, estimates);
        FlatnessResults results = null!;
        ctx.ProgressBars().Start(progress =>
        {
            ProgressTask? bar = null;
            string? phase = null;
            var gate = new Lock();
            var reporter = new Reporter(p =>
            {
                lock (gate)
                {
                    if (bar is null || p.Method != phase)
                    {
                        bar?.StopTask();
                        bar = progress.AddTask(Markup.Escape($"flatness: {p.Method}"), maxValue: Math.Max(1, p.Total));
                        phase = p.Method;
                    }
                    bar.MaxValue = Math.Max(1, p.Total);
                    bar.Value = p.Done;
                }
            });
            results = FlatnessRunner.Run(models, settings with { Progress = reporter }, estimates);
            bar?.StopTask();
        });
        return results;
    }

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool and reorder the reports).</summary>
    private sealed class Reporter(Action<CurvatureProgress> report) : IProgress<CurvatureProgress>
    {
        public void Report(CurvatureProgress value) => report(value);
    }
}
