using System.Text.RegularExpressions;
using System.Xml.Linq;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;
using WideValley.Reports;
using WideValley.Reports.Html;
using WideValley.Tests.Support;

namespace WideValley.Tests.Reports;

/// <summary>
/// A report with real data in every part: two quadratic-plus-quartic losses whose curvature at the minimum is known
/// (a flat one, a = 1, and a sharp one, a = 8), their 1-D slices, the eigenvalues of a Wigner matrix (semicircle),
/// a double-well surface, and a summary table of closed-form measures with verdict colours.
/// </summary>
internal static class HtmlReportSamples
{
    public const string Title = "Flatness of two quadratics";
    public const double FlatCurvature = 1, SharpCurvature = 8;
    public static readonly string[] SvgFigureIds = ["slices", "spectrum", "surface"];
    public const string PngFigureId = "histogram";
    public const string TableId = "summary";

    /// <summary>L(t) = a t^2 / 2 + t^4 / 10 along one direction.</summary>
    public static double Slice(double a, double t) => 0.5 * a * t * t + 0.1 * Math.Pow(t, 4);

    /// <summary>Eigenvalues of a symmetric matrix with N(0, 1/n) entries: Wigner's semicircle on [-2, 2].</summary>
    public static double[] WignerEigenvalues(int n = 160, int seed = 20)
    {
        var a = Matrix<double>.Build.Random(n, n, new Normal(0, 1, new Random(seed)));
        var symmetric = (a + a.Transpose()) / Math.Sqrt(2 * n);
        return symmetric.Evd(Symmetricity.Symmetric).EigenValues.Select(z => z.Real).ToArray();
    }

    /// <summary>The double well L(a, b) = (a^2 - 1)^2 + b^2 / 2 on a 31 x 31 grid over [-1.5, 1.5]^2.</summary>
    public static LossSurface DoubleWell()
    {
        var axis = Enumerable.Range(0, 31).Select(i => -1.5 + 0.1 * i).ToArray();
        var values = new double[axis.Length, axis.Length];
        for (var i = 0; i < axis.Length; i++)
            for (var j = 0; j < axis.Length; j++)
                values[i, j] = Math.Pow(axis[i] * axis[i] - 1, 2) + 0.5 * axis[j] * axis[j];
        return new LossSurface(axis, axis, values);
    }

    public static HtmlTable SummaryTable()
    {
        // lambda_max = a; trace over a 10-dimensional isotropic quadratic = 10 a; the loss rise at |t| = 0.5.
        var table = new HtmlTable(TableId, ["measure", "flat (a = 1)", "sharp (a = 8)", "verdict"], "Closed-form measures at the minimum")
        {
            FirstColumnIsRowHeading = true,
        };
        table.AddRow("λ_max", HtmlCell.Number(FlatCurvature, tone: CellTone.Better), HtmlCell.Number(SharpCurvature, tone: CellTone.Worse), "flat is flatter");
        table.AddRow("trace (10 dims)", HtmlCell.Number(10 * FlatCurvature, tone: CellTone.Better), HtmlCell.Number(10 * SharpCurvature, tone: CellTone.Worse), "flat is flatter");
        table.AddRow("L(0.5) − L(0)", HtmlCell.Number(Slice(FlatCurvature, 0.5), "F5", CellTone.Better), HtmlCell.Number(Slice(SharpCurvature, 0.5), "F5", CellTone.Worse), "flat is flatter");
        table.AddRow("quartic term", HtmlCell.Number(0.1, tone: CellTone.Neutral), HtmlCell.Number(0.1, tone: CellTone.Neutral), "same");
        return table;
    }

    /// <summary>The whole report: header, three sections, the table, three inline SVG plots and one PNG plot.</summary>
    public static HtmlReport Build(string title = Title)
    {
        var ts = Enumerable.Range(0, 41).Select(i => -1 + 0.05 * i).ToArray();
        var report = new HtmlReport(title, new HtmlReportHeader("test machine: 2 cores, Debian 12", "widevalley flatness flat.pt sharp.pt --data fashion-mnist",
            new DateTimeOffset(2026, 12, 5, 10, 0, 0, TimeSpan.Zero)));
        report.AddSection("Summary");
        report.AddParagraph("Two quadratic-plus-quartic losses with known curvature at their minimum.");
        report.AddTable(SummaryTable());
        report.AddSection("Slices and spectrum");
        report.AddFigure(SvgFigureIds[0], LinePlot.Create(
            [
                new LineSeries("flat (a = 1)", ts, ts.Select(t => Slice(FlatCurvature, t)).ToArray()),
                new LineSeries("sharp (a = 8)", ts, ts.Select(t => Slice(SharpCurvature, t)).ToArray()),
            ], "t", "loss", new LinePlotOptions { Title = "1-D slices" }), "Loss along one direction through each minimum.");
        var eigenvalues = WignerEigenvalues();
        report.AddFigure(SvgFigureIds[1], SpectrumPlot.FromEigenvalues(eigenvalues, new SpectrumPlotOptions { Title = "Wigner spectrum" }),
            "Eigenvalues of a 160 x 160 Wigner matrix (semicircle on [-2, 2]).");
        report.AddFigure(PngFigureId, HistogramPlot.Create(eigenvalues, new HistogramPlotOptions { Title = "Histogram (PNG)", Bins = 30 }),
            "The same eigenvalues as a PNG histogram.", HtmlFigureFormat.Png);
        report.AddSection("Surface", level: 3);
        report.AddFigure(SvgFigureIds[2], SurfacePlot.Create(DoubleWell(), new SurfacePlotOptions { Title = "Double well" }),
            "L(a, b) = (a² − 1)² + b²/2.");
        report.AddCode("widevalley flatness flat.pt sharp.pt --data fashion-mnist --budget quick");
        return report;
    }
}

/// <summary>The HTML report writer without a browser: escaping, ids, refusals, structure and the atomic write.</summary>
public class HtmlReportTests
{
    private const string Hostile = "<script>alert(\"x\")</script> & 'q' <img src=http://example.invalid/x.png>";

    private static string MinimalSvg(string body, string extraNamespaces = "") =>
        $"<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" {extraNamespaces} width=\"100\" height=\"50\">{body}</svg>";

    private const string XLinkNs = "xmlns:xlink=\"http://www.w3.org/1999/xlink\"";

    /// <summary>The SVG elements of a page, each parsed as XML (the writer emits them as XML).</summary>
    private static IReadOnlyList<XElement> InlineSvgs(string html) =>
        Regex.Matches(html, @"<svg\b.*?</svg>", RegexOptions.Singleline).Select(m => XElement.Parse(m.Value)).ToList();

    [Fact]
    public void EveryTextIsHtmlEncodedSoNoMarkupCanBeInjected()
    {
        var report = new HtmlReport(Hostile, new HtmlReportHeader(Hostile, Hostile, DateTimeOffset.UnixEpoch));
        report.AddSection(Hostile);
        report.AddParagraph(Hostile);
        report.AddCode(Hostile);
        report.AddTable(new HtmlTable("t", [Hostile, "b"], Hostile).AddRow(Hostile, HtmlCell.Number(Hostile)));
        report.AddSvg("f", MinimalSvg("<text x=\"1\" y=\"20\">a &lt; b</text>"), Hostile);

        var html = report.ToHtml();

        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        const string encoded = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; &lt;img src=http://example.invalid/x.png&gt;";
        // Title (twice: <title> and <h1>), machine, command, heading, its contents entry, paragraph, code, caption,
        // column heading, two cells and the figure caption. The SVG's label is escaped by the XML writer instead.
        Assert.Equal(13, Regex.Matches(html, Regex.Escape(encoded)).Count);
        Assert.Equal(Hostile, (string?)InlineSvgs(html).Single().Attribute("aria-label"));
        Assert.Empty(HtmlSelfContainment.FindOutsideReferences(html));
        Assert.Equal("a&amp;b&lt;c&gt;d&quot;e&#39;f\uFFFD", HtmlReport.Encode("a&b<c>d\"e'f\0"));
    }

    [Fact]
    public void TwoInlinedPlotsNeverShareAnIdAndEachReferenceStaysInsideItsOwnPlot()
    {
        TestMachine.RequireDejaVu();
        var figure = LinePlot.Create([new LineSeries("a", [0.0, 1, 2], [1.0, 0, 1])], "x", "y", new LinePlotOptions { Title = "t" });
        var svg = figure.ToSvg();
        Assert.Contains("clip-path=\"url(#", svg);
        var report = new HtmlReport("ids");
        // The very same SVG twice: every id inside collides unless the writer renames it.
        report.AddSvg("first", svg, "one").AddSvg("second", svg, "two");
        var handmade = MinimalSvg("<defs><clipPath id=\"c\"><rect width=\"5\" height=\"5\"/></clipPath><linearGradient id=\"g\"/></defs>" +
            "<rect clip-path=\"url(#c)\" fill=\"url('#g')\" width=\"10\" height=\"10\"/><use xlink:href=\"#c\"/>", XLinkNs);
        report.AddSvg("third", handmade, "three").AddSvg("fourth", handmade, "four");

        var html = report.ToHtml();

        var ids = Regex.Matches(html, "\\bid=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var svgs = InlineSvgs(html);
        Assert.Equal<string?>(["first", "second", "third", "fourth"], svgs.Select(s => (string?)s.Attribute("id")));
        foreach (var element in svgs)
        {
            var own = element.Descendants().Select(e => (string?)e.Attribute("id")).OfType<string>().ToHashSet();
            Assert.All(own, id => Assert.StartsWith((string)element.Attribute("id")! + "--", id));
            var attributes = element.DescendantsAndSelf().SelectMany(e => e.Attributes()).ToList();
            var references = attributes.SelectMany(a => Regex.Matches(a.Value, @"url\(['""]?#([^)'""]+)").Select(m => m.Groups[1].Value))
                .Concat(attributes.Where(a => a.Name.LocalName == "href" && a.Value.StartsWith('#')).Select(a => a.Value[1..]))
                .ToList();
            Assert.NotEmpty(references);
            Assert.All(references, r => Assert.Contains(r, own));
        }
        Assert.Contains("clip-path=\"url(#third--c)\"", html);
        Assert.Contains("fill=\"url(#fourth--g)\"", html);
        Assert.Contains("xlink:href=\"#fourth--c\"", html);
    }

    public static TheoryData<string, string, string> RefusedSvgs => new()
    {
        // SVG body, extra namespaces, text the message must contain
        { "<image href=\"http://example.invalid/x.png\"/>", "", "http://example.invalid/x.png" },
        { "<image xlink:href=\"pictures/x.png\"/>", XLinkNs, "pictures/x.png" },
        { "<rect fill=\"url(https://example.invalid/p.svg#g)\"/>", "", "https://example.invalid/p.svg#g" },
        { "<rect style=\"fill: url('//example.invalid/g')\"/>", "", "//example.invalid/g" },
        { "<style>rect { fill: url(other.svg#g) }</style>", "", "other.svg#g" },
        { "<style>@import url(data:text/css,x);</style>", "", "imports a stylesheet" },
        { "<rect clip-path=\"url(#nowhere)\"/>", "", "#nowhere" },
        { "<script>fetch('x')</script>", "", "<script>" },
        { "<rect onclick=\"fetch('x')\"/>", "", "onclick" },
        { "<foreignObject><div xmlns=\"http://www.w3.org/1999/xhtml\">x</div></foreignObject>", "", "<foreignObject>" },
    };

    [Theory]
    [MemberData(nameof(RefusedSvgs))]
    public void AnSvgThatReachesOutsideItselfIsRefusedNamingTheValue(string body, string namespaces, string named)
    {
        var report = new HtmlReport("refusals");

        var error = Assert.Throws<ArgumentException>(() => report.AddSvg("fig", MinimalSvg(body, namespaces), "caption"));

        Assert.Contains(named, error.Message);
        Assert.Contains("\"fig\"", error.Message);
        Assert.DoesNotContain("id=\"fig\"", report.ToHtml());
    }

    [Fact]
    public void DataUrlsAndOwnFragmentsInAnSvgAreAccepted()
    {
        var report = new HtmlReport("accepted");
        report.AddSvg("fig", MinimalSvg("<defs><linearGradient id=\"g\"/></defs><image href=\"data:image/png;base64,AA\"/><rect fill=\"url(#g)\"/>"), "c");

        Assert.Contains("fill=\"url(#fig--g)\"", report.ToHtml());
    }

    [Fact]
    public void MalformedInputIsRefusedWithAMessageSayingWhat()
    {
        var report = new HtmlReport("bad input");

        Assert.Contains("not well-formed XML", Assert.Throws<ArgumentException>(() => report.AddSvg("a", "<svg", "c")).Message);
        Assert.Contains("<svg> root", Assert.Throws<ArgumentException>(() => report.AddSvg("a", "<html/>", "c")).Message);
        Assert.Contains("not a PNG", Assert.Throws<ArgumentException>(() => report.AddPng("a", [1, 2, 3], "c")).Message);
        Assert.Contains("\"1st\" is not a valid element id", Assert.Throws<ArgumentException>(() => report.AddSvg("1st", MinimalSvg(""), "c")).Message);
        Assert.Contains("\"a b\" is not a valid element id", Assert.Throws<ArgumentException>(() => new HtmlTable("a b", ["x"])).Message);
        report.AddSvg("taken", MinimalSvg(""), "c");
        Assert.Contains("\"taken\" is already used", Assert.Throws<ArgumentException>(() => report.AddTable(new HtmlTable("taken", ["x"]))).Message);
        Assert.Contains("\"taken-figure\" is already used", Assert.Throws<ArgumentException>(() => report.AddTable(new HtmlTable("taken-figure", ["x"]))).Message);
        // A figure's <figure> wrapper takes the id "<id>-figure", and that is checked too.
        report.AddTable(new HtmlTable("plot-figure", ["x"]));
        Assert.Contains("\"plot-figure\" is already used", Assert.Throws<ArgumentException>(() => report.AddSvg("plot", MinimalSvg(""), "c")).Message);
        Assert.Contains("\"title\" is already used", Assert.Throws<ArgumentException>(() => report.AddSvg("title", MinimalSvg(""), "c")).Message);
        var table = new HtmlTable("t", ["a", "b"]);
        Assert.Contains("Table \"t\" has 2 columns, but row 0 has 3 cells", Assert.Throws<ArgumentException>(() => table.AddRow("1", "2", "3")).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => report.AddSection("deep", level: 4));
        Assert.Throws<ArgumentException>(() => new HtmlReport("  "));
    }

    [Fact]
    public void ThePageHasItsTableOfContentsTableCellsAndFiguresInOrder()
    {
        TestMachine.RequireDejaVu();
        var html = HtmlReportSamples.Build().ToHtml();

        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.Contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">", html);
        Assert.Single(Regex.Matches(html, "<style>"));
        Assert.Contains("<dt>Date</dt><dd>2026-12-05 10:00 UTC</dd>", html);
        Assert.Contains("<dt>Command</dt><dd><pre><code>widevalley flatness flat.pt sharp.pt --data fashion-mnist</code></pre></dd>", html);
        Assert.Contains("<li><a href=\"#section-1\">Summary</a></li>\n<li><a href=\"#section-2\">Slices and spectrum</a></li>\n<ol>\n<li><a href=\"#section-3\">Surface</a></li>\n</ol>", html);
        Assert.Contains("<h3 id=\"section-3\">Surface</h3>", html);
        Assert.Contains("<caption>Closed-form measures at the minimum</caption>", html);
        Assert.Contains("<thead><tr><th scope=\"col\">measure</th><th scope=\"col\">flat (a = 1)</th>", html);
        Assert.Contains("<tr><th scope=\"row\">λ_max</th><td class=\"num better\">1</td><td class=\"num worse\">8</td><td>flat is flatter</td></tr>", html);
        Assert.Contains("<td class=\"num better\">0.13125</td><td class=\"num worse\">1.00625</td>", html);
        Assert.Contains("<td class=\"num neutral\">0.1</td>", html);
        Assert.Contains("<img id=\"histogram\" class=\"plot\" width=\"900\" height=\"560\" alt=\"The same eigenvalues as a PNG histogram.\" src=\"data:image/png;base64,iVBORw0KGgo", html);
        Assert.Equal<string?>(HtmlReportSamples.SvgFigureIds, InlineSvgs(html).Select(s => (string?)s.Attribute("id")));
        var positions = new[] { "id=\"summary\"", "id=\"slices\"", "id=\"spectrum\"", "id=\"histogram\"", "id=\"surface\"", "<pre><code>widevalley flatness flat.pt sharp.pt --data fashion-mnist --budget quick" }
            .Select(s => html.IndexOf(s, StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain(-1, positions);
        Assert.Equal(positions.Order(), positions);
        // Each plot scales with the page: a viewBox of its own pixel size, which CSS then fits to the page's width.
        Assert.All(InlineSvgs(html), svg =>
            Assert.Equal($"0 0 {(string?)svg.Attribute("width")} {(string?)svg.Attribute("height")}", (string?)svg.Attribute("viewBox")));
        Assert.Contains(".plot { display: block; max-width: 100%; height: auto;", html);
        Assert.Empty(HtmlSelfContainment.FindOutsideReferences(html));
    }

    [Fact]
    public void SaveWritesThePageAndAFailedWriteLeavesTheOldReportWhole()
    {
        using var folder = new TempDir();
        var path = folder.File("out/report.html");
        var old = new HtmlReport("old report");
        old.AddParagraph(new string('x', 10_000));
        old.Save(path);
        var oldBytes = File.ReadAllBytes(path);
        Assert.Equal(old.ToHtml(), File.ReadAllText(path));

        var replacement = new HtmlReport("new report");
        replacement.AddParagraph(new string('y', 10_000));
        replacement.MidWrite = () => throw new IOException("disk full (simulated) after half the page");

        Assert.Equal("disk full (simulated) after half the page", Assert.Throws<IOException>(() => replacement.Save(path)).Message);
        Assert.Equal(oldBytes, File.ReadAllBytes(path));
        Assert.Empty(folder.Leftovers());

        replacement.MidWrite = null;
        replacement.Save(path);
        Assert.Equal(replacement.ToHtml(), File.ReadAllText(path));
        Assert.Contains("it is a folder", Assert.Throws<ArgumentException>(() => replacement.Save(folder.Path)).Message);
    }

    [Fact]
    public void WithoutThePlottingFontAFigureIsSkippedWithTheReasonAndTheRestStays()
    {
        var report = new HtmlReport("no font");
        report.AddParagraph("tables still come");
        var figure = LinePlot.Create([new LineSeries("a", [0.0, 1], [1.0, 0])], "x", "y");
        using (new FontlessMachine())
        {
            Assert.False(report.TryAddFigure("plot", figure, "caption", out var reason));
            Assert.Contains(PlotFonts.AptPackage, reason);
        }
        var html = report.ToHtml();
        Assert.Contains("tables still come", html);
        Assert.DoesNotContain("id=\"plot\"", html);
    }
}
