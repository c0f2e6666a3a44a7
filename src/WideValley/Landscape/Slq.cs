using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Settings of <see cref="Slq"/>.</summary>
public sealed record SlqOptions
{
    /// <summary>Random probe vectors (independent Lanczos runs). Default 10.</summary>
    public int Probes { get; init; } = 10;

    /// <summary>Lanczos steps per probe (quadrature nodes per probe); capped at the dimension. Default 90.</summary>
    public int Steps { get; init; } = 90;

    /// <summary>Distribution of the probes (normalised to unit length before use). Default Rademacher.</summary>
    public ProbeDistribution Distribution { get; init; } = ProbeDistribution.Rademacher;

    /// <summary>Seed of the probes. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Told after every Lanczos step (Done and Total count operator applications over all probes), on the calling thread. Default none.</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Checked before every operator application; a cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>An eigenvalue density on a grid.</summary>
/// <param name="Grid">Equally spaced eigenvalue positions, ascending.</param>
/// <param name="Density">Estimated density at each grid point (integrates to about 1 over the grid).</param>
/// <param name="Sigma">Standard deviation of the Gaussian kernel that smoothed the quadrature nodes.</param>
public sealed record SpectralDensity(double[] Grid, double[] Density, double Sigma)
{
    /// <summary>Trapezoid-rule integral of Density x lambda^power over the grid (power 0: total mass).</summary>
    public double Integral(int power = 0)
    {
        double sum = 0;
        for (var i = 1; i < Grid.Length; i++)
        {
            var h = Grid[i] - Grid[i - 1];
            sum += 0.5 * h * (Density[i - 1] * Math.Pow(Grid[i - 1], power) + Density[i] * Math.Pow(Grid[i], power));
        }
        return sum;
    }
}

/// <summary>
/// The outcome of stochastic Lanczos quadrature: for each probe l, Ritz values theta_li (nodes) and weights tau_li^2
/// (squared first components of the tridiagonal's eigenvectors; they sum to 1 per probe). Following Ubaru, Chen and
/// Saad (2017), (1/n) tr f(H) is estimated by (1/probes) sum_l sum_i tau_li^2 f(theta_li): each probe's rule is exact
/// for v^T f(H) v whenever f is a polynomial of degree below 2 x steps, and v^T f(H) v with a unit Rademacher or
/// Gaussian v is an unbiased (Hutchinson) estimate of (1/n) tr f(H).
/// </summary>
/// <param name="Nodes">Ritz values per probe.</param>
/// <param name="Weights">Quadrature weights per probe (sum 1 each).</param>
/// <param name="Dimension">n, the operator dimension.</param>
/// <param name="OperatorApplications">Operator applications (probes x steps).</param>
public sealed record SlqResult(double[][] Nodes, double[][] Weights, long Dimension, long OperatorApplications)
{
    /// <summary>Per-probe estimates of (1/n) tr f(H).</summary>
    public double[] PerProbe(Func<double, double> f) =>
        Nodes.Select((nodes, l) => nodes.Select((theta, i) => Weights[l][i] * f(theta)).Sum()).ToArray();

    /// <summary>(1/n) tr f(H) estimated, with the standard error across probes (NaN for one probe).</summary>
    public (double Estimate, double StandardError) Estimate(Func<double, double> f) => MeanAndError(PerProbe(f));

    /// <summary>The p-th spectral moment (1/n) tr H^p with its standard error.</summary>
    public (double Estimate, double StandardError) Moment(int power) => Estimate(x => Math.Pow(x, power));

    /// <summary>Estimated fraction of eigenvalues with |lambda| &lt; <paramref name="threshold"/> (the quadrature weight of those nodes).</summary>
    public double FractionAbsBelow(double threshold) => Estimate(x => Math.Abs(x) < threshold ? 1 : 0).Estimate;

    /// <summary>Smallest and largest Ritz value over all probes (estimates of the spectrum's ends).</summary>
    public (double Min, double Max) Range => (Nodes.Min(n => n.Min()), Nodes.Max(n => n.Max()));

    /// <summary>
    /// Gaussian-smoothed density phi(t) = (1/probes) sum_l sum_i tau_li^2 N(t; theta_li, sigma^2) on
    /// <paramref name="points"/> grid points from <paramref name="lo"/> to <paramref name="hi"/>. Defaults: sigma =
    /// 1% of the Ritz range, grid from the smallest to the largest node extended by 5 sigma (so the density integrates to 1
    /// up to the trapezoid error).
    /// </summary>
    public SpectralDensity Density(int points = 1000, double? sigma = null, double? lo = null, double? hi = null)
    {
        if (points < 2) throw new ArgumentException($"Slq.Density: at least 2 grid points; got {points}.", nameof(points));
        var (min, max) = Range;
        var s = sigma ?? Math.Max((max - min) * 0.01, 1e-12 * Math.Max(1, Math.Abs(max)));
        if (!(s > 0)) throw new ArgumentException($"Slq.Density: sigma must be positive; got {s}.", nameof(sigma));
        var a = lo ?? min - 5 * s;
        var b = hi ?? max + 5 * s;
        if (!(b > a)) throw new ArgumentException($"Slq.Density: the grid [{a}, {b}] is empty.");
        var grid = new double[points];
        var density = new double[points];
        var norm = 1 / (Math.Sqrt(2 * Math.PI) * s * Nodes.Length);
        for (var g = 0; g < points; g++)
        {
            var t = a + (b - a) * g / (points - 1);
            grid[g] = t;
            double sum = 0;
            for (var l = 0; l < Nodes.Length; l++)
                for (var i = 0; i < Nodes[l].Length; i++)
                {
                    var z = (t - Nodes[l][i]) / s;
                    sum += Weights[l][i] * Math.Exp(-0.5 * z * z);
                }
            density[g] = sum * norm;
        }
        return new SpectralDensity(grid, density, s);
    }

    internal static (double Mean, double StandardError) MeanAndError(IReadOnlyList<double> samples)
    {
        var mean = samples.Average();
        if (samples.Count < 2) return (mean, double.NaN);
        var variance = samples.Sum(x => (x - mean) * (x - mean)) / (samples.Count - 1);
        return (mean, Math.Sqrt(variance / samples.Count));
    }
}

/// <summary>
/// Eigenvalue density by stochastic Lanczos quadrature (Lin, Saad and Yang 2016; Ubaru, Chen and Saad 2017;
/// Ghorbani et al. 2019): independent Lanczos runs from seeded random unit probes, each giving a Gauss quadrature rule
/// for the spectral measure. Full reorthogonalisation keeps the nodes free of spurious copies.
/// </summary>
public static class Slq
{
    /// <summary>Eigenvalue density of a curvature operator (Hessian, Gauss-Newton, Fisher, dense matrix).</summary>
    /// <param name="op">The symmetric operator.</param>
    /// <param name="options">Probes, steps, seed.</param>
    public static SlqResult Run(ICurvatureOperator op, SlqOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(op);
        return Run(op.AsFunction(), op.Dimension, options, op.Dtype, op.Device);
    }

    /// <summary>Density of the symmetric operator <paramref name="apply"/> on vectors of length <paramref name="n"/> (see <see cref="Lanczos.Run(Func{Tensor, Tensor}, long, int, SpectrumEnd, LanczosOptions?, ScalarType, Device?)"/> for the operator's contract).</summary>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled.</exception>
    public static SlqResult Run(Func<Tensor, Tensor> apply, long n, SlqOptions? options = null,
        ScalarType operatorType = ScalarType.Float64, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(apply);
        var o = options ?? new SlqOptions();
        if (n < 1) throw new ArgumentException($"Slq: the operator dimension must be positive; got n = {n}.", nameof(n));
        if (o.Probes < 1) throw new ArgumentException($"Slq: Probes must be positive; got {o.Probes}.", nameof(options));
        if (o.Steps < 1) throw new ArgumentException($"Slq: Steps must be positive; got {o.Steps}.", nameof(options));
        var dev = device ?? CPU;
        var steps = (int)Math.Min(o.Steps, n);
        var nodes = new double[o.Probes][];
        var weights = new double[o.Probes][];
        long applications = 0;
        using var generator = new Generator((ulong)o.Seed);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (var l = 0; l < o.Probes; l++)
        {
            using var probe = RandomVectors.Draw(generator, n, o.Distribution, dev);
            using var process = new LanczosProcess(apply, n, probe, operatorType, dev, unchecked(o.Seed * 1_000_003 + l));
            while (process.Steps < steps)
            {
                o.Cancellation.ThrowIfCancellationRequested();
                if (!process.Step()) break;
                o.Progress?.Report(new CurvatureProgress("slq", (long)l * steps + process.Steps, (long)o.Probes * steps, watch.Elapsed));
            }
            applications += process.OperatorApplications;
            var (values, vectors) = process.Ritz();
            using (vectors)
            {
                var first = vectors[0].data<double>().ToArray();
                nodes[l] = values;
                weights[l] = first.Select(x => x * x).ToArray();
            }
        }
        return new SlqResult(nodes, weights, n, applications);
    }
}
