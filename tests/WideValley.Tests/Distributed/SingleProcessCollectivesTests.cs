using WideValley.Distributed;
using static TorchSharp.torch;

namespace WideValley.Tests.Distributed;

/// <summary>
/// The default collectives (one process): identity operations on rank 0 of 1, the same tensor checks MPI needs, the
/// factory's choice without a launcher, the int-count splitting, the data pointer of offset views, and the message when
/// no MPI library loads. The MPI implementation itself runs in <see cref="MpiLaunchTests"/> (separate processes).
/// </summary>
public class SingleProcessCollectivesTests
{
    static Tensor Sample(ScalarType dtype, long n = 1000)
    {
        using var gen = new TorchSharp.torch.Generator(11);
        using var x = randn(n, dtype: ScalarType.Float64, generator: gen);
        return x.to(dtype);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void EveryOperationLeavesTheTensorBitForBit(ScalarType dtype)
    {
        using var c = new SingleProcessCollectives();
        Assert.Equal(0, c.Rank);
        Assert.Equal(1, c.Size);
        Assert.Equal("single process", c.Description);
        using var t = Sample(dtype);
        using var before = t.clone();
        c.AllReduceSum(t);
        c.AllReduceAverage(t);
        c.Broadcast(t, 0);
        c.Barrier();
        Assert.True(t.eq(before).all().item<bool>());
    }

    [Fact]
    public void WithoutALauncherTheFactoryPicksTheSingleProcess()
    {
        // The test host is not started by mpirun/srun; if it ever is, this precondition says so instead of a false failure.
        Assert.False(Collectives.LaunchedByMpi, "the test host itself runs under an MPI launcher: " +
            string.Join(", ", Collectives.LauncherVariables.Select(v => $"{v}={Environment.GetEnvironmentVariable(v)}")));
        using var c = Collectives.Create();
        Assert.IsType<SingleProcessCollectives>(c);
    }

    [Fact]
    public void BroadcastFromARankThatDoesNotExistIsRefused()
    {
        using var c = new SingleProcessCollectives();
        using var t = Sample(ScalarType.Float32, 3);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => c.Broadcast(t, 1));
        Assert.Contains("only rank 0", e.Message);
    }

    public static TheoryData<string, string> UnsupportedTensors => new()
    {
        { "int64", "element type is Int64" },
        { "float16", "element type is Float16" },
        { "transposed", "not contiguous" },
        { "strided", "not contiguous" },
    };

    static Tensor Unsupported(string kind) => kind switch
    {
        "int64" => arange(6L),
        "float16" => ones(6, dtype: ScalarType.Float16),
        "transposed" => ones(2, 3).t(),
        "strided" => ones(10).slice(0, 0, 10, 2),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [MemberData(nameof(UnsupportedTensors))]
    public void TensorsThatCannotTravelWithoutACopyGetAClearError(string kind, string problem)
    {
        using var c = new SingleProcessCollectives();
        using var t = Unsupported(kind);
        foreach (var call in new Action[] { () => c.AllReduceSum(t), () => c.AllReduceAverage(t), () => c.Broadcast(t, 0) })
        {
            var e = Assert.Throws<ArgumentException>(call);
            Assert.Contains(problem, e.Message);
            Assert.Contains("contiguous CPU float32 or float64", e.Message);
            Assert.Contains($"shape [{string.Join(", ", t.shape)}]", e.Message);
        }
    }

    [Fact]
    public void CountsAboveIntMaxValueAreSplitIntoIntSizedCalls()
    {
        Assert.Empty(CollectiveTensors.Pieces(0, 300));
        Assert.Equal(new (long, int)[] { (0, 300), (300, 300), (600, 300), (900, 100) }, CollectiveTensors.Pieces(1000, 300));
        Assert.Equal(new (long, int)[] { (0, 300), (300, 300) }, CollectiveTensors.Pieces(600, 300));
        long big = 5L * int.MaxValue + 17;
        var pieces = CollectiveTensors.Pieces(big, int.MaxValue).ToList();
        Assert.Equal(6, pieces.Count);
        Assert.All(pieces.Take(5), p => Assert.Equal(int.MaxValue, p.Count));
        Assert.Equal((5L * int.MaxValue, 17), pieces[^1]);
        Assert.Equal(big, pieces.Sum(p => (long)p.Count));
    }

    [Fact]
    public void TheDataPointerOfAnOffsetViewIsItsFirstElement()
    {
        using var storage = arange(100, dtype: ScalarType.Float64);
        using var view = storage.narrow(0, 37, 10);
        var start = CollectiveTensors.Address(storage);
        var first = CollectiveTensors.Address(view);
        Assert.Equal(37 * sizeof(double), first - start);
        Assert.Equal(37.0, BitConverter.Int64BitsToDouble(System.Runtime.InteropServices.Marshal.ReadInt64(first)));
    }

    [Fact]
    public void WithoutAnMpiLibraryTheErrorSaysWhatWasTriedAndWhatToInstall()
    {
        var e = Assert.Throws<MpiLibraryNotFoundException>(() => MpiLibrary.Open(["libwidevalley-no-such-mpi.so.40", "/nonexistent/libmpich.so.12"]));
        Assert.Contains("libwidevalley-no-such-mpi.so.40", e.Message);
        Assert.Contains("/nonexistent/libmpich.so.12", e.Message);
        Assert.Contains("apt-get install openmpi-bin", e.Message);
        Assert.Contains(Collectives.LibraryVariable, e.Message);
    }
}
