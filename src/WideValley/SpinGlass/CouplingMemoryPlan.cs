using System.Globalization;
using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// The memory a spherical p-spin glass's couplings need, against the limit, worked out before anything is allocated.
/// </summary>
/// <param name="Size">N.</param>
/// <param name="Order">p.</param>
/// <param name="Dtype">Storage type of the couplings.</param>
/// <param name="Tensors">Coupling-sized tensors alive at the peak (2 while symmetrising one draw: the raw and the
/// symmetrised tensor; P + 2 while splitting into P parts).</param>
/// <param name="Elements">N^p (as a double: it may exceed the range of a long).</param>
/// <param name="PeakBytes">Tensors · N^p · element size.</param>
/// <param name="LimitBytes">The memory that may be used.</param>
public sealed record CouplingMemoryPlan(int Size, int Order, ScalarType Dtype, int Tensors, double Elements, double PeakBytes, long LimitBytes)
{
    /// <summary>Whether the peak fits under the limit (and N^p is an addressable tensor size).</summary>
    public bool Fits => Elements <= long.MaxValue / 8 && PeakBytes <= LimitBytes;

    /// <summary>
    /// The plan for <paramref name="tensors"/> coupling-sized tensors of N^p elements. The limit is
    /// <paramref name="memoryLimitBytes"/>, or MemAvailable of /proc/meminfo minus <paramref name="marginBytes"/>.
    /// </summary>
    public static CouplingMemoryPlan For(int size, int order, ScalarType dtype, int tensors, long? memoryLimitBytes = null, long marginBytes = 1L << 30)
    {
        var elements = Math.Pow(size, order);
        var bytes = tensors * elements * ElementSize(dtype);
        var limit = memoryLimitBytes ?? MemoryBudget.AvailableBytes() - marginBytes;
        return new CouplingMemoryPlan(size, order, dtype, tensors, elements, bytes, limit);
    }

    /// <summary>Throws <see cref="InsufficientMemoryException"/> with the numbers when the plan does not fit.</summary>
    /// <param name="what">What is being built, for the message (e.g. "SphericalPSpinGlass.Create").</param>
    public void ThrowIfTooLarge(string what)
    {
        if (Fits) return;
        var inv = CultureInfo.InvariantCulture;
        throw new InsufficientMemoryException(string.Format(inv,
            "{0}: a p = {1} spin glass with N = {2} has N^p = {3:G4} couplings; {4} tensors of them in {5} need {6} at the peak, " +
            "but only {7} may be used (MemAvailable minus the margin, or the given limit). Use a smaller N or p " +
            "(p = 3 at N = 500 needs 0.5 GB in float32 per tensor).",
            what, Order, Size, Elements, Tensors, Dtype, FormatBytes(PeakBytes), FormatBytes(LimitBytes)));
    }

    static string FormatBytes(double bytes) => bytes switch
    {
        >= 1e12 => (bytes / 1e12).ToString("0.##", CultureInfo.InvariantCulture) + " TB",
        >= 1e9 => (bytes / 1e9).ToString("0.##", CultureInfo.InvariantCulture) + " GB",
        _ => (bytes / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + " MB",
    };

    internal static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => 8,
        ScalarType.Float32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => throw new ArgumentException($"Spin glass: couplings must be a floating type; got {dtype}."),
    };
}
