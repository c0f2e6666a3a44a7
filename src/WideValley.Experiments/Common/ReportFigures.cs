using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// Draws a report's figures when it can: a report's text, tables and JSON never depend on the plotting font, so a
/// machine without it gets everything but the pictures, and one warning that says what is missing and how to get it.
/// </summary>
/// <param name="written">The report's list of written paths; each drawn figure adds its PNG and SVG.</param>
/// <param name="warning">Told once, at the first figure that could not be drawn.</param>
internal sealed class ReportFigures(List<string> written, Action<string>? warning)
{
    bool _warned;

    /// <summary>Whether a figure was skipped (the plotting font is missing).</summary>
    public bool Skipped { get; private set; }

    /// <summary>Saves <paramref name="figure"/> as basePath.png and .svg; returns the PNG's file name, or null when it was not drawn.</summary>
    public string? TrySave(Figure figure, string basePath)
    {
        if (figure.TrySavePngAndSvg(basePath, out var reason))
        {
            written.Add(basePath + ".png");
            written.Add(basePath + ".svg");
            return Path.GetFileName(basePath) + ".png";
        }
        Skipped = true;
        if (!_warned)
        {
            _warned = true;
            warning?.Invoke($"the report's figures were not drawn (its text and data were written): {reason}");
        }
        return null;
    }
}
