using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;
using WideValley.SpinGlass;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="AnnealField"/>: the sweep figure (distinct minima and energies against the field), the
/// histogram of final energies (annealed against plain descent), the tables behind them, the JSON summary and the
/// Markdown page with a verdict on each claim. Rendered in memory first; each file is replaced atomically.
/// </summary>
public static class AnnealFieldReport
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = "anneal-field";

    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The files <see cref="Write"/> writes for a report stem (without the figures when they cannot be drawn).</summary>
    public static IReadOnlyList<string> Files(string stem, bool withFigure = true) =>
        withFigure
            ? [$"{stem}.md", $"{stem}.json", $"{stem}.csv", $"{stem}-annealed.csv", $"{stem}.png", $"{stem}.svg", $"{stem}-energies.png", $"{stem}-energies.svg"]
            : [$"{stem}.md", $"{stem}.json", $"{stem}.csv", $"{stem}-annealed.csv"];

    /// <summary>One glass's answer to the two claims.</summary>
    /// <param name="Size">N.</param>
    /// <param name="FieldFreeMinima">Distinct minima at h = 0.</param>
    /// <param name="StrongestFieldMinima">Distinct minima at the strongest field of the sweep.</param>
    /// <param name="FirstSingleField">The weakest field of the sweep with one distinct minimum (null: none).</param>
    /// <param name="MostMinima">The most distinct minima at any field of the sweep, h = 0 included.</param>
    /// <param name="StaysSingle">Every field from <paramref name="FirstSingleField"/> on gives one minimum.</param>
    /// <param name="RankCorrelation">Spearman's rank correlation between h and the count over the sweep (h = 0 included).</param>
    /// <param name="Comparison">Annealed against plain descent.</param>
    /// <param name="DifferenceError">The standard error the verdict on (b) uses.</param>
    public sealed record GlassClaims(int Size, int FieldFreeMinima, int StrongestFieldMinima, double? FirstSingleField, int MostMinima, bool StaysSingle,
        double RankCorrelation, AnnealComparison Comparison, double DifferenceError)
    {
        /// <summary>
        /// (a), by our stated rule: many minima without a field (more than one), a single minimum at the strongest field
        /// and at every field above the first that gives one, and a count that falls with the field overall (rank
        /// correlation at most <see cref="FallingCorrelation"/>; counts at weak fields may fluctuate by a few).
        /// </summary>
        public bool ManyToOne => FieldFreeMinima > 1 && StrongestFieldMinima == 1 && StaysSingle && RankCorrelation <= FallingCorrelation;

        /// <summary>The rank correlation at or below which the count "falls with the field".</summary>
        public const double FallingCorrelation = -0.5;

        /// <summary>(b): the annealed runs end lower on average, by more than two standard errors.</summary>
        public bool AnnealedLower => Comparison.Difference.Mean < 0 && double.IsFinite(DifferenceError) && -Comparison.Difference.Mean > 2 * DifferenceError;

        /// <summary>The opposite of (b): higher by more than two standard errors.</summary>
        public bool AnnealedHigher => Comparison.Difference.Mean > 0 && double.IsFinite(DifferenceError) && Comparison.Difference.Mean > 2 * DifferenceError;
    }

    /// <summary>The claims of every glass of <paramref name="r"/>.</summary>
    public static IReadOnlyList<GlassClaims> Claims(AnnealFieldResult r) => r.Glasses.Select(g =>
    {
        var field = g.Sweep.Skip(1).ToList();
        var comparison = g.Compare();
        var error = double.IsFinite(comparison.DirectionStandardError) ? comparison.DirectionStandardError : comparison.Difference.StandardError;
        var first = field.FindIndex(p => p.DistinctMinima == 1);
        return new GlassClaims(g.Size, g.Plain.DistinctMinima, field[^1].DistinctMinima, first < 0 ? null : field[first].Field,
            g.Sweep.Max(p => p.DistinctMinima), first >= 0 && field.Skip(first).All(p => p.DistinctMinima == 1),
            Spearman(g.Sweep.Select(p => p.Field).ToArray(), g.Sweep.Select(p => (double)p.DistinctMinima).ToArray()), comparison, error);
    }).ToList();

    /// <summary>Spearman's rank correlation (average ranks for ties); NaN when either side is constant.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        var rx = Ranks(x);
        var ry = Ranks(y);
        var mx = rx.Average();
        var my = ry.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < rx.Length; i++)
        {
            sxy += (rx[i] - mx) * (ry[i] - my);
            sxx += (rx[i] - mx) * (rx[i] - mx);
            syy += (ry[i] - my) * (ry[i] - my);
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    static double[] Ranks(IReadOnlyList<double> v)
    {
        var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
        var ranks = new double[v.Count];
        for (var i = 0; i < order.Length;)
        {
            var j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            for (var k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2.0;
            i = j + 1;
        }
        return ranks;
    }

    /// <summary>Writes the report of <paramref name="r"/> and returns the JSON summary as one line (what `--json` prints).</summary>
    /// <param name="r">A finished (not interrupted) result.</param>
    /// <param name="commandLine">The command that reproduces the report.</param>
    /// <param name="machine">The machine in one line.</param>
    /// <param name="outDir">The report folder (created if missing).</param>
    /// <param name="stem">File stem (see <see cref="Budgets.ReportStem"/>).</param>
    /// <param name="warning">Told when the figures cannot be drawn (the plotting font is missing).</param>
    /// <exception cref="ArgumentException">An interrupted result.</exception>
    public static string Write(AnnealFieldResult r, string commandLine, string machine, string outDir, string stem, Action<string>? warning = null)
    {
        if (r.Interrupted || r.Glasses.Count != r.Settings.Sizes.Count)
            throw new ArgumentException("an interrupted anneal-field run has no report; run the same command again to finish it", nameof(r));
        Directory.CreateDirectory(outDir);
        var withFigure = PlotFonts.TryEnsureAvailable(out var missingFont);
        if (!withFigure) warning?.Invoke($"the report's figures were not drawn (its text and data were written): {missingFont}");
        var summary = Summary(r, commandLine, machine, Files(stem, withFigure));
        var summaryText = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        var markdown = Markdown(r, commandLine, machine, stem, withFigure);
        if (withFigure)
        {
            var sweep = SweepFigure(r);
            sweep.SavePng(Path.Combine(outDir, $"{stem}.png"));
            sweep.SaveSvg(Path.Combine(outDir, $"{stem}.svg"));
            var energies = EnergyFigure(r);
            energies.SavePng(Path.Combine(outDir, $"{stem}-energies.png"));
            energies.SaveSvg(Path.Combine(outDir, $"{stem}-energies.svg"));
        }
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}.csv"), SweepColumns(r));
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}-annealed.csv"), AnnealedColumns(r));
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.json"), summaryText + "\n");
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.md"), markdown);
        return summaryText;
    }

    static string F(double value, string format = "G4") => double.IsFinite(value) ? value.ToString(format, C) : "n/a";

    static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    // ---- verdicts ----------------------------------------------------------------------------------------------

    static string ManyToOneText(GlassClaims c) =>
        $"N = {c.Size}: {c.FieldFreeMinima} distinct minima without a field, {c.StrongestFieldMinima} at the strongest field" +
        (c.FirstSingleField is double h ? $", one from h = {F(h, "G3")}{(c.StaysSingle ? " on" : " (but more again at a stronger field)")}" : ", never one") +
        $", at most {c.MostMinima} at any field, rank correlation of count and field {F(c.RankCorrelation, "0.00")}" +
        $": {(c.ManyToOne ? "agrees" : "does not agree")}";

    static string AnnealedText(GlassClaims c)
    {
        var k = c.Comparison;
        var verdict = c.AnnealedLower ? "annealed ends LOWER" : c.AnnealedHigher ? "annealed ends HIGHER" : "no difference beyond two standard errors";
        return $"N = {c.Size}: annealed E/N {F(k.Annealed.Mean, "0.0000")} ± {F(k.Annealed.Std, "0.0000")}, plain {F(k.Plain.Mean, "0.0000")} ± {F(k.Plain.Std, "0.0000")}; " +
               $"paired difference {F(k.Difference.Mean, "0.0000")} (standard error {F(c.DifferenceError, "0.0000")}), " +
               $"annealed lower in {F(100 * k.FractionLower, "0.#")}% of {k.Pairs} pairs, equal in {F(100 * k.FractionEqual, "0.#")}%: {verdict}";
    }

    /// <summary>One line per claim and glass and a final verdict on each claim, for the console.</summary>
    public static IEnumerable<string> Verdicts(AnnealFieldResult r)
    {
        var claims = Claims(r);
        foreach (var c in claims) yield return "(a) " + ManyToOneText(c);
        foreach (var c in claims) yield return "(b) " + AnnealedText(c);
        yield return $"(a) distinct minima fall from many to one as the field grows: {(claims.All(c => c.ManyToOne) ? "agrees" : "does NOT agree")} at every N";
        yield return $"(b) the annealed run ends lower than plain descent: {(claims.All(c => c.AnnealedLower) ? "yes" : claims.Any(c => c.AnnealedLower) ? "at some N only" : "no")}";
    }

    // ---- figures -----------------------------------------------------------------------------------------------

    static double Log10(double v) => Math.Log10(v);

    static Figure SweepFigure(AnnealFieldResult r)
    {
        var s = r.Settings;
        var minima = new List<LineSeries>();
        var energies = new List<LineSeries>();
        for (var g = 0; g < r.Glasses.Count; g++)
        {
            var glass = r.Glasses[g];
            var field = glass.Sweep.Skip(1).ToList();
            var x = field.Select(p => Log10(p.Field)).ToArray();
            minima.Add(new LineSeries($"N = {glass.Size}", x, field.Select(p => (double)p.DistinctMinima).ToArray()) { ShowMarkers = true, ColorIndex = g });
            energies.Add(new LineSeries($"N = {glass.Size}, H/N without the field", x, field.Select(p => Stat.Of(p.FieldFreeEnergy).Mean).ToArray())
            {
                ShowMarkers = true, ColorIndex = g,
            });
            energies.Add(new LineSeries($"N = {glass.Size}, H_h/N (minimised)", x, field.Select(p => Stat.Of(p.PerturbedEnergy).Mean).ToArray())
            {
                Dashed = true, ColorIndex = g,
            });
        }
        var all = r.Glasses.SelectMany(g => g.Sweep.Skip(1)).Select(p => Log10(p.Field)).ToArray();
        double[] ends = [all.Min(), all.Max()];
        var e0 = -SpinGlassTheory.GroundStateEnergy(s.Order);
        var eInf = -SpinGlassTheory.EnergyBarrier(s.Order);
        energies.Add(new LineSeries($"−E_0 = {F(e0, "0.0000")}", ends, [e0, e0]) { Dashed = true, ColorIndex = 7 });
        energies.Add(new LineSeries($"−E_inf = {F(eInf, "0.0000")}", ends, [eInf, eInf]) { Dashed = true, ColorIndex = 6 });
        return LinePlot.Stacked(
        [
            new LinePanel("distinct minima", minima) { Title = $"Distinct minima of {s.Starts} starts (overlap ≥ {F(s.OverlapThreshold)})", LogY = true },
            new LinePanel("energy per spin", energies) { Title = "Mean energy of the end points", Legend = LegendCorner.LowerLeft },
        ], "log10 h (field strength per coordinate)", new LinePlotOptions
        {
            Title = $"Spherical {s.Order}-spin glass in a field: projected gradient descent to |g| < {F(s.GradientTolerance)}",
            Width = 1000,
            Height = 900,
            Markers = [new VerticalMarker(Log10(s.RecalledCriticalField), $"√{s.Order * (s.Order - 2)}: recalled h_c, UNVERIFIED")],
        });
    }

    /// <summary>Counts of <paramref name="values"/> in <paramref name="bins"/> equal bins over [lo, hi], at the bin centres.</summary>
    static (double[] Centres, double[] Counts) Histogram(IReadOnlyList<double> values, double lo, double hi, int bins)
    {
        var width = (hi - lo) / bins;
        var counts = new double[bins];
        foreach (var v in values) counts[Math.Clamp((int)((v - lo) / width), 0, bins - 1)]++;
        return (Enumerable.Range(0, bins).Select(i => lo + (i + 0.5) * width).ToArray(), counts);
    }

    static Figure EnergyFigure(AnnealFieldResult r)
    {
        var series = new List<LineSeries>();
        var all = r.Glasses.SelectMany(g => g.Plain.FieldFreeEnergy.Concat(g.Annealed.SelectMany(a => a.FieldFreeEnergy))).ToArray();
        var lo = all.Min();
        var hi = all.Max();
        if (hi - lo < 1e-6) { lo -= 0.005; hi += 0.005; }
        var bins = Math.Clamp((int)Math.Sqrt(all.Length), 10, 40);
        for (var g = 0; g < r.Glasses.Count; g++)
        {
            var glass = r.Glasses[g];
            var (x, plain) = Histogram(glass.Plain.FieldFreeEnergy, lo, hi, bins);
            var annealed = Histogram(glass.Annealed.SelectMany(a => a.FieldFreeEnergy).ToArray(), lo, hi, bins).Counts;
            var starts = glass.Plain.FieldFreeEnergy.Length;
            // Fractions, so that the annealed runs (directions x starts) and the plain ones (starts) share a scale.
            series.Add(new LineSeries($"N = {glass.Size}, plain descent", x, plain.Select(c => c / starts).ToArray()) { ShowMarkers = true, ColorIndex = 2 * g });
            series.Add(new LineSeries($"N = {glass.Size}, annealed", x, annealed.Select(c => c / (starts * (double)glass.Annealed.Count)).ToArray())
            {
                ShowMarkers = true, Dashed = true, ColorIndex = 2 * g + 1,
            });
        }
        return LinePlot.Create(series, "final energy per spin H/N (no field)", "fraction of runs", new LinePlotOptions
        {
            Title = "Final field-free energy: annealed field vs plain descent, same starts",
            Width = 1000,
            Height = 560,
            Markers = [new VerticalMarker(-SpinGlassTheory.GroundStateEnergy(r.Settings.Order), "−E_0"), new VerticalMarker(-SpinGlassTheory.EnergyBarrier(r.Settings.Order), "−E_inf")],
            Legend = LegendCorner.UpperRight,
        });
    }

    // ---- tables ------------------------------------------------------------------------------------------------

    static List<CsvColumn> SweepColumns(AnnealFieldResult r)
    {
        var rows = r.Glasses.SelectMany(g => g.Sweep).ToList();
        return
        [
            new CsvColumn("N", rows.Select(p => (double)p.Size).ToArray()),
            new CsvColumn("field", rows.Select(p => p.Field).ToArray()),
            new CsvColumn("step_size", rows.Select(p => p.StepSize).ToArray()),
            new CsvColumn("distinct_minima", rows.Select(p => (double)p.DistinctMinima).ToArray()),
            new CsvColumn("largest_cluster", rows.Select(p => (double)p.ClusterSizes.Max()).ToArray()),
            new CsvColumn("converged_fraction", rows.Select(p => p.ConvergedFraction).ToArray()),
            new CsvColumn("energy_no_field_mean", rows.Select(p => Stat.Of(p.FieldFreeEnergy).Mean).ToArray()),
            new CsvColumn("energy_no_field_std", rows.Select(p => Stat.Of(p.FieldFreeEnergy).Std).ToArray()),
            new CsvColumn("energy_with_field_mean", rows.Select(p => Stat.Of(p.PerturbedEnergy).Mean).ToArray()),
            new CsvColumn("energy_with_field_std", rows.Select(p => Stat.Of(p.PerturbedEnergy).Std).ToArray()),
            new CsvColumn("mean_steps", rows.Select(p => p.Steps.Average()).ToArray()),
        ];
    }

    /// <summary>One row per (N, direction, start): plain and annealed final field-free energies.</summary>
    static List<CsvColumn> AnnealedColumns(AnnealFieldResult r)
    {
        var rows = r.Glasses.SelectMany(g => g.Annealed.SelectMany(a => a.FieldFreeEnergy.Select((e, i) => (g.Size, a.Direction, Start: i, Annealed: e, Plain: g.Plain.FieldFreeEnergy[i], Steps: a.Steps[i]))))
            .ToList();
        return
        [
            new CsvColumn("N", rows.Select(x => (double)x.Size).ToArray()),
            new CsvColumn("direction", rows.Select(x => (double)x.Direction).ToArray()),
            new CsvColumn("start", rows.Select(x => (double)x.Start).ToArray()),
            new CsvColumn("plain_energy", rows.Select(x => x.Plain).ToArray()),
            new CsvColumn("annealed_energy", rows.Select(x => x.Annealed).ToArray()),
            new CsvColumn("annealed_minus_plain", rows.Select(x => x.Annealed - x.Plain).ToArray()),
            new CsvColumn("annealed_steps", rows.Select(x => (double)x.Steps).ToArray()),
        ];
    }

    // ---- JSON --------------------------------------------------------------------------------------------------

    static JsonObject StatJson(Stat s) => new() { ["mean"] = Number(s.Mean), ["std"] = Number(s.Std), ["count"] = s.Count };

    static JsonObject Summary(AnnealFieldResult r, string commandLine, string machine, IReadOnlyList<string> files)
    {
        var s = r.Settings;
        var claims = Claims(r);
        var glasses = new JsonArray();
        foreach (var (g, c) in r.Glasses.Zip(claims))
        {
            var sweep = new JsonArray();
            foreach (var p in g.Sweep)
                sweep.Add(new JsonObject
                {
                    ["field"] = p.Field,
                    ["step_size"] = p.StepSize,
                    ["distinct_minima"] = p.DistinctMinima,
                    ["largest_cluster"] = p.ClusterSizes.Max(),
                    ["converged_fraction"] = p.ConvergedFraction,
                    ["energy_no_field"] = StatJson(Stat.Of(p.FieldFreeEnergy)),
                    ["energy_with_field"] = StatJson(Stat.Of(p.PerturbedEnergy)),
                    ["mean_steps"] = p.Steps.Average(),
                    ["seconds"] = p.Seconds,
                });
            var annealed = new JsonArray();
            foreach (var a in g.Annealed)
                annealed.Add(new JsonObject
                {
                    ["direction"] = a.Direction,
                    ["stage_fields"] = new JsonArray(a.StageFields.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                    ["stage_distinct_minima"] = new JsonArray(a.StageDistinctMinima.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                    ["stage_converged_fraction"] = new JsonArray(a.StageConvergedFraction.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                    ["energy_no_field"] = StatJson(Stat.Of(a.FieldFreeEnergy)),
                    ["distinct_minima"] = a.DistinctMinima,
                    ["converged_fraction"] = a.Converged.Count(x => x) / (double)a.Converged.Length,
                    ["mean_steps"] = a.Steps.Average(),
                    ["seconds"] = a.Seconds,
                });
            var k = c.Comparison;
            glasses.Add(new JsonObject
            {
                ["N"] = g.Size,
                ["coupling_seed"] = s.CouplingSeed(g.Size),
                ["start_seed"] = s.StartSeed(g.Size),
                ["sweep"] = sweep,
                ["annealed"] = annealed,
                ["comparison"] = new JsonObject
                {
                    ["annealed"] = StatJson(k.Annealed),
                    ["plain"] = StatJson(k.Plain),
                    ["difference"] = StatJson(k.Difference),
                    ["difference_standard_error"] = Number(c.DifferenceError),
                    ["fraction_annealed_lower"] = k.FractionLower,
                    ["fraction_equal"] = k.FractionEqual,
                    ["equal_tolerance"] = AnnealComparison.EqualTolerance,
                    ["pairs"] = k.Pairs,
                },
                ["claims"] = new JsonObject
                {
                    ["many_to_one"] = c.ManyToOne,
                    ["first_single_minimum_field"] = c.FirstSingleField is double h ? h : null,
                    ["most_minima"] = c.MostMinima,
                    ["rank_correlation_field_count"] = Number(c.RankCorrelation),
                    ["annealed_lower"] = c.AnnealedLower,
                    ["annealed_higher"] = c.AnnealedHigher,
                },
            });
        }
        var json = ReportHeader.Json(Budgets.ReportStem(Name, s.Budget), Title(s), s.Budget, commandLine, machine);
        json["experiment"] = Name;
        json["files"] = new JsonArray(files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
        json["settings"] = new JsonObject
        {
            ["p"] = s.Order,
            ["sizes"] = new JsonArray(s.Sizes.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["starts"] = s.Starts,
            ["fields"] = new JsonArray(s.Fields.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            ["overlap_threshold"] = s.OverlapThreshold,
            ["step_size"] = s.StepSize,
            ["step_rule"] = "gamma0 / max(1, h)",
            ["gradient_tolerance"] = s.GradientTolerance,
            ["max_steps"] = s.MaxSteps,
            ["anneal_fields"] = new JsonArray(s.AnnealFields.Append(0).Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            ["field_directions"] = s.FieldDirections,
            ["seed"] = s.Seed,
        };
        json["reference"] = new JsonObject
        {
            ["minus_E0"] = -SpinGlassTheory.GroundStateEnergy(s.Order),
            ["minus_Einf"] = -SpinGlassTheory.EnergyBarrier(s.Order),
            ["recalled_critical_field_unverified"] = s.RecalledCriticalField,
        };
        json["glasses"] = glasses;
        json["claims"] = new JsonObject
        {
            ["distinct_minima_many_to_one"] = claims.All(c => c.ManyToOne),
            ["annealed_ends_lower"] = claims.All(c => c.AnnealedLower),
            ["annealed_ends_lower_at_some_size"] = claims.Any(c => c.AnnealedLower),
        };
        json["pieces_computed"] = r.PiecesComputed;
        json["pieces_reused"] = r.PiecesReused;
        return json;
    }

    // ---- Markdown ----------------------------------------------------------------------------------------------

    static string Title(AnnealFieldSettings s) =>
        $"AnnealSGD's mechanism on the spherical {s.Order}-spin glass: distinct minima against the field, and an annealed field against plain descent (budget `{Budgets.Name(s.Budget)}`)";

    static string Markdown(AnnealFieldResult r, string commandLine, string machine, string stem, bool withFigure)
    {
        var s = r.Settings;
        var claims = Claims(r);
        var md = new StringBuilder();
        var anneal = s.AnnealFields;
        var introduction = new List<string>
        {
            "Chaudhari & Soatto (arXiv 1511.06485, seed 000) state in their abstract that a term akin to a magnetic field, set by one scalar, takes the " +
            "spin-glass landscape from exponentially many minima to polynomially many and then to one, and AnnealSGD starts with such a field and " +
            "anneals it away. The paper's body is not available: **the protocol below is ours** (docs/annealsgd.md, \"The reproductions\").",
            $"**Glasses.** p = {s.Order}, N in {{{string.Join(", ", s.Sizes)}}}, Gaussian couplings (one draw per N, seeded), H_h(w) = L(w) − ⟨h, w⟩ on |w|² = N with " +
            $"h = strength·√N·u, u a fixed random unit vector (`ExternalField.RandomDirection`). K = {s.Starts} random starts per N, the same for every field.",
            $"**Sweep.** h = 0 and {s.Fields.Count} strengths from {F(s.Fields[0])} to {F(s.Fields[^1])}, log-spaced. At each: projected gradient descent " +
            $"(γ = {F(s.StepSize)} / max(1, h), ours: it keeps γ·h, the field's share of the curvature, at most {F(s.StepSize)}) until |projected gradient| < {F(s.GradientTolerance)} " +
            $"or {s.MaxSteps:N0} steps. Distinct minima: end points whose overlap q = ⟨w, w'⟩/N ≥ {F(s.OverlapThreshold)} count as one (`DistinctMinima`).",
            $"**Annealed protocol (ours).** From the same starts: descent to tolerance at h = {string.Join(", ", anneal.Select(v => F(v, "G3")))}, then at h = 0, " +
            $"each stage starting from the previous stage's end points, in {s.FieldDirections} field direction(s); compared with plain descent (h = 0) from the same start. " +
            "Pairs whose energies per spin differ by at most 1e-4 count as equal.",
            $"**Reference lines.** −E_0 = {F(-SpinGlassTheory.GroundStateEnergy(s.Order), "0.000000")} and −E_inf = {F(-SpinGlassTheory.EnergyBarrier(s.Order), "0.000000")} " +
            $"(Choromanska et al.'s band of low minima, for h = 0). The vertical line at h = √(p(p − 2)) = {F(s.RecalledCriticalField, "0.###")} is a **recalled, UNVERIFIED** " +
            "trivialisation threshold (the notes' B.5), drawn for orientation only.",
        };
        ReportHeader.AppendMarkdown(md, Title(s), introduction, s.Budget,
            "A smoke run: these numbers only show that every step ran; they judge nothing.", commandLine, machine);

        md.AppendLine("## Verdicts");
        md.AppendLine();
        md.AppendLine("| claim | N | numbers | verdict |");
        md.AppendLine("|---|---|---|---|");
        foreach (var c in claims)
            md.AppendLine($"| (a) distinct minima go from many to few to one as the field grows (abstract) | {c.Size} | {c.FieldFreeMinima} at h = 0 → {c.StrongestFieldMinima} at h = {F(s.Fields[^1])}" +
                          $"{(c.FirstSingleField is double h ? $"; one from h = {F(h, "G3")}{(c.StaysSingle ? " on" : ", but not at every stronger field")}" : "")}; " +
                          $"at most {c.MostMinima} at any field; rank correlation {F(c.RankCorrelation, "0.00")} | {(c.ManyToOne ? "agrees" : "does not agree")} |");
        foreach (var c in claims)
        {
            var k = c.Comparison;
            md.AppendLine($"| (b) an annealed run ends lower than plain projected descent (our question) | {c.Size} | annealed {F(k.Annealed.Mean, "0.0000")} ± {F(k.Annealed.Std, "0.0000")} vs plain {F(k.Plain.Mean, "0.0000")} ± {F(k.Plain.Std, "0.0000")}; " +
                          $"difference {F(k.Difference.Mean, "0.0000")} ± {F(c.DifferenceError, "0.0000")} (SE); lower in {F(100 * k.FractionLower, "0.#")}% of {k.Pairs} pairs, equal in {F(100 * k.FractionEqual, "0.#")}% | " +
                          $"{(c.AnnealedLower ? "**lower**" : c.AnnealedHigher ? "**higher**" : "no difference beyond 2 SE")} |");
        }
        md.AppendLine();
        md.AppendLine($"Rule for (a) (ours): more than one minimum at h = 0, one at the strongest field and at every field above the first that gives one, " +
                      $"and Spearman's rank correlation between h and the count (h = 0 included) at most {F(GlassClaims.FallingCorrelation)}: counts at weak fields may fluctuate by a few, " +
                      "since the end points of a weakly perturbed landscape can split or merge at the overlap threshold.");
        md.AppendLine("The standard error of (b) is that of the per-direction mean differences when there are several directions (pairs of one direction share its field), " +
                      "else that of the pairs. Energies: mean ± sample standard deviation over the runs.");
        md.AppendLine();
        md.AppendLine(claims.All(c => c.ManyToOne)
            ? "**(a) agrees** at every N: the count falls to a single minimum as the field grows."
            : "**(a) does not agree** at every N (see the table).");
        md.AppendLine();
        md.AppendLine(claims.All(c => c.AnnealedLower)
            ? "**(b) yes**: the annealed protocol ends lower than plain descent at every N."
            : claims.Any(c => c.AnnealedLower)
                ? "**(b) at some N only** (see the table)."
                : "**(b) no**: the annealed protocol does not end lower than plain descent by more than two standard errors.");
        md.AppendLine();
        if (withFigure)
        {
            md.AppendLine($"![distinct minima and energies against the field]({stem}.png)");
            md.AppendLine();
            md.AppendLine($"![final energies, annealed against plain]({stem}-energies.png)");
            md.AppendLine();
        }
        foreach (var g in r.Glasses)
        {
            md.AppendLine($"## N = {g.Size}");
            md.AppendLine();
            md.AppendLine("| h | γ | distinct minima | largest cluster | converged | H/N without field | H_h/N (minimised) | mean steps |");
            md.AppendLine("|---|---|---|---|---|---|---|---|");
            foreach (var p in g.Sweep)
            {
                var free = Stat.Of(p.FieldFreeEnergy);
                var with = Stat.Of(p.PerturbedEnergy);
                md.AppendLine($"| {F(p.Field, "G3")} | {F(p.StepSize, "G3")} | {p.DistinctMinima} | {p.ClusterSizes.Max()} | {F(100 * p.ConvergedFraction, "0.#")}% | " +
                              $"{F(free.Mean, "0.0000")} ± {F(free.Std, "0.0000")} | {F(with.Mean, "0.0000")} ± {F(with.Std, "0.0000")} | {F(p.Steps.Average(), "0")} |");
            }
            md.AppendLine();
            md.AppendLine("| annealed direction | distinct minima per stage (h: count) | final H/N | final distinct minima | converged | mean steps |");
            md.AppendLine("|---|---|---|---|---|---|");
            foreach (var a in g.Annealed)
            {
                var e = Stat.Of(a.FieldFreeEnergy);
                var stages = string.Join(", ", a.StageFields.Select((h, i) => $"{F(h, "G2")}: {a.StageDistinctMinima[i]}"));
                md.AppendLine($"| {a.Direction} | {stages} | {F(e.Mean, "0.0000")} ± {F(e.Std, "0.0000")} | {a.DistinctMinima} | " +
                              $"{F(100.0 * a.Converged.Count(x => x) / a.Converged.Length, "0.#")}% | {F(a.Steps.Average(), "0")} |");
            }
            md.AppendLine();
        }
        md.AppendLine($"Data: `{stem}.json` (summary), `{stem}.csv` (the sweep), `{stem}-annealed.csv` (every annealed/plain pair). " +
                      $"{r.PiecesComputed} pieces computed and {r.PiecesReused} reused by the run that wrote this report ({F(r.Seconds, "0")} s); " +
                      $"the pieces' own compute time sums to {F(r.Glasses.Sum(g => g.Sweep.Sum(p => p.Seconds) + g.Annealed.Sum(a => a.Seconds)), "0")} s.");
        return md.ToString();
    }
}
