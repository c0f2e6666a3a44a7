using TorchSharp;
using WideValley.DeepLinear;
using static TorchSharp.torch;

namespace WideValley.Tests.DeepLinear;

/// <summary>
/// The batched deep linear networks against float64 references: the closed-form gradient against autograd (with and
/// without weight and activation multipliers), the loss against 1/2 tr((W - A) Sigma (W - A)^T), the balanced start,
/// and convergence to the teacher from a full-rank balanced start.
/// </summary>
public sealed class DeepLinearNetworksTests
{
    static readonly int[] OddWidths = [3, 5, 4, 6, 2];

    static DeepLinearNetworks RandomNetworks(int m, int[] widths, long seed)
    {
        var nets = new DeepLinearNetworks(m, widths, ScalarType.Float64);
        for (var i = 0; i < m; i++) DeepLinearInit.Standard(nets, i, seed + i);
        return nets;
    }

    static double MaxAbs(Tensor t) => t.abs().max().ToDouble();

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, false)]
    [InlineData(false, true, false)]
    [InlineData(true, true, true)]
    public void ClosedFormGradientMatchesAutogradInFloat64(bool weightNoise, bool activationNoise, bool sharedInputs)
    {
        const int m = 3, n = 7;
        using var scope = NewDisposeScope();
        using var nets = RandomNetworks(m, OddWidths, 11);
        using var g = new Generator(5);
        var x = sharedInputs ? randn([OddWidths[0], n], ScalarType.Float64, generator: g) : randn([m, OddWidths[0], n], ScalarType.Float64, generator: g);
        var y = randn([m, OddWidths[^1], n], ScalarType.Float64, generator: g);
        var weights = weightNoise ? randn([m, nets.ParametersPerNetwork], ScalarType.Float64, generator: g).mul(0.3).add(1) : null;
        Tensor[]? activations = activationNoise
            ? Enumerable.Range(1, nets.Depth - 1).Select(l => randn([m, OddWidths[l], n], ScalarType.Float64, generator: g).mul(0.3).add(1)).ToArray()
            : null;

        var losses = nets.ComputeGradient(x, y, weights, activations);

        var leaf = nets.Parameters.detach().clone().requires_grad_(true);
        var reference = nets.Losses(leaf, x, y, weights, activations);
        reference.sum().backward();
        var scale = MaxAbs(leaf.grad!);
        Assert.True(scale > 1e-3, "the reference gradient is degenerate");
        Assert.True(MaxAbs(nets.Gradient.sub(leaf.grad!)) <= 1e-12 * scale, $"closed form and autograd differ by {MaxAbs(nets.Gradient.sub(leaf.grad!)):G3}");
        Assert.True(MaxAbs(losses.sub(reference.detach())) <= 1e-12 * MaxAbs(reference), "the losses differ");
    }

    [Fact]
    public void CleanLossIsHalfTheSigmaWeightedDistanceToTheTeacher()
    {
        using var scope = NewDisposeScope();
        using var problem = LinearRegressionProblem.Create(5, 4, [2.0, 1.0, 0.5], 40, InputDistribution.Gaussian, maxRank: 4, seed: 3);
        using var nets = RandomNetworks(2, [5, 6, 6, 4], 2);
        var losses = nets.ComputeGradient(problem.Inputs, problem.Targets).data<double>().ToArray();
        using var product = nets.Product();
        for (var i = 0; i < 2; i++)
        {
            var w = product[i];
            var d = w.sub(problem.Teacher);
            var expected = 0.5 * d.mm(problem.InputCovariance).mm(d.t()).trace().ToDouble();
            Assert.Equal(expected, losses[i], 1e-12);
            Assert.Equal(expected, problem.Loss(w), 1e-12);
        }
    }

    [Fact]
    public void ProductIsTheChainOfLayers()
    {
        using var scope = NewDisposeScope();
        using var nets = RandomNetworks(2, OddWidths, 4);
        using var product = nets.Product();
        for (var i = 0; i < 2; i++)
        {
            var expected = nets.Layer(1)[i];
            for (var l = 2; l <= nets.Depth; l++) expected = nets.Layer(l)[i].mm(expected);
            Assert.True(MaxAbs(product[i].sub(expected)) < 1e-14);
        }
        Assert.Equal([2L, OddWidths[^1], OddWidths[0]], product.shape);
    }

    [Fact]
    public void BalancedStartIsBalancedAndHasTheRequestedProduct()
    {
        using var scope = NewDisposeScope();
        int[] widths = [4, 6, 5, 3];
        using var nets = new DeepLinearNetworks(1, widths, ScalarType.Float64);
        using var g = new Generator(9);
        var target = randn([3, 4], ScalarType.Float64, generator: g);
        DeepLinearInit.Balanced(nets, 0, target, seed: 1);
        using var product = nets.Product();
        Assert.True(MaxAbs(product[0].sub(target)) < 1e-12);
        for (var l = 1; l < nets.Depth; l++)
        {
            var lower = nets.Layer(l)[0];
            var upper = nets.Layer(l + 1)[0];
            Assert.True(MaxAbs(upper.t().mm(upper).sub(lower.mm(lower.t()))) < 1e-12, $"layers {l} and {l + 1} are not balanced");
        }
    }

    [Fact]
    public void FullRankBalancedStartAtSmallStepConvergesToTheTeacher()
    {
        using var scope = NewDisposeScope();
        const int d = 4;
        using var problem = LinearRegressionProblem.Create(d, d, [2.0, 1.5, 1.0, 0.8], 64, InputDistribution.Whitened, maxRank: d, seed: 7);
        using var nets = new DeepLinearNetworks(1, [d, d, d, d], ScalarType.Float64);
        // A start inside Arora et al.'s deficiency margin: ||W(0) - A|| = 0.2 sigma_min(A) (full rank, balanced).
        using var g = new Generator(2);
        var direction = randn([d, d], ScalarType.Float64, generator: g);
        var start = problem.Teacher.add(direction.mul(0.2 * 0.8 / direction.norm().ToDouble()));
        DeepLinearInit.Balanced(nets, 0, start, seed: 3);
        using var training = new DeepLinearTraining(nets, [problem], [0], [DeepLinearNoise.None], learningRate: 0.02, noiseSeed: 1);
        var before = training.Measure()[0];
        Assert.Equal(d, before.Rank);
        for (var t = 0; t < 3000; t++) training.Step();
        var after = training.Measure()[0];
        Assert.True(after.DistanceToOptimum < 1e-8, $"||W - A||_F = {after.DistanceToOptimum:G3} after 3000 steps (from {before.DistanceToOptimum:G3})");
        Assert.Equal(0, problem.OptimalLoss);
        Assert.Equal(d, after.Rank);
        Assert.All(after.LayerRanks, r => Assert.Equal(d, r));
    }

    [Fact]
    public void DivergedNetworksAreReportedWithoutStoppingTheOthers()
    {
        using var scope = NewDisposeScope();
        using var problem = LinearRegressionProblem.Create(4, 4, [1.0, 0.5], 16, InputDistribution.Whitened, 4, seed: 1);
        using var nets = RandomNetworks(3, [4, 4, 4, 4], 1);
        using (no_grad())
        {
            nets.Layer(2)[0].fill_(double.NaN);
            // Finite weights whose product overflows float64.
            for (var l = 1; l <= nets.Depth; l++) nets.Layer(l)[2].fill_(1e120);
        }
        using var training = new DeepLinearTraining(nets, [problem], [0, 0, 0], [DeepLinearNoise.None, DeepLinearNoise.None, DeepLinearNoise.None], 0.01, 1);
        var measured = training.Measure();
        Assert.True(measured[0].Diverged);
        Assert.True(measured[2].Diverged);
        Assert.True(double.IsNaN(measured[0].Loss));
        Assert.False(measured[1].Diverged);
        using var product = nets.Product();
        Assert.Equal(problem.Loss(product[1]), measured[1].Loss, 1e-12);
        Assert.Equal(4, measured[1].Rank);
    }

    [Fact]
    public void BadShapesAreRefusedWithTheExpectedShape()
    {
        using var scope = NewDisposeScope();
        using var nets = new DeepLinearNetworks(2, [3, 4, 2]);
        var e = Assert.Throws<ArgumentException>(() => nets.ComputeGradient(zeros(4, 5), zeros(2, 5)));
        Assert.Contains("[3, N]", e.Message);
        e = Assert.Throws<ArgumentException>(() => nets.ComputeGradient(zeros(3, 5), zeros(2, 6)));
        Assert.Contains("[2, 5]", e.Message);
        Assert.Throws<ArgumentException>(() => new DeepLinearNetworks(1, [3]));
        Assert.Throws<ArgumentException>(() => DeepLinearInit.RankDeficient(nets, 0, 1, rank: 5));
    }
}
