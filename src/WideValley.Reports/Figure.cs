using System.Diagnostics.CodeAnalysis;
using ScottPlot;
using SkiaSharp;

namespace WideValley.Reports;

/// <summary>
/// A finished chart of a fixed pixel size: one or more ScottPlot panels under an optional figure title. Nothing is
/// drawn until it is saved or encoded, and every save is atomic (a temporary file next to the target, renamed over it),
/// so a report folder never holds a half-written image.
/// </summary>
public sealed class Figure
{
    /// <summary>Height in pixels of the band that holds a one-line figure title, when there is one.</summary>
    private const float TitleBandHeight = 44;
    private const float TitleFontSize = 20;

    /// <summary>Smallest font a long title is shrunk to before its two lines are allowed to run past the edges.</summary>
    private const float MinimumTitleFontSize = 11;

    /// <summary>Room kept free left and right of the title, in pixels.</summary>
    private const float TitleMargin = 12;

    private readonly IReadOnlyList<FigurePanel> _panels;

    internal Figure(string? title, int width, int height, IReadOnlyList<FigurePanel> panels)
    {
        if (width < 50 || height < 50)
            throw new ArgumentOutOfRangeException(nameof(width), $"A figure must be at least 50 x 50 pixels; got {width} x {height}.");
        if (panels.Count == 0) throw new ArgumentException("A figure needs at least one panel.", nameof(panels));
        Title = string.IsNullOrWhiteSpace(title) ? null : title;
        Width = width;
        Height = height;
        _panels = panels;
    }

    /// <summary>The title drawn above all panels, or null.</summary>
    public string? Title { get; }

    /// <summary>Width of the image in pixels.</summary>
    public int Width { get; }

    /// <summary>Height of the image in pixels.</summary>
    public int Height { get; }

    /// <summary>The panels, for tests that need to reach into ScottPlot (fixed layouts, failing plottables).</summary>
    internal IReadOnlyList<FigurePanel> Panels => _panels;

    /// <summary>Encodes the figure as PNG.</summary>
    public byte[] ToPng()
    {
        using var buffer = new MemoryStream();
        WritePng(buffer);
        return buffer.ToArray();
    }

    /// <summary>Encodes the figure as an SVG document (text stays text, in font <see cref="PlotFonts.Family"/>).</summary>
    public string ToSvg()
    {
        using var buffer = new MemoryStream();
        WriteSvg(buffer);
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Writes a PNG atomically; missing folders are created, an existing file is replaced.</summary>
    public void SavePng(string path) => AtomicFile.Write(CheckPath(path), WritePng);

    /// <summary>Writes an SVG atomically; missing folders are created, an existing file is replaced.</summary>
    public void SaveSvg(string path) => AtomicFile.Write(CheckPath(path), WriteSvg);

    /// <summary>Writes PNG or SVG, chosen by the extension of <paramref name="path"/> (<c>.png</c> or <c>.svg</c>).</summary>
    public void Save(string path)
    {
        switch (Path.GetExtension(CheckPath(path)).ToLowerInvariant())
        {
            case ".png": SavePng(path); break;
            case ".svg": SaveSvg(path); break;
            default:
                throw new ArgumentException(
                    $"Cannot tell the image format of \"{path}\": the extension must be .png or .svg.", nameof(path));
        }
    }

    /// <summary>Writes <c>{basePath}.png</c> and <c>{basePath}.svg</c> and returns both paths.</summary>
    public (string PngPath, string SvgPath) SavePngAndSvg(string basePath)
    {
        CheckPath(basePath);
        string png = basePath + ".png", svg = basePath + ".svg";
        SavePng(png);
        SaveSvg(svg);
        return (png, svg);
    }

    /// <summary>
    /// Writes <c>{basePath}.png</c> and <c>{basePath}.svg</c> when the plotting font (<see cref="PlotFonts.Family"/>)
    /// can be drawn; otherwise writes neither and returns false, with <paramref name="skippedBecause"/> naming the
    /// missing font and how to install it or point at it. For reports whose tables are the result and the picture a
    /// view of it: the caller writes its JSON/CSV/Markdown either way and shows the reason once. Any other failure
    /// (a full disk, a bad path) still throws.
    /// </summary>
    /// <example><code>
    /// if (!figure.TrySavePngAndSvg(Path.Combine(outDir, "spectrum"), out var skipped))
    ///     Console.Error.WriteLine($"warning: plots skipped: {skipped}");
    /// </code></example>
    public bool TrySavePngAndSvg(string basePath, [NotNullWhen(false)] out string? skippedBecause)
    {
        CheckPath(basePath);
        if (!PlotFonts.TryEnsureAvailable(out skippedBecause)) return false;
        SavePngAndSvg(basePath);
        return true;
    }

    /// <summary>
    /// <see cref="Save"/> when the plotting font can be drawn; otherwise writes nothing and returns false with the
    /// reason (see <see cref="TrySavePngAndSvg"/>).
    /// </summary>
    public bool TrySave(string path, [NotNullWhen(false)] out string? skippedBecause)
    {
        // A bad extension is the caller's mistake on any machine: refused before the font is looked at.
        if (Path.GetExtension(CheckPath(path)).ToLowerInvariant() is not (".png" or ".svg"))
            throw new ArgumentException($"Cannot tell the image format of \"{path}\": the extension must be .png or .svg.", nameof(path));
        if (!PlotFonts.TryEnsureAvailable(out skippedBecause)) return false;
        Save(path);
        return true;
    }

    private static string CheckPath(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return path;
    }

    private void WritePng(Stream output)
    {
        using var surface = SKSurface.Create(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Premul))
            ?? throw new InvalidOperationException($"Skia could not allocate a {Width} x {Height} drawing surface.");
        Draw(surface.Canvas);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("Skia could not encode the figure as PNG.");
        data.SaveTo(output);
    }

    private void WriteSvg(Stream output)
    {
        // The SVG canvas only writes the closing tags when it is disposed, so it must be disposed before the stream
        // is flushed and renamed into place.
        using var managed = new SKManagedWStream(output, disposeManagedStream: false);
        // Skia's SVG device draws no path effects: a dashed line comes out solid anyway, and each one printed
        // "Unsupported path effect in addPaint" on the native standard output, dozens of lines per report. Drawing
        // such lines solid for the SVG (the PNG keeps its dashes) gives the same picture without the noise.
        var dashed = _panels.SelectMany(p => p.Plot.GetPlottables()).OfType<IHasLine>()
            .Where(l => l.LineStyle.Pattern.Name != LinePattern.Solid.Name).Select(l => (Line: l, l.LineStyle.Pattern)).ToList();
        try
        {
            foreach (var (line, _) in dashed) line.LineStyle.Pattern = LinePattern.Solid;
            using (var canvas = SKSvgCanvas.Create(SKRect.Create(Width, Height), managed))
                Draw(canvas);
        }
        finally
        {
            foreach (var (line, pattern) in dashed) line.LineStyle.Pattern = pattern;
        }
        managed.Flush();
    }

    /// <summary>How a figure title is drawn: its lines, their font size and the height of the band above the panels.</summary>
    internal sealed record TitleLayout(IReadOnlyList<string> Lines, float FontSize, float BandHeight);

    /// <summary>
    /// Fits <paramref name="title"/> across a figure <paramref name="width"/> pixels wide: one line at the house size when
    /// it fits; otherwise two lines broken at the space that balances them best (the band grows by a line); and when the
    /// longer of the two still does not fit, both shrink together, to no less than 11 pixels. A long network name in a
    /// generated title (a scatter of one measure of one network, say) would otherwise run off both edges.
    /// </summary>
    internal static TitleLayout LayOutTitle(string title, int width)
    {
        PlotFonts.EnsureAvailable();
        using var font = new SKFont(PlotFonts.Typeface(bold: true), TitleFontSize);
        var room = Math.Max(1f, width - 2 * TitleMargin);
        if (font.MeasureText(title) <= room) return new TitleLayout([title], TitleFontSize, TitleBandHeight);

        IReadOnlyList<string> lines = [title];
        var longest = font.MeasureText(title);
        for (var i = title.IndexOf(' '); i > 0; i = title.IndexOf(' ', i + 1))
        {
            string first = title[..i].TrimEnd(), second = title[(i + 1)..].TrimStart();
            if (first.Length == 0 || second.Length == 0) continue;
            var wider = Math.Max(font.MeasureText(first), font.MeasureText(second));
            if (wider < longest) (lines, longest) = ([first, second], wider);
        }
        var size = longest <= room ? TitleFontSize : Math.Max(MinimumTitleFontSize, TitleFontSize * room / longest);
        // A one-line title keeps the 44-pixel band (20-pixel text, 12 free above and below); two lines keep that
        // room around them.
        var band = lines.Count == 1 ? TitleBandHeight : TitleBandHeight - TitleFontSize + 2 * size * 1.3f;
        return new TitleLayout(lines, size, band);
    }

    private void Draw(SKCanvas canvas)
    {
        PlotFonts.EnsureAvailable();
        canvas.Clear(SKColors.White);
        float top = 0;
        if (Title is not null)
        {
            var layout = LayOutTitle(Title, Width);
            using var font = new SKFont(PlotFonts.Typeface(bold: true), layout.FontSize);
            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            // Each line's baseline placed so its cap height sits centred in its line; the lines centred in the band.
            var lineHeight = layout.FontSize * 1.3f;
            var firstLineTop = (layout.BandHeight - lineHeight * layout.Lines.Count) / 2f;
            for (var i = 0; i < layout.Lines.Count; i++)
                canvas.DrawText(layout.Lines[i], Width / 2f, firstLineTop + lineHeight * (i + 0.5f) + layout.FontSize * 0.36f,
                    SKTextAlign.Center, font, paint);
            top = layout.BandHeight;
        }

        float areaWidth = Width, areaHeight = Height - top;
        foreach (var panel in _panels)
        {
            var rect = new PixelRect(
                left: panel.Left * areaWidth,
                right: (panel.Left + panel.Width) * areaWidth,
                bottom: top + (panel.Top + panel.Height) * areaHeight,
                top: top + panel.Top * areaHeight);
            // ScottPlot clears the canvas before drawing a plot; the clip keeps that to the panel's own rectangle,
            // or every panel would erase the title and the panels drawn before it.
            canvas.Save();
            canvas.ClipRect(new SKRect(rect.Left, rect.Top, rect.Right, rect.Bottom));
            panel.Plot.Render(canvas, rect);
            canvas.Restore();
        }
    }
}

/// <summary>
/// One ScottPlot plot and the part of the figure it occupies, as fractions (0..1) of the area below the title.
/// </summary>
internal sealed record FigurePanel(Plot Plot, float Left, float Top, float Width, float Height)
{
    /// <summary>A panel that fills the whole area.</summary>
    public static FigurePanel Full(Plot plot) => new(plot, 0, 0, 1, 1);
}
