using WideValley.Training;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace WideValley.Tests.Support;

/// <summary>
/// The resume check every optimizer's tests make: a trainer run stopped mid-epoch and resumed from its checkpoint ends
/// with the same weights, bit for bit, and the same per-epoch metrics as a run that was never stopped.
/// </summary>
internal static class TrainerResumeCheck
{
    /// <summary>
    /// Trains <paramref name="build"/>'s run to the end in one folder; in another, stops it after step
    /// <paramref name="stopStep"/> of epoch <paramref name="stopEpoch"/> and resumes it to the end; asserts the weights
    /// and the per-epoch (epoch, training loss, test error) are identical, and returns the resumed folder's metrics.
    /// <paramref name="settings"/> gives the trainer options for a folder. The three checks see each run's optimizer
    /// (the uninterrupted one at the end, the stopped one when it stopped, the resumed one at the end) before it is
    /// disposed, while its model still lives.
    /// </summary>
    public static IReadOnlyList<EpochMetrics> StopAndResume(Func<(ClassificationTask Task, TorchOptimizer Optimizer)> build, Func<string, TrainerOptions> settings,
        int stopEpoch, int stopStep, Action<TorchOptimizer>? uninterrupted = null, Action<TorchOptimizer>? stopped = null, Action<TorchOptimizer>? resumed = null)
    {
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        double[] weights;
        var (taskA, optA) = build();
        using (taskA)
        using (optA)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskA, optA, settings(dirA.Path)).Run().Status);
            weights = Synthetic.Flatten(taskA.Model);
            uninterrupted?.Invoke(optA);
        }
        var (taskB, optB) = build();
        using (taskB)
        using (optB)
        {
            var trainer = new Trainer(taskB, optB, settings(dirB.Path));
            trainer.StepCompleted = p => { if (p.Epoch == stopEpoch && p.Step == stopStep) trainer.RequestStop(); };
            Assert.Equal(TrainingStatus.Interrupted, trainer.Run().Status);
            stopped?.Invoke(optB);
        }
        var (taskC, optC) = build();
        using (taskC)
        using (optC)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskC, optC, settings(dirB.Path)).Run(resume: true).Status);
            resumed?.Invoke(optC);
            Assert.Equal(weights, Synthetic.Flatten(taskC.Model));
        }
        var whole = MetricsLog.Read(Path.Combine(dirA.Path, "metrics.jsonl"));
        var metrics = MetricsLog.Read(Path.Combine(dirB.Path, "metrics.jsonl"));
        Assert.Equal(whole.Select(m => (m.Epoch, m.TrainLoss, m.TestError)), metrics.Select(m => (m.Epoch, m.TrainLoss, m.TestError)));
        return metrics;
    }
}
