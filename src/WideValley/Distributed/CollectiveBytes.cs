using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace WideValley.Distributed;

/// <summary>
/// Byte messages over any <see cref="ICollectives"/> (serialised checkpoints, run states), built from its float
/// broadcast: the length travels as one float64 (exact up to 2^53), the bytes as float32 words. A broadcast copies the
/// words bit for bit (no arithmetic touches them), so any byte pattern, NaN-looking words included, arrives unchanged.
/// Meant for rare, moderate messages (a checkpoint per epoch or per interval), not for per-step traffic: a gather is
/// one broadcast per rank, so every rank receives every message (K - 1 times the data a true gather would move).
/// </summary>
public static class CollectiveBytes
{
    /// <summary>
    /// Rank <paramref name="root"/>'s <paramref name="data"/> on every rank (a collective call: every rank must make
    /// it; only the root's <paramref name="data"/> is read, the others may pass null).
    /// </summary>
    /// <exception cref="ArgumentNullException">The root passed no data.</exception>
    public static byte[] BroadcastBytes(this ICollectives collectives, byte[]? data, int root)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        var isRoot = collectives.Rank == root;
        if (isRoot) ArgumentNullException.ThrowIfNull(data);
        using var scope = NewDisposeScope();
        var length = tensor(new[] { isRoot ? (double)data!.Length : 0.0 }, ScalarType.Float64);
        collectives.Broadcast(length, root);
        var count = (long)length.item<double>();
        if (count == 0) return [];
        var words = new float[(count + 3) / 4];
        if (isRoot) data!.AsSpan().CopyTo(MemoryMarshal.AsBytes(words.AsSpan()));
        var carrier = tensor(words, ScalarType.Float32);
        collectives.Broadcast(carrier, root);
        var received = carrier.data<float>().ToArray();
        return MemoryMarshal.AsBytes(received.AsSpan())[..(int)count].ToArray();
    }

    /// <summary>
    /// Every rank's <paramref name="data"/>, in rank order, on rank <paramref name="root"/>; null on the other ranks
    /// (a collective call: every rank must make it).
    /// </summary>
    public static IReadOnlyList<byte[]>? GatherBytes(this ICollectives collectives, byte[] data, int root)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        ArgumentNullException.ThrowIfNull(data);
        var gathered = new List<byte[]>(collectives.Size);
        for (var rank = 0; rank < collectives.Size; rank++)
        {
            if (rank == root) { gathered.Add(data); continue; }
            var message = collectives.BroadcastBytes(collectives.Rank == rank ? data : null, rank);
            gathered.Add(message);
        }
        return collectives.Rank == root ? gathered : null;
    }

    /// <summary>
    /// Whether <paramref name="flag"/> is true on any rank (one float64 allreduce; a collective call), so that every
    /// rank takes the same branch after a decision only some ranks could make.
    /// </summary>
    public static bool AnyRank(this ICollectives collectives, bool flag)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        if (collectives.Size == 1) return flag;
        using var value = tensor(new[] { flag ? 1.0 : 0.0 }, ScalarType.Float64);
        collectives.AllReduceSum(value);
        return value.item<double>() > 0;
    }
}
