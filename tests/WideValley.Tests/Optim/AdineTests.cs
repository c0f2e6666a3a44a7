using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>
/// ADINE (our design where arXiv 1712.07424 is silent): the update against its pseudocode, the loss-triggered switch,
/// the abstract's saddle claim against heavy ball 0.9, the guard on a convex quadratic, resume, options and flags.
/// </summary>
public class AdineTests
{
    static readonly long[] Sizes = [3, 2];

    static List<Parameter> MakeParameters(ScalarType dtype, long[]? sizes = null, long seed = 5)
    {
        using var gen = new Generator((ulong)seed);
        return (sizes ?? Sizes).Select(n => new Parameter(randn(n, ScalarType.Float64, generator: gen).to(dtype))).ToList();
    }

    static double[] Values(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        return cat(parameters.Select(p => p.detach().to(ScalarType.Float64).flatten()).ToList(), 0).data<double>().ToArray();
    }

    /// <summary>Writes g(x) = 3 sin(x) + x / 2 into .grad and returns <paramref name="loss"/> (the switch only reads the loss).</summary>
    static Tensor SetGradient(IReadOnlyList<Parameter> parameters, double loss)
    {
        using (no_grad())
            foreach (var p in parameters)
            {
                using var s = p.detach().sin();
                p.grad = (s * 3 + p.detach() * 0.5).DetachFromDisposeScope();
            }
        return tensor(loss, ScalarType.Float64);
    }

    static void Step(optim.Optimizer optimizer, IReadOnlyList<Parameter> parameters, double loss)
    {
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        optimizer.step(() => SetGradient(parameters, loss));
    }

    /// <summary>The class remarks' pseudocode, element by element in float64, with the same g(x) as <see cref="SetGradient"/>.</summary>
    static double[] Pseudocode(double[] x0, IReadOnlyList<double> losses, AdineOptions o, out double finalMomentum)
    {
        var x = (double[])x0.Clone();
        var v = new double[x.Length];
        double m = o.MomentumHigh, a = double.NaN, reference = double.NaN;
        var n = 0;
        foreach (var l in losses)
        {
            if (!double.IsFinite(l))
            {
                m = o.MomentumLow;
                var vn = Math.Sqrt(v.Sum(e => e * e));
                var f = !double.IsFinite(vn) || o.VelocityCap == 0 ? 0 : Math.Min(1, o.VelocityCap / vn);
                for (var i = 0; i < v.Length; i++) v[i] *= f;
                continue;
            }
            if (double.IsNaN(a)) { a = l; reference = l; n = 0; }
            else
            {
                a = 0.9 * a + 0.1 * l;
                if (++n == o.Window)
                {
                    m = a - reference > o.Tolerance * Math.Abs(reference) ? o.MomentumLow : o.MomentumHigh;
                    reference = a;
                    n = 0;
                }
            }
            var g = x.Select(e => 3 * Math.Sin(e) + e / 2 + o.WeightDecay * e).ToArray();
            for (var i = 0; i < v.Length; i++) v[i] = m * v[i] - o.LearningRate * g[i];
            var norm = Math.Sqrt(v.Sum(e => e * e));
            if (o.VelocityCap > 0 && norm > o.VelocityCap)
                for (var i = 0; i < v.Length; i++) v[i] *= o.VelocityCap / norm;
            for (var i = 0; i < x.Length; i++) x[i] += o.Nesterov ? m * v[i] - o.LearningRate * g[i] : v[i];
        }
        finalMomentum = m;
        return x;
    }

    [Fact]
    public void ThreeHandComputedStepsOnHalfXSquared()
    {
        // f = x^2 / 2 (g = x), x0 = 1, eta = 0.1, m = m_high = 1.01 (no comparison within the first window):
        // v1 = -0.1, x1 = 0.9; v2 = 1.01 (-0.1) - 0.09 = -0.191, x2 = 0.709; v3 = 1.01 (-0.191) - 0.0709 = -0.26381, x3 = 0.44519.
        // Nesterov: x1 = 1 + 1.01 (-0.1) - 0.1 = 0.799.
        foreach (var (nesterov, expected) in new[] { (false, new[] { 0.9, 0.709, 0.44519 }), (true, new[] { 0.799 }) })
        {
            using var x = new Parameter(tensor(new[] { 1.0 }, ScalarType.Float64));
            using var optimizer = new Adine([x], new AdineOptions { LearningRate = 0.1, Nesterov = nesterov });
            foreach (var want in expected)
            {
                using (var scope = NewDisposeScope())
                {
                    optimizer.zero_grad();
                    optimizer.step(() =>
                    {
                        x.grad = x.detach().clone().DetachFromDisposeScope();
                        return tensor(0.5, ScalarType.Float64);
                    });
                }
                Assert.Equal(want, x.detach().item<double>(), 1e-14);
            }
            Assert.Equal(1.01, optimizer.Momentum);
        }
    }

    public static TheoryData<bool, double, double> Variants() => new()
    {
        { false, 0.0, 0.0 },
        { true, 0.1, 0.0 },
        { false, 0.1, 0.5 },
        { true, 0.0, 0.3 },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void TheUpdateIsThePseudocodeInFloat64(bool nesterov, double weightDecay, double cap)
    {
        // W = 2: the sequence rises, falls, hits a NaN and an infinity (the guard), rises again.
        double[] losses = [1, 2, 3, 1, 0.5, double.NaN, 0.4, 5, 6, double.PositiveInfinity, 0.1, 0.1, 0.1, 0.2, 0.3, 0.05];
        var options = new AdineOptions
        {
            LearningRate = 0.07, MomentumHigh = 1.05, MomentumLow = 0.6, Window = 2, Nesterov = nesterov, WeightDecay = weightDecay,
            VelocityCap = cap,
        };
        var x = MakeParameters(ScalarType.Float64);
        var x0 = Values(x);
        using var optimizer = new Adine(x, options);
        foreach (var l in losses) Step(optimizer, x, l);
        var expected = Pseudocode(x0, losses, options, out var momentum);
        var actual = Values(x);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-12);
        Assert.Equal(momentum, optimizer.Momentum);
        Assert.Equal(losses.Length, optimizer.Steps);
        Assert.NotEqual(x0, actual);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheFusedFloat32PathEqualsTheTensorPath(bool nesterov)
    {
        long[] sizes = [1003, 2 * CpuFloatKernels.Chunk + 21, 7];
        var options = new AdineOptions { LearningRate = 0.03, Window = 3, Nesterov = nesterov, WeightDecay = 1e-2 };
        double[] Run(bool fast)
        {
            var x = MakeParameters(ScalarType.Float32, sizes);
            using var optimizer = new Adine(x, options) { UseFastPath = fast };
            for (var t = 0; t < 12; t++) Step(optimizer, x, 1 + Math.Sin(t));
            return Values(x);
        }
        var a = Run(true);
        var b = Run(false);
        for (var i = 0; i < a.Length; i++) Assert.Equal(b[i], a[i], 2e-5);
    }

    [Fact]
    public void TheSwitchGoesLowExactlyWhenTheRunningLossRisesByMoreThanTheToleranceAndBackWhenItFalls()
    {
        // W = 3, tol = 0.1. After the first loss l1 = 1 (a = a_ref = 1), three losses l give a = 0.729 a_ref + 0.271 l.
        var options = new AdineOptions { LearningRate = 1e-3, Window = 3, Tolerance = 0.1 };
        var x = MakeParameters(ScalarType.Float64);
        using var optimizer = new Adine(x, options);
        double a = 1, reference = 1;
        void Feed(double loss, int times)
        {
            for (var i = 0; i < times; i++)
            {
                Step(optimizer, x, loss);
                a = 0.9 * a + 0.1 * loss;
            }
        }
        Step(optimizer, x, 1);
        Assert.Equal((1.01, 1.0, 1.0, 0), (optimizer.Momentum, optimizer.LossAverage, optimizer.LossReference, optimizer.StepsSinceComparison));

        // Just under the tolerance: l = 1.36 makes a = 1.09756, a rise of 9.756% < 10%: m stays high.
        Feed(1.36, 3);
        Assert.Equal(1.09756, optimizer.LossAverage, 1e-12);
        Assert.True(a - reference < 0.1 * reference);
        Assert.Equal(1.01, optimizer.Momentum);
        reference = a;
        Assert.Equal(reference, optimizer.LossReference, 1e-12);

        // Just over: a rise above 10% needs l > (1.1 - 0.729) a_ref / 0.271 = 1.502567...; 1.51 gives 10.2%: m goes low.
        var threshold = (1.1 - 0.729) * reference / 0.271;
        Assert.Equal(1.50256, threshold, 1e-5);
        Feed(1.51, 2);
        Assert.Equal(1.01, optimizer.Momentum); // no decision inside a window
        Feed(1.51, 1);
        Assert.True(a - reference > 0.1 * reference);
        Assert.Equal(0.9, optimizer.Momentum);
        reference = a;

        // Flat: a rise of 0 is within the tolerance, so m returns to high (only a rise beyond tol keeps it low).
        Feed(a, 3);
        Assert.Equal(1.01, optimizer.Momentum);

        // Falling losses keep it high; with tol = 0 a rise of any size turns it low.
        using var strict = new Adine(x, options with { Tolerance = 0 });
        foreach (var l in new[] { 1.0, 1.0, 1.0, 1.0 }) Step(strict, x, l);
        Assert.Equal(1.01, strict.Momentum); // equal is not a rise
        foreach (var l in new[] { 1.0, 1.0, 1.0 + 1e-9 }) Step(strict, x, l);
        Assert.Equal(0.9, strict.Momentum);
        foreach (var l in new[] { 0.9, 0.9, 0.9 }) Step(strict, x, l);
        Assert.Equal(1.01, strict.Momentum);
    }

    /// <summary>
    /// Steps until |y| &gt; 1 on f = x^2/2 - y^2/2 from (1, 1e-6) with the given optimizer, the gradient (x, -y) and
    /// loss f written by the closure; int.MaxValue when it has not left within the limit.
    /// </summary>
    static int StepsToLeaveTheSaddle(Func<Parameter, optim.Optimizer> build, int limit = 100_000)
    {
        using var z = new Parameter(tensor(new[] { 1.0, 1e-6 }, ScalarType.Float64));
        using var optimizer = build(z);
        for (var t = 1; t <= limit; t++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            optimizer.step(() =>
            {
                var v = z.detach().data<double>();
                var (x, y) = (v[0], v[1]);
                z.grad = tensor(new[] { x, -y }, ScalarType.Float64).DetachFromDisposeScope();
                return tensor(0.5 * x * x - 0.5 * y * y, ScalarType.Float64);
            });
            if (Math.Abs(z.detach().data<double>()[1]) > 1) return t;
        }
        return int.MaxValue;
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(0.1)]
    public void ItLeavesAStrictSaddleInFewerStepsThanHeavyBallWithMomentumPointNine(double lr)
    {
        var adine = StepsToLeaveTheSaddle(z => new Adine([z], new AdineOptions { LearningRate = lr }));
        // Heavy ball v = 0.9 v - eta g, x = x + v: PyTorch's SGD with momentum 0.9 at a constant learning rate.
        var heavyBall = StepsToLeaveTheSaddle(z => new SgdOptimizer([z], lr, momentum: 0.9));
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"saddle f = x^2/2 - y^2/2 from (1, 1e-6), lr {lr}: ADINE (defaults) leaves |y| > 1 after {adine} steps, heavy ball m = 0.9 after {heavyBall}");
        Assert.True(heavyBall < int.MaxValue, "heavy ball leaves the saddle");
        Assert.True(adine < heavyBall, $"ADINE took {adine} steps, heavy ball 0.9 took {heavyBall}");
    }

    /// <summary>The loss of each step on f = (x^2 + 0.01 y^2) / 2 from (1, 1), eta = 1.5 (near m_low's limit 2 (1 + 0.9) / 1).</summary>
    static List<double> ConvexRun(Func<Parameter, optim.Optimizer> build, int steps)
    {
        using var z = new Parameter(tensor(new[] { 1.0, 1.0 }, ScalarType.Float64));
        using var optimizer = build(z);
        var losses = new List<double>(steps);
        for (var t = 0; t < steps; t++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = optimizer.step(() =>
            {
                var v = z.detach().data<double>();
                z.grad = tensor(new[] { v[0], 0.01 * v[1] }, ScalarType.Float64).DetachFromDisposeScope();
                return tensor(0.5 * (v[0] * v[0] + 0.01 * v[1] * v[1]), ScalarType.Float64);
            });
            losses.Add(loss.item<double>());
            if (!double.IsFinite(losses[^1]) || losses[^1] > 1e30) break;
        }
        return losses;
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    public void WithTheSwitchAndTheGuardItNeverDivergesOnAnIllConditionedConvexQuadratic(double cap)
    {
        const int steps = 10_000;
        var adine = ConvexRun(z => new Adine([z], new AdineOptions { LearningRate = 1.5, VelocityCap = cap }), steps);
        // The control: heavy ball held at m = 1.01 grows by sqrt(1.01) per step in the stiff direction and diverges.
        var fixedHigh = ConvexRun(z => new SgdOptimizer([z], 1.5, momentum: 1.01), steps);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"convex (1, 0.01), lr 1.5, cap {cap}: ADINE max loss {adine.Max():G4}, final {adine[^1]:G4} over {adine.Count} steps; " +
            $"heavy ball at m = 1.01 passed 1e30 after {fixedHigh.Count} steps");
        Assert.True(fixedHigh[^1] > 1e30 && fixedHigh.Count < steps, "the control diverges");
        Assert.Equal(steps, adine.Count);
        Assert.All(adine, l => Assert.True(double.IsFinite(l)));
        // Bounded: the loss never gets an order of magnitude above the start (heavy ball's transients, and the growth of
        // one window at m_high before the switch sees it, take it to about 2.5 times the start without the cap).
        var start = adine[0];
        Assert.True(adine.Max() <= 10 * start, $"max loss {adine.Max()} against start {start}");
        Assert.True(adine[^1] < 1e-6 * start, $"final loss {adine[^1]}");
    }

    [Fact]
    public void ANonFiniteLossTripsTheGuardWithoutMovingTheWeights()
    {
        var x = MakeParameters(ScalarType.Float64);
        using var optimizer = new Adine(x, new AdineOptions { LearningRate = 0.1, VelocityCap = 0.05 });
        for (var t = 0; t < 4; t++) Step(optimizer, x, 1 - 0.1 * t);
        Assert.Equal(1.01, optimizer.Momentum);
        var before = Values(x);
        var average = optimizer.LossAverage;
        Step(optimizer, x, double.NaN);
        Assert.Equal(before, Values(x));
        Assert.Equal(0.9, optimizer.Momentum);
        Assert.Equal(average, optimizer.LossAverage);
        var norm = Math.Sqrt(x.Sum(p => { using var v = optimizer.VelocityOf(p); return Math.Pow(v.norm().item<double>(), 2); }));
        Assert.Equal(0.05, norm, 1e-12);
        Assert.Equal(1.0, optimizer.TakeDiagnostics()["adine_guard_trips"]);
        // Without a cap the velocity is zeroed.
        using var uncapped = new Adine(x, new AdineOptions { LearningRate = 0.1 });
        Step(uncapped, x, 1);
        Step(uncapped, x, double.PositiveInfinity);
        Assert.All(x, p => { using var v = uncapped.VelocityOf(p); Assert.Equal(0, v.abs().max().item<double>()); });
    }

    [Fact]
    public void AStepWithoutAClosureIsRefused()
    {
        using var p = new Parameter(zeros(3));
        using var optimizer = new Adine([p], new AdineOptions());
        var e = Assert.Throws<ArgumentNullException>(() => optimizer.step());
        Assert.Contains("closure that returns the minibatch loss", e.Message);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 0.0)]
    [InlineData(ScalarType.Float64, 0.0)]
    [InlineData(ScalarType.Float64, 0.2)]
    public void AStateDictionaryRoundTripMidWindowContinuesBitIdentically(ScalarType dtype, double cap)
    {
        using var dir = new TempDir();
        var options = new AdineOptions { LearningRate = 0.05, Window = 4, Nesterov = true, WeightDecay = 1e-3, VelocityCap = cap };
        double Loss(int t) => 1 + Math.Sin(0.7 * t) + (t == 9 ? double.NaN : 0);
        (double[] Values, double Momentum, double Average, double Reference, int Since, long Steps) Train(bool split)
        {
            var x = MakeParameters(dtype, [1003, 21]);
            var optimizer = new Adine(x, options);
            var t = 0;
            for (; t < 14; t++) Step(optimizer, x, Loss(t));
            if (split)
            {
                optimizer.save_state_dict(dir.File("adine.bin"));
                optimizer.Dispose();
                optimizer = new Adine(x, options);
                optimizer.load_state_dict(dir.File("adine.bin"));
            }
            for (; t < 31; t++) Step(optimizer, x, Loss(t));
            var result = (Values(x), optimizer.Momentum, optimizer.LossAverage, optimizer.LossReference, optimizer.StepsSinceComparison, optimizer.Steps);
            optimizer.Dispose();
            return result;
        }
        var whole = Train(false);
        var resumed = Train(true);
        Assert.Equal(whole.Values, resumed.Values);
        Assert.Equal((whole.Momentum, whole.Average, whole.Reference, whole.Since, whole.Steps),
            (resumed.Momentum, resumed.Average, resumed.Reference, resumed.Since, resumed.Steps));
    }

    static (ClassificationTask Task, optim.Optimizer Optimizer) BuildRun(AdineOptions options)
    {
        var model = Synthetic.Mlp();
        var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
        return (task, OptimizerFactory.Create("adine", model.parameters(), options, new OptimizerContext { TrainingSetSize = 320, RunSeed = 6 }));
    }

    static TrainerOptions TrainerSettings(string dir) => new()
    {
        Epochs = 3, OutputDirectory = dir, ModelName = "test-mlp", OptimizerName = "adine", TensorBoard = false,
        Schedule = LearningRateSchedule.Parse("after:10:2"),
    };

    [Fact]
    public void ATrainerRunStoppedMidEpochResumesFromItsCheckpointBitIdentical()
    {
        var options = new AdineOptions { LearningRate = 0.05, Window = 3, WeightDecay = 1e-4 };
        var metrics = TrainerResumeCheck.StopAndResume(() => BuildRun(options), TrainerSettings, stopEpoch: 2, stopStep: 4,
            uninterrupted: o => Assert.Equal(30, ((Adine)o).Steps), stopped: o => Assert.Equal(14, ((Adine)o).Steps), resumed: o => Assert.Equal(30, ((Adine)o).Steps));
        Assert.All(metrics, m => Assert.True(m.Extra?.ContainsKey("adine_momentum"), "the momentum is logged"));
    }

    [Fact]
    public void BadOptionsAreRefusedByName()
    {
        (string Parameter, string Message) Error(AdineOptions o)
        {
            var e = Assert.Throws<OptionsException>(o.Validate);
            return (e.Parameter, e.Message);
        }
        Assert.Equal(("MomentumHigh", "MomentumHigh must be greater than MomentumLow (0.9), got 0.9"), Error(new AdineOptions { MomentumHigh = 0.9 }));
        Assert.Equal(("MomentumHigh", "MomentumHigh must be greater than MomentumLow (0.5), got 0.4"),
            Error(new AdineOptions { MomentumLow = 0.5, MomentumHigh = 0.4 }));
        Assert.Equal(("MomentumLow", "MomentumLow must be in [0, 1), got 1.2"), Error(new AdineOptions { MomentumLow = 1.2, MomentumHigh = 1.3 }));
        Assert.Equal(("MomentumLow", "MomentumLow must be in [0, 1), got NaN"), Error(new AdineOptions { MomentumLow = double.NaN }));
        Assert.Equal("MomentumHigh", Error(new AdineOptions { MomentumHigh = double.PositiveInfinity }).Parameter);
        Assert.Equal(("MomentumHigh", "MomentumHigh must be a finite number, got NaN"), Error(new AdineOptions { MomentumHigh = double.NaN }));
        Assert.Equal(("Window", "Window must be at least 1 step, got 0"), Error(new AdineOptions { Window = 0 }));
        Assert.Equal(("LearningRate", "LearningRate must be a positive number, got -0.1"), Error(new AdineOptions { LearningRate = -0.1 }));
        Assert.Equal("LearningRate", Error(new AdineOptions { LearningRate = double.NaN }).Parameter);
        Assert.Equal(("Tolerance", "Tolerance must be zero or positive, got -0.01"), Error(new AdineOptions { Tolerance = -0.01 }));
        Assert.Equal("Tolerance", Error(new AdineOptions { Tolerance = double.PositiveInfinity }).Parameter);
        Assert.Equal(("VelocityCap", "VelocityCap must be zero or positive, got NaN"), Error(new AdineOptions { VelocityCap = double.NaN }));
        Assert.Equal("WeightDecay", Error(new AdineOptions { WeightDecay = -1 }).Parameter);
        // The constructor validates as well as the factory.
        using var p = new Parameter(zeros(3));
        Assert.Equal("Window", Assert.Throws<OptionsException>(() => new Adine([p], new AdineOptions { Window = -3 })).Parameter);
        Assert.Equal("MomentumHigh", Assert.Throws<OptionsException>(() => OptimizerFactory.Create("adine", [p], new AdineOptions { MomentumHigh = 0.1 })).Parameter);
    }

    [Fact]
    public void ItIsRegisteredWithItsOptionsAndTheirJson()
    {
        var d = OptimizerFactory.Describe("adine");
        Assert.Equal(typeof(AdineOptions), d.OptionsType);
        Assert.Equal(new AdineOptions(), d.Defaults);
        Assert.Equal((1.01, 0.9, 50, 0.0), (d.Defaults is AdineOptions o ? (o.MomentumHigh, o.MomentumLow, o.Window, o.Tolerance) : default));
        var options = new AdineOptions { MomentumHigh = 1.02, Window = 7, VelocityCap = 3 };
        var json = d.ToJson(options);
        Assert.Equal((1.02, 7, 3.0), ((double)json["momentum_high"]!, (int)json["window"]!, (double)json["velocity_cap"]!));
        Assert.Equal(options, d.FromJson(JsonNode.Parse(json.ToJsonString())!));
        using var p = new Parameter(zeros(40));
        using var optimizer = (Adine)d.Create([p]);
        Assert.Equal(40, optimizer.StateElements);
    }

    static (int Code, string Out, string Err) Cli(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData(new[] { "--momentum-low", "1" }, "--momentum-low must be in [0, 1), got 1")]
    [InlineData(new[] { "--momentum-high", "0.5" }, "--momentum-high must be greater than --momentum-low (0.9), got 0.5")]
    [InlineData(new[] { "--momentum-high", "NaN" }, "--momentum-high NaN is not a finite number")]
    [InlineData(new[] { "--switch-window", "0" }, "--switch-window must be at least 1, got 0")]
    [InlineData(new[] { "--switch-tolerance", "-1" }, "--switch-tolerance must be zero or positive, got -1")]
    [InlineData(new[] { "--velocity-cap", "-2" }, "--velocity-cap must be zero or positive, got -2")]
    [InlineData(new[] { "--lr", "-0.1" }, "--lr must be a positive number, got -0.1")]
    [InlineData(new[] { "--momentum", "0.9" }, "--momentum does not apply to --optimizer adine")]
    public void BadFlagsExitWithCode2AndNameTheFlag(string[] args, string expected)
    {
        var (code, _, err) = Cli(["train", "--optimizer", "adine", .. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void TrainsFromTheCommandLine()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Cli("train", "--model", "small-mnistfc", "--optimizer", "adine", "--max-train-samples", "600",
            "--batch-size", "100", "--epochs", "2", "--lr", "0.05", "--momentum-high", "1.02", "--momentum-low", "0.8",
            "--switch-window", "4", "--switch-tolerance", "0.01", "--velocity-cap", "5", "--nesterov", "--threads", "2", "--out", run,
            "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("adine", (string?)summary["config"]!["optimizer"]);
        var options = summary["config"]!["optimizer_options"]!;
        Assert.Equal((1.02, 0.8, 4, 0.01, 5.0, true),
            ((double)options["momentum_high"]!, (double)options["momentum_low"]!, (int)options["window"]!, (double)options["tolerance"]!,
             (double)options["velocity_cap"]!, (bool)options["nesterov"]!));
        var last = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        Assert.Equal(12, (double)last["adine_steps"]!);
        Assert.Contains((double)last["adine_momentum"]!, new[] { 1.02, 0.8 });

        var changed = Cli("train", "--out", run, "--resume", "--epochs", "3", "--momentum-high", "1.05");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--momentum-high 1.05 (the run has 1.02)", changed.Err);
        var resumed = Cli("train", "--out", run, "--resume", "--epochs", "3", "--no-tensorboard");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        var third = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        Assert.Equal((3, 18.0), ((int)third["epoch"]!, (double)third["adine_steps"]!));
    }
}
