using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Tests;

/// <summary>Proves the native library loads on this machine (the GLIBCXX fix worked) and autograd runs.</summary>
public class TorchLoadsTests
{
    [Fact]
    public void ForwardAndBackwardRun()
    {
        using var scope = NewDisposeScope();
        var w = tensor(new float[] { 1f, -2f, 3f }, requires_grad: true);
        var x = tensor(new float[] { 0.5f, 0.25f, 2f });
        var loss = (w * x).sum().pow(2);           // (0.5 - 0.5 + 6)^2 = 36
        loss.backward();
        Assert.Equal(36f, loss.item<float>(), 5);
        // d/dw (w.x)^2 = 2 (w.x) x = 12 x
        Assert.Equal(new[] { 6f, 3f, 24f }, w.grad!.data<float>().ToArray());
    }

    [Fact]
    public void DoubleBackwardRuns()
    {
        using var scope = NewDisposeScope();
        var w = tensor(new double[] { 1.0, 2.0 }, requires_grad: true);
        var f = (w.pow(3)).sum();                  // grad 3w^2, Hessian diag 6w
        var g = autograd.grad(new[] { f }, new[] { w }, create_graph: true, retain_graph: true)[0];
        var v = tensor(new double[] { 1.0, 1.0 });
        var hv = autograd.grad(new[] { (g * v).sum() }, new[] { w })[0];
        Assert.Equal(new[] { 6.0, 12.0 }, hv.data<double>().ToArray());
    }

    [Fact]
    public void OneDnnIsSwitchedOffAndConvolutionsStillWork()
    {
        TorchRuntime.EnsureInitialized();
        if (Environment.GetEnvironmentVariable(TorchRuntime.OneDnnVariable) != "1")
            Assert.False(TorchRuntime.OneDnnEnabled, TorchRuntime.CpuBackendNote);
        using var scope = NewDisposeScope();
        // A 3x3 box filter over ones: every interior output is 9.
        var y = nn.functional.conv2d(ones(2, 1, 5, 5), ones(4, 1, 3, 3));
        Assert.Equal(new long[] { 2, 4, 3, 3 }, y.shape);
        Assert.True(y.eq(9f).all().item<bool>());
    }

    [Fact]
    public void GlibcAllocatorIsTunedForLargeTemporaries()
    {
        TorchRuntime.EnsureInitialized();
        if (Environment.GetEnvironmentVariable(TorchRuntime.AllocatorVariable) == "0") return;
        Assert.Equal("glibc malloc: 32 MB mmap threshold, no trimming", TorchRuntime.AllocatorNote);
        Assert.Contains(TorchRuntime.AllocatorNote, TorchRuntime.CpuBackendNote);
    }
}
