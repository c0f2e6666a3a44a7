using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Cli.Commands;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Run folders under concurrent use, moves and divergence (issue 16, defects 5, 7 and 8): one trainer per folder, data
/// paths that survive a move with their identity checked, a resume that may change how gently the run steps on, and a
/// guard that stops a finite but exploding loss with the last good checkpoint kept.
/// </summary>
public class RunFolderTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>A quick run: 1,000 Fashion-MNIST images, 10 steps per epoch.</summary>
    static string[] Quick(string run, string dataDir) =>
        ["--model", "small-mnistfc", "--max-train-samples", "1000", "--batch-size", "100", "--threads", "1", "--no-tensorboard",
         "--data-dir", dataDir, "--out", run];

    /// <summary>
    /// Every file under <paramref name="folder"/> with the SHA-256 of its bytes, but the lock file (empty, and unreadable
    /// while held: its content is the operating system's lock, not data).
    /// </summary>
    static SortedDictionary<string, string> Snapshot(string folder)
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(folder)) return files;
        foreach (var f in Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != RunFolderLock.FileName))
            files[Path.GetRelativePath(folder, f)] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)));
        return files;
    }

    /// <summary>A copy of the Fashion-MNIST files in <paramref name="dir"/>/<paramref name="name"/>, to move or alter.</summary>
    static string CopyOfFashionMnist(TempDir dir, string name)
    {
        var target = dir.File(name);
        Directory.CreateDirectory(target);
        foreach (var f in Directory.GetFiles(TestMachine.FashionMnistFolder))
            File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        return target;
    }

    /// <summary>The same images with one training label changed: another dataset of the same shape.</summary>
    static string AlteredFashionMnist(TempDir dir, string name)
    {
        var target = CopyOfFashionMnist(dir, name);
        var gz = Path.Combine(target, "train-labels-idx1-ubyte.gz");
        byte[] labels;
        if (File.Exists(gz))
        {
            using var input = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress);
            using var buffer = new MemoryStream();
            input.CopyTo(buffer);
            labels = buffer.ToArray();
            File.Delete(gz);
        }
        else labels = File.ReadAllBytes(Path.Combine(target, "train-labels-idx1-ubyte"));
        labels[8] = (byte)((labels[8] + 1) % 10); // the first label (after the 8-byte IDX header)
        File.WriteAllBytes(Path.Combine(target, "train-labels-idx1-ubyte"), labels);
        return target;
    }

    static JsonNode Summary(string run) => JsonNode.Parse(File.ReadAllText(Path.Combine(run, Trainer.SummaryFileName)))!;

    // ---- defect 8: one trainer per run folder ----

    public static TheoryData<string, string[]> SecondTrainers => new()
    {
        { "fresh run into the held folder", ["--epochs", "1"] },
        { "resume of the held run", ["--resume", "--epochs", "2"] },
        { "resume with a change", ["--resume", "--epochs", "2", "--clip-grad-norm", "1"] },
    };

    [Theory]
    [MemberData(nameof(SecondTrainers))]
    public void ASecondTrainerOnAHeldFolderIsRefusedAndChangesNothing(string what, string[] args)
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var first = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "1"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        // The lock is released when the trainer ends: the folder holds no owner file any more.
        Assert.False(File.Exists(Path.Combine(run, RunFolderLock.OwnerFileName)));
        var before = Snapshot(run);

        using (RunFolderLock.Acquire(run))
        {
            var held = Snapshot(run); // with the holder's owner file
            var second = Run(["train", "--out", run, .. args]);
            Assert.True(second.Code == ExitCodes.Failure, $"{what}: exit {second.Code}; {second.Out}{second.Err}");
            Assert.Contains("is being trained by another process or trainer", second.Err);
            Assert.Contains($"process {Environment.ProcessId}", second.Err);
            Assert.Contains(run, second.Err);
            Assert.Equal(held, Snapshot(run));
        }
        Assert.Equal(before, Snapshot(run));
    }

    [Fact]
    public void TwoConcurrentTrainerProcessesOnOneFolderLeaveOneIntactRun()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        string[] args = ["train", "--model", "mnistfc", "--optimizer", "adam", "--max-train-samples", "20000", "--epochs", "3",
            "--threads", "1", "--no-tensorboard", "--data-dir", TestMachine.FashionMnistFolder, "--out", run];
        using var first = Process.Start(new ProcessStartInfo(CliExecutable(), args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var started = new ManualResetEventSlim();
        var output = new System.Text.StringBuilder();
        var reader = new Thread(() =>
        {
            while (first.StandardOutput.ReadLine() is { } line)
            {
                lock (output) output.AppendLine(line);
                if (line.StartsWith("run folder", StringComparison.Ordinal)) started.Set();
            }
        }) { IsBackground = true };
        var errors = new System.Text.StringBuilder();
        var errorReader = new Thread(() => { while (first.StandardError.ReadLine() is { } line) lock (errors) errors.AppendLine(line); }) { IsBackground = true };
        reader.Start();
        errorReader.Start();
        try
        {
            Assert.True(started.Wait(TimeSpan.FromSeconds(120), TestContext.Current.CancellationToken), "the first trainer did not start");
            var second = Run(args);
            Assert.True(second.Code == ExitCodes.Failure, $"exit {second.Code}; {second.Out}{second.Err}");
            Assert.Contains("is being trained by another process or trainer", second.Err);
            Assert.Contains($"process {first.Id}", second.Err);
            var resumer = Run("train", "--out", run, "--resume", "--epochs", "3");
            Assert.True(resumer.Code is ExitCodes.Failure or ExitCodes.Usage, $"exit {resumer.Code}; {resumer.Out}{resumer.Err}");
        }
        finally
        {
            if (!first.WaitForExit(300_000)) first.Kill();
            reader.Join();
            errorReader.Join();
        }
        Assert.True(first.ExitCode == ExitCodes.Ok, $"exit {first.ExitCode}: {output}{errors}");
        var epochs = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => (int)JsonNode.Parse(l)!["epoch"]!);
        Assert.Equal([1, 2, 3], epochs);
        Assert.Equal("finished", (string?)Summary(run)["status"]);
    }

    static string CliExecutable()
    {
        // tests/WideValley.Tests/bin/CONFIG/TFM/ -> src/WideValley.Cli/bin/CONFIG/TFM/widevalley.
        var output = new DirectoryInfo(AppContext.BaseDirectory);
        var (tfm, config, root) = (output.Name, output.Parent!.Name, output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName);
        var path = Path.Combine(root, "src", "WideValley.Cli", "bin", config, tfm, "widevalley");
        Assert.True(File.Exists(path), $"expected the widevalley command at {path}");
        return path;
    }

    [Fact]
    public void AFailedStartLeavesNoFolderBehind()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("train", "--data", "mnist", "--data-dir", dir.File("nowhere"), "--out", dir.File("run"));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("nowhere", err);
        Assert.False(Directory.Exists(dir.File("run")));
    }

    // ---- defect 7: data paths ----

    [Fact]
    public void DataPathsAreStoredAbsoluteAndAMovedRunResumesAndEvaluatesWithItsDataElsewhere()
    {
        using var dir = new TempDir();
        var data = CopyOfFashionMnist(dir, "data");
        var run = dir.File("run");
        // Given relative to the current directory, stored absolute.
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, data);
        Assert.False(Path.IsPathRooted(relative));
        var first = Run(["train", .. Quick(run, relative), "--epochs", "1"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        var stored = Checkpoint.ReadMeta(Path.Combine(run, Trainer.CheckpointFileName)).RunConfig!;
        Assert.Equal(data, stored.DataDir);
        Assert.StartsWith("labels-sha256:", stored.DataFingerprint);

        // Move the run and its data.
        Directory.CreateDirectory(dir.File("elsewhere"));
        var movedRun = dir.File("elsewhere/run");
        var movedData = dir.File("elsewhere/data");
        Directory.Move(run, movedRun);
        Directory.Move(data, movedData);
        var before = Snapshot(movedRun);

        // Without an override: a precise error naming the missing folder and the option; nothing changes.
        var lost = Run("train", "--out", movedRun, "--resume", "--epochs", "2");
        Assert.Equal(ExitCodes.Usage, lost.Code);
        Assert.Contains($"{data}, which does not exist (moved?)", lost.Err);
        Assert.Contains("--data-dir DIR", lost.Err);
        Assert.Equal(before, Snapshot(movedRun));
        var lostEval = Run("evaluate", movedRun, "--splits", "test");
        Assert.Equal(ExitCodes.Usage, lostEval.Code);
        Assert.Contains("does not exist (moved?)", lostEval.Err);

        // Another dataset of the same shape at the new place: refused by its identity; nothing changes.
        var other = AlteredFashionMnist(dir, "other");
        var wrong = Run("train", "--out", movedRun, "--resume", "--epochs", "2", "--data-dir", other);
        Assert.Equal(ExitCodes.Usage, wrong.Code);
        Assert.Contains("is not the data this run was trained on", wrong.Err);
        Assert.Equal(before, Snapshot(movedRun));
        var wrongEval = Run("evaluate", movedRun, "--splits", "test", "--data-dir", other);
        Assert.Equal(ExitCodes.Usage, wrongEval.Code);
        Assert.Contains("is not the data this run was trained on", wrongEval.Err);

        // The same data at its new place: evaluate and resume; the new place is stored and the change logged.
        var evaluated = Run("evaluate", movedRun, "--splits", "test", "--data-dir", movedData);
        Assert.True(evaluated.Code == ExitCodes.Ok, evaluated.Err);
        var resumed = Run("train", "--out", movedRun, "--resume", "--epochs", "2", "--data-dir", movedData);
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Contains($"resumed with --data-dir {movedData} (was {data})", resumed.Out);
        Assert.Equal(movedData, Checkpoint.ReadMeta(Path.Combine(movedRun, Trainer.CheckpointFileName)).RunConfig!.DataDir);
        Assert.Contains("--data-dir", File.ReadAllText(Path.Combine(movedRun, TrainCommand.RunLogFileName)));
        Assert.Equal(2, File.ReadAllLines(Path.Combine(movedRun, "metrics.jsonl")).Length);
    }

    [Fact]
    public void RelativePathsOfOlderRunsAreFoundAgainstTheRunFolderAndItsParents()
    {
        using var dir = new TempDir();
        // An older run stored "data" relative to the folder it was started from (here: dir), and the whole tree moved.
        var name = $"data-{Guid.NewGuid():N}"; // unique: not found relative to the current directory
        Directory.CreateDirectory(dir.File($"project/{name}"));
        Directory.CreateDirectory(dir.File("project/runs/a"));
        File.WriteAllText(dir.File("project/text.txt"), "some text\n");
        var stored = new RunConfig { DataDir = name, Corpus = "text.txt" };
        var located = RunSetup.LocateData(stored, dir.File("project/runs/a"));
        Assert.Equal(dir.File($"project/{name}"), located.DataDir);
        Assert.Equal(dir.File("project/text.txt"), located.Corpus);

        // Not found anywhere: the error says where it looked and what to pass.
        var lost = Assert.Throws<ArgumentException>(() => RunSetup.LocateData(stored with { DataDir = "gone-" + name }, dir.File("project/runs/a")));
        Assert.Contains($"relative data folder 'gone-{name}'", lost.Message);
        Assert.Contains(dir.File($"project/runs/gone-{name}"), lost.Message);
        Assert.Contains("pass --data-dir DIR", lost.Message);

        // An override wins, made absolute.
        Assert.Equal(Path.GetFullPath("x"), RunSetup.LocateData(stored, dir.File("project/runs/a"), dataDir: "x").DataDir);
    }

    /// <summary>A char-level corpus of <paramref name="lines"/> lines, deterministic; <paramref name="variant"/> changes one letter.</summary>
    static string Text(int lines, bool variant = false)
    {
        var random = new Random(7);
        var words = new[] { "valley", "wide", "flat", "minimum", "sharp", "entropy", "local", "gradient", "step", "noise" };
        var text = new System.Text.StringBuilder();
        for (var i = 0; i < lines; i++)
            text.AppendLine(string.Join(' ', Enumerable.Range(0, 6).Select(_ => words[random.Next(words.Length)])));
        if (variant) text[0] = text[0] == 'x' ? 'y' : 'x';
        return text.ToString();
    }

    public static TheoryData<string, string[], int, string> CorpusCases => new()
    {
        // name, command (RUN / MOVED / OTHER stand for the run folder, the corpus's new place, another text), exit code, words
        { "resume without --corpus", ["train", "--out", "RUN", "--resume", "--epochs", "2"], ExitCodes.Usage, "which does not exist (moved?); pass --corpus FILE" },
        { "resume on another text", ["train", "--out", "RUN", "--resume", "--epochs", "2", "--corpus", "OTHER"], ExitCodes.Usage, "is not the data this run was trained on" },
        { "evaluate without --corpus", ["evaluate", "RUN", "--splits", "test"], ExitCodes.Usage, "which does not exist (moved?); pass --corpus FILE" },
        { "evaluate on another text", ["evaluate", "RUN", "--splits", "test", "--corpus", "OTHER"], ExitCodes.Usage, "is not the data this run was trained on" },
        { "evaluate on the moved text", ["evaluate", "RUN", "--splits", "test", "--corpus", "MOVED"], ExitCodes.Ok, "perplexity" },
        { "resume on the moved text", ["train", "--out", "RUN", "--resume", "--epochs", "2", "--corpus", "MOVED"], ExitCodes.Ok, "resumed with --corpus MOVED (was ORIGINAL)" },
    };

    [Theory]
    [MemberData(nameof(CorpusCases))]
    public void AMovedCorpusIsFoundByOverrideAndAnotherTextIsRefused(string name, string[] command, int exit, string words)
    {
        using var dir = new TempDir();
        var original = dir.WriteText("a.txt", Text(400));
        var run = dir.File("run");
        var first = Run("train", "--model", "small-char-lstm", "--data", "text", "--corpus", original, "--epochs", "1", "--threads", "1",
            "--no-tensorboard", "--out", run);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        var moved = dir.File("moved.txt");
        File.Move(original, moved);
        var other = dir.WriteText("other.txt", Text(400, variant: true));
        var before = Snapshot(run);

        string Fill(string s) => s.Replace("RUN", run).Replace("MOVED", moved).Replace("OTHER", other).Replace("ORIGINAL", original);
        var (code, output, err) = Run([.. command.Select(Fill)]);
        Assert.True(code == exit, $"{name}: exit {code}; {output}{err}");
        Assert.Contains(Fill(words), code == ExitCodes.Ok ? output : err);
        if (code != ExitCodes.Ok || command[0] == "evaluate") Assert.Equal(before, Snapshot(run));
    }

    // ---- defect 5 (second half): what --resume may change ----

    public static TheoryData<string[], string> RefusedResumeChanges => new()
    {
        { ["--seed", "2"], "--seed 2 (the run has 1)" },
        { ["--optimizer", "adam"], "--optimizer \"adam\" (the run has \"sgd\")" },
        { ["--model", "mnistfc"], "--model \"mnistfc\"" },
        { ["--batch-size", "50"], "--batch-size 50 (the run has 100)" },
        { ["--lr", "0.01"], "--lr 0.01" },
        { ["--divergence-factor", "0.5"], "--divergence-factor must be 0 (off) or a finite number above 1, got 0.5" },
        { ["--lr-schedule", "step:0:3"], "learning-rate schedule 'step:0:3'" },
    };

    [Theory]
    [MemberData(nameof(RefusedResumeChanges))]
    public void ResumeRefusesChangesToWhatIsTrained(string[] change, string words)
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var first = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "1"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        var before = Snapshot(run);
        var refused = Run(["train", "--out", run, "--resume", "--epochs", "2", .. change]);
        Assert.True(refused.Code == ExitCodes.Usage, $"exit {refused.Code}: {refused.Out}{refused.Err}");
        Assert.Contains(words, refused.Err);
        Assert.Equal(before, Snapshot(run));
    }

    [Fact]
    public void ResumeMayChangeScheduleClippingAndTheGuardAndSaysWhatChanged()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var first = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "1"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        var resumed = Run("train", "--out", run, "--resume", "--epochs", "2", "--lr-schedule", "custom:2=0.1", "--clip-grad-norm", "1",
            "--divergence-patience", "0");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Contains("resumed with --lr-schedule custom:2=0.1 (was const), --clip-grad-norm 1 (was none), --divergence-patience none (was 30)", resumed.Out);
        var config = RunConfig.FromJson(Summary(run)["config"]!);
        Assert.Equal(("custom:2=0.1", 1.0, 0), (config.LrSchedule, config.ClipGradNorm, config.DivergencePatience));
        Assert.Equal(config.LrSchedule, Checkpoint.ReadMeta(Path.Combine(run, Trainer.CheckpointFileName)).RunConfig!.LrSchedule);
        var metrics = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(0.1, (double)metrics[0]["lr"]!, 12);
        Assert.Equal(0.01, (double)metrics[1]["lr"]!, 12);
        var log = File.ReadAllLines(Path.Combine(run, TrainCommand.RunLogFileName));
        Assert.Single(log);
        Assert.Contains("--clip-grad-norm 1 (was none)", log[0]);
        Assert.Contains("from epoch 2 step 1", log[0]);
    }

    /// <summary>
    /// --checkpoint-every reaches the trainer from the command line: a run checkpoints in the middle of its epoch, the
    /// interval is stored with the run and may change on resume (said as a change), and a bad interval is refused
    /// before anything is written.
    /// </summary>
    [Fact]
    public void CheckpointEveryIsStoredWrittenMidEpochAndMayChangeOnResume()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var bad = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "1", "--checkpoint-every", "5x"]);
        Assert.Equal(ExitCodes.Usage, bad.Code);
        Assert.Contains("--checkpoint-every", bad.Err);
        Assert.Contains("expected a number of steps", bad.Err);
        Assert.False(File.Exists(Path.Combine(run, Trainer.CheckpointFileName)));

        var first = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "1", "--checkpoint-every", "2"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        Assert.Equal("2", RunConfig.FromJson(Summary(run)["config"]!).CheckpointEvery);
        // The epoch-end checkpoint is the newest; the one before it is a periodic one from the middle of the epoch.
        var previous = Checkpoint.ReadMeta(Checkpoint.PreviousGenerationPath(Path.Combine(run, Trainer.CheckpointFileName)));
        Assert.Equal("periodic", previous.Reason);
        Assert.True(previous.StepInEpoch > 0);

        var threads = RunConfig.FromJson(Summary(run)["config"]!).Threads;
        var otherThreads = threads == 1 ? "2" : "1";
        var resumed = Run("train", "--out", run, "--resume", "--epochs", "2", "--checkpoint-every", "10m", "--threads", otherThreads);
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Contains("--checkpoint-every 10m (was 2)", resumed.Out);
        Assert.Contains($"--threads {otherThreads} (was ", resumed.Out);
        Assert.Contains("no longer bit-identical", resumed.Out);
        Assert.Equal("10m", RunConfig.FromJson(Summary(run)["config"]!).CheckpointEvery);
    }

    // ---- defect 5 (first half): the divergence guard ----

    [Fact]
    public void AnExplodingFiniteLossStopsTheRunAsDivergedWithNonZeroExit()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, _, err) = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "3", "--lr", "1e4"]);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("training diverged in epoch 1", err);
        Assert.Contains("times its smallest value so far", err);
        Assert.Contains("--clip-grad-norm 1", err);
        Assert.Equal("diverged", (string?)Summary(run)["status"]);
        Assert.False(File.Exists(Path.Combine(run, Trainer.CheckpointFileName)));
    }

    [Fact]
    public void ADivergenceKeepsTheLastGoodCheckpointAndTheRunResumesWithAGentlerSchedule()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var first = Run(["train", .. Quick(run, TestMachine.FashionMnistFolder), "--epochs", "1"]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        var checkpoint = Path.Combine(run, Trainer.CheckpointFileName);
        var good = File.ReadAllBytes(checkpoint);

        // Epoch 2 at 10^5 times the learning rate explodes: stopped, the end-of-epoch-1 checkpoint kept byte for byte.
        var exploded = Run("train", "--out", run, "--resume", "--epochs", "3", "--lr-schedule", "custom:2=100000");
        Assert.True(exploded.Code == ExitCodes.Failure, $"exit {exploded.Code}: {exploded.Out}{exploded.Err}");
        Assert.Contains("training diverged in epoch 2", exploded.Err);
        Assert.Contains("the last good checkpoint (end of epoch 1) is kept", exploded.Err);
        Assert.Contains("--resume --lr-schedule custom:2=0.1", exploded.Err);
        Assert.Equal(good, File.ReadAllBytes(checkpoint));
        Assert.Equal("diverged", (string?)Summary(run)["status"]);
        Assert.Single(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")));

        // Its advice works: resumed from epoch 1 with a tenth of the learning rate, to the end.
        var rescued = Run("train", "--out", run, "--resume", "--epochs", "3", "--lr-schedule", "custom:2=0.1");
        Assert.True(rescued.Code == ExitCodes.Ok, rescued.Err);
        // (The checkpoint's configuration is the one of epoch 1: the diverged session saved nothing.)
        Assert.Contains("resumed with --lr-schedule custom:2=0.1 (was const)", rescued.Out);
        Assert.Equal("finished", (string?)Summary(run)["status"]);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length);
    }

    public static TheoryData<string, double[], double, int, int?> GuardCases => new()
    {
        // name, per-step mean losses, factor, patience, the step (1-based) at which the guard trips (null: never)
        { "decreasing", [2.3, 2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5], 1000, 3, null },
        { "explodes", [2.3, 2.0, 1e4], 1000, 0, 3 },
        { "just below the factor", [2.0, 1.0, 999], 1000, 0, null },
        { "growing", [2.0, 1.0, 1.1, 1.2, 1.3], 0, 3, 5 },
        { "growth interrupted", [2.0, 1.0, 1.1, 1.2, 1.15, 1.3, 1.4], 0, 3, null },
        { "zero loss is no reference", [2.0, 0.0, 0.5, 0.4], 10, 0, null },
        { "non-finite", [2.0, double.PositiveInfinity], 0, 0, 2 },
        { "off", [2.0, 1.0, 1e30, 1e31, 1e32], 0, 0, null },
    };

    [Theory]
    [MemberData(nameof(GuardCases))]
    public void TheGuardTripsOnlyOnDivergence(string name, double[] losses, double factor, int patience, int? tripsAt)
    {
        // One step per check (an epoch of at most 10 steps).
        var guard = new DivergenceGuard(new DivergenceGuardOptions { LossFactor = factor, GrowthChecks = patience }, stepsPerEpoch: 10);
        int? tripped = null;
        for (var i = 0; i < losses.Length && tripped is null; i++)
            if (guard.Observe(losses[i] * 100, 100) is not null) tripped = i + 1;
        Assert.True(tripsAt == tripped, $"{name}: tripped at {tripped?.ToString() ?? "never"}, expected {tripsAt?.ToString() ?? "never"}");
    }

    [Fact]
    public void TheGuardAveragesOverATenthOfAnEpoch()
    {
        // 100 steps per epoch: checks every 10 steps after the first; one wild step inside a window is averaged.
        var guard = new DivergenceGuard(new DivergenceGuardOptions { LossFactor = 100, GrowthChecks = 0 }, stepsPerEpoch: 100);
        Assert.Null(guard.Observe(2.0, 1)); // the first step is a check of its own: the reference 2.0
        for (var i = 0; i < 9; i++) Assert.Null(guard.Observe(1.0, 1));
        Assert.Null(guard.Observe(1000.0, 1)); // window mean (9 + 1000) / 10 = 100.9, below 100 x the smallest check (2.0)
        for (var i = 0; i < 9; i++) Assert.Null(guard.Observe(1.0, 1));
        var why = guard.Observe(5000.0, 1); // (9 + 5000) / 10 = 500.9 > 100 x 2.0
        Assert.NotNull(why);
        Assert.Contains("500.9", why);
    }
}
