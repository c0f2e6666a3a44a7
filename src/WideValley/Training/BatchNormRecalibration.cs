using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>
/// Recollects BatchNorm running statistics at the current weights: the reference code's "dry feed". Needed after
/// optimizers that run the network at points other than the weights being evaluated (Entropy-SGD's Langevin iterates
/// x'), where the running averages describe the wrong network. The statistics are reset and re-estimated as a plain
/// (cumulative) average over training minibatches, in train mode with dropout switched off, without gradients.
/// </summary>
public static class BatchNormRecalibration
{
    /// <summary>Every BatchNorm layer of <paramref name="model"/>.</summary>
    public static IReadOnlyList<BatchNorm> BatchNormLayers(nn.Module model) =>
        model.modules().OfType<BatchNorm>().ToList();

    /// <summary>
    /// Re-estimates the statistics from up to <paramref name="maxMinibatches"/> training minibatches (0 = one full pass).
    /// Returns false (and does nothing) when the model has no BatchNorm layer. The model's train/eval mode and each
    /// layer's momentum are restored.
    /// </summary>
    public static bool Recalibrate(ITrainingTask task, int maxMinibatches)
    {
        var model = task.Model;
        var layers = BatchNormLayers(model);
        if (layers.Count == 0) return false;
        var wasTraining = model.training;
        var momenta = layers.Select(l => l.momentum).ToList();
        try
        {
            foreach (var layer in layers)
            {
                layer.reset_running_stats();
                layer.momentum = null; // cumulative average over the fed minibatches
            }
            model.train();
            foreach (var m in model.modules())
                if (IsDropout(m)) m.eval();
            task.FeedTrainingData(maxMinibatches);
        }
        finally
        {
            for (var i = 0; i < layers.Count; i++) layers[i].momentum = momenta[i];
            if (wasTraining) model.train(); else model.eval();
        }
        return true;
    }

    static bool IsDropout(nn.Module m) =>
        m is Dropout or Dropout1d or Dropout2d or Dropout3d or AlphaDropout or FeatureAlphaDropout;
}
