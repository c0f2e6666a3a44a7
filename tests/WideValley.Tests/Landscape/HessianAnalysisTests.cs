using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

public sealed class HessianAnalysisTests
{
    [Fact]
    public void TheEntryPointAgreesWithTheDenseSpectrumForACustomLoss()
    {
        var model = TanhNet(hidden: 4);
        var data = RandomSet([9, 6]);
        Func<Tensor, Tensor, Tensor> smoothed = (logits, y) => F.cross_entropy(logits, y, label_smoothing: 0.1);
        using var h = new HessianAnalysis(model, data, smoothed);
        var n = h.Dimension;
        Assert.Equal(6 * 4 + 4 + 4 * 3 + 3, n);
        var all = h.AllEigenvalues(new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        var top = h.TopEigenvalues(3);
        Assert.True(top.Converged);
        for (var i = 0; i < 3; i++) Assert.Equal(all[^(i + 1)], top.Eigenvalues[i], 9);
        var bottom = h.BottomEigenvalues(1);
        Assert.Equal(all[0], bottom.Eigenvalues[0], 9);

        // Hutch++ with a sketch of every column is exact.
        var trace = h.Trace(new HutchinsonOptions { Probes = (int)(3 * n), HutchPlusPlus = true });
        Assert.Equal(all.Sum(), trace.Total.Trace, 9);
        var density = h.Density(new SlqOptions { Probes = 3, Steps = (int)n });
        Assert.Equal(all[0], density.Range.Min, 7);
        Assert.Equal(all[^1], density.Range.Max, 7);

        // The smoothed loss is what was measured: the default cross-entropy gives another matrix.
        using var plain = new HessianAnalysis(model, data);
        Assert.NotEqual(all[^1], plain.TopEigenvalues(1).Eigenvalues[0], 6);

        // A slice through the weights: at alpha = 0 it is the loss itself, and the model is left unchanged.
        using var before = Slices.FlatParameters(model);
        var slice = h.Slice(options: new SliceOptions { Points = 5, From = -0.5, To = 0.5 });
        Assert.Equal(5, slice.Count);
        var mid = slice[2];
        Assert.Equal(0, mid.Alpha);
        double expected;
        using (no_grad())
        {
            model.eval();
            expected = data.Sum(b => F.cross_entropy(model.call(b.Inputs), b.Labels, label_smoothing: 0.1).ToDouble() * b.Inputs.shape[0]) / 15;
        }
        Assert.Equal(expected, mid.Loss, 12);
        using var after = Slices.FlatParameters(model);
        Assert.True(before.eq(after).all().ToBoolean());

        // Along a given direction: the top eigenvector, where the loss curves upward by about lambda_max / 2 alpha^2.
        var withVectors = h.TopEigenvalues(1, new LanczosOptions { ComputeEigenvectors = true, MaxIterations = (int)n });
        using var v = withVectors.Eigenvectors![.., 0].contiguous();
        var along = h.Slice(v, new SliceOptions { Points = 3, From = -1e-3, To = 1e-3 });
        var curvature = (along[0].Loss - 2 * along[1].Loss + along[2].Loss) / 1e-6;
        Assert.Equal(withVectors.Eigenvalues[0], curvature, 3);
        withVectors.Eigenvectors.Dispose();
    }

    [Fact]
    public void AnHvpKeepsWorkingAfterASliceWroteTheSameWeightsBack()
    {
        // The slice writes w + alpha d into the model and then w back: equal values, but autograd's version counters
        // moved, and differentiating the kept graph again would abort the process inside libtorch.
        var model = TanhNet(hidden: 4);
        var data = RandomSet([10]);
        using var hvp = new Hvp(model, data);
        using var gen = new Generator(2);
        using var v = randn(hvp.Dimension, ScalarType.Float64, generator: gen);
        using var before = hvp.Apply(v);
        var slice = Slices.RandomDirection1D(model, data, new SliceOptions { Points = 3 });
        Assert.Equal(3, slice.Count);
        using var after = hvp.Apply(v);
        Assert.True(MaxAbsDiff(before, after) < 1e-15);
    }

    [Fact]
    public void TheGaussNewtonAndFisherKindsArePositiveSemiDefinite()
    {
        var model = TanhNet(hidden: 3);
        var data = RandomSet([12]);
        foreach (var kind in new[] { CurvatureKind.GaussNewton, CurvatureKind.EmpiricalFisher })
        {
            using var h = new HessianAnalysis(model, data, curvature: kind);
            Assert.Equal(kind, h.Curvature);
            var all = h.AllEigenvalues(new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
            Assert.True(all[0] > -1e-12 * all[^1], $"{kind}: smallest eigenvalue {all[0]:E2}");
            Assert.Equal(all[^1], h.TopEigenvalues(1).Eigenvalues[0], 9);
        }
    }
}
