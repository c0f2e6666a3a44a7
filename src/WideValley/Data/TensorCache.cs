using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>
/// A file of named CPU tensors that stores the result of expensive preprocessing (CIFAR-10 ZCA whitening takes about a
/// minute). Layout, little-endian: magic "WVTCACHE", int32 format version, the cache key (length-prefixed UTF-8), the
/// tensor count, then per tensor its name, dtype and shape; then the raw tensor bytes in the same order; then the
/// SHA-256 of everything before it. A reader checks all of it, so a truncated write, a stale file from another key or
/// version, or flipped bits are detected, reported and treated as a miss. Files are written atomically (temporary
/// file in the same folder, then rename), so a crash mid-write never leaves a half file under the real name.
/// </summary>
internal static class TensorCache
{
    static ReadOnlySpan<byte> Magic => "WVTCACHE"u8;
    const int FormatVersion = 1;
    const int HashBytes = 32;
    const int MaxTensors = 64;
    const int MaxRank = 8;
    /// <summary>Tensor bytes move through spans of at most this size (TorchSharp spans are limited to 2 GB).</summary>
    const long ChunkBytes = 64L << 20;

    static readonly ScalarType[] StorableTypes =
        [ScalarType.Byte, ScalarType.Int8, ScalarType.Int16, ScalarType.Int32, ScalarType.Int64, ScalarType.Float32, ScalarType.Float64];

    public static void Write(string path, string key, IReadOnlyList<(string Name, Tensor Tensor)> tensors)
    {
        if (tensors.Select(t => t.Name).Distinct(StringComparer.Ordinal).Count() != tensors.Count)
            throw new ArgumentException("tensor names in a cache file must be distinct", nameof(tensors));
        using var scope = NewDisposeScope();
        var contiguous = tensors.Select(t =>
        {
            if (!StorableTypes.Contains(t.Tensor.dtype)) throw new ArgumentException($"cannot cache dtype {t.Tensor.dtype}");
            return (t.Name, Tensor: t.Tensor.cpu().contiguous());
        }).ToList();

        AtomicFile.Write(path, stream =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var header = new MemoryStream();
            using (var writer = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(Magic);
                writer.Write(FormatVersion);
                writer.Write(key);
                writer.Write(contiguous.Count);
                foreach (var (name, tensor) in contiguous)
                {
                    writer.Write(name);
                    writer.Write((int)tensor.dtype);
                    writer.Write((int)tensor.dim()); // dim() is a long; the format stores an int32
                    foreach (var size in tensor.shape) writer.Write(size);
                }
            }
            var headerBytes = header.ToArray();
            stream.Write(headerBytes);
            hash.AppendData(headerBytes);
            foreach (var (_, tensor) in contiguous)
                foreach (var piece in Pieces(tensor))
                {
                    var bytes = piece.bytes;
                    stream.Write(bytes);
                    hash.AppendData(bytes);
                    piece.Dispose();
                }
            stream.Write(hash.GetHashAndReset());
        });
    }

    /// <summary>
    /// The tensors stored under <paramref name="key"/> in <paramref name="path"/>, or null when the file is absent,
    /// belongs to another key or format version, or is damaged; every reason except absence is reported through
    /// <paramref name="log"/>. The tensors belong to the caller's dispose scope.
    /// </summary>
    public static Dictionary<string, Tensor>? TryRead(string path, string key, Action<string>? log)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return Read(path, key, out var why) ?? Miss(why);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Miss($"cannot be read ({e.Message})");
        }

        Dictionary<string, Tensor>? Miss(string why)
        {
            log?.Invoke($"cache file {path} {why}; recomputing");
            return null;
        }
    }

    static Dictionary<string, Tensor>? Read(string path, string expectedKey, out string why)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        var length = stream.Length;
        var entries = new List<(string Name, ScalarType Type, long[] Shape, long Bytes)>();
        long headerLength;
        using (var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true))
        {
            try
            {
                Span<byte> magic = stackalloc byte[8];
                if (stream.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) < magic.Length || !magic.SequenceEqual(Magic))
                {
                    why = "is not a WideValley cache file (wrong magic bytes)";
                    return null;
                }
                var version = reader.ReadInt32();
                if (version != FormatVersion)
                {
                    why = $"has format version {version}, this build writes {FormatVersion}";
                    return null;
                }
                var key = reader.ReadString();
                if (key != expectedKey)
                {
                    why = "was made from different inputs or options (key mismatch)";
                    return null;
                }
                var count = reader.ReadInt32();
                if (count < 0 || count > MaxTensors)
                {
                    why = $"is corrupt: header announces {count} tensors";
                    return null;
                }
                for (var i = 0; i < count; i++)
                {
                    var name = reader.ReadString();
                    var type = (ScalarType)reader.ReadInt32();
                    var rank = reader.ReadInt32();
                    if (!StorableTypes.Contains(type) || rank < 0 || rank > MaxRank)
                    {
                        why = $"is corrupt: tensor '{name}' has dtype code {(int)type} and rank {rank}";
                        return null;
                    }
                    var shape = new long[rank];
                    long elements = 1;
                    for (var d = 0; d < rank; d++)
                    {
                        shape[d] = reader.ReadInt64();
                        if (shape[d] < 0 || (shape[d] > 0 && elements > length / shape[d]))
                        {
                            why = $"is corrupt: tensor '{name}' has an impossible shape";
                            return null;
                        }
                        elements *= shape[d];
                    }
                    entries.Add((name, type, shape, elements * ElementSize(type)));
                }
            }
            catch (EndOfStreamException)
            {
                why = $"is truncated: it ends inside its header ({length} bytes)";
                return null;
            }
            headerLength = stream.Position;
        }

        var expectedLength = headerLength + entries.Sum(e => e.Bytes) + HashBytes;
        if (length != expectedLength)
        {
            why = $"is corrupt: it has {length} bytes but its header announces {expectedLength} (interrupted write?)";
            return null;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var headerBytes = new byte[headerLength];
        stream.Position = 0;
        stream.ReadExactly(headerBytes);
        hash.AppendData(headerBytes);

        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, type, shape, _) in entries)
        {
            var tensor = empty(shape, type);
            foreach (var piece in Pieces(tensor))
            {
                var bytes = piece.bytes;
                stream.ReadExactly(bytes);
                hash.AppendData(bytes);
                piece.Dispose();
            }
            tensors[name] = tensor;
        }
        var storedHash = new byte[HashBytes];
        stream.ReadExactly(storedHash);
        if (!hash.GetHashAndReset().AsSpan().SequenceEqual(storedHash))
        {
            why = "is corrupt: its SHA-256 checksum does not match its contents";
            return null;
        }
        foreach (var tensor in tensors.Values) tensor.MoveToOuterDisposeScope();
        why = "";
        return tensors;
    }

    /// <summary>Views of a contiguous tensor's storage, in order, each small enough for a span.</summary>
    static IEnumerable<Tensor> Pieces(Tensor contiguous)
    {
        var flat = contiguous.view(-1);
        var total = flat.shape[0];
        if (total == 0) yield break;
        var perPiece = Math.Max(1, ChunkBytes / contiguous.ElementSize);
        for (long start = 0; start < total; start += perPiece)
            yield return flat.narrow(0, start, Math.Min(perPiece, total - start));
    }

    static long ElementSize(ScalarType type) => type switch
    {
        ScalarType.Byte or ScalarType.Int8 => 1,
        ScalarType.Int16 => 2,
        ScalarType.Int32 or ScalarType.Float32 => 4,
        _ => 8,
    };
}
