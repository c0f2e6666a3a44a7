using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// The sphere |w|² = N of a spherical spin glass, for batches of points (rows of a [K, N] tensor) or one point ([N]):
/// random starts, the retraction onto the sphere, the tangent-space projection and overlaps.
/// </summary>
public static class Sphere
{
    /// <summary>
    /// <paramref name="count"/> points drawn uniformly on the sphere |w|² = N: w ~ N(0, I_N) from a CPU generator
    /// seeded with <paramref name="seed"/> (in float64), rescaled to √N, then converted. Shape [count, size].
    /// (The paper's "initial points on the unit sphere" rescaled by √N, as SAGUN does.)
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">count below 1 or size below 2.</exception>
    public static Tensor RandomPoints(int count, int size, long seed, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, $"Sphere.RandomPoints: the number of starts K must be at least 1; got {count}.");
        if (size < 2) throw new ArgumentOutOfRangeException(nameof(size), size, $"Sphere.RandomPoints: N must be at least 2; got {size}.");
        using var scope = NewDisposeScope();
        using var generator = new Generator(unchecked((ulong)seed));
        var w = randn([count, size], ScalarType.Float64, generator: generator);
        return Retract(w).to(dtype, device ?? CPU).MoveToOuterDisposeScope();
    }

    /// <summary>The points scaled onto the sphere, w·√N/|w| per row (a new tensor).</summary>
    /// <exception cref="ArgumentException">A row of zero norm.</exception>
    public static Tensor Retract(Tensor points)
    {
        using var scope = NewDisposeScope();
        var norms = points.norm(-1);
        var smallest = norms.min().ToDouble();
        var largest = norms.max().ToDouble();
        if (!(smallest > 0) || !double.IsFinite(largest))
            throw new ArgumentException($"Sphere.Retract: every point must have a finite, non-zero norm; the norms range over [{smallest}, {largest}].", nameof(points));
        return RetractUnchecked(points).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Retract"/> without the check (the minimisers' hot path: their points never reach zero norm).</summary>
    internal static Tensor RetractUnchecked(Tensor points)
    {
        using var scope = NewDisposeScope();
        var n = points.shape[^1];
        var norms = points.norm(-1, keepdim: true);
        return points.mul(norms.reciprocal().Scale_(Math.Sqrt(n))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The component of <paramref name="vectors"/> tangent to the sphere at <paramref name="points"/>:
    /// g − (⟨g, w⟩/|w|²)·w per row (|w|² = N on the sphere).
    /// </summary>
    public static Tensor ProjectToTangent(Tensor vectors, Tensor points)
    {
        using var scope = NewDisposeScope();
        var along = vectors.mul(points).sum(-1, keepdim: true).div(points.square().sum(-1, keepdim: true));
        return vectors.sub(along.mul(points)).MoveToOuterDisposeScope();
    }

    /// <summary>Overlaps q = ⟨w_a, w_b⟩/N of every row of <paramref name="a"/> with every row of <paramref name="b"/>: [Ka, Kb], float64 on the CPU.</summary>
    public static Tensor Overlaps(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var a64 = a.to(ScalarType.Float64, CPU);
        var b64 = b.to(ScalarType.Float64, CPU);
        if (a64.dim() == 1) a64 = a64.unsqueeze(0);
        if (b64.dim() == 1) b64 = b64.unsqueeze(0);
        if (a64.shape[1] != b64.shape[1])
            throw new ArgumentException($"Sphere.Overlaps: the points have {a64.shape[1]} and {b64.shape[1]} coordinates; they must have the same N.");
        return a64.matmul(b64.t()).DivideBy_(a64.shape[1]).MoveToOuterDisposeScope();
    }

    /// <summary>An orthonormal basis of the tangent space at w: [N, N−1] float64 columns orthogonal to w (a Householder reflection).</summary>
    internal static Tensor TangentBasis(Tensor w64)
    {
        using var scope = NewDisposeScope();
        var n = w64.shape[0];
        var u = w64.div(w64.norm());
        // Reflect u onto ±e_last, with the sign that avoids cancellation; the other columns of the reflection span u's complement.
        var sign = u[n - 1].item<double>() >= 0 ? 1.0 : -1.0;
        var v = u.clone();
        v[n - 1].add_(tensor(sign, ScalarType.Float64));
        var reflection = eye(n, dtype: ScalarType.Float64).sub(v.outer(v).mul(tensor(2.0 / v.square().sum().item<double>(), ScalarType.Float64)));
        return reflection.narrow(1, 0, n - 1).contiguous().MoveToOuterDisposeScope();
    }
}
