using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench step-memory`: the peak resident memory of Entropy-SGD steps at several L in one process
/// (<see cref="StepMemoryBenchmark"/>); the target is a peak that does not grow with L. Not part of the suite (the
/// L = 100 steps of mnistfc at batch 500 take seconds each, and the reading is of memory, not speed).
/// </summary>
public static class BenchStepMemoryCommand
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new StepMemoryBenchmarkOptions();
        var model = new Option<string>("--model") { Description = "Image classifier to step (mnistfc, small-mnistfc, lenet, small-lenet).", DefaultValueFactory = _ => defaults.Model };
        var optimizer = new Option<string>("--optimizer") { Description = "A local-entropy optimizer at its default settings (entropy-sgd, entropy-adam).", DefaultValueFactory = _ => defaults.Optimizer };
        var ls = new Option<string>("--ls") { Description = "Comma-separated numbers of Langevin steps to measure, in order.", DefaultValueFactory = _ => string.Join(",", defaults.Ls) };
        var batch = new Option<int>("--batch-size") { Description = "Minibatch size.", DefaultValueFactory = _ => defaults.BatchSize };
        var evaluations = new Option<int>("--evaluations")
        {
            Description = "Gradient evaluations per L, the same at every L (ceil(N / L) steps): resident memory grows with the evaluations while the allocator warms up.",
            DefaultValueFactory = _ => defaults.Evaluations,
        };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var report = new Option<string?>("--report") { Description = "Write a Markdown report to this .md file and the JSON beside it (.json)." };
        var inProcess = new Option<bool>("--in-process")
        {
            Description = "Measure every L in this process, in the given order (default: each L in a fresh process, since memory the allocator keeps from one L is resident for the next).",
        };
        var command = new Command("step-memory",
            "Peak resident memory of local-entropy steps (Entropy-SGD) at several L, in one process, the high-water mark reset before each L's " +
            "measured steps: a step that kept every minibatch's tensors would grow with L. Linux only.")
        {
            model, optimizer, ls, batch, evaluations, threads, json, report, inProcess,
        };
        command.SetAction(p =>
        {
            var options = new StepMemoryBenchmarkOptions
            {
                Model = p.GetValue(model)!,
                Optimizer = p.GetValue(optimizer)!,
                Ls = ParseLs(p.GetValue(ls)!),
                BatchSize = p.GetValue(batch),
                Evaluations = p.GetValue(evaluations),
                Threads = p.GetValue(threads),
            };
            options.Validate();
            var reportPath = p.GetValue(report) is string given
                ? given.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? Path.GetFullPath(given)
                    : throw new UsageException($"--report {given}: expected a Markdown file name ending in .md (the JSON is written beside it)")
                : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"bench step-memory: {options.Optimizer} on {options.Model}, batch {options.BatchSize}, L = {string.Join(", ", options.Ls)}");
            var result = p.GetValue(inProcess)
                ? StepMemoryBenchmark.Run(options, message => progress.WriteLine("  " + message))
                : RunIsolated(options, progress);
            if (reportPath is not null)
            {
                var command = "widevalley " + string.Join(" ", p.Tokens.Select(t => t.Value));
                AtomicFile.WriteAllText(reportPath, StepMemoryBenchmark.Markdown(result, command));
                var jsonPath = Path.ChangeExtension(reportPath, ".json");
                AtomicFile.WriteAllText(jsonPath, StepMemoryBenchmark.ToJson(result).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
                progress.WriteLine($"report: {reportPath} (JSON: {jsonPath})");
            }
            if (asJson)
                ctx.Out.WriteLine(StepMemoryBenchmark.ToJson(result).ToJsonString());
            else
                foreach (var line in StepMemoryBenchmark.Summary(result)) ctx.Out.WriteLine(line);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Each L measured by a child process of this tool (`--in-process --json`), the readings merged.</summary>
    static StepMemoryBenchmarkResult RunIsolated(StepMemoryBenchmarkOptions options, TextWriter progress)
    {
        var (program, prefix) = ThisTool();
        var results = new List<StepMemoryBenchmarkResult>();
        foreach (var l in options.Ls)
        {
            var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in prefix) start.ArgumentList.Add(a);
            foreach (var a in new[]
                     {
                         "bench", "step-memory", "--in-process", "--json", "--ls", l.ToString(CultureInfo.InvariantCulture), "--model", options.Model,
                         "--optimizer", options.Optimizer, "--batch-size", options.BatchSize.ToString(CultureInfo.InvariantCulture),
                         "--evaluations", options.Evaluations.ToString(CultureInfo.InvariantCulture), "--threads", options.Threads.ToString(CultureInfo.InvariantCulture),
                     })
                start.ArgumentList.Add(a);
            using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program} to measure L = {l}");
            var errors = child.StandardError.ReadToEndAsync();
            var output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            foreach (var line in errors.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(x => x.StartsWith("  L = ", StringComparison.Ordinal)))
                progress.WriteLine(line);
            if (child.ExitCode != 0)
                throw new InvalidOperationException($"measuring L = {l} in a child process failed (exit code {child.ExitCode}): {errors.Result.Trim()}");
            results.Add(StepMemoryBenchmark.FromJson(JsonNode.Parse(output) ?? throw new FormatException($"the child process for L = {l} printed no JSON")));
        }
        return results[0] with { Isolated = true, Readings = results.SelectMany(r => r.Readings).ToArray() };
    }

    /// <summary>How to start this tool again: the apphost itself, or `dotnet widevalley.dll` when run through dotnet.</summary>
    static (string Program, string[] Prefix) ThisTool()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown; use --in-process");
        return Path.GetFileNameWithoutExtension(process).Equals("dotnet", StringComparison.OrdinalIgnoreCase)
            ? (process, [typeof(BenchStepMemoryCommand).Assembly.Location])
            : (process, []);
    }

    /// <summary>"1,25,100" as numbers; a clear error for anything else.</summary>
    internal static IReadOnlyList<int> ParseLs(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var ls = new List<int>();
        foreach (var part in parts)
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var l) || l < 1 || l > OptionRanges.MaxLangevinSteps)
                throw new UsageException($"--ls {text}: '{part}' is not a number of Langevin steps; expected comma-separated whole numbers from 1 to {OptionRanges.MaxLangevinSteps:N0}, e.g. 1,25,100");
            ls.Add(l);
        }
        return ls;
    }
}
