using System.Diagnostics.CodeAnalysis;
using SkiaSharp;

namespace WideValley.Reports;

/// <summary>
/// The one font every WideValley plot uses, DejaVu Sans. ScottPlot otherwise picks whatever the system offers first
/// (on Debian that is DejaVu Serif, elsewhere something else), so the same report would look different from machine to
/// machine, and a machine without any usable font would silently draw no text at all.
/// </summary>
public static class PlotFonts
{
    /// <summary>The font family used for every title, label, tick label and annotation.</summary>
    public const string Family = "DejaVu Sans";

    /// <summary>The Debian/Ubuntu package that installs <see cref="Family"/>.</summary>
    public const string AptPackage = "fonts-dejavu-core";

    /// <summary>Environment variable naming an extra folder that holds <c>DejaVuSans.ttf</c> (for machines where the
    /// font is not installed system-wide).</summary>
    public const string FontFolderVariable = "WIDEVALLEY_FONT_DIR";

    /// <summary>
    /// Environment variable that, set to <c>none</c>, hides the system's fonts: neither the system font manager nor the
    /// usual font folders are asked, only <see cref="FontFolderVariable"/>. The test suite sets it to play a machine
    /// without <see cref="AptPackage"/>.
    /// </summary>
    public const string SystemFontsVariable = "WIDEVALLEY_SYSTEM_FONTS";

    // File names of the four faces in the fonts-dejavu-core package, keyed by (bold, italic).
    private static readonly (bool Bold, bool Italic, string File)[] Faces =
    [
        (false, false, "DejaVuSans.ttf"),
        (true, false, "DejaVuSans-Bold.ttf"),
        (false, true, "DejaVuSans-Oblique.ttf"),
        (true, true, "DejaVuSans-BoldOblique.ttf"),
    ];

    private static readonly object Gate = new();
    // The font settings (system fonts on or off, the extra folder) under which the font was last found, or null. A
    // change of either variable searches again, so a process that hides the system fonts after a first plot (the test
    // suite's seam) sees the machine it asked for.
    private static string? _readyFor;

    /// <summary>
    /// Makes sure <see cref="Family"/> can be drawn: found by the system font manager, or else loaded from the font
    /// files in the usual folders (and <see cref="FontFolderVariable"/>). Idempotent and thread-safe; every plot calls
    /// it before drawing.
    /// </summary>
    /// <exception cref="InvalidOperationException">The font is nowhere to be found; the message says how to install it.</exception>
    public static void EnsureAvailable()
    {
        lock (Gate)
        {
            var systemFonts = !string.Equals(Environment.GetEnvironmentVariable(SystemFontsVariable)?.Trim(), "none", StringComparison.OrdinalIgnoreCase);
            var settings = $"{systemFonts}|{Environment.GetEnvironmentVariable(FontFolderVariable)}";
            if (_readyFor == settings) return;
            _readyFor = null;
            Resolve(Family, DefaultFolders(systemFonts), systemFonts ? SystemLookup : _ => false);
            _readyFor = settings;
        }
    }

    /// <summary>
    /// Like <see cref="EnsureAvailable"/>, but a missing font is an answer rather than an exception: false, with
    /// <paramref name="problem"/> naming the font, where it was looked for, and how to install it or point at it.
    /// For callers that can do without a picture (the measurement's tables are the result; the plot is a view of it).
    /// </summary>
    public static bool TryEnsureAvailable([NotNullWhen(false)] out string? problem)
    {
        try
        {
            EnsureAvailable();
            problem = null;
            return true;
        }
        catch (InvalidOperationException e)
        {
            problem = e.Message;
            return false;
        }
    }

    /// <summary>Where a font was found.</summary>
    internal enum FontSource { System, Files }

    /// <summary>
    /// Finds <paramref name="family"/> through <paramref name="systemLookup"/> or, failing that, as font files in
    /// <paramref name="folders"/>, which are then registered with ScottPlot. Separated from <see cref="EnsureAvailable"/>
    /// so tests can simulate a machine without the font.
    /// </summary>
    internal static FontSource Resolve(string family, IReadOnlyList<string> folders, Func<string, bool> systemLookup)
    {
        if (systemLookup(family)) return FontSource.System;

        foreach (var folder in folders)
        {
            var regular = Path.Combine(folder, Faces[0].File);
            if (!File.Exists(regular)) continue;
            foreach (var (bold, italic, file) in Faces)
            {
                // A folder with only the regular face still works: the regular file stands in for missing styles,
                // which is better than falling back to another family.
                var path = Path.Combine(folder, file);
                ScottPlot.Fonts.AddFontFile(family, File.Exists(path) ? path : regular, bold, italic);
            }
            return FontSource.Files;
        }

        throw new InvalidOperationException(
            $"The plotting font \"{family}\" is not installed: the system font manager does not know it and no " +
            $"{Faces[0].File} was found in {(folders.Count == 0 ? "any font folder" : string.Join(", ", folders))}. " +
            $"Install it with `sudo apt-get install {AptPackage}` (Debian/Ubuntu), or set {FontFolderVariable} to a " +
            $"folder containing {Faces[0].File}.");
    }

    /// <summary>True when the system font manager has the exact family (Skia otherwise returns null or a fallback).</summary>
    private static bool SystemLookup(string family)
    {
        using var typeface = SKFontManager.Default.MatchFamily(family);
        return typeface is not null && string.Equals(typeface.FamilyName, family, StringComparison.OrdinalIgnoreCase);
    }

    private static IReadOnlyList<string> DefaultFolders(bool systemFolders)
    {
        var folders = new List<string>();
        var fromEnvironment = Environment.GetEnvironmentVariable(FontFolderVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) folders.Add(fromEnvironment);
        if (!systemFolders) return folders;
        folders.Add("/usr/share/fonts/truetype/dejavu");   // Debian, Ubuntu
        folders.Add("/usr/share/fonts/dejavu");            // Fedora, Alpine
        folders.Add("/usr/share/fonts/TTF");               // Arch
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (home.Length > 0) folders.Add(Path.Combine(home, ".local", "share", "fonts"));
        return folders;
    }

    /// <summary>The typeface for text drawn outside ScottPlot (figure titles).</summary>
    internal static SKTypeface Typeface(bool bold) => ScottPlot.Fonts.GetTypeface(Family, bold, italic: false);
}
