using System.Globalization;
using WideValley.Connectivity;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>Which polynomial the toy network regresses (Freeman and Bruna, ICLR 2017, Sec. 3, Fig. 1).</summary>
public enum PolynomialTarget
{
    /// <summary>f(x) = 0.5x² + 0.25x + 0.1 (FB-CODE <c>QUADRATICS.py</c>).</summary>
    Quadratic,
    /// <summary>f(x) = 8x³ − 10x² + 3x (FB-CODE <c>CUBICS.py</c>, the authors' <c>func2</c>).</summary>
    Cubic,
}

/// <summary>
/// Settings of a <see cref="PolynomialToy"/>. Defaults follow the authors' launch scripts (FB-CODE
/// <c>QUADRATICS.py</c>, <c>CUBICS.py</c>) where they say something; the seeds and the float64 arithmetic are ours.
/// </summary>
public sealed record PolynomialToyOptions
{
    /// <summary>Default of <see cref="CheckEvery"/>: the authors' bead loop runs 15 full-batch Adam steps between two test checks.</summary>
    public const int DefaultCheckEvery = 15;
    /// <summary>Default of <see cref="MaxSteps"/> (ours; the authors train until the level is reached, without a budget).</summary>
    public const long DefaultMaxSteps = 200_000;

    /// <summary>The regressed polynomial.</summary>
    public PolynomialTarget Target { get; init; } = PolynomialTarget.Quadratic;

    /// <summary>
    /// Whether the three layers have biases; null = as the authors' script for <see cref="Target"/>: none in
    /// <c>QUADRATICS.py</c> (its bias terms are commented out), biases in <c>CUBICS.py</c> (initialised N(0, 1)).
    /// </summary>
    public bool? Biases { get; init; }

    /// <summary>
    /// Whether a sigmoid follows the output layer; null = as the authors' script for <see cref="Target"/>: yes in
    /// <c>QUADRATICS.py</c>, no in <c>CUBICS.py</c> (linear output; the cubic takes negative values, down to −0.08, that a
    /// sigmoid cannot reach).
    /// </summary>
    public bool? SigmoidOutput { get; init; }

    /// <summary><see cref="Biases"/> resolved: the given value, else the authors' choice for <see cref="Target"/>.</summary>
    public bool HasBiases => Biases ?? Target == PolynomialTarget.Cubic;

    /// <summary><see cref="SigmoidOutput"/> resolved: the given value, else the authors' choice for <see cref="Target"/>.</summary>
    public bool HasSigmoidOutput => SigmoidOutput ?? Target == PolynomialTarget.Quadratic;

    /// <summary>
    /// Size of the full training batch, x ~ U[0, 1] (the authors: 10,000). The authors draw a fresh training sample
    /// (numpy's unseeded global generator) for every endpoint and every bead; we draw ONE sample from
    /// <see cref="TrainingSeed"/> and train every point on it, so that a bead's training does not depend on which
    /// other beads are trained with it.
    /// </summary>
    public int TrainingSamples { get; init; } = 10_000;

    /// <summary>
    /// Size of the fixed evaluation sample, x ~ U[0, 1], on which every level (the threshold L0, a bead's target, the
    /// loss along a segment) is measured. The authors: one sample of 10,000 (<c>xtest</c>), drawn once per run.
    /// </summary>
    public int EvaluationSamples { get; init; } = 10_000;

    /// <summary>Seed of the training sample (ours; the authors' sample is unseeded).</summary>
    public ulong TrainingSeed { get; init; } = 1;

    /// <summary>Seed of the evaluation sample (ours; the authors' <c>xtest</c> is unseeded). Must differ from <see cref="TrainingSeed"/>.</summary>
    public ulong EvaluationSeed { get; init; } = 2;

    /// <summary>Adam's learning rate (the authors: 1e-3).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Adam's first-moment decay (TensorFlow's default, 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam's second-moment decay (TensorFlow's default, 0.999).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Adam's epsilon, added to sqrt(v) as TensorFlow's <c>AdamOptimizer</c> does (its default, 1e-8).</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Full-batch Adam steps between two measures of the evaluation MAE while training (at least 1).</summary>
    public int CheckEvery { get; init; } = DefaultCheckEvery;

    /// <summary>Most Adam steps one point may take before training stops with its target not reached (at least 1).</summary>
    public long MaxSteps { get; init; } = DefaultMaxSteps;

    /// <summary>Checks every setting.</summary>
    /// <exception cref="ArgumentException">A setting is out of range; the message names it, its value and what is expected.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Target))
            throw new ArgumentException($"PolynomialToyOptions.Target must be Quadratic or Cubic; got {(int)Target}.");
        if (TrainingSamples < 1)
            throw new ArgumentException($"PolynomialToyOptions.TrainingSamples must be at least 1 (the authors use 10,000); got {TrainingSamples}.");
        if (EvaluationSamples < 1)
            throw new ArgumentException($"PolynomialToyOptions.EvaluationSamples must be at least 1 (the authors use 10,000); got {EvaluationSamples}.");
        if (TrainingSeed == EvaluationSeed)
            throw new ArgumentException(
                $"PolynomialToyOptions.TrainingSeed and EvaluationSeed are both {TrainingSeed}: the levels would be measured on the training sample; give two different seeds.");
        if (!(double.IsFinite(LearningRate) && LearningRate > 0))
            throw new ArgumentException($"PolynomialToyOptions.LearningRate must be a positive finite number; got {LearningRate.ToString(CultureInfo.InvariantCulture)}.");
        if (!(Beta1 >= 0 && Beta1 < 1))
            throw new ArgumentException($"PolynomialToyOptions.Beta1 must be in [0, 1); got {Beta1.ToString(CultureInfo.InvariantCulture)}.");
        if (!(Beta2 >= 0 && Beta2 < 1))
            throw new ArgumentException($"PolynomialToyOptions.Beta2 must be in [0, 1); got {Beta2.ToString(CultureInfo.InvariantCulture)}.");
        if (!(double.IsFinite(Epsilon) && Epsilon > 0))
            throw new ArgumentException($"PolynomialToyOptions.Epsilon must be a positive finite number; got {Epsilon.ToString(CultureInfo.InvariantCulture)}.");
        if (CheckEvery < 1)
            throw new ArgumentException($"PolynomialToyOptions.CheckEvery must be at least 1 (Adam steps between level checks); got {CheckEvery}.");
        if (MaxSteps < 1)
            throw new ArgumentException($"PolynomialToyOptions.MaxSteps must be at least 1 (the step budget of one point); got {MaxSteps}.");
    }
}

/// <summary>
/// The polynomial regression toys of Freeman and Bruna (ICLR 2017, Fig. 1 top) as a connectivity problem: a 1-4-4-1
/// sigmoid network fitting <see cref="PolynomialTarget"/> on x ~ U[0, 1] under the mean absolute error, trained with
/// full-batch Adam (FB-CODE <c>QUADRATICS.py</c>, <c>CUBICS.py</c>). The two scripts' networks differ: the quadratic's
/// has a sigmoid after all three layers and no biases (24 parameters), the cubic's has biases and a linear output
/// (33 parameters); <see cref="PolynomialToyOptions.Biases"/> and <see cref="PolynomialToyOptions.SigmoidOutput"/>
/// choose either for either target. Every point is small, so many are trained at once:
/// <see cref="TrainBeads"/> and <see cref="TrainEndpoints"/> run B points as one batched computation.
/// </summary>
/// <remarks>
/// <para>Arithmetic is float64 on the CPU (the authors' TensorFlow graph is float32): at 24 or 33 parameters it costs nothing and
/// keeps levels such as 0.001 far above rounding.</para>
/// <para>Flat layout (the authors' <c>weightslist</c> then <c>biaseslist</c> order, weights row-major as TensorFlow's
/// <c>matmul(x, W)</c>): W1 (1 x 4) at 0..3, W2 (4 x 4) at 4..19, W3 (4 x 1) at 20..23, then with biases b1 at 24..27,
/// b2 at 28..31, b3 at 32. The network is y = s(σ(σ(x W1 + b1) W2 + b2) W3 + b3), s = σ or the identity.
/// <see cref="WeightMask"/> marks the weights, which alone enter the authors' normalised length (SpringNorm).</para>
/// <para>Adam is TensorFlow's form (the authors' optimizer): lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t),
/// θ ← θ − lr_t·m/(sqrt(v) + ε), with the moments of each point its own and zero at the start of each training call.
/// The gradient is computed in closed form (no autograd): d|r|/dr = sign(r), 0 at r = 0, as autograd's.</para>
/// <para>Not thread-safe (the samples are shared).</para>
/// </remarks>
public sealed class PolynomialToy : IConnectivityProblem, IDisposable
{
    /// <summary>Widths of the network: 1 input, hidden layers of 4 and 4, 1 output.</summary>
    public const int Input = 1, Hidden1 = 4, Hidden2 = 4, Output = 1;
    /// <summary>Number of weights: 1·4 + 4·4 + 4·1.</summary>
    public const int WeightCount = Input * Hidden1 + Hidden1 * Hidden2 + Hidden2 * Output;
    /// <summary>Number of biases, when the network has them: 4 + 4 + 1.</summary>
    public const int BiasCount = Hidden1 + Hidden2 + Output;
    private const int W2Offset = Input * Hidden1, W3Offset = W2Offset + Hidden1 * Hidden2;
    private const int B1Offset = WeightCount, B2Offset = B1Offset + Hidden1, B3Offset = B2Offset + Hidden2;
    private readonly Tensor? weightMask;
    private readonly int dimension;

    private readonly Tensor trainX, trainY, evaluationX, evaluationY;
    private bool disposed;

    /// <summary>Draws the training and evaluation samples.</summary>
    /// <param name="options">The settings; null = the defaults (the quadratic).</param>
    /// <exception cref="ArgumentException">An option is out of range (see <see cref="PolynomialToyOptions.Validate"/>).</exception>
    public PolynomialToy(PolynomialToyOptions? options = null)
    {
        Options = options ?? new PolynomialToyOptions();
        Options.Validate();
        TorchRuntime.EnsureLoadable();
        (trainX, trainY) = Sample(Options.TrainingSamples, Options.TrainingSeed);
        (evaluationX, evaluationY) = Sample(Options.EvaluationSamples, Options.EvaluationSeed);
        dimension = WeightCount + (Options.HasBiases ? BiasCount : 0);
        if (Options.HasBiases)
        {
            using var scope = NewDisposeScope();
            var mask = zeros(dimension, ScalarType.Float64);
            mask.narrow(0, 0, WeightCount).fill_(1);
            weightMask = mask.DetachFromDisposeScope();
        }
    }

    /// <summary>The settings in effect.</summary>
    public PolynomialToyOptions Options { get; }

    /// <inheritdoc/>
    public long Dimension => dimension;

    /// <inheritdoc/>
    public ScalarType Dtype => ScalarType.Float64;

    /// <inheritdoc/>
    public Device Device => CPU;

    /// <summary>
    /// 1 on the 24 weights and 0 on the biases when the network has biases (the authors' SpringNorm sums weights only);
    /// null without biases. Owned by the toy.
    /// </summary>
    public Tensor? WeightMask => weightMask;

    /// <summary>The regressed function, in double precision.</summary>
    /// <param name="target">Quadratic or cubic.</param>
    /// <param name="x">The input.</param>
    public static double Polynomial(PolynomialTarget target, double x) => target switch
    {
        PolynomialTarget.Quadratic => 0.5 * x * x + 0.25 * x + 0.1,
        PolynomialTarget.Cubic => 8 * x * x * x - 10 * x * x + 3 * x,
        _ => throw new ArgumentOutOfRangeException(nameof(target), target, "unknown polynomial"),
    };

    /// <summary>The evaluation sample's inputs (a copy), in the order the mean runs over.</summary>
    public double[] EvaluationInputs()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return evaluationX.data<double>().ToArray();
    }

    /// <summary>The training sample's inputs (a copy).</summary>
    public double[] TrainingInputs()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return trainX.data<double>().ToArray();
    }

    /// <summary>The mean absolute error on the evaluation sample (the authors' level function). Deterministic.</summary>
    /// <exception cref="ArgumentException"><paramref name="point"/> is not a floating vector of <see cref="Dimension"/> entries.</exception>
    public PointMeasure Measure(Tensor point)
    {
        using var scope = NewDisposeScope();
        var batch = AsBatch([point], nameof(point));
        return new PointMeasure(MeanAbsoluteErrors(batch, evaluationX, evaluationY)[0]);
    }

    /// <summary>
    /// The evaluation MAE of many points at once (one batched forward pass), e.g. the grid of a segment.
    /// </summary>
    /// <param name="points">(B, <see cref="Dimension"/>), any floating type (computed in float64).</param>
    /// <exception cref="ArgumentException"><paramref name="points"/> has the wrong shape or is not floating point.</exception>
    public double[] MeasureMany(Tensor points)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(points);
        if (points.dim() != 2 || points.shape[1] != dimension || !points.is_floating_point())
            throw new ArgumentException(
                $"points must be a floating (B, {dimension}) matrix; got {points.dtype} [{string.Join(", ", points.shape)}].", nameof(points));
        using var scope = NewDisposeScope();
        return MeanAbsoluteErrors(points.to(ScalarType.Float64, CPU), evaluationX, evaluationY);
    }

    /// <summary>Trains one point: <see cref="TrainBeads"/> with a batch of one.</summary>
    public BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default) =>
        TrainBeads([start], metric, target, cancellation)[0];

    /// <summary>
    /// Trains all <paramref name="starts"/> together, each as <see cref="TrainBead"/> would alone: full-batch Adam on the
    /// training sample, its own moments; the evaluation MAE of every point is measured at the start and every
    /// <see cref="PolynomialToyOptions.CheckEvery"/> steps, and a point stops (and leaves the batch) at the first
    /// measure at or below <paramref name="target"/>, or after <see cref="PolynomialToyOptions.MaxSteps"/> steps with
    /// <see cref="BeadTraining.Reached"/> false. One step of B points is a few batched matrix products.
    /// </summary>
    /// <exception cref="ArgumentException">The metric is not the loss (the toys measure no error or perplexity), the target is
    /// not finite, or a start is not a floating vector of <see cref="Dimension"/> entries.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> fired (checked between steps).</exception>
    public IReadOnlyList<BeadTraining> TrainBeads(IReadOnlyList<Tensor> starts, LevelMetric metric, double target, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(starts);
        if (metric != LevelMetric.Loss)
            throw new ArgumentException(
                $"the polynomial toys measure only the loss (mean absolute error); the level metric {metric} is not defined for them.", nameof(metric));
        if (!double.IsFinite(target))
            throw new ArgumentException($"the bead target must be a finite number; got {target}.", nameof(target));
        if (starts.Count == 0) return [];
        using var scope = NewDisposeScope();
        return Train(AsBatch(starts, nameof(starts)), target, cancellation);
    }

    /// <summary>
    /// The authors' Φ1, Φ2 (Algorithm 1, lines 2-3): <paramref name="count"/> independent random initialisations,
    /// weights U[−1, 1] (the authors' <c>random_uniform(minval=-1, maxval=1)</c>) drawn from a generator seeded with
    /// <paramref name="seed"/>, trained together as <see cref="TrainBeads"/> does until each one's evaluation MAE is at or
    /// below <paramref name="target"/>. Result i is the i-th initialisation's.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is not positive.</exception>
    /// <exception cref="ArgumentException"><paramref name="target"/> is not finite.</exception>
    public IReadOnlyList<BeadTraining> TrainEndpoints(int count, ulong seed, double target, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (count < 1)
            throw new ArgumentOutOfRangeException(nameof(count), count, "the number of endpoints to train must be at least 1.");
        if (!double.IsFinite(target))
            throw new ArgumentException($"the endpoint target must be a finite number; got {target}.", nameof(target));
        using var scope = NewDisposeScope();
        return Train(RandomInitialisations(count, seed), target, cancellation);
    }

    /// <summary>
    /// <paramref name="count"/> initialisations as rows of a new (count, <see cref="Dimension"/>) float64 matrix, from a
    /// generator seeded with <paramref name="seed"/> (what <see cref="TrainEndpoints"/> starts from): weights U[−1, 1], then
    /// (with biases) biases N(0, 1), as the authors' <c>random_uniform</c> and <c>random_normal</c>.
    /// </summary>
    public Tensor RandomInitialisations(int count, ulong seed)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (count < 1)
            throw new ArgumentOutOfRangeException(nameof(count), count, "the number of initialisations must be at least 1.");
        using var generator = new Generator(seed);
        using var scope = NewDisposeScope();
        var weights = rand([count, WeightCount], ScalarType.Float64, CPU, generator: generator).Scale_(2).Shift_(-1);
        var points = Options.HasBiases
            ? cat([weights, randn([count, BiasCount], ScalarType.Float64, CPU, generator: generator)], 1)
            : weights;
        return points.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The full-batch MAE on the training sample at <paramref name="point"/> and its gradient (a new float64 vector): the
    /// authors train full batch, so this "stochastic" gradient is exact.
    /// </summary>
    public (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point)
    {
        using var scope = NewDisposeScope();
        var batch = AsBatch([point], nameof(point));
        var (losses, gradient) = LossesAndGradients(batch);
        return (losses.item<double>(), gradient[0].clone().MoveToOuterDisposeScope());
    }

    /// <summary>Frees the samples and the weight mask.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        weightMask?.Dispose();
        trainX.Dispose();
        trainY.Dispose();
        evaluationX.Dispose();
        evaluationY.Dispose();
    }

    private (Tensor X, Tensor Y) Sample(int count, ulong seed)
    {
        using var generator = new Generator(seed);
        using var scope = NewDisposeScope();
        var x = rand([count], ScalarType.Float64, CPU, generator: generator);
        var values = x.data<double>().ToArray();
        var y = tensor(values.Select(v => Polynomial(Options.Target, v)).ToArray(), ScalarType.Float64);
        // (1, N, 1): broadcasts against every point's (B, N, width) activations. Owned by the toy (freed by Dispose), not
        // by any dispose scope the constructor happens to run in.
        return (x.view(1, count, 1).DetachFromDisposeScope(), y.view(1, count, 1).DetachFromDisposeScope());
    }

    /// <summary>Checks the points and stacks them as a new (B, D) float64 CPU matrix (in the current dispose scope).</summary>
    private Tensor AsBatch(IReadOnlyList<Tensor> points, string argument)
    {
        for (var i = 0; i < points.Count; i++)
        {
            var p = points[i] ?? throw new ArgumentNullException(argument, $"point {i} is null.");
            if (p.dim() != 1 || p.shape[0] != dimension || !p.is_floating_point())
                throw new ArgumentException(
                    $"a point of this polynomial toy is a floating vector of {dimension} parameters; point {i} is {p.dtype} [{string.Join(", ", p.shape)}].", argument);
        }
        return stack(points.Select(p => p.to(ScalarType.Float64, CPU)).ToArray()).contiguous();
    }

    private static (Tensor W1, Tensor W2, Tensor W3) Weights(Tensor points)
    {
        var b = points.shape[0];
        return (points.narrow(1, 0, W2Offset).view(b, Input, Hidden1),
            points.narrow(1, W2Offset, W3Offset - W2Offset).view(b, Hidden1, Hidden2),
            points.narrow(1, W3Offset, WeightCount - W3Offset).view(b, Hidden2, Output));
    }

    /// <summary>The three biases as (B, 1, width) views, to broadcast over the samples.</summary>
    private static (Tensor B1, Tensor B2, Tensor B3) Biases(Tensor points)
    {
        var b = points.shape[0];
        return (points.narrow(1, B1Offset, Hidden1).view(b, 1, Hidden1),
            points.narrow(1, B2Offset, Hidden2).view(b, 1, Hidden2),
            points.narrow(1, B3Offset, Output).view(b, 1, Output));
    }

    /// <summary>Activations of the three layers, each (B, N, width).</summary>
    private (Tensor H1, Tensor H2, Tensor Out) Forward(Tensor points, Tensor x)
    {
        var (w1, w2, w3) = Weights(points);
        // The first layer has one input: x W1 is the outer product, a broadcast rather than a matrix product.
        var z1 = x.mul(w1);
        var biases = Options.HasBiases ? Biases(points) : default;
        if (Options.HasBiases) z1.Accumulate_(biases.B1);
        var h1 = z1.sigmoid_();
        var z2 = bmm(h1, w2);
        if (Options.HasBiases) z2.Accumulate_(biases.B2);
        var h2 = z2.sigmoid_();
        var output = bmm(h2, w3);
        if (Options.HasBiases) output.Accumulate_(biases.B3);
        if (Options.HasSigmoidOutput) output.sigmoid_();
        return (h1, h2, output);
    }

    private double[] MeanAbsoluteErrors(Tensor points, Tensor x, Tensor y)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (_, _, output) = Forward(points, x);
        return output.sub(y).abs_().mean([1, 2]).data<double>().ToArray();
    }

    /// <summary>Per point, the training MAE (B) and its gradient (B, D), in closed form.</summary>
    private (Tensor Losses, Tensor Gradients) LossesAndGradients(Tensor points)
    {
        using var noGrad = no_grad();
        var b = points.shape[0];
        var (_, w2, w3) = Weights(points);
        var (h1, h2, output) = Forward(points, trainX);
        var residual = output.sub(trainY);
        var losses = residual.abs().mean([1, 2]);
        // d/d(pre-activation) of mean |s(z) − y|: sign(r)/N · s'(z), with σ' = σ − σ² (and 1 for a linear output).
        var dz3 = residual.sign_().DivideBy_(Options.TrainingSamples);
        if (Options.HasSigmoidOutput) dz3.mul_(output.sub(output.square()));
        var g3 = bmm(h2.transpose(1, 2), dz3);                                       // (B, 4, 1)
        var dz2 = bmm(dz3, w3.transpose(1, 2)).mul_(h2.sub(h2.square()));            // (B, N, 4)
        var g2 = bmm(h1.transpose(1, 2), dz2);                                       // (B, 4, 4)
        var dz1 = bmm(dz2, w2.transpose(1, 2)).mul_(h1.sub(h1.square()));            // (B, N, 4)
        // Bias gradients before dz1 is overwritten: the sums of the pre-activation gradients over the samples.
        Tensor[] biasGradients = Options.HasBiases ? [dz1.sum(1), dz2.sum(1), dz3.sum(1)] : [];
        var g1 = dz1.mul_(trainX).sum(1);                                            // (B, 4)
        return (losses, cat([g1, g2.view(b, Hidden1 * Hidden2), g3.view(b, Hidden2 * Output), .. biasGradients], 1));
    }

    /// <summary>The batched training loop behind <see cref="TrainBeads"/> and <see cref="TrainEndpoints"/>.</summary>
    private BeadTraining[] Train(Tensor starts, double target, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        var count = (int)starts.shape[0];
        var results = new BeadTraining[count];
        // Rows of the batch still training, and which start each one is.
        var points = starts.clone();
        var firstMoment = zeros_like(points);
        var secondMoment = zeros_like(points);
        var owners = Enumerable.Range(0, count).ToArray();
        long steps = 0;
        var o = Options;
        while (true)
        {
            var losses = MeanAbsoluteErrors(points, evaluationX, evaluationY);
            var outOfBudget = steps >= o.MaxSteps;
            var keep = new List<long>(owners.Length);
            for (var row = 0; row < owners.Length; row++)
            {
                var reached = losses[row] <= target;
                // A finished point goes into the caller's dispose scope (if any), as ModuleProblem's do; the caller owns it.
                if (reached || outOfBudget)
                    results[owners[row]] = new BeadTraining(points[row].clone().MoveToOuterDisposeScope(), new PointMeasure(losses[row]), reached, steps);
                else
                    keep.Add(row);
            }
            if (keep.Count == 0) return results;
            if (keep.Count < owners.Length)
            {
                using var rows = tensor(keep.ToArray(), ScalarType.Int64);
                (points, firstMoment, secondMoment) = (Rows(points), Rows(firstMoment), Rows(secondMoment));
                Tensor Rows(Tensor all)
                {
                    var kept = all.index_select(0, rows);
                    all.Dispose();
                    return kept;
                }
                owners = keep.Select(row => owners[(int)row]).ToArray();
            }
            var stop = Math.Min(o.MaxSteps, steps + o.CheckEvery);
            while (steps < stop)
            {
                cancellation.ThrowIfCancellationRequested();
                steps++;
                using var stepScope = NewDisposeScope();
                var (_, gradients) = LossesAndGradients(points);
                firstMoment.Scale_(o.Beta1).AddScaled_(gradients, 1 - o.Beta1);
                secondMoment.Scale_(o.Beta2).AddMultiplied_(gradients, gradients, 1 - o.Beta2);
                var stepSize = o.LearningRate * Math.Sqrt(1 - Math.Pow(o.Beta2, steps)) / (1 - Math.Pow(o.Beta1, steps));
                points.AddDivided_(firstMoment, secondMoment.sqrt().Shift_(o.Epsilon), -stepSize);
            }
        }
    }
}
