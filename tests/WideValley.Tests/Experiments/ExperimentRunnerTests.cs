using System.Text.Json.Nodes;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Experiments;

/// <summary>Keeps every report a runner makes, in order, on the reporting thread (what the runners promise).</summary>
sealed class EventLog : IProgress<ExperimentEvent>
{
    readonly Lock gate = new();
    public List<ExperimentEvent> Events { get; } = [];
    public Action<ExperimentEvent>? OnReport { get; init; }

    public void Report(ExperimentEvent value)
    {
        lock (gate) Events.Add(value);
        OnReport?.Invoke(value);
    }

    public List<T> Of<T>() => Events.OfType<T>().ToList();
}

/// <summary><see cref="RunTraining.Train"/>: one run in its folder, resumable, reported through events, stopped by a token.</summary>
public class RunTrainingTests
{
    /// <summary>Table 1's smoke mnistfc Adam run, made long enough (2 epochs of 4 steps) to be stopped in the middle.</summary>
    static RunConfig TwoEpochs() =>
        Table1.Arms(Table1.Row("mnistfc"), Budget.Smoke, 1, new ExperimentData(), threads: 2).Baseline.Config with { EffectiveEpochBudget = null, Epochs = 2 };

    [Fact]
    public void ACancelledRunSavesItsCheckpointAndTheNextCallResumesAndFinishesIt()
    {
        using var dir = new TempDir();
        var folder = dir.File("run");
        var config = TwoEpochs();
        using var stop = new CancellationTokenSource();
        // Cancel as the first step is reported: the trainer finishes that step, saves and stops.
        var first = new EventLog { OnReport = e => { if (e is TrainingStepCompleted) stop.Cancel(); } };
        var interrupted = RunTraining.Train(config, folder, "mnistfc/adam/seed-1", new RunPosition(1, 2), first, stop.Token);

        Assert.Equal(TrainingStatus.Interrupted, interrupted!.Status);
        Assert.Equal(RunFolderState.Resumable, RunFolders.Inspect(folder, config));
        var started = Assert.IsType<TrainingStarted>(first.Events.First(e => e is TrainingStarted));
        Assert.Equal(("mnistfc/adam/seed-1", folder, false, (RunPosition?)new RunPosition(1, 2)), (started.Label, started.Folder, started.Resuming, started.Position));
        Assert.Single(first.Of<TrainingStepCompleted>());
        Assert.Empty(first.Of<TrainingEpochCompleted>());
        Assert.Same(interrupted, Assert.IsType<TrainingEnded>(first.Events[^1]).Result);

        var second = new EventLog();
        var finished = RunTraining.Train(config, folder, "mnistfc/adam/seed-1", null, second, TestContext.Current.CancellationToken);
        Assert.Equal(TrainingStatus.Completed, finished!.Status);
        Assert.True(second.Of<TrainingStarted>().Single().Resuming);
        // The resumed run does the 7 steps that were left, and reports both epochs' ends.
        Assert.Equal(7, second.Of<TrainingStepCompleted>().Count);
        Assert.Equal([1, 2], second.Of<TrainingEpochCompleted>().Select(e => e.Metrics.Epoch));
        Assert.All(second.Of<TrainingEpochCompleted>(), e => Assert.Equal(2, e.Epochs));
        Assert.Equal(RunFolderState.Finished, RunFolders.Inspect(folder, config));

        // A folder that holds the finished run is not trained again.
        var third = new EventLog();
        Assert.Null(RunTraining.Train(config, folder, "mnistfc/adam/seed-1", new RunPosition(2, 2), third, TestContext.Current.CancellationToken));
        Assert.Equal(new RunPosition(2, 2), Assert.IsType<TrainingFinishedElsewhere>(Assert.Single(third.Events)).Position);
    }

    /// <summary>
    /// A reproduce run whose newest checkpoint is damaged goes on from the previous generation, as train does, and says
    /// so through its events (before, inspecting the folder threw on the damaged header).
    /// </summary>
    [Fact]
    public void ADamagedNewestCheckpointFallsBackToThePreviousGenerationAndSaysSo()
    {
        using var dir = new TempDir();
        var folder = dir.File("run");
        var config = TwoEpochs();
        using var stop = new CancellationTokenSource();
        var steps = 0;
        // Stopped in the second epoch: the epoch-1 checkpoint becomes the previous generation of the interruption's.
        var first = new EventLog { OnReport = e => { if (e is TrainingStepCompleted && ++steps == 6) stop.Cancel(); } };
        Assert.Equal(TrainingStatus.Interrupted, RunTraining.Train(config, folder, "run", null, first, stop.Token)!.Status);
        var newest = Path.Combine(folder, Trainer.CheckpointFileName);
        Assert.True(File.Exists(Checkpoint.PreviousGenerationPath(newest)));
        var bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(newest, bytes);

        Assert.Equal(RunFolderState.Resumable, RunFolders.Inspect(folder, config));
        var second = new EventLog();
        Assert.Equal(TrainingStatus.Completed, RunTraining.Train(config, folder, "run", null, second, TestContext.Current.CancellationToken)!.Status);
        Assert.Contains(second.Of<TrainingLog>(), l => l.Message.Contains("damaged", StringComparison.Ordinal));
        Assert.Equal([2], second.Of<TrainingEpochCompleted>().Select(e => e.Metrics.Epoch));
    }

    [Fact]
    public void AFolderHoldingARunWithOtherSettingsIsRefusedBeforeTraining()
    {
        using var dir = new TempDir();
        var folder = dir.File("run");
        var config = TwoEpochs() with { Epochs = 1 };
        Assert.Equal(TrainingStatus.Completed, RunTraining.Train(config, folder, "run", cancellation: TestContext.Current.CancellationToken)!.Status);
        var events = new EventLog();
        var e = Assert.Throws<InvalidDataException>(() => RunTraining.Train(config with { Epochs = 3 }, folder, "run", null, events, TestContext.Current.CancellationToken));
        Assert.Contains("epochs: stored 1, requested 3", e.Message);
        Assert.Empty(events.Events);
    }
}

/// <summary><see cref="ComparisonRunner"/>: plan, train what is missing, report; cancellation and --report-only.</summary>
public class ComparisonRunnerTests
{
    static ComparisonRequest Request(string runs, string outDir, int seeds = 1, bool reportOnly = false) => new()
    {
        Name = "table1",
        Rows = [Table1.Row("mnistfc"), Table1.Row("allcnn")],
        SkipReason = row => Table1.SkipReason(row, new ExperimentData()),
        DatasetOf = row => Table1.DatasetOf(row, new ExperimentData()),
        Arms = (row, seed) => Table1.Arms(row, Budget.Smoke, seed, new ExperimentData(), threads: 2),
        Folder = (row, arm, seed) => Table1.RunFolder(runs, Budget.Smoke, row, arm, seed),
        Seeds = seeds,
        FirstSeed = 4,
        ReportOnly = reportOnly,
        OutDir = outDir,
        Report = results => new ComparisonReportInput("table1-test", "Table 1 (test)", ["A test."], Budget.Smoke, "widevalley reproduce table1", "test machine", results),
    };

    [Fact]
    public void PlanListsEveryRunSeedsOutermostAndTheSkippedRowsWithoutTouchingTheDisk()
    {
        using var dir = new TempDir();
        var plan = ComparisonRunner.Plan(Request(dir.File("runs"), dir.File("out"), seeds: 2));
        Assert.Equal(["mnistfc/adam/seed-4", "mnistfc/entropy-sgd/seed-4", "mnistfc/adam/seed-5", "mnistfc/entropy-sgd/seed-5"], plan.Runs.Select(r => r.Label));
        var (row, reason) = Assert.Single(plan.Skipped);
        Assert.Equal("allcnn", row.Name);
        Assert.Contains("CIFAR-10", reason);
        Assert.False(Directory.Exists(dir.File("runs")));
        Assert.Throws<ArgumentException>(() => ComparisonRunner.Plan(Request(dir.File("runs"), dir.File("out"), seeds: 0)));
    }

    [Fact]
    public void RunTrainsWhatIsMissingReportsItAndASecondRunTrainsNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var request = Request(dir.File("runs"), dir.File("out"));
        var events = new EventLog();
        var outcome = ComparisonRunner.Run(ComparisonRunner.Plan(request), events, TestContext.Current.CancellationToken);

        Assert.False(outcome.Interrupted);
        Assert.Equal(new ComparisonPlanned("table1", 2, 0, 2, false), events.Events[0]);
        Assert.Equal([new RunPosition(1, 2), new RunPosition(2, 2)], events.Of<TrainingStarted>().Select(s => s.Position!.Value));
        Assert.All(events.Of<TrainingEnded>(), e => Assert.Equal(TrainingStatus.Completed, e.Result.Status));
        Assert.Equal(dir.File("out/table1-test.md"), outcome.MarkdownFile);
        Assert.All(outcome.Files, f => Assert.True(File.Exists(f), f));
        var mnist = outcome.Report.Rows[0];
        Assert.Equal((1, 1), (mnist.Baseline!.Runs.Count, mnist.Entropy!.Runs.Count));
        Assert.Equal(4, mnist.Entropy.Runs[0].Config.Seed);
        Assert.NotNull(outcome.Report.Rows[1].SkipReason);

        var again = new EventLog();
        var second = ComparisonRunner.Run(ComparisonRunner.Plan(request), again, TestContext.Current.CancellationToken);
        Assert.Equal(new ComparisonPlanned("table1", 2, 2, 0, false), Assert.Single(again.Events));
        Assert.Single(second.Report.Rows[0].Baseline!.Runs);
    }

    [Fact]
    public void ACancelledOrReportOnlyRunTrainsNothingAndReportsTheRunsAsMissing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var events = new EventLog();
        var cancelled = ComparisonRunner.Run(ComparisonRunner.Plan(Request(dir.File("runs"), dir.File("out"))), events, stop.Token);
        Assert.True(cancelled.Interrupted);
        Assert.Empty(events.Of<TrainingStarted>());
        Assert.Empty(cancelled.Report.Rows[0].Baseline!.Runs);
        Assert.True(File.Exists(cancelled.MarkdownFile));

        var reportOnly = new EventLog();
        var outcome = ComparisonRunner.Run(ComparisonRunner.Plan(Request(dir.File("runs"), dir.File("out"), reportOnly: true)), reportOnly, TestContext.Current.CancellationToken);
        Assert.False(outcome.Interrupted);
        Assert.Equal(new ComparisonPlanned("table1", 2, 0, 2, true), Assert.Single(reportOnly.Events));
        Assert.False(Directory.Exists(dir.File("runs")));
    }
}

/// <summary>
/// <see cref="HessianFolders.Measure"/> against a closed form: softmax regression at zero weights on the d unit
/// vectors. The Hessian of the mean cross-entropy in the weights is (I/C − 11ᵀ/C²) ⊗ (I/d): eigenvalue 1/(C d) with
/// multiplicity (C − 1) d and 0 with multiplicity d.
/// </summary>
public class HessianFoldersTests
{
    const int Classes = 4, Dims = 5;

    static (nn.Module<Tensor, Tensor> Model, List<(Tensor, Tensor)> Batches) ZeroSoftmaxRegression(int batchSize)
    {
        var model = nn.Linear(Dims, Classes, dtype: ScalarType.Float64);
        using (no_grad())
        {
            model.weight!.zero_();
            model.bias!.zero_();
        }
        var inputs = eye(Dims, dtype: ScalarType.Float64);
        var labels = arange(Dims, dtype: ScalarType.Int64) % Classes;
        return (model, MeasurableRun.Batches(inputs, labels, Dims, batchSize));
    }

    static HessianFolderRequest Request(nn.Module<Tensor, Tensor> model, List<(Tensor, Tensor)> batches, int batchSize, HessianMethod method, string outDir, TextWriter log) => new()
    {
        Model = model,
        EvaluationSet = batches,
        Samples = Dims,
        BatchSize = batchSize,
        Name = "softmax-regression",
        Options = new LandscapeOptions { Parameters = ParameterSelection.ByPrefix(["weight"]) },
        ParametersText = "weight",
        Settings = new HessianMeasurementSettings { Method = method, ColumnsFolder = Path.Combine(outDir, "hessian-columns"), Log = log, Seed = 3, Workers = method == HessianMethod.Exact ? 1 : null },
        OutDir = outDir,
        Describe = json => json["model"] = "softmax-regression",
    };

    [Fact]
    public void TheExactSpectrumMatchesTheClosedFormAndTheFolderHoldsWhatHessianJsonLists()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var (model, batches) = ZeroSoftmaxRegression(batchSize: 2);
        var lines = new List<string>();
        var measured = HessianFolders.Measure(Request(model, batches, 2, HessianMethod.Exact, dir.File("m"), new LineWriter(lines.Add)));

        var eigenvalues = measured.Result.Eigenvalues!.Order().ToArray();
        Assert.Equal(Classes * Dims, eigenvalues.Length);
        var nonzero = 1.0 / (Classes * Dims);
        foreach (var (value, i) in eigenvalues.Select((v, i) => (v, i)))
            Assert.Equal(i < Dims ? 0 : nonzero, value, 1e-10);

        Assert.Contains("hessian exact: softmax-regression, n = 20 parameters", lines[0]);
        Assert.Equal(["eigenvalues.csv", "spectrum.png", "spectrum.svg", "hessian.json"], measured.Files);
        Assert.All(measured.Files, f => Assert.True(File.Exists(Path.Combine(measured.OutDir, f)), f));
        var json = JsonNode.Parse(File.ReadAllText(dir.File("m/hessian.json")))!;
        Assert.Equal(measured.Json, json.ToJsonString());
        Assert.Equal(("exact", Dims, 2, "weight", "softmax-regression", 3L), ((string?)json["method"], (int)json["samples"]!, (int)json["batch_size"]!,
            (string?)json["params"], (string?)json["model"], (long)json["seed"]!));
        Assert.Equal(["weight"], json["parameter_names"]!.AsArray().Select(n => (string?)n));
        Assert.Equal(dir.File("m"), (string?)json["out"]);
        // The column blocks are deleted after success.
        Assert.False(Directory.Exists(dir.File("m/hessian-columns")));
    }

    [Fact]
    public void TheDiagonalFisherNeedsTwoMinibatchesAndSaysSoBeforeWritingAnything()
    {
        using var dir = new TempDir();
        var (model, batches) = ZeroSoftmaxRegression(batchSize: Dims);
        var e = Assert.Throws<ArgumentException>(() => HessianFolders.Measure(Request(model, batches, Dims, HessianMethod.DiagFisher, dir.File("m"), TextWriter.Null)));
        Assert.Contains("needs at least 2; 5 samples in batches of 5 give 1", e.Message);
        Assert.False(Directory.Exists(dir.File("m")));
    }

    [Fact]
    public void ACancelledExactMeasurementSaysWhereItsColumnsAreKept()
    {
        using var dir = new TempDir();
        var (model, batches) = ZeroSoftmaxRegression(batchSize: 2);
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var request = Request(model, batches, 2, HessianMethod.Exact, dir.File("m"), TextWriter.Null);
        var e = Assert.ThrowsAny<OperationCanceledException>(() => HessianFolders.Measure(request with { Settings = request.Settings with { Cancellation = stop.Token } }));
        Assert.Contains($"every finished block of columns is kept in {dir.File("m/hessian-columns")}", e.Message);
        Assert.False(File.Exists(dir.File("m/hessian.json")));
    }
}

/// <summary><see cref="LineWriter"/>: a service's TextWriter log as whole lines.</summary>
public class LineWriterTests
{
    [Fact]
    public void HandsOnWholeLinesWhateverTheWritesAndTheLastPartialLineOnFlush()
    {
        var lines = new List<string>();
        using (var writer = new LineWriter(lines.Add))
        {
            writer.Write("exact: ");
            writer.Write(12);
            writer.WriteLine(" columns");
            writer.Write("a\r\nb\n");
            writer.WriteLine();
            writer.Write("tail");
            Assert.Equal(["exact: 12 columns", "a", "b", ""], lines);
        }
        Assert.Equal("tail", lines[^1]);
    }
}

/// <summary><see cref="HessianUniversalityRunner"/> on one network at the smoke budget: train, measure, report, and nothing twice.</summary>
public class HessianUniversalityRunnerTests
{
    static UniversalityRequest Request(TempDir dir) => new()
    {
        Networks = [HessianUniversality.Network(HessianUniversality.SmallMnistFc)],
        Budget = Budget.Smoke,
        Data = new ExperimentData(),
        Threads = 2,
        RunsRoot = dir.File("runs"),
        OutDir = dir.File("out"),
        CommandLine = "widevalley reproduce hessian-universality --budget smoke --networks small-mnistfc",
        Machine = "test machine",
    };

    [Fact]
    public void TrainsMeasuresThroughTheSharedServiceAndASecondRunDoesNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var plan = HessianUniversalityRunner.Plan(Request(dir));
        Assert.Equal((1, 1, 1, 0), (plan.TrainingsPlanned, plan.TrainingsToRun, plan.MeasurementsPlanned, plan.MeasurementsDone));
        Assert.Equal(RunFolderState.Empty, plan.Networks[0].State);
        Assert.Equal("images", plan.Networks[0].SampleUnit);

        var events = new EventLog();
        var outcome = HessianUniversalityRunner.Run(plan, events, TestContext.Current.CancellationToken);
        Assert.Equal(UniversalityStatus.Completed, outcome.Status);
        Assert.Equal([typeof(TrainingStarted), typeof(MeasurementStarted), typeof(MeasurementEnded)],
            events.Events.Where(e => e is TrainingStarted or MeasurementStarted or MeasurementEnded).Select(e => e.GetType()));
        Assert.Contains(events.Of<MeasurementLog>(), l => l.Message.StartsWith("hessian exact: small-mnistfc, n = 650 parameters (prefix:body.fc2), 64 samples", StringComparison.Ordinal));
        Assert.NotEmpty(events.Of<MeasurementColumnsProgressed>());
        var measured = events.Of<MeasurementEnded>().Single().Measurement;
        Assert.Equal(650, measured.Result.Eigenvalues!.Length);
        // The report's spectrum is the one the measurement folder holds.
        var result = Assert.Single(outcome.Report.Results);
        Assert.True(result.Measured);
        Assert.Equal(measured.Result.Eigenvalues.Max(), result.Summary!.LambdaMax, 1e-12);
        Assert.Equal(dir.File("runs/hessian-universality-smoke/small-mnistfc/hessian-exact"), measured.OutDir);
        Assert.Contains("load average", outcome.Report.Machine);
        Assert.All(outcome.Files, f => Assert.True(File.Exists(f), f));

        var again = HessianUniversalityRunner.Plan(Request(dir));
        Assert.Equal((0, 1), (again.TrainingsToRun, again.MeasurementsDone));
        var quiet = new EventLog();
        var second = HessianUniversalityRunner.Run(again, quiet, TestContext.Current.CancellationToken);
        Assert.Equal(UniversalityStatus.Completed, second.Status);
        Assert.Empty(quiet.Events);
        Assert.Equal("test machine", second.Report.Machine);
    }

    [Fact]
    public void ACancelledRunTrainsNothingAndReportsTheNetworkAsPending()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        var events = new EventLog();
        var outcome = HessianUniversalityRunner.Run(HessianUniversalityRunner.Plan(Request(dir)), events, stop.Token);
        Assert.Equal(UniversalityStatus.Interrupted, outcome.Status);
        Assert.Empty(events.Events);
        Assert.Contains("training has not finished", Assert.Single(outcome.Report.Results).Pending);
    }
}

/// <summary>The comparisons Table 1 and App. C.1 define for <see cref="ComparisonRunner"/>: folders, rows, report names.</summary>
public class PaperComparisonTests
{
    static ComparisonRunSettings Settings(Budget budget = Budget.Smoke) => new()
    {
        Budget = budget,
        Seeds = 2,
        FirstSeed = 7,
        Data = new ExperimentData(),
        RunsRoot = "/runs",
        OutDir = "/out",
        CommandLine = "widevalley reproduce ...",
        Machine = "test machine",
    };

    [Fact]
    public void SgldRunsInItsOwnTreeAndSharesTheEntropySgdRunsWithTable1()
    {
        var sgld = ComparisonRunner.Plan(SgldBaseline.Comparison(Settings(), 0.25, 0.5));
        var table1 = ComparisonRunner.Plan(Table1.Comparison([Table1.Row("lenet")], Settings()));
        Assert.Equal(["/runs/sgld-baseline-smoke/lenet/sgld-lr0.25-b0.5/seed-7", "/runs/table1-smoke/lenet/entropy-sgd/seed-7",
            "/runs/sgld-baseline-smoke/lenet/sgld-lr0.25-b0.5/seed-8", "/runs/table1-smoke/lenet/entropy-sgd/seed-8"], sgld.Runs.Select(r => r.Folder));
        // The shared arm is the same run in both: same folder, same configuration.
        foreach (var entropy in sgld.Runs.Where(r => r.Arm.IsEntropy))
        {
            var same = table1.Runs.Single(r => r.Folder == entropy.Folder);
            Assert.Equal(same.Arm.Config.ToJson().ToJsonString(), entropy.Arm.Config.ToJson().ToJsonString());
        }
        Assert.Equal("sgld", sgld.Runs[0].Arm.Key);
        Assert.Throws<ArgumentException>(() => SgldBaseline.Comparison(Settings(), -1, 0.5));
    }

    [Fact]
    public void TheReportsAreNamedByDatasetAndBudgetAndQuoteTheCommandAndMachine()
    {
        var table1 = Table1.Comparison(Table1.Rows, Settings()).Report([]);
        Assert.Equal(("table1-fashion-mnist-smoke", "widevalley reproduce ...", "test machine"), (table1.Stem, table1.Command, table1.Machine));
        Assert.Contains(table1.Introduction, p => p.Contains("Fashion-MNIST stands in for MNIST", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("table1-fashion-mnist", Table1.Comparison(Table1.Rows, Settings(Budget.Paper)).Report([]).Stem);
        var sgld = SgldBaseline.Comparison(Settings(Budget.Paper)).Report([]);
        Assert.Equal("sgld-baseline", sgld.Stem);
        Assert.Contains(sgld.Introduction, p => p.Contains("these are the defaults", StringComparison.Ordinal));
        Assert.Contains(SgldBaseline.Comparison(Settings(), 1, 0.5).Report([]).Introduction, p => p.Contains("given on the command line", StringComparison.Ordinal));
    }
}

/// <summary><see cref="ReportFolders.CheckWritable"/>: a report folder that cannot be written fails before any computation.</summary>
public class ReportFoldersTests
{
    [Fact]
    public void AFileOrAFolderUnderAFileIsRefusedAndAWritableFolderIsCreatedAndLeftClean()
    {
        using var dir = new TempDir();
        var file = dir.WriteText("file", "keep");
        Assert.Contains("is a file; give a folder", Assert.Throws<IOException>(() => ReportFolders.CheckWritable(file, "report")).Message);
        Assert.Contains("cannot write the report to --out", Assert.Throws<IOException>(() => ReportFolders.CheckWritable(Path.Combine(file, "sub"), "report")).Message);
        ReportFolders.CheckWritable(dir.File("new/reports"), "report");
        Assert.Empty(Directory.GetFileSystemEntries(dir.File("new/reports")));
        Assert.Equal("keep", File.ReadAllText(file));
    }
}
