using WideValley.Reports;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Experiments;
using WideValley.Landscape;

namespace WideValley.Experiments;

/// <summary>One network of the Sec. 5.1 reproduction as far as it got: skipped, pending, or trained and measured.</summary>
public sealed record UniversalityResult
{
    /// <summary>The network and the paper's numbers for it.</summary>
    public required UniversalityNetwork Network { get; init; }
    /// <summary>The data it trained on, as reports name it.</summary>
    public required string Dataset { get; init; }
    /// <summary>Why it was not run at all (missing data); null when it was.</summary>
    public string? SkipReason { get; init; }
    /// <summary>Why it has no spectrum yet (training diverged, not finished, measurement not done); null when it has one.</summary>
    public string? Pending { get; init; }
    /// <summary>Trainable parameters of the network.</summary>
    public long? Parameters { get; init; }
    /// <summary>What training reached, in words ("test error 9.64%").</summary>
    public string? TrainingOutcome { get; init; }
    /// <summary>The number behind <see cref="TrainingOutcome"/> and its name, for the JSON (e.g. "test_error_percent").</summary>
    public (string Name, double Value)? TrainingMetric { get; init; }
    /// <summary>The training run's settings (null when it has not run).</summary>
    public Training.RunConfig? TrainingConfig { get; init; }
    /// <summary>Wall time of the training run in seconds, summed over resumptions (null when it has not run).</summary>
    public double? TrainingSeconds { get; init; }
    /// <summary>The measurement asked for at this budget.</summary>
    public required SpectrumPlan Plan { get; init; }
    /// <summary>Evaluation samples the spectrum was taken over, and what a sample is ("images", "lines").</summary>
    public long? Samples { get; init; }
    /// <summary>What one of <see cref="Samples"/> is, plural, for reports: "images" or "lines".</summary>
    public string SampleUnit { get; init; } = "images";
    /// <summary>Parameters measured (n; below <see cref="Parameters"/> when only a layer is measured).</summary>
    public long? Dimension { get; init; }
    /// <summary>The dtype the measurement computed in, as torch names it (e.g. "float32"); null before the measurement.</summary>
    public string? Dtype { get; init; }
    /// <summary>Wall time of the measurement in seconds, summed over its parts (null before the measurement).</summary>
    public double? MeasurementSeconds { get; init; }
    /// <summary>The spectrum's summary (extremes, fractions near zero) the report compares with the paper; null before the measurement.</summary>
    public SpectrumSummary? Summary { get; init; }
    /// <summary>All eigenvalues (exact), or the diagonal Fisher's entries: the plot is their histogram.</summary>
    public IReadOnlyList<double>? Eigenvalues { get; init; }
    /// <summary>The quadrature (SLQ) when there are no eigenvalues: the plot is its density.</summary>
    public SlqResult? Quadrature { get; init; }

    /// <summary>Whether the network has a spectrum to report.</summary>
    public bool Measured => SkipReason is null && Pending is null && Summary is not null;
}

/// <summary>Everything the Sec. 5.1 report states.</summary>
/// <param name="Stem">File name stem, hessian-universality[-BUDGET].</param>
/// <param name="Title">The report's heading.</param>
/// <param name="Introduction">Markdown paragraphs under the heading.</param>
/// <param name="Budget">The budget.</param>
/// <param name="Command">The command that reproduces the report.</param>
/// <param name="Machine">The machine it ran on.</param>
/// <param name="Results">One result per network asked for, in the paper's order.</param>
public sealed record UniversalityReportInput(string Stem, string Title, IReadOnlyList<string> Introduction, Budget Budget, string Command, string Machine,
    IReadOnlyList<UniversalityResult> Results);

/// <summary>
/// Writes the reproduction of seed 003 Sec. 5.1 (Figs. 1 and 3): a Markdown table of each network's spectrum
/// statistics with the paper's values beneath, plain statements of where they agree and why they may not, a JSON twin
/// with every number, and one Fig. 1 style plot per network (bulk around zero, both tails on log counts).
/// </summary>
public static class HessianUniversalityReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The report's file stem: the paper budget writes hessian-universality, the others add the budget.</summary>
    public static string FileStem(Budget budget) => Budgets.ReportStem("hessian-universality", budget);

    /// <summary>Writes the report files into <paramref name="folder"/> atomically and returns their paths (Markdown last).</summary>
    /// <param name="folder">The report folder.</param>
    /// <param name="input">What the report shows.</param>
    /// <param name="warning">Told once when the figures cannot be drawn (the plotting font is missing); the Markdown then
    /// links no figure, and the JSON and Markdown are written all the same.</param>
    public static IReadOnlyList<string> Write(string folder, UniversalityReportInput input, Action<string>? warning = null)
    {
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        var plots = new Dictionary<string, string>();
        var figures = new ReportFigures(written, warning);
        foreach (var result in input.Results.Where(r => r.Measured))
        {
            if (figures.TrySave(Plot(result), Path.Combine(folder, $"{input.Stem}-{result.Network.Name}")) is { } png)
                plots[result.Network.Name] = png;
        }
        var json = Path.Combine(folder, input.Stem + ".json");
        AtomicFile.WriteAllText(json, ToJson(input, plots).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(folder, input.Stem + ".md");
        AtomicFile.WriteAllText(markdown, ToMarkdown(input, plots));
        written.Add(markdown);
        return written;
    }

    /// <summary>The threshold the paper quotes for this network (the plot annotates that fraction).</summary>
    static double QuotedThreshold(UniversalityNetwork network) =>
        network.Paper.FractionAbsBelow.Count > 0 ? network.Paper.FractionAbsBelow.Keys.First() : 1e-4;

    internal static Figure Plot(UniversalityResult r)
    {
        var s = r.Summary!;
        var threshold = QuotedThreshold(r.Network);
        var what = r.Network.Kind == SpectrumMethod.DiagonalFisher ? "diagonal Fisher" : "Hessian spectrum";
        var title = string.Create(C, $"{r.Network.Title} on {r.Dataset}: {what}, {MethodShort(r)}, n = {r.Dimension:N0}, {r.Samples:N0} {r.SampleUnit}");
        var statistics = new SpectrumStatistics(s.Count is long n ? (int)n : null, s.LambdaMin, s.LambdaMax, threshold, s.FractionBelow(threshold));
        if (r.Eigenvalues is not null)
            return SpectrumPlot.FromEigenvalues(r.Eigenvalues, new SpectrumPlotOptions
            {
                Title = title,
                NearZeroThreshold = threshold,
                Statistics = statistics,
                XLabel = r.Network.Kind == SpectrumMethod.DiagonalFisher ? "diagonal Fisher entry" : "eigenvalue",
            });
        // The grid stops at Lanczos' converged extremes: past them the smoothing kernel would draw tails that do not exist.
        var density = r.Quadrature!.Density(lo: s.LambdaMin, hi: s.LambdaMax);
        return SpectrumPlot.FromDensity(density.Grid, density.Density, new SpectrumPlotOptions { Title = title, Statistics = statistics });
    }

    static string MethodShort(UniversalityResult r) => r.Plan.Method switch
    {
        SpectrumMethod.Exact => r.Plan.Parameters is null ? "exact" : $"exact, {r.Plan.Parameters} only",
        SpectrumMethod.LanczosAndSlq => "SLQ density, Lanczos extremes",
        _ => "minibatch variance",
    };

    // ---- JSON ------------------------------------------------------------------------------------------------------

    static JsonObject ToJson(UniversalityReportInput input, IReadOnlyDictionary<string, string> plots)
    {
        var networks = new JsonArray();
        foreach (var r in input.Results)
        {
            var s = r.Summary;
            var o = new JsonObject
            {
                ["network"] = r.Network.Name,
                ["title"] = r.Network.Title,
                ["dataset"] = r.Dataset,
                ["skipped"] = r.SkipReason is not null,
                ["skip_reason"] = r.SkipReason,
                ["pending"] = r.Pending,
                ["params"] = r.Parameters,
                ["training_outcome"] = r.TrainingOutcome,
                ["training_metric"] = r.TrainingMetric is { } metric ? new JsonObject { ["name"] = metric.Name, ["value"] = Finite(metric.Value) } : null,
                ["training_seconds"] = r.TrainingSeconds,
                ["method"] = r.Plan.Method switch { SpectrumMethod.Exact => "exact", SpectrumMethod.LanczosAndSlq => "lanczos+slq", _ => "diag-fisher" },
                ["method_description"] = r.Plan.Describe(),
                ["parameters_measured"] = r.Plan.Parameters ?? "all",
                ["samples"] = r.Samples,
                ["sample_unit"] = r.SampleUnit,
                ["n"] = r.Dimension,
                ["dtype"] = r.Dtype,
                ["measurement_seconds"] = r.MeasurementSeconds,
                ["eigenvalue_count"] = s?.Count,
                ["fraction_abs_below"] = s is null ? null : Fractions(SpectrumSummary.Thresholds.Zip(s.FractionAbsBelow)),
                ["lambda_max"] = s is null ? null : Finite(s.LambdaMax),
                ["lambda_min"] = s is null ? null : Finite(s.LambdaMin),
                ["negative_fraction"] = s is null ? null : Finite(s.NegativeFraction),
                ["right_tail_fraction"] = s is null ? null : Finite(s.RightTailFraction),
                ["left_tail_fraction"] = s is null ? null : Finite(s.LeftTailFraction),
                ["tail_mass_ratio"] = s?.TailMassRatio is double m ? Finite(m) : null,
                ["tail_extent_ratio"] = s?.TailExtentRatio is double e ? Finite(e) : null,
                ["round_off_floor"] = s is null || r.Dtype is null ? null : Finite(SpectrumSummary.RoundOffFloor(Math.Max(s.LambdaMax, -s.LambdaMin), r.Dtype)),
                ["plot"] = plots.TryGetValue(r.Network.Name, out var png) ? png : null,
                ["paper"] = new JsonObject
                {
                    ["figure"] = r.Network.Paper.Figure,
                    ["data"] = r.Network.Paper.Data,
                    ["params"] = r.Network.Paper.Parameters,
                    ["optimizer"] = r.Network.Paper.Optimizer,
                    ["result"] = r.Network.Paper.Result,
                    ["fraction_abs_below"] = Fractions(r.Network.Paper.FractionAbsBelow.Select(kv => (kv.Key, kv.Value))),
                    ["lambda_max"] = r.Network.Paper.LambdaMax,
                    ["lambda_min"] = r.Network.Paper.LambdaMin,
                    ["claim"] = r.Network.Paper.Quote,
                },
                ["statements"] = new JsonArray(Statements(r, input.Budget).Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
            };
            networks.Add(o);
        }
        var json = ReportHeader.Json(input.Stem, input.Title, input.Budget, input.Command, input.Machine);
        json["thresholds"] = new JsonArray(SpectrumSummary.Thresholds.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray());
        json["tail_threshold"] = SpectrumSummary.TailThreshold;
        json["negative_threshold"] = SpectrumSummary.NegativeThreshold;
        json["networks"] = networks;
        return json;
    }

    /// <summary>Threshold keys spelled as the hessian command spells them ("1e-05", "0.0001", ...).</summary>
    static JsonObject Fractions(IEnumerable<(double Threshold, double Fraction)> pairs)
    {
        var o = new JsonObject();
        foreach (var (t, f) in pairs) o[t.ToString("R", C).Replace("E-", "e-", StringComparison.Ordinal)] = Finite(f);
        return o;
    }

    static double? Finite(double v) => double.IsFinite(v) ? v : null;

    // ---- Markdown --------------------------------------------------------------------------------------------------

    static string ToMarkdown(UniversalityReportInput input, IReadOnlyDictionary<string, string> plots)
    {
        var md = new StringBuilder();
        ReportHeader.AppendMarkdown(md, input.Title, input.Introduction, input.Budget,
            "A smoke run: a few optimizer steps, one small layer's block of the Hessian or a few Lanczos steps. These numbers show that every step ran; " +
            "they say nothing about the paper's claims.", input.Command, input.Machine);
        md.AppendLine("How to read the table:");
        md.AppendLine("- **|λ| < t**: the fraction of eigenvalues (for SLQ: of spectral mass) with magnitude below t.");
        md.AppendLine(string.Create(C, $"- **λ < −{PlotStyle.Number(SpectrumSummary.NegativeThreshold)}**: negative beyond the near-zero band; smaller negative eigenvalues are as likely round-off as curvature."));
        md.AppendLine(string.Create(C, $"- **Tail shape**: the right tail (λ > {PlotStyle.Number(SpectrumSummary.TailThreshold)}) and the left tail (λ < −{PlotStyle.Number(SpectrumSummary.TailThreshold)}) " +
                                       $"as fractions, *right/left* the ratio of the two (n/a: no eigenvalue in the left tail), and λ_max/|λ_min| how much farther the right tail reaches " +
                                       $"(n/a: no eigenvalue below −{PlotStyle.Number(SpectrumSummary.NegativeThreshold)})."));
        if (input.Results.Any(r => r.Measured && r.Summary!.Count is null))
            md.AppendLine("- **SLQ rows** (the small budget): each fraction is the quadrature weight of the nodes in the band. Ninety nodes per probe spread " +
                          "over the whole spectrum cannot resolve bands much narrower than 1e-2, so the 1e-5 to 1e-3 columns and λ < −1e-4 say where a few " +
                          "heavy nodes near zero fell, not how many eigenvalues lie there; λ_max and λ_min come from Lanczos and are accurate. The paper " +
                          "budget counts every band exactly.");
        md.AppendLine("- Each network's row is followed by the paper's values; blank cells are numbers the paper does not give.");
        md.AppendLine("- The All-CNN-BN row lists the diagonal Fisher's entries in place of eigenvalues, as the paper does (Fig. 3c); they are variances, never negative.");
        md.AppendLine();
        md.AppendLine("| network | data | params | training result | method | samples | \\|λ\\| < 1e-5 | \\|λ\\| < 1e-4 | \\|λ\\| < 1e-3 | \\|λ\\| < 1e-2 | λ_max | λ_min | λ < −1e-4 | λ > 1e-2 | λ < −1e-2 | right/left | λ_max/\\|λ_min\\| |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in input.Results)
        {
            md.AppendLine(OurRow(r));
            md.AppendLine(PaperRow(r.Network));
        }
        md.AppendLine();
        md.AppendLine("## Against the paper");
        md.AppendLine();
        foreach (var r in input.Results)
        {
            md.AppendLine($"**{r.Network.Title}** ({r.Network.Paper.Figure}: \"{r.Network.Paper.Quote}\")");
            md.AppendLine();
            foreach (var statement in Statements(r, input.Budget)) md.AppendLine($"- {statement}");
            md.AppendLine();
        }
        foreach (var r in input.Results.Where(r => r.SkipReason is null))
        {
            md.AppendLine($"## {r.Network.Title}");
            md.AppendLine();
            if (plots.TryGetValue(r.Network.Name, out var png))
            {
                md.AppendLine($"![{r.Network.Title}: {(r.Network.Kind == SpectrumMethod.DiagonalFisher ? "diagonal Fisher" : "Hessian spectrum")}]({png})");
                md.AppendLine();
            }
            if (r.TrainingConfig is not null)
                md.AppendLine(string.Create(C, $"Training: {ComparisonReport.Settings(r.TrainingConfig)}{(r.TrainingSeconds is double ts ? $" Training took {ts:0} s." : "")}"));
            md.AppendLine();
            md.AppendLine(string.Create(C, $"Measurement: {r.Plan.Describe()}, over the first {r.Samples ?? r.Plan.Samples:N0} training {r.SampleUnit}{(r.MeasurementSeconds is double ms ? $", {ms:0} s." : ".")}"));
            md.AppendLine();
        }
        return md.ToString();
    }

    static string OurRow(UniversalityResult r)
    {
        var name = r.Network.Title;
        if (r.SkipReason is not null) return $"| {name} | {r.Dataset} | | skipped: {r.SkipReason} | | | | | | | | | | | | | |";
        var parameters = r.Parameters is long p ? p.ToString("N0", C) : "";
        if (!r.Measured)
            return $"| {name} | {r.Dataset} | {parameters} | {r.TrainingOutcome ?? ""} | {r.Plan.Describe()}: {r.Pending} | | | | | | | | | | | | |";
        var s = r.Summary!;
        var samples = string.Create(C, $"{r.Samples:N0} {r.SampleUnit}");
        var method = r.Plan.Parameters is null ? MethodShort(r) : string.Create(C, $"{MethodShort(r)} (n = {r.Dimension:N0})");
        var cells = new List<string>
        {
            name, r.Dataset, parameters, r.TrainingOutcome ?? "", method, samples,
        };
        cells.AddRange(s.FractionAbsBelow.Select(Percent));
        cells.Add(Value(s.LambdaMax));
        cells.Add(Value(s.LambdaMin));
        cells.Add(Percent(s.NegativeFraction));
        cells.Add(Percent(s.RightTailFraction));
        cells.Add(Percent(s.LeftTailFraction));
        cells.Add(s.TailMassRatio is double m ? m.ToString("0.#", C) : "n/a");
        cells.Add(s.TailExtentRatio is double e ? e.ToString("0.#", C) : "n/a");
        return "| " + string.Join(" | ", cells) + " |";
    }

    static string PaperRow(UniversalityNetwork n)
    {
        var p = n.Paper;
        var cells = new List<string> { $"↳ paper, {p.Figure}", p.Data, p.Parameters.ToString("N0", C), p.Result, p.Optimizer, "" };
        cells.AddRange(SpectrumSummary.Thresholds.Select(t => p.FractionAbsBelow.TryGetValue(t, out var f) ? "about " + PaperPercent(f) : ""));
        cells.Add(p.LambdaMax is double max ? "about " + PaperValue(max) : "");
        cells.Add(p.LambdaMin is double min ? "about " + PaperValue(min) : "");
        cells.AddRange(["", "", "", "", ""]);
        return "| " + string.Join(" | ", cells) + " |";
    }

    /// <summary>The paper's numbers as precisely as it gives them ("about 94%", "about -0.46").</summary>
    static string PaperPercent(double fraction) => (100 * fraction).ToString("0.#", C) + "%";

    static string PaperValue(double v) => v.ToString("G3", C);

    static string Percent(double fraction) => double.IsFinite(fraction) ? (100 * fraction).ToString("0.00", C) + "%" : "n/a";

    static string Value(double v) => Math.Abs(v) >= 100 ? v.ToString("0.0", C) : Math.Abs(v) >= 0.01 ? v.ToString("0.000", C) : v.ToString("0.##E+0", C);

    // ---- statements ------------------------------------------------------------------------------------------------

    /// <summary>Plain statements of what the numbers say about the paper's claims for one network, and why they may differ.</summary>
    internal static IReadOnlyList<string> Statements(UniversalityResult r, Budget budget)
    {
        if (r.SkipReason is not null) return [$"Not run: {r.SkipReason}."];
        if (!r.Measured) return [$"No spectrum yet: {r.Pending}."];
        var s = r.Summary!;
        var p = r.Network.Paper;
        var lines = new List<string>();
        if (budget == Budget.Smoke)
            lines.Add("Smoke budget: a barely trained network" + (r.Plan.Parameters is null ? " and a few Lanczos steps" : $" and only the `{r.Plan.Parameters}` block of its Hessian") +
                      "; nothing below says anything about the paper.");
        var quadrature = s.Count is null;
        foreach (var (t, paperFraction) in p.FractionAbsBelow)
        {
            var ours = s.FractionBelow(t);
            var difference = 100 * (ours - paperFraction);
            var verdict = Math.Abs(difference) <= 5 ? "agrees (within 5 points)" : difference < 0 ? $"{-difference:0.0} points fewer" : $"{difference:0.0} points more";
            lines.Add(string.Create(C, $"Near-zero fraction |λ| < {PlotStyle.Number(t)}: {Percent(ours)} against the paper's about {PaperPercent(paperFraction)}: {verdict}{(quadrature ? " (an SLQ estimate, which cannot resolve a band narrower than its node spacing; the paper budget counts exactly)." : ".")}"));
        }
        if (p.LambdaMax is double paperMax)
            lines.Add(string.Create(C, $"λ_max {Value(s.LambdaMax)} against about {PaperValue(paperMax)}: {Ratio(s.LambdaMax, paperMax)}."));
        if (p.LambdaMin is double paperMin)
            lines.Add(string.Create(C, $"λ_min {Value(s.LambdaMin)} against about {PaperValue(paperMin)}: {Ratio(s.LambdaMin, paperMin)}."));

        // The qualitative claims of Sec. 5.1, checked for every network.
        var flat = s.FractionBelow(SpectrumSummary.TailThreshold);
        lines.Add(string.Create(C, $"Mostly flat (the paper: a large peak near zero): {Percent(flat)} of |λ| < {PlotStyle.Number(SpectrumSummary.TailThreshold)}, {(flat >= 0.9 ? "so this holds." : "below the 90% of Fig. 3a, so this holds only in part.")}"));
        if (r.Network.Kind == SpectrumMethod.DiagonalFisher)
            lines.Add("Tails: the diagonal Fisher has no negative entries (a variance), so only its right tail can be compared; " +
                      string.Create(C, $"{Percent(s.RightTailFraction)} of the entries exceed {PlotStyle.Number(SpectrumSummary.TailThreshold)}, the largest {Value(s.LambdaMax)}."));
        else
        {
            var longRight = s.RightTailFraction > s.LeftTailFraction && (s.TailExtentRatio is not double e || e > 10);
            lines.Add(string.Create(C, $"Long right tail, short left tail (the paper: few, small negative eigenvalues): {Percent(s.RightTailFraction)} above +{PlotStyle.Number(SpectrumSummary.TailThreshold)} " +
                                       $"against {Percent(s.LeftTailFraction)} below −{PlotStyle.Number(SpectrumSummary.TailThreshold)}, λ_max/|λ_min| = " +
                                       $"{(s.TailExtentRatio is double x ? x.ToString("0.#", C) : $"n/a (no eigenvalue below −{PlotStyle.Number(SpectrumSummary.NegativeThreshold)})")}{(longRight ? ", so this holds." : ", so this does not hold here.")}"));
        }

        // Why the numbers may differ from the paper's.
        if (r.Dataset.Contains(Data.DatasetCatalog.FashionMnist, StringComparison.Ordinal) && p.Data == "MNIST")
            lines.Add("Fashion-MNIST stands in for MNIST (not on this machine): a harder data set, so the network ends at a higher training loss, which " +
                      "leaves curvature in more directions (a larger λ_max and a smaller near-zero fraction are the expected direction).");
        if (r.Dtype is string dtype && r.Network.Kind != SpectrumMethod.DiagonalFisher)
        {
            var floor = SpectrumSummary.RoundOffFloor(Math.Max(s.LambdaMax, -s.LambdaMin), dtype);
            lines.Add(PrecisionSentence(floor, dtype));
        }
        if (r.Network.IsLanguageModel)
            lines.Add("The text: the paper re-generated its own 256 lines of 32 characters; ours are cut from the corpus named in the data column, " +
                      "each line a sequence from the zero state, which is both the training loss and the measured one.");
        if (r.Network.Kind == SpectrumMethod.DiagonalFisher)
            lines.Add("The paper took E(g²) − (E g)² from Adam's running moments, which average over the last thousand or so steps of training; ours is " +
                      "the variance of minibatch gradients at the final weights, the same quantity without the drift along the trajectory.");
        return lines;
    }

    static string Ratio(double ours, double paper)
    {
        if (paper == 0 || Math.Sign(ours) != Math.Sign(paper)) return "of another sign";
        var ratio = ours / paper;
        return ratio is >= 0.5 and <= 2
            ? string.Create(C, $"the same size (ratio {ratio:0.00})")
            : string.Create(C, $"{(ratio > 1 ? ratio : 1 / ratio):G3} times {(Math.Abs(ours) > Math.Abs(paper) ? "larger" : "smaller")} in magnitude");
    }

    /// <summary>
    /// What round-off does to the near-zero bands: a band whose bound is below ε·‖H‖ cannot be told from zero (its
    /// fraction counts numerical zeros), one within a factor 10 of it is at round-off level, and the rest measure
    /// curvature. A large λ_max in float32 puts the paper's 1e-5 band below round-off, which a reader must know before
    /// comparing fractions.
    /// </summary>
    internal static string PrecisionSentence(double floor, string dtype)
    {
        var bands = SpectrumSummary.Thresholds;
        var below = bands.Where(t => t <= floor).ToList();
        var near = bands.Where(t => t > floor && t < 10 * floor).ToList();
        static string Bands(IReadOnlyList<double> ts) => string.Join(" and ", ts.Select(t => string.Create(C, $"|λ| < {t:0e0}")));
        var head = string.Create(C, $"Precision: computed in {dtype}; eigenvalues are accurate to about ε·‖H‖ = {PlotStyle.Number(floor)}, so ");
        if (below.Count == 0 && near.Count == 0) return head + string.Create(C, $"even the {bands[0]:0e0} band is well above round-off.");
        var parts = new List<string>();
        if (below.Count > 0)
            parts.Add($"the {Bands(below)} band{(below.Count > 1 ? "s lie" : " lies")} below round-off: an eigenvalue that small cannot be told from zero in " +
                      $"{dtype}, so {(below.Count > 1 ? "those fractions count" : "that fraction counts")} numerical zeros, not measured flatness" +
                      (dtype == "float64" ? "" : " (`widevalley hessian --dtype float64` resolves them)"));
        if (near.Count > 0)
            parts.Add($"the {Bands(near)} band{(near.Count > 1 ? "s are" : " is")} within a factor 10 of round-off and read{(near.Count > 1 ? "" : "s")} as \"numerically zero\"");
        return head + string.Join("; ", parts) + ".";
    }
}
