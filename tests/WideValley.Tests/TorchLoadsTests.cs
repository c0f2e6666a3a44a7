using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests;

/// <summary>
/// Proves the native library loads on this machine (the GLIBCXX fix worked) and autograd runs, and that the runtime
/// configuration is explicit: applied by <see cref="TorchRuntime.Configure"/>, never by library code on its own.
/// </summary>
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
    public void TheTestHostConfiguredOneDnnOffAndConvolutionsStillWork()
    {
        Assert.Same(ConfiguredTorchRuntime.Configuration, TorchRuntime.Configuration);
        Assert.Equal(!ConfiguredTorchRuntime.Configuration.DisableOneDnn, TorchRuntime.OneDnnEnabled);
        Assert.False(TorchRuntime.NnpackEnabled);
        using var scope = NewDisposeScope();
        // A 3x3 box filter over ones: every interior output is 9.
        var y = nn.functional.conv2d(ones(2, 1, 5, 5), ones(4, 1, 3, 3));
        Assert.Equal(new long[] { 2, 4, 3, 3 }, y.shape);
        Assert.True(y.eq(9f).all().item<bool>());
    }

    [Fact]
    public void GlibcAllocatorIsTunedForLargeTemporaries()
    {
        if (!ConfiguredTorchRuntime.Configuration.TuneMalloc) return;
        Assert.Equal("glibc malloc: 32 MB mmap threshold, no trimming", TorchRuntime.AllocatorNote);
        Assert.Contains(TorchRuntime.AllocatorNote, TorchRuntime.CpuBackendNote);
    }

    [Fact]
    public void ConfigureSetsTheSwitchesBothWaysAndTheNoteSaysWhatIsInForce()
    {
        try
        {
            TorchRuntime.Configure(TorchRuntimeConfiguration.Recommended with { DisableOneDnn = false, DisableNnpack = false });
            Assert.True(TorchRuntime.OneDnnEnabled);
            Assert.True(TorchRuntime.NnpackEnabled);
            Assert.StartsWith("oneDNN on, NNPACK on, ", TorchRuntime.CpuBackendNote);

            TorchRuntime.Configure(TorchRuntimeConfiguration.Recommended);
            Assert.False(TorchRuntime.OneDnnEnabled);
            Assert.False(TorchRuntime.NnpackEnabled);
            Assert.StartsWith("oneDNN off, NNPACK off, ", TorchRuntime.CpuBackendNote);
            Assert.EndsWith("(TorchRuntime.Configure)", TorchRuntime.CpuBackendNote);
        }
        finally
        {
            ConfiguredTorchRuntime.Restore();
        }
    }

    [Fact]
    public void CreatingAModelOrAnHvpAndMeasuringLeaveTheProcessConfigurationAlone()
    {
        // oneDNN on (libtorch's default) is the state the old code silently switched off when an Hvp was created.
        var userChoice = TorchRuntimeConfiguration.LibTorchDefaults;
        try
        {
            TorchRuntime.Configure(userChoice);
            Assert.True(TorchRuntime.OneDnnEnabled);
            var noteBefore = TorchRuntime.CpuBackendNote;
            var requestsBefore = TorchRuntime.ConfigurationRequests;
            using (var scope = NewDisposeScope())
            {
                using var zooModel = WideValley.Models.ModelZoo.Create("small-mnistfc", new WideValley.Models.ModelOptions());
                random.manual_seed(1);
                using var net = nn.Sequential(("fc1", nn.Linear(4, 3)), ("act", nn.Tanh()), ("fc2", nn.Linear(3, 2)));
                var x = randn(8, 4);
                var y = randint(0, 2, [8]).to(ScalarType.Int64);
                using var hvp = new Hvp(net, [(x, y)]);
                var trace = Hutchinson.Run(hvp, new HutchinsonOptions { Probes = 2 });
                Assert.True(double.IsFinite(trace.Total.Trace));
            }
            Assert.Equal(requestsBefore, TorchRuntime.ConfigurationRequests);
            Assert.True(TorchRuntime.OneDnnEnabled);
            Assert.True(TorchRuntime.NnpackEnabled);
            Assert.Same(userChoice, TorchRuntime.Configuration);
            Assert.Equal(noteBefore, TorchRuntime.CpuBackendNote);
        }
        finally
        {
            ConfiguredTorchRuntime.Restore();
        }
    }

    [Fact]
    public void NegativeThreadsAreRefusedWithTheirName()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            TorchRuntime.Configure(TorchRuntimeConfiguration.Recommended with { Threads = -1 }));
        Assert.Contains("Threads", e.Message);
        Assert.Same(ConfiguredTorchRuntime.Configuration, TorchRuntime.Configuration);
    }

    [Fact]
    public void FromEnvironmentReadsTheCommandsVariables()
    {
        var config = TorchRuntimeConfiguration.FromEnvironment();
        Assert.Equal(Environment.GetEnvironmentVariable(TorchRuntime.OneDnnVariable) != "1", config.DisableOneDnn);
        Assert.Equal(Environment.GetEnvironmentVariable(TorchRuntime.AllocatorVariable) != "0", config.TuneMalloc);
        Assert.True(config.DisableNnpack);
        Assert.Equal(0, config.Threads);
    }
}
