namespace WideValley.Optim;

/// <summary>SGD with optional (Nesterov) momentum and L2 weight decay (PyTorch's update rule).</summary>
public sealed record SgdOptions : OptimizerOptionsBase
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 0.1;
    /// <summary>Momentum factor in [0, 1) (0 = plain SGD).</summary>
    public double Momentum { get; init; }
    /// <summary>Nesterov momentum (needs <see cref="Momentum"/> &gt; 0).</summary>
    public bool Nesterov { get; init; }
    /// <summary>L2 weight decay added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        if (Nesterov && Momentum <= 0) throw new OptionsException(nameof(Nesterov), $"needs {{{nameof(Momentum)}}} greater than 0");
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<SgdOptions>(
        "sgd", "SGD with optional (Nesterov) momentum and weight decay (PyTorch's rule)",
        (parameters, o, _) => new SgdOptimizer(parameters, o.LearningRate, o.Momentum, weightDecay: o.WeightDecay, nesterov: o.Nesterov));
}
