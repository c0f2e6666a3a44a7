using WideValley.Reports;

namespace WideValley.Tests.Support;

/// <summary>
/// Plays a machine without the plotting font for the life of the object: the system's fonts are hidden
/// (<see cref="PlotFonts.SystemFontsVariable"/> = none) and the only font folder searched is an empty one
/// (<see cref="PlotFonts.FontFolderVariable"/>). Dispose puts both variables back as they were. Environment variables
/// are process-wide; the test assembly runs its tests one at a time (AssemblyInfo.cs), so no other test sees them.
/// </summary>
public sealed class FontlessMachine : IDisposable
{
    private readonly string? savedSystemFonts = Environment.GetEnvironmentVariable(PlotFonts.SystemFontsVariable);
    private readonly string? savedFontFolder = Environment.GetEnvironmentVariable(PlotFonts.FontFolderVariable);
    private readonly TempDir emptyFontFolder = new("widevalley-no-fonts");

    public FontlessMachine()
    {
        Environment.SetEnvironmentVariable(PlotFonts.SystemFontsVariable, "none");
        Environment.SetEnvironmentVariable(PlotFonts.FontFolderVariable, emptyFontFolder.Path);
    }

    /// <summary>The (empty) folder the font search is pointed at.</summary>
    public string FontFolder => emptyFontFolder.Path;

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(PlotFonts.SystemFontsVariable, savedSystemFonts);
        Environment.SetEnvironmentVariable(PlotFonts.FontFolderVariable, savedFontFolder);
        emptyFontFolder.Dispose();
    }
}
