using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Experiments.Flatness;
using WideValley.Landscape.Flatness;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>`reproduce wide-valleys` end to end at the smoke budget: trains, measures, reports; a rerun trains and measures nothing.</summary>
public class WideValleysExperimentTests
{
    /// <summary>The quick budget with the smallest counts its validation allows, so the end-to-end run stays short.</summary>
    static readonly FlatnessBudget Smallest = FlatnessBudget.Quick with
    {
        Name = "smallest", TopEigenvalues = 1, BottomEigenvalues = 1, LanczosSteps = 2, TraceProbes = 2, SlqProbes = 1, SlqSteps = 2, GaussNewtonProbes = 2,
        Scopes = [1e3], EntropySamples = 2, LangevinSteps = 1, LangevinBurnIn = 0, SliceDirections = 2, SlicePoints = 2, SurfacePoints = 2,
        EpsilonSharpnessSteps = 1, EpsilonSharpnessRandomStarts = 0, SharpnessAscentSteps = 2, PacBayesSamples = 2, PacBayesRelativeTolerance = 0.5,
    };

    static WideValleysSettings Settings(TempDir dir, bool reportOnly = false) => new()
    {
        Budget = Budget.Smoke, Networks = [Table1.Row("mnistfc")], Seeds = 1, Data = new ExperimentData(), FlatnessBudget = Smallest,
        EvaluationSet = new WideValleysEvaluationSet(16, 32), Threads = 2, RunsRoot = dir.File("runs"), OutDir = dir.File("report"), ReportOnly = reportOnly,
        CommandLine = "widevalley reproduce wide-valleys --networks mnistfc --seeds 1 --budget smoke", Machine = "test machine",
    };

    [Fact]
    public void SmokeRunTrainsMeasuresAndReportsAndARerunDoesNothingTwice()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var first = WideValleys.Run(Settings(dir), null, TestContext.Current.CancellationToken);
        Assert.False(first.Interrupted);
        var measures = FlatnessMeasures.All.Count;
        Assert.Equal((2, 0, 2, 2 * measures, 0), (first.Planned, first.FinishedBefore, first.TrainedNow, first.MeasuredNow, first.Reused));
        // The runs are Table 1's, in the folders `reproduce table1 --runs` uses; the store is under the runs folder.
        Assert.True(File.Exists(dir.File("runs/table1-smoke/mnistfc/adam/seed-1/summary.json")));
        Assert.True(File.Exists(dir.File("runs/table1-smoke/mnistfc/entropy-sgd/seed-1/summary.json")));
        Assert.True(Directory.Exists(dir.File($"runs/{WideValleys.FlatnessFolder}/{FlatnessRunner.StoreFolder}")));
        Assert.False(Directory.Exists(dir.File($"report/{FlatnessRunner.StoreFolder}")));

        var network = Assert.Single(first.Results.Networks);
        Assert.All(network.Runs, r => Assert.Equal(WideValleyRun.Measured, r.Status));
        Assert.All(network.Runs, r => Assert.True(double.IsFinite(r.TestError)));
        Assert.Contains(network.Verdicts, v => v.Name == "hessian_trace");
        Assert.DoesNotContain(network.Verdicts, v => v.Flatter == FlatterWhen.NotJudged);
        // One seed per optimizer: (a) cannot be judged; two runs: (b) cannot either.
        Assert.All(network.Verdicts, v => Assert.Equal((ClaimVerdict.NotTestable, ClaimVerdict.NotTestable), (v.Wider.Verdict, v.Correlation.Verdict)));

        var md = File.ReadAllText(dir.File("report/wide-valleys-smoke.md"));
        Assert.Contains("widevalley reproduce wide-valleys --networks mnistfc --seeds 1 --budget smoke", md);
        Assert.Contains("| Hessian trace | lower | not invariant |", md);
        Assert.Contains("`table1-smoke/mnistfc/adam/seed-1`", md);
        Assert.Contains("With fewer than two per optimizer, (a) is not testable, and with fewer than three runs (b) is not either.", md);
        Assert.Contains("Six points is little", md);
        Assert.Contains(@"fraction of \|λ\| < 0.1", md);
        ReproduceReportChecks.AssertImagesExist(dir.File("report/wide-valleys-smoke.md"));
        var json = ReproduceReportChecks.ReadJson(dir.File("report/wide-valleys-smoke.json"));
        Assert.Equal("smallest", (string?)json["flatness_budget"]);
        Assert.Equal(16, (int)json["evaluation_set"]!["train_samples"]!);
        var runs = json["networks"]![0]!["runs"]!.AsArray();
        Assert.Equal(["entropy-sgd", "adam"], runs.Select(r => (string)r!["optimizer"]!));
        Assert.True(double.IsFinite((double)runs[0]!["values"]!["hessian_trace"]!));
        var csv = File.ReadAllLines(dir.File("report/wide-valleys-smoke.csv"));
        Assert.StartsWith("network,optimizer,seed,folder,status,test_error_percent", csv[0]);
        Assert.Contains(csv, l => l.StartsWith("mnistfc,adam,1,table1-smoke/mnistfc/adam/seed-1,measured,", StringComparison.Ordinal) && l.Contains(",hessian_trace,", StringComparison.Ordinal));
        foreach (var file in first.Files.Where(f => f.EndsWith(".md", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".csv", StringComparison.Ordinal)))
            Assert.DoesNotContain(dir.Path, File.ReadAllText(file));

        var checkpoint = dir.File("runs/table1-smoke/mnistfc/adam/seed-1/checkpoint.bin");
        var before = File.GetLastWriteTimeUtc(checkpoint);
        var second = WideValleys.Run(Settings(dir), null, TestContext.Current.CancellationToken);
        Assert.Equal((2, 2, 0, 0, 2 * measures), (second.Planned, second.FinishedBefore, second.TrainedNow, second.MeasuredNow, second.Reused));
        Assert.Equal(before, File.GetLastWriteTimeUtc(checkpoint));
        Assert.Equal(first.Results.Networks[0].Runs.Select(r => r.Value("hessian_trace")!.Value),
            second.Results.Networks[0].Runs.Select(r => r.Value("hessian_trace")!.Value));
    }

    [Fact]
    public void ReportOnlyOnAnEmptyRunsFolderSaysNothingFinished()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var (code, output, err) = InProcessCli.Run("reproduce", "wide-valleys", "--budget", "smoke", "--report-only", "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("wide-valleys: 12 Table 1 runs planned, 0 finished before, 0 trained now; 0 flatness measures computed, 0 reused from the store", output);
        Assert.Contains("mnistfc: no measured run", output);
        Assert.False(File.Exists(dir.File("runs/table1-smoke/mnistfc/adam/seed-1/checkpoint.bin")));
        var md = File.ReadAllText(dir.File("report/wide-valleys-smoke.md"));
        Assert.Contains("**--report-only.** Nothing was trained or measured", md);
        Assert.Contains("Measured runs: Entropy-SGD 0 of 3, Adam 0 of 3.", md);
        Assert.Contains("**mnistfc**: no measured run", md);
        Assert.Contains("**LeNet**: no measured run", md);
        Assert.Contains("| `table1-smoke/lenet/adam/seed-3` | Adam | 3 | pending (not trained yet) |", md);
        var json = ReproduceReportChecks.ReadJson(dir.File("report/wide-valleys-smoke.json"));
        Assert.True((bool)json["report_only"]!);
        Assert.All(json["networks"]!.AsArray(), n => Assert.Empty(n!["verdicts"]!.AsArray()));
    }

    [Theory]
    [InlineData("--networks", "allcnn", "unknown network 'allcnn'")]
    [InlineData("--networks", "", "--networks must name at least one")]
    [InlineData("--seeds", "0", "--seeds must be at least 1, got 0")]
    [InlineData("--flatness-budget", "fast", "--flatness-budget must be one of quick, standard, thorough, got 'fast'")]
    [InlineData("--budget", "huge", "huge")]
    public void BadInputIsAUsageError(string option, string value, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run("reproduce", "wide-valleys", option, value, "--report-only", "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(dir.File("report")) && Directory.EnumerateFiles(dir.File("report")).Any());
    }

    [Fact]
    public void BudgetsMapToTable1sAndStateTheirFlatnessBudgetAndEvaluationSet()
    {
        Assert.Equal(["quick", "quick", "standard"], new[] { Budget.Smoke, Budget.Small, Budget.Paper }.Select(b => WideValleys.DefaultFlatnessBudget(b).Name));
        Assert.Equal(new WideValleysEvaluationSet(64, 256), WideValleys.DefaultEvaluationSet(Budget.Smoke));
        Assert.Equal(new WideValleysEvaluationSet(1000, null), WideValleys.DefaultEvaluationSet(Budget.Small));
        Assert.Contains("the whole test set", WideValleys.DefaultEvaluationSet(Budget.Paper).Describe());
        Assert.Equal(["wide-valleys-smoke", "wide-valleys-small", "wide-valleys"], new[] { Budget.Smoke, Budget.Small, Budget.Paper }.Select(WideValleys.Stem));
        // The run folders are Table 1's.
        using var dir = new TempDir();
        var plan = ComparisonRunner.Plan(WideValleys.Table1Request(Settings(dir) with { Budget = Budget.Small, Networks = WideValleys.Networks, Seeds = 3 }));
        Assert.Equal(12, plan.Runs.Count);
        Assert.Contains(plan.Runs, r => r.Folder == Path.Combine(dir.File("runs"), "table1-small", "lenet", "entropy-sgd", "seed-3"));
        Assert.All(plan.Runs, r => Assert.Equal(Table1.Arms(r.Row, Budget.Small, r.Seed, new ExperimentData(), 2).Entropy.Config.MaxTrainSamples, r.Arm.Config.MaxTrainSamples));
    }
}
