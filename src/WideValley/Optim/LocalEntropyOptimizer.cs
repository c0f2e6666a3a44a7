using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace WideValley.Optim;

/// <summary>
/// Local entropy composed with any TorchSharp optimizer, the way SAM wraps one: each <c>step(closure)</c> runs the
/// <see cref="LocalEntropy"/> estimator, which leaves the local-entropy gradient in .grad, then lets the base optimizer
/// take its step with it. Parameter groups, learning rates (and so LR schedulers) and per-parameter state are the
/// base optimizer's; the estimator's counters and noise generator travel in the state dictionary, so
/// <c>save_state_dict</c> / <c>load_state_dict</c> continue a run identically.
/// </summary>
public class LocalEntropyOptimizer : OptimizerHelper, IOptimizerDiagnostics, IOptimizerMemory
{
    /// <summary>The estimator's buffers plus the base optimizer's state.</summary>
    public long StateElements => Estimator.BufferElements + (_base is IOptimizerMemory m ? m.StateElements : 0);

    readonly OptimizerHelper _base;

    public LocalEntropy Estimator { get; }
    public OptimizerHelper BaseOptimizer => _base;

    public LocalEntropyOptimizer(OptimizerHelper baseOptimizer, LocalEntropyOptions options)
    {
        _base = baseOptimizer;
        Estimator = new LocalEntropy(baseOptimizer.parameters(), options);
        _defaults = new OptimizerOptions { LearningRate = baseOptimizer.ParamGroups.First().LearningRate };
        _parameter_groups = new List<TorchSharp.Modules.ParamGroup>();
    }

    /// <summary>Runs the Langevin chain (exactly L closure calls) and one step of the base optimizer.</summary>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure),
                "local-entropy optimizers need a closure that draws a fresh minibatch, back-propagates and returns the loss");
        var loss = Estimator.Estimate(closure);
        _base.step();
        return loss;
    }

    public override IEnumerable<ILearningRateController> ParamGroups => _base.ParamGroups;
    public override IEnumerable<Parameter> parameters() => _base.parameters();
    public override void zero_grad() => _base.zero_grad();

    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group) =>
        throw new NotSupportedException("add parameter groups to the base optimizer before wrapping it");

    /// <summary>The base optimizer's state plus one trailing entry holding the estimator's state.</summary>
    public override StateDictionary state_dict()
    {
        var sd = _base.state_dict();
        sd.Options.Add(new ExtraStateEntry(Estimator));
        return sd;
    }

    public override void load_state_dict(StateDictionary state_dict)
    {
        var entry = ExtraStateEntry.Take(state_dict, "a local-entropy optimizer");
        try { _base.load_state_dict(state_dict); }
        finally { state_dict.Options.Add(entry); }
        ExtraStateEntry.Copy(entry.Owner, Estimator);
    }

    public IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var d = Estimator.TakeDiagnostics();
        var result = new Dictionary<string, double> { ["gamma"] = Estimator.CurrentGamma };
        if (d is null) return result;
        result["local_entropy_distance"] = d.MeanDistance;
        result["local_entropy_grad_norm"] = d.MeanLocalEntropyGradientNorm;
        result["sgd_grad_norm"] = d.MeanSgdGradientNorm;
        result["grad_cosine"] = d.MeanCosine;
        result["diagnostic_samples"] = d.Samples;
        return result;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Estimator.Dispose();
            _base.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>
/// Entropy-SGD (seed 003, Alg. 1): the local-entropy estimator with SGD, optionally with (Nesterov) momentum and
/// weight decay, as the outer optimizer. With the paper's MNIST settings: lr 1 (divided by 10 after epoch 2),
/// momentum 0.9 Nesterov in both loops, L = 20, eta' = 0.1, eps = 1e-3, gamma0 = 1e-4, gamma1 = 1e-3.
/// </summary>
public sealed class EntropySgd(IEnumerable<Parameter> parameters, double lr, LocalEntropyOptions options,
    double momentum = 0, bool nesterov = false, double weightDecay = 0)
    : LocalEntropyOptimizer(new SgdOptimizer(parameters, lr, momentum, 0, weightDecay, nesterov), options);

/// <summary>
/// Entropy-Adam (seed 003, Sec. 5.4.2): Adam fed with the local-entropy gradient instead of the back-propagated one.
/// The paper's char-LSTM run: lr 0.01 halved every epoch, beta1 = 0.5, L = 5, gamma = 0.01 fixed.
/// </summary>
public sealed class EntropyAdam(IEnumerable<Parameter> parameters, double lr, LocalEntropyOptions options,
    double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
    : LocalEntropyOptimizer(new AdamOptimizer(parameters, lr, beta1, beta2, epsilon, weightDecay), options);
