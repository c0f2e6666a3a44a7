using System.Text.Json.Nodes;
using WideValley.Tests.Support;

namespace WideValley.Tests.Distributed;

/// <summary>
/// <c>widevalley hessian</c> under <c>mpirun -np 2</c> (issue 22 §3, the command-line face of
/// <see cref="MpiLandscapeTests"/>): the two ranks split the evaluation set of a trained small mnistfc, and every
/// method's hessian.json numbers equal one process's to summation order. The job is launched as two programs (MPMD:
/// <c>mpirun -np 1 widevalley ... --out A : -np 1 widevalley ... --out B</c>) so that rank 1's --out differs from rank
/// 0's: rank 1 must write nothing at all (its folder never appears) and print nothing on stdout (with --json, stdout
/// holds exactly one object). Also: a rank that fails ends the whole job with its message, and a command that does not
/// use ranks is refused under a launcher before anything runs. A missing mpirun is a failure, not a skip.
/// </summary>
public class MpiHessianCommandTests(ITestOutputHelper output)
{
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);

    /// <summary>
    /// Largest difference allowed between a number of the 2-rank hessian.json and one process's, relative to the largest
    /// magnitude among its siblings (an array's entries; a lone number: itself). Float64 products summed in another order
    /// (measured: at most 2e-14, SLQ's quadrature weights).
    /// </summary>
    const double Tolerance = 1e-10;

    /// <summary>
    /// Keys that legitimately differ: wall times (every key ending in "seconds"), where it was written, the files listed, the rank count itself, and the
    /// exact route's memory limit (the machine's available memory at the time, and over 2 ranks on one machine each
    /// rank's half of it).
    /// </summary>
    static readonly string[] UnequalKeys = ["out", "files", "ranks", "columns_dir", "memory_limit_bytes"];

    static bool Unequal(string key) => UnequalKeys.Contains(key) || key.EndsWith("seconds", StringComparison.Ordinal);

    static string[] Measure(string run, string method, string outDir, int samples = 500) =>
    [
        "hessian", "--checkpoint", run, "--method", method, "--samples", samples.ToString(), "--batch-size", "100", "--dtype", "float64",
        "--threads", "1", "--json", "--out", outDir,
    ];

    /// <summary>The methods, each with its sizes: every route of §3 (HVP products, Lanczos, SLQ, Hutchinson, the exact Hessian's columns).</summary>
    public static TheoryData<string, string[]> Methods => new()
    {
        { "lanczos", ["--top", "2", "--steps", "60"] },
        { "slq", ["--probes", "2", "--steps", "15", "--classify"] },
        { "trace", ["--probes", "12", "--layerwise"] },
        { "diag-fisher", [] },
        // The last layer, n = 650: every column summed over the ranks, the column folder on rank 0 alone. Not classified:
        // its spectrum has eigenvalues at zero (the logits' shift) whose signs are rounding, and a Kolmogorov-Smirnov
        // distance to a law with an atom at zero jumps with them (measured: 0.159 against 0.156); SLQ's is classified.
        { "exact", ["--params", "body.fc2", "--keep-columns"] },
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void TwoRanksWriteWhatOneProcessWritesAndRankOneWritesNothing(string method, string[] sizes)
    {
        using var dir = new TempDir("widevalley-mpi-hessian");
        var run = MpiJob.TrainSmallMnistFc(dir.File("run"), output);
        var (one, two, ghost) = (dir.File("one"), dir.File("two"), dir.File("rank1"));
        var single = MpiJob.Run(MpiJob.Widevalley(), [.. Measure(run, method, one), .. sizes], Timeout, output);
        Assert.True(single.ExitCode == 0, $"one process exited with {single.ExitCode}:\n{single.Errors}");
        var job = MpiJob.Run(MpiJob.Mpirun(),
            [.. MpiJob.MpirunArguments(1), MpiJob.Widevalley(), .. Measure(run, method, two), .. sizes,
             ":", "-np", "1", MpiJob.Widevalley(), .. Measure(run, method, ghost), .. sizes], Timeout, output);
        Assert.True(job.ExitCode == 0, $"mpirun exited with {job.ExitCode}:\n{job.Output}\n{job.Errors}");

        // Rank 1 wrote nothing, not even its folder or a column store, and printed nothing on stdout.
        Assert.False(Directory.Exists(ghost), $"rank 1 created its --out folder {ghost}");
        var objects = job.Output.Split('\n').Where(l => l.TrimStart().StartsWith('{')).ToList();
        Assert.True(objects.Count == 1, $"stdout of the 2-rank job must hold exactly one JSON object (rank 0's); it holds {objects.Count}:\n{job.Output}");
        Assert.DoesNotContain("\u001b", job.Output, StringComparison.Ordinal); // no terminal escapes in front of the object
        Assert.Contains("2 MPI ranks share the evaluation set", job.Errors, StringComparison.Ordinal);

        var stdoutJson = JsonNode.Parse(objects[0])!.AsObject();
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(two, "hessian.json")))!.AsObject();
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(one, "hessian.json")))!.AsObject();
        Assert.Equal(2, (int)written["ranks"]!);
        Assert.Null(reference["ranks"]);
        Assert.Equal(written.ToJsonString(), stdoutJson.ToJsonString());
        // The folders hold the same files (tables, plots, classification), so rank 0 wrote everything one process writes.
        Assert.Equal(Directory.GetFiles(one).Select(Path.GetFileName).Order(), Directory.GetFiles(two).Select(Path.GetFileName).Order());

        var (compared, worst, where) = SameNumbers.Json(reference, written, Unequal);
        output.WriteLine($"{method}: {compared} numbers compared; largest relative difference {worst:E2} at {where}");
        Assert.True(compared >= 5, $"{method}: only {compared} numbers compared");
        Assert.True(worst <= Tolerance, $"{method}: {where} differs from one process's by {worst:E3} relative (tolerance {Tolerance:E0})");
        foreach (var table in Directory.GetFiles(one, "*.csv").Select(Path.GetFileName))
        {
            var (rows, tableWorst, at) = SameNumbers.Table(Path.Combine(one, table!), Path.Combine(two, table!));
            output.WriteLine($"{method}: {table}, {rows} rows; largest relative difference {tableWorst:E2} (to its column's largest magnitude) at {at}");
            Assert.True(tableWorst <= Tolerance, $"{method}: {table} differs from one process's by {tableWorst:E3} relative at {at} (tolerance {Tolerance:E0})");
        }
        if (method == "exact")
        {
            // Kept (--keep-columns) by rank 0 alone, and complete: 650 columns.
            Assert.True(File.Exists(Path.Combine(two, "hessian-columns", "manifest.json")));
            Assert.Equal(650, (int)written["n_params"]!);
        }
    }

    [Fact]
    public void ARankThatFailsAloneEndsTheWholeJobWithItsMessage()
    {
        using var dir = new TempDir("widevalley-mpi-hessian-fail");
        var run = MpiJob.TrainSmallMnistFc(dir.File("run"), output);
        // The run trained on 512 samples: rank 1 asks for 600 and fails before its first product, while rank 0 goes on
        // into the products and would wait for rank 1 for ever if the failure did not end the job.
        var job = MpiJob.Run(MpiJob.Mpirun(),
            [.. MpiJob.MpirunArguments(1), MpiJob.Widevalley(), .. Measure(run, "trace", dir.File("out")),
             ":", "-np", "1", MpiJob.Widevalley(), .. Measure(run, "trace", dir.File("out"), samples: 600)], Timeout, output);
        Assert.NotEqual(0, job.ExitCode);
        var said = job.Output + job.Errors;
        Assert.Contains("error: rank 1 of 2: --samples 600: the run's training set has only 512 samples", said, StringComparison.Ordinal);
        Assert.True(job.Elapsed < TimeSpan.FromSeconds(60), $"the job took {job.Elapsed.TotalSeconds:0} s to end");
        Assert.False(File.Exists(Path.Combine(dir.File("out"), "hessian.json")));
    }

    [Fact]
    public void ACommandThatDoesNotUseRanksIsRefusedUnderALauncher()
    {
        var job = MpiJob.Run(MpiJob.Mpirun(), [.. MpiJob.MpirunArguments(2), MpiJob.Widevalley(), "models"], Timeout, output);
        Assert.NotEqual(0, job.ExitCode);
        var said = job.Output + job.Errors;
        Assert.Contains("models does not run over MPI ranks, and the launcher started 2 of it", said, StringComparison.Ordinal);
        // Rank 0 alone says it.
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(said, "does not run over MPI ranks"));
        Assert.DoesNotContain("mnistfc", said, StringComparison.Ordinal); // the model table was never printed
    }

}
