namespace WideValley.SpinGlass;

/// <summary>
/// Settings of <see cref="ProjectedSgd"/>. Defaults follow SAGUN's sgd.lua: γ0 = 0.3, decay 0.0015, 500·P stochastic
/// steps, then full-gradient steps with γ = 0.2/(1 + k·0.0015) (1,000 in sgd.lua; here they stop per start at the
/// tolerance). P is not given in the notes: our default is 10.
/// </summary>
public sealed record ProjectedSgdOptions
{
    /// <summary>P, the number of coupling parts (minibatches); default 10 (ours).</summary>
    public int Parts { get; init; } = 10;

    /// <summary>Seed of the split (<see cref="CouplingSplit"/>).</summary>
    public long SplitSeed { get; init; }

    /// <summary>Stochastic steps; null (default): 500·P, SAGUN's.</summary>
    public int? StochasticSteps { get; init; }

    /// <summary>γ0 of the stochastic phase (default 0.3, SAGUN's).</summary>
    public double StepSize { get; init; } = 0.3;

    /// <summary>Decay of the stochastic phase: γ_t = γ0/(1 + t·decay) (default 0.0015, SAGUN's).</summary>
    public double StepDecay { get; init; } = 0.0015;

    /// <summary>The full-gradient phase (default: γ0 = 0.2, decay 0.0015, at most 1,000 steps, tolerance 0.01).</summary>
    public ProjectedGradientDescentOptions Finish { get; init; } = new() { StepSize = 0.2, StepDecay = 0.0015, MaxSteps = 1000 };

    /// <summary>Memory the split parts may use (null: MemAvailable minus 1 GiB).</summary>
    public long? MemoryLimitBytes { get; init; }

    /// <summary>Checks every setting; the message names the property.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range.</exception>
    public void Validate()
    {
        if (Parts < 2)
            throw new ArgumentOutOfRangeException(nameof(Parts), Parts, $"ProjectedSgdOptions.Parts: at least 2 parts are needed; got {Parts}.");
        if (StochasticSteps is < 0)
            throw new ArgumentOutOfRangeException(nameof(StochasticSteps), StochasticSteps, "ProjectedSgdOptions.StochasticSteps: must not be negative.");
        if (!double.IsFinite(StepSize) || StepSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(StepSize), StepSize, $"ProjectedSgdOptions.StepSize: the step size must be positive and finite; got {StepSize}.");
        if (!double.IsFinite(StepDecay) || StepDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(StepDecay), StepDecay, $"ProjectedSgdOptions.StepDecay: the decay must be non-negative and finite; got {StepDecay}.");
        ArgumentNullException.ThrowIfNull(Finish);
        Finish.Validate("ProjectedSgdOptions.Finish");
    }
}
