using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley;

/// <summary>Process-wide TorchSharp set-up: device choice, thread count, seeding.</summary>
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

    /// <summary>Environment variable that, set to 1, keeps libtorch's oneDNN (mkldnn) CPU kernels switched on.</summary>
    public const string OneDnnVariable = "WIDEVALLEY_ONEDNN";

    static int _initialized;

    /// <summary>What <see cref="EnsureInitialized"/> did, for logs and reports.</summary>
    public static string CpuBackendNote { get; private set; } = "not configured";

    /// <summary>
    /// Makes libtorch's CPU backend choices that WideValley relies on; safe to call many times (only the first call acts).
    /// </summary>
    /// <remarks>
    /// libtorch 2.10's oneDNN (mkldnn) convolutions, which TorchSharp 0.107 uses for CPU float32 conv2d, now and then
    /// return an output channel of NaN for finite inputs and weights on our AMD EPYC machines; re-running the same call
    /// gives finite values, so the kernel reads memory it never wrote. LeNet training hit it every few hundred steps;
    /// with oneDNN off, four 2,500-step runs that had failed were clean. TorchSharp has no switch for this, so we call
    /// libtorch's own at::Context setters (exported C++ functions). NNPACK is switched off as well: it cannot initialise
    /// on these CPUs and libtorch would print a warning on every convolution instead. Set WIDEVALLEY_ONEDNN=1 to keep
    /// oneDNN on (for example on hardware where it is known to behave).
    /// </remarks>
    public static void EnsureInitialized()
    {
        if (Interlocked.Exchange(ref _initialized, 1) == 1) return;
        TuneAllocator();
        _ = get_num_threads(); // loads TorchSharp's native libraries before we look up libtorch's symbols
        var keepOneDnn = Environment.GetEnvironmentVariable(OneDnnVariable) == "1";
        try
        {
            var context = LibTorchContext.GlobalContext();
            if (!keepOneDnn) LibTorchContext.SetUserEnabledMkldnn(context, false);
            LibTorchContext.SetUserEnabledNnpack(context, false);
            CpuBackendNote = LibTorchContext.UserEnabledMkldnn(context)
                ? $"oneDNN on ({OneDnnVariable}=1), NNPACK off"
                : "oneDNN off (see TorchRuntime.EnsureInitialized), NNPACK off";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            CpuBackendNote = $"libtorch's backend switches are not available ({e.GetType().Name}); libtorch defaults in use";
        }
        CpuBackendNote += $", {AllocatorNote}";
    }

    /// <summary>Environment variable that, set to 0, leaves glibc's allocator settings alone.</summary>
    public const string AllocatorVariable = "WIDEVALLEY_MALLOC_TUNING";

    /// <summary>What <see cref="EnsureInitialized"/> did to the C allocator, for logs and reports.</summary>
    public static string AllocatorNote { get; private set; } = "glibc defaults";

    /// <summary>
    /// libtorch allocates its CPU tensors with malloc. glibc serves blocks above its (adaptive) mmap threshold with fresh
    /// mmap calls and hands freed memory back to the kernel, so every training step and every Hessian-vector product
    /// pays page faults and zeroing for its large temporaries again. Measured here: a LeNet HVP over 1,000 samples took
    /// 635 ms with glibc's defaults and 297 ms with these settings. We keep blocks up to 32 MB (glibc's largest mmap
    /// threshold) on the heap and stop trimming, at the price of the process keeping its peak memory. Linux with glibc
    /// only; WIDEVALLEY_MALLOC_TUNING=0 turns it off.
    /// </summary>
    static void TuneAllocator()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(AllocatorVariable) == "0") return;
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

    /// <summary>Whether libtorch will use oneDNN for CPU operators (null if that cannot be asked).</summary>
    public static bool? OneDnnEnabled
    {
        get
        {
            try { return LibTorchContext.UserEnabledMkldnn(LibTorchContext.GlobalContext()); }
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
    }
}
