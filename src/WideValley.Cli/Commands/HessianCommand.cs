using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Spectre.Console;
using WideValley.Experiments;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley hessian --checkpoint RUN --method exact|lanczos|slq|trace|diag-fisher`: the Hessian of a trained run's
/// loss over its first N training samples (seed 003 Sec. 5.1, Figs. 1 and 3), by one of the library's methods; or,
/// with `--model-file FILE` (<see cref="ModelSourceCommandOptions"/>), of a user's network (TorchScript from PyTorch,
/// TorchSharp weights with a zoo or factory architecture) over the first N samples of the data named. A shell
/// over the library's <see cref="HessianMeasurement"/> service (which owns the methods, the inertia route, the
/// column-block policy and the hessian.json format): it parses the options, opens the run, measures it into its folder
/// through <see cref="HessianFolders"/> (the service plus plots and tables, shared with the hessian-universality
/// experiment), and prints the quantities the paper quotes (or one JSON object), with a progress bar on terminals.
/// </summary>
public static class HessianCommand
{
    /// <summary>Thresholds t of the "fraction of |lambda| &lt; t" statistic.</summary>
    public static readonly double[] Thresholds = HessianMeasurement.Thresholds;

    /// <summary>JSON keys of <see cref="Thresholds"/>, spelled as Python's repr spells them (what the issue asks for).</summary>
    public static readonly string[] ThresholdKeys = HessianMeasurement.ThresholdKeys;

    /// <summary>Default size of the evaluation set.</summary>
    public const long DefaultSamples = 1000;

    /// <summary>The methods, as spelled on the command line.</summary>
    public static readonly string[] Methods = ["exact", "lanczos", "slq", "trace", "diag-fisher"];

    /// <summary>Builds the command.</summary>
    public static Command Create(CliContext ctx)
    {
        var checkpoint = new Option<string?>("--checkpoint")
        {
            Description = "Run folder (holding checkpoint.bin) or a checkpoint file. A run of your own network (no run configuration): add --model-factory " +
                          "(or --model) and the data. Or name the network with --model-file.",
        };
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
        var source = new ModelSourceCommandOptions();
        var output = Out("RUN/hessian-METHOD; for a model file DIR/NAME.EXT: DIR/NAME-hessian-METHOD");
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
        var classify = new Option<bool>("--classify")
        {
            Description = "exact (full spectrum) and slq: classify the point (fractions of eigenvalues below -tau, within [-tau, tau] and above tau for tau 1e-4, 1e-3, 1e-2; " +
                          "index, degeneracy and the gradient norm: minimum, saddle or not critical) and fit Wigner's semicircle to the bulk against a Gaussian and " +
                          "Marchenko-Pastur; writes classification.json and adds it to hessian.json.",
        };
        var outliers = new Option<int?>("--outliers") { Description = "--classify: top eigenvalues dropped before the semicircle fit, e.g. the number of classes (default: an iterative 2-sigma rule)." };
        var command = new Command("hessian",
            "Hessian of a network's loss over its first N training samples (a run's, or the data named for a --model-file): exact spectrum, " +
            "Lanczos extremes, SLQ density, Hutchinson trace or diagonal Fisher.")
        {
            checkpoint, method, top, which, layerwise, samples, batch, dtype, bn, dropout, parameters, seed, threads, output, json,
            tolerance, steps, probes, hutchPlusPlus, checkpointDir, keepColumns, memoryLimit, workers, eigen, bands, classify, outliers,
        };
        source.AddTo(command);
        command.SetAction(p =>
        {
            var settings = new HessianSettings
            {
                Checkpoint = p.GetValue(checkpoint),
                Source = source.ForMeasurement(p, p.GetValue(checkpoint)),
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
                Overrides = new RunOverrides(p.GetValue(threads), p.GetValue(source.Device), p.GetValue(source.DataDir)),
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
                Classify = p.GetValue(classify),
                Outliers = p.GetValue(outliers),
            };
            return Execute(ctx, settings);
        });
        return command.WithRanges();
    }

    /// <summary>What `hessian` measures, as its options say; experiment commands build one to measure a run the same way.</summary>
    internal sealed record HessianSettings
    {
        /// <summary>The run folder or checkpoint file (when <see cref="Source"/> is null).</summary>
        public string? Checkpoint { get; init; }
        /// <summary>A model source and its data (--model-file, or a run with a named architecture or data); null: the run <see cref="Checkpoint"/>.</summary>
        public ModelSourceRequest? Source { get; init; }
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
        /// <summary>--classify: the critical-point classification and semicircle fit (<see cref="HessianClassification"/>).</summary>
        public bool Classify { get; init; }
        /// <summary>--outliers: C for the semicircle fit (null: the iterative rule).</summary>
        public int? Outliers { get; init; }
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
            if (Classify && !(Method == "slq" || (Method == "exact" && Eigen == "full")))
                throw new UsageException($"--classify needs every eigenvalue or a density: --method exact (with --eigen full) or slq, not {Method}{(Method == "exact" ? " --eigen " + Eigen : "")}");
            if (Outliers is not null && !Classify) throw new UsageException("--outliers applies to --classify");
            if (Outliers is < 0) throw new UsageException($"--outliers must be zero or positive, got {Outliers}");
            if ((ColumnsDir is not null || KeepColumns || MemoryLimitGib is not null || Workers is not null) && Method != "exact")
                throw new UsageException($"--checkpoint-dir, --keep-columns, --memory-limit and --workers apply to --method exact, not {Method}");
        }
    }

    /// <summary>The library settings these options describe (sizes the method does not use stay null).</summary>
    internal static HessianMeasurementSettings ToMeasurementSettings(HessianSettings s, string columnsFolder, TextWriter log, CancellationToken cancellation,
        IProgress<CurvatureProgress>? progress, Action<ExactHessianProgress>? columnProgress) => new()
    {
        Method = ParseMethod(s.Method),
        Top = s.Top,
        Which = s.Which switch { "largest" => SpectrumEnds.Largest, "smallest" => SpectrumEnds.Smallest, _ => SpectrumEnds.Both },
        Layerwise = s.Layerwise,
        Tolerance = s.Tolerance,
        Steps = s.Steps,
        Probes = s.Probes,
        HutchPlusPlus = s.HutchPlusPlus,
        Seed = s.Seed,
        ColumnsFolder = columnsFolder,
        KeepColumns = s.KeepColumns,
        MemoryLimitBytes = s.MemoryLimitGib is double gib ? (long)(gib * (1L << 30)) : null,
        Workers = s.Workers,
        Eigen = s.Eigen == "inertia" ? EigenRoute.Inertia : EigenRoute.Full,
        BandIndices = s.Eigen == "inertia" ? s.BandIndices() : [1],
        Log = log,
        Progress = progress,
        ColumnProgress = columnProgress,
        Cancellation = cancellation,
    };

    private static HessianMethod ParseMethod(string method) => method switch
    {
        "exact" => HessianMethod.Exact,
        "lanczos" => HessianMethod.Lanczos,
        "slq" => HessianMethod.Slq,
        "trace" => HessianMethod.Trace,
        "diag-fisher" => HessianMethod.DiagFisher,
        _ => throw new UsageException($"--method must be one of {string.Join(", ", Methods)}, got '{method}'"),
    };

    /// <summary>The command-line flag of each library setting, for messages about a value that does not fit.</summary>
    private static readonly Dictionary<string, string> Flags = new()
    {
        ["Method"] = "--method", ["Top"] = "--top", ["Steps"] = "--steps", ["Workers"] = "--workers", ["BandIndices"] = "--bands",
    };

    /// <summary>
    /// Opens the run, measures it into its output folder through the shared <see cref="HessianFolders"/> service
    /// (the library's <see cref="HessianMeasurement"/> plus plots, CSV tables and hessian.json last), and says
    /// library errors in terms of this command's flags. Nothing here prints a result or chooses an exit code. A run
    /// folder whose newest checkpoint is damaged is measured at its intact previous generation, with a warning on
    /// <paramref name="warnings"/>.
    /// </summary>
    /// <exception cref="UsageException">An option that does not fit the run (names the flag).</exception>
    /// <exception cref="OperationCanceledException">Interrupted; the exact route keeps its finished column blocks.</exception>
    /// <remarks>
    /// With <paramref name="ranks"/> of more than one process (the command under mpirun), every rank opens the same run
    /// and evaluates its share of the batches; every product is summed over the ranks, so every rank measures the same
    /// numbers, and rank 0 alone writes the folder (docs/distributed.md, "Landscape measurements over ranks").
    /// </remarks>
    internal static HessianFolder MeasureRun(HessianSettings s, TextWriter log, CancellationToken cancellation = default,
        IProgress<CurvatureProgress>? progress = null, Action<ExactHessianProgress>? columnProgress = null, TextWriter? warnings = null,
        WideValley.Distributed.ICollectives? ranks = null)
    {
        s.Validate();
        var batchSize = s.BatchSize ?? HessianFolders.DefaultBatchSize(ParseMethod(s.Method));
        using var run = s.Source is { } source
            ? MeasuredRun.OpenModel(source, s.Samples, DefaultSamples, batchSize, s.Overrides.Threads, warnings)
            : MeasuredRun.Open(s.Checkpoint ?? throw new UsageException("--checkpoint: name the run to measure"), "--checkpoint", s.Samples, DefaultSamples,
                batchSize, s.Overrides, s.LanguageModels, warnings);
        var outDir = Path.GetFullPath(s.Out ?? run.DefaultOut($"hessian-{s.Method}"));
        var settings = ToMeasurementSettings(s, ColumnsFolder(s, outDir), log, cancellation, progress, columnProgress);
        if (settings.Method == HessianMethod.Exact && s.MemoryLimitGib is null && ranks is { Size: > 1 }
            && WideValley.Distributed.Collectives.RanksOnThisHost is > 1 and var sharing)
        {
            // Every rank holds the whole matrix: ranks on one machine each take their share of its memory, not all of it.
            var share = Math.Max(0, (ExactHessian.AvailableMemoryBytes() - new ExactHessianOptions().MemoryMarginBytes) / sharing);
            settings = settings with { MemoryLimitBytes = share };
            log.WriteLine($"exact: {sharing} ranks on this machine each hold the whole matrix; each may use {share / (double)(1L << 30):0.0} GiB (set --memory-limit to change it)");
        }
        var landscape = new LandscapeOptions
        {
            Parameters = ParseParams(s.ParamsText),
            BatchNorm = s.BatchNorm,
            Dropout = s.Dropout,
            ComputeType = s.ComputeType,
            Loss = run.Loss,
            LossName = run.LossName,
            ModelFactory = run.ModelFactory,
            Collectives = ranks,
        };
        try
        {
            var measured = HessianFolders.Measure(new HessianFolderRequest
            {
                Model = run.Model,
                EvaluationSet = run.EvaluationSet,
                Samples = run.Samples,
                BatchSize = batchSize,
                Name = run.Name,
                Options = landscape,
                ParametersText = s.ParamsText,
                Settings = settings,
                OutDir = outDir,
                Describe = run.Describe,
            });
            return s.Classify ? HessianClassification.Add(measured, run.Model, run.EvaluationSet, landscape, s.Outliers) : measured;
        }
        catch (HessianSettingException e) when (Flags.ContainsKey(e.Setting))
        {
            throw new UsageException($"{Flags[e.Setting]} {e.Value} {e.Problem}");
        }
        catch (ColumnStoreMismatchException e)
        {
            // The column folder belongs to another model, data set or settings; every other failure is reported as itself.
            throw new UsageException(
                $"the column folder {settings.ColumnsFolder} (--checkpoint-dir) holds columns of another measurement (kept by --keep-columns or an interrupted run); " +
                $"delete it or choose another --checkpoint-dir or --out. {e.Message}");
        }
    }

    /// <summary>
    /// Measures, writes the output folder (hessian.json last) and prints; returns the exit code. Under an MPI launcher
    /// (`mpirun -np K widevalley hessian ...`) the K ranks share the evaluation set: rank 0 prints and writes, the others
    /// stay silent, and a rank that fails or is interrupted ends the whole job (the others would wait in their next
    /// product for ever); an exact measurement's finished column blocks stay in rank 0's column folder for a rerun.
    /// </summary>
    internal static int Execute(CliContext ctx, HessianSettings s)
    {
        s.Validate();
        return OverRanks.Run($"hessian --method {s.Method}", ranks => Execute(ctx, s, ranks));
    }

    private static int Execute(CliContext ctx, HessianSettings s, WideValley.Distributed.ICollectives? ranks)
    {
        // Rank 0 (or the one process) speaks; the other ranks of a job compute the same numbers silently but still say their errors.
        var speaks = WideValley.Distributed.Collectives.SpeaksForTheJob(ranks);
        // With --json, stdout carries exactly one object; everything said along the way goes to stderr.
        var log = !speaks ? TextWriter.Null : s.Json ? ctx.Error : ctx.Out;
        var warnings = speaks ? ctx.Error : TextWriter.Null;
        if (ranks is { Size: > 1 } && speaks)
            log.WriteLine(OverRanks.Sharing("hessian", ranks));
        HessianFolder measured;
        using (var stop = new StopOnSignal(log))
        {
            try
            {
                // With --json, stdout carries exactly one object: no live display there (nor on an MPI rank: CliContext.Interactive).
                measured = s.Json
                    ? MeasureRun(s, log, stop.Token, warnings: warnings, ranks: ranks)
                    : ProgressDisplay.Run(ctx, s.Method, (progress, columns) => MeasureRun(s, log, stop.Token, progress, columns, warnings, ranks));
            }
            catch (OperationCanceledException e)
            {
                ctx.Error.WriteLine(s.Method == "exact" ? $"widevalley: {e.Message}" : "widevalley: interrupted; nothing was written.");
                return ExitCodes.Interrupted;
            }
            catch (InsufficientMemoryException e)
            {
                ctx.Error.WriteLine($"widevalley: {e.Message}");
                return ExitCodes.Failure;
            }
            catch (NonFiniteValuesException e)
            {
                // NaN or infinite weights (checked before measuring) or results (checked before writing): nothing was written.
                ctx.Error.WriteLine($"widevalley: {e.Message}");
                return ExitCodes.Failure;
            }
            catch (InvalidOperationException e)
            {
                // A loss without a gradient graph, a disposed tensor, ...: said as what it is, never as a foreign column folder.
                ctx.Error.WriteLine($"widevalley: hessian --method {s.Method} failed: {e.Message}");
                return ExitCodes.Failure;
            }
        }
        if (!speaks) return ExitCodes.Ok;
        var m = measured.Result;
        if (measured.PlotsSkipped is { } skippedPlots) ctx.Error.WriteLine($"widevalley: warning: {skippedPlots}");
        if (s.Json)
        {
            ctx.Out.WriteLine(measured.Json);
        }
        else
        {
            foreach (var line in m.Lines) ctx.Out.WriteLine(line);
            ctx.Out.WriteLine(s.Method == "diag-fisher"
                ? $"{m.Gradients} minibatch gradients, {F(m.Elapsed.TotalSeconds, "0.0")} s"
                : $"{m.Hvps:N0} Hessian-vector products, {F(m.Elapsed.TotalSeconds, "0.0")} s");
            ctx.Out.WriteLine($"wrote {measured.OutDir}: {string.Join(", ", measured.Files)}");
        }
        return ExitCodes.Ok;
    }

    private static string ColumnsFolder(HessianSettings s, string outDir) =>
        Path.GetFullPath(s.ColumnsDir ?? Path.Combine(outDir, "hessian-columns"));

    /// <summary>
    /// A live Spectre.Console progress bar for each phase of a measurement (Lanczos per end, SLQ probes, Hutchinson
    /// probes, exact columns) on a terminal; nothing extra when output is redirected, where the measurement's own
    /// summary lines are what a log keeps.
    /// </summary>
    private static class ProgressDisplay
    {
        public static T Run<T>(CliContext ctx, string method, Func<IProgress<CurvatureProgress>?, Action<ExactHessianProgress>?, T> body)
        {
            if (!ctx.Interactive) return body(null, null);
            T result = default!;
            ctx.ProgressBars()
                .Start(progress =>
                {
                    ProgressTask? bar = null;
                    string? phase = null;
                    long last = 0;
                    void Show(string name, long done, long total)
                    {
                        // A new phase (another method, or Lanczos starting the other end) gets a bar of its own.
                        if (bar is null || name != phase || done < last)
                        {
                            bar?.StopTask();
                            bar = progress.AddTask(Markup.Escape($"hessian {method}: {name}"), maxValue: Math.Max(1, total));
                            phase = name;
                        }
                        bar.MaxValue = Math.Max(1, total);
                        bar.Value = done;
                        last = done;
                    }
                    var curvature = new Reporter<CurvatureProgress>(p => Show(p.Method, p.Done, p.Total));
                    result = body(curvature, p => Show("columns", p.ColumnsDone, p.Columns));
                    bar?.StopTask();
                });
            return result;
        }

        /// <summary>Reports on the calling thread (System.Progress would post to the thread pool and reorder them).</summary>
        private sealed class Reporter<TValue>(Action<TValue> report) : IProgress<TValue>
        {
            private readonly Lock gate = new();

            public void Report(TValue value)
            {
                lock (gate) report(value);
            }
        }
    }

    /// <summary>
    /// First Ctrl-C or SIGTERM: stop between columns (finished blocks stay on disk, so the same command resumes).
    /// A second Ctrl-C aborts at once.
    /// </summary>
    internal sealed class StopOnSignal : IDisposable
    {
        private readonly CancellationTokenSource source = new();
        private readonly ConsoleCancelEventHandler handler;
        private readonly PosixSignalRegistration? term;
        private int presses;

        /// <summary>Stops <see cref="Token"/> on the first Ctrl-C or SIGTERM, saying <paramref name="stopping"/> (default: the exact route's words).</summary>
        public StopOnSignal(TextWriter log, string? stopping = null)
        {
            var said = stopping ?? "exact: stopping after the current column (Ctrl-C again aborts at once)";
            var saidOnTerm = stopping ?? "exact: SIGTERM received; stopping after the current column";
            handler = (_, e) =>
            {
                if (Interlocked.Increment(ref presses) > 1) { e.Cancel = false; return; }
                e.Cancel = true;
                source.Cancel();
                log.WriteLine(said);
            };
            Console.CancelKeyPress += handler;
            if (!OperatingSystem.IsWindows())
                term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
                {
                    c.Cancel = true;
                    source.Cancel();
                    log.WriteLine(saidOnTerm);
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
