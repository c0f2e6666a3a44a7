using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// Projected gradient descent on the sphere, batched over K starts (SAGUN's main.lua protocol):
/// <code>
/// repeat for every start not yet stopped:
///     g ← ∇H_h(w);  g ← g − (⟨g, w⟩/N)·w            (tangent-space projection)
///     stop this start if |g| &lt; tolerance (it is frozen; the others go on)
///     γ_t = γ0/(1 + t·decay)
///     w ← w − γ_t·g;  w ← √N·w/|w|                  (retraction to the sphere)
/// </code>
/// Each step is one batched contraction of the still-moving starts.
/// </summary>
public static class ProjectedGradientDescent
{
    /// <summary>Minimises from the given starts [K, N] (each scaled onto the sphere first).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range (non-positive step or tolerance, ...).</exception>
    /// <exception cref="ArgumentException">Starts of the wrong shape, empty, or non-finite.</exception>
    /// <exception cref="InvalidOperationException">A start diverged (a too large step size).</exception>
    public static SpinGlassMinimization Run(SphericalPSpinGlass glass, Tensor starts, ProjectedGradientDescentOptions? options = null)
    {
        var o = options ?? new ProjectedGradientDescentOptions();
        o.Validate();
        var descent = SphereDescent.Start(glass, starts, "ProjectedGradientDescent.Run");
        try
        {
            var resume = descent.UseCheckpoint(o.Checkpoint, "projected gradient descent");
            descent.Descend(o, "gradient descent", resume);
            return descent.Finish("projected gradient descent", o.IndexedStarts, o.IndexTolerance);
        }
        catch
        {
            descent.Points.Dispose();
            throw;
        }
    }

    /// <summary>Minimises from <paramref name="count"/> random starts (<see cref="Sphere.RandomPoints"/> with <paramref name="seed"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">count below 1, or a setting out of range.</exception>
    public static SpinGlassMinimization Run(SphericalPSpinGlass glass, int count, long seed, ProjectedGradientDescentOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(glass);
        (options ?? new ProjectedGradientDescentOptions()).Validate();
        using var starts = Sphere.RandomPoints(count, glass.Size, seed, glass.Dtype, glass.Device);
        return Run(glass, starts, options);
    }
}
