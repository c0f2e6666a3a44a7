using System.Globalization;
using System.Text.Json.Nodes;

namespace WideValley.Tests.Distributed;

/// <summary>
/// Compares what a measurement over MPI ranks wrote with what one process wrote: JSON documents walked together
/// (same keys and shapes, equal strings and flags, numbers compared relative to their siblings' largest magnitude)
/// and CSV tables (numbers relative to their column's largest magnitude). Reports the largest relative difference and
/// where, for the test to hold against its tolerance and print.
/// </summary>
static class SameNumbers
{
    /// <summary>How many numbers were compared and the largest relative difference, with its path.</summary>
    public sealed record Difference(int Compared, double Worst, string Where);

    /// <summary>Walks <paramref name="a"/> and <paramref name="b"/> together, skipping the keys <paramref name="skipped"/> names (in both).</summary>
    public static Difference Json(JsonNode a, JsonNode b, Func<string, bool> skipped)
    {
        var (compared, worst, where) = (0, 0.0, "");
        Walk(a, b, "", 0);
        return new Difference(compared, worst, where);

        void Walk(JsonNode? x, JsonNode? y, string path, double scale)
        {
            switch (x)
            {
                case JsonObject o:
                    var other = Assert.IsType<JsonObject>(y);
                    Assert.Equal(o.Select(p => p.Key).Where(k => !skipped(k)).Order(), other.Select(p => p.Key).Where(k => !skipped(k)).Order());
                    // A Ritz value's residual is a rounding-sized number: measured against the eigenvalues it belongs to.
                    var eigenvalueScale = o["eigenvalues"] is JsonArray values ? values.Select(v => v is JsonValue e && e.TryGetValue<double>(out var d) ? Math.Abs(d) : 0).DefaultIfEmpty(0).Max() : 0;
                    // So is an eigenvalue at zero (the last layer's logit shift): the spectrum's extent is its scale.
                    var spectralScale = new[] { "lambda_max", "lambda_min" }.Select(k => o[k] is JsonValue v && v.TryGetValue<double>(out var d) ? Math.Abs(d) : 0).Max();
                    foreach (var (key, value) in o)
                        if (!skipped(key))
                            Walk(value, other[key], $"{path}/{key}", key == "residuals" ? eigenvalueScale : key is "lambda_max" or "lambda_min" ? spectralScale : 0);
                    break;
                case JsonArray array:
                    var otherArray = Assert.IsType<JsonArray>(y);
                    Assert.True(array.Count == otherArray.Count, $"{path}: {array.Count} entries against {otherArray.Count}");
                    var magnitude = Math.Max(scale, array.OfType<JsonValue>().Select(v => v.TryGetValue<double>(out var d) ? Math.Abs(d) : 0).DefaultIfEmpty(0).Max());
                    for (var i = 0; i < array.Count; i++) Walk(array[i], otherArray[i], $"{path}[{i}]", magnitude);
                    break;
                case JsonValue v when v.TryGetValue<double>(out var p) && y is JsonValue w && w.TryGetValue<double>(out var q):
                    compared++;
                    var size = Math.Max(scale, Math.Max(Math.Abs(p), Math.Abs(q)));
                    var relative = size == 0 ? 0 : Math.Abs(p - q) / size;
                    if (relative > worst) (worst, where) = (relative, path);
                    break;
                default:
                    Assert.True(x?.ToJsonString() == y?.ToJsonString(), $"{path}: {x?.ToJsonString()} against {y?.ToJsonString()}");
                    break;
            }
        }
    }

    /// <summary>Two CSV tables of the same shape: text cells equal, numbers within the tolerance of their column's largest magnitude.</summary>
    public static Difference Table(string reference, string other)
    {
        var (a, b) = (File.ReadAllLines(reference), File.ReadAllLines(other));
        Assert.True(a.Length == b.Length, $"{Path.GetFileName(reference)}: {a.Length} lines against {b.Length}");
        Assert.Equal(a[0], b[0]);
        var cells = a.Skip(1).Select(l => l.Split(',')).ToArray();
        var others = b.Skip(1).Select(l => l.Split(',')).ToArray();
        static double? Number(string text) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x : null;
        var columns = cells.Length == 0 ? 0 : cells[0].Length;
        var scale = Enumerable.Range(0, columns).Select(c => cells.Select(r => c < r.Length ? Math.Abs(Number(r[c]) ?? 0) : 0).DefaultIfEmpty(0).Max()).ToArray();
        var (worst, where) = (0.0, "");
        for (var r = 0; r < cells.Length; r++)
        {
            Assert.True(cells[r].Length == others[r].Length, $"{Path.GetFileName(reference)} line {r + 2}: {cells[r].Length} cells against {others[r].Length}");
            for (var c = 0; c < cells[r].Length; c++)
            {
                if (Number(cells[r][c]) is double x && Number(others[r][c]) is double y)
                {
                    var relative = scale[c] == 0 ? Math.Abs(x - y) : Math.Abs(x - y) / scale[c];
                    if (relative > worst) (worst, where) = (relative, $"line {r + 2}, column {c + 1}");
                }
                else Assert.Equal(cells[r][c], others[r][c]);
            }
        }
        return new Difference(cells.Length, worst, where);
    }
}
