using System.Globalization;

namespace WideValley.Landscape.Flatness;

/// <summary>One row of the summary table: a value of every model and, for a flatness value, the verdict.</summary>
/// <param name="Measure">The measure that reported it.</param>
/// <param name="Name">The value's key.</param>
/// <param name="Label">Readable label.</param>
/// <param name="Flatter">Which way is flatter.</param>
/// <param name="Rescaling">Whether the measure is invariant to ReLU rescaling.</param>
/// <param name="Values">One per model, in model order (null when that model has no such value).</param>
/// <param name="Flattest">Index of the flattest model (null: not judged, a tie, or fewer than two finite values).</param>
/// <param name="Sigmas">By how many standard errors the flattest beats the runner-up: |difference| / sqrt(se1^2 + se2^2); null without standard errors.</param>
/// <param name="Verdict">One readable line, e.g. "B flatter by 3.1 standard errors" or "A flatter (no standard error)".</param>
public sealed record FlatnessComparisonRow(string Measure, string Name, string Label, FlatterWhen Flatter, ReluRescaling Rescaling,
    IReadOnlyList<FlatnessValue?> Values, int? Flattest, double? Sigmas, string Verdict);

/// <summary>Per value, which model is flatter and by how many standard errors.</summary>
public static class FlatnessComparison
{
    /// <summary>
    /// One row per value any model reported, in measure order. For a judged value with two or more finite values, the
    /// flattest model is compared with the runner-up: by how many combined standard errors when both have one,
    /// otherwise the verdict says "no standard error". A single model gets its values and no verdict.
    /// </summary>
    public static IReadOnlyList<FlatnessComparisonRow> Compare(IReadOnlyList<ModelMeasurements> models)
    {
        ArgumentNullException.ThrowIfNull(models);
        var rows = new List<FlatnessComparisonRow>();
        var seen = new HashSet<string>();
        foreach (var model in models)
            foreach (var item in model.Measurements)
                foreach (var value in item.Result.Values)
                {
                    if (!seen.Add(value.Name)) continue;
                    var values = models.Select(m => m.Value(value.Name)).ToList();
                    rows.Add(Row(item.Measure, value, item.Rescaling, values, models.Select(m => m.Name).ToList()));
                }
        return rows;
    }

    /// <summary>The comparison of one value across models named <paramref name="names"/>.</summary>
    public static FlatnessComparisonRow Row(string measure, FlatnessValue value, ReluRescaling rescaling, IReadOnlyList<FlatnessValue?> values, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(names);
        FlatnessComparisonRow Make(int? flattest, double? sigmas, string verdict) =>
            new(measure, value.Name, value.Label, value.Flatter, rescaling, values, flattest, sigmas, verdict);
        if (value.Flatter == FlatterWhen.NotJudged) return Make(null, null, "not a flatness measure");
        if (values.Count < 2) return Make(null, null, "one model: nothing to compare");
        var finite = values.Select((v, i) => (Value: v, Index: i)).Where(x => x.Value is { } v && double.IsFinite(v.Value)).ToList();
        if (finite.Count < 2) return Make(null, null, "fewer than two models have a finite value");
        var ordered = value.Flatter == FlatterWhen.Lower
            ? finite.OrderBy(x => x.Value!.Value).ToList()
            : finite.OrderByDescending(x => x.Value!.Value).ToList();
        var best = ordered[0];
        var second = ordered[1];
        var difference = Math.Abs(best.Value!.Value - second.Value!.Value);
        double? sigmas = null;
        if (best.Value.StandardError is double s1 && second.Value.StandardError is double s2 && double.IsFinite(s1) && double.IsFinite(s2) && s1 * s1 + s2 * s2 > 0)
            sigmas = difference / Math.Sqrt(s1 * s1 + s2 * s2);
        if (difference == 0) return Make(null, sigmas, "a tie");
        var against = finite.Count > 2 ? $" than the runner-up {names[second.Index]}" : "";
        var verdict = sigmas is double z
            ? string.Create(CultureInfo.InvariantCulture, $"{names[best.Index]} flatter{against} by {z:0.0} standard errors")
            : $"{names[best.Index]} flatter{against} (no standard error)";
        return Make(best.Index, sigmas, verdict);
    }
}
