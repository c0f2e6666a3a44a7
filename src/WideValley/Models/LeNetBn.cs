using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// LeNet-BN (paper Sec. 5.2; <c>mnistconv</c> in ucla-vision/entropy-sgd python/models.py): conv 20@5x5, BN, ReLU,
/// max-pool 3 (stride 3), dropout; conv 50@5x5, BN, ReLU, max-pool 2, dropout; fc 500, BN, ReLU, dropout; fc 10.
/// Dropout 0.5 everywhere by default and none on the input. A 28x28 image leaves a 50x2x2 = 200 feature map; other
/// sizes (at least 22x22) size the first fully connected layer accordingly. 132,220 parameters on MNIST.
/// </summary>
public sealed class LeNetBn : ImageClassifier
{
    internal const double DefaultDropout = 0.5;

    internal LeNetBn(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.LeNetName, inputChannels, imageSize, numClasses, Layers(inputChannels, imageSize, numClasses, dropout, inputDropout))
    {
    }

    /// <summary>Height (= width) of the last feature map; 0 when the image is too small.</summary>
    internal static int FeatureMapSize(int imageSize) =>
        SpatialSize.AfterPool(SpatialSize.AfterConv(SpatialSize.AfterPool(SpatialSize.AfterConv(imageSize, 5), 3, 3), 5), 2, 2);

    private static LayerStack Layers(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
    {
        var featureMap = FeatureMapSize(imageSize);
        return new LayerStack(inputDropout)
            .Add("conv1", nn.Conv2d(inputChannels, 20, 5))
            .Add("bn1", nn.BatchNorm2d(20))
            .Add("relu1", nn.ReLU())
            .Add("pool1", nn.MaxPool2d(3, 3))
            .AddHiddenDropout("dropout1", dropout)
            .Add("conv2", nn.Conv2d(20, 50, 5))
            .Add("bn2", nn.BatchNorm2d(50))
            .Add("relu2", nn.ReLU())
            .Add("pool2", nn.MaxPool2d(2, 2))
            .AddHiddenDropout("dropout2", dropout)
            .Add("flatten", nn.Flatten())
            .Add("fc3", nn.Linear(50 * featureMap * featureMap, 500))
            .Add("bn3", nn.BatchNorm1d(500))
            .Add("relu3", nn.ReLU())
            .AddHiddenDropout("dropout3", dropout)
            .Add("fc4", nn.Linear(500, numClasses));
    }
}
