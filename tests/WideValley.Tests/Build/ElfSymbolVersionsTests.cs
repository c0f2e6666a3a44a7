using WideValley.Build;
using WideValley.Tests.Support;

namespace WideValley.Tests.Build;

/// <summary>
/// The build's fix for TorchSharp's native library (build/ElfSymbolVersions.cs), exercised on a private copy of the
/// untouched library from the NuGet cache.
/// </summary>
public class ElfSymbolVersionsTests
{
    const string Dependency = "libstdc++.so.6";
    const string Version = "GLIBCXX_3.4.32";
    static readonly string[] Allowed = ["_ZSt21ios_base_library_initv"];

    static string PristineLibrary()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"expected the restored TorchSharp package at {path}");
        return path;
    }

    static string OutputLibrary() =>
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [Fact]
    public void PristineLibraryNeedsTheVersionOnlyForTheNoOpSymbol()
    {
        var image = ElfImage.Load(PristineLibrary());
        var need = Assert.Single(image.VersionNeeds(), n => n.File == Dependency && n.Name == Version);
        Assert.False(need.IsWeak);
        Assert.Equal(Allowed, image.SymbolsBoundTo(need.Index));
    }

    [Fact]
    public void TheBuildOutputCopyIsPatchedExactlyWhenTheSystemLacksTheVersion()
    {
        var system = ElfImage.FindSystemLibrary(Dependency);
        Assert.NotNull(system);
        var systemHasIt = ElfImage.Load(system!).VersionDefinitions().Contains(Version);
        var need = ElfImage.Load(OutputLibrary()).VersionNeeds().Single(n => n.File == Dependency && n.Name == Version);
        Assert.Equal(!systemHasIt, need.IsWeak);
        // ...and the package cache itself is never modified.
        Assert.False(ElfImage.Load(PristineLibrary()).VersionNeeds().Single(n => n.Name == Version).IsWeak);
    }

    [Fact]
    public void PatchSetsOnlyTheWeakFlagAndIsIdempotent()
    {
        using var dir = new TempDir();
        var copy = dir.File("lib.so");
        File.Copy(PristineLibrary(), copy);
        var before = File.ReadAllBytes(copy);
        var available = new HashSet<string> { "GLIBCXX_3.4.30" };

        var first = ElfImage.PatchFile(copy, Dependency, [Version], Allowed, available);
        Assert.Equal([Version], first.Weakened);
        var after = File.ReadAllBytes(copy);
        Assert.Equal(before.Length, after.Length);
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        var flags = ElfImage.Load(copy).VersionNeeds().Single(n => n.Name == Version);
        Assert.True(flags.IsWeak);
        Assert.Equal([flags.FlagsOffset], changed.Select(i => (long)i));

        var second = ElfImage.PatchFile(copy, Dependency, [Version], Allowed, available);
        Assert.False(second.Changed);
        Assert.Equal([Version], second.AlreadyWeak);
        Assert.Equal(after, File.ReadAllBytes(copy));
    }

    [Fact]
    public void NothingIsPatchedWhenTheSystemHasTheVersion()
    {
        using var dir = new TempDir();
        var copy = dir.File("lib.so");
        File.Copy(PristineLibrary(), copy);
        var outcome = ElfImage.PatchFile(copy, Dependency, [Version], Allowed, new HashSet<string> { Version });
        Assert.Equal([Version], outcome.Satisfied);
        Assert.Equal(File.ReadAllBytes(PristineLibrary()), File.ReadAllBytes(copy));
    }

    [Fact]
    public void RefusesWhenARealSymbolNeedsTheVersion()
    {
        using var dir = new TempDir();
        var copy = dir.File("lib.so");
        File.Copy(PristineLibrary(), copy);
        var e = Assert.Throws<InvalidDataException>(() =>
            ElfImage.PatchFile(copy, Dependency, [Version], allowedSymbols: [], new HashSet<string>()));
        Assert.Contains("_ZSt21ios_base_library_initv", e.Message);
        Assert.Contains(copy, e.Message);
        Assert.Equal(File.ReadAllBytes(PristineLibrary()), File.ReadAllBytes(copy));
    }

    [Fact]
    public void PatchingAHardLinkLeavesTheOtherNameUntouched()
    {
        using var dir = new TempDir();
        var original = dir.File("cache.so");
        var linked = dir.File("output.so");
        File.Copy(PristineLibrary(), original);
        using (var ln = System.Diagnostics.Process.Start("ln", [original, linked]))
        {
            ln.WaitForExit();
            Assert.Equal(0, ln.ExitCode);
        }
        ElfImage.PatchFile(linked, Dependency, [Version], Allowed, new HashSet<string>());
        Assert.False(ElfImage.Load(original).VersionNeeds().Single(n => n.Name == Version).IsWeak);
        Assert.True(ElfImage.Load(linked).VersionNeeds().Single(n => n.Name == Version).IsWeak);
    }

    [Fact]
    public void TruncatedOrForeignFilesAreReportedWithTheirPath()
    {
        using var dir = new TempDir();
        var truncated = dir.File("truncated.so");
        File.WriteAllBytes(truncated, File.ReadAllBytes(PristineLibrary()).AsSpan(0, 4096).ToArray());
        var e1 = Assert.Throws<InvalidDataException>(() => ElfImage.Load(truncated));
        Assert.Contains(truncated, e1.Message);
        Assert.Contains("truncated", e1.Message);
        var text = dir.File("notes.txt");
        File.WriteAllText(text, "definitely not an ELF file, but long enough to have a header of sixty-four bytes.....");
        var e2 = Assert.Throws<InvalidDataException>(() => ElfImage.Load(text));
        Assert.Contains("not an ELF file", e2.Message);
    }
}
