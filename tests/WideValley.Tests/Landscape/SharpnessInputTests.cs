using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using static WideValley.Tests.Landscape.SharpnessFixtures;

namespace WideValley.Tests.Landscape;

/// <summary>The sharpness measures leave the model as they found it, and refuse bad input with a clear message.</summary>
public sealed class SharpnessInputTests
{
    /// <summary>Every measure once, with small budgets, on a model and its evaluation set.</summary>
    private static readonly (string Name, Func<nn.Module<Tensor, Tensor>, List<(Tensor, Tensor)>, SharpnessResult> Run)[] Measures =
    [
        ("epsilon", (m, d) => Sharpness.Epsilon(m, d, new EpsilonSharpnessOptions { Steps = 3, RandomStarts = 1 })),
        ("sam", (m, d) => Sharpness.Sam(m, d, new SamSharpnessOptions { Steps = 3 })),
        ("adaptive", (m, d) => Sharpness.Adaptive(m, d, new AdaptiveSharpnessOptions { Steps = 3 })),
        ("pac-bayes", (m, d) => Sharpness.PacBayes(m, d, new PacBayesFlatnessOptions { Samples = 2, RelativeTolerance = 0.2 })),
        ("pac-bayes-magnitude", (m, d) => Sharpness.PacBayes(m, d,
            new PacBayesFlatnessOptions { Samples = 2, RelativeTolerance = 0.2, MagnitudeAware = true, Criterion = PacBayesCriterion.Loss })),
    ];

    [Fact]
    public void EveryMeasureLeavesWeightsBuffersAndModesBitIdentical()
    {
        // BatchNorm and dropout, in train mode: the measures must run in eval mode and put every flag back.
        var model = Synthetic.Mlp(dropout: 0.3);
        model.train();
        using var data = Synthetic.Blobs(train: 40, test: 4);
        List<(Tensor, Tensor)> batches = [(data.Train.Inputs.narrow(0, 0, 25), data.Train.Labels.narrow(0, 0, 25)),
            (data.Train.Inputs.narrow(0, 25, 15), data.Train.Labels.narrow(0, 25, 15))];
        var before = Snapshot(model);
        foreach (var (name, run) in Measures)
        {
            var result = run(model, batches);
            Assert.True(double.IsFinite(result.Value), $"{name}: {result.Value}");
            Assert.True(result.ForwardEvaluations + result.GradientEvaluations > 1, name);
            var after = Snapshot(model);
            Assert.Equal(before.Length, after.Length);
            for (var i = 0; i < before.Length; i++) Assert.True(before[i].AsSpan().SequenceEqual(after[i]), $"{name}: state tensor {i} changed");
            Assert.True(model.training && model.modules().All(m => m.training), $"{name}: a module lost its train flag");
        }
    }

    [Fact]
    public void TheMeasuresRunInEvalModeAsTheOtherMeasurementsDo()
    {
        // With dropout in train mode the loss would be random; in eval mode two runs agree exactly.
        var model = Synthetic.Mlp(dropout: 0.5);
        model.train();
        using var data = Synthetic.Blobs(train: 30, test: 4);
        List<(Tensor, Tensor)> batches = [(data.Train.Inputs, data.Train.Labels)];
        var first = Sharpness.Sam(model, batches, new SamSharpnessOptions { Steps = 2 });
        var second = Sharpness.Sam(model, batches, new SamSharpnessOptions { Steps = 2 });
        Assert.Equal(first.Value, second.Value);
        using var hvp = new Hvp(model, batches);
        Assert.Equal(hvp.Evaluate().Loss, first.LossAtStart, 1e-6);
    }

    [Fact]
    public void ACancellationMidwayRestoresTheWeights()
    {
        var model = ReluNet();
        var data = RandomSet([10], inputs: 5, classes: 3);
        var before = Snapshot(model);
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.Done >= 3) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => Sharpness.Epsilon(model, data,
            new EpsilonSharpnessOptions { Steps = 10, Progress = progress, Cancellation = cancel.Token }));
        Assert.Equal(3, progress.Reports);
        var after = Snapshot(model);
        for (var i = 0; i < before.Length; i++) Assert.True(before[i].AsSpan().SequenceEqual(after[i]), $"state tensor {i} changed");
    }

    [Fact]
    public void ProgressCountsEveryPassOverTheEvaluationSet()
    {
        var model = ReluNet();
        var data = RandomSet([10], inputs: 5, classes: 3);
        var progress = new SyncProgress(_ => { });
        var result = Sharpness.Adaptive(model, data, new AdaptiveSharpnessOptions { Steps = 4, Progress = progress });
        Assert.Equal(4, result.GradientEvaluations);
        Assert.Equal(1, result.ForwardEvaluations);
        Assert.Equal(5, progress.Reports);
    }

    public static TheoryData<string, string> BadSettings => new()
    {
        { "epsilon:0", "Epsilon" }, { "epsilon:-1", "Epsilon" }, { "epsilon:nan", "Epsilon" }, { "epsilon-steps:0", "Steps" },
        { "epsilon-starts:-1", "RandomStarts" }, { "epsilon-step:0", "StepFraction" }, { "epsilon-start:2", "StartFraction" },
        { "sam-rho:0", "Rho" }, { "sam-rho:inf", "Rho" }, { "sam-steps:0", "Steps" }, { "sam-step:-1", "StepFraction" },
        { "asam-rho:-0.1", "Rho" }, { "asam-eta:-1", "Eta" }, { "asam-steps:0", "Steps" },
        { "pac-threshold:0", "Threshold" }, { "pac-threshold-error:1", "Threshold" }, { "pac-high:0", "SigmaHigh" },
        { "pac-low:-1", "SigmaLow" }, { "pac-bracket:3", "SigmaHigh" }, { "pac-samples:0", "Samples" }, { "pac-tolerance:0", "RelativeTolerance" },
        { "pac-magnitude-eps:-1", "MagnitudeEpsilon" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void BadSettingsAreRefusedNamingTheSetting(string setting, string property)
    {
        var model = ReluNet();
        var data = RandomSet([6], inputs: 5, classes: 3);
        var before = Snapshot(model);
        var value = setting[(setting.IndexOf(':') + 1)..] switch { "nan" => double.NaN, "inf" => double.PositiveInfinity, var v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) };
        Action run = setting[..setting.IndexOf(':')] switch
        {
            "epsilon" => () => Sharpness.Epsilon(model, data, new EpsilonSharpnessOptions { Epsilon = value }),
            "epsilon-steps" => () => Sharpness.Epsilon(model, data, new EpsilonSharpnessOptions { Steps = (int)value }),
            "epsilon-starts" => () => Sharpness.Epsilon(model, data, new EpsilonSharpnessOptions { RandomStarts = (int)value }),
            "epsilon-step" => () => Sharpness.Epsilon(model, data, new EpsilonSharpnessOptions { StepFraction = value }),
            "epsilon-start" => () => Sharpness.Epsilon(model, data, new EpsilonSharpnessOptions { StartFraction = value }),
            "sam-rho" => () => Sharpness.Sam(model, data, new SamSharpnessOptions { Rho = value }),
            "sam-steps" => () => Sharpness.Sam(model, data, new SamSharpnessOptions { Steps = (int)value }),
            "sam-step" => () => Sharpness.Sam(model, data, new SamSharpnessOptions { StepFraction = value }),
            "asam-rho" => () => Sharpness.Adaptive(model, data, new AdaptiveSharpnessOptions { Rho = value }),
            "asam-eta" => () => Sharpness.Adaptive(model, data, new AdaptiveSharpnessOptions { Eta = value }),
            "asam-steps" => () => Sharpness.Adaptive(model, data, new AdaptiveSharpnessOptions { Steps = (int)value }),
            "pac-threshold" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { Criterion = PacBayesCriterion.Loss, Threshold = value }),
            "pac-threshold-error" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { Threshold = value }),
            "pac-high" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { SigmaHigh = value }),
            "pac-low" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { SigmaLow = value }),
            "pac-bracket" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { SigmaLow = value, SigmaHigh = 2 }),
            "pac-samples" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { Samples = (int)value }),
            "pac-tolerance" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { RelativeTolerance = value }),
            "pac-magnitude-eps" => () => Sharpness.PacBayes(model, data, new PacBayesFlatnessOptions { MagnitudeAware = true, MagnitudeEpsilon = value }),
            _ => throw new ArgumentOutOfRangeException(nameof(setting)),
        };
        var error = Assert.Throws<ArgumentException>(run);
        Assert.Contains(property, error.Message);
        Assert.StartsWith("Sharpness.", error.Message);
        var after = Snapshot(model);
        for (var i = 0; i < before.Length; i++) Assert.True(before[i].AsSpan().SequenceEqual(after[i]));
    }

    [Fact]
    public void AnEmptyOrUnknownSelectionIsRefused()
    {
        var model = ReluNet();
        var data = RandomSet([6], inputs: 5, classes: 3);
        foreach (var p in model.parameters()) p.requires_grad = false;
        var frozen = Assert.Throws<ArgumentException>(() => Sharpness.Sam(model, data));
        Assert.Contains("selects no trainable parameter", frozen.Message);
        var other = ReluNet();
        var unknown = Assert.Throws<ArgumentException>(() =>
            Sharpness.Adaptive(other, data, new AdaptiveSharpnessOptions { Landscape = new LandscapeOptions { Parameters = ParameterSelection.Named("fc3.weight") } }));
        Assert.Contains("no parameter 'fc3.weight'", unknown.Message);
    }

    [Fact]
    public void AnEvaluationSetThatDoesNotFitTheModelIsRefusedPlainly()
    {
        var model = ReluNet(inputs: 5);
        var before = Snapshot(model);
        var wrongWidth = RandomSet([6], inputs: 4, classes: 3);
        var shape = Assert.Throws<ArgumentException>(() => Sharpness.Sam(model, wrongWidth));
        Assert.Contains("does not fit the model", shape.Message);
        var wrongLabels = RandomSet([6], inputs: 5, classes: 9, seed: 2);
        var labels = Assert.Throws<ArgumentException>(() => Sharpness.PacBayes(model, wrongLabels));
        Assert.Contains("does not fit the model", labels.Message);
        var after = Snapshot(model);
        for (var i = 0; i < before.Length; i++) Assert.True(before[i].AsSpan().SequenceEqual(after[i]));
    }

    [Fact]
    public void TheErrorCriterionNeedsClassificationOutputs()
    {
        TorchRuntime.EnsureInitialized();
        var center = RandomPoint(4, 1);
        var model = new Quadratic(eye(4, dtype: ScalarType.Float64), center, center, split: 2);
        var error = Assert.Throws<ArgumentException>(() => Sharpness.PacBayes(model, DummySet(), new PacBayesFlatnessOptions { Landscape = Options() }));
        Assert.Contains("PacBayesCriterion.Loss", error.Message);
    }

    [Fact]
    public void NonFiniteWeightsAreRefused()
    {
        var model = ReluNet();
        using (no_grad()) model.parameters().First()[0, 0] = tensor(double.NaN, ScalarType.Float64);
        var data = RandomSet([6], inputs: 5, classes: 3);
        var error = Assert.Throws<NonFiniteValuesException>(() => Sharpness.Epsilon(model, data));
        Assert.Equal("fc1.weight", error.What);
    }
}
