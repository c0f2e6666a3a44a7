using TorchSharp;
using TorchSharp.Modules;
using WideValley.Distributed;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace WideValley.Optim;

/// <summary>
/// The elastic coupling rho_t of Parle and Elastic-SGD: rho_t = min(rho0 (1 + growth)^t, rhoMax), with t the outer
/// steps taken so far (the authors' Parle code grows its coupling geometrically per outer step and caps it).
/// </summary>
/// <param name="Rho0">rho at t = 0 (0 switches the coupling off).</param>
/// <param name="Growth">Relative growth per outer step (0 = constant rho).</param>
/// <param name="Max">The cap.</param>
public sealed record ElasticSchedule(double Rho0, double Growth, double Max)
{
    /// <summary>rho at outer step <paramref name="t"/>.</summary>
    public double Rho(long t) => Rho0 == 0 ? 0 : Math.Min(Rho0 * Math.Pow(1 + Growth, t), Max);
}

/// <summary>
/// A scope schedule capped at <paramref name="Max"/>: gamma(t) = min(inner(t), max), as the authors' Parle code caps
/// its inner coupling (g0max). Built by <see cref="Parle"/> for its estimator; not a form of the command line's
/// <c>--scoping-schedule</c> (the cap is Parle's <see cref="ParleOptions.GammaMax"/>).
/// </summary>
internal sealed record CappedScope(ScopeSchedule Inner, double Max) : ScopeSchedule
{
    public override double Gamma(long t) => Math.Min(Inner.Gamma(t), Max);

    public override string Spec => $"{Inner.Spec} (capped at {F(Max)})";
}

/// <summary>
/// What Parle and Elastic-SGD share: one persistent flat buffer for the reference r = mean_a x^a, the one allreduce
/// per outer step that fills it, the elastic force rho_t (x^a - r) added to the gradient, the outer-step counter t
/// that drives rho_t, and the reference swapped into the parameters for evaluation.
/// </summary>
internal sealed class ElasticCoupling : IStateOwner, IDisposable
{
    readonly Parameter[] _params;
    readonly FlatBuffer _reference;
    bool _referenceInUse;

    public ElasticCoupling(IEnumerable<Parameter> parameters, ElasticSchedule schedule, ICollectives collectives)
    {
        _params = [.. parameters.Where(p => p.requires_grad)];
        if (_params.Length == 0) throw new ArgumentException("no trainable parameters to couple");
        Schedule = schedule;
        Collectives = collectives;
        _reference = FlatBuffer.LayoutOf(_params);
        CollectiveTensors.Validate(_reference.Flat, "the elastic coupling's reference buffer");
    }

    public ElasticSchedule Schedule { get; }
    public ICollectives Collectives { get; }
    /// <summary>t: outer steps taken (drives rho_t; survives checkpoints).</summary>
    public long Steps { get; set; }
    public double CurrentRho => Schedule.Rho(Steps);
    public long BufferElements => _reference.ElementCount;

    /// <summary>
    /// One allreduce of this replica's weights into the reference buffer (r = mean_a x^a), then .grad += rho_t (x - r)
    /// for every parameter. Computed as .grad - rho_t (r - x), so that with r = x (one replica) .grad is unchanged bit
    /// for bit. A parameter without a gradient gets the elastic force alone.
    /// </summary>
    public void AddElasticForce()
    {
        if (_referenceInUse) throw new InvalidOperationException("an optimizer step was taken while the replicas' reference is in the parameters (inside UseReference); dispose that scope first");
        var rho = CurrentRho;
        using var noGrad = no_grad();
        _reference.CopyFrom(_params);
        Collectives.AllReduceAverage(_reference.Flat);
        if (rho == 0) return;
        var views = _reference.Views;
        for (var i = 0; i < _params.Length; i++)
        {
            var difference = views[i].sub_(_params[i]); // r - x, in the reference buffer (refilled next step)
            using var grad = _params[i].grad;
            if (grad is null)
            {
                using var force = difference.mul(-rho);
                _params[i].grad = force;
            }
            else grad.AddScaled_(difference, -rho);
        }
    }

    /// <summary>Swaps the replicas' mean into the parameters until disposed; see <see cref="IReplicaOptimizer.UseReference"/>.</summary>
    public IDisposable UseReference()
    {
        if (_referenceInUse) throw new InvalidOperationException("the replicas' reference is already in the parameters (UseReference scopes do not nest)");
        var own = FlatBuffer.LayoutOf(_params);
        try
        {
            own.CopyFrom(_params);
            _reference.CopyFrom(_params);
            Collectives.AllReduceAverage(_reference.Flat);
            _reference.CopyTo(_params);
        }
        catch
        {
            own.CopyTo(_params);
            own.Dispose();
            throw;
        }
        _referenceInUse = true;
        return new ReferenceScope(this, own);
    }

    sealed class ReferenceScope(ElasticCoupling owner, FlatBuffer own) : IDisposable
    {
        bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            own.CopyTo(owner._params);
            own.Dispose();
            owner._referenceInUse = false;
        }
    }

    const long StateVersion = 1;

    /// <summary>t, and the rank and world size it was written on (a replica's state belongs to its rank).</summary>
    public void Save(BinaryWriter writer)
    {
        writer.Write(StateVersion);
        writer.Write(Steps);
        writer.Write(Collectives.Rank);
        writer.Write(Collectives.Size);
    }

    public void Load(BinaryReader reader)
    {
        var version = reader.ReadInt64();
        if (version != StateVersion)
            throw new InvalidDataException($"elastic-coupling state version {version} is not one this WideValley reads ({StateVersion})");
        var steps = reader.ReadInt64();
        var rank = reader.ReadInt32();
        var size = reader.ReadInt32();
        if (steps < 0) throw new InvalidDataException($"elastic-coupling state: the outer-step count is {steps}, expected zero or more");
        if (rank != Collectives.Rank || size != Collectives.Size)
            throw new InvalidDataException(
                $"this replica optimizer's state was written by rank {rank} of {size}, but it is being loaded on rank {Collectives.Rank} of " +
                $"{Collectives.Size}: each rank must load its own replica's state, with the same number of ranks");
        Steps = steps;
    }

    public void Dispose() => _reference.Dispose();
}

/// <summary>
/// Parle (Chaudhari et al., arXiv 1707.00424): n replicas of the network, each running Entropy-SGD, tied to their
/// mean by an elastic force whose strength rho_t grows over training. Each rank holds one replica; an outer step is
/// <code>
///   (Entropy-SGD's estimator)  L closure calls of Langevin dynamics at scope gamma_t; .grad = x^a - mu^a
///   r = mean_b x^b                   // ONE allreduce of one flat buffer (ICollectives.AllReduceAverage)
///   .grad = .grad + rho_t (x^a - r)  // the elastic force
///   x^a = x^a - lr . SGD(.grad)      // the outer SGD step, (Nesterov) momentum and weight decay as set
///   t = t + 1                        // gamma_t = min(gamma(t), gammaMax), rho_t = min(rho0 (1 + growth)^t, rhoMax)
/// </code>
/// so the replicas communicate once per L minibatches. With one rank r = x^a and the force vanishes: Parle on one
/// process is Entropy-SGD, bit for bit; with rho = 0 every replica follows its own Entropy-SGD trajectory. The model
/// the run is judged by is the reference r (<see cref="UseReference"/>). The state dictionary carries the estimator's
/// state, the outer SGD's momentum and t, so a checkpoint of each rank continues identically (docs/parle.md).
/// </summary>
public sealed class Parle : LocalEntropyOptimizer, IReplicaOptimizer, IMomentum, IOptimizerDiagnostics, IOptimizerMemory
{
    readonly ElasticCoupling _coupling;

    /// <summary>Parle over <paramref name="parameters"/> as one group.</summary>
    /// <param name="parameters">This rank's replica.</param>
    /// <param name="lr">The outer learning rate.</param>
    /// <param name="localEntropy">The estimator's settings (its scope is capped at <paramref name="gammaMax"/>).</param>
    /// <param name="rho">The elastic coupling's schedule.</param>
    /// <param name="collectives">The ranks the replicas live on (null = this process alone).</param>
    /// <param name="gammaMax">Cap on the scope gamma(t) (infinity = no cap).</param>
    /// <param name="momentum">Outer momentum.</param>
    /// <param name="nesterov">Nesterov outer momentum.</param>
    /// <param name="weightDecay">L2 weight decay of the outer step.</param>
    public Parle(IEnumerable<Parameter> parameters, double lr, LocalEntropyOptions localEntropy, ElasticSchedule rho,
        ICollectives? collectives = null, double gammaMax = double.PositiveInfinity, double momentum = 0, bool nesterov = false, double weightDecay = 0)
        : this(parameters.ToList(), lr, localEntropy, rho, collectives, gammaMax, momentum, nesterov, weightDecay)
    {
    }

    Parle(List<Parameter> parameters, double lr, LocalEntropyOptions localEntropy, ElasticSchedule rho,
        ICollectives? collectives, double gammaMax, double momentum, bool nesterov, double weightDecay)
        : base(new SgdOptimizer(parameters, lr, momentum, 0, weightDecay, nesterov), Capped(localEntropy, gammaMax))
    {
        ArgumentNullException.ThrowIfNull(rho);
        _coupling = new ElasticCoupling(parameters, rho, collectives ?? new SingleProcessCollectives());
    }

    static LocalEntropyOptions Capped(LocalEntropyOptions options, double gammaMax)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(gammaMax > 0)) throw new ArgumentOutOfRangeException(nameof(gammaMax), gammaMax, "the cap on gamma must be positive (infinity = no cap)");
        return double.IsPositiveInfinity(gammaMax) ? options : options with { Scope = new CappedScope(options.Scope, gammaMax) };
    }

    /// <inheritdoc/>
    public ICollectives Collectives => _coupling.Collectives;
    /// <summary>The elastic coupling's schedule.</summary>
    public ElasticSchedule Rho => _coupling.Schedule;
    /// <summary>rho_t for the next outer step.</summary>
    public double CurrentRho => _coupling.CurrentRho;
    /// <summary>t: outer steps taken (drives rho_t).</summary>
    public long OuterSteps => _coupling.Steps;

    /// <summary>The estimator's chain (exactly L closure calls), one allreduce, the elastic force, one outer SGD step.</summary>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure),
                "Parle needs a closure that draws a fresh minibatch, back-propagates and returns the loss");
        var loss = Estimator.Estimate(closure);
        _coupling.AddElasticForce();
        BaseOptimizer.step();
        _coupling.Steps++;
        return loss;
    }

    /// <inheritdoc/>
    public IDisposable UseReference() => _coupling.UseReference();

    /// <summary>Not supported: the reference buffer is laid out over the parameters given at construction.</summary>
    public override void add_param_group(ParamGroup param_group) =>
        throw new NotSupportedException("Parle lays its reference buffer out over the parameters given at construction; build a new optimizer to train more parameters");

    /// <summary>The default outer momentum (<see cref="IMomentum"/>).</summary>
    public double Momentum
    {
        get => ((SgdOptimizer)BaseOptimizer).Momentum;
        set => ((SgdOptimizer)BaseOptimizer).Momentum = value;
    }

    /// <summary>Entropy-SGD's entries, then this rank's coupling state.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(base.state_dict(), _coupling);

    /// <inheritdoc/>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, "Parle", base.load_state_dict, _coupling);

    /// <summary>Entropy-SGD's diagnostics plus the elastic coupling rho_t.</summary>
    public new IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var result = new Dictionary<string, double>(base.TakeDiagnostics()) { ["elastic_rho"] = CurrentRho };
        return result;
    }

    /// <summary>The estimator's buffers, the outer momentum and the reference buffer.</summary>
    public new long StateElements => base.StateElements + _coupling.BufferElements;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _coupling.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Elastic-SGD: Parle with L = 1, no inner coupling (gamma = 0) and no Langevin noise, i.e. EASGD's synchronous update
/// (Zhang, Choromanska and LeCun, NIPS 2015) with the centre taken as the replicas' mean at every step:
/// <code>
///   g = grad f(x^a; minibatch)      // one closure call
///   r = mean_b x^b                   // one allreduce of one flat buffer
///   x^a = x^a - lr . SGD(g + rho_t (x^a - r))   // (Nesterov) momentum and weight decay as set
///   t = t + 1
/// </code>
/// The gradient is the closure's own (Parle's estimator with L = 1, gamma = 0, no noise and mu = x' would leave
/// x - (x - g) in .grad, the same vector up to the rounding of that difference).
/// </summary>
public sealed class ElasticSgd : OptimizerHelper, IReplicaOptimizer, IMomentum, IOptimizerDiagnostics, IOptimizerMemory
{
    readonly SgdOptimizer _base;
    readonly ElasticCoupling _coupling;

    /// <summary>Elastic-SGD over <paramref name="parameters"/> as one group.</summary>
    public ElasticSgd(IEnumerable<Parameter> parameters, double lr, ElasticSchedule rho, ICollectives? collectives = null,
        double momentum = 0, bool nesterov = false, double weightDecay = 0)
    {
        ArgumentNullException.ThrowIfNull(rho);
        var list = parameters.ToList();
        _base = new SgdOptimizer(list, lr, momentum, 0, weightDecay, nesterov);
        _coupling = new ElasticCoupling(list, rho, collectives ?? new SingleProcessCollectives());
        _defaults = new OptimizerOptions { LearningRate = lr };
        _parameter_groups = new List<ParamGroup>();
    }

    /// <inheritdoc/>
    public ICollectives Collectives => _coupling.Collectives;
    /// <summary>The elastic coupling's schedule.</summary>
    public ElasticSchedule Rho => _coupling.Schedule;
    /// <summary>rho_t for the next step.</summary>
    public double CurrentRho => _coupling.CurrentRho;
    /// <summary>t: steps taken (drives rho_t).</summary>
    public long OuterSteps => _coupling.Steps;
    /// <summary>The outer SGD, which owns the parameter group and the momentum buffers.</summary>
    public OptimizerHelper BaseOptimizer => _base;

    /// <summary>One closure call, one allreduce, the elastic force, one SGD step.</summary>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        if (closure is null)
            throw new ArgumentNullException(nameof(closure),
                "Elastic-SGD needs a closure that draws a minibatch, back-propagates and returns the loss (it runs it once per step)");
        Tensor loss;
        using (enable_grad()) loss = closure();
        _coupling.AddElasticForce();
        _base.step();
        _coupling.Steps++;
        return loss;
    }

    /// <inheritdoc/>
    public IDisposable UseReference() => _coupling.UseReference();

    /// <inheritdoc/>
    public override IEnumerable<ILearningRateController> ParamGroups => _base.ParamGroups;
    /// <inheritdoc/>
    public override IEnumerable<Parameter> parameters() => _base.parameters();
    /// <inheritdoc/>
    public override void zero_grad() => _base.zero_grad();

    /// <summary>Not supported: the reference buffer is laid out over the parameters given at construction.</summary>
    public override void add_param_group(ParamGroup param_group) =>
        throw new NotSupportedException("Elastic-SGD lays its reference buffer out over the parameters given at construction; build a new optimizer to train more parameters");

    /// <summary>The default momentum (<see cref="IMomentum"/>).</summary>
    public double Momentum
    {
        get => _base.Momentum;
        set => _base.Momentum = value;
    }

    /// <summary>SGD's state, then this rank's coupling state.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(_base.state_dict(), _coupling);

    /// <inheritdoc/>
    public override void load_state_dict(StateDictionary state_dict) =>
        ExtraStateEntry.Load(state_dict, "Elastic-SGD", _base.load_state_dict, _coupling);

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> TakeDiagnostics() => new Dictionary<string, double> { ["elastic_rho"] = CurrentRho };

    /// <summary>SGD's momentum buffers and the reference buffer.</summary>
    public long StateElements => _base.StateElements + _coupling.BufferElements;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _coupling.Dispose();
            _base.Dispose();
        }
        base.Dispose(disposing);
    }
}
