using System.IO.Compression;
using System.Runtime.Loader;
using TorchSharp;
using WideValley.Data;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Models;

/// <summary>
/// User factories loaded from an assembly (tests/WideValley.TestFactory, copied to test-factory/ with its own
/// TorchSharp.dll and WideValley.dll beside it), and <see cref="ModelSource"/> over TorchScript, TorchSharp weights
/// with a zoo or factory architecture, and the errors for what it cannot read.
/// </summary>
public sealed class UserModelSourceTests
{
    private static readonly string FactoryAssembly = Path.Combine(AppContext.BaseDirectory, "test-factory", "WideValley.TestFactory.dll");
    private const string TinyFactory = "WideValley.TestFactory.TinyConvNetFactory";
    private static readonly ModelFactoryContext MnistContext = new() { SampleShape = [1, 28, 28], NumClasses = 10 };

    [Fact]
    public void AFactoryFromAUserAssemblyBuildsHostTorchSharpModulesThatHvpMeasures()
    {
        using var scope = NewDisposeScope();
        var factory = UserModels.LoadFactory($"{FactoryAssembly}:{TinyFactory}");
        Assert.Equal("tiny-convnet", factory.Name);
        // The user's assembly lives in its own load context; TorchSharp and WideValley are the host's, not the copies
        // lying next to it.
        var context = AssemblyLoadContext.GetLoadContext(factory.GetType().Assembly)!;
        Assert.NotSame(AssemblyLoadContext.Default, context);
        Assert.DoesNotContain(context.Assemblies, a => a.GetName().Name is "TorchSharp" or "WideValley");
        Assert.Single(AppDomain.CurrentDomain.GetAssemblies(), a => a.GetName().Name == "TorchSharp");

        using var model = factory.Create(MnistContext);
        using (no_grad())
        {
            foreach (var (name, parameter) in model.named_parameters())
                parameter.copy_(Npy.ReadTensor(Fixture("weights", name + ".npy")));
        }
        var (inputs, labels) = Samples();
        var batches = new List<(Tensor, Tensor)> { (inputs, labels) };
        using var twin = TinyConvNet.WithFixtureWeights();
        using var userHvp = new Hvp(model, batches);
        using var twinHvp = new Hvp(twin, batches);
        using var generator = new Generator(5);
        var v = randn(userHvp.Dimension, generator: generator);
        var error = userHvp.Apply(v).sub(twinHvp.Apply(v)).norm().ToDouble() / twinHvp.Apply(v).norm().ToDouble();
        Assert.True(error < 1e-6, $"relative difference {error:E2}");
        // The factory's private dependency (WideValley.TestFactory.Layers) was found next to it, in its context only.
        Assert.Contains(context.Assemblies, a => a.GetName().Name == "WideValley.TestFactory.Layers");
        Assert.DoesNotContain(AssemblyLoadContext.Default.Assemblies, a => a.GetName().Name == "WideValley.TestFactory.Layers");
    }

    [Fact]
    public void FactoryErrorsSayWhatIsWrong()
    {
        var missing = Assert.Throws<FileNotFoundException>(() => UserModels.LoadFactory("/nonexistent/My.dll:My.Factory"));
        Assert.Contains("/nonexistent/My.dll", missing.Message);

        var notFound = Assert.Throws<ArgumentException>(() => UserModels.LoadFactory($"{FactoryAssembly}:WideValley.TestFactory.Nope"));
        Assert.Contains("no type 'WideValley.TestFactory.Nope'", notFound.Message);
        Assert.Contains(TinyFactory, notFound.Message);
        Assert.Contains("WideValley.TestFactory.FactoryWithArguments", notFound.Message);
        Assert.DoesNotContain("NotAFactory", notFound.Message);

        var notAFactory = Assert.Throws<ArgumentException>(() => UserModels.LoadFactory(FactoryAssembly, "WideValley.TestFactory.NotAFactory"));
        Assert.Contains("does not implement WideValley.Models.IModelFactory", notAFactory.Message);

        var arguments = Assert.Throws<ArgumentException>(() => UserModels.LoadFactory(FactoryAssembly, "WideValley.TestFactory.FactoryWithArguments"));
        Assert.Contains("no public parameterless constructor", arguments.Message);

        var noColon = Assert.Throws<ArgumentException>(() => UserModels.LoadFactory("MyModels.dll"));
        Assert.Contains("expected ASSEMBLY:TYPE", noColon.Message);

        Assert.Equal(["WideValley.TestFactory.FactoryWithArguments", TinyFactory], UserModels.ListFactories(FactoryAssembly));
    }

    [Fact]
    public void TorchScriptIsDetectedAndOpenedWithACopyFactoryForFloat64()
    {
        Assert.Equal(ModelFormat.TorchScript, ModelSource.Detect(Fixture("tiny_convnet.pt")));
        using var loaded = ModelSource.Open(Fixture("tiny_convnet.pt"));
        Assert.Equal(ModelFormat.TorchScript, loaded.Format);
        Assert.Contains("2,674 parameters", loaded.Description);
        using var copy = loaded.CreateCopy!();
        Assert.Equal(loaded.Module.named_parameters().Select(p => p.name), copy.named_parameters().Select(p => p.name));

        using var data = Npy.ReadLabeled(Fixture("inputs.npy"), Fixture("labels.npy"), numClasses: 10);
        var score = ClassifierEvaluation.Evaluate(loaded.Module, data, batchSize: 24);
        Assert.Equal(64, score.Count);
        Assert.Equal(Reference()["loss"], score.Loss, 5);
        using var logits = Npy.ReadTensor(Fixture("logits.npy"));
        var expectedErrors = logits.argmax(1).ne(data.Labels).sum().item<long>();
        Assert.Equal(100.0 * expectedErrors / 64, score.ErrorPercent, 9);
    }

    [Fact]
    public void TorchSharpWeightsOpenOnAFactoryOrZooArchitectureAndMismatchesNameTheFirstDifference()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        using var twin = TinyConvNet.WithFixtureWeights();
        var weights = dir.File("tiny.bin");
        twin.save(weights);

        Assert.Equal(ModelFormat.TorchSharp, ModelSource.Detect(weights));
        using (var loaded = ModelSource.Open(weights, new ModelSourceOptions { FactorySpecification = $"{FactoryAssembly}:{TinyFactory}", Context = MnistContext }))
        {
            Assert.Equal(ModelFormat.TorchSharp, loaded.Format);
            var (inputs, _) = Samples();
            using var noGrad = no_grad();
            Assert.True(loaded.Module.call(inputs).allclose(twin.call(inputs), rtol: 0, atol: 0));
            using var copy = loaded.CreateCopy!();
            Assert.Equal(2674, copy.parameters().Sum(p => p.numel()));
        }

        // The factory sizes the classifier from the context: 5 classes make fc.weight (5, 256), not (10, 256).
        var shapeError = Assert.Throws<InvalidDataException>(() => ModelSource.Open(weights, new ModelSourceOptions
        {
            FactorySpecification = $"{FactoryAssembly}:{TinyFactory}",
            Context = MnistContext with { NumClasses = 5 },
        }));
        Assert.Contains("'fc.weight' has shape [10, 256] in the file but [5, 256]", shapeError.Message);

        var nameError = Assert.Throws<InvalidDataException>(() => ModelSource.Open(weights, new ModelSourceOptions
        {
            ZooModel = ModelZoo.SmallMnistFcName,
            Context = MnistContext,
        }));
        Assert.Contains("entry 'conv.weight'", nameError.Message);
        Assert.Contains("is not a parameter or buffer of zoo model small-mnistfc", nameError.Message);

        var noArchitecture = Assert.Throws<ArgumentException>(() => ModelSource.Open(weights));
        Assert.Contains("hold no architecture", noArchitecture.Message);
        Assert.Contains(ModelZoo.SmallMnistFcName, noArchitecture.Message);

        var truncated = dir.Write("truncated.bin", File.ReadAllBytes(weights)[..2000]);
        var truncatedError = Assert.Throws<InvalidDataException>(() => ModelSource.Open(truncated, new ModelSourceOptions
        {
            FactorySpecification = $"{FactoryAssembly}:{TinyFactory}",
            Context = MnistContext,
        }));
        Assert.Contains("'fc.weight' needs 10,240 bytes", truncatedError.Message);
    }

    [Fact]
    public void ZooWeightsRoundTripThroughTheSampleShapeOfTheData()
    {
        using var dir = new TempDir();
        TorchRuntime.Seed(4);
        using var original = (nn.Module<Tensor, Tensor>)ModelZoo.Create(ModelZoo.SmallMnistFcName, new ModelOptions());
        var weights = dir.File("mlp.bin");
        original.save(weights);
        using var loaded = ModelSource.Open(weights, new ModelSourceOptions { ZooModel = ModelZoo.SmallMnistFcName, Context = MnistContext });
        foreach (var ((name, a), (_, b)) in original.named_parameters().Zip(loaded.Module.named_parameters()))
            Assert.True(a.allclose(b, rtol: 0, atol: 0), name);

        var noShape = Assert.Throws<ArgumentException>(() => ModelSource.Open(weights, new ModelSourceOptions { ZooModel = ModelZoo.SmallMnistFcName }));
        Assert.Contains("needs the input shape", noShape.Message);
    }

    [Fact]
    public void ATrainerRunOfACustomModelOpensWithItsFactory()
    {
        // What the issue found: WideValley's own Trainer wrote a run for a custom model, and its checkpoint stores no
        // run configuration. Naming the architecture loads the checkpoint's weights into it.
        using var dir = new TempDir();
        var run = dir.File("run");
        var data = Npy.ReadLabeled(Fixture("inputs.npy"), Fixture("labels.npy"), numClasses: 10);
        var dataset = new ClassificationDataset { Name = "fixture", Train = data, Test = data.Take(16), Source = "Fixtures/torchscript" };
        var model = TinyConvNet.WithFixtureWeights();
        using (var task = new WideValley.Training.ClassificationTask(model, dataset, batchSize: 16, seed: 1, evalBatchSize: 64))
        {
            using var optimizer = optim.SGD(model.parameters(), 0.05);
            new WideValley.Training.Trainer(task, optimizer, new WideValley.Training.TrainerOptions { Epochs = 1, OutputDirectory = run, TensorBoard = false }).Run();

            var noConfig = Assert.Throws<InvalidDataException>(() => ModelSource.Open(run));
            Assert.Contains("stores no run configuration", noConfig.Message);
            Assert.Contains("name the architecture", noConfig.Message);

            using var loaded = ModelSource.Open(run, new ModelSourceOptions { FactorySpecification = $"{FactoryAssembly}:{TinyFactory}", Context = MnistContext });
            Assert.Equal(ModelFormat.Run, loaded.Format);
            Assert.Contains("tiny-convnet", loaded.Description);
            using var initial = TinyConvNet.WithFixtureWeights();
            var moved = false;
            foreach (var ((name, trained), (_, opened), (_, start)) in model.named_parameters().Zip(loaded.Module.named_parameters(), initial.named_parameters()))
            {
                Assert.True(trained.allclose(opened, rtol: 0, atol: 0), name);
                moved |= !trained.allclose(start, rtol: 0, atol: 0);
            }
            Assert.True(moved, "one epoch of SGD changed the weights, so the comparison is not with the fixture's");
        }
    }

    [Fact]
    public void PicklesFoldersWithoutCheckpointsAndMisplacedOptionsAreRefused()
    {
        using var dir = new TempDir();
        var pickle = dir.File("state_dict.pt");
        using (var zip = ZipFile.Open(pickle, ZipArchiveMode.Create))
        {
            using var writer = new StreamWriter(zip.CreateEntry("state_dict/data.pkl").Open());
            writer.Write("not really a pickle");
        }
        var pickleError = Assert.Throws<InvalidDataException>(() => ModelSource.Open(pickle));
        Assert.Contains("torch.save", pickleError.Message);
        Assert.Contains("torch.jit.script(model).save(path)", pickleError.Message);

        var emptyFolder = Assert.Throws<FileNotFoundException>(() => ModelSource.Open(dir.Path));
        Assert.Contains("holds no checkpoint.bin", emptyFolder.Message);

        var misplaced = Assert.Throws<ArgumentException>(() => ModelSource.Open(Fixture("tiny_convnet.pt"), new ModelSourceOptions { ZooModel = "lenet" }));
        Assert.Contains("carries its own architecture", misplaced.Message);

        Assert.Throws<FileNotFoundException>(() => ModelSource.Open(dir.File("nothing-here.pt")));

        // Forced TorchScript: a file that is no zip is refused here; another zip goes to libtorch, whose refusal is reported.
        var notZip = Assert.Throws<InvalidDataException>(() =>
            ModelSource.Open(Fixture("inputs.npy"), new ModelSourceOptions { Format = ModelFormat.TorchScript }));
        Assert.Contains("not a TorchScript archive", notZip.Message);
        var otherZip = dir.File("other.pt");
        using (var zip = ZipFile.Open(otherZip, ZipArchiveMode.Create))
        {
            using var writer = new StreamWriter(zip.CreateEntry("other/readme.txt").Open());
            writer.Write("hello");
        }
        var libtorch = Assert.Throws<InvalidDataException>(() => ModelSource.Open(otherZip, new ModelSourceOptions { Format = ModelFormat.TorchScript }));
        Assert.Contains("could not load this TorchScript archive", libtorch.Message);
    }
}
