namespace WideValley.Optim;

/// <summary>Which forward pass of a SAM step may update the model's buffers (BatchNorm running statistics).</summary>
public enum SamBatchNormStatistics
{
    /// <summary>
    /// The first pass only (at w): the buffers after a step are those of one plain forward pass, as users of SAM ask
    /// for (the pass at the perturbed point w + e would otherwise fold statistics of weights never kept into them).
    /// </summary>
    FirstPass,
    /// <summary>Both passes (at w and at w + e) update the buffers, as a model with no special handling would.</summary>
    BothPasses,
}

/// <summary>
/// What SAM and ASAM share (<see cref="SamOptions"/>, <see cref="AsamOptions"/>): the neighbourhood radius rho, the
/// BatchNorm choice and the base optimizer with its settings. The base optimizer's settings are properties of this
/// record (not a nested record), so that the command line's <c>--lr</c>, <c>--momentum</c>, <c>--beta1</c> ... set them
/// as they do for <c>sgd</c> and <c>adam</c>. In code, <see cref="Sam"/> wraps any <see cref="TorchSharp.Modules.OptimizerHelper"/>.
/// </summary>
public abstract record SharpnessAwareOptions : OptimizerOptionsBase
{
    /// <summary>Base optimizers the factory can build for SAM: their options are properties of this record.</summary>
    public static IReadOnlyList<string> BaseOptimizers { get; } = ["sgd", "adam"];

    /// <summary>The base optimizer's (initial) learning rate.</summary>
    public override double LearningRate { get; init; } = 0.1;
    /// <summary>rho: the radius of the neighbourhood (zero or positive; 0 gives the base optimizer exactly).</summary>
    public abstract double Rho { get; init; }
    /// <summary>The base optimizer: "sgd" or "adam".</summary>
    public string Base { get; init; } = "sgd";
    /// <summary>Which pass updates BatchNorm running statistics (default: the first only).</summary>
    public SamBatchNormStatistics BatchNormStatistics { get; init; } = SamBatchNormStatistics.FirstPass;
    /// <summary>Momentum of base sgd, in [0, 1).</summary>
    public double Momentum { get; init; }
    /// <summary>Nesterov momentum of base sgd (needs <see cref="Momentum"/> &gt; 0).</summary>
    public bool Nesterov { get; init; }
    /// <summary>L2 weight decay of the base step (added to the gradient at the perturbed point).</summary>
    public double WeightDecay { get; init; }
    /// <summary>Base adam's first-moment decay, in [0, 1).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Base adam's second-moment decay, in [0, 1).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Base adam's epsilon.</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>True for ASAM (the element-wise adaptive perturbation).</summary>
    internal abstract bool IsAdaptive { get; }
    /// <summary>ASAM's eta (0 for SAM).</summary>
    internal virtual double AdaptiveEta => 0;

    /// <summary>The base optimizer's options record (<see cref="SgdOptions"/> or <see cref="AdamOptions"/>).</summary>
    public OptimizerOptionsBase BaseOptions() => Base switch
    {
        "sgd" => new SgdOptions { LearningRate = LearningRate, Momentum = Momentum, Nesterov = Nesterov, WeightDecay = WeightDecay },
        "adam" => new AdamOptions { LearningRate = LearningRate, Beta1 = Beta1, Beta2 = Beta2, Epsilon = Epsilon, WeightDecay = WeightDecay },
        _ => throw new OptionsException(nameof(Base), $"must be one of {string.Join(", ", BaseOptimizers)}, got '{Base}' (in code, Sam wraps any optimizer)"),
    };

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.NonNegative(Rho, nameof(Rho));
        if (!Enum.IsDefined(BatchNormStatistics))
            throw new OptionsException(nameof(BatchNormStatistics), $"must be first_pass or both_passes, got {(int)BatchNormStatistics}");
        var baseOptions = BaseOptions();
        // Settings of the other base optimizer would be silently ignored: refuse them.
        if (Base == "sgd")
        {
            var adam = new AdamOptions();
            if (Beta1 != adam.Beta1) throw new OptionsException(nameof(Beta1), $"applies only to {{{nameof(Base)}}} adam, not sgd");
            if (Beta2 != adam.Beta2) throw new OptionsException(nameof(Beta2), $"applies only to {{{nameof(Base)}}} adam, not sgd");
            if (Epsilon != adam.Epsilon) throw new OptionsException(nameof(Epsilon), $"applies only to {{{nameof(Base)}}} adam, not sgd");
        }
        else
        {
            if (Momentum != 0) throw new OptionsException(nameof(Momentum), $"applies only to {{{nameof(Base)}}} sgd, not {Base}");
            if (Nesterov) throw new OptionsException(nameof(Nesterov), $"applies only to {{{nameof(Base)}}} sgd, not {Base}");
        }
        baseOptions.Validate(); // its property names are this record's
    }

    /// <summary>Builds the base optimizer with the factory and wraps it.</summary>
    internal static Sam Create(IEnumerable<TorchSharp.Modules.Parameter> parameters, SharpnessAwareOptions o, OptimizerContext context)
    {
        var baseOptimizer = (TorchSharp.Modules.OptimizerHelper)OptimizerFactory.Create(o.Base, parameters, o.BaseOptions(), context);
        try
        {
            return new Sam(baseOptimizer, o.Rho, o.IsAdaptive, o.AdaptiveEta, o.BatchNormStatistics, context.Model);
        }
        catch
        {
            baseOptimizer.Dispose();
            throw;
        }
    }
}

/// <summary>
/// Sharpness-aware minimisation (Foret, Kleiner, Mobahi &amp; Neyshabur, ICLR 2021): the base optimizer steps with the
/// gradient at w + rho g / |g|. Defaults: rho 0.05 (the paper's most common value), base sgd.
/// </summary>
public sealed record SamOptions : SharpnessAwareOptions
{
    /// <inheritdoc/>
    public override double Rho { get; init; } = 0.05;

    internal override bool IsAdaptive => false;

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<SamOptions>(
        "sam", "SAM (Foret et al. 2021): the base optimizer (sgd or adam) steps with the gradient at w + rho g/|g|; two gradient evaluations per step",
        (parameters, o, context) => Create(parameters, o, context));
}

/// <summary>
/// Adaptive SAM (Kwon, Kim, Park &amp; Choi, ICML 2021): the perturbation rho T^2 g / |T g| with T = |w| + eta element-wise.
/// Defaults: rho 0.5 and eta 0.01 (Kwon et al.'s CIFAR-10 setting; ASAM's rho is about ten times SAM's), base sgd.
/// </summary>
public sealed record AsamOptions : SharpnessAwareOptions
{
    /// <inheritdoc/>
    public override double Rho { get; init; } = 0.5;
    /// <summary>eta in T = |w| + eta (zero or positive; 0 makes the perturbation exactly scale invariant, and leaves zero weights unperturbed).</summary>
    public double Eta { get; init; } = 0.01;

    internal override bool IsAdaptive => true;
    internal override double AdaptiveEta => Eta;

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.NonNegative(Eta, nameof(Eta));
        base.Validate();
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<AsamOptions>(
        "asam", "ASAM (Kwon et al. 2021): SAM with the perturbation rho T^2 g/|T g|, T = |w| + eta element-wise; two gradient evaluations per step",
        (parameters, o, context) => Create(parameters, o, context));
}
