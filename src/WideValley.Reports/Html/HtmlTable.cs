using System.Globalization;

namespace WideValley.Reports.Html;

/// <summary>How a table cell is coloured: the verdict it shows, if any.</summary>
public enum CellTone
{
    /// <summary>No colour.</summary>
    None,
    /// <summary>The better value of a comparison (green).</summary>
    Better,
    /// <summary>The worse value of a comparison (red).</summary>
    Worse,
    /// <summary>No clear difference (grey).</summary>
    Neutral,
}

/// <summary>One table cell: its text (escaped when written), its verdict colour and whether it holds a number.</summary>
/// <param name="Text">What the cell shows; written HTML-encoded, so any character is safe.</param>
public sealed record HtmlCell(string Text)
{
    /// <summary>Verdict colouring (CSS class <c>better</c>, <c>worse</c> or <c>neutral</c>).</summary>
    public CellTone Tone { get; init; }

    /// <summary>Right-aligned with tabular figures (CSS class <c>num</c>), so columns of numbers line up.</summary>
    public bool Numeric { get; init; }

    /// <summary>A plain text cell.</summary>
    public static implicit operator HtmlCell(string text) => new(text);

    /// <summary>A numeric cell formatted with <paramref name="format"/> in the invariant culture (NaN shows as "n/a").</summary>
    public static HtmlCell Number(double value, string format = "G4", CellTone tone = CellTone.None) =>
        new(double.IsNaN(value) ? "n/a" : value.ToString(format, CultureInfo.InvariantCulture)) { Numeric = true, Tone = tone };

    /// <summary>A numeric cell whose text is already formatted (e.g. "0.12 ± 0.01").</summary>
    public static HtmlCell Number(string text, CellTone tone = CellTone.None) => new(text) { Numeric = true, Tone = tone };
}

/// <summary>
/// A table for an <see cref="HtmlReport"/>: a header row, body rows of <see cref="HtmlCell"/>s and an optional caption.
/// Every row must have as many cells as there are columns.
/// </summary>
public sealed class HtmlTable
{
    private readonly List<IReadOnlyList<HtmlCell>> _rows = [];

    /// <summary>A table with these column headings.</summary>
    /// <param name="id">Element id of the table (letters, digits, '-' and '_', starting with a letter); must be unique in the report.</param>
    /// <param name="columns">Column headings, at least one.</param>
    /// <param name="caption">Shown above the table, or null.</param>
    /// <exception cref="ArgumentException">No columns, a null heading or an invalid id.</exception>
    public HtmlTable(string id, IReadOnlyList<string> columns, string? caption = null)
    {
        HtmlIds.Check(id, nameof(id));
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Count == 0) throw new ArgumentException($"Table \"{id}\" needs at least one column.", nameof(columns));
        for (var c = 0; c < columns.Count; c++)
            if (columns[c] is null) throw new ArgumentNullException($"{nameof(columns)}[{c}]", $"Table \"{id}\": column {c} has no heading.");
        Id = id;
        Columns = columns.ToArray();
        Caption = caption;
    }

    /// <summary>The table's element id.</summary>
    public string Id { get; }

    /// <summary>Column headings.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Caption shown above the table, or null.</summary>
    public string? Caption { get; }

    /// <summary>Writes each row's first cell as a row heading (<c>&lt;th scope="row"&gt;</c>), e.g. the measure's name.</summary>
    public bool FirstColumnIsRowHeading { get; init; }

    /// <summary>The body rows so far.</summary>
    public IReadOnlyList<IReadOnlyList<HtmlCell>> Rows => _rows;

    /// <summary>Appends a row; returns the table for chaining.</summary>
    /// <exception cref="ArgumentException">The row has a different number of cells than the table has columns, or a null cell.</exception>
    public HtmlTable AddRow(params IReadOnlyList<HtmlCell> cells)
    {
        ArgumentNullException.ThrowIfNull(cells);
        if (cells.Count != Columns.Count)
            throw new ArgumentException(
                $"Table \"{Id}\" has {Columns.Count} columns, but row {_rows.Count} has {cells.Count} cells.", nameof(cells));
        for (var c = 0; c < cells.Count; c++)
            if (cells[c] is null || cells[c].Text is null)
                throw new ArgumentNullException(nameof(cells), $"Table \"{Id}\", row {_rows.Count}, column {c} (\"{Columns[c]}\") has no text.");
        _rows.Add(cells.ToArray());
        return this;
    }
}

/// <summary>Element ids the report accepts: predictable in CSS selectors and URLs, so tests and links can find them.</summary>
internal static class HtmlIds
{
    public static void Check(string id, string parameter)
    {
        ArgumentNullException.ThrowIfNull(id, parameter);
        var valid = id.Length > 0 && char.IsAsciiLetter(id[0]) && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
        if (!valid)
            throw new ArgumentException(
                $"\"{id}\" is not a valid element id here: use letters, digits, '-' and '_', starting with a letter.", parameter);
    }
}
