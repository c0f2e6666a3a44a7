using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>One layer of <see cref="LayerwiseHessian"/>: a weight tensor whose diagonal Hessian block is measured.</summary>
/// <param name="Name">The module's name, e.g. "body.conv1".</param>
/// <param name="Parameter">The parameter's name, e.g. "body.conv1.weight".</param>
/// <param name="Count">Its number of scalars (the block is Count x Count).</param>
/// <param name="Index">0-based position among the layers, in <c>named_parameters()</c> order.</param>
/// <param name="RelativeDepth">Index / (layers - 1): 0 for the first layer, 1 for the last (0 when there is one layer); ours.</param>
public sealed record HessianLayer(string Name, string Parameter, long Count, int Index, double RelativeDepth);

/// <summary>
/// The layerwise Hessian of Sankar et al. (AAAI 2021): a "layer" is the <c>.weight</c> of every convolution and
/// linear module (biases and BatchNorm parameters excluded, as the authors' <c>get_valid_layers</c>), or any selection
/// of parameter tensors; each layer's curvature is the diagonal block H_ll = d^2 L / dW_l^2, an <see cref="Hvp"/>
/// restricted to that tensor (the gradient is taken with respect to W_l only, then differentiated again with respect
/// to W_l), and the full operator is the Hessian in every trainable parameter.
/// </summary>
public static class LayerwiseHessian
{
    /// <summary>
    /// The authors' layers of <paramref name="model"/>: the weight of every Conv1d/2d/3d, ConvTranspose and Linear module,
    /// in <c>named_parameters()</c> order.
    /// </summary>
    /// <exception cref="ArgumentException">The model has no such module with a trainable weight.</exception>
    public static IReadOnlyList<HessianLayer> WeightLayers(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var weighted = model.named_modules()
            .Where(m => IsConvOrLinear(m.module))
            .Select(m => m.name + ".weight")
            .ToHashSet(StringComparer.Ordinal);
        var names = model.named_parameters().Where(np => np.parameter.requires_grad && weighted.Contains(np.name)).Select(np => np.name).ToArray();
        if (names.Length == 0)
            throw new ArgumentException($"LayerwiseHessian: the model has no convolution or linear module with a trainable weight; its parameters are {string.Join(", ", model.named_parameters().Select(np => np.name))}.");
        return Describe(model, names);
    }

    /// <summary>
    /// The layers a <paramref name="selection"/> names: one layer per selected parameter tensor (null: <see cref="WeightLayers"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The selection names no trainable parameter or a frozen one.</exception>
    public static IReadOnlyList<HessianLayer> Layers(nn.Module model, ParameterSelection? selection)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (selection is null) return WeightLayers(model);
        var names = selection.ResolveNames(model);
        var frozen = model.named_parameters().Where(np => !np.parameter.requires_grad && names.Contains(np.name)).Select(np => np.name).ToArray();
        if (frozen.Length > 0)
            throw new ArgumentException($"LayerwiseHessian: the selection '{selection.Description}' names frozen parameter(s) {string.Join(", ", frozen)}; leave them out.");
        return Describe(model, names);
    }

    private static HessianLayer[] Describe(nn.Module model, IReadOnlyList<string> names)
    {
        var byName = model.named_parameters().ToDictionary(np => np.name, np => np.parameter.numel());
        return names.Select((name, i) => new HessianLayer(
            name.LastIndexOf('.') is var dot and > 0 ? name[..dot] : name, name, byName[name], i,
            names.Count == 1 ? 0 : (double)i / (names.Count - 1))).ToArray();
    }

    private static bool IsConvOrLinear(nn.Module module) => module is TorchSharp.Modules.Linear
        or TorchSharp.Modules.Conv1d or TorchSharp.Modules.Conv2d or TorchSharp.Modules.Conv3d
        or TorchSharp.Modules.ConvTranspose1d or TorchSharp.Modules.ConvTranspose2d or TorchSharp.Modules.ConvTranspose3d;

    /// <summary>
    /// The diagonal block H_ll of <paramref name="layer"/>: Hessian-vector products of the mean loss over
    /// <paramref name="evaluationSet"/> with respect to that tensor alone. <paramref name="options"/>' own parameter
    /// selection is replaced. Dispose it.
    /// </summary>
    public static Hvp LayerOperator(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet, HessianLayer layer,
        LandscapeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return new Hvp(model, evaluationSet, (options ?? new LandscapeOptions()) with { Parameters = ParameterSelection.Named(layer.Parameter) });
    }

    /// <summary>The full Hessian: products with respect to every trainable parameter (biases and BatchNorm included). Dispose it.</summary>
    public static Hvp FullOperator(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet, LandscapeOptions? options = null) =>
        new(model, evaluationSet, (options ?? new LandscapeOptions()) with { Parameters = ParameterSelection.All });

    /// <summary>
    /// The authors' Hessian data: <paramref name="perClass"/> training examples of every class (their
    /// <c>examples_per_class = 10</c>), drawn without replacement by a generator seeded with <paramref name="seed"/>,
    /// in class order. Returns the inputs and labels as new tensors (the caller disposes them).
    /// </summary>
    /// <exception cref="ArgumentException">perClass below 1, or a class with fewer examples than asked for.</exception>
    public static (Tensor Inputs, Tensor Labels) ExamplesPerClass(LabeledData data, int perClass, long seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (perClass < 1) throw new ArgumentException($"LayerwiseHessian.ExamplesPerClass: examples per class must be at least 1; got {perClass}.", nameof(perClass));
        using var scope = NewDisposeScope();
        var labels = data.Labels.cpu().to(ScalarType.Int64).data<long>().ToArray();
        using var generator = new Generator((ulong)seed);
        var chosen = new List<long>();
        for (var c = 0; c < data.NumClasses; c++)
        {
            var members = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).Select(i => (long)i).ToArray();
            if (members.Length < perClass)
                throw new ArgumentException($"LayerwiseHessian.ExamplesPerClass: class {c} has {members.Length} training example(s), fewer than the {perClass} asked for.", nameof(perClass));
            var order = randperm(members.Length, generator: generator).data<long>().ToArray();
            chosen.AddRange(order.Take(perClass).Select(k => members[k]));
        }
        var index = tensor(chosen.ToArray()).to(data.Labels.device);
        var inputs = data.Inputs.index_select(0, index).MoveToOuterDisposeScope();
        var selected = data.Labels.index_select(0, index).MoveToOuterDisposeScope();
        return (inputs, selected);
    }
}
