using System.CommandLine;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench spin-glass`: one batched energy+gradient step of the spherical p-spin glass (N = 500, K = 1,000 by
/// default) against a plain matrix product of the same size (<see cref="SpinGlassBenchmark"/>); issue 17's target is a
/// ratio of at most 2.
/// </summary>
public static class BenchSpinGlassCommand
{
    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new SpinGlassBenchmarkOptions();
        var n = new Option<int>("--n") { Description = "N, spins.", DefaultValueFactory = _ => defaults.Size };
        var starts = new Option<int>("--starts") { Description = "K, starts in the batch.", DefaultValueFactory = _ => defaults.Starts };
        var p = new Option<int>("--p") { Description = "p, the order of the interaction (p = 4 at N = 500 does not fit in memory).", DefaultValueFactory = _ => defaults.Order };
        var rounds = new Option<int>("--rounds") { Description = "Timed rounds (each: one step and one product).", DefaultValueFactory = _ => defaults.Rounds };
        var warmup = new Option<int>("--warmup") { Description = "Untimed rounds first.", DefaultValueFactory = _ => defaults.WarmupRounds };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var report = new Option<string?>("--report") { Description = "Also write a Markdown report to this .md file and the JSON beside it (.json)." };
        var command = new Command("spin-glass",
            "Time one batched spin-glass energy+gradient step (N = 500, K = 1,000, p = 3) against a plain [K, N]·[N, N^(p-1)] product: medians, ratio, GFLOP/s.")
        {
            n, starts, p, rounds, warmup, threads, json, report,
        };
        command.SetAction(parse =>
        {
            var options = new SpinGlassBenchmarkOptions
            {
                Size = parse.GetValue(n),
                Starts = parse.GetValue(starts),
                Order = parse.GetValue(p),
                Rounds = parse.GetValue(rounds),
                WarmupRounds = parse.GetValue(warmup),
                Threads = parse.GetValue(threads),
            };
            options.Validate();
            var reportPath = parse.GetValue(report) is string given
                ? given.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? Path.GetFullPath(given)
                    : throw new UsageException($"--report {given}: expected a Markdown file name ending in .md (the JSON is written beside it)")
                : null;
            var asJson = parse.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"bench spin-glass: p = {options.Order}, N = {options.Size}, K = {options.Starts}, {options.WarmupRounds} warm-up + {options.Rounds} timed rounds");
            var result = SpinGlassBenchmark.Run(options, message => progress.WriteLine("  " + message));
            var text = ToJson(result).ToJsonString();
            if (reportPath is not null)
            {
                var commandLine = "widevalley " + string.Join(" ", parse.Tokens.Select(t => t.Value));
                AtomicFile.WriteAllText(reportPath, SpinGlassBenchmark.Markdown(result, commandLine, ReproduceOptions.Machine(options.Threads)));
                AtomicFile.WriteAllText(Path.ChangeExtension(reportPath, ".json"), text + "\n");
                progress.WriteLine($"report: {reportPath} (JSON: {Path.ChangeExtension(reportPath, ".json")})");
            }
            if (asJson) ctx.Out.WriteLine(text);
            else
                foreach (var line in SpinGlassBenchmark.Summary(result)) ctx.Out.WriteLine(line);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The result with snake_case keys.</summary>
    public static JsonObject ToJson(SpinGlassBenchmarkResult r) => new()
    {
        ["benchmark"] = "spin-glass",
        ["n"] = r.Size,
        ["starts"] = r.Starts,
        ["p"] = r.Order,
        ["step_ms"] = Math.Round(r.StepMs, 3),
        ["product_ms"] = Math.Round(r.ProductMs, 3),
        ["ratio"] = Math.Round(r.Ratio, 4),
        ["target_ratio"] = 2,
        ["target_met"] = r.Ratio <= 2,
        ["step_gflops"] = Significant(r.StepGflops, 4),
        ["product_gflops"] = Significant(r.ProductGflops, 4),
        ["step_times_ms"] = new JsonArray(r.StepTimesMs.Select(t => (JsonNode?)JsonValue.Create(Math.Round(t, 3))).ToArray()),
        ["product_times_ms"] = new JsonArray(r.ProductTimesMs.Select(t => (JsonNode?)JsonValue.Create(Math.Round(t, 3))).ToArray()),
        ["workspace_bytes"] = r.WorkspaceBytes,
        ["other_processes_cpu_share"] = r.OtherProcessesCpuShare is { } s ? Math.Round(s, 3) : null,
        ["rounds"] = r.Rounds,
        ["warmup_rounds"] = r.WarmupRounds,
        ["threads"] = r.Threads,
    };

    /// <summary>
    /// <paramref name="value"/> to <paramref name="digits"/> significant digits: small problems run at a few MFLOP/s,
    /// which a fixed number of decimals of GFLOP/s would round to zero.
    /// </summary>
    static double Significant(double value, int digits) =>
        value == 0 || !double.IsFinite(value) ? value
            : Math.Round(value, Math.Clamp(digits - 1 - (int)Math.Floor(Math.Log10(Math.Abs(value))), 0, 15));
}
