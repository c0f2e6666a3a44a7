using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley train --htr-*`: the Hessian-trace regulariser from the command line.</summary>
public class TrainHtrCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData(new[] { "--htr-probes", "3" }, "--htr-probes sets the Hessian-trace regulariser, which is off: give --htr-gamma too")]
    [InlineData(new[] { "--htr-gamma", "0" }, "Gamma (--htr-gamma) must be a positive finite number")]
    [InlineData(new[] { "--htr-gamma", "1e-3", "--htr-freq", "0" }, "Frequency (--htr-freq) must be at least 1")]
    [InlineData(new[] { "--htr-gamma", "1e-3", "--htr-start-epoch", "0" }, "StartEpoch (--htr-start-epoch) is 1-based")]
    [InlineData(new[] { "--htr-gamma", "1e-3", "--htr-probe", "uniform" }, "uniform")]
    [InlineData(new[] { "--htr-gamma", "1e-3", "--htr-layers", "fc9" }, "'fc9' names no parameter or module")]
    public void InvalidHtrOptionsExitWithCode2AndSayWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["train", "--model", "small-mnistfc", .. args, "--max-train-samples", "256", "--no-tensorboard", "--out", dir.File("run")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void TrainsWithTheRegulariserAndRecordsItInTheRunConfiguration()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Run("train", "--model", "small-mnistfc", "--max-train-samples", "256", "--batch-size", "64", "--epochs", "2",
            "--threads", "2", "--no-tensorboard", "--out", run,
            "--htr-gamma", "1e-3", "--htr-probes", "2", "--htr-freq", "2", "--htr-start-epoch", "2", "--htr-probe", "rademacher", "--htr-layers", "middle");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var htr = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["config"]!["hessian_trace"]!;
        Assert.Equal(1e-3, htr["gamma"]!.GetValue<double>());
        Assert.Equal(2, htr["probes"]!.GetValue<int>());
        Assert.Equal(2, htr["frequency"]!.GetValue<int>());
        Assert.Equal(2, htr["start_epoch"]!.GetValue<int>());
        Assert.Equal("rademacher", htr["probe"]!.GetValue<string>());
        Assert.Equal("middle", htr["parameters"]!.GetValue<string>());
        Assert.Equal(1, htr["seed"]!.GetValue<long>());

        // The regulariser defines the run: a resume may not change it.
        var changed = Run("train", "--model", "small-mnistfc", "--max-train-samples", "256", "--batch-size", "64", "--epochs", "3",
            "--threads", "2", "--no-tensorboard", "--out", run, "--resume", "--htr-gamma", "1e-2");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--htr-gamma 0.01 (the run has 0.001)", changed.Err);
        // Repeating a setting it has is fine.
        var resumed = Run("train", "--model", "small-mnistfc", "--max-train-samples", "256", "--batch-size", "64", "--epochs", "3",
            "--threads", "2", "--no-tensorboard", "--out", run, "--resume", "--htr-layers", "middle", "--htr-probes", "2");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length);
    }
}
