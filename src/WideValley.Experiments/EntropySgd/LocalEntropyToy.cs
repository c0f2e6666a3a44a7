using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WideValley.Landscape;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Settings of <see cref="LocalEntropyToy"/>. <see cref="For"/> gives each budget's sizes; the landscape, scopes,
/// temperature and seed are the same for every budget.
/// </summary>
public sealed record LocalEntropyToySettings
{
    /// <summary>The budget these settings were made for (<see cref="For"/>); it sizes the curves, checks and runs, nothing else.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;
    /// <summary>The function f the optimizers descend; the default is seed 003's cartoon.</summary>
    public TwoWellLandscape Landscape { get; init; } = new();

    /// <summary>
    /// The small scope gamma. At 1, -F(x, gamma) of the default landscape has a single minimum, in the wide valley (at
    /// x = -0.72), and slopes towards it everywhere in the x range: the Gibbs measure, about sqrt(T / gamma) = 1 wide,
    /// sees both wells and the wide one holds more of its mass. By quadrature, a second local minimum appears in the
    /// sharp valley near gamma = 2.5 and becomes the global one between gamma = 10 and 20.
    /// </summary>
    public double SmallScope { get; init; } = 1;

    /// <summary>
    /// The large scope gamma. At 100 the Gibbs measure is 0.1 wide, -F is within 0.02 of f in the wide well and its
    /// global minimum is f's, in the sharp well, still raised by about (T / 2) log(1 + f''/gamma) there: F tends to f
    /// as gamma grows.
    /// </summary>
    public double LargeScope { get; init; } = 100;

    /// <summary>T of the Gibbs measure: the paper sets beta = 1 / T = 1 (Sec. 3).</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>Seed of every Langevin noise stream (the checks' and Entropy-SGD's, each derived from it).</summary>
    public long Seed { get; init; }

    /// <summary>The x range of the curves, the Langevin checks and the starts.</summary>
    public double XMin { get; init; } = -2.5;
    /// <summary>The upper end of the x range (see <see cref="XMin"/>).</summary>
    public double XMax { get; init; } = 2.5;

    /// <summary>Points of the quadrature curves on [<see cref="XMin"/>, <see cref="XMax"/>].</summary>
    public int CurvePoints { get; init; } = 101;

    /// <summary>Points x where the Langevin estimate is compared with quadrature.</summary>
    public int LangevinPoints { get; init; } = 5;

    /// <summary>Independent Langevin chains per point.</summary>
    public int LangevinChains { get; init; } = 64;

    /// <summary>Length of each check's chains in units of 1/gamma, the relaxation time of the coupling term.</summary>
    public double LangevinHorizon { get; init; } = 10;

    /// <summary>
    /// eta' (gamma + max |f''|): the Euler-Maruyama step relative to the stiffest direction. The chain samples a
    /// measure whose moments differ from the Gibbs measure's by O(this); 0.1 keeps the variance bias near 5%.
    /// </summary>
    public double LangevinStepAccuracy { get; init; } = 0.1;

    /// <summary>
    /// alpha L, the exponential average's length in windows: the starting point keeps weight exp(-alpha L) in mu, and
    /// mu averages the last L / (alpha L) steps. 5 leaves 0.7% of the start, which moves &lt;x'&gt; by 0.007 |x - &lt;x'&gt;|,
    /// under 0.003 here, while averaging twice as many samples as a tenfold window would.
    /// </summary>
    public double AverageWindows { get; init; } = 5;

    /// <summary>
    /// Allowance for the Langevin check's systematic error (the Euler step and the start's weight in mu): a point
    /// agrees with quadrature when |error| &lt;= 4 standard errors + this.
    /// </summary>
    public double LangevinBiasAllowance { get; init; } = 0.01;

    /// <summary>Equally spaced starting points on [<see cref="XMin"/>, <see cref="XMax"/>].</summary>
    public int Starts { get; init; } = 9;

    /// <summary>Entropy-SGD runs from each start, differing in their Langevin noise.</summary>
    public int Replicas { get; init; } = 1;

    /// <summary>Entropy-SGD's outer steps, over which its scope grows from the small scope by <see cref="ScopingFactor"/>.</summary>
    public int OuterSteps { get; init; } = 40;

    /// <summary>
    /// How far Entropy-SGD scopes: gamma(t) = gamma0 (1 + gamma1)^t (Sec. 4.3) rises from the small scope to this many
    /// times it at the last step. At 5 gamma's, -F's minima lie on f's (by quadrature: -1.00 and 0.98), so runs end at
    /// the bottom of a valley of f; the rise is slow enough that runs cross to the wide valley while gamma is still below
    /// the 2.5 at which the sharp valley gets a minimum of its own. 1 switches scoping off.
    /// </summary>
    public double ScopingFactor { get; init; } = 5;

    /// <summary>
    /// Langevin time per Entropy-SGD step in units of 1/(small scope); sets L. With <see cref="OuterLr"/> it sets how
    /// noisy the outer iterate is: each step moves x by eta times a Gibbs average over this time, so the iterate
    /// diffuses with an effective temperature about eta / (this horizon) on -F.
    /// </summary>
    public double InnerHorizon { get; init; } = 1;

    /// <summary>
    /// alpha L of Entropy-SGD's chains. Unlike in a check, weight left on the starting point x only shortens the outer
    /// step (mu = w x + (1 - w) average gives x - mu = (1 - w)(x - average)), so a long window, which averages away more
    /// of the thermal noise of the Gibbs measure, costs no bias.
    /// </summary>
    public double InnerAverageWindows { get; init; } = 2;

    /// <summary>eta' (gamma + max |f''|) of Entropy-SGD's chains at the largest scope they reach.</summary>
    public double InnerStepAccuracy { get; init; } = 0.1;

    /// <summary>
    /// eta, the outer learning rate on the unscaled gradient x - mu of Sec. 4.3. The paper's eta = 1 moves x onto mu, a
    /// Gibbs average over one chain: at T = 1 that average is as noisy as the Gibbs measure is wide (about 1 here), so
    /// smaller steps average it over several outer steps.
    /// </summary>
    public double OuterLr { get; init; } = 0.5;

    /// <summary>The sizes of a budget: smoke takes seconds, paper a few minutes on two cores.</summary>
    public static LocalEntropyToySettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new LocalEntropyToySettings { Budget = budget },
        Budget.Small => new LocalEntropyToySettings
        {
            Budget = budget, CurvePoints = 251, LangevinPoints = 11, LangevinChains = 512, LangevinHorizon = 20,
            Starts = 21, Replicas = 4, OuterSteps = 200, InnerHorizon = 2, OuterLr = 0.5,
        },
        Budget.Paper => new LocalEntropyToySettings
        {
            Budget = budget, CurvePoints = 501, LangevinPoints = 21, LangevinChains = 2048, LangevinHorizon = 30,
            Starts = 41, Replicas = 8, OuterSteps = 600, InnerHorizon = 4, OuterLr = 0.2,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>eta' for a chain at scope <paramref name="gamma"/>.</summary>
    public double LangevinLr(double gamma) => LangevinStepAccuracy / (gamma + Landscape.MaxCurvature);

    /// <summary>Steps of a check's chains at scope <paramref name="gamma"/>.</summary>
    public int LangevinSteps(double gamma) => (int)Math.Ceiling(LangevinHorizon / (gamma * LangevinLr(gamma)));

    /// <summary>The scope Entropy-SGD ends at.</summary>
    public double FinalScope => SmallScope * ScopingFactor;

    /// <summary>eta' of Entropy-SGD's chains: fixed for the run, so set for the largest scope it reaches.</summary>
    public double InnerLr => InnerStepAccuracy / (FinalScope + Landscape.MaxCurvature);

    /// <summary>L, Langevin steps per Entropy-SGD step.</summary>
    public int InnerSteps => (int)Math.Ceiling(InnerHorizon / (SmallScope * InnerLr));

    /// <summary>gamma1 of gamma(t) = gamma0 (1 + gamma1)^t, so that gamma reaches the final scope at the last step.</summary>
    public double ScopingRate => Math.Pow(ScopingFactor, 1.0 / (OuterSteps - 1)) - 1;

    /// <summary>
    /// The plain gradient-descent baseline's step: half the largest stable one (2 / max |f''|), so it neither
    /// oscillates in the sharp well nor crawls in the wide one.
    /// </summary>
    public double SgdLr => 0.5 / Landscape.MaxCurvature;

    /// <summary>SGD may take as many gradient evaluations as Entropy-SGD: outer steps x L.</summary>
    public long SgdSteps => (long)OuterSteps * InnerSteps;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Landscape);
        Landscape.Validate();
        if (!(SmallScope > 0) || double.IsInfinity(SmallScope)) throw new ArgumentException($"--scopes: gamma must be positive and finite, got {Text(SmallScope)}");
        if (!(LargeScope > 0) || double.IsInfinity(LargeScope)) throw new ArgumentException($"--scopes: gamma must be positive and finite, got {Text(LargeScope)}");
        if (!(LargeScope > SmallScope)) throw new ArgumentException($"--scopes: the second (large) scope must exceed the first, got {Text(SmallScope)} and {Text(LargeScope)}");
        if (!(Temperature > 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"--temperature must be positive and finite, got {Text(Temperature)}");
        if (!(double.IsFinite(XMin) && double.IsFinite(XMax) && XMax > XMin)) throw new ArgumentException($"the x range [{Text(XMin)}, {Text(XMax)}] is empty");
        if (CurvePoints < 3) throw new ArgumentException($"at least 3 curve points are needed, got {CurvePoints}");
        if (LangevinPoints < 2) throw new ArgumentException($"at least 2 Langevin check points are needed, got {LangevinPoints}");
        if (LangevinChains < 2) throw new ArgumentException($"at least 2 Langevin chains per point are needed (for a standard error), got {LangevinChains}");
        if (!(LangevinHorizon > 0 && AverageWindows > 0 && InnerHorizon > 0 && InnerAverageWindows > 0 && LangevinBiasAllowance >= 0))
            throw new ArgumentException("Langevin horizons and averaging windows must be positive");
        if (!(LangevinStepAccuracy > 0 && LangevinStepAccuracy < 1 && InnerStepAccuracy > 0 && InnerStepAccuracy < 1))
            throw new ArgumentException("Langevin step accuracies must lie in (0, 1)");
        if (Starts < 2 || Replicas < 1) throw new ArgumentException($"at least 2 starts and 1 replica are needed, got {Starts} and {Replicas}");
        if (OuterSteps < 2) throw new ArgumentException($"at least 2 Entropy-SGD steps are needed, got {OuterSteps}");
        if (!(ScopingFactor >= 1) || double.IsInfinity(ScopingFactor)) throw new ArgumentException($"the scoping factor must be at least 1 (1: no scoping), got {Text(ScopingFactor)}");
        if (!(OuterLr > 0 && OuterLr <= 1)) throw new ArgumentException($"the outer learning rate on x - mu must be in (0, 1], got {Text(OuterLr)}");
    }

    static string Text(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>Which valley of f a run ended in.</summary>
public enum EndValley
{
    /// <summary>In the wide, shallow well: on its side of the barrier and below half its depth.</summary>
    Wide,
    /// <summary>In the sharp, deep well: on its side of the barrier and below half its depth.</summary>
    Sharp,
    /// <summary>Neither: still on a plateau or the barrier, where f is above half of either valley's depth.</summary>
    Neither,
}

/// <summary>-F(x, gamma) by quadrature on the curve grid, for one scope.</summary>
/// <param name="Gamma">The scope.</param>
/// <param name="NegativeLocalEntropy">
/// -F(x, gamma) + F_flat(gamma), where F_flat = T log sqrt(2 pi T / gamma) is the local entropy of the flat landscape
/// f = 0: this equals T log E_Gibbs[exp(f(x') / T)], vanishes where the Gibbs measure sees no well and tends to f(x) as
/// gamma grows, so it is drawn on f's own scale without any fitted shift.
/// </param>
/// <param name="Gradient">-dF/dx = gamma (x - &lt;x'&gt;): the gradient Entropy-SGD descends.</param>
/// <param name="GibbsMean">&lt;x'&gt;, the mean of the local Gibbs measure at each x.</param>
/// <param name="LocalMinima">The local minima of -F in the x range, from the grid, refined by golden-section search.</param>
/// <param name="GlobalMinimum">The lowest of <paramref name="LocalMinima"/>.</param>
/// <param name="GlobalMinimumValue">-F + F_flat there.</param>
public sealed record ScopeCurve(double Gamma, double[] NegativeLocalEntropy, double[] Gradient, double[] GibbsMean,
    IReadOnlyList<double> LocalMinima, double GlobalMinimum, double GlobalMinimumValue);

/// <summary>The Langevin estimates at the check points of one scope, beside the quadrature values.</summary>
/// <param name="Gamma">The scope.</param>
/// <param name="X">The check points.</param>
/// <param name="GibbsMean">x - (mean over chains of the estimator's x - mu): the library's local-entropy estimator.</param>
/// <param name="GibbsMeanStandardError">Standard deviation over the independent chains / sqrt(chains).</param>
/// <param name="ExactGibbsMean">&lt;x'&gt; by quadrature.</param>
/// <param name="NegativeLocalEntropy">T log of the mean of exp(f(x') / T) over the second half of every chain (see <see cref="ScopeCurve.NegativeLocalEntropy"/>).</param>
/// <param name="ExactNegativeLocalEntropy">The same quantity by quadrature.</param>
/// <param name="Chains">Chains per point.</param>
/// <param name="Steps">Langevin steps per chain (L of the estimator).</param>
/// <param name="StepSize">eta'.</param>
/// <param name="Alpha">The weight of each new sample in mu.</param>
/// <param name="BiasAllowance">The systematic error a point may have besides 4 standard errors (see <see cref="LocalEntropyToySettings.LangevinBiasAllowance"/>).</param>
public sealed record LangevinCheck(double Gamma, double[] X, double[] GibbsMean, double[] GibbsMeanStandardError, double[] ExactGibbsMean,
    double[] NegativeLocalEntropy, double[] ExactNegativeLocalEntropy, int Chains, int Steps, double StepSize, double Alpha, double BiasAllowance)
{
    /// <summary>The error point i may have: 4 standard errors (the chains are independent) plus the bias allowance.</summary>
    public double Tolerance(int i) => 4 * GibbsMeanStandardError[i] + BiasAllowance;

    /// <summary>Every point's &lt;x'&gt; within its <see cref="Tolerance"/> of quadrature.</summary>
    public bool Agrees => X.Select((_, i) => Math.Abs(GibbsMean[i] - ExactGibbsMean[i]) <= Tolerance(i)).All(ok => ok);

    /// <summary>The largest per-point tolerance: what "agrees" guarantees at worst.</summary>
    public double MaxTolerance => X.Select((_, i) => Tolerance(i)).Max();

    /// <summary>max |&lt;x'&gt; estimated - &lt;x'&gt; exact| over the check points.</summary>
    public double MaxGibbsMeanError => X.Select((_, i) => Math.Abs(GibbsMean[i] - ExactGibbsMean[i])).Max();

    /// <summary>max |error| / standard error: about 3 or less when the error is Monte-Carlo noise alone.</summary>
    public double MaxStandardizedError => X.Select((_, i) => Math.Abs(GibbsMean[i] - ExactGibbsMean[i]) / GibbsMeanStandardError[i]).Max();

    /// <summary>max |gradient error| = gamma max |&lt;x'&gt; error|.</summary>
    public double MaxGradientError => Gamma * MaxGibbsMeanError;

    /// <summary>max |-F estimated - -F by quadrature| over the check points (both shifted by F_flat).</summary>
    public double MaxNegativeLocalEntropyError => X.Select((_, i) => Math.Abs(NegativeLocalEntropy[i] - ExactNegativeLocalEntropy[i])).Max();

    /// <summary>Estimated -dF/dx = gamma (x - &lt;x'&gt;).</summary>
    public double[] Gradient => X.Select((x, i) => Gamma * (x - GibbsMean[i])).ToArray();
}

/// <summary>Where one optimizer's runs ended, one per start and replica.</summary>
public sealed record OptimizerEnds(string Name, double[] Starts, double[] Ends, EndValley[] Valleys, string Description)
{
    /// <summary>How many runs ended in <paramref name="valley"/>.</summary>
    public int Count(EndValley valley) => Valleys.Count(v => v == valley);
    /// <summary>The fraction of runs, in [0, 1], that ended in <paramref name="valley"/>.</summary>
    public double Fraction(EndValley valley) => (double)Count(valley) / Valleys.Length;
}

/// <summary>Everything <see cref="LocalEntropyToy.Run"/> measured.</summary>
/// <param name="Settings">What was run.</param>
/// <param name="Valleys">f's two minima and the barrier between them.</param>
/// <param name="X">The curve grid.</param>
/// <param name="F">f on the grid.</param>
/// <param name="Scopes">-F for the small and the large scope.</param>
/// <param name="Langevin">The Langevin checks, one per entry of <paramref name="Scopes"/>.</param>
/// <param name="FinalScope">-F at the scope Entropy-SGD ends at (where its runs settle).</param>
/// <param name="SwitchScope">
/// The scope between the small and the large one at which -F's global minimum moves from the wide to the sharp valley
/// (bisection in log gamma, to 1%); NaN if it does not move there in that range.
/// </param>
/// <param name="Sgd">Plain gradient descent's ends.</param>
/// <param name="EntropySgd">Entropy-SGD's ends.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record LocalEntropyToyResult(
    LocalEntropyToySettings Settings,
    TwoWellLandscape.Valleys Valleys,
    double[] X,
    double[] F,
    IReadOnlyList<ScopeCurve> Scopes,
    IReadOnlyList<LangevinCheck> Langevin,
    ScopeCurve FinalScope,
    double SwitchScope,
    OptimizerEnds Sgd,
    OptimizerEnds EntropySgd,
    double Seconds)
{
    /// <summary>The valley of f that a point (a minimum of -F, say) lies in.</summary>
    public EndValley ValleyOf(double x) => LocalEntropyToy.Classify(Settings.Landscape, Valleys, x);
}

/// <summary>
/// The paper's Fig. 2 on a landscape whose local entropy is known exactly (seed 003, Sec. 3): f with a wide shallow
/// and a sharp deep valley; -F(x, gamma) for a small and a large scope by quadrature; the library's Langevin
/// estimator of the local-entropy gradient (and a Langevin estimate of -F itself) at a subset of points, against the
/// quadrature; and where Entropy-SGD (with scoping) and plain gradient descent end from a grid of starts.
/// </summary>
public static class LocalEntropyToy
{
    /// <summary>Runs everything; <paramref name="log"/> receives a line as each part finishes (null: silent).</summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    public static LocalEntropyToyResult Run(LocalEntropyToySettings settings, Action<string>? log = null)
    {
        settings.Validate();
        var watch = Stopwatch.StartNew();
        var landscape = settings.Landscape;
        var valleys = landscape.Analyze();
        var x = Grid(settings.XMin, settings.XMax, settings.CurvePoints);
        var f = x.Select(landscape.Value).ToArray();

        var scopes = new List<ScopeCurve>();
        var checks = new List<LangevinCheck>();
        double[] gammas = [settings.SmallScope, settings.LargeScope];
        for (var k = 0; k < gammas.Length; k++)
        {
            scopes.Add(LocalEntropyCurve(settings, x, gammas[k]));
            var check = CheckLangevin(settings, gammas[k], unchecked(settings.Seed * 1000 + k + 1));
            checks.Add(check);
            log?.Invoke(string.Format(CultureInfo.InvariantCulture,
                "gamma {0}: -F has its minimum at x = {1:0.###}; Langevin ({2} points x {3} chains x {4} steps) max |<x'> error| {5:0.####} ({6:0.0} s)",
                gammas[k], scopes[k].GlobalMinimum, check.X.Length, check.Chains, check.Steps, check.MaxGibbsMeanError, watch.Elapsed.TotalSeconds));
        }

        var final = LocalEntropyCurve(settings, x, settings.FinalScope);
        var switchScope = SwitchScope(settings, valleys);
        var grid = Grid(settings.XMin, settings.XMax, settings.Starts);
        var starts = Repeat(grid, settings.Replicas);
        var sgd = RunSgd(settings, grid, settings.Replicas, valleys);
        log?.Invoke($"SGD: {sgd.Count(EndValley.Wide)} of {starts.Length} runs end in the wide valley, {sgd.Count(EndValley.Sharp)} in the sharp one ({watch.Elapsed.TotalSeconds:0.0} s)");
        var esgd = RunEntropySgd(settings, starts, valleys, unchecked(settings.Seed * 1000 + 999));
        log?.Invoke($"Entropy-SGD: {esgd.Count(EndValley.Wide)} of {starts.Length} runs end in the wide valley, {esgd.Count(EndValley.Sharp)} in the sharp one ({watch.Elapsed.TotalSeconds:0.0} s)");
        return new LocalEntropyToyResult(settings, valleys, x, f, scopes, checks, final, switchScope, sgd, esgd, watch.Elapsed.TotalSeconds);
    }

    /// <summary>n equally spaced points from lo to hi, both included.</summary>
    public static double[] Grid(double lo, double hi, int n) =>
        Enumerable.Range(0, n).Select(i => i == n - 1 ? hi : lo + (hi - lo) * i / (n - 1)).ToArray();

    /// <summary>
    /// Quadrature of the local Gibbs measure at x: -F + F_flat (see <see cref="ScopeCurve.NegativeLocalEntropy"/>) and
    /// &lt;x'&gt;. The interval reaches where the Gaussian factor has fallen by e^-30 below the deepest well's boost
    /// exp((A_w + A_s) / T), and its nodes resolve the sharp well 20 times over its width.
    /// </summary>
    public static (double NegativeLocalEntropy, double GibbsMean) Exact(LocalEntropyToySettings settings, double x, double gamma)
    {
        var t = settings.Temperature;
        var l = settings.Landscape;
        var half = Math.Sqrt(2 * t * (30 + (l.WideDepth + l.SharpDepth) / t) / gamma);
        var points = Math.Max(2001, (int)Math.Ceiling(2 * half / (l.SharpWidth / 20)) + 1);
        var r = LocalEntropyQuadrature.Evaluate(l.Value, x, gamma, x - half, x + half, points, t);
        var flat = t * Math.Log(Math.Sqrt(2 * Math.PI * t / gamma));
        return (flat - r.LocalEntropy, r.GibbsMean);
    }

    /// <summary>-F(x, gamma) + F_flat, the gradient and the Gibbs mean at every x by quadrature, and the minima of -F.</summary>
    public static ScopeCurve LocalEntropyCurve(LocalEntropyToySettings s, double[] x, double gamma)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gamma);
        var exact = x.Select(v => Exact(s, v, gamma)).ToArray();
        var values = exact.Select(e => e.NegativeLocalEntropy).ToArray();
        var minima = new List<(double X, double Value)>();
        for (var i = 1; i < x.Length - 1; i++)
            if (values[i] < values[i - 1] && values[i] <= values[i + 1])
                minima.Add(GoldenSection(v => Exact(s, v, gamma).NegativeLocalEntropy, x[i - 1], x[i + 1]));
        if (minima.Count == 0)
        {
            // Monotone over the range: the minimum is at an end.
            var i = values[0] < values[^1] ? 0 : x.Length - 1;
            minima.Add((x[i], values[i]));
        }
        var best = minima.MinBy(m => m.Value);
        return new ScopeCurve(gamma, values, exact.Select((e, i) => gamma * (x[i] - e.GibbsMean)).ToArray(),
            exact.Select(e => e.GibbsMean).ToArray(), minima.Select(m => m.X).ToArray(), best.X, best.Value);
    }

    /// <summary>
    /// Where between the small and the large scope the global minimum of -F moves from the wide valley to the sharp one:
    /// bisection in log gamma on a 201-point grid's curve, to a ratio of 1.01. NaN unless the small scope's minimum is in
    /// the wide valley and the large scope's in the sharp one.
    /// </summary>
    public static double SwitchScope(LocalEntropyToySettings s, TwoWellLandscape.Valleys valleys)
    {
        var x = Grid(s.XMin, s.XMax, 201);
        EndValley ValleyAt(double gamma) => Classify(s.Landscape, valleys, LocalEntropyCurve(s, x, gamma).GlobalMinimum);
        double lo = s.SmallScope, hi = s.LargeScope;
        if (ValleyAt(lo) != EndValley.Wide || ValleyAt(hi) != EndValley.Sharp) return double.NaN;
        while (hi / lo > 1.01)
        {
            var mid = Math.Sqrt(lo * hi);
            if (ValleyAt(mid) == EndValley.Sharp) hi = mid;
            else lo = mid;
        }
        return Math.Sqrt(lo * hi);
    }

    static (double X, double Value) GoldenSection(Func<double, double> g, double a, double b)
    {
        var ratio = (Math.Sqrt(5) - 1) / 2;
        double c = b - ratio * (b - a), d = a + ratio * (b - a);
        double gc = g(c), gd = g(d);
        while (b - a > 1e-7)
        {
            if (gc < gd) { b = d; d = c; gd = gc; c = b - ratio * (b - a); gc = g(c); }
            else { a = c; c = d; gc = gd; d = a + ratio * (b - a); gd = g(d); }
        }
        var m = 0.5 * (a + b);
        return (m, g(m));
    }

    /// <summary>
    /// Runs the library's <see cref="LocalEntropy"/> estimator (the one inside Entropy-SGD) at each check point with
    /// many independent chains: one particle per chain, all started at their point, at temperature T (noise
    /// eps = sqrt(2 T) under the paper's scaling sqrt(eta') eps). Its output x - mu gives &lt;x'&gt;; the closure,
    /// which sees every Langevin iterate, also averages exp(f(x') / T) over the second half of each chain.
    /// </summary>
    public static LangevinCheck CheckLangevin(LocalEntropyToySettings s, double gamma, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gamma);
        var points = Grid(s.XMin, s.XMax, s.LangevinPoints);
        var chains = s.LangevinChains;
        var steps = s.LangevinSteps(gamma);
        var options = new LocalEntropyOptions
        {
            L = steps,
            Scope = new ConstantScope(gamma),
            LangevinLr = s.LangevinLr(gamma),
            Noise = Math.Sqrt(2 * s.Temperature),
            Alpha = Math.Min(1, s.AverageWindows / steps),
            Seed = seed,
        };
        var t = options.Temperature;
        using var particles = new IndependentParticles(s.Landscape.Evaluate, points.SelectMany(p => Enumerable.Repeat(p, chains)).ToArray());
        var boltzmann = new double[particles.Count];
        var burnIn = steps / 2;
        particles.Observer = losses =>
        {
            // Call c sees the iterate x'_c (c = 0 is the starting point x itself).
            if (particles.Calls <= burnIn) return;
            CpuFloatKernels.ForEachChunk(losses.Length, (_, start, end) =>
            {
                var f = losses.Span;
                for (var i = (int)start; i < end; i++) boltzmann[i] += Math.Exp(f[i] / t);
            });
        };
        double[] distance;
        using (var estimator = new LocalEntropy([particles.Positions], options))
        {
            estimator.Estimate(particles.Closure);
            using var grad = particles.Positions.grad!;
            distance = grad.data<float>().Select(v => (double)v).ToArray();
        }
        var samples = steps - burnIn;
        var mean = new double[points.Length];
        var error = new double[points.Length];
        var exactMean = new double[points.Length];
        var negF = new double[points.Length];
        var exactNegF = new double[points.Length];
        for (var j = 0; j < points.Length; j++)
        {
            var row = distance.AsSpan(j * chains, chains);
            var average = 0.0;
            foreach (var d in row) average += d;
            average /= chains;
            var variance = 0.0;
            foreach (var d in row) variance += (d - average) * (d - average);
            variance /= chains - 1;
            mean[j] = points[j] - average;
            error[j] = Math.Sqrt(variance / chains);
            var boost = 0.0;
            for (var c = 0; c < chains; c++) boost += boltzmann[j * chains + c];
            negF[j] = t * Math.Log(boost / ((double)chains * samples));
            (exactNegF[j], exactMean[j]) = Exact(s, points[j], gamma);
        }
        return new LangevinCheck(gamma, points, mean, error, exactMean, negF, exactNegF, chains, steps, options.LangevinLr, options.Alpha,
            s.LangevinBiasAllowance);
    }

    /// <summary>Which valley <paramref name="end"/> lies in: on that valley's side of the barrier and below half its depth.</summary>
    public static EndValley Classify(TwoWellLandscape landscape, TwoWellLandscape.Valleys valleys, double end)
    {
        var value = landscape.Value(end);
        bool SameSide(double minimum) => Math.Sign(end - valleys.Watershed) == Math.Sign(minimum - valleys.Watershed);
        if (SameSide(valleys.WideMinimum) && value <= 0.5 * landscape.Value(valleys.WideMinimum)) return EndValley.Wide;
        if (SameSide(valleys.SharpMinimum) && value <= 0.5 * landscape.Value(valleys.SharpMinimum)) return EndValley.Sharp;
        return EndValley.Neither;
    }

    static OptimizerEnds Ends(LocalEntropyToySettings s, TwoWellLandscape.Valleys valleys, string name, double[] starts, double[] ends, string description) =>
        new(name, starts, ends, ends.Select(e => Classify(s.Landscape, valleys, e)).ToArray(), description);

    /// <summary>
    /// Plain gradient descent from every start: the full gradient (the toy has no data to subsample) and no added
    /// noise, so it is deterministic and runs once per start; its ends are counted once per replica, so that both
    /// optimizers are counted over the same runs. It stops early at a fixed point of its float32 iteration (a step
    /// that changes no position would repeat forever, since the gradient depends on the positions alone), else after
    /// as many gradient evaluations as Entropy-SGD made.
    /// </summary>
    static OptimizerEnds RunSgd(LocalEntropyToySettings s, double[] starts, int replicas, TwoWellLandscape.Valleys valleys)
    {
        const int checkEvery = 1000;
        using var particles = new IndependentParticles(s.Landscape.Evaluate, starts);
        long steps = 0;
        var fixedPoint = false;
        using (var sgd = new SgdOptimizer([particles.Positions], s.SgdLr))
        {
            void Step()
            {
                using (NewDisposeScope()) sgd.step(particles.Closure);
                steps++;
            }
            while (steps < s.SgdSteps && !fixedPoint)
            {
                Step();
                if (steps % checkEvery != 0 || steps == s.SgdSteps) continue;
                var snapshot = particles.Read();
                Step();
                fixedPoint = particles.Read().SequenceEqual(snapshot);
            }
        }
        var ends = particles.Read();
        var stop = fixedPoint ? "stopped at a fixed point of the float32 iteration" : "as many gradient evaluations as Entropy-SGD";
        return Ends(s, valleys, "SGD", Repeat(starts, replicas), Repeat(ends, replicas), string.Create(CultureInfo.InvariantCulture,
            $"gradient descent, lr {s.SgdLr:0.#####} (half of 2 / max|f''|), no noise, {steps} steps ({stop})"));
    }

    static double[] Repeat(double[] values, int times) => values.SelectMany(v => Enumerable.Repeat(v, times)).ToArray();

    /// <summary>
    /// Entropy-SGD (the library's optimizer with the paper's defaults except as stated): scoping
    /// gamma(t) = gamma0 (1 + gamma1)^t from the small scope up to <see cref="LocalEntropyToySettings.FinalScope"/>, L
    /// Langevin steps of eta' at temperature T (eps = sqrt(2 T)) per outer step, and x = x - eta (x - mu), no momentum.
    /// </summary>
    static OptimizerEnds RunEntropySgd(LocalEntropyToySettings s, double[] starts, TwoWellLandscape.Valleys valleys, long seed)
    {
        var l = s.InnerSteps;
        var options = new LocalEntropyOptions
        {
            L = l,
            Scope = new ExponentialScope(s.SmallScope, s.ScopingRate),
            LangevinLr = s.InnerLr,
            Noise = Math.Sqrt(2 * s.Temperature),
            Alpha = Math.Min(1, s.InnerAverageWindows / l),
            Seed = seed,
        };
        using var particles = new IndependentParticles(s.Landscape.Evaluate, starts);
        using (var esgd = new EntropySgd([particles.Positions], s.OuterLr, options))
        {
            for (var step = 0; step < s.OuterSteps; step++)
            {
                using var scope = NewDisposeScope();
                esgd.step(particles.Closure);
            }
        }
        var scoping = s.ScopingFactor > 1
            ? string.Create(CultureInfo.InvariantCulture, $"scoping gamma = {s.SmallScope:G4} (1 + {s.ScopingRate:0.#####})^t from {s.SmallScope:G4} to {s.FinalScope:G4}")
            : string.Create(CultureInfo.InvariantCulture, $"no scoping (gamma = {s.SmallScope:G4})");
        return Ends(s, valleys, "Entropy-SGD", starts, particles.Read(), string.Create(CultureInfo.InvariantCulture,
            $"{s.OuterSteps} steps of lr {s.OuterLr:G4} on x - mu, {scoping}, L = {l}, eta' = {s.InnerLr:0.#####}, " +
            $"eps = sqrt(2 T) = {options.Noise:0.####}, alpha = {options.Alpha:0.#####}, no momentum"));
    }
}
