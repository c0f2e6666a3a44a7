using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>Which number of a <see cref="PointMeasure"/> defines the level set {θ : value(θ) ≤ L0}.</summary>
public enum LevelMetric
{
    /// <summary>The mean loss (the polynomial toys' mean absolute error, a classifier's cross-entropy).</summary>
    Loss,
    /// <summary>The classification error in percent.</summary>
    ErrorPercent,
    /// <summary>exp(mean token loss), for language models. Factors α and m apply to the perplexity itself.</summary>
    Perplexity,
}

/// <summary>The numbers measured at one parameter vector.</summary>
/// <param name="Loss">Mean loss over the problem's evaluation set.</param>
/// <param name="ErrorPercent">Classification error in percent; null when the problem has no classes (regression).</param>
/// <param name="Perplexity">exp(Loss) for language models; null otherwise.</param>
public readonly record struct PointMeasure(double Loss, double? ErrorPercent = null, double? Perplexity = null)
{
    /// <summary>The value of <paramref name="metric"/>.</summary>
    /// <exception cref="InvalidOperationException">The problem does not measure that metric.</exception>
    public double Value(LevelMetric metric) => metric switch
    {
        LevelMetric.Loss => Loss,
        LevelMetric.ErrorPercent => ErrorPercent ?? throw new InvalidOperationException("this problem measures no classification error (use the loss as the level metric)"),
        LevelMetric.Perplexity => Perplexity ?? throw new InvalidOperationException("this problem measures no perplexity (it is not a language model)"),
        _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown level metric"),
    };
}

/// <summary>How training one bead ended.</summary>
/// <param name="Point">The trained parameters (a new tensor owned by the caller).</param>
/// <param name="Measure">What the problem measures at <paramref name="Point"/>.</param>
/// <param name="Reached">Whether the level metric fell to the target within the problem's training budget.</param>
/// <param name="Steps">Optimisation steps taken.</param>
public sealed record BeadTraining(Tensor Point, PointMeasure Measure, bool Reached, long Steps);

/// <summary>
/// What a path search between two parameter vectors needs from a learning problem, on flat parameter vectors of
/// length <see cref="Dimension"/>: measure a point (the level set's function), train a point down to a level (a DSS
/// bead), and a stochastic gradient at a point (for training curves). Implemented for closed-form functions (tests,
/// toys) and for any model with an <see cref="Training.ITrainingTask"/>; the path algorithms know nothing else.
/// Points passed in are not modified or kept; returned tensors belong to the caller.
/// </summary>
public interface IConnectivityProblem
{
    /// <summary>Length of every parameter vector.</summary>
    long Dimension { get; }

    /// <summary>Element type and device of the parameter vectors.</summary>
    ScalarType Dtype { get; }

    /// <summary>Device of the parameter vectors.</summary>
    Device Device { get; }

    /// <summary>
    /// 1 for entries that count as weights in the weights-only normalised length (the authors' SpringNorm), 0 for
    /// biases and other parameters; null when every entry is a weight.
    /// </summary>
    Tensor? WeightMask { get; }

    /// <summary>Loss (and error or perplexity where defined) at <paramref name="point"/> on the evaluation set, deterministic.</summary>
    PointMeasure Measure(Tensor point);

    /// <summary>
    /// Trains from <paramref name="start"/> (unconstrained: no path term) until <paramref name="metric"/> is at or below
    /// <paramref name="target"/>, or the problem's training budget runs out.
    /// </summary>
    BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default);

    /// <summary>
    /// Whether <see cref="TrainBeads"/> trains beads together (faster than one by one). The string search then trains
    /// a depth's new beads in one call and checkpoints after it; otherwise it calls <see cref="TrainBead"/> per bead and
    /// checkpoints after each, which suits large models whose beads take minutes.
    /// </summary>
    bool TrainsBeadsTogether => false;

    /// <summary>
    /// Trains several beads to the same target, as <see cref="TrainBead"/> does each: the breadth-first search trains
    /// all new beads of a depth at once. The default trains them one after another; problems whose beads are small
    /// (the polynomial toys) override it to train them together as one batched computation.
    /// </summary>
    IReadOnlyList<BeadTraining> TrainBeads(IReadOnlyList<Tensor> starts, LevelMetric metric, double target, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(starts);
        var results = new List<BeadTraining>(starts.Count);
        foreach (var start in starts) results.Add(TrainBead(start, metric, target, cancellation));
        return results;
    }

    /// <summary>
    /// The training loss of the next minibatch at <paramref name="point"/> and its gradient with respect to the point
    /// (a new tensor of length <see cref="Dimension"/>), for stochastic training of curves between minima.
    /// </summary>
    (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point);
}
