using System.Buffers.Binary;
using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

using WideValley.Tests.Support;

namespace WideValley.Tests.Data;

public class IdxTests
{
    /// <summary>An IDX file assembled by hand: magic, big-endian dimensions, then the given (already big-endian) data.</summary>
    internal static byte[] IdxBytes(byte type, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        bytes[2] = type;
        bytes[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    static readonly byte[] TwoByThreeBytes = [0, 1, 2, 253, 254, 255];

    [Fact]
    public void ReadsUnsignedBytesWithShapeAndExactValues()
    {
        using var folder = new TempDir();
        var path = folder.Write("a-idx2-ubyte", IdxBytes(0x08, [2, 3], TwoByThreeBytes));
        var array = Idx.Read(path);
        Assert.Equal(IdxElementType.UnsignedByte, array.ElementType);
        Assert.Equal([2L, 3L], array.Shape);
        Assert.Equal(TwoByThreeBytes, array.Data);
        using var scope = NewDisposeScope();
        var t = array.ToTensor();
        Assert.Equal(ScalarType.Byte, t.dtype);
        Assert.Equal([2L, 3L], t.shape);
        Assert.Equal(TwoByThreeBytes, t.data<byte>().ToArray());
    }

    [Fact]
    public void DetectsGzipByMagicBytesNotByName()
    {
        using var folder = new TempDir();
        var raw = IdxBytes(0x08, [2, 3], TwoByThreeBytes);
        var gzipNamedPlain = folder.Write("compressed-without-suffix", TempDir.Gzip(raw));
        var gzipNamedGz = folder.Write("compressed.gz", TempDir.Gzip(raw));
        var plainNamedGz = folder.Write("plain-but-named.gz", raw);
        foreach (var path in new[] { gzipNamedPlain, gzipNamedGz, plainNamedGz })
        {
            var array = Idx.Read(path);
            Assert.Equal([2L, 3L], array.Shape);
            Assert.Equal(TwoByThreeBytes, array.Data);
        }
    }

    [Fact]
    public void ConvertsBigEndianMultiByteTypes()
    {
        using var folder = new TempDir();
        using var scope = NewDisposeScope();

        short[] shorts = [-2, 300, short.MaxValue];
        var data = new byte[6];
        for (var i = 0; i < 3; i++) BinaryPrimitives.WriteInt16BigEndian(data.AsSpan(2 * i), shorts[i]);
        var t16 = Idx.ReadTensor(folder.Write("s", IdxBytes(0x0B, [3], data)));
        Assert.Equal(ScalarType.Int16, t16.dtype);
        Assert.Equal(shorts, t16.data<short>().ToArray());

        int[] ints = [-70000, 1, int.MinValue, 123456789];
        data = new byte[16];
        for (var i = 0; i < 4; i++) BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4 * i), ints[i]);
        var t32 = Idx.ReadTensor(folder.Write("i", IdxBytes(0x0C, [2, 2], data)));
        Assert.Equal(ScalarType.Int32, t32.dtype);
        Assert.Equal([2L, 2L], t32.shape);
        Assert.Equal(ints, t32.data<int>().ToArray());

        float[] floats = [1.5f, -0.1f, float.Epsilon];
        data = new byte[12];
        for (var i = 0; i < 3; i++) BinaryPrimitives.WriteSingleBigEndian(data.AsSpan(4 * i), floats[i]);
        var tf = Idx.ReadTensor(folder.Write("f", IdxBytes(0x0D, [3], data)));
        Assert.Equal(ScalarType.Float32, tf.dtype);
        Assert.Equal(floats, tf.data<float>().ToArray());

        double[] doubles = [Math.PI, -1e300];
        data = new byte[16];
        for (var i = 0; i < 2; i++) BinaryPrimitives.WriteDoubleBigEndian(data.AsSpan(8 * i), doubles[i]);
        var td = Idx.ReadTensor(folder.Write("d", IdxBytes(0x0E, [2], data)));
        Assert.Equal(ScalarType.Float64, td.dtype);
        Assert.Equal(doubles, td.data<double>().ToArray());

        var ts = Idx.ReadTensor(folder.Write("b", IdxBytes(0x09, [2], [0xFF, 0x80])));
        Assert.Equal(ScalarType.Int8, ts.dtype);
        Assert.Equal(new sbyte[] { -1, -128 }, ts.data<sbyte>().ToArray());
    }

    [Fact]
    public void EncodeWritesWhatReadReads()
    {
        using var folder = new TempDir();
        int[] values = [1, -2, 3_000_000];
        var host = new byte[12];
        Buffer.BlockCopy(values, 0, host, 0, 12);
        var path = folder.Write("e", Idx.Encode(IdxElementType.Int32, [3], host));
        using var scope = NewDisposeScope();
        Assert.Equal(values, Idx.ReadTensor(path).data<int>().ToArray());
    }

    static DataException ReadFails(string path)
    {
        var e = Assert.Throws<DataException>(() => Idx.Read(path));
        Assert.Equal(path, e.Path);
        Assert.StartsWith(path + ":", e.Message);
        return e;
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        using var folder = new TempDir();
        Assert.Contains("file not found", ReadFails(folder.File("absent-idx1-ubyte")).Message);
    }

    [Fact]
    public void WrongMagicShowsTheBytesFound()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("text", "hello world"u8.ToArray()));
        Assert.Contains("not an IDX file", e.Message);
        Assert.Contains("68656C6C", e.Message); // "hell"
    }

    [Fact]
    public void TooShortForMagic()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("short", [0, 0]));
        Assert.Contains("not an IDX file", e.Message);
        Assert.Contains("only 2 byte(s)", e.Message);
    }

    [Fact]
    public void UnsupportedTypeIsNamed()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("t", IdxBytes(0x0A, [1], [0])));
        Assert.Contains("unsupported IDX element type 0x0A", e.Message);
    }

    [Fact]
    public void TruncatedHeader()
    {
        using var folder = new TempDir();
        var bytes = IdxBytes(0x08, [2, 3], []);
        var e = ReadFails(folder.Write("h", bytes[..9]));
        Assert.Contains("truncated header", e.Message);
        Assert.Contains("found 5", e.Message);
    }

    [Fact]
    public void TruncatedDataSaysExpectedAndFound()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("cut", IdxBytes(0x08, [2, 3], TwoByThreeBytes[..4])));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("announces 6 bytes of data, found 4", e.Message);

        var wide = new byte[4 * 5];
        e = ReadFails(folder.Write("cut32", IdxBytes(0x0C, [6], wide)));
        Assert.Contains("announces 24 bytes of data, found 20", e.Message);
    }

    [Fact]
    public void TruncatedGzipIsReportedAsTruncated()
    {
        using var folder = new TempDir();
        var payload = new byte[50_000];
        new Random(1).NextBytes(payload); // incompressible, so cutting the stream cuts the data
        var gz = TempDir.Gzip(IdxBytes(0x08, [50_000], payload));
        var e = ReadFails(folder.Write("cut.gz", gz[..(gz.Length / 2)]));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("announces 50000 bytes of data", e.Message);
    }

    [Fact]
    public void TrailingGarbageIsCounted()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("long", IdxBytes(0x08, [2, 3], [.. TwoByThreeBytes, 7, 7, 7])));
        Assert.Contains("trailing garbage: 3 byte(s) after the 6 bytes of data", e.Message);
    }

    [Fact]
    public void CorruptGzipStream()
    {
        using var folder = new TempDir();
        var gz = TempDir.Gzip(IdxBytes(0x08, [2, 3], TwoByThreeBytes));
        gz[2] = 0x07; // compression method: only 8 (deflate) exists
        var e = ReadFails(folder.Write("bad.gz", gz));
        Assert.Contains("corrupt gzip stream", e.Message);
    }

    [Fact]
    public void NegativeDimension()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("neg", IdxBytes(0x08, [-1], [])));
        Assert.Contains("negative size", e.Message);
    }

    [Fact]
    public void HugeShapeIsRejectedBeforeAllocating()
    {
        using var folder = new TempDir();
        var e = ReadFails(folder.Write("huge", IdxBytes(0x0E, [1 << 20, 1 << 20], [])));
        Assert.Contains("more than this reader can hold", e.Message);
    }
}
