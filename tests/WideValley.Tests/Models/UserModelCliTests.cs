using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Models;
using WideValley.Tests.Support;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Models;

/// <summary>`widevalley evaluate --model-file ...` on the TorchScript fixture, TorchSharp weights and a run.</summary>
public sealed class UserModelCliTests
{
    private static readonly string FactoryAssembly = Path.Combine(AppContext.BaseDirectory, "test-factory", "WideValley.TestFactory.dll");

    private static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    private static JsonNode RunJson(params string[] args)
    {
        var (code, output, err) = Run([.. args, "--json"]);
        Assert.True(code == ExitCodes.Ok, err);
        return JsonNode.Parse(output)!;
    }

    [Fact]
    public void EvaluatesTheTorchScriptFixtureOnNpyArraysAsPyTorchDid()
    {
        var result = RunJson("evaluate", "--model-file", Fixture("tiny_convnet.pt"), "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"));
        Assert.Equal("torchscript", (string?)result["format"]);
        Assert.Equal(Reference()["loss"], (double)result["data_loss"]!, 5);
        using var logits = WideValley.Data.Npy.ReadTensor(Fixture("logits.npy"));
        using var labels = WideValley.Data.Npy.ReadTensor(Fixture("labels.npy"));
        var errors = logits.argmax(1).ne(labels).sum().item<long>();
        Assert.Equal(100.0 * errors / 64, (double)result["data_error"]!, 9);
    }

    [Fact]
    public void EvaluatesTorchSharpWeightsOnAFactoryArchitectureAndSaysWhatIsMissing()
    {
        using var dir = new TempDir();
        using (var twin = TinyConvNet.WithFixtureWeights()) twin.save(dir.File("tiny.bin"));
        var result = RunJson("evaluate", "--model-file", dir.File("tiny.bin"), "--model-factory", $"{FactoryAssembly}:WideValley.TestFactory.TinyConvNetFactory",
            "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"));
        Assert.Equal("torchsharp", (string?)result["format"]);
        Assert.Equal(Reference()["loss"], (double)result["data_loss"]!, 5);

        var noArchitecture = Run("evaluate", "--model-file", dir.File("tiny.bin"), "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"));
        Assert.Equal(ExitCodes.Usage, noArchitecture.Code);
        Assert.Contains("hold no architecture", noArchitecture.Err);

        var wrongZoo = Run("evaluate", "--model-file", dir.File("tiny.bin"), "--model", ModelZoo.SmallMnistFcName, "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"));
        Assert.Equal(ExitCodes.Failure, wrongZoo.Code);
        Assert.Contains("entry 'conv.weight'", wrongZoo.Err);

        var noData = Run("evaluate", "--model-file", Fixture("tiny_convnet.pt"));
        Assert.Equal(ExitCodes.Usage, noData.Code);
        Assert.Contains("name the data", noData.Err);

        var halfData = Run("evaluate", "--model-file", Fixture("tiny_convnet.pt"), "--inputs", Fixture("inputs.npy"));
        Assert.Equal(ExitCodes.Usage, halfData.Code);
        Assert.Contains("--inputs needs --labels", halfData.Err);

        var both = Run("evaluate", dir.Path, "--model-file", Fixture("tiny_convnet.pt"));
        Assert.Equal(ExitCodes.Usage, both.Code);
        Assert.Contains("name the network once", both.Err);

        var modelWithoutFile = Run("evaluate", dir.Path, "--model", "lenet");
        Assert.Equal(ExitCodes.Usage, modelWithoutFile.Code);
        Assert.Contains("--model applies with --model-file", modelWithoutFile.Err);
    }

    [Fact]
    public void ARunOpenedAsAModelFileGivesTheRunFormsNumbersAndTakesOtherData()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, _, err) = Run("train", "--model", "small-mnistfc", "--optimizer", "adam", "--max-train-samples", "500", "--batch-size", "100",
            "--epochs", "1", "--threads", "2", "--out", run, "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);

        var classic = RunJson("evaluate", run, "--splits", "train,test");
        var asFile = RunJson("evaluate", "--model-file", run, "--splits", "train,test");
        Assert.Equal("run", (string?)asFile["format"]);
        Assert.Equal((double)classic["test_loss"]!, (double)asFile["test_loss"]!, 6);
        Assert.Equal((double)classic["train_error"]!, (double)asFile["train_error"]!, 9);

        // The run's network on the fixture's 28x28 inputs, given as .npy arrays.
        var onNpy = RunJson("evaluate", "--model-file", run, "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"));
        Assert.InRange((double)onNpy["data_error"]!, 0, 100);
        Assert.True((double)onNpy["data_loss"]! > 0);
    }
}
