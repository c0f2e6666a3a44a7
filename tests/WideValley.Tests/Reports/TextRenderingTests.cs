using ScottPlot;
using SkiaSharp;
using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

/// <summary>
/// Text must really be drawn: a plot renderer that finds no usable font draws empty boxes or nothing at all, and the
/// image still "succeeds". These tests look at the pixels.
/// </summary>
public class TextRenderingTests
{
    private const int Width = 800, Height = 500;

    // Fixed margins, so the data area does not move when labels are removed and only the label pixels can differ.
    private const float Left = 90, Right = 30, Bottom = 90, Top = 30;

    private static readonly SKRectI XLabelBand = new((int)Left, Height - (int)Bottom + 17, Width - (int)Right, Height);

    private static Figure LinePlotWithFixedLayout(string? title, string xLabel, string yLabel)
    {
        double[] x = [0, 1, 2, 3, 4], y = [3, 1, 4, 1, 5];
        var figure = LinePlot.Create([new LineSeries("", x, y)], xLabel, yLabel,
            new LinePlotOptions { Title = title, Width = Width, Height = Height });
        figure.Panels[0].Plot.Layout.Fixed(new PixelPadding(Left, Right, Bottom, Top));
        return figure;
    }

    [Fact]
    public void AxisLabelsAndTitleAppearAsDarkPixelsExactlyWhereTheyBelong()
    {
        TestMachine.RequireDejaVu();
        using var labelled = ImageChecks.Decode(LinePlotWithFixedLayout("A figure title", "effective epochs", "validation error").ToPng());
        using var blank = ImageChecks.Decode(LinePlotWithFixedLayout(null, "", "").ToPng());

        // The figure title takes a 44-pixel band at the top. The x label sits below the tick labels (which end about
        // 13 pixels below the data area), the y label left of them (they start about 27 pixels left of it).
        const int titleBand = 44;
        var xLabelBand = XLabelBand;
        var yLabelBand = new SKRectI(0, titleBand + (int)Top, (int)Left - 30, Height - (int)Bottom);
        var titleRegion = new SKRectI(0, 0, Width, titleBand);

        var xLabelInk = ImageChecks.DarkPixels(labelled, xLabelBand);
        var yLabelInk = ImageChecks.DarkPixels(labelled, yLabelBand);
        var titleInk = ImageChecks.DarkPixels(labelled, titleRegion);
        Assert.True(xLabelInk > 150, $"x label: only {xLabelInk} dark pixels in its band");
        Assert.True(yLabelInk > 150, $"y label: only {yLabelInk} dark pixels in its band");
        Assert.True(titleInk > 200, $"title: only {titleInk} dark pixels in the title band");
        Assert.Equal(0, ImageChecks.DarkPixels(blank, xLabelBand));
        Assert.Equal(0, ImageChecks.DarkPixels(blank, yLabelBand with { Top = (int)Top }));
        Assert.Equal(0, ImageChecks.DarkPixels(blank, titleRegion with { Bottom = 20 }));

        // Centred labels: the x label's ink is centred under the data area, the title's across the figure.
        var dataCentre = Left + (Width - Left - Right) / 2.0;
        Assert.InRange(ImageChecks.DarkCentroidX(labelled, xLabelBand), dataCentre - 40, dataCentre + 40);
        Assert.InRange(ImageChecks.DarkCentroidX(labelled, titleRegion), Width / 2.0 - 40, Width / 2.0 + 40);
    }

    [Fact]
    public void ALongTitleBreaksIntoTwoLinesAndShrinksRatherThanRunOffTheEdges()
    {
        TestMachine.RequireDejaVu();
        const string longTitle = "MLP with one hidden layer (784-100-10, generalised ReLU, Fashion-MNIST): PAC-Bayes σ' against the gap, Spearman ρ = 0.43 (33 runs)";
        var one = Figure.LayOutTitle("A figure title", Width);
        Assert.Equal(["A figure title"], one.Lines);
        Assert.Equal((20f, 44f), (one.FontSize, one.BandHeight));

        var two = Figure.LayOutTitle(longTitle, Width);
        Assert.Equal(2, two.Lines.Count);
        Assert.Equal(longTitle, string.Join(" ", two.Lines));
        Assert.InRange(two.FontSize, 11f, 20f);
        Assert.True(two.BandHeight > 44);
        using (var font = new SKFont(PlotFonts.Typeface(bold: true), two.FontSize))
            foreach (var line in two.Lines) Assert.True(font.MeasureText(line) <= Width - 24, $"\"{line}\" is wider than the figure");

        // No space to break at: one line, shrunk (to no less than 11 pixels).
        var unbroken = Figure.LayOutTitle(new string('W', 200), Width);
        Assert.Single(unbroken.Lines);
        Assert.Equal(11f, unbroken.FontSize);

        // In the image: ink in both lines' rows, none in the outermost columns, and the panels start below the band.
        using var image = ImageChecks.Decode(LinePlotWithFixedLayout(longTitle, "x", "y").ToPng());
        var band = (int)two.BandHeight;
        Assert.True(ImageChecks.DarkPixels(image, new SKRectI(0, 0, Width, band / 2)) > 200, "no first title line");
        Assert.True(ImageChecks.DarkPixels(image, new SKRectI(0, band / 2, Width, band)) > 200, "no second title line");
        Assert.Equal(0, ImageChecks.DarkPixels(image, new SKRectI(0, 0, 6, band)));
        Assert.Equal(0, ImageChecks.DarkPixels(image, new SKRectI(Width - 6, 0, Width, band)));
    }

    [Fact]
    public void DifferentLabelTextGivesDifferentInkOfPlausibleWidth()
    {
        TestMachine.RequireDejaVu();
        // A glyph-less renderer (tofu boxes, or one fixed-width blob per label) would not scale with the text.
        using var shortLabel = ImageChecks.Decode(LinePlotWithFixedLayout(null, "t", "y").ToPng());
        using var longLabel = ImageChecks.Decode(LinePlotWithFixedLayout(null, "interpolation coefficient t", "y").ToPng());
        var band = XLabelBand;
        var shortInk = ImageChecks.DarkPixels(shortLabel, band);
        var longInk = ImageChecks.DarkPixels(longLabel, band);
        Assert.True(shortInk > 5, $"the one-letter label left {shortInk} dark pixels");
        Assert.True(longInk > 8 * shortInk, $"27 characters left {longInk} dark pixels, one character {shortInk}");
        Assert.True(ImageChecks.DifferentPixels(shortLabel, longLabel, new SKRectI(0, 0, Width, band.Top)) == 0,
            "changing the x label changed pixels outside its band");
    }

    [Fact]
    public void EveryTextOfEveryPlotKindIsInDejaVuSans()
    {
        TestMachine.RequireDejaVu();
        double[] x = [0, 1, 2];
        var surface = new LossSurface([0.0, 1, 2], [0.0, 1], new double[,] { { 1, 2 }, { 3, 4 }, { 5, 6 } });
        Figure[] figures =
        [
            SpectrumPlot.FromEigenvalues([-0.5, -1e-5, 0, 1e-5, 2e-5, 3, 40], new SpectrumPlotOptions { Title = "spectrum" }),
            SpectrumPlot.FromDensity([-1.0, 0, 1, 2], [0.1, 2, 0.5, 0.01],
                new SpectrumPlotOptions { Title = "density", Statistics = new SpectrumStatistics(null, -1, 2, 1e-4, 0.9) }),
            LinePlot.Interpolation([new LineSeries("train", x, [1.0, 2, 1])], [new LineSeries("train", x, [5.0, 9, 5])], new LinePlotOptions { Title = "line" }),
            SurfacePlot.Create(surface, new SurfacePlotOptions { Title = "surface", LogScale = true, Markers = [new SurfaceMarker(1, 0, "w*")] }),
            HistogramPlot.Create([0, 1e-6, 1e-3, 1e-1], new HistogramPlotOptions { Title = "histogram", LogX = true }),
        ];
        foreach (var figure in figures)
        {
            var svg = ImageChecks.AssertSvg(figure.ToSvg(), figure.Width, figure.Height);
            var texts = ImageChecks.TextElements(svg);
            Assert.True(texts.Count >= 5, $"{figure.Title}: only {texts.Count} text elements");
            foreach (var text in texts)
                Assert.Equal(PlotFonts.Family, (string?)text.Attribute("font-family"));
            Assert.Contains(figure.Title!, ImageChecks.Texts(svg));
        }
    }

    [Fact]
    public void AMissingFontFailsWithTheAptPackageToInstall()
    {
        using var emptyFolder = new TempDir();
        var error = Assert.Throws<InvalidOperationException>(() =>
            PlotFonts.Resolve("WideValley Missing Font", [emptyFolder.Path], _ => false));
        Assert.Contains("\"WideValley Missing Font\"", error.Message);
        Assert.Contains("apt-get install fonts-dejavu-core", error.Message);
        Assert.Contains(emptyFolder.Path, error.Message);
        Assert.Contains(PlotFonts.FontFolderVariable, error.Message);
    }

    [Fact]
    public void TheFontIsLoadedFromItsFilesWhenTheSystemDoesNotKnowIt()
    {
        // The same files fonts-dejavu-core installs; registering them again for the same family changes nothing.
        const string folder = "/usr/share/fonts/truetype/dejavu";
        Assert.True(File.Exists(Path.Combine(folder, "DejaVuSans.ttf")), $"install fonts-dejavu-core ({folder} is missing)");
        Assert.Equal(PlotFonts.FontSource.Files, PlotFonts.Resolve(PlotFonts.Family, ["/nonexistent-folder", folder], _ => false));
        // Not disposed: ScottPlot caches typefaces.
        var typeface = ScottPlot.Fonts.GetTypeface(PlotFonts.Family, bold: true, italic: false);
        Assert.Equal(PlotFonts.Family, typeface.FamilyName);
        Assert.True(typeface.IsBold);
    }
}
