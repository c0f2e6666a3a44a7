using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>
/// Freeman &amp; Bruna's Dynamic String Sampling, breadth-first as in the authors' code (not the printed, depth-first
/// Algorithm 1): a chain of beads from θ_A to θ_B; every depth trains the new beads down to α·L0, measures the new
/// segments on a grid, and inserts a bead into each segment whose grid maximum is not below m·L0.
/// <code>
/// DSS(θA, θB, L0):
///   chain ← [θA, ½(θA + θB), θB];  converged ← [T, F, T];  check ← {0, 1}
///   for depth in 0 .. d_max − 1:
///       for each bead i with converged[i] = F: train bead i until metric ≤ α·L0 (or the budget ends); converged[i] ← T
///       for each segment b in check: (e_b, t_b) ← max / argmax over t = k/G, k = 0..G−1, of metric(interp(chain[b], chain[b+1], t))
///       if every segment's e_b &lt; m·L0: return CONNECTED(chain)
///       if depth = d_max − 1: return NOT CONNECTED(chain)              (ours: the authors also insert beads nobody trains)
///       check ← {};  shift ← 0
///       for each failing segment b (e_b ≥ m·L0), ascending:
///           insert interp(chain[b+shift], chain[b+shift+1], t*) at b+shift+1, converged = F
///           check ∪= {b+shift, b+shift+1};  shift += 1
/// </code>
/// Segments that passed are not measured again (their beads never change); a bead at t = 0 of a segment is the bead
/// itself, whose measure is reused. See docs/connectivity.md for which choices are the paper's, the authors' or ours.
/// </summary>
public static class DynamicStringSampling
{
    static readonly byte[] Magic = Encoding.ASCII.GetBytes("WVDSS\0\0\0");
    /// <summary>The checkpoint format this code writes and reads.</summary>
    public const int CheckpointFormatVersion = 1;
    const string KindName = "string-sampling";

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>
    /// Searches for a path from <paramref name="endpointA"/> to <paramref name="endpointB"/> inside the level set
    /// {θ : metric(θ) ≤ L0} of <paramref name="problem"/> (see the class summary). The endpoints are not modified.
    /// </summary>
    /// <exception cref="ArgumentException">A bad option (named), endpoints of the wrong length, coinciding endpoints, or an endpoint whose value exceeds m·L0.</exception>
    /// <exception cref="CheckpointDamagedException">The checkpoint file is damaged (it is left untouched).</exception>
    /// <exception cref="ConnectivityCheckpointMismatchException">The checkpoint was made with other options or endpoints.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (after saving the state when there is a checkpoint path).</exception>
    public static StringSamplingResult Run(IConnectivityProblem problem, Tensor endpointA, Tensor endpointB, StringSamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(endpointA);
        ArgumentNullException.ThrowIfNull(endpointB);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        RequireLength(problem, endpointA, "endpoint A", nameof(endpointA));
        RequireLength(problem, endpointB, "endpoint B", nameof(endpointB));
        if (!(ParameterPath.Distance(endpointA, endpointB, null) > 0))
            throw new ArgumentException("endpoints A and B coincide: there is no path to search and its normalised length is undefined", nameof(endpointB));

        var settings = Settings(problem, endpointA, endpointB, options);
        var state = options.CheckpointPath is { } path && File.Exists(path)
            ? Load(path, problem, settings, options)
            : Start(problem, endpointA, endpointB, options);
        try
        {
            return new Search(problem, options, state, settings).Run();
        }
        catch
        {
            state.Dispose();
            throw;
        }
    }

    static void RequireLength(IConnectivityProblem problem, Tensor endpoint, string name, string parameter)
    {
        if (endpoint.numel() != problem.Dimension)
            throw new ArgumentException($"{name} has {endpoint.numel()} entries, the problem's parameter vectors {problem.Dimension}", parameter);
    }

    /// <summary>The chain before any work: [A, ½(A+B), B] with the endpoints measured and checked against m·L0.</summary>
    static SearchState Start(IConnectivityProblem problem, Tensor a, Tensor b, StringSamplingOptions options)
    {
        var state = new SearchState();
        try
        {
            var measureA = problem.Measure(a);
            var measureB = problem.Measure(b);
            foreach (var (measure, name) in new[] { (measureA, "A"), (measureB, "B") })
            {
                var value = measure.Value(options.Metric);
                if (!(value <= options.AcceptBound))
                    throw new ArgumentException(
                        $"endpoint {name} has {options.Metric} {value}, above m·L0 = {options.AcceptFactor} × {options.Level} = {options.AcceptBound}: " +
                        "no path inside the level set can contain it (train it below the level, or choose a higher level)",
                        name == "A" ? "endpointA" : "endpointB");
            }
            var copyA = Keep(Copy(a, problem));
            state.Chain.Add(copyA);
            var copyB = Keep(Copy(b, problem));
            state.Chain.Add(copyB);
            state.Chain.Insert(1, Keep(ParameterPath.Interpolate(copyA, copyB, 0.5)));
            state.Beads.Add(Endpoint(measureA, options));
            state.Beads.Add(new BeadState());
            state.Beads.Add(Endpoint(measureB, options));
            state.Segments.Add(null);
            state.Segments.Add(null);
            state.Log.Add(new(0, StringSamplingEventKind.EndpointMeasured, 0, measureA.Value(options.Metric), $"endpoint A: {options.Metric} {measureA.Value(options.Metric):G6}"));
            state.Log.Add(new(0, StringSamplingEventKind.EndpointMeasured, 1, measureB.Value(options.Metric), $"endpoint B: {options.Metric} {measureB.Value(options.Metric):G6}"));
            return state;
        }
        catch
        {
            state.Dispose();
            throw;
        }
    }

    static BeadState Endpoint(PointMeasure measure, StringSamplingOptions options) => new()
    {
        Measure = measure, IsEndpoint = true, Converged = true, Reached = measure.Value(options.Metric) <= options.BeadTarget,
    };

    static Tensor Keep(Tensor t) => t.DetachFromDisposeScope();

    /// <summary>A flat copy of <paramref name="point"/> in the problem's dtype and on its device.</summary>
    static Tensor Copy(Tensor point, IConnectivityProblem problem)
    {
        using var flat = point.detach().reshape(-1);
        return flat.to(problem.Dtype, problem.Device, copy: true);
    }

    /// <summary>What a checkpoint must match to be resumed: the problem's shape, every option that changes the result, the endpoints.</summary>
    static JsonObject Settings(IConnectivityProblem problem, Tensor a, Tensor b, StringSamplingOptions options) => new()
    {
        ["Dimension"] = problem.Dimension,
        ["Dtype"] = problem.Dtype.ToString(),
        ["Level"] = options.Level,
        ["Metric"] = options.Metric.ToString(),
        ["GridPoints"] = options.GridPoints,
        ["InsertAt"] = options.InsertAt.ToString(),
        ["BeadTargetFactor"] = options.BeadTargetFactor,
        ["AcceptFactor"] = options.AcceptFactor,
        ["MaxDepth"] = options.MaxDepth,
        ["endpoint A"] = ConnectivityCheckpointFile.Fingerprint(a),
        ["endpoint B"] = ConnectivityCheckpointFile.Fingerprint(b),
    };

    /// <summary>The search's complete state (what a checkpoint holds).</summary>
    sealed class SearchState : IDisposable
    {
        public List<Tensor> Chain { get; } = [];
        public List<BeadState> Beads { get; set; } = [];
        public List<StringSegment?> Segments { get; set; } = [];
        public List<StringSamplingEvent> Log { get; set; } = [];
        public int Depth { get; set; }
        public bool? Connected { get; set; }

        public void Dispose()
        {
            foreach (var t in Chain) t.Dispose();
            Chain.Clear();
        }
    }

    sealed class BeadState
    {
        public PointMeasure? Measure { get; set; }
        public bool IsEndpoint { get; set; }
        public bool Converged { get; set; }
        public bool Trained { get; set; }
        public bool Reached { get; set; }
        public long Steps { get; set; }
    }

    sealed class StateHeader
    {
        public int Depth { get; set; }
        public bool? Connected { get; set; }
        public List<BeadState> Beads { get; set; } = [];
        public List<StringSegment?> Segments { get; set; } = [];
        public List<StringSamplingEvent> Log { get; set; } = [];
        /// <summary>The segments still to measure at this depth (derived: those without a result), for readers of the file.</summary>
        public List<int> Check { get; set; } = [];
    }

    static void Save(string path, JsonObject settings, SearchState state)
    {
        var header = new JsonObject
        {
            ["kind"] = KindName,
            ["settings"] = settings.DeepClone(),
            ["state"] = JsonSerializer.SerializeToNode(new StateHeader
            {
                Depth = state.Depth,
                Connected = state.Connected,
                Beads = state.Beads,
                Segments = state.Segments,
                Log = state.Log,
                Check = Enumerable.Range(0, state.Segments.Count).Where(i => state.Segments[i] is null).ToList(),
            }, Json),
            ["beads"] = state.Chain.Count,
        };
        ConnectivityCheckpointFile.Write(path, Magic, CheckpointFormatVersion, header, state.Chain);
    }

    static SearchState Load(string path, IConnectivityProblem problem, JsonObject settings, StringSamplingOptions options)
    {
        var content = ConnectivityCheckpointFile.Read(path, Magic, CheckpointFormatVersion, KindName);
        var stored = ConnectivityCheckpointFile.Field(path, content.Header, "settings") as JsonObject
            ?? throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint's settings are not a JSON object");
        ConnectivityCheckpointFile.RequireSame(path, KindName, stored, settings);
        StateHeader header;
        try
        {
            header = ConnectivityCheckpointFile.Field(path, content.Header, "state").Deserialize<StateHeader>(Json)
                ?? throw new JsonException("the state is null");
        }
        catch (JsonException e)
        {
            throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint's state is unreadable: {e.Message}", e);
        }
        var count = header.Beads.Count;
        if (count < 3 || header.Segments.Count != count - 1 || header.Depth < 0 || header.Depth >= options.MaxDepth)
            throw new CheckpointDamagedException(path, "header",
                $"{path}: the checkpoint's state is inconsistent ({count} beads, {header.Segments.Count} segments, depth {header.Depth})");
        var state = new SearchState { Beads = header.Beads, Segments = header.Segments, Log = header.Log, Depth = header.Depth, Connected = header.Connected };
        try
        {
            long offset = 0;
            for (var i = 0; i < count; i++)
                state.Chain.Add(Keep(ConnectivityCheckpointFile.ReadTensor(path, content, ref offset, problem.Dimension, problem.Dtype, problem.Device, $"bead {i}")));
            if (offset != content.RawLength)
                throw new CheckpointDamagedException(path, "values", $"{path}: the checkpoint holds {content.RawLength:N0} bytes of values, {count} beads need {offset:N0}");
            return state;
        }
        catch
        {
            state.Dispose();
            throw;
        }
    }

    /// <summary>One run of the breadth-first loop over a state (fresh or resumed).</summary>
    sealed class Search(IConnectivityProblem problem, StringSamplingOptions options, SearchState state, JsonObject settings)
    {
        int _failingAtLastCheck;

        public StringSamplingResult Run()
        {
            if (state.Connected is null) Report(state.Depth, $"starting at depth {state.Depth} with {state.Chain.Count} beads");
            while (state.Connected is null)
            {
                TrainNewBeads();
                MeasureNewSegments();
                var failing = Enumerable.Range(0, state.Segments.Count).Where(i => !Passes(state.Segments[i]!)).ToList();
                _failingAtLastCheck = failing.Count;
                if (failing.Count == 0)
                {
                    state.Connected = true;
                    var max = state.Segments.Max(s => s!.Max);
                    Note(StringSamplingEventKind.Connected, -1, max, $"connected with {state.Chain.Count} beads at depth {state.Depth}; max {options.Metric} along the path {max:G6}");
                }
                else if (state.Depth == options.MaxDepth - 1)
                {
                    state.Connected = false;
                    Note(StringSamplingEventKind.NotConnected, -1, failing.Count,
                        $"not connected within {options.MaxDepth} depths: {failing.Count} segment(s) still at or above m·L0 = {options.AcceptBound:G6}");
                }
                else
                {
                    InsertBeads(failing);
                    state.Depth++;
                }
                SaveIfAsked();
                Report(state.Depth, state.Log[^1].Message);
            }
            return Finish();
        }

        bool Passes(StringSegment segment) => segment.Max < options.AcceptBound;

        void TrainNewBeads()
        {
            var pending = Enumerable.Range(0, state.Chain.Count).Where(i => !state.Beads[i].Converged).ToArray();
            if (pending.Length == 0) return;
            if (problem.TrainsBeadsTogether)
            {
                // One batched call for the depth's new beads (small problems); the checkpoint follows the batch.
                StopIfCancelled();
                IReadOnlyList<BeadTraining> trained;
                try
                {
                    trained = problem.TrainBeads(pending.Select(i => state.Chain[i]).ToArray(), options.Metric, options.BeadTarget, options.Cancellation);
                }
                catch (OperationCanceledException)
                {
                    SaveIfAsked();
                    throw;
                }
                if (trained.Count != pending.Length)
                    throw new InvalidOperationException($"the problem's TrainBeads returned {trained.Count} beads for {pending.Length} starts");
                for (var j = 0; j < pending.Length; j++) Record(pending[j], trained[j]);
                SaveIfAsked();
                Report(state.Depth, state.Log[^1].Message);
                return;
            }
            foreach (var i in pending)
            {
                StopIfCancelled();
                BeadTraining training;
                try
                {
                    training = problem.TrainBead(state.Chain[i], options.Metric, options.BeadTarget, options.Cancellation);
                }
                catch (OperationCanceledException)
                {
                    SaveIfAsked();
                    throw;
                }
                Record(i, training);
                SaveIfAsked();
                Report(state.Depth, state.Log[^1].Message);
            }
        }

        void Record(int i, BeadTraining training)
        {
            var point = Keep(training.Point);
            if (point.numel() != problem.Dimension)
            {
                point.Dispose();
                throw new InvalidOperationException($"the problem's TrainBead returned {training.Point.numel()} entries, expected {problem.Dimension}");
            }
            state.Chain[i].Dispose();
            state.Chain[i] = point;
            var value = training.Measure.Value(options.Metric);
            var reached = value <= options.BeadTarget;
            state.Beads[i] = new BeadState { Measure = training.Measure, Converged = true, Trained = true, Reached = reached, Steps = training.Steps };
            Note(reached ? StringSamplingEventKind.BeadTrained : StringSamplingEventKind.BeadTargetMissed, i, value,
                reached
                    ? $"bead {i} trained to {options.Metric} {value:G6} ≤ α·L0 = {options.BeadTarget:G6} in {training.Steps} steps"
                    : $"bead {i} ended at {options.Metric} {value:G6} above α·L0 = {options.BeadTarget:G6} after {training.Steps} steps (kept)");
        }

        void MeasureNewSegments()
        {
            for (var b = 0; b < state.Segments.Count; b++)
            {
                if (state.Segments[b] is not null) continue;
                var grid = new PointMeasure[options.GridPoints];
                // t = 0 is the bead itself, measured when it was trained (or, for θ_A, before the search).
                grid[0] = state.Beads[b].Measure ?? throw new InvalidOperationException($"bead {b} has no measure");
                using (var point = empty_like(state.Chain[b]))
                    for (var k = 1; k < options.GridPoints; k++)
                    {
                        StopIfCancelled();
                        grid[k] = problem.Measure(ParameterPath.InterpolateInto(point, state.Chain[b], state.Chain[b + 1], (double)k / options.GridPoints));
                    }
                var argmax = 0;
                var max = grid[0].Value(options.Metric);
                for (var k = 1; k < grid.Length; k++)
                {
                    var v = grid[k].Value(options.Metric);
                    // NaN counts as the largest value: a segment through non-finite loss fails.
                    if (v > max || (double.IsNaN(v) && !double.IsNaN(max))) { max = v; argmax = k; }
                }
                var segment = new StringSegment(max, (double)argmax / options.GridPoints, grid);
                state.Segments[b] = segment;
                var passes = Passes(segment);
                Note(passes ? StringSamplingEventKind.SegmentPassed : StringSamplingEventKind.SegmentFailed, b, max,
                    $"segment {b}: max {options.Metric} {max:G6} at t = {segment.ArgmaxT:G4} {(passes ? "<" : "≥")} m·L0 = {options.AcceptBound:G6}");
            }
        }

        void InsertBeads(List<int> failing)
        {
            var shift = 0;
            foreach (var b in failing)
            {
                var at = b + shift;
                var segment = state.Segments[at]!;
                var t = options.InsertAt == InsertionRule.Argmax && segment.ArgmaxT > 0 ? segment.ArgmaxT : 0.5;
                var point = Keep(ParameterPath.Interpolate(state.Chain[at], state.Chain[at + 1], t));
                state.Chain.Insert(at + 1, point);
                state.Beads.Insert(at + 1, new BeadState());
                state.Segments[at] = null;
                state.Segments.Insert(at + 1, null);
                Note(StringSamplingEventKind.BeadInserted, at + 1, t, $"bead inserted at position {at + 1}, t* = {t:G4} of failing segment {b}");
                shift++;
            }
        }

        StringSamplingResult Finish()
        {
            var beads = state.Beads.Select(b => new StringBead(b.Measure ?? default, b.IsEndpoint, b.Trained, b.Reached, b.Steps)).ToList();
            var segments = state.Segments.Select(s => s!).ToList();
            var allParameters = ParameterPath.NormalizedLength(state.Chain, null, LengthVersion.AllParameters);
            var weightsOnly = problem.WeightMask is null
                ? allParameters
                : ParameterPath.Distance(state.Chain[0], state.Chain[^1], problem.WeightMask) > 0
                    ? ParameterPath.NormalizedLength(state.Chain, problem.WeightMask, LengthVersion.WeightsOnly)
                    : double.NaN;
            var chain = state.Chain.ToList();
            state.Chain.Clear();
            return new StringSamplingResult(state.Connected!.Value, chain, beads, segments, new NormalizedLengths(weightsOnly, allParameters),
                state.Depth + 1, state.Log.ToList(), options);
        }

        void Note(StringSamplingEventKind kind, int index, double value, string message) =>
            state.Log.Add(new StringSamplingEvent(state.Depth, kind, index, value, message));

        void Report(int depth, string message) =>
            options.Progress?.Report(new StringSamplingProgress(depth, state.Chain.Count, _failingAtLastCheck, message));

        void StopIfCancelled()
        {
            if (!options.Cancellation.IsCancellationRequested) return;
            SaveIfAsked();
            options.Cancellation.ThrowIfCancellationRequested();
        }

        void SaveIfAsked()
        {
            if (options.CheckpointPath is { } path) Save(path, settings, state);
        }
    }
}
