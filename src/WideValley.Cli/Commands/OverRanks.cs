using WideValley.Distributed;

namespace WideValley.Cli.Commands;

/// <summary>
/// Runs a measurement command as one rank of an MPI job when a launcher started it (`mpirun -np K widevalley hessian
/// ...`), or as one process otherwise: the body gets the ranks (null for one process, and for a job of one, which is
/// the plain computation bit for bit). Under ranks a rank that fails or stops early ends the whole job through
/// MPI_Abort with its message and exit code, because the others would wait in their next collective for ever.
/// </summary>
internal static class OverRanks
{
    /// <summary>Runs <paramref name="body"/> with the job's ranks (null when there is one process); returns its exit code.</summary>
    public static int Run(string command, Func<ICollectives?, int> body)
    {
        // MPI is started only under a launcher: a plain run never loads it.
        if (!Collectives.LaunchedByMpi) return body(null);
        using var ranks = Collectives.Create();
        if (ranks.Size == 1) return body(null);
        int code;
        try
        {
            code = body(ranks);
        }
        catch (Exception e)
        {
            // As CliApp says them: an expected failure by its message and exit code, anything else with its type.
            var expected = CliApp.ExpectedFailure(e);
            ranks.Abort(expected is null ? $"{e.GetType().Name}: {e.Message}" : e.Message, expected ?? ExitCodes.Failure);
            return ExitCodes.Failure; // Abort does not return
        }
        if (code != ExitCodes.Ok) ranks.Abort($"{command} stopped with exit code {code} (said above)", code);
        return code;
    }

    /// <summary>"2nd", "3rd", "4th", ...: for "every Kth batch".</summary>
    public static string Ordinal(int k) => (k % 100) is >= 11 and <= 13 ? $"{k}th" : (k % 10) switch { 1 => $"{k}st", 2 => $"{k}nd", 3 => $"{k}rd", _ => $"{k}th" };

    /// <summary>The line rank 0 says first: how the evaluation sets are shared, and what is summed over the ranks.</summary>
    public static string Sharing(string command, ICollectives ranks, string summed = "every product") =>
        $"{command}: {ranks.Size} MPI ranks share the evaluation set (each evaluates every {Ordinal(ranks.Size)} batch; {summed} is summed over the ranks); rank 0 writes";
}
