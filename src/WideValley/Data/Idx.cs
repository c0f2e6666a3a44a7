using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>Element types of the IDX format (the third magic byte).</summary>
public enum IdxElementType : byte
{
    /// <summary>0x08: unsigned 8-bit integers (MNIST's pixels and labels).</summary>
    UnsignedByte = 0x08,
    /// <summary>0x09: signed 8-bit integers.</summary>
    SignedByte = 0x09,
    /// <summary>0x0B: signed 16-bit integers.</summary>
    Int16 = 0x0B,
    /// <summary>0x0C: signed 32-bit integers.</summary>
    Int32 = 0x0C,
    /// <summary>0x0D: IEEE 32-bit floats.</summary>
    Float32 = 0x0D,
    /// <summary>0x0E: IEEE 64-bit floats.</summary>
    Float64 = 0x0E,
}

/// <summary>
/// One IDX file in memory: element type, shape, and the elements in this machine's byte order (the file stores them
/// big-endian; <see cref="Idx.Read"/> converts).
/// </summary>
public sealed class IdxArray
{
    /// <summary>The file this array was read from.</summary>
    public string Path { get; }
    /// <summary>Element type from the third magic byte.</summary>
    public IdxElementType ElementType { get; }
    /// <summary>Dimension sizes as stored in the header (empty for a scalar).</summary>
    public IReadOnlyList<long> Shape { get; }
    /// <summary>The elements, row-major, in host byte order.</summary>
    public byte[] Data { get; }

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public long ElementCount => Data.LongLength / Idx.ElementSize(ElementType);

    internal IdxArray(string path, IdxElementType elementType, long[] shape, byte[] data)
    {
        Path = path;
        ElementType = elementType;
        Shape = shape;
        Data = data;
    }

    /// <summary>
    /// The array as a tensor of the matching dtype (uint8, int8, int16, int32, float32, float64) and shape. The
    /// tensor belongs to the caller's dispose scope.
    /// </summary>
    public Tensor ToTensor()
    {
        var tensor = empty(Shape.ToArray(), Idx.TorchType(ElementType));
        if (Data.Length > 0) tensor.bytes = Data;
        return tensor;
    }
}

/// <summary>
/// Reader for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): two zero bytes, an
/// element-type byte, a dimension-count byte, one big-endian int32 per dimension, then the elements, big-endian.
/// Plain and gzip-compressed files are accepted; compression is recognised by its magic bytes, not the file name.
/// </summary>
public static class Idx
{
    /// <summary>Reads a whole IDX file. Any problem is a <see cref="DataException"/> that names the file.</summary>
    public static IdxArray Read(string path)
    {
        var (file, isGzip) = DataFiles.OpenDetectingGzip(path);
        using (file)
        {
            using var input = isGzip ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
            try
            {
                return ReadFrom(path, input, isGzip);
            }
            catch (InvalidDataException e) when (isGzip)
            {
                throw new DataException(path, $"corrupt gzip stream: {e.Message}", e);
            }
            catch (IOException e) when (e is not DataException)
            {
                throw new DataException(path, $"read failed: {e.Message}", e);
            }
        }
    }

    /// <summary>Reads an IDX file straight into a tensor (see <see cref="IdxArray.ToTensor"/>).</summary>
    public static Tensor ReadTensor(string path) => Read(path).ToTensor();

    static IdxArray ReadFrom(string path, Stream input, bool isGzip)
    {
        var stored = isGzip ? " (after gunzip)" : "";
        Span<byte> magic = stackalloc byte[4];
        var got = input.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (got < 4)
            throw new DataException(path, $"not an IDX file: it holds only {got} byte(s){stored}, fewer than the 4-byte magic number");
        if (magic[0] != 0 || magic[1] != 0)
            throw new DataException(path,
                $"not an IDX file: expected the magic number to start with bytes 00 00, found {Convert.ToHexString(magic)}{stored}");
        var elementType = (IdxElementType)magic[2];
        if (!Enum.IsDefined(elementType))
            throw new DataException(path,
                $"unsupported IDX element type 0x{magic[2]:X2}; supported are 0x08 (unsigned byte), 0x09 (signed byte), " +
                "0x0B (int16), 0x0C (int32), 0x0D (float32) and 0x0E (float64)");
        int rank = magic[3];

        var header = new byte[4 * rank];
        got = input.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        if (got < header.Length)
            throw new DataException(path,
                $"truncated header: {rank} dimension sizes need {header.Length} bytes after the magic number, found {got}{stored}");
        var shape = new long[rank];
        for (var i = 0; i < rank; i++)
        {
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4 * i));
            if (shape[i] < 0)
                throw new DataException(path, $"dimension {i} has a negative size ({shape[i]}) in the header");
        }
        var elementLimit = Array.MaxLength / ElementSize(elementType);
        long count = 1;
        foreach (var size in shape)
        {
            if (size != 0 && count > elementLimit / size)
                throw new DataException(path,
                    $"the header describes {DataFiles.ShapeText(shape)} elements of {elementType}, more than this reader can hold in memory ({Array.MaxLength} bytes)");
            count *= size;
        }

        var expected = (int)(count * ElementSize(elementType));
        var data = new byte[expected];
        got = input.ReadAtLeast(data, expected, throwOnEndOfStream: false);
        if (got < expected)
            throw new DataException(path,
                $"truncated: the header (shape {DataFiles.ShapeText(shape)}, {elementType}) announces {expected} bytes of data, found {got}{stored}" +
                (isGzip ? "; the compressed stream ends early (incomplete download?)" : ""));
        var trailing = CountRemaining(input);
        if (trailing > 0)
            throw new DataException(path,
                $"trailing garbage: {trailing} byte(s) after the {expected} bytes of data that the header (shape {DataFiles.ShapeText(shape)}, {elementType}) describes{stored}");

        ToHostOrder(data, elementType);
        return new IdxArray(path, elementType, shape, data);
    }

    static long CountRemaining(Stream input)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = input.Read(buffer)) > 0) total += n;
        return total;
    }

    /// <summary>IDX stores multi-byte elements big-endian; swap them in place on little-endian machines, in bulk.</summary>
    static void ToHostOrder(byte[] data, IdxElementType type)
    {
        if (!BitConverter.IsLittleEndian) return;
        switch (ElementSize(type))
        {
            case 2:
                var shorts = MemoryMarshal.Cast<byte, short>(data.AsSpan());
                BinaryPrimitives.ReverseEndianness(shorts, shorts);
                break;
            case 4:
                var ints = MemoryMarshal.Cast<byte, int>(data.AsSpan());
                BinaryPrimitives.ReverseEndianness(ints, ints);
                break;
            case 8:
                var longs = MemoryMarshal.Cast<byte, long>(data.AsSpan());
                BinaryPrimitives.ReverseEndianness(longs, longs);
                break;
        }
    }

    /// <summary>Bytes per element.</summary>
    public static int ElementSize(IdxElementType type) => type switch
    {
        IdxElementType.UnsignedByte or IdxElementType.SignedByte => 1,
        IdxElementType.Int16 => 2,
        IdxElementType.Int32 or IdxElementType.Float32 => 4,
        IdxElementType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an IDX element type"),
    };

    internal static ScalarType TorchType(IdxElementType type) => type switch
    {
        IdxElementType.UnsignedByte => ScalarType.Byte,
        IdxElementType.SignedByte => ScalarType.Int8,
        IdxElementType.Int16 => ScalarType.Int16,
        IdxElementType.Int32 => ScalarType.Int32,
        IdxElementType.Float32 => ScalarType.Float32,
        IdxElementType.Float64 => ScalarType.Float64,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an IDX element type"),
    };

    /// <summary>
    /// Writes an IDX file (plain, big-endian). For tests and for exporting small arrays; <paramref name="hostOrderData"/>
    /// holds the elements in this machine's byte order.
    /// </summary>
    internal static byte[] Encode(IdxElementType type, long[] shape, byte[] hostOrderData)
    {
        var bytes = new byte[4 + 4 * shape.Length + hostOrderData.Length];
        bytes[2] = (byte)type;
        bytes[3] = checked((byte)shape.Length);
        for (var i = 0; i < shape.Length; i++)
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), checked((int)shape[i]));
        var data = (byte[])hostOrderData.Clone();
        ToHostOrder(data, type); // the swap is its own inverse
        data.CopyTo(bytes, 4 + 4 * shape.Length);
        return bytes;
    }
}
