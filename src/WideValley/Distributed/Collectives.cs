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
    /// The variables a launcher sets in each rank's environment: OMPI_COMM_WORLD_SIZE (Open MPI's mpirun), PMI_SIZE
    /// (MPICH's mpiexec and Slurm's srun with PMI-1/PMI-2), PMIX_RANK (srun --mpi=pmix and other PMIx launchers).
    /// </summary>
    public static IReadOnlyList<string> LauncherVariables { get; } = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

    /// <summary>Whether this process was started by an MPI launcher (one of <see cref="LauncherVariables"/> is set).</summary>
    public static bool LaunchedByMpi =>
        LauncherVariables.Any(v => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v)));

    /// <summary>
    /// <see cref="MpiCollectives.Initialize()"/> when <see cref="LaunchedByMpi"/>, else a
    /// <see cref="SingleProcessCollectives"/>: a user without MPI sees no change, and a run under mpirun gets MPI.
    /// </summary>
    /// <exception cref="MpiLibraryNotFoundException">Launched by MPI but no MPI library loads; the message says what to install.</exception>
    public static ICollectives Create() => LaunchedByMpi ? MpiCollectives.Initialize() : new SingleProcessCollectives();
}
