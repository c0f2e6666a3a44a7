using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley;

/// <summary>
/// Process-wide TorchSharp set-up: loading torch (with an explanation when it fails), the explicit runtime configuration
/// (<see cref="Configure"/>), device choice, thread count, seeding. Nothing here runs unless called: WideValley's
/// library code only checks that torch loads.
/// </summary>
public static class TorchRuntime
{
    /// <summary>
    /// Parses a device name ("cpu", "cuda", "cuda:1") and checks that this build and machine can use it, with an
    /// error that says what to do when they cannot.
    /// </summary>
    public static Device ResolveDevice(string name)
    {
        var text = (name ?? "").Trim().ToLowerInvariant();
        if (text == "cpu") return CPU;
        if (text == "cuda" || text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException(
                    $"--device {name}: CUDA is not available. This build uses the TorchSharp backend '{BackendName}'; " +
                    "build with -p:WideValleyTorchBackend=cuda on a machine with an NVIDIA driver, or use --device cpu.");
            var index = 0;
            if (text.Length > 5 && !int.TryParse(text[5..], out index))
                throw new ArgumentException($"--device {name}: expected cuda or cuda:N with N a device index.");
            if (index < 0 || index >= cuda.device_count())
                throw new ArgumentException($"--device {name}: this machine has {cuda.device_count()} CUDA device(s).");
            return new Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"--device {name}: unknown device; expected cpu, cuda or cuda:N.");
    }

    /// <summary>Which TorchSharp native package this assembly was built against (cpu or cuda).</summary>
    public static string BackendName =>
        AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name?.Contains("cuda", StringComparison.OrdinalIgnoreCase) == true)
            ? "cuda" : "cpu";

    /// <summary>Sets libtorch's intra-op thread count; 0 keeps libtorch's default.</summary>
    public static void SetThreads(int threads)
    {
        if (threads < 0) throw new ArgumentOutOfRangeException(nameof(threads), threads, "--threads must be 0 (default) or positive.");
        if (threads > 0) set_num_threads(threads);
    }

    /// <summary>Seeds libtorch's global generator (dropout masks, initialisation).</summary>
    public static void Seed(long seed) => random.manual_seed(seed);

    static volatile bool _loaded;

    /// <summary>
    /// Loads torch's native libraries if they are not loaded yet, and when that fails, throws a
    /// <see cref="TorchLoadException"/> that says why: on Linux it checks the app's libLibTorchSharp.so against the
    /// system's libstdc++ (Debian 12 lacks the GLIBCXX_3.4.32 that TorchSharp 0.107 asks for) and names the fix, or
    /// finds no native backend package in the app. WideValley calls it where it first touches torch; changes no state.
    /// </summary>
    /// <exception cref="TorchLoadException">torch's native libraries cannot be loaded.</exception>
    public static void EnsureLoadable()
    {
        if (_loaded) return;
        try
        {
            _ = get_num_threads(); // the first call into torch loads TorchSharp's native libraries
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException
                                      or BadImageFormatException or EntryPointNotFoundException)
        {
            throw TorchLoadException.Explain(e);
        }
        _loaded = true;
    }

    /// <summary>Environment variable that, set to 1, keeps libtorch's oneDNN (mkldnn) CPU kernels switched on.</summary>
    public const string OneDnnVariable = "WIDEVALLEY_ONEDNN";

    /// <summary>Environment variable that, set to 0, leaves glibc's allocator settings alone.</summary>
    public const string AllocatorVariable = "WIDEVALLEY_MALLOC_TUNING";

    static readonly Lock ConfigureLock = new();

    /// <summary>Calls of <see cref="Configure"/> and <see cref="EnsureInitialized"/>: the tests check that library code makes none.</summary>
    internal static int ConfigurationRequests;
    static bool _mallocTuned;

    /// <summary>
    /// The configuration last applied by <see cref="Configure"/>, or null if nobody has called it: then libtorch's and
    /// glibc's defaults are in force. WideValley's library code never configures the process on its own.
    /// </summary>
    public static TorchRuntimeConfiguration? Configuration { get; private set; }

    /// <summary>
    /// Applies <paramref name="configuration"/> to the whole process: libtorch's oneDNN and NNPACK switches (set both
    /// ways, so a later call can switch oneDNN back on), glibc's allocator and the intra-op thread count. Loads torch
    /// first (<see cref="EnsureLoadable"/>). The CLI calls it at start with <see cref="TorchRuntimeConfiguration.FromEnvironment"/>;
    /// a library user calls it once, early, if they want the same set-up. Thread-safe.
    /// </summary>
    /// <remarks>
    /// Why these switches exist. libtorch 2.10's oneDNN (mkldnn) convolutions, which TorchSharp 0.107 uses for CPU
    /// float32 conv2d, now and then return an output channel of NaN for finite inputs and weights on our AMD EPYC
    /// machines; re-running the same call gives finite values, so the kernel reads memory it never wrote. LeNet training
    /// hit it every few hundred steps; with oneDNN off, four 2,500-step runs that had failed were clean. TorchSharp has
    /// no switch for this, so we call libtorch's own at::Context setters (exported C++ functions). NNPACK cannot
    /// initialise on these CPUs and libtorch would print a warning on every convolution. libtorch allocates its CPU
    /// tensors with malloc; glibc serves blocks above its (adaptive) mmap threshold with fresh mmap calls and returns
    /// freed memory to the kernel, so every training step and Hessian-vector product pays page faults and zeroing for
    /// its large temporaries again: a LeNet HVP over 1,000 samples took 635 ms with glibc's defaults and 297 ms with
    /// <see cref="TorchRuntimeConfiguration.TuneMalloc"/> (blocks up to 32 MB stay on the heap, no trimming, at the
    /// price of the process keeping its peak memory). glibc offers no way back, so once tuned, the allocator stays
    /// tuned for the life of the process, whatever a later configuration says (<see cref="AllocatorNote"/> tells).
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">Negative <see cref="TorchRuntimeConfiguration.Threads"/>.</exception>
    /// <exception cref="TorchLoadException">torch's native libraries cannot be loaded; the message says why.</exception>
    public static void Configure(TorchRuntimeConfiguration configuration)
    {
        Interlocked.Increment(ref ConfigurationRequests);
        ArgumentNullException.ThrowIfNull(configuration);
        if (configuration.Threads < 0)
            throw new ArgumentOutOfRangeException(nameof(configuration), configuration.Threads,
                "TorchRuntimeConfiguration.Threads must be 0 (libtorch's default) or positive.");
        lock (ConfigureLock)
        {
            if (configuration.TuneMalloc && !_mallocTuned)
            {
                TuneAllocator();
                _mallocTuned = true;
            }
            EnsureLoadable();
            try
            {
                var context = LibTorchContext.GlobalContext();
                LibTorchContext.SetUserEnabledMkldnn(context, !configuration.DisableOneDnn);
                LibTorchContext.SetUserEnabledNnpack(context, !configuration.DisableNnpack);
                BackendSwitchesNote = null;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                BackendSwitchesNote = $"libtorch's backend switches are not available ({e.GetType().Name}); libtorch defaults in use";
            }
            SetThreads(configuration.Threads);
            Configuration = configuration;
        }
    }

    /// <summary>
    /// Applies <see cref="TorchRuntimeConfiguration.FromEnvironment"/> unless a configuration is already in force: what
    /// the CLI, the benchmarks and the tests do at start. Library code does not call it.
    /// </summary>
    public static void EnsureInitialized()
    {
        Interlocked.Increment(ref ConfigurationRequests);
        lock (ConfigureLock)
        {
            if (Configuration is null) Configure(TorchRuntimeConfiguration.FromEnvironment());
        }
    }

    static string? BackendSwitchesNote;

    /// <summary>
    /// What is in force for libtorch's CPU backend and the C allocator, in one line for logs and reports (the reports'
    /// machine line). Reads the live oneDNN and NNPACK state; changes nothing.
    /// </summary>
    public static string CpuBackendNote
    {
        get
        {
            var configured = Configuration is null ? "TorchRuntime.Configure not called" : "TorchRuntime.Configure";
            string backend;
            if (BackendSwitchesNote is not null) backend = BackendSwitchesNote;
            else
            {
                var oneDnn = OneDnnEnabled;
                var nnpack = NnpackEnabled;
                backend = oneDnn is null || nnpack is null
                    ? "libtorch's backend switches cannot be read"
                    : $"oneDNN {(oneDnn.Value ? "on" : "off")}, NNPACK {(nnpack.Value ? "on" : "off")}";
            }
            return $"{backend}, {AllocatorNote} ({configured})";
        }
    }

    /// <summary>What <see cref="Configure"/> did to the C allocator, for logs and reports.</summary>
    public static string AllocatorNote { get; private set; } = "glibc defaults";

    /// <summary>
    /// Keeps blocks up to 32 MB (glibc's largest mmap threshold) on the heap and stops trimming; see the remarks of
    /// <see cref="Configure"/>. Linux with glibc only.
    /// </summary>
    static void TuneAllocator()
    {
        if (!OperatingSystem.IsLinux()) { AllocatorNote = "not Linux; allocator defaults in use"; return; }
        try
        {
            const int TrimThreshold = -1, TopPad = -2, MmapThreshold = -3;
            var ok = GlibcMalloc.mallopt(MmapThreshold, 32 * 1024 * 1024) == 1
                     & GlibcMalloc.mallopt(TrimThreshold, int.MaxValue) == 1
                     & GlibcMalloc.mallopt(TopPad, 256 * 1024 * 1024) == 1;
            AllocatorNote = ok ? "glibc malloc: 32 MB mmap threshold, no trimming" : "glibc malloc: some settings refused";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            AllocatorNote = "not glibc; allocator defaults in use";
        }
    }

    static class GlibcMalloc
    {
        [DllImport("libc.so.6")]
        public static extern int mallopt(int param, int value);
    }

    /// <summary>Whether libtorch will use oneDNN for CPU operators (null if that cannot be asked). Loads torch.</summary>
    public static bool? OneDnnEnabled
    {
        get
        {
            EnsureLoadable();
            try { return LibTorchContext.UserEnabledMkldnn(LibTorchContext.GlobalContext()); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
        }
    }

    /// <summary>Whether libtorch may use NNPACK for CPU convolutions (null if that cannot be asked). Loads torch.</summary>
    public static bool? NnpackEnabled
    {
        get
        {
            EnsureLoadable();
            try { return LibTorchContext.UserEnabledNnpack(LibTorchContext.GlobalContext()); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
        }
    }

    /// <summary>at::globalContext() and two of its setters, by their Itanium-ABI names (libtorch exports them).</summary>
    static class LibTorchContext
    {
        const string Library = "torch_cpu";

        [DllImport(Library, EntryPoint = "_ZN2at13globalContextEv")]
        public static extern IntPtr GlobalContext();

        [DllImport(Library, EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
        public static extern void SetUserEnabledMkldnn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

        [DllImport(Library, EntryPoint = "_ZNK2at7Context17userEnabledMkldnnEv")]
        [return: MarshalAs(UnmanagedType.U1)]
        public static extern bool UserEnabledMkldnn(IntPtr context);

        [DllImport(Library, EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
        public static extern void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

        [DllImport(Library, EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
        [return: MarshalAs(UnmanagedType.U1)]
        public static extern bool UserEnabledNnpack(IntPtr context);
    }
}
