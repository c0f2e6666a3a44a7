namespace WideValley.SpinGlass;

/// <summary>
/// Settings of <see cref="ProjectedGradientDescent"/>, also the quench that ends <see cref="ProjectedSgd"/> and
/// <see cref="SimulatedAnnealing"/>. Defaults are SAGUN's main.lua: step 0.2, no decay, stop at |g| &lt; 0.01.
/// </summary>
public sealed record ProjectedGradientDescentOptions
{
    /// <summary>γ0, the initial step size (default 0.2, SAGUN's main.lua).</summary>
    public double StepSize { get; init; } = 0.2;

    /// <summary>Decay of the step size: γ_t = γ0/(1 + t·decay) (default 0, constant; SAGUN's sgd.lua uses 0.0015).</summary>
    public double StepDecay { get; init; }

    /// <summary>A start stops (and is frozen) once its projected gradient norm is below this (default 0.01, SAGUN's).</summary>
    public double GradientTolerance { get; init; } = 0.01;

    /// <summary>Most steps per start (default 10,000); a start that reaches it is reported as not converged.</summary>
    public int MaxSteps { get; init; } = 10_000;

    /// <summary>The index is computed at the end for the first this-many starts (default 0: an N x N eigenproblem each).</summary>
    public int IndexedStarts { get; init; }

    /// <summary>Eigenvalues below −this count towards the index (default 10⁻³, as in Choromanska et al.'s network check).</summary>
    public double IndexTolerance { get; init; } = 1e-3;

    /// <summary>Called once per step with the number of starts still moving.</summary>
    public IProgress<SpinGlassProgress>? Progress { get; init; }

    /// <summary>Stops the run between steps (throws <see cref="OperationCanceledException"/>; with a checkpoint, after saving).</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>
    /// Where to save progress and resume from (null: no checkpoint). Given to <see cref="ProjectedSgd"/> as its
    /// <see cref="ProjectedSgdOptions.Finish"/>, it covers both phases. The file is left when the run completes (it then
    /// holds the finished state, and resuming from it takes no step); delete it once the result is stored.
    /// </summary>
    public DescentCheckpoint? Checkpoint { get; init; }

    /// <summary>Checks every setting; the message names the property.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range.</exception>
    public void Validate(string owner = nameof(ProjectedGradientDescentOptions))
    {
        if (!double.IsFinite(StepSize) || StepSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(StepSize), StepSize, $"{owner}.StepSize: the step size must be positive and finite; got {StepSize}.");
        if (!double.IsFinite(StepDecay) || StepDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(StepDecay), StepDecay, $"{owner}.StepDecay: the decay must be non-negative and finite; got {StepDecay}.");
        if (!double.IsFinite(GradientTolerance) || GradientTolerance <= 0)
            throw new ArgumentOutOfRangeException(nameof(GradientTolerance), GradientTolerance, $"{owner}.GradientTolerance: the tolerance must be positive and finite; got {GradientTolerance}.");
        if (MaxSteps < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, $"{owner}.MaxSteps: must not be negative; got {MaxSteps}.");
        if (IndexedStarts < 0)
            throw new ArgumentOutOfRangeException(nameof(IndexedStarts), IndexedStarts, $"{owner}.IndexedStarts: must not be negative; got {IndexedStarts}.");
        if (!double.IsFinite(IndexTolerance) || IndexTolerance < 0)
            throw new ArgumentOutOfRangeException(nameof(IndexTolerance), IndexTolerance, $"{owner}.IndexTolerance: must be non-negative and finite; got {IndexTolerance}.");
        Checkpoint?.Validate();
    }
}
