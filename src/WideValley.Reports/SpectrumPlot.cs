using ScottPlot;

namespace WideValley.Reports;

/// <summary>Options of <see cref="SpectrumPlot"/>.</summary>
public sealed record SpectrumPlotOptions : PlotOptions
{
    /// <summary>A wide default: three panels side by side.</summary>
    public SpectrumPlotOptions()
    {
        Width = 1500;
        Height = 520;
    }

    /// <summary>
    /// Half-width w of the central panel, which shows eigenvalues in [-w, w] on linear counts; the side panels show
    /// everything beyond. Null picks the smallest w that holds 90% of the eigenvalues (or of the density's mass), so
    /// the bulk panel zooms in on the near-zero peak the way seed 003's Fig. 1 does.
    /// </summary>
    public double? BulkHalfWidth { get; init; }

    /// <summary>Histogram bins of the bulk panel (eigenvalue input only).</summary>
    public int BulkBins { get; init; } = 81;

    /// <summary>Histogram bins of each tail panel (eigenvalue input only).</summary>
    public int TailBins { get; init; } = 40;

    /// <summary>Threshold t of the "fraction of |lambda| &lt; t" statistic (the paper quotes 1e-4).</summary>
    public double NearZeroThreshold { get; init; } = 1e-4;

    /// <summary>Whether to print n, lambda_min, lambda_max and the near-zero fraction in the bulk panel.</summary>
    public bool ShowStatistics { get; init; } = true;

    /// <summary>
    /// Statistics to print instead of the ones computed from the eigenvalues. For a density (SLQ) this is the only
    /// source: a smoothed density on a grid cannot resolve |lambda| &lt; 1e-4, so the estimator's own numbers must be
    /// passed in.
    /// </summary>
    public SpectrumStatistics? Statistics { get; init; }

    /// <summary>Label of the eigenvalue axes.</summary>
    public string XLabel { get; init; } = "eigenvalue";
}

/// <summary>The numbers seed 003 quotes for a Hessian spectrum.</summary>
/// <param name="Count">Number of eigenvalues, or null when unknown (a density).</param>
/// <param name="LambdaMin">Smallest (most negative) eigenvalue.</param>
/// <param name="LambdaMax">Largest eigenvalue.</param>
/// <param name="Threshold">The t in "fraction of |lambda| &lt; t".</param>
/// <param name="FractionAbsBelow">Fraction (0..1) of eigenvalues with |lambda| &lt; <paramref name="Threshold"/>.</param>
public sealed record SpectrumStatistics(int? Count, double LambdaMin, double LambdaMax, double Threshold, double FractionAbsBelow)
{
    /// <summary>Computes the statistics of a list of eigenvalues.</summary>
    /// <exception cref="ArgumentException">Empty list, a non-finite eigenvalue, or a threshold that is not positive.</exception>
    public static SpectrumStatistics Of(IReadOnlyList<double> eigenvalues, double threshold = 1e-4)
    {
        InputChecks.NotEmpty(eigenvalues, nameof(eigenvalues), "a spectrum needs at least one eigenvalue");
        InputChecks.AllFinite(eigenvalues, nameof(eigenvalues));
        if (!(threshold > 0) || !double.IsFinite(threshold))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "The near-zero threshold must be positive and finite.");
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        var below = 0;
        foreach (var lambda in eigenvalues)
        {
            min = Math.Min(min, lambda);
            max = Math.Max(max, lambda);
            if (Math.Abs(lambda) < threshold) below++;
        }
        return new SpectrumStatistics(eigenvalues.Count, min, max, threshold, below / (double)eigenvalues.Count);
    }

    /// <summary>Multi-line text for the plot annotation.</summary>
    internal string Describe()
    {
        var lines = new List<string>();
        if (Count is { } n) lines.Add($"n = {n.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)}");
        lines.Add($"λ_min = {PlotStyle.Number(LambdaMin)}");
        lines.Add($"λ_max = {PlotStyle.Number(LambdaMax)}");
        lines.Add($"|λ| < {PlotStyle.Number(Threshold)}: {(100 * FractionAbsBelow).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)}%");
        return string.Join("\n", lines);
    }
}

/// <summary>
/// Hessian eigenvalue spectra in the style of seed 003 Fig. 1: the bulk around zero on linear counts in the middle,
/// the negative tail (left) and the positive tail (right) on log counts, because the tails are a few eigenvalues
/// spread over a range thousands of times wider than the bulk.
/// </summary>
public static class SpectrumPlot
{
    private static readonly Color BarColor = Color.FromHex("#1f77b4");
    private static readonly Color NegativeColor = Color.FromHex("#d62728");

    // Panel widths as fractions of the figure: the bulk gets the most room, as in the paper's figure.
    private const float TailWidth = 0.28f, BulkWidth = 0.44f;

    /// <summary>Histograms of exact (or Lanczos) eigenvalues.</summary>
    /// <exception cref="ArgumentException">No eigenvalues, a NaN or infinite one, or invalid options.</exception>
    public static Figure FromEigenvalues(IReadOnlyList<double> eigenvalues, SpectrumPlotOptions? options = null)
    {
        options ??= new SpectrumPlotOptions();
        InputChecks.NotEmpty(eigenvalues, nameof(eigenvalues), "a spectrum needs at least one eigenvalue");
        InputChecks.AllFinite(eigenvalues, nameof(eigenvalues));
        CheckOptions(options);

        var statistics = options.Statistics ?? SpectrumStatistics.Of(eigenvalues, options.NearZeroThreshold);
        var halfWidth = options.BulkHalfWidth ?? AutomaticHalfWidth(eigenvalues);
        var bulk = eigenvalues.Where(l => Math.Abs(l) <= halfWidth).ToArray();
        var negative = eigenvalues.Where(l => l < -halfWidth).ToArray();
        var positive = eigenvalues.Where(l => l > halfWidth).ToArray();
        var w = PlotStyle.Number(halfWidth);

        var bulkPlot = PlotStyle.NewPlot(
            $"bulk: |λ| ≤ {w} ({Percent(bulk.Length, eigenvalues.Count)} of eigenvalues)", options.XLabel, "count");
        AddBars(bulkPlot, Histogram(bulk, -halfWidth, halfWidth, options.BulkBins), logCounts: false, BarColor);
        bulkPlot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = PlotStyle.Number };
        bulkPlot.Axes.Margins(bottom: 0);
        // The bulk is shown on the symmetric window [-w, w] whatever it holds, so zero sits in the middle.
        bulkPlot.Axes.AutoScale();
        bulkPlot.Axes.SetLimitsX(-1.02 * halfWidth, 1.02 * halfWidth);
        if (options.ShowStatistics) PlotStyle.Annotate(bulkPlot, statistics.Describe(), Alignment.UpperRight);

        var negativePlot = PlotStyle.NewPlot($"negative tail: λ < −{w}", options.XLabel, "count (log scale)");
        if (negative.Length == 0) PlotStyle.ShowNothingToPlot(negativePlot, $"no eigenvalue below −{w}");
        else AddBars(negativePlot, Histogram(negative, negative.Min(), -halfWidth, options.TailBins), logCounts: true, NegativeColor);

        var positivePlot = PlotStyle.NewPlot($"positive tail: λ > {w}", options.XLabel, "count (log scale)");
        if (positive.Length == 0) PlotStyle.ShowNothingToPlot(positivePlot, $"no eigenvalue above {w}");
        else AddBars(positivePlot, Histogram(positive, halfWidth, positive.Max(), options.TailBins), logCounts: true, BarColor);

        return Assemble(options, negativePlot, bulkPlot, positivePlot);
    }

    /// <summary>
    /// A spectral density on a grid, e.g. from stochastic Lanczos quadrature: the bulk as a curve on a linear scale,
    /// the tails on a log scale. <paramref name="density"/>[i] is the density at <paramref name="grid"/>[i].
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than two grid points, lengths that differ, a grid that is not strictly
    /// increasing, a non-finite or negative density, or a density that is zero everywhere.</exception>
    public static Figure FromDensity(IReadOnlyList<double> grid, IReadOnlyList<double> density, SpectrumPlotOptions? options = null)
    {
        options ??= new SpectrumPlotOptions();
        InputChecks.NotEmpty(grid, nameof(grid), "a density needs a grid of at least two points");
        InputChecks.NotEmpty(density, nameof(density), "a density needs one value per grid point");
        InputChecks.SameLength(grid, nameof(grid), density, nameof(density));
        if (grid.Count < 2) throw new ArgumentException("grid has 1 point; a density needs at least two.", nameof(grid));
        InputChecks.AllFinite(grid, nameof(grid));
        InputChecks.AllFinite(density, nameof(density));
        InputChecks.StrictlyIncreasing(grid, nameof(grid));
        for (var i = 0; i < density.Count; i++)
            if (density[i] < 0)
                throw new ArgumentException($"density[{i}] = {InputChecks.Format(density[i])}; a density cannot be negative.", nameof(density));
        var peak = density.Max();
        if (peak == 0) throw new ArgumentException("density is zero at every grid point; there is nothing to plot.", nameof(density));
        CheckOptions(options);

        var halfWidth = options.BulkHalfWidth ?? AutomaticHalfWidth(grid, density);
        var w = PlotStyle.Number(halfWidth);
        var bulkMass = Mass(grid, density, -halfWidth, halfWidth) / Mass(grid, density, double.NegativeInfinity, double.PositiveInfinity);

        var bulkPlot = PlotStyle.NewPlot(
            $"bulk: |λ| ≤ {w} ({(100 * bulkMass).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)}% of the mass)",
            options.XLabel, "density");
        var (bulkX, bulkY) = Select(grid, density, x => Math.Abs(x) <= halfWidth, logOfDensity: false, peak);
        if (bulkX.Length < 2) PlotStyle.ShowNothingToPlot(bulkPlot, $"fewer than two grid points in [−{w}, {w}]");
        else AddCurve(bulkPlot, bulkX, bulkY, BarColor);
        if (options.ShowStatistics && options.Statistics is { } statistics)
            PlotStyle.Annotate(bulkPlot, statistics.Describe(), Alignment.UpperRight);

        var negativePlot = PlotStyle.NewPlot($"negative tail: λ < −{w}", options.XLabel, "density (log scale)");
        var (negX, negY) = Select(grid, density, x => x < -halfWidth, logOfDensity: true, peak);
        if (negX.Length < 2) PlotStyle.ShowNothingToPlot(negativePlot, $"no spectral mass below −{w}");
        else { AddCurve(negativePlot, negX, negY, NegativeColor); PlotStyle.UseLogTicks(negativePlot.Axes.Left, negY.Min(), negY.Max()); }

        var positivePlot = PlotStyle.NewPlot($"positive tail: λ > {w}", options.XLabel, "density (log scale)");
        var (posX, posY) = Select(grid, density, x => x > halfWidth, logOfDensity: true, peak);
        if (posX.Length < 2) PlotStyle.ShowNothingToPlot(positivePlot, $"no spectral mass above {w}");
        else { AddCurve(positivePlot, posX, posY, BarColor); PlotStyle.UseLogTicks(positivePlot.Axes.Left, posY.Min(), posY.Max()); }

        return Assemble(options, negativePlot, bulkPlot, positivePlot);
    }

    private static void CheckOptions(SpectrumPlotOptions options)
    {
        InputChecks.Positive(options.BulkBins, nameof(options.BulkBins));
        InputChecks.Positive(options.TailBins, nameof(options.TailBins));
        if (options.BulkHalfWidth is { } w && !(w > 0 && double.IsFinite(w)))
            throw new ArgumentOutOfRangeException(nameof(options.BulkHalfWidth), w, "BulkHalfWidth must be positive and finite.");
        if (!(options.NearZeroThreshold > 0) || !double.IsFinite(options.NearZeroThreshold))
            throw new ArgumentOutOfRangeException(nameof(options.NearZeroThreshold), options.NearZeroThreshold,
                "NearZeroThreshold must be positive and finite.");
    }

    private static Figure Assemble(SpectrumPlotOptions options, Plot negative, Plot bulk, Plot positive)
    {
        foreach (var plot in new[] { negative, bulk, positive }) PlotStyle.ApplyFont(plot);
        return new Figure(options.Title, options.Width, options.Height,
        [
            new FigurePanel(negative, 0, 0, TailWidth, 1),
            new FigurePanel(bulk, TailWidth, 0, BulkWidth, 1),
            new FigurePanel(positive, TailWidth + BulkWidth, 0, TailWidth, 1),
        ]);
    }

    /// <summary>The 90% quantile of |lambda|, so the bulk panel shows nine eigenvalues in ten.</summary>
    internal static double AutomaticHalfWidth(IReadOnlyList<double> eigenvalues)
    {
        var magnitudes = eigenvalues.Select(Math.Abs).Order().ToArray();
        var quantile = magnitudes[(int)Math.Ceiling(0.9 * magnitudes.Length) - 1];
        var largest = magnitudes[^1];
        // All zero: any width shows them. Mostly exact zeros (dead units): keep a width that is still visible
        // next to the largest eigenvalue instead of an empty interval.
        if (largest == 0) return 1;
        return Math.Max(quantile, 1e-9 * largest);
    }

    /// <summary>The smallest |lambda| band holding 90% of the density's mass (trapezoid rule per grid interval).</summary>
    internal static double AutomaticHalfWidth(IReadOnlyList<double> grid, IReadOnlyList<double> density)
    {
        var intervals = new List<(double Distance, double Mass)>(grid.Count - 1);
        double total = 0;
        for (var i = 0; i + 1 < grid.Count; i++)
        {
            var mass = 0.5 * (density[i] + density[i + 1]) * (grid[i + 1] - grid[i]);
            intervals.Add((Math.Max(Math.Abs(grid[i]), Math.Abs(grid[i + 1])), mass));
            total += mass;
        }
        double cumulative = 0;
        foreach (var (distance, mass) in intervals.OrderBy(x => x.Distance))
        {
            cumulative += mass;
            if (cumulative >= 0.9 * total && distance > 0) return distance;
        }
        return Math.Max(Math.Abs(grid[0]), Math.Abs(grid[^1]));
    }

    /// <summary>Trapezoid mass of the density over the grid intervals whose both ends lie in [lo, hi].</summary>
    private static double Mass(IReadOnlyList<double> grid, IReadOnlyList<double> density, double lo, double hi)
    {
        double mass = 0;
        for (var i = 0; i + 1 < grid.Count; i++)
            if (grid[i] >= lo && grid[i + 1] <= hi)
                mass += 0.5 * (density[i] + density[i + 1]) * (grid[i + 1] - grid[i]);
        return mass;
    }

    /// <summary>
    /// Grid points passing <paramref name="keep"/>; with <paramref name="logOfDensity"/> the y values are log10 and
    /// points below 1e-12 of the peak are dropped: they are rounding noise of the smoothing, and log10(0) is undefined.
    /// </summary>
    private static (double[] X, double[] Y) Select(IReadOnlyList<double> grid, IReadOnlyList<double> density,
        Func<double, bool> keep, bool logOfDensity, double peak)
    {
        var xs = new List<double>();
        var ys = new List<double>();
        for (var i = 0; i < grid.Count; i++)
        {
            if (!keep(grid[i])) continue;
            if (logOfDensity)
            {
                if (density[i] <= 1e-12 * peak) continue;
                ys.Add(Math.Log10(density[i]));
            }
            else ys.Add(density[i]);
            xs.Add(grid[i]);
        }
        return (xs.ToArray(), ys.ToArray());
    }

    /// <summary>Equal-width bins over [lo, hi]; values on the upper edge go in the last bin.</summary>
    internal static (double[] Centers, int[] Counts, double BinWidth) Histogram(IReadOnlyList<double> values, double lo, double hi, int bins)
    {
        if (hi <= lo)
        {
            // Every value identical (a single tail eigenvalue, say): one bar of a visible width around it.
            var pad = Math.Abs(lo) > 0 ? Math.Abs(lo) * 0.05 : 0.5;
            lo -= pad;
            hi += pad;
            bins = 1;
        }
        var width = (hi - lo) / bins;
        var counts = new int[bins];
        foreach (var v in values)
            counts[Math.Clamp((int)Math.Floor((v - lo) / width), 0, bins - 1)]++;
        var centers = Enumerable.Range(0, bins).Select(i => lo + (i + 0.5) * width).ToArray();
        return (centers, counts, width);
    }

    /// <summary>
    /// Bars of a histogram. With log counts the bars stand on log10(0.5), so a bin holding a single eigenvalue
    /// (log10(1) = 0) still shows as a bar; the lone outliers are exactly what the tail panels are for.
    /// </summary>
    internal static void AddBars(Plot plot, (double[] Centers, int[] Counts, double BinWidth) histogram, bool logCounts, Color color)
    {
        var floor = logCounts ? Math.Log10(0.5) : 0;
        var bars = new List<Bar>();
        for (var i = 0; i < histogram.Counts.Length; i++)
        {
            if (histogram.Counts[i] == 0) continue;
            bars.Add(new Bar
            {
                Position = histogram.Centers[i],
                Value = logCounts ? Math.Log10(histogram.Counts[i]) : histogram.Counts[i],
                ValueBase = floor,
                Size = histogram.BinWidth,
                FillColor = color,
                LineWidth = 0,
            });
        }
        plot.Add.Bars(bars.ToArray());
        if (logCounts)
        {
            var top = Math.Log10(Math.Max(1, histogram.Counts.Max()));
            var ceiling = top + 0.15 * Math.Max(1, top - floor);
            // Counts are integers >= 1: the power-of-ten ticks always include 1, even for a single eigenvalue.
            PlotStyle.UseLogTicks(plot.Axes.Left, Math.Min(floor, ceiling - 1), ceiling);
            plot.Axes.SetLimitsY(floor, ceiling);
        }
    }

    private static void AddCurve(Plot plot, double[] xs, double[] ys, Color color)
    {
        var line = plot.Add.Scatter(xs, ys, color);
        line.MarkerSize = 0;
        line.LineWidth = 2;
    }

    private static string Percent(int part, int whole) =>
        (100.0 * part / whole).ToString("0.#", System.Globalization.CultureInfo.InvariantCulture) + "%";
}
