using TorchSharp;
using WideValley.Models;
using static TorchSharp.torch;
using static WideValley.Tests.Models.ModelTestHelpers;

namespace WideValley.Tests.Models;

/// <summary>Default, overridden and changed dropout probabilities, and that they act (only) in training mode.</summary>
public class DropoutTests
{
    private static nn.Module Create(string name, double? dropout = null, double? inputDropout = null)
    {
        var options = ModelZoo.Describe(name).Kind == ModelKind.LanguageModel
            ? new ModelOptions { VocabularySize = 30, HiddenSize = 16 }
            : PaperImageOptions(name);
        return ModelZoo.Create(name, options with { Dropout = dropout, InputDropout = inputDropout });
    }

    [Theory]
    [InlineData("mnistfc", 0.5, 0.2)]
    [InlineData("lenet", 0.5, 0.0)]
    [InlineData("allcnn", 0.5, 0.2)]
    [InlineData("small-lenet", 0.0, 0.0)]
    [InlineData("small-mnistfc", 0.0, 0.0)]
    [InlineData("char-lstm", 0.0, 0.0)]
    [InlineData("small-char-lstm", 0.0, 0.0)]
    [InlineData("ptb-lstm", 0.65, 0.65)]
    [InlineData("fb-mnist-cnn", 0.5, 0.0)]
    [InlineData("ptb-small-lstm", 0.0, 0.0)]
    public void DefaultsFollowThePaperAndAreDescribed(string name, double hidden, double input)
    {
        using var model = Create(name);
        var dropout = Assert.IsAssignableFrom<IHasDropout>(model);
        Assert.Equal(hidden, dropout.HiddenDropout);
        Assert.Equal(input, dropout.InputDropout);
        Assert.Equal(hidden, ModelZoo.Describe(name).DefaultDropout);
        Assert.Equal(input, ModelZoo.Describe(name).DefaultInputDropout);
    }

    [Theory]
    [InlineData("mnistfc", 2)]
    [InlineData("lenet", 3)]
    [InlineData("allcnn", 2)]
    [InlineData("small-lenet", 3)]
    [InlineData("small-mnistfc", 1)]
    [InlineData("fb-mnist-cnn", 1)]
    public void OverriddenValuesReachEveryDropoutLayer(string name, int hiddenLayers)
    {
        using var model = (ImageClassifier)Create(name, dropout: 0.15, inputDropout: 0.05);
        Assert.Equal(hiddenLayers, model.HiddenDropoutLayerCount);
        var probabilities = model.modules().OfType<TorchSharp.Modules.Dropout>().Select(layer => layer.p).ToList();
        Assert.Equal([0.05, .. Enumerable.Repeat(0.15, hiddenLayers)], probabilities);
        Assert.Equal(0.15, model.HiddenDropout);
        Assert.Equal(0.05, model.InputDropout);
    }

    [Fact]
    public void PtbLstmInputDropoutFollowsTheMainDropoutUnlessGiven()
    {
        using var followed = (LstmLanguageModel)Create("ptb-lstm", dropout: 0.3);
        Assert.Equal((0.3, 0.3), (followed.HiddenDropout, followed.InputDropout));
        using var separate = (LstmLanguageModel)Create("ptb-lstm", dropout: 0.3, inputDropout: 0.1);
        Assert.Equal((0.3, 0.1), (separate.HiddenDropout, separate.InputDropout));
        Assert.True(ModelZoo.Describe("ptb-lstm").InputDropoutFollowsDropout);
        Assert.False(ModelZoo.Describe("mnistfc").InputDropoutFollowsDropout);
    }

    [Theory]
    [InlineData("lenet")]
    [InlineData("ptb-lstm")]
    public void SetDropoutChangesTheGivenValueAndKeepsTheOther(string name)
    {
        using var model = Create(name, dropout: 0.5, inputDropout: 0.2);
        var dropout = (IHasDropout)model;
        dropout.SetDropout(0.25, null);
        Assert.Equal((0.25, 0.2), (dropout.HiddenDropout, dropout.InputDropout));
        dropout.SetDropout(null, 0.1);
        Assert.Equal((0.25, 0.1), (dropout.HiddenDropout, dropout.InputDropout));
        Assert.All(model.modules().OfType<TorchSharp.Modules.Dropout>(), layer => Assert.Contains(layer.p, new[] { 0.25, 0.1 }));
    }

    [Theory]
    [InlineData("mnistfc")]
    [InlineData("lenet")]
    [InlineData("allcnn")]
    [InlineData("small-lenet")]
    [InlineData("ptb-lstm")]
    [InlineData("char-lstm")]
    [InlineData("fb-mnist-cnn")]
    [InlineData("ptb-small-lstm")]
    public void WithoutDropoutTrainingModeIsDeterministic(string name)
    {
        using var scope = NewDisposeScope();
        using var model = Create(name, dropout: 0, inputDropout: 0);
        model.train();
        var input = Input(name);
        var module = (nn.Module<Tensor, Tensor>)model;
        Assert.Equal(0f, MaxAbsDifference(module.call(input), module.call(input)));
    }

    [Theory]
    [InlineData("mnistfc", 0.5, 0.2)]
    [InlineData("lenet", 0.5, 0.0)]
    [InlineData("allcnn", 0.5, 0.2)]
    [InlineData("small-mnistfc", 0.5, 0.0)]
    [InlineData("small-mnistfc", 0.0, 0.5)]
    [InlineData("ptb-lstm", 0.65, 0.0)]
    [InlineData("ptb-lstm", 0.0, 0.65)]
    [InlineData("small-char-lstm", 0.5, 0.0)]
    [InlineData("fb-mnist-cnn", 0.5, 0.0)]
    [InlineData("ptb-small-lstm", 0.3, 0.3)]
    public void DropoutActsInTrainingModeOnlyAndEvaluationIsDeterministic(string name, double hidden, double input)
    {
        using var scope = NewDisposeScope();
        using var model = Create(name, dropout: hidden, inputDropout: input);
        var module = (nn.Module<Tensor, Tensor>)model;
        var data = Input(name);

        model.eval();
        var evaluated = module.call(data);
        Assert.Equal(0f, MaxAbsDifference(evaluated, module.call(data)));

        // Without dropout, training mode is bit-for-bit repeatable (see above), so any difference is dropout's doing.
        // The threshold is 0 because ptb-lstm's +-0.04 initialisation damps an embedding-dropout change to ~1e-6.
        model.train();
        Assert.True(MaxAbsDifference(module.call(data), module.call(data)) > 0, "dropout did not change the output in training mode");
    }

    private static Tensor Input(string name) => ModelZoo.Describe(name).Kind == ModelKind.LanguageModel
        ? RandomTokens(30, batch: 4, time: 6)
        : RandomImages(PaperImageOptions(name));
}
