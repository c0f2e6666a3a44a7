namespace WideValley.Optim;

/// <summary>The order in which <see cref="Dante"/> visits its blocks within one sweep.</summary>
public enum DanteOrder
{
    /// <summary>First block (the input layer) to last (the output layer).</summary>
    Forward,
    /// <summary>Last block (the output layer) to first.</summary>
    Backward,
}

/// <summary>
/// DANTE (Sinha et al., arXiv 1902.00491: alternating minimisation, each layer's sub-problem solved by stochastic
/// normalised gradient descent). The abstract gives no schedule, step size or block rule; everything here is ours
/// (docs/seed-004.md): one block of parameters is active at a time and takes
/// x = x - eta g / (|g| + eps) with the norm over the whole block; the active block changes every
/// <see cref="StepsPerBlock"/> steps, cycling in <see cref="SweepOrder"/>. See <see cref="Dante"/>.
/// </summary>
public sealed record DanteOptions : OptimizerOptionsBase
{
    /// <summary>eta, the length of every step in parameter space (ours: 0.01, the common SNGD default); schedules scale it.</summary>
    public override double LearningRate { get; init; } = 0.01;

    /// <summary>eps in g / (|g| + eps), which keeps a zero gradient from dividing by zero (ours: 1e-8).</summary>
    public double NormEpsilon { get; init; } = 1e-8;

    /// <summary>
    /// K, optimizer steps per block before the next block becomes active. 0 (the default, ours) = one epoch's steps,
    /// taken from the run (<see cref="OptimizerContext.StepsPerEpoch"/>) or the constructor.
    /// </summary>
    public long StepsPerBlock { get; init; }

    /// <summary>Which end of the network a sweep starts from (ours: forward, the input layer first).</summary>
    public DanteOrder SweepOrder { get; init; } = DanteOrder.Forward;

    /// <summary>
    /// True (default): the parameters of inactive blocks have <c>requires_grad</c> turned off while inactive, so
    /// backward skips their weight gradients (the flags are put back when the block turns active and when the optimizer
    /// is disposed). False: every gradient is computed and the inactive ones are ignored (the same iterates, slower).
    /// </summary>
    public bool FreezeInactive { get; init; } = true;

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.Positive(NormEpsilon, nameof(NormEpsilon));
        if (StepsPerBlock < 0)
            throw new OptionsException(nameof(StepsPerBlock), $"must be at least 1 step, or 0 for one epoch's steps; got {StepsPerBlock}");
        if (!Enum.IsDefined(SweepOrder))
            throw new OptionsException(nameof(SweepOrder), $"must be forward or backward, got {(int)SweepOrder}");
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<DanteOptions>(
        "dante", "DANTE (our design where the paper is silent): alternating minimisation, one layer at a time by stochastic normalised gradient descent",
        (parameters, o, context) => new Dante(parameters, o, context.StepsPerEpoch));
}
