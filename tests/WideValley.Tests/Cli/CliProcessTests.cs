using System.Diagnostics;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>The built widevalley executable as a separate process: signals, exit codes.</summary>
public class CliProcessTests
{
    internal static string Executable()
    {
        // The command as the CLI project builds it: tests/WideValley.Tests/bin/CONFIG/TFM/ -> src/WideValley.Cli/bin/CONFIG/TFM/.
        var output = new DirectoryInfo(AppContext.BaseDirectory);
        var (tfm, config, root) = (output.Name, output.Parent!.Name, output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName);
        var path = Path.Combine(root, "src", "WideValley.Cli", "bin", config, tfm, "widevalley");
        Assert.True(File.Exists(path), $"expected the widevalley command at {path}");
        return path;
    }

    static Process Start(params string[] args)
    {
        // Through coreutils' env, which resets SIGINT to its default before exec'ing the command (same pid). A test
        // host started as a background job of a non-interactive shell ignores SIGINT, children inherit that, and
        // .NET (like any shell job) then leaves Ctrl-C ignored: the signal test would measure the launcher, not us.
        var info = new ProcessStartInfo("env")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("--default-signal=INT");
        info.ArgumentList.Add(Executable());
        foreach (var a in args) info.ArgumentList.Add(a);
        return Process.Start(info)!;
    }

    [Fact]
    public void SigintFinishesTheStepSavesAndTheRunResumesToTheEnd()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        string[] args = ["train", "--model", "mnistfc", "--optimizer", "adam", "--max-train-samples", "20000", "--epochs", "2",
            "--threads", "2", "--out", run, "--no-tensorboard"];
        using var p = Start(args);
        var output = new System.Text.StringBuilder();
        var started = new ManualResetEventSlim();
        var errors = new System.Text.StringBuilder();
        // Dedicated reader threads, not OutputDataReceived: the "run folder" line must arrive while the run is young,
        // whatever the thread pool is busy with in a full parallel test run.
        var readers = new[]
        {
            new Thread(() => { while (p.StandardOutput.ReadLine() is { } line) { lock (output) output.AppendLine(line); if (line.StartsWith("run folder")) started.Set(); } }),
            new Thread(() => { while (p.StandardError.ReadLine() is { } line) lock (errors) errors.AppendLine(line); }),
        };
        foreach (var r in readers) { r.IsBackground = true; r.Start(); }
        Assert.True(started.Wait(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken), "the run did not start: " + errors);
        Thread.Sleep(1000); // let it take some steps of epoch 1 (an epoch here takes several seconds)
        using (var kill = Process.Start("kill", ["-INT", p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(60_000), "the process did not stop after SIGINT");
        foreach (var r in readers) r.Join();
        Assert.True(p.ExitCode == ExitCodes.Interrupted, $"exit code {p.ExitCode}; output: {output}; errors: {errors}");
        Assert.Contains("interrupted", output.ToString());
        var meta = Checkpoint.ReadMeta(Path.Combine(run, Trainer.CheckpointFileName));
        // Normally the signal lands mid-epoch; on a very fast machine epoch 1 may be over, and the run stops at its end.
        Assert.True(meta.Reason == "interrupted" ? meta.StepInEpoch > 0 : meta.CompletedEpochs == 1, $"{meta.Reason} at {meta.CompletedEpochs}/{meta.StepInEpoch}");

        using var resumed = Start("train", "--out", run, "--resume");
        var resumedOut = resumed.StandardOutput.ReadToEnd();
        var resumedErr = resumed.StandardError.ReadToEnd();
        resumed.WaitForExit();
        Assert.True(resumed.ExitCode == ExitCodes.Ok, resumedOut + resumedErr);
        Assert.Contains("epoch 2/2", resumedOut);
        var epochs = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => (int)JsonNode.Parse(l)!["epoch"]!);
        Assert.Equal(new[] { 1, 2 }, epochs);
    }

    [Fact]
    public void InvalidOptionsExitWithCode2FromTheRealProcess()
    {
        using var p = Start("train", "--batch-size", "0");
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(ExitCodes.Usage, p.ExitCode);
        Assert.Contains("--batch-size must be at least 1", err);
    }
}
