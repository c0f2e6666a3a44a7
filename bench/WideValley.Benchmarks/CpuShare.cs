using System.Diagnostics;
using System.Globalization;

using WideValley.Experiments;

namespace WideValley.Benchmarks;

/// <summary>
/// How much of the machine's CPU other processes used while a benchmark ran: the machine's busy time (/proc/stat)
/// minus this process's own CPU time, as a share of all processors over the wall time. Unlike the load average, which
/// trails by minutes (work stopped just before a run still shows), this counts only what ran during the interval.
/// </summary>
public sealed class CpuShare
{
    readonly (long Busy, long Total)? _machineStart;
    readonly TimeSpan _ownStart;

    CpuShare((long Busy, long Total)? machine, TimeSpan own)
    {
        _machineStart = machine;
        _ownStart = own;
    }

    /// <summary>Starts measuring now.</summary>
    public static CpuShare Start() => new(MachineTicks(MachineDescription.ReadOrNull("/proc/stat")), OwnCpuTime());

    /// <summary>
    /// The share (0 to 1) of the machine's CPU that other processes used since <see cref="Start"/>; null where
    /// /proc/stat does not exist or no time has passed.
    /// </summary>
    public double? OtherProcessesShare()
    {
        var end = MachineTicks(MachineDescription.ReadOrNull("/proc/stat"));
        if (_machineStart is not { } start || end is not { } stop) return null;
        return OtherShare(start, stop, (OwnCpuTime() - _ownStart).TotalSeconds, ticksPerSecond: 100);
    }

    /// <summary>
    /// The share of the machine used by others, from two /proc/stat readings and this process's CPU seconds in
    /// between. /proc/stat counts in USER_HZ, which Linux fixes at 100 per second on every architecture.
    /// </summary>
    internal static double? OtherShare((long Busy, long Total) start, (long Busy, long Total) end, double ownCpuSeconds, double ticksPerSecond)
    {
        var total = end.Total - start.Total;
        if (total <= 0) return null;
        var busy = end.Busy - start.Busy;
        var others = busy - ownCpuSeconds * ticksPerSecond;
        // The two clocks are read at slightly different instants; a small negative difference means "none".
        return Math.Clamp(others / total, 0, 1);
    }

    /// <summary>
    /// The busy and total ticks of the first line of /proc/stat ("cpu user nice system idle iowait irq softirq steal
    /// ..."); idle and iowait are not busy. Guest time is already inside user and nice, so it is not added again.
    /// </summary>
    internal static (long Busy, long Total)? MachineTicks(string? procStat)
    {
        var line = procStat?.Split('\n').FirstOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal));
        if (line is null) return null;
        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).ToArray();
        var values = new long[fields.Length];
        for (var i = 0; i < fields.Length; i++)
            if (!long.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out values[i])) return null;
        if (values.Length < 5) return null;
        var total = values.Sum();
        var idle = values[3] + values[4];
        return (total - idle, total);
    }

    static TimeSpan OwnCpuTime()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }
}
