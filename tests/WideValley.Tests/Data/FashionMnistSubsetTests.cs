using WideValley.Cli.DemoData;
using WideValley.Data;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Data;

/// <summary>
/// The Fashion-MNIST subset built into the CLI for the demo, checked against the full set (Debian's
/// dataset-fashion-mnist, which CI installs): it must be exactly the selection tools/make-fashion-mnist-subset.py
/// documents.
/// </summary>
public class FashionMnistSubsetTests
{
    /// <summary>The first <paramref name="perClass"/> indices of each class in file order, re-derived independently of the script.</summary>
    static List<int> FirstOfEachClass(byte[] labels, int perClass)
    {
        var taken = new int[10];
        var chosen = new List<int>();
        for (var i = 0; i < labels.Length; i++)
            if (taken[labels[i]] < perClass)
            {
                taken[labels[i]]++;
                chosen.Add(i);
            }
        return chosen;
    }

    [Theory]
    [InlineData("train", FashionMnistSubset.TrainPerClass, FashionMnistSubset.TrainImages)]
    [InlineData("t10k", FashionMnistSubset.TestPerClass, FashionMnistSubset.TestImages)]
    public void EmbeddedSubsetIsTheFirstImagesOfEachClassOfTheFullSet(string prefix, int perClass, int count)
    {
        TestMachine.RequireFullFashionMnist();
        using var folder = new TempDir();
        var subsetFolder = FashionMnistSubset.Materialize(folder.File("subset"));
        var full = FashionMnistFixture.Folder;
        var fullImages = Idx.Read(Path.Combine(full, $"{prefix}-images-idx3-ubyte.gz"));
        var fullLabels = Idx.Read(Path.Combine(full, $"{prefix}-labels-idx1-ubyte.gz"));
        var images = Idx.Read(Path.Combine(subsetFolder, $"{prefix}-images-idx3-ubyte.gz"));
        var labels = Idx.Read(Path.Combine(subsetFolder, $"{prefix}-labels-idx1-ubyte.gz"));

        var chosen = FirstOfEachClass(fullLabels.Data, perClass);
        Assert.Equal(count, chosen.Count);
        Assert.Equal([count, 28L, 28L], images.Shape);
        Assert.Equal([(long)count], labels.Shape);
        Assert.Equal(chosen.Select(i => fullLabels.Data[i]).ToArray(), labels.Data);
        var expectedPixels = chosen.SelectMany(i => fullImages.Data.AsSpan(i * 784, 784).ToArray()).ToArray();
        Assert.True(expectedPixels.AsSpan().SequenceEqual(images.Data), $"{prefix} images differ from the full set's selection");
    }

    [Fact]
    public void MaterializedFolderLoadsAsABalancedFashionMnistAndCarriesItsNotice()
    {
        using var folder = new TempDir();
        var subsetFolder = FashionMnistSubset.Materialize(folder.File("subset"));
        using var data = DatasetCatalog.LoadClassification("fashion-mnist", new DataOptions { DataDir = subsetFolder });
        Assert.Equal(FashionMnistSubset.TrainImages, data.Train.Count);
        Assert.Equal(FashionMnistSubset.TestImages, data.Test.Count);
        using (NewDisposeScope())
        {
            Assert.Equal(Enumerable.Repeat((long)FashionMnistSubset.TrainPerClass, 10), data.Train.Labels.bincount(null).data<long>().ToArray());
            Assert.Equal(Enumerable.Repeat((long)FashionMnistSubset.TestPerClass, 10), data.Test.Labels.bincount(null).data<long>().ToArray());
        }
        var notice = File.ReadAllText(Path.Combine(subsetFolder, FashionMnistSubset.NoticeFile));
        Assert.Equal(FashionMnistSubset.Notice(), notice);
        Assert.Contains("MIT", notice);
        Assert.Contains("Copyright © [2017] Zalando SE", notice);
        Assert.Contains("tools/make-fashion-mnist-subset.py", notice);
    }

    [Fact]
    public void DamagedOrMissingFilesAreRewrittenFromTheEmbeddedCopy()
    {
        using var folder = new TempDir();
        var subsetFolder = FashionMnistSubset.Materialize(folder.File("subset"));
        Assert.True(FashionMnistSubset.Verified(subsetFolder));
        var images = Path.Combine(subsetFolder, "t10k-images-idx3-ubyte.gz");
        var original = File.ReadAllBytes(images);
        File.WriteAllBytes(images, TempDir.Gzip([0, 0, 8, 3, 1, 2, 3]));
        File.Delete(Path.Combine(subsetFolder, "train-labels-idx1-ubyte.gz"));
        Assert.False(FashionMnistSubset.Verified(subsetFolder));

        var log = new List<string>();
        Assert.Equal(subsetFolder, FashionMnistSubset.Materialize(subsetFolder, log.Add));
        Assert.Single(log);
        Assert.True(FashionMnistSubset.Verified(subsetFolder));
        Assert.Equal(original, File.ReadAllBytes(images));
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path, ".subset.*"));

        // A verified folder is used as it is.
        log.Clear();
        FashionMnistSubset.Materialize(subsetFolder, log.Add);
        Assert.Empty(log);
    }

    [Fact]
    public void RecordedChecksumsAreThoseOfTheCommittedFiles()
    {
        // The committed files (what the generator wrote) and the embedded resources (what the build shipped) agree with
        // the MD5s in the code, so a regenerated file that was not re-recorded fails here, not in a user's demo.
        var committed = Path.Combine(RepositoryRoot(), "src", "WideValley.Cli", "DemoData", "fashion-mnist-subset");
        foreach (var (name, md5) in FashionMnistSubset.Files)
            Assert.Equal(md5, DataFiles.ContentMd5(Path.Combine(committed, name)));
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "WideValley.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no WideValley.slnx above {AppContext.BaseDirectory}");
    }
}
