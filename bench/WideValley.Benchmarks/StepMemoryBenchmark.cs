using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Benchmarks;

/// <summary>What to run in <see cref="StepMemoryBenchmark"/>.</summary>
public sealed record StepMemoryBenchmarkOptions
{
    /// <summary>An image classifier from the model zoo (default mnistfc, the network the issue measured).</summary>
    public string Model { get; init; } = ModelZoo.MnistFcName;
    /// <summary>A registered optimizer built on the local-entropy estimator (default entropy-sgd).</summary>
    public string Optimizer { get; init; } = "entropy-sgd";
    /// <summary>The numbers of Langevin steps per outer step to measure, in order (default 1, 25, 100).</summary>
    public IReadOnlyList<int> Ls { get; init; } = [1, 25, 100];
    /// <summary>Minibatch size (default 500: large batches make a per-minibatch leak easy to see).</summary>
    public int BatchSize { get; init; } = 500;
    /// <summary>
    /// Gradient evaluations (closure calls) per L, the same for every L: ceil(Evaluations / L) steps run at each L.
    /// Resident memory grows with the number of evaluations while the allocator warms up (mnistfc at batch 500 and
    /// L = 1: a peak of 280 MiB after 3 steps, 373 MiB after 75, 532 MiB after 300), so L must be compared at equal
    /// work, not at an equal number of steps.
    /// </summary>
    public int Evaluations { get; init; } = 300;

    /// <summary>Outer steps run at <paramref name="l"/>: enough for <see cref="Evaluations"/> gradient evaluations.</summary>
    public int StepsAt(int l) => (int)Math.Max(1, (Evaluations + (long)l - 1) / l);
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the weights, the data and the minibatch order.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>Samples in the synthetic training set.</summary>
    public int Samples { get; init; } = 8192;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that cannot be run.</summary>
    public void Validate()
    {
        if (ModelZoo.Describe(Model).Kind != ModelKind.Classifier)
            throw new ArgumentException($"--model {Model}: the step-memory benchmark needs an image classifier, e.g. mnistfc or small-mnistfc");
        if (!OptimizerFactory.Describe(Optimizer).IsLocalEntropy)
            throw new ArgumentException($"--optimizer {Optimizer}: takes no Langevin steps; the step-memory benchmark needs a local-entropy optimizer " +
                                        $"({string.Join(", ", OptimizerFactory.Names.Where(n => OptimizerFactory.Describe(n).IsLocalEntropy))})");
        if (Ls.Count == 0) throw new ArgumentException("-L: give at least one number of Langevin steps");
        if (Ls.Where(l => l < 1).Select(l => (int?)l).FirstOrDefault() is int bad) throw new ArgumentException($"-L must be at least 1, got {bad}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be positive, got {BatchSize}");
        if (Evaluations < 1) throw new ArgumentException($"--evaluations must be at least 1, got {Evaluations}");
        if (Samples < BatchSize) throw new ArgumentException($"--samples ({Samples}) must be at least the batch size ({BatchSize})");
    }
}

/// <summary>The memory of the steps at one L.</summary>
/// <param name="L">Langevin steps per outer step.</param>
/// <param name="ResidentBeforeBytes">Resident memory after a full collection, before the first step at this L (optimizer built).</param>
/// <param name="PeakBytes">Peak resident memory during the steps (the kernel's high-water mark, reset before the first).</param>
/// <param name="Steps">Outer steps taken at this L.</param>
/// <param name="GradEvals">Gradient evaluations the steps made (Entropy-SGD's diagnostics add one every 10th step).</param>
/// <param name="SecondsPerStep">Mean wall time of one step.</param>
public sealed record StepMemoryReading(int L, long ResidentBeforeBytes, long PeakBytes, int Steps, long GradEvals, double SecondsPerStep)
{
    /// <summary><see cref="PeakBytes"/> in MiB.</summary>
    public double PeakMiB => PeakBytes / (1024.0 * 1024.0);
    /// <summary><see cref="ResidentBeforeBytes"/> in MiB.</summary>
    public double ResidentBeforeMiB => ResidentBeforeBytes / (1024.0 * 1024.0);
    /// <summary>What the steps added above the resident memory they started from, in MiB.</summary>
    public double StepOverheadMiB => PeakMiB - ResidentBeforeMiB;
}

/// <summary>Result of <see cref="StepMemoryBenchmark"/>.</summary>
public sealed record StepMemoryBenchmarkResult
{
    /// <summary>The model's name.</summary>
    public required string Model { get; init; }
    /// <summary>Trainable parameters of the model.</summary>
    public required long Parameters { get; init; }
    /// <summary>The optimizer's name.</summary>
    public required string Optimizer { get; init; }
    /// <summary>Minibatch size.</summary>
    public required int BatchSize { get; init; }
    /// <summary>Gradient evaluations asked for per L.</summary>
    public required int Evaluations { get; init; }
    /// <summary>libtorch threads used.</summary>
    public required int Threads { get; init; }
    /// <summary>True when each L ran in a fresh process of its own (see <see cref="StepMemoryBenchmark"/>).</summary>
    public bool Isolated { get; init; }
    /// <summary>One reading per L, in the order measured.</summary>
    public required IReadOnlyList<StepMemoryReading> Readings { get; init; }

    /// <summary>Peak at the largest L minus the peak at the smallest, in MiB.</summary>
    public double PeakGrowthMiB => ByL[^1].PeakMiB - ByL[0].PeakMiB;

    /// <summary>
    /// Peak growth per Langevin step between the smallest and the largest L, in MiB (0 with one L). Before the
    /// per-closure dispose scopes, mnistfc at batch 500 grew by about 11 MiB per Langevin step (344 MB at L = 1,
    /// 1,453 MB at L = 100).
    /// </summary>
    public double PeakGrowthMiBPerLangevinStep => ByL.Length < 2 ? 0 : PeakGrowthMiB / (ByL[^1].L - ByL[0].L);

    /// <summary>
    /// True when the peak does not grow with L: at most 64 MiB or 10% of the smallest L's peak more at the largest L
    /// (the allocator's caching and the readings' own noise are of that order; one minibatch of mnistfc at batch 500
    /// with its activations and gradients is about 6 MiB, so a leak per Langevin step would show as hundreds of MiB).
    /// </summary>
    public bool FlatInL => PeakGrowthMiB <= Math.Max(64, 0.1 * ByL[0].PeakMiB);

    StepMemoryReading[] ByL => Readings.OrderBy(r => r.L).ToArray();
}

/// <summary>
/// The peak resident memory of local-entropy optimizer steps (Entropy-SGD by default) at several numbers of Langevin
/// steps L: for each L a fresh optimizer is built, the kernel's high-water mark of resident memory is reset
/// (<c>/proc/self/clear_refs</c>) after a full collection, and the steps run: the same number of gradient evaluations
/// at every L (<see cref="StepMemoryBenchmarkOptions.Evaluations"/>). A step that kept each minibatch's tensors until its end would show a peak growing linearly in L; the target is
/// flat in L.
/// </summary>
/// <remarks>
/// Linux only (the high-water mark and its reset are /proc features). In one process, memory the allocator keeps
/// from an earlier L is part of the resident memory a later L starts from (measured: L = 1, 25, 100 in that order
/// start from 283, 311 and 377 MiB, and from about 355 MiB each when L = 100 runs first), so the command line runs
/// each L in a fresh process of its own (<c>widevalley bench step-memory</c>, unless told <c>--in-process</c>).
/// Synthetic images (as in <see cref="OptimizerBenchmark"/>) so it runs anywhere.
/// </remarks>
public static class StepMemoryBenchmark
{
    /// <summary>Runs the measurement; <paramref name="progress"/> hears of each L.</summary>
    /// <exception cref="PlatformNotSupportedException">No /proc/self/status high-water mark or no way to reset it.</exception>
    public static StepMemoryBenchmarkResult Run(StepMemoryBenchmarkOptions options, Action<string>? progress = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        var device = TorchRuntime.ResolveDevice("cpu");
        ResetPeak();
        _ = PeakResidentBytes();

        TorchRuntime.Seed(options.Seed);
        var info = ModelZoo.Describe(options.Model);
        using var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(options.Model, new ModelOptions());
        model.to(device);
        using var data = OptimizerBenchmark.SyntheticImages(new OptimizerBenchmarkOptions { Samples = options.Samples, BatchSize = options.BatchSize, Seed = options.Seed }, device);
        var descriptor = OptimizerFactory.Describe(options.Optimizer);
        var readings = new List<StepMemoryReading>();
        foreach (var l in options.Ls)
        {
            using var task = new ClassificationTask(model, data, options.BatchSize, options.Seed, ownsData: false);
            var local = (ILocalEntropyOptimizerOptions)descriptor.Defaults;
            var optimizerOptions = local.WithLocalEntropy(local.LocalEntropy with { L = l });
            using var optimizer = descriptor.Create(model.parameters(), optimizerOptions,
                new OptimizerContext { TrainingSetSize = options.Samples, RunSeed = options.Seed });
            var stepsPerEpoch = (long)Math.Ceiling(task.MinibatchesPerPass - 1e-9);
            var trainer = new Trainer(task, optimizer, new TrainerOptions
            {
                Epochs = (int)Math.Ceiling(options.StepsAt(l) / (double)stepsPerEpoch),
                OutputDirectory = null,
                WriteCheckpoints = false,
                TensorBoard = false,
                ModelName = info.Name,
                OptimizerName = descriptor.Name,
            });
            // The high-water mark is reset after a full collection, just before the first step at this L.
            var residentBefore = OptimizerBenchmark.ResidentBytesAfterCollection();
            var stepsWanted = options.StepsAt(l);
            ResetPeak();
            long steps = 0;
            var watch = Stopwatch.StartNew();
            trainer.StepCompleted = _ =>
            {
                if (++steps == stepsWanted) trainer.RequestStop();
            };
            trainer.Run();
            watch.Stop();
            if (steps < stepsWanted)
                throw new InvalidOperationException($"the trainer stopped after {steps} of {stepsWanted} steps at L = {l}");
            var reading = new StepMemoryReading(l, residentBefore, PeakResidentBytes(), stepsWanted, trainer.GradEvals, watch.Elapsed.TotalSeconds / stepsWanted);
            readings.Add(reading);
            progress?.Invoke(string.Format(CultureInfo.InvariantCulture, "L = {0}: peak {1:0.0} MiB ({2:+0.0;-0.0} over the {3:0.0} MiB resident before), {4} steps, {5} gradient evaluations, {6:0.00} s per step",
                l, reading.PeakMiB, reading.StepOverheadMiB, reading.ResidentBeforeMiB, reading.Steps, reading.GradEvals, reading.SecondsPerStep));
        }
        return new StepMemoryBenchmarkResult
        {
            Model = info.Name,
            Parameters = ModelZoo.CountParameters(model),
            Optimizer = descriptor.Name,
            BatchSize = options.BatchSize,
            Evaluations = options.Evaluations,
            Threads = get_num_threads(),
            Readings = readings,
        };
    }

    /// <summary>VmHWM of /proc/self/status: the peak resident memory since the process started or the last reset.</summary>
    public static long PeakResidentBytes()
    {
        const string path = "/proc/self/status";
        try
        {
            foreach (var line in File.ReadLines(path))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlatformNotSupportedException($"the step-memory benchmark reads the peak resident memory from {path}, which could not be read: {e.Message}", e);
        }
        throw new PlatformNotSupportedException($"{path} has no VmHWM line; the step-memory benchmark needs Linux's peak resident memory");
    }

    /// <summary>Resets the peak resident memory to the current resident memory (writes 5 to /proc/self/clear_refs).</summary>
    static void ResetPeak()
    {
        const string path = "/proc/self/clear_refs";
        try
        {
            File.WriteAllText(path, "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PlatformNotSupportedException($"the step-memory benchmark resets the peak resident memory through {path}, which could not be written: {e.Message}", e);
        }
    }

    /// <summary>The result as plain text lines: one per L, then the growth and the verdict.</summary>
    public static IReadOnlyList<string> Summary(StepMemoryBenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        var lines = new List<string>
        {
            string.Format(c, "{0} on {1} ({2:N0} parameters), batch {3}, about {4} gradient evaluations per L, {5} thread(s):", r.Optimizer, r.Model, r.Parameters, r.BatchSize, r.Evaluations, r.Threads),
        };
        foreach (var x in r.Readings)
            lines.Add(string.Format(c, "  L = {0,4}: peak {1,8:0.0} MiB, {2,7:+0.0;-0.0} MiB over the resident {3:0.0} MiB before; {4} steps, {5} evaluations, {6:0.00} s per step",
                x.L, x.PeakMiB, x.StepOverheadMiB, x.ResidentBeforeMiB, x.Steps, x.GradEvals, x.SecondsPerStep));
        lines.Add(string.Format(c, "peak at the largest L minus the smallest: {0:+0.0;-0.0} MiB ({1:+0.000;-0.000} MiB per Langevin step): {2}",
            r.PeakGrowthMiB, r.PeakGrowthMiBPerLangevinStep, r.FlatInL ? "flat in L" : "GROWS with L"));
        return lines;
    }

    /// <summary>The result with the key names the reports use (snake_case).</summary>
    public static JsonObject ToJson(StepMemoryBenchmarkResult r) => new()
    {
        ["benchmark"] = "step-memory",
        ["model"] = r.Model,
        ["parameters"] = r.Parameters,
        ["optimizer"] = r.Optimizer,
        ["batch_size"] = r.BatchSize,
        ["evaluations_per_L"] = r.Evaluations,
        ["threads"] = r.Threads,
        ["isolated"] = r.Isolated,
        ["processors"] = Environment.ProcessorCount,
        ["readings"] = new JsonArray(r.Readings.Select(x => (JsonNode)new JsonObject
        {
            ["L"] = x.L,
            ["resident_before_mib"] = Math.Round(x.ResidentBeforeMiB, 2),
            ["peak_mib"] = Math.Round(x.PeakMiB, 2),
            ["step_overhead_mib"] = Math.Round(x.StepOverheadMiB, 2),
            ["steps"] = x.Steps,
            ["grad_evals"] = x.GradEvals,
            ["seconds_per_step"] = Math.Round(x.SecondsPerStep, 4),
        }).ToArray()),
        ["peak_growth_mib"] = Math.Round(r.PeakGrowthMiB, 2),
        ["peak_growth_mib_per_langevin_step"] = Math.Round(r.PeakGrowthMiBPerLangevinStep, 4),
        ["flat_in_L"] = r.FlatInL,
    };

    /// <summary>Reads back what <see cref="ToJson"/> wrote (to merge readings taken in separate processes).</summary>
    /// <exception cref="FormatException">A key is missing or has the wrong type (names the key).</exception>
    public static StepMemoryBenchmarkResult FromJson(JsonNode json)
    {
        T Get<T>(JsonNode? node, string key)
        {
            try
            {
                return node![key]!.GetValue<T>();
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new FormatException($"step-memory JSON: '{key}' is missing or not a {typeof(T).Name}", e);
            }
        }
        const double mib = 1024.0 * 1024.0;
        var readings = (json["readings"] as JsonArray ?? throw new FormatException("step-memory JSON: 'readings' is missing or not an array"))
            .Select(x => new StepMemoryReading(Get<int>(x, "L"), (long)Math.Round(Get<double>(x, "resident_before_mib") * mib),
                (long)Math.Round(Get<double>(x, "peak_mib") * mib), Get<int>(x, "steps"), Get<long>(x, "grad_evals"), Get<double>(x, "seconds_per_step")))
            .ToArray();
        return new StepMemoryBenchmarkResult
        {
            Model = Get<string>(json, "model"),
            Parameters = Get<long>(json, "parameters"),
            Optimizer = Get<string>(json, "optimizer"),
            BatchSize = Get<int>(json, "batch_size"),
            Evaluations = Get<int>(json, "evaluations_per_L"),
            Threads = Get<int>(json, "threads"),
            Isolated = Get<bool>(json, "isolated"),
            Readings = readings,
        };
    }

    /// <summary>The Markdown report: how it was measured, one row per L, and the verdict.</summary>
    public static string Markdown(StepMemoryBenchmarkResult r, string command)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine($"# Peak memory of an {r.Optimizer} step against L").AppendLine();
        md.AppendLine($"Command: `{command}` ({(r.Isolated ? "one process per L" : "one process")}, {r.Threads} libtorch thread(s), {Environment.ProcessorCount} processors).").AppendLine();
        md.AppendLine($"{r.Model} ({r.Parameters.ToString("N0", c)} parameters), batch {r.BatchSize}, synthetic images, " +
                      (r.Isolated ? "each L in a fresh process of its own" : "all L in one process, in the order shown") + ". For each L a fresh optimizer is built, " +
                      $"the kernel's high-water mark of resident memory is reset (`/proc/self/clear_refs`) after a full collection, and ceil({r.Evaluations} / L) steps run " +
                      "(the same work at every L: resident memory grows with the number of evaluations while the allocator warms up); the peak is VmHWM afterwards. \"Over the start\" is the peak minus the resident memory the steps started from.");
        md.AppendLine();
        md.AppendLine("| L | steps | gradient evaluations | resident before (MiB) | peak (MiB) | over the start (MiB) | s per step |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var x in r.Readings)
            md.AppendLine($"| {x.L} | {x.Steps} | {x.GradEvals} | {x.ResidentBeforeMiB.ToString("0.0", c)} | {x.PeakMiB.ToString("0.0", c)} | {x.StepOverheadMiB.ToString("+0.0;-0.0", c)} | {x.SecondsPerStep.ToString("0.00", c)} |");
        md.AppendLine();
        md.AppendLine($"Peak at the largest L minus the smallest: **{r.PeakGrowthMiB.ToString("+0.0;-0.0", c)} MiB** " +
                      $"({r.PeakGrowthMiBPerLangevinStep.ToString("+0.000;-0.000", c)} MiB per Langevin step): **{(r.FlatInL ? "flat in L" : "grows with L")}** " +
                      "(flat: at most 64 MiB or 10% of the smallest L's peak more).");
        return md.ToString();
    }
}
