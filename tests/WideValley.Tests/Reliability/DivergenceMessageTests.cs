using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Issue 16: after a divergence the trainer names the checkpoint it actually kept. Before the fix it said "the last
/// good checkpoint (end of epoch N) is kept" from the last finished epoch, although with --checkpoint-every a periodic
/// checkpoint inside the diverging epoch is the newest one kept (and the one --resume goes on from).
/// </summary>
public sealed class DivergenceMessageTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void ADivergenceAfterAPeriodicCheckpointNamesThatCheckpointsEpochAndStep()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        // 10 steps an epoch, a checkpoint after every step; epoch 2 at 10^5 times the learning rate explodes within a few steps.
        var (code, output, err) = Run("train", "--model", "small-mnistfc", "--max-train-samples", "1000", "--batch-size", "100", "--threads", "1",
            "--no-tensorboard", "--data-dir", TestMachine.FashionMnistFolder, "--out", run, "--epochs", "3", "--checkpoint-every", "1",
            "--lr-schedule", "custom:2=100000");
        Assert.True(code == ExitCodes.Failure, $"exit {code}: {output}{err}");
        Assert.Contains("training diverged in epoch 2", err);

        var kept = Checkpoint.ReadMeta(Path.Combine(run, Trainer.CheckpointFileName));
        Assert.Equal(1, kept.CompletedEpochs);
        Assert.True(kept.StepInEpoch > 0, $"expected a periodic checkpoint inside epoch 2, got {kept.Reason} at step {kept.StepInEpoch}");
        Assert.Contains($"the last good checkpoint (epoch 2, step {kept.StepInEpoch}) is kept in {run}.", err);
        Assert.DoesNotContain("end of epoch 1", err);
        // The resumed run goes on in epoch 2, so the gentler schedule starts there.
        Assert.Contains("--resume --lr-schedule custom:2=0.1 (a tenth of the learning rate from epoch 2 on)", err);
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
