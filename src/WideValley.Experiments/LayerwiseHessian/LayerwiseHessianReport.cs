using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="LayerwiseHessianExperiment"/>: the per-layer distance from the full spectrum against relative
/// depth under three measures, lambda_max and trace against epochs, the last epoch's densities, and the two verdicts;
/// Markdown, a JSON twin and PNG/SVG figures.
/// </summary>
public static class LayerwiseHessianReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>A verdict on one claim.</summary>
    /// <param name="Claim">The claim as the paper states it.</param>
    /// <param name="Verdict">agrees, partly, disagrees or not testable.</param>
    /// <param name="Evidence">Why, with the numbers.</param>
    public sealed record ClaimVerdict(string Claim, string Verdict, string Evidence);

    /// <summary>The measure's name in reports.</summary>
    public static string Describe(SimilarityMeasure m) => m switch
    {
        SimilarityMeasure.W1OnGrid => "W1 on a common eigenvalue grid (ours, default)",
        SimilarityMeasure.KLOnGrid => "KL(layer ‖ full) on a common eigenvalue grid (ours)",
        SimilarityMeasure.AuthorsCode => "the authors' code (W1 between transformed density VALUES)",
        _ => m.ToString(),
    };

    static string DensityName(CurvatureSpectra d) => d == CurvatureSpectra.Authors
        ? "the authors' Lanczos preset (64 + 128 steps, no reorthogonalisation)"
        : "our Lanczos density (128 steps, full reorthogonalisation)";

    static string ShortDensityName(CurvatureSpectra d) => d == CurvatureSpectra.Authors ? "authors' Lanczos preset" : "our Lanczos density";

    static bool IsMiddle(double depth) => depth > 1e-9 && depth < 1 - 1e-9;

    /// <summary>The verdict on "middle layers are the most similar to the full spectrum", one per measure.</summary>
    public static IReadOnlyList<ClaimVerdict> MiddleVerdicts(IReadOnlyList<LayerwiseRunAnalysis> runs) =>
        LayerwiseHessianExperiment.Measures.Select(m =>
        {
            var claim = $"middle layers are closest to the full spectrum ({Describe(m)})";
            if (runs.Count == 0) return new ClaimVerdict(claim, "not testable", "no finished run");
            var closest = runs.Select(r => r.Closest(m)).ToList();
            var middle = closest.Count(c => IsMiddle(c.RelativeDepth));
            var mean = MeanNormalized(runs, m);
            var best = mean.MinBy(x => x.Mean);
            var verdict = middle == runs.Count && IsMiddle(best.Depth) ? "agrees" : middle > 0 || IsMiddle(best.Depth) ? "partly" : "disagrees";
            var evidence = $"closest layer by seed: {string.Join(", ", runs.Zip(closest, (r, c) => string.Create(C, $"seed {r.Seed}: {c.Layer} (depth {c.RelativeDepth:0.##})")))}; " +
                           $"mean over seeds closest: {best.Layer} (depth {best.Depth.ToString("0.##", C)}, normalised summed distance {best.Mean.ToString("0.000", C)})";
            return new ClaimVerdict(claim, verdict, evidence);
        }).ToList();

    /// <summary>Per layer: relative depth, mean and standard deviation over seeds of the normalised summed distance.</summary>
    public static IReadOnlyList<(string Layer, double Depth, double Mean, double Std)> MeanNormalized(IReadOnlyList<LayerwiseRunAnalysis> runs, SimilarityMeasure m) =>
        runs[0].Distances[m].Select(layer =>
        {
            var values = runs.Select(r => r.Distances[m].First(d => d.Layer == layer.Layer).Normalized).ToList();
            return (layer.Layer, layer.RelativeDepth, values.Average(), Std(values));
        }).ToList();

    static double Std(IReadOnlyList<double> values)
    {
        if (values.Count < 2) return double.NaN;
        var mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }

    /// <summary>Relative change from the first trained epoch to the last: (last - first) / |first|.</summary>
    public static double RelativeChange(IReadOnlyList<CurvatureRecord> records, Func<CurvatureRecord, double> value)
    {
        var first = records.First(r => r.Epoch == 1);
        var last = records[^1];
        return (value(last) - value(first)) / Math.Abs(value(first));
    }

    /// <summary>The verdict on "lambda_max and trace (full and layerwise) fall during training": first trained epoch against the last.</summary>
    public static ClaimVerdict FallVerdict(IReadOnlyList<LayerwiseRunAnalysis> runs)
    {
        const string claim = "top eigenvalue and trace (full and layerwise) fall during training";
        if (runs.Count == 0) return new ClaimVerdict(claim, "not testable", "no finished run");
        if (runs.Any(r => r.Records[^1].Epoch < 2)) return new ClaimVerdict(claim, "not testable", "fewer than two trained epochs: nothing to compare");
        var lambda = runs.Select(r => RelativeChange(r.Records, x => x.Full.LambdaMax)).ToList();
        var trace = runs.Select(r => RelativeChange(r.Records, x => x.Full.Trace)).ToList();
        var layerCases = runs.SelectMany(r => r.Records[0].Layers.Select(l => (
            Lambda: RelativeChange(r.Records, x => x.Layers.First(y => y.Name == l.Name).LambdaMax),
            Trace: RelativeChange(r.Records, x => x.Layers.First(y => y.Name == l.Name).Trace)))).ToList();
        var allFull = lambda.All(x => x < 0) && trace.All(x => x < 0);
        var anyFull = lambda.Any(x => x < 0) || trace.Any(x => x < 0);
        var layersFalling = layerCases.Count(c => c.Lambda < 0 && c.Trace < 0);
        var verdict = allFull && layersFalling == layerCases.Count ? "agrees" : anyFull || layersFalling > 0 ? "partly" : "disagrees";
        var evidence = string.Create(C,
            $"from epoch 1 to epoch {runs[0].Records[^1].Epoch}, full lambda_max changed by {Pct(lambda)}, full trace by {Pct(trace)} (mean ± std over {runs.Count} seed(s)); " +
            $"both fell for {layersFalling} of {layerCases.Count} (layer, seed) pairs");
        return new ClaimVerdict(claim, verdict, evidence);
    }

    static string Pct(IReadOnlyList<double> changes) =>
        changes.Count > 1 ? string.Create(C, $"{changes.Average():+0.0%;-0.0%} ± {Std(changes):0.0%}") : string.Create(C, $"{changes[0]:+0.0%;-0.0%}");

    /// <summary>Writes the report files atomically and returns their paths.</summary>
    public static IReadOnlyList<string> Write(LayerwiseHessianSettings s, IReadOnlyList<(LayerwisePlannedRun Run, LayerwiseRunAnalysis? Analysis)> runs, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Stem(s);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var finished = runs.Where(r => r.Analysis is not null).Select(r => r.Analysis!).ToList();
        var plots = new List<(string Caption, string File)>();
        if (finished.Count > 0)
        {
            if (figures.TrySave(DistancePlot(s, finished), Path.Combine(s.OutDir, stem + "-distance")) is { } d)
                plots.Add(("Each layer's distance from the full spectrum (summed over epochs, max-normalised) against relative depth", d));
            if (figures.TrySave(CurvatureTrackingPlot.Create(MeanRecords(finished),
                    $"lambda_max and trace, mean of {finished.Count} seed(s): full Hessian and each layer"), Path.Combine(s.OutDir, stem + "-curvature")) is { } c)
                plots.Add(("lambda_max and trace against epochs", c));
            if (figures.TrySave(DensityPlot(s, finished[0]), Path.Combine(s.OutDir, stem + "-densities")) is { } p)
                plots.Add(($"Densities after the last epoch (seed {finished[0].Seed})", p));
        }
        var verdicts = MiddleVerdicts(finished).Append(FallVerdict(finished)).ToList();
        var json = Path.Combine(s.OutDir, stem + ".json");
        AtomicFile.WriteAllText(json, Json(s, stem, runs, finished, verdicts).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(s.OutDir, stem + ".md");
        AtomicFile.WriteAllText(markdown, Markdown(s, runs, finished, verdicts, plots));
        written.Add(markdown);
        return written;
    }

    /// <summary>layerwise-hessian[-MODEL][-ours][-BUDGET].</summary>
    public static string Stem(LayerwiseHessianSettings s) => Budgets.ReportStem(LayerwiseHessianExperiment.Name +
        (s.Model == "lenet" ? "" : "-" + s.Model) + (s.Density == CurvatureSpectra.Authors ? "" : "-ours"), s.Budget);

    static string Title(LayerwiseHessianSettings s) =>
        $"Layerwise Hessian spectra (Sankar et al., AAAI 2021): {s.Model} on Fashion-MNIST (budget `{Budgets.Name(s.Budget)}`)";

    /// <summary>The mean over runs of every epoch's lambda_max and trace (full and per layer), as records for the curvature figure.</summary>
    static IReadOnlyList<CurvatureRecord> MeanRecords(IReadOnlyList<LayerwiseRunAnalysis> runs)
    {
        var epochs = runs.Min(r => r.Records.Count);
        OperatorCurvature Mean(IEnumerable<OperatorCurvature> ops)
        {
            var list = ops.ToList();
            return list[0] with { LambdaMax = list.Average(o => o.LambdaMax), Trace = list.Average(o => o.Trace), Density = null };
        }
        return Enumerable.Range(0, epochs).Select(e => runs[0].Records[e] with
        {
            Full = Mean(runs.Select(r => r.Records[e].Full)),
            Layers = runs[0].Records[e].Layers.Select(l => Mean(runs.Select(r => r.Records[e].Layers.First(x => x.Name == l.Name)))).ToList(),
        }).ToList();
    }

    static Figure DistancePlot(LayerwiseHessianSettings s, IReadOnlyList<LayerwiseRunAnalysis> runs)
    {
        var panels = LayerwiseHessianExperiment.Measures.Select(m =>
        {
            var mean = MeanNormalized(runs, m);
            var series = new List<LineSeries>
            {
                new(runs.Count > 1 ? $"mean of {runs.Count} seeds" : $"seed {runs[0].Seed}", mean.Select(x => x.Depth).ToArray(), mean.Select(x => x.Mean).ToArray()) { ShowMarkers = true, ColorIndex = 0 },
            };
            if (runs.Count > 1)
                series.AddRange(runs.Select((r, i) => new LineSeries($"seed {r.Seed}", r.Distances[m].Select(d => d.RelativeDepth).ToArray(),
                    r.Distances[m].Select(d => d.Normalized).ToArray()) { MarkersOnly = true, ColorIndex = i + 1 }));
            return new LinePanel(m switch
            {
                SimilarityMeasure.W1OnGrid => "W1 (ours)",
                SimilarityMeasure.KLOnGrid => "KL (ours)",
                _ => "authors' code",
            }, series) { Title = Describe(m) };
        }).ToList();
        return LinePlot.Stacked(panels, "relative depth of the layer", new LinePlotOptions
        {
            Title = $"{s.Model}: distance of each layer's spectrum to the full one ({ShortDensityName(s.Density)})",
            Height = 1000,
        });
    }

    static Figure DensityPlot(LayerwiseHessianSettings s, LayerwiseRunAnalysis run)
    {
        var last = run.Records[^1];
        var ops = new[] { last.Full }.Concat(last.Layers).Where(o => o.Density is not null).ToList();
        var series = ops.Select((o, i) =>
        {
            var d = o.Density!.ToResult().Density();
            return new LineSeries(o.Name, d.Grid, d.Density.Select(p => Math.Log10(Math.Max(p, 1e-12))).ToArray()) { ColorIndex = i };
        }).ToList();
        return LinePlot.Create(series, "eigenvalue", "log10 density (floored at 1e-12)", new LinePlotOptions
        {
            Title = $"{s.Model}, seed {run.Seed}, epoch {last.Epoch}: eigenvalue densities ({ShortDensityName(s.Density)})",
        });
    }

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static JsonObject Json(LayerwiseHessianSettings s, string stem, IReadOnlyList<(LayerwisePlannedRun Run, LayerwiseRunAnalysis? Analysis)> runs,
        IReadOnlyList<LayerwiseRunAnalysis> finished, IReadOnlyList<ClaimVerdict> verdicts)
    {
        var json = ReportHeader.Json(stem, Title(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = LayerwiseHessianExperiment.Name;
        json["budget_description"] = LayerwiseHessianExperiment.DescribeBudget(s.Budget);
        json["model"] = s.Model;
        json["density"] = s.Density.ToString().ToLowerInvariant();
        json["seeds"] = s.Seeds;
        json["verdicts"] = new JsonArray(verdicts.Select(v => (JsonNode)new JsonObject { ["claim"] = v.Claim, ["verdict"] = v.Verdict, ["evidence"] = v.Evidence }).ToArray());
        var list = new JsonArray();
        foreach (var (run, analysis) in runs)
        {
            var o = new JsonObject { ["seed"] = run.Seed, ["status"] = analysis is null ? "pending" : "finished" };
            if (analysis is not null)
            {
                o["final_test_error"] = analysis.FinalTestError is double t ? t : null;
                o["wall_seconds"] = Number(analysis.WallSeconds);
                o["epochs"] = new JsonArray(analysis.Records.Select(r => (JsonNode)new JsonObject
                {
                    ["epoch"] = r.Epoch,
                    ["products"] = r.Products,
                    ["seconds"] = r.Seconds,
                    ["full"] = new JsonObject { ["lambda_max"] = Number(r.Full.LambdaMax), ["trace"] = Number(r.Full.Trace), ["trace_se"] = Number(r.Full.TraceStandardError) },
                    ["layers"] = new JsonArray(r.Layers.Select(l => (JsonNode)new JsonObject
                    {
                        ["name"] = l.Name, ["lambda_max"] = Number(l.LambdaMax), ["trace"] = Number(l.Trace), ["trace_se"] = Number(l.TraceStandardError),
                    }).ToArray()),
                }).ToArray());
                var distances = new JsonObject();
                foreach (var m in LayerwiseHessianExperiment.Measures)
                    distances[m.ToString()] = new JsonArray(analysis.Distances[m].Select(d => (JsonNode)new JsonObject
                    {
                        ["layer"] = d.Layer, ["relative_depth"] = d.RelativeDepth, ["normalized_sum"] = Number(d.Normalized),
                        ["per_epoch"] = new JsonArray(d.PerEpoch.Select(Number).ToArray()),
                    }).ToArray());
                o["distances"] = distances;
            }
            list.Add(o);
        }
        json["runs"] = list;
        return json;
    }

    static string Markdown(LayerwiseHessianSettings s, IReadOnlyList<(LayerwisePlannedRun Run, LayerwiseRunAnalysis? Analysis)> runs,
        IReadOnlyList<LayerwiseRunAnalysis> finished, IReadOnlyList<ClaimVerdict> verdicts, IReadOnlyList<(string Caption, string File)> plots)
    {
        var md = new StringBuilder();
        ReportHeader.AppendMarkdown(md, Title(s),
        [
            $"Sankar, Khasbage, Vigneswaran and Balasubramanian (AAAI 2021) state that the layerwise Hessian spectra resemble the full one, the middle layers most, " +
            $"and that the top eigenvalue and the trace fall during training. Protocol (the authors' spectrum study, LayerHessians/README.md): {s.Model} on Fashion-MNIST, " +
            "SGD with momentum 0.9, learning rate 1e-2 constant, batch 256, no weight decay; after every epoch (and at the initial weights) the Hessian of the mean " +
            "cross-entropy over 10 training examples per class (fixed, subset seed 0, as theirs), full and for every Conv/Linear weight's diagonal block " +
            $"(biases and BatchNorm excluded), by {DensityName(s.Density)}; lambda_max by Lanczos (20 steps, reorthogonalised) and the trace by Hutchinson " +
            $"({(s.Budget == Budget.Smoke ? 4 : LayerwiseHessianExperiment.TraceProbes)} Rademacher probes; per-layer traces from the same products).",
            $"Budget: {LayerwiseHessianExperiment.DescribeBudget(s.Budget)}. The paper: {LayerwiseHessianExperiment.PaperEpochs} epochs on all of the training set.",
            "Distances: each layer's density against the full one at every trained epoch, summed over epochs and divided by the largest layer's sum (the authors' " +
            "match_distros_wasserstein.png). Three measures: W1 and KL(layer ‖ full) between the densities on a common eigenvalue grid (ours; KL with both densities " +
            $"floored at {SpectralSimilarity.KLFloor:0e0} of their maxima), and the authors' code, which compares the transformed density VALUES as two samples of numbers " +
            "(where on the eigenvalue axis the mass lies does not enter; see docs).",
        ], s.Budget, "Smoke budget: a check that everything runs; the numbers judge nothing.", s.CommandLine, s.Machine);

        md.AppendLine("## Verdicts");
        md.AppendLine();
        md.AppendLine("| claim | verdict | evidence |");
        md.AppendLine("|---|---|---|");
        foreach (var v in verdicts) md.AppendLine($"| {v.Claim} | **{v.Verdict}** | {v.Evidence} |");
        md.AppendLine();
        md.AppendLine($"Runs: {finished.Count} of {runs.Count} finished{(finished.Count < runs.Count ? $"; pending: {string.Join(", ", runs.Where(r => r.Analysis is null).Select(r => r.Run.Label))}" : "")}.");
        md.AppendLine();
        if (finished.Count > 0)
        {
            md.AppendLine("## Distance from the full spectrum against depth");
            md.AppendLine();
            md.AppendLine("Normalised summed distance, mean ± std over seeds (smaller: closer to the full spectrum).");
            md.AppendLine();
            md.AppendLine("| layer | relative depth | " + string.Join(" | ", LayerwiseHessianExperiment.Measures.Select(Describe)) + " |");
            md.AppendLine("|---|---|" + string.Concat(LayerwiseHessianExperiment.Measures.Select(_ => "---|")));
            var tables = LayerwiseHessianExperiment.Measures.Select(m => MeanNormalized(finished, m)).ToList();
            for (var i = 0; i < tables[0].Count; i++)
                md.AppendLine(string.Create(C, $"| {tables[0][i].Layer} | {tables[0][i].Depth:0.##} | ") +
                              string.Join(" | ", tables.Select(t => string.Create(C, $"{t[i].Mean:0.000}{(double.IsFinite(t[i].Std) ? $" ± {t[i].Std:0.000}" : "")}"))) + " |");
            md.AppendLine();
            md.AppendLine("## lambda_max and trace");
            md.AppendLine();
            md.AppendLine("Full Hessian, mean ± std over seeds (epoch 0: the initial weights).");
            md.AppendLine();
            md.AppendLine("| epoch | lambda_max | trace | products | seconds |");
            md.AppendLine("|---|---|---|---|---|");
            var epochs = finished.Min(r => r.Records.Count);
            for (var e = 0; e < epochs; e++)
            {
                var lambdas = finished.Select(r => r.Records[e].Full.LambdaMax).ToList();
                var traces = finished.Select(r => r.Records[e].Full.Trace).ToList();
                md.AppendLine(string.Create(C, $"| {e} | {lambdas.Average():0.0000}{(lambdas.Count > 1 ? $" ± {Std(lambdas):0.0000}" : "")} | " +
                    $"{traces.Average():0.000}{(traces.Count > 1 ? $" ± {Std(traces):0.000}" : "")} | {finished.Average(r => r.Records[e].Products):0} | {finished.Average(r => r.Records[e].Seconds):0.0} |"));
            }
            md.AppendLine();
            md.AppendLine("Final test error: " + string.Join(", ", finished.Select(r => r.FinalTestError is double t ? string.Create(C, $"seed {r.Seed} {t:0.00}%") : $"seed {r.Seed} n/a")) + ".");
            md.AppendLine();
            md.AppendLine(string.Create(C, $"Wall time (training, evaluation and spectra; the machine shared with other jobs): {finished.Sum(r => r.WallSeconds) / 60:0.0} min in all, ") +
                          string.Join(", ", finished.Select(r => string.Create(C, $"seed {r.Seed} {r.WallSeconds / 60:0.0} min"))) + ".");
            md.AppendLine();
        }
        foreach (var (caption, file) in plots)
        {
            md.AppendLine($"![{caption}]({file})");
            md.AppendLine();
        }
        return md.ToString();
    }
}
