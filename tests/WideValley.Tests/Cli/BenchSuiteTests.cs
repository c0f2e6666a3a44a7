using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley bench` without a subcommand: the whole suite, run in-process in its quick form. No timing is asserted.</summary>
public class BenchSuiteTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static void AssertPositive(JsonNode? node, string key)
    {
        Assert.True(node?[key] is not null, $"missing '{key}' in {node?.ToJsonString()}");
        var value = (double)node![key]!;
        Assert.True(double.IsFinite(value) && value > 0, $"'{key}' = {value} is not a finite positive number");
    }

    [Fact]
    public void QuickSuitePrintsOneJsonObjectWithEverySectionAndWritesTheReport()
    {
        using var dir = new TempDir();
        var report = dir.File("results/bench.md");
        var (code, output, err) = Run("bench", "--quick", "--json", "--threads", "2", "--report", report);
        Assert.True(code == ExitCodes.Ok, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        var json = JsonNode.Parse(lines[0])!;
        Assert.Equal("suite", (string?)json["benchmark"]);
        Assert.True((bool)json["quick"]!);
        Assert.Contains("top 5", (string?)json["quick_settings"]);
        Assert.Equal($"widevalley bench --quick --json --threads 2 --report {report}", (string?)json["command"]);

        var machine = json["machine"]!;
        foreach (var key in new[] { "processors", "memory_total_bytes", "threads" }) AssertPositive(machine, key);
        Assert.Equal(2, (int)machine["threads"]!);
        foreach (var key in new[] { "os", "cpu_model", "vector_extensions", "dotnet", "torchsharp", "libtorch", "cpu_backend" })
            Assert.False(string.IsNullOrWhiteSpace((string?)machine[key]), $"machine.{key} is empty");
        Assert.StartsWith(".NET 10", (string)machine["dotnet"]!);
        var othersShare = (double)machine["other_processes_cpu_share"]!;
        Assert.InRange(othersShare, 0, 1);

        var optimizer = json["optimizer"]!.AsArray();
        Assert.Equal(new[] { "mnistfc 5", "mnistfc 20", "lenet 5", "lenet 20" }, optimizer.Select(o => $"{o!["model"]} {o["L"]}"));
        foreach (var o in optimizer)
        {
            Assert.Equal("optimizer", (string?)o!["benchmark"]);
            foreach (var key in new[] { "parameters", "sgd_step_ms", "sgd_single_step_median_ms", "entropy_sgd_step_ms", "ratio", "langevin_update_ms" })
                AssertPositive(o, key);
            Assert.Equal((double)o["entropy_sgd_step_ms"]! / ((int)o["L"]! * (double)o["sgd_step_ms"]!), (double)o["ratio"]!, tolerance: 0.002);
            Assert.Equal(4.0, (double)o["entropy_sgd_state_buffers"]!, 9);
            Assert.Equal(3, (int)o["rounds"]!);
        }

        var hessian = json["hessian"]!.AsArray();
        Assert.Equal(new[] { "mnistfc", "lenet" }, hessian.Select(h => (string?)h!["model"]));
        foreach (var h in hessian)
        {
            Assert.Equal("hessian", (string?)h!["benchmark"]);
            foreach (var key in new[] { "parameters", "grad_ms", "hvp_ms", "hvp_over_grad", "lanczos_hvps", "lanczos_seconds", "lambda_max" })
                AssertPositive(h, key);
            Assert.Equal(5, (int)h["top"]!);
            Assert.Equal(200, (int)h["samples"]!);
            Assert.True((bool)h["lanczos_converged"]!);
        }

        var data = json["data"]!;
        Assert.Equal("data", (string?)data["benchmark"]);
        foreach (var key in new[] { "images_per_second", "batch_ms", "dataloader_images_per_second", "speedup_over_dataloader", "samples", "batches_per_round" })
            AssertPositive(data, key);
        Assert.Equal(128, (int)data["batch_size"]!);
        if ((bool)data["real_data"]!)
        {
            Assert.StartsWith("fashion-mnist", (string?)data["data"]);
            AssertPositive(data, "load_seconds");
            AssertPositive(data, "load_first_seconds");
        }
        else
        {
            Assert.StartsWith("synthetic", (string?)data["data"]);
            Assert.Null(data["load_seconds"]);
            Assert.Null(data["load_first_seconds"]);
        }

        // Quick mode: the L = 20 ratios and HVP costs are checked, the Lanczos count (stated for the top 20) is not.
        var checks = json["checks"]!.AsArray();
        Assert.Equal(new[]
            {
                "optimizer mnistfc ratio", "optimizer lenet ratio", "optimizer mnistfc sam_ratio", "optimizer mnistfc asam_ratio",
                "optimizer lenet sam_ratio", "optimizer lenet asam_ratio", "hessian mnistfc hvp_over_grad", "hessian lenet hvp_over_grad",
            },
            checks.Select(c => $"{c!["benchmark"]} {c["model"]} {c["quantity"]}"));
        Assert.Equal(checks.Count(c => (bool)c!["met"]!), (int)json["targets_met"]!);
        Assert.Equal(8, (int)json["targets_checked"]!);

        // The report, and the JSON beside it: the same object as printed.
        var markdown = File.ReadAllText(report);
        foreach (var expected in new[]
                 {
                     "## Machine", "**Quick mode**", $"Command: `widevalley bench --quick --json --threads 2 --report {report}`",
                     "| model | parameters | L | sgd_step_ms | entropy_sgd_step_ms | ratio | target |",
                     "| model | parameters | grad_ms | hvp_ms | hvp_over_grad | target | lanczos_hvps | target |",
                     "| model | L row | two_sgd_steps_ms | sam_step_ms | sam_ratio | target | asam_step_ms | asam_ratio | target |",
                     "| batch | images/s (batcher) |", "| mnistfc | 1,867,786 | 20 |", "| lenet | 132,220 | 5 |",
                     "none (stated for L = 20)", "not checked (quick: not the top 20)", "[bench.json](bench.json)",
                 })
            Assert.Contains(expected, markdown);
        foreach (var check in checks)
            Assert.Contains($"<= {((double)check!["at_most"]!).ToString("0.###", CultureInfo.InvariantCulture)}: {((bool)check["met"]! ? "met" : "**missed**")}", markdown);
        Assert.Contains($"{(int)json["targets_met"]!} of 8 targets met", markdown);
        // The report prints the share to 0.1%; the JSON keeps 4 decimals of it.
        var shareRow = System.Text.RegularExpressions.Regex.Match(markdown, @"\| CPU used by other processes during the suite \| ([0-9.]+)% of the machine \|");
        Assert.True(shareRow.Success, "the machine table has no CPU-share row");
        Assert.InRange(double.Parse(shareRow.Groups[1].Value, CultureInfo.InvariantCulture), 100 * othersShare - 0.051, 100 * othersShare + 0.051);
        Assert.Contains(othersShare > 0.05 ? "The machine was shared with other work: other processes used" : "The machine was otherwise idle", markdown);
        Assert.True(JsonNode.DeepEquals(json, JsonNode.Parse(File.ReadAllText(dir.File("results/bench.json")))));
        Assert.Empty(dir.Leftovers());
        Assert.Contains("report: " + report, err);
    }

    [Fact]
    public void TextModePrintsEachResultAsAPlainLine()
    {
        var (code, output, err) = Run("bench", "--quick", "--models", "small-mnistfc", "--data", "synthetic", "--threads", "2", "--no-report");
        Assert.True(code == ExitCodes.Ok, err);
        foreach (var expected in new[]
                 {
                     "optimizer: small-mnistfc, L = 5, batch 128, 1 warm-up + 3 timed rounds", "optimizer: small-mnistfc, L = 20,", "ratio",
                     "hessian: small-mnistfc, 200 samples", "small-mnistfc: gradient", "batcher (randperm + index_select)",
                     "DataLoader over a TensorDataset",
                     "targets met: 0 of 0", // small-mnistfc has no stated targets
                     "no report written: --no-report",
                 })
            Assert.Contains(expected, output);
        Assert.DoesNotContain("{", output);
    }

    [Theory]
    [InlineData(new[] { "--models", "resnet" }, "--models: 'resnet' is not a network the benchmarks can run; expected a comma-separated list of: mnistfc, lenet")]
    [InlineData(new[] { "--models", "char-lstm" }, "'char-lstm' is not a network the benchmarks can run")]
    [InlineData(new[] { "--models", "mnistfc,,lenet" }, "--models mnistfc,,lenet: empty name in the list")]
    [InlineData(new[] { "--models", "lenet,lenet" }, "--models names a network twice: lenet,lenet")]
    [InlineData(new[] { "--rounds", "2" }, "--rounds must be at least 3 for a median, got 2")]
    [InlineData(new[] { "--data", "cifar10" }, "--data cifar10: expected one of auto, fashion-mnist, synthetic")]
    [InlineData(new[] { "--report", "REPORT.json" }, "expected a Markdown file name ending in .md")]
    [InlineData(new[] { "--report", "REPORT.md", "--no-report" }, "contradict each other")]
    [InlineData(new[] { "--threads", "-1" }, "--threads must be 0 (libtorch's default) or positive")]
    public void BadInputExitsWithCode2BeforeMeasuringAndWritesNothing(string[] args, string expected)
    {
        using var dir = new TempDir();
        var withPaths = args.Select(a => a.StartsWith("REPORT", StringComparison.Ordinal) ? dir.File(a) : a).ToArray();
        var report = args.Contains("--report") ? Array.Empty<string>() : new[] { "--report", dir.File("bench.md") };
        var (code, output, err) = Run(["bench", "--json", .. withPaths, .. report]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.Empty(output);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void MissingFashionMnistThatWasAskedForFailsBeforeMeasuring()
    {
        using var dir = new TempDir();
        var (code, output, err) = Run("bench", "--data", "fashion-mnist", "--data-dir", dir.File("nowhere"), "--report", dir.File("bench.md"));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains(dir.File("nowhere"), err);
        Assert.DoesNotContain("optimizer:", output);
        Assert.False(File.Exists(dir.File("bench.md")));
    }

    [Fact]
    public void DataSubcommandPrintsTheThroughputWithTheSuiteKeys()
    {
        var (code, output, err) = Run("bench", "data", "--data", "synthetic", "--rounds", "3", "--dataloader-batches", "0", "--threads", "2", "--json");
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        Assert.Equal("data", (string?)json["benchmark"]);
        Assert.False((bool)json["real_data"]!);
        AssertPositive(json, "images_per_second");
        Assert.Equal(60_000 / 128, (int)json["batches_per_round"]!);
        Assert.Null(json["dataloader_images_per_second"]);
        Assert.Null(json["speedup_over_dataloader"]);
    }
}
