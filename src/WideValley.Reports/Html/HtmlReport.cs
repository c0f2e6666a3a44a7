using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace WideValley.Reports.Html;

/// <summary>What a report states about its own making, shown under the title.</summary>
/// <param name="Machine">The machine it ran on (CPU, threads, OS; one line).</param>
/// <param name="Command">The command that reproduces it.</param>
/// <param name="Date">When it was written (shown in UTC).</param>
public sealed record HtmlReportHeader(string Machine, string Command, DateTimeOffset Date);

/// <summary>How a <see cref="Figure"/> is put into the page.</summary>
public enum HtmlFigureFormat
{
    /// <summary>Inline SVG: sharp at any zoom, text stays text (searchable, copyable).</summary>
    Svg,
    /// <summary>A PNG in a <c>data:</c> URL: smaller for dense plots (heat maps with many cells).</summary>
    Png,
}

/// <summary>
/// A self-contained HTML report: one file that shows everything it holds with no network and no other file. Title,
/// a header (machine, command, date), a table of contents, and in order: section headings, paragraphs, command blocks,
/// tables with verdict colouring, and figures (inline SVG from the plot classes, or PNG as <c>data:</c> URLs). All CSS
/// is inline in one <c>&lt;style&gt;</c>; there is no script, no web font, no link to anywhere; a
/// Content-Security-Policy in the page forbids the browser any load but <c>data:</c> images, as a second guard.
/// Every text is HTML-encoded; an SVG that references anything outside itself is refused. <see cref="Save"/> checks
/// the finished page with <see cref="HtmlSelfContainment"/> and writes it atomically, so a report already on disk is
/// never half-replaced.
/// </summary>
/// <example><code>
/// var report = new HtmlReport("Flatness of two LeNets", new HtmlReportHeader(machine, command, DateTimeOffset.UtcNow));
/// report.AddSection("Summary");
/// report.AddTable(new HtmlTable("summary", ["measure", "Entropy-SGD", "Adam"])
///     .AddRow("lambda_max", HtmlCell.Number(12.3, tone: CellTone.Better), HtmlCell.Number(40.1, tone: CellTone.Worse)));
/// report.AddFigure("spectrum", SpectrumPlot.FromEigenvalues(eigenvalues), "Hessian spectrum");
/// report.Save(Path.Combine(outDir, "flatness.html"));
/// </code></example>
public sealed class HtmlReport
{
    private readonly List<Block> _blocks = [];
    private readonly HashSet<string> _ids = new(StringComparer.Ordinal) { "title", "report-header", "contents", "report" };
    private int _sections;

    /// <summary>A report with this title (shown as the page title and the heading).</summary>
    /// <exception cref="ArgumentException">A blank title.</exception>
    public HtmlReport(string title, HtmlReportHeader? header = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(title);
        if (header is not null)
        {
            ArgumentNullException.ThrowIfNull(header.Machine, "header.Machine");
            ArgumentNullException.ThrowIfNull(header.Command, "header.Command");
        }
        Title = title;
        Header = header;
    }

    /// <summary>The report's title.</summary>
    public string Title { get; }

    /// <summary>Machine, command and date, or null for none.</summary>
    public HtmlReportHeader? Header { get; }

    /// <summary>
    /// Runs in <see cref="Save"/> after half of the page's bytes are in the temporary file; tests throw from it to show
    /// that a failed write leaves the old report in place.
    /// </summary>
    internal Action? MidWrite { get; set; }

    /// <summary>Starts a section: a heading (level 2, or 3 for a subsection) listed in the table of contents.</summary>
    /// <returns>The heading's element id (<c>section-N</c>), for links.</returns>
    /// <exception cref="ArgumentException">A blank heading or a level other than 2 or 3.</exception>
    public string AddSection(string heading, int level = 2)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(heading);
        if (level is not (2 or 3))
            throw new ArgumentOutOfRangeException(nameof(level), level, "A section heading is level 2 (section) or 3 (subsection); level 1 is the title.");
        string id;
        do id = $"section-{++_sections}"; while (_ids.Contains(id));
        Register(id, nameof(heading));
        _blocks.Add(new Heading(level, heading, id));
        return id;
    }

    /// <summary>Adds a paragraph of plain text (HTML-encoded; line breaks are kept).</summary>
    public HtmlReport AddParagraph(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        _blocks.Add(new Paragraph(text));
        return this;
    }

    /// <summary>Adds a preformatted block, e.g. the command that reproduces a result.</summary>
    public HtmlReport AddCode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        _blocks.Add(new Code(text));
        return this;
    }

    /// <summary>Adds a table. Later rows added to <paramref name="table"/> still appear (it is written when the page is).</summary>
    /// <exception cref="ArgumentException">The table's id is already used in this report.</exception>
    public HtmlReport AddTable(HtmlTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        Register(table.Id, nameof(table));
        _blocks.Add(new Table(table));
        return this;
    }

    /// <summary>
    /// Draws <paramref name="figure"/> now and adds it, as inline SVG (the root <c>&lt;svg&gt;</c> gets the id
    /// <paramref name="id"/> and every id inside is prefixed with it) or as a PNG <c>&lt;img&gt;</c> with that id.
    /// </summary>
    /// <exception cref="ArgumentException">An invalid or repeated id.</exception>
    /// <exception cref="InvalidOperationException">The plotting font is missing (see <see cref="TryAddFigure"/>).</exception>
    public HtmlReport AddFigure(string id, Figure figure, string caption, HtmlFigureFormat format = HtmlFigureFormat.Svg)
    {
        ArgumentNullException.ThrowIfNull(figure);
        return format == HtmlFigureFormat.Png ? AddPng(id, figure.ToPng(), caption) : AddSvg(id, figure.ToSvg(), caption);
    }

    /// <summary>
    /// <see cref="AddFigure"/> when the plotting font can be drawn; otherwise adds nothing and returns false with the
    /// reason (the font, and how to install it), so a report can keep its tables and say why a picture is missing.
    /// </summary>
    public bool TryAddFigure(string id, Figure figure, string caption, [NotNullWhen(false)] out string? skippedBecause,
        HtmlFigureFormat format = HtmlFigureFormat.Svg)
    {
        ArgumentNullException.ThrowIfNull(figure);
        CheckNewFigureId(id);
        if (!PlotFonts.TryEnsureAvailable(out skippedBecause)) return false;
        AddFigure(id, figure, caption, format);
        return true;
    }

    /// <summary>
    /// Adds an SVG document inline. Refused (ArgumentException naming the value) when it references anything outside
    /// itself: a URL other than <c>data:</c> or a fragment it defines, a script, an event handler or a
    /// <c>foreignObject</c>.
    /// </summary>
    public HtmlReport AddSvg(string id, string svg, string caption)
    {
        CheckNewFigureId(id);
        ArgumentNullException.ThrowIfNull(caption);
        var (markup, innerIds) = SvgInliner.Inline(svg, id, caption);
        foreach (var inner in innerIds)
            if (_ids.Contains(inner))
                throw new ArgumentException($"Figure \"{id}\": its inner id \"{inner}\" is already used in this report; choose another figure id.", nameof(id));
        RegisterFigure(id);
        foreach (var inner in innerIds) _ids.Add(inner);
        _blocks.Add(new FigureBlock(id, markup, caption));
        return this;
    }

    /// <summary>Adds a PNG image as a <c>data:</c> URL in an <c>&lt;img&gt;</c> with the given id.</summary>
    /// <exception cref="ArgumentException">The bytes are not a PNG, or an invalid or repeated id.</exception>
    public HtmlReport AddPng(string id, byte[] png, string caption)
    {
        CheckNewFigureId(id);
        ArgumentNullException.ThrowIfNull(png);
        ArgumentNullException.ThrowIfNull(caption);
        ReadOnlySpan<byte> signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
        if (png.Length < 24 || !png.AsSpan(0, 8).SequenceEqual(signature) || Encoding.ASCII.GetString(png, 12, 4) != "IHDR")
            throw new ArgumentException($"Figure \"{id}\": the {png.Length} bytes given are not a PNG image (no PNG signature and IHDR chunk).", nameof(png));
        var width = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16));
        var height = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20));
        var markup = string.Create(CultureInfo.InvariantCulture,
            $"<img id=\"{id}\" class=\"plot\" width=\"{width}\" height=\"{height}\" alt=\"{Encode(caption)}\" src=\"data:image/png;base64,{Convert.ToBase64String(png)}\">");
        RegisterFigure(id);
        _blocks.Add(new FigureBlock(id, markup, caption));
        return this;
    }

    /// <summary>The complete page.</summary>
    public string ToHtml()
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        // The browser's own guard: nothing but data: images may load, whatever the page holds.
        html.Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n");
        html.Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        html.Append("<meta name=\"generator\" content=\"WideValley\">\n");
        html.Append("<title>").Append(Encode(Title)).Append("</title>\n<style>").Append(Stylesheet).Append("</style>\n</head>\n<body>\n");
        html.Append("<header id=\"report-header\">\n<h1 id=\"title\">").Append(Encode(Title)).Append("</h1>\n");
        if (Header is { } header)
        {
            html.Append("<dl class=\"meta\">\n");
            html.Append("<dt>Date</dt><dd>").Append(Encode(header.Date.ToUniversalTime().ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture))).Append("</dd>\n");
            html.Append("<dt>Machine</dt><dd>").Append(Encode(header.Machine)).Append("</dd>\n");
            html.Append("<dt>Command</dt><dd><pre><code>").Append(Encode(header.Command)).Append("</code></pre></dd>\n");
            html.Append("</dl>\n");
        }
        html.Append("</header>\n");
        AppendContents(html);
        html.Append("<main id=\"report\">\n");
        foreach (var block in _blocks) block.Append(html);
        html.Append("</main>\n</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>
    /// Writes the page to <paramref name="path"/> atomically (a temporary file in the same folder, flushed, then
    /// renamed over the target; missing folders are created). If anything fails, the file that was there is untouched.
    /// </summary>
    /// <exception cref="InvalidOperationException">The page would reference something outside itself (a bug: the builder refuses such input).</exception>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (Directory.Exists(path))
            throw new ArgumentException($"Cannot write the report to \"{path}\": it is a folder.", nameof(path));
        var html = ToHtml();
        HtmlSelfContainment.EnsureSelfContained(html, $"The report \"{Title}\"");
        var bytes = new UTF8Encoding(false).GetBytes(html);
        AtomicFile.Write(path, stream =>
        {
            var half = bytes.Length / 2;
            stream.Write(bytes, 0, half);
            MidWrite?.Invoke();
            stream.Write(bytes, half, bytes.Length - half);
        });
    }

    /// <summary>HTML-encodes text for element content and quoted attribute values.</summary>
    public static string Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var encoded = new StringBuilder(text.Length + 16);
        foreach (var c in text)
            encoded.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                // NUL is not allowed in HTML text; the browser would show U+FFFD anyway.
                '\0' => "\uFFFD",
                _ => c.ToString(),
            });
        return encoded.ToString();
    }

    private void CheckNewId(string id, string parameter)
    {
        HtmlIds.Check(id, parameter);
        if (_ids.Contains(id)) throw new ArgumentException($"The id \"{id}\" is already used in this report.", parameter);
    }

    // A figure takes two ids: the plot's own and that of its <figure> wrapper (id + "-figure").
    private void CheckNewFigureId(string id)
    {
        CheckNewId(id, nameof(id));
        CheckNewId(FigureBlock.WrapperId(id), nameof(id));
    }

    private void RegisterFigure(string id)
    {
        CheckNewFigureId(id);
        _ids.Add(id);
        _ids.Add(FigureBlock.WrapperId(id));
    }

    private void Register(string id, string parameter)
    {
        CheckNewId(id, parameter);
        _ids.Add(id);
    }

    private void AppendContents(StringBuilder html)
    {
        var headings = _blocks.OfType<Heading>().ToList();
        if (headings.Count == 0) return;
        html.Append("<nav id=\"contents\">\n<h2>Contents</h2>\n<ol>\n");
        var open = false;
        foreach (var heading in headings)
        {
            if (heading.Level == 3 && !open) { html.Append("<ol>\n"); open = true; }
            else if (heading.Level == 2 && open) { html.Append("</ol>\n"); open = false; }
            html.Append("<li><a href=\"#").Append(heading.Id).Append("\">").Append(Encode(heading.Text)).Append("</a></li>\n");
        }
        if (open) html.Append("</ol>\n");
        html.Append("</ol>\n</nav>\n");
    }

    private const string Stylesheet = """

        :root { color-scheme: light; }
        body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 15px; line-height: 1.45;
               color: #1a1a1a; background: #ffffff; margin: 0 auto; padding: 24px 32px 48px; max-width: 1100px; }
        h1 { font-size: 28px; margin: 0 0 12px; }
        h2 { font-size: 21px; margin: 32px 0 10px; border-bottom: 1px solid #d0d0d0; padding-bottom: 4px; }
        h3 { font-size: 17px; margin: 24px 0 8px; }
        dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0 0 16px; color: #333333; }
        dl.meta dt { font-weight: bold; }
        dl.meta dd { margin: 0; }
        pre { background: #f4f4f4; border: 1px solid #e0e0e0; padding: 8px 10px; margin: 8px 0; overflow-x: auto;
              white-space: pre-wrap; word-break: break-all; font-family: "DejaVu Sans Mono", monospace; font-size: 13px; }
        dl.meta pre { margin: 0; }
        nav#contents { background: #f8f8f8; border: 1px solid #e4e4e4; padding: 4px 20px 8px; margin: 16px 0 24px; }
        nav#contents h2 { border: none; margin: 8px 0 4px; font-size: 17px; }
        nav#contents ol { margin: 0; padding-left: 22px; }
        p { margin: 8px 0; white-space: pre-line; }
        table { border-collapse: collapse; margin: 12px 0 20px; }
        caption { caption-side: top; text-align: left; font-weight: bold; padding: 0 0 6px; }
        th, td { border: 1px solid #c8c8c8; padding: 4px 10px; text-align: left; vertical-align: top; }
        thead th { background: #ececec; }
        tbody th { background: #f6f6f6; font-weight: normal; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        .better { background: #d8f0d8; color: #0f4d0f; }
        .worse { background: #f7d6d6; color: #7a1010; }
        .neutral { background: #ebebeb; color: #3a3a3a; }
        figure { margin: 16px 0 28px; }
        figcaption { font-size: 14px; color: #333333; margin-top: 6px; }
        .plot { display: block; max-width: 100%; height: auto; border: 1px solid #e4e4e4; }

        """;

    private abstract record Block
    {
        public abstract void Append(StringBuilder html);
    }

    private sealed record Heading(int Level, string Text, string Id) : Block
    {
        public override void Append(StringBuilder html) =>
            html.Append("<h").Append(Level).Append(" id=\"").Append(Id).Append("\">").Append(Encode(Text)).Append("</h").Append(Level).Append(">\n");
    }

    private sealed record Paragraph(string Text) : Block
    {
        public override void Append(StringBuilder html) => html.Append("<p>").Append(Encode(Text)).Append("</p>\n");
    }

    private sealed record Code(string Text) : Block
    {
        public override void Append(StringBuilder html) => html.Append("<pre><code>").Append(Encode(Text)).Append("</code></pre>\n");
    }

    private sealed record FigureBlock(string Id, string Markup, string Caption) : Block
    {
        public static string WrapperId(string id) => id + "-figure";

        public override void Append(StringBuilder html)
        {
            html.Append("<figure id=\"").Append(WrapperId(Id)).Append("\">\n").Append(Markup).Append('\n');
            if (Caption.Length > 0) html.Append("<figcaption>").Append(Encode(Caption)).Append("</figcaption>\n");
            html.Append("</figure>\n");
        }
    }

    private sealed record Table(HtmlTable Source) : Block
    {
        public override void Append(StringBuilder html)
        {
            html.Append("<table id=\"").Append(Source.Id).Append("\">\n");
            if (Source.Caption is { } caption) html.Append("<caption>").Append(Encode(caption)).Append("</caption>\n");
            html.Append("<thead><tr>");
            foreach (var column in Source.Columns) html.Append("<th scope=\"col\">").Append(Encode(column)).Append("</th>");
            html.Append("</tr></thead>\n<tbody>\n");
            foreach (var row in Source.Rows)
            {
                html.Append("<tr>");
                for (var c = 0; c < row.Count; c++)
                {
                    var cell = row[c];
                    var heading = c == 0 && Source.FirstColumnIsRowHeading;
                    html.Append(heading ? "<th scope=\"row\"" : "<td");
                    var classes = Classes(cell);
                    if (classes.Length > 0) html.Append(" class=\"").Append(classes).Append('"');
                    html.Append('>').Append(Encode(cell.Text)).Append(heading ? "</th>" : "</td>");
                }
                html.Append("</tr>\n");
            }
            html.Append("</tbody>\n</table>\n");
        }

        private static string Classes(HtmlCell cell)
        {
            var tone = cell.Tone switch
            {
                CellTone.Better => "better",
                CellTone.Worse => "worse",
                CellTone.Neutral => "neutral",
                _ => "",
            };
            return cell.Numeric ? (tone.Length > 0 ? "num " + tone : "num") : tone;
        }
    }
}
