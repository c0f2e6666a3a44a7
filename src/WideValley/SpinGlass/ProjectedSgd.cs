using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// Projected SGD with split couplings (SAGUN's sgd.lua), batched over K starts:
/// <code>
/// split X = Σ_{p=1}^P X^(p)          (CouplingSplit: independent parts of variance 1/P)
/// for t = 0 .. S−1 (S = 500·P):      g ← ∇H^(1 + t mod P)(w), projected;  w ← retract(w − γ0/(1 + t·decay)·g)
/// then projected gradient descent with the full couplings (Finish), stopping per start at the tolerance
/// </code>
/// The stochastic phase has no stopping rule (a part's gradient does not vanish at a minimum of the whole); every
/// start takes all S steps. Steps in the result count both phases.
/// </summary>
public static class ProjectedSgd
{
    const string Method = "projected SGD with split couplings";

    /// <summary>Minimises from the given starts [K, N] (each scaled onto the sphere first).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range.</exception>
    /// <exception cref="ArgumentException">Starts of the wrong shape, empty, or non-finite.</exception>
    /// <exception cref="InsufficientMemoryException">The P parts do not fit in memory.</exception>
    /// <exception cref="InvalidOperationException">A start diverged (a too large step size).</exception>
    public static SpinGlassMinimization Run(SphericalPSpinGlass glass, Tensor starts, ProjectedSgdOptions? options = null)
    {
        var o = options ?? new ProjectedSgdOptions();
        o.Validate();
        var descent = SphereDescent.Start(glass, starts, "ProjectedSgd.Run");
        try
        {
            var steps = o.StochasticSteps ?? 500 * o.Parts;
            var resume = descent.UseCheckpoint(o.Finish.Checkpoint, Method);
            var first = resume switch { null => 0, { Phase: DescentPhase.Stochastic } => resume.Step, _ => steps };
            var every = o.Finish.Checkpoint?.EverySteps ?? int.MaxValue;
            if (first < steps)
            {
                using var split = glass.Split(o.Parts, o.SplitSeed, o.MemoryLimitBytes);
                var points = descent.Points;
                for (var t = first; t < steps; t++)
                {
                    if (o.Finish.Cancellation.IsCancellationRequested)
                    {
                        descent.Save(DescentPhase.Stochastic, t, []);
                        o.Finish.Cancellation.ThrowIfCancellationRequested();
                    }
                    if (t > first && (t - first) % every == 0) descent.Save(DescentPhase.Stochastic, t, []);
                    using var scope = NewDisposeScope();
                    var (_, gradient) = split.EnergyAndGradientUnchecked(points, split.PartOfStep(t));
                    var projected = Sphere.ProjectToTangent(gradient, points);
                    var stepSize = o.StepSize / (1 + t * o.StepDecay);
                    points.copy_(Sphere.RetractUnchecked(points.add(projected.mul(descent.ScalarOf(-stepSize)))));
                    o.Finish.Progress?.Report(new SpinGlassProgress("stochastic gradient", t, (int)points.shape[0]));
                }
                if (!isfinite(points).all().item<bool>())
                    throw new InvalidOperationException($"ProjectedSgd: the stochastic phase diverged (non-finite points after {steps} steps); use a smaller step size.");
            }
            if (resume is not { Phase: DescentPhase.Descent })
            {
                for (var i = 0; i < descent.Steps.Length; i++) descent.Steps[i] = steps;
                descent.Save(DescentPhase.Descent, 0, Enumerable.Range(0, descent.Steps.Length).ToArray());
            }
            descent.Descend(o.Finish, "quench", resume);
            return descent.Finish(Method, o.Finish.IndexedStarts, o.Finish.IndexTolerance);
        }
        catch
        {
            descent.Points.Dispose();
            throw;
        }
    }

    /// <summary>Minimises from <paramref name="count"/> random starts (<see cref="Sphere.RandomPoints"/> with <paramref name="seed"/>).</summary>
    public static SpinGlassMinimization Run(SphericalPSpinGlass glass, int count, long seed, ProjectedSgdOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(glass);
        (options ?? new ProjectedSgdOptions()).Validate();
        using var starts = Sphere.RandomPoints(count, glass.Size, seed, glass.Dtype, glass.Device);
        return Run(glass, starts, options);
    }
}
