using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.DeepLinear;

/// <summary>
/// M deep linear networks y = W_L ... W_1 x with widths d_0 (inputs), d_1, ..., d_L (outputs), held in one flat
/// [M, P] parameter buffer (P = sum_l d_l d_(l-1)) with one [M, d_l, d_(l-1)] view per layer, and a gradient buffer of the
/// same shape. A forward or backward pass is one batched matrix product (torch.bmm) per layer for all M networks.
/// Samples are columns: x is [d_0, N] (shared) or [M, d_0, N] (one set per network).
/// <para>
/// The loss of network i is 1/(2N) ||W_L ... W_1 x - y||_F^2 and its gradient is computed in closed form
/// (<see cref="ComputeGradient"/>): with residual r = (out - y)/N and delta_L = r, the gradient of the effective
/// weight of layer l is delta_l h_(l-1)^T and delta_(l-1) = W_l^T delta_l (times the activation multipliers of layer
/// l-1 when there are any); with weight multipliers Xi_l the forward uses W_l ⊙ Xi_l and the gradient of W_l is that
/// of the effective weight times Xi_l. Checked against autograd in float64 by the tests.
/// </para>
/// </summary>
public sealed class DeepLinearNetworks : IDisposable
{
    readonly Tensor[] _layers;
    readonly Tensor[] _gradients;
    readonly long[] _offsets;

    /// <summary>Creates M networks with every weight zero.</summary>
    /// <param name="networks">M.</param>
    /// <param name="widths">d_0, ..., d_L (L + 1 &gt;= 2 positive widths).</param>
    /// <param name="dtype">Float32 or Float64.</param>
    /// <param name="device">Where the buffers live (CPU by default).</param>
    /// <exception cref="ArgumentException">A bad count, width or dtype.</exception>
    public DeepLinearNetworks(int networks, IReadOnlyList<int> widths, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(networks);
        ArgumentNullException.ThrowIfNull(widths);
        if (widths.Count < 2) throw new ArgumentException($"a deep linear network needs at least an input and an output width (depth >= 1), got {widths.Count} widths");
        for (var i = 0; i < widths.Count; i++)
            if (widths[i] < 1) throw new ArgumentException($"width d_{i} must be positive, got {widths[i]}");
        if (dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"DeepLinearNetworks: dtype must be Float32 or Float64, got {dtype}", nameof(dtype));
        Networks = networks;
        Widths = widths.ToArray();
        Dtype = dtype;
        Device = device ?? CPU;
        _offsets = new long[Depth + 1];
        for (var l = 1; l <= Depth; l++) _offsets[l] = _offsets[l - 1] + (long)Widths[l] * Widths[l - 1];
        ParametersPerNetwork = _offsets[Depth];
        Parameters = zeros([networks, ParametersPerNetwork], dtype, Device);
        Gradient = zeros([networks, ParametersPerNetwork], dtype, Device);
        _layers = new Tensor[Depth];
        _gradients = new Tensor[Depth];
        for (var l = 1; l <= Depth; l++)
        {
            _layers[l - 1] = LayerView(Parameters, l);
            _gradients[l - 1] = LayerView(Gradient, l);
        }
    }

    /// <summary>M.</summary>
    public int Networks { get; }

    /// <summary>d_0, ..., d_L.</summary>
    public IReadOnlyList<int> Widths { get; }

    /// <summary>L, the number of weight matrices.</summary>
    public int Depth => Widths.Count - 1;

    /// <summary>d_0.</summary>
    public int Inputs => Widths[0];

    /// <summary>d_L.</summary>
    public int Outputs => Widths[^1];

    /// <summary>min_l d_l: the largest rank the product can have.</summary>
    public int NarrowestWidth => Widths.Min();

    /// <summary>The floating type of the buffers.</summary>
    public ScalarType Dtype { get; }

    /// <summary>Where the buffers live.</summary>
    public Device Device { get; }

    /// <summary>P, the weights of one network.</summary>
    public long ParametersPerNetwork { get; }

    /// <summary>All weights, [M, P]: network i's layers one after the other, each row-major [d_l, d_(l-1)].</summary>
    public Tensor Parameters { get; }

    /// <summary>The gradient written by <see cref="ComputeGradient"/>, [M, P], laid out as <see cref="Parameters"/>.</summary>
    public Tensor Gradient { get; }

    /// <summary>W_l of every network, a view [M, d_l, d_(l-1)] into <see cref="Parameters"/> (l = 1 ... L).</summary>
    public Tensor Layer(int l) => _layers[CheckLayer(l) - 1];

    /// <summary>The gradient of W_l, a view [M, d_l, d_(l-1)] into <see cref="Gradient"/>.</summary>
    public Tensor LayerGradient(int l) => _gradients[CheckLayer(l) - 1];

    /// <summary>The view of layer <paramref name="l"/> in any [M, P] tensor laid out like <see cref="Parameters"/> (e.g. weight multipliers).</summary>
    public Tensor LayerView(Tensor flat, int l)
    {
        CheckLayer(l);
        if (flat.dim() != 2 || flat.shape[0] != Networks || flat.shape[1] != ParametersPerNetwork)
            throw new ArgumentException($"expected a [{Networks}, {ParametersPerNetwork}] tensor laid out like the parameters, got [{string.Join(", ", flat.shape)}]");
        return flat.narrow(1, _offsets[l - 1], _offsets[l] - _offsets[l - 1]).view(Networks, Widths[l], Widths[l - 1]);
    }

    int CheckLayer(int l)
    {
        if (l < 1 || l > Depth) throw new ArgumentOutOfRangeException(nameof(l), l, $"layers are numbered 1 ... {Depth}");
        return l;
    }

    /// <summary>The product W_L ... W_1 of every network, [M, d_L, d_0] (a new tensor).</summary>
    public Tensor Product() => ProductOf(Parameters);

    /// <summary>The product of the layers of <paramref name="flat"/> ([M, P], laid out as <see cref="Parameters"/>).</summary>
    public Tensor ProductOf(Tensor flat)
    {
        using var scope = NewDisposeScope();
        var product = LayerView(flat, 1);
        for (var l = 2; l <= Depth; l++) product = bmm(LayerView(flat, l), product);
        return product.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Each network's loss 1/(2N) ||f(x) - y||_F^2, [M], as a differentiable function of <paramref name="flat"/> ([M, P],
    /// laid out as <see cref="Parameters"/>): the reference path (autograd) that <see cref="ComputeGradient"/> is tested
    /// against, with the same optional multipliers.
    /// </summary>
    public Tensor Losses(Tensor flat, Tensor x, Tensor y, Tensor? weightMultipliers = null, IReadOnlyList<Tensor>? activationMultipliers = null)
    {
        CheckBatch(x, y, activationMultipliers);
        using var scope = NewDisposeScope();
        var h = x.dim() == 2 ? x.unsqueeze(0).expand(Networks, -1, -1) : x;
        for (var l = 1; l <= Depth; l++)
        {
            var w = LayerView(flat, l);
            if (weightMultipliers is not null) w = w.mul(LayerView(weightMultipliers, l));
            h = bmm(w, h);
            if (l < Depth && activationMultipliers is not null) h = h.mul(activationMultipliers[l - 1]);
        }
        var n = x.shape[^1];
        var target = y.dim() == 2 ? y.unsqueeze(0) : y;
        return h.sub(target).square().sum([1, 2]).DividedBy(2.0 * n).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes each network's gradient of its loss 1/(2N) ||f(x) - y||_F^2 into <see cref="Gradient"/> (closed form, see
    /// the class summary) and returns the losses [M] (of the possibly noisy forward pass). <paramref name="x"/> is
    /// [d_0, N] or [M, d_0, N], <paramref name="y"/> [d_L, N] or [M, d_L, N]; <paramref name="weightMultipliers"/>
    /// is [M, P] laid out as the parameters (the forward uses W ⊙ Xi); <paramref name="activationMultipliers"/> holds
    /// one [M, d_l, N] tensor per hidden layer l = 1 ... L-1 (the forward uses h_l ⊙ xi_l).
    /// </summary>
    /// <exception cref="ArgumentException">Shapes that do not fit.</exception>
    public Tensor ComputeGradient(Tensor x, Tensor y, Tensor? weightMultipliers = null, IReadOnlyList<Tensor>? activationMultipliers = null)
    {
        CheckBatch(x, y, activationMultipliers);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var hidden = new Tensor[Depth];
        var effective = new Tensor[Depth];
        var h = x.dim() == 2 ? x.unsqueeze(0).expand(Networks, -1, -1) : x;
        for (var l = 1; l <= Depth; l++)
        {
            hidden[l - 1] = h;
            var w = _layers[l - 1];
            if (weightMultipliers is not null) w = w.mul(LayerView(weightMultipliers, l));
            effective[l - 1] = w;
            h = bmm(w, h);
            if (l < Depth && activationMultipliers is not null) h = h.mul(activationMultipliers[l - 1]);
        }
        var n = x.shape[^1];
        var residual = h.sub(y.dim() == 2 ? y.unsqueeze(0) : y);
        var losses = residual.square().sum([1, 2]).DividedBy(2.0 * n);
        var delta = residual.DividedBy(n);
        for (var l = Depth; l >= 1; l--)
        {
            var g = bmm(delta, hidden[l - 1].transpose(1, 2));
            if (weightMultipliers is not null) g = g.mul(LayerView(weightMultipliers, l));
            _gradients[l - 1].copy_(g);
            if (l == 1) break;
            delta = bmm(effective[l - 1].transpose(1, 2), delta);
            if (activationMultipliers is not null) delta = delta.mul(activationMultipliers[l - 2]);
        }
        return losses.MoveToOuterDisposeScope();
    }

    void CheckBatch(Tensor x, Tensor y, IReadOnlyList<Tensor>? activationMultipliers)
    {
        static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";
        var xOk = x.dim() == 2 ? x.shape[0] == Inputs : x.dim() == 3 && x.shape[0] == Networks && x.shape[1] == Inputs;
        if (!xOk) throw new ArgumentException($"inputs must be [{Inputs}, N] or [{Networks}, {Inputs}, N] (samples are columns), got {Shape(x)}");
        var n = x.shape[^1];
        var yOk = y.dim() == 2 ? y.shape[0] == Outputs && y.shape[1] == n : y.dim() == 3 && y.shape[0] == Networks && y.shape[1] == Outputs && y.shape[2] == n;
        if (!yOk) throw new ArgumentException($"targets must be [{Outputs}, {n}] or [{Networks}, {Outputs}, {n}] to match the inputs, got {Shape(y)}");
        if (activationMultipliers is null) return;
        if (activationMultipliers.Count != Depth - 1)
            throw new ArgumentException($"one activation multiplier tensor per hidden layer is needed ({Depth - 1}), got {activationMultipliers.Count}");
        for (var l = 1; l < Depth; l++)
        {
            var m = activationMultipliers[l - 1];
            if (m.dim() != 3 || m.shape[0] != Networks || m.shape[1] != Widths[l] || m.shape[2] != n)
                throw new ArgumentException($"activation multipliers of hidden layer {l} must be [{Networks}, {Widths[l]}, {n}], got {Shape(m)}");
        }
    }

    /// <summary>Frees the buffers and their views.</summary>
    public void Dispose()
    {
        foreach (var t in _layers) t.Dispose();
        foreach (var t in _gradients) t.Dispose();
        Parameters.Dispose();
        Gradient.Dispose();
    }
}
