using System.Globalization;
using ScottPlot;

namespace WideValley.Reports;

/// <summary>Options of <see cref="HistogramPlot"/>.</summary>
public sealed record HistogramPlotOptions : PlotOptions
{
    /// <summary>Number of equal-width bins (equal in log10 with <see cref="LogX"/>).</summary>
    public int Bins { get; init; } = 60;

    /// <summary>
    /// Bin by log10 of the value, with the axis labelled in values. For quantities spread over many decades, such as
    /// the diagonal Fisher of seed 003 Fig. 3c. Values &lt;= 0 cannot be placed; they are left out and their number is
    /// printed on the plot (a diagonal Fisher has exact zeros for unused parameters).
    /// </summary>
    public bool LogX { get; init; }

    /// <summary>Counts on a log scale, so single-count bins in a long tail stay visible.</summary>
    public bool LogY { get; init; }

    /// <summary>Label of the x axis.</summary>
    public string XLabel { get; init; } = "value";

    /// <summary>Label of the y axis.</summary>
    public string YLabel { get; init; } = "count";
}

/// <summary>A plain histogram of one list of values.</summary>
public static class HistogramPlot
{
    private static readonly Color BarColor = Color.FromHex("#1f77b4");

    /// <summary>Bins <paramref name="values"/> and draws the counts.</summary>
    /// <exception cref="ArgumentException">No values, a NaN or infinite value, a bin count that is not positive, or
    /// <see cref="HistogramPlotOptions.LogX"/> with no positive value at all.</exception>
    public static Figure Create(IReadOnlyList<double> values, HistogramPlotOptions? options = null)
    {
        options ??= new HistogramPlotOptions();
        InputChecks.NotEmpty(values, nameof(values), "a histogram needs at least one value");
        InputChecks.AllFinite(values, nameof(values));
        InputChecks.Positive(options.Bins, nameof(options.Bins));

        var binned = options.LogX ? values.Where(v => v > 0).Select(Math.Log10).ToArray() : values.ToArray();
        var omitted = values.Count - binned.Length;
        if (binned.Length == 0)
            throw new ArgumentException(
                $"values has no positive entry (all {values.Count} are <= 0), so nothing can be placed on a log-scale x axis.",
                nameof(values));

        var histogram = SpectrumPlot.Histogram(binned, binned.Min(), binned.Max(), options.Bins);
        var yLabel = options.LogY ? $"{options.YLabel} (log scale)" : options.YLabel;
        var xLabel = options.LogX ? $"{options.XLabel} (log scale)" : options.XLabel;
        var plot = PlotStyle.NewPlot(null, xLabel, yLabel);
        SpectrumPlot.AddBars(plot, histogram, options.LogY, BarColor);
        if (!options.LogY) plot.Axes.Margins(bottom: 0);
        if (options.LogX)
        {
            var halfBin = histogram.BinWidth / 2;
            PlotStyle.UseLogTicks(plot.Axes.Bottom, histogram.Centers[0] - halfBin, histogram.Centers[^1] + halfBin);
        }

        var summary = $"n = {values.Count.ToString("N0", CultureInfo.InvariantCulture)}";
        if (omitted > 0) summary += $"\n{omitted.ToString("N0", CultureInfo.InvariantCulture)} values ≤ 0 not shown";
        PlotStyle.Annotate(plot, summary, Alignment.UpperRight);
        PlotStyle.ApplyFont(plot);
        return new Figure(options.Title, options.Width, options.Height, [FigurePanel.Full(plot)]);
    }
}
