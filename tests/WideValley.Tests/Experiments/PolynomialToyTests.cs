using WideValley.Connectivity;
using WideValley.Experiments;
using static TorchSharp.torch;

namespace WideValley.Tests.Experiments;

/// <summary>
/// Freeman and Bruna's 1-4-4-1 polynomial toys: the level function against a hand-written float64 forward pass, the
/// closed-form gradient against autograd, Adam against a hand-written TensorFlow Adam, batched bead training against
/// training each bead alone, per-bead stopping, the endpoint trainer, and the refusal of bad settings.
/// </summary>
public class PolynomialToyTests
{
    /// <summary>Small samples, so that training tests take a second or two; the arithmetic is the same as at 10,000.</summary>
    static readonly PolynomialToyOptions Small = new() { TrainingSamples = 1_000, EvaluationSamples = 1_500, MaxSteps = 600 };

    static CancellationToken Token => TestContext.Current.CancellationToken;

    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    /// <summary>
    /// y = s(σ(σ(x W1 + b1) W2 + b2) W3 + b3), W1 at 0..3, W2 (row-major 4 x 4) at 4..19, W3 at 20..23, and with 33
    /// entries b1 at 24..27, b2 at 28..31, b3 at 32 (otherwise no biases); s = σ or the identity.
    /// </summary>
    static double Network(double[] w, double x, bool sigmoidOutput)
    {
        double Bias(int i) => w.Length == 33 ? w[i] : 0;
        var h1 = new double[4];
        for (var j = 0; j < 4; j++) h1[j] = Sigmoid(x * w[j] + Bias(24 + j));
        var output = Bias(32);
        for (var k = 0; k < 4; k++)
        {
            var z = Bias(28 + k);
            for (var j = 0; j < 4; j++) z += h1[j] * w[4 + 4 * j + k];
            output += Sigmoid(z) * w[20 + k];
        }
        return sigmoidOutput ? Sigmoid(output) : output;
    }

    static double[] Values(Tensor t) => t.to(ScalarType.Float64).data<double>().ToArray();

    [Theory]
    [InlineData(PolynomialTarget.Quadratic, 3UL, null, null, 24)]
    [InlineData(PolynomialTarget.Cubic, 4UL, null, null, 33)]
    [InlineData(PolynomialTarget.Cubic, 5UL, false, true, 24)]
    [InlineData(PolynomialTarget.Quadratic, 6UL, true, false, 33)]
    public void MeasureIsTheMeanAbsoluteErrorOfAHandWrittenFloat64ForwardPass(PolynomialTarget target, ulong seed, bool? biases, bool? sigmoidOutput, int dimension)
    {
        using var scope = NewDisposeScope();
        using var toy = new PolynomialToy(Small with { Target = target, Biases = biases, SigmoidOutput = sigmoidOutput });
        Assert.Equal(dimension, toy.Dimension);
        var sigmoid = toy.Options.HasSigmoidOutput;
        Assert.Equal(sigmoidOutput ?? target == PolynomialTarget.Quadratic, sigmoid);
        var points = toy.RandomInitialisations(3, seed);
        var many = toy.MeasureMany(points);
        for (var i = 0; i < 3; i++)
        {
            var w = Values(points[i]);
            Assert.All(w[..24], v => Assert.InRange(v, -1.0, 1.0));
            var inputs = toy.EvaluationInputs();
            Assert.Equal(1_500, inputs.Length);
            var expected = inputs.Average(x => Math.Abs(Network(w, x, sigmoid) - PolynomialToy.Polynomial(target, x)));
            var measured = toy.Measure(points[i]);
            Assert.Equal(expected, measured.Loss, 1e-14);
            Assert.Equal(expected, many[i], 1e-14);
            Assert.Null(measured.ErrorPercent);
            Assert.Null(measured.Perplexity);
        }
        // A float32 point is measured as its float64 value.
        Assert.Equal(toy.Measure(points[0].to(ScalarType.Float32).to(ScalarType.Float64)).Loss, toy.Measure(points[0].to(ScalarType.Float32)).Loss, 1e-15);
    }

    [Fact]
    public void ThePolynomialsAreTheAuthors()
    {
        Assert.Equal(0.5 * 0.09 + 0.25 * 0.3 + 0.1, PolynomialToy.Polynomial(PolynomialTarget.Quadratic, 0.3), 1e-15);
        Assert.Equal(8 * 0.027 - 10 * 0.09 + 0.9, PolynomialToy.Polynomial(PolynomialTarget.Cubic, 0.3), 1e-15);
        using var toy = new PolynomialToy();
        Assert.Equal(24, toy.Dimension);
        Assert.Equal(ScalarType.Float64, toy.Dtype);
        Assert.Null(toy.WeightMask);
        // The authors' cubic network (CUBICS.py) has biases, which the weights-only length leaves out.
        using var cubic = new PolynomialToy(new PolynomialToyOptions { Target = PolynomialTarget.Cubic });
        Assert.Equal(33, cubic.Dimension);
        Assert.Equal([.. Enumerable.Repeat(1.0, 24), .. Enumerable.Repeat(0.0, 9)], Values(cubic.WeightMask!));
        Assert.True(cubic.Options.HasBiases);
        Assert.False(cubic.Options.HasSigmoidOutput);
        var init = Values(cubic.RandomInitialisations(200, 3).flatten());
        // Biases N(0, 1): some beyond the weights' [-1, 1].
        Assert.Contains(Enumerable.Range(0, 200).SelectMany(row => init.Skip(33 * row + 24).Take(9)), b => Math.Abs(b) > 1.5);
        Assert.Equal(10_000, toy.EvaluationInputs().Length);
        Assert.Equal(10_000, toy.TrainingInputs().Length);
        Assert.All(toy.EvaluationInputs(), x => Assert.InRange(x, 0.0, 1.0));
        Assert.NotEqual(toy.EvaluationInputs()[..10], toy.TrainingInputs()[..10]);
    }

    [Theory]
    [InlineData(PolynomialTarget.Quadratic)]
    [InlineData(PolynomialTarget.Cubic)]
    public void TheGradientIsAutogradsOnTheFullTrainingBatch(PolynomialTarget target)
    {
        using var scope = NewDisposeScope();
        using var toy = new PolynomialToy(Small with { Target = target });
        var point = toy.RandomInitialisations(1, 21)[0];
        var (loss, gradient) = toy.StochasticLossAndGradient(point);

        var x = tensor(toy.TrainingInputs(), ScalarType.Float64).view(-1, 1);
        var y = tensor(toy.TrainingInputs().Select(v => PolynomialToy.Polynomial(target, v)).ToArray(), ScalarType.Float64).view(-1, 1);
        var w = point.clone().requires_grad_(true);
        var biases = toy.Options.HasBiases;
        Tensor Bias(long offset, long size) => biases ? w.narrow(0, offset, size) : zeros(size, ScalarType.Float64);
        var output = (x.matmul(w.narrow(0, 0, 4).view(1, 4)) + Bias(24, 4)).sigmoid()
            .matmul(w.narrow(0, 4, 16).view(4, 4)).add(Bias(28, 4)).sigmoid()
            .matmul(w.narrow(0, 20, 4).view(4, 1)).add(Bias(32, 1));
        if (toy.Options.HasSigmoidOutput) output = output.sigmoid();
        var reference = (output - y).abs().mean();
        reference.backward();
        Assert.Equal(reference.item<double>(), loss, 1e-14);
        Assert.Equal([toy.Dimension], gradient.shape);
        Assert.True((gradient - w.grad!).abs().max().item<double>() < 1e-14, "closed-form gradient differs from autograd's");
        Assert.True(gradient.abs().max().item<double>() > 1e-4, "the gradient is (nearly) zero: nothing was tested");
    }

    [Fact]
    public void TrainingFollowsTensorFlowsAdamOnTheFullBatch()
    {
        using var scope = NewDisposeScope();
        const int steps = 4;
        using var toy = new PolynomialToy(Small with { CheckEvery = 1, MaxSteps = steps, LearningRate = 0.01 });
        var start = toy.RandomInitialisations(1, 5)[0];
        var trained = toy.TrainBead(start, LevelMetric.Loss, 1e-9, Token);
        Assert.False(trained.Reached);
        Assert.Equal(steps, trained.Steps);

        var w = Values(start);
        var m = new double[24];
        var v = new double[24];
        for (var t = 1; t <= steps; t++)
        {
            var (_, g) = toy.StochasticLossAndGradient(tensor(w, ScalarType.Float64));
            var gradient = Values(g);
            var rate = 0.01 * Math.Sqrt(1 - Math.Pow(0.999, t)) / (1 - Math.Pow(0.9, t));
            for (var i = 0; i < 24; i++)
            {
                m[i] = 0.9 * m[i] + 0.1 * gradient[i];
                v[i] = 0.999 * v[i] + 0.001 * gradient[i] * gradient[i];
                w[i] -= rate * m[i] / (Math.Sqrt(v[i]) + 1e-8);
            }
        }
        var result = Values(trained.Point);
        for (var i = 0; i < 24; i++) Assert.Equal(w[i], result[i], 1e-13);
        Assert.Equal(toy.Measure(trained.Point).Loss, trained.Measure.Loss, 1e-15);
        // The start was not modified.
        Assert.Equal(Values(toy.RandomInitialisations(1, 5)[0]), Values(start));
    }

    /// <summary>
    /// Five starts and a target between their initial levels: two are at the level from the start (0 steps), the others
    /// train, stop at different checks or run out of budget. Each must end exactly as when trained alone.
    /// </summary>
    [Fact]
    public void BatchedBeadsEndAsEachBeadTrainedAloneAndStopAtTheirOwnTarget()
    {
        using var scope = NewDisposeScope();
        using var toy = new PolynomialToy(Small);
        var starts = Enumerable.Range(0, 5).Select(i => toy.RandomInitialisations(5, 31)[i]).ToArray();
        var initial = starts.Select(s => toy.Measure(s).Loss).ToArray();
        var target = initial.Order().ElementAt(1);

        var batched = toy.TrainBeads(starts, LevelMetric.Loss, target, Token);
        var alone = starts.Select(s => toy.TrainBead(s, LevelMetric.Loss, target, Token)).ToArray();
        Assert.Equal(5, batched.Count);
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(alone[i].Steps, batched[i].Steps);
            Assert.Equal(alone[i].Reached, batched[i].Reached);
            var difference = (batched[i].Point - alone[i].Point).abs().max().item<double>();
            Assert.True(difference < 1e-12, $"bead {i}: batched and alone differ by {difference:E2}");
            Assert.Equal(alone[i].Measure.Loss, batched[i].Measure.Loss, 1e-13);
            Assert.Equal(toy.Measure(batched[i].Point).Loss, batched[i].Measure.Loss, 1e-15);
        }

        Assert.Equal(2, batched.Count(b => b.Steps == 0));
        Assert.All(batched.Where(b => b.Steps == 0), b => Assert.True(b.Reached));
        var trainedToTheLevel = batched.Where(b => b.Reached && b.Steps > 0).ToArray();
        Assert.NotEmpty(trainedToTheLevel);
        Assert.True(batched.Select(b => b.Steps).Distinct().Count() >= 3, $"steps {string.Join(", ", batched.Select(b => b.Steps))}: too few distinct stops to test per-bead stopping");
        for (var i = 0; i < 5; i++)
        {
            var bead = batched[i];
            if (bead.Reached)
            {
                Assert.True(bead.Measure.Loss <= target);
                Assert.Equal(0, bead.Steps % Small.CheckEvery);
                if (bead.Steps == 0) continue;
                // It stopped at the first check at the level: one check earlier it was still above.
                using var shorter = new PolynomialToy(Small with { MaxSteps = bead.Steps - Small.CheckEvery });
                var before = shorter.TrainBead(starts[i], LevelMetric.Loss, target, Token);
                Assert.False(before.Reached);
                Assert.True(before.Measure.Loss > target);
            }
            else
            {
                Assert.Equal(Small.MaxSteps, bead.Steps);
                Assert.True(bead.Measure.Loss > target);
            }
        }
    }

    [Fact]
    public void EndpointsReachAReachableLevelFromSeveralSeedsAndReportAnUnreachableOne()
    {
        using var scope = NewDisposeScope();
        using var toy = new PolynomialToy(new PolynomialToyOptions { MaxSteps = 30_000 });
        foreach (var seed in new ulong[] { 1, 2 })
        {
            var endpoints = toy.TrainEndpoints(3, seed, 0.05, Token);
            Assert.Equal(3, endpoints.Count);
            var starts = toy.RandomInitialisations(3, seed);
            for (var i = 0; i < 3; i++)
            {
                var e = endpoints[i];
                Assert.True(e.Reached, $"seed {seed}, endpoint {i}: MAE {e.Measure.Loss} after {e.Steps} steps");
                Assert.True(e.Steps > 0, "a random initialisation should not already fit the quadratic to 0.05");
                Assert.True(e.Measure.Loss <= 0.05);
                Assert.Equal(toy.Measure(e.Point).Loss, e.Measure.Loss, 1e-15);
                Assert.True(toy.Measure(starts[i]).Loss > 0.05);
            }
            // Independent initialisations: distinct points.
            Assert.True((endpoints[0].Point - endpoints[1].Point).norm().item<double>() > 0.1);
        }

        // The cubic, with the authors' CUBICS.py network (biases, linear output), reaches the top of their L0 range.
        using var cubic = new PolynomialToy(new PolynomialToyOptions { Target = PolynomialTarget.Cubic, MaxSteps = 30_000 });
        Assert.All(cubic.TrainEndpoints(2, 3, 0.15, Token), e =>
        {
            Assert.True(e.Reached, $"cubic endpoint: MAE {e.Measure.Loss} after {e.Steps} steps");
            Assert.True(e.Steps > 0);
            Assert.Equal(cubic.Measure(e.Point).Loss, e.Measure.Loss, 1e-15);
        });

        using var shortBudget = new PolynomialToy(new PolynomialToyOptions { MaxSteps = 300 });
        var unreachable = shortBudget.TrainEndpoints(2, 7, 1e-6, Token);
        Assert.All(unreachable, e =>
        {
            Assert.False(e.Reached);
            Assert.Equal(300, e.Steps);
            Assert.True(e.Measure.Loss > 1e-6);
        });
    }

    [Fact]
    public void TheSameSeedGivesTheSameInitialisationsAndAnotherSeedOthers()
    {
        using var scope = NewDisposeScope();
        using var a = new PolynomialToy(Small);
        Assert.Equal(Values(a.RandomInitialisations(2, 9).flatten()), Values(a.RandomInitialisations(2, 9).flatten()));
        Assert.NotEqual(Values(a.RandomInitialisations(2, 9).flatten()), Values(a.RandomInitialisations(2, 10).flatten()));
        using var b = new PolynomialToy(Small);
        Assert.Equal(a.EvaluationInputs(), b.EvaluationInputs());
        using var c = new PolynomialToy(Small with { EvaluationSeed = 99 });
        Assert.NotEqual(a.EvaluationInputs(), c.EvaluationInputs());
    }

    [Fact]
    public void AToyBuiltInsideADisposeScopeOutlivesIt()
    {
        PolynomialToy toy;
        using (NewDisposeScope()) toy = new PolynomialToy(Small);
        using (toy)
        {
            using var scope = NewDisposeScope();
            // Zero weights put every hidden unit and the output at σ(0) = 1/2.
            var expected = toy.EvaluationInputs().Average(x => Math.Abs(0.5 - PolynomialToy.Polynomial(PolynomialTarget.Quadratic, x)));
            Assert.Equal(expected, toy.Measure(zeros(24, ScalarType.Float64)).Loss, 1e-15);
            Assert.True(toy.TrainBead(zeros(24, ScalarType.Float64), LevelMetric.Loss, 1.0, Token).Reached);
        }
    }

    public static TheoryData<PolynomialToyOptions, string> BadOptions => new()
    {
        { new PolynomialToyOptions { TrainingSamples = 0 }, "TrainingSamples" },
        { new PolynomialToyOptions { EvaluationSamples = -5 }, "EvaluationSamples" },
        { new PolynomialToyOptions { TrainingSeed = 4, EvaluationSeed = 4 }, "TrainingSeed and EvaluationSeed" },
        { new PolynomialToyOptions { LearningRate = 0 }, "LearningRate" },
        { new PolynomialToyOptions { LearningRate = double.NaN }, "LearningRate" },
        { new PolynomialToyOptions { Beta1 = 1 }, "Beta1" },
        { new PolynomialToyOptions { Beta2 = -0.1 }, "Beta2" },
        { new PolynomialToyOptions { Epsilon = 0 }, "Epsilon" },
        { new PolynomialToyOptions { CheckEvery = 0 }, "CheckEvery" },
        { new PolynomialToyOptions { MaxSteps = 0 }, "MaxSteps" },
        { new PolynomialToyOptions { Target = (PolynomialTarget)7 }, "Target" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void BadOptionsAreRefusedByName(PolynomialToyOptions options, string name)
    {
        var error = Assert.Throws<ArgumentException>(() => new PolynomialToy(options));
        Assert.Contains($"PolynomialToyOptions.{name}", error.Message);
    }

    [Fact]
    public void BadCallsAreRefusedWithAReason()
    {
        using var scope = NewDisposeScope();
        using var toy = new PolynomialToy(Small);
        var point = zeros(24, ScalarType.Float64);
        Assert.Contains("only the loss", Assert.Throws<ArgumentException>(() => toy.TrainBead(point, LevelMetric.ErrorPercent, 0.1, Token)).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => toy.TrainBead(point, LevelMetric.Loss, double.NaN, Token)).Message);
        Assert.Contains("24 parameters", Assert.Throws<ArgumentException>(() => toy.Measure(zeros(25, ScalarType.Float64))).Message);
        Assert.Contains("point 1", Assert.Throws<ArgumentException>(() => toy.TrainBeads([point, zeros(3, 8)], LevelMetric.Loss, 0.1, Token)).Message);
        Assert.Contains("(B, 24)", Assert.Throws<ArgumentException>(() => toy.MeasureMany(zeros(24, ScalarType.Float64))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => toy.TrainEndpoints(0, 1, 0.1, Token));
        Assert.Empty(toy.TrainBeads([], LevelMetric.Loss, 0.1, Token));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => toy.TrainBead(point, LevelMetric.Loss, 0.1, cancelled.Token));
    }
}
