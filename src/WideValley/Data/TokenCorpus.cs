using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>A token vocabulary: characters for char-level corpora, words for word-level ones.</summary>
public sealed class Vocabulary
{
    readonly Dictionary<string, int> _index;
    public IReadOnlyList<string> Tokens { get; }
    public int Count => Tokens.Count;

    public Vocabulary(IEnumerable<string> tokens)
    {
        Tokens = tokens.ToList();
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Tokens.Count; i++)
            if (!_index.TryAdd(Tokens[i], i)) throw new ArgumentException($"duplicate token '{Tokens[i]}' in vocabulary");
    }

    public bool TryGetIndex(string token, out int index) => _index.TryGetValue(token, out index);
    public int IndexOf(string token) => _index.TryGetValue(token, out var i) ? i : throw new KeyNotFoundException($"token '{token}' is not in the vocabulary");
}

/// <summary>
/// A tokenised text corpus for language modelling: training, validation and test token streams (int64, 1-D) over one
/// vocabulary. Owns its tensors.
/// </summary>
public sealed class TokenCorpus : IDisposable
{
    public required string Name { get; init; }
    public required Vocabulary Vocabulary { get; init; }
    public required Tensor Train { get; init; }
    public required Tensor Validation { get; init; }
    public required Tensor Test { get; init; }
    /// <summary>Where the text came from, for reports.</summary>
    public required string Source { get; init; }
    /// <summary>"char" or "word".</summary>
    public required string Level { get; init; }

    public void Dispose()
    {
        Train.Dispose();
        Validation.Dispose();
        Test.Dispose();
    }
}
