namespace WideValley.Optim;

/// <summary>SGLD (Welling and Teh): gradient steps eta / (1 + t)^b plus Gaussian noise sqrt(2 eta_t T / N).</summary>
public sealed record SgldOptions : OptimizerOptionsBase
{
    /// <summary>The initial step size eta.</summary>
    public override double LearningRate { get; init; } = 0.1;
    /// <summary>The step-size decay exponent b in eta / (1 + t)^b.</summary>
    public double Decay { get; init; } = 0.55;
    /// <summary>The temperature T (1 = the Bayesian posterior).</summary>
    public double Temperature { get; init; } = 1;
    /// <summary>L2 weight decay (a Gaussian prior).</summary>
    public double WeightDecay { get; init; }
    /// <summary>Seed of the noise generator when the run gives none (<see cref="OptimizerContext.RunSeed"/>).</summary>
    public long Seed { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.NonNegative(Decay, nameof(Decay));
        OptionChecks.NonNegative(Temperature, nameof(Temperature));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<SgldOptions>(
        "sgld", "SGLD (Welling & Teh): gradient steps eta/(1+t)^b plus Gaussian noise sqrt(2 eta_t T / N)",
        (parameters, o, context) => new Sgld(parameters, o.LearningRate,
            context.TrainingSetSize > 0 ? context.TrainingSetSize
                : throw new ArgumentException("SGLD scales its noise by the training-set size: pass it in OptimizerContext.TrainingSetSize", nameof(context)),
            o.Decay, o.Temperature, o.WeightDecay,
            context.RunSeed is long seed ? unchecked(seed * 104729 + 3) : o.Seed));
}
