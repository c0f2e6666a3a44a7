using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley train --eval-every E`: evaluations inside a long Entropy-SGD epoch, from the command line.</summary>
public class TrainEvalEveryCliTests
{
    [Fact]
    public void AnEntropySgdEpochIsEvaluatedInsideAndTheRunConfigurationKeepsTheInterval()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        // 256 images in minibatches of 64 with L = 4: one epoch is 4 effective epochs, so E = 1 asks for 3 points inside it.
        var (code, _, err) = InProcessCli.Run("train", "--model", "small-mnistfc", "--optimizer", "entropy-sgd", "-L", "4",
            "--max-train-samples", "256", "--batch-size", "64", "--epochs", "1", "--threads", "1", "--no-tensorboard",
            "--eval-every", "1", "--out", run);
        Assert.True(code == ExitCodes.Ok, err);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var inside = lines.Where(l => l["within_epoch"]?.GetValue<bool>() == true).ToList();
        var ends = lines.Where(l => l["within_epoch"] is null).ToList();
        Assert.Single(ends);
        Assert.Equal(3, inside.Count);
        var effective = inside.Select(l => l["effective_epochs"]!.GetValue<double>()).ToList();
        Assert.Equal(effective.Order().ToList(), effective);
        Assert.All(effective, e => Assert.True(e < ends[0]["effective_epochs"]!.GetValue<double>(), $"a within-epoch point at {e} is not inside the epoch"));
        Assert.All(inside, l => Assert.True(l["test_error"] is not null, "a within-epoch point has no test error"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["config"]!;
        Assert.Equal(1.0, config["eval_every_effective_epochs"]!.GetValue<double>());
    }
}
