using System.Text.Json.Nodes;
using WideValley.Connectivity;
using WideValley.Experiments;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>The level-sets report on synthetic levels: verdicts both ways, tables, JSON, CSV and plots with text.</summary>
public class LevelSetsReportTests
{
    /// <summary>
    /// One level with a pair per length; beads, curves and failures as given. A curve's barrier is
    /// <paramref name="curveShare"/> of a straight line that rises 2·L0 (no curves when null).
    /// </summary>
    static LevelSetsLevelResult Level(string task, double level, double[] lengths, int[] beads, double? curveShare = 0.1, int notConnected = 0, int skipped = 0,
        LevelMetric metric = LevelMetric.Loss)
    {
        var pairs = new List<LevelSetsPair>();
        for (var i = 0; i < lengths.Length; i++)
            pairs.Add(new LevelSetsPair
            {
                Index = i, EndpointLossA = 0.9 * level, EndpointLossB = 0.9 * level, EndpointStepsA = 100, EndpointStepsB = 100, Connected = true,
                WeightsOnlyLength = lengths[i], AllParametersLength = lengths[i] + 0.01, Beads = beads[i], MaxAlongPath = 1.05 * level, Depth = 1,
                Curve = curveShare is double share
                    ? new LevelSetsCurve
                    {
                        Kind = CurveKind.Bezier, Bends = 1, Steps = 100, Barrier = share * 2 * level, MaxAlongCurve = 0.9 * level + share * 2 * level,
                        StraightBarrier = 2 * level, NormalizedLength = 1.1,
                    }
                    : null,
            });
        for (var i = 0; i < notConnected; i++)
            pairs.Add(new LevelSetsPair
            {
                Index = pairs.Count, EndpointLossA = 0.9 * level, EndpointLossB = 0.9 * level, EndpointStepsA = 1, EndpointStepsB = 1, Connected = false,
                WeightsOnlyLength = 5, AllParametersLength = 5, Beads = 40, MaxAlongPath = 3 * level, Depth = 10,
            });
        for (var i = 0; i < skipped; i++)
            pairs.Add(new LevelSetsPair
            {
                Index = pairs.Count, EndpointLossA = 2 * level, EndpointLossB = 0.9 * level, EndpointStepsA = 1, EndpointStepsB = 1, Skipped = "endpoint A ended above α·L0",
            });
        return new LevelSetsLevelResult
        {
            Key = "synthetic", Task = task, Metric = metric, Level = level, EndpointSeed = (ulong)(level * 1e6), Pairs = pairs.ToArray(), Seconds = 1,
        };
    }

    /// <summary>The paper's picture on the quadratic: long strings with many beads at low L0, straight ones at high L0, curves far below the lines.</summary>
    static readonly LevelSetsLevelResult[] Growing =
    [
        Level("quadratic", 0.01, [1.80, 1.85, 1.75], [20, 22, 18]),
        Level("quadratic", 0.05, [1.40, 1.45, 1.35], [8, 9, 7]),
        Level("quadratic", 0.125, [1.02, 1.03, 1.01], [3, 3, 4]),
    ];

    /// <summary>Lengths and beads that do not depend on L0, a pair that does not connect, curves no better than the lines.</summary>
    static readonly LevelSetsLevelResult[] Flat =
    [
        Level("quadratic", 0.01, [1.30, 1.40, 1.20], [5, 6, 4], curveShare: 1.0, notConnected: 2),
        Level("quadratic", 0.05, [1.35, 1.25, 1.30], [5, 4, 6], curveShare: 1.0),
        Level("quadratic", 0.125, [1.30, 1.20, 1.40], [6, 5, 4], curveShare: 1.0, skipped: 1),
    ];

    static Dictionary<string, LevelSetsVerdict> Verdicts(IReadOnlyList<LevelSetsLevelResult> levels) =>
        LevelSetsReport.Claims(levels).ToDictionary(c => $"{c.Task}/{c.Id}", c => c.Verdict);

    [Fact]
    public void SpearmanIsTheRankCorrelationWithAverageRanksForTies()
    {
        Assert.Equal(1.0, LevelSetsReport.Spearman([1.0, 2, 3, 4], [10.0, 20, 30, 400]), 12);
        Assert.Equal(-1.0, LevelSetsReport.Spearman([1.0, 2, 3], [3.0, 2, 1]), 12);
        // x ranks 1,2,3,4; y = (1, 2.5, 2.5, 4) after averaging the tie: Pearson of the ranks = 4.5 / sqrt(5 · 4.5).
        Assert.Equal(4.5 / Math.Sqrt(5 * 4.5), LevelSetsReport.Spearman([1.0, 2, 3, 4], [1.0, 5, 5, 9]), 12);
        Assert.True(double.IsNaN(LevelSetsReport.Spearman([1.0, 2, 3], [3.0, 3, 3])));
        Assert.True(double.IsNaN(LevelSetsReport.Spearman([1.0], [3.0])));
    }

    [Fact]
    public void LengthsAndBeadsThatGrowAsTheLevelFallsAgree()
    {
        var verdicts = Verdicts(Growing);
        Assert.Equal(LevelSetsVerdict.Agrees, verdicts["quadratic/connects"]);
        Assert.Equal(LevelSetsVerdict.Agrees, verdicts["quadratic/length_grows"]);
        Assert.Equal(LevelSetsVerdict.Agrees, verdicts["quadratic/beads_grow"]);
        Assert.Equal(LevelSetsVerdict.Agrees, verdicts["quadratic/curve_below_line"]);
        Assert.False(verdicts.ContainsKey("quadratic/cubic_spike"));
        var length = LevelSetsReport.Claims(Growing).Single(c => c.Id == "length_grows");
        Assert.Contains("Spearman ρ(L0, mean) = -1.00", length.Measured);
        Assert.Contains("n = 3", length.Measured);
    }

    [Fact]
    public void LengthsAndBeadsThatDoNotGrowDisagreeAndFailuresAreCounted()
    {
        var verdicts = Verdicts(Flat);
        // 9 of 11 searched pairs connect: at least half, not all.
        Assert.Equal(LevelSetsVerdict.Partly, verdicts["quadratic/connects"]);
        Assert.Equal(LevelSetsVerdict.Disagrees, verdicts["quadratic/length_grows"]);
        Assert.Equal(LevelSetsVerdict.Disagrees, verdicts["quadratic/beads_grow"]);
        Assert.Equal(LevelSetsVerdict.Disagrees, verdicts["quadratic/curve_below_line"]);
        var connects = LevelSetsReport.Claims(Flat).Single(c => c.Id == "connects");
        Assert.Contains("9 of 11 searched pairs connected over 3 levels (1 pairs skipped", connects.Measured);
        // The pairs that did not connect enter no mean: the lowest level's length is the mean of its three connected pairs.
        Assert.Equal(1.30, LevelSetsReport.Length(Flat[0]).Mean, 12);

        // Growth that is monotone in rank but buried in the spread is only "partly".
        var noisy = new[]
        {
            Level("quadratic", 0.01, [1.9, 1.1, 1.5], [9, 3, 6]),
            Level("quadratic", 0.125, [1.6, 1.0, 1.3], [8, 3, 5]),
        };
        Assert.Equal(LevelSetsVerdict.Partly, Verdicts(noisy)["quadratic/length_grows"]);

        // One level only, or no curves: not tested.
        var single = Verdicts([Level("quadratic", 0.05, [1.2], [3], curveShare: null)]);
        Assert.Equal(LevelSetsVerdict.NotTested, single["quadratic/length_grows"]);
        Assert.Equal(LevelSetsVerdict.NotTested, single["quadratic/beads_grow"]);
        Assert.Equal(LevelSetsVerdict.NotTested, single["quadratic/curve_below_line"]);
    }

    [Fact]
    public void TheCubicSpikeIsJudgedOnlyWithLevelsInAndBesideItsWindow()
    {
        LevelSetsLevelResult[] spike =
        [
            Level("cubic", 0.12, [1.40, 1.42, 1.38], [6, 6, 6]),
            Level("cubic", 0.156, [2.40, 2.50, 2.45], [3, 4, 4]),
            Level("cubic", 0.17, [1.00, 1.01, 1.00], [3, 3, 3]),
        ];
        Assert.Equal(LevelSetsVerdict.Agrees, Verdicts(spike)["cubic/cubic_spike"]);

        LevelSetsLevelResult[] noSpike =
        [
            Level("cubic", 0.12, [1.40, 1.42, 1.38], [6, 6, 6]),
            Level("cubic", 0.156, [1.20, 1.22, 1.21], [3, 3, 3]),
            Level("cubic", 0.17, [1.21, 1.20, 1.22], [3, 3, 3]),
        ];
        Assert.Equal(LevelSetsVerdict.Disagrees, Verdicts(noSpike)["cubic/cubic_spike"]);

        // Above one neighbour only: partly.
        LevelSetsLevelResult[] oneSide =
        [
            Level("cubic", 0.12, [1.40, 1.42, 1.38], [6, 6, 6]),
            Level("cubic", 0.156, [1.30, 1.32, 1.31], [3, 3, 3]),
            Level("cubic", 0.17, [1.00, 1.01, 1.00], [3, 3, 3]),
        ];
        Assert.Equal(LevelSetsVerdict.Partly, Verdicts(oneSide)["cubic/cubic_spike"]);

        var smoke = LevelSetsReport.Claims([Level("cubic", 0.24, [1.0], [3]), Level("cubic", 0.32, [1.0], [3])]).Single(c => c.Id == "cubic_spike");
        Assert.Equal(LevelSetsVerdict.NotTested, smoke.Verdict);
        Assert.Contains("Not tested at this budget", smoke.Measured);
    }

    [Fact]
    public void NetworksGetTheirPapersContextByMetricAndOneTaskMayNotMixMetrics()
    {
        var (mnist, source, same) = LevelSetsReport.Paper("fb-mnist-cnn", LevelMetric.ErrorPercent);
        Assert.False(same);
        Assert.Contains("Fashion-MNIST stands in for MNIST", source);
        Assert.Equal(1.0708, LevelSetsReport.PaperAt(mnist, 0.7)!.Length);
        var (ptb, _, _) = LevelSetsReport.Paper("small-char-lstm", LevelMetric.Perplexity);
        Assert.Equal(1.346, LevelSetsReport.PaperAt(ptb, 200)!.Length);
        Assert.Equal(2.538, LevelSetsReport.PaperAt(LevelSetsReport.PaperCubic, 0.158)!.Length);
        Assert.Equal(62.4, LevelSetsReport.PaperAt(LevelSetsReport.PaperQuadratic, 0.001)!.Beads);
        Assert.Null(LevelSetsReport.PaperAt(LevelSetsReport.PaperQuadratic, 0.2));

        var mixed = new[] { Level("net", 1, [1.0], [3]), Level("net", 2, [1.0], [3], metric: LevelMetric.ErrorPercent) };
        var e = Assert.Throws<ArgumentException>(() => LevelSetsReport.Claims(mixed));
        Assert.Contains("task net", e.Message);
    }

    [Fact]
    public void ATaskWithoutConnectedPairsOrPaperValuesStillGetsItsTableAndFigure()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir("wv-levelsets-report");
        var failed = Level("some-net", 2.0, [], [], curveShare: null, notConnected: 2) with { Metric = LevelMetric.Loss };
        var input = new LevelSetsReportInput { Levels = [failed], Budget = Budget.Smoke, CommandLine = "widevalley reproduce level-sets", Machine = "m" };
        var (_, files) = LevelSetsReport.Write(input, dir.Path, "level-sets-smoke");
        Assert.Contains("level-sets-smoke-some-net.png", files);
        var md = File.ReadAllText(dir.File("level-sets-smoke.md"));
        Assert.Contains("| 2 | 0/2 (0) | – | – | – |", md);
        Assert.Contains("| some-net | Every pair of trained endpoints is connected inside the level set (the paper: all pairs, every task). | 0 of 2", md);
        Assert.Equal(LevelSetsVerdict.Disagrees, Verdicts([failed])["some-net/connects"]);
        Assert.Throws<ArgumentException>(() => LevelSetsReport.Write(input with { Levels = [] }, dir.Path, "level-sets-smoke"));
    }

    [Fact]
    public void TheReportHasEveryTaskItsTablesVerdictsDataAndPlotsWithText()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir("wv-levelsets-report");
        LevelSetsLevelResult[] levels =
        [
            .. Growing,
            Level("cubic", 0.12, [1.40, 1.42, 1.38], [6, 6, 6]),
            Level("cubic", 0.17, [1.00, 1.01, 1.00], [3, 3, 3]),
            Level("fb-mnist-cnn", 1.0, [1.03, 1.02], [5, 4], curveShare: 0.2, metric: LevelMetric.ErrorPercent),
            Level("fb-mnist-cnn", 4.0, [1.00, 1.01], [3, 3], curveShare: 0.2, metric: LevelMetric.ErrorPercent),
        ];
        var input = new LevelSetsReportInput
        {
            Levels = levels, Budget = Budget.Small, CommandLine = "widevalley reproduce level-sets --budget small", Machine = "test machine",
            ToySettings = LevelSetsSettings.For(Budget.Small), Missing = ["the char-LSTM was not run"],
        };
        var (summary, files) = LevelSetsReport.Write(input, dir.Path, "level-sets-small");
        Assert.Equal(LevelSetsReport.Files("level-sets-small", ["quadratic", "cubic", "fb-mnist-cnn"]), files);
        foreach (var file in files) Assert.True(File.Exists(dir.File(file)), $"{file} was not written");
        Assert.Empty(dir.Leftovers());

        var md = File.ReadAllText(dir.File("level-sets-small.md"));
        foreach (var heading in new[] { "## quadratic (L0 = evaluation MAE)", "## cubic (L0 = evaluation MAE)", "## fb-mnist-cnn (L0 = test error (%))" })
            Assert.Contains(heading, md);
        Assert.Contains("| 0.01 | 3/3 (0) | 1.800 ± 0.050 | 1.810 ± 0.050 | 20.0 ± 2.0 |", md);
        Assert.Contains("| 1.476 | 13.8 |", md);
        Assert.Contains("| 0.17 | 3/3 (0) | 1.003 ± 0.006 |", md);
        Assert.Contains("| 1.004 | 3.1–3.3 |", md);
        Assert.Contains("Fashion-MNIST stands in for MNIST", md);
        Assert.Contains("**Not in this report:** the char-LSTM was not run", md);
        Assert.Contains("endpoints are trained to α·L0", md);
        Assert.Contains("| quadratic | The normalised length is about 1", md);
        Assert.Contains("**agrees** |", md);
        ReproduceReportChecks.AssertImagesExist(dir.File("level-sets-small.md"));

        var json = JsonNode.Parse(summary)!.AsObject();
        Assert.Equal(json.ToJsonString(), ReproduceReportChecks.ReadJson(dir.File("level-sets-small.json")).ToJsonString());
        Assert.Equal(["quadratic", "cubic", "fb-mnist-cnn"], json["tasks"]!.AsArray().Select(t => (string)t!["task"]!));
        var quadratic = json["tasks"]![0]!["levels"]!.AsArray();
        Assert.Equal(1.8, (double)quadratic[0]!["weights_only_length"]!["mean"]!, 12);
        Assert.Equal(13.8, (double)quadratic[0]!["paper_beads"]!);
        var claims = json["claims"]!.AsArray();
        Assert.Contains(claims, c => (string)c!["task"]! == "cubic" && (string)c["id"]! == "cubic_spike" && (string)c["verdict"]! == "not tested");
        Assert.Equal(LevelSetsSettings.DefaultCurveSteps, (long)json["toy_settings"]!["curve_steps"]!);

        var csv = File.ReadAllLines(dir.File("level-sets-small.csv"));
        Assert.Equal(1 + levels.Sum(l => l.Pairs.Length), csv.Length);
        Assert.StartsWith("task,metric,level,endpoint_seed,pair,skipped,connected,weights_only_length", csv[0]);
        Assert.StartsWith("quadratic,Loss,0.01,10000,0,0,1,1.8,", csv[1]);

        ReproduceReportChecks.AssertPlotWithText(dir.File("level-sets-small-quadratic.png"), "L0 (evaluation MAE, log scale)", 900, 800);
        ReproduceReportChecks.AssertPlotWithText(dir.File("level-sets-small-fb-mnist-cnn.png"), "L0 (test error (%), log scale)", 900, 800);
        ReproduceReportChecks.AssertPlotWithText(dir.File("level-sets-small-curves.png"), "barrier / L0");
    }
}
