using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

using WideValley.Tests.Support;

namespace WideValley.Tests.Data;

public class TensorCacheTests
{
    static List<(string, Tensor)> Sample() =>
    [
        ("floats", arange(24, dtype: ScalarType.Float32).reshape(2, 3, 4) / 7),
        ("longs", tensor(new long[] { long.MinValue, -1, 0, long.MaxValue })),
        ("bytes", tensor(new byte[] { 0, 255, 7 })),
        ("empty", zeros(0, 5, dtype: ScalarType.Float64)),
    ];

    [Fact]
    public void RoundTripsTensorsExactly()
    {
        using var folder = new TempDir();
        using var scope = NewDisposeScope();
        var path = folder.File("a.wvcache");
        var written = Sample();
        TensorCache.Write(path, "key-1", written);
        var read = TensorCache.TryRead(path, "key-1", log: null);
        Assert.NotNull(read);
        Assert.Equal(written.Count, read.Count);
        foreach (var (name, tensor) in written)
        {
            Assert.Equal(tensor.dtype, read[name].dtype);
            Assert.Equal(tensor.shape, read[name].shape);
            Assert.True(tensor.equal(read[name]).all().item<bool>(), name);
        }
        Assert.Empty(folder.Leftovers());
    }

    [Fact]
    public void AbsentFileIsASilentMiss()
    {
        using var folder = new TempDir();
        var messages = new List<string>();
        Assert.Null(TensorCache.TryRead(folder.File("none.wvcache"), "k", messages.Add));
        Assert.Empty(messages);
    }

    /// <summary>Damages a valid cache file in one way and checks that the damage is detected and reported.</summary>
    [Theory]
    [InlineData("truncate-payload", "header announces")]
    [InlineData("truncate-header", "truncated")]
    [InlineData("flip-payload-bit", "checksum")]
    [InlineData("extra-bytes", "header announces")]
    [InlineData("wrong-magic", "wrong magic")]
    [InlineData("other-key", "key mismatch")]
    public void DamageIsDetectedReportedAndTreatedAsAMiss(string damage, string reported)
    {
        using var folder = new TempDir();
        using var scope = NewDisposeScope();
        var path = folder.File("c.wvcache");
        TensorCache.Write(path, "key-1", Sample());
        var bytes = File.ReadAllBytes(path);
        var key = "key-1";
        switch (damage)
        {
            case "truncate-payload": File.WriteAllBytes(path, bytes[..^40]); break;
            case "truncate-header": File.WriteAllBytes(path, bytes[..20]); break;
            case "flip-payload-bit": bytes[^50] ^= 0x04; File.WriteAllBytes(path, bytes); break;
            case "extra-bytes": File.WriteAllBytes(path, [.. bytes, 1, 2, 3]); break;
            case "wrong-magic": bytes[0] = (byte)'X'; File.WriteAllBytes(path, bytes); break;
            case "other-key": key = "key-2"; break;
        }
        var messages = new List<string>();
        Assert.Null(TensorCache.TryRead(path, key, messages.Add));
        var message = Assert.Single(messages);
        Assert.Contains(path, message);
        Assert.Contains(reported, message);
        Assert.Contains("recomputing", message);
    }

    [Fact]
    public void AFailedWriteLeavesTheOldFileAndNoTemporary()
    {
        using var folder = new TempDir();
        using var scope = NewDisposeScope();
        var path = folder.File("d.wvcache");
        TensorCache.Write(path, "old", [("x", ones(3))]);
        var before = File.ReadAllBytes(path);
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[1000]);
            throw new IOException("disk full (simulated)");
        }));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(folder.Leftovers());
        Assert.NotNull(TensorCache.TryRead(path, "old", log: null));
    }
}
