using WideValley.Build;
using WideValley.Tests.Support;

namespace WideValley.Tests.Build;

/// <summary>
/// When torch fails to load, <see cref="TorchLoadException"/> names the cause: TorchSharp's own message blames a
/// missing package reference even when the real cause is a libstdc++ without GLIBCXX_3.4.32 (Debian 12). Exercised on
/// private copies of the untouched library from the NuGet cache, against stated sets of system versions.
/// </summary>
public class TorchLoadDiagnosisTests
{
    const string Version = "GLIBCXX_3.4.32";
    static readonly string[] Debian12 = ["GLIBCXX_3.4", "GLIBCXX_3.4.9", "GLIBCXX_3.4.29", "GLIBCXX_3.4.30", "CXXABI_1.3"];
    static readonly Exception TorchSharpsOwn = new TypeInitializationException("TorchSharp.torch",
        new NotSupportedException("This application or script uses TorchSharp but doesn't contain a reference to libtorch-cpu-linux-x64."));

    static string PristineLibrary()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"expected the restored TorchSharp package at {path}");
        return path;
    }

    static string AppWithLibrary(TempDir dir)
    {
        var native = Path.Combine(dir.Path, "runtimes", "linux-x64", "native");
        Directory.CreateDirectory(native);
        var library = Path.Combine(native, "libLibTorchSharp.so");
        File.Copy(PristineLibrary(), library);
        return native;
    }

    [Fact]
    public void AnUnpatchedLibraryOnAnOldLibStdCxxIsExplainedWithTheFix()
    {
        using var dir = new TempDir();
        var native = AppWithLibrary(dir);
        var e = TorchLoadException.Explain(TorchSharpsOwn, [dir.Path, native], ("/usr/lib/libstdc++.so.6", Debian12));

        Assert.Same(TorchSharpsOwn, e.InnerException);
        Assert.Contains(Path.Combine(native, "libLibTorchSharp.so"), e.Message);
        Assert.Contains($"requires {Version} from libstdc++.so.6", e.Message);
        Assert.Contains("stops at GLIBCXX_3.4.30", e.Message);   // numeric order: 3.4.30 after 3.4.9
        Assert.Contains("dotnet add package WideValley", e.Message);
        Assert.Contains("buildTransitive", e.Message);
        Assert.Contains("TorchSharpNativeFix.targets", e.Message);
        Assert.Contains("GCC 13", e.Message);
        Assert.Contains("doesn't contain a reference to libtorch-cpu-linux-x64", e.Message);
    }

    [Fact]
    public void APatchedLibraryOrANewLibStdCxxIsNotBlamed()
    {
        using var dir = new TempDir();
        var native = AppWithLibrary(dir);
        var newSystem = Debian12.Append("GLIBCXX_3.4.31").Append(Version).ToArray();
        var onNewSystem = TorchLoadException.Explain(TorchSharpsOwn, [native], ("/usr/lib/libstdc++.so.6", newSystem));
        Assert.DoesNotContain("dotnet add package WideValley", onNewSystem.Message);
        Assert.Contains("needs are met by /usr/lib/libstdc++.so.6", onNewSystem.Message);

        ElfImage.PatchFile(Path.Combine(native, "libLibTorchSharp.so"), TorchLoadException.LibStdCxx, [Version],
            ["_ZSt21ios_base_library_initv"], new HashSet<string>(Debian12));
        var patched = TorchLoadException.Explain(TorchSharpsOwn, [native], ("/usr/lib/libstdc++.so.6", Debian12));
        Assert.DoesNotContain("dotnet add package WideValley", patched.Message);
        Assert.Contains("TorchSharp said: This application", patched.Message);
    }

    [Fact]
    public void AnAppWithoutANativeBackendIsToldToAddOne()
    {
        using var dir = new TempDir();
        var e = TorchLoadException.Explain(TorchSharpsOwn, [dir.Path, Path.Combine(dir.Path, "missing")], ("/usr/lib/libstdc++.so.6", Debian12));
        Assert.Contains("no libLibTorchSharp.so", e.Message);
        Assert.Contains("dotnet add package TorchSharp-cpu", e.Message);
    }

    [Fact]
    public void UnmetNeedsListsOnlyStrongRequirementsTheSystemLacks()
    {
        var image = ElfImage.Load(PristineLibrary());
        Assert.Equal([Version], image.UnmetNeeds("libstdc++.so.6", [Version], Debian12));
        Assert.Empty(image.UnmetNeeds("libstdc++.so.6", [Version], [.. Debian12, Version]));
        Assert.Empty(image.UnmetNeeds("libc.so.6", [Version], Debian12));
    }

    [Fact]
    public void EnsureLoadableSucceedsHereWhereTheBuildPatchedTheOutput()
    {
        TorchRuntime.EnsureLoadable();
        TorchRuntime.EnsureLoadable();
    }
}
