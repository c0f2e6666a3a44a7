using WideValley.Reports;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using WideValley.Experiments;

namespace WideValley.Experiments;

/// <summary>
/// What every reproduction report states first, in its Markdown and in its JSON twin. Reports are committed and read
/// on other machines, so they never name an input by a path of the machine that made them: an absolute path on the
/// command line (outside /usr, where Debian packages put the same files on every machine) is replaced by its file
/// name, here and in the introduction, and the file is described by its size and SHA-256 under "Inputs".
/// </summary>
internal static class ReportHeader
{
    /// <summary>An input named on the command line by a machine-specific path: its file name and what identifies it.</summary>
    internal sealed record PortableInput(string Path, string Name, string Description, long? Bytes, string? Sha256);

    /// <summary>
    /// <paramref name="command"/> with every machine-specific absolute path (see the class summary) replaced by its
    /// file name, and those inputs described.
    /// </summary>
    internal static (string Command, IReadOnlyList<PortableInput> Inputs) Portable(string command)
    {
        var inputs = new List<PortableInput>();
        var tokens = command.Split(' ');
        for (var i = 0; i < tokens.Length; i++)
        {
            var token = tokens[i];
            if (!IsMachineSpecific(token)) continue;
            var input = inputs.FirstOrDefault(x => x.Path == token) ?? Describe(token);
            if (!inputs.Contains(input)) inputs.Add(input);
            tokens[i] = input.Name;
        }
        return (string.Join(' ', tokens), inputs);
    }

    static bool IsMachineSpecific(string token) =>
        token.Length > 1 && token.StartsWith('/') && !token.StartsWith("/usr/", StringComparison.Ordinal);

    static PortableInput Describe(string path)
    {
        var name = Path.GetFileName(path.TrimEnd('/'));
        if (File.Exists(path))
        {
            using var file = File.OpenRead(path);
            var sha = Convert.ToHexStringLower(SHA256.HashData(file));
            var bytes = new FileInfo(path).Length;
            return new PortableInput(path, name, string.Create(CultureInfo.InvariantCulture, $"`{name}`: a file of {bytes:N0} bytes, SHA-256 {sha}"), bytes, sha);
        }
        return Directory.Exists(path)
            ? new PortableInput(path, name, $"`{name}`: a folder", null, null)
            : new PortableInput(path, name, $"`{name}`: did not exist when the report was written", null, null);
    }

    /// <summary>The JSON twin's first keys; the report adds its own.</summary>
    public static JsonObject Json(string stem, string title, Budget budget, string command, string machine)
    {
        var (portable, inputs) = Portable(command);
        var json = new JsonObject
        {
            ["report"] = stem,
            ["title"] = title,
            ["budget"] = Budgets.Name(budget),
            ["command"] = portable,
            ["machine"] = machine,
        };
        if (inputs.Count > 0)
            json["inputs"] = new JsonArray(inputs.Select(x => (JsonNode)new JsonObject
            {
                ["name"] = x.Name,
                ["bytes"] = x.Bytes,
                ["sha256"] = x.Sha256,
            }).ToArray());
        return json;
    }

    /// <summary>
    /// Title, introduction, the smoke warning (<paramref name="smokeWarning"/>, for the smoke budget only), the command
    /// that reproduces the report and the machine it ran on.
    /// </summary>
    public static void AppendMarkdown(StringBuilder md, string title, IReadOnlyList<string> introduction, Budget budget, string smokeWarning,
        string command, string machine)
    {
        var (portable, inputs) = Portable(command);
        md.AppendLine($"# {title}");
        md.AppendLine();
        foreach (var paragraph in introduction)
        {
            md.AppendLine(inputs.Aggregate(paragraph, (text, input) => text.Replace(input.Path, input.Name, StringComparison.Ordinal)));
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
        md.AppendLine(portable);
        md.AppendLine("```");
        md.AppendLine();
        if (inputs.Count > 0)
        {
            md.AppendLine($"Inputs (pass their paths on your machine): {string.Join("; ", inputs.Select(x => x.Description))}.");
            md.AppendLine();
        }
        md.AppendLine($"Machine: {machine}.");
        md.AppendLine();
    }
}
