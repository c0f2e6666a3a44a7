using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.DeepLinear;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="NoiseRankExperiment"/>: per configuration and start, rank, excess loss, distance to the
/// optimum and the first missing singular value against steps (mean ± one standard deviation over seeds), tables of
/// the final values per condition, verdicts on the abstract's two claims, CSV and JSON. Files are replaced atomically.
/// </summary>
public static class NoiseRankReport
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = "noise-rank";

    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Log-scale values are floored here (an excess loss can reach 0 or round below it at the optimum).</summary>
    public const double LogFloor = 1e-16;

    /// <summary>Final statistics of one condition in one piece, paired with the no-noise runs of the same seeds.</summary>
    /// <param name="Condition">The condition.</param>
    /// <param name="Rank">Final numerical rank over the seeds that did not diverge.</param>
    /// <param name="RelativeExcess">Final excess loss / L(0).</param>
    /// <param name="Distance">Final ||W - W*||_F.</param>
    /// <param name="NextSingularValue">Final sigma_(k+1)/sigma_max, k the rank-deficient start's rank.</param>
    /// <param name="Seeds">Seeds run.</param>
    /// <param name="Diverged">Seeds whose weights became non-finite.</param>
    /// <param name="Reached">Seeds that end within the reached fraction of the optimum.</param>
    /// <param name="MeanStepsToReach">Mean first step from which the excess stays within it, over the seeds that reach (NaN if none).</param>
    /// <param name="RankAboveNone">Seeds whose final rank is above the no-noise run's of the same seed.</param>
    /// <param name="RankBelowNone">Seeds whose final rank is below it.</param>
    /// <param name="ReachedWhereNoneDidNot">Seeds that reach the optimum while the no-noise run of the same seed does not.</param>
    public sealed record ConditionSummary(NoiseRankCondition Condition, Stat Rank, Stat RelativeExcess, Stat Distance, Stat NextSingularValue, int Seeds,
        int Diverged, int Reached, double MeanStepsToReach, int RankAboveNone, int RankBelowNone, int ReachedWhereNoneDidNot);

    /// <summary>One kind's answer to the two claims in one piece (its best scale for each).</summary>
    /// <param name="Kind">The noise kind.</param>
    /// <param name="RankAboveNone">Most seeds, over the kind's scales, whose final rank is above the no-noise run's.</param>
    /// <param name="RankScale">The scale that gives it.</param>
    /// <param name="Reached">Most seeds, over the scales, that reach the optimum.</param>
    /// <param name="ReachedScale">The scale that gives it.</param>
    /// <param name="NoneReached">Seeds that reach it without noise.</param>
    /// <param name="Seeds">Seeds per condition.</param>
    /// <param name="AllDiverged">Every run of the kind, or every no-noise run, diverged: nothing to compare.</param>
    public sealed record KindClaims(NoiseRankKind Kind, int RankAboveNone, double RankScale, int Reached, double ReachedScale, int NoneReached, int Seeds,
        bool AllDiverged = false)
    {
        /// <summary>"raises" (every seed at some scale), "partly" (some seeds) or "does not raise" ("not testable" when everything diverged).</summary>
        public string RankVerdict => AllDiverged ? NotTestable : RankAboveNone == Seeds ? "raises" : RankAboveNone > 0 ? "partly" : "does not raise";

        /// <summary>"helps" (reaches in more seeds than no noise), "no need" (no noise reaches in every seed too) or "does not help".</summary>
        public string OptimumVerdict => AllDiverged ? NotTestable : NoneReached == Seeds ? (Reached == Seeds ? "no need (both reach)" : "no need (noise reaches less often)")
            : Reached > NoneReached ? (Reached == Seeds ? "helps" : "partly helps") : "does not help";

        /// <summary>The verdict when every run diverged.</summary>
        public const string NotTestable = "not testable (diverged)";
    }

    /// <summary>The statistics of every condition of <paramref name="piece"/>.</summary>
    public static IReadOnlyList<ConditionSummary> Summaries(NoiseRankSettings s, NoiseRankPiece piece)
    {
        var none = piece.Of(new NoiseRankCondition(NoiseRankKind.None, 0));
        return s.Conditions.Select(c =>
        {
            var runs = piece.Of(c);
            var alive = runs.Where(r => r.Rank[^1] >= 0).ToList();
            var pairs = runs.Zip(none).Where(p => p.First.Rank[^1] >= 0 && p.Second.Rank[^1] >= 0).ToList();
            var reachedSteps = runs.Select(r => r.ReachedFrom(s.ReachedFraction)).Where(i => i is not null).Select(i => (double)piece.LogSteps[i!.Value]).ToList();
            return new ConditionSummary(c,
                StatOf(alive.Select(r => (double)r.Rank[^1])),
                StatOf(alive.Select(r => r.ExcessLoss[^1] / r.ZeroLoss)),
                StatOf(alive.Select(r => r.Distance[^1])),
                StatOf(alive.Select(r => r.RelativeSingularValue(piece.InitRank)[^1]).Where(double.IsFinite)),
                runs.Count, runs.Count - alive.Count, runs.Count(r => r.Reached(s.ReachedFraction)),
                reachedSteps.Count > 0 ? reachedSteps.Average() : double.NaN,
                pairs.Count(p => p.First.Rank[^1] > p.Second.Rank[^1]), pairs.Count(p => p.First.Rank[^1] < p.Second.Rank[^1]),
                runs.Zip(none).Count(p => p.First.Reached(s.ReachedFraction) && !p.Second.Reached(s.ReachedFraction)));
        }).ToList();
    }

    static Stat StatOf(IEnumerable<double> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? new Stat(double.NaN, double.NaN, 0) : Stat.Of(list);
    }

    /// <summary>Each noise kind's claims in one piece.</summary>
    public static IReadOnlyList<KindClaims> Claims(NoiseRankSettings s, NoiseRankPiece piece)
    {
        var summaries = Summaries(s, piece);
        var none = summaries[0];
        return NoiseRankSettings.Kinds.Skip(1).Select(k =>
        {
            var ofKind = summaries.Where(x => x.Condition.Kind == k).ToList();
            var bestRank = ofKind.OrderByDescending(x => x.RankAboveNone).ThenBy(x => x.RankBelowNone).First();
            var bestReach = ofKind.OrderByDescending(x => x.Reached).ThenBy(x => x.MeanStepsToReach).First();
            var allDiverged = none.Diverged == none.Seeds || ofKind.All(x => x.Diverged == x.Seeds);
            return new KindClaims(k, bestRank.RankAboveNone, bestRank.Condition.Scale, bestReach.Reached, bestReach.Condition.Scale, none.Reached, none.Seeds, allDiverged);
        }).ToList();
    }

    static string F(double value, string format = "G3") => double.IsFinite(value) ? value.ToString(format, C) : "n/a";

    static string PieceName(NoiseRankPiece p) => $"L = {p.Depth}, width {p.Width}, d_0 = d_L = {p.Dims}, {NoiseRankSettings.StartName(p.Start)} start";

    static string PieceStem(NoiseRankPiece p) => $"L{p.Depth}-w{p.Width}-{NoiseRankSettings.StartName(p.Start)}";

    /// <summary>The verdict of claim (1) over the rank-deficient pieces: agrees (every kind raises the rank in every piece), partly, or disagrees.</summary>
    static string OverallRank(IEnumerable<IReadOnlyList<KindClaims>> claims)
    {
        var all = claims.SelectMany(c => c).ToList();
        if (all.All(c => c.AllDiverged)) return KindClaims.NotTestable;
        all = all.Where(c => !c.AllDiverged).ToList();
        return all.All(c => c.RankVerdict == "raises") ? "agrees" : all.Any(c => c.RankVerdict != "does not raise") ? "partly" : "disagrees";
    }

    static string OverallOptimum(IEnumerable<IReadOnlyList<KindClaims>> claims)
    {
        var all = claims.SelectMany(c => c).ToList();
        if (all.All(c => c.AllDiverged)) return KindClaims.NotTestable;
        all = all.Where(c => !c.AllDiverged).ToList();
        if (all.All(c => c.NoneReached == c.Seeds)) return "not testable (gradient descent without noise already reaches the optimum)";
        return all.All(c => c.OptimumVerdict == "helps") ? "agrees" : all.Any(c => c.OptimumVerdict is "helps" or "partly helps") ? "partly" : "disagrees";
    }

    /// <summary>Console lines: one per kind and rank-deficient piece, then the overall verdicts.</summary>
    public static IEnumerable<string> Verdicts(NoiseRankResult r)
    {
        var s = r.Settings;
        var deficient = r.Pieces.Where(p => p.Start == NoiseRankStart.RankDeficient).ToList();
        foreach (var p in r.Pieces)
        {
            var none = Summaries(s, p)[0];
            yield return $"{PieceName(p)}: no noise ends at rank {F(none.Rank.Mean, "0.##")} (target rank {s.TargetRank}, start rank {(p.Start == NoiseRankStart.RankDeficient ? p.InitRank : Math.Min(p.Width, p.Dims))}), " +
                         $"reaches the optimum in {none.Reached}/{none.Seeds} seeds";
            foreach (var c in Claims(s, p))
                yield return $"  {NoiseRankSettings.KindName(c.Kind)}: rank above no-noise in {c.RankAboveNone}/{c.Seeds} seeds (scale {F(c.RankScale)}): {c.RankVerdict}; " +
                             $"reaches the optimum in {c.Reached}/{c.Seeds} (scale {F(c.ReachedScale)}): {c.OptimumVerdict}";
        }
        var claims = deficient.Select(p => Claims(s, p)).ToList();
        yield return $"(1) noise raises the rank of the product (rank-deficient start): {OverallRank(claims)}";
        yield return $"(2) noise helps reach the global optimum (rank-deficient start): {OverallOptimum(claims)}";
    }

    /// <summary>The files <see cref="Write"/> writes for <paramref name="r"/> (without figures when they cannot be drawn).</summary>
    public static IReadOnlyList<string> Files(NoiseRankResult r, string stem, bool withFigures = true)
    {
        var files = new List<string> { $"{stem}.md", $"{stem}.json", $"{stem}.csv", $"{stem}-spectra.csv" };
        if (withFigures)
            foreach (var p in r.Pieces) files.AddRange([$"{stem}-{PieceStem(p)}.png", $"{stem}-{PieceStem(p)}.svg"]);
        return files;
    }

    /// <summary>Writes the report and returns its JSON summary as one line.</summary>
    /// <exception cref="ArgumentException">An interrupted result.</exception>
    public static string Write(NoiseRankResult r, string commandLine, string machine, string outDir, string stem, Action<string>? warning = null)
    {
        if (r.Interrupted || r.Pieces.Count != 2 * r.Settings.Configurations.Count)
            throw new ArgumentException("an interrupted noise-rank run has no report; run the same command again to finish it", nameof(r));
        Directory.CreateDirectory(outDir);
        var withFigures = PlotFonts.TryEnsureAvailable(out var missing);
        if (!withFigures) warning?.Invoke($"the report's figures were not drawn (its text and data were written): {missing}");
        if (withFigures)
        {
            foreach (var p in r.Pieces)
            {
                var figure = PieceFigure(r.Settings, p);
                figure.SavePng(Path.Combine(outDir, $"{stem}-{PieceStem(p)}.png"));
                figure.SaveSvg(Path.Combine(outDir, $"{stem}-{PieceStem(p)}.svg"));
            }
        }
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}.csv"), TrajectoryColumns(r));
        SeriesCsv.WriteColumns(Path.Combine(outDir, $"{stem}-spectra.csv"), SpectrumColumns(r));
        var summary = Summary(r, commandLine, machine, Files(r, stem, withFigures));
        var text = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.json"), text + "\n");
        AtomicFile.WriteAllText(Path.Combine(outDir, $"{stem}.md"), Markdown(r, commandLine, machine, stem, withFigures));
        return text;
    }

    // ---- figures -----------------------------------------------------------------------------------------------

    /// <summary>The conditions drawn: none, and each kind at its largest scale.</summary>
    static IReadOnlyList<NoiseRankCondition> Plotted(NoiseRankSettings s) =>
        NoiseRankSettings.Kinds.Select(k => new NoiseRankCondition(k, s.ScalesOf(k).Max())).ToList();

    static double Log(double v) => Math.Log10(Math.Max(v, LogFloor));

    /// <summary>Mean and mean ± std of one quantity over the seeds at each log step (diverged runs left out).</summary>
    static IEnumerable<LineSeries> Band(string name, double[] x, IReadOnlyList<double[]> perSeed, int color)
    {
        var mean = new double[x.Length];
        var lower = new double[x.Length];
        var upper = new double[x.Length];
        for (var t = 0; t < x.Length; t++)
        {
            var values = perSeed.Select(v => v[t]).Where(double.IsFinite).ToList();
            var stat = values.Count == 0 ? new Stat(double.NaN, double.NaN, 0) : Stat.Of(values);
            var sd = double.IsFinite(stat.Std) ? stat.Std : 0;
            mean[t] = stat.Mean;
            lower[t] = stat.Mean - sd;
            upper[t] = stat.Mean + sd;
        }
        var keep = Enumerable.Range(0, x.Length).Where(t => double.IsFinite(mean[t])).ToArray();
        if (keep.Length == 0) yield break;
        double[] Pick(double[] v) => keep.Select(t => v[t]).ToArray();
        var xs = Pick(x);
        yield return new LineSeries(name, xs, Pick(mean)) { ColorIndex = color };
        yield return new LineSeries("", xs, Pick(lower)) { ColorIndex = color, Dashed = true };
        yield return new LineSeries("", xs, Pick(upper)) { ColorIndex = color, Dashed = true };
    }

    static Figure PieceFigure(NoiseRankSettings s, NoiseRankPiece p)
    {
        var x = p.LogSteps.Select(t => (double)t).ToArray();
        var rank = new List<LineSeries>();
        var excess = new List<LineSeries>();
        var distance = new List<LineSeries>();
        var next = new List<LineSeries>();
        var color = 0;
        foreach (var c in Plotted(s))
        {
            var runs = p.Of(c).ToList();
            rank.AddRange(Band(c.Name, x, runs.Select(r => r.Rank.Select(v => v < 0 ? double.NaN : v).ToArray()).ToList(), color));
            excess.AddRange(Band(c.Name, x, runs.Select(r => r.ExcessLoss.Select(v => double.IsFinite(v) ? Log(v / r.ZeroLoss) : double.NaN).ToArray()).ToList(), color));
            distance.AddRange(Band(c.Name, x, runs.Select(r => r.Distance.Select(v => double.IsFinite(v) ? Log(v) : double.NaN).ToArray()).ToList(), color));
            next.AddRange(Band(c.Name, x, runs.Select(r => r.RelativeSingularValue(p.InitRank).Select(v => double.IsFinite(v) ? Log(v) : double.NaN).ToArray()).ToList(), color));
            color++;
        }
        var panels = new List<LinePanel>
        {
            new("numerical rank of W_L...W_1", rank) { Title = $"Rank of the product (target rank {s.TargetRank}, narrowest width {Math.Min(p.Width, p.Dims)}, start rank {(p.Start == NoiseRankStart.RankDeficient ? p.InitRank.ToString(C) : "full")})", Legend = LegendCorner.LowerRight },
            new("log10 excess loss / L(0)", excess) { Title = "Excess loss over the global optimum", Legend = LegendCorner.LowerLeft },
            new("log10 ||W - W*||_F", distance) { Title = "Distance to the global optimum", Legend = LegendCorner.LowerLeft },
            new($"log10 σ_{p.InitRank + 1}/σ_max", next) { Title = $"The first singular value the rank-{p.InitRank} start lacks (rank tolerance ≈ {F(Math.Log10(ProductSpectrum.Tolerance(1, p.Dims, p.Dims)), "0.0")})", Legend = LegendCorner.LowerRight },
        };
        return LinePlot.Stacked(panels, "gradient-descent step", new LinePlotOptions
        {
            Title = $"L = {p.Depth}, width {p.Width}, {NoiseRankSettings.StartName(p.Start)} start: mean of {s.Seeds} seeds, ± 1 std dashed",
            Width = 1100,
            Height = 1500,
        });
    }

    // ---- tables ------------------------------------------------------------------------------------------------

    static List<CsvColumn> TrajectoryColumns(NoiseRankResult r)
    {
        var rows = new List<(NoiseRankPiece P, NoiseRankCondition C, int T, Stat Rank, Stat Excess, Stat Distance, Stat Next)>();
        foreach (var p in r.Pieces)
            foreach (var c in r.Settings.Conditions)
            {
                var runs = p.Of(c);
                for (var i = 0; i < p.LogSteps.Length; i++)
                {
                    var alive = runs.Where(x => x.Rank[i] >= 0).ToList();
                    rows.Add((p, c, p.LogSteps[i], StatOf(alive.Select(x => (double)x.Rank[i])), StatOf(alive.Select(x => x.ExcessLoss[i] / x.ZeroLoss)),
                        StatOf(alive.Select(x => x.Distance[i])), StatOf(alive.Select(x => x.RelativeSingularValue(p.InitRank)[i]).Where(double.IsFinite))));
                }
            }
        return
        [
            new CsvColumn("depth", rows.Select(x => (double)x.P.Depth).ToArray()),
            new CsvColumn("width", rows.Select(x => (double)x.P.Width).ToArray()),
            new CsvColumn("rank_deficient_start", rows.Select(x => x.P.Start == NoiseRankStart.RankDeficient ? 1.0 : 0.0).ToArray()),
            new CsvColumn("noise_kind", rows.Select(x => (double)(int)x.C.Kind).ToArray()),
            new CsvColumn("noise_scale", rows.Select(x => x.C.Scale).ToArray()),
            new CsvColumn("step", rows.Select(x => (double)x.T).ToArray()),
            new CsvColumn("rank_mean", rows.Select(x => x.Rank.Mean).ToArray()),
            new CsvColumn("rank_std", rows.Select(x => x.Rank.Std).ToArray()),
            new CsvColumn("relative_excess_loss_mean", rows.Select(x => x.Excess.Mean).ToArray()),
            new CsvColumn("relative_excess_loss_std", rows.Select(x => x.Excess.Std).ToArray()),
            new CsvColumn("distance_mean", rows.Select(x => x.Distance.Mean).ToArray()),
            new CsvColumn("distance_std", rows.Select(x => x.Distance.Std).ToArray()),
            new CsvColumn("next_singular_value_mean", rows.Select(x => x.Next.Mean).ToArray()),
        ];
    }

    static List<CsvColumn> SpectrumColumns(NoiseRankResult r)
    {
        var rows = new List<(NoiseRankPiece P, NoiseRankRun Run, int I, double Sigma)>();
        foreach (var p in r.Pieces)
            foreach (var run in p.Runs)
                for (var i = 0; i < run.Spectrum[^1].Length; i++) rows.Add((p, run, i + 1, run.Spectrum[^1][i]));
        return
        [
            new CsvColumn("depth", rows.Select(x => (double)x.P.Depth).ToArray()),
            new CsvColumn("width", rows.Select(x => (double)x.P.Width).ToArray()),
            new CsvColumn("rank_deficient_start", rows.Select(x => x.P.Start == NoiseRankStart.RankDeficient ? 1.0 : 0.0).ToArray()),
            new CsvColumn("noise_kind", rows.Select(x => (double)(int)x.Run.Kind).ToArray()),
            new CsvColumn("noise_scale", rows.Select(x => x.Run.Scale).ToArray()),
            new CsvColumn("seed", rows.Select(x => (double)x.Run.Seed).ToArray()),
            new CsvColumn("index", rows.Select(x => (double)x.I).ToArray()),
            new CsvColumn("final_singular_value", rows.Select(x => x.Sigma).ToArray()),
        ];
    }

    // ---- JSON --------------------------------------------------------------------------------------------------

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static JsonObject StatJson(Stat s) => new() { ["mean"] = Number(s.Mean), ["std"] = Number(s.Std), ["count"] = s.Count };

    static JsonArray Array(IEnumerable<double> values) => new(values.Select(Number).ToArray());

    static JsonObject Summary(NoiseRankResult r, string commandLine, string machine, IReadOnlyList<string> files)
    {
        var s = r.Settings;
        var json = ReportHeader.Json(Budgets.ReportStem(Name, s.Budget), Title(s), s.Budget, commandLine, machine);
        json["experiment"] = Name;
        json["files"] = new JsonArray(files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
        json["settings"] = new JsonObject
        {
            ["depths"] = Array(s.Depths.Select(d => (double)d)),
            ["widths"] = Array(s.Widths.Select(w => (double)w)),
            ["dims"] = s.Dims,
            ["target_rank"] = s.TargetRank,
            ["teacher_singular_values"] = Array(s.TeacherSpectrum),
            ["init_rank"] = s.InitRank,
            ["init_scale"] = s.InitScale,
            ["samples"] = s.Samples,
            ["inputs"] = s.Inputs.ToString(),
            ["steps"] = s.Steps,
            ["log_every"] = s.LogEvery,
            ["learning_rate"] = s.LearningRate,
            ["seeds"] = s.Seeds,
            ["first_seed"] = s.FirstSeed,
            ["schedule"] = s.Schedule.ToString(),
            ["gamma"] = s.Gamma,
            ["half_life"] = s.HalfLife,
            ["scales"] = new JsonObject(NoiseRankSettings.Kinds.Skip(1).Select(k => KeyValuePair.Create(NoiseRankSettings.KindName(k), (JsonNode?)Array(s.ScalesOf(k))))),
            ["reached_fraction"] = s.ReachedFraction,
            ["rank_tolerance"] = "max(m, n) * sigma_max * 2^-23",
            ["dtype"] = s.Dtype.ToString(),
        };
        var pieces = new JsonArray();
        foreach (var p in r.Pieces)
        {
            var conditions = new JsonArray();
            foreach (var c in Summaries(s, p))
                conditions.Add(new JsonObject
                {
                    ["kind"] = NoiseRankSettings.KindName(c.Condition.Kind),
                    ["scale"] = c.Condition.Scale,
                    ["final_rank"] = StatJson(c.Rank),
                    ["final_relative_excess_loss"] = StatJson(c.RelativeExcess),
                    ["final_distance"] = StatJson(c.Distance),
                    ["final_next_singular_value"] = StatJson(c.NextSingularValue),
                    ["seeds"] = c.Seeds,
                    ["diverged"] = c.Diverged,
                    ["reached_optimum"] = c.Reached,
                    ["mean_steps_to_reach"] = Number(c.MeanStepsToReach),
                    ["rank_above_no_noise"] = c.RankAboveNone,
                    ["rank_below_no_noise"] = c.RankBelowNone,
                    ["reached_where_no_noise_did_not"] = c.ReachedWhereNoneDidNot,
                });
            var claims = new JsonArray();
            foreach (var c in Claims(s, p))
                claims.Add(new JsonObject
                {
                    ["kind"] = NoiseRankSettings.KindName(c.Kind),
                    ["rank_above_no_noise"] = c.RankAboveNone,
                    ["rank_scale"] = c.RankScale,
                    ["rank_verdict"] = c.RankVerdict,
                    ["reached"] = c.Reached,
                    ["reached_scale"] = c.ReachedScale,
                    ["no_noise_reached"] = c.NoneReached,
                    ["optimum_verdict"] = c.OptimumVerdict,
                });
            pieces.Add(new JsonObject
            {
                ["depth"] = p.Depth,
                ["width"] = p.Width,
                ["dims"] = p.Dims,
                ["start"] = NoiseRankSettings.StartName(p.Start),
                ["init_rank"] = p.InitRank,
                ["optimal_loss"] = StatJson(Stat.Of(p.Runs.Select(x => x.OptimalLoss).ToList())),
                ["zero_loss"] = StatJson(Stat.Of(p.Runs.Select(x => x.ZeroLoss).ToList())),
                ["conditions"] = conditions,
                ["claims"] = claims,
                ["seconds"] = p.Seconds,
            });
        }
        json["pieces"] = pieces;
        var deficient = r.Pieces.Where(p => p.Start == NoiseRankStart.RankDeficient).Select(p => Claims(s, p)).ToList();
        json["claims"] = new JsonObject
        {
            ["noise_raises_rank"] = OverallRank(deficient),
            ["noise_helps_reach_optimum"] = OverallOptimum(deficient),
        };
        json["pieces_computed"] = r.PiecesComputed;
        json["pieces_reused"] = r.PiecesReused;
        json["seconds"] = r.Seconds;
        return json;
    }

    // ---- Markdown ----------------------------------------------------------------------------------------------

    static string Title(NoiseRankSettings s) =>
        $"Noise and the rank of the weight product in deep linear networks (arXiv 1807.08140; budget `{Budgets.Name(s.Budget)}`)";

    static string Markdown(NoiseRankResult r, string commandLine, string machine, string stem, bool withFigures)
    {
        var s = r.Settings;
        var md = new StringBuilder();
        var intro = new List<string>
        {
            "Sankar, Srinivasan & Balasubramanian (arXiv 1807.08140) state in their abstract that noise added to the gradient, to the architecture or to " +
            "the input/output raises the rank of the product W_L⋯W_1 of a deep linear network, and that this helps reach a global optimum. Only the abstract " +
            "is available: **the protocol below is ours** (docs/seed-004.md, noise-rank).",
            $"**Problem.** Teacher A = U S V^T, {s.TargetRank} singular values equally spaced from {F(s.LargestSingularValue)} to {F(s.SmallestSingularValue)}, Haar U and V; " +
            $"N = {s.Samples} {(s.Inputs == InputDistribution.Whitened ? "whitened inputs (X X^T/N = I exactly)" : "Gaussian inputs")}; loss L(W) = 1/(2N)‖W X − A X‖²_F = ½ tr((W − A) Σ (W − A)^T). " +
            "The global optimum W* is A when the narrowest width is at least rank(A), else the best rank-k fit (Eckart–Young on A Σ^½). " +
            $"Full-batch gradient descent, lr {F(s.LearningRate)}, {s.Steps:N0} steps, {(s.Dtype == TorchSharp.torch.ScalarType.Float64 ? "float64" : "float32")}.",
            $"**Starts.** *Standard*: LeCun normal (N(0, {F(s.InitScale)}²/fan_in)). *Rank-deficient*: the same weights with every hidden layer's activity confined to a random " +
            "k-dimensional subspace (W_l ← P_l W_l P_(l−1)); exact gradient descent keeps it there, so the product keeps rank ≤ k (a saddle when k < rank(A)); input and output " +
            "noise keep the subspace too, gradient noise and multiplicative noise (on non-aligned subspaces) break it.",
            $"**Noise** (one kind per run, fresh every step, training only; scales are σ_0, annealed as {s.ScheduleOf(1).Kind}{(s.Schedule == AnnealingKind.InverseTimePower ? $": σ_t² = σ_0²/(1+t)^{F(s.Gamma)} (Neelakantan et al.)" : s.Schedule == AnnealingKind.Exponential ? $": σ_t = σ_0·2^(−t/{F(s.HalfLife)})" : "")}): " +
            $"gradient (+N(0, σ²) on every gradient entry) {string.Join(", ", s.GradientScales.Select(v => F(v)))}; " +
            $"weights (W ⊙ N(1, s²) in the forward pass, the default architecture noise) {string.Join(", ", s.WeightScales.Select(v => F(v)))}; " +
            $"activations (h_l ⊙ N(1, s²) on hidden layers) {string.Join(", ", s.ActivationScales.Select(v => F(v)))}; " +
            $"inputs (x + N(0, σ²)) {string.Join(", ", s.InputScales.Select(v => F(v)))}; outputs (A x + N(0, σ²)) {string.Join(", ", s.OutputScales.Select(v => F(v)))}.",
            $"**Measurements** (clean network and data, every {s.LogEvery} steps): L(W), excess loss L(W) − L(W*), ‖W − W*‖_F, the product's numerical rank " +
            "(#σ_i > max(m, n)·σ_max·2^−23, NumPy's `matrix_rank` with float32 epsilon), its whole spectrum, each layer's rank. " +
            $"A run *reaches the optimum* when its final excess loss is at most {F(s.ReachedFraction)}·L(0) (ours). {s.Seeds} seeds (teacher, data and start per seed, shared by every condition, so runs pair by seed).",
        };
        ReportHeader.AppendMarkdown(md, Title(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", commandLine, machine);

        var deficient = r.Pieces.Where(p => p.Start == NoiseRankStart.RankDeficient).ToList();
        var claims = deficient.Select(p => Claims(s, p)).ToList();
        md.AppendLine("## Verdicts");
        md.AppendLine();
        md.AppendLine($"- **(1) Noise raises the rank of the product** (from the rank-deficient start): **{OverallRank(claims)}**.");
        md.AppendLine($"- **(2) Noise helps reach the global optimum** (from the rank-deficient start): **{OverallOptimum(claims)}**.");
        md.AppendLine();
        md.AppendLine("Per kind (best scale of each kind; seeds paired with the no-noise run of the same seed):");
        md.AppendLine();
        md.AppendLine("| configuration | start | kind | rank above no-noise | (1) | reach optimum (no noise) | (2) |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var p in r.Pieces)
            foreach (var c in Claims(s, p))
                md.AppendLine($"| L = {p.Depth}, width {p.Width} | {NoiseRankSettings.StartName(p.Start)} | {NoiseRankSettings.KindName(c.Kind)} | {c.RankAboveNone}/{c.Seeds} (σ_0 {F(c.RankScale)}) | {c.RankVerdict} | " +
                              $"{c.Reached}/{c.Seeds} at σ_0 {F(c.ReachedScale)} ({c.NoneReached}/{c.Seeds}) | {c.OptimumVerdict} |");
        md.AppendLine();
        md.AppendLine("Rules (ours): a kind *raises* the rank when, at some scale, every seed ends with a higher numerical rank than the no-noise run of the same seed " +
                      "(*partly*: some seeds); it *helps* when it reaches the optimum in more seeds than no noise does, in every seed for *helps*. Claim (1) *agrees* when every kind raises " +
                      "the rank in every rank-deficient configuration, *partly* when some do; likewise (2).");
        md.AppendLine();
        foreach (var p in r.Pieces)
        {
            md.AppendLine($"## {PieceName(p)}");
            md.AppendLine();
            var zero = Stat.Of(p.Runs.Select(x => x.ZeroLoss).ToList());
            var optimal = Stat.Of(p.Runs.Select(x => x.OptimalLoss).ToList());
            md.AppendLine($"Start rank {(p.Start == NoiseRankStart.RankDeficient ? p.InitRank.ToString(C) : "full")}; L(0) = {F(zero.Mean, "0.###")}, L(W*) = {F(optimal.Mean, "G3")}; " +
                          $"a rank-{p.InitRank} product is at least {F((BestRankFloor(s, p.InitRank) - optimal.Mean) / zero.Mean, "0.###")}·L(0) above the optimum (Eckart–Young, whitened inputs). {F(p.Seconds, "0.0")} s.");
            md.AppendLine();
            md.AppendLine($"| condition | final rank | final excess / L(0) | final ‖W − W*‖_F | final σ_{p.InitRank + 1}/σ_max | reached | mean steps to reach | rank > / < no-noise | reached where no-noise did not | diverged |");
            md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
            foreach (var c in Summaries(s, p))
                md.AppendLine($"| {c.Condition.Name} | {F(c.Rank.Mean, "0.##")} ± {F(c.Rank.Std, "0.##")} | {F(c.RelativeExcess.Mean)} ± {F(c.RelativeExcess.Std)} | {F(c.Distance.Mean)} ± {F(c.Distance.Std)} | " +
                              $"{F(c.NextSingularValue.Mean)} | {c.Reached}/{c.Seeds} | {F(c.MeanStepsToReach, "0")} | {c.RankAboveNone} / {c.RankBelowNone} | {c.ReachedWhereNoneDidNot} | {c.Diverged} |");
            md.AppendLine();
            if (withFigures)
            {
                md.AppendLine($"![rank, excess loss, distance and the first missing singular value against steps: {PieceName(p)}]({stem}-{PieceStem(p)}.png)");
                md.AppendLine();
            }
        }
        md.AppendLine($"Mean ± sample standard deviation over seeds; the figures draw the mean and, dashed, mean ± one standard deviation (of log10 values on the log panels, floored at {LogFloor:G1}). " +
                      $"Data: `{stem}.json` (summary), `{stem}.csv` (every condition's mean and std at every logged step), `{stem}-spectra.csv` (every run's final singular values). " +
                      $"{r.PiecesComputed} pieces computed and {r.PiecesReused} reused by the run that wrote this report ({F(r.Seconds, "0")} s); the pieces' own compute time sums to " +
                      $"{F(r.Pieces.Sum(p => p.Seconds), "0")} s.");
        return md.ToString();
    }

    /// <summary>1/2 sum_(i &gt; k) s_i^2 of the teacher: the excess of the best rank-k product with whitened inputs.</summary>
    static double BestRankFloor(NoiseRankSettings s, int k) => 0.5 * s.TeacherSpectrum.Skip(k).Sum(v => v * v);
}
