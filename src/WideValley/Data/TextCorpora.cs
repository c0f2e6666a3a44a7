using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>Readers that turn text files into <see cref="TokenCorpus"/> objects for language modelling.</summary>
public static class TextCorpora
{
    /// <summary>End-of-sentence token appended to every line of a word-level corpus.</summary>
    public const string EndOfSentence = "<eos>";
    /// <summary>Token that validation and test words outside the training vocabulary map to, when the vocabulary has it.</summary>
    public const string Unknown = "<unk>";

    /// <summary>The three files of a Penn Treebank folder (Mikolov's simple-examples/data layout).</summary>
    public static IReadOnlyList<string> PtbFiles { get; } = ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"];

    /// <summary>
    /// Name of the fixed character set of seed 003 Sec. 5.1's small char-LSTM ("96-bit one-hot encoded characters"):
    /// the newline and the 95 printable ASCII characters, space to tilde.
    /// </summary>
    public const string AsciiCharacterSet = "ascii";

    /// <summary>The code points of a named character set, ascending (see <see cref="AsciiCharacterSet"/>).</summary>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static IReadOnlyList<int> CharacterSet(string name) => name switch
    {
        AsciiCharacterSet => [.. Enumerable.Range(0x20, 0x7F - 0x20).Prepend('\n')],
        _ => throw new ArgumentException($"unknown character set '{name}'; the known one is '{AsciiCharacterSet}' (newline and printable ASCII, 96 characters)"),
    };

    /// <summary>
    /// A character-level corpus from any UTF-8 text file (fortune files included: their "%" separator lines are just
    /// text). Decoding is strict: invalid UTF-8 is an error that gives the byte offset. A leading byte-order mark is
    /// skipped. Tokens are Unicode scalar values (a surrogate pair is one token); the vocabulary is the sorted set of
    /// distinct scalars, by code point, or the named <paramref name="characterSet"/> whether or not the text uses every
    /// character of it (a character outside it is an error giving its offset). The token stream is cut into contiguous
    /// training, validation and test parts (80 / 10 / 10 by default, as in the paper); each part must hold at least 2 tokens.
    /// </summary>
    public static TokenCorpus LoadCharacters(string file, double trainFraction = 0.8, double validationFraction = 0.1, string? characterSet = null)
    {
        if (!(trainFraction > 0 && validationFraction > 0 && trainFraction + validationFraction < 1))
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture,
                    $"split fractions must be positive and leave a positive test part: train {trainFraction}, validation {validationFraction}"));
        var fixedAlphabet = characterSet is null ? null : CharacterSet(characterSet);
        var text = ReadUtf8(file);
        if (text.Length == 0) throw new DataException(file, "is empty; a character corpus needs some text");

        var scalars = new List<int>(text.Length);
        foreach (var rune in text.EnumerateRunes()) scalars.Add(rune.Value);
        var alphabet = fixedAlphabet?.ToArray() ?? scalars.Distinct().Order().ToArray();
        var index = new Dictionary<int, long>(alphabet.Length);
        for (var i = 0; i < alphabet.Length; i++) index[alphabet[i]] = i;
        var ids = new long[scalars.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            if (!index.TryGetValue(scalars[i], out ids[i]))
                throw new DataException(file, string.Create(CultureInfo.InvariantCulture,
                    $"character {i} (U+{scalars[i]:X4}) is not in the character set '{characterSet}'"));
        }

        long n = ids.Length;
        var trainCount = (long)Math.Floor(n * trainFraction);
        var validationCount = (long)Math.Floor(n * validationFraction);
        var testCount = n - trainCount - validationCount;
        foreach (var (part, count) in new[] { ("training", trainCount), ("validation", validationCount), ("test", testCount) })
            if (count < 2)
                throw new DataException(file, string.Create(CultureInfo.InvariantCulture,
                    $"{n} characters are too few for a {trainFraction:G3} / {validationFraction:G3} / {1 - trainFraction - validationFraction:G3} split: " +
                    $"the {part} part would hold {count} (each part needs at least 2, an input and its target)"));

        using var scope = NewDisposeScope();
        var all = tensor(ids);
        return new TokenCorpus
        {
            Name = Path.GetFileName(file),
            Vocabulary = new Vocabulary(alphabet.Select(v => new Rune(v).ToString())),
            Train = all.narrow(0, 0, trainCount).clone().DetachFromDisposeScope(),
            Validation = all.narrow(0, trainCount, validationCount).clone().DetachFromDisposeScope(),
            Test = all.narrow(0, trainCount + validationCount, testCount).clone().DetachFromDisposeScope(),
            Source = Path.GetFullPath(file),
            Level = "char",
        };
    }

    /// <summary>
    /// The Penn Treebank word-level corpus from a folder holding ptb.train.txt, ptb.valid.txt and ptb.test.txt:
    /// whitespace-separated words, one sentence per line, <see cref="EndOfSentence"/> appended to every line. The
    /// vocabulary is every word of the training file in order of first appearance (the order of the PyTorch
    /// word_language_model example; <see cref="EndOfSentence"/> first appears at the end of the first line). A
    /// validation or test word missing from it maps to <see cref="Unknown"/> when the vocabulary has that token (the
    /// standard PTB files do), and is an error naming file, line and word otherwise.
    /// </summary>
    public static TokenCorpus LoadPtb(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DataException(dir, $"folder not found; a Penn Treebank folder holds {string.Join(", ", PtbFiles)}");
        var missing = PtbFiles.Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
        if (missing.Count > 0)
            throw new DataException(dir,
                $"missing {string.Join(", ", missing)}; a Penn Treebank folder holds {string.Join(", ", PtbFiles)} " +
                "(e.g. the data/ folder of Mikolov's simple-examples.tgz)");
        var paths = PtbFiles.Select(f => Path.Combine(dir, f)).ToArray();

        var words = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var trainIds = new List<long>();
        foreach (var (word, _) in Words(paths[0]))
        {
            if (!index.TryGetValue(word, out var id))
            {
                id = words.Count;
                index[word] = id;
                words.Add(word);
            }
            trainIds.Add(id);
        }
        if (trainIds.Count < 2) throw new DataException(paths[0], "holds no sentences; the training file defines the vocabulary");

        int? unknown = index.TryGetValue(Unknown, out var u) ? u : null;
        long[] Encode(string path)
        {
            var ids = new List<long>();
            foreach (var (word, line) in Words(path))
            {
                if (index.TryGetValue(word, out var id)) ids.Add(id);
                else if (unknown is { } unk) ids.Add(unk);
                else
                    throw new DataException(path,
                        $"line {line}: word '{word}' is not in the vocabulary of {PtbFiles[0]}, which has no {Unknown} token to map it to");
            }
            if (ids.Count < 2) throw new DataException(path, "holds no sentences");
            return ids.ToArray();
        }
        var validation = Encode(paths[1]);
        var test = Encode(paths[2]);

        return new TokenCorpus
        {
            Name = "ptb",
            Vocabulary = new Vocabulary(words),
            Train = tensor(trainIds.ToArray()).DetachFromDisposeScope(),
            Validation = tensor(validation).DetachFromDisposeScope(),
            Test = tensor(test).DetachFromDisposeScope(),
            Source = Path.GetFullPath(dir),
            Level = "word",
        };
    }

    /// <summary>The words of a file with their 1-based line numbers, <see cref="EndOfSentence"/> closing every line.</summary>
    static IEnumerable<(string Word, int Line)> Words(string path)
    {
        var text = ReadUtf8(path);
        var lines = text.Split('\n');
        // A final newline ends the last line; it does not start an empty one.
        var count = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        for (var i = 0; i < count; i++)
        {
            foreach (var word in lines[i].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                yield return (word, i + 1);
            yield return (EndOfSentence, i + 1);
        }
    }

    /// <summary>
    /// The file's text, decoded strictly: the first invalid or incomplete UTF-8 sequence is an error naming its byte
    /// offset (silently replacing it would put U+FFFD tokens into a vocabulary). A UTF-8 byte-order mark is dropped.
    /// </summary>
    public static string ReadUtf8(string path)
    {
        byte[] bytes;
        using (var file = DataFiles.OpenRead(path))
        {
            if (file.Length > Array.MaxLength) throw new DataException(path, $"is too large ({file.Length} bytes) to read as one text");
            bytes = new byte[file.Length];
            file.ReadExactly(bytes);
        }
        var start = bytes.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? Encoding.UTF8.Preamble.Length : 0;
        var source = bytes.AsSpan(start);
        var chars = new char[source.Length];
        var status = Utf8.ToUtf16(source, chars, out var bytesRead, out var charsWritten, replaceInvalidSequences: false);
        if (status != OperationStatus.Done)
        {
            var offset = start + bytesRead;
            var shown = Convert.ToHexString(bytes, offset, Math.Min(4, bytes.Length - offset));
            throw new DataException(path, status == OperationStatus.NeedMoreData
                ? $"invalid UTF-8: the file ends inside a multi-byte sequence at byte offset {offset} (bytes {shown})"
                : $"invalid UTF-8 at byte offset {offset} (bytes {shown}); the file must be UTF-8 text");
        }
        return new string(chars, 0, charsWritten);
    }
}
