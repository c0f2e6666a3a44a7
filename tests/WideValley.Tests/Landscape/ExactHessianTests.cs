using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;

namespace WideValley.Tests.Landscape;

public sealed class ExactHessianTests
{
    [Fact]
    public void DenseHessianOfATinyNetworkMatchesTheJacobianOfTheGradient()
    {
        var model = TanhNet();
        var data = RandomSet([9, 21]);
        using var hvp = new Hvp(model, data);
        using var result = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        using var reference = HessianByJacobian(model, data);
        Assert.Equal(hvp.Dimension, result.Hessian.shape[0]);
        Assert.True(MaxAbsDiff(result.Hessian, reference) < 1e-12 * Math.Max(1, MaxAbs(reference)), $"{MaxAbsDiff(result.Hessian, reference):E2}");
        Assert.True(result.MaxAsymmetry < 1e-12);
        Assert.Equal(hvp.Dimension, result.ComputedColumns);
    }

    [Fact]
    public void SoftmaxRegressionHessianMatchesItsClosedForm()
    {
        // Linear softmax without bias: H = (1/N) sum_i (diag(p_i) - p_i p_i^T) kron x_i x_i^T, with W (C x D) flattened row-major.
        TorchRuntime.EnsureInitialized();
        random.manual_seed(4);
        var model = nn.Sequential(("fc", nn.Linear(4, 3, hasBias: false)));
        model.to(ScalarType.Float64);
        var data = RandomSet([25], inputs: 4);
        using var hvp = new Hvp(model, data);
        using var result = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        using var scope = NewDisposeScope();
        var x = data[0].Inputs;
        var p = nn.functional.softmax(model.call(x).detach(), 1);
        var expected = zeros(12, 12, ScalarType.Float64);
        for (var i = 0; i < 25; i++)
        {
            var pi = p[i];
            var a = diag(pi).sub(pi.outer(pi));
            expected.add_(kron(a, x[i].outer(x[i])));
        }
        expected.div_(tensor(25.0, ScalarType.Float64));
        Assert.True(MaxAbsDiff(result.Hessian, expected) < 1e-14, $"{MaxAbsDiff(result.Hessian, expected):E2}");
    }

    [Fact]
    public void InertiaCountsMatchEigenvalueCountsOnAKnownSpectrum()
    {
        var eigenvalues = new double[] { -3, -0.5, -1e-3, -2e-5, 0, 0, 1e-6, 5e-5, 2e-3, 0.7, 0.7, 4, 10, 25 };
        using var m = MatrixWithSpectrum(eigenvalues);
        using var computed = ExactHessian.Eigenvalues(m);
        var sorted = eigenvalues.OrderBy(x => x).ToArray();
        Assert.Equal(sorted, computed.data<double>().ToArray(), (a, b) => Math.Abs(a - b) < 1e-12);
        foreach (var sigma in new[] { -4, -1, -1e-4, 1e-4, 1e-2, 0.8, 30 })
            Assert.Equal(eigenvalues.Count(l => l < sigma), ExactHessian.CountBelow(m, sigma));
        foreach (var t in new[] { 1e-5, 1e-4, 1e-2, 1 })
            Assert.Equal(eigenvalues.Count(l => Math.Abs(l) < t), ExactHessian.CountInBand(m, t));
        using var again = ExactHessian.Eigenvalues(m);
        Assert.Equal(computed.data<double>().ToArray(), again.data<double>().ToArray()); // the diagonal was restored exactly
        Assert.Equal(eigenvalues.Count(l => Math.Abs(l) < 1e-4) / (double)eigenvalues.Length, ExactHessian.FractionAbsBelow(computed, 1e-4));
    }

    [Fact]
    public void InterruptedRunResumesToTheIdenticalMatrixAndRefusesAChangedModel()
    {
        var model = TanhNet(hidden: 6);
        var data = RandomSet([30]);
        using var dir = new TempDir();
        using var hvp = new Hvp(model, data);
        using var uninterrupted = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, ColumnsPerBlock = 7 });

        using var cts = new CancellationTokenSource();
        var options = new ExactHessianOptions
        {
            MemoryLimitBytes = 1L << 30,
            ColumnsPerBlock = 7,
            CheckpointFolder = dir.Path,
            Cancellation = cts.Token,
            Progress = p => { if (p.ColumnsDone >= 20) cts.Cancel(); },
        };
        Assert.Throws<OperationCanceledException>(() => ExactHessian.Compute(hvp, options));
        Assert.Empty(dir.Leftovers());
        var blocks = Directory.GetFiles(dir.Path, "columns-*.bin").Length;
        Assert.Equal(2, blocks); // 20 columns done, blocks of 7: two complete blocks on disk

        ExactHessianProgress? first = null;
        using var resumed = ExactHessian.Compute(hvp, options with { Cancellation = default, Progress = p => first ??= p });
        Assert.Equal(14, resumed.ResumedColumns);
        Assert.Equal(14, first!.ResumedColumns);
        Assert.Equal(hvp.Dimension - 14, resumed.ComputedColumns);
        Assert.True(resumed.Hessian.eq(uninterrupted.Hessian).all().ToBoolean(), "resumed matrix must be bit-identical");

        // Same architecture, different weights: the folder's fingerprint does not match.
        var other = TanhNet(hidden: 6, seed: 77);
        using var otherHvp = new Hvp(other, data);
        var refused = Assert.Throws<InvalidOperationException>(() => ExactHessian.Compute(otherHvp, options with { Cancellation = default, Progress = null }));
        Assert.Contains("different model", refused.Message);
        // Different data: refused as well.
        using var otherData = new Hvp(model, RandomSet([30], seed: 6));
        Assert.Throws<InvalidOperationException>(() => ExactHessian.Compute(otherData, options with { Cancellation = default, Progress = null }));
    }

    [Fact]
    public void TooLittleMemoryAndTooManyParametersAreRefusedWithNumbers()
    {
        using var hvp = new Hvp(TanhNet(), RandomSet([10]));
        var memory = Assert.Throws<InsufficientMemoryException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1000 }));
        Assert.Contains($"n = {hvp.Dimension}", memory.Message);
        Assert.Contains("GiB", memory.Message);
        Assert.Contains("limit", memory.Message);
        Assert.Equal(0, hvp.HvpCount); // refused before any work
        var size = Assert.Throws<ArgumentException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MaxDimension = 10 }));
        Assert.Contains("MaxDimension = 10", size.Message);

        // small-LeNet's 47,658 parameters in float32: 8.46 GiB for the matrix and as much again for the eigen-solver.
        var plan = ExactHessian.PlanMemory(47_658, ScalarType.Float32, new ExactHessianOptions { MemoryLimitBytes = 22L << 30 });
        Assert.Equal(47_658L * 47_658 * 4, plan.HessianBytes);
        Assert.True(plan.Fits, plan.ToString());
        Assert.False(ExactHessian.PlanMemory(47_658, ScalarType.Float64, new ExactHessianOptions { MemoryLimitBytes = 22L << 30 }).Fits);
        Assert.True(ExactHessian.AvailableMemoryBytes() > 0);
    }
}
