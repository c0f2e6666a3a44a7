using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>
/// Constants of one parameter group's Langevin steps, fixed for the L steps of one outer update (the scope gamma moves
/// only between outer updates).
/// </summary>
internal readonly record struct LangevinStep(
    double Gamma, double Lr, double NoiseStd, double WeightDecay, double Momentum, bool Nesterov, bool MomentumOnDrift,
    double NewSampleWeight);

/// <summary>
/// The per-element work of the local-entropy estimator, over all parameters at once:
/// <list type="bullet">
/// <item><c>Begin</c>: x0 = x, mu = x, v = 0 (x0 remembers the weights, mu averages the iterates).</item>
/// <item><c>Step</c>: with g the loss gradient at x' (in .grad), drift d = g + wd x' + gamma (x' - x0), optional
/// (Nesterov) momentum, x' = x' - eta' d + s z with z ~ N(0, I) from the counter-based <see cref="CounterNormalNoise"/>,
/// mu = mu + w (x' - mu). The constants are per parameter (from its group).</item>
/// <item><c>Finish</c>: x = x0 and .grad = c (x0 - mu).</item>
/// <item>Diagnostics, after <c>Finish</c>: <c>StashGradient</c> parks .grad in the x0 buffer (x0 is back in the
/// weights, so the buffer is free), the caller evaluates the plain gradient at x into .grad, and
/// <c>RestoreGradient</c> measures it against the parked one and puts the local-entropy gradient back.</item>
/// </list>
/// Extra memory: x0, mu and (with momentum) v, one flat parameter-sized buffer each, diagnostics included. Both kernels
/// draw the same noise (element e of Langevin step n is a function of the seed, n and e only), so a checkpoint written
/// with one continues identically, up to float rounding, with the other.
/// </summary>
internal interface ILangevinKernel : IDisposable
{
    /// <param name="perParameter">The constants of each parameter's group for this outer update, one entry per parameter.</param>
    /// <param name="momentum">Whether the steps use Langevin momentum (a buffer v).</param>
    void Begin(LangevinStep[] perParameter, bool momentum);
    /// <summary>Elements in the kernel's buffers.</summary>
    long BufferElements { get; }
    /// <param name="noiseIndex">The Langevin step's index in the noise stream.</param>
    void Step(long noiseIndex);
    /// <summary>x = x0 and .grad = x0 - mu, times each parameter's gamma when <paramref name="scaleByGamma"/>.</summary>
    void Finish(bool scaleByGamma);
    /// <summary>The chain is given up between <c>Begin</c> and <c>Finish</c>: x = x0, nothing else.</summary>
    void Abandon();
    /// <summary>Copies .grad into the (now free) x0 buffer; returns its squared norm.</summary>
    double StashGradient();
    /// <summary>Squared norm of .grad and its dot product with the stashed gradient; then .grad = the stashed one.</summary>
    (double GradientSquared, double Dot) RestoreGradient();
}

/// <summary>Helpers both kernels share.</summary>
internal static class LangevinKernels
{
    public static InvalidOperationException NoGradient(int index) => new(
        $"parameter {index} of the local-entropy optimizer has no gradient after the closure: the closure must draw a " +
        "minibatch, compute the loss and call backward() on it (and every parameter must take part in the loss)");

    /// <summary>
    /// Sets every parameter's gradient to None, as torch's <c>zero_grad(set_to_none=True)</c> does: the next backward
    /// pass then stores its fresh gradient instead of adding it to zeros (no clearing pass, no accumulation pass).
    /// </summary>
    public static void ClearGradients(List<Parameter> parameters)
    {
        foreach (var p in parameters) p.grad = null;
    }

    /// <summary>A parameter's gradient, or a clear error if the closure left none.</summary>
    public static Tensor GradientOf(List<Parameter> parameters, int index) =>
        parameters[index].grad ?? throw NoGradient(index);
}
