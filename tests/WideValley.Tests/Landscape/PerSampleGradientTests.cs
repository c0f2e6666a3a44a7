using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

/// <summary>
/// The empirical Fisher's per-sample gradients: one-sample passes where samples cannot affect each other, the batch's
/// graph where they can (a model that mixes samples, BatchNorm on batch statistics), the same rows either way.
/// </summary>
public class PerSampleGradientTests
{
    /// <summary>Adds half the batch mean of a linear layer's output to each sample's: samples mix in evaluation mode.</summary>
    private sealed class BatchMixing : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> linear;

        public BatchMixing(int inputs, int classes) : base(nameof(BatchMixing))
        {
            linear = nn.Linear(inputs, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var z = linear.call(x);
            return z.add(z.mean([0], keepdim: true).mul(0.5));
        }
    }

    /// <summary>Row s = the gradient of sample s's loss in its batch's forward pass (the definition, by autograd).</summary>
    private static Tensor BatchGraphRows(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> data)
    {
        var parameters = model.parameters().ToArray();
        var rows = new List<Tensor>();
        foreach (var (x, y) in data)
        {
            var output = model.call(x);
            for (long s = 0; s < x.shape[0]; s++)
            {
                var l = F.cross_entropy(output.narrow(0, s, 1), y.narrow(0, s, 1));
                var grads = autograd.grad([l], parameters, retain_graph: true);
                rows.Add(cat(grads.Select(g => g.flatten()).ToArray()));
            }
        }
        return stack(rows.ToArray()).detach();
    }

    [Fact]
    public void AConvolutionalNetworkInEvaluationModeGetsEachSamplesOwnGradientFromOneSamplePasses()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(21);
        var model = nn.Sequential(("conv", nn.Conv2d(1, 3, 3)), ("bn", nn.BatchNorm2d(3)), ("relu", nn.ReLU()), ("flat", nn.Flatten()), ("fc", nn.Linear(3 * 4 * 4, 4)));
        model.to(ScalarType.Float64);
        // Running statistics away from (0, 1), so evaluation mode matters.
        using (no_grad())
        {
            model.train();
            for (var i = 0; i < 3; i++) model.call(randn(8, 1, 6, 6, ScalarType.Float64).mul(2).add(1));
        }
        var data = new List<(Tensor, Tensor)>
        {
            (randn(5, 1, 6, 6, ScalarType.Float64), randint(0, 4, 5, ScalarType.Int64)),
            (randn(3, 1, 6, 6, ScalarType.Float64), randint(0, 4, 3, ScalarType.Int64)),
        };
        using var fisher = new EmpiricalFisher(model, data);
        model.eval();
        using var expected = BatchGraphRows(model, data);
        Assert.True(MaxAbsDiff(fisher.Gradients, expected) < 1e-12 * MaxAbs(expected), $"max difference {MaxAbsDiff(fisher.Gradients, expected)}");
    }

    [Fact]
    public void AModelThatMixesSamplesIsMeasuredThroughItsBatchGraph()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(22);
        var model = new BatchMixing(6, 3);
        model.to(ScalarType.Float64);
        var data = RandomSet([4, 5]);
        using var fisher = new EmpiricalFisher(model, data);
        model.eval();
        using var expected = BatchGraphRows(model, data);
        Assert.True(MaxAbsDiff(fisher.Gradients, expected) < 1e-12 * MaxAbs(expected), $"max difference {MaxAbsDiff(fisher.Gradients, expected)}");
        // The one-sample gradients differ materially here, so the rows above can only come from the batch's graph.
        using var alone = BatchGraphRows(model, data.SelectMany(b => Enumerable.Range(0, (int)b.Inputs.shape[0])
            .Select(s => (b.Inputs.narrow(0, s, 1), b.Labels.narrow(0, s, 1)))).ToList());
        Assert.True(MaxAbsDiff(alone, expected) > 1e-3 * MaxAbs(expected));
    }

    [Fact]
    public void BatchNormOnBatchStatisticsIsMeasuredThroughTheBatchGraph()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(23);
        var model = nn.Sequential(("fc1", nn.Linear(6, 5)), ("bn", nn.BatchNorm1d(5)), ("fc2", nn.Linear(5, 3)));
        model.to(ScalarType.Float64);
        var data = RandomSet([4, 6]);
        using var fisher = new EmpiricalFisher(model, data, new LandscapeOptions { BatchNorm = BatchNormMode.BatchStatistics });
        model.train();
        using var expected = BatchGraphRows(model, data);
        Assert.True(MaxAbsDiff(fisher.Gradients, expected) < 1e-12 * MaxAbs(expected), $"max difference {MaxAbsDiff(fisher.Gradients, expected)}");
    }
}
