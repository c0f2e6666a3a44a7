using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;

namespace WideValley.Tests.Landscape;

public sealed class SlqAndTraceTests
{
    [Fact]
    public void SlqDensityIntegratesToOneAndItsMomentsMatchTheExactTraces()
    {
        var model = TanhNet(inputs: 10, hidden: 20, outputs: 4, seed: 21);
        var data = RandomSet([80], inputs: 10, classes: 4, seed: 22);
        using var hvp = new Hvp(model, data);
        using var h = Dense(hvp);
        var n = (double)hvp.Dimension;
        var trace = h.diagonal().sum().ToDouble() / n;
        var traceSquared = h.mul(h).sum().ToDouble() / n;
        var slq = Slq.Run(hvp, new SlqOptions { Probes = 30, Steps = 40, Seed = 1 });
        Assert.Equal(30 * 40, slq.OperatorApplications);
        Assert.All(slq.Weights, w => Assert.Equal(1.0, w.Sum(), 12));

        var density = slq.Density(points: 4000);
        Assert.Equal(1.0, density.Integral(), 3);
        var (m1, se1) = slq.Moment(1);
        var (m2, se2) = slq.Moment(2);
        Assert.True(Math.Abs(m1 - trace) <= 3 * se1, $"first moment {m1} vs tr(H)/n {trace} (se {se1})");
        Assert.True(Math.Abs(m2 - traceSquared) <= 3 * se2, $"second moment {m2} vs tr(H^2)/n {traceSquared} (se {se2})");
        // The smoothed density has the same mean and the variance plus sigma^2.
        Assert.Equal(m1, density.Integral(1), 3);
        Assert.True(Math.Abs(density.Integral(2) - (m2 + density.Sigma * density.Sigma)) < 1e-3 * m2);
        var (min, max) = slq.Range;
        using var eig = ExactHessian.Eigenvalues(h);
        Assert.True(Math.Abs(max - eig.max().ToDouble()) < 1e-8 * Math.Abs(max));
        Assert.True(min >= eig.min().ToDouble() - 1e-10);
    }

    [Fact]
    public void SlqQuadratureIsExactPerProbeAndEstimatesTheFractionNearZero()
    {
        // Half of the spectrum exactly zero, the rest spread out.
        var eigenvalues = Enumerable.Range(0, 100).Select(i => i < 50 ? 0.0 : 0.5 + i / 10.0).ToArray();
        using var m = MatrixWithSpectrum(eigenvalues, seed: 3);
        var slq = Slq.Run(v => m.mv(v), 100, new SlqOptions { Probes = 40, Steps = 30, Seed = 2 });
        // Each probe's rule reproduces v^T H^p v for p < 2 x steps; re-draw the same probes to check p = 1 and 3.
        using var gen = new Generator(2);
        for (var l = 0; l < 3; l++)
        {
            using var z = randint(0, 2, [100], generator: gen).to(ScalarType.Float64).mul(tensor(2.0, ScalarType.Float64)).sub(tensor(1.0, ScalarType.Float64));
            using var v = z.div(z.norm());
            var direct1 = v.dot(m.mv(v)).ToDouble();
            var direct3 = v.dot(m.mv(m.mv(m.mv(v)))).ToDouble();
            var quad1 = slq.Nodes[l].Select((t, i) => slq.Weights[l][i] * t).Sum();
            var quad3 = slq.Nodes[l].Select((t, i) => slq.Weights[l][i] * t * t * t).Sum();
            Assert.Equal(direct1, quad1, 10);
            Assert.True(Math.Abs(direct3 - quad3) < 1e-9 * Math.Abs(direct3));
        }
        var fraction = slq.FractionAbsBelow(1e-6);
        var (_, se) = slq.Estimate(x => Math.Abs(x) < 1e-6 ? 1 : 0);
        Assert.True(Math.Abs(fraction - 0.5) <= 3 * se + 1e-9, $"fraction {fraction} (se {se})");
    }

    [Fact]
    public void HutchinsonIsWithinThreeStandardErrorsOfTheExactTraceAndLayersSumToTheWhole()
    {
        var model = TanhNet(inputs: 10, hidden: 20, outputs: 4, seed: 31);
        var data = RandomSet([60], inputs: 10, classes: 4, seed: 32);
        using var hvp = new Hvp(model, data);
        using var h = Dense(hvp);
        var exact = h.diagonal().sum().ToDouble();
        foreach (var grouping in new[] { LayerGrouping.PerModule, LayerGrouping.PerParameterTensor })
        {
            var result = Hutchinson.Run(hvp, new HutchinsonOptions { Probes = 200, Seed = 4, Grouping = grouping });
            Assert.True(Math.Abs(result.Total.Trace - exact) <= 3 * result.Total.StandardError,
                $"{grouping}: estimate {result.Total.Trace} vs exact {exact} (se {result.Total.StandardError})");
            Assert.Equal(result.Total.Trace, result.Layers.Sum(l => l.Trace), 12);
            Assert.Equal(grouping == LayerGrouping.PerModule ? ["fc1", "fc2"] : new[] { "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias" },
                result.Layers.Select(l => l.Name).ToArray());
            foreach (var layer in result.Layers)
            {
                var blockTrace = h.diagonal().narrow(0, layer.Offset, layer.Count).sum().ToDouble();
                Assert.True(Math.Abs(layer.Trace - blockTrace) <= 3 * layer.StandardError + 1e-12,
                    $"{layer.Name}: {layer.Trace} vs {blockTrace} (se {layer.StandardError})");
            }
        }
    }

    [Fact]
    public void HutchPlusPlusIsExactForLowRankAndMoreAccurateThanPlainHutchinson()
    {
        // Three large eigenvalues and a small bulk: the regime of trained networks.
        var eigenvalues = Enumerable.Range(0, 120).Select(i => i < 3 ? 50.0 + i : 0.01 * Math.Sin(i)).ToArray();
        using var m = MatrixWithSpectrum(eigenvalues, seed: 8);
        var exact = eigenvalues.Sum();
        var blocks = new List<(string, long, long)> { ("a", 0, 50), ("b", 50, 70) };
        var plain = Hutchinson.Run(v => m.mv(v), 120, blocks, new HutchinsonOptions { Probes = 30, Seed = 1 });
        var plus = Hutchinson.Run(v => m.mv(v), 120, blocks, new HutchinsonOptions { Probes = 30, Seed = 1, HutchPlusPlus = true });
        Assert.Equal(30, plus.OperatorApplications);
        Assert.Equal("hutch++", plus.Method);
        Assert.True(Math.Abs(plus.Total.Trace - exact) < Math.Abs(plain.Total.Trace - exact) + 1e-12);
        Assert.True(Math.Abs(plus.Total.Trace - exact) < 0.05, $"Hutch++ {plus.Total.Trace} vs {exact}");
        Assert.True(plus.Total.StandardError < plain.Total.StandardError);
        Assert.Equal(plus.Total.Trace, plus.Layers.Sum(l => l.Trace), 12);
        var blockA = m.diagonal().narrow(0, 0, 50).sum().ToDouble();
        Assert.True(Math.Abs(plus.Layers[0].Trace - blockA) <= 3 * plus.Layers[0].StandardError + 1e-9);
    }
}
