using WideValley.Experiments;

namespace WideValley.Tests.Experiments;

/// <summary>
/// The Fig. 2 experiment's parts against exact quadrature: the Langevin estimates, where -F has its minimum at a
/// small and a large scope, and where the optimizers end.
/// </summary>
public class LocalEntropyToyExperimentTests
{
    /// <summary>Few points and chains, so a check takes about a second; the tolerance stays tight enough to matter.</summary>
    static readonly LocalEntropyToySettings Quick = LocalEntropyToySettings.For(Budget.Smoke) with { LangevinPoints = 6, LangevinChains = 1024 };

    /// <summary>The default landscape mirrored: the wide valley on the right, the sharp one on the left.</summary>
    static readonly TwoWellLandscape Mirrored = new() { WideCentre = 1.2, SharpCentre = -0.8 };

    [Theory]
    [InlineData(1.0, 11)]
    [InlineData(100.0, 12)]
    public void LangevinGibbsMeanAndLocalEntropyAgreeWithQuadrature(double gamma, long seed)
    {
        var check = LocalEntropyToy.CheckLangevin(Quick, gamma, seed);
        for (var i = 0; i < check.X.Length; i++)
        {
            var error = Math.Abs(check.GibbsMean[i] - check.ExactGibbsMean[i]);
            Assert.True(error <= check.Tolerance(i),
                $"gamma {gamma}, x = {check.X[i]}: <x'> estimated {check.GibbsMean[i]:F4} +- {check.GibbsMeanStandardError[i]:F4}, quadrature {check.ExactGibbsMean[i]:F4}");
            // -F from the same chains: exp(f / T) lies in [e^-2.5, 1], so its mean has a small relative error.
            Assert.True(Math.Abs(check.NegativeLocalEntropy[i] - check.ExactNegativeLocalEntropy[i]) < 0.03,
                $"gamma {gamma}, x = {check.X[i]}: -F estimated {check.NegativeLocalEntropy[i]:F4}, quadrature {check.ExactNegativeLocalEntropy[i]:F4}");
        }
        Assert.True(check.Agrees);
        // The tolerance must be able to fail: here it is a few hundredths, less than the Gibbs mean moves if the chains
        // ran at half the temperature.
        Assert.True(check.MaxTolerance < 0.1, $"tolerance {check.MaxTolerance:F3} is too loose to test anything");
    }

    [Fact]
    public void TheSameSeedGivesTheSameEstimatesAndAnotherSeedOtherOnes()
    {
        var settings = Quick with { LangevinChains = 16 };
        var a = LocalEntropyToy.CheckLangevin(settings, 1, 5);
        var b = LocalEntropyToy.CheckLangevin(settings, 1, 5);
        var c = LocalEntropyToy.CheckLangevin(settings, 1, 6);
        Assert.Equal(a.GibbsMean, b.GibbsMean);
        Assert.Equal(a.NegativeLocalEntropy, b.NegativeLocalEntropy);
        Assert.NotEqual(a.GibbsMean, c.GibbsMean);
    }

    [Fact]
    public void TheToleranceTellsTheRightTemperatureFromAWrongOne()
    {
        // Langevin at T = 1 against quadrature at T = 1/2: a wrong noise scale must show as a disagreement.
        var check = LocalEntropyToy.CheckLangevin(Quick, 1, 13);
        var colder = Quick with { Temperature = 0.5 };
        var outside = check.X.Where((x, i) => Math.Abs(check.GibbsMean[i] - LocalEntropyToy.Exact(colder, x, 1).GibbsMean) > check.Tolerance(i)).Count();
        Assert.True(outside >= 2, $"only {outside} of {check.X.Length} points tell T = 1 from T = 1/2");
    }

    [Theory]
    [MemberData(nameof(Landscapes))]
    public void TheMinimumOfMinusFMovesFromTheWideValleyToTheSharpOneAsTheScopeGrows(TwoWellLandscape landscape)
    {
        var settings = LocalEntropyToySettings.For(Budget.Smoke) with { Landscape = landscape, CurvePoints = 401 };
        var valleys = landscape.Analyze();
        var x = LocalEntropyToy.Grid(settings.XMin, settings.XMax, settings.CurvePoints);
        // f's own global minimum is the sharp one: local entropy, not depth, must make the difference.
        Assert.True(landscape.Value(valleys.SharpMinimum) < landscape.Value(valleys.WideMinimum));

        var small = LocalEntropyToy.LocalEntropyCurve(settings, x, settings.SmallScope);
        var large = LocalEntropyToy.LocalEntropyCurve(settings, x, settings.LargeScope);
        foreach (var curve in new[] { small, large })
        {
            // The refined minimum is the curve's lowest point, up to the grid spacing.
            var lowest = x[Array.IndexOf(curve.NegativeLocalEntropy, curve.NegativeLocalEntropy.Min())];
            Assert.InRange(curve.GlobalMinimum, lowest - (x[1] - x[0]), lowest + (x[1] - x[0]));
            Assert.True(curve.GlobalMinimumValue <= curve.NegativeLocalEntropy.Min() + 1e-12);
        }
        Assert.Equal(EndValley.Wide, LocalEntropyToy.Classify(landscape, valleys, small.GlobalMinimum));
        Assert.Equal(EndValley.Sharp, LocalEntropyToy.Classify(landscape, valleys, large.GlobalMinimum));
        Assert.InRange(large.GlobalMinimum, valleys.SharpMinimum - 0.02, valleys.SharpMinimum + 0.02);
        // At the large scope the wide valley keeps a local minimum of -F, at f's.
        Assert.Contains(large.LocalMinima, m => Math.Abs(m - valleys.WideMinimum) < 0.02);

        // The switch lies strictly between the scopes, and the valleys on either side of it are the ones claimed.
        var switchScope = LocalEntropyToy.SwitchScope(settings, valleys);
        Assert.InRange(switchScope, settings.SmallScope, settings.LargeScope);
        Assert.Equal(EndValley.Wide, LocalEntropyToy.Classify(landscape, valleys, LocalEntropyToy.LocalEntropyCurve(settings, x, switchScope / 1.05).GlobalMinimum));
        Assert.Equal(EndValley.Sharp, LocalEntropyToy.Classify(landscape, valleys, LocalEntropyToy.LocalEntropyCurve(settings, x, switchScope * 1.05).GlobalMinimum));
    }

    public static TheoryData<TwoWellLandscape> Landscapes => new(new TwoWellLandscape(), Mirrored);

    [Fact]
    public void MinusFApproachesFAsTheScopeGrows()
    {
        var settings = LocalEntropyToySettings.For(Budget.Smoke);
        var x = LocalEntropyToy.Grid(settings.XMin, settings.XMax, 201);
        var f = x.Select(settings.Landscape.Value).ToArray();
        double Distance(double gamma) => LocalEntropyToy.LocalEntropyCurve(settings, x, gamma).NegativeLocalEntropy.Select((v, i) => Math.Abs(v - f[i])).Max();
        double[] distances = [Distance(1), Distance(10), Distance(100), Distance(1000)];
        for (var i = 1; i < distances.Length; i++)
            Assert.True(distances[i] < distances[i - 1], $"max |(-F + F_flat) - f| = {string.Join(", ", distances)} for gamma = 1, 10, 100, 1000");
        Assert.True(distances[^1] < 0.05, $"at gamma = 1000, -F + F_flat is still {distances[^1]:F3} from f");
    }

    [Fact]
    public void TheValleysOfTheDefaultLandscapeAreFoundWhereTheWellsAre()
    {
        var landscape = new TwoWellLandscape();
        var v = landscape.Analyze();
        Assert.InRange(v.WideMinimum, -1.001, -0.999);
        Assert.InRange(v.SharpMinimum, 0.99, 1.0);
        Assert.InRange(v.Watershed, v.WideMinimum, v.SharpMinimum);
        Assert.True(Math.Abs(landscape.Derivative(v.Watershed)) < 1e-9);
        Assert.True(landscape.Value(v.Watershed) > landscape.Value(v.Watershed - 0.01) && landscape.Value(v.Watershed) > landscape.Value(v.Watershed + 0.01));
        // The derivative is f's: a central difference agrees.
        foreach (var x in new[] { -2.0, -0.7, 0.3, 0.9, 1.1, 2.0 })
            Assert.Equal((landscape.Value(x + 1e-6) - landscape.Value(x - 1e-6)) / 2e-6, landscape.Derivative(x), 5);
    }

    [Theory]
    [InlineData(0.1, 0.15, 1.0, 1.5, "narrower")]
    [InlineData(0.6, 0.15, 1.6, 1.5, "deeper")]
    [InlineData(0.6, 0.0, 1.0, 1.5, "widths must be positive")]
    [InlineData(0.6, 0.15, -1.0, 1.5, "depths must be positive")]
    public void LandscapesThatAreNotAWideShallowAndASharpDeepWellAreRejected(double wideWidth, double sharpWidth, double wideDepth, double sharpDepth, string expected)
    {
        var landscape = new TwoWellLandscape { WideWidth = wideWidth, SharpWidth = sharpWidth, WideDepth = wideDepth, SharpDepth = sharpDepth };
        var error = Assert.Throws<ArgumentException>(landscape.Validate);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void WellsThatMergeIntoOneMinimumAreRejected()
    {
        var error = Assert.Throws<ArgumentException>(new TwoWellLandscape { WideCentre = 0.7 }.Validate);
        Assert.Contains("overlap", error.Message);
    }

    [Theory]
    [InlineData(0.0, 100.0, "gamma must be positive")]
    [InlineData(-1.0, 100.0, "gamma must be positive")]
    [InlineData(5.0, 2.0, "must exceed")]
    public void BadScopesAreRejected(double small, double large, string expected)
    {
        var settings = LocalEntropyToySettings.For(Budget.Smoke) with { SmallScope = small, LargeScope = large };
        var error = Assert.Throws<ArgumentException>(settings.Validate);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void GradientDescentEndsInTheBasinItStartsInAndIsCountedOncePerReplica()
    {
        var settings = LocalEntropyToySettings.For(Budget.Smoke) with { LangevinPoints = 2, LangevinChains = 2, Starts = 11, Replicas = 3, OuterSteps = 4 };
        var r = LocalEntropyToy.Run(settings);
        Assert.Equal(33, r.Sgd.Ends.Length);
        Assert.Equal(r.EntropySgd.Starts, r.Sgd.Starts);
        for (var i = 0; i < r.Sgd.Starts.Length; i++)
        {
            var start = r.Sgd.Starts[i];
            var end = r.Sgd.Ends[i];
            // Plain descent never crosses the barrier, and never climbs.
            Assert.Equal(Math.Sign(start - r.Valleys.Watershed), Math.Sign(end - r.Valleys.Watershed));
            Assert.True(settings.Landscape.Value(end) <= settings.Landscape.Value(start) + 1e-6);
            if (r.Sgd.Valleys[i] == EndValley.Wide) Assert.InRange(end, r.Valleys.WideMinimum - 0.01, r.Valleys.WideMinimum + 0.01);
            if (r.Sgd.Valleys[i] == EndValley.Sharp) Assert.InRange(end, r.Valleys.SharpMinimum - 0.01, r.Valleys.SharpMinimum + 0.01);
        }
        // Every start left of the barrier is in the wide valley's basin, and no plateau is that far out on the left.
        Assert.Equal(r.Sgd.Starts.Count(s => s < r.Valleys.Watershed), r.Sgd.Count(EndValley.Wide));
        Assert.Equal(r.Sgd.Ends.Length, r.Sgd.Count(EndValley.Wide) + r.Sgd.Count(EndValley.Sharp) + r.Sgd.Count(EndValley.Neither));
    }

    [Fact]
    public void ParticlesAreIndependentCopiesOfTheOneDimensionalProblem()
    {
        var landscape = new TwoWellLandscape();
        double[] starts = [-1.5, 0.2, 0.95, 2];
        using var particles = new IndependentParticles(landscape.Evaluate, starts);
        var seen = new List<double[]>();
        particles.Observer = losses => seen.Add(losses.ToArray());
        var loss = particles.Closure();   // owned by the particles
        using var grad = particles.Positions.grad!;
        var g = grad.data<float>().ToArray();
        for (var i = 0; i < starts.Length; i++)
        {
            var x = (double)(float)starts[i];
            Assert.Equal(landscape.Derivative(x), g[i], 5);
            Assert.Equal(landscape.Value(x), seen[0][i], 12);
        }
        Assert.Equal(starts.Sum(s => landscape.Value((float)s)), loss.item<double>(), 12);
        Assert.Equal(1, particles.Calls);
    }

    [Fact]
    public void ReplacingTheGradientTensorIsDetected()
    {
        using var particles = new IndependentParticles(new TwoWellLandscape().Evaluate, [0.0, 1.0]);
        particles.Positions.grad = TorchSharp.torch.zeros(2);
        var error = Assert.Throws<InvalidOperationException>(() => particles.Read());
        Assert.Contains("in place", error.Message);
    }
}
