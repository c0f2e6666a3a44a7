using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ScottPlot;
using PlotStyle = WideValley.Reports.PlotStyle;
using WideValley.Connectivity;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>How a measurement compares with a claim of Freeman and Bruna (or of the issue).</summary>
public enum LevelSetsVerdict
{
    /// <summary>The measurement shows what the claim says.</summary>
    Agrees,
    /// <summary>Part of the claim holds (the measured text says which).</summary>
    Partly,
    /// <summary>The measurement contradicts the claim.</summary>
    Disagrees,
    /// <summary>This run has no data that could test the claim (say, no level near the cubic's spike).</summary>
    NotTested,
}

/// <summary>One claim judged on one task.</summary>
/// <param name="Task">The task's name (<see cref="LevelSetsLevelResult.Task"/>).</param>
/// <param name="Id">Short key for the JSON: connects, length_grows, beads_grow, cubic_spike, curve_below_line.</param>
/// <param name="Claim">The claim as the paper or the issue states it.</param>
/// <param name="Measured">What this run measured, with pair counts, spreads and the rule applied.</param>
/// <param name="Verdict">How they compare.</param>
public sealed record LevelSetsClaim(string Task, string Id, string Claim, string Measured, LevelSetsVerdict Verdict);

/// <summary>A point of the paper's Fig. 1 (the notes' §5), read from the authors' vector figures.</summary>
/// <param name="Level">L0 (MAE, test error in percent, or test perplexity).</param>
/// <param name="Length">Normalised length, when the figure gives one.</param>
/// <param name="Beads">Bead count (endpoints included), when the figure gives one.</param>
/// <param name="BeadsText">How the notes print the bead count when it is a range (the cubic above 0.164: 3.1–3.3); null otherwise.</param>
public sealed record LevelSetsPaperPoint(double Level, double? Length, double? Beads, string? BeadsText = null);

/// <summary>What the report is written from: every finished level of every task, and how they were made.</summary>
public sealed record LevelSetsReportInput
{
    /// <summary>The finished levels, any tasks (the toys' and the networks'), each task's levels in any order.</summary>
    public required IReadOnlyList<LevelSetsLevelResult> Levels { get; init; }
    /// <summary>The budget the levels were run at.</summary>
    public required Budget Budget { get; init; }
    /// <summary>The command that reproduces the report.</summary>
    public required string CommandLine { get; init; }
    /// <summary>The machine it ran on (one line).</summary>
    public required string Machine { get; init; }
    /// <summary>The polynomial toys' settings, when the toys were run; describes their protocol in the report.</summary>
    public LevelSetsSettings? ToySettings { get; init; }
    /// <summary>Further paragraphs describing the other parts' protocols (the networks'), printed after the toys'.</summary>
    public IReadOnlyList<string> Protocols { get; init; } = [];
    /// <summary>Parts asked for but not in this report, each with the reason (printed as such).</summary>
    public IReadOnlyList<string> Missing { get; init; } = [];
    /// <summary>Whether the run was interrupted before every level was done (the report then covers the finished ones).</summary>
    public bool Interrupted { get; init; }
    /// <summary>Wall time of this invocation.</summary>
    public double Seconds { get; init; }
}

/// <summary>
/// The report of the level-sets reproduction (Freeman and Bruna, ICLR 2017, Fig. 1; Garipov et al.'s curves between the
/// same pairs): per task a table of the levels beside the paper's values, the normalised length and the bead count
/// against L0 with the paper's points, the curves' barriers against the straight lines', the claims with verdicts
/// computed from the data, a JSON twin and one CSV row per pair. Works on any list of <see cref="LevelSetsLevelResult"/>
/// grouped by <see cref="LevelSetsLevelResult.Task"/>. Every file is replaced atomically.
/// </summary>
public static class LevelSetsReport
{
    /// <summary>The experiment's name, the stem of every file.</summary>
    public const string Name = LevelSetsExperiment.Name;

    /// <summary>Spearman ρ between L0 and a mean at or below this counts as "grows as the level falls" (ours).</summary>
    public const double RankThreshold = -0.5;

    /// <summary>The cubic's spike window of L0 (the paper's Fig. 1: lengths up to 2.5 at 0.152..0.162).</summary>
    public const double SpikeFrom = 0.15, SpikeTo = 0.164;

    /// <summary>A straight line "has a barrier" when it rises more than this share of L0 above its endpoints' mean (ours).</summary>
    public const double StraightBarrierShare = 0.1;

    /// <summary>A curve's barrier is "well below" the line's when it is at most this share of it (ours).</summary>
    public const double WellBelowShare = 0.5;

    const string Title = "Level-set connectivity: string sampling and curves between minima (seed 002, Freeman & Bruna Fig. 1)";
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The quadratic's points of Fig. 1 (the notes' §5).</summary>
    public static readonly IReadOnlyList<LevelSetsPaperPoint> PaperQuadratic =
    [
        new(0.001, 1.863, 62.4), new(0.0025, 1.754, 38.3), new(0.005, 1.661, 23.5), new(0.0075, 1.650, 18.8), new(0.01, 1.476, 13.8),
        new(0.025, 1.329, 8.2), new(0.05, 1.366, 6.8), new(0.075, 1.291, 5.4), new(0.1, 1.346, 5.0), new(0.125, 1.270, 4.0),
    ];

    /// <summary>The cubic's points of Fig. 1 (the notes' §5); above 0.164 the beads are printed as a range 3.1–3.3 (3.2 here).</summary>
    public static readonly IReadOnlyList<LevelSetsPaperPoint> PaperCubic =
    [
        new(0.01, 1.872, 46.3), new(0.02, 1.688, 27.3), new(0.03, 1.509, 18.7), new(0.04, 1.447, 15.9), new(0.05, 1.428, 14.1),
        new(0.06, 1.435, 12.4), new(0.07, 1.418, 10.9), new(0.08, 1.394, 9.5), new(0.10, 1.382, 7.6), new(0.12, 1.375, 6.0),
        new(0.14, 1.422, 4.5), new(0.15, 1.657, 3.7), new(0.152, 1.783, 3.8), new(0.154, 1.989, 3.6), new(0.156, 2.415, 3.6),
        new(0.158, 2.538, 3.4), new(0.16, 2.278, 3.3), new(0.162, 1.870, 3.2), new(0.164, 1.523, 3.2, "3.1–3.3"),
        new(0.168, 1.006, 3.2, "3.1–3.3"), new(0.17, 1.004, 3.2, "3.1–3.3"), new(0.18, 1.005, 3.2, "3.1–3.3"), new(0.20, 1.004, 3.2, "3.1–3.3"),
        new(0.24, 1.004, 3.2, "3.1–3.3"), new(0.32, 1.003, 3.2, "3.1–3.3"),
    ];

    /// <summary>The MNIST CNN's points of Fig. 1 (test error in percent; the notes' §5).</summary>
    public static readonly IReadOnlyList<LevelSetsPaperPoint> PaperMnist =
    [
        new(0.70, 1.0708, 7.12), new(0.75, 1.0470, 6.63), new(0.775, 1.0299, 5.68), new(0.80, 1.0258, 6.00), new(0.85, 1.0262, 5.94),
        new(0.90, 1.0219, 5.92), new(1.0, 1.0165, 5.48), new(1.5, 1.0077, 5.11), new(2.0, 1.0053, 4.79), new(4.0, 1.0033, 4.09),
    ];

    /// <summary>The PTB LSTM's points of Fig. 1 (test perplexity; the bead count was 3.0 everywhere).</summary>
    public static readonly IReadOnlyList<LevelSetsPaperPoint> PaperPtb =
    [
        new(135, 1.178, 3.0), new(150, 1.278, 3.0), new(200, 1.346, 3.0), new(250, 1.156, 3.0), new(300, 1.086, 3.0), new(700, 1.091, 3.0),
    ];

    /// <summary>
    /// The paper's points to set beside <paramref name="task"/>: the quadratic's and the cubic's by name; a network on the
    /// test error gets the MNIST CNN's, one on the perplexity the PTB LSTM's (both only as context: Fashion-MNIST stands in
    /// for MNIST and a small character corpus for PTB, so the scales differ); the PTB LSTM on PTB gets them as its own task.
    /// </summary>
    public static (IReadOnlyList<LevelSetsPaperPoint> Points, string Source, bool SameTask) Paper(string task, LevelMetric metric) => (task, metric) switch
    {
        ("quadratic", _) => (PaperQuadratic, "Fig. 1, quadratic", true),
        ("cubic", _) => (PaperCubic, "Fig. 1, cubic", true),
        (_, LevelMetric.ErrorPercent) => (PaperMnist, "Fig. 1, MNIST CNN (context only: Fashion-MNIST stands in for MNIST)", false),
        (LevelSetsNetworkSettings.PtbLstm, LevelMetric.Perplexity) => (PaperPtb, "Fig. 1, PTB LSTM", true),
        (_, LevelMetric.Perplexity) => (PaperPtb, "Fig. 1, PTB LSTM (context only: a character corpus stands in for PTB words)", false),
        _ => ([], "none", false),
    };

    /// <summary>The paper's point at <paramref name="level"/> (equal to 10⁻⁹ relative), or null.</summary>
    public static LevelSetsPaperPoint? PaperAt(IReadOnlyList<LevelSetsPaperPoint> points, double level) =>
        points.FirstOrDefault(p => Math.Abs(p.Level - level) <= 1e-9 * Math.Max(1, Math.Abs(level)));

    /// <summary>A number for the tables: "–" when undefined, "2.8e-6" rather than .NET's "2.8E-06" for the G formats.</summary>
    static string F(double value, string format = "0.000")
    {
        if (!double.IsFinite(value)) return "–";
        var text = value.ToString(format, C);
        var e = text.IndexOf('E');
        return e < 0 ? text : text[..e] + "e" + int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, C).ToString(C);
    }

    static string MeanSd(MeanAndSpread m, string format = "0.000") =>
        m.Count == 0 ? "–" : double.IsFinite(m.StandardDeviation) ? $"{F(m.Mean, format)} ± {F(m.StandardDeviation, format)}" : F(m.Mean, format);

    static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    static JsonObject Json(MeanAndSpread m) => new() { ["n"] = m.Count, ["mean"] = Number(m.Mean), ["std"] = Number(m.StandardDeviation) };

    /// <summary>Verdict words as the report writes them.</summary>
    public static string Words(LevelSetsVerdict v) => v switch
    {
        LevelSetsVerdict.Agrees => "agrees",
        LevelSetsVerdict.Partly => "partly",
        LevelSetsVerdict.Disagrees => "disagrees",
        _ => "not tested",
    };

    /// <summary>What the metric's levels are called in the report.</summary>
    public static string MetricName(LevelMetric metric) => metric switch
    {
        LevelMetric.ErrorPercent => "test error (%)",
        LevelMetric.Perplexity => "test perplexity",
        _ => "evaluation MAE",
    };

    // ---- per-level summaries ---------------------------------------------------------------------------------------

    /// <summary>Normalised length of a connected pair as the authors plot it: weights only, or all parameters when the weights-only one is undefined.</summary>
    static double PlottedLength(LevelSetsPair p) => p.WeightsOnlyLength is double w && double.IsFinite(w) ? w : p.AllParametersLength ?? double.NaN;

    /// <summary>Mean ± std of the plotted normalised length over a level's connected pairs.</summary>
    public static MeanAndSpread Length(LevelSetsLevelResult level) => MeanAndSpread.Of(level.Pairs.Where(p => p.Connected).Select(PlottedLength).Where(double.IsFinite).ToArray());

    static IEnumerable<LevelSetsCurve> Curves(LevelSetsLevelResult level) => level.Pairs.Select(p => p.Curve).OfType<LevelSetsCurve>();

    /// <summary>The tasks of <paramref name="levels"/> in order of first appearance, each with its levels ascending.</summary>
    public static IReadOnlyList<(string Task, LevelMetric Metric, IReadOnlyList<LevelSetsLevelResult> Levels)> ByTask(IReadOnlyList<LevelSetsLevelResult> levels)
    {
        ArgumentNullException.ThrowIfNull(levels);
        return levels.GroupBy(l => l.Task).Select(g =>
        {
            var metrics = g.Select(l => l.Metric).Distinct().ToArray();
            if (metrics.Length != 1) throw new ArgumentException($"task {g.Key}: levels of several metrics ({string.Join(", ", metrics)}); one task has one metric", nameof(levels));
            return (g.Key, metrics[0], (IReadOnlyList<LevelSetsLevelResult>)g.OrderBy(l => l.Level).ToArray());
        }).ToArray();
    }

    // ---- verdicts --------------------------------------------------------------------------------------------------

    /// <summary>Spearman's rank correlation of two equally long lists (average ranks for ties); NaN when either is constant or shorter than 2.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException($"x has {x.Count} values, y {y.Count}");
        if (x.Count < 2) return double.NaN;
        double[] Ranks(IReadOnlyList<double> v)
        {
            var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
            var ranks = new double[v.Count];
            for (var i = 0; i < order.Length;)
            {
                var j = i;
                while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
                for (var k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2.0 + 1;
                i = j + 1;
            }
            return ranks;
        }
        var (rx, ry) = (Ranks(x), Ranks(y));
        var (mx, my) = (rx.Average(), ry.Average());
        var sxy = rx.Zip(ry).Sum(p => (p.First - mx) * (p.Second - my));
        var sxx = rx.Sum(v => (v - mx) * (v - mx));
        var syy = ry.Sum(v => (v - my) * (v - my));
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>Standard error of a mean (0 for a single value: nothing to say about its spread).</summary>
    static double StandardError(MeanAndSpread m) => m.Count < 2 || !double.IsFinite(m.StandardDeviation) ? 0 : m.StandardDeviation / Math.Sqrt(m.Count);

    /// <summary>
    /// "Grows as the level falls" for a per-level quantity: Spearman ρ between L0 and the level means at or below
    /// <see cref="RankThreshold"/>, and the lowest level's mean above the highest's by more than twice their combined
    /// standard error. Both: grows; one of them: partly; neither: does not grow. Null when fewer than two levels have a value.
    /// </summary>
    static (LevelSetsVerdict Verdict, string Text)? Growth(IReadOnlyList<(double Level, MeanAndSpread Value)> points, string what, string format)
    {
        var usable = points.Where(p => p.Value.Count > 0 && double.IsFinite(p.Value.Mean)).ToArray();
        if (usable.Length < 2) return null;
        var rho = Spearman(usable.Select(p => p.Level).ToArray(), usable.Select(p => p.Value.Mean).ToArray());
        var (low, high) = (usable[0], usable[^1]);
        var gap = low.Value.Mean - high.Value.Mean;
        var se = Math.Sqrt(Math.Pow(StandardError(low.Value), 2) + Math.Pow(StandardError(high.Value), 2));
        var significant = gap > 2 * se && gap > 0;
        var ranked = rho <= RankThreshold;
        var verdict = ranked && significant ? LevelSetsVerdict.Agrees : ranked || significant ? LevelSetsVerdict.Partly : LevelSetsVerdict.Disagrees;
        var text = string.Create(C,
            $"{what}: {string.Join(", ", usable.Select(p => $"L0 {p.Level:G4}: {MeanSd(p.Value, format)} (n = {p.Value.Count})"))}. " +
            $"Spearman ρ(L0, mean) = {F(rho, "0.00")} (rule: ≤ {RankThreshold:0.0}); lowest minus highest level = {F(gap, format)}, " +
            $"2 × combined standard error = {F(2 * se, format)}{(low.Value.Count < 2 || high.Value.Count < 2 ? " (one pair at an end: no spread known there)" : "")}.");
        return (verdict, text);
    }

    /// <summary>The claims judged on one task's levels.</summary>
    public static IReadOnlyList<LevelSetsClaim> Claims(string task, LevelMetric metric, IReadOnlyList<LevelSetsLevelResult> levels)
    {
        ArgumentNullException.ThrowIfNull(levels);
        var claims = new List<LevelSetsClaim>();
        var ordered = levels.OrderBy(l => l.Level).ToArray();
        var seeds = string.Join(", ", ordered.Select(l => l.EndpointSeed).Distinct().Take(3)) + (ordered.Length > 3 ? ", …" : "");
        var (paper, _, sameTask) = Paper(task, metric);

        // (a) every searched pair connects.
        var searched = ordered.Sum(l => l.SearchedPairs);
        var connected = ordered.Sum(l => l.Pairs.Count(p => p.Connected));
        var skipped = ordered.Sum(l => l.SkippedPairs);
        var failing = ordered.Where(l => l.Pairs.Any(p => p.Skipped is null && !p.Connected))
            .Select(l => string.Create(C, $"L0 {l.Level:G4} ({l.Pairs.Count(p => p.Skipped is null && !p.Connected)} not)")).ToArray();
        claims.Add(new LevelSetsClaim(task, "connects", "Every pair of trained endpoints is connected inside the level set (the paper: all pairs, every task).",
            string.Create(C, $"{connected} of {searched} searched pairs connected over {ordered.Length} levels ({skipped} pairs skipped: an endpoint missed α·L0)" +
                             $"{(failing.Length > 0 ? "; not connected at " + string.Join(", ", failing) : "")}. Endpoint seeds {seeds}. " +
                             $"Rule: agrees when all connect, partly when at least half do."),
            searched == 0 ? LevelSetsVerdict.NotTested : connected == searched ? LevelSetsVerdict.Agrees : connected * 2 >= searched ? LevelSetsVerdict.Partly : LevelSetsVerdict.Disagrees));

        // (b) normalised length about 1 at the highest levels and growing as the level falls.
        var lengths = ordered.Select(l => (l.Level, Length(l))).ToArray();
        var growth = Growth(lengths, "Normalised length (weights only, connected pairs)", "0.000");
        var topLevel = lengths.LastOrDefault(p => p.Item2.Count > 0);
        var paperTop = topLevel.Item2.Count > 0 ? PaperAt(paper, topLevel.Level)?.Length : null;
        var nearOneBound = Math.Max(1.1, sameTask && paperTop is double pt ? pt + 0.1 : 1.1);
        var nearOne = topLevel.Item2.Count > 0 && topLevel.Item2.Mean <= nearOneBound;
        claims.Add(new LevelSetsClaim(task, "length_grows",
            "The normalised length is about 1 at the highest levels and grows as the level falls (the paper: roughly a power law below a task-dependent threshold).",
            growth is null
                ? "Fewer than two levels with a connected pair: nothing to compare."
                : growth.Value.Text + string.Create(C,
                    $" Highest level's mean {F(topLevel.Item2.Mean)} {(nearOne ? "≤" : ">")} {F(nearOneBound, "0.00")} (\"about 1\": within 0.1 of 1, or of the paper's value at that level when it is higher). " +
                    $"Rule: agrees when both growth tests hold and the top is about 1; partly when one growth test holds, or both hold but the top is not about 1."),
            growth is null ? LevelSetsVerdict.NotTested
                : growth.Value.Verdict == LevelSetsVerdict.Agrees && !nearOne ? LevelSetsVerdict.Partly : growth.Value.Verdict));

        // (c) bead count grows as the level falls.
        var beads = ordered.Select(l => (l.Level, l.Beads)).ToArray();
        var beadGrowth = Growth(beads, "Beads (endpoints included, connected pairs)", "0.0");
        claims.Add(new LevelSetsClaim(task, "beads_grow", "The number of beads grows as the level falls (a power law for the polynomial tasks).",
            beadGrowth is null ? "Fewer than two levels with a connected pair: nothing to compare." : beadGrowth.Value.Text + " Rule: agrees when both growth tests hold, partly when one does.",
            beadGrowth?.Verdict ?? LevelSetsVerdict.NotTested));

        // (d) the cubic's spike near 0.15-0.16 with a low bead count.
        if (task == "cubic") claims.Add(CubicSpike(task, ordered));

        // (e) the curves' barriers well below the straight lines'.
        claims.Add(CurvesBelowLines(task, metric, ordered));
        return claims;
    }

    static LevelSetsClaim CubicSpike(string task, IReadOnlyList<LevelSetsLevelResult> ordered)
    {
        const string claim = "Cubic: the normalised length spikes (to about 2.5 at L0 = 0.158) between 0.15 and 0.164 while the bead count stays low (about 3.5), " +
                             "above its neighbours below 0.15 (about 1.4) and above 0.164 (about 1.0).";
        var window = ordered.Where(l => l.Level >= SpikeFrom && l.Level <= SpikeTo && Length(l).Count > 0).ToArray();
        var below = ordered.Where(l => l.Level >= 0.10 && l.Level < SpikeFrom && Length(l).Count > 0).ToArray();
        var above = ordered.Where(l => l.Level > SpikeTo && l.Level <= 0.20 && Length(l).Count > 0).ToArray();
        if (window.Length == 0 || (below.Length == 0 && above.Length == 0))
            return new LevelSetsClaim(task, "cubic_spike", claim,
                string.Create(C, $"Not tested at this budget: {(window.Length == 0 ? "no level in [0.15, 0.164] with a connected pair" : "no neighbouring level in [0.10, 0.15) or (0.164, 0.20]")} " +
                                 $"(levels run: {string.Join(", ", ordered.Select(l => l.Level.ToString("G4", C)))})."),
                LevelSetsVerdict.NotTested);
        var peak = window.MaxBy(l => Length(l).Mean)!;
        var peakLength = Length(peak);
        bool Above(IReadOnlyList<LevelSetsLevelResult> side) => side.All(l =>
        {
            var m = Length(l);
            return peakLength.Mean - m.Mean > 2 * Math.Sqrt(Math.Pow(StandardError(peakLength), 2) + Math.Pow(StandardError(m), 2)) && peakLength.Mean > m.Mean;
        });
        var sides = new[] { below, above }.Where(s => s.Length > 0).ToArray();
        var aboveAll = sides.All(Above);
        var aboveSome = sides.Any(Above);
        var lowBeads = peak.Beads.Mean <= 4.5;
        string Side(IReadOnlyList<LevelSetsLevelResult> side) => side.Count == 0 ? "none run" : string.Join(", ", side.Select(l => string.Create(C, $"{l.Level:G4}: {MeanSd(Length(l))}")));
        var verdict = aboveAll && sides.Length == 2 && lowBeads ? LevelSetsVerdict.Agrees
            : aboveSome ? LevelSetsVerdict.Partly : LevelSetsVerdict.Disagrees;
        return new LevelSetsClaim(task, "cubic_spike", claim,
            string.Create(C, $"Largest mean length in [0.15, 0.164]: {MeanSd(peakLength)} at L0 = {peak.Level:G4} (n = {peakLength.Count}) with {MeanSd(peak.Beads, "0.0")} beads; " +
                             $"below 0.15: {Side(below)}; above 0.164: {Side(above)}. " +
                             $"Rule: agrees when the peak exceeds every neighbour on both sides by more than twice their combined standard error and its beads average at most 4.5; " +
                             $"partly when it exceeds the neighbours of one side (or both, with more beads, or only one side was run); disagrees otherwise."),
            verdict);
    }

    static LevelSetsClaim CurvesBelowLines(string task, LevelMetric metric, IReadOnlyList<LevelSetsLevelResult> ordered)
    {
        const string claim = "Curves between the same pairs (Garipov et al.): a trained curve's barrier is well below the straight line's.";
        var pairs = ordered.SelectMany(l => l.Pairs.Where(p => p.Curve is not null).Select(p => (Level: l.Level, Curve: p.Curve!))).ToArray();
        if (pairs.Length == 0)
            return new LevelSetsClaim(task, "curve_below_line", claim, "No curve was trained for this task.", LevelSetsVerdict.NotTested);
        var withBarrier = pairs.Where(p => p.Curve.StraightBarrier > StraightBarrierShare * p.Level).ToArray();
        var wellBelow = withBarrier.Count(p => p.Curve.Barrier <= WellBelowShare * p.Curve.StraightBarrier);
        var below = withBarrier.Count(p => p.Curve.Barrier < p.Curve.StraightBarrier);
        var inside = pairs.Count(p => p.Curve.MaxAlongCurve < 1.1 * p.Level);
        var kinds = string.Join(", ", pairs.Select(p => $"{p.Curve.Kind} ({p.Curve.Bends} bend{(p.Curve.Bends == 1 ? "" : "s")}, {p.Curve.Steps} steps)").Distinct());
        var ratio = MeanAndSpread.Of(withBarrier.Select(p => p.Curve.Barrier / p.Curve.StraightBarrier).ToArray());
        var text = string.Create(C,
            $"{pairs.Length} curves ({kinds}) on {ordered.Count(l => Curves(l).Any())} levels. Barrier (max of the {MetricName(metric)} along the path minus the endpoints' mean), " +
            $"mean ± std: curve {MeanSd(MeanAndSpread.Of(pairs.Select(p => p.Curve.Barrier).ToArray()), "G3")}, straight line {MeanSd(MeanAndSpread.Of(pairs.Select(p => p.Curve.StraightBarrier).ToArray()), "G3")}. " +
            $"{withBarrier.Length} straight lines rise more than {StraightBarrierShare:0.0#}·L0 above their endpoints; on those the curve's barrier is below the line's for {below}, " +
            $"at most {WellBelowShare:0.0#} of it for {wellBelow} (curve/line ratio {MeanSd(ratio, "0.00")}). {inside} of {pairs.Length} curves stay below 1.1·L0 (the string's acceptance level) all along. " +
            $"Rule: agrees when at least 90% of the lines with a barrier are beaten by half; partly when at least half are, or every curve is below its line; not tested when no line has a barrier.");
        var verdict = withBarrier.Length == 0 ? LevelSetsVerdict.NotTested
            : wellBelow >= 0.9 * withBarrier.Length ? LevelSetsVerdict.Agrees
            : wellBelow * 2 >= withBarrier.Length || below == withBarrier.Length ? LevelSetsVerdict.Partly
            : LevelSetsVerdict.Disagrees;
        return new LevelSetsClaim(task, "curve_below_line", claim, text, verdict);
    }

    /// <summary>Every task's claims, in task order.</summary>
    public static IReadOnlyList<LevelSetsClaim> Claims(IReadOnlyList<LevelSetsLevelResult> levels) =>
        ByTask(levels).SelectMany(t => Claims(t.Task, t.Metric, t.Levels)).ToArray();

    /// <summary>One line per claim, for the console.</summary>
    public static IEnumerable<string> Verdicts(IReadOnlyList<LevelSetsLevelResult> levels) =>
        Claims(levels).Select(c => $"{c.Task}: {Words(c.Verdict)}: {c.Claim}");

    // ---- files -----------------------------------------------------------------------------------------------------

    /// <summary>The files <see cref="Write"/> writes for <paramref name="stem"/> and <paramref name="tasks"/> (figures only when drawn).</summary>
    public static IReadOnlyList<string> Files(string stem, IReadOnlyList<string> tasks, bool withFigures = true)
    {
        var files = new List<string> { $"{stem}.md", $"{stem}.json", $"{stem}.csv" };
        if (!withFigures) return files;
        foreach (var task in tasks) files.AddRange([$"{stem}-{task}.png", $"{stem}-{task}.svg"]);
        files.AddRange([$"{stem}-curves.png", $"{stem}-curves.svg"]);
        return files;
    }

    /// <summary>
    /// Writes the report of <paramref name="input"/> into <paramref name="outDir"/> under <paramref name="stem"/>; returns
    /// the JSON summary as one line and the file names written.
    /// </summary>
    /// <exception cref="ArgumentException">No levels, or a task with levels of several metrics.</exception>
    public static (string Summary, IReadOnlyList<string> Files) Write(LevelSetsReportInput input, string outDir, string stem, Action<string>? warning = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Levels.Count == 0) throw new ArgumentException("the level-sets report needs at least one finished level", nameof(input));
        var tasks = ByTask(input.Levels);
        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var taskFigures = tasks.ToDictionary(t => t.Task, t => figures.TrySave(TaskFigure(t.Task, t.Metric, t.Levels), Path.Combine(outDir, $"{stem}-{t.Task}")));
        var curveFigure = figures.TrySave(CurveFigure(tasks), Path.Combine(outDir, $"{stem}-curves"));
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.csv"), Csv(input.Levels));
        var files = Files(stem, tasks.Select(t => t.Task).ToArray(), !figures.Skipped);
        var summary = Summary(input, tasks, stem, files).ToJsonString(new JsonSerializerOptions { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.json"), summary + "\n");
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.md"), Markdown(input, tasks, stem, taskFigures, curveFigure));
        return (summary, files);
    }

    // ---- figures ---------------------------------------------------------------------------------------------------

    /// <summary>Normalised length (top) and beads (bottom, log y) against L0 (log x): ours with ±1 std bars, the paper's points beside them.</summary>
    internal static Figure TaskFigure(string task, LevelMetric metric, IReadOnlyList<LevelSetsLevelResult> levels)
    {
        var (paper, source, _) = Paper(task, metric);
        var xLabel = $"L0 ({MetricName(metric)}, log scale)";
        var lengthPlot = PlotStyle.NewPlot($"{task}: normalised length against L0", null, "normalised length");
        var beadPlot = PlotStyle.NewPlot($"{task}: beads against L0", xLabel, "beads (log scale)");
        var ours = levels.Where(l => Length(l).Count > 0).ToArray();
        var allX = levels.Select(l => l.Level).Concat(paper.Select(p => p.Level)).ToArray();
        var (logMinX, logMaxX) = (Math.Log10(allX.Min()), Math.Log10(allX.Max()));
        var pad = Math.Max(0.05, 0.04 * (logMaxX - logMinX));

        void AddOurs(Plot plot, Func<LevelSetsLevelResult, MeanAndSpread> value, bool logY)
        {
            if (ours.Length == 0) return;
            var x = ours.Select(l => Math.Log10(l.Level)).ToArray();
            var m = ours.Select(value).ToArray();
            double Y(double v) => logY ? Math.Log10(v) : v;
            var y = m.Select(s => Y(s.Mean)).ToArray();
            var sd = m.Select(s => double.IsFinite(s.StandardDeviation) ? s.StandardDeviation : 0).ToArray();
            var up = m.Select((s, i) => Y(s.Mean + sd[i]) - y[i]).ToArray();
            var down = m.Select((s, i) => y[i] - (logY ? Y(Math.Max(s.Mean - sd[i], 1e-3 * s.Mean)) : s.Mean - sd[i])).ToArray();
            var color = PlotStyle.SeriesColor(0);
            var line = plot.Add.Scatter(x, y, color);
            line.LineWidth = 2;
            line.MarkerSize = 7;
            line.LegendText = "ours (mean ± std over connected pairs)";
            var bars = plot.Add.ErrorBar(x, y, up);
            bars.YErrorPositive = up;
            bars.YErrorNegative = down;
            bars.Color = color;
        }

        void AddPaper(Plot plot, Func<LevelSetsPaperPoint, double?> value, bool logY)
        {
            var points = paper.Where(p => value(p) is double v && v > 0).ToArray();
            if (points.Length == 0) return;
            var line = plot.Add.Scatter(points.Select(p => Math.Log10(p.Level)).ToArray(),
                points.Select(p => logY ? Math.Log10(value(p)!.Value) : value(p)!.Value).ToArray(), PlotStyle.SeriesColor(1));
            line.LineWidth = 1.5f;
            line.LinePattern = LinePattern.Dashed;
            line.MarkerSize = 6;
            line.MarkerShape = MarkerShape.OpenSquare;
            line.LegendText = $"paper ({source})";
        }

        AddOurs(lengthPlot, Length, false);
        AddPaper(lengthPlot, p => p.Length, false);
        AddOurs(beadPlot, l => l.Beads, true);
        AddPaper(beadPlot, p => p.Beads, true);
        if (ours.Length == 0)
        {
            PlotStyle.Annotate(lengthPlot, "no connected pair at any level", Alignment.MiddleCenter);
            PlotStyle.Annotate(beadPlot, "no connected pair at any level", Alignment.MiddleCenter);
        }
        var beadValues = ours.Select(l => l.Beads.Mean).Concat(paper.Select(p => p.Beads ?? double.NaN)).Where(v => v > 0).DefaultIfEmpty(3).ToArray();
        foreach (var plot in new[] { lengthPlot, beadPlot })
        {
            PlotStyle.UseLogTicks(plot.Axes.Bottom, logMinX, logMaxX);
            plot.Axes.AutoScale();
            plot.Axes.SetLimitsX(logMinX - pad, logMaxX + pad);
            // Both curves fall from left to right: the length panel's lower left and the bead panel's upper right are free.
            if (plot.GetPlottables().Any()) plot.ShowLegend(plot == lengthPlot ? Alignment.LowerLeft : Alignment.UpperRight);
        }
        var (logMinY, logMaxY) = (Math.Log10(beadValues.Min()), Math.Log10(beadValues.Max()));
        // Bead counts span one or two decades (3 to about 60): label the counts a reader looks for, not only powers of ten.
        var beadTicks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var count in new[] { 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000 })
            if (Math.Log10(count) >= logMinY - 0.1 && Math.Log10(count) <= logMaxY + 0.1) beadTicks.AddMajor(Math.Log10(count), count.ToString(C));
        beadPlot.Axes.Left.TickGenerator = beadTicks;
        PlotStyle.ApplyFont(lengthPlot);
        PlotStyle.ApplyFont(beadPlot);
        return new Figure($"Level sets, {task}: string sampling beside Freeman & Bruna's Fig. 1", 900, 800,
            [new FigurePanel(lengthPlot, 0, 0, 1, 0.5f), new FigurePanel(beadPlot, 0, 0.5f, 1, 0.5f)]);
    }

    /// <summary>Every trained curve's barrier against its straight line's, both in units of L0, one colour per task, with the diagonal.</summary>
    internal static Figure CurveFigure(IReadOnlyList<(string Task, LevelMetric Metric, IReadOnlyList<LevelSetsLevelResult> Levels)> tasks)
    {
        var plot = PlotStyle.NewPlot(null, "straight line's barrier / L0", "curve's barrier / L0");
        var all = new List<double>();
        for (var t = 0; t < tasks.Count; t++)
        {
            var points = tasks[t].Levels.SelectMany(l => Curves(l).Select(c => (X: c.StraightBarrier / l.Level, Y: c.Barrier / l.Level)))
                .Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToArray();
            if (points.Length == 0) continue;
            var scatter = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray(), PlotStyle.SeriesColor(t));
            scatter.LineWidth = 0;
            scatter.MarkerSize = 7;
            scatter.LegendText = tasks[t].Task;
            all.AddRange(points.SelectMany(p => new[] { p.X, p.Y }));
        }
        if (all.Count == 0) PlotStyle.ShowNothingToPlot(plot, "no curve was trained");
        else
        {
            var hi = Math.Max(all.Max(), 1e-9) * 1.05;
            var lo = Math.Min(0, all.Min());
            var diagonal = plot.Add.Line(lo, lo, hi, hi);
            diagonal.Color = Colors.Gray;
            diagonal.LinePattern = LinePattern.Dashed;
            diagonal.LegendText = "curve = straight line";
            plot.ShowLegend(Alignment.UpperLeft);
            plot.Axes.AutoScale();
        }
        PlotStyle.ApplyFont(plot);
        return new Figure("Barrier of each trained curve against its straight line's", 900, 560, [FigurePanel.Full(plot)]);
    }

    // ---- CSV -------------------------------------------------------------------------------------------------------

    static string Csv(IReadOnlyList<LevelSetsLevelResult> levels)
    {
        static string N(double? v) => v is double d ? (double.IsFinite(d) ? d.ToString("R", C) : "") : "";
        var csv = new StringBuilder();
        csv.AppendLine("task,metric,level,endpoint_seed,pair,skipped,connected,weights_only_length,all_parameters_length,beads,max_along_path,depth," +
                       "endpoint_a,endpoint_b,string_seconds,curve_kind,curve_bends,curve_steps,curve_barrier,curve_max,straight_barrier,curve_length,curve_seconds");
        foreach (var l in levels)
        foreach (var p in l.Pairs)
        {
            var c = p.Curve;
            csv.AppendLine(string.Join(',',
                l.Task, l.Metric.ToString(), N(l.Level), l.EndpointSeed.ToString(C), p.Index.ToString(C), p.Skipped is null ? "0" : "1", p.Connected ? "1" : "0",
                N(p.WeightsOnlyLength), N(p.AllParametersLength), N(p.Beads), N(p.MaxAlongPath), N(p.Depth), N(p.EndpointLossA), N(p.EndpointLossB), N(p.Seconds),
                c?.Kind.ToString() ?? "", N(c?.Bends), N(c?.Steps), N(c?.Barrier), N(c?.MaxAlongCurve), N(c?.StraightBarrier), N(c?.NormalizedLength), N(c?.Seconds)));
        }
        return csv.ToString();
    }

    // ---- JSON ------------------------------------------------------------------------------------------------------

    static JsonObject Summary(LevelSetsReportInput input, IReadOnlyList<(string Task, LevelMetric Metric, IReadOnlyList<LevelSetsLevelResult> Levels)> tasks,
        string stem, IReadOnlyList<string> files)
    {
        var json = ReportHeader.Json(stem, Title, input.Budget, input.CommandLine, input.Machine);
        json["experiment"] = Name;
        if (input.ToySettings is { } s)
            json["toy_settings"] = new JsonObject
            {
                ["key"] = s.Key, ["pairs"] = s.Pairs, ["seed"] = s.Seed, ["training_samples"] = s.TrainingSamples, ["evaluation_samples"] = s.EvaluationSamples,
                ["max_steps"] = s.MaxSteps, ["max_depth"] = s.MaxDepth, ["curve_kind"] = s.CurveKind.ToString(), ["curve_bends"] = s.CurveBends,
                ["curve_steps"] = s.CurveSteps, ["curve_learning_rate"] = s.CurveLearningRate, ["curve_momentum"] = s.CurveMomentum,
            };
        json["rules"] = new JsonObject
        {
            ["rank_threshold"] = RankThreshold, ["spike_window"] = new JsonArray(SpikeFrom, SpikeTo),
            ["straight_barrier_share"] = StraightBarrierShare, ["well_below_share"] = WellBelowShare,
        };
        json["tasks"] = new JsonArray(tasks.Select(t =>
        {
            var (paper, source, sameTask) = Paper(t.Task, t.Metric);
            return (JsonNode?)new JsonObject
            {
                ["task"] = t.Task,
                ["metric"] = t.Metric.ToString(),
                ["paper_source"] = source,
                ["paper_same_task"] = sameTask,
                ["levels"] = new JsonArray(t.Levels.Select(l =>
                {
                    var point = PaperAt(paper, l.Level);
                    var curves = Curves(l).ToArray();
                    return (JsonNode?)new JsonObject
                    {
                        ["level"] = l.Level,
                        ["pairs"] = l.Pairs.Length,
                        ["searched"] = l.SearchedPairs,
                        ["connected"] = l.Pairs.Count(p => p.Connected),
                        ["skipped"] = l.SkippedPairs,
                        ["endpoint_seed"] = l.EndpointSeed,
                        ["weights_only_length"] = Json(l.WeightsOnlyLength),
                        ["all_parameters_length"] = Json(l.AllParametersLength),
                        ["beads"] = Json(l.Beads),
                        ["max_along_path"] = Json(MeanAndSpread.Of(l.Pairs.Where(p => p.MaxAlongPath is not null).Select(p => p.MaxAlongPath!.Value).ToArray())),
                        ["curve_barrier"] = Json(MeanAndSpread.Of(curves.Select(c => c.Barrier).ToArray())),
                        ["curve_length"] = Json(MeanAndSpread.Of(curves.Select(c => c.NormalizedLength).ToArray())),
                        ["straight_barrier"] = Json(MeanAndSpread.Of(curves.Select(c => c.StraightBarrier).ToArray())),
                        ["paper_length"] = point?.Length,
                        ["paper_beads"] = point?.Beads,
                        ["seconds"] = l.Seconds,
                    };
                }).ToArray()),
            };
        }).ToArray());
        json["claims"] = new JsonArray(Claims(input.Levels).Select(c => (JsonNode?)new JsonObject
        {
            ["task"] = c.Task, ["id"] = c.Id, ["claim"] = c.Claim, ["measured"] = c.Measured, ["verdict"] = Words(c.Verdict),
        }).ToArray());
        json["missing"] = new JsonArray(input.Missing.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray());
        json["interrupted"] = input.Interrupted;
        json["seconds_this_invocation"] = Math.Round(input.Seconds, 1);
        json["files"] = new JsonArray(files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
        return json;
    }

    // ---- Markdown --------------------------------------------------------------------------------------------------

    static string Markdown(LevelSetsReportInput input, IReadOnlyList<(string Task, LevelMetric Metric, IReadOnlyList<LevelSetsLevelResult> Levels)> tasks,
        string stem, IReadOnlyDictionary<string, string?> taskFigures, string? curveFigure)
    {
        var md = new StringBuilder();
        var intro = new List<string>
        {
            "Are two good solutions joined by a path on which the loss stays below a level L0, and how curved must it be? For each task and L0, pairs of endpoints are " +
            "trained from random starts, then joined by Dynamic String Sampling (Freeman & Bruna's Algorithm 1, breadth-first as in the authors' code: " +
            "`DynamicStringSampling`); its normalised length Σ‖w_{i+1} − w_i‖ / ‖w_B − w_A‖ and bead count (endpoints included) are set beside the paper's Fig. 1. " +
            "Between the same endpoints a curve with a trainable middle point (Garipov et al. 2018: `CurveTraining`) is trained, and its barrier (max along it minus " +
            "the endpoints' mean) set beside the straight line's. The curve minimises the expected training loss along it with no length penalty, so where the level " +
            "is easy to stay under its middle point keeps drifting along flat directions: its length says how far the training wandered, not how curved the level set is; " +
            "its barrier is the number to compare.",
        };
        if (input.ToySettings is { } s)
        {
            var search = s.SamplingOptions(1);
            intro.Add(string.Create(C,
                $"Polynomial toys (quadratic, cubic; the authors' 1-4-4-1 sigmoid networks, MAE on a fixed {s.EvaluationSamples:N0}-point evaluation sample, full-batch Adam on " +
                $"{s.TrainingSamples:N0} training points): {s.Pairs} pairs per level, endpoints and beads trained for at most {s.MaxSteps:N0} Adam steps each, " +
                $"string settings of the authors' scripts (grid {search.GridPoints}, t* = 0.5, α = {search.BeadTargetFactor}, m = {search.AcceptFactor}), depth at most {s.MaxDepth}; " +
                $"curves: {s.CurveKind} with {s.CurveBends} bend(s), {s.CurveSteps:N0} SGD steps (lr {s.CurveLearningRate:G3}, momentum {s.CurveMomentum:G3}), one t ~ U(0, 1) and one full-batch " +
                $"training-MAE gradient per step, measured at 41 points of t on the evaluation sample. Seed {s.Seed}; endpoint seeds per level in the JSON and CSV."));
        }
        intro.AddRange(input.Protocols);
        intro.Add("Ours, not the authors': endpoints are trained to α·L0 like the beads (the authors train them to L0); the step budgets of endpoints and beads " +
                  "(the authors train without one; a pair whose endpoint misses α·L0 is skipped and counted); one fixed training sample per toy (the authors draw a fresh one " +
                  "per point); float64; the curves' kind, step count, learning rate and momentum (Garipov et al. train networks with other values); the verdict rules below. " +
                  "The authors': the networks, the L0 grids, the grid size, t*, α and m, and the weights-only normalised length (SpringNorm).");
        var standIns = tasks.Where(t => !Paper(t.Task, t.Metric).SameTask && Paper(t.Task, t.Metric).Points.Count > 0).Select(t => t.Metric).ToHashSet();
        if (standIns.Count > 0)
        {
            var (what, values) = (standIns.Contains(LevelMetric.ErrorPercent), standIns.Contains(LevelMetric.Perplexity)) switch
            {
                (true, true) => ("Fashion-MNIST stands in for MNIST and a character corpus (fortunes) for PTB", "MNIST and PTB values"),
                (true, false) => ("Fashion-MNIST stands in for MNIST", "MNIST values"),
                _ => ("a character corpus (fortunes) stands in for PTB", "PTB values"),
            };
            intro.Add($"Networks: {what}, so the paper's {values} are context for the shape of the curves, not targets: the scales differ.");
        }
        var perTask = string.Join(", ", tasks.Select(t => string.Create(C, $"{t.Task} {t.Levels.Sum(l => l.Seconds) / 60:0.0}")));
        intro.Add(string.Create(C,
            $"Compute: the levels in this report took {input.Levels.Sum(l => l.Seconds) / 60:0.0} min of wall time in all ({perTask}), " +
            $"summed over the levels' own times, whichever invocation computed them."));
        foreach (var missing in input.Missing) intro.Add($"**Not in this report:** {missing}");
        if (input.Interrupted) intro.Add("**Interrupted:** the run stopped before every level was done; this report covers the finished levels. Run the same command again to continue.");
        ReportHeader.AppendMarkdown(md, Title, intro, input.Budget, "Smoke budget: two high levels and a few steps to exercise every code path; its numbers judge nothing.",
            input.CommandLine, input.Machine);

        foreach (var (task, metric, levels) in tasks)
        {
            var (paper, source, _) = Paper(task, metric);
            md.AppendLine($"## {task} (L0 = {MetricName(metric)})");
            md.AppendLine();
            md.AppendLine("| L0 | connected / searched (skipped) | length, weights only | length, all parameters | beads | max along path | curve barrier | curve length | straight-line barrier | paper length | paper beads |");
            md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var l in levels)
            {
                var point = PaperAt(paper, l.Level);
                var curves = Curves(l).ToArray();
                md.AppendLine(string.Create(C,
                    $"| {l.Level:G4} | {l.Pairs.Count(p => p.Connected)}/{l.SearchedPairs} ({l.SkippedPairs}) | {MeanSd(l.WeightsOnlyLength)} | {MeanSd(l.AllParametersLength)} | " +
                    $"{MeanSd(l.Beads, "0.0")} | {MeanSd(MeanAndSpread.Of(l.Pairs.Where(p => p.MaxAlongPath is not null).Select(p => p.MaxAlongPath!.Value).ToArray()), "G3")} | " +
                    $"{MeanSd(MeanAndSpread.Of(curves.Select(c => c.Barrier).ToArray()), "G3")} | {MeanSd(MeanAndSpread.Of(curves.Select(c => c.NormalizedLength).ToArray()))} | " +
                    $"{MeanSd(MeanAndSpread.Of(curves.Select(c => c.StraightBarrier).ToArray()), "G3")} | " +
                    $"{(point?.Length is double pl ? F(pl) : "–")} | {(point?.BeadsText ?? (point?.Beads is double pb ? F(pb, "0.0") : "–"))} |"));
            }
            md.AppendLine();
            md.AppendLine($"Mean ± sample standard deviation over the pairs: lengths and beads over the connected pairs, max along the path over the searched ones, curves over the " +
                          $"pairs with a curve. Paper: {source}{(paper.Count == 0 ? "" : "; – where Fig. 1 has no point at that L0")}.");
            md.AppendLine();
            if (taskFigures.TryGetValue(task, out var figure) && figure is not null) md.AppendLine($"![{task}: normalised length and beads against L0]({figure})").AppendLine();
        }

        if (curveFigure is not null)
        {
            md.AppendLine("## Curves against straight lines");
            md.AppendLine();
            md.AppendLine($"![Curve barrier against straight-line barrier]({curveFigure})");
            md.AppendLine();
        }

        md.AppendLine("## Does it agree with the paper?");
        md.AppendLine();
        md.AppendLine("| task | claim | measured | verdict |");
        md.AppendLine("|---|---|---|---|");
        foreach (var c in Claims(input.Levels)) md.AppendLine($"| {c.Task} | {c.Claim} | {c.Measured} | **{Words(c.Verdict)}** |");
        md.AppendLine();
        md.AppendLine(string.Create(C,
            $"Rules (ours): a per-level mean \"grows as the level falls\" when Spearman's rank correlation between L0 and the level means is at most {RankThreshold:0.0} " +
            $"and the lowest level's mean exceeds the highest's by more than twice their combined standard error (std/√n; zero for a single pair); both: agrees, one: partly. " +
            $"The cubic's spike window is [{SpikeFrom}, {SpikeTo}]. A straight line has a barrier when it rises more than {StraightBarrierShare}·L0 above its endpoints' mean; " +
            $"a curve is well below it at no more than {WellBelowShare} of that barrier. A pair that did not connect has no path inside the level set, so it enters no length or bead mean."));
        md.AppendLine();
        md.AppendLine($"Data: `{stem}.json` (summary), `{stem}.csv` (one row per pair, with seeds, endpoint losses, string and curve numbers).");
        return md.ToString();
    }
}
