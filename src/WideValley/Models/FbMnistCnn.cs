using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// The MNIST network of Freeman and Bruna (ICLR 2017), from their code (FB-CODE, <c>LaunchScripts/MNIST.py</c>, the
/// TensorFlow "Deep MNIST for experts" tutorial network): conv 32@5x5 with SAME padding, ReLU, max-pool 2; conv
/// 64@5x5 SAME, ReLU, max-pool 2; fc 1024, ReLU, dropout 0.5; fc 10 (logits). Weights drawn from a normal of standard
/// deviation 0.1 truncated at two standard deviations (TensorFlow's <c>truncated_normal</c>), biases 0.1, as the
/// tutorial. 3,274,634 parameters on MNIST (832 + 51,264 + 3,212,288 + 10,250). No input dropout by default.
/// </summary>
/// <remarks>
/// The authors' script applies the cross-entropy to softmax outputs (a softmax taken twice); that quirk is not
/// reproduced: this network returns logits and the trainer's usual cross-entropy on logits applies. The image size must
/// be divisible by 4, so that both poolings halve it exactly (TensorFlow's SAME pooling would round odd sizes up where
/// PyTorch's rounds down).
/// </remarks>
public sealed class FbMnistCnn : ImageClassifier
{
    internal const double DefaultDropout = 0.5;
    /// <summary>Standard deviation of the truncated-normal weight initialisation (the TF tutorial's).</summary>
    internal const double WeightStd = 0.1;
    /// <summary>Initial value of every bias (the TF tutorial's).</summary>
    internal const double InitialBias = 0.1;
    internal const int Conv1Channels = 32, Conv2Channels = 64, Kernel = 5, Hidden = 1024;

    internal FbMnistCnn(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
        : base(ModelZoo.FbMnistCnnName, inputChannels, imageSize, numClasses, Layers(inputChannels, imageSize, numClasses, dropout, inputDropout))
    {
    }

    /// <summary>Height (= width) of the last feature map: a quarter of the image (SAME convolutions, two 2x2 poolings).</summary>
    internal static int FeatureMapSize(int imageSize) => imageSize / 4;

    /// <summary>Refuses an image size the two exact halvings cannot take.</summary>
    /// <exception cref="ArgumentException">The size is not a positive multiple of 4.</exception>
    internal static void CheckImageSize(int imageSize)
    {
        if (imageSize < 4 || imageSize % 4 != 0)
            throw new ArgumentException(
                $"{ModelZoo.FbMnistCnnName} needs an image size divisible by 4 (two 2x2 max-poolings after SAME convolutions; " +
                $"MNIST is 28x28); got ImageSize = {imageSize}.");
    }

    private static LayerStack Layers(int inputChannels, int imageSize, int numClasses, double dropout, double inputDropout)
    {
        CheckImageSize(imageSize);
        var featureMap = FeatureMapSize(imageSize);
        return new LayerStack(inputDropout)
            .Add("conv1", Initialised(nn.Conv2d(inputChannels, Conv1Channels, Kernel, padding: Kernel / 2)))
            .Add("relu1", nn.ReLU())
            .Add("pool1", nn.MaxPool2d(2, 2))
            .Add("conv2", Initialised(nn.Conv2d(Conv1Channels, Conv2Channels, Kernel, padding: Kernel / 2)))
            .Add("relu2", nn.ReLU())
            .Add("pool2", nn.MaxPool2d(2, 2))
            .Add("flatten", nn.Flatten())
            .Add("fc3", Initialised(nn.Linear(Conv2Channels * featureMap * featureMap, Hidden)))
            .Add("relu3", nn.ReLU())
            .AddHiddenDropout("dropout3", dropout)
            .Add("fc4", Initialised(nn.Linear(Hidden, numClasses)));
    }

    private static T Initialised<T>(T layer) where T : nn.Module<Tensor, Tensor>
    {
        var (weight, bias) = layer switch
        {
            Conv2d conv => (conv.weight!, conv.bias!),
            Linear linear => (linear.weight!, linear.bias!),
            _ => throw new InvalidOperationException($"no initialisation rule for {layer.GetType().Name}"),
        };
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // TensorFlow's truncated_normal: draws beyond two standard deviations are drawn again (written out here because
        // TorchSharp 0.107's nn.init.trunc_normal_ left conv1's weights within +-0.1 for a = -0.2, b = 0.2).
        nn.init.normal_(weight, 0, WeightStd);
        while (true)
        {
            var inside = weight.abs().LessThan(2 * WeightStd);
            if (inside.all().item<bool>()) break;
            weight.copy_(where(inside, weight, randn_like(weight).Scale_(WeightStd)));
        }
        using var value = InitialBias.ToScalar();
        bias.fill_(value);
        return layer;
    }
}
