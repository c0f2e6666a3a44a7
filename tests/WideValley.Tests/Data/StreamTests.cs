using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

namespace WideValley.Tests.Data;

public class StreamTests
{
    static LabeledData Indexed(int n) =>
        new(arange(n, ScalarType.Float32).unsqueeze(1), arange(n, ScalarType.Int64), n);

    [Theory]
    [InlineData(10, 5)]
    [InlineData(10, 3)]
    [InlineData(7, 16)]
    public void EachPassVisitsEverySampleOnce(int n, int batch)
    {
        using var data = Indexed(n);
        using var stream = new MinibatchStream(data, batch, seed: 3);
        var seen = new List<long>();
        for (var i = 0; i < 3 * n; i++) // enough batches for several passes
        {
            using var scope = NewDisposeScope();
            var (x, y) = stream.Next();
            Assert.Equal(batch, (int)y.shape[0]);
            Assert.Equal(y.data<long>().ToArray(), x.squeeze(1).to(ScalarType.Int64).data<long>().ToArray());
            seen.AddRange(y.data<long>().ToArray());
        }
        for (var pass = 0; pass < seen.Count / n; pass++)
            Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), seen.Skip(pass * n).Take(n).Order());
    }

    [Theory]
    [InlineData(10, 6, 3)] // minibatches straddle passes
    [InlineData(12, 4, 2)]
    [InlineData(5, 8, 4)] // minibatches larger than the set
    public void ShardSlicesAreTheWholeMinibatchesRows(int n, int batch, int ranks)
    {
        // A data-parallel rank gathers only its rows: together the ranks see exactly the minibatches of one stream.
        using var data = Indexed(n);
        using var whole = new MinibatchStream(data, batch, seed: 5);
        var shards = Enumerable.Range(0, ranks).Select(_ => new MinibatchStream(data, batch, seed: 5)).ToArray();
        var per = batch / ranks;
        for (var i = 0; i < 4 * n; i++)
        {
            using var scope = NewDisposeScope();
            var expected = whole.Next().Labels.data<long>().ToArray();
            var got = shards.SelectMany((s, r) =>
            {
                var (x, y) = s.Next(r * per, per);
                Assert.Equal(y.data<long>().ToArray(), x.squeeze(1).to(ScalarType.Int64).data<long>().ToArray());
                return y.data<long>().ToArray();
            }).ToArray();
            Assert.Equal(expected.Take(per * ranks), got);
            Assert.All(shards, s => Assert.Equal(whole.Position, s.Position));
        }
        foreach (var s in shards) s.Dispose();
    }

    [Theory]
    [InlineData(-1, 2)]
    [InlineData(0, 0)]
    [InlineData(3, 2)]
    public void ShardRowsOutsideTheMinibatchAreRefused(long first, long count)
    {
        using var data = Indexed(10);
        using var stream = new MinibatchStream(data, 4, seed: 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => stream.Next(first, count));
        Assert.Contains("inside its 4 rows", e.Message);
        Assert.Equal(new StreamPosition(0, 0), stream.Position); // nothing drawn
    }

    [Fact]
    public void OrderDiffersBetweenPassesAndIsReproducible()
    {
        using var data = Indexed(50);
        long[] Draw(long seed, int batches)
        {
            using var s = new MinibatchStream(data, 10, seed);
            var all = new List<long>();
            for (var i = 0; i < batches; i++) { using var scope = NewDisposeScope(); all.AddRange(s.Next().Labels.data<long>().ToArray()); }
            return all.ToArray();
        }
        var a = Draw(1, 10);
        Assert.Equal(a, Draw(1, 10));
        Assert.NotEqual(a.Take(50), a.Skip(50));          // pass 2 is a different order
        Assert.NotEqual(a, Draw(2, 10));                   // another seed, another order
    }

    [Fact]
    public void RestoredPositionContinuesIdentically()
    {
        using var data = Indexed(23);
        using var a = new MinibatchStream(data, 4, 9);
        for (var i = 0; i < 11; i++) { using var scope = NewDisposeScope(); a.Next(); }
        using var b = new MinibatchStream(data, 4, 9) { Position = a.Position };
        for (var i = 0; i < 20; i++)
        {
            using var scope = NewDisposeScope();
            Assert.Equal(a.Next().Labels.data<long>().ToArray(), b.Next().Labels.data<long>().ToArray());
        }
    }

    [Fact]
    public void BpttWindowsAreContiguousRowsWithShiftedTargets()
    {
        using var tokens = arange(0L, 41L, 1L, ScalarType.Int64); // 41 tokens, 4 rows of 10 (1 dropped)
        using var stream = new BpttStream(tokens, batchSize: 4, unroll: 4);
        Assert.Equal(10, stream.Columns);
        Assert.Equal(3, stream.WindowsPerPass); // windows over 9 input columns: 4, 4, 1
        var lengths = new List<long>();
        for (var w = 0; w < 3; w++)
        {
            var (x, y, starts) = stream.Next();
            Assert.Equal(w == 0, starts);
            lengths.Add(x.shape[1]);
            // row b, column c holds token 10b + c; the target is the next token of the same row.
            var xs = x.data<long>().ToArray();
            var ys = y.data<long>().ToArray();
            for (var i = 0; i < xs.Length; i++) Assert.Equal(xs[i] + 1, ys[i]);
            Assert.Equal(10 * 2 + w * 4, x[2, 0].item<long>());
        }
        Assert.Equal(new long[] { 4, 4, 1 }, lengths);
        Assert.Equal(new StreamPosition(1, 0), stream.Position);
        Assert.True(stream.Next().StartsPass);
    }

    [Fact]
    public void BpttRowSlicesAreTheWholeWindowsRows()
    {
        using var tokens = arange(200, ScalarType.Int64);
        using var whole = new BpttStream(tokens, 6, 7);
        using var shard = new BpttStream(tokens, 6, 7);
        for (var i = 0; i < 2 * whole.WindowsPerPass; i++)
        {
            using var scope = NewDisposeScope();
            var (x, y, starts) = whole.Next();
            var (xs, ys, startsToo) = shard.Next(2, 3);
            Assert.Equal(starts, startsToo);
            Assert.Equal(x.narrow(0, 2, 3).data<long>().ToArray(), xs.data<long>().ToArray());
            Assert.Equal(y.narrow(0, 2, 3).data<long>().ToArray(), ys.data<long>().ToArray());
            Assert.Equal(whole.Position, shard.Position);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => shard.Next(4, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => shard.Next(0, 0));
    }

    [Fact]
    public void BpttRejectsTooShortStreams()
    {
        using var tokens = arange(0L, 5L, 1L, ScalarType.Int64);
        var e = Assert.Throws<ArgumentException>(() => new BpttStream(tokens, 4, 3, "tiny.txt"));
        Assert.Contains("tiny.txt", e.Message);
    }

    [Fact]
    public void SplitOffIsDisjointAndSeeded()
    {
        using var data = Indexed(100);
        var (rest, held) = data.SplitOff(20, seed: 5);
        using (rest) using (held)
        {
            var r = rest.Labels.data<long>().ToArray();
            var h = held.Labels.data<long>().ToArray();
            Assert.Equal(80, r.Length);
            Assert.Equal(20, h.Length);
            Assert.Empty(r.Intersect(h));
            var (_, again) = data.SplitOff(20, seed: 5);
            using (again) Assert.Equal(h, again.Labels.data<long>().ToArray());
        }
    }
}
