using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Checkpoints within epochs (<see cref="TrainerOptions.CheckpointEvery"/>): a crash loses at most the interval, and the
/// run resumed from such a checkpoint is the uninterrupted run, bit for bit.
/// </summary>
public class PeriodicCheckpointTests
{
    sealed class SimulatedCrash : Exception;

    /// <summary>Blobs, 128 training points in minibatches of 16: 8 steps per epoch; dropout and momentum on.</summary>
    static TrainingResult Train(string folder, int epochs, CheckpointInterval? every, bool resume = false, long crashAfterStep = 0, List<CheckpointMeta>? saves = null)
    {
        var model = Synthetic.Mlp(hidden: 16);
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 128), 16, seed: 1);
        using var optimizer = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.05, Momentum = 0.9 });
        var trainer = new Trainer(task, optimizer, new TrainerOptions { Epochs = epochs, OutputDirectory = folder, TensorBoard = false, CheckpointEvery = every });
        var steps = 0L;
        trainer.StepCompleted = _ =>
        {
            // StepCompleted runs before the step's checkpoint: the one saved after the previous step is on disk now.
            var checkpoint = Path.Combine(folder, Trainer.CheckpointFileName);
            if (saves is not null && File.Exists(checkpoint))
            {
                var meta = Checkpoint.ReadMeta(checkpoint);
                if (saves.Count == 0 || saves[^1].OuterSteps != meta.OuterSteps) saves.Add(meta);
            }
            if (++steps == crashAfterStep) throw new SimulatedCrash();
        };
        return trainer.Run(resume);
    }

    [Fact]
    public void ACrashBetweenPeriodicCheckpointsResumesToTheUninterruptedRunBitForBit()
    {
        using var reference = new TempDir();
        var uninterrupted = Train(reference.Path, 3, every: null);

        using var dir = new TempDir();
        var saves = new List<CheckpointMeta>();
        // Checkpoints after steps 3, 6, 8 (epoch end), 9, 12, 15, 16 (epoch end), ...; the crash comes after step 14.
        Assert.Throws<SimulatedCrash>(() => Train(dir.Path, 3, CheckpointInterval.EverySteps(3), crashAfterStep: 14, saves: saves));
        Assert.Equal([3L, 6, 8, 9, 12], saves.Select(s => s.OuterSteps));
        Assert.Equal(["periodic", "periodic", "epoch-end", "periodic", "periodic"], saves.Select(s => s.Reason));
        var last = Checkpoint.Verify(Path.Combine(dir.Path, Trainer.CheckpointFileName));
        Assert.Equal((1, 4L, 12L, "periodic"), (last.CompletedEpochs, last.StepInEpoch, last.OuterSteps, last.Reason));
        Assert.Equal(9, Checkpoint.Verify(Checkpoint.PreviousGenerationPath(Path.Combine(dir.Path, Trainer.CheckpointFileName))).OuterSteps);

        var resumed = Train(dir.Path, 3, CheckpointInterval.EverySteps(3), resume: true);
        Assert.Equal(TrainingStatus.Completed, resumed.Status);
        Assert.Equal(
            uninterrupted.Epochs.Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.TestLoss, m.TestError, m.GradEvals, m.OuterSteps)),
            MetricsLog.Read(Path.Combine(dir.Path, "metrics.jsonl")).Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.TestLoss, m.TestError, m.GradEvals, m.OuterSteps)));
        var model = Synthetic.Mlp(hidden: 16);
        Checkpoint.LoadWeights(Path.Combine(reference.Path, Trainer.CheckpointFileName), model);
        var expected = Synthetic.Flatten(model);
        Checkpoint.LoadWeights(Path.Combine(dir.Path, Trainer.CheckpointFileName), model);
        Assert.Equal(expected, Synthetic.Flatten(model));
    }

    public static TheoryData<string, long?, double?> Valid => new()
    {
        { "500", 500, null },
        { "1", 1, null },
        { "10m", null, 600 },
        { "90s", null, 90 },
        { "1.5h", null, 5400 },
    };

    [Theory]
    [MemberData(nameof(Valid))]
    public void IntervalsParse(string text, long? steps, double? seconds)
    {
        var interval = CheckpointInterval.Parse(text);
        Assert.Equal(steps, interval.Steps);
        Assert.Equal(seconds, interval.Time?.TotalSeconds);
        Assert.Equal(interval, CheckpointInterval.Parse(interval.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("0.5s")]
    [InlineData("10x")]
    [InlineData("m")]
    [InlineData("NaNm")]
    [InlineData("1e300h")]
    [InlineData("3.5")]
    public void BadIntervalsAreRefusedWithWhatWasExpected(string text)
    {
        var e = Assert.Throws<FormatException>(() => CheckpointInterval.Parse(text));
        Assert.Contains($"checkpoint interval '{text}'", e.Message);
        Assert.Contains("a number of steps (e.g. 500) or a time (e.g. 90s, 10m, 2h)", e.Message);
    }
}
