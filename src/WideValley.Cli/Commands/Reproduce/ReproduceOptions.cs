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

    /// <summary>The machine, for a report; <paramref name="threads"/> is the --threads the runs were given (0: libtorch's default).</summary>
    public static string Machine(int threads)
    {
        var machine = MachineDescription.Current();
        return (threads > 0 ? machine with { Threads = threads } : machine).OneLine();
    }

    /// <summary>
    /// Runs a reproduction's checks before anything trains (its settings, the data it needs, the plan of its runs): a
    /// check that fails is a usage error (exit 2) with the check's own message. Then, when <paramref name="outDir"/> is
    /// given, the report folder must be writable.
    /// </summary>
    /// <exception cref="UsageException">A check failed (an <see cref="ArgumentException"/> or missing data).</exception>
    public static void CheckBeforeTraining(Action checks, string? outDir = null, string? experiment = null)
    {
        ArgumentNullException.ThrowIfNull(checks);
        try
        {
            checks();
        }
        catch (Exception e) when (e is ArgumentException or WideValley.Data.DatasetNotFoundException)
        {
            throw new UsageException(e.Message);
        }
        if (outDir is not null) ReportFolders.CheckWritable(outDir, experiment ?? throw new ArgumentNullException(nameof(experiment)));
    }

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

/// <summary>What the options of a comparison command (table1, sgld-baseline) say, read and checked.</summary>
internal sealed record ComparisonSettings(int Seeds, long FirstSeed, Budget Budget, string RunsRoot, string OutDir, string? MnistDir,
    string? FashionMnistDir, int Threads, string Device, bool ReportOnly)
{
    /// <summary>The library's settings of a comparison on <paramref name="data"/>, quoting <paramref name="commandLine"/> in the report.</summary>
    public ComparisonRunSettings ToRunSettings(ExperimentData data, string commandLine) => new()
    {
        Budget = Budget,
        Seeds = Seeds,
        FirstSeed = FirstSeed,
        Data = data,
        Threads = Threads,
        Device = Device,
        RunsRoot = RunsRoot,
        OutDir = OutDir,
        ReportOnly = ReportOnly,
        CommandLine = commandLine,
        Machine = ReproduceOptions.Machine(Threads),
    };
}

/// <summary>The options every comparison of Entropy-SGD with a baseline over seeds takes.</summary>
internal sealed class ComparisonOptions
{
    public readonly Option<int> Seeds;
    public readonly Option<long> FirstSeed = new("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
    public readonly Option<string> Budget = ReproduceOptions.Budget();
    public readonly Option<string> Runs = ReproduceOptions.Runs();
    public readonly Option<string> Output = ReproduceOptions.Output();
    public readonly Option<string?> MnistDir = new("--mnist-dir") { Description = "Folder with the MNIST files; without it Fashion-MNIST stands in for MNIST." };
    public readonly Option<string?> FashionMnistDir = new("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
    public readonly Option<int> Threads = MeasurementOptions.Threads();
    public readonly Option<string> Device = new("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
    public readonly Option<bool> ReportOnly = new("--report-only") { Description = "Train nothing; write the report from the runs that have finished." };

    public ComparisonOptions(int defaultSeeds, string seedsDescription) =>
        Seeds = new("--seeds") { Description = seedsDescription, DefaultValueFactory = _ => defaultSeeds };

    public IEnumerable<Option> All => [Seeds, FirstSeed, Budget, Runs, Output, MnistDir, FashionMnistDir, Threads, Device, ReportOnly];

    /// <exception cref="UsageException">A named folder does not exist.</exception>
    public ComparisonSettings Read(ParseResult p) => new(
        p.GetValue(Seeds),
        p.GetValue(FirstSeed),
        Budgets.Parse(p.GetValue(Budget)!),
        Path.GetFullPath(p.GetValue(Runs)!),
        Path.GetFullPath(p.GetValue(Output)!),
        ReproduceOptions.ExistingFolder(p.GetValue(MnistDir), "--mnist-dir"),
        ReproduceOptions.ExistingFolder(p.GetValue(FashionMnistDir), "--fashion-mnist-dir"),
        p.GetValue(Threads),
        p.GetValue(Device)!,
        p.GetValue(ReportOnly));
}
