namespace WideValley.Experiments;

/// <summary>How an arm compares with a baseline (lower is better).</summary>
public enum FlatMinimaVerdictKind
{
    /// <summary>Lower than the baseline by more than 2 standard errors of the difference.</summary>
    Better,
    /// <summary>Higher than the baseline by more than 2 standard errors.</summary>
    Worse,
    /// <summary>Within 2 standard errors.</summary>
    NoDifference,
    /// <summary>Fewer than two finished seeds on a side, or the smoke budget: nothing is judged.</summary>
    NotJudged,
}

/// <summary>An arm against a baseline: the difference of the means, its standard error, and the verdict at 2 SE.</summary>
/// <param name="Difference">Arm mean minus baseline mean.</param>
/// <param name="StandardError">sqrt(s_a^2/n_a + s_b^2/n_b) (Welch's, unpaired); NaN below two values on a side.</param>
/// <param name="Kind">The verdict.</param>
public sealed record FlatMinimaVerdict(double Difference, double StandardError, FlatMinimaVerdictKind Kind)
{
    /// <summary>The difference in standard errors (NaN when there is no standard error; ±infinity when it is 0 and the means differ).</summary>
    public double InStandardErrors => double.IsNaN(StandardError) ? double.NaN
        : StandardError == 0 ? (Difference == 0 ? 0 : Math.Sign(Difference) * double.PositiveInfinity) : Difference / StandardError;

    /// <summary>The verdict as the report writes it.</summary>
    public string Word => Kind switch
    {
        FlatMinimaVerdictKind.Better => "better",
        FlatMinimaVerdictKind.Worse => "worse",
        FlatMinimaVerdictKind.NoDifference => "no difference",
        _ => "not judged",
    };
}

/// <summary>The benchmark's statistics: verdicts at 2 SE, rank correlation, and the effective epochs to reach a target.</summary>
public static class FlatMinimaStatistics
{
    /// <summary>Standard errors a difference must exceed to count (ours, as the other reproduce reports).</summary>
    public const double Threshold = 2;

    /// <summary>
    /// The verdict of <paramref name="arm"/>'s values against <paramref name="baseline"/>'s (lower is better): better or
    /// worse when the difference of the means exceeds <see cref="Threshold"/> standard errors of the difference (Welch's,
    /// unpaired: the arms share seeds but not trajectories), no difference otherwise; not judged below two values on a
    /// side or when <paramref name="judge"/> is false (the smoke budget). Non-finite values are left out.
    /// </summary>
    public static FlatMinimaVerdict Compare(IReadOnlyList<double> arm, IReadOnlyList<double> baseline, bool judge = true)
    {
        var a = arm.Where(double.IsFinite).ToArray();
        var b = baseline.Where(double.IsFinite).ToArray();
        if (a.Length == 0 || b.Length == 0) return new(double.NaN, double.NaN, FlatMinimaVerdictKind.NotJudged);
        var difference = a.Average() - b.Average();
        if (a.Length < 2 || b.Length < 2) return new(difference, double.NaN, FlatMinimaVerdictKind.NotJudged);
        var se = Math.Sqrt(Variance(a) / a.Length + Variance(b) / b.Length);
        if (!judge) return new(difference, se, FlatMinimaVerdictKind.NotJudged);
        var kind = difference < 0 && -difference > Threshold * se ? FlatMinimaVerdictKind.Better
            : difference > 0 && difference > Threshold * se ? FlatMinimaVerdictKind.Worse
            : FlatMinimaVerdictKind.NoDifference;
        return new(difference, se, kind);
    }

    /// <summary>Sample variance (n - 1).</summary>
    static double Variance(double[] v)
    {
        var mean = v.Average();
        return v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1);
    }

    /// <summary>Spearman's rank correlation (average ranks for ties) of the pairs whose both values are finite; NaN below 3 pairs or when a side is constant.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException($"Spearman needs two lists of one length, got {x.Count} and {y.Count}");
        var pairs = x.Zip(y).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second)).ToList();
        if (pairs.Count < 3) return double.NaN;
        return LevelSetsReport.Spearman(pairs.Select(p => p.First).ToArray(), pairs.Select(p => p.Second).ToArray());
    }

    /// <summary>
    /// The mean curve of several runs of one arm evaluated on the same grid: point i is the mean over runs of their i-th
    /// (x, y), for the points every run has.
    /// </summary>
    public static (IReadOnlyList<double> X, IReadOnlyList<double> Y) MeanCurve(IReadOnlyList<IReadOnlyList<(double X, double Y)>> runs)
    {
        if (runs.Count == 0) return ([], []);
        var n = runs.Min(r => r.Count);
        var x = new double[n];
        var y = new double[n];
        for (var i = 0; i < n; i++)
        {
            x[i] = runs.Average(r => r[i].X);
            y[i] = runs.Average(r => r[i].Y);
        }
        return (x, y);
    }

    /// <summary>The first x at which the curve is at or below <paramref name="target"/>; null when it never is.</summary>
    public static double? FirstReach(IReadOnlyList<double> x, IReadOnlyList<double> y, double target)
    {
        for (var i = 0; i < x.Count; i++)
            if (y[i] <= target) return x[i];
        return null;
    }
}
