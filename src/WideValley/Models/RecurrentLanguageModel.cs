using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>The hidden and cell states of a stacked LSTM, each (layers, batch, hidden). Owns its tensors.</summary>
public sealed class RecurrentState : IDisposable
{
    /// <summary>Hidden state h, (layers, batch, hidden).</summary>
    public Tensor Hidden { get; }
    /// <summary>Cell state c, (layers, batch, hidden).</summary>
    public Tensor Cell { get; }

    /// <summary>Takes ownership of both tensors (they leave any dispose scope).</summary>
    public RecurrentState(Tensor hidden, Tensor cell)
    {
        Hidden = hidden.DetachFromDisposeScope();
        Cell = cell.DetachFromDisposeScope();
    }

    /// <summary>
    /// A copy cut from the autograd graph: truncated BPTT carries the values into the next minibatch but not the graph.
    /// </summary>
    public RecurrentState Detached() => new(Hidden.detach().clone(), Cell.detach().clone());

    /// <summary>Frees both states.</summary>
    public void Dispose()
    {
        Hidden.Dispose();
        Cell.Dispose();
    }
}

/// <summary>
/// A language model over token ids that carries state between consecutive windows of text. <c>Forward</c> maps
/// tokens (batch, time) int64 to logits (batch, time, vocabulary) and the state after the last step.
/// </summary>
public interface IRecurrentLanguageModel
{
    /// <summary>Tokens the model reads and predicts: the last dimension of its logits.</summary>
    int VocabularySize { get; }
    /// <summary>Tensors of the returned logits and state belong to the caller's dispose scope.</summary>
    (Tensor Logits, Tensor Hidden, Tensor Cell) Forward(Tensor tokens, RecurrentState? state);
}
