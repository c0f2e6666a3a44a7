using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>Where a <see cref="MinibatchStream"/> or <see cref="BpttStream"/> is: which pass over the data, and how far into it.</summary>
public readonly record struct StreamPosition(long Pass, long Offset);

/// <summary>
/// An endless stream of training minibatches drawn from tensors held in memory: the samples of each pass over the data
/// follow a fresh permutation (randperm + index_select, which is far faster than a DataLoader), and minibatches are
/// consecutive chunks of the concatenated permutations, so every minibatch has exactly <see cref="BatchSize"/> samples
/// and a minibatch may straddle two passes. Pass p's permutation depends only on (seed, p): the order differs every
/// pass, is reproducible, and a stream restored to a <see cref="StreamPosition"/> continues exactly as the original.
/// </summary>
public sealed class MinibatchStream : IDisposable
{
    readonly LabeledData _data;
    readonly long _seed;
    Tensor? _permutation;
    long _permutationPass = -1;

    /// <summary>Samples per minibatch (at least 1; may exceed <see cref="Count"/>).</summary>
    public int BatchSize { get; }
    /// <summary>Samples in the set the stream draws from.</summary>
    public long Count => _data.Count;
    /// <summary>Minibatches per pass over the data; fractional when the batch size does not divide the set size.</summary>
    public double MinibatchesPerPass => (double)Count / BatchSize;
    /// <summary>
    /// The pass and the offset into that pass's permutation of the next minibatch's first sample. Save it to checkpoint
    /// the stream; setting it makes the stream continue exactly from there.
    /// </summary>
    public StreamPosition Position { get; set; }

    /// <summary>A stream over <paramref name="data"/> at pass 0, offset 0. Does not take ownership of <paramref name="data"/>.</summary>
    /// <param name="data">The samples to draw from (not empty); must outlive the stream.</param>
    /// <param name="batchSize">Samples per minibatch (at least 1).</param>
    /// <param name="seed">Seeds every pass's permutation.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is below 1.</exception>
    /// <exception cref="ArgumentException"><paramref name="data"/> is empty.</exception>
    public MinibatchStream(LabeledData data, int batchSize, long seed)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        if (data.Count < 1) throw new ArgumentException("cannot draw minibatches from an empty set", nameof(data));
        _data = data;
        _seed = seed;
        BatchSize = batchSize;
    }

    /// <summary>Draws the next minibatch. The tensors belong to the caller's dispose scope.</summary>
    public (Tensor Inputs, Tensor Labels) Next() => Next(0, BatchSize);

    /// <summary>
    /// Draws the next minibatch but gathers only its rows [<paramref name="first"/>, <paramref name="first"/> +
    /// <paramref name="count"/>): a data-parallel rank's slice, without copying the other ranks' samples. The stream
    /// advances by a whole minibatch, exactly as <see cref="Next()"/> does. The tensors belong to the caller's dispose scope.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The rows do not lie inside one minibatch, or <paramref name="count"/> is below 1.</exception>
    public (Tensor Inputs, Tensor Labels) Next(long first, long count)
    {
        if (count < 1 || first < 0 || first + count > BatchSize)
            throw new ArgumentOutOfRangeException(nameof(count), $"rows [{first}, {first + count}) of a minibatch: they must lie inside its {BatchSize} rows and be at least one");
        using var scope = NewDisposeScope();
        Tensor indices;
        var (pass, offset) = Position;
        var n = Count;
        if (offset + BatchSize <= n)
        {
            indices = PermutationFor(pass).narrow(0, offset, BatchSize);
            Position = offset + BatchSize == n ? new StreamPosition(pass + 1, 0) : new StreamPosition(pass, offset + BatchSize);
        }
        else
        {
            // The batch straddles passes (possibly several, when the batch is larger than the set).
            var parts = new List<Tensor>();
            long need = BatchSize;
            while (need > 0)
            {
                var take = Math.Min(need, n - offset);
                parts.Add(PermutationFor(pass).narrow(0, offset, take).clone());
                need -= take;
                offset += take;
                if (offset == n) { pass++; offset = 0; }
            }
            indices = cat(parts, 0);
            Position = new StreamPosition(pass, offset);
        }
        if (count < BatchSize) indices = indices.narrow(0, first, count);
        var x = _data.Inputs.index_select(0, indices);
        var y = _data.Labels.index_select(0, indices);
        return (x.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope());
    }

    Tensor PermutationFor(long pass)
    {
        if (pass != _permutationPass || _permutation is null)
        {
            _permutation?.Dispose();
            using var gen = new Generator(MixSeed(_seed, pass));
            _permutation = randperm(Count, generator: gen).to(_data.Inputs.device).DetachFromDisposeScope();
            _permutationPass = pass;
        }
        return _permutation;
    }

    /// <summary>SplitMix64 of (seed, pass): distinct, well-spread generator seeds per pass.</summary>
    internal static ulong MixSeed(long seed, long pass)
    {
        unchecked
        {
            var z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)pass + 0x632BE59BD9B4E019UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>Frees the cached permutation (not the data).</summary>
    public void Dispose() => _permutation?.Dispose();
}

/// <summary>Sequential, unshuffled minibatches over a set, for evaluation. Yields views (no copies).</summary>
public static class Batches
{
    /// <summary>
    /// Minibatches of <paramref name="batchSize"/> samples in stored order; the last may be smaller. The tensors are views of
    /// <paramref name="data"/>'s.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is below 1 (thrown on enumeration).</exception>
    public static IEnumerable<(Tensor Inputs, Tensor Labels)> InOrder(LabeledData data, int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        for (long start = 0; start < data.Count; start += batchSize)
        {
            var len = Math.Min(batchSize, data.Count - start);
            yield return (data.Inputs.narrow(0, start, len), data.Labels.narrow(0, start, len));
        }
    }
}
