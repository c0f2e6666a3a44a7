using System.Globalization;
using System.Text.Json;
using WideValley.DeepLinear;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>The noise kinds the noise-rank experiment compares (one per run, besides <see cref="None"/>).</summary>
public enum NoiseRankKind
{
    /// <summary>Plain gradient descent.</summary>
    None,
    /// <summary>(a) Gaussian noise added to each layer's gradient.</summary>
    Gradient,
    /// <summary>(b) Multiplicative N(1, s^2) noise on the weights in the forward pass (the default architecture noise).</summary>
    Weights,
    /// <summary>(b') Multiplicative N(1, s^2) noise on the hidden activations.</summary>
    Activations,
    /// <summary>(c) Additive Gaussian noise on the inputs.</summary>
    Inputs,
    /// <summary>(c) Additive Gaussian noise on the targets.</summary>
    Outputs,
}

/// <summary>The two starts the experiment trains from.</summary>
public enum NoiseRankStart
{
    /// <summary>Every hidden layer's activity confined to a random subspace (<see cref="DeepLinearInit.RankDeficient"/>).</summary>
    RankDeficient,
    /// <summary>LeCun-normal weights (<see cref="DeepLinearInit.Standard"/>), full rank.</summary>
    Standard,
}

/// <summary>One training condition: a noise kind at one initial scale (the schedule is the settings').</summary>
/// <param name="Kind">The kind.</param>
/// <param name="Scale">sigma_0 (0 for <see cref="NoiseRankKind.None"/>).</param>
public sealed record NoiseRankCondition(NoiseRankKind Kind, double Scale)
{
    /// <summary>The condition's name in tables and files, e.g. "gradient 0.1" or "none".</summary>
    public string Name => Kind == NoiseRankKind.None ? "none" : $"{NoiseRankSettings.KindName(Kind)} {Scale.ToString("G4", CultureInfo.InvariantCulture)}";
}

/// <summary>
/// Settings of the noise-rank experiment (seed 004, arXiv 1807.08140; the whole protocol is ours: the paper's
/// abstract gives no sizes, noise scales or schedules). <see cref="For"/> gives each budget's defaults.
/// </summary>
public sealed record NoiseRankSettings
{
    /// <summary>The budget these settings were made for.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;

    /// <summary>Depths L (weight matrices) to run; each (depth, width) pair is one configuration.</summary>
    public IReadOnlyList<int> Depths { get; init; } = [3];

    /// <summary>Hidden widths to run (all hidden layers of a network have the same width).</summary>
    public IReadOnlyList<int> Widths { get; init; } = [8];

    /// <summary>d_0 = d_L, the input and output dimension (null: the hidden width of each configuration).</summary>
    public int? Dims { get; init; }

    /// <summary>rank(A).</summary>
    public int TargetRank { get; init; } = 4;

    /// <summary>The teacher's largest singular value; the others are equally spaced down to <see cref="SmallestSingularValue"/>.</summary>
    public double LargestSingularValue { get; init; } = 2.0;

    /// <summary>The teacher's smallest non-zero singular value.</summary>
    public double SmallestSingularValue { get; init; } = 0.5;

    /// <summary>The rank of the rank-deficient start (null: half of min(rank(A), narrowest width), at least 1).</summary>
    public int? InitRank { get; init; }

    /// <summary>The standard deviation factor of the LeCun-normal start (each entry N(0, scale^2 / fan_in)).</summary>
    public double InitScale { get; init; } = 1.0;

    /// <summary>N, training samples per seed (full-batch gradient descent).</summary>
    public int Samples { get; init; } = 64;

    /// <summary>How the inputs are drawn.</summary>
    public InputDistribution Inputs { get; init; } = InputDistribution.Whitened;

    /// <summary>Gradient-descent steps.</summary>
    public int Steps { get; init; } = 300;

    /// <summary>Measurements are taken at step 0 and every this many steps (and at the last step).</summary>
    public int LogEvery { get; init; } = 30;

    /// <summary>The step size.</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>Seeds per condition (teacher, data and start come from the seed; every condition of a seed shares them).</summary>
    public int Seeds { get; init; } = 2;

    /// <summary>The first seed; the others follow.</summary>
    public long FirstSeed { get; init; } = 1;

    /// <summary>How every noise scale is annealed.</summary>
    public AnnealingKind Schedule { get; init; } = AnnealingKind.InverseTimePower;

    /// <summary>gamma of <see cref="AnnealingKind.InverseTimePower"/> (Neelakantan et al.'s 0.55).</summary>
    public double Gamma { get; init; } = NoiseSchedule.NeelakantanGamma;

    /// <summary>The half-life in steps of <see cref="AnnealingKind.Exponential"/>.</summary>
    public double HalfLife { get; init; } = 1000;

    /// <summary>sigma_0 of gradient noise, one condition each.</summary>
    public IReadOnlyList<double> GradientScales { get; init; } = [0.1];

    /// <summary>s_0 of multiplicative weight noise.</summary>
    public IReadOnlyList<double> WeightScales { get; init; } = [0.3];

    /// <summary>s_0 of multiplicative activation noise.</summary>
    public IReadOnlyList<double> ActivationScales { get; init; } = [0.3];

    /// <summary>sigma_0 of input noise.</summary>
    public IReadOnlyList<double> InputScales { get; init; } = [0.3];

    /// <summary>sigma_0 of output noise.</summary>
    public IReadOnlyList<double> OutputScales { get; init; } = [0.3];

    /// <summary>A run "reaches the global optimum" when its final excess loss is at most this fraction of L(0) (ours).</summary>
    public double ReachedFraction { get; init; } = 1e-3;

    /// <summary>The floating type of training (measurements are float64).</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float64;

    /// <summary>The defaults of a budget.</summary>
    public static NoiseRankSettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new NoiseRankSettings { Budget = budget },
        Budget.Small => new NoiseRankSettings
        {
            Budget = budget, Depths = [2, 4], Widths = [16], TargetRank = 8, Steps = 12000, LogEvery = 120, Seeds = 5,
            GradientScales = [0.03, 0.3], WeightScales = [0.1, 0.3], ActivationScales = [0.1, 0.3], InputScales = [0.1, 0.3], OutputScales = [0.1, 0.3],
        },
        Budget.Paper => new NoiseRankSettings
        {
            Budget = budget, Depths = [2, 3, 4, 6], Widths = [16, 32], TargetRank = 8, Steps = 30000, LogEvery = 300, Seeds = 5,
            GradientScales = [0.01, 0.03, 0.1, 0.3], WeightScales = [0.03, 0.1, 0.3], ActivationScales = [0.03, 0.1, 0.3],
            InputScales = [0.03, 0.1, 0.3], OutputScales = [0.03, 0.1, 0.3],
        },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>The CLI's name of a kind.</summary>
    public static string KindName(NoiseRankKind kind) => kind switch
    {
        NoiseRankKind.None => "none",
        NoiseRankKind.Gradient => "gradient",
        NoiseRankKind.Weights => "weights",
        NoiseRankKind.Activations => "activations",
        NoiseRankKind.Inputs => "inputs",
        NoiseRankKind.Outputs => "outputs",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown noise kind"),
    };

    /// <summary>The CLI's name of a start.</summary>
    public static string StartName(NoiseRankStart start) => start == NoiseRankStart.RankDeficient ? "rank-deficient" : "standard";

    /// <summary>The noise kinds in report order, <see cref="NoiseRankKind.None"/> first.</summary>
    public static IReadOnlyList<NoiseRankKind> Kinds { get; } = Enum.GetValues<NoiseRankKind>();

    /// <summary>The scales of one kind ([0] for none).</summary>
    public IReadOnlyList<double> ScalesOf(NoiseRankKind kind) => kind switch
    {
        NoiseRankKind.None => [0.0],
        NoiseRankKind.Gradient => GradientScales,
        NoiseRankKind.Weights => WeightScales,
        NoiseRankKind.Activations => ActivationScales,
        NoiseRankKind.Inputs => InputScales,
        NoiseRankKind.Outputs => OutputScales,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown noise kind"),
    };

    /// <summary>Every condition: none first, then each kind's scales in the given order.</summary>
    public IReadOnlyList<NoiseRankCondition> Conditions => Kinds.SelectMany(k => ScalesOf(k).Select(s => new NoiseRankCondition(k, s))).ToList();

    /// <summary>The annealed schedule of scale <paramref name="scale"/>.</summary>
    public NoiseSchedule ScheduleOf(double scale) => new(Schedule, scale, Gamma, HalfLife);

    /// <summary>The library's noise setting of a condition.</summary>
    public DeepLinearNoise NoiseOf(NoiseRankCondition c)
    {
        var s = ScheduleOf(c.Scale);
        return c.Kind switch
        {
            NoiseRankKind.None => DeepLinearNoise.None,
            NoiseRankKind.Gradient => new DeepLinearNoise { Gradient = s },
            NoiseRankKind.Weights => new DeepLinearNoise { Weights = s },
            NoiseRankKind.Activations => new DeepLinearNoise { Activations = s },
            NoiseRankKind.Inputs => new DeepLinearNoise { Inputs = s },
            NoiseRankKind.Outputs => new DeepLinearNoise { Outputs = s },
            _ => throw new ArgumentOutOfRangeException(nameof(c), c.Kind, "unknown noise kind"),
        };
    }

    /// <summary>The (depth, width) configurations, depths outer.</summary>
    public IReadOnlyList<(int Depth, int Width)> Configurations => Depths.SelectMany(d => Widths.Select(w => (d, w))).ToList();

    /// <summary>d_0 = d_L of a configuration.</summary>
    public int DimsFor(int width) => Dims ?? width;

    /// <summary>The network's widths d_0 ... d_L.</summary>
    public int[] NetworkWidths(int depth, int width) => [DimsFor(width), .. Enumerable.Repeat(width, depth - 1), DimsFor(width)];

    /// <summary>The narrowest width of a configuration (the optimum's rank constraint).</summary>
    public int NarrowestWidth(int depth, int width) => NetworkWidths(depth, width).Min();

    /// <summary>The rank-deficient start's rank in a configuration.</summary>
    public int InitRankFor(int depth, int width) => InitRank ?? Math.Max(1, Math.Min(TargetRank, NarrowestWidth(depth, width)) / 2);

    /// <summary>The teacher's singular values: equally spaced from the largest down to the smallest.</summary>
    public double[] TeacherSpectrum => TargetRank == 1
        ? [LargestSingularValue]
        : Enumerable.Range(0, TargetRank).Select(i => LargestSingularValue + (SmallestSingularValue - LargestSingularValue) * i / (TargetRank - 1)).ToArray();

    /// <summary>The steps at which measurements are taken: 0, every <see cref="LogEvery"/>, and the last.</summary>
    public int[] LogSteps
    {
        get
        {
            var steps = new List<int>();
            for (var t = 0; t < Steps; t += LogEvery) steps.Add(t);
            steps.Add(Steps);
            return [.. steps];
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        if (Depths is null || Depths.Count == 0) throw new ArgumentException("--depth needs at least one depth");
        foreach (var d in Depths) if (d < 2) throw new ArgumentException($"--depth must be at least 2 (a rank-deficient start needs a hidden layer), got {d}");
        if (Widths is null || Widths.Count == 0) throw new ArgumentException("--width needs at least one width");
        foreach (var w in Widths) if (w < 1) throw new ArgumentException($"--width must be positive, got {w}");
        if (Dims is < 1) throw new ArgumentException($"--dims must be positive, got {Dims}");
        foreach (var w in Widths)
        {
            var dims = DimsFor(w);
            if (TargetRank < 1 || TargetRank > dims) throw new ArgumentException($"--target-rank must be between 1 and the input/output dimension {dims}, got {TargetRank}");
            if (Samples < dims) throw new ArgumentException($"--samples must be at least the input dimension {dims}, got {Samples}");
            foreach (var d in Depths)
            {
                var r = InitRankFor(d, w);
                if (r < 0 || r > w) throw new ArgumentException($"--init-rank must be between 0 and the hidden width {w}, got {r}");
            }
        }
        if (!(LargestSingularValue >= SmallestSingularValue) || !(SmallestSingularValue > 0) || !double.IsFinite(LargestSingularValue))
            throw new ArgumentException($"the teacher's singular values need 0 < smallest <= largest, got {Text(SmallestSingularValue)} and {Text(LargestSingularValue)}");
        if (!(InitScale > 0) || !double.IsFinite(InitScale)) throw new ArgumentException($"--init-scale must be positive, got {Text(InitScale)}");
        if (Steps < 1) throw new ArgumentException($"--steps must be positive, got {Steps}");
        if (LogEvery < 1) throw new ArgumentException($"--log-every must be positive, got {LogEvery}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException($"--lr must be positive, got {Text(LearningRate)}");
        if (Seeds < 1) throw new ArgumentException($"--seeds must be at least 1, got {Seeds}");
        if (!(ReachedFraction > 0)) throw new ArgumentException($"the reached-optimum fraction must be positive, got {Text(ReachedFraction)}");
        if (Dtype is not (ScalarType.Float32 or ScalarType.Float64)) throw new ArgumentException($"--dtype must be float32 or float64, got {Dtype}");
        foreach (var kind in Kinds.Skip(1))
        {
            var scales = ScalesOf(kind);
            if (scales is null) throw new ArgumentException($"the {KindName(kind)} noise scales are missing");
            foreach (var s in scales)
                if (!(s > 0) || !double.IsFinite(s)) throw new ArgumentException($"--{KindName(kind)}-scales: every scale must be positive and finite, got {Text(s)}");
            if (scales.Distinct().Count() != scales.Count) throw new ArgumentException($"--{KindName(kind)}-scales repeats a scale");
            ScheduleOf(scales.FirstOrDefault(1)).Validate($"{KindName(kind)} noise");
        }
    }

    /// <summary>What a finished piece depends on besides its configuration and start: a folder of pieces made otherwise is refused.</summary>
    internal string PieceKey() => JsonSerializer.Serialize(new
    {
        dims = Dims, target_rank = TargetRank, largest = LargestSingularValue, smallest = SmallestSingularValue, init_rank = InitRank,
        init_scale = InitScale, samples = Samples, inputs = Inputs.ToString(), steps = Steps, log_every = LogEvery, lr = LearningRate,
        seeds = Seeds, first_seed = FirstSeed, schedule = Schedule.ToString(), gamma = Gamma, half_life = HalfLife,
        gradient = GradientScales, weights = WeightScales, activations = ActivationScales, input_noise = InputScales, output_noise = OutputScales,
        dtype = Dtype.ToString(),
    });

    static string Text(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
