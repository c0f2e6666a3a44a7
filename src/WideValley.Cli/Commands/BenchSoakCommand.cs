using System.CommandLine;
using WideValley.Benchmarks;
using WideValley.Models;
using WideValley.Optim;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench soak`: a long training run (10,000 steps by default) that reads resident memory, live tensors and
/// the .NET heap at regular steps (<see cref="SoakBenchmark"/>). Not part of the suite or CI: it runs for minutes.
/// </summary>
public static class BenchSoakCommand
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new SoakBenchmarkOptions();
        var steps = new Option<int>("--steps") { Description = "Optimizer steps to take.", DefaultValueFactory = _ => defaults.Steps };
        var model = new Option<string>("--model") { Description = "Image classifier to train (small-mnistfc, mnistfc, small-lenet, lenet).", DefaultValueFactory = _ => defaults.Model };
        var optimizer = new Option<string>("--optimizer")
        {
            Description = $"Optimizer, at its default settings ({string.Join(", ", OptimizerFactory.Names)}).", DefaultValueFactory = _ => defaults.Optimizer,
        };
        var l = new Option<int>("-L", "--langevin-steps") { Description = "Langevin steps per outer step (local-entropy optimizers only).", DefaultValueFactory = _ => defaults.L };
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size.", DefaultValueFactory = _ => defaults.BatchSize };
        var every = new Option<int>("--samples-every")
        {
            Description = $"Steps between two readings (0 = about {SoakBenchmarkOptions.DefaultSampleCount} over the run). A reading is also taken before the first step and after the last.",
            DefaultValueFactory = _ => 0,
        };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (with every reading) instead of text." };
        var report = new Option<string?>("--report")
        {
            Description = "Write a Markdown report with every reading to this .md file, the JSON beside it (.json) and the resident-memory curve (.png, .svg) when the plotting font is available.",
        };
        var command = new Command("soak",
            "Train for many steps (default 10,000) through the library's trainer on synthetic images and read resident memory (after a full GC), " +
            "live TorchSharp tensors and the .NET heap along the way: first, last and max, and the slope over the second half. Takes minutes; not part of the suite.")
        {
            steps, model, optimizer, l, batch, every, threads, json, report,
        };
        command.SetAction(p =>
        {
            var options = new SoakBenchmarkOptions
            {
                Steps = p.GetValue(steps),
                Model = p.GetValue(model)!,
                Optimizer = p.GetValue(optimizer)!,
                L = p.GetValue(l),
                BatchSize = p.GetValue(batch),
                SamplesEvery = p.GetValue(every),
                Threads = p.GetValue(threads),
            };
            options.Validate();
            var reportPath = p.GetValue(report) is string given
                ? given.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? Path.GetFullPath(given)
                    : throw new UsageException($"--report {given}: expected a Markdown file name ending in .md (the JSON and the plot are written beside it)")
                : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            var l0 = OptimizerFactory.Describe(options.Optimizer).IsLocalEntropy ? $", L = {options.L}" : "";
            progress.WriteLine($"bench soak: {options.Steps:N0} steps of {options.Optimizer} on {ModelZoo.Describe(options.Model).Name}{l0}, batch {options.BatchSize}, " +
                               $"a reading every {options.SampleInterval:N0} steps");
            var result = SoakBenchmark.Run(options, message => progress.WriteLine("  " + message));
            if (reportPath is not null)
            {
                var (_, skipped) = SoakBenchmark.WriteReport(result, CommandLine(p), reportPath);
                if (skipped is not null) ctx.Error.WriteLine($"warning: the plot was not drawn (the report's text and JSON were written): {skipped}");
                progress.WriteLine($"report: {reportPath} (JSON: {Path.ChangeExtension(reportPath, ".json")})");
            }
            if (asJson)
                ctx.Out.WriteLine(SoakBenchmark.ToJson(result).ToJsonString());
            else
                foreach (var line in SoakBenchmark.Summary(result)) ctx.Out.WriteLine(line);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The command as typed (after the program name), for the report.</summary>
    static string CommandLine(ParseResult p) =>
        "widevalley " + string.Join(" ", p.Tokens.Select(t => t.Value.Contains(' ') || t.Value.Length == 0 ? $"'{t.Value}'" : t.Value));
}
