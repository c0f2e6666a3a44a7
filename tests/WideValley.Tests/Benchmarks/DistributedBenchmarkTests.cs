using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Benchmarks;

/// <summary>
/// `widevalley bench distributed`: the latency/bandwidth fit and the ring-allreduce scaling model against closed forms,
/// the command's refusals, and one tiny real run whose allreduce part runs under mpirun -np 2.
/// </summary>
public class DistributedBenchmarkTests
{
    static AllreduceTiming Exact(long elements, double latency, double bytesPerSecond) =>
        new(elements, [latency + elements * 4 / bytesPerSecond, latency + elements * 4 / bytesPerSecond, latency + elements * 4 / bytesPerSecond]);

    [Fact]
    public void TheFitRecoversLatencyAndBandwidthFromExactTimes()
    {
        var timings = new[] { 1L, 256, 65_536, 4_194_304 }.Select(n => Exact(n, 3e-6, 2.5e9)).ToList();
        var fit = AllreduceFit.Of(timings);
        Assert.Equal(3e-6, fit.LatencySeconds, 1e-12);
        Assert.Equal(2.5e9, fit.BytesPerSecond, 2.5e9 * 1e-9);
        Assert.Equal(3e-6 + 1e6 / 2.5e9, fit.Seconds(1e6), 1e-12);
    }

    [Fact]
    public void AFitWithoutMeasurableLatencyClampsItAtZero()
    {
        // Times proportional to size with the small one slightly fast: the unconstrained fit's latency is negative.
        var timings = new List<AllreduceTiming> { new(1_000, [0.9e-6, 0.9e-6, 0.9e-6]), new(1_000_000, [1e-3, 1e-3, 1e-3]) };
        var fit = AllreduceFit.Of(timings);
        Assert.Equal(0, fit.LatencySeconds);
        Assert.InRange(fit.BytesPerSecond, 3.9e9, 4.5e9);
        Assert.Throws<ArgumentException>(() => AllreduceFit.Of([timings[0]]));
    }

    [Fact]
    public void TimesThatDoNotGrowWithSizeGiveNoBandwidthAndSayWhy()
    {
        // Two tiny messages timed alike (latency only): the slope is zero, the bandwidth infinite, and the report says so.
        var fit = AllreduceFit.Of([new(1, [4e-3, 4e-3, 4e-3]), new(16, [4e-3, 4e-3, 4e-3])]);
        Assert.Equal(4e-3, fit.LatencySeconds, 1e-12);
        Assert.True(double.IsPositiveInfinity(fit.BytesPerSecond));
        Assert.Contains("not measurable", DistributedBenchmark.Bandwidth(fit.BytesPerSecond));
        Assert.Equal("2.5 GB/s", DistributedBenchmark.Bandwidth(2.5e9));
    }

    [Fact]
    public void RingAllreduceFollowsItsClosedForm()
    {
        var link = new NetworkLink("test", 10e9, 25e-6);
        Assert.Equal(0, link.RingAllreduceSeconds(8e6, 1));
        // K = 2: 2 steps of one hop plus half the bytes each.
        Assert.Equal(2 * (25e-6 + 4e6 / 1.25e9), link.RingAllreduceSeconds(8e6, 2), 1e-15);
        // Large K: the bandwidth term tends to 2 bytes / bandwidth, the latency term grows linearly.
        Assert.Equal(2 * 511 * (25e-6 + 8e6 / 512 / 1.25e9), link.RingAllreduceSeconds(8e6, 512), 1e-12);
    }

    [Fact]
    public void PredictionsChargeDataParallelEveryStepAndParleEveryLSteps()
    {
        var compute = new ComputeTiming("net", 1_000_000, 128, [0.1, 0.1, 0.1]);
        var link = new NetworkLink("slow", 1e9, 1e-4);
        var p = DistributedBenchmark.Predict(compute, link, 64, 25);
        var t = link.RingAllreduceSeconds(4e6, 64);
        Assert.Equal(64 * 128 / (0.1 + t), p.DataParallelImagesPerSecond, 1e-6);
        Assert.Equal(64 * 128 / (0.1 + t / 25), p.ParleImagesPerSecond, 1e-6);
        Assert.Equal(1280, p.SingleImagesPerSecond, 1e-9);
        Assert.Equal(0.1 / (0.1 + t), p.DataParallelEfficiency, 1e-12);
        Assert.True(p.ParleEfficiency > p.DataParallelEfficiency);
        var (dp, parle) = DistributedBenchmark.AllreduceBudget(compute, 0.9, 25);
        Assert.Equal(0.1 / 9, dp, 1e-15);
        Assert.Equal(25 * 0.1 / 9, parle, 1e-15);
    }

    [Theory]
    [InlineData("--ranks", "1", "--ranks must be at least 2")]
    [InlineData("--sizes", "5", "--sizes must list at least two sizes")]
    [InlineData("--sizes", "5,x", "--sizes: 'x' is not a positive whole number")]
    [InlineData("--repetitions", "2", "--repetitions must be at least 3")]
    [InlineData("--networks", "resnet9000", "--networks resnet9000: unknown network")]
    [InlineData("--mpirun", "/no/such/mpirun", "--mpirun /no/such/mpirun: no such file")]
    public void BadOptionsAreRefusedBeforeAnythingRuns(string option, string value, string expected)
    {
        var (code, output, err) = InProcessCli.Run("bench", "distributed", option, value);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err + output);
    }

    [Fact]
    public void ATinyRunTimesAllreducesOverTwoRanksAndPredictsScaling()
    {
        using var dir = new TempDir();
        var (code, output, err) = InProcessCli.Run("bench", "distributed", "--sizes", "1,4096", "--repetitions", "3", "--warmup", "1",
            "--steps", "3", "--networks", "mnistfc", "--batch-size", "16", "--train-evaluations", "0", "--report", dir.File("bench-distributed.md"));
        Assert.True(code == ExitCodes.Ok, err + output);
        var json = JsonNode.Parse(File.ReadAllText(dir.File("bench-distributed.json")))!;
        Assert.Equal(2, json["ranks"]!.GetValue<int>());
        var sizes = json["allreduce"]!.AsArray();
        Assert.Equal([1L, 4096L], sizes.Select(s => s!["elements"]!.GetValue<long>()));
        foreach (var s in sizes) Assert.Equal(3, s!["seconds"]!.AsArray().Count);
        // On a loaded machine two small sizes may time alike (the ranks' scheduling, not the copy): then the bandwidth
        // is null, never a non-positive number.
        Assert.True(json["fit"]!["bytes_per_second"] is null || json["fit"]!["bytes_per_second"]!.GetValue<double>() > 0);
        Assert.True(json["fit"]!["latency_seconds"]!.GetValue<double>() >= 0);
        var compute = Assert.Single(json["compute"]!.AsArray())!;
        Assert.Equal(1_867_786, compute["parameters"]!.GetValue<long>());
        Assert.Equal(2 * DistributedBenchmark.ModelRanks.Count, json["predictions"]!.AsArray().Count);
        var md = File.ReadAllText(dir.File("bench-distributed.md"));
        Assert.Contains("## Allreduce over 2 ranks", md);
        Assert.Contains("| mnistfc | 100 Gbit/s RDMA", md);
        Assert.Contains("allreduce over 2 ranks: latency", output);
        Assert.Empty(json["throughput"]!.AsArray());
        Assert.DoesNotContain("## Training throughput", md);
    }

    [Fact]
    public void ThroughputRunsTrainEveryConfigurationThroughTheLibraryUnderMpirun()
    {
        using var dir = new TempDir();
        var (code, output, err) = InProcessCli.Run("bench", "distributed", "--sizes", "1,16", "--repetitions", "3", "--warmup", "1",
            "--steps", "3", "--networks", "mnistfc", "--batch-size", "16", "--train-samples", "512", "--train-evaluations", "3", "--train-warmup", "1", "--rounds", "1",
            "--report", dir.File("bench-distributed.md"));
        Assert.True(code == ExitCodes.Ok, err + output);
        var json = JsonNode.Parse(File.ReadAllText(dir.File("bench-distributed.json")))!;
        var runs = json["throughput"]!.AsArray();
        Assert.Equal(["single/1", "data-parallel/1", "data-parallel/2", "parle/1", "parle/2"],
            runs.Select(r => $"{r!["mode"]!.GetValue<string>()}/{r["ranks"]!.GetValue<int>()}"));
        foreach (var r in runs)
        {
            // At least the timed evaluations, on every rank: 3 x 16 images per rank.
            Assert.True(r!["images"]!.GetValue<double>() >= 3 * 16 * r["ranks"]!.GetValue<int>(), r.ToJsonString());
            Assert.True(r["seconds"]!.GetValue<double>() > 0);
        }
        var medians = json["throughput_medians"]!.AsArray();
        Assert.Equal(1.0, medians.Single(m => m!["mode"]!.GetValue<string>() == "single")!["speedup_over_single"]!.GetValue<double>());
        var md = File.ReadAllText(dir.File("bench-distributed.md"));
        Assert.Contains("## Training throughput on this machine", md);
        Assert.Contains("| mnistfc | parle | 2 |", md);
        Assert.Contains("mnistfc data-parallel on 2 ranks:", output);
    }

    [Theory]
    [InlineData("--train-evaluations", "-1", "--train-evaluations must be 0")]
    [InlineData("--rounds", "0", "--rounds must be at least 1")]
    [InlineData("--train-warmup", "-1", "--train-warmup must be zero or positive")]
    [InlineData("--train-samples", "0", "--train-samples must be at least 1")]
    public void BadThroughputOptionsAreRefused(string option, string value, string expected)
    {
        var (code, output, err) = InProcessCli.Run("bench", "distributed", option, value);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err + output);
    }
}
