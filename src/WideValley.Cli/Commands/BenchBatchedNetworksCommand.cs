using System.CommandLine;
using System.Text.Json;
using WideValley.Benchmarks;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench batched-networks`: the batched trainer of many small networks against the same networks trained
/// one at a time (<see cref="BatchedNetworksBenchmark"/>); issue 17's target is at least 10x at n1 = 25.
/// </summary>
public static class BenchBatchedNetworksCommand
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new BatchedNetworksBenchmarkOptions();
        var networks = new Option<int>("--network-count") { Description = "Networks trained (M).", DefaultValueFactory = _ => defaults.Networks };
        var hidden = new Option<int>("--hidden-size") { Description = "Hidden units n1 of every network.", DefaultValueFactory = _ => defaults.Hidden };
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size of every network.", DefaultValueFactory = _ => defaults.BatchSize };
        var steps = new Option<int>("--steps") { Description = "SGD steps of every network per timed round.", DefaultValueFactory = _ => defaults.Steps };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds of each trainer (at least 3; medians).", DefaultValueFactory = _ => defaults.Rounds };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => defaults.WarmupRounds };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var report = new Option<string?>("--report") { Description = "Write a Markdown report to this .md file and the JSON beside it (.json)." };
        var command = new Command("batched-networks",
            "Time M one-hidden-layer networks trained as one batched model against the same networks trained one at a time (plain modules, same SGD); " +
            "the target is at least 10x at n1 = 25.")
        {
            networks, hidden, batch, steps, rounds, warmup, threads, json, report,
        };
        command.SetAction(p =>
        {
            var options = new BatchedNetworksBenchmarkOptions
            {
                Networks = p.GetValue(networks),
                Hidden = p.GetValue(hidden),
                BatchSize = p.GetValue(batch),
                Steps = p.GetValue(steps),
                Rounds = p.GetValue(rounds),
                WarmupRounds = p.GetValue(warmup),
                Threads = p.GetValue(threads),
            };
            options.Validate(); // an ArgumentException is a usage error (exit code 2) in CliApp
            var reportPath = p.GetValue(report) is string given
                ? given.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? Path.GetFullPath(given)
                    : throw new UsageException($"--report {given}: expected a Markdown file name ending in .md (the JSON is written beside it)")
                : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"bench batched-networks: {options.Networks} networks {options.Inputs}-{options.Hidden}-{options.Outputs}, {options.Steps} steps of batch {options.BatchSize} per round");
            var result = BatchedNetworksBenchmark.Run(options, line => progress.WriteLine("  " + line));
            if (reportPath is not null)
            {
                var commandLine = "widevalley " + string.Join(" ", p.Tokens.Select(t => t.Value));
                AtomicFile.WriteAllText(reportPath, BatchedNetworksBenchmark.Markdown(result, commandLine, ReproduceOptions.Machine(options.Threads)));
                var jsonPath = Path.ChangeExtension(reportPath, ".json");
                AtomicFile.WriteAllText(jsonPath, BatchedNetworksBenchmark.ToJson(result).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
                progress.WriteLine($"report: {reportPath} (JSON: {jsonPath})");
            }
            if (asJson)
                ctx.Out.WriteLine(BatchedNetworksBenchmark.ToJson(result).ToJsonString());
            else
                foreach (var line in BatchedNetworksBenchmark.Summary(result)) ctx.Out.WriteLine(line);
            return ExitCodes.Ok;
        });
        return command;
    }
}
