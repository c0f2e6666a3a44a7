using ScottPlot;
using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

/// <summary>Saving figures: formats, sizes, folders, atomic replacement, no debris after a failure.</summary>
public class FigureFileTests
{
    private static Figure SmallLinePlot(string title = "curve", int width = 640, int height = 400) =>
        LinePlot.Create([new LineSeries("a", [0.0, 1, 2], [1.0, 0.5, 0.25])], "x", "y",
            new LinePlotOptions { Title = title, Width = width, Height = height });

    [Fact]
    public void SavesPngAndSvgOfTheRequestedSize()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var (png, svg) = SmallLinePlot(width: 641, height: 397).SavePngAndSvg(folder.File("curve"));
        Assert.Equal(folder.File("curve.png"), png);
        Assert.Equal(folder.File("curve.svg"), svg);
        ImageChecks.AssertPngFile(png, 641, 397);
        ImageChecks.AssertSvgFile(svg, 641, 397);
        Assert.Empty(folder.Leftovers());
    }

    [Fact]
    public void SaveChoosesTheFormatByExtensionAndRejectsOthers()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var figure = SmallLinePlot();
        figure.Save(folder.File("a.PNG"));
        figure.Save(folder.File("b.svg"));
        ImageChecks.AssertPngFile(folder.File("a.PNG"), 640, 400);
        ImageChecks.AssertSvgFile(folder.File("b.svg"), 640, 400);
        var error = Assert.Throws<ArgumentException>(() => figure.Save(folder.File("c.jpg")));
        Assert.Contains(".png or .svg", error.Message);
        Assert.False(File.Exists(folder.File("c.jpg")));
    }

    [Fact]
    public void WritingIntoAFolderThatDoesNotExistCreatesIt()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var path = Path.Combine(folder.Path, "run", "plots", "deep", "spectrum.png");
        SmallLinePlot().SavePng(path);
        ImageChecks.AssertPngFile(path, 640, 400);
        SmallLinePlot().SaveSvg(Path.ChangeExtension(path, ".svg"));
        ImageChecks.AssertSvgFile(Path.ChangeExtension(path, ".svg"), 640, 400);
    }

    [Fact]
    public void AnExistingFileIsReplacedWholeAndNoTemporaryIsLeft()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var png = folder.Write("plot.png", new byte[100_000]);   // bigger than the new image: a non-truncating write would show
        var svg = folder.WriteText("plot.svg", new string('x', 200_000));
        SmallLinePlot("second version").SavePng(png);
        SmallLinePlot("second version").SaveSvg(svg);
        ImageChecks.AssertPngFile(png, 640, 400);
        Assert.Contains("second version", ImageChecks.Texts(ImageChecks.AssertSvgFile(svg, 640, 400)));
        Assert.Equal(SmallLinePlot("second version").ToPng(), File.ReadAllBytes(png));
        Assert.Empty(folder.Leftovers());
    }

    [Theory]
    [InlineData("png")]
    [InlineData("svg")]
    public void AFailureWhileDrawingKeepsTheOldFileAndLeavesNoPartialFile(string format)
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var path = folder.File("plot." + format);
        SmallLinePlot("old").Save(path);
        var before = File.ReadAllBytes(path);

        var failing = SmallLinePlot("new");
        // Drawn after the axes, frame and title have already gone to the output stream (for SVG: into the temporary file).
        failing.Panels[0].Plot.Add.Plottable(new ThrowingPlottable());
        var error = Assert.Throws<InvalidOperationException>(() => failing.Save(path));
        Assert.Contains(ThrowingPlottable.Message, error.ToString());

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(folder.Leftovers());
        Assert.Single(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void AFailingRenameKeepsWhatIsThereAndLeavesNoPartialFile()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var target = folder.File("taken.png");
        Directory.CreateDirectory(target);   // a folder where the image should go: the final rename must fail
        File.WriteAllText(Path.Combine(target, "keep.txt"), "keep");
        Assert.ThrowsAny<IOException>(() => SmallLinePlot().SavePng(target));
        Assert.Equal("keep", File.ReadAllText(Path.Combine(target, "keep.txt")));
        Assert.Empty(folder.Leftovers());
    }

    [Fact]
    public void TooSmallAFigureIsRejected()
    {
        TestMachine.RequireDejaVu();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => SmallLinePlot(width: 10, height: 400));
        Assert.Contains("10 x 400", error.Message);
    }

    [Fact]
    public void EncodingTwiceGivesTheSameBytes()
    {
        TestMachine.RequireDejaVu();
        var figure = SmallLinePlot();
        Assert.Equal(figure.ToPng(), figure.ToPng());
        // Skia numbers SVG clip paths from a process-wide counter; everything else must be identical.
        static string WithoutClipIds(string svg) => System.Text.RegularExpressions.Regex.Replace(svg, "cl_[0-9a-f]+", "cl");
        Assert.Equal(WithoutClipIds(figure.ToSvg()), WithoutClipIds(figure.ToSvg()));
    }

    /// <summary>A plottable whose drawing fails, standing in for any error in the middle of rendering.</summary>
    private sealed class ThrowingPlottable : IPlottable
    {
        public const string Message = "simulated failure while drawing";
        public bool IsVisible { get; set; } = true;
        public IAxes Axes { get; set; } = new ScottPlot.Axes();
        public IEnumerable<LegendItem> LegendItems => [];
        public AxisLimits GetAxisLimits() => AxisLimits.NoLimits;
        public void Render(RenderPack rp) => throw new InvalidOperationException(Message);
    }
}
