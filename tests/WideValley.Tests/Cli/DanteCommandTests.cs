using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley reproduce dante` end to end at the smoke budget, its refusals, and `widevalley bench dante` on a tiny configuration.</summary>
public class DanteCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Fact]
    public void SmokeWritesAWellFormedReportAndASecondRunTrainsNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "dante", "--budget", "smoke", "--nets", "mlp1-grelu", "--seeds", "2", "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("6 runs planned, 0 finished already, 6 to train", output);
        Assert.Contains("mlp1-grelu: test error DANTE ", output);
        Assert.Contains("verdict: ", output);

        var md = dir.File("report/dante-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("widevalley reproduce dante --seeds 2 --budget smoke --nets mlp1-grelu", text);
        Assert.Contains("| mlp1-grelu |", text);
        Assert.Contains("competitive with backprop both in terms of quality of the solution, as well as training speed", text);
        Assert.Contains("**our design**", text);
        Assert.Contains("A smoke run", text);
        ReproduceReportChecks.AssertImagesExist(md);
        Assert.True(File.Exists(dir.File("report/dante-smoke-mlp1-grelu.png")));

        var json = ReproduceReportChecks.ReadJson(dir.File("report/dante-smoke.json"));
        Assert.Equal("dante", json["experiment"]!.GetValue<string>());
        var network = Assert.Single(json["networks"]!.AsArray())!;
        Assert.Equal("mlp1-grelu", network["network"]!.GetValue<string>());
        foreach (var arm in new[] { "dante", "sgd", "adam" })
        {
            Assert.Equal(arm, network["arms"]![arm]!["optimizer"]!.GetValue<string>());
            Assert.Equal(2, network["arms"]![arm]!["seeds_finished"]!.GetValue<int>());
            Assert.InRange(network["arms"]![arm]!["test_error_mean"]!.GetValue<double>(), 0, 100);
            Assert.NotNull(network["arms"]![arm]!["test_error_std"]);
            Assert.True(network["arms"]![arm]!["seconds_mean"]!.GetValue<double>() > 0);
        }
        Assert.Contains(network["verdict"]!.GetValue<string>(), new[] { "agrees", "partly", "disagrees" });
        Assert.Contains(json["verdict"]!.GetValue<string>(), new[] { "agrees", "partly", "disagrees" });
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("runs"), "dante-smoke", "mlp1-grelu", "dante", "seed-1", "summary.json")))!;
        Assert.Equal("dante", (string?)summary["config"]!["optimizer"]);
        Assert.Equal("mlp1-grelu", (string?)summary["config"]!["model"]);

        var (again, secondOutput, secondErr) = Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Contains("6 runs planned, 6 finished already, 0 to train", secondOutput);
    }

    [Theory]
    [InlineData(new[] { "--nets", "mlp1-relu,resnet" }, "--nets: unknown network 'resnet'")]
    [InlineData(new[] { "--nets", "mlp1-relu,mlp1-relu" }, "--nets: network 'mlp1-relu' is given twice")]
    [InlineData(new[] { "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "--dante-lr", "0" }, "--dante-lr must be a positive number, got 0")]
    [InlineData(new[] { "--budget", "huge" }, "huge")]
    [InlineData(new[] { "--fashion-mnist-dir", "/nonexistent/fashion" }, "--fashion-mnist-dir /nonexistent/fashion: no such folder")]
    public void BadInputIsAUsageErrorThatSaysWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["reproduce", "dante", .. args, "--runs", dir.File("runs"), "--out", dir.File("report")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.False(Directory.Exists(dir.File("report")));
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    [Fact]
    public void MissingDataExitsWithCode2BeforeAnythingRuns()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("empty"));
        var (code, _, err) = Run("reproduce", "dante", "--budget", "smoke", "--fashion-mnist-dir", dir.File("empty"),
            "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(dir.File("empty"), err);
        Assert.False(Directory.Exists(dir.File("report")));
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    [Fact]
    public void TheBenchTimesASweepPerRoundAndWritesItsReport()
    {
        using var dir = new TempDir();
        var report = dir.File("results/bench-dante.md");
        var (code, output, err) = Run("bench", "dante", "--models", "mlp1-sigmoid,mlp2-grelu", "--data", "synthetic", "--train-samples", "320",
            "--batch-size", "64", "--rounds", "3", "--warmup", "0", "--threads", "1", "--json", "--report", report);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Equal("dante", (string?)json["benchmark"]);
        var rows = json["rows"]!.AsArray();
        Assert.Equal(new[] { ("mlp1-sigmoid", 2, 5L), ("mlp2-grelu", 3, 5L) },
            rows.Select(r => ((string)r!["model"]!, (int)r["blocks"]!, (long)r["steps_per_epoch"]!)));
        foreach (var row in rows)
        {
            var sgd = row!["sgd_epoch_ms_all"]!.AsArray().Select(t => (double)t!).ToArray();
            var dante = row["dante_epoch_ms_all"]!.AsArray().Select(t => (double)t!).ToArray();
            Assert.Equal(3, sgd.Length);
            Assert.Equal(3, dante.Length);
            Assert.Equal((int)row["blocks"]!, row["dante_block_epoch_ms"]!.AsArray().Count);
            var ratios = dante.Zip(sgd, (d, s) => d / s).Order().ToArray();
            Assert.Equal(ratios[1], (double)row["paired_ratio"]!, 1e-9);
            Assert.Equal(sgd.Order().ElementAt(1), (double)row["sgd_epoch_ms"]!, 1e-9);
        }
        Assert.Equal(1, (int)json["threads"]!);
        var text = File.ReadAllText(report);
        Assert.Contains("| mlp2-grelu |", text);
        Assert.Contains("widevalley bench dante --models mlp1-sigmoid,mlp2-grelu", text);
        Assert.True(File.Exists(Path.ChangeExtension(report, ".json")));

        var bad = Run("bench", "dante", "--models", "char-lstm", "--data", "synthetic");
        Assert.Equal(ExitCodes.Usage, bad.Code);
        Assert.Contains("--models char-lstm: a language model", bad.Err);
        Assert.Equal(ExitCodes.Usage, Run("bench", "dante", "--rounds", "2").Code);
    }
}
