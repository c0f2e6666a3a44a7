using WideValley.Connectivity;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using static WideValley.Tests.Connectivity.ConnectivityToys;

namespace WideValley.Tests.Connectivity;

public sealed class CurveTrainingTests
{
    sealed class Callback<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    static readonly double[] A = [0, 0, 0];
    static readonly double[] B = [2, 0, 0];
    static readonly double[] C = [1, 1.5, 0.5];

    /// <summary>γ(s) = (1−s)²A + 2s(1−s)C + s²B, at s = k/n, k = 0..n, as rows.</summary>
    static Tensor BezierSamples(int n)
    {
        var rows = new double[(n + 1) * 3];
        for (var k = 0; k <= n; k++)
        {
            var s = (double)k / n;
            for (var d = 0; d < 3; d++)
                rows[k * 3 + d] = (1 - s) * (1 - s) * A[d] + 2 * s * (1 - s) * C[d] + s * s * B[d];
        }
        return tensor(rows, [n + 1, 3], ScalarType.Float64);
    }

    /// <summary>f(w) = squared distance to the quadratic Bézier curve with control points A, C, B (over a grid of 4,000 steps in s, which contains every t = k/40).</summary>
    static FunctionProblem BezierValley()
    {
        var samples = BezierSamples(4000);
        return new FunctionProblem(w => samples.sub(w.unsqueeze(0)).square().sum(1).min(), 3);
    }

    /// <summary>Squared distance from w to the segment [p, q], closed form.</summary>
    static Tensor SegmentDistance(Tensor w, Tensor p, Tensor q)
    {
        var direction = q.sub(p);
        var along = w.sub(p).dot(direction).div(direction.dot(direction)).clamp(0.0, 1.0);
        return w.sub(p.add(direction.mul(along))).square().sum();
    }

    /// <summary>f(w) = squared distance to the polygonal valley A → C → B.</summary>
    static FunctionProblem PolyChainValley()
    {
        var (a, b, c) = (Vector(A), Vector(B), Vector(C));
        return new FunctionProblem(w => minimum(SegmentDistance(w, a, c), SegmentDistance(w, c, b)), 3);
    }

    static ConnectivityCurve ThroughC(CurveKind kind)
    {
        using var a = Vector(A);
        using var b = Vector(B);
        using var c = Vector(C);
        using var middles = c.unsqueeze(0);
        return new ConnectivityCurve(kind, a, b, middles);
    }

    [Theory]
    [InlineData(CurveKind.Bezier, 1)]
    [InlineData(CurveKind.Bezier, 3)]
    [InlineData(CurveKind.PolyChain, 1)]
    [InlineData(CurveKind.PolyChain, 4)]
    public void AStraightCurveIsTheSegmentAtConstantSpeed(CurveKind kind, int bends)
    {
        using var a = Vector(0.5, -1, 2);
        using var b = Vector(1.5, 3, -2);
        using var curve = ConnectivityCurve.Straight(kind, a, b, bends);
        foreach (var t in new[] { 0, 0.1, 0.25, 0.5, 0.77, 1 })
        {
            var c = curve.Coefficients(t);
            Assert.Equal(1.0, c.Sum(), 1e-14);
            Assert.All(c, x => Assert.True(x >= 0));
            using var point = curve.Point(t);
            using var line = ParameterPath.Interpolate(a, b, t);
            Assert.True(ParameterPath.Distance(point, line, null) < 1e-14, $"t = {t}");
        }
        Assert.Equal(1.0, curve.Length(1000) / ParameterPath.Distance(a, b, null), 1e-12);
    }

    [Fact]
    public void CoefficientsAreBernsteinAndHatFunctions()
    {
        // Cubic Bézier (two bends) at t = 0.3: (0.7³, 3·0.3·0.7², 3·0.3²·0.7, 0.3³).
        var bezier = ConnectivityCurve.Coefficients(CurveKind.Bezier, 4, 0.3);
        Assert.Equal([0.343, 0.441, 0.189, 0.027], bezier.Select(x => Math.Round(x, 12)));
        // Polygonal chain of 4 points at t = 0.5: halfway between knots 1 (t = 1/3) and 2 (t = 2/3).
        var chain = ConnectivityCurve.Coefficients(CurveKind.PolyChain, 4, 0.5);
        Assert.Equal([0, 0.5, 0.5, 0], chain.Select(x => Math.Round(x, 12)));
        Assert.Equal([0, 1, 0, 0], ConnectivityCurve.Coefficients(CurveKind.PolyChain, 4, 1.0 / 3).Select(x => Math.Round(x, 12)));
    }

    [Fact]
    public void LengthsMatchClosedFormsAndAFloat64Reference()
    {
        using var chain = ThroughC(CurveKind.PolyChain);
        var expected = Math.Sqrt(1 + 2.25 + 0.25) * 2;
        Assert.Equal(expected, chain.Length(1000), 1e-12);

        // Quadratic Bézier: speed |φ'(t)| = |2(A − 2C + B)t + 2(C − A)|, integrated by Simpson's rule on 20,000
        // intervals in float64 (error far below the 1,000-step polyline's, which is O(h²) ≈ 1e-7 relative).
        double Speed(double t) => Math.Sqrt(Enumerable.Range(0, 3).Sum(d =>
        {
            var v = 2 * (A[d] - 2 * C[d] + B[d]) * t + 2 * (C[d] - A[d]);
            return v * v;
        }));
        const int n = 20_000;
        var h = 1.0 / n;
        var simpson = Speed(0) + Speed(1);
        for (var k = 1; k < n; k++) simpson += (k % 2 == 1 ? 4 : 2) * Speed(k * h);
        simpson *= h / 3;
        using var bezier = ThroughC(CurveKind.Bezier);
        Assert.True(Math.Abs(bezier.Length(1000) / simpson - 1) < 1e-6, $"{bezier.Length(1000)} against {simpson}");
        Assert.True(bezier.Length(1000) < simpson);
    }

    [Theory]
    [InlineData(CurveKind.Bezier)]
    [InlineData(CurveKind.PolyChain)]
    public void ACurveAlongTheValleyHasZeroBarrierAndTrainingFindsIt(CurveKind kind)
    {
        var problem = kind == CurveKind.Bezier ? BezierValley() : PolyChainValley();
        using var exact = ThroughC(kind);
        var onValley = CurveTraining.Evaluate(problem, exact);
        Assert.True(Math.Abs(onValley.Barrier.Loss) < 1e-20, $"barrier {onValley.Barrier.Loss}");
        Assert.Null(onValley.Barrier.ErrorPercent);
        Assert.Equal(41, onValley.Measures.Count);

        using var a = Vector(A);
        using var b = Vector(B);
        using var straight = ConnectivityCurve.Straight(kind, a, b, 1);
        var line = CurveTraining.Evaluate(problem, straight);
        Assert.True(line.Barrier.Loss > 0.3, $"straight-line barrier {line.Barrier.Loss}");

        using var trained = CurveTraining.Train(problem, a, b, new CurveTrainingOptions
        {
            Kind = kind, Steps = 3000, LearningRate = 0.05, Momentum = 0.9, Seed = 7,
        });
        // Within 1e-6 of zero (the straight line's barrier is above 0.3; measured: 5e-9 for the Bézier, 1e-31 for the
        // chain), and the middle point within 1e-3 of C.
        Assert.True(trained.Evaluation.Barrier.Loss < 1e-6, $"trained barrier {trained.Evaluation.Barrier.Loss}");
        using var c = Vector(C);
        Assert.True(ParameterPath.Distance(trained.Curve.Middles[0], c, null) < 1e-3, $"middle {string.Join(", ", Values(trained.Curve.Middles))}");
        Assert.Equal(3000, trained.Losses.Count);
        Assert.Equal(onValley.Length, trained.Evaluation.Length, 1e-3 * onValley.Length);
    }

    static CurveTrainingOptions Resumable(string path) => new()
    {
        Kind = CurveKind.PolyChain, Bends = 2, Steps = 500, LearningRate = 0.05, Seed = 3, CheckpointEvery = 64, CheckpointPath = path,
    };

    [Fact]
    public void AResumedCurveEqualsTheUninterruptedOne()
    {
        using var dir = new TempDir();
        using var a = Vector(A);
        using var b = Vector(B);
        using var whole = CurveTraining.Train(PolyChainValley(), a, b, Resumable(dir.File("whole.curve")));

        var path = dir.File("interrupted.curve");
        using var cancel = new CancellationTokenSource();
        var progress = new Callback<CurveTrainingProgress>(p => { if (p.Step == 173) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() =>
            CurveTraining.Train(PolyChainValley(), a, b, Resumable(path) with { Progress = progress, Cancellation = cancel.Token }));
        Assert.Empty(dir.Leftovers());

        var resumedSteps = new List<long>();
        using var resumed = CurveTraining.Train(PolyChainValley(), a, b, Resumable(path) with
        {
            Progress = new Callback<CurveTrainingProgress>(p => resumedSteps.Add(p.Step)),
        });
        Assert.Equal(174, resumedSteps[0]);
        Assert.True(SameValues(whole.Curve.Middles, resumed.Curve.Middles));
        Assert.Equal(whole.Losses, resumed.Losses);
        Assert.Equal(whole.Evaluation.Measures, resumed.Evaluation.Measures);
        Assert.Equal(whole.Evaluation.Barrier, resumed.Evaluation.Barrier);
        Assert.Equal(whole.Evaluation.Length, resumed.Evaluation.Length);
    }

    [Fact]
    public void DamagedOrMismatchedCurveCheckpointsAreRefusedAndLeftUntouched()
    {
        using var dir = new TempDir();
        var path = dir.File("curve.ckpt");
        using var a = Vector(A);
        using var b = Vector(B);
        CurveTraining.Train(PolyChainValley(), a, b, Resumable(path) with { Steps = 100 }).Dispose();
        var bytes = File.ReadAllBytes(path);

        var mismatch = Assert.Throws<ConnectivityCheckpointMismatchException>(() =>
            CurveTraining.Train(PolyChainValley(), a, b, Resumable(path) with { Steps = 100, LearningRate = 0.1 }));
        Assert.Equal("LearningRate", mismatch.Setting);
        Assert.Equal(bytes, File.ReadAllBytes(path));

        var damaged = bytes.ToArray();
        damaged[^20] ^= 0x01;
        File.WriteAllBytes(path, damaged);
        var error = Assert.Throws<CheckpointDamagedException>(() => CurveTraining.Train(PolyChainValley(), a, b, Resumable(path) with { Steps = 100 }));
        Assert.Contains(path, error.Message);
        Assert.Contains("checksum", error.Message);
        Assert.Equal(damaged, File.ReadAllBytes(path));

        // A string-sampling checkpoint is not a curve checkpoint.
        var dssPath = dir.File("chain.dss");
        using (var ra = Vector(1, 0))
        using (var rb = Vector(0, 1))
            DynamicStringSampling.Run(Ring(), ra, rb, new StringSamplingOptions { Level = 0.01, CheckpointPath = dssPath }).Dispose();
        var kind = Assert.Throws<CheckpointDamagedException>(() => CurveTraining.Train(PolyChainValley(), a, b, Resumable(dssPath)));
        Assert.Contains("not a curve-training checkpoint", kind.Message);
    }

    public static TheoryData<string, CurveTrainingOptions> BadOptions() => new()
    {
        { "Kind", new() { Kind = (CurveKind)5 } },
        { "Bends", new() { Bends = 0 } },
        { "Steps", new() { Steps = -1 } },
        { "LearningRate", new() { LearningRate = 0 } },
        { "LearningRate", new() { LearningRate = double.NaN } },
        { "Momentum", new() { Momentum = 1 } },
        { "Momentum", new() { Momentum = -0.1 } },
        { "WeightDecay", new() { WeightDecay = -1e-4 } },
        { "EvaluationPoints", new() { EvaluationPoints = 1 } },
        { "LengthSteps", new() { LengthSteps = 0 } },
        { "CheckpointEvery", new() { CheckpointEvery = 0 } },
        { "CheckpointPath", new() { CheckpointPath = "" } },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void EveryBadCurveOptionIsRefusedByName(string name, CurveTrainingOptions options)
    {
        using var a = Vector(A);
        using var b = Vector(B);
        var error = Assert.Throws<ArgumentException>(() => CurveTraining.Train(PolyChainValley(), a, b, options));
        Assert.Equal(name, error.ParamName);
        Assert.StartsWith(name, error.Message);
    }

    [Fact]
    public void TheTStreamIsAPureUniformFunctionOfSeedAndStep()
    {
        Assert.Equal(CurveTraining.DrawT(11, 12345), CurveTraining.DrawT(11, 12345));
        Assert.NotEqual(CurveTraining.DrawT(11, 12345), CurveTraining.DrawT(12, 12345));
        const int n = 20_000;
        var draws = Enumerable.Range(0, n).Select(s => CurveTraining.DrawT(5, s)).ToArray();
        Assert.All(draws, t => Assert.True(t is >= 0 and < 1));
        // Mean 1/2 and variance 1/12 within four standard errors.
        Assert.True(Math.Abs(draws.Average() - 0.5) < 4 * Math.Sqrt(1.0 / 12 / n));
        var fourthBelowQuarter = draws.Count(t => t < 0.25) / (double)n;
        Assert.True(Math.Abs(fourthBelowQuarter - 0.25) < 4 * Math.Sqrt(0.25 * 0.75 / n));
    }
}
