using TorchSharp;
using WideValley.Distributed;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Training;

/// <summary>
/// Data-parallel training's one collective per gradient evaluation: the parameters' gradients live as views in one flat
/// buffer, followed by two more elements (this rank's minibatch loss sum and sample count), and one in-place allreduce
/// of that buffer turns every rank's gradient into the mean over the global minibatch and gives every rank the global
/// loss. The gradient of each rank's mean loss is weighted by its share of the samples, so the result is the gradient
/// of the mean over all samples however they are split. When an optimizer replaced a gradient tensor (the link is
/// lost), the gradient is copied into the buffer and linked again before the allreduce.
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

    public GradientAverager(ICollectives collectives, IEnumerable<Parameter> parameters)
    {
        _collectives = collectives;
        _parameters = parameters.ToArray();
        if (_parameters.Length == 0) throw new ArgumentException("data-parallel training needs at least one trainable parameter", nameof(parameters));
        var layout = _parameters.Select(p => (Tensor)p).Append(zeros(2, dtype: _parameters[0].dtype)).ToList();
        _buffer = FlatBuffer.LayoutOf(layout);
        _statistics = _buffer.Views[^1];
        _offsets = [.. _buffer.Offsets];
        _start = CollectiveTensors.Address(_buffer.Flat);
        _elementBytes = _buffer.Flat.element_size();
        Link();
    }

    /// <summary>Allreduces the gradients (weighted by sample count) and the loss; returns the global mean loss.</summary>
    public double Average(double localMeanLoss, long localCount, long globalCount)
    {
        using var noGrad = no_grad();
        if (!StillLinked()) Link();
        var share = (double)localCount / globalCount;
        // Each rank's gradient is of its own mean loss: scaled by its share, the sum over ranks is the global mean's gradient.
        for (var i = 0; i < _parameters.Length; i++) _buffer.Views[i].mul_(share);
        using (var lossSum = _statistics.narrow(0, 0, 1)) lossSum.fill_(localMeanLoss * localCount);
        using (var count = _statistics.narrow(0, 1, 1)) count.fill_((double)localCount);
        _collectives.AllReduceSum(_buffer.Flat);
        using var sumOverRanks = _statistics[0];
        using var countOverRanks = _statistics[1];
        return sumOverRanks.ToDouble() / countOverRanks.ToDouble();
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
