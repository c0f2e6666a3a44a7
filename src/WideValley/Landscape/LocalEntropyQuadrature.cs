namespace WideValley.Landscape;

/// <summary>
/// Exact local entropy of one-dimensional landscapes by quadrature (seed 003, eq. 4, Fig. 2), for checking estimators
/// and drawing toy pictures. At temperature T (the paper uses T = 1):
/// F(x, gamma) = T log of the integral of exp(-(f(x') + gamma/2 (x - x')^2) / T) dx', and
/// -dF/dx = gamma (x - &lt;x'&gt;), with &lt;x'&gt; the mean of the local Gibbs measure (eq. 7-8).
/// </summary>
public static class LocalEntropyQuadrature
{
    /// <summary>F(x, gamma) and the local Gibbs mean &lt;x'&gt;.</summary>
    public readonly record struct Result(double LocalEntropy, double GibbsMean, double GibbsVariance)
    {
        /// <summary>-dF/dx = gamma (x - &lt;x'&gt;): the gradient Entropy-SGD descends.</summary>
        public double NegativeGradient(double x, double gamma) => gamma * (x - GibbsMean);
    }

    /// <summary>
    /// Evaluates by the trapezoid rule on <paramref name="points"/> equally spaced nodes in [<paramref name="lo"/>,
    /// <paramref name="hi"/>], in log-sum-exp form so that deep wells do not overflow. The interval must hold all of
    /// the Gibbs mass that matters; the Gaussian factor confines it to a few sqrt(T / gamma) around x.
    /// </summary>
    public static Result Evaluate(Func<double, double> f, double x, double gamma, double lo, double hi,
        int points = 20_001, double temperature = 1)
    {
        if (!(hi > lo)) throw new ArgumentException($"the interval [{lo}, {hi}] is empty");
        if (points < 3) throw new ArgumentOutOfRangeException(nameof(points), points, "at least 3 quadrature points");
        if (!(gamma >= 0)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "gamma must be non-negative");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be positive");
        var h = (hi - lo) / (points - 1);
        var exponents = new double[points];
        var max = double.NegativeInfinity;
        for (var i = 0; i < points; i++)
        {
            var xp = lo + i * h;
            var e = -(f(xp) + 0.5 * gamma * (x - xp) * (x - xp)) / temperature;
            exponents[i] = e;
            if (e > max) max = e;
        }
        double z = 0, m1 = 0, m2 = 0;
        for (var i = 0; i < points; i++)
        {
            var w = (i == 0 || i == points - 1 ? 0.5 : 1.0) * Math.Exp(exponents[i] - max);
            var xp = lo + i * h;
            z += w;
            m1 += w * xp;
            m2 += w * xp * xp;
        }
        var mean = m1 / z;
        return new Result(temperature * (max + Math.Log(z * h)), mean, Math.Max(0, m2 / z - mean * mean));
    }
}
