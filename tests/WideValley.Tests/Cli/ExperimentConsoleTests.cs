using Spectre.Console;
using WideValley.Cli;
using WideValley.Cli.Commands.Reproduce;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>
/// <see cref="ExperimentConsole"/> off a terminal: the lines a redirected log of a `reproduce` command keeps, one per
/// report, exactly as the commands printed them before the runners moved to the library.
/// </summary>
public class ExperimentConsoleTests
{
    static (string Out, string Err, int Result) Show(params ExperimentEvent[] events)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout), Interactive = InteractionSupport.No, Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        var ctx = new CliContext { Out = stdout, Error = stderr, Console = console, Interactive = false };
        var result = ExperimentConsole.Run(ctx, (progress, cancellation) =>
        {
            Assert.False(cancellation.IsCancellationRequested);
            foreach (var e in events) progress.Report(e);
            return 42;
        });
        return (stdout.ToString().ReplaceLineEndings("\n"), stderr.ToString().ReplaceLineEndings("\n"), result);
    }

    static TrainingResult Ended(TrainingStatus status, string? message) => new(status, message, [], 10, 2.5, 12.34);

    [Fact]
    public void TrainingReportsBecomeTheCommandsLogLines()
    {
        var epoch = new EpochMetrics { Epoch = 1, EffectiveEpochs = 1, Lr = 0.1, TrainLoss = 0.5, TrainError = 12.5, Seconds = 1.5 };
        var (output, err, result) = Show(
            new ComparisonPlanned("table1", 8, 2, 6, false),
            new TrainingStarted("mnistfc/adam/seed-1", "/runs/a", false, new RunPosition(3, 6)),
            new TrainingLog("mnistfc/adam/seed-1", "fashion-mnist: reading /data"),
            new TrainingStepCompleted("mnistfc/adam/seed-1", new StepProgress(1, 2, 1, 4, 0.7, 0.25)),
            new TrainingEpochCompleted("mnistfc/adam/seed-1", epoch, 2),
            new TrainingEnded("mnistfc/adam/seed-1", "/runs/a", Ended(TrainingStatus.Completed, null)),
            new TrainingStarted("lenet", "/runs/b", true, null),
            new TrainingEnded("lenet", "/runs/b", Ended(TrainingStatus.Diverged, "loss is NaN")),
            new TrainingFinishedElsewhere("lenet", new RunPosition(4, 6)),
            new TrainingEnded("x", "/runs/c", Ended(TrainingStatus.Interrupted, "stopped on request")),
            new ComparisonPlanned("sgld-baseline", 2, 0, 2, true));
        Assert.Equal(42, result);
        Assert.Equal("", err);
        Assert.Equal(
            "table1: 8 runs planned, 2 finished already, 6 to train\n" +
            "[3/6] mnistfc/adam/seed-1: training in /runs/a\n" +
            "  fashion-mnist: reading /data\n" +
            TrainingConsole.FormatEpoch("mnistfc/adam/seed-1", epoch, 2) + "\n" +
            "  mnistfc/adam/seed-1 finished: 12.3 s, 2.5 effective epochs\n" +
            "lenet: resuming in /runs/b\n" +
            "  lenet diverged: loss is NaN (reported as such; delete /runs/b to run it again)\n" +
            "[4/6] lenet: finished meanwhile by another process\n" +
            "interrupted: stopped on request; run the same command again to continue\n" +
            "sgld-baseline: 2 runs planned, 0 finished already, 2 to report as pending (--report-only)\n", output);
    }

    [Fact]
    public void MeasurementReportsPrintTheResultAndFailuresGoToStandardError()
    {
        var result = new HessianMeasurementResult { Method = HessianMethod.Exact };
        result.Lines.Add("exact spectrum: n = 3");
        var (output, err, _) = Show(
            new MeasurementStarted("small-lenet", "exact", "/runs/a/hessian-exact"),
            new MeasurementLog("small-lenet", "hessian exact: small-lenet, n = 3 parameters"),
            new MeasurementProgressed("small-lenet", new CurvatureProgress("lanczos", 1, 3, TimeSpan.Zero)),
            new MeasurementEnded("small-lenet", new HessianFolder("/runs/a/hessian-exact", "{}", ["eigenvalues.csv", "hessian.json"], result)),
            new MeasurementFailed("small-mnistfc", "exact", "out of memory"),
            new MeasurementInterrupted("small-char-lstm", "slq", "interrupted"));
        Assert.Equal(
            "small-lenet: measuring (exact) into /runs/a/hessian-exact\n" +
            "hessian exact: small-lenet, n = 3 parameters\n" +
            "exact spectrum: n = 3\n" +
            "wrote /runs/a/hessian-exact: eigenvalues.csv, hessian.json\n", output);
        Assert.Equal("widevalley: out of memory\nwidevalley: interrupted\n", err);
    }
}
