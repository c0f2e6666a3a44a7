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
}
