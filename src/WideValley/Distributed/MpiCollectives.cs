using System.Diagnostics.CodeAnalysis;
using static TorchSharp.torch;

namespace WideValley.Distributed;

/// <summary>
/// Collectives over MPI_COMM_WORLD through the system's MPI library, called directly (P/Invoke by function pointers)
/// on the tensor's own memory with MPI_IN_PLACE. Open MPI and MPICH (and MPICH-based MPIs) are both supported; which
/// one is loaded is told by its exports (<see cref="MpiAbi"/>). One instance per process (MPI can be initialised once):
/// <see cref="Initialize()"/> returns the same object until it is disposed, which finalises MPI; if it never is, MPI is
/// finalised at process exit. When any rank of a job of several dies of an unhandled exception, the whole job is
/// aborted (MPI_Abort), so the other ranks do not wait forever in their next collective.
/// </summary>
public sealed unsafe class MpiCollectives : ICollectives
{
    static readonly Lock Gate = new();
    static MpiCollectives? _instance;

    readonly MpiLibrary _mpi;
    readonly bool _ownsInitialization;
    readonly int _initThread;
    readonly Lock _callGate = new();
    bool _disposed;

    MpiCollectives(MpiLibrary mpi, bool ownsInitialization, int threadLevel)
    {
        _mpi = mpi;
        _ownsInitialization = ownsInitialization;
        ThreadLevel = threadLevel;
        _initThread = Environment.CurrentManagedThreadId;
        Rank = mpi.WorldRank();
        Size = mpi.WorldSize();
        LibraryVersion = mpi.LibraryVersion();
    }

    /// <summary>
    /// Loads the MPI library (the one named by the <see cref="Collectives.LibraryVariable"/> environment variable, else
    /// libmpi.so.40 then libmpich.so.12) and initialises MPI with MPI_THREAD_SERIALIZED, or returns the instance
    /// already made. If the process initialised MPI by other means, that initialisation is used and left to its owner
    /// to finalise.
    /// </summary>
    /// <exception cref="MpiLibraryNotFoundException">No MPI library loads; the message says what to install.</exception>
    /// <exception cref="MpiException">MPI_Init_thread or another start-up call failed.</exception>
    /// <exception cref="InvalidOperationException">MPI was already finalised in this process (it cannot start again).</exception>
    public static MpiCollectives Initialize() => Initialize(MpiLibrary.NamesFromEnvironment());

    /// <summary>As <see cref="Initialize()"/>, with the library given by name or path (ignored when an instance exists).</summary>
    public static MpiCollectives Initialize(string library)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(library);
        return Initialize([library]);
    }

    static MpiCollectives Initialize(IReadOnlyList<string> names)
    {
        lock (Gate)
        {
            if (_instance is { _disposed: false } live) return live;
            if (_instance is not null)
                throw new InvalidOperationException("MPI was finalised in this process when its collectives were disposed, and MPI " +
                                                    "cannot be initialised twice in one process: keep one MpiCollectives for the whole run");
            var mpi = MpiLibrary.Open(names);
            if (mpi.IsFinalized())
                throw new InvalidOperationException($"MPI ({mpi.Name}) was already finalised in this process; it cannot be initialised again");
            var owns = !mpi.IsInitialized();
            var level = owns ? mpi.InitThread(MpiLibrary.ThreadSerialized) : mpi.QueryThread();
            // With the default handler (errors are fatal) MPI aborts inside the failing call; with this one every call
            // returns its code and fails here with the call's name. Left alone when someone else owns MPI.
            if (owns) mpi.ReturnErrorsOnWorld();
            var collectives = new MpiCollectives(mpi, owns, level);
            AppDomain.CurrentDomain.ProcessExit += collectives.OnProcessExit;
            AppDomain.CurrentDomain.UnhandledException += collectives.OnUnhandledException;
            return _instance = collectives;
        }
    }

    /// <summary>This process's rank in MPI_COMM_WORLD.</summary>
    public int Rank { get; }

    /// <summary>The number of ranks in MPI_COMM_WORLD.</summary>
    public int Size { get; }

    /// <summary>How the loaded library represents handles.</summary>
    public MpiAbi Abi => _mpi.Abi;

    /// <summary>The name or path the library was loaded by (e.g. libmpi.so.40).</summary>
    public string Library => _mpi.Name;

    /// <summary>The first line of MPI_Get_library_version, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ...".</summary>
    public string LibraryVersion { get; }

    /// <summary>The threading level MPI provided (0 single, 1 funneled, 2 serialized, 3 multiple).</summary>
    public int ThreadLevel { get; }

    /// <summary>The MPI library, its version and ABI, and this rank.</summary>
    public string Description => $"MPI rank {Rank} of {Size}: {LibraryVersion} ({Library}, {Abi} ABI)";

    /// <summary>
    /// The most elements one MPI call carries (MPI counts are C ints); larger buffers take several calls. Lowered only
    /// by tests, to exercise the splitting on small buffers.
    /// </summary>
    internal int MaxElementsPerCall { get; set; } = int.MaxValue;

    /// <summary>The bound library, for tests that call MPI past this class's own argument checks.</summary>
    internal MpiLibrary Native => _mpi;

    /// <summary>In-place MPI_Allreduce with MPI_SUM.</summary>
    public void AllReduceSum(Tensor tensor) => SumInPlace(tensor, nameof(AllReduceSum));

    /// <summary>In-place MPI_Allreduce with MPI_SUM, then a division by <see cref="Size"/>.</summary>
    public void AllReduceAverage(Tensor tensor)
    {
        SumInPlace(tensor, nameof(AllReduceAverage));
        if (Size == 1) return;
        using var noGrad = no_grad();
        tensor.DivideBy_(Size);
    }

    /// <summary>MPI_Bcast from <paramref name="root"/>.</summary>
    public void Broadcast(Tensor tensor, int root)
    {
        var element = CollectiveTensors.Validate(tensor, nameof(Broadcast));
        if (root < 0 || root >= Size)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"the root of a broadcast must be a rank of this job, 0 to {Size - 1}");
        var count = tensor.numel();
        if (count == 0) return;
        lock (_callGate)
        {
            EnsureUsable(nameof(Broadcast));
            var start = CollectiveTensors.Pointer(tensor);
            var bytes = CollectiveTensors.ElementBytes(element);
            foreach (var (first, n) in CollectiveTensors.Pieces(count, MaxElementsPerCall))
                _mpi.Broadcast(start + first * bytes, n, element, root);
            GC.KeepAlive(tensor);
        }
    }

    /// <summary>MPI_Barrier.</summary>
    public void Barrier()
    {
        lock (_callGate)
        {
            EnsureUsable(nameof(Barrier));
            _mpi.Barrier();
        }
    }

    /// <summary>Writes the reason (with this rank) to standard error and calls MPI_Abort, which ends every rank of the job.</summary>
    [DoesNotReturn]
    public void Abort(string reason, int exitCode = 1)
    {
        // A reason's closing full stop is dropped: "reason.; aborting" reads as a typo.
        Console.Error.WriteLine($"error: rank {Rank} of {Size}: {reason.TrimEnd().TrimEnd('.')}; aborting the MPI job");
        Console.Error.Flush();
        Console.Out.Flush();
        var code = _mpi.Abort(exitCode);
        // MPI_Abort does not return unless MPI itself is broken: end this rank at least.
        Console.Error.WriteLine($"error: MPI_Abort returned {code} ({_mpi.ErrorString(code)}); exiting this rank only");
        Environment.Exit(exitCode);
        throw new InvalidOperationException("unreachable: Environment.Exit returned");
    }

    /// <summary>Finalises MPI (once; only if this object initialised it). Every rank should dispose at the same point.</summary>
    public void Dispose()
    {
        lock (Gate)
        {
            if (_disposed) return;
            _disposed = true;
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            AppDomain.CurrentDomain.UnhandledException -= OnUnhandledException;
            if (_ownsInitialization && !_mpi.IsFinalized()) _mpi.FinalizeMpi();
        }
    }

    void SumInPlace(Tensor tensor, string operation)
    {
        var element = CollectiveTensors.Validate(tensor, operation);
        var count = tensor.numel();
        if (count == 0) return;
        lock (_callGate)
        {
            EnsureUsable(operation);
            var start = CollectiveTensors.Pointer(tensor);
            var bytes = CollectiveTensors.ElementBytes(element);
            foreach (var (first, n) in CollectiveTensors.Pieces(count, MaxElementsPerCall))
                _mpi.AllReduceSumInPlace(start + first * bytes, n, element);
            GC.KeepAlive(tensor);
        }
    }

    void EnsureUsable(string operation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ThreadLevel < MpiLibrary.ThreadSerialized && Environment.CurrentManagedThreadId != _initThread)
            throw new InvalidOperationException(
                $"{operation} was called on managed thread {Environment.CurrentManagedThreadId}, but the MPI library ({Library}) " +
                $"provided threading level {ThreadLevel} (below MPI_THREAD_SERIALIZED): MPI may only be called from the thread " +
                $"that initialised it (thread {_initThread})");
    }

    void OnProcessExit(object? sender, EventArgs e)
    {
        try { Dispose(); }
        catch (Exception ex) { Console.Error.WriteLine($"warning: finalising MPI at exit failed: {ex.Message}"); }
    }

    void OnUnhandledException(object? sender, UnhandledExceptionEventArgs e)
    {
        // One rank of several dying leaves the others blocked in their next collective: take the job down instead.
        if (_disposed || Size == 1) return;
        Abort($"unhandled {e.ExceptionObject}");
    }
}
