using System.Text.Json.Nodes;
using SkiaSharp;
using WideValley.Tests.Reports;

namespace WideValley.Tests.Cli;

/// <summary>What CI asks of every reproduction report: it exists, its numbers parse, its plots are PNGs with text.</summary>
internal static class ReproduceReportChecks
{
    /// <summary>Parses the report's JSON twin.</summary>
    public static JsonObject ReadJson(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        return JsonNode.Parse(File.ReadAllText(path))!.AsObject();
    }

    /// <summary>
    /// A valid PNG whose bottom band, where the x-axis label is drawn, holds dark (text) pixels, and an SVG twin whose
    /// text elements include <paramref name="xLabel"/>.
    /// </summary>
    public static void AssertPlotWithText(string pngPath, string xLabel, int width = 900, int height = 560)
    {
        ImageChecks.AssertPngFile(pngPath, width, height);
        using var bitmap = ImageChecks.Decode(File.ReadAllBytes(pngPath));
        var band = new SKRectI(width / 4, height - 30, 3 * width / 4, height);
        Assert.True(ImageChecks.DarkPixels(bitmap, band) > 30, $"{pngPath}: no text where the x label should be");
        var svg = ImageChecks.AssertSvgFile(Path.ChangeExtension(pngPath, ".svg"), width, height);
        Assert.Contains(ImageChecks.Texts(svg), t => t.Contains(xLabel, StringComparison.Ordinal));
    }

    /// <summary>Every Markdown image link of the report names a file next to it.</summary>
    public static void AssertImagesExist(string markdownPath)
    {
        var folder = Path.GetDirectoryName(markdownPath)!;
        var links = System.Text.RegularExpressions.Regex.Matches(File.ReadAllText(markdownPath), @"!\[[^\]]*\]\(([^)]+)\)");
        Assert.NotEmpty(links);
        foreach (System.Text.RegularExpressions.Match m in links)
            Assert.True(File.Exists(Path.Combine(folder, m.Groups[1].Value)), $"{markdownPath} links {m.Groups[1].Value}, which does not exist");
    }
}
