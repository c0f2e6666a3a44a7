using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace WideValley.Optim;

/// <summary>
/// Local entropy composed with any TorchSharp optimizer, the way SAM wraps one: each <c>step(closure)</c> runs the
/// <see cref="LocalEntropy"/> estimator, which leaves the local-entropy gradient in .grad, then lets the base optimizer
/// take its step with it. Parameter groups are the base optimizer's (so LR schedulers act per group, and
/// <see cref="add_param_group"/> adds to both), each with its own outer learning rate, momentum and weight decay and,
/// for groups implementing <see cref="ILocalEntropyParamGroup"/>, its own Langevin settings. The estimator's counters,
/// noise seed and per-group Langevin settings travel in the state dictionary, so <c>save_state_dict</c> /
/// <c>load_state_dict</c> continue a run identically.
/// </summary>
public class LocalEntropyOptimizer : OptimizerHelper, IOptimizerDiagnostics, IOptimizerMemory
{
    /// <summary>The estimator's buffers plus the base optimizer's state.</summary>
    public long StateElements => Estimator.BufferElements + (_base is IOptimizerMemory m ? m.StateElements : 0);

    readonly OptimizerHelper _base;

    /// <summary>The Langevin estimator (Alg. 1 lines 2-7) that fills .grad before each outer step.</summary>
    public LocalEntropy Estimator { get; }
    /// <summary>The outer optimizer, which owns the parameter groups and their per-parameter state.</summary>
    public OptimizerHelper BaseOptimizer => _base;

    /// <summary>Wraps <paramref name="baseOptimizer"/> (with its parameter groups as they are now).</summary>
    public LocalEntropyOptimizer(OptimizerHelper baseOptimizer, LocalEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(baseOptimizer);
        _base = baseOptimizer;
        Estimator = new LocalEntropy(baseOptimizer.ParamGroups.Cast<ParamGroup>(), options);
        _defaults = new OptimizerOptions { LearningRate = baseOptimizer.ParamGroups.First().LearningRate };
        _parameter_groups = new List<ParamGroup>();
    }

    /// <summary>Runs the Langevin chain (exactly L closure calls) and one step of the base optimizer.</summary>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure),
                "local-entropy optimizers need a closure that draws a fresh minibatch, back-propagates and returns the loss");
        var loss = Estimator.Estimate(closure);
        _base.step();
        return loss;
    }

    /// <inheritdoc/>
    public override IEnumerable<ILearningRateController> ParamGroups => _base.ParamGroups;
    /// <inheritdoc/>
    public override IEnumerable<Parameter> parameters() => _base.parameters();
    /// <inheritdoc/>
    public override void zero_grad() => _base.zero_grad();

    /// <summary>
    /// Adds a parameter group to the base optimizer and the estimator (whose buffers grow to cover it), like
    /// torch.optim's <c>add_param_group</c>: options left unset take the optimizer's defaults. Use the optimizer's own
    /// group type (<see cref="EntropySgd.ParamGroup"/>, <see cref="EntropyAdam.ParamGroup"/>) to give the group its own
    /// Langevin settings.
    /// </summary>
    public override void add_param_group(ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        param_group.Parameters = (param_group.Parameters ?? throw new ArgumentException("the parameter group has no parameters")).ToList();
        var known = parameters().Select(p => p.Handle).ToHashSet();
        if (param_group.Parameters.Any(p => known.Contains(p.Handle)))
            throw new ArgumentException("a parameter of the new group already belongs to another group of this optimizer");
        if (param_group is ILocalEntropyParamGroup { Langevin: { } overrides })
            overrides.Apply(Estimator.Options, Estimator.Groups.Count);
        _base.add_param_group(param_group);
        Estimator.AddGroup(param_group);
    }

    /// <summary>The base optimizer's state plus one trailing entry holding the estimator's state.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(_base.state_dict(), Estimator);

    /// <inheritdoc/>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, "a local-entropy optimizer", _base.load_state_dict, Estimator);

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var d = Estimator.TakeDiagnostics();
        var result = new Dictionary<string, double> { ["gamma"] = Estimator.CurrentGamma };
        if (d is null) return result;
        result["local_entropy_distance"] = d.MeanDistance;
        result["local_entropy_grad_norm"] = d.MeanLocalEntropyGradientNorm;
        result["sgd_grad_norm"] = d.MeanSgdGradientNorm;
        result["grad_cosine"] = d.MeanCosine;
        result["diagnostic_samples"] = d.Samples;
        return result;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Estimator.Dispose();
            _base.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>
/// Entropy-SGD (seed 003, Alg. 1): the local-entropy estimator with SGD, optionally with (Nesterov) momentum and
/// weight decay, as the outer optimizer. With the paper's MNIST settings: lr 1 (divided by 10 after epoch 2),
/// momentum 0.9 Nesterov in both loops, L = 20, eta' = 0.1, eps = 1e-3, gamma0 = 1e-4, gamma1 = 1e-3. The outer
/// momentum is visible to schedulers (<see cref="IMomentum"/>: OneCycleLR and CyclicLR cycle it per group).
/// </summary>
public sealed class EntropySgd : LocalEntropyOptimizer, IMomentum
{
    /// <summary>Entropy-SGD over <paramref name="parameters"/> as one group.</summary>
    public EntropySgd(IEnumerable<Parameter> parameters, double lr, LocalEntropyOptions options,
        double momentum = 0, bool nesterov = false, double weightDecay = 0)
        : this([new ParamGroup(parameters)], lr, options, momentum, nesterov, weightDecay)
    {
    }

    /// <summary>
    /// Entropy-SGD over parameter groups; each group's unset options take <paramref name="lr"/>,
    /// <paramref name="momentum"/>, <paramref name="nesterov"/>, <paramref name="weightDecay"/> and the Langevin
    /// settings of <paramref name="options"/>.
    /// </summary>
    public EntropySgd(IEnumerable<ParamGroup> groups, double lr, LocalEntropyOptions options,
        double momentum = 0, bool nesterov = false, double weightDecay = 0)
        : base(new SgdOptimizer(groups, lr, momentum, 0, weightDecay, nesterov), options)
    {
    }

    /// <summary>The default outer momentum (for groups added later); each group's is its own (<see cref="IMomentum"/>).</summary>
    public double Momentum
    {
        get => ((SgdOptimizer)BaseOptimizer).Momentum;
        set => ((SgdOptimizer)BaseOptimizer).Momentum = value;
    }

    /// <summary>
    /// A parameter group of Entropy-SGD: SGD's options (each null inherits the optimizer's default) plus optional
    /// Langevin overrides.
    /// </summary>
    public sealed class ParamGroup : SGD.ParamGroup, ILocalEntropyParamGroup
    {
        /// <summary>A group; every option left null takes the optimizer's default.</summary>
        public ParamGroup(IEnumerable<Parameter> parameters, double? lr = null, double? momentum = null, bool? nesterov = null,
            double? weightDecay = null, LangevinGroupOptions? langevin = null)
            : base(parameters.ToList(), new SGD.Options { LearningRate = lr, momentum = momentum, nesterov = nesterov, weight_decay = weightDecay })
        {
            Langevin = langevin;
        }

        /// <inheritdoc/>
        public LangevinGroupOptions? Langevin { get; set; }
    }
}

/// <summary>
/// Entropy-Adam (seed 003, Sec. 5.4.2): Adam fed with the local-entropy gradient instead of the back-propagated one.
/// The paper's char-LSTM run: lr 0.01 halved every epoch, beta1 = 0.5, L = 5, gamma = 0.01 fixed. beta1 is visible to
/// schedulers (<see cref="IBetas"/>: OneCycleLR cycles it per group).
/// </summary>
public sealed class EntropyAdam : LocalEntropyOptimizer, IBetas
{
    /// <summary>Entropy-Adam over <paramref name="parameters"/> as one group.</summary>
    public EntropyAdam(IEnumerable<Parameter> parameters, double lr, LocalEntropyOptions options,
        double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
        : this([new ParamGroup(parameters)], lr, options, beta1, beta2, epsilon, weightDecay)
    {
    }

    /// <summary>Entropy-Adam over parameter groups; each group's unset options take the values given here.</summary>
    public EntropyAdam(IEnumerable<ParamGroup> groups, double lr, LocalEntropyOptions options,
        double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
        : base(new AdamOptimizer(groups, lr, beta1, beta2, epsilon, weightDecay), options)
    {
    }

    /// <summary>The default (beta1, beta2) (for groups added later); each group's are its own (<see cref="IBetas"/>).</summary>
    public (double, double) Betas
    {
        get => ((AdamOptimizer)BaseOptimizer).Betas;
        set => ((AdamOptimizer)BaseOptimizer).Betas = value;
    }

    /// <summary>
    /// A parameter group of Entropy-Adam: Adam's options (each null inherits the optimizer's default) plus optional
    /// Langevin overrides.
    /// </summary>
    public sealed class ParamGroup : Adam.ParamGroup, ILocalEntropyParamGroup
    {
        /// <summary>A group; every option left null takes the optimizer's default.</summary>
        public ParamGroup(IEnumerable<Parameter> parameters, double? lr = null, double? beta1 = null, double? beta2 = null,
            double? weightDecay = null, LangevinGroupOptions? langevin = null)
            : base(parameters.ToList(), new Adam.Options { LearningRate = lr, beta1 = beta1, beta2 = beta2, weight_decay = weightDecay })
        {
            Langevin = langevin;
        }

        /// <inheritdoc/>
        public LangevinGroupOptions? Langevin { get; set; }
    }
}
