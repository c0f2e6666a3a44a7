using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Damaged checkpoints, the two checkpoint generations, torn metrics logs and stale temporary files, table-driven:
/// each case damages a run folder on purpose and checks the words of the error (or notice), that the damaged part is
/// named, and that no file already written changed when the run is refused.
/// </summary>
public class CheckpointIntegrityTests
{
    const string Metrics = "metrics.jsonl";

    static (ClassificationTask Task, optim.Optimizer Optimizer) Build()
    {
        var model = Synthetic.Mlp(hidden: 16);
        var task = new ClassificationTask(model, Synthetic.Blobs(train: 64), 32, seed: 1);
        return (task, OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.05, Momentum = 0.9 }));
    }

    /// <summary>Trains (or resumes) the blobs run in <paramref name="folder"/> to <paramref name="epochs"/> epochs.</summary>
    static TrainingResult Train(string folder, int epochs, bool resume = false, List<string>? notices = null)
    {
        var (task, optimizer) = Build();
        using (task)
        using (optimizer)
        {
            var trainer = new Trainer(task, optimizer, new TrainerOptions { Epochs = epochs, OutputDirectory = folder, ModelName = "mlp16", TensorBoard = false });
            trainer.Notice = m => notices?.Add(m);
            return trainer.Run(resume);
        }
    }

    /// <summary>A two-epoch run: checkpoint.bin is the end of epoch 2, checkpoint.prev.bin the end of epoch 1.</summary>
    static string TwoEpochRun(TempDir dir)
    {
        var folder = dir.File("run");
        Assert.Equal(TrainingStatus.Completed, Train(folder, 2).Status);
        return folder;
    }

    static string Newest(string folder) => Path.Combine(folder, Trainer.CheckpointFileName);
    static string Previous(string folder) => Checkpoint.PreviousGenerationPath(Newest(folder));

    static Dictionary<string, byte[]> Snapshot(string folder) => FolderSnapshot.Take(folder);

    static void AssertUnchanged(Dictionary<string, byte[]> before, string folder) => FolderSnapshot.AssertUnchanged(before, folder);

    static void FlipByte(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x5A));
    }

    static (string Name, long FrameStart, long PayloadStart, long Length) Section(string path, string name) =>
        Checkpoint.DescribeSections(path).Single(s => s.Name == name);

    static readonly string[] FormatThreeSections = ["header", "run configuration", "weights", "optimizer state", "random generator", "data stream"];

    public static TheoryData<string> SectionNames => new(FormatThreeSections);

    [Fact]
    public void FormatThreeHasTheSixSectionsInOrderAndTheRotationKeepsThePreviousGeneration()
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        Assert.Equal(FormatThreeSections, Checkpoint.DescribeSections(Newest(folder)).Select(s => s.Name));
        Assert.Equal(3, Checkpoint.ReadMeta(Newest(folder)).FormatVersion);
        Assert.Equal(2, Checkpoint.Verify(Newest(folder)).CompletedEpochs);
        Assert.Equal(1, Checkpoint.Verify(Previous(folder)).CompletedEpochs);
        Assert.Empty(dir.Leftovers());
    }

    [Theory]
    [MemberData(nameof(SectionNames))]
    public void AFlippedByteInAnySectionIsRefusedByNameBeforeTheModelIsTouched(string section)
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        var path = Newest(folder);
        var s = Section(path, section);
        // The run configuration of this run (no RunConfig) is the empty string: its one byte is the length prefix.
        FlipByte(path, s.PayloadStart + s.Length / 2);
        var before = Snapshot(folder);
        var (task, optimizer) = Build();
        using (task)
        using (optimizer)
        {
            var weights = Synthetic.Flatten(task.Model);
            var e = Assert.Throws<CheckpointDamagedException>(() => Checkpoint.Load(path, task.Model, optimizer, task));
            Assert.Equal($"{path}: the {section} section is damaged (checksum mismatch)", e.Message);
            Assert.Equal(section, e.Section);
            var w = Assert.Throws<CheckpointDamagedException>(() => Checkpoint.LoadWeights(path, task.Model));
            Assert.Equal(e.Message, w.Message);
            Assert.Equal(weights, Synthetic.Flatten(task.Model));
        }
        if (section is "header" or "run configuration")
            Assert.Throws<CheckpointDamagedException>(() => Checkpoint.ReadMeta(path));
        else
            Assert.Equal(2, Checkpoint.ReadMeta(path).CompletedEpochs); // the metadata alone is intact
        AssertUnchanged(before, folder);
    }

    public static TheoryData<string, string> FrameDamage => new()
    {
        // what is damaged, the words of the error
        { "magic", "not a WideValley checkpoint (wrong magic bytes)" },
        { "weights name", "the weights section is damaged (its frame names it" },
        { "optimizer length", "the optimizer state section" },
        { "checksum of data stream", "the data stream section is damaged (checksum mismatch)" },
        { "end marker", "the end marker is damaged" },
        { "appended bytes", "unexpected bytes follow the end marker" },
    };

    [Theory]
    [MemberData(nameof(FrameDamage))]
    public void DamagedFramesAreRefusedWithWhatIsWrong(string damage, string expected)
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        var path = Newest(folder);
        var sections = Checkpoint.DescribeSections(path);
        var dataStream = sections.Single(s => s.Name == "data stream");
        switch (damage)
        {
            case "magic": FlipByte(path, 2); break;
            case "weights name": FlipByte(path, sections.Single(s => s.Name == "weights").FrameStart + 3); break;
            case "optimizer length": FlipByte(path, sections.Single(s => s.Name == "optimizer state").PayloadStart - 3); break;
            case "checksum of data stream": FlipByte(path, dataStream.PayloadStart + dataStream.Length + 2); break;
            case "end marker": FlipByte(path, new FileInfo(path).Length - 4); break;
            case "appended bytes": File.AppendAllText(path, "x"); break;
        }
        var before = Snapshot(folder);
        var e = Assert.Throws<CheckpointDamagedException>(() => Checkpoint.Verify(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
        AssertUnchanged(before, folder);
    }

    public static TheoryData<string, string> Truncations => new()
    {
        // where the file is cut, the words of the error
        { "inside the magic bytes", "not a WideValley checkpoint" },
        { "after the magic bytes", "the file ends before the header section" },
        { "inside the header", "the file ends inside the header section" },
        { "inside the weights", "the file ends inside the weights section" },
        { "inside the optimizer state", "the file ends inside the optimizer state section" },
        { "before the end marker", "the end marker is missing" },
        { "one byte short", "the end marker" },
    };

    [Theory]
    [MemberData(nameof(Truncations))]
    public void TruncatedFilesSayWhereTheyEnd(string cut, string expected)
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        var path = Newest(folder);
        var sections = Checkpoint.DescribeSections(path);
        var length = new FileInfo(path).Length;
        long Middle(string name) { var s = sections.Single(x => x.Name == name); return s.PayloadStart + s.Length / 2; }
        var at = cut switch
        {
            "inside the magic bytes" => 4,
            "after the magic bytes" => 8,
            "inside the header" => Middle("header"),
            "inside the weights" => Middle("weights"),
            "inside the optimizer state" => Middle("optimizer state"),
            "before the end marker" => sections[^1].PayloadStart + sections[^1].Length + 8,
            _ => length - 1,
        };
        using (var stream = new FileStream(path, FileMode.Open))
            stream.SetLength(at);
        var before = Snapshot(folder);
        var (task, optimizer) = Build();
        using (task)
        using (optimizer)
        {
            var e = Assert.Throws<CheckpointDamagedException>(() => Checkpoint.Load(path, task.Model, optimizer, task));
            Assert.Contains(path, e.Message);
            Assert.Contains(expected, e.Message);
        }
        AssertUnchanged(before, folder);
    }

    [Theory]
    [MemberData(nameof(SectionNames))]
    public void ADamagedNewestCheckpointFallsBackToThePreviousOneAndResumesAsIfUninterrupted(string section)
    {
        using var reference = new TempDir();
        var uninterrupted = Train(reference.File("run"), 3);

        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        var s = Section(Newest(folder), section);
        FlipByte(Newest(folder), s.PayloadStart + s.Length / 2);
        var notices = new List<string>();
        var result = Train(folder, 3, resume: true, notices);

        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Contains(notices, n => n.Contains($"the {section} section is damaged (checksum mismatch)") &&
                                      n.Contains($"falling back to the previous checkpoint {Previous(folder)} (end of epoch 1)"));
        // Epoch 2 was logged after the checkpoint now used: dropped, then logged again by the redone epoch.
        Assert.Contains(notices, n => n.Contains("line 2 (epoch 2, logged after the checkpoint was written)"));
        var logged = MetricsLog.Read(Path.Combine(folder, Metrics));
        Assert.Equal([1, 2, 3], logged.Select(m => m.Epoch));
        Assert.Equal(uninterrupted.Epochs.Select(m => (m.TrainLoss, m.TestLoss, m.GradEvals)), logged.Select(m => (m.TrainLoss, m.TestLoss, m.GradEvals)));
        // The damaged file never became the previous generation: both are intact now.
        Assert.Equal(3, Checkpoint.Verify(Newest(folder)).CompletedEpochs);
        Assert.Equal(2, Checkpoint.Verify(Previous(folder)).CompletedEpochs);
    }

    public static TheoryData<string, string> BothDamaged => new()
    {
        { "header", "weights" },
        { "weights", "weights" },
        { "optimizer state", "header" },
        { "data stream", "random generator" },
    };

    [Theory]
    [MemberData(nameof(BothDamaged))]
    public void BothGenerationsDamagedIsAClearErrorThatChangesNothing(string newestSection, string previousSection)
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        var n = Section(Newest(folder), newestSection);
        FlipByte(Newest(folder), n.PayloadStart + n.Length / 2);
        var p = Section(Previous(folder), previousSection);
        FlipByte(Previous(folder), p.PayloadStart + p.Length / 2);
        var before = Snapshot(folder);
        var e = Assert.Throws<CheckpointDamagedException>(() => Train(folder, 3, resume: true));
        Assert.Contains($"{Newest(folder)}: the {newestSection} section is damaged (checksum mismatch)", e.Message);
        Assert.Contains($"the previous checkpoint is damaged too ({Previous(folder)}: the {previousSection} section is damaged (checksum mismatch))", e.Message);
        Assert.Contains("neither generation can be used", e.Message);
        AssertUnchanged(before, folder);
    }

    [Fact]
    public void ADamagedNewestWithoutAPreviousGenerationSaysSo()
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        File.Delete(Previous(folder));
        var s = Section(Newest(folder), "weights");
        FlipByte(Newest(folder), s.PayloadStart + 10);
        var before = Snapshot(folder);
        var e = Assert.Throws<CheckpointDamagedException>(() => Train(folder, 3, resume: true));
        Assert.Contains("the weights section is damaged (checksum mismatch)", e.Message);
        Assert.Contains("there is no previous checkpoint", e.Message);
        AssertUnchanged(before, folder);
    }

    [Fact]
    public void ANewRunInAFolderDoesNotKeepAnotherRunsCheckpointAsItsPreviousGeneration()
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        Train(folder, 1);
        Assert.Equal(1, Checkpoint.Verify(Newest(folder)).CompletedEpochs);
        Assert.False(File.Exists(Previous(folder)));
    }

    public static TheoryData<string, string, int, string, int[], string?> MetricsCases => new()
    {
        // name, the log's content ("E" stands for a complete line of epoch E), checkpoint's epochs, expected words, kept epochs, content after
        { "clean", "1\n2\n", 2, "", [1, 2], null },
        { "torn last line", "1\n2\n{\"epoch\":3,\"train_lo", 2, "a torn last line (20 bytes with no end of line: a crash while appending)", [1, 2], "1\n2\n" },
        { "torn after the checkpoint's epoch", "1\n2\n{\"ep", 1, "line 2 (epoch 2, logged after the checkpoint was written); a torn last line", [1], "1\n" },
        { "lines after the checkpoint", "1\n2\n3\n", 1, "dropped line 2 (epoch 2, logged after the checkpoint was written); line 3 (epoch 3", [1], "1\n" },
        { "garbage inside", "1\n\u0000\u0000garbage\n2\n", 2, "line 2, which is not valid JSON", [1, 2], "1\n2\n" },
        { "complete last line without end of line", "1\n2", 2, "", [1, 2], "1\n2\n" },
        { "only a torn line", "{\"epo", 0, "a torn last line (5 bytes", [], "" },
        { "empty", "", 0, "", [], null },
    };

    [Theory]
    [MemberData(nameof(MetricsCases))]
    public void TheMetricsLogIsRepairedToTheCheckpoint(string name, string content, int checkpointEpochs, string expected, int[] kept, string? after)
    {
        _ = name;
        using var dir = new TempDir();
        string Expand(string text) => string.Join("\n", text.Split('\n')
            .Select(l => int.TryParse(l, out var epoch) ? new EpochMetrics { Epoch = epoch, TrainLoss = 1.0 / epoch }.ToJsonLine() : l));
        var path = dir.WriteText(Metrics, Expand(content));
        var before = File.ReadAllBytes(path);
        var repair = MetricsLog.RepairForResume(path, checkpointEpochs);
        Assert.Equal(kept, repair.Kept.Select(m => m.Epoch));
        if (expected.Length == 0) Assert.Null(repair.Message);
        else
        {
            Assert.Contains($"{path}: repaired to the checkpoint (epoch {checkpointEpochs} done)", repair.Message);
            Assert.Contains(expected, repair.Message);
        }
        if (after is null) Assert.Equal(before, File.ReadAllBytes(path));
        else Assert.Equal(Expand(after), File.ReadAllText(path));
        Assert.Empty(dir.Leftovers());
        // Repairing again changes nothing.
        var bytes = File.ReadAllBytes(path);
        Assert.Null(MetricsLog.RepairForResume(path, checkpointEpochs).Message);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void ResumingOverATornMetricsLineRepairsTheLogInsteadOfThrowing()
    {
        // Defect 3 of issue 16: a crash while appending left a torn last line, and --resume threw a JsonException.
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        var metrics = Path.Combine(folder, Metrics);
        File.AppendAllText(metrics, "{\"epoch\":3,\"effective_epochs\":3,\"grad_ev");
        var notices = new List<string>();
        var result = Train(folder, 3, resume: true, notices);
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Contains(notices, n => n.Contains("a torn last line") && n.Contains(metrics));
        Assert.Equal([1, 2, 3], MetricsLog.Read(metrics).Select(m => m.Epoch));
    }

    [Fact]
    public void StaleTemporaryFilesOfAKilledSaveAreRemovedOnTheNextStartAndNothingElse()
    {
        using var dir = new TempDir();
        var folder = TwoEpochRun(dir);
        const string Guid = "0123456789abcdef0123456789abcdef";
        string[] ours = [$".checkpoint.bin.{Guid}.part", $".summary.json.{Guid}.part", $".metrics.jsonl.{Guid}.part", $".checkpoint.prev.bin.{Guid}.part"];
        string[] others = [$".checkpoint.bin.{Guid[..31]}.part", $".notes.txt.{Guid}.part", "checkpoint.bin.part", $".checkpoint.bin.{Guid.ToUpperInvariant()}.part", $".checkpoint.bin.{Guid}.partial"];
        foreach (var name in ours.Concat(others)) File.WriteAllText(Path.Combine(folder, name), "half a file");
        var notices = new List<string>();
        Train(folder, 3, resume: true, notices);
        Assert.All(ours, name => Assert.False(File.Exists(Path.Combine(folder, name)), name));
        Assert.All(others, name => Assert.True(File.Exists(Path.Combine(folder, name)), name));
        Assert.Contains(notices, n => n.StartsWith("removed 4 temporary file(s) left by an interrupted save:") && n.Contains(ours[0]));
    }
}
