using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// All-CNN-BN (paper Sec. 5.3; <c>allcnn</c> in ucla-vision/entropy-sgd python/models.py): input dropout 0.2;
/// three 3x3 conv-BN-ReLU blocks of 96 channels (the third with stride 2); dropout 0.5; three of 192 (the third with
/// stride 2); dropout 0.5; two 3x3 blocks of 192; a 1x1 block down to the classes; average pooling over the whole
/// final map (8x8 for 32x32 CIFAR-10 images, the reference's AvgPool2d(8)). 1,667,166 parameters on CIFAR-10.
/// This follows the reference code, which differs from Springenberg et al.'s All-CNN-C: there the 7th conv is a
/// 3x3 without padding (6x6 map) and the 8th is a 1x1 conv, where the reference (and this) use two padded 3x3 convs.
/// </summary>
public sealed class AllCnnBn : ImageClassifier
{
    internal const double DefaultDropout = 0.5;
    internal const double DefaultInputDropout = 0.2;
    private const int NarrowChannels = 96;
    private const int WideChannels = 192;

    internal AllCnnBn(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.AllCnnName, inputChannels, imageSize, numClasses, Layers(inputChannels, imageSize, numClasses, dropout, inputDropout))
    {
    }

    /// <summary>Height (= width) of the map before pooling: the two stride-2 convs halve it twice (rounding up).</summary>
    internal static int FeatureMapSize(int imageSize) =>
        SpatialSize.AfterConv(SpatialSize.AfterConv(imageSize, 3, stride: 2, padding: 1), 3, stride: 2, padding: 1);

    private static LayerStack Layers(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
    {
        var stack = new LayerStack(inputDropout);
        var block = 0;
        void ConvBnRelu(int inChannels, int outChannels, int kernel, int stride, int padding)
        {
            block++;
            stack.Add($"conv{block}", nn.Conv2d(inChannels, outChannels, kernel, stride: stride, padding: padding))
                 .Add($"bn{block}", nn.BatchNorm2d(outChannels))
                 .Add($"relu{block}", nn.ReLU());
        }

        ConvBnRelu(inputChannels, NarrowChannels, 3, 1, 1);
        ConvBnRelu(NarrowChannels, NarrowChannels, 3, 1, 1);
        ConvBnRelu(NarrowChannels, NarrowChannels, 3, 2, 1);
        stack.AddHiddenDropout("dropout1", dropout);
        ConvBnRelu(NarrowChannels, WideChannels, 3, 1, 1);
        ConvBnRelu(WideChannels, WideChannels, 3, 1, 1);
        ConvBnRelu(WideChannels, WideChannels, 3, 2, 1);
        stack.AddHiddenDropout("dropout2", dropout);
        ConvBnRelu(WideChannels, WideChannels, 3, 1, 1);
        ConvBnRelu(WideChannels, WideChannels, 3, 1, 1);
        ConvBnRelu(WideChannels, numClasses, 1, 1, 0);
        var featureMap = FeatureMapSize(imageSize);
        return stack.Add("pool", nn.AvgPool2d(featureMap))
                    .Add("flatten", nn.Flatten());
    }
}
