using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Settings of <see cref="LocalEntropyEstimate"/>.</summary>
public sealed record LocalEntropyEstimateOptions
{
    /// <summary>gamma, the scope (coupling strength); required, positive.</summary>
    public double Gamma { get; init; }

    /// <summary>T, the temperature (the paper's F uses T = 1; Entropy-SGD's chains run at eps^2 / 2). Default 1.</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>Samples x' ~ N(x, (T / gamma) I) for the direct estimator (0: skip it). Default 256.</summary>
    public int GaussianSamples { get; init; } = 256;

    /// <summary>Langevin steps kept for the Gibbs-measure estimator, after <see cref="BurnIn"/> (0: skip it). Default 0.</summary>
    public int LangevinSteps { get; init; }

    /// <summary>Langevin steps discarded first. Default 100.</summary>
    public int BurnIn { get; init; } = 100;

    /// <summary>eta, the Langevin step size (its bias is O(eta)). Default 1e-3.</summary>
    public double LangevinStepSize { get; init; } = 1e-3;

    /// <summary>Seed of both estimators. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Loss, parameters, BatchNorm and dropout handling.</summary>
    public LandscapeOptions Landscape { get; init; } = new();
}

/// <summary>Estimates of the local entropy at x relative to a flat landscape at the same height.</summary>
/// <param name="LossAtX">f(x), the mean loss over the evaluation set.</param>
/// <param name="Dimension">n, the number of selected parameters.</param>
/// <param name="FlatReference">F_flat(x, gamma) = -f(x) + (n T / 2) log(2 pi T / gamma): the local entropy of a landscape equal to f(x) everywhere.</param>
/// <param name="Relative">Direct estimate of F(x, gamma) - F_flat = T log E_{x'~N(x, T/gamma I)} exp(-(f(x') - f(x)) / T) (NaN if skipped).</param>
/// <param name="RelativeStandardError">Delta-method standard error of <paramref name="Relative"/>.</param>
/// <param name="EffectiveSampleSize">(sum w)^2 / sum w^2 of the direct estimator's weights: small values mean the estimate is dominated by few samples and biased low.</param>
/// <param name="LangevinRelative">The same quantity from the local Gibbs measure: -T log E_Gibbs exp((f(x') - f(x)) / T) (NaN if skipped).</param>
/// <param name="GibbsMeanLoss">&lt;f(x')&gt; under the local Gibbs measure.</param>
/// <param name="GibbsMeanSquaredDistance">&lt;||x' - x||^2&gt; under the local Gibbs measure (n T / gamma on a flat landscape).</param>
/// <param name="LocalEntropyGradientNorm">||gamma (x - &lt;x'&gt;)||: the norm of the local-entropy gradient Entropy-SGD follows.</param>
public sealed record LocalEntropyEstimateResult(double LossAtX, long Dimension, double FlatReference, double Relative, double RelativeStandardError,
    double EffectiveSampleSize, double LangevinRelative, double GibbsMeanLoss, double GibbsMeanSquaredDistance, double LocalEntropyGradientNorm)
{
    /// <summary>F(x, gamma) = F_flat + Relative (direct estimator).</summary>
    public double LocalEntropy => FlatReference + Relative;
}

/// <summary>
/// The local entropy F(x, gamma) = T log of the integral of exp(-(f(x') + gamma/2 ||x - x'||^2) / T) dx' (seed 003,
/// eq. 4) of a trained network, relative to a flat landscape at height f(x) (whose local entropy is known in closed
/// form, so the huge n-dependent constant drops out).
/// </summary>
/// <remarks>
/// Two estimators of the same quantity F - F_flat:
/// <list type="bullet">
/// <item>Direct: T log of the sample mean of exp(-(f(x') - f(x)) / T) over x' ~ N(x, T/gamma I). The mean inside the
/// log is unbiased, so the log is biased low (Jensen), by about T Var(w) / (2 N E(w)^2) for N samples; the effective
/// sample size says when that bias is large (wide Gaussians on sharp minima).</item>
/// <item>Langevin: samples of the local Gibbs measure by unadjusted Langevin dynamics on the full-set loss,
/// x' += -eta (grad f(x') + gamma (x' - x)) + sqrt(2 eta T) xi, and the identity E_Gibbs exp(Delta / T) =
/// 1 / E_N exp(-Delta / T), giving -T log of the chain average of exp(Delta / T). Biased by the step size (O(eta)), by
/// the finite chain (burn-in, correlation), and, being a harmonic-mean estimator, by rare large Delta. The chain also
/// gives the Gibbs averages Entropy-SGD estimates (&lt;x'&gt;, hence the local-entropy gradient).</item>
/// </list>
/// Both evaluate the loss on the full evaluation set (no minibatch noise). For one-dimensional toy landscapes
/// <see cref="Exact1D"/> gives the exact value by quadrature.
/// </remarks>
public static class LocalEntropyEstimate
{
    /// <summary>Estimates F(x, gamma) - F_flat at the model's current weights x; the weights and modes are restored afterwards.</summary>
    public static LocalEntropyEstimateResult Estimate(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        LocalEntropyEstimateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options;
        if (!(o.Gamma > 0) || double.IsInfinity(o.Gamma)) throw new ArgumentException($"LocalEntropyEstimate: Gamma must be positive and finite; got {o.Gamma}.", nameof(options));
        if (!(o.Temperature > 0) || double.IsInfinity(o.Temperature)) throw new ArgumentException($"LocalEntropyEstimate: Temperature must be positive and finite; got {o.Temperature}.", nameof(options));
        if (o.GaussianSamples < 0 || o.LangevinSteps < 0 || o.BurnIn < 0)
            throw new ArgumentException("LocalEntropyEstimate: GaussianSamples, LangevinSteps and BurnIn must not be negative.", nameof(options));
        if (o.GaussianSamples == 0 && o.LangevinSteps == 0)
            throw new ArgumentException("LocalEntropyEstimate: both estimators are switched off (GaussianSamples = 0 and LangevinSteps = 0).", nameof(options));
        if (o.LangevinSteps > 0 && !(o.LangevinStepSize > 0))
            throw new ArgumentException($"LocalEntropyEstimate: LangevinStepSize must be positive; got {o.LangevinStepSize}.", nameof(options));

        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, nameof(LocalEntropyEstimate));
        var n = loss.Layout.Dimension;
        var t = o.Temperature;
        using var x = loss.GetFlat();
        try
        {
            var fx = loss.Evaluate().Loss;
            var flat = -fx + 0.5 * n * t * Math.Log(2 * Math.PI * t / o.Gamma);
            using var generator = new Generator((ulong)o.Seed);

            double relative = double.NaN, relativeError = double.NaN, ess = double.NaN;
            if (o.GaussianSamples > 0)
            {
                var exponents = new double[o.GaussianSamples];
                var std = Math.Sqrt(t / o.Gamma);
                using var point = x.clone();
                for (var s = 0; s < o.GaussianSamples; s++)
                {
                    using var scope = NewDisposeScope();
                    var noise = randn(n, ScalarType.Float64, generator: generator).to(loss.Dtype, loss.Device);
                    using (no_grad()) point.copy_(x).AddScaled_(noise, std);
                    loss.SetFlat(point);
                    exponents[s] = -(loss.Evaluate().Loss - fx) / t;
                }
                (relative, relativeError, ess) = LogMeanExp(exponents, t);
            }

            double langevin = double.NaN, gibbsLoss = double.NaN, gibbsDistance = double.NaN, gradientNorm = double.NaN;
            if (o.LangevinSteps > 0)
                (langevin, gibbsLoss, gibbsDistance, gradientNorm) = Langevin(loss, x, fx, o, generator);

            return new LocalEntropyEstimateResult(fx, n, flat, relative, relativeError, ess, langevin, gibbsLoss, gibbsDistance, gradientNorm);
        }
        finally
        {
            loss.SetFlat(x);
        }
    }

    private static (double Relative, double GibbsLoss, double GibbsDistance, double GradientNorm) Langevin(
        LandscapeLoss loss, Tensor x, double fx, LocalEntropyEstimateOptions o, Generator generator)
    {
        var t = o.Temperature;
        var n = loss.Layout.Dimension;
        using var current = x.clone();
        using var gradient = loss.NewVector();
        using var sum = zeros(n, ScalarType.Float64, loss.Device);
        var noiseScale = Math.Sqrt(2 * o.LangevinStepSize * t);
        var exponents = new double[o.LangevinSteps];
        double lossSum = 0, distanceSum = 0;
        for (var step = 0; step < o.BurnIn + o.LangevinSteps; step++)
        {
            using var scope = NewDisposeScope();
            loss.SetFlat(current);
            var value = loss.Gradient(gradient);
            if (step >= o.BurnIn)
            {
                // The loss, distance and weight belong to the current sample, before it moves.
                var k = step - o.BurnIn;
                exponents[k] = (value - fx) / t;
                lossSum += value;
                var offset = current.sub(x).to(ScalarType.Float64);
                distanceSum += offset.dot(offset).ToDouble();
                sum.Accumulate_(offset);
            }
            if (!double.IsFinite(value))
                throw new InvalidOperationException($"LocalEntropyEstimate: the loss became {value} at Langevin step {step}; lower LangevinStepSize.");
            var noise = randn(n, ScalarType.Float64, generator: generator).to(loss.Dtype, loss.Device);
            using (no_grad())
            {
                // x' -= eta (grad f(x') + gamma (x' - x)); x' += sqrt(2 eta T) xi.
                gradient.AddScaled_(current, o.Gamma).AddScaled_(x, -o.Gamma);
                current.AddScaled_(gradient, -o.LangevinStepSize).AddScaled_(noise, noiseScale);
            }
        }
        var (logMean, _, _) = LogMeanExp(exponents, t);
        using var meanOffset = sum.DividedBy(o.LangevinSteps);
        // x - <x'> = -<x' - x>; the local-entropy gradient is gamma times that.
        var gradientNorm = o.Gamma * meanOffset.norm().ToDouble();
        return (-logMean, lossSum / o.LangevinSteps, distanceSum / o.LangevinSteps, gradientNorm);
    }

    /// <summary>T log mean exp(e), its delta-method standard error and the effective sample size, in a stable form.</summary>
    private static (double Value, double StandardError, double EffectiveSampleSize) LogMeanExp(double[] exponents, double t)
    {
        var max = exponents.Max();
        var weights = exponents.Select(e => Math.Exp(e - max)).ToArray();
        var mean = weights.Average();
        var value = t * (max + Math.Log(mean));
        var sumSquares = weights.Sum(w => w * w);
        var ess = weights.Sum() * weights.Sum() / sumSquares;
        if (weights.Length < 2) return (value, double.NaN, ess);
        var variance = weights.Sum(w => (w - mean) * (w - mean)) / (weights.Length - 1);
        return (value, t * Math.Sqrt(variance / weights.Length) / mean, ess);
    }

    /// <summary>
    /// The exact local entropy of a one-dimensional landscape by quadrature (see <see cref="LocalEntropyQuadrature"/>),
    /// for toy pictures (seed 003, Fig. 2) and for checking the estimators.
    /// </summary>
    public static LocalEntropyQuadrature.Result Exact1D(Func<double, double> f, double x, double gamma, double lo, double hi,
        int points = 20_001, double temperature = 1) =>
        LocalEntropyQuadrature.Evaluate(f, x, gamma, lo, hi, points, temperature);

    /// <summary>F_flat(x, gamma) for n parameters: the local entropy of a landscape constant at <paramref name="lossAtX"/>.</summary>
    public static double FlatReference(double lossAtX, long n, double gamma, double temperature = 1) =>
        -lossAtX + 0.5 * n * temperature * Math.Log(2 * Math.PI * temperature / gamma);
}
