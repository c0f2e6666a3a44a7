using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

/// <summary>
/// SAM on the char-LSTM task: the second pass re-evaluates the same BPTT window from the same carried LSTM state with
/// the same dropout masks (<see cref="LanguageModelTask"/>'s re-evaluation), so rho = 0 is the base optimizer bit for
/// bit, and a run stopped mid-epoch resumes bit for bit.
/// </summary>
public class SamLanguageModelTests
{
    const int Vocabulary = Training.LanguageModelResumeTests.Vocabulary;

    static TokenCorpus Corpus() => Training.LanguageModelResumeTests.Corpus();

    static (LanguageModelTask Task, optim.Optimizer Optimizer) Build(OptimizerOptionsBase settings)
    {
        random.manual_seed(3);
        var model = ModelZoo.Create("char-lstm", new ModelOptions { VocabularySize = Vocabulary, HiddenSize = 8, Dropout = 0.3 });
        var task = new LanguageModelTask(model, Corpus(), batchSize: 4, unroll: 10, CPU);
        return (task, OptimizerFactory.Create(model.parameters(), settings, new OptimizerContext { Model = model }));
    }

    [Fact]
    public void RhoZeroIsAdamBitForBitOnTheLstmWithDropout()
    {
        (double[] Weights, TrainingResult Result) Train(OptimizerOptionsBase settings)
        {
            var (task, optimizer) = Build(settings);
            using (task)
            using (optimizer)
            {
                var result = new Trainer(task, optimizer, new TrainerOptions { Epochs = 2, TensorBoard = false }).Run();
                Assert.Equal(TrainingStatus.Completed, result.Status);
                return (Synthetic.Flatten(task.Model), result);
            }
        }
        var adam = Train(new AdamOptions { LearningRate = 1e-2 });
        var sam = Train(new SamOptions { Base = "adam", LearningRate = 1e-2, Rho = 0 });
        Assert.Equal(adam.Weights, sam.Weights);
        Assert.Equal(adam.Result.Epochs.Select(m => m.TrainLoss), sam.Result.Epochs.Select(m => m.TrainLoss));
        Assert.Equal(2 * adam.Result.GradEvals, sam.Result.GradEvals);
        // And a real perturbation trains differently.
        var real = Train(new SamOptions { Base = "adam", LearningRate = 1e-2, Rho = 0.1 });
        Assert.NotEqual(adam.Weights, real.Weights);
    }

    [Fact]
    public void ARunStoppedMidEpochResumesBitIdentical()
    {
        var settings = new SamOptions { Base = "adam", LearningRate = 1e-2, Rho = 0.1 };
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        TrainerOptions Options(string dir) => new() { Epochs = 2, OutputDirectory = dir, ModelName = "char-lstm", OptimizerName = "sam", TensorBoard = false };
        double[] whole;
        var (taskA, optA) = Build(settings);
        using (taskA)
        using (optA)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskA, optA, Options(dirA.Path)).Run().Status);
            whole = Synthetic.Flatten(taskA.Model);
        }
        var (taskB, optB) = Build(settings);
        using (taskB)
        using (optB)
        {
            var trainer = new Trainer(taskB, optB, Options(dirB.Path));
            trainer.StepCompleted = p => { if (p.Epoch == 1 && p.Step == 4) trainer.RequestStop(); };
            Assert.Equal(TrainingStatus.Interrupted, trainer.Run().Status);
        }
        var (taskC, optC) = Build(settings);
        using (taskC)
        using (optC)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskC, optC, Options(dirB.Path)).Run(resume: true).Status);
            Assert.Equal(whole, Synthetic.Flatten(taskC.Model));
        }
    }
}
