using WideValley.Reports.Html;

namespace WideValley.Tests.Reports;

/// <summary>
/// The static self-containment check: each way a page can pull something from outside is found (with where it is),
/// and the ways a page can hold everything itself (data: URLs, #fragments, inline CSS) pass.
/// </summary>
public class HtmlSelfContainmentTests
{
    private static string Page(string body, string head = "") =>
        $"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n";

    public static TheoryData<string, string, string, string> Offenders => new()
    {
        // body or head markup, element, expected kind, expected reference
        { "<img src=\"http://example.invalid/x.png\">", "img", "src", "http://example.invalid/x.png" },
        { "<img src='//cdn.example.invalid/x.png'>", "img", "src", "//cdn.example.invalid/x.png" },
        { "<img src=x.png alt=relative>", "img", "src", "x.png" },
        { "<img srcset=\"data:image/png;base64,AA 1x, https://example.invalid/2x.png 2x\">", "img", "srcset", "https://example.invalid/2x.png" },
        { "<a href=\"https://example.invalid/\">out</a>", "a", "href", "https://example.invalid/" },
        { "<svg><image xlink:href=\"http://example.invalid/i.png\"/></svg>", "image", "href", "http://example.invalid/i.png" },
        { "<svg><use href=\"sprites.svg#icon\"/></svg>", "use", "href", "sprites.svg#icon" },
        { "<svg><rect fill=\"url(http://example.invalid/p.svg#g)\"/></svg>", "rect", "url()", "http://example.invalid/p.svg#g" },
        { "<div style=\"background: url('https://example.invalid/bg.png')\">x</div>", "div", "url()", "https://example.invalid/bg.png" },
        { "<style>body { background: url(bg.png) }</style>", "style", "url()", "bg.png" },
        { "<style>@import \"https://example.invalid/a.css\";</style>", "style", "@import", "https://example.invalid/a.css" },
        { "<style>@import url(https://example.invalid/b.css);</style>", "style", "url()", "https://example.invalid/b.css" },
        { "<style>@font-face { font-family: X; src: url(\"https://example.invalid/x.woff2\") }</style>", "style", "url()", "https://example.invalid/x.woff2" },
        { "<style>div { background-image: image-set(\"a.png\" 1x) }</style>", "style", "image-set()", "a.png" },
        { "<link rel=\"stylesheet\" href=\"https://example.invalid/s.css\">", "link", "href", "https://example.invalid/s.css" },
        { "<link rel=icon href=favicon.ico>", "link", "href", "favicon.ico" },
        { "<script src=\"https://example.invalid/app.js\"></script>", "script", "script src", "https://example.invalid/app.js" },
        { "<script>fetch('x')</script>", "script", "script", "fetch('x')" },
        { "<body onload=\"fetch('x')\">", "body", "event-handler script", "fetch('x')" },
        { "<iframe src=\"https://example.invalid/\"></iframe>", "iframe", "src", "https://example.invalid/" },
        { "<iframe srcdoc=\"&lt;img src=&quot;http://example.invalid/y.png&quot;&gt;\"></iframe>", "iframe", "srcdoc src", "http://example.invalid/y.png" },
        { "<object data=\"movie.swf\"></object>", "object", "data", "movie.swf" },
        { "<embed src=\"https://example.invalid/e\">", "embed", "src", "https://example.invalid/e" },
        { "<video poster=\"https://example.invalid/p.jpg\"></video>", "video", "poster", "https://example.invalid/p.jpg" },
        { "<meta http-equiv=\"refresh\" content=\"0; url=https://example.invalid/\">", "meta", "meta refresh", "https://example.invalid/" },
        { "<base href=\"https://example.invalid/\">", "base", "href", "https://example.invalid/" },
        { "<form action=\"https://example.invalid/post\"></form>", "form", "action", "https://example.invalid/post" },
        { "<a href=\"javascript:alert(1)\">x</a>", "a", "href", "javascript:alert(1)" },
        { "<img src=\"file:///etc/passwd\">", "img", "src", "file:///etc/passwd" },
        // Character references are decoded as the browser decodes them.
        { "<img src=\"&#104;ttp://example.invalid/e.png\">", "img", "src", "http://example.invalid/e.png" },
    };

    [Theory]
    [MemberData(nameof(Offenders))]
    public void EachKindOfOutsideReferenceIsFoundWithItsElementAndValue(string markup, string element, string kind, string reference)
    {
        var offenders = HtmlSelfContainment.FindOutsideReferences(Page(markup));

        var offender = Assert.Single(offenders);
        Assert.Equal(element, offender.Element, ignoreCase: true);
        Assert.Equal(kind, offender.Kind);
        Assert.Equal(reference, offender.Reference);
        // Page() puts the markup on line 8 (after doctype, html, head, meta, the head line, head's end and body).
        Assert.Equal(8, offender.Line);
        Assert.Throws<InvalidOperationException>(() => HtmlSelfContainment.EnsureSelfContained(Page(markup)));
    }

    [Fact]
    public void ThePositionIsTheOffendingAttributesLineAndColumn()
    {
        var html = "<p>one</p>\n<p>two <img alt=\"a\"\n     src=\"http://example.invalid/x.png\"></p>";

        var offender = Assert.Single(HtmlSelfContainment.FindOutsideReferences(html));

        Assert.Equal((3, 6), (offender.Line, offender.Column));
        Assert.Contains("line 3, column 6", offender.ToString());
        var message = Assert.Throws<InvalidOperationException>(() => HtmlSelfContainment.EnsureSelfContained(html, "report.html")).Message;
        Assert.Contains("report.html is not self-contained", message);
        Assert.Contains("http://example.invalid/x.png", message);
    }

    [Fact]
    public void AUrlInsideAStyleElementIsPlacedOnItsOwnLine()
    {
        var html = "<style>\nbody { color: black }\nh1 { background: url(x.png) }\n</style>";

        var offender = Assert.Single(HtmlSelfContainment.FindOutsideReferences(html));

        Assert.Equal((3, 18), (offender.Line, offender.Column));
    }

    [Fact]
    public void EveryOffenderOfAPageIsListedInDocumentOrder()
    {
        var html = Page("<img src=\"a.png\"><style>p { background: url(b.png) }</style><a href=\"https://c.invalid/\">c</a>",
            head: "<link rel=stylesheet href=d.css>");

        var references = HtmlSelfContainment.FindOutsideReferences(html).Select(o => o.Reference).ToList();

        Assert.Equal(["d.css", "a.png", "b.png", "https://c.invalid/"], references);
    }

    [Fact]
    public void DataUrlsFragmentsAndInlineStylesAreInsideThePage()
    {
        var html = Page(
            """
            <h1 id="top">Title</h1>
            <a href="#top">up</a> <a href=" #top ">up again</a> <a href="">this page</a>
            <img src="data:image/png;base64,iVBORw0KGgo=" alt="a dot">
            <img srcset="data:image/png;base64,AA 1x, data:image/png;base64,BB 2x" alt="">
            <div style="color: red; background: url(data:image/png;base64,AA)">styled</div>
            <svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">
              <defs><clipPath id="c"><rect width="5" height="5"/></clipPath><linearGradient id="g"/></defs>
              <rect clip-path="url(#c)" fill="url('#g')" width="10" height="10"/>
              <use xlink:href="#c"/>
              <image href="data:image/png;base64,AA"/>
            </svg>
            <!-- a comment may mention <img src="http://example.invalid/commented-out.png"> -->
            <p>Text may say src="http://example.invalid/" or url(http://example.invalid/) without loading it.</p>
            <pre><code>widevalley flatness run/ --data https://example.invalid/not-a-link</code></pre>
            <meta http-equiv="refresh" content="30">
            """,
            head: "<style>body { font-family: \"DejaVu Sans\", sans-serif } /* url(http://example.invalid/in-a-comment) */</style>\n" +
                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:\">\n<title>src=\"x.png\"</title>");

        Assert.Empty(HtmlSelfContainment.FindOutsideReferences(html));
        HtmlSelfContainment.EnsureSelfContained(html);
    }

    [Theory]
    [InlineData("data:image/png;base64,AA", true)]
    [InlineData("  DATA:text/plain,hi", true)]
    [InlineData("#fragment", true)]
    [InlineData("", true)]
    [InlineData("d\nata:x", true)]
    [InlineData("http://example.invalid/", false)]
    [InlineData("//example.invalid/", false)]
    [InlineData("page.html#fragment", false)]
    [InlineData("about:blank", false)]
    public void OnlyDataUrlsFragmentsAndThePageItselfAreInside(string url, bool inside) =>
        Assert.Equal(inside, HtmlSelfContainment.IsInsidePage(url));
}
