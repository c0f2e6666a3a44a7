using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Connectivity;
using WideValley.Experiments.Connectivity;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using static WideValley.Tests.Connectivity.ConnectivityToys;

namespace WideValley.Tests.Experiments;

/// <summary><see cref="ConnectionService"/> on closed-form problems: what it writes, and how it resumes.</summary>
public sealed class ConnectionServiceTests
{
    /// <summary>Counts the calls that train, and may cancel after the n-th bead.</summary>
    sealed class Counting(IConnectivityProblem inner, CancellationTokenSource? cancelAfter = null, int beadsBeforeCancel = int.MaxValue) : IConnectivityProblem
    {
        public int Beads { get; private set; }
        public int Gradients { get; private set; }
        public long Dimension => inner.Dimension;
        public ScalarType Dtype => inner.Dtype;
        public Device Device => inner.Device;
        public Tensor? WeightMask => inner.WeightMask;
        public PointMeasure Measure(Tensor point) => inner.Measure(point);

        public BeadTraining TrainBead(Tensor start, LevelMetric metric, double target, CancellationToken cancellation = default)
        {
            var trained = inner.TrainBead(start, metric, target, cancellation);
            if (++Beads >= beadsBeforeCancel) cancelAfter?.Cancel();
            return trained;
        }

        public (double Loss, Tensor Gradient) StochasticLossAndGradient(Tensor point)
        {
            if (++Gradients >= beadsBeforeCancel) cancelAfter?.Cancel();
            return inner.StochasticLossAndGradient(point);
        }
    }

    static ConnectionRequest StringRequest(double level = 1e-3) => new()
    {
        Level = level,
        String = new StringSamplingOptions { Level = level, GridPoints = 10 },
        EndpointA = new("east", "(1, 0)"),
        EndpointB = new("north", "(0, 1)"),
    };

    static ConnectionRequest CurveRequest(ConnectionMethod method) => new()
    {
        Method = method,
        Level = 0.05,
        Curve = new CurveTrainingOptions { Steps = 300, LearningRate = 0.05, Momentum = 0.5, Seed = 7, EvaluationPoints = 21, CheckpointEvery = 50 },
    };

    static string[] CsvRows(string folder) => File.ReadAllLines(Path.Combine(folder, ConnectionService.CsvFileName));

    static double Cell(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    [Fact]
    public void TheStringOnTheRingWritesEveryFileAndTheCsvHoldsTheResult()
    {
        using var dir = new TempDir("connect-service");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var result = ConnectionService.Run(Ring(), a, b, StringRequest(), dir.Path, cancellation: TestContext.Current.CancellationToken);

        Assert.True(result.Connected);
        Assert.True(result.Beads > 3, $"the ring's arc needs more than one bead, got {result.Beads}");
        Assert.Equal(QuarterArcRatio, result.Lengths.AllParameters, 1);
        Assert.Equal(result.Lengths.AllParameters, result.Lengths.WeightsOnly);
        foreach (var name in new[] { "connect.json", "connect.csv", "connect.checkpoint" }) Assert.True(File.Exists(dir.File(name)), name);
        Assert.Empty(dir.Leftovers());

        // One row per point: the path's (segments × grid + θ_B), then the straight line's as many.
        var rows = CsvRows(dir.Path);
        Assert.Equal("path,position,segment,t,loss,error_percent,perplexity", rows[0]);
        Assert.Equal((result.Beads - 1) * 10 + 1, result.Path.Count);
        Assert.Equal(result.Path.Count, result.Straight.Count);
        Assert.Equal(1 + 2 * result.Path.Count, rows.Length);
        var pathRows = rows.Skip(1).Take(result.Path.Count).Select(r => r.Split(',')).ToArray();
        for (var i = 0; i < result.Path.Count; i++)
        {
            Assert.Equal("string", pathRows[i][0]);
            Assert.Equal(result.Path[i].Position, Cell(pathRows[i][1]));
            Assert.Equal(result.Path[i].Segment, int.Parse(pathRows[i][2], CultureInfo.InvariantCulture));
            Assert.Equal(result.Path[i].T, Cell(pathRows[i][3]));
            Assert.Equal(result.Path[i].Measure.Loss, Cell(pathRows[i][4]));
            Assert.Equal("", pathRows[i][5]);
        }
        Assert.Equal(0, result.Path[0].Position);
        Assert.Equal(1, result.Path[^1].Position, 12);
        for (var i = 1; i < result.Path.Count; i++) Assert.True(result.Path[i].Position > result.Path[i - 1].Position, $"position {i} does not advance");
        Assert.Equal(result.MaxAlongPath, result.Path.Max(p => p.Measure.Loss));
        Assert.True(result.MaxAlongPath < result.AcceptBound);
        // The straight line cuts through the ring's hole: its maximum is (1 − 1/√2)², far above the level.
        Assert.Equal(Math.Pow(1 - 1 / Math.Sqrt(2), 2), result.MaxAlongStraight, 10);
        Assert.True(rows.Skip(1 + result.Path.Count).All(r => r.StartsWith("straight,", StringComparison.Ordinal)));

        var json = JsonNode.Parse(File.ReadAllText(dir.File("connect.json")))!.AsObject();
        Assert.Equal("string", (string)json["method"]!);
        Assert.True((bool)json["connected"]!);
        Assert.Equal(result.Beads, (int)json["beads"]!);
        Assert.Equal(result.Lengths.AllParameters, (double)json["normalized_length"]!["all_parameters"]!);
        Assert.Equal(result.Lengths.WeightsOnly, (double)json["normalized_length"]!["weights_only"]!);
        Assert.Equal("east", (string)json["endpoints"]!["A"]!["name"]!);
        Assert.Equal(10, (int)json["settings"]!["grid"]!);
        if (result.PlotSkipped is null)
            foreach (var name in new[] { "connect.png", "connect.svg" }) Assert.True(File.Exists(dir.File(name)), name);
    }

    [Fact]
    public void TheStraightLineIsMeasuredAtEvenlySpacedInterpolatedPoints()
    {
        using var dir = new TempDir("connect-service");
        var problem = Ring();
        using var a = Vector(1.1, 0);
        using var b = Vector(0, 0.95);
        var result = ConnectionService.Run(problem, a, b, StringRequest(0.02), dir.Path, cancellation: TestContext.Current.CancellationToken);
        var n = result.Straight.Count;
        for (var k = 0; k < n; k++)
        {
            var t = (double)k / (n - 1);
            using var point = ParameterPath.Interpolate(a, b, t);
            Assert.Equal(t, result.Straight[k].T);
            Assert.Equal(t, result.Straight[k].Position);
            Assert.Equal(problem.Value(point), result.Straight[k].Measure.Loss, 15);
        }
    }

    [Fact]
    public void ACancelledStringContinuesToTheUninterruptedResult()
    {
        using var whole = new TempDir("connect-service");
        using var split = new TempDir("connect-service");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var uninterrupted = ConnectionService.Run(Ring(), a, b, StringRequest(), whole.Path, cancellation: TestContext.Current.CancellationToken);

        using var stop = new CancellationTokenSource();
        var first = new Counting(Ring(), stop, beadsBeforeCancel: 2);
        Assert.ThrowsAny<OperationCanceledException>(() => ConnectionService.Run(first, a, b, StringRequest(), split.Path, cancellation: stop.Token));
        Assert.True(File.Exists(split.File("connect.checkpoint")));
        Assert.False(File.Exists(split.File("connect.json")));

        var second = new Counting(Ring());
        var resumed = ConnectionService.Run(second, a, b, StringRequest(), split.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(uninterrupted.Beads - 2, first.Beads + second.Beads);
        Assert.Equal(uninterrupted.Beads, resumed.Beads);
        Assert.Equal(uninterrupted.Lengths, resumed.Lengths);
        Assert.Equal(File.ReadAllText(whole.File("connect.csv")), File.ReadAllText(split.File("connect.csv")));
    }

    [Fact]
    public void AFinishedFolderRebuildsItsOutputsWithoutTraining()
    {
        using var dir = new TempDir("connect-service");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var first = ConnectionService.Run(Ring(), a, b, StringRequest(), dir.Path, cancellation: TestContext.Current.CancellationToken);
        var csv = File.ReadAllText(dir.File("connect.csv"));
        File.Delete(dir.File("connect.csv"));
        File.Delete(dir.File("connect.json"));

        var counting = new Counting(Ring());
        var again = ConnectionService.Run(counting, a, b, StringRequest(), dir.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(0, counting.Beads);
        Assert.Equal(first.Beads, again.Beads);
        Assert.Equal(csv, File.ReadAllText(dir.File("connect.csv")));
        Assert.True(File.Exists(dir.File("connect.json")));
    }

    [Theory]
    [InlineData(ConnectionMethod.Bezier)]
    [InlineData(ConnectionMethod.PolyChain)]
    public void ACurveResumesAfterCancellationAndAFinishedOneIsNotTrainedAgain(ConnectionMethod method)
    {
        using var whole = new TempDir("connect-service");
        using var split = new TempDir("connect-service");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        var uninterrupted = ConnectionService.Run(Ring(), a, b, CurveRequest(method), whole.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(method, uninterrupted.Method);
        Assert.Equal(3, uninterrupted.Beads);
        Assert.Equal(21, uninterrupted.Path.Count);
        Assert.Equal(21, uninterrupted.Straight.Count);
        // Trained towards the ring, the curve's loss barrier is far below the straight line's.
        Assert.True(uninterrupted.Barrier.Loss < 0.5 * uninterrupted.StraightBarrier.Loss,
            $"curve barrier {uninterrupted.Barrier.Loss}, straight {uninterrupted.StraightBarrier.Loss}");
        Assert.True(uninterrupted.Lengths.AllParameters > 1);
        // Without a weight mask both versions measure the same: the weights-only one on the same 1,000-step grid.
        Assert.Equal(uninterrupted.Lengths.AllParameters, uninterrupted.Lengths.WeightsOnly, 9);

        using var stop = new CancellationTokenSource();
        var first = new Counting(Ring(), stop, beadsBeforeCancel: 120);
        Assert.ThrowsAny<OperationCanceledException>(() => ConnectionService.Run(first, a, b, CurveRequest(method), split.Path, cancellation: stop.Token));
        var second = new Counting(Ring());
        var resumed = ConnectionService.Run(second, a, b, CurveRequest(method), split.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(300, first.Gradients + second.Gradients);
        Assert.Equal(File.ReadAllText(whole.File("connect.csv")), File.ReadAllText(split.File("connect.csv")));
        Assert.Equal(uninterrupted.Barrier, resumed.Barrier);

        var third = new Counting(Ring());
        ConnectionService.Run(third, a, b, CurveRequest(method), split.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(0, third.Gradients);
    }

    [Fact]
    public void AnEndpointAboveTheLevelIsRefusedBeforeAnyTrainingAndNothingIsWritten()
    {
        using var dir = new TempDir("connect-service");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1.5);
        var counting = new Counting(Ring());
        var folder = dir.File("out");
        var error = Assert.Throws<ArgumentException>(() => ConnectionService.Run(counting, a, b, StringRequest(0.1), folder, cancellation: TestContext.Current.CancellationToken));
        Assert.Contains("endpoint north has loss 0.25", error.Message);
        Assert.Contains("m·L0 = 1.1 × 0.1", error.Message);
        Assert.Equal(0, counting.Beads);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void WithoutALevelTheWorseEndpointSetsIt()
    {
        using var dir = new TempDir("connect-service");
        using var a = Vector(1.2, 0);
        using var b = Vector(0, 0.9);
        var result = ConnectionService.Run(Ring(), a, b, StringRequest() with { Level = null }, dir.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(0.2 * 0.2, result.Level, 12);
        Assert.True(result.Connected);
    }

    [Fact]
    public void ADamagedCheckpointIsNamedAndEveryFileIsLeftAsItWas()
    {
        using var dir = new TempDir("connect-service");
        using var a = Vector(1, 0);
        using var b = Vector(0, 1);
        ConnectionService.Run(Ring(), a, b, StringRequest(), dir.Path, cancellation: TestContext.Current.CancellationToken);
        var checkpoint = dir.File("connect.checkpoint");
        var bytes = File.ReadAllBytes(checkpoint);
        bytes[^3] ^= 0x5A;
        File.WriteAllBytes(checkpoint, bytes);
        var before = Directory.GetFiles(dir.Path).ToDictionary(f => f, File.ReadAllBytes);

        var error = Assert.Throws<CheckpointDamagedException>(() => ConnectionService.Run(Ring(), a, b, StringRequest(), dir.Path, cancellation: TestContext.Current.CancellationToken));
        Assert.Contains(checkpoint, error.Message);
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(dir.Path).Order());
        foreach (var (file, content) in before) Assert.Equal(content, File.ReadAllBytes(file));
    }
}
