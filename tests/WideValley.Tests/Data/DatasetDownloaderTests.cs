using System.Collections.Concurrent;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using WideValley.Data;
using static WideValley.Data.DatasetDownloader;

using WideValley.Tests.Support;

namespace WideValley.Tests.Data;

/// <summary>An HTTP server on 127.0.0.1 serving fixed bytes per path (404 otherwise) and counting requests.</summary>
public sealed class LocalHttpServer : IDisposable
{
    readonly HttpListener _listener = new();
    readonly ConcurrentDictionary<string, byte[]> _files = new();
    readonly Task _loop;

    public Uri Root { get; }
    public ConcurrentDictionary<string, int> Requests { get; } = new();

    public LocalHttpServer()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Root = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(Root.AbsoluteUri);
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    public void Serve(string path, byte[] content) => _files[path] = content;

    public int RequestsFor(string path) => Requests.TryGetValue(path, out var n) ? n : 0;

    async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            var path = context.Request.Url!.AbsolutePath;
            Requests.AddOrUpdate(path, 1, (_, n) => n + 1);
            using var response = context.Response;
            if (_files.TryGetValue(path, out var content))
            {
                response.StatusCode = 200;
                response.ContentLength64 = content.Length;
                await response.OutputStream.WriteAsync(content);
            }
            else response.StatusCode = 404;
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}

public class DatasetDownloaderTests
{
    static string Md5(byte[] bytes) => Convert.ToHexStringLower(MD5.HashData(bytes));

    static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    static DownloadSpec Spec(params (string Name, byte[] Content)[] files) =>
        new("test-set", new Uri("http://unused.invalid/"), files.Select(f => new RemoteFile(f.Name, Md5(f.Content))).ToList());

    [Fact]
    public void DownloadsVerifiesAndSkipsFilesAlreadyPresent()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var a = RandomBytes(10_000, 1);
        var b = RandomBytes(300_000, 2);
        server.Serve("/a.gz", a);
        server.Serve("/b.gz", b);
        var log = new List<string>();

        Download(Spec(("a.gz", a), ("b.gz", b)), target.Path, server.Root, log.Add);
        Assert.Equal(a, File.ReadAllBytes(target.File("a.gz")));
        Assert.Equal(b, File.ReadAllBytes(target.File("b.gz")));
        Assert.Contains(log, m => m.Contains("b.gz") && m.Contains("300000 bytes") && m.Contains("MD5 verified"));
        Assert.Empty(target.Leftovers());

        log.Clear();
        Download(Spec(("a.gz", a), ("b.gz", b)), target.Path, server.Root, log.Add);
        Assert.Equal(1, server.RequestsFor("/a.gz"));
        Assert.Equal(1, server.RequestsFor("/b.gz"));
        Assert.Equal(2, log.Count(m => m.Contains("already present with the expected MD5; skipped")));
    }

    [Fact]
    public void ChecksumMismatchKeepsWhatWasThereAndLeavesNoPartialFile()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var good = RandomBytes(5_000, 3);
        var expectedB = RandomBytes(20_000, 4);
        var corruptedB = (byte[])expectedB.Clone();
        corruptedB[12_345] ^= 0x10;
        server.Serve("/good.bin", good);
        server.Serve("/b.bin", corruptedB);
        var goodPath = target.Write("good.bin", good);
        var oldB = target.Write("b.bin", "an older, different file"u8.ToArray());
        var goodTime = File.GetLastWriteTimeUtc(goodPath);

        var e = Assert.Throws<DataException>(() => Download(Spec(("good.bin", good), ("b.bin", expectedB)), target.Path, server.Root, null));
        Assert.Equal(new Uri(server.Root, "b.bin").ToString(), e.Path);
        Assert.Contains($"expected MD5 {Md5(expectedB)}, got {Md5(corruptedB)}", e.Message);
        Assert.Contains("20000 bytes downloaded", e.Message);
        Assert.Contains(oldB, e.Message);

        Assert.Equal(0, server.RequestsFor("/good.bin"));
        Assert.Equal(good, File.ReadAllBytes(goodPath));
        Assert.Equal(goodTime, File.GetLastWriteTimeUtc(goodPath));
        Assert.Equal("an older, different file"u8.ToArray(), File.ReadAllBytes(oldB));
        Assert.Empty(target.Leftovers());
    }

    /// <summary>Entries of <paramref name="parent"/> whose names start with ".NAME." (staging folders or files of NAME).</summary>
    static string[] StagingLeftovers(string parent, string name) =>
        Directory.EnumerateFileSystemEntries(parent, $".{name}.*").ToArray();

    [Fact]
    public void FailedDownloadCreatesNoFolderAndLeavesNoStagingBehind()
    {
        using var server = new LocalHttpServer();
        using var parent = new TempDir();
        var good = RandomBytes(5_000, 5);
        var expected = RandomBytes(8_000, 6);
        server.Serve("/a.gz", good);
        server.Serve("/b.gz", RandomBytes(8_000, 7));
        var target = parent.File("fashion-mnist");

        var e = Assert.Throws<DataException>(() => Download(Spec(("a.gz", good), ("b.gz", expected)), target, server.Root, null));
        Assert.Contains("checksum mismatch", e.Message);
        Assert.Equal(1, server.RequestsFor("/a.gz"));
        Assert.False(Directory.Exists(target), "a failed download must not create its target folder");
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent.Path));

        // Once every file verifies, the folder appears whole.
        server.Serve("/b.gz", expected);
        Download(Spec(("a.gz", good), ("b.gz", expected)), target, server.Root, null);
        Assert.Equal(good, File.ReadAllBytes(Path.Combine(target, "a.gz")));
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(target, "b.gz")));
        Assert.Empty(StagingLeftovers(parent.Path, "fashion-mnist"));
    }

    /// <summary>
    /// The sequence of issue 15: a download into the user data folder fails (nothing may be left there to shadow
    /// anything), then the complete set appears in a later folder of the search order (the Debian package is
    /// installed): the catalogue finds it. An empty user folder left by an older version must not shadow it either.
    /// </summary>
    [Fact]
    public void AfterAFailedDownloadACompleteSetLaterInTheSearchOrderIsFound()
    {
        using var server = new LocalHttpServer();
        using var places = new TempDir();
        var search = new DatasetCatalog.SearchPlaces(null, places.File("user"), places.File("system"));
        using var _ = DatasetCatalog.OverrideSearchPlaces(search);
        var userFolder = DatasetCatalog.UserFolder("fashion-mnist");
        Assert.Equal(places.File("user/fashion-mnist"), userFolder);

        // The server has none of the files: HTTP 404 on the first one.
        var e = Assert.Throws<DataException>(() => DatasetDownloader.Download("fashion-mnist", userFolder, server.Root));
        Assert.Contains("HTTP 404", e.Message);
        Assert.False(Directory.Exists(userFolder));
        Assert.Empty(StagingLeftovers(places.File("user"), "fashion-mnist"));
        Assert.Throws<DatasetNotFoundException>(() => DatasetCatalog.ResolveFolder("fashion-mnist", null));

        DatasetCatalogTests.WriteMnistFolderAt(places.File("system/fashion-mnist"));
        Assert.Equal(places.File("system/fashion-mnist"), DatasetCatalog.ResolveFolder("fashion-mnist", null));

        // What an older widevalley left after its failed download: an empty user folder. It is skipped, not read.
        Directory.CreateDirectory(userFolder);
        var location = DatasetCatalog.Locate("fashion-mnist", null);
        Assert.Equal(places.File("system/fashion-mnist"), location.Folder);
        Assert.Contains(location.SkippedFolders, s => s.StartsWith(userFolder, StringComparison.Ordinal) && s.Contains("incomplete"));
    }

    [Fact]
    public void StagedFolderFillsAnExistingFolderWithoutLosingItsOtherFiles()
    {
        using var parent = new TempDir();
        var target = parent.File("set");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "keep.txt"), "mine");
        File.WriteAllText(Path.Combine(target, "replace.txt"), "old");

        Assert.Throws<InvalidOperationException>(() => StagedFolder.Fill(target, staging =>
        {
            File.WriteAllText(Path.Combine(staging, "replace.txt"), "half");
            throw new InvalidOperationException("writer failed");
        }));
        Assert.Equal("old", File.ReadAllText(Path.Combine(target, "replace.txt")));
        Assert.Empty(StagingLeftovers(parent.Path, "set"));

        Assert.Equal(target, StagedFolder.Fill(target, staging =>
        {
            File.WriteAllText(Path.Combine(staging, "replace.txt"), "new");
            Directory.CreateDirectory(Path.Combine(staging, "sub"));
            File.WriteAllText(Path.Combine(staging, "sub", "x.txt"), "x");
        }));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(target, "keep.txt")));
        Assert.Equal("new", File.ReadAllText(Path.Combine(target, "replace.txt")));
        Assert.Equal("x", File.ReadAllText(Path.Combine(target, "sub", "x.txt")));
        Assert.Empty(StagingLeftovers(parent.Path, "set"));
    }

    [Fact]
    public void FileWithWrongChecksumIsReplacedByAVerifiedDownload()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var content = RandomBytes(4_000, 5);
        server.Serve("/x.gz", content);
        target.Write("x.gz", content[..100]); // e.g. an interrupted copy made by hand
        var log = new List<string>();
        Download(Spec(("x.gz", content)), target.Path, server.Root, log.Add);
        Assert.Equal(content, File.ReadAllBytes(target.File("x.gz")));
        Assert.Contains(log, m => m.Contains("is not the expected") && m.Contains("downloading it again"));
    }

    [Fact]
    public void HttpErrorsNameTheUrl()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var e = Assert.Throws<DataException>(() => Download(Spec(("missing.gz", [1, 2, 3])), target.Path, server.Root, null));
        Assert.Contains("missing.gz", e.Path);
        Assert.Contains("HTTP 404", e.Message);
        Assert.Empty(Directory.GetFiles(target.Path));
    }

    [Fact]
    public void UnreachableServerIsADataException()
    {
        using var target = new TempDir();
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop(); // nothing listens on this port any more
        var e = Assert.Throws<DataException>(() =>
            Download(Spec(("f.gz", [1])), target.Path, new Uri($"http://127.0.0.1:{port}/"), null));
        Assert.Contains("download failed", e.Message);
        Assert.Contains("mirror", e.Message);
    }

    [Fact]
    public void MirrorWithAPathKeepsItsPath()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var content = RandomBytes(100, 6);
        server.Serve("/some/mirror/f.gz", content);
        Download(Spec(("f.gz", content)), target.Path, new Uri(server.Root, "some/mirror"), null);
        Assert.Equal(content, File.ReadAllBytes(target.File("f.gz")));
    }

    [Fact]
    public void DownloadedMnistFolderLoads()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var files = new Dictionary<string, byte[]>
        {
            ["train-images-idx3-ubyte.gz"] = TempDir.Gzip(DatasetCatalogTests.Images(5)),
            ["train-labels-idx1-ubyte.gz"] = TempDir.Gzip(DatasetCatalogTests.Labels(5)),
            ["t10k-images-idx3-ubyte.gz"] = TempDir.Gzip(DatasetCatalogTests.Images(2)),
            ["t10k-labels-idx1-ubyte.gz"] = TempDir.Gzip(DatasetCatalogTests.Labels(2)),
        };
        foreach (var (name, content) in files) server.Serve("/mnist/" + name, content);
        var official = SpecFor("mnist");
        Assert.Equal(files.Keys.Order(), official.Files.Select(f => f.FileName).Order());
        var spec = official with { Files = official.Files.Select(f => f with { Md5 = Md5(files[f.FileName]) }).ToList() };

        Download(spec, target.Path, new Uri(server.Root, "mnist/"), null);
        using var data = DatasetCatalog.LoadClassification("mnist", new DataOptions { DataDir = target.Path });
        Assert.Equal(5, data.Train.Count);
        Assert.Equal(2, data.Test.Count);
    }

    [Theory]
    [InlineData("fashion-mnist")]
    [InlineData("mnist")]
    public void DownloadedFileNamesAreWhatTheCatalogLooksFor(string name)
    {
        using var target = new TempDir();
        foreach (var file in SpecFor(name).Files) target.Write(file.FileName, []);
        Assert.Equal(target.Path, DatasetCatalog.ResolveFolder(name, target.Path, root: null));
        Assert.All(SpecFor(name).Files, f => Assert.Matches("^[0-9a-f]{32}$", f.Md5));
    }

    static byte[] TarGz(IEnumerable<(string Name, byte[] Content)> entries)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Ustar))
        {
            tar.WriteEntry(new UstarTarEntry(TarEntryType.Directory, "cifar-10-batches-bin/"));
            foreach (var (name, content) in entries)
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) });
        }
        return output.ToArray();
    }

    [Fact]
    public void CifarArchiveIsVerifiedKeptAndItsBatchesExtracted()
    {
        using var server = new LocalHttpServer();
        using var source = new TempDir();
        using var target = new TempDir();
        Cifar10Tests.WriteCifarFolder(source.Path);
        var entries = Cifar10.TrainFiles.Append(Cifar10.TestFile)
            .Select(f => ("cifar-10-batches-bin/" + f, File.ReadAllBytes(source.File(f))))
            .Append(("cifar-10-batches-bin/readme.html", "<html/>"u8.ToArray()))
            .ToList();
        var archive = TarGz(entries);
        server.Serve("/" + CifarArchive, archive);
        var spec = SpecFor("cifar10") with { Files = [new RemoteFile(CifarArchive, Md5(archive))] };
        var log = new List<string>();

        Download(spec, target.Path, server.Root, log.Add);
        foreach (var file in Cifar10.TrainFiles.Append(Cifar10.TestFile))
            Assert.Equal(File.ReadAllBytes(source.File(file)), File.ReadAllBytes(target.File(file)));
        Assert.False(File.Exists(target.File("readme.html")));
        Assert.Equal(archive, File.ReadAllBytes(target.File(CifarArchive)));
        Assert.Empty(target.Leftovers());
        var (train, test) = Cifar10.ReadRaw(target.Path);
        using (train)
        using (test)
            Assert.Equal(13, train.Count);

        Download(spec, target.Path, server.Root, log.Add);
        Assert.Equal(1, server.RequestsFor("/" + CifarArchive));
        Assert.Contains(log, m => m.Contains(CifarArchive) && m.Contains("skipped"));
    }

    [Fact]
    public void CifarArchiveWithoutAllBatchesIsAnError()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var archive = TarGz([("cifar-10-batches-bin/data_batch_1.bin", new byte[3073])]);
        server.Serve("/" + CifarArchive, archive);
        var spec = SpecFor("cifar10") with { Files = [new RemoteFile(CifarArchive, Md5(archive))] };
        var e = Assert.Throws<DataException>(() => Download(spec, target.Path, server.Root, null));
        Assert.Equal(target.File(CifarArchive), e.Path);
        Assert.Contains("does not contain data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, test_batch.bin", e.Message);
    }

    [Fact]
    public void CorruptArchiveIsAnError()
    {
        using var server = new LocalHttpServer();
        using var target = new TempDir();
        var archive = TempDir.Gzip("this is not a tar archive at all, just some text that is long enough"u8.ToArray().Concat(new byte[600]).ToArray());
        server.Serve("/" + CifarArchive, archive);
        var spec = SpecFor("cifar10") with { Files = [new RemoteFile(CifarArchive, Md5(archive))] };
        var e = Assert.Throws<DataException>(() => Download(spec, target.Path, server.Root, null));
        Assert.Equal(target.File(CifarArchive), e.Path);
        Assert.Matches("cannot be unpacked|does not contain", e.Message);
    }

    [Fact]
    public void UnknownNameIsAnArgumentError()
    {
        var e = Assert.Throws<ArgumentException>(() => DatasetDownloader.Download("svhn", "/tmp/never-created", null, null));
        Assert.Contains("fashion-mnist, mnist, cifar10", e.Message);
    }
}
