using System.Text.Json.Nodes;
using WideValley.Tests.Support;

namespace WideValley.Tests.Distributed;

/// <summary>
/// Landscape measurements over ranks for real (issue 22 §3): <c>mpirun -np 2</c> runs the probe program with
/// <c>--landscape</c> (tests/WideValley.Distributed.Probe/LandscapeChecks.cs), whose ranks each take their share of a
/// five-batch evaluation set (3 batches and 172 samples on rank 0, 2 batches and 128 samples on rank 1) and measure a
/// 421-parameter tanh network in float64 over the ranks and, for reference, as one process. Checked here: every
/// product, eigenvalue, density, trace and Hessian entry equals one process's to a stated relative tolerance (measured
/// on this machine: 0 to 5e-15), both ranks hold the same bits, a rank's share alone is far from the whole (so a
/// dropped share or a missing allreduce cannot pass), and the exact Hessian's column folder resumes on every rank.
/// A missing mpirun is a failure, not a skip, as in <see cref="MpiLaunchTests"/> (whose launcher this mirrors).
/// </summary>
public class MpiLandscapeTests(ITestOutputHelper output)
{
    const int Ranks = 2;
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(8);

    /// <summary>Float64 products and the exact Hessian: summation order alone (measured: at most 1.6e-16).</summary>
    const double ProductTolerance = 1e-12;

    /// <summary>Lanczos eigenvalues and SLQ nodes, weights and moments, relative to the largest (measured: at most 4.6e-15).</summary>
    const double KrylovTolerance = 1e-10;

    /// <summary>The float32 Hessian-vector product (measured: 8.4e-8).</summary>
    const double Float32Tolerance = 1e-5;

    static readonly (string Check, double Tolerance)[] Comparisons =
    [
        ("landscape-hvp", ProductTolerance), ("landscape-gradient", ProductTolerance), ("landscape-loss", ProductTolerance),
        ("landscape-evaluate", ProductTolerance), ("landscape-lanczos", KrylovTolerance), ("landscape-slq-moments", KrylovTolerance),
        ("landscape-slq-nodes", KrylovTolerance), ("landscape-slq-weights", KrylovTolerance), ("landscape-hutchinson", ProductTolerance),
        ("landscape-hutch++", ProductTolerance), ("landscape-exact", ProductTolerance), ("landscape-exact-resumed", ProductTolerance),
        ("landscape-gauss-newton", ProductTolerance), ("landscape-hvp-float32", Float32Tolerance),
    ];

    [Fact]
    public void TwoRanksMeasureTheHessianOfTheWholeSetAsOneProcessDoes()
    {
        using var work = new TempDir("widevalley-mpi-landscape");
        var records = Launch(Path.Combine(work.Path, "output"), [.. MpiJob.MpirunArguments(Ranks), MpiJob.Probe(), "--landscape", "--work-dir", work.Path]);
        JsonObject Of(int rank, string check)
        {
            var found = records.Where(r => (int)r["rank"]! == rank && (string)r["check"]! == check).ToList();
            Assert.True(found.Count == 1, $"rank {rank}: expected one '{check}' record, found {found.Count}");
            return found[0];
        }

        // The split: batch b on rank b mod 2, so unequal batches and samples per rank, nothing dropped or doubled.
        var setups = Enumerable.Range(0, Ranks).Select(r => Of(r, "landscape-setup")).ToArray();
        Assert.Equal([3, 2], setups.Select(s => (int)s["local_batches"]!));
        Assert.Equal([172L, 128L], setups.Select(s => (long)s["local_samples"]!));
        Assert.All(setups, s => Assert.Equal(300, (long)s["samples"]!));

        foreach (var (check, tolerance) in Comparisons)
        {
            var perRank = Enumerable.Range(0, Ranks).Select(r => Of(r, check)).ToArray();
            foreach (var record in perRank)
            {
                var difference = (double)record["max_relative_difference"]!;
                output.WriteLine($"rank {record["rank"]}: {check}: {record["elements"]} values, max relative difference to one process {difference:E2}");
                Assert.True(difference <= tolerance,
                    $"rank {record["rank"]}: {check} differs from one process by {difference:E2} (relative), above {tolerance:E0}: {record.ToJsonString()}");
            }
            // Every rank ran the same algorithm on the same allreduced products: the same bits everywhere.
            Assert.True(perRank.Select(r => (string)r["digest"]!).Distinct().Count() == 1,
                $"{check}: the ranks hold different numbers: {string.Join(" / ", perRank.Select(r => r.ToJsonString()))}");
        }

        // Each rank's share alone is far from the whole set's product (it holds 43% and 57% of the samples): a rank
        // that skipped the allreduce, or a share dropped from it, would be caught by the tolerance above.
        foreach (var rank in Enumerable.Range(0, Ranks))
        {
            var alone = (double)Of(rank, "landscape-hvp")["share_alone_relative_difference"]!;
            output.WriteLine($"rank {rank}: its share alone differs from the whole set's H v by {alone:E2} (relative)");
            Assert.True(alone > 0.1, $"rank {rank}: its share alone is within {alone:E2} of the whole product; the check could not tell a missing share");
        }

        // The exact Hessian: every column computed once, then every column resumed from rank 0's folder on both ranks.
        foreach (var rank in Enumerable.Range(0, Ranks))
        {
            Assert.Equal(421, (long)Of(rank, "landscape-exact")["computed_columns"]!);
            var resumed = Of(rank, "landscape-exact-resumed");
            Assert.Equal(0, (long)resumed["computed_columns"]!);
            Assert.Equal(421, (long)resumed["resumed_columns"]!);
            Of(rank, "landscape-done");
        }
        var columns = Path.Combine(work.Path, "columns");
        Assert.True(File.Exists(Path.Combine(columns, "manifest.json")), "no manifest in the exact Hessian's column folder");
        Assert.NotEmpty(Directory.EnumerateFiles(columns, "columns-*.bin"));
    }

    /// <summary>
    /// Runs mpirun with the arguments and returns every rank's "probe {...}" records, read from the rank's own output
    /// file under <paramref name="outputFolder"/> (<see cref="MpiJob.OutputPerRank"/>); a non-zero exit fails.
    /// </summary>
    List<JsonObject> Launch(string outputFolder, IEnumerable<string> arguments)
    {
        var run = MpiJob.Run(MpiJob.Mpirun(), [.. MpiJob.OutputPerRank(outputFolder), .. arguments], Timeout, output);
        Assert.True(run.ExitCode == 0, $"mpirun exited with {run.ExitCode}:\n{run.Output}\n{run.Errors}");
        return MpiJob.ProbeRecordsOfRanks(outputFolder);
    }
}
