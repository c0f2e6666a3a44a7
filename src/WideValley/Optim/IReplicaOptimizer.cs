using WideValley.Distributed;

namespace WideValley.Optim;

/// <summary>
/// An optimizer whose ranks hold different weights (replicas) coupled through collectives, as in Parle and
/// Elastic-SGD: each rank trains its own replica, and the model the run is judged by is the replicas' mean (the
/// reference). The trainer evaluates and reports the reference, and checkpoints every replica, through this interface;
/// it knows nothing else of the algorithm.
/// </summary>
public interface IReplicaOptimizer
{
    /// <summary>The ranks the replicas live on (every rank must make the same calls in the same order).</summary>
    ICollectives Collectives { get; }

    /// <summary>
    /// A collective call: replaces this rank's parameters by the mean of every replica's (one allreduce of one flat
    /// buffer) until the returned scope is disposed, which puts this replica's own weights back bit for bit. Nothing else
    /// (optimizer state, counters, random streams) changes.
    /// </summary>
    IDisposable UseReference();
}
