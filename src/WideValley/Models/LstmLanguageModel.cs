using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// A stacked-LSTM language model over token ids: input encoding (a learned embedding, or one-hot characters as in
/// char-rnn), LSTM layers (batch first), dropout on the output of every layer, and a linear decoder to vocabulary
/// logits. Serves ptb-lstm, char-lstm and small-char-lstm (see <see cref="ModelZoo"/>).
/// </summary>
/// <remarks>
/// The layers are single-layer <c>nn.LSTM</c>s stacked by hand rather than one multi-layer <c>nn.LSTM</c>: the fused
/// module fixes its between-layer dropout in native code at construction, while here the dropout is a managed layer
/// that <see cref="SetDropout"/> can change. The computation and parameter count are the same; dropout additionally
/// acts on the last layer's output, as in Zaremba et al. (2014) and char-rnn, so a one-layer model can use it too.
/// <see cref="nn.Module{T, TResult}.forward"/> runs from the zero state and returns only the logits, for code (such
/// as Hessian tools) that treats every sequence independently.
/// </remarks>
public sealed class LstmLanguageModel : nn.Module<Tensor, Tensor>, IRecurrentLanguageModel, IHasDropout
{
    private readonly Embedding? embedding;
    private readonly Dropout? inputDropout;
    private readonly ModuleList<LSTM> layers;
    private readonly Dropout hiddenDropout;
    private readonly Linear decoder;

    internal LstmLanguageModel(
        string zooName, int vocabularySize, int hiddenSize, int layerCount, bool embedTokens, bool decoderBias,
        double dropout, double inputDropoutProbability, double initialisationRange)
        : base(zooName)
    {
        ZooName = zooName;
        VocabularySize = vocabularySize;
        HiddenSize = hiddenSize;
        LayerCount = layerCount;
        if (embedTokens)
        {
            embedding = nn.Embedding(vocabularySize, hiddenSize);
            inputDropout = nn.Dropout(inputDropoutProbability);
        }
        var inputSize = embedTokens ? hiddenSize : vocabularySize;
        layers = nn.ModuleList(Enumerable.Range(0, layerCount)
            .Select(layer => nn.LSTM(layer == 0 ? inputSize : hiddenSize, hiddenSize, batchFirst: true))
            .ToArray());
        hiddenDropout = nn.Dropout(dropout);
        decoder = nn.Linear(hiddenSize, vocabularySize, hasBias: decoderBias);
        RegisterComponents();

        InitialisationRange = initialisationRange;
        using (no_grad())
        {
            foreach (var parameter in parameters())
                nn.init.uniform_(parameter, -initialisationRange, initialisationRange);
        }
    }

    /// <summary>The name under which <see cref="ModelZoo"/> builds this network.</summary>
    public string ZooName { get; }

    /// <inheritdoc />
    public int VocabularySize { get; }

    /// <summary>Hidden units per LSTM layer.</summary>
    public int HiddenSize { get; }

    /// <summary>Number of stacked LSTM layers.</summary>
    public int LayerCount { get; }

    /// <summary>Tokens enter through a learned embedding (true) or as one-hot vectors (false).</summary>
    public bool EmbedsTokens => embedding is not null;

    /// <summary>Every parameter was drawn uniformly from [-range, range] at construction.</summary>
    public double InitialisationRange { get; }

    /// <inheritdoc />
    public double HiddenDropout => hiddenDropout.p;

    /// <inheritdoc />
    public double InputDropout => inputDropout?.p ?? 0;

    /// <inheritdoc />
    public void SetDropout(double? hidden, double? input)
    {
        if (hidden is { } h) ModelZoo.CheckDropout(h, "hidden dropout", ZooName);
        if (input is { } i)
        {
            ModelZoo.CheckDropout(i, "input dropout", ZooName);
            if (inputDropout is null && i != 0)
                throw new ArgumentException(
                    $"{ZooName} has no input dropout: its input is a one-hot character. Use the hidden dropout instead.", nameof(input));
        }
        if (hidden is { } newHidden) hiddenDropout.p = newHidden;
        if (input is { } newInput && inputDropout is not null) inputDropout.p = newInput;
    }

    /// <summary>Logits (B, T, V) from the zero state; the final state is discarded.</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var (logits, _, _) = Forward(tokens, null);
        return logits.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    /// <remarks>
    /// A null <paramref name="state"/> starts from zeros. The returned hidden and cell states are those after the
    /// last step, (layers, batch, hidden), still attached to the graph: detach them (<see cref="RecurrentState.Detached"/>)
    /// before carrying them into the next window.
    /// </remarks>
    public (Tensor Logits, Tensor Hidden, Tensor Cell) Forward(Tensor tokens, RecurrentState? state)
    {
        CheckTokens(tokens);
        if (state is not null) CheckState(state, tokens.shape[0]);

        using var scope = NewDisposeScope();
        var layerInput = embedding is null
            ? nn.functional.one_hot(tokens, VocabularySize).to_type(decoder.weight!.dtype)
            : inputDropout!.call(embedding.call(tokens));
        var finalHidden = new Tensor[LayerCount];
        var finalCell = new Tensor[LayerCount];
        for (var layer = 0; layer < LayerCount; layer++)
        {
            (Tensor, Tensor)? initial = state is null ? null : (state.Hidden.narrow(0, layer, 1), state.Cell.narrow(0, layer, 1));
            var (output, hidden, cell) = layers[layer].call(layerInput, initial);
            layerInput = hiddenDropout.call(output);
            finalHidden[layer] = hidden;
            finalCell[layer] = cell;
        }
        var logits = decoder.call(layerInput);
        return (logits.MoveToOuterDisposeScope(),
                cat(finalHidden, 0).MoveToOuterDisposeScope(),
                cat(finalCell, 0).MoveToOuterDisposeScope());
    }

    private void CheckTokens(Tensor tokens)
    {
        if (tokens.dim() != 2 || tokens.dtype != ScalarType.Int64)
            throw new ArgumentException(
                $"{ZooName} expects token ids (batch, time) of type Int64 but got {tokens.dtype} ({string.Join(", ", tokens.shape)}).", nameof(tokens));
        if (tokens.numel() == 0) return;
        using var minimum = tokens.min();
        using var maximum = tokens.max();
        var smallest = minimum.item<long>();
        var largest = maximum.item<long>();
        if (smallest < 0 || largest >= VocabularySize)
            throw new ArgumentException(
                $"{ZooName} has a vocabulary of {VocabularySize} but got token ids from {smallest} to {largest}.", nameof(tokens));
    }

    private void CheckState(RecurrentState state, long batch)
    {
        long[] expected = [LayerCount, batch, HiddenSize];
        if (!state.Hidden.shape.SequenceEqual(expected) || !state.Cell.shape.SequenceEqual(expected))
            throw new ArgumentException(
                $"{ZooName} expects hidden and cell states ({string.Join(", ", expected)}) but got " +
                $"({string.Join(", ", state.Hidden.shape)}) and ({string.Join(", ", state.Cell.shape)}).", nameof(state));
    }
}
