namespace WideValley.Optim;

/// <summary>Entropy-SGD: L Langevin steps estimate the local-entropy gradient, SGD (Nesterov) steps with it.</summary>
public sealed record EntropySgdOptions : OptimizerOptionsBase, ILocalEntropyOptimizerOptions
{
    /// <summary>The outer learning rate eta; 1 in all of the paper's experiments.</summary>
    public override double LearningRate { get; init; } = 1;
    /// <summary>Outer momentum in [0, 1).</summary>
    public double Momentum { get; init; }
    /// <summary>Nesterov outer momentum (needs <see cref="Momentum"/> &gt; 0).</summary>
    public bool Nesterov { get; init; }
    /// <summary>L2 weight decay of the outer step.</summary>
    public double WeightDecay { get; init; }
    /// <summary>
    /// The local-entropy estimator's settings. Default: <see cref="LocalEntropyOptions"/>' defaults with diagnostics
    /// every 10 outer steps, as <c>widevalley train</c> has always run.
    /// </summary>
    public LocalEntropyOptions LocalEntropy { get; init; } = new() { DiagnosticsEvery = 10 };

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        if (Nesterov && Momentum <= 0) throw new OptionsException(nameof(Nesterov), $"needs {{{nameof(Momentum)}}} greater than 0");
        LocalEntropyOptionsSeeding.ValidateWithin(LocalEntropy, nameof(LocalEntropy));
    }

    /// <inheritdoc/>
    public OptimizerOptionsBase WithLocalEntropy(LocalEntropyOptions localEntropy) => this with { LocalEntropy = localEntropy };

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<EntropySgdOptions>(
        "entropy-sgd", "Entropy-SGD: L Langevin steps estimate the local-entropy gradient, SGD (Nesterov) steps with it",
        (parameters, o, context) => new EntropySgd(parameters, o.LearningRate, LocalEntropyOptionsSeeding.Seeded(o.LocalEntropy, context),
            o.Momentum, o.Nesterov, o.WeightDecay),
        recalibratesBatchNormByDefault: true);
}

/// <summary>Entropy-Adam: the local-entropy gradient fed to Adam.</summary>
public sealed record EntropyAdamOptions : OptimizerOptionsBase, ILocalEntropyOptimizerOptions
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 0.01;
    /// <summary>Adam's first-moment decay, in [0, 1).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Adam's second-moment decay, in [0, 1).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Added to the root of the second moment.</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>L2 weight decay of the outer step.</summary>
    public double WeightDecay { get; init; }
    /// <summary>
    /// The local-entropy estimator's settings. Default: <see cref="LocalEntropyOptions"/>' defaults with diagnostics
    /// every 10 outer steps, as <c>widevalley train</c> has always run.
    /// </summary>
    public LocalEntropyOptions LocalEntropy { get; init; } = new() { DiagnosticsEvery = 10 };

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Beta1, nameof(Beta1));
        OptionChecks.UnitInterval(Beta2, nameof(Beta2));
        OptionChecks.Positive(Epsilon, nameof(Epsilon));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        LocalEntropyOptionsSeeding.ValidateWithin(LocalEntropy, nameof(LocalEntropy));
    }

    /// <inheritdoc/>
    public OptimizerOptionsBase WithLocalEntropy(LocalEntropyOptions localEntropy) => this with { LocalEntropy = localEntropy };

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<EntropyAdamOptions>(
        "entropy-adam", "Entropy-Adam: the local-entropy gradient fed to Adam",
        (parameters, o, context) => new EntropyAdam(parameters, o.LearningRate, LocalEntropyOptionsSeeding.Seeded(o.LocalEntropy, context),
            o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay),
        recalibratesBatchNormByDefault: true);
}

/// <summary>What the two local-entropy optimizers share about their estimator's options.</summary>
static class LocalEntropyOptionsSeeding
{
    /// <summary>
    /// The estimator's options with its noise seed derived from the run's seed (as runs have always done, so that
    /// checkpoints of earlier versions resume on the same noise stream), or as given when there is no run seed.
    /// </summary>
    public static LocalEntropyOptions Seeded(LocalEntropyOptions options, OptimizerContext context) =>
        context.RunSeed is long seed ? options with { Seed = unchecked(seed * 7919 + 17) } : options;

    public static void ValidateWithin(LocalEntropyOptions options, string property)
    {
        if (options is null) throw new OptionsException(property, "must be set");
        try
        {
            options.Validate();
        }
        catch (OptionsException e)
        {
            throw e.Within(property);
        }
    }
}
