using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// Simulated annealing on the sphere, batched over K starts, then a gradient quench. The whole design is ours (no
/// paper or SAGUN gives one):
/// <code>
/// T_t = T0·(T1/T0)^(t/(S−1))                                  geometric cooling, t = 0 .. S−1
/// per start: ξ ~ N(0, I_N);  w' = √N·(w + σ·ξ_⊥)/|w + σ·ξ_⊥|   (ξ_⊥: the tangent part of ξ)
///            accept w' with probability min(1, exp(−(H(w') − H(w))/T_t))
///            log σ ← log σ + rate·(accepted − target)          (each start keeps its own step size)
/// then projected gradient descent (Finish), stopping per start at the gradient tolerance
/// </code>
/// The annealing phase has no stopping rule (a sample at temperature T is not a critical point); every start takes
/// all S steps, each one batched energy evaluation. Steps in the result count both phases.
/// </summary>
public static class SimulatedAnnealing
{
    /// <summary>Anneals and quenches from the given starts [K, N] (each scaled onto the sphere first).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range.</exception>
    /// <exception cref="ArgumentException">Starts of the wrong shape, empty, or non-finite.</exception>
    /// <exception cref="InvalidOperationException">A start diverged in the quench (a too large step size).</exception>
    public static SpinGlassMinimization Run(SphericalPSpinGlass glass, Tensor starts, SimulatedAnnealingOptions? options = null)
    {
        var o = options ?? new SimulatedAnnealingOptions();
        o.Validate();
        var descent = SphereDescent.Start(glass, starts, "SimulatedAnnealing.Run");
        try
        {
            Anneal(glass, descent, o);
            for (var i = 0; i < descent.Steps.Length; i++) descent.Steps[i] = o.Steps;
            descent.Descend(o.Finish, "quench");
            return descent.Finish("simulated annealing", o.Finish.IndexedStarts, o.Finish.IndexTolerance);
        }
        catch
        {
            descent.Points.Dispose();
            throw;
        }
    }

    /// <summary>Anneals from <paramref name="count"/> random starts (<see cref="Sphere.RandomPoints"/> with <paramref name="seed"/>).</summary>
    public static SpinGlassMinimization Run(SphericalPSpinGlass glass, int count, long seed, SimulatedAnnealingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(glass);
        (options ?? new SimulatedAnnealingOptions()).Validate();
        using var starts = Sphere.RandomPoints(count, glass.Size, seed, glass.Dtype, glass.Device);
        return Run(glass, starts, options);
    }

    /// <summary>log 1e-8: the smallest proposal size.</summary>
    const double MinLogScale = -18.420680743952367;

    static void Anneal(SphericalPSpinGlass glass, SphereDescent descent, SimulatedAnnealingOptions o)
    {
        if (o.Steps == 0) return;
        var points = descent.Points;
        var k = points.shape[0];
        var n = glass.Size;
        using var generator = new Generator(unchecked((ulong)o.Seed));
        var (initialEnergy, initialGradient) = glass.EnergyAndGradientOf(glass.SymmetrisedCouplings, points);
        initialGradient.Dispose();
        using var energy = initialEnergy;
        using var logScale = ones([k, 1], glass.Dtype, glass.Device).Scale_(Math.Log(o.InitialProposalScale));
        var ratio = o.FinalTemperature / o.InitialTemperature;
        for (var t = 0; t < o.Steps; t++)
        {
            o.Finish.Cancellation.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var temperature = o.InitialTemperature * (o.Steps == 1 ? 1 : Math.Pow(ratio, t / (o.Steps - 1.0)));
            var noise = randn([k, n], glass.Dtype, generator: generator).to(glass.Device);
            var move = Sphere.ProjectToTangent(noise, points).mul(logScale.exp());
            var proposal = Sphere.RetractUnchecked(points.add(move));
            var (proposedEnergy, proposedGradient) = glass.EnergyAndGradientOf(glass.SymmetrisedCouplings, proposal);
            proposedGradient.Dispose();
            var uniform = rand([k], glass.Dtype, generator: generator).to(glass.Device);
            // Accept when u < exp(−ΔH/T), i.e. log u < −ΔH/T (ΔH ≤ 0 always passes: log u < 0).
            var accepted = uniform.log().lt(energy.sub(proposedEnergy).mul(descent.ScalarOf(1 / temperature)));
            points.copy_(where(accepted.unsqueeze(1), proposal, points));
            energy.copy_(where(accepted, proposedEnergy, energy));
            logScale.add_(accepted.to(glass.Dtype).unsqueeze(1).sub(descent.ScalarOf(o.TargetAcceptance)).mul(descent.ScalarOf(o.AdaptationRate)));
            // σ stays within [1e-8, 1]: a per-coordinate move of 1 already crosses the sphere.
            logScale.copy_(logScale.clamp(descent.ScalarOf(MinLogScale), descent.ScalarOf(0)));
            o.Finish.Progress?.Report(new SpinGlassProgress("annealing", t, (int)k));
        }
    }
}
