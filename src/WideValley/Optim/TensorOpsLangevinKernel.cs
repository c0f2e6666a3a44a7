using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>
/// The Langevin update as TorchSharp tensor operations: any device, any floating dtype. The noise is the counter-based
/// stream the fused kernel draws (generated on the CPU and copied to the parameters' device through a staging tensor),
/// so the two kernels are interchangeable mid-run.
/// </summary>
internal sealed class TensorOpsLangevinKernel : ILangevinKernel
{
    readonly List<Parameter> _params;
    readonly long[] _offsets;
    readonly Tensor _x0, _mu;
    readonly Tensor[] _x0Views, _muViews;
    Tensor? _v;
    Tensor[]? _vViews;
    readonly CounterNormalNoise _noise;
    readonly Tensor? _staging;
    LangevinStep[] _steps = [];

    public TensorOpsLangevinKernel(List<Parameter> parameters, CounterNormalNoise noise)
    {
        _params = parameters;
        _noise = noise;
        var first = parameters[0];
        _offsets = new long[parameters.Count + 1];
        for (var i = 0; i < parameters.Count; i++) _offsets[i + 1] = _offsets[i] + parameters[i].numel();
        _x0 = empty(_offsets[^1], first.dtype, first.device).DetachFromDisposeScope();
        _mu = empty(_offsets[^1], first.dtype, first.device).DetachFromDisposeScope();
        _x0Views = Views(_x0);
        _muViews = Views(_mu);
        if (!CpuFloatKernels.Supports(parameters))
            _staging = empty(parameters.Max(p => p.numel()), ScalarType.Float32).DetachFromDisposeScope();
    }

    Tensor[] Views(Tensor flat)
    {
        var views = new Tensor[_params.Count];
        for (var i = 0; i < _params.Count; i++)
            views[i] = flat.narrow(0, _offsets[i], _offsets[i + 1] - _offsets[i]).view(_params[i].shape).DetachFromDisposeScope();
        return views;
    }

    public long BufferElements => _x0.numel() + _mu.numel() + (_v?.numel() ?? 0);

    public void Begin(LangevinStep[] perParameter, bool momentum)
    {
        _steps = perParameter;
        if (momentum && _v is null)
        {
            _v = zeros_like(_x0).DetachFromDisposeScope();
            _vViews = Views(_v);
        }
        for (var i = 0; i < _params.Count; i++)
        {
            _x0Views[i].copy_(_params[i]);
            _muViews[i].copy_(_params[i]);
        }
        _v?.zero_();
    }

    public void Step(long noiseIndex)
    {
        var perParameter = _steps;
        for (var i = 0; i < _params.Count; i++)
        {
            var p = _params[i];
            var s = perParameter[i];
            using var g = LangevinKernels.GradientOf(_params, i);
            if (s.MomentumOnDrift)
            {
                g.AddScaled_(p, s.WeightDecay + s.Gamma).AddScaled_(_x0Views[i], -s.Gamma);
                ApplyMomentum(g, i, s);
            }
            else
            {
                if (s.WeightDecay != 0) g.AddScaled_(p, s.WeightDecay);
                ApplyMomentum(g, i, s);
                g.AddScaled_(p, s.Gamma).AddScaled_(_x0Views[i], -s.Gamma);
            }
            p.AddScaled_(g, -s.Lr);
            if (s.NoiseStd != 0)
            {
                // The gradient is spent; its buffer holds the noise (the estimator clears it before the next closure).
                _noise.Fill(g, _offsets[i], noiseIndex, _staging);
                p.AddScaled_(g, s.NoiseStd);
            }
            _muViews[i].LerpTowards_(p, s.NewSampleWeight);
        }
    }

    void ApplyMomentum(Tensor g, int i, in LangevinStep s)
    {
        if (s.Momentum == 0 || _vViews is null) return;
        var v = _vViews[i];
        v.Scale_(s.Momentum).Accumulate_(g);
        if (s.Nesterov) g.AddScaled_(v, s.Momentum);
        else g.copy_(v);
    }

    public void Abandon()
    {
        for (var i = 0; i < _params.Count; i++) _params[i].copy_(_x0Views[i]);
    }

    public void Finish(bool scaleByGamma)
    {
        for (var i = 0; i < _params.Count; i++)
        {
            var p = _params[i];
            p.copy_(_x0Views[i]);
            using var g = LangevinKernels.GradientOf(_params, i);
            g.copy_(_x0Views[i]).sub_(_muViews[i]);
            if (scaleByGamma) g.Scale_(_steps[i].Gamma);
        }
    }

    public double StashGradient()
    {
        for (var i = 0; i < _params.Count; i++)
        {
            using var g = LangevinKernels.GradientOf(_params, i);
            _x0Views[i].copy_(g);
        }
        using var scope = NewDisposeScope();
        return _x0.square().sum().ToDouble();
    }

    public (double GradientSquared, double Dot) RestoreGradient()
    {
        double gg = 0, dot = 0;
        for (var i = 0; i < _params.Count; i++)
        {
            using var scope = NewDisposeScope();
            var g = _params[i].grad;
            if (g is null) { _params[i].grad = _x0Views[i].clone(); continue; }
            gg += g.square().sum().ToDouble();
            dot += (g * _x0Views[i]).sum().ToDouble();
            g.copy_(_x0Views[i]);
        }
        return (gg, dot);
    }

    public void Dispose()
    {
        foreach (var v in _x0Views.Concat(_muViews).Concat(_vViews ?? [])) v.Dispose();
        _x0.Dispose();
        _mu.Dispose();
        _v?.Dispose();
        _staging?.Dispose();
    }
}
