using System.Globalization;
using ScottPlot;

namespace WideValley.Reports;

/// <summary>The house style: one font, readable sizes, log-scale ticks, a colour-blind-safe palette.</summary>
internal static class PlotStyle
{
    public const float PanelTitleSize = 15;
    public const float AxisLabelSize = 14;
    public const float TickLabelSize = 12;
    public const float AnnotationSize = 12;

    /// <summary>Tableau-10 / matplotlib default colours: distinct for the common forms of colour blindness and in
    /// greyscale print, and familiar to readers of the papers we reproduce.</summary>
    public static readonly Color[] Palette =
    [
        Color.FromHex("#1f77b4"), Color.FromHex("#d62728"), Color.FromHex("#2ca02c"), Color.FromHex("#ff7f0e"),
        Color.FromHex("#9467bd"), Color.FromHex("#8c564b"), Color.FromHex("#e377c2"), Color.FromHex("#7f7f7f"),
        Color.FromHex("#bcbd22"), Color.FromHex("#17becf"),
    ];

    public static Color SeriesColor(int index) => Palette[index % Palette.Length];

    /// <summary>How many times the palette has come round before series <paramref name="index"/>: 0 for the first ten.</summary>
    public static int ColorRound(int index) => index / Palette.Length;

    /// <summary>Marker shapes by palette round: series that share a colour never share a shape.</summary>
    static readonly MarkerShape[] MarkerRounds =
        [MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp, MarkerShape.FilledDiamond, MarkerShape.Cross];

    /// <summary>The marker shape of series <paramref name="index"/>: filled circles for the first ten, then other shapes.</summary>
    public static MarkerShape SeriesMarker(int index) => MarkerRounds[ColorRound(index) % MarkerRounds.Length];

    /// <summary>A plot with the house font on every element it has so far, and the given labels.</summary>
    public static Plot NewPlot(string? panelTitle, string? xLabel, string? yLabel)
    {
        // Registers the font files if they are there; a missing font does not stop a figure from being built, only
        // from being drawn (Figure.TrySavePngAndSvg skips it with the reason, Figure.SavePng throws it).
        PlotFonts.TryEnsureAvailable(out _);
        var plot = new Plot();
        if (!string.IsNullOrWhiteSpace(panelTitle)) plot.Title(panelTitle, PanelTitleSize);
        if (!string.IsNullOrWhiteSpace(xLabel)) plot.XLabel(xLabel, AxisLabelSize);
        if (!string.IsNullOrWhiteSpace(yLabel)) plot.YLabel(yLabel, AxisLabelSize);
        ApplyFont(plot);
        return plot;
    }

    /// <summary>
    /// Sets the house font on every axis, label, legend and annotation of <paramref name="plot"/>. Called again after
    /// all plottables are added, because ScottPlot gives new plottables whatever its global default font is.
    /// </summary>
    public static void ApplyFont(Plot plot)
    {
        plot.Font.Set(PlotFonts.Family);
        plot.Axes.Title.Label.Bold = true;
        foreach (var axis in plot.Axes.GetAxes())
        {
            axis.TickLabelStyle.FontSize = TickLabelSize;
            axis.TickLabelStyle.FontName = PlotFonts.Family;
            axis.Label.FontName = PlotFonts.Family;
        }
        plot.Legend.FontName = PlotFonts.Family;
        plot.Legend.FontSize = AnnotationSize;
        foreach (var annotation in plot.GetPlottables<ScottPlot.Plottables.Annotation>())
            annotation.LabelStyle.FontName = PlotFonts.Family;
        foreach (var text in plot.GetPlottables<ScottPlot.Plottables.Text>())
            text.LabelStyle.FontName = PlotFonts.Family;
    }

    /// <summary>
    /// An annotation box in a corner of the data area: white background and a thin border, so it reads over bars and
    /// lines (ScottPlot's default is a yellow sticky note).
    /// </summary>
    public static void Annotate(Plot plot, string text, Alignment corner)
    {
        var annotation = plot.Add.Annotation(text, corner);
        annotation.LabelStyle.FontName = PlotFonts.Family;
        annotation.LabelStyle.FontSize = AnnotationSize;
        annotation.LabelStyle.BackgroundColor = Colors.White.WithAlpha(0.85);
        annotation.LabelStyle.BorderColor = Colors.Gray;
        annotation.LabelStyle.BorderWidth = 1;
        annotation.LabelStyle.ShadowColor = Colors.Transparent;
        annotation.LabelStyle.Padding = 6;
    }

    /// <summary>
    /// Ticks for an axis whose coordinates are log10 of the data (ScottPlot has no log axes; the data are transformed
    /// and the ticks labelled with the original values). Over a decade or more: majors at powers of ten, minors at 2..9
    /// times them. Over less than a decade there may be no power of ten in range, so the ticks are placed at round
    /// values of the data (1, 2, 5 times a power of ten) instead.
    /// </summary>
    /// <param name="axis">The axis to label.</param>
    /// <param name="logMin">log10 of the smallest value shown.</param>
    /// <param name="logMax">log10 of the largest value shown.</param>
    public static void UseLogTicks(IAxis axis, double logMin, double logMax)
    {
        if (logMax - logMin >= 1)
        {
            axis.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                IntegerTicksOnly = true,
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                LabelFormatter = PowerOfTenLabel,
            };
            return;
        }
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var value in RoundValuesBetween(Math.Pow(10, logMin), Math.Pow(10, logMax)))
            ticks.AddMajor(Math.Log10(value), Number(value));
        axis.TickGenerator = ticks;
    }

    /// <summary>Round numbers (1, 2, 5 times a power of ten, or finer steps if needed) in [lo, hi], at least two.</summary>
    internal static IReadOnlyList<double> RoundValuesBetween(double lo, double hi)
    {
        foreach (var fraction in new[] { 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01 })
        {
            var step = fraction * Math.Pow(10, Math.Floor(Math.Log10(hi - lo)));
            var values = new List<double>();
            for (var v = Math.Ceiling(lo / step) * step; v <= hi * (1 + 1e-12); v += step)
                if (v > 0) values.Add(Math.Round(v / step) * step);
            if (values.Count >= 3 || (values.Count >= 2 && fraction <= 0.01)) return values;
        }
        return hi > lo ? [lo, hi] : [lo];
    }

    /// <summary>"0.01", "1", "1000" for small exponents, "1e-5", "1e6" beyond.</summary>
    public static string PowerOfTenLabel(double exponent)
    {
        var k = (int)Math.Round(exponent);
        return Math.Abs(k) <= 3
            ? Math.Pow(10, k).ToString("0.###", CultureInfo.InvariantCulture)
            : "1e" + k.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Compact number for annotations and titles: 4 significant digits, invariant culture, "6.62e-5" rather
    /// than .NET's "6.62E-05".</summary>
    public static string Number(double value)
    {
        var text = value.ToString("G4", CultureInfo.InvariantCulture);
        var e = text.IndexOf('E');
        if (e < 0) return text;
        var exponent = int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        return text[..e] + "e" + exponent.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Text for a data area that has nothing to show, instead of an empty frame that looks like a bug.</summary>
    public static void ShowNothingToPlot(Plot plot, string reason)
    {
        Annotate(plot, reason, Alignment.MiddleCenter);
        plot.Axes.SetLimits(0, 1, 0, 1);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.EmptyTickGenerator();
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.EmptyTickGenerator();
    }
}
