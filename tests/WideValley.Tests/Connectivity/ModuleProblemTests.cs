using TorchSharp;
using TorchSharp.Modules;
using WideValley.Connectivity;
using WideValley.Data;
using WideValley.Models;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Connectivity;

public class ModuleProblemTests
{
    const int ImageSize = 8;
    const int Classes = 3;

    static ModuleProblemOptions Options(EvaluationSplit split = EvaluationSplit.Test) =>
        new() { OptimizerFactory = ModuleProblemOptions.Adam(1e-2), Split = split, CheckEvery = 10, MaxSteps = 400 };

    /// <summary>Gaussian blobs as 1 x 8 x 8 images in <paramref name="dtype"/>, so that the zoo's image classifiers run on them.</summary>
    static ClassificationDataset Images(ScalarType dtype, int train = 192, int test = 96, long seed = 7)
    {
        using var blobs = Synthetic.Blobs(train: train, test: test, dims: ImageSize * ImageSize, classes: Classes, seed: seed);
        LabeledData Convert(LabeledData d) =>
            new(d.Inputs.reshape(-1, 1, ImageSize, ImageSize).to(dtype).clone(), d.Labels.clone(), Classes);
        return new ClassificationDataset { Name = "blob-images", Train = Convert(blobs.Train), Test = Convert(blobs.Test), Source = "synthetic" };
    }

    static nn.Module<Tensor, Tensor> SmallMnistFc(ScalarType dtype, long seed = 5)
    {
        random.manual_seed(seed);
        var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(ModelZoo.SmallMnistFcName, new ModelOptions { ImageSize = ImageSize, NumClasses = Classes });
        model.to(dtype);
        return model;
    }

    /// <summary>A point away from the model's own weights (seeded), so that loading it is visible.</summary>
    static Tensor Perturbed(ModuleProblem problem, double scale = 0.05, long seed = 21)
    {
        using var current = problem.CurrentPoint();
        using var gen = new Generator((ulong)seed);
        using var noise = randn(problem.Dimension, ScalarType.Float64, generator: gen).to(problem.Dtype);
        return current.add(noise, scale).DetachFromDisposeScope();
    }

    /// <summary>Writes a flat point into a model by hand: the layout the problem promises, read off named_parameters().</summary>
    static void LoadByHand(nn.Module model, Tensor point)
    {
        using var noGrad = no_grad();
        long offset = 0;
        foreach (var (_, p) in model.named_parameters())
        {
            using var part = point.narrow(0, offset, p.numel()).reshape(p.shape);
            p.copy_(part);
            offset += p.numel();
        }
        Assert.Equal(point.shape[0], offset);
    }

    static double[] Values(Tensor t) => t.to(ScalarType.Float64).data<double>().ToArray();

    [Fact]
    public void TheFlatLayoutIsTheTrainableParametersInNamedOrder()
    {
        random.manual_seed(1);
        var model = nn.Sequential(("fc1", nn.Linear(4, 3)), ("act", nn.Tanh()), ("fc2", nn.Linear(3, 2)));
        model.named_parameters().Single(np => np.name == "fc1.bias").parameter.requires_grad = false;
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 16, test: 8, dims: 4, classes: 2), 8, seed: 1);
        using var problem = new ModuleProblem(task, Options());

        Assert.Equal(["fc1.weight", "fc2.weight", "fc2.bias"], problem.Parameters.Select(p => p.Name));
        Assert.Equal(12 + 6 + 2, problem.Dimension);
        Assert.Equal(ScalarType.Float32, problem.Dtype);
        using var point = problem.CurrentPoint();
        var expected = new[] { "fc1.weight", "fc2.weight", "fc2.bias" }
            .SelectMany(n => Values(model.named_parameters().Single(np => np.name == n).parameter.detach().reshape(-1))).ToArray();
        Assert.Equal(expected, Values(point));
    }

    [Theory]
    [InlineData(ModelZoo.SmallMnistFcName, 784 * 64 + 64 * 10, 50_890)]
    // mnistfc: the three matrices; biases (1024 + 1024 + 10) and the two BatchNorm layers' scales and shifts are not weights.
    [InlineData(ModelZoo.MnistFcName, 784 * 1024 + 1024 * 1024 + 1024 * 10, 1_867_786)]
    [InlineData(ModelZoo.SmallLeNetName, 250 + 5_000 + 320 * 128 + 128 * 10, 47_658)]
    // LeNet-BN: conv 20@5x5, conv 50@20x5x5, fc 200-500, fc 500-10; the BatchNorm scales are 1-D and so not weights.
    [InlineData(ModelZoo.LeNetName, 500 + 25_000 + 100_000 + 5_000, 132_220)]
    public void TheWeightMaskCountsWeightMatricesAndKernelsOnly(string zooName, long weights, long total)
    {
        random.manual_seed(1);
        var model = ModelZoo.Create(zooName, new ModelOptions());
        using var task = new ClassificationTask((nn.Module<Tensor, Tensor>)model, Synthetic.Blobs(train: 16, test: 8), 8, seed: 1);
        using var problem = new ModuleProblem(task, Options());

        Assert.Equal(total, problem.Dimension);
        Assert.NotNull(problem.WeightMask);
        Assert.Equal(weights, (long)problem.WeightMask!.sum().ToDouble());
        Assert.Equal(problem.Dimension, problem.WeightMask.shape[0]);
        // Every entry is 0 or 1, and the ones are exactly the blocks of the weight parameters.
        Assert.Equal(total, problem.WeightMask.eq(0).logical_or(problem.WeightMask.eq(1)).sum().ToInt64());
        long offset = 0;
        foreach (var p in problem.Parameters)
        {
            var count = p.Shape.Aggregate(1L, (a, b) => a * b);
            var ones = problem.WeightMask.narrow(0, offset, count).sum().ToDouble();
            Assert.Equal(ModuleProblem.IsWeight(p.Name, p.Shape) ? count : 0, ones);
            offset += count;
        }
    }

    [Fact]
    public void TheWeightMaskOfTheSmallCharLstmCountsBothLstmMatricesAndTheDecoder()
    {
        const int vocabulary = 96;
        random.manual_seed(1);
        var model = ModelZoo.Create(ModelZoo.SmallCharLstmName, new ModelOptions { VocabularySize = vocabulary });
        using var task = new LanguageModelTask(model, RandomTokens(vocabulary), batchSize: 4, unroll: 8, CPU);
        using var problem = new ModuleProblem(task, Options());
        // weight_ih 192 x 96, weight_hh 192 x 48, decoder 96 x 48 (no bias); the two LSTM biases (192 each) are not weights.
        Assert.Equal(32_640, problem.Dimension);
        Assert.Equal(18_432 + 9_216 + 4_608, (long)problem.WeightMask!.sum().ToDouble());
    }

    [Fact]
    public void AModelWithoutBiasesHasNoMask()
    {
        random.manual_seed(1);
        var model = nn.Sequential(("fc1", nn.Linear(8, 4, hasBias: false)), ("act", nn.Sigmoid()), ("fc2", nn.Linear(4, 3, hasBias: false)));
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 16, test: 8), 8, seed: 1);
        using var problem = new ModuleProblem(task, Options());
        Assert.Null(problem.WeightMask);
    }

    [Theory]
    [InlineData("fc.weight", new long[] { 3, 4 }, true)]
    [InlineData("conv.weight", new long[] { 2, 1, 5, 5 }, true)]
    [InlineData("lstm.weight_hh_l0", new long[] { 8, 2 }, true)]
    [InlineData("fc.bias", new long[] { 3 }, false)]
    [InlineData("bn.weight", new long[] { 3 }, false)]
    [InlineData("norm.weight", new long[] { 3 }, false)]
    [InlineData("lstm.bias_ih_l0", new long[] { 8 }, false)]
    [InlineData("scale", new long[] { 3, 3 }, false)]
    public void IsWeightMeansANamedWeightWithAtLeastTwoDimensions(string name, long[] shape, bool expected) =>
        Assert.Equal(expected, ModuleProblem.IsWeight(name, shape));

    [Fact]
    public void MeasureEqualsTheTaskEvaluationAndADirectComputationAtTheLoadedPoint()
    {
        using var problemTask = new ClassificationTask(SmallMnistFc(ScalarType.Float64), Images(ScalarType.Float64), 32, seed: 3);
        using var problem = new ModuleProblem(problemTask, Options());
        using var point = Perturbed(problem);
        var before = Values(point);

        var measure = problem.Measure(point);

        Assert.Equal(before, Values(point)); // the caller's point is left alone
        Assert.Null(measure.Perplexity);
        // The same parameters written by hand into an identically built twin, evaluated by the task.
        var twin = SmallMnistFc(ScalarType.Float64, seed: 99);
        LoadByHand(twin, point);
        using var twinTask = new ClassificationTask(twin, Images(ScalarType.Float64), 32, seed: 3);
        var evaluation = twinTask.Evaluate(EvaluationSplit.Test);
        Assert.Equal(evaluation.Loss, measure.Loss, 12);
        Assert.Equal(evaluation.ErrorPercent, measure.ErrorPercent!.Value, 12);
        // And directly: mean cross-entropy and error over the whole test set in one batch.
        using (no_grad())
        {
            twin.eval();
            var test = problemTask.Data.Test;
            using var logits = twin.call(test.Inputs);
            Assert.Equal(F.cross_entropy(logits, test.Labels).ToDouble(), measure.Loss, 12);
            Assert.Equal(100.0 * logits.argmax(1).ne(test.Labels).sum().ToInt64() / test.Count, measure.ErrorPercent!.Value, 12);
        }
        // Deterministic, and the model keeps the point.
        Assert.Equal(measure, problem.Measure(point));
        using var held = problem.CurrentPoint();
        Assert.Equal(before, Values(held));
    }

    [Fact]
    public void MeasureUsesTheChosenSplit()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float64), Images(ScalarType.Float64), 32, seed: 3);
        using var onTrain = new ModuleProblem(task, Options(EvaluationSplit.Train));
        using var point = onTrain.CurrentPoint();
        var measure = onTrain.Measure(point);
        var evaluation = task.Evaluate(EvaluationSplit.Train);
        Assert.Equal(evaluation.Loss, measure.Loss, 12);
        Assert.NotEqual(task.Evaluate(EvaluationSplit.Test).Loss, measure.Loss);
    }

    [Fact]
    public void MeasureOfALanguageModelGivesItsPerplexity()
    {
        const int vocabulary = 7;
        random.manual_seed(2);
        var model = ModelZoo.Create(ModelZoo.SmallCharLstmName, new ModelOptions { VocabularySize = vocabulary, HiddenSize = 6 });
        using var task = new LanguageModelTask(model, RandomTokens(vocabulary), batchSize: 4, unroll: 8, CPU);
        using var problem = new ModuleProblem(task, Options());
        using var point = Perturbed(problem, 0.2);
        var measure = problem.Measure(point);
        var evaluation = task.Evaluate(EvaluationSplit.Test);
        Assert.Equal(evaluation.Loss, measure.Loss, 12);
        Assert.Equal(Math.Exp(measure.Loss), measure.Perplexity!.Value, 9);
        Assert.Equal(measure.Perplexity!.Value, measure.Value(LevelMetric.Perplexity));
    }

    [Fact]
    public void MeasureRecomputesBatchNormStatisticsAtThePoint()
    {
        // Synthetic.Mlp has BatchNorm and dropout (which recalibration must switch off).
        using var data = Synthetic.Blobs(train: 320, test: 128);
        using var task = new ClassificationTask(Synthetic.Mlp(seed: 4), data, 32, seed: 1, ownsData: false);
        using var problem = new ModuleProblem(task, Options());
        Assert.True(problem.HasBatchNorm);
        var bn = task.Model.modules().OfType<BatchNorm1d>().Single();
        using var point = Perturbed(problem, 0.5);

        var measure = problem.Measure(point);

        // The reference: the same point, statistics spoiled, then an explicit recalibration and the task's evaluation.
        LoadByHand(task.Model, point);
        using (no_grad())
        {
            bn.running_mean!.fill_(3.0);
            bn.running_var!.fill_(0.01);
        }
        var stale = task.Evaluate(EvaluationSplit.Test);
        Assert.True(BatchNormRecalibration.Recalibrate(task, 0));
        var reference = task.Evaluate(EvaluationSplit.Test);
        Assert.Equal(reference.Loss, measure.Loss, 12);
        Assert.Equal(reference.ErrorPercent, measure.ErrorPercent!.Value, 12);
        Assert.True(Math.Abs(stale.Loss - measure.Loss) > 1e-3, "stale statistics should change the loss, or this test could not fail");
        // Measuring again after the statistics were spoiled gives the same number: they are recomputed every time.
        using (no_grad()) bn.running_mean!.fill_(-2.0);
        Assert.Equal(measure, problem.Measure(point));
    }

    [Fact]
    public void TheStochasticGradientIsAutogradOfTheMinibatchLossAtThePoint()
    {
        const int batch = 24;
        using var data = Images(ScalarType.Float64);
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float64), data, batch, seed: 13, ownsData: false);
        using var problem = new ModuleProblem(task, Options());
        using var point = Perturbed(problem);
        var before = Values(point);
        task.Model.eval();
        // The minibatches the task will draw, from an identically seeded stream over the same data.
        using var stream = new MinibatchStream(data.Train, batch, seed: 13);
        var twin = SmallMnistFc(ScalarType.Float64, seed: 99);
        LoadByHand(twin, point);
        var twinParameters = twin.parameters().ToArray();

        for (var call = 0; call < 3; call++)
        {
            using var scope = NewDisposeScope();
            var (loss, gradient) = problem.StochasticLossAndGradient(point);
            var (x, y) = stream.Next();
            var reference = F.cross_entropy(twin.call(x), y);
            var grads = autograd.grad([reference], twinParameters);
            var expected = cat(grads.Select(g => g.reshape(-1)).ToArray(), 0);

            Assert.Equal(reference.ToDouble(), loss, 12);
            Assert.Equal(problem.Dimension, gradient.shape[0]);
            Assert.True(gradient.allclose(expected, rtol: 1e-10, atol: 1e-12), $"call {call}: the gradient differs from autograd's by {gradient.sub(expected).abs().max().ToDouble()}");
        }
        Assert.Equal(before, Values(point)); // the caller's point is left alone
        Assert.False(task.Model.training);   // and the caller's mode restored
        Assert.All(twinParameters, p => Assert.True(p.grad is null || p.grad.IsInvalid));
        Assert.All(task.Model.parameters(), p => Assert.True(p.grad is null || p.grad.IsInvalid)); // .grad untouched
    }

    [Fact]
    public void TheStochasticGradientIsTakenInTrainModeWithBatchStatistics()
    {
        // BatchNorm without dropout: in train mode it normalises with the minibatch's own statistics, in eval mode with
        // the running ones, so only a train-mode reference agrees.
        const int batch = 16;
        using var data = Synthetic.Blobs(train: 96, test: 32);
        using var task = new ClassificationTask(Synthetic.Mlp(dropout: 0, seed: 4), data, batch, seed: 5, ownsData: false);
        using var problem = new ModuleProblem(task, Options());
        using var point = Perturbed(problem, 0.3);
        task.Model.eval();
        using var stream = new MinibatchStream(data.Train, batch, seed: 5);
        var twin = Synthetic.Mlp(dropout: 0, seed: 8);
        LoadByHand(twin, point);
        var twinParameters = twin.parameters().ToArray();

        using var scope = NewDisposeScope();
        var (loss, gradient) = problem.StochasticLossAndGradient(point);
        var (x, y) = stream.Next();
        twin.train();
        var trainMode = F.cross_entropy(twin.call(x), y);
        var expected = cat(autograd.grad([trainMode], twinParameters).Select(g => g.reshape(-1)).ToArray(), 0);
        twin.eval();
        var evalMode = F.cross_entropy(twin.call(x), y);

        Assert.Equal(trainMode.ToDouble(), loss, 5);
        Assert.True(gradient.allclose(expected, rtol: 1e-4, atol: 1e-6), $"the gradient differs from the train-mode reference by {gradient.sub(expected).abs().max().ToDouble()}");
        Assert.True(Math.Abs(evalMode.ToDouble() - loss) > 1e-3, "eval mode should give another loss here, or this test could not fail");
        Assert.False(task.Model.training);
    }

    /// <summary>A network with a registered parameter its forward never uses.</summary>
    sealed class WithUnusedParameter : nn.Module<Tensor, Tensor>
    {
        readonly Linear fc;
        readonly Parameter unused;

        public WithUnusedParameter() : base("with-unused")
        {
            fc = nn.Linear(8, 3);
            unused = new Parameter(ones(5));
            RegisterComponents();
        }

        public Parameter Unused => unused;

        public override Tensor forward(Tensor input) => fc.forward(input);
    }

    [Fact]
    public void ParametersTheLossDoesNotUseGetZeroGradient()
    {
        random.manual_seed(1);
        using var task = new ClassificationTask(new WithUnusedParameter(), Synthetic.Blobs(train: 64, test: 16), 16, seed: 1);
        using var problem = new ModuleProblem(task, Options());
        // A module's own parameters come before its children's (as in PyTorch).
        Assert.Equal(["unused", "fc.weight", "fc.bias"], problem.Parameters.Select(p => p.Name));
        using var point = problem.CurrentPoint();
        var (_, gradient) = problem.StochasticLossAndGradient(point);
        using (gradient)
        {
            Assert.Equal(new double[5], Values(gradient.narrow(0, 0, 5)));
            Assert.True(gradient.narrow(0, 5, 27).abs().sum().ToDouble() > 0);
        }
    }

    [Fact]
    public void TrainBeadReachesAReachableLevelAndReportsItsMeasure()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32, train: 320), 32, seed: 3);
        using var problem = new ModuleProblem(task, Options());
        using var start = problem.CurrentPoint();
        var before = Values(start);
        var initial = problem.Measure(start);
        const double target = 5.0;
        Assert.True(initial.ErrorPercent > target, $"the untrained network should be above the target ({initial.ErrorPercent}%)");

        var bead = problem.TrainBead(start, LevelMetric.ErrorPercent, target, TestContext.Current.CancellationToken);
        using var trained = bead.Point;

        Assert.True(bead.Reached);
        Assert.True(bead.Measure.ErrorPercent <= target);
        Assert.InRange(bead.Steps, 1, problem.Options.MaxSteps);
        Assert.Equal(0, bead.Steps % problem.Options.CheckEvery);
        Assert.Equal(bead.Measure, problem.Measure(trained)); // the returned measure is the returned point's
        Assert.Equal(before, Values(start));
        Assert.False(ReferenceEquals(trained, start));
        Assert.All(task.Model.parameters(), p => Assert.True(p.grad is null || p.grad.IsInvalid)); // no gradients left behind
    }

    [Fact]
    public void ABeadOfABatchNormModelIsMeasuredWithStatisticsRecomputedAtIt()
    {
        using var data = Synthetic.Blobs(train: 320, test: 128);
        using var task = new ClassificationTask(Synthetic.Mlp(seed: 4), data, 32, seed: 1, ownsData: false);
        using var problem = new ModuleProblem(task, Options());
        using var start = Perturbed(problem, 0.5);
        var bead = problem.TrainBead(start, LevelMetric.ErrorPercent, 2.0, TestContext.Current.CancellationToken);
        using var trained = bead.Point;
        Assert.True(bead.Reached);
        Assert.True(bead.Steps > 0);
        // The running statistics left by training (momentum averages over moving weights) are not the bead's: the
        // reported measure is the one taken after recomputing them, as Measure does.
        var bn = task.Model.modules().OfType<BatchNorm1d>().Single();
        using (no_grad()) bn.running_var!.fill_(100.0);
        Assert.Equal(bead.Measure, problem.Measure(trained));
        var reference = task.Evaluate(EvaluationSplit.Test);
        Assert.Equal(reference.Loss, bead.Measure.Loss, 12);
    }

    [Fact]
    public void TrainBeadStopsAtMaxStepsWhenTheLevelIsOutOfReach()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32), 32, seed: 3);
        using var problem = new ModuleProblem(task, Options() with { MaxSteps = 25, CheckEvery = 10 });
        using var start = problem.CurrentPoint();
        var bead = problem.TrainBead(start, LevelMetric.Loss, 0.0, TestContext.Current.CancellationToken);
        using var trained = bead.Point;
        Assert.False(bead.Reached);
        Assert.Equal(25, bead.Steps);
        Assert.True(bead.Measure.Loss > 0);
        Assert.Equal(bead.Measure, problem.Measure(trained));
    }

    [Fact]
    public void TrainBeadFromAPointAlreadyAtTheLevelTakesNoSteps()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32), 32, seed: 3);
        using var problem = new ModuleProblem(task, Options());
        using var start = problem.CurrentPoint();
        var measure = problem.Measure(start);
        var bead = problem.TrainBead(start, LevelMetric.Loss, measure.Loss, TestContext.Current.CancellationToken);
        using var trained = bead.Point;
        Assert.True(bead.Reached);
        Assert.Equal(0, bead.Steps);
        Assert.Equal(Values(start), Values(trained));
    }

    [Fact]
    public void ADivergingBeadIsReportedWithItsStep()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32), 32, seed: 3);
        using var problem = new ModuleProblem(task, Options());
        using var start = problem.CurrentPoint();
        start[0] = tensor(float.NaN);
        var e = Assert.Throws<TrainingDivergedException>(() => problem.TrainBead(start, LevelMetric.Loss, 0.1, TestContext.Current.CancellationToken));
        Assert.Contains("bead training diverged at step 1 ", e.Message);
        Assert.Contains("NaN", e.Message);
    }

    [Fact]
    public void TrainBeadStopsWhenCancelled()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32), 32, seed: 3);
        using var problem = new ModuleProblem(task, Options());
        using var start = problem.CurrentPoint();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => problem.TrainBead(start, LevelMetric.Loss, 0.0, cancelled.Token));
    }

    [Fact]
    public void BadOptionsAndArgumentsAreRefusedWithTheirName()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32), 32, seed: 3);
        Assert.Contains("CheckEvery must be at least 1",
            Assert.Throws<ArgumentOutOfRangeException>(() => new ModuleProblem(task, Options() with { CheckEvery = 0 })).Message);
        Assert.Contains("MaxSteps must be at least 1",
            Assert.Throws<ArgumentOutOfRangeException>(() => new ModuleProblem(task, Options() with { MaxSteps = -5 })).Message);
        Assert.Contains("BatchNormMinibatches",
            Assert.Throws<ArgumentOutOfRangeException>(() => new ModuleProblem(task, Options() with { BatchNormMinibatches = -1 })).Message);
        Assert.Contains("ClipGradNorm",
            Assert.Throws<ArgumentOutOfRangeException>(() => new ModuleProblem(task, Options() with { ClipGradNorm = double.NaN })).Message);
        Assert.Contains("no validation split",
            Assert.Throws<ArgumentException>(() => new ModuleProblem(task, Options(EvaluationSplit.Validation))).Message);
        Assert.Contains("OptimizerFactory",
            Assert.Throws<ArgumentException>(() => new ModuleProblem(task, Options() with { OptimizerFactory = null! })).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ModuleProblemOptions.Adam(0));

        using var problem = new ModuleProblem(task, Options());
        using var start = problem.CurrentPoint();
        Assert.Contains("not a language model",
            Assert.Throws<ArgumentException>(() => problem.TrainBead(start, LevelMetric.Perplexity, 10, TestContext.Current.CancellationToken)).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => problem.TrainBead(start, LevelMetric.Loss, double.NaN, TestContext.Current.CancellationToken)).Message);
        using var tooShort = zeros(problem.Dimension - 1);
        Assert.Contains($"vector of {problem.Dimension:N0} parameters",
            Assert.Throws<ArgumentException>(() => problem.Measure(tooShort)).Message);
        using var integers = zeros(problem.Dimension, ScalarType.Int64);
        Assert.Contains("floating point", Assert.Throws<ArgumentException>(() => problem.Measure(integers)).Message);
    }

    [Fact]
    public void PointOfReadsAnotherModelOfTheSameArchitectureAndRefusesAnyOther()
    {
        using var task = new ClassificationTask(SmallMnistFc(ScalarType.Float32), Images(ScalarType.Float32), 32, seed: 3);
        using var problem = new ModuleProblem(task, Options());
        var other = SmallMnistFc(ScalarType.Float32, seed: 77);
        using var point = problem.PointOf(other);
        Assert.Equal(other.parameters().SelectMany(p => Values(p.detach().reshape(-1))).ToArray(), Values(point));

        random.manual_seed(1);
        using var wider = ModelZoo.Create(ModelZoo.SmallMnistFcName, new ModelOptions { ImageSize = ImageSize, NumClasses = 4 });
        var e = Assert.Throws<ArgumentException>(() => problem.PointOf(wider, "wider.pt"));
        Assert.StartsWith("model wider.pt differs at 'body.fc2.weight': shape [3, 64] in A, [4, 64] in wider.pt", e.Message);
    }

    [Fact]
    public void ThousandsOfCallsLeaveNoTensorsBehind()
    {
        using var data = Synthetic.Blobs(train: 64, test: 32);
        using var task = new ClassificationTask(Synthetic.Mlp(seed: 4), data, 16, seed: 1, ownsData: false);
        using var problem = new ModuleProblem(task, Options() with { MaxSteps = 4, CheckEvery = 2 });
        using var point = problem.CurrentPoint();
        void Round()
        {
            problem.Measure(point);
            var (_, gradient) = problem.StochasticLossAndGradient(point);
            gradient.Dispose();
            problem.TrainBead(point, LevelMetric.Loss, 0.0).Point.Dispose();
        }
        // The count is process-wide: let earlier garbage be finalized first.
        static long Live() { GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect(); return torch.Tensor.TotalCount; }
        for (var i = 0; i < 20; i++) Round();
        var warm = Live();
        for (var i = 0; i < 300; i++) Round(); // 1,200 calls, each with several evaluations and steps inside
        // Read before any collection: tensors left to the finalizer would still be counted here, not only held ones.
        Assert.Equal(warm, torch.Tensor.TotalCount);
        Assert.Equal(warm, Live());
    }

    static TokenCorpus RandomTokens(int vocabulary)
    {
        using var generator = new Generator(17);
        Tensor Tokens(int n) => randint(0, vocabulary, [n], dtype: int64, generator: generator).DetachFromDisposeScope();
        return new TokenCorpus
        {
            Name = "random-tokens",
            Vocabulary = new Vocabulary(Enumerable.Range(0, vocabulary).Select(i => ((char)('!' + i)).ToString())),
            Train = Tokens(600),
            Validation = Tokens(100),
            Test = Tokens(100),
            Source = "test",
            Level = "char",
        };
    }
}
