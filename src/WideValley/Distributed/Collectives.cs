namespace WideValley.Distributed;

/// <summary>Picks the collectives for this process: MPI when an MPI launcher started it, a single process otherwise.</summary>
public static class Collectives
{
    /// <summary>
    /// Environment variable naming the MPI shared library to load (a name on the library path or a full path), for site
    /// MPIs that are neither Debian's Open MPI (libmpi.so.40) nor MPICH (libmpich.so.12), e.g. Intel MPI's
    /// libmpi.so.12. When it is set, only that library is tried.
    /// </summary>
    public const string LibraryVariable = "WIDEVALLEY_MPI_LIBRARY";

    /// <summary>
    /// Whether this process speaks for the job and writes its files: a single process (<paramref name="ranks"/> null or
    /// of size 1), or rank 0. Measurements over ranks compute the same numbers on every rank, so the others write
    /// nothing and print nothing but their errors.
    /// </summary>
    public static bool SpeaksForTheJob(ICollectives? ranks) => ranks is not { Size: > 1, Rank: > 0 };

    /// <summary>
    /// The variables a launcher sets in each rank's environment: OMPI_COMM_WORLD_SIZE (Open MPI's mpirun), PMI_SIZE
    /// (MPICH's mpiexec and Slurm's srun with PMI-1/PMI-2), PMIX_RANK (srun --mpi=pmix and other PMIx launchers).
    /// </summary>
    public static IReadOnlyList<string> LauncherVariables { get; } = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

    /// <summary>Whether this process was started by an MPI launcher (one of <see cref="LauncherVariables"/> is set).</summary>
    public static bool LaunchedByMpi =>
        LauncherVariables.Any(v => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v)));

    /// <summary>
    /// The job's size as the launcher states it in this process's environment (OMPI_COMM_WORLD_SIZE, or PMI_SIZE), without
    /// starting MPI; null when not launched by MPI or when the launcher does not say (PMIx-only launchers). For deciding,
    /// before any command runs, whether a command that does not use ranks was started as several of them.
    /// </summary>
    public static int? LauncherWorldSize => EnvironmentInteger("OMPI_COMM_WORLD_SIZE", "PMI_SIZE");

    /// <summary>This process's rank as the launcher states it (OMPI_COMM_WORLD_RANK, PMI_RANK or PMIX_RANK), without starting MPI; null when unstated.</summary>
    public static int? LauncherRank => EnvironmentInteger("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK");

    /// <summary>
    /// How many ranks of the job run on this machine (OMPI_COMM_WORLD_LOCAL_SIZE, or MPICH's MPI_LOCALNRANKS); null when
    /// the launcher does not say. They share its memory: a rank that sizes a buffer by the available memory takes its share.
    /// </summary>
    public static int? RanksOnThisHost => EnvironmentInteger("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS");

    private static int? EnvironmentInteger(params string[] names)
    {
        foreach (var name in names)
            if (int.TryParse(Environment.GetEnvironmentVariable(name), System.Globalization.NumberStyles.Integer,
                    System.Globalization.CultureInfo.InvariantCulture, out var value) && value >= 0)
                return value;
        return null;
    }

    /// <summary>
    /// <see cref="MpiCollectives.Initialize()"/> when <see cref="LaunchedByMpi"/>, else a
    /// <see cref="SingleProcessCollectives"/>: a user without MPI sees no change, and a run under mpirun gets MPI.
    /// </summary>
    /// <exception cref="MpiLibraryNotFoundException">Launched by MPI but no MPI library loads; the message says what to install.</exception>
    public static ICollectives Create() => LaunchedByMpi ? MpiCollectives.Initialize() : new SingleProcessCollectives();
}
