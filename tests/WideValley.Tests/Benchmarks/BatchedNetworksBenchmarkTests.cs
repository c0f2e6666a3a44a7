using WideValley.Benchmarks;

namespace WideValley.Tests.Benchmarks;

/// <summary>The batched-networks benchmark on a tiny case: both trainers do the same arithmetic, and its outputs are complete. Timings are not judged.</summary>
public class BatchedNetworksBenchmarkTests
{
    [Fact]
    public void BothTrainersTakeTheSameStepsAndTheReportSaysSo()
    {
        var options = new BatchedNetworksBenchmarkOptions { Networks = 3, Hidden = 4, BatchSize = 5, Steps = 3, Rounds = 3, WarmupRounds = 0 };
        var r = BatchedNetworksBenchmark.Run(options);
        Assert.True(r.BatchedMs > 0 && r.SeparateMs > 0 && r.SharedOrderMs > 0);
        Assert.Equal(r.SeparateMs / r.BatchedMs, r.Speedup, 12);
        Assert.InRange(r.MaxParameterDifference, 0, 1e-5);
        var json = BatchedNetworksBenchmark.ToJson(r);
        foreach (var key in new[] { "batched_ms", "one_at_a_time_ms", "speedup", "shared_order_speedup", "target_met", "max_parameter_difference" })
            Assert.True(json.ContainsKey(key), $"the JSON lacks '{key}'");
        var md = BatchedNetworksBenchmark.Markdown(r, "widevalley bench batched-networks", "test machine");
        Assert.Contains("The target (at least x10 at n1 = 25)", md);
        Assert.Equal(3, BatchedNetworksBenchmark.Summary(r).Count()); // own orders, shared order, the parameter check
    }

    [Theory]
    [InlineData(0, 25, 3, "--network-count")]
    [InlineData(10, 0, 3, "--hidden-size")]
    [InlineData(10, 25, 2, "--rounds")]
    public void BadOptionsNameTheirFlag(int networks, int hidden, int rounds, string flag)
    {
        var options = new BatchedNetworksBenchmarkOptions { Networks = networks, Hidden = hidden, Rounds = rounds };
        Assert.Contains(flag, Assert.Throws<ArgumentException>(options.Validate).Message);
    }
}
