using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;

namespace WideValley.Tests.Landscape;

public sealed class LanczosTests
{
    [Fact]
    public void FindsAlgebraicExtremesOfAMatrixWithKnownSpectrumNotTheLargestMagnitude()
    {
        // The most negative eigenvalue (-50) has the largest magnitude: power iteration would return it as "largest".
        var eigenvalues = Enumerable.Range(0, 150).Select(i => Math.Sin(i) * 2).Concat([-50, -20, 7, 9, 12]).ToArray();
        using var m = MatrixWithSpectrum(eigenvalues);
        Func<Tensor, Tensor> op = v => m.mv(v);
        var top = Lanczos.Run(op, m.shape[0], 3, SpectrumEnd.Largest, new LanczosOptions { Seed = 1, ComputeEigenvectors = true });
        var bottom = Lanczos.Run(op, m.shape[0], 2, SpectrumEnd.Smallest, new LanczosOptions { Seed = 1 });
        Assert.True(top.Converged && bottom.Converged);
        Assert.Equal(new[] { 12.0, 9, 7 }, top.Eigenvalues, (a, b) => Math.Abs(a - b) < 1e-9);
        Assert.Equal(new[] { -50.0, -20 }, bottom.Eigenvalues, (a, b) => Math.Abs(a - b) < 1e-9);
        using var vectors = top.Eigenvectors!;
        for (var i = 0; i < 3; i++)
        {
            using var v = vectors[.., i].contiguous();
            using var residual = m.mv(v).sub(v.mul(tensor(top.Eigenvalues[i], ScalarType.Float64)));
            Assert.True(residual.norm().ToDouble() < 1e-6);
        }
        Assert.True(top.OperatorApplications < eigenvalues.Length, $"{top.OperatorApplications} products");
    }

    [Fact]
    public void MatrixWithRepeatedEigenvaluesIsHandledByRestartsAndTheFullDimension()
    {
        // Only three distinct eigenvalues: the Krylov space is invariant after three steps.
        var eigenvalues = Enumerable.Repeat(1.0, 10).Concat(Enumerable.Repeat(-2.0, 5)).Concat([3.0]).ToArray();
        using var m = MatrixWithSpectrum(eigenvalues);
        var result = Lanczos.Run(v => m.mv(v), 16, 4, SpectrumEnd.Largest, new LanczosOptions { Seed = 5 });
        Assert.Equal(new[] { 3.0, 1, 1, 1 }, result.Eigenvalues, (a, b) => Math.Abs(a - b) < 1e-9);
    }

    [Fact]
    public void ExtremeEigenvaluesOfATwoThousandParameterNetworkMatchDenseEigvalsh()
    {
        // 20-64-10 tanh network: 1,994 parameters, float64.
        var model = TanhNet(inputs: 20, hidden: 64, outputs: 10, seed: 12);
        var data = RandomSet([64, 64], inputs: 20, classes: 10, seed: 13);
        using var hvp = new Hvp(model, data);
        Assert.Equal(1994, hvp.Dimension);
        using var dense = Dense(hvp);
        using var exact = ExactHessian.Eigenvalues(dense);
        var all = exact.data<double>().ToArray();
        var before = hvp.HvpCount;
        var top = Lanczos.Run(hvp, 5, SpectrumEnd.Largest, new LanczosOptions { Seed = 3, Tolerance = 1e-10 });
        var bottom = Lanczos.Run(hvp, 2, SpectrumEnd.Smallest, new LanczosOptions { Seed = 3, Tolerance = 1e-10 });
        Assert.Equal(top.OperatorApplications + bottom.OperatorApplications, hvp.HvpCount - before);
        for (var i = 0; i < 5; i++)
        {
            var expected = all[^(i + 1)];
            Assert.True(Math.Abs(top.Eigenvalues[i] - expected) <= 1e-6 * Math.Abs(expected), $"top {i}: {top.Eigenvalues[i]} vs {expected}");
        }
        for (var i = 0; i < 2; i++)
        {
            var expected = all[i];
            Assert.True(Math.Abs(bottom.Eigenvalues[i] - expected) <= 1e-6 * Math.Abs(expected), $"bottom {i}: {bottom.Eigenvalues[i]} vs {expected}");
        }
    }

    [Fact]
    public void ErrorBoundRuleStopsEarlierAndItsBoundsHoldOnAKnownSpectrum()
    {
        // A Hessian-like spectrum: a bulk near zero, a few negative values and a long right tail.
        var rng = new Random(21);
        var spectrum = Enumerable.Range(0, 400).Select(_ => 1e-3 * (rng.NextDouble() - 0.3))
            .Concat(Enumerable.Range(0, 40).Select(i => 0.5 + 40.0 * Math.Pow(0.9, i))).Concat([-0.4, -0.2]).ToArray();
        using var m = MatrixWithSpectrum(spectrum, seed: 5);
        var sorted = spectrum.OrderByDescending(x => x).ToArray();
        const double tolerance = 1e-6;
        var residualRule = Lanczos.Run(v => m.mv(v), spectrum.Length, 10, options: new LanczosOptions { Seed = 2, Tolerance = tolerance });
        var boundRule = Lanczos.Run(v => m.mv(v), spectrum.Length, 10,
            options: new LanczosOptions { Seed = 2, Tolerance = tolerance, StoppingRule = LanczosStoppingRule.ErrorBound });
        Assert.True(residualRule.Converged && boundRule.Converged);
        Assert.True(boundRule.Iterations < residualRule.Iterations, $"{boundRule.Iterations} vs {residualRule.Iterations}");
        for (var i = 0; i < 10; i++)
        {
            var error = Math.Abs(boundRule.Eigenvalues[i] - sorted[i]);
            Assert.True(error <= boundRule.ErrorBounds[i] * (1 + 1e-6) + 1e-12, $"{i}: error {error:E2} above its bound {boundRule.ErrorBounds[i]:E2}");
            Assert.True(error <= tolerance * sorted[0], $"{i}: error {error:E2}");
            Assert.True(boundRule.ErrorBounds[i] <= boundRule.Residuals[i]);
        }
        // small-LeNet's shape: one outlier far above everything, a bulk at zero, a short negative tail. Two steps give
        // one Ritz value near the outlier and one in the bulk with a huge gap between them, which must not pass for
        // convergence of the most negative eigenvalue.
        var shaped = Enumerable.Range(0, 300).Select(_ => 1e-6 * (rng.NextDouble() - 0.5))
            .Concat(Enumerable.Range(0, 30).Select(i => -0.27 * Math.Pow(0.85, i))).Concat([156.0, 22.7, 11.8]).ToArray();
        using var h = MatrixWithSpectrum(shaped, seed: 6);
        var bottom = Lanczos.Run(v => h.mv(v), shaped.Length, 1, SpectrumEnd.Smallest,
            new LanczosOptions { Seed = 2, Tolerance = tolerance, StoppingRule = LanczosStoppingRule.ErrorBound });
        Assert.True(bottom.Converged);
        Assert.True(Math.Abs(bottom.Eigenvalues[0] - (-0.27)) <= tolerance * 156, $"{bottom.Eigenvalues[0]} after {bottom.Iterations} steps");
    }

    [Fact]
    public void KLargerThanTheDimensionIsRefusedClearlyAndSeedsReproduce()
    {
        using var m = MatrixWithSpectrum([1, 2, 3]);
        var e = Assert.Throws<ArgumentException>(() => Lanczos.Run(v => m.mv(v), 3, 5));
        Assert.Contains("k = 5", e.Message);
        Assert.Contains("n = 3", e.Message);
        using var big = MatrixWithSpectrum(Enumerable.Range(0, 60).Select(i => (double)i).ToArray());
        var a = Lanczos.Run(v => big.mv(v), 60, 2, options: new LanczosOptions { Seed = 7, MaxIterations = 10 });
        var b = Lanczos.Run(v => big.mv(v), 60, 2, options: new LanczosOptions { Seed = 7, MaxIterations = 10 });
        Assert.Equal(a.Eigenvalues, b.Eigenvalues);
        Assert.False(a.Converged);
        Assert.Equal(10, a.Iterations);
    }
}
