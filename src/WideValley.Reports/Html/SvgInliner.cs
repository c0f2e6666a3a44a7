using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;

namespace WideValley.Reports.Html;

/// <summary>
/// Turns a standalone SVG document into an element that can sit inside an HTML page next to other SVGs: the XML
/// prolog is dropped, the root gets the figure's id, a viewBox (so it scales with the page) and an accessible label,
/// and every id inside is prefixed with the figure's id, together with every reference to it (<c>url(#id)</c>,
/// <c>href="#id"</c>), so two plots' clip paths and gradients can never collide. Anything that would reach outside the
/// SVG is refused: a URL that is not a same-document fragment or <c>data:</c>, a reference to an id the SVG does not
/// define (after inlining it would point into another figure), scripts, event handlers and
/// <c>foreignObject</c>.
/// </summary>
internal static partial class SvgInliner
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";
    private static readonly XNamespace XLink = "http://www.w3.org/1999/xlink";

    [GeneratedRegex(@"url\(\s*(?<q>[""']?)(?<u>[^)""']*)\k<q>\s*\)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex CssUrl();

    /// <summary>
    /// The SVG as one element (no prolog) ready to be written into an HTML page.
    /// </summary>
    /// <param name="svg">A complete SVG document (e.g. <see cref="Figure.ToSvg"/>).</param>
    /// <param name="figureId">The id the root element gets and the prefix of every id inside.</param>
    /// <param name="label">Accessible name (the caption).</param>
    /// <returns>The markup, and every id inside it after renaming (the root's excluded).</returns>
    /// <exception cref="ArgumentException">Not an SVG document, or it references something outside itself.</exception>
    public static (string Markup, IReadOnlyList<string> Ids) Inline(string svg, string figureId, string label)
    {
        var root = Parse(svg, figureId);
        var prefix = figureId + "--";

        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var element in root.DescendantsAndSelf())
        {
            var id = element.Attribute("id");
            if (id is null) continue;
            if (!ids.TryAdd(id.Value, prefix + id.Value))
                throw new ArgumentException($"SVG for figure \"{figureId}\" defines the id \"{id.Value}\" twice.", nameof(svg));
        }

        // The root takes the figure's id; references to its old id follow it.
        if (root.Attribute("id") is { } rootId) ids[rootId.Value] = figureId;

        foreach (var element in root.DescendantsAndSelf())
        {
            var name = element.Name.LocalName;
            if (name.Equals("script", StringComparison.OrdinalIgnoreCase) || name.Equals("foreignObject", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"SVG for figure \"{figureId}\" contains a <{name}> element; a report's figures hold drawings only.", nameof(svg));
            foreach (var attribute in element.Attributes().ToList())
            {
                if (attribute.IsNamespaceDeclaration) continue;
                var local = attribute.Name.LocalName;
                if (local.StartsWith("on", StringComparison.OrdinalIgnoreCase))
                    throw new ArgumentException($"SVG for figure \"{figureId}\" has an event handler {local}=\"{attribute.Value}\" on <{name}>; a report runs no script.", nameof(svg));
                if (local == "id")
                {
                    attribute.Value = ids[attribute.Value];
                    continue;
                }
                if (local == "href" && (attribute.Name.Namespace == XLink || attribute.Name.Namespace == XNamespace.None))
                {
                    attribute.Value = RewriteHref(attribute.Value, ids, figureId, name, attribute.Name.ToString());
                    continue;
                }
                if (attribute.Value.Contains("url(", StringComparison.OrdinalIgnoreCase))
                    attribute.Value = RewriteCssUrls(attribute.Value, ids, figureId, name, local);
            }
            if (name == "style")
                foreach (var text in element.Nodes().OfType<XText>())
                {
                    if (text.Value.Contains("@import", StringComparison.OrdinalIgnoreCase))
                        throw new ArgumentException($"SVG for figure \"{figureId}\" imports a stylesheet in <style>; a report loads nothing from outside.", nameof(svg));
                    text.Value = RewriteCssUrls(text.Value, ids, figureId, name, "style");
                }
        }

        root.SetAttributeValue("id", figureId);
        if (root.Attribute("viewBox") is null && TryPixels(root.Attribute("width"), out var width) && TryPixels(root.Attribute("height"), out var height))
            root.SetAttributeValue("viewBox", string.Create(CultureInfo.InvariantCulture, $"0 0 {width} {height}"));
        root.SetAttributeValue("class", "plot");
        root.SetAttributeValue("role", "img");
        root.SetAttributeValue("aria-label", label);
        return (root.ToString(SaveOptions.DisableFormatting), ids.Values.Where(id => id != figureId).ToList());
    }

    private static XElement Parse(string svg, string figureId)
    {
        ArgumentNullException.ThrowIfNull(svg);
        XDocument document;
        try
        {
            var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null };
            using var reader = XmlReader.Create(new StringReader(svg), settings);
            document = XDocument.Load(reader);
        }
        catch (XmlException e)
        {
            throw new ArgumentException($"The SVG for figure \"{figureId}\" is not well-formed XML: {e.Message}", nameof(svg), e);
        }
        var root = document.Root!;
        if (root.Name != Svg + "svg")
            throw new ArgumentException(
                $"The SVG for figure \"{figureId}\" must have an <svg> root in the namespace {Svg.NamespaceName}; got <{root.Name}>.", nameof(svg));
        return root;
    }

    private static string RewriteHref(string value, Dictionary<string, string> ids, string figureId, string element, string attribute)
    {
        var trimmed = value.Trim();
        if (trimmed.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) return value;
        if (trimmed.StartsWith('#')) return "#" + LocalTarget(trimmed[1..], ids, figureId, element, attribute);
        throw new ArgumentException(
            $"SVG for figure \"{figureId}\" references the outside resource \"{value}\" in <{element} {attribute}>; " +
            "a report may only use data: URLs and references inside the figure.", "svg");
    }

    private static string RewriteCssUrls(string value, Dictionary<string, string> ids, string figureId, string element, string attribute) =>
        CssUrl().Replace(value, m =>
        {
            var url = m.Groups["u"].Value.Trim();
            if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) return m.Value;
            if (url.StartsWith('#')) return $"url(#{LocalTarget(url[1..], ids, figureId, element, attribute)})";
            throw new ArgumentException(
                $"SVG for figure \"{figureId}\" references the outside resource \"{url}\" in <{element} {attribute}>; " +
                "a report may only use data: URLs and references inside the figure.", "svg");
        });

    private static string LocalTarget(string id, Dictionary<string, string> ids, string figureId, string element, string attribute) =>
        ids.TryGetValue(id, out var renamed)
            ? renamed
            : throw new ArgumentException(
                $"SVG for figure \"{figureId}\" references \"#{id}\" in <{element} {attribute}>, which the SVG does not define; " +
                "inlined beside other figures it would point into one of them.", "svg");

    private static bool TryPixels(XAttribute? attribute, out double pixels)
    {
        pixels = 0;
        if (attribute is null) return false;
        var text = attribute.Value.Trim();
        if (text.EndsWith("px", StringComparison.Ordinal)) text = text[..^2];
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out pixels) && pixels > 0;
    }
}
