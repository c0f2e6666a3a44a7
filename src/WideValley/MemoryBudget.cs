using System.Globalization;

namespace WideValley;

/// <summary>How much memory this process may still use, and where that number comes from.</summary>
/// <param name="Bytes">The smaller of the system's available memory and the headroom under the process's cgroup limit.</param>
/// <param name="Source">Where <paramref name="Bytes"/> was read, for messages ("MemAvailable in /proc/meminfo", ...).</param>
public sealed record AvailableMemory(long Bytes, string Source);

/// <summary>
/// A memory estimate above what is available: the run or measurement was refused before allocating. It is an
/// <see cref="ArgumentException"/> because what it refuses is a setting (a size, a batch) that asks for too much, and
/// its message says which setting to lower; callers that report bad settings report it the same way.
/// </summary>
public sealed class MemoryBudgetException : ArgumentException
{
    /// <summary>A refusal: <paramref name="what"/> needs about <paramref name="requiredBytes"/>, <paramref name="available"/> is what there is.</summary>
    public MemoryBudgetException(string message, string what, long requiredBytes, AvailableMemory available)
        : base(message)
    {
        What = what;
        RequiredBytes = requiredBytes;
        Available = available;
    }

    /// <summary>What needed the memory (e.g. "training ptb-lstm with entropy-sgd").</summary>
    public string What { get; }
    /// <summary>The estimate, in bytes.</summary>
    public long RequiredBytes { get; }
    /// <summary>The memory there was.</summary>
    public AvailableMemory Available { get; }
}

/// <summary>
/// Memory checks made before huge allocations, so that a setting that cannot fit is refused with a message instead of
/// sending the machine into swap or the OOM killer. The available memory is the system's (MemAvailable of
/// /proc/meminfo; elsewhere what the .NET runtime reports) lowered to the headroom under the process's cgroup memory
/// limit when one is set (cgroup v2 <c>memory.max</c> less <c>memory.current</c>, or cgroup v1
/// <c>memory.limit_in_bytes</c> less <c>memory.usage_in_bytes</c>), as in a container or a systemd slice.
/// </summary>
public static class MemoryBudget
{
    const string MemInfo = "/proc/meminfo";
    const string CgroupRoot = "/sys/fs/cgroup";

    /// <summary>The memory this process may still use (see the type's remarks for where it is read).</summary>
    public static AvailableMemory Available()
    {
        var cgroups = CgroupLimitFiles().Select(files => (ReadOrNull(files.Limit), ReadOrNull(files.Usage), files.Limit));
        return Available(ReadOrNull(MemInfo), cgroups, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
    }

    /// <summary><see cref="Available()"/>'s byte count.</summary>
    public static long AvailableBytes() => Available().Bytes;

    /// <summary>
    /// The available memory from the text of /proc/meminfo (null: not readable) and of cgroup limit and usage files
    /// (each limit with its usage and the limit file's path, for the message); <paramref name="fallback"/> when
    /// meminfo has no MemAvailable line.
    /// </summary>
    internal static AvailableMemory Available(string? meminfo, IEnumerable<(string? Limit, string? Usage, string Where)> cgroups, long fallback)
    {
        var best = ParseMemAvailable(meminfo) is long fromMeminfo
            ? new AvailableMemory(fromMeminfo, $"MemAvailable in {MemInfo}")
            : new AvailableMemory(fallback, "the .NET runtime's available memory");
        foreach (var (limit, usage, where) in cgroups)
        {
            if (CgroupHeadroom(limit, usage) is long headroom && headroom < best.Bytes)
                best = new AvailableMemory(headroom, $"the cgroup limit {where} less its usage");
        }
        return best;
    }

    /// <summary>MemAvailable of /proc/meminfo's text, in bytes; null when there is no such line or it does not parse.</summary>
    internal static long? ParseMemAvailable(string? meminfo)
    {
        if (meminfo is null) return null;
        foreach (var line in meminfo.Split('\n'))
        {
            if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2 || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kib)) return null;
            var unit = parts.Length > 2 ? parts[2] : "kB";
            return unit == "kB" && kib <= long.MaxValue / 1024 ? kib * 1024 : null;
        }
        return null;
    }

    /// <summary>
    /// Bytes left under a cgroup limit: the limit file's number less the usage file's (0 when over). Null when there is
    /// no limit: the file is missing, says "max" (cgroup v2), or holds cgroup v1's "unlimited" (a number near 2^63).
    /// </summary>
    internal static long? CgroupHeadroom(string? limitText, string? usageText)
    {
        if (limitText is null) return null;
        var trimmed = limitText.Trim();
        if (trimmed == "max" || !long.TryParse(trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out var limit)) return null;
        if (limit >= 1L << 60) return null;
        var usage = usageText is not null && long.TryParse(usageText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var used) ? used : 0;
        return Math.Max(0, limit - usage);
    }

    /// <summary>
    /// The cgroup path of this process for the v2 hierarchy ("0::/a/b") and for v1's memory controller
    /// ("4:memory:/a/b") from the text of /proc/self/cgroup.
    /// </summary>
    internal static (string? V2, string? V1Memory) ParseProcCgroup(string? text)
    {
        string? v2 = null, v1 = null;
        foreach (var line in (text ?? "").Split('\n'))
        {
            var parts = line.Trim().Split(':', 3);
            if (parts.Length != 3) continue;
            if (parts[0] == "0" && parts[1].Length == 0) v2 = parts[2];
            else if (parts[1].Split(',').Contains("memory")) v1 = parts[2];
        }
        return (v2, v1);
    }

    /// <summary>The limit and usage files of the process's cgroup and its ancestors (a parent's limit binds too).</summary>
    static IEnumerable<(string Limit, string Usage)> CgroupLimitFiles()
    {
        var (v2, v1) = ParseProcCgroup(ReadOrNull("/proc/self/cgroup"));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (root, path, limit, usage) in new[]
                 {
                     (CgroupRoot, v2, "memory.max", "memory.current"),
                     (CgroupRoot + "/unified", v2, "memory.max", "memory.current"),
                     (CgroupRoot + "/memory", v1, "memory.limit_in_bytes", "memory.usage_in_bytes"),
                 })
        {
            // Inside a cgroup namespace the process's own group is the root of the mount, whatever /proc says.
            foreach (var folder in Ancestors(root, path).Append(root))
            {
                if (!seen.Add(folder + "/" + limit)) continue;
                yield return (Path.Combine(folder, limit), Path.Combine(folder, usage));
            }
        }
    }

    static IEnumerable<string> Ancestors(string root, string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "/") yield break;
        var segments = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var n = segments.Length; n > 0; n--)
            yield return root + "/" + string.Join('/', segments.Take(n));
    }

    static string? ReadOrNull(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Throws <see cref="MemoryBudgetException"/> when <paramref name="bytes"/> is more than is available
    /// (<paramref name="available"/>, default <see cref="Available()"/>). The message: "<paramref name="what"/> needs
    /// about X GiB; this machine has Y GiB available (source); <paramref name="advice"/>".
    /// </summary>
    /// <param name="bytes">The estimate.</param>
    /// <param name="what">What needs the memory, with the settings that make it large ("the model ptb-lstm with --hidden-size 1000000 has 4.0e12 parameters; training it with entropy-sgd").</param>
    /// <param name="advice">What to lower ("lower --hidden-size").</param>
    /// <param name="available">The memory to compare with (tests, or a caller with its own limit).</param>
    public static void EnsureFits(long bytes, string what, string advice, AvailableMemory? available = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(what);
        var there = available ?? Available();
        if (bytes <= there.Bytes) return;
        throw new MemoryBudgetException(
            $"{what} needs about {Format(bytes)}; this machine has {Format(there.Bytes)} available ({there.Source}); {advice}",
            what, bytes, there);
    }

    /// <summary>A byte count for people: "80,000 GiB", "21.3 GiB", "512.0 MiB", "4.0 KiB".</summary>
    public static string Format(long bytes)
    {
        var c = CultureInfo.InvariantCulture;
        const double KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
        return bytes switch
        {
            >= 1000L * (1L << 30) => string.Format(c, "{0:N0} GiB", Math.Round(bytes / GiB)),
            >= 1L << 30 => string.Format(c, "{0:0.0} GiB", bytes / GiB),
            >= 1L << 20 => string.Format(c, "{0:0.0} MiB", bytes / MiB),
            >= 1L << 10 => string.Format(c, "{0:0.0} KiB", bytes / KiB),
            _ => string.Format(c, "{0} bytes", bytes),
        };
    }

    /// <summary>
    /// Saturating arithmetic for estimates: sizes that overflow 64 bits are reported as <see cref="long.MaxValue"/>
    /// (still far above any machine) rather than wrapping around to small or negative numbers.
    /// </summary>
    public static long Saturate(Int128 value) => value > long.MaxValue ? long.MaxValue : value < 0 ? 0 : (long)value;
}
