using WideValley.Build;

namespace WideValley;

/// <summary>
/// torch's native libraries could not be loaded. The message says why, when WideValley can tell (a libstdc++ older
/// than TorchSharp's native library asks for, or no native backend package in the app), and what to do; the inner
/// exception is TorchSharp's own.
/// </summary>
public sealed class TorchLoadException : Exception
{
    /// <summary>Creates the exception with its explanation and TorchSharp's original failure.</summary>
    public TorchLoadException(string message, Exception inner) : base(message, inner) { }

    internal const string LibStdCxx = "libstdc++.so.6";
    internal static readonly string[] FixableVersions = ["GLIBCXX_3.4.32"];
    const string NativeLibrary = "libLibTorchSharp.so";

    /// <summary>
    /// Explains <paramref name="failure"/> (TorchSharp's) by looking at the app's copies of libLibTorchSharp.so and the
    /// system's libstdc++.
    /// </summary>
    internal static TorchLoadException Explain(Exception failure) =>
        Explain(failure, CandidateFolders(), SystemLibStdCxx());

    /// <summary>The testable core of <see cref="Explain(Exception)"/>: folders to search and the system library.</summary>
    internal static TorchLoadException Explain(Exception failure, IEnumerable<string> folders,
        (string Path, ICollection<string> Versions)? system)
    {
        // TorchSharp's message runs to a page of load trace; its first line is enough here (the rest stays in
        // InnerException).
        var original = Innermost(failure).Message.Split('\n')[0].Trim();
        var libraries = folders.Where(Directory.Exists)
            .SelectMany(f => Directory.EnumerateFiles(f, NativeLibrary, SearchOption.TopDirectoryOnly))
            .Select(Path.GetFullPath)
            .Distinct(StringComparer.Ordinal)
            .ToList();
        if (libraries.Count == 0)
            return new TorchLoadException(
                $"torch could not be loaded: no {NativeLibrary} lies next to the app ({AppContext.BaseDirectory}). " +
                "WideValley depends on the managed TorchSharp package only; the app must add a native backend: " +
                "`dotnet add package TorchSharp-cpu` (or TorchSharp-cuda-linux for NVIDIA GPUs). " +
                $"TorchSharp said: {original}", failure);
        if (system is { } sys)
        {
            foreach (var library in libraries)
            {
                List<string> unmet;
                try { unmet = ElfImage.Load(library).UnmetNeeds(LibStdCxx, FixableVersions, sys.Versions); }
                catch (InvalidDataException) { continue; }
                catch (IOException) { continue; }
                if (unmet.Count == 0) continue;
                var newest = sys.Versions.Where(v => v.StartsWith("GLIBCXX_", StringComparison.Ordinal))
                    .OrderBy(v => v, GlibcxxOrder.Instance).LastOrDefault() ?? "no GLIBCXX version";
                return new TorchLoadException(
                    $"torch could not be loaded: {library} requires {string.Join(", ", unmet)} from {LibStdCxx}, and " +
                    $"this system's {sys.Path} stops at {newest} (Debian 12 has GLIBCXX_3.4.30), so the dynamic loader " +
                    "refuses the library. TorchSharp's own message below blames a missing package reference; that is " +
                    "not the cause. The requirement is for a no-op symbol and can safely be marked weak. Fix, one of: " +
                    "(1) reference the WideValley package from the project you run (`dotnet add package WideValley`): " +
                    "its buildTransitive target marks the requirement weak in your build and publish output on every " +
                    "build; then rebuild; (2) import WideValley's build/TorchSharpNativeFix.targets into your project; " +
                    "(3) install a libstdc++ that has GLIBCXX_3.4.32 (GCC 13 or newer). " +
                    $"TorchSharp said: {original}", failure);
            }
        }
        return new TorchLoadException(
            $"torch could not be loaded ({string.Join(", ", libraries)}; " +
            (system is { } s ? $"its {LibStdCxx} needs are met by {s.Path}" : $"no system {LibStdCxx} found to check against") +
            $"). TorchSharp said: {original}", failure);
    }

    /// <summary>Where an app's copy of the native library can lie: the app folder, its runtimes/*/native folders, TorchSharp's folder.</summary>
    static IEnumerable<string> CandidateFolders()
    {
        var roots = new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(TorchSharp.torch).Assembly.Location) }
            .Where(r => !string.IsNullOrEmpty(r)).Select(r => r!).Distinct(StringComparer.Ordinal);
        foreach (var root in roots)
        {
            yield return root;
            var runtimes = Path.Combine(root, "runtimes");
            if (!Directory.Exists(runtimes)) continue;
            foreach (var rid in Directory.EnumerateDirectories(runtimes))
                yield return Path.Combine(rid, "native");
        }
    }

    static (string Path, ICollection<string> Versions)? SystemLibStdCxx()
    {
        if (!OperatingSystem.IsLinux()) return null;
        var path = ElfImage.FindSystemLibrary(LibStdCxx);
        if (path is null) return null;
        try { return (path, ElfImage.Load(path).VersionDefinitions()); }
        catch (Exception e) when (e is InvalidDataException or IOException) { return null; }
    }

    static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    /// <summary>Orders GLIBCXX_3.4.9 before GLIBCXX_3.4.30 (numeric parts, not text).</summary>
    sealed class GlibcxxOrder : IComparer<string>
    {
        public static readonly GlibcxxOrder Instance = new();

        public int Compare(string? x, string? y)
        {
            var a = Parts(x);
            var b = Parts(y);
            for (var i = 0; i < Math.Max(a.Length, b.Length); i++)
            {
                var c = (i < a.Length ? a[i] : -1).CompareTo(i < b.Length ? b[i] : -1);
                if (c != 0) return c;
            }
            return 0;
        }

        static int[] Parts(string? v) => (v ?? "").Split('_').Last().Split('.')
            .Select(p => int.TryParse(p, out var n) ? n : -1).ToArray();
    }
}
