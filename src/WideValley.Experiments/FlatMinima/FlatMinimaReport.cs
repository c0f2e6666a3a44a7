using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>One flatness column of the report: the value's name in the flatness report, a label, and which way is flatter.</summary>
/// <param name="Key">The column's key in JSON and CSV.</param>
/// <param name="Label">The column's heading.</param>
/// <param name="HigherIsFlatter">sigma' and local entropy: higher is flatter; the curvatures and sharpness: lower.</param>
public sealed record FlatMinimaMeasureColumn(string Key, string Label, bool HigherIsFlatter)
{
    /// <summary>The value of this column in a model's measurements (local entropy: the first, widest-scope, direct estimate).</summary>
    public double? Of(FlatMinimaFlatness? flatness)
    {
        if (flatness is null) return null;
        if (Key == "local_entropy")
        {
            var scope = FlatMinimaExperiment.FlatnessBudget.Scopes[0].ToString("G6", CultureInfo.InvariantCulture);
            return flatness.Values.TryGetValue($"local_entropy_direct_gamma_{scope}", out var le) ? le : null;
        }
        return flatness.Values.TryGetValue(Key, out var v) ? v : null;
    }
}

/// <summary>
/// The report of <see cref="FlatMinimaExperiment"/>: per network, the search table, the final table (test error mean ±
/// std per arm, the difference to each baseline in standard errors with a verdict, effective epochs to reach SGD's
/// final error, wall time per effective epoch, the flatness measures), a plot of test error against effective epochs,
/// and a scatter of each flatness measure against the generalisation gap with Spearman's rank correlation. Markdown,
/// a JSON twin, CSV files and PNG/SVG figures; no path of the machine that made it.
/// </summary>
public static class FlatMinimaReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The flatness columns, in report order.</summary>
    public static IReadOnlyList<FlatMinimaMeasureColumn> MeasureColumns { get; } =
    [
        new("lambda_max", "λ_max", false),
        new("hessian_trace", "trace", false),
        new("epsilon_sharpness", "ε-sharpness", false),
        new("pac_bayes_sigma", "PAC-Bayes σ'", true),
        new("local_entropy", "local entropy", true),
    ];

    /// <summary>The generalisation gap the measures are correlated with: test minus training loss on the flatness evaluation set.</summary>
    public const string GapKey = "loss_gap";

    /// <summary>File name stem: flat-minima[-BUDGET].</summary>
    public static string Stem(FlatMinimaSettings s) => Budgets.ReportStem(FlatMinimaDesign.Name, s.Budget);

    /// <summary>One arm's row of a network's final table.</summary>
    /// <param name="Arm">The arm.</param>
    /// <param name="Title">Its name on this network.</param>
    /// <param name="Chosen">The chosen candidate, or null while the search is pending.</param>
    /// <param name="Scores">Final test error (perplexity) of each finished seed.</param>
    /// <param name="VersusSgd">Against SGD.</param>
    /// <param name="VersusAdam">Against Adam.</param>
    /// <param name="ReachSgd">Effective epochs (at cost) at which the arm's mean curve first reached SGD's final mean; null never.</param>
    /// <param name="SecondsPerEffectiveEpoch">Mean wall time per effective epoch (training and the evaluations, all arms on the same grid).</param>
    /// <param name="Measures">Mean of each flatness column over the measured seeds.</param>
    /// <param name="NotApplicable">"not applicable (defined for ...)" when the arm does not run on this network (then every other cell is empty); null when it does.</param>
    public sealed record ArmRow(FlatMinimaArm Arm, string Title, FlatMinimaCandidate? Chosen, IReadOnlyList<double> Scores, FlatMinimaVerdict? VersusSgd,
        FlatMinimaVerdict? VersusAdam, double? ReachSgd, double? SecondsPerEffectiveEpoch, IReadOnlyDictionary<string, double?> Measures, string? NotApplicable = null);

    /// <summary>A flatness measure's rank correlation with the generalisation gap over a network's measured runs.</summary>
    public sealed record Correlation(FlatMinimaMeasureColumn Measure, int Runs, double Spearman);

    /// <summary>A run's test curve: (effective epochs at cost, test error or perplexity) at every evaluation, in order.</summary>
    public static IReadOnlyList<(double X, double Y)> Curve(FlatMinimaRunResult run)
    {
        if (run.Result is null) return [];
        var factor = FlatMinimaDesign.CostPerCountedGradient(run.Run.Config);
        var lm = run.Run.Network.IsLanguageModel;
        return run.Result.History
            .Select(m => (X: m.EffectiveEpochs * factor, Y: lm ? m.TestPerplexity : m.TestError))
            .Where(p => p.Y is double y && double.IsFinite(y))
            .OrderBy(p => p.X)
            .Select(p => (p.X, p.Y!.Value))
            .ToList();
    }

    /// <summary>The final table of a network: a row per arm asked for, a not-applicable one where the arm does not run.</summary>
    public static IReadOnlyList<ArmRow> Rows(FlatMinimaSettings s, FlatMinimaNetworkResult network)
    {
        var judge = s.Budget != Budget.Smoke;
        List<double> Scores(string arm) => network.Runs.Where(r => r.Run.Arm.Key == arm && r.TestScore is double).Select(r => r.TestScore!.Value).ToList();
        var sgd = Scores("sgd");
        var adam = Scores("adam");
        double? sgdFinal = sgd.Count > 0 ? sgd.Average() : null;
        var rows = new List<ArmRow>();
        foreach (var arm in s.ArmList)
        {
            if (FlatMinimaDesign.NotApplicable(arm, network.Network) is { } notApplicable)
            {
                rows.Add(new ArmRow(arm, FlatMinimaDesign.Title(arm, network.Network), null, [], null, null, null, null,
                    MeasureColumns.ToDictionary(m => m.Key, _ => (double?)null), notApplicable));
                continue;
            }
            var mine = network.Runs.Where(r => r.Run.Arm == arm).ToList();
            var scores = Scores(arm.Key);
            var finished = mine.Where(r => r.Result is { Diverged: false }).ToList();
            var (x, y) = FlatMinimaStatistics.MeanCurve(finished.Select(Curve).ToList());
            var perEpoch = finished.Where(r => r.CostEffectiveEpochs > 0).Select(r => r.Result!.TotalSeconds / r.CostEffectiveEpochs!.Value).ToList();
            var measures = MeasureColumns.ToDictionary(m => m.Key, m =>
            {
                var values = finished.Select(r => m.Of(r.Flatness)).Where(v => v is double d && double.IsFinite(d)).Select(v => v!.Value).ToList();
                return values.Count > 0 ? values.Average() : (double?)null;
            });
            var chosen = mine.Count > 0 ? FlatMinimaDesign.Grid(arm, network.Network)[mine[0].Run.Chosen] : null;
            rows.Add(new ArmRow(arm, FlatMinimaDesign.Title(arm, network.Network), chosen, scores,
                arm.Key == "sgd" || sgd.Count == 0 || scores.Count == 0 ? null : FlatMinimaStatistics.Compare(scores, sgd, judge),
                arm.Key == "adam" || adam.Count == 0 || scores.Count == 0 ? null : FlatMinimaStatistics.Compare(scores, adam, judge),
                sgdFinal is double target ? FlatMinimaStatistics.FirstReach(x, y, target) : null,
                perEpoch.Count > 0 ? perEpoch.Average() : null, measures));
        }
        return rows;
    }

    /// <summary>Each measure's Spearman correlation with the loss gap over a network's measured final runs.</summary>
    public static IReadOnlyList<Correlation> Correlations(FlatMinimaNetworkResult network)
    {
        var measured = network.Runs.Where(r => r.Flatness is not null).ToList();
        return MeasureColumns.Select(m =>
        {
            var pairs = measured.Select(r => (X: m.Of(r.Flatness) ?? double.NaN, Y: r.Flatness!.Values.TryGetValue(GapKey, out var g) ? g : double.NaN))
                .Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
            return new Correlation(m, pairs.Count, FlatMinimaStatistics.Spearman(pairs.Select(p => p.X).ToList(), pairs.Select(p => p.Y).ToList()));
        }).ToList();
    }

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths.</summary>
    public static IReadOnlyList<string> Write(FlatMinimaSettings s, IReadOnlyList<FlatMinimaNetworkResult> networks, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Stem(s);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var curvePlots = new Dictionary<string, string?>();
        var scatterPlots = new Dictionary<string, string?>();
        foreach (var n in networks.Where(n => n.SkipReason is null))
        {
            curvePlots[n.Network.Name] = CurvePlot(s, n) is { } curve ? figures.TrySave(curve, Path.Combine(s.OutDir, $"{stem}-{n.Network.Name}-test-error")) : null;
            foreach (var m in MeasureColumns)
                scatterPlots[$"{n.Network.Name}/{m.Key}"] = ScatterPlot(n, m) is { } scatter
                    ? figures.TrySave(scatter, Path.Combine(s.OutDir, $"{stem}-{n.Network.Name}-{m.Key.Replace('_', '-')}-gap")) : null;
        }
        var runsCsv = Path.Combine(s.OutDir, stem + "-runs.csv");
        AtomicFile.WriteAllText(runsCsv, RunsCsv(s, networks));
        written.Add(runsCsv);
        var searchCsv = Path.Combine(s.OutDir, stem + "-search.csv");
        AtomicFile.WriteAllText(searchCsv, SearchCsv(networks));
        written.Add(searchCsv);
        var json = Path.Combine(s.OutDir, stem + ".json");
        AtomicFile.WriteAllText(json, Json(s, stem, networks).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(s.OutDir, stem + ".md");
        AtomicFile.WriteAllText(markdown, Markdown(s, networks, curvePlots, scatterPlots));
        written.Add(markdown);
        return written;
    }

    static string F(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, C) : "n/a";

    static JsonNode? Number(double? v) => v is double d && double.IsFinite(d) ? JsonValue.Create(d) : null;

    /// <summary>
    /// True when a baseline's seeds spread by more than their mean (sample standard deviation above the mean): one seed
    /// blew up without diverging, as SGD at lr 3 can on the char-LSTM, and a comparison with the mean says little.
    /// </summary>
    internal static bool SpreadExceedsMean(IReadOnlyList<double> scores) =>
        scores.Count > 1 && SeedStatistic.Of(scores) is { } s && s.Std > Math.Abs(s.Mean);

    static string MeanStd(IReadOnlyList<double> values, string format) => values.Count switch
    {
        0 => "pending",
        1 => $"{F(values[0], format)} (1 seed)",
        _ => $"{F(SeedStatistic.Of(values)!.Value.Mean, format)} ± {F(SeedStatistic.Of(values)!.Value.Std, format)} ({values.Count})",
    };

    static string Verdict(FlatMinimaVerdict? v) => v is null ? "–"
        : $"{F(v.Difference, "+0.00;-0.00;0.00")} ({F(v.InStandardErrors, "+0.0;-0.0;0.0")} SE): {v.Word}";

    static string MetricName(FlatMinimaNetwork n) => n.IsLanguageModel ? "test perplexity" : "test error (%)";

    static Figure? CurvePlot(FlatMinimaSettings s, FlatMinimaNetworkResult network)
    {
        var series = new List<LineSeries>();
        foreach (var arm in s.ArmList)
        {
            var finished = network.Runs.Where(r => r.Run.Arm == arm && r.Result is { Diverged: false }).ToList();
            var (x, y) = FlatMinimaStatistics.MeanCurve(finished.Select(Curve).ToList());
            if (x.Count == 0) continue;
            series.Add(new LineSeries($"{FlatMinimaDesign.Title(arm, network.Network)}{(finished.Count > 1 ? $" ({finished.Count} seeds)" : "")}", x, y)
            {
                ShowMarkers = x.Count <= 40, Dashed = arm.IsBaseline,
            });
        }
        // Perplexity on a log axis: one blown-up seed (SGD at lr 3 reached 1e20 on the char-LSTM) would otherwise flatten
        // every other curve onto the x axis.
        return series.Count == 0 ? null : LinePlot.Stacked([new LinePanel(MetricName(network.Network), series) { LogY = network.Network.IsLanguageModel }],
            "effective epochs (gradient evaluations per training sample)",
            new LinePlotOptions { Title = $"{network.Network.Title}: {MetricName(network.Network)} against effective epochs, mean over seeds", Legend = LegendCorner.OutsideRight });
    }

    static Figure? ScatterPlot(FlatMinimaNetworkResult network, FlatMinimaMeasureColumn measure)
    {
        var series = new List<LineSeries>();
        foreach (var group in network.Runs.Where(r => r.Flatness is not null).GroupBy(r => r.Run.Arm))
        {
            var points = group.Select(r => (X: measure.Of(r.Flatness) ?? double.NaN, Y: r.Flatness!.Values.TryGetValue(GapKey, out var g) ? g : double.NaN))
                .Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).OrderBy(p => p.X).ToList();
            if (points.Count == 0) continue;
            series.Add(new LineSeries(FlatMinimaDesign.Title(group.Key, network.Network), points.Select(p => p.X).ToList(), points.Select(p => p.Y).ToList())
            {
                MarkersOnly = true,
            });
        }
        if (series.Count == 0) return null;
        var rho = Correlations(network).First(c => c.Measure == measure);
        return LinePlot.Create(series, measure.Label, "generalisation gap (test − train loss)",
            new LinePlotOptions { Title = $"{network.Network.Title}: {measure.Label} against the gap, Spearman ρ = {F(rho.Spearman, "0.00")} ({rho.Runs} runs)", Legend = LegendCorner.OutsideRight });
    }

    static string Csv(string? text) => text is null ? "" : text.Contains(',') || text.Contains('"') ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;

    static string RunsCsv(FlatMinimaSettings s, IReadOnlyList<FlatMinimaNetworkResult> networks)
    {
        var sb = new StringBuilder();
        sb.AppendLine("network,arm,candidate,seed,status,test_score,effective_epochs_at_cost,seconds," + string.Join(",", MeasureColumns.Select(m => m.Key)) + ",loss_gap,error_gap_percent,folder");
        foreach (var n in networks)
            foreach (var r in n.Runs)
            {
                var gap = r.Flatness?.Values.TryGetValue(GapKey, out var g) == true ? g : (double?)null;
                var errorGap = r.Flatness?.Values.TryGetValue("error_gap_percent", out var e) == true ? e : (double?)null;
                var cells = new List<string>
                {
                    n.Network.Name, r.Run.Arm.Key, Csv(FlatMinimaDesign.Grid(r.Run.Arm, n.Network)[r.Run.Chosen].Description), r.Run.Seed.ToString(C),
                    r.Result?.Status ?? "pending", F(r.TestScore, "R"), F(r.CostEffectiveEpochs, "R"), F(r.Result?.TotalSeconds, "0.###"),
                };
                cells.AddRange(MeasureColumns.Select(m => F(m.Of(r.Flatness), "R")));
                cells.AddRange([F(gap, "R"), F(errorGap, "R"), Path.GetRelativePath(s.RunsRoot, r.Run.Folder).Replace('\\', '/')]);
                sb.AppendLine(string.Join(",", cells));
            }
        return sb.ToString();
    }

    static string SearchCsv(IReadOnlyList<FlatMinimaNetworkResult> networks)
    {
        var sb = new StringBuilder();
        sb.AppendLine("network,arm,trial,candidate,status,validation_score,chosen");
        foreach (var n in networks)
            foreach (var group in n.Trials.GroupBy(t => t.Trial.Arm))
            {
                var chosen = FlatMinimaExperiment.Choose(group.ToList());
                foreach (var t in group)
                    sb.AppendLine(string.Join(",", n.Network.Name, t.Trial.Arm.Key, (t.Trial.Index + 1).ToString(C), Csv(t.Trial.Candidate.Description),
                        t.Result?.Status ?? "pending", F(t.ValidationScore, "R"), chosen == t.Trial.Index ? "yes" : ""));
            }
        return sb.ToString();
    }

    static string Title(FlatMinimaSettings s) =>
        $"Flat-minima methods at equal cost: every arm, the same networks, seeds and gradient evaluations (budget `{Budgets.Name(s.Budget)}`)";

    static JsonObject Json(FlatMinimaSettings s, string stem, IReadOnlyList<FlatMinimaNetworkResult> networks)
    {
        var json = ReportHeader.Json(stem, Title(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = FlatMinimaDesign.Name;
        json["budget_description"] = FlatMinimaDesign.DescribeBudget(s.Budget);
        json["seeds"] = s.Seeds;
        json["search_trials_per_arm"] = s.SearchTrials;
        json["validation_fraction"] = FlatMinimaDesign.ValidationFraction;
        json["search_seed"] = FlatMinimaDesign.SearchSeed;
        json["verdict_threshold_standard_errors"] = FlatMinimaStatistics.Threshold;
        json["flatness_budget"] = FlatMinimaExperiment.FlatnessBudget.Name;
        json["dante"] = FlatMinimaDesign.DanteScope;
        json["table1_reuse"] = Table1Reuse;
        json["networks"] = new JsonArray(networks.Select(n =>
        {
            var o = new JsonObject { ["network"] = n.Network.Name, ["model"] = n.Network.Model, ["title"] = n.Network.Title, ["skipped"] = n.SkipReason };
            if (n.SkipReason is not null) return (JsonNode)o;
            var scale = FlatMinimaDesign.Scale(n.Network, s.Budget);
            o["training_images"] = scale.TrainingImages;
            o["final_effective_epochs"] = scale.FinalEffectiveEpochs;
            o["search_effective_epochs"] = FlatMinimaDesign.Scale(n.Network, FlatMinimaDesign.SearchBudget(s.Budget)).SearchEffectiveEpochs;
            o["evaluate_every"] = scale.EvaluateEvery;
            o["metric"] = n.Network.IsLanguageModel ? "test_perplexity" : "test_error_percent";
            o["search"] = new JsonArray(n.Trials.Select(t => (JsonNode)new JsonObject
            {
                ["arm"] = t.Trial.Arm.Key,
                ["trial"] = t.Trial.Index + 1,
                ["candidate"] = t.Trial.Candidate.Description,
                ["status"] = t.Result?.Status ?? "pending",
                ["validation_score"] = Number(t.ValidationScore),
            }).ToArray());
            o["arms"] = new JsonArray(Rows(s, n).Select(r => (JsonNode)new JsonObject
            {
                ["arm"] = r.Arm.Key,
                ["title"] = r.Title,
                ["not_applicable"] = r.NotApplicable,
                ["chosen"] = r.Chosen?.Description,
                ["seeds_finished"] = r.Scores.Count,
                ["test_mean"] = r.Scores.Count > 0 ? Number(r.Scores.Average()) : null,
                ["test_std"] = r.Scores.Count > 1 ? Number(SeedStatistic.Of(r.Scores)!.Value.Std) : null,
                ["versus_sgd"] = VerdictJson(r.VersusSgd),
                ["versus_adam"] = VerdictJson(r.VersusAdam),
                ["effective_epochs_to_reach_sgd_final"] = Number(r.ReachSgd),
                ["seconds_per_effective_epoch"] = Number(r.SecondsPerEffectiveEpoch),
                ["flatness_means"] = new JsonObject(r.Measures.Select(kv => KeyValuePair.Create(kv.Key, Number(kv.Value)))),
            }).ToArray());
            o["correlations_with_gap"] = new JsonArray(Correlations(n).Select(c => (JsonNode)new JsonObject
            {
                ["measure"] = c.Measure.Key, ["runs"] = c.Runs, ["spearman"] = Number(c.Spearman),
            }).ToArray());
            o["runs"] = new JsonArray(n.Runs.Select(r => (JsonNode)new JsonObject
            {
                ["arm"] = r.Run.Arm.Key,
                ["seed"] = r.Run.Seed,
                ["status"] = r.Result?.Status ?? "pending",
                ["test_score"] = Number(r.TestScore),
                ["effective_epochs_at_cost"] = Number(r.CostEffectiveEpochs),
                ["seconds"] = Number(r.Result?.TotalSeconds),
                ["flatness"] = r.Flatness is null ? null : new JsonObject(r.Flatness.Values.Select(kv => KeyValuePair.Create(kv.Key, Number(kv.Value)))),
                ["flatness_data"] = r.Flatness?.Data,
                ["curve"] = new JsonArray(Curve(r).Select(p => (JsonNode)new JsonArray(p.X, p.Y)).ToArray()),
                ["folder"] = Path.GetRelativePath(s.RunsRoot, r.Run.Folder).Replace('\\', '/'),
            }).ToArray());
            return o;
        }).ToArray());
        return json;
    }

    static JsonObject? VerdictJson(FlatMinimaVerdict? v) => v is null ? null : new JsonObject
    {
        ["difference"] = Number(v.Difference), ["standard_error"] = Number(v.StandardError), ["in_standard_errors"] = Number(v.InStandardErrors), ["verdict"] = v.Word,
    };

    /// <summary>Why no run of Table 1 is reused (stated in the report).</summary>
    public const string Table1Reuse =
        "No run of `reproduce table1` is reused: Table 1's runs train the paper's settings for a number of epochs (Adam 1e-3 divided by 5 every 30 epochs, Entropy-SGD L = 20), " +
        "while every run here has a search-chosen candidate, a constant learning rate, an effective-epoch budget and evaluations every fixed number of effective epochs; " +
        "no configuration matches exactly, and a run that does not match exactly would not answer this benchmark's question.";

    static string Markdown(FlatMinimaSettings s, IReadOnlyList<FlatMinimaNetworkResult> networks, Dictionary<string, string?> curvePlots, Dictionary<string, string?> scatterPlots)
    {
        var md = new StringBuilder();
        var intro = new List<string>
        {
            "Every flat-minima method WideValley has, trained at **equal cost** on the same networks with the same seeds: each arm gets the same number of gradient " +
            "evaluations per training sample (effective epochs). SAM and ASAM evaluate two gradients per step and both count; the Hessian-trace regulariser's " +
            $"extra passes are not closure calls, so its runs are given fewer counted evaluations (factor {F(1 + (2.0 * FlatMinimaDesign.HtrProbes - 1) / FlatMinimaDesign.HtrFrequency, "0.###")} " +
            $"with the antithetic estimator, K = {FlatMinimaDesign.HtrProbes}, every {FlatMinimaDesign.HtrFrequency} steps). Effective epochs below are at cost. Every arm is evaluated on the same grid of effective epochs, " +
            "also inside Entropy-SGD's long outer epochs.",
            $"**Search (ours).** Each arm's grid has {FlatMinimaDesign.GridSize} candidates; every arm is searched over the same **{s.SearchTrials} trial(s)** " +
            $"(the first ones of its grid), each trained at the search budget on a training split with {F(FlatMinimaDesign.ValidationFraction * 100, "0")}% of the images " +
            $"held out (seed {FlatMinimaDesign.SearchSeed}, the same split for every trial), and the trial with the lowest final validation error (perplexity) is chosen " +
            $"(a diverged trial is never chosen over a finished one; a tie goes to the first in grid order). The chosen candidate then trains {s.Seeds} seed(s) from {s.FirstSeed} on the whole training set of the budget.",
            $"Budget `{Budgets.Name(s.Budget)}`: {FlatMinimaDesign.DescribeBudget(s.Budget)}.",
            "**Verdicts (ours).** An arm is *better* (*worse*) than a baseline when its mean final test error is lower (higher) by more than " +
            $"{F(FlatMinimaStatistics.Threshold, "0")} standard errors of the difference (Welch's, unpaired), *no difference* otherwise; *not judged* below two seeds on a side or at the smoke budget.",
            $"**Flatness.** Every final model of an image network is measured by the flatness report (`widevalley flatness`'s runner) at its `{FlatMinimaExperiment.FlatnessBudget.Name}` budget, seed {FlatMinimaExperiment.FlatnessSeed}: " +
            "λ_max (Lanczos), the Hessian trace (Hutchinson), Keskar's ε-sharpness, Jiang's PAC-Bayes σ', and the local entropy F − F_flat (direct estimate at the budget's " +
            $"widest scope γ = {F(FlatMinimaExperiment.FlatnessBudget.Scopes[0], "G6")}), on the first training images and as many test images (stated per network). The generalisation gap is the test minus training loss on that set. " +
            "The char-LSTM gets no flatness report (the runner measures classifiers).",
            $"**DANTE (where it runs: ours).** {FlatMinimaDesign.DanteScope}",
            $"**Table 1's runs.** {Table1Reuse}",
        };
        ReportHeader.AppendMarkdown(md, Title(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);
        foreach (var n in networks)
        {
            md.AppendLine($"## {n.Network.Title}");
            md.AppendLine();
            if (n.SkipReason is not null)
            {
                md.AppendLine($"Skipped: {n.SkipReason}.");
                md.AppendLine();
                continue;
            }
            var scale = FlatMinimaDesign.Scale(n.Network, s.Budget);
            var search = FlatMinimaDesign.Scale(n.Network, FlatMinimaDesign.SearchBudget(s.Budget));
            var finalData = scale.TrainingImages is long images ? string.Create(C, $"the first {images:N0} training images")
                : n.Network.IsLanguageModel ? "the corpus's training text (80%)" : "the whole training set";
            var searchData = n.Network.IsLanguageModel ? " judged on the corpus's validation text (10%)."
                : string.Create(C, $" on {search.SearchImages:N0} images, 10% of them held out.");
            md.AppendLine(string.Create(C, $"Final runs: {finalData}, {scale.FinalEffectiveEpochs} effective epochs, evaluated every {scale.EvaluateEvery}. ") +
                          string.Create(C, $"Search trials: {search.SearchEffectiveEpochs} effective epochs") + searchData);
            md.AppendLine();
            var rows = Rows(s, n);
            md.AppendLine($"| arm | chosen | {MetricName(n.Network)} | vs SGD | vs Adam | eff. epochs to SGD's final | s per eff. epoch | {string.Join(" | ", MeasureColumns.Select(m => m.Label))} |");
            md.AppendLine($"|---|---|---|---|---|---|---|{string.Concat(MeasureColumns.Select(_ => "---|"))}");
            foreach (var r in rows)
                md.AppendLine(r.NotApplicable is not null
                    ? $"| {r.Title} | – | {r.NotApplicable} | – | – | – | – |{string.Concat(MeasureColumns.Select(_ => " – |"))}"
                    : $"| {r.Title} | {r.Chosen?.Description ?? "search pending"} | {MeanStd(r.Scores, n.Network.IsLanguageModel ? "0.000" : "0.00")} | {Verdict(r.VersusSgd)} | {Verdict(r.VersusAdam)} | " +
                      $"{(r.ReachSgd is double reach ? F(reach, "0.##") : r.Scores.Count == 0 ? "–" : "never")} | {F(r.SecondsPerEffectiveEpoch, r.SecondsPerEffectiveEpoch < 1 ? "0.00#" : "0.0")} | " +
                      string.Join(" | ", MeasureColumns.Select(m => F(r.Measures[m.Key], "G3"))) + " |");
            md.AppendLine();
            md.AppendLine("Test: mean ± sample standard deviation (finished seeds). vs SGD / Adam: difference of the means (in standard errors): verdict. " +
                          string.Create(C, $"Eff. epochs to SGD's final: the first evaluated effective epoch (at cost) at which the arm's mean curve came within {ComparisonReport.ReachTolerance * 100:0.##}% of SGD's final mean; never: not by the end. ") +
                          "Flatness columns: means over the measured seeds (λ_max, trace, ε-sharpness: lower is flatter; σ', local entropy: higher is flatter).");
            md.AppendLine();
            foreach (var wild in rows.Where(r => r.Arm.Key is "sgd" or "adam" && SpreadExceedsMean(r.Scores)))
            {
                md.AppendLine($"**{wild.Title}'s seeds disagree by more than their mean** ({string.Join(", ", wild.Scores.Select(v => F(v, "0.00")))}): " +
                              $"a verdict against {wild.Title}{(wild.Arm.Key == "sgd" ? " and the column of effective epochs to its final" : "")} says little on this network.");
                md.AppendLine();
            }
            if (curvePlots.GetValueOrDefault(n.Network.Name) is string curve)
            {
                md.AppendLine($"![test error against effective epochs]({curve})");
                md.AppendLine();
            }
            var correlations = Correlations(n);
            if (correlations.Any(c => c.Runs > 0))
            {
                var data = n.Runs.FirstOrDefault(r => r.Flatness is not null)?.Flatness?.Data;
                md.AppendLine($"Which measure tracks the generalisation gap (Spearman's ρ over all measured runs{(data is null ? "" : $"; measured on {data}")}):");
                md.AppendLine();
                md.AppendLine("| measure | runs | Spearman ρ with the gap | plot |");
                md.AppendLine("|---|---|---|---|");
                foreach (var c in correlations)
                {
                    var plot = scatterPlots.GetValueOrDefault($"{n.Network.Name}/{c.Measure.Key}");
                    md.AppendLine($"| {c.Measure.Label} | {c.Runs} | {F(c.Spearman, "+0.00;-0.00;0.00")} | {(plot is null ? "–" : $"[scatter]({plot})")} |");
                }
                var best = correlations.Where(c => double.IsFinite(c.Spearman)).OrderByDescending(c => Math.Abs(c.Spearman)).FirstOrDefault();
                md.AppendLine();
                md.AppendLine(best is null ? "Too few measured runs for a rank correlation (at least 3)."
                    : $"Strongest rank correlation with the gap here: **{best.Measure.Label}** (ρ = {F(best.Spearman, "+0.00;-0.00")} over {best.Runs} runs; " +
                      $"a flatness measure predicts generalisation when it is {(best.Measure.HigherIsFlatter ? "negative for higher-is-flatter measures" : "positive for lower-is-flatter measures")}: " +
                      $"{(best.Measure.HigherIsFlatter == (best.Spearman < 0) ? "this one has the expected sign" : "this one has the opposite sign")}).");
                md.AppendLine();
            }
            md.AppendLine("### Search");
            md.AppendLine();
            md.AppendLine($"| arm | {string.Join(" | ", Enumerable.Range(1, s.SearchTrials).Select(k => $"trial {k}"))} |");
            md.AppendLine($"|---|{string.Concat(Enumerable.Range(0, s.SearchTrials).Select(_ => "---|"))}");
            foreach (var arm in s.ArmList)
            {
                if (FlatMinimaDesign.NotApplicable(arm, n.Network) is { } notApplicable)
                {
                    md.AppendLine($"| {FlatMinimaDesign.Title(arm, n.Network)} | {notApplicable} |{string.Concat(Enumerable.Repeat(" – |", s.SearchTrials - 1))}");
                    continue;
                }
                var group = n.Trials.Where(t => t.Trial.Arm == arm).ToList();
                var chosen = FlatMinimaExperiment.Choose(group);
                md.AppendLine($"| {FlatMinimaDesign.Title(arm, n.Network)} | " + string.Join(" | ", group.OrderBy(t => t.Trial.Index).Select(t =>
                {
                    var score = t.Result is null ? "pending" : t.Result.Diverged ? "diverged" : F(t.ValidationScore, "0.00");
                    var cell = $"{t.Trial.Candidate.Description}: {score}";
                    return chosen == t.Trial.Index ? $"**{cell}**" : cell;
                })) + " |");
            }
            md.AppendLine();
            md.AppendLine($"Validation {(n.Network.IsLanguageModel ? "perplexity" : "error (%)")} at the end of each trial; the chosen trial in bold.");
            if (n.ArmsAwaitingSearch.Count > 0)
                md.AppendLine($" Search not finished for: {string.Join(", ", n.ArmsAwaitingSearch.Select(a => FlatMinimaDesign.Title(a, n.Network)))} (no final runs yet).");
            md.AppendLine();
        }
        return md.ToString();
    }
}
