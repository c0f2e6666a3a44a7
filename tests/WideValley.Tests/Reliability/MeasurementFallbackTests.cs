using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;
using static WideValley.Tests.Reliability.CheckpointCliTests;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Issue 16: the measurement commands (`evaluate RUN`, `hessian --checkpoint RUN`, `landscape --checkpoint RUN`) fall
/// back to the run's intact previous checkpoint generation when checkpoint.bin is damaged, as training's resume does,
/// with a one-line warning naming the damaged file and section and the checkpoint used; with both generations damaged
/// they fail with exit code 1 and write nothing; a checkpoint file named explicitly is never swapped for another.
/// Before the fix all three refused a run whose newest checkpoint was damaged although checkpoint.prev.bin was intact.
/// </summary>
public sealed class MeasurementFallbackTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>The command measuring <paramref name="target"/> (a run folder or a checkpoint file) into <paramref name="output"/>, printing JSON.</summary>
    static string[] Command(string command, string target, string output) => command switch
    {
        "evaluate" => ["evaluate", target, "--splits", "test", "--data-dir", TestMachine.FashionMnistFolder, "--threads", "1", "--json"],
        "hessian" => ["hessian", "--checkpoint", target, "--method", "trace", "--probes", "4", "--samples", "64", "--threads", "1",
            "--data-dir", TestMachine.FashionMnistFolder, "--out", output, "--json"],
        "landscape" => ["landscape", "--checkpoint", target, "--slice", "1d", "--points", "3", "--samples", "64", "--threads", "1",
            "--data-dir", TestMachine.FashionMnistFolder, "--out", output, "--json"],
        _ => throw new ArgumentException(command),
    };

    /// <summary>What the command measured, without what names the folders or the time it took.</summary>
    static JsonObject Measured(string stdout)
    {
        var json = JsonNode.Parse(stdout)!.AsObject();
        foreach (var key in new[] { "out", "seconds", "files", "checkpoint", "run" }) json.Remove(key);
        return json;
    }

    [Theory]
    [InlineData("evaluate", "weights")]
    [InlineData("hessian", "weights")]
    [InlineData("hessian", "header")]
    [InlineData("landscape", "optimizer state")]
    public void ADamagedNewestCheckpointOfARunFolderIsMeasuredAtThePreviousGenerationWithAWarning(string command, string section)
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        Damage(Newest(run), section);

        var (code, stdout, err) = Run(Command(command, run, dir.File("fallback")));
        Assert.True(code == ExitCodes.Ok, err);
        var doing = command == "evaluate" ? "evaluating" : "measuring";
        var warning = $"widevalley: warning: {Newest(run)}: the {section} section is damaged (checksum mismatch); " +
                      $"{doing} the previous checkpoint {Previous(run)} (end of epoch 1) instead";
        Assert.Contains(warning, err);
        Assert.Single(err.Split('\n'), line => line.Contains("warning:"));
        var fallback = JsonNode.Parse(stdout)!;
        Assert.Equal(1, (int)fallback["epoch"]!);
        Assert.Equal(Previous(run), (string)fallback["checkpoint"]!);

        // The same numbers as measuring the previous generation named directly (evaluate takes run folders only: a
        // folder holding just that generation).
        string[] reference;
        if (command == "evaluate")
        {
            var copy = dir.File("previous-only");
            Directory.CreateDirectory(copy);
            File.Copy(Previous(run), Path.Combine(copy, WideValley.Training.Trainer.CheckpointFileName));
            reference = Command(command, copy, "");
        }
        else
        {
            reference = Command(command, Previous(run), dir.File("direct"));
        }
        var (directCode, direct, directErr) = Run(reference);
        Assert.True(directCode == ExitCodes.Ok, directErr);
        Assert.DoesNotContain("warning", directErr);
        Assert.Equal(Measured(direct).ToJsonString(), Measured(stdout).ToJsonString());
    }

    [Theory]
    [InlineData("evaluate")]
    [InlineData("hessian")]
    [InlineData("landscape")]
    public void BothGenerationsDamagedFailWithExitCode1AndWriteNothing(string command)
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        Damage(Newest(run), "weights");
        Damage(Previous(run), "header");
        var before = FolderSnapshot.Take(dir.Path);

        // The default output folder lies inside the run folder: nothing may appear there either.
        var args = Command(command, run, "").Where(a => a != "--out" && a.Length > 0).ToArray();
        var (code, stdout, err) = Run(args);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains($"{Newest(run)}: the weights section is damaged (checksum mismatch), and the previous checkpoint is damaged too", err);
        Assert.Contains($"{Previous(run)}: the header section is damaged", err);
        Assert.DoesNotContain("warning", err);
        Assert.Empty(stdout);
        FolderSnapshot.AssertUnchanged(before, dir.Path);
    }

    [Theory]
    [InlineData("hessian")]
    [InlineData("landscape")]
    public void ACheckpointFileNamedExplicitlyIsNotSwappedForItsPreviousGeneration(string command)
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        Damage(Newest(run), "weights");
        var before = FolderSnapshot.Take(dir.Path);

        var (code, stdout, err) = Run(Command(command, Newest(run), dir.File("out")));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains($"--checkpoint {Newest(run)}: {Newest(run)}: the weights section is damaged (checksum mismatch); " +
                        "a checkpoint file named explicitly is not replaced by another", err);
        Assert.Contains($"The previous generation {Previous(run)} may be intact: name it (--checkpoint {Previous(run)}), " +
                        $"or name the run folder (--checkpoint {run})", err);
        Assert.Empty(stdout);
        FolderSnapshot.AssertUnchanged(before, dir.Path);
    }

    [Fact]
    public void TheOtherEndOfAnInterpolationFallsBackLikeTheFirst()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        var other = dir.File("other");
        CopyFolder(run, other);
        Damage(Newest(other), "weights");

        var (code, stdout, err) = Run("landscape", "--checkpoint", run, "--other", other, "--slice", "interp", "--points", "3", "--samples", "64",
            "--threads", "1", "--data-dir", TestMachine.FashionMnistFolder, "--out", dir.File("line"), "--json");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains($"widevalley: warning: {Newest(other)}: the weights section is damaged (checksum mismatch); " +
                        $"measuring the previous checkpoint {Previous(other)} (end of epoch 1) instead", err);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal(Previous(other), (string)json["other"]!);
        // t = 1 is the other end: the previous generation's weights, i.e. not those of t = 0 (epoch 2).
        var loss = json["loss"]!.AsArray().Select(l => (double)l!).ToArray();
        Assert.NotEqual(loss[0], loss[2]);
    }

    static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    [Theory]
    [InlineData("evaluate")]
    [InlineData("hessian")]
    [InlineData("landscape")]
    public void AModelFileThatIsARunFolderFallsBackToo(string command)
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        Damage(Newest(run), "weights");
        string[] args = command switch
        {
            "evaluate" => ["evaluate", "--model-file", run, "--splits", "test", "--data-dir", TestMachine.FashionMnistFolder, "--threads", "1", "--json"],
            "hessian" => ["hessian", "--model-file", run, "--method", "trace", "--probes", "4", "--samples", "64", "--threads", "1",
                "--data-dir", TestMachine.FashionMnistFolder, "--out", dir.File("out"), "--json"],
            _ => ["landscape", "--model-file", run, "--slice", "1d", "--points", "3", "--samples", "64", "--threads", "1",
                "--data-dir", TestMachine.FashionMnistFolder, "--out", dir.File("out"), "--json"],
        };
        var (code, _, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains($"widevalley: warning: {Newest(run)}: the weights section is damaged (checksum mismatch); " +
                        $"reading the previous checkpoint {Previous(run)} (end of epoch 1) instead", err);
    }

    [Fact]
    public void TheLibrarysModelSourceReadsTheIntactGenerationAndSaysSo()
    {
        using var dir = new TempDir();
        var run = TrainedRun(dir);
        using (var intact = WideValley.Models.ModelSource.Open(run, new WideValley.Models.ModelSourceOptions { RunDataDir = TestMachine.FashionMnistFolder }))
        {
            Assert.Null(intact.Notice);
            Assert.Equal(Newest(run), intact.Path);
        }
        Damage(Newest(run), "weights");
        using var loaded = WideValley.Models.ModelSource.Open(run, new WideValley.Models.ModelSourceOptions { RunDataDir = TestMachine.FashionMnistFolder });
        Assert.Equal(Previous(run), loaded.Path);
        Assert.Contains("the weights section is damaged", loaded.Notice);
        // A checkpoint file named explicitly is refused, not swapped.
        Assert.ThrowsAny<Exception>(() => WideValley.Models.ModelSource.Open(Newest(run), new WideValley.Models.ModelSourceOptions { RunDataDir = TestMachine.FashionMnistFolder }));
    }
}
