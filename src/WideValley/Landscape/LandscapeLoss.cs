using TorchSharp;
using TorchSharp.Modules;
using WideValley.Distributed;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Landscape;

/// <summary>
/// The mean loss of a model over a fixed evaluation set, as a function of the selected parameters: the object every
/// landscape measurement differentiates. Owns the mode handling (BatchNorm, dropout, restoring the caller's per-module
/// train/eval flags and BatchNorm buffers), the optional copy of the model in another floating type, and the flat
/// layout of the selected parameters. With <see cref="LandscapeOptions.Collectives"/> of more than one rank, each rank
/// evaluates only its share of the batches (batch b on rank b mod K) and every product is summed over the ranks by one
/// allreduce (see <see cref="LandscapeOptions.Collectives"/>).
/// </summary>
internal sealed class LandscapeLoss : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> original;
    private readonly bool ownsWorkingModel;
    private readonly Parameter[] parameters;
    private readonly List<(Tensor Inputs, Tensor Labels, Tensor Weight, long Count)> batches = [];
    // Converted copies of the caller's batches (other type or device) are ours to dispose; the caller's are not.
    private readonly List<Tensor> ownedTensors = [];
    private readonly Func<Tensor, Tensor, Tensor> loss = (output, labels) => F.cross_entropy(output, labels);
    // The general form: (model, batch) -> mean loss over a streamed sequence of batches; null for (inputs, labels) batches.
    private readonly IStreamedLoss? streamed;
    // Batches of the streamed loss's first pass (each later pass is expected to give the same).
    private readonly int streamedBatchCount;
    // The ranks sharing the batches; null for a single process (no collectives, or a job of one), which keeps the
    // single-process code path exactly.
    private readonly ICollectives? ranks;

    public LandscapeLoss(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        LandscapeOptions? options, string where)
        : this(model, evaluationSet, options, where, ownsModel: false)
    {
    }

    public LandscapeLoss(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, LandscapeOptions? options, string where)
        : this(model, streamedLoss, options, where, ownsModel: false)
    {
    }

    private LandscapeLoss(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, LandscapeOptions? options, string where, bool ownsModel)
        : this(model, options, where, ownsModel)
    {
        ArgumentNullException.ThrowIfNull(streamedLoss);
        streamed = streamedLoss;
        long total = 0;
        var count = 0;
        foreach (var (n, _) in streamedLoss.Pass())
        {
            total += n;
            count++;
        }
        if (count == 0) throw new ArgumentException($"{where}: the streamed loss has no batches.", nameof(streamedLoss));
        SampleCount = total;
        streamedBatchCount = count;
    }

    private LandscapeLoss(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        LandscapeOptions? options, string where, bool ownsModel)
        : this(model, options, where, ownsModel)
    {
        ArgumentNullException.ThrowIfNull(evaluationSet);
        if (evaluationSet.Count == 0) throw new ArgumentException($"{where}: the evaluation set has no batches.", nameof(evaluationSet));
        long total = 0;
        for (var i = 0; i < evaluationSet.Count; i++)
        {
            var (x, y) = evaluationSet[i];
            if (x is null || y is null) throw new ArgumentException($"{where}: batch {i} has a null tensor.", nameof(evaluationSet));
            if (x.dim() == 0 || y.dim() == 0 || x.shape[0] != y.shape[0] || x.shape[0] == 0)
                throw new ArgumentException(
                    $"{where}: batch {i} has inputs ({string.Join(", ", x.shape)}) and labels ({string.Join(", ", y.shape)}); " +
                    "both need the same non-zero first dimension.", nameof(evaluationSet));
            total += x.shape[0];
        }
        SampleCount = total;
        using (no_grad())
        {
            for (var i = 0; i < evaluationSet.Count; i++)
            {
                var (x, y) = evaluationSet[i];
                var convert = x.is_floating_point() && x.dtype != Dtype || !x.IsOn(Device);
                var inputs = convert ? x.to(x.is_floating_point() ? Dtype : x.dtype, Device).DetachFromDisposeScope() : x;
                var labels = !y.IsOn(Device) ? y.to(Device).DetachFromDisposeScope() : y;
                if (convert) ownedTensors.Add(inputs);
                if (!ReferenceEquals(labels, y)) ownedTensors.Add(labels);
                var n = x.shape[0];
                batches.Add((inputs, labels, tensor((double)n / total, Dtype, Device).DetachFromDisposeScope(), n));
            }
        }
    }

    /// <summary>The model, its working copy, the compute type and the parameter layout: the part every form of loss shares.</summary>
    private LandscapeLoss(nn.Module<Tensor, Tensor> model, LandscapeOptions? options, string where, bool ownsModel)
    {
        ArgumentNullException.ThrowIfNull(model);
        Options = options ?? new LandscapeOptions();
        TorchRuntime.EnsureLoadable();
        original = model;
        var first = model.parameters().FirstOrDefault()
                    ?? throw new ArgumentException($"{where}: the model has no parameters.", nameof(model));
        var modelType = first.dtype;
        Dtype = Options.ComputeType ?? modelType;
        if (!is_floating_point(Dtype))
            throw new ArgumentException($"{where}: ComputeType must be a floating type; got {Dtype}.", nameof(options));
        Device = first.device;
        // Refused before anything is copied or measured: NaN weights give NaN everywhere, or break LAPACK later.
        FiniteChecks.RequireFiniteParameters(model, Options.Parameters.ResolveNames(model), where);
        if (Dtype != modelType)
        {
            Model = BuildCopy(model, Dtype, Options.ModelFactory, where, $"computing in {Dtype}");
            ownsWorkingModel = true;
            if (ownsModel) model.Dispose();
        }
        else
        {
            Model = model;
            ownsWorkingModel = ownsModel;
        }

        var names = Options.Parameters.ResolveNames(model);
        var byName = Model.named_parameters().ToDictionary(np => np.name, np => np.parameter);
        var blocks = new List<ParameterBlock>();
        var selected = new List<Parameter>();
        long offset = 0;
        foreach (var name in names)
        {
            var p = byName[name];
            if (!p.requires_grad)
                throw new ArgumentException($"{where}: parameter '{name}' does not require gradients (frozen); leave it out of the selection.");
            blocks.Add(new ParameterBlock(name, offset, p.numel(), p.shape));
            selected.Add(p);
            offset += p.numel();
        }
        parameters = selected.ToArray();
        Layout = new ParameterLayout(blocks);
        if (Options.Loss is not null) loss = Options.Loss;
        ranks = Options.Collectives is { Size: > 1 } shared ? shared : null;
    }

    public LandscapeOptions Options { get; }
    /// <summary>The model that is evaluated: the caller's, or the copy in <see cref="Dtype"/>.</summary>
    public nn.Module<Tensor, Tensor> Model { get; }
    public ParameterLayout Layout { get; }
    public IReadOnlyList<Parameter> Parameters => parameters;
    public ScalarType Dtype { get; }
    public Device Device { get; }
    public long SampleCount { get; }
    public int BatchCount => streamed is null ? batches.Count : streamedBatchCount;
    public long BatchSize(int index) => batches[index].Count;

    /// <summary>The ranks sharing the batches, or null for a single process.</summary>
    public ICollectives? Ranks => ranks;

    /// <summary>Whether this rank evaluates batch <paramref name="index"/>: every batch for a single process, else b mod K = rank.</summary>
    public bool IsMine(int index) => ranks is null || index % ranks.Size == ranks.Rank;

    /// <summary>The batches this rank evaluates (all of them for a single process).</summary>
    public int LocalBatchCount => Enumerable.Range(0, BatchCount).Count(IsMine);

    /// <summary>
    /// Sums <paramref name="product"/> over the ranks in place (one allreduce); nothing for a single process. A tensor
    /// the collectives cannot take as it is (not contiguous, not on the CPU) goes through one contiguous CPU copy.
    /// </summary>
    public void SumOverRanks(Tensor product)
    {
        if (ranks is null) return;
        if (product.is_contiguous() && product.device_type == DeviceType.CPU)
        {
            ranks.AllReduceSum(product);
            return;
        }
        using var staged = empty(product.shape, product.dtype, CPU);
        staged.copy_(product);
        ranks.AllReduceSum(staged);
        product.copy_(staged);
    }

    /// <summary>Sums each value over the ranks (one float64 allreduce); the values themselves for a single process.</summary>
    public double[] SumScalarsOverRanks(params double[] values)
    {
        if (ranks is null) return values;
        using var buffer = tensor(values, ScalarType.Float64);
        ranks.AllReduceSum(buffer);
        return buffer.data<double>().ToArray();
    }

    /// <summary>
    /// Sums a flat <paramref name="product"/> and the scalars <paramref name="values"/> over the ranks, in ONE allreduce
    /// when the product is float64 (the scalars ride at its end); a float32 product takes a second, float64 allreduce
    /// for the scalars, which float32 would round. Returns the summed scalars.
    /// </summary>
    public double[] SumOverRanks(Tensor product, params double[] values)
    {
        if (ranks is null) return values;
        if (product.dtype != ScalarType.Float64)
        {
            SumOverRanks(product);
            return SumScalarsOverRanks(values);
        }
        var n = product.numel();
        using var buffer = empty(n + values.Length, ScalarType.Float64, CPU);
        using (var head = buffer.narrow(0, 0, n)) head.copy_(product.reshape(-1));
        using (var tail = buffer.narrow(0, n, values.Length))
        using (var given = tensor(values, ScalarType.Float64))
            tail.copy_(given);
        ranks.AllReduceSum(buffer);
        using (var head = buffer.narrow(0, 0, n)) product.copy_(head.view(product.shape));
        using var summed = buffer.narrow(0, n, values.Length);
        return summed.data<double>().ToArray();
    }

    /// <summary>A new zero vector of the layout's length, in the working type and device.</summary>
    public Tensor NewVector() => zeros(Layout.Dimension, Dtype, Device);

    /// <summary>Converts a caller's vector to the working type and device (no copy when it already matches).</summary>
    public Tensor Conform(Tensor v, string what, string where)
    {
        Layout.CheckVector(v, what, where);
        return v.dtype == Dtype && v.IsOn(Device) ? v : v.to(Dtype, Device);
    }

    /// <summary>
    /// Runs <paramref name="body"/> with BatchNorm and dropout set as the options say and every other module in eval
    /// mode; afterwards every module gets back its own train/eval flag, and BatchNorm buffers that train mode would
    /// have updated are restored.
    /// </summary>
    public T InMode<T>(Func<T> body)
    {
        var modules = AllModules(Model);
        var flags = modules.Select(m => m.training).ToArray();
        var savedBuffers = Options.BatchNorm == BatchNormMode.BatchStatistics
            ? Model.named_buffers().Select(nb => (nb.buffer, Saved: nb.buffer.detach().clone().DetachFromDisposeScope())).ToArray()
            : [];
        try
        {
            foreach (var m in modules)
            {
                var on = m switch
                {
                    BatchNorm => Options.BatchNorm == BatchNormMode.BatchStatistics,
                    Dropout or Dropout1d or Dropout2d or Dropout3d or AlphaDropout or FeatureAlphaDropout => Options.Dropout == DropoutMode.On,
                    _ => false,
                };
                SetOwnFlag(m, on);
            }
            return body();
        }
        finally
        {
            // Parents come before their children in this list and train() recurses, so setting each module in order
            // leaves every module with exactly its own saved flag.
            for (var i = 0; i < modules.Count; i++) modules[i].train(flags[i]);
            using (no_grad())
            {
                foreach (var (buffer, saved) in savedBuffers)
                {
                    buffer.copy_(saved);
                    saved.Dispose();
                }
            }
        }
    }

    private static void SetOwnFlag(nn.Module module, bool on)
    {
        // train() recurses into children; the loop visits children later and sets them again, so only the order matters.
        if (module.training != on) module.train(on);
    }

    private static List<nn.Module> AllModules(nn.Module model)
    {
        var list = new List<nn.Module> { model };
        list.AddRange(model.modules());
        return list;
    }

    /// <summary>Weighted (n_b / N) mean loss of batch <paramref name="index"/>, with its graph; also the output.</summary>
    private (Tensor Loss, Tensor Output) WeightedBatchLoss(int index, bool weighted)
    {
        var (x, y, weight, _) = batches[index];
        var output = Model.call(x);
        var l = loss(output, y);
        if (l.dim() != 0)
            throw new ArgumentException(
                $"The loss function must return a scalar (the mean over the batch); it returned shape ({string.Join(", ", l.shape)}).");
        return (weighted ? l.mul(weight) : l, output);
    }

    /// <summary>Whether products differentiate a kept first-backward graph (see <see cref="LandscapeOptions.ReuseGradientGraph"/>).</summary>
    private bool KeepsGraph => Options.ReuseGradientGraph && Options.Dropout == DropoutMode.Off && streamed is null;

    /// <summary>
    /// One pass over a streamed loss: for each of this rank's batches, a function that evaluates its weighted (n_b / N)
    /// mean loss with its graph. Call each inside the caller's dispose scope.
    /// </summary>
    private IEnumerable<Func<Tensor>> StreamedTerms()
    {
        var index = -1;
        foreach (var (count, meanLoss) in streamed!.Pass())
        {
            // Another rank's batch: its closure is never called, so nothing of it is computed here.
            if (!IsMine(++index)) continue;
            var inverseWeight = (double)SampleCount / count;
            yield return () =>
            {
                var l = meanLoss(Model) ?? throw new InvalidOperationException("StreamedLoss: the loss function returned null.");
                if (l.dim() != 0)
                    throw new ArgumentException(
                        $"The loss function must return a scalar (the mean over the batch); it returned shape ({string.Join(", ", l.shape)}).");
                return l.DividedBy(inverseWeight);
            };
        }
    }

    /// <summary>
    /// One batch seen through the model's output, for the curvature matrices that need it (Gauss-Newton, per-sample
    /// gradients): the output with its graph, the batch's mean loss of an output, and its per-sample losses (a vector).
    /// </summary>
    /// <param name="Count">Samples in the batch.</param>
    /// <param name="Forward">The batch's output, with its graph.</param>
    /// <param name="MeanLoss">The batch's mean loss of an output.</param>
    /// <param name="SampleLosses">The per-sample losses of an output (a vector).</param>
    /// <param name="SampleLoss">
    /// Sample s's loss from a forward pass of that sample alone ((inputs, labels) batches only; null for a streamed loss,
    /// whose batches the operator cannot split).
    /// </param>
    private readonly record struct OutputTerm(long Count, Func<Tensor> Forward, Func<Tensor, Tensor> MeanLoss, Func<Tensor, Tensor> SampleLosses,
        Func<long, Tensor>? SampleLoss = null);

    /// <summary>
    /// One pass over the batches as <see cref="OutputTerm"/>s: (inputs, labels) batches with the options' loss (a
    /// sample's loss is the loss of its one-sample slice), or a <see cref="IStreamedOutputLoss"/>. A plain
    /// <see cref="StreamedLoss{TBatch}"/> does not expose the output, so it is refused with what to use instead.
    /// </summary>
    private IEnumerable<OutputTerm> OutputTerms(string what)
    {
        if (streamed is null)
        {
            for (var i = 0; i < batches.Count; i++)
            {
                var (x, y, _, count) = batches[i];
                yield return new OutputTerm(count, () => Model.call(x), output => ScalarLoss(loss(output, y)),
                    output => stack(Enumerable.Range(0, (int)count).Select(s => ScalarLoss(loss(output.narrow(0, s, 1), y.narrow(0, s, 1)))).ToArray()),
                    s => ScalarLoss(loss(Model.call(x.narrow(0, s, 1)), y.narrow(0, s, 1))));
            }
            yield break;
        }
        if (streamed is not IStreamedOutputLoss split)
            throw new NotSupportedException(
                $"{what} needs the model's outputs batch by batch; a StreamedLoss gives only the batch losses. Describe the loss as a " +
                "StreamedOutputLoss (forward: (model, batch) -> outputs, and sampleLosses: (outputs, batch) -> one loss per sample) instead.");
        foreach (var b in split.OutputPass())
            yield return new OutputTerm(b.Count, () => b.Forward(Model), output => b.SampleLosses(output).mean(), b.SampleLosses);
    }

    private static Tensor ScalarLoss(Tensor l) => l.dim() == 0
        ? l
        : throw new ArgumentException($"The loss function must return a scalar (the mean over the batch); it returned shape ({string.Join(", ", l.shape)}).");

    /// <summary>Mean loss and error rate (percent; NaN when the output is not (N, C) logits) over the set, without gradients.</summary>
    public (double Loss, double ErrorPercent) Evaluate() => InMode(() =>
    {
        using var noGrad = no_grad();
        if (streamed is not null)
        {
            double streamedSum = 0;
            foreach (var term in StreamedTerms())
            {
                using var scope = NewDisposeScope();
                streamedSum += term().ToDouble();
            }
            return (SumScalarsOverRanks(streamedSum)[0], double.NaN);
        }
        double sum = 0;
        long errors = 0;
        var classification = true;
        for (var i = 0; i < batches.Count; i++)
        {
            if (!IsMine(i)) continue;
            using var scope = NewDisposeScope();
            var (l, output) = WeightedBatchLoss(i, weighted: true);
            sum += l.ToDouble();
            var labels = batches[i].Labels;
            if (classification && output.dim() == 2 && labels.dim() == 1 && labels.dtype == ScalarType.Int64)
                errors += output.argmax(1).ne(labels).sum().ToInt64();
            else
                classification = false;
        }
        if (ranks is not null)
        {
            // Loss, errors and whether every rank's outputs were classifier logits, in one allreduce.
            var summed = SumScalarsOverRanks(sum, errors, classification ? 0 : 1);
            (sum, errors, classification) = (summed[0], (long)Math.Round(summed[1]), summed[2] == 0);
        }
        return (sum, classification ? 100.0 * errors / SampleCount : double.NaN);
    });

    /// <summary>Gradient of the mean loss over the whole set into <paramref name="result"/>; returns the loss.</summary>
    public double Gradient(Tensor result) => InMode(() =>
    {
        using var grad = enable_grad();
        result.zero_();
        var views = Layout.Views(result);
        double total = 0;
        if (streamed is not null)
        {
            foreach (var term in StreamedTerms())
            {
                using var scope = NewDisposeScope();
                total += AccumulateGradient(term(), views);
            }
            return SumOverRanks(result, total)[0];
        }
        for (var i = 0; i < batches.Count; i++)
        {
            if (!IsMine(i)) continue;
            using var scope = NewDisposeScope();
            var (l, _) = WeightedBatchLoss(i, weighted: true);
            total += AccumulateGradient(l, views);
        }
        return SumOverRanks(result, total)[0];
    });

    /// <summary>
    /// The gradient of each batch's own (unweighted) mean loss in turn, over either form of loss: writes it into
    /// <paramref name="gradient"/> and hands it to <paramref name="consume"/> (inside the batch's dispose scope).
    /// Returns the number of batches. Over several ranks, only this rank's batches (the caller sums what it
    /// accumulated with <see cref="SumOverRanks(Tensor, double[])"/>).
    /// </summary>
    public int ForEachBatchGradient(Tensor gradient, Action<Tensor> consume) => InMode(() =>
    {
        using var grad = enable_grad();
        var views = Layout.Views(gradient);
        var count = 0;
        if (streamed is not null)
        {
            var index = -1;
            foreach (var (_, meanLoss) in streamed.Pass())
            {
                if (!IsMine(++index)) continue;
                using var scope = NewDisposeScope();
                gradient.zero_();
                var l = meanLoss(Model) ?? throw new InvalidOperationException("StreamedLoss: the loss function returned null.");
                AccumulateGradient(ScalarLoss(l), views);
                consume(gradient);
                count++;
            }
            return count;
        }
        for (var i = 0; i < batches.Count; i++)
        {
            if (!IsMine(i)) continue;
            using var scope = NewDisposeScope();
            gradient.zero_();
            var (l, _) = WeightedBatchLoss(i, weighted: false);
            AccumulateGradient(l, views);
            consume(gradient);
            count++;
        }
        return count;
    });

    private double AccumulateGradient(Tensor l, Tensor[] views)
    {
        CheckDifferentiable(l);
        var grads = autograd.grad([l], parameters, allow_unused: true);
        for (var p = 0; p < grads.Count; p++)
        {
            if (!grads[p].IsInvalid) views[p].Accumulate_(grads[p]);
        }
        return l.ToDouble();
    }

    private void CheckDifferentiable(Tensor l)
    {
        // autograd.grad aborts the process (no managed exception) when the output has no graph: check first.
        if (!l.requires_grad)
            throw new InvalidOperationException(
                "The loss does not depend on any selected parameter (no gradient graph); check the parameter selection and that gradients are enabled for them.");
    }

    /// <summary>
    /// Hessian-vector product of the mean loss over the set: result = H v, by double backward per batch. Both vectors
    /// are flat, in the working type and device.
    /// </summary>
    public void HessianVectorProduct(Tensor v, Tensor result) => InMode(() =>
    {
        using var grad = enable_grad();
        result.zero_();
        var vViews = Layout.Views(v);
        var resultViews = Layout.Views(result);
        if (streamed is not null)
        {
            foreach (var term in StreamedTerms())
            {
                using var scope = NewDisposeScope();
                var l = term();
                CheckDifferentiable(l);
                var grads = autograd.grad([l], parameters, create_graph: true, retain_graph: true, allow_unused: true);
                AddInto(resultViews, SecondBackward(grads, vViews, retain: false));
            }
            SumOverRanks(result);
            return 0;
        }
        if (KeepsGraph)
        {
            var gradients = GradientGraph();
            for (var i = 0; i < gradients.Count; i++)
            {
                using var scope = NewDisposeScope();
                AddInto(resultViews, SecondBackward(gradients[i], vViews, retain: true));
            }
            SumOverRanks(result);
            return 0;
        }
        for (var i = 0; i < batches.Count; i++)
        {
            if (!IsMine(i)) continue;
            using var scope = NewDisposeScope();
            var (l, _) = WeightedBatchLoss(i, weighted: true);
            CheckDifferentiable(l);
            // create_graph needs retain_graph as well in TorchSharp; an error inside grad aborts the process, so every
            // shape was checked before (vectors by the layout, the loss is a scalar).
            var grads = autograd.grad([l], parameters, create_graph: true, retain_graph: true, allow_unused: true);
            AddInto(resultViews, SecondBackward(grads, vViews, retain: false));
        }
        SumOverRanks(result);
        return 0;
    });

    /// <summary>Adds one batch's H v blocks into the result's views; a parameter the loss does not reach adds nothing.</summary>
    static void AddInto(Tensor[] resultViews, IList<Tensor>? hv)
    {
        if (hv is null) return;
        for (var p = 0; p < hv.Count; p++)
            if (!hv[p].IsInvalid) resultViews[p].Accumulate_(hv[p]);
    }

    /// <summary>
    /// Column <paramref name="index"/> of H restricted to the rows of the parameter tensors from
    /// <paramref name="firstBlock"/> on: d g_index / d w_q for every selected tensor q &gt;= firstBlock, written into
    /// <paramref name="tail"/> (length n - offset of firstBlock). Differentiating the one gradient entry, and only with
    /// respect to those tensors, lets autograd skip every branch that leads only to earlier layers: for a column of a
    /// late layer this is a small fraction of a full Hessian-vector product.
    /// </summary>
    public void HessianColumnTail(long index, int firstBlock, Tensor tail) => InMode(() =>
    {
        using var grad = enable_grad();
        tail.zero_();
        var block = Layout.BlockOf(index);
        var local = index - Layout.Blocks[block].Offset;
        var wanted = parameters[firstBlock..];
        var tailOffset = Layout.Blocks[firstBlock].Offset;
        var tailViews = Layout.Views(tail, firstBlock);
        if (KeepsGraph)
        {
            foreach (var gradients in GradientGraph())
            {
                using var scope = NewDisposeScope();
                var g = gradients[block];
                if (g.IsInvalid || !g.requires_grad) continue;
                var entry = g.reshape(-1)[local];
                // An entry that no longer depends on the parameters (a loss linear in this tensor) has a zero column.
                if (!entry.requires_grad) continue;
                var rows = autograd.grad([entry], wanted, retain_graph: true, allow_unused: true);
                for (var q = 0; q < rows.Count; q++)
                    if (!rows[q].IsInvalid) tailViews[q].Accumulate_(rows[q]);
            }
            SumOverRanks(tail);
            return 0;
        }
        // Without a kept graph (dropout on, or the option off) a full product does the work (summed over the ranks in it).
        using var unit = NewVector();
        using var column = NewVector();
        using (var one = 1.0.ToScalar())
        using (var e = unit.narrow(0, index, 1))
            e.fill_(one);
        HessianVectorProduct(unit, column);
        using var part = column.narrow(0, tailOffset, Layout.Dimension - tailOffset);
        tail.copy_(part);
        return 0;
    });

    /// <summary>
    /// Generalised Gauss-Newton product result = G v = sum_b J_b^T H_b J_b v, with J_b the Jacobian of batch b's model
    /// output with respect to the selected parameters and H_b the Hessian of its weighted loss with respect to that
    /// output. J v comes from the double-backward trick (the vjp u -> J^T u is linear in u, so d(v . J^T u)/du = J v),
    /// H_b (J v) from double backward of the loss through a detached copy of the output, and J^T (.) from one more vjp.
    /// </summary>
    public void GaussNewtonVectorProduct(Tensor v, Tensor result) => InMode(() =>
    {
        using var grad = enable_grad();
        result.zero_();
        var vViews = Layout.Views(v);
        var resultViews = Layout.Views(result);
        var index = -1;
        foreach (var term in OutputTerms("The Gauss-Newton matrix"))
        {
            if (!IsMine(++index)) continue;
            using var scope = NewDisposeScope();
            var output = term.Forward();
            if (!output.requires_grad)
                throw new InvalidOperationException(
                    "The model's output does not depend on any selected parameter (no gradient graph); check the parameter selection and that gradients are enabled for them.");
            var u = zeros_like(output).requires_grad_(true);
            var jtu = autograd.grad([output], parameters, grad_outputs: [u], create_graph: true, retain_graph: true, allow_unused: true);
            Tensor? dot = null;
            for (var p = 0; p < jtu.Count; p++)
            {
                if (jtu[p].IsInvalid || !jtu[p].requires_grad) continue;
                var product = jtu[p].mul(vViews[p]).sum();
                dot = dot is null ? product : dot.Plus(product);
            }
            if (dot is null) continue;
            var jv = autograd.grad([dot], [u], retain_graph: true)[0].detach();
            var detached = output.detach().requires_grad_(true);
            // Weight n_b / N, so the batches add up to the mean over every sample.
            var weighted = term.MeanLoss(detached).DividedBy((double)SampleCount / term.Count);
            // A loss that does not depend on the output (or only linearly: H_out = 0) has a zero Gauss-Newton matrix.
            if (!weighted.requires_grad) continue;
            var gOut = autograd.grad([weighted], [detached], create_graph: true, retain_graph: true)[0];
            if (!gOut.requires_grad) continue;
            var hjv = autograd.grad([gOut.mul(jv).sum()], [detached])[0];
            var gv = autograd.grad([output], parameters, grad_outputs: [hjv], allow_unused: true);
            for (var p = 0; p < gv.Count; p++)
                if (!gv[p].IsInvalid) resultViews[p].Accumulate_(gv[p]);
        }
        SumOverRanks(result);
        return 0;
    });

    /// <summary>
    /// Per-sample gradients of the loss, one row per sample of the evaluation set in order, into
    /// <paramref name="rows"/> (SampleCount x n): row i is the gradient of sample i's own loss (for (inputs, labels)
    /// batches the loss of the one-sample slice of its batch's output; for a <see cref="IStreamedOutputLoss"/> entry i
    /// of its per-sample losses). Each sample needs one backward pass. When samples cannot affect each other's outputs
    /// ((inputs, labels) batches, BatchNorm on running statistics, dropout off), each sample runs forward and backward
    /// alone: a backward pass through the whole batch's graph for one sample's loss costs as much as the batch's
    /// backward (on LeNet with batches of 500, about 20 times a one-sample pass). A batch whose one-sample losses differ
    /// from its batch losses (a model that mixes samples in evaluation mode) is redone through the batch's graph.
    /// </summary>
    public void PerSampleGradients(Tensor rows) => InMode(() =>
    {
        using var grad = enable_grad();
        rows.zero_();
        long row = 0;
        var total = rows.shape[0];
        var samplesIndependent = Options.BatchNorm == BatchNormMode.RunningStatistics && Options.Dropout == DropoutMode.Off;
        var index = -1;
        foreach (var term in OutputTerms("Per-sample gradients"))
        {
            using var scope = NewDisposeScope();
            if (row + term.Count > total)
                throw new InvalidOperationException(
                    $"The batches hold more than the {total:N0} samples they held when the operator was built; a streamed loss must give the same batches on every pass.");
            // Another rank's batch: its rows stay zero here and arrive in the allreduce below.
            if (!IsMine(++index))
            {
                row += term.Count;
                continue;
            }
            if (samplesIndependent && term.SampleLoss is { } sampleLoss && OneSampleGradients(term, sampleLoss, rows, row))
            {
                row += term.Count;
                continue;
            }
            var losses = term.SampleLosses(term.Forward());
            CheckDifferentiable(losses);
            for (long s = 0; s < term.Count; s++)
            {
                using var inner = NewDisposeScope();
                var grads = autograd.grad([losses[s]], parameters, retain_graph: s + 1 < term.Count, allow_unused: true);
                var views = Layout.Views(rows[row]);
                for (var p = 0; p < grads.Count; p++)
                    if (!grads[p].IsInvalid) views[p].copy_(grads[p]);
                row++;
            }
        }
        if (row != total)
            throw new InvalidOperationException(
                $"The batches held {row:N0} samples, not the {total:N0} they held when the operator was built; a streamed loss must give the same batches on every pass.");
        SumOverRanks(rows);
        return 0;
    });

    /// <summary>
    /// Rows first .. first + count - 1 from one-sample forward and backward passes; false (rows to be redone) when a
    /// sample's loss alone differs from its loss in the batch by more than 1e-4 relative, i.e. the model mixes samples.
    /// </summary>
    private bool OneSampleGradients(OutputTerm term, Func<long, Tensor> sampleLoss, Tensor rows, long first)
    {
        double[] inBatch;
        using (no_grad())
            inBatch = term.SampleLosses(term.Forward()).to(ScalarType.Float64).cpu().data<double>().ToArray();
        for (long s = 0; s < term.Count; s++)
        {
            using var inner = NewDisposeScope();
            var l = sampleLoss(s);
            var alone = l.ToDouble();
            if (!(Math.Abs(alone - inBatch[s]) <= 1e-4 * Math.Max(1, Math.Abs(inBatch[s])))) return false;
            CheckDifferentiable(l);
            var grads = autograd.grad([l], parameters, allow_unused: true);
            var views = Layout.Views(rows[first + s]);
            for (var p = 0; p < grads.Count; p++)
                if (!grads[p].IsInvalid) views[p].copy_(grads[p]);
        }
        return true;
    }

    /// <summary>d/dx (g . v) for gradients g that carry their graph; null when g does not depend on the parameters.</summary>
    private IList<Tensor>? SecondBackward(IList<Tensor> grads, Tensor[] vViews, bool retain)
    {
        Tensor? dot = null;
        for (var p = 0; p < grads.Count; p++)
        {
            if (grads[p].IsInvalid || !grads[p].requires_grad) continue;
            var term = grads[p].mul(vViews[p]).sum();
            dot = dot is null ? term : dot.Plus(term);
        }
        // A gradient that does not depend on the parameters (a loss linear in them) has a zero Hessian.
        if (dot is null || !dot.requires_grad) return null;
        return autograd.grad([dot], parameters, retain_graph: retain, allow_unused: true);
    }

    // The per-batch gradients with their graphs (see LandscapeOptions.ReuseGradientGraph), and the parameters and
    // buffers they were computed at: an in-place change to a saved tensor would make the next backward fail inside
    // libtorch, which TorchSharp cannot turn into an exception, so every use compares first.
    private List<IList<Tensor>>? gradientGraph;
    private Tensor[]? graphState;
    private long graphWrites;

    // In-place writes of the weights through any LandscapeLoss (slices, local entropy), per model object. Writing the
    // same values back still bumps autograd's version counters, which TorchSharp does not expose, and a kept graph
    // that saved those tensors would then abort the process in backward; so a value comparison is not enough.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<nn.Module, System.Runtime.CompilerServices.StrongBox<long>> Writes = new();

    private static long WritesTo(nn.Module model) => Interlocked.Read(ref Writes.GetValue(model, _ => new(0)).Value);

    /// <summary>Per-batch weighted-loss gradients that keep their graph, rebuilt when the weights or buffers changed.</summary>
    private List<IList<Tensor>> GradientGraph()
    {
        if (gradientGraph is not null && StateUnchanged()) return gradientGraph;
        DropGradientGraph();
        graphWrites = WritesTo(Model);
        using (no_grad())
            graphState = Model.parameters().Select(t => (Tensor)t).Concat(Model.buffers())
                .Select(t => t.detach().clone().DetachFromDisposeScope()).ToArray();
        var graphs = new List<IList<Tensor>>();
        try
        {
            for (var i = 0; i < batches.Count; i++)
            {
                if (!IsMine(i)) continue;
                using var scope = NewDisposeScope();
                var (l, _) = WeightedBatchLoss(i, weighted: true);
                CheckDifferentiable(l);
                var grads = autograd.grad([l], parameters, create_graph: true, retain_graph: true, allow_unused: true);
                foreach (var g in grads)
                    if (!g.IsInvalid) g.DetachFromDisposeScope();
                graphs.Add(grads);
            }
        }
        catch
        {
            foreach (var g in graphs.SelectMany(x => x)) if (!g.IsInvalid) g.Dispose();
            DropGradientGraph();
            throw;
        }
        gradientGraph = graphs;
        return graphs;
    }

    private bool StateUnchanged()
    {
        using var noGrad = no_grad();
        var current = Model.parameters().Select(t => (Tensor)t).Concat(Model.buffers()).ToArray();
        if (graphState is null || current.Length != graphState.Length || WritesTo(Model) != graphWrites) return false;
        for (var i = 0; i < current.Length; i++)
            if (!current[i].shape.SequenceEqual(graphState[i].shape) || !current[i].allclose(graphState[i], 0, 0, equal_nan: true)) return false;
        return true;
    }

    /// <summary>Frees the kept gradient graph (it is rebuilt on the next product).</summary>
    public void DropGradientGraph()
    {
        if (gradientGraph is not null)
            foreach (var g in gradientGraph.SelectMany(x => x)) if (!g.IsInvalid) g.Dispose();
        gradientGraph = null;
        if (graphState is not null)
            foreach (var t in graphState) t.Dispose();
        graphState = null;
    }

    /// <summary>The selected parameters of the working model as one new flat vector.</summary>
    public Tensor GetFlat()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // Copied into a fresh buffer: TorchSharp's cat of a single tensor may hand back a view of the parameter itself.
        var flat = empty(Layout.Dimension, Dtype, Device);
        var views = Layout.Views(flat);
        for (var p = 0; p < parameters.Length; p++) views[p].copy_(parameters[p]);
        return flat.MoveToOuterDisposeScope();
    }

    /// <summary>Writes a flat vector into the selected parameters of the working model.</summary>
    public void SetFlat(Tensor flat)
    {
        DropGradientGraph();
        Interlocked.Increment(ref Writes.GetValue(Model, _ => new(0)).Value);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var views = Layout.Views(flat);
        for (var p = 0; p < parameters.Length; p++) parameters[p].copy_(views[p]);
    }

    /// <summary>
    /// Bytes that identify the model's parameters and buffers, the evaluation set and the options: a resumed
    /// computation refuses a checkpoint written for anything else.
    /// </summary>
    public string Fingerprint()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        void Add(Tensor t)
        {
            using var scope = NewDisposeScope();
            var c = t.detach().cpu().contiguous();
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{c.dtype}:{string.Join("x", c.shape)};"));
            // Span lengths are int: hash large tensors in slices.
            var flat = c.reshape(-1);
            const long chunk = 1 << 26;
            for (long start = 0; start < flat.shape[0]; start += chunk)
            {
                using var part = flat.narrow(0, start, Math.Min(chunk, flat.shape[0] - start)).contiguous();
                hash.AppendData(part.bytes);
            }
        }
        if (streamed is not null && streamed.Identity is null)
            throw new ArgumentException(
                "A StreamedLoss without an identity cannot be fingerprinted (its batches are not held, and a delegate has no identity that survives " +
                "a restart); give it an identity that names the data and the loss, or compute without a checkpoint folder.");
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes(Options.Describe() + ";" + string.Join(",", Layout.Blocks.Select(b => b.Name))));
        if (streamed is not null) hash.AppendData(System.Text.Encoding.UTF8.GetBytes("streamed:" + streamed.Identity));
        foreach (var (name, t) in Model.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            Add(t);
        }
        foreach (var (x, y, _, _) in batches)
        {
            Add(x);
            Add(y);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>
    /// The same loss on a copy of the working model (its own parameters, buffers and gradient graph) over the same
    /// evaluation batches, which are shared read-only: threads can each differentiate their own replica at once.
    /// </summary>
    public LandscapeLoss Replicate(string where)
    {
        var copy = BuildCopy(Model, Dtype, Options.ModelFactory, where, "a replica for a parallel worker");
        try
        {
            // The copy and the batches are already in the working type and device, so the replica converts nothing.
            return streamed is not null
                ? new LandscapeLoss(copy, streamed, Options, where, ownsModel: true)
                : new LandscapeLoss(copy, batches.Select(b => (b.Inputs, b.Labels)).ToList(), Options, where, ownsModel: true);
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A copy of <paramref name="model"/> in <paramref name="dtype"/>: a new instance (from the factory),
    /// converted, with every parameter and buffer copied and the per-module train/eval flags taken over.
    /// </summary>
    private static nn.Module<Tensor, Tensor> BuildCopy(nn.Module<Tensor, Tensor> model, ScalarType dtype,
        Func<nn.Module<Tensor, Tensor>>? factory, string where, string purpose)
    {
        // Building a network draws its initial weights from the global generator; keep the caller's random stream intact.
        using var rngState = random.get_rng_state();
        nn.Module<Tensor, Tensor> copy;
        try
        {
            copy = factory?.Invoke() ?? throw new ArgumentException(
                $"{where}: {purpose} needs a copy of the model ({model.GetType().Name}); set LandscapeOptions.ModelFactory to a function that " +
                "builds the same architecture (for WideValley's own networks: ZooCopies.FactoryFor(model)).");
        }
        finally
        {
            random.set_rng_state(rngState);
        }
        var device = model.parameters().First().device;
        copy.to(dtype).to(device);
        var source = model.state_dict();
        var target = copy.state_dict();
        if (source.Count != target.Count || source.Keys.Any(k => !target.ContainsKey(k)))
            throw new ArgumentException(
                $"{where}: the model built as a copy ({purpose}) has state [{string.Join(", ", target.Keys)}] but the measured model has " +
                $"[{string.Join(", ", source.Keys)}]; ModelFactory must build the same architecture.");
        using (no_grad())
        {
            foreach (var (name, t) in source)
            {
                if (!t.shape.SequenceEqual(target[name].shape))
                    throw new ArgumentException(
                        $"{where}: '{name}' has shape ({string.Join(", ", t.shape)}) in the measured model but ({string.Join(", ", target[name].shape)}) in the copy.");
                target[name].copy_(t);
            }
        }
        var from = AllModules(model);
        var to = AllModules(copy);
        for (var i = 0; i < Math.Min(from.Count, to.Count); i++) to[i].train(from[i].training);
        return copy;
    }

    public void Dispose()
    {
        DropGradientGraph();
        foreach (var (_, _, weight, _) in batches) weight.Dispose();
        foreach (var t in ownedTensors) t.Dispose();
        if (ownsWorkingModel) Model.Dispose();
    }
}

internal static class DeviceChecks
{
    /// <summary>Whether the tensor lives on <paramref name="device"/> (Device objects compare by reference, so compare type and index).</summary>
    public static bool IsOn(this Tensor t, Device device) =>
        t.device_type == device.type && (device.index < 0 || t.device_index == device.index);
}
