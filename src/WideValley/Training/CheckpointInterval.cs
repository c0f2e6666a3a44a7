using System.Globalization;

namespace WideValley.Training;

/// <summary>
/// How often a <see cref="Trainer"/> writes a checkpoint within an epoch, besides the one at each epoch's end: every
/// <see cref="Steps"/> optimizer steps (counted over the whole run, so the same steps are saved whether or not the run
/// was resumed), or once <see cref="Time"/> has passed since the last checkpoint. A crash then loses at most that much.
/// </summary>
public sealed record CheckpointInterval
{
    /// <summary>Save after every this many optimizer steps (null: by time).</summary>
    public long? Steps { get; }
    /// <summary>Save once this much training time has passed since the last save (null: by steps).</summary>
    public TimeSpan? Time { get; }

    CheckpointInterval(long? steps, TimeSpan? time) => (Steps, Time) = (steps, time);

    /// <summary>Every <paramref name="steps"/> optimizer steps (at least 1).</summary>
    public static CheckpointInterval EverySteps(long steps) => steps >= 1
        ? new CheckpointInterval(steps, null)
        : throw new ArgumentOutOfRangeException(nameof(steps), steps, "a checkpoint interval must be at least 1 step");

    /// <summary>Every <paramref name="time"/> of training (at least one second).</summary>
    public static CheckpointInterval Every(TimeSpan time) => time >= TimeSpan.FromSeconds(1)
        ? new CheckpointInterval(null, time)
        : throw new ArgumentOutOfRangeException(nameof(time), time, "a checkpoint interval must be at least 1 second");

    /// <summary>
    /// Parses "500" (steps) or a time: "90s", "10m", "2h" (the form of <c>--checkpoint-every</c>). Throws
    /// <see cref="FormatException"/> saying what was expected.
    /// </summary>
    public static CheckpointInterval Parse(string text)
    {
        var t = text.Trim();
        string Expected() => $"checkpoint interval '{text}': expected a number of steps (e.g. 500) or a time (e.g. 90s, 10m, 2h), at least 1 step or 1 second";
        if (t.Length == 0) throw new FormatException(Expected());
        var unit = t[^1];
        if (unit is 's' or 'm' or 'h')
        {
            if (!double.TryParse(t[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var amount) || !double.IsFinite(amount))
                throw new FormatException(Expected());
            var seconds = amount * (unit switch { 's' => 1, 'm' => 60, _ => 3600 });
            if (!(seconds >= 1) || seconds > TimeSpan.MaxValue.TotalSeconds / 2) throw new FormatException(Expected());
            return Every(TimeSpan.FromSeconds(seconds));
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var steps) || steps < 1)
            throw new FormatException(Expected());
        return EverySteps(steps);
    }

    /// <summary>The form <see cref="Parse"/> reads: "500" or "600s".</summary>
    public override string ToString() =>
        Steps is long n ? n.ToString(CultureInfo.InvariantCulture) : Time!.Value.TotalSeconds.ToString("R", CultureInfo.InvariantCulture) + "s";

    /// <summary>Whether a checkpoint is due after optimizer step <paramref name="outerSteps"/> (counted over the run).</summary>
    internal bool IsDue(long outerSteps, TimeSpan sinceLastSave) =>
        Steps is long n ? outerSteps % n == 0 : sinceLastSave >= Time!.Value;
}
