using System.CommandLine;
using System.Text.Json;
using WideValley.Benchmarks;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench dante`: a DANTE epoch against an SGD epoch on the same network and data (<see cref="DanteBenchmark"/>),
/// medians and their ratio from one interleaved run.
/// </summary>
public static class BenchDanteCommand
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new DanteBenchmarkOptions();
        var models = new Option<string>("--models") { Description = "Zoo image classifiers, comma-separated (the mlp1-*/mlp2-* networks of `reproduce dante`).", DefaultValueFactory = _ => string.Join(",", defaults.Models) };
        var data = new Option<string>("--data") { Description = $"Images: {string.Join(" or ", ConnectBenchmarkData.All)}.", DefaultValueFactory = _ => defaults.Data };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding Fashion-MNIST's files (default: the usual search, see 'widevalley data list')." };
        var trainSamples = new Option<int>("--train-samples") { Description = "Training images per epoch (the first ones; 0 = all).", DefaultValueFactory = _ => defaults.TrainSamples };
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size.", DefaultValueFactory = _ => defaults.BatchSize };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds (at least 3; medians).", DefaultValueFactory = _ => defaults.Rounds };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => defaults.WarmupRounds };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the weights, synthetic data and minibatch order.", DefaultValueFactory = _ => defaults.Seed };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var output = new Option<string?>("--out") { Description = "Also write the JSON object to this file (atomically)." };
        var report = new Option<string?>("--report") { Description = "Also write a Markdown report to this .md file and the JSON beside it (.json)." };
        var command = new Command("dante",
            "Time a DANTE epoch (one layer trained by normalised steps, the others frozen) against an SGD epoch on the same network and data; medians and their ratio.")
        {
            models, data, dataDir, trainSamples, batch, rounds, warmup, threads, seed, json, output, report,
        };
        command.SetAction(p =>
        {
            var options = new DanteBenchmarkOptions
            {
                Models = p.GetValue(models)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                Data = p.GetValue(data)!,
                DataDir = p.GetValue(dataDir),
                TrainSamples = p.GetValue(trainSamples),
                BatchSize = p.GetValue(batch),
                Rounds = p.GetValue(rounds),
                WarmupRounds = p.GetValue(warmup),
                Threads = p.GetValue(threads),
                Seed = p.GetValue(seed),
            };
            options.Validate(); // an ArgumentException is a usage error (exit code 2) in CliApp
            var reportPath = BenchOutputs.ReportPath(p.GetValue(report));
            var outPath = p.GetValue(output) is string file ? Path.GetFullPath(file) : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"bench dante: {string.Join(", ", options.Models)} on {options.Data}, batch {options.BatchSize}; " +
                               $"{options.WarmupRounds} warm-up + {options.Rounds} timed rounds");
            var result = DanteBenchmark.Run(options, line => progress.WriteLine("  " + line));
            BenchOutputs.Write(ctx, p, asJson, outPath, reportPath, options.Threads, DanteBenchmark.ToJson(result),
                (commandLine, machine, jsonName) => DanteBenchmark.Markdown(result, commandLine, machine, jsonName), DanteBenchmark.Summary(result));
            return ExitCodes.Ok;
        });
        return command;
    }
}
