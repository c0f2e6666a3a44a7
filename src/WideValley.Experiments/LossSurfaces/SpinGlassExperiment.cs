using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using WideValley.SpinGlass;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Settings of <see cref="SpinGlassExperiment"/> (seed 001, Choromanska et al. Fig. 3): which sizes N, how many starts
/// per size, and the minimiser. <see cref="For"/> gives each budget's values; the minimiser is SAGUN's sgd.lua
/// protocol (projected SGD on split couplings, then a full-gradient finish) at every budget except smoke.
/// </summary>
public sealed record SpinGlassSettings
{
    /// <summary>The budget these settings were made for.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;

    /// <summary>The sizes N (= Λ, the number of spins), ascending.</summary>
    public IReadOnlyList<int> Sizes { get; init; } = [25, 50];

    /// <summary>p, the order of the interaction (the paper's H = 3).</summary>
    public int Order { get; init; } = 3;

    /// <summary>K, random starts per size (the paper's 1,000).</summary>
    public int Starts { get; init; } = 50;

    /// <summary>P, the parts the couplings are split into for the stochastic phase (ours: 10; not in the notes).</summary>
    public int Parts { get; init; } = 10;

    /// <summary>Steps of the stochastic phase; null: SAGUN's 500·P.</summary>
    public int? StochasticSteps { get; init; }

    /// <summary>Most steps of the full-gradient finish (SAGUN's 1,000).</summary>
    public int FinishMaxSteps { get; init; } = 1000;

    /// <summary>A start stops when its projected gradient norm falls below this (SAGUN's 0.01).</summary>
    public double GradientTolerance { get; init; } = 0.01;

    /// <summary>End points (the first this-many of each size) whose index is computed from the exact tangent Hessian in float64.</summary>
    public int IndexedStarts { get; init; } = 20;

    /// <summary>Overlap q = w·w'/N at or above which two end points count as one minimum.</summary>
    public double OverlapThreshold { get; init; } = DistinctMinima.DefaultThreshold;

    /// <summary>The seed every coupling draw, start and split of the run is derived from.</summary>
    public long Seed { get; init; }

    /// <summary>Each budget's sizes, starts and steps (stated in the report).</summary>
    public static SpinGlassSettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new SpinGlassSettings
        {
            Budget = budget, Sizes = [25, 50], Starts = 50, Parts = 2, StochasticSteps = 40, FinishMaxSteps = 200, IndexedStarts = 5,
        },
        Budget.Small => new SpinGlassSettings { Budget = budget, Sizes = [25, 50, 100, 250], Starts = 200, IndexedStarts = 20 },
        // The paper's sizes and 1,000 starts, but the stochastic phase cut from SAGUN's 500·P = 5,000 steps to 1,000:
        // at N = 500 one step of 1,000 starts is 250 GFLOP (about 2 s on this machine's two cores), so SAGUN's length
        // would take about 3.5 hours for that size alone. The step-size schedule is unchanged (it ends at
        // γ0/2.5 instead of γ0/8.5); the small budget keeps the full 5,000 steps, so N = 25..250 compare the two.
        Budget.Paper => new SpinGlassSettings { Budget = budget, Sizes = [25, 50, 100, 250, 500], Starts = 1000, StochasticSteps = 1000, IndexedStarts = 20 },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>Steps of the stochastic phase actually taken.</summary>
    public int StochasticStepCount => StochasticSteps ?? 500 * Parts;

    /// <summary>Seed of the couplings of size <paramref name="n"/>.</summary>
    public long CouplingSeed(int n) => unchecked(Seed * 1_000_003 + n);

    /// <summary>Seed of the starts of size <paramref name="n"/>.</summary>
    public long StartSeed(int n) => unchecked(Seed * 1_000_003 + 100_000 + n);

    /// <summary>Seed of the coupling split of size <paramref name="n"/>.</summary>
    public long SplitSeed(int n) => unchecked(Seed * 1_000_003 + 200_000 + n);

    /// <summary>
    /// Everything that decides a size's numbers except N, in one line: a finished piece is reused only when it was made
    /// with the same key.
    /// </summary>
    public string Key => string.Create(CultureInfo.InvariantCulture,
        $"p={Order};K={Starts};P={Parts};S={StochasticStepCount};finish={FinishMaxSteps};tol={GradientTolerance:R};indexed={IndexedStarts};q={OverlapThreshold:R};seed={Seed}");

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Sizes);
        if (Sizes.Count == 0) throw new ArgumentException("SpinGlassSettings.Sizes: at least one size N is needed");
        if (Sizes.Any(n => n < 2)) throw new ArgumentException($"SpinGlassSettings.Sizes: every N must be at least 2, got {string.Join(", ", Sizes)}");
        if (Sizes.Distinct().Count() != Sizes.Count || !Sizes.SequenceEqual(Sizes.Order()))
            throw new ArgumentException($"SpinGlassSettings.Sizes: sizes must be distinct and ascending, got {string.Join(", ", Sizes)}");
        if (Order < 2) throw new ArgumentException($"SpinGlassSettings.Order: p must be at least 2, got {Order}");
        if (Starts < 2) throw new ArgumentException($"SpinGlassSettings.Starts: at least 2 starts per size are needed (for a spread), got {Starts}");
        if (Parts < 2) throw new ArgumentException($"SpinGlassSettings.Parts: at least 2 coupling parts are needed, got {Parts}");
        if (StochasticSteps is < 0) throw new ArgumentException($"SpinGlassSettings.StochasticSteps: must not be negative, got {StochasticSteps}");
        if (FinishMaxSteps < 1) throw new ArgumentException($"SpinGlassSettings.FinishMaxSteps: at least 1, got {FinishMaxSteps}");
        if (!(GradientTolerance > 0) || !double.IsFinite(GradientTolerance))
            throw new ArgumentException($"SpinGlassSettings.GradientTolerance: must be positive and finite, got {GradientTolerance}");
        if (IndexedStarts < 0 || IndexedStarts > Starts)
            throw new ArgumentException($"SpinGlassSettings.IndexedStarts: must lie in [0, {Starts}] (the starts), got {IndexedStarts}");
        if (!(OverlapThreshold > 0 && OverlapThreshold <= 1))
            throw new ArgumentException($"SpinGlassSettings.OverlapThreshold: must lie in (0, 1], got {OverlapThreshold}");
    }
}

/// <summary>
/// What one size N gave: every start's end point summarised (energy per spin, projected gradient norm, steps,
/// whether it met the tolerance), the index of the first <see cref="SpinGlassSettings.IndexedStarts"/> end points, and
/// how many distinct minima the K end points are. One such record is one finished piece on disk.
/// </summary>
public sealed record SpinGlassSizeResult
{
    /// <summary>The settings key it was computed under (<see cref="SpinGlassSettings.Key"/>).</summary>
    public required string Key { get; init; }
    /// <summary>N, the number of spins.</summary>
    public required int Size { get; init; }
    /// <summary>Seed of the couplings.</summary>
    public required long CouplingSeed { get; init; }
    /// <summary>Seed of the starts.</summary>
    public required long StartSeed { get; init; }
    /// <summary>Seed of the coupling split.</summary>
    public required long SplitSeed { get; init; }
    /// <summary>H/N at each end point.</summary>
    public required double[] EnergyPerSpin { get; init; }
    /// <summary>|projected gradient| at each end point.</summary>
    public required double[] GradientNorm { get; init; }
    /// <summary>Steps per start, both phases.</summary>
    public required int[] Steps { get; init; }
    /// <summary>Whether each start met the gradient tolerance.</summary>
    public required bool[] Converged { get; init; }
    /// <summary>The index (negative tangent-Hessian eigenvalues below −10⁻³) of the first end points, in start order.</summary>
    public required int[] IndexSample { get; init; }
    /// <summary>Distinct minima among the K end points (overlap clusters).</summary>
    public required int DistinctMinima { get; init; }
    /// <summary>End points in the largest cluster.</summary>
    public required int LargestCluster { get; init; }
    /// <summary>Wall time of this size.</summary>
    public required double Seconds { get; init; }

    /// <summary>K.</summary>
    [JsonIgnore] public int Count => EnergyPerSpin.Length;
    /// <summary>Mean energy per spin.</summary>
    [JsonIgnore] public double Mean => EnergyPerSpin.Average();
    /// <summary>Sample standard deviation of the energy per spin.</summary>
    [JsonIgnore] public double StandardDeviation
    {
        get
        {
            var m = Mean;
            return Math.Sqrt(EnergyPerSpin.Sum(e => (e - m) * (e - m)) / (Count - 1));
        }
    }
    /// <summary>The standard error of <see cref="StandardDeviation"/> for a near-normal sample: s / √(2(K − 1)).</summary>
    [JsonIgnore] public double StandardDeviationError => StandardDeviation / Math.Sqrt(2.0 * (Count - 1));
    /// <summary>Lowest energy per spin.</summary>
    [JsonIgnore] public double Min => EnergyPerSpin.Min();
    /// <summary>Highest energy per spin.</summary>
    [JsonIgnore] public double Max => EnergyPerSpin.Max();
    /// <summary>Median energy per spin.</summary>
    [JsonIgnore] public double Median => Quantile(0.5);
    /// <summary>Share of starts that met the tolerance.</summary>
    [JsonIgnore] public double FractionConverged => Converged.Count(c => c) / (double)Count;

    /// <summary>The q-quantile of the energies per spin (linear interpolation).</summary>
    public double Quantile(double q)
    {
        var sorted = EnergyPerSpin.Order().ToArray();
        var position = q * (sorted.Length - 1);
        var lo = (int)Math.Floor(position);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (position - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>Share of end points whose energy per spin lies in (<paramref name="lo"/>, <paramref name="hi"/>).</summary>
    public double FractionBetween(double lo, double hi) => EnergyPerSpin.Count(e => e > lo && e < hi) / (double)Count;
}

/// <summary>The whole run: the settings, the theory's landmarks and one result per size.</summary>
/// <param name="Settings">What was run.</param>
/// <param name="GroundState">E_0(p) (the band's lower edge is −E_0).</param>
/// <param name="Barrier">E∞(p) (the band's upper edge is −E∞).</param>
/// <param name="Sizes">One result per N, ascending.</param>
/// <param name="Computed">The sizes computed in this invocation (the others were read from their pieces).</param>
/// <param name="Seconds">Wall time of this invocation.</param>
public sealed record SpinGlassResult(SpinGlassSettings Settings, double GroundState, double Barrier, IReadOnlyList<SpinGlassSizeResult> Sizes,
    IReadOnlyList<int> Computed, double Seconds);

/// <summary>How <see cref="SpinGlassExperiment.Run"/> ended.</summary>
/// <param name="Result">All sizes, when every size finished; null when interrupted.</param>
/// <param name="Finished">Sizes whose pieces are on disk.</param>
public sealed record SpinGlassOutcome(SpinGlassResult? Result, IReadOnlyList<int> Finished)
{
    /// <summary>Whether the run was cancelled before every size was done.</summary>
    public bool Interrupted => Result is null;
}

/// <summary>
/// Seed 001's spin-glass experiment (Choromanska et al. 2015, Sec. 5 and Fig. 3): for each N, K random starts on the
/// sphere of the p = 3 spherical spin glass are minimised by projected SGD on split couplings with a full-gradient
/// finish (SAGUN's protocol, the library's <see cref="ProjectedSgd"/>), and their energies per spin, gradient norms,
/// a sample of indices and the number of distinct minima are kept. Each finished N is one JSON piece in the pieces
/// folder, written atomically; a run finds the pieces it made before and computes only the missing sizes.
/// </summary>
public static class SpinGlassExperiment
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = "spin-glass";

    static readonly JsonSerializerOptions PieceJson = new() { WriteIndented = false };

    /// <summary>The piece file of size <paramref name="n"/> in <paramref name="piecesDir"/>.</summary>
    public static string PiecePath(string piecesDir, int n) => Path.Combine(piecesDir, $"n-{n:D4}.json");

    /// <summary>The progress file of size <paramref name="n"/> while it is being computed (<see cref="DescentCheckpoint"/>).</summary>
    public static string ProgressPath(string piecesDir, int n) => Path.Combine(piecesDir, $"n-{n:D4}.progress.bin");

    /// <summary>
    /// The finished piece of size <paramref name="n"/>, or null when there is none. A piece made under other settings
    /// is an error (another seed or budget writing into the same folder), not silently replaced.
    /// </summary>
    /// <exception cref="InvalidDataException">The piece is unreadable or belongs to other settings.</exception>
    public static SpinGlassSizeResult? ReadPiece(string piecesDir, SpinGlassSettings settings, int n)
    {
        var path = PiecePath(piecesDir, n);
        if (!File.Exists(path)) return null;
        SpinGlassSizeResult? piece;
        try
        {
            piece = JsonSerializer.Deserialize<SpinGlassSizeResult>(File.ReadAllText(path), PieceJson);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a spin-glass piece ({e.Message}); delete it to compute N = {n} again", e);
        }
        if (piece is null || piece.Size != n || piece.Count != settings.Starts)
            throw new InvalidDataException($"{path}: holds N = {piece?.Size}, K = {piece?.Count}; expected N = {n}, K = {settings.Starts}. Delete it to compute N = {n} again");
        if (piece.Key != settings.Key)
            throw new InvalidDataException($"{path} was made with other settings ({piece.Key}; now {settings.Key}). Use another --runs folder or delete it");
        return piece;
    }

    /// <summary>
    /// Computes every size without a piece in <paramref name="piecesDir"/> (which the caller holds locked), in
    /// ascending N, writing each piece as it finishes. Cancelling stops the current size between steps and saves its
    /// progress (as it is also saved every 50 steps); the same call continues from there.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A piece of other settings is in the folder.</exception>
    public static SpinGlassOutcome Run(SpinGlassSettings settings, string piecesDir, Action<string>? log = null, CancellationToken cancellation = default)
    {
        settings.Validate();
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(piecesDir);
        var results = new List<SpinGlassSizeResult>();
        var computed = new List<int>();
        foreach (var n in settings.Sizes)
        {
            var piece = ReadPiece(piecesDir, settings, n);
            if (piece is not null)
            {
                log?.Invoke($"N = {n}: finished before ({PiecePath(piecesDir, n)})");
                results.Add(piece);
                continue;
            }
            if (cancellation.IsCancellationRequested) return new SpinGlassOutcome(null, results.Select(r => r.Size).ToArray());
            var progressPath = ProgressPath(piecesDir, n);
            try
            {
                piece = RunSize(settings, n, log, cancellation, progressPath);
            }
            catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
            {
                log?.Invoke($"N = {n}: interrupted; its progress is saved in {progressPath}, the finished sizes are kept");
                return new SpinGlassOutcome(null, results.Select(r => r.Size).ToArray());
            }
            AtomicFile.WriteAllText(PiecePath(piecesDir, n), JsonSerializer.Serialize(piece, PieceJson) + "\n");
            // The piece holds everything now; the progress file would only be read again if the piece were deleted.
            AtomicFile.TryDelete(progressPath);
            results.Add(piece);
            computed.Add(n);
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"N = {n}: {piece.Count} starts, E/N mean {piece.Mean:0.0000} ± {piece.StandardDeviation:0.0000}, min {piece.Min:0.0000}, " +
                $"{piece.Converged.Count(c => c)} converged, {piece.DistinctMinima} distinct minima, indices [{string.Join(", ", piece.IndexSample)}] ({piece.Seconds:0.0} s)"));
        }
        var p = settings.Order;
        var result = new SpinGlassResult(settings, SpinGlassTheory.GroundStateEnergy(p), SpinGlassTheory.EnergyBarrier(p), results, computed,
            watch.Elapsed.TotalSeconds);
        return new SpinGlassOutcome(result, results.Select(r => r.Size).ToArray());
    }

    /// <summary>
    /// One size: draw the glass, minimise K starts, index a sample, count distinct minima. With
    /// <paramref name="progressPath"/>, the minimisation saves its progress there every 50 steps and when cancelled, and
    /// continues from a progress file made under the same settings.
    /// </summary>
    /// <exception cref="InvalidDataException">The progress file is damaged or of other settings.</exception>
    public static SpinGlassSizeResult RunSize(SpinGlassSettings settings, int n, Action<string>? log = null, CancellationToken cancellation = default,
        string? progressPath = null)
    {
        settings.Validate();
        var watch = Stopwatch.StartNew();
        using var glass = SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = n, Order = settings.Order, Seed = settings.CouplingSeed(n) });
        var continuing = progressPath is not null && File.Exists(progressPath) ? $"; continuing from {progressPath}" : "";
        log?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"N = {n}: {settings.Starts} starts, {settings.StochasticStepCount} stochastic steps over {settings.Parts} coupling parts, then at most {settings.FinishMaxSteps} full-gradient steps{continuing}"));
        var lastReport = Stopwatch.StartNew();
        var progress = new InlineProgress(p =>
        {
            if (lastReport.Elapsed.TotalSeconds < 30) return;
            lastReport.Restart();
            log?.Invoke($"N = {n}: {p.Phase} step {p.Step}, {p.ActiveStarts} starts moving ({watch.Elapsed.TotalSeconds:0} s)");
        });
        using var minimisation = ProjectedSgd.Run(glass, settings.Starts, settings.StartSeed(n), new ProjectedSgdOptions
        {
            Parts = settings.Parts,
            SplitSeed = settings.SplitSeed(n),
            StochasticSteps = settings.StochasticSteps,
            Finish = new ProjectedGradientDescentOptions
            {
                StepSize = 0.2, StepDecay = 0.0015, MaxSteps = settings.FinishMaxSteps, GradientTolerance = settings.GradientTolerance,
                IndexedStarts = settings.IndexedStarts, Cancellation = cancellation, Progress = progress,
                Checkpoint = progressPath is null ? null : new DescentCheckpoint(progressPath, settings.Key + string.Create(CultureInfo.InvariantCulture, $";N={n}")),
            },
        });
        var minima = minimisation.DistinctMinima(settings.OverlapThreshold);
        return new SpinGlassSizeResult
        {
            Key = settings.Key,
            Size = n,
            CouplingSeed = settings.CouplingSeed(n),
            StartSeed = settings.StartSeed(n),
            SplitSeed = settings.SplitSeed(n),
            EnergyPerSpin = minimisation.EnergyPerSpin.ToArray(),
            GradientNorm = minimisation.GradientNorm.ToArray(),
            Steps = minimisation.Steps.ToArray(),
            Converged = minimisation.Converged.ToArray(),
            IndexSample = minimisation.Index.Take(settings.IndexedStarts).Select(i => i ?? -1).ToArray(),
            DistinctMinima = minima.Count,
            LargestCluster = minima.LargestSize,
            Seconds = Math.Round(watch.Elapsed.TotalSeconds, 1),
        };
    }

    /// <summary>Calls its action on the reporting thread at once (<see cref="Progress{T}"/> would post to the thread pool).</summary>
    sealed class InlineProgress(Action<SpinGlassProgress> action) : IProgress<SpinGlassProgress>
    {
        public void Report(SpinGlassProgress value) => action(value);
    }
}
