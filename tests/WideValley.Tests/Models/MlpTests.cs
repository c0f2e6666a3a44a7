using TorchSharp;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.Tests.Models;

/// <summary>The generalised ReLU (our two-slope form) and the MLP with its zoo variants.</summary>
public class MlpTests
{
    [Fact]
    public void TheGeneralisedReluIsAxAboveZeroAndBxBelowWithThoseSlopesAsGradients()
    {
        using var f = new GeneralizedRelu(positiveSlope: 2, negativeSlope: 0.3);
        var xs = new[] { -2.0, -0.5, 0.25, 3.0 };
        using var x = tensor(xs, ScalarType.Float64).requires_grad_(true);
        using var y = f.call(x);
        Assert.Equal(xs.Select(v => v >= 0 ? 2 * v : 0.3 * v), y.data<double>().ToArray());
        using var s = y.sum();
        s.backward();
        using var g = x.grad!;
        Assert.Equal(xs.Select(v => v >= 0 ? 2.0 : 0.3), g.data<double>().ToArray());
        using var leaky = new GeneralizedRelu();
        using var z = leaky.call(tensor(new[] { -1.0, 1.0 }, ScalarType.Float64));
        Assert.Equal(new[] { -GeneralizedRelu.DefaultNegativeSlope, 1.0 }, z.data<double>().ToArray());
    }

    [Theory]
    [InlineData(0.0, 0.1, "slope for x >= 0 must be a positive number, got 0")]
    [InlineData(1.0, 0.0, "slope for x < 0 must be a positive number (0 would be ReLU), got 0")]
    [InlineData(1.0, double.NaN, "slope for x < 0 must be a positive number (0 would be ReLU), got NaN")]
    [InlineData(double.PositiveInfinity, 0.1, "slope for x >= 0 must be a positive number, got ")]
    public void BadSlopesAreRefused(double a, double b, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => new GeneralizedRelu(a, b));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData(new[] { 7 }, MlpActivation.Sigmoid)]
    [InlineData(new[] { 5, 4 }, MlpActivation.Relu)]
    [InlineData(new[] { 3, 6, 2 }, MlpActivation.GeneralizedRelu)]
    public void LayersParameterCountAndOutputMatchTheWidths(int[] widths, MlpActivation activation)
    {
        using var mlp = new Mlp("t", 2, 3, 4, widths, activation);
        var expected = 0L;
        var inputs = 2 * 3 * 3;
        foreach (var w in widths.Append(4))
        {
            expected += (long)inputs * w + w;
            inputs = w;
        }
        Assert.Equal(expected, ModelZoo.CountParameters(mlp));
        Assert.Equal(expected, Mlp.EstimateSize(2, 3, 4, widths).Parameters);
        Assert.Equal(widths.Length + 1, mlp.parameters().Count(p => p.dim() == 2));
        var activations = mlp.modules().Count(m => activation switch
        {
            MlpActivation.Sigmoid => m is TorchSharp.Modules.Sigmoid,
            MlpActivation.Relu => m is TorchSharp.Modules.ReLU,
            _ => m is GeneralizedRelu,
        });
        Assert.Equal(widths.Length, activations);
        using var x = randn(5, 2, 3, 3);
        using var logits = mlp.call(x);
        Assert.Equal(new long[] { 5, 4 }, logits.shape);
        Assert.Equal(activation, mlp.Activation);
        Assert.Equal(widths, mlp.HiddenWidths);
    }

    [Fact]
    public void TheZooBuildsTheDanteNetworks()
    {
        foreach (var depth in new[] { 1, 2 })
            foreach (var activation in Enum.GetValues<MlpActivation>())
            {
                var name = Mlp.ZooNameOf(depth, activation);
                using var model = ModelZoo.Create(name, new ModelOptions());
                var mlp = Assert.IsType<Mlp>(model);
                Assert.Equal(Enumerable.Repeat(Mlp.ZooWidth, depth), mlp.HiddenWidths);
                Assert.Equal(activation, mlp.Activation);
                Assert.Equal(name, mlp.ZooName);
                Assert.Equal(ModelZoo.CountParameters(model), ModelZoo.EstimateSize(name, new ModelOptions()).Parameters);
                Assert.Equal(0, mlp.HiddenDropout);
            }
        Assert.Equal(784 * 100 + 100 + 100 * 10 + 10, ModelZoo.EstimateSize("mlp1-grelu", new ModelOptions()).Parameters);
        using var dropped = (Mlp)ModelZoo.Create("mlp2-relu", new ModelOptions { Dropout = 0.3 });
        Assert.Equal((0.3, 2), (dropped.HiddenDropout, dropped.HiddenDropoutLayerCount));
    }

    [Fact]
    public void BadShapesAreRefusedByName()
    {
        Assert.Contains("at least one hidden layer", Assert.Throws<ArgumentException>(() => new Mlp("net", 1, 28, 10, [], MlpActivation.Relu)).Message);
        Assert.Contains("net: hidden layer 2 must have at least 1 unit; got 0",
            Assert.Throws<ArgumentException>(() => new Mlp("net", 1, 28, 10, [5, 0], MlpActivation.Relu)).Message);
        Assert.Contains("NumClasses must be positive",
            Assert.Throws<ArgumentException>(() => new Mlp("net", 1, 28, 0, [5], MlpActivation.Relu)).Message);
        Assert.Contains("unknown activation 9", Assert.Throws<ArgumentException>(() => new Mlp("net", 1, 28, 10, [5], (MlpActivation)9)).Message);
        Assert.Contains("[0, 1)", Assert.Throws<ArgumentException>(() => new Mlp("net", 1, 28, 10, [5], MlpActivation.Relu, dropout: 1)).Message);
        Assert.Contains("ImageSize must be positive", Assert.Throws<ArgumentException>(() => ModelZoo.Create("mlp1-sigmoid", new ModelOptions { ImageSize = 0 })).Message);
    }
}
