using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// The machine a benchmark ran on, as far as the process can tell: timings mean little without the processor, the
/// memory, the runtime and libtorch versions, the thread count and how busy the machine was.
/// </summary>
public sealed record MachineDescription
{
    /// <summary>Logical processors the runtime sees (<see cref="Environment.ProcessorCount"/>).</summary>
    public required int Processors { get; init; }
    /// <summary>The distribution's name (/etc/os-release) when there is one, else the runtime's OS description; and the Linux kernel.</summary>
    public required string Os { get; init; }
    /// <summary>/proc/cpuinfo's "model name", or the processor architecture where that file does not exist.</summary>
    public required string CpuModel { get; init; }
    /// <summary>The vector extensions libtorch and our Langevin kernel can use (from /proc/cpuinfo's flags).</summary>
    public required string VectorExtensions { get; init; }
    /// <summary>Physical memory in bytes (/proc/meminfo's MemTotal, else what the GC reports as available).</summary>
    public required long MemoryTotalBytes { get; init; }
    /// <summary>The .NET runtime, e.g. ".NET 10.0.0".</summary>
    public required string DotNet { get; init; }
    /// <summary>The TorchSharp package version (without the commit hash), or "unknown".</summary>
    public required string TorchSharp { get; init; }
    /// <summary>libtorch's own version string (torch.__version__).</summary>
    public required string LibTorch { get; init; }
    /// <summary>libtorch's intra-op threads at the time of the description.</summary>
    public required int Threads { get; init; }
    /// <summary>What is in force for oneDNN, NNPACK and the allocator (<see cref="TorchRuntime.CpuBackendNote"/>).</summary>
    public required string CpuBackend { get; init; }
    /// <summary>OMP_WAIT_POLICY as the process sees it (null: unset).</summary>
    public string? OmpWaitPolicy { get; init; }
    /// <summary>The 1-minute load average (/proc/loadavg) when described: other work on a shared machine shows here.</summary>
    public double? LoadAverage { get; init; }

    /// <summary>Describes this machine and process. Loads libtorch (the thread count and backend are libtorch's) but configures nothing.</summary>
    public static MachineDescription Current()
    {
        TorchRuntime.EnsureLoadable();
        var cpuinfo = ReadOrNull("/proc/cpuinfo");
        return new MachineDescription
        {
            Processors = Environment.ProcessorCount,
            Os = (PrettyOsName(ReadOrNull("/etc/os-release")) ?? RuntimeInformation.OSDescription.Trim()) +
                 (ReadOrNull("/proc/sys/kernel/osrelease")?.Trim() is { Length: > 0 } kernel ? $", Linux {kernel}" : ""),
            CpuModel = CpuInfoField(cpuinfo, "model name") ?? RuntimeInformation.ProcessArchitecture.ToString(),
            VectorExtensions = VectorFlags(CpuInfoField(cpuinfo, "flags")),
            MemoryTotalBytes = MemTotalBytes(ReadOrNull("/proc/meminfo")) ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
            DotNet = RuntimeInformation.FrameworkDescription,
            TorchSharp = typeof(Tensor).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
                         ?? typeof(Tensor).Assembly.GetName().Version?.ToString() ?? "unknown",
            LibTorch = __version__,
            Threads = get_num_threads(),
            CpuBackend = TorchRuntime.CpuBackendNote,
            OmpWaitPolicy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY"),
            LoadAverage = CurrentLoadAverage(),
        };
    }

    /// <summary>One line for reports: processors, CPU, memory, OS, .NET, TorchSharp/libtorch and threads.</summary>
    public string OneLine() => string.Format(CultureInfo.InvariantCulture,
        "{0} logical processors, {1} ({2}), {3:0.#} GiB memory, {4}, {5}, TorchSharp {6} / libtorch {7}, {8} libtorch thread{9}",
        Processors, CpuModel, VectorExtensions, MemoryTotalBytes / (1024.0 * 1024 * 1024), Os, DotNet, TorchSharp, LibTorch, Threads, Threads == 1 ? "" : "s");

    /// <summary>The 1-minute load average, or null where /proc/loadavg does not exist.</summary>
    public static double? CurrentLoadAverage() => FirstLoadAverage(ReadOrNull("/proc/loadavg"));

    internal static string? CpuInfoField(string? cpuinfo, string field)
    {
        if (cpuinfo is null) return null;
        foreach (var line in cpuinfo.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == field) return line[(colon + 1)..].Trim();
        }
        return null;
    }

    /// <summary>The SIMD flags that matter for float32 kernels, in a fixed order; "none found" when the list has none.</summary>
    internal static string VectorFlags(string? flags)
    {
        if (flags is null) return "unknown";
        var present = flags.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        string[] interesting = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve"];
        var found = interesting.Where(present.Contains).ToArray();
        return found.Length == 0 ? "none found" : string.Join(" ", found);
    }

    internal static long? MemTotalBytes(string? meminfo)
    {
        // "MemTotal:       24683620 kB"
        var value = CpuInfoField(meminfo, "MemTotal");
        if (value is null) return null;
        var parts = value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (!long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var amount)) return null;
        return parts.Length > 1 && parts[1].Equals("kB", StringComparison.OrdinalIgnoreCase) ? amount * 1024 : amount;
    }

    internal static string? PrettyOsName(string? osRelease)
    {
        if (osRelease is null) return null;
        foreach (var line in osRelease.Split('\n'))
            if (line.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))
                return line["PRETTY_NAME=".Length..].Trim().Trim('"');
        return null;
    }

    internal static double? FirstLoadAverage(string? loadavg)
    {
        var first = loadavg?.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : null;
    }

    /// <summary>A system file's text, or null where it does not exist or cannot be read.</summary>
    internal static string? ReadOrNull(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path) : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}
