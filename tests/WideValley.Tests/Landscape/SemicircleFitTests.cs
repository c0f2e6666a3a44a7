using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Tests.Landscape;

/// <summary>
/// <see cref="SemicircleFit"/>: a GOE matrix fits Wigner's semicircle within Kolmogorov's 1% bound; a Wishart matrix
/// (Marchenko-Pastur) does not, and Marchenko-Pastur is closer; outliers are dropped; SLQ fits on the quadrature.
/// </summary>
public class SemicircleFitTests
{
    const int N = 400;

    /// <summary>GOE scaled to the semicircle of radius 2: (A + A^T) / sqrt(2 n), A standard normal, in float64.</summary>
    static Tensor Goe(int n, ulong seed)
    {
        using var generator = new TorchSharp.torch.Generator(seed);
        using var a = randn(n, n, ScalarType.Float64, generator: generator);
        return ((a + a.t()) / Math.Sqrt(2.0 * n)).DetachFromDisposeScope();
    }

    /// <summary>Wishart X X^T / m with X n x m standard normal: Marchenko-Pastur with ratio n / m and scale 1.</summary>
    static Tensor Wishart(int n, int m, ulong seed)
    {
        using var generator = new TorchSharp.torch.Generator(seed);
        using var x = randn(n, m, ScalarType.Float64, generator: generator);
        return (x.matmul(x.t()) / m).DetachFromDisposeScope();
    }

    static double[] Eigenvalues(Tensor symmetric)
    {
        using var values = linalg.eigvalsh(symmetric);
        return values.data<double>().ToArray();
    }

    [Fact]
    public void TheClosedFormsAreADensityAndItsDistributionFunction()
    {
        Assert.Equal(0.5, SemicircleFit.Cdf(1, 1, 2), 1e-15);
        Assert.Equal((0.0, 1.0), (SemicircleFit.Cdf(-1.5, 1, 2), SemicircleFit.Cdf(3.5, 1, 2)));
        Assert.Equal(1 / Math.PI, SemicircleFit.Density(1, 1, 2), 1e-15);
        // The density integrates to the distribution function (midpoint rule).
        double integral = 0;
        const int steps = 200_000;
        for (var i = 0; i < steps; i++) integral += SemicircleFit.Density(-1 + 2.5 * (i + 0.5) / steps, 1, 2) * 2.5 / steps;
        Assert.Equal(SemicircleFit.Cdf(1.5, 1, 2), integral, 1e-6);
    }

    [Fact]
    public void AGoeMatrixFitsTheSemicircleWithinTheKsBound()
    {
        using var goe = Goe(N, 17);
        var fit = SemicircleFit.FromEigenvalues(Eigenvalues(goe), new SemicircleFitOptions { TopOutliers = 0 });
        // Kolmogorov's 1% critical value 1.63 / sqrt(400) = 0.0815; the fitted radius and centre are the law's.
        Assert.Equal(1.63 / 20, fit.KsBound, 1e-12);
        Assert.True(fit.Semicircle.Ks < fit.KsBound, fit.Describe());
        Assert.Equal(2, fit.Radius, 0.1);
        Assert.Equal(0, fit.Center, 0.05);
        Assert.Equal("semicircle", fit.Best.Name);
        Assert.True(fit.SemicircleFits, fit.Describe());
        Assert.True(fit.Candidates.Single(c => c.Name == "gaussian").Ks > 2 * fit.Semicircle.Ks, fit.Describe());
    }

    [Fact]
    public void AWishartMatrixIsRejectedAndMarchenkoPasturFitsBetter()
    {
        using var wishart = Wishart(N, 2 * N, 23);
        var fit = SemicircleFit.FromEigenvalues(Eigenvalues(wishart), new SemicircleFitOptions { TopOutliers = 0 });
        var mp = fit.Candidates.Single(c => c.Name == "marchenko-pastur");
        Assert.True(mp.Ks < fit.Semicircle.Ks, fit.Describe());
        Assert.True(mp.Ks < fit.KsBound, fit.Describe());
        Assert.Equal(0.5, mp.Parameters["ratio"], 0.1);
        Assert.Equal("marchenko-pastur", fit.Best.Name);
        Assert.False(fit.SemicircleFits, fit.Describe());
    }

    [Fact]
    public void OutliersAreDroppedByCountOrByTheIterativeRule()
    {
        using var goe = Goe(N, 5);
        var values = Eigenvalues(goe).Concat([15.0, 22.0, 40.0]).ToArray();
        var byCount = SemicircleFit.FromEigenvalues(values, new SemicircleFitOptions { TopOutliers = 3 });
        Assert.Equal((400L, 3L, 0L), (byCount.BulkCount, byCount.DroppedTop, byCount.DroppedBottom));
        Assert.True(byCount.SemicircleFits, byCount.Describe());
        var iterative = SemicircleFit.FromEigenvalues(values);
        Assert.Equal(3L, iterative.DroppedTop);
        Assert.True(iterative.SemicircleFits, iterative.Describe());
        // Kept, the outliers spoil the fit.
        var kept = SemicircleFit.FromEigenvalues(values, new SemicircleFitOptions { TopOutliers = 0 });
        Assert.True(kept.Semicircle.Ks > byCount.Semicircle.Ks);
    }

    [Fact]
    public void TheSlqFitFindsTheSemicircleOfAGoeMatrixAndPrefersMarchenkoPasturForWishart()
    {
        using var goe = Goe(N, 31);
        using var goeOp = new DenseOperator(goe);
        var goeSlq = Slq.Run(goeOp, new SlqOptions { Probes = 20, Steps = 80, Seed = 1 });
        var goeFit = SemicircleFit.FromSlq(goeSlq, options: new SemicircleFitOptions { TopOutliers = 0 });
        Assert.Equal(2, goeFit.Radius, 0.15);
        Assert.Equal("semicircle", goeFit.Best.Name);
        Assert.True(goeFit.SemicircleFits, goeFit.Describe());
        Assert.True(goeFit.Semicircle.L1 < goeFit.Candidates.Single(c => c.Name == "gaussian").L1, goeFit.Describe());

        using var wishart = Wishart(N, 2 * N, 37);
        using var wishartOp = new DenseOperator(wishart);
        var wishartSlq = Slq.Run(wishartOp, new SlqOptions { Probes = 20, Steps = 80, Seed = 2 });
        var wishartFit = SemicircleFit.FromSlq(wishartSlq, options: new SemicircleFitOptions { TopOutliers = 0 });
        Assert.Equal("marchenko-pastur", wishartFit.Best.Name);
        Assert.False(wishartFit.SemicircleFits, wishartFit.Describe());
    }

    [Fact]
    public void ASpikeAtZeroDoesNotPullTheExactFitOffTheData()
    {
        // A Hessian-like bulk: 900 eigenvalues within 1e-6 of zero and 100 spread over [0, 0.5]. Whatever law wins, the
        // semicircle must sit on the data (its centre within the bulk's range), not beside it.
        var random = new Random(3);
        var values = Enumerable.Range(0, 900).Select(_ => (random.NextDouble() - 0.5) * 2e-6).Concat(Enumerable.Range(0, 100).Select(_ => 0.5 * random.NextDouble())).ToArray();
        var fit = SemicircleFit.FromEigenvalues(values, new SemicircleFitOptions { TopOutliers = 0 });
        Assert.InRange(fit.Center, -1e-3, 0.5);
        Assert.True(fit.Semicircle.Ks < 0.5, fit.Describe());
        Assert.False(fit.SemicircleFits, fit.Describe());
    }

    [Fact]
    public void BadInputIsRefused()
    {
        Assert.Contains("at least 3", Assert.Throws<ArgumentException>(() => SemicircleFit.FromEigenvalues([1, 2])).Message);
        Assert.Contains("all equal", Assert.Throws<ArgumentException>(() => SemicircleFit.FromEigenvalues([1, 1, 1, 1], new SemicircleFitOptions { TopOutliers = 0 })).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => SemicircleFit.FromEigenvalues([1, double.PositiveInfinity, 3])).Message);
        Assert.Contains("TopOutliers", Assert.Throws<ArgumentException>(() => SemicircleFit.FromEigenvalues([1, 2, 3], new SemicircleFitOptions { TopOutliers = -1 })).Message);
        Assert.Contains("OutlierMargin", Assert.Throws<ArgumentException>(() => new SemicircleFitOptions { OutlierMargin = -1 }.Validate()).Message);
    }
}
