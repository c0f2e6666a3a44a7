using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Cli.Commands.Reproduce;

namespace WideValley.Cli.Commands;

/// <summary>
/// Where a stand-alone benchmark's result goes, the same way for every `bench` subcommand that has `--json`, `--out`
/// and `--report`: the checked report path, the JSON file, the Markdown report with its JSON beside it, and the
/// summary lines or the one JSON object on standard output.
/// </summary>
public static class BenchOutputs
{
    /// <summary>The full path of `--report FILE.md`, or null when it was not given.</summary>
    /// <exception cref="UsageException">The name does not end in .md.</exception>
    public static string? ReportPath(string? given) => given is null ? null
        : given.EndsWith(".md", StringComparison.OrdinalIgnoreCase) ? Path.GetFullPath(given)
        : throw new UsageException($"--report {given}: expected a Markdown file name ending in .md (the JSON is written beside it)");

    /// <summary>
    /// Writes <paramref name="node"/> to <paramref name="outPath"/> (atomically), the Markdown report and its JSON
    /// (when <paramref name="reportPath"/> is given), then the summary lines, or the JSON object with
    /// <paramref name="asJson"/>. <paramref name="markdown"/> gets the command line, the machine line and the JSON
    /// file's name.
    /// </summary>
    public static void Write(CliContext ctx, ParseResult parse, bool asJson, string? outPath, string? reportPath, int threads, JsonNode node,
        Func<string, string, string, string> markdown, IEnumerable<string> summary)
    {
        var progress = asJson ? ctx.Error : ctx.Out;
        if (outPath is not null) AtomicFile.WriteAllText(outPath, node.ToJsonString() + "\n");
        if (reportPath is not null)
        {
            var commandLine = "widevalley " + string.Join(" ", parse.Tokens.Select(t => t.Value));
            var jsonPath = Path.ChangeExtension(reportPath, ".json");
            AtomicFile.WriteAllText(reportPath, markdown(commandLine, ReproduceOptions.Machine(threads), Path.GetFileName(jsonPath)));
            AtomicFile.WriteAllText(jsonPath, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            progress.WriteLine($"report: {reportPath} (JSON: {jsonPath})");
        }
        if (asJson) ctx.Out.WriteLine(node.ToJsonString());
        else
            foreach (var line in summary) ctx.Out.WriteLine(line);
    }
}
