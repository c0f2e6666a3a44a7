using TorchSharp;
using TorchSharp.Modules;
using WideValley.Landscape;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>How a <see cref="ModuleProblem"/> measures points and trains beads.</summary>
public sealed record ModuleProblemOptions
{
    /// <summary>Default of <see cref="CheckEvery"/>.</summary>
    public const int DefaultCheckEvery = 100;
    /// <summary>Default of <see cref="MaxSteps"/>.</summary>
    public const long DefaultMaxSteps = 10_000;

    /// <summary>
    /// Builds a fresh optimizer over the model's trainable parameters for each bead (so no state carries over from one
    /// bead to the next). The authors' MNIST script trains beads with Adam at lr 1e-4 (<see cref="Adam"/>).
    /// </summary>
    public required Func<IEnumerable<Parameter>, optim.Optimizer> OptimizerFactory { get; init; }

    /// <summary>
    /// The split every measure is taken on, including the level checks while a bead trains. Default: the test set, as
    /// the authors' scripts do (their thresholds and interpolated losses are test-set quantities).
    /// </summary>
    public EvaluationSplit Split { get; init; } = EvaluationSplit.Test;

    /// <summary>Optimizer steps between two measures of the level metric while a bead trains (at least 1).</summary>
    public int CheckEvery { get; init; } = DefaultCheckEvery;

    /// <summary>Most optimizer steps one bead may take before training stops with the target not reached (at least 1).</summary>
    public long MaxSteps { get; init; } = DefaultMaxSteps;

    /// <summary>
    /// Training minibatches fed to recompute BatchNorm statistics before each measure (0 = one full pass over the
    /// training set, as the trainer's end-of-epoch recalibration). Ignored for models without BatchNorm.
    /// </summary>
    public int BatchNormMinibatches { get; init; }

    /// <summary>Gradient-norm clip while training a bead (0 = off; the authors' PTB script clips at 5).</summary>
    public double ClipGradNorm { get; init; }

    /// <summary>An <see cref="OptimizerFactory"/> for Adam with the given learning rate (default 1e-4, the authors' MNIST beads).</summary>
    public static Func<IEnumerable<Parameter>, optim.Optimizer> Adam(double learningRate = 1e-4)
    {
        if (!(double.IsFinite(learningRate) && learningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "the learning rate must be a positive finite number");
        return parameters => optim.Adam(parameters, learningRate);
    }
}

/// <summary>
/// The connectivity problem of a TorchSharp model with an <see cref="ITrainingTask"/> (a classifier or a language model):
/// points are flat vectors of the model's trainable parameters, a point is measured by loading it into the model,
/// recomputing BatchNorm statistics and evaluating on <see cref="ModuleProblemOptions.Split"/>, beads are trained with
/// the task's minibatches.
/// </summary>
/// <remarks>
/// <para>Flat layout: every parameter with <c>requires_grad</c>, in <c>named_parameters()</c> order (registration order,
/// depth first: the order of <c>state_dict()</c> and of PyTorch), each flattened in row-major order; see
/// <see cref="Parameters"/>. Buffers (BatchNorm running statistics) are not part of a point: they are recomputed.</para>
/// <para>The model is shared state: after <see cref="Measure"/>, <see cref="TrainBead"/>,
/// <see cref="StochasticLossAndGradient"/> or <see cref="Load"/> its parameters hold the last point loaded or trained;
/// nothing is restored implicitly. Keep <see cref="CurrentPoint"/> beforehand if the caller's weights matter. Its
/// train/eval flag is restored by every call.</para>
/// <para>Language models carry their recurrent state across training minibatches; after a new point is loaded the first
/// minibatch still starts from the state the previous point left (detached, so no gradient flows into it).</para>
/// <para>Not thread-safe: one model, one task.</para>
/// </remarks>
public sealed class ModuleProblem : IConnectivityProblem, IDisposable
{
    private readonly record struct Block(Parameter Parameter, long Offset, long Count, long[] Shape);

    private readonly ITrainingTask task;
    private readonly bool ownsTask;
    private readonly Block[] blocks;
    private readonly Parameter[] parameters;
    private readonly Tensor? weightMask;
    private bool disposed;

    /// <summary>Wraps <paramref name="task"/>'s model. Checks the options and the model's parameters.</summary>
    /// <param name="task">The model and its data; its training stream is advanced by bead training and stochastic gradients.</param>
    /// <param name="options">Optimizer, evaluation split and training budget.</param>
    /// <param name="ownsTask">Dispose <paramref name="task"/> with this problem.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the message names it).</exception>
    /// <exception cref="ArgumentException">The model has no trainable parameters, or they differ in element type or device,
    /// or the validation split is asked for but the task has none.</exception>
    public ModuleProblem(ITrainingTask task, ModuleProblemOptions options, bool ownsTask = false)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(options);
        if (options.OptimizerFactory is null)
            throw new ArgumentException("ModuleProblemOptions.OptimizerFactory is null; give a function that builds an optimizer over the parameters (e.g. ModuleProblemOptions.Adam(1e-4)).", nameof(options));
        if (options.CheckEvery < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.CheckEvery, $"ModuleProblemOptions.CheckEvery must be at least 1 (optimizer steps between level checks); got {options.CheckEvery}.");
        if (options.MaxSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxSteps, $"ModuleProblemOptions.MaxSteps must be at least 1 (the step budget of one bead); got {options.MaxSteps}.");
        if (options.BatchNormMinibatches < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.BatchNormMinibatches, $"ModuleProblemOptions.BatchNormMinibatches must be 0 (one full pass) or positive; got {options.BatchNormMinibatches}.");
        if (!(double.IsFinite(options.ClipGradNorm) && options.ClipGradNorm >= 0))
            throw new ArgumentOutOfRangeException(nameof(options), options.ClipGradNorm, $"ModuleProblemOptions.ClipGradNorm must be 0 (off) or a positive finite norm; got {options.ClipGradNorm}.");
        if (!Enum.IsDefined(options.Split))
            throw new ArgumentOutOfRangeException(nameof(options), options.Split, "ModuleProblemOptions.Split is not a known split.");
        if (options.Split == EvaluationSplit.Validation && !task.HasValidation)
            throw new ArgumentException("ModuleProblemOptions.Split is Validation but the task's data has no validation split; use Test or Train.", nameof(options));

        TorchRuntime.EnsureLoadable();
        var named = task.Model.named_parameters().Where(np => np.parameter.requires_grad).ToArray();
        if (named.Length == 0)
            throw new ArgumentException($"the model ({task.Model.GetType().Name}) has no trainable parameters: there is no parameter space to connect points in.", nameof(task));
        var first = named[0].parameter;
        Dtype = first.dtype;
        Device = first.device;
        var list = new List<Block>();
        var signatures = new List<ParameterSignature>();
        long offset = 0;
        foreach (var (name, p) in named)
        {
            if (p.dtype != Dtype)
                throw new ArgumentException($"parameter '{name}' is {p.dtype} but '{named[0].name}' is {Dtype}; a flat parameter vector needs one element type (convert the model with .to(dtype)).", nameof(task));
            if (!p.IsOn(Device))
                throw new ArgumentException($"parameter '{name}' is on {p.device} but '{named[0].name}' is on {Device}; a flat parameter vector needs one device.", nameof(task));
            list.Add(new Block(p, offset, p.numel(), p.shape));
            signatures.Add(new ParameterSignature(name, p.shape, p.dtype));
            offset += p.numel();
        }
        blocks = list.ToArray();
        parameters = named.Select(np => np.parameter).ToArray();
        Parameters = signatures;
        Dimension = offset;
        HasBatchNorm = BatchNormRecalibration.BatchNormLayers(task.Model).Count > 0;
        weightMask = BuildWeightMask();

        this.task = task;
        this.ownsTask = ownsTask;
        Options = options;
    }

    /// <summary>The model and data.</summary>
    public ITrainingTask Task => task;

    /// <summary>The options in effect.</summary>
    public ModuleProblemOptions Options { get; }

    /// <summary>The flat layout: the trainable parameters in the order their entries appear in a point.</summary>
    public IReadOnlyList<ParameterSignature> Parameters { get; }

    /// <summary>Whether the model has BatchNorm layers (their statistics are recomputed before every measure).</summary>
    public bool HasBatchNorm { get; }

    /// <inheritdoc/>
    public long Dimension { get; }

    /// <inheritdoc/>
    public ScalarType Dtype { get; }

    /// <inheritdoc/>
    public Device Device { get; }

    /// <summary>
    /// 1 on the entries of weight parameters, 0 elsewhere; null when every parameter is a weight. The rule is
    /// <see cref="IsWeight"/>. Owned by the problem (disposed with it).
    /// </summary>
    public Tensor? WeightMask => weightMask;

    /// <summary>
    /// Whether a parameter counts as a weight for the weights-only normalised length: its name's last dotted part starts
    /// with "weight" (Linear and Conv "weight", LSTM "weight_ih_l0" / "weight_hh_l0", Embedding "weight") and it has at
    /// least two dimensions. That leaves out biases and the one-dimensional scales of BatchNorm and LayerNorm: the
    /// authors' SpringNorm sums weight matrices and kernels only (their networks have neither normalisation layers nor,
    /// for the polynomial toys, biases), so their "weights" are the multiplicative matrices.
    /// </summary>
    /// <param name="name">The dotted parameter name.</param>
    /// <param name="shape">The parameter's shape.</param>
    public static bool IsWeight(string name, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        var last = name[(name.LastIndexOf('.') + 1)..];
        return last.StartsWith("weight", StringComparison.Ordinal) && shape.Count >= 2;
    }

    private Tensor? BuildWeightMask()
    {
        if (Parameters.All(p => IsWeight(p.Name, p.Shape))) return null;
        using var scope = NewDisposeScope();
        var mask = zeros(Dimension, Dtype, Device);
        for (var i = 0; i < blocks.Length; i++)
            if (IsWeight(Parameters[i].Name, blocks[i].Shape))
                mask.narrow(0, blocks[i].Offset, blocks[i].Count).fill_(1);
        return mask.DetachFromDisposeScope();
    }

    /// <summary>The model's current trainable parameters as a new flat vector (the caller owns it).</summary>
    public Tensor CurrentPoint()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var flat = empty(Dimension, Dtype, Device);
        foreach (var b in blocks) flat.narrow(0, b.Offset, b.Count).view(b.Shape).copy_(b.Parameter);
        return flat.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The trainable parameters of another model of the same architecture (e.g. the second end point) as a new flat
    /// vector in this problem's layout.
    /// </summary>
    /// <param name="model">The model to read.</param>
    /// <param name="modelName">How error messages call <paramref name="model"/>.</param>
    /// <exception cref="ArgumentException">The architectures differ; the message names the first differing parameter.</exception>
    public Tensor PointOf(nn.Module model, string modelName = "B")
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(model);
        var difference = ParameterCompatibility.FirstDifference(Parameters, ParameterSignature.Of(model), "A", modelName);
        if (difference is not null)
            throw new ArgumentException($"{difference.Message}; a path needs two models of the same architecture.", nameof(model));
        var others = model.named_parameters().Where(np => np.parameter.requires_grad).Select(np => np.parameter).ToArray();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var flat = empty(Dimension, Dtype, Device);
        for (var i = 0; i < blocks.Length; i++)
            flat.narrow(0, blocks[i].Offset, blocks[i].Count).view(blocks[i].Shape).copy_(others[i]);
        return flat.MoveToOuterDisposeScope();
    }

    /// <summary>Copies <paramref name="point"/> into the model's parameters (the point itself is neither changed nor kept).</summary>
    /// <exception cref="ArgumentException"><paramref name="point"/> is not a floating vector of length <see cref="Dimension"/>.</exception>
    public void Load(Tensor point)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        CheckPoint(point, nameof(point));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var source = point.dtype == Dtype && point.IsOn(Device) ? point : point.to(Dtype, Device);
        foreach (var b in blocks) b.Parameter.copy_(source.narrow(0, b.Offset, b.Count).view(b.Shape));
    }

    private void CheckPoint(Tensor point, string argument)
    {
        ArgumentNullException.ThrowIfNull(point, argument);
        if (point.dim() != 1 || point.shape[0] != Dimension)
            throw new ArgumentException($"a point of this problem is a vector of {Dimension:N0} parameters; got shape [{string.Join(", ", point.shape)}].", argument);
        if (!point.is_floating_point())
            throw new ArgumentException($"a point must be floating point (the model is {Dtype}); got {point.dtype}.", argument);
    }

    /// <summary>
    /// Loads <paramref name="point"/>, recomputes BatchNorm statistics when the model has BatchNorm
    /// (<see cref="ModuleProblemOptions.BatchNormMinibatches"/>), and evaluates on <see cref="ModuleProblemOptions.Split"/>
    /// in eval mode: loss, error in percent, and perplexity for language models (their error is the next-token error).
    /// Deterministic. The model keeps the point (and the recomputed statistics).
    /// </summary>
    public PointMeasure Measure(Tensor point)
    {
        Load(point);
        return MeasureLoaded();
    }

    private PointMeasure MeasureLoaded()
    {
        // Catches the tensors the task creates outside its own per-batch scopes (the batch views of its iterators), so
        // that they are freed now instead of by the finalizer.
        using var scope = NewDisposeScope();
        if (HasBatchNorm) BatchNormRecalibration.Recalibrate(task, Options.BatchNormMinibatches);
        var evaluation = task.Evaluate(Options.Split);
        return new PointMeasure(evaluation.Loss, evaluation.ErrorPercent, task.IsLanguageModel ? evaluation.Perplexity : null);
    }

    /// <summary>
    /// Loads <paramref name="start"/> and trains it with a fresh optimizer from <see cref="ModuleProblemOptions.OptimizerFactory"/>
    /// on the task's minibatches (train mode: dropout on, as in training), measuring <paramref name="metric"/> first at the
    /// start and then every <see cref="ModuleProblemOptions.CheckEvery"/> steps, until it is at or below
    /// <paramref name="target"/> or <see cref="ModuleProblemOptions.MaxSteps"/> steps are taken. A start already at the
    /// level returns after 0 steps. The model keeps the trained point; its parameters' <c>.grad</c> are left unset.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="metric"/> is not measured by this model (perplexity of a classifier),
    /// or <paramref name="target"/> is not a finite number.</exception>
    /// <exception cref="TrainingDivergedException">A minibatch loss was not finite; the message names the step.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> fired (checked between steps); the model
    /// holds the partly trained point.</exception>
    public BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (!double.IsFinite(target))
            throw new ArgumentException($"the bead target must be a finite number; got {target}.", nameof(target));
        if (metric == LevelMetric.Perplexity && !task.IsLanguageModel)
            throw new ArgumentException("the level metric is perplexity but the model is not a language model; use Loss or ErrorPercent.", nameof(metric));
        if (!Enum.IsDefined(metric))
            throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown level metric");
        cancellation.ThrowIfCancellationRequested();
        // Everything but the returned point is freed on return: the optimizer's wrappers and state included.
        using var beadScope = NewDisposeScope();
        Load(start);
        var measure = MeasureLoaded();
        long steps = 0;
        if (measure.Value(metric) <= target) return Result(true);

        var model = task.Model;
        var wasTraining = model.training;
        var optimizer = Options.OptimizerFactory(parameters)
            ?? throw new InvalidOperationException("ModuleProblemOptions.OptimizerFactory returned null.");
        try
        {
            while (steps < Options.MaxSteps)
            {
                model.train();
                var stop = Math.Min(Options.MaxSteps, steps + Options.CheckEvery);
                while (steps < stop)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var step = steps + 1;
                    using (var scope = NewDisposeScope())
                    {
                        optimizer.step(() =>
                        {
                            optimizer.zero_grad();
                            var minibatch = task.NextTrainingLoss();
                            if (!double.IsFinite(minibatch.Value))
                                throw new TrainingDivergedException(
                                    $"bead training diverged at step {step} of at most {Options.MaxSteps}: the minibatch loss is {minibatch.Value}");
                            minibatch.Loss.backward();
                            if (Options.ClipGradNorm > 0) nn.utils.clip_grad_norm_(parameters, Options.ClipGradNorm);
                            return minibatch.Loss;
                        });
                    }
                    steps = step;
                }
                measure = MeasureLoaded();
                if (measure.Value(metric) <= target) return Result(true);
            }
            return Result(false);
        }
        finally
        {
            // Gradients dropped (as zero_grad(set_to_none=True)): a bead leaves no model-sized .grad tensors behind.
            foreach (var p in parameters) p.grad = null;
            (optimizer as IDisposable)?.Dispose();
            model.train(wasTraining);
        }

        BeadTraining Result(bool reached) => new(CurrentPoint().MoveToOuterDisposeScope(), measure, reached, steps);
    }

    /// <summary>
    /// Loads <paramref name="point"/> and computes the loss of the task's next training minibatch in train mode (dropout
    /// on, BatchNorm on batch statistics, as in training; BatchNorm running statistics are updated as a training step
    /// would, and recomputed by the next <see cref="Measure"/>), and its gradient with respect to the point: a new flat
    /// vector, zero for parameters the loss does not depend on. The parameters' <c>.grad</c> fields are not touched.
    /// </summary>
    public (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point)
    {
        Load(point);
        var model = task.Model;
        var wasTraining = model.training;
        try
        {
            model.train();
            using var scope = NewDisposeScope();
            var minibatch = task.NextTrainingLoss();
            var gradients = autograd.grad([minibatch.Loss], parameters, allow_unused: true);
            var flat = zeros(Dimension, Dtype, Device);
            using (no_grad())
                for (var i = 0; i < blocks.Length; i++)
                    if (gradients[i] is { IsInvalid: false } g)
                        flat.narrow(0, blocks[i].Offset, blocks[i].Count).view(blocks[i].Shape).copy_(g);
            return (minibatch.Value, flat.MoveToOuterDisposeScope());
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    /// <summary>Frees the weight mask, and the task when the problem owns it.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        weightMask?.Dispose();
        if (ownsTask) task.Dispose();
    }
}
