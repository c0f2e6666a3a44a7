using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using WideValley.Connectivity;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Settings of the polynomial-toy part of <see cref="LevelSetsExperiment"/> (Freeman and Bruna, ICLR 2017, Fig. 1 top):
/// which tasks, the L0 grid of each, how many endpoint pairs per level, the seeds and the step budgets.
/// <see cref="For"/> gives each budget's values.
/// </summary>
public sealed record LevelSetsSettings
{
    /// <summary>The quadratic's L0 grid (the notes' §4, the authors' <c>threshrange</c> in QUADRATICS.py).</summary>
    public static readonly IReadOnlyList<double> PaperQuadraticLevels = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125];

    /// <summary>
    /// The cubic's L0 grid: the x values of Fig. 1's cubic panel (the notes' §5; they reproduce the merged
    /// <c>threshrange</c> lists of CUBICS.py), the coarse scan 0.01..0.32 with the fine scan 0.15..0.17.
    /// </summary>
    public static readonly IReadOnlyList<double> PaperCubicLevels =
    [
        0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.10, 0.12, 0.14, 0.15, 0.152, 0.154, 0.156, 0.158, 0.16, 0.162, 0.164,
        0.168, 0.17, 0.18, 0.20, 0.24, 0.32,
    ];

    /// <summary>The budget these settings were made for.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;

    /// <summary>The polynomial tasks run, in order (distinct).</summary>
    public IReadOnlyList<PolynomialTarget> Tasks { get; init; } = [PolynomialTarget.Quadratic];

    /// <summary>L0 levels (mean absolute error) of the quadratic, ascending.</summary>
    public IReadOnlyList<double> QuadraticLevels { get; init; } = [0.1, 0.125];

    /// <summary>L0 levels (mean absolute error) of the cubic, ascending.</summary>
    public IReadOnlyList<double> CubicLevels { get; init; } = [0.24, 0.32];

    /// <summary>Endpoint pairs per level (the authors: a command-line argument; the paper states no number).</summary>
    public int Pairs { get; init; } = 2;

    /// <summary>The seed every sample and initialisation of the run is derived from.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Size of the full training batch of each toy (the authors: 10,000).</summary>
    public int TrainingSamples { get; init; } = 10_000;

    /// <summary>Size of the fixed evaluation sample every level is measured on (the authors: 10,000).</summary>
    public int EvaluationSamples { get; init; } = 10_000;

    /// <summary>Most Adam steps one endpoint or bead may take (ours; the authors have no budget).</summary>
    public long MaxSteps { get; init; } = PolynomialToyOptions.DefaultMaxSteps;

    /// <summary>d_max, depths of the string search before it gives up (the authors: 10).</summary>
    public int MaxDepth { get; init; } = 10;

    /// <summary>The curve trained between every searched pair's endpoints (Garipov et al.; default the quadratic Bézier).</summary>
    public CurveKind CurveKind { get; init; } = CurveKind.Bezier;

    /// <summary>Trainable middle points of that curve (1: the quadratic Bézier).</summary>
    public int CurveBends { get; init; } = 1;

    /// <summary>Curve training steps, one t ~ U(0, 1) and one full-batch gradient each (ours).</summary>
    public long CurveSteps { get; init; } = DefaultCurveSteps;

    /// <summary>SGD step size of the curve's middle points (ours, chosen on the toys; Garipov's networks use other values).</summary>
    public double CurveLearningRate { get; init; } = DefaultCurveLearningRate;

    /// <summary>SGD momentum of the curve's middle points (ours; Garipov: 0.9).</summary>
    public double CurveMomentum { get; init; } = 0.9;

    /// <summary>
    /// Default of <see cref="CurveSteps"/> at budgets small and paper (ours). Tried on quadratic L0 = 0.01, 0.05 and cubic
    /// 0.05, 0.156 (two pairs each, small budget's samples): 1,000 to 4,000 steps at lr 0.05 leave the quadratic's curve at
    /// 0.01 and the cubic's at 0.05 with barriers of 2 to 10 L0; 10,000 steps at lr 0.1 bring them to 0.2 to 1.3 L0
    /// (quadratic 0.01) and 0.3 to 0.7 L0 (cubic 0.05) against straight lines at 3 to 30 L0; lr 0.3 diverges on the cubic.
    /// </summary>
    public const long DefaultCurveSteps = 10_000;

    /// <summary>Default of <see cref="CurveLearningRate"/> (ours; see <see cref="DefaultCurveSteps"/>).</summary>
    public const double DefaultCurveLearningRate = 0.1;

    /// <summary>
    /// Each budget's values. Smoke: the quadratic and the cubic at their two highest levels, 2 pairs, 1,000-point
    /// samples, 20,000 steps. Small: a subset of each grid (quadratic 0.005..0.125 without 0.0075; cubic 0.05, 0.1, 0.14
    /// and the fine scan's 0.15, 0.156, 0.16, 0.164 and 0.17, 0.2, 0.32), 3 pairs, the authors' 10,000-point samples,
    /// 100,000 steps. Paper: both full grids, 10 pairs (the authors' PTB script's 10 runs; enough for a standard deviation
    /// whose own relative error is about 24%), 200,000 steps. Curves: a Bézier with one bend, lr 0.1, momentum 0.9,
    /// 1,000 steps at smoke and 10,000 otherwise.
    /// </summary>
    public static LevelSetsSettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new LevelSetsSettings
        {
            Budget = budget, Tasks = [PolynomialTarget.Quadratic, PolynomialTarget.Cubic], QuadraticLevels = [0.1, 0.125], CubicLevels = [0.24, 0.32],
            Pairs = 2, TrainingSamples = 1_000, EvaluationSamples = 1_000, MaxSteps = 20_000, CurveSteps = 1_000,
        },
        Budget.Small => new LevelSetsSettings
        {
            Budget = budget, Tasks = [PolynomialTarget.Quadratic, PolynomialTarget.Cubic],
            QuadraticLevels = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125],
            CubicLevels = [0.05, 0.10, 0.14, 0.15, 0.156, 0.16, 0.164, 0.17, 0.20, 0.32],
            Pairs = 3, MaxSteps = 100_000,
        },
        Budget.Paper => new LevelSetsSettings
        {
            Budget = budget, Tasks = [PolynomialTarget.Quadratic, PolynomialTarget.Cubic], QuadraticLevels = PaperQuadraticLevels,
            CubicLevels = PaperCubicLevels, Pairs = 10, MaxSteps = PolynomialToyOptions.DefaultMaxSteps,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>The L0 grid of <paramref name="task"/>.</summary>
    public IReadOnlyList<double> Levels(PolynomialTarget task) => task == PolynomialTarget.Cubic ? CubicLevels : QuadraticLevels;

    /// <summary>Seed of the training sample of every toy (the evaluation sample's is the next number).</summary>
    public ulong TrainingSeed => unchecked(Seed * 2 + 1);

    /// <summary>Seed of the evaluation sample of every toy.</summary>
    public ulong EvaluationSeed => unchecked(Seed * 2 + 2);

    /// <summary>
    /// Seed of the endpoint initialisations of <paramref name="task"/> at <paramref name="level"/>: derived from the level's
    /// value (to 10⁻⁶), not its place in the grid, so a piece stays valid when the grid gains or loses levels.
    /// </summary>
    public ulong EndpointSeed(PolynomialTarget task, double level) =>
        unchecked(Seed * 1_000_003 + (task == PolynomialTarget.Cubic ? 500_000_000UL : 0) + (ulong)Math.Round(level * 1e6) + 1_000);

    /// <summary>The toy every level of <paramref name="task"/> runs on.</summary>
    public PolynomialToyOptions ToyOptions(PolynomialTarget task) => new()
    {
        Target = task, TrainingSamples = TrainingSamples, EvaluationSamples = EvaluationSamples, TrainingSeed = TrainingSeed,
        EvaluationSeed = EvaluationSeed, MaxSteps = MaxSteps,
    };

    /// <summary>
    /// The curve between pair <paramref name="pair"/>'s endpoints of <paramref name="task"/> at <paramref name="level"/>:
    /// <see cref="CurveKind"/>, <see cref="CurveBends"/>, <see cref="CurveSteps"/>, <see cref="CurveLearningRate"/>,
    /// <see cref="CurveMomentum"/>, its t stream seeded from the pair's endpoint seed.
    /// </summary>
    public CurveTrainingOptions CurveOptions(PolynomialTarget task, double level, int pair) => new()
    {
        Kind = CurveKind, Bends = CurveBends, Steps = CurveSteps, LearningRate = CurveLearningRate, Momentum = CurveMomentum,
        Seed = unchecked((long)(EndpointSeed(task, level) * 31 + (ulong)pair)),
    };

    /// <summary>The string search at <paramref name="level"/>: the authors' polynomial settings with <see cref="MaxDepth"/>.</summary>
    public StringSamplingOptions SamplingOptions(double level) => StringSamplingOptions.ForPolynomialToys(level) with { MaxDepth = MaxDepth };

    /// <summary>
    /// Everything that decides a level's numbers except the task and L0, in one line: a finished piece is reused only
    /// when it was made with the same key.
    /// </summary>
    public string Key
    {
        get
        {
            // The string search's fixed settings too, so that a change of the preset cannot reuse pieces made under the old one.
            var search = StringSamplingOptions.ForPolynomialToys(1);
            return string.Create(CultureInfo.InvariantCulture,
                $"pairs={Pairs};seed={Seed};train={TrainingSamples};eval={EvaluationSamples};steps={MaxSteps};depth={MaxDepth};" +
                $"grid={search.GridPoints};insert={search.InsertAt};alpha={search.BeadTargetFactor:R};m={search.AcceptFactor:R};" +
                $"curve={CurveKind};bends={CurveBends};curve-steps={CurveSteps};curve-lr={CurveLearningRate:R};curve-momentum={CurveMomentum:R}");
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value, with what was expected.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Tasks);
        if (Tasks.Count == 0) throw new ArgumentException("LevelSetsSettings.Tasks: at least one task (Quadratic, Cubic) is needed");
        if (Tasks.Any(t => !Enum.IsDefined(t)))
            throw new ArgumentException($"LevelSetsSettings.Tasks: unknown task in {string.Join(", ", Tasks)}; expected Quadratic or Cubic");
        if (Tasks.Distinct().Count() != Tasks.Count)
            throw new ArgumentException($"LevelSetsSettings.Tasks: tasks must be distinct, got {string.Join(", ", Tasks)}");
        foreach (var task in Tasks)
        {
            var name = task == PolynomialTarget.Cubic ? nameof(CubicLevels) : nameof(QuadraticLevels);
            var levels = Levels(task) ?? throw new ArgumentException($"LevelSetsSettings.{name}: null; the {task} task needs at least one level");
            var shown = string.Join(", ", levels.Select(l => l.ToString("R", CultureInfo.InvariantCulture)));
            if (levels.Count == 0) throw new ArgumentException($"LevelSetsSettings.{name}: the {task} task needs at least one level L0");
            if (levels.Any(l => !(double.IsFinite(l) && l > 0)))
                throw new ArgumentException($"LevelSetsSettings.{name}: every L0 must be positive and finite, got {shown}");
            if (levels.Distinct().Count() != levels.Count || !levels.SequenceEqual(levels.Order()))
                throw new ArgumentException($"LevelSetsSettings.{name}: levels must be distinct and ascending, got {shown}");
        }
        if (Pairs < 1) throw new ArgumentException($"LevelSetsSettings.Pairs: at least 1 endpoint pair per level is needed, got {Pairs}");
        if (TrainingSamples < 1) throw new ArgumentException($"LevelSetsSettings.TrainingSamples: at least 1, got {TrainingSamples}");
        if (EvaluationSamples < 1) throw new ArgumentException($"LevelSetsSettings.EvaluationSamples: at least 1, got {EvaluationSamples}");
        if (MaxSteps < 1) throw new ArgumentException($"LevelSetsSettings.MaxSteps: the step budget of a point must be at least 1, got {MaxSteps}");
        if (MaxDepth < 1) throw new ArgumentException($"LevelSetsSettings.MaxDepth: the string search needs at least 1 depth, got {MaxDepth}");
        if (!Enum.IsDefined(CurveKind)) throw new ArgumentException($"LevelSetsSettings.CurveKind: unknown curve kind {CurveKind}; expected Bezier or PolyChain");
        if (CurveBends < 1) throw new ArgumentException($"LevelSetsSettings.CurveBends: a curve needs at least 1 middle point, got {CurveBends}");
        if (CurveSteps < 1) throw new ArgumentException($"LevelSetsSettings.CurveSteps: the curve needs at least 1 training step, got {CurveSteps}");
        if (!(double.IsFinite(CurveLearningRate) && CurveLearningRate > 0))
            throw new ArgumentException($"LevelSetsSettings.CurveLearningRate: must be positive and finite, got {CurveLearningRate.ToString(CultureInfo.InvariantCulture)}");
        if (!(CurveMomentum >= 0 && CurveMomentum < 1))
            throw new ArgumentException($"LevelSetsSettings.CurveMomentum: must be in [0, 1), got {CurveMomentum.ToString(CultureInfo.InvariantCulture)}");
    }
}

/// <summary>One endpoint pair at one level: why it was skipped, or what the string search found.</summary>
public sealed record LevelSetsPair
{
    /// <summary>The pair's number at its level (0-based); its endpoints are initialisations 2·Index and 2·Index + 1.</summary>
    public required int Index { get; init; }
    /// <summary>Evaluation MAE of endpoint A after its training.</summary>
    public required double EndpointLossA { get; init; }
    /// <summary>Evaluation MAE of endpoint B after its training.</summary>
    public required double EndpointLossB { get; init; }
    /// <summary>Adam steps endpoint A took.</summary>
    public required long EndpointStepsA { get; init; }
    /// <summary>Adam steps endpoint B took.</summary>
    public required long EndpointStepsB { get; init; }
    /// <summary>Why no string was searched (an endpoint missed α·L0 within the step budget); null when it was.</summary>
    public string? Skipped { get; init; }
    /// <summary>Whether the string search connected the pair (false when skipped).</summary>
    public bool Connected { get; init; }
    /// <summary>Normalised length over the weights only (the authors' SpringNorm); null when skipped.</summary>
    public double? WeightsOnlyLength { get; init; }
    /// <summary>Normalised length over every parameter (biases included); null when skipped.</summary>
    public double? AllParametersLength { get; init; }
    /// <summary>Beads in the final chain, endpoints included; null when skipped.</summary>
    public int? Beads { get; init; }
    /// <summary>The largest MAE over every segment's grid of the final chain; null when skipped.</summary>
    public double? MaxAlongPath { get; init; }
    /// <summary>Depths the search ran; null when skipped.</summary>
    public int? Depth { get; init; }
    /// <summary>Wall time of the string search (endpoint training not included).</summary>
    public double Seconds { get; init; }
    /// <summary>The trained curve between the same endpoints (Garipov et al.); null when none was trained (skipped pair, or a run without curves).</summary>
    public LevelSetsCurve? Curve { get; init; }

    /// <summary>This pair with the string search's outcome, which took <paramref name="seconds"/>.</summary>
    public LevelSetsPair WithString(StringSamplingResult result, double seconds)
    {
        ArgumentNullException.ThrowIfNull(result);
        return this with
        {
            Connected = result.Connected,
            WeightsOnlyLength = result.Lengths.WeightsOnly,
            AllParametersLength = result.Lengths.AllParameters,
            Beads = result.BeadCount,
            MaxAlongPath = result.MaxAlongPath,
            Depth = result.Depth,
            Seconds = Math.Round(seconds, 3),
        };
    }
}

/// <summary>
/// A curve with trainable middle points (<see cref="CurveTraining"/>) between one pair's endpoints, measured on the
/// level's metric beside the straight line between the same endpoints.
/// </summary>
public sealed record LevelSetsCurve
{
    /// <summary>Bézier curve or polygonal chain.</summary>
    public required CurveKind Kind { get; init; }
    /// <summary>Trainable middle points.</summary>
    public required int Bends { get; init; }
    /// <summary>Training steps taken.</summary>
    public required long Steps { get; init; }
    /// <summary>Max of the level metric along the trained curve minus the endpoints' mean.</summary>
    public required double Barrier { get; init; }
    /// <summary>Max of the level metric along the trained curve.</summary>
    public required double MaxAlongCurve { get; init; }
    /// <summary>The straight line's barrier on the same metric and evaluation points (the untrained curve).</summary>
    public required double StraightBarrier { get; init; }
    /// <summary>Curve length over ‖B − A‖, all parameters (comparable to <see cref="LevelSetsPair.AllParametersLength"/>).</summary>
    public required double NormalizedLength { get; init; }
    /// <summary>Wall time of training and measuring the curve.</summary>
    public double Seconds { get; init; }
}

/// <summary>Mean and sample standard deviation of a few numbers (standard deviation NaN for fewer than two).</summary>
/// <param name="Count">How many numbers.</param>
/// <param name="Mean">Their mean (NaN when there are none).</param>
/// <param name="StandardDeviation">Their sample standard deviation (n − 1).</param>
public readonly record struct MeanAndSpread(int Count, double Mean, double StandardDeviation)
{
    /// <summary>The summary of <paramref name="values"/>.</summary>
    public static MeanAndSpread Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) return new MeanAndSpread(0, double.NaN, double.NaN);
        var mean = values.Average();
        var spread = values.Count < 2 ? double.NaN : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
        return new MeanAndSpread(values.Count, mean, spread);
    }
}

/// <summary>
/// One task (a polynomial toy or a network) at one level: every pair. One such record is one finished piece on disk.
/// </summary>
public sealed record LevelSetsLevelResult
{
    /// <summary>The settings key it was computed under (<see cref="LevelSetsSettings.Key"/> for the toys).</summary>
    public required string Key { get; init; }
    /// <summary>The task's name: <c>quadratic</c>, <c>cubic</c> (<see cref="LevelSetsExperiment.TaskName"/>) or a network's.</summary>
    public required string Task { get; init; }
    /// <summary>What L0 measures: the loss (the toys' mean absolute error), the test error in percent or the perplexity.</summary>
    public required LevelMetric Metric { get; init; }
    /// <summary>L0, in <see cref="Metric"/> (the toys: mean absolute error on the evaluation sample).</summary>
    public required double Level { get; init; }
    /// <summary>Seed of the endpoint initialisations.</summary>
    public required ulong EndpointSeed { get; init; }
    /// <summary>The pairs, in order.</summary>
    public required LevelSetsPair[] Pairs { get; init; }
    /// <summary>Wall time of the level, endpoint training included.</summary>
    public required double Seconds { get; init; }

    /// <summary>Pairs whose endpoints missed their target (no string searched).</summary>
    [JsonIgnore] public int SkippedPairs => Pairs.Count(p => p.Skipped is not null);
    /// <summary>Pairs whose string was searched.</summary>
    [JsonIgnore] public int SearchedPairs => Pairs.Length - SkippedPairs;
    /// <summary>Share of the searched pairs that connected (NaN when none was searched).</summary>
    [JsonIgnore] public double ConnectedFraction => SearchedPairs == 0 ? double.NaN : Pairs.Count(p => p.Connected) / (double)SearchedPairs;
    /// <summary>Weights-only normalised length (SpringNorm) over the connected pairs (a chain that does not connect is no path inside the level set).</summary>
    [JsonIgnore] public MeanAndSpread WeightsOnlyLength => MeanAndSpread.Of(Connected.Select(p => p.WeightsOnlyLength!.Value).ToArray());
    /// <summary>All-parameters normalised length over the connected pairs.</summary>
    [JsonIgnore] public MeanAndSpread AllParametersLength => MeanAndSpread.Of(Connected.Select(p => p.AllParametersLength!.Value).ToArray());
    /// <summary>Bead count over the connected pairs.</summary>
    [JsonIgnore] public MeanAndSpread Beads => MeanAndSpread.Of(Connected.Select(p => (double)p.Beads!.Value).ToArray());

    IEnumerable<LevelSetsPair> Connected => Pairs.Where(p => p.Connected);
}

/// <summary>How a level-sets run (<see cref="LevelSetsExperiment.RunToys"/>, or the networks') ended.</summary>
/// <param name="Levels">The finished levels (read from their pieces or computed), task by task, ascending L0.</param>
/// <param name="Computed">How many of them this invocation computed.</param>
/// <param name="Interrupted">Whether it was cancelled before every level was done.</param>
/// <param name="Seconds">Wall time of this invocation.</param>
public sealed record LevelSetsOutcome(IReadOnlyList<LevelSetsLevelResult> Levels, int Computed, bool Interrupted, double Seconds);

/// <summary>
/// Freeman and Bruna's level-set connectivity experiment (ICLR 2017, Sec. 3, Fig. 1), polynomial-toy part: for each
/// task and L0, 2·pairs endpoints are trained from random initialisations to α·L0 with <see cref="PolynomialToy.TrainEndpoints"/>
/// (ours: the authors train endpoints to L0 and only the beads to α·L0; the same target for both keeps every point of the
/// chain equally deep),
/// and each pair is joined by <see cref="DynamicStringSampling"/> with the authors' polynomial settings
/// (<see cref="StringSamplingOptions.ForPolynomialToys"/>: MAE, grid 100, t* = 0.5, α = 0.95, m = 1.1). Each finished
/// (task, level) is one JSON piece in the pieces folder, written atomically; a run reads the pieces it made before and
/// computes only the missing levels.
/// </summary>
public static class LevelSetsExperiment
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = "level-sets";

    static readonly JsonSerializerOptions PieceJson = new()
    {
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The name a polynomial task's pieces and report rows carry: <c>quadratic</c> or <c>cubic</c>.</summary>
    public static string TaskName(PolynomialTarget task) => task.ToString().ToLowerInvariant();

    /// <summary>The piece file of the task named <paramref name="task"/> at <paramref name="level"/> in <paramref name="piecesDir"/>.</summary>
    public static string PiecePath(string piecesDir, string task, double level) =>
        Path.Combine(piecesDir, string.Create(CultureInfo.InvariantCulture, $"{task}-L{level:R}.json"));

    /// <summary>The piece file of the polynomial <paramref name="task"/> at <paramref name="level"/> in <paramref name="piecesDir"/>.</summary>
    public static string PiecePath(string piecesDir, PolynomialTarget task, double level) => PiecePath(piecesDir, TaskName(task), level);

    /// <summary>
    /// The finished piece of <paramref name="task"/> at <paramref name="level"/>, or null when there is none. A piece made
    /// under other settings is an error (another seed or budget writing into the same folder), not silently replaced.
    /// </summary>
    /// <exception cref="InvalidDataException">The piece is unreadable, of another task, level or pair count, or of other settings.</exception>
    public static LevelSetsLevelResult? ReadPiece(string piecesDir, LevelSetsSettings settings, PolynomialTarget task, double level)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return ReadLevelFile(PiecePath(piecesDir, task, level), TaskName(task), LevelMetric.Loss, level, settings.Pairs, settings.Key);
    }

    /// <summary>
    /// The level record in <paramref name="path"/> (a finished piece), or null when there is none; every level-sets
    /// part reads its pieces through this, so they are refused alike.
    /// </summary>
    /// <exception cref="InvalidDataException">Unreadable, of another task, metric, level or pair count, or of another key; the message names the file.</exception>
    internal static LevelSetsLevelResult? ReadLevelFile(string path, string task, LevelMetric metric, double level, int pairs, string key)
    {
        if (!File.Exists(path)) return null;
        LevelSetsLevelResult? piece;
        try
        {
            piece = JsonSerializer.Deserialize<LevelSetsLevelResult>(File.ReadAllText(path), PieceJson);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a level-sets piece ({e.Message}); delete it to compute {task} L0 = {level} again", e);
        }
        if (piece is null || piece.Task != task || piece.Metric != metric || piece.Level != level || piece.Pairs?.Length != pairs)
            throw new InvalidDataException(
                $"{path}: holds {piece?.Task} {piece?.Metric} L0 = {piece?.Level} with {piece?.Pairs?.Length} pairs; expected {task} {metric} L0 = {level} " +
                $"with {pairs}. Delete it to compute it again");
        if (piece.Key != key)
            throw new InvalidDataException($"{path} was made with other settings ({piece.Key}; now {key}). Use another --runs folder or delete it");
        return piece;
    }

    /// <summary>Writes <paramref name="piece"/> to <paramref name="path"/> atomically, as <see cref="ReadLevelFile"/> reads it.</summary>
    internal static void WriteLevelFile(string path, LevelSetsLevelResult piece) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(piece, PieceJson) + "\n");

    /// <summary>
    /// Computes every (task, level) without a piece in <paramref name="piecesDir"/> (which the caller holds locked), task
    /// by task in ascending L0, writing each piece as it finishes. Cancelling keeps every finished piece, and the current
    /// level's finished pairs and string checkpoint (see <see cref="RunLevel"/>), from which the next call continues.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A piece of other settings is in the folder.</exception>
    public static LevelSetsOutcome RunToys(LevelSetsSettings settings, string piecesDir, Action<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(piecesDir);
        var results = new List<LevelSetsLevelResult>();
        var computed = 0;
        foreach (var task in settings.Tasks)
        {
            // Read every piece of the task before training anything: a folder of other settings fails at once.
            var pieces = settings.Levels(task).Select(level => ReadPiece(piecesDir, settings, task, level)).ToArray();
            PolynomialToy? toy = null;
            try
            {
                for (var i = 0; i < pieces.Length; i++)
                {
                    var level = settings.Levels(task)[i];
                    if (pieces[i] is { } finished)
                    {
                        log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{task} L0 = {level}: finished before ({PiecePath(piecesDir, task, level)})"));
                        results.Add(finished);
                        continue;
                    }
                    if (cancellation.IsCancellationRequested) return new LevelSetsOutcome(results, computed, true, watch.Elapsed.TotalSeconds);
                    toy ??= new PolynomialToy(settings.ToyOptions(task));
                    LevelSetsLevelResult piece;
                    try
                    {
                        piece = RunLevel(settings, toy, level, log, cancellation, piecesDir);
                    }
                    catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
                    {
                        log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{task} L0 = {level}: interrupted; the finished levels are kept"));
                        return new LevelSetsOutcome(results, computed, true, watch.Elapsed.TotalSeconds);
                    }
                    WriteLevelFile(PiecePath(piecesDir, task, level), piece);
                    DeleteLevelProgress(piecesDir, settings, task, level);
                    results.Add(piece);
                    computed++;
                    log?.Invoke(Describe(piece));
                }
            }
            finally
            {
                toy?.Dispose();
            }
        }
        return new LevelSetsOutcome(results, computed, false, watch.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// One level of one toy: trains 2·<see cref="LevelSetsSettings.Pairs"/> endpoints to α·L0 and searches a string
    /// between each pair whose two endpoints reached it; a pair with an endpoint that missed is recorded as skipped.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings, or a toy of another task's options.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> fired.</exception>
    /// <remarks>
    /// With <paramref name="piecesDir"/>, the level keeps its progress there: the finished pairs in
    /// <see cref="PartialPath"/> (rewritten atomically after each pair) and the string search in progress in
    /// <see cref="StringCheckpointPath"/>, so a cancelled level continues from its last finished pair and the string's
    /// last bead (the endpoints are trained again: they are deterministic and trained together in seconds).
    /// </remarks>
    /// <exception cref="InvalidDataException">The partial file is unreadable or of other settings, task or level.</exception>
    public static LevelSetsLevelResult RunLevel(LevelSetsSettings settings, PolynomialToy toy, double level, Action<string>? log = null,
        CancellationToken cancellation = default, string? piecesDir = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(toy);
        settings.Validate();
        var task = toy.Options.Target;
        if (toy.Options != settings.ToyOptions(task))
            throw new ArgumentException($"the toy's options ({toy.Options}) are not the settings' for {task} ({settings.ToyOptions(task)})", nameof(toy));
        var watch = Stopwatch.StartNew();
        var options = settings.SamplingOptions(level) with { Cancellation = cancellation };
        var seed = settings.EndpointSeed(task, level);
        using var scope = NewDisposeScope();
        log?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"{task} L0 = {level}: training {2 * settings.Pairs} endpoints to α·L0 = {options.BeadTarget:G4} (seed {seed}, at most {settings.MaxSteps} steps)"));
        var pairs = new LevelSetsPair[settings.Pairs];
        var partialPath = piecesDir is null ? null : PartialPath(piecesDir, task, level);
        var resumed = partialPath is null ? [] : ReadPartial(partialPath, settings, task, level);
        foreach (var done in resumed) pairs[done.Index] = done;
        if (resumed.Length > 0)
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{task} L0 = {level}: {resumed.Length} of {settings.Pairs} pairs finished before ({partialPath}); continuing"));
        var endpoints = toy.TrainEndpoints(2 * settings.Pairs, seed, options.BeadTarget, cancellation);
        for (var p = 0; p < settings.Pairs; p++)
        {
            if (pairs[p] is not null) continue;
            var (a, b) = (endpoints[2 * p], endpoints[2 * p + 1]);
            var pair = new LevelSetsPair
            {
                Index = p, EndpointLossA = a.Measure.Loss, EndpointLossB = b.Measure.Loss, EndpointStepsA = a.Steps, EndpointStepsB = b.Steps,
            };
            if (!a.Reached || !b.Reached)
            {
                var missed = string.Join(" and ", new[] { (a, "A"), (b, "B") }.Where(e => !e.Item1.Reached)
                    .Select(e => string.Create(CultureInfo.InvariantCulture, $"endpoint {e.Item2} ended at MAE {e.Item1.Measure.Loss:G4} after {e.Item1.Steps} steps")));
                pairs[p] = pair with { Skipped = string.Create(CultureInfo.InvariantCulture, $"{missed}, above α·L0 = {options.BeadTarget:G4}") };
                log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{task} L0 = {level}: pair {p} skipped: {pairs[p].Skipped}"));
                if (partialPath is not null) WritePartial(partialPath, settings, task, level, pairs);
                continue;
            }
            var pairWatch = Stopwatch.StartNew();
            var stringCheckpoint = piecesDir is null ? null : StringCheckpointPath(piecesDir, task, level, p);
            using var result = DynamicStringSampling.Run(toy, a.Point, b.Point, options with { CheckpointPath = stringCheckpoint });
            pairs[p] = pair.WithString(result, pairWatch.Elapsed.TotalSeconds);
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{task} L0 = {level}: pair {p} {(result.Connected ? "joined" : "NOT joined")} by {result.BeadCount} beads at depth {result.Depth}, " +
                $"length {result.Lengths.WeightsOnly:0.000}, max along the path {result.MaxAlongPath:G4} ({pairs[p].Seconds:0.0} s)"));
            var curve = TrainCurve(toy, a.Point, b.Point, settings.CurveOptions(task, level, p) with { Cancellation = cancellation }, LevelMetric.Loss);
            pairs[p] = pairs[p] with { Curve = curve };
            if (partialPath is not null)
            {
                WritePartial(partialPath, settings, task, level, pairs);
                AtomicFile.TryDelete(stringCheckpoint!);
            }
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{task} L0 = {level}: pair {p} {curve.Kind} curve: barrier {curve.Barrier:G4} (straight line {curve.StraightBarrier:G4}), " +
                $"max {curve.MaxAlongCurve:G4}, length {curve.NormalizedLength:0.000} ({curve.Seconds:0.0} s)"));
        }
        return new LevelSetsLevelResult
        {
            Key = settings.Key, Task = TaskName(task), Metric = LevelMetric.Loss, Level = level, EndpointSeed = seed, Pairs = pairs, Seconds = Math.Round(watch.Elapsed.TotalSeconds, 3),
        };
    }

    /// <summary>The file holding the finished pairs of a toy level in progress.</summary>
    public static string PartialPath(string piecesDir, PolynomialTarget task, double level) =>
        Path.Combine(piecesDir, string.Create(CultureInfo.InvariantCulture, $"{TaskName(task)}-L{level:R}-partial.json"));

    /// <summary>The string search checkpoint of pair <paramref name="pair"/> of a toy level in progress.</summary>
    public static string StringCheckpointPath(string piecesDir, PolynomialTarget task, double level, int pair) =>
        Path.Combine(piecesDir, string.Create(CultureInfo.InvariantCulture, $"{TaskName(task)}-L{level:R}-pair{pair}.dss"));

    static LevelSetsPair[] ReadPartial(string path, LevelSetsSettings settings, PolynomialTarget task, double level)
    {
        if (!File.Exists(path)) return [];
        LevelSetsLevelResult? partial;
        try
        {
            partial = JsonSerializer.Deserialize<LevelSetsLevelResult>(File.ReadAllText(path), PieceJson);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a level's finished pairs ({e.Message}); delete it to compute {task} L0 = {level} from its first pair", e);
        }
        if (partial is null || partial.Task != TaskName(task) || partial.Level != level || partial.Key != settings.Key || partial.Pairs is null
            || partial.Pairs.Any(p => p is null || p.Index < 0 || p.Index >= settings.Pairs) || partial.Pairs.Select(p => p.Index).Distinct().Count() != partial.Pairs.Length)
            throw new InvalidDataException(
                $"{path}: holds pairs of {partial?.Task} L0 = {partial?.Level} made with {partial?.Key}; expected {TaskName(task)} L0 = {level} with {settings.Key}. " +
                "Delete it (and the level's .dss files) to compute the level from its first pair");
        return partial.Pairs;
    }

    static void WritePartial(string path, LevelSetsSettings settings, PolynomialTarget task, double level, LevelSetsPair?[] pairs)
    {
        var partial = new LevelSetsLevelResult
        {
            Key = settings.Key, Task = TaskName(task), Metric = LevelMetric.Loss, Level = level, EndpointSeed = settings.EndpointSeed(task, level),
            Pairs = pairs.OfType<LevelSetsPair>().ToArray(), Seconds = 0,
        };
        WriteLevelFile(path, partial);
    }

    static void DeleteLevelProgress(string piecesDir, LevelSetsSettings settings, PolynomialTarget task, double level)
    {
        AtomicFile.TryDelete(PartialPath(piecesDir, task, level));
        for (var p = 0; p < settings.Pairs; p++) AtomicFile.TryDelete(StringCheckpointPath(piecesDir, task, level, p));
    }

    /// <summary>
    /// Trains the curve of <paramref name="options"/> between <paramref name="a"/> and <paramref name="b"/> on
    /// <paramref name="problem"/> and measures it beside the straight line between the same endpoints, both on
    /// <paramref name="metric"/> at the same evaluation points. Shared with the networks' part.
    /// </summary>
    /// <exception cref="ArgumentException">The problem does not measure <paramref name="metric"/>, or bad options.</exception>
    /// <exception cref="OperationCanceledException">The options' cancellation fired.</exception>
    public static LevelSetsCurve TrainCurve(IConnectivityProblem problem, Tensor a, Tensor b, CurveTrainingOptions options, LevelMetric metric)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        var watch = Stopwatch.StartNew();
        using var trained = CurveTraining.Train(problem, a, b, options);
        using var straight = ConnectivityCurve.Straight(options.Kind, trained.Curve.EndpointA, trained.Curve.EndpointB, options.Bends);
        var line = CurveTraining.Evaluate(problem, straight, options.EvaluationPoints, options.LengthSteps);
        static double BarrierOf(CurveEvaluation e, LevelMetric metric) => metric switch
        {
            LevelMetric.ErrorPercent => e.Barrier.ErrorPercent ?? throw new ArgumentException("the problem measures no error percent", nameof(metric)),
            LevelMetric.Perplexity => e.Barrier.Perplexity ?? throw new ArgumentException("the problem measures no perplexity", nameof(metric)),
            _ => e.Barrier.Loss,
        };
        return new LevelSetsCurve
        {
            Kind = options.Kind,
            Bends = options.Bends,
            Steps = trained.Losses.Count,
            Barrier = BarrierOf(trained.Evaluation, metric),
            MaxAlongCurve = trained.Evaluation.Max(metric),
            StraightBarrier = BarrierOf(line, metric),
            NormalizedLength = trained.Evaluation.NormalizedLength,
            Seconds = Math.Round(watch.Elapsed.TotalSeconds, 3),
        };
    }

    /// <summary>One line about a finished level: connected share, lengths and beads (mean ± std over the connected pairs).</summary>
    public static string Describe(LevelSetsLevelResult piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        var (w, all, beads) = (piece.WeightsOnlyLength, piece.AllParametersLength, piece.Beads);
        var curves = piece.Pairs.Select(p => p.Curve).OfType<LevelSetsCurve>().ToArray();
        var curveText = curves.Length == 0 ? "" : string.Create(CultureInfo.InvariantCulture,
            $", curve barrier {curves.Average(c => c.Barrier):G3} (straight line {curves.Average(c => c.StraightBarrier):G3})");
        return string.Create(CultureInfo.InvariantCulture,
            $"{piece.Task} L0 = {piece.Level}: {piece.Pairs.Count(p => p.Connected)}/{piece.SearchedPairs} connected ({piece.SkippedPairs} skipped), " +
            $"length {w.Mean:0.000} ± {w.StandardDeviation:0.000} (all parameters {all.Mean:0.000} ± {all.StandardDeviation:0.000}), " +
            $"beads {beads.Mean:0.0} ± {beads.StandardDeviation:0.0}{curveText} ({piece.Seconds:0.0} s)");
    }
}
