using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Reports;
using static WideValley.Cli.Commands.MeasurementOptions;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley landscape --checkpoint A [--other B] --slice interp|1d|2d`: loss and error of a trained run along the
/// line to another checkpoint of the same network (w(t) = A + t (B - A)), or along one or two filter-normalised random
/// directions (Li et al. 2018), over the run's first N training samples. Writes CSV, PNG + SVG and a JSON summary.
/// With `--model-file A [--other B]` (<see cref="ModelSourceCommandOptions"/>) the same for a user's network
/// (TorchScript from PyTorch, TorchSharp weights with a zoo or factory architecture) over the first N samples of the
/// data named; B is read the same way as A. Under an MPI launcher (`mpirun -np K widevalley landscape ...`) the K
/// ranks share the evaluation set (each evaluates every Kth batch, every loss and error is summed over the ranks), so
/// every rank computes the same slice; rank 0 alone prints and writes (docs/distributed.md).
/// </summary>
public static class LandscapeCommand
{
    /// <summary>Default size of the evaluation set.</summary>
    public const long DefaultSamples = 1000;

    /// <summary>Most --points along the line of an interp or 1d slice (each point is one pass over the samples).</summary>
    public const int MaxPointsLine = 100_000;

    /// <summary>
    /// Most --points per axis of a 2d slice: 501 x 501 = 251,001 passes over the samples (hours for the default 1,000
    /// samples of a small network). 100,000 would be 10^10 passes, years of work.
    /// </summary>
    public const int MaxPoints2D = 501;

    /// <summary>The slices, as spelled on the command line.</summary>
    public static readonly string[] SliceKinds = ["interp", "1d", "2d"];

    /// <summary>Builds the command.</summary>
    public static Command Create(CliContext ctx)
    {
        var checkpoint = new Option<string?>("--checkpoint")
        {
            Description = "Run folder (holding checkpoint.bin) or a checkpoint file: the point A. A run of your own network (no run configuration): add " +
                          "--model-factory (or --model) and the data. Or name the network with --model-file.",
        };
        var other = new Option<string?>("--other")
        {
            Description = "interp: the end point B, a checkpoint of the same network, or with --model-file another file of the same network, read the same way.",
        };
        var slice = new Option<string>("--slice") { Description = "interp (A to B), 1d or 2d (filter-normalised random directions around A).", Required = true };
        var points = new Option<int?>("--points")
        {
            Description = $"Points along each axis (default 41 for interp and 1d, 21 for 2d; at most {MaxPointsLine:N0} along a line, {MaxPoints2D} per axis of a 2d grid).",
        };
        var range = new Option<string?>("--range") { Description = "FROM:TO along each axis (default -0.5:1.5 for interp, -1:1 for random directions); write --range=-1:1." };
        var samples = Samples(DefaultSamples);
        var batch = BatchSize("default 500");
        var dtype = Dtype();
        var bn = MeasurementOptions.BatchNorm();
        var dropout = MeasurementOptions.Dropout();
        var parameters = Params();
        var seed = Seed();
        var threads = Threads();
        var source = new ModelSourceCommandOptions();
        var output = Out("A/landscape-SLICE; for a model file DIR/NAME.EXT: DIR/NAME-landscape-SLICE");
        var json = Json();
        var command = new Command("landscape",
            "Loss and error along the line between two checkpoints or model files (interp) or along random filter-normalised directions (1d, 2d), " +
            "of a run or of a --model-file (TorchScript from PyTorch, TorchSharp weights) on the data named.")
        {
            checkpoint, other, slice, points, range, samples, batch, dtype, bn, dropout, parameters, seed, threads, output, json,
        };
        source.AddTo(command);
        command.SetAction(p => OverRanks.Run("landscape", ranks =>
        {
            try
            {
                return Execute(ctx, p, ranks);
            }
            catch (NonFiniteValuesException e)
            {
                // NaN or infinite weights (checked before measuring) or a slice without a finite loss at them: nothing was written.
                ctx.Error.WriteLine($"widevalley: {e.Message}");
                return ExitCodes.Failure;
            }
            catch (OperationCanceledException)
            {
                ctx.Error.WriteLine("widevalley: interrupted; nothing was written.");
                return ExitCodes.Interrupted;
            }
        }));
        return command.WithRanges();

        int Execute(CliContext ctx, ParseResult p, WideValley.Distributed.ICollectives? ranks)
        {
            // Rank 0 (or the one process) speaks and writes; the other ranks of a job compute the same slice silently but still say their errors.
            var speaks = WideValley.Distributed.Collectives.SpeaksForTheJob(ranks);
            var kind = p.GetValue(slice)!.ToLowerInvariant();
            if (!SliceKinds.Contains(kind)) throw new UsageException($"--slice must be one of {string.Join(", ", SliceKinds)}, got '{p.GetValue(slice)}'");
            var otherPath = p.GetValue(other);
            var checkpointArgument = p.GetValue(checkpoint);
            var request = source.ForMeasurement(p, checkpointArgument);
            var thisArgument = request is null ? "--checkpoint" : request.FileOption;
            if (kind == "interp" && otherPath is null) throw new UsageException("--slice interp needs --other B, the checkpoint (or model file) at the other end of the line");
            if (kind != "interp" && otherPath is not null) throw new UsageException($"--other applies to --slice interp; --slice {kind} explores random directions around {thisArgument}");
            var count = p.GetValue(points) ?? (kind == "2d" ? 21 : 41);
            if (count < 2) throw new UsageException($"--points must be at least 2, got {count}");
            var most = kind == "2d" ? MaxPoints2D : MaxPointsLine;
            if (count > most)
                throw new UsageException(kind == "2d"
                    ? $"--points {count} for --slice 2d is a {count:N0} x {count:N0} grid, {(long)count * count:N0} passes over the samples; a 2d slice takes at most {MaxPoints2D} points per axis"
                    : $"--points {count} for --slice {kind} is above the limit of {MaxPointsLine:N0} points along a line");
            var (from, to) = ParseRange(p.GetValue(range), kind == "interp" ? (-0.5, 1.5) : (-1.0, 1.0));
            var options = new LandscapeOptions
            {
                Parameters = ParseParams(p.GetValue(parameters)),
                BatchNorm = ParseBatchNorm(p.GetValue(bn)!),
                Dropout = ParseDropout(p.GetValue(dropout)!),
                ComputeType = ParseDtype(p.GetValue(dtype)!),
                Collectives = ranks,
            };
            var overrides = new RunOverrides(p.GetValue(threads), p.GetValue(source.Device), p.GetValue(source.DataDir));
            var log = !speaks ? TextWriter.Null : p.GetValue(json) ? ctx.Error : ctx.Out;
            var warnings = speaks ? ctx.Error : TextWriter.Null;
            if (ranks is { Size: > 1 } && speaks) log.WriteLine(OverRanks.Sharing("landscape", ranks, "every point's loss and error"));

            // Check B's path before A's data is loaded: a typo should not cost a data load.
            string? otherFile = null;
            if (otherPath is not null)
            {
                // A run folder's damaged newest checkpoint falls back to its previous generation, as for --checkpoint (a
                // run read as a model source is read as named, like the --model-file it goes with).
                if (request is null) otherFile = MeasuredRun.SelectCheckpoint(otherPath, "--other", warnings).Path;
                else if (request.Format == ModelFormat.Run) otherFile = MeasuredRun.ResolveCheckpoint(otherPath, "--other");
                else if (File.Exists(otherPath)) otherFile = Path.GetFullPath(otherPath);
                else throw new UsageException($"--other {otherPath}: no such file (expected another model file of the same network as {thisArgument})");
            }
            using var run = request is null
                ? MeasuredRun.Open(checkpointArgument!, "--checkpoint", p.GetValue(samples), DefaultSamples, p.GetValue(batch) ?? 500, overrides, warnings: warnings)
                : MeasuredRun.OpenModel(request, p.GetValue(samples), DefaultSamples, p.GetValue(batch) ?? 500, overrides.Threads, warnings);
            // A float64 measurement computes on a copy of the network, built by the model source's or the zoo's factory.
            options = options with { ModelFactory = run.ModelFactory };
            var outDir = Path.GetFullPath(p.GetValue(output) ?? run.DefaultOut($"landscape-{kind}"));
            var seedValue = p.GetValue(seed);
            var evaluations = kind == "2d" ? (long)count * count : count;
            log.WriteLine($"landscape {kind}: {run.Name}, {run.Samples:N0} samples, {count} points per axis on [{F(from)}, {F(to)}]: " +
                          $"{(kind == "2d" ? $"{count:N0} x {count:N0} = " : "")}{evaluations:N0} evaluations of the loss over the samples; the time left is said after the first");
            var progress = new SliceProgressLog(log, kind);
            // Every slice stops between points on Ctrl-C or SIGTERM; nothing partial is written (exit 130).
            using var stop = new HessianCommand.StopOnSignal(log, $"landscape {kind}: stopping after the current point; nothing will be written");

            var watch = Stopwatch.StartNew();
            IReadOnlyList<SlicePoint> result;
            if (kind == "interp")
            {
                using var start = Slices.FlatParameters(run.Model, options.Parameters);
                // B's weights; A keeps its own weights and buffers: BatchNorm running statistics along the line are A's.
                using var end = run.OtherParameters(otherPath!, request is null ? checkpointArgument! : request.File, options.Parameters);
                result = Slices.Interpolation(run.Model, run.EvaluationSet, start, end, count, from, to, options, progress, stop.Token);
            }
            else
            {
                var sliceOptions = new SliceOptions { Points = count, From = from, To = to, Seed = seedValue, Landscape = options, Progress = progress, Cancellation = stop.Token };
                result = kind == "1d"
                    ? Slices.RandomDirection1D(run.Model, run.EvaluationSet, sliceOptions)
                    : Slices.RandomDirections2D(run.Model, run.EvaluationSet, sliceOptions);
            }
            var seconds = watch.Elapsed.TotalSeconds;
            RequireFiniteSlice(kind, result);
            // Every rank holds the same points; the others end here, having written nothing.
            if (!speaks) return ExitCodes.Ok;

            Directory.CreateDirectory(outDir);
            var files = new List<string>();
            var axisName = kind == "interp" ? "t" : "alpha";
            var csv = Path.Combine(outDir, $"{kind}.csv");
            var columns = new List<CsvColumn> { new(axisName, result.Select(r => r.Alpha).ToArray()) };
            if (kind == "2d") columns.Add(new CsvColumn("beta", result.Select(r => r.Beta).ToArray()));
            columns.Add(new CsvColumn("loss", result.Select(r => r.Loss).ToArray()));
            columns.Add(new CsvColumn("error_percent", result.Select(r => r.ErrorPercent).ToArray()));
            SeriesCsv.WriteColumns(csv, columns);
            files.Add($"{kind}.csv");
            // Far from a minimum the loss can overflow; the CSV keeps every point, the plot only what can be drawn.
            var finite = result.Where(r => double.IsFinite(r.Loss) && double.IsFinite(r.ErrorPercent)).ToList();
            if (kind == "2d" ? finite.Count == result.Count : finite.Count >= 2)
            {
                if (Plot(kind, finite, run, otherPath, count).TrySavePngAndSvg(Path.Combine(outDir, kind), out var skipped))
                {
                    files.Add($"{kind}.png");
                    files.Add($"{kind}.svg");
                }
                else
                {
                    ctx.Error.WriteLine($"widevalley: warning: {kind}.png and {kind}.svg not drawn (the measurement is in {kind}.csv): {skipped}");
                }
            }
            else
            {
                ctx.Error.WriteLine($"widevalley: {result.Count - finite.Count} of {result.Count} points have a non-finite loss; no plot was drawn (see {kind}.csv)");
            }

            var best = (finite.Count > 0 ? finite : result).MinBy(r => r.Loss)!;
            var summary = new JsonObject
            {
                ["slice"] = kind,
                ["points"] = count,
                ["samples"] = run.Samples,
                ["range"] = Numbers([from, to]),
                [axisName] = Numbers(result.Select(r => r.Alpha)),
                ["beta"] = kind == "2d" ? Numbers(result.Select(r => r.Beta)) : null,
                ["loss"] = Numbers(result.Select(r => r.Loss)),
                ["error_percent"] = Numbers(result.Select(r => r.ErrorPercent)),
                ["min_loss"] = Number(best.Loss),
                ["min_at"] = kind == "2d" ? Numbers([best.Alpha, best.Beta]) : Number(best.Alpha),
                ["seconds"] = Math.Round(seconds, 3),
                ["seed"] = kind == "interp" ? null : seedValue,
                ["dtype"] = options.ComputeType is null ? "float32" : "float64",
                ["bn"] = options.BatchNorm == BatchNormMode.RunningStatistics ? "running" : "batch",
                ["params"] = p.GetValue(parameters) ?? "all",
            };
            if (ranks is { Size: > 1 }) summary["ranks"] = ranks.Size;
            run.Describe(summary);
            summary["other"] = otherFile;
            summary["out"] = outDir;
            files.Add("landscape.json");
            summary["files"] = new JsonArray(files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
            var text = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
            AtomicFile.WriteAllText(Path.Combine(outDir, "landscape.json"), text + "\n");

            if (p.GetValue(json))
            {
                ctx.Out.WriteLine(text);
            }
            else
            {
                if (kind != "2d")
                {
                    ctx.Out.WriteLine($"{axisName,8} {"loss",12} {"error %",9}");
                    foreach (var r in result)
                        ctx.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,8:0.####} {1,12:0.000000} {2,9:0.00}", r.Alpha, r.Loss, r.ErrorPercent));
                }
                ctx.Out.WriteLine(kind == "2d"
                    ? $"lowest loss {F(best.Loss)} at (alpha, beta) = ({F(best.Alpha)}, {F(best.Beta)}); highest {F(finite.Count > 0 ? finite.Max(r => r.Loss) : double.NaN)}"
                    : $"lowest loss {F(best.Loss)} at {axisName} = {F(best.Alpha)}");
                ctx.Out.WriteLine($"{result.Count:N0} evaluations in {F(seconds, "0.0")} s; wrote {outDir}: {string.Join(", ", files)}");
            }
            return ExitCodes.Ok;
        }
    }

    /// <summary>
    /// Refuses a slice with nothing to show: the loss non-finite at every point, or at the measured weights themselves
    /// (alpha = beta = 0 of a random slice, t = 0 or 1 of an interpolation, when on the grid). Far from the weights the
    /// loss may overflow; those points stay in the CSV. Thrown before anything is written.
    /// </summary>
    /// <exception cref="NonFiniteValuesException">Names the point.</exception>
    internal static void RequireFiniteSlice(string kind, IReadOnlyList<SlicePoint> result)
    {
        if (result.Count > 0 && result.All(r => !double.IsFinite(r.Loss)))
            throw new NonFiniteValuesException("loss",
                $"landscape {kind}: the loss is {F(result[0].Loss)} at every one of the {result.Count:N0} points although the weights are finite " +
                "(the network's output overflows or is undefined here); nothing was written");
        double[] anchors = kind == "interp" ? [0.0, 1.0] : [0.0];
        foreach (var r in result)
            if (anchors.Contains(r.Alpha) && (kind != "2d" || r.Beta == 0) && !double.IsFinite(r.Loss))
                throw new NonFiniteValuesException("loss",
                    $"landscape {kind}: the loss at the {(kind == "interp" ? (r.Alpha == 0 ? "start point A" : "end point B") : "measured weights")} is {F(r.Loss)} " +
                    "although the weights are finite (the network's output overflows or is undefined there); nothing was written");
    }

    /// <summary>
    /// Log lines for a slice's progress: after the first point, how long one took and the estimate for all; then every
    /// tenth of the points, with the time left.
    /// </summary>
    private sealed class SliceProgressLog(TextWriter log, string kind) : IProgress<CurvatureProgress>
    {
        private long lastTenth;

        public void Report(CurvatureProgress value)
        {
            if (value.Total <= 1) return;
            var perPoint = value.Elapsed.TotalSeconds / Math.Max(1, value.Done);
            var left = TimeSpan.FromSeconds(Math.Min(perPoint * (value.Total - value.Done), TimeSpan.MaxValue.TotalSeconds / 2));
            if (value.Done == 1)
            {
                log.WriteLine($"landscape {kind}: the first evaluation took {F(perPoint, "0.###")} s; the {value.Total:N0} take about {Say(TimeSpan.FromSeconds(perPoint * value.Total))}");
                return;
            }
            var tenth = value.Done * 10 / value.Total;
            if (tenth <= lastTenth || value.Done == value.Total) return;
            lastTenth = tenth;
            log.WriteLine($"landscape {kind}: {value.Done:N0}/{value.Total:N0} points ({tenth * 10}%), about {Say(left)} left");
        }

        private static string Say(TimeSpan t) => t.TotalSeconds < 60 ? $"{F(t.TotalSeconds, "0.#")} s"
            : t.TotalHours < 1 ? $"{(int)t.TotalMinutes} min {t.Seconds:00} s"
            : t.TotalDays < 2 ? $"{Math.Floor(t.TotalHours):0} h {t.Minutes:00} min"
            : $"{F(t.TotalDays, "N0")} days";
    }

    /// <summary>"FROM:TO" into two finite numbers with FROM &lt; TO.</summary>
    public static (double From, double To) ParseRange(string? text, (double, double) fallback)
    {
        if (text is null) return fallback;
        var parts = text.Split(':');
        if (parts.Length == 2
            && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var from)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var to)
            && double.IsFinite(from) && double.IsFinite(to))
        {
            if (!(to > from)) throw new UsageException($"--range {text}: FROM must be below TO");
            return (from, to);
        }
        throw new UsageException($"--range must be FROM:TO with two numbers, e.g. --range=-0.5:1.5; got '{text}'");
    }

    private static Figure Plot(string kind, IReadOnlyList<SlicePoint> result, MeasuredRun run, string? other, int count)
    {
        // One curve per panel: the sample count goes in the title instead of a legend that would hide the curve.
        const string label = "";
        var samples = $"{run.Samples:N0} {(run.Meta is null ? "" : "training ")}samples";
        if (kind == "interp")
        {
            var t = result.Select(r => r.Alpha).ToArray();
            return LinePlot.Interpolation(
                [new LineSeries(label, t, result.Select(r => r.Loss).ToArray()) { ShowMarkers = count <= 25 }],
                [new LineSeries(label, t, result.Select(r => r.ErrorPercent).ToArray()) { ShowMarkers = count <= 25 }],
                new LinePlotOptions { Title = $"{run.Name}: loss between two {(run.Meta is null ? "networks" : "checkpoints")} ({samples})" },
                startName: ShortName(run.CheckpointPath), endName: ShortName(other!));
        }
        if (kind == "1d")
        {
            var alpha = result.Select(r => r.Alpha).ToArray();
            return LinePlot.Stacked(
            [
                new LinePanel("loss", [new LineSeries(label, alpha, result.Select(r => r.Loss).ToArray())]),
                new LinePanel("error (%)", [new LineSeries(label, alpha, result.Select(r => r.ErrorPercent).ToArray())]),
            ], "α (filter-normalised random direction)", new LinePlotOptions
            {
                Title = $"{run.Name}: 1-D slice around the {(run.Meta is null ? "weights" : "checkpoint")} ({samples})",
                Markers = alpha[0] <= 0 && alpha[^1] >= 0 ? [new VerticalMarker(0, "checkpoint")] : [],
            });
        }
        var axis = result.Take(count).Select(r => r.Alpha).ToArray();
        var betas = result.Where((_, i) => i % count == 0).Select(r => r.Beta).ToArray();
        var values = new double[count, count];
        // The sweep runs over alpha fastest, beta slowest.
        for (var i = 0; i < result.Count; i++) values[i % count, i / count] = result[i].Loss;
        var inside = axis[0] <= 0 && axis[^1] >= 0;
        return SurfacePlot.Create(new LossSurface(axis, betas, values), new SurfacePlotOptions
        {
            Title = $"{run.Name}: 2-D slice around the {(run.Meta is null ? "weights" : "checkpoint")} ({samples})",
            LogScale = result.All(r => r.Loss > 0),
            Markers = inside ? [new SurfaceMarker(0, 0, "checkpoint")] : [],
        });
    }

    /// <summary>The run folder's name (or the file's, for a checkpoint named directly), for plot labels.</summary>
    private static string ShortName(string path)
    {
        var full = Path.GetFullPath(path);
        var name = File.Exists(full) && Path.GetFileName(full) == Training.Trainer.CheckpointFileName
            ? Path.GetFileName(Path.GetDirectoryName(full))
            : Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar));
        return string.IsNullOrEmpty(name) ? path : name;
    }
}
