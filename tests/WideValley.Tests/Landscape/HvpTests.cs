using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;

namespace WideValley.Tests.Landscape;

public sealed class HvpTests
{
    [Fact]
    public void HvpMatchesCentralFiniteDifferencesOfTheGradientInFloat64()
    {
        var model = TanhNet();
        var data = RandomSet([10, 7, 13]);
        using var hvp = new Hvp(model, data);
        using var gen = new Generator(9);
        using var v = randn(hvp.Dimension, ScalarType.Float64, generator: gen);
        using var hv = hvp.Apply(v);
        using var w = hvp.Parameters();
        const double eps = 1e-5;
        using var plus = w.add(v.mul(tensor(eps, ScalarType.Float64)));
        using var minus = w.sub(v.mul(tensor(eps, ScalarType.Float64)));
        hvp.Loss.SetFlat(plus);
        var (gPlus, _) = hvp.Gradient();
        hvp.Loss.SetFlat(minus);
        var (gMinus, _) = hvp.Gradient();
        hvp.Loss.SetFlat(w);
        using var fd = gPlus.sub(gMinus).div(tensor(2 * eps, ScalarType.Float64));
        var relative = MaxAbsDiff(fd, hv) / MaxAbs(hv);
        Assert.True(relative < 1e-7, $"relative difference to central differences {relative:E2}");
        Assert.Equal(1, hvp.HvpCount);
        Assert.Equal(2, hvp.GradientCount);
    }

    [Fact]
    public void HessianIsSymmetricInTheSenseUHvEqualsVHu()
    {
        var model = TanhNet(hidden: 8);
        using var hvp = new Hvp(model, RandomSet([20, 12]));
        using var gen = new Generator(4);
        using var u = randn(hvp.Dimension, ScalarType.Float64, generator: gen);
        using var v = randn(hvp.Dimension, ScalarType.Float64, generator: gen);
        using var hu = hvp.Apply(u);
        using var hv = hvp.Apply(v);
        var uhv = u.dot(hv).ToDouble();
        var vhu = v.dot(hu).ToDouble();
        Assert.True(Math.Abs(uhv - vhu) <= 1e-12 * Math.Max(1, Math.Abs(uhv)), $"u.Hv = {uhv}, v.Hu = {vhu}");
    }

    [Fact]
    public void BatchesAreWeightedBySizeSoTheSplitDoesNotMatter()
    {
        var model = TanhNet();
        var split = RandomSet([3, 17, 30]);
        var whole = RandomSet([50]);
        using var a = new Hvp(model, split);
        using var b = new Hvp(model, whole);
        using var gen = new Generator(2);
        using var v = randn(a.Dimension, ScalarType.Float64, generator: gen);
        using var ha = a.Apply(v);
        using var hb = b.Apply(v);
        Assert.True(MaxAbsDiff(ha, hb) < 1e-13, $"split vs whole differ by {MaxAbsDiff(ha, hb):E2}");
        var (ga, la) = a.Gradient();
        var (gb, lb) = b.Gradient();
        Assert.Equal(lb, la, 12);
        Assert.True(MaxAbsDiff(ga, gb) < 1e-13);
    }

    [Fact]
    public void CallersPerModuleModesAndBatchNormBuffersAreRestored()
    {
        var model = Synthetic.Mlp(dropout: 0.5);
        model.to(ScalarType.Float64);
        model.train();
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
        modules["drop1"].eval(); // a mixed state the caller chose
        var before = model.named_modules().Select(m => (m.name, m.module.training)).ToArray();
        var buffersBefore = Synthetic.Flatten(model);
        using var data = Synthetic.Blobs(train: 64, test: 8);
        var batches = new List<(Tensor, Tensor)> { (data.Train.Inputs.to(ScalarType.Float64), data.Train.Labels) };
        foreach (var bn in new[] { BatchNormMode.RunningStatistics, BatchNormMode.BatchStatistics })
        {
            using var hvp = new Hvp(model, batches, new LandscapeOptions { BatchNorm = bn, Dropout = DropoutMode.On });
            using var v = ones(hvp.Dimension, ScalarType.Float64);
            using var hv = hvp.Apply(v);
            hvp.Gradient().Gradient.Dispose();
            Assert.True(model.training);
            Assert.Equal(before, model.named_modules().Select(m => (m.name, m.module.training)).ToArray());
            Assert.Equal(buffersBefore, Synthetic.Flatten(model));
        }
    }

    [Fact]
    public void DropoutOffIsDeterministicAndOnIsNot()
    {
        var model = Synthetic.Mlp(dropout: 0.5);
        model.to(ScalarType.Float64);
        model.train();
        using var data = Synthetic.Blobs(train: 64, test: 8);
        var batches = new List<(Tensor, Tensor)> { (data.Train.Inputs.to(ScalarType.Float64), data.Train.Labels) };
        using var off = new Hvp(model, batches);
        using var v = ones(off.Dimension, ScalarType.Float64);
        using var a = off.Apply(v);
        using var b = off.Apply(v);
        Assert.True(a.eq(b).all().ToBoolean(), "dropout off (default) must give identical products");
        using var on = new Hvp(model, batches, new LandscapeOptions { Dropout = DropoutMode.On });
        using var c = on.Apply(v);
        using var d = on.Apply(v);
        Assert.False(c.eq(d).all().ToBoolean(), "dropout on must draw new masks");
    }

    [Fact]
    public void ReusingTheGradientGraphGivesTheSameProductsAndFollowsWeightChanges()
    {
        var model = TanhNet();
        var data = RandomSet([20, 13]);
        using var reused = new Hvp(model, data);
        using var fresh = new Hvp(model, data, new LandscapeOptions { ReuseGradientGraph = false });
        using var gen = new Generator(4);
        using var v = randn(reused.Dimension, ScalarType.Float64, generator: gen);
        using var w = randn(reused.Dimension, ScalarType.Float64, generator: gen);
        using var a1 = reused.Apply(v);
        using var a2 = reused.Apply(w);
        Assert.True(MaxAbsDiff(a1, fresh.Apply(v)) < 1e-14);
        Assert.True(MaxAbsDiff(a2, fresh.Apply(w)) < 1e-14);
        // Change the weights in place (as a training step would): the kept graph is stale and must be rebuilt.
        using (no_grad())
            foreach (var p in model.parameters()) p.mul_(1.5);
        using var b = reused.Apply(v);
        using var expected = fresh.Apply(v);
        Assert.True(MaxAbsDiff(b, expected) < 1e-12, $"after a weight change: {MaxAbsDiff(b, expected):E2}");
        Assert.True(MaxAbsDiff(a1, b) > 1e-6, "the Hessian changed with the weights");
    }

    [Fact]
    public void BatchNormRunningStatisticsAndBatchStatisticsGiveDifferentHessians()
    {
        var model = Synthetic.Mlp(dropout: 0);
        model.to(ScalarType.Float64);
        using var data = Synthetic.Blobs(train: 64, test: 8);
        var batches = new List<(Tensor, Tensor)> { (data.Train.Inputs.to(ScalarType.Float64), data.Train.Labels) };
        using var running = new Hvp(model, batches);
        using var batch = new Hvp(model, batches, new LandscapeOptions { BatchNorm = BatchNormMode.BatchStatistics });
        using var v = ones(running.Dimension, ScalarType.Float64);
        using var a = running.Apply(v);
        using var b = batch.Apply(v);
        Assert.True(MaxAbsDiff(a, b) > 1e-3 * MaxAbs(a), "the two BatchNorm modes define different functions");
        // Running statistics of a fresh BatchNorm are mean 0, variance 1: eval mode is then an affine map with fixed
        // statistics, and the products must not depend on the batch composition.
        var half = new List<(Tensor, Tensor)> { (batches[0].Item1.narrow(0, 0, 32), batches[0].Item2.narrow(0, 0, 32)), (batches[0].Item1.narrow(0, 32, 32), batches[0].Item2.narrow(0, 32, 32)) };
        using var runningSplit = new Hvp(model, half);
        using var c = runningSplit.Apply(v);
        Assert.True(MaxAbsDiff(a, c) < 1e-12);
    }

    [Fact]
    public void ParameterSubsetGivesTheMatchingDiagonalBlock()
    {
        var model = TanhNet();
        var data = RandomSet([40]);
        using var full = new Hvp(model, data);
        using var sub = new Hvp(model, data, new LandscapeOptions { Parameters = ParameterSelection.ByPrefix("fc2") });
        var block = full.Layout.Blocks.First(b => b.Name == "fc2.weight");
        Assert.Equal(new[] { "fc2.weight", "fc2.bias" }, sub.Layout.Blocks.Select(b => b.Name));
        using var gen = new Generator(8);
        using var vSub = randn(sub.Dimension, ScalarType.Float64, generator: gen);
        using var vFull = zeros(full.Dimension, ScalarType.Float64);
        vFull.narrow(0, block.Offset, sub.Dimension).copy_(vSub);
        using var hSub = sub.Apply(vSub);
        using var hFull = full.Apply(vFull);
        Assert.True(MaxAbsDiff(hSub, hFull.narrow(0, block.Offset, sub.Dimension)) < 1e-14);
        Assert.Throws<ArgumentException>(() => new Hvp(model, data, new LandscapeOptions { Parameters = ParameterSelection.ByPrefix("nope") }));
    }

    [Fact]
    public void Float64CopyOfAFloat32ModelMatchesTheFloat64ModelAndLeavesTheCallersModelAlone()
    {
        var model32 = TanhNet(dtype: ScalarType.Float32);
        var parameterObjects = model32.parameters().ToArray();
        var model64 = TanhNet(dtype: ScalarType.Float64);
        var data = RandomSet([30], dtype: ScalarType.Float32);
        using var hvp = new Hvp(model32, data, new LandscapeOptions { ComputeType = ScalarType.Float64, ModelFactory = () => TanhNet(dtype: ScalarType.Float32, seed: 99) });
        using var reference = new Hvp(model64, RandomSet([30], dtype: ScalarType.Float64));
        Assert.Equal(ScalarType.Float64, hvp.Dtype);
        using var v = ones(hvp.Dimension, ScalarType.Float64);
        using var a = hvp.Apply(v);
        using var b = reference.Apply(v);
        // Same seed, so the float64 network holds the float32 weights rounded the same way up to float32 input rounding.
        Assert.True(MaxAbsDiff(a, b) < 1e-6 * MaxAbs(b), $"{MaxAbsDiff(a, b):E2}");
        Assert.All(model32.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.Equal(parameterObjects, model32.parameters().ToArray());
        var withoutFactory = Assert.Throws<ArgumentException>(() => new Hvp(model32, data, new LandscapeOptions { ComputeType = ScalarType.Float64 }));
        Assert.Contains("ModelFactory", withoutFactory.Message);
    }

    [Fact]
    public void WrongVectorLengthIsAClearError()
    {
        using var hvp = new Hvp(TanhNet(), RandomSet([10]));
        using var v = ones(hvp.Dimension + 1, ScalarType.Float64);
        var e = Assert.Throws<ArgumentException>(() => hvp.Apply(v));
        Assert.Contains($"flat vector of {hvp.Dimension} elements", e.Message);
        Assert.Throws<ArgumentException>(() => new Hvp(TanhNet(), []));
    }
}
