using System.Text;

namespace WideValley.Experiments;

/// <summary>
/// A <see cref="TextWriter"/> that hands every complete line to a callback: how a runner turns the log of a library
/// service that writes to a <see cref="TextWriter"/> into its own progress reports instead of console output.
/// </summary>
/// <param name="line">Receives each line, without its line break.</param>
public sealed class LineWriter(Action<string> line) : TextWriter
{
    readonly StringBuilder pending = new();
    readonly Lock gate = new();

    /// <inheritdoc/>
    public override Encoding Encoding => Encoding.UTF8;

    /// <inheritdoc/>
    public override void Write(char value)
    {
        string? complete = null;
        lock (gate)
        {
            if (value == '\n')
            {
                if (pending.Length > 0 && pending[^1] == '\r') pending.Length--;
                complete = pending.ToString();
                pending.Clear();
            }
            else pending.Append(value);
        }
        if (complete is not null) line(complete);
    }

    /// <inheritdoc/>
    public override void Write(string? value)
    {
        foreach (var c in value ?? "") Write(c);
    }

    /// <inheritdoc/>
    public override void WriteLine(string? value)
    {
        string complete;
        lock (gate)
        {
            complete = pending.Append(value).ToString();
            pending.Clear();
        }
        line(complete);
    }

    /// <summary>Hands on a last line that has no line break yet.</summary>
    public override void Flush()
    {
        string? rest = null;
        lock (gate)
        {
            if (pending.Length > 0)
            {
                rest = pending.ToString();
                pending.Clear();
            }
        }
        if (rest is not null) line(rest);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) Flush();
        base.Dispose(disposing);
    }
}
