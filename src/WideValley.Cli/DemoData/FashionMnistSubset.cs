using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;
using WideValley.Data;

namespace WideValley.Cli.DemoData;

/// <summary>
/// The Fashion-MNIST subset built into the tool, so that `widevalley demo` runs on a machine without the full set and
/// without network: the first 1,000 training and the first 200 test images of each class, in the official order
/// (10,000 and 2,000 images), as gzip IDX files embedded in this assembly. tools/make-fashion-mnist-subset.py makes
/// them from the official files; a test re-derives them from the full set. Fashion-MNIST is MIT-licensed,
/// Copyright (c) 2017 Zalando SE (DemoData/fashion-mnist-subset/NOTICE.txt, packed with the tool as THIRD-PARTY-NOTICES-fashion-mnist.txt).
/// </summary>
public static class FashionMnistSubset
{
    /// <summary>Training images in the subset (1,000 of each class).</summary>
    public const int TrainImages = 10_000;
    /// <summary>Test images in the subset (200 of each class).</summary>
    public const int TestImages = 2_000;
    /// <summary>Training images of each class.</summary>
    public const int TrainPerClass = TrainImages / 10;
    /// <summary>Test images of each class.</summary>
    public const int TestPerClass = TestImages / 10;

    /// <summary>One line naming the subset, its size and its licence, for the demo's output.</summary>
    public const string Description =
        "the built-in Fashion-MNIST subset (10,000 training and 2,000 test images, the first 1,000 and 200 of each class; " +
        "MIT licence, Copyright (c) 2017 Zalando SE)";

    /// <summary>Name of the licence notice shipped with the files.</summary>
    public const string NoticeFile = "NOTICE.txt";

    const string ResourcePrefix = "DemoData/fashion-mnist-subset/";

    /// <summary>
    /// The four files and the MD5 of each one's uncompressed IDX bytes, as printed by
    /// tools/make-fashion-mnist-subset.py (uncompressed, because another zlib may compress the same bytes differently).
    /// </summary>
    internal static readonly IReadOnlyList<(string FileName, string ContentMd5)> Files =
    [
        ("train-images-idx3-ubyte.gz", "dcab80f289ae27ab265a1e83946f0a1c"),
        ("train-labels-idx1-ubyte.gz", "611c8ef3426a757a9375a0ac94541d26"),
        ("t10k-images-idx3-ubyte.gz", "4bb4107a89a38933fbbdd67584195c68"),
        ("t10k-labels-idx1-ubyte.gz", "84e2038f7beda4c0f4093bde29339f63"),
    ];

    /// <summary>
    /// The folder name under the cache: it carries the first bytes of the training images' MD5, so a tool with
    /// another subset never reads this one's files.
    /// </summary>
    internal static string FolderName => $"fashion-mnist-subset-{Files[0].ContentMd5[..8]}";

    /// <summary>
    /// A folder holding the subset's four IDX files (and its licence notice), ready for <see cref="DataOptions.DataDir"/>:
    /// <paramref name="folder"/> when given, else FOLDER_NAME under the cache root ($XDG_CACHE_HOME/widevalley or
    /// ~/.cache/widevalley). The files are written from the embedded resources when the folder does not hold them with
    /// the recorded checksums (checked on every call), through a staging folder, so a failure leaves nothing behind.
    /// A checksum mismatch of the embedded data itself throws <see cref="DataException"/>.
    /// </summary>
    public static string Materialize(string? folder = null, Action<string>? log = null)
    {
        var target = Path.GetFullPath(folder ?? Path.Combine(DefaultCacheRoot(), FolderName));
        if (Verified(target)) return target;
        log?.Invoke($"writing {Description} to {target}");
        return StagedFolder.Fill(target, staging =>
        {
            foreach (var (name, md5) in Files)
            {
                var path = Path.Combine(staging, name);
                using (var resource = Open(name))
                using (var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
                    resource.CopyTo(output);
                var actual = ContentMd5(path);
                if (actual != md5)
                    throw new DataException(ResourcePrefix + name,
                        $"the embedded file's uncompressed MD5 is {actual}, expected {md5}; this build of widevalley carries damaged demo data " +
                        "(rebuild it, or pass --data-dir with the full set)");
            }
            using var notice = Open(NoticeFile);
            using var noticeOutput = File.Create(Path.Combine(staging, NoticeFile));
            notice.CopyTo(noticeOutput);
        });
    }

    /// <summary>The licence notice of the subset (Fashion-MNIST's MIT licence and how the subset was made).</summary>
    public static string Notice()
    {
        using var reader = new StreamReader(Open(NoticeFile));
        return reader.ReadToEnd();
    }

    /// <summary>Whether <paramref name="folder"/> holds every file of the subset with its recorded checksum, and the licence notice.</summary>
    internal static bool Verified(string folder)
    {
        if (!File.Exists(Path.Combine(folder, NoticeFile))) return false;
        foreach (var (name, md5) in Files)
        {
            var path = Path.Combine(folder, name);
            if (!File.Exists(path)) return false;
            try
            {
                if (ContentMd5(path) != md5) return false;
            }
            catch (InvalidDataException)
            {
                return false;
            }
        }
        return true;
    }

    static Stream Open(string name) =>
        Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourcePrefix + name)
        ?? throw new DataException(ResourcePrefix + name,
            "is not embedded in this build of widevalley (see the EmbeddedResource item in WideValley.Cli.csproj)");

    static string ContentMd5(string gzipPath)
    {
        using var file = File.OpenRead(gzipPath);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        return Convert.ToHexStringLower(MD5.HashData(gzip));
    }

    /// <summary>$XDG_CACHE_HOME/widevalley if that variable names an absolute folder, else ~/.cache/widevalley (as the data cache).</summary>
    static string DefaultCacheRoot()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "widevalley");
    }
}
