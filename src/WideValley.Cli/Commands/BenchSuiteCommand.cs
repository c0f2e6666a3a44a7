using WideValley.Experiments;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Benchmarks;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench` without a subcommand: the whole suite (optimizer, Hessian, data throughput) in one process,
/// one JSON object with the machine description, and a Markdown report with the targets marked met or missed.
/// </summary>
internal static class BenchSuiteCommand
{
    /// <summary>Where the report goes when --report is not given, relative to the current folder (the repository root).</summary>
    internal static readonly string DefaultReport = Path.Combine("docs", "results", "bench.md");

    public static void Configure(Command bench, CliContext ctx)
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object (machine, every result, the target checks) instead of text; progress goes to standard error." };
        var report = new Option<string?>("--report")
        {
            Description = $"Write the Markdown report to this .md file and the JSON beside it (same name, .json). Default: {DefaultReport} " +
                          "when the folder docs/results exists in the current folder (the repository root), else no report.",
        };
        var noReport = new Option<bool>("--no-report") { Description = "Write no report, not even the default one." };
        var quick = new Option<bool>("--quick")
        {
            Description = $"3 timed rounds, Hessian on {BenchmarkSuite.QuickHessianSamples} samples with Lanczos for the top {BenchmarkSuite.QuickHessianTop} only: checks that everything runs (tests, CI); not numbers to quote.",
        };
        var rounds = new Option<int?>("--rounds") { Description = "Timed rounds of every benchmark (at least 3; default: optimizer 30, Hessian 7, data 7; with --quick 3)." };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var models = new Option<string>("--models")
        {
            Description = $"Comma-separated networks for the optimizer and Hessian benchmarks ({string.Join(", ", BenchmarkSuite.SuitableModels)}).",
            DefaultValueFactory = _ => "mnistfc,lenet",
        };
        var (data, dataDir) = BenchCommand.ThroughputDataOptions();
        foreach (var option in new Option[] { json, report, noReport, quick, rounds, threads, models, data, dataDir }) bench.Add(option);
        bench.SetAction(p =>
        {
            var plan = BenchmarkSuite.Plan(new BenchmarkSuiteOptions
            {
                Models = ParseModels(p.GetValue(models)!),
                Quick = p.GetValue(quick),
                Rounds = p.GetValue(rounds),
                Threads = p.GetValue(threads),
                Data = p.GetValue(data)!,
                DataDir = p.GetValue(dataDir),
            });
            var reportPath = ReportPath(p.GetValue(report), p.GetValue(noReport), out var noReportReason);
            var asJson = p.GetValue(json);
            var command = CommandLine(p);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"{command}: {plan.Optimizer.Count} optimizer, {plan.Hessian.Count} Hessian and 1 data benchmark{(plan.Quick ? " (quick)" : "")}");
            var result = BenchmarkSuite.Run(plan, progress.WriteLine);
            var document = ToJson(result, command);
            if (reportPath is not null)
            {
                var jsonPath = Path.ChangeExtension(reportPath, ".json");
                AtomicFile.WriteAllText(jsonPath, document.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
                AtomicFile.WriteAllText(reportPath, BenchReport.Markdown(result, command, Path.GetFileName(jsonPath)));
            }
            if (asJson)
                ctx.Out.WriteLine(document.ToJsonString());
            else
                ctx.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "targets met: {0} of {1}{2}; {3:0} s in all",
                    result.Checks.Count(c => c.Met), result.Checks.Count, MissedText(result.Checks), result.ElapsedSeconds));
            progress.WriteLine(reportPath is null ? $"no report written: {noReportReason}" : $"report: {reportPath} (JSON: {Path.ChangeExtension(reportPath, ".json")})");
            return ExitCodes.Ok;
        });
    }

    static string MissedText(IReadOnlyList<TargetCheck> checks)
    {
        var missed = checks.Where(c => !c.Met).Select(c => $"{c.Model} {c.Quantity}{(c.L is { } l ? $" (L = {l})" : "")}").ToArray();
        return missed.Length == 0 ? "" : $" (missed: {string.Join(", ", missed)})";
    }

    /// <summary>"mnistfc, lenet" to [mnistfc, lenet]; names are checked by <see cref="BenchmarkSuite.Plan"/>.</summary>
    internal static IReadOnlyList<string> ParseModels(string text) =>
        text.Split(',', StringSplitOptions.TrimEntries).Select(name => name.Length == 0
            ? throw new UsageException($"--models {text}: empty name in the list; expected a comma-separated list of: {string.Join(", ", BenchmarkSuite.SuitableModels)}")
            : name).ToArray();

    /// <summary>
    /// The report file, or null. The issue asks for docs/results/bench.md, which only makes sense inside the repository:
    /// the default is taken when that folder exists, and nothing is written (with the reason said) elsewhere, rather
    /// than scattering docs/results folders wherever the command happens to run.
    /// </summary>
    static string? ReportPath(string? given, bool none, out string reason)
    {
        reason = "";
        if (none)
        {
            if (given is not null) throw new UsageException($"--report {given} and --no-report contradict each other; give one of them");
            reason = "--no-report";
            return null;
        }
        if (given is not null)
        {
            if (!given.EndsWith(".md", StringComparison.OrdinalIgnoreCase))
                throw new UsageException($"--report {given}: expected a Markdown file name ending in .md (the JSON is written beside it, with the extension .json)");
            return Path.GetFullPath(given);
        }
        var folder = Path.GetDirectoryName(Path.GetFullPath(DefaultReport))!;
        if (Directory.Exists(folder)) return Path.GetFullPath(DefaultReport);
        reason = $"{folder} does not exist (run from the repository root for the default {DefaultReport}, or pass --report FILE.md)";
        return null;
    }

    /// <summary>The command as typed (after the program name), for the report.</summary>
    static string CommandLine(ParseResult p) =>
        "widevalley " + string.Join(" ", p.Tokens.Select(t => t.Value.Contains(' ') || t.Value.Length == 0 ? $"'{t.Value}'" : t.Value));

    /// <summary>One JSON object: the command, the machine, every result with the subcommands' keys, and the target checks.</summary>
    public static JsonObject ToJson(BenchmarkSuiteResult r, string command)
    {
        var plan = r.Plan;
        var document = new JsonObject
        {
            ["benchmark"] = "suite",
            ["command"] = command,
            ["started_utc"] = r.Started.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["elapsed_seconds"] = Math.Round(r.ElapsedSeconds, 1),
            ["quick"] = plan.Quick,
        };
        if (plan.Quick)
            document["quick_settings"] = $"{plan.Optimizer[0].Rounds} timed rounds; Hessian on {plan.Hessian[0].Samples} samples with Lanczos for the top {plan.Hessian[0].Top} eigenvalues only " +
                                         "(the Lanczos target is stated for the top 20 and is not checked)";
        document["machine"] = ToJson(r.Machine, r.LoadAverageAtEnd);
        document["machine"]!["other_processes_cpu_share"] = r.OtherProcessesCpuShare is { } share ? Math.Round(share, 4) : null;
        document["optimizer"] = new JsonArray(r.Optimizer.Select(o => (JsonNode)BenchCommand.ToJson(o)).ToArray());
        document["hessian"] = new JsonArray(r.Hessian.Select(h => (JsonNode)BenchCommand.ToJson(h)).ToArray());
        document["data"] = BenchCommand.ToJson(r.Data);
        document["checks"] = new JsonArray(r.Checks.Select(c => (JsonNode)ToJson(c)).ToArray());
        document["targets_checked"] = r.Checks.Count;
        document["targets_met"] = r.Checks.Count(c => c.Met);
        return document;
    }

    static JsonObject ToJson(MachineDescription m, double? loadAverageAtEnd) => new()
    {
        ["processors"] = m.Processors,
        ["os"] = m.Os,
        ["cpu_model"] = m.CpuModel,
        ["vector_extensions"] = m.VectorExtensions,
        ["memory_total_bytes"] = m.MemoryTotalBytes,
        ["memory_total_gib"] = Math.Round(m.MemoryTotalBytes / (double)(1L << 30), 1),
        ["dotnet"] = m.DotNet,
        ["torchsharp"] = m.TorchSharp,
        ["libtorch"] = m.LibTorch,
        ["threads"] = m.Threads,
        ["cpu_backend"] = m.CpuBackend,
        ["omp_wait_policy"] = m.OmpWaitPolicy,
        ["load_average_start"] = m.LoadAverage,
        ["load_average_end"] = loadAverageAtEnd,
    };

    static JsonObject ToJson(TargetCheck c) => new()
    {
        ["benchmark"] = c.Benchmark,
        ["model"] = c.Model,
        ["L"] = c.L,
        ["quantity"] = c.Quantity,
        ["value"] = Math.Round(c.Value, 4),
        ["at_most"] = c.AtMost,
        ["met"] = c.Met,
        ["source"] = c.Source,
    };
}
