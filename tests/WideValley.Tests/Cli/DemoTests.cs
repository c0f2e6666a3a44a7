using System.Globalization;
using WideValley.Cli;
using WideValley.Data;
using WideValley.Tests.Data;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>
/// `widevalley demo` (the README's first command) and the data commands around it, run in-process: on the full set,
/// on a machine without it (the built-in subset), and after a failed download.
/// </summary>
public class DemoTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>A machine without any Fashion-MNIST: every search place is an empty folder under <paramref name="places"/>.</summary>
    static IDisposable NothingInstalled(TempDir places) =>
        DatasetCatalog.OverrideSearchPlaces(new DatasetCatalog.SearchPlaces(null, places.File("user"), places.File("system")));

    /// <summary>The comparison table's two rows: each optimizer's effective epochs are within the budget and its test error beats chance.</summary>
    static void AssertTable(string output, double budget)
    {
        var table = output.Split('\n').SkipWhile(l => !l.StartsWith("optimizer", StringComparison.Ordinal)).ToArray();
        Assert.StartsWith("adam", table[1]);
        Assert.StartsWith("entropy-sgd", table[2]);
        foreach (var row in table[1..3])
        {
            var cells = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.InRange(double.Parse(cells[1], CultureInfo.InvariantCulture), budget, budget * 1.25);
            var error = double.Parse(cells[2].TrimEnd('%'), CultureInfo.InvariantCulture);
            Assert.InRange(error, 0, 60);    // both learn something (chance is 90%)
        }
    }

    [Fact]
    public void DemoComparesAdamWithEntropySgdAtTheSameBudget()
    {
        using var dir = new TempDir();
        var (code, output, err) = Run("demo", "--effective-epochs", "0.2", "-L", "2", "--threads", "2", "--out", dir.Path);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("on Fashion-MNIST (full set)", output);
        Assert.DoesNotContain("built-in", output);
        AssertTable(output, 0.2);
        Assert.True(File.Exists(Path.Combine(dir.Path, "adam", "summary.json")));
        Assert.True(File.Exists(Path.Combine(dir.Path, "entropy-sgd", "summary.json")));
    }

    [Fact]
    public void WithoutFashionMnistTheDemoRunsOnTheBuiltInSubsetAndSaysHowToGetTheWholeSet()
    {
        using var places = new TempDir();
        using var dir = new TempDir();
        using var _ = NothingInstalled(places);
        var (code, output, err) = Run("demo", "--effective-epochs", "1", "-L", "2", "--threads", "2", "--out", dir.Path);
        Assert.True(code == ExitCodes.Ok, err);

        var notice = output.Split('\n').Single(l => l.StartsWith("Fashion-MNIST is not installed", StringComparison.Ordinal));
        foreach (var expected in new[]
                 {
                     "built-in Fashion-MNIST subset", "10,000 training and 2,000 test images", "MIT licence", "Zalando SE",
                     "sudo apt-get install dataset-fashion-mnist", "widevalley data download fashion-mnist", "--data-dir",
                 })
            Assert.Contains(expected, notice);
        Assert.Contains("on Fashion-MNIST (built-in subset)", output);
        Assert.Contains("fashion-mnist-subset-", output);    // the runs read the subset's folder
        AssertTable(output, 1);
        // No network was tried and nothing was written to the (empty) search places.
        Assert.DoesNotContain("downloading", output);
        Assert.Empty(Directory.EnumerateFileSystemEntries(places.Path));
    }

    [Fact]
    public void DataOptionIsCheckedAndAnExplicitFolderIsNeverReplacedByTheSubset()
    {
        using var dir = new TempDir();
        var mixed = Run("demo", "--data", "subset", "--data-dir", dir.Path);
        Assert.Equal(ExitCodes.Usage, mixed.Code);
        Assert.Contains("cannot be combined with --data subset", mixed.Err);

        var unknown = Run("demo", "--data", "cifar10");
        Assert.Equal(ExitCodes.Usage, unknown.Code);
        Assert.Contains("cifar10", unknown.Err);

        var empty = Run("demo", "--data-dir", dir.Path, "--out", dir.File("runs"));
        Assert.Equal(ExitCodes.Failure, empty.Code);
        Assert.Contains($"{dir.Path} (from --data-dir): incomplete, missing train-images-idx3-ubyte", empty.Err);
        Assert.DoesNotContain("built-in", empty.Out);
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    /// <summary>
    /// The sequence of issue 15 through the commands: `data download` fails (here: a mirror without the files), which
    /// must leave no folder that shadows anything; then the full set appears later in the search order (the Debian
    /// package is installed) and `data info` and `data list` find it.
    /// </summary>
    [Fact]
    public void AfterAFailedDownloadTheSetInstalledLaterIsFound()
    {
        using var server = new LocalHttpServer();
        using var places = new TempDir();
        using var _ = NothingInstalled(places);

        var badMirror = Run("data", "download", "fashion-mnist", "--mirror", "ftp://example.org/");
        Assert.Equal(ExitCodes.Usage, badMirror.Code);
        Assert.Contains("--mirror must be an absolute http or https URL", badMirror.Err);

        var failed = Run("data", "download", "fashion-mnist", "--mirror", server.Root.AbsoluteUri);
        Assert.Equal(ExitCodes.Failure, failed.Code);
        Assert.Contains("HTTP 404", failed.Err);
        Assert.False(Directory.Exists(places.File("user/fashion-mnist")));
        Assert.Empty(Directory.Exists(places.File("user")) ? Directory.EnumerateFileSystemEntries(places.File("user")) : []);

        var missing = Run("data", "list");
        Assert.Contains("fashion-mnist  not found", missing.Out);
        Assert.Contains("(built-in)", missing.Out);

        DatasetCatalogTests.WriteMnistFolderAt(places.File("system/fashion-mnist"));
        var info = Run("data", "info", "fashion-mnist");
        Assert.True(info.Code == ExitCodes.Ok, info.Err);
        Assert.Contains($"source: {places.File("system/fashion-mnist")}", info.Out);
        var list = Run("data", "list");
        Assert.Contains($"fashion-mnist  {places.File("system/fashion-mnist")} (from default folder)", list.Out);
    }

    [Fact]
    public void DataSubsetWritesTheBuiltInSubsetForDataDir()
    {
        using var dir = new TempDir();
        var (code, output, err) = Run("data", "subset", "--to", dir.File("subset"));
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Equal(dir.File("subset"), output.Trim());
        var info = Run("data", "info", "fashion-mnist", "--data-dir", dir.File("subset"));
        Assert.True(info.Code == ExitCodes.Ok, info.Err);
        Assert.Contains("10000 training and 2000 test samples", info.Out);
    }
}
