using SkiaSharp;
using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

public class SurfacePlotTests
{
    private static LossSurface Bowl(int nAlpha = 21, int nBeta = 15)
    {
        var alphas = Enumerable.Range(0, nAlpha).Select(i => -1 + 2.0 * i / (nAlpha - 1)).ToArray();
        var betas = Enumerable.Range(0, nBeta).Select(j => -1 + 2.0 * j / (nBeta - 1)).ToArray();
        var values = new double[nAlpha, nBeta];
        for (var i = 0; i < nAlpha; i++)
            for (var j = 0; j < nBeta; j++)
                values[i, j] = 0.05 + 2 * alphas[i] * alphas[i] + 0.5 * betas[j] * betas[j];
        return new LossSurface(alphas, betas, values);
    }

    [Fact]
    public void HeatmapWithContoursColourBarAndLabelsRenders()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var figure = SurfacePlot.Create(Bowl(), new SurfacePlotOptions
        {
            Title = "2-D slice", Width = 700, Height = 600, LogScale = true, Markers = [new SurfaceMarker(0, 0, "trained")],
        });
        var (png, svg) = figure.SavePngAndSvg(folder.File("slice2d"));
        ImageChecks.AssertPngFile(png, 700, 600);
        var document = ImageChecks.AssertSvgFile(svg, 700, 600);
        var texts = ImageChecks.Texts(document);
        foreach (var expected in new[] { "2-D slice", "α", "β", "loss (log scale)", "trained" })
            Assert.Contains(expected, texts);
        // Contour lines are vector paths in the SVG, beyond the few of the frame, ticks and grid.
        Assert.True(document.Descendants().Count(e => e.Name.LocalName == "path") > 30);
        using var bitmap = ImageChecks.Decode(File.ReadAllBytes(png));
        Assert.True(ImageChecks.ColouredPixels(bitmap) > 50_000, "the heatmap is missing");
    }

    [Fact]
    public void ContoursAreDrawnAtTheRequestedNumberOfInteriorLevels()
    {
        TestMachine.RequireDejaVu();
        var figure = SurfacePlot.Create(Bowl(), new SurfacePlotOptions { ContourCount = 7 });
        var contours = figure.Panels[0].Plot.GetPlottables<ScottPlot.Plottables.ContourLines>().Single();
        var levels = contours.Lines.Select(l => l.Z).Distinct().Order().ToArray();
        Assert.Equal(7, levels.Length);
        // Values run from 0.05 to 2.55: levels at 0.05 + k * 2.5 / 8.
        for (var k = 0; k < 7; k++) Assert.Equal(0.05 + (k + 1) * 2.5 / 8, levels[k], 9);
        Assert.Empty(SurfacePlot.Create(Bowl(), new SurfacePlotOptions { ContourCount = 0 })
            .Panels[0].Plot.GetPlottables<ScottPlot.Plottables.ContourLines>());
    }

    [Fact]
    public void TheLowValueCornerIsWhereTheGridSaysItIs()
    {
        TestMachine.RequireDejaVu();
        // Loss grows with alpha and beta: the darkest (viridis: purple) cell must be at the lower left, not flipped.
        var alphas = new[] { 0.0, 1, 2, 3 };
        var betas = new[] { 0.0, 1, 2 };
        var values = new double[4, 3];
        for (var i = 0; i < 4; i++) for (var j = 0; j < 3; j++) values[i, j] = i + 4 * j;
        var figure = SurfacePlot.Create(new LossSurface(alphas, betas, values), new SurfacePlotOptions { ContourCount = 0 });
        var plot = figure.Panels[0].Plot;
        using var bitmap = ImageChecks.Decode(figure.ToPng());
        SKColor At(double a, double b)
        {
            var pixel = plot.GetPixel(new ScottPlot.Coordinates(a, b));
            return bitmap.GetPixel((int)pixel.X, (int)pixel.Y);
        }
        static int Brightness(SKColor c) => c.Red + c.Green + c.Blue;
        Assert.True(Brightness(At(0, 0)) < Brightness(At(3, 0)), "alpha axis flipped");
        Assert.True(Brightness(At(0, 0)) < Brightness(At(0, 2)), "beta axis flipped");
        Assert.True(Brightness(At(3, 0)) < Brightness(At(3, 2)));
    }

    [Fact]
    public void MismatchedGridSizesAreRejected()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            SurfacePlot.Create(new LossSurface([0.0, 1, 2], [0.0, 1], new double[2, 3])));
        Assert.Contains("Values is 2 x 3 but the grid is 3 alphas x 2 betas", error.Message);
    }

    [Fact]
    public void BadSurfacesAreRejectedWithThePlace()
    {
        var values = new double[3, 2];
        values[1, 1] = double.NaN;
        Assert.Contains("Values[1, 1] (alpha = 1, beta = 1) is NaN",
            Assert.Throws<ArgumentException>(() => SurfacePlot.Create(new LossSurface([0.0, 1, 2], [0.0, 1], values))).Message);
        Assert.Contains("evenly spaced",
            Assert.Throws<ArgumentException>(() => SurfacePlot.Create(new LossSurface([0.0, 1, 3], [0.0, 1], new double[3, 2]))).Message);
        Assert.Contains("strictly increasing",
            Assert.Throws<ArgumentException>(() => SurfacePlot.Create(new LossSurface([0.0, 1, 2], [1.0, 0], new double[3, 2]))).Message);
        Assert.Contains("at least two",
            Assert.Throws<ArgumentException>(() => SurfacePlot.Create(new LossSurface([0.0], [0.0, 1], new double[1, 2]))).Message);
        Assert.Contains("LogScale needs every value > 0",
            Assert.Throws<ArgumentException>(() => SurfacePlot.Create(new LossSurface([0.0, 1], [0.0, 1], new double[2, 2]),
                new SurfacePlotOptions { LogScale = true })).Message);
    }
}
