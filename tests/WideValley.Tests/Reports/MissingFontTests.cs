using WideValley.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

/// <summary>
/// A machine without the plotting font: figures are still built, <see cref="Figure.TrySavePngAndSvg"/> writes nothing
/// and says what is missing and how to fix it, the throwing saves still throw, and the font is found again once the
/// machine has it.
/// </summary>
public sealed class MissingFontTests
{
    private static Figure Curve() =>
        LinePlot.Create([new LineSeries("a", [0.0, 1, 2], [1.0, 0.5, 0.25])], "x", "y", new LinePlotOptions { Title = "curve" });

    [Fact]
    public void WithoutTheFontTrySaveWritesNothingAndNamesTheFontThePackageAndTheVariable()
    {
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        using (var machine = new FontlessMachine())
        {
            var figure = Curve();
            Assert.False(PlotFonts.TryEnsureAvailable(out var problem));
            Assert.False(figure.TrySavePngAndSvg(folder.File("curve"), out var skipped));
            Assert.Equal(problem, skipped);
            Assert.Contains($"\"{PlotFonts.Family}\"", skipped);
            Assert.Contains($"apt-get install {PlotFonts.AptPackage}", skipped);
            Assert.Contains(PlotFonts.FontFolderVariable, skipped);
            Assert.Contains(machine.FontFolder, skipped);
            Assert.False(figure.TrySave(folder.File("one.png"), out _));
            // A bad extension is refused as such, font or no font.
            Assert.Throws<ArgumentException>(() => figure.TrySave(folder.File("one.jpg"), out _));
            // The throwing form keeps its contract.
            var error = Assert.Throws<InvalidOperationException>(() => figure.SavePng(folder.File("direct.png")));
            Assert.Contains(PlotFonts.Family, error.Message);
            Assert.Empty(Directory.GetFiles(folder.Path, "*", SearchOption.AllDirectories));
        }

        // The same process finds the font again when the machine has it (the search is redone when its settings change).
        Assert.True(Curve().TrySavePngAndSvg(folder.File("curve"), out var none), none);
        ImageChecks.AssertPngFile(folder.File("curve.png"), 900, 560);
        Assert.True(File.Exists(folder.File("curve.svg")));
    }
}
