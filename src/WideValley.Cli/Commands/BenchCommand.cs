using System.CommandLine;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench ...`: speed and memory benchmarks, each in one process with warm-up and medians. Benchmarks, not
/// timed unit tests, check the performance targets, because shared machines are too noisy for pass/fail timings.
/// Without a subcommand, `bench` runs them all (<see cref="BenchSuiteCommand"/>).
/// </summary>
public static class BenchCommand
{
    public static Command Create(CliContext ctx)
    {
        var command = new Command("bench",
            "Benchmarks: medians after warm-up, in one process. Without a subcommand: the whole suite (optimizer for each network at " +
            "L = 5 and 20, Hessian for each network, data throughput), one JSON object with the machine description, and a Markdown report.");
        command.Add(OptimizerCommand(ctx));
        command.Add(HessianCommand(ctx));
        command.Add(DataCommand(ctx));
        command.Add(BenchSoakCommand.Create(ctx));
        command.Add(BenchStepMemoryCommand.Create(ctx));
        command.Add(BenchSpinGlassCommand.Create(ctx));
        command.Add(BenchBatchedNetworksCommand.Create(ctx));
        command.Add(BenchConnectCommand.Create(ctx));
        command.Add(BenchDanteCommand.Create(ctx));
        command.Add(BenchSeed004Command.Create(ctx));
        command.Add(BenchFlatnessCommand.Create(ctx));
        command.Add(BenchDistributedCommand.Create(ctx));
        BenchSuiteCommand.Configure(command, ctx);
        return command.WithRanges();
    }

    static Command OptimizerCommand(CliContext ctx)
    {
        var model = new Option<string>("--model") { Description = "Image classifier to step (mnistfc, lenet, small-lenet, small-mnistfc).", DefaultValueFactory = _ => "mnistfc" };
        var l = new Option<int>("-L", "--langevin-steps") { Description = "Langevin steps per Entropy-SGD step.", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size.", DefaultValueFactory = _ => 128 };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds (each: L SGD steps, then one Entropy-SGD step).", DefaultValueFactory = _ => 30 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => 3 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var io = ResultOptions.Create();
        var command = new Command("optimizer",
            "Time an Entropy-SGD step against L SGD steps on the same network (ratio = entropy_sgd_step / (L x sgd_step)), " +
            "SAM and ASAM steps against two SGD steps (sam_ratio, asam_ratio; target <= 1.1) " +
            "and report the optimizer state in parameter-sized buffers.")
        {
            model, l, batch, rounds, warmup, io.Threads, device, io.Json, io.Out,
        };
        command.SetAction(p =>
        {
            var options = new OptimizerBenchmarkOptions
            {
                Model = p.GetValue(model)!,
                L = p.GetValue(l),
                BatchSize = p.GetValue(batch),
                Rounds = p.GetValue(rounds),
                WarmupRounds = p.GetValue(warmup),
                Threads = p.GetValue(io.Threads),
                Device = p.GetValue(device)!,
            };
            options.Validate();
            var asJson = p.GetValue(io.Json);
            if (!asJson)
                ctx.Out.WriteLine($"bench optimizer: {options.Model}, L = {options.L}, batch {options.BatchSize}, {options.WarmupRounds} warm-up + {options.Rounds} timed rounds");
            var result = OptimizerBenchmark.Run(options, asJson ? null : message => ctx.Out.WriteLine("  " + message));
            io.Emit(ctx, p, ToJson(result), OptimizerBenchmark.Summary(result));
            return ExitCodes.Ok;
        });
        return command;
    }

    static Command HessianCommand(CliContext ctx)
    {
        var model = new Option<string>("--model") { Description = "Image classifier (mnistfc, lenet, small-lenet, small-mnistfc).", DefaultValueFactory = _ => "mnistfc" };
        var samples = new Option<int>("--samples") { Description = "Samples in the evaluation set.", DefaultValueFactory = _ => 1000 };
        var batch = new Option<int>("--batch-size") { Description = "Samples per forward pass.", DefaultValueFactory = _ => 500 };
        var rounds = new Option<int>("--rounds") { Description = "Timed gradient and HVP repetitions.", DefaultValueFactory = _ => 7 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed repetitions first.", DefaultValueFactory = _ => 2 };
        var top = new Option<int>("--top") { Description = "Largest eigenvalues Lanczos is asked for.", DefaultValueFactory = _ => 20 };
        var tolerance = new Option<double>("--tolerance") { Description = "Lanczos tolerance on each eigenvalue's error bound min(r, r^2/gap), relative to the largest Ritz value.", DefaultValueFactory = _ => 1e-3 };
        var io = ResultOptions.Create();
        var command = new Command("hessian",
            "Time a Hessian-vector product against a gradient over the same evaluation set, and count the products Lanczos needs for the top eigenvalues.")
        {
            model, samples, batch, rounds, warmup, top, tolerance, io.Threads, io.Json, io.Out,
        };
        command.SetAction(p =>
        {
            var options = new HessianBenchmarkOptions
            {
                Model = p.GetValue(model)!,
                Samples = p.GetValue(samples),
                BatchSize = p.GetValue(batch),
                Rounds = p.GetValue(rounds),
                WarmupRounds = p.GetValue(warmup),
                Top = p.GetValue(top),
                Tolerance = p.GetValue(tolerance),
                Threads = p.GetValue(io.Threads),
            };
            options.Validate();
            var r = HessianBenchmark.Run(options);
            io.Emit(ctx, p, ToJson(r), [HessianBenchmark.Summary(r)]);
            return ExitCodes.Ok;
        });
        return command;
    }

    static Command DataCommand(CliContext ctx)
    {
        var (data, dataDir) = ThroughputDataOptions();
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size.", DefaultValueFactory = _ => 128 };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds, each one pass over the training set.", DefaultValueFactory = _ => 7 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => 1 };
        var loaderBatches = new Option<int>("--dataloader-batches") { Description = "Minibatches per round through TorchSharp's DataLoader, for comparison (0 = skip).", DefaultValueFactory = _ => 50 };
        var io = ResultOptions.Create();
        var command = new Command("data",
            "Images per second through the trainer's minibatch path (randperm + index_select on tensors in memory), the one-time cost of " +
            "loading Fashion-MNIST, and TorchSharp's DataLoader over the same tensors for comparison.")
        {
            data, dataDir, batch, rounds, warmup, loaderBatches, io.Threads, io.Json, io.Out,
        };
        command.SetAction(p =>
        {
            var options = new DataThroughputOptions
            {
                Data = p.GetValue(data)!,
                DataDir = p.GetValue(dataDir),
                BatchSize = p.GetValue(batch),
                Rounds = p.GetValue(rounds),
                WarmupRounds = p.GetValue(warmup),
                DataLoaderBatchesPerRound = p.GetValue(loaderBatches),
                Threads = p.GetValue(io.Threads),
            };
            options.Validate();
            var r = DataThroughputBenchmark.Run(options, p.GetValue(io.Json) ? null : message => ctx.Out.WriteLine("  " + message));
            io.Emit(ctx, p, ToJson(r), [DataThroughputBenchmark.Summary(r)]);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>--data and --data-dir of the throughput benchmark (the `bench data` subcommand and the whole suite).</summary>
    internal static (Option<string> Data, Option<string?> DataDir) ThroughputDataOptions() =>
    (
        new Option<string>("--data")
        {
            Description = $"Images for the throughput benchmark: {ThroughputData.Auto} (Fashion-MNIST when found, else synthetic), " +
                          $"{ThroughputData.FashionMnist} or {ThroughputData.Synthetic}.",
            DefaultValueFactory = _ => ThroughputData.Auto,
        },
        new Option<string?>("--data-dir") { Description = "Folder holding Fashion-MNIST's files (default: the usual search, see 'widevalley data list')." }
    );

    /// <summary>--threads, --json and --out, which every benchmark subcommand has, and what they do with a result.</summary>
    sealed record ResultOptions(Option<int> Threads, Option<bool> Json, Option<string?> Out)
    {
        public static ResultOptions Create() => new(
            new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 },
            new Option<bool>("--json") { Description = "Print one JSON object instead of text." },
            new Option<string?>("--out") { Description = "Also write the JSON object to this file (atomically)." });

        /// <summary>Writes the JSON to --out when given, then prints it (--json) or the summary lines.</summary>
        public void Emit(CliContext ctx, ParseResult p, JsonObject result, IEnumerable<string> summary)
        {
            var text = result.ToJsonString();
            if (p.GetValue(Out) is string file) AtomicFile.WriteAllText(Path.GetFullPath(file), text + "\n");
            if (p.GetValue(Json))
                ctx.Out.WriteLine(text);
            else
                foreach (var line in summary) ctx.Out.WriteLine(line);
        }
    }

    /// <summary>The result with the key names the issue tracker and reports use (snake_case); null where nothing was measured.</summary>
    public static JsonObject ToJson(DataThroughputResult r) => new()
    {
        ["benchmark"] = "data",
        ["data"] = r.Data,
        ["real_data"] = r.RealData,
        ["samples"] = r.Samples,
        ["sample_shape"] = r.SampleShape,
        ["batch_size"] = r.BatchSize,
        ["batches_per_round"] = r.BatchesPerRound,
        ["images_per_second"] = Math.Round(r.ImagesPerSecond, 0),
        ["batch_ms"] = Math.Round(r.BatchMs, 4),
        ["load_seconds"] = r.LoadSeconds is { } load ? Math.Round(load, 3) : null,
        ["load_first_seconds"] = r.LoadFirstSeconds is { } first ? Math.Round(first, 3) : null,
        ["load_repeats"] = r.LoadRepeats,
        ["dataloader_images_per_second"] = r.DataLoaderImagesPerSecond is { } rate ? Math.Round(rate, 0) : null,
        ["dataloader_batches_per_round"] = r.DataLoaderBatchesPerRound,
        ["speedup_over_dataloader"] = r.SpeedupOverDataLoader is { } speedup ? Math.Round(speedup, 2) : null,
        ["rounds"] = r.Rounds,
        ["warmup_rounds"] = r.WarmupRounds,
        ["threads"] = r.Threads,
        ["processors"] = Environment.ProcessorCount,
    };

    /// <summary>The result with the key names the issue tracker and reports use (snake_case, L as in the paper).</summary>
    public static JsonObject ToJson(HessianBenchmarkResult r) => new()
    {
        ["benchmark"] = "hessian",
        ["model"] = r.Model,
        ["parameters"] = r.Parameters,
        ["samples"] = r.Samples,
        ["grad_ms"] = Math.Round(r.GradMs, 3),
        ["hvp_ms"] = Math.Round(r.HvpMs, 3),
        ["hvp_over_grad"] = Math.Round(r.HvpOverGrad, 3),
        ["top"] = r.Top,
        ["tolerance"] = r.Tolerance,
        ["lanczos_hvps"] = r.LanczosHvps,
        ["lanczos_converged"] = r.LanczosConverged,
        ["lanczos_seconds"] = Math.Round(r.LanczosSeconds, 2),
        ["lanczos_rule"] = "error-bound",
        ["lanczos_max_error_bound"] = r.LanczosMaxErrorBound,
        ["lanczos_hvps_residual_rule"] = r.LanczosHvpsResidualRule,
        ["lanczos_residual_rule_converged"] = r.LanczosResidualRuleConverged,
        ["lambda_max"] = r.LambdaMax,
        ["threads"] = r.Threads,
        ["data"] = r.Data,
        ["processors"] = Environment.ProcessorCount,
    };

    /// <summary>The result with the key names the issue tracker and reports use (snake_case, L as in the paper).</summary>
    public static JsonObject ToJson(OptimizerBenchmarkResult r) => new()
    {
        ["benchmark"] = "optimizer",
        ["model"] = r.Model,
        ["L"] = r.L,
        ["parameters"] = r.Parameters,
        ["batch_size"] = r.BatchSize,
        ["sgd_step_ms"] = Math.Round(r.SgdStepMs, 4),
        ["sgd_single_step_median_ms"] = Math.Round(r.SgdSingleStepMedianMs, 4),
        ["entropy_sgd_step_ms"] = Math.Round(r.EntropySgdStepMs, 4),
        ["ratio"] = Math.Round(r.Ratio, 4),
        ["langevin_update_ms"] = Math.Round(r.LangevinUpdateMs, 4),
        ["langevin_bytes_per_step"] = r.LangevinBytesPerStep,
        ["langevin_gb_per_s"] = Math.Round(r.LangevinGBPerSecond, 2),
        ["copy_same_bytes_ms"] = Math.Round(r.CopySameBytesMs, 4),
        ["copy_gb_per_s"] = Math.Round(r.CopyGBPerSecond, 2),
        ["entropy_sgd_state_buffers"] = Math.Round(r.EntropySgdStateBuffers, 3),
        ["sgd_state_buffers"] = Math.Round(r.SgdStateBuffers, 3),
        ["resident_growth_mib"] = Math.Round(r.ResidentGrowthMiB, 2),
        ["rounds"] = r.Rounds,
        ["warmup_rounds"] = r.WarmupRounds,
        ["threads"] = r.Threads,
        ["device"] = r.Device,
        ["data"] = r.Data,
        ["langevin_kernel"] = r.Kernel,
        ["two_sgd_steps_ms"] = Math.Round(r.TwoSgdStepsMs, 4), ["sam_step_ms"] = Math.Round(r.SamStepMs, 4), ["sam_ratio"] = Math.Round(r.SamRatio, 4),
        ["asam_step_ms"] = Math.Round(r.AsamStepMs, 4), ["asam_ratio"] = Math.Round(r.AsamRatio, 4),
        ["processors"] = Environment.ProcessorCount,
    };
}
