namespace WideValley.Optim;

/// <summary>
/// ADINE (Srinivasan et al., arXiv 1712.07424: "adaptive higher momentum", m &gt; 1 while the loss falls). The abstract
/// gives no update rule, switch or defaults; everything here is ours and listed in docs/seed-004.md: heavy ball
/// v = m v - eta g, x = x + v, with m switched every <see cref="Window"/> steps between <see cref="MomentumHigh"/> and
/// <see cref="MomentumLow"/> by whether a running mean of the minibatch loss rose. See <see cref="Adine"/>.
/// </summary>
public sealed record AdineOptions : OptimizerOptionsBase
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 0.01;
    /// <summary>m_high, the momentum while the loss keeps falling (ours: 1.01); must exceed <see cref="MomentumLow"/>.</summary>
    public double MomentumHigh { get; init; } = 1.01;
    /// <summary>m_low, the momentum after the loss rose, in [0, 1) (ours: 0.9).</summary>
    public double MomentumLow { get; init; } = 0.9;
    /// <summary>W, steps between two comparisons of the running loss (at least 1; ours: 50).</summary>
    public int Window { get; init; } = 50;
    /// <summary>
    /// Relative rise of the running loss tolerated before switching to <see cref="MomentumLow"/>: the switch happens when
    /// the new mean exceeds the previous one by more than <c>Tolerance * |previous|</c> (zero or positive; ours: 0).
    /// </summary>
    public double Tolerance { get; init; }
    /// <summary>Nesterov's form of the heavy-ball step: x = x + m v - eta g with the new v.</summary>
    public bool Nesterov { get; init; }
    /// <summary>L2 weight decay added to the gradient.</summary>
    public double WeightDecay { get; init; }
    /// <summary>
    /// The guard's cap c on the velocity's norm over all parameters (zero or positive). With c &gt; 0 every step scales v
    /// down to norm c when it is longer; a non-finite loss scales it to at most c (c = 0: zeroes it) whatever c is.
    /// </summary>
    public double VelocityCap { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(MomentumLow, nameof(MomentumLow));
        if (!double.IsFinite(MomentumHigh))
            throw new OptionsException(nameof(MomentumHigh), $"must be a finite number, got {MomentumHigh}");
        if (!(MomentumHigh > MomentumLow))
            throw new OptionsException(nameof(MomentumHigh), $"must be greater than {{{nameof(MomentumLow)}}} ({MomentumLow}), got {MomentumHigh}");
        if (Window < 1) throw new OptionsException(nameof(Window), $"must be at least 1 step, got {Window}");
        OptionChecks.NonNegative(Tolerance, nameof(Tolerance));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        OptionChecks.NonNegative(VelocityCap, nameof(VelocityCap));
    }

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<AdineOptions>(
        "adine", "ADINE (our design where the paper is silent): heavy ball whose momentum is above 1 while the running loss falls, below 1 when it rises",
        (parameters, o, _) => new Adine(parameters, o));
}
