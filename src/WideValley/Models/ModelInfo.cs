namespace WideValley.Models;

/// <summary>Whether a network maps images to class logits or token sequences to next-token logits.</summary>
public enum ModelKind
{
    /// <summary>An <c>nn.Module&lt;Tensor, Tensor&gt;</c> from images (N, C, H, W) to logits (N, classes).</summary>
    Classifier,

    /// <summary>An <see cref="IRecurrentLanguageModel"/> from tokens (B, T) to logits (B, T, V) plus LSTM state.</summary>
    LanguageModel,
}

/// <summary>What <see cref="ModelZoo.Describe"/> reports about one network of the zoo.</summary>
/// <param name="Name">The zoo name, e.g. <c>lenet</c>.</param>
/// <param name="Kind">Classifier or language model.</param>
/// <param name="Description">One line: architecture and where it comes from.</param>
/// <param name="PaperDataset">The data set the paper trains this network on.</param>
/// <param name="InputShape">What <c>forward</c> expects, with the paper's sizes.</param>
/// <param name="DefaultDropout">The main (hidden) dropout used when <see cref="ModelOptions.Dropout"/> is null.</param>
/// <param name="DefaultInputDropout">The input dropout used when <see cref="ModelOptions.InputDropout"/> is null.</param>
/// <param name="SupportsInputDropout">
/// False for the character LSTMs: their input is a one-hot character, where dropout has no sensible meaning, so a
/// non-zero <see cref="ModelOptions.InputDropout"/> is rejected.
/// </param>
/// <param name="InputDropoutFollowsDropout">
/// True for ptb-lstm: Zaremba et al. use one probability for every non-recurrent connection, so when only
/// <see cref="ModelOptions.Dropout"/> is given the input (embedding) dropout takes the same value.
/// </param>
public sealed record ModelInfo(
    string Name,
    ModelKind Kind,
    string Description,
    string PaperDataset,
    string InputShape,
    double DefaultDropout,
    double DefaultInputDropout,
    bool SupportsInputDropout,
    bool InputDropoutFollowsDropout);
