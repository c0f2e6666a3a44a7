using static TorchSharp.torch;

namespace WideValley.Distributed;

/// <summary>
/// The collective operations data-parallel training, Parle and Elastic-SGD need, over the processes (ranks) of one
/// job. Every operation works in place on a contiguous CPU float32 or float64 tensor, whose memory is handed to the
/// transport as is (no copy): keep parameters and gradients in one flat buffer (<see cref="FlatBuffer"/>) and make one
/// call per step, not one per tensor. Every rank must make the same calls in the same order with tensors of the same
/// element count and type (MPI's rule for collectives); a mismatch hangs or fails in the transport, it cannot be
/// detected here. The tensor's memory is written behind autograd's back: call these outside graph construction, as
/// an optimizer step does.
/// </summary>
public interface ICollectives : IDisposable
{
    /// <summary>This process's index in the job, 0 to <see cref="Size"/> - 1.</summary>
    int Rank { get; }

    /// <summary>The number of processes in the job (1 for <see cref="SingleProcessCollectives"/>).</summary>
    int Size { get; }

    /// <summary>What carries the collectives, for logs: "single process", or the MPI library, its version and ABI.</summary>
    string Description { get; }

    /// <summary>Replaces <paramref name="tensor"/> on every rank with the element-wise sum of every rank's tensor.</summary>
    /// <exception cref="ArgumentException">The tensor is not contiguous, not on the CPU, or neither float32 nor float64.</exception>
    void AllReduceSum(Tensor tensor);

    /// <summary>Replaces <paramref name="tensor"/> on every rank with the element-wise mean of every rank's tensor (the sum divided by <see cref="Size"/>).</summary>
    /// <exception cref="ArgumentException">The tensor is not contiguous, not on the CPU, or neither float32 nor float64.</exception>
    void AllReduceAverage(Tensor tensor);

    /// <summary>Copies rank <paramref name="root"/>'s <paramref name="tensor"/> into every other rank's.</summary>
    /// <exception cref="ArgumentException">The tensor is not contiguous, not on the CPU, or neither float32 nor float64.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="root"/> is not a rank of this job.</exception>
    void Broadcast(Tensor tensor, int root);

    /// <summary>Returns on each rank only when every rank has called it.</summary>
    void Barrier();

    /// <summary>
    /// Ends the whole job after a fatal error, writing <paramref name="reason"/> to standard error first: with MPI every
    /// rank is stopped (MPI_Abort), so no rank is left waiting in a collective for one that died.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    void Abort(string reason, int exitCode = 1);
}
