using System.Buffers.Binary;
using System.Text;
using TorchSharp;
using WideValley.Data;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Data;

/// <summary>
/// The .npy reader against files NumPy 1.24 wrote (Fixtures/npy, made by make_npy.py: a(i, j, k) = 100 i + 10 j + k)
/// and against hand-built bytes for each malformation.
/// </summary>
public sealed class NpyTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "npy", name);

    private static double Expected(long i, long j, long k) => 100 * i + 10 * j + k;

    private static void AssertHoldsTheFixtureValues(Tensor t)
    {
        Assert.Equal(new long[] { 2, 3, 4 }, t.shape);
        using var asDouble = t.to(ScalarType.Float64);
        var values = asDouble.data<double>().ToArray();
        var index = 0;
        for (var i = 0; i < 2; i++)
        for (var j = 0; j < 3; j++)
        for (var k = 0; k < 4; k++)
            Assert.Equal(Expected(i, j, k), values[index++]);
    }

    [Theory]
    [InlineData("f4_le_v1.npy", NpyElementType.Float32, 1)]
    [InlineData("f8_be_v1.npy", NpyElementType.Float64, 1)]
    [InlineData("f4_le_v2.npy", NpyElementType.Float32, 2)]
    [InlineData("i4_le_v3.npy", NpyElementType.Int32, 3)]
    [InlineData("u1_v1.npy", NpyElementType.UInt8, 1)]
    [InlineData("i8_be_v1.npy", NpyElementType.Int64, 1)]
    [InlineData("f4_fortran_v1.npy", NpyElementType.Float32, 1)]
    public void ReadsWhatNumPyWroteInEveryVersionByteOrderAndMemoryOrder(string file, NpyElementType type, int major)
    {
        var array = Npy.Read(Fixture(file));
        Assert.Equal(type, array.ElementType);
        Assert.Equal((major, 0), array.Version);
        Assert.Equal(24, array.ElementCount);
        using var t = array.ToTensor();
        Assert.Equal(Npy.TorchType(type), t.dtype);
        AssertHoldsTheFixtureValues(t);
    }

    [Fact]
    public void LabelledDataFromTwoFilesScalesUInt8ImagesAndWidensLabels()
    {
        using var data = Npy.ReadLabeled(Fixture("inputs_u1.npy"), Fixture("labels_i4.npy"));
        Assert.Equal(24, data.Count);
        Assert.Equal(10, data.NumClasses);
        Assert.Equal(ScalarType.Float32, data.Inputs.dtype);
        Assert.Equal(new long[] { 24, 1, 2, 2 }, data.Inputs.shape);
        Assert.Equal(ScalarType.Int64, data.Labels.dtype);
        Assert.Equal(7L, data.Labels[17].item<long>());
        // Image 5, pixel (1, 0) holds 5 * 4 + 2 = 22, scaled to [0, 1].
        Assert.Equal(22 / 255.0, data.Inputs[5, 0, 1, 0].item<float>(), 6);
    }

    [Fact]
    public void LabelledDataRefusesDisagreeingCountsFloatLabelsAndOutOfRangeLabels()
    {
        using var dir = new TempDir();
        var shortLabels = dir.Write("short.npy", Build("<i8", "(23,)", new byte[23 * 8]));
        var e = Assert.Throws<DataException>(() => Npy.ReadLabeled(Fixture("inputs_u1.npy"), shortLabels));
        Assert.Contains("23 labels", e.Message);
        Assert.Contains("24 samples", e.Message);

        e = Assert.Throws<DataException>(() => Npy.ReadLabeled(Fixture("inputs_u1.npy"), Fixture("f4_le_v1.npy")));
        Assert.Contains("1-D", e.Message);
        var floatLabels = dir.Write("float.npy", Build("<f4", "(24,)", new byte[24 * 4]));
        e = Assert.Throws<DataException>(() => Npy.ReadLabeled(Fixture("inputs_u1.npy"), floatLabels));
        Assert.Contains("integer class indices", e.Message);

        e = Assert.Throws<DataException>(() => Npy.ReadLabeled(Fixture("inputs_u1.npy"), Fixture("labels_i8.npy"), numClasses: 5));
        Assert.Contains("label 9", e.Message);
        Assert.Contains("[0, 4]", e.Message);
        Assert.Equal(Fixture("labels_i8.npy"), e.Path);
    }

    [Fact]
    public void HandBuiltLittleAndBigEndianFilesOfEachVersionRoundTrip()
    {
        using var dir = new TempDir();
        var values = new long[] { -3, 0, 5, long.MaxValue, long.MinValue, 42 };
        foreach (var bigEndian in new[] { false, true })
        foreach (var major in new[] { 1, 2, 3 })
        {
            var data = new byte[values.Length * 8];
            for (var n = 0; n < values.Length; n++)
            {
                if (bigEndian) BinaryPrimitives.WriteInt64BigEndian(data.AsSpan(n * 8), values[n]);
                else BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(n * 8), values[n]);
            }
            var path = dir.Write($"v{major}{bigEndian}.npy", Build(bigEndian ? ">i8" : "<i8", "(2, 3)", data, major));
            using var t = Npy.ReadTensor(path);
            Assert.Equal(new long[] { 2, 3 }, t.shape);
            Assert.Equal(values, t.data<long>().ToArray());
        }
    }

    [Fact]
    public void ScalarsEmptyArraysAndOneElementTuplesParse()
    {
        using var dir = new TempDir();
        var scalar = new byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(scalar, 2.5);
        using (var t = Npy.ReadTensor(dir.Write("scalar.npy", Build("<f8", "()", scalar))))
        {
            Assert.Empty(t.shape);
            Assert.Equal(2.5, t.item<double>());
        }
        using (var t = Npy.ReadTensor(dir.Write("empty.npy", Build("<f4", "(0, 7)", []))))
            Assert.Equal(new long[] { 0, 7 }, t.shape);
        using (var t = Npy.ReadTensor(dir.Write("bool.npy", Build("|b1", "(3,)", [1, 0, 1]))))
            Assert.Equal(new[] { true, false, true }, t.data<bool>().ToArray());
    }

    [Fact]
    public void MalformedFilesGetErrorsThatNameTheByteAndWhatWasExpected()
    {
        using var dir = new TempDir();
        string Write(string name, byte[] bytes) => dir.Write(name, bytes);
        DataException Fails(string path) => Assert.Throws<DataException>(() => Npy.Read(path));

        var e = Fails(Write("magic.npy", Encoding.ASCII.GetBytes("PK\u0003\u0004 something")));
        Assert.Contains("byte 0", e.Message);
        Assert.Contains("magic", e.Message);
        Assert.Contains(".npz", e.Message);

        var v4 = Build("<f4", "(1,)", new byte[4]);
        v4[6] = 4;
        e = Fails(Write("v4.npy", v4));
        Assert.Contains("byte 6", e.Message);
        Assert.Contains("version 4.0", e.Message);

        var truncatedHeader = Build("<f4", "(1,)", new byte[4])[..30];
        e = Fails(Write("header.npy", truncatedHeader));
        Assert.Contains("ends inside the header", e.Message);

        var truncatedData = Build("<f4", "(2, 3)", new byte[24]);
        e = Fails(Write("data.npy", truncatedData[..^5]));
        Assert.Contains("ends inside the data", e.Message);
        Assert.Contains("24 bytes", e.Message);
        Assert.Contains("found 19", e.Message);

        e = Fails(Write("trailing.npy", [.. Build("<f4", "(2,)", new byte[8]), 0, 0]));
        Assert.Contains("after the data", e.Message);

        e = Fails(Write("complex.npy", Build("<c8", "(1,)", new byte[8])));
        Assert.Contains("'<c8' is not supported", e.Message);

        e = Fails(Write("structured.npy", BuildHeader("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 1)));
        Assert.Contains("structured", e.Message);

        e = Fails(Write("nokey.npy", BuildHeader("{'descr': '<f4', 'shape': (1,), }", 1)));
        Assert.Contains("no 'fortran_order' key", e.Message);

        e = Fails(Write("badshape.npy", BuildHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1, x), }", 1)));
        Assert.Contains("an integer dimension", e.Message);
        Assert.Contains("byte ", e.Message);

        e = Fails(Write("garbage.npy", BuildHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } trailing", 1)));
        Assert.Contains("after the closing '}'", e.Message);

        Assert.Throws<DataException>(() => Npy.Read(dir.File("missing.npy")));
    }

    /// <summary>An .npy file as NumPy lays it out: magic, version, header length, header padded to 64 bytes, data.</summary>
    internal static byte[] Build(string descr, string shape, byte[] data, int major = 1, bool fortran = false)
    {
        var header = BuildHeader($"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shape}, }}", major);
        return [.. header, .. data];
    }

    private static byte[] BuildHeader(string dict, int major)
    {
        var prefix = 6 + 2 + (major == 1 ? 2 : 4);
        var text = dict;
        while ((prefix + text.Length + 1) % 64 != 0) text += " ";
        text += "\n";
        var body = Encoding.ASCII.GetBytes(text);
        var result = new byte[prefix + body.Length];
        result[0] = 0x93;
        Encoding.ASCII.GetBytes("NUMPY").CopyTo(result, 1);
        result[6] = (byte)major;
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8), (ushort)body.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(8), (uint)body.Length);
        body.CopyTo(result, prefix);
        return result;
    }
}
