using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests;

/// <summary>
/// The scalar helpers under a thread that forces garbage collections: TorchSharp's one-argument add and add_ pass a
/// temporary Scalar (alpha = 1) as a bare handle, which a collection during the call can free (see TorchScalars).
/// The exact Hessian's two column workers crashed on it after eleven minutes ("Expected false to be true" from
/// Scalar::toFloat, an at::Scalar read after it was freed). The loop below with TorchSharp's own <c>sum.add_(one)</c>
/// fails the same way within seconds (3 runs of 3 on a 2-core machine).
/// </summary>
public class TorchScalarsTests
{
    [Fact]
    public void AccumulateAndPlusAreExactWhileAnotherThreadForcesCollections()
    {
        const int repetitions = 200_000;
        using var sum = zeros(4, ScalarType.Float64);
        using var total = zeros(4, ScalarType.Float64);
        using var one = ones(4, ScalarType.Float64);
        var expected = 0.0;
        var collections = GarbageChurn.WhileCollecting(() =>
        {
            for (var i = 0; i < repetitions; i++)
            {
                using var scope = NewDisposeScope();
                sum.Accumulate_(one);
                total.copy_(total.Plus(one));
            }
            expected += repetitions;
            Assert.Equal(Enumerable.Repeat(expected, 4), sum.data<double>().ToArray());
            Assert.Equal(Enumerable.Repeat(expected, 4), total.data<double>().ToArray());
        }, minimumCollections: 11);
        Assert.True(collections > 10, $"the churn thread should have forced collections ({collections})");
    }
}
