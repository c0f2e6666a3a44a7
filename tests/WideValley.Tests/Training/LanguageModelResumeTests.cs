using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>
/// Resuming a language-model run: its checkpoint also holds the LSTM state carried between BPTT windows, which has a
/// shape the fresh task does not know until it reads it.
/// </summary>
public class LanguageModelResumeTests
{
    internal const int Vocabulary = 7;

    /// <summary>1,200 / 200 / 200 random tokens over a 7-letter vocabulary (seeded).</summary>
    internal static TokenCorpus Corpus()
    {
        var generator = new torch.Generator(17);
        Tensor Tokens(int n) => randint(0, Vocabulary, [n], dtype: int64, generator: generator);
        return new TokenCorpus
        {
            Name = "random-tokens",
            Vocabulary = new Vocabulary(Enumerable.Range(0, Vocabulary).Select(i => ((char)('a' + i)).ToString())),
            Train = Tokens(1200),
            Validation = Tokens(200),
            Test = Tokens(200),
            Source = "test",
            Level = "char",
        };
    }

    /// <summary>A fresh model, task and optimizer built the same way each time, as a resumed process would.</summary>
    static (LanguageModelTask Task, optim.Optimizer Optimizer) Build(string optimizer)
    {
        random.manual_seed(3);
        var model = ModelZoo.Create("char-lstm", new ModelOptions { VocabularySize = Vocabulary, HiddenSize = 8 });
        var task = new LanguageModelTask(model, Corpus(), batchSize: 4, unroll: 10, CPU);
        OptimizerOptionsBase settings = optimizer == "entropy-adam"
            ? new EntropyAdamOptions { LearningRate = 1e-2, LocalEntropy = new LocalEntropyOptions { L = 2, LangevinLr = 0.05, Noise = 1e-4, Seed = 5 } }
            : new AdamOptions { LearningRate = 1e-2 };
        return (task, OptimizerFactory.Create(optimizer, model.parameters(), settings));
    }

    static TrainerOptions Options(string dir) => new()
    {
        Epochs = 3,
        Schedule = LearningRateSchedule.Parse("after:2:2"),
        OutputDirectory = dir,
        ModelName = "char-lstm",
        OptimizerName = "adam",
        TensorBoard = false,
    };

    [Theory]
    [InlineData("adam", 1, 0)]
    [InlineData("adam", 2, 4)]
    [InlineData("entropy-adam", 1, 0)]
    [InlineData("entropy-adam", 2, 4)]
    public void ResumingEndsBitIdenticalToAnUninterruptedRun(string optimizer, int stopEpoch, int stopStep)
    {
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        double[] uninterrupted;
        var (taskA, optA) = Build(optimizer);
        using (taskA)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskA, optA, Options(dirA.Path)).Run().Status);
            uninterrupted = Synthetic.Flatten(taskA.Model);
        }

        var (taskB, optB) = Build(optimizer);
        using (taskB)
        {
            var trainer = new Trainer(taskB, optB, Options(dirB.Path));
            if (stopStep == 0) trainer.EpochCompleted = m => { if (m.Epoch == stopEpoch) trainer.RequestStop(); };
            else trainer.StepCompleted = p => { if (p.Epoch == stopEpoch && p.Step == stopStep) trainer.RequestStop(); };
            Assert.Equal(TrainingStatus.Interrupted, trainer.Run().Status);
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
        Assert.Equal(a.Select(m => (m.Epoch, m.TrainLoss, m.ValLoss, m.TestLoss)), b.Select(m => (m.Epoch, m.TrainLoss, m.ValLoss, m.TestLoss)));
    }
}
