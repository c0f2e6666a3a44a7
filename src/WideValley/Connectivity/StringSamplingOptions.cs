namespace WideValley.Connectivity;

/// <summary>Where a new bead goes on a failing segment.</summary>
public enum InsertionRule
{
    /// <summary>t* = 0.5 (the paper's stable choice; the authors' polynomial and PTB scripts).</summary>
    Midpoint,
    /// <summary>
    /// t* = argmax_k / G over the segment's grid (the authors' MNIST and CIFAR-10 scripts). When the maximum is at
    /// k = 0 (the segment's first bead itself), t* = 0.5 instead (ours: a bead at t = 0 would duplicate its neighbour).
    /// </summary>
    Argmax,
}

/// <summary>A report from a running <see cref="DynamicStringSampling"/>.</summary>
/// <param name="Depth">The depth being worked on (0-based).</param>
/// <param name="Beads">Beads in the chain now, endpoints included.</param>
/// <param name="SegmentsFailing">Segments whose grid maximum failed the last check (0 before the first check).</param>
/// <param name="Message">What just happened, one line.</param>
public sealed record StringSamplingProgress(int Depth, int Beads, int SegmentsFailing, string Message);

/// <summary>
/// Settings of Dynamic String Sampling (breadth-first, as in Freeman &amp; Bruna's code). Defaults are the authors'
/// MNIST/CIFAR/PTB values where they agree (grid 20, α = 0.98, depth 10) and m = 1.1; the presets give each task's.
/// </summary>
public sealed record StringSamplingOptions
{
    /// <summary>The level L0: the path must stay below m·L0 on every segment's grid. Positive and finite.</summary>
    public double Level { get; init; }

    /// <summary>Which measured number defines the level set (default the loss).</summary>
    public LevelMetric Metric { get; init; } = LevelMetric.Loss;

    /// <summary>G: each segment is measured at t = k/G, k = 0..G−1 (the authors' grid; t = 1 is the next segment's t = 0). Default 20.</summary>
    public int GridPoints { get; init; } = 20;

    /// <summary>Where new beads go on a failing segment (default <see cref="InsertionRule.Midpoint"/>).</summary>
    public InsertionRule InsertAt { get; init; } = InsertionRule.Midpoint;

    /// <summary>α: each new bead is trained to α·L0 (default 0.98; the polynomial toys use 0.95). In (0, 1].</summary>
    public double BeadTargetFactor { get; init; } = 0.98;

    /// <summary>m: a segment passes when its grid maximum is below m·L0 (default 1.1; the authors' MNIST script 1.02). At least 1.</summary>
    public double AcceptFactor { get; init; } = 1.1;

    /// <summary>d_max: depths (rounds of training, checking and inserting) before giving up (default 10).</summary>
    public int MaxDepth { get; init; } = 10;

    /// <summary>Reports after every endpoint, bead, depth check and at the end (called synchronously).</summary>
    public IProgress<StringSamplingProgress>? Progress { get; init; }

    /// <summary>Stops the search: the state is saved (with a checkpoint path), then <see cref="OperationCanceledException"/> is thrown.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>
    /// When set, the complete state is saved here atomically after every trained bead and every depth's checks, and
    /// a run with the same path resumes from it (same options and endpoints required).
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>The polynomial toys' settings (authors' QUADRATICS/CUBICS.py): grid 100, t* = 0.5, α = 0.95, m = 1.1, loss (MAE).</summary>
    public static StringSamplingOptions ForPolynomialToys(double level) => new()
    {
        Level = level, Metric = LevelMetric.Loss, GridPoints = 100, InsertAt = InsertionRule.Midpoint, BeadTargetFactor = 0.95, AcceptFactor = 1.1,
    };

    /// <summary>The authors' MNIST.py settings: test error, grid 20, t* = argmax/20, α = 0.98, m = 1.02.</summary>
    public static StringSamplingOptions ForMnist(double errorPercent) => new()
    {
        Level = errorPercent, Metric = LevelMetric.ErrorPercent, GridPoints = 20, InsertAt = InsertionRule.Argmax, BeadTargetFactor = 0.98, AcceptFactor = 1.02,
    };

    /// <summary>The authors' CIFAR10.py settings: test error, grid 20, t* = argmax/20, α = 0.98, m = 1.1.</summary>
    public static StringSamplingOptions ForCifar10(double errorPercent) => new()
    {
        Level = errorPercent, Metric = LevelMetric.ErrorPercent, GridPoints = 20, InsertAt = InsertionRule.Argmax, BeadTargetFactor = 0.98, AcceptFactor = 1.1,
    };

    /// <summary>The authors' PTBRNN.py settings: test perplexity, grid 20, t* = 0.5, α = 0.98, m = 1.1.</summary>
    public static StringSamplingOptions ForLanguageModel(double perplexity) => new()
    {
        Level = perplexity, Metric = LevelMetric.Perplexity, GridPoints = 20, InsertAt = InsertionRule.Midpoint, BeadTargetFactor = 0.98, AcceptFactor = 1.1,
    };

    /// <summary>The bead target α·L0.</summary>
    public double BeadTarget => BeadTargetFactor * Level;

    /// <summary>The acceptance bound m·L0.</summary>
    public double AcceptBound => AcceptFactor * Level;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad option, with its value and what is allowed.</summary>
    public void Validate()
    {
        if (!double.IsFinite(Level) || !(Level > 0))
            throw new ArgumentException($"Level (L0) must be positive and finite, got {Level}", nameof(Level));
        if (!Enum.IsDefined(Metric)) throw new ArgumentException($"Metric: unknown level metric {Metric}", nameof(Metric));
        if (GridPoints <= 0) throw new ArgumentException($"GridPoints (G) must be positive, got {GridPoints}", nameof(GridPoints));
        if (!Enum.IsDefined(InsertAt)) throw new ArgumentException($"InsertAt: unknown insertion rule {InsertAt}", nameof(InsertAt));
        if (!(BeadTargetFactor > 0 && BeadTargetFactor <= 1))
            throw new ArgumentException($"BeadTargetFactor (α) must be in (0, 1], got {BeadTargetFactor}", nameof(BeadTargetFactor));
        if (!(AcceptFactor >= 1) || !double.IsFinite(AcceptFactor))
            throw new ArgumentException($"AcceptFactor (m) must be at least 1 and finite, got {AcceptFactor}", nameof(AcceptFactor));
        if (MaxDepth <= 0) throw new ArgumentException($"MaxDepth must be positive, got {MaxDepth}", nameof(MaxDepth));
        if (CheckpointPath is { } path && string.IsNullOrWhiteSpace(path))
            throw new ArgumentException("CheckpointPath must be a file path or null, got an empty string", nameof(CheckpointPath));
    }
}
