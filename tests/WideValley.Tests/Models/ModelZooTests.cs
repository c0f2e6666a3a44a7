using TorchSharp;
using WideValley.Models;
using static TorchSharp.torch;
using static WideValley.Tests.Models.ModelTestHelpers;

namespace WideValley.Tests.Models;

/// <summary>The zoo's catalogue and its rejection of bad names and options.</summary>
public class ModelZooTests
{
    private static readonly string[] AllNames =
        ["mnistfc", "lenet", "allcnn", "small-lenet", "small-mnistfc", "char-lstm", "small-char-lstm", "ptb-lstm", "fb-mnist-cnn", "ptb-small-lstm", "lenet5",
         "mlp1-sigmoid", "mlp1-relu", "mlp1-grelu", "mlp2-sigmoid", "mlp2-relu", "mlp2-grelu"];

    [Fact]
    public void NamesListEveryNetworkAndEachIsDescribed()
    {
        Assert.Equal(AllNames.Order(), ModelZoo.Names.Order());
        foreach (var name in ModelZoo.Names)
        {
            var info = ModelZoo.Describe(name);
            Assert.Equal(name, info.Name);
            Assert.False(string.IsNullOrWhiteSpace(info.Description));
            Assert.False(string.IsNullOrWhiteSpace(info.PaperDataset));
            Assert.False(string.IsNullOrWhiteSpace(info.InputShape));
        }
    }

    [Theory]
    [InlineData("mnistfc", ModelKind.Classifier, typeof(MnistFc))]
    [InlineData("lenet", ModelKind.Classifier, typeof(LeNetBn))]
    [InlineData("allcnn", ModelKind.Classifier, typeof(AllCnnBn))]
    [InlineData("small-lenet", ModelKind.Classifier, typeof(SmallLeNet))]
    [InlineData("small-mnistfc", ModelKind.Classifier, typeof(SmallMnistFc))]
    [InlineData("char-lstm", ModelKind.LanguageModel, typeof(LstmLanguageModel))]
    [InlineData("small-char-lstm", ModelKind.LanguageModel, typeof(LstmLanguageModel))]
    [InlineData("ptb-lstm", ModelKind.LanguageModel, typeof(LstmLanguageModel))]
    [InlineData("fb-mnist-cnn", ModelKind.Classifier, typeof(FbMnistCnn))]
    [InlineData("ptb-small-lstm", ModelKind.LanguageModel, typeof(LstmLanguageModel))]
    public void KindsAndTypesMatch(string name, ModelKind kind, Type type)
    {
        Assert.Equal(kind, ModelZoo.Describe(name).Kind);
        using var model = ModelZoo.Create(name, new ModelOptions { VocabularySize = kind == ModelKind.LanguageModel ? 20 : null, HiddenSize = kind == ModelKind.LanguageModel ? 8 : null });
        Assert.IsType(type, model);
        Assert.IsAssignableFrom<IHasDropout>(model);
        Assert.Equal(kind == ModelKind.LanguageModel, model is IRecurrentLanguageModel);
    }

    [Fact]
    public void UnknownNameListsTheKnownNames()
    {
        var error = Assert.Throws<ArgumentException>(() => ModelZoo.Create("resnet", new ModelOptions()));
        Assert.Contains("resnet", error.Message);
        Assert.All(AllNames, name => Assert.Contains(name, error.Message));
        Assert.Throws<ArgumentException>(() => ModelZoo.Describe("LeNet"));
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(-0.1)]
    [InlineData(double.NaN)]
    public void DropoutOutsideTheUnitIntervalIsRejected(double probability)
    {
        var hidden = Assert.Throws<ArgumentException>(() => ModelZoo.Create("mnistfc", new ModelOptions { Dropout = probability }));
        Assert.Contains("[0, 1)", hidden.Message);
        Assert.Contains("mnistfc", hidden.Message);
        var input = Assert.Throws<ArgumentException>(() => ModelZoo.Create("ptb-lstm", new ModelOptions { VocabularySize = 10, InputDropout = probability }));
        Assert.Contains("InputDropout", input.Message);
        using var model = ModelZoo.Create("lenet", new ModelOptions());
        Assert.Throws<ArgumentException>(() => ((IHasDropout)model).SetDropout(probability, null));
        Assert.Equal(0.5, ((IHasDropout)model).HiddenDropout);
    }

    public static TheoryData<string, ModelOptions, string> BadOptions => new()
    {
        { "mnistfc", new ModelOptions { ImageSize = 0 }, "ImageSize must be positive" },
        { "allcnn", new ModelOptions { InputChannels = -3 }, "InputChannels must be positive" },
        { "small-lenet", new ModelOptions { NumClasses = 0 }, "NumClasses must be positive" },
        { "lenet", new ModelOptions { ImageSize = 21 }, "at least 22x22" },
        { "small-lenet", new ModelOptions { ImageSize = 15 }, "at least 16x16" },
        { "fb-mnist-cnn", new ModelOptions { ImageSize = 30 }, "divisible by 4" },
        { "fb-mnist-cnn", new ModelOptions { HiddenSize = 8 }, "HiddenSize applies only to the language models" },
        { "ptb-small-lstm", new ModelOptions(), "set ModelOptions.VocabularySize" },
        { "mnistfc", new ModelOptions { VocabularySize = 100 }, "VocabularySize applies only to the language models" },
        { "lenet", new ModelOptions { HiddenSize = 100 }, "HiddenSize applies only to the language models" },
        { "char-lstm", new ModelOptions(), "set ModelOptions.VocabularySize" },
        { "ptb-lstm", new ModelOptions { VocabularySize = 0 }, "VocabularySize must be positive" },
        { "ptb-lstm", new ModelOptions { VocabularySize = 10, HiddenSize = 0 }, "HiddenSize must be positive" },
        { "char-lstm", new ModelOptions { VocabularySize = 10, Layers = 0 }, "Layers must be positive" },
        { "char-lstm", new ModelOptions { VocabularySize = 10, InputDropout = 0.1 }, "no input dropout" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void BadOptionsAreRejectedWithAReason(string name, ModelOptions options, string reason)
    {
        var error = Assert.Throws<ArgumentException>(() => ModelZoo.Create(name, options));
        Assert.Contains(reason, error.Message);
        Assert.Contains(name, error.Message);
    }

    [Fact]
    public void SmallestValidImageSizesAreAccepted()
    {
        using var scope = NewDisposeScope();
        foreach (var (name, size) in new[] { ("lenet", 22), ("small-lenet", 16) })
        {
            var options = new ModelOptions { ImageSize = size };
            using var model = ModelZoo.Create(name, options);
            model.eval();
            Assert.Equal([2L, 10L], ((nn.Module<Tensor, Tensor>)model).call(RandomImages(options, batch: 2)).shape);
        }
    }

    [Fact]
    public void FbMnistCnnEstimateRefusesWhatBuildingRefuses()
    {
        var error = Assert.Throws<ArgumentException>(() => ModelZoo.EstimateSize("fb-mnist-cnn", new ModelOptions { ImageSize = 26 }));
        Assert.Contains("divisible by 4", error.Message);
        Assert.Contains("ImageSize = 26", error.Message);
    }

    [Fact]
    public void FbMnistCnnStartsFromTheTutorialsTruncatedNormalAndBiasesOfOneTenth()
    {
        using var scope = NewDisposeScope();
        using var model = ModelZoo.Create("fb-mnist-cnn", new ModelOptions());
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (name.EndsWith("bias", StringComparison.Ordinal))
            {
                Assert.True(parameter.eq(0.1f).all().item<bool>(), $"{name} is not 0.1 everywhere");
                continue;
            }
            // N(0, 0.1) truncated at two standard deviations: within +-0.2, standard deviation 0.1 x 0.8796 = 0.088.
            var largest = parameter.abs().max().item<float>();
            Assert.True(largest <= 0.2f, $"{name}: |w| up to {largest} > 0.2");
            Assert.True(largest > 0.18f, $"{name}: |w| only up to {largest}");
            var std = parameter.std().item<float>();
            Assert.InRange(std, 0.080f, 0.096f);
        }
    }

    [Fact]
    public void CharLstmAcceptsAnExplicitZeroInputDropout()
    {
        using var model = ModelZoo.Create("char-lstm", new ModelOptions { VocabularySize = 10, InputDropout = 0 });
        Assert.Throws<ArgumentException>(() => ((IHasDropout)model).SetDropout(null, 0.2));
        ((IHasDropout)model).SetDropout(0.3, 0);
        Assert.Equal(0.3, ((IHasDropout)model).HiddenDropout);
    }

    [Fact]
    public void ClassifierRejectsImagesOfTheWrongShape()
    {
        using var scope = NewDisposeScope();
        using var model = (ImageClassifier)ModelZoo.Create("mnistfc", new ModelOptions());
        var error = Assert.Throws<ArgumentException>(() => model.call(randn(4, 3, 32, 32)));
        Assert.Contains("(N, 1, 28, 28)", error.Message);
        Assert.Throws<ArgumentException>(() => model.call(randn(4, 784)));
    }

    [Fact]
    public void LanguageModelRejectsBadTokensAndStates()
    {
        using var scope = NewDisposeScope();
        using var model = (LstmLanguageModel)ModelZoo.Create("ptb-lstm", new ModelOptions { VocabularySize = 10, HiddenSize = 4 });
        Assert.Contains("vocabulary of 10", Assert.Throws<ArgumentException>(() => model.Forward(tensor(new long[,] { { 3, 10 } }), null)).Message);
        Assert.Contains("from -1", Assert.Throws<ArgumentException>(() => model.Forward(tensor(new long[,] { { -1, 2 } }), null)).Message);
        Assert.Contains("Int64", Assert.Throws<ArgumentException>(() => model.Forward(tensor(new float[,] { { 1, 2 } }), null)).Message);
        Assert.Throws<ArgumentException>(() => model.Forward(tensor(new long[] { 1, 2 }), null));
        using var wrongBatch = new RecurrentState(zeros(2, 3, 4), zeros(2, 3, 4));
        Assert.Contains("(2, 1, 4)", Assert.Throws<ArgumentException>(() => model.Forward(tensor(new long[,] { { 1, 2 } }), wrongBatch)).Message);
    }
}
