using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>The finite-difference estimator of <see cref="HessianTraceRegularizer"/> (ours; <see cref="HessianTraceEstimator.FiniteDifference"/>).</summary>
public sealed partial class HessianTraceRegularizer
{
    // Persistent flat buffers, reused across applications (rebuilt when the model or its type changes).
    nn.Module? _fdModel;
    ScalarType _fdDtype;
    Tensor? _fdSaved;        // θ_S, the selected weights before the perturbations, flat
    Tensor? _fdPerturbed;    // θ_S ± εv, flat
    Tensor? _fdGradientSum;  // Σ_k (∇L(θ+ε_k v_k) + ∇L(θ−ε_k v_k)) / ε_k², over every trainable tensor, flat
    Tensor[] _fdGradientViews = [];
    Tensor[] _fdSavedBuffers = [];
    List<Tensor> _fdTrainable = [];

    /// <summary>
    /// (1/K') Σ_k vᵀHv by central second differences, with the given probes (rows of <paramref name="probes"/>, laid
    /// out as the selected tensors, as for <see cref="TraceEstimate(nn.Module, Tensor, Tensor)"/>):
    /// <code>
    /// value    = (1/K') Σ_k (L(θ+ε_k v_k) − 2L(θ) + L(θ−ε_k v_k)) / ε_k²,   ε_k = c·max(‖θ_S‖, 1)/‖v_k‖
    /// gradient = (1/K') Σ_k (∇L(θ+ε_k v_k) − 2∇L(θ) + ∇L(θ−ε_k v_k)) / ε_k²   (ε_k held constant)
    /// </code>
    /// The returned scalar is the surrogate Σ_t ⟨θ_t, stopgrad(G_t)⟩ − c₀·<paramref name="loss"/> shifted to the value
    /// above (s − stopgrad(s) + value), with G the perturbed gradients' weighted sum and c₀ = (2/K')Σ_k 1/ε_k²: its
    /// backward through <paramref name="loss"/>'s own graph yields exactly the gradient above, so ∇L(θ) is the one the
    /// trainer's backward pass computes anyway. Each probe costs two calls of <paramref name="reevaluate"/> and two
    /// first-order backward passes. The weights are written in place through their memory (no autograd version bump,
    /// so <paramref name="loss"/>'s graph stays usable) and restored by copying the saved bytes back: bit-identical
    /// afterwards. Module buffers (BatchNorm running statistics) are saved and restored around every re-evaluation, so
    /// they are updated once per step, by the trainer's forward pass. CPU tensors only.
    /// </summary>
    /// <param name="model">The network; its selection (<see cref="HessianTraceRegularizerOptions.Parameters"/>) is perturbed.</param>
    /// <param name="loss">The minibatch loss at θ, with its graph.</param>
    /// <param name="reevaluate">Recomputes the same minibatch's loss at the current weights (same mode and dropout masks).</param>
    /// <param name="probes">[K', dimension] probes.</param>
    /// <exception cref="ArgumentException">The loss or probes are malformed, or a tensor is not a contiguous CPU tensor.</exception>
    public Tensor FiniteDifferenceEstimate(nn.Module model, Tensor loss, Func<Tensor> reevaluate, Tensor probes)
    {
        var step = Options.FiniteDifferenceStep;
        var passes = PerturbedPasses(model, loss, reevaluate, probes, (scale, norm) =>
        {
            var epsilon = step * scale / norm;
            return (epsilon, 1 / (epsilon * epsilon));
        });
        // Each probe's −2L(θ)/ε_k²: in the value with L(θ)'s number, in the gradient through the loss's own graph.
        var count = probes.shape[0];
        var value = (passes.WeightedLossSum - loss.ToDouble() * passes.WeightSum * 2) / count;
        return Surrogate(loss, -2 * passes.WeightSum / count, value);
    }

    /// <summary>
    /// The antithetic objective of <see cref="HessianTraceEstimator.Antithetic"/> (ours), with the given probes (rows
    /// of <paramref name="probes"/>, laid out as the selected tensors):
    /// <code>
    /// value    = (1/K') Σ_k ½(L(θ+σv_k) + L(θ−σv_k)),   σ = √(2γ)
    ///          = L(θ) + γ·(1/K') Σ_k v_kᵀHv_k + (γ²/6)·(1/K') Σ_k ∂⁴L[v_k,v_k,v_k,v_k] + O(γ³)
    /// gradient = (1/K') Σ_k ½(∇L(θ+σv_k) + ∇L(θ−σv_k))
    /// </code>
    /// the penalised loss L + γ·vᵀHv to second order in γ (exactly, for a loss whose fourth derivatives vanish), and
    /// the expansion of the Gaussian-smoothed loss E[L(θ+σv)] when the probes are Gaussian. The returned scalar's graph
    /// does not reach <paramref name="loss"/> (its value is not used either), so back-propagating it costs nothing at θ:
    /// ∇L(θ) cancels out of the penalised gradient. A zero probe (θ+σv = θ) contributes L(θ) through
    /// <paramref name="loss"/>'s graph. Each probe costs two calls of <paramref name="reevaluate"/> and two first-order
    /// backward passes; the weights and module buffers are restored bit for bit as by <see cref="FiniteDifferenceEstimate"/>.
    /// CPU tensors only.
    /// </summary>
    /// <param name="model">The network; its selection (<see cref="HessianTraceRegularizerOptions.Parameters"/>) is perturbed.</param>
    /// <param name="loss">The minibatch loss at θ, with its graph.</param>
    /// <param name="reevaluate">Recomputes the same minibatch's loss at the current weights (same mode and dropout masks).</param>
    /// <param name="probes">[K', dimension] probes.</param>
    /// <exception cref="ArgumentException">The loss or probes are malformed, or a tensor is not a contiguous CPU tensor.</exception>
    public Tensor AntitheticObjective(nn.Module model, Tensor loss, Func<Tensor> reevaluate, Tensor probes)
    {
        var sigma = Math.Sqrt(2 * Options.Gamma);
        var passes = PerturbedPasses(model, loss, reevaluate, probes, (_, _) => (sigma, 0.5));
        var count = probes.shape[0];
        var zeroProbes = passes.ZeroProbes;
        var value = (passes.WeightedLossSum + (zeroProbes > 0 ? zeroProbes * loss.ToDouble() : 0)) / count;
        return Surrogate(zeroProbes > 0 ? loss : null, (double)zeroProbes / count, value);
    }

    /// <summary>
    /// Runs the minibatch at θ ± ε_k v_k for every nonzero probe, adds w_k·∇L(θ ± ε_k v_k) over every trainable tensor
    /// into the flat gradient sum and returns Σ w_k·L(θ ± ε_k v_k), Σ_k w_k and the number of zero probes skipped;
    /// <paramref name="stepAndWeight"/> gives (ε_k, w_k) from the selected weights' scale max(‖θ_S‖, 1) and ‖v_k‖.
    /// </summary>
    (double WeightedLossSum, double WeightSum, int ZeroProbes) PerturbedPasses(nn.Module model, Tensor loss, Func<Tensor> reevaluate, Tensor probes,
        Func<double, double, (double Epsilon, double Weight)> stepAndWeight)
    {
        ArgumentNullException.ThrowIfNull(reevaluate);
        ArgumentNullException.ThrowIfNull(probes);
        var (selection, dimension, dtype) = Checked(model, loss);
        if (probes.dim() != 2 || probes.shape[1] != dimension || probes.shape[0] < 1)
            throw new ArgumentException(
                $"HTR: the probes must be a [K, {dimension}] tensor (K ≥ 1 rows over the selected tensors {string.Join(", ", selection.Select(p => p.Name))}); got [{string.Join(", ", probes.shape)}].",
                nameof(probes));
        if (!probes.is_floating_point())
            throw new ArgumentException($"HTR: the probes must be floating point; got {probes.dtype}.", nameof(probes));
        PrepareFiniteDifference(model, selection, dimension, dtype);
        var selected = selection.Select(p => (Tensor)p.Parameter).ToArray();
        var trainable = _fdTrainable;
        var buffers = model.buffers().ToArray();
        var count = probes.shape[0];
        double sum = 0, weightSum = 0;
        var zeroProbes = 0;
        using (var scope = NewDisposeScope())
        {
            var v = probes.detach().to(dtype, selected[0].device);
            WriteFlat(selected, _fdSaved!, toFlat: true);
            for (var b = 0; b < buffers.Length; b++) buffers[b].bytes.CopyTo(_fdSavedBuffers[b].bytes);
            _fdGradientSum!.zero_();
            double scale;
            using (no_grad()) scale = Math.Max(_fdSaved!.norm().ToDouble(), 1.0);
            try
            {
                for (long k = 0; k < count; k++)
                {
                    using var probeScope = NewDisposeScope();
                    var row = v[k];
                    double norm;
                    using (no_grad()) norm = row.norm().ToDouble();
                    if (norm == 0)
                    {
                        zeroProbes++; // vᵀHv = 0: the caller decides what the probe contributes; it still counts in 1/K'
                        continue;
                    }
                    var (epsilon, weight) = stepAndWeight(scale, norm);
                    foreach (var sign in (ReadOnlySpan<double>)[1.0, -1.0])
                    {
                        using (no_grad()) _fdPerturbed!.copy_(_fdSaved!).AddScaled_(row, sign * epsilon);
                        WriteFlat(selected, _fdPerturbed!, toFlat: false);
                        using var evaluationScope = NewDisposeScope();
                        var perturbedLoss = reevaluate();
                        for (var b = 0; b < buffers.Length; b++) _fdSavedBuffers[b].bytes.CopyTo(buffers[b].bytes);
                        sum += perturbedLoss.ToDouble() * weight;
                        var gradients = autograd.grad([perturbedLoss], trainable, allow_unused: true);
                        using (no_grad())
                            for (var t = 0; t < trainable.Count; t++)
                                if (!gradients[t].IsInvalid) _fdGradientViews[t].AddScaled_(gradients[t], weight);
                    }
                    weightSum += weight;
                }
            }
            finally
            {
                WriteFlat(selected, _fdSaved!, toFlat: false);
                for (var b = 0; b < buffers.Length; b++) _fdSavedBuffers[b].bytes.CopyTo(buffers[b].bytes);
            }
        }
        using (no_grad()) _fdGradientSum!.DivideBy_(count);
        return (sum, weightSum, zeroProbes);
    }

    /// <summary>
    /// The scalar s − stopgrad(s) + <paramref name="value"/>, s = Σ_t ⟨θ_t, stopgrad(G_t)⟩ + c·<paramref name="loss"/>
    /// with G the flat gradient sum: its value is <paramref name="value"/> and its gradient exactly G + c·∇L, the
    /// loss's part coming from back-propagating <paramref name="loss"/>'s own graph (left out when null).
    /// </summary>
    Tensor Surrogate(Tensor? loss, double lossCoefficient, double value)
    {
        var trainable = _fdTrainable;
        Tensor? surrogate = null;
        for (var t = 0; t < trainable.Count; t++)
        {
            var term = trainable[t].mul(_fdGradientViews[t]).sum();
            surrogate = surrogate is null ? term : surrogate.Plus(term);
        }
        if (loss is not null && lossCoefficient != 0)
        {
            using var coefficient = lossCoefficient.ToScalar();
            surrogate = surrogate!.Plus(loss.mul(coefficient));
        }
        using var shift = value.ToScalar();
        // Value: the estimate; gradient: the surrogate's (s − stopgrad(s) is exactly 0). A model has a trainable tensor.
        var s = surrogate!;
        return s.Plus(s.detach().neg()).add(shift);
    }

    void PrepareFiniteDifference(nn.Module model, IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter)> selection, long dimension, ScalarType dtype)
    {
        if (ReferenceEquals(model, _fdModel) && dtype == _fdDtype && _fdSaved is not null) return;
        var trainable = model.parameters().Where(p => p.requires_grad).Select(p => (Tensor)p).ToList();
        var buffers = model.buffers().ToList();
        if (trainable.Concat(buffers).Concat(selection.Select(p => (Tensor)p.Parameter))
                .FirstOrDefault(t => t.device_type != DeviceType.CPU || !t.is_contiguous()) is { } odd)
            throw new ArgumentException(
                $"HTR: the finite-difference estimator writes the weights through their memory and needs contiguous CPU tensors; a tensor of shape [{string.Join(", ", odd.shape)}] is on {odd.device}{(odd.is_contiguous() ? "" : ", not contiguous")}. Use --htr-estimator exact.",
                nameof(model));
        if (trainable.FirstOrDefault(t => t.dtype != dtype) is { } mixed)
            throw new ArgumentException($"HTR: the finite-difference estimator needs every trainable tensor in one type; {mixed.dtype} next to {dtype}.", nameof(model));
        DisposeFiniteDifference();
        _fdSaved = empty(dimension, dtype).DetachFromDisposeScope();
        _fdPerturbed = empty(dimension, dtype).DetachFromDisposeScope();
        _fdGradientSum = zeros(trainable.Sum(t => t.numel()), dtype).DetachFromDisposeScope();
        var views = new Tensor[trainable.Count];
        long offset = 0;
        for (var t = 0; t < trainable.Count; t++)
        {
            var n = trainable[t].numel();
            views[t] = _fdGradientSum.narrow(0, offset, n).view(trainable[t].shape).DetachFromDisposeScope();
            offset += n;
        }
        _fdGradientViews = views;
        _fdSavedBuffers = buffers.Select(b => b.detach().clone().DetachFromDisposeScope()).ToArray();
        _fdTrainable = trainable;
        _fdModel = model;
        _fdDtype = dtype;
    }

    void DisposeFiniteDifference()
    {
        _fdSaved?.Dispose();
        _fdPerturbed?.Dispose();
        foreach (var view in _fdGradientViews) view.Dispose();
        _fdGradientSum?.Dispose();
        foreach (var buffer in _fdSavedBuffers) buffer.Dispose();
        (_fdSaved, _fdPerturbed, _fdGradientSum, _fdGradientViews, _fdSavedBuffers) = (null, null, null, [], []);
    }

    /// <summary>
    /// Copies the selected tensors into <paramref name="flat"/> (laid out in order) or back, byte for byte through
    /// their memory: an exact copy that leaves autograd's version counters alone, so graphs that saved the weights
    /// (the trainer's loss) stay valid.
    /// </summary>
    static void WriteFlat(Tensor[] tensors, Tensor flat, bool toFlat)
    {
        var flatBytes = flat.bytes;
        var elementSize = flatBytes.Length / flat.numel();
        long offset = 0;
        foreach (var t in tensors)
        {
            var bytes = t.bytes;
            var slice = flatBytes.Slice(checked((int)(offset * elementSize)), bytes.Length);
            if (toFlat) bytes.CopyTo(slice);
            else slice.CopyTo(bytes);
            offset += t.numel();
        }
    }
}
