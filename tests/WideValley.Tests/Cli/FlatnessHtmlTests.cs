using System.Net;
using WideValley.Cli;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SkiaSharp;
using WideValley.Experiments.Flatness;
using WideValley.Landscape.Flatness;
using WideValley.Reports.Html;
using WideValley.Tests.Reports;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Cli;

/// <summary>
/// flatness.html in a real browser: `widevalley flatness` on two tiny conv nets at the quick budget (the fixtures of
/// <see cref="FlatnessCommandTests"/>), then one headless-Chromium launch on the page it wrote: nothing loaded from
/// outside, a screenshot that is not blank, the summary table with a column per model and a row per compared value,
/// and every plot the report lists.
/// </summary>
public sealed class FlatnessHtmlTests
{
    private const int WindowWidth = 1200, WindowHeight = 6000;

    [Fact]
    public void TheFlatnessPageOfTwoModelsRendersItsSummaryAndEveryPlotAndLoadsNothingFromOutside()
    {
        HeadlessChromium.Require();
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        using (var net = TinyConvNet.WithFixtureWeights()) net.save(dir.File("a.bin"));
        using (var net = TinyConvNet.WithFixtureWeights())
        {
            using (no_grad())
                foreach (var p in net.parameters()) p.mul_(0.5);
            net.save(dir.File("b.bin"));
        }
        var outDir = dir.File("report");
        var (code, output, err) = InProcessCli.Run(["flatness", dir.File("a.bin"), dir.File("b.bin"), "--model-factory", FlatnessCommandTests.Factory,
            .. FlatnessCommandTests.FixtureData, "--budget", "quick", "--out", outDir, "--threads", "1"]);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}\n{output}");
        Assert.Contains(FlatnessHtmlReport.FileName, output);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, FlatnessReport.JsonFile)))!.AsObject();
        var files = json["files"]!.AsArray().Select(f => (string)f!).ToList();
        Assert.Contains(FlatnessHtmlReport.FileName, files);
        // Every plot the report drew (plots/STEM.svg beside each PNG) is in the page as plot-STEM.
        var plotIds = files.Where(f => f.StartsWith("plots/", StringComparison.Ordinal) && f.EndsWith(".svg", StringComparison.Ordinal))
            .Select(f => "plot-" + Path.GetFileNameWithoutExtension(f)).ToList();
        Assert.Contains("plot-model1-surface-grid", plotIds);
        Assert.Contains("plot-model2-hessian-density-density", plotIds);
        Assert.Contains("plot-model1-slice-random-curves", plotIds);
        Assert.Contains("plot-interpolation-1", plotIds);

        var html = File.ReadAllText(Path.Combine(outDir, FlatnessHtmlReport.FileName));
        Assert.Empty(HtmlSelfContainment.FindOutsideReferences(html));
        // The header's command names the inputs by file name, not by this machine's paths.
        var command = Regex.Match(html, "<dt>Command</dt><dd><pre><code>(.*?)</code>", RegexOptions.Singleline);
        Assert.True(command.Success, "no command in the page's header");
        Assert.StartsWith("widevalley flatness a.bin b.bin", WebUtility.HtmlDecode(command.Groups[1].Value));

        var load = HeadlessChromium.Load(html, WindowWidth, WindowHeight);

        Assert.True(load.OutsideLoads.Count == 0,
            $"the page reached outside itself: {string.Join("; ", load.OutsideLoads)} (proxy connections: {string.Join("; ", load.ProxyConnections)})");

        // The summary: a column per model between the invariance and the direction, a row per compared value in order.
        var table = Regex.Match(load.Dom, $"<table id=\"{FlatnessHtmlReport.SummaryTableId}\">.*?</table>", RegexOptions.Singleline);
        Assert.True(table.Success, "the summary table is not in the DOM");
        var header = Regex.Matches(Regex.Match(table.Value, "<thead>.*?</thead>", RegexOptions.Singleline).Value, "<th scope=\"col\">(.*?)</th>")
            .Select(m => WebUtility.HtmlDecode(m.Groups[1].Value)).ToList();
        Assert.Equal(["measure", "ReLU-rescaling invariant", "a.bin", "b.bin", "flatter when", "verdict"], header);
        var comparison = json["comparison"]!.AsArray();
        var rows = Regex.Matches(Regex.Match(table.Value, "<tbody>.*?</tbody>", RegexOptions.Singleline).Value, "<tr>(.*?)</tr>", RegexOptions.Singleline)
            .Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(comparison.Select(r => (string)r!["label"]!), rows.Select(r => WebUtility.HtmlDecode(Regex.Match(r, "<th scope=\"row\">(.*?)</th>").Groups[1].Value)));
        Assert.All(rows, r => Assert.Equal(header.Count - 1, Regex.Matches(r, "<td\\b").Count));
        Assert.True(comparison.Count >= FlatnessMeasures.All.Count, $"{comparison.Count} rows for {FlatnessMeasures.All.Count} measures");
        // The verdicts colour the model cells: lambda_max (no standard error) has one flatter and one sharper model.
        var lambdaMax = rows[comparison.Select(r => (string)r!["name"]!).ToList().IndexOf("lambda_max")];
        Assert.Single(Regex.Matches(lambdaMax, "class=\"num better\""));
        Assert.Single(Regex.Matches(lambdaMax, "class=\"num worse\""));
        // Values that are not flatness measures are not coloured.
        var trainLoss = rows[comparison.Select(r => (string)r!["name"]!).ToList().IndexOf("train_loss")];
        Assert.Equal(2, Regex.Matches(trainLoss, "class=\"num\"").Count);

        // Every plot once under its id (inline SVG, or an img for a dense one), and nothing else claims to be a plot.
        var plots = Regex.Matches(load.Dom, "<(svg|img)\\b[^>]*\\bid=\"([^\"]+)\"").Select(m => m.Groups[2].Value).ToList();
        foreach (var id in plotIds) Assert.Single(plots, p => p == id);
        Assert.Equal(plotIds.Order(), plots.Order());
        foreach (var section in new[] { "Invariance to ReLU rescaling", "Per-layer traces", "Interpolations", "Cost: the estimate against the work done" })
            Assert.Contains(section, load.Dom);
        Assert.Matches("<table id=\"layers-model1-hessian-trace-layers\">", load.Dom);

        using var screenshot = ImageChecks.Decode(load.Screenshot);
        Assert.Equal((WindowWidth, WindowHeight), (screenshot.Width, screenshot.Height));
        var pixels = screenshot.Pixels;
        var differing = pixels.Count(p => p.WithAlpha(255) != new SKColor(255, 255, 255)) / (double)pixels.Length;
        Assert.True(differing > 0.05, $"only {differing:P1} of the screenshot differs from the white background");
        var grey = pixels.Select(p => (p.Red + p.Green + p.Blue) / 3.0).ToArray();
        var mean = grey.Average();
        var variance = grey.Sum(g => (g - mean) * (g - mean)) / grey.Length;
        Assert.True(variance > 200, $"the screenshot's grey-level variance is {variance:F1}; a blank page has 0");
        // The first plots (spectrum and density curves) lie within the window: their colours are drawn.
        Assert.True(ImageChecks.ColouredPixels(screenshot) > 10_000, $"only {ImageChecks.ColouredPixels(screenshot)} coloured pixels: the plots were not drawn");
        // The title's text renders: dark pixels in its band on the left.
        Assert.True(ImageChecks.DarkPixels(screenshot, new SKRectI(0, 20, WindowWidth / 2, 70)) > 300, "the title's text was not drawn");
    }

    [Theory]
    // Lower is flatter: model 0 (1.0) beats model 1 (3.0).
    [InlineData(FlatterWhen.Lower, 1.0, 0.1, 3.0, 0.1, new[] { CellTone.Better, CellTone.Worse })]   // 14 standard errors apart
    [InlineData(FlatterWhen.Lower, 1.0, 1.0, 3.0, 1.0, new[] { CellTone.Neutral, CellTone.Neutral })] // 1.4 standard errors: within the noise
    [InlineData(FlatterWhen.Higher, 1.0, double.NaN, 3.0, double.NaN, new[] { CellTone.Worse, CellTone.Better })] // no standard error: the verdict says so, the colours still show it
    [InlineData(FlatterWhen.Lower, 2.0, 0.1, 2.0, 0.1, new[] { CellTone.Neutral, CellTone.Neutral })] // a tie
    [InlineData(FlatterWhen.NotJudged, 1.0, 0.1, 3.0, 0.1, new[] { CellTone.None, CellTone.None })]   // a loss: never coloured
    [InlineData(FlatterWhen.Lower, 1.0, 0.1, double.NaN, 0.1, new[] { CellTone.None, CellTone.None })] // one finite value: nothing to compare
    public void SummaryCellsAreColouredByTheVerdict(FlatterWhen flatter, double a, double seA, double b, double seB, CellTone[] expected)
    {
        FlatnessValue Value(double v, double se) => new("x", "x", v, double.IsNaN(se) ? null : se, flatter);
        var row = FlatnessComparison.Row("m", Value(a, seA), ReluRescaling.NotInvariant, [Value(a, seA), Value(b, seB)], ["A", "B"]);
        Assert.Equal(expected, new[] { FlatnessHtmlReport.Tone(row, 0), FlatnessHtmlReport.Tone(row, 1) });
    }
}
