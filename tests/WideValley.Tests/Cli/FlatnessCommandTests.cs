using System.Text;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Landscape.Flatness;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Cli;

/// <summary>
/// `widevalley flatness` end to end on the tiny conv net of Fixtures/torchscript (2,674 parameters, 64 samples) at the
/// quick budget: every measure in the report and its JSON twin, a rerun that measures nothing, a changed weights
/// file that is measured again; and every bad input refused with exit code 2 before any measurement.
/// </summary>
public sealed class FlatnessCommandTests
{
    internal static readonly string Factory = $"{Path.Combine(AppContext.BaseDirectory, "test-factory", "WideValley.TestFactory.dll")}:WideValley.TestFactory.TinyConvNetFactory";
    internal static readonly string[] FixtureData = ["--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy")];

    private static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run([.. args, "--threads", "1"]);

    /// <summary>The stored measurement files under OUT/.flatness and their last-write times.</summary>
    private static Dictionary<string, DateTime> StoredFiles(string outDir) =>
        Directory.GetFiles(Path.Combine(outDir, FlatnessRunner.StoreFolder), "*.json", SearchOption.AllDirectories)
            .ToDictionary(f => f, File.GetLastWriteTimeUtc);

    [Fact]
    public void TwoModelsAtTheQuickBudgetGiveEveryMeasureThenARerunMeasuresNothingAndAChangedFileIsMeasuredAgain()
    {
        using var dir = new TempDir();
        using (var twin = TinyConvNet.WithFixtureWeights()) twin.save(dir.File("a.bin"));
        using (var twin = TinyConvNet.WithFixtureWeights())
        {
            using (no_grad())
                foreach (var p in twin.parameters()) p.mul_(0.5);
            twin.save(dir.File("b.bin"));
        }
        var outDir = dir.File("report");
        string[] command = ["flatness", dir.File("a.bin"), dir.File("b.bin"), "--model-factory", Factory, .. FixtureData, "--budget", "quick", "--out", outDir];

        var (code, output, err) = Run(command);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}\n{output}");
        Assert.Contains("estimated cost", output);
        Assert.Contains("hessian-trace", output);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "flatness.json")))!.AsObject();
        var models = json["models"]!.AsArray();
        Assert.Equal(2, models.Count);
        foreach (var model in models)
        {
            var measured = model!["measurements"]!.AsArray().Select(m => (string)m!["measure"]!).ToList();
            Assert.Equal(FlatnessMeasures.All.Select(m => m.Name), measured);
            // The cost stated up front bounds the work each measure did (the estimate is an upper bound: Lanczos may stop early).
            foreach (var m in model["measurements"]!.AsArray())
            {
                var estimate = m!["estimate"]!;
                var used = m["result"]!["used"]!;
                foreach (var unit in new[] { "hvps", "forward_passes", "gradients", "sample_gradients" })
                    Assert.True((double)used[unit]! <= (double)estimate[unit]! + 1e-9, $"{m["measure"]}: {unit} used {used[unit]}, estimated {estimate[unit]}");
            }
        }
        var ids = models.Select(m => (string)m!["id"]!).ToList();
        Assert.NotEqual(ids[0], ids[1]);
        Assert.Single(json["interpolations"]!.AsArray());
        var comparison = json["comparison"]!.AsArray();
        foreach (var name in new[] { "train_loss", "lambda_max", "lambda_min", "hessian_trace", "fraction_abs_below_0.0001", "fraction_abs_below_0.1", "gauss_newton_trace",
                     "fisher_trace", "local_entropy_langevin_gamma_1000", "local_entropy_direct_gamma_10000", "random_slice_rise", "eigenvector_slice_rise", "surface_rise" })
            Assert.Contains(comparison, r => (string)r!["name"]! == name);
        var trace = comparison.Single(r => (string)r!["name"]! == "hessian_trace")!;
        Assert.Contains("standard errors", (string)trace["verdict"]!);
        Assert.Contains("(no standard error)", (string)comparison.Single(r => (string)r!["name"]! == "lambda_max")!["verdict"]!);
        Assert.True((bool)json["rescaling"]!["slice-random"]!["invariant"]!);
        Assert.False((bool)json["rescaling"]!["hessian-trace"]!["invariant"]!);

        var markdown = File.ReadAllText(Path.Combine(outDir, "flatness.md"));
        foreach (var measure in FlatnessMeasures.All) Assert.Contains(measure.Title, markdown);
        Assert.Contains("| measure | ReLU-rescaling invariant | a.bin | b.bin |", markdown);
        Assert.Contains("Invariance to ReLU rescaling", markdown);
        Assert.Contains("## Interpolations", markdown);
        foreach (var csv in new[] { "model1-hessian-trace-layers", "model2-hessian-density-density", "model1-slice-random-curves", "model2-surface-grid", "interpolation-1" })
            Assert.True(File.Exists(Path.Combine(outDir, "csv", csv + ".csv")), csv);
        Assert.StartsWith("name,parameters,trace,standard_error", File.ReadLines(Path.Combine(outDir, "csv", "model1-hessian-trace-layers.csv")).First());
        foreach (var file in json["files"]!.AsArray()) Assert.True(File.Exists(Path.Combine(outDir, (string)file!)), (string?)file);

        // The rerun measures nothing: every stored file keeps its time, and the report is written again from them.
        var before = StoredFiles(outDir);
        Assert.Equal(2 * FlatnessMeasures.All.Count + 1, before.Count);
        var again = Run(command);
        Assert.True(again.Code == ExitCodes.Ok, again.Err);
        Assert.Equal(before, StoredFiles(outDir));
        Assert.DoesNotContain("done in", again.Out);
        Assert.Contains("already measured", again.Out);

        // A changed weights file has another identity: it (and its interpolation) are measured; a.bin's files are untouched.
        using (var twin = TinyConvNet.WithFixtureWeights())
        {
            using (no_grad())
                foreach (var p in twin.parameters()) p.mul_(0.75);
            twin.save(dir.File("b.bin"));
        }
        var third = Run(command);
        Assert.True(third.Code == ExitCodes.Ok, third.Err);
        var after = StoredFiles(outDir);
        foreach (var (file, time) in before) Assert.Equal(time, after[file]);
        Assert.Equal(before.Count + FlatnessMeasures.All.Count + 1, after.Count);
        var rerun = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "flatness.json")))!["models"]!.AsArray();
        Assert.Equal(ids[0], (string)rerun[0]!["id"]!);
        Assert.NotEqual(ids[1], (string)rerun[1]!["id"]!);
        Assert.All(rerun[0]!["measurements"]!.AsArray(), m => Assert.True((bool)m!["reused"]!));
        Assert.All(rerun[1]!["measurements"]!.AsArray(), m => Assert.False((bool)m!["reused"]!));
    }

    /// <summary>A NumPy .npy file (version 1.0) of the given type, shape and raw little-endian data.</summary>
    private static string WriteNpy(string path, string descr, long[] shape, byte[] data)
    {
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        var total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var stream = File.Create(path);
        stream.Write([0x93, .. Encoding.ASCII.GetBytes("NUMPY"), 1, 0]);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(data);
        return path;
    }

    private static string Labels(string path, int count, int classes) =>
        WriteNpy(path, "<i8", [count], Enumerable.Range(0, count).SelectMany(i => BitConverter.GetBytes((long)(i % classes))).ToArray());

    [Fact]
    public void AModelWhoseOutputsDoNotFitTheLabelsIsRefusedBeforeMeasuring()
    {
        using var dir = new TempDir();
        // The fixture network gives 10 logits; these labels need 12 classes.
        var labels = Labels(dir.File("labels12.npy"), 64, 12);
        var (code, _, err) = Run("flatness", Fixture("tiny_convnet.pt"), "--inputs", Fixture("inputs.npy"), "--labels", labels, "--budget", "quick", "--out", dir.File("out"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("10 outputs per sample", err);
        Assert.Contains("12 classes", err);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void DataOfAnotherShapeThanTheModelsInputIsRefusedBeforeMeasuring()
    {
        using var dir = new TempDir();
        // 20 x 20 images for a network made for 28 x 28.
        var inputs = WriteNpy(dir.File("small.npy"), "<f4", [8, 1, 20, 20], new byte[8 * 20 * 20 * 4]);
        var labels = Labels(dir.File("labels.npy"), 8, 10);
        var (code, _, err) = Run("flatness", Fixture("tiny_convnet.pt"), "--inputs", inputs, "--labels", labels, "--budget", "quick", "--out", dir.File("out"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("[1, 20, 20]", err);
        Assert.Contains("do not fit the network's input", err);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Theory]
    [InlineData("--slice-radius", "0", "--slice-radius must be positive")]
    [InlineData("--slice-radius", "-1", "--slice-radius must be positive")]
    [InlineData("--scopes", "100,0", "every scope gamma must be positive")]
    [InlineData("--scopes", "-5", "every scope gamma must be positive")]
    [InlineData("--samples", "0", "--samples must be at least 1")]
    [InlineData("--budget", "huge", "--budget must be one of quick, standard, thorough")]
    [InlineData("--measures", "hessian-trace,flatness-of-soul", "flatness-of-soul is not a measure")]
    public void NonPositiveBudgetsAndRadiiAreRefusedBeforeAnythingIsRead(string option, string value, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["flatness", Fixture("tiny_convnet.pt"), .. FixtureData, option == "--budget" ? "--seed" : "--budget", option == "--budget" ? "1" : "quick",
            option, value, "--out", dir.File("out")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void AnOutputFolderThatIsAFileIsRefusedAndAWrittenReportIsNotTouchedByAFailedRun()
    {
        using var dir = new TempDir();
        var file = dir.File("taken");
        File.WriteAllText(file, "not a folder");
        var (code, _, err) = Run(["flatness", Fixture("tiny_convnet.pt"), .. FixtureData, "--budget", "quick", "--out", file]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("is a file", err);
        Assert.Equal("not a folder", File.ReadAllText(file));

        // A finished report (two measures only), then a run that fails on its input: the report stays byte for byte.
        var outDir = dir.File("report");
        var first = Run(["flatness", Fixture("tiny_convnet.pt"), .. FixtureData, "--budget", "quick", "--measures", "slice-random,loss", "--out", outDir]);
        Assert.True(first.Code == ExitCodes.Ok, first.Err);
        Assert.Equal(["loss.json", "slice-random.json"], StoredFiles(outDir).Keys.Select(Path.GetFileName).Order().ToArray());
        var markdown = File.ReadAllBytes(Path.Combine(outDir, "flatness.md"));
        var json = File.ReadAllBytes(Path.Combine(outDir, "flatness.json"));
        var labels = Labels(dir.File("labels12.npy"), 64, 12);
        var failed = Run("flatness", Fixture("tiny_convnet.pt"), "--inputs", Fixture("inputs.npy"), "--labels", labels, "--budget", "quick", "--out", outDir);
        Assert.Equal(ExitCodes.Usage, failed.Code);
        Assert.Equal(markdown, File.ReadAllBytes(Path.Combine(outDir, "flatness.md")));
        Assert.Equal(json, File.ReadAllBytes(Path.Combine(outDir, "flatness.json")));
        // No temporary file is left beside them.
        Assert.Equal(["flatness.html", "flatness.json", "flatness.md"], Directory.GetFiles(outDir).Select(Path.GetFileName).Order().ToArray());
    }
}
