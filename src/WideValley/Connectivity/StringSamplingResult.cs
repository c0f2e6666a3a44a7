using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>One bead of a string.</summary>
/// <param name="Measure">What the problem measured at the bead (endpoints before the search, beads when trained).</param>
/// <param name="IsEndpoint">θ_A or θ_B (never trained).</param>
/// <param name="Trained">Training was run from the bead's interpolated start (zero steps when it started below target).</param>
/// <param name="ReachedTarget">The level metric is at or below α·L0 (for endpoints: their measured value is).</param>
/// <param name="TrainingSteps">Optimisation steps the bead's training took.</param>
public sealed record StringBead(PointMeasure Measure, bool IsEndpoint, bool Trained, bool ReachedTarget, long TrainingSteps);

/// <summary>A segment between neighbouring beads, measured on the grid t = k/G, k = 0..G−1.</summary>
/// <param name="Max">The largest level-metric value over the grid.</param>
/// <param name="ArgmaxT">The t of <see cref="Max"/> (the first, when tied).</param>
/// <param name="Grid">The measures at t = k/G; entry 0 is the segment's first bead.</param>
public sealed record StringSegment(double Max, double ArgmaxT, IReadOnlyList<PointMeasure> Grid);

/// <summary>What happened in a string search, in order.</summary>
public enum StringSamplingEventKind
{
    /// <summary>An endpoint was measured (Index 0 = A, 1 = B).</summary>
    EndpointMeasured,
    /// <summary>A bead was trained to its target (Index = its position in the chain then).</summary>
    BeadTrained,
    /// <summary>A bead's training ended above its target; the bead is kept.</summary>
    BeadTargetMissed,
    /// <summary>A segment's grid maximum is below m·L0 (Index = the segment).</summary>
    SegmentPassed,
    /// <summary>A segment's grid maximum is at or above m·L0.</summary>
    SegmentFailed,
    /// <summary>A bead was inserted (Index = its new position; Value = t*).</summary>
    BeadInserted,
    /// <summary>Every segment passed.</summary>
    Connected,
    /// <summary>The depth limit was reached with failing segments.</summary>
    NotConnected,
}

/// <summary>One entry of a string search's log.</summary>
/// <param name="Depth">The depth (0-based) it happened at.</param>
/// <param name="Kind">What happened.</param>
/// <param name="Index">The bead or segment it concerns (−1 for the whole chain).</param>
/// <param name="Value">The level-metric value (a bead's, a segment's maximum), t* for insertions, or the path maximum.</param>
/// <param name="Message">The same in words.</param>
public sealed record StringSamplingEvent(int Depth, StringSamplingEventKind Kind, int Index, double Value, string Message);

/// <summary>
/// The outcome of <see cref="DynamicStringSampling.Run"/>: whether the endpoints were connected within the depth
/// limit, the chain of beads (owned by this result: dispose it), the measures along it, and its normalised length.
/// </summary>
public sealed class StringSamplingResult : IDisposable
{
    internal StringSamplingResult(bool connected, IReadOnlyList<Tensor> chain, IReadOnlyList<StringBead> beads,
        IReadOnlyList<StringSegment> segments, NormalizedLengths lengths, int depth, IReadOnlyList<StringSamplingEvent> log,
        StringSamplingOptions options)
    {
        Connected = connected;
        Chain = chain;
        Beads = beads;
        Segments = segments;
        Lengths = lengths;
        Depth = depth;
        Log = log;
        Level = options.Level;
        Metric = options.Metric;
        GridPoints = options.GridPoints;
        MaxAlongPath = segments.Count == 0 ? double.NaN : segments.Max(s => s.Max);
    }

    /// <summary>Every segment's grid maximum is below m·L0: the endpoints are connected within the level set (up to the grid).</summary>
    public bool Connected { get; }

    /// <summary>The beads from θ_A to θ_B, endpoints included (copies; disposed with this result).</summary>
    public IReadOnlyList<Tensor> Chain { get; }

    /// <summary>Per bead, in chain order.</summary>
    public IReadOnlyList<StringBead> Beads { get; }

    /// <summary>Per segment (chain[i] to chain[i+1]), in chain order.</summary>
    public IReadOnlyList<StringSegment> Segments { get; }

    /// <summary>The chain's normalised length, weights-only (the authors') and all-parameters.</summary>
    public NormalizedLengths Lengths { get; }

    /// <summary>Beads in the chain, endpoints included, as the authors count (<c>len(AllBeads)</c>): at least 3.</summary>
    public int BeadCount => Chain.Count;

    /// <summary>The largest level-metric value over every segment's grid of the final chain.</summary>
    public double MaxAlongPath { get; }

    /// <summary>Depths run (rounds of training and checking): 1 when the first midpoint sufficed.</summary>
    public int Depth { get; }

    /// <summary>Everything that happened, in order.</summary>
    public IReadOnlyList<StringSamplingEvent> Log { get; }

    /// <summary>The level L0 searched.</summary>
    public double Level { get; }

    /// <summary>The level metric.</summary>
    public LevelMetric Metric { get; }

    /// <summary>G, the grid points per segment.</summary>
    public int GridPoints { get; }

    /// <summary>
    /// The measures along the whole chain: position s = i + t for grid point t = k/G of segment i, then θ_B at
    /// s = <see cref="BeadCount"/> − 1. For plots and CSV files of the loss along the path.
    /// </summary>
    public IReadOnlyList<(double Position, PointMeasure Measure)> Profile()
    {
        var profile = new List<(double, PointMeasure)>(Segments.Count * GridPoints + 1);
        for (var i = 0; i < Segments.Count; i++)
            for (var k = 0; k < Segments[i].Grid.Count; k++)
                profile.Add((i + (double)k / Segments[i].Grid.Count, Segments[i].Grid[k]));
        profile.Add((Chain.Count - 1, Beads[^1].Measure));
        return profile;
    }

    /// <summary>Frees the chain's tensors.</summary>
    public void Dispose()
    {
        foreach (var t in Chain) t.Dispose();
    }
}
