using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// small-LeNet (paper Sec. 5.1, Hessian experiments, Fig. 1): conv 10@5x5, ReLU, max-pool 2; conv 20@5x5, ReLU,
/// max-pool 2; fc 128, ReLU; fc 10. No BatchNorm. 47,658 parameters on MNIST
/// (260 + 5,020 + 41,088 + 1,290). No dropout by default; a dropout option places it where LeNet-BN has it
/// (after each pooling and after the hidden fully connected layer).
/// </summary>
public sealed class SmallLeNet : ImageClassifier
{
    internal SmallLeNet(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.SmallLeNetName, inputChannels, imageSize, numClasses, Layers(inputChannels, imageSize, numClasses, dropout, inputDropout))
    {
    }

    /// <summary>Height (= width) of the last feature map; 0 when the image is too small.</summary>
    internal static int FeatureMapSize(int imageSize) =>
        SpatialSize.AfterPool(SpatialSize.AfterConv(SpatialSize.AfterPool(SpatialSize.AfterConv(imageSize, 5), 2, 2), 5), 2, 2);

    private static LayerStack Layers(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
    {
        var featureMap = FeatureMapSize(imageSize);
        return new LayerStack(inputDropout)
            .Add("conv1", nn.Conv2d(inputChannels, 10, 5))
            .Add("relu1", nn.ReLU())
            .Add("pool1", nn.MaxPool2d(2, 2))
            .AddHiddenDropout("dropout1", dropout)
            .Add("conv2", nn.Conv2d(10, 20, 5))
            .Add("relu2", nn.ReLU())
            .Add("pool2", nn.MaxPool2d(2, 2))
            .AddHiddenDropout("dropout2", dropout)
            .Add("flatten", nn.Flatten())
            .Add("fc3", nn.Linear(20 * featureMap * featureMap, 128))
            .Add("relu3", nn.ReLU())
            .AddHiddenDropout("dropout3", dropout)
            .Add("fc4", nn.Linear(128, numClasses));
    }
}
