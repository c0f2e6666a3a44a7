using System.Globalization;
using WideValley.Connectivity;
using WideValley.Data;
using WideValley.Models;

namespace WideValley.Experiments;

/// <summary>
/// Settings of the networks' part of the level-set experiment (Freeman and Bruna, ICLR 2017, Fig. 1, MNIST and PTB
/// panels): Freeman and Bruna's MNIST CNN (<see cref="ModelZoo.FbMnistCnnName"/>) on Fashion-MNIST over test-error levels,
/// and the small char-LSTM (<see cref="ModelZoo.SmallCharLstmName"/>) on a text corpus over test-perplexity levels, or,
/// when the Penn Treebank is given (<see cref="WithPtb"/>), the paper's own PTB network (<see cref="ModelZoo.PtbSmallLstmName"/>)
/// on it over test-perplexity levels; the
/// pairs per level, the data subsets, the step budgets and the Bézier curves. <see cref="For"/> gives each budget's values.
/// </summary>
public sealed record LevelSetsNetworkSettings
{
    /// <summary>The task name of the CNN: the zoo name of Freeman and Bruna's MNIST network.</summary>
    public const string Cnn = ModelZoo.FbMnistCnnName;
    /// <summary>The task name of the char-LSTM: its zoo name.</summary>
    public const string CharLstm = ModelZoo.SmallCharLstmName;
    /// <summary>
    /// The task name of the paper's own PTB network (Zaremba et al.'s small word LSTM as Freeman and Bruna's PTBRNN.py
    /// uses it): its zoo name. Run on the Penn Treebank from <see cref="PtbDir"/>.
    /// </summary>
    public const string PtbLstm = ModelZoo.PtbSmallLstmName;
    /// <summary>Debian's Fashion-MNIST folder (package fashion-mnist), the default <see cref="FashionMnistDir"/>.</summary>
    public const string DefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";
    /// <summary>Debian's fortunes file (package fortunes-min), the default <see cref="Corpus"/>.</summary>
    public const string DefaultCorpus = "/usr/share/games/fortunes/fortunes";

    /// <summary>The budget these settings were made for.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;

    /// <summary>
    /// The networks run, in order (distinct): any of <see cref="Cnn"/>, <see cref="CharLstm"/> and <see cref="PtbLstm"/>
    /// (which needs <see cref="PtbDir"/>; <see cref="WithPtb"/> puts it in the char-LSTM's place).
    /// </summary>
    public IReadOnlyList<string> Networks { get; init; } = [Cnn, CharLstm];

    /// <summary>Test-error levels L0 of the CNN, in percent, ascending.</summary>
    public IReadOnlyList<double> CnnLevels { get; init; } = [60];

    /// <summary>Test-perplexity levels L0 of the char-LSTM, ascending.</summary>
    public IReadOnlyList<double> LstmLevels { get; init; } = [20, 30];

    /// <summary>
    /// Test-perplexity levels L0 of <see cref="PtbLstm"/>, ascending (the paper's Fig. 1: 135, 150, 200, 250, 300, 700).
    /// </summary>
    public IReadOnlyList<double> PtbLevels { get; init; } = [700];

    /// <summary>Endpoint pairs per level; the 2·Pairs endpoints of a network are shared by all its levels.</summary>
    public int Pairs { get; init; } = 1;

    /// <summary>The seed every initialisation, minibatch order and curve is derived from.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Folder with Fashion-MNIST's four idx files (the CNN's data).</summary>
    public string FashionMnistDir { get; init; } = DefaultFashionMnistDir;

    /// <summary>UTF-8 text file the char-LSTM models (cut 80 / 10 / 10 into training, validation and test text).</summary>
    public string Corpus { get; init; } = DefaultCorpus;

    /// <summary>
    /// Folder of the Penn Treebank (ptb.train.txt, ptb.valid.txt, ptb.test.txt, as in Mikolov's simple-examples), the
    /// data of <see cref="PtbLstm"/>; null: no PTB (then <see cref="Key"/> is what it was before PTB was added).
    /// </summary>
    public string? PtbDir { get; init; }

    /// <summary>The CNN trains on the first this many Fashion-MNIST training images (null: all 60,000).</summary>
    public long? CnnTrainingImages { get; init; }

    /// <summary>
    /// The CNN's levels are measured on the first this many test images (ours; the authors use the test set: 10,000 is
    /// all of it). A fixed subset, so every measure of a run is on the same images.
    /// </summary>
    public int CnnTestImages { get; init; } = 10_000;

    /// <summary>The CNN's minibatch (the authors' MNIST.py: 100).</summary>
    public int CnnBatchSize { get; init; } = 100;

    /// <summary>The CNN's Adam learning rate, for endpoints and beads (the authors' MNIST.py: 1e-4).</summary>
    public double CnnLearningRate { get; init; } = 1e-4;

    /// <summary>The char-LSTM's rows per minibatch (ours).</summary>
    public int LstmBatchSize { get; init; } = 32;

    /// <summary>The char-LSTM's BPTT window (the small char-LSTM's 32).</summary>
    public int LstmUnroll { get; init; } = 32;

    /// <summary>The char-LSTM's Adam learning rate (ours: 3e-3, with the gradient norm clipped at 5 as the authors' PTB script).</summary>
    public double LstmLearningRate { get; init; } = 3e-3;

    /// <summary>The PTB LSTM's rows per minibatch (the authors' PTB script, Zaremba et al.'s small config: 20).</summary>
    public int PtbBatchSize { get; init; } = 20;

    /// <summary>The PTB LSTM's BPTT window (the authors' PTB script: 20 unrolled steps).</summary>
    public int PtbUnroll { get; init; } = 20;

    /// <summary>
    /// The PTB LSTM's plain SGD learning rate for endpoints and beads, with the gradient norm clipped at 5 (the authors'
    /// PTB script: 1.0; its halving per epoch after epoch 4 is not reproduced: no endpoint here trains that long).
    /// </summary>
    public double PtbLearningRate { get; init; } = 1.0;

    /// <summary>
    /// The PTB LSTM's levels are measured on the first this many test words (null: the whole test split of about 82,000
    /// words, as the authors). Ours, for speed: one measure over all of it is some 330 GFLOP of softmax alone.
    /// </summary>
    public long? PtbTestTokens { get; init; }

    /// <summary>SGD steps of the PTB LSTM's Bézier curve (one bend) between each pair (0: no curves).</summary>
    public long PtbCurveSteps { get; init; } = 40;

    /// <summary>The curve's SGD learning rate for the PTB LSTM (momentum 0.9; ours, the char-LSTM's value, not measured on PTB).</summary>
    public double PtbCurveLearningRate { get; init; } = 0.05;

    /// <summary>Most optimizer steps one endpoint may take from its initialisation to the lowest level.</summary>
    public long EndpointMaxSteps { get; init; } = 500;

    /// <summary>Most optimizer steps one bead may take (<see cref="ModuleProblemOptions.MaxSteps"/>).</summary>
    public long BeadMaxSteps { get; init; } = 300;

    /// <summary>Optimizer steps between two measures of the level metric while an endpoint or a bead trains.</summary>
    public int CheckEvery { get; init; } = 10;

    /// <summary>G, the string's grid per segment (the authors' MNIST and PTB scripts: 20).</summary>
    public int GridPoints { get; init; } = 20;

    /// <summary>d_max, depths of the string search (the authors: 10).</summary>
    public int MaxDepth { get; init; } = 10;

    /// <summary>SGD steps of the CNN's Bézier curve (one bend) between each pair (0: no curves).</summary>
    public long CnnCurveSteps { get; init; } = 40;

    /// <summary>SGD steps of the char-LSTM's Bézier curve (one bend) between each pair (0: no curves).</summary>
    public long LstmCurveSteps { get; init; } = 40;

    /// <summary>The curve's SGD learning rate for the CNN (momentum 0.9).</summary>
    public double CnnCurveLearningRate { get; init; } = 0.01;

    /// <summary>The curve's SGD learning rate for the char-LSTM (momentum 0.9).</summary>
    public double LstmCurveLearningRate { get; init; } = 0.05;

    /// <summary>E, the points t = k/(E−1) the curve and the straight line are measured at.</summary>
    public int CurveEvaluationPoints { get; init; } = 21;

    /// <summary>
    /// N, the chords the curve's length is summed over (ours: 100; the library's default 1,000 costs 1,000 float64
    /// vectors of 3.3 M entries per CNN curve, about 20 s here; the chord sum of a quadratic Bézier falls short of its
    /// length by O(1/N²), about 10⁻⁵ relative at N = 100).
    /// </summary>
    public int CurveLengthSteps { get; init; } = 100;

    /// <summary>
    /// Each budget's values (ours; the machine: two shared cores, where a CNN step of 100 images costs 0.2 to 0.4 s).
    /// Smoke (tests, about half a minute): one pair; the CNN at 60% test error on 1,000 training images in batches of 25,
    /// measured on 300 test images; the char-LSTM at perplexity 20 and 30; grid 5, depth 3, 40 curve steps.
    /// Small: two pairs; the CNN at 15%, 20% and 50% on the full training set, measured on the first 1,000 test images
    /// (a 50% level reaches about 28% at the first measure after 50 steps, so a 30% level would reuse the same endpoints;
    /// it was dropped after a measured run); the char-LSTM at perplexity 10, 12, 15 and 20 (it reaches
    /// about 8.5 on the fortunes text in 600 steps); grid 20, depth 10; Bézier curves of 300 CNN steps (half an epoch;
    /// 100 steps brought the 20% level's barrier from about 50 to about 8 points, still above the level) and 1,000 LSTM
    /// steps (seconds).
    /// Paper: the CNN at 9..30% on the whole test set with 4 pairs (Fashion-MNIST's best is near 9%), the char-LSTM at
    /// 8..30 with 10 pairs, curves of 3,000 CNN steps (5 epochs) and 5,000 LSTM steps.
    /// The PTB LSTM (only with <see cref="WithPtb"/>): smoke at perplexity 700 on the first 2,000 test words (for tests on
    /// a small PTB-format folder); small at 300 and 700, the two highest of Fig. 1 (an SGD run at lr 1.0 passes them within
    /// its first epoch of about 2,300 steps), on the first 10,000 test words with curves of 1,000 steps; paper at Fig. 1's
    /// 135, 150, 200, 250, 300 and 700 on the whole test split, curves of 5,000 steps (30,000 endpoint steps are the
    /// authors' 13 epochs). These values are ours and were not measured on PTB here (no PTB on this machine); on a
    /// synthetic folder of PTB's shape (10,000 words, 50,000 training and 21,000 test words) 129 SGD steps of 20 × 20 words
    /// and one measure of the test words took 36 s under load, so a grid of 20 measures of 10,000 words costs about a minute.
    /// </summary>
    public static LevelSetsNetworkSettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new LevelSetsNetworkSettings
        {
            Budget = budget, CnnLevels = [60], LstmLevels = [20, 30], Pairs = 1, CnnTrainingImages = 1_000, CnnTestImages = 300, CnnBatchSize = 25,
            EndpointMaxSteps = 500, BeadMaxSteps = 300, CheckEvery = 10, GridPoints = 5, MaxDepth = 3, CnnCurveSteps = 40, LstmCurveSteps = 40, CurveEvaluationPoints = 6,
            PtbLevels = [700], PtbTestTokens = 2_000, PtbCurveSteps = 40,
        },
        Budget.Small => new LevelSetsNetworkSettings
        {
            Budget = budget, CnnLevels = [15, 20, 50], LstmLevels = [10, 12, 15, 20], Pairs = 2, CnnTestImages = 1_000,
            EndpointMaxSteps = 3_000, BeadMaxSteps = 2_000, CheckEvery = 50, GridPoints = 20, MaxDepth = 10, CnnCurveSteps = 300, LstmCurveSteps = 1_000,
            CurveEvaluationPoints = 21, PtbLevels = [300, 700], PtbTestTokens = 10_000, PtbCurveSteps = 1_000,
        },
        Budget.Paper => new LevelSetsNetworkSettings
        {
            Budget = budget, CnnLevels = [9, 10, 12, 15, 20, 30], LstmLevels = [8, 9, 10, 12, 15, 20, 30], Pairs = 4, CnnTestImages = 10_000,
            EndpointMaxSteps = 30_000, BeadMaxSteps = ModuleProblemOptions.DefaultMaxSteps, CheckEvery = 100, GridPoints = 20, MaxDepth = 10,
            CnnCurveSteps = 3_000, LstmCurveSteps = 5_000, CurveEvaluationPoints = 41, PtbLevels = [135, 150, 200, 250, 300, 700], PtbTestTokens = null,
            PtbCurveSteps = 5_000,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>
    /// These settings with the Penn Treebank in <paramref name="ptbDir"/>: <see cref="PtbLstm"/>, the paper's own PTB
    /// network, takes the char-LSTM's place in <see cref="Networks"/> (the char-LSTM only stands in for PTB; running both
    /// would double the language-model cost on two shared cores for a task the paper does not have).
    /// </summary>
    public LevelSetsNetworkSettings WithPtb(string ptbDir) => this with
    {
        PtbDir = ptbDir,
        Networks = Networks.Contains(PtbLstm) ? Networks : [.. Networks.Select(n => n == CharLstm ? PtbLstm : n).Append(PtbLstm).Distinct()],
    };

    /// <summary>The level grid of <paramref name="network"/>.</summary>
    /// <exception cref="ArgumentException">Not one of the three networks.</exception>
    public IReadOnlyList<double> Levels(string network) => network switch
    {
        Cnn => CnnLevels,
        CharLstm => LstmLevels,
        PtbLstm => PtbLevels,
        _ => throw new ArgumentException($"unknown network '{network}'; expected {Cnn}, {CharLstm} or {PtbLstm}", nameof(network)),
    };

    /// <summary>SGD steps of the Bézier curve of <paramref name="network"/> (0: none).</summary>
    public long CurveSteps(string network) => network switch
    {
        CharLstm => LstmCurveSteps,
        PtbLstm => PtbCurveSteps,
        _ => CnnCurveSteps,
    };

    /// <summary>The curve's SGD learning rate of <paramref name="network"/>.</summary>
    public double CurveLearningRate(string network) => network switch
    {
        CharLstm => LstmCurveLearningRate,
        PtbLstm => PtbCurveLearningRate,
        _ => CnnCurveLearningRate,
    };

    /// <summary>What the levels of <paramref name="network"/> measure: the CNN's test error, the LSTMs' test perplexity.</summary>
    public static LevelMetric MetricOf(string network) => network is CharLstm or PtbLstm ? LevelMetric.Perplexity : LevelMetric.ErrorPercent;

    /// <summary>
    /// Seed of the endpoint initialisations of <paramref name="network"/> (endpoint i draws from this plus i); the same
    /// for every level, since the endpoints are shared.
    /// </summary>
    public ulong EndpointSeed(string network) =>
        unchecked(Seed * 1_000_003 + network switch { CharLstm => 700_000_000UL, PtbLstm => 800_000_000UL, _ => 600_000_000UL });

    /// <summary>
    /// The string search at <paramref name="level"/>: the authors' MNIST preset (<see cref="StringSamplingOptions.ForMnist"/>)
    /// for the CNN, their PTB preset (<see cref="StringSamplingOptions.ForLanguageModel"/>) for the LSTMs, with
    /// <see cref="GridPoints"/> and <see cref="MaxDepth"/>.
    /// </summary>
    public StringSamplingOptions SamplingOptions(string network, double level) =>
        (MetricOf(network) == LevelMetric.Perplexity ? StringSamplingOptions.ForLanguageModel(level) : StringSamplingOptions.ForMnist(level)) with
        {
            GridPoints = GridPoints, MaxDepth = MaxDepth,
        };

    /// <summary>
    /// Everything that decides a level's numbers except the network and L0, in one line: a finished piece or endpoint is
    /// reused only when it was made with the same key (<see cref="KeyOf"/>). The data are named by file name (their folder
    /// may move). Without <see cref="PtbDir"/> it is exactly the key of the settings before PTB was added, so pieces made
    /// then are still reused; with it, the PTB LSTM's values are appended.
    /// </summary>
    public string Key => PtbDir is null ? BaseKey : BaseKey + PtbKey;

    /// <summary>
    /// The key the pieces and endpoint snapshots of <paramref name="network"/> are made and checked with: <see cref="Key"/>
    /// for <see cref="PtbLstm"/>, the key without the PTB values for the others (which PTB does not change), so that adding
    /// <see cref="PtbDir"/> to a run keeps its CNN's finished pieces.
    /// </summary>
    public string KeyOf(string network) => network == PtbLstm ? Key : BaseKey;

    string PtbKey => string.Create(CultureInfo.InvariantCulture,
        $";ptb={Path.GetFileName(Path.TrimEndingDirectorySeparator(PtbDir ?? ""))};ptb-batch={PtbBatchSize};ptb-unroll={PtbUnroll};ptb-lr={PtbLearningRate:R};" +
        $"ptb-test={PtbTestTokens?.ToString(CultureInfo.InvariantCulture) ?? "all"};ptb-curve={PtbCurveSteps},{PtbCurveLearningRate:R}");

    string BaseKey
    {
        get
        {
            var cnn = StringSamplingOptions.ForMnist(1);
            var lstm = StringSamplingOptions.ForLanguageModel(1);
            return string.Create(CultureInfo.InvariantCulture,
                $"networks;pairs={Pairs};seed={Seed};cnn-train={CnnTrainingImages?.ToString(CultureInfo.InvariantCulture) ?? "all"};cnn-test={CnnTestImages};" +
                $"cnn-batch={CnnBatchSize};cnn-lr={CnnLearningRate:R};corpus={Path.GetFileName(Corpus)};lstm-batch={LstmBatchSize};lstm-unroll={LstmUnroll};" +
                $"lstm-lr={LstmLearningRate:R};endpoint-steps={EndpointMaxSteps};bead-steps={BeadMaxSteps};check={CheckEvery};grid={GridPoints};depth={MaxDepth};" +
                $"cnn-search={cnn.InsertAt},{cnn.BeadTargetFactor:R},{cnn.AcceptFactor:R};lstm-search={lstm.InsertAt},{lstm.BeadTargetFactor:R},{lstm.AcceptFactor:R};" +
                $"curve-steps={CnnCurveSteps},{LstmCurveSteps};curve-lr={CnnCurveLearningRate:R},{LstmCurveLearningRate:R};curve-points={CurveEvaluationPoints};curve-chords={CurveLengthSteps}");
        }
    }

    /// <summary>
    /// The protocol of the networks that run, in one paragraph for the report: data, optimizers, levels' measurement,
    /// string and curve settings, and which choices are ours.
    /// </summary>
    public string Describe()
    {
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string>();
        foreach (var network in Networks)
        {
            var search = SamplingOptions(network, 1);
            var common = string.Create(c,
                $"grid {search.GridPoints}, t* = {(search.InsertAt == InsertionRule.Argmax ? "argmax" : "0.5")}, α = {search.BeadTargetFactor}, m = {search.AcceptFactor} (the authors'); " +
                $"Bézier curves of {CurveSteps(network):N0} SGD steps (lr {CurveLearningRate(network):G3}, momentum 0.9) measured at {CurveEvaluationPoints} points");
            parts.Add(network switch
            {
                Cnn => string.Create(c,
                    $"{Cnn} (the paper's MNIST CNN) on Fashion-MNIST{(CnnTrainingImages is long n ? $" ({n:N0} training images)" : "")}: Adam lr {CnnLearningRate:G3}, batch {CnnBatchSize} (the authors'); " +
                    $"levels of test error measured on the first {CnnTestImages:N0} test images{(CnnTestImages < 10_000 ? " (ours: the paper uses the whole test set)" : "")}; {common}"),
                CharLstm => string.Create(c,
                    $"{CharLstm} on {Path.GetFileName(Corpus)} (characters, ours: a stand-in for PTB): Adam lr {LstmLearningRate:G3}, batch {LstmBatchSize}, {LstmUnroll} unrolled steps, " +
                    $"gradient clip 5; levels of test perplexity; {common}"),
                _ => string.Create(c,
                    $"{PtbLstm} on the Penn Treebank: SGD lr {PtbLearningRate:G3}, batch {PtbBatchSize}, {PtbUnroll} unrolled steps, gradient clip 5 (the authors'); " +
                    $"levels of test perplexity{(PtbTestTokens is long t ? $" on the first {t:N0} test words (ours)" : "")}; {common}"),
            });
        }
        return string.Create(c,
            $"Networks, {Pairs} pairs per level: {string.Join("; ", parts)}. Ours: each endpoint is trained once, down the levels from the highest, and its snapshot " +
            $"for a level is its first measure (every {CheckEvery} steps) at or below α·L0, so the levels share the training; at most {EndpointMaxSteps:N0} steps per endpoint " +
            $"and {BeadMaxSteps:N0} per bead; depth at most {MaxDepth}. Seed {Seed}.");
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first invalid value, with what was expected; a missing data
    /// folder or corpus of a network that is run is an error naming the path.
    /// </summary>
    public void Validate()
    {
        const string s = nameof(LevelSetsNetworkSettings);
        if (Networks is null || Networks.Count == 0)
            throw new ArgumentException($"{s}.Networks: at least one network ({Cnn}, {CharLstm}, {PtbLstm}) is needed");
        if (Networks.FirstOrDefault(n => n is not (Cnn or CharLstm or PtbLstm)) is { } unknown)
            throw new ArgumentException($"{s}.Networks: unknown network '{unknown}'; expected {Cnn}, {CharLstm} or {PtbLstm}");
        if (Networks.Distinct().Count() != Networks.Count)
            throw new ArgumentException($"{s}.Networks: networks must be distinct, got {string.Join(", ", Networks)}");
        foreach (var network in Networks)
        {
            var name = network switch { Cnn => nameof(CnnLevels), CharLstm => nameof(LstmLevels), _ => nameof(PtbLevels) };
            var levels = Levels(network) ?? throw new ArgumentException($"{s}.{name}: null; {network} needs at least one level");
            var shown = string.Join(", ", levels.Select(l => l.ToString("R", CultureInfo.InvariantCulture)));
            if (levels.Count == 0) throw new ArgumentException($"{s}.{name}: {network} needs at least one level L0");
            if (network == Cnn && levels.Any(l => !(l > 0 && l <= 100)))
                throw new ArgumentException($"{s}.{name}: every test-error level must be a percentage in (0, 100], got {shown}");
            if (network is CharLstm or PtbLstm && levels.Any(l => !(double.IsFinite(l) && l > 1)))
                throw new ArgumentException($"{s}.{name}: every perplexity level must be finite and above 1 (the least perplexity there is), got {shown}");
            if (levels.Distinct().Count() != levels.Count || !levels.SequenceEqual(levels.Order()))
                throw new ArgumentException($"{s}.{name}: levels must be distinct and ascending, got {shown}");
        }
        if (Networks.Contains(Cnn) && (string.IsNullOrWhiteSpace(FashionMnistDir) || !Directory.Exists(FashionMnistDir)))
            throw new ArgumentException(
                $"{s}.FashionMnistDir: the folder '{FashionMnistDir}' does not exist; {Cnn} needs Fashion-MNIST's four idx files " +
                $"(Debian's package puts them in {DefaultFashionMnistDir}), or leave {Cnn} out of Networks");
        if (Networks.Contains(CharLstm) && (string.IsNullOrWhiteSpace(Corpus) || !File.Exists(Corpus)))
            throw new ArgumentException(
                $"{s}.Corpus: the text file '{Corpus}' does not exist; {CharLstm} needs a UTF-8 text (Debian's fortunes file is {DefaultCorpus}), " +
                $"or leave {CharLstm} out of Networks");
        if (Networks.Contains(PtbLstm) && PtbDir is null)
            throw new ArgumentException($"{s}.PtbDir: {PtbLstm} needs the Penn Treebank folder ({string.Join(", ", TextCorpora.PtbFiles)}), or leave {PtbLstm} out of Networks");
        if (PtbDir is not null)
        {
            // Given means meant: a wrong folder is named even if PTB is left out of Networks.
            if (string.IsNullOrWhiteSpace(PtbDir) || !Directory.Exists(PtbDir))
                throw new ArgumentException(
                    $"{s}.PtbDir: the folder '{PtbDir}' does not exist; {PtbLstm} needs a Penn Treebank folder holding {string.Join(", ", TextCorpora.PtbFiles)} " +
                    "(e.g. the data/ folder of Mikolov's simple-examples.tgz)");
            var missing = TextCorpora.PtbFiles.Where(f => !File.Exists(Path.Combine(PtbDir, f))).ToArray();
            if (missing.Length > 0)
                throw new ArgumentException(
                    $"{s}.PtbDir: the folder '{PtbDir}' lacks {string.Join(", ", missing)}; a Penn Treebank folder holds {string.Join(", ", TextCorpora.PtbFiles)}");
        }
        if (Pairs < 1) throw new ArgumentException($"{s}.Pairs: at least 1 endpoint pair per level is needed, got {Pairs}");
        if (CnnTrainingImages is < 1) throw new ArgumentException($"{s}.CnnTrainingImages: at least 1 image (or null for all), got {CnnTrainingImages}");
        if (CnnTestImages < 1) throw new ArgumentException($"{s}.CnnTestImages: at least 1 test image, got {CnnTestImages}");
        if (CnnBatchSize < 1) throw new ArgumentException($"{s}.CnnBatchSize: at least 1, got {CnnBatchSize}");
        if (CnnTrainingImages is long images && images < CnnBatchSize)
            throw new ArgumentException($"{s}.CnnTrainingImages: {images} images are fewer than one minibatch of CnnBatchSize = {CnnBatchSize}");
        if (LstmBatchSize < 1) throw new ArgumentException($"{s}.LstmBatchSize: at least 1, got {LstmBatchSize}");
        if (LstmUnroll < 1) throw new ArgumentException($"{s}.LstmUnroll: at least 1, got {LstmUnroll}");
        if (PtbBatchSize < 1) throw new ArgumentException($"{s}.PtbBatchSize: at least 1, got {PtbBatchSize}");
        if (PtbUnroll < 1) throw new ArgumentException($"{s}.PtbUnroll: at least 1, got {PtbUnroll}");
        if (PtbTestTokens is < 2) throw new ArgumentException($"{s}.PtbTestTokens: at least 2 test words (one prediction), or null for all, got {PtbTestTokens}");
        if (PtbCurveSteps < 0) throw new ArgumentException($"{s}.PtbCurveSteps: 0 (no curves) or more, got {PtbCurveSteps}");
        foreach (var (name, rate) in new[]
                 {
                     (nameof(CnnLearningRate), CnnLearningRate), (nameof(LstmLearningRate), LstmLearningRate),
                     (nameof(CnnCurveLearningRate), CnnCurveLearningRate), (nameof(LstmCurveLearningRate), LstmCurveLearningRate),
                     (nameof(PtbLearningRate), PtbLearningRate), (nameof(PtbCurveLearningRate), PtbCurveLearningRate),
                 })
            if (!(double.IsFinite(rate) && rate > 0)) throw new ArgumentException($"{s}.{name}: a learning rate must be positive and finite, got {rate}");
        if (EndpointMaxSteps < 1) throw new ArgumentException($"{s}.EndpointMaxSteps: the step budget of an endpoint must be at least 1, got {EndpointMaxSteps}");
        if (BeadMaxSteps < 1) throw new ArgumentException($"{s}.BeadMaxSteps: the step budget of a bead must be at least 1, got {BeadMaxSteps}");
        if (CheckEvery < 1) throw new ArgumentException($"{s}.CheckEvery: at least 1 step between measures, got {CheckEvery}");
        if (GridPoints < 1) throw new ArgumentException($"{s}.GridPoints: the string's grid needs at least 1 point per segment, got {GridPoints}");
        if (MaxDepth < 1) throw new ArgumentException($"{s}.MaxDepth: the string search needs at least 1 depth, got {MaxDepth}");
        if (CnnCurveSteps < 0) throw new ArgumentException($"{s}.CnnCurveSteps: 0 (no curves) or more, got {CnnCurveSteps}");
        if (LstmCurveSteps < 0) throw new ArgumentException($"{s}.LstmCurveSteps: 0 (no curves) or more, got {LstmCurveSteps}");
        if (CurveLengthSteps < 1) throw new ArgumentException($"{s}.CurveLengthSteps: at least 1 chord, got {CurveLengthSteps}");
        if (CurveEvaluationPoints < 2) throw new ArgumentException($"{s}.CurveEvaluationPoints: at least 2 (the endpoints), got {CurveEvaluationPoints}");
    }
}
