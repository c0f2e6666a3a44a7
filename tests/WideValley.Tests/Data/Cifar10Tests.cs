using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

using WideValley.Tests.Support;

namespace WideValley.Tests.Data;

public class Cifar10Tests
{
    static readonly int[] TrainCounts = [3, 2, 3, 2, 3];
    const int TestCount = 4;

    /// <summary>Records of a synthetic batch: label (i + salt) % 10, then 3072 seeded random pixel bytes.</summary>
    internal static byte[][] Records(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var record = new byte[Cifar10.RecordBytes];
            random.NextBytes(record);
            record[0] = (byte)((i + seed) % 10);
            return record;
        }).ToArray();
    }

    /// <summary>
    /// A complete CIFAR-10 folder with 13 training and 4 test records. Some images repeat on purpose: test record 0
    /// is training record (file 2, record 1), and training records (file 1, 0) = (file 3, 2), (file 2, 0) = (file 4, 1),
    /// (file 1, 2) = (file 5, 0), so tests can see that equal images get equal outputs wherever they end up.
    /// </summary>
    internal static (byte[][] Train, byte[][] Test) WriteCifarFolder(string folder)
    {
        var files = TrainCounts.Select((count, f) => Records(count, seed: 10 + f)).ToArray();
        files[2][2] = (byte[])files[0][0].Clone();
        files[3][1] = (byte[])files[1][0].Clone();
        files[4][0] = (byte[])files[0][2].Clone();
        var test = Records(TestCount, seed: 99);
        test[0] = (byte[])files[1][1].Clone();
        Directory.CreateDirectory(folder);
        for (var f = 0; f < 5; f++) File.WriteAllBytes(Path.Combine(folder, Cifar10.TrainFiles[f]), files[f].SelectMany(r => r).ToArray());
        File.WriteAllBytes(Path.Combine(folder, Cifar10.TestFile), test.SelectMany(r => r).ToArray());
        return (files.SelectMany(f => f).ToArray(), test);
    }

    [Fact]
    public void ReadsRecordsExactlyInFileOrder()
    {
        using var folder = new TempDir();
        var (train, test) = WriteCifarFolder(folder.Path);
        var (rawTrain, rawTest) = Cifar10.ReadRaw(folder.Path);
        using (rawTrain)
        using (rawTest)
        {
            Assert.Equal([13L, 3L, 32L, 32L], rawTrain.Inputs.shape);
            Assert.Equal(ScalarType.Byte, rawTrain.Inputs.dtype);
            Assert.Equal([4L, 3L, 32L, 32L], rawTest.Inputs.shape);
            Assert.Equal(train.SelectMany(r => r[1..]).ToArray(), rawTrain.Inputs.data<byte>().ToArray());
            Assert.Equal(train.Select(r => (long)r[0]).ToArray(), rawTrain.Labels.data<long>().ToArray());
            Assert.Equal(test.SelectMany(r => r[1..]).ToArray(), rawTest.Inputs.data<byte>().ToArray());
            // Planes are R, G, B: pixel (y, x) of the green plane is byte 1 + 1024 + 32 y + x of its record.
            using var scope = NewDisposeScope();
            Assert.Equal(train[4][1 + 1024 + 32 * 5 + 7], rawTrain.Inputs[4, 1, 5, 7].item<byte>());
        }
    }

    [Fact]
    public void ReadBatchReadsOneFile()
    {
        using var folder = new TempDir();
        var records = Records(2, seed: 3);
        var path = folder.Write("one.bin", records.SelectMany(r => r).ToArray());
        using var batch = Cifar10.ReadBatch(path);
        Assert.Equal(2, batch.Count);
        Assert.Equal(records.Select(r => (long)r[0]).ToArray(), batch.Labels.data<long>().ToArray());
    }

    [Fact]
    public void SizeThatIsNotWholeRecordsIsReported()
    {
        using var folder = new TempDir();
        var path = folder.Write("data_batch_1.bin", new byte[2 * 3073 + 5]);
        var e = Assert.Throws<DataException>(() => Cifar10.ReadBatch(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("size 6151 bytes is not a multiple of the 3073-byte CIFAR-10 record", e.Message);
        Assert.Contains("2 whole records and 5 bytes left over", e.Message);
    }

    [Fact]
    public void EmptyFileIsReported()
    {
        using var folder = new TempDir();
        var path = folder.Write("test_batch.bin", []);
        var e = Assert.Throws<DataException>(() => Cifar10.ReadBatch(path));
        Assert.Contains("is empty", e.Message);
    }

    [Fact]
    public void LabelOutOfRangeNamesFileRecordAndValue()
    {
        using var folder = new TempDir();
        var records = Records(3, seed: 1);
        records[1][0] = 10;
        records[2][0] = 250;
        var path = folder.Write("data_batch_4.bin", records.SelectMany(r => r).ToArray());
        var e = Assert.Throws<DataException>(() => Cifar10.ReadBatch(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("record 1 (byte offset 3073): label 10 is out of range 0..9", e.Message);
    }

    [Fact]
    public void MissingFilesAreListed()
    {
        using var folder = new TempDir();
        WriteCifarFolder(folder.Path);
        File.Delete(folder.File("data_batch_3.bin"));
        File.Delete(folder.File("test_batch.bin"));
        var e = Assert.Throws<DataException>(() => Cifar10.ReadRaw(folder.Path));
        Assert.Equal(folder.Path, e.Path);
        Assert.Contains("missing CIFAR-10 file(s): data_batch_3.bin, test_batch.bin", e.Message);

        var viaCatalog = Assert.Throws<DatasetNotFoundException>(() =>
            DatasetCatalog.LoadClassification("cifar10", new DataOptions { DataDir = folder.Path, UseCache = false }));
        Assert.Contains("missing data_batch_3.bin, test_batch.bin", viaCatalog.Message);
        Assert.Contains("widevalley data download cifar10 --to DIR", viaCatalog.Message);
    }

    [Fact]
    public void ArchiveLayoutSubfolderIsFound()
    {
        using var folder = new TempDir();
        WriteCifarFolder(folder.File("cifar-10-batches-bin"));
        Assert.Equal(folder.File("cifar-10-batches-bin"), DatasetCatalog.ResolveFolder("cifar10", folder.Path, root: null));
    }

    [Fact]
    public void NoPreprocessingIsPlainPixelScaling()
    {
        using var folder = new TempDir();
        var (train, _) = WriteCifarFolder(folder.Path);
        var options = new DataOptions { DataDir = folder.Path, CifarPreprocessing = new() { Mode = CifarPreprocessing.None } };
        using var data = DatasetCatalog.LoadClassification("cifar10", options);
        Assert.Equal(train.SelectMany(r => r[1..]).Select(b => b / 255f).ToArray(), data.Train.Inputs.data<float>().ToArray());
        Assert.Equal([3L, 32L, 32L], data.SampleShape);

        using var standard = DatasetCatalog.LoadClassification("cifar10", options with { Scaling = PixelScaling.Standard });
        using var scope = NewDisposeScope();
        var (std, mean) = standard.Train.Inputs.to(ScalarType.Float64).std_mean([0L, 2L, 3L]);
        Assert.All(mean.data<double>().ToArray(), m => Assert.Equal(0, m, 1e-6));
        Assert.All(std.data<double>().ToArray(), s => Assert.Equal(1, s, 1e-6));
    }

    [Fact]
    public void StandardScalingCannotBeCombinedWithContrastNormalisation()
    {
        using var folder = new TempDir();
        WriteCifarFolder(folder.Path);
        var e = Assert.Throws<ArgumentException>(() => DatasetCatalog.LoadClassification("cifar10",
            new DataOptions { DataDir = folder.Path, Scaling = PixelScaling.Standard, UseCache = false }));
        Assert.Contains("cannot be combined", e.Message);
        Assert.Throws<ArgumentException>(() => DatasetCatalog.LoadClassification("cifar10",
            new DataOptions { DataDir = folder.Path, CifarPreprocessing = new() { Mode = "whiten" } }));
    }

    static bool Same(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && (a == b).all().item<bool>();
    }

    [Fact]
    public void ContrastNormalisedInputsAreCachedAndACorruptCacheIsRecomputed()
    {
        using var folder = new TempDir();
        using var cache = new TempDir();
        WriteCifarFolder(folder.Path);
        var messages = new List<string>();
        var options = new DataOptions
        {
            DataDir = folder.Path, CacheDir = cache.Path, Log = messages.Add,
            CifarPreprocessing = new() { Mode = CifarPreprocessing.Gcn },
        };

        using var first = DatasetCatalog.LoadClassification("cifar10", options);
        using (var scope = NewDisposeScope())
        {
            var flat = first.Train.Inputs.reshape(13, -1).to(ScalarType.Float64);
            var (std, mean) = flat.std_mean([1L]);
            Assert.All(mean.data<double>().ToArray(), m => Assert.Equal(0, m, 1e-6));
            Assert.All(std.data<double>().ToArray(), s => Assert.Equal(1, s, 1e-5));
        }
        Assert.Contains("global contrast normalisation", first.Preprocessing);
        Assert.Contains(messages, m => m.Contains("cached in"));
        var cacheFile = Assert.Single(Directory.GetFiles(cache.Path));
        Assert.StartsWith("cifar10-gcn-", Path.GetFileName(cacheFile));

        messages.Clear();
        using var second = DatasetCatalog.LoadClassification("cifar10", options);
        Assert.Contains(messages, m => m.Contains("read from cache"));
        Assert.True(Same(first.Train.Inputs, second.Train.Inputs) && Same(first.Test.Inputs, second.Test.Inputs));
        Assert.True(Same(first.Train.Labels, second.Train.Labels));

        File.WriteAllBytes(cacheFile, File.ReadAllBytes(cacheFile)[..^100]);
        messages.Clear();
        using var third = DatasetCatalog.LoadClassification("cifar10", options);
        Assert.Contains(messages, m => m.Contains(cacheFile) && m.Contains("corrupt") && m.Contains("recomputing"));
        Assert.True(Same(first.Train.Inputs, third.Train.Inputs) && Same(first.Test.Inputs, third.Test.Inputs));
        Assert.Contains(messages, m => m.Contains("cached in"));

        messages.Clear();
        using var fourth = DatasetCatalog.LoadClassification("cifar10", options);
        Assert.Contains(messages, m => m.Contains("read from cache"));
        Assert.Empty(cache.Leftovers());

        // A different validation split is a different cache entry.
        using var split = DatasetCatalog.LoadClassification("cifar10", options with { ValidationSize = 2 });
        Assert.Equal(2, Directory.GetFiles(cache.Path).Length);
        Assert.Equal(11, split.Train.Count);
    }

    [Fact]
    public void ChangedInputFilesAreNotServedFromCache()
    {
        using var folder = new TempDir();
        using var cache = new TempDir();
        WriteCifarFolder(folder.Path);
        var messages = new List<string>();
        var options = new DataOptions
        {
            DataDir = folder.Path, CacheDir = cache.Path, Log = messages.Add,
            CifarPreprocessing = new() { Mode = CifarPreprocessing.Gcn },
        };
        using (DatasetCatalog.LoadClassification("cifar10", options)) { }
        var bytes = File.ReadAllBytes(folder.File("test_batch.bin"));
        bytes[100] ^= 0xFF;
        File.WriteAllBytes(folder.File("test_batch.bin"), bytes);
        messages.Clear();
        using (DatasetCatalog.LoadClassification("cifar10", options)) { }
        Assert.DoesNotContain(messages, m => m.Contains("read from cache"));
    }

    /// <summary>
    /// The paper's preprocessing end to end, on 13 training images of dimension 3072 (one eigendecomposition of a
    /// 3072 x 3072 matrix, a few seconds). Whitening fitted on the training part maps its centred rows to an
    /// orthonormal frame, so the Gram matrix G = X Xᵀ / (n − 1) of the output rows is an orthogonal projection
    /// (G² = G) whose trace is the rank of the centred training images (distinct images − 1), up to the ε-bias
    /// 2ε/√λ ~ 1e-6 (λ ~ 10² here) and float32 rounding; a transform fitted on any other set would not do that.
    /// Equal input images give equal outputs in train, validation and test, so one transform is applied everywhere.
    /// </summary>
    [Fact]
    public void GcnZcaFitsOnTheTrainingPartAndAppliesTheSameTransformEverywhere()
    {
        using var folder = new TempDir();
        using var cache = new TempDir();
        WriteCifarFolder(folder.Path);
        var messages = new List<string>();
        var options = new DataOptions { DataDir = folder.Path, CacheDir = cache.Path, Log = messages.Add, ValidationSize = 3, Seed = 5 };
        using var data = DatasetCatalog.LoadClassification("cifar10", options);
        Assert.Contains("ZCA whitening (eps 1E-05) fitted on the 10 training images", data.Preprocessing);
        using var scope = NewDisposeScope();

        var train = data.Train.Inputs.reshape(10, -1).to(ScalarType.Float64);
        var gram = train.matmul(train.t()) / 9;
        var idempotence = (gram.matmul(gram) - gram).abs().max().item<double>();
        Assert.True(idempotence < 1e-4, $"max |G^2 - G| = {idempotence:E3}");
        Assert.True(gram.sum([1L]).abs().max().item<double>() < 1e-4, "whitened training rows must be centred");

        var (rawTrain, rawTest) = Cifar10.ReadRaw(folder.Path);
        using (rawTrain)
        using (rawTest)
        {
            var (rest, held) = rawTrain.SplitOff(3, 5);
            using (rest)
            using (held)
            {
                var distinct = Enumerable.Range(0, 10).Count(t => !Enumerable.Range(0, t).Any(u => Same(rest.Inputs[t], rest.Inputs[u])));
                Assert.Equal(distinct - 1, gram.trace().item<double>(), 1e-3);

                // Equal raw images on both sides of the split, and between test and train, get equal outputs.
                var pairs = 0;
                for (var v = 0; v < 3; v++)
                    for (var t = 0; t < 10; t++)
                        if (Same(held.Inputs[v], rest.Inputs[t]))
                        {
                            pairs++;
                            Assert.True((data.Validation!.Inputs[v] - data.Train.Inputs[t]).abs().max().item<float>() < 1e-5);
                        }
                Assert.True(pairs >= 1, "the seed should put at least one duplicated image on each side of the split");
                var testTwin = Enumerable.Range(0, 10).Where(t => Same(rawTest.Inputs[0], rest.Inputs[t])).ToList();
                var twin = testTwin.Count > 0
                    ? data.Train.Inputs[testTwin[0]]
                    : data.Validation!.Inputs[Enumerable.Range(0, 3).Single(v => Same(rawTest.Inputs[0], held.Inputs[v]))];
                Assert.True((data.Test.Inputs[0] - twin).abs().max().item<float>() < 1e-5);
            }
        }

        messages.Clear();
        using var again = DatasetCatalog.LoadClassification("cifar10", options);
        Assert.Contains(messages, m => m.Contains("read from cache"));
        Assert.True(Same(data.Validation!.Inputs, again.Validation!.Inputs));
    }
}
