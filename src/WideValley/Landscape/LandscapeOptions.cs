using TorchSharp;
using WideValley.Distributed;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Landscape;

/// <summary>How BatchNorm layers normalise while a landscape quantity is measured.</summary>
public enum BatchNormMode
{
    /// <summary>Eval mode: the running statistics stored in the model (the network as it is used for prediction). Default.</summary>
    RunningStatistics,
    /// <summary>
    /// Train mode: each batch is normalised by its own statistics (the function that training minimised). The running
    /// statistics that train mode would update are saved before and put back afterwards, so the model is unchanged.
    /// </summary>
    BatchStatistics,
}

/// <summary>Whether dropout layers drop while a landscape quantity is measured.</summary>
public enum DropoutMode
{
    /// <summary>Eval mode: dropout is the identity, so the loss is a deterministic function of the weights. Default.</summary>
    Off,
    /// <summary>Train mode: each forward pass draws new masks from libtorch's global generator (a random loss).</summary>
    On,
}

/// <summary>
/// Which parameters a landscape quantity is taken with respect to: all of them, those whose names start with given
/// prefixes (a layer, a block), exact names, or explicit parameter objects. Names are those of
/// <c>named_parameters()</c>, e.g. "body.fc1.weight".
/// </summary>
public sealed class ParameterSelection
{
    private readonly Func<nn.Module, IReadOnlyList<string>> resolve;

    private ParameterSelection(string description, Func<nn.Module, IReadOnlyList<string>> resolve)
    {
        Description = description;
        this.resolve = resolve;
    }

    /// <summary>Human-readable description (for reports and fingerprints).</summary>
    public string Description { get; }

    /// <summary>Every trainable parameter, in <c>named_parameters()</c> order. The default.</summary>
    public static ParameterSelection All { get; } = new("all", module =>
        module.named_parameters().Where(np => np.parameter.requires_grad).Select(np => np.name).ToArray());

    /// <summary>
    /// Parameters under any of <paramref name="prefixes"/>, matched on whole segments of the dotted module path: "fc1"
    /// selects "fc1.weight" and "fc1.bias" (and "fc1" itself, a parameter of that name) but not "fc10.weight";
    /// "body.fc3" selects one layer of a body, "body" all of it.
    /// </summary>
    public static ParameterSelection ByPrefix(params string[] prefixes)
    {
        ArgumentNullException.ThrowIfNull(prefixes);
        if (prefixes.Length == 0) throw new ArgumentException("ParameterSelection.ByPrefix: give at least one name prefix.", nameof(prefixes));
        foreach (var prefix in prefixes)
            if (string.IsNullOrWhiteSpace(prefix) || prefix.StartsWith('.') || prefix.EndsWith('.'))
                throw new ArgumentException(
                    $"ParameterSelection.ByPrefix: '{prefix}' is not a module path; give dotted names such as 'body.fc1' (no leading or trailing dot).", nameof(prefixes));
        return new ParameterSelection("prefix:" + string.Join(",", prefixes), module =>
        {
            var names = module.named_parameters().Select(np => np.name).ToArray();
            foreach (var prefix in prefixes)
                if (!names.Any(n => IsUnder(n, prefix)))
                    throw new ArgumentException(
                        $"ParameterSelection.ByPrefix: no parameter name starts with '{prefix}' (matched on whole dotted segments). The model's parameters are: {string.Join(", ", names)}.");
            return names.Where(n => prefixes.Any(p => IsUnder(n, p))).ToArray();
        });
    }

    /// <summary>Whether <paramref name="name"/> is <paramref name="prefix"/> or lies below it in the module path.</summary>
    internal static bool IsUnder(string name, string prefix) =>
        name.StartsWith(prefix, StringComparison.Ordinal) && (name.Length == prefix.Length || name[prefix.Length] == '.');

    /// <summary>Exactly the named parameters, in the model's order.</summary>
    public static ParameterSelection Named(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Length == 0) throw new ArgumentException("ParameterSelection.Named: give at least one parameter name.", nameof(names));
        return new ParameterSelection("names:" + string.Join(",", names), module =>
        {
            var all = module.named_parameters().Select(np => np.name).ToArray();
            foreach (var name in names)
                if (!all.Contains(name))
                    throw new ArgumentException(
                        $"ParameterSelection.Named: the model has no parameter '{name}'. Its parameters are: {string.Join(", ", all)}.");
            return all.Where(names.Contains).ToArray();
        });
    }

    /// <summary>The given parameter objects of the model (matched by identity of the native tensor), in the model's order.</summary>
    public static ParameterSelection Of(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var handles = parameters.Select(p => p.Handle).ToHashSet();
        if (handles.Count == 0) throw new ArgumentException("ParameterSelection.Of: the parameter list is empty.", nameof(parameters));
        return new ParameterSelection($"{handles.Count} explicit parameter(s)", module =>
        {
            var matched = module.named_parameters().Where(np => handles.Contains(np.parameter.Handle)).Select(np => np.name).ToArray();
            if (matched.Length != handles.Count)
                throw new ArgumentException(
                    $"ParameterSelection.Of: {handles.Count - matched.Length} of the {handles.Count} given parameters do not belong to this model.");
            return matched;
        });
    }

    /// <summary>The selected parameter names of <paramref name="module"/>; throws if there are none.</summary>
    public IReadOnlyList<string> ResolveNames(nn.Module module)
    {
        var names = resolve(module);
        if (names.Count == 0) throw new ArgumentException($"Parameter selection '{Description}' selects no trainable parameter of the model.");
        return names;
    }
}

/// <summary>
/// The settings shared by every landscape measurement: which loss, which parameters, how BatchNorm and dropout behave,
/// and in which floating-point type the computation runs.
/// </summary>
public sealed record LandscapeOptions
{
    /// <summary>Parameters the quantity is taken with respect to (default: all trainable ones).</summary>
    public ParameterSelection Parameters { get; init; } = ParameterSelection.All;

    /// <summary>BatchNorm behaviour (default: running statistics, i.e. eval mode).</summary>
    public BatchNormMode BatchNorm { get; init; } = BatchNormMode.RunningStatistics;

    /// <summary>Dropout behaviour (default: off).</summary>
    public DropoutMode Dropout { get; init; } = DropoutMode.Off;

    /// <summary>
    /// Mean loss of one batch from (model output, labels), a scalar. Default: cross-entropy of logits (N, C) against
    /// int64 labels (N). Batches are combined weighted by their sizes, so the total is the mean over the whole set.
    /// </summary>
    public Func<Tensor, Tensor, Tensor>? Loss { get; init; }

    /// <summary>
    /// A stable name of a custom <see cref="Loss"/> that says everything it computes (e.g. "label-smoothing-0.1"): it
    /// goes into fingerprints, so that a resumed exact Hessian never mixes the columns of two losses. A delegate has no
    /// identity that survives a restart, so checkpointing with a custom loss requires this name. Ignored without a
    /// custom loss.
    /// </summary>
    public string? LossName { get; init; }

    /// <summary>
    /// Floating type to compute in. Null (default) or the model's own type: the model itself is used. Another type
    /// (typically Float64 for reference-quality numbers): a copy of the model in that type is built once, from
    /// <see cref="ModelFactory"/>; the caller's model is never converted (converting in place would replace its
    /// Parameter objects under any optimizer that holds them). The copy is a snapshot of the weights at construction.
    /// </summary>
    public ScalarType? ComputeType { get; init; }

    /// <summary>
    /// Builds an untrained network of the same architecture as the measured one, for the <see cref="ComputeType"/>
    /// copy and for parallel workers (<see cref="ExactHessianOptions.Workers"/>); the weights, buffers and train/eval
    /// flags are copied in afterwards. Its random initialisation does not disturb the global generator. For
    /// WideValley's own networks: <c>ZooCopies.FactoryFor(model)</c>.
    /// </summary>
    public Func<nn.Module<Tensor, Tensor>>? ModelFactory { get; init; }

    /// <summary>
    /// Keep the graph of the first backward pass over the whole evaluation set between Hessian-vector products, so that
    /// each product is one backward pass through it instead of a forward and two backward passes (about half the cost).
    /// The price is memory: the activations and first-backward intermediates of every batch stay alive while the
    /// weights are unchanged (checked before every product; any change rebuilds the graph). Ignored with dropout on,
    /// where each product draws fresh masks. Default: on.
    /// </summary>
    public bool ReuseGradientGraph { get; init; } = true;

    /// <summary>
    /// The ranks that share the evaluation set (our design, docs/distributed.md "Landscape measurements over ranks").
    /// Null (default) or a job of one process: today's single-process computation, bit for bit. With K &gt; 1 ranks every
    /// rank holds the same whole evaluation set (or streamed loss) and evaluates only batches b with b mod K = its rank;
    /// each product (loss value, gradient, Hessian-vector product, Gauss-Newton product, per-sample gradients, a
    /// Hessian column) is that share's part of the sample-weighted mean (weights n_b / N with N the whole set's size),
    /// summed over ranks by ONE allreduce on one flat buffer. Every rank then holds the whole set's product, equal to
    /// one process's up to the order of summation, and runs the same outer algorithm (Lanczos, SLQ, Hutchinson, the
    /// exact Hessian) on identical vectors; random probes come from the same seed on every rank, so nothing else is
    /// sent. Every rank must make the same calls in the same order (MPI's rule): build the same operator with the same
    /// options on every rank. Not part of <see cref="Describe"/>: the split does not change the quantity measured.
    /// </summary>
    public ICollectives? Collectives { get; init; }

    /// <summary>One line describing the options (for fingerprints and reports).</summary>
    public string Describe() =>
        $"params={Parameters.Description};bn={BatchNorm};dropout={Dropout};loss={LossIdentity ?? "custom"};type={ComputeType?.ToString() ?? "model"}";

    /// <summary>"cross-entropy" for the default loss, "custom:NAME" for a named custom loss, null for an anonymous one.</summary>
    internal string? LossIdentity => Loss is null ? "cross-entropy" : LossName is { Length: > 0 } name ? "custom:" + name : null;
}

/// <summary>One parameter tensor's place in the flat vector of the selected parameters.</summary>
/// <param name="Name">Name as in <c>named_parameters()</c>.</param>
/// <param name="Offset">Index of its first element in the flat vector.</param>
/// <param name="Count">Number of elements.</param>
/// <param name="Shape">Shape of the parameter tensor.</param>
public sealed record ParameterBlock(string Name, long Offset, long Count, long[] Shape)
{
    /// <summary>The module the parameter belongs to: the name without its last component ("body.fc1" for "body.fc1.weight").</summary>
    public string ModuleName => Name.LastIndexOf('.') is var dot and > 0 ? Name[..dot] : Name;
}

/// <summary>How per-layer quantities group the parameters.</summary>
public enum LayerGrouping
{
    /// <summary>One block per parameter tensor (weight and bias separately).</summary>
    PerParameterTensor,
    /// <summary>One block per module (weight and bias of a layer together).</summary>
    PerModule,
}

/// <summary>
/// The layout of the selected parameters in one flat vector: parameter i occupies
/// [Offset_i, Offset_i + Count_i) in <c>named_parameters()</c> order.
/// </summary>
public sealed class ParameterLayout
{
    /// <summary>Builds a layout from blocks in order (offsets must be consecutive).</summary>
    public ParameterLayout(IReadOnlyList<ParameterBlock> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        long offset = 0;
        foreach (var block in blocks)
        {
            if (block.Offset != offset)
                throw new ArgumentException($"ParameterLayout: block '{block.Name}' starts at {block.Offset}, expected {offset} (blocks must be consecutive).");
            offset += block.Count;
        }
        Blocks = blocks;
        Dimension = offset;
    }

    /// <summary>The parameter tensors, in order.</summary>
    public IReadOnlyList<ParameterBlock> Blocks { get; }

    /// <summary>Total number of selected scalar parameters.</summary>
    public long Dimension { get; }

    /// <summary>Groups of consecutive blocks (name, first offset, element count) for per-layer results.</summary>
    public IReadOnlyList<(string Name, long Offset, long Count)> Groups(LayerGrouping grouping)
    {
        if (grouping == LayerGrouping.PerParameterTensor)
            return Blocks.Select(b => (b.Name, b.Offset, b.Count)).ToArray();
        var groups = new List<(string Name, long Offset, long Count)>();
        foreach (var block in Blocks)
        {
            if (groups.Count > 0 && groups[^1].Name == block.ModuleName)
                groups[^1] = (block.ModuleName, groups[^1].Offset, groups[^1].Count + block.Count);
            else
                groups.Add((block.ModuleName, block.Offset, block.Count));
        }
        return groups;
    }

    /// <summary>Views of <paramref name="flat"/> shaped like each parameter (no copies).</summary>
    public Tensor[] Views(Tensor flat) =>
        Blocks.Select(b => flat.narrow(0, b.Offset, b.Count).view(b.Shape)).ToArray();

    /// <summary>
    /// Views of <paramref name="tail"/>, a flat vector holding only the blocks from <paramref name="firstBlock"/> on
    /// (length Dimension - Offset of that block), shaped like each of those parameters.
    /// </summary>
    public Tensor[] Views(Tensor tail, int firstBlock)
    {
        var start = Blocks[firstBlock].Offset;
        return Blocks.Skip(firstBlock).Select(b => tail.narrow(0, b.Offset - start, b.Count).view(b.Shape)).ToArray();
    }

    /// <summary>Index of the block holding flat position <paramref name="index"/>.</summary>
    public int BlockOf(long index)
    {
        if (index < 0 || index >= Dimension)
            throw new ArgumentOutOfRangeException(nameof(index), $"ParameterLayout: position {index} is outside [0, {Dimension}).");
        var lo = 0;
        var hi = Blocks.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (Blocks[mid].Offset <= index) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>Checks that <paramref name="vector"/> is a flat vector of this layout's length.</summary>
    public void CheckVector(Tensor vector, string what, string where)
    {
        ArgumentNullException.ThrowIfNull(vector, what);
        if (vector.dim() != 1 || vector.shape[0] != Dimension)
            throw new ArgumentException(
                $"{where}: {what} must be a flat vector of {Dimension} elements (the selected parameters); got shape ({string.Join(", ", vector.shape)}).", what);
        if (!vector.is_floating_point())
            throw new ArgumentException($"{where}: {what} must be floating point; got {vector.dtype}.", what);
    }
}
