using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>
/// Perturbed gradient descent (Jin, Ge, Netrapalli, Kakade &amp; Jordan, "How to Escape Saddle Points Efficiently",
/// ICML 2017, Algorithm 2) as a TorchSharp optimizer: gradient descent that escapes strict saddle points by a random
/// kick when the gradient is small.
/// </summary>
/// <remarks>
/// <code>
/// input: per group lr eta (schedulers apply), momentum mu (0: the paper's GD), weight decay wd; g_thres, r, t_thres,
///        f_thres, seed
/// t_noise = never; k = 0 (perturbations so far)
/// for t = 0, 1, 2, ...:
///     l = closure()                                    (loss and gradient g at x_t)
///     if |g| &lt;= g_thres and (t_noise = never or t - t_noise &gt; t_thres):
///         x~ = x_t; l~ = l; t_noise = t
///         x_t = x~ + xi, xi uniform in the ball B(0, r) of all parameters together (draw k; k = k + 1)
///         l = closure()                                (g at the perturbed point)
///     if t - t_noise = t_thres:                        (the paper's termination test)
///         l - l~ &gt; -f_thres ? certified += 1 : escapes += 1
///     x_{t+1} = SGD step of x_t with g (momentum mu, weight decay wd; mu = 0: x_t - eta (g + wd x_t))
/// </code>
/// |g| is the norm over every parameter that has a gradient: in training, the minibatch gradient's (ours: the paper
/// analyses exact gradients). Where Jin et al. stop and return x~ (the point is then an approximate second-order
/// stationary point), a training run goes on: we count the outcome (<see cref="Certified"/>, <see cref="Escapes"/>)
/// and keep descending. xi = r u^(1/d) z / |z| with z ~ N(0, I_d) from the counter-based stream
/// (<see cref="CounterNormalNoise"/>, draw k of the seed) and u uniform from a SplitMix64 hash of (seed, k), so a
/// checkpoint stores only counters and the seed, and a resumed run draws the same kicks. If the closure throws after a
/// kick (a stop request), the weights are put back bit for bit from a copy taken before it and nothing changes.
/// </remarks>
public sealed class PerturbedGradientDescent : SGD, IStateOwner, IOptimizerDiagnostics, IOptimizerMemory
{
    readonly PerturbedGradientDescentOptions _settings;
    readonly Dictionary<IntPtr, long> _offsets = [];
    readonly bool _constructed;
    long _seed;
    long _totalElements;
    long _perturbationsAtLastTake;
    double _lastGradientNorm = double.NaN;

    /// <summary>PGD over <paramref name="parameters"/> as one group.</summary>
    /// <param name="parameters">The parameters to train.</param>
    /// <param name="options">The settings (validated here; <see cref="OptionsException"/> names a bad one).</param>
    public PerturbedGradientDescent(IEnumerable<Parameter> parameters, PerturbedGradientDescentOptions options)
        : this([new ParamGroup { Parameters = parameters }], options)
    {
    }

    /// <summary>
    /// PGD over parameter groups (TorchSharp's <see cref="SGD.ParamGroup"/>); each group's unset SGD options take the
    /// values of <paramref name="options"/>. The perturbation settings are the optimizer's: one ball over every parameter.
    /// </summary>
    public PerturbedGradientDescent(IEnumerable<ParamGroup> groups, PerturbedGradientDescentOptions options)
        : base(Checked(groups, options), options.LearningRate, options.Momentum, 0, options.WeightDecay, false)
    {
        _settings = options;
        _seed = options.Seed;
        _constructed = true;
        Rebuild();
    }

    static IEnumerable<ParamGroup> Checked(IEnumerable<ParamGroup> groups, PerturbedGradientDescentOptions options)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return groups;
    }

    /// <summary>The settings this optimizer was built with (the seed as used, after any derivation from the run's seed).</summary>
    public PerturbedGradientDescentOptions Settings => _settings with { Seed = _seed };

    /// <summary>t: steps taken so far (survives checkpoints).</summary>
    public long Steps { get; private set; }

    /// <summary>k: perturbations so far (survives checkpoints).</summary>
    public long Perturbations { get; private set; }

    /// <summary>The step of the last perturbation, or -1 if there was none (survives checkpoints).</summary>
    public long LastPerturbationStep { get; private set; } = -1;

    /// <summary>The loss l~ just before the last perturbation (NaN before the first).</summary>
    public double LossBeforePerturbation { get; private set; } = double.NaN;

    /// <summary>Perturbations after which the loss fell by more than f_thres within t_thres steps (survives checkpoints).</summary>
    public long Escapes { get; private set; }

    /// <summary>Perturbations after which it did not: the point was an approximate second-order stationary point (survives checkpoints).</summary>
    public long Certified { get; private set; }

    /// <summary>SGD's momentum buffers (none when momentum is 0).</summary>
    public long StateElements => _state.Values.Sum(s => ((State)s).momentum_buffer?.numel() ?? 0);

    /// <summary>Adds a group; its options must be SGD's or null. The ball grows to cover its parameters; add groups before the first step.</summary>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        if (param_group.Options is not null and not Options)
            throw new ArgumentException($"a PGD parameter group needs SGD.Options (or none, to take the defaults), got {param_group.Options.GetType().Name}");
        base.add_param_group(param_group);
        if (_constructed) Rebuild();
    }

    void Rebuild()
    {
        _offsets.Clear();
        long total = 0;
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
            {
                if (!_offsets.TryAdd(p.Handle, total)) throw new ArgumentException("a parameter appears twice in PGD's groups");
                total += p.numel();
            }
        _totalElements = total;
    }

    /// <summary>Sets every gradient to None (PyTorch 2's default); parameters without a gradient are skipped by <see cref="step"/>.</summary>
    public override void zero_grad()
    {
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
                p.grad = null;
    }

    /// <summary>
    /// One PGD step (see the class remarks). The closure is evaluated once, and once more after a perturbation. If it
    /// throws, the weights and counters are as before the call.
    /// </summary>
    /// <param name="closure">Computes the loss and its gradients; required, since the escape test reads the loss.</param>
    /// <returns>The closure's (last) loss.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure), "PGD tests escapes on the loss and re-evaluates the gradient after a perturbation: call step with a closure that returns the loss");
        Tensor loss;
        using (enable_grad()) loss = closure();
        var norm = GradientNorm();
        _lastGradientNorm = norm;
        var t = Steps;
        if (norm <= _settings.GradientThreshold && (LastPerturbationStep < 0 || t - LastPerturbationStep > _settings.PerturbationInterval))
        {
            var before = loss.ToDouble();
            var saved = Snapshot();
            try
            {
                using (no_grad()) Perturb(Perturbations);
                zero_grad();
                using (enable_grad()) loss = closure();
            }
            catch
            {
                Restore(saved);
                throw;
            }
            finally
            {
                foreach (var copy in saved.Values) copy.Dispose();
            }
            LossBeforePerturbation = before;
            LastPerturbationStep = t;
            Perturbations++;
        }
        else if (LastPerturbationStep >= 0 && t - LastPerturbationStep == _settings.PerturbationInterval)
        {
            if (loss.ToDouble() - LossBeforePerturbation > -_settings.LossDecreaseThreshold) Certified++;
            else Escapes++;
        }
        base.step(null);
        Steps++;
        return loss;
    }

    /// <summary>|g| over every parameter that has a gradient (read in place for contiguous CPU float tensors).</summary>
    double GradientNorm()
    {
        double squares = 0;
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
            {
                using var g = p.grad;
                if (g is null || g.numel() == 0) continue;
                squares += SquaredNorm(g);
            }
        return Math.Sqrt(squares);
    }

    static double SquaredNorm(Tensor v)
    {
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

    /// <summary>x = x + xi, xi uniform in the ball of radius r over all parameters: direction z / |z|, radius r u^(1/d).</summary>
    void Perturb(long draw)
    {
        if (_totalElements == 0) return;
        var noise = new CounterNormalNoise(_seed, _totalElements);
        var directions = new List<(Parameter P, Tensor Z)>();
        try
        {
            double squares = 0;
            foreach (var group in _parameter_groups)
                foreach (var p in group.Parameters)
                {
                    if (p.numel() == 0) continue;
                    var z = empty(p.shape, p.dtype, p.device).DetachFromDisposeScope();
                    directions.Add((p, z));
                    noise.Fill(z, _offsets[p.Handle], draw, null);
                    squares += SquaredNorm(z);
                }
            var radius = _settings.PerturbationRadius * Math.Pow(UniformOf(_seed, draw), 1.0 / _totalElements);
            var scale = radius / Math.Sqrt(squares);
            foreach (var (p, z) in directions) p.AddScaled_(z, scale);
        }
        finally
        {
            foreach (var (_, z) in directions) z.Dispose();
        }
    }

    /// <summary>A uniform number in (0, 1] from (seed, draw): 53 bits of SplitMix64.</summary>
    internal static double UniformOf(long seed, long draw)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)draw + 0x632BE59BD9B4E019UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return ((z >> 11) + 1) * (1.0 / (1UL << 53));
    }

    Dictionary<IntPtr, Tensor> Snapshot()
    {
        var copies = new Dictionary<IntPtr, Tensor>();
        using (no_grad())
            foreach (var group in _parameter_groups)
                foreach (var p in group.Parameters)
                    copies[p.Handle] = p.detach().clone().DetachFromDisposeScope();
        return copies;
    }

    void Restore(Dictionary<IntPtr, Tensor> copies)
    {
        using (no_grad())
            foreach (var group in _parameter_groups)
                foreach (var p in group.Parameters)
                    if (copies.TryGetValue(p.Handle, out var copy)) p.copy_(copy);
    }

    /// <summary>TorchSharp's SGD state dictionary (momentum buffers) plus an entry holding the counters and the seed.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(base.state_dict(), this);

    /// <summary>Restores a dictionary from <see cref="state_dict"/>, including the counters and the seed.</summary>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, nameof(PerturbedGradientDescent), base.load_state_dict, this);

    /// <summary>Layout of the extra state.</summary>
    const long StateVersion = 1;

    void IStateOwner.Save(BinaryWriter writer)
    {
        writer.Write(-StateVersion);
        writer.Write(Steps);
        writer.Write(_seed);
        writer.Write(Perturbations);
        writer.Write(LastPerturbationStep);
        writer.Write(LossBeforePerturbation);
        writer.Write(Escapes);
        writer.Write(Certified);
    }

    void IStateOwner.Load(BinaryReader reader)
    {
        var version = -reader.ReadInt64();
        if (version < 1 || version > StateVersion)
            throw new InvalidDataException($"PGD state version {version} is not one this WideValley reads (1 to {StateVersion})");
        var steps = reader.ReadInt64();
        var seed = reader.ReadInt64();
        var perturbations = reader.ReadInt64();
        var last = reader.ReadInt64();
        var lossBefore = reader.ReadDouble();
        var escapes = reader.ReadInt64();
        var certified = reader.ReadInt64();
        if (steps < 0) throw new InvalidDataException($"PGD state holds a negative step count ({steps})");
        if (perturbations < 0 || escapes < 0 || certified < 0)
            throw new InvalidDataException($"PGD state holds a negative counter (perturbations {perturbations}, escapes {escapes}, certified {certified})");
        if (last < -1 || last >= steps) throw new InvalidDataException($"PGD state holds a last perturbation at step {last}, not in [-1, {steps})");
        (Steps, _seed, Perturbations, LastPerturbationStep, LossBeforePerturbation, Escapes, Certified) =
            (steps, seed, perturbations, last, lossBefore, escapes, certified);
    }

    /// <summary>
    /// Perturbations since the last call (pgd_perturbations), the totals of escapes and certified points (pgd_escapes,
    /// pgd_certified), the last gradient norm (pgd_grad_norm) and the steps taken (pgd_steps).
    /// </summary>
    public IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var result = new Dictionary<string, double>
        {
            ["pgd_perturbations"] = Perturbations - _perturbationsAtLastTake,
            ["pgd_escapes"] = Escapes,
            ["pgd_certified"] = Certified,
            ["pgd_grad_norm"] = _lastGradientNorm,
            ["pgd_steps"] = Steps,
        };
        _perturbationsAtLastTake = Perturbations;
        return result;
    }

    /// <summary>Frees SGD's momentum buffers.</summary>
    protected override void Dispose(bool disposing)
    {
        // Options refused by the constructor throw before TorchSharp's constructors run; the finalizer must not reach SGD's Dispose.
        if (_state is null) return;
        base.Dispose(disposing);
    }
}
