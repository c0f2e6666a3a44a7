using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.Tests.Models;

/// <summary>
/// The batched trainer of many one-hidden-layer networks against the same networks as plain TorchSharp modules, one
/// at a time, in float64: forward, loss, gradients, SGD and evaluation agree to rounding.
/// </summary>
public class BatchedOneHiddenLayerTests
{
    const int M = 3, In = 6, Hidden = 5, Out = 4;

    static BatchedOneHiddenLayer NewBatch(long firstSeed = 10)
    {
        var batch = new BatchedOneHiddenLayer(M, In, Hidden, Out, ScalarType.Float64);
        batch.InitializeUniform(Enumerable.Range(0, M).Select(i => firstSeed + i).ToArray(), -1, 1);
        return batch;
    }

    static (Tensor X, Tensor Y) Data(int n, long seed)
    {
        using var g = new Generator((ulong)seed);
        return (rand([n, In], ScalarType.Float64, generator: g), randint(0, Out, [n], ScalarType.Int64, generator: g));
    }

    [Fact]
    public void ForwardLossAndGradientsEqualSeparateNetworks()
    {
        using var scope = NewDisposeScope();
        using var batch = NewBatch();
        using var g = new Generator(3);
        var x = rand([M, 7, In], ScalarType.Float64, generator: g);
        var y = randint(0, Out, [M, 7], ScalarType.Int64, generator: g);
        var losses = batch.Losses(x, y);
        losses.sum().backward();
        for (var i = 0; i < M; i++)
        {
            using var net = batch.ExtractNetwork(i);
            var logits = net.call(x[i]);
            var loss = nn.functional.cross_entropy(logits, y[i]);
            loss.backward();
            Assert.Equal(loss.item<double>(), losses[i].item<double>(), 1e-12);
            Assert.True(batch.Forward(x)[i].allclose(logits, rtol: 0, atol: 1e-12));
            var p = net.parameters().ToArray();
            AssertClose(p[0].grad!.t(), batch.W1.grad![i]);
            AssertClose(p[1].grad!, batch.B1.grad![i].squeeze(0));
            AssertClose(p[2].grad!.t(), batch.W2.grad![i]);
            AssertClose(p[3].grad!, batch.B2.grad![i].squeeze(0));
        }
    }

    [Fact]
    public void SharedInputsGiveTheSameLogitsAsPerNetworkCopies()
    {
        using var scope = NewDisposeScope();
        using var batch = NewBatch();
        var (x, _) = Data(9, 4);
        var shared = batch.Forward(x);
        var copied = batch.Forward(x.unsqueeze(0).expand(M, 9, In).contiguous());
        AssertClose(shared, copied);
    }

    [Fact]
    public void BatchedSgdEqualsSeparateSgdRuns()
    {
        using var scope = NewDisposeScope();
        using var batch = NewBatch();
        var (x, y) = Data(23, 5);
        var nets = Enumerable.Range(0, M).Select(i => batch.ExtractNetwork(i)).ToArray();
        var optimizers = nets.Select(n => optim.SGD(n.parameters(), 0.3)).ToArray();
        const int batchSize = 5; // 23 = 4 x 5 + 3: the last minibatch is smaller
        double[] lrs = [0.3, 0.1];
        for (var epoch = 0; epoch < lrs.Length; epoch++)
        {
            using var g = new Generator((ulong)(100 + epoch));
            var orders = stack(Enumerable.Range(0, M).Select(_ => randperm(23, generator: g)).ToArray());
            var epochLoss = batch.TrainEpoch(x, y, orders, batchSize, lrs[epoch]);
            for (var i = 0; i < M; i++)
            {
                foreach (var group in optimizers[i].ParamGroups) group.LearningRate = lrs[epoch];
                var sum = 0.0;
                var steps = 0;
                for (var start = 0; start < 23; start += batchSize)
                {
                    var index = orders[i].narrow(0, start, Math.Min(batchSize, 23 - start));
                    optimizers[i].zero_grad();
                    var loss = nn.functional.cross_entropy(nets[i].call(x.index_select(0, index)), y.index_select(0, index));
                    loss.backward();
                    optimizers[i].step();
                    sum += loss.item<double>();
                    steps++;
                }
                Assert.Equal(sum / steps, epochLoss[i], 1e-12);
            }
        }
        for (var i = 0; i < M; i++)
        {
            var p = nets[i].parameters().ToArray();
            AssertClose(p[0].t(), batch.W1[i]);
            AssertClose(p[1], batch.B1[i].squeeze(0));
            AssertClose(p[2].t(), batch.W2[i]);
            AssertClose(p[3], batch.B2[i].squeeze(0));
        }
        // The runs moved: a comparison of untouched parameters would pass for a broken step.
        using var start0 = NewBatch();
        Assert.False(start0.W1.allclose(batch.W1, rtol: 0, atol: 1e-3));
    }

    [Fact]
    public void EvaluateEqualsSeparateEvaluation()
    {
        using var scope = NewDisposeScope();
        using var batch = NewBatch();
        var (x, y) = Data(31, 6);
        var (loss, error) = batch.Evaluate(x, y, batchSize: 8);
        for (var i = 0; i < M; i++)
        {
            using var net = batch.ExtractNetwork(i);
            var logits = net.call(x);
            Assert.Equal(nn.functional.cross_entropy(logits, y).item<double>(), loss[i], 1e-12);
            Assert.Equal(logits.argmax(1).ne(y).to(ScalarType.Float64).mean().item<double>(), error[i], 1e-12);
        }
    }

    [Fact]
    public void ANetworksStartDependsOnItsSeedAlone()
    {
        using var scope = NewDisposeScope();
        using var three = NewBatch(firstSeed: 40);
        using var one = new BatchedOneHiddenLayer(1, In, Hidden, Out, ScalarType.Float64);
        one.InitializeUniform([41], -1, 1);
        Assert.True(three.W1[1].allclose(one.W1[0], rtol: 0, atol: 0));
        Assert.True(three.B2[1].allclose(one.B2[0], rtol: 0, atol: 0));
        Assert.False(three.W1[0].allclose(three.W1[1], rtol: 0, atol: 0));
        // U(-1, 1) / sqrt(fan_in): inside the scaled cube, and filling it.
        var bound = 1 / Math.Sqrt(In);
        Assert.True(three.W1.abs().max().item<double>() <= bound);
        Assert.True(three.W1.abs().max().item<double>() > 0.8 * bound);
        Assert.True(three.W2.abs().max().item<double>() <= 1 / Math.Sqrt(Hidden));
    }

    [Fact]
    public void SetNetworkRoundTripsAndRejectsAnotherShape()
    {
        using var scope = NewDisposeScope();
        using var batch = NewBatch();
        using var net = batch.ExtractNetwork(2);
        using var other = new BatchedOneHiddenLayer(1, In, Hidden, Out, ScalarType.Float64);
        other.SetNetwork(0, net);
        Assert.True(other.W2[0].allclose(batch.W2[2], rtol: 0, atol: 0));
        using var wrong = nn.Sequential(("fc1", nn.Linear(In, Hidden + 1)), ("relu", nn.ReLU()), ("fc2", nn.Linear(Hidden + 1, Out)));
        Assert.Throws<ArgumentException>(() => other.SetNetwork(0, wrong));
        Assert.Throws<ArgumentException>(() => batch.Forward(zeros([2, M, In], ScalarType.Float64)));
        Assert.Throws<ArgumentException>(() => batch.InitializeUniform([1, 2], -1, 1));
    }

    [Fact]
    public void AreaAveragingDownsamplesByWindowMeans()
    {
        using var scope = NewDisposeScope();
        // 4x4 -> 2x2: each output pixel is the mean of a 2x2 block.
        var image = arange(16, ScalarType.Float32).view(1, 1, 4, 4);
        var small = ImageDownsampling.AreaAverageFlat(image, 2);
        Assert.Equal([1L, 4L], small.shape);
        Assert.Equal([2.5f, 4.5f, 10.5f, 12.5f], small.data<float>().ToArray());
        // 28 -> 10: output (0, 0) averages rows and columns 0..2 (floor(0) .. ceil(2.8) - 1); (9, 9) rows 25..27.
        using var g = new Generator(7);
        var digits = randint(0, 256, [2, 1, 28, 28], ScalarType.Byte, generator: g);
        var ten = ImageDownsampling.AreaAverageFlat(digits, 10);
        Assert.Equal([2L, 100L], ten.shape);
        var f = digits.to(ScalarType.Float64);
        Assert.Equal(f[1, 0, TensorIndex.Slice(0, 3), TensorIndex.Slice(0, 3)].mean().item<double>(), ten[1, 0].item<float>(), 1e-4);
        Assert.Equal(f[0, 0, TensorIndex.Slice(25, 28), TensorIndex.Slice(25, 28)].mean().item<double>(), ten[0, 99].item<float>(), 1e-4);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageDownsampling.AreaAverageFlat(digits, 29));
        Assert.Throws<ArgumentException>(() => ImageDownsampling.AreaAverageFlat(digits.view(2, 28, 28), 10));
    }

    static void AssertClose(Tensor expected, Tensor actual) =>
        Assert.True(expected.allclose(actual, rtol: 0, atol: 1e-10), $"max difference {(expected - actual).abs().max().item<double>():G3}");
}
