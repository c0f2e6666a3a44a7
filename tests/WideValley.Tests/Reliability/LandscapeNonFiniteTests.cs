using System.Globalization;
using WideValley.Cli;
using WideValley.Cli.Commands;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Reliability;

/// <summary>
/// Issue 16, defect 6: on a network with NaN or infinite weights every landscape and Hessian route refuses to measure,
/// with exit code 1 and a message naming the first non-finite parameter, and writes nothing (before the fix: lanczos
/// and slq crashed with exit 134, trace and landscape reported NaN with exit 0, diag-fisher exited 2 leaving a partial
/// CSV). Also the refusals of non-finite results, and what the long routes say before they start.
/// </summary>
public sealed class LandscapeNonFiniteTests
{
    private static readonly string Factory =
        $"{Path.Combine(AppContext.BaseDirectory, "test-factory", "WideValley.TestFactory.dll")}:WideValley.TestFactory.TinyConvNetFactory";
    private static readonly string[] FixtureData = ["--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy")];

    private static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    /// <summary>The fixture network with entry <paramref name="index"/> of <paramref name="parameter"/> set to <paramref name="value"/>.</summary>
    private static TinyConvNet Damaged(string parameter, long index, double value)
    {
        var model = TinyConvNet.WithFixtureWeights();
        using var noGrad = no_grad();
        var p = model.named_parameters().Single(np => np.name == parameter).parameter;
        using var flat = p.view(-1);
        using var entry = flat[index];
        entry.fill_(value);
        return model;
    }

    private static string SaveDamaged(TempDir dir, string name, double value)
    {
        using var model = Damaged("fc.weight", 1234, value);
        model.save(dir.File(name));
        return dir.File(name);
    }

    public static TheoryData<string[]> Routes() => new()
    {
        { ["hessian", "--method", "lanczos", "--top", "2"] },
        { ["hessian", "--method", "slq", "--probes", "2", "--steps", "5"] },
        { ["hessian", "--method", "trace", "--probes", "4"] },
        { ["hessian", "--method", "diag-fisher", "--batch-size", "16"] },
        { ["hessian", "--method", "exact"] },
        { ["hessian", "--method", "lanczos", "--top", "1", "--dtype", "float64"] },
        { ["landscape", "--slice", "1d", "--points", "3"] },
        { ["landscape", "--slice", "2d", "--points", "3"] },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public void NaNWeightsAreRefusedWithExitCode1NamingTheParameterAndNothingIsWritten(string[] route)
    {
        using var dir = new TempDir("widevalley-nonfinite");
        var weights = SaveDamaged(dir, "nan.dat", double.NaN);
        var output = dir.File("out");
        var (code, stdout, err) = Run([.. route, "--model-file", weights, "--model-factory", Factory, .. FixtureData, "--threads", "1", "--out", output]);
        Assert.True(code == ExitCodes.Failure, $"exit {code}; stderr: {err}; stdout: {stdout}");
        Assert.Contains("'fc.weight'", err);
        Assert.Contains("non-finite", err);
        Assert.Contains("index 1,234: NaN", err);
        Assert.False(Directory.Exists(output), $"{output} was written: {string.Join(", ", Directory.Exists(output) ? Directory.GetFileSystemEntries(output) : [])}");
        Assert.Empty(dir.Leftovers());
    }

    [Theory]
    [InlineData("trace")]
    [InlineData("exact")]
    [InlineData("lanczos")]
    public void FiniteSelectedWeightsWithANaNLossAreRefusedBeforeAnyProductOrColumn(string method)
    {
        // The NaN is in fc.weight, outside --params fc.bias: the weights measured are finite, but the loss is NaN, and
        // so is every Hessian quantity. Refused after one gradient, before the exact route stores a column.
        using var dir = new TempDir("widevalley-nonfinite");
        var weights = SaveDamaged(dir, "nan.dat", double.NaN);
        var output = dir.File("out");
        var (code, _, err) = Run(["hessian", "--method", method, "--params", "fc.bias", "--model-file", weights, "--model-factory", Factory,
            .. FixtureData, "--threads", "1", "--out", output]);
        Assert.True(code == ExitCodes.Failure, $"exit {code}: {err}");
        Assert.Contains("loss at the weights came out NaN", err);
        Assert.False(Directory.Exists(output));
    }

    [Theory]
    [InlineData(double.PositiveInfinity, "Infinity")]
    [InlineData(double.NegativeInfinity, "-Infinity")]
    public void InfiniteWeightsAreRefusedToo(double value, string shown)
    {
        using var dir = new TempDir("widevalley-nonfinite");
        var weights = SaveDamaged(dir, "inf.dat", value);
        var output = dir.File("out");
        var (code, _, err) = Run(["landscape", "--slice", "1d", "--points", "3", "--model-file", weights, "--model-factory", Factory, .. FixtureData,
            "--threads", "1", "--out", output]);
        Assert.True(code == ExitCodes.Failure, $"exit {code}: {err}");
        Assert.Contains($"index 1,234: {shown}", err);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void AnInterpolationToNaNWeightsNamesTheEndPoint()
    {
        using var dir = new TempDir("widevalley-nonfinite");
        using (var good = TinyConvNet.WithFixtureWeights()) good.save(dir.File("a.dat"));
        var bad = SaveDamaged(dir, "b.dat", double.NaN);
        var output = dir.File("out");
        var (code, _, err) = Run(["landscape", "--slice", "interp", "--points", "3", "--model-file", dir.File("a.dat"), "--other", bad,
            "--model-factory", Factory, .. FixtureData, "--threads", "1", "--out", output]);
        Assert.True(code == ExitCodes.Failure, $"exit {code}: {err}");
        Assert.Contains("end point", err);
        Assert.Contains("'fc.weight'", err);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void TheLibraryRefusesNaNWeightsWhenAMeasurementIsSetUp()
    {
        using var model = Damaged("conv.bias", 2, double.NaN);
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        var e = Assert.Throws<NonFiniteValuesException>(() => new Hvp(model, [(inputs, labels)]));
        Assert.Equal("conv.bias", e.What);
        Assert.Contains("index 2: NaN", e.Message);
        // A selection without the damaged parameter is measured.
        using var hvp = new Hvp(model, [(inputs, labels)], new LandscapeOptions { Parameters = ParameterSelection.ByPrefix(["conv.weight"]) });
        Assert.Equal(100, hvp.Dimension);
        Assert.Throws<NonFiniteValuesException>(() => Slices.RandomDirection1D(model, [(inputs, labels)], new SliceOptions { Points = 3 }));
    }

    [Fact]
    public void ANonFiniteResultIsRefusedBeforeItIsWritten()
    {
        var result = new HessianMeasurementResult { Method = HessianMethod.Trace, Dimension = 10, Trace = double.NaN };
        var e = Assert.Throws<NonFiniteValuesException>(() => HessianMeasurement.RequireFiniteResult(result));
        Assert.Equal("trace", e.What);
        var lanczos = new HessianMeasurementResult { Method = HessianMethod.Lanczos, Dimension = 10, Eigenvalues = [1, double.PositiveInfinity] };
        Assert.Contains("eigenvalue [1]", Assert.Throws<NonFiniteValuesException>(() => HessianMeasurement.RequireFiniteResult(lanczos)).Message);
        HessianMeasurement.RequireFiniteResult(new HessianMeasurementResult { Method = HessianMethod.Trace, Dimension = 10, Trace = 3, TraceStandardError = double.NaN });
    }

    [Fact]
    public void ASliceWithoutAFiniteLossAtTheWeightsIsRefused()
    {
        SlicePoint P(double a, double b, double loss) => new(a, b, loss, 0);
        Assert.Throws<NonFiniteValuesException>(() => LandscapeCommand.RequireFiniteSlice("1d", [P(-1, 0, double.NaN), P(0, 0, double.NaN), P(1, 0, double.NaN)]));
        Assert.Contains("measured weights",
            Assert.Throws<NonFiniteValuesException>(() => LandscapeCommand.RequireFiniteSlice("1d", [P(-1, 0, 3), P(0, 0, double.NaN), P(1, 0, 2)])).Message);
        Assert.Contains("end point B",
            Assert.Throws<NonFiniteValuesException>(() => LandscapeCommand.RequireFiniteSlice("interp", [P(0, 0, 1), P(1, 0, double.PositiveInfinity), P(1.5, 0, 2)])).Message);
        // Far from the weights the loss may overflow: kept (the CSV records it), not refused.
        LandscapeCommand.RequireFiniteSlice("1d", [P(-50, 0, double.PositiveInfinity), P(0, 0, 1), P(50, 0, double.NaN)]);
        LandscapeCommand.RequireFiniteSlice("2d", [P(0, -1, double.NaN), P(0, 0, 1), P(1, 0, 2)]);
    }

    [Fact]
    public void TheExactEigenSolveSaysItCannotBeInterruptedAndHowLongItTakes()
    {
        using var dir = new TempDir("widevalley-nonfinite");
        using var model = TinyConvNet.WithFixtureWeights();
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        using var hvp = new Hvp(model, [(inputs, labels)], new LandscapeOptions { Parameters = ParameterSelection.ByPrefix(["fc.bias"]) });
        var log = new StringWriter();
        var m = HessianMeasurement.Measure(hvp, new HessianMeasurementSettings
        {
            Method = HessianMethod.Exact, ColumnsFolder = dir.File("columns"), Workers = 1, Log = log,
        });
        Assert.Equal(10, m.Eigenvalues!.Length);
        var line = log.ToString().Split('\n').Single(l => l.Contains("LAPACK syevd", StringComparison.Ordinal));
        Assert.Contains("cannot be interrupted", line);
        Assert.Matches(@"estimated \d+(\.\d)? s", line);

        // The inertia route's factorisations run in LAPACK to their end as well.
        var inertiaLog = new StringWriter();
        HessianMeasurement.Measure(hvp, new HessianMeasurementSettings
        {
            Method = HessianMethod.Exact, Eigen = EigenRoute.Inertia, ColumnsFolder = dir.File("columns-inertia"), Workers = 1, Log = inertiaLog,
        });
        var factorisations = inertiaLog.ToString().Split('\n').Single(l => l.Contains("LDL^T factorisations of the", StringComparison.Ordinal));
        Assert.Contains("cannot be interrupted", factorisations);
        Assert.Matches(@"estimated \d+(\.\d)? s in all", factorisations);
    }

    [Fact]
    public void TheEigenSolveEstimateGrowsAsTheCubeOfN()
    {
        var small = ExactHessian.EstimateEigenvaluesTime(400, ScalarType.Float64);
        var large = ExactHessian.EstimateEigenvaluesTime(40_000, ScalarType.Float64);
        Assert.True(small > TimeSpan.Zero);
        // The same 400-row calibration, scaled by 100^3 (timings of two calibration runs differ, hence the wide band).
        var ratio = large.TotalSeconds / small.TotalSeconds;
        Assert.InRange(ratio, 1e5, 1e7);
        Assert.Equal(TimeSpan.Zero, ExactHessian.EstimateEigenvaluesTime(0, ScalarType.Float64));
        _ = CultureInfo.InvariantCulture;
    }

    [Fact]
    public void ACancelledSliceStopsBetweenPointsAndRestoresTheWeights()
    {
        using var model = TinyConvNet.WithFixtureWeights();
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        var before = Slices.FlatParameters(model);
        using var cancelled = new CancellationTokenSource();
        var seen = 0;
        var progress = new Reporter(p =>
        {
            seen = (int)p.Done;
            if (p.Done == 2) cancelled.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => Slices.RandomDirections2D(model, [(inputs, labels)],
            new SliceOptions { Points = 5, Progress = progress, Cancellation = cancelled.Token }));
        Assert.Equal(2, seen);
        Assert.True(before.eq(Slices.FlatParameters(model)).all().item<bool>());
    }

    private sealed class Reporter(Action<CurvatureProgress> report) : IProgress<CurvatureProgress>
    {
        public void Report(CurvatureProgress value) => report(value);
    }

    [Fact]
    public void ATwoDimensionalSliceSaysItsSizeAndEstimateBeforeAndWhileItRuns()
    {
        using var dir = new TempDir("widevalley-nonfinite");
        using (var good = TinyConvNet.WithFixtureWeights()) good.save(dir.File("a.dat"));
        var (code, stdout, err) = Run(["landscape", "--slice", "2d", "--points", "4", "--model-file", dir.File("a.dat"), "--model-factory", Factory,
            .. FixtureData, "--threads", "1", "--out", dir.File("out")]);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("4 x 4 = 16 evaluations", stdout);
        Assert.Contains("the first evaluation took", stdout);
        Assert.Contains("the 16 take about", stdout);
        Assert.Contains("points (", stdout);
    }
}
