using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Data;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Cli;

/// <summary>
/// `widevalley hessian` and `widevalley landscape` on user models: the TorchScript fixture (Fixtures/torchscript,
/// made by PyTorch 1.13) on its .npy arrays, against the same network written in C# and PyTorch's float64 reference;
/// TorchSharp weights with the test factory assembly (tests/WideValley.TestFactory); a run that WideValley's Trainer
/// wrote for a custom model; and the errors for what does not fit.
/// </summary>
public sealed class UserModelMeasureCliTests
{
    private const string TinyFactory = "WideValley.TestFactory.TinyConvNetFactory";
    private static readonly string FactoryAssembly = Path.Combine(AppContext.BaseDirectory, "test-factory", "WideValley.TestFactory.dll");
    private static readonly string Factory = $"{FactoryAssembly}:{TinyFactory}";
    private static readonly string[] FixtureData = ["--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy")];

    private static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    private static JsonObject RunJson(params string[] args)
    {
        var (code, output, err) = Run([.. args, "--threads", "1", "--json"]);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        return JsonNode.Parse(lines[0])!.AsObject();
    }

    /// <summary>The C# twin's top Hessian eigenvalue on all 64 fixture samples, as the library test measures it.</summary>
    private static double TwinTopEigenvalue()
    {
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        using var twin = TinyConvNet.WithFixtureWeights();
        using var hvp = new Hvp(twin, [(inputs, labels)]);
        return Lanczos.Run(hvp, 2, SpectrumEnd.Largest, new LanczosOptions { Seed = 3, Tolerance = 1e-6 }).Eigenvalues[0];
    }

    [Fact]
    public void LanczosOnTheTorchScriptFixtureGivesTheTwinsTopEigenvalueAndPyTorchsInFloat64()
    {
        using var dir = new TempDir();
        var json = RunJson(["hessian", "--model-file", Fixture("tiny_convnet.pt"), .. FixtureData, "--method", "lanczos", "--top", "3", "--which", "largest",
            "--tolerance", "1e-6", "--out", dir.File("f32")]);
        Assert.Equal("torchscript", (string?)json["format"]);
        Assert.Equal(Fixture("tiny_convnet.pt"), (string?)json["model_file"]);
        Assert.Equal(2674, (long)json["n_params"]!);
        // All 64 samples of the arrays, in one batch: the set reference.txt was computed on.
        Assert.Equal(64, (long)json["samples"]!);
        var top = (double)json["lambda_max"]!;
        var twin = TwinTopEigenvalue();
        var reference = Reference()["top_eigenvalue"];
        TestContext.Current.TestOutputHelper?.WriteLine(FormattableString.Invariant(
            $"hessian --model-file tiny_convnet.pt: lambda_max {top:R} (float32); C# twin {twin:R}; PyTorch float64 {reference:R}"));
        Assert.True(Math.Abs(top - twin) < 1e-5 * reference, $"CLI {top} vs twin {twin}");
        Assert.True(Math.Abs(top - reference) < 1e-4 * reference, $"CLI {top} vs PyTorch {reference}");
        Assert.Equal(3, File.ReadAllLines(dir.File("f32/eigenvalues.csv")).Length - 1);
        Assert.True(File.Exists(dir.File("f32/eigenvalues.png")));

        // float64: the measurement runs on a copy made by reloading the archive (LoadedModel.CreateCopy).
        var json64 = RunJson(["hessian", "--model-file", Fixture("tiny_convnet.pt"), .. FixtureData, "--method", "lanczos", "--top", "1", "--which", "largest",
            "--dtype", "float64", "--tolerance", "1e-9", "--out", dir.File("f64")]);
        Assert.Equal("float64", (string?)json64["dtype"]);
        var top64 = (double)json64["lambda_max"]!;
        Assert.True(Math.Abs(top64 - reference) < 1e-8 * reference, $"CLI float64 {top64} vs PyTorch {reference}");
    }

    [Fact]
    public void TraceOfTheTorchScriptFixtureIsTheLibrarysHutchinsonOnTheTwinAndWritesNextToTheFile()
    {
        using var dir = new TempDir();
        // Without --out, the folder goes next to the model file: DIR/tiny_convnet-hessian-trace.
        var model = dir.File("tiny_convnet.pt");
        File.Copy(Fixture("tiny_convnet.pt"), model);
        var json = RunJson(["hessian", "--model-file", model, .. FixtureData, "--method", "trace", "--probes", "12", "--seed", "5", "--batch-size", "40"]);
        var outDir = dir.File("tiny_convnet-hessian-trace");
        Assert.Equal(outDir, (string?)json["out"]);
        Assert.True(File.Exists(Path.Combine(outDir, "hessian.json")));
        Assert.Equal(12, (long)json["hvps"]!);

        // The same probes on the C# twin, through the library service: the same estimate to float32 round-off.
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        using var twin = TinyConvNet.WithFixtureWeights();
        using var hvp = new Hvp(twin, [(inputs.narrow(0, 0, 40), labels.narrow(0, 0, 40)), (inputs.narrow(0, 40, 24), labels.narrow(0, 40, 24))]);
        var expected = HessianMeasurement.Measure(hvp, new HessianMeasurementSettings { Method = HessianMethod.Trace, Probes = 12, Seed = 5 });
        var trace = (double)json["trace"]!;
        var stderr = (double)json["trace_stderr"]!;
        Assert.True(stderr > 0);
        // The estimate is a mean of 12 quadratic forms v'Hv of spread ~ stderr: round-off is relative to that spread, not to the mean.
        Assert.True(Math.Abs(trace - expected.Trace!.Value) <= 1e-4 * (Math.Abs(expected.Trace.Value) + stderr), $"CLI trace {trace}, library on the twin {expected.Trace}");
        Assert.Equal(expected.TraceStandardError!.Value, stderr, 1e-4 * stderr);
    }

    [Fact]
    public void OneDimensionalSliceOfTheTorchScriptFixtureIsCentredOnPyTorchsLoss()
    {
        using var dir = new TempDir();
        var json = RunJson(["landscape", "--model-file", Fixture("tiny_convnet.pt"), .. FixtureData, "--slice", "1d", "--points", "3", "--out", dir.File("1d")]);
        Assert.Equal([-1.0, 0, 1], json["alpha"]!.AsArray().Select(v => (double)v!).ToArray());
        var loss = json["loss"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal(Reference()["loss"], loss[1], 5);
        Assert.NotEqual(loss[1], loss[0]);
        Assert.Equal("torchscript", (string?)json["format"]);
        Assert.Equal("alpha,loss,error_percent", File.ReadLines(dir.File("1d/1d.csv")).First());
        Assert.True(File.Exists(dir.File("1d/1d.png")));
        Assert.True(File.Exists(dir.File("1d/1d.svg")));
        Assert.True(File.Exists(dir.File("1d/landscape.json")));
    }

    [Fact]
    public void TorchSharpWeightsWithTheFactoryMeasureLikeTheScriptAndInterpolateToAnotherWeightsFile()
    {
        using var dir = new TempDir();
        using (var twin = TinyConvNet.WithFixtureWeights()) twin.save(dir.File("a.bin"));
        // B: the fixture's weights, every one scaled by 0.5; its loss is computed here on the twin.
        double lossB;
        using (var twin = TinyConvNet.WithFixtureWeights())
        {
            using (no_grad())
                foreach (var p in twin.parameters()) p.mul_(0.5);
            twin.save(dir.File("b.bin"));
            using var scope = NewDisposeScope();
            var (inputs, labels) = Samples();
            using var noGrad = no_grad();
            lossB = nn.functional.cross_entropy(twin.call(inputs), labels).item<float>();
        }

        var lanczos = RunJson(["hessian", "--model-file", dir.File("a.bin"), "--model-factory", Factory, .. FixtureData, "--method", "lanczos", "--top", "1",
            "--which", "largest", "--tolerance", "1e-6", "--out", dir.File("lanczos")]);
        Assert.Equal("torchsharp", (string?)lanczos["format"]);
        Assert.Contains("tiny-convnet", (string?)lanczos["model"]);
        var reference = Reference()["top_eigenvalue"];
        Assert.True(Math.Abs((double)lanczos["lambda_max"]! - reference) < 1e-4 * reference, $"factory route {lanczos["lambda_max"]} vs PyTorch {reference}");

        var interp = RunJson(["landscape", "--model-file", dir.File("a.bin"), "--other", dir.File("b.bin"), "--model-factory", Factory, .. FixtureData,
            "--slice", "interp", "--points", "3", "--range=0:1", "--out", dir.File("interp")]);
        var loss = interp["loss"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal(Reference()["loss"], loss[0], 5);
        Assert.Equal(lossB, loss[2], 5);
        Assert.Equal(dir.File("b.bin"), (string?)interp["other"]);
        Assert.Equal("t,loss,error_percent", File.ReadLines(dir.File("interp/interp.csv")).First());

        // The other end must be the same network.
        using (var other = nn.Sequential(("flatten", nn.Flatten()), ("fc", nn.Linear(784, 10)))) other.save(dir.File("c.bin"));
        var (code, _, err) = Run(["landscape", "--model-file", dir.File("a.bin"), "--other", dir.File("c.bin"), "--model-factory", Factory, .. FixtureData,
            "--slice", "interp", "--out", dir.File("refused")]);
        Assert.NotEqual(ExitCodes.Ok, code);
        Assert.Contains("c.bin", err);
        Assert.False(Directory.Exists(dir.File("refused")));
    }

    [Fact]
    public void FactoryWeightsMeasureOnANamedDataset()
    {
        using var dir = new TempDir();
        using (var twin = TinyConvNet.WithFixtureWeights()) twin.save(dir.File("weights.dat"));
        var json = RunJson("hessian", "--model-file", dir.File("weights.dat"), "--model-factory", Factory, "--data", "fashion-mnist",
            "--data-dir", "/usr/share/datasets/fashion-mnist", "--samples", "100", "--method", "trace", "--probes", "4", "--out", dir.File("trace"));
        Assert.Equal(100, (long)json["samples"]!);
        Assert.Contains("fashion-mnist", (string?)json["data"], StringComparison.OrdinalIgnoreCase);
        Assert.True(double.IsFinite((double)json["trace"]!));
        Assert.True(File.Exists(dir.File("trace/hessian.json")));
    }

    [Fact]
    public void ARunOfACustomModelOpensWithCheckpointAndItsFactory()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var data = Npy.ReadLabeled(Fixture("inputs.npy"), Fixture("labels.npy"), numClasses: 10);
        var dataset = new ClassificationDataset { Name = "fixture", Train = data, Test = data.Take(16), Source = "Fixtures/torchscript" };
        var model = TinyConvNet.WithFixtureWeights();
        double trainedLoss;
        using (var task = new WideValley.Training.ClassificationTask(model, dataset, batchSize: 16, seed: 1, evalBatchSize: 64))
        {
            using var optimizer = optim.SGD(model.parameters(), 0.05);
            new WideValley.Training.Trainer(task, optimizer, new WideValley.Training.TrainerOptions { Epochs = 1, OutputDirectory = run, TensorBoard = false }).Run();
            using var scope = NewDisposeScope();
            var (inputs, labels) = Samples();
            using var noGrad = no_grad();
            model.eval();
            trainedLoss = nn.functional.cross_entropy(model.call(inputs), labels).item<float>();
        }

        var refused = Run(["hessian", "--checkpoint", run, "--method", "trace", "--out", dir.File("refused")]);
        Assert.NotEqual(ExitCodes.Ok, refused.Code);
        Assert.Contains("stores no run configuration", refused.Err);

        var json = RunJson(["landscape", "--checkpoint", run, "--model-factory", Factory, .. FixtureData, "--slice", "1d", "--points", "3"]);
        Assert.Equal("run", (string?)json["format"]);
        // The checkpoint's (trained) weights, not the fixture's, at the centre of the slice.
        var loss = json["loss"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.Equal(trainedLoss, loss[1], 5);
        Assert.NotEqual(Math.Round(Reference()["loss"], 5), Math.Round(loss[1], 5));
        // A run's measurements go into the run folder, as for --checkpoint RUN alone.
        Assert.Equal(Path.Combine(run, "landscape-1d"), (string?)json["out"]);
    }

    [Fact]
    public void ARunNamedAsAModelFileMeasuresAsWithCheckpointAndTakesOtherData()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, _, err) = Run("train", "--model", "small-mnistfc", "--optimizer", "adam", "--max-train-samples", "500", "--batch-size", "100",
            "--epochs", "1", "--threads", "1", "--out", run, "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);

        string[] lanczos = ["--method", "lanczos", "--top", "1", "--which", "largest", "--samples", "200"];
        var classic = RunJson(["hessian", "--checkpoint", run, .. lanczos, "--out", dir.File("classic")]);
        // --model-file RUN without data: the run's own training samples, and the output folder in the run folder.
        var asFile = RunJson(["hessian", "--model-file", run, .. lanczos]);
        Assert.Equal("run", (string?)asFile["format"]);
        Assert.Equal(Path.Combine(run, "hessian-lanczos"), (string?)asFile["out"]);
        Assert.Equal((double)classic["lambda_max"]!, (double)asFile["lambda_max"]!, 1e-6 * (double)classic["lambda_max"]!);
        Assert.Equal((long)classic["n_params"]!, (long)asFile["n_params"]!);

        // The run's network on other data: the fixture's 64 images as .npy arrays.
        var onNpy = RunJson(["hessian", "--checkpoint", run, .. FixtureData, "--method", "trace", "--probes", "4", "--out", dir.File("npy")]);
        Assert.Equal(64, (long)onNpy["samples"]!);
        Assert.Contains("inputs.npy", (string?)onNpy["data"]);
    }

    [Theory]
    [InlineData("--inputs needs --labels", "hessian", "--model-file", "{pt}", "--inputs", "{x}", "--method", "trace")]
    [InlineData("--labels needs --inputs", "landscape", "--model-file", "{pt}", "--labels", "{y}", "--slice", "1d")]
    [InlineData("name the network once: --checkpoint", "hessian", "--checkpoint", "{dir}", "--model-file", "{pt}", "--method", "trace")]
    [InlineData("name the network: --checkpoint RUN", "hessian", "--method", "trace")]
    [InlineData("name the network: --checkpoint RUN", "landscape", "--slice", "1d")]
    [InlineData("name the data to measure it on", "hessian", "--model-file", "{pt}", "--method", "trace")]
    [InlineData("--format applies to --model-file", "hessian", "--checkpoint", "{dir}", "--format", "torchscript", "--method", "trace")]
    [InlineData("hold no architecture", "hessian", "--model-file", "{dir}/w.bin", "--format", "torchsharp", "--inputs", "{x}", "--labels", "{y}", "--method", "trace")]
    [InlineData("--samples 65: the data has only 64 samples", "hessian", "--model-file", "{pt}", "--inputs", "{x}", "--labels", "{y}", "--method", "trace", "--samples", "65")]
    [InlineData("--other {dir}/b.pt: no such file", "landscape", "--model-file", "{pt}", "--inputs", "{x}", "--labels", "{y}", "--slice", "interp", "--other", "{dir}/b.pt")]
    [InlineData("--slice interp needs --other B", "landscape", "--model-file", "{pt}", "--inputs", "{x}", "--labels", "{y}", "--slice", "interp")]
    [InlineData("carries its own architecture", "hessian", "--model-file", "{pt}", "--model", "lenet", "--inputs", "{x}", "--labels", "{y}", "--method", "trace")]
    public void WhatDoesNotFitIsRefusedWithAClearMessage(string expected, params string[] args)
    {
        using var dir = new TempDir();
        string Fill(string s) => s.Replace("{pt}", Fixture("tiny_convnet.pt")).Replace("{x}", Fixture("inputs.npy")).Replace("{y}", Fixture("labels.npy"))
            .Replace("{dir}", dir.Path);
        // Some bytes read as TorchSharp weights: refused for want of an architecture before they are read.
        File.WriteAllBytes(dir.File("w.bin"), [1, 2, 3]);
        var outDir = dir.File("out");
        var (code, _, err) = Run([.. args.Select(Fill), "--threads", "1", "--out", outDir]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(Fill(expected), err);
        Assert.False(Directory.Exists(outDir));
    }
}
