using System.Runtime.Intrinsics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>
/// Adam (Kingma &amp; Ba 2015) with L2 weight decay added to the gradient and optional AMSGrad, with exactly PyTorch's
/// update rule and TorchSharp's <see cref="Adam"/> options, state and parameter groups (state dictionaries have
/// TorchSharp's layout). Like <see cref="SgdOptimizer"/>, it keeps scalar arguments alive across native calls and
/// updates CPU float32 parameters in one fused, vectorised pass.
/// </summary>
public sealed class AdamOptimizer : Adam, IOptimizerMemory
{
    /// <summary>Elements in the first and second moment estimates (and the AMSGrad maximum).</summary>
    public long StateElements => _state.Values.Sum(o =>
    {
        var s = (State)o;
        return (s.exp_avg?.numel() ?? 0) + (s.exp_avg_sq?.numel() ?? 0) + (s.max_exp_avg_sq?.numel() ?? 0);
    });

    /// <summary>Adam over <paramref name="parameters"/> as one group.</summary>
    public AdamOptimizer(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0, bool amsgrad = false)
        : base(parameters, lr, beta1, beta2, eps, weightDecay, amsgrad)
    {
    }

    /// <summary>
    /// Adam over parameter groups (TorchSharp's <see cref="Adam.ParamGroup"/>); each group's unset options take the
    /// values given here. beta1 is visible to schedulers per group (OneCycleLR cycles it as the momentum).
    /// </summary>
    public AdamOptimizer(IEnumerable<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0, bool amsgrad = false)
        : base(groups, lr, beta1, beta2, eps, weightDecay, amsgrad)
    {
    }

    /// <summary>Adds a group; its options must be Adam's (<see cref="Adam.Options"/>) or null (all defaults).</summary>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        if (param_group.Options is not null and not Options)
            throw new ArgumentException(
                $"an Adam parameter group needs Adam.Options (or none, to take the defaults), got {param_group.Options.GetType().Name}");
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
    /// One Adam step on every parameter that has a gradient (parameters whose gradient is None are skipped). When
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
                foreach (var p in group.Parameters)
                {
                    using var g = p.grad;
                    if (g is null) continue;
                    var state = (State)_state[p.Handle];
                    state.step += 1;
                    var rule = new Rule(o.LearningRate!.Value, o.beta1!.Value, o.beta2!.Value, o.eps!.Value,
                        o.weight_decay!.Value, o.amsgrad!.Value, o.maximize!.Value, state.step);
                    Update(p, g, state, rule);
                }
            }
        }
        return loss!;
    }

    readonly record struct Rule(double Lr, double Beta1, double Beta2, double Eps, double WeightDecay, bool AmsGrad, bool Maximize, long Step)
    {
        public double BiasCorrection1 => 1 - Math.Pow(Beta1, Step);
        public double BiasCorrection2 => 1 - Math.Pow(Beta2, Step);
    }

    static unsafe void Update(Parameter p, Tensor g, State s, in Rule r)
    {
        if (r.AmsGrad && s.max_exp_avg_sq is null) s.max_exp_avg_sq = zeros_like(p).DetachFromDisposeScope();
        var tensors = new List<Tensor> { p, g, s.exp_avg, s.exp_avg_sq };
        if (s.max_exp_avg_sq is not null) tensors.Add(s.max_exp_avg_sq);
        if (CpuFloatKernels.Supports(tensors) && Vector256.IsHardwareAccelerated)
        {
            var pp = (nint)CpuFloatKernels.Pointer(p);
            var gp = (nint)CpuFloatKernels.Pointer(g);
            var mp = (nint)CpuFloatKernels.Pointer(s.exp_avg);
            var vp = (nint)CpuFloatKernels.Pointer(s.exp_avg_sq);
            var xp = r.AmsGrad ? (nint)CpuFloatKernels.Pointer(s.max_exp_avg_sq!) : 0;
            var rule = r;
            CpuFloatKernels.ForEachChunk(p.numel(), (_, start, end) =>
                Fused((float*)pp + start, (float*)gp + start, (float*)mp + start, (float*)vp + start,
                    xp == 0 ? null : (float*)xp + start, (int)(end - start), rule));
            return;
        }
        using var scope = NewDisposeScope();
        var d = r.Maximize ? g.neg() : g;
        if (r.WeightDecay != 0) d = d.clone().AddScaled_(p, r.WeightDecay);
        s.exp_avg.Scale_(r.Beta1).AddScaled_(d, 1 - r.Beta1);
        s.exp_avg_sq.Scale_(r.Beta2).AddMultiplied_(d, d, 1 - r.Beta2);
        var second = s.exp_avg_sq;
        if (r.AmsGrad)
        {
            s.max_exp_avg_sq!.copy_(maximum(s.max_exp_avg_sq, s.exp_avg_sq));
            second = s.max_exp_avg_sq;
        }
        var denom = second.sqrt().DividedBy(Math.Sqrt(r.BiasCorrection2)).Shift_(r.Eps);
        p.AddDivided_(s.exp_avg, denom, -r.Lr / r.BiasCorrection1);
    }

    static unsafe void Fused(float* p, float* g, float* m1, float* m2, float* mx, int n, in Rule r)
    {
        float b1 = (float)r.Beta1, b2 = (float)r.Beta2, c1 = (float)(1 - r.Beta1), c2 = (float)(1 - r.Beta2),
            wd = (float)r.WeightDecay, eps = (float)r.Eps, stepSize = (float)(r.Lr / r.BiasCorrection1),
            rootBc2 = (float)Math.Sqrt(r.BiasCorrection2), sign = r.Maximize ? -1f : 1f;
        var k = 0;
        var vB1 = Vector256.Create(b1); var vB2 = Vector256.Create(b2); var vC1 = Vector256.Create(c1); var vC2 = Vector256.Create(c2);
        var vWd = Vector256.Create(wd); var vEps = Vector256.Create(eps); var vStep = Vector256.Create(stepSize);
        var vRoot = Vector256.Create(rootBc2); var vSign = Vector256.Create(sign);
        for (; k + 8 <= n; k += 8)
        {
            var x = Vector256.Load(p + k);
            var d = vSign * Vector256.Load(g + k) + vWd * x;
            var a = vB1 * Vector256.Load(m1 + k) + vC1 * d;
            var v = vB2 * Vector256.Load(m2 + k) + vC2 * d * d;
            a.Store(m1 + k);
            v.Store(m2 + k);
            if (mx is not null)
            {
                v = Vector256.Max(Vector256.Load(mx + k), v);
                v.Store(mx + k);
            }
            (x - vStep * a / (Vector256.Sqrt(v) / vRoot + vEps)).Store(p + k);
        }
        for (; k < n; k++)
        {
            var d = sign * g[k] + wd * p[k];
            var a = b1 * m1[k] + c1 * d;
            var v = b2 * m2[k] + c2 * d * d;
            m1[k] = a;
            m2[k] = v;
            if (mx is not null)
            {
                v = Math.Max(mx[k], v);
                mx[k] = v;
            }
            p[k] -= stepSize * a / (MathF.Sqrt(v) / rootBc2 + eps);
        }
    }
}
