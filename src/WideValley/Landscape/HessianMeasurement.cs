using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>The methods of a <see cref="HessianMeasurement"/>.</summary>
public enum HessianMethod
{
    /// <summary>The dense Hessian and all its eigenvalues (or inertia counts).</summary>
    Exact,
    /// <summary>Extreme eigenvalues by Lanczos.</summary>
    Lanczos,
    /// <summary>Eigenvalue density by stochastic Lanczos quadrature.</summary>
    Slq,
    /// <summary>Trace by Hutchinson's estimator (or Hutch++).</summary>
    Trace,
    /// <summary>Diagonal of the empirical Fisher over minibatches (<see cref="DiagFisher"/>).</summary>
    DiagFisher,
}

/// <summary>Which ends of the spectrum a Lanczos measurement reports.</summary>
public enum SpectrumEnds
{
    /// <summary>Both ends (default).</summary>
    Both,
    /// <summary>The largest eigenvalues only.</summary>
    Largest,
    /// <summary>The smallest eigenvalues only.</summary>
    Smallest,
}

/// <summary>How an exact measurement turns the dense matrix into spectral statistics.</summary>
public enum EigenRoute
{
    /// <summary>All eigenvalues (LAPACK syevd through torch.linalg.eigvalsh).</summary>
    Full,
    /// <summary>
    /// Exact counts of |lambda| &lt; t from two LDL^T factorisations per threshold (Sylvester's inertia) and the
    /// extremes by Lanczos on the dense matrix: no full spectrum, several times faster for large n.
    /// </summary>
    Inertia,
}

/// <summary>A setting of <see cref="HessianMeasurementSettings"/> with a value that cannot be used; names the setting.</summary>
public sealed class HessianSettingException : ArgumentException
{
    /// <summary>Creates the exception: <paramref name="setting"/> (a property name) had <paramref name="value"/>, and <paramref name="problem"/> says why that fails.</summary>
    public HessianSettingException(string setting, string value, string problem)
        : base($"{setting} {value} {problem}")
    {
        Setting = setting;
        Value = value;
        Problem = problem;
    }

    /// <summary>The property of <see cref="HessianMeasurementSettings"/>.</summary>
    public string Setting { get; }

    /// <summary>Its value, as text.</summary>
    public string Value { get; }

    /// <summary>Why the value fails, after the setting and value.</summary>
    public string Problem { get; }
}

/// <summary>What a <see cref="HessianMeasurement"/> measures and how; null sizes take the method's defaults.</summary>
public sealed record HessianMeasurementSettings
{
    /// <summary>The method.</summary>
    public HessianMethod Method { get; init; }

    /// <summary>Lanczos: eigenvalues at each end (default min(10, n)).</summary>
    public int? Top { get; init; }

    /// <summary>Lanczos: which ends.</summary>
    public SpectrumEnds Which { get; init; } = SpectrumEnds.Both;

    /// <summary>Per-layer results (trace, exact, diag-fisher).</summary>
    public bool Layerwise { get; init; }

    /// <summary>Lanczos: relative residual tolerance (default 1e-8 in float64, 1e-4 in float32).</summary>
    public double? Tolerance { get; init; }

    /// <summary>Lanczos: most iterations (default max(300, 3 top)); SLQ: steps per probe (default 90).</summary>
    public int? Steps { get; init; }

    /// <summary>SLQ: probes (default 10); trace: products to spend (default 100).</summary>
    public int? Probes { get; init; }

    /// <summary>Trace: Hutch++.</summary>
    public bool HutchPlusPlus { get; init; }

    /// <summary>Seed of probes and start vectors.</summary>
    public long Seed { get; init; }

    /// <summary>Exact: folder of finished columns, for resuming (required for exact).</summary>
    public string? ColumnsFolder { get; init; }

    /// <summary>Exact: keep the column folder after success (default: deleted once the outputs are written).</summary>
    public bool KeepColumns { get; init; }

    /// <summary>Exact: memory it may use (default: available memory minus 1 GiB).</summary>
    public long? MemoryLimitBytes { get; init; }

    /// <summary>Exact: column workers (default: the libtorch thread count on CPU, 1 elsewhere).</summary>
    public int? Workers { get; init; }

    /// <summary>Exact: full spectrum or inertia counts.</summary>
    public EigenRoute Eigen { get; init; } = EigenRoute.Full;

    /// <summary>Exact with <see cref="EigenRoute.Inertia"/>: indices into <see cref="HessianMeasurement.Thresholds"/> to count (default 1e-4).</summary>
    public IReadOnlyList<int> BandIndices { get; init; } = [1];

    /// <summary>Where progress lines go (default none).</summary>
    public TextWriter Log { get; init; } = TextWriter.Null;

    /// <summary>Progress of Lanczos, SLQ and Hutchinson (the exact route reports per column through <see cref="Log"/>).</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Progress of the exact route's columns, besides the lines in <see cref="Log"/>.</summary>
    public Action<ExactHessianProgress>? ColumnProgress { get; init; }

    /// <summary>Stops the measurement between operator applications (exact: between columns; finished blocks stay on disk).</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>A CSV table the measurement writes next to hessian.json.</summary>
/// <param name="Name">File name in the output folder.</param>
/// <param name="Header">Column names.</param>
/// <param name="Rows">The rows as text fields (numbers in round-trip invariant form).</param>
public sealed record MeasurementTable(string Name, IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string>> Rows)
{
    /// <summary>A table of numeric columns side by side.</summary>
    public static MeasurementTable Columns(string name, params (string Name, IReadOnlyList<double> Values)[] columns) =>
        new(name, columns.Select(c => c.Name).ToArray(),
            Enumerable.Range(0, columns.Length == 0 ? 0 : columns[0].Values.Count)
                .Select(r => (IReadOnlyList<string>)columns.Select(c => HessianMeasurement.R(c.Values[r])).ToArray()).ToArray());

    /// <summary>The CSV text: header line, one line per row, "\n" line ends, fields quoted per RFC 4180 when needed.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendJoin(',', Header.Select(Quote)).Append('\n');
        foreach (var row in Rows) text.AppendJoin(',', row.Select(Quote)).Append('\n');
        return text.ToString();
    }

    private static string Quote(string field) =>
        field.IndexOfAny([',', '"', '\n', '\r']) < 0 ? field : "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

/// <summary>
/// What one measurement found: the quantities hessian.json names at the top level (null where the method gives no such
/// quantity), the method's own keys, the CSV tables, the lines a person reads, and the typed results behind them (for
/// plots). Produced by <see cref="HessianMeasurement"/>; written by <see cref="HessianMeasurement.Write"/>.
/// </summary>
public sealed class HessianMeasurementResult
{
    /// <summary>The method.</summary>
    public HessianMethod Method { get; init; }

    /// <summary>Number of parameters measured.</summary>
    public long Dimension { get; init; }

    /// <summary>The type the products ran in.</summary>
    public ScalarType Dtype { get; init; }

    /// <summary>Eigenvalues, ascending (exact: all; Lanczos: both ends found).</summary>
    public double[]? Eigenvalues { get; set; }

    /// <summary>The trace (exact: the sum of the diagonal; SLQ and Hutchinson: estimates).</summary>
    public double? Trace { get; set; }

    /// <summary>Standard error of an estimated trace.</summary>
    public double? TraceStandardError { get; set; }

    /// <summary>Largest eigenvalue.</summary>
    public double? LambdaMax { get; set; }

    /// <summary>Smallest eigenvalue.</summary>
    public double? LambdaMin { get; set; }

    /// <summary>Fraction of |lambda| below each of <see cref="HessianMeasurement.Thresholds"/> (NaN where not counted).</summary>
    public double[]? Fractions { get; set; }

    /// <summary>Hessian-vector products spent.</summary>
    public long Hvps { get; set; }

    /// <summary>Gradients spent (diag-fisher).</summary>
    public long Gradients { get; set; }

    /// <summary>Wall time of the measurement.</summary>
    public TimeSpan Elapsed { get; set; }

    /// <summary>The method's own hessian.json keys.</summary>
    public JsonObject Extras { get; } = new();

    /// <summary>Readable summary lines.</summary>
    public List<string> Lines { get; } = [];

    /// <summary>CSV tables to write.</summary>
    public List<MeasurementTable> Tables { get; } = [];

    /// <summary>Lanczos: the largest end.</summary>
    public LanczosResult? Largest { get; set; }

    /// <summary>Lanczos: the smallest end.</summary>
    public LanczosResult? Smallest { get; set; }

    /// <summary>SLQ: the quadrature.</summary>
    public SlqResult? Quadrature { get; set; }

    /// <summary>SLQ: the smoothed density.</summary>
    public SpectralDensity? Density { get; set; }

    /// <summary>diag-fisher: the diagonal.</summary>
    public double[]? FisherDiagonal { get; set; }

    /// <summary>diag-fisher: minibatches used.</summary>
    public int Minibatches { get; set; }

    /// <summary>Exact: the column folder, to delete after the outputs are safe (null: keep).</summary>
    public string? ColumnFolderToDelete { get; set; }
}

/// <summary>
/// The Hessian measurements of <c>widevalley hessian</c> and of the experiments that measure trained networks, as a
/// library service: settings in, a typed result out, and one writer for hessian.json and its CSV tables. The exact
/// route includes the memory plan, resumable column blocks (one block policy: <see cref="ExactHessian.DefaultColumnsPerBlock"/>),
/// and the inertia route.
/// </summary>
public static class HessianMeasurement
{
    /// <summary>Thresholds t of the "fraction of |lambda| &lt; t" statistic.</summary>
    public static readonly double[] Thresholds = [1e-5, 1e-4, 1e-3, 1e-2];

    /// <summary>JSON keys of <see cref="Thresholds"/>, spelled as Python's repr spells them.</summary>
    public static readonly string[] ThresholdKeys = ["1e-05", "0.0001", "0.001", "0.01"];

    /// <summary>
    /// Measures the Hessian behind <paramref name="hvp"/> with the method of <paramref name="settings"/> (not
    /// <see cref="HessianMethod.DiagFisher"/>, which needs the minibatches: <see cref="MeasureDiagonalFisher"/>).
    /// </summary>
    /// <exception cref="HessianSettingException">A setting that does not fit the operator (e.g. Top above n).</exception>
    /// <exception cref="InsufficientMemoryException">The exact route does not fit in memory.</exception>
    /// <exception cref="ColumnStoreMismatchException">The column folder holds another measurement.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; exact keeps its finished blocks.</exception>
    public static HessianMeasurementResult Measure(Hvp hvp, HessianMeasurementSettings settings)
    {
        ArgumentNullException.ThrowIfNull(hvp);
        ArgumentNullException.ThrowIfNull(settings);
        var watch = Stopwatch.StartNew();
        RequireFiniteLossAndGradient(hvp, MethodName(settings.Method));
        var hvpsBefore = hvp.HvpCount;
        var result = settings.Method switch
        {
            HessianMethod.Exact => Exact(hvp, settings),
            HessianMethod.Lanczos => LanczosExtremes(hvp, settings),
            HessianMethod.Slq => DensityBySlq(hvp, settings),
            HessianMethod.Trace => TraceByHutchinson(hvp, settings),
            _ => throw new ArgumentException($"HessianMeasurement.Measure: {settings.Method} is measured by MeasureDiagonalFisher.", nameof(settings)),
        };
        result.Hvps = hvp.HvpCount - hvpsBefore;
        result.Elapsed = watch.Elapsed;
        RequireFiniteResult(result);
        return result;
    }

    /// <summary>
    /// The diagonal of the empirical Fisher of <paramref name="model"/> over the minibatches <paramref name="evaluationSet"/>
    /// (at least 2), with per-layer sums when <see cref="HessianMeasurementSettings.Layerwise"/>.
    /// </summary>
    public static HessianMeasurementResult MeasureDiagonalFisher(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        LandscapeOptions options, HessianMeasurementSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(evaluationSet);
        ArgumentNullException.ThrowIfNull(settings);
        var watch = Stopwatch.StartNew();
        using var r = DiagFisher.Compute(model, evaluationSet, options);
        var n = r.Layout.Dimension;
        var summary = r.Summary();
        var values = r.Diagonal.cpu().data<double>().ToArray();
        var m = new HessianMeasurementResult
        {
            Method = HessianMethod.DiagFisher, Dimension = n, Dtype = options.ComputeType ?? model.parameters().First().dtype,
            FisherDiagonal = values, Minibatches = r.Minibatches, Gradients = r.Minibatches,
        };
        m.Extras["gradients"] = r.Minibatches;
        m.Extras["minibatches"] = r.Minibatches;
        m.Extras["fisher_trace"] = Number(summary.Sum);
        m.Extras["fisher_mean"] = Number(summary.Mean);
        m.Extras["fisher_min"] = Number(summary.Min);
        m.Extras["fisher_max"] = Number(summary.Max);
        m.Extras["fisher_median"] = Number(summary.Median);
        var below = new JsonObject();
        foreach (var (threshold, fraction) in summary.FractionBelow)
            below[threshold.ToString("0.#E+0", CultureInfo.InvariantCulture)] = Number(fraction);
        m.Extras["fisher_fraction_below"] = below;
        m.Lines.Add($"diagonal Fisher over {r.Minibatches} minibatches: n = {n:N0}, sum {F(summary.Sum)}, mean {F(summary.Mean)}, median {F(summary.Median)}, max {F(summary.Max)}");
        if (settings.Layerwise)
        {
            var layers = r.Layout.Groups(LayerGrouping.PerModule)
                .Select(g => new TraceEstimate(g.Name, g.Offset, g.Count, values.Skip((int)g.Offset).Take((int)g.Count).Sum(), 0)).ToList();
            m.Extras["layers"] = new JsonArray(layers.Select(l => (JsonNode?)new JsonObject
            {
                ["name"] = l.Name,
                ["params"] = l.Count,
                ["fisher_trace"] = Number(l.Trace),
            }).ToArray());
            m.Lines.AddRange(layers.Select(l => $"  {l.Name,-16} {l.Count,9:N0} parameters  Fisher sum {F(l.Trace)}"));
        }
        m.Tables.Add(MeasurementTable.Columns("diag-fisher.csv", ("index", Enumerable.Range(0, values.Length).Select(i => (double)i).ToArray()), ("fisher", values)));
        m.Elapsed = watch.Elapsed;
        RequireFiniteResult(m);
        return m;
    }

    /// <summary>
    /// One gradient at the weights, before any product is spent or any column stored: the weights were checked finite
    /// when <paramref name="hvp"/> was built, but parameters outside the selection (or an overflowing network) can still
    /// make the loss NaN, and every Hessian quantity with it.
    /// </summary>
    /// <exception cref="NonFiniteValuesException">The loss or a gradient entry is not finite (names the parameter).</exception>
    public static void RequireFiniteLossAndGradient(Hvp hvp, string method)
    {
        ArgumentNullException.ThrowIfNull(hvp);
        var where = $"hessian {method}";
        var (gradient, loss) = hvp.Gradient();
        using (gradient)
        {
            FiniteChecks.RequireFinite(loss, "loss at the weights", where);
            using var scope = NewDisposeScope();
            var bad = isfinite(gradient).logical_not();
            if (bad.any().item<bool>())
            {
                var index = bad.nonzero()[0, 0].item<long>();
                var block = hvp.Layout.Blocks[hvp.Layout.BlockOf(index)];
                throw new NonFiniteValuesException(block.Name,
                    $"{where}: the gradient at the weights is not finite in parameter '{block.Name}' (index {index - block.Offset:N0}) although the weights are; nothing was measured");
            }
        }
    }

    /// <summary>
    /// Refuses a result with a NaN or infinite headline quantity (eigenvalues, extremes, trace, Fisher diagonal), so
    /// that nothing is written for it: the weights were checked finite before measuring (<see cref="LandscapeLoss"/>),
    /// so such a value means the loss overflowed or is undefined at these weights, and its "spectrum" would be noise.
    /// </summary>
    /// <exception cref="NonFiniteValuesException">Names the first non-finite quantity.</exception>
    public static void RequireFiniteResult(HessianMeasurementResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var where = $"hessian {MethodName(result.Method)}";
        if (result.Eigenvalues is { } eigenvalues) FiniteChecks.RequireFinite(eigenvalues, "eigenvalue", where);
        if (result.LambdaMax is double max) FiniteChecks.RequireFinite(max, "largest eigenvalue", where);
        if (result.LambdaMin is double min) FiniteChecks.RequireFinite(min, "smallest eigenvalue", where);
        if (result.Trace is double trace) FiniteChecks.RequireFinite(trace, "trace", where);
        if (result.FisherDiagonal is { } fisher) FiniteChecks.RequireFinite(fisher, "diagonal Fisher entry", where);
    }

    /// <summary>
    /// hessian.json as an object: the common keys (n_params, method, eigenvalues, trace, lambda_max, lambda_min,
    /// fraction_abs_below, hvps, seconds, trace_stderr), then <paramref name="context"/> (what was measured: samples,
    /// model, ...), then the method's own keys, then the list of files.
    /// </summary>
    public static JsonObject ToJson(HessianMeasurementResult result, JsonObject context, IReadOnlyList<string> files)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(context);
        var json = new JsonObject
        {
            ["n_params"] = result.Dimension,
            ["method"] = MethodName(result.Method),
            ["eigenvalues"] = result.Eigenvalues is null ? null : Numbers(result.Eigenvalues),
            ["trace"] = result.Trace is double tr ? Number(tr) : null,
            ["lambda_max"] = result.LambdaMax is double max ? Number(max) : null,
            ["lambda_min"] = result.LambdaMin is double min ? Number(min) : null,
            ["fraction_abs_below"] = result.Fractions is null ? null : FractionObject(result.Fractions),
            ["hvps"] = result.Hvps,
            ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 3),
            ["trace_stderr"] = result.TraceStandardError is double se ? Number(se) : null,
        };
        foreach (var (key, value) in context) json[key] = value?.DeepClone();
        foreach (var (key, value) in result.Extras) json[key] = value?.DeepClone();
        json["files"] = new JsonArray(files.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        return json;
    }

    /// <summary>
    /// Writes the result's CSV tables and then hessian.json into <paramref name="folder"/> (created; every file
    /// atomically; hessian.json last, so its presence means every other output is complete), then deletes the exact
    /// route's column folder unless it is kept. <paramref name="otherFiles"/> names files the caller wrote there
    /// before (plots). Returns the JSON text written.
    /// </summary>
    public static string Write(string folder, HessianMeasurementResult result, JsonObject context, IReadOnlyList<string>? otherFiles = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(folder);
        var written = new List<string>();
        foreach (var table in result.Tables)
        {
            AtomicFile.WriteAllText(Path.Combine(folder, table.Name), table.Format());
            written.Add(table.Name);
        }
        written.AddRange(otherFiles ?? []);
        written.Add("hessian.json");
        var text = ToJson(result, context, written).ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        AtomicFile.WriteAllText(Path.Combine(folder, "hessian.json"), text + "\n");
        if (result.ColumnFolderToDelete is { } columns) DeleteColumnStore(columns);
        return text;
    }

    /// <summary>"exact", "lanczos", "slq", "trace" or "diag-fisher": the spelling in hessian.json and on the command line.</summary>
    public static string MethodName(HessianMethod method) => method switch
    {
        HessianMethod.Exact => "exact",
        HessianMethod.Lanczos => "lanczos",
        HessianMethod.Slq => "slq",
        HessianMethod.Trace => "trace",
        HessianMethod.DiagFisher => "diag-fisher",
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    /// <summary>The line listing the near-zero fractions that were counted.</summary>
    public static string FractionLine(double[] fractions) =>
        "fraction |lambda| < t: " + string.Join("  ", Thresholds.Select((t, i) => (t, i)).Where(x => !double.IsNaN(fractions[x.i]))
            .Select(x => $"{F(x.t, "0.#####")}: {F(100 * fractions[x.i], "0.00")}%"));

    // ---- exact -------------------------------------------------------------------------------------------------

    private static HessianMeasurementResult Exact(Hvp hvp, HessianMeasurementSettings s)
    {
        var log = s.Log;
        var n = hvp.Dimension;
        var defaults = new ExactHessianOptions();
        if (n > defaults.MaxDimension)
            throw new HessianSettingException("Method", "exact",
                $"cannot take n = {n:N0} parameters, above the dense limit of {defaults.MaxDimension:N0}; select fewer parameters, or measure by Lanczos, SLQ or trace");
        var columns = s.ColumnsFolder ?? throw new ArgumentException("HessianMeasurement: the exact route needs a ColumnsFolder for its resumable column blocks.", nameof(s));
        long lastTwentieth = -1;
        var perBlock = ExactHessian.DefaultColumnsPerBlock(n, hvp.Dtype);
        var onCpu = hvp.Device.type == DeviceType.CPU;
        if (s.Workers is > 1 && !onCpu)
            throw new HessianSettingException("Workers", s.Workers.Value.ToString(CultureInfo.InvariantCulture),
                $"applies on the CPU; on {hvp.Device} each product already runs in parallel, so leave it out");
        var ranks = hvp.Loss.Ranks;
        if (s.Workers is > 1 && ranks is not null)
            throw new HessianSettingException("Workers", s.Workers.Value.ToString(CultureInfo.InvariantCulture),
                $"cannot be combined with {ranks.Size} ranks: every column is summed over the ranks in the same order on each, which worker threads would not keep; leave it out and run more ranks");
        // Over ranks, the ranks are the parallelism (and must take the columns in one order): one worker each.
        var workers = s.Workers ?? (ranks is not null ? 1 : onCpu ? Math.Max(1, get_num_threads()) : 1);
        var options = new ExactHessianOptions
        {
            Workers = workers,
            ColumnsPerBlock = perBlock,
            MemoryLimitBytes = s.MemoryLimitBytes,
            CheckpointFolder = columns,
            Cancellation = s.Cancellation,
            Progress = progress =>
            {
                s.ColumnProgress?.Invoke(progress);
                var twentieth = progress.Columns == 0 ? 20 : progress.ColumnsDone * 20 / progress.Columns;
                if (progress.ColumnsDone == progress.ResumedColumns)
                {
                    // The first report: how much was found on disk.
                    if (progress.ResumedColumns > 0)
                        log.WriteLine($"exact: resuming, {progress.ResumedColumns:N0} of {progress.Columns:N0} columns read from {columns}");
                    lastTwentieth = twentieth;
                    return;
                }
                if (twentieth <= lastTwentieth) return;
                lastTwentieth = twentieth;
                log.WriteLine(string.Format(CultureInfo.InvariantCulture, "exact: {0:N0}/{1:N0} columns ({2}%), {3} elapsed, about {4} left",
                    progress.ColumnsDone, progress.Columns, twentieth * 5, Clock(progress.Elapsed), progress.Remaining is TimeSpan r ? Clock(r) : "?"));
            },
        };
        var plan = ExactHessian.PlanMemory(n, hvp.Dtype, options);
        log.WriteLine($"exact: memory needed: {plan}");
        if (!plan.Fits)
            throw new InsufficientMemoryException(
                $"the exact Hessian does not fit in memory: {plan}. Select fewer parameters, " +
                (hvp.Dtype == ScalarType.Float64 ? "compute in float32, " : "") + "measure by Lanczos or SLQ, or set a memory limit if this one is wrong");
        log.WriteLine($"exact: {n:N0} columns, one Hessian-vector product each, {(workers == 1 ? "one worker" : $"{workers} workers (one libtorch thread each)")}; " +
            $"blocks of {perBlock:N0} finished columns are kept in {columns}");

        using var dense = ExactHessian.Compute(hvp, options);
        // LAPACK given NaN may loop or abort; the products were finite at the start, so this is rare, but said by name.
        if (!isfinite(dense.Hessian).all().item<bool>())
            throw new NonFiniteValuesException("Hessian", $"hessian exact: the {n:N0} x {n:N0} Hessian has non-finite entries; its eigenvalues are not computed and nothing was written");
        var eigenWatch = Stopwatch.StartNew();
        HessianMeasurementResult m;
        double[]? eigenvalues = null;
        if (s.Eigen == EigenRoute.Inertia)
        {
            // Small matrices are factorised in float64, as eigvalsh would be (the plan counted the copy).
            using var converted = dense.Hessian.dtype == plan.EigenType ? null : dense.Hessian.to(plan.EigenType);
            // Each LDL^T factorisation (about n^3/3 flops, a quarter of the tridiagonal reduction) runs in LAPACK to its end too.
            var factorisations = 2 * s.BandIndices.Count;
            var estimate = ExactHessian.EstimateEigenvaluesTime(n, plan.EigenType, dense.Hessian.device) / 4 * factorisations;
            log.WriteLine($"exact: {factorisations} LDL^T factorisations of the {n:N0} x {n:N0} matrix, estimated {Duration(estimate)} in all; " +
                          "they cannot be interrupted: Ctrl-C and SIGTERM are not seen until they end");
            m = InertiaRoute(converted ?? dense.Hessian, s.BandIndices, s.Seed, log, hvp.Dtype);
        }
        else
        {
            // LAPACK reports nothing while it runs, and for tens of thousands of parameters this is the longest,
            // silent part of the measurement: say that it started and what it costs, so it is not taken for a hang.
            // Nor can it be stopped: Ctrl-C and SIGTERM are seen only after it returns. Say so, with the time to expect.
            var estimate = ExactHessian.EstimateEigenvaluesTime(n, plan.EigenType, dense.Hessian.device);
            log.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "exact: all eigenvalues of the {0:N0} x {0:N0} matrix ({1}, LAPACK syevd through torch.linalg.eigvalsh), started {2:HH:mm:ss}; " +
                "no progress is reported until it ends; its cost grows as n^3 (about {3:0.#e+0} flops for the tridiagonal reduction), estimated {4} " +
                "(from a timed {5:N0} x {5:N0} solve). It cannot be interrupted: Ctrl-C and SIGTERM are not seen until it ends (the finished columns are in {6})",
                n, DtypeName(plan.EigenType), DateTime.Now, 4.0 / 3.0 * Math.Pow(n, 3), Duration(estimate), Math.Min(n, 400), columns));
            using var eigenvalueTensor = ExactHessian.Eigenvalues(dense.Hessian, plan.EigenType);
            eigenvalues = eigenvalueTensor.data<double>().ToArray();
            m = new HessianMeasurementResult
            {
                Method = HessianMethod.Exact, Dimension = n, Dtype = hvp.Dtype,
                Eigenvalues = eigenvalues,
                LambdaMax = eigenvalues[^1],
                LambdaMin = eigenvalues[0],
                Fractions = Thresholds.Select(t => ExactHessian.FractionAbsBelow(eigenvalueTensor, t)).ToArray(),
            };
        }
        var eigenSeconds = eigenWatch.Elapsed.TotalSeconds;
        log.WriteLine(string.Format(CultureInfo.InvariantCulture, "exact: Hessian in {0:0.0} s ({1:N0} columns computed, {2:N0} resumed), {3} ({4}) in {5:0.0} s",
            dense.Elapsed.TotalSeconds, dense.ComputedColumns, dense.ResumedColumns,
            s.Eigen == EigenRoute.Inertia ? "inertia counts and extremes" : "eigenvalues", DtypeName(plan.EigenType), eigenSeconds));

        using var diagonal = dense.Hessian.diagonal().to(ScalarType.Float64).cpu();
        var diag = diagonal.data<double>().ToArray();
        m.Trace = diag.Sum();
        m.Extras["eigen_route"] = s.Eigen == EigenRoute.Inertia ? "inertia" : "full";
        m.Extras["max_asymmetry"] = Number(dense.MaxAsymmetry);
        m.Extras["computed_columns"] = dense.ComputedColumns;
        m.Extras["resumed_columns"] = dense.ResumedColumns;
        m.Extras["hessian_seconds"] = Math.Round(dense.Elapsed.TotalSeconds, 3);
        m.Extras["eigen_seconds"] = Math.Round(eigenSeconds, 3);
        m.Extras["eigen_dtype"] = DtypeName(plan.EigenType);
        m.Extras["workers"] = workers;
        m.Extras["memory_bytes"] = plan.TotalBytes;
        m.Extras["memory_limit_bytes"] = plan.LimitBytes;
        m.Extras["columns_dir"] = s.KeepColumns ? columns : null;
        if (s.Layerwise)
        {
            // The exact trace of each diagonal block: the sum of its diagonal entries.
            var layers = hvp.Layout.Groups(LayerGrouping.PerModule)
                .Select(g => new TraceEstimate(g.Name, g.Offset, g.Count, diag.Skip((int)g.Offset).Take((int)g.Count).Sum(), 0)).ToList();
            m.Extras["layers"] = LayersJson(layers, withError: false);
            m.Tables.Add(LayersTable("layers.csv", layers, m.Trace.Value, 0));
            m.Lines.AddRange(layers.Select(l => $"  {l.Name,-16} {l.Count,9:N0} parameters  trace {F(l.Trace)}"));
        }
        m.Lines.Insert(0, $"exact {(s.Eigen == EigenRoute.Inertia ? "inertia" : "spectrum")}: n = {n:N0}, lambda_max {F(m.LambdaMax!.Value)}, lambda_min {F(m.LambdaMin!.Value)}, trace {F(m.Trace.Value)}");
        m.Lines.Insert(1, FractionLine(m.Fractions!));
        if (eigenvalues is not null)
            m.Tables.Add(MeasurementTable.Columns("eigenvalues.csv", ("index", Enumerable.Range(0, eigenvalues.Length).Select(i => (double)i).ToArray()), ("eigenvalue", eigenvalues)));
        // The column store holds n^2 numbers (9 GB for small-LeNet in float32): drop it once the results are safe.
        if (!s.KeepColumns) m.ColumnFolderToDelete = columns;
        return m;
    }

    /// <summary>
    /// The paper's statistic without the full decomposition: exact counts of |lambda| &lt; t from the inertia of
    /// H -+ t I (Sylvester), and the extreme eigenvalues by Lanczos on the dense matrix (cheap products, error bounds).
    /// </summary>
    private static HessianMeasurementResult InertiaRoute(Tensor hessian, IReadOnlyList<int> bandIndices, long seed, TextWriter log, ScalarType productType)
    {
        var n = hessian.shape[0];
        var fractions = Thresholds.Select(_ => double.NaN).ToArray();
        var counts = new JsonObject();
        foreach (var i in bandIndices)
        {
            if (i < 0 || i >= Thresholds.Length)
                throw new HessianSettingException("BandIndices", i.ToString(CultureInfo.InvariantCulture), $"is not an index into the {Thresholds.Length} thresholds");
            var watch = Stopwatch.StartNew();
            var count = ExactHessian.CountInBand(hessian, Thresholds[i]);
            fractions[i] = count / (double)n;
            counts[ThresholdKeys[i]] = count;
            log.WriteLine(string.Format(CultureInfo.InvariantCulture, "exact: {0:N0} eigenvalues with |lambda| < {1} (two LDL^T factorisations, {2:0.0} s)",
                count, F(Thresholds[i], "0.#####"), watch.Elapsed.TotalSeconds));
        }
        // Products with the stored matrix cost one pass over it, so the assumption-free residual rule is affordable:
        // each eigenvalue is within its residual (at most Tolerance x lambda_max) of the reported one.
        var options = new LanczosOptions
        {
            Seed = seed, MaxIterations = (int)Math.Min(n, 1000),
            Tolerance = hessian.dtype == ScalarType.Float64 ? 1e-10 : 1e-6,
            StoppingRule = LanczosStoppingRule.Residual,
        };
        using var matrix = new DenseOperator(hessian);
        var top = Lanczos.Run(matrix, 1, SpectrumEnd.Largest, options);
        var bottom = Lanczos.Run(matrix, 1, SpectrumEnd.Smallest, options);
        log.WriteLine(string.Format(CultureInfo.InvariantCulture, "exact: lambda_max {0} (within {1}, {2} products), lambda_min {3} (within {4}, {5} products)",
            F(top.Eigenvalues[0]), F(top.ErrorBounds[0], "0.##E+0"), top.OperatorApplications, F(bottom.Eigenvalues[0]), F(bottom.ErrorBounds[0], "0.##E+0"), bottom.OperatorApplications));
        var m = new HessianMeasurementResult
        {
            Method = HessianMethod.Exact, Dimension = n, Dtype = productType,
            LambdaMax = top.Eigenvalues[0], LambdaMin = bottom.Eigenvalues[0], Fractions = fractions,
        };
        m.Extras["band_counts"] = counts;
        m.Extras["lambda_max_error_bound"] = Number(top.ErrorBounds[0]);
        m.Extras["lambda_min_error_bound"] = Number(bottom.ErrorBounds[0]);
        m.Extras["extremes_converged"] = top.Converged && bottom.Converged;
        return m;
    }

    /// <summary>Deletes a column folder's blocks and manifest (and the folder, if that empties it).</summary>
    public static void DeleteColumnStore(string folder)
    {
        if (!File.Exists(Path.Combine(folder, "manifest.json"))) return;
        foreach (var file in Directory.EnumerateFiles(folder, "columns-*.bin")) File.Delete(file);
        File.Delete(Path.Combine(folder, "manifest.json"));
        if (!Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder);
    }

    /// <summary>"0.3 s", "4 min 10 s", "2 h 05 min": a duration as the log lines say it.</summary>
    internal static string Duration(TimeSpan t) => t.TotalSeconds < 60
        ? string.Format(CultureInfo.InvariantCulture, "{0:0.#} s", t.TotalSeconds)
        : t.TotalHours < 1
            ? string.Format(CultureInfo.InvariantCulture, "{0} min {1:00} s", (int)t.TotalMinutes, t.Seconds)
            : string.Format(CultureInfo.InvariantCulture, "{0:N0} h {1:00} min", Math.Floor(t.TotalHours), t.Minutes);

    private static string Clock(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t:mm\\:ss}" : t.ToString("mm\\:ss", CultureInfo.InvariantCulture);

    // ---- lanczos -----------------------------------------------------------------------------------------------

    private static HessianMeasurementResult LanczosExtremes(Hvp hvp, HessianMeasurementSettings s)
    {
        var n = hvp.Dimension;
        var k = s.Top ?? (int)Math.Min(10, n);
        if (k > n) throw new HessianSettingException("Top", k.ToString(CultureInfo.InvariantCulture), $"is larger than the number of parameters measured, n = {n:N0}");
        var steps = s.Steps ?? (int)Math.Min(n, Math.Max(300, 3L * k));
        if (steps < k)
            throw new HessianSettingException("Steps", steps.ToString(CultureInfo.InvariantCulture), $"is below Top {k}: k eigenvalues need at least k Lanczos steps");
        var tolerance = s.Tolerance ?? (hvp.Dtype == ScalarType.Float64 ? 1e-8 : 1e-4);
        var options = new LanczosOptions { MaxIterations = steps, Tolerance = tolerance, Seed = s.Seed, Progress = s.Progress, Cancellation = s.Cancellation };
        // Both ends of a small operator: the smallest end takes only the eigenvalues the largest end did not.
        var largestCount = s.Which == SpectrumEnds.Smallest ? 0 : k;
        var smallestCount = s.Which == SpectrumEnds.Largest ? 0 : (int)Math.Min(k, n - largestCount);
        var m = new HessianMeasurementResult { Method = HessianMethod.Lanczos, Dimension = n, Dtype = hvp.Dtype };
        LanczosResult? top = null, bottom = null;
        if (largestCount > 0) top = Lanczos.Run(hvp, largestCount, SpectrumEnd.Largest, options);
        if (smallestCount > 0) bottom = Lanczos.Run(hvp, smallestCount, SpectrumEnd.Smallest, options with { Seed = unchecked(s.Seed + 1) });
        m.Largest = top;
        m.Smallest = bottom;
        foreach (var (name, r) in new[] { ("largest", top), ("smallest", bottom) })
        {
            if (r is null) continue;
            m.Extras[name] = new JsonObject
            {
                ["eigenvalues"] = Numbers(r.Eigenvalues),
                ["residuals"] = Numbers(r.Residuals),
                ["iterations"] = r.Iterations,
                ["hvps"] = r.OperatorApplications,
                ["converged"] = r.Converged,
            };
            if (!r.Converged)
                s.Log.WriteLine($"lanczos: the {name} end did not reach the tolerance {F(tolerance)} within {r.Iterations} steps (largest residual {F(r.Residuals.Max())}); raise the steps or the tolerance");
        }
        var all = (top?.Eigenvalues ?? []).Concat(bottom?.Eigenvalues ?? []).Order().ToArray();
        var residualOf = (top is null ? [] : top.Eigenvalues.Zip(top.Residuals)).Concat(bottom is null ? [] : bottom.Eigenvalues.Zip(bottom.Residuals))
            .OrderBy(p => p.First).Select(p => p.Second).ToArray();
        m.Eigenvalues = all;
        m.LambdaMax = top is not null ? top.Eigenvalues[0] : bottom!.Eigenvalues.Length == n ? bottom.Eigenvalues[^1] : null;
        m.LambdaMin = bottom is not null ? bottom.Eigenvalues[0] : top!.Eigenvalues.Length == n ? top.Eigenvalues[^1] : null;
        m.Extras["top"] = k;
        m.Extras["which"] = s.Which.ToString().ToLowerInvariant();
        m.Extras["tolerance"] = tolerance;
        m.Extras["steps"] = steps;
        m.Extras["converged"] = (top?.Converged ?? true) && (bottom?.Converged ?? true);
        if (top is not null) m.Lines.Add($"largest {top.Eigenvalues.Length}: {string.Join(" ", top.Eigenvalues.Select(v => F(v)))}");
        if (bottom is not null) m.Lines.Add($"smallest {bottom.Eigenvalues.Length}: {string.Join(" ", bottom.Eigenvalues.Select(v => F(v)))}");
        m.Lines.Insert(0, $"lanczos: n = {n:N0}, lambda_max {(m.LambdaMax is double a ? F(a) : "-")}, lambda_min {(m.LambdaMin is double b ? F(b) : "-")}");
        m.Tables.Add(MeasurementTable.Columns("eigenvalues.csv", ("eigenvalue", all), ("residual", residualOf)));
        return m;
    }

    // ---- slq ---------------------------------------------------------------------------------------------------

    private static HessianMeasurementResult DensityBySlq(Hvp hvp, HessianMeasurementSettings s)
    {
        var n = hvp.Dimension;
        var options = new SlqOptions { Probes = s.Probes ?? 10, Steps = s.Steps ?? 90, Seed = s.Seed, Progress = s.Progress, Cancellation = s.Cancellation };
        var slq = Slq.Run(hvp, options);
        var density = slq.Density();
        var (min, max) = slq.Range;
        var (meanEigenvalue, meanError) = slq.Moment(1);
        var (secondMoment, _) = slq.Moment(2);
        var m = new HessianMeasurementResult
        {
            Method = HessianMethod.Slq, Dimension = n, Dtype = hvp.Dtype,
            LambdaMax = max,
            LambdaMin = min,
            Trace = n * meanEigenvalue,
            TraceStandardError = n * meanError,
            Fractions = Thresholds.Select(slq.FractionAbsBelow).ToArray(),
            Quadrature = slq,
            Density = density,
        };
        m.Extras["probes"] = options.Probes;
        m.Extras["steps"] = (int)Math.Min(options.Steps, n);
        m.Extras["second_moment"] = Number(secondMoment);
        m.Extras["density_sigma"] = Number(density.Sigma);
        m.Extras["nodes"] = new JsonArray(slq.Nodes.Select(nodes => (JsonNode?)Numbers(nodes)).ToArray());
        m.Extras["weights"] = new JsonArray(slq.Weights.Select(w => (JsonNode?)Numbers(w)).ToArray());
        m.Lines.Add($"slq: n = {n:N0}, {options.Probes} probes x {m.Extras["steps"]} steps; lambda_max ~ {F(max)}, lambda_min ~ {F(min)}, trace ~ {F(m.Trace.Value)} ± {F(m.TraceStandardError.Value)}");
        m.Lines.Add(FractionLine(m.Fractions));
        m.Tables.Add(MeasurementTable.Columns("density.csv", ("eigenvalue", density.Grid), ("density", density.Density)));
        m.Tables.Add(MeasurementTable.Columns("nodes.csv",
            ("probe", slq.Nodes.SelectMany((nodes, l) => nodes.Select(_ => (double)l)).ToArray()),
            ("node", slq.Nodes.SelectMany(x => x).ToArray()),
            ("weight", slq.Weights.SelectMany(x => x).ToArray())));
        return m;
    }

    // ---- trace -------------------------------------------------------------------------------------------------

    private static HessianMeasurementResult TraceByHutchinson(Hvp hvp, HessianMeasurementSettings s)
    {
        var options = new HutchinsonOptions { Probes = s.Probes ?? 100, Seed = s.Seed, HutchPlusPlus = s.HutchPlusPlus, Progress = s.Progress, Cancellation = s.Cancellation };
        var r = Hutchinson.Run(hvp, options);
        var m = new HessianMeasurementResult
        {
            Method = HessianMethod.Trace, Dimension = hvp.Dimension, Dtype = hvp.Dtype,
            Trace = r.Total.Trace, TraceStandardError = r.Total.StandardError,
        };
        m.Extras["estimator"] = r.Method;
        m.Extras["probes"] = r.Probes;
        m.Lines.Add($"trace ({r.Method}, {r.OperatorApplications} products): {F(r.Total.Trace)} ± {F(r.Total.StandardError)} (standard error)");
        if (s.Layerwise)
        {
            m.Extras["layers"] = LayersJson(r.Layers, withError: true);
            m.Lines.AddRange(r.Layers.Select(l => $"  {l.Name,-16} {l.Count,9:N0} parameters  trace {F(l.Trace)} ± {F(l.StandardError)}"));
        }
        m.Tables.Add(LayersTable("trace.csv", s.Layerwise ? r.Layers : [], r.Total.Trace, r.Total.StandardError));
        return m;
    }

    private static JsonArray LayersJson(IReadOnlyList<TraceEstimate> layers, bool withError) =>
        new(layers.Select(l => (JsonNode?)new JsonObject
        {
            ["name"] = l.Name,
            ["params"] = l.Count,
            ["trace"] = Number(l.Trace),
            ["trace_stderr"] = withError ? Number(l.StandardError) : null,
        }).ToArray());

    /// <summary>layer,params,trace,trace_stderr; one row per layer, then the total.</summary>
    private static MeasurementTable LayersTable(string name, IReadOnlyList<TraceEstimate> layers, double total, double totalError)
    {
        var rows = layers.Select(l => (IReadOnlyList<string>)[l.Name, l.Count.ToString(CultureInfo.InvariantCulture), R(l.Trace), R(l.StandardError)]).ToList();
        rows.Add(["total", layers.Sum(l => l.Count).ToString(CultureInfo.InvariantCulture), R(total), R(totalError)]);
        return new MeasurementTable(name, ["layer", "params", "trace", "trace_stderr"], rows);
    }

    private static JsonObject FractionObject(double[] fractions)
    {
        var o = new JsonObject();
        for (var i = 0; i < Thresholds.Length; i++) o[ThresholdKeys[i]] = Number(fractions[i]);
        return o;
    }

    internal static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>"float32" or "float64".</summary>
    public static string DtypeName(ScalarType type) => type switch
    {
        ScalarType.Float64 => "float64",
        ScalarType.Float32 => "float32",
        _ => type.ToString().ToLowerInvariant(),
    };

    private static JsonNode? Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static JsonArray Numbers(IEnumerable<double> values) => new(values.Select(Number).ToArray());

    private static string F(double value, string format = "G6") => value.ToString(format, CultureInfo.InvariantCulture);
}
