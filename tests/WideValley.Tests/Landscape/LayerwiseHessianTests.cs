using TorchSharp;
using WideValley.Data;
using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Tests.Landscape;

/// <summary>
/// The layerwise Hessian (Sankar et al., AAAI 2021): the Lanczos density (authors' preset and ours) against exact
/// eigenvalues, the per-layer operator against the exact Hessian's diagonal block, and the similarity measures against
/// hand-computed values and closed forms.
/// </summary>
public class LayerwiseHessianTests
{
    /// <summary>A symmetric float64 matrix with the given eigenvalues and a seeded random orthogonal basis.</summary>
    static Tensor WithEigenvalues(double[] eigenvalues, long seed)
    {
        TorchRuntime.EnsureInitialized();
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed);
        var n = eigenvalues.Length;
        var (q, _) = linalg.qr(randn(n, n, ScalarType.Float64, generator: gen));
        var d = diag(tensor(eigenvalues, ScalarType.Float64));
        var a = q.matmul(d).matmul(q.T);
        return a.add(a.T).div(2).MoveToOuterDisposeScope();
    }

    /// <summary>300 eigenvalues: a bulk uniform on [0, 1] and three outliers, as a trained network's Hessian roughly has.</summary>
    static double[] BulkAndOutliers()
    {
        var values = Enumerable.Range(0, 297).Select(i => i / 296.0).ToList();
        values.AddRange([3.0, 4.0, 6.0]);
        return values.ToArray();
    }

    /// <summary>W1 between a density on its grid and the empirical distribution of exact eigenvalues (trapezoid CDF against step CDF).</summary>
    static double W1ToEigenvalues(SpectralDensity density, double[] eigenvalues)
    {
        var grid = density.Grid;
        var sorted = eigenvalues.Order().ToArray();
        var cdf = new double[grid.Length];
        for (var i = 1; i < grid.Length; i++) cdf[i] = cdf[i - 1] + 0.5 * (grid[i] - grid[i - 1]) * (density.Density[i - 1] + density.Density[i]);
        double w = 0;
        for (var i = 1; i < grid.Length; i++)
        {
            var mid = 0.5 * (grid[i] + grid[i - 1]);
            var empirical = sorted.Count(x => x <= mid) / (double)sorted.Length;
            w += (grid[i] - grid[i - 1]) * Math.Abs(0.5 * (cdf[i] + cdf[i - 1]) / cdf[^1] - empirical);
        }
        return w;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DensityIntegratesToOneAndMatchesTheExactSpectrum(bool authors)
    {
        var eigenvalues = BulkAndOutliers();
        using var matrix = WithEigenvalues(eigenvalues, seed: 11);
        using var op = new DenseOperator(matrix);
        // Many probes, so that the probe noise of the quadrature (about sqrt(2/n) per probe) is small against the tolerances.
        var options = (authors ? LanczosDensityOptions.Authors : LanczosDensityOptions.Default) with { Probes = 40, Seed = 3 };
        var result = LanczosDensity.Run(op, options);

        Assert.Equal(authors ? 64 + 40 * 128 : 40 * 128, result.OperatorApplications);
        Assert.All(result.Weights, w => Assert.Equal(1.0, w.Sum(), 10));
        Assert.True(result.LowerBound < 0 && result.UpperBound > 6, $"bounds [{result.LowerBound}, {result.UpperBound}] must hold the spectrum [0, 6]");
        var density = result.Density();
        Assert.Equal(1024, density.Grid.Length);
        Assert.Equal(1.0, density.Integral(), 3);
        // Moments (1/n) tr H^k, within 4 standard errors of the probe noise: a unit Gaussian probe's v^T f(H) v has
        // variance 2 Var(f(lambda)) / (n + 2) over the eigenvalues.
        var n = eigenvalues.Length;
        for (var k = 1; k <= 3; k++)
        {
            var powers = eigenvalues.Select(x => Math.Pow(x, k)).ToArray();
            var exact = powers.Average();
            var variance = powers.Average(x => (x - exact) * (x - exact));
            var standardError = Math.Sqrt(2 * variance / (n + 2) / options.Probes);
            var estimate = result.Quadrature(x => Math.Pow(x, k));
            Assert.True(Math.Abs(estimate - exact) < 4 * standardError, $"moment {k}: {estimate} against exact {exact} (standard error {standardError})");
            // The kernel only smooths: the density's moments are the quadrature's up to the kernel's own (sigma d)^2 terms.
            var smoothed = density.Integral(k);
            Assert.True(Math.Abs(smoothed - estimate) < 0.01 * estimate, $"smoothed moment {k}: {smoothed} against the quadrature's {estimate}");
        }
        // The whole distribution: W1 to the exact eigenvalues, small against the spectrum's width (6).
        var w1 = W1ToEigenvalues(density, eigenvalues);
        Assert.True(w1 < 0.02, $"W1 to the exact eigenvalues is {w1}");
        // The top eigenvalue is found.
        Assert.Equal(6.0, result.LargestNode, 4);
    }

    [Fact]
    public void OurDensityOnAFullKrylovSpaceHasTheExactEigenvaluesAsNodes()
    {
        // A tiny network's float64 Hessian: with reorthogonalisation and as many steps as parameters, the Ritz values are its eigenvalues.
        var model = LandscapeFixtures.TanhNet(inputs: 4, hidden: 3, outputs: 3);
        var data = LandscapeFixtures.RandomSet([10], inputs: 4);
        using var hvp = new Hvp(model, data);
        using var exact = ExactHessian.Compute(hvp);
        using var values = ExactHessian.Eigenvalues(exact.Hessian);
        var eigenvalues = values.data<double>().ToArray();
        var result = LanczosDensity.Run(hvp, LanczosDensityOptions.Default with { Iterations = (int)hvp.Dimension });
        var nodes = result.Nodes[0];
        Assert.Equal(eigenvalues.Length, nodes.Length);
        for (var i = 0; i < nodes.Length; i++) Assert.Equal(eigenvalues[i], nodes[i], 8);
        Assert.Equal(1.0, result.Weights[0].Sum(), 10);
    }

    [Fact]
    public void AuthorsBoundsWidenTheExtremeRitzValuesByTheirResidualsAndTheMargin()
    {
        var eigenvalues = BulkAndOutliers();
        using var matrix = WithEigenvalues(eigenvalues, seed: 5);
        using var op = new DenseOperator(matrix);
        var result = LanczosDensity.Run(op, LanczosDensityOptions.Authors);
        // 64 steps find both ends to far better than the 5% margin: lb ~ 0 - 0.3, ub ~ 6 + 0.3.
        Assert.Equal(-0.05 * 6, result.LowerBound, 2);
        Assert.Equal(6 + 0.05 * 6, result.UpperBound, 2);
        // sigma = (2 / 127) / sqrt(8 ln 1.25), cut at sigma sqrt(-2 ln 1e-8).
        var sigma = 2.0 / 127 / Math.Sqrt(8 * Math.Log(1.25));
        Assert.Equal(sigma, result.NormalizedSigma, 12);
        Assert.Equal(sigma * Math.Sqrt(-2 * Math.Log(1e-8)), result.NormalizedCutoff, 12);
        Assert.False(result.Reorthogonalized);
    }

    [Fact]
    public void LayerOperatorIsTheDiagonalBlockOfTheExactHessian()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(7);
        var model = nn.Sequential(("fc1", nn.Linear(4, 5)), ("bn", nn.BatchNorm1d(5)), ("act", nn.Tanh()), ("fc2", nn.Linear(5, 3)));
        model.to(ScalarType.Float64);
        model.eval();
        var data = LandscapeFixtures.RandomSet([12], inputs: 4);

        var layers = LayerwiseHessian.WeightLayers(model);
        Assert.Equal(["fc1.weight", "fc2.weight"], layers.Select(l => l.Parameter));
        Assert.Equal([0.0, 1.0], layers.Select(l => l.RelativeDepth));

        using var full = LayerwiseHessian.FullOperator(model, data);
        using var h = ExactHessian.Compute(full);
        using var reference = LandscapeFixtures.HessianByJacobian(model, data);
        Assert.True(h.Hessian.allclose(reference, rtol: 1e-8, atol: 1e-10));
        foreach (var layer in layers)
        {
            var block = full.Layout.Blocks.Single(b => b.Name == layer.Parameter);
            using var op = LayerwiseHessian.LayerOperator(model, data, layer);
            Assert.Equal(layer.Count, op.Dimension);
            using var own = ExactHessian.Compute(op);
            using var expected = h.Hessian.narrow(0, block.Offset, block.Count).narrow(1, block.Offset, block.Count);
            var difference = (own.Hessian - expected).abs().max().ToDouble();
            Assert.True(difference < 1e-10, $"{layer.Parameter}: the layer operator differs from the diagonal block by {difference}");
        }
    }

    [Fact]
    public void LayersOfASelectionAndBadSelectionsAreRefusedClearly()
    {
        var model = LandscapeFixtures.TanhNet();
        var layers = LayerwiseHessian.Layers(model, ParameterSelection.Named("fc2.bias", "fc1.weight"));
        Assert.Equal(["fc1.weight", "fc2.bias"], layers.Select(l => l.Parameter));
        var e = Assert.Throws<ArgumentException>(() => LayerwiseHessian.Layers(model, ParameterSelection.Named("fc9.weight")));
        Assert.Contains("fc9.weight", e.Message);
        var none = Assert.Throws<ArgumentException>(() => LayerwiseHessian.WeightLayers(nn.Sequential(("bn", nn.BatchNorm1d(3)))));
        Assert.Contains("no convolution or linear module", none.Message);
    }

    [Fact]
    public void ExamplesPerClassDrawsTheRequestedNumberOfEveryClassReproducibly()
    {
        TorchRuntime.EnsureInitialized();
        using var data = new LabeledData(arange(60, ScalarType.Float32).reshape(60, 1), arange(60, ScalarType.Int64).remainder(3), 3);
        var (x1, y1) = LayerwiseHessian.ExamplesPerClass(data, 4, seed: 0);
        var (x2, _) = LayerwiseHessian.ExamplesPerClass(data, 4, seed: 0);
        var (x3, _) = LayerwiseHessian.ExamplesPerClass(data, 4, seed: 1);
        using (x1) using (y1) using (x2) using (x3)
        {
            Assert.Equal([0L, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], y1.data<long>().ToArray());
            Assert.True(x1.allclose(x2));
            Assert.False(x1.allclose(x3));
            // Each input is its own index, so its label is index mod 3.
            Assert.Equal(y1.data<long>().ToArray(), x1.reshape(-1).to(ScalarType.Int64).remainder(3).data<long>().ToArray());
        }
        var e = Assert.Throws<ArgumentException>(() => LayerwiseHessian.ExamplesPerClass(data, 21, 0));
        Assert.Contains("class 0 has 20 training example(s), fewer than the 21", e.Message);
    }

    [Fact]
    public void AuthorsCodeMatchesHandComputedValues()
    {
        // full = [1, e, e^2] -> log [0, 1, 2] -> min-max [0, 1/2, 1] -> / sum [0, 1/3, 2/3];
        // layer = [1, 1, e] -> [0, 0, 1] -> [0, 0, 1]. Equal-size samples: W1 = mean |sorted u - sorted v| = (0 + 1/3 + 1/3) / 3.
        var full = new[] { 1, Math.E, Math.E * Math.E };
        var layer = new[] { 1, 1, Math.E };
        AssertClose([0, 1.0 / 3, 2.0 / 3], SpectralSimilarity.AuthorsTransform(full));
        Assert.Equal(2.0 / 9, SpectralSimilarity.AuthorsCode(full, layer), 12);
        // A zero takes the smallest positive value: [0, 1, 3] -> log [0, 0, ln 3] -> [0, 0, 1].
        AssertClose([0, 0, 1.0], SpectralSimilarity.AuthorsTransform([0, 1, 3]));
        // The oddity: the values are compared as samples, so a density and its mirror image are at distance 0.
        var bump = Enumerable.Range(0, 50).Select(i => Math.Exp(-(i - 10) * (i - 10) / 8.0) + 1e-3).ToArray();
        Assert.Equal(0, SpectralSimilarity.AuthorsCode(bump, bump.Reverse().ToArray()), 14);
        Assert.True(SpectralSimilarity.Wasserstein1OnGrid(Enumerable.Range(0, 50).Select(i => (double)i).ToArray(), bump, bump.Reverse().ToArray()) > 20);
    }

    [Fact]
    public void WassersteinBetweenSamplesIsScipysForUnequalSizes()
    {
        // By hand on the merged values [1.4, 3.4, 3.9, 4.5, 7.5, 7.8]: |F_u - F_v| x gap = 0.5x2 + 0.25x0.5 + 0 + 0.5x3 + 0.25x0.3 = 2.7.
        Assert.Equal(2.7, SpectralSimilarity.WassersteinBetweenSamples([3.4, 3.9, 7.5, 7.8], [4.5, 1.4]), 12);
        // scipy's documented example: wasserstein_distance([0, 1, 3], [5, 6, 8]) = 5.
        Assert.Equal(5.0, SpectralSimilarity.WassersteinBetweenSamples([0, 1, 3], [5, 6, 8]), 12);
        Assert.Throws<ArgumentException>(() => SpectralSimilarity.WassersteinBetweenSamples([], [1]));
        Assert.Throws<ArgumentException>(() => SpectralSimilarity.AuthorsTransform([0, 0, 0]));
    }

    static void AssertClose(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 12);
    }

    static double[] Gaussian(double[] grid, double mean, double sigma) =>
        grid.Select(x => Math.Exp(-(x - mean) * (x - mean) / (2 * sigma * sigma)) / (sigma * Math.Sqrt(2 * Math.PI))).ToArray();

    [Fact]
    public void GridMeasuresMatchClosedFormsForGaussians()
    {
        var grid = Enumerable.Range(0, 8001).Select(i => -15 + 30.0 * i / 8000).ToArray();
        // Shifted: W1 = delta, KL = delta^2 / (2 sigma^2).
        var p = Gaussian(grid, 0, 1);
        var q = Gaussian(grid, 1.5, 1);
        Assert.Equal(1.5, SpectralSimilarity.Wasserstein1OnGrid(grid, p, q), 4);
        Assert.Equal(1.5 * 1.5 / 2, SpectralSimilarity.KullbackLeibler(grid, p, q), 4);
        // Scaled: W1 = |s1 - s2| sqrt(2 / pi); KL(N(0, s1^2) || N(0, s2^2)) = ln(s2 / s1) + s1^2 / (2 s2^2) - 1/2.
        var wide = Gaussian(grid, 0, 2);
        Assert.Equal(Math.Sqrt(2 / Math.PI), SpectralSimilarity.Wasserstein1OnGrid(grid, p, wide), 4);
        Assert.Equal(Math.Log(2) + 1.0 / 8 - 0.5, SpectralSimilarity.KullbackLeibler(grid, p, wide), 4);
        // Zeros: where q vanishes and p does not, KL stays finite (the floor) and large.
        var left = grid.Select(x => x < 0 ? 1.0 : 0).ToArray();
        var right = grid.Select(x => x >= 0 ? 1.0 : 0).ToArray();
        var kl = SpectralSimilarity.KullbackLeibler(grid, left, right);
        Assert.True(double.IsFinite(kl) && kl > 15, $"KL of disjoint densities with the floor is {kl}");
        Assert.Throws<ArgumentException>(() => SpectralSimilarity.Wasserstein1OnGrid(grid, p, q.Take(10).ToArray()));
    }

    [Fact]
    public void CompareUsesACommonGridForTheGridMeasures()
    {
        // Two spectra that differ by a shift of 2: W1 between their densities is 2 up to the kernels.
        var values = Enumerable.Range(0, 200).Select(i => i / 199.0).ToArray();
        using var a = WithEigenvalues(values, 1);
        using var b = WithEigenvalues(values.Select(x => x + 2).ToArray(), 1);
        using var opA = new DenseOperator(a);
        using var opB = new DenseOperator(b);
        var options = LanczosDensityOptions.Default with { Probes = 20 };
        var da = LanczosDensity.Run(opA, options);
        var db = LanczosDensity.Run(opB, options);
        Assert.Equal(2.0, SpectralSimilarity.Compare(da, db, SimilarityMeasure.W1OnGrid), 1);
        Assert.True(SpectralSimilarity.Compare(da, db, SimilarityMeasure.KLOnGrid) > 5);
        // The authors' measure sees the same value histograms on each density's own grid: (nearly) zero.
        Assert.True(SpectralSimilarity.Compare(da, db, SimilarityMeasure.AuthorsCode) < 1e-3);
        Assert.Equal(0, SpectralSimilarity.Compare(da, da, SimilarityMeasure.W1OnGrid), 12);
    }

    [Fact]
    public void InvalidDensityOptionsAreRefused()
    {
        using var m = WithEigenvalues([1, 2, 3], 1);
        using var op = new DenseOperator(m);
        Assert.Contains("Iterations must be at least 2", Assert.Throws<ArgumentException>(() => LanczosDensity.Run(op, LanczosDensityOptions.Default with { Iterations = 1 })).Message);
        Assert.Contains("Kappa", Assert.Throws<ArgumentException>(() => LanczosDensity.Run(op, LanczosDensityOptions.Default with { Kappa = 1 })).Message);
        Assert.Contains("Probes", Assert.Throws<ArgumentException>(() => LanczosDensity.Run(op, LanczosDensityOptions.Default with { Probes = 0 })).Message);
    }
}
