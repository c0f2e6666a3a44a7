using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// The spherical p-spin glass of Choromanska et al. 2015 (their L_{Λ,H} with Λ = N, H = p), with an optional external
/// field: for w on the sphere |w|² = N,
/// <code>
/// L(w)   = N^(−(p−1)/2) · Σ_{i1..ip} X_{i1..ip} w_i1 ⋯ w_ip      X_{i1..ip} iid, mean 0, variance 1
/// H_h(w) = L(w) − ⟨h, w⟩                                        (the sign of the field term is our convention)
/// </code>
/// so that Var L(w) = N at every w on the sphere and critical values are N times the energies per spin of
/// <see cref="SpinGlassTheory"/>. For p = 3 this is SAGUN's E(w) = (1/N) Σ X_ijk w_i w_j w_k with ‖w‖ = √N.
/// </summary>
/// <remarks>
/// <para>
/// X is not symmetric, so every one of the p slots contributes to the gradient. The model keeps only the symmetrised,
/// scaled tensor A = N^(−(p−1)/2)/(p−1)! · Σ_{permutations π} X∘π (one tensor of N^p elements; the raw draw is
/// freed once A is built), for which ∇L(w) = A·w^(p−1) (A contracted with p−1 copies of w), L(w) = ⟨∇L(w), w⟩/p and
/// ∇²L(w) = (p−1)·A·w^(p−2). A batch of K points [K, N] is then one matrix product [K, N]·[N, N^(p−1)] followed by
/// p − 2 batched matrix-vector reductions (memory-bound, about N^(p−1) reads per point), so a step costs about one
/// GEMM of that size. The batch is cut into chunks of rows so that the [rows, N^(p−1)] intermediate stays within
/// <see cref="SphericalPSpinGlassOptions.WorkspaceBytes"/>.
/// </para>
/// <para>
/// Symmetrisation costs O(p²) passes over N^p elements (coset by coset: symmetrise the last slots, then sum the
/// transpositions of the first slot with each of them), not p! passes. Memory is checked before anything is
/// allocated (<see cref="CouplingMemoryPlan"/>): the peak is two coupling tensors; p = 4 at N = 500 (6.25·10¹⁰
/// couplings) is refused with the numbers.
/// </para>
/// <para>
/// Points may be one point [N] or a batch [K, N]; energies are then a scalar or [K], gradients [N] or [K, N], in the
/// model's type and on its device (points of another type or device are converted). Hessians, spectra and indices
/// are computed in float64 whatever the storage type.
/// </para>
/// </remarks>
public sealed class SphericalPSpinGlass : IDisposable
{
    readonly CouplingTensor _couplings;
    readonly bool _ownsCouplings;
    readonly Tensor? _field;
    readonly double[]? _fieldValues;

    SphericalPSpinGlass(CouplingTensor couplings, bool ownsCouplings, double[]? fieldValues)
    {
        _couplings = couplings;
        _ownsCouplings = ownsCouplings;
        _fieldValues = fieldValues;
        if (fieldValues is null) return;
        using var scope = NewDisposeScope();
        _field = tensor(fieldValues, ScalarType.Float64).to(couplings.Dtype, couplings.Device).DetachFromDisposeScope();
    }

    /// <summary>N, the number of spins.</summary>
    public int Size => _couplings.Size;

    /// <summary>p, the order of the interaction.</summary>
    public int Order => _couplings.Order;

    /// <summary>Storage and compute type.</summary>
    public ScalarType Dtype => _couplings.Dtype;

    /// <summary>Device of the couplings and computations.</summary>
    public Device Device => _couplings.Device;

    /// <summary>The normalisation N^(−(p−1)/2).</summary>
    public double Normalisation => Math.Pow(Size, -(Order - 1) / 2.0);

    /// <summary>The external field h (a copy; null without a field).</summary>
    public double[]? Field => _fieldValues is null ? null : (double[])_fieldValues.Clone();

    /// <summary>The workspace limit of batched contractions (<see cref="SphericalPSpinGlassOptions.WorkspaceBytes"/>).</summary>
    public long WorkspaceBytes => _couplings.WorkspaceBytes;

    /// <summary>The symmetrised, scaled coupling tensor A (N^p elements, shape [N, …, N]): ∇L(w) = A·w^(p−1). Owned by the model.</summary>
    public Tensor SymmetrisedCouplings => _couplings.Tensor;

    /// <summary>
    /// Draws couplings from <see cref="SphericalPSpinGlassOptions.Seed"/> (after checking the memory they need) and
    /// builds the model.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range (p &lt; 2, N &lt; 2, ...).</exception>
    /// <exception cref="ArgumentException">A field whose length is not N.</exception>
    /// <exception cref="InsufficientMemoryException">The couplings do not fit in memory (checked before allocating).</exception>
    public static SphericalPSpinGlass Create(SphericalPSpinGlassOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var field = options.Field?.Values(options.Size);
        CouplingMemoryPlan.For(options.Size, options.Order, options.Dtype, 2, options.MemoryLimitBytes, options.MemoryMarginBytes)
            .ThrowIfTooLarge("SphericalPSpinGlass.Create");
        using var scope = NewDisposeScope();
        var raw = DrawCouplingsUnchecked(options.Size, options.Order, options.Seed, options.Distribution, options.Dtype);
        var symmetrised = SymmetrisedSum(raw, disposeInput: true);
        return Build(symmetrised, options, field);
    }

    /// <summary>
    /// Builds the model from given raw couplings X of shape [N, …, N] (p times; <see cref="SphericalPSpinGlassOptions.Size"/>
    /// and <see cref="SphericalPSpinGlassOptions.Order"/> must agree with it; Seed and Distribution are not used).
    /// The tensor is not kept or changed.
    /// </summary>
    /// <exception cref="ArgumentException">The shape disagrees with the options, or X has a non-finite entry.</exception>
    public static SphericalPSpinGlass FromCouplings(Tensor couplings, SphericalPSpinGlassOptions options)
    {
        ArgumentNullException.ThrowIfNull(couplings);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var expected = Enumerable.Repeat((long)options.Size, options.Order).ToArray();
        if (!couplings.shape.SequenceEqual(expected))
            throw new ArgumentException($"SphericalPSpinGlass.FromCouplings: couplings of shape [{string.Join(", ", couplings.shape)}] given; " +
                $"p = {options.Order}, N = {options.Size} needs [{string.Join(", ", expected)}].", nameof(couplings));
        var field = options.Field?.Values(options.Size);
        CouplingMemoryPlan.For(options.Size, options.Order, options.Dtype, 2, options.MemoryLimitBytes, options.MemoryMarginBytes)
            .ThrowIfTooLarge("SphericalPSpinGlass.FromCouplings");
        using var scope = NewDisposeScope();
        if (!isfinite(couplings).all().item<bool>())
            throw new ArgumentException("SphericalPSpinGlass.FromCouplings: the couplings have a non-finite entry.", nameof(couplings));
        var raw = couplings.detach().to(options.Dtype, CPU);
        // raw is a new wrapper (detach) and is never written to: disposing it frees only the wrapper or the copy.
        var symmetrised = SymmetrisedSum(raw, disposeInput: true);
        return Build(symmetrised, options, field);
    }

    /// <summary>
    /// The raw couplings X (shape [N, …, N], p times) that <see cref="Create"/> draws for these settings: a CPU torch
    /// generator seeded with <paramref name="seed"/>, standard normal or ±1. For tests and for users who want X itself.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">p &lt; 2 or N &lt; 2.</exception>
    /// <exception cref="InsufficientMemoryException">X does not fit in memory.</exception>
    public static Tensor DrawCouplings(int size, int order, long seed, CouplingDistribution distribution = CouplingDistribution.Gaussian, ScalarType dtype = ScalarType.Float32)
    {
        new SphericalPSpinGlassOptions { Size = size, Order = order, Distribution = distribution, Dtype = dtype }.Validate();
        CouplingMemoryPlan.For(size, order, dtype, 1).ThrowIfTooLarge("SphericalPSpinGlass.DrawCouplings");
        return DrawCouplingsUnchecked(size, order, seed, distribution, dtype);
    }

    /// <summary>
    /// The same couplings with another field (null: none). The new model shares this model's coupling tensor: it must
    /// not be used after this model is disposed, and disposing it frees only its field. Field sweeps and annealed
    /// fields use it to avoid drawing and storing the couplings again.
    /// </summary>
    /// <exception cref="ArgumentException">A field whose length is not N.</exception>
    public SphericalPSpinGlass WithField(ExternalField? field)
    {
        _couplings.ThrowIfDisposed();
        return new SphericalPSpinGlass(_couplings, ownsCouplings: false, field?.Values(Size));
    }

    /// <summary>H_h at each point: a scalar for [N], [K] for [K, N].</summary>
    /// <exception cref="ArgumentException">Points of the wrong shape or with non-finite entries.</exception>
    public Tensor Energy(Tensor points)
    {
        var (energy, gradient) = EnergyAndGradient(points);
        gradient.Dispose();
        return energy;
    }

    /// <summary>The Euclidean gradient ∇H_h = ∇L − h at each point ([N] or [K, N]).</summary>
    /// <exception cref="ArgumentException">Points of the wrong shape or with non-finite entries.</exception>
    public Tensor Gradient(Tensor points)
    {
        var (energy, gradient) = EnergyAndGradient(points);
        energy.Dispose();
        return gradient;
    }

    /// <summary>Energies and Euclidean gradients together (one contraction).</summary>
    /// <exception cref="ArgumentException">Points of the wrong shape or with non-finite entries.</exception>
    public (Tensor Energy, Tensor Gradient) EnergyAndGradient(Tensor points)
    {
        using var scope = NewDisposeScope();
        var (batch, single) = CheckPoints(points, "SphericalPSpinGlass.EnergyAndGradient");
        var (energy, gradient) = EnergyAndGradientOf(_couplings.Tensor, batch);
        if (single)
        {
            energy = energy.squeeze(0);
            gradient = gradient.squeeze(0);
        }
        return (energy.MoveToOuterDisposeScope(), gradient.MoveToOuterDisposeScope());
    }

    /// <summary>The Riemannian gradient: ∇H_h projected on the tangent space at each point, g − (⟨g, w⟩/|w|²)·w.</summary>
    /// <exception cref="ArgumentException">Points of the wrong shape or with non-finite entries.</exception>
    public Tensor ProjectedGradient(Tensor points)
    {
        using var scope = NewDisposeScope();
        var (batch, single) = CheckPoints(points, "SphericalPSpinGlass.ProjectedGradient");
        var (_, gradient) = EnergyAndGradientOf(_couplings.Tensor, batch);
        var projected = Sphere.ProjectToTangent(gradient, batch);
        return (single ? projected.squeeze(0) : projected).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The Euclidean Hessian ∇²H_h(w) = (p−1)·A·w^(p−2) at one point [N] (the field adds nothing): [N, N] float64 on the
    /// CPU, computed in float64 from the stored couplings.
    /// </summary>
    /// <exception cref="ArgumentException">Not one point of N finite coordinates.</exception>
    public Tensor EuclideanHessian(Tensor point)
    {
        using var scope = NewDisposeScope();
        var w = CheckPoint64(point, "SphericalPSpinGlass.EuclideanHessian");
        var hessian = Contract64(w, Order - 2).view(Size, Size).mul(tensor(Order - 1.0, ScalarType.Float64, w.device));
        return hessian.cpu().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The Riemannian Hessian of H_h on the tangent space at one point (first scaled onto the sphere), in an orthonormal
    /// basis of that (N−1)-dimensional space: Qᵀ ∇²H_h Q − (⟨∇H_h, w⟩/N)·I, with Q [N, N−1] orthonormal and orthogonal
    /// to w. [N−1, N−1] float64 on the CPU. Its eigenvalues do not depend on the basis; at a critical point they are
    /// the curvatures along the sphere.
    /// </summary>
    /// <exception cref="ArgumentException">Not one point of N finite coordinates, or the zero vector.</exception>
    public Tensor TangentHessian(Tensor point)
    {
        using var scope = NewDisposeScope();
        var w = Sphere.Retract(CheckPoint64(point, "SphericalPSpinGlass.TangentHessian"));
        var euclidean = Contract64(w, Order - 2).view(Size, Size).mul(tensor(Order - 1.0, ScalarType.Float64, w.device));
        var gradient = Contract64(w, Order - 1);
        if (_field is not null) gradient = gradient.sub(_field.to(ScalarType.Float64));
        var radial = gradient.dot(w).item<double>() / Size;
        var basis = Sphere.TangentBasis(w);
        var tangent = basis.t().matmul(euclidean).matmul(basis);
        tangent = tangent.add(tangent.t()).mul(tensor(0.5, ScalarType.Float64, w.device));
        tangent.diagonal().Shift_(-radial);
        return tangent.cpu().MoveToOuterDisposeScope();
    }

    /// <summary>The eigenvalues of <see cref="TangentHessian"/>, ascending: N−1 float64 values on the CPU.</summary>
    /// <exception cref="ArgumentException">Not one point of N finite coordinates.</exception>
    public Tensor TangentHessianSpectrum(Tensor point)
    {
        using var scope = NewDisposeScope();
        return linalg.eigvalsh(TangentHessian(point)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The index at one point: the number of eigenvalues of the tangent Hessian below −<paramref name="tolerance"/>
    /// (0 for a minimum). The default 10⁻³ follows Choromanska et al.'s network check (|λ| &lt; 0.001 counted as 0).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative or non-finite tolerance.</exception>
    public int Index(Tensor point, double tolerance = 1e-3)
    {
        if (!double.IsFinite(tolerance) || tolerance < 0)
            throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, $"SphericalPSpinGlass.Index: the tolerance must be finite and non-negative; got {tolerance}.");
        using var spectrum = TangentHessianSpectrum(point);
        return spectrum.data<double>().Count(l => l < -tolerance);
    }

    /// <summary>
    /// Splits the couplings into <paramref name="parts"/> independent pieces that sum to X, for SAGUN's stochastic
    /// gradient (<see cref="ProjectedSgd"/>). See <see cref="CouplingSplit"/> for the construction; memory for P + 2
    /// coupling tensors is checked first.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than 2 parts.</exception>
    /// <exception cref="InsufficientMemoryException">The parts do not fit in memory.</exception>
    public CouplingSplit Split(int parts, long seed, long? memoryLimitBytes = null)
    {
        _couplings.ThrowIfDisposed();
        return new CouplingSplit(this, parts, seed, memoryLimitBytes);
    }

    /// <summary>Frees the field and, unless this model came from <see cref="WithField"/>, the couplings.</summary>
    public void Dispose()
    {
        _field?.Dispose();
        if (_ownsCouplings) _couplings.Dispose();
    }

    /// <summary>The field tensor in the model's type and device, or null.</summary>
    internal Tensor? FieldTensor => _field;

    /// <summary>
    /// Energies [K] and gradients [K, N] of H_h for a batch [K, N] already in the model's type and device, with the
    /// symmetrised coupling tensor <paramref name="couplings"/> (the model's or a split part's). No checks: the hot path.
    /// </summary>
    internal (Tensor Energy, Tensor Gradient) EnergyAndGradientOf(Tensor couplings, Tensor batch)
    {
        using var scope = NewDisposeScope();
        var contracted = ContractBatch(couplings, batch);
        var energy = contracted.mul(batch).sum(1).DivideBy_(Order);
        if (_field is null) return (energy.MoveToOuterDisposeScope(), contracted.MoveToOuterDisposeScope());
        energy.sub_(batch.matmul(_field));
        return (energy.MoveToOuterDisposeScope(), contracted.sub_(_field).MoveToOuterDisposeScope());
    }

    /// <summary>A·w^(p−1) for each row of <paramref name="batch"/>: one GEMM per chunk of rows, then p − 2 batched reductions.</summary>
    internal Tensor ContractBatch(Tensor couplings, Tensor batch)
    {
        var n = Size;
        var k = batch.shape[0];
        var tail = (long)Math.Pow(n, Order - 1);
        var rowBytes = tail * CouplingMemoryPlan.ElementSize(Dtype);
        var rowsPerChunk = Math.Max(1, WorkspaceBytes / rowBytes);
        using var matrix = couplings.view(n, tail);
        if (k <= rowsPerChunk) return ContractRows(matrix, batch);
        var result = empty([k, n], Dtype, Device);
        for (long start = 0; start < k; start += rowsPerChunk)
        {
            using var scope = NewDisposeScope();
            var length = Math.Min(rowsPerChunk, k - start);
            result.narrow(0, start, length).copy_(ContractRows(matrix, batch.narrow(0, start, length)));
        }
        return result;
    }

    Tensor ContractRows(Tensor matrix, Tensor rows)
    {
        using var scope = NewDisposeScope();
        var k = rows.shape[0];
        var partial = rows.matmul(matrix);
        if (Order > 2)
        {
            var column = rows.unsqueeze(2);
            for (var slot = 2; slot < Order; slot++)
                partial = partial.view(k, -1, Size).bmm(column).view(k, -1);
        }
        return partial.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A contracted with <paramref name="copies"/> copies of w (float64 [N] on the model's device), in float64:
    /// N^(p−copies) values. The first contraction converts A to float64 a chunk of rows at a time.
    /// </summary>
    Tensor Contract64(Tensor w, int copies)
    {
        using var scope = NewDisposeScope();
        var n = Size;
        var coupling = _couplings.Tensor;
        if (copies == 0) return coupling.to(ScalarType.Float64).reshape(-1).MoveToOuterDisposeScope();
        var rows = (long)Math.Pow(n, Order - 1);
        var matrix = coupling.view(rows, n);
        var rowsPerChunk = Math.Max(1, WorkspaceBytes / (8L * n));
        var result = empty(rows, ScalarType.Float64, Device);
        for (long start = 0; start < rows; start += rowsPerChunk)
        {
            using var inner = NewDisposeScope();
            var length = Math.Min(rowsPerChunk, rows - start);
            result.narrow(0, start, length).copy_(matrix.narrow(0, start, length).to(ScalarType.Float64).matmul(w));
        }
        for (var c = 1; c < copies; c++)
            result = result.view(-1, n).matmul(w);
        return result.MoveToOuterDisposeScope();
    }

    (Tensor Batch, bool Single) CheckPoints(Tensor points, string what)
    {
        ArgumentNullException.ThrowIfNull(points);
        _couplings.ThrowIfDisposed();
        if (points.dim() is not (1 or 2) || points.shape[^1] != Size)
            throw new ArgumentException($"{what}: points must be [N] or [K, N] with N = {Size}; got shape [{string.Join(", ", points.shape)}].", nameof(points));
        if (points.dim() == 2 && points.shape[0] < 1)
            throw new ArgumentException($"{what}: the batch holds no points (K = 0); K must be at least 1.", nameof(points));
        if (!points.is_floating_point() || !isfinite(points).all().item<bool>())
            throw new ArgumentException($"{what}: points must be floating and finite (a NaN or infinity was found).", nameof(points));
        var converted = points.detach().to(Dtype, Device);
        return points.dim() == 1 ? (converted.unsqueeze(0), true) : (converted, false);
    }

    Tensor CheckPoint64(Tensor point, string what)
    {
        ArgumentNullException.ThrowIfNull(point);
        _couplings.ThrowIfDisposed();
        if (point.dim() != 1 || point.shape[0] != Size)
            throw new ArgumentException($"{what}: one point of shape [N] with N = {Size} expected; got shape [{string.Join(", ", point.shape)}].", nameof(point));
        if (!point.is_floating_point() || !isfinite(point).all().item<bool>())
            throw new ArgumentException($"{what}: the point must be floating and finite (a NaN or infinity was found).", nameof(point));
        return point.detach().to(ScalarType.Float64, Device);
    }

    static SphericalPSpinGlass Build(Tensor symmetrisedSum, SphericalPSpinGlassOptions options, double[]? field)
    {
        // A = N^(−(p−1)/2)/(p−1)! · Σ_π X∘π, so that ∇L(w) = A·w^(p−1).
        var factorial = 1.0;
        for (var i = 2; i < options.Order; i++) factorial *= i;
        symmetrisedSum.Scale_(Math.Pow(options.Size, -(options.Order - 1) / 2.0) / factorial);
        var onDevice = symmetrisedSum.to(options.Device ?? CPU);
        var store = new CouplingTensor(onDevice.DetachFromDisposeScope(), options.Size, options.Order, options.WorkspaceBytes);
        return new SphericalPSpinGlass(store, ownsCouplings: true, field);
    }

    internal static Tensor DrawCouplingsUnchecked(int size, int order, long seed, CouplingDistribution distribution, ScalarType dtype)
    {
        using var generator = new Generator(unchecked((ulong)seed));
        return DrawFrom(generator, size, order, distribution, dtype);
    }

    internal static Tensor DrawFrom(Generator generator, int size, int order, CouplingDistribution distribution, ScalarType dtype)
    {
        var shape = Enumerable.Repeat((long)size, order).ToArray();
        if (distribution == CouplingDistribution.Gaussian) return randn(shape, dtype, generator: generator);
        using var scope = NewDisposeScope();
        var signs = randint(0, 2, shape, dtype, generator: generator);
        return signs.Scale_(2).Shift_(-1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Σ over all p! permutations π of the slots of X∘π, by cosets: if Y is symmetric in slots s+1..p−1, then
    /// Σ_{i=s}^{p−1} Y transposed in (s, i) is symmetric in slots s..p−1 (the transpositions (s i) represent the cosets
    /// of the permutations fixing slot s). Peak memory: two tensors of N^p elements.
    /// </summary>
    internal static Tensor SymmetrisedSum(Tensor raw, bool disposeInput)
    {
        var order = (int)raw.dim();
        var current = raw;
        var ownsCurrent = disposeInput;
        for (var slot = order - 2; slot >= 0; slot--)
        {
            var next = current.clone();
            for (var other = slot + 1; other < order; other++)
            {
                using var transposed = current.transpose(slot, other);
                next.Accumulate_(transposed);
            }
            if (ownsCurrent) current.Dispose();
            current = next;
            ownsCurrent = true;
        }
        return ReferenceEquals(current, raw) ? raw.clone() : current;
    }
}
