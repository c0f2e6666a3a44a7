namespace WideValley.Reports;

/// <summary>What every plot takes: an optional title and the image size in pixels.</summary>
public abstract record PlotOptions
{
    /// <summary>Figure title drawn above the panels; null or blank for none.</summary>
    public string? Title { get; init; }

    /// <summary>Image width in pixels (at least 50).</summary>
    public int Width { get; init; } = 900;

    /// <summary>Image height in pixels (at least 50).</summary>
    public int Height { get; init; } = 560;
}
