using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

public sealed class StreamedLossTests
{
    /// <summary>A batch of two input halves and class targets: the shape of data a tuple cannot hold.</summary>
    private sealed record TwoPart(Tensor Left, Tensor Right, Tensor Target);

    private static ExactHessianOptions Dense => new() { MemoryLimitBytes = 1L << 30 };

    [Fact]
    public void AStreamedLossOverBatchesOfSeveralInputsGivesTheSameHessianAsTheTupleForm()
    {
        var model = TanhNet(hidden: 4);
        var data = RandomSet([7, 5, 9]);
        var passes = 0;
        IEnumerable<TwoPart> Batches()
        {
            passes++;
            foreach (var (x, y) in data) yield return new TwoPart(x.narrow(1, 0, 2), x.narrow(1, 2, 4), y);
        }
        var streamed = new StreamedLoss<TwoPart>(Batches, (m, b) => F.cross_entropy(m.call(cat([b.Left, b.Right], 1)), b.Target), b => b.Target.shape[0],
            identity: "two-part/cross-entropy");
        using var fromStream = new Hvp(model, streamed);
        Assert.Equal(21, fromStream.SampleCount);
        Assert.Equal(1, passes); // counting the samples
        using var fromTuples = new Hvp(model, data);
        using var a = ExactHessian.Compute(fromStream, Dense);
        using var b = ExactHessian.Compute(fromTuples, Dense);
        Assert.True(MaxAbsDiff(a.Hessian, b.Hessian) < 1e-13 * MaxAbs(b.Hessian));
        // Every product enumerates the batches afresh (nothing is held): one pass per column.
        Assert.Equal(1 + fromStream.Dimension, passes);
        var (gradient, loss) = fromStream.Gradient();
        var (reference, referenceLoss) = fromTuples.Gradient();
        Assert.Equal(referenceLoss, loss, 13);
        Assert.True(MaxAbsDiff(gradient, reference) < 1e-14);
        gradient.Dispose();
        reference.Dispose();
        Assert.Equal(fromTuples.Evaluate().Loss, fromStream.Evaluate().Loss, 13);
        Assert.True(double.IsNaN(fromStream.Evaluate().ErrorPercent));
        Assert.NotEqual(fromStream.Fingerprint(), fromTuples.Fingerprint());
    }

    [Fact]
    public void AFloat64CopyComesFromTheFactoryAndAnAnonymousStreamIsNotCheckpointed()
    {
        var model32 = TanhNet(hidden: 3, dtype: ScalarType.Float32);
        var data = RandomSet([12], dtype: ScalarType.Float32);
        // The loss converts its inputs to the type of the model it is given: the float64 copy here.
        var streamed = new StreamedLoss<(Tensor X, Tensor Y)>(() => data,
            (m, b) => F.cross_entropy(m.call(b.X.to(m.parameters().First().dtype)), b.Y), b => b.Y.shape[0]);
        var options = new LandscapeOptions { ComputeType = ScalarType.Float64, ModelFactory = () => TanhNet(hidden: 3, seed: 40, dtype: ScalarType.Float32) };
        using var h = new HessianAnalysis(model32, streamed, options);
        Assert.Equal(ScalarType.Float64, h.Operator.Dtype);
        var model64 = TanhNet(hidden: 3, dtype: ScalarType.Float64);
        using var reference = new HessianAnalysis(model64, RandomSet([12]));
        Assert.Equal(reference.TopEigenvalues(2).Eigenvalues[0], h.TopEigenvalues(2).Eigenvalues[0], 5);
        var slice = h.Slice(options: new SliceOptions { Points = 3, From = -0.1, To = 0.1 });
        Assert.Equal(reference.Slice(options: new SliceOptions { Points = 3, From = -0.1, To = 0.1 })[1].Loss, slice[1].Loss, 6);

        using var dir = new TempDir();
        var e = Assert.Throws<ArgumentException>(() => h.Exact(Dense with { CheckpointFolder = dir.Path }));
        Assert.Contains("identity", e.Message);
        Assert.Throws<ArgumentException>(() => new Hvp(model32, new StreamedLoss<int>(() => [], (_, _) => zeros(1), _ => 1)));
    }
}
