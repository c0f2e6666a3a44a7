using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// mnistfc (paper Sec. 5.2): 784-1024-1024-10 with BatchNorm and ReLU, dropout 0.2 on the input and 0.5 after each
/// hidden layer, following <c>mnistfc</c> in ucla-vision/entropy-sgd python/models.py. With 1x28x28 inputs and
/// 10 classes it has 1,867,786 parameters.
/// </summary>
public sealed class MnistFc : ImageClassifier
{
    internal const int Width = 1024;
    internal const double DefaultDropout = 0.5;
    internal const double DefaultInputDropout = 0.2;

    internal MnistFc(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.MnistFcName, inputChannels, imageSize, numClasses, Layers(inputChannels * imageSize * imageSize, numClasses, dropout, inputDropout))
    {
    }

    private static LayerStack Layers(int inputFeatures, int numClasses, double dropout, double inputDropout) =>
        new LayerStack(inputDropout)
            .Add("flatten", nn.Flatten())
            .Add("fc1", nn.Linear(inputFeatures, Width))
            .Add("bn1", nn.BatchNorm1d(Width))
            .Add("relu1", nn.ReLU())
            .AddHiddenDropout("dropout1", dropout)
            .Add("fc2", nn.Linear(Width, Width))
            .Add("bn2", nn.BatchNorm1d(Width))
            .Add("relu2", nn.ReLU())
            .AddHiddenDropout("dropout2", dropout)
            .Add("fc3", nn.Linear(Width, numClasses));
}
