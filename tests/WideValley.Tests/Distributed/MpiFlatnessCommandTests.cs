using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using WideValley.Tests.Support;

namespace WideValley.Tests.Distributed;

/// <summary>
/// <c>widevalley flatness</c> under <c>mpirun -np 2</c>: the two ranks split the evaluation sets (training and test
/// samples) of a trained small mnistfc for every one of the report's 14 measures, and flatness.json and every CSV table
/// equal one process's to summation order. Launched as two programs (MPMD) so that rank 1's --out differs: it must
/// never appear. A 2-rank job also resumes a one-process store (rank 0 reads it and tells rank 1 what is there), and
/// measures only what is missing. A missing mpirun is a failure, not a skip.
/// </summary>
public class MpiFlatnessCommandTests(ITestOutputHelper output)
{
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(6);

    /// <summary>
    /// Largest difference allowed between a number of the 2-rank report and one process's, relative to its siblings'
    /// (or its column's) largest magnitude: float64 products summed in another order (measured: at most 5.5e-13, a
    /// density's Hutchinson standard error).
    /// </summary>
    const double Tolerance = 1e-10;

    /// <summary>Wall times and what depends on them (unit times, estimates), the command line and machine, and whether a measurement was reused.</summary>
    static bool Skipped(string key) =>
        key.EndsWith("seconds", StringComparison.Ordinal) || key is "command" or "machine" or "units" or "estimates" or "estimate" or "reused";

    static string[] Flatness(string run, string outDir) =>
        ["flatness", run, "--budget", "quick", "--samples", "400", "--batch-size", "100", "--dtype", "float64", "--threads", "1", "--out", outDir];

    MpiJob.Outcome TwoRanks(string run, string rank0Out, string rank1Out)
    {
        var job = MpiJob.Run(MpiJob.Mpirun(),
            [.. MpiJob.MpirunArguments(1), MpiJob.Widevalley(), .. Flatness(run, rank0Out), ":", "-np", "1", MpiJob.Widevalley(), .. Flatness(run, rank1Out)],
            Timeout, output);
        Assert.True(job.ExitCode == 0, $"mpirun exited with {job.ExitCode}:\n{job.Output}\n{job.Errors}");
        Assert.False(Directory.Exists(rank1Out), $"rank 1 created its --out folder {rank1Out}");
        Assert.Contains("flatness: 2 MPI ranks share the evaluation set", job.Output, StringComparison.Ordinal);
        return job;
    }

    void AssertSameReport(string one, string two, string what)
    {
        var reference = JsonNode.Parse(File.ReadAllText(Path.Combine(one, "flatness.json")))!;
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(two, "flatness.json")))!;
        var (compared, worst, where) = SameNumbers.Json(reference, written, Skipped);
        output.WriteLine($"{what}: flatness.json, {compared} numbers compared; largest relative difference {worst:E2} at {where}");
        Assert.True(compared > 500, $"{what}: only {compared} numbers compared");
        Assert.True(worst <= Tolerance, $"{what}: {where} differs from one process's by {worst:E3} relative (tolerance {Tolerance:E0})");
        var tables = Directory.GetFiles(Path.Combine(one, "csv"), "*.csv");
        Assert.True(tables.Length >= 10, $"{what}: only {tables.Length} tables");
        Assert.Equal(tables.Select(Path.GetFileName).Order(), Directory.GetFiles(Path.Combine(two, "csv"), "*.csv").Select(Path.GetFileName).Order());
        var tableWorst = tables.Select(t => (Name: Path.GetFileName(t), Difference: SameNumbers.Table(t, Path.Combine(two, "csv", Path.GetFileName(t)))))
            .MaxBy(t => t.Difference.Worst);
        output.WriteLine($"{what}: {tables.Length} tables; largest relative difference {tableWorst.Difference.Worst:E2} in {tableWorst.Name} at {tableWorst.Difference.Where}");
        Assert.True(tableWorst.Difference.Worst <= Tolerance, $"{what}: {tableWorst.Name} differs by {tableWorst.Difference.Worst:E3} at {tableWorst.Difference.Where}");
    }

    [Fact]
    public void TwoRanksReportWhatOneProcessReportsAndResumeItsStore()
    {
        using var dir = new TempDir("widevalley-mpi-flatness");
        var run = MpiJob.TrainSmallMnistFc(dir.File("run"), output);
        var one = dir.File("one");
        var single = MpiJob.Run(MpiJob.Widevalley(), Flatness(run, one), Timeout, output);
        Assert.True(single.ExitCode == 0, $"one process exited with {single.ExitCode}:\n{single.Errors}");

        var two = dir.File("two");
        var job = TwoRanks(run, two, dir.File("rank1"));
        Assert.Equal(14, Regex.Matches(job.Output, @"^run: \S+ done in", RegexOptions.Multiline).Count);
        AssertSameReport(one, two, "2 ranks");
        Assert.EndsWith("; 2 MPI ranks sharing the evaluation sets", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(two, "flatness.json")))!["machine"]!);
        Assert.DoesNotContain("MPI ranks", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(one, "flatness.json")))!["machine"]!);

        // A 2-rank job resumes one process's store: rank 0 reads it, and both ranks measure only the two that are missing.
        var three = dir.File("three");
        CopyFolder(Path.Combine(one, ".flatness"), Path.Combine(three, ".flatness"));
        var missing = new[] { "surface", "sam-sharpness" };
        foreach (var measure in missing)
            foreach (var stored in Directory.GetFiles(Path.Combine(three, ".flatness"), measure + ".json", SearchOption.AllDirectories)) File.Delete(stored);
        var resumed = TwoRanks(run, three, dir.File("rank1-again"));
        Assert.Equal(12, Regex.Matches(resumed.Output, "already measured under these settings").Count);
        Assert.Equal(missing.Order(), Regex.Matches(resumed.Output, @"^run: (\S+) done in", RegexOptions.Multiline).Select(m => m.Groups[1].Value).Order());
        AssertSameReport(one, three, "2 ranks resuming one process's store");
    }

    static void CopyFolder(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
