using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Connectivity;
using WideValley.Reports;
using static TorchSharp.torch;

namespace WideValley.Experiments.Connectivity;

/// <summary>How a path between two minima is found.</summary>
public enum ConnectionMethod
{
    /// <summary>Dynamic String Sampling (Freeman &amp; Bruna): a chain of trained beads.</summary>
    String,
    /// <summary>A quadratic (or higher) Bézier curve with trained middle points (Garipov et al.).</summary>
    Bezier,
    /// <summary>A polygonal chain with trained middle points (Garipov et al.).</summary>
    PolyChain,
}

/// <summary>One of the two models a path connects, as the output names it.</summary>
/// <param name="Name">How messages call it (e.g. the path given on the command line).</param>
/// <param name="Description">What it is (model, checkpoint, epoch), for connect.json.</param>
public sealed record ConnectionEndpoint(string Name, string Description);

/// <summary>What <see cref="ConnectionService.Run"/> is asked to do.</summary>
public sealed record ConnectionRequest
{
    /// <summary>String sampling or a trained curve (default the string).</summary>
    public ConnectionMethod Method { get; init; } = ConnectionMethod.String;

    /// <summary>
    /// The level L0 of the level metric; null: the larger of the two endpoints' values (the lowest level whose set can
    /// hold both). Checked against both endpoints before any training.
    /// </summary>
    public double? Level { get; init; }

    /// <summary>
    /// The string's settings (metric, grid, insertion rule, α, m, depth). Their level, progress, cancellation and
    /// checkpoint path are set by the service. For curves, the metric and m decide "connected" (max along the curve
    /// below m·L0).
    /// </summary>
    public StringSamplingOptions String { get; init; } = new() { Level = 1 };

    /// <summary>The curves' settings (bends, steps, learning rate, momentum, seed, evaluation points). Kind, progress, cancellation and checkpoint path are set by the service.</summary>
    public CurveTrainingOptions Curve { get; init; } = new();

    /// <summary>Endpoint A as the outputs name it.</summary>
    public ConnectionEndpoint EndpointA { get; init; } = new("A", "endpoint A");

    /// <summary>Endpoint B as the outputs name it.</summary>
    public ConnectionEndpoint EndpointB { get; init; } = new("B", "endpoint B");

    /// <summary>Further settings recorded in connect.json (how the problem measures and trains: split, bead optimizer, ...).</summary>
    public JsonObject? ProblemSettings { get; init; }
}

/// <summary>A report from a running connection search.</summary>
/// <param name="Fraction">Progress in [0, 1]: depths done of the string's limit, or curve steps done.</param>
/// <param name="Message">What just happened, one line.</param>
public sealed record ConnectionProgress(double Fraction, string Message);

/// <summary>One measured point of a path.</summary>
/// <param name="Position">Cumulative normalised arc length along the path, in [0, 1] (all parameters).</param>
/// <param name="Segment">The string's segment the point lies on (0 for curves and the straight line).</param>
/// <param name="T">The point's t on its segment (string), curve or straight line.</param>
/// <param name="Measure">What the problem measured there.</param>
public sealed record PathPoint(double Position, int Segment, double T, PointMeasure Measure);

/// <summary>The outcome of <see cref="ConnectionService.Run"/>.</summary>
public sealed record ConnectionResult
{
    /// <summary>How the path was found.</summary>
    public required ConnectionMethod Method { get; init; }
    /// <summary>The level metric.</summary>
    public required LevelMetric Metric { get; init; }
    /// <summary>The level L0 used (given, or the worse endpoint's value).</summary>
    public required double Level { get; init; }
    /// <summary>m·L0: the path is connected when its maximum stays below this.</summary>
    public required double AcceptBound { get; init; }
    /// <summary>Whether the path's maximum of the level metric stays below m·L0 (for the string: every segment passed).</summary>
    public required bool Connected { get; init; }
    /// <summary>The path's points in order, endpoints included.</summary>
    public required IReadOnlyList<PathPoint> Path { get; init; }
    /// <summary>The straight segment A→B at as many evenly spaced t as <see cref="Path"/> has points.</summary>
    public required IReadOnlyList<PathPoint> Straight { get; init; }
    /// <summary>
    /// The path's normalised length: weights-only (the authors') and all-parameters. For curves the all-parameters
    /// version is <see cref="CurveEvaluation.NormalizedLength"/>, the weights-only one is summed over the same kind of
    /// grid (<see cref="CurveTrainingOptions.LengthSteps"/> steps); NaN when the endpoints' weights coincide.
    /// </summary>
    public required NormalizedLengths Lengths { get; init; }
    /// <summary>Beads of the string, endpoints included; for curves the control points (bends + 2).</summary>
    public required int Beads { get; init; }
    /// <summary>Depths the string ran (0 for curves).</summary>
    public required int Depth { get; init; }
    /// <summary>The largest level-metric value along the path.</summary>
    public required double MaxAlongPath { get; init; }
    /// <summary>The largest level-metric value along the straight line.</summary>
    public required double MaxAlongStraight { get; init; }
    /// <summary>The path's barrier per metric: max along it minus the endpoints' mean.</summary>
    public required CurveBarrier Barrier { get; init; }
    /// <summary>The straight line's barrier per metric.</summary>
    public required CurveBarrier StraightBarrier { get; init; }
    /// <summary>The endpoints' measures (A, B).</summary>
    public required (PointMeasure A, PointMeasure B) Endpoints { get; init; }
    /// <summary>Files written into the output folder (names).</summary>
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>Why the plot was not drawn (no font), or null.</summary>
    public string? PlotSkipped { get; init; }
}

/// <summary>
/// Connects two points of a learning problem by a path inside a level set, or by a trained curve, and writes the
/// outcome into a folder: <c>connect.json</c> (summary, settings, both models' identities), <c>connect.csv</c> (one
/// row per point of the path and of the straight line), <c>connect.png</c>/<c>.svg</c> (the level metric along the path
/// against the straight line's) and <c>connect.checkpoint</c> (the string or curve in progress: a cancelled run saves
/// it, and the same call continues it; a finished one rebuilds the outputs without training). Each file is written
/// atomically and only after the search succeeded, so a failure never damages what an earlier run wrote. Shared by
/// the CLI's <c>connect</c> and the level-sets experiment.
/// </summary>
public static class ConnectionService
{
    /// <summary>The checkpoint file's name inside the output folder.</summary>
    public const string CheckpointFileName = "connect.checkpoint";
    /// <summary>The summary's file name.</summary>
    public const string JsonFileName = "connect.json";
    /// <summary>The table's file name.</summary>
    public const string CsvFileName = "connect.csv";
    /// <summary>The plots' base name (.png and .svg).</summary>
    public const string PlotBaseName = "connect";

    /// <summary>
    /// Measures both endpoints, refuses a level that either exceeds by more than m, runs the search (resuming from
    /// the folder's checkpoint), measures the straight line on as many points, and writes the outputs.
    /// </summary>
    /// <exception cref="ArgumentException">A bad setting, or an endpoint above m·L0 (the message names it, its value and the level).</exception>
    /// <exception cref="Training.CheckpointDamagedException">The folder's checkpoint is damaged (it and the other files are left untouched).</exception>
    /// <exception cref="ConnectivityCheckpointMismatchException">The folder's checkpoint was made with other settings or endpoints.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the state is saved in the checkpoint.</exception>
    public static ConnectionResult Run(IConnectivityProblem problem, Tensor endpointA, Tensor endpointB, ConnectionRequest request, string folder,
        IProgress<ConnectionProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(endpointA);
        ArgumentNullException.ThrowIfNull(endpointB);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        if (!Enum.IsDefined(request.Method)) throw new ArgumentException($"Method: unknown connection method {request.Method}", nameof(request));
        if (request.Level is double given && !(double.IsFinite(given) && given > 0))
            throw new ArgumentException($"the level L0 must be positive and finite, got {given}", nameof(request));
        var metric = request.String.Metric;
        if (problem.Dimension != endpointA.numel() || problem.Dimension != endpointB.numel())
            throw new ArgumentException($"the endpoints have {endpointA.numel()} and {endpointB.numel()} entries, the problem's points {problem.Dimension}", nameof(endpointB));

        var measureA = problem.Measure(endpointA);
        var measureB = problem.Measure(endpointB);
        var valueA = measureA.Value(metric);
        var valueB = measureB.Value(metric);
        var level = request.Level ?? Math.Max(valueA, valueB);
        if (!(double.IsFinite(level) && level > 0))
            throw new ArgumentException($"no level given and the endpoints' larger {Describe(metric)} is {level}: give a positive level", nameof(request));
        var stringOptions = request.String with
        {
            Level = level,
            Cancellation = cancellation,
            CheckpointPath = Path.Combine(folder, CheckpointFileName),
        };
        stringOptions.Validate();
        var curveOptions = request.Curve with
        {
            Kind = request.Method == ConnectionMethod.PolyChain ? CurveKind.PolyChain : CurveKind.Bezier,
            Cancellation = cancellation,
            CheckpointPath = Path.Combine(folder, CheckpointFileName),
        };
        curveOptions.Validate();
        foreach (var (value, endpoint) in new[] { (valueA, request.EndpointA), (valueB, request.EndpointB) })
            if (!(value <= stringOptions.AcceptBound))
                throw new ArgumentException(
                    $"endpoint {endpoint.Name} has {Describe(metric)} {F(value)}, above m·L0 = {F(stringOptions.AcceptFactor)} × {F(level)} = {F(stringOptions.AcceptBound)}: " +
                    "no path inside the level set can contain it (choose a level of at least " + F(value / stringOptions.AcceptFactor) + ", or train it further)");

        Directory.CreateDirectory(folder);
        var result = request.Method == ConnectionMethod.String
            ? RunString(problem, endpointA, endpointB, stringOptions, progress, (measureA, measureB))
            : RunCurve(problem, endpointA, endpointB, curveOptions, stringOptions, progress, (measureA, measureB));
        var straight = StraightLine(problem, endpointA, endpointB, result.Path.Count, measureA, measureB, cancellation);
        result = result with
        {
            Straight = straight,
            MaxAlongStraight = straight.Max(p => p.Measure.Value(metric)),
            StraightBarrier = BarrierOf(straight.Select(p => p.Measure).ToList()),
        };
        return Write(result, request, stringOptions, curveOptions, folder, problem);
    }

    static ConnectionResult RunString(IConnectivityProblem problem, Tensor a, Tensor b, StringSamplingOptions options,
        IProgress<ConnectionProgress>? progress, (PointMeasure, PointMeasure) endpoints)
    {
        var maxDepth = options.MaxDepth;
        options = options with
        {
            Progress = progress is null ? null : new Relay<StringSamplingProgress>(p => progress.Report(new(Math.Min(1, (double)p.Depth / maxDepth), p.Message))),
        };
        using var found = DynamicStringSampling.Run(problem, a, b, options);
        var segmentLengths = Enumerable.Range(0, found.Chain.Count - 1).Select(i => ParameterPath.Distance(found.Chain[i], found.Chain[i + 1], null)).ToArray();
        var total = segmentLengths.Sum();
        var points = new List<PathPoint>();
        double before = 0;
        for (var i = 0; i < found.Segments.Count; i++)
        {
            var grid = found.Segments[i].Grid;
            for (var k = 0; k < grid.Count; k++)
            {
                var t = (double)k / grid.Count;
                points.Add(new PathPoint((before + t * segmentLengths[i]) / total, i, t, grid[k]));
            }
            before += segmentLengths[i];
        }
        points.Add(new PathPoint(1, found.Segments.Count - 1, 1, found.Beads[^1].Measure));
        return new ConnectionResult
        {
            Method = ConnectionMethod.String, Metric = options.Metric, Level = options.Level, AcceptBound = options.AcceptBound,
            Connected = found.Connected, Path = points, Straight = [], Lengths = found.Lengths, Beads = found.BeadCount, Depth = found.Depth,
            MaxAlongPath = found.MaxAlongPath, MaxAlongStraight = double.NaN, Barrier = BarrierOf(points.Select(p => p.Measure).ToList()),
            StraightBarrier = default, Endpoints = endpoints, Files = [],
        };
    }

    static ConnectionResult RunCurve(IConnectivityProblem problem, Tensor a, Tensor b, CurveTrainingOptions options, StringSamplingOptions level,
        IProgress<ConnectionProgress>? progress, (PointMeasure, PointMeasure) endpoints)
    {
        var steps = Math.Max(1, options.Steps);
        options = options with
        {
            Progress = progress is null ? null : new Relay<CurveTrainingProgress>(p => progress.Report(new(Math.Min(1, (double)p.Step / steps), p.Message))),
        };
        using var trained = CurveTraining.Train(problem, a, b, options);
        var evaluation = trained.Evaluation;
        // Cumulative arc length at each evaluation point, each interval summed over sub-steps of the length grid.
        var intervals = evaluation.T.Count - 1;
        var subSteps = Math.Max(1, (int)Math.Ceiling((double)options.LengthSteps / intervals));
        var cumulative = new double[evaluation.T.Count];
        double weightsLength = 0;
        var previous = trained.Curve.Point(0);
        try
        {
            for (var k = 0; k < intervals; k++)
            {
                double length = 0;
                for (var s = 1; s <= subSteps; s++)
                {
                    var t = evaluation.T[k] + (evaluation.T[k + 1] - evaluation.T[k]) * s / subSteps;
                    var next = trained.Curve.Point(t);
                    length += ParameterPath.Distance(previous, next, null);
                    if (problem.WeightMask is { } mask) weightsLength += ParameterPath.Distance(previous, next, mask);
                    previous.Dispose();
                    previous = next;
                }
                cumulative[k + 1] = cumulative[k] + length;
            }
        }
        finally
        {
            previous.Dispose();
        }
        var total = cumulative[^1];
        // The weights-only version (the authors' SpringNorm) on the same grid; the same as all parameters without a mask.
        var directWeights = problem.WeightMask is { } weightMask ? ParameterPath.Distance(trained.Curve.EndpointA, trained.Curve.EndpointB, weightMask) : 0;
        var weightsOnly = problem.WeightMask is null
            ? total / ParameterPath.Distance(trained.Curve.EndpointA, trained.Curve.EndpointB, null)
            : directWeights > 0 ? weightsLength / directWeights : double.NaN;
        var points = Enumerable.Range(0, evaluation.T.Count)
            .Select(k => new PathPoint(total > 0 ? cumulative[k] / total : evaluation.T[k], 0, evaluation.T[k], evaluation.Measures[k])).ToList();
        var max = evaluation.Max(level.Metric);
        return new ConnectionResult
        {
            Method = options.Kind == CurveKind.PolyChain ? ConnectionMethod.PolyChain : ConnectionMethod.Bezier,
            Metric = level.Metric, Level = level.Level, AcceptBound = level.AcceptBound, Connected = max < level.AcceptBound,
            Path = points, Straight = [], Lengths = new NormalizedLengths(weightsOnly, evaluation.NormalizedLength), Beads = trained.Curve.Bends + 2,
            Depth = 0, MaxAlongPath = max, MaxAlongStraight = double.NaN, Barrier = evaluation.Barrier, StraightBarrier = default,
            Endpoints = endpoints, Files = [],
        };
    }

    /// <summary>The straight segment measured at t = k/(n−1), k = 0..n−1 (the endpoints' measures reused).</summary>
    static List<PathPoint> StraightLine(IConnectivityProblem problem, Tensor a, Tensor b, int count, PointMeasure measureA, PointMeasure measureB,
        CancellationToken cancellation)
    {
        using var flatA = a.detach().reshape(-1).to(problem.Dtype, problem.Device);
        using var flatB = b.detach().reshape(-1).to(problem.Dtype, problem.Device);
        using var point = empty_like(flatA);
        var points = new List<PathPoint>(count);
        for (var k = 0; k < count; k++)
        {
            cancellation.ThrowIfCancellationRequested();
            var t = (double)k / (count - 1);
            var measure = k == 0 ? measureA : k == count - 1 ? measureB : problem.Measure(ParameterPath.InterpolateInto(point, flatA, flatB, t));
            points.Add(new PathPoint(t, 0, t, measure));
        }
        return points;
    }

    static CurveBarrier BarrierOf(IReadOnlyList<PointMeasure> m)
    {
        static double Of(IReadOnlyList<PointMeasure> m, Func<PointMeasure, double> value) => m.Max(value) - 0.5 * (value(m[0]) + value(m[^1]));
        return new CurveBarrier(Of(m, x => x.Loss),
            m.All(x => x.ErrorPercent is not null) ? Of(m, x => x.ErrorPercent!.Value) : null,
            m.All(x => x.Perplexity is not null) ? Of(m, x => x.Perplexity!.Value) : null);
    }

    static ConnectionResult Write(ConnectionResult result, ConnectionRequest request, StringSamplingOptions stringOptions, CurveTrainingOptions curveOptions,
        string folder, IConnectivityProblem problem)
    {
        var files = new List<string>();
        AtomicFile.WriteAllText(Path.Combine(folder, CsvFileName), Csv(result));
        files.Add(CsvFileName);
        string? skipped = null;
        if (Plot(result, request).TrySavePngAndSvg(Path.Combine(folder, PlotBaseName), out var reason))
            files.AddRange([PlotBaseName + ".png", PlotBaseName + ".svg"]);
        else skipped = reason;
        files.Add(JsonFileName);
        files.Add(CheckpointFileName);
        result = result with { Files = files, PlotSkipped = skipped };
        AtomicFile.WriteAllText(Path.Combine(folder, JsonFileName), Summary(result, request, stringOptions, curveOptions, problem).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return result;
    }

    /// <summary>connect.csv: path,position,segment,t,loss,error_percent,perplexity; the path's rows, then the straight line's.</summary>
    public static string Csv(ConnectionResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var text = new StringBuilder("path,position,segment,t,loss,error_percent,perplexity\n");
        void Rows(string name, IEnumerable<PathPoint> points)
        {
            foreach (var p in points)
                text.Append(name).Append(',').Append(R(p.Position)).Append(',').Append(p.Segment.ToString(CultureInfo.InvariantCulture)).Append(',')
                    .Append(R(p.T)).Append(',').Append(R(p.Measure.Loss)).Append(',')
                    .Append(p.Measure.ErrorPercent is double e ? R(e) : "").Append(',')
                    .Append(p.Measure.Perplexity is double q ? R(q) : "").Append('\n');
        }
        Rows(MethodName(result.Method), result.Path);
        Rows("straight", result.Straight);
        return text.ToString();
    }

    static Figure Plot(ConnectionResult result, ConnectionRequest request)
    {
        var name = MethodName(result.Method);
        List<LineSeries> Series(Func<PointMeasure, double> value) =>
        [
            new LineSeries(name, result.Path.Select(p => p.Position).ToArray(), result.Path.Select(p => value(p.Measure)).ToArray()),
            new LineSeries("straight line", result.Straight.Select(p => p.Position).ToArray(), result.Straight.Select(p => value(p.Measure)).ToArray()) { Dashed = true },
        ];
        var panels = new List<LinePanel> { new("loss", Series(m => m.Loss)) };
        if (result.Path.All(p => p.Measure.ErrorPercent is not null) && result.Straight.All(p => p.Measure.ErrorPercent is not null))
            panels.Add(new LinePanel("error (%)", Series(m => m.ErrorPercent!.Value)));
        if (result.Path.All(p => p.Measure.Perplexity is not null) && result.Straight.All(p => p.Measure.Perplexity is not null))
            panels.Add(new LinePanel("perplexity", Series(m => m.Perplexity!.Value)));
        var verdict = result.Connected ? "connected" : "not connected";
        return LinePlot.Stacked(panels, "position along the path (normalised arc length)", new LinePlotOptions
        {
            Title = $"{request.EndpointA.Name} to {request.EndpointB.Name}: {name}, {verdict} at {Describe(result.Metric)} L0 = {F(result.Level)}",
            Markers = [new VerticalMarker(0, request.EndpointA.Name), new VerticalMarker(1, request.EndpointB.Name)],
        });
    }

    /// <summary>The summary object written to connect.json (and printed by <c>connect --json</c>).</summary>
    public static JsonObject Summary(ConnectionResult result, ConnectionRequest request, StringSamplingOptions stringOptions,
        CurveTrainingOptions curveOptions, IConnectivityProblem problem)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(stringOptions);
        ArgumentNullException.ThrowIfNull(curveOptions);
        ArgumentNullException.ThrowIfNull(problem);
        var settings = new JsonObject
        {
            ["method"] = MethodName(result.Method),
            ["metric"] = MetricName(result.Metric),
            ["level"] = result.Level,
            ["level_given"] = request.Level is not null,
            ["accept_factor"] = stringOptions.AcceptFactor,
            ["parameters"] = problem.Dimension,
        };
        if (result.Method == ConnectionMethod.String)
        {
            settings["grid"] = stringOptions.GridPoints;
            settings["insert"] = stringOptions.InsertAt == InsertionRule.Argmax ? "argmax" : "midpoint";
            settings["alpha"] = stringOptions.BeadTargetFactor;
            settings["max_depth"] = stringOptions.MaxDepth;
        }
        else
        {
            settings["bends"] = curveOptions.Bends;
            settings["steps"] = curveOptions.Steps;
            settings["lr"] = curveOptions.LearningRate;
            settings["momentum"] = curveOptions.Momentum;
            settings["seed"] = curveOptions.Seed;
            settings["evaluation_points"] = curveOptions.EvaluationPoints;
        }
        if (request.ProblemSettings is { } extra)
            foreach (var (key, value) in extra) settings[key] = value?.DeepClone();
        JsonObject Endpoint(ConnectionEndpoint e, PointMeasure m) => new()
        {
            ["name"] = e.Name, ["description"] = e.Description, ["loss"] = N(m.Loss), ["error_percent"] = N(m.ErrorPercent), ["perplexity"] = N(m.Perplexity),
        };
        JsonObject Barrier(CurveBarrier b) => new() { ["loss"] = N(b.Loss), ["error_percent"] = N(b.ErrorPercent), ["perplexity"] = N(b.Perplexity) };
        return new JsonObject
        {
            ["method"] = MethodName(result.Method),
            ["connected"] = result.Connected,
            ["metric"] = MetricName(result.Metric),
            ["level"] = result.Level,
            ["accept_bound"] = result.AcceptBound,
            ["beads"] = result.Beads,
            ["depth"] = result.Depth,
            ["normalized_length"] = new JsonObject
            {
                ["weights_only"] = N(result.Lengths.WeightsOnly),
                ["all_parameters"] = N(result.Lengths.AllParameters),
            },
            ["max_along_path"] = N(result.MaxAlongPath),
            ["max_along_straight_line"] = N(result.MaxAlongStraight),
            ["barrier"] = Barrier(result.Barrier),
            ["straight_line_barrier"] = Barrier(result.StraightBarrier),
            ["path_points"] = result.Path.Count,
            ["endpoints"] = new JsonObject { ["A"] = Endpoint(request.EndpointA, result.Endpoints.A), ["B"] = Endpoint(request.EndpointB, result.Endpoints.B) },
            ["settings"] = settings,
            ["files"] = new JsonArray(result.Files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray()),
            ["plot_skipped"] = result.PlotSkipped,
        };
    }

    /// <summary>The method as the command line spells it: string, bezier, polychain.</summary>
    public static string MethodName(ConnectionMethod method) => method switch
    {
        ConnectionMethod.String => "string",
        ConnectionMethod.Bezier => "bezier",
        ConnectionMethod.PolyChain => "polychain",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "unknown connection method"),
    };

    /// <summary>The metric as the command line spells it: loss, error, perplexity.</summary>
    public static string MetricName(LevelMetric metric) => metric switch
    {
        LevelMetric.Loss => "loss",
        LevelMetric.ErrorPercent => "error",
        LevelMetric.Perplexity => "perplexity",
        _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown level metric"),
    };

    static string Describe(LevelMetric metric) => metric switch
    {
        LevelMetric.ErrorPercent => "error (%)",
        _ => MetricName(metric),
    };

    static JsonNode? N(double? value) => value is double v && double.IsFinite(v) ? JsonValue.Create(v) : null;
    static string R(double value) => value.ToString("R", CultureInfo.InvariantCulture);
    static string F(double value) => value.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool).</summary>
    sealed class Relay<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
