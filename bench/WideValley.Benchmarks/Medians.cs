using WideValley.Experiments;

namespace WideValley.Benchmarks;

/// <summary>The statistic every benchmark reports: robust to the occasional slow repetition on a shared machine.</summary>
internal static class Medians
{
    public static double Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("a median needs at least one value", nameof(values));
        var sorted = values.Order().ToArray();
        var n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    }
}
