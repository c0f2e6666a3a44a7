namespace WideValley.SpinGlass;

/// <summary>
/// Settings of <see cref="SimulatedAnnealing"/>. All of the schedule is ours: Choromanska et al. use simulated
/// annealing only for networks and give no settings, and SAGUN has none.
/// </summary>
public sealed record SimulatedAnnealingOptions
{
    /// <summary>Metropolis steps per start (default 2,000).</summary>
    public int Steps { get; init; } = 2000;

    /// <summary>
    /// T at the first step (default 1: above the dynamical transition of the p = 3 glass, T_d = √(3/8) ≈ 0.61 in this
    /// normalisation, so the walk starts in the paramagnetic phase). Temperatures weigh the total energy:
    /// acceptance min(1, exp(−ΔH/T)).
    /// </summary>
    public double InitialTemperature { get; init; } = 1.0;

    /// <summary>T at the last step (default 0.01); between them T falls geometrically.</summary>
    public double FinalTemperature { get; init; } = 0.01;

    /// <summary>Initial per-coordinate size σ of a proposal (default 0.05): w' = retract(w + σ·ξ_⊥), ξ ~ N(0, I_N).</summary>
    public double InitialProposalScale { get; init; } = 0.05;

    /// <summary>Acceptance rate the per-start proposal size is adapted towards (default 0.3).</summary>
    public double TargetAcceptance { get; init; } = 0.3;

    /// <summary>Adaptation rate: log σ += rate·(accepted − target) after each step (default 0.05).</summary>
    public double AdaptationRate { get; init; } = 0.05;

    /// <summary>Seed of the proposals and acceptance draws.</summary>
    public long Seed { get; init; }

    /// <summary>The quench after the schedule (default: projected gradient descent, step 0.2, tolerance 0.01, at most 10,000 steps).</summary>
    public ProjectedGradientDescentOptions Finish { get; init; } = new();

    /// <summary>Checks every setting; the message names the property.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range.</exception>
    public void Validate()
    {
        if (Steps < 0)
            throw new ArgumentOutOfRangeException(nameof(Steps), Steps, $"SimulatedAnnealingOptions.Steps: must not be negative; got {Steps}.");
        if (!double.IsFinite(InitialTemperature) || InitialTemperature <= 0)
            throw new ArgumentOutOfRangeException(nameof(InitialTemperature), InitialTemperature, $"SimulatedAnnealingOptions.InitialTemperature: must be positive and finite; got {InitialTemperature}.");
        if (!double.IsFinite(FinalTemperature) || FinalTemperature <= 0 || FinalTemperature > InitialTemperature)
            throw new ArgumentOutOfRangeException(nameof(FinalTemperature), FinalTemperature, $"SimulatedAnnealingOptions.FinalTemperature: must be positive and at most the initial temperature {InitialTemperature}; got {FinalTemperature}.");
        if (!double.IsFinite(InitialProposalScale) || InitialProposalScale <= 0)
            throw new ArgumentOutOfRangeException(nameof(InitialProposalScale), InitialProposalScale, $"SimulatedAnnealingOptions.InitialProposalScale: the step must be positive and finite; got {InitialProposalScale}.");
        if (!(TargetAcceptance > 0 && TargetAcceptance < 1))
            throw new ArgumentOutOfRangeException(nameof(TargetAcceptance), TargetAcceptance, $"SimulatedAnnealingOptions.TargetAcceptance: must be in (0, 1); got {TargetAcceptance}.");
        if (!double.IsFinite(AdaptationRate) || AdaptationRate < 0)
            throw new ArgumentOutOfRangeException(nameof(AdaptationRate), AdaptationRate, $"SimulatedAnnealingOptions.AdaptationRate: must be non-negative and finite; got {AdaptationRate}.");
        ArgumentNullException.ThrowIfNull(Finish);
        Finish.Validate("SimulatedAnnealingOptions.Finish");
    }
}
