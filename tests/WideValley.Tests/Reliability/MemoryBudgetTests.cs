using System.Diagnostics;
using TorchSharp;
using WideValley.Cli;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Memory estimates before huge allocations (issue 16): the zoo's analytic parameter counts against the built
/// modules, the training estimate's refusals and acceptances, the available-memory parsing (meminfo, cgroup v1 and
/// v2), and a language-model batch that would cut the corpus into streams shorter than one unroll window.
/// </summary>
public sealed class MemoryBudgetTests
{
    static readonly AvailableMemory ThreeGiB = new(3L << 30, "a test's 3 GiB");

    // ---- analytic model sizes ----

    [Theory]
    [InlineData("char-lstm", 5, 3, 1)]
    [InlineData("char-lstm", 7, 4, 3)]
    [InlineData("char-lstm", 87, 128, 2)]
    [InlineData("small-char-lstm", 9, 5, 2)]
    [InlineData("small-char-lstm", 96, 48, 1)]
    [InlineData("ptb-lstm", 11, 6, 2)]
    [InlineData("ptb-lstm", 3, 2, 4)]
    [InlineData("ptb-lstm", 50, 17, 1)]
    [InlineData("ptb-small-lstm", 11, 6, 2)]
    [InlineData("ptb-small-lstm", 200, 200, 2)]
    public void TheLstmCountIsExactlyTheBuiltModules(string model, int vocabulary, int hidden, int layers)
    {
        var options = new ModelOptions { VocabularySize = vocabulary, HiddenSize = hidden, Layers = layers };
        using var module = ModelZoo.Create(model, options);
        Assert.Equal(ModelZoo.CountParameters(module), ModelZoo.EstimateSize(model, options).Parameters);
    }

    [Fact]
    public void TheLstmCountFollowsTheFormulaAtThePapersSizes()
    {
        // ptb-lstm: embedding 10,000 x 1500, two LSTM layers of 4h(h + h) + 8h, decoder 1500 x 10,000 + 10,000.
        const long v = 10_000, h = 1500;
        var expected = v * h + 2 * (4 * h * (h + h) + 8 * h) + h * v + v;
        Assert.Equal(expected, ModelZoo.EstimateSize("ptb-lstm", new ModelOptions { VocabularySize = (int)v }).Parameters);
        Assert.Equal(66_034_000, expected);
        // small-char-lstm with V = 96: the paper's 32,640 weights are the LSTM's and the decoder's without the biases.
        var small = ModelZoo.EstimateSize("small-char-lstm", new ModelOptions { VocabularySize = 96 }).Parameters;
        Assert.Equal(4 * 48 * (96 + 48) + 8 * 48 + 48 * 96, small);
    }

    [Theory]
    [InlineData("mnistfc", 1, 28, 10)]
    [InlineData("mnistfc", 3, 32, 10)]
    [InlineData("small-mnistfc", 1, 28, 10)]
    [InlineData("small-mnistfc", 2, 30, 7)]
    [InlineData("lenet", 1, 28, 10)]
    [InlineData("lenet", 3, 32, 10)]
    [InlineData("lenet", 2, 41, 7)]
    [InlineData("small-lenet", 1, 28, 10)]
    [InlineData("small-lenet", 3, 33, 4)]
    [InlineData("allcnn", 3, 32, 10)]
    [InlineData("allcnn", 1, 28, 10)]
    [InlineData("allcnn", 2, 9, 3)]
    [InlineData("fb-mnist-cnn", 1, 28, 10)]
    [InlineData("fb-mnist-cnn", 3, 32, 7)]
    [InlineData("fb-mnist-cnn", 2, 4, 3)]
    public void TheImageModelCountIsExactlyTheBuiltModules(string model, int channels, int imageSize, int classes)
    {
        var options = new ModelOptions { InputChannels = channels, ImageSize = imageSize, NumClasses = classes };
        using var module = ModelZoo.Create(model, options);
        var estimate = ModelZoo.EstimateSize(model, options);
        Assert.Equal(ModelZoo.CountParameters(module), estimate.Parameters);
        Assert.True(estimate.ActivationsPerExample > channels * imageSize * imageSize, $"{estimate.ActivationsPerExample} activations");
    }

    [Fact]
    public void AllCnnHasItsDocumentedCountOnCifar10()
    {
        Assert.Equal(1_667_166, ModelZoo.EstimateSize("allcnn", new ModelOptions { InputChannels = 3, ImageSize = 32 }).Parameters);
        Assert.Equal(47_658, ModelZoo.EstimateSize("small-lenet", new ModelOptions()).Parameters);
        Assert.Equal(50_890, ModelZoo.EstimateSize("small-mnistfc", new ModelOptions()).Parameters);
    }

    [Fact]
    public void EstimatingAHugeModelAllocatesNothingAndSaturatesInsteadOfWrapping()
    {
        var watch = Stopwatch.StartNew();
        var huge = ModelZoo.EstimateSize("ptb-lstm", new ModelOptions { VocabularySize = int.MaxValue, HiddenSize = int.MaxValue, Layers = int.MaxValue });
        Assert.Equal(long.MaxValue, huge.Parameters);
        var million = ModelZoo.EstimateSize("ptb-lstm", new ModelOptions { VocabularySize = 10_000, HiddenSize = 1_000_000 });
        Assert.Equal(10_000L * 1_000_000 * 2 + 10_000 + 2 * (8L * 1_000_000 * 1_000_000 + 8_000_000), million.Parameters);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
        Assert.Throws<ArgumentException>(() => ModelZoo.EstimateSize("ptb-lstm", new ModelOptions { VocabularySize = 10, HiddenSize = 0 }));
        Assert.Throws<ArgumentException>(() => ModelZoo.EstimateSize("lenet", new ModelOptions { HiddenSize = 10 }));
    }

    // ---- the training estimate ----

    [Fact]
    public void EntropySgdKeepsMoreCopiesThanSgd()
    {
        Assert.Equal(2, RunSetup.ParameterCopies(new SgdOptions()));
        Assert.Equal(3, RunSetup.ParameterCopies(new SgdOptions { Momentum = 0.9 }));
        Assert.Equal(4, RunSetup.ParameterCopies(new AdamOptions()));
        Assert.Equal(2, RunSetup.ParameterCopies(new SgldOptions()));
        // x0 and mu, the Langevin velocity, the outer momentum.
        Assert.Equal(4, RunSetup.ParameterCopies(new EntropySgdOptions()));
        Assert.Equal(6, RunSetup.ParameterCopies(new EntropySgdOptions { Momentum = 0.9, LocalEntropy = new LocalEntropyOptions { LangevinMomentum = 0.9 } }));
        Assert.Equal(6, RunSetup.ParameterCopies(new EntropyAdamOptions()));
        // Each replica of Parle: x0, mu, the Langevin velocity, the outer momentum and the coupling's reference.
        Assert.Equal(2 + 5, RunSetup.ParameterCopies(new ParleOptions()));
        Assert.Equal(2 + 1, RunSetup.ParameterCopies(new ElasticSgdOptions()));
        Assert.Equal(2 + 2, RunSetup.ParameterCopies(new ElasticSgdOptions { Momentum = 0.9 }));
    }

    [Fact]
    public void TheEstimateIsParametersTimesCopiesPlusOneBatchOfActivations()
    {
        var config = new RunConfig { Model = "ptb-lstm", Optimizer = "sgd", BatchSize = 20, Unroll = 35 };
        var options = new ModelOptions { VocabularySize = 10_000 };
        var estimate = RunSetup.EstimateTrainingMemory(config, options);
        var size = ModelZoo.EstimateSize("ptb-lstm", options);
        Assert.Equal(size.Parameters * 2 * 4, estimate.ParameterBytes);
        Assert.Equal(20L * 35 * size.ActivationsPerExample * 4, estimate.ActivationBytes);
        Assert.Equal(estimate.ParameterBytes + estimate.ActivationBytes, estimate.TotalBytes);
        var entropy = RunSetup.EstimateTrainingMemory(config.WithOptimizer(new EntropySgdOptions()), options);
        Assert.Equal(size.Parameters * 4 * 4, entropy.ParameterBytes);
    }

    /// <summary>Every Table 1 arm and the Hessian-universality runs at the paper's settings fit in 3 GiB.</summary>
    [Fact]
    public void ThePapersOwnSettingsFitInAFewGiB()
    {
        var data = new ExperimentData { Corpus = "/tmp/corpus.txt", Cifar10Dir = "/tmp/cifar", PtbDir = "/tmp/ptb" };
        foreach (var row in Table1.Rows)
        {
            var (baseline, entropy) = Table1.Arms(row, Budget.Paper, 1, data);
            foreach (var arm in new[] { baseline, entropy })
            {
                var c = arm.Config;
                var model = ModelZoo.Describe(c.Model).Kind == ModelKind.LanguageModel
                    ? new ModelOptions { VocabularySize = c.Model == "ptb-lstm" ? 10_000 : 87, HiddenSize = c.HiddenSize, Layers = c.Layers }
                    : new ModelOptions { InputChannels = c.Model == "allcnn" ? 3 : 1, ImageSize = c.Model == "allcnn" ? 32 : 28 };
                var estimate = RunSetup.EstimateTrainingMemory(c, model);
                Assert.True(estimate.TotalBytes < 2L << 30, $"{row.Name} {c.Optimizer}: {MemoryBudget.Format(estimate.TotalBytes)}");
                RunSetup.EnsureTrainingFits(c, model, available: ThreeGiB);
            }
        }
    }

    [Fact]
    public void AHugeHiddenSizeIsRefusedNamingTheOptionTheCountTheEstimateAndTheMemory()
    {
        var config = new RunConfig { Model = "ptb-lstm", HiddenSize = 1_000_000 }.WithOptimizer(new EntropySgdOptions());
        var e = Assert.Throws<MemoryBudgetException>(() =>
            RunSetup.EnsureTrainingFits(config, new ModelOptions { VocabularySize = 10_000, HiddenSize = 1_000_000 }, available: ThreeGiB));
        foreach (var word in new[] { "ptb-lstm with --hidden-size 1000000", "1.6e13 parameters", "entropy-sgd", "4 parameter-sized copies",
                     "needs about 239,", "GiB", "3.0 GiB available (a test's 3 GiB)", "lower --hidden-size", "estimate" })
            Assert.True(e.Message.Contains(word, StringComparison.Ordinal), $"'{word}' missing: {e.Message}");
        Assert.Equal(ThreeGiB, e.Available);
        Assert.True(e.RequiredBytes > 100_000L << 30);
        Assert.IsAssignableFrom<ArgumentException>(e);
    }

    [Fact]
    public void AHugeBatchIsRefusedNamingBatchAndUnroll()
    {
        var config = new RunConfig { Model = "char-lstm", BatchSize = 1_000_000, Unroll = 10_000 };
        var e = Assert.Throws<MemoryBudgetException>(() =>
            RunSetup.EnsureTrainingFits(config, new ModelOptions { VocabularySize = 87 }, available: ThreeGiB));
        Assert.Contains("a batch of 1000000 x 10000 tokens", e.Message);
        Assert.Contains("lower --batch-size or --unroll", e.Message);
        var images = new RunConfig { Model = "allcnn", BatchSize = 50_000 };
        var big = Assert.Throws<MemoryBudgetException>(() =>
            RunSetup.EnsureTrainingFits(images, new ModelOptions { InputChannels = 3, ImageSize = 32 }, available: ThreeGiB));
        Assert.Contains("a batch of 50000 images", big.Message);
        Assert.Contains("lower --batch-size", big.Message);
    }

    [Fact]
    public void ValidateRefusesAHugeLanguageModelBeforeAnyDataIsRead()
    {
        // The corpus does not exist: the refusal comes before reading it.
        var config = new RunConfig { Model = "char-lstm", Data = RunSetup.Text, Corpus = "/nonexistent/corpus.txt", Layers = 100_000_000 };
        var e = Assert.Throws<MemoryBudgetException>(() => RunSetup.Validate(config));
        Assert.Contains("--layers 100000000", e.Message);
        Assert.Contains("at least", e.Message);
        Assert.Contains("lower --layers", e.Message);
        RunSetup.Validate(config with { Layers = 2 });
    }

    // ---- available memory ----

    const string MemInfoText = "MemTotal:       24683792 kB\nMemFree:         1000000 kB\nMemAvailable:   22386952 kB\nBuffers:  12 kB\n";

    [Fact]
    public void MemAvailableIsReadFromMeminfoText()
    {
        Assert.Equal(22386952L * 1024, MemoryBudget.ParseMemAvailable(MemInfoText));
        Assert.Null(MemoryBudget.ParseMemAvailable("MemTotal: 5 kB\n"));
        Assert.Null(MemoryBudget.ParseMemAvailable("MemAvailable: lots kB\n"));
        Assert.Null(MemoryBudget.ParseMemAvailable(null));
    }

    [Fact]
    public void ACgroupLimitLowersTheAvailableMemory()
    {
        Assert.Null(MemoryBudget.CgroupHeadroom("max\n", "123\n"));
        Assert.Null(MemoryBudget.CgroupHeadroom("9223372036854771712\n", "8024420352\n")); // cgroup v1 "unlimited"
        Assert.Null(MemoryBudget.CgroupHeadroom(null, null));
        Assert.Equal(512L << 20, MemoryBudget.CgroupHeadroom("1073741824\n", "536870912\n"));
        Assert.Equal(0, MemoryBudget.CgroupHeadroom("1073741824", "2147483648"));

        var unlimited = MemoryBudget.Available(MemInfoText, [("max", "5", "/sys/fs/cgroup/memory.max")], fallback: 1);
        Assert.Equal(22386952L * 1024, unlimited.Bytes);
        Assert.Contains("MemAvailable", unlimited.Source);
        var limited = MemoryBudget.Available(MemInfoText,
            [("8589934592", "1073741824", "/sys/fs/cgroup/user.slice/memory.max"), ("4294967296", "1073741824", "/sys/fs/cgroup/user.slice/job/memory.max")],
            fallback: 1);
        Assert.Equal(3L << 30, limited.Bytes);
        Assert.Contains("/sys/fs/cgroup/user.slice/job/memory.max", limited.Source);
        // A limit above MemAvailable does not raise it.
        Assert.Equal(22386952L * 1024, MemoryBudget.Available(MemInfoText, [("107374182400", "0", "x")], fallback: 1).Bytes);
        // Without meminfo, the runtime's number.
        Assert.Equal(12345, MemoryBudget.Available(null, [], fallback: 12345).Bytes);
    }

    [Fact]
    public void TheProcessCgroupIsFoundForBothHierarchies()
    {
        Assert.Equal(("/user.slice/job", (string?)null), MemoryBudget.ParseProcCgroup("0::/user.slice/job\n"));
        Assert.Equal(("/", "/process_api/75d8"), MemoryBudget.ParseProcCgroup("9:name=systemd:/\n4:memory:/process_api/75d8\n1:cpu:/\n0::/\n"));
        Assert.Equal(((string?)null, "/a"), MemoryBudget.ParseProcCgroup("3:cpuacct,memory:/a\n"));
    }

    [Fact]
    public void TheMachinesAvailableMemoryIsPositiveAndSharedWithTheExactHessian()
    {
        var available = MemoryBudget.Available();
        Assert.True(available.Bytes > 0, available.ToString());
        Assert.True(WideValley.Landscape.ExactHessian.AvailableMemoryBytes() > 0);
    }

    [Fact]
    public void EnsureFitsSaysWhatHowMuchAndWhatToLower()
    {
        MemoryBudget.EnsureFits(1L << 30, "a thing", "lower --size", ThreeGiB);
        var e = Assert.Throws<MemoryBudgetException>(() => MemoryBudget.EnsureFits(5L << 30, "a thing", "lower --size", ThreeGiB));
        Assert.Equal("a thing needs about 5.0 GiB; this machine has 3.0 GiB available (a test's 3 GiB); lower --size", e.Message);
        Assert.Equal("512.0 MiB", MemoryBudget.Format(512L << 20));
        Assert.Equal("80,000 GiB", MemoryBudget.Format(80_000L << 30));
    }

    // ---- the command line ----

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData("sgd", "--hidden-size", "1000000", "with --hidden-size 1000000", "lower --hidden-size")]
    [InlineData("entropy-sgd", "--hidden-size", "1000000", "with --hidden-size 1000000", "lower --hidden-size")]
    [InlineData("sgd", "--layers", "100000000", "with --layers 100000000", "lower --layers")]
    [InlineData("adam", "--batch-size", "2000000000", "a batch of 2000000000 x 50 tokens", "lower --batch-size or --unroll")]
    public void TrainRefusesAHugeLanguageModelFastAndWritesNothing(string optimizer, string option, string value, string setting, string advice)
    {
        using var dir = new TempDir("widevalley-memory");
        var corpus = dir.WriteText("corpus.txt", string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 300)));
        var before = File.ReadAllBytes(corpus);
        var run = dir.File("run");
        var watch = Stopwatch.StartNew();
        var (code, output, err) = Run("train", "--model", "char-lstm", "--data", "text", "--corpus", corpus, "--optimizer", optimizer,
            option, value, "--threads", "1", "--no-tensorboard", "--out", run);
        Assert.True(code == ExitCodes.Usage, $"exit {code}: {output}{err}");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}");
        foreach (var word in new[] { setting, "parameters", $"training it with {optimizer}", "GiB available", advice })
            Assert.True(err.Contains(word, StringComparison.Ordinal), $"'{word}' missing: {err}");
        Assert.False(Directory.Exists(run), "the run folder was written");
        Assert.Equal(["corpus.txt"], Directory.EnumerateFileSystemEntries(dir.Path).Select(Path.GetFileName));
        Assert.Equal(before, File.ReadAllBytes(corpus));
    }

    // ---- language-model batch against the corpus ----

    [Fact]
    public void ABatchThatLeavesStreamsShorterThanTheUnrollIsRefusedWithTheNumbers()
    {
        // 1,000 tokens in 64 streams: 15 tokens each, too few for a window of 32 (33 with the targets).
        var e = Assert.Throws<ArgumentException>(() => LanguageModelTask.ValidateBatchAgainstCorpus(1000, 64, 32, "tiny.txt"));
        foreach (var word in new[] { "'tiny.txt' has 1,000 tokens", "--batch-size 64", "15 tokens per stream", "--unroll 32", "it needs 33",
                     "--batch-size 30 or less", "--unroll 14 or less", "a longer corpus" })
            Assert.True(e.Message.Contains(word, StringComparison.Ordinal), $"'{word}' missing: {e.Message}");
        // Exactly unroll + 1 tokens per stream is one full window.
        LanguageModelTask.ValidateBatchAgainstCorpus(64 * 33, 64, 32, "lines");
        Assert.Throws<ArgumentException>(() => LanguageModelTask.ValidateBatchAgainstCorpus(64 * 33 - 1, 64, 32, "lines"));
        // Too short even for a batch of one: only a longer corpus (or a shorter unroll) helps.
        var one = Assert.Throws<ArgumentException>(() => LanguageModelTask.ValidateBatchAgainstCorpus(10, 1, 32, "ten")).Message;
        Assert.DoesNotContain("--batch-size 0", one);
        Assert.Contains("--unroll 9 or less", one);
    }

    [Fact]
    public void TheLanguageModelTaskRefusesItForLibraryCallers()
    {
        using var corpus = new TokenCorpus
        {
            Name = "tiny",
            Vocabulary = new Vocabulary(["a", "b", "c"]),
            Train = randint(0, 3, [1000], dtype: int64),
            Validation = randint(0, 3, [100], dtype: int64),
            Test = randint(0, 3, [100], dtype: int64),
            Source = "test",
            Level = "char",
        };
        using var model = ModelZoo.Create("char-lstm", new ModelOptions { VocabularySize = 3, HiddenSize = 4, Layers = 1 });
        var e = Assert.Throws<ArgumentException>(() => new LanguageModelTask(model, corpus, batchSize: 64, unroll: 32, CPU, ownsData: false));
        Assert.Contains("15 tokens per stream", e.Message);
        using var fits = new LanguageModelTask(model, corpus, batchSize: 30, unroll: 32, CPU, ownsData: false);
        Assert.Equal(1, fits.MinibatchesPerPass);
    }

    [Fact]
    public void TrainRefusesATinyCorpusWithABigBatchAndWritesNothing()
    {
        using var dir = new TempDir("widevalley-tiny-corpus");
        var corpus = dir.WriteText("tiny.txt", string.Concat(Enumerable.Repeat("a short text. ", 100)));
        var run = dir.File("run");
        var (code, output, err) = Run("train", "--model", "small-char-lstm", "--data", "text", "--corpus", corpus, "--batch-size", "64",
            "--epochs", "1", "--threads", "1", "--no-tensorboard", "--out", run);
        Assert.True(code == ExitCodes.Usage, $"exit {code}: {output}{err}");
        // 1,400 characters, 1,120 for training: 17 per stream of 64, a window of 32 needs 33.
        foreach (var word in new[] { "'tiny.txt' has 1,120 tokens", "--batch-size 64", "17 tokens per stream", "--unroll 32", "--batch-size 33 or less" })
            Assert.True(err.Contains(word, StringComparison.Ordinal), $"'{word}' missing: {err}");
        Assert.False(Directory.Exists(run), "the run folder was written");

        var (fine, _, fineErr) = Run("train", "--model", "small-char-lstm", "--data", "text", "--corpus", corpus, "--batch-size", "33",
            "--epochs", "1", "--threads", "1", "--no-tensorboard", "--out", run);
        Assert.True(fine == ExitCodes.Ok, fineErr);
    }
}
