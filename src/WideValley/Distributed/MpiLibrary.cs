using System.Runtime.InteropServices;
using System.Text;

namespace WideValley.Distributed;

/// <summary>The binary interface of the loaded MPI library: how its handles and constants are represented.</summary>
public enum MpiAbi
{
    /// <summary>Open MPI: handles are pointers to exported structures (<c>&amp;ompi_mpi_comm_world</c>), <c>MPI_IN_PLACE</c> is 1.</summary>
    OpenMpi,

    /// <summary>MPICH and its derivatives (Intel MPI, MVAPICH, Cray MPICH): handles are integers, <c>MPI_IN_PLACE</c> is -1.</summary>
    Mpich,
}

/// <summary>The element types the collectives move.</summary>
internal enum MpiElement
{
    Float32,
    Float64,
}

/// <summary>No MPI shared library could be loaded: says which names were tried and what to install.</summary>
public sealed class MpiLibraryNotFoundException(string message) : Exception(message);

/// <summary>An MPI call returned an error code: <see cref="Call"/> names the function, the message holds MPI's own text.</summary>
public sealed class MpiException(string call, int errorCode, string message) : Exception(message)
{
    /// <summary>The MPI function that failed, e.g. <c>MPI_Allreduce</c>.</summary>
    public string Call { get; } = call;

    /// <summary>The error code it returned (MPI_SUCCESS is 0).</summary>
    public int ErrorCode { get; } = errorCode;
}

/// <summary>
/// The system's MPI library, opened by name at run time (no <c>DllImport</c>, whose library name would be fixed at
/// compile time), with its functions bound as unmanaged function pointers. The two ABIs differ in how handles are
/// passed (pointer-sized for Open MPI, 32-bit integers for MPICH), so each has its own subclass with exactly typed
/// pointers; the handle-free functions are shared here.
/// </summary>
internal abstract unsafe class MpiLibrary
{
    /// <summary>Tried in this order when <see cref="Collectives.LibraryVariable"/> is not set.</summary>
    public static readonly IReadOnlyList<string> DefaultNames = ["libmpi.so.40", "libmpich.so.12"];

    /// <summary>Threading levels of MPI_Init_thread; the same values in both ABIs.</summary>
    public const int ThreadSingle = 0, ThreadFunneled = 1, ThreadSerialized = 2, ThreadMultiple = 3;

    /// <summary>Room for MPI_Error_string and MPI_Get_library_version in any ABI (Open MPI: 256, MPICH: up to 8192).</summary>
    const int TextBufferBytes = 8192;

    readonly delegate* unmanaged<int*, byte***, int, int*, int> _initThread;
    readonly delegate* unmanaged<int*, int> _initialized;
    readonly delegate* unmanaged<int*, int> _finalized;
    readonly delegate* unmanaged<int> _finalize;
    readonly delegate* unmanaged<int*, int> _queryThread;
    readonly delegate* unmanaged<int, byte*, int*, int> _errorString;
    readonly delegate* unmanaged<byte*, int*, int> _libraryVersion;

    /// <summary>The name or path the library was opened by.</summary>
    public string Name { get; }

    /// <summary>The handle from dlopen.</summary>
    protected nint Handle { get; }

    /// <summary>How this library represents handles.</summary>
    public abstract MpiAbi Abi { get; }

    /// <summary>The <c>MPI_IN_PLACE</c> sentinel of this ABI.</summary>
    public abstract void* InPlace { get; }

    protected MpiLibrary(string name, nint handle)
    {
        Name = name;
        Handle = handle;
        _initThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Export("MPI_Init_thread");
        _initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        _finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _queryThread = (delegate* unmanaged<int*, int>)Export("MPI_Query_thread");
        _errorString = (delegate* unmanaged<int, byte*, int*, int>)Export("MPI_Error_string");
        _libraryVersion = (delegate* unmanaged<byte*, int*, int>)Export("MPI_Get_library_version");
    }

    /// <summary>The address of an exported function or variable; a clear error when the library lacks it.</summary>
    protected nint Export(string symbol) =>
        NativeLibrary.TryGetExport(Handle, symbol, out var address)
            ? address
            : throw new MpiLibraryNotFoundException($"the MPI library {Name} does not export {symbol}: it is not a complete MPI " +
                                                    $"library (set {Collectives.LibraryVariable} to your MPI's libmpi shared library)");

    /// <summary>
    /// Opens the MPI library: <paramref name="names"/> in order (a name is searched on the system's library path, a
    /// path is used as is), the first that loads wins, and its exports decide the ABI.
    /// </summary>
    /// <exception cref="MpiLibraryNotFoundException">None of the names loads; the message lists each failure and what to install.</exception>
    public static MpiLibrary Open(IReadOnlyList<string> names)
    {
        var failures = new List<string>();
        foreach (var name in names)
        {
            var handle = DynamicLoader.OpenGlobal(name, out var error);
            if (handle == 0)
            {
                failures.Add($"{name}: {error}");
                continue;
            }
            // Open MPI's predefined handles are the addresses of exported structures; MPICH's are integer constants
            // and it exports no such symbol. The same test as Mukautuva, CUDA-Q, Mercury and MLIR's MPI lowering use.
            return NativeLibrary.TryGetExport(handle, "ompi_mpi_comm_world", out _)
                ? new OpenMpiLibrary(name, handle)
                : new MpichLibrary(name, handle);
        }
        throw new MpiLibraryNotFoundException(
            "no MPI library could be loaded (tried " + string.Join("; ", failures) + "). Install Open MPI " +
            "(Debian/Ubuntu: sudo apt-get install openmpi-bin, which brings libmpi.so.40 and mpirun; Fedora: sudo dnf install " +
            "openmpi) or MPICH (libmpich.so.12), or set " + Collectives.LibraryVariable + " to your site MPI's shared library " +
            "(a name on the library path or a full path).");
    }

    /// <summary>The names to try: the environment variable's value alone when it is set, else <see cref="DefaultNames"/>.</summary>
    public static IReadOnlyList<string> NamesFromEnvironment() =>
        Environment.GetEnvironmentVariable(Collectives.LibraryVariable) is { Length: > 0 } name ? [name] : DefaultNames;

    /// <summary>Throws <see cref="MpiException"/> naming <paramref name="call"/> when <paramref name="code"/> is not MPI_SUCCESS.</summary>
    public void Check(int code, string call)
    {
        if (code == 0) return;
        throw new MpiException(call, code, $"{call} failed with MPI error code {code}: {ErrorString(code)} (MPI library {Name}, {Abi} ABI)");
    }

    /// <summary>MPI's text for an error code (callable before MPI_Init and after MPI_Finalize).</summary>
    public string ErrorString(int code)
    {
        var buffer = stackalloc byte[TextBufferBytes];
        var length = 0;
        return _errorString(code, buffer, &length) == 0 ? Encoding.UTF8.GetString(buffer, Math.Clamp(length, 0, TextBufferBytes)).TrimEnd('\0', '\n', ' ')
            : "(MPI_Error_string failed too)";
    }

    /// <summary>MPI_Get_library_version's text, first line only (callable before MPI_Init).</summary>
    public string LibraryVersion()
    {
        var buffer = stackalloc byte[TextBufferBytes];
        var length = 0;
        Check(_libraryVersion(buffer, &length), "MPI_Get_library_version");
        var text = Encoding.UTF8.GetString(buffer, Math.Clamp(length, 0, TextBufferBytes)).TrimEnd('\0');
        var first = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
        // MPICH writes "MPICH Version:\t4.0.2": one line of single spaces reads better in a log.
        return string.Join(' ', first.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>MPI_Initialized.</summary>
    public bool IsInitialized()
    {
        int flag;
        Check(_initialized(&flag), "MPI_Initialized");
        return flag != 0;
    }

    /// <summary>MPI_Finalized.</summary>
    public bool IsFinalized()
    {
        int flag;
        Check(_finalized(&flag), "MPI_Finalized");
        return flag != 0;
    }

    /// <summary>MPI_Init_thread without command-line arguments; returns the provided threading level.</summary>
    public int InitThread(int required)
    {
        int provided;
        Check(_initThread(null, null, required, &provided), "MPI_Init_thread");
        return provided;
    }

    /// <summary>MPI_Query_thread: the threading level of an MPI someone else initialised.</summary>
    public int QueryThread()
    {
        int provided;
        Check(_queryThread(&provided), "MPI_Query_thread");
        return provided;
    }

    /// <summary>MPI_Finalize.</summary>
    public void FinalizeMpi() => Check(_finalize(), "MPI_Finalize");

    /// <summary>MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN): failed calls return codes instead of aborting.</summary>
    public abstract void ReturnErrorsOnWorld();

    /// <summary>MPI_Comm_rank(MPI_COMM_WORLD).</summary>
    public abstract int WorldRank();

    /// <summary>MPI_Comm_size(MPI_COMM_WORLD).</summary>
    public abstract int WorldSize();

    /// <summary>In-place MPI_Allreduce with MPI_SUM over MPI_COMM_WORLD.</summary>
    public abstract void AllReduceSumInPlace(void* buffer, int count, MpiElement element);

    /// <summary>MPI_Bcast over MPI_COMM_WORLD.</summary>
    public abstract void Broadcast(void* buffer, int count, MpiElement element, int root);

    /// <summary>MPI_Barrier(MPI_COMM_WORLD).</summary>
    public abstract void Barrier();

    /// <summary>MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job; returns only if MPI itself failed.</summary>
    public abstract int Abort(int code);
}

/// <summary>Open MPI's ABI: handles are the addresses of exported <c>ompi_*</c> structures.</summary>
internal sealed unsafe class OpenMpiLibrary : MpiLibrary
{
    readonly nint _world, _float, _double, _sum, _errorsReturn;
    readonly delegate* unmanaged<nint, nint, int> _commSetErrhandler;
    readonly delegate* unmanaged<nint, int*, int> _commRank, _commSize;
    readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    readonly delegate* unmanaged<nint, int> _barrier;
    readonly delegate* unmanaged<nint, int, int> _abort;

    public OpenMpiLibrary(string name, nint handle) : base(name, handle)
    {
        _world = Export("ompi_mpi_comm_world");
        _float = Export("ompi_mpi_float");
        _double = Export("ompi_mpi_double");
        _sum = Export("ompi_mpi_op_sum");
        _errorsReturn = Export("ompi_mpi_errors_return");
        _commSetErrhandler = (delegate* unmanaged<nint, nint, int>)Export("MPI_Comm_set_errhandler");
        _commRank = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)Export("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Export("MPI_Bcast");
        _barrier = (delegate* unmanaged<nint, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)Export("MPI_Abort");
    }

    public override MpiAbi Abi => MpiAbi.OpenMpi;

    public override void* InPlace => (void*)1;

    nint Type(MpiElement element) => element == MpiElement.Float32 ? _float : _double;

    public override void ReturnErrorsOnWorld() => Check(_commSetErrhandler(_world, _errorsReturn), "MPI_Comm_set_errhandler");

    public override int WorldRank()
    {
        int rank;
        Check(_commRank(_world, &rank), "MPI_Comm_rank");
        return rank;
    }

    public override int WorldSize()
    {
        int size;
        Check(_commSize(_world, &size), "MPI_Comm_size");
        return size;
    }

    public override void AllReduceSumInPlace(void* buffer, int count, MpiElement element) =>
        Check(_allreduce(InPlace, buffer, count, Type(element), _sum, _world), "MPI_Allreduce");

    public override void Broadcast(void* buffer, int count, MpiElement element, int root) =>
        Check(_bcast(buffer, count, Type(element), root, _world), "MPI_Bcast");

    public override void Barrier() => Check(_barrier(_world), "MPI_Barrier");

    public override int Abort(int code) => _abort(_world, code);
}

/// <summary>MPICH's ABI (and Intel MPI's, MVAPICH's, Cray's): handles are 32-bit integer constants from MPICH's mpi.h.</summary>
internal sealed unsafe class MpichLibrary : MpiLibrary
{
    const int CommWorld = 0x44000000;
    const int Float = 0x4c00040a;
    const int Double = 0x4c00080b;
    const int Sum = 0x58000003;
    const int ErrorsReturn = 0x54000001;

    readonly delegate* unmanaged<int, int, int> _commSetErrhandler;
    readonly delegate* unmanaged<int, int*, int> _commRank, _commSize;
    readonly delegate* unmanaged<void*, void*, int, int, int, int, int> _allreduce;
    readonly delegate* unmanaged<void*, int, int, int, int, int> _bcast;
    readonly delegate* unmanaged<int, int> _barrier;
    readonly delegate* unmanaged<int, int, int> _abort;

    public MpichLibrary(string name, nint handle) : base(name, handle)
    {
        _commSetErrhandler = (delegate* unmanaged<int, int, int>)Export("MPI_Comm_set_errhandler");
        _commRank = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<int, int*, int>)Export("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, int, int, int, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, int, int, int, int>)Export("MPI_Bcast");
        _barrier = (delegate* unmanaged<int, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<int, int, int>)Export("MPI_Abort");
    }

    public override MpiAbi Abi => MpiAbi.Mpich;

    public override void* InPlace => (void*)-1;

    static int Type(MpiElement element) => element == MpiElement.Float32 ? Float : Double;

    public override void ReturnErrorsOnWorld() => Check(_commSetErrhandler(CommWorld, ErrorsReturn), "MPI_Comm_set_errhandler");

    public override int WorldRank()
    {
        int rank;
        Check(_commRank(CommWorld, &rank), "MPI_Comm_rank");
        return rank;
    }

    public override int WorldSize()
    {
        int size;
        Check(_commSize(CommWorld, &size), "MPI_Comm_size");
        return size;
    }

    public override void AllReduceSumInPlace(void* buffer, int count, MpiElement element) =>
        Check(_allreduce(InPlace, buffer, count, Type(element), Sum, CommWorld), "MPI_Allreduce");

    public override void Broadcast(void* buffer, int count, MpiElement element, int root) =>
        Check(_bcast(buffer, count, Type(element), root, CommWorld), "MPI_Bcast");

    public override void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");

    public override int Abort(int code) => _abort(CommWorld, code);
}

/// <summary>
/// dlopen with RTLD_NOW | RTLD_GLOBAL. Open MPI loads its transports as plug-ins that expect libmpi's symbols to be
/// global; .NET's NativeLibrary.Load opens libraries RTLD_LOCAL (mpi4py and MpiDotNet promote libmpi for the same
/// reason). Elsewhere than Linux, NativeLibrary.Load.
/// </summary>
internal static unsafe class DynamicLoader
{
    const int RtldNow = 0x2, RtldGlobal = 0x100;

    /// <summary>Opens <paramref name="name"/>; 0 and the loader's message in <paramref name="error"/> when it cannot.</summary>
    public static nint OpenGlobal(string name, out string error)
    {
        error = "";
        if (!OperatingSystem.IsLinux())
        {
            if (NativeLibrary.TryLoad(name, out var h)) return h;
            error = "not found on the library search path";
            return 0;
        }
        if (!NativeLibrary.TryLoad("libc.so.6", out var libc) ||
            !NativeLibrary.TryGetExport(libc, "dlopen", out var dlopenAddress) ||
            !NativeLibrary.TryGetExport(libc, "dlerror", out var dlerrorAddress))
        {
            // glibc before 2.34 keeps dlopen in libdl; any other libc: plain NativeLibrary.Load (RTLD_LOCAL).
            if (NativeLibrary.TryLoad("libdl.so.2", out var libdl) &&
                NativeLibrary.TryGetExport(libdl, "dlopen", out dlopenAddress) &&
                NativeLibrary.TryGetExport(libdl, "dlerror", out dlerrorAddress)) { }
            else
            {
                if (NativeLibrary.TryLoad(name, out var h)) return h;
                error = "not found on the library search path";
                return 0;
            }
        }
        var dlopen = (delegate* unmanaged<byte*, int, nint>)dlopenAddress;
        var dlerror = (delegate* unmanaged<byte*>)dlerrorAddress;
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        nint handle;
        fixed (byte* p = bytes) handle = dlopen(p, RtldNow | RtldGlobal);
        if (handle == 0)
        {
            var message = dlerror();
            error = message is null ? "dlopen failed" : Marshal.PtrToStringUTF8((nint)message) ?? "dlopen failed";
        }
        return handle;
    }
}
