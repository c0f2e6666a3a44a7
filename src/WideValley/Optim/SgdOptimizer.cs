using System.Runtime.Intrinsics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>
/// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, with exactly PyTorch's update rule (the
/// momentum buffer starts as the first gradient) and TorchSharp's <see cref="SGD"/> options, state and parameter
/// groups, so LR schedulers and state dictionaries work as with the built-in one. Two differences: every scalar
/// argument is kept alive across its native call (see <see cref="TorchScalars"/>), and CPU float32 parameters are
/// updated by one fused, vectorised pass instead of four allocating tensor operations.
/// </summary>
public sealed class SgdOptimizer : SGD, IOptimizerMemory
{
    /// <summary>Elements in the momentum buffers (none before the first step or without momentum).</summary>
    public long StateElements => _state.Values.Sum(s => ((State)s).momentum_buffer?.numel() ?? 0);

    /// <summary>SGD over <paramref name="parameters"/> as one group.</summary>
    public SgdOptimizer(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false)
        : this([new ParamGroup { Parameters = parameters }], lr, momentum, dampening, weightDecay, nesterov)
    {
    }

    /// <summary>
    /// SGD over parameter groups (TorchSharp's <see cref="SGD.ParamGroup"/>); each group's unset options take the
    /// values given here. Momentum is visible to schedulers per group (OneCycleLR and CyclicLR cycle it).
    /// </summary>
    public SgdOptimizer(IEnumerable<ParamGroup> groups, double lr, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false)
        : base(Checked(groups, nesterov, momentum, dampening), lr, momentum, dampening, weightDecay, nesterov)
    {
    }

    static IEnumerable<ParamGroup> Checked(IEnumerable<ParamGroup> groups, bool nesterov, double momentum, double dampening)
    {
        ArgumentNullException.ThrowIfNull(groups);
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum needs a positive momentum and zero dampening");
        return groups;
    }

    /// <summary>Adds a group; its options must be SGD's (<see cref="SGD.Options"/>) or null (all defaults).</summary>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        if (param_group.Options is not null and not Options)
            throw new ArgumentException(
                $"an SGD parameter group needs SGD.Options (or none, to take the defaults), got {param_group.Options.GetType().Name}");
        base.add_param_group(param_group);
    }

    /// <summary>
    /// Sets every gradient to None, as torch's <c>zero_grad()</c> does by default since PyTorch 2.0
    /// (set_to_none=True): the next backward pass stores its gradient instead of adding it to zeros, which saves a
    /// clearing pass and an accumulation pass over the gradients. Parameters without a gradient are skipped by
    /// <see cref="step"/>; the values trained are the same bit for bit.
    /// </summary>
    public override void zero_grad()
    {
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
                p.grad = null;
    }

    /// <summary>
    /// One SGD step on every parameter that has a gradient (parameters whose gradient is None are skipped). When
    /// <paramref name="closure"/> is given it is evaluated first, with gradients enabled, to compute the loss and gradients.
    /// </summary>
    /// <returns>The closure's loss, or null without a closure.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
            using (enable_grad()) loss = closure();
        using (no_grad())
        {
            foreach (var pg in _parameter_groups)
            {
                var group = (ParamGroup)pg;
                var o = group.Options;
                var rule = new Rule(o.LearningRate!.Value, o.momentum!.Value, o.dampening!.Value, o.weight_decay!.Value,
                    o.nesterov!.Value, o.maximize!.Value);
                foreach (var p in group.Parameters)
                {
                    using var g = p.grad;
                    if (g is null) continue;
                    Update(p, g, (State)_state[p.Handle], rule);
                }
            }
        }
        return loss!;
    }

    readonly record struct Rule(double Lr, double Momentum, double Dampening, double WeightDecay, bool Nesterov, bool Maximize);

    static unsafe void Update(Parameter p, Tensor g, State state, in Rule r)
    {
        var first = r.Momentum != 0 && state.momentum_buffer is null;
        if (r.Momentum != 0 && first) state.momentum_buffer = zeros_like(p).DetachFromDisposeScope();
        var buf = state.momentum_buffer;
        if (CpuFloatKernels.Supports([p, g]) && (buf is null || CpuFloatKernels.Supports([buf])) && Vector256.IsHardwareAccelerated)
        {
            var pp = (nint)CpuFloatKernels.Pointer(p);
            var gp = (nint)CpuFloatKernels.Pointer(g);
            var bp = buf is null ? 0 : (nint)CpuFloatKernels.Pointer(buf);
            var rule = r;
            CpuFloatKernels.ForEachChunk(p.numel(), (_, start, end) =>
                Fused((float*)pp + start, (float*)gp + start, bp == 0 ? null : (float*)bp + start, (int)(end - start), rule, first));
            return;
        }
        // Any device or dtype: tensor operations, scalars kept alive.
        using var scope = NewDisposeScope();
        var d = r.Maximize ? g.neg() : g;
        if (r.WeightDecay != 0) d = d.clone().AddScaled_(p, r.WeightDecay);
        if (buf is not null)
        {
            if (first) buf.copy_(d);
            else buf.Scale_(r.Momentum).AddScaled_(d, 1 - r.Dampening);
            d = r.Nesterov ? d.clone().AddScaled_(buf, r.Momentum) : buf;
        }
        p.AddScaled_(d, -r.Lr);
    }

    static unsafe void Fused(float* p, float* g, float* buf, int n, in Rule r, bool first)
    {
        float lr = (float)r.Lr, m = (float)r.Momentum, keep = (float)(1 - r.Dampening), wd = (float)r.WeightDecay;
        float sign = r.Maximize ? -1f : 1f;
        bool nesterov = r.Nesterov;
        var k = 0;
        if (buf is not null)
        {
            var vLr = Vector256.Create(lr); var vM = Vector256.Create(m); var vKeep = Vector256.Create(keep);
            var vWd = Vector256.Create(wd); var vSign = Vector256.Create(sign);
            for (; k + 8 <= n; k += 8)
            {
                var x = Vector256.Load(p + k);
                var d = vSign * Vector256.Load(g + k) + vWd * x;
                var b = first ? d : vM * Vector256.Load(buf + k) + vKeep * d;
                b.Store(buf + k);
                d = nesterov ? d + vM * b : b;
                (x - vLr * d).Store(p + k);
            }
            for (; k < n; k++)
            {
                var d = sign * g[k] + wd * p[k];
                var b = first ? d : m * buf[k] + keep * d;
                buf[k] = b;
                d = nesterov ? d + m * b : b;
                p[k] -= lr * d;
            }
        }
        else
        {
            var vLr = Vector256.Create(lr); var vWd = Vector256.Create(wd); var vSign = Vector256.Create(sign);
            for (; k + 8 <= n; k += 8)
            {
                var x = Vector256.Load(p + k);
                (x - vLr * (vSign * Vector256.Load(g + k) + vWd * x)).Store(p + k);
            }
            for (; k < n; k++) p[k] -= lr * (sign * g[k] + wd * p[k]);
        }
    }
}
