using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>The fit E[L](n1) = c · exp(alpha · n1^beta) of the mean test loss, by which the paper scales its histograms.</summary>
/// <param name="Alpha">alpha.</param>
/// <param name="Beta">beta.</param>
/// <param name="LogC">log c.</param>
/// <param name="Method">How it was fitted (and what was fixed when there were too few sizes).</param>
/// <param name="RmsLogResidual">Root mean square of log mean - log fit over the sizes.</param>
public sealed record LossScalingFit(double Alpha, double Beta, double LogC, string Method, double RmsLogResidual)
{
    /// <summary>exp(alpha · n1^beta): what a loss of size n1 is divided by (the paper plots L / exp(alpha n1^beta)).</summary>
    public double Scale(int hidden) => Math.Exp(Alpha * Math.Pow(hidden, Beta));

    /// <summary>
    /// Least squares in log space: for each beta on a log grid from 0.02 to 3 (601 points), log E[L] = log c + alpha n1^beta
    /// is linear in (log c, alpha); the beta with the smallest residual wins. With two sizes beta is fixed at 1, with one
    /// alpha is 0 (nothing to fit).
    /// </summary>
    public static LossScalingFit Fit(IReadOnlyList<int> hidden, IReadOnlyList<double> meanLoss)
    {
        var logs = meanLoss.Select(m => Math.Log(m)).ToArray();
        if (hidden.Count == 1) return new LossScalingFit(0, 1, logs[0], "one size: nothing to fit (alpha = 0)", 0);
        if (hidden.Count == 2)
        {
            var a = (logs[1] - logs[0]) / (hidden[1] - hidden[0]);
            return new LossScalingFit(a, 1, logs[0] - a * hidden[0], "two sizes: beta fixed at 1, alpha and c through both points", 0);
        }
        var best = (Sse: double.PositiveInfinity, Alpha: 0.0, Beta: 1.0, LogC: 0.0);
        for (var k = 0; k <= 600; k++)
        {
            var beta = 0.02 * Math.Pow(150, k / 600.0);
            var x = hidden.Select(n => Math.Pow(n, beta)).ToArray();
            var mx = x.Average();
            var my = logs.Average();
            var sxx = x.Sum(v => (v - mx) * (v - mx));
            if (sxx <= 0) continue;
            var alpha = x.Zip(logs).Sum(p => (p.First - mx) * (p.Second - my)) / sxx;
            var logC = my - alpha * mx;
            var sse = x.Zip(logs).Sum(p => Math.Pow(p.Second - logC - alpha * p.First, 2));
            if (sse < best.Sse) best = (sse, alpha, beta, logC);
        }
        // A best beta on the grid's edge means the optimum lies outside it: say so rather than present alpha and beta as fitted.
        var edge = best.Beta <= 0.02 * (1 + 1e-9) ? " (the best beta is the grid's lower edge: the means fall more slowly than any power n1^beta on the grid, " +
                "so alpha and beta are not determined; the scaling still divides each width by one constant and leaves each width's std/mean as it is)"
            : best.Beta >= 3 * (1 - 1e-9) ? " (the best beta is the grid's upper edge, so alpha and beta are not determined; the scaling still divides each width by one constant)" : "";
        return new LossScalingFit(best.Alpha, best.Beta, best.LogC,
            "least squares of log E[L] = log c + alpha n1^beta: linear in (log c, alpha) for each beta on a log grid 0.02..3 (601 points), the best beta kept" + edge,
            Math.Sqrt(best.Sse / hidden.Count));
    }
}

/// <summary>The statistics of one size the report and its verdicts use.</summary>
/// <param name="Hidden">n1.</param>
/// <param name="Networks">Networks with finite losses.</param>
/// <param name="Diverged">Networks whose loss is not finite.</param>
/// <param name="MeanTestLoss">Mean test loss.</param>
/// <param name="StdTestLoss">Standard deviation of the test loss (n - 1).</param>
/// <param name="MeanScaled">Mean of the scaled test loss.</param>
/// <param name="StdScaled">Standard deviation of the scaled test loss.</param>
/// <param name="MeanTrainLoss">Mean training loss.</param>
/// <param name="MeanTestError">Mean test error.</param>
/// <param name="Pearson">Pearson correlation of training and test loss over the networks.</param>
/// <param name="PaperPearson">Table 1's value for this n1 (null for other widths).</param>
public sealed record LossSurfacesSizeStats(int Hidden, int Networks, int Diverged, double MeanTestLoss, double StdTestLoss, double MeanScaled, double StdScaled,
    double MeanTrainLoss, double MeanTestError, double Pearson, double? PaperPearson);

/// <summary>
/// The report of the loss-surface experiment: histograms of the scaled test loss per size (Fig. 3 right), the spread
/// and the train/test correlation against n1 beside Table 1, the normalised index of a sample (Fig. 4), the verdicts on
/// the paper's claims, a JSON twin and one CSV row per network. Everything is rendered in memory first; each file is
/// replaced atomically.
/// </summary>
public static class LossSurfacesReport
{
    /// <summary>The experiment's name: the subcommand and the stem of every file it writes.</summary>
    public const string Name = "loss-surfaces";

    /// <summary>Table 1 of the paper: Pearson correlation of training and test loss over 1,000 networks per n1.</summary>
    public static IReadOnlyDictionary<int, double> PaperPearson { get; } = new Dictionary<int, double>
    {
        [25] = 0.7616, [50] = 0.6861, [100] = 0.5983, [250] = 0.5302, [500] = 0.4081,
    };

    /// <summary>The files <see cref="Write"/> writes for a stem (without the figures when they are not drawn).</summary>
    public static IReadOnlyList<string> Files(string stem, bool withFigures = true) => withFigures
        ? [$"{stem}.md", $"{stem}.json", $"{stem}.csv", $"{stem}-histograms.png", $"{stem}-histograms.svg", $"{stem}-spread.png", $"{stem}-spread.svg"]
        : [$"{stem}.md", $"{stem}.json", $"{stem}.csv"];

    /// <summary>The fit of the mean test loss against n1 over the finished sizes.</summary>
    public static LossScalingFit Fit(LossSurfacesResult r)
    {
        var sizes = r.Sizes.Where(s => s.Finite.Length > 0).ToArray();
        if (sizes.Length == 0) return new LossScalingFit(0, 1, 0, "no finished size", 0);
        return LossScalingFit.Fit(sizes.Select(s => s.Hidden).ToArray(), sizes.Select(s => s.Finite.Average(i => s.TestLoss[i])).ToArray());
    }

    /// <summary>Each finished size's statistics under <paramref name="fit"/>.</summary>
    public static IReadOnlyList<LossSurfacesSizeStats> Stats(LossSurfacesResult r, LossScalingFit fit) => r.Sizes.Select(s =>
    {
        var f = s.Finite;
        var test = f.Select(i => s.TestLoss[i]).ToArray();
        var train = f.Select(i => s.TrainLoss[i]).ToArray();
        var scale = fit.Scale(s.Hidden);
        var scaled = test.Select(v => v / scale).ToArray();
        return new LossSurfacesSizeStats(s.Hidden, f.Length, s.TestLoss.Length - f.Length, Mean(test), Std(test), Mean(scaled), Std(scaled),
            Mean(train), Mean(f.Select(i => s.TestError[i]).ToArray()), Pearson(train, test),
            PaperPearson.TryGetValue(s.Hidden, out var p) ? p : null);
    }).ToArray();

    /// <summary>The paper's claims (A.7 items 2 and 3) judged on the finished sizes.</summary>
    /// <param name="Narrowing">Claim 2: the scaled test-loss histogram narrows as n1 grows.</param>
    /// <param name="CorrelationFalls">Claim 3: the train/test Pearson correlation falls with n1.</param>
    /// <param name="IndexSmall">Fig. 4: the normalised index of the solutions is of order 0.01 or 0 (all at most 0.02).</param>
    public sealed record Verdicts(string Narrowing, string CorrelationFalls, string? IndexSmall);

    static string Trend(IReadOnlyList<double> values, string agree, string partly, string disagree)
    {
        if (values.Count < 2 || values.Any(v => !double.IsFinite(v))) return "not judged (fewer than two sizes with finite values)";
        var monotone = values.Zip(values.Skip(1)).All(p => p.Second < p.First);
        if (monotone) return agree;
        return values[^1] < values[0] ? partly : disagree;
    }

    /// <summary>The verdicts: "agrees" when the quantity falls from every size to the next, "partly" when only the largest size is below the smallest.</summary>
    public static Verdicts Judge(IReadOnlyList<LossSurfacesSizeStats> stats, IReadOnlyList<IndexSample> index)
    {
        var narrowing = Trend(stats.Select(s => s.StdScaled).ToArray(),
            "agrees: the spread of the scaled test loss falls from every size to the next",
            "partly agrees: the spread is smaller at the largest size than at the smallest, but does not fall at every step",
            "does not agree: the spread does not fall with n1");
        var correlation = Trend(stats.Select(s => s.Pearson).ToArray(),
            "agrees: the correlation falls from every size to the next",
            "partly agrees: the correlation is lower at the largest size than at the smallest, but does not fall at every step",
            "does not agree: the correlation does not fall with n1");
        string? small = index.Count == 0 ? null
            : index.All(x => x.NormalizedIndex <= 0.02)
                ? $"agrees: every sampled solution has a normalised index of at most 0.02 (largest {index.Max(x => x.NormalizedIndex).ToString("0.#####", CultureInfo.InvariantCulture)})"
                : $"does not agree: {index.Count(x => x.NormalizedIndex > 0.02)} of {index.Count} sampled solutions have a normalised index above 0.02";
        return new Verdicts(narrowing, correlation, small);
    }

    /// <summary>Console lines: one per size and one per verdict.</summary>
    public static IEnumerable<string> Summary(LossSurfacesResult r)
    {
        var fit = Fit(r);
        var stats = Stats(r, fit);
        foreach (var s in stats)
            yield return string.Create(CultureInfo.InvariantCulture,
                $"n1 = {s.Hidden}: {s.Networks} networks, test loss {s.MeanTestLoss:0.0000} +- {s.StdTestLoss:0.0000} (scaled {s.MeanScaled:0.0000} +- {s.StdScaled:0.0000}), " +
                $"test error {100 * s.MeanTestError:0.00}%, Pearson(train, test) {s.Pearson:0.0000}{(s.PaperPearson is { } p ? $" (paper {p:0.0000})" : "")}");
        var v = Judge(stats, r.Index);
        yield return $"narrowing histograms: {v.Narrowing}";
        yield return $"correlation falls with n1: {v.CorrelationFalls}";
        if (v.IndexSmall is not null) yield return $"normalised index: {v.IndexSmall}";
        if (!r.Complete) yield return "incomplete: run the same command again to continue";
    }

    /// <summary>Writes the report into <paramref name="outDir"/> under <paramref name="stem"/>; returns the paths written.</summary>
    public static IReadOnlyList<string> Write(LossSurfacesResult r, string commandLine, string machine, string outDir, string stem, Action<string>? warning = null)
    {
        Directory.CreateDirectory(outDir);
        var fit = Fit(r);
        var stats = Stats(r, fit);
        var verdicts = Judge(stats, r.Index);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var histogram = stats.Count > 0 ? figures.TrySave(Histograms(r, fit), Path.Combine(outDir, $"{stem}-histograms")) : null;
        var spread = stats.Count > 0 ? figures.TrySave(SpreadPlot(stats), Path.Combine(outDir, $"{stem}-spread")) : null;
        var csvPath = Path.Combine(outDir, $"{stem}.csv");
        SeriesCsv.WriteColumns(csvPath, Columns(r, fit));
        written.Add(csvPath);
        var json = Json(r, fit, stats, verdicts, commandLine, machine, stem);
        var jsonPath = Path.Combine(outDir, $"{stem}.json");
        AtomicFile.WriteAllText(jsonPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
        written.Add(jsonPath);
        var mdPath = Path.Combine(outDir, $"{stem}.md");
        AtomicFile.WriteAllText(mdPath, Markdown(r, fit, stats, verdicts, commandLine, machine, stem, histogram, spread));
        written.Add(mdPath);
        return written;
    }

    // ---- figures -----------------------------------------------------------------------------------------------

    static Figure Histograms(LossSurfacesResult r, LossScalingFit fit)
    {
        var scaled = r.Sizes.Select(s => (s.Hidden, Values: s.Finite.Select(i => s.TestLoss[i] / fit.Scale(s.Hidden)).ToArray())).Where(x => x.Values.Length > 0).ToArray();
        var lo = scaled.Min(x => x.Values.Min());
        var hi = scaled.Max(x => x.Values.Max());
        if (!(hi > lo)) hi = lo + 1e-6;
        // 3 n^(1/3) bins for the smallest sample (14 for 100 networks, 30 for 1,000): fewer and every bar is noise.
        var bins = Math.Clamp((int)Math.Round(3 * Math.Cbrt(scaled.Min(x => x.Values.Length))), 5, 40);
        var width = (hi - lo) / bins;
        var centres = Enumerable.Range(0, bins).Select(b => lo + (b + 0.5) * width).ToArray();
        var series = scaled.Select((x, k) =>
        {
            var counts = new double[bins];
            foreach (var v in x.Values) counts[Math.Clamp((int)((v - lo) / width), 0, bins - 1)]++;
            // Density, so sizes with different numbers of networks share the axis.
            return new LineSeries($"n1 = {x.Hidden}", centres, counts.Select(c => c / (x.Values.Length * width)).ToArray()) { ColorIndex = k, ShowMarkers = true };
        }).ToArray();
        return LinePlot.Create(series, $"test loss / exp(α n1^β), α = {F(fit.Alpha, "G4")}, β = {F(fit.Beta, "G4")}", "density", new LinePlotOptions
        {
            Title = "Scaled test loss of the trained networks per width (Choromanska et al. Fig. 3, right)",
            Width = 1000, Height = 600,
        });
    }

    static Figure SpreadPlot(IReadOnlyList<LossSurfacesSizeStats> stats)
    {
        var n = stats.Select(s => (double)s.Hidden).ToArray();
        var spread = new List<LineSeries>
        {
            new("std of the scaled test loss", n, stats.Select(s => s.StdScaled).ToArray()) { ColorIndex = 0, ShowMarkers = true },
            new("std / mean of the test loss", n, stats.Select(s => s.StdTestLoss / s.MeanTestLoss).ToArray()) { ColorIndex = 1, ShowMarkers = true, Dashed = true },
        };
        var withPaper = stats.Where(s => s.PaperPearson is not null).ToArray();
        var correlation = new List<LineSeries> { new("this run", n, stats.Select(s => s.Pearson).ToArray()) { ColorIndex = 2, ShowMarkers = true } };
        if (withPaper.Length > 0)
            correlation.Add(new LineSeries("paper (Table 1)", withPaper.Select(s => (double)s.Hidden).ToArray(), withPaper.Select(s => s.PaperPearson!.Value).ToArray())
            {
                ColorIndex = 7, ShowMarkers = true, Dashed = true,
            });
        return LinePlot.Stacked(
        [
            new LinePanel("spread", spread) { Title = "Spread of the test loss against n1" },
            new LinePanel("Pearson ρ(train, test)", correlation) { Title = "Correlation of training and test loss against n1 (Table 1)" },
        ], "hidden units n1", new LinePlotOptions { Title = "Loss surfaces of one-hidden-layer networks", Width = 900, Height = 800 });
    }

    // ---- tables ------------------------------------------------------------------------------------------------

    static List<CsvColumn> Columns(LossSurfacesResult r, LossScalingFit fit)
    {
        var rows = r.Sizes.SelectMany(s => Enumerable.Range(0, s.TestLoss.Length).Select(i => (s, i))).ToArray();
        return
        [
            new CsvColumn("n1", rows.Select(x => (double)x.s.Hidden).ToArray()),
            new CsvColumn("network", rows.Select(x => (double)x.i).ToArray()),
            new CsvColumn("seed", rows.Select(x => (double)x.s.Seeds[x.i]).ToArray()),
            new CsvColumn("train_loss", rows.Select(x => x.s.TrainLoss[x.i]).ToArray()),
            new CsvColumn("test_loss", rows.Select(x => x.s.TestLoss[x.i]).ToArray()),
            new CsvColumn("train_error", rows.Select(x => x.s.TrainError[x.i]).ToArray()),
            new CsvColumn("test_error", rows.Select(x => x.s.TestError[x.i]).ToArray()),
            new CsvColumn("scaled_test_loss", rows.Select(x => x.s.TestLoss[x.i] / fit.Scale(x.s.Hidden)).ToArray()),
        ];
    }

    // ---- JSON --------------------------------------------------------------------------------------------------

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static JsonObject Json(LossSurfacesResult r, LossScalingFit fit, IReadOnlyList<LossSurfacesSizeStats> stats, Verdicts v, string commandLine, string machine, string stem)
    {
        var s = r.Settings;
        var json = ReportHeader.Json(stem, "Loss surfaces of one-hidden-layer networks (Choromanska et al. 2015, Sec. 5)", s.Budget, commandLine, machine);
        json["settings"] = new JsonObject
        {
            ["sizes"] = new JsonArray(s.Sizes.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()),
            ["networks_per_size"] = s.Networks,
            ["epochs"] = s.Epochs,
            ["batch_size"] = s.BatchSize,
            ["lr"] = s.Lr,
            ["final_lr_ratio"] = s.FinalLrRatio,
            ["train_samples"] = s.TrainSamples,
            ["test_samples"] = s.TestSamples,
            ["image_size"] = s.ImageSize,
            ["init"] = $"U({F(s.InitLow)}, {F(s.InitHigh)}) / sqrt(fan_in)",
            ["index_networks_per_size"] = s.IndexNetworks,
            ["index_max_hidden"] = s.IndexMaxHidden,
            ["zero_eigenvalue"] = s.ZeroEigenvalue,
            ["seed"] = s.Seed,
        };
        json["data"] = r.Data;
        json["fit"] = new JsonObject
        {
            ["alpha"] = Number(fit.Alpha), ["beta"] = Number(fit.Beta), ["log_c"] = Number(fit.LogC), ["rms_log_residual"] = Number(fit.RmsLogResidual), ["method"] = fit.Method,
        };
        json["sizes"] = new JsonArray(stats.Select(x => (JsonNode?)new JsonObject
        {
            ["n1"] = x.Hidden,
            ["parameters"] = r.Sizes.Single(z => z.Hidden == x.Hidden).Parameters,
            ["networks"] = x.Networks,
            ["diverged"] = x.Diverged,
            ["mean_test_loss"] = Number(x.MeanTestLoss),
            ["std_test_loss"] = Number(x.StdTestLoss),
            ["mean_scaled_test_loss"] = Number(x.MeanScaled),
            ["std_scaled_test_loss"] = Number(x.StdScaled),
            ["mean_train_loss"] = Number(x.MeanTrainLoss),
            ["mean_test_error"] = Number(x.MeanTestError),
            ["pearson_train_test"] = Number(x.Pearson),
            ["paper_pearson"] = x.PaperPearson,
            ["seconds"] = Math.Round(r.Sizes.Single(z => z.Hidden == x.Hidden).Seconds, 1),
        }).ToArray());
        json["index"] = new JsonArray(r.Index.Select(x => (JsonNode?)new JsonObject
        {
            ["n1"] = x.Hidden,
            ["network"] = x.Network,
            ["parameters"] = x.Parameters,
            ["negative"] = x.Negative,
            ["near_zero"] = x.NearZero,
            ["normalized_index"] = Number(x.NormalizedIndex),
            ["lambda_min"] = Number(x.LambdaMin),
            ["lambda_max"] = Number(x.LambdaMax),
            ["gradient_norm"] = Number(x.GradientNorm),
        }).ToArray());
        json["verdicts"] = new JsonObject
        {
            ["narrowing_histograms"] = v.Narrowing,
            ["correlation_falls_with_n1"] = v.CorrelationFalls,
            ["normalized_index_small"] = v.IndexSmall,
        };
        json["complete"] = r.Complete;
        json["seconds"] = Math.Round(r.Seconds, 1);
        json["training_seconds"] = Math.Round(r.Sizes.Sum(z => z.Seconds), 1);
        json["index_seconds"] = Math.Round(r.Index.Sum(x => x.Seconds), 1);
        json["resumed_pieces"] = r.ResumedPieces;
        return json;
    }

    // ---- Markdown ----------------------------------------------------------------------------------------------

    static string Markdown(LossSurfacesResult r, LossScalingFit fit, IReadOnlyList<LossSurfacesSizeStats> stats, Verdicts v, string commandLine, string machine,
        string stem, string? histogram, string? spread)
    {
        var s = r.Settings;
        var md = new StringBuilder();
        void Line(string text = "") => md.Append(text).Append('\n');
        var title = "Loss surfaces of one-hidden-layer networks (Choromanska et al. 2015, Sec. 5)";
        ReportHeader.AppendMarkdown(md, title,
        [
            "Choromanska et al. train 1,000 one-hidden-layer ReLU networks per width n1 ∈ {25, 50, 100, 250, 500} on MNIST downsampled to 10×10 " +
            "(200 epochs of SGD with learning-rate decay from random starts) and find that the test losses of the solutions crowd into a band " +
            "that narrows as n1 grows (Fig. 3, right), that training and test loss decorrelate as n1 grows (Table 1), and that the solutions are minima or " +
            "near-minima (normalised Hessian index of order 0.01 or 0, Fig. 4). This report repeats the experiment on Fashion-MNIST.",
        ], s.Budget, "Smoke budget: a few networks for two epochs on a few hundred images, to exercise every code path; its numbers judge nothing.", commandLine, machine);
        if (!r.Complete)
        {
            Line("**Incomplete: the run was stopped before every size (and index) was finished; run the same command again to continue.**");
            Line();
        }
        Line("## Settings (ours where the paper is silent)");
        Line();
        Line($"- **Data**: {r.Data}. The resampling method is ours (the paper does not state it): area averaging, every input pixel counts.");
        Line($"- **Networks**: {s.Inputs} → n1 → 10 with ReLU, n1 ∈ {{{string.Join(", ", s.Sizes)}}}, **{s.Networks} networks per width** " +
             $"(the paper: 1,000). Output: 10 logits with softmax cross-entropy (ours: the paper's theory has one output, its experiment trains MNIST classifiers).");
        Line($"- **Initialisation** (ours): every weight and bias uniform on [{F(s.InitLow)}, {F(s.InitHigh)}]/√fan_in — the paper's \"uniformly at random within the unit cube\" " +
             "read as the cube [−1, 1]^N scaled per layer by 1/√fan_in (PyTorch's default); the unscaled cube gives n1 = 500 logits in the hundreds. Each network its own seed.");
        Line($"- **Training** (ours where unstated): {s.Epochs} epochs of plain SGD (the paper: 200), minibatch {s.BatchSize}, each network its own sample order, " +
             $"learning rate {F(s.Lr)} decaying exponentially per epoch to {F(s.Lr * s.FinalLrRatio)} at the last (lr_e = lr·{F(s.FinalLrRatio)}^(e/(E−1))). " +
             "All networks of a width are trained together as one batched model (batched matrix products; each network's gradient is that of its own loss).");
        Line($"- **Losses** reported: mean cross-entropy over the whole training set and the whole test set after the last epoch.");
        Line($"- **Scaling** (the paper's, its α and β not stated): fit E[L](n1) = c·exp(α n1^β) to the mean test losses and plot L / exp(α n1^β). " +
             $"Fit: α = {F(fit.Alpha, "G5")}, β = {F(fit.Beta, "G5")}, log c = {F(fit.LogC, "G5")} ({fit.Method}; rms log residual {F(fit.RmsLogResidual, "G3")}). " +
             "Scaling divides each width by a constant, so the relative spread (std/mean) is the same before and after it.");
        Line($"- **Index**: exact Hessian (float64, one Hessian-vector product per column) of the training loss over the whole training set for the first {s.IndexNetworks} " +
             $"network(s) of each width n1 ≤ {s.IndexMaxHidden}, each as a standalone module; |λ| < {F(s.ZeroEigenvalue)} counts as zero; normalised index = negative eigenvalues / parameters. " +
             (s.Sizes.Any(n => n > s.IndexMaxHidden)
                 ? $"Wider networks are skipped: their dense Hessians ({string.Join(", ", s.Sizes.Where(n => n > s.IndexMaxHidden).Select(n => $"n1 = {n}: {(long)s.Inputs * n + n + n * 10L + 10:N0} parameters"))}) are too large for this budget."
                 : ""));
        Line($"- **Seed** {s.Seed}; network i of width n1 starts from seed {s.Seed}·1000000007 + n1·100003 + 2i and shuffles with that seed + 1.");
        Line();
        Line("## Results");
        Line();
        Line("| n1 | parameters | networks | test loss mean ± std | scaled test loss mean ± std | std/mean | train loss mean | test error mean | ρ(train, test) | paper ρ |");
        Line("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var x in stats)
        {
            var size = r.Sizes.Single(z => z.Hidden == x.Hidden);
            Line($"| {x.Hidden} | {size.Parameters:N0} | {x.Networks}{(x.Diverged > 0 ? $" ({x.Diverged} diverged)" : "")} | {F(x.MeanTestLoss, "0.0000")} ± {F(x.StdTestLoss, "0.0000")} | " +
                 $"{F(x.MeanScaled, "0.0000")} ± {F(x.StdScaled, "0.0000")} | {F(x.StdTestLoss / x.MeanTestLoss, "0.0000")} | {F(x.MeanTrainLoss, "0.0000")} | {F(100 * x.MeanTestError, "0.00")}% | " +
                 $"{F(x.Pearson, "0.0000")} | {(x.PaperPearson is { } p ? F(p, "0.0000") : "–")} |");
        }
        Line();
        if (histogram is not null)
        {
            Line($"![Histograms of the scaled test loss per width]({histogram})");
            Line();
        }
        if (spread is not null)
        {
            Line($"![Spread and train/test correlation against n1]({spread})");
            Line();
        }
        if (r.Index.Count > 0)
        {
            Line("### Normalised index of a sample of solutions (Fig. 4)");
            Line();
            Line("| n1 | network | parameters | negative | near zero | normalised index | λ_min | λ_max | ‖∇L_train‖ |");
            Line("|---|---|---|---|---|---|---|---|---|");
            foreach (var x in r.Index)
                Line($"| {x.Hidden} | {x.Network} | {x.Parameters:N0} | {x.Negative} | {x.NearZero} | {F(x.NormalizedIndex, "0.#####")} | {F(x.LambdaMin, "G4")} | {F(x.LambdaMax, "G4")} | {F(x.GradientNorm, "G3")} |");
            Line();
            Line($"How to read it: the most negative eigenvalue is at most {F(r.Index.Max(x => -x.LambdaMin / x.LambdaMax), "0.####")} of the largest in size, and the training " +
                 $"loss's gradient norm at the sampled ends is {F(r.Index.Min(x => x.GradientNorm), "G3")} to {F(r.Index.Max(x => x.GradientNorm), "G3")}: the networks end near, " +
                 $"not at, critical points, and the index counts weak negative curvature beyond the threshold {F(s.ZeroEigenvalue)}.");
            Line();
        }
        Line("## Does it agree with the paper?");
        Line();
        Line("| claim (notes A.7 / Fig. 4) | verdict |");
        Line("|---|---|");
        Line($"| 2. the histogram of the scaled test loss narrows as n1 grows | {v.Narrowing} |");
        Line($"| 3. the train/test Pearson correlation falls with n1 (paper: 0.76 → 0.41) | {v.CorrelationFalls} |");
        if (v.IndexSmall is not null) Line($"| Fig. 4: the solutions' normalised index is of order 0.01 or 0 | {v.IndexSmall} |");
        Line();
        // Name only what differs from the paper: "200 epochs instead of 200" reads as a mistake.
        var differences = new List<string>();
        if (s.Networks != 1000) differences.Add($"{s.Networks} networks per width instead of 1,000");
        if (s.Epochs != 200) differences.Add($"{s.Epochs} epochs instead of 200");
        if (s.TrainSamples != 60_000) differences.Add($"{s.TrainSamples:N0} training images instead of 60,000");
        differences.Add("Fashion-MNIST instead of MNIST");
        Line($"The budget is not the paper's: {string.Join(", ", differences.Take(differences.Count - 1))}{(differences.Count > 1 ? " and " : "")}{differences[^1]}; " +
             "the verdicts are about the trends, not the paper's numbers.");
        Line();
        Line($"Data: `{stem}.json` (summary), `{stem}.csv` (one row per network){(histogram is not null ? $", `{stem}-histograms.svg`, `{stem}-spread.svg`" : "")}. " +
             $"Compute: {F(r.Sizes.Sum(z => z.Seconds), "0")} s of training and evaluation, {F(r.Index.Sum(x => x.Seconds), "0")} s of Hessians " +
             $"({F(r.Seconds, "0")} s in the invocation that wrote this report, which read {r.ResumedPieces} finished piece(s) from earlier ones).");
        return md.ToString();
    }

    static string F(double value, string format = "G6") => double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : "–";

    static double Mean(double[] v) => v.Length == 0 ? double.NaN : v.Average();

    static double Std(double[] v)
    {
        if (v.Length < 2) return double.NaN;
        var m = v.Average();
        return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Length - 1));
    }

    /// <summary>Pearson's correlation coefficient; NaN when either has no spread.</summary>
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count || x.Count < 2) return double.NaN;
        var mx = x.Average();
        var my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < x.Count; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxx > 0 && syy > 0 ? sxy / Math.Sqrt(sxx * syy) : double.NaN;
    }
}
