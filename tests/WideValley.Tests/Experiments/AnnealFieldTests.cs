using WideValley.Experiments;
using WideValley.SpinGlass;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>The anneal-field experiment (issue 17, seed 000): the field sweep, the annealed protocol, resume.</summary>
public class AnnealFieldTests
{
    /// <summary>A small seeded glass: N = 30, 24 starts, a weak-to-huge sweep, two directions.</summary>
    static AnnealFieldSettings Small => AnnealFieldSettings.For(Budget.Smoke) with
    {
        Sizes = [30], Starts = 24, Fields = [0.05, 50], FieldDirections = 2, AnnealStages = 4, Seed = 5,
    };

    [Fact]
    public void ManyMinimaWithoutAFieldOneUnderAHugeField()
    {
        var s = Small;
        using var glass = SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 30, Order = 3, Seed = s.CouplingSeed(30) });
        using var starts = Sphere.RandomPoints(s.Starts, 30, s.StartSeed(30));
        var free = AnnealField.Sweep(s, glass, starts, 0, TestContext.Current.CancellationToken);
        var huge = AnnealField.Sweep(s, glass, starts, 50, TestContext.Current.CancellationToken);
        Assert.True(free.DistinctMinima > 1, $"{free.DistinctMinima} distinct minima without a field");
        Assert.Equal(1, huge.DistinctMinima);
        Assert.Equal(s.Starts, huge.ClusterSizes.Single());
        Assert.All(free.Converged.Concat(huge.Converged), Assert.True);
        // Without a field the two energies are the same function; under a huge field the end point sits along h, where
        // the field term -<h, w>/N = -h dominates the minimised energy.
        Assert.Equal(free.FieldFreeEnergy, free.PerturbedEnergy, (a, b) => Math.Abs(a - b) < 1e-5);
        Assert.All(huge.PerturbedEnergy, e => Assert.InRange(e, -50 - 3, -50 + 3));
        // The step rule keeps gamma h at gamma0.
        Assert.Equal(0.2 / 50, huge.StepSize, 12);
    }

    [Fact]
    public void AnnealedProtocolRunsEveryStageAndEndsFieldFree()
    {
        var s = Small;
        using var glass = SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 30, Order = 3, Seed = s.CouplingSeed(30) });
        using var starts = Sphere.RandomPoints(s.Starts, 30, s.StartSeed(30));
        var piece = AnnealField.Anneal(s, glass, starts, direction: 0, TestContext.Current.CancellationToken);
        Assert.Equal([.. s.AnnealFields, 0.0], piece.StageFields);
        Assert.Equal(5.0, piece.StageFields[0]);
        // The strongest stage (5, about three times the recalled threshold) already collapses every start into one minimum,
        // and nothing can split it afterwards: every stage starts from the same point.
        Assert.Equal(1, piece.StageDistinctMinima[0]);
        Assert.All(piece.StageDistinctMinima, c => Assert.Equal(1, c));
        Assert.Equal(1, piece.DistinctMinima);
        Assert.All(piece.Converged, Assert.True);
        // The final stage has no field: its energies are the field-free glass's at those points, all alike.
        Assert.InRange(piece.FieldFreeEnergy.Max() - piece.FieldFreeEnergy.Min(), 0, 1e-4);
        Assert.InRange(piece.FieldFreeEnergy[0], -SpinGlassTheory.GroundStateEnergy(3) - 0.2, -1.0);
    }

    [Fact]
    public void RunReportsEverythingAndResumeRecomputesNothing()
    {
        using var runs = new TempDir("widevalley-anneal-field");
        using var outDir = new TempDir("widevalley-anneal-field-out");
        var s = Small;
        var first = AnnealField.Run(s, runs.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.False(first.Interrupted);
        Assert.Equal(3 + 2, first.PiecesComputed);
        Assert.Equal(0, first.PiecesReused);
        var glass = Assert.Single(first.Glasses);
        Assert.Equal([0.0, 0.05, 50], glass.Sweep.Select(p => p.Field));
        Assert.Equal(2, glass.Annealed.Count);
        var comparison = glass.Compare();
        Assert.Equal(2 * s.Starts, comparison.Pairs);
        Assert.Equal(comparison.Annealed.Mean - comparison.Plain.Mean, comparison.Difference.Mean, 9);
        Assert.InRange(comparison.FractionLower + comparison.FractionEqual, 0, 1);

        var second = AnnealField.Run(s, runs.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(0, second.PiecesComputed);
        Assert.Equal(5, second.PiecesReused);
        Assert.Equal(glass.Plain.FieldFreeEnergy, second.Glasses[0].Plain.FieldFreeEnergy);
        Assert.Equal(glass.Annealed[1].FieldFreeEnergy, second.Glasses[0].Annealed[1].FieldFreeEnergy);

        // Other settings in the same folder are refused, not mixed in.
        var error = Assert.Throws<InvalidDataException>(() => AnnealField.Run(s with { Starts = 12 }, runs.Path, cancellation: TestContext.Current.CancellationToken));
        Assert.Contains("other settings", error.Message);

        // The report states both claims for the glass.
        var claims = Assert.Single(AnnealFieldReport.Claims(second));
        Assert.Equal(glass.Plain.DistinctMinima, claims.FieldFreeMinima);
        Assert.Equal(1, claims.StrongestFieldMinima);
        var lines = AnnealFieldReport.Verdicts(second).ToList();
        Assert.Contains(lines, l => l.StartsWith("(a) distinct minima fall", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("(b) the annealed run", StringComparison.Ordinal));
    }

    [Fact]
    public void CancellingKeepsFinishedPiecesAndTheNextRunContinues()
    {
        using var runs = new TempDir("widevalley-anneal-field");
        var s = Small;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var pieces = 0;
        var interrupted = AnnealField.Run(s, runs.Path, _ =>
        {
            if (++pieces == 2) cancel.Cancel();
        }, cancel.Token);
        Assert.True(interrupted.Interrupted);
        Assert.Equal(2, interrupted.PiecesComputed);
        var resumed = AnnealField.Run(s, runs.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(2, resumed.PiecesReused);
        Assert.Equal(3, resumed.PiecesComputed);
    }

    [Fact]
    public void SpearmanOfAFallingCountIsMinusOne()
    {
        Assert.Equal(-1, AnnealFieldReport.Spearman([0, 1, 2, 3], [9, 5, 2, 1]), 12);
        Assert.Equal(1, AnnealFieldReport.Spearman([0, 1, 2], [1, 2, 3]), 12);
        Assert.True(double.IsNaN(AnnealFieldReport.Spearman([0, 1, 2], [1, 1, 1])));
    }

    [Fact]
    public void BadSettingsNameTheOption()
    {
        Assert.Contains("--starts", Assert.Throws<ArgumentException>(() => (Small with { Starts = 1 }).Validate()).Message);
        Assert.Contains("--fields", Assert.Throws<ArgumentException>(() => (Small with { Fields = [1, 0.5] }).Validate()).Message);
        Assert.Contains("--fields", Assert.Throws<ArgumentException>(() => (Small with { Fields = [-1] }).Validate()).Message);
        Assert.Contains("--sizes", Assert.Throws<ArgumentException>(() => (Small with { Sizes = [1] }).Validate()).Message);
        Assert.Contains("--overlap", Assert.Throws<ArgumentException>(() => (Small with { OverlapThreshold = 1.5 }).Validate()).Message);
    }
}
