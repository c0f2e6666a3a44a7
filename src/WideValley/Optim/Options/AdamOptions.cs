namespace WideValley.Optim;

/// <summary>Adam (Kingma and Ba) with optional L2 weight decay.</summary>
public sealed record AdamOptions : OptimizerOptionsBase
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 1e-3;
    /// <summary>Decay of the first-moment estimate, in [0, 1).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Decay of the second-moment estimate, in [0, 1).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Added to the root of the second moment.</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>L2 weight decay added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Beta1, nameof(Beta1));
        OptionChecks.UnitInterval(Beta2, nameof(Beta2));
        OptionChecks.Positive(Epsilon, nameof(Epsilon));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<AdamOptions>(
        "adam", "Adam (Kingma & Ba) with optional L2 weight decay",
        (parameters, o, _) => new AdamOptimizer(parameters, o.LearningRate, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay));
}
