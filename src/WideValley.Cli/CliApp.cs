using System.CommandLine;
using Spectre.Console;
using WideValley.Cli.Commands;

namespace WideValley.Cli;

/// <summary>Process exit codes of the widevalley command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The work failed: bad data, diverged training, I/O error.</summary>
    public const int Failure = 1;
    /// <summary>Invalid command line or option values.</summary>
    public const int Usage = 2;
    /// <summary>Stopped by Ctrl-C / SIGTERM after saving a checkpoint (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;
}

/// <summary>Thrown by commands for option values that parse but make no sense; reported with exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>What a command writes to: plain text writers plus a Spectre console over the same output.</summary>
public sealed class CliContext
{
    public required TextWriter Out { get; init; }
    public required TextWriter Error { get; init; }
    public required IAnsiConsole Console { get; init; }
    /// <summary>True when output goes to a terminal, where a live progress bar makes sense.</summary>
    public bool Interactive { get; init; }

    /// <summary>The house progress display (description, bar, percent, elapsed, remaining, spinner; cleared when done).</summary>
    public Progress ProgressBars() => Console.Progress()
        .AutoClear(true)
        .HideCompleted(true)
        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
            new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn());
}

public static class CliApp
{
    /// <summary>Builds the command tree; used by Main and by the tests (in-process).</summary>
    public static RootCommand BuildRoot(CliContext context)
    {
        var root = new RootCommand(
            "WideValley: Entropy-SGD and loss-landscape tools for TorchSharp. " +
            "Train the networks of Chaudhari et al. (ICLR 2017) and measure the geometry of what they find.");
        root.Add(TrainCommand.Create(context));
        root.Add(DemoCommand.Create(context));
        root.Add(DataCommand.Create(context));
        root.Add(ModelsCommand.Create(context));
        root.Add(EvaluateCommand.Create(context));
        root.Add(BenchCommand.Create(context));
        root.Add(HessianCommand.Create(context));
        root.Add(LandscapeCommand.Create(context));
        root.Add(FlatnessCommand.Create(context));
        root.Add(ConnectCommand.Create(context));
        root.Add(ReproduceCommand.Create(context));
        return root;
    }

    /// <summary>
    /// Whether the output is a person's terminal, where live progress bars and colours make sense: the process's own
    /// standard output, not redirected, and not a rank of an MPI job (Open MPI gives each rank a pseudo-terminal and
    /// forwards it, so a rank's output looks like a terminal but lands interleaved in mpirun's, where redrawn bars
    /// become escape codes).
    /// </summary>
    public static bool IsInteractive(bool writesToConsole, bool outputRedirected, bool launchedByMpi) =>
        writesToConsole && !outputRedirected && !launchedByMpi;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var interactive = IsInteractive(ReferenceEquals(stdout, System.Console.Out), System.Console.IsOutputRedirected, Distributed.Collectives.LaunchedByMpi);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        var context = new CliContext { Out = stdout, Error = stderr, Console = console, Interactive = interactive };
        var root = BuildRoot(context);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) stderr.WriteLine($"widevalley: {NamingTheOption(error)}");
            stderr.WriteLine("Run 'widevalley --help' (or '<command> --help') for usage.");
            return ExitCodes.Usage;
        }
        if (RunsACommand(root, parse) && RefusedUnderMpi(parse, stderr)) return ExitCodes.Usage;
        try
        {
            if (RunsACommand(root, parse)) ConfigureTorch();
            return parse.Invoke(new InvocationConfiguration
            {
                Output = stdout,
                Error = stderr,
                EnableDefaultExceptionHandler = false,
                // Ctrl-C is handled by the commands themselves: finish the step, save, exit.
                ProcessTerminationTimeout = null,
            });
        }
        catch (Exception e) when (ExpectedFailure(e) is { } code)
        {
            stderr.WriteLine($"widevalley: {e.Message}");
            return code;
        }
    }

    /// <summary>
    /// The exit code of an exception that a command throws for a reason its message says in full: a bad option or input
    /// (exit 2), or data, a file or torch that could not be read or written (exit 1). Null for anything else, a bug,
    /// which is reported with its type and stack. One list for the whole tool, ranks included (OverRanks).
    /// </summary>
    internal static int? ExpectedFailure(Exception e) => e switch
    {
        UsageException or ArgumentException or FormatException => ExitCodes.Usage,
        IOException or InvalidDataException or UnauthorizedAccessException or NotSupportedException or TorchLoadException => ExitCodes.Failure,
        _ => null,
    };

    /// <summary>
    /// The command's process-wide set-up, explicit here rather than hidden in the library: oneDNN and NNPACK off and
    /// glibc malloc tuned (see <see cref="TorchRuntime.Configure"/> for why), unless WIDEVALLEY_ONEDNN=1 or
    /// WIDEVALLEY_MALLOC_TUNING=0 say otherwise. A configuration already in force (a test host's) is kept. Throws
    /// <see cref="TorchLoadException"/>, which names the cause, when torch cannot be loaded.
    /// </summary>
    static void ConfigureTorch() => TorchRuntime.EnsureInitialized();

    /// <summary>
    /// A parse error's message with the option it concerns in front when the message does not name it (System.CommandLine
    /// says "Argument 'cubic' not recognized. Must be one of: ..." without the flag).
    /// </summary>
    static string NamingTheOption(System.CommandLine.Parsing.ParseError error)
    {
        var option = error.SymbolResult switch
        {
            System.CommandLine.Parsing.OptionResult o => o.Option,
            System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => o.Option,
            _ => null,
        };
        return option is null || error.Message.Contains(option.Name, StringComparison.Ordinal) ? error.Message : $"{option.Name}: {error.Message}";
    }

    /// <summary>The commands that use the ranks of an MPI job (each rank its part; rank 0 writes): the others run as one process.</summary>
    public static readonly string[] RankAwareCommands = ["train", "hessian", "flatness", "landscape", "reproduce parle", "bench distributed"];

    /// <summary>
    /// Refuses a command that does not use ranks when an MPI launcher started several copies of it: each copy would
    /// compute the same thing and write the same files at once (a folder's lock would stop all but one, after the
    /// others had loaded everything). Decided from the launcher's environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE) before
    /// MPI or torch start; a launcher that does not state the size is let through. Rank 0 says why; every rank exits 2.
    /// </summary>
    static bool RefusedUnderMpi(ParseResult parse, TextWriter stderr)
    {
        if (Distributed.Collectives.LauncherWorldSize is not (> 1 and var size)) return false;
        var path = new List<string>();
        for (var result = parse.CommandResult; result is not null && result.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
            path.Insert(0, result.Command.Name);
        var command = string.Join(' ', path);
        if (RankAwareCommands.Contains(command)) return false;
        if (Distributed.Collectives.LauncherRank is null or 0)
            stderr.WriteLine($"widevalley: {command} does not run over MPI ranks, and the launcher started {size} of it: every copy would compute the same " +
                             $"thing and write the same files. Run it as one process, without mpirun. Over ranks run: {string.Join(", ", RankAwareCommands.Select(c => "widevalley " + c))}.");
        return true;
    }

    /// <summary>False for --help and --version, which print text and need no torch.</summary>
    static bool RunsACommand(RootCommand root, ParseResult parse)
    {
        if (parse.Action is System.CommandLine.Help.HelpAction) return false;
        return !root.Options.OfType<VersionOption>().Any(v => parse.GetResult(v) is not null);
    }
}
