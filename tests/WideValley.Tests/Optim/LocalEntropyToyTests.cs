using TorchSharp;
using WideValley.Landscape;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

/// <summary>Local entropy on a Fig. 2-style landscape, against exact quadrature.</summary>
public class LocalEntropyToyTests
{
    const double Temperature = 1;   // the paper's beta = 1: eps = sqrt(2 T) with the paper's noise scaling

    [Fact]
    public void QuadratureOfAGaussianWellHasTheClosedForm()
    {
        // f = a/2 (x' - c)^2: <x'> = (a c + gamma x) / (a + gamma), F = T log sqrt(2 pi T / (a + gamma)) - a gamma (x - c)^2 / (2 (a + gamma)).
        const double a = 3, c = 0.5, gamma = 2, x = -1, t = 0.7;
        var r = LocalEntropyQuadrature.Evaluate(v => a / 2 * (v - c) * (v - c), x, gamma, -15, 15, 60_001, t);
        Assert.Equal((a * c + gamma * x) / (a + gamma), r.GibbsMean, 9);
        Assert.Equal(t / (a + gamma), r.GibbsVariance, 9);
        Assert.Equal(t * Math.Log(Math.Sqrt(2 * Math.PI * t / (a + gamma))) - a * gamma * (x - c) * (x - c) / (2 * (a + gamma)), r.LocalEntropy, 8);
    }

    [Theory]
    [InlineData(LangevinKernel.FusedCpu, ScalarType.Float32)]
    [InlineData(LangevinKernel.TensorOps, ScalarType.Float64)]
    public void EstimatorGradientMatchesMinusDFdxByQuadrature(LangevinKernel kernel, ScalarType dtype)
    {
        double[] points = [0.5, 0.0, -0.5, -1.5];
        const int chains = 4096;
        const double gamma = 1;
        var starts = points.SelectMany(x => Enumerable.Repeat(x, chains)).ToArray();
        var toy = new TwoWellParticles(starts, dtype);
        // eta' * (largest curvature) = 0.002 * 67 = 0.13 keeps the Euler discretisation bias of the sharp well's
        // variance near 7%, which moves <x'> by well under 0.01 here. L * eta' = 16 time units is many relaxation times
        // 1/gamma and enough to cross the T-sized barrier; alpha * L = 12 leaves weight e^-12 on the starting point.
        var options = new LocalEntropyOptions
        {
            L = 8000, Scope = new ConstantScope(gamma), LangevinLr = 0.002, Noise = Math.Sqrt(2 * Temperature),
            Alpha = 0.0015, Kernel = kernel, Seed = 21,
        };
        using var estimator = new LocalEntropy([toy.X], options);
        estimator.Estimate(toy.Closure);
        using var g = (gamma * toy.X.grad!.to(ScalarType.Float64)).view(points.Length, chains);
        for (var j = 0; j < points.Length; j++)
        {
            var exact = LocalEntropyQuadrature.Evaluate(TwoWellParticles.F, points[j], gamma, -12, 12, 40_001, Temperature).NegativeGradient(points[j], gamma);
            using var row = g[j];
            var estimate = row.mean().ToDouble();
            var standardError = row.std().ToDouble() / Math.Sqrt(chains);
            // 4 standard errors (the chains are independent) plus 0.01 for the discretisation bias.
            Assert.True(Math.Abs(estimate - exact) < 4 * standardError + 0.01,
                $"x = {points[j]}: estimator {estimate:F4} +- {standardError:F4}, quadrature {exact:F4}");
        }
    }

    [Fact]
    public void EntropySgdEndsInTheWideValleyWhereSgdEndsInTheSharpOne()
    {
        const int runs = 128;
        const double start = 0.64;   // between the minima, inside the sharp well's basin (its watershed is at 0.52)
        // Local entropy at T = 1, gamma = 1 has its minimum in the wide valley (near -0.72):
        var best = Enumerable.Range(0, 301).Select(i => -2 + i * 0.01)
            .MinBy(x => -LocalEntropyQuadrature.Evaluate(TwoWellParticles.F, x, 1, -12, 12, 8001, Temperature).LocalEntropy);
        Assert.InRange(best, -0.9, -0.5);

        var sgdToy = new TwoWellParticles(Enumerable.Repeat(start, runs).ToArray(), ScalarType.Float32);
        using (var sgd = optim.SGD([sgdToy.X], 0.01))
            for (var s = 0; s < 2000; s++) sgd.step(sgdToy.Closure);
        var sgdEnd = sgdToy.X.data<float>().ToArray();
        Assert.All(sgdEnd, x => Assert.InRange(x, 0.99, 1.01));   // every SGD run falls into the sharp minimum

        var toy = new TwoWellParticles(Enumerable.Repeat(start, runs).ToArray(), ScalarType.Float32);
        var options = new LocalEntropyOptions
        {
            L = 3000, Scope = new ConstantScope(1), LangevinLr = 0.003, Noise = Math.Sqrt(2 * Temperature), Alpha = 0.003, Seed = 3,
        };
        using (var esgd = new EntropySgd([toy.X], lr: 0.2, options))
            for (var s = 0; s < 150; s++) esgd.step(toy.Closure);
        Assert.Equal(150 * 3000, toy.Calls);
        var end = toy.X.data<float>().ToArray();
        var inWideValley = end.Count(x => x < 0);
        // The outer iterate is a noisy descent on -F: it settles around -F's minimum with a spread of a few tenths,
        // so nearly all runs are on the wide side of the barrier (about 90% with this seed; 75% leaves a wide margin).
        Assert.True(inWideValley >= 0.75 * runs, $"{inWideValley} of {runs} Entropy-SGD runs ended in the wide valley");
        Assert.InRange(end.Average(), -0.9, -0.35);
        Assert.True(end.Count(x => Math.Abs(x - 1) < 0.3) < 0.1 * runs, "few runs may stay in the sharp well");
    }
}
