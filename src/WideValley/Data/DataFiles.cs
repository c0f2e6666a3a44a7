using System.IO.Compression;
using System.Security.Cryptography;

namespace WideValley.Data;

/// <summary>File plumbing shared by the readers, the downloader and the preprocessing cache.</summary>
internal static class DataFiles
{
    /// <summary>
    /// Opens <paramref name="path"/> for reading and reports whether it is gzip-compressed, judged by the magic bytes
    /// 1f 8b rather than by the extension: Debian and users re-compress files and rename them freely.
    /// </summary>
    public static (FileStream File, bool IsGzip) OpenDetectingGzip(string path)
    {
        var file = OpenRead(path);
        Span<byte> magic = stackalloc byte[2];
        var read = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
        file.Position = 0;
        return (file, read == 2 && magic[0] == 0x1f && magic[1] == 0x8b);
    }

    /// <summary>Opens a file for sequential reading, turning "not there" and "not allowed" into messages that name it.</summary>
    public static FileStream OpenRead(string path)
    {
        if (Directory.Exists(path)) throw new DataException(path, "is a folder, expected a file");
        if (!File.Exists(path)) throw new DataException(path, "file not found");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException(path, $"cannot open: {e.Message}", e);
        }
    }

    /// <summary>MD5 (lower-case hex) of a file's bytes as stored.</summary>
    public static string FileMd5(string path)
    {
        using var file = OpenRead(path);
        return Convert.ToHexStringLower(MD5.HashData(file));
    }

    /// <summary>
    /// MD5 (lower-case hex) of a file's contents after gunzip when it is gzip-compressed; this identifies the data
    /// independently of how it was compressed (Debian's .gz files differ from the official ones, the contents don't).
    /// </summary>
    public static string ContentMd5(string path)
    {
        var (file, isGzip) = OpenDetectingGzip(path);
        using (file)
        {
            if (!isGzip) return Convert.ToHexStringLower(MD5.HashData(file));
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            try
            {
                return Convert.ToHexStringLower(MD5.HashData(gzip));
            }
            catch (InvalidDataException e)
            {
                throw new DataException(path, $"corrupt gzip stream: {e.Message}", e);
            }
        }
    }

    /// <summary>$XDG_CACHE_HOME/widevalley if that variable is set, else ~/.cache/widevalley.</summary>
    public static string DefaultCacheDir()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "widevalley");
    }

    /// <summary>"60000 x 28 x 28" style shape text for messages.</summary>
    public static string ShapeText(IEnumerable<long> shape)
    {
        var text = string.Join(" x ", shape);
        return text.Length == 0 ? "scalar" : text;
    }
}
