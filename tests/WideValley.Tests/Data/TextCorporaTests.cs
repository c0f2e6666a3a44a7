using System.Text;
using WideValley.Data;

using WideValley.Tests.Support;

namespace WideValley.Tests.Data;

public class TextCorporaTests
{
    static long[] Ids(TorchSharp.torch.Tensor t) => t.data<long>().ToArray();

    static string Decode(TokenCorpus corpus) =>
        string.Concat(Ids(corpus.Train).Concat(Ids(corpus.Validation)).Concat(Ids(corpus.Test)).Select(i => corpus.Vocabulary.Tokens[(int)i]));

    [Fact]
    public void CharactersAreSortedTokensWithAContiguous80_10_10Split()
    {
        using var folder = new TempDir();
        var path = folder.WriteText("t.txt", "hello world, hello!!");
        using var corpus = TextCorpora.LoadCharacters(path);
        Assert.Equal("char", corpus.Level);
        Assert.Equal(Path.GetFullPath(path), corpus.Source);
        Assert.Equal([" ", "!", ",", "d", "e", "h", "l", "o", "r", "w"], corpus.Vocabulary.Tokens);
        // 20 characters: 16 / 2 / 2, in order.
        Assert.Equal([5L, 4, 6, 6, 7, 0, 9, 7, 8, 6, 3, 2, 0, 5, 4, 6], Ids(corpus.Train));
        Assert.Equal([6L, 7], Ids(corpus.Validation));
        Assert.Equal([1L, 1], Ids(corpus.Test));
        Assert.Equal("hello world, hello!!", Decode(corpus));
    }

    [Fact]
    public void SplitFractionsAreConfigurable()
    {
        using var folder = new TempDir();
        var path = folder.WriteText("t.txt", new string('a', 50) + new string('b', 50));
        using var corpus = TextCorpora.LoadCharacters(path, trainFraction: 0.5, validationFraction: 0.3);
        Assert.Equal(50, corpus.Train.shape[0]);
        Assert.Equal(30, corpus.Validation.shape[0]);
        Assert.Equal(20, corpus.Test.shape[0]);
        Assert.All(Ids(corpus.Train), id => Assert.Equal(0, id));
        Assert.Throws<ArgumentException>(() => TextCorpora.LoadCharacters(path, 0.9, 0.1));
        Assert.Throws<ArgumentException>(() => TextCorpora.LoadCharacters(path, 0.8, 0));
    }

    [Fact]
    public void SurrogatePairsAreOneTokenAndOrderIsByCodePoint()
    {
        using var folder = new TempDir();
        // U+1F600 is a surrogate pair in UTF-16; U+FF21 sorts after it in UTF-16 order but before it by code point.
        const string text = "a😀Ａé€a😀Ａé€a😀Ａé€a😀Ａé€"; // 20 tokens, 24 UTF-16 code units
        var path = folder.WriteText("emoji.txt", text);
        using var corpus = TextCorpora.LoadCharacters(path);
        Assert.Equal(["a", "é", "€", "Ａ", "😀"], corpus.Vocabulary.Tokens);
        Assert.Equal(20, corpus.Train.shape[0] + corpus.Validation.shape[0] + corpus.Test.shape[0]);
        Assert.Equal(text, Decode(corpus));
    }

    [Fact]
    public void ByteOrderMarkIsNotAToken()
    {
        using var folder = new TempDir();
        var path = folder.Write("bom.txt", [0xEF, 0xBB, 0xBF, .. "abcdefghijabcdefghij"u8.ToArray()]);
        using var corpus = TextCorpora.LoadCharacters(path);
        Assert.Equal(10, corpus.Vocabulary.Count);
        Assert.Equal("abcdefghijabcdefghij", Decode(corpus));
    }

    [Fact]
    public void InvalidUtf8GivesTheByteOffset()
    {
        using var folder = new TempDir();
        var path = folder.Write("bad.txt", [.. "abc"u8.ToArray(), 0xFF, .. "defghijk"u8.ToArray()]);
        var e = Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("invalid UTF-8 at byte offset 3", e.Message);
        Assert.Contains("FF", e.Message);

        // Offsets count from the start of the file, BOM included; an encoded surrogate (ED A0 80) is not UTF-8.
        path = folder.Write("surrogate.txt", [0xEF, 0xBB, 0xBF, (byte)'x', 0xED, 0xA0, 0x80, .. "yyyyyyyy"u8.ToArray()]);
        Assert.Contains("byte offset 4", Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(path)).Message);

        path = folder.Write("cut.txt", [.. "abcdefghij"u8.ToArray(), 0xE2, 0x82]); // "€" cut short at the end
        var cut = Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(path));
        Assert.Contains("offset 10", cut.Message);
        Assert.Contains("UTF-8", cut.Message);
    }

    [Fact]
    public void EmptyAndTooShortFilesAreErrors()
    {
        using var folder = new TempDir();
        var empty = folder.Write("empty.txt", []);
        Assert.Contains("is empty", Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(empty)).Message);
        var bomOnly = folder.Write("bom-only.txt", [0xEF, 0xBB, 0xBF]);
        Assert.Contains("is empty", Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(bomOnly)).Message);

        var shortFile = folder.WriteText("short.txt", "abcdefghijklm"); // 13: 10 / 1 / 2
        var e = Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(shortFile));
        Assert.Equal(shortFile, e.Path);
        Assert.Contains("13 characters are too few", e.Message);
        Assert.Contains("the validation part would hold 1", e.Message);

        Assert.Contains("file not found", Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(folder.File("absent.txt"))).Message);
    }

    [Fact]
    public void FortuneFilesAreJustText()
    {
        using var folder = new TempDir();
        const string text = "A fortune.\n%\nAnother one,\n\twith a tab.\n%\n";
        var path = folder.WriteText("fortunes", text);
        using var corpus = TextCorpora.LoadCharacters(path);
        Assert.Contains("%", corpus.Vocabulary.Tokens);
        Assert.Contains("\n", corpus.Vocabulary.Tokens);
        Assert.Equal(text, Decode(corpus));
    }

    [Fact]
    public void DebianFortuneFileLoads()
    {
        TestMachine.RequireFortunes();
        var path = Path.Combine(TestMachine.FortunesFolder, "computers");
        using var corpus = TextCorpora.LoadCharacters(path);
        Assert.Equal(File.ReadAllText(path, new UTF8Encoding(false, true)), Decode(corpus));
        Assert.Equal(corpus.Vocabulary.Tokens.Order(StringComparer.Ordinal), corpus.Vocabulary.Tokens);
    }

    static void WritePtb(TempDir folder, string train, string valid, string test)
    {
        folder.WriteText("ptb.train.txt", train);
        folder.WriteText("ptb.valid.txt", valid);
        folder.WriteText("ptb.test.txt", test);
    }

    [Fact]
    public void PtbVocabularyIsFirstAppearanceAndEveryLineEndsWithEos()
    {
        using var folder = new TempDir();
        WritePtb(folder,
            train: " the cat  sat \n the <unk> ran\r\n\nend\n",
            valid: "the dog sat\n",
            test: "cat ran\nthe end");
        using var corpus = TextCorpora.LoadPtb(folder.Path);
        Assert.Equal("word", corpus.Level);
        Assert.Equal("ptb", corpus.Name);
        Assert.Equal(["the", "cat", "sat", "<eos>", "<unk>", "ran", "end"], corpus.Vocabulary.Tokens);
        // the cat sat <eos> | the <unk> ran <eos> | <eos> (empty line) | end <eos>
        Assert.Equal([0L, 1, 2, 3, 0, 4, 5, 3, 3, 6, 3], Ids(corpus.Train));
        // "dog" is not in the training vocabulary: it becomes <unk>.
        Assert.Equal([0L, 4, 2, 3], Ids(corpus.Validation));
        // The last line has no final newline and still ends with <eos>.
        Assert.Equal([1L, 5, 3, 0, 6, 3], Ids(corpus.Test));
    }

    [Fact]
    public void UnknownWordWithoutUnkTokenNamesFileLineAndWord()
    {
        using var folder = new TempDir();
        WritePtb(folder, train: "a b\nb c\n", valid: "a b\n", test: "a\nb c\nc zebra a\n");
        var e = Assert.Throws<DataException>(() => TextCorpora.LoadPtb(folder.Path));
        Assert.Equal(folder.File("ptb.test.txt"), e.Path);
        Assert.Contains("line 3: word 'zebra' is not in the vocabulary of ptb.train.txt", e.Message);
        Assert.Contains("<unk>", e.Message);
    }

    [Fact]
    public void MissingPtbFilesAreListed()
    {
        using var folder = new TempDir();
        folder.WriteText("ptb.train.txt", "a b\n");
        var e = Assert.Throws<DataException>(() => TextCorpora.LoadPtb(folder.Path));
        Assert.Equal(folder.Path, e.Path);
        Assert.Contains("missing ptb.valid.txt, ptb.test.txt", e.Message);

        var absent = folder.File("nowhere");
        Assert.Contains("folder not found", Assert.Throws<DataException>(() => TextCorpora.LoadPtb(absent)).Message);
    }

    [Fact]
    public void EmptyPtbFilesAndInvalidUtf8AreErrors()
    {
        using var folder = new TempDir();
        WritePtb(folder, train: "", valid: "a\n", test: "a\n");
        var e = Assert.Throws<DataException>(() => TextCorpora.LoadPtb(folder.Path));
        Assert.Equal(folder.File("ptb.train.txt"), e.Path);

        WritePtb(folder, train: "a b\n", valid: "", test: "a\n");
        Assert.Equal(folder.File("ptb.valid.txt"), Assert.Throws<DataException>(() => TextCorpora.LoadPtb(folder.Path)).Path);

        WritePtb(folder, train: "a b\n", valid: "a\n", test: "a\n");
        folder.Write("ptb.test.txt", [(byte)'a', (byte)' ', 0xC3, (byte)'\n']);
        var bad = Assert.Throws<DataException>(() => TextCorpora.LoadPtb(folder.Path));
        Assert.Equal(folder.File("ptb.test.txt"), bad.Path);
        Assert.Contains("invalid UTF-8 at byte offset 2", bad.Message);
    }
}
