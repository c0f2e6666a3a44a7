using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>The widevalley command, run in-process.</summary>
public class CliTests
{
    static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData(new[] { "train", "--bogus" }, "--bogus")]
    [InlineData(new[] { "train", "--model", "resnet" }, "resnet")]
    [InlineData(new[] { "train", "--epochs", "many" }, "many")]
    [InlineData(new[] { "train", "--lr", "-1" }, "--lr must be a positive number, got -1")]
    [InlineData(new[] { "train", "--lr-schedule", "step:0:3" }, "learning-rate schedule 'step:0:3'")]
    [InlineData(new[] { "train", "--optimizer", "sgd", "--nesterov" }, "--nesterov")]
    [InlineData(new[] { "train", "--model", "char-lstm", "--data", "text" }, "--corpus")]
    [InlineData(new[] { "train", "--model", "char-lstm", "--data", "fashion-mnist" }, "language model")]
    [InlineData(new[] { "train", "--model", "lenet", "--data", "ptb" }, "classifies images")]
    [InlineData(new[] { "train", "--dropout", "1.5" }, "--dropout must be in [0, 1)")]
    [InlineData(new[] { "train", "--device", "tpu" }, "unknown device")]
    [InlineData(new[] { "train", "--resume" }, "--resume needs --out")]
    public void InvalidOptionsExitWithCode2AndSayWhy(string[] args, string expected)
    {
        var (code, _, err) = Run([.. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void MissingDatasetIsAFailureThatSaysWhatToDo()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("train", "--data", "mnist", "--data-dir", dir.File("nowhere"), "--out", dir.File("run"));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains(dir.File("nowhere"), err);
        Assert.Contains("widevalley data download", err);
        Assert.False(Directory.Exists(dir.File("run")));
    }

    [Fact]
    public void TrainsResumesAndRefusesToChangeSettingsOnResume()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        string[] common = ["--model", "small-mnistfc", "--optimizer", "adam", "--max-train-samples", "2000", "--batch-size", "100", "--threads", "2", "--out", run];
        var (code, output, err) = Run(["train", .. common, "--epochs", "1"]);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("epoch 1/1", output);
        Assert.Contains("finished: test error", output);
        Assert.Single(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")));

        // The same folder without --resume would overwrite a run: refused.
        var again = Run(["train", .. common, "--epochs", "1"]);
        Assert.Equal(ExitCodes.Usage, again.Code);
        Assert.Contains("already holds a run", again.Err);

        // Resuming with another learning rate would be a different experiment: refused, and nothing is touched.
        var before = File.ReadAllBytes(Path.Combine(run, Trainer.CheckpointFileName));
        var changed = Run("train", "--out", run, "--resume", "--epochs", "2", "--lr", "0.5");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--lr 0.5", changed.Err);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(run, Trainer.CheckpointFileName)));

        // Extending the run is allowed and keeps the stored settings.
        var resumed = Run("train", "--out", run, "--resume", "--epochs", "2");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Contains("(resuming)", resumed.Out);
        Assert.Contains("epoch 2/2", resumed.Out);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(new[] { 1, 2 }, lines.Select(l => (int)JsonNode.Parse(l)!["epoch"]!));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("finished", (string?)summary["status"]);
        Assert.Equal("adam", (string?)summary["config"]!["optimizer"]);
        Assert.Equal(2, (int)summary["config"]!["epochs"]!);
    }

    [Fact]
    public void TrainsACharacterLanguageModelOnAnyTextFile()
    {
        using var dir = new TempDir();
        var corpus = dir.File("corpus.txt");
        File.WriteAllText(corpus, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 300)));
        var (code, output, err) = Run("train", "--model", "small-char-lstm", "--data", "text", "--corpus", corpus,
            "--optimizer", "adam", "--lr", "0.01", "--batch-size", "16", "--epochs", "2", "--threads", "2", "--out", dir.File("run"), "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("test perplexity", output);
        var last = JsonNode.Parse(File.ReadAllLines(dir.File("run/metrics.jsonl"))[^1])!;
        var vocabulary = "the quick brown fox jumps over the lazy dog.".Distinct().Count();
        // A repeated sentence is very predictable: perplexity must fall far below the uniform guess.
        Assert.True((double)last["test_perplexity"]! < vocabulary / 2.0, $"perplexity {last["test_perplexity"]}");
    }

    [Fact]
    public void ModelsCommandListsThePaperCounts()
    {
        var (code, output, _) = Run("models");
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Contains("47,658", output);
        Assert.Contains("50,890", output);
        Assert.Contains("32,640", output);
    }
}
