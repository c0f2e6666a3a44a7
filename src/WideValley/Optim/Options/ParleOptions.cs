namespace WideValley.Optim;

/// <summary>
/// Parle: each rank's replica runs Entropy-SGD and is pulled towards the replicas' mean by an elastic force rho_t,
/// with one allreduce per L minibatches. Defaults follow the authors' code (docs/parle.md gives the mapping): L = 25,
/// inner Nesterov 0.9 at eta' = 0.1 with the last inner iterate as mu (alpha = 1), no Langevin noise, gamma from 0.01
/// growing to at most 1, rho from 1 growing to at most 10, outer Nesterov 0.9.
/// </summary>
public sealed record ParleOptions : OptimizerOptionsBase, ILocalEntropyOptimizerOptions
{
    /// <summary>Growth per outer step of both couplings: the authors' 0.5 / (minibatches per epoch) at 500 minibatches per epoch.</summary>
    public const double AuthorsGrowthAt500MinibatchesPerEpoch = 0.001;

    /// <summary>The outer learning rate (the authors use their SGD baseline's).</summary>
    public override double LearningRate { get; init; } = 0.1;
    /// <summary>Outer momentum in [0, 1).</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>Nesterov outer momentum (needs <see cref="Momentum"/> &gt; 0).</summary>
    public bool Nesterov { get; init; } = true;
    /// <summary>L2 weight decay of the outer step.</summary>
    public double WeightDecay { get; init; }
    /// <summary>rho_0, the elastic coupling to the replicas' mean at the first outer step (0 = replicas uncoupled).</summary>
    public double ElasticRho { get; init; } = 1;
    /// <summary>Relative growth of rho per outer step: rho_t = min(rho_0 (1 + growth)^t, <see cref="ElasticRhoMax"/>).</summary>
    public double ElasticRhoGrowth { get; init; } = AuthorsGrowthAt500MinibatchesPerEpoch;
    /// <summary>The cap on rho_t.</summary>
    public double ElasticRhoMax { get; init; } = 10;
    /// <summary>The cap on the scope: gamma_t = min(gamma(t), this), gamma(t) being <see cref="LocalEntropy"/>'s schedule.</summary>
    public double GammaMax { get; init; } = 1;
    /// <summary>The local-entropy estimator's settings (each replica's inner loop).</summary>
    public LocalEntropyOptions LocalEntropy { get; init; } = new()
    {
        L = 25,
        Scope = new ExponentialScope(0.01, AuthorsGrowthAt500MinibatchesPerEpoch),
        LangevinLr = 0.1,
        LangevinMomentum = 0.9,
        LangevinNesterov = true,
        Noise = 0,
        Alpha = 1,
        DiagnosticsEvery = 10,
    };

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        if (Nesterov && Momentum <= 0) throw new OptionsException(nameof(Nesterov), $"needs {{{nameof(Momentum)}}} greater than 0");
        ElasticChecks.Validate(ElasticRho, ElasticRhoGrowth, ElasticRhoMax);
        OptionChecks.Positive(GammaMax, nameof(GammaMax));
        LocalEntropyOptionsSeeding.ValidateWithin(LocalEntropy, nameof(LocalEntropy));
    }

    /// <inheritdoc/>
    public OptimizerOptionsBase WithLocalEntropy(LocalEntropyOptions localEntropy) => this with { LocalEntropy = localEntropy };

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<ParleOptions>(
        "parle", "Parle: Entropy-SGD replicas, one per rank, pulled to their mean by an elastic force (one allreduce per L minibatches)",
        (parameters, o, context) => new Parle(parameters, o.LearningRate, LocalEntropyOptionsSeeding.Seeded(o.LocalEntropy, context),
            new ElasticSchedule(o.ElasticRho, o.ElasticRhoGrowth, o.ElasticRhoMax), context.Collectives, o.GammaMax,
            o.Momentum, o.Nesterov, o.WeightDecay),
        recalibratesBatchNormByDefault: true);
}

/// <summary>
/// Elastic-SGD: SGD on each rank's replica plus the elastic force rho_t (x - mean of the replicas), one allreduce per
/// minibatch; Parle with L = 1, gamma = 0 and no noise (EASGD's synchronous update with the centre as the mean).
/// </summary>
public sealed record ElasticSgdOptions : OptimizerOptionsBase
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 0.1;
    /// <summary>Momentum in [0, 1).</summary>
    public double Momentum { get; init; }
    /// <summary>Nesterov momentum (needs <see cref="Momentum"/> &gt; 0).</summary>
    public bool Nesterov { get; init; }
    /// <summary>L2 weight decay.</summary>
    public double WeightDecay { get; init; }
    /// <summary>rho_0, the elastic coupling at the first step (0 = replicas uncoupled).</summary>
    public double ElasticRho { get; init; } = 1;
    /// <summary>Relative growth of rho per step (0 = EASGD's constant rho).</summary>
    public double ElasticRhoGrowth { get; init; } = ParleOptions.AuthorsGrowthAt500MinibatchesPerEpoch;
    /// <summary>The cap on rho_t.</summary>
    public double ElasticRhoMax { get; init; } = 10;

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        if (Nesterov && Momentum <= 0) throw new OptionsException(nameof(Nesterov), $"needs {{{nameof(Momentum)}}} greater than 0");
        ElasticChecks.Validate(ElasticRho, ElasticRhoGrowth, ElasticRhoMax);
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<ElasticSgdOptions>(
        "elastic-sgd", "Elastic-SGD (EASGD, synchronous): SGD replicas, one per rank, pulled to their mean (one allreduce per minibatch)",
        (parameters, o, context) => new ElasticSgd(parameters, o.LearningRate, new ElasticSchedule(o.ElasticRho, o.ElasticRhoGrowth, o.ElasticRhoMax),
            context.Collectives, o.Momentum, o.Nesterov, o.WeightDecay),
        recalibratesBatchNormByDefault: true);
}

/// <summary>The elastic coupling's checks, shared by Parle's and Elastic-SGD's options.</summary>
static class ElasticChecks
{
    public static void Validate(double rho, double growth, double max)
    {
        OptionChecks.NonNegative(rho, nameof(ParleOptions.ElasticRho));
        OptionChecks.NonNegative(growth, nameof(ParleOptions.ElasticRhoGrowth));
        OptionChecks.Positive(max, nameof(ParleOptions.ElasticRhoMax));
        if (rho > max)
            throw new OptionsException(nameof(ParleOptions.ElasticRhoMax), $"must be at least {{{nameof(ParleOptions.ElasticRho)}}} ({rho}), got {max}");
    }
}
