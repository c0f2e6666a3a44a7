using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>
/// Checkpoint format 2 (header, run configuration document, tensors) and the format-1 run folder committed in
/// Fixtures/checkpoint-v1, written by the code before format 2 existed.
/// </summary>
public class CheckpointFormatTests
{
    /// <summary>The committed fixture folder, found from the test binary up to the repository.</summary>
    internal static string FixtureFolder(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "WideValley.Tests", "Fixtures", name);
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"fixture {name} not found above {AppContext.BaseDirectory}");
    }

    static string CopyFixture(TempDir dir)
    {
        var source = FixtureFolder("checkpoint-v1");
        var target = dir.File("run");
        Directory.CreateDirectory(target);
        foreach (var file in new[] { Trainer.CheckpointFileName, "metrics.jsonl", Trainer.SummaryFileName })
            File.Copy(Path.Combine(source, file), Path.Combine(target, file));
        return target;
    }

    [Fact]
    public void FormatOneRunConfigurationBecomesTheTypedOptionsItDescribed()
    {
        var meta = Checkpoint.ReadMeta(Path.Combine(FixtureFolder("checkpoint-v1"), Trainer.CheckpointFileName));
        Assert.Equal(1, meta.FormatVersion);
        Assert.Equal((1, 0L, 5L, 2L), (meta.CompletedEpochs, meta.StepInEpoch, meta.GradEvals, meta.OuterSteps));
        Assert.Null(meta.Run);
        var config = meta.RunConfig!;
        Assert.Equal(("small-mnistfc", "entropy-sgd", 128, 1, 3L, 256L, 1), (config.Model, config.Optimizer, config.BatchSize, config.Epochs, config.Seed, config.MaxTrainSamples, config.Threads));
        Assert.Equal(BatchNormRecalibrationMode.Auto, config.BnRecalibrate);
        Assert.False(config.TensorBoard);
        var expected = new EntropySgdOptions
        {
            LearningRate = 1, Momentum = 0.9, Nesterov = true,
            LocalEntropy = new LocalEntropyOptions { L = 2, Scope = new ExponentialScope(1e-4, 1e-3), DiagnosticsEvery = 10 },
        };
        Assert.Equal(expected, config.OptimizerOptions);
        // The summary of the same run holds the same flat object: it converts to the same configuration.
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureFolder("checkpoint-v1"), Trainer.SummaryFileName)))!;
        Assert.Equal(config, RunConfig.FromJson(summary["config"]!));
    }

    [Fact]
    public void FormatOneFixtureEvaluatesAndResumesToTheSecondEpochOfAnUninterruptedRun()
    {
        using var dir = new TempDir();
        var run = CopyFixture(dir);
        var checkpoint = Path.Combine(run, Trainer.CheckpointFileName);
        var stored = Checkpoint.ReadMeta(checkpoint).RunConfig!;
        // The fixture's logged losses are on the full set; it found its data through $WIDEVALLEY_DATA, so name the
        // Debian folder so no other folder shadows it.
        TestMachine.RequireFullFashionMnist();
        var config = stored with { DataDir = TestMachine.DebianFashionMnistFolder };
        EvaluatesAndResumesToTheLoggedSecondEpoch(run, config, FixtureFolder("checkpoint-v1"));

        // The resumed run wrote format 2, with the converted configuration as its own document.
        var meta = Checkpoint.ReadMeta(checkpoint);
        Assert.Equal(Checkpoint.FormatVersion, meta.FormatVersion);
        // (with the identity of its data, which format-1 runs did not record)
        Assert.StartsWith("labels-sha256:", meta.RunConfig!.DataFingerprint);
        Assert.Equal(config with { Epochs = 2 }, meta.RunConfig with { DataFingerprint = null });
        Assert.Equal("small-mnistfc", meta.Run!.ModelName);
        Assert.All(meta.Run.Parameters, p => Assert.False(string.IsNullOrEmpty(p.Name)));
        Assert.Equal(50_890, meta.Run.Parameters.Sum(p => p.Elements));
    }

    /// <summary>
    /// A committed run folder at the end of epoch 1 (<paramref name="run"/>, a copy): its weights give the test loss
    /// logged then, and resuming brings back model, optimizer (momentum, Langevin buffers, noise generator), random
    /// generator and data stream, so epoch 2 is the one the uninterrupted run logged (the fixture's
    /// expected-epoch-2.jsonl).
    /// </summary>
    internal static void EvaluatesAndResumesToTheLoggedSecondEpoch(string run, RunConfig config, string fixture)
    {
        var checkpoint = Path.Combine(run, Trainer.CheckpointFileName);
        var logged = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[0])!;
        using (var prepared = RunSetup.Prepare(config, outputDirectory: null))
        {
            Checkpoint.LoadWeights(checkpoint, prepared.Task.Model);
            var test = prepared.Task.Evaluate(EvaluationSplit.Test);
            Assert.Equal((double)logged["test_loss"]!, test.Loss, 1e-6);
            Assert.Equal((double)logged["test_error"]!, test.ErrorPercent, 9);
        }

        TrainingResult result;
        using (var prepared = RunSetup.Prepare(config with { Epochs = 2 }, run))
            result = prepared.CreateTrainer().Run(resume: true);
        Assert.Equal(TrainingStatus.Completed, result.Status);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "expected-epoch-2.jsonl")))!;
        var second = result.Epochs[^1];
        Assert.Equal(2, second.Epoch);
        Assert.Equal(((long)expected["grad_evals"]!, (long)expected["outer_steps"]!), (second.GradEvals, second.OuterSteps));
        Assert.Equal((double)expected["train_loss"]!, second.TrainLoss, 1e-6);
        Assert.Equal((double)expected["train_error"]!, second.TrainError, 9);
        Assert.Equal((double)expected["test_loss"]!, second.TestLoss!.Value, 1e-6);
        Assert.Equal((double)expected["gamma"]!, (double)second.Extra!["gamma"], 15);
    }

    [Fact]
    public void FormatTwoStoresTheRunConfigurationAndRoundTripsIt()
    {
        using var dir = new TempDir();
        var config = new RunConfig { Model = "small-mnistfc", Seed = 4, Epochs = 3, BnRecalibrate = BatchNormRecalibrationMode.Off }
            .WithOptimizer(new EntropyAdamOptions
            {
                LearningRate = 0.02, Beta1 = 0.5,
                LocalEntropy = new LocalEntropyOptions { L = 3, Scope = new BoundedExponentialScope(0.1, 0.01), Kernel = LangevinKernel.TensorOps }.AsReferenceCode(),
            });
        var json = config.ToJson();
        // Typed: numbers as numbers, enums as names, the optimizer's options as one object with the record's names.
        Assert.Equal("off", (string?)json["bn_recalibrate"]);
        Assert.Equal(3, (int)json["epochs"]!);
        Assert.Equal("bounded:0.1:0.01", (string?)json["optimizer_options"]!["local_entropy"]!["scope"]);
        Assert.Equal("tensor_ops", (string?)json["optimizer_options"]!["local_entropy"]!["kernel"]);
        Assert.Equal("frozen_as_reference", (string?)json["optimizer_options"]!["local_entropy"]!["scope_counting"]);
        Assert.Equal(0.5, (double)json["optimizer_options"]!["beta1"]!);
        Assert.Null(json["optimizer_options"]!["local_entropy"]!["temperature"]);
        Assert.Equal(config, RunConfig.FromJson(JsonNode.Parse(json.ToJsonString())!));

        var (task, optimizer) = Build(config.ResolvedOptimizerOptions);
        using (task)
        using (optimizer)
        {
            var path = dir.File(Trainer.CheckpointFileName);
            Checkpoint.Save(path, new CheckpointMeta { CompletedEpochs = 2, Model = "mlp", RunConfig = config }, task.Model, optimizer, task);
            var bytes = File.ReadAllBytes(path);
            Assert.Equal("WVCKPT\0\u0003"u8.ToArray(), bytes[..8]);
            var meta = Checkpoint.ReadMeta(path);
            Assert.Equal((3, 2), (meta.FormatVersion, meta.CompletedEpochs));
            Assert.Equal(config, meta.RunConfig);
            Checkpoint.Load(path, task.Model, optimizer, task);
        }
    }

    [Fact]
    public void TheNeverImplementedExtraStateInterfaceIsGone()
    {
        // Format 1 wrote a flag for it after the optimizer state; optimizers carry their own state in the state
        // dictionary (ExtraStateEntry), so format 2 has neither the interface nor the flag.
        Assert.Null(typeof(OptimizerFactory).Assembly.GetType("WideValley.Optim.IExtraOptimizerState"));
    }

    [Fact]
    public void UnknownFormatVersionsAreRefusedByNumber()
    {
        using var dir = new TempDir();
        var path = dir.File("future.bin");
        File.WriteAllBytes(path, [.. "WVCKPT\0"u8.ToArray(), 9, 0]);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.ReadMeta(path));
        Assert.Contains("checkpoint format 9", e.Message);
        Assert.Contains("formats 1 to 4", e.Message);
    }

    [Fact]
    public void TrainerRecordsACustomModelSoThatToolsCanSayWhatTheyNeed()
    {
        using var dir = new TempDir();
        var (task, optimizer) = Build(new SgdOptions { LearningRate = 0.05, Momentum = 0.9 });
        using (task)
        using (optimizer)
            new Trainer(task, optimizer, new TrainerOptions { Epochs = 1, OutputDirectory = dir.Path, TensorBoard = false, DataDescription = "blobs (64 points)" }).Run();
        var path = dir.File(Trainer.CheckpointFileName);
        var meta = Checkpoint.ReadMeta(path);
        Assert.Null(meta.RunConfig);
        var run = meta.Run!;
        Assert.Equal("Sequential", run.ModelName);
        Assert.StartsWith("TorchSharp.Modules.Sequential, ", run.ModelType);
        Assert.Equal(meta.Parameters, run.Parameters.Sum(p => p.Elements));
        Assert.Equal(task.Model.named_parameters().Select(p => p.name), run.Parameters.Select(p => p.Name));
        Assert.Equal("sgd", run.Optimizer);
        Assert.Equal(new SgdOptions { LearningRate = 0.05, Momentum = 0.9 }, OptimizerFactory.Describe("sgd").FromJson(run.OptimizerOptions!));
        Assert.Equal(("ClassificationTask", 64L, "blobs (64 points)"), (run.Task, run.TrainingSize, run.Data));
        var e = Assert.Throws<CustomModelRunException>(() => meta.RequireRunConfig(path));
        Assert.Contains("custom model 'Sequential'", e.Message);
        Assert.Contains("--model-factory ASSEMBLY:TYPE", e.Message);
        Assert.Same(run, e.Run);
        // The summary says the same.
        var summary = JsonNode.Parse(File.ReadAllText(dir.File(Trainer.SummaryFileName)))!;
        Assert.Null(summary["config"]);
        Assert.Equal("sgd", (string?)summary["run"]!["optimizer"]);
    }

    static (ClassificationTask Task, optim.Optimizer Optimizer) Build(OptimizerOptionsBase options)
    {
        var model = Synthetic.Mlp();
        var task = new ClassificationTask(model, Synthetic.Blobs(train: 64), 32, seed: 1);
        return (task, OptimizerFactory.Create(model.parameters(), options, new OptimizerContext { TrainingSetSize = 64 }));
    }
}
