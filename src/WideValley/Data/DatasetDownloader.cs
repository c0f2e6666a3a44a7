using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace WideValley.Data;

/// <summary>
/// Downloads the named datasets of <see cref="DatasetCatalog"/> from their official locations (or a mirror) and
/// verifies every file against its published MD5. Everything is fetched into a staging folder beside the target and
/// moved into place only when every file is verified (<see cref="StagedFolder"/>), so a failed download leaves
/// nothing behind: no partial file under a real name, no empty target folder, and nothing already there is lost.
/// </summary>
public static class DatasetDownloader
{
    /// <summary>One file to fetch: its name under the base URL (also its name on disk) and its MD5.</summary>
    internal sealed record RemoteFile(string FileName, string Md5);

    /// <summary>
    /// What to fetch for a dataset; <paramref name="Unpack"/> runs after every file is verified (CIFAR-10 extracts its
    /// batch files from the archive) and receives where each verified file now is (by file name: in the staging
    /// folder when just fetched, in the target when it was already there), the staging folder to write into, the
    /// target folder (to name files in messages by their final path), and the log.
    /// </summary>
    internal sealed record DownloadSpec(string Name, Uri BaseUri, IReadOnlyList<RemoteFile> Files,
        Action<Func<string, string>, string, string, Action<string>?>? Unpack = null);

    /// <summary>Names that can be downloaded (the same as <see cref="DatasetCatalog.Names"/>).</summary>
    public static IReadOnlyList<string> Names => DatasetCatalog.Names;

    /// <summary>
    /// Downloads dataset <paramref name="name"/> into <paramref name="targetDir"/>, so that the folder can then be
    /// passed as <see cref="DataOptions.DataDir"/>. The target is created (by renaming the verified staging folder
    /// into place) only when every file arrived with the right MD5; files already present in it with the right MD5 are
    /// not fetched again. <paramref name="mirror"/> replaces the official base URL (the file names stay the same).
    /// A checksum mismatch or an HTTP failure throws <see cref="DataException"/>; the staging folder is deleted and the
    /// target is left as it was (absent if it was absent).
    /// CIFAR-10's archive is kept next to the extracted batch files, so that a second call can verify it and skip the
    /// download (no checksums are published for the individual batch files).
    /// </summary>
    public static void Download(string name, string targetDir, Uri? mirror = null, Action<string>? log = null) =>
        Download(SpecFor(name), targetDir, mirror, log);

    internal static DownloadSpec SpecFor(string name)
    {
        var canonical = DatasetCatalog.Names.FirstOrDefault(n => string.Equals(n, name?.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"unknown dataset '{name}'; known datasets: {string.Join(", ", DatasetCatalog.Names)}", nameof(name));
        return canonical switch
        {
            DatasetCatalog.FashionMnist => new DownloadSpec(canonical, new Uri("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
            [
                new("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                new("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                new("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                new("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
            ]),
            DatasetCatalog.Mnist => new DownloadSpec(canonical, new Uri("https://ossci-datasets.s3.amazonaws.com/mnist/"),
            [
                new("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                new("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                new("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                new("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            ]),
            _ => new DownloadSpec(canonical, new Uri("https://www.cs.toronto.edu/~kriz/"),
                [new(CifarArchive, "c32a1d4ab5d03f1284b67883e8d87530")],
                (pathOf, output, target, log) =>
                    ExtractCifarBatches(pathOf(CifarArchive), output, log, Path.Combine(target, CifarArchive))),
        };
    }

    internal const string CifarArchive = "cifar-10-binary.tar.gz";

    /// <summary>Downloads <paramref name="spec"/>; the seam tests use to serve small synthetic files with their own checksums.</summary>
    internal static void Download(DownloadSpec spec, string targetDir, Uri? mirror, Action<string>? log)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(targetDir);
        targetDir = Path.GetFullPath(targetDir);
        var baseUri = WithTrailingSlash(mirror ?? spec.BaseUri);
        StagedFolder.Fill(targetDir, staging =>
        {
            using var client = new HttpClient();
            client.DefaultRequestHeaders.UserAgent.ParseAdd("WideValley-data-downloader");
            var where = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var file in spec.Files)
            {
                var target = Path.Combine(targetDir, file.FileName);
                if (IsPresent(target, file.Md5, log))
                {
                    where[file.FileName] = target;
                    continue;
                }
                var staged = Path.Combine(staging, file.FileName);
                Fetch(client, new Uri(baseUri, file.FileName), staged, target, file.Md5, log);
                where[file.FileName] = staged;
            }
            spec.Unpack?.Invoke(name => where[name], staging, targetDir, log);
        });
        log?.Invoke($"{spec.Name}: ready in {targetDir}");
    }

    static bool IsPresent(string target, string expectedMd5, Action<string>? log)
    {
        if (!File.Exists(target)) return false;
        var present = DataFiles.FileMd5(target);
        if (string.Equals(present, expectedMd5, StringComparison.OrdinalIgnoreCase))
        {
            log?.Invoke($"{target}: already present with the expected MD5; skipped");
            return true;
        }
        log?.Invoke($"{target}: present but its MD5 {present} is not the expected {expectedMd5}; downloading it again");
        return false;
    }

    static Uri WithTrailingSlash(Uri uri) => uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");

    /// <summary>Fetches <paramref name="url"/> into <paramref name="staged"/>, checking its MD5; <paramref name="target"/> is the final name, for messages.</summary>
    static void Fetch(HttpClient client, Uri url, string staged, string target, string expectedMd5, Action<string>? log)
    {
        log?.Invoke($"downloading {url}");
        var clock = Stopwatch.StartNew();
        long length;
        string actualMd5;
        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        using (var response = Send(client, request, url))
        {
            if (!response.IsSuccessStatusCode)
                throw new DataException(url.ToString(),
                    $"download failed: HTTP {(int)response.StatusCode} {response.ReasonPhrase}; nothing was written to {target}");
            using var body = response.Content.ReadAsStream();
            using var output = new FileStream(staged, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
            (length, actualMd5) = CopyHashing(body, output, url, target);
            output.Flush(flushToDisk: true);
        }
        if (!string.Equals(actualMd5, expectedMd5, StringComparison.OrdinalIgnoreCase))
            throw new DataException(url.ToString(),
                $"checksum mismatch: expected MD5 {expectedMd5}, got {actualMd5} ({length} bytes downloaded); " +
                $"the download was discarded and {target} was left as it was");
        log?.Invoke($"{target}: {length} bytes in {clock.Elapsed.TotalSeconds:F1} s, MD5 verified");
    }

    static HttpResponseMessage Send(HttpClient client, HttpRequestMessage request, Uri url)
    {
        try
        {
            return client.Send(request, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw new DataException(url.ToString(),
                $"download failed: {e.Message}. If this machine reaches the internet only through a mirror or proxy, " +
                "pass the mirror's base URL (the files keep their names)", e);
        }
    }

    static (long Length, string Md5) CopyHashing(Stream body, Stream output, Uri url, string target)
    {
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        var buffer = new byte[1 << 16];
        long length = 0;
        try
        {
            int n;
            while ((n = body.Read(buffer)) > 0)
            {
                md5.AppendData(buffer, 0, n);
                output.Write(buffer, 0, n);
                length += n;
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException && e is not DataException)
        {
            throw new DataException(url.ToString(),
                $"download interrupted after {length} bytes: {e.Message}; {target} was left as it was", e);
        }
        return (length, Convert.ToHexStringLower(md5.GetHashAndReset()));
    }

    /// <summary>
    /// Extracts the CIFAR-10 batch files from the verified archive into <paramref name="folder"/> (flattening the
    /// archive's cifar-10-batches-bin/ folder), each written atomically. Only the expected file names are taken, by
    /// their last path component, so entries cannot escape the folder. Errors name the archive as
    /// <paramref name="shownAs"/> (its final name when it sits in a staging folder that is about to be deleted).
    /// </summary>
    internal static void ExtractCifarBatches(string archive, string folder, Action<string>? log, string? shownAs = null)
    {
        shownAs ??= archive;
        var wanted = Cifar10.TrainFiles.Append(Cifar10.TestFile).ToHashSet(StringComparer.Ordinal);
        var extracted = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            using var file = DataFiles.OpenRead(archive);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
                    continue;
                var name = Path.GetFileName(entry.Name);
                if (!wanted.Contains(name)) continue;
                AtomicFile.Write(Path.Combine(folder, name), output => entry.DataStream.CopyTo(output));
                extracted.Add(name);
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new DataException(shownAs, $"cannot be unpacked as a gzip-compressed tar archive: {e.Message}; nothing was kept", e);
        }
        var missing = wanted.Except(extracted).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
            throw new DataException(shownAs, $"does not contain {string.Join(", ", missing)}; is it the binary version of CIFAR-10? Nothing was kept");
        log?.Invoke($"{shownAs}: extracted {string.Join(", ", wanted.Order(StringComparer.Ordinal))}");
    }
}
