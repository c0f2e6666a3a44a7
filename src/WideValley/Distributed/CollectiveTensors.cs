using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Distributed;

/// <summary>What every collective checks about its tensor, and how its memory is handed to MPI.</summary>
internal static unsafe class CollectiveTensors
{
    /// <summary>
    /// The element type to send, or a clear error when the tensor cannot be sent without a copy. Single-process and MPI
    /// collectives both check, so code that runs on one process runs unchanged under mpirun.
    /// </summary>
    public static MpiElement Validate(Tensor tensor, string operation)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var element = tensor.dtype switch
        {
            ScalarType.Float32 => MpiElement.Float32,
            ScalarType.Float64 => (MpiElement?)MpiElement.Float64,
            _ => null,
        };
        var problem =
            element is null ? $"its element type is {tensor.dtype}" :
            tensor.device_type != DeviceType.CPU ? $"it is on {tensor.device}" :
            !tensor.is_contiguous() ? "it is not contiguous (a transposed or strided view)" :
            null;
        if (problem is null) return element!.Value;
        throw new ArgumentException(
            $"{operation} works in place on the memory of a contiguous CPU float32 or float64 tensor (no copy is made), " +
            $"but {problem}: got a {tensor.dtype} tensor of shape [{string.Join(", ", tensor.shape)}] on {tensor.device}" +
            $"{(tensor.is_contiguous() ? "" : ", not contiguous")}. Pass a flat buffer (FlatBuffer) or call .contiguous() / .cpu() / " +
            ".to(float32) first and copy the result back.", nameof(tensor));
    }

    /// <summary>
    /// The address of the tensor's first element (its storage offset included). Taken from a one-element view, so
    /// that tensors above 2 GB work (TorchSharp's <c>bytes</c> span is int-sized). The tensor must stay alive while
    /// the address is used.
    /// </summary>
    public static byte* Pointer(Tensor tensor)
    {
        using var flat = tensor.view(-1);
        using var first = flat.narrow(0, 0, 1);
        return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first.bytes));
    }

    /// <summary><see cref="Pointer"/> as a number (0 for an empty tensor), for comparisons.</summary>
    public static nint Address(Tensor tensor) => tensor.numel() == 0 ? 0 : (nint)Pointer(tensor);

    /// <summary>Bytes per element.</summary>
    public static int ElementBytes(MpiElement element) => element == MpiElement.Float32 ? 4 : 8;

    /// <summary>
    /// The (first element, count) pieces of <paramref name="count"/> elements, each at most <paramref name="maxPerCall"/>
    /// long: MPI counts are C ints, so a buffer above int.MaxValue elements takes several calls.
    /// </summary>
    public static IEnumerable<(long Start, int Count)> Pieces(long count, int maxPerCall)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPerCall, 1);
        for (long start = 0; start < count; start += maxPerCall)
            yield return (start, (int)Math.Min(maxPerCall, count - start));
    }
}
