using WideValley.Cli.DemoData;
using WideValley.Data;

namespace WideValley.Tests.Support;

/// <summary>
/// The stand-in data of <see cref="TestMachine"/>: what the tests that train get on this machine, whether or not
/// Debian's Fashion-MNIST is installed (run with WIDEVALLEY_SIMULATE_FRESH_MACHINE=1 to check the other case).
/// </summary>
public class TestMachineTests
{
    [Fact]
    public void TheFashionMnistFolderHoldsTheCountsTheTestsAssume()
    {
        using var data = DatasetCatalog.LoadClassification(DatasetCatalog.FashionMnist, new DataOptions { DataDir = TestMachine.FashionMnistFolder });
        Assert.Equal(TestMachine.FashionMnistTrainImages, data.Train.Count);
        Assert.Equal(TestMachine.FashionMnistTestImages, data.Test.Count);
        if (!TestMachine.FullFashionMnistInstalled)
            Assert.Equal((FashionMnistSubset.TrainImages, FashionMnistSubset.TestImages), ((int)data.Train.Count, (int)data.Test.Count));
    }

    [Fact]
    public void TheDefaultSearchFindsACompleteFashionMnistFolder()
    {
        // Commands and fixtures that are given no folder find this one: the Debian set, or the subset in its place.
        var location = DatasetCatalog.Locate(DatasetCatalog.FashionMnist, null);
        foreach (var stem in DatasetCatalog.ExpectedFiles(DatasetCatalog.FashionMnist))
            Assert.True(File.Exists(Path.Combine(location.Folder, stem)) || File.Exists(Path.Combine(location.Folder, stem + ".gz")),
                $"{stem} is missing from {location.Folder} ({location.Origin})");
        if (!TestMachine.FullFashionMnistInstalled && Environment.GetEnvironmentVariable(DatasetCatalog.EnvironmentVariable) is null)
            Assert.Equal(TestMachine.FashionMnistFolder, location.Folder);
    }
}
