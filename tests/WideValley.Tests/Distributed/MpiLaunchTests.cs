using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using WideValley.Distributed;
using WideValley.Tests.Support;

namespace WideValley.Tests.Distributed;

/// <summary>
/// The MPI collectives for real: <c>mpirun -np 2</c> on this machine's loopback (shared memory) runs the probe program
/// (tests/WideValley.Distributed.Probe), whose every rank prints one JSON line per check; the expected values are
/// computed here from closed forms. Rank r holds v(r, i) = (r + 1) / 2 + (i mod 13), so every sum and mean over two
/// ranks is exact in float32 and the checks are exact equalities. A missing mpirun is a failure, not a skip: .ci/run
/// installs Open MPI. The MPICH test needs Debian's libmpich12 (.ci/run installs it; elsewhere it skips).
/// </summary>
public class MpiLaunchTests(ITestOutputHelper output)
{
    const int Ranks = 2;
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    // The probe, mpirun and its flags: one definition for every MPI test (MpiJob).
    static string Probe() => MpiJob.Probe();
    static string Mpirun() => MpiJob.Mpirun();
    static string[] MpirunArguments(int ranks) => MpiJob.MpirunArguments(ranks);

    sealed record Run(int ExitCode, string Output, string Errors, List<JsonObject> Records)
    {
        public IEnumerable<JsonObject> Of(int rank) => Records.Where(r => (int)r["rank"]! == rank);
    }

    /// <summary>
    /// Runs the program; the records come from each rank's own output file when it is mpirun (see
    /// <see cref="MpiJob.OutputPerRank"/>), from its standard output otherwise.
    /// </summary>
    Run Launch(string program, IEnumerable<string> arguments, IDictionary<string, string?>? environment = null)
    {
        var underMpirun = Path.GetFileName(program) == "mpirun";
        using var perRank = new TempDir("widevalley-mpi-output");
        if (underMpirun) arguments = [.. MpiJob.OutputPerRank(perRank.Path), .. arguments];
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // Containers and CI run as root, which Open MPI refuses without both of these.
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        info.Environment.Remove(Collectives.LibraryVariable);
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>()) info.Environment[key] = value;

        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{Path.GetFileName(program)} did not end within {Timeout.TotalMinutes} minutes; output so far:\n{stdout.Result}\n{stderr.Result}");
        }
        process.WaitForExit();
        var (text, errors) = (stdout.Result, stderr.Result);
        output.WriteLine($"$ {Path.GetFileName(program)} {string.Join(' ', info.ArgumentList)}\nexit code {process.ExitCode}");
        output.WriteLine(errors);
        return new Run(process.ExitCode, text, errors, underMpirun ? MpiJob.ProbeRecordsOfRanks(perRank.Path) : MpiJob.ProbeRecords(text));
    }

    /// <summary>Sum over i &lt; n of (i mod 13).</summary>
    static double ModuloSum(long n) => n / 13 * 78 + n % 13 * (n % 13 - 1) / 2;

    /// <summary>v(r, i) = (r + 1) / 2 + (i mod 13), as the probe fills rank r's tensor.</summary>
    static double Value(int rank, long i) => (rank + 1) * 0.5 + i % 13;

    /// <summary>Checks one record of an allreduce or broadcast against its closed form.</summary>
    static void Verify(JsonObject record, int size)
    {
        var check = (string)record["check"]!;
        var n = (long)record["n"]!;
        double Expected(long i) => check switch
        {
            "broadcast" or "broadcast-split-300" => Value((int)record["root"]!, i),
            "allreduce-average" => (Enumerable.Range(0, size).Sum(r => Value(r, i))) / size,
            "flat-buffer-average" => (size + 1) / 2.0,
            _ => Enumerable.Range(0, size).Sum(r => Value(r, i)),
        };
        double checksum = check switch
        {
            "broadcast" or "broadcast-split-300" => n * ((int)record["root"]! + 1) * 0.5 + ModuloSum(n),
            "allreduce-average" => n * (size + 1) / 4.0 + ModuloSum(n),
            "flat-buffer-average" => n * (size + 1) / 2.0,
            _ => n * size * (size + 1) / 4.0 + size * ModuloSum(n),
        };
        var what = record.ToJsonString();
        Assert.True(0 == (long)record["mismatches"]!, $"elements differ from the closed form: {what}");
        Assert.True(checksum == (double)record["checksum"]!, $"checksum {record["checksum"]} instead of {checksum}: {what}");
        Assert.True(Expected(0) == (double)record["first"]!, $"first element {record["first"]} instead of {Expected(0)}: {what}");
        Assert.True(Expected(n - 1) == (double)record["last"]!, $"last element {record["last"]} instead of {Expected(n - 1)}: {what}");
    }

    /// <summary>The checks every rank makes, per dtype (see the probe's Program.cs), besides start, barrier and done.</summary>
    static readonly string[] ChecksPerDtype =
    [
        .. new[] { 1L, 7, 1000, 1_000_000 }.SelectMany(n => new[] { $"allreduce-sum/{n}", $"allreduce-average/{n}" }),
        "allreduce-sum-offset-view/1000", "allreduce-sum-split-300/1000", "broadcast-split-300/1000",
        "broadcast/1000/root0", "broadcast/1000/root1", "flat-buffer-average/39",
    ];

    static string Key(JsonObject r) =>
        $"{r["check"]}/{r["n"]}" + ((string)r["check"]! == "broadcast" ? $"/root{r["root"]}" : "");

    [Fact]
    public void TwoRanksUnderMpirunSumAverageBroadcastAndMeetAtTheBarrier()
    {
        var mpirun = Mpirun();
        using var markers = new TempDir("widevalley-mpi-barrier");
        var run = Launch(mpirun, [.. MpirunArguments(Ranks), Probe(), "--marker-dir", markers.Path, "--timing"]);
        Assert.True(run.ExitCode == 0, $"mpirun exited with {run.ExitCode}:\n{run.Output}\n{run.Errors}");

        for (var rank = 0; rank < Ranks; rank++)
        {
            var records = run.Of(rank).ToList();
            var start = Assert.Single(records, r => (string)r["check"]! == "start");
            Assert.Equal(nameof(MpiCollectives), (string)start["implementation"]!);
            Assert.Equal(nameof(MpiAbi.OpenMpi), (string)start["abi"]!);
            Assert.Equal("libmpi.so.40", (string)start["library"]!);
            Assert.True((int)start["thread_level"]! >= 2, $"threading level {start["thread_level"]} below MPI_THREAD_SERIALIZED");
            Assert.All(records, r => Assert.Equal(Ranks, (int)r["size"]!));

            foreach (var dtype in new[] { "Float32", "Float64" })
            {
                var checks = records.Where(r => (string?)r["dtype"] == dtype && (string)r["check"]! != "timing").ToList();
                Assert.Equal(ChecksPerDtype.Order(), checks.Select(Key).Order());
                Assert.All(checks, r => Verify(r, Ranks));
            }
            Assert.All(records.Where(r => (string)r["check"]! == "allreduce-sum-offset-view"), r =>
            {
                Assert.Equal(37, (long)r["storage_offset"]!);
                Assert.True((bool)r["guards_intact"]!, "the allreduce of a view wrote outside it");
            });
            Assert.All(records.Where(r => (string)r["check"]! == "flat-buffer-average"), r =>
            {
                Assert.Equal(4, (int)r["tensors"]!);
                Assert.True((bool)r["parameters_match"]!, "the parameters are not the averaged flat buffer");
            });
            VerifyMpiError(Assert.Single(records, r => (string)r["check"]! == "mpi-error"));
            // Rank 1 writes its marker 0.7 s late and only then enters the barrier: rank 0 sees it only if it waited.
            Assert.True((bool)Assert.Single(records, r => (string)r["check"]! == "barrier")["marker_seen"]!,
                $"rank {rank} left the barrier before rank 1 reached it");
            Assert.Single(records, r => (string)r["check"]! == "done");
            // 40 records of 3,000 bytes each, printed by both ranks at once: all of them whole (none cut by the other
            // rank's output), in order. The payload rule is the probe's LongRecordPayload.
            var longRecords = records.Where(r => (string)r["check"]! == "long-record").ToList();
            Assert.Equal(Enumerable.Range(0, 40), longRecords.Select(r => (int)r["index"]!));
            Assert.All(longRecords, r => Assert.Equal(
                string.Concat(Enumerable.Repeat($"r{rank}i{(int)r["index"]!:D2}-", 3000 / 7)).PadRight(3000, '.'), (string)r["payload"]!));
            foreach (var t in records.Where(r => (string)r["check"]! == "timing"))
                output.WriteLine($"rank {rank}: in-place allreduce of 1M {t["dtype"]}: median {t["median_ms"]} ms, min {t["min_ms"]} ms (2 ranks, loaded machine; not a benchmark)");
        }
    }

    [Fact]
    public void ARankThatDiesAbortsTheWholeJobInsteadOfLeavingTheOthersWaiting()
    {
        var mpirun = Mpirun();
        var run = Launch(mpirun, [.. MpirunArguments(Ranks), Probe(), "--crash-rank", "1"]);
        var all = run.Output + run.Errors;
        Assert.True(run.ExitCode != 0, $"the job of a crashed rank exited with 0:\n{all}");
        Assert.Contains("probe: deliberate crash of rank 1", all);
        Assert.Contains("rank 1 of 2", all);
        Assert.Contains("aborting the MPI job", all);
        Assert.DoesNotContain(run.Records, r => (string)r["check"]! == "crash-survived");
        // Not asserted: the ranks' JSON lines on stdout. MPI_Abort kills the job while mpirun may still hold their
        // output unforwarded (a clean-clone CI run lost rank 1's "start" line); the crash message above is on stderr,
        // written before the abort.
    }

    [Fact]
    public void RanksThatNeverDisposeTheirCollectivesAreFinalisedAtExit()
    {
        var mpirun = Mpirun();
        var run = Launch(mpirun, [.. MpirunArguments(Ranks), Probe(), "--leave-open"]);
        var all = run.Output + run.Errors;
        // Without MPI_Finalize, Open MPI's mpirun fails the job ("exited ... without calling finalize").
        Assert.True(run.ExitCode == 0, $"mpirun exited with {run.ExitCode}:\n{all}");
        Assert.DoesNotContain("finalize", all, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(Ranks, run.Records.Count(r => (string)r["check"]! == "left-open"));
    }

    [Fact]
    public void MpichIsDetectedAndWorksAsASingleton()
    {
        var installed = NativeLibrary.TryLoad("libmpich.so.12", out var handle);
        if (installed) NativeLibrary.Free(handle);
        TestMachine.Require(installed,
            "MPICH's library libmpich.so.12 (sudo apt-get install libmpich12; the library only, not the mpich package, whose " +
            "launcher would take over Open MPI's mpirun)");
        var run = Launch(Probe(), ["--mpi"], new Dictionary<string, string?> { [Collectives.LibraryVariable] = "libmpich.so.12" });
        Assert.True(run.ExitCode == 0, $"the probe on MPICH exited with {run.ExitCode}:\n{run.Output}\n{run.Errors}");
        var start = Assert.Single(run.Records, r => (string)r["check"]! == "start");
        Assert.Equal(nameof(MpiAbi.Mpich), (string)start["abi"]!);
        Assert.Equal("libmpich.so.12", (string)start["library"]!);
        Assert.StartsWith("MPI rank 0 of 1: MPICH Version: 4", (string)start["description"]!);
        var checks = run.Records.Where(r => r["dtype"] is not null).ToList();
        // One rank: no broadcast from rank 1; everything else as under mpirun, including the split calls.
        Assert.Equal(2 * (ChecksPerDtype.Length - 1), checks.Count);
        Assert.All(checks, r => Verify(r, 1));
        VerifyMpiError(Assert.Single(run.Records, r => (string)r["check"]! == "mpi-error"));
        Assert.Single(run.Records, r => (string)r["check"]! == "done");
    }

    /// <summary>A broadcast from a rank that does not exist, passed to MPI unchecked, comes back as an MpiException naming MPI_Bcast.</summary>
    static void VerifyMpiError(JsonObject record)
    {
        Assert.True((string?)record["call"] == "MPI_Bcast", $"no MpiException for MPI_Bcast from a missing root: {record.ToJsonString()}");
        var message = (string)record["message"]!;
        Assert.StartsWith("MPI_Bcast failed with MPI error code ", message);
        Assert.Contains("root", message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void AMissingMpiLibraryStopsTheProgramWithWhatToInstall()
    {
        var run = Launch(Probe(), ["--mpi"], new Dictionary<string, string?> { [Collectives.LibraryVariable] = "libwidevalley-no-such-mpi.so.40" });
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(nameof(MpiLibraryNotFoundException), run.Errors);
        Assert.Contains("libwidevalley-no-such-mpi.so.40", run.Errors);
        Assert.Contains("sudo apt-get install openmpi-bin", run.Errors);
        Assert.Empty(run.Records);
    }
}
