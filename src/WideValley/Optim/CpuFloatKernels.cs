using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>Plumbing shared by the fused CPU kernels: raw pointers to tensor memory and chunked parallel loops.</summary>
internal static unsafe class CpuFloatKernels
{
    /// <summary>Elements per parallel work item; below this a tensor is processed on the calling thread.</summary>
    public const int Chunk = 16384;

    /// <summary>True when every tensor is a contiguous float32 CPU tensor, so raw-pointer kernels apply.</summary>
    public static bool Supports(IEnumerable<Tensor> tensors) =>
        tensors.All(t => t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous());

    /// <summary>The address of a CPU tensor's first element. The tensor must stay alive while it is used.</summary>
    public static float* Pointer(Tensor t) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.bytes));

    /// <summary>
    /// Runs <paramref name="body"/>(chunk, start, end) over [0, <paramref name="n"/>) in chunks of <see cref="Chunk"/>
    /// elements, on libtorch's thread count. Chunk boundaries depend only on n, so results never depend on threading.
    /// </summary>
    public static void ForEachChunk(long n, Action<int, long, long> body)
    {
        var chunks = (int)((n + Chunk - 1) / Chunk);
        var threads = Math.Max(1, Math.Min(get_num_threads(), chunks));
        if (threads == 1)
        {
            for (var c = 0; c < chunks; c++) body(c, (long)c * Chunk, Math.Min(n, (long)(c + 1) * Chunk));
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads },
            c => body(c, (long)c * Chunk, Math.Min(n, (long)(c + 1) * Chunk)));
    }
}
