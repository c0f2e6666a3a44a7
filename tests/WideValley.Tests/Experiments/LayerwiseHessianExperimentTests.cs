using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Experiments;

/// <summary>`reproduce layerwise-hessian`: the smoke budget end to end, the verdict rules, and the command's refusals.</summary>
public class LayerwiseHessianExperimentTests
{
    static LayerwiseHessianSettings Settings(TempDir dir, int seeds = 1) => new()
    {
        Budget = Budget.Smoke,
        Seeds = seeds,
        Threads = 2,
        RunsRoot = dir.File("runs"),
        OutDir = dir.File("out"),
        CommandLine = "widevalley reproduce layerwise-hessian --budget smoke --seeds 1",
        Machine = "test machine",
    };

    [Fact]
    public void SmokeBudgetRunsEndToEndAndReportsEveryClaim()
    {
        using var dir = new TempDir();
        var settings = Settings(dir);
        var events = new List<ExperimentEvent>();
        var outcome = LayerwiseHessianExperiment.Run(settings, new SyncProgress(events.Add), TestContext.Current.CancellationToken);
        var analysis = Assert.Single(outcome.Runs).Analysis;
        Assert.NotNull(analysis);
        Assert.Equal([0, 1], analysis.Records.Select(r => r.Epoch));
        Assert.All(analysis.Records, r => Assert.NotNull(r.Full.Density));
        // The authors' preset (smoke: 16 steps, bound run 8) on the full Hessian and every layer.
        Assert.False(analysis.Records[1].Full.Density!.Reorthogonalized);
        Assert.Equal(16, analysis.Records[1].Full.Density!.Nodes[0].Length);
        foreach (var m in LayerwiseHessianExperiment.Measures)
        {
            var distances = analysis.Distances[m];
            Assert.Equal(["body.conv1", "body.conv2", "body.fc3", "body.fc4"], distances.Select(d => d.Layer));
            Assert.Equal(1.0, distances.Max(d => d.Normalized), 12);
        }
        var markdown = File.ReadAllText(outcome.MarkdownFile);
        Assert.Contains("middle layers are closest to the full spectrum (W1 on a common eigenvalue grid (ours, default))", markdown);
        Assert.Contains("the authors' code (W1 between transformed density VALUES)", markdown);
        Assert.Contains("| top eigenvalue and trace (full and layerwise) fall during training | **not testable** |", markdown);
        Assert.Contains("Smoke budget", markdown);
        Assert.Contains("widevalley reproduce layerwise-hessian --budget smoke", markdown);
        Assert.True(File.Exists(Path.Combine(settings.OutDir, "layerwise-hessian-smoke.json")));

        // A second invocation trains nothing.
        var again = new List<ExperimentEvent>();
        LayerwiseHessianExperiment.Run(settings, new SyncProgress(again.Add), TestContext.Current.CancellationToken);
        var planned = again.OfType<ComparisonPlanned>().Single();
        Assert.Equal((1, 0), (planned.Finished, planned.ToTrain));
    }

    static LayerwiseRunAnalysis Synthetic(long seed, double[] middleFirst, double lambdaFirst, double lambdaLast)
    {
        OperatorCurvature Op(string name, double depth, double value) => new() { Name = name, RelativeDepth = depth, LambdaMax = value, Trace = 10 * value };
        string[] names = ["a", "b", "c", "d"];
        var records = Enumerable.Range(0, 3).Select(e => new CurvatureRecord
        {
            Epoch = e,
            Full = Op("full", 0, e <= 1 ? lambdaFirst : lambdaLast),
            Layers = names.Select((n, i) => Op(n, i / 3.0, e <= 1 ? lambdaFirst / 2 : lambdaLast / 2)).ToList(),
        }).ToList();
        var distances = LayerwiseHessianExperiment.Measures.ToDictionary(m => m,
            m => (IReadOnlyList<LayerDistance>)names.Select((n, i) => new LayerDistance(n, i / 3.0, [middleFirst[i]], middleFirst[i] / middleFirst.Max())).ToList());
        return new LayerwiseRunAnalysis(seed, records, distances, 10);
    }

    [Fact]
    public void VerdictsFollowTheStatedRules()
    {
        var middle = new[] { 1.0, 0.2, 0.5, 0.9 };
        var last = new[] { 1.0, 0.8, 0.5, 0.1 };
        var agree = LayerwiseHessianReport.MiddleVerdicts([Synthetic(1, middle, 5, 3), Synthetic(2, middle, 6, 2)]);
        Assert.All(agree, v => Assert.Equal("agrees", v.Verdict));
        var partly = LayerwiseHessianReport.MiddleVerdicts([Synthetic(1, middle, 5, 3), Synthetic(2, last, 6, 2), Synthetic(3, last, 6, 2)]);
        Assert.All(partly, v => Assert.Equal("partly", v.Verdict));
        var disagree = LayerwiseHessianReport.MiddleVerdicts([Synthetic(1, last, 5, 3)]);
        Assert.All(disagree, v => Assert.Equal("disagrees", v.Verdict));

        Assert.Equal("agrees", LayerwiseHessianReport.FallVerdict([Synthetic(1, middle, 5, 3), Synthetic(2, middle, 6, 2)]).Verdict);
        Assert.Equal("partly", LayerwiseHessianReport.FallVerdict([Synthetic(1, middle, 5, 3), Synthetic(2, middle, 2, 6)]).Verdict);
        Assert.Equal("disagrees", LayerwiseHessianReport.FallVerdict([Synthetic(1, middle, 2, 3)]).Verdict);
        Assert.Equal("not testable", LayerwiseHessianReport.FallVerdict([]).Verdict);
        Assert.Equal(-0.4, LayerwiseHessianReport.RelativeChange(Synthetic(1, middle, 5, 3).Records, r => r.Full.LambdaMax), 12);
    }

    [Fact]
    public void TheCommandRefusesMissingDataAndBadSettingsBeforeAnythingRuns()
    {
        using var dir = new TempDir();
        var missing = InProcessCli.Run("reproduce", "layerwise-hessian", "--budget", "smoke", "--fashion-mnist-dir", dir.File("nowhere"), "--out", dir.File("out"), "--runs", dir.File("runs"));
        Assert.Equal(ExitCodes.Usage, missing.Code);
        Assert.Contains("no such folder", missing.Err);
        var seeds = InProcessCli.Run("reproduce", "layerwise-hessian", "--budget", "smoke", "--seeds", "0", "--out", dir.File("out"), "--runs", dir.File("runs"));
        Assert.Equal(ExitCodes.Usage, seeds.Code);
        Assert.Contains("--seeds must be at least 1", seeds.Err);
        var model = InProcessCli.Run("reproduce", "layerwise-hessian", "--budget", "smoke", "--model", "no-such-net", "--out", dir.File("out"), "--runs", dir.File("runs"));
        Assert.Equal(ExitCodes.Usage, model.Code);
        Assert.Contains("no-such-net", model.Err);
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    /// <summary>Handles each report at once, on the reporting thread.</summary>
    sealed class SyncProgress(Action<ExperimentEvent> handle) : IProgress<ExperimentEvent>
    {
        public void Report(ExperimentEvent value) => handle(value);
    }
}
