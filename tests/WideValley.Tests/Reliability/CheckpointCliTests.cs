using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Damaged run folders through the widevalley command (in-process): the exit code, the words on stderr, and that a
/// refused command changed no file. The defects of issue 16 item 2 and 3 as the user met them.
/// </summary>
public class CheckpointCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>A two-epoch small-mnistfc run on 256 images: checkpoint.bin (epoch 2) and checkpoint.prev.bin (epoch 1).</summary>
    internal static string TrainedRun(TempDir dir)
    {
        var run = dir.File("run");
        var (code, _, err) = Run("train", "--model", "small-mnistfc", "--optimizer", "sgd", "--momentum", "0.9", "--max-train-samples", "256",
            "--batch-size", "128", "--epochs", "2", "--threads", "1", "--no-tensorboard", "--seed", "5",
            "--data-dir", TestMachine.FashionMnistFolder, "--out", run);
        Assert.True(code == ExitCodes.Ok, err);
        return run;
    }

    internal static string Newest(string run) => Path.Combine(run, Trainer.CheckpointFileName);
    internal static string Previous(string run) => Checkpoint.PreviousGenerationPath(Newest(run));

    static Dictionary<string, byte[]> Snapshot(string folder) => FolderSnapshot.Take(folder);

    static void AssertUnchanged(Dictionary<string, byte[]> before, string folder) => FolderSnapshot.AssertUnchanged(before, folder);

    /// <summary>Flips a byte of the named section's payload, at the given fraction of its length.</summary>
    internal static void Damage(string checkpoint, string section, double at = 0.5)
    {
        var s = Checkpoint.DescribeSections(checkpoint).Single(x => x.Name == section);
        var offset = s.PayloadStart + (long)(s.Length * at);
        var bytes = File.ReadAllBytes(checkpoint);
        bytes[offset] ^= 0x20;
        File.WriteAllBytes(checkpoint, bytes);
    }

    /// <summary>Renames one key of the header JSON (as a flipped bit in 'completed_epochs' did in the report).</summary>
    static void DamageHeaderKey(string checkpoint)
    {
        var bytes = File.ReadAllBytes(checkpoint);
        var key = "completed_epochs"u8.ToArray();
        var at = bytes.AsSpan().IndexOf(key);
        Assert.True(at > 0);
        bytes[at + 3] ^= 0x01; // "completed" -> "comqleted"
        File.WriteAllBytes(checkpoint, bytes);
    }

    public static TheoryData<string> Sections => new("header", "run configuration", "weights", "optimizer state", "random generator", "data stream");

    [Theory]
    [MemberData(nameof(Sections))]
    public void EvaluateRefusesADamagedCheckpointWithExitCode1AndNamesTheSection(string section)
    {
        // Issue 16 defect 2: flipped bytes in the weights gave "test loss NaN" and exit 0.
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        // Without a previous generation to fall back to (the fallback: MeasurementFallbackTests).
        File.Delete(Previous(run));
        Damage(Newest(run), section);
        var before = Snapshot(run);
        var (code, output, err) = Run("evaluate", run, "--splits", "test", "--data-dir", TestMachine.FashionMnistFolder);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains($"{Newest(run)}: the {section} section is damaged (checksum mismatch)", err);
        Assert.DoesNotContain("NaN", output);
        AssertUnchanged(before, run);
    }

    [Fact]
    public void ResumeOverADamagedHeaderFallsBackToThePreviousCheckpointAndKeepsTheMetrics()
    {
        // Issue 16 defect 2: a damaged header key made --resume retrain from epoch 1 on trained weights and delete the
        // old metrics lines.
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        var firstLine = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[0];
        DamageHeaderKey(Newest(run));
        var (code, output, err) = Run("train", "--out", run, "--resume", "--epochs", "3");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains($"{Newest(run)}: the header section is damaged (checksum mismatch); falling back to the previous checkpoint {Previous(run)} (end of epoch 1)", err);
        Assert.Contains("line 2 (epoch 2, logged after the checkpoint was written)", err);
        Assert.DoesNotContain("epoch 1/3", output);
        Assert.Contains("epoch 2/3", output);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(3, lines.Length);
        Assert.Equal(firstLine, lines[0]);
        Assert.Equal(3, Checkpoint.Verify(Newest(run)).CompletedEpochs);
    }

    public static TheoryData<string, string> BothDamaged => new()
    {
        { "header", "header" },
        { "weights", "optimizer state" },
        { "data stream", "weights" },
    };

    [Theory]
    [MemberData(nameof(BothDamaged))]
    public void ResumeWithBothGenerationsDamagedFailsWithExitCode1AndChangesNothing(string newest, string previous)
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        Damage(Newest(run), newest);
        Damage(Previous(run), previous);
        var before = Snapshot(run);
        var (code, _, err) = Run("train", "--out", run, "--resume", "--epochs", "3");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains($"the {newest} section is damaged (checksum mismatch), and the previous checkpoint is damaged too", err);
        Assert.Contains($"{Previous(run)}: the {previous} section is damaged", err);
        AssertUnchanged(before, run);
    }

    [Fact]
    public void ResumeOverATornMetricsLineSaysWhatWasDroppedAndContinues()
    {
        // Issue 16 defect 3: a torn last line made --resume throw an unhandled JsonException.
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        File.AppendAllText(Path.Combine(run, "metrics.jsonl"), "{\"epoch\":3,\"effective_epo");
        var (code, output, err) = Run("train", "--out", run, "--resume", "--epochs", "3");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("a torn last line (25 bytes with no end of line: a crash while appending)", err);
        Assert.Contains("epoch 3/3", output);
        Assert.Equal([1, 2, 3], MetricsLog.Read(Path.Combine(run, "metrics.jsonl")).Select(m => m.Epoch));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TemporaryFilesOfAKilledSaveAreRemovedOnTheNextStartOfTheRunFolder(bool resume)
    {
        // Issue 16 defect 10: kill -9 during a save left .checkpoint.bin.<guid>.part and .summary.json.*.part for good.
        using var dir = new TempDir();
        string run;
        if (resume) run = TrainedRun(dir);
        else Directory.CreateDirectory(run = dir.File("run")); // killed during the first save: only the temporaries are there
        string[] stale = [".checkpoint.bin.5f0e0c8a1b2d4e6f8a9b0c1d2e3f4a5b.part", ".summary.json.00112233445566778899aabbccddeeff.part"];
        foreach (var name in stale) File.WriteAllBytes(Path.Combine(run, name), new byte[1000]);
        File.WriteAllText(Path.Combine(run, "my-notes.part"), "the user's own file");
        var (code, _, err) = resume
            ? Run("train", "--out", run, "--resume", "--epochs", "3")
            : Run("train", "--model", "small-mnistfc", "--optimizer", "sgd", "--max-train-samples", "256", "--batch-size", "128", "--epochs", "1",
                "--threads", "1", "--no-tensorboard", "--data-dir", TestMachine.FashionMnistFolder, "--out", run);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains($"removed 2 temporary file(s) left by an interrupted save: {stale[0]}, {stale[1]}", err);
        Assert.Empty(Directory.GetFiles(run, ".*.part"));
        Assert.True(File.Exists(Path.Combine(run, "my-notes.part")));
    }
}
