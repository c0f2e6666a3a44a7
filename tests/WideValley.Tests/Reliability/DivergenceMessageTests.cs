using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Issue 16: after a divergence the trainer names the checkpoint it actually kept, and a checkpoint written inside the
/// diverging stretch (whose weights already gave the bad losses: the guard sees a step's loss only after the step, at
/// the weights the next one starts from) is set aside so that the last good one is what --resume goes on from.
/// </summary>
public sealed class DivergenceMessageTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Fact]
    public void APeriodicCheckpointWrittenInsideTheDivergingStretchIsSetAsideAndTheEarlierOneKept()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        // 10 steps an epoch, a checkpoint after every step; epoch 2 at 10^5 times the learning rate explodes at its first
        // step, so the checkpoint written after it holds the weights whose loss trips the guard at the next step.
        string[] data = ["--data-dir", TestMachine.FashionMnistFolder];
        var (code, output, err) = Run(["train", "--model", "small-mnistfc", "--max-train-samples", "1000", "--batch-size", "100", "--threads", "1",
            "--no-tensorboard", .. data, "--out", run, "--epochs", "3", "--checkpoint-every", "1", "--lr-schedule", "custom:2=100000"]);
        Assert.True(code == ExitCodes.Failure, $"exit {code}: {output}{err}");
        Assert.Contains("training diverged in epoch 2", err);

        var checkpoint = Path.Combine(run, Trainer.CheckpointFileName);
        var kept = Checkpoint.ReadMeta(checkpoint);
        Assert.Equal((1, 0L), (kept.CompletedEpochs, kept.StepInEpoch));
        var aside = Checkpoint.ReadMeta(Checkpoint.DivergedPath(checkpoint));
        Assert.Equal(1, aside.CompletedEpochs);
        Assert.True(aside.StepInEpoch > 0, $"expected the periodic checkpoint of epoch 2 to be set aside, got {aside.Reason} at step {aside.StepInEpoch}");
        Assert.Contains($"the newest checkpoint (epoch 2, step {aside.StepInEpoch}) was written after the loss began to diverge; it is set aside as " +
                        "checkpoint.diverged.bin and the previous one (end of epoch 1) is the checkpoint again", err);
        Assert.Contains($"the last good checkpoint (end of epoch 1) is kept in {run}.", err);
        Assert.Contains("--resume --lr-schedule custom:2=0.1 (a tenth of the learning rate from epoch 2 on)", err);
        Assert.Empty(Directory.GetFiles(run, "*.part"));

        // The advice works: the run resumes from the end of epoch 1 and finishes.
        var resumed = Run("train", "--out", run, "--resume", "--lr-schedule", "custom:2=0.1");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Out + resumed.Err);
        Assert.Equal(3, Checkpoint.ReadMeta(checkpoint).CompletedEpochs);
    }

    [Fact]
    public void TheGuardSaysHowManyRecentStepsItsVerdictCovers()
    {
        // One check per step (10 steps an epoch): a factor trip covers the step that tripped it.
        var guard = new DivergenceGuard(new DivergenceGuardOptions { LossFactor = 100, GrowthChecks = 0 }, stepsPerEpoch: 10);
        Assert.Null(guard.Observe(1.0, 1));
        Assert.Null(guard.Observe(1.0, 1));
        Assert.NotNull(guard.Observe(1000.0, 1));
        Assert.Equal(1, guard.SuspectSteps);

        // Checks every 10 steps: the whole window that tripped it.
        guard = new DivergenceGuard(new DivergenceGuardOptions { LossFactor = 100, GrowthChecks = 0 }, stepsPerEpoch: 100);
        Assert.Null(guard.Observe(1.0, 1)); // the first step is a check of its own
        for (var i = 0; i < 10; i++) Assert.Null(guard.Observe(1.0, 1)); // a window of 10 steps
        for (var i = 0; i < 9; i++) Assert.Null(guard.Observe(1.0, 1));
        Assert.NotNull(guard.Observe(5000.0, 1)); // (9 + 5000) / 10 > 100 x 1
        Assert.Equal(10, guard.SuspectSteps);

        // Growth: every window since the loss last did not grow (3 growing checks of one step each).
        guard = new DivergenceGuard(new DivergenceGuardOptions { LossFactor = 0, GrowthChecks = 3 }, stepsPerEpoch: 10);
        foreach (var loss in new[] { 5.0, 4.0, 3.0, 3.5, 4.0 }) Assert.Null(guard.Observe(loss, 1));
        Assert.NotNull(guard.Observe(4.5, 1));
        Assert.Equal(3, guard.SuspectSteps);
    }

    [Fact]
    public void ADivergenceInAResumedSessionNamesTheEarlierSessionsCheckpoint()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        string[] quick = ["--model", "small-mnistfc", "--max-train-samples", "1000", "--batch-size", "100", "--threads", "1",
            "--no-tensorboard", "--data-dir", TestMachine.FashionMnistFolder, "--out", run];
        var first = Run(["train", .. quick, "--epochs", "2"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);

        var (code, output, err) = Run("train", "--out", run, "--resume", "--epochs", "4", "--lr-schedule", "custom:3=100000");
        Assert.True(code == ExitCodes.Failure, $"exit {code}: {output}{err}");
        Assert.Contains("training diverged in epoch 3", err);
        Assert.Contains($"the last good checkpoint (end of epoch 2) is kept in {run}.", err);
        Assert.Contains("--resume --lr-schedule custom:3=0.1", err);
    }
}
