using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Reports;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>A network and its evaluation set, to be measured by <see cref="HessianFolders.Measure"/> into a folder.</summary>
public sealed record HessianFolderRequest
{
    /// <summary>The network at the weights to measure.</summary>
    public required nn.Module<Tensor, Tensor> Model { get; init; }

    /// <summary>The evaluation set, as batches (at least 2 for the diagonal Fisher, a variance over minibatches).</summary>
    public required IReadOnlyList<(Tensor Inputs, Tensor Labels)> EvaluationSet { get; init; }

    /// <summary>Samples in <see cref="EvaluationSet"/> (sequences for a language model).</summary>
    public required long Samples { get; init; }

    /// <summary>The batch size the evaluation set was cut with, as hessian.json records it.</summary>
    public required int BatchSize { get; init; }

    /// <summary>A short name of the network for plot titles and log lines.</summary>
    public required string Name { get; init; }

    /// <summary>How the loss is evaluated: parameters measured, BatchNorm and dropout modes, compute type, loss, model copies.</summary>
    public required LandscapeOptions Options { get; init; }

    /// <summary>
    /// The text that selected <see cref="LandscapeOptions.Parameters"/> (comma-separated name prefixes), as hessian.json
    /// records it; null: all parameters.
    /// </summary>
    public string? ParametersText { get; init; }

    /// <summary>The method and its sizes, the log, progress reports and cancellation.</summary>
    public required HessianMeasurementSettings Settings { get; init; }

    /// <summary>The output folder (created).</summary>
    public required string OutDir { get; init; }

    /// <summary>Adds what was measured (model, parameters, optimizer, epoch, checkpoint or model file) to hessian.json.</summary>
    public required Action<JsonObject> Describe { get; init; }
}

/// <summary>A measurement written to its folder: where, hessian.json's text, the files and the result.</summary>
/// <param name="OutDir">The folder.</param>
/// <param name="Json">hessian.json's text.</param>
/// <param name="Files">The file names written there, hessian.json last.</param>
/// <param name="Result">The measurement.</param>
/// <param name="PlotsSkipped">Why the figures were not drawn (the plotting font is missing); null when they were.</param>
public sealed record HessianFolder(string OutDir, string Json, IReadOnlyList<string> Files, HessianMeasurementResult Result, string? PlotsSkipped = null);

/// <summary>
/// A Hessian measurement of a network written to a folder, as `widevalley hessian` and the experiments write it: the
/// library's <see cref="HessianMeasurement"/> service, its plots (PNG + SVG), its CSV tables and hessian.json last (so
/// that its presence means the folder is complete).
/// </summary>
public static class HessianFolders
{
    /// <summary>The default batch size of a method: 100 minibatch gradients for the diagonal Fisher, 500 samples per forward pass otherwise.</summary>
    public static int DefaultBatchSize(HessianMethod method) => method == HessianMethod.DiagFisher ? 100 : 500;

    /// <summary>
    /// Measures <paramref name="request"/>'s network and writes the folder. Logs one line on what is measured to the
    /// settings' log. Over several ranks (<see cref="LandscapeOptions.Collectives"/>), call it on every rank with the same
    /// request: every rank returns the same result and JSON, and rank 0 alone writes (the others' <see cref="HessianFolder.Files"/> is empty).
    /// </summary>
    /// <exception cref="ArgumentException">The diagonal Fisher with fewer than two minibatches.</exception>
    /// <exception cref="HessianSettingException">A setting that does not fit this network (names the setting).</exception>
    /// <exception cref="OperationCanceledException">
    /// Cancelled; for the exact route the message says where the finished column blocks are kept (the same request resumes).
    /// </exception>
    /// <exception cref="ColumnStoreMismatchException">The exact route's column folder holds columns of another measurement.</exception>
    public static HessianFolder Measure(HessianFolderRequest request)
    {
        var settings = request.Settings;
        var options = request.Options;
        var method = HessianMeasurement.MethodName(settings.Method);
        var names = options.Parameters.ResolveNames(request.Model);
        HessianMeasurementResult m;
        try
        {
            if (settings.Method == HessianMethod.DiagFisher)
            {
                if (request.EvaluationSet.Count < 2)
                    throw new ArgumentException(
                        $"--method diag-fisher is a variance over minibatches and needs at least 2; {request.Samples:N0} samples in batches of {request.EvaluationSet[0].Inputs.shape[0]} give 1. Use a smaller --batch-size or more --samples");
                settings.Log.WriteLine($"hessian diag-fisher: {request.Name}, {request.Samples:N0} samples in {request.EvaluationSet.Count} minibatches");
                m = HessianMeasurement.MeasureDiagonalFisher(request.Model, request.EvaluationSet, options, settings);
            }
            else
            {
                using var hvp = new Hvp(request.Model, request.EvaluationSet, options);
                settings.Log.WriteLine(
                    $"hessian {method}: {request.Name}, n = {hvp.Dimension:N0} parameters ({options.Parameters.Description}), {request.Samples:N0} samples, {HessianMeasurement.DtypeName(hvp.Dtype)}");
                m = HessianMeasurement.Measure(hvp, settings);
            }
        }
        catch (OperationCanceledException e) when (settings.Method == HessianMethod.Exact)
        {
            throw new OperationCanceledException(
                $"interrupted; every finished block of columns is kept in {settings.ColumnsFolder}. Run the same command again to resume.", e);
        }

        var context = new JsonObject
        {
            ["samples"] = request.Samples,
            ["batch_size"] = request.BatchSize,
            ["dtype"] = HessianMeasurement.DtypeName(m.Dtype),
            ["bn"] = options.BatchNorm == BatchNormMode.RunningStatistics ? "running" : "batch",
            ["dropout"] = options.Dropout == DropoutMode.Off ? "off" : "on",
            ["params"] = request.ParametersText ?? "all",
            ["parameter_names"] = new JsonArray(names.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
            ["seed"] = settings.Seed,
        };
        // Over several ranks every rank holds the same result; the split does not change the quantity, but the record says it.
        if (options.Collectives is { Size: > 1 } ranks) context["ranks"] = ranks.Size;
        request.Describe(context);
        context["out"] = request.OutDir;
        if (!WritesFiles(options))
        {
            // Another rank of the job: the same numbers, nothing written (rank 0 writes the folder and deletes the column store).
            var unwritten = HessianMeasurement.ToJson(m, context, []).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = false });
            return new HessianFolder(request.OutDir, unwritten, [], m);
        }
        Directory.CreateDirectory(request.OutDir);
        var (plots, plotsSkipped) = WritePlots(request.OutDir, m, request.Name, request.EvaluationSet[0].Inputs.shape[0]);
        var text = HessianMeasurement.Write(request.OutDir, m, context, plots);
        var files = m.Tables.Select(t => t.Name).Concat(plots).Append("hessian.json").ToArray();
        return new HessianFolder(request.OutDir, text, files, m, plotsSkipped);
    }

    /// <summary>
    /// Whether this process writes the folder: a single process, or rank 0 of the ranks in
    /// <see cref="LandscapeOptions.Collectives"/> (every rank computes the same result; the others write nothing).
    /// </summary>
    public static bool WritesFiles(LandscapeOptions options) => WideValley.Distributed.Collectives.SpeaksForTheJob(options.Collectives);

    /// <summary>
    /// The figures of a measurement (PNG + SVG each); returns the file names written, and why none were when the
    /// plotting font is missing (the measurement is kept: hessian.json and the tables do not need the font).
    /// </summary>
    static (List<string> Written, string? Skipped) WritePlots(string outDir, HessianMeasurementResult m, string model, long batchSize)
    {
        var n = m.Dimension;
        var written = new List<string>();
        string? skipped = null;
        void Save(string name, Figure figure)
        {
            if (figure.TrySavePngAndSvg(Path.Combine(outDir, name), out var reason)) written.AddRange([name + ".png", name + ".svg"]);
            else skipped = $"{name}.png and {name}.svg not drawn: {reason}";
        }
        switch (m.Method)
        {
            case HessianMethod.Exact when m.Eigenvalues is { } eigenvalues:
                Save("spectrum", SpectrumPlot.FromEigenvalues(eigenvalues, new SpectrumPlotOptions { Title = $"{model}: Hessian spectrum (exact, n = {n:N0})" }));
                break;
            case HessianMethod.Lanczos:
                var series = new List<LineSeries>();
                if (m.Largest is { } top)
                    series.Add(new LineSeries("largest", Enumerable.Range(1, top.Eigenvalues.Length).Select(i => (double)i).ToArray(), top.Eigenvalues) { ShowMarkers = true });
                if (m.Smallest is { } bottom)
                    series.Add(new LineSeries("smallest", Enumerable.Range(1, bottom.Eigenvalues.Length).Select(i => (double)i).ToArray(), bottom.Eigenvalues) { ShowMarkers = true });
                Save("eigenvalues", LinePlot.Create(series, "rank from the end of the spectrum", "eigenvalue",
                    new LinePlotOptions { Title = $"{model}: Hessian extreme eigenvalues (Lanczos, n = {n:N0})" }));
                break;
            case HessianMethod.Slq when m.Density is { } density && m.Quadrature is { } slq:
                var statistics = new SpectrumStatistics(null, m.LambdaMin!.Value, m.LambdaMax!.Value, 1e-4, slq.FractionAbsBelow(1e-4));
                Save("density", SpectrumPlot.FromDensity(density.Grid, density.Density,
                    new SpectrumPlotOptions { Title = $"{model}: Hessian eigenvalue density (SLQ, n = {n:N0})", Statistics = statistics }));
                break;
            case HessianMethod.DiagFisher when m.FisherDiagonal is { } values:
                Save("histogram", HistogramPlot.Create(values, new HistogramPlotOptions
                {
                    LogX = true,
                    LogY = true,
                    XLabel = "diagonal Fisher E(g²) − (E g)²",
                    Title = $"{model}: diagonal empirical Fisher ({m.Minibatches} minibatches of {batchSize})",
                }));
                break;
        }
        return (written, skipped);
    }
}
