using System.Runtime.CompilerServices;
using WideValley.Cli.DemoData;
using WideValley.Data;
using WideValley.Reports;

namespace WideValley.Tests.Support;

/// <summary>
/// What the test machine offers beyond the .NET SDK: Debian's dataset-fashion-mnist, fortunes, fonts-dejavu-core and
/// chromium (.ci/run installs all four; <see cref="HeadlessChromium"/> checks the browser through <see cref="Require"/>). Without the full Fashion-MNIST, tests that only need some Fashion-MNIST-shaped data
/// get the CLI's built-in subset (10,000 + 2,000 images) in the system folder's place; tests of the full set itself,
/// of fortunes, of plots or in the browser skip, naming the package to install. Under CI (CI=true or
/// WIDEVALLEY_REQUIRE_TEST_DATA=1) a missing package fails those tests instead, so nothing is skipped there that runs.
/// <para>
/// WIDEVALLEY_SIMULATE_FRESH_MACHINE=1 plays a machine without the packages without uninstalling them: the data
/// search, the fortunes check, the font search and the browser search all act as if they were absent.
/// </para>
/// </summary>
static class TestMachine
{
    /// <summary>Set to 1 to play a machine without the packages.</summary>
    public const string SimulateVariable = "WIDEVALLEY_SIMULATE_FRESH_MACHINE";

    /// <summary>Set to 1 (or CI=true) to make a missing package fail the tests that need it instead of skipping them.</summary>
    public const string RequireVariable = "WIDEVALLEY_REQUIRE_TEST_DATA";

    /// <summary>Where dataset-fashion-mnist installs the full set.</summary>
    public const string DebianFashionMnistFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>Where the fortunes package installs its fortune files.</summary>
    public const string FortunesFolder = "/usr/share/games/fortunes";

    public static bool Simulated => Environment.GetEnvironmentVariable(SimulateVariable) == "1";

    static bool PackagesRequired =>
        Environment.GetEnvironmentVariable(RequireVariable) == "1" ||
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether Debian's full Fashion-MNIST (60,000 + 10,000 images) is installed (and not hidden by the simulation).</summary>
    public static bool FullFashionMnistInstalled { get; } =
        !Simulated && DatasetCatalog.ExpectedFiles(DatasetCatalog.FashionMnist)
            .All(stem => File.Exists(Path.Combine(DebianFashionMnistFolder, stem)) || File.Exists(Path.Combine(DebianFashionMnistFolder, stem + ".gz")));

    /// <summary>Whether the fortunes package's files are there (and not hidden by the simulation).</summary>
    public static bool FortunesInstalled => !Simulated && Directory.Exists(FortunesFolder);

    static string? _subsetRoot;

    /// <summary>
    /// A folder of Fashion-MNIST-shaped data for tests that train or measure: the Debian folder when the full set is
    /// installed, else the built-in subset (10,000 training and 2,000 test images, 1,000 and 200 per class).
    /// </summary>
    public static string FashionMnistFolder =>
        FullFashionMnistInstalled ? DebianFashionMnistFolder : Path.Combine(SubsetRoot(), DatasetCatalog.FashionMnist);

    /// <summary>Training images in <see cref="FashionMnistFolder"/>.</summary>
    public static int FashionMnistTrainImages => FullFashionMnistInstalled ? 60_000 : FashionMnistSubset.TrainImages;

    /// <summary>Test images in <see cref="FashionMnistFolder"/>.</summary>
    public static int FashionMnistTestImages => FullFashionMnistInstalled ? 10_000 : FashionMnistSubset.TestImages;

    /// <summary>A root holding fashion-mnist/ with the subset, written once per machine (verified on every run).</summary>
    static string SubsetRoot()
    {
        if (_subsetRoot is { } root) return root;
        root = Path.Combine(Path.GetTempPath(), "widevalley-tests-subset");
        FashionMnistSubset.Materialize(Path.Combine(root, DatasetCatalog.FashionMnist));
        return _subsetRoot = root;
    }

    /// <summary>
    /// Before any test runs: when simulating, hide the system's data and fonts; when the full Fashion-MNIST is not
    /// installed, make the subset the system data folder, so commands and fixtures that find their data through the
    /// default search still train on Fashion-MNIST-shaped data.
    /// </summary>
    [ModuleInitializer]
    internal static void Initialize()
    {
        if (Simulated)
        {
            Environment.SetEnvironmentVariable(DatasetCatalog.SystemRootVariable, "none");
            Environment.SetEnvironmentVariable(PlotFonts.SystemFontsVariable, "none");
            Environment.SetEnvironmentVariable(PlotFonts.FontFolderVariable, null);
        }
        if (!FullFashionMnistInstalled)
            Environment.SetEnvironmentVariable(DatasetCatalog.SystemRootVariable, SubsetRoot());
    }

    /// <summary>Skips the calling test (or fails it under CI) unless Debian's full Fashion-MNIST is installed.</summary>
    public static void RequireFullFashionMnist() => Require(FullFashionMnistInstalled,
        "the full Fashion-MNIST (60,000 + 10,000 images) from Debian's dataset-fashion-mnist package " +
        $"(sudo apt-get install dataset-fashion-mnist); without it the tests use a {FashionMnistSubset.TrainImages:N0}-image subset");

    /// <summary>Skips the calling test (or fails it under CI) unless the fortunes package is installed.</summary>
    public static void RequireFortunes() => Require(FortunesInstalled,
        $"Debian's fortune files in {FortunesFolder} (sudo apt-get install fortunes)");

    /// <summary>Skips the calling test (or fails it under CI) unless the plotting font can be found.</summary>
    public static void RequireDejaVu()
    {
        string? problem = null;
        try { PlotFonts.EnsureAvailable(); }
        catch (InvalidOperationException e) { problem = e.Message; }
        Require(problem is null, $"the plotting font {PlotFonts.Family} (sudo apt-get install {PlotFonts.AptPackage}): {problem}");
    }

    /// <summary>Skips the calling test (or fails it under CI) unless <paramref name="present"/>; <paramref name="what"/> names what is missing and how to get it.</summary>
    public static void Require(bool present, string what)
    {
        if (present) return;
        if (PackagesRequired)
            Assert.Fail($"this test needs {what}; {RequireVariable}=1 or CI=true is set, so a missing package is a failure, not a skip");
        Assert.Skip($"needs {what}");
    }
}
