using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Optim;

namespace WideValley.Training;

/// <summary>
/// Reads the run configuration of checkpoint format 1 (and of summaries written with it): one flat object in which
/// every optimizer setting was a top-level value named after its CLI option (<c>lr</c>, <c>momentum</c>, <c>l</c>,
/// <c>gamma</c>, <c>noise_scaling: "reference"</c>, ...), whichever optimizer the run used. The values of the run's
/// own optimizer become its typed options record, exactly as format-1 code built them; missing values take the
/// defaults format 1 had.
/// </summary>
static class LegacyRunConfig
{
    /// <summary>Format 1 always wrote every key; <c>l</c> (Langevin steps) and <c>lr</c> exist only there.</summary>
    public static bool IsLegacy(JsonNode node) =>
        node is JsonObject o && !o.ContainsKey("optimizer_options") && o.ContainsKey("l") && o.ContainsKey("lr");

    public static RunConfig Convert(JsonObject flat)
    {
        var copy = flat.DeepClone().AsObject();
        var config = copy.Deserialize<RunConfig>(RunConfig.Json) ?? throw new JsonException("empty run configuration");
        var descriptor = OptimizerFactory.Describe(config.Optimizer);

        double Number(string key, double fallback) => flat[key] is JsonNode n ? n.Deserialize<double>() : fallback;
        bool Flag(string key) => flat[key] is JsonNode n && n.Deserialize<bool>();
        string Text(string key, string fallback) => flat[key] is JsonNode n ? n.Deserialize<string>()! : fallback;
        T Pick<T>(string key, string fallback, params (string Name, T Value)[] choices)
        {
            var value = Text(key, fallback);
            foreach (var (name, v) in choices) if (name == value) return v;
            throw new JsonException($"format-1 run configuration: {key} must be one of {string.Join(", ", choices.Select(c => c.Name))}, got '{value}'");
        }

        var lr = flat["lr"] is JsonNode lrNode ? lrNode.Deserialize<double>() : descriptor.DefaultLearningRate;
        var momentum = Number("momentum", 0);
        var nesterov = Flag("nesterov");
        var weightDecay = Number("weight_decay", 0);
        var beta1 = Number("beta1", 0.9);
        var beta2 = Number("beta2", 0.999);
        var epsilon = Number("adam_eps", 1e-8);

        LocalEntropyOptions LocalEntropy()
        {
            var options = new LocalEntropyOptions
            {
                L = (int)Number("l", 20),
                Scope = ScopeSchedule.From(Text("scoping_schedule", "exp"), Number("gamma", 1e-4), Number("scoping", 1e-3)),
                LangevinLr = Number("langevin_lr", 0.1),
                Noise = Number("noise", 1e-3),
                Alpha = Number("alpha", 0.75),
                LangevinMomentum = Number("langevin_momentum", 0),
                LangevinNesterov = Flag("langevin_nesterov"),
                LangevinWeightDecay = Number("langevin_weight_decay", 0),
                NoiseScaling = Pick("noise_scaling", "paper", ("paper", LangevinNoiseScaling.Paper), ("reference", LangevinNoiseScaling.Reference)),
                Average = Pick("mu_average", "paper", ("paper", LangevinAverage.Paper), ("reference", LangevinAverage.Reference)),
                MomentumTarget = Pick("langevin_momentum_on", "drift", ("drift", LangevinMomentumTarget.Drift), ("gradient", LangevinMomentumTarget.LossGradient)),
                Gradient = Pick("local_entropy_gradient", "unscaled", ("unscaled", LocalEntropyGradient.Unscaled), ("scaled", LocalEntropyGradient.ScaledByGamma)),
                ScopeCounting = Pick("scope_counter", "paper", ("paper", ScopeCounting.Paper), ("frozen", ScopeCounting.FrozenAsReference)),
                ExtraClosureEvaluation = Flag("extra_closure"),
                DiagnosticsEvery = (int)Number("diagnostics_every", 10),
                Kernel = Pick("langevin_kernel", "auto", ("auto", LangevinKernel.Auto), ("fused", LangevinKernel.FusedCpu), ("tensor-ops", LangevinKernel.TensorOps)),
            };
            return Flag("reference_code") ? options.AsReferenceCode() : options;
        }

        OptimizerOptionsBase options = descriptor.OptionsType switch
        {
            var t when t == typeof(SgdOptions) => new SgdOptions { LearningRate = lr, Momentum = momentum, Nesterov = nesterov, WeightDecay = weightDecay },
            var t when t == typeof(AdamOptions) => new AdamOptions { LearningRate = lr, Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, WeightDecay = weightDecay },
            var t when t == typeof(EntropySgdOptions) => new EntropySgdOptions
            {
                LearningRate = lr, Momentum = momentum, Nesterov = nesterov, WeightDecay = weightDecay, LocalEntropy = LocalEntropy(),
            },
            var t when t == typeof(EntropyAdamOptions) => new EntropyAdamOptions
            {
                LearningRate = lr, Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon, WeightDecay = weightDecay, LocalEntropy = LocalEntropy(),
            },
            var t when t == typeof(SgldOptions) => new SgldOptions
            {
                LearningRate = lr, Decay = Number("sgld_decay", 0.55), Temperature = Number("sgld_temperature", 1), WeightDecay = weightDecay,
            },
            _ => throw new JsonException($"format-1 run configuration names optimizer '{config.Optimizer}', which format 1 did not have"),
        };
        return config with { OptimizerOptions = options };
    }
}
