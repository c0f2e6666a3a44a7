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
/// schedules and LR schedulers still apply on top of the decay.
/// </summary>
public sealed class Sgld : OptimizerHelper, IStateOwner, IOptimizerDiagnostics
{
    readonly Generator _generator;
    readonly double _decay, _temperature, _weightDecay;
    readonly long _datasetSize;
    double _lastLr;

    /// <summary>t: steps taken so far (survives checkpoints).</summary>
    public long Steps { get; private set; }

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
        _generator = new Generator((ulong)seed, list.Count > 0 ? list[0].device : CPU);
        _defaults = new OptimizerOptions { LearningRate = lr, InitialLearningRate = lr };
        _parameter_groups = new List<TorchSharp.Modules.ParamGroup>();
        add_param_group(new TorchSharp.Modules.ParamGroup { Parameters = list, Options = new OptimizerOptions { LearningRate = lr } });
    }

    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        param_group.Options ??= new OptimizerOptions { LearningRate = _defaults.LearningRate };
        param_group.Options.LearningRate ??= _defaults.LearningRate;
        param_group.Options.InitialLearningRate = param_group.Options.LearningRate!.Value;
        _parameter_groups.Add(param_group);
        foreach (var p in param_group.Parameters) _state[p.Handle] = new NoState(p);
    }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
            using (enable_grad()) loss = closure();
        var decay = Math.Pow(1 + Steps, -_decay);
        using (no_grad())
        {
            foreach (var group in _parameter_groups)
            {
                var lr = group.Options.LearningRate!.Value * decay;
                _lastLr = lr;
                var noise = Math.Sqrt(2 * lr * _temperature / _datasetSize);
                foreach (var p in group.Parameters)
                {
                    using var g = p.grad;
                    if (g is null) continue;
                    if (_weightDecay != 0) g.AddScaled_(p, _weightDecay);
                    p.AddScaled_(g, -lr);
                    if (noise == 0) continue;
                    // The gradient buffer is spent; reuse it for the noise rather than allocating.
                    g.normal_(0, 1, _generator);
                    p.AddScaled_(g, noise);
                }
            }
        }
        Steps++;
        return loss!;
    }

    public override StateDictionary state_dict()
    {
        var sd = base.state_dict();
        sd.Options.Add(new ExtraStateEntry(this));
        return sd;
    }

    public override void load_state_dict(StateDictionary state_dict)
    {
        var entry = ExtraStateEntry.Take(state_dict, nameof(Sgld));
        try { base.load_state_dict(state_dict); }
        finally { state_dict.Options.Add(entry); }
        ExtraStateEntry.Copy(entry.Owner, this);
    }

    void IStateOwner.Save(BinaryWriter writer)
    {
        writer.Write(Steps);
        using var state = _generator.get_state();
        var bytes = state.data<byte>().ToArray();
        writer.Write(bytes.Length);
        writer.Write(bytes);
    }

    void IStateOwner.Load(BinaryReader reader)
    {
        Steps = reader.ReadInt64();
        var n = reader.ReadInt32();
        var bytes = reader.ReadBytes(n);
        if (bytes.Length != n) throw new EndOfStreamException("SGLD state is truncated");
        using var state = tensor(bytes, ScalarType.Byte);
        _generator.set_state(state);
    }

    public IReadOnlyDictionary<string, double> TakeDiagnostics() =>
        new Dictionary<string, double> { ["sgld_step_size"] = _lastLr, ["sgld_steps"] = Steps };

    protected override void Dispose(bool disposing)
    {
        if (disposing) _generator.Dispose();
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
