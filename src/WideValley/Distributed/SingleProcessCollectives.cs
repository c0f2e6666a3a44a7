using static TorchSharp.torch;

namespace WideValley.Distributed;

/// <summary>
/// The collectives of a job of one process, the default: rank 0 of 1, every operation leaves its tensor as it is
/// (the sum and the mean over one rank are the tensor itself). Tensors are still checked as MPI would need them, so
/// code that runs here runs unchanged under mpirun.
/// </summary>
public sealed class SingleProcessCollectives : ICollectives
{
    /// <summary>Always 0.</summary>
    public int Rank => 0;

    /// <summary>Always 1.</summary>
    public int Size => 1;

    /// <summary>"single process".</summary>
    public string Description => "single process";

    /// <summary>Leaves the tensor unchanged (the sum over one rank), after checking it.</summary>
    public void AllReduceSum(Tensor tensor) => CollectiveTensors.Validate(tensor, nameof(AllReduceSum));

    /// <summary>Leaves the tensor unchanged (the mean over one rank), after checking it.</summary>
    public void AllReduceAverage(Tensor tensor) => CollectiveTensors.Validate(tensor, nameof(AllReduceAverage));

    /// <summary>Leaves the tensor unchanged; <paramref name="root"/> must be 0.</summary>
    public void Broadcast(Tensor tensor, int root)
    {
        CollectiveTensors.Validate(tensor, nameof(Broadcast));
        if (root != 0)
            throw new ArgumentOutOfRangeException(nameof(root), root, "a single-process job has only rank 0 to broadcast from");
    }

    /// <summary>Returns at once.</summary>
    public void Barrier() { }

    /// <summary>Writes the reason to standard error and exits the process with <paramref name="exitCode"/>.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public void Abort(string reason, int exitCode = 1)
    {
        Console.Error.WriteLine($"error: {reason}");
        Console.Error.Flush();
        Environment.Exit(exitCode);
        throw new InvalidOperationException("unreachable: Environment.Exit returned");
    }

    /// <summary>Nothing to release.</summary>
    public void Dispose() { }
}
