using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// Settings of <see cref="LanczosDensity"/>: how the spectrum is bounded, how many Lanczos steps build the quadrature,
/// whether the Krylov basis is reorthogonalised, and the Gaussian kernel that turns Ritz values into a density.
/// <see cref="Authors"/> is the layerwise-Hessian code of Sankar et al. (AAAI 2021, github yashkhasbage25/HTR,
/// <c>LayerHessians/hessian/hessian.py</c>) exactly; <see cref="Default"/> is ours.
/// </summary>
public sealed record LanczosDensityOptions
{
    /// <summary>
    /// Lanczos steps of the separate run that bounds the spectrum (the authors' <c>init_poly_deg</c> = 64). 0: no
    /// separate run; the bounds come from the density run's own extreme Ritz values and their residuals (ours; sound
    /// only with <see cref="Reorthogonalize"/>, which keeps the extreme Ritz values accurate).
    /// </summary>
    public int BoundSteps { get; init; }

    /// <summary>
    /// Fraction of (ub - lb) added below lb and above ub before the spectrum is mapped to [-1, 1] (the authors'
    /// <c>spectrum_margin</c> = 0.05).
    /// </summary>
    public double Margin { get; init; } = 0.05;

    /// <summary>Lanczos steps of the density run, M (the authors' <c>poly_deg</c> = 128); capped at the dimension when reorthogonalising.</summary>
    public int Iterations { get; init; } = 128;

    /// <summary>
    /// Full reorthogonalisation of the Krylov basis (two Gram-Schmidt passes, <see cref="Lanczos"/>'s process). The
    /// authors' code has none: in floating point their Ritz values then include spurious copies of converged
    /// eigenvalues ("ghosts"), whose quadrature weights are split among the copies.
    /// </summary>
    public bool Reorthogonalize { get; init; } = true;

    /// <summary>Grid points on [-1, 1] of the normalised spectrum (the authors' <c>poly_points</c> = 1024).</summary>
    public int Points { get; init; } = 1024;

    /// <summary>kappa of the kernel width sigma = Hw / sqrt(8 ln kappa), Hw = 2 / (M - 1) (the authors' 1.25).</summary>
    public double Kappa { get; init; } = 1.25;

    /// <summary>The kernel is cut where it falls below this fraction of its peak: |x - theta| &lt; sigma sqrt(-2 ln tol) (the authors' 1e-8).</summary>
    public double TruncationLevel { get; init; } = 1e-8;

    /// <summary>Random start vectors; the density is the mean of the per-probe densities (the authors' code: one). Default 1.</summary>
    public int Probes { get; init; } = 1;

    /// <summary>Seed of the Gaussian start vectors (the bound run uses its own stream, derived from it). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Checked before every operator application; a cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Told after every operator application (Done, Total in applications), on the calling thread.</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>
    /// The authors' parameters as coded (<c>LanczosApproxSpec(init_poly_deg=64, poly_deg=128, spectrum_margin=0.05,
    /// poly_points=1024)</c>): a 64-step run bounds the spectrum by its extreme Ritz values widened by their error
    /// margins |beta_M s_M,i|, 5% is added on each side, the operator is mapped to [-1, 1], 128 Lanczos steps without
    /// reorthogonalisation give Ritz values and weights, and a truncated Gaussian kernel gives 1024 density values.
    /// </summary>
    public static LanczosDensityOptions Authors { get; } = new() { BoundSteps = 64, Reorthogonalize = false };

    /// <summary>
    /// Ours (the default): the same kernel, grid and margin, but 128 steps WITH full reorthogonalisation, and the bounds
    /// taken from the density run itself (no separate bound run: 64 fewer operator applications per density).
    /// </summary>
    public static LanczosDensityOptions Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (BoundSteps < 0) throw new ArgumentException($"LanczosDensity: BoundSteps must be 0 (bounds from the density run) or positive; got {BoundSteps}.");
        if (BoundSteps == 1) throw new ArgumentException("LanczosDensity: BoundSteps must be at least 2 (one Ritz value bounds nothing); got 1.");
        if (Iterations < 2) throw new ArgumentException($"LanczosDensity: Iterations must be at least 2 (the kernel width is 2 / (M - 1)); got {Iterations}.");
        if (!(Margin >= 0) || !double.IsFinite(Margin)) throw new ArgumentException($"LanczosDensity: Margin must be a finite number >= 0; got {Margin}.");
        if (Points < 2) throw new ArgumentException($"LanczosDensity: Points must be at least 2; got {Points}.");
        if (!(Kappa > 1) || !double.IsFinite(Kappa)) throw new ArgumentException($"LanczosDensity: Kappa must be a finite number above 1; got {Kappa}.");
        if (!(TruncationLevel > 0 && TruncationLevel < 1)) throw new ArgumentException($"LanczosDensity: TruncationLevel must be in (0, 1); got {TruncationLevel}.");
        if (Probes < 1) throw new ArgumentException($"LanczosDensity: Probes must be at least 1; got {Probes}.");
    }
}

/// <summary>
/// An eigenvalue density from Lanczos quadrature: Ritz values (nodes) and weights per probe, the bounds and the map to
/// [-1, 1] they define, and the kernel. The density itself is a function of these (<see cref="Evaluate"/>,
/// <see cref="Density"/>), so the result is small enough to log after every epoch.
/// </summary>
/// <param name="Nodes">Ritz values per probe, in eigenvalue units, ascending.</param>
/// <param name="Weights">Their quadrature weights (squared first components of the tridiagonal's eigenvectors; sum 1 per probe).</param>
/// <param name="LowerBound">lb, after the margin.</param>
/// <param name="UpperBound">ub, after the margin.</param>
/// <param name="Points">Grid points of <see cref="Density"/>.</param>
/// <param name="NormalizedSigma">The kernel's sigma on the normalised axis [-1, 1].</param>
/// <param name="NormalizedCutoff">The kernel's half-width on the normalised axis (sigma sqrt(-2 ln tol)).</param>
/// <param name="OperatorApplications">Operator applications spent (bound run and density runs).</param>
/// <param name="Reorthogonalized">Whether the density runs reorthogonalised.</param>
public sealed record LanczosDensityResult(double[][] Nodes, double[][] Weights, double LowerBound, double UpperBound, int Points,
    double NormalizedSigma, double NormalizedCutoff, long OperatorApplications, bool Reorthogonalized)
{
    /// <summary>c = (lb + ub) / 2, the centre of the map to [-1, 1].</summary>
    public double Center => (LowerBound + UpperBound) / 2;

    /// <summary>d = (ub - lb) / 2, the half-width of the map to [-1, 1].</summary>
    public double HalfWidth => (UpperBound - LowerBound) / 2;

    /// <summary>The largest Ritz value over all probes (an estimate of lambda_max from below, exact in the limit).</summary>
    public double LargestNode => Nodes.Max(n => n.Max());

    /// <summary>
    /// The density as the authors' code returns it with <c>denormalize=True</c>: x = linspace(-1, 1, Points) mapped to
    /// x d + c, and y = sum_i gamma_i exp(-(x - theta_i)^2 / (2 sigma^2)) / sqrt(2 pi sigma^2) / d (on the normalised
    /// axis, kernel cut at <see cref="NormalizedCutoff"/>), averaged over probes.
    /// </summary>
    public SpectralDensity Density()
    {
        var grid = new double[Points];
        for (var g = 0; g < Points; g++) grid[g] = Center + HalfWidth * (-1 + 2.0 * g / (Points - 1));
        return new SpectralDensity(grid, Evaluate(grid), NormalizedSigma * HalfWidth);
    }

    /// <summary>The same density at any eigenvalues (e.g. a grid shared with another density); zero beyond every node's kernel cut-off.</summary>
    public double[] Evaluate(IReadOnlyList<double> eigenvalues)
    {
        ArgumentNullException.ThrowIfNull(eigenvalues);
        var d = HalfWidth;
        var c = Center;
        var sigma2 = 2 * NormalizedSigma * NormalizedSigma;
        var scaling = 1.0 / Math.Sqrt(sigma2 * Math.PI) / d / Nodes.Length;
        var result = new double[eigenvalues.Count];
        for (var g = 0; g < result.Length; g++)
        {
            var x = (eigenvalues[g] - c) / d;
            double sum = 0;
            for (var p = 0; p < Nodes.Length; p++)
                for (var i = 0; i < Nodes[p].Length; i++)
                {
                    var theta = (Nodes[p][i] - c) / d;
                    var diff = x - theta;
                    if (Math.Abs(diff) < NormalizedCutoff) sum += Weights[p][i] * Math.Exp(-diff * diff / sigma2);
                }
            result[g] = sum * scaling;
        }
        return result;
    }

    /// <summary>The quadrature estimate of (1/n) tr f(H): sum_i gamma_i f(theta_i), averaged over probes (no kernel).</summary>
    public double Quadrature(Func<double, double> f)
    {
        ArgumentNullException.ThrowIfNull(f);
        double sum = 0;
        for (var p = 0; p < Nodes.Length; p++)
            for (var i = 0; i < Nodes[p].Length; i++)
                sum += Weights[p][i] * f(Nodes[p][i]);
        return sum / Nodes.Length;
    }
}

/// <summary>
/// The eigenvalue density of a symmetric operator by Lanczos quadrature, in the form of Papyan's spectrum code as the
/// layerwise-Hessian paper (Sankar et al., AAAI 2021) uses it: bound the spectrum, map the operator to (A - cI) / d with
/// spectrum in [-1, 1], run Lanczos from a random unit vector, and smooth the Ritz values theta_i with weights
/// gamma_i = s_1,i^2 by a truncated Gaussian kernel whose width follows the number of steps. With
/// <see cref="LanczosDensityOptions.Authors"/> every step is theirs; <see cref="LanczosDensityOptions.Default"/> adds
/// full reorthogonalisation.
/// </summary>
public static class LanczosDensity
{
    /// <summary>The density of a curvature operator (an <see cref="Hvp"/>, a layer's diagonal block, a dense matrix).</summary>
    public static LanczosDensityResult Run(ICurvatureOperator op, LanczosDensityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(op);
        return Run(op.AsFunction(), op.Dimension, options, op.Dtype, op.Device);
    }

    /// <summary>The density of the symmetric operator <paramref name="apply"/> on vectors of length <paramref name="n"/> (it returns a new tensor, which this method disposes).</summary>
    /// <exception cref="ArgumentException">Invalid options or dimension.</exception>
    /// <exception cref="InvalidOperationException">The operator produced a non-finite value, or the spectrum has zero width.</exception>
    public static LanczosDensityResult Run(Func<Tensor, Tensor> apply, long n, LanczosDensityOptions? options = null,
        ScalarType operatorType = ScalarType.Float64, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(apply);
        var o = options ?? LanczosDensityOptions.Default;
        o.Validate();
        if (n < 1) throw new ArgumentException($"LanczosDensity: the operator dimension must be positive; got n = {n}.", nameof(n));
        var dev = device ?? CPU;
        long applications = 0;
        var total = (long)o.BoundSteps + (long)o.Probes * o.Iterations;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Tensor Counted(Tensor v)
        {
            o.Cancellation.ThrowIfCancellationRequested();
            var r = apply(v);
            applications++;
            o.Progress?.Report(new CurvatureProgress("lanczos-density", applications, total, watch.Elapsed));
            return r;
        }

        double lb, ub;
        double[][]? rawNodes = null;
        double[][]? rawWeights = null;
        using var generator = new Generator((ulong)o.Seed);
        if (o.BoundSteps > 0)
        {
            // The authors' compute_lb_ub: a separate Lanczos run on A itself; its extreme Ritz values widened by their residuals.
            using var boundGenerator = new Generator(unchecked((ulong)(o.Seed * 7919 + 104_729)));
            using var start = RandomVectors.Draw(boundGenerator, n, ProbeDistribution.Gaussian, dev);
            var run = o.Reorthogonalize
                ? Reorthogonalized(Counted, n, start, o.BoundSteps, 0, 1, operatorType, dev, o.Seed)
                : Plain(Counted, n, start, o.BoundSteps, 0, 1, operatorType, dev);
            (lb, ub) = (run.Values[0] - run.Residuals[0], run.Values[^1] + run.Residuals[^1]);
        }
        else
        {
            // Ours: the density runs on A itself; the bounds come from their own extreme Ritz values and residuals.
            rawNodes = new double[o.Probes][];
            rawWeights = new double[o.Probes][];
            (lb, ub) = (double.PositiveInfinity, double.NegativeInfinity);
            for (var p = 0; p < o.Probes; p++)
            {
                using var start = RandomVectors.Draw(generator, n, ProbeDistribution.Gaussian, dev);
                var run = o.Reorthogonalize
                    ? Reorthogonalized(Counted, n, start, o.Iterations, 0, 1, operatorType, dev, unchecked(o.Seed * 1_000_003 + p))
                    : Plain(Counted, n, start, o.Iterations, 0, 1, operatorType, dev);
                rawNodes[p] = run.Values;
                rawWeights[p] = run.Weights;
                lb = Math.Min(lb, run.Values[0] - run.Residuals[0]);
                ub = Math.Max(ub, run.Values[^1] + run.Residuals[^1]);
            }
        }
        if (!(ub > lb))
        {
            // A multiple of the identity (or a zero operator): give the kernel a width relative to the value.
            var spread = Math.Max(Math.Abs(lb), 1.0) * 1e-6;
            (lb, ub) = (lb - spread, ub + spread);
        }
        var margin = o.Margin * (ub - lb);
        lb -= margin;
        ub += margin;
        var c = (lb + ub) / 2;
        var d = (ub - lb) / 2;

        double[][] nodes;
        double[][] weights;
        if (rawNodes is not null)
        {
            nodes = rawNodes;
            weights = rawWeights!;
        }
        else
        {
            nodes = new double[o.Probes][];
            weights = new double[o.Probes][];
            for (var p = 0; p < o.Probes; p++)
            {
                using var start = RandomVectors.Draw(generator, n, ProbeDistribution.Gaussian, dev);
                // Lanczos on (A - cI) / d, whose spectrum lies in [-1, 1]; nodes mapped back to eigenvalue units.
                var run = o.Reorthogonalize
                    ? Reorthogonalized(Counted, n, start, o.Iterations, c, d, operatorType, dev, unchecked(o.Seed * 1_000_003 + p))
                    : Plain(Counted, n, start, o.Iterations, c, d, operatorType, dev);
                nodes[p] = run.Values.Select(t => t * d + c).ToArray();
                weights[p] = run.Weights;
            }
        }
        // The kernel follows the number of Ritz values (M), on the normalised axis.
        var m = nodes.Max(x => x.Length);
        var hw = 2.0 / Math.Max(1, m - 1);
        var sigma = hw / Math.Sqrt(8 * Math.Log(o.Kappa));
        var cutoff = sigma * Math.Sqrt(-2.0 * Math.Log(o.TruncationLevel));
        return new LanczosDensityResult(nodes, weights, lb, ub, o.Points, sigma, cutoff, applications, o.Reorthogonalize);
    }

    /// <summary>Ritz values (ascending) of one run, their weights s_1,i^2 and residual bounds |beta_M s_M,i|.</summary>
    internal sealed record RitzRun(double[] Values, double[] Weights, double[] Residuals);

    /// <summary>
    /// The authors' recurrence on (A - cI) / d without reorthogonalisation: w = B v_j - beta_(j-1) v_(j-1);
    /// alpha_j = w.v_j; w -= alpha_j v_j; beta_j = |w|; v_(j+1) = w / beta_j. Vectors in float64. If beta is exactly zero
    /// (an invariant subspace found, which their code would divide by), the run stops there with the steps taken.
    /// </summary>
    internal static RitzRun Plain(Func<Tensor, Tensor> apply, long n, Tensor start, int steps, double c, double d,
        ScalarType operatorType, Device device)
    {
        var alpha = new List<double>(steps);
        var beta = new List<double>(steps);
        Tensor v;
        using (NewDisposeScope())
        {
            var s = start.to(ScalarType.Float64, device);
            var norm = s.norm().ToDouble();
            if (!(norm > 0) || !double.IsFinite(norm)) throw new ArgumentException($"LanczosDensity: the start vector must be finite and non-zero; its norm is {norm}.");
            v = s.DividedBy(norm).DetachFromDisposeScope();
        }
        Tensor? previous = null;
        try
        {
            for (var j = 0; j < steps; j++)
            {
                using var step = NewDisposeScope();
                var input = v.dtype == operatorType ? v : v.to(operatorType);
                var output = apply(input);
                if (output.dim() != 1 || output.shape[0] != n)
                    throw new InvalidOperationException($"LanczosDensity: the operator returned shape ({string.Join(", ", output.shape)}) for a vector of length {n}.");
                var w = output.to(ScalarType.Float64, device);
                if (ReferenceEquals(w, output)) w = output.clone();
                output.Dispose();
                if (c != 0) w.AddScaled_(v, -c);
                if (d != 1) w.DivideBy_(d);
                if (previous is not null) w.AddScaled_(previous, -beta[^1]);
                var a = w.dot(v).ToDouble();
                if (!double.IsFinite(a))
                    throw new InvalidOperationException($"LanczosDensity: the operator produced a non-finite value at step {j + 1} (v^T A v = {a}).");
                alpha.Add(a);
                w.AddScaled_(v, -a);
                var b = w.norm().ToDouble();
                beta.Add(b);
                if (!(b > 0)) break;
                previous?.Dispose();
                previous = v;
                v = w.DivideBy_(b).DetachFromDisposeScope();
            }
        }
        finally
        {
            v.Dispose();
            previous?.Dispose();
        }
        return Decompose(alpha, beta);
    }

    /// <summary>The same on <see cref="LanczosProcess"/>, which reorthogonalises fully (steps capped at n).</summary>
    private static RitzRun Reorthogonalized(Func<Tensor, Tensor> apply, long n, Tensor start, int steps, double c, double d,
        ScalarType operatorType, Device device, long restartSeed)
    {
        Func<Tensor, Tensor> shifted = c == 0 && d == 1 ? apply : v =>
        {
            using var scope = NewDisposeScope();
            var w = apply(v).to(ScalarType.Float64, device);
            var x = v.to(ScalarType.Float64, device);
            return w.AddScaled_(x, -c).DivideBy_(d).MoveToOuterDisposeScope();
        };
        using var process = new LanczosProcess(shifted, n, start, operatorType, device, restartSeed);
        var cap = (int)Math.Min(steps, n);
        while (process.Steps < cap && process.Step()) { }
        return Decompose(process.Alpha, process.Beta);
    }

    /// <summary>Eigen-decomposition of the tridiagonal (alpha, beta): Ritz values, first-row weights, |beta_M s_M,i|.</summary>
    internal static RitzRun Decompose(IReadOnlyList<double> alpha, IReadOnlyList<double> beta)
    {
        using var scope = NewDisposeScope();
        var m = alpha.Count;
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
        var (values, vectors) = linalg.eigh(tensor(entries, [m, m], ScalarType.Float64));
        var ritz = values.data<double>().ToArray();
        var first = vectors[0].data<double>().ToArray();
        var last = vectors[m - 1].data<double>().ToArray();
        var lastBeta = beta.Count >= m ? beta[m - 1] : 0;
        return new RitzRun(ritz, first.Select(x => x * x).ToArray(), last.Select(x => Math.Abs(lastBeta * x)).ToArray());
    }
}
