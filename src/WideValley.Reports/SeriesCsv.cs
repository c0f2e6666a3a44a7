using System.Globalization;
using System.Text;

namespace WideValley.Reports;

/// <summary>A named column of numbers for <see cref="SeriesCsv.WriteColumns"/>.</summary>
/// <param name="Name">Header of the column.</param>
/// <param name="Values">The numbers, one per row.</param>
public sealed record CsvColumn(string Name, IReadOnlyList<double> Values);

/// <summary>
/// CSV tables of the data behind the plots, so every figure can be re-drawn with other tools. Numbers are written in
/// the invariant culture with round-trip precision ("0.1", never "0,1"), lines end in "\n", names are quoted per
/// RFC 4180 when needed, and files are written atomically.
/// </summary>
public static class SeriesCsv
{
    /// <summary>Columns side by side, one header line; all columns must have the same length. NaN is written as "NaN".</summary>
    /// <exception cref="ArgumentException">No columns, a blank or duplicate name, or columns of different lengths.</exception>
    public static void WriteColumns(string path, IReadOnlyList<CsvColumn> columns) =>
        AtomicFile.WriteAllText(path, FormatColumns(columns));

    /// <summary>The text <see cref="WriteColumns"/> writes.</summary>
    public static string FormatColumns(IReadOnlyList<CsvColumn> columns)
    {
        InputChecks.NotEmpty(columns, nameof(columns), "a table needs at least one column");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var column in columns)
        {
            if (string.IsNullOrWhiteSpace(column.Name))
                throw new ArgumentException("Every column needs a non-blank name.", nameof(columns));
            if (!seen.Add(column.Name))
                throw new ArgumentException($"Column name \"{column.Name}\" appears twice.", nameof(columns));
            InputChecks.SameLength(columns[0].Values, $"column \"{columns[0].Name}\"", column.Values, $"column \"{column.Name}\"");
        }
        var text = new StringBuilder();
        text.AppendJoin(',', columns.Select(c => Quote(c.Name))).Append('\n');
        for (var row = 0; row < columns[0].Values.Count; row++)
            text.AppendJoin(',', columns.Select(c => Number(c.Values[row]))).Append('\n');
        return text.ToString();
    }

    /// <summary>Several series in long form: header <c>series,{xName},{yName}</c>, one row per point.</summary>
    /// <exception cref="ArgumentException">A series whose X and Y differ in length.</exception>
    public static void WriteSeries(string path, IReadOnlyList<LineSeries> series, string xName = "x", string yName = "y")
    {
        ArgumentNullException.ThrowIfNull(series);
        var text = new StringBuilder();
        text.Append("series,").Append(Quote(xName)).Append(',').Append(Quote(yName)).Append('\n');
        foreach (var s in series)
        {
            InputChecks.SameLength(s.X, $"series \"{s.Name}\".X", s.Y, $"series \"{s.Name}\".Y");
            for (var i = 0; i < s.X.Count; i++)
                text.Append(Quote(s.Name)).Append(',').Append(Number(s.X[i])).Append(',').Append(Number(s.Y[i])).Append('\n');
        }
        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>A 2-D surface in long form: header <c>alpha,beta,{valueName}</c>, alpha varying slowest.</summary>
    /// <exception cref="ArgumentException">An invalid surface (see <see cref="LossSurface.Validate"/>).</exception>
    public static void WriteSurface(string path, LossSurface surface, string valueName = "loss")
    {
        ArgumentNullException.ThrowIfNull(surface);
        surface.Validate();
        var text = new StringBuilder();
        text.Append("alpha,beta,").Append(Quote(valueName)).Append('\n');
        for (var i = 0; i < surface.Alphas.Count; i++)
            for (var j = 0; j < surface.Betas.Count; j++)
                text.Append(Number(surface.Alphas[i])).Append(',').Append(Number(surface.Betas[j])).Append(',')
                    .Append(Number(surface.Values[i, j])).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>Shortest text that parses back to the same double, in the invariant culture.</summary>
    public static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Quote(string field) =>
        field.IndexOfAny([',', '"', '\n', '\r']) < 0 ? field : "\"" + field.Replace("\"", "\"\"") + "\"";
}
