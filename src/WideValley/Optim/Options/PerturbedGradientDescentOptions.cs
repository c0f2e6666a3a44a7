namespace WideValley.Optim;

/// <summary>
/// Perturbed gradient descent (Jin, Ge, Netrapalli, Kakade &amp; Jordan, "How to Escape Saddle Points Efficiently", ICML
/// 2017, Algorithm 2): gradient descent that, when the gradient is small and no perturbation happened in the last
/// t_thres steps, adds a point drawn uniformly from a ball of radius r. The paper's parameters come from its constants
/// (chi, c, the Lipschitz constants); the defaults here are ours, for networks trained in float32. See
/// <see cref="PerturbedGradientDescent"/>.
/// </summary>
public sealed record PerturbedGradientDescentOptions : OptimizerOptionsBase
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 0.01;
    /// <summary>g_thres: a perturbation is considered when the gradient's norm (over all parameters) is at most this (positive; ours: 1e-3).</summary>
    public double GradientThreshold { get; init; } = 1e-3;
    /// <summary>r: the radius of the ball the perturbation is drawn from, uniformly (positive; ours: 1e-2).</summary>
    public double PerturbationRadius { get; init; } = 1e-2;
    /// <summary>t_thres: steps after a perturbation before the next one may happen, and after which the escape is checked (at least 1; ours: 100).</summary>
    public int PerturbationInterval { get; init; } = 100;
    /// <summary>
    /// f_thres: the loss must have fallen by more than this, t_thres steps after a perturbation, for it to count as an
    /// escape; otherwise the point is counted as certified (Jin et al. stop there; we count and go on). Zero or positive; ours: 1e-4.
    /// </summary>
    public double LossDecreaseThreshold { get; init; } = 1e-4;
    /// <summary>Momentum factor in [0, 1) (0, the default, is Jin et al.'s gradient descent; other values are ours).</summary>
    public double Momentum { get; init; }
    /// <summary>L2 weight decay added to the gradient.</summary>
    public double WeightDecay { get; init; }
    /// <summary>Seed of the perturbations when the run gives none (<see cref="OptimizerContext.RunSeed"/>).</summary>
    public long Seed { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.Positive(GradientThreshold, nameof(GradientThreshold));
        OptionChecks.Positive(PerturbationRadius, nameof(PerturbationRadius));
        if (PerturbationInterval < 1) throw new OptionsException(nameof(PerturbationInterval), $"must be at least 1 step, got {PerturbationInterval}");
        OptionChecks.NonNegative(LossDecreaseThreshold, nameof(LossDecreaseThreshold));
        OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<PerturbedGradientDescentOptions>(
        "pgd", "Perturbed gradient descent (Jin et al. 2017): gradient descent plus a uniform draw from a ball of radius r when the gradient is small",
        (parameters, o, context) => new PerturbedGradientDescent(parameters,
            context.RunSeed is long seed ? o with { Seed = unchecked(seed * 7919 + 17) } : o));
}
