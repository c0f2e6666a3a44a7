using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// The HTR authors' LeNet (<c>yashkhasbage25/HTR</c>, <c>Regularization/models/cifar/network.py</c>, class
/// <c>Network.LeNet</c>, HEAD 192718f): conv 6@5x5, ReLU, max-pool 2; conv 16@5x5, ReLU, max-pool 2; fc 120, ReLU;
/// fc 84, ReLU; fc K. No BatchNorm, no dropout (the dropout options exist for the zoo's uniformity and default to 0).
/// The authors pad 28x28 images with black to 32x32 (<c>transforms.Pad(2)</c> before <c>Normalize</c>); here the
/// first convolution zero-pads by (32 − S)/2 instead (2 for 28x28, 0 for 32x32), which is the same computation when a
/// black pixel is 0 (<c>--scaling unit</c>, pixels x/255). With 28x28 or 32x32 images the feature map is 16x5x5 and
/// the network has 61,706 parameters with 10 classes (156 + 2,416 + 48,120 + 10,164 + 850). Parameter order:
/// conv1, conv2, fc1, fc2, fc3 (weight then bias), the order HTR's middle mask numbers.
/// </summary>
public sealed class LeNet5 : ImageClassifier
{
    /// <summary>The authors' padded image size: images smaller than this are padded up to it.</summary>
    public const int PaddedImageSize = 32;

    internal LeNet5(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.LeNet5Name, inputChannels, imageSize, numClasses, Layers(inputChannels, imageSize, numClasses, dropout, inputDropout))
    {
    }

    /// <summary>
    /// The zero padding of the first convolution: (32 − S)/2 for images smaller than 32x32 (the authors' pad to
    /// 32x32), 0 otherwise.
    /// </summary>
    /// <exception cref="ArgumentException">An image smaller than 32x32 whose shortfall is odd (the authors' symmetric pad cannot reach 32).</exception>
    public static int FirstPadding(int imageSize)
    {
        if (imageSize >= PaddedImageSize) return 0;
        if ((PaddedImageSize - imageSize) % 2 != 0)
            throw new ArgumentException(
                $"lenet5 pads images symmetrically to {PaddedImageSize}x{PaddedImageSize}, as the HTR authors' transforms do; " +
                $"an image of {imageSize}x{imageSize} would need an odd total padding. Use an even size (28 is padded by 2).");
        return (PaddedImageSize - imageSize) / 2;
    }

    /// <summary>Height (= width) of the last feature map; 0 when the image is too small.</summary>
    internal static int FeatureMapSize(int imageSize)
    {
        var padding = imageSize >= PaddedImageSize || (PaddedImageSize - imageSize) % 2 != 0 ? 0 : (PaddedImageSize - imageSize) / 2;
        return SpatialSize.AfterPool(SpatialSize.AfterConv(SpatialSize.AfterPool(SpatialSize.AfterConv(imageSize, 5, padding: padding), 2, 2), 5), 2, 2);
    }

    private static LayerStack Layers(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
    {
        var padding = FirstPadding(imageSize);
        var featureMap = FeatureMapSize(imageSize);
        return new LayerStack(inputDropout)
            .Add("conv1", nn.Conv2d(inputChannels, 6, 5, padding: padding))
            .Add("relu1", nn.ReLU())
            .Add("pool1", nn.MaxPool2d(2, 2))
            .AddHiddenDropout("dropout1", dropout)
            .Add("conv2", nn.Conv2d(6, 16, 5))
            .Add("relu2", nn.ReLU())
            .Add("pool2", nn.MaxPool2d(2, 2))
            .AddHiddenDropout("dropout2", dropout)
            .Add("flatten", nn.Flatten())
            .Add("fc1", nn.Linear(16 * featureMap * featureMap, 120))
            .Add("relu3", nn.ReLU())
            .AddHiddenDropout("dropout3", dropout)
            .Add("fc2", nn.Linear(120, 84))
            .Add("relu4", nn.ReLU())
            .AddHiddenDropout("dropout4", dropout)
            .Add("fc3", nn.Linear(84, numClasses));
    }
}
