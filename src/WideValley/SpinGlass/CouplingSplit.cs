using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// The couplings of a glass split into P independent parts that sum to them: SAGUN's "stochastic" gradient, where
/// each step sees one part as a minibatch (sgd.lua: X = Σ_{p=1}^P X^(p), X^(p) ~ iid N(0, 1/P), step t uses part
/// 1 + t mod P).
/// </summary>
/// <remarks>
/// SAGUN draws the parts and defines X as their sum. We split the glass's existing X instead, so that stochastic and
/// full-gradient runs see the same landscape: with Z^(1..P) iid standard normal and Z̄ their mean,
/// X^(p) = X/P + (Z^(p) − Z̄)/√P. These sum to X exactly, and for Gaussian X they are jointly Gaussian with variance
/// 1/P² + (1 − 1/P)/P = 1/P and covariance 1/P² − 1/P² = 0 between parts: independent N(0, 1/P), SAGUN's law.
/// (For ±1 couplings the parts are X/P plus the same Gaussian noise: ours.) Symmetrisation is linear, so the stored
/// parts are A/P + (scale)·Sym(Z^(p) − Z̄)/√P. The field is not split: every part's energy includes the whole field.
/// Memory: P parts, plus Z̄ and one symmetrisation buffer while building.
/// </remarks>
public sealed class CouplingSplit : IDisposable
{
    readonly SphericalPSpinGlass _glass;
    readonly Tensor[] _parts;

    internal CouplingSplit(SphericalPSpinGlass glass, int parts, long seed, long? memoryLimitBytes)
    {
        if (parts < 2)
            throw new ArgumentOutOfRangeException(nameof(parts), parts, $"SphericalPSpinGlass.Split: at least 2 parts are needed; got {parts}.");
        _glass = glass;
        var n = glass.Size;
        var p = glass.Order;
        // Z^(1..P) (turned into the parts one by one), Z̄ and one symmetrisation buffer.
        CouplingMemoryPlan.For(n, p, glass.Dtype, parts + 2, memoryLimitBytes).ThrowIfTooLarge("SphericalPSpinGlass.Split");
        var factorial = 1.0;
        for (var i = 2; i < p; i++) factorial *= i;
        var noiseScale = Math.Pow(n, -(p - 1) / 2.0) / factorial / Math.Sqrt(parts);
        using var generator = new Generator(unchecked((ulong)seed));
        var noises = new Tensor[parts];
        Tensor? mean = null;
        try
        {
            for (var i = 0; i < parts; i++)
            {
                noises[i] = SphericalPSpinGlass.DrawFrom(generator, n, p, CouplingDistribution.Gaussian, glass.Dtype);
                if (mean is null) mean = noises[i].clone();
                else mean.Accumulate_(noises[i]);
            }
            mean!.DivideBy_(parts);
            _parts = new Tensor[parts];
            using var shareOfCouplings = glass.SymmetrisedCouplings.DividedBy(parts);
            for (var i = 0; i < parts; i++)
            {
                noises[i].sub_(mean!);
                var symmetrised = SphericalPSpinGlass.SymmetrisedSum(noises[i], disposeInput: true);
                noises[i] = null!;
                symmetrised.Scale_(noiseScale);
                using (var onDevice = symmetrised.to(glass.Device))
                    _parts[i] = onDevice.Plus(shareOfCouplings).DetachFromDisposeScope();
                symmetrised.Dispose();
            }
        }
        finally
        {
            foreach (var z in noises) z?.Dispose();
            mean?.Dispose();
        }
    }

    /// <summary>P, the number of parts.</summary>
    public int Count => _parts.Length;

    /// <summary>The part that SAGUN's step t uses: t mod P (0-based; part 1 + t mod P in their 1-based count).</summary>
    public int PartOfStep(long step) => (int)(step % _parts.Length);

    /// <summary>Energies and gradients of one part (its couplings plus the whole field), like <see cref="SphericalPSpinGlass.EnergyAndGradient"/>, for a batch [K, N].</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such part.</exception>
    /// <exception cref="ArgumentException">Points that are not [K, N] finite values.</exception>
    public (Tensor Energy, Tensor Gradient) EnergyAndGradient(Tensor points, int part)
    {
        if ((uint)part >= (uint)_parts.Length)
            throw new ArgumentOutOfRangeException(nameof(part), part, $"CouplingSplit: part must be in [0, {_parts.Length}); got {part}.");
        ArgumentNullException.ThrowIfNull(points);
        if (points.dim() != 2 || points.shape[1] != _glass.Size || !isfinite(points).all().item<bool>())
            throw new ArgumentException($"CouplingSplit.EnergyAndGradient: finite points of shape [K, {_glass.Size}] expected; got [{string.Join(", ", points.shape)}].", nameof(points));
        using var scope = NewDisposeScope();
        var (energy, gradient) = _glass.EnergyAndGradientOf(_parts[part], points.detach().to(_glass.Dtype, _glass.Device));
        return (energy.MoveToOuterDisposeScope(), gradient.MoveToOuterDisposeScope());
    }

    /// <summary>The hot path of <see cref="ProjectedSgd"/>: no checks.</summary>
    internal (Tensor Energy, Tensor Gradient) EnergyAndGradientUnchecked(Tensor batch, int part) => _glass.EnergyAndGradientOf(_parts[part], batch);

    /// <summary>Frees the parts (the glass is not touched).</summary>
    public void Dispose()
    {
        foreach (var part in _parts) part?.Dispose();
    }
}
