using System.Diagnostics;
using WideValley.Distributed;

namespace WideValley.Tests.Distributed;

/// <summary>
/// Starts programs under <c>mpirun</c> on this machine's loopback (shared memory), as MpiLaunchTests does, and the
/// built widevalley command itself: for tests that train over ranks. A missing mpirun is a failure, not a skip.
/// </summary>
static class MpiJob
{
    /// <summary>The launcher flags of docs/distributed.md: oversubscription, no binding, shared memory.</summary>
    public static string[] MpirunArguments(int ranks) =>
        ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader", "-np", ranks.ToString()];

    /// <summary>mpirun on the PATH, or a failure saying what to install.</summary>
    public static string Mpirun()
    {
        var found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "mpirun")).FirstOrDefault(File.Exists);
        Assert.True(found is not null,
            "mpirun is not on the PATH: the distributed training tests launch 2 ranks with it. Install Open MPI " +
            "(Debian/Ubuntu: sudo apt-get install openmpi-bin; .ci/run installs it). This is a failure, not a skip, so that " +
            "the distributed tests never pass without having run.");
        return found!;
    }

    /// <summary>
    /// The widevalley command as the CLI project builds it (the test project references it, so it is built first):
    /// tests/WideValley.Tests/bin/CONFIG/TFM/ -> src/WideValley.Cli/bin/CONFIG/TFM/widevalley.
    /// </summary>
    public static string Widevalley()
    {
        var folder = new DirectoryInfo(AppContext.BaseDirectory);
        var (tfm, config, root) = (folder.Name, folder.Parent!.Name, folder.Parent!.Parent!.Parent!.Parent!.Parent!.FullName);
        var path = Path.Combine(root, "src", "WideValley.Cli", "bin", config, tfm, "widevalley");
        Assert.True(File.Exists(path), $"expected the widevalley command at {path} (the test project builds the CLI project)");
        return path;
    }

    /// <summary>
    /// The MPI probe program as its project builds it (the test project references it):
    /// tests/WideValley.Tests/bin/CONFIG/TFM/ -> tests/WideValley.Distributed.Probe/bin/CONFIG/TFM/.
    /// </summary>
    public static string Probe()
    {
        var folder = new DirectoryInfo(AppContext.BaseDirectory);
        var (tfm, config, tests) = (folder.Name, folder.Parent!.Name, folder.Parent!.Parent!.Parent!.Parent!.FullName);
        var path = Path.Combine(tests, "WideValley.Distributed.Probe", "bin", config, tfm, "WideValley.Distributed.Probe");
        Assert.True(File.Exists(path), $"expected the MPI probe program at {path} (the test project builds it)");
        return path;
    }

    /// <summary>
    /// The mpirun flag that also writes each rank's output to its own file, FOLDER/JOB/rank.N/stdout. Tests that parse
    /// what several ranks print read those files (<see cref="ProbeRecordsOfRanks"/>): on the console, mpirun forwards
    /// each rank's output in whatever pieces its pseudo-terminal hands over, so two ranks printing at once can cut each
    /// other's lines (a clean-clone CI run lost a Lanczos record that way; 3,000-byte records are cut even when
    /// written in one call).
    /// </summary>
    public static string[] OutputPerRank(string folder) => ["--output-filename", folder];

    /// <summary>Every rank's "probe {...}" records from the files <see cref="OutputPerRank"/> had mpirun write.</summary>
    public static List<System.Text.Json.Nodes.JsonObject> ProbeRecordsOfRanks(string folder) =>
        Directory.Exists(folder)
            ? [.. Directory.EnumerateFiles(folder, "stdout", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                .SelectMany(file => ProbeRecords(File.ReadAllText(file)))]
            : [];

    /// <summary>
    /// Every "probe {...}" record in the output. Found by scanning, not by lines: mpirun forwards each rank's output
    /// through a pseudo-terminal, so .NET adds terminal escapes, and when a rank is killed its last line can be cut
    /// and run into another rank's.
    /// </summary>
    public static List<System.Text.Json.Nodes.JsonObject> ProbeRecords(string text)
    {
        var records = new List<System.Text.Json.Nodes.JsonObject>();
        for (var at = text.IndexOf("probe {", StringComparison.Ordinal); at >= 0; at = text.IndexOf("probe {", at + 1, StringComparison.Ordinal))
        {
            var start = at + "probe ".Length;
            var (depth, inString, end) = (0, false, -1);
            for (var i = start; i < text.Length && end < 0; i++)
            {
                var ch = text[i];
                if (inString) { if (ch == '\\') i++; else if (ch == '"') inString = false; }
                else if (ch == '"') inString = true;
                else if (ch == '{') depth++;
                else if (ch == '}' && --depth == 0) end = i;
            }
            // A record cut short by a killed rank, or by another rank's output, is no record (the tests count the records they expect).
            try { if (end > 0) records.Add(System.Text.Json.Nodes.JsonNode.Parse(text[start..(end + 1)])!.AsObject()); }
            catch (System.Text.Json.JsonException) { }
        }
        return records;
    }

    /// <summary>
    /// Trains the small mnistfc (784-64-10) one epoch on the first 512 Fashion-MNIST images into <paramref name="folder"/>,
    /// as one process: a run for the measurement commands to measure over ranks (another <paramref name="seed"/> gives
    /// another network of the same architecture). Returns the folder.
    /// </summary>
    public static string TrainSmallMnistFc(string folder, ITestOutputHelper output, int seed = 1)
    {
        var trained = Run(Widevalley(),
            ["train", "--model", "small-mnistfc", "--data", "fashion-mnist", "--data-dir", Support.TestMachine.FashionMnistFolder, "--max-train-samples", "512",
             "--epochs", "1", "--seed", seed.ToString(), "--threads", "1", "--no-tensorboard", "--out", folder], TimeSpan.FromMinutes(4), output);
        Assert.True(trained.ExitCode == 0, $"train exited with {trained.ExitCode}:\n{trained.Errors}");
        return folder;
    }

    /// <summary>How a launched process ended.</summary>
    public sealed record Outcome(int ExitCode, string Output, string Errors, TimeSpan Elapsed);

    /// <summary>
    /// Runs <paramref name="program"/> to its end (at most <paramref name="timeout"/>, then a failure), with Open MPI
    /// allowed to run as root; <paramref name="started"/> sees the process while it runs (to kill a rank).
    /// </summary>
    public static Outcome Run(string program, IEnumerable<string> arguments, TimeSpan timeout, ITestOutputHelper? output = null,
        Action<Process>? started = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        foreach (var a in arguments) info.ArgumentList.Add(a);
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        info.Environment.Remove(Collectives.LibraryVariable);
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        started?.Invoke(process);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{Path.GetFileName(program)} did not end within {timeout.TotalSeconds:0} s; output so far:\n{stdout.Result}\n{stderr.Result}");
        }
        process.WaitForExit();
        var elapsed = watch.Elapsed;
        output?.WriteLine($"$ {Path.GetFileName(program)} {string.Join(' ', info.ArgumentList)}\nexit code {process.ExitCode} after {elapsed.TotalSeconds:0.0} s\n{stdout.Result}\n{stderr.Result}");
        return new Outcome(process.ExitCode, stdout.Result, stderr.Result, elapsed);
    }

    /// <summary>The processes whose parent is <paramref name="parent"/> (Linux /proc), for finding the ranks mpirun started.</summary>
    public static IEnumerable<int> ChildrenOf(int parent)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields.Length > 1 && int.TryParse(fields[1], out var ppid) && ppid == parent) yield return pid;
        }
    }

    /// <summary>The MPI rank of process <paramref name="pid"/> (OMPI_COMM_WORLD_RANK in its environment), or null.</summary>
    public static int? RankOf(int pid)
    {
        try
        {
            var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
            var entry = environment.FirstOrDefault(e => e.StartsWith("OMPI_COMM_WORLD_RANK=", StringComparison.Ordinal));
            return entry is null ? null : int.Parse(entry["OMPI_COMM_WORLD_RANK=".Length..]);
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
