using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Cli.Commands;
using WideValley.Experiments;
using WideValley.Tests.Distributed;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>
/// `widevalley reproduce parle`: end to end at the smoke budget under `mpirun -np 3` (the report's sections, a rerun
/// that trains nothing, a folder of another replica count refused), the refusals before anything runs (exit code 2),
/// and --report-only in one process.
/// </summary>
public class ParleCommandTests(ITestOutputHelper output)
{
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(15);

    /// <summary>`mpirun -np K widevalley ARGS` as bench distributed launches its ranks (a missing mpirun fails).</summary>
    (int Code, string Out, string Err) UnderMpi(int ranks, params string[] args)
    {
        var run = MpiJob.Run(MpiJob.Mpirun(), [.. BenchDistributedCommand.LauncherArguments(ranks), .. BenchDistributedCommand.SelfCommand(), .. args], Timeout, output);
        return (run.ExitCode, run.Output, run.Errors);
    }

    [Fact]
    public void SmokeUnderMpiWritesTheReportAndARerunTrainsNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "parle", "--budget", "smoke", "--seeds", "1", "--fashion-mnist-dir", TestMachine.FashionMnistFolder,
            "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, text, err) = UnderMpi(3, args);
        Assert.True(code == ExitCodes.Ok, err + text);
        Assert.Contains("parle: 3 runs planned, 0 finished already, 3 to train", text);
        Assert.Contains("LeNet (Fashion-MNIST): test error Parle ", text);
        Assert.Contains("All-CNN-BN (CIFAR-10): skipped (no CIFAR-10 folder", text);
        Assert.Contains("verdict: faster not judged, error not judged", text);

        var md = dir.File("report/parle-smoke.md");
        var report = File.ReadAllText(md);
        Assert.Contains("mpirun -np 3 widevalley reproduce parle --budget smoke --seeds 1", report);
        Assert.Contains("converges 2–4x faster than a data-parallel implementation of SGD", report);
        Assert.Contains("**Protocol (our design).**", report);
        Assert.Contains("A smoke run", report);
        Assert.Contains("| LeNet (Fashion-MNIST) | Parle |", report);
        Assert.Contains("| LeNet (Fashion-MNIST) | data-parallel SGD |", report);
        Assert.Contains("| LeNet (Fashion-MNIST) | Elastic-SGD |", report);
        Assert.Contains("| LeNet (Fashion-MNIST) | not judged (smoke budget) | not judged (smoke budget) |", report);
        Assert.Contains("## All-CNN-BN (CIFAR-10)", report);
        ReproduceReportChecks.AssertImagesExist(md);
        Assert.True(File.Exists(dir.File("report/parle-smoke-lenet-epochs.png")));
        Assert.True(File.Exists(dir.File("report/parle-smoke-lenet-wall.png")));

        var json = ReproduceReportChecks.ReadJson(dir.File("report/parle-smoke.json"));
        Assert.Equal(3, json["replicas"]!.GetValue<int>());
        var lenet = json["networks"]!.AsArray().Single(n => (string)n!["network"]! == "lenet")!;
        var parle = lenet["arms"]!["parle"]!;
        var dp = lenet["arms"]!["data-parallel"]!;
        foreach (var arm in new[] { parle, dp, lenet["arms"]!["elastic"]! })
        {
            Assert.Equal(1, arm["seeds_finished"]!.GetValue<int>());
            Assert.InRange(arm["test_error_mean"]!.GetValue<double>(), 0, 100);
            var run = arm["runs"]!.AsArray().Single()!;
            // Equal cost: 50 gradient evaluations of 128 images on each of 3 ranks over 9,600 images = 2 effective epochs
            // (Parle's diagnostic gradient every 10th outer step adds one evaluation).
            Assert.InRange(run["effective_epochs"]!.GetValue<double>(), 2 - 1e-9, 2 + 3 * 128.0 / 9_600 + 1e-9);
            Assert.True(run["curve"]!.AsArray().Count >= 2);
        }
        Assert.Equal("parle", (string?)parle["distributed"]);
        Assert.Equal("data-parallel", (string?)dp["distributed"]);
        Assert.Null(json["networks"]!.AsArray().Single(n => (string)n!["network"]! == "allcnn")!["arms"]);

        // Only rank 0 wrote: one summary, whose configuration names the mode.
        var folder = Path.Combine(dir.File("runs"), "parle-smoke", "lenet", "k3", "parle", "seed-1");
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "summary.json")))!;
        Assert.Equal("parle", (string?)summary["config"]!["distributed"]);
        var written = File.GetLastWriteTimeUtc(Path.Combine(folder, "summary.json"));

        var (again, secondText, secondErr) = UnderMpi(3, args);
        Assert.True(again == ExitCodes.Ok, secondErr + secondText);
        Assert.Contains("parle: 3 runs planned, 3 finished already, 0 to train", secondText);
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(folder, "summary.json")));

        // A finished run of 3 ranks is refused to a job that would count 2.
        var plan = ParleReproduction.Plan(new ParleRunSettings
        {
            Budget = Budget.Smoke, Seeds = 1, Networks = ["lenet"], RunsRoot = dir.File("runs"), OutDir = dir.File("report"),
            FashionMnistDir = TestMachine.FashionMnistFolder, Threads = 1, CommandLine = "", Machine = "",
        });
        var e = Assert.Throws<InvalidDataException>(() => ParleReproduction.Inspect(plan[0], 2));
        Assert.Contains("holds a run of 3 ranks; this job has 2", e.Message);
        Assert.Contains("mpirun -np 3", e.Message);
    }

    [Fact]
    public void AJobOfAnotherSizeThanTheReplicasIsAUsageError()
    {
        using var dir = new TempDir();
        var (code, text, err) = UnderMpi(2, "reproduce", "parle", "--budget", "smoke", "--seeds", "1", "--fashion-mnist-dir", TestMachine.FashionMnistFolder,
            "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--replicas 3 needs an MPI job of 3 ranks (mpirun -np 3); this job has 2", err + text);
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    [Theory]
    [InlineData(new[] { "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "--networks", "lenet,resnet" }, "--networks: unknown network 'resnet'")]
    [InlineData(new[] { "--arms", "parle,elastic" }, "--arms must include data-parallel")]
    [InlineData(new[] { "--replicas", "1" }, "--replicas must be at least 2")]
    [InlineData(new[] { "--budget", "huge" }, "huge")]
    [InlineData(new[] { "--fashion-mnist-dir", "/nonexistent/fashion" }, "--fashion-mnist-dir /nonexistent/fashion: no such folder")]
    [InlineData(new[] { "--budget", "smoke" }, "mpirun -np 3 widevalley reproduce parle")]
    public void BadInputIsAUsageErrorThatSaysWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run(["reproduce", "parle", .. args, "--runs", dir.File("runs"), "--out", dir.File("report")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.False(Directory.Exists(dir.File("report")));
        Assert.False(Directory.Exists(dir.File("runs")));
    }

    [Fact]
    public void ReportOnlyRunsInOneProcessAndShowsEveryRunPending()
    {
        using var dir = new TempDir();
        var (code, text, err) = InProcessCli.Run("reproduce", "parle", "--budget", "small", "--seeds", "2", "--report-only",
            "--runs", dir.File("runs"), "--out", dir.File("report"));
        Assert.True(code == ExitCodes.Ok, err + text);
        Assert.Contains("parle: 6 runs planned, 0 finished already, 6 to report as pending (--report-only)", text);
        var report = File.ReadAllText(dir.File("report/parle-small.md"));
        Assert.Contains("**2 seed(s) not finished yet.**", report);
        Assert.Contains("not judged: runs missing", report);
        Assert.False(Directory.Exists(dir.File("runs")));
    }
}
