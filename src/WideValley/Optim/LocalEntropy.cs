using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>Per-epoch averages of what the estimator saw on its diagnostic steps.</summary>
public sealed record LocalEntropyDiagnostics(
    double Gamma, double MeanDistance, double MeanLocalEntropyGradientNorm, double MeanSgdGradientNorm, double MeanCosine, int Samples);

/// <summary>
/// The local-entropy gradient estimator of Entropy-SGD (seed 003, Alg. 1 lines 2-7): from the current weights x it
/// runs L steps of stochastic gradient Langevin dynamics on f(x') + gamma/2 ||x - x'||^2, each on a fresh minibatch
/// drawn by the closure, keeps an exponential average mu of the iterates, restores x, and leaves the local-entropy
/// gradient x - mu (or gamma (x - mu)) in each parameter's .grad for any outer optimizer to use.
/// </summary>
/// <remarks>
/// Diagnostics (the angle between the plain minibatch gradient at x and the local-entropy gradient, Sec. 5.4) cost one
/// more closure call on every <see cref="LocalEntropyOptions.DiagnosticsEvery"/>-th outer step, made after the chain
/// with x restored, so that the estimator never holds more than three parameter-sized buffers (x0, mu, and the
/// Langevin momentum). The gradient at the chain's first step would be free but needs a fourth buffer to keep.
/// </remarks>
public sealed class LocalEntropy : IDisposable, IStateOwner
{
    readonly List<Parameter> _params;
    ILangevinKernel _kernel;
    int _samples;
    double _distanceSum, _leNormSum, _sgdNormSum, _cosineSum;

    public LocalEntropyOptions Options { get; }
    /// <summary>t: outer updates made so far (drives the scope schedule; survives checkpoints).</summary>
    public long OuterSteps { get; set; }
    /// <summary>Langevin steps taken so far: the position of the noise stream.</summary>
    public long LangevinSteps { get; set; }
    /// <summary>Which kernel runs the update ("fused-cpu" or "tensor-ops").</summary>
    public string KernelName => _kernel is FusedCpuLangevinKernel ? "fused-cpu" : "tensor-ops";

    public LocalEntropy(IEnumerable<Parameter> parameters, LocalEntropyOptions options)
    {
        options.Validate();
        Options = options;
        _params = parameters.Where(p => p.requires_grad).ToList();
        if (_params.Count == 0) throw new ArgumentException("no trainable parameters to estimate a local-entropy gradient for");
        var first = _params[0];
        if (_params.Any(p => p.device_type != first.device_type || p.device_index != first.device_index || p.dtype != first.dtype))
            throw new NotSupportedException("all parameters must share one device and dtype (move the model before building the optimizer)");
        _kernel = CreateKernel();
    }

    ILangevinKernel CreateKernel()
    {
        var fused = FusedCpuLangevinKernel.Supports(_params);
        return Options.Kernel switch
        {
            LangevinKernel.FusedCpu when !fused => throw new NotSupportedException(
                "the fused Langevin kernel needs contiguous float32 parameters on the CPU and 256-bit SIMD; use the tensor-ops kernel"),
            LangevinKernel.FusedCpu or LangevinKernel.Auto when fused => new FusedCpuLangevinKernel(_params, Options.Seed),
            _ => new TensorOpsLangevinKernel(_params, Options.Seed),
        };
    }

    /// <summary>Elements in the estimator's own buffers (x0, mu and, with Langevin momentum, v).</summary>
    public long BufferElements => _kernel.BufferElements;

    /// <summary>gamma for the next outer update.</summary>
    public double CurrentGamma => Options.Scope.Gamma(Options.ScopeCounting == ScopeCounting.Paper ? OuterSteps : 0);

    /// <summary>
    /// Runs the Langevin chain at the current weights and leaves the local-entropy gradient in .grad; the weights are
    /// unchanged on return. Calls <paramref name="closure"/> exactly <see cref="LocalEntropyOptions.L"/> times, plus one
    /// with <see cref="LocalEntropyOptions.ExtraClosureEvaluation"/> and one on diagnostic steps; the closure must zero
    /// the gradients, draw a fresh minibatch, back-propagate and return the loss. Returns the last Langevin loss.
    /// Advances t by one.
    /// </summary>
    public Tensor Estimate(Func<Tensor> closure)
    {
        var o = Options;
        var gamma = CurrentGamma;
        var diagnose = o.DiagnosticsEvery > 0 && OuterSteps % o.DiagnosticsEvery == 0;
        var momentum = o.LangevinMomentum != 0;
        using (no_grad()) _kernel.Begin(momentum);
        if (o.ExtraClosureEvaluation)
            using (enable_grad()) closure();
        Tensor? loss = null;
        for (var l = 0; l < o.L; l++)
        {
            using (enable_grad()) loss = closure();
            using (no_grad())
            {
                _kernel.Step(new LangevinStep(gamma, o.LangevinLr, o.NoiseStd, o.LangevinWeightDecay, o.LangevinMomentum,
                    o.LangevinNesterov, o.MomentumTarget == LangevinMomentumTarget.Drift, o.NewSampleWeight, LangevinSteps));
            }
            LangevinSteps++;
        }
        var scale = o.Gradient == LocalEntropyGradient.ScaledByGamma ? gamma : 1.0;
        using (no_grad()) _kernel.Finish(scale);
        if (diagnose) Diagnose(closure, scale);
        OuterSteps++;
        return loss!;
    }

    /// <summary>Compares the local-entropy gradient (in .grad) with a plain minibatch gradient at x.</summary>
    void Diagnose(Func<Tensor> closure, double scale)
    {
        double leSquared;
        using (no_grad()) leSquared = _kernel.StashGradient();
        using (enable_grad()) closure();
        (double GradientSquared, double Dot) m;
        using (no_grad()) m = _kernel.RestoreGradient();
        var leNorm = Math.Sqrt(leSquared);
        var sgdNorm = Math.Sqrt(m.GradientSquared);
        _samples++;
        _distanceSum += leNorm / scale;
        _leNormSum += leNorm;
        _sgdNormSum += sgdNorm;
        _cosineSum += leNorm > 0 && sgdNorm > 0 ? m.Dot / (leNorm * sgdNorm) : 0;
    }

    /// <summary>Averages over the diagnostic steps since the last call (null if there were none), then resets.</summary>
    public LocalEntropyDiagnostics? TakeDiagnostics()
    {
        if (_samples == 0) return null;
        var d = new LocalEntropyDiagnostics(CurrentGamma, _distanceSum / _samples, _leNormSum / _samples,
            _sgdNormSum / _samples, _cosineSum / _samples, _samples);
        _samples = 0;
        _distanceSum = _leNormSum = _sgdNormSum = _cosineSum = 0;
        return d;
    }

    /// <summary>Layout of <see cref="Save"/>: 2 added the diagnostics gathered so far.</summary>
    const long StateVersion = 2;

    /// <summary>
    /// Everything needed to continue identically: counters, the noise generator's state and the diagnostics gathered
    /// so far (a run resumed mid-epoch reports the same epoch averages).
    /// </summary>
    public void Save(BinaryWriter writer)
    {
        // A negative first number marks a versioned layout; version 1 (no marker) began with the non-negative t.
        writer.Write(-StateVersion);
        writer.Write(OuterSteps);
        writer.Write(LangevinSteps);
        writer.Write(_samples);
        writer.Write(_distanceSum);
        writer.Write(_leNormSum);
        writer.Write(_sgdNormSum);
        writer.Write(_cosineSum);
        var state = _kernel.SaveGeneratorState();
        writer.Write(state.Length);
        writer.Write(state);
    }

    public void Load(BinaryReader reader)
    {
        var first = reader.ReadInt64();
        var version = first < 0 ? -first : 1;
        if (version > StateVersion)
            throw new InvalidDataException($"local-entropy state version {version} is newer than this WideValley reads ({StateVersion})");
        OuterSteps = version == 1 ? first : reader.ReadInt64();
        LangevinSteps = reader.ReadInt64();
        if (version >= 2)
        {
            _samples = reader.ReadInt32();
            _distanceSum = reader.ReadDouble();
            _leNormSum = reader.ReadDouble();
            _sgdNormSum = reader.ReadDouble();
            _cosineSum = reader.ReadDouble();
        }
        var n = reader.ReadInt32();
        var state = reader.ReadBytes(n);
        if (state.Length != n) throw new EndOfStreamException("local-entropy state is truncated");
        if (n > 0) _kernel.LoadGeneratorState(state);
    }

    public void Dispose() => _kernel.Dispose();
}
