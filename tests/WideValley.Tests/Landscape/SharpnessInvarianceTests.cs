using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using static WideValley.Tests.Landscape.SharpnessFixtures;

namespace WideValley.Tests.Landscape;

/// <summary>
/// Dinh et al.'s ReLU rescaling (layer 1 times alpha, layer 2 times 1 / alpha): the function is unchanged, the
/// invariant measures keep their value and the others move, as each measure's <see cref="RescalingInvariance"/> says.
/// </summary>
public sealed class SharpnessInvarianceTests
{
    private const double Alpha = 5;

    private static (nn.Module<Tensor, Tensor> Net, nn.Module<Tensor, Tensor> Rescaled, List<(Tensor Inputs, Tensor Labels)> Data) Pair(Tensor alphas)
    {
        var net = ReluNet();
        var rescaled = ReluNet();
        Rescale(rescaled, alphas);
        var data = RandomSet([12, 8], inputs: 5, classes: 3, seed: 23);
        return (net, rescaled, data);
    }

    private static void AssertSameFunction(nn.Module<Tensor, Tensor> net, nn.Module<Tensor, Tensor> rescaled, List<(Tensor Inputs, Tensor Labels)> data)
    {
        using var scope = NewDisposeScope();
        var x = cat(data.Select(d => d.Inputs).ToArray(), 0);
        var difference = MaxAbsDiff(net.call(x), rescaled.call(x));
        Assert.True(difference < 1e-12, $"the rescaled network computes another function (max difference {difference})");
        Assert.True(MaxAbsDiff(net.parameters().First(), rescaled.parameters().First()) > 0.1, "the weights were not rescaled");
    }

    private static double RelativeChange(double a, double b) => Math.Abs(a - b) / Math.Abs(a);

    [Fact]
    public void PerLayerRescalingLeavesTheInvariantMeasuresAndMovesTheOthers()
    {
        var (net, rescaled, data) = Pair(full(7, Alpha, ScalarType.Float64));
        AssertSameFunction(net, rescaled, data);

        // ASAM with eta = 0: Kwon et al.'s exactly scale-invariant adaptive sharpness, one step and several.
        foreach (var steps in new[] { 1, 5 })
        {
            var options = new AdaptiveSharpnessOptions { Rho = 0.5, Eta = 0, Steps = steps };
            var before = Sharpness.Adaptive(net, data, options);
            var after = Sharpness.Adaptive(rescaled, data, options);
            Assert.Equal(RescalingInvariance.Invariant, before.Invariance);
            Assert.True(before.Value > 1e-3, $"ASAM value {before.Value} too small to compare");
            Assert.True(RelativeChange(before.Value, after.Value) < 1e-9, $"ASAM ({steps} steps) moved: {before.Value} -> {after.Value}");
            Assert.Equal(before.ScaledPerturbationNorm, after.ScaledPerturbationNorm, 1e-12);
        }

        // The measures that are not invariant move by more than 1.5x (in one direction or the other).
        var sam = new SamSharpnessOptions { Rho = 0.1, Steps = 3 };
        AssertMoves("SAM", Sharpness.Sam(net, data, sam), Sharpness.Sam(rescaled, data, sam));
        var keskar = new EpsilonSharpnessOptions { Epsilon = 0.01, Steps = 10 };
        AssertMoves("epsilon-sharpness", Sharpness.Epsilon(net, data, keskar), Sharpness.Epsilon(rescaled, data, keskar));
        var sigma = new PacBayesFlatnessOptions { Criterion = PacBayesCriterion.Loss, Threshold = 0.05, Samples = 8, SigmaHigh = 4 };
        AssertMoves("PAC-Bayes sigma'", Sharpness.PacBayes(net, data, sigma), Sharpness.PacBayes(rescaled, data, sigma));

        // The magnitude-aware sigma' with eps = 0: the noise sigma |x_i| z_i rescales with the weights, draw by draw.
        var magnitude = sigma with { MagnitudeAware = true, MagnitudeEpsilon = 0 };
        var magnitudeBefore = Sharpness.PacBayes(net, data, magnitude);
        var magnitudeAfter = Sharpness.PacBayes(rescaled, data, magnitude);
        Assert.Equal(RescalingInvariance.Invariant, magnitudeBefore.Invariance);
        Assert.Equal(BracketOutcome.Inside, magnitudeBefore.Outcome);
        Assert.True(RelativeChange(magnitudeBefore.Value, magnitudeAfter.Value) < 1e-9,
            $"magnitude-aware sigma' moved: {magnitudeBefore.Value} -> {magnitudeAfter.Value}");

        // With ASAM's default eta = 0.01 the invariance is approximate: it moves, but much less than SAM.
        var asam = new AdaptiveSharpnessOptions { Rho = 0.5, Steps = 3 };
        var asamBefore = Sharpness.Adaptive(net, data, asam);
        var asamAfter = Sharpness.Adaptive(rescaled, data, asam);
        var samBefore = Sharpness.Sam(net, data, sam);
        var samAfter = Sharpness.Sam(rescaled, data, sam);
        Assert.Equal(RescalingInvariance.ApproximatelyInvariant, asamBefore.Invariance);
        Assert.True(RelativeChange(asamBefore.Value, asamAfter.Value) < 0.2 * RelativeChange(samBefore.Value, samAfter.Value),
            $"ASAM (eta 0.01) {asamBefore.Value} -> {asamAfter.Value}; SAM {samBefore.Value} -> {samAfter.Value}");
    }

    private static void AssertMoves(string name, SharpnessResult before, SharpnessResult after)
    {
        Assert.Equal(RescalingInvariance.NotInvariant, before.Invariance);
        var ratio = after.Value / before.Value;
        Assert.True(ratio > 1.5 || ratio < 1 / 1.5, $"{name} should move under the rescaling by more than 1.5x: {before.Value} -> {after.Value}");
    }

    [Fact]
    public void PerNeuronRescalingLeavesAdaptiveSharpnessAndMagnitudeAwareSigmaUnchanged()
    {
        // Kwon et al.'s element-wise T_x = diag(|x_i|) satisfies T_{Ax}^-1 A = T_x^-1 for any positive diagonal A, so
        // each hidden neuron may have its own alpha.
        var (net, rescaled, data) = Pair(tensor(new[] { 0.2, 5.0, 1.7, 0.5, 3.0, 9.0, 0.3 }, ScalarType.Float64));
        AssertSameFunction(net, rescaled, data);
        var options = new AdaptiveSharpnessOptions { Rho = 0.5, Eta = 0, Steps = 4 };
        var before = Sharpness.Adaptive(net, data, options);
        var after = Sharpness.Adaptive(rescaled, data, options);
        Assert.True(RelativeChange(before.Value, after.Value) < 1e-9, $"ASAM moved: {before.Value} -> {after.Value}");
        var sigma = new PacBayesFlatnessOptions
        {
            Criterion = PacBayesCriterion.Loss, Threshold = 0.05, Samples = 6, SigmaHigh = 4, MagnitudeAware = true, MagnitudeEpsilon = 0,
        };
        var sigmaBefore = Sharpness.PacBayes(net, data, sigma);
        var sigmaAfter = Sharpness.PacBayes(rescaled, data, sigma);
        Assert.True(RelativeChange(sigmaBefore.Value, sigmaAfter.Value) < 1e-9, $"sigma'_mag moved: {sigmaBefore.Value} -> {sigmaAfter.Value}");
        // SAM sees the reparametrisation.
        var sam = new SamSharpnessOptions { Rho = 0.1, Steps = 3 };
        var samBefore = Sharpness.Sam(net, data, sam);
        var samAfter = Sharpness.Sam(rescaled, data, sam);
        Assert.True(RelativeChange(samBefore.Value, samAfter.Value) > 0.1, $"SAM {samBefore.Value} -> {samAfter.Value}");
    }
}
