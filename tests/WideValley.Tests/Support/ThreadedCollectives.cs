using WideValley.Distributed;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Tests.Support;

/// <summary>
/// K in-process "ranks" on K threads, for testing replica optimizers (Parle, Elastic-SGD) without MPI. Each rank gets
/// its own <see cref="ICollectives"/> over one shared world: a collective publishes the rank's tensor, waits at a
/// barrier until every rank has, computes the result from every rank's tensor in rank order (so every rank gets the
/// same bits, as MPI's deterministic reductions do), waits again, and only then writes its own tensor, so no rank
/// reads a tensor another has already overwritten. <see cref="Run{T}"/> starts the ranks and collects their results;
/// an exception on one rank (or <see cref="ICollectives.Abort"/>) breaks the others out of their barriers.
/// </summary>
public sealed class ThreadedCollectives : ICollectives
{
    sealed class World(int size)
    {
        public readonly Barrier Barrier = new(size);
        public readonly Tensor?[] Slots = new Tensor?[size];
        public readonly CancellationTokenSource Failed = new();
    }

    readonly World _world;

    ThreadedCollectives(World world, int rank)
    {
        _world = world;
        Rank = rank;
    }

    /// <inheritdoc/>
    public int Rank { get; }
    /// <inheritdoc/>
    public int Size => _world.Slots.Length;
    /// <inheritdoc/>
    public string Description => $"{Size} in-process ranks on threads (tests)";

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="ranks"/> threads, each with its rank's collectives, and returns
    /// the results by rank. If any rank throws, the others are released from their barriers and the first exception
    /// is rethrown (with the rank in the message).
    /// </summary>
    public static T[] Run<T>(int ranks, Func<ICollectives, T> body)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        var world = new World(ranks);
        var results = new T[ranks];
        var errors = new Exception?[ranks];
        var threads = Enumerable.Range(0, ranks).Select(rank => new Thread(() =>
        {
            try
            {
                results[rank] = body(new ThreadedCollectives(world, rank));
            }
            catch (Exception e)
            {
                errors[rank] = e;
                world.Failed.Cancel();
            }
        }, maxStackSize: 16 << 20) { Name = $"rank {rank}" }).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        // The rank that failed first is the one that did not fail by being cancelled.
        var first = errors.Select((e, r) => (e, r)).Where(x => x.e is not null)
            .OrderBy(x => x.e is OperationCanceledException ? 1 : 0).FirstOrDefault();
        if (first.e is not null) throw new InvalidOperationException($"rank {first.r} of {ranks} failed: {first.e.Message}", first.e);
        world.Barrier.Dispose();
        return results;
    }

    void Wait() => _world.Barrier.SignalAndWait(_world.Failed.Token);

    /// <summary>Every rank's tensor summed in rank order, into a new tensor (each rank computes the same bits).</summary>
    Tensor Reduce(Tensor tensor, string operation)
    {
        CollectiveTensors.Validate(tensor, operation);
        _world.Slots[Rank] = tensor;
        Wait();
        using var noGrad = no_grad();
        var sum = _world.Slots[0]!.clone();
        for (var r = 1; r < Size; r++)
        {
            if (_world.Slots[r]!.numel() != tensor.numel() || _world.Slots[r]!.dtype != tensor.dtype)
                throw new InvalidOperationException($"{operation}: rank {r} passed {_world.Slots[r]!.numel()} {_world.Slots[r]!.dtype} elements, rank {Rank} {tensor.numel()} {tensor.dtype}");
            sum.add_(_world.Slots[r]!);
        }
        Wait();
        return sum;
    }

    /// <inheritdoc/>
    public void AllReduceSum(Tensor tensor)
    {
        using var sum = Reduce(tensor, nameof(AllReduceSum));
        using var noGrad = no_grad();
        tensor.copy_(sum);
    }

    /// <summary>The sum, then divided by the number of ranks (as MpiCollectives does; one rank leaves the tensor as it is).</summary>
    public void AllReduceAverage(Tensor tensor)
    {
        using var sum = Reduce(tensor, nameof(AllReduceAverage));
        using var noGrad = no_grad();
        if (Size > 1) sum.DivideBy_(Size);
        tensor.copy_(sum);
    }

    /// <inheritdoc/>
    public void Broadcast(Tensor tensor, int root)
    {
        CollectiveTensors.Validate(tensor, nameof(Broadcast));
        if (root < 0 || root >= Size) throw new ArgumentOutOfRangeException(nameof(root), root, $"the root must be a rank of this job, 0 to {Size - 1}");
        _world.Slots[Rank] = tensor;
        Wait();
        using var copy = _world.Slots[root]!.clone();
        Wait();
        using var noGrad = no_grad();
        if (Rank != root) tensor.copy_(copy);
    }

    /// <inheritdoc/>
    public void Barrier() => Wait();

    /// <summary>Releases every other rank from its barrier and throws (a test cannot end the process).</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public void Abort(string reason, int exitCode = 1)
    {
        _world.Failed.Cancel();
        throw new InvalidOperationException($"rank {Rank} aborted the job (exit code {exitCode}): {reason}");
    }

    /// <summary>Nothing to release (the world is the runner's).</summary>
    public void Dispose() { }
}
