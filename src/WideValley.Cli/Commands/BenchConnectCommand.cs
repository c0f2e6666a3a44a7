using System.CommandLine;
using System.Text.Json;
using WideValley.Benchmarks;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench connect`: Dynamic String Sampling's bead training and segment evaluation against plain training
/// steps and forward passes of the same size, for a network and the polynomial toy (<see cref="ConnectBenchmark"/>);
/// issue 18's target is a ratio of at most 1.2.
/// </summary>
public static class BenchConnectCommand
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new ConnectBenchmarkOptions();
        var model = new Option<string>("--model") { Description = "Zoo image classifier of the network rows (fb-mnist-cnn, small-mnistfc, lenet, ...).", DefaultValueFactory = _ => defaults.Model };
        var data = new Option<string>("--data") { Description = $"Images of the network rows: {string.Join(" or ", ConnectBenchmarkData.All)}.", DefaultValueFactory = _ => defaults.Data };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding Fashion-MNIST's files (default: the usual search, see 'widevalley data list')." };
        var batch = new Option<int>("--batch-size") { Description = "Training minibatch of the network's bead and plain loop.", DefaultValueFactory = _ => defaults.BatchSize };
        var steps = new Option<int>("--steps") { Description = "K: Adam steps of the network's bead per round.", DefaultValueFactory = _ => defaults.Steps };
        var checkEvery = new Option<int>("--check-every") { Description = "Steps between two measures of the network's bead.", DefaultValueFactory = _ => defaults.CheckEvery };
        var evalSamples = new Option<int>("--eval-samples") { Description = "Test samples each network measure evaluates (the first ones).", DefaultValueFactory = _ => defaults.EvaluationSamples };
        var grid = new Option<int>("--grid") { Description = "G of the network's segment (G - 1 points measured).", DefaultValueFactory = _ => defaults.Grid };
        var bnMinibatches = new Option<int>("--bn-minibatches") { Description = "Minibatches recomputing BatchNorm statistics before each measure (0 = a full pass).", DefaultValueFactory = _ => defaults.BatchNormMinibatches };
        var toySteps = new Option<int>("--toy-steps") { Description = "K: full-batch Adam steps of the polynomial toy's bead per round.", DefaultValueFactory = _ => defaults.ToySteps };
        var toyCheckEvery = new Option<int>("--toy-check-every") { Description = "Steps between two measures of the toy's bead.", DefaultValueFactory = _ => defaults.ToyCheckEvery };
        var toyGrid = new Option<int>("--toy-grid") { Description = "G of the toy's segment (G - 1 points measured).", DefaultValueFactory = _ => defaults.ToyGrid };
        var toyRepeats = new Option<int>("--toy-repeats") { Description = "Library/plain pairs of each toy row per round.", DefaultValueFactory = _ => defaults.ToyRepeats };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds (at least 3; medians).", DefaultValueFactory = _ => defaults.Rounds };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => defaults.WarmupRounds };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the weights, synthetic data and minibatch orders.", DefaultValueFactory = _ => defaults.Seed };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var output = new Option<string?>("--out") { Description = "Also write the JSON object to this file (atomically)." };
        var report = new Option<string?>("--report") { Description = "Also write a Markdown report to this .md file and the JSON beside it (.json)." };
        var command = new Command("connect",
            "Time a Dynamic String Sampling bead's training (with its checks) and a segment's grid of measures against plain training steps and plain " +
            "forward passes of the same size, for a network and the polynomial toy; the target is a ratio of at most 1.2.")
        {
            model, data, dataDir, batch, steps, checkEvery, evalSamples, grid, bnMinibatches, toySteps, toyCheckEvery, toyGrid, toyRepeats, rounds, warmup, threads, seed,
            json, output, report,
        };
        command.SetAction(p =>
        {
            var options = new ConnectBenchmarkOptions
            {
                Model = p.GetValue(model)!,
                Data = p.GetValue(data)!,
                DataDir = p.GetValue(dataDir),
                BatchSize = p.GetValue(batch),
                Steps = p.GetValue(steps),
                CheckEvery = p.GetValue(checkEvery),
                EvaluationSamples = p.GetValue(evalSamples),
                Grid = p.GetValue(grid),
                BatchNormMinibatches = p.GetValue(bnMinibatches),
                ToySteps = p.GetValue(toySteps),
                ToyCheckEvery = p.GetValue(toyCheckEvery),
                ToyGrid = p.GetValue(toyGrid),
                ToyRepeats = p.GetValue(toyRepeats),
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
            progress.WriteLine($"bench connect: {options.Model} on {options.Data} ({options.Steps} steps of batch {options.BatchSize}, grid {options.Grid}, " +
                               $"{options.EvaluationSamples} test samples) and the polynomial toy ({options.ToySteps} steps, grid {options.ToyGrid}); " +
                               $"{options.WarmupRounds} warm-up + {options.Rounds} timed rounds");
            var result = ConnectBenchmark.Run(options, line => progress.WriteLine("  " + line));
            BenchOutputs.Write(ctx, p, asJson, outPath, reportPath, options.Threads, ConnectBenchmark.ToJson(result),
                (commandLine, machine, jsonName) => ConnectBenchmark.Markdown(result, commandLine, machine, jsonName), ConnectBenchmark.Summary(result));
            return ExitCodes.Ok;
        });
        return command;
    }
}
