using WideValley.Connectivity;
using static TorchSharp.torch;
using static WideValley.Tests.Connectivity.ConnectivityToys;

namespace WideValley.Tests.Connectivity;

public sealed class ParameterPathTests
{
    [Fact]
    public void InterpolationIsOneMinusTTimesAPlusTTimesB()
    {
        using var a = Vector(1, -2, 3.5);
        using var b = Vector(-0.5, 4, 0.25);
        foreach (var t in new[] { 0.0, 0.05, 0.3, 0.5, 0.95, 1.0 })
        {
            using var p = ParameterPath.Interpolate(a, b, t);
            var expected = Values(a).Zip(Values(b), (x, y) => (1 - t) * x + t * y).ToArray();
            Assert.Equal(expected, Values(p));
        }
        using var f32 = a.to(ScalarType.Float32);
        using var g32 = b.to(ScalarType.Float32);
        using var mid = ParameterPath.Interpolate(f32, g32, 0.5);
        Assert.Equal(ScalarType.Float32, mid.dtype);
        Assert.Throws<ArgumentException>(() => ParameterPath.Interpolate(a, b, double.NaN));
        using var other = Vector(1, 2);
        Assert.Contains("shapes [3] and [2]", Assert.Throws<ArgumentException>(() => ParameterPath.Interpolate(a, other, 0.5)).Message);
    }

    [Fact]
    public void InterpolatingIntoABufferGivesTheSamePointsAsANewTensor()
    {
        using var a = randn(1000, dtype: ScalarType.Float32, generator: new TorchSharp.torch.Generator(1));
        using var b = randn(1000, dtype: ScalarType.Float32, generator: new TorchSharp.torch.Generator(2));
        using var buffer = empty_like(a);
        foreach (var t in new[] { 0.0, 0.05, 0.35, 0.5, 0.95, 1 })
        {
            using var fresh = ParameterPath.Interpolate(a, b, t);
            Assert.True(SameValues(fresh, ParameterPath.InterpolateInto(buffer, a, b, t)), $"t = {t}");
        }
        Assert.True(SameValues(ParameterPath.InterpolateInto(buffer, a, b, 1), b));
        Assert.True(SameValues(ParameterPath.InterpolateInto(buffer, a, b, 0), a));
        using var small = empty(3);
        Assert.Equal("destination", Assert.Throws<ArgumentException>(() => ParameterPath.InterpolateInto(small, a, b, 0.5)).ParamName);
    }

    [Fact]
    public void NormalisedLengthsCountWeightsOrEveryEntry()
    {
        // Entries (weight, bias): A = (0, 0), M = (1, 1), B = (2, 0). All entries: (√2 + √2)/2; weights only: (1 + 1)/2.
        using var a = Vector(0, 0);
        using var m = Vector(1, 1);
        using var b = Vector(2, 0);
        using var mask = Vector(1, 0);
        var lengths = ParameterPath.NormalizedLengths([a, m, b], mask);
        Assert.Equal(Math.Sqrt(2), lengths.AllParameters, 1e-15);
        Assert.Equal(1.0, lengths.WeightsOnly, 1e-15);
        Assert.Equal(lengths.AllParameters, ParameterPath.NormalizedLengths([a, m, b], null).WeightsOnly);
        Assert.Equal(2 * Math.Sqrt(2), ParameterPath.Length([a, m, b]), 1e-15);
        Assert.Equal(lengths.WeightsOnly, lengths.Of(LengthVersion.WeightsOnly));
    }

    [Fact]
    public void LengthsAreComputedInFloat64()
    {
        // Collinear float32 points along the diagonal with irregular steps: the ratio is 1 up to float64 rounding only
        // if differences and norms are taken in float64 (in float32 each √2·|d| is rounded to ~6e-8 relative).
        var generator = new Random(3);
        var x = 1000f;
        var points = new List<Tensor>();
        for (var k = 0; k < 200; k++)
        {
            points.Add(tensor(new[] { x, x }));
            x += (float)(0.01 + generator.NextDouble());
        }
        Assert.Equal(1.0, ParameterPath.NormalizedLength(points, null, LengthVersion.AllParameters), 1e-13);
        foreach (var p in points) p.Dispose();
    }

    [Fact]
    public void CoincidingEndpointsAreAClearError()
    {
        using var a = Vector(1, 5);
        using var m = Vector(2, 0);
        using var b = Vector(1, 7);
        using var mask = Vector(1, 0);
        var all = Assert.Throws<ArgumentException>(() => ParameterPath.NormalizedLength([a, m, a], null, LengthVersion.AllParameters));
        Assert.Contains("endpoints coincide", all.Message);
        var weights = Assert.Throws<ArgumentException>(() => ParameterPath.NormalizedLength([a, m, b], mask, LengthVersion.WeightsOnly));
        Assert.Contains("on the weight entries", weights.Message);
        Assert.Contains("weights-only", weights.Message);
        Assert.Throws<ArgumentException>(() => ParameterPath.NormalizedLength([a], null, LengthVersion.AllParameters));
    }
}
