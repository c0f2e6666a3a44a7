using System.Text.RegularExpressions;
using SkiaSharp;
using WideValley.Reports.Html;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

/// <summary>
/// The report in a real browser: headless Chromium (Debian's package) opens the written file from a folder that holds
/// nothing else, behind a recording proxy. Two launches: the report itself, and a page that does load something from
/// outside, which shows the network check can fail.
/// </summary>
public class HtmlReportBrowserTests
{
    private const int WindowWidth = 1200, WindowHeight = 3600;

    /// <summary>Null when the load reached nothing outside the page; otherwise what it reached, for the failure message.</summary>
    private static string? OutsideLoadProblem(ChromiumPageLoad load) =>
        load.OutsideLoads.Count == 0
            ? null
            : $"the page reached outside itself: {string.Join("; ", load.OutsideLoads)} " +
              $"(all proxy connections: {string.Join("; ", load.ProxyConnections)}; browser-own requests exempted: " +
              $"{string.Join("; ", load.BrowserOwnRequests.Select(r => r.Url))})";

    [Fact]
    public void TheReportRendersWithItsTableAndEveryPlotAndLoadsNothingFromOutside()
    {
        HeadlessChromium.Require();
        TestMachine.RequireDejaVu();
        using var folder = new TempDir();
        var path = folder.File("flatness.html");
        HtmlReportSamples.Build().Save(path);

        var load = HeadlessChromium.Load(File.ReadAllText(path), WindowWidth, WindowHeight);

        // Nothing from outside: the proxy saw no connection that Chromium's own services do not explain, and the
        // net log holds no request but theirs.
        Assert.True(OutsideLoadProblem(load) is null, OutsideLoadProblem(load));

        // The DOM after load holds the table with its four body rows and every plot, each once, under its id.
        var table = Regex.Match(load.Dom, "<table id=\"summary\">.*?</table>", RegexOptions.Singleline);
        Assert.True(table.Success, "the summary table is not in the DOM");
        Assert.Equal(5, Regex.Matches(table.Value, "<tr>").Count);
        Assert.Contains("λ_max", table.Value);
        Assert.Contains("class=\"num worse\">8<", table.Value);
        var plots = Regex.Matches(load.Dom, "<(svg|img)\\b[^>]*\\bid=\"([^\"]+)\"")
            .Select(m => (Element: m.Groups[1].Value, Id: m.Groups[2].Value)).ToList();
        foreach (var id in HtmlReportSamples.SvgFigureIds) Assert.Single(plots, p => p == ("svg", id));
        Assert.Single(plots, p => p == ("img", HtmlReportSamples.PngFigureId));
        Assert.Equal(4, plots.Count);
        // The inline SVGs arrive whole: their text (axis labels, titles) is in the DOM.
        Assert.Contains("Wigner spectrum", load.Dom);
        Assert.Contains("Double well", load.Dom);

        using var screenshot = ImageChecks.Decode(load.Screenshot);
        Assert.Equal((WindowWidth, WindowHeight), (screenshot.Width, screenshot.Height));
        var pixels = screenshot.Pixels;
        // Not blank: the page's white background is not all there is, the grey levels vary, and the plots' colours
        // (curves, bars, the heat map) are drawn.
        var background = new SKColor(255, 255, 255);
        var differing = pixels.Count(p => p.WithAlpha(255) != background) / (double)pixels.Length;
        Assert.True(differing > 0.05, $"only {differing:P1} of the screenshot differs from the white background");
        var grey = pixels.Select(p => (p.Red + p.Green + p.Blue) / 3.0).ToArray();
        var mean = grey.Average();
        var variance = grey.Sum(g => (g - mean) * (g - mean)) / grey.Length;
        Assert.True(variance > 200, $"the screenshot's grey-level variance is {variance:F1}; a blank page has 0");
        Assert.True(ImageChecks.ColouredPixels(screenshot) > 50_000,
            $"only {ImageChecks.ColouredPixels(screenshot)} coloured pixels: the plots were not drawn");

        // Text renders: the title (28 px, left-aligned, 26 characters) makes dark pixels in its band on the left half
        // of the page and none on the right.
        var titleBand = new SKRectI(0, 20, WindowWidth / 2, 70);
        var rightOfTitle = new SKRectI(WindowWidth * 2 / 3, 20, WindowWidth, 70);
        Assert.True(ImageChecks.DarkPixels(screenshot, titleBand) > 500,
            $"the title band has {ImageChecks.DarkPixels(screenshot, titleBand)} dark pixels: the title's text was not drawn");
        Assert.Equal(0, ImageChecks.DarkPixels(screenshot, rightOfTitle));
    }

    [Theory]
    [InlineData("CONNECT accounts.google.com:443 HTTP/1.1", "accounts.google.com")]
    [InlineData("CONNECT [::1]:8080 HTTP/1.1", "::1")]
    [InlineData("GET http://Example.invalid/x.png HTTP/1.1", "example.invalid")]
    [InlineData("POST http://update.googleapis.com/service/update2/json?x=1 HTTP/1.1", "update.googleapis.com")]
    [InlineData("(connection without a request)", null)]
    [InlineData("GET /relative HTTP/1.1", null)]
    public void TheProxyReadsTheHostOfEachRequestLine(string requestLine, string? host) =>
        Assert.Equal(host, HeadlessChromium.ProxyHost(requestLine));

    [Fact]
    public void APageThatLoadsFromOutsideIsCaughtByTheProxyTheNetLogAndTheStaticCheck()
    {
        HeadlessChromium.Require();
        const string page = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>leaky</title>
            <link rel="stylesheet" href="http://styles.invalid/s.css">
            </head><body>
            <h1>A page that reaches out</h1>
            <img src="http://example.invalid/x.png" alt="outside picture">
            <div style="width: 50px; height: 50px; background: url(http://backgrounds.invalid/b.png)"></div>
            </body></html>
            """;

        var load = HeadlessChromium.Load(page, 800, 600);

        var problem = OutsideLoadProblem(load);
        Assert.NotNull(problem);
        foreach (var host in new[] { "example.invalid", "styles.invalid", "backgrounds.invalid" })
        {
            Assert.Contains(load.ProxyConnections, c => HeadlessChromium.ProxyHost(c) == host);
            Assert.Contains(load.PageRequests, r => new Uri(r.Url).Host == host);
            Assert.Contains(host, problem);
        }
        Assert.Contains("GET http://example.invalid/x.png HTTP/1.1", load.ProxyConnections);
        Assert.Equal(["http://styles.invalid/s.css", "http://example.invalid/x.png", "http://backgrounds.invalid/b.png"],
            HtmlSelfContainment.FindOutsideReferences(page).Select(o => o.Reference));
    }
}
