using WideValley.Experiments;
using WideValley.SpinGlass;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>The spin-glass reproduction's settings, pieces and verdicts (seed 001, Fig. 3).</summary>
public class SpinGlassExperimentTests
{
    /// <summary>A few steps on tiny glasses: seconds.</summary>
    static readonly SpinGlassSettings Tiny = new()
    {
        Sizes = [12, 20], Starts = 12, Parts = 2, StochasticSteps = 20, FinishMaxSteps = 400, IndexedStarts = 3, Seed = 5,
    };

    [Fact]
    public void BudgetsStateThePapersSizesAndStarts()
    {
        var paper = SpinGlassSettings.For(Budget.Paper);
        Assert.Equal([25, 50, 100, 250, 500], paper.Sizes);
        Assert.Equal((3, 1000, 10, 1000, 1000, 0.01), (paper.Order, paper.Starts, paper.Parts, paper.StochasticStepCount, paper.FinishMaxSteps, paper.GradientTolerance));
        var small = SpinGlassSettings.For(Budget.Small);
        Assert.Equal([25, 50, 100, 250], small.Sizes);
        Assert.Equal((200, 5000), (small.Starts, small.StochasticStepCount));
        var smoke = SpinGlassSettings.For(Budget.Smoke);
        Assert.Equal([25, 50], smoke.Sizes);
        Assert.True(smoke.Starts <= 50 && smoke.StochasticStepCount < 100);
        foreach (var b in new[] { Budget.Smoke, Budget.Small, Budget.Paper }) SpinGlassSettings.For(b).Validate();
    }

    [Theory]
    [InlineData("sizes", "Sizes")]
    [InlineData("small-n", "every N must be at least 2")]
    [InlineData("descending", "ascending")]
    [InlineData("indexed", "IndexedStarts")]
    [InlineData("starts", "Starts")]
    public void BadSettingsAreRefusedByName(string what, string expected)
    {
        var bad = what switch
        {
            "sizes" => Tiny with { Sizes = [] },
            "small-n" => Tiny with { Sizes = [1, 20] },
            "descending" => Tiny with { Sizes = [20, 12] },
            "indexed" => Tiny with { IndexedStarts = 13 },
            _ => Tiny with { Starts = 1, IndexedStarts = 0 },
        };
        var e = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ASizeIsDeterministicConvergedAndAboveTheGroundStateWithMinimaOfIndexZero()
    {
        var first = SpinGlassExperiment.RunSize(Tiny, 20, cancellation: TestContext.Current.CancellationToken);
        var again = SpinGlassExperiment.RunSize(Tiny, 20, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(first.EnergyPerSpin, again.EnergyPerSpin);
        Assert.Equal(first.Steps, again.Steps);
        Assert.Equal(12, first.Count);
        Assert.Equal(3, first.IndexSample.Length);
        Assert.All(first.IndexSample, i => Assert.Equal(0, i));
        Assert.Equal(1.0, first.FractionConverged);
        Assert.All(first.GradientNorm, g => Assert.True(g < Tiny.GradientTolerance));
        // Minimised energies lie below a random point's (mean 0, sd 1/√N per spin) and not far below −E_0 (finite-N fluctuations only).
        var e0 = SpinGlassTheory.GroundStateEnergy(3);
        Assert.All(first.EnergyPerSpin, e => Assert.InRange(e, -e0 - 0.3, -1.0));
        Assert.InRange(first.DistinctMinima, 1, 12);
        Assert.Equal(Tiny.Key, first.Key);
    }

    [Fact]
    public void PiecesAreWrittenOncePerSizeAndAPieceOfOtherSettingsIsRefused()
    {
        using var dir = new TempDir();
        var outcome = SpinGlassExperiment.Run(Tiny, dir.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.False(outcome.Interrupted);
        Assert.Equal([12, 20], outcome.Result!.Computed);
        Assert.True(File.Exists(SpinGlassExperiment.PiecePath(dir.Path, 12)));
        var again = SpinGlassExperiment.Run(Tiny, dir.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Empty(again.Result!.Computed);
        Assert.Equal(outcome.Result.Sizes[1].EnergyPerSpin, again.Result.Sizes[1].EnergyPerSpin);
        var e = Assert.Throws<InvalidDataException>(() => SpinGlassExperiment.Run(Tiny with { Seed = 6 }, dir.Path, cancellation: TestContext.Current.CancellationToken));
        Assert.Contains("other settings", e.Message);
    }

    [Fact]
    public void ACancelledRunKeepsNothingOfTheUnfinishedSize()
    {
        using var dir = new TempDir();
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        var outcome = SpinGlassExperiment.Run(Tiny, dir.Path, cancellation: cancel.Token);
        Assert.True(outcome.Interrupted);
        Assert.Empty(outcome.Finished);
        Assert.False(File.Exists(SpinGlassExperiment.PiecePath(dir.Path, 12)));
    }

    [Fact]
    public void AnInterruptedSizeContinuesFromItsProgressFileAndEndsAsAnUninterruptedOne()
    {
        using var dir = new TempDir();
        using var cancel = new CancellationTokenSource();
        var outcome = SpinGlassExperiment.Run(Tiny, dir.Path, line => { if (line.StartsWith("N = 20: 12 starts", StringComparison.Ordinal)) cancel.Cancel(); }, cancel.Token);
        Assert.True(outcome.Interrupted);
        Assert.Equal([12], outcome.Finished);
        var progress = SpinGlassExperiment.ProgressPath(dir.Path, 20);
        Assert.True(File.Exists(progress), "the interrupted size saved its progress");
        Assert.False(File.Exists(SpinGlassExperiment.ProgressPath(dir.Path, 12)), "a finished size keeps its piece, not its progress file");

        var lines = new List<string>();
        var resumed = SpinGlassExperiment.Run(Tiny, dir.Path, lines.Add, TestContext.Current.CancellationToken);
        Assert.Contains(lines, l => l.Contains("continuing from", StringComparison.Ordinal));
        Assert.False(File.Exists(progress));
        var direct = SpinGlassExperiment.RunSize(Tiny, 20, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(direct.EnergyPerSpin, resumed.Result!.Sizes[1].EnergyPerSpin);
        Assert.Equal(direct.Steps, resumed.Result.Sizes[1].Steps);
    }

    static SpinGlassSizeResult Fake(int n, double[] energies) => new()
    {
        Key = "k", Size = n, CouplingSeed = 0, StartSeed = 0, SplitSeed = 0, EnergyPerSpin = energies,
        GradientNorm = energies.Select(_ => 0.001).ToArray(), Steps = energies.Select(_ => 10).ToArray(), Converged = energies.Select(_ => true).ToArray(),
        IndexSample = [0, 0], DistinctMinima = 2, LargestCluster = 1, Seconds = 0,
    };

    /// <summary>K energies spread evenly over [centre − width, centre + width].</summary>
    static double[] Spread(double centre, double width, int k = 200) => Enumerable.Range(0, k).Select(i => centre - width + 2 * width * i / (k - 1)).ToArray();

    static SpinGlassResult Result(params SpinGlassSizeResult[] sizes) =>
        new(new SpinGlassSettings { Sizes = sizes.Select(s => s.Size).ToArray() }, SpinGlassTheory.GroundStateEnergy(3), SpinGlassTheory.EnergyBarrier(3), sizes, [], 0);

    [Fact]
    public void VerdictsFollowTheMeasurements()
    {
        // The paper's picture: broad and high at small N, narrow inside the band at large N.
        var paperLike = SpinGlassReport.Claims(Result(Fake(25, Spread(-1.40, 0.15)), Fake(100, Spread(-1.60, 0.04)), Fake(500, Spread(-1.645, 0.01))));
        Assert.All(paperLike, c => Assert.Equal(SpinGlassVerdict.Agrees, c.Verdict));

        // Everything ends 0.03 above −E∞ with the same spread: not in the band, and no fall in spread.
        var stuck = SpinGlassReport.Claims(Result(Fake(25, Spread(-1.60, 0.02)), Fake(500, Spread(-1.60, 0.02))))
            .ToDictionary(c => c.Id, c => c.Verdict);
        Assert.Equal(SpinGlassVerdict.Disagrees, stuck["concentrate_in_band"]);
        Assert.Equal(SpinGlassVerdict.Partly, stuck["concentrate_near_barrier"]); // the mean is near −E∞, the near fraction does not grow
        Assert.Equal(SpinGlassVerdict.Disagrees, stuck["spread_falls"]);
        Assert.Equal(SpinGlassVerdict.Disagrees, stuck["poor_minima_at_small_n"]);

        // A spread that falls overall but not at every N is "partly".
        var bumpy = SpinGlassReport.Claims(Result(Fake(25, Spread(-1.5, 0.10)), Fake(50, Spread(-1.5, 0.12)), Fake(100, Spread(-1.5, 0.02))))
            .Single(c => c.Id == "spread_falls");
        Assert.Equal(SpinGlassVerdict.Partly, bumpy.Verdict);

        // Ending near −E∞ at the largest N after a mean that first moved away is "partly".
        var late = SpinGlassReport.Claims(Result(Fake(25, Spread(-1.50, 0.10)), Fake(50, Spread(-1.48, 0.05)), Fake(250, Spread(-1.60, 0.02))))
            .Single(c => c.Id == "concentrate_near_barrier");
        Assert.Equal(SpinGlassVerdict.Partly, late.Verdict);
    }
}
