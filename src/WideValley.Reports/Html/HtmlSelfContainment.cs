using System.Net;
using System.Text.RegularExpressions;

namespace WideValley.Reports.Html;

/// <summary>
/// One thing in a page that a browser would fetch from outside the page (or a script, which could fetch anything).
/// </summary>
/// <param name="Line">1-based line of the attribute, CSS rule or element.</param>
/// <param name="Column">1-based column on that line.</param>
/// <param name="Element">The element's name as written (e.g. <c>img</c>, <c>style</c>).</param>
/// <param name="Attribute">The attribute (e.g. <c>src</c>, <c>xlink:href</c>), or null for an element's content.</param>
/// <param name="Reference">The offending URL as the browser would read it, or a short excerpt for a script.</param>
/// <param name="Kind">What it is: e.g. <c>src</c>, <c>url()</c>, <c>@import</c>, <c>meta refresh</c>, <c>script</c>.</param>
public sealed record HtmlOutsideReference(int Line, int Column, string Element, string? Attribute, string Reference, string Kind)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"line {Line}, column {Column}: <{Element}{(Attribute is null ? "" : " " + Attribute)}> {Kind} \"{Reference}\"";
}

/// <summary>
/// A static check that an HTML page is self-contained: nothing in it makes a browser fetch anything from outside the
/// file. Allowed references are <c>data:</c> URLs and same-page <c>#fragment</c>s; anything else (http, https,
/// protocol-relative <c>//host</c>, relative file names, <c>file:</c>, <c>javascript:</c>) is reported with its line
/// and column. Looked at: every URL-bearing attribute (<c>src</c>, <c>href</c>, <c>xlink:href</c>, <c>srcset</c>,
/// <c>poster</c>, <c>data</c> of <c>object</c>, <c>action</c>, <c>background</c>, <c>ping</c>, ...) on any element,
/// including <c>link</c>, <c>base</c>, <c>iframe</c>, <c>embed</c> and SVG's <c>image</c>/<c>use</c>; CSS
/// <c>url(...)</c>, <c>image-set(...)</c> and <c>@import</c> in <c>&lt;style&gt;</c>, in <c>style</c> attributes and in
/// SVG presentation attributes such as <c>fill="url(...)"</c>; <c>&lt;meta http-equiv="refresh"&gt;</c> targets;
/// <c>iframe srcdoc</c> documents (checked recursively). Scripts and <c>on...</c> event-handler attributes are
/// reported too, whatever they contain: code can fetch at run time, which no static scan can rule out, and a
/// self-contained report has none.
/// </summary>
/// <remarks>
/// The scan is a tokenizer, not a full HTML parser: it follows tags, attributes (quoted and unquoted), comments,
/// CDATA sections and the raw-text elements (<c>script</c>, <c>style</c>, <c>title</c>, <c>textarea</c>) as the HTML
/// standard does, decodes character references in attribute values, and errs towards reporting.
/// </remarks>
public static class HtmlSelfContainment
{
    // Attributes whose value is one URL the browser may fetch or navigate to.
    private static readonly HashSet<string> SingleUrlAttributes = new(StringComparer.OrdinalIgnoreCase)
    {
        "src", "href", "poster", "action", "formaction", "background", "manifest", "codebase", "longdesc", "lowsrc",
        "dynsrc", "profile", "icon",
    };

    // Attributes that hold several URLs.
    private static readonly HashSet<string> SrcsetAttributes = new(StringComparer.OrdinalIgnoreCase) { "srcset", "imagesrcset" };
    private static readonly HashSet<string> SpaceSeparatedUrlAttributes = new(StringComparer.OrdinalIgnoreCase) { "ping", "archive" };

    private static readonly Regex CssUrl = new(@"url\(\s*(?:""(?<u>[^""]*)""|'(?<u>[^']*)'|(?<u>[^)\s]*))\s*\)",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    private static readonly Regex CssImport = new(@"@import\s+(?:""(?<u>[^""]*)""|'(?<u>[^']*)')",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    private static readonly Regex CssImageSetString = new(@"image-set\((?<args>[^)]*)\)",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    private static readonly Regex CssString = new(@"""(?<u>[^""]*)""|'(?<u>[^']*)'", RegexOptions.CultureInvariant);
    private static readonly Regex CssComment = new(@"/\*.*?\*/", RegexOptions.Singleline | RegexOptions.CultureInvariant);
    private static readonly Regex RefreshUrl = new(@"^\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?(?<u>.*)$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Singleline);

    /// <summary>
    /// Every reference in <paramref name="html"/> that would be fetched from outside the page, in document order;
    /// empty when the page is self-contained.
    /// </summary>
    public static IReadOnlyList<HtmlOutsideReference> FindOutsideReferences(string html)
    {
        ArgumentNullException.ThrowIfNull(html);
        var found = new List<HtmlOutsideReference>();
        Scan(html, new LineMap(html), 0, found);
        return found;
    }

    /// <summary>
    /// Throws when <paramref name="html"/> references anything outside itself; the message lists every offender with
    /// its line and column.
    /// </summary>
    /// <param name="html">The page.</param>
    /// <param name="pageName">How to name the page in the message (e.g. its file name).</param>
    /// <exception cref="InvalidOperationException">The page is not self-contained.</exception>
    public static void EnsureSelfContained(string html, string pageName = "the page")
    {
        var offenders = FindOutsideReferences(html);
        if (offenders.Count == 0) return;
        throw new InvalidOperationException(
            $"{pageName} is not self-contained: {offenders.Count} reference(s) to outside resources: " +
            string.Join("; ", offenders.Take(20)) + (offenders.Count > 20 ? "; ..." : ""));
    }

    /// <summary>
    /// True when a browser resolves <paramref name="url"/> without fetching anything from outside the page: a
    /// <c>data:</c> URL, a same-page <c>#fragment</c>, or empty (the page itself).
    /// </summary>
    public static bool IsInsidePage(string url)
    {
        // Browsers strip leading and trailing ASCII whitespace and ignore tabs and newlines inside URLs.
        var trimmed = new string(url.Where(c => c is not ('\t' or '\n' or '\r')).ToArray()).Trim(' ', '\f');
        return trimmed.Length == 0 || trimmed.StartsWith('#') || trimmed.StartsWith("data:", StringComparison.OrdinalIgnoreCase);
    }

    private static void Scan(string html, LineMap lines, int baseOffset, List<HtmlOutsideReference> found)
    {
        var i = 0;
        while (i < html.Length)
        {
            var lt = html.IndexOf('<', i);
            if (lt < 0) break;
            i = lt;
            if (Starts(html, i, "<!--")) { i = SkipPast(html, i + 4, "-->"); continue; }
            if (Starts(html, i, "<![CDATA[")) { i = SkipPast(html, i + 9, "]]>"); continue; }
            if (Starts(html, i, "<!") || Starts(html, i, "<?") || Starts(html, i, "</")) { i = SkipPast(html, i + 2, ">"); continue; }
            if (i + 1 >= html.Length || !char.IsAsciiLetter(html[i + 1])) { i++; continue; }

            var tag = ReadTag(html, i);
            i = tag.End;
            CheckTag(tag, lines, baseOffset, found);

            var name = tag.Name.ToLowerInvariant();
            if (tag.SelfClosing || name is not ("script" or "style" or "title" or "textarea")) continue;
            // Raw text: no tags inside, up to the matching end tag.
            var close = html.IndexOf("</" + name, i, StringComparison.OrdinalIgnoreCase);
            var contentEnd = close < 0 ? html.Length : close;
            var content = html[i..contentEnd];
            if (name == "style") CheckCss(content, tag.Name, null, i, decodedFromAttribute: false, lines, baseOffset, found);
            if (name == "script" && !tag.Attributes.Any(a => a.Name.Equals("src", StringComparison.OrdinalIgnoreCase)) && content.Trim().Length > 0)
                Add(found, lines, baseOffset, tag.Start, tag.Name, null, Excerpt(content), "script");
            i = close < 0 ? html.Length : SkipPast(html, close, ">");
        }
    }

    private static void CheckTag(Tag tag, LineMap lines, int baseOffset, List<HtmlOutsideReference> found)
    {
        var element = tag.Name.ToLowerInvariant();
        foreach (var attribute in tag.Attributes)
        {
            var value = WebUtility.HtmlDecode(attribute.Value);
            var local = attribute.Name.Contains(':') ? attribute.Name[(attribute.Name.LastIndexOf(':') + 1)..] : attribute.Name;

            if (SingleUrlAttributes.Contains(local) || (local.Equals("data", StringComparison.OrdinalIgnoreCase) && element == "object"))
            {
                // <script src> is named as such: the kind tells a reader the page runs outside code.
                if (!IsInsidePage(value))
                    Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, value.Trim(), element == "script" ? "script src" : local.ToLowerInvariant());
                else if (element == "script")
                    Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, Excerpt(value), "script");
            }
            else if (SrcsetAttributes.Contains(local))
            {
                foreach (var url in SrcsetUrls(value))
                    if (!IsInsidePage(url)) Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, url, local.ToLowerInvariant());
            }
            else if (SpaceSeparatedUrlAttributes.Contains(local))
            {
                foreach (var url in value.Split((char[])[' ', ',', '\t', '\n', '\r', '\f'], StringSplitOptions.RemoveEmptyEntries))
                    if (!IsInsidePage(url)) Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, url, local.ToLowerInvariant());
            }
            else if (local.StartsWith("on", StringComparison.OrdinalIgnoreCase) && local.Length > 2)
            {
                Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, Excerpt(value), "event-handler script");
            }
            else if (local.Equals("content", StringComparison.OrdinalIgnoreCase) && element == "meta" && IsRefresh(tag))
            {
                var url = RefreshUrl.Match(value).Groups["u"].Value.Trim().Trim('"', '\'');
                if (!IsInsidePage(url)) Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, url, "meta refresh");
            }
            else if (local.Equals("srcdoc", StringComparison.OrdinalIgnoreCase))
            {
                // A nested document: its own references count; their positions are reported at the attribute.
                var nested = new List<HtmlOutsideReference>();
                Scan(value, new LineMap(value), 0, nested);
                foreach (var n in nested)
                    Add(found, lines, baseOffset, attribute.Start, tag.Name, attribute.Name, n.Reference, $"srcdoc {n.Kind}");
            }

            // CSS inside any attribute: style="background: url(...)", fill="url(...)", clip-path, mask, filter.
            if (value.Contains("url(", StringComparison.OrdinalIgnoreCase) || value.Contains("image-set(", StringComparison.OrdinalIgnoreCase)
                || local.Equals("style", StringComparison.OrdinalIgnoreCase))
                CheckCss(value, tag.Name, attribute.Name, attribute.Start, decodedFromAttribute: true, lines, baseOffset, found);
        }
    }

    /// <summary>
    /// The URLs of a srcset, as the HTML standard splits it: a URL is a run of non-whitespace (so a data: URL keeps its
    /// commas), trailing commas end it, and its descriptors run to the next comma.
    /// </summary>
    private static IEnumerable<string> SrcsetUrls(string value)
    {
        var i = 0;
        while (i < value.Length)
        {
            while (i < value.Length && (char.IsWhiteSpace(value[i]) || value[i] == ',')) i++;
            if (i >= value.Length) yield break;
            var start = i;
            while (i < value.Length && !char.IsWhiteSpace(value[i])) i++;
            var url = value[start..i];
            if (url.EndsWith(','))
            {
                yield return url.TrimEnd(',');
                continue;
            }
            yield return url;
            var depth = 0;
            while (i < value.Length && !(value[i] == ',' && depth == 0))
            {
                if (value[i] == '(') depth++;
                else if (value[i] == ')' && depth > 0) depth--;
                i++;
            }
        }
    }

    private static bool IsRefresh(Tag tag) => tag.Attributes.Any(a =>
        a.Name.Equals("http-equiv", StringComparison.OrdinalIgnoreCase) &&
        WebUtility.HtmlDecode(a.Value).Trim().Equals("refresh", StringComparison.OrdinalIgnoreCase));

    private static void CheckCss(string css, string element, string? attribute, int start, bool decodedFromAttribute,
        LineMap lines, int baseOffset, List<HtmlOutsideReference> found)
    {
        // Comments are blanked (not removed) so positions inside a style element stay right.
        var text = CssComment.Replace(css, m => new string(' ', m.Length));
        // Inside an attribute, positions are reported at the attribute (the decoded value no longer lines up).
        int At(int index) => decodedFromAttribute ? start : start + index;
        foreach (Match m in CssUrl.Matches(text))
        {
            var url = m.Groups["u"].Value;
            if (!IsInsidePage(url)) Add(found, lines, baseOffset, At(m.Index), element, attribute, url.Trim(), "url()");
        }
        foreach (Match m in CssImport.Matches(text))
            Add(found, lines, baseOffset, At(m.Index), element, attribute, m.Groups["u"].Value.Trim(), "@import");
        foreach (Match m in CssImageSetString.Matches(text))
            foreach (Match s in CssString.Matches(m.Groups["args"].Value))
                if (!IsInsidePage(s.Groups["u"].Value))
                    Add(found, lines, baseOffset, At(m.Index), element, attribute, s.Groups["u"].Value.Trim(), "image-set()");
        // @import url(...) is already reported as url(); an @import of a data: URL or fragment is harmless.
    }

    private static void Add(List<HtmlOutsideReference> found, LineMap lines, int baseOffset, int offset, string element,
        string? attribute, string reference, string kind)
    {
        var (line, column) = lines.Locate(baseOffset + offset);
        found.Add(new HtmlOutsideReference(line, column, element, attribute, reference, kind));
    }

    private static string Excerpt(string text)
    {
        var flat = Regex.Replace(text.Trim(), @"\s+", " ");
        return flat.Length <= 60 ? flat : flat[..57] + "...";
    }

    private static bool Starts(string s, int at, string prefix) => string.CompareOrdinal(s, at, prefix, 0, prefix.Length) == 0;

    private static int SkipPast(string s, int from, string terminator)
    {
        var at = s.IndexOf(terminator, Math.Min(from, s.Length), StringComparison.Ordinal);
        return at < 0 ? s.Length : at + terminator.Length;
    }

    private sealed record TagAttribute(string Name, string Value, int Start);

    private sealed record Tag(string Name, int Start, int End, bool SelfClosing, IReadOnlyList<TagAttribute> Attributes);

    /// <summary>Reads a start tag at <paramref name="start"/> (which holds '&lt;' followed by a letter).</summary>
    private static Tag ReadTag(string s, int start)
    {
        var i = start + 1;
        var nameStart = i;
        while (i < s.Length && !char.IsWhiteSpace(s[i]) && s[i] is not ('/' or '>')) i++;
        var name = s[nameStart..i];
        var attributes = new List<TagAttribute>();
        var selfClosing = false;
        while (i < s.Length)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i >= s.Length) break;
            if (s[i] == '>') { i++; break; }
            if (s[i] == '/')
            {
                i++;
                if (i < s.Length && s[i] == '>') { selfClosing = true; i++; break; }
                continue;
            }
            var attributeStart = i;
            // The first character of a name may be '=' (the standard's quirk); after it, '=' ends the name.
            i++;
            while (i < s.Length && !char.IsWhiteSpace(s[i]) && s[i] is not ('/' or '>' or '=')) i++;
            var attributeName = s[attributeStart..i];
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            var value = "";
            if (i < s.Length && s[i] == '=')
            {
                i++;
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i < s.Length && s[i] is '"' or '\'')
                {
                    var quote = s[i];
                    var end = s.IndexOf(quote, i + 1);
                    if (end < 0) end = s.Length;
                    value = s[(i + 1)..end];
                    i = Math.Min(s.Length, end + 1);
                }
                else
                {
                    var valueStart = i;
                    while (i < s.Length && !char.IsWhiteSpace(s[i]) && s[i] != '>') i++;
                    value = s[valueStart..i];
                }
            }
            attributes.Add(new TagAttribute(attributeName, value, attributeStart));
        }
        return new Tag(name, start, i, selfClosing, attributes);
    }

    /// <summary>Turns character offsets into 1-based line and column numbers.</summary>
    private sealed class LineMap
    {
        private readonly List<int> _lineStarts = [0];

        public LineMap(string text)
        {
            for (var i = 0; i < text.Length; i++)
                if (text[i] == '\n') _lineStarts.Add(i + 1);
        }

        public (int Line, int Column) Locate(int offset)
        {
            var index = _lineStarts.BinarySearch(offset);
            if (index < 0) index = ~index - 1;
            return (index + 1, offset - _lineStarts[index] + 1);
        }
    }
}
