using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Optim;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>The typed options records, their registration, validation and JSON, and RunConfig's use of them.</summary>
public class OptimizerOptionsTests
{
    [Fact]
    public void EveryRegisteredOptimizerHasValidDefaultsThatRoundTripThroughJson()
    {
        Assert.Superset(new HashSet<string> { "sgd", "adam", "entropy-sgd", "entropy-adam", "sgld" }, OptimizerFactory.Names.ToHashSet());
        foreach (var d in OptimizerFactory.All)
        {
            d.Defaults.Validate();
            Assert.Equal(d.OptionsType, d.Defaults.GetType());
            Assert.Equal(d.Defaults, d.FromJson(JsonNode.Parse(d.ToJson(d.Defaults).ToJsonString())!));
            Assert.Same(d, OptimizerFactory.DescribeOptions(d.Defaults));
        }
        Assert.True(OptimizerFactory.Describe("entropy-adam").IsLocalEntropy);
        Assert.True(OptimizerFactory.Describe("entropy-sgd").RecalibratesBatchNormByDefault);
        Assert.False(OptimizerFactory.Describe("sgld").IsLocalEntropy);
        Assert.Equal(1e-3, OptimizerFactory.Describe("adam").DefaultLearningRate);
    }

    [Fact]
    public void ValidationNamesTheProperty()
    {
        var e = Assert.Throws<OptionsException>(() => new SgdOptions { LearningRate = -1 }.Validate());
        Assert.Equal(("LearningRate", "LearningRate must be a positive number, got -1"), (e.ParamName, e.Message));

        var nested = Assert.Throws<OptionsException>(() =>
            new EntropySgdOptions { LocalEntropy = new LocalEntropyOptions { LangevinLr = 0 } }.Validate());
        Assert.Equal("LocalEntropy.LangevinLr", nested.ParamName);
        Assert.Equal("--langevin-lr must be a positive number, got 0", nested.Describe(p => p == "LocalEntropy.LangevinLr" ? "--langevin-lr" : p));

        // A message that mentions another setting names it the same way.
        var nesterov = Assert.Throws<OptionsException>(() =>
            new EntropyAdamOptions { LocalEntropy = new LocalEntropyOptions { LangevinNesterov = true } }.Validate());
        Assert.Equal("LocalEntropy.LangevinNesterov needs LocalEntropy.LangevinMomentum greater than 0", nesterov.Message);
        Assert.Equal("[LocalEntropy.LangevinNesterov] needs [LocalEntropy.LangevinMomentum] greater than 0", nesterov.Describe(p => $"[{p}]"));

        Assert.Equal("Beta2", Assert.Throws<OptionsException>(() => new AdamOptions { Beta2 = 1 }.Validate()).ParamName);
        Assert.Equal("Temperature", Assert.Throws<OptionsException>(() => new SgldOptions { Temperature = -1 }.Validate()).ParamName);
        // The factory validates before building.
        using var p = new TorchSharp.Modules.Parameter(zeros(3));
        Assert.Throws<OptionsException>(() => OptimizerFactory.Create("sgd", [p], new SgdOptions { Momentum = 1 }));
        var wrongType = Assert.Throws<ArgumentException>(() => OptimizerFactory.Create("sgd", [p], new AdamOptions()));
        Assert.Contains("configured by SgdOptions, not AdamOptions", wrongType.Message);
    }

    /// <summary>An optimizer added from outside: one record, one registration.</summary>
    public sealed record HalfStepSgdOptions : OptimizerOptionsBase
    {
        public override double LearningRate { get; init; } = 0.2;
        public double Momentum { get; init; } = 0.5;

        public override void Validate()
        {
            OptionChecks.Positive(LearningRate, nameof(LearningRate));
            OptionChecks.UnitInterval(Momentum, nameof(Momentum));
        }
    }

    [Fact]
    public void AnOptimizerAddedWithOneRegistrationWorksInRunConfigurations()
    {
        OptimizerFactory.Register<HalfStepSgdOptions>("test-half-step-sgd", "SGD at half the learning rate (a test registration)",
            (parameters, o, _) => new SgdOptimizer(parameters, o.LearningRate / 2, o.Momentum));
        using var p = new TorchSharp.Modules.Parameter(ones(2));
        using var optimizer = OptimizerFactory.Create("test-half-step-sgd", [p]);
        Assert.Equal(0.1, optimizer.ParamGroups.First().LearningRate, 15);
        Assert.True(OptimizerFactory.TryGetCreated(optimizer, out var name, out var options));
        Assert.Equal(("test-half-step-sgd", (OptimizerOptionsBase)new HalfStepSgdOptions()), (name, options!));

        var config = new RunConfig { Model = "small-mnistfc" }.WithOptimizer(new HalfStepSgdOptions { Momentum = 0.25 });
        Assert.Equal("test-half-step-sgd", config.Optimizer);
        var json = config.ToJson();
        Assert.Equal(0.25, (double)json["optimizer_options"]!["momentum"]!);
        Assert.Equal(config, RunConfig.FromJson(json));
        var bad = Assert.Throws<OptionsException>(() => RunSetup.Validate(config.WithOptimizer(new HalfStepSgdOptions { Momentum = 2 })));
        Assert.Equal("Momentum", bad.ParamName);
    }

    [Fact]
    public void RunConfigRefusesOptionsOfAnotherOptimizer()
    {
        var e = Assert.Throws<ArgumentException>(() => RunSetup.Validate(new RunConfig { Optimizer = "adam", OptimizerOptions = new SgdOptions() }));
        Assert.Contains("optimizer 'adam' is configured by AdamOptions, not SgdOptions", e.Message);
    }

    [Fact]
    public void FormatOneFlatConfigurationsConvertAsFormatOneCodeBuiltThem()
    {
        var flat = new JsonObject
        {
            ["model"] = "lenet", ["optimizer"] = "entropy-adam", ["lr"] = null, ["momentum"] = 0.9, ["beta1"] = 0.5, ["beta2"] = 0.99,
            ["adam_eps"] = 1e-6, ["weight_decay"] = 1e-4, ["l"] = 5, ["gamma"] = 0.01, ["scoping"] = 0.5, ["scoping_schedule"] = "const",
            ["langevin_lr"] = 0.2, ["noise"] = 1e-4, ["reference_code"] = true, ["langevin_kernel"] = "tensor-ops",
            ["diagnostics_every"] = 0, ["bn_recalibrate"] = "off", ["seed"] = 7, ["epochs"] = 3,
        };
        var config = RunConfig.FromJson(flat);
        Assert.Equal(("lenet", 7L, 3, BatchNormRecalibrationMode.Off), (config.Model, config.Seed, config.Epochs, config.BnRecalibrate));
        var expected = new EntropyAdamOptions
        {
            LearningRate = 0.01, Beta1 = 0.5, Beta2 = 0.99, Epsilon = 1e-6, WeightDecay = 1e-4,
            LocalEntropy = new LocalEntropyOptions
            {
                L = 5, Scope = new ConstantScope(0.01), LangevinLr = 0.2, Noise = 1e-4, Kernel = LangevinKernel.TensorOps, DiagnosticsEvery = 0,
            }.AsReferenceCode(),
        };
        Assert.Equal(expected, config.OptimizerOptions);

        var sgld = RunConfig.FromJson(new JsonObject { ["optimizer"] = "sgld", ["lr"] = 0.5, ["l"] = 20, ["sgld_decay"] = 0.6, ["weight_decay"] = 0.0 });
        Assert.Equal(new SgldOptions { LearningRate = 0.5, Decay = 0.6, Temperature = 1 }, sgld.OptimizerOptions);

        var unknown = Assert.Throws<System.Text.Json.JsonException>(() =>
            RunConfig.FromJson(new JsonObject { ["optimizer"] = "entropy-sgd", ["lr"] = 1, ["l"] = 20, ["noise_scaling"] = "double" }));
        Assert.Contains("noise_scaling must be one of paper, reference, got 'double'", unknown.Message);
    }
}
