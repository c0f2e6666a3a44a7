using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

public class LinePlotTests
{
    private static readonly double[] Epochs = Enumerable.Range(1, 20).Select(i => (double)i).ToArray();

    [Fact]
    public void TrainingCurvesOfSeveralOptimizersRenderWithLegend()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var figure = LinePlot.Create(
        [
            new LineSeries("Entropy-SGD", Epochs, Epochs.Select(e => 1.3 + 4 * Math.Exp(-e / 4)).ToArray()) { ShowMarkers = true },
            new LineSeries("Adam", Epochs, Epochs.Select(e => 1.5 + 4 * Math.Exp(-e / 6)).ToArray()) { Dashed = true },
        ], "effective epochs", "validation error (%)", new LinePlotOptions { Title = "mnistfc", Width = 700, Height = 450 });
        var (png, svg) = figure.SavePngAndSvg(folder.File("val-error"));
        ImageChecks.AssertPngFile(png, 700, 450);
        var texts = ImageChecks.Texts(ImageChecks.AssertSvgFile(svg, 700, 450));
        foreach (var expected in new[] { "mnistfc", "effective epochs", "validation error (%)", "Entropy-SGD", "Adam" })
            Assert.Contains(expected, texts);
        using var bitmap = ImageChecks.Decode(File.ReadAllBytes(png));
        Assert.True(ImageChecks.ColouredPixels(bitmap) > 500, "the curves are missing");
    }

    [Fact]
    public void SvgDrawsDashedLinesSolidAndLeavesThePngsDashes()
    {
        // Skia's SVG device has no path effects (it drew dashes solid and printed a warning per line); the figure
        // draws them solid for the SVG only and puts the dash pattern back.
        TestMachine.RequireDejaVu();
        Figure Make(bool dashed) => LinePlot.Create(
            [new LineSeries("baseline", Epochs, Epochs.Select(e => 1.5 + 4 * Math.Exp(-e / 6)).ToArray()) { Dashed = dashed }],
            "epoch", "error", new LinePlotOptions { Width = 400, Height = 300 });
        var figure = Make(dashed: true);
        var before = figure.ToPng();
        ImageChecks.AssertSvg(figure.ToSvg(), 400, 300);
        Assert.Equal(before, figure.ToPng());
        var line = Assert.Single(figure.Panels.SelectMany(p => p.Plot.GetPlottables()).OfType<ScottPlot.IHasLine>());
        Assert.Equal(ScottPlot.LinePattern.Dashed.Name, line.LineStyle.Pattern.Name);
        Assert.NotEqual(before, Make(dashed: false).ToPng());
    }

    [Fact]
    public void InterpolationHasLossAboveErrorAndMarksBothEnds()
    {
        TestMachine.RequireDejaVu();
        var t = Enumerable.Range(0, 41).Select(i => -0.5 + i * 0.05).ToArray();
        var figure = LinePlot.Interpolation(
            [new LineSeries("train", t, t.Select(x => 0.1 + x * x * (x - 1) * (x - 1)).ToArray())],
            [new LineSeries("train", t, t.Select(x => 2 + 10 * x * x * (x - 1) * (x - 1)).ToArray())],
            new LinePlotOptions { Title = "Adam → Entropy-SGD" }, "Adam", "Entropy-SGD");
        ImageChecks.AssertPng(figure.ToPng(), figure.Width, figure.Height);
        var texts = ImageChecks.Texts(ImageChecks.AssertSvg(figure.ToSvg(), figure.Width, figure.Height));
        Assert.Contains("loss", texts);
        Assert.Contains("error (%)", texts);
        Assert.Single(texts, "t");   // one x label for the stack
        Assert.Equal(2, texts.Count(x => x == "t = 0 (Adam)"));
        Assert.Equal(2, texts.Count(x => x == "t = 1 (Entropy-SGD)"));
        Assert.Equal(2, figure.Panels.Count);
        // Both panels show the same t range.
        var limits = figure.Panels.Select(p => p.Plot.Axes.GetLimits()).ToArray();
        Assert.Equal(limits[0].Left, limits[1].Left);
        Assert.Equal(limits[0].Right, limits[1].Right);
        Assert.True(limits[0].Left < -0.5 && limits[0].Right > 1.5);
    }

    [Fact]
    public void LogYLabelsTicksWithValues()
    {
        TestMachine.RequireDejaVu();
        var figure = LinePlot.Stacked([new LinePanel("training loss", [new LineSeries("sgd", Epochs, Epochs.Select(e => Math.Pow(10, -e / 5)).ToArray())]) { LogY = true }],
            "epoch");
        var texts = ImageChecks.Texts(ImageChecks.AssertSvg(figure.ToSvg(), figure.Width, figure.Height));
        Assert.Contains("0.01", texts);
        Assert.Contains("0.1", texts);
    }

    [Fact]
    public void EleventhSeriesSharesTheFirstsColourButNotItsMarkerOrLineAndTheLegendCanSitOutside()
    {
        TestMachine.RequireDejaVu();
        var series = Enumerable.Range(0, 11).Select(i => new LineSeries($"arm {i}", Epochs, Epochs.Select(e => i + 10 / e).ToArray())).ToList();
        Figure Make(LegendCorner legend) => LinePlot.Create(series, "effective epochs", "test error (%)",
            new LinePlotOptions { Width = 700, Height = 450, Legend = legend });

        var lines = Make(LegendCorner.OutsideRight).Panels[0].Plot.GetPlottables<ScottPlot.Plottables.Scatter>().ToList();
        Assert.Equal(11, lines.Count);
        Assert.Equal(lines[0].Color, lines[10].Color);
        Assert.NotEqual(lines[0].MarkerShape, lines[10].MarkerShape);
        Assert.Equal(ScottPlot.LinePattern.Solid.Name, lines[0].LinePattern.Name);
        Assert.Equal(ScottPlot.LinePattern.Dotted.Name, lines[10].LinePattern.Name);
        Assert.Equal(10, lines.Take(10).Select(l => l.Color).Distinct().Count());

        // Outside, the legend takes a strip right of the data area: the rightmost tenth of the image has ink (the
        // legend's text) that the inside legend leaves blank, and its text is in the image either way.
        using var outside = ImageChecks.Decode(Make(LegendCorner.OutsideRight).ToPng());
        using var inside = ImageChecks.Decode(Make(LegendCorner.UpperRight).ToPng());
        var strip = new SkiaSharp.SKRectI(630, 0, 700, 450);
        Assert.True(ImageChecks.DarkPixels(outside, strip) > 100, "no legend right of the data area");
        Assert.Equal(0, ImageChecks.DarkPixels(inside, strip with { Left = 690 }));
        Assert.Contains("arm 10", ImageChecks.Texts(ImageChecks.AssertSvg(Make(LegendCorner.OutsideRight).ToSvg(), 700, 450)));
    }

    [Fact]
    public void BadSeriesAreRejectedWithNameAndIndex()
    {
        var mismatch = Assert.Throws<ArgumentException>(() =>
            LinePlot.Create([new LineSeries("adam", [0.0, 1, 2], [1.0, 2])], "x", "y"));
        Assert.Contains("series \"adam\"", mismatch.Message);
        Assert.Contains("has 3 values", mismatch.Message);

        var nan = Assert.Throws<ArgumentException>(() =>
            LinePlot.Create([new LineSeries("ok", [0.0], [1.0]), new LineSeries("esgd", [0.0, 1], [1.0, double.NaN])], "x", "y"));
        Assert.Contains("series \"esgd\" (panels[0].Series[1]).Y[1] is NaN", nan.Message);

        Assert.Contains("is empty", Assert.Throws<ArgumentException>(() => LinePlot.Create([], "x", "y")).Message);
        Assert.Contains("is empty", Assert.Throws<ArgumentException>(() => LinePlot.Create([new LineSeries("e", [], [])], "x", "y")).Message);

        var log = Assert.Throws<ArgumentException>(() =>
            LinePlot.Stacked([new LinePanel("loss", [new LineSeries("s", [0.0, 1], [1.0, 0])]) { LogY = true }], "x"));
        Assert.Contains("Y[1] = 0", log.Message);
        Assert.Contains("log-scale", log.Message);
    }
}
