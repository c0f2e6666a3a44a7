using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>Mean cross-entropy loss and error rate of a classifier over a labelled set.</summary>
/// <param name="Loss">Mean cross-entropy over the samples.</param>
/// <param name="ErrorPercent">Percentage of samples whose largest logit is not the label.</param>
/// <param name="Count">Number of samples.</param>
public sealed record ClassifierScore(double Loss, double ErrorPercent, long Count);

/// <summary>
/// Evaluates any <c>nn.Module&lt;Tensor, Tensor&gt;</c> that maps inputs (N, ...) to logits (N, classes) on a
/// <see cref="LabeledData"/>, in eval mode (dropout off, BatchNorm running statistics), without gradients, leaving the
/// model's train/eval mode as it was.
/// </summary>
public static class ClassifierEvaluation
{
    /// <summary>Scores <paramref name="model"/> on <paramref name="data"/> in batches of <paramref name="batchSize"/>.</summary>
    /// <exception cref="ArgumentException">Batch size below 1, or the model's output is not (N, classes) logits with classes above every label.</exception>
    public static ClassifierScore Evaluate(nn.Module<Tensor, Tensor> model, LabeledData data, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize < 1) throw new ArgumentException($"ClassifierEvaluation: batch size must be at least 1; got {batchSize}.", nameof(batchSize));
        var first = model.parameters().FirstOrDefault();
        var dtype = first?.dtype ?? ScalarType.Float32;
        var device = first?.device ?? CPU;
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            double lossSum = 0;
            long errors = 0;
            var n = data.Count;
            for (long start = 0; start < n; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var length = Math.Min(batchSize, n - start);
                var x = data.Inputs.narrow(0, start, length);
                if (x.is_floating_point() && x.dtype != dtype || x.device != device)
                    x = x.to(x.is_floating_point() ? dtype : x.dtype, device);
                var y = data.Labels.narrow(0, start, length).to(device);
                var logits = model.call(x);
                if (logits.dim() != 2 || logits.shape[0] != length)
                    throw new ArgumentException(
                        $"ClassifierEvaluation: the model returned shape ({string.Join(", ", logits.shape)}) for {length} samples; expected logits ({length}, classes).");
                if (logits.shape[1] < data.NumClasses)
                    throw new ArgumentException(
                        $"ClassifierEvaluation: the model returns {logits.shape[1]} logits per sample, but the labels name {data.NumClasses} classes.");
                lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).to(ScalarType.Float64).item<double>();
                errors += logits.argmax(1).ne(y).sum().item<long>();
            }
            return new ClassifierScore(lossSum / n, 100.0 * errors / n, n);
        }
        finally
        {
            model.train(wasTraining);
        }
    }
}
