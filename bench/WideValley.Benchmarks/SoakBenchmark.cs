using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Reports;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Benchmarks;

/// <summary>What to run in <see cref="SoakBenchmark"/>.</summary>
public sealed record SoakBenchmarkOptions
{
    /// <summary>Samples taken over the run when <see cref="SamplesEvery"/> is 0 (plus one before the first step).</summary>
    public const int DefaultSampleCount = 50;

    /// <summary>An image classifier from the model zoo (small-mnistfc, mnistfc, lenet, ...).</summary>
    public string Model { get; init; } = ModelZoo.SmallMnistFcName;
    /// <summary>A registered optimizer (<see cref="OptimizerFactory.Names"/>), with its default settings.</summary>
    public string Optimizer { get; init; } = "entropy-sgd";
    /// <summary>Langevin steps per outer step, for optimizers built on the local-entropy estimator (ignored by others).</summary>
    public int L { get; init; } = 5;
    /// <summary>Minibatch size.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Optimizer steps to take.</summary>
    public int Steps { get; init; } = 10_000;
    /// <summary>Steps between two samples; 0 = <see cref="Steps"/> / <see cref="DefaultSampleCount"/> (at least 1).</summary>
    public int SamplesEvery { get; init; }
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the weights, the data and the minibatch order.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>Samples in the synthetic training set the minibatches are drawn from.</summary>
    public int Samples { get; init; } = 8192;

    /// <summary>The sampling interval in steps, with the default resolved.</summary>
    public int SampleInterval => SamplesEvery > 0 ? SamplesEvery : Math.Max(1, Steps / DefaultSampleCount);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that cannot be run.</summary>
    public void Validate()
    {
        var info = ModelZoo.Describe(Model);
        if (info.Kind != ModelKind.Classifier)
            throw new ArgumentException($"--model {Model}: the soak benchmark needs an image classifier, e.g. small-mnistfc or mnistfc");
        OptimizerFactory.Describe(Optimizer);
        if (L < 1) throw new ArgumentException($"-L must be at least 1, got {L}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be positive, got {BatchSize}");
        if (Steps < 1) throw new ArgumentException($"--steps must be at least 1, got {Steps}");
        if (SamplesEvery < 0) throw new ArgumentException($"--samples-every must be 0 (about {DefaultSampleCount} samples over the run) or positive, got {SamplesEvery}");
        if (Samples < BatchSize) throw new ArgumentException($"--samples ({Samples}) must be at least the batch size ({BatchSize})");
    }
}

/// <summary>One reading taken during the soak, after a full garbage collection.</summary>
/// <param name="Step">Optimizer steps taken when the reading was taken (0 = before the first).</param>
/// <param name="ElapsedSeconds">Wall time since the trainer started, including the readings themselves.</param>
/// <param name="ResidentBytes">The process's working set (resident memory).</param>
/// <param name="LiveTensors">TorchSharp tensors alive in the process (created and not yet disposed or finalized).</param>
/// <param name="ManagedHeapBytes">Bytes on the .NET heap.</param>
public sealed record SoakSample(long Step, double ElapsedSeconds, long ResidentBytes, long LiveTensors, long ManagedHeapBytes)
{
    /// <summary><see cref="ResidentBytes"/> in MiB.</summary>
    public double ResidentMiB => ResidentBytes / (1024.0 * 1024.0);
    /// <summary><see cref="ManagedHeapBytes"/> in MiB.</summary>
    public double ManagedHeapMiB => ManagedHeapBytes / (1024.0 * 1024.0);
}

/// <summary>Result of <see cref="SoakBenchmark"/>: the settings, how the run ended, and the readings over time.</summary>
public sealed record SoakBenchmarkResult
{
    /// <summary>The model's name.</summary>
    public required string Model { get; init; }
    /// <summary>The optimizer's name.</summary>
    public required string Optimizer { get; init; }
    /// <summary>Langevin steps per outer step; null for optimizers without a local-entropy estimator.</summary>
    public required int? L { get; init; }
    /// <summary>Trainable parameters of the model.</summary>
    public required long Parameters { get; init; }
    /// <summary>Minibatch size.</summary>
    public required int BatchSize { get; init; }
    /// <summary>Optimizer steps asked for.</summary>
    public required int StepsRequested { get; init; }
    /// <summary>Optimizer steps taken (fewer than asked only when the trainer stopped the run, see <see cref="Status"/>).</summary>
    public required long StepsTaken { get; init; }
    /// <summary>Gradient evaluations (closure calls) the steps made.</summary>
    public required long GradEvals { get; init; }
    /// <summary>Steps between two readings.</summary>
    public required int SamplesEvery { get; init; }
    /// <summary>The trainer's status at the end, and its message when it stopped early.</summary>
    public required string Status { get; init; }
    /// <summary>libtorch threads used.</summary>
    public required int Threads { get; init; }
    /// <summary>The training data.</summary>
    public required string Data { get; init; }
    /// <summary>Wall time of the whole run, readings included.</summary>
    public required double ElapsedSeconds { get; init; }
    /// <summary>Share of the machine's CPU used by other processes during the run (null where /proc/stat is missing).</summary>
    public double? OtherProcessesCpuShare { get; init; }
    /// <summary>The readings, in step order: one before the first step, then every <see cref="SamplesEvery"/> steps and after the last.</summary>
    public required IReadOnlyList<SoakSample> Samples { get; init; }

    /// <summary>Resident MiB at the first reading (before the first step).</summary>
    public double FirstResidentMiB => Samples[0].ResidentMiB;
    /// <summary>Resident MiB at the last reading.</summary>
    public double LastResidentMiB => Samples[^1].ResidentMiB;
    /// <summary>Largest resident MiB of all readings.</summary>
    public double MaxResidentMiB => Samples.Max(s => s.ResidentMiB);
    /// <summary>Live tensors at the first reading.</summary>
    public long FirstLiveTensors => Samples[0].LiveTensors;
    /// <summary>Live tensors at the last reading.</summary>
    public long LastLiveTensors => Samples[^1].LiveTensors;
    /// <summary>Most live tensors of all readings.</summary>
    public long MaxLiveTensors => Samples.Max(s => s.LiveTensors);

    /// <summary>
    /// Least-squares slope of resident MiB against step over the second half of the run (readings at step &gt;= half
    /// the steps taken), in MiB per 1,000 steps: the growth left once allocator and thread pools have warmed up. Null
    /// with fewer than two such readings.
    /// </summary>
    public double? SecondHalfSlopeMiBPer1000Steps => Slope(s => s.ResidentMiB);

    /// <summary>As <see cref="SecondHalfSlopeMiBPer1000Steps"/>, for the live tensor count (tensors per 1,000 steps).</summary>
    public double? SecondHalfTensorSlopePer1000Steps => Slope(s => s.LiveTensors);

    double? Slope(Func<SoakSample, double> value)
    {
        var half = Samples.Where(s => 2 * s.Step >= StepsTaken).ToArray();
        if (half.Length < 2) return null;
        var meanX = half.Average(s => (double)s.Step);
        var meanY = half.Average(value);
        double sxy = 0, sxx = 0;
        foreach (var s in half)
        {
            sxy += (s.Step - meanX) * (value(s) - meanY);
            sxx += (s.Step - meanX) * (s.Step - meanX);
        }
        return 1000 * sxy / sxx;
    }
}

/// <summary>
/// A long training run through the library's <see cref="Trainer"/> (no run folder: no checkpoints or logs), with
/// readings of resident memory, live TorchSharp tensors and the .NET heap taken after full garbage collections at
/// regular steps: memory that grows with the number of steps shows as a slope, a tensor leak as a rising count.
/// </summary>
/// <remarks>
/// The data are synthetic (standard normal images with uniform labels, as in <see cref="OptimizerBenchmark"/>), so
/// the benchmark runs anywhere; the optimizer has its registered default settings (Entropy-SGD: eta = 1, the paper's
/// Langevin settings, diagnostics every 10 steps, taken by the trainer at each epoch's end), apart from L. Each epoch
/// ends with the trainer's test evaluation, so the evaluation path is soaked as well.
/// </remarks>
public static class SoakBenchmark
{
    /// <summary>Other processes using more than this share of the CPU make the report call the machine shared.</summary>
    const double SharedCpuShare = 0.05;

    /// <summary>Runs the soak; <paramref name="progress"/> hears of each reading.</summary>
    public static SoakBenchmarkResult Run(SoakBenchmarkOptions options, Action<string>? progress = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        var device = TorchRuntime.ResolveDevice("cpu");
        TorchRuntime.Seed(options.Seed);

        var info = ModelZoo.Describe(options.Model);
        using var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(options.Model, new ModelOptions());
        model.to(device);
        var parameters = ModelZoo.CountParameters(model);
        var data = OptimizerBenchmark.SyntheticImages(new OptimizerBenchmarkOptions { Samples = options.Samples, BatchSize = options.BatchSize, Seed = options.Seed }, device);
        var dataDescription = $"synthetic {options.Samples} x {string.Join("x", data.SampleShape)}";
        using var task = new ClassificationTask(model, data, options.BatchSize, options.Seed);

        var descriptor = OptimizerFactory.Describe(options.Optimizer);
        var optimizerOptions = descriptor.Defaults;
        int? l = null;
        if (optimizerOptions is ILocalEntropyOptimizerOptions localEntropy)
        {
            optimizerOptions = localEntropy.WithLocalEntropy(localEntropy.LocalEntropy with { L = options.L });
            l = options.L;
        }
        using var optimizer = descriptor.Create(model.parameters(), optimizerOptions,
            new OptimizerContext { TrainingSetSize = options.Samples, RunSeed = options.Seed });

        var stepsPerEpoch = (long)Math.Ceiling(task.MinibatchesPerPass - 1e-9);
        var trainer = new Trainer(task, optimizer, new TrainerOptions
        {
            Epochs = (int)Math.Ceiling(options.Steps / (double)stepsPerEpoch),
            OutputDirectory = null,
            WriteCheckpoints = false,
            TensorBoard = false,
            ModelName = info.Name,
            OptimizerName = descriptor.Name,
        });

        var every = options.SampleInterval;
        var samples = new List<SoakSample>();
        var cpu = CpuShare.Start();
        var watch = Stopwatch.StartNew();
        long steps = 0;
        void Sample()
        {
            // After a full collection, so that TorchSharp wrappers awaiting finalization do not count.
            var resident = OptimizerBenchmark.ResidentBytesAfterCollection();
            var sample = new SoakSample(steps, watch.Elapsed.TotalSeconds, resident, Tensor.TotalCount, GC.GetTotalMemory(forceFullCollection: false));
            samples.Add(sample);
            progress?.Invoke(string.Format(CultureInfo.InvariantCulture, "step {0}/{1}: {2:0.0} s, resident {3:0.0} MiB, {4} live tensors, managed heap {5:0.0} MiB",
                sample.Step, options.Steps, sample.ElapsedSeconds, sample.ResidentMiB, sample.LiveTensors, sample.ManagedHeapMiB));
        }
        trainer.StepCompleted = _ =>
        {
            steps++;
            if (steps % every == 0 || steps == options.Steps) Sample();
            if (steps == options.Steps) trainer.RequestStop();
        };
        Sample();
        var outcome = trainer.Run();
        watch.Stop();
        if (samples[^1].Step != steps) Sample();
        var status = steps == options.Steps ? "completed" : $"{outcome.Status.ToString().ToLowerInvariant()}: {outcome.Message}";

        return new SoakBenchmarkResult
        {
            Model = info.Name,
            Optimizer = descriptor.Name,
            L = l,
            Parameters = parameters,
            BatchSize = options.BatchSize,
            StepsRequested = options.Steps,
            StepsTaken = steps,
            GradEvals = trainer.GradEvals,
            SamplesEvery = every,
            Status = status,
            Threads = get_num_threads(),
            Data = dataDescription,
            ElapsedSeconds = watch.Elapsed.TotalSeconds,
            OtherProcessesCpuShare = cpu.OtherProcessesShare(),
            Samples = samples,
        };
    }

    /// <summary>The result as plain text lines: the run, then resident memory, then the tensor count and the heap.</summary>
    public static IReadOnlyList<string> Summary(SoakBenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        return
        [
            string.Format(c, "{0} steps of {1} on {2}{3}, batch {4}, {5} thread(s): {6:0.0} s, {7}",
                r.StepsTaken, r.Optimizer, r.Model, r.L is int l ? $" (L = {l})" : "", r.BatchSize, r.Threads, r.ElapsedSeconds, r.Status),
            string.Format(c, "resident memory: first {0:0.0} MiB, last {1:0.0} MiB, max {2:0.0} MiB; second-half slope {3} MiB per 1,000 steps",
                r.FirstResidentMiB, r.LastResidentMiB, r.MaxResidentMiB, Signed(r.SecondHalfSlopeMiBPer1000Steps, "0.000")),
            string.Format(c, "live tensors: first {0}, last {1}, max {2}; managed heap first {3:0.0} MiB, last {4:0.0} MiB ({5} samples, every {6} steps)",
                r.FirstLiveTensors, r.LastLiveTensors, r.MaxLiveTensors, r.Samples[0].ManagedHeapMiB, r.Samples[^1].ManagedHeapMiB, r.Samples.Count, r.SamplesEvery),
        ];
    }

    /// <summary>The result with the key names the reports use (snake_case), every sample included.</summary>
    public static JsonObject ToJson(SoakBenchmarkResult r) => new()
    {
        ["benchmark"] = "soak",
        ["model"] = r.Model,
        ["optimizer"] = r.Optimizer,
        ["L"] = r.L,
        ["parameters"] = r.Parameters,
        ["batch_size"] = r.BatchSize,
        ["steps_requested"] = r.StepsRequested,
        ["steps"] = r.StepsTaken,
        ["grad_evals"] = r.GradEvals,
        ["samples_every"] = r.SamplesEvery,
        ["status"] = r.Status,
        ["threads"] = r.Threads,
        ["processors"] = Environment.ProcessorCount,
        ["data"] = r.Data,
        ["elapsed_seconds"] = Math.Round(r.ElapsedSeconds, 2),
        ["other_processes_cpu_share"] = r.OtherProcessesCpuShare is { } share ? Math.Round(share, 3) : null,
        ["resident_first_mib"] = Math.Round(r.FirstResidentMiB, 2),
        ["resident_last_mib"] = Math.Round(r.LastResidentMiB, 2),
        ["resident_max_mib"] = Math.Round(r.MaxResidentMiB, 2),
        ["resident_slope_second_half_mib_per_1000_steps"] = r.SecondHalfSlopeMiBPer1000Steps is { } slope ? Math.Round(slope, 4) : null,
        ["live_tensors_first"] = r.FirstLiveTensors,
        ["live_tensors_last"] = r.LastLiveTensors,
        ["live_tensors_max"] = r.MaxLiveTensors,
        ["live_tensors_slope_second_half_per_1000_steps"] = r.SecondHalfTensorSlopePer1000Steps is { } tensorSlope ? Math.Round(tensorSlope, 4) : null,
        ["samples"] = new JsonArray(r.Samples.Select(s => (JsonNode)new JsonObject
        {
            ["step"] = s.Step,
            ["elapsed_seconds"] = Math.Round(s.ElapsedSeconds, 3),
            ["resident_bytes"] = s.ResidentBytes,
            ["live_tensors"] = s.LiveTensors,
            ["managed_heap_bytes"] = s.ManagedHeapBytes,
        }).ToArray()),
    };

    /// <summary>
    /// Writes the Markdown report to <paramref name="markdownPath"/>, the JSON (<see cref="ToJson"/>) beside it (same
    /// name, .json) and, when the plotting font is available, the resident-memory curve as .png and .svg. Returns the
    /// files written and why the plot was skipped (null when drawn).
    /// </summary>
    public static (IReadOnlyList<string> Written, string? PlotSkippedBecause) WriteReport(SoakBenchmarkResult r, string command, string markdownPath)
    {
        var written = new List<string>();
        var basePath = Path.ChangeExtension(markdownPath, null);
        var jsonPath = basePath + ".json";
        AtomicFile.WriteAllText(jsonPath, ToJson(r).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(jsonPath);
        var figure = LinePlot.Create(
            [new LineSeries("resident memory after a full GC", r.Samples.Select(s => (double)s.Step).ToArray(), r.Samples.Select(s => s.ResidentMiB).ToArray()) { ShowMarkers = true }],
            "optimizer step", "resident MiB",
            new LinePlotOptions { Title = $"Soak: {r.Optimizer} on {r.Model}{(r.L is int l ? $", L = {l}" : "")}, batch {r.BatchSize}", Legend = LegendCorner.LowerRight });
        string? png = null;
        if (figure.TrySavePngAndSvg(basePath, out var skipped))
        {
            written.Add(basePath + ".png");
            written.Add(basePath + ".svg");
            png = Path.GetFileName(basePath) + ".png";
        }
        AtomicFile.WriteAllText(markdownPath, Markdown(r, command, Path.GetFileName(jsonPath), png));
        written.Add(markdownPath);
        return (written, skipped);
    }

    /// <summary>The Markdown report: the settings, the summary numbers, the curve (when drawn) and every sample.</summary>
    public static string Markdown(SoakBenchmarkResult r, string command, string jsonFileName, string? plotFileName)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine($"# Soak: {r.StepsTaken:N0} {r.Optimizer} steps, memory and tensors over time").AppendLine();
        md.AppendLine($"Command: `{command}` ({r.ElapsedSeconds.ToString("0", c)} s in one process, {r.Threads} libtorch thread(s), " +
                      $"{Environment.ProcessorCount} processors).").AppendLine();
        md.AppendLine(r.OtherProcessesCpuShare switch
        {
            double share when share > SharedCpuShare =>
                $"**The machine was shared**: other processes used {(100 * share).ToString("0", c)}% of its CPU while this ran. The memory readings " +
                "are this process's own and stand; the times are indicative only.",
            double share => $"The machine was otherwise idle (other processes used {(100 * share).ToString("0.0", c)}% of its CPU while this ran).",
            _ => "Other processes' CPU use could not be measured here (no /proc/stat): the memory readings are this process's own, the times indicative only.",
        }).AppendLine();
        md.AppendLine($"The library's trainer (no run folder) trains {r.Model} ({r.Parameters.ToString("N0", c)} parameters) with {r.Optimizer} at its default " +
                      $"settings{(r.L is int l ? $" and L = {l}" : "")}, batch {r.BatchSize}, on {r.Data} images with uniform labels; each epoch ends with " +
                      $"the trainer's test evaluation. Every {r.SamplesEvery.ToString("N0", c)} steps (and before the first) it takes a full garbage " +
                      "collection (twice, with the pending finalizers between) and reads the resident memory (working set), the TorchSharp tensors " +
                      "alive in the process and the .NET heap. Run ended: " + r.Status + $"; {r.GradEvals.ToString("N0", c)} gradient evaluations.");
        md.AppendLine();
        md.AppendLine("| | first | last | max | second-half slope per 1,000 steps |");
        md.AppendLine("|---|---:|---:|---:|---:|");
        md.AppendLine($"| resident memory (MiB) | {r.FirstResidentMiB.ToString("0.0", c)} | {r.LastResidentMiB.ToString("0.0", c)} | {r.MaxResidentMiB.ToString("0.0", c)} | {Signed(r.SecondHalfSlopeMiBPer1000Steps, "0.000")} MiB |");
        md.AppendLine($"| live tensors | {r.FirstLiveTensors} | {r.LastLiveTensors} | {r.MaxLiveTensors} | {Signed(r.SecondHalfTensorSlopePer1000Steps, "0.00")} |");
        md.AppendLine($"| managed heap (MiB) | {r.Samples[0].ManagedHeapMiB.ToString("0.0", c)} | {r.Samples[^1].ManagedHeapMiB.ToString("0.0", c)} | {r.Samples.Max(s => s.ManagedHeapMiB).ToString("0.0", c)} | |");
        md.AppendLine();
        md.AppendLine("The slope is a least-squares fit over the readings in the second half of the run, after the allocator and thread pools have warmed up.");
        md.AppendLine();
        if (plotFileName is not null) md.AppendLine($"![resident memory against step]({plotFileName})").AppendLine();
        md.AppendLine("## Samples").AppendLine();
        md.AppendLine("| step | elapsed s | resident MiB | live tensors | managed heap MiB |");
        md.AppendLine("|---:|---:|---:|---:|---:|");
        foreach (var s in r.Samples)
            md.AppendLine($"| {s.Step} | {s.ElapsedSeconds.ToString("0.0", c)} | {s.ResidentMiB.ToString("0.0", c)} | {s.LiveTensors} | {s.ManagedHeapMiB.ToString("0.00", c)} |");
        md.AppendLine();
        md.AppendLine($"Raw output: [{jsonFileName}]({jsonFileName}) (the same object `--json` prints).");
        return md.ToString();
    }

    static string Signed(double? value, string format) =>
        value is double v ? v.ToString("+" + format + ";-" + format + ";" + format, CultureInfo.InvariantCulture) : "n/a";
}
