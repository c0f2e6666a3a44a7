namespace WideValley.Optim;

/// <summary>How the thermal noise of a Langevin step is scaled.</summary>
public enum LangevinNoiseScaling
{
    /// <summary>x' += sqrt(eta') eps N(0, I): Alg. 1, line 6 of the paper. Temperature eps^2 / 2.</summary>
    Paper,
    /// <summary>x' += sqrt(2 eta') eps N(0, I): what the reference code does. Temperature eps^2.</summary>
    Reference,
}

/// <summary>How the running average mu of the Langevin iterates is updated.</summary>
public enum LangevinAverage
{
    /// <summary>mu = (1 - alpha) mu + alpha x': weight alpha on the new sample (Alg. 1, line 7; Sec. 4.2).</summary>
    Paper,
    /// <summary>mu = alpha mu + (1 - alpha) x': the reference code (with alpha = 0.75 it weights the new sample 0.25).</summary>
    Reference,
}

/// <summary>What the inner (Langevin) momentum is applied to.</summary>
public enum LangevinMomentumTarget
{
    /// <summary>The whole drift dx' = grad f(x') - gamma (x - x') of Alg. 1 line 5, which is where the paper says momentum goes.</summary>
    Drift,
    /// <summary>Only the loss gradient (plus weight decay); the coupling and noise bypass it, as in the reference code.</summary>
    LossGradient,
}

/// <summary>Which vector the estimator leaves in .grad for the outer optimizer.</summary>
public enum LocalEntropyGradient
{
    /// <summary>
    /// x - mu: the scoped form of Sec. 4.3 ("we scale down the local entropy gradient by gamma"), used with the outer
    /// learning rate eta = 1 in all of the paper's experiments and by the reference code. The default.
    /// </summary>
    Unscaled,
    /// <summary>gamma (x - mu): the gradient of the negative local entropy itself, Alg. 1 line 7 and eq. (7).</summary>
    ScaledByGamma,
}

/// <summary>Which outer-update count t the scope schedule gamma(t) sees.</summary>
public enum ScopeCounting
{
    /// <summary>t = number of outer updates so far, as in Sec. 4.3.</summary>
    Paper,
    /// <summary>t stays 0 and gamma stays gamma(0): the reference code never increments its counter.</summary>
    FrozenAsReference,
}

/// <summary>Which implementation runs the Langevin update.</summary>
public enum LangevinKernel
{
    /// <summary>The fused CPU kernel when possible (float32, contiguous, CPU), else tensor operations.</summary>
    Auto,
    /// <summary>One fused, vectorised, multi-threaded pass per step on CPU float32 parameters.</summary>
    FusedCpu,
    /// <summary>TorchSharp tensor operations: any device and dtype.</summary>
    TensorOps,
}

/// <summary>
/// Hyper-parameters of the local-entropy gradient estimator (seed 003, Alg. 1 lines 2-7). Defaults follow the paper;
/// every place where the public reference implementation (ucla-vision/entropy-sgd) behaves differently is a separate
/// option, and <see cref="AsReferenceCode"/> switches them all at once.
/// </summary>
public sealed record LocalEntropyOptions
{
    /// <summary>Langevin steps per outer update: the closure is evaluated exactly this many times (paper: 5 to 20).</summary>
    public int L { get; init; } = 20;
    /// <summary>The scope gamma(t). Default: the paper's MNIST schedule gamma0 = 1e-4, gamma1 = 1e-3.</summary>
    public ScopeSchedule Scope { get; init; } = new ExponentialScope(1e-4, 1e-3);
    /// <summary>eta', the Langevin step size (paper: 0.1 to 1, fixed).</summary>
    public double LangevinLr { get; init; } = 0.1;
    /// <summary>eps, the thermal noise (paper: 1e-4 to 1e-3).</summary>
    public double Noise { get; init; } = 1e-3;
    /// <summary>alpha, the weight of the exponential average (paper: 0.75 on the new sample).</summary>
    public double Alpha { get; init; } = 0.75;
    /// <summary>Momentum of the Langevin steps (0 = none; the paper's MNIST runs use Nesterov 0.9).</summary>
    public double LangevinMomentum { get; init; }
    /// <summary>Use Nesterov momentum in the Langevin steps; needs <see cref="LangevinMomentum"/> greater than 0.</summary>
    public bool LangevinNesterov { get; init; }
    /// <summary>L2 weight decay added to the loss gradient inside the Langevin loop.</summary>
    public double LangevinWeightDecay { get; init; }
    /// <summary>How the thermal noise is scaled: the paper's sqrt(eta') eps (default) or the reference code's sqrt(2 eta') eps.</summary>
    public LangevinNoiseScaling NoiseScaling { get; init; } = LangevinNoiseScaling.Paper;
    /// <summary>Which iterate the average mu weights by alpha: the new sample, as in the paper (default), or mu, as in the reference code.</summary>
    public LangevinAverage Average { get; init; } = LangevinAverage.Paper;
    /// <summary>What the Langevin momentum acts on: the whole drift, as in the paper (default), or only the loss gradient, as in the reference code.</summary>
    public LangevinMomentumTarget MomentumTarget { get; init; } = LangevinMomentumTarget.Drift;
    /// <summary>What is left in .grad for the outer optimizer: x - mu (default, the paper's scoped form) or gamma (x - mu).</summary>
    public LocalEntropyGradient Gradient { get; init; } = LocalEntropyGradient.Unscaled;
    /// <summary>Which outer-step count the scope schedule sees: the steps taken (default) or always 0, as in the reference code.</summary>
    public ScopeCounting ScopeCounting { get; init; } = ScopeCounting.Paper;
    /// <summary>
    /// Evaluate the closure once more before the Langevin loop and discard the result, as the reference code does
    /// (L + 1 evaluations per step; the extra forward pass also moves BatchNorm statistics). Off in the paper.
    /// </summary>
    public bool ExtraClosureEvaluation { get; init; }
    /// <summary>Seed of the estimator's own noise generator.</summary>
    public long Seed { get; init; }
    /// <summary>Collect diagnostics every this many outer steps (0 = never); each costs one extra closure call.</summary>
    public int DiagnosticsEvery { get; init; }
    /// <summary>Which implementation runs the Langevin update (default: the fused CPU kernel where the parameters allow it).</summary>
    public LangevinKernel Kernel { get; init; } = LangevinKernel.Auto;

    /// <summary>Temperature of the Gibbs measure the Langevin chain samples (eq. 8 at inverse temperature 1/T).</summary>
    public double Temperature => NoiseScaling == LangevinNoiseScaling.Paper ? Noise * Noise / 2 : Noise * Noise;

    /// <summary>Standard deviation of the noise added to x' per step.</summary>
    public double NoiseStd => NoiseScaling == LangevinNoiseScaling.Paper
        ? Math.Sqrt(LangevinLr) * Noise
        : Math.Sqrt(2 * LangevinLr) * Noise;

    /// <summary>Weight of the new sample in the running average.</summary>
    public double NewSampleWeight => Average == LangevinAverage.Paper ? Alpha : 1 - Alpha;

    /// <summary>
    /// These options with every reference-code behaviour switched on: noise sqrt(2 eta') eps, mu weighting the new
    /// sample by 1 - alpha, inner momentum on the loss gradient only, the unscaled outer gradient, a frozen scope and an
    /// extra closure evaluation per step.
    /// </summary>
    public LocalEntropyOptions AsReferenceCode() => this with
    {
        NoiseScaling = LangevinNoiseScaling.Reference,
        Average = LangevinAverage.Reference,
        MomentumTarget = LangevinMomentumTarget.LossGradient,
        Gradient = LocalEntropyGradient.Unscaled,
        ScopeCounting = ScopeCounting.FrozenAsReference,
        ExtraClosureEvaluation = true,
    };

    /// <summary>Throws <see cref="OptionsException"/> naming the first invalid property.</summary>
    public void Validate()
    {
        if (L < 1) throw new OptionsException(nameof(L), $"(Langevin steps) must be at least 1, got {L}");
        if (Scope is null) throw new OptionsException(nameof(Scope), "must be set");
        OptionChecks.Positive(LangevinLr, nameof(LangevinLr));
        OptionChecks.NonNegative(Noise, nameof(Noise));
        if (!(Alpha > 0 && Alpha <= 1)) throw new OptionsException(nameof(Alpha), $"must be in (0, 1], got {Alpha}");
        OptionChecks.UnitInterval(LangevinMomentum, nameof(LangevinMomentum));
        if (LangevinNesterov && LangevinMomentum <= 0)
            throw new OptionsException(nameof(LangevinNesterov), $"needs {{{nameof(LangevinMomentum)}}} greater than 0");
        OptionChecks.NonNegative(LangevinWeightDecay, nameof(LangevinWeightDecay));
        if (DiagnosticsEvery < 0) throw new OptionsException(nameof(DiagnosticsEvery), $"must be 0 (off) or positive, got {DiagnosticsEvery}");
        var g0 = Scope.Gamma(0);
        if (!(g0 >= 0) || double.IsInfinity(g0)) throw new OptionsException(nameof(Scope), $"{Scope.Spec} gives gamma(0) = {g0}");
    }
}
