using System.Globalization;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using WideValley.Cli;
using WideValley.Tests.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>
/// Two tiny small-mnistfc runs on real Fashion-MNIST (500 training samples; A for one epoch, B for two from another
/// seed) and a tiny small-LeNet run, trained once through the CLI for all tests of this class.
/// </summary>
public sealed class TrainedRunsFixture : IDisposable
{
    private readonly TempDir dir = new("widevalley-landscape-cli");

    public TrainedRunsFixture()
    {
        A = Train("A", "small-mnistfc", 500, 1, 1);
        B = Train("B", "small-mnistfc", 500, 2, 2);
        LeNet = Train("L", "small-lenet", 100, 1, 1);
    }

    /// <summary>small-mnistfc, Adam, 500 samples, 1 epoch.</summary>
    public string A { get; }

    /// <summary>small-mnistfc, Adam, 500 samples, 2 epochs, another seed: the other end of an interpolation.</summary>
    public string B { get; }

    /// <summary>small-LeNet: another architecture.</summary>
    public string LeNet { get; }

    /// <summary>A fresh output folder.</summary>
    public string NewFolder(string name) => dir.File($"{name}-{Guid.NewGuid():N}");

    private string Train(string name, string model, int samples, int epochs, int seed)
    {
        var run = dir.File(name);
        var (code, _, err) = LandscapeCliTests.Run("train", "--model", model, "--optimizer", "adam", "--max-train-samples", samples.ToString(CultureInfo.InvariantCulture),
            "--epochs", epochs.ToString(CultureInfo.InvariantCulture), "--seed", seed.ToString(CultureInfo.InvariantCulture), "--batch-size", "100",
            "--threads", "1", "--no-tensorboard", "--out", run);
        if (code != ExitCodes.Ok) throw new InvalidOperationException($"training the fixture run {name} failed: {err}");
        return run;
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>`widevalley hessian` and `widevalley landscape`, run in-process on tiny trained runs.</summary>
public class LandscapeCliTests(TrainedRunsFixture runs) : IClassFixture<TrainedRunsFixture>
{
    private static readonly string[] ThresholdKeys = ["1e-05", "0.0001", "0.001", "0.01"];
    private static readonly string[] RequiredKeys = ["n_params", "method", "eigenvalues", "trace", "lambda_max", "lambda_min", "fraction_abs_below", "hvps", "seconds"];

    internal static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>Runs a command that must succeed and print exactly one JSON object.</summary>
    private static JsonObject RunJson(params string[] args)
    {
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        return JsonNode.Parse(lines[0])!.AsObject();
    }

    private static double[] Doubles(JsonNode? array) => array!.AsArray().Select(v => (double)v!).ToArray();

    private static void AssertPngAndSvg(string basePath, string expectedText)
    {
        var png = File.ReadAllBytes(basePath + ".png");
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        using (var bitmap = ImageChecks.Decode(png)) Assert.True(bitmap.Width > 100 && bitmap.Height > 100);
        var texts = ImageChecks.Texts(XDocument.Load(basePath + ".svg"));
        Assert.Contains(texts, t => t.Contains(expectedText, StringComparison.Ordinal));
    }

    [Fact]
    public void LanczosTop3GivesTheIssueKeysSortedWithLambdaMaxOnTop()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("lanczos");
        var json = RunJson("hessian", "--checkpoint", runs.A, "--method", "lanczos", "--top", "3", "--samples", "200", "--threads", "1", "--out", outDir, "--json");
        foreach (var key in RequiredKeys) Assert.True(json.ContainsKey(key), $"missing key {key}");
        Assert.Equal(50_890, (long)json["n_params"]!);
        Assert.Equal("lanczos", (string)json["method"]!);
        var eigenvalues = Doubles(json["eigenvalues"]);
        Assert.Equal(6, eigenvalues.Length);
        Assert.Equal(eigenvalues.Order().ToArray(), eigenvalues);
        var max = (double)json["lambda_max"]!;
        var min = (double)json["lambda_min"]!;
        Assert.All(eigenvalues, v => Assert.True(max >= v));
        Assert.Equal(eigenvalues[^1], max);
        Assert.Equal(eigenvalues[0], min);
        Assert.True(max > 0);
        Assert.Null(json["trace"]);
        Assert.Null(json["fraction_abs_below"]);
        Assert.True((long)json["hvps"]! >= 6);
        Assert.Equal(200, (long)json["samples"]!);
        Assert.Equal("float32", (string)json["dtype"]!);
        // The folder holds the same object, the numbers and the plot.
        Assert.Equal(json.ToJsonString(), JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "hessian.json")))!.ToJsonString());
        Assert.Equal(7, File.ReadAllLines(Path.Combine(outDir, "eigenvalues.csv")).Length);
        AssertPngAndSvg(Path.Combine(outDir, "eigenvalues"), "eigenvalue");
    }

    [Fact]
    public void ExactSpectrumOfTheLastLayerAgreesWithLanczosAndResumesFromItsColumns()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("exact");
        string[] common = ["--checkpoint", runs.A, "--params", "body.fc2", "--dtype", "float64", "--samples", "200", "--threads", "1", "--json"];
        var exact = RunJson(["hessian", .. common, "--method", "exact", "--out", outDir, "--keep-columns", "--workers", "2"]);
        Assert.Equal(650, (long)exact["n_params"]!);
        Assert.Equal(2, (int)exact["workers"]!);
        Assert.Equal("float64", (string)exact["dtype"]!);
        var eigenvalues = Doubles(exact["eigenvalues"]);
        Assert.Equal(650, eigenvalues.Length);
        Assert.Equal(eigenvalues.Order().ToArray(), eigenvalues);
        Assert.Equal(650, (long)exact["hvps"]!);
        // Trace from the diagonal and from the eigenvalues.
        Assert.Equal(eigenvalues.Sum(), (double)exact["trace"]!, 1e-9 * Math.Abs(eigenvalues.Sum()) + 1e-12);
        var fractions = exact["fraction_abs_below"]!.AsObject();
        Assert.Equal(ThresholdKeys, fractions.Select(kv => kv.Key).ToArray());
        for (var i = 0; i < ThresholdKeys.Length; i++)
        {
            var t = double.Parse(ThresholdKeys[i], CultureInfo.InvariantCulture);
            Assert.Equal(eigenvalues.Count(v => Math.Abs(v) < t) / 650.0, (double)fractions[ThresholdKeys[i]]!, 12);
        }

        var lanczos = RunJson(["hessian", .. common, "--method", "lanczos", "--top", "1", "--which", "largest", "--out", runs.NewFolder("lanczos-fc2")]);
        var exactMax = (double)exact["lambda_max"]!;
        var lanczosMax = (double)lanczos["lambda_max"]!;
        Assert.True(Math.Abs(exactMax - lanczosMax) <= 1e-4 * Math.Abs(exactMax), $"exact {exactMax} vs lanczos {lanczosMax}");

        AssertPngAndSvg(Path.Combine(outDir, "spectrum"), "eigenvalue");
        var columns = Path.Combine(outDir, "hessian-columns");
        Assert.True(File.Exists(Path.Combine(columns, "manifest.json")));

        // The inertia route on the same columns: exact band counts and Lanczos extremes, no full spectrum.
        var inertiaDir = runs.NewFolder("exact-inertia");
        var inertia = RunJson(["hessian", .. common, "--method", "exact", "--eigen", "inertia", "--bands", "1e-4,1e-2", "--checkpoint-dir", columns,
            "--keep-columns", "--out", inertiaDir]);
        Assert.Equal("inertia", (string)inertia["eigen_route"]!);
        Assert.Equal(0, (long)inertia["computed_columns"]!);
        Assert.Null(inertia["eigenvalues"]);
        var inertiaFractions = inertia["fraction_abs_below"]!.AsObject();
        Assert.Null(inertiaFractions["1e-05"]);
        Assert.Null(inertiaFractions["0.001"]);
        Assert.Equal((double)fractions["0.0001"]!, (double)inertiaFractions["0.0001"]!);
        Assert.Equal((double)fractions["0.01"]!, (double)inertiaFractions["0.01"]!);
        Assert.Equal(eigenvalues.Count(v => Math.Abs(v) < 1e-4), (long)inertia["band_counts"]!["0.0001"]!);
        Assert.Equal(exactMax, (double)inertia["lambda_max"]!, 1e-8 * Math.Abs(exactMax));
        var exactMin = (double)exact["lambda_min"]!;
        Assert.Equal(exactMin, (double)inertia["lambda_min"]!, 1e-8 * Math.Abs(exactMax));
        Assert.False(File.Exists(Path.Combine(inertiaDir, "spectrum.png")));
        var refused = Run(["hessian", .. common, "--method", "lanczos", "--bands", "1e-4"]);
        Assert.Equal(ExitCodes.Usage, refused.Code);
        Assert.Contains("--bands applies to --method exact --eigen inertia", refused.Err);

        // Run again on the kept columns: nothing is recomputed and the spectrum is the same; this time the store is removed.
        var (code, output, err) = Run(["hessian", .. common, "--method", "exact", "--out", outDir]);
        Assert.True(code == ExitCodes.Ok, err);
        var again = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(0, (long)again["hvps"]!);
        Assert.Equal(650, (long)again["resumed_columns"]!);
        Assert.Equal(eigenvalues, Doubles(again["eigenvalues"]));
        Assert.Contains("memory needed", err);
        Assert.Contains("resuming, 650 of 650 columns", err);
        Assert.False(Directory.Exists(columns));
    }

    [Fact]
    public void ExactShowsProgressAndRefusesWhatDoesNotFitInMemory()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("exact-memory");
        var (code, _, err) = Run("hessian", "--checkpoint", runs.A, "--method", "exact", "--params", "body.fc2", "--samples", "100",
            "--threads", "1", "--memory-limit", "0.000001", "--out", outDir);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("does not fit in memory", err);
        Assert.Contains("n = 650", err);
        Assert.Contains("MiB", err);
        Assert.False(File.Exists(Path.Combine(outDir, "hessian.json")));

        var (ok, output, err2) = Run("hessian", "--checkpoint", runs.A, "--method", "exact", "--params", "body.fc2.bias", "--samples", "100",
            "--threads", "1", "--out", runs.NewFolder("exact-progress"));
        Assert.True(ok == ExitCodes.Ok, err2);
        Assert.Contains("exact: memory needed: n = 10", output);
        Assert.Contains("(50%)", output);
        Assert.Contains("(100%)", output);
        Assert.Contains("lambda_max", output);
    }

    [Fact]
    public void LayerwiseTracesAddUpToTheTotal()
    {
        var json = RunJson("hessian", "--checkpoint", runs.A, "--method", "trace", "--layerwise", "--probes", "20", "--samples", "200",
            "--threads", "1", "--out", runs.NewFolder("trace"), "--json");
        var total = (double)json["trace"]!;
        Assert.True((double)json["trace_stderr"]! > 0);
        var layers = json["layers"]!.AsArray();
        Assert.Equal(["body.fc1", "body.fc2"], layers.Select(l => (string)l!["name"]!).ToArray());
        Assert.Equal(50_890, layers.Sum(l => (long)l!["params"]!));
        var sum = layers.Sum(l => (double)l!["trace"]!);
        Assert.True(Math.Abs(sum - total) <= 1e-9 * Math.Abs(total), $"layers sum to {sum}, total {total}");
        Assert.All(layers, l => Assert.True((double)l!["trace_stderr"]! > 0));
        Assert.Null(json["lambda_max"]);
        Assert.Null(json["eigenvalues"]);
        Assert.Equal(20, (long)json["hvps"]!);
    }

    [Fact]
    public void SlqGivesFractionsBetweenZeroAndOneAndADensityPlot()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("slq");
        var json = RunJson("hessian", "--checkpoint", runs.A, "--method", "slq", "--probes", "2", "--steps", "20", "--samples", "200",
            "--threads", "1", "--out", outDir, "--json");
        var fractions = json["fraction_abs_below"]!.AsObject();
        Assert.Equal(ThresholdKeys, fractions.Select(kv => kv.Key).ToArray());
        var values = ThresholdKeys.Select(k => (double)fractions[k]!).ToArray();
        Assert.All(values, f => Assert.InRange(f, 0, 1));
        Assert.Equal(values.Order().ToArray(), values);
        Assert.True((double)json["lambda_max"]! > (double)json["lambda_min"]!);
        Assert.Equal(40, (long)json["hvps"]!);
        Assert.Equal(2, json["nodes"]!.AsArray().Count);
        Assert.Equal(1001, File.ReadAllLines(Path.Combine(outDir, "density.csv")).Length);
        AssertPngAndSvg(Path.Combine(outDir, "density"), "eigenvalue");
    }

    [Fact]
    public void DiagonalFisherWritesAHistogram()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("fisher");
        var json = RunJson("hessian", "--checkpoint", runs.A, "--method", "diag-fisher", "--samples", "200", "--batch-size", "50", "--layerwise",
            "--threads", "1", "--out", outDir, "--json");
        Assert.Equal(4, (long)json["minibatches"]!);
        Assert.True((double)json["fisher_trace"]! > 0);
        Assert.Equal((double)json["fisher_trace"]!, json["layers"]!.AsArray().Sum(l => (double)l!["fisher_trace"]!), 1e-9);
        Assert.Equal(50_891, File.ReadAllLines(Path.Combine(outDir, "diag-fisher.csv")).Length);
        AssertPngAndSvg(Path.Combine(outDir, "histogram"), "count");
    }

    [Fact]
    public void InterpolationStartsAtTheEvaluateLossOfA()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("interp");
        var json = RunJson("landscape", "--checkpoint", runs.A, "--other", runs.B, "--slice", "interp", "--points", "5", "--samples", "500",
            "--threads", "1", "--out", outDir, "--json");
        var lines = File.ReadAllLines(Path.Combine(outDir, "interp.csv"));
        Assert.Equal("t,loss,error_percent", lines[0]);
        Assert.Equal(6, lines.Length);
        var rows = lines.Skip(1).Select(l => l.Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        Assert.Equal([-0.5, 0, 0.5, 1, 1.5], rows.Select(r => r[0]).ToArray());

        // A was trained on exactly these 500 samples, so evaluate's train split is the same set.
        var evaluate = RunJson("evaluate", runs.A, "--splits", "train", "--threads", "1", "--json");
        var expected = (double)evaluate["train_loss"]!;
        Assert.True(Math.Abs(rows[1][1] - expected) <= 1e-5 * expected, $"t = 0 loss {rows[1][1]}, evaluate {expected}");
        Assert.Equal((double)evaluate["train_error"]!, rows[1][2], 9);
        // The end point is B's own loss, not A's.
        var evaluateB = RunJson("evaluate", runs.B, "--splits", "train", "--threads", "1", "--json");
        Assert.True(Math.Abs(rows[3][1] - (double)evaluateB["train_loss"]!) <= 1e-5 * rows[3][1]);
        Assert.Equal(5, Doubles(json["loss"]).Length);
        AssertPngAndSvg(Path.Combine(outDir, "interp"), "loss");
    }

    [Fact]
    public void OneDimensionalSliceIsCentredOnTheCheckpoint()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("slice1d");
        var json = RunJson("landscape", "--checkpoint", runs.A, "--slice", "1d", "--points", "3", "--samples", "500", "--threads", "1", "--out", outDir, "--json");
        Assert.Equal([-1.0, 0, 1], Doubles(json["alpha"]));
        var loss = Doubles(json["loss"]);
        var evaluate = RunJson("evaluate", runs.A, "--splits", "train", "--threads", "1", "--json");
        Assert.True(Math.Abs(loss[1] - (double)evaluate["train_loss"]!) <= 1e-5 * loss[1]);
        // A unit step along a filter-normalised direction moves each filter by its own norm: the loss changes.
        Assert.NotEqual(loss[1], loss[0]);
        Assert.Equal("alpha,loss,error_percent", File.ReadLines(Path.Combine(outDir, "1d.csv")).First());
        AssertPngAndSvg(Path.Combine(outDir, "1d"), "loss");
    }

    [Fact]
    public void TwoDimensionalSliceWritesAGridAndAHeatmap()
    {
        TestMachine.RequireDejaVu();
        var outDir = runs.NewFolder("slice2d");
        var (code, output, err) = Run("landscape", "--checkpoint", runs.A, "--slice", "2d", "--points", "4", "--samples", "100", "--seed", "3",
            "--threads", "1", "--out", outDir);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("lowest loss", output);
        var lines = File.ReadAllLines(Path.Combine(outDir, "2d.csv"));
        Assert.Equal("alpha,beta,loss,error_percent", lines[0]);
        Assert.Equal(17, lines.Length);
        AssertPngAndSvg(Path.Combine(outDir, "2d"), "α");
        Assert.True(File.Exists(Path.Combine(outDir, "landscape.json")));
    }

    [Theory]
    [InlineData(2, "no such run folder or checkpoint file", "hessian", "--checkpoint", "{missing}", "--method", "lanczos")]
    [InlineData(2, "--method must be one of exact, lanczos, slq, trace, diag-fisher, got 'eigen'", "hessian", "--checkpoint", "{A}", "--method", "eigen")]
    [InlineData(2, "--top 700 is larger than the number of parameters measured, n = 650", "hessian", "--checkpoint", "{A}", "--method", "lanczos", "--top", "700", "--params", "body.fc2")]
    [InlineData(2, "--samples must be at least 1, got 0", "hessian", "--checkpoint", "{A}", "--method", "slq", "--samples", "0")]
    [InlineData(2, "the run's training set has only 500 samples", "hessian", "--checkpoint", "{A}", "--method", "trace", "--samples", "501")]
    [InlineData(2, "no parameter name starts with 'body.fc9'", "hessian", "--checkpoint", "{A}", "--method", "trace", "--params", "body.fc9")]
    [InlineData(2, "--dtype must be float32 or float64, got 'float16'", "hessian", "--checkpoint", "{A}", "--method", "trace", "--dtype", "float16")]
    [InlineData(2, "--layerwise applies to --method trace, exact and diag-fisher", "hessian", "--checkpoint", "{A}", "--method", "slq", "--layerwise")]
    [InlineData(2, "needs at least 2", "hessian", "--checkpoint", "{A}", "--method", "diag-fisher", "--samples", "100", "--batch-size", "100")]
    [InlineData(2, "--top applies to --method lanczos", "hessian", "--checkpoint", "{A}", "--method", "slq", "--top", "3")]
    [InlineData(2, "--method", "hessian", "--checkpoint", "{A}")]
    [InlineData(2, "is not the same architecture as --checkpoint", "landscape", "--checkpoint", "{A}", "--other", "{L}", "--slice", "interp")]
    [InlineData(2, "--slice interp needs --other B", "landscape", "--checkpoint", "{A}", "--slice", "interp")]
    [InlineData(2, "--other applies to --slice interp", "landscape", "--checkpoint", "{A}", "--other", "{B}", "--slice", "1d")]
    [InlineData(2, "--slice must be one of interp, 1d, 2d, got '3d'", "landscape", "--checkpoint", "{A}", "--slice", "3d")]
    [InlineData(2, "--range 1:0: FROM must be below TO", "landscape", "--checkpoint", "{A}", "--slice", "1d", "--range", "1:0")]
    [InlineData(2, "--points must be at least 2, got 1", "landscape", "--checkpoint", "{A}", "--slice", "1d", "--points", "1")]
    [InlineData(2, "--range must be FROM:TO", "landscape", "--checkpoint", "{A}", "--slice", "1d", "--range", "wide")]
    [InlineData(2, "--other {missing}: no such run folder", "landscape", "--checkpoint", "{A}", "--other", "{missing}", "--slice", "interp")]
    public void InvalidInputsExitWithASpecificMessage(int expectedCode, string expected, params string[] args)
    {
        var missing = runs.NewFolder("missing");
        var outDir = runs.NewFolder("refused");
        string Fill(string s) => s.Replace("{A}", runs.A).Replace("{B}", runs.B).Replace("{L}", runs.LeNet).Replace("{missing}", missing);
        var (code, _, err) = Run([.. args.Select(Fill), "--threads", "1", "--out", outDir]);
        Assert.Equal(expectedCode, code);
        Assert.Contains(Fill(expected), err);
        // Nothing is written for a refused command.
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void ACheckpointFileOfAnotherArchitectureIsNamedInTheMessage()
    {
        var (code, _, err) = Run("landscape", "--checkpoint", Path.Combine(runs.A, "checkpoint.bin"), "--other", Path.Combine(runs.LeNet, "checkpoint.bin"),
            "--slice", "interp", "--threads", "1", "--out", runs.NewFolder("refused"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("'small-lenet', 47,658 parameters", err);
        Assert.Contains("'small-mnistfc', 50,890 parameters", err);
    }
}

/// <summary>How `hessian --method exact` reports failures that are not a foreign column folder.</summary>
public sealed class HessianExactFailureTests
{
    [Fact]
    public void ALossWithoutAGraphIsReportedAsItselfNotAsAForeignColumnFolder()
    {
        using var dir = new TempDir();
        var model = WideValley.Tests.Landscape.LandscapeFixtures.TanhNet(hidden: 3);
        var data = WideValley.Tests.Landscape.LandscapeFixtures.RandomSet([8]);
        // The loss ignores the output's graph: no parameter influences it.
        var options = new WideValley.Landscape.LandscapeOptions { Loss = (output, _) => output.detach().sum(), LossName = "detached" };
        using var hvp = new WideValley.Landscape.Hvp(model, data, options);
        var settings = new WideValley.Landscape.HessianMeasurementSettings
        {
            Method = WideValley.Landscape.HessianMethod.Exact, ColumnsFolder = dir.File("columns"), Workers = 1, MemoryLimitBytes = 1L << 30,
        };
        // Exactly InvalidOperationException: not the column-folder mismatch, which the command reports as "another measurement".
        var e = Assert.Throws<InvalidOperationException>(() => WideValley.Landscape.HessianMeasurement.Measure(hvp, settings));
        Assert.Contains("no gradient graph", e.Message);
        Assert.DoesNotContain("another measurement", e.Message);
    }
}
