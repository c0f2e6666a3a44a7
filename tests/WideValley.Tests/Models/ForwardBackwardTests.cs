using TorchSharp;
using WideValley.Models;
using static TorchSharp.torch;
using static WideValley.Tests.Models.ModelTestHelpers;

namespace WideValley.Tests.Models;

/// <summary>Every network maps its inputs to the documented shapes and back-propagates finite gradients.</summary>
public class ForwardBackwardTests
{
    public static TheoryData<string> ClassifierNames => ["mnistfc", "lenet", "small-lenet", "small-mnistfc", "allcnn", "fb-mnist-cnn"];

    [Theory]
    [MemberData(nameof(ClassifierNames))]
    public void ClassifierMapsImagesToLogitsAndBackpropagates(string name)
    {
        using var scope = NewDisposeScope();
        var options = PaperImageOptions(name);
        using var model = ModelZoo.Create(name, options);
        Assert.Equal(ModelKind.Classifier, ModelZoo.Describe(name).Kind);
        var classifier = Assert.IsAssignableFrom<nn.Module<Tensor, Tensor>>(model);
        model.train();

        var logits = classifier.call(RandomImages(options));
        Assert.Equal([4L, 10L], logits.shape);
        nn.functional.cross_entropy(logits, randint(0, 10, [4], dtype: ScalarType.Int64)).backward();
        AssertFiniteGradients(model);
    }

    [Theory]
    [InlineData("lenet", 32)]
    [InlineData("small-lenet", 32)]
    [InlineData("allcnn", 28)]
    [InlineData("mnistfc", 32)]
    [InlineData("fb-mnist-cnn", 32)]
    [InlineData("fb-mnist-cnn", 8)]
    public void ClassifierAdaptsToOtherImageSizesAndClassCounts(string name, int imageSize)
    {
        using var scope = NewDisposeScope();
        var options = new ModelOptions { InputChannels = 3, ImageSize = imageSize, NumClasses = 7 };
        using var model = ModelZoo.Create(name, options);
        model.eval();
        var logits = ((nn.Module<Tensor, Tensor>)model).call(RandomImages(options, batch: 2));
        Assert.Equal([2L, 7L], logits.shape);
    }

    public static TheoryData<string, int, int?> LanguageModels => new()
    {
        { "char-lstm", 87, null },
        { "small-char-lstm", 96, null },
        { "ptb-lstm", 50, 16 },
        { "ptb-small-lstm", 50, null },
    };

    [Theory]
    [MemberData(nameof(LanguageModels))]
    public void LanguageModelMapsTokensToLogitsAndStateAndBackpropagates(string name, int vocabulary, int? hiddenSize)
    {
        using var scope = NewDisposeScope();
        using var model = ModelZoo.Create(name, new ModelOptions { VocabularySize = vocabulary, HiddenSize = hiddenSize });
        Assert.Equal(ModelKind.LanguageModel, ModelZoo.Describe(name).Kind);
        var languageModel = Assert.IsAssignableFrom<IRecurrentLanguageModel>(model);
        var lstm = Assert.IsType<LstmLanguageModel>(model);
        Assert.Equal(vocabulary, languageModel.VocabularySize);
        model.train();

        var tokens = RandomTokens(vocabulary, batch: 4, time: 9);
        var (logits, hidden, cell) = languageModel.Forward(tokens, null);
        Assert.Equal([4L, 9L, (long)vocabulary], logits.shape);
        Assert.Equal([(long)lstm.LayerCount, 4L, lstm.HiddenSize], hidden.shape);
        Assert.Equal(hidden.shape, cell.shape);

        var targets = RandomTokens(vocabulary, batch: 4, time: 9);
        nn.functional.cross_entropy(logits.reshape(-1, vocabulary), targets.reshape(-1)).backward();
        AssertFiniteGradients(model);
    }

    [Fact]
    public void LanguageModelForwardWithoutStateReturnsTheZeroStateLogits()
    {
        using var scope = NewDisposeScope();
        using var model = (LstmLanguageModel)ModelZoo.Create("small-char-lstm", new ModelOptions { VocabularySize = 96 });
        model.eval();
        var tokens = RandomTokens(96, batch: 3, time: 5);
        var (logits, _, _) = model.Forward(tokens, null);
        Assert.Equal(0f, MaxAbsDifference(logits, model.call(tokens)));
    }
}
