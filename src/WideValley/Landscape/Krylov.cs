using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Distribution of random probe / start vectors.</summary>
public enum ProbeDistribution
{
    /// <summary>Independent +1 / -1 entries (lowest variance for trace estimation).</summary>
    Rademacher,
    /// <summary>Independent standard normal entries.</summary>
    Gaussian,
}

/// <summary>Seeded random vectors, drawn on the CPU (reproducible across devices) in float64.</summary>
internal static class RandomVectors
{
    public static Tensor Draw(Generator generator, long n, ProbeDistribution distribution, Device device)
    {
        using var scope = NewDisposeScope();
        var v = distribution == ProbeDistribution.Gaussian
            ? randn(n, ScalarType.Float64, generator: generator)
            : randint(0, 2, [n], generator: generator).to(ScalarType.Float64).Scale_(2).Shift_(-1);
        return v.to(device).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// An orthonormal Krylov basis in float64, stored in chunks of rows so that it grows without reallocation, with
/// classical Gram-Schmidt applied twice ("CGS2") for full reorthogonalisation: two passes give orthogonality to
/// working precision, which is what keeps Lanczos free of ghost eigenvalues.
/// </summary>
internal sealed class KrylovBasis : IDisposable
{
    private const int ChunkRows = 32;
    private readonly List<Tensor> chunks = [];
    private readonly long n;
    private readonly Device device;

    public KrylovBasis(long n, Device device)
    {
        this.n = n;
        this.device = device;
    }

    public int Count { get; private set; }

    /// <summary>Appends a unit vector (copied).</summary>
    public void Add(Tensor q)
    {
        if (Count % ChunkRows == 0)
            chunks.Add(zeros(ChunkRows, n, ScalarType.Float64, device).DetachFromDisposeScope());
        chunks[Count / ChunkRows][Count % ChunkRows].copy_(q);
        Count++;
    }

    /// <summary>Row <paramref name="index"/> (a view).</summary>
    public Tensor Row(int index) => chunks[index / ChunkRows][index % ChunkRows];

    /// <summary>w -= Q (Q^T w), twice, in place.</summary>
    public void Orthogonalize(Tensor w)
    {
        for (var pass = 0; pass < 2; pass++)
        {
            for (var c = 0; c * ChunkRows < Count; c++)
            {
                using var scope = NewDisposeScope();
                var rows = (int)Math.Min(ChunkRows, Count - c * ChunkRows);
                var block = chunks[c].narrow(0, 0, rows);
                var coefficients = block.mv(w);
                w.sub_(block.T.mv(coefficients));
            }
        }
    }

    /// <summary>Q^T S: the vectors (n x k) whose coordinates in the basis are the columns of <paramref name="coefficients"/> (Count x k).</summary>
    public Tensor Combine(Tensor coefficients)
    {
        using var scope = NewDisposeScope();
        var k = coefficients.shape[1];
        var result = zeros(n, k, ScalarType.Float64, device);
        var s = coefficients.to(ScalarType.Float64).to(device);
        for (var c = 0; c * ChunkRows < Count; c++)
        {
            var rows = (int)Math.Min(ChunkRows, Count - c * ChunkRows);
            result.add_(chunks[c].narrow(0, 0, rows).T.matmul(s.narrow(0, c * ChunkRows, rows)));
        }
        return result.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var c in chunks) c.Dispose();
        chunks.Clear();
        Count = 0;
    }
}

/// <summary>
/// The Lanczos recurrence with full reorthogonalisation on a symmetric operator, shared by <see cref="Lanczos"/> and
/// <see cref="Slq"/>. Produces the tridiagonal T = Q^T A Q (diagonal alpha, off-diagonal beta). If the Krylov space
/// becomes invariant (beta ~ 0) before the requested size, it continues from a fresh random vector orthogonal to the
/// basis with a zero coupling, so that T stays exactly similar to A restricted to the basis.
/// </summary>
internal sealed class LanczosProcess : IDisposable
{
    private readonly Func<Tensor, Tensor> apply;
    private readonly ScalarType operatorType;
    private readonly Device device;
    private readonly Generator restartGenerator;
    private readonly List<double> alpha = [];
    private readonly List<double> beta = [];
    private Tensor next;

    public LanczosProcess(Func<Tensor, Tensor> apply, long n, Tensor start, ScalarType operatorType, Device device, long restartSeed)
    {
        this.apply = apply;
        this.operatorType = operatorType;
        this.device = device;
        N = n;
        Basis = new KrylovBasis(n, device);
        restartGenerator = new Generator((ulong)restartSeed);
        using var scope = NewDisposeScope();
        var q = start.to(ScalarType.Float64, device);
        var norm = q.norm().ToDouble();
        if (!(norm > 0) || double.IsInfinity(norm))
            throw new ArgumentException($"Lanczos: the start vector must be finite and non-zero; its norm is {norm}.");
        next = q.DividedBy(norm).MoveToOuterDisposeScope();
    }

    public long N { get; }
    public KrylovBasis Basis { get; }
    public int Steps => alpha.Count;
    public long OperatorApplications { get; private set; }
    public IReadOnlyList<double> Alpha => alpha;
    public IReadOnlyList<double> Beta => beta;
    /// <summary>How many times the space became invariant and a fresh sequence was started.</summary>
    public int Restarts { get; private set; }
    /// <summary>Whether the last step ended an invariant block (its coupling beta is exactly 0).</summary>
    public bool LastStepEndedBlock { get; private set; }

    /// <summary>Runs one step: adds one basis vector and one row of T. False once the basis spans the whole space.</summary>
    public bool Step()
    {
        if (Steps >= N) return false;
        using var scope = NewDisposeScope();
        var q = next;
        Basis.Add(q);
        var input = q.dtype == operatorType ? q : q.to(operatorType);
        var output = apply(input);
        if (output.dim() != 1 || output.shape[0] != N)
            throw new InvalidOperationException($"Lanczos: the operator returned shape ({string.Join(", ", output.shape)}) for a vector of length {N}.");
        var w = output.to(ScalarType.Float64, device);
        if (ReferenceEquals(w, output)) w = output.clone();
        output.Dispose();
        OperatorApplications++;
        var a = w.dot(q).ToDouble();
        if (!double.IsFinite(a))
            throw new InvalidOperationException($"Lanczos: the operator produced a non-finite value at step {Steps + 1} (q^T A q = {a}).");
        alpha.Add(a);
        w.AddScaled_(q, -a);
        if (Steps > 1) w.AddScaled_(Basis.Row(Steps - 2), -beta[^1]);
        LastStepEndedBlock = false;
        if (Steps == N)
        {
            // The basis spans the whole space: T is similar to A and there is nothing left to couple to.
            beta.Add(0);
            return true;
        }
        Basis.Orthogonalize(w);
        var b = w.norm().ToDouble();
        var scale = alpha.Max(Math.Abs) + (beta.Count > 0 ? beta.Max() : 0);
        if (!(b > 1e-10 * Math.Max(scale, double.Epsilon)))
        {
            // Invariant subspace: start a new Krylov sequence orthogonal to everything so far, coupled by beta = 0.
            b = 0;
            Restarts++;
            LastStepEndedBlock = true;
            for (var attempt = 0; attempt < 3; attempt++)
            {
                w = RandomVectors.Draw(restartGenerator, N, ProbeDistribution.Gaussian, device);
                Basis.Orthogonalize(w);
                var norm = w.norm().ToDouble();
                if (norm > 1e-8) { w.DivideBy_(norm); break; }
            }
            next.Dispose();
            next = w.MoveToOuterDisposeScope();
        }
        else
        {
            next.Dispose();
            next = (b > 0 ? w.DivideBy_(b) : w).MoveToOuterDisposeScope();
        }
        beta.Add(b);
        return true;
    }

    /// <summary>Eigen-decomposition of T (m x m): Ritz values ascending and the eigenvectors of T as columns.</summary>
    public (double[] Values, Tensor Vectors) Ritz()
    {
        using var scope = NewDisposeScope();
        var m = Steps;
        var entries = new double[m * m];
        for (var i = 0; i < m; i++)
        {
            entries[i * m + i] = alpha[i];
            if (i + 1 < m)
            {
                entries[i * m + i + 1] = beta[i];
                entries[(i + 1) * m + i] = beta[i];
            }
        }
        var t = tensor(entries, [m, m], ScalarType.Float64);
        var (values, vectors) = linalg.eigh(t);
        return (values.data<double>().ToArray(), vectors.MoveToOuterDisposeScope());
    }

    /// <summary>beta_m: the coupling to the next (not yet used) basis vector; residual norms are |beta_m s_m,i|.</summary>
    public double LastBeta => beta.Count == 0 ? 0 : beta[^1];

    public void Dispose()
    {
        next.Dispose();
        Basis.Dispose();
        restartGenerator.Dispose();
    }
}
