using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

using WideValley.Tests.Support;

namespace WideValley.Tests.Data;

/// <summary>Folder resolution, options and the IDX image loader, on small synthetic MNIST-format folders.</summary>
public class DatasetCatalogTests
{
    /// <summary>Pixel (r, c) of image i of a synthetic set: distinct per image, and pixel 0 encodes the index i.</summary>
    static byte Pixel(int image, int row, int column) =>
        row == 0 && column == 0 ? (byte)image : (byte)((image * 7 + row * 28 + column) % 256);

    internal static byte[] Images(int count, int rows = 28, int columns = 28)
    {
        var data = new byte[count * rows * columns];
        for (var i = 0; i < count; i++)
            for (var r = 0; r < rows; r++)
                for (var c = 0; c < columns; c++)
                    data[(i * rows + r) * columns + c] = Pixel(i, r, c);
        return IdxTests.IdxBytes(0x08, [count, rows, columns], data);
    }

    internal static byte[] Labels(int count, Func<int, byte>? label = null) =>
        IdxTests.IdxBytes(0x08, [count], Enumerable.Range(0, count).Select(i => label?.Invoke(i) ?? (byte)(i % 10)).ToArray());

    /// <summary>A complete MNIST-format folder with <paramref name="train"/> and <paramref name="test"/> images.</summary>
    internal static void WriteMnistFolder(TempDir folder, int train, int test, bool alternativeSpellingGzip = false)
    {
        string Name(string stem, string alternative) => alternativeSpellingGzip ? alternative + ".gz" : stem;
        byte[] Content(byte[] bytes) => alternativeSpellingGzip ? TempDir.Gzip(bytes) : bytes;
        folder.Write(Name("train-images-idx3-ubyte", "train-images.idx3-ubyte"), Content(Images(train)));
        folder.Write(Name("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"), Content(Labels(train)));
        folder.Write(Name("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"), Content(Images(test)));
        folder.Write(Name("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"), Content(Labels(test)));
    }

    static float[] ExpectedPixels(int count, Func<byte, float> scale)
    {
        var values = new float[count * 784];
        for (var i = 0; i < count; i++)
            for (var p = 0; p < 784; p++)
                values[i * 784 + p] = scale(Pixel(i, p / 28, p % 28));
        return values;
    }

    [Fact]
    public void LoadsSyntheticMnistWithUnitScaling()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 12, test: 5);
        using var data = DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path });

        Assert.Equal("mnist", data.Name);
        Assert.Equal(folder.Path, data.Source);
        Assert.Contains("x / 255", data.Preprocessing);
        Assert.Null(data.Validation);
        Assert.Equal(10, data.NumClasses);
        Assert.Equal([1L, 28L, 28L], data.SampleShape);
        Assert.Equal([12L, 1L, 28L, 28L], data.Train.Inputs.shape);
        Assert.Equal(ScalarType.Float32, data.Train.Inputs.dtype);
        Assert.Equal(ExpectedPixels(12, b => b / 255f), data.Train.Inputs.data<float>().ToArray());
        Assert.Equal(ExpectedPixels(5, b => b / 255f), data.Test.Inputs.data<float>().ToArray());
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (long)(i % 10)).ToArray(), data.Train.Labels.data<long>().ToArray());
        Assert.Equal(ScalarType.Int64, data.Test.Labels.dtype);
    }

    [Fact]
    public void AcceptsLeCunSpellingAndGzip()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 3, test: 2, alternativeSpellingGzip: true);
        using var data = DatasetCatalog.LoadClassification("MNIST", new DataOptions { DataDir = folder.Path, Scaling = PixelScaling.Raw });
        Assert.Equal(ExpectedPixels(3, b => b), data.Train.Inputs.data<float>().ToArray());
        Assert.Contains("raw pixel values", data.Preprocessing);
    }

    [Fact]
    public void StandardScalingUsesTrainingStatisticsForEverySet()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 9, test: 4);
        using var data = DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path, Scaling = PixelScaling.Standard });

        var trainPixels = ExpectedPixels(9, b => b).Select(v => (double)v).ToArray();
        var mean = trainPixels.Average();
        var std = Math.Sqrt(trainPixels.Sum(v => (v - mean) * (v - mean)) / (trainPixels.Length - 1));
        var expectedTest = ExpectedPixels(4, b => (float)((b - mean) / std));
        var actualTest = data.Test.Inputs.data<float>().ToArray();
        for (var i = 0; i < expectedTest.Length; i++) Assert.Equal(expectedTest[i], actualTest[i], 1e-5f);

        using var scope = NewDisposeScope();
        var (trainStd, trainMean) = data.Train.Inputs.to(ScalarType.Float64).std_mean();
        Assert.Equal(0.0, trainMean.item<double>(), 1e-6);
        Assert.Equal(1.0, trainStd.item<double>(), 1e-6);
        Assert.Contains("standardised", data.Preprocessing);
    }

    static long[] ImageIds(LabeledData set)
    {
        using var scope = NewDisposeScope();
        return set.Inputs.reshape(set.Count, -1).select(1, 0).round().to(ScalarType.Int64).data<long>().ToArray();
    }

    [Fact]
    public void ValidationIsCarvedFromTrainingThenTrainingIsTruncated()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 20, test: 3);
        var options = new DataOptions { DataDir = folder.Path, ValidationSize = 5, Seed = 3, Scaling = PixelScaling.Raw };

        using var full = DatasetCatalog.LoadClassification("mnist", options);
        var trainIds = ImageIds(full.Train);
        var validationIds = ImageIds(full.Validation!);
        Assert.Equal(15, trainIds.Length);
        Assert.Equal(5, validationIds.Length);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), trainIds.Concat(validationIds).Order());
        Assert.Contains("5 training samples held out for validation (seed 3)", full.Preprocessing);
        // Labels travel with their images.
        Assert.Equal(validationIds.Select(i => i % 10), full.Validation!.Labels.data<long>().ToArray());

        using var again = DatasetCatalog.LoadClassification("mnist", options);
        Assert.Equal(validationIds, ImageIds(again.Validation!));
        using var otherSeed = DatasetCatalog.LoadClassification("mnist", options with { Seed = 4 });
        Assert.NotEqual(validationIds, ImageIds(otherSeed.Validation!));

        using var truncated = DatasetCatalog.LoadClassification("mnist", options with { MaxTrainSamples = 4 });
        Assert.Equal(trainIds[..4], ImageIds(truncated.Train));
        Assert.Equal(validationIds, ImageIds(truncated.Validation!));
        Assert.Equal(3, truncated.Test.Count);
        Assert.Contains("limited to its first 4 samples", truncated.Preprocessing);
    }

    [Fact]
    public void TruncatedRunsSeeTheSameStandardisedInputsAsFullRuns()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 10, test: 2);
        var options = new DataOptions { DataDir = folder.Path, Scaling = PixelScaling.Standard };
        using var full = DatasetCatalog.LoadClassification("mnist", options);
        using var truncated = DatasetCatalog.LoadClassification("mnist", options with { MaxTrainSamples = 3 });
        using var scope = NewDisposeScope();
        Assert.True((full.Train.Inputs.narrow(0, 0, 3) == truncated.Train.Inputs).all().item<bool>());
    }

    [Fact]
    public void CountMismatchNamesBothFiles()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 6, test: 2);
        var labels = folder.Write("train-labels-idx1-ubyte", Labels(5));
        var e = Assert.Throws<DataException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path }));
        Assert.Equal(labels, e.Path);
        Assert.Contains("holds 5 labels but train-images-idx3-ubyte holds 6 images", e.Message);
    }

    [Fact]
    public void WrongImageSizeIsNamed()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 2, test: 2);
        var images = folder.Write("t10k-images-idx3-ubyte", Images(2, rows: 27));
        var e = Assert.Throws<DataException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path }));
        Assert.Equal(images, e.Path);
        Assert.Contains("expected 28x28", e.Message);
        Assert.Contains("2 x 27 x 28", e.Message);
    }

    [Fact]
    public void FirstOutOfRangeLabelIsNamedWithItsIndex()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 12, test: 2);
        var labels = folder.Write("train-labels-idx1-ubyte", Labels(12, i => i switch { 7 => 10, 9 => 200, _ => 1 }));
        var e = Assert.Throws<DataException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path }));
        Assert.Equal(labels, e.Path);
        Assert.Contains("label 10 at index 7 is out of range 0..9", e.Message);
    }

    [Fact]
    public void NonByteLabelsAreRejected()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 2, test: 2);
        folder.Write("t10k-labels-idx1-ubyte", IdxTests.IdxBytes(0x0C, [2], new byte[8]));
        var e = Assert.Throws<DataException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path }));
        Assert.Contains("expected a 1-D array of unsigned-byte labels, found Int32", e.Message);
    }

    [Fact]
    public void MissingDataSaysWhereItLookedWhatItExpectsAndWhatToDo()
    {
        using var folder = new TempDir();
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("mnist", folder.Path, root: null));
        Assert.Equal(folder.Path, e.Path);
        foreach (var expected in new[]
                 {
                     folder.Path, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte", ".gz", "--data-dir", "WIDEVALLEY_DATA", "widevalley data download mnist --to DIR",
                 })
            Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("apt-get", e.Message);

        e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("fashion-mnist", folder.Path, root: null));
        Assert.Contains("apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains("widevalley data download fashion-mnist --to DIR", e.Message);
    }

    [Fact]
    public void PartialFolderListsWhatIsMissing()
    {
        using var folder = new TempDir();
        WriteMnistFolder(folder, train: 2, test: 2);
        File.Delete(folder.File("t10k-labels-idx1-ubyte"));
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("mnist", folder.Path, root: null));
        Assert.Contains("missing t10k-labels-idx1-ubyte", e.Message);
        Assert.DoesNotContain("missing train-images", e.Message);
    }

    [Fact]
    public void MnistWithoutAnyFolderSaysSo()
    {
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("mnist", null, root: null));
        Assert.Contains("$WIDEVALLEY_DATA is not set", e.Message);
        Assert.Contains("mnist has no system-wide default folder", e.Message);
    }

    [Fact]
    public void UserFolderComesAfterTheEnvironmentAndBeforeTheSystemFolder()
    {
        using var user = new TempDir();
        using var root = new TempDir();
        Assert.Equal("/usr/share/datasets/fashion-mnist", DatasetCatalog.ResolveFolder("fashion-mnist", null, root.Path, user.Path));
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("mnist", null, root.Path, user.Path));
        Assert.Contains($"{user.File("mnist")} (from user data folder): folder does not exist", e.Message);

        using (var staged = new TempDir())
        {
            WriteMnistFolder(staged, 2, 2);
            Directory.Move(staged.Path, user.File("fashion-mnist"));
            Directory.CreateDirectory(staged.Path);
        }
        Assert.Equal(user.File("fashion-mnist"), DatasetCatalog.ResolveFolder("fashion-mnist", null, root.Path, user.Path));

        using (var staged = new TempDir())
        {
            WriteMnistFolder(staged, 2, 2);
            Directory.Move(staged.Path, root.File("fashion-mnist"));
            Directory.CreateDirectory(staged.Path);
        }
        Assert.Equal(root.File("fashion-mnist"), DatasetCatalog.ResolveFolder("fashion-mnist", null, root.Path, user.Path));

        Assert.EndsWith(Path.Combine("widevalley", "cifar10"), DatasetCatalog.UserFolder("CIFAR10"));
    }

    [Fact]
    public void EnvironmentRootIsUsedAndExplicitFolderWins()
    {
        using var root = new TempDir();
        using var mnist = new TempDir();
        WriteMnistFolder(mnist, 2, 2);
        Directory.Move(mnist.Path, root.File("mnist"));
        Directory.CreateDirectory(mnist.Path); // so that dispose has something to delete
        Assert.Equal(root.File("mnist"), DatasetCatalog.ResolveFolder("mnist", null, root.Path));

        using var explicitFolder = new TempDir();
        WriteMnistFolder(explicitFolder, 2, 2);
        Assert.Equal(explicitFolder.Path, DatasetCatalog.ResolveFolder("mnist", explicitFolder.Path, root.Path));
    }

    [Fact]
    public void EnvironmentRootWithoutTheDatasetFallsBackToTheDefault()
    {
        using var root = new TempDir();
        Assert.Equal("/usr/share/datasets/fashion-mnist", DatasetCatalog.ResolveFolder("fashion-mnist", null, root.Path));
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("mnist", null, root.Path));
        Assert.Contains($"{root.File("mnist")} (from $WIDEVALLEY_DATA): folder does not exist", e.Message);
    }

    /// <summary>A complete synthetic MNIST-format folder at <paramref name="path"/> (which must not exist yet).</summary>
    internal static void WriteMnistFolderAt(string path)
    {
        using var staged = new TempDir();
        WriteMnistFolder(staged, 2, 2);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Directory.Move(staged.Path, path);
        Directory.CreateDirectory(staged.Path); // so that dispose has something to delete
    }

    [Fact]
    public void IncompleteFoldersAreSkippedAndNamedNotReadOrShadowing()
    {
        using var places = new TempDir();
        var search = new DatasetCatalog.SearchPlaces(places.File("env"), places.File("user"), places.File("system"));
        // $WIDEVALLEY_DATA/fashion-mnist is empty and the user folder holds three of the four files (an interrupted copy).
        Directory.CreateDirectory(Path.Combine(search.EnvironmentRoot!, "fashion-mnist"));
        WriteMnistFolderAt(Path.Combine(search.UserDataRoot!, "fashion-mnist"));
        File.Delete(Path.Combine(search.UserDataRoot!, "fashion-mnist", "t10k-labels-idx1-ubyte"));

        // Nothing complete: the error names both incomplete folders and what each lacks.
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.Locate("fashion-mnist", null, search));
        Assert.Contains($"{places.File("env/fashion-mnist")} (from $WIDEVALLEY_DATA): incomplete, missing train-images-idx3-ubyte", e.Message);
        Assert.Contains($"{places.File("user/fashion-mnist")} (from user data folder): incomplete, missing t10k-labels-idx1-ubyte", e.Message);
        Assert.Contains("Incomplete folders were skipped", e.Message);
        Assert.Equal(2, e.IncompleteFolders.Count);

        // A complete set further down the search order is found, and the skipped folders are reported.
        WriteMnistFolderAt(Path.Combine(search.SystemRoot!, "fashion-mnist"));
        var found = DatasetCatalog.Locate("fashion-mnist", null, search);
        Assert.Equal(places.File("system/fashion-mnist"), found.Folder);
        Assert.Equal("default folder", found.Origin);
        Assert.Equal(2, found.SkippedFolders.Count);
        Assert.False(DatasetCatalog.IsComplete("fashion-mnist", places.File("user/fashion-mnist")));
        Assert.True(DatasetCatalog.IsComplete("fashion-mnist", found.Folder));

        // The process-wide entry points see the same places while overridden, and log what they skipped.
        using (DatasetCatalog.OverrideSearchPlaces(search))
        {
            Assert.Equal(found.Folder, DatasetCatalog.ResolveFolder("fashion-mnist", null));
            Assert.Equal(places.File("user/fashion-mnist"), DatasetCatalog.UserFolder("fashion-mnist"));
            var log = new List<string>();
            using var data = DatasetCatalog.LoadClassification("fashion-mnist", new DataOptions { Log = log.Add });
            Assert.Equal(found.Folder, data.Source);
            Assert.Contains(log, m => m.Contains("skipped") && m.Contains(places.File("env/fashion-mnist")));
        }
        Assert.NotEqual(places.File("user/fashion-mnist"), DatasetCatalog.UserFolder("fashion-mnist"));
    }

    [Fact]
    public void AnExplicitIncompleteFolderIsAnErrorNotASilentFallback()
    {
        using var folder = new TempDir();
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("fashion-mnist", folder.Path, root: null));
        Assert.Equal(folder.Path, e.Path);
        Assert.Contains("missing train-images-idx3-ubyte", e.Message);
    }

    [Fact]
    public void ParentFolderGivenAsDataDirGetsAHint()
    {
        using var root = new TempDir();
        using var mnist = new TempDir();
        WriteMnistFolder(mnist, 2, 2);
        Directory.Move(mnist.Path, root.File("mnist"));
        Directory.CreateDirectory(mnist.Path);
        var e = Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("mnist", root.Path, null));
        Assert.Contains($"note: {root.File("mnist")} has them", e.Message);
    }

    [Fact]
    public void UnknownNamesAndBadOptionsAreArgumentErrors()
    {
        var e = Assert.Throws<ArgumentException>(() => DatasetCatalog.LoadClassification("imagenet", new DataOptions()));
        Assert.Contains("fashion-mnist, mnist, cifar10", e.Message);
        e = Assert.Throws<ArgumentException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { Scaling = "zscore" }));
        Assert.Contains("unit, standard, raw", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { ValidationSize = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => DatasetCatalog.LoadClassification("mnist", new DataOptions { MaxTrainSamples = 0 }));

        using var folder = new TempDir();
        WriteMnistFolder(folder, 4, 2);
        var tooMany = Assert.Throws<ArgumentOutOfRangeException>(() =>
            DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = folder.Path, ValidationSize = 4 }));
        Assert.Contains("smaller than the 4 training samples", tooMany.Message);
    }

    [Fact]
    public void EveryNameHasADescriptionAndExpectedFiles()
    {
        Assert.Equal(["fashion-mnist", "mnist", "cifar10"], DatasetCatalog.Names);
        foreach (var name in DatasetCatalog.Names)
        {
            Assert.Contains("10 classes", DatasetCatalog.Describe(name));
            Assert.NotEmpty(DatasetCatalog.ExpectedFiles(name));
        }
        Assert.Equal(6, DatasetCatalog.ExpectedFiles("cifar10").Count);
        Assert.Null(DatasetCatalog.DefaultFolder("cifar10"));
    }

    [Theory]
    [InlineData(null, "/usr/share/datasets")]
    [InlineData("none", null)]
    [InlineData(" NONE ", null)]
    [InlineData("", null)]
    [InlineData("/srv/datasets", "/srv/datasets")]
    public void SystemDataVariableReplacesOrRemovesTheDebianRoot(string? value, string? expected) =>
        Assert.Equal(expected, DatasetCatalog.SystemRootFrom(value));

    [Fact]
    public void WithoutASystemRootFashionMnistIsNotFoundAndTheErrorSaysHowToInstallIt()
    {
        using var places = new TempDir();
        var e = Assert.Throws<DatasetNotFoundException>(() =>
            DatasetCatalog.Locate("fashion-mnist", null, new DatasetCatalog.SearchPlaces(null, places.File("user"), null)));
        Assert.Contains("sudo apt-get install dataset-fashion-mnist", e.Message);
        Assert.DoesNotContain("(from default folder)", e.Message);
    }
}
