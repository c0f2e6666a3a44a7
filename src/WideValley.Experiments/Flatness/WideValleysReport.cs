using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ScottPlot;
using PlotStyle = WideValley.Reports.PlotStyle;
using WideValley.Landscape.Flatness;
using WideValley.Reports;
using static WideValley.Experiments.Flatness.WideValleysStatistics;

namespace WideValley.Experiments.Flatness;

/// <summary>
/// Writes the wide-valleys report: wide-valleys[-BUDGET].md, its JSON twin, a CSV of every value of every run, and
/// per network one grid of plots (flatness against test error, points coloured by optimizer, PNG + SVG). Runs are
/// named relative to the runs folder, inputs by name (<see cref="ReportHeader"/>): nothing names a path of the
/// machine that made it. Every file is replaced atomically, the JSON last.
/// </summary>
public static class WideValleysReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Writes the report into <paramref name="outDir"/>; returns the full paths written.</summary>
    public static IReadOnlyList<string> Write(string outDir, WideValleysResults results, Action<string>? warning = null)
    {
        ArgumentNullException.ThrowIfNull(outDir);
        ArgumentNullException.ThrowIfNull(results);
        Directory.CreateDirectory(outDir);
        var stem = WideValleys.Stem(results.Budget);
        var files = new List<string>();
        var figures = new ReportFigures(files, warning);
        var plots = new Dictionary<string, string?>();
        foreach (var network in results.Networks)
            plots[network.Row.Name] = network.Verdicts.Count == 0 ? null
                : figures.TrySave(Grid(network), Path.Combine(outDir, $"{stem}-{network.Row.Name}"));

        var csv = Path.Combine(outDir, stem + ".csv");
        AtomicFile.WriteAllText(csv, Csv(results));
        files.Add(csv);
        var md = Path.Combine(outDir, stem + ".md");
        AtomicFile.WriteAllText(md, Markdown(results, plots, Path.GetFileName(csv)));
        files.Add(md);
        var json = Path.Combine(outDir, stem + ".json");
        files.Add(json);
        AtomicFile.WriteAllText(json, Json(results, files.Select(Path.GetFileName).ToList()!).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return files;
    }

    static string Title(WideValleysResults r) =>
        $"Wide valleys: Entropy-SGD's minima against Adam's on Table 1's {string.Join(" and ", r.Networks.Select(n => n.Row.Title))} (budget `{Budgets.Name(r.Budget)}`)";

    /// <summary>What every number means, stated before the numbers.</summary>
    static List<string> Introduction(WideValleysResults r)
    {
        var s = r.Settings;
        var paragraphs = new List<string>
        {
            "The central claim of Chaudhari et al., *Entropy-SGD: Biasing Gradient Descent Into Wide Valleys* (ICLR 2017), measured: " +
            "(a) is the minimum Entropy-SGD finds wider than Adam's, and (b) does a wider minimum go with a lower test error? " +
            $"The runs are Table 1's (`reproduce table1`, budget `{Budgets.Name(r.Budget)}`: {Table1.DescribeBudget(r.Budget)}), " +
            $"{s.Seeds} seed{(s.Seeds == 1 ? "" : "s")} per optimizer from seed {s.FirstSeed}, in the same run folders, so runs `reproduce table1` finished are reused.",
            $"**Measurements.** Every measure of `widevalley flatness` (docs/flatness.md) on each finished run's final weights, in evaluation mode " +
            $"(dropout off, BatchNorm on its running statistics), flatness budget `{r.FlatnessBudget.Name}`, on {r.EvaluationSet.Describe()}; " +
            $"every probe and random direction drawn from seed {r.FlatnessSeed}, the same for every run. " +
            "The test error of a run is its final test error over the whole test set as Table 1 reports it.",
            $"**Verdict (a), wider.** Per measure, each value oriented so that larger = flatter, the mean over seeds of each optimizer, and the difference " +
            $"(Entropy-SGD minus Adam) over its standard error from the seed spread, sqrt(s_E²/n_E + s_A²/n_A) (Welch): *agrees* when Entropy-SGD is flatter " +
            $"by more than {SigmaThreshold:0} standard errors, *disagrees* when Adam is, *inconclusive* otherwise, *not testable* with fewer than two finished seeds in an arm. " +
            "The standard errors of the estimators themselves (probes) are not added: the seed spread includes them.",
            $"**Verdict (b), width and test error.** Per measure, Spearman's rank correlation rho between the oriented flatness and the test error across all " +
            $"measured runs of a network (both optimizers), with a two-sided permutation p-value, exact over all orderings up to {ExactPermutationLimit} runs " +
            $"(720 for six): *agrees* when rho < 0 and p < {Alpha}, *disagrees* when rho > 0 and p < {Alpha}, *inconclusive* otherwise, " +
            "*not testable* with fewer than three runs or no spread. Six points is little: with six runs only |rho| ≥ 0.886 reaches p < 0.05, and a correlation " +
            "across the two optimizers mostly says which optimizer had the lower error.",
        };
        if (s.Data.MnistDir is null)
            paragraphs.Add($"**Data.** No MNIST folder was given, so {s.Data.MnistRowsDataset} stands in for MNIST (as in the Table 1 report).");
        if (r.ReportOnly) paragraphs.Add("**--report-only.** Nothing was trained or measured for this report: it shows what had finished and been measured.");
        return paragraphs;
    }

    static string Markdown(WideValleysResults r, IReadOnlyDictionary<string, string?> plots, string csvName)
    {
        var md = new StringBuilder();
        ReportHeader.AppendMarkdown(md, Title(r), Introduction(r), r.Budget,
            "Smoke budget: a few minibatches of training and a tiny evaluation set, for checking that everything runs. These numbers say nothing about the claim.",
            r.Settings.CommandLine, r.Settings.Machine);

        md.AppendLine("## Verdicts");
        md.AppendLine();
        foreach (var n in r.Networks) md.AppendLine($"- **{n.Row.Title}**: {Overall(n)}");
        md.AppendLine();
        foreach (var n in r.Networks)
        {
            md.AppendLine($"## {n.Row.Title} ({n.Dataset})");
            md.AppendLine();
            md.AppendLine(Finished(n));
            md.AppendLine();
            if (n.Verdicts.Count > 0)
            {
                md.AppendLine("| measure | flatter when | ReLU-rescaling | Entropy-SGD mean ± sd (n) | Adam mean ± sd (n) | (E − A) / SE | (a) wider | rho | p | (b) width ↔ lower error |");
                md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
                foreach (var v in n.Verdicts)
                {
                    var w = v.Wider;
                    var k = v.Correlation;
                    md.AppendLine($"| {v.Label.Replace("|", "\\|", StringComparison.Ordinal)} | {(v.Flatter == FlatterWhen.Lower ? "lower" : "higher")} | {(v.Rescaling == ReluRescaling.Invariant ? "invariant" : "not invariant")} | " +
                                  $"{MeanSd(w.EntropyMean, w.EntropyStd)} ({w.EntropyCount}) | {MeanSd(w.AdamMean, w.AdamStd)} ({w.AdamCount}) | {Number(w.Z)} | **{Say(w.Verdict)}** | " +
                                  $"{Number(k.Rho)} | {Number(k.P)}{(k.Exact ? "" : " (MC)")} | **{Say(k.Verdict)}** |");
                }
                md.AppendLine();
            }
            if (plots.TryGetValue(n.Row.Name, out var png) && png is not null)
            {
                md.AppendLine($"![{n.Row.Title}: each flatness measure against test error, one point per run]({png})");
                md.AppendLine();
            }
            md.AppendLine("| run | optimizer | seed | status | test error (%) | weights id |");
            md.AppendLine("|---|---|---|---|---|---|");
            foreach (var run in n.Runs)
                md.AppendLine($"| `{run.Folder}` | {run.OptimizerLabel} | {run.Seed} | {run.Status}{(run.Note is null ? "" : $" ({run.Note})")} | {Number(run.TestError)} | {run.ModelId ?? ""} |");
            md.AppendLine();
            md.AppendLine("Table 1 settings of the two arms (only the seed differs between seeds):");
            md.AppendLine();
            foreach (var arm in n.Arms) md.AppendLine($"- {arm.Label}: {DescribeArm(arm)}");
            md.AppendLine();
        }
        md.AppendLine("## Files");
        md.AppendLine();
        md.AppendLine($"Every value of every run: `{csvName}`. The runs folder holds the Table 1 runs (`table1-{Budgets.Name(r.Budget)}/ROW/OPTIMIZER/seed-K`), the stored " +
                      $"measurements (`{WideValleys.FlatnessFolder}/`, keyed by a hash of the final weights and the measure's settings) and the Table 1 runner's own report of these runs " +
                      $"(`{WideValleys.Table1ReportFolder}/`).");
        return md.ToString();
    }

    /// <summary>One line per network: how many measures agree and disagree on each claim.</summary>
    public static string Overall(WideValleysNetwork n)
    {
        ArgumentNullException.ThrowIfNull(n);
        if (n.Verdicts.Count == 0) return $"no measured run ({Finished(n)}): not testable.";
        string Line(bool wider) =>
            $"{n.Count(wider, ClaimVerdict.Agrees)} agree, {n.Count(wider, ClaimVerdict.Disagrees)} disagree, {n.Count(wider, ClaimVerdict.Inconclusive)} inconclusive" +
            (n.Count(wider, ClaimVerdict.NotTestable) is int t and > 0 ? $", {t} not testable" : "");
        return $"(a) Entropy-SGD wider: {Line(true)}; (b) width goes with lower test error: {Line(false)} (of {n.Verdicts.Count} measures; " +
               $"{n.MeasuredRuns(true)} Entropy-SGD and {n.MeasuredRuns(false)} Adam runs measured of {n.SeedsWanted} each).";
    }

    static string Finished(WideValleysNetwork n)
    {
        var e = n.MeasuredRuns(true);
        var a = n.MeasuredRuns(false);
        var text = $"Measured runs: Entropy-SGD {e} of {n.SeedsWanted}, Adam {a} of {n.SeedsWanted}.";
        if (e < n.SeedsWanted || a < n.SeedsWanted) text += " Fewer than the wanted seeds are measured: the verdicts judge what finished.";
        if (e < 2 || a < 2) text += " With fewer than two per optimizer, (a) is not testable" + (e + a < 3 ? ", and with fewer than three runs (b) is not either." : ".");
        return text;
    }

    static string MeanSd(double mean, double sd) => double.IsNaN(sd) ? Number(mean) : $"{Number(mean)} ± {Number(sd)}";

    static string DescribeArm(ExperimentArm arm)
    {
        var c = arm.Config;
        var parts = new List<string>
        {
            $"optimizer {c.Optimizer}, learning rate {c.ResolvedOptimizerOptions.LearningRate.ToString(C)}, schedule {c.LrSchedule}, {c.Epochs} epochs, batch {c.BatchSize}",
            $"dropout {(c.Dropout is double d ? d.ToString(C) : "the network's default")}",
            c.MaxTrainSamples is long m ? $"first {m.ToString("N0", C)} training images" : "the whole training set",
        };
        if (c.EffectiveEpochBudget is double b) parts.Add($"stopped after {b.ToString(C)} effective epochs");
        return string.Join("; ", parts);
    }

    /// <summary>Per network a grid: one panel per flatness value, test error on x, the value on y, one colour per optimizer.</summary>
    internal static Figure Grid(WideValleysNetwork n)
    {
        const int columns = 4;
        var rows = (n.Verdicts.Count + columns - 1) / columns;
        var panels = new List<FigurePanel>();
        var measured = n.Runs.Where(r => r.Status == WideValleyRun.Measured).ToList();
        for (var i = 0; i < n.Verdicts.Count; i++)
        {
            var v = n.Verdicts[i];
            // rho and p go under the axis, not inside it, where a label box hid the points in its corner.
            var correlation = $"rho {Number(v.Correlation.Rho)}, p {Number(v.Correlation.P)}";
            var plot = PlotStyle.NewPlot(Shorten(v.Label), i / columns == rows - 1 ? $"test error (%); {correlation}" : correlation, null);
            var any = false;
            foreach (var (entropy, color) in new[] { (true, 0), (false, 1) })
            {
                var points = measured.Where(r => r.IsEntropy == entropy)
                    .Select(r => (X: r.TestError, Y: r.Value(v.Name)?.Value ?? double.NaN))
                    .Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
                if (points.Count == 0) continue;
                any = true;
                var scatter = plot.Add.Scatter(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray(), PlotStyle.SeriesColor(color));
                scatter.LineWidth = 0;
                scatter.MarkerSize = 9;
            }
            if (!any) PlotStyle.ShowNothingToPlot(plot, "no finite value");
            PlotStyle.ApplyFont(plot);
            panels.Add(new FigurePanel(plot, (float)(i % columns) / columns, (float)(i / columns) / rows, 1f / columns, 1f / rows));
        }
        // The colours are named in the title: a legend inside a panel hid points in its corner.
        return new Figure($"{n.Row.Title}: flatness against test error, one point per run (blue: Entropy-SGD, red: Adam; flatter is lower or higher as the table says)",
            columns * 380, Math.Max(1, rows) * 300, panels);
    }

    static string Shorten(string label) => label.Length <= 42 ? label : label[..40] + "…";

    static string Csv(WideValleysResults r)
    {
        var csv = new StringBuilder();
        csv.AppendLine("network,optimizer,seed,folder,status,test_error_percent,measure,value,label,flatter_when,relu_rescaling,number,standard_error");
        foreach (var n in r.Networks)
            foreach (var run in n.Runs)
            {
                var head = $"{n.Row.Name},{run.Optimizer},{run.Seed},{run.Folder},{run.Status},{Csv(run.TestError)}";
                if (run.Values.Count == 0) csv.AppendLine(head + ",,,,,,,");
                foreach (var v in run.Values)
                    csv.AppendLine($"{head},{v.Measure},{v.Value.Name},\"{v.Value.Label.Replace("\"", "\"\"", StringComparison.Ordinal)}\",{v.Value.Flatter},{v.Rescaling},{Csv(v.Value.Value)},{(v.Value.StandardError is double se ? Csv(se) : "")}");
            }
        return csv.ToString();
    }

    static string Csv(double value) => double.IsNaN(value) ? "" : value.ToString("R", C);

    static JsonNode? Finite(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    static JsonObject Json(WideValleysResults r, IReadOnlyList<string> files)
    {
        var json = ReportHeader.Json(WideValleys.Stem(r.Budget), Title(r), r.Budget, r.Settings.CommandLine, r.Settings.Machine);
        json["seeds"] = r.Settings.Seeds;
        json["first_seed"] = r.Settings.FirstSeed;
        json["report_only"] = r.ReportOnly;
        json["flatness_budget"] = r.FlatnessBudget.Name;
        json["flatness_seed"] = r.FlatnessSeed;
        json["evaluation_set"] = new JsonObject
        {
            ["train_samples"] = r.EvaluationSet.TrainSamples,
            ["test_samples"] = r.EvaluationSet.TestSamples,
            ["description"] = r.EvaluationSet.Describe(),
        };
        json["rules"] = new JsonObject
        {
            ["wider"] = $"Welch: (mean_E - mean_A) of the flatness oriented larger = flatter over sqrt(s_E^2/n_E + s_A^2/n_A); agrees > {SigmaThreshold}, disagrees < -{SigmaThreshold}",
            ["width_and_error"] = $"Spearman rho(flatness oriented larger = flatter, test error), two-sided permutation p; agrees rho < 0 and p < {Alpha}, disagrees rho > 0 and p < {Alpha}",
        };
        json["networks"] = new JsonArray(r.Networks.Select(n => (JsonNode)new JsonObject
        {
            ["network"] = n.Row.Name,
            ["dataset"] = n.Dataset,
            ["seeds_wanted"] = n.SeedsWanted,
            ["measured_entropy_sgd"] = n.MeasuredRuns(true),
            ["measured_adam"] = n.MeasuredRuns(false),
            ["overall"] = Overall(n),
            ["verdicts"] = new JsonArray(n.Verdicts.Select(v => (JsonNode)new JsonObject
            {
                ["measure"] = v.Measure,
                ["value"] = v.Name,
                ["label"] = v.Label,
                ["flatter_when"] = v.Flatter.ToString(),
                ["relu_rescaling"] = v.Rescaling.ToString(),
                ["wider"] = new JsonObject
                {
                    ["entropy_sgd_n"] = v.Wider.EntropyCount, ["entropy_sgd_mean"] = Finite(v.Wider.EntropyMean), ["entropy_sgd_std"] = Finite(v.Wider.EntropyStd),
                    ["adam_n"] = v.Wider.AdamCount, ["adam_mean"] = Finite(v.Wider.AdamMean), ["adam_std"] = Finite(v.Wider.AdamStd),
                    ["flatness_difference"] = Finite(v.Wider.FlatnessDifference), ["standard_error"] = Finite(v.Wider.StandardError),
                    ["z"] = double.IsNaN(v.Wider.Z) ? null : double.IsInfinity(v.Wider.Z) ? JsonValue.Create(v.Wider.Z > 0 ? "inf" : "-inf") : JsonValue.Create(v.Wider.Z),
                    ["verdict"] = Say(v.Wider.Verdict),
                },
                ["width_and_error"] = new JsonObject
                {
                    ["n"] = v.Correlation.Count, ["rho"] = Finite(v.Correlation.Rho), ["p"] = Finite(v.Correlation.P), ["exact"] = v.Correlation.Exact,
                    ["verdict"] = Say(v.Correlation.Verdict),
                },
            }).ToArray()),
            ["runs"] = new JsonArray(n.Runs.Select(run => (JsonNode)new JsonObject
            {
                ["optimizer"] = run.Optimizer,
                ["seed"] = run.Seed,
                ["folder"] = run.Folder,
                ["status"] = run.Status,
                ["note"] = run.Note,
                ["test_error_percent"] = Finite(run.TestError),
                ["weights_id"] = run.ModelId,
                ["values"] = new JsonObject(run.Values.Select(v => KeyValuePair.Create(v.Value.Name, Finite(v.Value.Value)))),
            }).ToArray()),
            ["table1_arms"] = new JsonArray(n.Arms.Select(a => (JsonNode)new JsonObject { ["optimizer"] = a.Key, ["label"] = a.Label, ["settings"] = DescribeArm(a) }).ToArray()),
        }).ToArray());
        json["files"] = new JsonArray(files.Select(f => (JsonNode)JsonValue.Create(f)!).ToArray());
        return json;
    }
}
