using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

public class SpectrumPlotTests
{
    /// <summary>A spectrum shaped like seed 003 Fig. 1: a large bulk near zero, a long positive tail, a short negative one.</summary>
    internal static double[] PaperLikeSpectrum()
    {
        var random = new Random(3);
        var values = new List<double>();
        for (var i = 0; i < 3000; i++) values.Add((random.NextDouble() - 0.5) * 1e-4);
        for (var i = 0; i < 150; i++) values.Add(Math.Exp(random.NextDouble() * 7 - 3.5));
        for (var i = 0; i < 40; i++) values.Add(-Math.Exp(random.NextDouble() * 3 - 4));
        values.Add(39.7);
        values.Add(-0.46);
        return values.ToArray();
    }

    [Fact]
    public void EigenvaluesRenderAsThreePanelsWithTitleLabelsAndStatistics()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var figure = SpectrumPlot.FromEigenvalues(PaperLikeSpectrum(),
            new SpectrumPlotOptions { Title = "small-LeNet, Adam", Width = 1200, Height = 450 });
        var (png, svg) = figure.SavePngAndSvg(folder.File("hessian-spectrum"));
        ImageChecks.AssertPngFile(png, 1200, 450);
        var texts = ImageChecks.Texts(ImageChecks.AssertSvgFile(svg, 1200, 450));

        Assert.Contains("small-LeNet, Adam", texts);
        Assert.Equal(3, texts.Count(t => t == "eigenvalue"));
        Assert.Contains("count", texts);
        Assert.Equal(2, texts.Count(t => t == "count (log scale)"));
        Assert.Contains(texts, t => t.StartsWith("negative tail", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("positive tail", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("bulk: |λ| ≤", StringComparison.Ordinal));
        Assert.Contains("λ_max = 39.7", texts);
        Assert.Contains("λ_min = -0.46", texts);
        Assert.Contains("n = 3,192", texts);
        // Log-count ticks are labelled with counts, not exponents.
        Assert.Contains("10", texts);

        using var bitmap = ImageChecks.Decode(File.ReadAllBytes(png));
        Assert.True(ImageChecks.ColouredPixels(bitmap) > 5000, "the histogram bars are missing");
    }

    [Fact]
    public void StatisticsMatchACountByHand()
    {
        var statistics = SpectrumStatistics.Of([-0.46, -2e-5, 0, 5e-5, 1e-4, 3e-4, 39.7], 1e-4);
        Assert.Equal(7, statistics.Count);
        Assert.Equal(-0.46, statistics.LambdaMin);
        Assert.Equal(39.7, statistics.LambdaMax);
        Assert.Equal(3 / 7.0, statistics.FractionAbsBelow, 12);   // |1e-4| is not below 1e-4
    }

    [Fact]
    public void TheAutomaticBulkHoldsNineEigenvaluesInTen()
    {
        var values = Enumerable.Range(1, 100).Select(i => (i % 2 == 0 ? 1 : -1) * i * 1e-3).ToArray();
        Assert.Equal(0.09, SpectrumPlot.AutomaticHalfWidth(values), 12);
        Assert.Equal(1, SpectrumPlot.AutomaticHalfWidth([0.0, 0, 0]));
    }

    [Fact]
    public void AUserGivenBulkWidthIsHonouredAndAMissingTailIsSaidInWords()
    {
        TestMachine.RequireDejaVu();
        var figure = SpectrumPlot.FromEigenvalues([0.1, 0.2, 0.3, 5, 7], new SpectrumPlotOptions { BulkHalfWidth = 0.5 });
        var texts = ImageChecks.Texts(ImageChecks.AssertSvg(figure.ToSvg(), figure.Width, figure.Height));
        Assert.Contains("bulk: |λ| ≤ 0.5 (60% of eigenvalues)", texts);
        Assert.Contains("no eigenvalue below −0.5", texts);
        Assert.Contains("positive tail: λ > 0.5", texts);
    }

    [Fact]
    public void ASingleEigenvalueStillRenders()
    {
        TestMachine.RequireDejaVu();
        var figure = SpectrumPlot.FromEigenvalues([2.5]);
        ImageChecks.AssertPng(figure.ToPng(), figure.Width, figure.Height);
    }

    [Fact]
    public void ADensityOnAGridRendersWithTheEstimatorsStatistics()
    {
        TestMachine.RequireDejaVu();
        var grid = Enumerable.Range(0, 601).Select(i => -1 + i * 0.01).ToArray();
        var density = grid.Select(x => 0.9 * Math.Exp(-x * x / 0.002) / Math.Sqrt(0.002 * Math.PI) + 0.1 * Math.Exp(-Math.Abs(x - 1))).ToArray();
        using var folder = new TempDir();
        var figure = SpectrumPlot.FromDensity(grid, density, new SpectrumPlotOptions
        {
            Title = "SLQ estimate",
            Width = 1000,
            Height = 400,
            Statistics = new SpectrumStatistics(null, -0.5, 5, 1e-4, 0.912),
        });
        var (png, svg) = figure.SavePngAndSvg(folder.File("slq"));
        ImageChecks.AssertPngFile(png, 1000, 400);
        var texts = ImageChecks.Texts(ImageChecks.AssertSvgFile(svg, 1000, 400));
        Assert.Contains("density", texts);
        Assert.Equal(2, texts.Count(t => t == "density (log scale)"));
        Assert.Contains("|λ| < 0.0001: 91.2%", texts);
        Assert.DoesNotContain(texts, t => t.StartsWith("n = ", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("bulk: |λ| ≤", StringComparison.Ordinal) && t.EndsWith("of the mass)", StringComparison.Ordinal));
    }

    [Fact]
    public void EmptyEigenvaluesAreRejectedClearly()
    {
        var error = Assert.Throws<ArgumentException>(() => SpectrumPlot.FromEigenvalues([]));
        Assert.Equal("eigenvalues", error.ParamName);
        Assert.Contains("eigenvalues is empty", error.Message);
    }

    [Fact]
    public void NaNEigenvaluesAreRejectedWithTheirIndex()
    {
        var error = Assert.Throws<ArgumentException>(() => SpectrumPlot.FromEigenvalues([1, 2, double.NaN, 4, double.PositiveInfinity]));
        Assert.Contains("eigenvalues[2] is NaN", error.Message);
        Assert.Contains("2 of 5", error.Message);
    }

    [Fact]
    public void MismatchedGridAndDensityAreRejected()
    {
        var error = Assert.Throws<ArgumentException>(() => SpectrumPlot.FromDensity([0.0, 1, 2], [1.0, 2]));
        Assert.Contains("grid has 3 values but density has 2", error.Message);
    }

    [Fact]
    public void BadGridsAndDensitiesAreRejected()
    {
        Assert.Contains("strictly increasing",
            Assert.Throws<ArgumentException>(() => SpectrumPlot.FromDensity([0.0, 2, 1], [1.0, 1, 1])).Message);
        Assert.Contains("density[1] = -0.5",
            Assert.Throws<ArgumentException>(() => SpectrumPlot.FromDensity([0.0, 1, 2], [1.0, -0.5, 1])).Message);
        Assert.Contains("zero at every grid point",
            Assert.Throws<ArgumentException>(() => SpectrumPlot.FromDensity([0.0, 1], [0.0, 0])).Message);
        Assert.Contains("density[0] is NaN",
            Assert.Throws<ArgumentException>(() => SpectrumPlot.FromDensity([0.0, 1], [double.NaN, 0])).Message);
        Assert.Contains("at least two",
            Assert.Throws<ArgumentException>(() => SpectrumPlot.FromDensity([0.0], [1.0])).Message);
    }

    [Fact]
    public void BadOptionsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SpectrumPlot.FromEigenvalues([1.0], new SpectrumPlotOptions { BulkBins = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => SpectrumPlot.FromEigenvalues([1.0], new SpectrumPlotOptions { BulkHalfWidth = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => SpectrumPlot.FromEigenvalues([1.0], new SpectrumPlotOptions { NearZeroThreshold = 0 }));
    }
}
