using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>The shape of a curve between two minima (Garipov et al. 2018).</summary>
public enum CurveKind
{
    /// <summary>φ(t) = Σ_j C(n−1, j) t^j (1−t)^{n−1−j} θ_j: with one bend, the quadratic Bézier curve.</summary>
    Bezier,
    /// <summary>The polygonal chain through θ_0..θ_{n−1}: weights max(0, 1 − |t(n−1) − j|); with one bend, two segments.</summary>
    PolyChain,
}

/// <summary>
/// A parametric curve φ(t), t ∈ [0, 1], between two fixed endpoints θ_0 = A and θ_{n−1} = B through n − 2 middle
/// points (the "bends", trainable). Owns copies of its points: dispose it.
/// </summary>
public sealed class ConnectivityCurve : IDisposable
{
    /// <summary>A curve from copies of the given points.</summary>
    /// <param name="kind">Bézier or polygonal chain.</param>
    /// <param name="endpointA">θ_0 (flat vector).</param>
    /// <param name="endpointB">θ_{n−1}, same length.</param>
    /// <param name="middles">The bends as a [bends, dimension] matrix, bends ≥ 1.</param>
    /// <exception cref="ArgumentException">Points of different lengths or dtypes, or no bends.</exception>
    public ConnectivityCurve(CurveKind kind, Tensor endpointA, Tensor endpointB, Tensor middles)
    {
        ArgumentNullException.ThrowIfNull(endpointA);
        ArgumentNullException.ThrowIfNull(endpointB);
        ArgumentNullException.ThrowIfNull(middles);
        if (!Enum.IsDefined(kind)) throw new ArgumentException($"unknown curve kind {kind}", nameof(kind));
        var n = endpointA.numel();
        if (endpointB.numel() != n) throw new ArgumentException($"endpoint B has {endpointB.numel()} entries, endpoint A {n}", nameof(endpointB));
        if (middles.dim() != 2 || middles.shape[1] != n || middles.shape[0] < 1)
            throw new ArgumentException($"the middle points must be a [bends ≥ 1, {n}] matrix, got [{string.Join(", ", middles.shape)}]", nameof(middles));
        Kind = kind;
        EndpointA = endpointA.detach().reshape(-1).to(middles.dtype, middles.device, copy: true).DetachFromDisposeScope();
        EndpointB = endpointB.detach().reshape(-1).to(middles.dtype, middles.device, copy: true).DetachFromDisposeScope();
        Middles = middles.detach().clone().DetachFromDisposeScope();
    }

    /// <summary>
    /// The curve with its <paramref name="bends"/> middle points on the straight line, θ_j = interp(A, B, j/(n−1))
    /// (Garipov et al.'s initialisation): both kinds then trace the segment from A to B at constant speed.
    /// </summary>
    public static ConnectivityCurve Straight(CurveKind kind, Tensor endpointA, Tensor endpointB, int bends)
    {
        if (bends < 1) throw new ArgumentException($"a curve needs at least one bend, got {bends}", nameof(bends));
        using var scope = NewDisposeScope();
        var a = endpointA.detach().reshape(-1);
        var b = endpointB.detach().reshape(-1);
        var rows = Enumerable.Range(1, bends).Select(j => ParameterPath.Interpolate(a, b, (double)j / (bends + 1))).ToArray();
        var middles = stack(rows);
        return new ConnectivityCurve(kind, a, b, middles);
    }

    /// <summary>Bézier or polygonal chain.</summary>
    public CurveKind Kind { get; }

    /// <summary>θ_0 (a copy owned by the curve).</summary>
    public Tensor EndpointA { get; }

    /// <summary>θ_{n−1} (a copy owned by the curve).</summary>
    public Tensor EndpointB { get; }

    /// <summary>The trainable middle points θ_1..θ_{n−2} as rows of a [bends, dimension] matrix (owned by the curve; training updates it in place).</summary>
    public Tensor Middles { get; }

    /// <summary>Number of middle points.</summary>
    public int Bends => (int)Middles.shape[0];

    /// <summary>Length of each point.</summary>
    public long Dimension => Middles.shape[1];

    /// <summary>The weights b_j(t) of θ_0..θ_{n−1} at <paramref name="t"/>: φ(t) = Σ_j b_j(t)·θ_j.</summary>
    public double[] Coefficients(double t) => Coefficients(Kind, Bends + 2, t);

    /// <summary>The weights of n control points at t for a curve of <paramref name="kind"/>.</summary>
    public static double[] Coefficients(CurveKind kind, int points, double t)
    {
        if (points < 2) throw new ArgumentException($"a curve has at least two points, got {points}", nameof(points));
        var c = new double[points];
        var degree = points - 1;
        if (kind == CurveKind.Bezier)
        {
            double binomial = 1;
            for (var j = 0; j <= degree; j++)
            {
                c[j] = binomial * Math.Pow(t, j) * Math.Pow(1 - t, degree - j);
                binomial = binomial * (degree - j) / (j + 1);
            }
        }
        else
        {
            for (var j = 0; j <= degree; j++) c[j] = Math.Max(0, 1 - Math.Abs(t * degree - j));
        }
        return c;
    }

    /// <summary>φ(t) as a new tensor.</summary>
    public Tensor Point(double t)
    {
        var c = Coefficients(t);
        using var scope = NewDisposeScope();
        var middleWeights = tensor(c.AsSpan(1, Bends).ToArray(), Middles.dtype, Middles.device);
        var point = middleWeights.matmul(Middles);
        point.AddScaled_(EndpointA, c[0]).AddScaled_(EndpointB, c[^1]);
        return point.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The curve's length Σ_k ‖φ(t_{k+1}) − φ(t_k)‖ over t_k = k/<paramref name="steps"/>, in float64. Exact for a
    /// polygonal chain when <paramref name="steps"/> is a multiple of its segment count (the knots are on the grid).
    /// </summary>
    public double Length(int steps)
    {
        if (steps < 1) throw new ArgumentException($"steps must be positive, got {steps}", nameof(steps));
        double length = 0;
        var previous = Point(0);
        try
        {
            for (var k = 1; k <= steps; k++)
            {
                var next = Point((double)k / steps);
                length += ParameterPath.Distance(previous, next, null);
                previous.Dispose();
                previous = next;
            }
        }
        finally
        {
            previous.Dispose();
        }
        return length;
    }

    /// <summary>Frees the curve's points.</summary>
    public void Dispose()
    {
        EndpointA.Dispose();
        EndpointB.Dispose();
        Middles.Dispose();
    }
}
