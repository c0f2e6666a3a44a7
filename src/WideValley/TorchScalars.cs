using TorchSharp;
using static TorchSharp.torch;

namespace WideValley;

/// <summary>
/// Tensor operations with scalar arguments whose native Scalar is kept alive for the whole call and then freed.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 turns a double passed as a Scalar argument (e.g. <c>t.add_(x, alpha: 0.5)</c>) into a native
/// at::Scalar owned by a managed object with a finalizer, and hands native code only its raw handle. From then on
/// nothing keeps the managed object alive, so a garbage collection started by any other thread during the call can
/// finalize it and free the at::Scalar while libtorch is reading it. We reproduced this (a GC-churning thread makes
/// <c>fill_(1.0f)</c> fail within seconds) and traced to it the random NaNs of LeNet training with TorchSharp's own
/// SGD and Adam, which create several such scalars per parameter per step. Every scalar-taking call in our hot paths
/// goes through these helpers: the <c>using</c> keeps the Scalar reachable until the call has returned, and frees it
/// at once instead of leaving it to the finalizer thread.
/// </remarks>
internal static class TorchScalars
{
    /// <summary>
    /// Scalars held for the whole process: a static field is a garbage-collection root, so these are never finalized.
    /// A nested class, so that they are made on first use (when libtorch is loaded), not when any helper is touched.
    /// </summary>
    static class Held
    {
        /// <summary>An integer 1: as an alpha it suits floating and integer tensors alike.</summary>
        internal static readonly Scalar One;

        static Held() => One = 1L.ToScalar();
    }

    /// <summary>
    /// t += other. TorchSharp's one-argument <c>add_(other)</c> calls <c>add_(other, 1)</c>, which makes a temporary
    /// Scalar for the alpha of 1: the same hazard as any other scalar argument.
    /// </summary>
    public static Tensor Accumulate_(this Tensor t, Tensor other) => t.add_(other, Held.One);

    /// <summary>t + other as a new tensor (TorchSharp's one-argument <c>add</c> makes a temporary alpha as well).</summary>
    public static Tensor Plus(this Tensor t, Tensor other) => t.add(other, Held.One);

    /// <summary>t += alpha * other.</summary>
    public static Tensor AddScaled_(this Tensor t, Tensor other, double alpha)
    {
        using var a = alpha.ToScalar();
        return t.add_(other, a);
    }

    /// <summary>t *= factor.</summary>
    public static Tensor Scale_(this Tensor t, double factor)
    {
        using var f = factor.ToScalar();
        return t.mul_(f);
    }

    /// <summary>t += value (every element).</summary>
    public static Tensor Shift_(this Tensor t, double value)
    {
        using var v = value.ToScalar();
        return t.add_(v, Held.One);
    }

    /// <summary>t = t + weight * (end - t). (TorchSharp's lerp_ takes the weight as a tensor.)</summary>
    public static Tensor LerpTowards_(this Tensor t, Tensor end, double weight)
    {
        using var w = tensor(weight, t.dtype, t.device);
        return t.lerp_(end, w);
    }

    /// <summary>t += value * a / b.</summary>
    public static Tensor AddDivided_(this Tensor t, Tensor a, Tensor b, double value)
    {
        using var v = value.ToScalar();
        return t.addcdiv_(a, b, v);
    }

    /// <summary>t += value * a * b.</summary>
    public static Tensor AddMultiplied_(this Tensor t, Tensor a, Tensor b, double value)
    {
        using var v = value.ToScalar();
        return t.addcmul_(a, b, v);
    }

    /// <summary>t / divisor as a new tensor.</summary>
    public static Tensor DividedBy(this Tensor t, double divisor)
    {
        using var d = divisor.ToScalar();
        return t.div(d);
    }

    /// <summary>t /= divisor.</summary>
    public static Tensor DivideBy_(this Tensor t, double divisor)
    {
        using var d = divisor.ToScalar();
        return t.div_(d);
    }

    /// <summary>t + value as a new tensor.</summary>
    public static Tensor Plus(this Tensor t, double value)
    {
        using var v = value.ToScalar();
        return t.add(v, Held.One);
    }

    /// <summary>max(t, value) elementwise, as a new tensor.</summary>
    public static Tensor AtLeast(this Tensor t, double value)
    {
        using var v = value.ToScalar();
        return t.clamp_min(v);
    }

    /// <summary>The boolean mask t &lt; value.</summary>
    public static Tensor LessThan(this Tensor t, double value)
    {
        using var v = value.ToScalar();
        return t.lt(v);
    }

    /// <summary>A copy of t with elements where <paramref name="mask"/> is true replaced by value.</summary>
    public static Tensor Where(this Tensor t, Tensor mask, double value)
    {
        using var v = value.ToScalar();
        return t.masked_fill(mask, v);
    }
}
