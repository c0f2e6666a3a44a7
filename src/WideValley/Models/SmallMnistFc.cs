using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// small-mnistfc (paper Sec. 5.1, Hessian experiments): 784-64-10 with ReLU, 50,890 parameters.
/// The paper's text says "one layer of 32 hidden units", but 784-32-10 has only 25,450 parameters, contradicting its
/// own count of 50,890; 64 hidden units give exactly 50,890 (784*64 + 64 + 64*10 + 10), so this uses 64.
/// No dropout by default; a dropout option adds it after the hidden layer (and on the input).
/// </summary>
public sealed class SmallMnistFc : ImageClassifier
{
    /// <summary>Hidden units: 64, the width that matches the paper's parameter count (see the type's remarks).</summary>
    public const int HiddenUnits = 64;

    internal SmallMnistFc(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.SmallMnistFcName, inputChannels, imageSize, numClasses, Layers(inputChannels * imageSize * imageSize, numClasses, dropout, inputDropout))
    {
    }

    private static LayerStack Layers(int inputFeatures, int numClasses, double dropout, double inputDropout) =>
        new LayerStack(inputDropout)
            .Add("flatten", nn.Flatten())
            .Add("fc1", nn.Linear(inputFeatures, HiddenUnits))
            .Add("relu1", nn.ReLU())
            .AddHiddenDropout("dropout1", dropout)
            .Add("fc2", nn.Linear(HiddenUnits, numClasses));
}
