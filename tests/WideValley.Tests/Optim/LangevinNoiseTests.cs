using System.Runtime.Intrinsics;
using MathNet.Numerics.Distributions;
using WideValley.Optim;

namespace WideValley.Tests.Optim;

/// <summary>The fused kernel's counter-based Gaussian noise and its vectorised logarithm.</summary>
public class LangevinNoiseTests
{
    [Fact]
    public void VectorisedLogIsAccurateOverTheUniformsItSees()
    {
        // The uniforms lie in [2^-25, 1): 24-bit values plus half a step.
        double worst = 0;
        for (var k = 0; k < 1 << 24; k += 3)
        {
            var x = (k + 0.5f) / 16777216f;
            var got = CounterNormalNoise.Log(Vector256.Create(x)).GetElement(0);
            var exact = Math.Log(x);
            worst = Math.Max(worst, Math.Abs(got - exact) / Math.Max(Math.Abs(exact), 1e-3));
        }
        Assert.True(worst < 3e-7, $"worst relative error {worst:E2}");
        foreach (var x in new[] { 1e-30f, 0.5f, 1.5f, 2f, 1000f, float.MaxValue })
            Assert.Equal(Math.Log(x), CounterNormalNoise.Log(Vector256.Create(x)).GetElement(0), Math.Abs(Math.Log(x)) * 3e-7 + 1e-7);
    }

    [Fact]
    public void VectorisedSinCosOfTurnsIsAccurateOverEveryQuadrant()
    {
        // The angles are 2 pi u for the 24-bit uniforms u = k / 2^24; every quadrant and its boundaries are covered.
        double worst = 0;
        for (var k = 0; k < 1 << 24; k += 5)
        {
            var u = k / 16777216f;
            var (sin, cos) = CounterNormalNoise.SinCosOfTurns(Vector256.Create(u));
            var angle = 2 * Math.PI * u;
            worst = Math.Max(worst, Math.Max(Math.Abs(sin.GetElement(0) - Math.Sin(angle)), Math.Abs(cos.GetElement(0) - Math.Cos(angle))));
        }
        Assert.True(worst < 3e-7, $"worst absolute error {worst:E2}");
        foreach (var u in new[] { 0f, 0.125f, 0.25f, 0.375f, 0.5f, 0.625f, 0.75f, 0.875f, 1 - 1f / 16777216 })
        {
            var (sin, cos) = CounterNormalNoise.SinCosOfTurns(Vector256.Create(u));
            Assert.Equal(Math.Sin(2 * Math.PI * u), sin.GetElement(0), 3e-7);
            Assert.Equal(Math.Cos(2 * Math.PI * u), cos.GetElement(0), 3e-7);
        }
    }

    const int N = 1 << 20;

    static float[] Normals(ulong key, long step, long start = 0, long count = N)
    {
        var z = new float[count];
        CounterNormalNoise.FillBlocks(key, N / 16, z, start, start + count, step);
        return z;
    }

    [Fact]
    public void NoiseIsStandardNormal()
    {
        var z = Normals(12345, 7);
        double mean = z.Average(v => (double)v);
        double variance = z.Sum(v => (v - mean) * (v - mean)) / (N - 1);
        double kurtosis = z.Sum(v => Math.Pow(v - mean, 4)) / N / (variance * variance);
        Assert.InRange(mean, -5 / Math.Sqrt(N), 5 / Math.Sqrt(N));
        Assert.InRange(variance, 1 - 5 * Math.Sqrt(2.0 / N), 1 + 5 * Math.Sqrt(2.0 / N));
        Assert.InRange(kurtosis, 3 - 5 * Math.Sqrt(24.0 / N), 3 + 5 * Math.Sqrt(24.0 / N));
        // Kolmogorov-Smirnov against N(0, 1): the 0.1% critical value is 1.95 / sqrt(n).
        var sorted = z.Select(v => (double)v).Order().ToArray();
        double d = 0;
        for (var i = 0; i < N; i++)
        {
            var cdf = Normal.CDF(0, 1, sorted[i]);
            d = Math.Max(d, Math.Max((i + 1.0) / N - cdf, cdf - (double)i / N));
        }
        Assert.True(d < 1.95 / Math.Sqrt(N), $"KS distance {d:E3}");
    }

    [Fact]
    public void NoiseIsUncorrelatedAcrossElementsStepsAndSeeds()
    {
        var a = Normals(12345, 7);
        var nextStep = Normals(12345, 8);
        var otherSeed = Normals(54321, 7);
        static double Correlation(float[] x, float[] y, int lag = 0)
        {
            double s = 0;
            for (var i = 0; i + lag < x.Length; i++) s += (double)x[i] * y[i + lag];
            return s / (x.Length - lag);
        }
        var bound = 5 / Math.Sqrt(N);
        foreach (var lag in new[] { 1, 8, 16 })   // 8: the cosine/sine partners of Box-Muller
            Assert.InRange(Correlation(a, a, lag), -bound, bound);
        Assert.InRange(Correlation(a, nextStep), -bound, bound);
        Assert.InRange(Correlation(a, otherSeed), -bound, bound);
        // Box-Muller partners are uncorrelated but their squares sum to an exponential: check E[z_j^2 z_(j+8)^2] = 1.
        double products = 0;
        for (var b = 0; b < N; b += 16)
            for (var j = 0; j < 8; j++) products += (double)a[b + j] * a[b + j] * a[b + j + 8] * a[b + j + 8];
        Assert.InRange(products / (N / 2), 1 - 10 * Math.Sqrt(8.0 / N), 1 + 10 * Math.Sqrt(8.0 / N));
    }

    [Fact]
    public void AnElementsNoiseDoesNotDependOnHowTheWorkIsSplit()
    {
        var whole = Normals(99, 3);
        var tail = Normals(99, 3, start: 16 * 1000, count: N - 16 * 1000);
        Assert.Equal(whole[(16 * 1000)..], tail);
    }

    [Fact]
    public void FourBlocksAtATimeGiveTheSameValuesAsOneBlockAtATime()
    {
        // Whole range: the four-block path (and the one-block tail: 16 * 1001 is not a multiple of 64).
        const int count = 16 * 1001;
        var whole = Normals(4242, 5, start: 16 * 3, count: count);
        var single = new float[count];
        for (var b = 0; b < count; b += 16)
            CounterNormalNoise.FillBlocks(4242, N / 16, single.AsSpan(b, 16), 16 * 3 + b, 16 * 3 + b + 16, 5);
        Assert.Equal(whole, single);
    }

    [Fact]
    public void NoiseFollowsTheDocumentedCounterLayout()
    {
        // A scalar float64 transcription of the class remarks: element 16 b + j (cosine) and 16 b + 8 + j (sine) of
        // draw n come from SplitMix64 at position (n B + b) 8 + j of the stream keyed by the seed.
        const long seed = 2017, draw = 3;
        var key = CounterNormalNoise.KeyOf(seed);
        const long blocksPerDraw = N / 16;
        var z = Normals(key, draw);
        for (var e = 0; e < N; e += 997)
        {
            var block = (ulong)(draw * blocksPerDraw + e / 16);
            var j = (ulong)(e % 16 % 8);
            var bits = SplitMix(unchecked(key + (block * 8 + j) * 0x9E3779B97F4A7C15UL));
            var u1 = ((bits & 0xFFFFFFFF) >> 8) / 16777216.0 + 0.5 / 16777216.0;
            var u2 = (bits >> 40) / 16777216.0;
            var r = Math.Sqrt(-2 * Math.Log(u1));
            var expected = e % 16 < 8 ? r * Math.Cos(2 * Math.PI * u2) : r * Math.Sin(2 * Math.PI * u2);
            Assert.True(Math.Abs(z[e] - expected) <= 2e-6 * Math.Max(1, Math.Abs(expected)),
                $"element {e}: {z[e]} against the layout's {expected}");
        }
    }

    static ulong SplitMix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
