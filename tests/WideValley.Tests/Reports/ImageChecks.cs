using System.Buffers.Binary;
using System.Xml.Linq;
using SkiaSharp;

namespace WideValley.Tests.Reports;

/// <summary>Checks on rendered images: PNG structure read byte by byte, pixels decoded with Skia, SVG as XML.</summary>
internal static class ImageChecks
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Asserts the PNG signature and a first IHDR chunk of the given size; returns the bytes for more checks.</summary>
    public static void AssertPng(byte[] png, int width, int height)
    {
        Assert.True(png.Length > 33, $"a PNG needs at least 33 bytes, got {png.Length}");
        Assert.Equal(PngSignature, png[..8]);
        Assert.Equal(13, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(8)));
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal(width, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(height, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        Assert.Equal("IEND", System.Text.Encoding.ASCII.GetString(png, png.Length - 8, 4));
        using var bitmap = SKBitmap.Decode(png);
        Assert.NotNull(bitmap);
        Assert.Equal(width, bitmap.Width);
        Assert.Equal(height, bitmap.Height);
    }

    public static void AssertPngFile(string path, int width, int height)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        AssertPng(File.ReadAllBytes(path), width, height);
    }

    /// <summary>Parses the SVG, checks the root element and size, and returns the document.</summary>
    public static XDocument AssertSvg(string svg, int width, int height)
    {
        var document = XDocument.Parse(svg);
        var root = document.Root!;
        Assert.Equal("svg", root.Name.LocalName);
        Assert.Equal(width.ToString(), (string?)root.Attribute("width"));
        Assert.Equal(height.ToString(), (string?)root.Attribute("height"));
        return document;
    }

    public static XDocument AssertSvgFile(string path, int width, int height)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        return AssertSvg(File.ReadAllText(path), width, height);
    }

    /// <summary>All &lt;text&gt; elements of an SVG.</summary>
    public static IReadOnlyList<XElement> TextElements(XDocument svg) =>
        svg.Descendants().Where(e => e.Name.LocalName == "text").ToList();

    /// <summary>The visible strings of an SVG, one per &lt;text&gt; element.</summary>
    public static IReadOnlyList<string> Texts(XDocument svg) => TextElements(svg).Select(e => e.Value.Trim()).ToList();

    /// <summary>Decoded pixels of a PNG (caller disposes).</summary>
    public static SKBitmap Decode(byte[] png) => SKBitmap.Decode(png) ?? throw new InvalidOperationException("not a decodable image");

    /// <summary>Pixels darker than mid-grey (text, axis lines, dark bars) inside the rectangle.</summary>
    public static int DarkPixels(SKBitmap bitmap, SKRectI region)
    {
        var count = 0;
        for (var y = Math.Max(0, region.Top); y < Math.Min(bitmap.Height, region.Bottom); y++)
            for (var x = Math.Max(0, region.Left); x < Math.Min(bitmap.Width, region.Right); x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red + c.Green + c.Blue < 3 * 110) count++;
            }
        return count;
    }

    /// <summary>Mean x of the dark pixels in the region (NaN if none).</summary>
    public static double DarkCentroidX(SKBitmap bitmap, SKRectI region)
    {
        double sum = 0;
        var count = 0;
        for (var y = Math.Max(0, region.Top); y < Math.Min(bitmap.Height, region.Bottom); y++)
            for (var x = Math.Max(0, region.Left); x < Math.Min(bitmap.Width, region.Right); x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red + c.Green + c.Blue < 3 * 110) { sum += x; count++; }
            }
        return count == 0 ? double.NaN : sum / count;
    }

    /// <summary>Pixels that differ between two images of equal size, inside the region.</summary>
    public static int DifferentPixels(SKBitmap a, SKBitmap b, SKRectI region)
    {
        Assert.Equal(a.Width, b.Width);
        Assert.Equal(a.Height, b.Height);
        var count = 0;
        for (var y = Math.Max(0, region.Top); y < Math.Min(a.Height, region.Bottom); y++)
            for (var x = Math.Max(0, region.Left); x < Math.Min(a.Width, region.Right); x++)
                if (a.GetPixel(x, y) != b.GetPixel(x, y)) count++;
        return count;
    }

    /// <summary>Pixels whose colour is neither white nor grey: the data (bars, curves, heatmap cells) were drawn.</summary>
    public static int ColouredPixels(SKBitmap bitmap)
    {
        var count = 0;
        for (var y = 0; y < bitmap.Height; y++)
            for (var x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                var spread = Math.Max(c.Red, Math.Max(c.Green, c.Blue)) - Math.Min(c.Red, Math.Min(c.Green, c.Blue));
                if (spread > 60) count++;
            }
        return count;
    }
}
