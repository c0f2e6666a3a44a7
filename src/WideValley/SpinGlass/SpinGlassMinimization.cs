using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>Progress of a batched minimisation, reported once per step of each phase.</summary>
/// <param name="Phase">"gradient descent", "stochastic gradient", "annealing" or "quench".</param>
/// <param name="Step">Step of the phase (0-based).</param>
/// <param name="ActiveStarts">Starts still moving.</param>
public sealed record SpinGlassProgress(string Phase, int Step, int ActiveStarts);

/// <summary>
/// The end points of a batched minimisation of a spherical p-spin glass and, per start, what the minimiser reports:
/// the energy per spin H/N, the norm of the projected (Riemannian) gradient, the steps taken, whether the gradient
/// tolerance was met, and the index where it was computed. Owns <see cref="Points"/>.
/// </summary>
public sealed class SpinGlassMinimization : IDisposable
{
    internal SpinGlassMinimization(string method, Tensor points, double[] energyPerSpin, double[] gradientNorm, int[] steps, bool[] converged, int?[] index)
    {
        Method = method;
        Points = points;
        EnergyPerSpin = energyPerSpin;
        GradientNorm = gradientNorm;
        Steps = steps;
        Converged = converged;
        Index = index;
    }

    /// <summary>The minimiser that produced the result (e.g. "projected gradient descent").</summary>
    public string Method { get; }

    /// <summary>The end points, [K, N] on the sphere, in the glass's type and device.</summary>
    public Tensor Points { get; }

    /// <summary>K, the number of starts.</summary>
    public int Count => EnergyPerSpin.Count;

    /// <summary>H_h(w)/N at each end point.</summary>
    public IReadOnlyList<double> EnergyPerSpin { get; }

    /// <summary>|projected gradient of H_h| at each end point (the quantity the tolerance is compared with).</summary>
    public IReadOnlyList<double> GradientNorm { get; }

    /// <summary>Steps taken per start (all phases together).</summary>
    public IReadOnlyList<int> Steps { get; }

    /// <summary>Whether each start stopped on the gradient tolerance (false: it ran out of steps).</summary>
    public IReadOnlyList<bool> Converged { get; }

    /// <summary>Number of starts that met the tolerance.</summary>
    public int ConvergedCount => Converged.Count(c => c);

    /// <summary>
    /// The index (negative tangent-Hessian eigenvalues below −tolerance) of the end points it was computed for
    /// (the first <see cref="ProjectedGradientDescentOptions.IndexedStarts"/>), null for the others.
    /// </summary>
    public IReadOnlyList<int?> Index { get; }

    /// <summary>Clusters the end points by overlap (see <see cref="DistinctMinima.Cluster"/>), lowest energies first.</summary>
    public DistinctMinimaResult DistinctMinima(double threshold = SpinGlass.DistinctMinima.DefaultThreshold) =>
        SpinGlass.DistinctMinima.Cluster(Points, threshold, EnergyPerSpin);

    /// <summary>Frees <see cref="Points"/>.</summary>
    public void Dispose() => Points.Dispose();
}
