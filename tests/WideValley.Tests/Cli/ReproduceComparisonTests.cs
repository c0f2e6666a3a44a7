using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`reproduce table1` and `reproduce sgld-baseline` at the smoke budget, in-process.</summary>
public class ReproduceComparisonTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>A small deterministic UTF-8 corpus, so the char-lstm row does not depend on installed packages.</summary>
    static string Corpus(TempDir dir)
    {
        var random = new Random(5);
        var words = new[] { "wide", "valley", "sharp", "minimum", "entropy", "gradient", "langevin", "über", "naïve", "loss" };
        var text = new System.Text.StringBuilder();
        for (var line = 0; line < 600; line++)
            text.AppendLine(string.Join(' ', Enumerable.Range(0, 6).Select(_ => words[random.Next(words.Length)])) + ".");
        return dir.WriteText("corpus.txt", text.ToString());
    }

    [Fact]
    public void Table1SmokeWritesAWellFormedReportAndASecondRunTrainsNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "table1", "--budget", "smoke", "--rows", "mnistfc,allcnn,char-lstm", "--seeds", "2", "--threads", "2",
            "--corpus", Corpus(dir), "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("row allcnn skipped: no CIFAR-10 folder", output);
        Assert.Contains("8 runs planned, 0 finished already, 8 to train", output);

        var md = dir.File("report/table1-fashion-mnist-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("Fashion-MNIST stands in for MNIST".ToLowerInvariant(), text.ToLowerInvariant());
        Assert.Contains("| mnistfc |", text);
        Assert.Contains("| All-CNN-BN | cifar10 | skipped |", text);
        Assert.Contains("| char-LSTM |", text);
        Assert.Contains("widevalley reproduce table1 --rows mnistfc,allcnn,char-lstm --seeds 2 --budget smoke", text);
        Assert.Contains("Libtorch threads per finished run, as it last ran: 2 in 8 runs.", text);
        ReproduceReportChecks.AssertImagesExist(md);

        var json = ReproduceReportChecks.ReadJson(dir.File("report/table1-fashion-mnist-smoke.json"));
        var rows = json["rows"]!.AsArray();
        Assert.Equal(["mnistfc", "allcnn", "char-lstm"], rows.Select(r => r!["row"]!.GetValue<string>()));
        Assert.True(rows[1]!["skipped"]!.GetValue<bool>());
        foreach (var row in new[] { rows[0]!, rows[2]! })
            foreach (var arm in new[] { "baseline", "entropy" })
            {
                var a = row[arm]!;
                Assert.Equal(2, a["seeds_finished"]!.GetValue<int>());
                Assert.True(double.IsFinite(a["test_mean"]!.GetValue<double>()));
                Assert.True(a["test_std"]!.GetValue<double>() >= 0);
                Assert.True(a["final_training_loss_mean"]!.GetValue<double>() > 0);
                Assert.True(a["seconds_per_effective_epoch"]!.GetValue<double>() > 0);
                // Different seeds must be different runs.
                var tests = a["runs"]!.AsArray().Select(r => r!["test"]!.GetValue<double>()).ToList();
                Assert.NotEqual(tests[0], tests[1]);
                Assert.All(a["runs"]!.AsArray(), r => Assert.Equal(2, r!["threads"]!.GetValue<int>()));
            }
        ReproduceReportChecks.AssertPlotWithText(dir.File("report/table1-fashion-mnist-smoke-mnistfc.png"), "effective epochs");
        ReproduceReportChecks.AssertPlotWithText(dir.File("report/table1-fashion-mnist-smoke-char-lstm.png"), "effective epochs");

        var before = File.GetLastWriteTimeUtc(dir.File("runs/table1-smoke/mnistfc/adam/seed-1/checkpoint.bin"));
        (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("8 runs planned, 8 finished already, 0 to train", output);
        Assert.Equal(before, File.GetLastWriteTimeUtc(dir.File("runs/table1-smoke/mnistfc/adam/seed-1/checkpoint.bin")));
    }

    [Fact]
    public void AFolderHoldingAnotherExperimentIsRefusedBeforeAnythingTrains()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] common = ["reproduce", "table1", "--budget", "smoke", "--rows", "mnistfc", "--threads", "2", "--runs", dir.File("runs"), "--out", dir.File("report")];
        Assert.Equal(ExitCodes.Ok, Run([.. common, "--seeds", "1"]).Code);
        // Rewrite the stored configuration as if that run had used another learning rate.
        var summaryPath = dir.File("runs/table1-smoke/mnistfc/entropy-sgd/seed-1/summary.json");
        var summary = JsonNode.Parse(File.ReadAllText(summaryPath))!;
        summary["config"]!["optimizer_options"]!["learning_rate"] = 0.5;
        File.WriteAllText(summaryPath, summary.ToJsonString());
        var (code, output, err) = Run([.. common, "--seeds", "2"]);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("holds a run with other settings (optimizer_options.learning_rate: stored 0.5, requested 1)", err);
        Assert.DoesNotContain("training in", output);
        Assert.False(Directory.Exists(dir.File("runs/table1-smoke/mnistfc/adam/seed-2")));
    }

    [Fact]
    public void ARunFolderInUseByAnotherProcessIsNotTrainedTwice()
    {
        using var dir = new TempDir();
        using (RunFolders.Lock(dir.File("runs/table1-smoke/mnistfc/adam/seed-1")))
        {
            var (code, _, err) = Run("reproduce", "table1", "--budget", "smoke", "--rows", "mnistfc", "--seeds", "1", "--threads", "2",
                "--runs", dir.File("runs"), "--out", dir.File("report"));
            Assert.Equal(ExitCodes.Failure, code);
            Assert.Contains("is being trained by another process", err);
        }
    }

    [Fact]
    public void SgldBaselineSmokeSharesTheEntropySgdRunsWithTable1()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var (code, output, err) = Run("reproduce", "sgld-baseline", "--budget", "smoke", "--seeds", "1", "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.True(File.Exists(dir.File("runs/table1-smoke/lenet/entropy-sgd/seed-1/summary.json")));
        Assert.True(File.Exists(dir.File("runs/sgld-baseline-smoke/lenet/sgld-lr0.5-b0.33/seed-1/summary.json")));
        var text = File.ReadAllText(dir.File("report/sgld-baseline-smoke.md"));
        Assert.Contains("| LeNet | fashion-mnist | SGLD | 1 of 1 |", text);
        Assert.Contains("| LeNet | fashion-mnist | Entropy-SGD (L = 2) | 1 of 1 |", text);
        ReproduceReportChecks.AssertPlotWithText(dir.File("report/sgld-baseline-smoke-lenet.png"), "effective epochs");

        (code, output, _) = Run("reproduce", "table1", "--budget", "smoke", "--rows", "lenet", "--seeds", "1", "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Contains("2 runs planned, 1 finished already, 1 to train", output);
    }

    [Theory]
    [InlineData(new[] { "table1", "--rows", "mnistfc,resnet" }, "unknown Table 1 row 'resnet'")]
    [InlineData(new[] { "table1", "--rows", "mnistfc,mnistfc" }, "--rows names 'mnistfc' twice")]
    [InlineData(new[] { "table1", "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "table1", "--budget", "huge" }, "huge")]
    [InlineData(new[] { "table1", "--corpus", "/nonexistent/corpus.txt" }, "--corpus /nonexistent/corpus.txt: no such file")]
    [InlineData(new[] { "table1", "--cifar10-dir", "/nonexistent/cifar" }, "--cifar10-dir /nonexistent/cifar: no such folder")]
    [InlineData(new[] { "sgld-baseline", "--sgld-lr", "-1" }, "--sgld-lr must be a positive number, got -1")]
    [InlineData(new[] { "sgld-baseline", "--sgld-decay", "-0.5" }, "--sgld-decay must be zero or positive, got -0.5")]
    public void BadInputIsAUsageErrorThatSaysWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["reproduce", .. args, "--runs", dir.File("runs"), "--out", dir.File("report")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.False(Directory.Exists(dir.File("report")));
    }
}
