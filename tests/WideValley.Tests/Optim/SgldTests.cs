using TorchSharp;
using WideValley.Optim;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

public class SgldTests
{
    /// <summary>
    /// On f(x) = a/2 x^2 with N data points and temperature T, SGLD samples exp(-N a x^2 / (2 T)): variance T / (N a)
    /// (up to the Euler factor 1 / (1 - lr a / 2)). 4096 independent chains in one tensor.
    /// </summary>
    [Fact]
    public void SamplesThePosteriorOfAQuadratic()
    {
        const double a = 2, temperature = 1, lr = 0.01;
        const long n = 50;
        var x = new TorchSharp.Modules.Parameter(zeros(4096, ScalarType.Float64));
        x.grad = zeros_like(x);
        using var opt = new Sgld([x], lr, n, decay: 0, temperature: temperature, seed: 5);
        Tensor Closure()
        {
            using var g = x.grad!;
            using (no_grad()) g.copy_(x.detach() * a);
            return x;
        }
        for (var i = 0; i < 1500; i++)
        {
            using var scope = NewDisposeScope();
            opt.step(Closure);
        }
        var variance = x.var().ToDouble();
        var expected = temperature / (n * a) / (1 - lr * a / 2);
        // 4096 nearly independent samples: the sample variance has a relative standard error of sqrt(2/4096) = 2.2%.
        Assert.InRange(variance / expected, 0.92, 1.08);
        Assert.InRange(x.mean().ToDouble(), -4 * Math.Sqrt(expected / 4096), 4 * Math.Sqrt(expected / 4096));
    }

    [Fact]
    public void StepSizeDecaysAsEtaOverOnePlusTToTheB()
    {
        var x = new TorchSharp.Modules.Parameter(ones(3));
        x.grad = ones(3);
        using var opt = new Sgld([x], 0.5, 100, decay: 0.55, temperature: 0, seed: 1);
        for (var t = 0; t < 10; t++)
        {
            var before = x.detach().clone();
            opt.step(() => x);
            var moved = (before - x).mean().ToDouble();
            Assert.Equal(0.5 / Math.Pow(1 + t, 0.55), moved, 6); // gradient 1, no noise
        }
        Assert.Equal(10, opt.Steps);
    }

    [Fact]
    public void StateDictRoundTripContinuesIdentically()
    {
        using var dir = new TempDir();
        Tensor[] Run(bool split)
        {
            var x = new TorchSharp.Modules.Parameter(zeros(100));
            x.grad = zeros(100);
            var opt = new Sgld([x], 0.1, 10, seed: 2);
            for (var i = 0; i < 5; i++) opt.step(() => x);
            if (split)
            {
                opt.save_state_dict(dir.File("sgld.bin"));
                opt.Dispose();
                opt = new Sgld([x], 0.1, 10, seed: 99);
                opt.load_state_dict(dir.File("sgld.bin"));
            }
            for (var i = 0; i < 5; i++) opt.step(() => x);
            opt.Dispose();
            return [x.detach().clone()];
        }
        Assert.True(Run(false)[0].equal(Run(true)[0]).all().item<bool>());
    }
}
