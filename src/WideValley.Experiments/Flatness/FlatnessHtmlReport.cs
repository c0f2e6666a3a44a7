using System.Globalization;
using WideValley.Landscape.Flatness;
using WideValley.Reports;
using WideValley.Reports.Html;

namespace WideValley.Experiments.Flatness;

/// <summary>
/// A plot the flatness report drew, for the HTML page: the same <see cref="Figure"/> that <see cref="FlatnessReport"/>
/// saves as plots/STEM.png and .svg.
/// </summary>
/// <param name="Stem">The file stem (model1-surface-grid, interpolation-1): the page's element id is "plot-" + stem.</param>
/// <param name="Title">What the plot shows (its caption).</param>
/// <param name="Measure">The measure whose table it draws, or null for an interpolation between two models.</param>
/// <param name="Figure">The figure.</param>
internal sealed record FlatnessPlot(string Stem, string Title, string? Measure, Figure Figure)
{
    /// <summary>The plot's element id in flatness.html.</summary>
    public string ElementId => "plot-" + Stem;
}

/// <summary>
/// flatness.html: the flatness report as one self-contained page (<see cref="HtmlReport"/>): header (date, machine,
/// command), the models, the summary table (one column per model, each judged value's cells coloured by the verdict),
/// the ReLU-rescaling invariance table, the plots drawn by <see cref="FlatnessReport"/> inline (SVG, or PNG when the
/// SVG would be large), per-layer traces, interpolations, the cost estimate against the work done, and notes.
/// Written by <see cref="FlatnessReport.Write"/> beside flatness.md and before flatness.json.
/// </summary>
public static class FlatnessHtmlReport
{
    /// <summary>The page's file name.</summary>
    public const string FileName = "flatness.html";

    /// <summary>The summary table's element id.</summary>
    public const string SummaryTableId = "summary";

    /// <summary>
    /// A difference of fewer standard errors than this is within the noise: the cells are grey (neutral) rather than
    /// green for the flattest model and red for the others.
    /// </summary>
    public const double NoiseStandardErrors = 2;

    /// <summary>An inline SVG longer than this (characters) goes into the page as a PNG instead (a dense surface).</summary>
    internal const int LargestInlineSvg = 256 * 1024;

    // Sections of plots, in page order, and the measures whose plots each holds; plots of any other measure go last.
    private static readonly (string Heading, string[] Measures)[] PlotSections =
    [
        ("Hessian spectrum and density", ["hessian-extremes", "hessian-density"]),
        ("Slices and surface", ["slice-random", "slice-eigenvector", "surface"]),
        ("Local entropy", ["local-entropy"]),
    ];

    /// <summary>The page for <paramref name="results"/>, holding <paramref name="plots"/>; <paramref name="skippedPlots"/> says which plots are missing and why.</summary>
    internal static HtmlReport Build(FlatnessResults results, FlatnessReportContext context, IReadOnlyList<FlatnessPlot> plots,
        IReadOnlyList<string> skippedPlots, DateTimeOffset date)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(context);
        var models = results.Models;
        var names = models.Select(m => m.Name).ToList();
        var title = models.Count == 1 ? $"Flatness of {models[0].Name}" : $"Flatness of {string.Join(", ", names.SkipLast(1))} and {names[^1]}";
        var report = new HtmlReport(title, new HtmlReportHeader(context.Machine, ReportHeader.Portable(context.Command).Command, date));

        report.AddSection("Models");
        // Sources are named like the command's inputs: by file name where the path is this machine's.
        report.AddParagraph(string.Create(CultureInfo.InvariantCulture,
            $"Budget {results.Budget.Name}, seed {results.Seed}, {FlatnessRunner.Say(results.Seconds)} wall time."));
        var modelTable = new HtmlTable("models", ["model", "source", "id (weights hash)", "parameters", "samples (train / test)", "data"]) { FirstColumnIsRowHeading = true };
        foreach (var m in models)
            modelTable.AddRow(m.Name, ReportHeader.Portable(m.Source).Command, m.Id, HtmlCell.Number(m.Size.Parameters, "N0"),
                HtmlCell.Number(string.Create(CultureInfo.InvariantCulture, $"{m.Size.TrainSamples:N0} / {m.Size.TestSamples:N0}")), m.Data);
        report.AddTable(modelTable);

        report.AddSection("Summary");
        report.AddParagraph(
            "Values ± one standard error where the estimator has one. The verdict compares the flattest model with the runner-up. " +
            string.Create(CultureInfo.InvariantCulture, $"Green: the flattest model; red: the others; grey: a tie or a difference of fewer than {NoiseStandardErrors:0} standard errors. ") +
            "\"No standard error\" means the estimator gives none, so the difference cannot be judged against noise; values that are not flatness measures (losses, errors) are not coloured.");
        report.AddTable(SummaryTable(results));

        report.AddSection("Invariance to ReLU rescaling");
        report.AddParagraph(
            "Rescaling a ReLU layer by a > 0 and the next by 1/a leaves the network's function unchanged (Dinh et al. 2017). Invariant measures " +
            "report the same number for both parametrisations; the others can be made as large or small as one likes without changing the function.");
        var rescaling = new HtmlTable("rescaling", ["measure", "invariant", "why"]) { FirstColumnIsRowHeading = true };
        foreach (var item in models.SelectMany(m => m.Measurements).DistinctBy(x => x.Measure))
            rescaling.AddRow(item.Title, Invariant(item.Rescaling), item.RescalingReason);
        report.AddTable(rescaling);

        var placed = new HashSet<FlatnessPlot>();
        foreach (var (heading, measures) in PlotSections)
            AddPlots(report, heading, plots.Where(p => p.Measure is { } measure && measures.Contains(measure)).ToList(), placed);
        AddPlots(report, "Other plots", plots.Where(p => p.Measure is not null && !placed.Contains(p)).ToList(), placed);
        if (skippedPlots.Count > 0)
        {
            report.AddSection("Plots not drawn");
            report.AddParagraph(string.Join("\n", skippedPlots));
        }

        AddLayerTables(report, models);
        AddInterpolations(report, results, plots.Where(p => p.Measure is null).ToList(), placed);
        AddCost(report, models);

        var notes = models.SelectMany(m => m.Measurements.SelectMany(x => x.Result.Notes.Select(n => $"{m.Name}, {x.Measure}: {n}"))).ToList();
        if (notes.Count > 0)
        {
            report.AddSection("Notes");
            report.AddParagraph(string.Join("\n", notes));
        }

        report.AddSection("How it was made");
        report.AddParagraph("The command (machine-specific paths replaced by file names):");
        report.AddCode(report.Header!.Command);
        report.AddParagraph($"Machine: {context.Machine}");
        return report;
    }

    /// <summary>The summary: a row per compared value, a column per model, the verdict; judged cells coloured (see <see cref="Tone"/>).</summary>
    internal static HtmlTable SummaryTable(FlatnessResults results)
    {
        var models = results.Models;
        var table = new HtmlTable(SummaryTableId, ["measure", "ReLU-rescaling invariant", .. models.Select(m => m.Name), "flatter when", "verdict"],
            "One column per model; the verdict per measure")
        { FirstColumnIsRowHeading = true };
        foreach (var row in results.Comparison)
        {
            var cells = new List<HtmlCell> { row.Label, Invariant(row.Rescaling) };
            for (var i = 0; i < models.Count; i++)
                cells.Add(HtmlCell.Number(FlatnessReport.Cell(i < row.Values.Count ? row.Values[i] : null), Tone(row, i)));
            cells.Add(row.Flatter switch { FlatterWhen.Lower => "lower", FlatterWhen.Higher => "higher", _ => "–" });
            cells.Add(new HtmlCell(row.Verdict) { Tone = IsWithinNoise(row) ? CellTone.Neutral : CellTone.None });
            table.AddRow(cells);
        }
        return table;
    }

    /// <summary>
    /// The colour of model <paramref name="model"/>'s cell in <paramref name="row"/>: none for values that are not
    /// judged or not finite; neutral for a tie or a difference within <see cref="NoiseStandardErrors"/>; otherwise
    /// better for the flattest model and worse for the others.
    /// </summary>
    internal static CellTone Tone(FlatnessComparisonRow row, int model)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Flatter == FlatterWhen.NotJudged || model >= row.Values.Count || row.Values[model] is not { } value || !double.IsFinite(value.Value))
            return CellTone.None;
        if (IsWithinNoise(row)) return CellTone.Neutral;
        if (row.Flattest is not int flattest) return CellTone.None;
        return model == flattest ? CellTone.Better : CellTone.Worse;
    }

    // A tie (two or more finite values, no flattest) or a difference smaller than the noise.
    private static bool IsWithinNoise(FlatnessComparisonRow row)
    {
        if (row.Flatter == FlatterWhen.NotJudged) return false;
        var finite = row.Values.Count(v => v is { } x && double.IsFinite(x.Value));
        if (finite < 2) return false;
        return row.Flattest is null || row.Sigmas is double z && z < NoiseStandardErrors;
    }

    private static string Invariant(ReluRescaling rescaling) => rescaling == ReluRescaling.Invariant ? "yes" : "no";

    private static void AddPlots(HtmlReport report, string heading, IReadOnlyList<FlatnessPlot> plots, HashSet<FlatnessPlot> placed)
    {
        if (plots.Count == 0) return;
        report.AddSection(heading);
        foreach (var plot in plots) AddPlot(report, plot, placed);
    }

    private static void AddPlot(HtmlReport report, FlatnessPlot plot, HashSet<FlatnessPlot> placed)
    {
        var svg = plot.Figure.ToSvg();
        var caption = $"{plot.Title} (numbers in csv/{plot.Stem}.csv)";
        if (svg.Length > LargestInlineSvg) report.AddPng(plot.ElementId, plot.Figure.ToPng(), caption);
        else report.AddSvg(plot.ElementId, svg, caption);
        placed.Add(plot);
    }

    // Every labelled table (per-layer traces of the Hessian, Gauss-Newton and Fisher), one HTML table per model and table.
    private static void AddLayerTables(HtmlReport report, IReadOnlyList<ModelMeasurements> models)
    {
        var tables = models.SelectMany((m, i) => m.Measurements.SelectMany(x => x.Result.Tables.Where(t => t.Labels is not null)
            .Select(t => (Model: m, Index: i, Measure: x.Measure, Table: t)))).ToList();
        if (tables.Count == 0) return;
        report.AddSection("Per-layer traces");
        foreach (var (model, index, measure, table) in tables)
        {
            var error = table.Columns.FirstOrDefault(c => c.Name == "standard_error");
            var shown = table.Columns.Where(c => c != error).ToList();
            var html = new HtmlTable($"layers-{FlatnessReport.ModelKey(index)}-{measure}-{table.Name}", ["layer", .. shown.Select(c => c.Name.Replace('_', ' '))],
                $"{model.Name}: {table.Title}") { FirstColumnIsRowHeading = true };
            for (var r = 0; r < table.Labels!.Count; r++)
            {
                var cells = new List<HtmlCell> { table.Labels[r] };
                foreach (var column in shown)
                {
                    var value = r < column.Values.Length ? column.Values[r] : double.NaN;
                    if (column.Name == "parameters") cells.Add(HtmlCell.Number(value, "N0"));
                    else if (column.Name == "trace" && error is not null && r < error.Values.Length)
                        cells.Add(HtmlCell.Number($"{FlatnessReport.N(value)} ± {FlatnessReport.N(error.Values[r])}"));
                    else cells.Add(HtmlCell.Number(FlatnessReport.N(value)));
                }
                html.AddRow(cells);
            }
            report.AddTable(html);
        }
    }

    private static void AddInterpolations(HtmlReport report, FlatnessResults results, IReadOnlyList<FlatnessPlot> plots, HashSet<FlatnessPlot> placed)
    {
        if (results.Interpolations.Count == 0) return;
        report.AddSection("Interpolations");
        report.AddParagraph("Loss along w(t) = A + t (B − A) on A's samples; the barrier is the largest rise above the straight line between the end points' losses.");
        var table = new HtmlTable("interpolations", ["from", "to", "barrier"]);
        foreach (var pair in results.Interpolations)
            table.AddRow(pair.From, pair.To, HtmlCell.Number(FlatnessReport.N(pair.Result.Values[0].Value)));
        report.AddTable(table);
        foreach (var plot in plots) AddPlot(report, plot, placed);
    }

    private static void AddCost(HtmlReport report, IReadOnlyList<ModelMeasurements> models)
    {
        report.AddSection("Cost: the estimate against the work done");
        report.AddParagraph("Estimated before measuring from timed unit costs (upper bounds where a method may stop early), and the work each measure did. " +
                            "A measurement reused from an earlier run cost nothing now; its work and time are those of the run that made it.");
        var table = new HtmlTable("cost", ["model", "measure", "estimate", "estimated time", "work done", "time", "reused"]);
        foreach (var m in models)
        {
            foreach (var item in m.Measurements)
                table.AddRow(m.Name, item.Measure, item.Estimate.ToString(), HtmlCell.Number(FlatnessRunner.Say(item.Estimate.Seconds(m.Units))),
                    item.Result.Used.ToString(), HtmlCell.Number(FlatnessRunner.Say(item.Result.Seconds)), item.Reused ? "yes" : "no");
            var estimated = m.Measurements.Aggregate(MeasureCost.None, (sum, x) => sum + x.Estimate);
            var used = m.Measurements.Aggregate(MeasureCost.None, (sum, x) => sum + x.Result.Used);
            table.AddRow(m.Name, "all measures", estimated.ToString(), HtmlCell.Number(FlatnessRunner.Say(estimated.Seconds(m.Units))),
                used.ToString(), HtmlCell.Number(FlatnessRunner.Say(m.Measurements.Sum(x => x.Result.Seconds))), "");
        }
        report.AddTable(table);
        report.AddParagraph(string.Join("\n", models.Select(m => string.Create(CultureInfo.InvariantCulture,
            $"{m.Name}: one HVP {FlatnessReport.N(m.Units.HvpSeconds * 1e3)} ms, one forward pass {FlatnessReport.N(m.Units.ForwardSeconds * 1e3)} ms, " +
            $"one gradient {FlatnessReport.N(m.Units.GradientSeconds * 1e3)} ms, one single-sample gradient {FlatnessReport.N(m.Units.SampleGradientSeconds * 1e3)} ms, " +
            $"one Gauss-Newton product {FlatnessReport.N(m.Units.GaussNewtonSeconds * 1e3)} ms."))));
    }
}
