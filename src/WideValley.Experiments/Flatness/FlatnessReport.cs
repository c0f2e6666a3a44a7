using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Landscape.Flatness;
using WideValley.Reports;

namespace WideValley.Experiments.Flatness;

/// <summary>What the report says about how it was made.</summary>
public sealed record FlatnessReportContext
{
    /// <summary>The command line that made it.</summary>
    public required string Command { get; init; }

    /// <summary>One line describing the machine.</summary>
    public required string Machine { get; init; }

    /// <summary>The cost estimate stated before measuring.</summary>
    public IReadOnlyList<ModelEstimate> Estimates { get; init; } = [];
}

/// <summary>The files a report wrote, and the plots it could not draw.</summary>
/// <param name="Files">Paths relative to the output folder.</param>
/// <param name="Warnings">Plots skipped (e.g. no font), each with the reason.</param>
public sealed record FlatnessReportFiles(IReadOnlyList<string> Files, IReadOnlyList<string> Warnings);

/// <summary>
/// Writes a flatness run's results: CSV files (per-layer traces, densities, slices, surface, interpolations) under
/// csv/, plots (PNG + SVG) under plots/, flatness.md, the self-contained page flatness.html
/// (<see cref="FlatnessHtmlReport"/>, the same plots inline) and the JSON twin flatness.json. Every file is replaced
/// atomically (written next to its place, then renamed), and flatness.json last, so an interrupted write never
/// leaves a half-replaced file and the JSON twin only names files that exist.
/// </summary>
public static class FlatnessReport
{
    /// <summary>The JSON twin's file name.</summary>
    public const string JsonFile = "flatness.json";

    /// <summary>The Markdown report's file name.</summary>
    public const string MarkdownFile = "flatness.md";

    /// <summary>Writes every file into <paramref name="outDir"/>.</summary>
    public static FlatnessReportFiles Write(FlatnessResults results, string outDir, FlatnessReportContext context)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(context);
        Directory.CreateDirectory(outDir);
        var files = new List<string>();
        var warnings = new List<string>();
        var plots = new List<(string Title, string File)>();
        var figures = new List<FlatnessPlot>();
        for (var i = 0; i < results.Models.Count; i++)
        {
            var model = results.Models[i];
            foreach (var item in model.Measurements)
                foreach (var table in item.Result.Tables)
                {
                    var stem = $"{ModelKey(i)}-{item.Measure}-{table.Name}";
                    files.Add(WriteCsv(outDir, stem, table));
                    if (DrawTable(table, $"{model.Name}: {table.Title}") is { } figure) Save(figure, stem, $"{model.Name}: {table.Title}", item.Measure);
                }
        }
        for (var k = 0; k < results.Interpolations.Count; k++)
        {
            var pair = results.Interpolations[k];
            var table = pair.Result.Tables[0];
            var stem = $"interpolation-{k + 1}";
            files.Add(WriteCsv(outDir, stem, table));
            if (DrawTable(table, table.Title) is { } figure) Save(figure, stem, table.Title, null);
        }

        var markdown = Markdown(results, context, plots);
        AtomicFile.WriteAllText(Path.Combine(outDir, MarkdownFile), markdown);
        files.Add(MarkdownFile);
        FlatnessHtmlReport.Build(results, context, figures, warnings, DateTimeOffset.UtcNow).Save(Path.Combine(outDir, FlatnessHtmlReport.FileName));
        files.Add(FlatnessHtmlReport.FileName);
        files.Add(JsonFile);
        var json = Json(results, context, files, warnings);
        AtomicFile.WriteAllText(Path.Combine(outDir, JsonFile), json.ToJsonString(FlatnessJson.Options) + "\n");
        return new FlatnessReportFiles(files, warnings);

        void Save(Figure figure, string stem, string title, string? measure)
        {
            Directory.CreateDirectory(Path.Combine(outDir, "plots"));
            if (figure.TrySavePngAndSvg(Path.Combine(outDir, "plots", stem), out var skipped))
            {
                files.Add($"plots/{stem}.png");
                files.Add($"plots/{stem}.svg");
                plots.Add((title, $"plots/{stem}.png"));
                figures.Add(new FlatnessPlot(stem, title, measure, figure));
            }
            else
            {
                warnings.Add($"plots/{stem}.png not drawn (the numbers are in csv/{stem}.csv): {skipped}");
            }
        }
    }

    /// <summary>The stable key of the i-th model in file names: model1, model2, ...</summary>
    public static string ModelKey(int index) => $"model{index + 1}";

    private static string WriteCsv(string outDir, string stem, FlatnessTable table)
    {
        Directory.CreateDirectory(Path.Combine(outDir, "csv"));
        var text = new StringBuilder();
        var header = table.Columns.Select(c => c.Name).ToList();
        if (table.Labels is not null) header.Insert(0, "name");
        text.Append(string.Join(",", header)).Append('\n');
        var rows = table.Columns.Count == 0 ? 0 : table.Columns.Max(c => c.Values.Length);
        for (var r = 0; r < rows; r++)
        {
            var cells = table.Columns.Select(c => r < c.Values.Length ? SeriesCsv.Number(c.Values[r]) : "").ToList();
            if (table.Labels is not null) cells.Insert(0, Quote(r < table.Labels.Count ? table.Labels[r] : ""));
            text.Append(string.Join(",", cells)).Append('\n');
        }
        var relative = $"csv/{stem}.csv";
        AtomicFile.WriteAllText(Path.Combine(outDir, relative), text.ToString());
        return relative;
    }

    private static string Quote(string s) => s.IndexOfAny([',', '"', '\n']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;

    /// <summary>The figure for a table as its plot kind says, or null (no plot kind, or nothing finite to draw).</summary>
    internal static Figure? DrawTable(FlatnessTable table, string title)
    {
        double[] Column(string name) => table.Columns.First(c => c.Name == name).Values;
        switch (table.Plot)
        {
            case FlatnessPlotKind.Line:
            {
                var x = table.Columns[0].Values;
                var series = table.Columns.Skip(1)
                    .Where(c => c.Values.Length == x.Length && c.Values.Count(double.IsFinite) >= 2 && !c.Name.Contains("standard_error", StringComparison.Ordinal)
                                && c.Name is not ("effective_sample_size" or "gibbs_mean_loss" or "error_percent"))
                    .Select(c => new LineSeries(c.Name, x, c.Values)).ToList();
                if (series.Count == 0 || series.Any(s => s.Y.Any(v => !double.IsFinite(v)))) return null;
                return LinePlot.Create(series, table.Columns[0].Name, table.Name == "scopes" ? "F - F_flat" : "loss", new LinePlotOptions { Title = title });
            }
            case FlatnessPlotKind.Density:
            {
                var grid = Column("lambda");
                var density = Column("density");
                if (grid.Any(v => !double.IsFinite(v)) || density.Any(v => !double.IsFinite(v))) return null;
                return SpectrumPlot.FromDensity(grid, density, new SpectrumPlotOptions { Title = title });
            }
            case FlatnessPlotKind.Spectrum:
            {
                var eigenvalues = Column("eigenvalue");
                if (eigenvalues.Any(v => !double.IsFinite(v))) return null;
                return SpectrumPlot.FromEigenvalues(eigenvalues, new SpectrumPlotOptions { Title = title });
            }
            case FlatnessPlotKind.Surface:
            {
                var alpha = Column("alpha");
                var beta = Column("beta");
                var loss = Column("loss");
                var side = (int)Math.Round(Math.Sqrt(loss.Length));
                if (side * side != loss.Length || side < 2 || loss.Any(v => !double.IsFinite(v))) return null;
                var values = new double[side, side];
                // The sweep runs over alpha fastest, beta slowest.
                for (var i = 0; i < loss.Length; i++) values[i % side, i / side] = loss[i];
                var axis = alpha.Take(side).ToArray();
                var betas = beta.Where((_, i) => i % side == 0).ToArray();
                return SurfacePlot.Create(new LossSurface(axis, betas, values), new SurfacePlotOptions
                {
                    Title = title, LogScale = loss.All(v => v > 0), Markers = [new SurfaceMarker(0, 0, "weights")],
                });
            }
            default:
                return null;
        }
    }

    private static JsonObject Json(FlatnessResults results, FlatnessReportContext context, IReadOnlyList<string> files, IReadOnlyList<string> warnings)
    {
        var json = JsonSerializer.SerializeToNode(results, FlatnessJson.Options)!.AsObject();
        json["command"] = context.Command;
        json["machine"] = context.Machine;
        json["estimates"] = JsonSerializer.SerializeToNode(context.Estimates, FlatnessJson.Options);
        json["rescaling"] = new JsonObject(results.Models.SelectMany(m => m.Measurements).DistinctBy(m => m.Measure)
            .Select(m => KeyValuePair.Create(m.Measure, (JsonNode?)new JsonObject
            {
                ["invariant"] = m.Rescaling == ReluRescaling.Invariant,
                ["reason"] = m.RescalingReason,
            })));
        json["files"] = new JsonArray(files.Select(f => (JsonNode?)f).ToArray());
        json["warnings"] = new JsonArray(warnings.Select(w => (JsonNode?)w).ToArray());
        return json;
    }

    /// <summary>A number for the tables: four significant digits, "NaN" spelled out.</summary>
    internal static string N(double value) => double.IsFinite(value) ? value.ToString("G4", CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Text for a Markdown table cell: a pipe would end the cell.</summary>
    private static string Escape(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);

    /// <summary>A value with its standard error when it has one ("1.2 ± 0.1"); "–" for none.</summary>
    internal static string Cell(FlatnessValue? value) => value is null ? "–"
        : value.StandardError is double se && double.IsFinite(se) ? $"{N(value.Value)} ± {N(se)}" : N(value.Value);

    private static string Markdown(FlatnessResults results, FlatnessReportContext context, IReadOnlyList<(string Title, string File)> plots)
    {
        var md = new StringBuilder();
        var models = results.Models;
        md.Append("# Flatness report\n\n");
        md.Append(CultureInfo.InvariantCulture, $"Budget **{results.Budget.Name}**, seed {results.Seed}, {FlatnessRunner.Say(results.Seconds)} wall time.\n\n");
        md.Append("| model | source | id (weights hash) | parameters | samples (train / test) | data |\n|---|---|---|---|---|---|\n");
        foreach (var m in models)
            md.Append(CultureInfo.InvariantCulture, $"| {m.Name} | `{m.Source}` | `{m.Id}` | {m.Size.Parameters:N0} | {m.Size.TrainSamples:N0} / {m.Size.TestSamples:N0} | {m.Data} |\n");

        md.Append("\n## Summary\n\n");
        md.Append("Values ± one standard error where the estimator has one. The verdict compares the flattest model with the runner-up; " +
                  "\"no standard error\" means the estimator gives none, so the difference cannot be judged against noise.\n\n");
        md.Append("| measure | ReLU-rescaling invariant | ").Append(string.Join(" | ", models.Select(m => m.Name))).Append(" | flatter when | verdict |\n");
        md.Append("|---|---|").Append(string.Concat(models.Select(_ => "---|"))).Append("---|---|\n");
        foreach (var row in results.Comparison)
        {
            var direction = row.Flatter switch { FlatterWhen.Lower => "lower", FlatterWhen.Higher => "higher", _ => "–" };
            md.Append(CultureInfo.InvariantCulture, $"| {Escape(row.Label)} | {(row.Rescaling == ReluRescaling.Invariant ? "yes" : "no")} | ")
              .Append(string.Join(" | ", row.Values.Select(Cell)))
              .Append(CultureInfo.InvariantCulture, $" | {direction} | {row.Verdict} |\n");
        }

        md.Append("\n## Invariance to ReLU rescaling (Dinh et al. 2017)\n\n");
        md.Append("Rescaling a ReLU layer by a > 0 and the next by 1/a leaves the network's function unchanged. Measures that are invariant " +
                  "report the same number for both parametrisations; the others can be made as large or small as one likes without changing the function.\n\n");
        md.Append("| measure | invariant | why |\n|---|---|---|\n");
        foreach (var item in models[0].Measurements)
            md.Append(CultureInfo.InvariantCulture, $"| {Escape(item.Title)} | {(item.Rescaling == ReluRescaling.Invariant ? "yes" : "no")} | {Escape(item.RescalingReason)} |\n");

        md.Append("\n## Cost\n\nEstimated before measuring from timed unit costs (upper bounds where a method may stop early), and the work each measure did.\n\n");
        md.Append("| model | measure | estimate | estimated time | work done | time | reused |\n|---|---|---|---|---|---|---|\n");
        foreach (var m in models)
            foreach (var item in m.Measurements)
                md.Append(CultureInfo.InvariantCulture,
                    $"| {m.Name} | {item.Measure} | {item.Estimate} | {FlatnessRunner.Say(item.Estimate.Seconds(m.Units))} | {item.Result.Used} | {FlatnessRunner.Say(item.Result.Seconds)} | {(item.Reused ? "yes" : "no")} |\n");
        foreach (var m in models)
            md.Append(CultureInfo.InvariantCulture,
                $"\n{m.Name}: one HVP {N(m.Units.HvpSeconds * 1e3)} ms, one forward pass {N(m.Units.ForwardSeconds * 1e3)} ms, one gradient {N(m.Units.GradientSeconds * 1e3)} ms, one single-sample gradient {N(m.Units.SampleGradientSeconds * 1e3)} ms, one Gauss-Newton product {N(m.Units.GaussNewtonSeconds * 1e3)} ms.\n");

        md.Append("\n## Per-layer traces\n\n");
        for (var i = 0; i < models.Count; i++)
        {
            var layers = models[i].Measurements.FirstOrDefault(x => x.Measure == "hessian-trace")?.Result.Tables.FirstOrDefault(t => t.Name == "layers");
            if (layers?.Labels is null) continue;
            md.Append(CultureInfo.InvariantCulture, $"{models[i].Name}:\n\n| layer | parameters | Hessian trace |\n|---|---|---|\n");
            var count = layers.Columns.First(c => c.Name == "parameters").Values;
            var trace = layers.Columns.First(c => c.Name == "trace").Values;
            var se = layers.Columns.First(c => c.Name == "standard_error").Values;
            for (var r = 0; r < layers.Labels.Count; r++)
                md.Append(CultureInfo.InvariantCulture, $"| {layers.Labels[r]} | {count[r]:N0} | {N(trace[r])} ± {N(se[r])} |\n");
            md.Append('\n');
        }

        if (results.Interpolations.Count > 0)
        {
            md.Append("## Interpolations\n\nLoss along w(t) = A + t (B - A) on A's samples; the barrier is the largest rise above the straight line between the end points' losses.\n\n");
            md.Append("| from | to | barrier |\n|---|---|---|\n");
            foreach (var pair in results.Interpolations)
                md.Append(CultureInfo.InvariantCulture, $"| {pair.From} | {pair.To} | {N(pair.Result.Values[0].Value)} |\n");
            md.Append('\n');
        }

        var notes = models.SelectMany(m => m.Measurements.SelectMany(x => x.Result.Notes.Select(n => $"{m.Name}, {x.Measure}: {n}"))).ToList();
        if (notes.Count > 0)
        {
            md.Append("## Notes\n\n");
            foreach (var note in notes) md.Append("- ").Append(note).Append('\n');
            md.Append('\n');
        }

        if (plots.Count > 0)
        {
            md.Append("## Plots\n\n");
            foreach (var (title, file) in plots) md.Append(CultureInfo.InvariantCulture, $"### {title}\n\n![{title}]({file})\n\n");
        }

        md.Append("## How it was made\n\n");
        md.Append(CultureInfo.InvariantCulture, $"```\n{context.Command}\n```\n\nMachine: {context.Machine}\n");
        return md.ToString();
    }
}
