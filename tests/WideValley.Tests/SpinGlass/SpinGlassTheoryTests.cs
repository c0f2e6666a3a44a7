using WideValley.SpinGlass;

namespace WideValley.Tests.SpinGlass;

public sealed class SpinGlassTheoryTests
{
    /// <summary>The fixtures of ../shared/notes/spin-glass-and-annealsgd.md (A.3): E_inf, E_0..E_5 for H = 3, 4, 5, 10.</summary>
    public static TheoryData<int, double, double[]> Fixtures => new()
    {
        { 3, 1.632993, [1.656998, 1.652873, 1.650253, 1.648399, 1.646999, 1.645893] },
        { 4, 1.732051, [1.794085, 1.783300, 1.776478, 1.771662, 1.768032, 1.765171] },
        { 5, 1.788854, [1.887989, 1.870576, 1.859599, 1.851870, 1.846053, 1.841474] },
        { 10, 1.897367, [2.135364, 2.092142, 2.065219, 2.046407, 2.032328, 2.021294] },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void LayerEnergiesReproduceTheNotesTable(int p, double barrier, double[] layers)
    {
        Assert.Equal(2 * Math.Sqrt((p - 1.0) / p), SpinGlassTheory.EnergyBarrier(p));
        Assert.Equal(barrier, SpinGlassTheory.EnergyBarrier(p), 6);
        for (var k = 0; k < layers.Length; k++)
        {
            var computed = SpinGlassTheory.LayerEnergy(p, k);
            Assert.True(Math.Abs(computed - layers[k]) < 1e-5, $"E_{k}({p}) = {computed:R}, table {layers[k]}");
            // The root is a root: Θ_k vanishes at −E_k to round-off.
            Assert.True(Math.Abs(SpinGlassTheory.IndexComplexity(p, k, -computed)) < 1e-12);
        }
        Assert.Equal(SpinGlassTheory.LayerEnergy(p, 0), SpinGlassTheory.GroundStateEnergy(p));
    }

    [Fact]
    public void LayersDecreaseTowardsTheBarrier()
    {
        foreach (var p in new[] { 3, 4, 6 })
        {
            var previous = double.PositiveInfinity;
            for (var k = 0; k <= 40; k++)
            {
                var e = SpinGlassTheory.LayerEnergy(p, k);
                Assert.True(e < previous && e > SpinGlassTheory.EnergyBarrier(p), $"p = {p}, k = {k}: {e}");
                previous = e;
            }
            // Near the barrier I(u) grows like (−E∞ − u)^(3/2), so E_k − E∞ falls like (k+1)^(−2/3): 41 layers are
            // (6/41)^(2/3) ≈ 0.28 of the gap of 6.
            var gap5 = SpinGlassTheory.LayerEnergy(p, 5) - SpinGlassTheory.EnergyBarrier(p);
            Assert.InRange((previous - SpinGlassTheory.EnergyBarrier(p)) / gap5, 0.2, 0.4);
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(10)]
    public void ComplexitiesAreContinuousAtTheBarrierAndTheIndexZeroOneIsLargest(int p)
    {
        var e = SpinGlassTheory.EnergyBarrier(p);
        const double eps = 1e-9;
        Assert.Equal(0, SpinGlassTheory.RateFunction(p, -e), 12);
        Assert.True(Math.Abs(SpinGlassTheory.Complexity(p, -e - eps) - SpinGlassTheory.Complexity(p, -e + eps)) < 1e-6);
        for (var k = 0; k <= 5; k++)
        {
            var below = SpinGlassTheory.IndexComplexity(p, k, -e - eps);
            var above = SpinGlassTheory.IndexComplexity(p, k, -e + eps);
            Assert.True(Math.Abs(below - above) < 1e-6, $"k = {k}: {below} vs {above}");
            // The continuous constant, not the printed ½log(p−1) − (p−2)/(4(p−1)).
            Assert.Equal(0.5 * Math.Log(p - 1.0) - (p - 2.0) / p, above, 12);
        }
        // Corollary 4.1: Θ_k < Θ_0 below −E∞; and Θ_0 = Θ below −E∞ plus nothing (I enters once in both).
        foreach (var u in new[] { -e - 0.01, -e - 0.2, -2.5 })
        {
            for (var k = 1; k <= 5; k++) Assert.True(SpinGlassTheory.IndexComplexity(p, k, u) < SpinGlassTheory.IndexComplexity(p, 0, u));
            Assert.Equal(SpinGlassTheory.Complexity(p, u), SpinGlassTheory.IndexComplexity(p, 0, u), 12);
        }
        Assert.Equal(0.5 * Math.Log(p - 1.0), SpinGlassTheory.Complexity(p, 0.3), 12);
        Assert.Equal(0.5 * Math.Log(p - 1.0) - (p - 2.0) * 0.25 / (4 * (p - 1.0)), SpinGlassTheory.Complexity(p, -0.5), 12);
    }

    [Fact]
    public void RateFunctionMatchesItsClosedFormAtAPoint()
    {
        // p = 3, u = −2: E∞² = 8/3.
        var e2 = 8.0 / 3;
        var root = Math.Sqrt(4 - e2);
        var expected = (2 / e2) * root - Math.Log(2 + root) + Math.Log(Math.Sqrt(e2));
        Assert.Equal(expected, SpinGlassTheory.RateFunction(3, -2), 14);
    }

    [Fact]
    public void OrderTwoHasNoLayersBelowTheSemicircleEdge()
    {
        Assert.Equal(Math.Sqrt(2), SpinGlassTheory.EnergyBarrier(2), 15);
        Assert.Equal(Math.Sqrt(2), SpinGlassTheory.LayerEnergy(2, 0), 15);
        Assert.Equal(0, SpinGlassTheory.IndexComplexity(2, 3, -1.0), 15);
    }

    [Fact]
    public void BadArgumentsAreRefusedByName()
    {
        Assert.Contains("at least 2", Assert.Throws<ArgumentOutOfRangeException>(() => SpinGlassTheory.EnergyBarrier(1)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SpinGlassTheory.LayerEnergy(3, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SpinGlassTheory.Complexity(3, double.NaN));
        Assert.Contains("u <= -E_inf", Assert.Throws<ArgumentOutOfRangeException>(() => SpinGlassTheory.RateFunction(3, -1.0)).Message);
    }
}
