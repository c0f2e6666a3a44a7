using System.Text.Json.Nodes;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Training;

/// <summary>
/// The format-2 run folder committed in Fixtures/checkpoint-v2 (written before checksums existed) still evaluates and
/// resumes, and its next checkpoint is format 3.
/// </summary>
public class CheckpointFormatTwoTests
{
    [Fact]
    public void FormatTwoFixtureEvaluatesAndResumesToTheSecondEpochOfAnUninterruptedRun()
    {
        using var dir = new TempDir();
        var fixture = CheckpointFormatTests.FixtureFolder("checkpoint-v2");
        var run = dir.File("run");
        Directory.CreateDirectory(run);
        foreach (var file in new[] { Trainer.CheckpointFileName, "metrics.jsonl", Trainer.SummaryFileName })
            File.Copy(Path.Combine(fixture, file), Path.Combine(run, file));
        var checkpoint = Path.Combine(run, Trainer.CheckpointFileName);
        var stored = Checkpoint.ReadMeta(checkpoint);
        Assert.Equal((2, 1, 0L), (stored.FormatVersion, stored.CompletedEpochs, stored.StepInEpoch));
        Assert.Equal(2, Checkpoint.Verify(checkpoint).FormatVersion); // no checksums to check: the header parses
        Assert.Equal(new CheckpointGeneration(checkpoint, null), Checkpoint.SelectIntact(checkpoint));
        TestMachine.RequireFullFashionMnist();
        var config = stored.RunConfig! with { DataDir = TestMachine.DebianFashionMnistFolder };
        var logged = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[0])!;

        using (var prepared = RunSetup.Prepare(config, outputDirectory: null))
        {
            Checkpoint.LoadWeights(checkpoint, prepared.Task.Model);
            var test = prepared.Task.Evaluate(EvaluationSplit.Test);
            Assert.Equal((double)logged["test_loss"]!, test.Loss, 1e-6);
            Assert.Equal((double)logged["test_error"]!, test.ErrorPercent, 9);
        }

        TrainingResult result;
        using (var prepared = RunSetup.Prepare(config with { Epochs = 2 }, run))
            result = prepared.CreateTrainer().Run(resume: true);
        Assert.Equal(TrainingStatus.Completed, result.Status);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "expected-epoch-2.jsonl")))!;
        var second = result.Epochs[^1];
        Assert.Equal(2, second.Epoch);
        Assert.Equal(((long)expected["grad_evals"]!, (long)expected["outer_steps"]!), (second.GradEvals, second.OuterSteps));
        Assert.Equal((double)expected["train_loss"]!, second.TrainLoss, 1e-6);
        Assert.Equal((double)expected["test_loss"]!, second.TestLoss!.Value, 1e-6);
        Assert.Equal((double)expected["gamma"]!, (double)second.Extra!["gamma"], 15);

        // The resumed run wrote format 3 and kept the format-2 file as its previous generation.
        Assert.Equal(3, Checkpoint.Verify(checkpoint).FormatVersion);
        var previous = Checkpoint.PreviousGenerationPath(checkpoint);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fixture, Trainer.CheckpointFileName)), File.ReadAllBytes(previous));
    }
}
