using System.Globalization;

namespace WideValley.Landscape.Flatness;

/// <summary>
/// Every flatness measure's parameters at one level of effort: quick (a smoke test, seconds on a small network),
/// standard (the report's default) or thorough (tighter estimates, more points). Change one with <c>with</c>.
/// </summary>
public sealed record FlatnessBudget
{
    /// <summary>quick, standard, thorough, or a name given to a modified budget.</summary>
    public required string Name { get; init; }

    /// <summary>Largest eigenvalues Lanczos reports (the top-k).</summary>
    public int TopEigenvalues { get; init; }

    /// <summary>Most negative eigenvalues Lanczos reports.</summary>
    public int BottomEigenvalues { get; init; }

    /// <summary>Most Lanczos steps per end of the spectrum.</summary>
    public int LanczosSteps { get; init; }

    /// <summary>Lanczos relative residual tolerance (it stops earlier when every wanted pair meets it).</summary>
    public double LanczosTolerance { get; init; }

    /// <summary>Hutchinson probes for the Hessian trace (total and per layer).</summary>
    public int TraceProbes { get; init; }

    /// <summary>SLQ probe vectors.</summary>
    public int SlqProbes { get; init; }

    /// <summary>Lanczos steps per SLQ probe.</summary>
    public int SlqSteps { get; init; }

    /// <summary>Hutchinson probes for the Gauss-Newton trace.</summary>
    public int GaussNewtonProbes { get; init; }

    /// <summary>Scopes gamma of the local entropy F(x, gamma).</summary>
    public IReadOnlyList<double> Scopes { get; init; } = [];

    /// <summary>Temperature T of the local entropy.</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>Gaussian samples of the direct local-entropy estimator, per scope.</summary>
    public int EntropySamples { get; init; }

    /// <summary>Langevin steps kept (after <see cref="LangevinBurnIn"/>) per scope: the estimator Entropy-SGD uses.</summary>
    public int LangevinSteps { get; init; }

    /// <summary>Langevin steps discarded first, per scope.</summary>
    public int LangevinBurnIn { get; init; }

    /// <summary>Langevin step size times gamma (the step is this over gamma, so the coupling stays stable at every scope).</summary>
    public double LangevinStepTimesGamma { get; init; } = 0.1;

    /// <summary>Random filter-normalised directions of the 1-D slices.</summary>
    public int SliceDirections { get; init; }

    /// <summary>Points along each 1-D slice (and along the interpolations).</summary>
    public int SlicePoints { get; init; }

    /// <summary>Half-width R of the slices: alpha runs over [-R, R].</summary>
    public double SliceRadius { get; init; }

    /// <summary>Points per axis of the 2-D surface.</summary>
    public int SurfacePoints { get; init; }

    /// <summary>epsilon of Keskar et al.'s box |delta_i| &lt;= epsilon (|x_i| + 1). 1e-3 in every budget (Keskar et al. report 1e-3 and 5e-4).</summary>
    public double SharpnessEpsilon { get; init; } = 1e-3;

    /// <summary>Projected-ascent steps (gradients) per start of the epsilon-sharpness.</summary>
    public int EpsilonSharpnessSteps { get; init; }

    /// <summary>Uniform random starts in the box besides the start at x (epsilon-sharpness).</summary>
    public int EpsilonSharpnessRandomStarts { get; init; }

    /// <summary>rho of the SAM sharpness's L2 ball. 0.05 in every budget (Foret et al.'s default).</summary>
    public double SamRho { get; init; } = 0.05;

    /// <summary>
    /// rho of the adaptive (ASAM) ball ||T_x^-1 delta|| &lt;= rho, T_x = diag(|x_i| + eta). 0.5 in every budget: Kwon et
    /// al.'s recommended value (their code's default; SAM's 0.05 is far too small once the ball is measured relative to
    /// each weight's magnitude, which is why ASAM needs a larger rho), so the value is the sharpness ASAM trains against.
    /// </summary>
    public double AsamRho { get; init; } = 0.5;

    /// <summary>Ascent steps (gradients) of the few-step SAM and ASAM values (the one-step values are always measured too).</summary>
    public int SharpnessAscentSteps { get; init; }

    /// <summary>Largest expected increase of the error rate (a fraction) that the PAC-Bayes sigma' allows. 0.1 (Jiang et al.).</summary>
    public double PacBayesThreshold { get; init; } = 0.1;

    /// <summary>Noise draws per sigma of the PAC-Bayes bisection (each evaluated as an antithetic pair).</summary>
    public int PacBayesSamples { get; init; }

    /// <summary>The PAC-Bayes bisection stops when its bracket is narrower than this fraction of its upper end.</summary>
    public double PacBayesRelativeTolerance { get; init; }

    /// <summary>
    /// Lower end of the PAC-Bayes bracket. Jiang et al. search [0, 2]; a positive floor (1e-4) bounds the bisection's
    /// steps, so the cost estimate is an upper bound: a sigma' below it is reported as at most the floor.
    /// </summary>
    public double PacBayesSigmaLow { get; init; } = 1e-4;

    /// <summary>Upper end of the PAC-Bayes bracket: 2, as Jiang et al.</summary>
    public double PacBayesSigmaHigh { get; init; } = 2;

    /// <summary>A smoke test: seconds on a small network; the numbers are rough.</summary>
    public static FlatnessBudget Quick { get; } = new()
    {
        Name = "quick", TopEigenvalues = 3, BottomEigenvalues = 1, LanczosSteps = 20, LanczosTolerance = 1e-3, TraceProbes = 10, SlqProbes = 2, SlqSteps = 16,
        GaussNewtonProbes = 10, Scopes = [1e3, 1e4], EntropySamples = 16, LangevinSteps = 20, LangevinBurnIn = 10,
        SliceDirections = 2, SlicePoints = 9, SliceRadius = 1, SurfacePoints = 5,
        EpsilonSharpnessSteps = 5, EpsilonSharpnessRandomStarts = 1, SharpnessAscentSteps = 3, PacBayesSamples = 3, PacBayesRelativeTolerance = 0.05,
    };

    /// <summary>The report's default.</summary>
    public static FlatnessBudget Standard { get; } = new()
    {
        Name = "standard", TopEigenvalues = 5, BottomEigenvalues = 3, LanczosSteps = 60, LanczosTolerance = 1e-4, TraceProbes = 50, SlqProbes = 5, SlqSteps = 40,
        GaussNewtonProbes = 50, Scopes = [1e2, 1e3, 1e4], EntropySamples = 64, LangevinSteps = 100, LangevinBurnIn = 50,
        SliceDirections = 4, SlicePoints = 21, SliceRadius = 1, SurfacePoints = 11,
        EpsilonSharpnessSteps = 20, EpsilonSharpnessRandomStarts = 2, SharpnessAscentSteps = 5, PacBayesSamples = 10, PacBayesRelativeTolerance = 0.01,
    };

    /// <summary>Tighter estimates and finer slices.</summary>
    public static FlatnessBudget Thorough { get; } = new()
    {
        Name = "thorough", TopEigenvalues = 10, BottomEigenvalues = 5, LanczosSteps = 150, LanczosTolerance = 1e-5, TraceProbes = 200, SlqProbes = 10, SlqSteps = 90,
        GaussNewtonProbes = 200, Scopes = [1e1, 1e2, 1e3, 1e4, 1e5], EntropySamples = 256, LangevinSteps = 400, LangevinBurnIn = 100,
        SliceDirections = 8, SlicePoints = 41, SliceRadius = 1, SurfacePoints = 21,
        EpsilonSharpnessSteps = 50, EpsilonSharpnessRandomStarts = 4, SharpnessAscentSteps = 10, PacBayesSamples = 32, PacBayesRelativeTolerance = 0.005,
    };

    /// <summary>The budget names, as the command line spells them.</summary>
    public static IReadOnlyList<string> Names { get; } = ["quick", "standard", "thorough"];

    /// <summary>The budget called <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="ArgumentException">Not one of <see cref="Names"/>.</exception>
    public static FlatnessBudget Named(string name) => name?.ToLowerInvariant() switch
    {
        "quick" => Quick,
        "standard" => Standard,
        "thorough" => Thorough,
        _ => throw new ArgumentException($"budget '{name}' is not one of {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>
    /// Refuses a budget that cannot be measured: every count must be at least 1 (at least 2 for the points of an axis,
    /// 2 directions for a standard error of the random slices), radii, scopes, tolerance, temperature and step size
    /// positive and finite; the sharpness settings likewise (epsilon and both rho positive, at least 2 few-step ascent
    /// steps and 2 PAC-Bayes noise pairs, the error threshold and relative tolerance in (0, 1), a bracket 0 &lt; low &lt; high).
    /// The message names the parameter and its value.
    /// </summary>
    /// <exception cref="ArgumentException">The first parameter out of range.</exception>
    public void Validate()
    {
        void AtLeast(int value, int least, string name)
        {
            if (value < least) throw new ArgumentException($"flatness budget '{Name}': {name} must be at least {least}, got {value}");
        }
        void Positive(double value, string name)
        {
            if (!(value > 0) || !double.IsFinite(value))
                throw new ArgumentException($"flatness budget '{Name}': {name} must be positive and finite, got {value.ToString(CultureInfo.InvariantCulture)}");
        }
        AtLeast(TopEigenvalues, 1, nameof(TopEigenvalues));
        AtLeast(BottomEigenvalues, 1, nameof(BottomEigenvalues));
        AtLeast(LanczosSteps, Math.Max(TopEigenvalues, BottomEigenvalues), nameof(LanczosSteps) + " (at least as many as the eigenvalues wanted at either end)");
        Positive(LanczosTolerance, nameof(LanczosTolerance));
        AtLeast(TraceProbes, 2, nameof(TraceProbes));
        AtLeast(SlqProbes, 1, nameof(SlqProbes));
        AtLeast(SlqSteps, 1, nameof(SlqSteps));
        AtLeast(GaussNewtonProbes, 2, nameof(GaussNewtonProbes));
        if (Scopes.Count == 0) throw new ArgumentException($"flatness budget '{Name}': give at least one scope gamma of the local entropy");
        foreach (var gamma in Scopes) Positive(gamma, "scope gamma");
        Positive(Temperature, nameof(Temperature));
        AtLeast(EntropySamples, 2, nameof(EntropySamples));
        AtLeast(LangevinSteps, 1, nameof(LangevinSteps));
        AtLeast(LangevinBurnIn, 0, nameof(LangevinBurnIn));
        Positive(LangevinStepTimesGamma, nameof(LangevinStepTimesGamma));
        AtLeast(SliceDirections, 2, nameof(SliceDirections));
        AtLeast(SlicePoints, 2, nameof(SlicePoints));
        Positive(SliceRadius, nameof(SliceRadius));
        AtLeast(SurfacePoints, 2, nameof(SurfacePoints));
        Positive(SharpnessEpsilon, nameof(SharpnessEpsilon));
        AtLeast(EpsilonSharpnessSteps, 1, nameof(EpsilonSharpnessSteps));
        AtLeast(EpsilonSharpnessRandomStarts, 0, nameof(EpsilonSharpnessRandomStarts));
        Positive(SamRho, nameof(SamRho));
        Positive(AsamRho, nameof(AsamRho));
        AtLeast(SharpnessAscentSteps, 2, nameof(SharpnessAscentSteps) + " (the few-step values; the one-step values are measured anyway)");
        Positive(PacBayesThreshold, nameof(PacBayesThreshold));
        if (PacBayesThreshold >= 1)
            throw new ArgumentException($"flatness budget '{Name}': {nameof(PacBayesThreshold)} is an increase of the error rate (a fraction) and must be below 1, got {PacBayesThreshold.ToString(CultureInfo.InvariantCulture)}");
        AtLeast(PacBayesSamples, 2, nameof(PacBayesSamples) + " (two draws give a standard error)");
        Positive(PacBayesRelativeTolerance, nameof(PacBayesRelativeTolerance));
        if (PacBayesRelativeTolerance >= 1)
            throw new ArgumentException($"flatness budget '{Name}': {nameof(PacBayesRelativeTolerance)} must lie in (0, 1), got {PacBayesRelativeTolerance.ToString(CultureInfo.InvariantCulture)}");
        Positive(PacBayesSigmaLow, nameof(PacBayesSigmaLow) + " (a positive floor bounds the bisection)");
        Positive(PacBayesSigmaHigh, nameof(PacBayesSigmaHigh));
        if (!(PacBayesSigmaHigh > PacBayesSigmaLow))
            throw new ArgumentException($"flatness budget '{Name}': the PAC-Bayes bracket [{PacBayesSigmaLow.ToString(CultureInfo.InvariantCulture)}, {PacBayesSigmaHigh.ToString(CultureInfo.InvariantCulture)}] needs {nameof(PacBayesSigmaHigh)} > {nameof(PacBayesSigmaLow)}");
    }
}
