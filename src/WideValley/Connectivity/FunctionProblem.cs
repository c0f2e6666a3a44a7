using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>How <see cref="FunctionProblem"/> trains a bead.</summary>
public enum BeadOptimizer
{
    /// <summary>Plain gradient descent: w ← w − η·∇f(w).</summary>
    GradientDescent,
    /// <summary>Adam (Kingma &amp; Ba) with bias correction, β₁ = 0.9, β₂ = 0.999, ε = 1e-8.</summary>
    Adam,
}

/// <summary>How <see cref="FunctionProblem"/> trains beads.</summary>
public sealed record FunctionProblemOptions
{
    /// <summary>The optimiser (default gradient descent).</summary>
    public BeadOptimizer Optimizer { get; init; } = BeadOptimizer.GradientDescent;
    /// <summary>Step size η (default 0.1).</summary>
    public double StepSize { get; init; } = 0.1;
    /// <summary>Step budget per bead (default 10,000); a bead still above its target then is reported as not reached.</summary>
    public long MaxSteps { get; init; } = 10_000;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentException($"Optimizer: unknown optimiser {Optimizer}", nameof(Optimizer));
        if (!(StepSize > 0) || !double.IsFinite(StepSize))
            throw new ArgumentException($"StepSize must be positive and finite, got {StepSize}", nameof(StepSize));
        if (MaxSteps < 0) throw new ArgumentException($"MaxSteps must be zero or positive, got {MaxSteps}", nameof(MaxSteps));
    }
}

/// <summary>
/// An <see cref="IConnectivityProblem"/> made of a differentiable scalar function f of the flat parameter vector
/// (built from torch ops; gradients by autograd): <see cref="Measure"/> is f (the loss; no error or perplexity),
/// <see cref="TrainBead"/> runs gradient descent or Adam until f ≤ target or the step budget is spent, and
/// <see cref="StochasticLossAndGradient"/> is the exact f and ∇f. For exploring toy landscapes and for tests.
/// Deterministic, so path searches on it resume exactly.
/// </summary>
public sealed class FunctionProblem : IConnectivityProblem
{
    readonly Func<Tensor, Tensor> _function;
    readonly FunctionProblemOptions _options;

    /// <summary>A problem on vectors of length <paramref name="dimension"/>.</summary>
    /// <param name="function">f: a vector of length <paramref name="dimension"/> to a scalar (0-dim or one element) tensor, differentiable by autograd.</param>
    /// <param name="dimension">Length of the parameter vectors.</param>
    /// <param name="options">How beads are trained (defaults when null).</param>
    /// <param name="weightMask">1 for entries that are weights, 0 for biases (null: all weights); kept by reference.</param>
    /// <param name="dtype">Element type of the vectors (default float64).</param>
    /// <param name="device">Device (default CPU).</param>
    public FunctionProblem(Func<Tensor, Tensor> function, long dimension, FunctionProblemOptions? options = null,
        Tensor? weightMask = null, ScalarType dtype = ScalarType.Float64, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        if (dimension <= 0) throw new ArgumentException($"dimension must be positive, got {dimension}", nameof(dimension));
        _options = options ?? new FunctionProblemOptions();
        _options.Validate();
        if (weightMask is not null && weightMask.numel() != dimension)
            throw new ArgumentException($"the weight mask has {weightMask.numel()} entries, the dimension is {dimension}", nameof(weightMask));
        _function = function;
        Dimension = dimension;
        Dtype = dtype;
        Device = device ?? CPU;
        WeightMask = weightMask;
    }

    /// <inheritdoc/>
    public long Dimension { get; }
    /// <inheritdoc/>
    public ScalarType Dtype { get; }
    /// <inheritdoc/>
    public Device Device { get; }
    /// <inheritdoc/>
    public Tensor? WeightMask { get; }

    /// <summary>
    /// Measures handed out: calls of <see cref="Measure"/> plus the final measure of each <see cref="TrainBead"/> (for
    /// checking that callers cache instead of measuring a point twice).
    /// </summary>
    public long MeasureCount { get; private set; }

    /// <summary>Gradient steps taken by <see cref="TrainBead"/> over the problem's life.</summary>
    public long TrainingSteps { get; private set; }

    /// <summary>f at <paramref name="point"/> as a double.</summary>
    public double Value(Tensor point)
    {
        Require(point);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return _function(point).ToDouble();
    }

    /// <inheritdoc/>
    public PointMeasure Measure(Tensor point)
    {
        MeasureCount++;
        return new PointMeasure(Value(point));
    }

    /// <inheritdoc/>
    public BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default)
    {
        Require(start);
        if (metric != LevelMetric.Loss)
            throw new InvalidOperationException($"a FunctionProblem measures only the loss, not {metric}");
        var w = start.detach().clone().DetachFromDisposeScope();
        Tensor? firstMoment = null, secondMoment = null;
        try
        {
            long steps = 0;
            while (true)
            {
                cancellation.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var leaf = w.detach().requires_grad_(true);
                var value = _function(leaf);
                var loss = value.ToDouble();
                if (loss <= target || steps >= _options.MaxSteps || !double.IsFinite(loss))
                {
                    MeasureCount++;
                    var reached = loss <= target;
                    return new BeadTraining(w, new PointMeasure(loss), reached, steps);
                }
                var gradient = autograd.grad([value], [leaf])[0];
                using (no_grad())
                {
                    if (_options.Optimizer == BeadOptimizer.GradientDescent)
                        w.AddScaled_(gradient, -_options.StepSize);
                    else
                    {
                        firstMoment ??= zeros_like(w).DetachFromDisposeScope();
                        secondMoment ??= zeros_like(w).DetachFromDisposeScope();
                        AdamStep(w, gradient, firstMoment, secondMoment, steps + 1);
                    }
                }
                steps++;
                TrainingSteps++;
            }
        }
        catch
        {
            w.Dispose();
            throw;
        }
        finally
        {
            firstMoment?.Dispose();
            secondMoment?.Dispose();
        }
    }

    void AdamStep(Tensor w, Tensor gradient, Tensor m, Tensor v, long step)
    {
        const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;
        m.Scale_(Beta1).AddScaled_(gradient, 1 - Beta1);
        v.Scale_(Beta2).AddMultiplied_(gradient, gradient, 1 - Beta2);
        var correction1 = 1 - Math.Pow(Beta1, step);
        var correction2 = 1 - Math.Pow(Beta2, step);
        var denominator = v.div(correction2).sqrt_().Shift_(Epsilon);
        w.AddDivided_(m, denominator, -_options.StepSize / correction1);
    }

    /// <inheritdoc/>
    public (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point)
    {
        Require(point);
        using var scope = NewDisposeScope();
        var leaf = point.detach().clone().requires_grad_(true);
        var value = _function(leaf);
        var gradient = autograd.grad([value], [leaf])[0];
        return (value.ToDouble(), gradient.detach().clone().MoveToOuterDisposeScope());
    }

    void Require(Tensor point)
    {
        ArgumentNullException.ThrowIfNull(point);
        if (point.numel() != Dimension)
            throw new ArgumentException($"a point of this problem has {Dimension} entries, got {point.numel()}", nameof(point));
    }
}
