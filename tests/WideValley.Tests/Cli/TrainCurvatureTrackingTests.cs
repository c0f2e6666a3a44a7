using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley train --track-curvature`: lambda_max and trace, full and per layer, after every epoch.</summary>
public class TrainCurvatureTrackingTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static readonly string[] Small = ["--model", "small-mnistfc", "--max-train-samples", "256", "--batch-size", "64", "--threads", "2", "--no-tensorboard"];

    [Theory]
    [InlineData(new[] { "--track-hutchinson-probes", "3" }, "--track-hutchinson-probes sets the curvature tracking, which is off: give --track-curvature too")]
    [InlineData(new[] { "--track-curvature", "--track-lanczos-iterations", "1" }, "--track-lanczos-iterations must be at least 2, got 1")]
    [InlineData(new[] { "--track-curvature", "--track-hutchinson-probes", "0" }, "--track-hutchinson-probes must be at least 1, got 0")]
    [InlineData(new[] { "--track-curvature", "--track-examples-per-class", "0" }, "--track-examples-per-class must be at least 1, got 0")]
    [InlineData(new[] { "--track-curvature", "--track-examples-per-class", "100000" }, "fewer than the 100000 asked for")]
    [InlineData(new[] { "--track-curvature", "--track-layers", "fc9" }, "--track-layers: 'fc9' is neither a parameter nor a module with a weight")]
    [InlineData(new[] { "--track-curvature", "--track-spectra", "exact" }, "exact")]
    public void InvalidTrackingOptionsExitWithCode2AndSayWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["train", .. Small, .. args, "--out", dir.File("run")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void ALanguageModelIsRefused()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("train", "--model", "small-char-lstm", "--data", "text", "--corpus", "/usr/share/games/fortunes/art", "--track-curvature", "--out", dir.File("run"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--track-curvature measures an image classifier's Hessian", err);
    }

    [Fact]
    public void RecordsEveryEpochOnceAcrossResumesAndTrainsAsAnUntrackedRun()
    {
        using var dir = new TempDir();
        var run = dir.File("tracked");
        var (code, output, err) = Run(["train", .. Small, "--epochs", "2", "--out", run,
            "--track-curvature", "--track-examples-per-class", "3", "--track-lanczos-iterations", "8", "--track-hutchinson-probes", "4"]);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("curvature tracking: at most", output);
        var log = Path.Combine(run, CurvatureTracker.FileName);
        var records = CurvatureTracker.Read(log);
        Assert.Equal([0, 1, 2], records.Select(r => r.Epoch));
        var layerCount = records[0].Layers.Count;
        Assert.True(layerCount >= 2, "small-mnistfc has at least two linear layers");
        foreach (var r in records)
        {
            Assert.Equal(30, r.Examples);
            Assert.Equal(layerCount, r.Layers.Count);
            Assert.All(r.Layers, l => Assert.EndsWith(".weight", l.Parameter));
            Assert.True(double.IsFinite(r.Full.LambdaMax) && r.Full.LambdaMax > 0, $"lambda_max {r.Full.LambdaMax}");
            Assert.True(double.IsFinite(r.Full.Trace));
            // Each layer's block is a principal submatrix: its largest eigenvalue is at most the full one (up to Lanczos's error).
            Assert.All(r.Layers, l => Assert.True(l.LambdaMax <= r.Full.LambdaMax * (1 + 1e-3) + 1e-6, $"{l.Name}: {l.LambdaMax} above the full {r.Full.LambdaMax}"));
            // The stated cost bounds the products spent.
            Assert.True(r.Products <= new CurvatureTrackingOptions { LanczosIterations = 8, HutchinsonProbes = 4 }.MaxProductsPerEpoch(layerCount));
        }
        Assert.True(File.Exists(Path.Combine(run, "curvature.png")) && File.Exists(Path.Combine(run, "curvature.svg")));
        var stored = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["config"]!["curvature_tracking"]!;
        Assert.Equal(3, stored["examples_per_class"]!.GetValue<int>());

        // The tracking measures without touching the training: an untracked run of the same seed trains identically.
        var plain = dir.File("plain");
        var untracked = Run(["train", .. Small, "--epochs", "2", "--out", plain]);
        Assert.True(untracked.Code == ExitCodes.Ok, untracked.Err);
        Assert.Equal(MetricsLog.Read(Path.Combine(plain, "metrics.jsonl")).Select(m => m.TrainLoss), MetricsLog.Read(Path.Combine(run, "metrics.jsonl")).Select(m => m.TrainLoss));

        // A resume may not change the tracking.
        var changed = Run(["train", .. Small, "--epochs", "3", "--out", run, "--resume", "--track-hutchinson-probes", "9"]);
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--track-*", changed.Err);

        // A line measured after the checkpoint was written (a crash between the two) is dropped on resume, not duplicated.
        var stale = records[^1] with { Epoch = 3 };
        File.AppendAllText(log, stale.ToJsonLine() + "\n");
        var resumed = Run(["train", .. Small, "--epochs", "3", "--out", run, "--resume"]);
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Contains("epoch 3, measured after the checkpoint was written", resumed.Out + resumed.Err);
        var after = CurvatureTracker.Read(log);
        Assert.Equal([0, 1, 2, 3], after.Select(r => r.Epoch));
        Assert.Equal(records[2].Full.LambdaMax, after[2].Full.LambdaMax);
        Assert.NotEqual(stale.Seconds, after[3].Seconds);
    }

    [Fact]
    public void AResumeInsideTheFirstEpochKeepsTheInitialMeasurement()
    {
        using var dir = new TempDir();
        TorchRuntime.EnsureInitialized();
        TorchSharp.torch.random.manual_seed(1);
        var model = TorchSharp.torch.nn.Sequential(("fc1", TorchSharp.torch.nn.Linear(4, 6)), ("act", TorchSharp.torch.nn.Tanh()), ("fc2", TorchSharp.torch.nn.Linear(6, 3)));
        using var data = new WideValley.Data.LabeledData(TorchSharp.torch.randn(30, 4), TorchSharp.torch.arange(30, TorchSharp.torch.ScalarType.Int64).remainder(3), 3);
        using var tracker = new CurvatureTracker(new CurvatureTrackingOptions { ExamplesPerClass = 2, LanczosIterations = 4, HutchinsonProbes = 2 }, data);
        Assert.Null(tracker.Start(model, dir.Path, 0, resuming: false));
        var first = CurvatureTracker.Read(dir.File(CurvatureTracker.FileName));
        Assert.Equal([0], first.Select(r => r.Epoch));
        Assert.Equal(["fc1", "fc2"], first[0].Layers.Select(l => l.Name));
        // A checkpoint inside epoch 1 holds no finished epoch: the resumed run must not measure "epoch 0" again at moved weights.
        Assert.Null(tracker.Start(model, dir.Path, 0, resuming: true));
        Assert.Equal([0], CurvatureTracker.Read(dir.File(CurvatureTracker.FileName)).Select(r => r.Epoch));
    }

    [Fact]
    public void RepairKeepsTheCheckpointsEpochsAndDropsTornAndLaterLines()
    {
        using var dir = new TempDir();
        var path = dir.File(CurvatureTracker.FileName);
        string Line(int epoch) => new CurvatureRecord { Epoch = epoch }.ToJsonLine();
        File.WriteAllText(path, Line(0) + "\n" + Line(1) + "\n" + Line(2) + "\n{\"epoch\": 3, \"exa");
        var message = CurvatureTracker.Repair(path, 1);
        Assert.NotNull(message);
        Assert.Contains("epoch 2", message);
        Assert.Contains("torn", message);
        Assert.Equal([0, 1], CurvatureTracker.Read(path).Select(r => r.Epoch));
        Assert.Null(CurvatureTracker.Repair(path, 1));
    }
}
