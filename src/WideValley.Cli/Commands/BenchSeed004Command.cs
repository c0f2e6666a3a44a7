using System.CommandLine;
using System.Text.Json;
using WideValley.Benchmarks;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench seed-004`: the Hessian-trace regulariser's and ADINE's cost per training step against plain SGD
/// steps on LeNet (<see cref="Seed004Benchmark"/>); issue 19's targets are 3x (HTR, K = 1 every step), 1.05x (HTR at
/// the authors' freq = 50, K = 10, amortised) and 1.05x (ADINE).
/// </summary>
public static class BenchSeed004Command
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new Seed004BenchmarkOptions();
        var models = new Option<string>("--models") { Description = "Comma-separated zoo image classifiers.", DefaultValueFactory = _ => string.Join(",", defaults.Models) };
        var data = new Option<string>("--data") { Description = $"Images: {string.Join(" or ", ConnectBenchmarkData.All)}.", DefaultValueFactory = _ => defaults.Data };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding Fashion-MNIST's files (default: the usual search, see 'widevalley data list')." };
        var batch = new Option<int>("--batch-size") { Description = "Training minibatch of every side (the HTR authors' 256).", DefaultValueFactory = _ => defaults.BatchSize };
        var steps = new Option<int>("--steps") { Description = "Steps per timed block of the every-step rows.", DefaultValueFactory = _ => defaults.Steps };
        var freq = new Option<int>("--freq") { Description = "HTR frequency of the amortised row (the authors' 50); its block is this many steps.", DefaultValueFactory = _ => defaults.Frequency };
        var probes = new Option<int>("--probes") { Description = "Hutchinson probes K of the amortised row (the authors' 10).", DefaultValueFactory = _ => defaults.Probes };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds (at least 3; medians).", DefaultValueFactory = _ => defaults.Rounds };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => defaults.WarmupRounds };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the weights, synthetic data and minibatch orders.", DefaultValueFactory = _ => defaults.Seed };
        var rows = new Option<string?>("--rows") { Description = $"Comma-separated rows to measure (default all): {string.Join(", ", Seed004Benchmark.RowNames)}." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var output = new Option<string?>("--out") { Description = "Also write the JSON object to this file (atomically)." };
        var report = new Option<string?>("--report") { Description = "Also write a Markdown report to this .md file and the JSON beside it (.json)." };
        var command = new Command("seed-004",
            "Time SGD+HTR (K = 1 on every step; the authors' K = 10 every 50 steps, amortised) and ADINE against plain SGD steps with momentum 0.9 on " +
            "LeNet; the targets are 3x, 1.05x and 1.05x.")
        {
            models, data, dataDir, batch, steps, freq, probes, rounds, warmup, threads, seed, rows, json, output, report,
        };
        command.SetAction(p =>
        {
            var options = new Seed004BenchmarkOptions
            {
                Models = p.GetValue(models)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                Data = p.GetValue(data)!,
                DataDir = p.GetValue(dataDir),
                BatchSize = p.GetValue(batch),
                Steps = p.GetValue(steps),
                Frequency = p.GetValue(freq),
                Probes = p.GetValue(probes),
                Rounds = p.GetValue(rounds),
                WarmupRounds = p.GetValue(warmup),
                Threads = p.GetValue(threads),
                Seed = p.GetValue(seed),
                Rows = p.GetValue(rows)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            };
            options.Validate(); // an ArgumentException is a usage error (exit code 2) in CliApp
            var reportPath = BenchOutputs.ReportPath(p.GetValue(report));
            var outPath = p.GetValue(output) is string file ? Path.GetFullPath(file) : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"bench seed-004: {string.Join(", ", options.Models)} on {options.Data}, batch {options.BatchSize}; blocks of {options.Steps} steps " +
                               $"(HTR amortised: {options.Frequency} steps, K = {options.Probes}); {options.WarmupRounds} warm-up + {options.Rounds} timed rounds");
            var result = Seed004Benchmark.Run(options, line => progress.WriteLine("  " + line));
            BenchOutputs.Write(ctx, p, asJson, outPath, reportPath, options.Threads, Seed004Benchmark.ToJson(result),
                (commandLine, machine, jsonName) => Seed004Benchmark.Markdown(result, commandLine, machine, jsonName), Seed004Benchmark.Summary(result));
            return ExitCodes.Ok;
        });
        return command;
    }
}
