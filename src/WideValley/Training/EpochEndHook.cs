using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>What an <see cref="IEpochEndHook"/> is told at the end of an epoch.</summary>
/// <param name="Model">The network, at the end-of-epoch weights (the hook must leave weights, modes and buffers as it found them).</param>
/// <param name="Epoch">The epoch just finished, 1-based.</param>
/// <param name="Metrics">Its metrics (already computed; not yet logged).</param>
public readonly record struct EpochEndContext(nn.Module Model, int Epoch, EpochMetrics Metrics);

/// <summary>
/// A measurement the trainer runs after every epoch's evaluation and before that epoch's checkpoint is written (set
/// <see cref="TrainerOptions.EpochEndHook"/>), e.g. <see cref="CurvatureTracker"/>. Because the checkpoint comes after
/// the hook, every epoch a checkpoint counts as finished has been seen by the hook; on resume the hook is told how many
/// epochs the checkpoint holds, and drops whatever it recorded for later epochs (work the checkpoint does not contain),
/// so each epoch is recorded once.
/// </summary>
public interface IEpochEndHook
{
    /// <summary>
    /// Called once before training: <paramref name="completedEpochs"/> is 0 for a new run, the checkpoint's completed
    /// epochs on resume. Returns a message for the user when the hook repaired its records, else null.
    /// </summary>
    /// <param name="model">The network (at the initial or resumed weights).</param>
    /// <param name="outputDirectory">The run folder, or null when the trainer writes nothing.</param>
    /// <param name="completedEpochs">Epochs already done.</param>
    /// <param name="resuming">True when the run continues from a checkpoint (which may lie inside epoch 1, with no epoch completed).</param>
    string? Start(nn.Module model, string? outputDirectory, int completedEpochs, bool resuming);

    /// <summary>Called after every epoch, on the training thread.</summary>
    void EpochEnded(EpochEndContext context);
}
