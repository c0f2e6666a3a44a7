using WideValley.Connectivity;
using static TorchSharp.torch;
using static WideValley.Tests.Connectivity.ConnectivityToys;

namespace WideValley.Tests.Connectivity;

/// <summary>The searches on a metric other than the loss, through a problem that also measures an error.</summary>
public sealed class LevelMetricTests
{
    /// <summary>A <see cref="FunctionProblem"/> that also reports an "error" of 200·f percent (a stand-in for a classifier's).</summary>
    sealed class WithError(FunctionProblem inner) : IConnectivityProblem
    {
        public long Dimension => inner.Dimension;
        public ScalarType Dtype => inner.Dtype;
        public Device Device => inner.Device;
        public Tensor? WeightMask => inner.WeightMask;

        static PointMeasure WithErrorOf(PointMeasure m) => new(m.Loss, ErrorPercent: 200 * m.Loss);

        public PointMeasure Measure(Tensor point) => WithErrorOf(inner.Measure(point));

        public BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default)
        {
            var loss = metric == LevelMetric.ErrorPercent ? target / 200 : target;
            var result = inner.TrainBead(start, LevelMetric.Loss, loss, cancellation);
            return result with { Measure = WithErrorOf(result.Measure) };
        }

        public (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point) => inner.StochasticLossAndGradient(point);
    }

    [Fact]
    public void StringSamplingOnTheErrorMatchesTheSameSearchOnTheLoss()
    {
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        using var onLoss = DynamicStringSampling.Run(Ring(), a, b, new StringSamplingOptions { Level = 1e-3 });
        using var onError = DynamicStringSampling.Run(new WithError(Ring()), a, b,
            new StringSamplingOptions { Level = 200 * 1e-3, Metric = LevelMetric.ErrorPercent });
        Assert.True(onError.Connected);
        Assert.Equal(onLoss.BeadCount, onError.BeadCount);
        Assert.Equal(onLoss.Lengths, onError.Lengths);
        Assert.Equal(200 * onLoss.MaxAlongPath, onError.MaxAlongPath, 1e-12);
        Assert.Equal(LevelMetric.ErrorPercent, onError.Metric);
    }

    [Fact]
    public void AMetricTheProblemDoesNotMeasureIsAClearErrorBeforeAnyWork()
    {
        var problem = Ring();
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var error = Assert.Throws<InvalidOperationException>(() =>
            DynamicStringSampling.Run(problem, a, b, new StringSamplingOptions { Level = 1, Metric = LevelMetric.Perplexity }));
        Assert.Contains("no perplexity", error.Message);
        Assert.Equal(0, problem.TrainingSteps);
    }

    [Fact]
    public void ACurveBarrierIsGivenForEveryMeasuredMetric()
    {
        var problem = new WithError(Bowl([0, 0.5]));
        using var a = Vector(1, 0);
        using var b = Vector(-1, 0);
        using var straight = ConnectivityCurve.Straight(CurveKind.PolyChain, a, b, 1);
        var evaluation = CurveTraining.Evaluate(problem, straight, evaluationPoints: 5);
        // Along the segment f(x, 0) = x² + 0.25: 1.25 at the endpoints, 0.25 at t = ½, so the barrier is
        // max − mean = 1.25 − 1.25 = 0 for the loss and the error alike; the measures are at t = 0, ¼, ½, ¾, 1.
        Assert.Equal([0, 0.25, 0.5, 0.75, 1], evaluation.T);
        Assert.Equal([1.25, 0.5, 0.25, 0.5, 1.25], evaluation.Measures.Select(m => m.Loss));
        Assert.Equal(0, evaluation.Barrier.Loss, 1e-15);
        Assert.Equal(0, evaluation.Barrier.ErrorPercent!.Value, 1e-13);
        Assert.Null(evaluation.Barrier.Perplexity);
        Assert.Equal(250, evaluation.Max(LevelMetric.ErrorPercent), 1e-12);
        // Through a middle point off the valley, (0, 2): the loss at t = ½ is 0 + 2.25 = 2.25, barrier 1.0, error 200.
        using var middle = Vector(0, 2).unsqueeze(0);
        using var bent = new ConnectivityCurve(CurveKind.PolyChain, a, b, middle);
        var bentEvaluation = CurveTraining.Evaluate(problem, bent, evaluationPoints: 5);
        Assert.Equal(1.0, bentEvaluation.Barrier.Loss, 1e-15);
        Assert.Equal(200.0, bentEvaluation.Barrier.ErrorPercent!.Value, 1e-12);
        Assert.Equal(2 * Math.Sqrt(5) / 2, bentEvaluation.NormalizedLength, 1e-12);
    }
}
