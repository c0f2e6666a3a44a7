using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// Builds a user's network, so that the CLI (<c>--model-factory My.dll:My.Namespace.MyFactory</c>) and library code
/// that needs fresh copies (float64 replicas, parallel workers) can create it by name. Implement it in your own
/// assembly as a public class with a public parameterless constructor; reference the WideValley package for the
/// interface and TorchSharp for the module types (the host's TorchSharp is used when the assembly is loaded, so the
/// versions must agree). The network maps one input batch to one output tensor (logits (N, classes) for the
/// cross-entropy loss the CLI measures).
/// </summary>
/// <example><code>
/// public sealed class MyMlpFactory : IModelFactory
/// {
///     public string Name => "my-mlp";
///     public nn.Module&lt;Tensor, Tensor&gt; Create(ModelFactoryContext context)
///     {
///         var inputs = context.SampleShape?.Aggregate(1L, (a, b) => a * b) ?? 784;
///         return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 64), nn.ReLU(), nn.Linear(64, context.NumClasses ?? 10));
///     }
/// }
/// </code></example>
public interface IModelFactory
{
    /// <summary>A short name for messages and reports, e.g. <c>my-mlp</c>.</summary>
    string Name { get; }

    /// <summary>
    /// A freshly initialised network. Build it in <see cref="ModelFactoryContext.Dtype"/> on
    /// <see cref="ModelFactoryContext.Device"/> (or on the CPU in float32: the caller converts a module that comes back
    /// otherwise). Parameter names and shapes must not depend on anything but the context, since saved weights are
    /// matched to them by name.
    /// </summary>
    nn.Module<Tensor, Tensor> Create(ModelFactoryContext context);
}

/// <summary>What the caller knows when it asks an <see cref="IModelFactory"/> for a network.</summary>
public sealed record ModelFactoryContext
{
    /// <summary>The shape of one input sample without the batch dimension, e.g. [1, 28, 28]; null when unknown.</summary>
    public IReadOnlyList<long>? SampleShape { get; init; }

    /// <summary>The number of classes in the data (largest label + 1 for unnamed data); null when unknown.</summary>
    public int? NumClasses { get; init; }

    /// <summary>The floating type the caller will compute in. Default float32.</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float32;

    /// <summary>The device the caller will compute on. Default CPU.</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>One line for messages, e.g. "sample shape [1, 28, 28], 10 classes, Float32 on cpu".</summary>
    public string Describe() =>
        $"sample shape {(SampleShape is null ? "unknown" : "[" + string.Join(", ", SampleShape) + "]")}, " +
        $"{(NumClasses is int c ? $"{c} classes" : "classes unknown")}, {Dtype} on {Device}";
}
