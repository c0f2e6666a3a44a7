using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>A report from a running <see cref="CurveTraining.Train"/>.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="Steps">Steps asked for.</param>
/// <param name="Loss">The last step's stochastic loss at φ(t) (NaN before the first step).</param>
/// <param name="Message">What just happened, one line.</param>
public sealed record CurveTrainingProgress(long Step, long Steps, double Loss, string Message);

/// <summary>Settings of curve training between two minima (Garipov et al. 2018).</summary>
public sealed record CurveTrainingOptions
{
    /// <summary>Bézier or polygonal chain (default Bézier).</summary>
    public CurveKind Kind { get; init; } = CurveKind.Bezier;
    /// <summary>Trainable middle points (default 1: the quadratic Bézier, a two-segment chain). Garipov et al.'s <c>num_bends = 3</c> counts the two endpoints too: it is 1 here.</summary>
    public int Bends { get; init; } = 1;
    /// <summary>Optimisation steps, one t ~ U(0, 1) and one stochastic gradient each (default 1,000).</summary>
    public long Steps { get; init; } = 1000;
    /// <summary>SGD step size (default 0.01).</summary>
    public double LearningRate { get; init; } = 0.01;
    /// <summary>SGD momentum μ in [0, 1) (default 0.9; PyTorch's form: buf ← μ·buf + g, θ ← θ − lr·buf).</summary>
    public double Momentum { get; init; } = 0.9;
    /// <summary>L2 weight decay on the middle points (default 0).</summary>
    public double WeightDecay { get; init; }
    /// <summary>Seed of the t stream: step s draws t from a pure function of (seed, s), so resuming needs no generator state.</summary>
    public long Seed { get; init; }
    /// <summary>E: the curve is measured at t = k/(E−1), k = 0..E−1 (default 41).</summary>
    public int EvaluationPoints { get; init; } = 41;
    /// <summary>The length is summed over t = k/N, k = 0..N (default N = 1,000; exact for polygonal chains with N a multiple of their segments).</summary>
    public int LengthSteps { get; init; } = 1000;
    /// <summary>With a checkpoint path: save every this many steps (default 100), besides on cancellation and at the end.</summary>
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Reports after every step and at the end of the evaluation (called synchronously).</summary>
    public IProgress<CurveTrainingProgress>? Progress { get; init; }
    /// <summary>Stops training: the state is saved (with a checkpoint path), then <see cref="OperationCanceledException"/> is thrown.</summary>
    public CancellationToken Cancellation { get; init; }
    /// <summary>When set, the middle points, momentum buffers, step and losses are saved here atomically, and a run with the same path resumes.</summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option, with its value and what is allowed.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind)) throw new ArgumentException($"Kind: unknown curve kind {Kind}", nameof(Kind));
        if (Bends < 1) throw new ArgumentException($"Bends must be at least 1, got {Bends}", nameof(Bends));
        if (Steps < 0) throw new ArgumentException($"Steps must be zero or positive, got {Steps}", nameof(Steps));
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate))
            throw new ArgumentException($"LearningRate must be positive and finite, got {LearningRate}", nameof(LearningRate));
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentException($"Momentum must be in [0, 1), got {Momentum}", nameof(Momentum));
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay))
            throw new ArgumentException($"WeightDecay must be zero or positive and finite, got {WeightDecay}", nameof(WeightDecay));
        if (EvaluationPoints < 2) throw new ArgumentException($"EvaluationPoints must be at least 2 (the endpoints), got {EvaluationPoints}", nameof(EvaluationPoints));
        if (LengthSteps < 1) throw new ArgumentException($"LengthSteps must be positive, got {LengthSteps}", nameof(LengthSteps));
        if (CheckpointEvery < 1) throw new ArgumentException($"CheckpointEvery must be positive, got {CheckpointEvery}", nameof(CheckpointEvery));
        if (CheckpointPath is { } path && string.IsNullOrWhiteSpace(path))
            throw new ArgumentException("CheckpointPath must be a file path or null, got an empty string", nameof(CheckpointPath));
    }
}

/// <summary>The barrier of a path: max over t of a metric minus the mean of its two endpoints' values.</summary>
/// <param name="Loss">For the loss.</param>
/// <param name="ErrorPercent">For the error, when the problem measures one.</param>
/// <param name="Perplexity">For the perplexity, when the problem measures one.</param>
public readonly record struct CurveBarrier(double Loss, double? ErrorPercent, double? Perplexity);

/// <summary>A curve measured along its length.</summary>
/// <param name="T">The evaluation points t = k/(E−1).</param>
/// <param name="Measures">The measures at <paramref name="T"/>; the first and last are the endpoints'.</param>
/// <param name="Barrier">Max over the evaluation points minus the endpoints' mean, per metric.</param>
/// <param name="Length">Σ_k ‖φ(t_{k+1}) − φ(t_k)‖ over t_k = k/N (N = <see cref="CurveTrainingOptions.LengthSteps"/>), in float64.</param>
/// <param name="NormalizedLength"><paramref name="Length"/> / ‖B − A‖ (all parameters).</param>
public sealed record CurveEvaluation(IReadOnlyList<double> T, IReadOnlyList<PointMeasure> Measures, CurveBarrier Barrier,
    double Length, double NormalizedLength)
{
    /// <summary>The largest value of <paramref name="metric"/> along the curve.</summary>
    public double Max(LevelMetric metric) => Measures.Max(m => m.Value(metric));
}

/// <summary>A trained curve with its measurements; owns the curve (dispose it).</summary>
/// <param name="Curve">The curve (middle points trained).</param>
/// <param name="Evaluation">Measured along the curve after training.</param>
/// <param name="Losses">The stochastic loss of every step, in order.</param>
public sealed record CurveTrainingResult(ConnectivityCurve Curve, CurveEvaluation Evaluation, IReadOnlyList<double> Losses) : IDisposable
{
    /// <summary>Frees the curve.</summary>
    public void Dispose() => Curve.Dispose();
}

/// <summary>
/// Curves between two minima after Garipov et al. (2018): a Bézier curve or polygonal chain with fixed endpoints and
/// trainable middle points, trained by minimising E_{t~U(0,1)} L(φ(t)) with one t per step:
/// <code>
/// θ_j ← interp(A, B, j/(n−1)) for the middles j = 1..n−2;  buf_j ← 0
/// for s in 0 .. Steps−1:
///     t ← U(0,1) from (seed, s);  (loss, g) ← problem.StochasticLossAndGradient(φ(t))
///     for each middle j: buf_j ← μ·buf_j + b_j(t)·g + λ·θ_j;  θ_j ← θ_j − lr·buf_j
/// evaluate: measures at t = k/(E−1); barrier = max − mean(endpoints); length on t = k/N
/// </code>
/// </summary>
public static class CurveTraining
{
    static readonly byte[] Magic = Encoding.ASCII.GetBytes("WVCURVE\0");
    /// <summary>The checkpoint format this code writes and reads.</summary>
    public const int CheckpointFormatVersion = 1;
    const string KindName = "curve-training";

    static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>
    /// The t of step <paramref name="step"/>: a pure function of (seed, step), uniform on [0, 1) (SplitMix64 of both,
    /// top 53 bits).
    /// </summary>
    public static double DrawT(long seed, long step)
    {
        var x = SplitMix(SplitMix(unchecked((ulong)seed) ^ 0x243F6A8885A308D3UL) ^ unchecked((ulong)step));
        return (x >> 11) * (1.0 / (1UL << 53));
    }

    static ulong SplitMix(ulong z)
    {
        unchecked
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>
    /// Trains a curve from the straight line between <paramref name="endpointA"/> and <paramref name="endpointB"/>
    /// (see the class summary) and measures it. With a checkpoint path, resumes a run in progress.
    /// </summary>
    /// <exception cref="ArgumentException">A bad option (named), endpoints of the wrong length, or coinciding endpoints.</exception>
    /// <exception cref="CheckpointDamagedException">The checkpoint file is damaged (it is left untouched).</exception>
    /// <exception cref="ConnectivityCheckpointMismatchException">The checkpoint was made with other options or endpoints.</exception>
    /// <exception cref="OperationCanceledException">Cancelled (after saving, with a checkpoint path).</exception>
    public static CurveTrainingResult Train(IConnectivityProblem problem, Tensor endpointA, Tensor endpointB, CurveTrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(endpointA);
        ArgumentNullException.ThrowIfNull(endpointB);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        RequireEndpoints(problem, endpointA, endpointB);

        var settings = new JsonObject
        {
            ["Dimension"] = problem.Dimension,
            ["Dtype"] = problem.Dtype.ToString(),
            ["Kind"] = options.Kind.ToString(),
            ["Bends"] = options.Bends,
            ["Steps"] = options.Steps,
            ["LearningRate"] = options.LearningRate,
            ["Momentum"] = options.Momentum,
            ["WeightDecay"] = options.WeightDecay,
            ["Seed"] = options.Seed,
            ["endpoint A"] = ConnectivityCheckpointFile.Fingerprint(endpointA),
            ["endpoint B"] = ConnectivityCheckpointFile.Fingerprint(endpointB),
        };

        ConnectivityCurve curve;
        Tensor momentum;
        long step;
        List<double> losses;
        using (var a = Flat(endpointA, problem))
        using (var b = Flat(endpointB, problem))
        {
            if (options.CheckpointPath is { } path && File.Exists(path))
                (curve, momentum, step, losses) = Load(path, problem, settings, options, a, b);
            else
            {
                curve = ConnectivityCurve.Straight(options.Kind, a, b, options.Bends);
                momentum = zeros_like(curve.Middles).DetachFromDisposeScope();
                step = 0;
                losses = [];
            }
        }
        try
        {
            Optimise(problem, options, settings, curve, momentum, ref step, losses);
            momentum.Dispose();
            var evaluation = Evaluate(problem, curve, options.EvaluationPoints, options.LengthSteps);
            options.Progress?.Report(new CurveTrainingProgress(step, options.Steps, losses.Count > 0 ? losses[^1] : double.NaN,
                $"evaluated: loss barrier {evaluation.Barrier.Loss:G6}, normalised length {evaluation.NormalizedLength:G6}"));
            return new CurveTrainingResult(curve, evaluation, losses);
        }
        catch
        {
            curve.Dispose();
            momentum.Dispose();
            throw;
        }
    }

    static Tensor Flat(Tensor point, IConnectivityProblem problem)
    {
        using var flat = point.detach().reshape(-1);
        return flat.to(problem.Dtype, problem.Device, copy: true).DetachFromDisposeScope();
    }

    static void RequireEndpoints(IConnectivityProblem problem, Tensor a, Tensor b)
    {
        if (a.numel() != problem.Dimension)
            throw new ArgumentException($"endpoint A has {a.numel()} entries, the problem's parameter vectors {problem.Dimension}", "endpointA");
        if (b.numel() != problem.Dimension)
            throw new ArgumentException($"endpoint B has {b.numel()} entries, the problem's parameter vectors {problem.Dimension}", "endpointB");
        if (!(ParameterPath.Distance(a, b, null) > 0))
            throw new ArgumentException("endpoints A and B coincide: a curve between them has no normalised length", "endpointB");
    }

    static void Optimise(IConnectivityProblem problem, CurveTrainingOptions options, JsonObject settings, ConnectivityCurve curve,
        Tensor momentum, ref long step, List<double> losses)
    {
        var middles = curve.Middles;
        while (step < options.Steps)
        {
            if (options.Cancellation.IsCancellationRequested)
            {
                Save(options, settings, curve, momentum, step, losses);
                options.Cancellation.ThrowIfCancellationRequested();
            }
            var t = DrawT(options.Seed, step);
            var c = curve.Coefficients(t);
            double loss;
            using (var scope = NewDisposeScope())
            {
                using var point = curve.Point(t);
                var (value, gradient) = problem.StochasticLossAndGradient(point);
                loss = value;
                var weights = tensor(c.AsSpan(1, curve.Bends).ToArray(), middles.dtype, middles.device);
                // buf_j ← μ·buf_j + b_j(t)·g + λ·θ_j, all middles at once: b(t) ⊗ g is a [bends, D] outer product.
                var update = weights.unsqueeze(1).mul(gradient.reshape(1, -1));
                if (options.WeightDecay > 0) update.AddScaled_(middles, options.WeightDecay);
                using (no_grad())
                {
                    momentum.Scale_(options.Momentum).Accumulate_(update);
                    middles.AddScaled_(momentum, -options.LearningRate);
                }
                gradient.Dispose();
            }
            losses.Add(loss);
            step++;
            options.Progress?.Report(new CurveTrainingProgress(step, options.Steps, loss, $"step {step}/{options.Steps}: loss {loss:G6} at t = {t:F3}"));
            if (step % options.CheckpointEvery == 0 || step == options.Steps) Save(options, settings, curve, momentum, step, losses);
        }
    }

    /// <summary>
    /// Measures <paramref name="curve"/> at t = k/(E−1), k = 0..E−1 (the endpoints once each), its barrier per metric
    /// (max over those points minus the mean of the endpoints' values) and its length over t = k/N.
    /// </summary>
    public static CurveEvaluation Evaluate(IConnectivityProblem problem, ConnectivityCurve curve, int evaluationPoints = 41, int lengthSteps = 1000)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(curve);
        if (evaluationPoints < 2) throw new ArgumentException($"evaluationPoints must be at least 2, got {evaluationPoints}", nameof(evaluationPoints));
        if (curve.Dimension != problem.Dimension)
            throw new ArgumentException($"the curve's points have {curve.Dimension} entries, the problem's {problem.Dimension}", nameof(curve));
        var ts = new double[evaluationPoints];
        var measures = new PointMeasure[evaluationPoints];
        measures[0] = problem.Measure(curve.EndpointA);
        measures[^1] = problem.Measure(curve.EndpointB);
        ts[^1] = 1;
        for (var k = 1; k < evaluationPoints - 1; k++)
        {
            ts[k] = (double)k / (evaluationPoints - 1);
            using var point = curve.Point(ts[k]);
            measures[k] = problem.Measure(point);
        }
        static double BarrierOf(PointMeasure[] m, Func<PointMeasure, double> value) => m.Max(value) - 0.5 * (value(m[0]) + value(m[^1]));
        var barrier = new CurveBarrier(
            BarrierOf(measures, m => m.Loss),
            measures.All(m => m.ErrorPercent is not null) ? BarrierOf(measures, m => m.ErrorPercent!.Value) : null,
            measures.All(m => m.Perplexity is not null) ? BarrierOf(measures, m => m.Perplexity!.Value) : null);
        var length = curve.Length(lengthSteps);
        var direct = ParameterPath.Distance(curve.EndpointA, curve.EndpointB, null);
        return new CurveEvaluation(ts, measures, barrier, length, length / direct);
    }

    sealed class StateHeader
    {
        public long Step { get; set; }
    }

    static void Save(CurveTrainingOptions options, JsonObject settings, ConnectivityCurve curve, Tensor momentum, long step, List<double> losses)
    {
        if (options.CheckpointPath is not { } path) return;
        var header = new JsonObject
        {
            ["kind"] = KindName,
            ["settings"] = settings.DeepClone(),
            ["state"] = JsonSerializer.SerializeToNode(new StateHeader { Step = step }, Json),
        };
        using var lossTensor = tensor(losses.ToArray(), ScalarType.Float64);
        ConnectivityCheckpointFile.Write(path, Magic, CheckpointFormatVersion, header, [curve.Middles, momentum, lossTensor]);
    }

    static (ConnectivityCurve, Tensor, long, List<double>) Load(string path, IConnectivityProblem problem, JsonObject settings,
        CurveTrainingOptions options, Tensor a, Tensor b)
    {
        var content = ConnectivityCheckpointFile.Read(path, Magic, CheckpointFormatVersion, KindName);
        var stored = ConnectivityCheckpointFile.Field(path, content.Header, "settings") as JsonObject
            ?? throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint's settings are not a JSON object");
        ConnectivityCheckpointFile.RequireSame(path, KindName, stored, settings);
        var state = ConnectivityCheckpointFile.Get<StateHeader>(path, content.Header, "state");
        if (state.Step < 0 || state.Step > options.Steps)
            throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint is at step {state.Step}, outside 0..{options.Steps}");
        long offset = 0;
        var count = options.Bends * problem.Dimension;
        using var middles = ConnectivityCheckpointFile.ReadTensor(path, content, ref offset, count, problem.Dtype, problem.Device, "the middle points");
        var momentum = ConnectivityCheckpointFile.ReadTensor(path, content, ref offset, count, problem.Dtype, problem.Device, "the momentum buffers");
        try
        {
            using var lossTensor = ConnectivityCheckpointFile.ReadTensor(path, content, ref offset, state.Step, ScalarType.Float64, CPU, "the losses");
            if (offset != content.RawLength)
                throw new CheckpointDamagedException(path, "values", $"{path}: the checkpoint holds {content.RawLength:N0} bytes of values, its state needs {offset:N0}");
            var curve = new ConnectivityCurve(options.Kind, a, b, middles.view(options.Bends, problem.Dimension));
            var reshaped = momentum.view(options.Bends, problem.Dimension).DetachFromDisposeScope();
            momentum.Dispose();
            return (curve, reshaped, state.Step, lossTensor.data<double>().ToList());
        }
        catch
        {
            momentum.Dispose();
            throw;
        }
    }
}
