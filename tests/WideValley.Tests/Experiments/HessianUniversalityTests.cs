using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Reports;
using WideValley.Tests.Reports;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Experiments;

/// <summary>The Sec. 5.1 experiment's settings, its text of lines, its spectrum statistics and its report.</summary>
public sealed class HessianUniversalityTests
{
    /// <summary>English-like printable text of <paramref name="lines"/> source lines, each different.</summary>
    internal static string SourceText(int lines) =>
        string.Concat(Enumerable.Range(0, lines).Select(i => $"Line {i} of the corpus says\tsomething   new about number {i * 7 % 13}.\n"));

    [Fact]
    public void LinesAreCutFromPrintableTextIntoThirtyTwoCharactersAndSplitLikeACharCorpus()
    {
        var source = "%\nA day for firm decisions!!!!!  Or is it?\n\tcaf\u00e9 society\nover\bstrike\n%\n" + SourceText(200);
        var text = HessianUniversality.CharacterLinesText(source, 8);
        var lines = text.Split('\n');
        Assert.Equal(11, lines.Length);   // 10 lines, each ending in a newline
        Assert.Equal("", lines[^1]);
        Assert.All(lines[..^1], line => Assert.Equal(HessianUniversality.LineLength, line.Length));
        // The '%' separators, the non-ASCII line and the backspace line are dropped; white space runs become one space.
        Assert.Equal("A day for firm decisions!!!!! Or", lines[0]);
        Assert.Equal(" is it? Line 0 of the corpus say", lines[1]);
        Assert.All(text, ch => Assert.True(ch == '\n' || ch is >= ' ' and <= '~', $"character U+{(int)ch:X4}"));
    }

    [Fact]
    public void TooLittleTextAndLineCountsThatDoNotSplitAreRefusedWithTheNumbers()
    {
        var short_ = Assert.Throws<ArgumentException>(() => HessianUniversality.CharacterLinesText("only a few words\n", 256));
        Assert.Contains("yields 16 characters", short_.Message);
        Assert.Contains("need 10,240", short_.Message);
        var odd = Assert.Throws<ArgumentException>(() => HessianUniversality.CharacterLinesText(SourceText(100), 10));
        Assert.Contains("multiple of 4", odd.Message);
    }

    [Fact]
    public void TheFileOfLinesIsNamedByItsContent()
    {
        using var dir = new TempDir();
        var a = dir.WriteText("a.txt", SourceText(100));
        var b = dir.WriteText("b.txt", SourceText(101).Replace("Line 0", "Row 0", StringComparison.Ordinal));
        var first = HessianUniversality.WriteCharacterLines(a, dir.File("lines"), 8);
        Assert.Equal(first, HessianUniversality.WriteCharacterLines(a, dir.File("lines"), 8));
        Assert.NotEqual(first, HessianUniversality.WriteCharacterLines(b, dir.File("lines"), 8));
        Assert.Equal(HessianUniversality.CharacterLinesText(File.ReadAllText(a), 8), File.ReadAllText(first));
        var missing = Assert.Throws<DataException>(() => HessianUniversality.WriteCharacterLines(dir.File("none.txt"), dir.File("lines"), 8));
        Assert.Contains("none.txt", missing.Message);
    }

    [Fact]
    public void TheCharLstmHasThePapersSizeAndEachTrainingStepIsEveryLineFromTheZeroState()
    {
        using var dir = new TempDir();
        var corpus = dir.WriteText("corpus.txt", SourceText(200));
        var lines = HessianUniversality.WriteCharacterLines(corpus, dir.Path, HessianUniversality.TrainingLines(Budget.Smoke));
        var network = HessianUniversality.Network(HessianUniversality.CharLstm);
        var config = HessianUniversality.TrainingConfig(network, Budget.Smoke, new ExperimentData { Corpus = corpus }, lines, threads: 1);
        using var prepared = RunSetup.Prepare(config, outputDirectory: null);
        var task = (LanguageModelTask)prepared.Task;
        // 96 one-hot characters whatever the text uses: the paper's 32,640 parameters.
        Assert.Equal(96, task.Corpus.Vocabulary.Count);
        Assert.Equal(32_640, prepared.Parameters);
        // 64 lines of 32 characters and a newline, one batch row each, one BPTT window of 32 per pass.
        Assert.Equal(64 * 33, task.TrainingSize);
        Assert.Equal(1.0, task.MinibatchesPerPass);
        var first = string.Concat(task.Corpus.Train.narrow(0, 0, 33).data<long>().ToArray().Select(i => task.Corpus.Vocabulary.Tokens[(int)i]));
        Assert.Equal(File.ReadAllText(lines)[..33], first);
    }

    [Fact]
    public void AFixedCharacterSetRefusesOtherCharactersWithTheirOffset()
    {
        using var dir = new TempDir();
        var path = dir.WriteText("t.txt", "plain ascii\nthen caf\u00e9\n");
        var e = Assert.Throws<DataException>(() => TextCorpora.LoadCharacters(path, characterSet: TextCorpora.AsciiCharacterSet));
        Assert.Contains("character 20 (U+00E9)", e.Message);
        Assert.Throws<ArgumentException>(() => TextCorpora.LoadCharacters(path, characterSet: "ebcdic"));
    }

    [Fact]
    public void NetworksParseInThePapersOrderAndUnknownOrRepeatedOnesAreRefused()
    {
        Assert.Equal(["small-lenet", "small-char-lstm"], HessianUniversality.ParseNetworks("small-char-lstm, small-lenet").Select(n => n.Name));
        Assert.Contains("unknown network 'resnet'", Assert.Throws<ArgumentException>(() => HessianUniversality.ParseNetworks("small-lenet,resnet")).Message);
        Assert.Contains("names 'allcnn' twice", Assert.Throws<ArgumentException>(() => HessianUniversality.ParseNetworks("allcnn,allcnn")).Message);
        Assert.Contains("at least one", Assert.Throws<ArgumentException>(() => HessianUniversality.ParseNetworks(" , ")).Message);
    }

    [Fact]
    public void ThePaperBudgetMeasuresEveryEigenvalueOfTheWholeNetworkAndTheOthersLess()
    {
        foreach (var network in HessianUniversality.Networks.Where(n => n.Kind == SpectrumMethod.Exact))
        {
            var paper = HessianUniversality.Plan(network, Budget.Paper);
            Assert.Equal(SpectrumMethod.Exact, paper.Method);
            Assert.Null(paper.Parameters);
            Assert.Equal(network.IsLanguageModel ? 256 : 1000, paper.Samples);
            Assert.Equal(SpectrumMethod.LanczosAndSlq, HessianUniversality.Plan(network, Budget.Small).Method);
            var smoke = HessianUniversality.Plan(network, Budget.Smoke);
            Assert.True(smoke.Method == SpectrumMethod.LanczosAndSlq || smoke.Parameters is not null, network.Name);
        }
        var allcnn = HessianUniversality.Network(HessianUniversality.AllCnn);
        Assert.All(Budgets.Names.Select(Budgets.Parse), b => Assert.Equal(SpectrumMethod.DiagonalFisher, HessianUniversality.Plan(allcnn, b).Method));
        Assert.Contains("--cifar10-dir", HessianUniversality.SkipReason(allcnn, new ExperimentData()));
        // The paper's optimizers: Adam, momentum SGD, Adam; every budget trains with the same settings but length.
        var data = new ExperimentData();
        var lenet = HessianUniversality.TrainingConfig(HessianUniversality.Network(HessianUniversality.SmallLeNet), Budget.Paper, data, null);
        var fc = HessianUniversality.TrainingConfig(HessianUniversality.Network(HessianUniversality.SmallMnistFc), Budget.Paper, data, null);
        Assert.Equal(("adam", 30, (long?)null), (lenet.Optimizer, lenet.Epochs, lenet.MaxTrainSamples));
        Assert.Equal(("sgd", 0.9), (fc.Optimizer, Assert.IsType<WideValley.Optim.SgdOptions>(fc.OptimizerOptions).Momentum));
        var smallFc = HessianUniversality.TrainingConfig(HessianUniversality.Network(HessianUniversality.SmallMnistFc), Budget.Small, data, null);
        Assert.Equal(fc with { MaxTrainSamples = HessianUniversality.SmallBudgetTrainingImages }, smallFc);
    }

    [Fact]
    public void SummaryOfEigenvaluesCountsBandsSignsAndTails()
    {
        double[] eigenvalues = [-0.5, -0.02, -1e-3, -2e-5, 0, 3e-6, 5e-5, 2e-3, 0.05, 4.0];
        var s = SpectrumSummary.FromEigenvalues(eigenvalues);
        Assert.Equal(10, s.Count);
        Assert.Equal([0.2, 0.4, 0.4, 0.6], s.FractionAbsBelow);
        Assert.Equal(0.6, s.FractionBelow(1e-2));
        Assert.Equal((4.0, -0.5), (s.LambdaMax, s.LambdaMin));
        Assert.Equal(0.3, s.NegativeFraction, 12);   // below -1e-4: -0.5, -0.02, -1e-3
        Assert.Equal((0.2, 0.2), (s.RightTailFraction, s.LeftTailFraction));
        Assert.Equal(1.0, s.TailMassRatio);
        Assert.Equal(8.0, s.TailExtentRatio);
        // No left tail and a round-off-sized lambda_min: both ratios are undefined rather than huge.
        var flat = SpectrumSummary.FromEigenvalues([-1e-8, 0, 1e-3, 2.0]);
        Assert.Null(flat.TailMassRatio);
        Assert.Null(flat.TailExtentRatio);
        Assert.Throws<ArgumentException>(() => SpectrumSummary.FromEigenvalues([1, double.NaN]));
        Assert.Throws<ArgumentException>(() => s.FractionBelow(0.5));
    }

    [Fact]
    public void SummaryOfAQuadratureWeighsItsNodesAndTakesTheExtremesFromLanczos()
    {
        // Two probes; weights sum to 1 per probe.
        var slq = new SlqResult([[-0.3, 1e-6, 2.0], [-1e-5, 0.5, 3.0]], [[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]], 1000, 6);
        var s = SpectrumSummary.FromQuadrature(slq, lambdaMax: 3.1, lambdaMin: -0.31);
        Assert.Null(s.Count);
        Assert.Equal(0.25, s.FractionBelow(1e-5), 12);    // probe 1: 0.5, probe 2: 0 (|-1e-5| is not below 1e-5)
        Assert.Equal(0.5, s.FractionBelow(1e-4), 12);     // 0.5 and 0.5
        Assert.Equal((3.1, -0.31), (s.LambdaMax, s.LambdaMin));
        Assert.Equal(0.125, s.LeftTailFraction, 12);
        Assert.Equal(0.375, s.RightTailFraction, 12);   // 0.25 and 0.5
    }

    [Fact]
    public void ParallelColumnWorkersCopyAnLstmAndAgreeWithOne()
    {
        TorchRuntime.EnsureInitialized();
        TorchRuntime.Seed(3);
        // Four hidden units: the copy must take the size over from the measured model, not from the zoo's default of 48.
        using var model = (LstmLanguageModel)ModelZoo.Create(HessianUniversality.CharLstm, new ModelOptions { VocabularySize = 7, HiddenSize = 4 });
        var tokens = randint(0, 7, [6, 5], dtype: ScalarType.Int64);
        var data = new List<(Tensor, Tensor)> { (tokens.narrow(1, 0, 4), tokens.narrow(1, 1, 4)) };
        var options = new LandscapeOptions
        {
            Parameters = ParameterSelection.ByPrefix("layers.0.bias_hh_l0"),
            ComputeType = ScalarType.Float64,
            ModelFactory = ZooCopies.FactoryFor(model),
            Loss = (logits, targets) => nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1)),
        };
        using var hvp = new Hvp(model, data, options);
        using var one = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, Workers = 1 });
        using var two = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, Workers = 2 });
        Assert.Equal(16, one.Hessian.shape[0]);
        Assert.True(one.Hessian.abs().max().ToDouble() > 1e-6, "the block is not all zero");
        Assert.True(one.Hessian.sub(two.Hessian).abs().max().ToDouble() < 1e-12);
    }

    [Fact]
    public void TheReportHasEveryNetworkBothPlotKindsAndParsableNumbers()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        // 400 eigenvalues whose bands are easy to count: 25% below 1e-5, 50% below 1e-4, 75% below 1e-3, 90% below 1e-2.
        var eigenvalues = Enumerable.Repeat(0.0, 100).Concat(Enumerable.Repeat(5e-5, 100)).Concat(Enumerable.Repeat(-5e-4, 100))
            .Concat(Enumerable.Repeat(5e-3, 60)).Concat(Enumerable.Repeat(0.5, 29)).Append(2.0).Concat(Enumerable.Repeat(-0.05, 10)).ToArray();
        var slq = new SlqResult([[-0.2, 1e-6, 1.5], [-1e-3, 2e-6, 0.9]], [[0.05, 0.9, 0.05], [0.05, 0.85, 0.1]], 32_640, 24);
        UniversalityResult Result(string name) => new()
        {
            Network = HessianUniversality.Network(name),
            Dataset = DatasetCatalog.FashionMnist,
            Plan = HessianUniversality.Plan(HessianUniversality.Network(name), Budget.Small),
        };
        var results = new List<UniversalityResult>
        {
            Result(HessianUniversality.SmallLeNet) with
            {
                Plan = HessianUniversality.Plan(HessianUniversality.Network(HessianUniversality.SmallLeNet), Budget.Paper),
                Parameters = 47_658, TrainingOutcome = "test error 9.64%", TrainingMetric = ("test_error_percent", 9.64), Samples = 1000, Dimension = 400,
                Dtype = "float32", Eigenvalues = eigenvalues, Summary = SpectrumSummary.FromEigenvalues(eigenvalues), MeasurementSeconds = 12,
            },
            Result(HessianUniversality.SmallMnistFc) with { Pending = "not measured yet; run the command again" },
            Result(HessianUniversality.CharLstm) with
            {
                Dataset = "lines of corpus.txt", Parameters = 32_640, TrainingOutcome = "training perplexity 1.2", Samples = 256, SampleUnit = "lines",
                Dimension = 32_640, Dtype = "float32", Quadrature = slq, Summary = SpectrumSummary.FromQuadrature(slq, 1.6, -0.25),
            },
            Result(HessianUniversality.AllCnn) with { Dataset = "cifar10", SkipReason = "no CIFAR-10 folder was given" },
        };
        var input = new UniversalityReportInput(HessianUniversalityReport.FileStem(Budget.Small), "Sec. 5.1", ["intro"], Budget.Small,
            "widevalley reproduce hessian-universality --budget small", "test machine", results);
        var files = HessianUniversalityReport.Write(dir.Path, input);
        Assert.Equal(dir.File("hessian-universality-small.md"), files[^1]);
        Assert.Empty(dir.Leftovers());

        var md = File.ReadAllText(files[^1]);
        foreach (var title in new[] { "small-LeNet", "small-mnistfc", "char-LSTM (small)", "All-CNN-BN" })
            Assert.Contains($"| {title} |", md);
        Assert.Equal(4, md.Split('\n').Count(l => l.StartsWith("| ↳ paper", StringComparison.Ordinal)));
        Assert.Contains("skipped: no CIFAR-10 folder was given", md);
        Assert.Contains("not measured yet", md);
        var row = md.Split('\n').First(l => l.StartsWith("| small-LeNet |", StringComparison.Ordinal)).Split('|').Select(c => c.Trim()).ToArray();
        Assert.Equal(["25.00%", "50.00%", "75.00%", "90.00%", "2.000", "-0.050", "27.50%", "7.50%", "2.50%", "3", "40"], row[7..18]);
        Assert.Contains("|λ| < 0.0001: 50.00% against the paper's about 94%: 44.0 points fewer.", md);
        Assert.Contains("λ_max 2.000 against about 40: 20 times smaller in magnitude.", md);
        Assert.Contains("90.00% of |λ| < 0.01, so this holds.", md);
        Assert.Contains("an SLQ estimate", md);

        var json = JsonNode.Parse(File.ReadAllText(dir.File("hessian-universality-small.json")))!;
        var networks = json["networks"]!.AsArray();
        Assert.Equal(["small-lenet", "small-mnistfc", "small-char-lstm", "allcnn"], networks.Select(n => (string)n!["network"]!));
        Assert.Equal(0.5, (double)networks[0]!["fraction_abs_below"]!["0.0001"]!);
        Assert.Equal(0.94, (double)networks[0]!["paper"]!["fraction_abs_below"]!["0.0001"]!);
        Assert.Equal(40.0, (double)networks[0]!["tail_extent_ratio"]!);
        Assert.Equal(1.6, (double)networks[2]!["lambda_max"]!);
        Assert.True((bool)networks[3]!["skipped"]!);
        Assert.Null(networks[1]!["lambda_max"]);

        foreach (var (name, title) in new[] { ("small-lenet", "small-LeNet"), ("small-char-lstm", "char-LSTM (small)") })
        {
            var stem = dir.File($"hessian-universality-small-{name}");
            ImageChecks.AssertPngFile(stem + ".png", 1500, 520);
            Assert.Contains(ImageChecks.Texts(ImageChecks.AssertSvgFile(stem + ".svg", 1500, 520)), t => t.Contains(title, StringComparison.Ordinal));
            Assert.Contains($"hessian-universality-small-{name}.png", md);
        }
        Assert.False(File.Exists(dir.File("hessian-universality-small-allcnn.png")));
    }

    [Theory]
    // small-mnistfc at the paper budget: λ_max 5.9 in float32.
    [InlineData(3.544e-7, "float32", "so even the 1e-5 band is well above round-off.")]
    // small-LeNet: λ_max 156 in float32 puts only the 1e-5 band near round-off.
    [InlineData(9.3e-6, "float32", "so the |λ| < 1e-5 band is within a factor 10 of round-off and reads as \"numerically zero\".")]
    // The char-LSTM: λ_max 1111 in float32 puts the paper's 1e-5 band below round-off and the 1e-4 band near it.
    [InlineData(6.624e-5, "float32", "so the |λ| < 1e-5 band lies below round-off: an eigenvalue that small cannot be told from zero in float32, so that fraction " +
                                    "counts numerical zeros, not measured flatness (`widevalley hessian --dtype float64` resolves them); the |λ| < 1e-4 band is " +
                                    "within a factor 10 of round-off and reads as \"numerically zero\".")]
    [InlineData(2e-4, "float32", "so the |λ| < 1e-5 and |λ| < 1e-4 bands lie below round-off")]
    [InlineData(1.2e-13, "float64", "so even the 1e-5 band is well above round-off.")]
    public void ThePrecisionSentenceSaysWhichBandsRoundOffDecides(double floor, string dtype, string expected)
    {
        var sentence = HessianUniversalityReport.PrecisionSentence(floor, dtype);
        Assert.StartsWith($"Precision: computed in {dtype}; eigenvalues are accurate to about ε·‖H‖ = ", sentence);
        Assert.Contains(expected, sentence);
    }
}
