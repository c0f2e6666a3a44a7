using WideValley.Connectivity;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using static WideValley.Tests.Connectivity.ConnectivityToys;

namespace WideValley.Tests.Connectivity;

public sealed class DynamicStringSamplingTests
{
    sealed class Callback<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    [Fact]
    public void ConvexBowlConnectsWithTheUntouchedMidpointAndLengthOne()
    {
        var problem = Bowl([0.3, -0.2, 0.1, 0.0]);
        using var a = Vector(0.5, -0.2, 0.1, 0.1);
        using var b = Vector(0.3, 0.1, 0.0, -0.1);
        var options = new StringSamplingOptions { Level = 1.0 };
        Assert.True(problem.Value(a) < options.BeadTarget && problem.Value(b) < options.BeadTarget);

        using var result = DynamicStringSampling.Run(problem, a, b, options);

        Assert.True(result.Connected);
        Assert.Equal(3, result.BeadCount);
        Assert.Equal(1, result.Depth);
        Assert.Equal(0, result.Beads[1].TrainingSteps);
        Assert.Equal(0, problem.TrainingSteps);
        Assert.True(result.Beads[1].Trained && result.Beads[1].ReachedTarget);
        // The midpoint is ½(A + B) as computed, untouched by training.
        using var half = a.mul(0.5).add(b.mul(0.5));
        Assert.True(SameValues(result.Chain[1], half));
        Assert.True(SameValues(result.Chain[0], a) && SameValues(result.Chain[2], b));
        Assert.Equal(1.0, result.Lengths.AllParameters, 1e-12);
        Assert.Equal(1.0, result.Lengths.WeightsOnly, 1e-12);
        // Measured: the two endpoints, the bead (by its training), and G − 1 interior grid points per segment; the
        // grid's t = 0 reuses the bead's measure.
        Assert.Equal(2 + 1 + 2 * (options.GridPoints - 1), problem.MeasureCount);
        // The maximum along the path is the largest of the endpoints and the midpoint... on a convex bowl, the grid's
        // maximum of each segment is at t = 0 or at its last grid point; compare with direct evaluations.
        var expected = Enumerable.Range(0, 2).SelectMany(s => Enumerable.Range(0, options.GridPoints).Select(k =>
        {
            using var p = ParameterPath.Interpolate(result.Chain[s], result.Chain[s + 1], (double)k / options.GridPoints);
            return problem.Value(p);
        })).Max();
        Assert.Equal(expected, result.MaxAlongPath, 1e-15);
    }

    [Fact]
    public void RingValleyBendsTowardsTheQuarterArcAsTheLevelFalls()
    {
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var levels = new[] { 1e-1, 1e-2, 1e-3, 1e-4, 1e-5 };
        var lengths = new List<double>();
        var beads = new List<int>();
        foreach (var level in levels)
        {
            var problem = Ring();
            using var result = DynamicStringSampling.Run(problem, a, b, new StringSamplingOptions { Level = level });
            Assert.True(result.Connected, $"L0 = {level}: not connected");
            Assert.True(result.MaxAlongPath < 1.1 * level);
            lengths.Add(result.Lengths.AllParameters);
            beads.Add(result.BeadCount);
            // The chain bends onto the ring: every trained bead lies on the valley floor within √(α·L0), far from the
            // straight line's closest point to the origin (radius 1/√2).
            foreach (var bead in result.Chain.Skip(1).SkipLast(1))
                Assert.True(Math.Abs(ParameterPath.Distance(bead, zeros(2, dtype: ScalarType.Float64), null) - 1) <= Math.Sqrt(0.98 * level) + 1e-12);
        }
        // At L0 = 0.1 the straight line itself stays below m·L0 ((1 − 1/√2)² = 0.086): one bead, length 1.
        Assert.Equal(3, beads[0]);
        Assert.Equal(1.0, lengths[0], 1e-12);
        for (var i = 1; i < levels.Length; i++)
        {
            Assert.True(lengths[i] > lengths[i - 1], $"length at L0 = {levels[i]} ({lengths[i]}) not above the one at {levels[i - 1]} ({lengths[i - 1]})");
            Assert.True(beads[i] >= beads[i - 1], $"beads at L0 = {levels[i]}: {beads[i]} < {beads[i - 1]}");
        }
        Assert.True(beads[^1] > 2 * beads[1], $"bead counts {string.Join(", ", beads)}");
        // The chords of beads at radius ≥ 1 − √(α·L0) approach the quarter arc from below: within 1% at L0 = 1e-5.
        Assert.True(lengths[^1] < QuarterArcRatio);
        Assert.True(Math.Abs(lengths[^1] / QuarterArcRatio - 1) < 0.01, $"normalised length {lengths[^1]} against the arc's {QuarterArcRatio}");
    }

    /// <summary>A problem that says it trains beads together, and counts how it was asked to.</summary>
    sealed class Batching(FunctionProblem inner) : IConnectivityProblem
    {
        public List<int> BatchSizes { get; } = [];
        public int SingleCalls { get; private set; }
        public long Dimension => inner.Dimension;
        public ScalarType Dtype => inner.Dtype;
        public Device Device => inner.Device;
        public Tensor? WeightMask => inner.WeightMask;
        public bool TrainsBeadsTogether => true;
        public PointMeasure Measure(Tensor point) => inner.Measure(point);
        public BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default)
        {
            SingleCalls++;
            return inner.TrainBead(start, metric, target, cancellation);
        }
        public IReadOnlyList<BeadTraining> TrainBeads(IReadOnlyList<Tensor> starts, LevelMetric metric, double target, CancellationToken cancellation = default)
        {
            BatchSizes.Add(starts.Count);
            return starts.Select(s => inner.TrainBead(s, metric, target, cancellation)).ToArray();
        }
        public (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point) => inner.StochasticLossAndGradient(point);
    }

    [Fact]
    public void AProblemThatTrainsBeadsTogetherGetsOneCallPerDepthAndTheSameChain()
    {
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var options = new StringSamplingOptions { Level = 1e-3 };
        using var oneByOne = DynamicStringSampling.Run(Ring(), a, b, options);
        var batching = new Batching(Ring());
        using var together = DynamicStringSampling.Run(batching, a, b, options);
        Assert.Equal(0, batching.SingleCalls);
        Assert.Equal(together.Depth, batching.BatchSizes.Count);
        Assert.Equal(together.BeadCount - 2, batching.BatchSizes.Sum());
        Assert.True(batching.BatchSizes.Max() > 1, $"batches {string.Join(", ", batching.BatchSizes)}");
        Assert.Equal(oneByOne.BeadCount, together.BeadCount);
        Assert.Equal(oneByOne.Lengths.AllParameters, together.Lengths.AllParameters, 15);
        for (var i = 0; i < oneByOne.BeadCount; i++) Assert.True(SameValues(oneByOne.Chain[i], together.Chain[i]), $"bead {i} differs");
    }

    [Fact]
    public void SwappingTwoHiddenUnitsOfThePermutationNetworkIsNotConnected()
    {
        var loss = PermutationNet.Loss();
        var training = new FunctionProblemOptions { Optimizer = BeadOptimizer.Adam, StepSize = 0.01, MaxSteps = 3000 };
        var problem = new FunctionProblem(loss, PermutationNet.Parameters, training);
        // θ: trained from a seeded perturbation of the exact solution (a generic zero-loss point, not the symmetric one).
        var generator = new Random(20170424);
        var start = PermutationNet.ExactSolution().Select(v => v + 0.3 * (generator.NextDouble() - 0.5)).ToArray();
        using var startTensor = Vector(start);
        var theta = problem.TrainBead(startTensor, LevelMetric.Loss, 1e-6, TestContext.Current.CancellationToken);
        Assert.True(theta.Reached, $"θ trained only to {theta.Measure.Loss}");
        using var thetaA = theta.Point;
        using var thetaB = Vector(PermutationNet.SwapFirstTwoUnits(Values(thetaA)));
        Assert.Equal(problem.Value(thetaA), problem.Value(thetaB), 1e-15);
        // Why no path exists below 1/6: with centred points, a zero-loss point needs H = relu(W1·X) of rank 3 (no
        // non-negative vector is orthogonal to (1,1,1)); swapping two units flips the sign of det H, so any path
        // crosses a singular H, where the mean loss is at least (3/2)·‖P_S (1,1,1)/√3‖²/3 ≥ 1/6.
        Assert.True(PermutationNet.HiddenDeterminant(thetaA) * PermutationNet.HiddenDeterminant(thetaB) < 0);

        var options = new StringSamplingOptions { Level = 0.01 };
        using var result = DynamicStringSampling.Run(problem, thetaA, thetaB, options);

        var dense = 0.0;
        for (var i = 0; i + 1 < result.BeadCount; i++)
            for (var k = 0; k <= 2000; k++)
            {
                using var p = ParameterPath.Interpolate(result.Chain[i], result.Chain[i + 1], k / 2000.0);
                dense = Math.Max(dense, problem.Value(p));
            }
        // Every continuous path crosses det H = 0, where the loss is at least 1/6: so does the final chain.
        Assert.True(dense >= 1.0 / 6, $"max along the final chain (2,000 points per segment) {dense}");
        // How DSS fails here: the first bead starts at ½(θ + θ'), where units 0 and 1 have identical weights; training
        // keeps them identical (equal gradients), so it stays singular above the level. Every later depth bisects the
        // two segments next to it; every other bead reaches the level and lies on one side of det H = 0.
        var middle = result.BeadCount / 2;
        Assert.Equal([middle], Enumerable.Range(0, result.BeadCount).Where(i => !result.Beads[i].ReachedTarget));
        Assert.True(result.Beads[middle].Measure.Loss >= 1.0 / 6);
        Assert.Equal(0, PermutationNet.HiddenDeterminant(result.Chain[middle]), 1e-12);
        Assert.Equal([middle - 1, middle], Enumerable.Range(0, result.Segments.Count).Where(i => result.Segments[i].Max >= options.AcceptBound));
        Assert.Equal(3 + 2 * (options.MaxDepth - 1), result.BeadCount);
        Assert.False(result.Connected);
        Assert.Equal(options.MaxDepth, result.Depth);
        Assert.True(result.MaxAlongPath >= options.AcceptBound);
        Assert.Contains(result.Log, e => e.Kind == StringSamplingEventKind.NotConnected);

        // The control: the same search between θ and a second solution with the same unit order connects.
        var second = problem.TrainBead(startTensor.add(0.05), LevelMetric.Loss, 1e-6, TestContext.Current.CancellationToken);
        using var thetaC = second.Point;
        Assert.True(second.Reached);
        Assert.True(PermutationNet.HiddenDeterminant(thetaA) * PermutationNet.HiddenDeterminant(thetaC) > 0);
        using var control = DynamicStringSampling.Run(problem, thetaA, thetaC, options);
        Assert.True(control.Connected);
    }

    static StringSamplingOptions ResumableOptions(string path) => new() { Level = 1e-4, CheckpointPath = path, GridPoints = 10 };

    [Fact]
    public void AResumedSearchGivesExactlyTheUninterruptedResult()
    {
        using var dir = new TempDir();
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var wholeProblem = Ring();
        using var uninterrupted = DynamicStringSampling.Run(wholeProblem, a, b, ResumableOptions(dir.File("whole.dss")));
        Assert.True(uninterrupted.BeadCount >= 9, $"{uninterrupted.BeadCount} beads");

        var path = dir.File("interrupted.dss");
        using var cancel = new CancellationTokenSource();
        var trained = 0;
        var progress = new Callback<StringSamplingProgress>(p =>
        {
            if (p.Message.Contains("trained to", StringComparison.Ordinal) && ++trained == 4) cancel.Cancel();
        });
        Assert.Throws<OperationCanceledException>(() =>
            DynamicStringSampling.Run(Ring(), a, b, ResumableOptions(path) with { Progress = progress, Cancellation = cancel.Token }));
        Assert.True(File.Exists(path));
        Assert.Empty(dir.Leftovers());

        var resumedProblem = Ring();
        using var resumed = DynamicStringSampling.Run(resumedProblem, a, b, ResumableOptions(path));
        AssertSame(uninterrupted, resumed);
        // The resumed run did only what the interrupted one had not: fewer measurements, the endpoints not again.
        Assert.True(resumedProblem.MeasureCount < wholeProblem.MeasureCount - 2, $"{resumedProblem.MeasureCount} measurements resumed, {wholeProblem.MeasureCount} whole");
        // A finished checkpoint gives the result again without any work.
        var idle = Ring();
        using var again = DynamicStringSampling.Run(idle, a, b, ResumableOptions(path));
        AssertSame(uninterrupted, again);
        Assert.Equal(0, idle.MeasureCount);
    }

    [Fact]
    public void AFloat32SearchResumesFromItsRawValues()
    {
        using var dir = new TempDir();
        FunctionProblem Ring32() => new(w => w.norm().sub(1.0).square(), 2, new FunctionProblemOptions { StepSize = 0.25 }, dtype: ScalarType.Float32);
        using var a = tensor(new float[] { 1, 0 });
        using var b = tensor(new float[] { 0, 1 });
        var options = new StringSamplingOptions { Level = 1e-3 };
        using var whole = DynamicStringSampling.Run(Ring32(), a, b, options);
        Assert.All(whole.Chain, t => Assert.Equal(ScalarType.Float32, t.dtype));

        var path = dir.File("f32.dss");
        using var cancel = new CancellationTokenSource();
        var trained = 0;
        var progress = new Callback<StringSamplingProgress>(p => { if (p.Message.Contains("trained to", StringComparison.Ordinal) && ++trained == 2) cancel.Cancel(); });
        Assert.Throws<OperationCanceledException>(() =>
            DynamicStringSampling.Run(Ring32(), a, b, options with { CheckpointPath = path, Progress = progress, Cancellation = cancel.Token }));
        using var resumed = DynamicStringSampling.Run(Ring32(), a, b, options with { CheckpointPath = path });
        AssertSame(whole, resumed);
        Assert.All(resumed.Chain, t => Assert.Equal(ScalarType.Float32, t.dtype));
        // A float64 run cannot take over a float32 checkpoint.
        using var a64 = a.to(ScalarType.Float64);
        using var b64 = b.to(ScalarType.Float64);
        var dtype = Assert.Throws<ConnectivityCheckpointMismatchException>(() => DynamicStringSampling.Run(Ring(), a64, b64, options with { CheckpointPath = path }));
        Assert.Equal("Dtype", dtype.Setting);
    }

    static void AssertSame(StringSamplingResult expected, StringSamplingResult actual)
    {
        Assert.Equal(expected.Connected, actual.Connected);
        Assert.Equal(expected.BeadCount, actual.BeadCount);
        Assert.Equal(expected.Depth, actual.Depth);
        Assert.Equal(expected.Lengths, actual.Lengths);
        Assert.Equal(expected.MaxAlongPath, actual.MaxAlongPath);
        Assert.Equal(expected.Log, actual.Log);
        Assert.Equal(expected.Beads, actual.Beads);
        Assert.Equal(expected.Segments.Count, actual.Segments.Count);
        for (var i = 0; i < expected.Segments.Count; i++)
        {
            Assert.Equal(expected.Segments[i].Max, actual.Segments[i].Max);
            Assert.Equal(expected.Segments[i].ArgmaxT, actual.Segments[i].ArgmaxT);
            Assert.Equal(expected.Segments[i].Grid, actual.Segments[i].Grid);
        }
        for (var i = 0; i < expected.BeadCount; i++) Assert.True(SameValues(expected.Chain[i], actual.Chain[i]), $"bead {i} differs");
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("truncate")]
    [InlineData("empty")]
    public void ADamagedCheckpointIsRefusedByNameAndLeftUntouched(string damage)
    {
        using var dir = new TempDir();
        var path = dir.File("chain.dss");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        DynamicStringSampling.Run(Ring(), a, b, ResumableOptions(path)).Dispose();
        var bytes = File.ReadAllBytes(path);
        var damaged = damage switch
        {
            "flip" => bytes.Select((x, i) => i == bytes.Length / 2 ? (byte)(x ^ 0x10) : x).ToArray(),
            "truncate" => bytes[..(bytes.Length - 100)],
            _ => [],
        };
        File.WriteAllBytes(path, damaged);

        var error = Assert.Throws<CheckpointDamagedException>(() => DynamicStringSampling.Run(Ring(), a, b, ResumableOptions(path)));

        Assert.Contains(path, error.Message);
        Assert.Equal(path, error.Path);
        Assert.Contains(damage == "flip" ? "checksum" : damage == "truncate" ? "truncated" : "not a string-sampling checkpoint", error.Message);
        Assert.Equal(damaged, File.ReadAllBytes(path));
    }

    [Fact]
    public void ACheckpointOfOtherOptionsOrEndpointsIsRefusedNamingTheSetting()
    {
        using var dir = new TempDir();
        var path = dir.File("chain.dss");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        using var other = Vector(-1, 0);
        DynamicStringSampling.Run(Ring(), a, b, ResumableOptions(path)).Dispose();
        var bytes = File.ReadAllBytes(path);

        var grid = Assert.Throws<ConnectivityCheckpointMismatchException>(() =>
            DynamicStringSampling.Run(Ring(), a, b, ResumableOptions(path) with { GridPoints = 20 }));
        Assert.Equal("GridPoints", grid.Setting);
        Assert.Contains("GridPoints = 10", grid.Message);
        Assert.Contains("GridPoints = 20", grid.Message);

        var alpha = Assert.Throws<ConnectivityCheckpointMismatchException>(() =>
            DynamicStringSampling.Run(Ring(), a, b, ResumableOptions(path) with { BeadTargetFactor = 0.95 }));
        Assert.Equal("BeadTargetFactor", alpha.Setting);

        var endpoint = Assert.Throws<ConnectivityCheckpointMismatchException>(() =>
            DynamicStringSampling.Run(Ring(), a, other, ResumableOptions(path)));
        Assert.Equal("endpoint B", endpoint.Setting);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    public static TheoryData<string, StringSamplingOptions> BadOptions() => new()
    {
        { "Level", new() { Level = 0 } },
        { "Level", new() { Level = -1 } },
        { "Level", new() { Level = double.NaN } },
        { "Level", new() { Level = double.PositiveInfinity } },
        { "GridPoints", new() { Level = 1, GridPoints = 0 } },
        { "GridPoints", new() { Level = 1, GridPoints = -3 } },
        { "MaxDepth", new() { Level = 1, MaxDepth = 0 } },
        { "BeadTargetFactor", new() { Level = 1, BeadTargetFactor = 0 } },
        { "BeadTargetFactor", new() { Level = 1, BeadTargetFactor = 1.01 } },
        { "BeadTargetFactor", new() { Level = 1, BeadTargetFactor = double.NaN } },
        { "AcceptFactor", new() { Level = 1, AcceptFactor = 0.99 } },
        { "AcceptFactor", new() { Level = 1, AcceptFactor = double.NaN } },
        { "Metric", new() { Level = 1, Metric = (LevelMetric)17 } },
        { "InsertAt", new() { Level = 1, InsertAt = (InsertionRule)9 } },
        { "CheckpointPath", new() { Level = 1, CheckpointPath = " " } },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void EveryBadOptionIsRefusedByName(string name, StringSamplingOptions options)
    {
        var problem = Ring();
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var error = Assert.Throws<ArgumentException>(() => DynamicStringSampling.Run(problem, a, b, options));
        Assert.Equal(name, error.ParamName);
        Assert.StartsWith(name, error.Message);
        Assert.Equal(0, problem.MeasureCount);
    }

    [Fact]
    public void AnEndpointAboveTheAcceptanceBoundIsRefusedBeforeAnyWork()
    {
        using var dir = new TempDir();
        var problem = Ring();
        using var a = Vector(1, 0);
        using var b = Vector(0, 1.5);
        var options = new StringSamplingOptions { Level = 0.1, CheckpointPath = dir.File("never.dss") };

        var error = Assert.Throws<ArgumentException>(() => DynamicStringSampling.Run(problem, a, b, options));

        Assert.Equal("endpointB", error.ParamName);
        Assert.Contains("endpoint B has Loss 0.25", error.Message);
        Assert.Contains("1.1 × 0.1", error.Message);
        Assert.Equal(0, problem.TrainingSteps);
        Assert.False(File.Exists(options.CheckpointPath));
    }

    [Fact]
    public void EndpointsOfTheWrongLengthOrCoincidingAreRefused()
    {
        var problem = Ring();
        using var a = Vector(1, 0);
        using var three = Vector(1, 0, 0);
        var options = new StringSamplingOptions { Level = 0.1 };
        Assert.Contains("endpoint B has 3 entries", Assert.Throws<ArgumentException>(() => DynamicStringSampling.Run(problem, a, three, options)).Message);
        Assert.Contains("coincide", Assert.Throws<ArgumentException>(() => DynamicStringSampling.Run(problem, a, a, options)).Message);
    }

    [Fact]
    public void ArgmaxInsertionPutsBeadsAtTheGridMaximumAndFallsBackToTheMidpointAtTZero()
    {
        // A bump of height 1 at w0 = 0.3 on the line from (0, 0) to (1, 0), and beads that cannot train (a budget of
        // zero steps), so every bead stays where it was inserted:
        // depth 0: segment [0, 0.5] peaks at grid point k = 12 (t = 0.6, w0 = 0.3): a bead at interp(A, M, 0.6).
        // depth 1: [0, 0.3] peaks at its last grid point t = 0.95; [0.3, 0.5] peaks at t = 0 (the stuck bead on the
        //          bump itself), so its bead goes to t = 0.5 instead.
        // depth 2 (the last): still failing, not connected.
        var problem = new FunctionProblem(w => w[0].sub(0.3).square().div(-0.002).exp(), 2, new FunctionProblemOptions { MaxSteps = 0 });
        using var a = Vector(0, 0);
        using var b = Vector(1, 0);
        var options = new StringSamplingOptions { Level = 0.1, InsertAt = InsertionRule.Argmax, MaxDepth = 3 };

        using var result = DynamicStringSampling.Run(problem, a, b, options);

        Assert.False(result.Connected);
        Assert.Equal(3, result.Depth);
        using var m = ParameterPath.Interpolate(a, b, 0.5);
        using var onBump = ParameterPath.Interpolate(a, m, 0.6);
        using var beforeBump = ParameterPath.Interpolate(a, onBump, 0.95);
        using var afterBump = ParameterPath.Interpolate(onBump, m, 0.5);
        Tensor[] expected = [a, beforeBump, onBump, afterBump, m, b];
        Assert.Equal(expected.Length, result.BeadCount);
        for (var i = 0; i < expected.Length; i++) Assert.True(SameValues(expected[i], result.Chain[i]), $"bead {i}: {string.Join(", ", Values(result.Chain[i]))}");
        Assert.Equal(0.3, Values(onBump)[0], 1e-15);
        Assert.Equal([0.6, 0.95, 0.5], result.Log.Where(e => e.Kind == StringSamplingEventKind.BeadInserted).Select(e => e.Value));
        Assert.False(result.Beads[2].ReachedTarget);
        Assert.Equal(1.0, result.MaxAlongPath, 1e-12);
        Assert.Equal(0, problem.TrainingSteps);
    }

    [Fact]
    public void TheWeightsOnlyLengthLeavesOutTheMaskedEntries()
    {
        // The ring valley in (w0, w1) plus a third entry, a "bias" with its own bowl, masked out of the weights.
        using var mask = Vector(1, 1, 0);
        var problem = new FunctionProblem(w => w.narrow(0, 0, 2).norm().sub(1.0).square().add(w[2].square()), 3,
            new FunctionProblemOptions { StepSize = 0.25 }, weightMask: mask);
        using var a = Vector(1, 0, 0.002);
        using var b = Vector(0, 1, -0.002);
        using var result = DynamicStringSampling.Run(problem, a, b, new StringSamplingOptions { Level = 1e-3 });
        Assert.True(result.Connected);
        Assert.Equal(ParameterPath.NormalizedLength(result.Chain, mask, LengthVersion.WeightsOnly), result.Lengths.WeightsOnly);
        Assert.Equal(ParameterPath.NormalizedLength(result.Chain, null, LengthVersion.AllParameters), result.Lengths.AllParameters);
        Assert.NotEqual(result.Lengths.WeightsOnly, result.Lengths.AllParameters);
        Assert.True(result.Lengths.WeightsOnly > 1.05);
    }
}
