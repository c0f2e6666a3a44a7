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
    /// <summary>Runs <paramref name="work"/> while another thread allocates as fast as it can; returns its collections.</summary>
    internal static int WhileCollecting(Action work)
    {
        var stop = 0;
        var churn = new Thread(() =>
        {
            var keep = new List<byte[]>();
            while (Volatile.Read(ref stop) == 0)
            {
                keep.Add(new byte[2048]);
                if (keep.Count > 256) keep.Clear();
            }
        }) { IsBackground = true };
        var before = GC.CollectionCount(0);
        churn.Start();
        try { work(); }
        finally { Volatile.Write(ref stop, 1); churn.Join(); }
        return GC.CollectionCount(0) - before;
    }

    [Fact]
    public void AccumulateAndPlusAreExactWhileAnotherThreadForcesCollections()
    {
        const int repetitions = 200_000;
        using var sum = zeros(4, ScalarType.Float64);
        using var total = zeros(4, ScalarType.Float64);
        using var one = ones(4, ScalarType.Float64);
        var collections = WhileCollecting(() =>
        {
            for (var i = 0; i < repetitions; i++)
            {
                using var scope = NewDisposeScope();
                sum.Accumulate_(one);
                total.copy_(total.Plus(one));
            }
        });
        Assert.True(collections > 10, $"the churn thread should have forced collections ({collections})");
        Assert.Equal(Enumerable.Repeat((double)repetitions, 4), sum.data<double>().ToArray());
        Assert.Equal(Enumerable.Repeat((double)repetitions, 4), total.data<double>().ToArray());
    }
}
