using System.Globalization;
using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

public class HistogramPlotTests
{
    [Fact]
    public void DiagonalFisherOnLogAxesRendersAndCountsTheZeros()
    {
        TestMachine.RequireDejaVu();
        var random = new Random(5);
        var values = Enumerable.Range(0, 5000).Select(i => i % 100 == 0 ? 0 : Math.Pow(10, -9 + 8 * random.NextDouble())).ToArray();
        using var folder = new TempDir();
        var figure = HistogramPlot.Create(values, new HistogramPlotOptions
        {
            Title = "diagonal Fisher, allcnn", XLabel = "diag(I)", LogX = true, LogY = true, Width = 720, Height = 420,
        });
        var (png, svg) = figure.SavePngAndSvg(folder.File("fisher"));
        ImageChecks.AssertPngFile(png, 720, 420);
        var texts = ImageChecks.Texts(ImageChecks.AssertSvgFile(svg, 720, 420));
        foreach (var expected in new[] { "diagonal Fisher, allcnn", "diag(I) (log scale)", "count (log scale)", "1e-6", "0.01" })
            Assert.Contains(expected, texts);
        Assert.Contains(texts, t => t.Contains("50 values ≤ 0 not shown", StringComparison.Ordinal));
    }

    [Fact]
    public void BinsCountEveryValueOnce()
    {
        var (centers, counts, width) = SpectrumPlot.Histogram([0.0, 0.1, 0.5, 0.99, 1.0], 0, 1, 4);
        Assert.Equal([2, 0, 1, 2], counts);   // bins are [lo, hi) except the last, which keeps its upper edge
        Assert.Equal(0.25, width, 12);
        Assert.Equal(0.125, centers[0], 12);
    }

    [Fact]
    public void BadInputIsRejected()
    {
        Assert.Contains("values is empty", Assert.Throws<ArgumentException>(() => HistogramPlot.Create([])).Message);
        Assert.Contains("values[1] is -infinity",
            Assert.Throws<ArgumentException>(() => HistogramPlot.Create([1, double.NegativeInfinity])).Message);
        Assert.Contains("no positive entry",
            Assert.Throws<ArgumentException>(() => HistogramPlot.Create([0, -1], new HistogramPlotOptions { LogX = true })).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => HistogramPlot.Create([1.0], new HistogramPlotOptions { Bins = 0 }));
    }
}

public class SeriesCsvTests
{
    [Fact]
    public void ColumnsAreWrittenInTheInvariantCultureWithRoundTripPrecision()
    {
        var previous = CultureInfo.CurrentCulture;
        // A decimal comma must not leak in. (The test project runs with invariant globalization, so "de-DE" itself
        // is not available; a clone with German number formatting stands in.)
        var german = (CultureInfo)CultureInfo.InvariantCulture.Clone();
        german.NumberFormat.NumberDecimalSeparator = ",";
        german.NumberFormat.NumberGroupSeparator = ".";
        CultureInfo.CurrentCulture = german;
        try
        {
            using var folder = new TempDir();
            var path = folder.File("sub/curve.csv");
            SeriesCsv.WriteColumns(path, [new CsvColumn("t", [-0.5, 0.1]), new CsvColumn("loss, train", [1.0 / 3, 2.5e-7])]);
            var lines = File.ReadAllText(path).Split('\n');
            Assert.Equal("t,\"loss, train\"", lines[0]);
            Assert.Equal("-0.5,0.3333333333333333", lines[1]);
            Assert.Equal("0.1,2.5E-07", lines[2]);
            Assert.Equal(2.5e-7, double.Parse(lines[2].Split(',')[1], CultureInfo.InvariantCulture));
            Assert.Empty(folder.Leftovers());
        }
        finally { CultureInfo.CurrentCulture = previous; }
    }

    [Fact]
    public void SeriesAndSurfacesAreWrittenInLongForm()
    {
        using var folder = new TempDir();
        SeriesCsv.WriteSeries(folder.File("curves.csv"),
            [new LineSeries("adam", [1.0, 2], [5.0, 4]), new LineSeries("entropy-sgd", [1.0], [3.0])], "effective_epochs", "val_error");
        Assert.Equal("series,effective_epochs,val_error\nadam,1,5\nadam,2,4\nentropy-sgd,1,3\n", File.ReadAllText(folder.File("curves.csv")));

        SeriesCsv.WriteSurface(folder.File("surface.csv"), new LossSurface([0.0, 0.5], [-1.0, 1], new double[,] { { 1, 2 }, { 3, 4 } }));
        Assert.Equal("alpha,beta,loss\n0,-1,1\n0,1,2\n0.5,-1,3\n0.5,1,4\n", File.ReadAllText(folder.File("surface.csv")));
    }

    [Fact]
    public void BadTablesAreRejected()
    {
        Assert.Contains("column \"b\" has 1",
            Assert.Throws<ArgumentException>(() => SeriesCsv.FormatColumns([new CsvColumn("a", [1.0, 2]), new CsvColumn("b", [1.0])])).Message);
        Assert.Contains("appears twice",
            Assert.Throws<ArgumentException>(() => SeriesCsv.FormatColumns([new CsvColumn("a", [1.0]), new CsvColumn("a", [1.0])])).Message);
        Assert.Contains("Values is 1 x 1",
            Assert.Throws<ArgumentException>(() => SeriesCsv.WriteSurface("unused.csv", new LossSurface([0.0, 1], [0.0, 1], new double[1, 1]))).Message);
    }
}
