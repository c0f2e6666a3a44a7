using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Optim;

/// <summary>
/// DANTE (Sinha, Kudugunta, Sankar, Chavali, Kar &amp; Balasubramanian, "DANTE: Deep AlterNations for Training nEural
/// networks", arXiv 1902.00491): alternating minimisation over the layers of a network, each layer's sub-problem (the
/// others held fixed) solved by stochastic normalised gradient descent (SNGD; Hazan, Levy &amp; Shalev-Shwartz, arXiv
/// 1507.02030). The abstract states only that; the block rule, the schedule and every default are ours
/// (docs/seed-004.md), built as an optimizer so that any trainer drives it through the usual closure.
/// </summary>
/// <remarks>
/// <code>
/// input: blocks B_1..B_n (each a set of parameters: one layer's weight and bias), step length eta (per block's group;
///        schedulers apply), eps &gt; 0, K steps per block, order forward | backward
/// t = 0
/// for each step:
///     c = floor(t / K) mod n                                 (position in the sweep)
///     b = c (forward) or n - 1 - c (backward)                (the active block)
///     g = gradient of the minibatch loss w.r.t. the parameters of B_b   (closure; the others have no gradient)
///     x_b = x_b - eta g / (|g|_2 + eps)                      (|g| over the whole block)
///     t = t + 1
/// one sweep = n K steps = every block once
/// </code>
/// Within one block's K steps this is exactly SNGD on that layer with every other layer fixed, the sub-problem the
/// paper calls quasi-convex for one layer of a one-hidden-layer network; the default K is one epoch.
/// <para>
/// Speed: while a block is inactive its parameters have <c>requires_grad</c> off (<see cref="DanteOptions.FreezeInactive"/>),
/// so backward computes no weight gradient for them and stops below the lowest active layer; the flags are set for the
/// next step at the end of each step (so a caller that runs backward itself before <see cref="step"/> gets the same
/// saving), restored to what they were on the optimizer's construction by <see cref="Dispose(bool)"/>, and re-derived from
/// the step count by <see cref="load_state_dict"/>. The block norm is read in place on the CPU (no tensor is allocated);
/// the update is one scaled add per parameter. The state dictionary holds the step count, K and the number of blocks,
/// so a checkpoint resumes bit for bit; there are no per-parameter buffers.
/// </para>
/// <para>
/// Blocks: each parameter group is one block (<see cref="Dante(IEnumerable{ParamGroup}, DanteOptions, long)"/>;
/// <see cref="BlocksOf(nn.Module)"/> makes one group per Linear/Conv module). Given a plain parameter list (what the
/// optimizer factory passes), <see cref="LayerBlocks"/> splits it: a block starts at every parameter of rank two or
/// more (a Linear or Conv weight) and takes the rank-0/1 parameters that follow it (its bias, and the affine parameters of
/// a normalisation layer after it); for networks whose modules register weight then bias in layer order, that is one
/// block per Linear/Conv module.
/// </para>
/// </remarks>
public sealed class Dante : OptimizerHelper, IStateOwner, IOptimizerDiagnostics, IOptimizerMemory
{
    readonly DanteOptions _settings;
    readonly List<Parameter[]> _blocks = [];
    // requires_grad of each block's parameters when the optimizer took them, restored on disposal.
    readonly List<bool[]> _originalRequiresGrad = [];
    int _flagsFor = -1;
    double _lastGradientNorm = double.NaN;
    bool _disposed;

    /// <summary>DANTE over <paramref name="parameters"/>, split into blocks by <see cref="LayerBlocks"/>.</summary>
    /// <param name="parameters">The parameters to train, in the network's layer order (<c>module.parameters()</c>).</param>
    /// <param name="options">The settings (validated here; <see cref="OptionsException"/> names a bad one).</param>
    /// <param name="stepsPerEpoch">The run's steps per epoch: K when <see cref="DanteOptions.StepsPerBlock"/> is 0.</param>
    public Dante(IEnumerable<Parameter> parameters, DanteOptions options, long stepsPerEpoch = 0)
        : this(LayerBlocks(parameters ?? throw new ArgumentNullException(nameof(parameters)))
            .Select(block => new ParamGroup { Parameters = block }), options, stepsPerEpoch)
    {
    }

    /// <summary>
    /// DANTE with one block per parameter group, visited in the groups' order; a group's unset learning rate takes
    /// <paramref name="options"/>'.
    /// </summary>
    /// <param name="blocks">The blocks; each must hold at least one parameter, and no parameter may appear twice.</param>
    /// <param name="options">The settings (validated here).</param>
    /// <param name="stepsPerEpoch">The run's steps per epoch: K when <see cref="DanteOptions.StepsPerBlock"/> is 0.</param>
    /// <exception cref="OptionsException">A bad setting.</exception>
    /// <exception cref="ArgumentException">No block, an empty block, a repeated parameter, or K unknown.</exception>
    public Dante(IEnumerable<ParamGroup> blocks, DanteOptions options, long stepsPerEpoch = 0)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (stepsPerEpoch < 0) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, "steps per epoch must be zero (unknown) or positive");
        if (options.StepsPerBlock == 0 && stepsPerEpoch == 0)
            throw new ArgumentException(
                "DANTE's StepsPerBlock is 0 (one epoch's steps) but the steps per epoch are unknown: set DanteOptions.StepsPerBlock, " +
                "or pass the run's steps per epoch (OptimizerContext.StepsPerEpoch)", nameof(stepsPerEpoch));
        _settings = options;
        StepsPerBlock = options.StepsPerBlock > 0 ? options.StepsPerBlock : stepsPerEpoch;
        _defaults = new OptimizerOptions { LearningRate = options.LearningRate, InitialLearningRate = options.LearningRate };
        _parameter_groups = [];
        foreach (var group in blocks) add_param_group(group);
        if (_blocks.Count == 0) throw new ArgumentException("DANTE needs at least one block of parameters", nameof(blocks));
        ApplyFlags();
    }

    /// <summary>
    /// The default split of a parameter list into layer blocks: a new block at every parameter of rank two or more; a
    /// rank-0/1 parameter joins the block before it (the first block when it comes before any weight).
    /// </summary>
    /// <exception cref="ArgumentException">No parameters.</exception>
    public static IReadOnlyList<IReadOnlyList<Parameter>> LayerBlocks(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var blocks = new List<List<Parameter>>();
        var leading = new List<Parameter>();
        foreach (var p in parameters)
        {
            if (p.dim() >= 2) blocks.Add([p]);
            else if (blocks.Count > 0) blocks[^1].Add(p);
            else leading.Add(p);
        }
        if (blocks.Count == 0)
        {
            if (leading.Count == 0) throw new ArgumentException("DANTE needs at least one parameter", nameof(parameters));
            return [leading]; // no weight matrix at all (e.g. a vector model): one block
        }
        blocks[0].InsertRange(0, leading);
        return blocks;
    }

    /// <summary>
    /// One block (parameter group) per Linear or Conv1d/2d/3d module of <paramref name="module"/>, in registration
    /// order, holding its weight and bias; the parameters of any other module (normalisation layers, or parameters
    /// registered directly) join the block before them (the first block when they come first).
    /// </summary>
    /// <exception cref="ArgumentException">The module has no parameters.</exception>
    public static IReadOnlyList<ParamGroup> BlocksOf(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var blocks = new List<List<Parameter>>();
        var leading = new List<Parameter>();
        foreach (var (_, m) in module.named_modules().Prepend(("", module)))
        {
            var own = m.named_parameters(false).Select(np => np.parameter).ToList();
            if (own.Count == 0) continue;
            if (m is Linear or Conv1d or Conv2d or Conv3d) blocks.Add(own);
            else if (blocks.Count > 0) blocks[^1].AddRange(own);
            else leading.AddRange(own);
        }
        if (blocks.Count == 0)
        {
            if (leading.Count == 0) throw new ArgumentException("the module has no parameters", nameof(module));
            blocks.Add(leading);
        }
        else blocks[0].InsertRange(0, leading);
        return blocks.Select(b => new ParamGroup { Parameters = b }).ToList();
    }

    /// <summary>The settings this optimizer was built with.</summary>
    public DanteOptions Settings => _settings;

    /// <summary>K: steps per block (the option, or the run's steps per epoch when the option is 0).</summary>
    public long StepsPerBlock { get; }

    /// <summary>The number of blocks.</summary>
    public int BlockCount => _blocks.Count;

    /// <summary>The parameters of block <paramref name="index"/> (0 = the first group / the input layer).</summary>
    public IReadOnlyList<Parameter> Block(int index) => _blocks[index];

    /// <summary>Steps taken so far (survives checkpoints).</summary>
    public long Steps { get; private set; }

    /// <summary>Completed sweeps (every block once): Steps / (K n).</summary>
    public long Sweeps => Steps / (StepsPerBlock * _blocks.Count);

    /// <summary>The block the next step moves.</summary>
    public int ActiveBlock => BlockAt(Steps);

    /// <summary>The block step <paramref name="step"/> (0-based) moves.</summary>
    public int BlockAt(long step)
    {
        var position = (int)(step / StepsPerBlock % _blocks.Count);
        return _settings.SweepOrder == DanteOrder.Forward ? position : _blocks.Count - 1 - position;
    }

    /// <summary>No per-parameter buffers: 0.</summary>
    public long StateElements => 0;

    /// <summary>Adds a group as the next block; its options must be <see cref="OptimizerOptions"/> (only the learning rate is read) or null.</summary>
    /// <exception cref="ArgumentException">An empty group, or a parameter already in a block.</exception>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ArgumentNullException.ThrowIfNull(param_group);
        var parameters = param_group.Parameters.ToArray();
        if (parameters.Length == 0) throw new ArgumentException($"DANTE block {_blocks.Count} holds no parameters");
        foreach (var p in parameters)
            if (_state.ContainsKey(p.Handle)) throw new ArgumentException("a parameter appears twice in DANTE's blocks");
        param_group.Options ??= new OptimizerOptions();
        param_group.Options.LearningRate ??= _defaults.LearningRate;
        param_group.Options.InitialLearningRate = param_group.Options.LearningRate!.Value;
        param_group.Parameters = parameters;
        _parameter_groups.Add(param_group);
        _blocks.Add(parameters);
        foreach (var p in parameters) _state[p.Handle] = new NoState(p);
        _originalRequiresGrad.Add(parameters.Select(p => p.requires_grad).ToArray());
        _flagsFor = -1;
        if (_blocks.Count > 1) ApplyFlags();
    }

    /// <summary>Sets every gradient to None (PyTorch 2's default); inactive blocks have none anyway.</summary>
    public override void zero_grad()
    {
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
                p.grad = null;
    }

    /// <summary>
    /// One DANTE step (see the class remarks): evaluates <paramref name="closure"/> (if given) with gradients enabled and
    /// moves the active block by eta along its normalised gradient; then the step count advances and, at a block
    /// boundary, the next block's parameters get their gradients back and the old ones lose theirs. If the closure
    /// throws, nothing changes.
    /// </summary>
    /// <returns>The closure's loss, or null without a closure.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ApplyFlags(); // a no-op unless RestoreRequiresGrad ran since the last step
        Tensor? loss = null;
        if (closure is not null)
            using (enable_grad()) loss = closure();
        var active = ActiveBlock;
        var block = _blocks[active];
        var lr = _parameter_groups[active].Options.LearningRate!.Value;
        using (no_grad())
        {
            double squares = 0;
            var any = false;
            foreach (var p in block)
            {
                using var g = p.grad;
                if (g is null) continue;
                any = true;
                squares += SquaredNorm(g);
            }
            var norm = Math.Sqrt(squares);
            _lastGradientNorm = any ? norm : double.NaN;
            if (any)
            {
                var scale = lr / (norm + _settings.NormEpsilon);
                foreach (var p in block)
                {
                    using var g = p.grad;
                    if (g is null || p.numel() == 0) continue;
                    p.AddScaled_(g, -scale);
                }
            }
        }
        Steps++;
        ApplyFlags();
        return loss!;
    }

    /// <summary>|g|^2, read in place for contiguous CPU float32/float64 tensors (no tensor is allocated), else by libtorch.</summary>
    static double SquaredNorm(Tensor g)
    {
        if (g.numel() == 0) return 0;
        if (g.device_type == DeviceType.CPU && g.is_contiguous() && g.dtype is ScalarType.Float32 or ScalarType.Float64)
        {
            double sum = 0;
            if (g.dtype == ScalarType.Float32)
                foreach (var e in MemoryMarshal.Cast<byte, float>(g.bytes)) sum += (double)e * e;
            else
                foreach (var e in MemoryMarshal.Cast<byte, double>(g.bytes)) sum += e * e;
            return sum;
        }
        using var n = g.norm();
        var x = n.ToDouble();
        return x * x;
    }

    /// <summary>requires_grad on for the active block (as it was originally) and off for the others; nothing when freezing is off.</summary>
    void ApplyFlags()
    {
        if (!_settings.FreezeInactive || _blocks.Count == 0) return;
        var active = ActiveBlock;
        if (_flagsFor == active) return;
        for (var b = 0; b < _blocks.Count; b++)
            for (var i = 0; i < _blocks[b].Length; i++)
            {
                var p = _blocks[b][i];
                var wanted = b == active && _originalRequiresGrad[b][i];
                if (p.requires_grad != wanted) p.requires_grad = wanted;
            }
        _flagsFor = active;
    }

    /// <summary>
    /// Puts every parameter's <c>requires_grad</c> back as it was when the optimizer took it (parameters already disposed
    /// are skipped); the next <see cref="step"/> turns the inactive blocks off again before its closure runs.
    /// </summary>
    public void RestoreRequiresGrad()
    {
        for (var b = 0; b < _blocks.Count; b++)
            for (var i = 0; i < _blocks[b].Length; i++)
            {
                var p = _blocks[b][i];
                if (p.IsInvalid) continue;
                var original = _originalRequiresGrad[b][i];
                if (p.requires_grad != original) p.requires_grad = original;
            }
        _flagsFor = -1;
    }

    /// <summary>TorchSharp's state dictionary (the groups' learning rates) plus an entry with the step count, K and the block count.</summary>
    public override StateDictionary state_dict() => ExtraStateEntry.Appended(base.state_dict(), this);

    /// <summary>Restores a dictionary from <see cref="state_dict"/>; the gradient flags follow the restored step count.</summary>
    public override void load_state_dict(StateDictionary state_dict)
    {
        ExtraStateEntry.Load(state_dict, nameof(Dante), base.load_state_dict, this);
        _flagsFor = -1;
        ApplyFlags();
    }

    /// <summary>Layout of the extra state.</summary>
    const long StateVersion = 1;

    void IStateOwner.Save(BinaryWriter writer)
    {
        writer.Write(-StateVersion);
        writer.Write(Steps);
        writer.Write(StepsPerBlock);
        writer.Write(_blocks.Count);
    }

    void IStateOwner.Load(BinaryReader reader)
    {
        var version = -reader.ReadInt64();
        if (version < 1 || version > StateVersion)
            throw new InvalidDataException($"DANTE state version {version} is not one this WideValley reads (1 to {StateVersion})");
        var steps = reader.ReadInt64();
        var stepsPerBlock = reader.ReadInt64();
        var blocks = reader.ReadInt32();
        if (steps < 0) throw new InvalidDataException($"DANTE state holds a negative step count ({steps})");
        if (stepsPerBlock != StepsPerBlock)
            throw new InvalidDataException($"DANTE state was saved with {stepsPerBlock} steps per block; this optimizer has {StepsPerBlock}");
        if (blocks != _blocks.Count)
            throw new InvalidDataException($"DANTE state was saved with {blocks} blocks; this optimizer has {_blocks.Count}");
        Steps = steps;
        _flagsFor = -1;
        ApplyFlags();
    }

    /// <summary>
    /// The block the next step moves (dante_active_block), completed sweeps (dante_sweeps), the steps taken
    /// (dante_steps) and the last step's block-gradient norm (dante_gradient_norm; left out before the first step).
    /// </summary>
    public IReadOnlyDictionary<string, double> TakeDiagnostics()
    {
        var result = new Dictionary<string, double>
        {
            ["dante_active_block"] = ActiveBlock,
            ["dante_sweeps"] = Sweeps,
            ["dante_steps"] = Steps,
        };
        if (double.IsFinite(_lastGradientNorm)) result["dante_gradient_norm"] = _lastGradientNorm;
        return result;
    }

    /// <summary>Gives every parameter its original <c>requires_grad</c> back, then frees the base optimizer's resources.</summary>
    protected override void Dispose(bool disposing)
    {
        // Options refused by the constructor throw before the state table is used; the finalizer must not touch it.
        if (_state is null || _disposed) return;
        if (disposing)
        {
            RestoreRequiresGrad();
            _state.Clear();
            _disposed = true;
        }
        base.Dispose(disposing);
    }

    /// <summary>DANTE keeps nothing per parameter; TorchSharp's state dictionary still wants an entry for each.</summary>
    sealed class NoState(Parameter parameter) : OptimizerState(parameter)
    {
        public override void SaveStateDict(BinaryWriter writer) { }
        public override void LoadStateDict(BinaryReader reader) { }
        public override void LoadStateDict(OptimizerState source) { }
        public override void Initialize(OptimizerOptions options) { }
        public override void to(Device device) { }
    }
}
