using WideValley.Connectivity;
using WideValley.Experiments;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>
/// One smoke run of the networks' level-set runner (the CNN on Fashion-MNIST at 60% test error, the char-LSTM on the
/// fortunes text at perplexity 20 and 30), shared by the tests that read its pieces.
/// </summary>
public sealed class LevelSetsNetworksSmokeRun : IDisposable
{
    readonly TempDir dir = new("wv-levelsets-networks");

    /// <summary>Null when Fashion-MNIST or the fortunes are not installed (the tests then skip).</summary>
    public LevelSetsOutcome? Outcome { get; }
    public List<string> Lines { get; } = [];
    public string Folder => dir.Path;
    public static LevelSetsNetworkSettings Settings { get; } = LevelSetsNetworkSettings.For(Budget.Smoke);

    public LevelSetsNetworksSmokeRun()
    {
        if (!TestMachine.FullFashionMnistInstalled || !TestMachine.FortunesInstalled) return;
        Outcome = LevelSetsNetworks.Run(Settings, Folder, line => { lock (Lines) Lines.Add(line); });
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>
/// A small Penn-Treebank-format folder (ptb.train.txt, ptb.valid.txt, ptb.test.txt): lines "the NOUN VERB the NOUN" from
/// 8 nouns and 6 verbs, a noun now and then &lt;unk&gt;, and a few test words unseen in training (mapped to &lt;unk&gt;), so a word
/// LSTM falls from perplexity about 17 (its vocabulary) towards 3 within a few hundred steps.
/// </summary>
public static class SyntheticPtb
{
    static readonly string[] Nouns = ["cat", "dog", "bank", "market", "share", "price", "company", "stock"];
    static readonly string[] Verbs = ["sees", "buys", "sells", "holds", "lifts", "cuts"];

    /// <summary>Writes the three files into <paramref name="dir"/>.</summary>
    public static void Write(TempDir dir)
    {
        var random = new Random(7);
        string Noun() => random.NextDouble() < 0.05 ? "<unk>" : Nouns[random.Next(Nouns.Length)];
        string Lines(int count, bool unseen) => string.Concat(Enumerable.Range(0, count).Select(i =>
            $" the {(unseen && i % 10 == 3 ? "zebra" : Noun())} {Verbs[random.Next(Verbs.Length)]} the {Noun()} \n"));
        dir.WriteText("ptb.train.txt", Lines(400, false));
        dir.WriteText("ptb.valid.txt", Lines(50, true));
        dir.WriteText("ptb.test.txt", Lines(100, true));
    }
}

/// <summary>The networks' level-set runner: settings, pieces, endpoints, resuming, cancellation, curves.</summary>
public class LevelSetsNetworksTests(LevelSetsNetworksSmokeRun smoke) : IClassFixture<LevelSetsNetworksSmokeRun>
{
    static CancellationToken Token => TestContext.Current.CancellationToken;
    static LevelSetsNetworkSettings Smoke => LevelSetsNetworksSmokeRun.Settings;
    static readonly LevelSetsNetworkSettings LstmSmoke = Smoke with { Networks = [LevelSetsNetworkSettings.CharLstm] };

    LevelSetsOutcome Outcome
    {
        get
        {
            TestMachine.RequireFullFashionMnist();
            TestMachine.RequireFortunes();
            return smoke.Outcome!;
        }
    }

    static DateTime[] Stamps(string folder) =>
        Directory.GetFiles(folder).Order(StringComparer.Ordinal).Select(File.GetLastWriteTimeUtc).ToArray();

    [Fact]
    public void TheReportsProtocolParagraphStatesEachNetworksSettingsAndWhatIsOurs()
    {
        var small = LevelSetsNetworkSettings.For(Budget.Small);
        var text = small.Describe();
        Assert.Contains("fb-mnist-cnn (the paper's MNIST CNN) on Fashion-MNIST: Adam lr 0.0001, batch 100 (the authors')", text);
        Assert.Contains("first 1,000 test images (ours: the paper uses the whole test set)", text);
        Assert.Contains("grid 20, t* = argmax, α = 0.98, m = 1.02", text);
        Assert.Contains("small-char-lstm on fortunes (characters, ours: a stand-in for PTB)", text);
        Assert.Contains("Bézier curves of 300 SGD steps", text);
        Assert.Contains("at most 3,000 steps per endpoint and 2,000 per bead", text);
        Assert.Contains("2 pairs per level", text);
        // The paper budget measures on the whole test set: no "ours" about it.
        Assert.DoesNotContain("test images (ours", LevelSetsNetworkSettings.For(Budget.Paper).Describe());
        var ptb = (small with { Networks = [LevelSetsNetworkSettings.PtbLstm], PtbDir = "/data/ptb" }).Describe();
        Assert.Contains("ptb-small-lstm on the Penn Treebank: SGD lr 1, batch 20, 20 unrolled steps, gradient clip 5 (the authors')", ptb);
        Assert.DoesNotContain("fb-mnist-cnn", ptb);
    }

    [Fact]
    public void BudgetsValidateAndDiffer()
    {
        var budgets = new[] { Budget.Smoke, Budget.Small, Budget.Paper }.Select(LevelSetsNetworkSettings.For).ToArray();
        foreach (var settings in budgets)
        {
            settings.Validate();
            Assert.Equal([LevelSetsNetworkSettings.Cnn, LevelSetsNetworkSettings.CharLstm], settings.Networks);
            Assert.Equal(LevelMetric.ErrorPercent, settings.SamplingOptions(LevelSetsNetworkSettings.Cnn, 10).Metric);
            Assert.Equal(LevelMetric.Perplexity, settings.SamplingOptions(LevelSetsNetworkSettings.CharLstm, 10).Metric);
        }
        Assert.Equal(3, budgets.Select(b => b.Key).Distinct().Count());
        var paper = budgets[2];
        // The authors' MNIST preset: argmax insertion, α = 0.98, m = 1.02, grid 20; PTB: midpoint, m = 1.1.
        var cnn = paper.SamplingOptions(LevelSetsNetworkSettings.Cnn, 10);
        Assert.Equal((InsertionRule.Argmax, 0.98, 1.02, 20), (cnn.InsertAt, cnn.BeadTargetFactor, cnn.AcceptFactor, cnn.GridPoints));
        var lstm = paper.SamplingOptions(LevelSetsNetworkSettings.CharLstm, 10);
        Assert.Equal((InsertionRule.Midpoint, 0.98, 1.1, 20), (lstm.InsertAt, lstm.BeadTargetFactor, lstm.AcceptFactor, lstm.GridPoints));
        Assert.Equal((1e-4, 100), (paper.CnnLearningRate, paper.CnnBatchSize));
        Assert.Equal(10_000, paper.CnnTestImages);
    }

    [Theory]
    [InlineData("networks", "Networks")]
    [InlineData("unknown", "unknown network 'lenet'")]
    [InlineData("twice", "distinct")]
    [InlineData("levels", "CnnLevels")]
    [InlineData("percent", "percentage")]
    [InlineData("perplexity", "above 1")]
    [InlineData("descending", "ascending")]
    [InlineData("pairs", "Pairs")]
    [InlineData("test", "CnnTestImages")]
    [InlineData("batch", "fewer than one minibatch")]
    [InlineData("lr", "CnnLearningRate")]
    [InlineData("endpoint", "EndpointMaxSteps")]
    [InlineData("bead", "BeadMaxSteps")]
    [InlineData("check", "CheckEvery")]
    [InlineData("grid", "GridPoints")]
    [InlineData("depth", "MaxDepth")]
    [InlineData("curve", "LstmCurveSteps")]
    [InlineData("points", "CurveEvaluationPoints")]
    [InlineData("folder", "/no/such/fashion-mnist")]
    [InlineData("corpus", "/no/such/corpus.txt")]
    public void BadSettingsAreRefusedByNameBeforeAnythingIsWritten(string what, string expected)
    {
        var bad = what switch
        {
            "networks" => Smoke with { Networks = [] },
            "unknown" => Smoke with { Networks = ["lenet"] },
            "twice" => Smoke with { Networks = [LevelSetsNetworkSettings.Cnn, LevelSetsNetworkSettings.Cnn] },
            "levels" => Smoke with { CnnLevels = [] },
            "percent" => Smoke with { CnnLevels = [50, 120] },
            "perplexity" => Smoke with { LstmLevels = [0.5, 20] },
            "descending" => Smoke with { LstmLevels = [30, 20] },
            "pairs" => Smoke with { Pairs = 0 },
            "test" => Smoke with { CnnTestImages = 0 },
            "batch" => Smoke with { CnnTrainingImages = Smoke.CnnBatchSize - 1 },
            "lr" => Smoke with { CnnLearningRate = double.NaN },
            "endpoint" => Smoke with { EndpointMaxSteps = 0 },
            "bead" => Smoke with { BeadMaxSteps = 0 },
            "check" => Smoke with { CheckEvery = 0 },
            "grid" => Smoke with { GridPoints = 0 },
            "depth" => Smoke with { MaxDepth = 0 },
            "curve" => Smoke with { LstmCurveSteps = -1 },
            "points" => Smoke with { CurveEvaluationPoints = 1 },
            "folder" => Smoke with { FashionMnistDir = "/no/such/fashion-mnist" },
            _ => Smoke with { Corpus = "/no/such/corpus.txt" },
        };
        var e = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.Contains(expected, e.Message);
        using var dir = new TempDir("wv-levelsets-networks");
        Assert.Throws<ArgumentException>(() => LevelSetsNetworks.Run(bad, dir.Path, cancellation: Token));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    /// <summary>The Smoke budget's key as it was before PTB was added: the lead's run has pieces made under it.</summary>
    const string SmokeKeyBeforePtb =
        "networks;pairs=1;seed=1;cnn-train=1000;cnn-test=300;cnn-batch=25;cnn-lr=0.0001;corpus=fortunes;lstm-batch=32;lstm-unroll=32;lstm-lr=0.003;" +
        "endpoint-steps=500;bead-steps=300;check=10;grid=5;depth=3;cnn-search=Argmax,0.98,1.02;lstm-search=Midpoint,0.98,1.1;" +
        "curve-steps=40,40;curve-lr=0.01,0.05;curve-points=6;curve-chords=100";

    [Fact]
    public void WithoutPtbTheKeyIsTheOneBeforePtbAndWithItOnlyThePtbNetworksKeyChanges()
    {
        Assert.Equal(SmokeKeyBeforePtb, Smoke.Key);
        Assert.Null(Smoke.PtbDir);
        Assert.Equal(SmokeKeyBeforePtb, Smoke.KeyOf(LevelSetsNetworkSettings.Cnn));
        Assert.Equal(SmokeKeyBeforePtb, Smoke.KeyOf(LevelSetsNetworkSettings.CharLstm));
        // PTB's values do not enter the key while no PTB folder is given, whatever they are.
        Assert.Equal(SmokeKeyBeforePtb, (Smoke with { PtbLevels = [135], PtbBatchSize = 7, PtbTestTokens = null, PtbCurveSteps = 9 }).Key);

        var withPtb = Smoke.WithPtb("/data/ptb/");
        Assert.Equal([LevelSetsNetworkSettings.Cnn, LevelSetsNetworkSettings.PtbLstm], withPtb.Networks);
        Assert.Equal(SmokeKeyBeforePtb + ";ptb=ptb;ptb-batch=20;ptb-unroll=20;ptb-lr=1;ptb-test=2000;ptb-curve=40,0.05", withPtb.Key);
        Assert.Equal(withPtb.Key, withPtb.KeyOf(LevelSetsNetworkSettings.PtbLstm));
        // The CNN's pieces of a run without PTB stay valid when PTB is added to it.
        Assert.Equal(SmokeKeyBeforePtb, withPtb.KeyOf(LevelSetsNetworkSettings.Cnn));
        Assert.NotEqual(withPtb.Key, (withPtb with { PtbTestTokens = 3_000 }).Key);
        Assert.Equal([LevelSetsNetworkSettings.Cnn, LevelSetsNetworkSettings.PtbLstm], (Smoke with { Networks = [LevelSetsNetworkSettings.Cnn] }).WithPtb("/p").Networks);

        // The budgets' PTB values: the smoke level for tests, the two highest of Fig. 1, then all of them.
        Assert.Equal([700.0], LevelSetsNetworkSettings.For(Budget.Smoke).PtbLevels);
        Assert.Equal([300.0, 700], LevelSetsNetworkSettings.For(Budget.Small).PtbLevels);
        Assert.Equal(10_000L, LevelSetsNetworkSettings.For(Budget.Small).PtbTestTokens);
        var paper = LevelSetsNetworkSettings.For(Budget.Paper);
        Assert.Equal(LevelSetsReport.PaperPtb.Select(p => p.Level), paper.PtbLevels);
        Assert.Equal((20, 20, 1.0, (long?)null), (paper.PtbBatchSize, paper.PtbUnroll, paper.PtbLearningRate, paper.PtbTestTokens));
        Assert.Equal(LevelMetric.Perplexity, LevelSetsNetworkSettings.MetricOf(LevelSetsNetworkSettings.PtbLstm));
        var search = paper.SamplingOptions(LevelSetsNetworkSettings.PtbLstm, 300);
        Assert.Equal((InsertionRule.Midpoint, 0.98, 1.1), (search.InsertAt, search.BeadTargetFactor, search.AcceptFactor));
    }

    [Fact]
    public void APtbFolderThatIsMissingOrLacksAFileIsRefusedNamingIt()
    {
        using var dir = new TempDir("wv-levelsets-ptb");
        var absent = dir.File("no-such-ptb");
        var e = Assert.Throws<ArgumentException>(Smoke.WithPtb(absent).Validate);
        Assert.Contains(absent, e.Message);
        Assert.Contains("does not exist", e.Message);
        // Refused even when PTB is not among the networks: a folder given is a folder meant.
        e = Assert.Throws<ArgumentException>((Smoke with { PtbDir = absent }).Validate);
        Assert.Contains(absent, e.Message);

        dir.WriteText("ptb.train.txt", "a b\n");
        e = Assert.Throws<ArgumentException>(Smoke.WithPtb(dir.Path).Validate);
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("lacks ptb.valid.txt, ptb.test.txt", e.Message);
        dir.WriteText("ptb.valid.txt", "a b\n");
        e = Assert.Throws<ArgumentException>(Smoke.WithPtb(dir.Path).Validate);
        Assert.Contains("lacks ptb.test.txt", e.Message);
        using var pieces = new TempDir("wv-levelsets-ptb");
        Assert.Throws<ArgumentException>(() => LevelSetsNetworks.Run(Smoke.WithPtb(dir.Path), pieces.Path, cancellation: Token));
        Assert.Empty(Directory.GetFileSystemEntries(pieces.Path));

        e = Assert.Throws<ArgumentException>((Smoke with { Networks = [LevelSetsNetworkSettings.PtbLstm] }).Validate);
        Assert.Contains("PtbDir", e.Message);
        dir.WriteText("ptb.test.txt", "a b\n");
        e = Assert.Throws<ArgumentException>((Smoke.WithPtb(dir.Path) with { PtbTestTokens = 1 }).Validate);
        Assert.Contains("PtbTestTokens", e.Message);
        e = Assert.Throws<ArgumentException>((Smoke.WithPtb(dir.Path) with { PtbLevels = [1, 700] }).Validate);
        Assert.Contains("PtbLevels", e.Message);
    }

    [Fact]
    public void ThePtbNetworkIsThePapersOwnTaskInTheReport()
    {
        var (points, source, same) = LevelSetsReport.Paper(LevelSetsNetworkSettings.PtbLstm, LevelMetric.Perplexity);
        Assert.True(same);
        Assert.DoesNotContain("context only", source);
        Assert.Equal(1.346, LevelSetsReport.PaperAt(points, 200)!.Length);
        // The char-LSTM stays a stand-in.
        Assert.False(LevelSetsReport.Paper(LevelSetsNetworkSettings.CharLstm, LevelMetric.Perplexity).SameTask);
    }

    [Fact]
    public void ThePtbLstmConnectsASmokeLevelOnAPtbFormatFolderUnderItsOwnNames()
    {
        using var data = new TempDir("wv-levelsets-ptb-data");
        SyntheticPtb.Write(data);
        using var dir = new TempDir("wv-levelsets-ptb");
        var settings = Smoke.WithPtb(data.Path) with { Networks = [LevelSetsNetworkSettings.PtbLstm], PtbLevels = [PtbSmokeLevel] };
        var lines = new List<string>();
        var outcome = LevelSetsNetworks.Run(settings, dir.Path, lines.Add, Token);
        Assert.False(outcome.Interrupted);
        var level = Assert.Single(outcome.Levels);
        Assert.Equal((LevelSetsNetworkSettings.PtbLstm, LevelMetric.Perplexity, PtbSmokeLevel, settings.Key), (level.Task, level.Metric, level.Level, level.Key));
        Assert.Equal(settings.EndpointSeed(LevelSetsNetworkSettings.PtbLstm), level.EndpointSeed);
        var pair = Assert.Single(level.Pairs);
        Assert.Null(pair.Skipped);
        Assert.True(pair.Connected, $"ptb-small-lstm L0 = {PtbSmokeLevel} did not connect: {string.Join("\n", lines)}");
        Assert.True(pair.EndpointLossA <= 0.98 * PtbSmokeLevel && pair.EndpointLossB <= 0.98 * PtbSmokeLevel);
        Assert.True(pair.EndpointStepsA > 0 && pair.EndpointStepsB > 0);
        Assert.True(pair.WeightsOnlyLength >= 1 - 1e-9 && pair.Beads >= 3);
        Assert.True(pair.MaxAlongPath < 1.1 * PtbSmokeLevel);
        Assert.NotNull(pair.Curve);
        Assert.Equal(settings.PtbCurveSteps, pair.Curve.Steps);
        Assert.True(pair.Curve.MaxAlongCurve >= Math.Max(pair.EndpointLossA, pair.EndpointLossB) - 1e-9);
        // Word level on the folder's PTB files: the vocabulary is the training file's words with <unk> and <eos>.
        Assert.Contains(lines, l => l.StartsWith("ptb-small-lstm: ptb (words), vocabulary 17,", StringComparison.Ordinal));
        var files = Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal([$"ptb-small-lstm-L{PtbSmokeLevel}.json", $"ptb-small-lstm-endpoint-0-L{PtbSmokeLevel}.bin", $"ptb-small-lstm-endpoint-1-L{PtbSmokeLevel}.bin"], files);
        var (header, point) = LevelSetsNetworkEndpoint.Read(LevelSetsNetworkEndpoint.PathOf(dir.Path, LevelSetsNetworkSettings.PtbLstm, 0, PtbSmokeLevel));
        point.Dispose();
        Assert.Equal(settings.Key, header.Key);

        // Again: read, not trained; and a piece of other PTB settings is refused naming the file.
        var again = LevelSetsNetworks.Run(settings, dir.Path, cancellation: Token);
        Assert.Equal(0, again.Computed);
        Assert.Equal(pair, again.Levels[0].Pairs[0]);
        var refused = Assert.Throws<InvalidDataException>(() => LevelSetsNetworks.Run(settings with { PtbTestTokens = 500 }, dir.Path, cancellation: Token));
        Assert.Contains("other settings", refused.Message);
        Assert.Contains(LevelSetsExperiment.PiecePath(dir.Path, LevelSetsNetworkSettings.PtbLstm, PtbSmokeLevel), refused.Message);
    }

    /// <summary>A level the synthetic PTB's LSTM passes within the smoke budget (it starts near its vocabulary of 17).</summary>
    const double PtbSmokeLevel = 12;

    [Fact]
    public void MissingDataOfANetworkLeftOutIsNoError()
    {
        (Smoke with { Networks = [LevelSetsNetworkSettings.CharLstm], FashionMnistDir = "/no/such/folder" }).Validate();
        (Smoke with { Networks = [LevelSetsNetworkSettings.Cnn], Corpus = "/no/such/file" }).Validate();
    }

    [Fact]
    public void SmokeConnectsBothNetworksAtEasyLevelsWithCurvesAndWritesOnePiecePerLevel()
    {
        var outcome = Outcome;
        Assert.False(outcome.Interrupted);
        Assert.Equal(3, outcome.Computed);
        Assert.Equal([(LevelSetsNetworkSettings.Cnn, 60.0), (LevelSetsNetworkSettings.CharLstm, 20.0), (LevelSetsNetworkSettings.CharLstm, 30.0)],
            outcome.Levels.Select(l => (l.Task, l.Level)));
        foreach (var level in outcome.Levels)
        {
            var metric = LevelSetsNetworkSettings.MetricOf(level.Task);
            Assert.Equal(metric, level.Metric);
            Assert.Equal(Smoke.Key, level.Key);
            Assert.Equal(Smoke.EndpointSeed(level.Task), level.EndpointSeed);
            var pair = Assert.Single(level.Pairs);
            Assert.Null(pair.Skipped);
            Assert.True(pair.Connected, $"{level.Task} L0 = {level.Level} did not connect");
            // Endpoints trained to α·L0 on the level metric (α = 0.98 in both presets).
            Assert.True(pair.EndpointLossA <= 0.98 * level.Level && pair.EndpointLossB <= 0.98 * level.Level);
            Assert.True(pair.EndpointStepsA > 0 && pair.EndpointStepsB > 0);
            Assert.True(pair.WeightsOnlyLength >= 1 - 1e-9 && pair.AllParametersLength >= 1 - 1e-9);
            Assert.True(pair.Beads >= 3);
            var accept = metric == LevelMetric.ErrorPercent ? 1.02 : 1.1;
            Assert.True(pair.MaxAlongPath < accept * level.Level);
            var curve = pair.Curve;
            Assert.NotNull(curve);
            Assert.Equal((CurveKind.Bezier, 1, Smoke.CurveSteps(level.Task)), (curve.Kind, curve.Bends, curve.Steps));
            Assert.True(curve.NormalizedLength >= 1 - 1e-9);
            Assert.True(curve.MaxAlongCurve >= Math.Max(pair.EndpointLossA, pair.EndpointLossB) - 1e-9);
            // The barrier is max − mean of the endpoints, so it is at least half their difference.
            Assert.True(curve.Barrier >= Math.Abs(pair.EndpointLossA - pair.EndpointLossB) / 2 - 1e-9);
            // Forty steps from the straight line: the curve is no worse than the line (up to the noise of a few hundred test images).
            var tolerance = metric == LevelMetric.ErrorPercent ? 2.0 : 0.05 * level.Level;
            Assert.True(curve.Barrier <= curve.StraightBarrier + tolerance, $"{level.Task} L0 = {level.Level}: curve {curve.Barrier}, line {curve.StraightBarrier}");
            Assert.True(File.Exists(LevelSetsExperiment.PiecePath(smoke.Folder, level.Task, level.Level)));
        }
        // The LSTM's levels share their endpoints: each is trained once, the deeper level further along the same run.
        var (low, high) = (outcome.Levels[1].Pairs[0], outcome.Levels[2].Pairs[0]);
        Assert.True(low.EndpointStepsA > high.EndpointStepsA && low.EndpointStepsB > high.EndpointStepsB);
        Assert.Single(smoke.Lines, l => l.StartsWith("small-char-lstm L0 = 30: training 2 endpoints", StringComparison.Ordinal));
        Assert.Contains(smoke.Lines, l => l.StartsWith("fb-mnist-cnn L0 = 60: pair 0 joined by", StringComparison.Ordinal));
        Assert.Contains(smoke.Lines, l => l.StartsWith("small-char-lstm L0 = 20: 1/1 connected (0 skipped)", StringComparison.Ordinal));
        // Left in the folder: the pieces and each endpoint's deepest snapshot; no string or curve checkpoint, no temporary.
        var files = Directory.GetFiles(smoke.Folder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(
        [
            "fb-mnist-cnn-L60.json", "fb-mnist-cnn-endpoint-0-L60.bin", "fb-mnist-cnn-endpoint-1-L60.bin",
            "small-char-lstm-L20.json", "small-char-lstm-L30.json", "small-char-lstm-endpoint-0-L20.bin", "small-char-lstm-endpoint-1-L20.bin",
        ], files);
    }

    [Fact]
    public void ASecondCallReusesEveryPieceWithoutTouchingTheFolder()
    {
        var first = Outcome;
        var stamps = Stamps(smoke.Folder);
        var lines = new List<string>();
        var again = LevelSetsNetworks.Run(Smoke, smoke.Folder, lines.Add, Token);
        Assert.False(again.Interrupted);
        Assert.Equal(0, again.Computed);
        Assert.Equal(first.Levels.Select(l => l.Pairs.Select(p => (p.WeightsOnlyLength, p.Beads, p.Curve!.Barrier))),
            again.Levels.Select(l => l.Pairs.Select(p => (p.WeightsOnlyLength, p.Beads, p.Curve!.Barrier))));
        Assert.All(lines, l => Assert.Contains("finished before", l));
        Assert.Equal(stamps, Stamps(smoke.Folder));
    }

    [Fact]
    public void PiecesOfOtherSettingsAreRefusedNamingTheFile()
    {
        _ = Outcome;
        var stamps = Stamps(smoke.Folder);
        var other = Smoke with { Seed = Smoke.Seed + 1 };
        var refused = Assert.Throws<InvalidDataException>(() => LevelSetsNetworks.Run(other, smoke.Folder, cancellation: Token));
        Assert.Contains("other settings", refused.Message);
        Assert.Contains(LevelSetsExperiment.PiecePath(smoke.Folder, LevelSetsNetworkSettings.Cnn, 60), refused.Message);
        Assert.Equal(stamps, Stamps(smoke.Folder));
    }

    [Fact]
    public void AnEndpointSnapshotOfOtherSettingsOrDamagedIsRefusedNamingTheFile()
    {
        _ = Outcome;
        using var dir = new TempDir("wv-levelsets-networks");
        // Only the deeper LSTM level's piece is missing: its endpoints' snapshots are read, not trained again.
        var snapshot = LevelSetsNetworkEndpoint.PathOf(smoke.Folder, LevelSetsNetworkSettings.CharLstm, 0, 20);
        var copy = LevelSetsNetworkEndpoint.PathOf(dir.Path, LevelSetsNetworkSettings.CharLstm, 0, 20);
        File.Copy(snapshot, copy);
        var (header, point) = LevelSetsNetworkEndpoint.Read(copy);
        using (point)
        {
            Assert.Equal((LevelSetsNetworkSettings.CharLstm, 0, 20.0, Smoke.Key), (header.Task, header.Index, header.Level, header.Key));
            Assert.True(header.Reached && header.Value <= 0.98 * 20);
            var e = Assert.Throws<InvalidDataException>(() =>
                LevelSetsNetworkEndpoint.RequireMatch(copy, header, Smoke.Key + "x", header.Task, 0, 20, point.shape[0], point.shape[0]));
            Assert.Contains(copy, e.Message);
            Assert.Contains("other settings", e.Message);
            e = Assert.Throws<InvalidDataException>(() =>
                LevelSetsNetworkEndpoint.RequireMatch(copy, header, Smoke.Key, header.Task, 1, 20, point.shape[0], point.shape[0]));
            Assert.Contains("expected small-char-lstm endpoint 1", e.Message);
        }
        var bytes = File.ReadAllBytes(copy);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(copy, bytes);
        var damaged = Assert.Throws<InvalidDataException>(() => LevelSetsNetworkEndpoint.Read(copy));
        Assert.Contains(copy, damaged.Message);
        Assert.Contains("checksum", damaged.Message);
        // The runner meets the damaged snapshot before training anything, and leaves it as it was.
        var run = Assert.Throws<InvalidDataException>(() => LevelSetsNetworks.Run(LstmSmoke with { LstmLevels = [20] }, dir.Path, cancellation: Token));
        Assert.Contains(copy, run.Message);
        Assert.Equal(bytes, File.ReadAllBytes(copy));
    }

    [Fact]
    public void CancellationKeepsTheFinishedPiecesAndTheRerunContinuesTheEndpoints()
    {
        TestMachine.RequireFortunes();
        using var dir = new TempDir("wv-levelsets-networks");
        var folder = dir.Path;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        // Levels run from the highest down: cancel once perplexity 30 is written; 20 is interrupted.
        var interrupted = LevelSetsNetworks.Run(LstmSmoke, folder, line =>
        {
            if (line.Contains(" connected (")) cancel.Cancel();
        }, cancel.Token);
        Assert.True(interrupted.Interrupted);
        Assert.Equal(30, Assert.Single(interrupted.Levels).Level);
        Assert.True(File.Exists(LevelSetsExperiment.PiecePath(folder, LevelSetsNetworkSettings.CharLstm, 30)));
        Assert.False(File.Exists(LevelSetsExperiment.PiecePath(folder, LevelSetsNetworkSettings.CharLstm, 20)));
        var high = interrupted.Levels[0].Pairs[0];

        var lines = new List<string>();
        var rerun = LevelSetsNetworks.Run(LstmSmoke, folder, lines.Add, Token);
        Assert.False(rerun.Interrupted);
        Assert.Equal(1, rerun.Computed);
        Assert.Equal([20.0, 30.0], rerun.Levels.Select(l => l.Level));
        Assert.Equal(high, rerun.Levels[1].Pairs[0]);
        // The endpoints went on from their perplexity-30 snapshots, not from a new initialisation.
        var low = rerun.Levels[0].Pairs[0];
        Assert.True(low.EndpointStepsA > high.EndpointStepsA && low.EndpointStepsB > high.EndpointStepsB);
        Assert.Contains(lines, l => l.StartsWith("small-char-lstm endpoint 0:", StringComparison.Ordinal) &&
                                    l.Contains($"({low.EndpointStepsA - high.EndpointStepsA} now)", StringComparison.Ordinal));
        Assert.Empty(dir.Leftovers());
    }
}
