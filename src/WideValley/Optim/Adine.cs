using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>
/// ADINE (Srinivasan, Sankar &amp; Balasubramanian, "ADINE: an adaptive momentum method for stochastic gradient descent",
/// arXiv 1712.07424): heavy-ball momentum that is allowed above 1 while the loss keeps falling and drops below 1 when it
/// rises. The abstract states only that; the update, the switch and every default below are ours (docs/seed-004.md).
/// </summary>
/// <remarks>
/// <code>
/// input: per group lr eta (schedulers apply); m_high &gt; m_low, m_low in [0, 1); window W; tolerance tol; weight
///        decay wd; nesterov; velocity cap c &gt;= 0
/// v = 0; m = m_high; n = 0                                   (we start optimistic: m &gt; 1 from the first step)
/// for each step:
///     l = closure()                                         (the minibatch loss at x; the closure sets the gradients)
///     if l is not finite:                                   (the guard)
///         m = m_low; v = v * min(1, c / |v|) (c = 0 or v not finite: v = 0); x unchanged; next step
///     if first finite loss: a = l; a_ref = a; n = 0
///     else: a = 0.9 a + 0.1 l; n = n + 1                    (EMA of the minibatch loss)
///     if n == W:                                            (every W steps)
///         m = m_low if a - a_ref &gt; tol |a_ref| else m_high
///         a_ref = a; n = 0
///     g = grad + wd x
///     v = m v - eta g
///     if c &gt; 0 and |v| &gt; c: v = v c / |v|                  (|v| over all parameters)
///     x = x + v                       (nesterov: x = x + m v - eta g)
/// </code>
/// The velocity holds the learning rate (v = -eta b for PyTorch's buffer b while eta is constant), so the cap bounds the
/// step length. m is one number for the whole optimizer, not a per-group option: schedulers that cycle a group's
/// momentum (OneCycleLR, CyclicLR) do not drive it. The loss comes from the closure the trainer hands to every
/// optimizer, so <see cref="step"/> needs one; nothing in the trainer knows about the switch.
/// <para>
/// The velocity is one tensor per parameter, allocated with the optimizer and detached from dispose scopes; a step
/// allocates no tensor beyond SGD's (the cap's norm is read in place on the CPU). CPU float32 parameters are updated by one fused, vectorised pass when the cap is
/// off (<see cref="UseFastPath"/> chooses in tests); other devices and dtypes, and capped steps, use tensor operations.
/// The state dictionary holds the velocities and an entry with m, the running loss, its reference, the window counter
/// and the step count, so a checkpoint resumes bit for bit.
/// </para>
/// </remarks>
public sealed class Adine : OptimizerHelper, IStateOwner, IOptimizerDiagnostics, IOptimizerMemory
{
    /// <summary>The weight of the old running loss in the EMA of minibatch losses (ours).</summary>
    public const double LossAverageDecay = 0.9;

    readonly AdineOptions _settings;
    long _lowSteps, _guardTrips, _stepsAtLastTake;

    /// <summary>ADINE over <paramref name="parameters"/> as one group.</summary>
    /// <param name="parameters">The parameters to train.</param>
    /// <param name="options">The settings (validated here; <see cref="OptionsException"/> names a bad one).</param>
    public Adine(IEnumerable<Parameter> parameters, AdineOptions options)
        : this([new ParamGroup { Parameters = parameters }], options)
    {
    }

    /// <summary>
    /// ADINE over parameter groups; a group's unset learning rate takes <paramref name="options"/>'. The switch, the
    /// momentum values, weight decay and the cap are the optimizer's, shared by every group.
    /// </summary>
    public Adine(IEnumerable<ParamGroup> groups, AdineOptions options)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _settings = options;
        Momentum = options.MomentumHigh;
        _defaults = new OptimizerOptions { LearningRate = options.LearningRate, InitialLearningRate = options.LearningRate };
        _parameter_groups = [];
        foreach (var group in groups) add_param_group(group);
    }

    /// <summary>The settings this optimizer was built with.</summary>
    public AdineOptions Settings => _settings;

    /// <summary>m for the next step: <see cref="AdineOptions.MomentumHigh"/> or <see cref="AdineOptions.MomentumLow"/>.</summary>
    public double Momentum { get; private set; }

    /// <summary>Steps taken so far, including those the guard skipped (survives checkpoints).</summary>
    public long Steps { get; private set; }

    /// <summary>The running (EMA) minibatch loss; NaN before the first finite loss.</summary>
    public double LossAverage { get; private set; } = double.NaN;

    /// <summary>The running loss at the last comparison (or the first loss), which the next comparison is against; NaN before the first finite loss.</summary>
    public double LossReference { get; private set; } = double.NaN;

    /// <summary>EMA updates since <see cref="LossReference"/> was set; the switch is decided when it reaches the window.</summary>
    public int StepsSinceComparison { get; private set; }

    /// <summary>True (default): CPU float32 parameters take the fused update when the cap is off. False: tensor operations.</summary>
    internal bool UseFastPath { get; set; } = true;

    /// <summary>Elements in the velocity tensors.</summary>
    public long StateElements => _state.Values.Sum(s => ((VelocityState)s).Velocity.numel());

    /// <summary>A copy of the velocity v of <paramref name="parameter"/>.</summary>
    public Tensor VelocityOf(Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        if (!_state.TryGetValue(parameter.Handle, out var state)) throw new ArgumentException("the parameter is not one of this optimizer's", nameof(parameter));
        return ((VelocityState)state).Velocity.clone();
    }

    /// <summary>Adds a group; its options must be <see cref="OptimizerOptions"/> (only the learning rate is read) or null.</summary>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        param_group.Options ??= new OptimizerOptions();
        param_group.Options.LearningRate ??= _defaults.LearningRate;
        param_group.Options.InitialLearningRate = param_group.Options.LearningRate!.Value;
        foreach (var p in param_group.Parameters)
            if (_state.ContainsKey(p.Handle)) throw new ArgumentException("a parameter appears twice in ADINE's groups");
        _parameter_groups.Add(param_group);
        foreach (var p in param_group.Parameters) _state[p.Handle] = new VelocityState(p);
    }

    /// <summary>Sets every gradient to None (PyTorch 2's default); parameters without a gradient are skipped by <see cref="step"/>.</summary>
    public override void zero_grad()
    {
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
                p.grad = null;
    }

    /// <summary>
    /// One ADINE step (see the class remarks): evaluates <paramref name="closure"/> with gradients enabled, feeds its loss
    /// to the switch and moves every parameter that has a gradient. If the closure throws, nothing changes.
    /// </summary>
    /// <param name="closure">Computes the minibatch loss and its gradients; required, since the switch needs the loss.</param>
    /// <returns>The closure's loss.</returns>
    /// <exception cref="ArgumentNullException">No closure was given.</exception>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure), "ADINE switches its momentum on the loss: call step with a closure that returns the minibatch loss");
        Tensor loss;
        using (enable_grad()) loss = closure();
        var value = loss.ToDouble();
        using (no_grad())
        {
            if (!double.IsFinite(value)) Guard();
            else
            {
                Observe(value);
                Move();
            }
        }
        if (Momentum == _settings.MomentumLow) _lowSteps++;
        Steps++;
        return loss;
    }

    /// <summary>Feeds a finite loss to the running mean and, every <see cref="AdineOptions.Window"/> updates, decides m.</summary>
    void Observe(double loss)
    {
        if (double.IsNaN(LossAverage))
        {
            LossAverage = loss;
            LossReference = loss;
            StepsSinceComparison = 0;
            return;
        }
        LossAverage = LossAverageDecay * LossAverage + (1 - LossAverageDecay) * loss;
        if (++StepsSinceComparison < _settings.Window) return;
        var rose = LossAverage - LossReference > _settings.Tolerance * Math.Abs(LossReference);
        Momentum = rose ? _settings.MomentumLow : _settings.MomentumHigh;
        LossReference = LossAverage;
        StepsSinceComparison = 0;
    }

    /// <summary>A non-finite loss: m_low, the velocity cut to the cap (zeroed when the cap is off or it is not finite), no move.</summary>
    void Guard()
    {
        _guardTrips++;
        Momentum = _settings.MomentumLow;
        var norm = VelocityNorm();
        if (!double.IsFinite(norm) || _settings.VelocityCap == 0) ScaleVelocities(0);
        else if (norm > _settings.VelocityCap) ScaleVelocities(_settings.VelocityCap / norm);
    }

    void Move()
    {
        var m = Momentum;
        var wd = _settings.WeightDecay;
        var nesterov = _settings.Nesterov;
        var cap = _settings.VelocityCap;
        // Pass 1: the velocities (and, without a cap, the moves).
        foreach (var group in _parameter_groups)
        {
            var lr = group.Options.LearningRate!.Value;
            foreach (var p in group.Parameters)
            {
                using var g = p.grad;
                if (g is null || p.numel() == 0) continue;
                var v = ((VelocityState)_state[p.Handle]).Velocity;
                if (cap == 0 && UseFastPath && Vector256.IsHardwareAccelerated && CpuFloatKernels.Supports([p, g, v]))
                {
                    FusedStep(p, g, v, m, lr, wd, nesterov);
                    continue;
                }
                v.Scale_(m).AddScaled_(g, -lr);
                if (wd != 0) v.AddScaled_(p, -lr * wd);
                if (cap == 0) Apply(p, g, v, m, lr, wd, nesterov);
            }
        }
        if (cap == 0) return;
        // Pass 2 (capped): shorten the velocity as a whole, then move.
        var norm = VelocityNorm(withGradientOnly: true);
        if (norm > cap) ScaleVelocities(cap / norm, withGradientOnly: true);
        foreach (var group in _parameter_groups)
        {
            var lr = group.Options.LearningRate!.Value;
            foreach (var p in group.Parameters)
            {
                using var g = p.grad;
                if (g is null || p.numel() == 0) continue;
                Apply(p, g, ((VelocityState)_state[p.Handle]).Velocity, m, lr, wd, nesterov);
            }
        }
    }

    /// <summary>x = x + v, or Nesterov's x = x + m v - eta (g + wd x) with the new v.</summary>
    static void Apply(Parameter p, Tensor g, Tensor v, double m, double lr, double wd, bool nesterov)
    {
        if (!nesterov)
        {
            p.Accumulate_(v);
            return;
        }
        if (wd != 0) p.Scale_(1 - lr * wd);
        p.AddScaled_(v, m).AddScaled_(g, -lr);
    }

    double VelocityNorm(bool withGradientOnly = false)
    {
        double squares = 0;
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
            {
                if (withGradientOnly && !HasGradient(p)) continue;
                squares += SquaredNorm(((VelocityState)_state[p.Handle]).Velocity);
            }
        return Math.Sqrt(squares);
    }

    /// <summary>|v|^2, read in place for contiguous CPU float32/float64 tensors (no tensor is allocated), else by libtorch.</summary>
    static double SquaredNorm(Tensor v)
    {
        if (v.numel() == 0) return 0;
        if (v.device_type == DeviceType.CPU && v.is_contiguous() && v.dtype is ScalarType.Float32 or ScalarType.Float64)
        {
            double sum = 0;
            if (v.dtype == ScalarType.Float32)
                foreach (var e in MemoryMarshal.Cast<byte, float>(v.bytes)) sum += (double)e * e;
            else
                foreach (var e in MemoryMarshal.Cast<byte, double>(v.bytes)) sum += e * e;
            return sum;
        }
        using var n = v.norm();
        var x = n.ToDouble();
        return x * x;
    }

    void ScaleVelocities(double factor, bool withGradientOnly = false)
    {
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
            {
                if (withGradientOnly && !HasGradient(p)) continue;
                var v = ((VelocityState)_state[p.Handle]).Velocity;
                if (factor == 0) v.zero_();
                else v.Scale_(factor);
            }
    }

    static bool HasGradient(Parameter p)
    {
        using var g = p.grad;
        return g is not null;
    }

    static unsafe void FusedStep(Parameter p, Tensor g, Tensor v, double momentum, double learningRate, double weightDecay, bool nesterov)
    {
        var pp = (nint)CpuFloatKernels.Pointer(p);
        var gp = (nint)CpuFloatKernels.Pointer(g);
        var vp = (nint)CpuFloatKernels.Pointer(v);
        float m = (float)momentum, lr = (float)learningRate, lrWd = (float)(learningRate * weightDecay);
        CpuFloatKernels.ForEachChunk(p.numel(), (_, start, end) =>
            Fused((float*)pp + start, (float*)gp + start, (float*)vp + start, (int)(end - start), m, lr, lrWd, nesterov));
    }

    /// <summary>n elements of v = m v - lr g - lr wd x; x = x + v (Nesterov: x = x + m v - lr g - lr wd x).</summary>
    static unsafe void Fused(float* p, float* g, float* v, int n, float m, float lr, float lrWd, bool nesterov)
    {
        var vM = Vector256.Create(m); var vLr = Vector256.Create(lr); var vLrWd = Vector256.Create(lrWd);
        var k = 0;
        for (; k + 8 <= n; k += 8)
        {
            var x = Vector256.Load(p + k);
            var step = vLr * Vector256.Load(g + k) + vLrWd * x;
            var b = vM * Vector256.Load(v + k) - step;
            b.Store(v + k);
            (nesterov ? x + vM * b - step : x + b).Store(p + k);
        }
        for (; k < n; k++)
        {
            var x = p[k];
            var step = lr * g[k] + lrWd * x;
            var b = m * v[k] - step;
            v[k] = b;
            p[k] = nesterov ? x + m * b - step : x + b;
        }
    }

    /// <summary>TorchSharp's state dictionary (the velocities) plus an entry with m, the running loss and the counters.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(base.state_dict(), this);

    /// <summary>Restores a dictionary from <see cref="state_dict"/>.</summary>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, nameof(Adine), base.load_state_dict, this);

    /// <summary>Layout of the extra state.</summary>
    const long StateVersion = 1;

    void IStateOwner.Save(BinaryWriter writer)
    {
        writer.Write(-StateVersion);
        writer.Write(Steps);
        writer.Write(Momentum);
        writer.Write(LossAverage);
        writer.Write(LossReference);
        writer.Write(StepsSinceComparison);
    }

    void IStateOwner.Load(BinaryReader reader)
    {
        var version = -reader.ReadInt64();
        if (version < 1 || version > StateVersion)
            throw new InvalidDataException($"ADINE state version {version} is not one this WideValley reads (1 to {StateVersion})");
        var steps = reader.ReadInt64();
        var momentum = reader.ReadDouble();
        var average = reader.ReadDouble();
        var reference = reader.ReadDouble();
        var since = reader.ReadInt32();
        if (steps < 0) throw new InvalidDataException($"ADINE state holds a negative step count ({steps})");
        if (!double.IsFinite(momentum)) throw new InvalidDataException($"ADINE state holds a non-finite momentum ({momentum})");
        if (since < 0) throw new InvalidDataException($"ADINE state holds a negative window counter ({since})");
        (Steps, Momentum, LossAverage, LossReference, StepsSinceComparison) = (steps, momentum, average, reference, since);
    }

    /// <summary>
    /// m for the next step (adine_momentum), the fraction of steps since the last call taken at m_low
    /// (adine_low_fraction), the guard's trips since this optimizer was built (adine_guard_trips; not part of a checkpoint)
    /// and the steps taken (adine_steps).
    /// </summary>
    public IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var result = new Dictionary<string, double>
        {
            ["adine_momentum"] = Momentum,
            ["adine_low_fraction"] = _lowSteps / (double)Math.Max(1, Steps - _stepsAtLastTake),
            ["adine_guard_trips"] = _guardTrips,
            ["adine_steps"] = Steps,
        };
        _lowSteps = 0;
        _stepsAtLastTake = Steps;
        return result;
    }

    /// <summary>Frees the velocities, then the base optimizer's resources.</summary>
    protected override void Dispose(bool disposing)
    {
        // Options refused by the constructor throw before the state table is used; the finalizer must not touch it.
        if (_state is null) return;
        if (disposing)
        {
            foreach (var state in _state.Values) ((VelocityState)state).Velocity.Dispose();
            _state.Clear();
        }
        base.Dispose(disposing);
    }

    /// <summary>The velocity of one parameter, saved and loaded with TorchSharp's state dictionary.</summary>
    sealed class VelocityState : OptimizerState
    {
        public Tensor Velocity { get; private set; }

        public VelocityState(Parameter parameter) : base(parameter)
        {
            using (no_grad()) Velocity = zeros_like(parameter).DetachFromDisposeScope();
        }

        public override void SaveStateDict(BinaryWriter writer) => Velocity.Save(writer);

        public override void LoadStateDict(BinaryReader reader)
        {
            using (no_grad()) Velocity.Load(reader);
        }

        public override void LoadStateDict(OptimizerState source)
        {
            using (no_grad()) Velocity.copy_(((VelocityState)source).Velocity);
        }

        public override void Initialize(OptimizerOptions options) { }

        public override void to(Device device)
        {
            var moved = Velocity.to(device).DetachFromDisposeScope();
            if (ReferenceEquals(moved, Velocity)) return;
            Velocity.Dispose();
            Velocity = moved;
        }
    }
}
