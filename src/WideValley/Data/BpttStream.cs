using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>
/// Contiguous batching for truncated back-propagation through time. The token stream is cut into
/// <see cref="BatchSize"/> equal rows (row b holds tokens [b*C, (b+1)*C)), and each minibatch is the next window of
/// <see cref="Unroll"/> columns: inputs (B, u) and targets shifted by one token. Row b of window k+1 continues row b of
/// window k, which is what lets a language model carry its hidden state from one minibatch to the next. The last
/// window of a pass may be shorter. Passes repeat the same windows in the same order (no shuffling: order is the point).
/// </summary>
public sealed class BpttStream : IDisposable
{
    readonly Tensor _rows;

    /// <summary>B, the number of rows the token stream is cut into (at least 1).</summary>
    public int BatchSize { get; }
    /// <summary>u, the columns of a window: the time steps back-propagated through per minibatch (at least 1).</summary>
    public int Unroll { get; }
    /// <summary>Tokens per row.</summary>
    public long Columns { get; }
    /// <summary>Windows in one pass: ceil((Columns - 1) / Unroll).</summary>
    public long WindowsPerPass { get; }
    /// <summary>(pass, index of the next window within the pass).</summary>
    public StreamPosition Position { get; set; }

    /// <summary>Cuts <paramref name="tokens"/> into <paramref name="batchSize"/> rows; tokens that do not fill a whole row at the end are dropped.</summary>
    /// <param name="tokens">The token ids, a 1-D int64 tensor. The stream holds its own handle on the same memory; the caller still owns (and disposes) this one.</param>
    /// <param name="batchSize">B, rows per minibatch.</param>
    /// <param name="unroll">u, time steps per window.</param>
    /// <param name="what">What the stream is, for error messages (e.g. "validation tokens").</param>
    /// <exception cref="ArgumentException"><paramref name="tokens"/> is not 1-D int64, or too short for two tokens per row.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> or <paramref name="unroll"/> is below 1.</exception>
    public BpttStream(Tensor tokens, int batchSize, int unroll, string what = "token stream")
    {
        if (tokens.dim() != 1 || tokens.dtype != ScalarType.Int64)
            throw new ArgumentException($"{what}: expected a 1-D int64 tensor of token ids");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        if (unroll < 1) throw new ArgumentOutOfRangeException(nameof(unroll), unroll, "unroll length must be at least 1");
        var columns = tokens.shape[0] / batchSize;
        if (columns < 2)
            throw new ArgumentException(
                $"{what}: {tokens.shape[0]} tokens are too few for {batchSize} rows; each row needs at least 2 tokens (input and target)");
        BatchSize = batchSize;
        Unroll = unroll;
        Columns = columns;
        WindowsPerPass = (columns - 1 + unroll - 1) / unroll;
        _rows = tokens.narrow(0, 0, columns * batchSize).view(batchSize, columns).contiguous().DetachFromDisposeScope();
    }

    /// <summary>
    /// The next window. <c>StartsPass</c> is true for the first window of a pass, where a model should start from a
    /// fresh hidden state. Tensors belong to the caller's dispose scope.
    /// </summary>
    public (Tensor Inputs, Tensor Targets, bool StartsPass) Next() => Next(0, BatchSize);

    /// <summary>
    /// The next window's rows [<paramref name="firstRow"/>, <paramref name="firstRow"/> + <paramref name="rowCount"/>):
    /// a data-parallel rank's share of the rows, whose hidden state it carries itself. The stream advances by a whole
    /// window, exactly as <see cref="Next()"/> does. Tensors belong to the caller's dispose scope.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The rows do not lie inside the stream's, or <paramref name="rowCount"/> is below 1.</exception>
    public (Tensor Inputs, Tensor Targets, bool StartsPass) Next(int firstRow, int rowCount)
    {
        if (rowCount < 1 || firstRow < 0 || (long)firstRow + rowCount > BatchSize)
            throw new ArgumentOutOfRangeException(nameof(rowCount), $"rows [{firstRow}, {(long)firstRow + rowCount}) of a window: they must lie inside its {BatchSize} rows and be at least one");
        var (pass, window) = Position;
        var start = window * Unroll;
        var len = Math.Min(Unroll, Columns - 1 - start);
        var rows = rowCount == BatchSize ? _rows : _rows.narrow(0, firstRow, rowCount);
        var inputs = rows.narrow(1, start, len);
        var targets = rows.narrow(1, start + 1, len);
        Position = window + 1 == WindowsPerPass ? new StreamPosition(pass + 1, 0) : new StreamPosition(pass, window + 1);
        return (inputs, targets, window == 0);
    }

    /// <summary>All windows of one pass in order, for evaluation (does not move <see cref="Position"/>).</summary>
    public IEnumerable<(Tensor Inputs, Tensor Targets)> OnePass()
    {
        for (long w = 0; w < WindowsPerPass; w++)
        {
            var start = w * Unroll;
            var len = Math.Min(Unroll, Columns - 1 - start);
            yield return (_rows.narrow(1, start, len), _rows.narrow(1, start + 1, len));
        }
    }

    /// <summary>Releases the stream's handle on the token rows.</summary>
    public void Dispose() => _rows.Dispose();
}
