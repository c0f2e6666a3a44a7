using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>
/// One fused pass per Langevin step over CPU float32 parameters, vectorised with 256-bit SIMD and split over libtorch's
/// thread count in chunks whose boundaries depend only on the parameter count. Each chunk first generates its noise
/// (<see cref="CounterNormalNoise"/>) into a thread-local buffer that stays in L1/L2, then streams x', g, x0, mu and v
/// once: the step reads five parameter-sized arrays and writes three, the least the update allows.
/// </summary>
internal sealed unsafe class FusedCpuLangevinKernel : ILangevinKernel
{
    const int Chunk = CpuFloatKernels.Chunk; // a multiple of the 16-element noise block
    /// <summary>
    /// Elements whose noise is generated at a time before they are updated: small enough that generating (compute)
    /// and streaming (memory) alternate quickly and the hardware prefetcher keeps the streams coming while the noise
    /// is computed; a multiple of the noise block, and a divisor of the chunk, so that noise blocks stay whole.
    /// </summary>
    const int SubBlock = 256;

    readonly List<Parameter> _params;
    readonly long[] _offsets;
    readonly long _total;
    readonly CounterNormalNoise _noise;
    readonly Tensor _x0, _mu;
    Tensor? _v;
    readonly float* _x0Pointer, _muPointer;
    float* _vPointer;
    readonly double[] _partials;
    // Per-call state read by the cached chunk bodies (no closure allocated per Langevin step).
    readonly nint[] _p, _g;
    LangevinStep[] _steps = [];
    long _noiseIndex;
    bool _anyNoise, _momentum, _firstStepPending, _first;
    readonly Action<int, long, long> _stepChunk;

    [ThreadStatic] static float[]? t_noise;

    public static bool Supports(List<Parameter> parameters) =>
        Vector256.IsHardwareAccelerated && CpuFloatKernels.Supports(parameters);

    public FusedCpuLangevinKernel(List<Parameter> parameters, CounterNormalNoise noise)
    {
        _params = parameters;
        _noise = noise;
        _offsets = new long[parameters.Count + 1];
        for (var i = 0; i < parameters.Count; i++) _offsets[i + 1] = _offsets[i] + parameters[i].numel();
        _total = _offsets[^1];
        _x0 = empty(_total, ScalarType.Float32).DetachFromDisposeScope();
        _mu = empty(_total, ScalarType.Float32).DetachFromDisposeScope();
        _x0Pointer = Pointer(_x0);
        _muPointer = Pointer(_mu);
        _partials = new double[2 * ChunkCount];
        _p = new nint[parameters.Count];
        _g = new nint[parameters.Count];
        _stepChunk = StepChunk;
    }

    int ChunkCount => (int)((_total + Chunk - 1) / Chunk);

    static float* Pointer(Tensor t) => CpuFloatKernels.Pointer(t);

    void ForEachChunk(Action<int, long, long> body) => CpuFloatKernels.ForEachChunk(_total, body);

    /// <summary>Raw pointers to each parameter's data and (if asked) gradient for this call, into _p and _g.</summary>
    void TakePointers(bool needGrad)
    {
        for (var i = 0; i < _params.Count; i++)
        {
            _p[i] = (nint)Pointer(_params[i]);
            if (!needGrad) continue;
            using var grad = LangevinKernels.GradientOf(_params, i);
            if (!grad.is_contiguous() || grad.dtype != ScalarType.Float32 || grad.device_type != DeviceType.CPU)
                throw new InvalidOperationException(
                    $"the fused Langevin kernel needs contiguous float32 CPU gradients; parameter {i}'s is {grad.dtype} on {grad.device}" +
                    (grad.is_contiguous() ? "" : ", not contiguous") + " (use LangevinKernel.TensorOps)");
            _g[i] = (nint)Pointer(grad);
        }
    }

    public long BufferElements => 2 * _total + (_v is null ? 0 : _total);

    /// <summary>
    /// Takes the step constants; x0 = mu = x and v = 0 are not written here but by the first <see cref="Step"/>, which
    /// reads x and g and writes x', x0, mu and v in one pass instead of a copying pass followed by a full step (six
    /// parameter-sized streams fewer per outer update, the same values).
    /// </summary>
    public void Begin(LangevinStep[] perParameter, bool momentum)
    {
        _steps = perParameter;
        _anyNoise = perParameter.Any(s => s.NoiseStd != 0);
        if (momentum && _v is null)
        {
            _v = empty(_total, ScalarType.Float32).DetachFromDisposeScope();
            _vPointer = Pointer(_v);
        }
        _momentum = momentum;
        _firstStepPending = true;
    }

    /// <summary>x0 = mu = x and v = 0 as a pass of its own: only when <see cref="Finish"/> comes with no step between.</summary>
    void WriteStart()
    {
        TakePointers(needGrad: false);
        var p = _p;
        var x0 = (nint)Pointer(_x0);
        var mu = (nint)Pointer(_mu);
        var v = _v is null ? 0 : (nint)Pointer(_v);
        var useV = _momentum;
        ForEachChunk((_, start, end) =>
        {
            ForEachSegment(start, end, (i, from, to, offset) =>
            {
                var len = (int)(to - from);
                var src = new ReadOnlySpan<float>((float*)p[i] + (from - offset), len);
                src.CopyTo(new Span<float>((float*)x0 + from, len));
                src.CopyTo(new Span<float>((float*)mu + from, len));
                if (useV) new Span<float>((float*)v + from, len).Clear();
            });
        });
        _firstStepPending = false;
    }

    /// <summary>Calls <paramref name="body"/>(parameter, from, to, parameter offset) for each parameter piece in [start, end).</summary>
    void ForEachSegment(long start, long end, Action<int, long, long, long> body)
    {
        var i = FirstSegment(start);
        for (; i < _params.Count && _offsets[i] < end; i++)
        {
            var from = Math.Max(start, _offsets[i]);
            var to = Math.Min(end, _offsets[i + 1]);
            if (to > from) body(i, from, to, _offsets[i]);
        }
    }

    int FirstSegment(long start)
    {
        var i = Array.BinarySearch(_offsets, start);
        return i < 0 ? ~i - 1 : i;
    }

    public void Step(long noiseIndex)
    {
        TakePointers(needGrad: true);
        _noiseIndex = noiseIndex;
        _first = _firstStepPending;
        ForEachChunk(_stepChunk);
        _firstStepPending = false;
    }

    void StepChunk(int chunk, long start, long end)
    {
        var noise = t_noise ??= GC.AllocateUninitializedArray<float>(SubBlock, pinned: true);
        var x0 = _x0Pointer;
        var mu = _muPointer;
        var v = _momentum ? _vPointer : null;
        var first = _first;
        fixed (float* z = noise)
        {
            var i = FirstSegment(start);
            for (var block = start; block < end; block += SubBlock)
            {
                var blockEnd = Math.Min(block + SubBlock, end);
                if (_anyNoise) _noise.FillAligned(z, block, blockEnd, _noiseIndex);
                for (; i < _params.Count && _offsets[i] < blockEnd; i++)
                {
                    var from = Math.Max(block, _offsets[i]);
                    var to = Math.Min(blockEnd, _offsets[i + 1]);
                    if (to > from)
                    {
                        var inParameter = from - _offsets[i];
                        UpdateRange((float*)_p[i] + inParameter, (float*)_g[i] + inParameter, x0 + from, mu + from,
                            v == null ? null : v + from, z + (from - block), (int)(to - from), _steps[i], first);
                    }
                    if (_offsets[i + 1] > blockEnd) break;   // this parameter continues in the next block
                }
            }
        }
    }

    /// <summary>
    /// The Langevin update for <paramref name="n"/> consecutive elements; see the interface summary. On the chain's
    /// <paramref name="first"/> step x0 and mu are x and v is 0: they are written, not read, and every value is computed
    /// by the same expressions as on later steps (so the result is the same as after a copying pass).
    /// </summary>
    static void UpdateRange(float* xp, float* g, float* x0, float* mu, float* v, float* z, int n, in LangevinStep s, bool first)
    {
        float gamma = (float)s.Gamma, lr = (float)s.Lr, ns = (float)s.NoiseStd, wd = (float)s.WeightDecay,
            m = (float)s.Momentum, w = (float)s.NewSampleWeight;
        bool momentum = v != null && m != 0, nesterov = s.Nesterov, onDrift = s.MomentumOnDrift, noise = ns != 0;
        var k = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vGamma = Vector256.Create(gamma);
            var vLr = Vector256.Create(lr);
            var vNs = Vector256.Create(ns);
            var vWd = Vector256.Create(wd);
            var vM = Vector256.Create(m);
            var vW = Vector256.Create(w);
            for (; k + 8 <= n; k += 8)
            {
                var x = Vector256.Load(xp + k);
                Vector256<float> anchor, average, velocity;
                if (first)
                {
                    x.Store(x0 + k);
                    (anchor, average, velocity) = (x, x, Vector256<float>.Zero);
                }
                else
                {
                    anchor = Vector256.Load(x0 + k);
                    average = Vector256.Load(mu + k);
                    velocity = momentum ? Vector256.Load(v + k) : default;
                }
                var d = Vector256.Load(g + k) + vWd * x;
                if (onDrift) d += vGamma * (x - anchor);
                if (momentum)
                {
                    var vel = vM * velocity + d;
                    vel.Store(v + k);
                    d = nesterov ? d + vM * vel : vel;
                }
                if (!onDrift) d += vGamma * (x - anchor);
                x -= vLr * d;
                if (noise) x += vNs * Vector256.Load(z + k);
                x.Store(xp + k);
                (average + vW * (x - average)).Store(mu + k);
            }
        }
        for (; k < n; k++)
        {
            var x = xp[k];
            float anchor, average, velocity;
            if (first)
            {
                x0[k] = x;
                (anchor, average, velocity) = (x, x, 0f);
            }
            else
            {
                anchor = x0[k];
                average = mu[k];
                velocity = momentum ? v[k] : 0f;
            }
            var d = g[k] + wd * x;
            if (onDrift) d += gamma * (x - anchor);
            if (momentum)
            {
                var vel = m * velocity + d;
                v[k] = vel;
                d = nesterov ? d + m * vel : vel;
            }
            if (!onDrift) d += gamma * (x - anchor);
            x -= lr * d;
            if (noise) x += ns * z[k];
            xp[k] = x;
            mu[k] = average + w * (x - average);
        }
    }

    public void Abandon()
    {
        // Before the first step x has not moved (and x0 has not been written).
        if (_firstStepPending)
        {
            _firstStepPending = false;
            return;
        }
        TakePointers(needGrad: false);
        var p = _p;
        var x0 = (nint)Pointer(_x0);
        ForEachChunk((_, start, end) => ForEachSegment(start, end, (i, from, to, offset) =>
            new ReadOnlySpan<float>((float*)x0 + from, (int)(to - from)).CopyTo(new Span<float>((float*)p[i] + (from - offset), (int)(to - from)))));
    }

    public void Finish(bool scaleByGamma)
    {
        if (_firstStepPending) WriteStart();
        TakePointers(needGrad: true);
        var steps = _steps;
        var p = _p;
        var g = _g;
        var x0 = (nint)Pointer(_x0);
        var mu = (nint)Pointer(_mu);
        ForEachChunk((_, start, end) => ForEachSegment(start, end, (i, from, to, offset) =>
        {
            var xp = (float*)p[i] + (from - offset);
            var gp = (float*)g[i] + (from - offset);
            var a = (float*)x0 + from;
            var m = (float*)mu + from;
            var n = (int)(to - from);
            var scale = scaleByGamma ? (float)steps[i].Gamma : 1f;
            new ReadOnlySpan<float>(a, n).CopyTo(new Span<float>(xp, n));
            for (var k = 0; k < n; k++) gp[k] = scale * (a[k] - m[k]);
        }));
    }

    public double StashGradient()
    {
        TakePointers(needGrad: true);
        var g = _g;
        var x0 = (nint)Pointer(_x0);
        var partials = _partials;
        ForEachChunk((c, start, end) =>
        {
            double sum = 0;
            ForEachSegment(start, end, (i, from, to, offset) =>
            {
                var gp = (float*)g[i] + (from - offset);
                var s = (float*)x0 + from;
                for (var k = 0; k < (int)(to - from); k++) { s[k] = gp[k]; sum += (double)gp[k] * gp[k]; }
            });
            partials[2 * c] = sum;
        });
        double total = 0;
        for (var c = 0; c < ChunkCount; c++) total += partials[2 * c];
        return total;
    }

    public (double GradientSquared, double Dot) RestoreGradient()
    {
        TakePointers(needGrad: true);
        var g = _g;
        var x0 = (nint)Pointer(_x0);
        var partials = _partials;
        ForEachChunk((c, start, end) =>
        {
            double gg = 0, dot = 0;
            ForEachSegment(start, end, (i, from, to, offset) =>
            {
                var gp = (float*)g[i] + (from - offset);
                var s = (float*)x0 + from;
                for (var k = 0; k < (int)(to - from); k++)
                {
                    gg += (double)gp[k] * gp[k];
                    dot += (double)gp[k] * s[k];
                    gp[k] = s[k];
                }
            });
            partials[2 * c] = gg;
            partials[2 * c + 1] = dot;
        });
        double g2 = 0, gd = 0;
        for (var c = 0; c < ChunkCount; c++) { g2 += partials[2 * c]; gd += partials[2 * c + 1]; }
        return (g2, gd);
    }

    public void Dispose()
    {
        _x0.Dispose();
        _mu.Dispose();
        _v?.Dispose();
    }
}
