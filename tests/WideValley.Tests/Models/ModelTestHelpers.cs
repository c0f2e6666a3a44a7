using TorchSharp;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.Tests.Models;

internal static class ModelTestHelpers
{
    public static ModelOptions MnistOptions => new();
    public static ModelOptions CifarOptions => new() { InputChannels = 3, ImageSize = 32 };

    /// <summary>Image options the paper uses for each classifier.</summary>
    public static ModelOptions PaperImageOptions(string name) => name == "allcnn" ? CifarOptions : MnistOptions;

    public static Tensor RandomImages(ModelOptions options, int batch = 4) =>
        randn(batch, options.InputChannels, options.ImageSize, options.ImageSize);

    public static Tensor RandomTokens(int vocabulary, int batch, int time) => randint(0, vocabulary, [batch, time], dtype: ScalarType.Int64);

    /// <summary>Parameters of a single-direction LSTM layer with PyTorch's two bias vectors.</summary>
    public static long LstmLayerParameters(long input, long hidden) => 4 * hidden * (input + hidden) + 2 * 4 * hidden;

    /// <summary>Every parameter received a finite gradient, and the gradients are not all zero.</summary>
    public static void AssertFiniteGradients(nn.Module model)
    {
        var anyNonZero = false;
        foreach (var (name, parameter) in model.named_parameters())
        {
            var gradient = parameter.grad;
            Assert.True(gradient is not null, $"{name} has no gradient");
            Assert.True(gradient!.isfinite().all().item<bool>(), $"{name} has a non-finite gradient");
            anyNonZero |= gradient.abs().max().item<float>() > 0;
        }
        Assert.True(anyNonZero, "all gradients are zero");
    }

    public static float MaxAbsDifference(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
