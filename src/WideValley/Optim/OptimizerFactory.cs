using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>
/// Hyper-parameters an optimizer may read. Each optimizer uses the ones that apply to it and ignores the rest; the
/// factory validates the ones it uses.
/// </summary>
public sealed record OptimizerSettings
{
    public double LearningRate { get; init; } = 0.1;
    public double Momentum { get; init; }
    public bool Nesterov { get; init; }
    public double WeightDecay { get; init; }
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>The local-entropy estimator's settings (entropy-sgd, entropy-adam).</summary>
    public LocalEntropyOptions LocalEntropy { get; init; } = new();
    /// <summary>SGLD's step-size decay exponent b in eta / (1 + t)^b.</summary>
    public double SgldDecay { get; init; } = 0.55;
    /// <summary>SGLD's temperature T (1 = the Bayesian posterior).</summary>
    public double SgldTemperature { get; init; } = 1;
    /// <summary>Training-set size N (SGLD scales its noise by it); set by whoever knows the data.</summary>
    public long TrainingSetSize { get; init; }
    /// <summary>Seed of an optimizer's own random generator (SGLD noise).</summary>
    public long Seed { get; init; }
}

/// <summary>How to build one named optimizer, and what the trainer should do by default when it is used.</summary>
/// <param name="Name">Name on the command line, e.g. "sgd".</param>
/// <param name="Description">One line for help text.</param>
/// <param name="Create">Builds the optimizer over the given parameters (after the model is on its device).</param>
/// <param name="DefaultLearningRate">The learning rate used when none is given.</param>
/// <param name="RecalibratesBatchNormByDefault">
/// True for optimizers that evaluate the network away from the current weights (the Langevin iterates of
/// Entropy-SGD), so the BatchNorm running statistics must be recollected at the weights before evaluation.
/// </param>
public sealed record OptimizerDescriptor(
    string Name,
    string Description,
    Func<IEnumerable<Parameter>, OptimizerSettings, optim.Optimizer> Create,
    double DefaultLearningRate = 0.1,
    bool RecalibratesBatchNormByDefault = false);

/// <summary>
/// The one place optimizers are created by name. Baselines are registered here; later optimizers add themselves with
/// <see cref="Register"/>, and the trainer, CLI and experiments never need to know which is which.
/// </summary>
public static class OptimizerFactory
{
    static readonly Dictionary<string, OptimizerDescriptor> Descriptors = new(StringComparer.OrdinalIgnoreCase);

    static OptimizerFactory()
    {
        Register(new OptimizerDescriptor("sgd", "SGD with optional (Nesterov) momentum and weight decay (PyTorch's rule)", CreateSgd));
        Register(new OptimizerDescriptor("adam", "Adam (Kingma & Ba) with optional L2 weight decay", CreateAdam, DefaultLearningRate: 1e-3));
        Register(new OptimizerDescriptor("entropy-sgd",
            "Entropy-SGD: L Langevin steps estimate the local-entropy gradient, SGD (Nesterov) steps with it",
            (p, s) => new EntropySgd(p, Positive(s.LearningRate), s.LocalEntropy, Momentum(s), s.Nesterov, s.WeightDecay),
            DefaultLearningRate: 1, RecalibratesBatchNormByDefault: true));
        Register(new OptimizerDescriptor("entropy-adam",
            "Entropy-Adam: the local-entropy gradient fed to Adam",
            (p, s) => new EntropyAdam(p, Positive(s.LearningRate), s.LocalEntropy, Unit(s.Beta1, "beta1 (--beta1)"), Unit(s.Beta2, "beta2 (--beta2)"), s.Epsilon, s.WeightDecay),
            DefaultLearningRate: 0.01, RecalibratesBatchNormByDefault: true));
        Register(new OptimizerDescriptor("sgld",
            "SGLD (Welling & Teh): gradient steps eta/(1+t)^b plus Gaussian noise sqrt(2 eta_t T / N)",
            (p, s) => new Sgld(p, s.LearningRate, s.TrainingSetSize, s.SgldDecay, s.SgldTemperature, s.WeightDecay, s.Seed),
            DefaultLearningRate: 0.1));
    }

    public static void Register(OptimizerDescriptor descriptor) => Descriptors[descriptor.Name] = descriptor;

    public static IReadOnlyList<string> Names => Descriptors.Keys.Order(StringComparer.Ordinal).ToList();

    public static OptimizerDescriptor Describe(string name) =>
        Descriptors.TryGetValue(name, out var d)
            ? d
            : throw new ArgumentException($"unknown optimizer '{name}'; expected one of: {string.Join(", ", Names)}");

    public static optim.Optimizer Create(string name, IEnumerable<Parameter> parameters, OptimizerSettings settings) =>
        Describe(name).Create(parameters, settings);

    static optim.Optimizer CreateSgd(IEnumerable<Parameter> parameters, OptimizerSettings s)
    {
        RequirePositive(s.LearningRate, "learning rate (--lr)");
        RequireUnitInterval(s.Momentum, "momentum (--momentum)");
        RequireNonNegative(s.WeightDecay, "weight decay (--weight-decay)");
        if (s.Nesterov && s.Momentum <= 0)
            throw new ArgumentException("Nesterov momentum (--nesterov) needs --momentum greater than 0");
        return new SgdOptimizer(parameters, s.LearningRate, s.Momentum, weightDecay: s.WeightDecay, nesterov: s.Nesterov);
    }

    static optim.Optimizer CreateAdam(IEnumerable<Parameter> parameters, OptimizerSettings s)
    {
        RequirePositive(s.LearningRate, "learning rate (--lr)");
        RequireUnitInterval(s.Beta1, "beta1 (--beta1)");
        RequireUnitInterval(s.Beta2, "beta2 (--beta2)");
        RequirePositive(s.Epsilon, "epsilon (--adam-eps)");
        RequireNonNegative(s.WeightDecay, "weight decay (--weight-decay)");
        return new AdamOptimizer(parameters, s.LearningRate, s.Beta1, s.Beta2, s.Epsilon, s.WeightDecay);
    }

    static double Positive(double lr) { RequirePositive(lr, "learning rate (--lr)"); return lr; }
    static double Unit(double v, string what) { RequireUnitInterval(v, what); return v; }
    static double Momentum(OptimizerSettings s)
    {
        RequireUnitInterval(s.Momentum, "momentum (--momentum)");
        RequireNonNegative(s.WeightDecay, "weight decay (--weight-decay)");
        if (s.Nesterov && s.Momentum <= 0) throw new ArgumentException("Nesterov momentum (--nesterov) needs --momentum greater than 0");
        return s.Momentum;
    }

    public static void RequirePositive(double value, string what)
    {
        if (!(value > 0) || double.IsInfinity(value)) throw new ArgumentException($"{what} must be a positive number, got {value}");
    }

    public static void RequireNonNegative(double value, string what)
    {
        if (!(value >= 0) || double.IsInfinity(value)) throw new ArgumentException($"{what} must be zero or positive, got {value}");
    }

    public static void RequireUnitInterval(double value, string what)
    {
        if (!(value >= 0 && value < 1)) throw new ArgumentException($"{what} must be in [0, 1), got {value}");
    }
}

/// <summary>
/// Implemented by optimizers that have numbers worth logging (for example the scope gamma of Entropy-SGD). The trainer
/// asks once per epoch and writes whatever it gets, without knowing what the numbers mean.
/// </summary>
public interface IOptimizerDiagnostics
{
    /// <summary>Name → value, collected since the last call; names in snake_case.</summary>
    IReadOnlyDictionary<string, double> TakeDiagnostics();
}

/// <summary>
/// Implemented by optimizers with state beyond TorchSharp's per-parameter state dictionary (step counters, their own
/// random generators), so that checkpoints restore it and a resumed run continues bit-identically.
/// </summary>
public interface IExtraOptimizerState
{
    void SaveExtraState(BinaryWriter writer);
    void LoadExtraState(BinaryReader reader);
}

/// <summary>
/// Implemented by optimizers that can say how much state they keep, so that benchmarks and reports can state the
/// memory an optimizer costs beyond the model and its gradients.
/// </summary>
public interface IOptimizerMemory
{
    /// <summary>Elements held in the optimizer's own tensors (momentum buffers, moment estimates, Langevin buffers).</summary>
    long StateElements { get; }
}
