using TorchSharp;
using WideValley.Distributed;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Training;

/// <summary>
/// Data-parallel training's one collective per gradient evaluation: the parameters' gradients live as views in one flat
/// buffer, followed by five more elements (this rank's minibatch loss sum, sample count and error count, and its stop
/// and checkpoint-due flags), and one in-place allreduce of that buffer turns every rank's gradient into the mean over
/// the global minibatch, gives every rank the global minibatch's loss and errors, and lets all ranks agree on a stop or
/// a due checkpoint without a second collective per step. The gradient of each rank's mean loss is weighted by its
/// share of the samples, so the result is the gradient of the mean over all samples however they are split. When an
/// optimizer replaced a gradient tensor (the link is lost), the gradient is copied into the buffer and linked again
/// before the allreduce. The counts travel in the gradients' dtype: exact up to 2^24 per minibatch in float32.
/// </summary>
internal sealed class GradientAverager : IDisposable
{
    readonly ICollectives _collectives;
    readonly Parameter[] _parameters;
    readonly FlatBuffer _buffer;
    readonly Tensor _statistics;
    readonly long[] _offsets;
    readonly nint _start;
    readonly long _elementBytes;
    readonly double[] _statisticValues = new double[StatisticCount];
    const int StatisticCount = 5;

    public GradientAverager(ICollectives collectives, IEnumerable<Parameter> parameters)
    {
        _collectives = collectives;
        _parameters = parameters.ToArray();
        if (_parameters.Length == 0) throw new ArgumentException("data-parallel training needs at least one trainable parameter", nameof(parameters));
        var layout = _parameters.Select(p => (Tensor)p).Append(zeros(StatisticCount, dtype: _parameters[0].dtype)).ToList();
        _buffer = FlatBuffer.LayoutOf(layout);
        _statistics = _buffer.Views[^1];
        _offsets = [.. _buffer.Offsets];
        _start = CollectiveTensors.Address(_buffer.Flat);
        _elementBytes = _buffer.Flat.element_size();
        Link();
    }

    /// <summary>
    /// Allreduces the gradients (weighted by sample count) with this rank's minibatch statistics and flags; returns the
    /// global minibatch's loss, count and errors and whether any rank asked to stop or found a checkpoint due.
    /// </summary>
    public DataParallelAgreement Average(double localMeanLoss, long localCount, long globalCount, long localErrors, bool stopRequested, bool checkpointDue)
    {
        using var noGrad = no_grad();
        if (!StillLinked()) Link();
        var share = (double)localCount / globalCount;
        // Each rank's gradient is of its own mean loss: scaled by its share, the sum over ranks is the global mean's gradient.
        for (var i = 0; i < _parameters.Length; i++) _buffer.Views[i].mul_(share);
        _statisticValues[0] = localMeanLoss * localCount;
        _statisticValues[1] = localCount;
        _statisticValues[2] = localErrors;
        _statisticValues[3] = stopRequested ? 1 : 0;
        _statisticValues[4] = checkpointDue ? 1 : 0;
        using (var values = tensor(_statisticValues, dtype: _statistics.dtype)) _statistics.copy_(values);
        _collectives.AllReduceSum(_buffer.Flat);
        using (var agreed = _statistics.to(ScalarType.Float64)) agreed.data<double>().CopyTo(_statisticValues, 0);
        var count = (long)Math.Round(_statisticValues[1]);
        return new DataParallelAgreement(_statisticValues[0] / count, _statisticValues[0], count, (long)Math.Round(_statisticValues[2]),
            _statisticValues[3] > 0, _statisticValues[4] > 0);
    }

    /// <summary>Makes every parameter's gradient the view of its piece, keeping the gradient's current values.</summary>
    void Link()
    {
        using var noGrad = no_grad();
        for (var i = 0; i < _parameters.Length; i++)
        {
            using var grad = _parameters[i].grad;
            var view = _buffer.Views[i];
            if (grad is null) view.zero_();
            else if (CollectiveTensors.Address(grad) != CollectiveTensors.Address(view)) view.copy_(grad);
            _parameters[i].grad = view;
        }
    }

    bool StillLinked()
    {
        for (var i = 0; i < _parameters.Length; i++)
        {
            using var grad = _parameters[i].grad;
            if (grad is null || !grad.is_contiguous() || CollectiveTensors.Address(grad) != _start + _offsets[i] * _elementBytes) return false;
        }
        return true;
    }

    public void Dispose() => _buffer.Dispose();
}

/// <summary>What one data-parallel gradient allreduce tells every rank about the global minibatch and the other ranks.</summary>
/// <param name="MeanLoss">The global minibatch's mean loss.</param>
/// <param name="LossSum">Its loss summed over samples.</param>
/// <param name="Count">Its samples (all ranks).</param>
/// <param name="Errors">Its misclassified samples (all ranks).</param>
/// <param name="StopRequested">Some rank had a stop request when it evaluated its gradient.</param>
/// <param name="CheckpointDue">Some rank found a periodic checkpoint due when it evaluated its gradient.</param>
internal readonly record struct DataParallelAgreement(double MeanLoss, double LossSum, long Count, long Errors, bool StopRequested, bool CheckpointDue);
