using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Which end of the spectrum to compute, by algebraic value (not by magnitude).</summary>
public enum SpectrumEnd
{
    /// <summary>The k algebraically largest eigenvalues, in descending order.</summary>
    Largest,
    /// <summary>The k algebraically smallest (most negative) eigenvalues, in ascending order.</summary>
    Smallest,
}

/// <summary>What <see cref="LanczosOptions.Tolerance"/> bounds.</summary>
public enum LanczosStoppingRule
{
    /// <summary>The residual norm ||A y - theta y|| of each wanted Ritz pair: a bound on its eigenvalue error that needs no assumption.</summary>
    Residual,

    /// <summary>
    /// The eigenvalue error bound min(r, r^2 / gap) of each wanted Ritz value (Parlett, The Symmetric Eigenvalue
    /// Problem, Sec. 11.7; the refined bound ARPACK-style codes use), with gap the distance to the nearest other Ritz
    /// value less that value's residual. It stops far earlier than <see cref="Residual"/> once eigenvalues are
    /// separated, because eigenvalue errors shrink with the square of the residual. It assumes every eigenvalue near
    /// a wanted one is already represented by a Ritz value, as holds for a random start once the Ritz values settle;
    /// so it also requires the wanted values to have moved by at most the tolerance since the previous check.
    /// </summary>
    ErrorBound,
}

/// <summary>Settings of <see cref="Lanczos"/>.</summary>
public sealed record LanczosOptions
{
    /// <summary>Most Lanczos steps (operator applications); capped at the dimension. Default 300.</summary>
    public int MaxIterations { get; init; } = 300;

    /// <summary>
    /// A Ritz pair (theta, y) counts as converged when its residual norm ||A y - theta y|| = |beta_m s_m| is at most
    /// Tolerance x the largest |Ritz value| (a relative measure that does not demand the impossible of eigenvalues
    /// near zero). The eigenvalue error is bounded by the residual and, for well separated eigenvalues, by its square
    /// over the gap. Default 1e-8.
    /// </summary>
    public double Tolerance { get; init; } = 1e-8;

    /// <summary>What the tolerance bounds: the residual (default, assumption-free) or the eigenvalue error.</summary>
    public LanczosStoppingRule StoppingRule { get; init; } = LanczosStoppingRule.Residual;

    /// <summary>Seed of the Gaussian start vector (and of restarts after an invariant subspace). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Also return the Ritz vectors (n x k, float64). Default false.</summary>
    public bool ComputeEigenvectors { get; init; }

    /// <summary>Steps between convergence checks (each check decomposes the small tridiagonal matrix). Default 1.</summary>
    public int CheckEvery { get; init; } = 1;

    /// <summary>Told after every step (Done = steps so far, Total = the most steps), on the calling thread. Default none.</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Checked before every operator application; a cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>Extreme eigenvalues found by <see cref="Lanczos"/>.</summary>
/// <param name="Eigenvalues">The k eigenvalues: descending for <see cref="SpectrumEnd.Largest"/>, ascending for <see cref="SpectrumEnd.Smallest"/>.</param>
/// <param name="Residuals">||A y - theta y|| for each (same order).</param>
/// <param name="ErrorBounds">Bounds on |theta - lambda| for each (same order): min(r, r^2 / gap) where the Ritz gap exceeds the residual, else r.</param>
/// <param name="Eigenvectors">Unit Ritz vectors as columns (n x k, float64), when requested; the caller disposes it.</param>
/// <param name="Iterations">Lanczos steps taken.</param>
/// <param name="OperatorApplications">Operator (e.g. Hessian-vector product) applications.</param>
/// <param name="Converged">Whether every residual met the tolerance (false: stopped at MaxIterations).</param>
/// <param name="Which">The requested end of the spectrum.</param>
public sealed record LanczosResult(double[] Eigenvalues, double[] Residuals, double[] ErrorBounds, Tensor? Eigenvectors, int Iterations,
    long OperatorApplications, bool Converged, SpectrumEnd Which);

/// <summary>
/// The k largest or smallest algebraic eigenvalues of a symmetric operator by the Lanczos method with full
/// reorthogonalisation (float64 Krylov basis, two Gram-Schmidt passes), a residual-based stopping rule and a seeded
/// start vector. Works on any symmetric linear operator on flat vectors, so it is testable on explicit matrices; for a
/// network, pass an <see cref="Hvp"/>. Unlike power iteration (PyHessian), it returns the algebraically largest
/// eigenvalues, not the largest in magnitude, and the most negative ones on request. A single Krylov sequence sees
/// each distinct eigenvalue once; when it becomes invariant (beta = 0), a fresh orthogonal sequence is started and the
/// run ends only when a whole new block leaves the wanted values unchanged, so multiple eigenvalues are counted with
/// their multiplicity.
/// </summary>
public static class Lanczos
{
    /// <summary>
    /// Extreme eigenvalues of a curvature operator (a Hessian <see cref="Hvp"/>, <see cref="GaussNewton"/>,
    /// <see cref="EmpiricalFisher"/>, <see cref="DenseOperator"/>); its application count grows by the steps taken.
    /// </summary>
    /// <param name="op">The symmetric operator.</param>
    /// <param name="k">How many eigenvalues.</param>
    /// <param name="which">Which end of the spectrum.</param>
    /// <param name="options">Steps, tolerance, seed.</param>
    public static LanczosResult Run(ICurvatureOperator op, int k, SpectrumEnd which = SpectrumEnd.Largest, LanczosOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(op);
        return Run(op.AsFunction(), op.Dimension, k, which, options, op.Dtype, op.Device);
    }

    /// <summary>
    /// Extreme eigenvalues of the symmetric operator <paramref name="apply"/> on vectors of length <paramref name="n"/>.
    /// The operator receives a flat vector of <paramref name="operatorType"/> on <paramref name="device"/> and returns a
    /// new flat tensor (any floating type), which this method disposes.
    /// </summary>
    /// <exception cref="ArgumentException">k not in [1, n], k above MaxIterations, or invalid options.</exception>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled.</exception>
    public static LanczosResult Run(Func<Tensor, Tensor> apply, long n, int k, SpectrumEnd which = SpectrumEnd.Largest,
        LanczosOptions? options = null, ScalarType operatorType = ScalarType.Float64, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(apply);
        var o = options ?? new LanczosOptions();
        if (n < 1) throw new ArgumentException($"Lanczos: the operator dimension must be positive; got n = {n}.", nameof(n));
        if (k < 1 || k > n)
            throw new ArgumentException($"Lanczos: asked for k = {k} eigenvalues, but the operator has dimension n = {n}; k must be between 1 and n.", nameof(k));
        if (o.MaxIterations < 1)
            throw new ArgumentException($"Lanczos: MaxIterations must be positive; got {o.MaxIterations}.", nameof(options));
        var steps = (int)Math.Min(o.MaxIterations, n);
        if (k > steps)
            throw new ArgumentException(
                $"Lanczos: asked for k = {k} eigenvalues with at most {steps} steps (MaxIterations = {o.MaxIterations}, n = {n}); k Ritz values need at least k steps. Raise MaxIterations.", nameof(k));
        if (!(o.Tolerance > 0)) throw new ArgumentException($"Lanczos: Tolerance must be positive; got {o.Tolerance}.", nameof(options));
        if (o.CheckEvery < 1) throw new ArgumentException($"Lanczos: CheckEvery must be positive; got {o.CheckEvery}.", nameof(options));
        var dev = device ?? CPU;

        Tensor start;
        using (var generator = new Generator((ulong)o.Seed))
            start = RandomVectors.Draw(generator, n, ProbeDistribution.Gaussian, dev);
        using var process = new LanczosProcess(apply, n, start, operatorType, dev, unchecked(o.Seed * 31 + 17));
        start.Dispose();

        double[] values = [];
        double[] residuals = [];
        double[] bounds = [];
        int[] picked = [];
        Tensor? ritzVectors = null;
        var converged = false;
        double[]? previousBlockValues = null;
        double[]? previousCheckValues = null;
        try
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                o.Cancellation.ThrowIfCancellationRequested();
                if (!process.Step()) break;
                var m = process.Steps;
                o.Progress?.Report(new CurvatureProgress("lanczos", m, steps, watch.Elapsed));
                var last = m == steps || m == n;
                if (m < k || (!last && !process.LastStepEndedBlock && m % o.CheckEvery != 0)) continue;
                ritzVectors?.Dispose();
                (values, ritzVectors) = process.Ritz();
                picked = which == SpectrumEnd.Largest
                    ? Enumerable.Range(0, m).Reverse().Take(k).ToArray()
                    : Enumerable.Range(0, m).Take(k).ToArray();
                var lastRow = ritzVectors[m - 1].data<double>().ToArray();
                var beta = process.LastBeta;
                var allResiduals = lastRow.Select(x => Math.Abs(beta * x)).ToArray();
                residuals = picked.Select(i => allResiduals[i]).ToArray();
                bounds = picked.Select(i => ErrorBound(values, allResiduals, i)).ToArray();
                var scale = Math.Max(Math.Abs(values[0]), Math.Abs(values[^1]));
                var measured = o.StoppingRule == LanczosStoppingRule.ErrorBound ? bounds : residuals;
                converged = measured.All(r => r <= o.Tolerance * scale) || beta == 0 && m == n;
                var wanted = picked.Select(i => values[i]).ToArray();
                if (o.StoppingRule == LanczosStoppingRule.ErrorBound && !(beta == 0 && m == n))
                {
                    // The gap bound trusts the other Ritz values to stand for the rest of the spectrum, which early
                    // on they do not (two steps give one value near each end, and a huge gap). Also require the
                    // wanted values to have settled since the previous check.
                    converged &= Unchanged(previousCheckValues, wanted, o.Tolerance * scale);
                    previousCheckValues = wanted;
                }
                if (process.Restarts > 0 && m < n)
                {
                    // An invariant subspace was found, so eigenvalues may be multiple, and one Krylov sequence holds
                    // only one copy of each. Judge only at block ends, and only once a whole new block left the
                    // wanted values unchanged.
                    if (!process.LastStepEndedBlock) converged = false;
                    else
                    {
                        converged &= Unchanged(previousBlockValues, wanted, o.Tolerance * scale);
                        previousBlockValues = wanted;
                    }
                }
                if (converged || last) break;
            }
            var eigenvalues = picked.Select(i => values[i]).ToArray();
            Tensor? eigenvectors = null;
            if (o.ComputeEigenvectors && ritzVectors is not null)
            {
                using var scope = NewDisposeScope();
                using var index = tensor(picked.Select(i => (long)i).ToArray());
                var coefficients = ritzVectors.index_select(1, index);
                eigenvectors = process.Basis.Combine(coefficients).MoveToOuterDisposeScope();
            }
            return new LanczosResult(eigenvalues, residuals, bounds, eigenvectors, process.Steps, process.OperatorApplications, converged, which);
        }
        finally
        {
            ritzVectors?.Dispose();
        }
    }

    /// <summary>Whether every wanted value moved by at most <paramref name="limit"/> since <paramref name="before"/> (false when there is no earlier set).</summary>
    private static bool Unchanged(double[]? before, double[] now, double limit) =>
        before is not null && before.Zip(now).All(p => Math.Abs(p.First - p.Second) <= limit);

    /// <summary>
    /// min(r_i, r_i^2 / gap_i), gap_i = min over j != i of |theta_i - theta_j| - r_j: each other Ritz interval
    /// [theta_j - r_j, theta_j + r_j] holds an eigenvalue, so the one near theta_i is at least gap_i from the rest.
    /// </summary>
    internal static double ErrorBound(double[] ritz, double[] residuals, int i)
    {
        var r = residuals[i];
        // A lone Ritz value says nothing about where the rest of the spectrum is.
        if (ritz.Length < 2) return r;
        var gap = double.PositiveInfinity;
        for (var j = 0; j < ritz.Length; j++)
            if (j != i) gap = Math.Min(gap, Math.Abs(ritz[i] - ritz[j]) - residuals[j]);
        return gap > r ? Math.Min(r, r * r / gap) : r;
    }
}
