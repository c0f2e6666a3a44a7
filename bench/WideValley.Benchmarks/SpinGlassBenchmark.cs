using System.Diagnostics;
using System.Globalization;
using System.Text;
using WideValley.SpinGlass;
using static TorchSharp.torch;

namespace WideValley.Benchmarks;

/// <summary>What <see cref="SpinGlassBenchmark"/> measures.</summary>
public sealed record SpinGlassBenchmarkOptions
{
    /// <summary>N, spins (issue 17's target: 500).</summary>
    public int Size { get; init; } = 500;
    /// <summary>K, starts in the batch (issue 17's target: 1,000).</summary>
    public int Starts { get; init; } = 1000;
    /// <summary>p, the order of the interaction.</summary>
    public int Order { get; init; } = 3;
    /// <summary>Timed rounds; each times one energy+gradient step and one plain product.</summary>
    public int Rounds { get; init; } = 5;
    /// <summary>Untimed rounds first.</summary>
    public int WarmupRounds { get; init; } = 1;
    /// <summary>libtorch threads (0: its default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the couplings and the points.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the option.</summary>
    public void Validate()
    {
        if (Size < 2) throw new ArgumentException($"--n must be at least 2, got {Size}");
        if (Starts < 1) throw new ArgumentException($"--starts must be at least 1, got {Starts}");
        if (Order < 2) throw new ArgumentException($"--p must be at least 2, got {Order}");
        if (Rounds < 1) throw new ArgumentException($"--rounds must be at least 1, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
    }
}

/// <summary>
/// Result of <see cref="SpinGlassBenchmark"/>: medians in milliseconds, the ratio of the step to the product, and the
/// rate of each in GFLOP/s counted as the product's 2·K·N^p multiply-adds.
/// </summary>
public sealed record SpinGlassBenchmarkResult
{
    /// <summary>N.</summary>
    public required int Size { get; init; }
    /// <summary>K.</summary>
    public required int Starts { get; init; }
    /// <summary>p.</summary>
    public required int Order { get; init; }
    /// <summary>Median of one batched <see cref="SphericalPSpinGlass.EnergyAndGradient"/> over [K, N] points.</summary>
    public required double StepMs { get; init; }
    /// <summary>Median of one plain torch.mm of [K, N] by [N, N^(p−1)] (allocating its result, as a caller would).</summary>
    public required double ProductMs { get; init; }
    /// <summary>Step over product (issue 17's target: at most 2).</summary>
    public required double Ratio { get; init; }
    /// <summary>2·K·N^p / step time, in 10⁹ per second.</summary>
    public required double StepGflops { get; init; }
    /// <summary>2·K·N^p / product time, in 10⁹ per second.</summary>
    public required double ProductGflops { get; init; }
    /// <summary>Every timed step, ms.</summary>
    public required IReadOnlyList<double> StepTimesMs { get; init; }
    /// <summary>Every timed product, ms.</summary>
    public required IReadOnlyList<double> ProductTimesMs { get; init; }
    /// <summary>Row chunk budget of the glass (its [rows, N^(p−1)] intermediate stays under it).</summary>
    public required long WorkspaceBytes { get; init; }
    /// <summary>Share of the machine's CPU used by other processes while the timed rounds ran (null: not measurable).</summary>
    public double? OtherProcessesCpuShare { get; init; }
    /// <summary>Timed rounds.</summary>
    public required int Rounds { get; init; }
    /// <summary>Untimed rounds.</summary>
    public required int WarmupRounds { get; init; }
    /// <summary>libtorch threads in use.</summary>
    public required int Threads { get; init; }
}

/// <summary>
/// Issue 17's speed target for the spin glass: one batched energy+gradient step of K starts at N spins against a plain
/// matrix product of the same size, [K, N]·[N, N^(p−1)], which is the step's dominant cost (the library contracts the
/// symmetrised couplings with the points by exactly that product, chunked over rows, then reduces). The two are timed
/// alternately round by round, so load from elsewhere on a shared machine affects both alike; medians are reported.
/// </summary>
public static class SpinGlassBenchmark
{
    /// <summary>Other processes using more than this share of the CPU make the summary call the machine shared.</summary>
    const double SharedCpuShare = 0.05;

    /// <summary>Runs the benchmark; <paramref name="progress"/> hears of each round.</summary>
    /// <exception cref="ArgumentException">Invalid options.</exception>
    /// <exception cref="InsufficientMemoryException">The couplings, the product's operands and its result do not fit.</exception>
    public static SpinGlassBenchmarkResult Run(SpinGlassBenchmarkOptions options, Action<string>? progress = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        // Peak: the glass's raw draw and symmetrised couplings, the product's right operand (N^p) and its result
        // (K·N^(p−1) = K/N coupling-sized tensors).
        CouplingMemoryPlan.For(options.Size, options.Order, ScalarType.Float32, 3 + (int)Math.Ceiling(options.Starts / (double)options.Size))
            .ThrowIfTooLarge("bench spin-glass");
        using var glass = SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = options.Size, Order = options.Order, Seed = options.Seed });
        using var points = Sphere.RandomPoints(options.Starts, options.Size, options.Seed + 1);
        var columns = (long)Math.Pow(options.Size, options.Order - 1);
        using var generator = new Generator((ulong)options.Seed + 2);
        using var left = randn([options.Starts, options.Size], generator: generator);
        using var right = randn([options.Size, columns], generator: generator);

        var stepTimes = new List<double>();
        var productTimes = new List<double>();
        var watch = new Stopwatch();
        CpuShare? cpu = null;
        for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
        {
            var timed = round >= options.WarmupRounds;
            if (round == options.WarmupRounds) cpu = CpuShare.Start();
            watch.Restart();
            using (NewDisposeScope())
            {
                var (energy, gradient) = glass.EnergyAndGradient(points);
                // Reading one number waits for the work (CPU ops are synchronous; this keeps it honest on other devices).
                _ = energy[0].item<float>() + gradient[0, 0].item<float>();
            }
            watch.Stop();
            var stepMsThisRound = watch.Elapsed.TotalMilliseconds;
            if (timed) stepTimes.Add(stepMsThisRound);
            watch.Restart();
            using (NewDisposeScope())
            {
                var product = mm(left, right);
                _ = product[0, 0].item<float>();
            }
            watch.Stop();
            var productMsThisRound = watch.Elapsed.TotalMilliseconds;
            if (timed) productTimes.Add(productMsThisRound);
            progress?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"round {round + 1}/{options.WarmupRounds + options.Rounds}{(timed ? "" : " (warm-up)")}: step {stepMsThisRound:0.0} ms, product {productMsThisRound:0.0} ms"));
        }
        var share = cpu?.OtherProcessesShare();
        var stepMs = Medians.Of(stepTimes);
        var productMs = Medians.Of(productTimes);
        var flops = 2.0 * options.Starts * Math.Pow(options.Size, options.Order);
        return new SpinGlassBenchmarkResult
        {
            Size = options.Size,
            Starts = options.Starts,
            Order = options.Order,
            StepMs = stepMs,
            ProductMs = productMs,
            Ratio = stepMs / productMs,
            StepGflops = flops / (stepMs * 1e6),
            ProductGflops = flops / (productMs * 1e6),
            StepTimesMs = stepTimes,
            ProductTimesMs = productTimes,
            WorkspaceBytes = glass.WorkspaceBytes,
            OtherProcessesCpuShare = share,
            Rounds = options.Rounds,
            WarmupRounds = options.WarmupRounds,
            Threads = get_num_threads(),
        };
    }

    /// <summary>What the command prints.</summary>
    public static IEnumerable<string> Summary(SpinGlassBenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        yield return string.Format(c, "spin glass p = {0}, N = {1}, K = {2}: energy+gradient step {3:0.0} ms ({4:0.0} GFLOP/s), plain [{2}, {1}]·[{1}, {5}] product {6:0.0} ms ({7:0.0} GFLOP/s)",
            r.Order, r.Size, r.Starts, r.StepMs, r.StepGflops, Math.Pow(r.Size, r.Order - 1), r.ProductMs, r.ProductGflops);
        yield return string.Format(c, "ratio step/product {0:0.00} (target at most 2: {1}); medians of {2} rounds after {3} warm-up, {4} threads",
            r.Ratio, r.Ratio <= 2 ? "met" : "NOT met", r.Rounds, r.WarmupRounds, r.Threads);
        yield return Load(r);
    }

    /// <summary>One sentence on how loaded the machine was.</summary>
    public static string Load(SpinGlassBenchmarkResult r) => r.OtherProcessesCpuShare switch
    {
        double share when share > SharedCpuShare => string.Create(CultureInfo.InvariantCulture,
            $"the machine was shared: other processes used {100 * share:0}% of its CPU while this ran (both timings are affected alike; the ratio is the robust number)"),
        double share => string.Create(CultureInfo.InvariantCulture, $"the machine was otherwise idle (other processes used {100 * share:0.0}% of its CPU)"),
        _ => "other processes' CPU use could not be measured here (no /proc/stat)",
    };

    /// <summary>A Markdown page with the numbers, for docs/results.</summary>
    public static string Markdown(SpinGlassBenchmarkResult r, string commandLine, string machine)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Benchmark: batched spin-glass energy+gradient step against a plain matrix product").AppendLine();
        md.AppendLine("```sh").AppendLine(commandLine).AppendLine("```").AppendLine();
        md.AppendLine($"Machine: {machine}.").AppendLine();
        md.AppendLine(char.ToUpperInvariant(Load(r)[0]) + Load(r)[1..] + ".").AppendLine();
        md.AppendLine(string.Format(c, "One `SphericalPSpinGlass.EnergyAndGradient` of K = {0} points at N = {1}, p = {2} (float32, CPU, the symmetrised couplings " +
                                       "contracted with the points by one [K, N]·[N, N^(p−1)] product chunked over rows to {3} MiB, then reduced), timed alternately " +
                                       "with one plain `torch.mm` of [{0}, {1}] by [{1}, {4}] (random operands, allocating its {5:0.##} GB result). Rates count " +
                                       "2·K·N^p = {6:0.###}·10⁹ floating-point operations for both.",
            r.Starts, r.Size, r.Order, r.WorkspaceBytes / (1024 * 1024), Math.Pow(r.Size, r.Order - 1), r.Starts * Math.Pow(r.Size, r.Order - 1) * 4 / 1e9,
            2.0 * r.Starts * Math.Pow(r.Size, r.Order) / 1e9)).AppendLine();
        md.AppendLine("| | median ms | GFLOP/s | all timed rounds (ms) |");
        md.AppendLine("|---|---|---|---|");
        md.AppendLine(string.Format(c, "| energy+gradient step | {0:0.0} | {1:0.0} | {2} |", r.StepMs, r.StepGflops, string.Join(", ", r.StepTimesMs.Select(t => t.ToString("0", c)))));
        md.AppendLine(string.Format(c, "| plain product | {0:0.0} | {1:0.0} | {2} |", r.ProductMs, r.ProductGflops, string.Join(", ", r.ProductTimesMs.Select(t => t.ToString("0", c)))));
        md.AppendLine();
        md.AppendLine(string.Format(c, "**Ratio step / product: {0:0.00}** (the target: within 2x, {1}). Medians of {2} rounds after {3} warm-up round(s), {4} libtorch threads.",
            r.Ratio, r.Ratio <= 2 ? "met" : "not met", r.Rounds, r.WarmupRounds, r.Threads));
        return md.ToString();
    }
}
