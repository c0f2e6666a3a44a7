using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace WideValley.Landscape.Flatness;

/// <summary>Helpers shared by the sharpness measures of the flatness report (<see cref="Sharpness"/>).</summary>
internal static class SharpnessMeasureParts
{
    /// <summary>
    /// The report's two-valued invariance from a sharpness result's three-valued one: only an exactly invariant measure
    /// is stated invariant; an approximately invariant one (an offset eta or eps &gt; 0) moves, if little, and is
    /// stated not invariant (its reason says "approximately").
    /// </summary>
    public static ReluRescaling ToReport(RescalingInvariance invariance) =>
        invariance == RescalingInvariance.Invariant ? ReluRescaling.Invariant : ReluRescaling.NotInvariant;

    /// <summary>The work a sharpness call reported, in the runner's units (passes over the evaluation set).</summary>
    public static MeasureCost Used(params SharpnessResult[] results) =>
        new(0, results.Sum(r => (double)r.ForwardEvaluations), results.Sum(r => (double)r.GradientEvaluations));

    public static string Key(double value) => value.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>
/// Keskar et al.'s epsilon-sharpness (<see cref="Sharpness"/>.Epsilon):
/// the largest loss increase found by projected ascent in the box |delta_i| &lt;= eps (|x_i| + 1), raw and in Keskar's
/// normalised form 100 (max L - L) / (1 + L). No standard error: a deterministic ascent (a lower bound of the maximum).
/// </summary>
public sealed class EpsilonSharpnessMeasure : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "epsilon-sharpness";

    /// <inheritdoc/>
    public string Title => "ε-sharpness (Keskar et al. 2017), projected ascent in the box ε (1 + abs x_i)";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => SharpnessMeasureParts.ToReport(new EpsilonSharpnessOptions().Invariance);

    /// <inheritdoc/>
    public string RescalingReason => "the box ε(|x_i| + 1) has the fixed offset 1, so a rescaled layer's box does not rescale with its weights";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new()
    {
        ["epsilon"] = budget.SharpnessEpsilon, ["steps"] = budget.EpsilonSharpnessSteps, ["random_starts"] = budget.EpsilonSharpnessRandomStarts,
    };

    /// <summary>At most (1 + random starts) x steps gradients and one loss pass per start (a start that stops early at a stationary point spends fewer).</summary>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size)
    {
        ArgumentNullException.ThrowIfNull(budget);
        var starts = 1.0 + budget.EpsilonSharpnessRandomStarts;
        return new(0, starts, starts * budget.EpsilonSharpnessSteps);
    }

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        var result = Sharpness.Epsilon(context.Model, context.Train, new EpsilonSharpnessOptions
        {
            Epsilon = b.SharpnessEpsilon, Steps = b.EpsilonSharpnessSteps, RandomStarts = b.EpsilonSharpnessRandomStarts,
            Landscape = context.Landscape, Seed = context.Seed, Cancellation = context.Cancellation,
            Progress = FlatnessMeasures.Named(context.Progress, "epsilon-sharpness"),
        });
        var eps = SharpnessMeasureParts.Key(b.SharpnessEpsilon);
        return new MeasureResult
        {
            Measure = Name,
            Values =
            [
                new("epsilon_sharpness", $"ε-sharpness, max L(x+δ) − L(x) over the box, ε = {eps}", result.Value, null, FlatterWhen.Lower),
                new("epsilon_sharpness_keskar", $"ε-sharpness, Keskar's 100 (max L − L)/(1 + L), ε = {eps}", result.KeskarSharpness, null, FlatterWhen.Lower),
            ],
            Used = SharpnessMeasureParts.Used(result),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = ["projected gradient ascent finds a local maximum over the box: a lower bound of Keskar's maximum; no standard error"],
        };
    }
}

/// <summary>
/// The SAM sharpness of Foret et al. (<see cref="Sharpness"/>.Sam): max of L(x + delta) - L(x) over ||delta|| &lt;= rho,
/// by the one-step estimate rho g / ||g|| and by a few steps of projected normalised ascent. No standard error.
/// </summary>
public sealed class SamSharpnessMeasure : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "sam-sharpness";

    /// <inheritdoc/>
    public string Title => "SAM sharpness (Foret et al. 2021): largest loss rise in an L2 ball, one step and a few steps of ascent";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => SharpnessMeasureParts.ToReport(new SamSharpnessOptions().Invariance);

    /// <inheritdoc/>
    public string RescalingReason => "a fixed Euclidean ball: a layer rescaled by 1/a is a times more sensitive to the same perturbation";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new() { ["rho"] = budget.SamRho, ["steps"] = budget.SharpnessAscentSteps };

    /// <summary>The one-step value (one gradient, one loss pass) and the few-step one (steps gradients, one loss pass); fewer when the ascent stops at a stationary point.</summary>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size)
    {
        ArgumentNullException.ThrowIfNull(budget);
        return new(0, 2, 1 + budget.SharpnessAscentSteps);
    }

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        SamSharpnessOptions Options(int steps) => new()
        {
            Rho = b.SamRho, Steps = steps, Landscape = context.Landscape, Seed = context.Seed, Cancellation = context.Cancellation,
            Progress = FlatnessMeasures.Named(context.Progress, steps == 1 ? "sam one-step" : $"sam {steps} steps"),
        };
        var one = Sharpness.Sam(context.Model, context.Train, Options(1));
        var few = Sharpness.Sam(context.Model, context.Train, Options(b.SharpnessAscentSteps));
        var rho = SharpnessMeasureParts.Key(b.SamRho);
        var notes = new List<string> { "an ascent: a lower bound of the maximum over the ball; no standard error" };
        if (one.ZeroGradientFallback) notes.Add("the gradient at the weights is exactly zero: the first step went along a seeded random direction");
        return new MeasureResult
        {
            Measure = Name,
            Values =
            [
                new("sam_sharpness", $"SAM sharpness, one step, ρ = {rho}", one.Value, null, FlatterWhen.Lower),
                new("sam_sharpness_steps", $"SAM sharpness, {b.SharpnessAscentSteps} ascent steps, ρ = {rho}", few.Value, null, FlatterWhen.Lower),
            ],
            Used = SharpnessMeasureParts.Used(one, few),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = notes,
        };
    }
}

/// <summary>
/// The adaptive sharpness of ASAM (Kwon et al. 2021; <see cref="Sharpness"/>.Adaptive): max of L(x + delta) - L(x) over
/// ||T_x^-1 delta|| &lt;= rho with T_x = diag(|x_i| + eta), one step and a few steps. No standard error.
/// </summary>
/// <param name="eta">eta of T_x (default 0.01, Kwon et al.'s); 0 gives the exactly invariant form (a separate measure, since the invariance differs).</param>
public sealed class AdaptiveSharpnessMeasure(double eta = 0.01) : IFlatnessMeasure
{
    /// <summary>eta of T_x = diag(|x_i| + eta).</summary>
    public double Eta { get; } = eta >= 0 && double.IsFinite(eta)
        ? eta
        : throw new ArgumentException($"AdaptiveSharpnessMeasure: eta must be zero or positive and finite, got {eta.ToString(CultureInfo.InvariantCulture)}", nameof(eta));

    private RescalingInvariance Invariance => new AdaptiveSharpnessOptions { Eta = Eta }.Invariance;

    /// <inheritdoc/>
    public string Name => Eta == 0.01 ? "adaptive-sharpness" : $"adaptive-sharpness-eta-{SharpnessMeasureParts.Key(Eta)}";

    /// <inheritdoc/>
    public string Title => $"Adaptive sharpness (ASAM, Kwon et al. 2021), ball of radius ρ scaled by abs x_i + η, η = {SharpnessMeasureParts.Key(Eta)}";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => SharpnessMeasureParts.ToReport(Invariance);

    /// <inheritdoc/>
    public string RescalingReason => Invariance == RescalingInvariance.Invariant
        ? "T_x = diag(|x_i|) rescales with the weights (T_{Ax} = A T_x for positive diagonal A), so the ball and the ascent's iterates rescale with the network"
        : $"approximately invariant only: T_x = diag(|x_i| + η) rescales with the weights except for the offset η = {SharpnessMeasureParts.Key(Eta)}, which matters for weights near η";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new() { ["rho"] = budget.AsamRho, ["eta"] = Eta, ["steps"] = budget.SharpnessAscentSteps };

    /// <summary>The one-step value (one gradient, one loss pass) and the few-step one (steps gradients, one loss pass); fewer when the ascent stops at a stationary point.</summary>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size)
    {
        ArgumentNullException.ThrowIfNull(budget);
        return new(0, 2, 1 + budget.SharpnessAscentSteps);
    }

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        AdaptiveSharpnessOptions Options(int steps) => new()
        {
            Rho = b.AsamRho, Eta = Eta, Steps = steps, Landscape = context.Landscape, Seed = context.Seed, Cancellation = context.Cancellation,
            Progress = FlatnessMeasures.Named(context.Progress, steps == 1 ? "asam one-step" : $"asam {steps} steps"),
        };
        var one = Sharpness.Adaptive(context.Model, context.Train, Options(1));
        var few = Sharpness.Adaptive(context.Model, context.Train, Options(b.SharpnessAscentSteps));
        var rho = SharpnessMeasureParts.Key(b.AsamRho);
        var suffix = Eta == 0.01 ? "" : $"_eta_{SharpnessMeasureParts.Key(Eta)}";
        var notes = new List<string> { "an ascent: a lower bound of the maximum over the ball; no standard error" };
        if (one.ZeroGradientFallback) notes.Add("the scaled gradient at the weights is exactly zero: the first step went along a seeded random direction");
        return new MeasureResult
        {
            Measure = Name,
            Values =
            [
                new($"adaptive_sharpness{suffix}", $"adaptive sharpness (ASAM), one step, ρ = {rho}, η = {SharpnessMeasureParts.Key(Eta)}", one.Value, null, FlatterWhen.Lower),
                new($"adaptive_sharpness_steps{suffix}", $"adaptive sharpness (ASAM), {b.SharpnessAscentSteps} ascent steps, ρ = {rho}, η = {SharpnessMeasureParts.Key(Eta)}",
                    few.Value, null, FlatterWhen.Lower),
            ],
            Used = SharpnessMeasureParts.Used(one, few),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = notes,
        };
    }
}

/// <summary>
/// The PAC-Bayes flatness sigma' of Jiang et al. 2020 (<see cref="Sharpness"/>.PacBayes): the largest noise scale whose
/// Monte Carlo mean increase of the training error stays at or below the threshold (0.1), isotropic (sigma') or
/// magnitude-aware (sigma'_mag, noise sigma |x_i| z_i). Higher is flatter. sigma' itself comes from a bisection on
/// common random numbers and has no standard error; the increase at sigma' is reported with its Monte Carlo standard error.
/// </summary>
/// <param name="magnitudeAware">sigma'_mag instead of sigma'.</param>
/// <param name="criterion">What the threshold bounds: the error rate (Jiang et al., default) or the mean loss (for losses without classes).</param>
/// <param name="magnitudeEpsilon">eps of the magnitude-aware noise variance sigma^2 x_i^2 + eps^2. Default 0, the exactly invariant form
/// (Jiang et al. use 1e-3 so that zero weights get noise too; with it the measure is only approximately invariant).</param>
public sealed class PacBayesSigmaMeasure(bool magnitudeAware, PacBayesCriterion criterion = PacBayesCriterion.Error, double magnitudeEpsilon = 0) : IFlatnessMeasure
{
    /// <summary>Magnitude-aware noise (sigma'_mag).</summary>
    public bool MagnitudeAware { get; } = magnitudeAware;

    /// <summary>What the threshold bounds.</summary>
    public PacBayesCriterion Criterion { get; } = criterion;

    /// <summary>eps of the magnitude-aware noise.</summary>
    public double MagnitudeEpsilon { get; } = magnitudeEpsilon >= 0 && double.IsFinite(magnitudeEpsilon)
        ? magnitudeEpsilon
        : throw new ArgumentException($"PacBayesSigmaMeasure: magnitudeEpsilon must be zero or positive and finite, got {magnitudeEpsilon.ToString(CultureInfo.InvariantCulture)}", nameof(magnitudeEpsilon));

    private PacBayesFlatnessOptions Options(FlatnessBudget budget) => new()
    {
        Criterion = Criterion, Threshold = budget.PacBayesThreshold, Samples = budget.PacBayesSamples, Antithetic = true,
        SigmaLow = budget.PacBayesSigmaLow, SigmaHigh = budget.PacBayesSigmaHigh, RelativeTolerance = budget.PacBayesRelativeTolerance,
        MagnitudeAware = MagnitudeAware, MagnitudeEpsilon = MagnitudeEpsilon,
    };

    private RescalingInvariance Invariance => new PacBayesFlatnessOptions { MagnitudeAware = MagnitudeAware, MagnitudeEpsilon = MagnitudeEpsilon }.Invariance;

    private string Key => (MagnitudeAware ? "pac_bayes_sigma_magnitude" : "pac_bayes_sigma") + (Criterion == PacBayesCriterion.Loss ? "_loss" : "");

    /// <inheritdoc/>
    public string Name => (MagnitudeAware ? "pac-bayes-sigma-magnitude" : "pac-bayes-sigma") + (Criterion == PacBayesCriterion.Loss ? "-loss" : "");

    /// <inheritdoc/>
    public string Title => MagnitudeAware
        ? $"PAC-Bayes flatness σ'_mag (Jiang et al. 2020): largest magnitude-aware weight noise keeping the {CriterionWord} rise ≤ threshold"
        : $"PAC-Bayes flatness σ' (Jiang et al. 2020): largest isotropic weight noise keeping the {CriterionWord} rise ≤ threshold";

    private string CriterionWord => Criterion == PacBayesCriterion.Error ? "error" : "loss";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => SharpnessMeasureParts.ToReport(Invariance);

    /// <inheritdoc/>
    public string RescalingReason => Invariance switch
    {
        RescalingInvariance.Invariant => "the noise σ|x_i|z_i rescales with the weights draw by draw, so each perturbed network is the rescaled perturbed network",
        RescalingInvariance.ApproximatelyInvariant => $"approximately invariant only: the noise's ε² = {SharpnessMeasureParts.Key(MagnitudeEpsilon * MagnitudeEpsilon)} term does not rescale",
        _ => "isotropic noise: a layer rescaled by 1/a is a times more sensitive to the same noise",
    };

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new()
    {
        ["criterion"] = Criterion.ToString(), ["threshold"] = budget.PacBayesThreshold, ["samples"] = budget.PacBayesSamples, ["antithetic"] = true,
        ["sigma_low"] = budget.PacBayesSigmaLow, ["sigma_high"] = budget.PacBayesSigmaHigh, ["relative_tolerance"] = budget.PacBayesRelativeTolerance,
        ["magnitude_epsilon"] = MagnitudeAware ? MagnitudeEpsilon : null,
    };

    /// <summary>
    /// Most bisection steps: the bracket's width halves every step whatever the outcomes, and the search stops once the
    /// width is at most the tolerance times the upper end, which is at least the lower end plus the width; the path whose
    /// lower end never moves (every midpoint exceeds the threshold) is the longest, and is followed here step by step.
    /// </summary>
    internal static int MostBisections(double sigmaLow, double sigmaHigh, double relativeTolerance)
    {
        double low = sigmaLow, high = sigmaHigh;
        var steps = 0;
        while (high - low > relativeTolerance * high)
        {
            high = 0.5 * (low + high);
            steps++;
        }
        return steps;
    }

    /// <summary>
    /// Loss passes only: one at the weights, and per sigma tried (the upper end, the lower end, every bisection step and
    /// the final re-estimate) two per noise draw (antithetic pairs); an upper bound, since the bisection is followed on
    /// its longest path.
    /// </summary>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size)
    {
        ArgumentNullException.ThrowIfNull(budget);
        var sigmas = 3.0 + MostBisections(budget.PacBayesSigmaLow, budget.PacBayesSigmaHigh, budget.PacBayesRelativeTolerance);
        return new(0, 1 + 2.0 * budget.PacBayesSamples * sigmas, 0);
    }

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var watch = Stopwatch.StartNew();
        var options = Options(context.Budget) with
        {
            Landscape = context.Landscape, Seed = context.Seed, Cancellation = context.Cancellation,
            Progress = FlatnessMeasures.Named(context.Progress, MagnitudeAware ? "pac-bayes sigma'_mag" : "pac-bayes sigma'"),
        };
        var result = Sharpness.PacBayes(context.Model, context.Train, options);
        var symbol = MagnitudeAware ? "σ'_mag" : "σ'";
        var threshold = SharpnessMeasureParts.Key(context.Budget.PacBayesThreshold);
        // Every draw gave the same rise (typical of the error criterion, whose rise takes few values, when the noise
        // flips no prediction): the sample's spread is zero, which says nothing about the estimator's. An error of
        // 0 would read as an exact number, so none is given.
        var noSpread = result.StandardError == 0;
        var notes = new List<string>
        {
            noSpread
                ? $"{symbol} comes from a bisection on common random numbers and has no standard error; all {result.Samples} antithetic pairs gave the same {CriterionWord} rise at {symbol}: the sample has no spread to estimate a standard error from, so none is given"
                : $"{symbol} comes from a bisection on common random numbers and has no standard error; the {CriterionWord} rise at {symbol} has its Monte Carlo one ({result.Samples} antithetic pairs)",
        };
        if (result.Outcome == BracketOutcome.AtLeastUpper)
            notes.Add($"even σ = {SharpnessMeasureParts.Key(result.BracketHigh)} keeps the {CriterionWord} rise below {threshold}: {symbol} is at least that (reported as it)");
        if (result.Outcome == BracketOutcome.AtMostLower)
            notes.Add($"even σ = {SharpnessMeasureParts.Key(result.BracketLow)} raises the {CriterionWord} above {threshold}: {symbol} is at most that (reported as it)");
        return new MeasureResult
        {
            Measure = Name,
            Values =
            [
                new(Key, $"PAC-Bayes {symbol} ({CriterionWord} rise ≤ {threshold})", result.Value, null, FlatterWhen.Higher),
                new($"{Key}_rise", $"mean {CriterionWord} rise at {symbol} (Monte Carlo)", result.IncreaseAtSigma,
                    double.IsFinite(result.StandardError) && !noSpread ? result.StandardError : null, FlatterWhen.NotJudged),
            ],
            Used = SharpnessMeasureParts.Used(result),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = notes,
        };
    }
}
