using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Distributed;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench distributed`: allreduce time against message size over MPI ranks on this machine (latency and
/// bandwidth fitted), every network's compute per step on one thread, and the scaling model that combines them
/// (<see cref="DistributedBenchmark"/>). Started without a launcher, it runs the allreduce part itself under mpirun
/// (`--worker allreduce`, one process per rank), so a user types one command.
/// </summary>
public static class BenchDistributedCommand
{
    const string AllreduceWorker = "allreduce";

    /// <summary>The subcommand, to be added to `bench`.</summary>
    public static Command Create(CliContext ctx)
    {
        var ranks = new Option<int>("--ranks") { Description = "MPI ranks for the allreduce timings (at least 2).", DefaultValueFactory = _ => 2 };
        var sizes = new Option<string>("--sizes") { Description = "Allreduce sizes in float32 elements, comma-separated.", DefaultValueFactory = _ => string.Join(",", DistributedBenchmark.DefaultSizes) };
        var repetitions = new Option<int>("--repetitions") { Description = "Timed allreduces per size (at least 3; medians).", DefaultValueFactory = _ => 30 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed allreduces per size first, and untimed training steps.", DefaultValueFactory = _ => 5 };
        var networks = new Option<string>("--networks") { Description = "Zoo image classifiers whose compute per step feeds the scaling model, comma-separated.", DefaultValueFactory = _ => "lenet,mnistfc" };
        var batch = new Option<int>("--batch-size") { Description = "Images per rank per step.", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "Timed training steps per network (at least 3; medians).", DefaultValueFactory = _ => 30 };
        var parleL = new Option<int>("-L") { Description = "Parle's minibatches per allreduce in the scaling model (the authors' 25).", DefaultValueFactory = _ => 25 };
        var mpirun = new Option<string?>("--mpirun") { Description = "The MPI launcher (default: mpirun on the PATH)." };
        var seed = new Option<long>("--seed") { Description = "Seed of the weights and synthetic images.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var output = new Option<string?>("--out") { Description = "Also write the JSON object to this file (atomically)." };
        var report = new Option<string?>("--report") { Description = "Also write a Markdown report to this .md file and the JSON beside it (.json)." };
        var worker = new Option<string?>("--worker") { Description = "Internal: run one rank's part under mpirun.", Hidden = true };
        var workerOut = new Option<string?>("--worker-out") { Description = "Internal: where rank 0 of a worker writes its JSON.", Hidden = true };
        var command = new Command("distributed",
            "Time allreduces over MPI ranks (latency and bandwidth fitted) and each network's compute per step, and predict data-parallel and Parle throughput at 8, 64 and 512 ranks.")
        {
            ranks, sizes, repetitions, warmup, networks, batch, steps, parleL, mpirun, seed, json, output, report, worker, workerOut,
        };
        command.SetAction(p =>
        {
            var sizeList = ParseSizes(p.GetValue(sizes)!);
            var reps = p.GetValue(repetitions);
            var warm = p.GetValue(warmup);
            if (reps < 3) throw new UsageException($"--repetitions must be at least 3 for a median, got {reps}");
            if (warm < 0) throw new UsageException($"--warmup must be zero or positive, got {warm}");
            if (p.GetValue(worker) is string role)
                return RunWorker(ctx, role, p.GetValue(workerOut), sizeList, reps, warm);

            var k = p.GetValue(ranks);
            if (k < 2) throw new UsageException($"--ranks must be at least 2 (an allreduce over one rank moves nothing), got {k}");
            var nets = p.GetValue(networks)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (nets.Length == 0) throw new UsageException("--networks must name at least one zoo image classifier");
            foreach (var n in nets)
                if (!Models.ModelZoo.Names.Contains(n)) throw new UsageException($"--networks {n}: unknown network; known: {string.Join(", ", Models.ModelZoo.Names)}");
            var b = p.GetValue(batch);
            if (b < 1) throw new UsageException($"--batch-size must be at least 1, got {b}");
            var stepCount = p.GetValue(steps);
            if (stepCount < 3) throw new UsageException($"--steps must be at least 3 for a median, got {stepCount}");
            var l = p.GetValue(parleL);
            if (l < 1) throw new UsageException($"-L must be at least 1, got {l}");
            var reportPath = BenchOutputs.ReportPath(p.GetValue(report));
            var outPath = p.GetValue(output) is string file ? Path.GetFullPath(file) : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            var launcher = FindMpirun(p.GetValue(mpirun));

            progress.WriteLine($"bench distributed: allreduce over {k} ranks ({launcher}), {sizeList.Count} sizes x {reps} repetitions");
            var timings = LaunchAllreduce(launcher, k, sizeList, reps, warm, progress);
            var fit = AllreduceFit.Of(timings);
            progress.WriteLine($"  latency {DistributedBenchmark.Time(fit.LatencySeconds)}, bandwidth {(fit.BytesPerSecond / 1e9).ToString("0.##", CultureInfo.InvariantCulture)} GB/s");

            TorchRuntime.EnsureInitialized();
            TorchRuntime.SetThreads(1);
            var computes = new List<ComputeTiming>();
            foreach (var n in nets)
            {
                var c = DistributedBenchmark.MeasureCompute(n, b, stepCount, warm, p.GetValue(seed));
                computes.Add(c);
                progress.WriteLine($"  {n}: {c.Parameters:N0} parameters, {DistributedBenchmark.Time(c.MedianSeconds)} per step of {b} images on one thread");
            }
            var predictions = computes.SelectMany(c => NetworkLink.Default.SelectMany(link =>
                DistributedBenchmark.ModelRanks.Select(r => DistributedBenchmark.Predict(c, link, r, l)))).ToList();

            var node = new JsonObject
            {
                ["ranks"] = k,
                ["allreduce"] = DistributedBenchmark.ToJson(timings),
                ["fit"] = new JsonObject { ["latency_seconds"] = fit.LatencySeconds, ["bytes_per_second"] = fit.BytesPerSecond },
                ["batch_size"] = b,
                ["parle_L"] = l,
                ["compute"] = new JsonArray(computes.Select(c => (JsonNode)new JsonObject
                {
                    ["network"] = c.Network,
                    ["parameters"] = c.Parameters,
                    ["median_step_seconds"] = c.MedianSeconds,
                    ["step_seconds"] = new JsonArray(c.StepSeconds.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                }).ToArray()),
                ["links"] = new JsonArray(NetworkLink.Default.Select(x => (JsonNode)new JsonObject
                {
                    ["name"] = x.Name, ["bits_per_second"] = x.BitsPerSecond, ["hop_latency_seconds"] = x.HopLatencySeconds,
                }).ToArray()),
                ["predictions"] = new JsonArray(predictions.Select(x => (JsonNode)new JsonObject
                {
                    ["network"] = x.Network, ["link"] = x.Link, ["ranks"] = x.Ranks, ["allreduce_seconds"] = x.AllreduceSeconds,
                    ["compute_seconds"] = x.ComputeSeconds, ["data_parallel_images_per_second"] = x.DataParallelImagesPerSecond,
                    ["parle_images_per_second"] = x.ParleImagesPerSecond, ["single_images_per_second"] = x.SingleImagesPerSecond,
                }).ToArray()),
            };
            var summary = new List<string>
            {
                $"allreduce over {k} ranks: latency {DistributedBenchmark.Time(fit.LatencySeconds)}, bandwidth {(fit.BytesPerSecond / 1e9).ToString("0.##", CultureInfo.InvariantCulture)} GB/s",
            };
            summary.AddRange(predictions.Where(x => x.Ranks == DistributedBenchmark.ModelRanks[^1]).Select(x =>
                $"{x.Network}, {x.Ranks} ranks, {x.Link}: data-parallel {x.DataParallelEfficiency.ToString("P0", CultureInfo.InvariantCulture)} efficient, Parle {x.ParleEfficiency.ToString("P0", CultureInfo.InvariantCulture)}"));
            BenchOutputs.Write(ctx, p, asJson, outPath, reportPath, 1, node,
                (commandLine, machine, jsonName) => Markdown(timings, fit, k, computes, predictions, l, commandLine, machine, jsonName), summary);
            return ExitCodes.Ok;
        });
        return command;
    }

    static IReadOnlyList<long> ParseSizes(string text)
    {
        var list = new List<long>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!long.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) || n < 1)
                throw new UsageException($"--sizes: '{part}' is not a positive whole number of float32 elements");
            list.Add(n);
        }
        if (list.Count < 2) throw new UsageException($"--sizes must list at least two sizes (latency and bandwidth are fitted), got {list.Count}");
        return list;
    }

    /// <summary>One rank of the allreduce timing: every rank measures, rank 0 writes the JSON.</summary>
    static int RunWorker(CliContext ctx, string role, string? outFile, IReadOnlyList<long> sizes, int repetitions, int warmup)
    {
        if (role != AllreduceWorker) throw new UsageException($"--worker {role}: expected '{AllreduceWorker}'");
        if (outFile is null) throw new UsageException("--worker needs --worker-out FILE");
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(1);
        using var collectives = Collectives.Create();
        if (collectives.Size < 2)
            throw new UsageException("bench distributed --worker runs as one rank of an MPI job (under mpirun -np 2 or more); this process is alone");
        var timings = DistributedBenchmark.MeasureAllreduce(collectives, sizes, repetitions, warmup);
        if (collectives.Rank == 0) AtomicFile.WriteAllText(outFile, DistributedBenchmark.ToJson(timings).ToJsonString() + "\n");
        collectives.Barrier();
        ctx.Error.WriteLine($"rank {collectives.Rank}: {sizes.Count} sizes timed");
        return ExitCodes.Ok;
    }

    /// <summary>The launcher: the given path, or mpirun on the PATH; a clear error saying what to install otherwise.</summary>
    public static string FindMpirun(string? given)
    {
        if (given is not null)
            return File.Exists(given) ? Path.GetFullPath(given) : throw new UsageException($"--mpirun {given}: no such file");
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists)
            ?? throw new UsageException("bench distributed needs an MPI launcher and none was found: mpirun is not on the PATH. " +
                                        "Install Open MPI (Debian: apt-get install openmpi-bin) or give --mpirun PATH");
    }

    /// <summary>
    /// How to start this program again as a rank: `dotnet widevalley.dll` with the dotnet host that runs this process
    /// (or the one on the PATH), so the same build answers whether the CLI was started by its apphost, by dotnet or
    /// in-process by a test.
    /// </summary>
    public static IReadOnlyList<string> SelfCommand()
    {
        var dll = typeof(CliApp).Assembly.Location;
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(host) && Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet") host = p;
        return [string.IsNullOrEmpty(host) ? "dotnet" : host, dll];
    }

    /// <summary>mpirun's arguments for K ranks on this machine: oversubscription allowed, no binding, shared memory.</summary>
    public static IReadOnlyList<string> LauncherArguments(int ranks) =>
        ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader", "-np", ranks.ToString(CultureInfo.InvariantCulture)];

    static IReadOnlyList<AllreduceTiming> LaunchAllreduce(string launcher, int ranks, IReadOnlyList<long> sizes, int repetitions, int warmup, TextWriter progress)
    {
        var outFile = Path.Combine(Path.GetTempPath(), $"widevalley-allreduce-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        try
        {
            var info = new ProcessStartInfo(launcher) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in LauncherArguments(ranks)) info.ArgumentList.Add(a);
            foreach (var a in SelfCommand()) info.ArgumentList.Add(a);
            foreach (var a in new[] { "bench", "distributed", "--worker", AllreduceWorker, "--worker-out", outFile,
                         "--sizes", string.Join(",", sizes), "--repetitions", repetitions.ToString(CultureInfo.InvariantCulture),
                         "--warmup", warmup.ToString(CultureInfo.InvariantCulture) })
                info.ArgumentList.Add(a);
            // Containers and CI run as root, which Open MPI refuses unless told; harmless otherwise.
            info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
            info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
            info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
            using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {launcher}");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(15)))
            {
                process.Kill(entireProcessTree: true);
                throw new InvalidOperationException($"the allreduce worker ({launcher} -np {ranks}) did not finish within 15 minutes and was stopped");
            }
            if (process.ExitCode != 0 || !File.Exists(outFile))
                throw new InvalidOperationException($"the allreduce worker ({launcher} -np {ranks}) failed with exit code {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}".TrimEnd());
            var timings = DistributedBenchmark.AllreduceFromJson(JsonNode.Parse(File.ReadAllText(outFile))!.AsArray());
            foreach (var t in timings)
                progress.WriteLine($"  {DistributedBenchmark.Size(t.Bytes),10}: {DistributedBenchmark.Time(t.MedianSeconds)}");
            return timings;
        }
        finally
        {
            if (File.Exists(outFile)) File.Delete(outFile);
        }
    }

    static string Markdown(IReadOnlyList<AllreduceTiming> timings, AllreduceFit fit, int ranks, IReadOnlyList<ComputeTiming> computes,
        IReadOnlyList<ScalingPrediction> predictions, int parleL, string commandLine, string machine, string jsonName)
    {
        var C = CultureInfo.InvariantCulture;
        var lines = new List<string>
        {
            "# Distributed benchmark",
            "",
            $"Command: `{commandLine}`. {machine}. JSON: `{jsonName}`.",
            "",
            $"## Allreduce over {ranks} ranks on this machine (Open MPI shared memory)",
            "",
        };
        lines.AddRange(DistributedBenchmark.AllreduceMarkdown(timings, fit, ranks));
        lines.Add("");
        lines.Add("## Compute per step (one thread, synthetic 28x28 images)");
        lines.Add("");
        lines.Add("| network | parameters | weights (float32) | median step | allreduce of the weights here (fit) | allreduce / step |");
        lines.Add("|---|---|---|---|---|---|");
        foreach (var c in computes)
        {
            var ar = fit.Seconds(c.Parameters * 4.0);
            lines.Add($"| {c.Network} | {c.Parameters.ToString("N0", C)} | {DistributedBenchmark.Size(c.Parameters * 4.0)} | {DistributedBenchmark.Time(c.MedianSeconds)} ({c.BatchSize} images) | " +
                      $"{DistributedBenchmark.Time(ar)} | {(ar / c.MedianSeconds).ToString("0.###", C)} |");
        }
        lines.Add("");
        lines.Add($"## Scaling model (weak scaling, {computes[0].BatchSize} images per rank per step, Parle L = {parleL})");
        lines.Add("");
        lines.Add("Ring allreduce of the float32 weights, T = 2(K-1)(hop latency + bytes/K / link bandwidth); data-parallel pays T every step, " +
                  $"Parle every {parleL} steps; no overlap of compute and communication; compute per rank as measured above. The links are stated, not measured.");
        lines.Add("");
        lines.AddRange(DistributedBenchmark.ScalingMarkdown(predictions));
        lines.Add("");
        lines.Add("Allreduce time at which a rank loses 10% of its throughput (90% efficiency): ");
        lines.Add("");
        foreach (var c in computes)
        {
            var (dp, parle) = DistributedBenchmark.AllreduceBudget(c, 0.9, parleL);
            lines.Add($"- {c.Network}: data-parallel {DistributedBenchmark.Time(dp)} per allreduce, Parle {DistributedBenchmark.Time(parle)}.");
        }
        return DistributedBenchmark.Lines(lines);
    }
}
