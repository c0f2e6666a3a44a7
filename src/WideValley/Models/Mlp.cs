using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>The hidden-layer nonlinearity of an <see cref="Mlp"/>.</summary>
public enum MlpActivation
{
    /// <summary>The logistic sigmoid 1 / (1 + e^-x).</summary>
    Sigmoid,
    /// <summary>max(0, x).</summary>
    Relu,
    /// <summary>The two-slope <see cref="GeneralizedRelu"/> (defaults a = 1, b = 0.1).</summary>
    GeneralizedRelu,
}

/// <summary>
/// A fully connected classifier: flatten, then for each hidden width a Linear layer and the activation (and hidden
/// dropout when asked), then a Linear layer to the logits. No normalisation layers, so every Linear layer is one
/// DANTE block (weight + bias). Weights take TorchSharp's default (PyTorch's) initialisation. The zoo holds the DANTE
/// reproduction's networks (<see cref="ZooVariants"/>): one and two hidden layers of <see cref="ZooWidth"/> units with
/// each activation.
/// </summary>
public sealed class Mlp : ImageClassifier
{
    /// <summary>Hidden units per layer of the zoo's MLPs (ours: the DANTE abstract gives no architecture).</summary>
    public const int ZooWidth = 100;

    /// <summary>
    /// An MLP on images (N, <paramref name="inputChannels"/>, <paramref name="imageSize"/>, <paramref name="imageSize"/>).
    /// </summary>
    /// <param name="zooName">The name reported by <see cref="ImageClassifier.ZooName"/> (e.g. "mlp1-relu", or any label).</param>
    /// <param name="inputChannels">Channels of the input images.</param>
    /// <param name="imageSize">Height and width of the input images.</param>
    /// <param name="numClasses">Logits per example.</param>
    /// <param name="hiddenWidths">Units of each hidden layer, input side first (at least one layer, each at least 1).</param>
    /// <param name="activation">The hidden-layer nonlinearity.</param>
    /// <param name="dropout">Dropout after each hidden activation, in [0, 1).</param>
    /// <param name="inputDropout">Dropout on the input, in [0, 1).</param>
    /// <exception cref="ArgumentException">A bad size, width, activation or dropout.</exception>
    public Mlp(string zooName, int inputChannels, int imageSize, int numClasses, IReadOnlyList<int> hiddenWidths, MlpActivation activation,
        double dropout = 0, double inputDropout = 0)
        : base(zooName, inputChannels, imageSize, numClasses, Layers(zooName, inputChannels, imageSize, numClasses, hiddenWidths, activation, dropout, inputDropout))
    {
        HiddenWidths = [.. hiddenWidths];
        Activation = activation;
    }

    /// <summary>Units of each hidden layer, input side first.</summary>
    public IReadOnlyList<int> HiddenWidths { get; }

    /// <summary>The hidden-layer nonlinearity.</summary>
    public MlpActivation Activation { get; }

    static LayerStack Layers(string name, int inputChannels, int imageSize, int numClasses, IReadOnlyList<int>? widths, MlpActivation activation,
        double dropout, double inputDropout)
    {
        Check(name, inputChannels, imageSize, numClasses, widths, activation);
        ModelZoo.CheckDropout(dropout, "Dropout", name);
        ModelZoo.CheckDropout(inputDropout, "InputDropout", name);
        var stack = new LayerStack(inputDropout).Add("flatten", nn.Flatten());
        var inputs = inputChannels * imageSize * imageSize;
        for (var i = 0; i < widths!.Count; i++)
        {
            stack.Add($"fc{i + 1}", nn.Linear(inputs, widths[i]));
            stack.Add($"{Name(activation)}{i + 1}", activation switch
            {
                MlpActivation.Sigmoid => nn.Sigmoid(),
                MlpActivation.Relu => nn.ReLU(),
                _ => new GeneralizedRelu(),
            });
            stack.AddHiddenDropout($"dropout{i + 1}", dropout);
            inputs = widths[i];
        }
        return stack.Add($"fc{widths.Count + 1}", nn.Linear(inputs, numClasses));
    }

    static void Check(string name, int inputChannels, int imageSize, int numClasses, IReadOnlyList<int>? widths, MlpActivation activation)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (inputChannels < 1) throw new ArgumentException($"{name}: InputChannels must be positive; got {inputChannels}.");
        if (imageSize < 1) throw new ArgumentException($"{name}: ImageSize must be positive; got {imageSize}.");
        if (numClasses < 1) throw new ArgumentException($"{name}: NumClasses must be positive; got {numClasses}.");
        if (widths is null || widths.Count == 0) throw new ArgumentException($"{name}: an MLP needs at least one hidden layer; got none.");
        for (var i = 0; i < widths.Count; i++)
            if (widths[i] < 1) throw new ArgumentException($"{name}: hidden layer {i + 1} must have at least 1 unit; got {widths[i]}.");
        if (!Enum.IsDefined(activation)) throw new ArgumentException($"{name}: unknown activation {(int)activation}; expected sigmoid, relu or grelu.");
    }

    /// <summary>sigmoid, relu or grelu: the activation's name in zoo names and reports.</summary>
    public static string Name(MlpActivation activation) => activation switch
    {
        MlpActivation.Sigmoid => "sigmoid",
        MlpActivation.Relu => "relu",
        MlpActivation.GeneralizedRelu => "grelu",
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation"),
    };

    /// <summary>The parameter count (exact) and a rough count of the values kept per example for backward.</summary>
    public static ModelSizeEstimate EstimateSize(int inputChannels, int imageSize, int numClasses, IReadOnlyList<int> hiddenWidths)
    {
        ArgumentNullException.ThrowIfNull(hiddenWidths);
        Int128 inputs = (Int128)inputChannels * imageSize * imageSize;
        Int128 parameters = 0, activations = 2 * inputs + numClasses;
        var previous = inputs;
        foreach (var width in hiddenWidths)
        {
            parameters += previous * width + width;
            activations += 3 * (Int128)width;
            previous = width;
        }
        parameters += previous * numClasses + numClasses;
        return new ModelSizeEstimate(MemoryBudget.Saturate(parameters), MemoryBudget.Saturate(activations));
    }

    /// <summary>mlpD-ACT: D hidden layers (1 or 2) of <see cref="ZooWidth"/> units with activation ACT.</summary>
    public static string ZooNameOf(int hiddenLayers, MlpActivation activation) => $"mlp{hiddenLayers}-{Name(activation)}";

    /// <summary>One zoo network: its description, how to build it and its size.</summary>
    internal sealed record ZooVariant(ModelInfo Info, Func<ModelOptions, double, double, nn.Module> Build, Func<int, int, int, ModelSizeEstimate> Estimate);

    /// <summary>The zoo's MLPs: mlp1-* (784-100-10) and mlp2-* (784-100-100-10) with sigmoid, relu and grelu.</summary>
    internal static IEnumerable<ZooVariant> ZooVariants =>
        from depth in new[] { 1, 2 }
        from activation in Enum.GetValues<MlpActivation>()
        let widths = Enumerable.Repeat(ZooWidth, depth).ToArray()
        let name = ZooNameOf(depth, activation)
        select new ZooVariant(
            new ModelInfo(name, ModelKind.Classifier,
                $"{depth} hidden layer{(depth > 1 ? "s" : "")} of {ZooWidth} units with {Name(activation)}" +
                (activation == MlpActivation.GeneralizedRelu ? $" (x for x >= 0, {GeneralizedRelu.DefaultNegativeSlope} x below)" : "") +
                ", no normalisation, no dropout by default: the DANTE reproduction's networks (ours).",
                "Fashion-MNIST (DANTE, arXiv 1902.00491)", "images (N, C, S, S), floating point; 1x28x28 for Fashion-MNIST", 0, 0, true, false),
            (o, dropout, inputDropout) => new Mlp(name, o.InputChannels, o.ImageSize, o.NumClasses, widths, activation, dropout, inputDropout),
            (channels, size, classes) => EstimateSize(channels, size, classes, widths));
}
