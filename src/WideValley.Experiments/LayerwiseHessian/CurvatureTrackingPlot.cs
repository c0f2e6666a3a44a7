using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>
/// The figure of a run's curvature.jsonl (<see cref="CurvatureTracker"/>): lambda_max and the trace of the full Hessian
/// and of every layer's diagonal block against epochs, as curvature.png and curvature.svg in the run folder.
/// </summary>
public static class CurvatureTrackingPlot
{
    /// <summary>The figure's base name in the run folder.</summary>
    public const string BaseName = "curvature";

    /// <summary>The figure of <paramref name="records"/> (one per epoch).</summary>
    /// <exception cref="ArgumentException">No records.</exception>
    public static Figure Create(IReadOnlyList<CurvatureRecord> records, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0) throw new ArgumentException("CurvatureTrackingPlot: no curvature records to plot.", nameof(records));
        var epochs = records.Select(r => (double)r.Epoch).ToArray();
        var names = records[0].Layers.Select(l => l.Name).ToArray();
        LineSeries Series(string name, Func<CurvatureRecord, double> value, int color) =>
            new(name, epochs, records.Select(value).ToArray()) { ShowMarkers = true, ColorIndex = color };
        IReadOnlyList<LineSeries> Panel(Func<OperatorCurvature, double> value) =>
        [
            Series("full", r => value(r.Full), 0),
            .. names.Select((n, i) => Series(n, r => value(r.Layers.First(l => l.Name == n)), i + 1)),
        ];
        var top = Panel(o => o.LambdaMax);
        var trace = Panel(o => o.Trace);
        var panels = new List<LinePanel>
        {
            new("lambda_max", top) { LogY = top.All(s => s.Y.All(y => y > 0)) },
            new("trace (Hutchinson)", trace) { LogY = trace.All(s => s.Y.All(y => y > 0)) },
        };
        return LinePlot.Stacked(panels, "epoch", new LinePlotOptions
        {
            Title = title ?? $"Hessian on {records[0].Examples} training examples: full and per layer",
            Height = 760,
        });
    }

    /// <summary>
    /// Draws the figure of <paramref name="runFolder"/>'s curvature.jsonl as curvature.png and .svg there; returns the PNG's
    /// path, or null with <paramref name="reason"/> when it could not be drawn (no records, or the plotting font is missing).
    /// </summary>
    public static string? TryWrite(string runFolder, out string? reason)
    {
        var path = Path.Combine(runFolder, CurvatureTracker.FileName);
        reason = null;
        if (!File.Exists(path))
        {
            reason = $"{path} does not exist";
            return null;
        }
        var records = CurvatureTracker.Read(path);
        if (records.Count == 0)
        {
            reason = $"{path} holds no measurement";
            return null;
        }
        var basePath = Path.Combine(runFolder, BaseName);
        return Create(records).TrySavePngAndSvg(basePath, out reason) ? basePath + ".png" : null;
    }
}
