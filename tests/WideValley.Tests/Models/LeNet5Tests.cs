using TorchSharp;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Models;

/// <summary>
/// The HTR authors' LeNet (zoo name lenet5) against their network.py, worked out by hand: conv 6@5x5 on the image
/// padded to 32x32, pool 2, conv 16@5x5, pool 2, fc 400-120-84-10.
/// </summary>
public class LeNet5Tests
{
    static long Conv(long input, long output, long kernel) => input * output * kernel * kernel + output;
    static long Linear(long input, long output) => input * output + output;

    [Fact]
    public void ParameterCountIsTheAuthorsArchitectureByHand()
    {
        // 32x32 -> conv 5 -> 28 -> pool -> 14 -> conv 5 -> 10 -> pool -> 5: a 16x5x5 = 400 feature map.
        var byHand = Conv(1, 6, 5) + Conv(6, 16, 5) + Linear(16 * 5 * 5, 120) + Linear(120, 84) + Linear(84, 10);
        Assert.Equal(61_706, byHand);
        using var model = ModelZoo.Create("lenet5", new ModelOptions());
        Assert.Equal(byHand, ModelZoo.CountParameters(model));
        Assert.Equal(byHand, ModelZoo.EstimateSize("lenet5", new ModelOptions()).Parameters);
        // 3-channel 32x32 (CIFAR-10, not padded): conv1 gains two input channels' weights.
        var cifar = new ModelOptions { InputChannels = 3, ImageSize = 32 };
        using var colour = ModelZoo.Create("lenet5", cifar);
        Assert.Equal(byHand + 2 * 6 * 25, ModelZoo.CountParameters(colour));
        Assert.Equal(byHand + 2 * 6 * 25, ModelZoo.EstimateSize("lenet5", cifar).Parameters);
    }

    [Fact]
    public void NamedParametersAreInTheAuthorsOrderSoHtrsMiddleMaskKeepsConv2Fc1Fc2()
    {
        using var model = ModelZoo.Create("lenet5", new ModelOptions());
        var named = model.named_parameters().Select(p => (p.name, Shape: string.Join("x", p.parameter.shape))).ToList();
        (string, string)[] expected =
        [
            ("body.conv1.weight", "6x1x5x5"), ("body.conv1.bias", "6"),
            ("body.conv2.weight", "16x6x5x5"), ("body.conv2.bias", "16"),
            ("body.fc1.weight", "120x400"), ("body.fc1.bias", "120"),
            ("body.fc2.weight", "84x120"), ("body.fc2.bias", "84"),
            ("body.fc3.weight", "10x84"), ("body.fc3.bias", "10"),
        ];
        Assert.Equal(expected, named);
        var middle = HessianTraceParameters.AuthorsMiddle.Select(model).Select(p => p.Name).ToArray();
        Assert.Equal(["body.conv2.weight", "body.conv2.bias", "body.fc1.weight", "body.fc1.bias", "body.fc2.weight", "body.fc2.bias"], middle);
    }

    [Fact]
    public void ForwardMatchesTheAuthorsPadThenConvolveComputationWrittenOutWithFunctionalOps()
    {
        torch.manual_seed(3);
        using var model = ModelZoo.Create("lenet5", new ModelOptions());
        model.eval();
        var p = model.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        var images = rand(5, 1, 28, 28);
        // The authors: Pad(2) on the image (black = 0 in unit scaling), then an unpadded conv stack.
        var x = nn.functional.pad(images, [2, 2, 2, 2]);
        x = nn.functional.max_pool2d(nn.functional.relu(nn.functional.conv2d(x, p["body.conv1.weight"], p["body.conv1.bias"])), 2);
        Assert.Equal([5L, 6, 14, 14], x.shape);
        x = nn.functional.max_pool2d(nn.functional.relu(nn.functional.conv2d(x, p["body.conv2.weight"], p["body.conv2.bias"])), 2);
        Assert.Equal([5L, 16, 5, 5], x.shape);
        x = x.view(5, -1);
        x = nn.functional.relu(nn.functional.linear(x, p["body.fc1.weight"], p["body.fc1.bias"]));
        x = nn.functional.relu(nn.functional.linear(x, p["body.fc2.weight"], p["body.fc2.bias"]));
        x = nn.functional.linear(x, p["body.fc3.weight"], p["body.fc3.bias"]);
        using var logits = ((nn.Module<Tensor, Tensor>)model).call(images);
        Assert.Equal([5L, 10], logits.shape);
        Assert.True(logits.allclose(x, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void PaddingReaches32AndOddShortfallsAreRefused()
    {
        Assert.Equal(2, LeNet5.FirstPadding(28));
        Assert.Equal(0, LeNet5.FirstPadding(32));
        Assert.Equal(0, LeNet5.FirstPadding(40));
        var e = Assert.Throws<ArgumentException>(() => ModelZoo.Create("lenet5", new ModelOptions { ImageSize = 27 }));
        Assert.Contains("odd total padding", e.Message);
        Assert.Throws<ArgumentException>(() => ModelZoo.EstimateSize("lenet5", new ModelOptions { ImageSize = 27 }));
        // 40x40 is not padded: (40-4)/2 = 18 -> 14 -> 7, a 16x7x7 feature map.
        using var large = ModelZoo.Create("lenet5", new ModelOptions { ImageSize = 40 });
        Assert.Equal(Conv(1, 6, 5) + Conv(6, 16, 5) + Linear(16 * 7 * 7, 120) + Linear(120, 84) + Linear(84, 10), ModelZoo.CountParameters(large));
    }
}
