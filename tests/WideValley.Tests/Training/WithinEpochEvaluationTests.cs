using System.Text.Json.Nodes;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>
/// <see cref="TrainerOptions.EvaluateEveryEffectiveEpochs"/>: evaluations on a grid of effective epochs, also inside an
/// Entropy-SGD epoch of L effective epochs, without changing the training or the default record.
/// </summary>
public class WithinEpochEvaluationTests
{
    // 256 samples in batches of 32: 8 minibatches per pass; with L = 4 an outer epoch is 8 steps = 4 effective epochs,
    // and every second step ends an effective epoch.
    const int TrainingSamples = 256, Batch = 32, L = 4;

    static (ClassificationTask Task, optim.Optimizer Optimizer) Build()
    {
        var model = Synthetic.Mlp();
        var data = Synthetic.Blobs(train: TrainingSamples);
        var task = new ClassificationTask(model, data, Batch, seed: 11, evalBatchSize: 100);
        var settings = new EntropySgdOptions
        {
            LearningRate = 0.5, Momentum = 0.9, Nesterov = true,
            LocalEntropy = new LocalEntropyOptions { L = L, LangevinLr = 0.05, Noise = 1e-3, LangevinMomentum = 0.9, Seed = 5 },
        };
        return (task, OptimizerFactory.Create("entropy-sgd", model.parameters(), settings, new OptimizerContext { TrainingSetSize = TrainingSamples }));
    }

    static TrainerOptions Options(string dir, int epochs, double? every) => new()
    {
        Epochs = epochs,
        OutputDirectory = dir,
        ModelName = "test-mlp",
        OptimizerName = "entropy-sgd",
        TensorBoard = false,
        // Recalibrated for every evaluation: the within-epoch ones must put the statistics back.
        RecalibrateBatchNorm = true,
        EvaluateEveryEffectiveEpochs = every,
    };

    static IReadOnlyList<EpochMetrics> Metrics(string dir) => MetricsLog.Read(Path.Combine(dir, "metrics.jsonl"));

    [Fact]
    public void AnEntropySgdEpochOfFourEffectiveEpochsIsEvaluatedAfterEachOne()
    {
        using var dir = new TempDir();
        using var plain = new TempDir();
        var (task, optimizer) = Build();
        double[] weights;
        using (task)
        {
            var result = new Trainer(task, optimizer, Options(dir.Path, epochs: 1, every: 1)).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.Equal([1.0, 2.0, 3.0], result.WithinEpochEvaluations.Select(m => m.EffectiveEpochs));
            Assert.All(result.WithinEpochEvaluations, m => Assert.Equal(1, m.Epoch));
            Assert.Equal([4.0], result.Epochs.Select(m => m.EffectiveEpochs));
            weights = Synthetic.Flatten(task.Model);
        }
        var lines = Metrics(dir.Path);
        Assert.Equal([1.0, 2.0, 3.0, 4.0], lines.Select(m => m.EffectiveEpochs));
        Assert.Equal([true, true, true, (bool?)null], lines.Select(m => m.WithinEpoch));
        Assert.All(lines, m => Assert.True(m.TestError is >= 0 and <= 100));
        Assert.Equal([8L, 16, 24, 32], lines.Select(m => m.GradEvals));
        // The summary's final line is the epoch end, not an evaluation inside it.
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, Trainer.SummaryFileName)))!;
        Assert.Null(summary["final"]!["within_epoch"]);

        // The evaluations change nothing: the same run without them ends with the same weights and buffers.
        var (plainTask, plainOptimizer) = Build();
        using (plainTask)
        {
            new Trainer(plainTask, plainOptimizer, Options(plain.Path, epochs: 1, every: null)).Run();
            Assert.Equal(weights, Synthetic.Flatten(plainTask.Model));
        }
    }

    [Fact]
    public void WithoutTheSettingTheRecordIsAsBefore()
    {
        using var dir = new TempDir();
        var (task, optimizer) = Build();
        using (task)
        {
            var result = new Trainer(task, optimizer, Options(dir.Path, epochs: 2, every: null)).Run();
            Assert.Empty(result.WithinEpochEvaluations);
            Assert.Equal([4.0, 8.0], result.Epochs.Select(m => m.EffectiveEpochs));
        }
        var text = File.ReadAllLines(Path.Combine(dir.Path, "metrics.jsonl"));
        Assert.Equal(2, text.Length);
        Assert.All(text, line => Assert.DoesNotContain("within_epoch", line, StringComparison.Ordinal));
    }

    [Fact]
    public void ASettingThatIsNotPositiveIsRefused()
    {
        var (task, optimizer) = Build();
        using (task)
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(task, optimizer, Options("", epochs: 1, every: 0)));
            Assert.Contains("evaluation interval", e.Message, StringComparison.Ordinal);
        }
        var config = new RunConfig { EvalEveryEffectiveEpochs = -1 };
        Assert.Contains("evaluation interval", Assert.Throws<ArgumentException>(() => RunSetup.Validate(config)).Message, StringComparison.Ordinal);
        // Left out of the stored configuration when not set, so that older runs compare equal.
        Assert.False(new RunConfig().ToJson().ContainsKey("eval_every_effective_epochs"));
        Assert.Equal(0.5, RunConfig.FromJson(new RunConfig { EvalEveryEffectiveEpochs = 0.5 }.ToJson()).EvalEveryEffectiveEpochs);
    }

    [Fact]
    public void AnInterruptedRunResumesWithEachPointRecordedOnce()
    {
        using var whole = new TempDir();
        using var split = new TempDir();
        double[] uninterrupted;
        var (taskA, optA) = Build();
        using (taskA)
        {
            new Trainer(taskA, optA, Options(whole.Path, epochs: 2, every: 1)).Run();
            uninterrupted = Synthetic.Flatten(taskA.Model);
        }
        var expected = Metrics(whole.Path);
        Assert.Equal([1.0, 2, 3, 4, 5, 6, 7, 8], expected.Select(m => m.EffectiveEpochs));

        var (taskB, optB) = Build();
        using (taskB)
        {
            // Stopped right after the evaluation at 5 effective epochs (step 2 of epoch 2): the checkpoint holds it.
            var trainer = new Trainer(taskB, optB, Options(split.Path, epochs: 2, every: 1));
            trainer.StepCompleted = p => { if (p.EffectiveEpochs >= 5) trainer.RequestStop(); };
            Assert.Equal(TrainingStatus.Interrupted, trainer.Run().Status);
        }
        // A crash after logging a later point but before its checkpoint: that line must go, not be kept twice.
        var late = new EpochMetrics { Epoch = 2, EffectiveEpochs = 6, GradEvals = 48, WithinEpoch = true, TestError = 50 };
        File.AppendAllText(Path.Combine(split.Path, "metrics.jsonl"), late.ToJsonLine() + "\n");

        var (taskC, optC) = Build();
        using (taskC)
        {
            var trainer = new Trainer(taskC, optC, Options(split.Path, epochs: 2, every: 1));
            var notices = new List<string>();
            trainer.Notice = notices.Add;
            var resumed = trainer.Run(resume: true);
            Assert.Equal(TrainingStatus.Completed, resumed.Status);
            Assert.Contains(notices, n => n.Contains("an evaluation inside epoch 2 at 48", StringComparison.Ordinal));
            Assert.Equal([1.0, 2, 3, 5, 6, 7], resumed.WithinEpochEvaluations.Select(m => m.EffectiveEpochs));
            Assert.Equal(uninterrupted, Synthetic.Flatten(taskC.Model));
        }
        var actual = Metrics(split.Path);
        Assert.Equal(expected.Select(m => (m.EffectiveEpochs, m.GradEvals, m.WithinEpoch, m.TestError, m.TestLoss)),
            actual.Select(m => (m.EffectiveEpochs, m.GradEvals, m.WithinEpoch, m.TestError, m.TestLoss)));
    }
}
