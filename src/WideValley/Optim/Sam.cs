using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace WideValley.Optim;

/// <summary>
/// Implemented by optimizers whose step evaluates the gradient more than once on the same minibatch (SAM and ASAM:
/// once at w, once at w + e). While <see cref="RepeatsMinibatch"/> is true, a closure call must evaluate the minibatch
/// of the step's first call again, at the current weights (with the same dropout masks), instead of drawing a fresh
/// one; the trainer's closure does this (<c>MinibatchLoss.Reevaluate</c>) and still counts the call as a gradient evaluation.
/// </summary>
public interface IMinibatchRepeatingOptimizer
{
    /// <summary>True during a closure call that must re-evaluate the step's first minibatch.</summary>
    bool RepeatsMinibatch { get; }
}

/// <summary>
/// Sharpness-aware minimisation (SAM, Foret et al., ICLR 2021) and its adaptive form (ASAM, Kwon et al., ICML 2021)
/// over any base optimizer, in the shape of davda54/sam: perturb the weights towards higher loss, take the gradient
/// there, restore the weights, and let the base optimizer step with that gradient.
/// </summary>
/// <remarks>
/// <code>
/// input: base optimizer B (its groups, learning rates, momenta, weight decay), rho &gt;= 0, adaptive, eta &gt;= 0
/// step(closure):
///     l = closure()                                  (zero_grad, forward, backward: g = grad L_B(w))
///     T = |w| + eta element-wise if adaptive, else T = 1
///     n = |T g|                                      (one norm over every parameter of every group; no gradient = 0)
///     e = rho T^2 g / n  if n &gt; 0, else e = 0       (g = 0: no perturbation)
///     w0 = copy of w; w = w + e
///     closure()                                      (the SAME minibatch, re-evaluated: g' = grad L_B(w + e))
///     w = w0                                         (copied back, bit for bit: never w - e)
///     B.step() with g' in .grad
///     return l                                       (the loss at w)
/// </code>
/// Every step calls the closure exactly twice, also when e = 0, so a step always costs two gradient evaluations and
/// the trainer counts both in effective epochs. The second call must re-evaluate the first call's minibatch: the
/// optimizer raises <see cref="RepeatsMinibatch"/> during it, which the trainer's closure honours; a closure of your own
/// must do the same (a closure that draws a fresh minibatch every call turns SAM into a different method).
/// <para>
/// BatchNorm: with <see cref="SamBatchNormStatistics.FirstPass"/> (the default) the model's buffers (running means,
/// variances, batch counts, and any other buffer a forward pass updates) are copied before the second pass and put
/// back after it, so a step leaves them as one plain forward pass at w would; this needs the model
/// (<see cref="OptimizerContext.Model"/>). With <see cref="SamBatchNormStatistics.BothPasses"/> both passes update them.
/// </para>
/// <para>
/// The perturbation e and the saved weights (and ASAM's T) live in one flat buffer with a view per parameter, made at
/// the first step (after any <see cref="add_param_group"/>): a step allocates nothing per parameter. If the second
/// closure call throws (a stop request), the weights and buffers are put back and the base optimizer has not stepped.
/// m-sharpness (a perturbation per chunk of the minibatch) needs the closure to evaluate chunks of a minibatch, which a
/// <c>Func&lt;Tensor&gt;</c> closure cannot: it is not implemented (docs/sam.md).
/// </para>
/// </remarks>
public sealed class Sam : OptimizerHelper, IStateOwner, IOptimizerDiagnostics, IOptimizerMemory, IMinibatchRepeatingOptimizer
{
    readonly OptimizerHelper _base;
    readonly nn.Module? _model;
    double _rho, _eta;
    bool _adaptive;
    SamBatchNormStatistics _batchNorm;

    // Built at the first step (and again after add_param_group).
    Parameter[]? _parameters;
    Tensor? _flat, _e, _saved, _scale;
    Tensor[] _eViews = [], _savedViews = [], _scaleViews = [];
    Tensor[]? _buffers, _savedBuffers;

    double _normSum;
    long _normCount;

    /// <summary>Wraps <paramref name="baseOptimizer"/> (its parameter groups are SAM's).</summary>
    /// <param name="baseOptimizer">Steps with the gradient at the perturbed point; owned (disposed with this optimizer).</param>
    /// <param name="rho">rho, the neighbourhood's radius (zero or positive).</param>
    /// <param name="adaptive">ASAM's element-wise scaled perturbation instead of SAM's.</param>
    /// <param name="eta">ASAM's eta in T = |w| + eta (zero or positive; unused by SAM).</param>
    /// <param name="batchNormStatistics">Which pass updates the model's buffers.</param>
    /// <param name="model">
    /// The model the parameters belong to: its buffers are kept from the second pass under
    /// <see cref="SamBatchNormStatistics.FirstPass"/> (required then; optional with <see cref="SamBatchNormStatistics.BothPasses"/>).
    /// </param>
    public Sam(OptimizerHelper baseOptimizer, double rho, bool adaptive = false, double eta = 0.01,
        SamBatchNormStatistics batchNormStatistics = SamBatchNormStatistics.FirstPass, nn.Module? model = null)
    {
        ArgumentNullException.ThrowIfNull(baseOptimizer);
        CheckSettings(rho, eta, batchNormStatistics);
        if (batchNormStatistics == SamBatchNormStatistics.FirstPass && model is null)
            throw new ArgumentException(
                "SAM with BatchNorm statistics from the first pass only needs the model, to keep its buffers from the second pass: " +
                "pass it (OptimizerContext.Model when built by the factory), or choose SamBatchNormStatistics.BothPasses", nameof(model));
        _base = baseOptimizer;
        (_rho, _adaptive, _eta, _batchNorm, _model) = (rho, adaptive, eta, batchNormStatistics, model);
        _defaults = new OptimizerOptions { LearningRate = baseOptimizer.ParamGroups.First().LearningRate };
        _parameter_groups = [];
    }

    static void CheckSettings(double rho, double eta, SamBatchNormStatistics batchNorm)
    {
        if (!(rho >= 0) || double.IsInfinity(rho)) throw new ArgumentException($"SAM's rho must be zero or positive, got {rho}", nameof(rho));
        if (!(eta >= 0) || double.IsInfinity(eta)) throw new ArgumentException($"ASAM's eta must be zero or positive, got {eta}", nameof(eta));
        if (!Enum.IsDefined(batchNorm)) throw new ArgumentException($"unknown BatchNorm choice {(int)batchNorm}", nameof(batchNorm));
    }

    /// <summary>The optimizer that steps with the gradient at the perturbed point.</summary>
    public OptimizerHelper BaseOptimizer => _base;
    /// <summary>rho, the neighbourhood's radius (survives checkpoints).</summary>
    public double Rho => _rho;
    /// <summary>True for ASAM (survives checkpoints).</summary>
    public bool Adaptive => _adaptive;
    /// <summary>ASAM's eta (survives checkpoints).</summary>
    public double Eta => _eta;
    /// <summary>Which pass updates the model's buffers (survives checkpoints).</summary>
    public SamBatchNormStatistics BatchNormStatistics => _batchNorm;
    /// <summary>Steps taken (survives checkpoints).</summary>
    public long Steps { get; private set; }
    /// <inheritdoc/>
    public bool RepeatsMinibatch { get; private set; }

    /// <summary>The flat buffer (e, the saved weights, ASAM's T) plus the base optimizer's state.</summary>
    public long StateElements => (_flat?.numel() ?? 0) + (_base is IOptimizerMemory m ? m.StateElements : 0);

    /// <inheritdoc/>
    public override IEnumerable<ILearningRateController> ParamGroups => _base.ParamGroups;
    /// <inheritdoc/>
    public override IEnumerable<Parameter> parameters() => _base.parameters();
    /// <inheritdoc/>
    public override void zero_grad() => _base.zero_grad();

    /// <summary>Adds a group to the base optimizer; the flat buffer grows to cover it at the next step.</summary>
    public override void add_param_group(ParamGroup param_group)
    {
        _base.add_param_group(param_group);
        FreeBuffers();
    }

    /// <summary>One SAM (ASAM) step; see the class remarks. The closure is called exactly twice.</summary>
    /// <param name="closure">zero_grad, forward, backward; returns the loss. The second call must re-evaluate the first call's minibatch.</param>
    /// <returns>The loss at w (the first call's).</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure),
                "SAM evaluates the gradient at w and at the perturbed point w + e: call step with a closure that back-propagates the minibatch loss and returns it");
        Tensor loss;
        using (enable_grad()) loss = closure();
        Build();
        var parameters = _parameters!;
        using (no_grad())
        {
            for (var i = 0; i < parameters.Length; i++)
            {
                var p = parameters[i];
                _savedViews[i].copy_(p);
                using var g = p.grad;
                if (g is null) _eViews[i].zero_();
                else _eViews[i].copy_(g);
            }
            if (_adaptive)
            {
                _scale!.copy_(_saved!).abs_().Shift_(_eta);
                _e!.mul_(_scale);
            }
            double norm;
            using (var n = _e!.norm()) norm = n.ToDouble();
            _normSum += norm;
            _normCount++;
            if (norm > 0 && _rho > 0)
            {
                if (_adaptive) _e.mul_(_scale!);
                _e.Scale_(_rho / norm);
                for (var i = 0; i < parameters.Length; i++) parameters[i].Accumulate_(_eViews[i]);
            }
        }
        var keepBuffers = _batchNorm == SamBatchNormStatistics.FirstPass && _buffers!.Length > 0;
        if (keepBuffers)
            using (no_grad())
                for (var i = 0; i < _buffers!.Length; i++) _savedBuffers![i].copy_(_buffers[i]);
        RepeatsMinibatch = true;
        try
        {
            using (enable_grad()) closure();
        }
        finally
        {
            RepeatsMinibatch = false;
            using (no_grad())
            {
                for (var i = 0; i < parameters.Length; i++) parameters[i].copy_(_savedViews[i]);
                if (keepBuffers)
                    for (var i = 0; i < _buffers!.Length; i++) _buffers[i].copy_(_savedBuffers![i]);
            }
        }
        _base.step();
        Steps++;
        return loss;
    }

    /// <summary>The flat buffer and its views over the base optimizer's parameters, and the model's buffers, once.</summary>
    void Build()
    {
        if (_parameters is not null) return;
        var parameters = _base.parameters().ToArray();
        if (parameters.Select(p => p.Handle).Distinct().Count() != parameters.Length)
            throw new ArgumentException("a parameter appears twice in SAM's parameter groups");
        var first = parameters.FirstOrDefault();
        if (first is not null && parameters.Any(p => p.dtype != first.dtype || p.device_type != first.device_type || p.device_index != first.device_index))
            throw new NotSupportedException(
                $"SAM keeps its perturbation in one flat buffer and needs every parameter in one dtype on one device; got " +
                string.Join(", ", parameters.Select(p => $"{p.dtype} on {p.device}").Distinct()));
        var total = parameters.Sum(p => p.numel());
        var dtype = first?.dtype ?? ScalarType.Float32;
        var device = first?.device ?? CPU;
        var slots = _adaptive ? 3 : 2;
        var flat = zeros([slots, total], dtype, device).DetachFromDisposeScope();
        _e = flat[0].DetachFromDisposeScope();
        _saved = flat[1].DetachFromDisposeScope();
        _scale = _adaptive ? flat[2].DetachFromDisposeScope() : null;
        _eViews = Views(_e, parameters);
        _savedViews = Views(_saved, parameters);
        _scaleViews = _scale is null ? [] : Views(_scale, parameters);
        _flat = flat;
        if (_batchNorm == SamBatchNormStatistics.FirstPass)
        {
            _buffers ??= _model!.buffers().Select(b => b.DetachFromDisposeScope()).ToArray();
            _savedBuffers ??= _buffers.Select(b => b.detach().clone().DetachFromDisposeScope()).ToArray();
        }
        _parameters = parameters;
    }

    static Tensor[] Views(Tensor flat, Parameter[] parameters)
    {
        var views = new Tensor[parameters.Length];
        long offset = 0;
        for (var i = 0; i < parameters.Length; i++)
        {
            var n = parameters[i].numel();
            views[i] = flat.narrow(0, offset, n).view(parameters[i].shape).DetachFromDisposeScope();
            offset += n;
        }
        return views;
    }

    void FreeBuffers()
    {
        foreach (var v in _eViews.Concat(_savedViews).Concat(_scaleViews)) v.Dispose();
        _e?.Dispose();
        _saved?.Dispose();
        _scale?.Dispose();
        _flat?.Dispose();
        (_eViews, _savedViews, _scaleViews, _e, _saved, _scale, _flat, _parameters) = ([], [], [], null, null, null, null, null);
    }

    /// <summary>The base optimizer's state dictionary plus an entry holding SAM's settings and step count.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(_base.state_dict(), this);

    /// <summary>Restores a dictionary from <see cref="state_dict"/>: the base optimizer's state, SAM's settings and step count.</summary>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, "SAM", _base.load_state_dict, this);

    const long StateVersion = 1;

    void IStateOwner.Save(BinaryWriter writer)
    {
        writer.Write(-StateVersion);
        writer.Write(Steps);
        writer.Write(_rho);
        writer.Write(_adaptive);
        writer.Write(_eta);
        writer.Write((int)_batchNorm);
    }

    void IStateOwner.Load(BinaryReader reader)
    {
        var version = -reader.ReadInt64();
        if (version < 1 || version > StateVersion)
            throw new InvalidDataException($"SAM state version {version} is not one this WideValley reads (1 to {StateVersion})");
        var steps = reader.ReadInt64();
        var rho = reader.ReadDouble();
        var adaptive = reader.ReadBoolean();
        var eta = reader.ReadDouble();
        var batchNorm = (SamBatchNormStatistics)reader.ReadInt32();
        if (steps < 0) throw new InvalidDataException($"SAM state holds a negative step count ({steps})");
        try
        {
            CheckSettings(rho, eta, batchNorm);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"SAM state holds invalid settings: {e.Message}", e);
        }
        if (batchNorm == SamBatchNormStatistics.FirstPass && _model is null)
            throw new InvalidDataException("SAM state asks for BatchNorm statistics from the first pass only, but this optimizer was built without the model");
        if (adaptive != _adaptive || batchNorm != _batchNorm) FreeBuffers(); // the flat buffer's layout follows these
        (Steps, _rho, _adaptive, _eta, _batchNorm) = (steps, rho, adaptive, eta, batchNorm);
    }

    /// <summary>
    /// sam_grad_norm: the mean of |T g| (|g| for SAM) at w over the steps since the last call; sam_steps: steps so far;
    /// then the base optimizer's own numbers, if it has any.
    /// </summary>
    public IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var result = new Dictionary<string, double>
        {
            ["sam_grad_norm"] = _normCount > 0 ? _normSum / _normCount : double.NaN,
            ["sam_steps"] = Steps,
        };
        (_normSum, _normCount) = (0, 0);
        if (_base is IOptimizerDiagnostics d)
            foreach (var (k, v) in d.TakeDiagnostics()) result.TryAdd(k, v);
        return result;
    }

    /// <summary>Frees the flat buffer and the base optimizer.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            FreeBuffers();
            if (_savedBuffers is not null) foreach (var b in _savedBuffers) b.Dispose();
            _base.Dispose();
        }
        base.Dispose(disposing);
    }
}
