using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>A token vocabulary: characters for char-level corpora, words for word-level ones.</summary>
public sealed class Vocabulary
{
    readonly Dictionary<string, int> _index;
    /// <summary>The tokens; a token's index here is its id.</summary>
    public IReadOnlyList<string> Tokens { get; }
    /// <summary>The number of tokens (the vocabulary size).</summary>
    public int Count => Tokens.Count;

    /// <summary>A vocabulary whose ids are the positions of <paramref name="tokens"/>.</summary>
    /// <exception cref="ArgumentException">A token occurs twice.</exception>
    public Vocabulary(IEnumerable<string> tokens)
    {
        Tokens = tokens.ToList();
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Tokens.Count; i++)
            if (!_index.TryAdd(Tokens[i], i)) throw new ArgumentException($"duplicate token '{Tokens[i]}' in vocabulary");
    }

    /// <summary>The id of <paramref name="token"/>; false when it is not in the vocabulary.</summary>
    public bool TryGetIndex(string token, out int index) => _index.TryGetValue(token, out index);
    /// <summary>The id of <paramref name="token"/>.</summary>
    /// <exception cref="KeyNotFoundException">The token is not in the vocabulary.</exception>
    public int IndexOf(string token) => _index.TryGetValue(token, out var i) ? i : throw new KeyNotFoundException($"token '{token}' is not in the vocabulary");
}

/// <summary>
/// A tokenised text corpus for language modelling: training, validation and test token streams (int64, 1-D) over one
/// vocabulary. Owns its tensors.
/// </summary>
public sealed class TokenCorpus : IDisposable
{
    /// <summary>Short name for reports: "ptb", or the text file's name for a character corpus.</summary>
    public required string Name { get; init; }
    /// <summary>The vocabulary the token ids index.</summary>
    public required Vocabulary Vocabulary { get; init; }
    /// <summary>The training token ids.</summary>
    public required Tensor Train { get; init; }
    /// <summary>The validation token ids.</summary>
    public required Tensor Validation { get; init; }
    /// <summary>The test token ids.</summary>
    public required Tensor Test { get; init; }
    /// <summary>Where the text came from, for reports.</summary>
    public required string Source { get; init; }
    /// <summary>"char" or "word".</summary>
    public required string Level { get; init; }

    /// <summary>Frees the three token streams.</summary>
    public void Dispose()
    {
        Train.Dispose();
        Validation.Dispose();
        Test.Dispose();
    }
}
