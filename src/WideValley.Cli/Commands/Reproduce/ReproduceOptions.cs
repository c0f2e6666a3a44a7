using System.CommandLine;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>Options and argument checks every `reproduce` subcommand shares.</summary>
public static class ReproduceOptions
{
    /// <summary>--budget smoke|small|paper (default small: a paper-budget reproduction takes hours and should be asked for).</summary>
    public static Option<string> Budget()
    {
        var option = new Option<string>("--budget")
        {
            Description = "smoke (a few steps, for CI), small (a stated fraction of the paper's compute) or paper (the paper's epochs).",
            DefaultValueFactory = _ => "small",
        };
        option.AcceptOnlyFromAmong([.. Budgets.Names]);
        return option;
    }

    /// <summary>--out DIR: where the report (Markdown, JSON, PNG/SVG) goes.</summary>
    public static Option<string> Output() => new("--out")
    {
        Description = "Folder for the report files (Markdown, JSON, PNG and SVG plots).",
        DefaultValueFactory = _ => Path.Combine("docs", "results"),
    };

    /// <summary>--runs DIR: the folder that holds the reproductions' run folders.</summary>
    public static Option<string> Runs() => new("--runs")
    {
        Description = "Folder of the run folders (each finished run is kept there and never trained again).",
        DefaultValueFactory = _ => Path.Combine("runs", "reproduce"),
    };

    /// <summary>The full path of an optional folder that must exist.</summary>
    /// <exception cref="UsageException">Given but missing.</exception>
    public static string? ExistingFolder(string? path, string option)
    {
        if (string.IsNullOrWhiteSpace(path)) return null;
        var full = Path.GetFullPath(path);
        return Directory.Exists(full) ? full : throw new UsageException($"{option} {path}: no such folder");
    }

    /// <summary>The full path of an optional file that must exist.</summary>
    /// <exception cref="UsageException">Given but missing.</exception>
    public static string? ExistingFile(string? path, string option)
    {
        if (string.IsNullOrWhiteSpace(path)) return null;
        var full = Path.GetFullPath(path);
        return File.Exists(full) ? full : throw new UsageException($"{option} {path}: no such file");
    }
}
