using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;
using ParamGroup = TorchSharp.Modules.ParamGroup;

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
/// <para>Alg. 1 of the paper, as <see cref="Estimate"/> runs it, with where each line lives:</para>
/// <code>
///   input: weights x, Langevin steps L, scope gamma = gamma(t), Langevin step size eta', noise eps, average weight alpha
///   x0 = x                                   // ILangevinKernel.Begin: x0 is the flat copy the chain is tied to
/// 2 x', mu = x                               // Begin: the chain starts in the parameters themselves (x' lives in x)
///   v = 0                                    // Begin: Langevin momentum (LangevinMomentum &gt; 0; the paper's MNIST runs)
/// 3 for l = 1..L:
///       .grad = None                         // Estimate: the estimator clears the gradients before every closure call
/// 4     Xi_l = sample minibatch              // closure(): draws the minibatch ...
///       g = grad f(x'; Xi_l)                 // closure(): ... and back-propagates into .grad
/// 5     dx' = g + wd x' - gamma (x0 - x')    // Step: the drift (LangevinWeightDecay wd, 0 in the paper)
///       v = m v + dx'; dx' = dx' + m v       // Step: (Nesterov) momentum on the drift (MomentumTarget.Drift, Sec. 4.2);
///                                            //   LossGradient applies it to g + wd x' only, as the reference code does
/// 6     x' = x' - eta' dx' + sqrt(eta') eps z    // Step: z ~ N(0, I) from CounterNormalNoise (seed, step, element);
///                                            //   NoiseScaling.Reference uses sqrt(2 eta') eps
/// 7a    mu = (1 - alpha) mu + alpha x'       // Step: LangevinAverage.Paper; Reference weights x' by 1 - alpha
///   x = x0                                   // Finish: the weights come back unchanged
/// 7b  .grad = x - mu  (or gamma (x - mu))    // Finish: LocalEntropyGradient.Unscaled (Sec. 4.3, the default) or ScaledByGamma
///   t = t + 1                                // Estimate: OuterSteps drives gamma(t) (ScopeCounting.Paper)
/// 7c  x = x - eta .grad                      // not here: the outer optimizer's step (LocalEntropyOptimizer: SGD, Adam)
/// </code>
/// <para>
/// Gradients: the estimator owns .grad during the chain. It sets every parameter's gradient to None before each closure
/// call (torch's <c>zero_grad(set_to_none=True)</c>), so a closure that does not zero them gets exactly the same result
/// as one that does, and the backward pass stores its gradient instead of adding it to zeros (no clearing pass, no
/// accumulation pass). A closure that calls <c>optimizer.zero_grad()</c> finds nothing to zero.
/// </para>
/// <para>
/// Parameter groups: each group may override eta', eps, gamma(t) and the Langevin weight decay
/// (<see cref="ILocalEntropyParamGroup"/>); every other setting is the estimator's.
/// </para>
/// <para>
/// Diagnostics (the angle between the plain minibatch gradient at x and the local-entropy gradient, Sec. 5.4) cost one
/// more closure call on every <see cref="LocalEntropyOptions.DiagnosticsEvery"/>-th outer step, made after the chain
/// with x restored, so that the estimator never holds more than three parameter-sized buffers (x0, mu, and the
/// Langevin momentum). The gradient at the chain's first step would be free but needs a fourth buffer to keep.
/// </para>
/// </remarks>
public sealed class LocalEntropy : IDisposable, IStateOwner
{
    readonly List<ParamGroup> _groups = [];
    readonly List<Parameter> _params = [];
    readonly List<int> _groupOfParameter = [];
    LangevinStep[] _perParameter = [];
    CounterNormalNoise _noise = null!;
    ILangevinKernel _kernel = null!;
    int _samples;
    double _distanceSum, _leNormSum, _sgdNormSum, _cosineSum;

    /// <summary>The settings every parameter group inherits (see <see cref="ILocalEntropyParamGroup"/>).</summary>
    public LocalEntropyOptions Options { get; }
    /// <summary>t: outer updates made so far (drives the scope schedule; survives checkpoints).</summary>
    public long OuterSteps { get; set; }
    /// <summary>Langevin steps taken so far: the position of the noise stream.</summary>
    public long LangevinSteps { get; set; }
    /// <summary>The seed of the noise stream (from the options; a loaded checkpoint restores its own).</summary>
    public long NoiseSeed => _noise.Seed;
    /// <summary>Which kernel runs the update ("fused-cpu" or "tensor-ops").</summary>
    public string KernelName => _kernel is FusedCpuLangevinKernel ? "fused-cpu" : "tensor-ops";

    /// <summary>An estimator over <paramref name="parameters"/> (those that require gradients), as one group.</summary>
    public LocalEntropy(IEnumerable<Parameter> parameters, LocalEntropyOptions options)
        : this([new ParamGroup { Parameters = parameters.ToList() }], options)
    {
    }

    /// <summary>
    /// An estimator over the parameters of <paramref name="groups"/>; groups implementing
    /// <see cref="ILocalEntropyParamGroup"/> may override the Langevin settings. The estimator reads the groups (not a
    /// copy), so changing a group's overrides between steps takes effect at the next step.
    /// </summary>
    public LocalEntropy(IEnumerable<ParamGroup> groups, LocalEntropyOptions options)
    {
        options.Validate();
        Options = options;
        foreach (var g in groups) AddGroupParameters(g);
        if (_params.Count == 0) throw new ArgumentException("no trainable parameters to estimate a local-entropy gradient for");
        Rebuild(options.Seed);
    }

    /// <summary>Adds a parameter group (from <c>add_param_group</c>); the buffers are rebuilt to cover its parameters.</summary>
    public void AddGroup(ParamGroup group)
    {
        AddGroupParameters(group);
        if (_params.Count == 0) throw new ArgumentException("no trainable parameters to estimate a local-entropy gradient for");
        Rebuild(_noise.Seed);
    }

    void AddGroupParameters(ParamGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        var index = _groups.Count;
        var added = (group.Parameters ?? []).Where(p => p.requires_grad).ToList();
        if (added.Any(p => _params.Any(q => q.Handle == p.Handle)))
            throw new ArgumentException($"parameter group {index} repeats a parameter of an earlier group; a parameter may belong to one group only");
        _groups.Add(group);
        foreach (var p in added)
        {
            _params.Add(p);
            _groupOfParameter.Add(index);
        }
        if (group is ILocalEntropyParamGroup { Langevin: { } overrides }) overrides.Apply(Options, index);
    }

    void Rebuild(long seed)
    {
        var first = _params[0];
        for (var i = 1; i < _params.Count; i++)
        {
            var p = _params[i];
            if (p.device_type != first.device_type || p.device_index != first.device_index || p.dtype != first.dtype)
                throw new NotSupportedException(
                    $"all parameters must share one device and dtype (move the model before building the optimizer): parameter {i} is " +
                    $"{p.dtype} on {p.device}, parameter 0 is {first.dtype} on {first.device}");
        }
        _kernel?.Dispose();
        _noise = new CounterNormalNoise(seed, _params.Sum(p => p.numel()));
        _perParameter = new LangevinStep[_params.Count];
        var fused = FusedCpuLangevinKernel.Supports(_params);
        _kernel = Options.Kernel switch
        {
            LangevinKernel.FusedCpu when !fused => throw new NotSupportedException(
                "the fused Langevin kernel needs contiguous float32 parameters on the CPU and 256-bit SIMD; use the tensor-ops kernel"),
            LangevinKernel.FusedCpu or LangevinKernel.Auto when fused => new FusedCpuLangevinKernel(_params, _noise),
            _ => new TensorOpsLangevinKernel(_params, _noise),
        };
    }

    /// <summary>Elements in the estimator's own buffers (x0, mu and, with Langevin momentum, v).</summary>
    public long BufferElements => _kernel.BufferElements;

    /// <summary>The parameter groups, in order (the base optimizer's, for a local-entropy optimizer).</summary>
    public IReadOnlyList<ParamGroup> Groups => _groups;

    /// <summary>The settings group <paramref name="group"/> runs with: the options with its overrides applied.</summary>
    public LocalEntropyOptions GroupOptions(int group) =>
        _groups[group] is ILocalEntropyParamGroup { Langevin: { } overrides } ? overrides.Apply(Options, group) : Options;

    /// <summary>gamma of the first parameter group for the next outer update.</summary>
    public double CurrentGamma => GammaOf(GroupOptions(0));

    double GammaOf(LocalEntropyOptions o) => o.Scope.Gamma(o.ScopeCounting == ScopeCounting.Paper ? OuterSteps : 0);

    /// <summary>
    /// Runs the Langevin chain at the current weights and leaves the local-entropy gradient in .grad; the weights are
    /// unchanged on return. Calls <paramref name="closure"/> exactly <see cref="LocalEntropyOptions.L"/> times, plus one
    /// with <see cref="LocalEntropyOptions.ExtraClosureEvaluation"/> and one on diagnostic steps; the closure must draw a
    /// fresh minibatch, back-propagate and return the loss. It need not zero the gradients: the estimator sets them to
    /// None before every call. Returns the last Langevin loss. Advances t by one.
    /// </summary>
    /// <remarks>
    /// Each closure call runs in a dispose scope of its own: the tensors it creates are freed when it returns (the last
    /// call's loss excepted), so memory stays flat in L. A closure that keeps a tensor for later must take it out of the
    /// scope (<c>DetachFromDisposeScope</c>). When the closure throws (or anything else in the step does), the step is
    /// undone before the exception goes on: the weights are back where they were, the gradients are None, and neither t
    /// nor the noise stream has moved, so the same step can be taken again. A trainer stops inside a long step by
    /// having its closure throw.
    /// </remarks>
    public Tensor Estimate(Func<Tensor> closure)
    {
        ArgumentNullException.ThrowIfNull(closure);
        var o = Options;
        var gamma = PrepareSteps();
        var scaleByGamma = o.Gradient == LocalEntropyGradient.ScaledByGamma;
        var diagnose = o.DiagnosticsEvery > 0 && OuterSteps % o.DiagnosticsEvery == 0;
        var startingLangevinSteps = LangevinSteps;
        var chainRunning = false;
        Tensor? loss = null;
        try
        {
            using (no_grad()) _kernel.Begin(_perParameter, o.LangevinMomentum != 0);
            chainRunning = true;
            if (o.ExtraClosureEvaluation) CallClosure(closure, keepLoss: false);
            for (var l = 0; l < o.L; l++)
            {
                loss = CallClosure(closure, keepLoss: l == o.L - 1);
                using (no_grad()) _kernel.Step(LangevinSteps);
                LangevinSteps++;
            }
            using (no_grad()) _kernel.Finish(scaleByGamma);
            chainRunning = false;
            if (diagnose) Diagnose(closure, scaleByGamma ? gamma : 1.0);
        }
        catch
        {
            // The step did not happen: the weights, the noise stream's position and t are as they were before it, so
            // that the same step can be taken again (a stop request that the closure turned into an exception, a
            // minibatch whose loss was not finite).
            using (no_grad())
            {
                if (chainRunning) _kernel.Abandon();
                LangevinKernels.ClearGradients(_params);
            }
            LangevinSteps = startingLangevinSteps;
            throw;
        }
        OuterSteps++;
        return loss!;
    }

    /// <summary>
    /// One closure call in a dispose scope of its own: what the closure allocates (the minibatch, activations, the
    /// graph's tensors) is freed when the call returns instead of when the whole step ends, so an Entropy-SGD step's
    /// memory does not grow with L. The returned loss is kept when <paramref name="keepLoss"/> (if the closure created it).
    /// </summary>
    Tensor CallClosure(Func<Tensor> closure, bool keepLoss)
    {
        LangevinKernels.ClearGradients(_params);
        using var scope = NewDisposeScope();
        Tensor loss;
        using (enable_grad()) loss = closure();
        if (keepLoss && scope.Contains(loss)) scope.MoveToOuter(loss);
        return loss;
    }

    /// <summary>Each parameter's step constants for this outer update; returns group 0's gamma.</summary>
    double PrepareSteps()
    {
        var perGroup = new LangevinStep[_groups.Count];
        for (var g = 0; g < _groups.Count; g++)
        {
            var o = GroupOptions(g);
            perGroup[g] = new LangevinStep(GammaOf(o), o.LangevinLr, o.NoiseStd, o.LangevinWeightDecay, o.LangevinMomentum,
                o.LangevinNesterov, o.MomentumTarget == LangevinMomentumTarget.Drift, o.NewSampleWeight);
        }
        for (var i = 0; i < _params.Count; i++) _perParameter[i] = perGroup[_groupOfParameter[i]];
        return perGroup[0].Gamma;
    }

    /// <summary>Compares the local-entropy gradient (in .grad) with a plain minibatch gradient at x.</summary>
    void Diagnose(Func<Tensor> closure, double scale)
    {
        double leSquared;
        using (no_grad()) leSquared = _kernel.StashGradient();
        CallClosure(closure, keepLoss: false);
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

    /// <summary>
    /// Layout of <see cref="Save"/>: 2 added the diagnostics gathered so far; 3 replaced the generator state by the
    /// counter-based stream's seed (both kernels draw the same noise) and added each group's Langevin overrides.
    /// </summary>
    const long StateVersion = 3;

    /// <summary>
    /// Everything needed to continue identically, with either kernel: counters (the Langevin step count is the noise
    /// stream's position), the noise seed, each parameter group's Langevin overrides and the diagnostics gathered so far
    /// (a run resumed mid-epoch reports the same epoch averages).
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
        writer.Write(sizeof(long));
        writer.Write(_noise.Seed);
        writer.Write(_groups.Count);
        foreach (var group in _groups)
            ((group as ILocalEntropyParamGroup)?.Langevin ?? new LangevinGroupOptions()).Save(writer);
    }

    /// <summary>
    /// Restores what <see cref="Save"/> wrote. Layouts 1 and 2 carried the generator state of the tensor-ops kernel of
    /// the time (libtorch's); it cannot be continued, so such a run continues with the counter-based stream of its seed.
    /// </summary>
    public void Load(BinaryReader reader)
    {
        var first = reader.ReadInt64();
        var version = first < 0 ? -first : 1;
        if (version > StateVersion)
            throw new InvalidDataException($"local-entropy state version {version} is newer than this WideValley reads ({StateVersion})");
        var outerSteps = version == 1 ? first : reader.ReadInt64();
        var langevinSteps = reader.ReadInt64();
        int samples = 0;
        double distance = 0, leNorm = 0, sgdNorm = 0, cosine = 0;
        if (version >= 2)
        {
            samples = reader.ReadInt32();
            distance = reader.ReadDouble();
            leNorm = reader.ReadDouble();
            sgdNorm = reader.ReadDouble();
            cosine = reader.ReadDouble();
        }
        var n = reader.ReadInt32();
        var state = reader.ReadBytes(n);
        if (state.Length != n) throw new EndOfStreamException("local-entropy state is truncated");
        long? seed = null;
        List<LangevinGroupOptions?>? overrides = null;
        if (version >= 3)
        {
            if (n != sizeof(long)) throw new InvalidDataException($"local-entropy state: expected an 8-byte noise seed, found {n} bytes");
            seed = BitConverter.ToInt64(state);
            var groups = reader.ReadInt32();
            if (groups != _groups.Count)
                throw new InvalidDataException($"local-entropy state has {groups} parameter groups, this optimizer has {_groups.Count}");
            overrides = [];
            for (var g = 0; g < groups; g++) overrides.Add(LangevinGroupOptions.Load(reader));
            for (var g = 0; g < groups; g++)
                if (overrides[g] is not null && _groups[g] is not ILocalEntropyParamGroup)
                    throw new InvalidDataException(
                        $"local-entropy state: parameter group {g} has Langevin settings ({overrides[g]}), but this optimizer's group {g} " +
                        $"is a {_groups[g].GetType().Name}, which cannot hold them");
        }
        // Everything read: now change the estimator.
        OuterSteps = outerSteps;
        LangevinSteps = langevinSteps;
        (_samples, _distanceSum, _leNormSum, _sgdNormSum, _cosineSum) = (samples, distance, leNorm, sgdNorm, cosine);
        if (overrides is not null)
            for (var g = 0; g < overrides.Count; g++)
                if (_groups[g] is ILocalEntropyParamGroup holder) holder.Langevin = overrides[g];
        if (seed is { } s && s != _noise.Seed) Rebuild(s);
    }

    /// <inheritdoc/>
    public void Dispose() => _kernel.Dispose();
}
