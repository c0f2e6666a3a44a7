using System.Text.Json.Nodes;
using WideValley.Tests.Support;

namespace WideValley.Tests.Distributed;

/// <summary>
/// <c>widevalley landscape</c> under <c>mpirun -np 2</c>: the two ranks split the evaluation set of a trained small
/// mnistfc (500 samples in 5 batches: 3 on rank 0, 2 on rank 1), and every slice's landscape.json and CSV equal one
/// process's to summation order. Launched as two programs (MPMD, as in <see cref="MpiHessianCommandTests"/>) so that
/// rank 1's --out differs from rank 0's: rank 1 must create nothing and print nothing on stdout. A missing mpirun is a
/// failure, not a skip.
/// </summary>
public class MpiLandscapeCommandTests(ITestOutputHelper output)
{
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);

    /// <summary>Float64 losses and errors summed over the ranks in another order (measured: at most 1e-15).</summary>
    const double Tolerance = 1e-10;

    /// <summary>Keys that legitimately differ: wall times, where it was written, and the rank count itself.</summary>
    static bool Unequal(string key) => key is "out" or "ranks" || key.EndsWith("seconds", StringComparison.Ordinal);

    static string[] Slice(string run, string kind, string outDir, string[] extra) =>
    [
        "landscape", "--checkpoint", run, "--slice", kind, "--samples", "500", "--batch-size", "100", "--dtype", "float64",
        "--threads", "1", "--json", "--out", outDir, .. extra,
    ];

    [Theory]
    [InlineData("1d", "7")]
    [InlineData("2d", "4")]
    [InlineData("interp", "6")]
    public void TwoRanksWriteTheSliceOneProcessWritesAndRankOneWritesNothing(string kind, string points)
    {
        using var dir = new TempDir("widevalley-mpi-landscape-command");
        var run = MpiJob.TrainSmallMnistFc(dir.File("run"), output);
        string[] extra = kind == "interp"
            ? ["--points", points, "--other", MpiJob.TrainSmallMnistFc(dir.File("other"), output, seed: 2)]
            : ["--points", points];
        var (one, two, ghost) = (dir.File("one"), dir.File("two"), dir.File("rank1"));
        var single = MpiJob.Run(MpiJob.Widevalley(), Slice(run, kind, one, extra), Timeout, output);
        Assert.True(single.ExitCode == 0, $"one process exited with {single.ExitCode}:\n{single.Errors}");
        var job = MpiJob.Run(MpiJob.Mpirun(),
            [.. MpiJob.MpirunArguments(1), MpiJob.Widevalley(), .. Slice(run, kind, two, extra),
             ":", "-np", "1", MpiJob.Widevalley(), .. Slice(run, kind, ghost, extra)], Timeout, output);
        Assert.True(job.ExitCode == 0, $"mpirun exited with {job.ExitCode}:\n{job.Output}\n{job.Errors}");

        Assert.False(Directory.Exists(ghost), $"rank 1 created its --out folder {ghost}");
        var objects = job.Output.Split('\n').Where(l => l.TrimStart().StartsWith('{')).ToList();
        Assert.True(objects.Count == 1, $"stdout of the 2-rank job must hold exactly one JSON object (rank 0's); it holds {objects.Count}:\n{job.Output}");
        Assert.Contains("landscape: 2 MPI ranks share the evaluation set", job.Errors, StringComparison.Ordinal);

        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(two, "landscape.json")))!.AsObject();
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(one, "landscape.json")))!.AsObject();
        Assert.Equal(written.ToJsonString(), JsonNode.Parse(objects[0])!.ToJsonString());
        Assert.Equal(2, (int)written["ranks"]!);
        Assert.Null(reference["ranks"]);
        Assert.Equal(500, (long)written["samples"]!);
        Assert.Equal(Directory.GetFiles(one).Select(Path.GetFileName).Order(), Directory.GetFiles(two).Select(Path.GetFileName).Order());

        var (compared, worst, where) = SameNumbers.Json(reference, written, Unequal);
        output.WriteLine($"{kind}: {compared} numbers compared; largest relative difference {worst:E2} at {where}");
        var evaluations = kind == "2d" ? 16 : int.Parse(points);
        Assert.True(compared >= 3 * evaluations, $"{kind}: only {compared} numbers compared");
        Assert.True(worst <= Tolerance, $"{kind}: {where} differs from one process's by {worst:E3} relative (tolerance {Tolerance:E0})");
        var (rows, tableWorst, at) = SameNumbers.Table(Path.Combine(one, $"{kind}.csv"), Path.Combine(two, $"{kind}.csv"));
        output.WriteLine($"{kind}: {kind}.csv, {rows} rows; largest relative difference {tableWorst:E2} at {at}");
        Assert.Equal(evaluations, rows);
        Assert.True(tableWorst <= Tolerance, $"{kind}: {kind}.csv differs from one process's by {tableWorst:E3} relative at {at}");
    }
}
