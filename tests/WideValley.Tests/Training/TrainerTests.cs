using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Data;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

public class TrainerTests
{
    const int Batch = 32;

    /// <summary>A fresh model, task and optimizer built the same way each time, as a resumed process would.</summary>
    static (ClassificationTask Task, optim.Optimizer Optimizer) Build(string optimizer = "sgd", int validation = 64)
    {
        var model = Synthetic.Mlp();
        var data = Synthetic.Blobs(train: 320, validation: validation);
        var task = new ClassificationTask(model, data, Batch, seed: 11, evalBatchSize: 100);
        var localEntropy = new LocalEntropyOptions
        {
            L = 3, LangevinLr = 0.05, Noise = 1e-3, LangevinMomentum = 0.9, LangevinNesterov = true, DiagnosticsEvery = 2, Seed = 5,
        };
        OptimizerOptionsBase settings = optimizer switch
        {
            "sgd" => new SgdOptions { LearningRate = 0.05, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-4 },
            "entropy-sgd" => new EntropySgdOptions { LearningRate = 0.5, Momentum = 0.9, Nesterov = true, LocalEntropy = localEntropy },
            "entropy-adam" => new EntropyAdamOptions { LearningRate = 1e-2, LocalEntropy = localEntropy },
            "sgld" => new SgldOptions { LearningRate = 0.05, Seed = 9 },
            _ => new AdamOptions { LearningRate = 1e-2 },
        };
        return (task, OptimizerFactory.Create(optimizer, model.parameters(), settings, new OptimizerContext { TrainingSetSize = 320 }));
    }

    static TrainerOptions Options(string dir, int epochs = 3) => new()
    {
        Epochs = epochs,
        Schedule = LearningRateSchedule.Parse("after:10:2"),
        OutputDirectory = dir,
        ModelName = "test-mlp",
        OptimizerName = "sgd",
        TensorBoard = false,
    };

    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    [InlineData("entropy-sgd")]
    [InlineData("entropy-adam")]
    [InlineData("sgld")]
    public void ResumeAfterAnEpochEndsBitIdentical(string optimizer)
    {
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        double[] uninterrupted;
        var (taskA, optA) = Build(optimizer);
        using (taskA)
        {
            var result = new Trainer(taskA, optA, Options(dirA.Path)).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            uninterrupted = Synthetic.Flatten(taskA.Model);
        }

        var (taskB, optB) = Build(optimizer);
        using (taskB)
        {
            var trainer = new Trainer(taskB, optB, Options(dirB.Path));
            trainer.EpochCompleted = m => { if (m.Epoch == 1) trainer.RequestStop(); };
            var first = trainer.Run();
            Assert.Equal(TrainingStatus.Interrupted, first.Status);
            Assert.Single(first.Epochs);
        }
        var (taskC, optC) = Build(optimizer);
        using (taskC)
        {
            var resumed = new Trainer(taskC, optC, Options(dirB.Path)).Run(resume: true);
            Assert.Equal(TrainingStatus.Completed, resumed.Status);
            Assert.Equal(uninterrupted, Synthetic.Flatten(taskC.Model));
        }
        var a = MetricsLog.Read(Path.Combine(dirA.Path, "metrics.jsonl"));
        var b = MetricsLog.Read(Path.Combine(dirB.Path, "metrics.jsonl"));
        Assert.Equal(a.Select(m => (m.Epoch, m.TrainLoss, m.TestError, m.GradEvals, ExtraText(m))), b.Select(m => (m.Epoch, m.TrainLoss, m.TestError, m.GradEvals, ExtraText(m))));
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("entropy-sgd")]
    public void ResumeFromTheMiddleOfAnEpochEndsBitIdentical(string optimizer)
    {
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        var (taskA, optA) = Build(optimizer);
        double[] uninterrupted;
        using (taskA)
        {
            new Trainer(taskA, optA, Options(dirA.Path)).Run();
            uninterrupted = Synthetic.Flatten(taskA.Model);
        }
        var (taskB, optB) = Build(optimizer);
        using (taskB)
        {
            var trainer = new Trainer(taskB, optB, Options(dirB.Path));
            trainer.StepCompleted = p => { if (p.Epoch == 2 && p.Step == 4) trainer.RequestStop(); };
            var r = trainer.Run();
            Assert.Equal(TrainingStatus.Interrupted, r.Status);
            Assert.Contains("epoch 2 after step 4", r.Message);
            var meta = Checkpoint.ReadMeta(Path.Combine(dirB.Path, Trainer.CheckpointFileName));
            Assert.Equal(1, meta.CompletedEpochs);
            Assert.Equal(4, meta.StepInEpoch);
        }
        var (taskC, optC) = Build(optimizer);
        using (taskC)
        {
            var r = new Trainer(taskC, optC, Options(dirB.Path)).Run(resume: true);
            Assert.Equal(TrainingStatus.Completed, r.Status);
            Assert.Equal(uninterrupted, Synthetic.Flatten(taskC.Model));
        }
        var a = MetricsLog.Read(Path.Combine(dirA.Path, "metrics.jsonl"));
        var b = MetricsLog.Read(Path.Combine(dirB.Path, "metrics.jsonl"));
        Assert.Equal(a.Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.ValError, ExtraText(m))), b.Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.ValError, ExtraText(m))));
        if (optimizer == "entropy-sgd") Assert.All(b, m => Assert.Contains("grad_cosine=", ExtraText(m)));
    }

    /// <summary>
    /// A task that hands every minibatch through <paramref name="intercept"/>(n, minibatch), n counting the minibatches
    /// drawn from 1: to poison one, or to act at one (a stop request in the middle of a step).
    /// </summary>
    sealed class InterceptedTask(ITrainingTask inner, Func<int, MinibatchLoss, MinibatchLoss> intercept) : ITrainingTask
    {
        int _drawn;
        public nn.Module Model => inner.Model;
        public bool IsLanguageModel => inner.IsLanguageModel;
        public double MinibatchesPerPass => inner.MinibatchesPerPass;
        public long TrainingSize => inner.TrainingSize;
        public bool HasValidation => inner.HasValidation;
        public MinibatchLoss NextTrainingLoss() => intercept(++_drawn, inner.NextTrainingLoss());
        public Evaluation Evaluate(EvaluationSplit split) => inner.Evaluate(split);
        public void FeedTrainingData(int maxMinibatches) => inner.FeedTrainingData(maxMinibatches);
        public void SaveState(BinaryWriter writer) => inner.SaveState(writer);
        public void LoadState(BinaryReader reader) => inner.LoadState(reader);
        public void Dispose() => inner.Dispose();
    }

    /// <summary>
    /// A stop requested in the middle of an Entropy-SGD step (here during its second minibatch of three) stops the run
    /// at the step's next minibatch instead of after the step: the step is undone, the checkpoint is the state before it,
    /// and the resumed run ends bit-identical to one never stopped.
    /// </summary>
    [Theory]
    [InlineData("entropy-sgd", 23)]
    [InlineData("entropy-adam", 31)]
    [InlineData("sgd", 15)]
    public void AStopInsideAStepUndoesItAndResumesBitIdentical(string optimizer, int stopAtMinibatch)
    {
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        var (taskA, optA) = Build(optimizer);
        double[] uninterrupted;
        using (taskA)
        {
            new Trainer(taskA, optA, Options(dirA.Path)).Run();
            uninterrupted = Synthetic.Flatten(taskA.Model);
        }
        var (innerB, optB) = Build(optimizer);
        Trainer? trainer = null;
        using (var taskB = new InterceptedTask(innerB, (n, mb) => { if (n == stopAtMinibatch) trainer!.RequestStop(); return mb; }))
        {
            trainer = new Trainer(taskB, optB, Options(dirB.Path));
            var minibatchesPerStep = optimizer.StartsWith("entropy", StringComparison.Ordinal) ? 3 : 1;
            var r = trainer.Run();
            Assert.Equal(TrainingStatus.Interrupted, r.Status);
            var meta = Checkpoint.ReadMeta(Path.Combine(dirB.Path, Trainer.CheckpointFileName));
            // A one-minibatch step is over when the request comes; a longer one is undone. Entropy-SGD with diagnostics
            // every 2nd step draws one more minibatch on those steps: the saved step is the last one completed before
            // the request.
            if (minibatchesPerStep == 1) Assert.Equal(stopAtMinibatch, meta.GradEvals);
            else
            {
                Assert.True(meta.GradEvals < stopAtMinibatch, $"the checkpoint counts {meta.GradEvals} gradient evaluations, the stop came in the {stopAtMinibatch}th");
                Assert.True(meta.GradEvals >= stopAtMinibatch - minibatchesPerStep - 1, $"{meta.GradEvals} gradient evaluations saved");
            }
        }
        var (taskC, optC) = Build(optimizer);
        using (taskC)
        {
            var r = new Trainer(taskC, optC, Options(dirB.Path)).Run(resume: true);
            Assert.Equal(TrainingStatus.Completed, r.Status);
            Assert.Equal(uninterrupted, Synthetic.Flatten(taskC.Model));
        }
        var a = MetricsLog.Read(Path.Combine(dirA.Path, "metrics.jsonl"));
        var b = MetricsLog.Read(Path.Combine(dirB.Path, "metrics.jsonl"));
        Assert.Equal(a.Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.GradEvals, ExtraText(m))), b.Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.GradEvals, ExtraText(m))));
    }

    /// <summary>The optimizer diagnostics of an epoch as text, for comparing runs.</summary>
    static string ExtraText(EpochMetrics m) =>
        m.Extra is null ? "" : string.Join(";", m.Extra.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={kv.Value}"));

    /// <summary>An optimizer that evaluates three minibatches per step, like a miniature Entropy-SGD.</summary>
    sealed class ThreeEvaluationSgd(IEnumerable<TorchSharp.Modules.Parameter> p) : TorchSharp.Modules.SGD(p, 0.01)
    {
        public int Calls;
        public override Tensor step(Func<Tensor>? closure = null)
        {
            Calls++;
            closure!();
            closure!();
            return base.step(closure);
        }
    }

    [Fact]
    public void CountsEveryClosureCallAsAGradientEvaluation()
    {
        using var dir = new TempDir();
        var model = Synthetic.Mlp();
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), Batch, seed: 1);
        var opt = new ThreeEvaluationSgd(model.parameters());
        var result = new Trainer(task, opt, Options(dir.Path, epochs: 2)).Run();
        Assert.Equal(20, opt.Calls);                  // 320 / 32 = 10 outer steps per epoch
        Assert.Equal(60, result.GradEvals);
        Assert.Equal(6.0, result.EffectiveEpochs, 12);
        Assert.Equal(new[] { 3.0, 6.0 }, result.Epochs.Select(e => e.EffectiveEpochs));
        Assert.Equal(new long[] { 10, 20 }, result.Epochs.Select(e => e.OuterSteps));
    }

    [Fact]
    public void EffectiveEpochBudgetStopsEarly()
    {
        var model = Synthetic.Mlp();
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), Batch, seed: 1);
        var opt = new ThreeEvaluationSgd(model.parameters());
        var result = new Trainer(task, opt, new TrainerOptions { Epochs = 10, MaxEffectiveEpochs = 4.5 }).Run();
        Assert.Equal(45, result.GradEvals);
        Assert.Equal(2, result.Epochs.Count); // epoch 2 ends early when the budget is spent
    }

    [Fact]
    public void NonFiniteLossStopsWithAClearMessageAndKeepsTheLastGoodCheckpoint()
    {
        using var dir = new TempDir();
        var (inner, opt) = Build();
        // A NaN loss at gradient evaluation 13: epoch 2 (10 steps per epoch), step 3.
        using var task = new InterceptedTask(inner, (n, mb) => n == 13 ? mb with { Loss = mb.Loss * double.NaN, Value = double.NaN } : mb);
        var trainer = new Trainer(task, opt, Options(dir.Path));
        byte[]? afterEpoch1 = null;
        trainer.EpochCompleted = m => afterEpoch1 = File.ReadAllBytes(Path.Combine(dir.Path, Trainer.CheckpointFileName));
        var result = trainer.Run();
        Assert.Equal(TrainingStatus.Diverged, result.Status);
        Assert.Contains("epoch 2, step 3 of 10", result.Message);
        Assert.Contains("NaN", result.Message);
        Assert.Contains("end of epoch 1", result.Message);
        Assert.Equal(afterEpoch1, File.ReadAllBytes(Path.Combine(dir.Path, Trainer.CheckpointFileName)));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, Trainer.SummaryFileName)))!;
        Assert.Equal("diverged", (string?)summary["status"]);
        Assert.Equal(1, (int?)summary["epochs_completed"]);
    }

    [Fact]
    public void WritesMetricsSummaryAndCheckpointWithTheDocumentedFields()
    {
        using var dir = new TempDir();
        var (task, opt) = Build();
        using (task)
        {
            var options = Options(dir.Path, epochs: 3) with { TensorBoard = true };
            var result = new Trainer(task, opt, options).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
        }
        var lines = File.ReadAllLines(Path.Combine(dir.Path, "metrics.jsonl"));
        Assert.Equal(3, lines.Length);
        var first = JsonNode.Parse(lines[0])!.AsObject();
        foreach (var key in new[] { "epoch", "effective_epochs", "grad_evals", "lr", "train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error", "seconds" })
            Assert.True(first.ContainsKey(key), $"metrics.jsonl lacks '{key}': {lines[0]}");
        Assert.Equal(1, (int)first["epoch"]!);
        Assert.Equal(0.05, (double)first["lr"]!, 12);
        Assert.Equal(0.05, (double)JsonNode.Parse(lines[1])!["lr"]!, 12);  // "after:10:2": divided from epoch 3 on
        Assert.Equal(0.005, (double)JsonNode.Parse(lines[2])!["lr"]!, 12);
        var test = (double)first["test_error"]!;
        Assert.InRange(test, 0, 100);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, Trainer.SummaryFileName)))!;
        Assert.Equal("finished", (string?)summary["status"]);
        // No run configuration (the trainer was handed a model and optimizer): the summary describes the run instead.
        Assert.Null(summary["config"]);
        Assert.Equal("test-mlp", (string?)summary["run"]!["model_name"]);
        Assert.Equal("sgd", (string?)summary["run"]!["optimizer"]);
        Assert.Equal(0.05, (double)summary["run"]!["optimizer_options"]!["learning_rate"]!);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dir.Path, "tensorboard"), "events.out.tfevents.*"));
        var meta = Checkpoint.ReadMeta(Path.Combine(dir.Path, Trainer.CheckpointFileName));
        Assert.Equal(3, meta.CompletedEpochs);
        Assert.Equal("test-mlp", meta.Model);
    }

    [Fact]
    public void LearnsTheBlobs()
    {
        var (task, opt) = Build();
        using (task)
        {
            var result = new Trainer(task, opt, new TrainerOptions { Epochs = 5 }).Run();
            Assert.True(result.Last!.TestError < 10, $"test error {result.Last.TestError}% after 5 epochs");
            Assert.True(result.Epochs[^1].TrainLoss < result.Epochs[0].TrainLoss);
        }
    }
}
