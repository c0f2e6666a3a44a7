using WideValley.Benchmarks;
using WideValley.Data;
using WideValley.Tests.Support;

namespace WideValley.Tests.Benchmarks;

/// <summary>The data-throughput benchmark measures what it says on the data it says; speed itself is never asserted.</summary>
public class DataThroughputBenchmarkTests
{
    // The Debian set when installed, else the built-in subset in its place.
    static string FashionMnistFolder => TestMachine.FashionMnistFolder;

    static readonly DataThroughputOptions Small = new()
    {
        Data = ThroughputData.Synthetic, SyntheticSamples = 2048, BatchSize = 128, Rounds = 3, WarmupRounds = 1,
        DataLoaderBatchesPerRound = 3, Threads = 2,
    };

    [Fact]
    public void SyntheticSetReportsRatesOfBothPathsAndNoLoadTime()
    {
        var r = DataThroughputBenchmark.Run(Small);
        Assert.False(r.RealData);
        Assert.StartsWith("synthetic 2048 x 1x28x28", r.Data);
        Assert.Null(r.LoadSeconds);
        Assert.Null(r.LoadFirstSeconds);
        Assert.Equal(0, r.LoadRepeats);
        Assert.Equal(2048, r.Samples);
        Assert.Equal("1x28x28 float32", r.SampleShape);
        Assert.Equal(16, r.BatchesPerRound); // one pass: 2048 / 128
        Assert.True(double.IsFinite(r.ImagesPerSecond) && r.ImagesPerSecond > 0);
        Assert.Equal(1000.0 * 128 / r.ImagesPerSecond, r.BatchMs, 9);
        Assert.NotNull(r.DataLoaderImagesPerSecond);
        Assert.True(double.IsFinite(r.DataLoaderImagesPerSecond.Value) && r.DataLoaderImagesPerSecond > 0);
        Assert.Equal(r.ImagesPerSecond / r.DataLoaderImagesPerSecond.Value, r.SpeedupOverDataLoader!.Value, 9);
        Assert.Equal(3, r.Rounds);
    }

    [Fact]
    public void DataLoaderComparisonCanBeSkippedAndBatchesPerRoundFixed()
    {
        // 40 minibatches of 100 from 2048 samples: the stream wraps into further passes within a round.
        var r = DataThroughputBenchmark.Run(Small with { DataLoaderBatchesPerRound = 0, BatchesPerRound = 40, BatchSize = 100 });
        Assert.Null(r.DataLoaderImagesPerSecond);
        Assert.Null(r.SpeedupOverDataLoader);
        Assert.Equal(40, r.BatchesPerRound);
        Assert.Equal(1000.0 * 100 / r.ImagesPerSecond, r.BatchMs, 9);
    }

    [Fact]
    public void AutoFallsBackToSyntheticDataAndSaysWhy()
    {
        using var dir = new TempDir();
        var missing = dir.File("no-fashion-mnist-here");
        var r = DataThroughputBenchmark.Run(Small with { Data = ThroughputData.Auto, DataDir = missing, DataLoaderBatchesPerRound = 0 });
        Assert.False(r.RealData);
        Assert.StartsWith("synthetic", r.Data);
        Assert.Contains("Fashion-MNIST unavailable", r.Data);
        Assert.Contains(missing, r.Data);
    }

    [Fact]
    public void AnEmptyFolderEarlierInTheSearchDoesNotTurnAutoIntoSyntheticData()
    {
        // An empty user folder (what an older version's failed download left) before the installed set.
        using var places = new TempDir();
        Directory.CreateDirectory(places.File("user/fashion-mnist"));
        using var _ = DatasetCatalog.OverrideSearchPlaces(
            new DatasetCatalog.SearchPlaces(null, places.File("user"), Path.GetDirectoryName(FashionMnistFolder)));
        var r = DataThroughputBenchmark.Run(Small with { Data = ThroughputData.Auto, DataLoaderBatchesPerRound = 0, LoadRepeats = 1, BatchesPerRound = 10 });
        Assert.True(r.RealData, r.Data);
        Assert.Contains(FashionMnistFolder, r.Data);
    }

    [Fact]
    public void AskingForFashionMnistThatIsMissingIsADataError()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<DatasetNotFoundException>(() =>
            DataThroughputBenchmark.Run(Small with { Data = ThroughputData.FashionMnist, DataDir = dir.File("nowhere") }));
        Assert.Contains(dir.File("nowhere"), e.Message);
    }

    [Fact]
    public void FashionMnistIsTimedFromItsFilesAndDrawnWhole()
    {
        var r = DataThroughputBenchmark.Run(Small with
        {
            Data = ThroughputData.Auto, DataDir = FashionMnistFolder, LoadRepeats = 1, BatchesPerRound = 20, DataLoaderBatchesPerRound = 2,
        });
        Assert.True(r.RealData);
        Assert.StartsWith("fashion-mnist training set from " + FashionMnistFolder, r.Data);
        Assert.Equal(TestMachine.FashionMnistTrainImages, r.Samples);
        Assert.Equal("1x28x28 float32", r.SampleShape);
        Assert.Equal(1, r.LoadRepeats);
        Assert.True(r.LoadSeconds is > 0 and < double.PositiveInfinity);
        Assert.Equal(r.LoadSeconds, r.LoadFirstSeconds); // one load: the median is the first
        Assert.True(r.ImagesPerSecond > 0 && r.DataLoaderImagesPerSecond > 0);
    }

    [Theory]
    [InlineData("rounds", "--rounds must be at least 3 for a median, got 2")]
    [InlineData("data", "--data cifar10: expected one of auto, fashion-mnist, synthetic")]
    [InlineData("batches", "batches per round must be at least 1")]
    [InlineData("loader", "DataLoader batches per round must be zero (skip) or positive, got -1")]
    [InlineData("samples", "synthetic samples (100) must be at least the batch size (128)")]
    public void InvalidOptionsAreRefusedBeforeAnythingRuns(string which, string expected)
    {
        var options = which switch
        {
            "rounds" => Small with { Rounds = 2 },
            "data" => Small with { Data = "cifar10" },
            "batches" => Small with { BatchesPerRound = 0 },
            "loader" => Small with { DataLoaderBatchesPerRound = -1 },
            _ => Small with { SyntheticSamples = 100 },
        };
        var e = Assert.Throws<ArgumentException>(() => DataThroughputBenchmark.Run(options));
        Assert.Contains(expected, e.Message);
    }
}
