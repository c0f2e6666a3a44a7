using System.IO.Compression;
using TorchSharp;
using WideValley.Data;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Data;

/// <summary>
/// Loads the real Fashion-MNIST files once (Debian package dataset-fashion-mnist) for the tests below, on first use, so
/// the tests can skip on a machine without the package (<see cref="TestMachine.RequireFullFashionMnist"/>).
/// </summary>
public sealed class FashionMnistFixture : IDisposable
{
    public const string Folder = TestMachine.DebianFashionMnistFolder;
    ClassificationDataset? _data;
    public ClassificationDataset Data =>
        _data ??= DatasetCatalog.LoadClassification("fashion-mnist", new DataOptions { DataDir = Folder });

    public void Dispose() => _data?.Dispose();
}

public class FashionMnistTests(FashionMnistFixture fixture) : IClassFixture<FashionMnistFixture>
{
    const string Folder = FashionMnistFixture.Folder;

    /// <summary>
    /// MD5s of the decompressed files (Debian re-compressed them, so the official .gz checksums cannot match; the
    /// contents do). This pins the test data: the counts and sums below are about these exact bytes.
    /// </summary>
    [Theory]
    [InlineData("train-images-idx3-ubyte.gz", "f4a8712d7a061bf5bd6d2ca38dc4d50a")]
    [InlineData("train-labels-idx1-ubyte.gz", "9018921c3c673c538a1fc5bad174d6f9")]
    [InlineData("t10k-images-idx3-ubyte.gz", "8181f5470baa50b63fa0f6fddb340f0a")]
    [InlineData("t10k-labels-idx1-ubyte.gz", "15d484375f8d13e6eb1aabb0c3f46965")]
    public void DecompressedContentsAreTheOfficialFiles(string file, string md5)
    {
        TestMachine.RequireFullFashionMnist();
        Assert.Equal(md5, DataFiles.ContentMd5(Path.Combine(Folder, file)));
    }

    [Fact]
    public void DefaultFolderIsTheDebianOne()
    {
        TestMachine.RequireFullFashionMnist();
        Assert.Equal(Folder, DatasetCatalog.ResolveFolder("fashion-mnist", null, root: null));
    }

    [Fact]
    public void ShapesCountsAndScaling()
    {
        TestMachine.RequireFullFashionMnist();
        var data = fixture.Data;
        Assert.Equal(Folder, data.Source);
        Assert.Equal([60000L, 1L, 28L, 28L], data.Train.Inputs.shape);
        Assert.Equal([10000L, 1L, 28L, 28L], data.Test.Inputs.shape);
        Assert.Equal(60000, data.Train.Labels.shape[0]);
        Assert.Equal(10000, data.Test.Labels.shape[0]);
        using var scope = NewDisposeScope();
        Assert.Equal(0f, data.Train.Inputs.min().item<float>());
        Assert.Equal(1f, data.Train.Inputs.max().item<float>());
    }

    [Fact]
    public void EveryClassHas6000TrainingAnd1000TestImages()
    {
        TestMachine.RequireFullFashionMnist();
        using var scope = NewDisposeScope();
        Assert.Equal(Enumerable.Repeat(6000L, 10), fixture.Data.Train.Labels.bincount(null).data<long>().ToArray());
        Assert.Equal(Enumerable.Repeat(1000L, 10), fixture.Data.Test.Labels.bincount(null).data<long>().ToArray());
    }

    /// <summary>The loaded tensors against the raw bytes decompressed here independently of the IDX reader.</summary>
    [Theory]
    [InlineData("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", true)]
    [InlineData("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", false)]
    public void TensorsMatchTheRawBytes(string imagesFile, string labelsFile, bool train)
    {
        TestMachine.RequireFullFashionMnist();
        var images = Gunzip(Path.Combine(Folder, imagesFile));
        var labels = Gunzip(Path.Combine(Folder, labelsFile));
        var set = train ? fixture.Data.Train : fixture.Data.Test;

        long pixelSum = 0;
        for (var i = 16; i < images.Length; i++) pixelSum += images[i];
        using var scope = NewDisposeScope();
        long loadedSum = 0;
        for (long start = 0; start < set.Count; start += 1000)
        {
            // Chunks keep the temporaries small: fresh memory is slow to touch on this machine.
            using var chunkScope = NewDisposeScope();
            loadedSum += (set.Inputs.narrow(0, start, Math.Min(1000, set.Count - start)) * 255).round().to(ScalarType.Int64).sum().item<long>();
        }
        Assert.Equal(pixelSum, loadedSum);
        // The last image, pixel by pixel, catches any misalignment that a sum would miss.
        var last = set.Inputs[set.Count - 1].reshape(-1).mul(255).round().to(ScalarType.Byte).data<byte>().ToArray();
        Assert.Equal(images[^784..], last);
        // SequenceEqual rather than Assert.Equal on 60000 items: xunit's collection comparison is slow at this size.
        Assert.True(labels[8..].Select(b => (long)b).SequenceEqual(set.Labels.data<long>().ToArray()), "labels differ from the raw label bytes");
    }

    static byte[] Gunzip(string path)
    {
        using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        var output = new MemoryStream();
        gzip.CopyTo(output);
        return output.ToArray();
    }
}
