using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of the local-entropy toy (seed 003 Fig. 2): the figure, the tables behind it, the JSON summary, the
/// Markdown page and the verdict on the paper's claims. Everything is rendered in memory first, so a failure leaves
/// the previous report untouched; each file is then replaced atomically.
/// </summary>
public static class LocalEntropyToyReport
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = "local-entropy-toy";

    /// <summary>Size of the figure: three stacked panels.</summary>
    const int FigureWidth = 1000, FigureHeight = 1250;

    /// <summary>The files <see cref="Write"/> writes for a report stem, in order (without the figure's PNG and SVG when it is not drawn).</summary>
    public static IReadOnlyList<string> Files(string stem, bool withFigure = true) =>
        withFigure
            ? [$"{stem}.md", $"{stem}.png", $"{stem}.svg", $"{stem}.json", $"{stem}.csv", $"{stem}-langevin.csv", $"{stem}-ends.csv"]
            : [$"{stem}.md", $"{stem}.json", $"{stem}.csv", $"{stem}-langevin.csv", $"{stem}-ends.csv"];

    /// <summary>
    /// Writes the report of <paramref name="r"/> into <paramref name="outDir"/> under <paramref name="stem"/> and returns
    /// the JSON summary as one line (what `--json` prints).
    /// </summary>
    /// <param name="r">The experiment's result.</param>
    /// <param name="commandLine">The command that reproduces the report, quoted in it.</param>
    /// <param name="outDir">The report folder (created if missing).</param>
    /// <param name="stem">File stem (see Budgets.ReportStem).</param>
    /// <param name="warning">Told when the figure cannot be drawn (the plotting font is missing): everything else is
    /// written, and the summary and Markdown leave the figure out.</param>
    public static string Write(LocalEntropyToyResult r, string commandLine, string outDir, string stem, Action<string>? warning = null)
    {
        var withFigure = PlotFonts.TryEnsureAvailable(out var missingFont);
        if (!withFigure) warning?.Invoke($"the report's figure was not drawn (its text and data were written): {missingFont}");
        var files = Files(stem, withFigure);
        var figure = Plot(r);
        var summary = Summary(r, commandLine, files);
        // Relaxed escaping keeps f'' and + readable in the committed file; the text never goes into HTML.
        var summaryText = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        var markdown = Markdown(r, commandLine, stem, withFigure);
        if (withFigure)
        {
            figure.SavePng(Path.Combine(outDir, $"{stem}.png"));
            figure.SaveSvg(Path.Combine(outDir, $"{stem}.svg"));
        }
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}.csv"), CurveColumns(r));
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}-langevin.csv"), LangevinColumns(r));
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}-ends.csv"), EndColumns(r));
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.json"), summaryText + "\n");
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.md"), markdown);
        return summaryText;
    }

    static string F(double value, string format = "G6") => value.ToString(format, CultureInfo.InvariantCulture);

    // JSON has no NaN or infinity: a quantity that could not be computed is null.
    static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    static JsonArray Numbers(IEnumerable<double> values) => new(values.Select(Number).ToArray());

    static string Gamma(double gamma) => F(gamma, "G4");

    static string ValleyName(EndValley valley) => valley switch
    {
        EndValley.Wide => "wide",
        EndValley.Sharp => "sharp",
        _ => "neither",
    };

    // ---- the figure --------------------------------------------------------------------------------------------

    static Figure Plot(LocalEntropyToyResult r)
    {
        var s = r.Settings;
        var top = new List<LineSeries> { new("f(x)", r.X, r.F) { ColorIndex = 7 } };
        var middle = new List<LineSeries>();
        for (var k = 0; k < r.Scopes.Count; k++)
        {
            var curve = r.Scopes[k];
            var check = r.Langevin[k];
            var gamma = Gamma(curve.Gamma);
            top.Add(new LineSeries($"−F(x, γ = {gamma}) + F_flat", r.X, curve.NegativeLocalEntropy) { ColorIndex = k });
            top.Add(new LineSeries($"Langevin, γ = {gamma}", check.X, check.NegativeLocalEntropy) { ColorIndex = k, MarkersOnly = true });
            middle.Add(new LineSeries($"γ = {gamma}", r.X, r.X.Select((x, i) => curve.GibbsMean[i] - x).ToArray()) { ColorIndex = k });
            middle.Add(new LineSeries($"Langevin estimator, γ = {gamma}", check.X, check.X.Select((x, i) => check.GibbsMean[i] - x).ToArray())
            {
                ColorIndex = k, MarkersOnly = true,
            });
        }
        double[] ends = [s.XMin, s.XMax];
        var bottom = new List<LineSeries>
        {
            // SGD's ends sit exactly on f's minima; drawn last, they stay visible among Entropy-SGD's scattered ones.
            new("Entropy-SGD", r.EntropySgd.Starts, r.EntropySgd.Ends) { ColorIndex = 2, MarkersOnly = true },
            new("SGD", r.Sgd.Starts, r.Sgd.Ends) { ColorIndex = 3, MarkersOnly = true },
            new("", ends, [r.Valleys.WideMinimum, r.Valleys.WideMinimum]) { ColorIndex = 7, Dashed = true },
            new("", ends, [r.Valleys.SharpMinimum, r.Valleys.SharpMinimum]) { ColorIndex = 7, Dashed = true },
        };
        return LinePlot.Stacked(
        [
            new LinePanel("f and −F + F_flat", top) { Title = "Local entropy by quadrature (lines) and Langevin (markers)", Legend = LegendCorner.LowerRight },
            new LinePanel("⟨x′⟩ − x", middle) { Title = "Entropy-SGD's step direction ⟨x′⟩ − x = ∂F/∂x / γ: exact (lines), its estimator (markers)" },
            new LinePanel("end position", bottom) { Title = "Where runs end (dashed: the minima of f)", Legend = LegendCorner.UpperLeft },
        ], "x (start position in the bottom panel)", new LinePlotOptions
        {
            Title = $"Local entropy of a wide and a sharp valley (T = {F(s.Temperature, "G4")})",
            Width = FigureWidth,
            Height = FigureHeight,
            Legend = LegendCorner.LowerLeft,
            Markers = [new VerticalMarker(r.Valleys.WideMinimum, "wide"), new VerticalMarker(r.Valleys.SharpMinimum, "sharp")],
        });
    }

    // ---- tables ------------------------------------------------------------------------------------------------

    static List<CsvColumn> CurveColumns(LocalEntropyToyResult r)
    {
        var columns = new List<CsvColumn> { new("x", r.X), new("f", r.F) };
        foreach (var curve in r.Scopes.Append(r.FinalScope).DistinctBy(c => c.Gamma))
        {
            var gamma = F(curve.Gamma, "R");
            columns.Add(new CsvColumn($"neg_F_gamma_{gamma}", curve.NegativeLocalEntropy));
            columns.Add(new CsvColumn($"gibbs_mean_gamma_{gamma}", curve.GibbsMean));
            columns.Add(new CsvColumn($"neg_dF_dx_gamma_{gamma}", curve.Gradient));
        }
        return columns;
    }

    static List<CsvColumn> LangevinColumns(LocalEntropyToyResult r)
    {
        double[] Join(Func<LangevinCheck, IEnumerable<double>> select) => r.Langevin.SelectMany(select).ToArray();
        return
        [
            new CsvColumn("gamma", Join(c => c.X.Select(_ => c.Gamma))),
            new CsvColumn("x", Join(c => c.X)),
            new CsvColumn("gibbs_mean", Join(c => c.GibbsMean)),
            new CsvColumn("gibbs_mean_stderr", Join(c => c.GibbsMeanStandardError)),
            new CsvColumn("gibbs_mean_exact", Join(c => c.ExactGibbsMean)),
            new CsvColumn("tolerance", Join(c => c.X.Select((_, i) => c.Tolerance(i)))),
            new CsvColumn("neg_F", Join(c => c.NegativeLocalEntropy)),
            new CsvColumn("neg_F_exact", Join(c => c.ExactNegativeLocalEntropy)),
        ];
    }

    /// <summary>One row per run: start, both optimizers' ends, and which valley each is in (1 = yes).</summary>
    static List<CsvColumn> EndColumns(LocalEntropyToyResult r)
    {
        double[] Is(OptimizerEnds o, EndValley v) => o.Valleys.Select(x => x == v ? 1.0 : 0.0).ToArray();
        return
        [
            new CsvColumn("start", r.EntropySgd.Starts),
            new CsvColumn("sgd_end", r.Sgd.Ends),
            new CsvColumn("sgd_in_wide", Is(r.Sgd, EndValley.Wide)),
            new CsvColumn("sgd_in_sharp", Is(r.Sgd, EndValley.Sharp)),
            new CsvColumn("entropy_sgd_end", r.EntropySgd.Ends),
            new CsvColumn("entropy_sgd_in_wide", Is(r.EntropySgd, EndValley.Wide)),
            new CsvColumn("entropy_sgd_in_sharp", Is(r.EntropySgd, EndValley.Sharp)),
        ];
    }

    // ---- the verdict -------------------------------------------------------------------------------------------

    /// <summary>The paper's two claims about Fig. 2, checked on this run.</summary>
    sealed record Claims(bool SmallScopeFavoursWide, bool LargeScopeFollowsF, bool EntropySgdMoreWide, bool LangevinAgrees)
    {
        public bool All => SmallScopeFavoursWide && LargeScopeFollowsF && EntropySgdMoreWide && LangevinAgrees;
    }

    static Claims Check(LocalEntropyToyResult r) => new(
        r.ValleyOf(r.Scopes[0].GlobalMinimum) == EndValley.Wide,
        r.ValleyOf(r.Scopes[1].GlobalMinimum) == EndValley.Sharp,
        r.EntropySgd.Fraction(EndValley.Wide) > r.Sgd.Fraction(EndValley.Wide),
        r.Langevin.All(c => c.Agrees));

    /// <summary>One line per claim of the paper and a final verdict, for the console.</summary>
    public static IEnumerable<string> Verdicts(LocalEntropyToyResult r)
    {
        var claims = Check(r);
        var small = r.Scopes[0];
        var large = r.Scopes[1];
        yield return $"-F(x, {Gamma(small.Gamma)}) has its global minimum at x = {F(small.GlobalMinimum, "0.###")}, in the {ValleyName(r.ValleyOf(small.GlobalMinimum))} valley; " +
                     $"-F(x, {Gamma(large.Gamma)}) at x = {F(large.GlobalMinimum, "0.###")}, in the {ValleyName(r.ValleyOf(large.GlobalMinimum))} valley " +
                     $"(f's minima: wide {F(r.Valleys.WideMinimum, "0.###")}, sharp {F(r.Valleys.SharpMinimum, "0.###")})";
        foreach (var o in new[] { r.Sgd, r.EntropySgd })
            yield return $"{o.Name}: {o.Count(EndValley.Wide)} of {o.Ends.Length} runs end in the wide valley ({Percent(o.Fraction(EndValley.Wide))}), " +
                         $"{o.Count(EndValley.Sharp)} in the sharp one ({Percent(o.Fraction(EndValley.Sharp))})";
        foreach (var c in r.Langevin)
            yield return $"Langevin at gamma {Gamma(c.Gamma)}: max |<x'> error| {F(c.MaxGibbsMeanError, "0.####")} ({(c.Agrees ? "within" : "NOT within")} 4 SE + {F(c.BiasAllowance)} at every point)";
        yield return claims.All ? "agrees with the paper's Fig. 2" : "does NOT fully agree with the paper's Fig. 2 (see the report)";
    }

    static string Percent(double fraction) => F(100 * fraction, "0.#") + "%";

    // ---- JSON --------------------------------------------------------------------------------------------------

    static JsonObject Summary(LocalEntropyToyResult r, string commandLine, IReadOnlyList<string> files)
    {
        var s = r.Settings;
        var l = s.Landscape;
        var claims = Check(r);
        var scopes = new JsonArray();
        for (var k = 0; k < r.Scopes.Count; k++)
        {
            var curve = r.Scopes[k];
            var c = r.Langevin[k];
            scopes.Add(new JsonObject
            {
                ["gamma"] = curve.Gamma,
                ["neg_F_argmin"] = Number(curve.GlobalMinimum),
                ["neg_F_min"] = Number(curve.GlobalMinimumValue),
                ["neg_F_argmin_valley"] = ValleyName(r.ValleyOf(curve.GlobalMinimum)),
                ["neg_F_local_minima"] = Numbers(curve.LocalMinima),
                ["langevin"] = new JsonObject
                {
                    ["points"] = c.X.Length,
                    ["chains"] = c.Chains,
                    ["steps"] = c.Steps,
                    ["eta_prime"] = Number(c.StepSize),
                    ["alpha"] = Number(c.Alpha),
                    ["max_gibbs_mean_error"] = Number(c.MaxGibbsMeanError),
                    ["max_standardized_error"] = Number(c.MaxStandardizedError),
                    ["max_gradient_error"] = Number(c.MaxGradientError),
                    ["max_neg_F_error"] = Number(c.MaxNegativeLocalEntropyError),
                    ["max_tolerance"] = Number(c.MaxTolerance),
                    ["bias_allowance"] = Number(c.BiasAllowance),
                    ["agrees"] = c.Agrees,
                },
            });
        }
        JsonObject Runs(OptimizerEnds o) => new()
        {
            ["runs"] = o.Ends.Length,
            ["wide"] = o.Count(EndValley.Wide),
            ["sharp"] = o.Count(EndValley.Sharp),
            ["neither"] = o.Count(EndValley.Neither),
            ["fraction_wide"] = Number(o.Fraction(EndValley.Wide)),
            ["fraction_sharp"] = Number(o.Fraction(EndValley.Sharp)),
            ["settings"] = o.Description,
        };
        return new JsonObject
        {
            ["experiment"] = Name,
            ["budget"] = Budgets.Name(s.Budget),
            ["command"] = commandLine,
            ["temperature"] = s.Temperature,
            ["seed"] = s.Seed,
            ["landscape"] = new JsonObject
            {
                ["wide_centre"] = l.WideCentre,
                ["wide_width"] = l.WideWidth,
                ["wide_depth"] = l.WideDepth,
                ["sharp_centre"] = l.SharpCentre,
                ["sharp_width"] = l.SharpWidth,
                ["sharp_depth"] = l.SharpDepth,
                ["wide_minimum"] = Number(r.Valleys.WideMinimum),
                ["sharp_minimum"] = Number(r.Valleys.SharpMinimum),
                ["watershed"] = Number(r.Valleys.Watershed),
                ["f_wide_minimum"] = Number(l.Value(r.Valleys.WideMinimum)),
                ["f_sharp_minimum"] = Number(l.Value(r.Valleys.SharpMinimum)),
            },
            ["x_range"] = Numbers([s.XMin, s.XMax]),
            ["curve_points"] = s.CurvePoints,
            ["scopes"] = scopes,
            ["switch_scope"] = Number(r.SwitchScope),
            ["entropy_sgd_final_scope"] = new JsonObject
            {
                ["gamma"] = r.FinalScope.Gamma,
                ["neg_F_local_minima"] = Numbers(r.FinalScope.LocalMinima),
            },
            ["starts"] = s.Starts,
            ["replicas"] = s.Replicas,
            ["sgd"] = Runs(r.Sgd),
            ["entropy_sgd"] = Runs(r.EntropySgd),
            ["claims"] = new JsonObject
            {
                ["small_scope_minimum_in_wide_valley"] = claims.SmallScopeFavoursWide,
                ["large_scope_minimum_in_sharp_valley"] = claims.LargeScopeFollowsF,
                ["entropy_sgd_ends_wide_more_often_than_sgd"] = claims.EntropySgdMoreWide,
                ["langevin_agrees_with_quadrature"] = claims.LangevinAgrees,
            },
            ["agrees_with_paper"] = claims.All,
            ["seconds"] = Math.Round(r.Seconds, 1),
            ["files"] = new JsonArray(files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray()),
        };
    }

    // ---- Markdown ----------------------------------------------------------------------------------------------

    static string Markdown(LocalEntropyToyResult r, string commandLine, string stem, bool withFigure)
    {
        var s = r.Settings;
        var l = s.Landscape;
        var claims = Check(r);
        var small = r.Scopes[0];
        var large = r.Scopes[1];
        var md = new StringBuilder();
        void Line(string text = "") => md.Append(text).Append('\n');
        string N(double v, string format = "0.###") => F(v, format);
        string Minima(ScopeCurve c) => string.Join(", ", c.LocalMinima.Select(m => $"{N(m)} ({ValleyName(r.ValleyOf(m))})"));

        Line("# Local entropy of a wide and a sharp valley (seed 003, Fig. 2)");
        Line();
        Line($"Budget **{Budgets.Name(s.Budget)}**, {N(r.Seconds, "0")} s. Reproduce with:");
        Line();
        Line("```");
        Line(commandLine);
        Line("```");
        Line();
        Line("## What is computed");
        Line();
        Line($"- **Landscape** f(x) = −{N(l.WideDepth, "G4")} exp(−(x − ({N(l.WideCentre, "G4")}))² / (2 · {N(l.WideWidth, "G4")}²)) − {N(l.SharpDepth, "G4")} exp(−(x − {N(l.SharpCentre, "G4")})² / (2 · {N(l.SharpWidth, "G4")}²)): " +
             $"a wide shallow valley (minimum f = {N(l.Value(r.Valleys.WideMinimum))} at x = {N(r.Valleys.WideMinimum)}) and a sharp deeper one " +
             $"(f = {N(l.Value(r.Valleys.SharpMinimum))} at x = {N(r.Valleys.SharpMinimum)}), separated by a barrier at x = {N(r.Valleys.Watershed)}.");
        Line($"- **Local entropy** F(x, γ) = T log ∫ exp(−(f(x′) + γ/2 (x − x′)²) / T) dx′ (eq. 4) at T = {N(s.Temperature, "G4")} (the paper's β = 1), " +
             "by the trapezoid rule on a window of the Gibbs measure that resolves the sharp well 20 times over its width.");
        Line("- **What the top panel plots**: f and −F(x, γ) + F_flat(γ), where F_flat = T log √(2πT/γ) is the local entropy of the flat landscape f = 0. " +
             "No fitted shift or scale: the curve equals T log E_Gibbs[exp(f(x′)/T)], vanishes far from both wells and tends to f as γ → ∞, so it shares f's axis.");
        Line($"- **Langevin estimates** at {r.Langevin[0].X.Length} points: the library's local-entropy estimator (the inside of Entropy-SGD, Alg. 1 lines 2–6) with " +
             $"{r.Langevin[0].Chains:N0} independent chains per point, noise ε = √(2T) under the paper's scaling √η′ ε (so the chains sample temperature T), " +
             $"η′ = {N(s.LangevinStepAccuracy, "G3")} / (γ + max|f″|), chains {N(s.LangevinHorizon, "G3")}/γ long in time (L = {r.Langevin[0].Steps:N0} steps at γ = {Gamma(r.Langevin[0].Gamma)}) and α = {N(s.AverageWindows, "G3")}/L. " +
             "⟨x′⟩ = x − mean(x − μ) over the chains (middle panel); the top panel's markers are T log of the mean of exp(f(x′)/T) over the second half of every chain. " +
             $"A point agrees when |⟨x′⟩ − ⟨x′⟩_exact| ≤ 4 standard errors + {N(s.LangevinBiasAllowance, "G3")} (Euler step and start-weight bias).");
        Line($"- **Runs** from {s.Starts} equally spaced starts on [{N(s.XMin, "G4")}, {N(s.XMax, "G4")}], {s.Replicas} Entropy-SGD run(s) per start.");
        Line($"  - SGD: {r.Sgd.Description}.");
        Line($"  - Entropy-SGD: {r.EntropySgd.Description}.");
        Line($"  - A run ends in a valley when it is on that valley's side of the barrier and f there is below half the valley's depth; otherwise *neither* " +
             "(a run stuck on the flat tails, where f' vanishes).");
        Line();
        Line("## Results");
        Line();
        Line("| scope γ | global minimum of −F | valley | all local minima of −F in the range | Langevin max \\|Δ⟨x′⟩\\| | max \\|Δ⟨x′⟩\\| / SE | max \\|Δ(−F)\\| | agrees |");
        Line("|---|---|---|---|---|---|---|---|");
        for (var k = 0; k < r.Scopes.Count; k++)
        {
            var c = r.Scopes[k];
            var check = r.Langevin[k];
            Line($"| {Gamma(c.Gamma)} | {N(c.GlobalMinimum)} | {ValleyName(r.ValleyOf(c.GlobalMinimum))} | {Minima(c)} | {N(check.MaxGibbsMeanError, "0.####")} | " +
                 $"{N(check.MaxStandardizedError, "0.##")} | {N(check.MaxNegativeLocalEntropyError, "0.####")} | {(check.Agrees ? "yes" : "no")} |");
        }
        Line($"| {Gamma(r.FinalScope.Gamma)} (Entropy-SGD's last) | {N(r.FinalScope.GlobalMinimum)} | {ValleyName(r.ValleyOf(r.FinalScope.GlobalMinimum))} | {Minima(r.FinalScope)} | – | – | – | – |");
        Line();
        Line(double.IsNaN(r.SwitchScope)
            ? $"Between γ = {Gamma(small.Gamma)} and {Gamma(large.Gamma)} the global minimum of −F does not move from the wide valley to the sharp one."
            : $"The global minimum of −F moves from the wide to the sharp valley at γ ≈ {N(r.SwitchScope, "G3")} (bisection on the quadrature); " +
              "below that scope local entropy prefers the wide valley, above it the depth of the sharp one wins.");
        Line();
        Line("| optimizer | runs | ended in the wide valley | ended in the sharp valley | neither |");
        Line("|---|---|---|---|---|");
        foreach (var o in new[] { r.Sgd, r.EntropySgd })
            Line($"| {o.Name} | {o.Ends.Length} | {o.Count(EndValley.Wide)} ({Percent(o.Fraction(EndValley.Wide))}) | {o.Count(EndValley.Sharp)} ({Percent(o.Fraction(EndValley.Sharp))}) | " +
                 $"{o.Count(EndValley.Neither)} ({Percent(o.Fraction(EndValley.Neither))}) |");
        Line();
        if (withFigure)
        {
            Line($"![f and −F for two scopes, the Gibbs mean, and where runs end]({stem}.png)");
            Line();
        }
        Line("## Does it agree with the paper?");
        Line();
        Line($"The paper (Sec. 3, Fig. 2) claims that the negative local entropy has its global minimum in the wide valley for small γ, that it approaches f as γ grows, " +
             "and (Sec. 4) that Entropy-SGD, which descends it, is biased towards wide valleys.");
        Line();
        Line($"- Small scope: −F(x, {Gamma(small.Gamma)}) has its global minimum at x = {N(small.GlobalMinimum)}, in the **{ValleyName(r.ValleyOf(small.GlobalMinimum))}** valley, " +
             $"although f's global minimum is the {(l.Value(r.Valleys.SharpMinimum) < l.Value(r.Valleys.WideMinimum) ? "sharp" : "wide")} one: " +
             $"{(claims.SmallScopeFavoursWide ? "agrees" : "does not agree")}.");
        Line($"- Large scope: −F(x, {Gamma(large.Gamma)}) has its global minimum at x = {N(large.GlobalMinimum)}, in the **{ValleyName(r.ValleyOf(large.GlobalMinimum))}** valley, like f: " +
             $"{(claims.LargeScopeFollowsF ? "agrees" : "does not agree")}.");
        Line($"- Entropy-SGD ended in the wide valley in {Percent(r.EntropySgd.Fraction(EndValley.Wide))} of its runs, SGD in {Percent(r.Sgd.Fraction(EndValley.Wide))}: " +
             $"{(claims.EntropySgdMoreWide ? "agrees" : "does not agree")}.");
        Line($"- The Langevin estimator {(claims.LangevinAgrees ? "agrees" : "does NOT agree")} with quadrature at every point of both scopes " +
             $"(largest error {N(r.Langevin.Max(c => c.MaxGibbsMeanError), "0.####")} in ⟨x′⟩, tolerance at most {N(r.Langevin.Max(c => c.MaxTolerance), "0.####")}).");
        Line();
        Line(claims.All
            ? "**Verdict: agrees with the paper's Fig. 2.**"
            : "**Verdict: does not fully agree with the paper's Fig. 2** (see the items above).");
        Line();
        Line($"Data: `{stem}.json` (summary), `{stem}.csv` (the curves), `{stem}-langevin.csv` (the estimates), `{stem}-ends.csv` (every run), `{stem}.svg`.");
        return md.ToString();
    }
}
