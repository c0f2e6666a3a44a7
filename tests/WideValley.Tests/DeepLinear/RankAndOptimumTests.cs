using TorchSharp;
using WideValley.DeepLinear;
using static TorchSharp.torch;

namespace WideValley.Tests.DeepLinear;

/// <summary>Numerical rank by NumPy's convention, the Eckart-Young optimum and the teacher problem's construction.</summary>
public sealed class RankAndOptimumTests
{
    static double MaxAbs(Tensor t) => t.abs().max().ToDouble();

    /// <summary>U diag(s) V^T, [rows, cols], with Haar-random U and V.</summary>
    static Tensor WithSingularValues(int rows, int cols, double[] s, long seed)
    {
        using var g = new Generator((ulong)seed);
        var u = LinearRegressionProblem.RandomOrthogonal(rows, g).narrow(1, 0, s.Length);
        var v = LinearRegressionProblem.RandomOrthogonal(cols, g).narrow(1, 0, s.Length);
        return u.mul(tensor(s, ScalarType.Float64).unsqueeze(0)).mm(v.t());
    }

    [Fact]
    public void NumericalRankCountsSingularValuesAboveTheNumpyTolerance()
    {
        using var scope = NewDisposeScope();
        // tol = max(5, 7) * 1 * 2^-23 = 8.3e-7: 1, 1e-3 and 1e-5 count, 1e-8 and 0 do not.
        var a = WithSingularValues(5, 7, [1, 1e-3, 1e-5, 1e-8, 0], 1);
        var s = linalg.svdvals(a).data<double>().ToArray();
        Assert.Equal(3, ProductSpectrum.NumericalRank(s, 5, 7));
        Assert.Equal(7 * 1.1920928955078125e-07, ProductSpectrum.Tolerance(1, 5, 7), 1e-20);
        // Just above and just below the tolerance of a 10 x 10 matrix with sigma_max = 2.
        var tol = ProductSpectrum.Tolerance(2, 10, 10);
        Assert.Equal(2, ProductSpectrum.NumericalRank([2, tol * 1.01, tol * 0.99], 10, 10));
        Assert.Equal(0, ProductSpectrum.NumericalRank([0, 0], 2, 2));
        Assert.Throws<ArgumentException>(() => ProductSpectrum.NumericalRank([1, -1], 2, 2));
    }

    [Fact]
    public void EckartYoungOptimumIsTheTruncatedSvdForWhitenedInputs()
    {
        using var scope = NewDisposeScope();
        double[] s = [3, 2, 1, 0.5];
        using var g = new Generator(4);
        var u = LinearRegressionProblem.RandomOrthogonal(6, g);
        var v = LinearRegressionProblem.RandomOrthogonal(5, g);
        var a = u.narrow(1, 0, 4).mul(tensor(s, ScalarType.Float64).unsqueeze(0)).mm(v.narrow(1, 0, 4).t());
        var (optimum, loss) = LinearRegressionProblem.BestWithRankAtMost(a, eye(5, dtype: ScalarType.Float64), 2);
        var expected = u.narrow(1, 0, 2).mul(tensor(new[] { 3.0, 2.0 }, ScalarType.Float64).unsqueeze(0)).mm(v.narrow(1, 0, 2).t());
        Assert.True(MaxAbs(optimum.sub(expected)) < 1e-12);
        Assert.Equal(0.5 * (1 + 0.25), loss, 1e-12);
        // No constraint: the teacher itself.
        var (full, zero) = LinearRegressionProblem.BestWithRankAtMost(a, eye(5, dtype: ScalarType.Float64), 4);
        Assert.True(MaxAbs(full.sub(a)) < 1e-15);
        Assert.Equal(0, zero);
    }

    [Fact]
    public void RankConstrainedOptimumBeatsNearbyRankKMatricesUnderACorrelatedCovariance()
    {
        using var scope = NewDisposeScope();
        using var problem = LinearRegressionProblem.Create(5, 4, [2.0, 1.2, 0.7, 0.3], 12, InputDistribution.Gaussian, maxRank: 2, seed: 8);
        var optimum = problem.Optimum;
        Assert.Equal(2, ProductSpectrum.NumericalRank(linalg.svdvals(optimum).data<double>().ToArray(), 4, 5));
        Assert.Equal(problem.OptimalLoss, problem.Loss(optimum), 1e-12);
        Assert.True(problem.OptimalLoss > 0);
        // Rank-2 neighbours W = (L + dL)(R + dR) of W* = L R: none is lower.
        var (uu, ss, vh) = linalg.svd(optimum, fullMatrices: false);
        var left = uu.narrow(1, 0, 2).mul(ss.narrow(0, 0, 2).unsqueeze(0));
        var right = vh.narrow(0, 0, 2);
        using var g = new Generator(1);
        for (var trial = 0; trial < 200; trial++)
        {
            var w = left.add(randn(left.shape, ScalarType.Float64, generator: g).mul(0.05)).mm(right.add(randn(right.shape, ScalarType.Float64, generator: g).mul(0.05)));
            Assert.True(problem.Loss(w) >= problem.OptimalLoss - 1e-12, $"a neighbour has loss {problem.Loss(w):G6} < {problem.OptimalLoss:G6}");
        }
    }

    [Fact]
    public void TeacherHasTheChosenSpectrumAndWhitenedInputsHaveIdentityCovariance()
    {
        using var scope = NewDisposeScope();
        using var problem = LinearRegressionProblem.Create(8, 6, [0.5, 2.0, 1.0], 50, InputDistribution.Whitened, maxRank: 6, seed: 2);
        var s = linalg.svdvals(problem.Teacher).data<double>().ToArray();
        Assert.Equal(2.0, s[0], 1e-12);
        Assert.Equal(1.0, s[1], 1e-12);
        Assert.Equal(0.5, s[2], 1e-12);
        Assert.Equal(3, ProductSpectrum.NumericalRank(s, 6, 8));
        Assert.True(MaxAbs(problem.InputCovariance.sub(eye(8, dtype: ScalarType.Float64))) < 1e-12);
        Assert.True(MaxAbs(problem.Targets.sub(problem.Teacher.mm(problem.Inputs))) < 1e-12);
        Assert.Equal(0.5 * (4 + 1 + 0.25), problem.ZeroLoss, 1e-12);
        Assert.Throws<ArgumentException>(() => LinearRegressionProblem.Create(8, 6, [1, 1], 5, InputDistribution.Gaussian, 6, 1));
    }
}
