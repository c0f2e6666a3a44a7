using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// Factories that build a fresh, untrained network of the same architecture as a network of the zoo, for the model
/// copies of the landscape measurements (<c>LandscapeOptions.ModelFactory</c>: a float64 copy, parallel workers).
/// The landscape toolkit never reaches into the zoo itself: a user's own model comes with the user's own factory.
/// </summary>
public static class ZooCopies
{
    /// <summary>
    /// A factory for <paramref name="model"/>'s architecture (its zoo name, input shape, classes, sizes and dropout
    /// rates), or null when the model is not from the zoo.
    /// </summary>
    public static Func<nn.Module<Tensor, Tensor>>? FactoryFor(nn.Module<Tensor, Tensor> model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model switch
        {
            ImageClassifier classifier => () => (nn.Module<Tensor, Tensor>)ModelZoo.Create(classifier.ZooName, new ModelOptions
            {
                InputChannels = classifier.InputChannels,
                ImageSize = classifier.ImageSize,
                NumClasses = classifier.NumClasses,
                Dropout = classifier.HiddenDropout,
                InputDropout = classifier.InputDropout,
            }),
            LstmLanguageModel language => () => (nn.Module<Tensor, Tensor>)ModelZoo.Create(language.ZooName, new ModelOptions
            {
                VocabularySize = language.VocabularySize,
                HiddenSize = language.HiddenSize,
                Layers = language.LayerCount,
                Dropout = language.HiddenDropout,
                InputDropout = language.InputDropout,
            }),
            _ => null,
        };
    }
}
