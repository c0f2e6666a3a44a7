using ScottPlot;

namespace WideValley.Reports;

/// <summary>One named curve: y against x, drawn in the order given.</summary>
/// <param name="Name">Legend text (e.g. "Entropy-SGD", "Adam"); blank leaves the series out of the legend.</param>
/// <param name="X">Abscissae, e.g. effective epochs or the interpolation coefficient t.</param>
/// <param name="Y">Ordinates, one per abscissa.</param>
public sealed record LineSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y)
{
    /// <summary>Draw a dashed line (e.g. for a baseline or the training curve beside the validation one).</summary>
    public bool Dashed { get; init; }

    /// <summary>Mark every data point (useful for few points, e.g. one per epoch).</summary>
    public bool ShowMarkers { get; init; }

    /// <summary>Draw the points as markers without a connecting line (estimates overlaid on an exact curve, scatter data).</summary>
    public bool MarkersOnly { get; init; }

    /// <summary>
    /// Palette index of the colour, instead of the series' position in its panel: lets markers take the colour of the
    /// curve they estimate.
    /// </summary>
    public int? ColorIndex { get; init; }
}

/// <summary>One panel of a stacked line plot: its own y axis and series, sharing the x axis with the others.</summary>
/// <param name="YLabel">Label of the y axis, e.g. "validation error (%)".</param>
/// <param name="Series">The curves of this panel.</param>
public sealed record LinePanel(string YLabel, IReadOnlyList<LineSeries> Series)
{
    /// <summary>Plot log10(y) with ticks labelled by y; every y must be positive.</summary>
    public bool LogY { get; init; }

    /// <summary>Optional title of this panel.</summary>
    public string? Title { get; init; }

    /// <summary>Where this panel's legend goes, when its data leave a different corner free than the figure's default.</summary>
    public LegendCorner? Legend { get; init; }
}

/// <summary>A labelled vertical line, e.g. the two end points t = 0 and t = 1 of an interpolation.</summary>
/// <param name="X">Where the line stands.</param>
/// <param name="Label">Text drawn at the top of the line.</param>
public sealed record VerticalMarker(double X, string Label);

/// <summary>Options of <see cref="LinePlot"/>.</summary>
public sealed record LinePlotOptions : PlotOptions
{
    /// <summary>Vertical reference lines drawn in every panel.</summary>
    public IReadOnlyList<VerticalMarker> Markers { get; init; } = [];

    /// <summary>Where the legend goes in each panel.</summary>
    public LegendCorner Legend { get; init; } = LegendCorner.UpperRight;
}

/// <summary>Corner of the data area that holds the legend.</summary>
public enum LegendCorner
{
    /// <summary>Top right.</summary>
    UpperRight,
    /// <summary>Top left.</summary>
    UpperLeft,
    /// <summary>Bottom right.</summary>
    LowerRight,
    /// <summary>Bottom left.</summary>
    LowerLeft,
    /// <summary>
    /// Outside the data area, right of it: for many series over data that leave no corner free (eleven optimizers'
    /// curves, or a scatter of thirty runs). The data area narrows to make room.
    /// </summary>
    OutsideRight,
}

/// <summary>
/// Line plots: training curves (validation error against effective epochs for several optimizers, seed 003 Figs. 4-6),
/// loss and error along the line between two weight vectors, and 1-D slices of the loss.
/// </summary>
public static class LinePlot
{
    /// <summary>All series in one panel.</summary>
    /// <exception cref="ArgumentException">No series, an empty series, X and Y of different lengths, or NaN/infinite values.</exception>
    public static Figure Create(IReadOnlyList<LineSeries> series, string xLabel, string yLabel, LinePlotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(series);
        return Stacked([new LinePanel(yLabel, series)], xLabel, options);
    }

    /// <summary>Panels stacked top to bottom with one common x range, e.g. loss above error.</summary>
    /// <exception cref="ArgumentException">No panels, a panel without series, or any invalid series.</exception>
    public static Figure Stacked(IReadOnlyList<LinePanel> panels, string xLabel, LinePlotOptions? options = null)
    {
        options ??= new LinePlotOptions();
        InputChecks.NotEmpty(panels, nameof(panels), "a line plot needs at least one panel");
        for (var p = 0; p < panels.Count; p++) CheckPanel(panels[p], p);
        ArgumentNullException.ThrowIfNull(options.Markers);

        double xMin = double.PositiveInfinity, xMax = double.NegativeInfinity;
        foreach (var series in panels.SelectMany(p => p.Series))
        {
            xMin = Math.Min(xMin, series.X.Min());
            xMax = Math.Max(xMax, series.X.Max());
        }
        foreach (var marker in options.Markers)
        {
            xMin = Math.Min(xMin, marker.X);
            xMax = Math.Max(xMax, marker.X);
        }
        var pad = xMax > xMin ? 0.02 * (xMax - xMin) : 0.5;

        var figurePanels = new List<FigurePanel>();
        var share = 1f / panels.Count;
        for (var p = 0; p < panels.Count; p++)
        {
            var panel = panels[p];
            // Only the bottom panel carries the x label; the stack reads as one figure with one x axis.
            var plot = PlotStyle.NewPlot(panel.Title, p == panels.Count - 1 ? xLabel : null, panel.YLabel);
            var colorIndex = 0;
            foreach (var series in panel.Series) AddSeries(plot, series, panel.LogY, series.ColorIndex ?? colorIndex++);
            foreach (var marker in options.Markers)
            {
                var line = plot.Add.VerticalLine(marker.X, 1.5f, Colors.Gray, LinePattern.Dotted);
                line.ExcludeFromLegend = true;
            }
            if (panel.LogY)
            {
                var logs = panel.Series.SelectMany(s => s.Y).Select(Math.Log10).ToArray();
                PlotStyle.UseLogTicks(plot.Axes.Left, logs.Min(), logs.Max());
            }
            if (panel.Series.Any(s => !string.IsNullOrWhiteSpace(s.Name)))
            {
                if ((panel.Legend ?? options.Legend) == LegendCorner.OutsideRight) plot.ShowLegend(Edge.Right);
                else plot.ShowLegend(ToAlignment(panel.Legend ?? options.Legend));
            }
            plot.Axes.AutoScale();
            plot.Axes.SetLimitsX(xMin - pad, xMax + pad);
            // Marker labels go inside the data area, just below its top edge: ScottPlot's own line labels sit outside
            // it, where the layout reserves no room and the panel above (or the figure title) would cut them off.
            var top = plot.Axes.GetLimits().Top;
            foreach (var marker in options.Markers)
            {
                var text = plot.Add.Text(marker.Label, marker.X, top);
                text.LabelStyle.Alignment = Alignment.UpperLeft;
                text.LabelStyle.OffsetX = 4;
                text.LabelStyle.OffsetY = 4;
                text.LabelStyle.FontSize = PlotStyle.AnnotationSize;
                text.LabelStyle.ForeColor = Colors.DimGray;
            }
            PlotStyle.ApplyFont(plot);
            figurePanels.Add(new FigurePanel(plot, 0, p * share, 1, share));
        }
        return new Figure(options.Title, options.Width, options.Height, figurePanels);
    }

    /// <summary>
    /// Loss (top) and, if given, error (bottom) along the line w(t) = (1 - t) w_A + t w_B, with the two end points
    /// marked. Several series per panel are allowed (train and test, say); every series' X holds the values of t.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="Stacked"/>.</exception>
    public static Figure Interpolation(IReadOnlyList<LineSeries> loss, IReadOnlyList<LineSeries>? error = null,
        LinePlotOptions? options = null, string startName = "A", string endName = "B")
    {
        options ??= new LinePlotOptions();
        if (options.Markers.Count == 0)
            options = options with { Markers = [new VerticalMarker(0, $"t = 0 ({startName})"), new VerticalMarker(1, $"t = 1 ({endName})")] };
        var panels = new List<LinePanel> { new("loss", loss) };
        if (error is not null) panels.Add(new LinePanel("error (%)", error));
        return Stacked(panels, "t", options);
    }

    private static void CheckPanel(LinePanel panel, int index)
    {
        ArgumentNullException.ThrowIfNull(panel, $"panels[{index}]");
        InputChecks.NotEmpty(panel.Series, $"panels[{index}].Series", "every panel needs at least one series");
        for (var s = 0; s < panel.Series.Count; s++)
        {
            var series = panel.Series[s];
            var name = $"series \"{series.Name}\" (panels[{index}].Series[{s}])";
            InputChecks.NotEmpty(series.X, $"{name}.X", "a series needs at least one point");
            InputChecks.SameLength(series.X, $"{name}.X", series.Y, $"{name}.Y");
            InputChecks.AllFinite(series.X, $"{name}.X");
            InputChecks.AllFinite(series.Y, $"{name}.Y");
            if (panel.LogY) InputChecks.AllPositive(series.Y, $"{name}.Y", "a log-scale y axis");
            if (series.ColorIndex is < 0)
                throw new ArgumentOutOfRangeException($"{name}.ColorIndex", series.ColorIndex, "a palette index must not be negative.");
        }
    }

    private static void AddSeries(Plot plot, LineSeries series, bool logY, int colorIndex)
    {
        var ys = logY ? series.Y.Select(Math.Log10).ToArray() : series.Y.ToArray();
        var line = plot.Add.Scatter(series.X.ToArray(), ys, PlotStyle.SeriesColor(colorIndex));
        line.LineWidth = series.MarkersOnly ? 0 : 2;
        line.MarkerSize = series.ShowMarkers || series.MarkersOnly || series.X.Count == 1 ? 6 : 0;
        // Past the palette's ten colours a colour comes round again: the marker shape, and a dotted line where the
        // series has no pattern of its own, keep the eleventh series apart from the first.
        line.MarkerShape = PlotStyle.SeriesMarker(colorIndex);
        if (series.Dashed) line.LinePattern = LinePattern.Dashed;
        else if (PlotStyle.ColorRound(colorIndex) > 0) line.LinePattern = LinePattern.Dotted;
        if (!string.IsNullOrWhiteSpace(series.Name)) line.LegendText = series.Name;
    }

    private static Alignment ToAlignment(LegendCorner corner) => corner switch
    {
        LegendCorner.UpperLeft => Alignment.UpperLeft,
        LegendCorner.LowerRight => Alignment.LowerRight,
        LegendCorner.LowerLeft => Alignment.LowerLeft,
        _ => Alignment.UpperRight,
    };
}
