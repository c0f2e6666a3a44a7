using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using static WideValley.Tests.Landscape.SharpnessFixtures;

namespace WideValley.Tests.Landscape;

/// <summary>The sharpness measures against the closed forms of a quadratic L(x) = 1/2 (x - x*)^T A (x - x*) + c, in float64.</summary>
public sealed class SharpnessTests
{
    private static readonly double[] Spectrum = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1];

    private static (Quadratic Model, Tensor A, Tensor Center) AtMinimum(double constant = 0.3, long seed = 11)
    {
        TorchRuntime.EnsureInitialized();
        var a = MatrixWithSpectrum(Spectrum, seed);
        var center = RandomPoint(Spectrum.Length, seed + 1);
        return (new Quadratic(a, center, center, split: 2, constant), a, center);
    }

    [Fact]
    public void SamNStepAtTheMinimumReachesHalfRhoSquaredLambdaMax()
    {
        var (model, a, _) = AtMinimum();
        const double rho = 0.3;
        var result = Sharpness.Sam(model, DummySet(), new SamSharpnessOptions { Rho = rho, Steps = 80, Landscape = Options() });
        var expected = 0.5 * rho * rho * LambdaMax(a);
        Assert.Equal(expected, result.Value, 1e-10 * expected);
        Assert.True(result.ZeroGradientFallback, "the gradient at x* is zero: the first step must be the seeded random direction");
        Assert.Equal(rho, result.PerturbationNorm, 1e-12);
        Assert.Equal(0.3, result.LossAtStart, 1e-15);
        Assert.Equal(0.3 + expected, result.LossAtWorst, 1e-12);
        Assert.Equal(80, result.GradientEvaluations);
        Assert.Equal(1, result.ForwardEvaluations);
        Assert.Equal(80, result.Iterations);
        Assert.Equal(RescalingInvariance.NotInvariant, result.Invariance);
    }

    [Fact]
    public void SamOneStepAtTheMinimumFollowsTheSeededRandomDirection()
    {
        var (model, a, _) = AtMinimum();
        const double rho = 0.3;
        var one = Sharpness.Sam(model, DummySet(), new SamSharpnessOptions { Rho = rho, Seed = 5, Landscape = Options() });
        var again = Sharpness.Sam(model, DummySet(), new SamSharpnessOptions { Rho = rho, Seed = 5, Landscape = Options() });
        var other = Sharpness.Sam(model, DummySet(), new SamSharpnessOptions { Rho = rho, Seed = 6, Landscape = Options() });
        Assert.True(one.ZeroGradientFallback);
        Assert.Equal(one.Value, again.Value); // reproducible
        Assert.NotEqual(one.Value, other.Value); // and the seed matters
        // A direction r on the sphere gives 1/2 rho^2 r^T A r / |r|^2: strictly between the extreme eigenvalues.
        Assert.InRange(one.Value, 0.5 * rho * rho * Spectrum[^1], 0.5 * rho * rho * LambdaMax(a));
        Assert.Equal(1, one.GradientEvaluations);
        Assert.Equal(1, one.ForwardEvaluations);
    }

    [Fact]
    public void SamOneStepOffTheMinimumMatchesItsClosedForm()
    {
        TorchRuntime.EnsureInitialized();
        var a = MatrixWithSpectrum(Spectrum, 3);
        var center = RandomPoint(6, 4);
        var offset = RandomPoint(6, 5).mul(0.2);
        var model = new Quadratic(a, center, center.add(offset), split: 3);
        const double rho = 0.05;
        var result = Sharpness.Sam(model, DummySet(), new SamSharpnessOptions { Rho = rho, Landscape = Options() });
        // g = A d; delta = rho g / |g|; L(x + delta) - L(x) = g.delta + 1/2 delta^T A delta = rho |g| + rho^2 g^T A g / (2 |g|^2).
        var g = a.mv(offset);
        var gNorm = g.norm().ToDouble();
        var expected = rho * gNorm + 0.5 * rho * rho * g.dot(a.mv(g)).ToDouble() / (gNorm * gNorm);
        Assert.Equal(expected, result.Value, 1e-13);
        Assert.False(result.ZeroGradientFallback);
        Assert.Equal(rho, result.PerturbationNorm, 1e-13);
    }

    [Fact]
    public void AdaptiveSharpnessAtTheMinimumIsHalfRhoSquaredLambdaMaxOfTat()
    {
        var (model, a, center) = AtMinimum();
        const double rho = 0.2, eta = 0.01;
        var result = Sharpness.Adaptive(model, DummySet(), new AdaptiveSharpnessOptions { Rho = rho, Eta = eta, Steps = 120, Landscape = Options() });
        var t = diag(center.abs().add(eta));
        var expected = 0.5 * rho * rho * LambdaMax(t.matmul(a).matmul(t));
        Assert.Equal(expected, result.Value, 1e-9 * expected);
        Assert.Equal(rho, result.ScaledPerturbationNorm, 1e-12);
        Assert.Equal(RescalingInvariance.ApproximatelyInvariant, result.Invariance);
        Assert.Equal(eta, result.Eta);
        // Not SAM's value: the ball is stretched by T.
        Assert.True(Math.Abs(expected - 0.5 * rho * rho * LambdaMax(a)) > 1e-3 * expected);
    }

    [Fact]
    public void TheAuthorsCodeVariantScalesOnlyTheWeights()
    {
        TorchRuntime.EnsureInitialized();
        var a = MatrixWithSpectrum(Spectrum, 13);
        var center = RandomPoint(6, 14);
        var model = new Quadratic(a, center, center, split: 4, headName: "weight", tailName: "bias");
        const double rho = 0.2, eta = 0.01;
        var result = Sharpness.Adaptive(model, DummySet(),
            new AdaptiveSharpnessOptions { Rho = rho, Eta = eta, Steps = 150, ScaleOnlyWeights = true, Landscape = Options() });
        // T = |x| + eta on the four "weight" coordinates, 1 on the two "bias" coordinates.
        var t = diag(cat([center.narrow(0, 0, 4).abs().add(eta), ones(2, ScalarType.Float64)], 0));
        var expected = 0.5 * rho * rho * LambdaMax(t.matmul(a).matmul(t));
        Assert.Equal(expected, result.Value, 1e-9 * expected);
        Assert.Equal(RescalingInvariance.NotInvariant, result.Invariance);
        var everywhere = Sharpness.Adaptive(model, DummySet(), new AdaptiveSharpnessOptions { Rho = rho, Eta = eta, Steps = 150, Landscape = Options() });
        Assert.True(Math.Abs(everywhere.Value - expected) > 1e-3 * expected, "the variant must differ from the paper's operator here");
    }

    [Fact]
    public void AdaptiveOneStepOffTheMinimumMatchesItsClosedForm()
    {
        TorchRuntime.EnsureInitialized();
        var a = MatrixWithSpectrum(Spectrum, 8);
        var center = RandomPoint(6, 9);
        var offset = RandomPoint(6, 10).mul(0.3);
        var start = center.add(offset);
        var model = new Quadratic(a, center, start, split: 4);
        const double rho = 0.1, eta = 0.05;
        var result = Sharpness.Adaptive(model, DummySet(), new AdaptiveSharpnessOptions { Rho = rho, Eta = eta, Landscape = Options() });
        // ASAM's step: delta = rho T^2 g / |T g| with T = diag(|x| + eta).
        var t = start.abs().add(eta);
        var g = a.mv(offset);
        var delta = t.mul(t).mul(g).mul(rho / t.mul(g).norm().ToDouble());
        var expected = g.dot(delta).ToDouble() + 0.5 * delta.dot(a.mv(delta)).ToDouble();
        Assert.Equal(expected, result.Value, 1e-13);
        Assert.Equal(delta.norm().ToDouble(), result.PerturbationNorm, 1e-13);
        Assert.Equal(rho, result.ScaledPerturbationNorm, 1e-13);
    }

    [Fact]
    public void EpsilonSharpnessOfADiagonalQuadraticIsTheCornerSum()
    {
        TorchRuntime.EnsureInitialized();
        double[] diagonal = [3.0, 1.0, 0.5, 2.0, 0.1];
        var a = diag(tensor(diagonal, ScalarType.Float64));
        var center = RandomPoint(5, 21);
        const double constant = 0.4, epsilon = 0.05;
        var model = new Quadratic(a, center, center, split: 2, constant);
        var result = Sharpness.Epsilon(model, DummySet(), new EpsilonSharpnessOptions { Epsilon = epsilon, Landscape = Options() });
        var x = center.data<double>().ToArray();
        var expected = 0.5 * diagonal.Select((ai, i) => ai * Math.Pow(epsilon * (Math.Abs(x[i]) + 1), 2)).Sum();
        Assert.Equal(expected, result.Value, 1e-12 * expected);
        Assert.Equal(100 * expected / (1 + constant), result.KeskarSharpness, 1e-10);
        var corner = Math.Sqrt(x.Select(v => Math.Pow(epsilon * (Math.Abs(v) + 1), 2)).Sum());
        Assert.Equal(corner, result.PerturbationNorm, 1e-12);
        Assert.Equal(constant, result.LossAtStart, 1e-15);
        Assert.Equal(3, result.Starts);
        // The start at x* stops after one gradient (it is zero there); the random starts stop once a corner holds.
        Assert.Equal(result.Iterations, result.GradientEvaluations);
        Assert.InRange(result.GradientEvaluations, 3, 1 + 2 * 20 - 1);
        Assert.InRange(result.ForwardEvaluations, 0, 2);
    }

    [Fact]
    public void EpsilonSharpnessMatchesTheBestCornerOfTheBox()
    {
        TorchRuntime.EnsureInitialized();
        const int n = 8;
        var a = MatrixWithSpectrum([5.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.2, 0.05], 31);
        var center = RandomPoint(n, 32);
        const double epsilon = 0.1;
        var model = new Quadratic(a, center, center, split: 5);
        var result = Sharpness.Epsilon(model, DummySet(),
            new EpsilonSharpnessOptions { Epsilon = epsilon, RandomStarts = 6, Steps = 30, Landscape = Options() });
        var best = BestCorner(a, center, epsilon);
        Assert.Equal(best, result.Value, 1e-12 * best);
        // The ascent finds a local maximum, so on other matrices it may stop at a lesser corner (the maximum of a convex
        // quadratic over a box is NP-hard in general); but every value it reports is attained inside the box.
        for (var seed = 40; seed < 45; seed++)
        {
            var other = MatrixWithSpectrum([5.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.2, 0.05], seed);
            var found = Sharpness.Epsilon(new Quadratic(other, center, center, split: 5), DummySet(),
                new EpsilonSharpnessOptions { Epsilon = epsilon, Landscape = Options() });
            var bound = BestCorner(other, center, epsilon);
            Assert.True(found.Value <= bound * (1 + 1e-12) && found.Value > 0.5 * bound, $"seed {seed}: {found.Value} against the best corner {bound}");
        }
    }

    /// <summary>max over the 2^n corners s * w of the box of 1/2 (s w)^T A (s w): a convex function is largest at a vertex.</summary>
    private static double BestCorner(Tensor a, Tensor center, double epsilon)
    {
        var n = (int)center.shape[0];
        using var scope = NewDisposeScope();
        var w = center.abs().add(1).mul(epsilon);
        var best = 0.0;
        for (var mask = 0; mask < 1 << n; mask++)
        {
            var signs = tensor(Enumerable.Range(0, n).Select(i => (mask >> i & 1) == 1 ? 1.0 : -1.0).ToArray(), ScalarType.Float64);
            var d = signs.mul(w);
            best = Math.Max(best, 0.5 * d.dot(a.mv(d)).ToDouble());
        }
        return best;
    }

    [Fact]
    public void PacBayesSigmaAtTheMinimumIsSqrtOfTwiceTheThresholdOverTheTrace()
    {
        var (model, a, _) = AtMinimum(constant: 0);
        const double threshold = 0.05;
        const int samples = 1000;
        var result = Sharpness.PacBayes(model, DummySet(), new PacBayesFlatnessOptions
        {
            Criterion = PacBayesCriterion.Loss, Threshold = threshold, Samples = samples, RelativeTolerance = 1e-4, Seed = 2, Landscape = Options(),
        });
        // E ||u||_A^2 / 2 = sigma^2 tr(A) / 2 = threshold.
        var trace = Spectrum.Sum();
        var expected = Math.Sqrt(2 * threshold / trace);
        // The estimate of tr(A) from K draws z^T A z has standard deviation sqrt(2 tr(A^2) / K); sigma' moves by half of
        // that, relatively. Four standard errors, plus the bisection's tolerance.
        var relativeError = 0.5 * Math.Sqrt(2 * Spectrum.Sum(l => l * l) / samples) / trace;
        Assert.Equal(expected, result.Value, expected * (4 * relativeError + 2e-4));
        Assert.Equal(BracketOutcome.Inside, result.Outcome);
        // The same draws serve every sigma, so the estimate at sigma' sits on the threshold to the bisection's tolerance.
        Assert.Equal(threshold, result.IncreaseAtSigma, threshold * 5e-4);
        Assert.True(result.StandardError > 0 && result.StandardError < 0.1 * threshold, $"standard error {result.StandardError}");
        Assert.Equal(1 / (result.Value * result.Value), result.Flatness, 1e-9);
        Assert.Equal(0, result.GradientEvaluations);
        Assert.Equal(RescalingInvariance.NotInvariant, result.Invariance);
        Assert.Equal(result.Value * Math.Sqrt(6), result.PerturbationNorm, 0.1 * result.Value * Math.Sqrt(6));
    }

    [Fact]
    public void MagnitudeAwarePacBayesSigmaMatchesItsClosedForm()
    {
        var (model, a, center) = AtMinimum(constant: 0);
        const double threshold = 0.05, eps = 0.02;
        const int samples = 1000;
        var result = Sharpness.PacBayes(model, DummySet(), new PacBayesFlatnessOptions
        {
            Criterion = PacBayesCriterion.Loss, Threshold = threshold, Samples = samples, RelativeTolerance = 1e-4, MagnitudeAware = true,
            MagnitudeEpsilon = eps, Seed = 4, Landscape = Options(),
        });
        // u_i ~ N(0, sigma^2 x_i^2 + eps^2): E u^T A u / 2 = (sigma^2 sum_i A_ii x_i^2 + eps^2 tr A) / 2 = threshold.
        var aii = a.diagonal();
        var weighted = aii.mul(center.square()).sum().ToDouble();
        var trace = aii.sum().ToDouble();
        var expected = Math.Sqrt((2 * threshold - eps * eps * trace) / weighted);
        // At sigma', u = S z with S = diag(sqrt(sigma^2 x_i^2 + eps^2)): the mean of z^T S A S z over K draws has standard
        // deviation sqrt(2 tr((SAS)^2) / K), and only its sigma^2 part moves sigma', so sigma' moves relatively by half of
        // that deviation over sigma^2 sum_i A_ii x_i^2.
        var s = diag(center.square().mul(expected * expected).add(eps * eps).sqrt());
        var m = s.matmul(a).matmul(s);
        var deviation = Math.Sqrt(2 * m.matmul(m).trace().ToDouble() / samples);
        var relativeError = 0.5 * deviation / (expected * expected * weighted);
        Assert.Equal(expected, result.Value, expected * (4 * relativeError + 2e-4));
        Assert.Equal(threshold, result.IncreaseAtSigma, threshold * 5e-4);
        Assert.Equal("pac-bayes-sigma-magnitude", result.Measure);
        Assert.Equal(RescalingInvariance.ApproximatelyInvariant, result.Invariance);
    }

    [Fact]
    public void PacBayesReportsABracketThatIsNeverCrossed()
    {
        var (model, _, _) = AtMinimum(constant: 0);
        var wide = Sharpness.PacBayes(model, DummySet(), new PacBayesFlatnessOptions
        {
            Criterion = PacBayesCriterion.Loss, Threshold = 1e3, SigmaHigh = 0.5, Samples = 4, Landscape = Options(),
        });
        Assert.Equal(BracketOutcome.AtLeastUpper, wide.Outcome);
        Assert.Equal(0.5, wide.Value);
        var narrow = Sharpness.PacBayes(model, DummySet(), new PacBayesFlatnessOptions
        {
            Criterion = PacBayesCriterion.Loss, Threshold = 1e-3, SigmaLow = 1, SigmaHigh = 2, Samples = 4, Landscape = Options(),
        });
        Assert.Equal(BracketOutcome.AtMostLower, narrow.Outcome);
        Assert.Equal(1, narrow.Value);
    }

    [Fact]
    public void ASelectionPerturbsOnlyItsOwnBlock()
    {
        var (model, a, _) = AtMinimum();
        const double rho = 0.3;
        var result = Sharpness.Sam(model, DummySet(),
            new SamSharpnessOptions { Rho = rho, Steps = 80, Landscape = Options(ParameterSelection.Named("tail")) });
        // Only the last four coordinates move: the ball lives in that block, whose Hessian is A's trailing 4x4 block.
        var block = a.narrow(0, 2, 4).narrow(1, 2, 4);
        var expected = 0.5 * rho * rho * LambdaMax(block);
        Assert.Equal(4, result.Dimension);
        Assert.Equal(expected, result.Value, 1e-10 * expected);
    }

    [Fact]
    public void Float32GivesTheFloat64AnswerToSinglePrecision()
    {
        TorchRuntime.EnsureInitialized();
        var a = MatrixWithSpectrum(Spectrum, 11);
        var center = RandomPoint(6, 12);
        var model = new Quadratic(a, center, center, split: 2, dtype: ScalarType.Float32);
        const double rho = 0.3;
        var result = Sharpness.Sam(model, DummySet(ScalarType.Float32), new SamSharpnessOptions { Rho = rho, Steps = 80, Landscape = Options() });
        var expected = 0.5 * rho * rho * LambdaMax(a);
        // L is about 1e-2 here and float32 rounds x* + delta at about 1e-7 |x*|.
        Assert.Equal(expected, result.Value, 1e-4 * expected);
    }

    [Fact]
    public void AStreamedLossGivesTheSameValuesAsTheBatches()
    {
        var model = ReluNet();
        var data = RandomSet([6, 9], inputs: 5, classes: 3);
        var streamed = new StreamedLoss<(Tensor X, Tensor Y)>(() => data, (m, b) => nn.functional.cross_entropy(m.call(b.X), b.Y), b => b.X.shape[0]);
        var options = new SamSharpnessOptions { Rho = 0.1, Steps = 3 };
        var fromBatches = Sharpness.Sam(model, data, options);
        var fromStream = Sharpness.Sam(model, streamed, options);
        Assert.Equal(fromBatches.Value, fromStream.Value, 1e-13);
        var eps = Sharpness.Epsilon(model, streamed, new EpsilonSharpnessOptions { Steps = 3, RandomStarts = 1 });
        Assert.Equal(Sharpness.Epsilon(model, data, new EpsilonSharpnessOptions { Steps = 3, RandomStarts = 1 }).Value, eps.Value, 1e-13);
        Assert.Throws<ArgumentException>(() => Sharpness.PacBayes(model, streamed, new PacBayesFlatnessOptions()));
        var sigma = new PacBayesFlatnessOptions { Criterion = PacBayesCriterion.Loss, Threshold = 0.05, Samples = 3, SigmaHigh = 4 };
        Assert.Equal(Sharpness.PacBayes(model, data, sigma).Value, Sharpness.PacBayes(model, streamed, sigma).Value, 1e-12);
    }

    [Fact]
    public void AFloat32ModelCanBeMeasuredInFloat64ThroughACopy()
    {
        TorchRuntime.EnsureInitialized();
        nn.Module<Tensor, Tensor> Build()
        {
            random.manual_seed(17);
            var net = nn.Sequential(("fc1", nn.Linear(5, 7)), ("relu", nn.ReLU()), ("fc2", nn.Linear(7, 3)));
            return net;
        }
        var single = Build();
        var reference = ReluNet(); // the same architecture and seed, in float64
        var data = RandomSet([10], inputs: 5, classes: 3);
        var dataSingle = data.Select(b => (b.Inputs.to(ScalarType.Float32), b.Labels)).ToList();
        var before = Snapshot(single);
        var options = new AdaptiveSharpnessOptions
        {
            Steps = 3, Landscape = new LandscapeOptions { ComputeType = ScalarType.Float64, ModelFactory = Build },
        };
        var viaCopy = Sharpness.Adaptive(single, dataSingle, options);
        using (no_grad())
            foreach (var (p, q) in reference.parameters().Zip(single.parameters())) p.copy_(q.to(ScalarType.Float64));
        var direct = Sharpness.Adaptive(reference, data, new AdaptiveSharpnessOptions { Steps = 3 });
        // The float32 weights are exact in float64, so the copy measures the same point; the inputs were rounded to float32.
        Assert.Equal(direct.Value, viaCopy.Value, 1e-6 * Math.Abs(direct.Value));
        var after = Snapshot(single);
        for (var i = 0; i < before.Length; i++) Assert.True(before[i].AsSpan().SequenceEqual(after[i]));
        Assert.Equal(ScalarType.Float32, single.parameters().First().dtype);
    }
}
