using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace WideValley.Optim;

/// <summary>
/// Stochastic gradient Langevin dynamics (Welling &amp; Teh 2011), the baseline of seed 003 App. C.1:
/// x = x - eta_t (grad f(x) + wd x) + sqrt(2 eta_t T / N) z, with z ~ N(0, I) and eta_t = eta / (1 + t)^b, where f is the
/// mean minibatch loss, N the training-set size and T the temperature. This is the Euler step of
/// dx = -grad f dt + sqrt(2 T / N) dW, whose stationary law is proportional to exp(-N (f(x) + wd/2 ||x||^2) / T): the
/// Bayesian posterior under a Gaussian prior when T = 1. eta is the parameter group's learning rate, so epoch
/// schedules and LR schedulers still apply on top of the decay. The noise is the counter-based stream the local-entropy
/// estimator uses (<see cref="CounterNormalNoise"/>: element e of step t depends only on the seed, t and e), so a
/// checkpoint holds just the seed and t, and the noise does not depend on the device or the number of threads.
/// </summary>
public sealed class Sgld : OptimizerHelper, IStateOwner, IOptimizerDiagnostics
{
    CounterNormalNoise? _noise;
    long _seed;
    Tensor? _staging;
    readonly double _decay, _temperature, _weightDecay;
    readonly long _datasetSize;
    double _lastLr;

    /// <summary>t: steps taken so far (survives checkpoints).</summary>
    public long Steps { get; private set; }

    /// <summary>SGLD over <paramref name="parameters"/> as one group.</summary>
    /// <param name="parameters">The parameters to sample.</param>
    /// <param name="lr">eta, the step size before decay (positive).</param>
    /// <param name="datasetSize">N, the training-set size the minibatch loss averages over (at least 1); it scales the noise.</param>
    /// <param name="decay">b of eta_t = eta / (1 + t)^b (zero or positive; 0 keeps the step fixed).</param>
    /// <param name="temperature">T (zero or positive; 1 samples the posterior, 0 is plain SGD with the decaying step).</param>
    /// <param name="weightDecay">wd, L2 weight decay added to the gradient (zero or positive).</param>
    /// <param name="seed">Seed of the noise stream.</param>
    /// <exception cref="ArgumentException">A value is out of range; the message names it.</exception>
    public Sgld(IEnumerable<Parameter> parameters, double lr, long datasetSize, double decay = 0.55, double temperature = 1,
        double weightDecay = 0, long seed = 0)
    {
        OptimizerFactory.RequirePositive(lr, "learning rate (--lr)");
        if (datasetSize < 1) throw new ArgumentOutOfRangeException(nameof(datasetSize), datasetSize, "the training-set size must be positive");
        OptimizerFactory.RequireNonNegative(decay, "SGLD decay exponent b (--sgld-decay)");
        OptimizerFactory.RequireNonNegative(temperature, "SGLD temperature (--sgld-temperature)");
        OptimizerFactory.RequireNonNegative(weightDecay, "weight decay (--weight-decay)");
        _decay = decay;
        _temperature = temperature;
        _weightDecay = weightDecay;
        _datasetSize = datasetSize;
        var list = parameters.ToList();
        _seed = seed;
        _defaults = new OptimizerOptions { LearningRate = lr, InitialLearningRate = lr };
        _parameter_groups = new List<TorchSharp.Modules.ParamGroup>();
        add_param_group(new TorchSharp.Modules.ParamGroup { Parameters = list, Options = new OptimizerOptions { LearningRate = lr } });
    }

    /// <summary>
    /// Adds a group; its unset learning rate takes the optimizer's. The noise stream is rebuilt to cover every parameter,
    /// so add groups before the first step.
    /// </summary>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        param_group.Options ??= new OptimizerOptions { LearningRate = _defaults.LearningRate };
        param_group.Options.LearningRate ??= _defaults.LearningRate;
        param_group.Options.InitialLearningRate = param_group.Options.LearningRate!.Value;
        _parameter_groups.Add(param_group);
        foreach (var p in param_group.Parameters) _state[p.Handle] = new NoState(p);
        // The noise vector covers every parameter; a new group lengthens it.
        var all = parameters().ToList();
        var total = all.Sum(p => p.numel());
        _noise = total > 0 ? new CounterNormalNoise(_seed, total) : null;
        _staging?.Dispose();
        _staging = all.Count > 0 && !CpuFloatKernels.Supports(all)
            ? empty(all.Max(p => p.numel()), ScalarType.Float32).DetachFromDisposeScope()
            : null;
    }

    /// <summary>
    /// One SGLD step on every parameter that has a gradient: eta_t = lr / (1 + t)^b per group, then t advances. When
    /// <paramref name="closure"/> is given it is evaluated first, with gradients enabled. The gradient buffers are
    /// overwritten with the step's noise.
    /// </summary>
    /// <returns>The closure's loss, or null without a closure.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
            using (enable_grad()) loss = closure();
        var decay = Math.Pow(1 + Steps, -_decay);
        using (no_grad())
        {
            long offset = 0;
            foreach (var group in _parameter_groups)
            {
                var lr = group.Options.LearningRate!.Value * decay;
                _lastLr = lr;
                var noise = Math.Sqrt(2 * lr * _temperature / _datasetSize);
                foreach (var p in group.Parameters)
                {
                    var start = offset;
                    offset += p.numel();
                    using var g = p.grad;
                    if (g is null) continue;
                    if (_weightDecay != 0) g.AddScaled_(p, _weightDecay);
                    p.AddScaled_(g, -lr);
                    if (noise == 0) continue;
                    // The gradient buffer is spent; reuse it for the noise rather than allocating.
                    _noise!.Fill(g, start, Steps, _staging);
                    p.AddScaled_(g, noise);
                }
            }
        }
        Steps++;
        return loss!;
    }

    /// <summary>TorchSharp's state dictionary plus an entry holding t and the noise seed, so a checkpoint continues the same noise stream.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(base.state_dict(), this);

    /// <summary>Restores a dictionary from <see cref="state_dict"/>, including t and the noise seed (older checkpoints keep this optimizer's seed).</summary>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, nameof(Sgld), base.load_state_dict, this);

    /// <summary>Layout of the extra state: 2 replaced libtorch's generator state by the counter-based stream's seed.</summary>
    const long StateVersion = 2;

    void IStateOwner.Save(BinaryWriter writer)
    {
        // A negative first number marks a versioned layout; version 1 (no marker) began with the non-negative t.
        writer.Write(-StateVersion);
        writer.Write(Steps);
        writer.Write(_seed);
    }

    /// <summary>
    /// Version 1 held libtorch's generator state, which the counter-based stream cannot continue: such a run continues
    /// with the stream of the seed this optimizer was built with.
    /// </summary>
    void IStateOwner.Load(BinaryReader reader)
    {
        var first = reader.ReadInt64();
        var version = first < 0 ? -first : 1;
        if (version > StateVersion)
            throw new InvalidDataException($"SGLD state version {version} is newer than this WideValley reads ({StateVersion})");
        if (version == 1)
        {
            var n = reader.ReadInt32();
            if (reader.ReadBytes(n).Length != n) throw new EndOfStreamException("SGLD state is truncated");
            Steps = first;
            return;
        }
        Steps = reader.ReadInt64();
        var seed = reader.ReadInt64();
        if (seed != _seed)
        {
            _seed = seed;
            if (_noise is not null) _noise = new CounterNormalNoise(seed, _noise.Elements);
        }
    }

    /// <summary>The step size of the last step (sgld_step_size, after decay) and the steps taken (sgld_steps).</summary>
    public IReadOnlyDictionary<string, double> TakeDiagnostics() =>
        new Dictionary<string, double> { ["sgld_step_size"] = _lastLr, ["sgld_steps"] = Steps };

    /// <summary>Frees the staging buffer of the noise, then the base optimizer's resources.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _staging?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>SGLD keeps no per-parameter state; TorchSharp's dictionary still wants an entry per parameter.</summary>
    sealed class NoState(Parameter parameter) : OptimizerState(parameter)
    {
        public override void SaveStateDict(BinaryWriter writer) { }
        public override void LoadStateDict(BinaryReader reader) { }
        public override void LoadStateDict(OptimizerState source) { }
        public override void Initialize(OptimizerOptions options) { }
    }
}
