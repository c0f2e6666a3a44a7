using TorchSharp;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

/// <summary>The estimator against the closed forms of a quadratic loss (seed 003, eq. 7-8; paper-notes).</summary>
public class LocalEntropyClosedFormTests
{
    [Theory]
    [InlineData(LangevinKernel.TensorOps, ScalarType.Float64, 1e-9)]
    [InlineData(LangevinKernel.FusedCpu, ScalarType.Float32, 2e-5)]
    public void WithoutNoiseMuReachesTheGibbsMeanAndXIsRestored(LangevinKernel kernel, ScalarType dtype, double tolerance)
    {
        using var q = new QuadraticProblem(50, 0.5, 4, dtype);
        const double gamma = 1, lr = 0.2;
        // A + gamma I has eigenvalues in [1.5, 5]; one step contracts the error by max |1 - lr m| = 0.7, so after
        // 300 steps the chain (and its exponential average) sits at the fixed point to 0.7^300 ~ 1e-46: the only
        // error left is rounding, hence the dtype-dependent tolerance.
        var options = new LocalEntropyOptions { L = 300, Scope = new ConstantScope(gamma), LangevinLr = lr, Noise = 0, Kernel = kernel };
        using var estimator = new LocalEntropy([q.X], options);
        var x = q.X.detach().clone();
        estimator.Estimate(q.Closure);
        Assert.Equal(300, q.Calls);
        Assert.True(q.X.eq(x).all().item<bool>(), "the weights must be restored exactly");
        using var expected = x.to(ScalarType.Float64) - q.GibbsMean(x, gamma);   // x - mu
        var error = (q.X.grad!.to(ScalarType.Float64) - expected).abs().max().ToDouble();
        Assert.True(error < tolerance, $"max |(x - mu) - (x - <x'>)| = {error:E2}");
    }

    [Fact]
    public void ScaledGradientIsGammaTimesTheUnscaledOne()
    {
        using var q = new QuadraticProblem(20, 0.5, 4, ScalarType.Float64);
        const double gamma = 0.7;
        var options = new LocalEntropyOptions { L = 200, Scope = new ConstantScope(gamma), LangevinLr = 0.2, Noise = 0, Gradient = LocalEntropyGradient.ScaledByGamma };
        using var estimator = new LocalEntropy([q.X], options);
        var x = q.X.detach().clone();
        estimator.Estimate(q.Closure);
        using var expected = gamma * (x - q.GibbsMean(x, gamma));              // -dF/dx = gamma (x - <x'>), eq. (7)
        Assert.True(q.X.grad!.allclose(expected, rtol: 1e-9, atol: 1e-12));
    }

    /// <summary>
    /// With noise, the Langevin iterates sample a Gaussian. For the Euler step x' = x' - lr (M x' - c) + s z, with
    /// M = A + gamma I and s = sqrt(lr) eps (the paper's scaling), the stationary covariance is exactly
    /// s^2 (lr M (2 - lr M))^-1 = eps^2 (M (2 - lr M))^-1, which tends to T M^-1 with T = eps^2 / 2 as lr -> 0.
    /// </summary>
    [Theory]
    [InlineData(LangevinKernel.FusedCpu, ScalarType.Float32, LangevinNoiseScaling.Paper)]
    [InlineData(LangevinKernel.TensorOps, ScalarType.Float64, LangevinNoiseScaling.Paper)]
    [InlineData(LangevinKernel.FusedCpu, ScalarType.Float32, LangevinNoiseScaling.Reference)]
    public void IterateCovarianceIsTheTemperatureTimesTheInverseCurvature(LangevinKernel kernel, ScalarType dtype, LangevinNoiseScaling scaling)
    {
        const int n = 50, burnIn = 2_000, steps = 62_000;
        const double gamma = 1, lr = 0.02, eps = 0.1;
        using var q = new QuadraticProblem(n, 0.5, 4, dtype, seed: 3);
        using var samples = zeros(steps, n, ScalarType.Float64);
        var i = 0;
        q.OnEvaluate = x => { using var row = samples[i++]; row.copy_(x); };
        var options = new LocalEntropyOptions
        {
            L = steps, Scope = new ConstantScope(gamma), LangevinLr = lr, Noise = eps, NoiseScaling = scaling, Kernel = kernel, Seed = 11,
        };
        using var estimator = new LocalEntropy([q.X], options);
        using (var scope = NewDisposeScope()) estimator.Estimate(q.Closure);

        using var scope2 = NewDisposeScope();
        var kept = samples.narrow(0, burnIn, steps - burnIn);
        var centred = kept - kept.mean([0]);
        var covariance = centred.T.matmul(centred) / (steps - burnIn - 1);
        // Work in the eigenbasis of A (shared by M): there the exact covariance is diagonal.
        var u = q.Eigenvectors;
        var m = q.Eigenvalues + gamma;
        var inBasis = u.T.matmul(covariance).matmul(u);
        var measured = inBasis.diagonal();
        var temperature = options.Temperature;
        var noiseVariance = options.NoiseStd * options.NoiseStd;
        var exact = noiseVariance / (lr * m * (2 - lr * m));
        var continuum = temperature / m;
        var ratio = (measured / exact).data<double>().ToArray();
        // Each eigen-direction has at least ~850 effective samples (the correlation time is 1 / (lr m) <= 33 steps):
        // a sample variance is then within 5 standard errors, sqrt(2/850) * 5 = 24%, of the truth; the mean over 50
        // directions is far tighter (about 0.5% standard error, so 3% is ~6 sigma).
        Assert.All(ratio, r => Assert.InRange(r, 0.76, 1.24));
        Assert.InRange(ratio.Average(), 0.97, 1.03);
        // Off-diagonal entries in the eigenbasis vanish: the noise is isotropic and uncorrelated across coordinates.
        var offDiagonal = (inBasis - diag(measured)).abs().max().ToDouble();
        Assert.True(offDiagonal < 0.15 * measured.min().ToDouble(), $"largest off-diagonal {offDiagonal:E2}");
        // The continuum law T M^-1: equal to the exact one up to the discretisation factor 1 / (1 - lr m / 2),
        // which is at most 1.053 here.
        var continuumRatio = (measured / continuum).mean().ToDouble();
        var bias = (exact / continuum).mean().ToDouble();
        Assert.InRange(continuumRatio, 0.97, 1.03 * bias + 0.01);
        Assert.InRange(bias, 1.0, 1.06);
    }

    [Fact]
    public void FusedAndTensorKernelsAgreeWithoutNoiseForEveryOptionCombination()
    {
        foreach (var target in new[] { LangevinMomentumTarget.Drift, LangevinMomentumTarget.LossGradient })
        foreach (var nesterov in new[] { false, true })
        foreach (var average in new[] { LangevinAverage.Paper, LangevinAverage.Reference })
        {
            var options = new LocalEntropyOptions
            {
                L = 25, Scope = new ConstantScope(0.3), LangevinLr = 0.05, Noise = 0, LangevinMomentum = 0.9,
                LangevinNesterov = nesterov, MomentumTarget = target, Average = average, LangevinWeightDecay = 1e-2,
            };
            Tensor Run(LangevinKernel kernel)
            {
                using var q = new QuadraticProblem(37, 0.5, 4, ScalarType.Float32, seed: 5);   // 37: exercises the scalar tail
                using var estimator = new LocalEntropy([q.X], options with { Kernel = kernel });
                estimator.Estimate(q.Closure);
                return q.X.grad!.clone();
            }
            using var fused = Run(LangevinKernel.FusedCpu);
            using var ops = Run(LangevinKernel.TensorOps);
            Assert.True(fused.allclose(ops, rtol: 1e-5, atol: 1e-6), $"{target}, nesterov {nesterov}, {average}");
        }
    }
}
