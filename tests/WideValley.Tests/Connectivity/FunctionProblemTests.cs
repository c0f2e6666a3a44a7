using WideValley.Connectivity;
using static TorchSharp.torch;
using static WideValley.Tests.Connectivity.ConnectivityToys;

namespace WideValley.Tests.Connectivity;

public sealed class FunctionProblemTests
{
    [Theory]
    [InlineData(BeadOptimizer.GradientDescent)]
    [InlineData(BeadOptimizer.Adam)]
    public void TrainBeadStopsAtTheFirstPointBelowTheTarget(BeadOptimizer optimizer)
    {
        var problem = Bowl([1, 2], new FunctionProblemOptions { Optimizer = optimizer, StepSize = 0.05 });
        using var start = Vector(3, -1);
        var result = problem.TrainBead(start, LevelMetric.Loss, 1e-3, TestContext.Current.CancellationToken);
        using var point = result.Point;
        Assert.True(result.Reached);
        Assert.True(result.Measure.Loss <= 1e-3);
        Assert.Equal(problem.Value(point), result.Measure.Loss);
        Assert.True(result.Steps > 0);
        Assert.Equal(result.Steps, problem.TrainingSteps);
        Assert.Equal(new[] { 3.0, -1 }, Values(start));
        if (optimizer == BeadOptimizer.GradientDescent)
        {
            // w − c shrinks by (1 − 2η) = 0.9 per step from ‖(2, −3)‖² = 13: the first k with 13·0.81^k ≤ 1e-3.
            var expected = (long)Math.Ceiling(Math.Log(1e-3 / 13) / Math.Log(0.81));
            Assert.Equal(expected, result.Steps);
        }
    }

    [Fact]
    public void ABeadAlreadyBelowTheTargetTakesNoStepAndABudgetCanRunOut()
    {
        var problem = Bowl([0, 0], new FunctionProblemOptions { StepSize = 0.01, MaxSteps = 5 });
        using var near = Vector(0.01, 0);
        var none = problem.TrainBead(near, LevelMetric.Loss, 1e-3, TestContext.Current.CancellationToken);
        none.Point.Dispose();
        Assert.Equal(0, none.Steps);
        Assert.True(none.Reached);
        using var far = Vector(10, 0);
        var spent = problem.TrainBead(far, LevelMetric.Loss, 1e-3, TestContext.Current.CancellationToken);
        spent.Point.Dispose();
        Assert.Equal(5, spent.Steps);
        Assert.False(spent.Reached);
        Assert.Equal(100 * Math.Pow(0.98, 10), spent.Measure.Loss, 1e-10);
        Assert.Throws<InvalidOperationException>(() => problem.TrainBead(far, LevelMetric.ErrorPercent, 1, TestContext.Current.CancellationToken));
    }

    [Fact]
    public void TheStochasticGradientIsTheExactGradient()
    {
        var problem = Bowl([1, -1, 0.5]);
        using var w = Vector(2, 0, -0.5);
        var (loss, gradient) = problem.StochasticLossAndGradient(w);
        using (gradient)
        {
            Assert.Equal(3.0, loss, 1e-15);
            Assert.Equal(new[] { 2.0, 2, -2 }, Values(gradient));
        }
        Assert.Null(problem.Measure(w).ErrorPercent);
        Assert.Contains("has 3 entries, got 2", Assert.Throws<ArgumentException>(() => problem.Measure(Vector(1, 2))).Message);
    }

    [Fact]
    public void BadSettingsAreRefusedByName()
    {
        Assert.Equal("StepSize", Assert.Throws<ArgumentException>(() => Bowl([0], new FunctionProblemOptions { StepSize = 0 })).ParamName);
        Assert.Equal("MaxSteps", Assert.Throws<ArgumentException>(() => Bowl([0], new FunctionProblemOptions { MaxSteps = -1 })).ParamName);
        Assert.Equal("dimension", Assert.Throws<ArgumentException>(() => new FunctionProblem(w => w.sum(), 0)).ParamName);
        Assert.Equal("weightMask", Assert.Throws<ArgumentException>(() => new FunctionProblem(w => w.sum(), 3, weightMask: ones(2))).ParamName);
    }
}
