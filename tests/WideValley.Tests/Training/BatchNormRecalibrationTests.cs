using TorchSharp;
using TorchSharp.Modules;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

public class BatchNormRecalibrationTests
{
    [Fact]
    public void RunningStatisticsBecomeTheTrainingSetStatisticsAtTheCurrentWeights()
    {
        random.manual_seed(3);
        // Dropout before the BatchNorm layer: if recalibration left dropout on, the statistics would be off.
        var model = nn.Sequential(("drop", nn.Dropout(0.5)), ("fc", nn.Linear(8, 6)), ("bn", nn.BatchNorm1d(6)), ("out", nn.Linear(6, 3)));
        using var data = Synthetic.Blobs(train: 320);
        using var task = new ClassificationTask(model, data, batchSize: 32, seed: 1, ownsData: false);
        var bn = (BatchNorm1d)model.named_modules().Single(m => m.name == "bn").module;
        bn.momentum = 0.3;
        model.eval();

        Assert.True(BatchNormRecalibration.Recalibrate(task, maxMinibatches: 0));

        using var scope = NewDisposeScope();
        var fc = (Linear)model.named_modules().Single(m => m.name == "fc").module;
        using var noGrad = no_grad();
        var features = fc.forward(data.Train.Inputs).to(ScalarType.Float64);
        // Equal-size minibatches: the cumulative average of batch means is the overall mean; batch variances are the
        // unbiased ones, averaged.
        var batches = features.view(10, 32, 6);
        var expectedMean = features.mean([0]);
        var expectedVar = batches.var(1, unbiased: true).mean([0]);
        Assert.True(bn.running_mean!.to(ScalarType.Float64).allclose(expectedMean, rtol: 1e-5, atol: 1e-5));
        Assert.True(bn.running_var!.to(ScalarType.Float64).allclose(expectedVar, rtol: 1e-4, atol: 1e-5));
        Assert.Equal(0.3, bn.momentum);
        Assert.False(model.training); // the caller's mode is restored
    }

    [Fact]
    public void ModelsWithoutBatchNormAreLeftAlone()
    {
        var model = nn.Sequential(("fc", nn.Linear(8, 3)));
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 64), batchSize: 32, seed: 1);
        Assert.False(BatchNormRecalibration.Recalibrate(task, 0));
    }
}
