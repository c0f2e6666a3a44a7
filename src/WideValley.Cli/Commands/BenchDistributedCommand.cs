using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Distributed;
using WideValley.Training;

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
    const string TrainWorker = "train";

    /// <summary>One throughput run: the images all ranks trained on in the timed part and its seconds.</summary>
    sealed record ThroughputRun(string Network, string Mode, int Ranks, int Round, double Images, double Seconds);

    /// <summary>The median over rounds of one configuration, and its speed-up over one process.</summary>
    sealed record ThroughputMedian(string Network, string Mode, int Ranks, double ImagesPerSecond, double Speedup);

    /// <summary>One process alone, then data-parallel and Parle on one rank and on K.</summary>
    static IReadOnlyList<(string Mode, int Ranks)> ThroughputConfigurations(int k) =>
        [("single", 1), (DistributedTraining.DataParallelName, 1), (DistributedTraining.DataParallelName, k), (DistributedTraining.ParleName, 1), (DistributedTraining.ParleName, k)];

    static IReadOnlyList<ThroughputMedian> ThroughputMedians(IReadOnlyList<ThroughputRun> runs)
    {
        var medians = runs.GroupBy(r => (r.Network, r.Mode, r.Ranks))
            .Select(g => (g.Key, Rate: Medians.Of(g.Select(r => r.Images / r.Seconds).ToArray()))).ToList();
        return medians.Select(m =>
        {
            var single = medians.FirstOrDefault(x => x.Key.Network == m.Key.Network && x.Key.Mode == "single").Rate;
            return new ThroughputMedian(m.Key.Network, m.Key.Mode, m.Key.Ranks, m.Rate, single > 0 ? m.Rate / single : double.NaN);
        }).ToList();
    }

    /// <summary>One rank of a throughput run: trains through the library and rank 0 writes what it timed.</summary>
    static int RunTrainWorker(CliContext ctx, string? outFile, string? network, string? mode, int batch, int timedEvaluations, int warmup,
        int samples, string? dataDir, long seed)
    {
        if (outFile is null || network is null || mode is null) throw new UsageException("--worker train needs --worker-out, --network and --mode");
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(1);
        using var collectives = Collectives.Create();
        var (images, seconds) = DistributedBenchmark.MeasureTrainingThroughput(collectives, network, mode, batch, Math.Max(1, timedEvaluations), warmup, samples, dataDir, seed);
        if (collectives.Rank == 0)
            AtomicFile.WriteAllText(outFile, new JsonObject { ["images"] = images, ["seconds"] = seconds }.ToJsonString() + "\n");
        collectives.Barrier();
        ctx.Error.WriteLine($"rank {collectives.Rank}: {network} {mode} timed");
        return ExitCodes.Ok;
    }

    static (double Images, double Seconds) LaunchTraining(string launcher, string network, string mode, int ranks, int batch, int timedEvaluations,
        int warmup, int samples, string? dataDir, long seed)
    {
        var outFile = Path.Combine(Path.GetTempPath(), $"widevalley-throughput-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        try
        {
            string[] workerArguments = ["bench", "distributed", "--worker", TrainWorker, "--worker-out", outFile, "--network", network, "--mode", mode,
                "--batch-size", batch.ToString(CultureInfo.InvariantCulture), "--train-evaluations", timedEvaluations.ToString(CultureInfo.InvariantCulture),
                "--train-warmup", warmup.ToString(CultureInfo.InvariantCulture), "--train-samples", samples.ToString(CultureInfo.InvariantCulture),
                "--seed", seed.ToString(CultureInfo.InvariantCulture), .. (dataDir is null ? Array.Empty<string>() : ["--data-dir", dataDir])];
            // One process alone runs without a launcher, as a user without MPI would; every rank count of the
            // distributed modes (1 included) runs under mpirun, so their MPI costs are in the numbers.
            var (program, arguments) = mode == "single"
                ? (SelfCommand()[0], SelfCommand().Skip(1).Concat(workerArguments).ToList())
                : (launcher, LauncherArguments(ranks).Concat(SelfCommand()).Concat(workerArguments).ToList());
            RunToCompletion(program, arguments, $"the {network} {mode} throughput run on {ranks} rank(s)");
            var node = JsonNode.Parse(File.ReadAllText(outFile))!;
            return (node["images"]!.GetValue<double>(), node["seconds"]!.GetValue<double>());
        }
        finally
        {
            if (File.Exists(outFile)) File.Delete(outFile);
        }
    }

    static void RunToCompletion(string program, IReadOnlyList<string> arguments, string what)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // Containers and CI run as root, which Open MPI refuses unless told; harmless otherwise.
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        info.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(15)))
        {
            process.Kill(entireProcessTree: true);
            throw new IOException($"{what} did not finish within 15 minutes and was stopped");
        }
        if (process.ExitCode != 0)
            throw new IOException($"{what} failed with exit code {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}".TrimEnd());
    }

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
        var trainSamples = new Option<int>("--train-samples") { Description = "Fashion-MNIST training images the throughput runs draw from (the first ones).", DefaultValueFactory = _ => 12_000 };
        var trainEvaluations = new Option<int>("--train-evaluations") { Description = "Timed gradient evaluations per rank in each throughput run (0 = no throughput runs).", DefaultValueFactory = _ => 200 };
        // Long enough for .NET's tiered compilation to finish rewriting the hot methods: its background compiles take a
        // core, and on a machine with one core per rank they stall data-parallel's per-step synchronisation (5
        // warm-up evaluations gave LeNet 1.57x on 2 ranks, 40 gave 1.78x).
        var trainWarmup = new Option<int>("--train-warmup") { Description = "Untimed gradient evaluations per rank before a throughput run's timing starts.", DefaultValueFactory = _ => 50 };
        var rounds = new Option<int>("--rounds") { Description = "Throughput rounds (every configuration once per round, interleaved; medians).", DefaultValueFactory = _ => 3 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding Fashion-MNIST's files (default: the usual search, see 'widevalley data list')." };
        var mode = new Option<string?>("--mode") { Description = "Internal: the training mode of a throughput worker.", Hidden = true };
        var network = new Option<string?>("--network") { Description = "Internal: the network of a throughput worker.", Hidden = true };
        var worker = new Option<string?>("--worker") { Description = "Internal: run one rank's part under mpirun.", Hidden = true };
        var workerOut = new Option<string?>("--worker-out") { Description = "Internal: where rank 0 of a worker writes its JSON.", Hidden = true };
        var command = new Command("distributed",
            "Time allreduces over MPI ranks (latency and bandwidth fitted) and each network's compute per step, and predict data-parallel and Parle throughput at 8, 64 and 512 ranks.")
        {
            ranks, sizes, repetitions, warmup, networks, batch, steps, parleL, mpirun, seed, json, output, report, trainSamples, trainEvaluations, trainWarmup, rounds, dataDir,
            mode, network, worker, workerOut,
        };
        command.SetAction(p =>
        {
            var sizeList = ParseSizes(p.GetValue(sizes)!);
            var reps = p.GetValue(repetitions);
            var warm = p.GetValue(warmup);
            if (reps < 3) throw new UsageException($"--repetitions must be at least 3 for a median, got {reps}");
            if (warm < 0) throw new UsageException($"--warmup must be zero or positive, got {warm}");
            var samples = p.GetValue(trainSamples);
            var timedEvaluations = p.GetValue(trainEvaluations);
            var throughputRounds = p.GetValue(rounds);
            if (samples < 1) throw new UsageException($"--train-samples must be at least 1, got {samples}");
            if (timedEvaluations < 0) throw new UsageException($"--train-evaluations must be 0 (no throughput runs) or positive, got {timedEvaluations}");
            if (throughputRounds < 1) throw new UsageException($"--rounds must be at least 1, got {throughputRounds}");
            var trainWarm = p.GetValue(trainWarmup);
            if (trainWarm < 0) throw new UsageException($"--train-warmup must be zero or positive, got {trainWarm}");
            if (p.GetValue(worker) is string role)
                return role == TrainWorker
                    ? RunTrainWorker(ctx, p.GetValue(workerOut), p.GetValue(network), p.GetValue(mode), p.GetValue(batch), timedEvaluations, trainWarm, samples, p.GetValue(dataDir), p.GetValue(seed))
                    : RunWorker(ctx, role, p.GetValue(workerOut), sizeList, reps, warm);

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
            progress.WriteLine($"  latency {DistributedBenchmark.Time(fit.LatencySeconds)}, bandwidth {DistributedBenchmark.Bandwidth(fit.BytesPerSecond)}");

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

            var throughput = new List<ThroughputRun>();
            if (timedEvaluations > 0)
            {
                var configurations = ThroughputConfigurations(k);
                progress.WriteLine($"  throughput: {string.Join(", ", nets)} x {configurations.Count} configurations x {throughputRounds} rounds, {timedEvaluations} timed gradient evaluations per rank");
                for (var round = 0; round < throughputRounds; round++)
                    foreach (var n in nets)
                        foreach (var (m, r) in configurations)
                        {
                            var (images, seconds) = LaunchTraining(launcher, n, m, r, b, timedEvaluations, trainWarm, samples, p.GetValue(dataDir), p.GetValue(seed));
                            throughput.Add(new ThroughputRun(n, m, r, round, images, seconds));
                            progress.WriteLine($"    round {round + 1}: {n} {m} x{r}: {images / seconds:N0} images/s");
                        }
            }

            var node = new JsonObject
            {
                ["ranks"] = k,
                ["allreduce"] = DistributedBenchmark.ToJson(timings),
                ["fit"] = new JsonObject { ["latency_seconds"] = fit.LatencySeconds, ["bytes_per_second"] = double.IsFinite(fit.BytesPerSecond) ? fit.BytesPerSecond : null },
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
                ["throughput"] = new JsonArray(throughput.Select(t => (JsonNode)new JsonObject
                {
                    ["network"] = t.Network, ["mode"] = t.Mode, ["ranks"] = t.Ranks, ["round"] = t.Round, ["images"] = t.Images, ["seconds"] = t.Seconds,
                }).ToArray()),
                ["throughput_medians"] = new JsonArray(ThroughputMedians(throughput).Select(x => (JsonNode)new JsonObject
                {
                    ["network"] = x.Network, ["mode"] = x.Mode, ["ranks"] = x.Ranks, ["images_per_second"] = x.ImagesPerSecond, ["speedup_over_single"] = x.Speedup,
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
                $"allreduce over {k} ranks: latency {DistributedBenchmark.Time(fit.LatencySeconds)}, bandwidth {DistributedBenchmark.Bandwidth(fit.BytesPerSecond)}",
            };
            summary.AddRange(ThroughputMedians(throughput).Where(x => x.Ranks > 1).Select(x =>
                $"{x.Network} {x.Mode} on {x.Ranks} ranks: {x.ImagesPerSecond:N0} images/s, {x.Speedup.ToString("0.00", CultureInfo.InvariantCulture)}x one process"));
            summary.AddRange(predictions.Where(x => x.Ranks == DistributedBenchmark.ModelRanks[^1]).Select(x =>
                $"{x.Network}, {x.Ranks} ranks, {x.Link}: data-parallel {x.DataParallelEfficiency.ToString("P0", CultureInfo.InvariantCulture)} efficient, Parle {x.ParleEfficiency.ToString("P0", CultureInfo.InvariantCulture)}"));
            BenchOutputs.Write(ctx, p, asJson, outPath, reportPath, 1, node,
                (commandLine, machine, jsonName) => Markdown(timings, fit, k, computes, predictions, throughput, l, commandLine, machine, jsonName), summary);
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
            string[] workerArguments = ["bench", "distributed", "--worker", AllreduceWorker, "--worker-out", outFile,
                "--sizes", string.Join(",", sizes), "--repetitions", repetitions.ToString(CultureInfo.InvariantCulture),
                "--warmup", warmup.ToString(CultureInfo.InvariantCulture)];
            RunToCompletion(launcher, [.. LauncherArguments(ranks), .. SelfCommand(), .. workerArguments], $"the allreduce worker ({launcher} -np {ranks})");
            if (!File.Exists(outFile)) throw new IOException($"the allreduce worker ({launcher} -np {ranks}) ended without writing its timings to {outFile}");
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
        IReadOnlyList<ScalingPrediction> predictions, IReadOnlyList<ThroughputRun> throughput, int parleL, string commandLine, string machine, string jsonName)
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
        if (throughput.Count > 0)
        {
            lines.Add("");
            lines.Add("## Training throughput on this machine (one thread per rank)");
            lines.Add("");
            lines.Add("Each configuration trains through the library's run set-up and trainer (as `train` does; no files, no test evaluation) on the first " +
                      "Fashion-MNIST images, timed over the gradient evaluations after the warm-up; `single` is one process with SGD and no MPI, the others " +
                      "run under mpirun. Images per second count every rank's images (data-parallel: the global minibatch; Parle: each replica's own). " +
                      "Medians over the rounds, which interleave the configurations.");
            lines.Add("");
            lines.Add("| network | mode | ranks | images/s (median) | rounds | over one process |");
            lines.Add("|---|---|---|---|---|---|");
            foreach (var m in ThroughputMedians(throughput))
                lines.Add($"| {m.Network} | {m.Mode} | {m.Ranks} | {m.ImagesPerSecond.ToString("N0", C)} | " +
                          $"{string.Join(", ", throughput.Where(t => t.Network == m.Network && t.Mode == m.Mode && t.Ranks == m.Ranks).Select(t => (t.Images / t.Seconds).ToString("N0", C)))} | " +
                          $"{m.Speedup.ToString("0.00", C)}x |");
            var lenet = ThroughputMedians(throughput).FirstOrDefault(x => x.Network == "lenet" && x.Mode == DistributedTraining.DataParallelName && x.Ranks == ranks);
            if (lenet is not null)
            {
                lines.Add("");
                lines.Add($"Target (issue 22): LeNet data-parallel on 2 ranks at least 1.8x the images per second of one process: " +
                          $"{lenet.Speedup.ToString("0.00", C)}x, **{(ranks == 2 && lenet.Speedup >= 1.8 ? "met" : ranks == 2 ? "missed" : "not judged (ranks != 2)")}**.");
            }
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
