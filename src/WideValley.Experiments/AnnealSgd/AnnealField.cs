using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using WideValley.SpinGlass;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Settings of <see cref="AnnealField"/> (ours throughout: the AnnealSGD paper's body, with its field values and
/// protocol, is not available). <see cref="For"/> gives each budget's sizes; the minimiser, the overlap threshold and
/// the annealed protocol are the same for every budget.
/// </summary>
public sealed record AnnealFieldSettings
{
    /// <summary>The budget these settings were made for; it sizes the glasses, starts and sweep, nothing else.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;

    /// <summary>p, the order of the interaction (3, as in the issue).</summary>
    public int Order { get; init; } = 3;

    /// <summary>N of each glass, one glass (one coupling draw) per N.</summary>
    public IReadOnlyList<int> Sizes { get; init; } = [25, 50];

    /// <summary>K, random starts per glass: the same starts for every field size and for the annealed protocol.</summary>
    public int Starts { get; init; } = 24;

    /// <summary>
    /// The positive field strengths h of the sweep (per-coordinate size, <see cref="ExternalField.RandomDirection"/>),
    /// ascending; the field-free run (h = 0, plain projected gradient descent) is always added.
    /// </summary>
    public IReadOnlyList<double> Fields { get; init; } = LogSpaced(0.01, 10, 7);

    /// <summary>Overlap q = ⟨w, w'⟩/N at or above which two end points count as one minimum (<see cref="DistinctMinima"/>'s default 0.99).</summary>
    public double OverlapThreshold { get; init; } = DistinctMinima.DefaultThreshold;

    /// <summary>γ0 of projected gradient descent (SAGUN's 0.2), reduced for strong fields by <see cref="StepFor"/>.</summary>
    public double StepSize { get; init; } = 0.2;

    /// <summary>A start stops when its projected gradient norm is below this (SAGUN's 0.01).</summary>
    public double GradientTolerance { get; init; } = 0.01;

    /// <summary>Most descent steps per start and per stage; a start that reaches it counts as not converged.</summary>
    public int MaxSteps { get; init; } = 10_000;

    /// <summary>The annealed protocol's first (strongest) field.</summary>
    public double AnnealStart { get; init; } = 5;

    /// <summary>The annealed protocol's last non-zero field; a final stage at h = 0 follows it.</summary>
    public double AnnealEnd { get; init; } = 0.05;

    /// <summary>Non-zero field stages of the annealed protocol, geometrically spaced from <see cref="AnnealStart"/> to <see cref="AnnealEnd"/>.</summary>
    public int AnnealStages { get; init; } = 10;

    /// <summary>
    /// Field directions of the annealed protocol: a strong field sends every start to the same minimum, so one
    /// direction gives one annealed outcome; several directions give a spread.
    /// </summary>
    public int FieldDirections { get; init; } = 2;

    /// <summary>Seed of the couplings, starts and field directions (each derived from it and N).</summary>
    public long Seed { get; init; }

    /// <summary>The sizes of a budget (see docs/annealsgd.md): smoke takes seconds, paper a few minutes on two cores.</summary>
    public static AnnealFieldSettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new AnnealFieldSettings { Budget = budget },
        Budget.Small => new AnnealFieldSettings { Budget = budget, Sizes = [50, 100], Starts = 100, Fields = LogSpaced(0.01, 10, 10), FieldDirections = 4 },
        Budget.Paper => new AnnealFieldSettings { Budget = budget, Sizes = [50, 100], Starts = 200, Fields = LogSpaced(0.01, 10, 16), FieldDirections = 8 },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary><paramref name="count"/> values from <paramref name="low"/> to <paramref name="high"/>, equally spaced in log.</summary>
    public static double[] LogSpaced(double low, double high, int count) =>
        count == 1 ? [low] : Enumerable.Range(0, count).Select(i => low * Math.Pow(high / low, (double)i / (count - 1))).ToArray();

    /// <summary>
    /// The recalled, UNVERIFIED trivialisation threshold √(p(p − 2)) per coordinate (the notes' B.5: h_c² = ξ''(1) − ξ'(1)
    /// for ξ(q) = q^p, not checked against any source): a reference line on the plot, not a claim.
    /// </summary>
    public double RecalledCriticalField => Math.Sqrt(Order * (Order - 2.0));

    /// <summary>
    /// The step at field h: γ0 / max(1, h). Near a minimum the field adds about h to the tangent Hessian, and the
    /// retracted step oscillates once γ·h nears 2; keeping γ·h at most γ0 keeps strong fields as stable as weak ones.
    /// </summary>
    public double StepFor(double field) => StepSize / Math.Max(1, field);

    /// <summary>The non-zero fields of the annealed protocol, strongest first (a last stage at h = 0 follows).</summary>
    public double[] AnnealFields => AnnealStages == 1 ? [AnnealStart] : LogSpaced(AnnealStart, AnnealEnd, AnnealStages);

    /// <summary>The seed of glass N's couplings.</summary>
    public long CouplingSeed(int size) => unchecked(Seed * 1_000_003 + size);

    /// <summary>The seed of glass N's starts.</summary>
    public long StartSeed(int size) => unchecked(CouplingSeed(size) * 31 + 1);

    /// <summary>The seed of glass N's field direction <paramref name="direction"/> (direction 0 is the sweep's).</summary>
    public long FieldSeed(int size, int direction) => unchecked(CouplingSeed(size) * 31 + 2 + direction);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        if (Order < 2) throw new ArgumentException($"p must be at least 2, got {Order}");
        if (Sizes is null || Sizes.Count == 0) throw new ArgumentException("--sizes must name at least one N");
        foreach (var n in Sizes)
            if (n < 2) throw new ArgumentException($"--sizes: every N must be at least 2, got {n}");
        if (Sizes.Distinct().Count() != Sizes.Count) throw new ArgumentException($"--sizes: N repeated in {string.Join(",", Sizes)}");
        if (Starts < 2) throw new ArgumentException($"--starts must be at least 2 (distinct minima need several starts), got {Starts}");
        if (Fields is null || Fields.Count == 0) throw new ArgumentException("--fields must name at least one positive field strength");
        for (var i = 0; i < Fields.Count; i++)
        {
            if (!(Fields[i] > 0) || !double.IsFinite(Fields[i])) throw new ArgumentException($"--fields: every field strength must be positive and finite, got {Text(Fields[i])}");
            if (i > 0 && !(Fields[i] > Fields[i - 1])) throw new ArgumentException($"--fields must be strictly ascending, got {Text(Fields[i - 1])} then {Text(Fields[i])}");
        }
        if (!(OverlapThreshold > 0 && OverlapThreshold <= 1)) throw new ArgumentException($"--overlap must be in (0, 1], got {Text(OverlapThreshold)}");
        if (!(StepSize > 0) || !double.IsFinite(StepSize)) throw new ArgumentException($"the step size must be positive and finite, got {Text(StepSize)}");
        if (!(GradientTolerance > 0) || !double.IsFinite(GradientTolerance)) throw new ArgumentException($"the gradient tolerance must be positive and finite, got {Text(GradientTolerance)}");
        if (MaxSteps < 1) throw new ArgumentException($"at least one descent step is needed, got {MaxSteps}");
        if (!(AnnealStart > 0) || !double.IsFinite(AnnealStart) || !(AnnealEnd > 0) || !(AnnealEnd <= AnnealStart))
            throw new ArgumentException($"the annealed protocol needs 0 < end <= start, got start {Text(AnnealStart)}, end {Text(AnnealEnd)}");
        if (AnnealStages < 1) throw new ArgumentException($"--anneal-stages must be at least 1, got {AnnealStages}");
        if (FieldDirections < 1) throw new ArgumentException($"--field-directions must be at least 1, got {FieldDirections}");
    }

    /// <summary>What a finished piece depends on besides its N, field and direction: a folder of pieces made with other values is refused.</summary>
    internal string PieceKey() => JsonSerializer.Serialize(new
    {
        order = Order, starts = Starts, seed = Seed, step = StepSize, tolerance = GradientTolerance, max_steps = MaxSteps,
        overlap = OverlapThreshold, anneal_start = AnnealStart, anneal_end = AnnealEnd, anneal_stages = AnnealStages,
    });

    static string Text(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>Projected gradient descent at one field strength from the glass's starts.</summary>
/// <param name="Size">N.</param>
/// <param name="Field">h (0: no field, plain projected gradient descent).</param>
/// <param name="StepSize">The step γ used at this field.</param>
/// <param name="FieldFreeEnergy">H(w)/N of each end point without the field.</param>
/// <param name="PerturbedEnergy">H_h(w)/N of each end point, the energy that was minimised.</param>
/// <param name="Converged">Whether each start met the gradient tolerance.</param>
/// <param name="Steps">Steps per start.</param>
/// <param name="DistinctMinima">Clusters of end points at the overlap threshold.</param>
/// <param name="ClusterSizes">Their sizes, lowest-energy cluster first.</param>
/// <param name="Seconds">Wall time of the piece.</param>
public sealed record FieldSweepPiece(int Size, double Field, double StepSize, double[] FieldFreeEnergy, double[] PerturbedEnergy, bool[] Converged,
    int[] Steps, int DistinctMinima, int[] ClusterSizes, double Seconds)
{
    /// <summary>Fraction of the starts that met the tolerance.</summary>
    public double ConvergedFraction => Converged.Count(c => c) / (double)Converged.Length;
}

/// <summary>The annealed protocol from the glass's starts in one field direction.</summary>
/// <param name="Size">N.</param>
/// <param name="Direction">Index of the field direction.</param>
/// <param name="StageFields">The stages' fields, strongest first, ending with 0.</param>
/// <param name="StageDistinctMinima">Distinct minima among the end points of each stage.</param>
/// <param name="StageConvergedFraction">Fraction of starts that met the tolerance in each stage.</param>
/// <param name="FieldFreeEnergy">H(w)/N at the end of the last (field-free) stage, per start.</param>
/// <param name="Converged">Whether each start met the tolerance in the last stage.</param>
/// <param name="Steps">Steps per start over all stages.</param>
/// <param name="DistinctMinima">Distinct minima among the final end points.</param>
/// <param name="Seconds">Wall time of the piece.</param>
public sealed record AnnealedPiece(int Size, int Direction, double[] StageFields, int[] StageDistinctMinima, double[] StageConvergedFraction,
    double[] FieldFreeEnergy, bool[] Converged, int[] Steps, int DistinctMinima, double Seconds);

/// <summary>Everything measured on one glass.</summary>
/// <param name="Size">N.</param>
/// <param name="Sweep">One piece per field, h = 0 first, ascending.</param>
/// <param name="Annealed">One piece per field direction.</param>
public sealed record AnnealFieldGlass(int Size, IReadOnlyList<FieldSweepPiece> Sweep, IReadOnlyList<AnnealedPiece> Annealed)
{
    /// <summary>Plain projected gradient descent (h = 0), the baseline of the annealed protocol.</summary>
    public FieldSweepPiece Plain => Sweep[0];

    /// <summary>
    /// The paired comparison: for every direction and start, the annealed run's final field-free energy minus plain
    /// descent's from the same start.
    /// </summary>
    public AnnealComparison Compare(double equalTolerance = AnnealComparison.EqualTolerance)
    {
        var annealed = Annealed.SelectMany(a => a.FieldFreeEnergy).ToArray();
        var plain = Annealed.SelectMany(_ => Plain.FieldFreeEnergy).ToArray();
        var differences = annealed.Select((e, i) => e - plain[i]).ToArray();
        return new AnnealComparison(Stat.Of(annealed), Stat.Of(Plain.FieldFreeEnergy), Stat.Of(differences),
            differences.Count(d => d < -equalTolerance) / (double)differences.Length,
            differences.Count(d => Math.Abs(d) <= equalTolerance) / (double)differences.Length,
            differences.Length)
        {
            DirectionStandardError = Annealed.Count > 1
                ? Stat.Of(Annealed.Select(a => a.FieldFreeEnergy.Select((e, i) => e - Plain.FieldFreeEnergy[i]).Average()).ToArray()).StandardError
                : double.NaN,
        };
    }
}

/// <summary>Mean, sample standard deviation and count.</summary>
public readonly record struct Stat(double Mean, double Std, int Count)
{
    /// <summary>Standard error of the mean.</summary>
    public double StandardError => Count > 1 ? Std / Math.Sqrt(Count) : double.NaN;

    /// <summary>The statistic of <paramref name="values"/> (std NaN for one value).</summary>
    public static Stat Of(IReadOnlyList<double> values)
    {
        var mean = values.Average();
        var std = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1)) : double.NaN;
        return new Stat(mean, std, values.Count);
    }
}

/// <summary>Annealed against plain projected gradient descent on one glass, paired by start.</summary>
/// <param name="Annealed">Final field-free energy per spin of the annealed runs (all directions and starts).</param>
/// <param name="Plain">Plain descent's energy per spin (each start once).</param>
/// <param name="Difference">Annealed minus plain, per (direction, start).</param>
/// <param name="FractionLower">Pairs where the annealed run ends lower by more than <see cref="EqualTolerance"/>.</param>
/// <param name="FractionEqual">Pairs within <see cref="EqualTolerance"/> of each other (the same minimum, typically).</param>
/// <param name="Pairs">Number of pairs.</param>
public sealed record AnnealComparison(Stat Annealed, Stat Plain, Stat Difference, double FractionLower, double FractionEqual, int Pairs)
{
    /// <summary>Energies per spin closer than this count as equal (far above float32 rounding and the tolerance's energy error).</summary>
    public const double EqualTolerance = 1e-4;

    /// <summary>
    /// Pairs of one direction share the direction's field, so the pairs are not independent across directions; the
    /// standard error used for the verdict is that of the per-direction mean differences (NaN for one direction).
    /// </summary>
    public double DirectionStandardError { get; init; } = double.NaN;
}

/// <summary>What <see cref="AnnealField.Run"/> measured.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Glasses">One entry per N that finished (all of them unless interrupted).</param>
/// <param name="Interrupted">Cancelled between or during pieces; the finished pieces are on disk and the next run continues.</param>
/// <param name="PiecesComputed">Pieces computed by this call.</param>
/// <param name="PiecesReused">Pieces read from the work folder.</param>
/// <param name="Seconds">Wall time of this call.</param>
public sealed record AnnealFieldResult(AnnealFieldSettings Settings, IReadOnlyList<AnnealFieldGlass> Glasses, bool Interrupted, int PiecesComputed,
    int PiecesReused, double Seconds);

/// <summary>
/// The AnnealSGD mechanism on the spherical p-spin glass (issue 17, seed 000; protocol ours): for each N, one glass
/// and K starts; projected gradient descent to tolerance at every field strength of a sweep (a fixed random field
/// direction), counting distinct minima and the energies of the end points with and without the field; then the
/// annealed protocol (strong field, decreased in stages to zero, each stage starting from the previous end points,
/// last stage field-free) against plain descent from the same starts. Every finished piece (one field of the sweep,
/// one direction of the annealed protocol) is written atomically to the work folder and read back on the next call.
/// </summary>
public static class AnnealField
{
    static readonly JsonSerializerOptions PieceJson = new() { WriteIndented = false };

    /// <summary>The work folder of a budget's pieces: RUNS/anneal-field-BUDGET.</summary>
    public static string WorkFolder(string runsRoot, Budget budget) => Path.Combine(runsRoot, $"anneal-field-{Budgets.Name(budget)}");

    /// <summary>
    /// Runs (or continues) the experiment in <paramref name="workFolder"/>; <paramref name="log"/> receives a line per
    /// piece. Cancelling stops between descent steps; the piece under way is discarded, finished ones are kept.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">The work folder holds pieces made with other settings.</exception>
    /// <exception cref="IOException">Another process works in the folder.</exception>
    public static AnnealFieldResult Run(AnnealFieldSettings settings, string workFolder, Action<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(workFolder);
        using var folderLock = RunFolders.Lock(workFolder);
        CheckKey(settings, workFolder);
        var computed = 0;
        var reused = 0;
        var glasses = new List<AnnealFieldGlass>();
        try
        {
            foreach (var n in settings.Sizes)
            {
                cancellation.ThrowIfCancellationRequested();
                using var glass = SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = n, Order = settings.Order, Seed = settings.CouplingSeed(n) });
                using var starts = Sphere.RandomPoints(settings.Starts, n, settings.StartSeed(n), glass.Dtype);
                var sweep = new List<FieldSweepPiece>();
                foreach (var h in settings.Fields.Prepend(0.0))
                {
                    cancellation.ThrowIfCancellationRequested();
                    var path = Path.Combine(workFolder, string.Create(CultureInfo.InvariantCulture, $"N{n}-field-{h:R}.json"));
                    if (Read<FieldSweepPiece>(path) is { } done)
                    {
                        sweep.Add(done);
                        reused++;
                        continue;
                    }
                    var piece = Sweep(settings, glass, starts, h, cancellation);
                    Write(path, piece);
                    computed++;
                    sweep.Add(piece);
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"N = {n}, h = {h:G3}: {piece.DistinctMinima} distinct minima of {settings.Starts}, E/N {Stat.Of(piece.FieldFreeEnergy).Mean:0.0000} without the field, " +
                        $"{piece.ConvergedFraction:P0} converged ({piece.Seconds:0.0} s)"));
                }
                var annealed = new List<AnnealedPiece>();
                for (var d = 0; d < settings.FieldDirections; d++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var path = Path.Combine(workFolder, string.Create(CultureInfo.InvariantCulture, $"N{n}-annealed-{d}.json"));
                    if (Read<AnnealedPiece>(path) is { } done)
                    {
                        annealed.Add(done);
                        reused++;
                        continue;
                    }
                    var piece = Anneal(settings, glass, starts, d, cancellation);
                    Write(path, piece);
                    computed++;
                    annealed.Add(piece);
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"N = {n}, annealed direction {d}: E/N {Stat.Of(piece.FieldFreeEnergy).Mean:0.0000} (plain {Stat.Of(sweep[0].FieldFreeEnergy).Mean:0.0000}), " +
                        $"{piece.DistinctMinima} distinct minima ({piece.Seconds:0.0} s)"));
                }
                glasses.Add(new AnnealFieldGlass(n, sweep, annealed));
            }
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            return new AnnealFieldResult(settings, glasses, true, computed, reused, watch.Elapsed.TotalSeconds);
        }
        return new AnnealFieldResult(settings, glasses, false, computed, reused, watch.Elapsed.TotalSeconds);
    }

    const string KeyFile = "settings.json";

    static void CheckKey(AnnealFieldSettings settings, string folder)
    {
        var path = Path.Combine(folder, KeyFile);
        var key = settings.PieceKey();
        if (File.Exists(path))
        {
            var stored = File.ReadAllText(path).Trim();
            if (stored != key)
                throw new InvalidDataException($"{folder} holds anneal-field pieces made with other settings ({stored}; now {key}); " +
                                               "give another --runs folder or delete this one");
            return;
        }
        AtomicFile.WriteAllText(path, key + "\n");
    }

    static T? Read<T>(string path) where T : class
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), PieceJson)
                   ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a finished piece ({e.Message}); delete it to compute it again", e);
        }
    }

    static void Write<T>(string path, T piece) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(piece, PieceJson) + "\n");

    static ProjectedGradientDescentOptions Descent(AnnealFieldSettings s, double field, CancellationToken cancellation) => new()
    {
        StepSize = s.StepFor(field),
        GradientTolerance = s.GradientTolerance,
        MaxSteps = s.MaxSteps,
        Cancellation = cancellation,
    };

    /// <summary>
    /// Projected gradient descent at field <paramref name="field"/> (direction 0) from <paramref name="starts"/> on the
    /// couplings of <paramref name="glass"/>, which must be the field-free glass (its energy is the field-free one).
    /// </summary>
    public static FieldSweepPiece Sweep(AnnealFieldSettings s, SphericalPSpinGlass glass, Tensor starts, double field, CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        var n = glass.Size;
        using var perturbed = field == 0 ? null : glass.WithField(ExternalField.RandomDirection(field, s.FieldSeed(n, 0)));
        using var result = ProjectedGradientDescent.Run(perturbed ?? glass, starts, Descent(s, field, cancellation));
        var clusters = result.DistinctMinima(s.OverlapThreshold);
        return new FieldSweepPiece(n, field, s.StepFor(field), FieldFreeEnergy(glass, result.Points), [.. result.EnergyPerSpin], [.. result.Converged],
            [.. result.Steps], clusters.Count, [.. clusters.Sizes], watch.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The annealed protocol in field direction <paramref name="direction"/>: descent to tolerance at each of
    /// <see cref="AnnealFieldSettings.AnnealFields"/>, each stage from the previous stage's end points, then at h = 0.
    /// </summary>
    public static AnnealedPiece Anneal(AnnealFieldSettings s, SphericalPSpinGlass glass, Tensor starts, int direction, CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        var n = glass.Size;
        var fields = s.AnnealFields.Append(0.0).ToArray();
        var distinct = new int[fields.Length];
        var converged = new double[fields.Length];
        var steps = new int[s.Starts];
        var points = starts.clone();
        try
        {
            SpinGlassMinimization? last = null;
            for (var k = 0; k < fields.Length; k++)
            {
                using var perturbed = fields[k] == 0 ? null : glass.WithField(ExternalField.RandomDirection(fields[k], s.FieldSeed(n, direction)));
                var result = ProjectedGradientDescent.Run(perturbed ?? glass, points, Descent(s, fields[k], cancellation));
                points.Dispose();
                points = result.Points;
                distinct[k] = result.DistinctMinima(s.OverlapThreshold).Count;
                converged[k] = result.ConvergedCount / (double)result.Count;
                for (var i = 0; i < steps.Length; i++) steps[i] += result.Steps[i];
                last = result;
            }
            return new AnnealedPiece(n, direction, fields, distinct, converged, FieldFreeEnergy(glass, points), [.. last!.Converged], steps,
                distinct[^1], watch.Elapsed.TotalSeconds);
        }
        finally
        {
            points.Dispose();
        }
    }

    static double[] FieldFreeEnergy(SphericalPSpinGlass glass, Tensor points)
    {
        using var scope = NewDisposeScope();
        var n = (double)glass.Size;
        return glass.Energy(points).to(ScalarType.Float64).data<double>().Select(e => e / n).ToArray();
    }
}
