namespace WideValley.Models;

/// <summary>
/// Construction options for <see cref="ModelZoo.Create"/>. Nullable members mean "use the model's default" (see
/// <see cref="ModelZoo.Describe"/>); options that a model cannot use are rejected rather than silently ignored.
/// </summary>
public sealed record ModelOptions
{
    /// <summary>The model's main (hidden-layer) dropout probability in [0, 1); null = the model's default.</summary>
    public double? Dropout { get; init; }

    /// <summary>Dropout probability applied to the model's input in [0, 1); null = the model's default.</summary>
    public double? InputDropout { get; init; }

    /// <summary>Image models: channels of the input images (1 for MNIST, 3 for CIFAR-10).</summary>
    public int InputChannels { get; init; } = 1;

    /// <summary>Image models: height and width of the (square) input images.</summary>
    public int ImageSize { get; init; } = 28;

    /// <summary>Image models: number of output classes.</summary>
    public int NumClasses { get; init; } = 10;

    /// <summary>Language models: number of distinct tokens. Required for every language model.</summary>
    public int? VocabularySize { get; init; }

    /// <summary>Language models: LSTM hidden units per layer; null = the paper's size.</summary>
    public int? HiddenSize { get; init; }

    /// <summary>Language models: number of stacked LSTM layers; null = the paper's depth.</summary>
    public int? Layers { get; init; }
}
