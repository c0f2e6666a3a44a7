using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WideValley.Landscape;
using WideValley.Models;
using static TorchSharp.torch;

using WideValley.Experiments;

namespace WideValley.Benchmarks;

/// <summary>What to measure in <see cref="HessianBenchmark"/>.</summary>
public sealed record HessianBenchmarkOptions
{
    /// <summary>An image classifier from the model zoo (mnistfc, lenet, small-lenet, ...).</summary>
    public string Model { get; init; } = "mnistfc";
    /// <summary>Samples in the fixed evaluation set the Hessian is taken over.</summary>
    public int Samples { get; init; } = 1000;
    public int BatchSize { get; init; } = 500;
    /// <summary>Timed repetitions of the gradient and of the HVP (medians are reported).</summary>
    public int Rounds { get; init; } = 7;
    public int WarmupRounds { get; init; } = 2;
    /// <summary>Eigenvalues Lanczos is asked for (the largest algebraic ones).</summary>
    public int Top { get; init; } = 20;
    /// <summary>
    /// Lanczos tolerance on each eigenvalue's error bound (min(r, r^2/gap)), relative to the largest Ritz value; the
    /// product count under the plain residual rule is measured as well.
    /// </summary>
    public double Tolerance { get; init; } = 1e-3;
    public int Threads { get; init; }
    public long Seed { get; init; } = 1;

    public void Validate()
    {
        if (ModelZoo.Describe(Model).Kind != ModelKind.Classifier)
            throw new ArgumentException($"--model {Model}: the Hessian benchmark needs an image classifier, e.g. mnistfc or lenet");
        if (Samples < 1) throw new ArgumentException($"--samples must be at least 1, got {Samples}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Top < 1) throw new ArgumentException($"--top must be at least 1, got {Top}");
        if (!(Tolerance > 0 && Tolerance < 1)) throw new ArgumentException($"--tolerance must be in (0, 1), got {Tolerance}");
    }
}

/// <summary>Result of <see cref="HessianBenchmark"/>; times are medians in milliseconds.</summary>
public sealed record HessianBenchmarkResult(
    string Model, long Parameters, int Samples, double GradMs, double HvpMs, double HvpOverGrad,
    int Top, double Tolerance, long LanczosHvps, bool LanczosConverged, double LanczosSeconds, double LambdaMax,
    double LanczosMaxErrorBound, long LanczosHvpsResidualRule, bool LanczosResidualRuleConverged, int Threads, string Data);

/// <summary>
/// The cost of a Hessian-vector product against a gradient over the same fixed evaluation set, and the number of
/// products Lanczos needs for the top eigenvalues. Synthetic data (standard normal images, uniform labels) at the
/// network's seeded initialisation: the costs do not depend on the pixel values, and the benchmark runs anywhere.
/// </summary>
public static class HessianBenchmark
{
    public static HessianBenchmarkResult Run(HessianBenchmarkOptions options)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        TorchRuntime.Seed(options.Seed);
        using var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(options.Model, new ModelOptions());
        using var generator = new Generator((ulong)options.Seed);
        using var inputs = randn([options.Samples, 1, 28, 28], generator: generator);
        using var labels = randint(0, 10, [options.Samples], dtype: ScalarType.Int64, generator: generator);
        var batches = new List<(Tensor Inputs, Tensor Labels)>();
        for (var start = 0; start < options.Samples; start += options.BatchSize)
        {
            var n = Math.Min(options.BatchSize, options.Samples - start);
            batches.Add((inputs.narrow(0, start, n), labels.narrow(0, start, n)));
        }
        using var hvp = new Hvp(model, batches);
        using var v = randn(hvp.Dimension, generator: generator);
        var gradTimes = new List<double>();
        var hvpTimes = new List<double>();
        var watch = new Stopwatch();
        for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
        {
            var timed = round >= options.WarmupRounds;
            watch.Restart();
            using (NewDisposeScope()) hvp.Gradient();
            watch.Stop();
            if (timed) gradTimes.Add(watch.Elapsed.TotalMilliseconds);
            watch.Restart();
            using (NewDisposeScope()) hvp.Apply(v);
            watch.Stop();
            if (timed) hvpTimes.Add(watch.Elapsed.TotalMilliseconds);
        }
        var lanczosOptions = new LanczosOptions
        {
            Tolerance = options.Tolerance, Seed = options.Seed, MaxIterations = 1000, StoppingRule = LanczosStoppingRule.ErrorBound,
        };
        var before = hvp.HvpCount;
        watch.Restart();
        var lanczos = Lanczos.Run(hvp, options.Top, SpectrumEnd.Largest, lanczosOptions);
        watch.Stop();
        var lanczosHvps = hvp.HvpCount - before;
        var lanczosSeconds = watch.Elapsed.TotalSeconds;
        before = hvp.HvpCount;
        var byResidual = Lanczos.Run(hvp, options.Top, SpectrumEnd.Largest, lanczosOptions with { StoppingRule = LanczosStoppingRule.Residual });
        var residualHvps = hvp.HvpCount - before;
        var gradMs = Medians.Of(gradTimes);
        var hvpMs = Medians.Of(hvpTimes);
        foreach (var (x, y) in batches) { x.Dispose(); y.Dispose(); }
        return new HessianBenchmarkResult(options.Model, hvp.Dimension, options.Samples, gradMs, hvpMs, hvpMs / gradMs,
            options.Top, options.Tolerance, lanczosHvps, lanczos.Converged, lanczosSeconds, lanczos.Eigenvalues[0],
            lanczos.ErrorBounds.Max(), residualHvps, byResidual.Converged, get_num_threads(), $"synthetic {options.Samples} x 1x28x28, seeded initialisation");
    }

    /// <summary>The result as one plain text line.</summary>
    public static string Summary(HessianBenchmarkResult r) => string.Format(CultureInfo.InvariantCulture,
        "{0}: gradient {1:0.0} ms, HVP {2:0.0} ms (x{3:0.00}); Lanczos top {4}: {5} HVPs to error bound, {6}converged, {7:0.0} s, lambda_max {8:0.####}; {9} HVPs to residual",
        r.Model, r.GradMs, r.HvpMs, r.HvpOverGrad, r.Top, r.LanczosHvps, r.LanczosConverged ? "" : "not ", r.LanczosSeconds, r.LambdaMax,
        r.LanczosHvpsResidualRule);
}
