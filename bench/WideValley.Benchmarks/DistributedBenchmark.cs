using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using WideValley.Distributed;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Benchmarks;

/// <summary>One message size's allreduce timings: every timed repetition, in seconds, averaged over the ranks.</summary>
/// <param name="Elements">float32 elements in the buffer.</param>
/// <param name="Seconds">Each repetition's time (rank mean), barrier excluded.</param>
public sealed record AllreduceTiming(long Elements, IReadOnlyList<double> Seconds)
{
    /// <summary>Bytes in the buffer.</summary>
    public long Bytes => Elements * sizeof(float);

    /// <summary>The median repetition.</summary>
    public double MedianSeconds => Medians.Of(Seconds.ToArray());
}

/// <summary>
/// The allreduce cost model T(bytes) = latency + bytes / bandwidth, fitted to the medians by least squares on the
/// relative error (each size weighs the same whether it takes microseconds or milliseconds).
/// </summary>
/// <param name="LatencySeconds">The fitted fixed cost of one call.</param>
/// <param name="BytesPerSecond">The fitted bandwidth (the buffer's bytes over the time they add).</param>
public sealed record AllreduceFit(double LatencySeconds, double BytesPerSecond)
{
    /// <summary>The model's time for a buffer of <paramref name="bytes"/>.</summary>
    public double Seconds(double bytes) => LatencySeconds + bytes / BytesPerSecond;

    /// <summary>Fits the model to <paramref name="timings"/>' medians; the latency is clamped at zero.</summary>
    /// <exception cref="ArgumentException">Fewer than two sizes.</exception>
    public static AllreduceFit Of(IReadOnlyList<AllreduceTiming> timings)
    {
        if (timings.Count < 2) throw new ArgumentException($"fitting latency and bandwidth needs at least two message sizes, got {timings.Count}");
        // Minimise sum ((a + b x - t) / t)^2 over (a, b): rows (1/t, x/t), target 1.
        double s11 = 0, s12 = 0, s22 = 0, r1 = 0, r2 = 0;
        foreach (var t in timings)
        {
            var (u, v) = (1 / t.MedianSeconds, t.Bytes / t.MedianSeconds);
            s11 += u * u; s12 += u * v; s22 += v * v; r1 += u; r2 += v;
        }
        var det = s11 * s22 - s12 * s12;
        var a = (r1 * s22 - r2 * s12) / det;
        var b = (s11 * r2 - s12 * r1) / det;
        if (a < 0 || !double.IsFinite(a))
        {
            // No fixed cost is measurable: refit the slope alone.
            a = 0;
            b = r2 / s22;
        }
        return new AllreduceFit(a, b > 0 ? 1 / b : double.PositiveInfinity);
    }
}

/// <summary>One network's compute per minibatch step on one thread, the input of the scaling model.</summary>
/// <param name="Network">Zoo name.</param>
/// <param name="Parameters">Trainable parameters (the allreduced vector's length).</param>
/// <param name="BatchSize">Images per rank per step.</param>
/// <param name="StepSeconds">Every timed SGD step (forward, backward, Nesterov update), one thread.</param>
public sealed record ComputeTiming(string Network, long Parameters, int BatchSize, IReadOnlyList<double> StepSeconds)
{
    /// <summary>The median step.</summary>
    public double MedianSeconds => Medians.Of(StepSeconds.ToArray());
}

/// <summary>A network link the scaling model is evaluated on (stated, not measured here).</summary>
/// <param name="Name">For the report.</param>
/// <param name="BitsPerSecond">Link bandwidth.</param>
/// <param name="HopLatencySeconds">Fixed cost of one message between neighbours in the ring.</param>
public sealed record NetworkLink(string Name, double BitsPerSecond, double HopLatencySeconds)
{
    /// <summary>The links of the report: 10 Gbit/s Ethernet over TCP and a 100 Gbit/s RDMA fabric (our assumptions).</summary>
    public static IReadOnlyList<NetworkLink> Default { get; } =
    [
        new("10 Gbit/s Ethernet (TCP, 25 us per hop)", 10e9, 25e-6),
        new("100 Gbit/s RDMA (InfiniBand class, 2 us per hop)", 100e9, 2e-6),
    ];

    /// <summary>
    /// A ring allreduce of <paramref name="bytes"/> over <paramref name="ranks"/> ranks: 2(K-1) steps, each one hop's
    /// latency plus bytes/K over the link (a reduce-scatter then an allgather; Patarasuk and Yuan 2009).
    /// </summary>
    public double RingAllreduceSeconds(double bytes, int ranks) => ranks <= 1 ? 0
        : 2.0 * (ranks - 1) * (HopLatencySeconds + bytes / ranks / (BitsPerSecond / 8));
}

/// <summary>The scaling model's prediction for one network, link and number of ranks.</summary>
/// <param name="Network">Zoo name.</param>
/// <param name="Link">The link's name.</param>
/// <param name="Ranks">K.</param>
/// <param name="AllreduceSeconds">One ring allreduce of the float32 weights on the link at K ranks.</param>
/// <param name="ComputeSeconds">The measured compute per step t_c (one rank, one thread).</param>
/// <param name="DataParallelImagesPerSecond">K b / (t_c + T_allreduce): one gradient allreduce per step.</param>
/// <param name="ParleImagesPerSecond">K b / (t_c + T_allreduce / L): one weight allreduce per L steps.</param>
/// <param name="SingleImagesPerSecond">b / t_c: one process alone.</param>
public sealed record ScalingPrediction(string Network, string Link, int Ranks, double AllreduceSeconds, double ComputeSeconds,
    double DataParallelImagesPerSecond, double ParleImagesPerSecond, double SingleImagesPerSecond)
{
    /// <summary>Data-parallel throughput over K times one process's.</summary>
    public double DataParallelEfficiency => DataParallelImagesPerSecond / (Ranks * SingleImagesPerSecond);
    /// <summary>Parle's throughput over K times one process's.</summary>
    public double ParleEfficiency => ParleImagesPerSecond / (Ranks * SingleImagesPerSecond);
}

/// <summary>
/// `widevalley bench distributed`'s measurements and model. The allreduce timings come from a worker started under
/// mpirun (<see cref="MeasureAllreduce"/>); the compute per step from this process on one thread
/// (<see cref="MeasureCompute"/>); <see cref="Predict"/> combines them into throughput at many ranks.
/// </summary>
public static class DistributedBenchmark
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Message sizes (float32 elements) timed by default: 4 bytes to 16 MiB, and LeNet's and mnistfc's parameter vectors lie inside.</summary>
    public static IReadOnlyList<long> DefaultSizes { get; } = [1, 16, 256, 4_096, 65_536, 262_144, 1_048_576, 4_194_304];

    /// <summary>The ranks the scaling model is evaluated at.</summary>
    public static IReadOnlyList<int> ModelRanks { get; } = [2, 8, 64, 512];

    /// <summary>
    /// Times in-place allreduces (sum, float32) of every size on every rank: <paramref name="warmup"/> untimed, then
    /// <paramref name="repetitions"/> timed ones, each after a barrier so that every rank starts together; the times are
    /// averaged over the ranks by one more allreduce. The buffers hold zeros, so their sums stay zero, which is checked.
    /// </summary>
    /// <exception cref="InvalidOperationException">An allreduce gave a wrong sum.</exception>
    public static IReadOnlyList<AllreduceTiming> MeasureAllreduce(ICollectives collectives, IReadOnlyList<long> sizes, int repetitions, int warmup)
    {
        var result = new List<AllreduceTiming>();
        var watch = new Stopwatch();
        foreach (var n in sizes)
        {
            using var buffer = zeros(n, dtype: ScalarType.Float32);
            for (var i = 0; i < warmup; i++) collectives.AllReduceSum(buffer);
            using var times = zeros(repetitions, dtype: ScalarType.Float64);
            var host = new double[repetitions];
            for (var r = 0; r < repetitions; r++)
            {
                collectives.Barrier();
                watch.Restart();
                collectives.AllReduceSum(buffer);
                watch.Stop();
                host[r] = watch.Elapsed.TotalSeconds;
            }
            using (var filled = tensor(host)) times.copy_(filled);
            collectives.AllReduceAverage(times);
            using (NewDisposeScope())
                if (buffer.abs().max().item<float>() != 0)
                    throw new InvalidOperationException($"allreduce of {n} zeros did not give zeros: the transport is broken");
            result.Add(new AllreduceTiming(n, times.data<double>().ToArray()));
        }
        return result;
    }

    /// <summary>
    /// Times SGD steps (Nesterov 0.9, batch <paramref name="batchSize"/> of synthetic 28x28 images) of a zoo network in
    /// this process on the current thread setting: the compute one data-parallel rank or one Parle replica does per step.
    /// </summary>
    public static ComputeTiming MeasureCompute(string network, int batchSize, int steps, int warmup, long seed)
    {
        var info = ModelZoo.Describe(network);
        if (info.Kind != ModelKind.Classifier) throw new ArgumentException($"--networks {network}: the benchmark trains image classifiers");
        TorchRuntime.Seed(seed);
        using var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(network, new ModelOptions());
        model.train();
        var data = OptimizerBenchmark.SyntheticImages(new OptimizerBenchmarkOptions { Model = network, BatchSize = batchSize, Samples = Math.Max(8192, batchSize), Seed = seed }, CPU);
        using var task = new ClassificationTask(model, data, batchSize, seed);
        using var sgd = new SgdOptimizer(model.parameters(), 0.01, momentum: 0.9, nesterov: true);
        Tensor Closure()
        {
            sgd.zero_grad();
            var mb = task.NextTrainingLoss();
            mb.Loss.backward();
            return mb.Loss;
        }
        var times = new List<double>();
        var watch = new Stopwatch();
        for (var s = 0; s < warmup + steps; s++)
        {
            watch.Restart();
            using (NewDisposeScope()) sgd.step(Closure);
            watch.Stop();
            if (s >= warmup) times.Add(watch.Elapsed.TotalSeconds);
        }
        return new ComputeTiming(network, ModelZoo.CountParameters(model), batchSize, times);
    }

    /// <summary>
    /// Weak scaling (b images per rank per step) from the measured compute per step and a ring allreduce of the float32
    /// parameter vector on <paramref name="link"/>: data-parallel pays one allreduce per step, Parle one per
    /// <paramref name="parleL"/> steps. Compute and communication are not overlapped (the trainer does not overlap
    /// them), and per-rank compute is assumed not to slow down with K.
    /// </summary>
    public static ScalingPrediction Predict(ComputeTiming compute, NetworkLink link, int ranks, int parleL)
    {
        var tc = compute.MedianSeconds;
        var bytes = compute.Parameters * (double)sizeof(float);
        var t = link.RingAllreduceSeconds(bytes, ranks);
        var images = (double)ranks * compute.BatchSize;
        return new ScalingPrediction(compute.Network, link.Name, ranks, t, tc, images / (tc + t), images / (tc + t / parleL), compute.BatchSize / tc);
    }

    /// <summary>
    /// The allreduce time at which data-parallel training falls to <paramref name="efficiency"/> of linear scaling
    /// (t_c (1 - e) / e), and Parle's (L times longer).
    /// </summary>
    public static (double DataParallel, double Parle) AllreduceBudget(ComputeTiming compute, double efficiency, int parleL)
    {
        var dp = compute.MedianSeconds * (1 - efficiency) / efficiency;
        return (dp, dp * parleL);
    }

    /// <summary>The training modes whose throughput the benchmark measures.</summary>
    public static IReadOnlyList<string> TrainingModes { get; } = ["single", DistributedTraining.DataParallelName, DistributedTraining.ParleName];

    /// <summary>
    /// Trains <paramref name="network"/> through the library's own run set-up and trainer (as `train` does, no files
    /// written, no test evaluation) on the first <paramref name="trainSamples"/> Fashion-MNIST images, and times the
    /// gradient evaluations after the first <paramref name="warmupEvaluations"/>: mode "single" is one process with
    /// SGD, "data-parallel" shards each minibatch of <paramref name="batchSize"/> per rank over the ranks of
    /// <paramref name="collectives"/>, "parle" runs one Parle replica per rank (its defaults, L = 25). Returns the
    /// images all ranks processed in the timed part and its wall seconds (rank 0's clock); every rank must call it.
    /// </summary>
    public static (double Images, double Seconds) MeasureTrainingThroughput(ICollectives collectives, string network, string mode, int batchSize,
        int timedEvaluations, int warmupEvaluations, int trainSamples, string? dataDir, long seed)
    {
        if (!TrainingModes.Contains(mode)) throw new ArgumentException($"--mode {mode}: expected {string.Join(", ", TrainingModes)}");
        var ranks = collectives.Size;
        var parle = mode == DistributedTraining.ParleName;
        // A Parle step makes L gradient evaluations (plus a diagnostic one every 10th step), and the timing starts and
        // stops on step boundaries: one step's worth of slack keeps at least the asked-for evaluations timed.
        var evaluationsPerStep = parle ? new ParleOptions().LocalEntropy.L + 1 : 1;
        var evaluations = warmupEvaluations + timedEvaluations + 2 * evaluationsPerStep;
        // Gradient evaluations to effective epochs: a data-parallel evaluation covers K minibatches of the shared
        // stream, a replica's covers one of its own.
        var imagesPerEvaluation = mode == DistributedTraining.DataParallelName ? (double)ranks * batchSize : batchSize;
        var config = new RunConfig
        {
            Model = network,
            Optimizer = parle ? "parle" : "sgd",
            BatchSize = batchSize,
            Epochs = 1_000,
            EffectiveEpochBudget = evaluations * imagesPerEvaluation / trainSamples,
            MaxTrainSamples = trainSamples,
            DataDir = dataDir,
            Seed = seed,
            Threads = 1,
            TensorBoard = false,
            Distributed = mode == "single" ? null : mode,
        };
        using var run = RunSetup.Prepare(config, null, null, mode == "single" ? null : collectives);
        var trainer = new Trainer(run.Task, run.Optimizer, run.TrainerOptions with { EvaluateTest = false, EvaluateTrainingSet = false, WriteCheckpoints = false });
        var watch = new Stopwatch();
        long startEvaluations = -1, endEvaluations = 0;
        double lastReading = 0;
        trainer.StepCompleted = _ =>
        {
            if (startEvaluations < 0)
            {
                if (trainer.GradEvals < warmupEvaluations) return;
                startEvaluations = trainer.GradEvals;
                watch.Restart();
                return;
            }
            endEvaluations = trainer.GradEvals;
            lastReading = watch.Elapsed.TotalSeconds;
        };
        trainer.Run();
        if (startEvaluations < 0 || endEvaluations <= startEvaluations)
            throw new InvalidOperationException($"{network} {mode}: too few steps to time ({trainer.GradEvals} gradient evaluations, {warmupEvaluations} of them warm-up)");
        // Data-parallel counts global evaluations (K shards each); replicas count their own, K of them side by side.
        var images = (endEvaluations - startEvaluations) * (double)batchSize * ranks;
        return (images, lastReading);
    }

    /// <summary>The allreduce timings as JSON.</summary>
    public static JsonArray ToJson(IReadOnlyList<AllreduceTiming> timings) =>
        new(timings.Select(t => (JsonNode)new JsonObject
        {
            ["elements"] = t.Elements,
            ["bytes"] = t.Bytes,
            ["median_seconds"] = t.MedianSeconds,
            ["seconds"] = new JsonArray(t.Seconds.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
        }).ToArray());

    /// <summary>Reads what <see cref="ToJson(IReadOnlyList{AllreduceTiming})"/> wrote.</summary>
    public static IReadOnlyList<AllreduceTiming> AllreduceFromJson(JsonArray array) =>
        array.Select(n => new AllreduceTiming(n!["elements"]!.GetValue<long>(),
            n["seconds"]!.AsArray().Select(s => s!.GetValue<double>()).ToList())).ToList();

    /// <summary>A fitted bandwidth for people: GB/s, or why there is none (the times did not grow with the size).</summary>
    public static string Bandwidth(double bytesPerSecond) => double.IsFinite(bytesPerSecond)
        ? (bytesPerSecond / 1e9).ToString("0.##", C) + " GB/s"
        : "not measurable (the times did not grow with the message size: time larger messages)";

    /// <summary>Seconds as a short human unit.</summary>
    public static string Time(double seconds) => seconds switch
    {
        < 1e-3 => (seconds * 1e6).ToString("0.#", C) + " us",
        < 1 => (seconds * 1e3).ToString("0.##", C) + " ms",
        _ => seconds.ToString("0.##", C) + " s",
    };

    /// <summary>Bytes as a short human unit.</summary>
    public static string Size(double bytes) => bytes switch
    {
        < 1024 => bytes.ToString("0", C) + " B",
        < 1024 * 1024 => (bytes / 1024).ToString("0.#", C) + " KiB",
        _ => (bytes / 1024 / 1024).ToString("0.#", C) + " MiB",
    };

    /// <summary>The allreduce table and fit as Markdown lines.</summary>
    public static IEnumerable<string> AllreduceMarkdown(IReadOnlyList<AllreduceTiming> timings, AllreduceFit fit, int ranks)
    {
        yield return $"Fit: T(bytes) = {Time(fit.LatencySeconds)} + bytes / bandwidth, bandwidth {Bandwidth(fit.BytesPerSecond)}; " +
                     $"least squares on the relative error of the medians; {ranks} ranks.";
        yield return "";
        yield return "| message | median | fit | fit / median | effective bandwidth |";
        yield return "|---|---|---|---|---|";
        foreach (var t in timings)
        {
            var model = fit.Seconds(t.Bytes);
            yield return $"| {Size(t.Bytes)} ({t.Elements.ToString("N0", C)} floats) | {Time(t.MedianSeconds)} | {Time(model)} | " +
                         $"{(model / t.MedianSeconds).ToString("0.00", C)} | {(t.Bytes / t.MedianSeconds / 1e9).ToString("0.###", C)} GB/s |";
        }
    }

    /// <summary>The scaling table as Markdown lines.</summary>
    public static IEnumerable<string> ScalingMarkdown(IReadOnlyList<ScalingPrediction> predictions)
    {
        yield return "| network | link | ranks | allreduce of the weights | compute per step | data-parallel images/s (efficiency) | Parle images/s (efficiency) | Parle / data-parallel |";
        yield return "|---|---|---|---|---|---|---|---|";
        foreach (var p in predictions)
            yield return $"| {p.Network} | {p.Link} | {p.Ranks} | {Time(p.AllreduceSeconds)} | {Time(p.ComputeSeconds)} | " +
                         $"{p.DataParallelImagesPerSecond.ToString("N0", C)} ({p.DataParallelEfficiency.ToString("P0", C)}) | " +
                         $"{p.ParleImagesPerSecond.ToString("N0", C)} ({p.ParleEfficiency.ToString("P0", C)}) | " +
                         $"{(p.ParleImagesPerSecond / p.DataParallelImagesPerSecond).ToString("0.00", C)}x |";
    }

    /// <summary>Joins lines with newlines.</summary>
    public static string Lines(IEnumerable<string> lines)
    {
        var b = new StringBuilder();
        foreach (var l in lines) b.Append(l).Append('\n');
        return b.ToString();
    }
}
