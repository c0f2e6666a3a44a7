using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Optim;

/// <summary>Constants of one Langevin step, precomputed once per step.</summary>
internal readonly record struct LangevinStep(
    double Gamma, double Lr, double NoiseStd, double WeightDecay, double Momentum, bool Nesterov, bool MomentumOnDrift,
    double NewSampleWeight, long NoiseIndex);


/// <summary>
/// The per-element work of the local-entropy estimator, over all parameters at once:
/// <list type="bullet">
/// <item><c>Begin</c>: x0 = x, mu = x, v = 0 (x0 remembers the weights, mu averages the iterates).</item>
/// <item><c>Step</c>: with g the loss gradient at x' (in .grad), drift d = g + wd x' + gamma (x' - x0), optional
/// (Nesterov) momentum, x' = x' - eta' d + s z with z ~ N(0, I), mu = mu + w (x' - mu).</item>
/// <item><c>Finish</c>: x = x0 and .grad = c (x0 - mu).</item>
/// <item>Diagnostics, after <c>Finish</c>: <c>StashGradient</c> parks .grad in the x0 buffer (x0 is back in the
/// weights, so the buffer is free), the caller evaluates the plain gradient at x into .grad, and
/// <c>RestoreGradient</c> measures it against the parked one and puts the local-entropy gradient back.</item>
/// </list>
/// Extra memory: x0, mu and (with momentum) v, one flat parameter-sized buffer each, diagnostics included. The noise is
/// drawn into the gradient buffer (tensor kernel) or generated on the fly (fused kernel), so it needs no buffer.
/// </summary>
internal interface ILangevinKernel : IDisposable
{
    void Begin(bool momentum);
    /// <summary>Elements in the kernel's buffers.</summary>
    long BufferElements { get; }
    void Step(in LangevinStep step);
    void Finish(double gradientScale);
    /// <summary>Copies .grad into the (now free) x0 buffer; returns its squared norm.</summary>
    double StashGradient();
    /// <summary>Squared norm of .grad and its dot product with the stashed gradient; then .grad = the stashed one.</summary>
    (double GradientSquared, double Dot) RestoreGradient();
    /// <summary>State of the noise generator, for checkpoints (the fused kernel is counter-based and has none).</summary>
    byte[] SaveGeneratorState();
    void LoadGeneratorState(byte[] state);
}

/// <summary>Kernel made of TorchSharp tensor operations: any device, any floating dtype.</summary>
internal sealed class TensorOpsLangevinKernel : ILangevinKernel
{
    readonly List<Parameter> _params;
    readonly Tensor _x0, _mu;
    readonly Tensor[] _x0Views, _muViews;
    Tensor? _v;
    Tensor[]? _vViews;
    readonly Generator _generator;

    public TensorOpsLangevinKernel(List<Parameter> parameters, long seed)
    {
        _params = parameters;
        var first = parameters[0];
        var total = parameters.Sum(p => p.numel());
        _x0 = empty(total, first.dtype, first.device).DetachFromDisposeScope();
        _mu = empty(total, first.dtype, first.device).DetachFromDisposeScope();
        _x0Views = Views(_x0);
        _muViews = Views(_mu);
        _generator = new Generator((ulong)seed, first.device);
    }

    Tensor[] Views(Tensor flat)
    {
        var views = new Tensor[_params.Count];
        long offset = 0;
        for (var i = 0; i < _params.Count; i++)
        {
            var n = _params[i].numel();
            views[i] = flat.narrow(0, offset, n).view(_params[i].shape).DetachFromDisposeScope();
            offset += n;
        }
        return views;
    }

    public long BufferElements => _x0.numel() + _mu.numel() + (_v?.numel() ?? 0);

    public void Begin(bool momentum)
    {
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

    public void Step(in LangevinStep s)
    {
        for (var i = 0; i < _params.Count; i++)
        {
            var p = _params[i];
            using var g = p.grad ?? throw new InvalidOperationException("a parameter has no gradient after the closure; did it call backward()?");
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
                // The gradient is spent; its buffer holds the noise (the closure zeroes it before the next use).
                g.normal_(0, 1, _generator);
                p.AddScaled_(g, s.NoiseStd);
            }
            _muViews[i].LerpTowards_(p, s.NewSampleWeight);
        }
    }

    void ApplyMomentum(Tensor g, int i, in LangevinStep s)
    {
        if (s.Momentum == 0) return;
        var v = _vViews![i];
        v.Scale_(s.Momentum).Accumulate_(g);
        if (s.Nesterov) g.AddScaled_(v, s.Momentum);
        else g.copy_(v);
    }

    public void Finish(double scale)
    {
        for (var i = 0; i < _params.Count; i++)
        {
            var p = _params[i];
            p.copy_(_x0Views[i]);
            using var g = p.grad!;
            g.copy_(_x0Views[i]).sub_(_muViews[i]);
            if (scale != 1) g.Scale_(scale);
        }
    }

    public double StashGradient()
    {
        for (var i = 0; i < _params.Count; i++)
        {
            using var g = _params[i].grad!;
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

    public byte[] SaveGeneratorState()
    {
        using var state = _generator.get_state();
        return state.data<byte>().ToArray();
    }

    public void LoadGeneratorState(byte[] state)
    {
        using var t = tensor(state, ScalarType.Byte);
        _generator.set_state(t);
    }

    public void Dispose()
    {
        foreach (var v in _x0Views.Concat(_muViews).Concat(_vViews ?? [])) v.Dispose();
        _x0.Dispose();
        _mu.Dispose();
        _v?.Dispose();
        _generator.Dispose();
    }
}

/// <summary>
/// One fused pass per Langevin step over CPU float32 parameters, vectorised with 256-bit SIMD and split over libtorch's
/// thread count. The Gaussian noise comes from a counter-based generator (SplitMix64 over (seed, step, element) and a
/// Box-Muller transform), so it needs no stored state, costs a fraction of libtorch's normal_ (which dominates an
/// unfused step), and is identical whatever the number of threads.
/// </summary>
internal sealed unsafe class FusedCpuLangevinKernel : ILangevinKernel
{
    const int Chunk = CpuFloatKernels.Chunk; // a multiple of the 16-element noise block

    readonly List<Parameter> _params;
    readonly long[] _offsets;
    readonly long _total;
    readonly long _blocksPerStep;
    readonly ulong _key;
    readonly Tensor _x0, _mu;
    Tensor? _v;
    readonly double[] _partials;

    [ThreadStatic] static float[]? t_noise;

    public static bool Supports(List<Parameter> parameters) =>
        Vector256.IsHardwareAccelerated && CpuFloatKernels.Supports(parameters);

    public FusedCpuLangevinKernel(List<Parameter> parameters, long seed)
    {
        _params = parameters;
        _offsets = new long[parameters.Count + 1];
        for (var i = 0; i < parameters.Count; i++) _offsets[i + 1] = _offsets[i] + parameters[i].numel();
        _total = _offsets[^1];
        _blocksPerStep = (_total + 15) / 16;
        _key = SplitMix(unchecked((ulong)seed) ^ 0x5DEECE66DUL);
        _x0 = empty(_total, ScalarType.Float32).DetachFromDisposeScope();
        _mu = empty(_total, ScalarType.Float32).DetachFromDisposeScope();
        _partials = new double[2 * ChunkCount];
    }

    int ChunkCount => (int)((_total + Chunk - 1) / Chunk);

    static float* Pointer(Tensor t) => CpuFloatKernels.Pointer(t);

    void ForEachChunk(Action<int, long, long> body) => CpuFloatKernels.ForEachChunk(_total, body);

    /// <summary>Raw pointers to each parameter's data and gradient for this step.</summary>
    (nint[] P, nint[] G) Pointers(bool needGrad)
    {
        var p = new nint[_params.Count];
        var g = new nint[_params.Count];
        for (var i = 0; i < _params.Count; i++)
        {
            p[i] = (nint)Pointer(_params[i]);
            if (!needGrad) continue;
            using var grad = _params[i].grad
                ?? throw new InvalidOperationException("a parameter has no gradient after the closure; did it call backward()?");
            if (!grad.is_contiguous() || grad.dtype != ScalarType.Float32)
                throw new InvalidOperationException("the fused Langevin kernel needs contiguous float32 gradients");
            g[i] = (nint)Pointer(grad);
        }
        return (p, g);
    }

    public long BufferElements => 2 * _total + (_v is null ? 0 : _total);

    public void Begin(bool momentum)
    {
        if (momentum && _v is null) _v = empty(_total, ScalarType.Float32).DetachFromDisposeScope();
        var (p, _) = Pointers(needGrad: false);
        var x0 = (nint)Pointer(_x0);
        var mu = (nint)Pointer(_mu);
        var v = _v is null ? 0 : (nint)Pointer(_v);
        var useV = momentum;
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
    }

    /// <summary>Calls <paramref name="body"/>(parameter, from, to, parameter offset) for each parameter piece in [start, end).</summary>
    void ForEachSegment(long start, long end, Action<int, long, long, long> body)
    {
        var i = Array.BinarySearch(_offsets, start);
        if (i < 0) i = ~i - 1;
        for (; i < _params.Count && _offsets[i] < end; i++)
        {
            var from = Math.Max(start, _offsets[i]);
            var to = Math.Min(end, _offsets[i + 1]);
            if (to > from) body(i, from, to, _offsets[i]);
        }
    }

    public void Step(in LangevinStep s)
    {
        var (p, g) = Pointers(needGrad: true);
        var x0 = (nint)Pointer(_x0);
        var mu = (nint)Pointer(_mu);
        var v = _v is null ? 0 : (nint)Pointer(_v);
        var step = s;
        ForEachChunk((_, start, end) =>
        {
            var noise = t_noise ??= GC.AllocateUninitializedArray<float>(Chunk, pinned: true);
            if (step.NoiseStd != 0)
                fixed (float* z = noise) FillNormals(z, start, end, step.NoiseIndex);
            fixed (float* z = noise)
            {
                var zBase = z;
                ForEachSegment(start, end, (i, from, to, offset) =>
                    UpdateRange((float*)p[i] + (from - offset), (float*)g[i] + (from - offset), (float*)x0 + from,
                        (float*)mu + from, v == 0 ? null : (float*)v + from, zBase + (from - start), (int)(to - from), step));
            }
        });
    }

    /// <summary>The Langevin update for <paramref name="n"/> consecutive elements; see the interface summary.</summary>
    static void UpdateRange(float* xp, float* g, float* x0, float* mu, float* v, float* z, int n, in LangevinStep s)
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
                var d = Vector256.Load(g + k) + vWd * x;
                if (onDrift) d += vGamma * (x - Vector256.Load(x0 + k));
                if (momentum)
                {
                    var vel = vM * Vector256.Load(v + k) + d;
                    vel.Store(v + k);
                    d = nesterov ? d + vM * vel : vel;
                }
                if (!onDrift) d += vGamma * (x - Vector256.Load(x0 + k));
                x -= vLr * d;
                if (noise) x += vNs * Vector256.Load(z + k);
                x.Store(xp + k);
                var a = Vector256.Load(mu + k);
                (a + vW * (x - a)).Store(mu + k);
            }
        }
        for (; k < n; k++)
        {
            var x = xp[k];
            var d = g[k] + wd * x;
            if (onDrift) d += gamma * (x - x0[k]);
            if (momentum)
            {
                var vel = m * v[k] + d;
                v[k] = vel;
                d = nesterov ? d + m * vel : vel;
            }
            if (!onDrift) d += gamma * (x - x0[k]);
            x -= lr * d;
            if (noise) x += ns * z[k];
            xp[k] = x;
            mu[k] += w * (x - mu[k]);
        }
    }

    const ulong Golden = 0x9E3779B97F4A7C15UL;

    static ulong SplitMix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    static Vector256<ulong> SplitMix(Vector256<ulong> z)
    {
        z = (z ^ (z >> 30)) * Vector256.Create(0xBF58476D1CE4E5B9UL);
        z = (z ^ (z >> 27)) * Vector256.Create(0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    /// <summary>
    /// Standard normal variates for global elements [start, end) of Langevin step <paramref name="noiseIndex"/> into
    /// <paramref name="z"/> (z[0] is element <paramref name="start"/>). Element e of block b = e / 16 takes the SplitMix64
    /// outputs at stream positions (step * blocks + b) * 8 + j, j &lt; 8; output j gives two 24-bit uniforms and, by
    /// Box-Muller, the normals of elements 16b + j (cosine) and 16b + 8 + j (sine). Whole blocks are generated, so the
    /// value of an element never depends on how the work was split.
    /// </summary>
    internal static void FillNormalsFor(ulong key, long blocksPerStep, float* z, long start, long end, long noiseIndex)
    {
        var laneOffsets = Vector256.Create(0UL, 1, 2, 3);
        var golden = Vector256.Create(Golden);
        var scale = Vector256.Create(1f / 16777216f);
        var half = Vector256.Create(0.5f / 16777216f);
        var twoPi = Vector256.Create(2 * MathF.PI);
        var minusTwo = Vector256.Create(-2f);
        for (var e = start; e < end; e += 16)
        {
            var block = (ulong)(noiseIndex * blocksPerStep + e / 16);
            var position = Vector256.Create(key) + (Vector256.Create(block * 8) + laneOffsets) * golden;
            var a = SplitMix(position);
            var b = SplitMix(position + Vector256.Create(4UL) * golden);
            var low = Vector256.Narrow(a, b);
            var high = Vector256.Narrow(a >> 32, b >> 32);
            // 24-bit values convert exactly as signed integers (AVX2 has no unsigned conversion).
            var u1 = Vector256.ConvertToSingle((low >> 8).AsInt32()) * scale + half;   // (0, 1): log is finite
            var u2 = Vector256.ConvertToSingle((high >> 8).AsInt32()) * scale;         // [0, 1)
            var r = Vector256.Sqrt(minusTwo * Log(u1));
            var (sin, cos) = Vector256.SinCos(twoPi * u2);
            (r * cos).Store(z + (e - start));
            (r * sin).Store(z + (e - start) + 8);
        }
    }

    /// <summary>The same into a span (for tests); its length must cover [start, end) rounded up to whole 16-blocks.</summary>
    internal static void FillNormalsFor(ulong key, long blocksPerStep, Span<float> z, long start, long end, long noiseIndex)
    {
        if (start % 16 != 0 || z.Length < (end - start + 15) / 16 * 16)
            throw new ArgumentException("start must be a multiple of 16 and the span must hold whole 16-element blocks");
        fixed (float* p = z) FillNormalsFor(key, blocksPerStep, p, start, end, noiseIndex);
    }

    /// <summary>
    /// Natural logarithm of positive, finite, normal floats, 8 at a time (Cephes logf: x = m 2^e with m in
    /// [sqrt(1/2), sqrt(2)), log x = e ln 2 + log(1 + t) with t = m - 1 by a degree-9 polynomial; relative error below
    /// 1e-7). .NET's Vector256.Log runs element by element here and cost three quarters of a Langevin step.
    /// </summary>
    internal static Vector256<float> Log(Vector256<float> x)
    {
        var bits = x.AsInt32();
        var exponent = (bits >> 23) - Vector256.Create(127);
        var mantissa = ((bits & Vector256.Create(0x007FFFFF)) | Vector256.Create(0x3F800000)).AsSingle();
        var high = Vector256.GreaterThan(mantissa, Vector256.Create(1.41421356f));
        mantissa = Vector256.ConditionalSelect(high, mantissa * Vector256.Create(0.5f), mantissa);
        var e = Vector256.ConvertToSingle(exponent) + (high & Vector256.Create(1f));
        var t = mantissa - Vector256.Create(1f);
        var t2 = t * t;
        var y = Vector256.Create(7.0376836292E-2f);
        y = y * t + Vector256.Create(-1.1514610310E-1f);
        y = y * t + Vector256.Create(1.1676998740E-1f);
        y = y * t + Vector256.Create(-1.2420140846E-1f);
        y = y * t + Vector256.Create(1.4249322787E-1f);
        y = y * t + Vector256.Create(-1.6668057665E-1f);
        y = y * t + Vector256.Create(2.0000714765E-1f);
        y = y * t + Vector256.Create(-2.4999993993E-1f);
        y = y * t + Vector256.Create(3.3333331174E-1f);
        y = y * t * t2;
        // ln 2 split in two parts (0.693359375 - 2.12194440e-4) so that e ln 2 adds without rounding error.
        y += Vector256.Create(-2.12194440e-4f) * e;
        y += Vector256.Create(-0.5f) * t2;
        return t + y + Vector256.Create(0.693359375f) * e;
    }

    void FillNormals(float* z, long start, long end, long noiseIndex) =>
        FillNormalsFor(_key, _blocksPerStep, z, start, end, noiseIndex);

    public void Finish(double gradientScale)
    {
        var (p, g) = Pointers(needGrad: true);
        var x0 = (nint)Pointer(_x0);
        var mu = (nint)Pointer(_mu);
        var scale = (float)gradientScale;
        ForEachChunk((_, start, end) => ForEachSegment(start, end, (i, from, to, offset) =>
        {
            var xp = (float*)p[i] + (from - offset);
            var gp = (float*)g[i] + (from - offset);
            var a = (float*)x0 + from;
            var m = (float*)mu + from;
            var n = (int)(to - from);
            new ReadOnlySpan<float>(a, n).CopyTo(new Span<float>(xp, n));
            for (var k = 0; k < n; k++) gp[k] = scale * (a[k] - m[k]);
        }));
    }

    public double StashGradient()
    {
        var (_, g) = Pointers(needGrad: true);
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
        var (_, g) = Pointers(needGrad: true);
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

    public byte[] SaveGeneratorState() => [];
    public void LoadGeneratorState(byte[] state) { }

    public void Dispose()
    {
        _x0.Dispose();
        _mu.Dispose();
        _v?.Dispose();
    }
}
