namespace WideValley.Optim;

/// <summary>Whether AnnealSGD's field h is one direction for the whole run or a new draw at every step (our choice; the paper's is unknown).</summary>
public enum AnnealFieldMode
{
    /// <summary>h ~ N(0, I) drawn once from the seed: a fixed external ("magnetic") field whose size is annealed.</summary>
    Fixed,
    /// <summary>h ~ N(0, I) drawn afresh at every step: annealed gradient noise (Neelakantan et al. 2015).</summary>
    Fresh,
}

/// <summary>The annealing schedule s(t) of AnnealSGD's field size, s(0) = 1 (our choice; the paper's is unknown).</summary>
public enum AnnealSchedule
{
    /// <summary>s(t) = max(0, 1 - t / T): the field is gone after T steps.</summary>
    Linear,
    /// <summary>s(t) = decay^t.</summary>
    Exponential,
    /// <summary>s(t) = (1 + t)^-gamma (the form of Neelakantan et al.'s noise schedule).</summary>
    PowerLaw,
}

/// <summary>
/// AnnealSGD (our reading of the AnnealSGD abstract, Chaudhari &amp; Soatto, arXiv 1511.06485; the paper's exact form is
/// not available): SGD whose gradient is perturbed by a Gaussian field h of per-coordinate size h0 s(t), annealed to
/// zero: x = x - eta (g + wd x - h0 s(t) h), with (Nesterov) momentum on the perturbed gradient. See docs/annealsgd.md.
/// </summary>
public sealed record AnnealSgdOptions : OptimizerOptionsBase
{
    /// <inheritdoc/>
    public override double LearningRate { get; init; } = 0.1;
    /// <summary>Momentum factor in [0, 1) (0 = none), applied to the perturbed gradient as SGD applies it to the gradient.</summary>
    public double Momentum { get; init; }
    /// <summary>Nesterov momentum (needs <see cref="Momentum"/> &gt; 0).</summary>
    public bool Nesterov { get; init; }
    /// <summary>L2 weight decay added to the gradient.</summary>
    public double WeightDecay { get; init; }
    /// <summary>h0, the field's per-coordinate standard deviation at t = 0 (zero or positive; 0 is plain SGD).</summary>
    public double FieldSize { get; init; } = 0.01;
    /// <summary>Fixed field (drawn once) or fresh field every step (annealed gradient noise).</summary>
    public AnnealFieldMode FieldMode { get; init; } = AnnealFieldMode.Fixed;
    /// <summary>The schedule s(t) of the field size.</summary>
    public AnnealSchedule FieldSchedule { get; init; } = AnnealSchedule.PowerLaw;
    /// <summary>T of the linear schedule, in optimizer steps (at least 1); the field is zero from step T on.</summary>
    public long FieldAnnealSteps { get; init; } = 10_000;
    /// <summary>The factor per step of the exponential schedule, in (0, 1] (1 keeps the field constant).</summary>
    public double FieldDecay { get; init; } = 0.999;
    /// <summary>gamma of the power-law schedule (positive).</summary>
    public double FieldPower { get; init; } = 0.55;
    /// <summary>Seed of the field when the run gives none (<see cref="OptimizerContext.RunSeed"/>).</summary>
    public long Seed { get; init; }

    /// <inheritdoc/>
    public override void Validate()
    {
        OptionChecks.Positive(LearningRate, nameof(LearningRate));
        OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        OptionChecks.NonNegative(WeightDecay, nameof(WeightDecay));
        if (Nesterov && Momentum <= 0) throw new OptionsException(nameof(Nesterov), $"needs {{{nameof(Momentum)}}} greater than 0");
        OptionChecks.NonNegative(FieldSize, nameof(FieldSize));
        if (!Enum.IsDefined(FieldMode)) throw new OptionsException(nameof(FieldMode), $"must be fixed or fresh, got {FieldMode}");
        if (!Enum.IsDefined(FieldSchedule))
            throw new OptionsException(nameof(FieldSchedule), $"must be linear, exponential or power_law, got {FieldSchedule}");
        if (FieldAnnealSteps < 1) throw new OptionsException(nameof(FieldAnnealSteps), $"must be at least 1 step, got {FieldAnnealSteps}");
        if (!(FieldDecay > 0 && FieldDecay <= 1)) throw new OptionsException(nameof(FieldDecay), $"must be in (0, 1], got {FieldDecay}");
        OptionChecks.Positive(FieldPower, nameof(FieldPower));
    }

    /// <summary>s(t), the schedule's factor at step <paramref name="t"/> (0-based): 1 at t = 0, decreasing to 0.</summary>
    public double ScheduleAt(long t)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(t);
        return FieldSchedule switch
        {
            AnnealSchedule.Linear => Math.Max(0, 1 - (double)t / FieldAnnealSteps),
            AnnealSchedule.Exponential => Math.Pow(FieldDecay, t),
            AnnealSchedule.PowerLaw => Math.Pow(1 + (double)t, -FieldPower),
            _ => throw new InvalidOperationException($"unknown schedule {FieldSchedule}"),
        };
    }

    /// <summary>h0 s(t): the field's per-coordinate standard deviation at step <paramref name="t"/>.</summary>
    public double FieldScaleAt(long t) => FieldSize * ScheduleAt(t);

    internal static OptimizerDescriptor Descriptor { get; } = OptimizerDescriptor.For<AnnealSgdOptions>(
        "annealsgd", "AnnealSGD (our reading of the AnnealSGD abstract): SGD plus a Gaussian field annealed to zero, fixed or fresh each step",
        (parameters, o, context) => new AnnealSgd(parameters,
            context.RunSeed is long seed ? o with { Seed = unchecked(seed * 6700417 + 11) } : o));
}
