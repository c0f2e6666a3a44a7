using System.Globalization;
using System.Runtime.InteropServices;

namespace WideValley.Cli;

/// <summary>One line describing the machine a result was measured on, for reports.</summary>
public static class MachineDescription
{
    public static string Describe(int threads)
    {
        var parts = new List<string> { $"{Environment.ProcessorCount} logical processors" };
        if (CpuModel() is string cpu) parts.Add(cpu);
        if (MemoryGiB() is double gib) parts.Add(string.Format(CultureInfo.InvariantCulture, "{0:0.#} GiB memory", gib));
        parts.Add(RuntimeInformation.OSDescription.Trim());
        parts.Add($".NET {Environment.Version}");
        parts.Add(threads > 0 ? $"{threads} libtorch threads" : "libtorch's default thread count");
        return string.Join(", ", parts);
    }

    static string? CpuModel()
    {
        try
        {
            return File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                : null;
        }
        catch (IOException) { return null; }
    }

    static double? MemoryGiB()
    {
        try
        {
            var line = File.Exists("/proc/meminfo") ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal)) : null;
            var kib = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            return kib is null ? null : double.Parse(kib, CultureInfo.InvariantCulture) / (1024 * 1024);
        }
        catch (IOException) { return null; }
    }
}
