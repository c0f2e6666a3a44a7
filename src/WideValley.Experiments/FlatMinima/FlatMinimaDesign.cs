using System.Globalization;
using WideValley.Data;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>One network of the flat-minima benchmark: the zoo model, its data and its budgets.</summary>
/// <param name="Name">The name the CLI takes (the zoo's model name unless <paramref name="ZooModel"/> says otherwise).</param>
/// <param name="Title">The name in reports.</param>
/// <param name="IsLanguageModel">Char-level language model (reports perplexity; no flatness report).</param>
/// <param name="ZooModel">The zoo's model name when it differs from <paramref name="Name"/> (null: the same).</param>
public sealed record FlatMinimaNetwork(string Name, string Title, bool IsLanguageModel, string? ZooModel = null)
{
    /// <summary>The zoo model the runs train.</summary>
    public string Model => ZooModel ?? Name;
}

/// <summary>How much one network trains at one budget.</summary>
/// <param name="TrainingImages">Training images the final runs use (null: the whole training set, or the corpus's training text).</param>
/// <param name="SearchImages">Training images of a search trial, validation part included (null: the corpus's own split).</param>
/// <param name="SearchEffectiveEpochs">Effective epochs of every search trial.</param>
/// <param name="FinalEffectiveEpochs">Effective epochs of every final run.</param>
/// <param name="EvaluateEvery">Effective epochs between evaluations, the same for every arm.</param>
/// <param name="FlatnessSamples">Training samples the flatness measures use (the first ones), and as many test samples.</param>
public sealed record FlatMinimaScale(long? TrainingImages, long? SearchImages, double SearchEffectiveEpochs, double FinalEffectiveEpochs, double EvaluateEvery, int FlatnessSamples);

/// <summary>One candidate of an arm's hyper-parameter grid: a name for reports and folders, and its settings applied to a base run.</summary>
/// <param name="Description">The candidate's settings in words (e.g. "lr 0.1, rho 0.05").</param>
/// <param name="Apply">The candidate's run, from the network's base configuration.</param>
public sealed record FlatMinimaCandidate(string Description, Func<RunConfig, RunConfig> Apply);

/// <summary>An arm of the benchmark: an optimizer (or SGD with a regulariser) and its grid.</summary>
/// <param name="Key">Folder and CLI name (sgd, adam, entropy, ...).</param>
/// <param name="Title">The name in reports (for the language model the local-entropy arm is Entropy-Adam).</param>
/// <param name="IsBaseline">SGD (Nesterov) and Adam: the arms every other arm is judged against.</param>
/// <param name="OnlyOn">The one network the arm is defined for (null: every network); on the others it is not applicable.</param>
/// <param name="DefinedFor">What the arm is defined for, in words (reports say "not applicable (defined for ...)"); with <paramref name="OnlyOn"/>.</param>
public sealed record FlatMinimaArm(string Key, string Title, bool IsBaseline, string? OnlyOn = null, string? DefinedFor = null);

/// <summary>
/// The design of <c>widevalley reproduce flat-minima</c> (ours throughout; see docs/flat-minima.md): the networks, the
/// arms with their grids, the budgets, and what a gradient evaluation costs in each arm. Equal cost means the same
/// effective epochs (gradient evaluations x batch / training-set size) for every arm: SAM and ASAM evaluate two
/// gradients per step and the trainer counts both; the Hessian-trace regulariser's extra passes are not closure calls,
/// so its runs are given proportionally fewer counted gradient evaluations (<see cref="CostPerCountedGradient"/>).
/// DANTE evaluates one gradient per step (its active block's: one closure call, counted as one whole gradient, as
/// every arm's) and runs only on the one-hidden-layer network it is defined for (<see cref="NotApplicable"/>).
/// </summary>
public static class FlatMinimaDesign
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The experiment's name: report stem and runs folder.</summary>
    public const string Name = "flat-minima";

    /// <summary>Candidates per arm's grid: every arm is searched over the same number of trials (at most this many).</summary>
    public const int GridSize = 4;

    /// <summary>Fraction of a search's training images held out as its validation split.</summary>
    public const double ValidationFraction = 0.1;

    /// <summary>The seed of every search trial (initial weights, data order, validation split, noise): the same for every arm.</summary>
    public const long SearchSeed = 1000;

    /// <summary>Minibatch size of the image networks.</summary>
    public const int ImageBatch = 128;

    /// <summary>Minibatch rows of the char-LSTM.</summary>
    public const int TextBatch = 32;

    /// <summary>Hutchinson probes of the HTR arm (antithetic estimator on images; exact on the LSTM, where only it applies).</summary>
    public const int HtrProbes = 1;

    /// <summary>The HTR arm penalises every this many steps.</summary>
    public const int HtrFrequency = 10;

    /// <summary>Every network, in report order.</summary>
    public static IReadOnlyList<FlatMinimaNetwork> Networks { get; } =
    [
        new("lenet", "LeNet", false),
        new("mnistfc", "mnistfc", false),
        new(OneHiddenLayerNetwork, "MLP with one hidden layer (784-100-10, generalised ReLU, Fashion-MNIST)", false, OneHiddenLayerModel),
        new("char-lstm", "char-LSTM", true),
        new("allcnn", "All-CNN-BN", false),
    ];

    /// <summary>Every arm, in report order (baselines first).</summary>
    public static IReadOnlyList<FlatMinimaArm> Arms { get; } =
    [
        new("sgd", "SGD (Nesterov)", true),
        new("adam", "Adam", true),
        new("entropy", "Entropy-SGD", false),
        new("sgld", "SGLD", false),
        new("annealsgd", "AnnealSGD", false),
        new("sam", "SAM", false),
        new("asam", "ASAM", false),
        new("sgd-htr", "SGD+HTR", false),
        new("adine", "ADINE", false),
        new("noise", "gradient noise", false),
        new("dante", "DANTE", false, OneHiddenLayerNetwork, "one hidden layer"),
    ];

    /// <summary>The CLI name of the one-hidden-layer network, the only one DANTE is defined for.</summary>
    public const string OneHiddenLayerNetwork = "mlp1";

    /// <summary>Its zoo model: 784-100-10 with the generalised ReLU, one of the networks `reproduce dante` trains.</summary>
    public const string OneHiddenLayerModel = "mlp1-grelu";

    /// <summary>
    /// DANTE's eta grid (ours): the pilot's grid of `reproduce dante` in search order, its choice
    /// (<see cref="DanteComparison.DefaultDanteLearningRate"/>, 0.1) first, then the SGD arms' order around it.
    /// </summary>
    public static IReadOnlyList<double> DanteRates { get; } = [DanteComparison.DefaultDanteLearningRate, 0.03, 0.3, 0.01];

    /// <summary>Where DANTE runs and why (stated in the report; ours).</summary>
    public const string DanteScope =
        "DANTE is defined for networks with one hidden layer (alternating minimisation over the layers, each layer's sub-problem solved by normalised SGD, " +
        "quasi-convex for one layer of a one-hidden-layer network), so it runs only on the one-hidden-layer network `mlp1` (the zoo's `mlp1-grelu`, 784-100-10 with " +
        "the generalised ReLU, one of the networks `reproduce dante` trains); on the other networks its cells read \"not applicable (defined for one hidden layer)\". " +
        "Our design choice: every other arm runs on `mlp1` too, so DANTE has both baselines and every method a comparable column there. DANTE is the optimizer as " +
        "registered and as `reproduce dante` runs it (one block per layer's weight and bias, forward sweeps, K = one epoch of the run's own training split per block), " +
        "with its eta searched like every arm's step size.";

    /// <summary>Null when <paramref name="arm"/> applies to <paramref name="network"/>, else "not applicable (defined for ...)".</summary>
    public static string? NotApplicable(FlatMinimaArm arm, FlatMinimaNetwork network)
    {
        ArgumentNullException.ThrowIfNull(arm);
        ArgumentNullException.ThrowIfNull(network);
        return arm.OnlyOn is { } only && only != network.Name ? $"not applicable (defined for {arm.DefinedFor})" : null;
    }

    /// <summary>True when <paramref name="arm"/> runs on <paramref name="network"/>.</summary>
    public static bool Applies(FlatMinimaArm arm, FlatMinimaNetwork network) => NotApplicable(arm, network) is null;

    /// <summary>The network named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name; lists the networks.</exception>
    public static FlatMinimaNetwork Network(string name) => Networks.FirstOrDefault(n => n.Name == name)
        ?? throw new ArgumentException($"--networks: unknown network '{name}'; the networks are {string.Join(", ", Networks.Select(n => n.Name))}");

    /// <summary>The arm named <paramref name="key"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name; lists the arms.</exception>
    public static FlatMinimaArm Arm(string key) => Arms.FirstOrDefault(a => a.Key == key)
        ?? throw new ArgumentException($"--arms: unknown arm '{key}'; the arms are {string.Join(", ", Arms.Select(a => a.Key))}");

    /// <summary>The arm's name in reports for a network (Entropy-Adam on the language model).</summary>
    public static string Title(FlatMinimaArm arm, FlatMinimaNetwork network) =>
        arm.Key == "entropy" && network.IsLanguageModel ? "Entropy-Adam" : arm.Title;

    /// <summary>The budgets of a network (see docs/flat-minima.md).</summary>
    public static FlatMinimaScale Scale(FlatMinimaNetwork network, Budget budget) => (network.IsLanguageModel, network.Name, budget) switch
    {
        (true, _, Budget.Smoke) => new(null, null, 0.02, 0.02, 0.01, 0),
        (true, _, Budget.Small) => new(null, null, 1, 2, 0.25, 0),
        (true, _, Budget.Paper) => new(null, null, 1, 10, 0.5, 0),
        (false, "allcnn", Budget.Smoke) => new(256, 256, 0.5, 1, 0.5, 64),
        (false, "allcnn", Budget.Small) => new(10_000, 10_000, 5, 10, 1, 1000),
        (false, "allcnn", Budget.Paper) => new(null, 10_000, 5, 60, 2, 1000),
        (false, _, Budget.Smoke) => new(512, 512, 0.5, 1, 0.5, 64),
        (false, _, Budget.Small) => new(12_000, 12_000, 5, 10, 1, 1000),
        (false, _, Budget.Paper) => new(null, 12_000, 5, 30, 1, 1000),
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>What a budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Smoke => "LeNet/mnistfc/mlp1: 512 training images, search trials 0.5 effective epochs, final runs 1, evaluated every 0.5; the char-LSTM 0.02 effective epochs; for checking that everything runs, not for results",
        Budget.Small => "LeNet/mnistfc/mlp1: the search on 12,000 training images (10% held out) for 5 effective epochs, final runs on the first 12,000 for 10, evaluated every effective epoch; " +
                        "All-CNN-BN 10,000 images, 5 and 10; the char-LSTM 1 and 2 effective epochs",
        Budget.Paper => "the search as at the small budget; final runs on the whole training set: LeNet/mnistfc/mlp1 30 effective epochs (evaluated every one), All-CNN-BN 60 (every 2), the char-LSTM 10 (every 0.5)",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>The budget the search runs at: smoke for a smoke run, else small.</summary>
    public static Budget SearchBudget(Budget budget) => budget == Budget.Smoke ? Budget.Smoke : Budget.Small;

    /// <summary>
    /// Gradient evaluations one counted gradient evaluation stands for: 1, except for a run with the Hessian-trace
    /// regulariser, whose penalised steps cost extra passes the trainer does not count (the antithetic estimator: 2K
    /// forward+backward passes instead of 1; the exact one: about 2K gradient-sized backward passes on top, counted as
    /// 2K gradients; ours).
    /// </summary>
    public static double CostPerCountedGradient(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.HessianTrace is not { } htr) return 1;
        var extra = htr.Estimator switch
        {
            HessianTraceEstimator.Antithetic => 2.0 * htr.Probes - 1,
            HessianTraceEstimator.FiniteDifference => 2.0 * htr.Probes,
            _ => 2.0 * htr.Probes,
        };
        return 1 + extra / htr.Frequency;
    }

    /// <summary>
    /// The trainer's effective-epoch budget that makes a run cost <paramref name="effectiveEpochs"/> gradient evaluations
    /// per training sample: the budget divided by <see cref="CostPerCountedGradient"/>.
    /// </summary>
    public static RunConfig AtCost(RunConfig config, double effectiveEpochs, double evaluateEvery)
    {
        var factor = CostPerCountedGradient(config);
        return config with
        {
            // The effective-epoch budget ends every run: an epoch is at least one counted effective epoch.
            Epochs = (int)Math.Ceiling(effectiveEpochs / factor) + 1,
            EffectiveEpochBudget = effectiveEpochs / factor,
            EvalEveryEffectiveEpochs = evaluateEvery / factor,
        };
    }

    /// <summary>The base configuration of a network: data, batch, seed; the arm adds its optimizer.</summary>
    public static RunConfig Base(FlatMinimaNetwork network, FlatMinimaData data, long seed, int threads, string device)
    {
        var common = new RunConfig
        {
            Model = network.Model,
            Seed = seed,
            Threads = threads,
            Device = device,
            TensorBoard = false,
            LrSchedule = "const",
            BnRecalibrate = BatchNormRecalibrationMode.Auto,
        };
        return network.Name switch
        {
            "char-lstm" => common with { Data = RunSetup.Text, Corpus = data.Corpus, BatchSize = TextBatch, ClipGradNorm = 5 },
            "allcnn" => common with { Data = DatasetCatalog.Cifar10Name, DataDir = data.Cifar10Dir, BatchSize = ImageBatch },
            _ => common with { Data = DatasetCatalog.FashionMnist, DataDir = data.FashionMnistDir, BatchSize = ImageBatch },
        };
    }

    /// <summary>Why a network cannot run with this data (null: it can).</summary>
    public static string? SkipReason(FlatMinimaNetwork network, FlatMinimaData data) => network.Name switch
    {
        "char-lstm" when data.Corpus is null => "no text corpus was given (--corpus FILE, any UTF-8 text, e.g. /usr/share/games/fortunes/fortunes)",
        "allcnn" when data.Cifar10Dir is null => "no CIFAR-10 folder was given (--cifar10-dir DIR with the binary version's files)",
        _ => null,
    };

    /// <summary>
    /// The grid of an arm on a network: <see cref="GridSize"/> candidates, the first of them our default; a search with
    /// fewer trials takes the first ones. Every setting is ours (docs/flat-minima.md).
    /// </summary>
    /// <exception cref="ArgumentException">The arm is not applicable to the network (DANTE off the one-hidden-layer network).</exception>
    public static IReadOnlyList<FlatMinimaCandidate> Grid(FlatMinimaArm arm, FlatMinimaNetwork network)
    {
        ArgumentNullException.ThrowIfNull(arm);
        ArgumentNullException.ThrowIfNull(network);
        if (NotApplicable(arm, network) is { } reason)
            throw new ArgumentException($"{arm.Title} on {network.Name}: {reason}; it runs only on {arm.OnlyOn}");
        var text = network.IsLanguageModel;
        // The step sizes of plain SGD-like arms: the LSTM (clipped gradients) takes larger ones.
        double[] sgdRates = text ? [1, 0.3, 3, 0.1] : [0.1, 0.03, 0.3, 0.01];
        double[] adamRates = text ? [2e-3, 1e-3, 5e-3, 5e-4] : [1e-3, 3e-4, 3e-3, 1e-4];
        var lr0 = sgdRates[0];
        string L(double v) => v.ToString("G3", C);
        var momentum = text ? 0.0 : 0.9;
        SgdOptions Sgd(double lr) => new() { LearningRate = lr, Momentum = 0.9, Nesterov = true };
        return arm.Key switch
        {
            "sgd" => sgdRates.Select(lr => Candidate($"lr {L(lr)}", c => c.WithOptimizer(Sgd(lr)))).ToList(),
            "adam" => adamRates.Select(lr => Candidate($"lr {L(lr)}", c => c.WithOptimizer(new AdamOptions { LearningRate = lr }))).ToList(),
            "entropy" when text => new (int L, double Gamma)[] { (5, 0.01), (5, 0.03), (5, 0.003), (10, 0.01) }.Select(g => Candidate($"L {g.L}, gamma {L(g.Gamma)}",
                c => c.WithOptimizer(new EntropyAdamOptions
                {
                    LearningRate = 0.01, Beta1 = 0.5,
                    LocalEntropy = new LocalEntropyOptions { L = g.L, LangevinLr = 0.1, Noise = 1e-3, Scope = new ConstantScope(g.Gamma), DiagnosticsEvery = 10 },
                }))).ToList(),
            "entropy" => new (int L, double LangevinLr)[] { (5, 0.1), (5, 0.03), (5, 0.3), (10, 0.1) }.Select(g => Candidate($"L {g.L}, eta' {L(g.LangevinLr)}",
                c => c.WithOptimizer(new EntropySgdOptions
                {
                    LearningRate = 1, Momentum = 0.9, Nesterov = true,
                    LocalEntropy = new LocalEntropyOptions
                    {
                        L = g.L, LangevinLr = g.LangevinLr, Noise = 1e-3, Scope = new ExponentialScope(1e-4, 1e-3), LangevinMomentum = 0.9, LangevinNesterov = true,
                        DiagnosticsEvery = 10,
                    },
                }))).ToList(),
            "sgld" => sgdRates.Select(lr => Candidate($"lr {L(lr)}", c => c.WithOptimizer(new SgldOptions { LearningRate = lr }))).ToList(),
            "annealsgd" => new (double Lr, double Field)[] { (lr0, 1e-2), (lr0 * 0.3, 1e-2), (lr0, 1e-3), (lr0, 1e-1) }.Select(g => Candidate($"lr {L(g.Lr)}, h0 {L(g.Field)}",
                c => c.WithOptimizer(new AnnealSgdOptions { LearningRate = g.Lr, Momentum = momentum, Nesterov = momentum > 0, FieldSize = g.Field, FieldMode = AnnealFieldMode.Fixed }))).ToList(),
            "noise" => new (double Lr, double Field)[] { (lr0, 1e-2), (lr0 * 0.3, 1e-2), (lr0, 1e-3), (lr0, 1e-1) }.Select(g => Candidate($"lr {L(g.Lr)}, sigma0 {L(g.Field)}",
                c => c.WithOptimizer(new AnnealSgdOptions { LearningRate = g.Lr, Momentum = momentum, Nesterov = momentum > 0, FieldSize = g.Field, FieldMode = AnnealFieldMode.Fresh }))).ToList(),
            "sam" => new (double Lr, double Rho)[] { (lr0, 0.05), (lr0 * 0.3, 0.05), (lr0, 0.02), (lr0, 0.1) }.Select(g => Candidate($"lr {L(g.Lr)}, rho {L(g.Rho)}",
                c => c.WithOptimizer(new SamOptions { LearningRate = g.Lr, Rho = g.Rho, Base = "sgd", Momentum = 0.9, Nesterov = true }))).ToList(),
            "asam" => new (double Lr, double Rho)[] { (lr0, 0.5), (lr0 * 0.3, 0.5), (lr0, 0.2), (lr0, 1.0) }.Select(g => Candidate($"lr {L(g.Lr)}, rho {L(g.Rho)}",
                c => c.WithOptimizer(new AsamOptions { LearningRate = g.Lr, Rho = g.Rho, Base = "sgd", Momentum = 0.9, Nesterov = true }))).ToList(),
            "sgd-htr" => new (double Lr, double Gamma)[] { (lr0, 1e-6), (lr0 * 0.3, 1e-6), (lr0, 1e-7), (lr0, 1e-5) }.Select(g => Candidate($"lr {L(g.Lr)}, gamma {L(g.Gamma)}",
                c => c.WithOptimizer(Sgd(g.Lr)) with
                {
                    HessianTrace = new HessianTraceRegularizerOptions
                    {
                        Gamma = g.Gamma, Probes = HtrProbes, Probe = HessianTraceProbe.Rademacher, Frequency = HtrFrequency, StartEpoch = 1,
                        Parameters = HessianTraceParameters.All, Seed = c.Seed,
                        Estimator = text ? HessianTraceEstimator.Exact : HessianTraceEstimator.Antithetic,
                    },
                })).ToList(),
            "adine" => (text ? new[] { 0.3, 0.1, 1, 0.03 } : [0.01, 0.003, 0.03, 0.001]).Select(lr => Candidate($"lr {L(lr)}",
                c => c.WithOptimizer(new AdineOptions { LearningRate = lr }))).ToList(),
            // DANTE as registered: StepsPerBlock 0 takes K = one epoch from the run (the trainer passes its steps per
            // epoch of the run's own training split), forward sweeps; one counted gradient (closure call) per step.
            "dante" => DanteRates.Select(eta => Candidate($"eta {L(eta)}", c => c.WithOptimizer(new DanteOptions { LearningRate = eta }))).ToList(),
            _ => throw new ArgumentException($"unknown flat-minima arm '{arm.Key}'"),
        };

        static FlatMinimaCandidate Candidate(string description, Func<RunConfig, RunConfig> apply) => new(description, apply);
    }

    /// <summary>
    /// A search trial: the candidate on the budget's search images with <see cref="ValidationFraction"/> held out,
    /// <see cref="SearchSeed"/>, at the search budget's cost.
    /// </summary>
    public static RunConfig SearchConfig(FlatMinimaNetwork network, FlatMinimaCandidate candidate, Budget budget, FlatMinimaData data, int threads, string device)
    {
        var scale = Scale(network, SearchBudget(budget));
        var c = Base(network, data, SearchSeed, threads, device);
        if (!network.IsLanguageModel)
        {
            var images = scale.SearchImages!.Value;
            var validation = (long)Math.Round(images * ValidationFraction);
            c = c with { MaxTrainSamples = images - validation, ValidationSize = validation };
        }
        return AtCost(candidate.Apply(c), scale.SearchEffectiveEpochs, scale.EvaluateEvery);
    }

    /// <summary>A final run: the chosen candidate on the budget's whole training set, at the final cost.</summary>
    public static RunConfig FinalConfig(FlatMinimaNetwork network, FlatMinimaCandidate candidate, Budget budget, long seed, FlatMinimaData data, int threads, string device)
    {
        var scale = Scale(network, budget);
        var c = Base(network, data, seed, threads, device);
        if (!network.IsLanguageModel) c = c with { MaxTrainSamples = scale.TrainingImages };
        return AtCost(candidate.Apply(c), scale.FinalEffectiveEpochs, scale.EvaluateEvery);
    }
}

/// <summary>Where the benchmark finds its data; every entry is optional.</summary>
public sealed record FlatMinimaData
{
    /// <summary>A Fashion-MNIST folder (default: the usual search).</summary>
    public string? FashionMnistDir { get; init; }

    /// <summary>The CIFAR-10 binary folder; All-CNN-BN is skipped without it.</summary>
    public string? Cifar10Dir { get; init; }

    /// <summary>A UTF-8 text file for the char-LSTM; skipped without it.</summary>
    public string? Corpus { get; init; }
}
