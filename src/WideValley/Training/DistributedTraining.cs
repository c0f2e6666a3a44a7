using WideValley.Distributed;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>How a training run is spread over the ranks of an MPI job (<c>train --distributed</c>).</summary>
public enum DistributedMode
{
    /// <summary>One process, or no coordination (the default).</summary>
    None,
    /// <summary>
    /// Every rank holds the same weights and takes its slice of each global minibatch; the gradients are averaged by one
    /// allreduce per gradient evaluation, so the ranks together take the steps one process with the global batch takes.
    /// </summary>
    DataParallel,
    /// <summary>
    /// Every rank trains its own replica with its own data order and noise, coupled by a replica optimizer
    /// (<see cref="WideValley.Optim.IReplicaOptimizer"/>: Parle, Elastic-SGD); the replicas' mean is evaluated.
    /// </summary>
    Replicas,
}

/// <summary>The names, seeds and checks of distributed training, shared by the CLI, <see cref="RunSetup"/> and the trainer.</summary>
public static class DistributedTraining
{
    /// <summary>--distributed data-parallel.</summary>
    public const string DataParallelName = "data-parallel";
    /// <summary>--distributed parle: replicas coupled by the optimizer "parle".</summary>
    public const string ParleName = "parle";
    /// <summary>--distributed elastic: replicas coupled by the optimizer "elastic-sgd".</summary>
    public const string ElasticName = "elastic";

    /// <summary>The values --distributed takes.</summary>
    public static IReadOnlyList<string> Names { get; } = [DataParallelName, ParleName, ElasticName];

    /// <summary>The mode a --distributed value selects; a clear error for an unknown one.</summary>
    public static DistributedMode ModeOf(string? name) => name switch
    {
        null => DistributedMode.None,
        DataParallelName => DistributedMode.DataParallel,
        ParleName or ElasticName => DistributedMode.Replicas,
        _ => throw new ArgumentException($"--distributed must be one of {string.Join(", ", Names)}, got '{name}'"),
    };

    /// <summary>The optimizer a replica mode trains with ("parle", "elastic-sgd"); null for data-parallel (any optimizer).</summary>
    public static string? OptimizerOf(string? name) => name switch
    {
        ParleName => "parle",
        ElasticName => "elastic-sgd",
        _ => null,
    };

    /// <summary>How checkpoints name the mode (<see cref="CheckpointMeta.Distributed"/>).</summary>
    public static string? CheckpointName(DistributedMode mode) => mode switch
    {
        DistributedMode.DataParallel => "data-parallel",
        DistributedMode.Replicas => "replicas",
        _ => null,
    };

    /// <summary>
    /// Rank <paramref name="rank"/>'s seed in a run seeded with <paramref name="seed"/> (ours): rank 0 keeps the run
    /// seed, so that a job of one rank is the plain run; rank r &gt; 0 gets SplitMix64(seed, r) (the same mixer as the
    /// minibatch stream's pass seeds), as a signed 64-bit number. Distinct, well spread and reproducible per rank.
    /// </summary>
    public static long RankSeed(long seed, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        return rank == 0 ? seed : unchecked((long)Data.MinibatchStream.MixSeed(seed, rank));
    }

    /// <summary>
    /// Copies rank 0's parameters and floating-point buffers into every other rank's model (one broadcast of one flat
    /// buffer for the parameters, one per buffer), so that all ranks start from the same weights whatever their
    /// initialisation drew. A collective call.
    /// </summary>
    public static void BroadcastModel(ICollectives collectives, nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        ArgumentNullException.ThrowIfNull(model);
        if (collectives.Size == 1) return;
        var parameters = model.parameters().Select(p => (Tensor)p).ToList();
        if (parameters.Count > 0)
        {
            using var flat = FlatBuffer.LayoutOf(parameters);
            flat.CopyFrom(parameters);
            collectives.Broadcast(flat.Flat, 0);
            flat.CopyTo(parameters);
        }
        using var noGrad = no_grad();
        foreach (var buffer in model.buffers())
        {
            if (buffer.dtype is not (ScalarType.Float32 or ScalarType.Float64) || buffer.numel() == 0) continue;
            using var copy = buffer.detach().cpu().contiguous().clone();
            collectives.Broadcast(copy, 0);
            buffer.copy_(copy);
        }
    }
}
