using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>The distribution of Hutchinson probes: both have E[v vᵀ] = I, so E[vᵀ H v] = tr(H).</summary>
public enum HessianTraceProbe
{
    /// <summary>Standard normal entries (the authors' committed code, <c>torch.randn_like</c>); Var[vᵀHv] = 2‖H‖_F².</summary>
    Gaussian,
    /// <summary>±1 entries with equal probability; Var[vᵀHv] = 2(‖H‖_F² − Σ H_ii²), exact for a diagonal H.</summary>
    Rademacher,
}

/// <summary>How <see cref="HessianTraceRegularizer"/> estimates each probe's vᵀHv and its gradient.</summary>
public enum HessianTraceEstimator
{
    /// <summary>
    /// The authors' code: Hv by double backward with the graph kept, so the trainer back-propagates through it
    /// (third-order terms); about 2K extra backward passes of the double-backward kind per application.
    /// </summary>
    Exact,
    /// <summary>
    /// Ours: the central second difference (L(θ+εv) − 2L(θ) + L(θ−εv))/ε² and, as its gradient, the same difference of
    /// first-order gradients; two extra forward+backward passes per probe. Bias O(ε²) (see
    /// <see cref="HessianTraceRegularizerOptions.FiniteDifferenceStep"/>).
    /// </summary>
    FiniteDifference,
    /// <summary>
    /// Ours: the penalised objective L + γ·vᵀHv replaced by its antithetic expansion ½(L(θ+σv) + L(θ−σv)) with
    /// σ = √(2γ), which equals L + γ·vᵀHv + (γ²/6)·∂⁴L[v,v,v,v] + …, and its gradient by the mean of the two
    /// perturbed gradients. ∇L(θ) cancels out, so a penalised step costs the trainer's forward pass plus two
    /// forward+backward passes per probe and no backward pass at θ (<see cref="ILossRegularizer.Objective"/>).
    /// The step is fixed by γ (no <see cref="HessianTraceRegularizerOptions.FiniteDifferenceStep"/>): the perturbation's
    /// length is σ‖v‖ ≈ √(2γn) for n penalised weights.
    /// </summary>
    Antithetic,
}

/// <summary>Which kind of parameter selection a <see cref="HessianTraceParameters"/> is.</summary>
public enum HessianTraceSelectionKind
{
    /// <summary>Every trainable parameter tensor.</summary>
    All,
    /// <summary>The authors' middle mask (<c>middle_penalization.py --middle</c>): <see cref="HessianTraceParameters.AuthorsMiddle"/>.</summary>
    AuthorsMiddle,
    /// <summary>The authors' inverted mask (<c>middle_penalization.py</c> without <c>--middle</c>).</summary>
    AuthorsNonMiddle,
    /// <summary>Tensors named explicitly (ours).</summary>
    Named,
}

/// <summary>
/// The parameter tensors whose diagonal Hessian blocks the regulariser penalises: the estimate is Σ over the selected
/// tensors S of tr(H_SS), from probes that are zero outside S (one joint probe over all selected tensors).
/// </summary>
[JsonConverter(typeof(HessianTraceParametersJsonConverter))]
public sealed class HessianTraceParameters : IEquatable<HessianTraceParameters>
{
    HessianTraceParameters(HessianTraceSelectionKind kind, IReadOnlyList<string> names) => (Kind, Names) = (kind, names);

    /// <summary>Which selection this is.</summary>
    public HessianTraceSelectionKind Kind { get; }

    /// <summary>For <see cref="HessianTraceSelectionKind.Named"/>: the names given (empty otherwise).</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Every trainable parameter tensor (the authors' <c>ht_penalization.py</c>).</summary>
    public static HessianTraceParameters All { get; } = new(HessianTraceSelectionKind.All, []);

    /// <summary>
    /// The authors' middle-layers mask, as coded in <c>middle_penalization.py</c>: number the model's
    /// <c>named_parameters()</c> 0..n−1 (every tensor: weights, biases and BatchNorm parameters alike) and keep indices
    /// ⌊n/4⌋..⌊3n/4⌋ inclusive. For LeNet (10 tensors) that is 2..7: conv2, fc1 and fc2 with their biases. Note that
    /// this "layer" (any tensor) differs from the layerwise-spectrum paper's (each Conv/Linear weight).
    /// </summary>
    public static HessianTraceParameters AuthorsMiddle { get; } = new(HessianTraceSelectionKind.AuthorsMiddle, []);

    /// <summary>The complement of <see cref="AuthorsMiddle"/> (what the authors' script penalises without <c>--middle</c>).</summary>
    public static HessianTraceParameters AuthorsNonMiddle { get; } = new(HessianTraceSelectionKind.AuthorsNonMiddle, []);

    /// <summary>
    /// Tensors chosen by name (ours): each name is a parameter's full name (<c>fc1.weight</c>) or a module's
    /// (<c>fc1</c>, selecting all of its parameters).
    /// </summary>
    /// <exception cref="ArgumentException">No names, a blank name, or a name given twice.</exception>
    public static HessianTraceParameters Named(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var list = names.ToList();
        if (list.Count == 0)
            throw new ArgumentException("HTR parameter selection: give at least one parameter or module name.", nameof(names));
        if (list.FirstOrDefault(string.IsNullOrWhiteSpace) is not null)
            throw new ArgumentException($"HTR parameter selection: a name is blank in [{string.Join(", ", list)}].", nameof(names));
        if (list.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"HTR parameter selection: '{twice.Key}' is given twice.", nameof(names));
        return new(HessianTraceSelectionKind.Named, list);
    }

    /// <summary>
    /// Reads "all", "middle" (the authors' mask), "non-middle" (its inverse) or a comma-separated list of parameter or
    /// module names.
    /// </summary>
    /// <exception cref="ArgumentException">Empty text or a list with a blank or repeated name.</exception>
    public static HessianTraceParameters Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        return trimmed.ToLowerInvariant() switch
        {
            "" => throw new ArgumentException("HTR parameter selection: expected all, middle, non-middle or a comma-separated list of parameter names; got an empty string.", nameof(text)),
            "all" => All,
            "middle" => AuthorsMiddle,
            "non-middle" => AuthorsNonMiddle,
            _ => Named(trimmed.Split(',').Select(n => n.Trim())),
        };
    }

    /// <summary>The authors' middle indices for a model of <paramref name="tensorCount"/> parameter tensors: ⌊n/4⌋..⌊3n/4⌋ inclusive.</summary>
    public static (int First, int Last) AuthorsMiddleRange(int tensorCount) => (tensorCount / 4, 3 * tensorCount / 4);

    /// <summary>
    /// The selected tensors of <paramref name="model"/>, in the model's order. Frozen tensors (requires_grad false)
    /// are left out of the masks; naming one is an error.
    /// </summary>
    /// <exception cref="ArgumentException">The selection is empty for this model, or a name matches no parameter or a frozen one.</exception>
    public IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> Select(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var all = model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        if (all.Count == 0) throw new ArgumentException("HTR: the model has no parameters.", nameof(model));
        var (first, last) = AuthorsMiddleRange(all.Count);
        List<(string, TorchSharp.Modules.Parameter)> chosen;
        switch (Kind)
        {
            case HessianTraceSelectionKind.All:
                chosen = all;
                break;
            case HessianTraceSelectionKind.AuthorsMiddle:
                chosen = all.Where((_, i) => i >= first && i <= last).ToList();
                break;
            case HessianTraceSelectionKind.AuthorsNonMiddle:
                chosen = all.Where((_, i) => i < first || i > last).ToList();
                break;
            default:
                foreach (var name in Names)
                {
                    var hits = all.Where(p => Matches(p.name, name)).ToList();
                    if (hits.Count == 0)
                        throw new ArgumentException(
                            $"HTR parameter selection: '{name}' names no parameter or module of the model; its parameters are {string.Join(", ", all.Select(p => p.name))}.",
                            nameof(model));
                    if (hits.FirstOrDefault(p => !p.parameter.requires_grad) is { name: not null } frozen)
                        throw new ArgumentException($"HTR parameter selection: '{frozen.name}' is frozen (requires_grad is false); its Hessian block cannot be differentiated.", nameof(model));
                }
                chosen = all.Where(p => Names.Any(n => Matches(p.name, n))).ToList();
                break;
        }
        chosen = chosen.Where(p => p.Item2.requires_grad).ToList();
        if (chosen.Count == 0)
            throw new ArgumentException($"HTR parameter selection '{this}' keeps no trainable tensor of this model (tensors: {string.Join(", ", all.Select(p => p.name))}).", nameof(model));
        return chosen;
    }

    static bool Matches(string parameter, string name) => parameter == name || parameter.StartsWith(name + ".", StringComparison.Ordinal);

    /// <summary>Same kind and the same names in the same order (so that options records and run configurations compare by value).</summary>
    public bool Equals(HessianTraceParameters? other) => other is not null && Kind == other.Kind && Names.SequenceEqual(other.Names);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as HessianTraceParameters);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Kind, string.Join(",", Names));

    /// <summary>The text <see cref="Parse"/> reads back.</summary>
    public override string ToString() => Kind switch
    {
        HessianTraceSelectionKind.All => "all",
        HessianTraceSelectionKind.AuthorsMiddle => "middle",
        HessianTraceSelectionKind.AuthorsNonMiddle => "non-middle",
        _ => string.Join(",", Names),
    };
}

/// <summary>Stores a <see cref="HessianTraceParameters"/> as the text <see cref="HessianTraceParameters.Parse"/> reads (in run configurations).</summary>
public sealed class HessianTraceParametersJsonConverter : JsonConverter<HessianTraceParameters>
{
    /// <inheritdoc/>
    public override HessianTraceParameters Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
            throw new JsonException($"HTR parameter selection: expected a string (all, middle, non-middle or names), got {reader.TokenType}.");
        try
        {
            return HessianTraceParameters.Parse(reader.GetString()!);
        }
        catch (ArgumentException e)
        {
            throw new JsonException(e.Message, e);
        }
    }

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, HessianTraceParameters value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}

/// <summary>Settings of <see cref="HessianTraceRegularizer"/>; the defaults are the authors' script defaults where a library default makes sense.</summary>
public sealed record HessianTraceRegularizerOptions
{
    /// <summary>γ, the penalty's weight (authors' <c>-gamma</c>; default 1e-3). Positive and finite.</summary>
    public double Gamma { get; init; } = 1e-3;

    /// <summary>K, Hutchinson probes per application, one Hessian-vector product each (authors' <c>-hi</c>; default 10).</summary>
    public int Probes { get; init; } = 10;

    /// <summary>The probe distribution (default Gaussian, as the authors' committed code; their scripts.sh says Rademacher).</summary>
    public HessianTraceProbe Probe { get; init; } = HessianTraceProbe.Gaussian;

    /// <summary>
    /// Apply the penalty on steps 0, freq, 2·freq, … of each epoch (the authors' <c>step % freq == 0</c>, step counted
    /// from 0 in every epoch; default 50). 1 applies it on every step.
    /// </summary>
    public int Frequency { get; init; } = 50;

    /// <summary>
    /// The first epoch (1-based, as the trainer counts) with the penalty; default 1. The authors count epochs from 0
    /// and test <c>epoch &gt;= sp</c>: their <c>-sp s</c> is <c>StartEpoch = s + 1</c> (<see cref="StartEpochForAuthorsSp"/>).
    /// </summary>
    public int StartEpoch { get; init; } = 1;

    /// <summary>Which tensors' diagonal Hessian blocks are penalised (default all).</summary>
    public HessianTraceParameters Parameters { get; init; } = HessianTraceParameters.All;

    /// <summary>Seed of the probes; the probes of gradient evaluation t come from a generator seeded by (Seed, t). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>How vᵀHv and its gradient are computed (default <see cref="HessianTraceEstimator.Exact"/>, the authors' double backward).</summary>
    public HessianTraceEstimator Estimator { get; init; } = HessianTraceEstimator.Exact;

    /// <summary>
    /// c, the relative step of <see cref="HessianTraceEstimator.FiniteDifference"/>: each probe v is scaled to
    /// ε·v with ε = c·max(‖θ_S‖, 1)/‖v‖, so the perturbation's length is c times the selected weights' norm (at least c).
    /// Default 0.01, near the float32 optimum of a second difference: rounding contributes about 4u·L/ε² (u = 6e-8) and
    /// truncation (ε²/12)·∂⁴L[v,v,v,v], balanced where ε ~ u^¼ ≈ 0.016 relative. In (0, 1).
    /// </summary>
    public double FiniteDifferenceStep { get; init; } = 0.01;

    /// <summary>Our <see cref="StartEpoch"/> for the authors' <c>-sp</c> (0-based epochs): sp + 1.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sp"/> is negative.</exception>
    public static int StartEpochForAuthorsSp(int sp) =>
        sp >= 0 ? sp + 1 : throw new ArgumentOutOfRangeException(nameof(sp), sp, "the authors' -sp (first 0-based epoch with the penalty) must be 0 or more");

    /// <summary>Refuses settings the regulariser cannot run, naming the property and what was expected.</summary>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public void Validate()
    {
        if (!double.IsFinite(Gamma) || Gamma <= 0)
            throw new ArgumentOutOfRangeException(nameof(Gamma), Gamma, "HTR: Gamma (--htr-gamma) must be a positive finite number");
        if (Probes < 1)
            throw new ArgumentOutOfRangeException(nameof(Probes), Probes, "HTR: Probes (--htr-probes) must be at least 1");
        if (!Enum.IsDefined(Probe))
            throw new ArgumentOutOfRangeException(nameof(Probe), Probe, "HTR: Probe must be Gaussian or Rademacher");
        if (Frequency < 1)
            throw new ArgumentOutOfRangeException(nameof(Frequency), Frequency, "HTR: Frequency (--htr-freq) must be at least 1 (1 = every step)");
        if (StartEpoch < 1)
            throw new ArgumentOutOfRangeException(nameof(StartEpoch), StartEpoch, "HTR: StartEpoch (--htr-start-epoch) is 1-based and must be at least 1");
        if (!Enum.IsDefined(Estimator))
            throw new ArgumentOutOfRangeException(nameof(Estimator), Estimator, "HTR: Estimator (--htr-estimator) must be exact, finite-difference or antithetic");
        if (!double.IsFinite(FiniteDifferenceStep) || FiniteDifferenceStep <= 0 || FiniteDifferenceStep >= 1)
            throw new ArgumentOutOfRangeException(nameof(FiniteDifferenceStep), FiniteDifferenceStep, "HTR: FiniteDifferenceStep (--htr-fd-step) is the perturbation's length relative to the weights' norm and must lie in (0, 1)");
        if (Parameters is null)
            throw new ArgumentException("HTR: Parameters must be set (HessianTraceParameters.All, AuthorsMiddle, AuthorsNonMiddle or Named).", nameof(Parameters));
    }
}

/// <summary>
/// The Hessian-trace regulariser (HTR; Sankar et al., AAAI 2021, as the authors coded it in <c>yashkhasbage25/HTR</c>):
/// <code>
/// loss = L_B + γ · (1/K) Σ_k v_kᵀ ∇²L_B v_k     on steps with step % freq == 0 in epochs ≥ StartEpoch, else L_B
/// g    = ∇L_B              (autograd.grad, create_graph)
/// H v  = ∇(g · v)          (autograd.grad, create_graph: the estimate keeps its graph)
/// </code>
/// L_B is the minibatch loss, v_k is one joint probe over all selected tensors (zero elsewhere), so
/// E[penalty] = γ · Σ_{selected l} tr(H_ll). The trainer back-propagates through the estimate (third-order terms), so
/// every parameter, selected or not, receives the penalty's gradient. Each application costs K Hessian-vector products
/// (about 2K extra backward passes). <see cref="HessianTraceRegularizerOptions.Estimator"/> =
/// <see cref="HessianTraceEstimator.FiniteDifference"/> (ours) replaces the double backward by second differences of the
/// loss and its gradient (<see cref="FiniteDifferenceEstimate"/>), and <see cref="HessianTraceEstimator.Antithetic"/>
/// (ours) trains on ½(L(θ+√(2γ)v) + L(θ−√(2γ)v)), which matches the penalised loss to second order in γ
/// (<see cref="AntitheticObjective"/>). Plug it into <see cref="TrainerOptions.Regularizer"/>; it composes with any
/// optimizer. Probes are drawn per gradient evaluation from a generator seeded by (Seed, evaluation index), so runs
/// and resumed runs repeat exactly.
/// </summary>
/// <example><code>
/// var htr = new HessianTraceRegularizer(new HessianTraceRegularizerOptions { Gamma = 1e-5, Frequency = 50, StartEpoch = 21 });
/// var trainer = new Trainer(task, optimizer, new TrainerOptions { Epochs = 40, Regularizer = htr });
/// </code></example>
public sealed partial class HessianTraceRegularizer : ILossRegularizer
{
    nn.Module? _cachedModel;
    IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)>? _cachedSelection;

    /// <summary>A regulariser with <paramref name="options"/> (validated here).</summary>
    /// <exception cref="ArgumentException">An option is out of range (<see cref="HessianTraceRegularizerOptions.Validate"/>).</exception>
    public HessianTraceRegularizer(HessianTraceRegularizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The settings in force.</summary>
    public HessianTraceRegularizerOptions Options { get; }

    /// <summary>Penalties computed so far (each costs <see cref="HessianTraceRegularizerOptions.Probes"/> Hessian-vector products).</summary>
    public long Applications { get; private set; }

    /// <summary>Whether the penalty applies at (1-based) <paramref name="epoch"/>, 0-based step <paramref name="stepInEpoch"/>.</summary>
    public bool AppliesAt(int epoch, long stepInEpoch) => epoch >= Options.StartEpoch && stepInEpoch % Options.Frequency == 0;

    /// <inheritdoc/>
    /// <remarks>
    /// With <see cref="HessianTraceEstimator.Antithetic"/> the term is the antithetic objective minus the loss: right in
    /// value and gradient, but back-propagating Loss + term walks the loss's graph for nothing; the trainer calls
    /// <see cref="Objective"/>, which does not.
    /// </remarks>
    public Tensor? Penalty(RegularizationContext context)
    {
        if (!AppliesAt(context.Epoch, context.StepInEpoch)) return null;
        if (Options.Estimator == HessianTraceEstimator.Antithetic)
            return AntitheticObjectiveAt(context).sub(context.Loss);
        Tensor estimate;
        if (Options.Estimator == HessianTraceEstimator.Exact)
            estimate = TraceEstimate(context.Model, context.Loss, context.GradientEvaluation);
        else
        {
            var reevaluate = Reevaluation(context);
            var (_, dimension, dtype) = Checked(context.Model, context.Loss);
            using var probes = DrawProbes(context.GradientEvaluation, dimension, dtype);
            estimate = FiniteDifferenceEstimate(context.Model, context.Loss, reevaluate, probes);
        }
        Applications++;
        using var gamma = Options.Gamma.ToScalar();
        return estimate.mul(gamma);
    }

    /// <inheritdoc/>
    public Tensor? Objective(RegularizationContext context)
    {
        if (Options.Estimator != HessianTraceEstimator.Antithetic)
            return Penalty(context) is { } term ? context.Loss.add(term) : null;
        return AppliesAt(context.Epoch, context.StepInEpoch) ? AntitheticObjectiveAt(context) : null;
    }

    Tensor AntitheticObjectiveAt(RegularizationContext context)
    {
        var reevaluate = Reevaluation(context);
        var (_, dimension, dtype) = Checked(context.Model, context.Loss);
        using var probes = DrawProbes(context.GradientEvaluation, dimension, dtype);
        var objective = AntitheticObjective(context.Model, context.Loss, reevaluate, probes);
        Applications++;
        return objective;
    }

    Func<Tensor> Reevaluation(RegularizationContext context) => context.ReevaluateLoss ?? throw new InvalidOperationException(
        $"HTR: the {(Options.Estimator == HessianTraceEstimator.Antithetic ? "antithetic" : "finite-difference")} estimator re-runs the minibatch at perturbed weights, and this task cannot re-evaluate its minibatch (only classification tasks can); use --htr-estimator exact.");

    /// <summary>The names of the tensors <paramref name="model"/>'s selection keeps, in order.</summary>
    public IReadOnlyList<string> SelectedNames(nn.Module model) => Selection(model).Select(p => p.Name).ToList();

    /// <summary>The number of selected scalar parameters: the probes' length.</summary>
    public long SelectedDimension(nn.Module model) => Selection(model).Sum(p => p.Parameter.numel());

    /// <summary>
    /// The K probes the estimate of stream <paramref name="probeStream"/> uses, as rows of a new [K, dimension] CPU
    /// tensor of <paramref name="dtype"/> (laid out as the selected tensors, in order, flattened).
    /// </summary>
    /// <exception cref="ArgumentException">A non-positive dimension or a non-floating type.</exception>
    public Tensor DrawProbes(long probeStream, long dimension, ScalarType dtype)
    {
        if (dimension < 1) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "HTR probes need a positive dimension");
        if (!is_floating_point(dtype)) throw new ArgumentException($"HTR probes must be floating point; got {dtype}.", nameof(dtype));
        using var generator = new Generator(MixSeed(Options.Seed, probeStream));
        long[] shape = [Options.Probes, dimension];
        if (Options.Probe == HessianTraceProbe.Gaussian) return randn(shape, dtype, generator: generator);
        var signs = randint(0, 2, shape, dtype, generator: generator);
        return signs.Scale_(2).Shift_(-1);
    }

    /// <summary>
    /// (1/K) Σ_k v_kᵀ H v_k for the Hessian H of <paramref name="loss"/> over the selected tensors, with the probes of
    /// stream <paramref name="probeStream"/> (<see cref="DrawProbes"/>); differentiable (its graph is kept).
    /// </summary>
    /// <exception cref="ArgumentException">The loss is not a scalar with a gradient graph, or the selection is empty or mixes types or devices.</exception>
    public Tensor TraceEstimate(nn.Module model, Tensor loss, long probeStream)
    {
        var (_, dimension, dtype) = Checked(model, loss);
        using var probes = DrawProbes(probeStream, dimension, dtype);
        return TraceEstimate(model, loss, probes);
    }

    /// <summary>
    /// (1/K') Σ_k v_kᵀ H v_k with the given probes (rows of <paramref name="probes"/>, [K', dimension], laid out as
    /// the selected tensors in order): e.g. all 2^n sign patterns, which make the estimate the exact trace.
    /// Differentiable; the probes are constants.
    /// </summary>
    /// <exception cref="ArgumentException">The loss is not a scalar with a gradient graph, or the probes' shape does not match the selection.</exception>
    public Tensor TraceEstimate(nn.Module model, Tensor loss, Tensor probes)
    {
        ArgumentNullException.ThrowIfNull(probes);
        var (selection, dimension, dtype) = Checked(model, loss);
        // Everything autograd.grad is handed is checked first: an error inside it aborts the process.
        if (probes.dim() != 2 || probes.shape[1] != dimension || probes.shape[0] < 1)
            throw new ArgumentException(
                $"HTR: the probes must be a [K, {dimension}] tensor (K ≥ 1 rows over the selected tensors {string.Join(", ", selection.Select(p => p.Name))}); got [{string.Join(", ", probes.shape)}].",
                nameof(probes));
        if (!probes.is_floating_point())
            throw new ArgumentException($"HTR: the probes must be floating point; got {probes.dtype}.", nameof(probes));
        var parameters = selection.Select(p => (Tensor)p.Parameter).ToList();
        var device = parameters[0].device;
        var v = probes.detach().to(dtype, device);
        var gradients = autograd.grad([loss], parameters, create_graph: true, retain_graph: true, allow_unused: true);
        Tensor? sum = null;
        var count = probes.shape[0];
        for (long k = 0; k < count; k++)
        {
            var row = v[k];
            var views = new Tensor[parameters.Count];
            long offset = 0;
            for (var i = 0; i < parameters.Count; i++)
            {
                var n = parameters[i].numel();
                views[i] = row.narrow(0, offset, n).view(parameters[i].shape);
                offset += n;
            }
            Tensor? dot = null;
            for (var i = 0; i < parameters.Count; i++)
            {
                if (gradients[i].IsInvalid || !gradients[i].requires_grad) continue;
                var term = gradients[i].mul(views[i]).sum();
                dot = dot is null ? term : dot.Plus(term);
            }
            // A gradient that does not depend on the parameters (a loss linear in them) has a zero Hessian.
            if (dot is null || !dot.requires_grad) continue;
            var hv = autograd.grad([dot], parameters, create_graph: true, retain_graph: true, allow_unused: true);
            for (var i = 0; i < parameters.Count; i++)
            {
                if (hv[i].IsInvalid) continue;
                var term = hv[i].mul(views[i]).sum();
                sum = sum is null ? term : sum.Plus(term);
            }
        }
        return sum is null ? zeros([], dtype, device) : sum.DividedBy(count);
    }

    (IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> Selection, long Dimension, ScalarType Dtype) Checked(nn.Module model, Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(loss);
        if (loss.numel() != 1)
            throw new ArgumentException($"HTR: the loss must be a scalar (the minibatch's mean loss); got shape [{string.Join(", ", loss.shape)}].", nameof(loss));
        if (!loss.requires_grad)
            throw new ArgumentException("HTR: the loss has no gradient graph (computed under no_grad, or from frozen parameters only).", nameof(loss));
        var selection = Selection(model);
        var first = selection[0].Parameter;
        if (selection.FirstOrDefault(p => p.Parameter.dtype != first.dtype || p.Parameter.device.ToString() != first.device.ToString()) is { Name: not null } odd)
            throw new ArgumentException(
                $"HTR: the selected tensors must share one type and device; '{selection[0].Name}' is {first.dtype} on {first.device}, '{odd.Name}' is {odd.Parameter.dtype} on {odd.Parameter.device}.",
                nameof(model));
        return (selection, selection.Sum(p => p.Parameter.numel()), first.dtype);
    }

    IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> Selection(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!ReferenceEquals(model, _cachedModel) || _cachedSelection is null)
        {
            _cachedSelection = Options.Parameters.Select(model);
            _cachedModel = model;
        }
        return _cachedSelection;
    }

    /// <summary>SplitMix64 of the seed and the stream: nearby streams get unrelated generators.</summary>
    static ulong MixSeed(long seed, long stream)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)stream + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }
}
