using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Optim;

namespace WideValley.Cli.Commands;

/// <summary>
/// The command line's names for the optimizers' options: one table mapping each flag onto a property path of the
/// options records (<see cref="SgdOptions"/>, <see cref="EntropySgdOptions"/>, ...). A flag applies to every
/// optimizer whose record has that property; its default is the record's. Validation errors, which name properties
/// (<see cref="OptionsException"/>), are reported with these flags.
/// </summary>
public sealed class OptimizerFlags
{
    /// <summary>One flag and where it goes.</summary>
    sealed record Flag(Option Option, string Path, Func<ParseResult, JsonNode?> Value, IReadOnlyList<(string Cli, string Json)>? Choices = null)
    {
        public string Name => Option.Name;
    }

    const string Scope = "LocalEntropy.Scope";
    const string ReferenceCode = "--reference-code";
    readonly Option<double> _gamma, _scoping;
    readonly Option<string> _scopingSchedule;
    readonly List<Flag> _flags = [];

    /// <summary>The table.</summary>
    public OptimizerFlags()
    {
        Number<double>("--lr", "LearningRate", "Learning rate.");
        Number<double>("--momentum", "Momentum", "Momentum of the (outer) SGD step.");
        Number<bool>("--nesterov", "Nesterov", "Nesterov momentum.");
        Number<double>("--weight-decay", "WeightDecay", "L2 weight decay.");
        Number<double>("--beta1", "Beta1", "Adam beta1.");
        Number<double>("--beta2", "Beta2", "Adam beta2.");
        Number<double>("--adam-eps", "Epsilon", "Adam epsilon.");
        Number<int>("-L", "LocalEntropy.L", "Langevin steps per outer update (closure calls per step).", "--langevin-steps");
        _gamma = new Option<double>("--gamma") { Description = "Initial scope gamma0." + DefaultsOf(Scope, spec => Part(spec, 1)) };
        _scoping = new Option<double>("--scoping") { Description = "Scoping rate gamma1 (tau for the bounded schedule)." + DefaultsOf(Scope, spec => Part(spec, 2)) };
        _scopingSchedule = new Option<string>("--scoping-schedule")
        {
            Description = "gamma(t): exp (gamma0 (1+gamma1)^t, the paper's), const, linear (gamma0 (1+gamma1 t)), quadratic (gamma0 (1+gamma1 t)^2), bounded (gamma0 (1-exp(-tau t)))."
                          + DefaultsOf(Scope, spec => Part(spec, 0)),
        };
        _scopingSchedule.AcceptOnlyFromAmong("exp", "const", "linear", "quadratic", "bounded");
        foreach (var o in new Option[] { _gamma, _scoping, _scopingSchedule }) _flags.Add(new Flag(o, Scope, _ => null));
        Number<double>("--langevin-lr", "LocalEntropy.LangevinLr", "Langevin step size eta'.");
        Number<double>("--noise", "LocalEntropy.Noise", "Thermal noise eps of the Langevin steps.");
        Number<double>("--alpha", "LocalEntropy.Alpha", "Weight of the new sample in the running average mu.");
        Number<double>("--langevin-momentum", "LocalEntropy.LangevinMomentum", "Momentum of the Langevin steps.");
        Number<bool>("--langevin-nesterov", "LocalEntropy.LangevinNesterov", "Nesterov momentum in the Langevin steps.");
        Number<double>("--langevin-weight-decay", "LocalEntropy.LangevinWeightDecay", "Weight decay inside the Langevin loop.");
        Choice("--noise-scaling", "LocalEntropy.NoiseScaling", "paper: sqrt(eta') eps; reference: sqrt(2 eta') eps (the public code).",
            ("paper", LangevinNoiseScaling.Paper), ("reference", LangevinNoiseScaling.Reference));
        Choice("--mu-average", "LocalEntropy.Average", "paper: mu = (1-alpha) mu + alpha x'; reference: mu = alpha mu + (1-alpha) x'.",
            ("paper", LangevinAverage.Paper), ("reference", LangevinAverage.Reference));
        Choice("--langevin-momentum-on", "LocalEntropy.MomentumTarget", "drift: the whole dx' (paper); gradient: the loss gradient only (reference).",
            ("drift", LangevinMomentumTarget.Drift), ("gradient", LangevinMomentumTarget.LossGradient));
        Choice("--le-gradient", "LocalEntropy.Gradient", "unscaled: x - mu (Sec. 4.3, the experiments'); scaled: gamma (x - mu) (Alg. 1).",
            ("unscaled", LocalEntropyGradient.Unscaled), ("scaled", LocalEntropyGradient.ScaledByGamma));
        Choice("--scope-counter", "LocalEntropy.ScopeCounting", "paper: t counts outer updates; frozen: gamma stays gamma0 (the reference's bug).",
            ("paper", ScopeCounting.Paper), ("frozen", ScopeCounting.FrozenAsReference));
        Number<bool>("--extra-closure", "LocalEntropy.ExtraClosureEvaluation", "Evaluate one extra, discarded minibatch per step, as the reference code does.");
        Number<int>("--diagnostics-every", "LocalEntropy.DiagnosticsEvery", "Log gamma, ||x - mu||, gradient norms and their cosine every K outer steps (0 = off).");
        Choice("--langevin-kernel", "LocalEntropy.Kernel", "auto, fused (CPU float32, vectorised) or tensor-ops (any device).",
            ("auto", LangevinKernel.Auto), ("fused", LangevinKernel.FusedCpu), ("tensor-ops", LangevinKernel.TensorOps));
        Number<double>("--sgld-decay", "Decay", "SGLD step-size decay exponent b in lr / (1 + t)^b.");
        Number<double>("--sgld-temperature", "Temperature", "SGLD temperature T (1 = Bayesian posterior).");
        Number<double>("--field-size", "FieldSize", "AnnealSGD field size h0: the field's per-coordinate standard deviation at step 0 (0 = plain SGD).");
        Choice("--field-mode", "FieldMode", "AnnealSGD field: fixed (one Gaussian direction for the run, the magnetic field) or fresh (a new draw every step: annealed gradient noise).",
            ("fixed", AnnealFieldMode.Fixed), ("fresh", AnnealFieldMode.Fresh));
        Choice("--field-schedule", "FieldSchedule", "AnnealSGD s(t): linear (1 - t/T, zero from step T), exponential (decay^t) or power ((1 + t)^-gamma).",
            ("linear", AnnealSchedule.Linear), ("exponential", AnnealSchedule.Exponential), ("power", AnnealSchedule.PowerLaw));
        Number<long>("--field-anneal-steps", "FieldAnnealSteps", "AnnealSGD T of the linear schedule, in optimizer steps.");
        Number<double>("--field-decay", "FieldDecay", "AnnealSGD factor per step of the exponential schedule.");
        Number<double>("--field-power", "FieldPower", "AnnealSGD exponent gamma of the power-law schedule.");
        Number<double>("--momentum-high", "MomentumHigh", "ADINE m_high, the momentum while the running loss falls (may exceed 1).");
        Number<double>("--momentum-low", "MomentumLow", "ADINE m_low, the momentum after the running loss rose.");
        Number<int>("--switch-window", "Window", "ADINE W: steps between comparisons of the running (EMA 0.9) minibatch loss.");
        Number<double>("--switch-tolerance", "Tolerance", "ADINE tol: relative rise of the running loss tolerated before switching to m_low.");
        Number<double>("--velocity-cap", "VelocityCap", "ADINE guard: cap on the velocity's norm (0 = no cap; a non-finite loss then zeroes the velocity).");
        Number<long>("--dante-steps-per-block", "StepsPerBlock", "DANTE K: optimizer steps per block (layer) before the next becomes active (0 = one epoch's steps)."); Choice("--dante-order", "SweepOrder", "DANTE sweep order: forward (input layer first) or backward (output layer first).", ("forward", DanteOrder.Forward), ("backward", DanteOrder.Backward)); Number<double>("--dante-eps", "NormEpsilon", "DANTE eps in x - lr g / (|g| + eps)."); Number<bool>("--dante-freeze-inactive", "FreezeInactive", "DANTE: inactive blocks skip their weight gradients (requires_grad off while inactive).");
        Number<double>("--perturb-gradient", "GradientThreshold", "PGD g_thres: perturb when the gradient's norm is at most this.");
        Number<double>("--perturb-radius", "PerturbationRadius", "PGD r: radius of the ball the perturbation is drawn from, uniformly.");
        Number<int>("--perturb-interval", "PerturbationInterval", "PGD t_thres: steps between perturbations, and until the escape test.");
        Number<double>("--perturb-decrease", "LossDecreaseThreshold", "PGD f_thres: loss decrease within t_thres steps that counts as an escape.");
        Number<double>("--rho", "Rho", "SAM/ASAM rho: radius of the neighbourhood the perturbation reaches (0 = the base optimizer exactly)."); var samBase = new Option<string>("--sam-base") { Description = $"SAM/ASAM base optimizer ({string.Join(", ", SharpnessAwareOptions.BaseOptimizers)}): --lr, --momentum, --nesterov, --weight-decay, --beta1, --beta2, --adam-eps set it." + DefaultsOf("Base", v => v) }; samBase.AcceptOnlyFromAmong([.. SharpnessAwareOptions.BaseOptimizers]); _flags.Add(new Flag(samBase, "Base", p => JsonValue.Create(p.GetValue(samBase)))); Number<double>("--asam-eta", "Eta", "ASAM eta in T = |w| + eta (0 = exactly scale invariant)."); Choice("--sam-bn-stats", "BatchNormStatistics", "SAM/ASAM: which pass updates BatchNorm running statistics: first (at w only) or both (also at the perturbed point).", ("first", SamBatchNormStatistics.FirstPass), ("both", SamBatchNormStatistics.BothPasses));
        Number<double>("--elastic-rho", "ElasticRho", "Parle/Elastic-SGD rho_0: the elastic coupling of each replica to the replicas' mean at the first outer step (0 = uncoupled).");
        Number<double>("--elastic-rho-growth", "ElasticRhoGrowth", "Parle/Elastic-SGD: rho_t = min(rho_0 (1 + growth)^t, max), t = outer steps (the authors' 0.5 / minibatches per epoch).");
        Number<double>("--elastic-rho-max", "ElasticRhoMax", "Parle/Elastic-SGD: the cap on rho_t.");
        Number<double>("--gamma-max", "GammaMax", "Parle: the cap on the scope gamma(t).");
        // Last: it overrides the individual reference-code switches above, as it always has.
        var reference = new Option<bool>(ReferenceCode)
        {
            Description = "All of the reference code's behaviours at once (noise, mu average, momentum target, frozen scope, extra closure).",
        };
        _flags.Add(new Flag(reference, "LocalEntropy", p => p.GetValue(reference)));
    }

    /// <summary>The options, in table order.</summary>
    public IEnumerable<Option> Options => _flags.Select(f => f.Option);

    /// <summary>The flag that sets the property at <paramref name="path"/> (the path itself when none does).</summary>
    public static string FlagFor(string path) => Shared.FlagName(path);

    static readonly OptimizerFlags Shared = new();

    string FlagName(string path)
    {
        if (path == Scope) return "the scope schedule (--gamma, --scoping, --scoping-schedule)";
        return _flags.FirstOrDefault(f => f.Path == path && f.Name != ReferenceCode)?.Name ?? path;
    }

    /// <summary>
    /// <paramref name="start"/> with the flags given on the command line applied; a flag the optimizer has no property
    /// for is an error that lists the flags it has.
    /// </summary>
    public OptimizerOptionsBase Apply(ParseResult p, OptimizerDescriptor descriptor, OptimizerOptionsBase start)
    {
        var json = descriptor.ToJson(start);
        foreach (var flag in Given(p))
            if (!Apply(flag, p, json))
                throw new UsageException($"{flag.Name} does not apply to --optimizer {descriptor.Name}; its options are {string.Join(", ", FlagsOf(descriptor))}");
        return Read(descriptor, json);
    }

    /// <summary>
    /// For <c>--resume</c>: each given flag that would change <paramref name="stored"/>, as "--flag VALUE (the run has OLD)".
    /// </summary>
    public IEnumerable<string> Conflicts(ParseResult p, OptimizerDescriptor descriptor, OptimizerOptionsBase stored)
    {
        var before = descriptor.ToJson(stored);
        foreach (var flag in Given(p))
        {
            var after = before.DeepClone().AsObject();
            if (!Apply(flag, p, after))
            {
                yield return $"{flag.Name} (the run's optimizer {descriptor.Name} has no such option)";
                continue;
            }
            if (JsonNode.DeepEquals(before, after)) continue;
            var given = p.GetResult(flag.Option) is OptionResult r && r.Tokens.Count > 0 ? string.Join(" ", r.Tokens.Select(t => t.Value)) : "";
            yield return $"{flag.Name}{(given.Length > 0 ? " " + given : "")} (the run has {Show(flag, before)})";
        }
    }

    IEnumerable<Flag> Given(ParseResult p) => _flags.Where(f => p.GetResult(f.Option) is OptionResult r && !r.Implicit);

    IEnumerable<string> FlagsOf(OptimizerDescriptor descriptor)
    {
        var json = descriptor.ToJson(descriptor.Defaults);
        return _flags.Where(f => Find(json, f.Path) is not null).Select(f => f.Name);
    }

    bool Apply(Flag flag, ParseResult p, JsonObject options)
    {
        if (Find(options, flag.Path) is not { } found) return false;
        var (parent, key) = found;
        if (flag.Path == Scope)
        {
            var spec = parent[key]!.GetValue<string>();
            var kind = p.GetResult(_scopingSchedule) is OptionResult { Implicit: false } ? p.GetValue(_scopingSchedule)! : Part(spec, 0);
            var gamma0 = p.GetResult(_gamma) is OptionResult { Implicit: false } ? p.GetValue(_gamma) : ParsePart(spec, 1, 1e-4);
            var rate = p.GetResult(_scoping) is OptionResult { Implicit: false } ? p.GetValue(_scoping) : ParsePart(spec, 2, 1e-3);
            parent[key] = ScopeSchedule.From(kind, gamma0, rate).Spec;
        }
        else if (flag.Name == ReferenceCode)
        {
            if (p.GetValue((Option<bool>)flag.Option))
            {
                var localEntropy = parent[key]!.Deserialize<LocalEntropyOptions>(OptimizerOptionsJson.Options)!;
                parent[key] = JsonSerializer.SerializeToNode(localEntropy.AsReferenceCode(), OptimizerOptionsJson.Options);
            }
        }
        else
        {
            parent[key] = flag.Value(p);
        }
        return true;
    }

    static OptimizerOptionsBase Read(OptimizerDescriptor descriptor, JsonObject json)
    {
        try
        {
            return descriptor.FromJson(json);
        }
        catch (JsonException e)
        {
            throw new UsageException($"--optimizer {descriptor.Name}: {e.Message}");
        }
    }

    /// <summary>The parent object and key of <paramref name="path"/> in an options object, or null when it has no such property.</summary>
    static (JsonObject Parent, string Key)? Find(JsonObject options, string path)
    {
        var parts = path.Split('.').Select(JsonNamingPolicy.SnakeCaseLower.ConvertName).ToArray();
        var node = options;
        foreach (var part in parts[..^1])
            if (node[part] is JsonObject child) node = child;
            else return null;
        return node.ContainsKey(parts[^1]) ? (node, parts[^1]) : null;
    }

    string Show(Flag flag, JsonObject options)
    {
        if (flag.Name == ReferenceCode) return "other Langevin settings; see its summary.json";
        if (Find(options, flag.Path) is not { } found) return "nothing";
        var (parent, key) = found;
        var value = parent[key];
        if (flag.Choices is not null && value is JsonValue v && v.TryGetValue(out string? text))
            return flag.Choices.FirstOrDefault(c => c.Json == text).Cli ?? text;
        return value?.ToJsonString() ?? "null";
    }

    void Number<T>(string name, string path, string description, params string[] aliases)
    {
        var option = new Option<T>(name, aliases) { Description = description + DefaultsOf(path, v => v) };
        _flags.Add(new Flag(option, path, p => JsonValue.Create(p.GetValue(option))));
    }

    void Choice<TEnum>(string name, string path, string description, params (string Cli, TEnum Value)[] choices) where TEnum : struct, Enum
    {
        var map = choices.Select(c => (c.Cli, Json: JsonNamingPolicy.SnakeCaseLower.ConvertName(c.Value.ToString()))).ToList();
        var option = new Option<string>(name) { Description = description + DefaultsOf(path, v => map.FirstOrDefault(c => c.Json == v).Cli ?? v) };
        option.AcceptOnlyFromAmong([.. choices.Select(c => c.Cli)]);
        _flags.Add(new Flag(option, path, p => map.First(c => c.Cli == p.GetValue(option)).Json, map));
    }

    /// <summary>" Default: X." or " Default: sgd X, adam Y." from the registered optimizers' default options.</summary>
    static string DefaultsOf(string path, Func<string, string> show)
    {
        var values = new List<(string Optimizer, string Value)>();
        foreach (var d in OptimizerFactory.All)
            if (Find(d.ToJson(d.Defaults), path) is { } found)
            {
                var (parent, key) = found;
                var node = parent[key];
                var text = node is JsonValue v && v.TryGetValue(out string? s) ? s : node?.ToJsonString() ?? "none";
                values.Add((d.Name, show(text)));
            }
        if (values.Count == 0) return "";
        var applies = $" ({string.Join(", ", values.Select(v => v.Optimizer))})";
        return values.Select(v => v.Value).Distinct().Count() == 1
            ? $" Default {values[0].Value}{applies}."
            : $" Default: {string.Join(", ", values.Select(v => $"{v.Optimizer} {v.Value}"))}.";
    }

    static string Part(string spec, int index)
    {
        var parts = spec.Split(':');
        return index < parts.Length ? parts[index] : "";
    }

    static double ParsePart(string spec, int index, double fallback) =>
        double.TryParse(Part(spec, index), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : fallback;
}
