using TorchSharp;
using WideValley.DeepLinear;
using static TorchSharp.torch;

namespace WideValley.Tests.DeepLinear;

/// <summary>
/// The noise kinds (stated mean and variance, the annealing formulas) and the rank-deficient start's invariant: exact
/// gradient descent keeps every hidden layer's activity in its initial subspace, and so does input or output noise,
/// while gradient noise and multiplicative weight or activation noise break it and raise the product's rank.
/// </summary>
public sealed class NoiseAndRankTests
{
    [Fact]
    public void AnnealingSchedulesEqualTheirFormulas()
    {
        var constant = NoiseSchedule.Constant(0.3);
        Assert.Equal(0.3, constant.StandardDeviationAt(0));
        Assert.Equal(0.3, constant.StandardDeviationAt(12345));

        var neelakantan = NoiseSchedule.InverseTimePower(0.3);
        Assert.Equal(0.55, neelakantan.Gamma);
        Assert.Equal(0.3, neelakantan.StandardDeviationAt(0), 15);
        // Variance sigma_0^2 / (1 + t)^gamma: at t = 99, 0.09 / 100^0.55.
        Assert.Equal(0.09 / Math.Pow(100, 0.55), Math.Pow(neelakantan.StandardDeviationAt(99), 2), 15);
        Assert.Equal(0.3 * Math.Pow(10, -0.55), neelakantan.StandardDeviationAt(99), 14);
        Assert.Equal(0.3 / Math.Pow(2, 1.0 / 2), NoiseSchedule.InverseTimePower(0.3, gamma: 1).StandardDeviationAt(1), 15);

        var exponential = NoiseSchedule.Exponential(0.8, halfLife: 50);
        Assert.Equal(0.8, exponential.StandardDeviationAt(0));
        Assert.Equal(0.4, exponential.StandardDeviationAt(50), 15);
        Assert.Equal(0.2, exponential.StandardDeviationAt(100), 15);
        Assert.Equal(0.8 * Math.Pow(2, -0.3), exponential.StandardDeviationAt(15), 15);

        Assert.Equal(0, NoiseSchedule.None.StandardDeviationAt(7));
        Assert.Throws<ArgumentException>(() => NoiseSchedule.Exponential(0.1, 0).Validate("gradient noise"));
        Assert.Contains("gradient noise", Assert.Throws<ArgumentException>(() => NoiseSchedule.Constant(-1).Validate("gradient noise")).Message);
    }

    /// <summary>Mean and variance of <paramref name="values"/> against (mean, sd): within 5 standard errors (fixed seed, so deterministic).</summary>
    static void AssertMoments(Tensor values, double mean, double sd, string what)
    {
        var x = values.to(ScalarType.Float64).flatten();
        var n = x.shape[0];
        var m = x.mean().ToDouble();
        var v = x.var().ToDouble();
        Assert.True(Math.Abs(m - mean) <= 5 * sd / Math.Sqrt(n), $"{what}: mean {m:G5}, expected {mean} (n = {n})");
        Assert.True(Math.Abs(v / (sd * sd) - 1) <= 5 * Math.Sqrt(2.0 / n), $"{what}: variance {v:G5}, expected {sd * sd:G5} (n = {n})");
    }

    [Fact]
    public void EachNoiseKindHasItsStatedMeanAndVarianceAndOnlyWhereAsked()
    {
        using var scope = NewDisposeScope();
        int[] widths = [4, 8, 8, 4];
        using var problem = LinearRegressionProblem.Create(4, 4, [1.0, 0.5], 500, InputDistribution.Gaussian, 4, seed: 1);
        var noise = new[]
        {
            DeepLinearNoise.None,
            new DeepLinearNoise { Gradient = NoiseSchedule.Constant(0.3) },
            new DeepLinearNoise { Weights = NoiseSchedule.Constant(0.2) },
            new DeepLinearNoise { Activations = NoiseSchedule.Constant(0.25) },
            new DeepLinearNoise { Inputs = NoiseSchedule.Constant(0.5) },
            new DeepLinearNoise { Outputs = NoiseSchedule.Constant(0.4) },
        };
        using var nets = new DeepLinearNetworks(noise.Length, widths, ScalarType.Float32);
        using var training = new DeepLinearTraining(nets, [problem], new int[noise.Length], noise, 0.01, noiseSeed: 17);
        using var draw = training.DrawNoise();
        AssertMoments(draw.GradientNoise![1], 0, 0.3, "gradient noise");
        AssertMoments(draw.WeightMultipliers![2], 1, 0.2, "weight multipliers");
        AssertMoments(draw.ActivationMultipliers![0][3], 1, 0.25, "activation multipliers, hidden layer 1");
        AssertMoments(draw.ActivationMultipliers![1][3], 1, 0.25, "activation multipliers, hidden layer 2");
        AssertMoments(draw.InputNoise![4], 0, 0.5, "input noise");
        AssertMoments(draw.OutputNoise![5], 0, 0.4, "output noise");
        for (var i = 0; i < noise.Length; i++)
        {
            if (i != 1) Assert.Equal(0, draw.GradientNoise[i].abs().max().ToDouble());
            if (i != 2) Assert.Equal(0, draw.WeightMultipliers[i].sub(1).abs().max().ToDouble());
            if (i != 3) Assert.Equal(0, draw.ActivationMultipliers[0][i].sub(1).abs().max().ToDouble());
            if (i != 4) Assert.Equal(0, draw.InputNoise[i].abs().max().ToDouble());
            if (i != 5) Assert.Equal(0, draw.OutputNoise[i].abs().max().ToDouble());
        }
    }

    [Fact]
    public void AnnealedNoiseIsDrawnAtTheScaleOfTheCurrentStep()
    {
        using var scope = NewDisposeScope();
        using var problem = LinearRegressionProblem.Create(6, 6, [1.0], 20, InputDistribution.Whitened, 6, seed: 1);
        using var nets = new DeepLinearNetworks(1, [6, 30, 30, 6], ScalarType.Float64);
        var schedule = NoiseSchedule.InverseTimePower(1.0);
        using var training = new DeepLinearTraining(nets, [problem], [0], [new DeepLinearNoise { Gradient = schedule }], 1e-4, noiseSeed: 3);
        for (var t = 0; t < 99; t++) training.Step();
        using var none = training.DrawNoise();
        Assert.Null(none.InputNoise);
        Assert.Null(none.WeightMultipliers);
        AssertMoments(none.GradientNoise!, 0, Math.Pow(100, -0.275), "gradient noise at t = 99");
        var e = Assert.Throws<ArgumentException>(() => { using var old = none with { Step = 3 }; training.Step(old); });
        Assert.Contains("step 3", e.Message);
    }

    static readonly double[] TeacherSpectrum = [2.0, 1.5, 1.0, 0.5];
    const int Width = 6, DeficientRank = 2;

    // Breaking kinds: the layers leave their subspaces and the product's third singular value leaves rounding level
    // (1e-16) within 400 steps, but how far it rises depends on the kind: gradient noise reaches full numerical rank,
    // multiplicative noise's new singular values are still near the rank tolerance at depth 4, where a new mode of the
    // product is a product of L small layer components.

    /// <summary>The largest relative part of a layer outside its initial subspaces (range for l &lt;= L-1, row space for l &gt;= 2).</summary>
    static double InvariantResidual(Tensor[] start, Tensor[] now)
    {
        var depth = start.Length;
        var worst = 0.0;
        for (var l = 1; l <= depth; l++)
        {
            var (u, _, vh) = linalg.svd(start[l - 1], fullMatrices: false);
            var w = now[l - 1];
            var norm = w.norm().ToDouble();
            if (l < depth)
            {
                var q = u.narrow(1, 0, DeficientRank);
                worst = Math.Max(worst, w.sub(q.mm(q.t()).mm(w)).norm().ToDouble() / norm);
            }
            if (l > 1)
            {
                var r = vh.narrow(0, 0, DeficientRank).t();
                worst = Math.Max(worst, w.sub(w.mm(r).mm(r.t())).norm().ToDouble() / norm);
            }
        }
        return worst;
    }

    [Fact]
    public void RankDeficientStartStaysInItsSubspacesUnderGradientDescentAndInputOutputNoiseButNotUnderTheOtherKinds()
    {
        using var scope = NewDisposeScope();
        using var problem = LinearRegressionProblem.Create(Width, Width, TeacherSpectrum, 64, InputDistribution.Whitened, Width, seed: 4);
        var noise = new (string Name, DeepLinearNoise Noise, bool Keeps)[]
        {
            ("none", DeepLinearNoise.None, true),
            ("input", new DeepLinearNoise { Inputs = NoiseSchedule.Constant(0.3) }, true),
            ("output", new DeepLinearNoise { Outputs = NoiseSchedule.Constant(0.3) }, true),
            ("gradient", new DeepLinearNoise { Gradient = NoiseSchedule.Constant(0.05) }, false),
            ("weights", new DeepLinearNoise { Weights = NoiseSchedule.Constant(0.2) }, false),
            ("activations", new DeepLinearNoise { Activations = NoiseSchedule.Constant(0.2) }, false),
        };
        using var nets = new DeepLinearNetworks(noise.Length, [Width, Width, Width, Width, Width], ScalarType.Float64);
        for (var i = 0; i < noise.Length; i++) DeepLinearInit.RankDeficient(nets, i, seed: 5, rank: DeficientRank);
        var start = Enumerable.Range(1, nets.Depth).Select(l => nets.Layer(l)[0].clone()).ToArray();
        using var training = new DeepLinearTraining(nets, [problem], new int[noise.Length], noise.Select(n => n.Noise).ToArray(), 0.05, noiseSeed: 2);
        Assert.All(training.Measure(), m => Assert.Equal(DeficientRank, m.Rank));
        for (var t = 0; t < 400; t++) training.Step();
        var measured = training.Measure();
        // Any product of rank <= 2 is at least the best rank-2 loss, 1/2 (1^2 + 0.5^2), above the optimum (Eckart-Young).
        var rankTwoFloor = 0.5 * (1.0 + 0.25);
        for (var i = 0; i < noise.Length; i++)
        {
            var now = Enumerable.Range(1, nets.Depth).Select(l => nets.Layer(l)[i]).ToArray();
            var residual = InvariantResidual(start, now);
            var next = measured[i].Spectrum[DeficientRank] / measured[i].SigmaMax;
            var detail = $"{noise[i].Name}: rank {measured[i].Rank}, spectrum {string.Join(", ", measured[i].Spectrum.Select(s => s.ToString("G3")))}, residual {residual:G3}";
            if (noise[i].Keeps)
            {
                Assert.True(residual < 1e-10, detail);
                Assert.True(next < 1e-12, detail);
                Assert.Equal(DeficientRank, measured[i].Rank);
                Assert.True(measured[i].ExcessLoss >= rankTwoFloor - 1e-9, $"{noise[i].Name}: excess loss {measured[i].ExcessLoss:G4} below the rank-2 floor");
            }
            else
            {
                Assert.True(residual > 1e-3, detail);
                Assert.True(next > 1e-9, detail);
            }
        }
        Assert.Equal(Width, measured[3].Rank);
        // Gradient descent from the rank-deficient start reaches the saddle: the best rank-2 fit, not the optimum.
        Assert.InRange(measured[0].ExcessLoss, rankTwoFloor - 1e-9, rankTwoFloor + 1e-3);
    }
}
