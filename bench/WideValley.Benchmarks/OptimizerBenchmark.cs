using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;
using static TorchSharp.torch;

using WideValley.Experiments;

namespace WideValley.Benchmarks;

/// <summary>What to measure in <see cref="OptimizerBenchmark"/>.</summary>
public sealed record OptimizerBenchmarkOptions
{
    /// <summary>An image classifier from the model zoo (mnistfc, lenet, small-lenet, ...).</summary>
    public string Model { get; init; } = "mnistfc";
    /// <summary>Langevin steps per Entropy-SGD step.</summary>
    public int L { get; init; } = 20;
    public int BatchSize { get; init; } = 128;
    /// <summary>Timed rounds; each times L SGD steps (together and one by one), then one Entropy-SGD step.</summary>
    public int Rounds { get; init; } = 30;
    /// <summary>Untimed rounds first (allocator, thread pool and JIT warm-up).</summary>
    public int WarmupRounds { get; init; } = 3;
    public int Threads { get; init; }
    public string Device { get; init; } = "cpu";
    public long Seed { get; init; } = 1;
    /// <summary>Samples in the synthetic training set the minibatches are drawn from.</summary>
    public int Samples { get; init; } = 8192;

    public void Validate()
    {
        var info = ModelZoo.Describe(Model);
        if (info.Kind != ModelKind.Classifier)
            throw new ArgumentException($"--model {Model}: the optimizer benchmark needs an image classifier, e.g. mnistfc or lenet");
        if (L < 1) throw new ArgumentException($"-L must be at least 1, got {L}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be positive, got {BatchSize}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Samples < BatchSize) throw new ArgumentException($"--samples ({Samples}) must be at least the batch size ({BatchSize})");
    }
}

/// <summary>
/// Result of <see cref="OptimizerBenchmark"/>. Times are medians in milliseconds; <see cref="Ratio"/> is the
/// Entropy-SGD step over L SGD steps, i.e. what the Langevin loop costs on top of the L gradient evaluations it must make.
/// </summary>
public sealed record OptimizerBenchmarkResult
{
    public required string Model { get; init; }
    public required int L { get; init; }
    public required long Parameters { get; init; }
    public required int BatchSize { get; init; }
    /// <summary>Median over rounds of (time of L consecutive SGD steps) / L.</summary>
    public required double SgdStepMs { get; init; }
    /// <summary>Median of single SGD steps timed one by one (for reference; not used in the ratio).</summary>
    public required double SgdSingleStepMedianMs { get; init; }
    public required double EntropySgdStepMs { get; init; }
    public required double Ratio { get; init; }
    /// <summary>
    /// Median ms of the Langevin update alone per Langevin step (the chain's L steps with its start and finish, divided
    /// by L), measured separately with a closure that does no gradient work.
    /// </summary>
    public required double LangevinUpdateMs { get; init; }
    /// <summary>
    /// Bytes the Langevin update must move to and from memory per Langevin step: x', g, x0, mu, v read and x', mu, v
    /// written (8 parameter-sized float32 streams with momentum, 6 without) on all but the first step, which reads x' and
    /// g and writes x', x0, mu and v (6 streams; 5 without momentum), plus the finish (x0, mu read; x, .grad written),
    /// spread over the L steps. The noise is generated in cache.
    /// </summary>
    public long LangevinBytesPerStep { get; init; }
    /// <summary><see cref="LangevinBytesPerStep"/> over <see cref="LangevinUpdateMs"/>, in GB/s (10^9 bytes).</summary>
    public double LangevinGBPerSecond { get; init; }
    /// <summary>
    /// Median ms of libtorch's <c>copy_</c> moving the same number of bytes (a read and a write of half of them each):
    /// the memory system's practical limit for the update.
    /// </summary>
    public double CopySameBytesMs { get; init; }
    /// <summary>The copy's GB/s: what the update would reach if it were as cheap as a copy of its bytes.</summary>
    public double CopyGBPerSecond { get; init; }
    /// <summary>Entropy-SGD's optimizer state in parameter-sized buffers (x0, mu, Langevin momentum, outer momentum).</summary>
    public required double EntropySgdStateBuffers { get; init; }
    public required double SgdStateBuffers { get; init; }
    /// <summary>
    /// Growth of the process's resident memory over the timed rounds, in MiB, each reading taken after a full garbage
    /// collection (so that TorchSharp wrappers awaiting finalization do not count).
    /// </summary>
    public required double ResidentGrowthMiB { get; init; }
    public required int Rounds { get; init; }
    public required int WarmupRounds { get; init; }
    public required int Threads { get; init; }
    public required string Device { get; init; }
    public required string Data { get; init; }
    public required string Kernel { get; init; }
    /// <summary>Median over rounds of the time of two consecutive SGD steps (what a SAM step's two gradient evaluations cost as SGD).</summary>
    public double TwoSgdStepsMs { get; init; }
    /// <summary>Median SAM step (rho 0.05, base: the same Nesterov SGD, BatchNorm statistics from the first pass).</summary>
    public double SamStepMs { get; init; }
    /// <summary>Median ASAM step (rho 0.5, eta 0.01, the same base).</summary>
    public double AsamStepMs { get; init; }
    /// <summary><see cref="SamStepMs"/> / <see cref="TwoSgdStepsMs"/> (issue 21's target: at most 1.1).</summary>
    public double SamRatio => SamStepMs / TwoSgdStepsMs;
    /// <summary><see cref="AsamStepMs"/> / <see cref="TwoSgdStepsMs"/> (issue 21's target: at most 1.1).</summary>
    public double AsamRatio => AsamStepMs / TwoSgdStepsMs;
}

/// <summary>
/// Measures the cost of an Entropy-SGD step against the L plain SGD steps whose gradient evaluations it contains (and
/// of a SAM and an ASAM step against two SGD steps, the gradient evaluations they contain), in
/// one process, on the same network and minibatch pipeline the trainer uses. SGD and Entropy-SGD steps are interleaved
/// round by round, so that load from elsewhere on a shared machine affects both alike, and medians are reported.
/// </summary>
/// <remarks>
/// The data are synthetic (standard normal images with uniform labels): the cost of a step does not depend on the
/// pixel values, and the benchmark then runs anywhere. SGD and Entropy-SGD use the paper's MNIST settings (Nesterov
/// momentum 0.9 in both loops, eta' = 0.1, eps = 1e-3, gamma0 = 1e-4, gamma1 = 1e-3) with diagnostics off.
/// </remarks>
public static class OptimizerBenchmark
{
    public static OptimizerBenchmarkResult Run(OptimizerBenchmarkOptions options, Action<string>? progress = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        var device = TorchRuntime.ResolveDevice(options.Device);
        TorchRuntime.Seed(options.Seed);

        var info = ModelZoo.Describe(options.Model);
        nn.Module<Tensor, Tensor> NewModel()
        {
            TorchRuntime.Seed(options.Seed);
            var m = (nn.Module<Tensor, Tensor>)ModelZoo.Create(options.Model, new ModelOptions());
            m.to(device);
            m.train();
            return m;
        }

        using var sgdModel = NewModel();
        using var esgdModel = NewModel();
        var parameters = ModelZoo.CountParameters(sgdModel);
        // Each task owns an identical copy of the data.
        using var sgdTask = new ClassificationTask(sgdModel, SyntheticImages(options, device), options.BatchSize, options.Seed);
        using var esgdTask = new ClassificationTask(esgdModel, SyntheticImages(options, device), options.BatchSize, options.Seed);
        var sampleShape = sgdTask.Data.SampleShape;
        using var sgd = new SgdOptimizer(sgdModel.parameters(), 0.1, momentum: 0.9, nesterov: true);
        var le = new LocalEntropyOptions
        {
            L = options.L,
            Scope = new ExponentialScope(1e-4, 1e-3),
            LangevinLr = 0.1,
            Noise = 1e-3,
            LangevinMomentum = 0.9,
            LangevinNesterov = true,
            Seed = options.Seed,
        };
        using var esgd = new EntropySgd(esgdModel.parameters(), 0.1, le, momentum: 0.9, nesterov: true);
        var sgdClosure = Closure(sgd, sgdTask);
        var esgdClosure = Closure(esgd, esgdTask);
        // SAM and ASAM over the same Nesterov SGD, each on its own copy of the network and data, stepped by a closure
        // that re-evaluates the step's minibatch for the second pass as the trainer's does.
        using var samModel = NewModel();
        using var asamModel = NewModel();
        using var samTask = new ClassificationTask(samModel, SyntheticImages(options, device), options.BatchSize, options.Seed);
        using var asamTask = new ClassificationTask(asamModel, SyntheticImages(options, device), options.BatchSize, options.Seed);
        using var sam = new Sam(new SgdOptimizer(samModel.parameters(), 0.1, momentum: 0.9, nesterov: true), rho: 0.05, model: samModel);
        using var asam = new Sam(new SgdOptimizer(asamModel.parameters(), 0.1, momentum: 0.9, nesterov: true), rho: 0.5, adaptive: true, eta: 0.01, model: asamModel);
        var samClosure = RepeatingClosure(sam, samTask);
        var asamClosure = RepeatingClosure(asam, asamTask);
        var twoSgdTimes = new List<double>();
        var samTimes = new List<double>();
        var asamTimes = new List<double>();

        var sgdBlockTimes = new List<double>();
        var sgdSingleTimes = new List<double>();
        var esgdTimes = new List<double>();
        var watch = new Stopwatch();
        var block = new Stopwatch();
        long residentBefore = 0;
        for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
        {
            var timed = round >= options.WarmupRounds;
            if (round == options.WarmupRounds) residentBefore = ResidentBytesAfterCollection();
            block.Restart();
            for (var l = 0; l < options.L; l++)
            {
                watch.Restart();
                using (NewDisposeScope()) sgd.step(sgdClosure);
                watch.Stop();
                if (timed) sgdSingleTimes.Add(watch.Elapsed.TotalMilliseconds);
            }
            block.Stop();
            if (timed) sgdBlockTimes.Add(block.Elapsed.TotalMilliseconds / options.L);
            watch.Restart();
            using (NewDisposeScope()) esgd.step(esgdClosure);
            watch.Stop();
            if (timed) esgdTimes.Add(watch.Elapsed.TotalMilliseconds);
            block.Restart();
            for (var l = 0; l < 2; l++)
                using (NewDisposeScope()) sgd.step(sgdClosure);
            block.Stop();
            if (timed) twoSgdTimes.Add(block.Elapsed.TotalMilliseconds);
            watch.Restart();
            using (NewDisposeScope()) sam.step(samClosure);
            watch.Stop();
            if (timed) samTimes.Add(watch.Elapsed.TotalMilliseconds);
            watch.Restart();
            using (NewDisposeScope()) asam.step(asamClosure);
            watch.Stop();
            if (timed) asamTimes.Add(watch.Elapsed.TotalMilliseconds);
            progress?.Invoke($"round {round + 1}/{options.WarmupRounds + options.Rounds}{(timed ? "" : " (warm-up)")}");
        }
        var residentGrowth = (ResidentBytesAfterCollection() - residentBefore) / (1024.0 * 1024.0);
        var langevinMs = LangevinUpdateMilliseconds(esgdModel, le, options);
        var langevinBytes = LangevinBytesPerStep(parameters, le);
        var copyMs = CopyMilliseconds(langevinBytes, device, options);

        // Like with like: one stopwatch around L SGD steps against one around an Entropy-SGD step (which makes L
        // gradient evaluations). The median of single steps drops the occasional slow step (GC, OS jitter) that a
        // 20-evaluation Entropy-SGD step almost always contains, and would bias the ratio upwards.
        var sgdMs = Medians.Of(sgdBlockTimes);
        var esgdMs = Medians.Of(esgdTimes);
        return new OptimizerBenchmarkResult
        {
            Model = info.Name,
            L = options.L,
            Parameters = parameters,
            BatchSize = options.BatchSize,
            SgdStepMs = sgdMs,
            SgdSingleStepMedianMs = Medians.Of(sgdSingleTimes),
            EntropySgdStepMs = esgdMs,
            Ratio = esgdMs / (options.L * sgdMs),
            LangevinUpdateMs = langevinMs,
            LangevinBytesPerStep = langevinBytes,
            LangevinGBPerSecond = langevinBytes / (langevinMs * 1e6),
            CopySameBytesMs = copyMs,
            CopyGBPerSecond = langevinBytes / (copyMs * 1e6),
            EntropySgdStateBuffers = (double)esgd.StateElements / parameters,
            SgdStateBuffers = (double)sgd.StateElements / parameters,
            ResidentGrowthMiB = residentGrowth,
            Rounds = options.Rounds,
            WarmupRounds = options.WarmupRounds,
            Threads = get_num_threads(),
            Device = device.ToString(),
            Data = $"synthetic {options.Samples} x {string.Join("x", sampleShape)}",
            Kernel = esgd.Estimator.KernelName,
            TwoSgdStepsMs = Medians.Of(twoSgdTimes),
            SamStepMs = Medians.Of(samTimes),
            AsamStepMs = Medians.Of(asamTimes),
        };
    }

    /// <summary>The result as plain text lines: the step times and ratio, then the Langevin update and the memory.</summary>
    public static IReadOnlyList<string> Summary(OptimizerBenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        return
        [
            string.Format(c, "sgd step {0:0.000} ms, entropy-sgd step {1:0.000} ms, ratio {2:0.000} (entropy-sgd / (L x sgd))",
                r.SgdStepMs, r.EntropySgdStepMs, r.Ratio),
            string.Format(c, "langevin update {0:0.000} ms per step; optimizer state {1:0.##} parameter buffers (sgd: {2:0.##}); resident memory growth {3:0.0} MiB",
                r.LangevinUpdateMs, r.EntropySgdStateBuffers, r.SgdStateBuffers, r.ResidentGrowthMiB),
            string.Format(c, "langevin update moves {0:0.0} MB per step: {1:0.0} GB/s; copy_ of the same bytes {2:0.000} ms, {3:0.0} GB/s (update / copy time {4:0.00})",
                r.LangevinBytesPerStep / 1e6, r.LangevinGBPerSecond, r.CopySameBytesMs, r.CopyGBPerSecond, r.LangevinUpdateMs / r.CopySameBytesMs),
            string.Format(c, "two sgd steps {0:0.000} ms; sam step {1:0.000} ms, ratio {2:0.000}; asam step {3:0.000} ms, ratio {4:0.000} (step / two sgd steps; target <= 1.1)",
                r.TwoSgdStepsMs, r.SamStepMs, r.SamRatio, r.AsamStepMs, r.AsamRatio),
        ];
    }

    /// <summary>
    /// What the trainer's closure does, minus its bookkeeping: zero, draw a minibatch, forward, backward. Both
    /// optimizers clear gradients by setting them to None (SgdOptimizer.zero_grad, and the Langevin estimator before
    /// every call), so neither pays for a clearing pass or an accumulation into zeros.
    /// </summary>
    static Func<Tensor> Closure(optim.Optimizer optimizer, ClassificationTask task) => () =>
    {
        optimizer.zero_grad();
        var mb = task.NextTrainingLoss();
        mb.Loss.backward();
        return mb.Loss;
    };

    /// <summary>
    /// The trainer's closure for SAM: the step's first call draws a minibatch, the second (while the optimizer asks for
    /// a repeat) re-evaluates it at the perturbed weights with the same dropout masks.
    /// </summary>
    static Func<Tensor> RepeatingClosure(Sam optimizer, ClassificationTask task)
    {
        Func<Tensor>? reevaluate = null;
        return () =>
        {
            optimizer.zero_grad();
            Tensor loss;
            if (optimizer.RepeatsMinibatch) loss = reevaluate!();
            else
            {
                var mb = task.NextTrainingLoss();
                reevaluate = mb.Reevaluate;
                loss = mb.Loss;
            }
            loss.backward();
            return loss;
        };
    }

    /// <summary>
    /// The Langevin update alone: L estimator steps whose closure only leaves a fixed gradient in .grad, so that what
    /// remains is the per-element work over x', x0, mu, v and the noise.
    /// </summary>
    static double LangevinUpdateMilliseconds(nn.Module model, LocalEntropyOptions options, OptimizerBenchmarkOptions bench)
    {
        var parameters = model.parameters().ToList();
        using var estimator = new LocalEntropy(parameters, options);
        var gradients = parameters.Select(p => randn_like(p).mul_(1e-3).DetachFromDisposeScope()).ToArray();
        using var loss = zeros(1);
        // The estimator sets .grad to None before each call; the fixed gradients go back (no allocation, no work).
        Tensor NoGradientWork()
        {
            for (var i = 0; i < parameters.Count; i++) parameters[i].grad = gradients[i];
            return loss;
        }
        var times = new List<double>();
        var watch = new Stopwatch();
        for (var r = 0; r < bench.WarmupRounds + bench.Rounds; r++)
        {
            watch.Restart();
            using (NewDisposeScope()) estimator.Estimate(NoGradientWork);
            watch.Stop();
            if (r >= bench.WarmupRounds) times.Add(watch.Elapsed.TotalMilliseconds / options.L);
        }
        foreach (var g in gradients) g.Dispose();
        return Medians.Of(times);
    }

    /// <summary>See <see cref="OptimizerBenchmarkResult.LangevinBytesPerStep"/> (float32 parameters).</summary>
    static long LangevinBytesPerStep(long parameters, LocalEntropyOptions options)
    {
        var momentum = options.LangevinMomentum != 0;
        var perStep = momentum ? 8 : 6;           // x', g, x0, mu (, v) read; x', mu (, v) written
        var firstStep = momentum ? 6 : 5;         // x', g read; x', x0, mu (, v) written (x0 = mu = x, v = 0: nothing to read)
        const int finish = 4;                     // x0, mu read; x, .grad written
        return (long)Math.Round(4.0 * parameters * ((options.L - 1) * perStep + firstStep + finish) / options.L);
    }

    /// <summary>Median ms of libtorch's copy_ between two float32 buffers of half the bytes each (read half, write half).</summary>
    static double CopyMilliseconds(long bytes, Device device, OptimizerBenchmarkOptions bench)
    {
        var elements = bytes / 2 / sizeof(float);
        using var source = randn(elements, device: device);
        using var target = empty(elements, device: device);
        var times = new List<double>();
        var watch = new Stopwatch();
        for (var r = 0; r < bench.WarmupRounds + bench.Rounds; r++)
        {
            watch.Restart();
            target.copy_(source);
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            watch.Stop();
            if (r >= bench.WarmupRounds) times.Add(watch.Elapsed.TotalMilliseconds);
        }
        return Medians.Of(times);
    }

    /// <summary>Standard normal 1x28x28 images with uniform labels: o.Samples to train on, o.BatchSize to test on (also used by <see cref="SoakBenchmark"/>).</summary>
    internal static ClassificationDataset SyntheticImages(OptimizerBenchmarkOptions o, Device device)
    {
        using var generator = new Generator((ulong)o.Seed);
        var inputs = randn([o.Samples, 1, 28, 28], generator: generator);
        var labels = randint(0, 10, [o.Samples], dtype: ScalarType.Int64, generator: generator);
        var testInputs = randn([o.BatchSize, 1, 28, 28], generator: generator);
        var testLabels = randint(0, 10, [o.BatchSize], dtype: ScalarType.Int64, generator: generator);
        return new ClassificationDataset
        {
            Name = "synthetic",
            Train = new LabeledData(inputs.to(device), labels.to(device), 10),
            Test = new LabeledData(testInputs.to(device), testLabels.to(device), 10),
            Source = "generated",
        };
    }

    /// <summary>The working set after two full collections with the pending finalizers between (also used by <see cref="SoakBenchmark"/>).</summary>
    internal static long ResidentBytesAfterCollection()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.WorkingSet64;
    }
}
