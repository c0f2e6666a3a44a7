using WideValley.Cli;

namespace WideValley.Tests.Support;

/// <summary>The widevalley command run in the test process, its standard output and error captured.</summary>
internal static class InProcessCli
{
    /// <summary>Runs the command line <paramref name="args"/>; returns the exit code and what it printed.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
