using ScottPlot;

namespace WideValley.Reports;

/// <summary>
/// Loss on a regular 2-D grid, e.g. a filter-normalised random-direction slice (Li et al. 2018):
/// <c>Values[i, j]</c> is the loss at (<c>Alphas[i]</c>, <c>Betas[j]</c>).
/// </summary>
/// <param name="Alphas">Coordinates along the first direction (x axis), strictly increasing and evenly spaced.</param>
/// <param name="Betas">Coordinates along the second direction (y axis), strictly increasing and evenly spaced.</param>
/// <param name="Values">Loss values, <c>Alphas.Count</c> x <c>Betas.Count</c>.</param>
public sealed record LossSurface(IReadOnlyList<double> Alphas, IReadOnlyList<double> Betas, double[,] Values)
{
    /// <summary>Checks that the grid and the values fit together; <see cref="SurfacePlot.Create"/> and
    /// <see cref="SeriesCsv.WriteSurface"/> call it.</summary>
    /// <exception cref="ArgumentException">Sizes that do not match, grids that are not strictly increasing and evenly
    /// spaced, fewer than two points along an axis, or a non-finite value.</exception>
    public void Validate()
    {
        InputChecks.NotEmpty(Alphas, nameof(Alphas), "the grid needs at least two points along alpha");
        InputChecks.NotEmpty(Betas, nameof(Betas), "the grid needs at least two points along beta");
        ArgumentNullException.ThrowIfNull(Values, nameof(Values));
        if (Values.GetLength(0) != Alphas.Count || Values.GetLength(1) != Betas.Count)
            throw new ArgumentException(
                $"Values is {Values.GetLength(0)} x {Values.GetLength(1)} but the grid is {Alphas.Count} alphas x " +
                $"{Betas.Count} betas; Values[i, j] must be the loss at (Alphas[i], Betas[j]).", nameof(Values));
        CheckAxis(Alphas, nameof(Alphas));
        CheckAxis(Betas, nameof(Betas));
        for (var i = 0; i < Alphas.Count; i++)
            for (var j = 0; j < Betas.Count; j++)
                if (!double.IsFinite(Values[i, j]))
                    throw new ArgumentException(
                        $"Values[{i}, {j}] (alpha = {InputChecks.Format(Alphas[i])}, beta = {InputChecks.Format(Betas[j])}) " +
                        $"is {Values[i, j]}; every loss value must be finite.", nameof(Values));
    }

    private static void CheckAxis(IReadOnlyList<double> axis, string name)
    {
        if (axis.Count < 2) throw new ArgumentException($"{name} has {axis.Count} point; a surface needs at least two.", name);
        InputChecks.AllFinite(axis, name);
        InputChecks.StrictlyIncreasing(axis, name);
        // The heatmap draws equal cells; an uneven grid would put colours at the wrong coordinates.
        var step = (axis[^1] - axis[0]) / (axis.Count - 1);
        for (var i = 1; i < axis.Count; i++)
            if (Math.Abs(axis[i] - axis[i - 1] - step) > 1e-6 * step)
                throw new ArgumentException(
                    $"{name} must be evenly spaced (step {InputChecks.Format(step)}), but {name}[{i}] - {name}[{i - 1}] = " +
                    $"{InputChecks.Format(axis[i] - axis[i - 1])}.", name);
    }
}

/// <summary>A labelled point on a surface plot, e.g. the trained weights at (0, 0).</summary>
/// <param name="X">Alpha coordinate.</param>
/// <param name="Y">Beta coordinate.</param>
/// <param name="Label">Text drawn beside the point.</param>
public sealed record SurfaceMarker(double X, double Y, string Label);

/// <summary>Options of <see cref="SurfacePlot"/>.</summary>
public sealed record SurfacePlotOptions : PlotOptions
{
    /// <summary>A square-ish default with room for the colour bar.</summary>
    public SurfacePlotOptions()
    {
        Width = 760;
        Height = 640;
    }

    /// <summary>Label of the x axis (first direction).</summary>
    public string XLabel { get; init; } = "α";

    /// <summary>Label of the y axis (second direction).</summary>
    public string YLabel { get; init; } = "β";

    /// <summary>Label of the colour bar.</summary>
    public string ValueLabel { get; init; } = "loss";

    /// <summary>
    /// Colour and contours by log10 of the value (the colour bar still shows values). Loss surfaces span orders of
    /// magnitude between the minimum and the rim, which a linear scale flattens into one colour; needs values > 0.
    /// </summary>
    public bool LogScale { get; init; }

    /// <summary>Number of contour levels, evenly spaced (in colour scale) strictly between the smallest and largest
    /// value; 0 for none.</summary>
    public int ContourCount { get; init; } = 10;

    /// <summary>Points to mark and label.</summary>
    public IReadOnlyList<SurfaceMarker> Markers { get; init; } = [];
}

/// <summary>2-D loss slices: a heatmap with contour lines, a colour bar and labelled axes.</summary>
public static class SurfacePlot
{
    /// <summary>Draws <paramref name="surface"/>.</summary>
    /// <exception cref="ArgumentException">An invalid surface (see <see cref="LossSurface.Validate"/>), a value &lt;= 0
    /// with <see cref="SurfacePlotOptions.LogScale"/>, or a negative contour count.</exception>
    public static Figure Create(LossSurface surface, SurfacePlotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(surface);
        options ??= new SurfacePlotOptions();
        surface.Validate();
        if (options.ContourCount < 0)
            throw new ArgumentOutOfRangeException(nameof(options.ContourCount), options.ContourCount, "ContourCount cannot be negative.");
        ArgumentNullException.ThrowIfNull(options.Markers);

        int nAlpha = surface.Alphas.Count, nBeta = surface.Betas.Count;
        var scaled = new double[nAlpha, nBeta];
        for (var i = 0; i < nAlpha; i++)
            for (var j = 0; j < nBeta; j++)
            {
                var value = surface.Values[i, j];
                if (options.LogScale && !(value > 0))
                    throw new ArgumentException(
                        $"Values[{i}, {j}] = {InputChecks.Format(value)}, but LogScale needs every value > 0.", nameof(surface));
                scaled[i, j] = options.LogScale ? Math.Log10(value) : value;
            }

        var plot = PlotStyle.NewPlot(null, options.XLabel, options.YLabel);

        // ScottPlot draws intensity row 0 at the top: rows run over beta from the largest down, columns over alpha.
        var intensities = new double[nBeta, nAlpha];
        for (var i = 0; i < nAlpha; i++)
            for (var j = 0; j < nBeta; j++)
                intensities[nBeta - 1 - j, i] = scaled[i, j];
        double da = surface.Alphas[1] - surface.Alphas[0], db = surface.Betas[1] - surface.Betas[0];
        var heatmap = plot.Add.Heatmap(intensities);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        // Cells are centred on the grid points.
        heatmap.Extent = new CoordinateRect(
            surface.Alphas[0] - da / 2, surface.Alphas[^1] + da / 2, surface.Betas[0] - db / 2, surface.Betas[^1] + db / 2);

        if (options.ContourCount > 0)
        {
            var points = new Coordinates3d[nBeta, nAlpha];
            for (var i = 0; i < nAlpha; i++)
                for (var j = 0; j < nBeta; j++)
                    points[j, i] = new Coordinates3d(surface.Alphas[i], surface.Betas[j], scaled[i, j]);
            // Levels strictly inside the value range: ScottPlot's own choice includes the minimum, which draws a
            // degenerate line at the lowest grid point and one level fewer than asked for.
            var range = heatmap.GetRange();
            var contours = new ScottPlot.Plottables.ContourLines
            {
                ContourLineLevels = Enumerable.Range(1, options.ContourCount)
                    .Select(k => range.Min + k * (range.Max - range.Min) / (options.ContourCount + 1)).ToArray(),
            };
            contours.Update(points);
            plot.Add.Plottable(contours);
            contours.LineColor = Colors.White.WithAlpha(0.8);
            contours.LineWidth = 1;
            // The labels would print log10 values in log mode; the colour bar carries the scale instead.
            contours.LabelStyle.IsVisible = false;
        }

        foreach (var marker in options.Markers)
        {
            plot.Add.Marker(marker.X, marker.Y, MarkerShape.Cross, 14, Colors.Red);
            var text = plot.Add.Text(marker.Label, marker.X, marker.Y);
            text.LabelStyle.FontName = PlotFonts.Family;
            text.LabelStyle.FontSize = PlotStyle.AnnotationSize;
            text.LabelStyle.ForeColor = Colors.White;
            text.LabelStyle.Bold = true;
            text.LabelStyle.Alignment = Alignment.LowerLeft;
            text.LabelStyle.OffsetX = 8;
            text.LabelStyle.OffsetY = -6;
        }

        var colorBar = plot.Add.ColorBar(heatmap);
        colorBar.Label = options.LogScale ? $"{options.ValueLabel} (log scale)" : options.ValueLabel;
        colorBar.LabelStyle.FontName = PlotFonts.Family;
        colorBar.LabelStyle.FontSize = PlotStyle.AxisLabelSize;
        colorBar.Axis.TickLabelStyle.FontName = PlotFonts.Family;
        colorBar.Axis.TickLabelStyle.FontSize = PlotStyle.TickLabelSize;
        if (options.LogScale)
        {
            var range = heatmap.GetRange();
            PlotStyle.UseLogTicks(colorBar.Axis, range.Min, range.Max);
        }

        plot.Axes.SetLimits(heatmap.Extent.Value);
        PlotStyle.ApplyFont(plot);
        return new Figure(options.Title, options.Width, options.Height, [FigurePanel.Full(plot)]);
    }
}
