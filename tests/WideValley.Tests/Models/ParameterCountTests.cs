using WideValley.Models;
using static WideValley.Tests.Models.ModelTestHelpers;

namespace WideValley.Tests.Models;

/// <summary>Parameter counts computed by hand from the layer shapes, and the paper's stated counts.</summary>
public class ParameterCountTests
{
    private static long Linear(long input, long output, bool bias = true) => input * output + (bias ? output : 0);
    private static long Conv(long input, long output, long kernel) => input * output * kernel * kernel + output;
    private static long BatchNorm(long features) => 2 * features;   // weight and bias; running statistics are buffers

    private static long Count(string name, ModelOptions options)
    {
        using var model = ModelZoo.Create(name, options);
        return ModelZoo.CountParameters(model);
    }

    [Fact]
    public void SmallLeNetHasThePapers47658Parameters()
    {
        var byHand = Conv(1, 10, 5) + Conv(10, 20, 5) + Linear(20 * 4 * 4, 128) + Linear(128, 10);
        Assert.Equal(47_658, byHand);
        Assert.Equal(byHand, Count("small-lenet", MnistOptions));
    }

    [Fact]
    public void SmallMnistFcHasThePapers50890Parameters()
    {
        var byHand = Linear(784, 64) + Linear(64, 10);
        Assert.Equal(50_890, byHand);
        Assert.Equal(byHand, Count("small-mnistfc", MnistOptions));
    }

    [Fact]
    public void SmallCharLstmHasThePapers32640ParametersWith96Characters()
    {
        var byHand = LstmLayerParameters(96, 48) + Linear(48, 96, bias: false);
        Assert.Equal(32_640, byHand);
        Assert.Equal(byHand, Count("small-char-lstm", new ModelOptions { VocabularySize = 96 }));
    }

    [Fact]
    public void AllCnnBnHas1667166Parameters()
    {
        long ConvBn(long input, long output, long kernel) => Conv(input, output, kernel) + BatchNorm(output);
        var byHand = ConvBn(3, 96, 3) + 2 * ConvBn(96, 96, 3)
                     + ConvBn(96, 192, 3) + 2 * ConvBn(192, 192, 3)
                     + 2 * ConvBn(192, 192, 3) + ConvBn(192, 10, 1);
        Assert.Equal(1_667_166, byHand);
        var measured = Count("allcnn", CifarOptions);
        Assert.Equal(byHand, measured);
        Assert.InRange(measured, 1_550_000, 1_700_000);   // the paper's "about 1.6 million"
    }

    [Fact]
    public void MnistFcParameterCount()
    {
        var byHand = Linear(784, 1024) + BatchNorm(1024) + Linear(1024, 1024) + BatchNorm(1024) + Linear(1024, 10);
        Assert.Equal(1_867_786, byHand);
        Assert.Equal(byHand, Count("mnistfc", MnistOptions));
    }

    [Fact]
    public void LeNetBnParameterCount()
    {
        var byHand = Conv(1, 20, 5) + BatchNorm(20) + Conv(20, 50, 5) + BatchNorm(50)
                     + Linear(50 * 2 * 2, 500) + BatchNorm(500) + Linear(500, 10);
        Assert.Equal(132_220, byHand);
        Assert.Equal(byHand, Count("lenet", MnistOptions));
    }

    [Fact]
    public void CharLstmParameterCountMatchesOneHotLstm()
    {
        // One-hot input: the first layer's input weights are V x 4H, exactly as char-rnn's.
        var byHand = LstmLayerParameters(87, 128) + LstmLayerParameters(128, 128) + Linear(128, 87);
        Assert.Equal(254_423, byHand);
        Assert.Equal(byHand, Count("char-lstm", new ModelOptions { VocabularySize = 87 }));
    }

    [Fact]
    public void FbMnistCnnHas3274634ParametersOnMnist()
    {
        // SAME convolutions keep 28x28 and 14x14; two poolings leave 64 x 7 x 7 = 3,136 features.
        var byHand = Conv(1, 32, 5) + Conv(32, 64, 5) + Linear(64 * 7 * 7, 1024) + Linear(1024, 10);
        Assert.Equal(3_274_634, byHand);
        Assert.Equal(byHand, Count("fb-mnist-cnn", MnistOptions));
    }

    [Fact]
    public void PtbSmallLstmHas4653200ParametersOnPtb()
    {
        var byHand = PtbLstmByFormula(10_000, 200, 2);
        Assert.Equal(4_653_200, byHand);
        Assert.Equal(byHand, Count("ptb-small-lstm", new ModelOptions { VocabularySize = 10_000 }));
    }

    private static long PtbLstmByFormula(long vocabulary, long hidden, int layers) =>
        vocabulary * hidden                                                     // embedding
        + Enumerable.Range(0, layers).Sum(_ => LstmLayerParameters(hidden, hidden))
        + Linear(hidden, vocabulary);

    [Fact]
    public void PtbLstmFormulaHoldsForASmallBuild()
    {
        var options = new ModelOptions { VocabularySize = 37, HiddenSize = 11, Layers = 3 };
        Assert.Equal(PtbLstmByFormula(37, 11, 3), Count("ptb-lstm", options));
    }

    [Fact]
    public void FullSizePtbLstmHasAbout66MillionParameters()
    {
        var byFormula = PtbLstmByFormula(10_000, 1500, 2);
        Assert.Equal(66_034_000, byFormula);
        // Built once at full size (~264 MB of float32, freed on return) to prove the formula on the real thing.
        var measured = Count("ptb-lstm", new ModelOptions { VocabularySize = 10_000 });
        Assert.Equal(byFormula, measured);
        Assert.InRange(measured, 65_000_000, 67_000_000);
    }
}
