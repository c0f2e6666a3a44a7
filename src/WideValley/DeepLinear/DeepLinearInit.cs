using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.DeepLinear;

/// <summary>
/// Initialisations of one network of a <see cref="DeepLinearNetworks"/> batch. Each draws in float64 from a generator
/// seeded with its seed alone, so a network's start depends on its seed and nothing else (not on M or on its place in
/// the batch), and float32 and float64 batches start at the same point.
/// </summary>
public static class DeepLinearInit
{
    /// <summary>
    /// The standard (LeCun-normal) start: every entry of W_l i.i.d. N(0, scale^2 / d_(l-1)). The product is full rank
    /// (min_l d_l) with probability one.
    /// </summary>
    public static void Standard(DeepLinearNetworks nets, int index, long seed, double scale = 1)
    {
        ArgumentNullException.ThrowIfNull(nets);
        CheckIndex(nets, index);
        CheckScale(scale);
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)seed);
        var layers = DrawStandard(nets, g, scale);
        Write(nets, index, layers);
    }

    /// <summary>
    /// The rank-deficient start: the standard start of the same seed, with every hidden layer's activity confined to a
    /// random <paramref name="rank"/>-dimensional subspace: W_l &lt;- P_l W_l P_(l-1), where P_l (l = 1 ... L-1) is the
    /// orthogonal projector onto the span of <paramref name="rank"/> Haar-random orthonormal vectors of R^(d_l) (drawn
    /// after the weights) and P_0, P_L are identities. The product then has rank at most <paramref name="rank"/>.
    /// <para>
    /// Invariant (exact gradient descent, L &gt;= 2, any step size): for l &lt;= L-1 the rows of W_l stay in range(P_l)
    /// ((I - P_l) W_l = 0) and for l &gt;= 2 W_l stays blind outside it (W_l (I - P_(l-1)) = 0), because the gradient of
    /// W_l is (W_L ... W_(l+1))^T E (W_(l-1) ... W_1)^T with E the back-propagated residual, whose first factor ends
    /// (for l &lt;= L-1) in W_(l+1)^T and last factor (for l &gt;= 2) in W_(l-1)^T. So the product's rank stays at most
    /// <paramref name="rank"/> and a target of higher rank is never fitted: training stalls at a saddle. Input and
    /// output noise keep the invariant (they change x and the residual, not the hidden subspace); gradient noise and
    /// multiplicative noise on the weights or activations break it (the subspaces are not aligned with coordinates).
    /// </para>
    /// </summary>
    /// <exception cref="ArgumentException">Depth 1 (there is no hidden layer to confine), or a rank above a hidden width.</exception>
    public static void RankDeficient(DeepLinearNetworks nets, int index, long seed, int rank, double scale = 1)
    {
        ArgumentNullException.ThrowIfNull(nets);
        CheckIndex(nets, index);
        CheckScale(scale);
        if (nets.Depth < 2) throw new ArgumentException("a rank-deficient start needs depth >= 2 (a hidden layer whose activity is confined)");
        var narrowestHidden = nets.Widths.Skip(1).Take(nets.Depth - 1).Min();
        if (rank < 0 || rank > narrowestHidden)
            throw new ArgumentException($"the rank-deficient start's rank must be between 0 and the narrowest hidden width {narrowestHidden}, got {rank}");
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)seed);
        var layers = DrawStandard(nets, g, scale);
        var projectors = new Tensor[nets.Depth + 1];
        for (var l = 1; l < nets.Depth; l++)
        {
            var basis = LinearRegressionProblem.RandomOrthogonal(nets.Widths[l], g).narrow(1, 0, rank);
            projectors[l] = basis.mm(basis.t());
        }
        for (var l = 1; l <= nets.Depth; l++)
        {
            var w = layers[l - 1];
            if (l < nets.Depth) w = projectors[l].mm(w);
            if (l > 1) w = w.mm(projectors[l - 1]);
            layers[l - 1] = w;
        }
        Write(nets, index, layers);
    }

    /// <summary>
    /// A balanced start (W_(l+1)^T W_(l+1) = W_l W_l^T for every l) whose product is <paramref name="product"/>
    /// ([d_L, d_0]): with the reduced SVD product = U S V^T (r = min(d_0, d_L) singular values) and R_l a d_l x r matrix
    /// of Haar-random orthonormal columns, W_1 = R_1 S^(1/L) V^T, W_l = R_l S^(1/L) R_(l-1)^T, W_L = U S^(1/L) R_(L-1)^T
    /// (Arora et al. 2018's balanced initialisation).
    /// </summary>
    /// <exception cref="ArgumentException">A product of the wrong shape, or a hidden width below min(d_0, d_L).</exception>
    public static void Balanced(DeepLinearNetworks nets, int index, Tensor product, long seed)
    {
        ArgumentNullException.ThrowIfNull(nets);
        ArgumentNullException.ThrowIfNull(product);
        CheckIndex(nets, index);
        if (product.dim() != 2 || product.shape[0] != nets.Outputs || product.shape[1] != nets.Inputs)
            throw new ArgumentException($"the balanced start's product must be [{nets.Outputs}, {nets.Inputs}], got [{string.Join(", ", product.shape)}]");
        var r = Math.Min(nets.Inputs, nets.Outputs);
        for (var l = 1; l < nets.Depth; l++)
            if (nets.Widths[l] < r) throw new ArgumentException($"a balanced start needs every hidden width >= min(d_0, d_L) = {r}; d_{l} = {nets.Widths[l]}");
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)seed);
        var (u, s, vh) = linalg.svd(product.to(ScalarType.Float64), fullMatrices: false);
        var root = s.pow(1.0 / nets.Depth).unsqueeze(0);
        var layers = new Tensor[nets.Depth];
        if (nets.Depth == 1)
        {
            layers[0] = product.to(ScalarType.Float64);
        }
        else
        {
            var bases = new Tensor[nets.Depth];
            for (var l = 1; l < nets.Depth; l++) bases[l] = LinearRegressionProblem.RandomOrthogonal(nets.Widths[l], g).narrow(1, 0, r);
            layers[0] = bases[1].mul(root).mm(vh);
            for (var l = 2; l < nets.Depth; l++) layers[l - 1] = bases[l].mul(root).mm(bases[l - 1].t());
            layers[nets.Depth - 1] = u.mul(root).mm(bases[nets.Depth - 1].t());
        }
        Write(nets, index, layers);
    }

    /// <summary>Sets every weight of network <paramref name="index"/> to zero (a stationary point for depth &gt;= 2).</summary>
    public static void Zero(DeepLinearNetworks nets, int index)
    {
        ArgumentNullException.ThrowIfNull(nets);
        CheckIndex(nets, index);
        using var _ = no_grad();
        nets.Parameters[index].zero_();
    }

    static Tensor[] DrawStandard(DeepLinearNetworks nets, Generator g, double scale)
    {
        var layers = new Tensor[nets.Depth];
        for (var l = 1; l <= nets.Depth; l++)
            layers[l - 1] = randn([nets.Widths[l], nets.Widths[l - 1]], ScalarType.Float64, generator: g).mul(scale / Math.Sqrt(nets.Widths[l - 1]));
        return layers;
    }

    static void Write(DeepLinearNetworks nets, int index, Tensor[] layers)
    {
        using var _ = no_grad();
        for (var l = 1; l <= nets.Depth; l++) nets.Layer(l)[index].copy_(layers[l - 1]);
    }

    static void CheckIndex(DeepLinearNetworks nets, int index)
    {
        if (index < 0 || index >= nets.Networks) throw new ArgumentOutOfRangeException(nameof(index), index, $"networks are numbered 0 ... {nets.Networks - 1}");
    }

    static void CheckScale(double scale)
    {
        if (!(scale > 0) || !double.IsFinite(scale)) throw new ArgumentException($"the initialisation scale must be positive and finite, got {scale}");
    }
}
