using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>Which part of a dataset to evaluate on.</summary>
public enum EvaluationSplit
{
    /// <summary>The training set (all of it, in order).</summary>
    Train,
    /// <summary>The held-out part of the training set, if any.</summary>
    Validation,
    /// <summary>The test set.</summary>
    Test,
}

/// <summary>Mean loss, error and (for language models) perplexity over one split.</summary>
public sealed record Evaluation(double Loss, double ErrorPercent, long Count, double? Perplexity);

/// <summary>
/// The loss of one training minibatch. <see cref="Loss"/> carries the autograd graph (mean over samples or tokens);
/// the other fields are plain numbers for metrics. <see cref="Reevaluate"/>, when the task offers it, recomputes the
/// same minibatch's loss at the model's current weights (same mode, same dropout masks, a new graph; the stream does not
/// move), for regularisers that evaluate the loss at perturbed weights.
/// </summary>
public readonly record struct MinibatchLoss(Tensor Loss, double Value, long Errors, long Count, Func<Tensor>? Reevaluate = null);

/// <summary>
/// What the trainer needs to know about a learning problem, so that one trainer serves classification and language
/// modelling, and optimizers that evaluate several minibatches per step need nothing from the trainer but a closure.
/// </summary>
public interface ITrainingTask : IDisposable
{
    /// <summary>The network being trained.</summary>
    nn.Module Model { get; }
    /// <summary>True for next-token prediction (metrics add perplexity).</summary>
    bool IsLanguageModel { get; }

    /// <summary>
    /// Minibatches in one pass over the training data (fractional when the batch size does not divide the set).
    /// Effective epochs = gradient evaluations / this.
    /// </summary>
    double MinibatchesPerPass { get; }

    /// <summary>Training samples (images) or tokens, for reports.</summary>
    long TrainingSize { get; }

    /// <summary>True when there is a validation split.</summary>
    bool HasValidation { get; }

    /// <summary>
    /// Draws the next training minibatch from the task's endless, seeded stream and runs the model on it in its current
    /// mode. Every call draws a fresh minibatch. Tensors belong to the caller's dispose scope.
    /// </summary>
    MinibatchLoss NextTrainingLoss();

    /// <summary>Mean loss and error over a split, in eval mode without gradients. Restores the model's mode.</summary>
    Evaluation Evaluate(EvaluationSplit split);

    /// <summary>
    /// Runs forward passes over training data in a fixed order without gradients (up to <paramref name="maxMinibatches"/>,
    /// 0 = one full pass), for recalibrating normalisation statistics. Does not move the training stream.
    /// </summary>
    void FeedTrainingData(int maxMinibatches);

    /// <summary>Stream positions and carried state, for checkpoints.</summary>
    void SaveState(BinaryWriter writer);
    /// <summary>Restores what <see cref="SaveState"/> wrote.</summary>
    void LoadState(BinaryReader reader);
}

/// <summary>Helpers shared by the tasks.</summary>
internal static class TaskHelpers
{
    /// <summary>Runs <paramref name="body"/> in eval mode without gradients and restores the previous mode.</summary>
    public static T Evaluating<T>(nn.Module model, Func<T> body)
    {
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            return body();
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    public static void WritePosition(BinaryWriter w, Data.StreamPosition p) { w.Write(p.Pass); w.Write(p.Offset); }
    public static Data.StreamPosition ReadPosition(BinaryReader r) => new(r.ReadInt64(), r.ReadInt64());
}
