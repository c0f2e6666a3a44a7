using WideValley.Experiments.Flatness;
using WideValley.Landscape.Flatness;
using static WideValley.Experiments.Flatness.WideValleysStatistics;

namespace WideValley.Tests.Experiments;

/// <summary>The wide-valleys verdict rules on hand-made numbers: Welch's difference, Spearman with ties, the exact permutation p-value, the signs.</summary>
public class WideValleysStatisticsTests
{
    [Fact]
    public void WiderIsTheOrientedDifferenceOverWelchsStandardError()
    {
        // Lower = flatter: Entropy-SGD's values 1, 2, 3 (mean 2) are flatter than Adam's 4, 5, 6 (mean 5).
        var v = Wider([1, 2, 3], [4, 5, 6], FlatterWhen.Lower);
        Assert.Equal((3, 3, 2.0, 1.0, 5.0, 1.0), (v.EntropyCount, v.AdamCount, v.EntropyMean, v.EntropyStd, v.AdamMean, v.AdamStd));
        Assert.Equal(3, v.FlatnessDifference, 12);
        Assert.Equal(Math.Sqrt(2.0 / 3), v.StandardError, 12);
        Assert.Equal(3 / Math.Sqrt(2.0 / 3), v.Z, 12);
        Assert.Equal(ClaimVerdict.Agrees, v.Verdict);

        // The same numbers with higher = flatter: Adam is flatter.
        var higher = Wider([1, 2, 3], [4, 5, 6], FlatterWhen.Higher);
        Assert.Equal(-3, higher.FlatnessDifference, 12);
        Assert.Equal(ClaimVerdict.Disagrees, higher.Verdict);

        // Unequal counts and spreads: sqrt(s_E^2/n_E + s_A^2/n_A) with s_E^2 = 1 (n 3), s_A^2 = 8 (n 2, values 0 and 4).
        var welch = Wider([1, 2, 3], [0, 4], FlatterWhen.Higher);
        Assert.Equal(Math.Sqrt(1.0 / 3 + 8.0 / 2), welch.StandardError, 12);
        Assert.Equal(ClaimVerdict.Inconclusive, welch.Verdict);
    }

    [Fact]
    public void WiderNeedsMoreThanTwoStandardErrors()
    {
        // Difference 0.5 over SE sqrt(2/3): 0.61 standard errors.
        Assert.Equal(ClaimVerdict.Inconclusive, Wider([1, 2, 3], [1.5, 2.5, 3.5], FlatterWhen.Lower).Verdict);
        // Just above and just below 2 SE (SE = sqrt(2/3) = 0.8165): a shift of 1.7 is 2.08 SE, 1.6 is 1.96 SE.
        Assert.Equal(ClaimVerdict.Agrees, Wider([2.7, 3.7, 4.7], [1, 2, 3], FlatterWhen.Higher).Verdict);
        Assert.Equal(ClaimVerdict.Inconclusive, Wider([2.6, 3.6, 4.6], [1, 2, 3], FlatterWhen.Higher).Verdict);
    }

    [Fact]
    public void WiderIsNotTestableWithFewerThanTwoSeedsInAnArm()
    {
        var one = Wider([1], [4, 5, 6], FlatterWhen.Lower);
        Assert.Equal(ClaimVerdict.NotTestable, one.Verdict);
        Assert.Equal(1, one.EntropyMean);
        Assert.True(double.IsNaN(one.Z));
        // Non-finite values are left out before counting.
        var nan = Wider([1, double.NaN, double.PositiveInfinity], [4, 5], FlatterWhen.Lower);
        Assert.Equal((1, ClaimVerdict.NotTestable), (nan.EntropyCount, nan.Verdict));
        Assert.Equal(ClaimVerdict.NotTestable, Wider([], [], FlatterWhen.Lower).Verdict);
    }

    [Fact]
    public void WiderWithoutSpreadDecidesOnTheSignAlone()
    {
        var v = Wider([1, 1], [2, 2], FlatterWhen.Lower);
        Assert.Equal((double.PositiveInfinity, ClaimVerdict.Agrees), (v.Z, v.Verdict));
        Assert.Equal(ClaimVerdict.Inconclusive, Wider([2, 2], [2, 2], FlatterWhen.Lower).Verdict);
    }

    [Fact]
    public void RanksAverageTies()
    {
        Assert.Equal([2, 3.5, 3.5, 5, 1], Ranks([10, 20, 20, 30, 5]));
        Assert.Equal([2, 2, 2], Ranks([7, 7, 7]));
    }

    [Fact]
    public void SpearmanIsPearsonOnAverageRanks()
    {
        // Ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: Sxy = 4.5, Sxx = 4.5, Syy = 5.
        Assert.Equal(4.5 / Math.Sqrt(4.5 * 5), Spearman([1, 2, 2, 3], [1, 3, 2, 4]), 12);
        // Monotone transforms do not move it; reversal flips its sign.
        Assert.Equal(1, Spearman([1, 2, 3, 4], [1, 8, 27, 64]), 12);
        Assert.Equal(-1, Spearman([1, 2, 3, 4], [10, 9, 1, 0]), 12);
        Assert.True(double.IsNaN(Spearman([1, 1, 1], [1, 2, 3])));
        Assert.Throws<ArgumentException>(() => Spearman([1, 2], [1, 2, 3]));
    }

    /// <summary>Every ordering of <paramref name="items"/> by recursion (independent of the Heap's algorithm under test).</summary>
    static IEnumerable<double[]> Permutations(double[] items)
    {
        if (items.Length <= 1)
        {
            yield return items;
            yield break;
        }
        for (var i = 0; i < items.Length; i++)
        {
            var rest = items.Where((_, k) => k != i).ToArray();
            foreach (var tail in Permutations(rest)) yield return [items[i], .. tail];
        }
    }

    /// <summary>Spearman's rho without ties by the textbook formula 1 - 6 sum d^2 / (n (n^2 - 1)).</summary>
    static double TextbookRho(double[] x, double[] y)
    {
        var rx = x.Select(v => x.Count(w => w < v) + 1.0).ToArray();
        var ry = y.Select(v => y.Count(w => w < v) + 1.0).ToArray();
        var n = x.Length;
        return 1 - 6 * rx.Zip(ry, (a, b) => (a - b) * (a - b)).Sum() / (n * (n * n - 1.0));
    }

    [Fact]
    public void ExactPermutationPMatchesABruteForceCount()
    {
        double[] x = [0.3, 0.1, 0.5, 0.2, 0.6, 0.4];
        double[] y = [2.0, 1.5, 3.0, 1.0, 2.5, 4.0];
        var observed = Math.Abs(TextbookRho(x, y));
        var all = Permutations(y).ToList();
        Assert.Equal(720, all.Count);
        var extreme = all.Count(p => Math.Abs(TextbookRho(x, p)) >= observed - 1e-12);
        Assert.Equal(extreme / 720.0, ExactPermutationP(x, y), 12);
        Assert.Equal(observed, Math.Abs(Spearman(x, y)), 12);

        // A perfect ordering of six: only it and its reverse reach |rho| = 1.
        Assert.Equal(2 / 720.0, ExactPermutationP([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]), 12);
    }

    [Fact]
    public void ExactPermutationPWithTiesCountsOrderingsOfTheTiedRanks()
    {
        double[] x = [1, 2, 2, 3, 4];
        double[] y = [5, 3, 4, 1, 1];
        var rx = Ranks(x);
        var ry = Ranks(y);
        double Pearson(double[] a, double[] b)
        {
            double ma = a.Average(), mb = b.Average();
            return a.Zip(b, (u, v) => (u - ma) * (v - mb)).Sum() / Math.Sqrt(a.Sum(u => (u - ma) * (u - ma)) * b.Sum(v => (v - mb) * (v - mb)));
        }
        var observed = Math.Abs(Pearson(rx, ry));
        var all = Permutations(ry).ToList();
        Assert.Equal(120, all.Count);
        var extreme = all.Count(p => Math.Abs(Pearson(rx, p)) >= observed - 1e-12);
        Assert.Equal(extreme / 120.0, ExactPermutationP(x, y), 12);
    }

    [Fact]
    public void WidthAndErrorAgreesWhenTheFlatterRunsHaveTheLowerErrors()
    {
        double[] errors = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5];
        // A sharpness (lower = flatter) that rises with the error: flatter runs err less.
        var sharpness = WidthAndError(errors.Select((e, i) => (Value: 10.0 + i, TestError: e)).ToList(), FlatterWhen.Lower);
        Assert.Equal((6, -1.0, ClaimVerdict.Agrees, true), (sharpness.Count, sharpness.Rho, sharpness.Verdict, sharpness.Exact));
        Assert.Equal(2 / 720.0, sharpness.P, 12);
        // A local entropy (higher = flatter) that rises with the error: flatter runs err more.
        var entropy = WidthAndError(errors.Select((e, i) => (Value: 10.0 + i, TestError: e)).ToList(), FlatterWhen.Higher);
        Assert.Equal((1.0, ClaimVerdict.Disagrees), (entropy.Rho, entropy.Verdict));
        // Weak correlation: inconclusive.
        var weak = WidthAndError([(1, 1.0), (3, 1.1), (2, 1.2), (5, 1.3), (4, 1.4), (6, 1.0)], FlatterWhen.Higher);
        Assert.Equal(ClaimVerdict.Inconclusive, weak.Verdict);
        Assert.True(weak.P >= Alpha);
    }

    [Fact]
    public void WidthAndErrorIsNotTestableWithFewRunsOrNoSpread()
    {
        Assert.Equal(ClaimVerdict.NotTestable, WidthAndError([(1, 1.0), (2, 2.0)], FlatterWhen.Lower).Verdict);
        Assert.Equal(ClaimVerdict.NotTestable, WidthAndError([(1, 1.0), (1, 2.0), (1, 3.0)], FlatterWhen.Lower).Verdict);
        var withNaN = WidthAndError([(1, 1.0), (double.NaN, 2.0), (2, 3.0), (3, double.NaN)], FlatterWhen.Lower);
        Assert.Equal((2, ClaimVerdict.NotTestable), (withNaN.Count, withNaN.Verdict));
    }

    [Fact]
    public void ManyRunsFallBackToASeededMonteCarloPValue()
    {
        var runs = Enumerable.Range(0, 12).Select(i => (Value: (double)i, TestError: 12.0 - i)).ToList();
        var v = WidthAndError(runs, FlatterWhen.Higher);
        Assert.False(v.Exact);
        Assert.Equal(-1, v.Rho, 12);
        Assert.True(v.P < 1e-4, $"p = {v.P}");
        Assert.Equal(ClaimVerdict.Agrees, v.Verdict);
        Assert.Throws<ArgumentException>(() => ExactPermutationP(runs.Select(r => r.Value).ToArray(), runs.Select(r => r.TestError).ToArray()));
    }

    [Fact]
    public void OnlyFlatnessMeasuresHaveADirection()
    {
        Assert.Equal((-2.0, 2.0), (Oriented(2, FlatterWhen.Lower), Oriented(2, FlatterWhen.Higher)));
        Assert.Throws<ArgumentException>(() => Oriented(2, FlatterWhen.NotJudged));
    }

    [Fact]
    public void VerdictsSkipValuesWithoutAFlatterDirectionAndUnmeasuredRuns()
    {
        WideValleyRun Run(bool entropy, long seed, double error, double trace, string status = WideValleyRun.Measured) =>
            new("mnistfc", entropy ? "entropy-sgd" : "adam", entropy ? "Entropy-SGD" : "Adam", entropy, seed, $"x/seed-{seed}", status, error, "id",
                status == WideValleyRun.Measured
                    ? [new("loss-and-gap", ReluRescaling.Invariant, new("test_loss", "test loss", error, null, FlatterWhen.NotJudged)),
                       new("hessian-trace", ReluRescaling.NotInvariant, new("hessian_trace", "Hessian trace", trace, 0.1, FlatterWhen.Lower))]
                    : [], 0, 2, null);
        var runs = new[]
        {
            Run(true, 1, 1.0, 10), Run(true, 2, 1.1, 11), Run(true, 3, 1.2, 12),
            Run(false, 1, 1.3, 20), Run(false, 2, 1.4, 21), Run(false, 3, 1.5, 22),
            Run(false, 4, 9.9, 0, "pending"),
        };
        var verdict = Assert.Single(WideValleys.Verdicts(runs));
        Assert.Equal(("hessian-trace", "hessian_trace", ReluRescaling.NotInvariant), (verdict.Measure, verdict.Name, verdict.Rescaling));
        Assert.Equal((3, 3, ClaimVerdict.Agrees), (verdict.Wider.EntropyCount, verdict.Wider.AdamCount, verdict.Wider.Verdict));
        Assert.Equal((6, -1.0, ClaimVerdict.Agrees), (verdict.Correlation.Count, verdict.Correlation.Rho, verdict.Correlation.Verdict));
    }
}
