using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Optim;

/// <summary>
/// `widevalley train --optimizer parle|elastic-sgd` in one process (world size 1): the registration reaches the
/// command line, the flags set the options, diagnostics are logged and a resumed run loads the optimizer's state.
/// </summary>
public class ParleCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData("parle", new[] { "-L", "2", "--elastic-rho", "2", "--elastic-rho-growth", "0.1", "--gamma", "0.05", "--scoping", "0.1", "--gamma-max", "0.06" })]
    [InlineData("elastic-sgd", new[] { "--elastic-rho", "2", "--elastic-rho-growth", "0.1", "--momentum", "0.9" })]
    public void TrainsAndResumesInOneProcess(string optimizer, string[] flags)
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Run(["train", "--model", "small-mnistfc", "--optimizer", optimizer, .. flags, "--lr", "0.1",
            "--max-train-samples", "500", "--batch-size", "100", "--epochs", "1", "--threads", "2", "--no-tensorboard", "--out", run]);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(optimizer, (string?)summary["config"]!["optimizer"]);
        var options = summary["config"]!["optimizer_options"]!;
        Assert.Equal((2.0, 0.1), ((double)options["elastic_rho"]!, (double)options["elastic_rho_growth"]!));

        var resumed = Run("train", "--out", run, "--resume", "--epochs", "2");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(2, lines.Length);
        // 5 outer steps per epoch: after two epochs t = 10, so the next step's rho is 2 (1.1)^10 (the cap, 10, not reached),
        // which shows the resumed run continued the counter from the checkpoint.
        Assert.Equal(2 * Math.Pow(1.1, 10), (double)lines[1]["elastic_rho"]!, 9);
        if (optimizer == "parle") Assert.Equal(0.06, (double)lines[1]["gamma"]!); // 0.05 (1.1)^10 = 0.13, capped
    }
}
