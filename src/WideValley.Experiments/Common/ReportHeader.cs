using WideValley.Reports;
using System.Text;
using System.Text.Json.Nodes;
using WideValley.Experiments;

namespace WideValley.Experiments;

/// <summary>What every reproduction report states first, in its Markdown and in its JSON twin.</summary>
internal static class ReportHeader
{
    /// <summary>The JSON twin's first keys; the report adds its own.</summary>
    public static JsonObject Json(string stem, string title, Budget budget, string command, string machine) => new()
    {
        ["report"] = stem,
        ["title"] = title,
        ["budget"] = Budgets.Name(budget),
        ["command"] = command,
        ["machine"] = machine,
    };

    /// <summary>
    /// Title, introduction, the smoke warning (<paramref name="smokeWarning"/>, for the smoke budget only), the command
    /// that reproduces the report and the machine it ran on.
    /// </summary>
    public static void AppendMarkdown(StringBuilder md, string title, IReadOnlyList<string> introduction, Budget budget, string smokeWarning,
        string command, string machine)
    {
        md.AppendLine($"# {title}");
        md.AppendLine();
        foreach (var paragraph in introduction)
        {
            md.AppendLine(paragraph);
            md.AppendLine();
        }
        if (budget == Budget.Smoke)
        {
            md.AppendLine($"**{smokeWarning}**");
            md.AppendLine();
        }
        md.AppendLine("Reproduce with:");
        md.AppendLine();
        md.AppendLine("```sh");
        md.AppendLine(command);
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"Machine: {machine}.");
        md.AppendLine();
    }
}
