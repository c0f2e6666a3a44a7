using System.Runtime.Intrinsics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>
/// AnnealSGD (our reading of the AnnealSGD abstract; Chaudhari &amp; Soatto, "On the energy landscape of deep networks",
/// arXiv 1511.06485, whose body is not available to us): SGD on the loss plus an external Gaussian field, the
/// "magnetic field" of the spherical spin glass, whose size is annealed to zero. Every choice below is ours and is
/// listed in docs/annealsgd.md.
/// </summary>
/// <remarks>
/// <code>
/// input: per group lr eta (schedulers apply), momentum mu, dampening tau, weight decay wd, nesterov, maximize;
///        field size h0 &gt;= 0, schedule s(t) with s(0) = 1 falling to 0, mode Fixed | Fresh, seed
/// Fixed: h ~ N(0, I), one value per parameter element: draw 0 of the counter-based stream of the seed
/// for t = 0, 1, 2, ...
///     g = grad f(x) on a minibatch                (maximize: g = -g)
///     Fresh: h ~ N(0, I) = draw t of the stream
///     d = g + wd x - h0 s(t) h                    (the gradient of f(x) + wd/2 |x|^2 - h0 s(t) &lt;h, x&gt;)
///     if mu != 0:
///         b = d on the first step, else mu b + (1 - tau) d
///         d = d + mu b if nesterov else b
///     x = x - eta d
/// s(t) = max(0, 1 - t/T) (linear) | decay^t (exponential) | (1 + t)^-gamma (power law)
/// </code>
/// The field's per-coordinate standard deviation is h0 s(t), and it enters with the sign of an external field in the
/// energy, H_h(x) = f(x) - &lt;h0 s(t) h, x&gt;: each step pulls x along +h. Without the loss the iterates would run
/// off along h; with f(x) = |x|^2 / 2 and s held constant the fixed point is x* = h0 s h / (1 + wd). In Fresh mode the
/// field is zero-mean noise with covariance (h0 s(t))^2 I added to the gradient: annealed gradient noise (Neelakantan et
/// al. 2015, arXiv 1511.06807), the baseline any AnnealSGD claim must beat. With h0 = 0, or once s(t) = 0, the update
/// is exactly <see cref="SgdOptimizer"/>'s (PyTorch's rule), bit for bit.
/// <para>
/// The field comes from <see cref="CounterNormalNoise"/>: element e of draw n depends only on the seed, n and e, so a
/// checkpoint stores just t and the seed (the fixed field is regenerated from the seed, identical bit for bit), and the
/// values do not depend on the device, the number of threads or torch's global generator. CPU float32 parameters are
/// updated by one fused, vectorised pass that generates a fresh field on the fly; other devices and dtypes take the
/// reference path of tensor operations (<see cref="UseFastPath"/> chooses in tests). Momentum buffers are TorchSharp
/// SGD's per-parameter state, so LR schedulers, parameter groups and <c>state_dict</c> behave as for SGD.
/// </para>
/// </remarks>
public sealed class AnnealSgd : SGD, IStateOwner, IOptimizerDiagnostics, IOptimizerMemory
{
    readonly AnnealSgdOptions _settings;
    readonly Dictionary<IntPtr, long> _offsets = [];
    readonly Dictionary<IntPtr, Tensor> _fixedField = [];
    readonly bool _constructed;
    long _seed;
    CounterNormalNoise? _noise;
    Tensor? _staging;
    double _lastFieldScale;

    [ThreadStatic] static float[]? t_fieldScratch;

    /// <summary>AnnealSGD over <paramref name="parameters"/> as one group.</summary>
    /// <param name="parameters">The parameters to train.</param>
    /// <param name="options">The settings (validated here; <see cref="OptionsException"/> names a bad one).</param>
    public AnnealSgd(IEnumerable<Parameter> parameters, AnnealSgdOptions options)
        : this([new ParamGroup { Parameters = parameters }], options)
    {
    }

    /// <summary>
    /// AnnealSGD over parameter groups (TorchSharp's <see cref="SGD.ParamGroup"/>); each group's unset SGD options take
    /// the values of <paramref name="options"/>. The field settings are the optimizer's, shared by every group.
    /// </summary>
    public AnnealSgd(IEnumerable<ParamGroup> groups, AnnealSgdOptions options)
        : base(Checked(groups, options), options.LearningRate, options.Momentum, 0, options.WeightDecay, options.Nesterov)
    {
        _settings = options;
        _seed = options.Seed;
        _constructed = true;
        Rebuild();
    }

    static IEnumerable<ParamGroup> Checked(IEnumerable<ParamGroup> groups, AnnealSgdOptions options)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return groups;
    }

    /// <summary>The settings this optimizer was built with (the seed as used, after any derivation from the run's seed).</summary>
    public AnnealSgdOptions Settings => _settings with { Seed = _seed };

    /// <summary>t: steps taken so far (survives checkpoints).</summary>
    public long Steps { get; private set; }

    /// <summary>h0 s(t) for the next step: the field's per-coordinate standard deviation.</summary>
    public double FieldScale => _settings.FieldScaleAt(Steps);

    /// <summary>
    /// True (default): CPU float32 parameters take the fused, vectorised update. False: every parameter takes the
    /// reference path of tensor operations (for tests that compare the two).
    /// </summary>
    internal bool UseFastPath { get; set; } = true;

    /// <summary>Elements in the momentum buffers and the stored fixed field.</summary>
    public long StateElements =>
        _state.Values.Sum(s => ((State)s).momentum_buffer?.numel() ?? 0) + _fixedField.Values.Sum(f => f.numel());

    /// <summary>
    /// A copy of the fixed field h (unit variance, before scaling by h0 s(t)) of <paramref name="parameter"/>, or null in
    /// Fresh mode or when h0 = 0 (no field is stored).
    /// </summary>
    public Tensor? FixedFieldOf(Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        return _fixedField.TryGetValue(parameter.Handle, out var field) ? field.clone() : null;
    }

    /// <summary>
    /// Adds a group; its options must be SGD's (<see cref="SGD.Options"/>) or null (all defaults). The field covers
    /// every parameter: a new group lengthens it (the fixed field of earlier parameters does not change, the fresh
    /// draws do), so add groups before the first step.
    /// </summary>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        if (param_group.Options is not null and not Options)
            throw new ArgumentException(
                $"an AnnealSGD parameter group needs SGD.Options (or none, to take the defaults), got {param_group.Options.GetType().Name}");
        base.add_param_group(param_group);
        // The base constructor adds the first groups before this object's settings are set; the constructor rebuilds then.
        if (_constructed) Rebuild();
    }

    /// <summary>Offsets of the parameters in the one field vector, the noise stream over it and the fixed field.</summary>
    void Rebuild()
    {
        _offsets.Clear();
        var all = new List<Parameter>();
        long total = 0;
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
            {
                if (!_offsets.TryAdd(p.Handle, total))
                    throw new ArgumentException("a parameter appears twice in AnnealSGD's groups");
                all.Add(p);
                total += p.numel();
            }
        _noise = total > 0 ? new CounterNormalNoise(_seed, total) : null;
        _staging?.Dispose();
        _staging = all.Count > 0 && !CpuFloatKernels.Supports(all)
            ? empty(all.Max(p => p.numel()), ScalarType.Float32).DetachFromDisposeScope()
            : null;
        foreach (var field in _fixedField.Values) field.Dispose();
        _fixedField.Clear();
        if (_settings.FieldMode != AnnealFieldMode.Fixed || _settings.FieldSize == 0 || _noise is null) return;
        foreach (var p in all)
        {
            if (p.numel() == 0) continue;
            var field = empty(p.shape, p.dtype, p.device).DetachFromDisposeScope();
            _noise.Fill(field, _offsets[p.Handle], draw: 0, _staging);
            _fixedField[p.Handle] = field;
        }
    }

    /// <summary>
    /// Sets every gradient to None, as torch's <c>zero_grad()</c> does by default since PyTorch 2.0; parameters
    /// without a gradient are skipped by <see cref="step"/>.
    /// </summary>
    public override void zero_grad()
    {
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
                p.grad = null;
    }

    /// <summary>
    /// One AnnealSGD step on every parameter that has a gradient (see the class remarks), then t advances. When
    /// <paramref name="closure"/> is given it is evaluated first, with gradients enabled; if it throws, nothing changes.
    /// </summary>
    /// <returns>The closure's loss, or null without a closure.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
            using (enable_grad()) loss = closure();
        var scale = _settings.FieldScaleAt(Steps);
        _lastFieldScale = scale;
        using (no_grad())
        {
            foreach (var pg in _parameter_groups)
            {
                var group = (ParamGroup)pg;
                var o = group.Options;
                var rule = new Rule(o.LearningRate!.Value, o.momentum!.Value, o.dampening!.Value, o.weight_decay!.Value,
                    o.nesterov!.Value, o.maximize!.Value, scale);
                foreach (var p in group.Parameters)
                {
                    using var g = p.grad;
                    if (g is null || p.numel() == 0) continue;
                    Update(p, g, (State)_state[p.Handle], rule);
                }
            }
        }
        Steps++;
        return loss!;
    }

    readonly record struct Rule(double Lr, double Momentum, double Dampening, double WeightDecay, bool Nesterov, bool Maximize,
        double FieldScale);

    unsafe void Update(Parameter p, Tensor g, State state, in Rule r)
    {
        var first = r.Momentum != 0 && state.momentum_buffer is null;
        if (first) state.momentum_buffer = zeros_like(p).DetachFromDisposeScope();
        var buf = state.momentum_buffer;
        var offset = _offsets[p.Handle];
        var withField = r.FieldScale != 0;
        var fixedField = withField && _settings.FieldMode == AnnealFieldMode.Fixed ? _fixedField[p.Handle] : null;
        var fresh = withField && _settings.FieldMode == AnnealFieldMode.Fresh ? _noise : null;
        if (UseFastPath && Vector256.IsHardwareAccelerated && CpuFloatKernels.Supports([p, g])
            && (buf is null || CpuFloatKernels.Supports([buf])) && (fixedField is null || CpuFloatKernels.Supports([fixedField])))
        {
            var pp = (nint)CpuFloatKernels.Pointer(p);
            var gp = (nint)CpuFloatKernels.Pointer(g);
            var bp = buf is null ? 0 : (nint)CpuFloatKernels.Pointer(buf);
            var hp = fixedField is null ? 0 : (nint)CpuFloatKernels.Pointer(fixedField);
            var rule = r;
            var draw = Steps;
            CpuFloatKernels.ForEachChunk(p.numel(), (_, start, end) =>
            {
                var n = (int)(end - start);
                var b = bp == 0 ? null : (float*)bp + start;
                if (fresh is null)
                {
                    Fused((float*)pp + start, (float*)gp + start, b, hp == 0 ? null : (float*)hp + start, n, rule, first);
                    return;
                }
                var scratch = t_fieldScratch ??= GC.AllocateUninitializedArray<float>(CpuFloatKernels.Chunk, pinned: true);
                fresh.Fill(scratch.AsSpan(0, n), offset + start, draw);
                fixed (float* h = scratch) Fused((float*)pp + start, (float*)gp + start, b, h, n, rule, first);
            });
            return;
        }
        Reference(p, g, buf, first, fixedField, fresh, offset, r);
    }

    /// <summary>The update as tensor operations: any device and dtype, scalars kept alive.</summary>
    void Reference(Parameter p, Tensor g, Tensor? buf, bool first, Tensor? fixedField, CounterNormalNoise? fresh, long offset, in Rule r)
    {
        using var scope = NewDisposeScope();
        var d = r.Maximize ? g.neg() : g;
        if (r.WeightDecay != 0) d = d.clone().AddScaled_(p, r.WeightDecay);
        var h = fixedField;
        if (fresh is not null)
        {
            h = empty(p.shape, p.dtype, p.device);
            fresh.Fill(h, offset, Steps, _staging);
        }
        if (h is not null) d = (ReferenceEquals(d, g) ? d.clone() : d).AddScaled_(h, -r.FieldScale);
        if (buf is not null)
        {
            if (first) buf.copy_(d);
            else buf.Scale_(r.Momentum).AddScaled_(d, 1 - r.Dampening);
            d = r.Nesterov ? d.clone().AddScaled_(buf, r.Momentum) : buf;
        }
        p.AddScaled_(d, -r.Lr);
    }

    /// <summary>
    /// The fused CPU float32 update of n elements: SgdOptimizer's arithmetic, in the same order, with the field term
    /// subtracted from the gradient when <paramref name="h"/> is given (so that without a field it is SGD bit for bit).
    /// </summary>
    static unsafe void Fused(float* p, float* g, float* buf, float* h, int n, in Rule r, bool first)
    {
        float lr = (float)r.Lr, m = (float)r.Momentum, keep = (float)(1 - r.Dampening), wd = (float)r.WeightDecay;
        float sign = r.Maximize ? -1f : 1f, c = (float)r.FieldScale;
        bool nesterov = r.Nesterov;
        var vLr = Vector256.Create(lr); var vM = Vector256.Create(m); var vKeep = Vector256.Create(keep);
        var vWd = Vector256.Create(wd); var vSign = Vector256.Create(sign); var vC = Vector256.Create(c);
        var k = 0;
        for (; k + 8 <= n; k += 8)
        {
            var x = Vector256.Load(p + k);
            var d = vSign * Vector256.Load(g + k) + vWd * x;
            if (h is not null) d -= vC * Vector256.Load(h + k);
            if (buf is not null)
            {
                var b = first ? d : vM * Vector256.Load(buf + k) + vKeep * d;
                b.Store(buf + k);
                d = nesterov ? d + vM * b : b;
            }
            (x - vLr * d).Store(p + k);
        }
        for (; k < n; k++)
        {
            var d = sign * g[k] + wd * p[k];
            if (h is not null) d -= c * h[k];
            if (buf is not null)
            {
                var b = first ? d : m * buf[k] + keep * d;
                buf[k] = b;
                d = nesterov ? d + m * b : b;
            }
            p[k] -= lr * d;
        }
    }

    /// <summary>TorchSharp's SGD state dictionary (momentum buffers) plus an entry holding t and the field's seed.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(base.state_dict(), this);

    /// <summary>Restores a dictionary from <see cref="state_dict"/>, including t and the field's seed.</summary>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, nameof(AnnealSgd), base.load_state_dict, this);

    /// <summary>Layout of the extra state (t, seed).</summary>
    const long StateVersion = 1;

    void IStateOwner.Save(BinaryWriter writer)
    {
        // Negative: a version marker, as Sgld's layouts have, so that a later layout can be told apart.
        writer.Write(-StateVersion);
        writer.Write(Steps);
        writer.Write(_seed);
    }

    void IStateOwner.Load(BinaryReader reader)
    {
        var version = -reader.ReadInt64();
        if (version < 1 || version > StateVersion)
            throw new InvalidDataException($"AnnealSGD state version {version} is not one this WideValley reads (1 to {StateVersion})");
        var steps = reader.ReadInt64();
        if (steps < 0) throw new InvalidDataException($"AnnealSGD state holds a negative step count ({steps})");
        var seed = reader.ReadInt64();
        Steps = steps;
        if (seed == _seed) return;
        // The field of another seed: regenerated from it, the same bit for bit as the saved run's.
        _seed = seed;
        Rebuild();
    }

    /// <summary>h0 s(t) of the last step (annealsgd_field_scale) and the steps taken (annealsgd_steps).</summary>
    public IReadOnlyDictionary<string, double> TakeDiagnostics() =>
        new Dictionary<string, double> { ["annealsgd_field_scale"] = _lastFieldScale, ["annealsgd_steps"] = Steps };

    /// <summary>Frees the fixed field and the staging buffer, then SGD's momentum buffers.</summary>
    protected override void Dispose(bool disposing)
    {
        // Options refused by the constructor throw before TorchSharp's constructors run, and the finalizer of that
        // half-built object must not reach SGD's Dispose, which assumes its state table exists (and would crash the process).
        if (_state is null) return;
        if (disposing)
        {
            foreach (var field in _fixedField.Values) field.Dispose();
            _fixedField.Clear();
            _staging?.Dispose();
        }
        base.Dispose(disposing);
    }
}
