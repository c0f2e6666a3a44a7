using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>Where in a run a <see cref="ILossRegularizer"/> is asked for its term, and what it may differentiate.</summary>
/// <param name="Model">The network being trained (its parameters are what the optimizer updates).</param>
/// <param name="Loss">The minibatch's mean loss, carrying its autograd graph; the trainer back-propagates it after the call.</param>
/// <param name="Epoch">The trainer's epoch, 1-based.</param>
/// <param name="StepInEpoch">The optimizer step within the epoch, 0-based (every gradient evaluation of one step sees the same value).</param>
/// <param name="GradientEvaluation">Gradient evaluations (closure calls) before this one in the whole run, 0-based; restored on resume,
/// so a regulariser that seeds its randomness from it continues a resumed run bit for bit.</param>
/// <param name="ReevaluateLoss">Recomputes this minibatch's mean loss at the model's current weights, in the same mode and with the
/// same dropout masks (a new graph each call; the training stream does not move), or null when the task cannot: what a
/// finite-difference regulariser evaluates at perturbed weights.</param>
public readonly record struct RegularizationContext(nn.Module Model, Tensor Loss, int Epoch, long StepInEpoch, long GradientEvaluation, Func<Tensor>? ReevaluateLoss = null);

/// <summary>
/// A differentiable term added to the minibatch loss before the trainer's backward pass, so that the trainer knows no
/// regulariser's internals and any optimizer minimises loss + term (set <see cref="TrainerOptions.Regularizer"/>).
/// The closure handed to the optimizer still returns the minibatch loss, and the metrics stay the data loss: an
/// optimizer that watches the loss sees the same quantity with or without a regulariser.
/// </summary>
public interface ILossRegularizer
{
    /// <summary>
    /// The term to add to <see cref="RegularizationContext.Loss"/> for this gradient evaluation (a scalar tensor with
    /// its graph, in the caller's dispose scope), or null when the regulariser does not apply at this step.
    /// </summary>
    Tensor? Penalty(RegularizationContext context);

    /// <summary>
    /// What the trainer back-propagates for this gradient evaluation: a scalar whose gradient is the regularised
    /// objective's, or null for the plain loss. The default is <c>Loss + Penalty(context)</c>. A regulariser that
    /// estimates the whole objective's gradient without ∇<see cref="RegularizationContext.Loss"/> (e.g.
    /// <see cref="HessianTraceEstimator.Antithetic"/>) returns a tensor whose graph does not reach the loss, so the
    /// trainer never back-propagates the loss's own graph, a backward pass saved per penalised step.
    /// </summary>
    Tensor? Objective(RegularizationContext context) => Penalty(context) is { } term ? context.Loss.add(term) : null;
}
