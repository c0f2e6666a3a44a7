namespace WideValley.Models;

/// <summary>
/// A network whose dropout probabilities can be read and changed after construction, e.g. by a trainer that
/// lowers dropout for Entropy-SGD as the paper does (0.15 for mnistfc, 0.25 for LeNet).
/// </summary>
public interface IHasDropout
{
    /// <summary>The probability used by every hidden (main) dropout layer.</summary>
    double HiddenDropout { get; }

    /// <summary>The probability of the dropout applied to the input; 0 when the model has none.</summary>
    double InputDropout { get; }

    /// <summary>
    /// Sets the dropout probabilities; a null argument keeps the current value. Values must lie in [0, 1).
    /// Throws <see cref="ArgumentException"/> for a non-zero input dropout on a model without an input-dropout layer.
    /// </summary>
    void SetDropout(double? hidden, double? input);
}
