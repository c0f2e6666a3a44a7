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
        CheckpointFormatTests.EvaluatesAndResumesToTheLoggedSecondEpoch(run, config, fixture);

        // The resumed run wrote format 3 and kept the format-2 file as its previous generation.
        Assert.Equal(3, Checkpoint.Verify(checkpoint).FormatVersion);
        var previous = Checkpoint.PreviousGenerationPath(checkpoint);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fixture, Trainer.CheckpointFileName)), File.ReadAllBytes(previous));
    }
}
