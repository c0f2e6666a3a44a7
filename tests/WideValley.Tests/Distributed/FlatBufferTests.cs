using TorchSharp;
using WideValley.Distributed;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Distributed;

/// <summary>
/// The flat buffer that lets parameters and gradients travel as one collective per step: copies in and out are exact,
/// views share the buffer's memory, adopted parameters keep training exactly as before, and adopted gradients are
/// accumulated by backward straight into the buffer and survive the optimizer's zero_grad.
/// </summary>
public class FlatBufferTests
{
    static readonly long[][] Shapes = [[3, 4], [5], [2, 1, 3], []];

    static List<Tensor> Random(ScalarType dtype, ulong seed)
    {
        using var gen = new Generator(seed);
        return Shapes.Select(s => randn(s, dtype: ScalarType.Float64, generator: gen).to(dtype)).ToList();
    }

    static nn.Module<Tensor, Tensor> Model(ulong seed)
    {
        manual_seed((long)seed);
        return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2));
    }

    static Tensor Input()
    {
        using var gen = new Generator(3);
        return randn([8, 4], generator: gen);
    }

    static double[] Values(IEnumerable<Tensor> tensors)
    {
        using var scope = NewDisposeScope();
        return cat(tensors.Select(t => t.detach().to(ScalarType.Float64).flatten()).ToList(), 0).data<double>().ToArray();
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void CopyingInAndOutIsExactAndLaysTheTensorsEndToEnd(ScalarType dtype)
    {
        var tensors = Random(dtype, 1);
        var original = Values(tensors);
        using var buffer = FlatBuffer.LayoutOf(tensors);
        Assert.Equal([0L, 12, 17, 23], buffer.Offsets);
        Assert.Equal(24, buffer.ElementCount);
        Assert.Equal(dtype, buffer.Flat.dtype);
        Assert.Equal(1, buffer.Flat.dim());
        Assert.True(buffer.Flat.is_contiguous());

        buffer.CopyFrom(tensors);
        Assert.Equal(original, buffer.Flat.to(ScalarType.Float64).data<double>().ToArray());
        foreach (var t in tensors) t.zero_();
        buffer.CopyTo(tensors);
        Assert.Equal(original, Values(tensors));
        for (var i = 0; i < Shapes.Length; i++) Assert.Equal(Shapes[i], buffer.Views[i].shape);
    }

    [Fact]
    public void ViewsShareTheBuffersMemory()
    {
        var tensors = Random(ScalarType.Float32, 2);
        using var buffer = FlatBuffer.LayoutOf(tensors);
        buffer.Flat.copy_(arange(24, dtype: ScalarType.Float32));
        Assert.Equal(Enumerable.Range(12, 5).Select(i => (float)i), buffer.Views[1].data<float>().ToArray());
        Assert.Equal(23f, buffer.Views[3].item<float>());
        buffer.Views[2].fill_(-1);
        var flat = buffer.Flat.data<float>().ToArray();
        Assert.All(flat[17..23], v => Assert.Equal(-1f, v));
        Assert.Equal(16f, flat[16]);
        Assert.Equal(23f, flat[23]);
    }

    [Fact]
    public void AdoptedParametersAreTheBufferAndTrainExactlyAsBefore()
    {
        using var x = Input();
        var adopted = Model(5);
        var twin = Model(5);
        var parameters = adopted.parameters().ToList();
        var before = Values(parameters);
        using var outputBefore = adopted.call(x);

        using var buffer = FlatBuffer.AdoptParameters(parameters);
        Assert.Equal(before, buffer.Flat.data<float>().ToArray().Select(v => (double)v));
        Assert.All(parameters.Zip(adopted.parameters()), pair => Assert.Same(pair.First, pair.Second));
        using (var outputAfter = adopted.call(x)) Assert.True(outputAfter.eq(outputBefore).all().item<bool>());

        // Two SGD steps with momentum on both models: bit-identical parameters, and the buffer is the parameter vector.
        var sgd = torch.optim.SGD(adopted.parameters(), 0.1, momentum: 0.9);
        var sgdTwin = torch.optim.SGD(twin.parameters(), 0.1, momentum: 0.9);
        for (var step = 0; step < 2; step++)
        {
            foreach (var (model, optimizer) in new[] { (adopted, sgd), (twin, sgdTwin) })
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                model.call(x).square().mean().backward();
                optimizer.step();
            }
        }
        var trained = Values(adopted.parameters());
        Assert.NotEqual(before, trained);
        Assert.Equal(Values(twin.parameters()), trained);
        Assert.Equal(trained, buffer.Flat.data<float>().ToArray().Select(v => (double)v));

        // And writes through the buffer are the parameters' values.
        using (no_grad()) buffer.Flat.mul_(2);
        Assert.Equal(trained.Select(v => (double)(float)(2 * (float)v)), Values(adopted.parameters()));
    }

    [Fact]
    public void AdoptedGradientsAccumulateIntoTheBufferAndSurviveZeroGrad()
    {
        using var x = Input();
        var model = Model(7);
        var twin = Model(7);
        var parameters = model.parameters().ToList();
        using var gradients = FlatBuffer.LayoutOf(parameters);
        gradients.AdoptGradients(parameters);
        Assert.True(gradients.GradientsAreViews(parameters));
        var sgd = torch.optim.SGD(model.parameters(), 0.05);
        var sgdTwin = torch.optim.SGD(twin.parameters(), 0.05);

        for (var step = 0; step < 3; step++)
        {
            foreach (var (m, optimizer) in new[] { (model, sgd), (twin, sgdTwin) })
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                m.call(x).square().mean().backward();
            }
            Assert.True(gradients.GradientsAreViews(parameters), $"step {step}: a gradient left the buffer");
            var expected = Values(twin.parameters().Select(p => p.grad!));
            Assert.Equal(expected, gradients.Flat.data<float>().ToArray().Select(v => (double)v));
            Assert.Contains(expected, g => g != 0);
            sgd.step();
            sgdTwin.step();
        }
        Assert.Equal(Values(twin.parameters()), Values(model.parameters()));

        parameters[0].grad = null;
        Assert.False(gradients.GradientsAreViews(parameters));
    }

    [Fact]
    public void GradientsCopyInAndOutAndAMissingGradientReadsAsZeros()
    {
        using var x = Input();
        var model = Model(9);
        var parameters = model.parameters().ToList();
        model.call(x).sum().backward();
        parameters[1].grad = null;
        using var buffer = FlatBuffer.LayoutOf(parameters);
        buffer.Flat.fill_(3);
        buffer.CopyGradientsFrom(parameters);
        Assert.True(buffer.Views[1].eq(0).all().item<bool>());
        using (var g0 = parameters[0].grad!) Assert.True(buffer.Views[0].eq(g0).all().item<bool>());

        buffer.Flat.fill_(0.25f);
        buffer.CopyGradientsTo(parameters);
        Assert.All(parameters, p =>
        {
            using var g = p.grad!;
            Assert.True(g.eq(0.25f).all().item<bool>());
        });
        Assert.False(buffer.GradientsAreViews(parameters));
    }

    [Fact]
    public void MixedTypesAndMismatchedLayoutsAreRefusedWithWhatWasGiven()
    {
        using var a = zeros(3);
        using var b = zeros(3, dtype: ScalarType.Float64);
        var mixed = Assert.Throws<ArgumentException>(() => FlatBuffer.LayoutOf([a, b]));
        Assert.Contains("tensor 1 is Float64", mixed.Message);
        Assert.Contains("tensor 0 is Float32", mixed.Message);

        Assert.Contains("at least one tensor", Assert.Throws<ArgumentException>(() => FlatBuffer.LayoutOf([])).Message);

        using var buffer = FlatBuffer.LayoutOf([a]);
        using var wrong = zeros(4);
        Assert.Contains("Float32 [4], but this flat buffer holds Float32 [3]",
            Assert.Throws<ArgumentException>(() => buffer.CopyFrom([wrong])).Message);
        Assert.Contains("laid out for 1 tensors; got 2", Assert.Throws<ArgumentException>(() => buffer.CopyTo([a, a])).Message);
    }

    [Fact]
    public void TheSingleProcessAverageOfAnAdoptedParameterBufferChangesNothing()
    {
        var model = Model(11);
        var parameters = model.parameters().ToList();
        var before = Values(parameters);
        using var buffer = FlatBuffer.AdoptParameters(parameters);
        using var collectives = new SingleProcessCollectives();
        collectives.AllReduceAverage(buffer.Flat);
        collectives.Broadcast(buffer.Flat, 0);
        Assert.Equal(before, Values(parameters));
    }
}
