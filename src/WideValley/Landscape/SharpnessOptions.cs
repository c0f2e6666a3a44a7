using System.Globalization;

namespace WideValley.Landscape;

/// <summary>
/// Whether a sharpness measure keeps its value when a ReLU network is rescaled without changing its function (Dinh,
/// Pascanu, Bengio and Bengio 2017: layer l's weights and biases times alpha &gt; 0, layer l+1's weights times 1 / alpha;
/// or the same per hidden neuron). Dinh et al. show that such rescalings make a minimum look arbitrarily sharp or flat to
/// measures that are not invariant, so a flatness report states this for every measure it prints.
/// </summary>
public enum RescalingInvariance
{
    /// <summary>The value changes under the rescaling (SAM sharpness, Keskar's epsilon-sharpness, the isotropic PAC-Bayes sigma').</summary>
    NotInvariant,

    /// <summary>
    /// Invariant only in the limit of a zero offset: the measure scales its region by |x_i| + eta (ASAM) or its noise by
    /// sqrt(sigma^2 x_i^2 + eps^2) (magnitude-aware PAC-Bayes), and the offset, there for weights near zero, breaks exact
    /// invariance. Weights much larger than the offset behave invariantly.
    /// </summary>
    ApproximatelyInvariant,

    /// <summary>Exactly invariant (to rounding): ASAM with eta = 0, magnitude-aware PAC-Bayes with eps = 0.</summary>
    Invariant,
}

/// <summary>What the PAC-Bayes flatness sigma' keeps below its threshold.</summary>
public enum PacBayesCriterion
{
    /// <summary>
    /// The increase of the error rate (a fraction: 0.1 is ten percentage points) under the noise. What Jiang et al. 2020
    /// threshold (their search keeps the training accuracy within 0.1 of the unperturbed one). Default. Needs (N, C)
    /// logits and int64 labels.
    /// </summary>
    Error,

    /// <summary>The increase of the mean loss under the noise (the quantity with a closed form on a quadratic).</summary>
    Loss,
}

/// <summary>Progress and cancellation shared by every sharpness measure.</summary>
public abstract record SharpnessOptionsBase
{
    /// <summary>Loss, parameters (the selection the perturbation lives in), BatchNorm, dropout and compute type.</summary>
    public LandscapeOptions Landscape { get; init; } = new();

    /// <summary>Seed of every random draw (random starts, fallback directions, noise). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Told after every loss or gradient evaluation over the evaluation set, on the calling thread.</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Checked before every evaluation; a cancellation throws <see cref="OperationCanceledException"/> after restoring the weights.</summary>
    public CancellationToken Cancellation { get; init; }

    internal static void RequirePositive(double value, string name, string where)
    {
        if (!(value > 0) || !double.IsFinite(value))
            throw new ArgumentException($"{where}: {name} must be positive and finite; got {value.ToString(CultureInfo.InvariantCulture)}.", name);
    }

    internal static void RequireNonNegative(double value, string name, string where)
    {
        if (!(value >= 0) || !double.IsFinite(value))
            throw new ArgumentException($"{where}: {name} must be zero or positive and finite; got {value.ToString(CultureInfo.InvariantCulture)}.", name);
    }

    internal static void RequireAtLeast(int value, int minimum, string name, string where)
    {
        if (value < minimum)
            throw new ArgumentException($"{where}: {name} must be at least {minimum}; got {value}.", name);
    }
}

/// <summary>Settings of Keskar et al.'s epsilon-sharpness (<see cref="Sharpness"/>.Epsilon).</summary>
public sealed record EpsilonSharpnessOptions : SharpnessOptionsBase
{
    /// <summary>epsilon: the box is |delta_i| &lt;= epsilon (|x_i| + 1). Default 1e-3 (Keskar et al. report 1e-3 and 5e-4).</summary>
    public double Epsilon { get; init; } = 1e-3;

    /// <summary>Ascent steps per start (one gradient evaluation each). Default 20.</summary>
    public int Steps { get; init; } = 20;

    /// <summary>
    /// Starts drawn uniformly in the box, besides the first start at delta = 0 (which follows the gradient at x and is all
    /// there is when x is not a stationary point; at an exact minimum the gradient is zero and only random starts move).
    /// Default 2.
    /// </summary>
    public int RandomStarts { get; init; } = 2;

    /// <summary>
    /// Random starts are drawn uniformly in this fraction of the box, around x. Default 1 (the whole box): on convex
    /// test landscapes whole-box starts found the best corner more often than small starts, whose first steps act as
    /// power iterations and all head for the corners along the top eigenvector.
    /// </summary>
    public double StartFraction { get; init; } = 1;

    /// <summary>
    /// Each step moves along the gradient in the box's coordinates delta_i / w_i, scaled so that the coordinate with the
    /// largest gradient moves this fraction of its half-width. Default 0.25.
    /// </summary>
    public double StepFraction { get; init; } = 0.25;

    /// <summary>Refuses settings that cannot run, naming the setting.</summary>
    public void Validate()
    {
        const string where = "Sharpness.Epsilon";
        RequirePositive(Epsilon, nameof(Epsilon), where);
        RequireAtLeast(Steps, 1, nameof(Steps), where);
        RequireAtLeast(RandomStarts, 0, nameof(RandomStarts), where);
        RequirePositive(StepFraction, nameof(StepFraction), where);
        RequirePositive(StartFraction, nameof(StartFraction), where);
        if (StartFraction > 1)
            throw new ArgumentException($"{where}: StartFraction must be at most 1 (starts lie in the box); got {StartFraction.ToString(CultureInfo.InvariantCulture)}.", nameof(StartFraction));
        ArgumentNullException.ThrowIfNull(Landscape, nameof(Landscape));
    }

    /// <summary>Keskar's box has the fixed offset 1 in |x_i| + 1, so rescaling layers changes it: not invariant.</summary>
    public RescalingInvariance Invariance => RescalingInvariance.NotInvariant;
}

/// <summary>Settings of the SAM sharpness (<see cref="Sharpness"/>.Sam).</summary>
public sealed record SamSharpnessOptions : SharpnessOptionsBase
{
    /// <summary>rho, the radius of the L2 ball. Default 0.05 (Foret et al.'s default).</summary>
    public double Rho { get; init; } = 0.05;

    /// <summary>
    /// Gradient evaluations: 1 is Foret et al.'s one-step estimate delta = rho g / ||g||; more run projected normalised
    /// ascent from there. Default 1.
    /// </summary>
    public int Steps { get; init; } = 1;

    /// <summary>Length of each ascent step after the first, as a fraction of rho. Default 1.</summary>
    public double StepFraction { get; init; } = 1;

    /// <summary>Refuses settings that cannot run, naming the setting.</summary>
    public void Validate()
    {
        const string where = "Sharpness.Sam";
        RequirePositive(Rho, nameof(Rho), where);
        RequireAtLeast(Steps, 1, nameof(Steps), where);
        RequirePositive(StepFraction, nameof(StepFraction), where);
        ArgumentNullException.ThrowIfNull(Landscape, nameof(Landscape));
    }

    /// <summary>A fixed Euclidean ball: not invariant (Dinh et al. 2017; Kwon et al. 2021, section 3).</summary>
    public RescalingInvariance Invariance => RescalingInvariance.NotInvariant;
}

/// <summary>Settings of the adaptive sharpness of ASAM (<see cref="Sharpness"/>.Adaptive).</summary>
public sealed record AdaptiveSharpnessOptions : SharpnessOptionsBase
{
    /// <summary>rho, the radius of the ball ||T_x^-1 delta||_2 &lt;= rho. Default 0.5 (the ASAM code's default).</summary>
    public double Rho { get; init; } = 0.5;

    /// <summary>eta in T_x = diag(|x_i| + eta). Default 0.01 (as in ASAM). 0 gives Kwon et al.'s exactly scale-invariant form.</summary>
    public double Eta { get; init; } = 0.01;

    /// <summary>Gradient evaluations: 1 is ASAM's one-step delta = rho T^2 g / ||T g||; more run projected ascent. Default 1.</summary>
    public int Steps { get; init; } = 1;

    /// <summary>Length of each ascent step after the first, in the scaled coordinates u = T^-1 delta, as a fraction of rho. Default 1.</summary>
    public double StepFraction { get; init; } = 1;

    /// <summary>
    /// Scale only the parameters whose name contains "weight", as the authors' ASAM code does; every other parameter
    /// (biases) gets T = 1, i.e. a plain SAM ball. Default false: the paper's element-wise operator on every selected
    /// parameter. With it on, the measure is no longer invariant when a rescaled layer has a bias.
    /// </summary>
    public bool ScaleOnlyWeights { get; init; }

    /// <summary>Refuses settings that cannot run, naming the setting.</summary>
    public void Validate()
    {
        const string where = "Sharpness.Adaptive";
        RequirePositive(Rho, nameof(Rho), where);
        RequireNonNegative(Eta, nameof(Eta), where);
        RequireAtLeast(Steps, 1, nameof(Steps), where);
        RequirePositive(StepFraction, nameof(StepFraction), where);
        ArgumentNullException.ThrowIfNull(Landscape, nameof(Landscape));
    }

    /// <summary>
    /// Kwon et al.'s element-wise operator T_x = diag(|x_i|) satisfies T_{Ax}^-1 A = T_x^-1 for every positive diagonal
    /// rescaling A, which covers the per-layer and per-neuron ReLU rescalings: invariant with eta = 0, approximately
    /// with eta &gt; 0. With <see cref="ScaleOnlyWeights"/> the biases of a rescaled layer keep a fixed ball: not invariant.
    /// </summary>
    public RescalingInvariance Invariance => ScaleOnlyWeights
        ? RescalingInvariance.NotInvariant
        : Eta == 0 ? RescalingInvariance.Invariant : RescalingInvariance.ApproximatelyInvariant;
}

/// <summary>Settings of the PAC-Bayes flatness sigma' of Jiang et al. 2020 (<see cref="Sharpness"/>.PacBayes).</summary>
public sealed record PacBayesFlatnessOptions : SharpnessOptionsBase
{
    /// <summary>What the threshold bounds. Default: the error rate, as Jiang et al.</summary>
    public PacBayesCriterion Criterion { get; init; } = PacBayesCriterion.Error;

    /// <summary>The largest allowed expected increase (error: a fraction; loss: loss units). Default 0.1 (Jiang et al.).</summary>
    public double Threshold { get; init; } = 0.1;

    /// <summary>Noise draws z per sigma (Monte Carlo samples). Default 10 (Jiang et al.'s later code; with antithetic pairs, 20 evaluations).</summary>
    public int Samples { get; init; } = 10;

    /// <summary>
    /// Evaluate each draw as the pair +z and -z (antithetic): the linear term of the loss cancels exactly in every pair,
    /// so at a point that is not a minimum the estimate is not swamped by the gradient. Default true.
    /// </summary>
    public bool Antithetic { get; init; } = true;

    /// <summary>Lower end of the bisection bracket for sigma. Default 0 (Jiang et al.).</summary>
    public double SigmaLow { get; init; }

    /// <summary>Upper end of the bisection bracket for sigma. Default 2 (Jiang et al.).</summary>
    public double SigmaHigh { get; init; } = 2;

    /// <summary>Bisection stops when the bracket is narrower than this fraction of its upper end. Default 0.01.</summary>
    public double RelativeTolerance { get; init; } = 0.01;

    /// <summary>
    /// Jiang et al.'s magnitude-aware variant: the noise of coordinate i has variance sigma^2 x_i^2 + eps^2 instead of
    /// sigma^2. Default false.
    /// </summary>
    public bool MagnitudeAware { get; init; }

    /// <summary>eps of the magnitude-aware variant. Default 1e-3 (Jiang et al.).</summary>
    public double MagnitudeEpsilon { get; init; } = 1e-3;

    /// <summary>Refuses settings that cannot run, naming the setting.</summary>
    public void Validate()
    {
        const string where = "Sharpness.PacBayes";
        RequirePositive(Threshold, nameof(Threshold), where);
        RequireAtLeast(Samples, Antithetic ? 1 : 2, nameof(Samples), where);
        RequireNonNegative(SigmaLow, nameof(SigmaLow), where);
        RequirePositive(SigmaHigh, nameof(SigmaHigh), where);
        if (!(SigmaHigh > SigmaLow))
            throw new ArgumentException(
                $"{where}: the sigma bracket [{SigmaLow.ToString(CultureInfo.InvariantCulture)}, {SigmaHigh.ToString(CultureInfo.InvariantCulture)}] must have SigmaHigh > SigmaLow.",
                nameof(SigmaHigh));
        if (!(RelativeTolerance > 0 && RelativeTolerance < 1))
            throw new ArgumentException($"{where}: RelativeTolerance must lie in (0, 1); got {RelativeTolerance.ToString(CultureInfo.InvariantCulture)}.", nameof(RelativeTolerance));
        if (Criterion == PacBayesCriterion.Error && Threshold >= 1)
            throw new ArgumentException(
                $"{where}: with the Error criterion, Threshold is a fraction of the samples and must be below 1; got {Threshold.ToString(CultureInfo.InvariantCulture)}.",
                nameof(Threshold));
        if (MagnitudeAware) RequireNonNegative(MagnitudeEpsilon, nameof(MagnitudeEpsilon), where);
        ArgumentNullException.ThrowIfNull(Landscape, nameof(Landscape));
    }

    /// <summary>
    /// Isotropic noise is not invariant; magnitude-aware noise sigma |x_i| maps onto itself under any positive diagonal
    /// rescaling that leaves the function unchanged, so the magnitude-aware sigma' is invariant with eps = 0 and
    /// approximately with eps &gt; 0.
    /// </summary>
    public RescalingInvariance Invariance => !MagnitudeAware
        ? RescalingInvariance.NotInvariant
        : MagnitudeEpsilon == 0 ? RescalingInvariance.Invariant : RescalingInvariance.ApproximatelyInvariant;
}

/// <summary>What every sharpness measure reports.</summary>
/// <param name="Measure">Short name: "epsilon-sharpness", "sam-sharpness", "adaptive-sharpness", "pac-bayes-sigma", "pac-bayes-sigma-magnitude".</param>
/// <param name="Value">The measure: the largest loss increase found (sharpness), or sigma' (PAC-Bayes).</param>
/// <param name="LossAtStart">The mean loss at the unperturbed weights x.</param>
/// <param name="LossAtWorst">The mean loss at the maximising perturbation (PAC-Bayes: the Monte Carlo mean loss at sigma').</param>
/// <param name="PerturbationNorm">||delta||_2 of the maximising perturbation (PAC-Bayes: the root mean square norm of the noise at sigma').</param>
/// <param name="Dimension">Number of selected parameters the perturbation lives in.</param>
/// <param name="ForwardEvaluations">Loss-only passes over the evaluation set.</param>
/// <param name="GradientEvaluations">Loss-and-gradient passes over the evaluation set (a forward and a backward each).</param>
/// <param name="Iterations">Ascent steps (sharpness) or bisection steps (PAC-Bayes).</param>
/// <param name="Invariance">Whether the measure, with the settings used, is invariant to the ReLU rescaling of Dinh et al.</param>
public abstract record SharpnessResult(string Measure, double Value, double LossAtStart, double LossAtWorst, double PerturbationNorm, long Dimension,
    long ForwardEvaluations, long GradientEvaluations, int Iterations, RescalingInvariance Invariance);

/// <summary>Keskar et al.'s epsilon-sharpness.</summary>
/// <param name="Measure">"epsilon-sharpness".</param>
/// <param name="Value">max over the box of L(x + delta) - L(x) found by the ascent (the raw increase).</param>
/// <param name="KeskarSharpness">Keskar et al.'s normalised form 100 (max L - L(x)) / (1 + L(x)).</param>
/// <param name="Epsilon">The epsilon used.</param>
/// <param name="LossAtStart">L(x).</param>
/// <param name="LossAtWorst">L(x + delta*).</param>
/// <param name="PerturbationNorm">||delta*||_2.</param>
/// <param name="Dimension">Selected parameters.</param>
/// <param name="ForwardEvaluations">Loss-only passes.</param>
/// <param name="GradientEvaluations">Gradient passes.</param>
/// <param name="Iterations">Ascent steps (gradient evaluations) over all starts; a start ends early at a stationary point of the ascent.</param>
/// <param name="Starts">Starts run (1 + random starts).</param>
/// <param name="Invariance">Not invariant.</param>
public sealed record EpsilonSharpnessResult(string Measure, double Value, double KeskarSharpness, double Epsilon, double LossAtStart, double LossAtWorst,
    double PerturbationNorm, long Dimension, long ForwardEvaluations, long GradientEvaluations, int Iterations, int Starts, RescalingInvariance Invariance)
    : SharpnessResult(Measure, Value, LossAtStart, LossAtWorst, PerturbationNorm, Dimension, ForwardEvaluations, GradientEvaluations, Iterations, Invariance);

/// <summary>SAM or adaptive (ASAM) sharpness: the largest loss increase found in a (scaled) L2 ball.</summary>
/// <param name="Measure">"sam-sharpness" or "adaptive-sharpness".</param>
/// <param name="Value">max of L(x + delta) - L(x) found over ||T^-1 delta||_2 &lt;= rho (T = I for SAM).</param>
/// <param name="Rho">The radius.</param>
/// <param name="Eta">ASAM's eta (NaN for SAM).</param>
/// <param name="LossAtStart">L(x).</param>
/// <param name="LossAtWorst">L(x + delta*).</param>
/// <param name="PerturbationNorm">||delta*||_2.</param>
/// <param name="ScaledPerturbationNorm">||T^-1 delta*||_2 (at most rho; equal to ||delta*|| for SAM).</param>
/// <param name="Dimension">Selected parameters.</param>
/// <param name="ForwardEvaluations">Loss-only passes.</param>
/// <param name="GradientEvaluations">Gradient passes.</param>
/// <param name="Iterations">Ascent steps (1: the one-step estimate).</param>
/// <param name="ZeroGradientFallback">The (scaled) gradient at x was exactly zero, so the first step went along a seeded random direction.</param>
/// <param name="Invariance">Not invariant (SAM); invariant or approximately (ASAM, by eta).</param>
public sealed record BallSharpnessResult(string Measure, double Value, double Rho, double Eta, double LossAtStart, double LossAtWorst, double PerturbationNorm,
    double ScaledPerturbationNorm, long Dimension, long ForwardEvaluations, long GradientEvaluations, int Iterations, bool ZeroGradientFallback,
    RescalingInvariance Invariance)
    : SharpnessResult(Measure, Value, LossAtStart, LossAtWorst, PerturbationNorm, Dimension, ForwardEvaluations, GradientEvaluations, Iterations, Invariance);

/// <summary>Where sigma' lies relative to the bracket searched.</summary>
public enum BracketOutcome
{
    /// <summary>The threshold is crossed inside the bracket; sigma' is the midpoint of the final bracket.</summary>
    Inside,

    /// <summary>Even SigmaHigh keeps the increase below the threshold: sigma' is at least SigmaHigh (reported as SigmaHigh).</summary>
    AtLeastUpper,

    /// <summary>Even SigmaLow (&gt; 0) exceeds the threshold: sigma' is at most SigmaLow (reported as SigmaLow).</summary>
    AtMostLower,
}

/// <summary>The PAC-Bayes flatness sigma' of Jiang et al. 2020.</summary>
/// <param name="Measure">"pac-bayes-sigma" or "pac-bayes-sigma-magnitude".</param>
/// <param name="Value">sigma'.</param>
/// <param name="Flatness">1 / sigma'^2, Jiang et al.'s pacbayes.flatness measure (larger is sharper).</param>
/// <param name="Criterion">Error or loss.</param>
/// <param name="Threshold">The threshold on the expected increase.</param>
/// <param name="LossAtStart">L(x).</param>
/// <param name="ErrorAtStart">Error rate (fraction) at x; NaN when the output is not (N, C) logits.</param>
/// <param name="LossAtWorst">Monte Carlo mean loss at sigma'.</param>
/// <param name="IncreaseAtSigma">Monte Carlo mean increase of the criterion at sigma' (near the threshold when Inside).</param>
/// <param name="StandardError">Its Monte Carlo standard error (over draws; antithetic pairs count as one draw).</param>
/// <param name="Samples">Noise draws per sigma.</param>
/// <param name="BracketLow">Lower end of the final bracket.</param>
/// <param name="BracketHigh">Upper end of the final bracket.</param>
/// <param name="Outcome">Whether the threshold was crossed inside the bracket.</param>
/// <param name="PerturbationNorm">Root mean square ||u|| of the noise at sigma'.</param>
/// <param name="Dimension">Selected parameters.</param>
/// <param name="ForwardEvaluations">Loss passes (each perturbed point, plus x).</param>
/// <param name="GradientEvaluations">0: the measure needs no gradients.</param>
/// <param name="Iterations">Bisection steps.</param>
/// <param name="Invariance">Not invariant (isotropic), or (approximately) invariant (magnitude-aware).</param>
public sealed record PacBayesFlatnessResult(string Measure, double Value, double Flatness, PacBayesCriterion Criterion, double Threshold, double LossAtStart,
    double ErrorAtStart, double LossAtWorst, double IncreaseAtSigma, double StandardError, int Samples, double BracketLow, double BracketHigh,
    BracketOutcome Outcome, double PerturbationNorm, long Dimension, long ForwardEvaluations, long GradientEvaluations, int Iterations,
    RescalingInvariance Invariance)
    : SharpnessResult(Measure, Value, LossAtStart, LossAtWorst, PerturbationNorm, Dimension, ForwardEvaluations, GradientEvaluations, Iterations, Invariance);
