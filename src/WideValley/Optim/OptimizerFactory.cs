using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>
/// How to build one named optimizer from its typed options record, and what the trainer should do by default when it is
/// used. Made by <see cref="For{TOptions}"/> (or <see cref="OptimizerFactory.Register{TOptions}"/>).
/// </summary>
public sealed class OptimizerDescriptor
{
    readonly Func<IEnumerable<Parameter>, OptimizerOptionsBase, OptimizerContext, optim.Optimizer> _create;

    OptimizerDescriptor(string name, string description, Type optionsType, OptimizerOptionsBase defaults,
        Func<IEnumerable<Parameter>, OptimizerOptionsBase, OptimizerContext, optim.Optimizer> create, bool recalibratesBatchNormByDefault)
    {
        Name = name;
        Description = description;
        OptionsType = optionsType;
        Defaults = defaults;
        _create = create;
        RecalibratesBatchNormByDefault = recalibratesBatchNormByDefault;
    }

    /// <summary>A descriptor for optimizers configured by <typeparamref name="TOptions"/>.</summary>
    /// <param name="name">Name on the command line and in run configurations, e.g. "sgd".</param>
    /// <param name="description">One line for help text.</param>
    /// <param name="create">Builds the optimizer over the given parameters (after the model is on its device) from validated options.</param>
    /// <param name="defaults">The options used when none are given (default: <c>new TOptions()</c>).</param>
    /// <param name="recalibratesBatchNormByDefault">
    /// True for optimizers that evaluate the network away from the current weights (the Langevin iterates of
    /// Entropy-SGD), so the BatchNorm running statistics must be recollected at the weights before evaluation.
    /// </param>
    public static OptimizerDescriptor For<TOptions>(string name, string description,
        Func<IEnumerable<Parameter>, TOptions, OptimizerContext, optim.Optimizer> create,
        TOptions? defaults = null, bool recalibratesBatchNormByDefault = false)
        where TOptions : OptimizerOptionsBase, new()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(create);
        return new OptimizerDescriptor(name, description, typeof(TOptions), defaults ?? new TOptions(),
            (parameters, options, context) => create(parameters, (TOptions)options, context), recalibratesBatchNormByDefault);
    }

    /// <summary>Name on the command line, e.g. "sgd".</summary>
    public string Name { get; }
    /// <summary>One line for help text.</summary>
    public string Description { get; }
    /// <summary>The options record type this optimizer is configured by.</summary>
    public Type OptionsType { get; }
    /// <summary>The options used when none are given.</summary>
    public OptimizerOptionsBase Defaults { get; }
    /// <summary>The learning rate used when none is given.</summary>
    public double DefaultLearningRate => Defaults.LearningRate;
    /// <summary>Recollect BatchNorm statistics before evaluation unless told otherwise.</summary>
    public bool RecalibratesBatchNormByDefault { get; }
    /// <summary>True when the options carry local-entropy estimator settings (several gradient evaluations per step).</summary>
    public bool IsLocalEntropy => typeof(ILocalEntropyOptimizerOptions).IsAssignableFrom(OptionsType);

    /// <summary>Throws unless <paramref name="options"/> is this optimizer's record type; then validates it.</summary>
    public void Validate(OptimizerOptionsBase options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.GetType() != OptionsType)
            throw new ArgumentException($"optimizer '{Name}' is configured by {OptionsType.Name}, not {options.GetType().Name}", nameof(options));
        options.Validate();
    }

    /// <summary>Validates <paramref name="options"/> (null = <see cref="Defaults"/>) and builds the optimizer.</summary>
    public optim.Optimizer Create(IEnumerable<Parameter> parameters, OptimizerOptionsBase? options = null, OptimizerContext? context = null)
    {
        options ??= Defaults;
        Validate(options);
        var optimizer = _create(parameters, options, context ?? new OptimizerContext());
        OptimizerFactory.Remember(optimizer, Name, options);
        return optimizer;
    }

    /// <summary>The options as JSON (snake_case property names, enums as strings, the scope schedule as its spec).</summary>
    public JsonObject ToJson(OptimizerOptionsBase options) => JsonSerializer.SerializeToNode(options, OptionsType, OptimizerOptionsJson.Options)!.AsObject();

    /// <summary>Options from JSON written by <see cref="ToJson"/>; properties not given take the record's defaults.</summary>
    public OptimizerOptionsBase FromJson(JsonNode node)
    {
        try
        {
            return (OptimizerOptionsBase?)node.Deserialize(OptionsType, OptimizerOptionsJson.Options)
                   ?? throw new JsonException($"empty options for optimizer '{Name}'");
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or NotSupportedException)
        {
            throw new JsonException($"options of optimizer '{Name}': {e.Message}", e);
        }
    }
}

/// <summary>The JSON form of options records.</summary>
public static class OptimizerOptionsJson
{
    /// <summary>snake_case names, enums as snake_case strings, every settable property written (derived ones, such as
    /// <see cref="LocalEntropyOptions.Temperature"/>, are not).</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        IgnoreReadOnlyProperties = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
    };
}

/// <summary>
/// The one place optimizers are created by name. Each optimizer is one options record with its descriptor
/// (<see cref="SgdOptions"/>, ...) registered here; later optimizers add themselves with <see cref="Register{TOptions}"/>,
/// and the trainer, CLI and experiments never need to know which is which.
/// </summary>
public static class OptimizerFactory
{
    static readonly Dictionary<string, OptimizerDescriptor> Descriptors = new(StringComparer.OrdinalIgnoreCase);
    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<optim.Optimizer, CreatedOptimizer> Created = new();

    static OptimizerFactory()
    {
        Register(SgdOptions.Descriptor);
        Register(AdamOptions.Descriptor);
        Register(EntropySgdOptions.Descriptor);
        Register(EntropyAdamOptions.Descriptor);
        Register(SgldOptions.Descriptor);
        Register(AnnealSgdOptions.Descriptor);
        Register(AdineOptions.Descriptor);
        Register(DanteOptions.Descriptor);
        Register(PerturbedGradientDescentOptions.Descriptor);
        Register(SamOptions.Descriptor); Register(AsamOptions.Descriptor);
        Register(ParleOptions.Descriptor);
        Register(ElasticSgdOptions.Descriptor);
    }

    /// <summary>Adds (or replaces) an optimizer.</summary>
    public static void Register(OptimizerDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        lock (Descriptors) Descriptors[descriptor.Name] = descriptor;
    }

    /// <summary>Adds (or replaces) an optimizer configured by <typeparamref name="TOptions"/>; see <see cref="OptimizerDescriptor.For{TOptions}"/>.</summary>
    public static OptimizerDescriptor Register<TOptions>(string name, string description,
        Func<IEnumerable<Parameter>, TOptions, OptimizerContext, optim.Optimizer> create,
        TOptions? defaults = null, bool recalibratesBatchNormByDefault = false)
        where TOptions : OptimizerOptionsBase, new()
    {
        var descriptor = OptimizerDescriptor.For(name, description, create, defaults, recalibratesBatchNormByDefault);
        Register(descriptor);
        return descriptor;
    }

    /// <summary>Registered names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Descriptors) return Descriptors.Keys.Order(StringComparer.Ordinal).ToList(); }
    }

    /// <summary>All registered optimizers, by name.</summary>
    public static IReadOnlyList<OptimizerDescriptor> All
    {
        get { lock (Descriptors) return Descriptors.Values.OrderBy(d => d.Name, StringComparer.Ordinal).ToList(); }
    }

    /// <summary>The optimizer called <paramref name="name"/>, or an error listing the known ones.</summary>
    public static OptimizerDescriptor Describe(string name)
    {
        lock (Descriptors)
            if (Descriptors.TryGetValue(name, out var d)) return d;
        throw new ArgumentException($"unknown optimizer '{name}'; expected one of: {string.Join(", ", Names)}");
    }

    /// <summary>The optimizer whose options record is <paramref name="options"/>'s type.</summary>
    public static OptimizerDescriptor DescribeOptions(OptimizerOptionsBase options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return All.FirstOrDefault(d => d.OptionsType == options.GetType())
               ?? throw new ArgumentException($"no optimizer is registered for options {options.GetType().Name}", nameof(options));
    }

    /// <summary>Builds the optimizer called <paramref name="name"/> (options null = its defaults).</summary>
    public static optim.Optimizer Create(string name, IEnumerable<Parameter> parameters, OptimizerOptionsBase? options = null, OptimizerContext? context = null) =>
        Describe(name).Create(parameters, options, context);

    /// <summary>Builds the optimizer that <paramref name="options"/> configures.</summary>
    public static optim.Optimizer Create(IEnumerable<Parameter> parameters, OptimizerOptionsBase options, OptimizerContext? context = null) =>
        DescribeOptions(options).Create(parameters, options, context);

    /// <summary>
    /// The name and options an optimizer was built with, if this factory built it: lets the trainer record them in
    /// checkpoints of runs it did not set up itself.
    /// </summary>
    public static bool TryGetCreated(optim.Optimizer optimizer, out string name, out OptimizerOptionsBase? options)
    {
        if (Created.TryGetValue(optimizer, out var created))
        {
            (name, options) = (created.Name, created.Options);
            return true;
        }
        (name, options) = (optimizer.GetType().Name, null);
        return false;
    }

    internal static void Remember(optim.Optimizer optimizer, string name, OptimizerOptionsBase options) =>
        Created.AddOrUpdate(optimizer, new CreatedOptimizer(name, options));

    sealed record CreatedOptimizer(string Name, OptimizerOptionsBase Options);

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="value"/> is finite and positive.</summary>
    public static void RequirePositive(double value, string what)
    {
        if (!(value > 0) || double.IsInfinity(value)) throw new ArgumentException($"{what} must be a positive number, got {value}");
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="value"/> is finite and zero or more.</summary>
    public static void RequireNonNegative(double value, string what)
    {
        if (!(value >= 0) || double.IsInfinity(value)) throw new ArgumentException($"{what} must be zero or positive, got {value}");
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="value"/> is in [0, 1).</summary>
    public static void RequireUnitInterval(double value, string what)
    {
        if (!(value >= 0 && value < 1)) throw new ArgumentException($"{what} must be in [0, 1), got {value}");
    }
}

/// <summary>
/// Implemented by optimizers that have numbers worth logging (for example the scope gamma of Entropy-SGD). The trainer
/// asks once per epoch and writes whatever it gets, without knowing what the numbers mean.
/// </summary>
public interface IOptimizerDiagnostics
{
    /// <summary>Name → value, collected since the last call; names in snake_case.</summary>
    IReadOnlyDictionary<string, double> TakeDiagnostics();
}

/// <summary>
/// Implemented by optimizers that can say how much state they keep, so that benchmarks and reports can state the
/// memory an optimizer costs beyond the model and its gradients.
/// </summary>
public interface IOptimizerMemory
{
    /// <summary>Elements held in the optimizer's own tensors (momentum buffers, moment estimates, Langevin buffers).</summary>
    long StateElements { get; }
}
