using TorchSharp;
using WideValley.Connectivity;
using static TorchSharp.torch;

namespace WideValley.Tests.Connectivity;

public class ParameterCompatibilityTests
{
    static nn.Module Net(int hidden = 500, bool secondBias = true, ScalarType dtype = ScalarType.Float32, bool extraLayer = false)
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>
        {
            ("fc1", nn.Linear(784, hidden)),
            ("relu", nn.ReLU()),
            ("fc2", nn.Linear(hidden, 10, hasBias: secondBias)),
        };
        if (extraLayer) layers.Add(("fc3", nn.Linear(10, 10)));
        var net = nn.Sequential(layers);
        net.to(dtype);
        return net;
    }

    static ParameterSignature P(string name, params long[] shape) => new(name, shape, ScalarType.Float32);

    [Fact]
    public void IdenticalArchitecturesAgree()
    {
        using var a = Net();
        using var b = Net();
        Assert.Null(ParameterCompatibility.FirstDifference(a, b));
        ParameterCompatibility.Require(a, b);
    }

    [Fact]
    public void AShapeDifferenceNamesTheParameterAndBothShapes()
    {
        using var a = Net();
        using var b = Net(hidden: 300);
        var d = ParameterCompatibility.FirstDifference(a, b)!;
        // fc1.weight is the first parameter and already differs.
        Assert.Equal(("fc1.weight", ParameterDifferenceKind.Shape), (d.Name, d.Kind));
        Assert.Equal("model B differs at 'fc1.weight': shape [500, 784] in A, [300, 784] in B", d.Message);

        var e = ParameterCompatibility.FirstDifference([P("fc1.weight", 500, 784), P("fc2.weight", 10, 500)],
            [P("fc1.weight", 500, 784), P("fc2.weight", 10, 300)])!;
        Assert.Equal("model B differs at 'fc2.weight': shape [10, 500] in A, [10, 300] in B", e.Message);
    }

    [Fact]
    public void ADtypeDifferenceIsNamed()
    {
        using var a = Net();
        using var b = Net(dtype: ScalarType.Float64);
        var d = ParameterCompatibility.FirstDifference(a, b, "a.pt", "b.pt")!;
        Assert.Equal(ParameterDifferenceKind.Dtype, d.Kind);
        Assert.Equal("model b.pt differs at 'fc1.weight': dtype Float32 in a.pt, Float64 in b.pt", d.Message);
    }

    [Fact]
    public void AMissingParameterIsNamed()
    {
        using var a = Net();
        using var b = Net(secondBias: false);
        var d = ParameterCompatibility.FirstDifference(a, b)!;
        Assert.Equal(("fc2.bias", ParameterDifferenceKind.Missing), (d.Name, d.Kind));
        Assert.Equal("model B differs at 'fc2.bias': present in A (shape [10]), missing in B", d.Message);
    }

    [Fact]
    public void AnExtraParameterIsNamed()
    {
        using var a = Net();
        using var b = Net(extraLayer: true);
        var d = ParameterCompatibility.FirstDifference(a, b)!;
        Assert.Equal(("fc3.weight", ParameterDifferenceKind.Extra), (d.Name, d.Kind));
        Assert.Equal("model B differs at 'fc3.weight': not in A, present in B (shape [10, 10])", d.Message);
        // An extra parameter in the middle is found where it appears, not only at the end.
        var m = ParameterCompatibility.FirstDifference([P("x", 2), P("y", 3)], [P("x", 2), P("new", 4), P("y", 3)])!;
        Assert.Equal(("new", ParameterDifferenceKind.Extra), (m.Name, m.Kind));
    }

    [Fact]
    public void TheSameParametersInAnotherOrderAreAnOrderDifference()
    {
        var d = ParameterCompatibility.FirstDifference([P("x", 2), P("y", 3)], [P("y", 3), P("x", 2)])!;
        Assert.Equal(("x", ParameterDifferenceKind.Order), (d.Name, d.Kind));
        Assert.StartsWith("model B differs at 'x': it is parameter 1 of 2 in A but 2 of 2 in B", d.Message);
    }

    [Fact]
    public void FrozenParametersAreNotPartOfTheComparison()
    {
        using var a = Net();
        using var b = Net(extraLayer: true);
        foreach (var (name, p) in b.named_parameters())
            if (name.StartsWith("fc3.", StringComparison.Ordinal)) p.requires_grad = false;
        Assert.Null(ParameterCompatibility.FirstDifference(a, b));
    }

    [Fact]
    public void RequireThrowsWithTheFirstDifference()
    {
        using var a = Net();
        using var b = Net(hidden: 300);
        var e = Assert.Throws<ArgumentException>(() => ParameterCompatibility.Require(a, b, "left.pt", "right.pt"));
        Assert.StartsWith("model right.pt differs at 'fc1.weight': shape [500, 784] in left.pt, [300, 784] in right.pt", e.Message);
        Assert.Contains("same architecture", e.Message);
    }

    [Fact]
    public void ADuplicatedNameIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => ParameterCompatibility.FirstDifference([P("x", 2), P("x", 2)], [P("x", 2)]));
        Assert.Contains("lists parameter 'x' twice", e.Message);
    }
}
