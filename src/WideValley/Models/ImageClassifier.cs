using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// Base of the zoo's image classifiers: a <see cref="Sequential"/> body from images (N, C, S, S) to logits
/// (N, classes), with one input-dropout layer in front and any number of hidden-dropout layers inside, all of which
/// <see cref="SetDropout"/> adjusts together.
/// </summary>
public abstract class ImageClassifier : nn.Module<Tensor, Tensor>, IHasDropout
{
    // The only registered child: parameters, buffers and train/eval all reach the layers through it.
    private readonly Sequential body;
    // References into the body, kept in arrays (not Module fields) so RegisterComponents does not register them twice.
    private readonly Dropout[] inputDropoutLayer;
    private readonly Dropout[] hiddenDropoutLayers;

    private protected ImageClassifier(string zooName, int inputChannels, int imageSize, int numClasses, LayerStack layers)
        : base(zooName)
    {
        ZooName = zooName;
        InputChannels = inputChannels;
        ImageSize = imageSize;
        NumClasses = numClasses;
        body = nn.Sequential(layers.Layers);
        inputDropoutLayer = [layers.InputDropoutLayer];
        hiddenDropoutLayers = [.. layers.HiddenDropoutLayers];
        RegisterComponents();
    }

    /// <summary>The name under which <see cref="ModelZoo"/> builds this network.</summary>
    public string ZooName { get; }

    /// <summary>Channels the network was built for.</summary>
    public int InputChannels { get; }

    /// <summary>Height and width the network was built for.</summary>
    public int ImageSize { get; }

    /// <summary>Number of logits per example.</summary>
    public int NumClasses { get; }

    /// <inheritdoc />
    public double HiddenDropout => hiddenDropoutLayers.Length == 0 ? 0 : hiddenDropoutLayers[0].p;

    /// <inheritdoc />
    public double InputDropout => inputDropoutLayer[0].p;

    /// <summary>Number of hidden dropout layers (all share <see cref="HiddenDropout"/>).</summary>
    public int HiddenDropoutLayerCount => hiddenDropoutLayers.Length;

    /// <inheritdoc />
    public void SetDropout(double? hidden, double? input)
    {
        if (hidden is { } h) ModelZoo.CheckDropout(h, "hidden dropout", ZooName);
        if (input is { } i) ModelZoo.CheckDropout(i, "input dropout", ZooName);
        if (hidden is { } newHidden)
            foreach (var layer in hiddenDropoutLayers) layer.p = newHidden;
        if (input is { } newInput) inputDropoutLayer[0].p = newInput;
    }

    /// <summary>Maps images (N, C, S, S) of a floating type to logits (N, classes).</summary>
    public override Tensor forward(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != InputChannels || images.shape[2] != ImageSize || images.shape[3] != ImageSize)
            throw new ArgumentException(
                $"{ZooName} was built for images (N, {InputChannels}, {ImageSize}, {ImageSize}) but got ({string.Join(", ", images.shape)}); " +
                "set ModelOptions.InputChannels and ImageSize to match the data.", nameof(images));
        using var scope = NewDisposeScope();
        return body.call(images).MoveToOuterDisposeScope();
    }
}

/// <summary>Collects a classifier's layers in order and remembers which of them are dropout layers.</summary>
internal sealed class LayerStack
{
    private readonly List<(string Name, nn.Module<Tensor, Tensor> Layer)> layers = [];
    private readonly List<Dropout> hiddenDropoutLayers = [];

    /// <summary>Every classifier starts with an input-dropout layer, so the InputDropout option always has a place.</summary>
    public LayerStack(double inputDropout)
    {
        InputDropoutLayer = nn.Dropout(inputDropout);
        layers.Add(("input_dropout", InputDropoutLayer));
    }

    public Dropout InputDropoutLayer { get; }
    public IReadOnlyList<Dropout> HiddenDropoutLayers => hiddenDropoutLayers;
    public IEnumerable<(string name, nn.Module<Tensor, Tensor> submodule)> Layers => layers;

    public LayerStack Add(string name, nn.Module<Tensor, Tensor> layer)
    {
        layers.Add((name, layer));
        return this;
    }

    public LayerStack AddHiddenDropout(string name, double probability)
    {
        var layer = nn.Dropout(probability);
        hiddenDropoutLayers.Add(layer);
        return Add(name, layer);
    }
}

/// <summary>
/// Output sizes of convolutions and poolings (floor division, as in PyTorch), used to validate image sizes and to size
/// the first fully connected layer. 0 means the window no longer fits: the image is too small for the architecture.
/// </summary>
internal static class SpatialSize
{
    public static int AfterConv(int size, int kernel, int stride = 1, int padding = 0) =>
        size + 2 * padding < kernel ? 0 : (size + 2 * padding - kernel) / stride + 1;

    public static int AfterPool(int size, int kernel, int stride) => AfterConv(size, kernel, stride);

    /// <summary>The smallest image size for which <paramref name="featureMapSize"/> is positive.</summary>
    public static int SmallestValidImage(Func<int, int> featureMapSize)
    {
        var size = 1;
        while (featureMapSize(size) < 1) size++;
        return size;
    }
}
