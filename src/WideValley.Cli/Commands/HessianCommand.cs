using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Reports;
using static TorchSharp.torch;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley hessian --checkpoint RUN --method exact|lanczos|slq|trace|diag-fisher`: the Hessian of a trained run's
/// loss over its first N training samples (seed 003 Sec. 5.1, Figs. 1 and 3), by one of the library's methods. Prints
/// the quantities the paper quotes (or one JSON object) and writes the same JSON, the numbers behind the plot as CSV,
/// and PNG + SVG plots to the output folder.
/// </summary>
public static class HessianCommand
{
    /// <summary>Thresholds t of the "fraction of |lambda| &lt; t" statistic.</summary>
    public static readonly double[] Thresholds = [1e-5, 1e-4, 1e-3, 1e-2];

    /// <summary>JSON keys of <see cref="Thresholds"/>, spelled as Python's repr spells them (what the issue asks for).</summary>
    public static readonly string[] ThresholdKeys = ["1e-05", "0.0001", "0.001", "0.01"];

    /// <summary>Default size of the evaluation set.</summary>
    public const long DefaultSamples = 1000;

    /// <summary>The methods, as spelled on the command line.</summary>
    public static readonly string[] Methods = ["exact", "lanczos", "slq", "trace", "diag-fisher"];

    /// <summary>Builds the command.</summary>
    public static Command Create(CliContext ctx)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Run folder (holding checkpoint.bin) or a checkpoint file.", Required = true };
        var method = new Option<string>("--method")
        {
            Description = "exact (dense Hessian, all eigenvalues), lanczos (extreme eigenvalues), slq (eigenvalue density), trace (Hutchinson), diag-fisher.",
            Required = true,
        };
        var top = new Option<int?>("--top") { Description = "lanczos: number of eigenvalues at each end (default 10)." };
        var which = new Option<string>("--which") { Description = "lanczos: largest, smallest or both ends (default both).", DefaultValueFactory = _ => "both" };
        var layerwise = new Option<bool>("--layerwise") { Description = "Per-layer results: traces of the diagonal blocks (trace, exact), Fisher sums (diag-fisher)." };
        var samples = Samples(DefaultSamples);
        var batch = BatchSize("default 500; diag-fisher: the minibatch size, default 100");
        var dtype = Dtype();
        var bn = MeasurementOptions.BatchNorm();
        var dropout = MeasurementOptions.Dropout();
        var parameters = Params();
        var seed = Seed();
        var threads = Threads();
        var device = Device();
        var dataDir = DataDir();
        var output = Out("RUN/hessian-METHOD");
        var json = Json();
        var tolerance = new Option<double?>("--tolerance") { Description = "lanczos: relative residual tolerance (default 1e-8 in float64, 1e-4 in float32)." };
        var steps = new Option<int?>("--steps") { Description = "lanczos: most iterations (default max(300, 3 x top)); slq: Lanczos steps per probe (default 90)." };
        var probes = new Option<int?>("--probes") { Description = "slq: probe vectors (default 10); trace: Hessian-vector products to spend (default 100)." };
        var hutchPlusPlus = new Option<bool>("--hutch++") { Description = "trace: Hutch++ (lower variance when a few eigenvalues dominate)." };
        var checkpointDir = new Option<string?>("--checkpoint-dir") { Description = "exact: folder of finished columns, for resuming (default OUT/hessian-columns)." };
        var keepColumns = new Option<bool>("--keep-columns") { Description = "exact: keep the column folder after success (default: delete it; it holds n^2 numbers)." };
        var memoryLimit = new Option<double?>("--memory-limit") { Description = "exact: memory it may use, in GiB (default: available memory minus 1 GiB)." };
        var eigen = new Option<string>("--eigen")
        {
            Description = "exact: full (all eigenvalues, LAPACK syevd) or inertia (exact counts of |lambda| < t for the --bands thresholds from two " +
                          "LDL^T factorisations each, lambda_max and lambda_min by Lanczos on the dense matrix; no full spectrum, several times faster for large n).",
            DefaultValueFactory = _ => "full",
        };
        var bands = new Option<string>("--bands")
        {
            Description = "exact --eigen inertia: thresholds t to count |lambda| < t for, comma-separated, among 1e-5,1e-4,1e-3,1e-2.",
            DefaultValueFactory = _ => "1e-4",
        };
        var workers = new Option<int?>("--workers")
        {
            Description = "exact: threads computing columns at once, each on its own model copy with one libtorch thread (default: the libtorch thread count on CPU, 1 on CUDA).",
        };
        var command = new Command("hessian",
            "Hessian of a run's loss over its first N training samples: exact spectrum, Lanczos extremes, SLQ density, Hutchinson trace or diagonal Fisher.")
        {
            checkpoint, method, top, which, layerwise, samples, batch, dtype, bn, dropout, parameters, seed, threads, device, dataDir, output, json,
            tolerance, steps, probes, hutchPlusPlus, checkpointDir, keepColumns, memoryLimit, workers, eigen, bands,
        };
        command.SetAction(p =>
        {
            var settings = new HessianSettings
            {
                Checkpoint = p.GetValue(checkpoint)!,
                Method = p.GetValue(method)!.ToLowerInvariant(),
                Top = p.GetValue(top),
                Which = p.GetValue(which)!.ToLowerInvariant(),
                Layerwise = p.GetValue(layerwise),
                Samples = p.GetValue(samples),
                BatchSize = p.GetValue(batch),
                ComputeType = ParseDtype(p.GetValue(dtype)!),
                BatchNorm = ParseBatchNorm(p.GetValue(bn)!),
                Dropout = ParseDropout(p.GetValue(dropout)!),
                ParamsText = p.GetValue(parameters),
                Seed = p.GetValue(seed),
                Overrides = new RunOverrides(p.GetValue(threads), p.GetValue(device), p.GetValue(dataDir)),
                Out = p.GetValue(output),
                Json = p.GetValue(json),
                Tolerance = p.GetValue(tolerance),
                Steps = p.GetValue(steps),
                Probes = p.GetValue(probes),
                HutchPlusPlus = p.GetValue(hutchPlusPlus),
                ColumnsDir = p.GetValue(checkpointDir),
                KeepColumns = p.GetValue(keepColumns),
                MemoryLimitGib = p.GetValue(memoryLimit),
                Workers = p.GetValue(workers),
                Eigen = p.GetValue(eigen)!.ToLowerInvariant(),
                BandsText = p.GetValue(bands)!,
                BandsGiven = p.GetResult(bands) is { Implicit: false },
            };
            return Execute(ctx, settings);
        });
        return command;
    }

    /// <summary>What `hessian` measures, as its options say; experiment commands build one to measure a run the same way.</summary>
    internal sealed record HessianSettings
    {
        public required string Checkpoint { get; init; }
        public required string Method { get; init; }
        public int? Top { get; init; }
        public required string Which { get; init; }
        public bool Layerwise { get; init; }
        public int? Samples { get; init; }
        public int? BatchSize { get; init; }
        public ScalarType? ComputeType { get; init; }
        public BatchNormMode BatchNorm { get; init; }
        public DropoutMode Dropout { get; init; }
        public string? ParamsText { get; init; }
        public long Seed { get; init; }
        public required RunOverrides Overrides { get; init; }
        public string? Out { get; init; }
        public bool Json { get; init; }
        public double? Tolerance { get; init; }
        public int? Steps { get; init; }
        public int? Probes { get; init; }
        public bool HutchPlusPlus { get; init; }
        public string? ColumnsDir { get; init; }
        public bool KeepColumns { get; init; }
        public double? MemoryLimitGib { get; init; }
        public int? Workers { get; init; }
        public string Eigen { get; init; } = "full";
        public string BandsText { get; init; } = "1e-4";
        public bool BandsGiven { get; init; }
        /// <summary>Measure language-model runs too (see <see cref="MeasuredRun.Open"/>); the command line keeps to classifiers.</summary>
        public bool LanguageModels { get; init; }

        /// <summary>Indices into <see cref="Thresholds"/> of the --bands values.</summary>
        public int[] BandIndices()
        {
            var indices = new List<int>();
            foreach (var part in BandsText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var t))
                    throw new UsageException($"--bands: '{part}' is not a number; give thresholds among 1e-5,1e-4,1e-3,1e-2");
                var i = Array.FindIndex(Thresholds, x => Math.Abs(x - t) <= 1e-9 * x);
                if (i < 0) throw new UsageException($"--bands: {part} is not one of the reported thresholds 1e-5, 1e-4, 1e-3, 1e-2");
                if (!indices.Contains(i)) indices.Add(i);
            }
            if (indices.Count == 0) throw new UsageException("--bands: give at least one threshold, e.g. 1e-4");
            return [.. indices.Order()];
        }

        /// <summary>Rejects option values that make no sense before anything is loaded.</summary>
        public void Validate()
        {
            if (!Methods.Contains(Method))
                throw new UsageException($"--method must be one of {string.Join(", ", Methods)}, got '{Method}'");
            if (Which is not ("largest" or "smallest" or "both"))
                throw new UsageException($"--which must be largest, smallest or both, got '{Which}'");
            if (Top is < 1) throw new UsageException($"--top must be at least 1, got {Top}");
            if (Top is not null && Method != "lanczos") throw new UsageException($"--top applies to --method lanczos, not {Method}");
            if (Steps is < 1) throw new UsageException($"--steps must be at least 1, got {Steps}");
            if (Probes is < 1) throw new UsageException($"--probes must be at least 1, got {Probes}");
            if (Tolerance is double t && !(t > 0 && t < 1)) throw new UsageException($"--tolerance must be in (0, 1), got {t.ToString(CultureInfo.InvariantCulture)}");
            if (MemoryLimitGib is double m && !(m > 0)) throw new UsageException($"--memory-limit must be a positive number of GiB, got {m.ToString(CultureInfo.InvariantCulture)}");
            if (Layerwise && Method is "lanczos" or "slq")
                throw new UsageException($"--layerwise applies to --method trace, exact and diag-fisher; for one layer's spectrum by {Method}, select it with --params PREFIX");
            if (HutchPlusPlus && Method != "trace") throw new UsageException($"--hutch++ applies to --method trace, not {Method}");
            if (HutchPlusPlus && Probes is < 3) throw new UsageException($"--hutch++ splits --probes in three; give at least 3, got {Probes}");
            if (Workers is < 1) throw new UsageException($"--workers must be at least 1, got {Workers}");
            if (Eigen is not ("full" or "inertia")) throw new UsageException($"--eigen must be full or inertia, got '{Eigen}'");
            if (Eigen != "full" && Method != "exact") throw new UsageException($"--eigen applies to --method exact, not {Method}");
            if (BandsGiven && Eigen != "inertia") throw new UsageException("--bands applies to --method exact --eigen inertia (full spectra report every threshold)");
            if (Eigen == "inertia") _ = BandIndices();
            if ((ColumnsDir is not null || KeepColumns || MemoryLimitGib is not null || Workers is not null) && Method != "exact")
                throw new UsageException($"--checkpoint-dir, --keep-columns, --memory-limit and --workers apply to --method exact, not {Method}");
        }
    }

    /// <summary>What one method measured; the keys the issue names are null where the method gives no such quantity.</summary>
    internal sealed class Measurement
    {
        public double[]? Eigenvalues { get; set; }
        public double? Trace { get; set; }
        public double? TraceStandardError { get; set; }
        public double? LambdaMax { get; set; }
        public double? LambdaMin { get; set; }
        public double[]? Fractions { get; set; }
        public long Hvps { get; set; }
        public JsonObject Extras { get; } = new();
        public List<string> Lines { get; } = [];
        /// <summary>Output files: name in the output folder (without extension for plots) and how to write it.</summary>
        public List<(string Name, Action<string> Write)> Files { get; } = [];
        public Action? AfterOutputs { get; set; }
    }

    /// <summary>Measures, writes the output folder (hessian.json last) and prints; returns the exit code.</summary>
    internal static int Execute(CliContext ctx, HessianSettings s)
    {
        s.Validate();
        // With --json, stdout carries exactly one object; everything said along the way goes to stderr.
        var log = s.Json ? ctx.Error : ctx.Out;
        var defaultBatch = s.Method == "diag-fisher" ? 100 : 500;
        using var run = MeasuredRun.Open(s.Checkpoint, "--checkpoint", s.Samples, DefaultSamples, s.BatchSize ?? defaultBatch, s.Overrides, s.LanguageModels);
        var outDir = Path.GetFullPath(s.Out ?? Path.Combine(run.Folder, $"hessian-{s.Method}"));
        var options = new LandscapeOptions
        {
            Parameters = ParseParams(s.ParamsText),
            BatchNorm = s.BatchNorm,
            Dropout = s.Dropout,
            ComputeType = s.ComputeType,
            Loss = run.Loss,
            LossName = run.LossName,
            ModelFactory = run.ModelFactory,
        };
        var names = options.Parameters.ResolveNames(run.Model);
        var watch = Stopwatch.StartNew();
        Measurement m;
        long n;
        string dtypeName;
        if (s.Method == "diag-fisher")
        {
            (m, n, dtypeName) = DiagonalFisher(run, options, s, log);
        }
        else
        {
            using var hvp = new Hvp(run.Model, run.EvaluationSet, options);
            n = hvp.Dimension;
            dtypeName = DtypeName(hvp.Dtype);
            log.WriteLine($"hessian {s.Method}: {run.Meta.Model}, n = {n:N0} parameters ({options.Parameters.Description}), {run.Samples:N0} samples, {dtypeName}");
            try
            {
                m = s.Method switch
                {
                    "exact" => Exact(hvp, s, outDir, run.Meta.Model, log),
                    "lanczos" => LanczosExtremes(hvp, s, run.Meta.Model, log),
                    "slq" => Density(hvp, s, run.Meta.Model),
                    _ => Trace(hvp, s),
                };
            }
            catch (OperationCanceledException)
            {
                ctx.Error.WriteLine($"widevalley: interrupted; every finished block of columns is kept in {ColumnsFolder(s, outDir)}. Run the same command again to resume.");
                return ExitCodes.Interrupted;
            }
            catch (InsufficientMemoryException e)
            {
                ctx.Error.WriteLine($"widevalley: {e.Message}");
                return ExitCodes.Failure;
            }
            catch (InvalidOperationException e) when (e is not ColumnStoreMismatchException)
            {
                // A loss without a gradient graph, a disposed tensor, ...: said as what it is, never as a foreign column folder.
                ctx.Error.WriteLine($"widevalley: hessian --method {s.Method} failed: {e.Message}");
                return ExitCodes.Failure;
            }
            m.Hvps = hvp.HvpCount;
        }
        var seconds = watch.Elapsed.TotalSeconds;

        var result = new JsonObject
        {
            ["n_params"] = n,
            ["method"] = s.Method,
            ["eigenvalues"] = m.Eigenvalues is null ? null : Numbers(m.Eigenvalues),
            ["trace"] = m.Trace is double tr ? Number(tr) : null,
            ["lambda_max"] = m.LambdaMax is double max ? Number(max) : null,
            ["lambda_min"] = m.LambdaMin is double min ? Number(min) : null,
            ["fraction_abs_below"] = m.Fractions is null ? null : FractionObject(m.Fractions),
            ["hvps"] = m.Hvps,
            ["seconds"] = Math.Round(seconds, 3),
            ["trace_stderr"] = m.TraceStandardError is double se ? Number(se) : null,
            ["samples"] = run.Samples,
            ["batch_size"] = s.BatchSize ?? defaultBatch,
            ["dtype"] = dtypeName,
            ["bn"] = s.BatchNorm == BatchNormMode.RunningStatistics ? "running" : "batch",
            ["dropout"] = s.Dropout == DropoutMode.Off ? "off" : "on",
            ["params"] = s.ParamsText ?? "all",
            ["parameter_names"] = new JsonArray(names.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
            ["seed"] = s.Seed,
            ["model"] = run.Meta.Model,
            ["model_params"] = run.Parameters,
            ["optimizer"] = run.Meta.Optimizer,
            ["epoch"] = run.Meta.CompletedEpochs,
            ["checkpoint"] = run.CheckpointPath,
            ["out"] = outDir,
        };
        foreach (var (key, value) in m.Extras.ToList())
        {
            m.Extras.Remove(key);
            result[key] = value;
        }

        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        foreach (var (name, write) in m.Files)
        {
            write(Path.Combine(outDir, name));
            // A name without extension is a figure, saved as PNG and SVG.
            if (Path.HasExtension(name)) written.Add(name);
            else written.AddRange([name + ".png", name + ".svg"]);
        }
        written.Add("hessian.json");
        result["files"] = new JsonArray(written.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        // hessian.json is written last, so its presence means every other output is complete.
        var text = result.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        AtomicFile.WriteAllText(Path.Combine(outDir, "hessian.json"), text + "\n");
        m.AfterOutputs?.Invoke();

        if (s.Json)
        {
            ctx.Out.WriteLine(text);
        }
        else
        {
            foreach (var line in m.Lines) ctx.Out.WriteLine(line);
            ctx.Out.WriteLine(s.Method == "diag-fisher"
                ? $"{result["gradients"]} minibatch gradients, {F(seconds, "0.0")} s"
                : $"{m.Hvps:N0} Hessian-vector products, {F(seconds, "0.0")} s");
            ctx.Out.WriteLine($"wrote {outDir}: {string.Join(", ", written)}");
        }
        return ExitCodes.Ok;
    }

    private static JsonObject FractionObject(double[] fractions)
    {
        var o = new JsonObject();
        for (var i = 0; i < Thresholds.Length; i++) o[ThresholdKeys[i]] = Number(fractions[i]);
        return o;
    }

    private static string FractionLine(double[] fractions) =>
        "fraction |lambda| < t: " + string.Join("  ", Thresholds.Select((t, i) => (t, i)).Where(x => !double.IsNaN(fractions[x.i]))
            .Select(x => $"{F(x.t, "0.#####")}: {F(100 * fractions[x.i], "0.00")}%"));

    private static string ColumnsFolder(HessianSettings s, string outDir) =>
        Path.GetFullPath(s.ColumnsDir ?? Path.Combine(outDir, "hessian-columns"));

    // ---- exact -------------------------------------------------------------------------------------------------

    internal static Measurement Exact(Hvp hvp, HessianSettings s, string outDir, string model, TextWriter log)
    {
        var n = hvp.Dimension;
        var defaults = new ExactHessianOptions();
        if (n > defaults.MaxDimension)
            throw new UsageException(
                $"--method exact: the selection has n = {n:N0} parameters, above the dense limit of {defaults.MaxDimension:N0}; " +
                "select fewer with --params PREFIX, or use --method lanczos, slq or trace");
        var columns = ColumnsFolder(s, outDir);
        using var stop = new StopOnSignal(log);
        long lastTwentieth = -1;
        // Columns are saved in whole blocks; at most 2% of them per block, so an interruption loses little work.
        var rowBytes = n * (hvp.Dtype == ScalarType.Float64 ? 8L : 4L);
        var perBlock = (int)Math.Max(1, Math.Min(Math.Clamp((64L << 20) / rowBytes, 1, n), (n + 49) / 50));
        var onCpu = hvp.Device.type == TorchSharp.DeviceType.CPU;
        if (s.Workers is > 1 && !onCpu)
            throw new UsageException($"--workers applies on the CPU; on {hvp.Device} each product already runs in parallel, so leave it out");
        var workers = s.Workers ?? (onCpu ? Math.Max(1, get_num_threads()) : 1);
        var options = new ExactHessianOptions
        {
            Workers = workers,
            ColumnsPerBlock = perBlock,
            MemoryLimitBytes = s.MemoryLimitGib is double gib ? (long)(gib * (1L << 30)) : null,
            CheckpointFolder = columns,
            Cancellation = stop.Token,
            Progress = progress =>
            {
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
                $"--method exact does not fit in memory: {plan}. Select fewer parameters with --params PREFIX, " +
                (hvp.Dtype == ScalarType.Float64 ? "use --dtype float32, " : "") + "use --method lanczos or slq, or set --memory-limit GIB if the limit is wrong");
        log.WriteLine($"exact: {n:N0} columns, one Hessian-vector product each, {(workers == 1 ? "one worker" : $"{workers} workers (one libtorch thread each)")}; " +
            $"blocks of {perBlock:N0} finished columns are kept in {columns}");

        ExactHessianResult dense;
        try
        {
            dense = ExactHessian.Compute(hvp, options);
        }
        catch (ColumnStoreMismatchException e)
        {
            // The column folder belongs to another model, data set or settings; every other failure is reported as itself.
            throw new UsageException(
                $"the column folder {columns} (--checkpoint-dir) holds columns of another measurement (kept by --keep-columns or an interrupted run); " +
                $"delete it or choose another --checkpoint-dir or --out. {e.Message}");
        }
        using (dense)
        {
            var eigenWatch = Stopwatch.StartNew();
            Measurement m;
            double[]? eigenvalues = null;
            if (s.Eigen == "inertia")
            {
                // Small matrices are factorised in float64, as eigvalsh would be (the plan counted the copy).
                using var converted = dense.Hessian.dtype == plan.EigenType ? null : dense.Hessian.to(plan.EigenType);
                m = InertiaRoute(converted ?? dense.Hessian, s.BandIndices(), s.Seed, log);
            }
            else
            {
                // LAPACK reports nothing while it runs, and for tens of thousands of parameters this is the longest,
                // silent part of the measurement: say that it started and what it costs, so it is not taken for a hang.
                log.WriteLine(string.Format(CultureInfo.InvariantCulture,
                    "exact: all eigenvalues of the {0:N0} x {0:N0} matrix ({1}, LAPACK syevd through torch.linalg.eigvalsh), started {2:HH:mm:ss}; " +
                    "no progress is reported until it ends; its cost grows as n^3 (about {3:0.#e+0} flops for the tridiagonal reduction)",
                    n, DtypeName(plan.EigenType), DateTime.Now, 4.0 / 3.0 * Math.Pow(n, 3)));
                using var eigenvalueTensor = ExactHessian.Eigenvalues(dense.Hessian, plan.EigenType);
                eigenvalues = eigenvalueTensor.data<double>().ToArray();
                m = new Measurement
                {
                    Eigenvalues = eigenvalues,
                    LambdaMax = eigenvalues[^1],
                    LambdaMin = eigenvalues[0],
                    Fractions = Thresholds.Select(t => ExactHessian.FractionAbsBelow(eigenvalueTensor, t)).ToArray(),
                };
            }
            var eigenSeconds = eigenWatch.Elapsed.TotalSeconds;
            log.WriteLine(string.Format(CultureInfo.InvariantCulture, "exact: Hessian in {0:0.0} s ({1:N0} columns computed, {2:N0} resumed), {3} ({4}) in {5:0.0} s",
                dense.Elapsed.TotalSeconds, dense.ComputedColumns, dense.ResumedColumns,
                s.Eigen == "inertia" ? "inertia counts and extremes" : "eigenvalues", DtypeName(plan.EigenType), eigenSeconds));

            using var diagonal = dense.Hessian.diagonal().to(ScalarType.Float64).cpu();
            var diag = diagonal.data<double>().ToArray();
            m.Trace = diag.Sum();
            m.Extras["eigen_route"] = s.Eigen;
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
                m.Files.Add(("layers.csv", path => WriteLayersCsv(path, layers, m.Trace.Value, 0)));
                m.Lines.AddRange(layers.Select(l => $"  {l.Name,-16} {l.Count,9:N0} parameters  trace {F(l.Trace)}"));
            }
            m.Lines.Insert(0, $"exact {(s.Eigen == "inertia" ? "inertia" : "spectrum")}: n = {n:N0}, lambda_max {F(m.LambdaMax!.Value)}, lambda_min {F(m.LambdaMin!.Value)}, trace {F(m.Trace.Value)}");
            m.Lines.Insert(1, FractionLine(m.Fractions!));
            if (eigenvalues is not null)
            {
                m.Files.Add(("eigenvalues.csv", path => SeriesCsv.WriteColumns(path,
                    [new CsvColumn("index", Enumerable.Range(0, eigenvalues.Length).Select(i => (double)i).ToArray()), new CsvColumn("eigenvalue", eigenvalues)])));
                m.Files.Add(("spectrum", path => SpectrumPlot.FromEigenvalues(eigenvalues,
                    new SpectrumPlotOptions { Title = $"{model}: Hessian spectrum (exact, n = {n:N0})" }).SavePngAndSvg(path)));
            }
            // The column store holds n^2 numbers (9 GB for small-LeNet in float32): drop it once the results are safe.
            if (!s.KeepColumns) m.AfterOutputs = () => DeleteColumnStore(columns);
            return m;
        }
    }

    /// <summary>
    /// The paper's statistic without the full decomposition: exact counts of |lambda| &lt; t from the inertia of
    /// H -+ t I (Sylvester), and the extreme eigenvalues by Lanczos on the dense matrix (cheap products, error bounds).
    /// </summary>
    private static Measurement InertiaRoute(Tensor hessian, int[] bandIndices, long seed, TextWriter log)
    {
        var n = hessian.shape[0];
        var fractions = Thresholds.Select(_ => double.NaN).ToArray();
        var counts = new JsonObject();
        foreach (var i in bandIndices)
        {
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
        Tensor Product(Tensor v)
        {
            using var scope = NewDisposeScope();
            return hessian.mv(v.to(hessian.dtype)).MoveToOuterDisposeScope();
        }
        var top = Lanczos.Run(Product, n, 1, SpectrumEnd.Largest, options, hessian.dtype, hessian.device);
        var bottom = Lanczos.Run(Product, n, 1, SpectrumEnd.Smallest, options, hessian.dtype, hessian.device);
        log.WriteLine(string.Format(CultureInfo.InvariantCulture, "exact: lambda_max {0} (within {1}, {2} products), lambda_min {3} (within {4}, {5} products)",
            F(top.Eigenvalues[0]), F(top.ErrorBounds[0], "0.##E+0"), top.OperatorApplications, F(bottom.Eigenvalues[0]), F(bottom.ErrorBounds[0], "0.##E+0"), bottom.OperatorApplications));
        var m = new Measurement { LambdaMax = top.Eigenvalues[0], LambdaMin = bottom.Eigenvalues[0], Fractions = fractions };
        m.Extras["band_counts"] = counts;
        m.Extras["lambda_max_error_bound"] = Number(top.ErrorBounds[0]);
        m.Extras["lambda_min_error_bound"] = Number(bottom.ErrorBounds[0]);
        m.Extras["extremes_converged"] = top.Converged && bottom.Converged;
        return m;
    }

    private static void DeleteColumnStore(string folder)
    {
        if (!File.Exists(Path.Combine(folder, "manifest.json"))) return;
        foreach (var file in Directory.EnumerateFiles(folder, "columns-*.bin")) File.Delete(file);
        File.Delete(Path.Combine(folder, "manifest.json"));
        if (!Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder);
    }

    private static string Clock(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t:mm\\:ss}" : t.ToString("mm\\:ss", CultureInfo.InvariantCulture);

    // ---- lanczos -----------------------------------------------------------------------------------------------

    private static Measurement LanczosExtremes(Hvp hvp, HessianSettings s, string model, TextWriter log)
    {
        var n = hvp.Dimension;
        var k = s.Top ?? (int)Math.Min(10, n);
        if (k > n) throw new UsageException($"--top {k} is larger than the number of parameters measured, n = {n:N0}");
        var steps = s.Steps ?? (int)Math.Min(n, Math.Max(300, 3L * k));
        if (steps < k) throw new UsageException($"--steps {steps} is below --top {k}: k eigenvalues need at least k Lanczos steps");
        var tolerance = s.Tolerance ?? (hvp.Dtype == ScalarType.Float64 ? 1e-8 : 1e-4);
        var options = new LanczosOptions { MaxIterations = steps, Tolerance = tolerance, Seed = s.Seed };
        // Both ends of a small operator: the smallest end takes only the eigenvalues the largest end did not.
        var largestCount = s.Which == "smallest" ? 0 : k;
        var smallestCount = s.Which == "largest" ? 0 : (int)Math.Min(k, n - largestCount);
        var m = new Measurement();
        LanczosResult? top = null, bottom = null;
        if (largestCount > 0) top = Lanczos.Run(hvp, largestCount, SpectrumEnd.Largest, options);
        if (smallestCount > 0) bottom = Lanczos.Run(hvp, smallestCount, SpectrumEnd.Smallest, options with { Seed = unchecked(s.Seed + 1) });
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
                log.WriteLine($"lanczos: the {name} end did not reach --tolerance {F(tolerance)} within {r.Iterations} steps (largest residual {F(r.Residuals.Max())}); raise --steps or --tolerance");
        }
        var all = (top?.Eigenvalues ?? []).Concat(bottom?.Eigenvalues ?? []).Order().ToArray();
        var residualOf = (top is null ? [] : top.Eigenvalues.Zip(top.Residuals)).Concat(bottom is null ? [] : bottom.Eigenvalues.Zip(bottom.Residuals))
            .OrderBy(p => p.First).Select(p => p.Second).ToArray();
        m.Eigenvalues = all;
        m.LambdaMax = top is not null ? top.Eigenvalues[0] : bottom!.Eigenvalues.Length == n ? bottom.Eigenvalues[^1] : null;
        m.LambdaMin = bottom is not null ? bottom.Eigenvalues[0] : top!.Eigenvalues.Length == n ? top.Eigenvalues[^1] : null;
        m.Extras["top"] = k;
        m.Extras["which"] = s.Which;
        m.Extras["tolerance"] = tolerance;
        m.Extras["steps"] = steps;
        m.Extras["converged"] = (top?.Converged ?? true) && (bottom?.Converged ?? true);
        if (top is not null) m.Lines.Add($"largest {top.Eigenvalues.Length}: {string.Join(" ", top.Eigenvalues.Select(v => F(v)))}");
        if (bottom is not null) m.Lines.Add($"smallest {bottom.Eigenvalues.Length}: {string.Join(" ", bottom.Eigenvalues.Select(v => F(v)))}");
        m.Lines.Insert(0, $"lanczos: n = {n:N0}, lambda_max {(m.LambdaMax is double a ? F(a) : "-")}, lambda_min {(m.LambdaMin is double b ? F(b) : "-")}");
        m.Files.Add(("eigenvalues.csv", path => SeriesCsv.WriteColumns(path, [new CsvColumn("eigenvalue", all), new CsvColumn("residual", residualOf)])));
        var series = new List<LineSeries>();
        if (top is not null)
            series.Add(new LineSeries("largest", Enumerable.Range(1, top.Eigenvalues.Length).Select(i => (double)i).ToArray(), top.Eigenvalues) { ShowMarkers = true });
        if (bottom is not null)
            series.Add(new LineSeries("smallest", Enumerable.Range(1, bottom.Eigenvalues.Length).Select(i => (double)i).ToArray(), bottom.Eigenvalues) { ShowMarkers = true });
        m.Files.Add(("eigenvalues", path => LinePlot.Create(series, "rank from the end of the spectrum", "eigenvalue",
            new LinePlotOptions { Title = $"{model}: Hessian extreme eigenvalues (Lanczos, n = {n:N0})" }).SavePngAndSvg(path)));
        return m;
    }

    // ---- slq ---------------------------------------------------------------------------------------------------

    private static Measurement Density(Hvp hvp, HessianSettings s, string model)
    {
        var n = hvp.Dimension;
        var options = new SlqOptions { Probes = s.Probes ?? 10, Steps = s.Steps ?? 90, Seed = s.Seed };
        var slq = Slq.Run(hvp, options);
        var density = slq.Density();
        var (min, max) = slq.Range;
        var (meanEigenvalue, meanError) = slq.Moment(1);
        var (secondMoment, _) = slq.Moment(2);
        var m = new Measurement
        {
            LambdaMax = max,
            LambdaMin = min,
            Trace = n * meanEigenvalue,
            TraceStandardError = n * meanError,
            Fractions = Thresholds.Select(slq.FractionAbsBelow).ToArray(),
        };
        m.Extras["probes"] = options.Probes;
        m.Extras["steps"] = (int)Math.Min(options.Steps, n);
        m.Extras["second_moment"] = Number(secondMoment);
        m.Extras["density_sigma"] = Number(density.Sigma);
        m.Extras["nodes"] = new JsonArray(slq.Nodes.Select(nodes => (JsonNode?)Numbers(nodes)).ToArray());
        m.Extras["weights"] = new JsonArray(slq.Weights.Select(w => (JsonNode?)Numbers(w)).ToArray());
        m.Lines.Add($"slq: n = {n:N0}, {options.Probes} probes x {m.Extras["steps"]} steps; lambda_max ~ {F(max)}, lambda_min ~ {F(min)}, trace ~ {F(m.Trace.Value)} ± {F(m.TraceStandardError.Value)}");
        m.Lines.Add(FractionLine(m.Fractions));
        m.Files.Add(("density.csv", path => SeriesCsv.WriteColumns(path, [new CsvColumn("eigenvalue", density.Grid), new CsvColumn("density", density.Density)])));
        m.Files.Add(("nodes.csv", path => SeriesCsv.WriteColumns(path,
        [
            new CsvColumn("probe", slq.Nodes.SelectMany((nodes, l) => nodes.Select(_ => (double)l)).ToArray()),
            new CsvColumn("node", slq.Nodes.SelectMany(x => x).ToArray()),
            new CsvColumn("weight", slq.Weights.SelectMany(x => x).ToArray()),
        ])));
        var statistics = new SpectrumStatistics(null, min, max, 1e-4, slq.FractionAbsBelow(1e-4));
        m.Files.Add(("density", path => SpectrumPlot.FromDensity(density.Grid, density.Density,
            new SpectrumPlotOptions { Title = $"{model}: Hessian eigenvalue density (SLQ, n = {n:N0})", Statistics = statistics }).SavePngAndSvg(path)));
        return m;
    }

    // ---- trace -------------------------------------------------------------------------------------------------

    private static Measurement Trace(Hvp hvp, HessianSettings s)
    {
        var options = new HutchinsonOptions { Probes = s.Probes ?? 100, Seed = s.Seed, HutchPlusPlus = s.HutchPlusPlus };
        var r = Hutchinson.Run(hvp, options);
        var m = new Measurement { Trace = r.Total.Trace, TraceStandardError = r.Total.StandardError };
        m.Extras["estimator"] = r.Method;
        m.Extras["probes"] = r.Probes;
        m.Lines.Add($"trace ({r.Method}, {r.OperatorApplications} products): {F(r.Total.Trace)} ± {F(r.Total.StandardError)} (standard error)");
        if (s.Layerwise)
        {
            m.Extras["layers"] = LayersJson(r.Layers, withError: true);
            m.Lines.AddRange(r.Layers.Select(l => $"  {l.Name,-16} {l.Count,9:N0} parameters  trace {F(l.Trace)} ± {F(l.StandardError)}"));
        }
        m.Files.Add(("trace.csv", path => WriteLayersCsv(path, s.Layerwise ? r.Layers : [], r.Total.Trace, r.Total.StandardError)));
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
    private static void WriteLayersCsv(string path, IReadOnlyList<TraceEstimate> layers, double total, double totalError)
    {
        static string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var text = new StringBuilder("layer,params,trace,trace_stderr\n");
        foreach (var l in layers) text.Append(CultureInfo.InvariantCulture, $"{Quote(l.Name)},{l.Count},{R(l.Trace)},{R(l.StandardError)}\n");
        text.Append(CultureInfo.InvariantCulture, $"total,{layers.Sum(l => l.Count)},{R(total)},{R(totalError)}\n");
        AtomicFile.WriteAllText(path, text.ToString());
    }

    private static string Quote(string field) =>
        field.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : field;

    // ---- diag-fisher -------------------------------------------------------------------------------------------

    private static (Measurement, long, string) DiagonalFisher(MeasuredRun run, LandscapeOptions options, HessianSettings s, TextWriter log)
    {
        if (run.EvaluationSet.Count < 2)
            throw new UsageException(
                $"--method diag-fisher is a variance over minibatches and needs at least 2; {run.Samples:N0} samples in batches of {run.EvaluationSet[0].Inputs.shape[0]} give 1. Use a smaller --batch-size or more --samples");
        log.WriteLine($"hessian diag-fisher: {run.Meta.Model}, {run.Samples:N0} samples in {run.EvaluationSet.Count} minibatches");
        using var r = DiagFisher.Compute(run.Model, run.EvaluationSet, options);
        var n = r.Layout.Dimension;
        var dtype = DtypeName(options.ComputeType ?? run.Model.parameters().First().dtype);
        var summary = r.Summary();
        var values = r.Diagonal.cpu().data<double>().ToArray();
        var m = new Measurement();
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
        if (s.Layerwise)
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
        m.Files.Add(("diag-fisher.csv", path => SeriesCsv.WriteColumns(path,
            [new CsvColumn("index", Enumerable.Range(0, values.Length).Select(i => (double)i).ToArray()), new CsvColumn("fisher", values)])));
        m.Files.Add(("histogram", path => HistogramPlot.Create(values, new HistogramPlotOptions
        {
            LogX = true,
            LogY = true,
            XLabel = "diagonal Fisher E(g²) − (E g)²",
            Title = $"{run.Meta.Model}: diagonal empirical Fisher ({r.Minibatches} minibatches of {run.EvaluationSet[0].Inputs.shape[0]})",
        }).SavePngAndSvg(path)));
        return (m, n, dtype);
    }

    /// <summary>
    /// First Ctrl-C or SIGTERM: stop between columns (finished blocks stay on disk, so the same command resumes).
    /// A second Ctrl-C aborts at once.
    /// </summary>
    private sealed class StopOnSignal : IDisposable
    {
        private readonly CancellationTokenSource source = new();
        private readonly ConsoleCancelEventHandler handler;
        private readonly PosixSignalRegistration? term;
        private int presses;

        public StopOnSignal(TextWriter log)
        {
            handler = (_, e) =>
            {
                if (Interlocked.Increment(ref presses) > 1) { e.Cancel = false; return; }
                e.Cancel = true;
                source.Cancel();
                log.WriteLine("exact: stopping after the current column (Ctrl-C again aborts at once)");
            };
            Console.CancelKeyPress += handler;
            if (!OperatingSystem.IsWindows())
                term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
                {
                    c.Cancel = true;
                    source.Cancel();
                    log.WriteLine("exact: SIGTERM received; stopping after the current column");
                });
        }

        public CancellationToken Token => source.Token;

        public void Dispose()
        {
            Console.CancelKeyPress -= handler;
            term?.Dispose();
            source.Dispose();
        }
    }
}
