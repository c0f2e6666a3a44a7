using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Experiments;
using WideValley.Tests.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley reproduce hessian-universality`, run in-process at the smoke budget.</summary>
public sealed class ReproduceHessianUniversalityTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static readonly string[] Titles = ["small-LeNet", "small-mnistfc", "char-LSTM (small)", "All-CNN-BN"];

    [Fact]
    public void SmokeRunReportsEveryNetworkAndASecondRunTrainsAndMeasuresNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var corpus = dir.WriteText("corpus.txt", HessianUniversalityTests.SourceText(120));
        string[] args = ["reproduce", "hessian-universality", "--budget", "smoke", "--corpus", corpus, "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("out")];
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("3 trainings planned, 0 finished already, 3 to train; 4 measurements planned, 0 finished already, 4 to run", output);
        Assert.Contains("allcnn: skipped: no CIFAR-10 folder was given", output);

        var md = File.ReadAllText(dir.File("out/hessian-universality-smoke.md"));
        foreach (var title in Titles) Assert.Contains($"| {title} |", md);
        Assert.Contains("A smoke run", md);
        Assert.Contains("| All-CNN-BN | cifar10 | | skipped: no CIFAR-10 folder was given", md);
        // Every measured row has a number in each statistic column: fractions as percentages, extremes as numbers.
        foreach (var title in Titles[..3])
        {
            var cells = md.Split('\n').First(l => l.StartsWith($"| {title} |", StringComparison.Ordinal)).Split('|').Select(c => c.Trim()).ToArray();
            foreach (var fraction in cells[7..11].Append(cells[13]).Append(cells[14]).Append(cells[15]))
                Assert.InRange(double.Parse(fraction.TrimEnd('%'), CultureInfo.InvariantCulture), 0, 100);
            var lambdaMax = double.Parse(cells[11], CultureInfo.InvariantCulture);
            var lambdaMin = double.Parse(cells[12], CultureInfo.InvariantCulture);
            Assert.True(lambdaMax > 0 && lambdaMax >= lambdaMin, $"{title}: {cells[11]} {cells[12]}");
        }

        var json = JsonNode.Parse(File.ReadAllText(dir.File("out/hessian-universality-smoke.json")))!;
        Assert.Equal("smoke", (string?)json["budget"]);
        var networks = json["networks"]!.AsArray();
        Assert.Equal(4, networks.Count);
        foreach (var network in networks.Take(3))
        {
            Assert.False((bool)network!["skipped"]!);
            Assert.Null(network["pending"]);
            foreach (var t in new[] { "1e-05", "0.0001", "0.001", "0.01" })
                Assert.InRange((double)network["fraction_abs_below"]![t]!, 0, 1);
            Assert.True(double.IsFinite((double)network["lambda_max"]!));
            var plot = dir.File("out/" + (string)network["plot"]!);
            ImageChecks.AssertPngFile(plot, 1500, 520);
            Assert.Contains(ImageChecks.Texts(ImageChecks.AssertSvgFile(Path.ChangeExtension(plot, ".svg"), 1500, 520)),
                t => t.Contains((string)network["title"]!, StringComparison.Ordinal));
        }
        Assert.Equal(32_640, (long)networks[2]!["params"]!);
        Assert.Equal("lines", (string?)networks[2]!["sample_unit"]);
        Assert.True((bool)networks[3]!["skipped"]!);
        Assert.Empty(dir.Leftovers());

        // Everything is on disk: the same command trains and measures nothing, and touches no run or measurement.
        var kept = Directory.GetFiles(dir.File("runs"), "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith("checkpoint.bin", StringComparison.Ordinal) || f.EndsWith("hessian.json", StringComparison.Ordinal))
            .ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Assert.Equal(3 + 4, kept.Count);
        var again = Run(args);
        Assert.True(again.Code == ExitCodes.Ok, again.Err);
        Assert.Contains("3 trainings planned, 3 finished already, 0 to train; 4 measurements planned, 4 finished already, 0 to run", again.Out);
        Assert.DoesNotContain("measuring", again.Out);
        Assert.All(kept, kv => Assert.Equal(kv.Value, File.GetLastWriteTimeUtc(kv.Key)));
        // The same report, but for the load averages of the invocation that did the work.
        static string[] WithoutMachine(string text) => text.Split('\n').Where(l => !l.StartsWith("Machine:", StringComparison.Ordinal)).ToArray();
        var rewritten = File.ReadAllText(dir.File("out/hessian-universality-smoke.md"));
        Assert.Equal(WithoutMachine(md), WithoutMachine(rewritten));
        Assert.Contains("after the 7 training and measurement steps this invocation ran", md);
        Assert.DoesNotContain("load average", rewritten);

        // A measurement made with other settings is refused by name, not overwritten.
        var stored = Path.Combine(dir.File("runs"), "hessian-universality-smoke", "small-mnistfc", "hessian-exact", "hessian.json");
        var changed = JsonNode.Parse(File.ReadAllText(stored))!;
        changed["samples"] = 32;
        File.WriteAllText(stored, changed.ToJsonString());
        var refused = Run(args);
        Assert.Equal(ExitCodes.Failure, refused.Code);
        Assert.Contains("holds a measurement (hessian --method exact) with other settings (samples: stored 32, wanted 64)", refused.Err);
        Assert.Contains(Path.GetDirectoryName(stored)!, refused.Err);
    }

    [Theory]
    [InlineData("unknown network 'resnet'", "--networks", "small-lenet,resnet")]
    [InlineData("--corpus {dir}/missing.txt: no such file", "--corpus", "{dir}/missing.txt")]
    [InlineData("--cifar10-dir {dir}/nowhere: no such folder", "--cifar10-dir", "{dir}/nowhere")]
    [InlineData("Argument 'huge' not recognized", "--budget", "huge")]
    [InlineData("--threads must be 0 (libtorch's default) or positive, got -1", "--threads", "-1")]
    public void BadInputExitsWithCode2AndWritesNothing(string expected, params string[] options)
    {
        using var dir = new TempDir();
        string Fill(string s) => s.Replace("{dir}", dir.Path, StringComparison.Ordinal);
        var (code, _, err) = Run(["reproduce", "hessian-universality", .. options.Select(Fill), "--runs", dir.File("runs"), "--out", dir.File("out")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(Fill(expected), err);
        Assert.False(Directory.Exists(dir.File("runs")));
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void AllCnnGetsItsDiagonalFisherWhenCifarIsGiven()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var cifar = dir.File("cifar");
        // 40 training images: one step of All-CNN-BN, and its smoke Fisher's 4 minibatches of 8.
        WriteCifar(cifar, imagesPerFile: 8);
        var (code, output, err) = Run("reproduce", "hessian-universality", "--budget", "smoke", "--networks", "allcnn", "--cifar10-dir", cifar,
            "--threads", "2", "--runs", dir.File("runs"), "--out", dir.File("out"));
        Assert.True(code == ExitCodes.Ok, err + output);
        var network = JsonNode.Parse(File.ReadAllText(dir.File("out/hessian-universality-smoke.json")))!["networks"]![0]!;
        Assert.Equal("diag-fisher", (string?)network["method"]);
        Assert.Equal(32, (long)network["samples"]!);
        Assert.Equal("body.conv9", (string?)network["parameters_measured"]);
        Assert.Equal(192 * 10 + 10, (long)network["eigenvalue_count"]!);
        // A variance is never negative.
        Assert.True((double)network["lambda_min"]! >= 0);
        Assert.Equal(0.0, (double)network["negative_fraction"]!);
        ImageChecks.AssertPngFile(dir.File("out/hessian-universality-smoke-allcnn.png"), 1500, 520);
        Assert.Contains("diagonal Fisher has no negative entries", File.ReadAllText(dir.File("out/hessian-universality-smoke.md")));
    }

    /// <summary>A CIFAR-10 binary folder of random images: five training files and a test file.</summary>
    static void WriteCifar(string folder, int imagesPerFile)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(5);
        byte[] File_(int count)
        {
            var bytes = new byte[count * WideValley.Data.Cifar10.RecordBytes];
            random.NextBytes(bytes);
            for (var i = 0; i < count; i++) bytes[i * WideValley.Data.Cifar10.RecordBytes] = (byte)(i % 10);
            return bytes;
        }
        foreach (var name in WideValley.Data.Cifar10.TrainFiles) File.WriteAllBytes(Path.Combine(folder, name), File_(imagesPerFile));
        File.WriteAllBytes(Path.Combine(folder, WideValley.Data.Cifar10.TestFile), File_(imagesPerFile));
    }
}
