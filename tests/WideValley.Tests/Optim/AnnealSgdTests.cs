using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>AnnealSGD (our reading of the abstract): closed forms, equivalence with SGD, the field's statistics, resume.</summary>
public class AnnealSgdTests
{
    /// <summary>Sizes that cover a vector tail (not a multiple of 8), several parallel chunks, and an offset not a multiple of 16.</summary>
    static readonly long[] Sizes = [1003, 2 * CpuFloatKernels.Chunk + 21, 7];

    static List<Parameter> MakeParameters(ScalarType dtype, long seed = 3)
    {
        using var gen = new Generator((ulong)seed);
        return Sizes.Select(n => new Parameter(randn(n, ScalarType.Float64, generator: gen).to(dtype))).ToList();
    }

    /// <summary>A smooth, non-linear gradient g(x) = 3 sin(x) + x / 2 written into .grad (a fresh tensor each call).</summary>
    static Tensor NonLinearGradient(IReadOnlyList<Parameter> parameters)
    {
        using (no_grad())
            foreach (var p in parameters)
            {
                using var s = p.detach().sin();
                p.grad = (s * 3 + p.detach() * 0.5).DetachFromDisposeScope();
            }
        return zeros(1);
    }

    /// <summary>The gradient of f(x) = |x|^2 / 2, which is x.</summary>
    static Tensor QuadraticGradient(IReadOnlyList<Parameter> parameters)
    {
        using (no_grad())
            foreach (var p in parameters) p.grad = p.detach().clone().DetachFromDisposeScope();
        return zeros(1);
    }

    /// <summary>No loss at all (g = 0): each step then moves x by exactly lr h0 s(t) h.</summary>
    static Tensor ZeroGradient(IReadOnlyList<Parameter> parameters)
    {
        foreach (var p in parameters) p.grad = zeros_like(p).DetachFromDisposeScope();
        return zeros(1);
    }

    static double[] Values(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        return cat(parameters.Select(p => p.detach().to(ScalarType.Float64).flatten()).ToList(), 0).data<double>().ToArray();
    }

    static void Run(optim.Optimizer optimizer, IReadOnlyList<Parameter> parameters, Func<IReadOnlyList<Parameter>, Tensor> gradient, int steps)
    {
        for (var i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            optimizer.step(() => gradient(parameters));
        }
    }

    [Theory]
    [InlineData(0.0, false, 0.0, ScalarType.Float32)]
    [InlineData(0.9, false, 1e-3, ScalarType.Float32)]
    [InlineData(0.9, true, 1e-3, ScalarType.Float32)]
    [InlineData(0.0, false, 1e-2, ScalarType.Float64)]
    [InlineData(0.5, true, 1e-2, ScalarType.Float64)]
    public void WithoutAFieldItIsSgdBitForBit(double momentum, bool nesterov, double weightDecay, ScalarType dtype)
    {
        var sgdParameters = MakeParameters(dtype);
        var annealParameters = MakeParameters(dtype);
        using var sgd = new SgdOptimizer(sgdParameters, 0.05, momentum, weightDecay: weightDecay, nesterov: nesterov);
        using var anneal = new AnnealSgd(annealParameters, new AnnealSgdOptions
        {
            LearningRate = 0.05, Momentum = momentum, Nesterov = nesterov, WeightDecay = weightDecay, FieldSize = 0, Seed = 4,
        });
        Run(sgd, sgdParameters, NonLinearGradient, 12);
        Run(anneal, annealParameters, NonLinearGradient, 12);
        Assert.Equal(Values(sgdParameters), Values(annealParameters));

        // Once the linear schedule has reached zero the field is gone too: from then on the steps are SGD's.
        var sgdAfter = MakeParameters(dtype);
        var annealAfter = MakeParameters(dtype);
        using var sgd2 = new SgdOptimizer(sgdAfter, 0.05, momentum, weightDecay: weightDecay, nesterov: nesterov);
        using var anneal2 = new AnnealSgd(annealAfter, new AnnealSgdOptions
        {
            LearningRate = 0.05, Momentum = momentum, Nesterov = nesterov, WeightDecay = weightDecay, FieldSize = 0.5,
            FieldSchedule = AnnealSchedule.Linear, FieldAnnealSteps = 2, FieldMode = AnnealFieldMode.Fresh, Seed = 4,
        });
        Run(anneal2, annealAfter, ZeroGradient, 2); // s = 1, 1/2: the field moves x
        Assert.NotEqual(Values(sgdAfter), Values(annealAfter));
        Assert.Equal(0, anneal2.FieldScale);
        using (no_grad())
            for (var i = 0; i < sgdAfter.Count; i++) sgdAfter[i].copy_(annealAfter[i]);
        if (momentum != 0)
        {
            // Equal momentum buffers too: give SGD the same history (two steps of the field alone) by state copy.
            Run(sgd2, sgdAfter, ZeroGradient, 1);
            using (no_grad())
                for (var i = 0; i < sgdAfter.Count; i++)
                {
                    sgdAfter[i].copy_(annealAfter[i]);
                    var from = (TorchSharp.Modules.SGD.State)anneal2.state_dict().State[i];
                    var to = (TorchSharp.Modules.SGD.State)sgd2.state_dict().State[i];
                    to.momentum_buffer!.copy_(from.momentum_buffer!);
                }
        }
        Run(sgd2, sgdAfter, NonLinearGradient, 5);
        Run(anneal2, annealAfter, NonLinearGradient, 5);
        Assert.Equal(Values(sgdAfter), Values(annealAfter));
    }

    [Theory]
    [InlineData(AnnealFieldMode.Fixed, 0.0, false)]
    [InlineData(AnnealFieldMode.Fixed, 0.9, true)]
    [InlineData(AnnealFieldMode.Fresh, 0.0, false)]
    [InlineData(AnnealFieldMode.Fresh, 0.9, false)]
    [InlineData(AnnealFieldMode.Fresh, 0.9, true)]
    public void TheReferencePathEqualsTheFastPath(AnnealFieldMode mode, double momentum, bool nesterov)
    {
        var options = new AnnealSgdOptions
        {
            LearningRate = 0.05, Momentum = momentum, Nesterov = nesterov, WeightDecay = 1e-3, FieldSize = 0.3, FieldMode = mode,
            FieldSchedule = AnnealSchedule.PowerLaw, FieldPower = 0.55, Seed = 12,
        };
        var fast = MakeParameters(ScalarType.Float32);
        var reference = MakeParameters(ScalarType.Float32);
        using var fastOptimizer = new AnnealSgd(fast, options);
        using var referenceOptimizer = new AnnealSgd(reference, options) { UseFastPath = false };
        Run(fastOptimizer, fast, NonLinearGradient, 20);
        Run(referenceOptimizer, reference, NonLinearGradient, 20);
        var a = Values(fast);
        var b = Values(reference);
        // The two paths round differently only in the last bit of a few float32 operations per step (libtorch may fuse
        // a multiply-add the vector loop does in two roundings): |x| is O(1), 20 steps, so 1e-5 is ample and far below
        // the size of any field term (lr h0 s(t) ~ 1e-3).
        Assert.All(a.Zip(b), pair => Assert.True(Math.Abs(pair.First - pair.Second) <= 1e-5, $"{pair.First} vs {pair.Second}"));
        Assert.Equal(20, fastOptimizer.Steps);
    }

    [Theory]
    [InlineData(0.0, false, 0.0, ScalarType.Float64)]
    [InlineData(0.9, true, 0.0, ScalarType.Float64)]
    [InlineData(0.5, false, 0.25, ScalarType.Float64)]
    [InlineData(0.9, false, 0.1, ScalarType.Float32)]
    public void OnAQuadraticAFixedFieldMovesTheMinimumToTheClosedForm(double momentum, bool nesterov, double weightDecay, ScalarType dtype)
    {
        // f(x) = |x|^2 / 2 plus the field term -h0 s <h, x> and wd/2 |x|^2, s held at 1 (exponential decay 1):
        // the minimiser is x* = h0 s h / (1 + wd), and gradient descent with momentum converges to it.
        const double h0 = 0.7, lr = 0.1;
        var x = MakeParameters(dtype);
        using var optimizer = new AnnealSgd(x, new AnnealSgdOptions
        {
            LearningRate = lr, Momentum = momentum, Nesterov = nesterov, WeightDecay = weightDecay, FieldSize = h0,
            FieldMode = AnnealFieldMode.Fixed, FieldSchedule = AnnealSchedule.Exponential, FieldDecay = 1, Seed = 21,
        });
        Run(optimizer, x, QuadraticGradient, 600);
        var tolerance = dtype == ScalarType.Float64 ? 1e-12 : 2e-6;
        foreach (var p in x)
        {
            using var h = optimizer.FixedFieldOf(p)!;
            using var expected = h.to(ScalarType.Float64) * (h0 / (1 + weightDecay));
            using var error = (p.detach().to(ScalarType.Float64) - expected).abs().max();
            Assert.True(error.ToDouble() <= tolerance, $"max |x - x*| = {error.ToDouble()}");
        }
    }

    [Fact]
    public void EachScheduleGivesItsClosedForm()
    {
        var linear = new AnnealSgdOptions { FieldSchedule = AnnealSchedule.Linear, FieldAnnealSteps = 4 };
        Assert.Equal([1, 0.75, 0.5, 0.25, 0, 0, 0], new long[] { 0, 1, 2, 3, 4, 5, 1000 }.Select(linear.ScheduleAt));
        var exponential = new AnnealSgdOptions { FieldSchedule = AnnealSchedule.Exponential, FieldDecay = 0.9 };
        foreach (var t in new long[] { 0, 1, 7, 100 }) Assert.Equal(Math.Pow(0.9, t), exponential.ScheduleAt(t), 15);
        var power = new AnnealSgdOptions { FieldSchedule = AnnealSchedule.PowerLaw, FieldPower = 0.55, FieldSize = 2 };
        Assert.Equal(1, power.ScheduleAt(0));
        Assert.Equal(Math.Pow(2, -0.55), power.ScheduleAt(1), 15);
        Assert.Equal(Math.Pow(100, -0.55), power.ScheduleAt(99), 15);
        Assert.Equal(2 * Math.Pow(11, -0.55), power.FieldScaleAt(10), 15);
        Assert.Throws<ArgumentOutOfRangeException>(() => power.ScheduleAt(-1));
    }

    [Theory]
    [InlineData(AnnealSchedule.Linear)]
    [InlineData(AnnealSchedule.Exponential)]
    [InlineData(AnnealSchedule.PowerLaw)]
    public void TheOptimizerStepsWithTheScheduleAndPullsAlongPlusH(AnnealSchedule schedule)
    {
        // Without a loss, step t moves x by exactly lr h0 s(t) h: the measured s(t) is the schedule's, and positive
        // (x moves along +h: the sign of an external field in H_h(x) = f(x) - <h, x>).
        const double lr = 0.5, h0 = 0.2;
        var options = new AnnealSgdOptions
        {
            LearningRate = lr, FieldSize = h0, FieldSchedule = schedule, FieldAnnealSteps = 6, FieldDecay = 0.8, FieldPower = 0.7, Seed = 5,
        };
        var x = MakeParameters(ScalarType.Float64);
        using var optimizer = new AnnealSgd(x, options);
        using var h = cat(x.Select(p => optimizer.FixedFieldOf(p)!).ToList(), 0);
        for (var t = 0; t < 9; t++)
        {
            using var before = tensor(Values(x));
            Run(optimizer, x, ZeroGradient, 1);
            using var moved = tensor(Values(x)) - before;
            var s = options.ScheduleAt(t);
            using var error = (moved - h * (lr * h0 * s)).abs().max();
            Assert.True(error.ToDouble() <= 1e-14, $"step {t}: max error {error.ToDouble()}");
            using var measured = (moved * h).sum() / (h * h).sum() / (lr * h0);
            Assert.Equal(s, measured.ToDouble(), 12);
        }
    }

    [Theory]
    [InlineData(1.0, 1.0)]
    [InlineData(0.3, 0.5)]
    public void FreshFieldsAreIndependentZeroMeanNoiseOfStandardDeviationH0(double h0, double lr)
    {
        // g = 0, s = 1: step t moves x by lr h0 h_t with h_t ~ N(0, I) fresh. Over n elements the sample mean of
        // h_t has standard error 1/sqrt(n), the sample variance a relative standard error sqrt(2/(n-1)), and the
        // correlation of two independent draws a standard error 1/sqrt(n); the bounds are 5 of those.
        var x = MakeParameters(ScalarType.Float32);
        var n = (double)Sizes.Sum();
        using var optimizer = new AnnealSgd(x, new AnnealSgdOptions
        {
            LearningRate = lr, FieldSize = h0, FieldMode = AnnealFieldMode.Fresh, FieldSchedule = AnnealSchedule.Exponential, FieldDecay = 1, Seed = 8,
        });
        Assert.Null(optimizer.FixedFieldOf(x[0]));
        var draws = new List<double[]>();
        var previous = Values(x);
        for (var t = 0; t < 4; t++)
        {
            Run(optimizer, x, ZeroGradient, 1);
            var now = Values(x);
            draws.Add(now.Zip(previous, (a, b) => (a - b) / (lr * h0)).ToArray());
            previous = now;
        }
        foreach (var h in draws)
        {
            var mean = h.Average();
            var variance = h.Sum(v => (v - mean) * (v - mean)) / (n - 1);
            Assert.InRange(mean, -5 / Math.Sqrt(n), 5 / Math.Sqrt(n));
            // float32 steps: x + lr h0 h rounds to ~1e-7 relative to |x| ~ 1, a tiny extra variance (1e-13 / (lr h0)^2).
            Assert.InRange(variance, 1 - 5 * Math.Sqrt(2 / (n - 1)), 1 + 5 * Math.Sqrt(2 / (n - 1)));
        }
        for (var i = 0; i < draws.Count; i++)
            for (var j = i + 1; j < draws.Count; j++)
            {
                var correlation = draws[i].Zip(draws[j], (a, b) => a * b).Sum() / n;
                Assert.InRange(correlation, -5 / Math.Sqrt(n), 5 / Math.Sqrt(n));
            }
    }

    [Fact]
    public void TheFixedFieldIsOneUnitGaussianForTheWholeRunAndSurvivesAStateDictionaryRoundTrip()
    {
        using var dir = new TempDir();
        var x = MakeParameters(ScalarType.Float32);
        var options = new AnnealSgdOptions { LearningRate = 0.1, Momentum = 0.9, FieldSize = 0.1, FieldMode = AnnealFieldMode.Fixed, Seed = 31 };
        using var optimizer = new AnnealSgd(x, options);
        var field = x.Select(p => optimizer.FixedFieldOf(p)!).ToList();
        var all = cat(field, 0).to(ScalarType.Float64);
        var n = all.numel();
        Assert.InRange(all.mean().ToDouble(), -5 / Math.Sqrt(n), 5 / Math.Sqrt(n));
        Assert.InRange(all.var().ToDouble(), 1 - 5 * Math.Sqrt(2.0 / n), 1 + 5 * Math.Sqrt(2.0 / n));
        Run(optimizer, x, NonLinearGradient, 5);
        for (var i = 0; i < x.Count; i++)
        {
            using var after = optimizer.FixedFieldOf(x[i])!;
            Assert.True(after.equal(field[i]).all().item<bool>(), "the fixed field changed during training");
        }
        optimizer.save_state_dict(dir.File("anneal.bin"));

        // Another seed at construction: the saved seed wins, and the field is regenerated from it bit for bit.
        using var restored = new AnnealSgd(x, options with { Seed = 99 });
        using (var other = restored.FixedFieldOf(x[0])!) Assert.False(other.equal(field[0]).all().item<bool>());
        restored.load_state_dict(dir.File("anneal.bin"));
        Assert.Equal(5, restored.Steps);
        Assert.Equal(31, restored.Settings.Seed);
        for (var i = 0; i < x.Count; i++)
        {
            using var again = restored.FixedFieldOf(x[i])!;
            Assert.True(again.equal(field[i]).all().item<bool>(), "the restored fixed field differs");
        }
        Assert.Equal(optimizer.StateElements, restored.StateElements);
    }

    [Theory]
    [InlineData(AnnealFieldMode.Fresh)]
    [InlineData(AnnealFieldMode.Fixed)]
    public void AStateDictionaryRoundTripContinuesBitIdentically(AnnealFieldMode mode)
    {
        using var dir = new TempDir();
        var options = new AnnealSgdOptions
        {
            LearningRate = 0.05, Momentum = 0.9, Nesterov = true, FieldSize = 0.2, FieldMode = mode, FieldSchedule = AnnealSchedule.Linear,
            FieldAnnealSteps = 8, Seed = 2,
        };
        double[] Train(bool split)
        {
            var x = MakeParameters(ScalarType.Float32);
            var optimizer = new AnnealSgd(x, options);
            Run(optimizer, x, NonLinearGradient, 5);
            if (split)
            {
                optimizer.save_state_dict(dir.File("anneal.bin"));
                optimizer.Dispose();
                optimizer = new AnnealSgd(x, options with { Seed = 77 });
                optimizer.load_state_dict(dir.File("anneal.bin"));
            }
            Run(optimizer, x, NonLinearGradient, 6);
            optimizer.Dispose();
            return Values(x);
        }
        Assert.Equal(Train(false), Train(true));
    }

    static (ClassificationTask Task, optim.Optimizer Optimizer) BuildRun(AnnealSgdOptions options)
    {
        var model = Synthetic.Mlp();
        var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
        return (task, OptimizerFactory.Create("annealsgd", model.parameters(), options, new OptimizerContext { TrainingSetSize = 320, RunSeed = 6 }));
    }

    static TrainerOptions TrainerSettings(string dir) => new()
    {
        Epochs = 3, OutputDirectory = dir, ModelName = "test-mlp", OptimizerName = "annealsgd", TensorBoard = false,
        Schedule = LearningRateSchedule.Parse("after:10:2"),
    };

    [Theory]
    [InlineData(AnnealFieldMode.Fixed, AnnealSchedule.PowerLaw)]
    [InlineData(AnnealFieldMode.Fresh, AnnealSchedule.Linear)]
    public void ATrainerRunStoppedMidEpochResumesFromItsCheckpointBitIdentical(AnnealFieldMode mode, AnnealSchedule schedule)
    {
        var options = new AnnealSgdOptions
        {
            LearningRate = 0.05, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-4, FieldSize = 0.05, FieldMode = mode,
            FieldSchedule = schedule, FieldAnnealSteps = 25,
        };
        var metrics = TrainerResumeCheck.StopAndResume(() => BuildRun(options), TrainerSettings, stopEpoch: 2, stopStep: 3,
            uninterrupted: o => Assert.Equal(30, ((AnnealSgd)o).Steps), stopped: o => Assert.Equal(13, ((AnnealSgd)o).Steps), resumed: o => Assert.Equal(30, ((AnnealSgd)o).Steps));
        Assert.All(metrics, m => Assert.True(m.Extra?.ContainsKey("annealsgd_field_scale"), "the field scale is logged"));
    }

    [Fact]
    public void BadOptionsAreRefusedByName()
    {
        (string Parameter, string Message) Error(AnnealSgdOptions o)
        {
            var e = Assert.Throws<OptionsException>(o.Validate);
            return (e.Parameter, e.Message);
        }
        Assert.Equal(("FieldSize", "FieldSize must be zero or positive, got -0.1"), Error(new AnnealSgdOptions { FieldSize = -0.1 }));
        Assert.Equal(("FieldSize", "FieldSize must be zero or positive, got NaN"), Error(new AnnealSgdOptions { FieldSize = double.NaN }));
        Assert.Equal("FieldSize", Error(new AnnealSgdOptions { FieldSize = double.PositiveInfinity }).Parameter);
        Assert.Equal(("FieldPower", "FieldPower must be a positive number, got 0"), Error(new AnnealSgdOptions { FieldPower = 0 }));
        Assert.Equal(("FieldPower", "FieldPower must be a positive number, got NaN"), Error(new AnnealSgdOptions { FieldPower = double.NaN }));
        Assert.Equal(("FieldDecay", "FieldDecay must be in (0, 1], got 0"), Error(new AnnealSgdOptions { FieldDecay = 0 }));
        Assert.Equal(("FieldDecay", "FieldDecay must be in (0, 1], got 1.5"), Error(new AnnealSgdOptions { FieldDecay = 1.5 }));
        Assert.Equal(("FieldAnnealSteps", "FieldAnnealSteps must be at least 1 step, got 0"), Error(new AnnealSgdOptions { FieldAnnealSteps = 0 }));
        Assert.Equal(("FieldMode", "FieldMode must be fixed or fresh, got 7"), Error(new AnnealSgdOptions { FieldMode = (AnnealFieldMode)7 }));
        Assert.Equal(("Nesterov", "Nesterov needs Momentum greater than 0"), Error(new AnnealSgdOptions { Nesterov = true }));
        Assert.Equal("LearningRate", Error(new AnnealSgdOptions { LearningRate = double.NaN }).Parameter);
        // The constructor validates as well as the factory.
        using var p = new Parameter(zeros(3));
        Assert.Equal("FieldSize", Assert.Throws<OptionsException>(() => new AnnealSgd([p], new AnnealSgdOptions { FieldSize = -1 })).Parameter);
        Assert.Equal("FieldPower", Assert.Throws<OptionsException>(() => OptimizerFactory.Create("annealsgd", [p], new AnnealSgdOptions { FieldPower = -1 })).Parameter);
    }

    [Fact]
    public void ItIsRegisteredWithItsOptionsAndTheirJson()
    {
        var d = OptimizerFactory.Describe("annealsgd");
        Assert.Equal(typeof(AnnealSgdOptions), d.OptionsType);
        Assert.Contains("(our reading of the AnnealSGD abstract)", d.Description);
        var options = new AnnealSgdOptions { FieldMode = AnnealFieldMode.Fresh, FieldSchedule = AnnealSchedule.PowerLaw, FieldSize = 0.3 };
        var json = d.ToJson(options);
        Assert.Equal(("fresh", "power_law", 0.3), ((string?)json["field_mode"], (string?)json["field_schedule"], (double)json["field_size"]!));
        Assert.Equal(options, d.FromJson(JsonNode.Parse(json.ToJsonString())!));
        // The run's seed decides the field's seed, so that runs with different --seed get different fields.
        using var p = new Parameter(zeros(40));
        using var a = (AnnealSgd)d.Create([p], options, new OptimizerContext { RunSeed = 1 });
        using var b = (AnnealSgd)d.Create([p], options, new OptimizerContext { RunSeed = 2 });
        Assert.NotEqual(a.Settings.Seed, b.Settings.Seed);
    }

    static (int Code, string Out, string Err) Cli(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData(new[] { "--field-size", "-1" }, "--field-size must be zero or positive, got -1")]
    [InlineData(new[] { "--field-size", "NaN" }, "--field-size NaN is not a finite number")]
    [InlineData(new[] { "--field-power", "0" }, "--field-power must be a positive number, got 0")]
    [InlineData(new[] { "--field-decay", "1.5" }, "--field-decay must be in (0, 1], got 1.5")]
    [InlineData(new[] { "--field-decay", "0" }, "--field-decay must be in (0, 1], got 0")]
    [InlineData(new[] { "--field-anneal-steps", "0" }, "--field-anneal-steps must be at least 1, got 0")]
    [InlineData(new[] { "--field-mode", "sometimes" }, "sometimes")]
    [InlineData(new[] { "--field-schedule", "cosine" }, "cosine")]
    [InlineData(new[] { "--nesterov" }, "--nesterov needs --momentum greater than 0")]
    public void BadFlagsExitWithCode2AndNameTheFlag(string[] args, string expected)
    {
        var (code, _, err) = Cli(["train", "--optimizer", "annealsgd", .. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void FieldFlagsDoNotApplyToOtherOptimizers()
    {
        var (code, _, err) = Cli("train", "--optimizer", "sgd", "--field-size", "0.1", "--max-train-samples", "256", "--no-tensorboard");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--field-size does not apply to --optimizer sgd", err);
    }

    [Fact]
    public void TrainsFromTheCommandLine()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Cli("train", "--model", "small-mnistfc", "--optimizer", "annealsgd", "--max-train-samples", "600",
            "--batch-size", "100", "--epochs", "2", "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--field-size", "0.05",
            "--field-mode", "fresh", "--field-schedule", "linear", "--field-anneal-steps", "8", "--threads", "2", "--out", run, "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("annealsgd", (string?)summary["config"]!["optimizer"]);
        var options = summary["config"]!["optimizer_options"]!;
        Assert.Equal(("fresh", "linear", 8L, 0.05), ((string?)options["field_mode"], (string?)options["field_schedule"], (long)options["field_anneal_steps"]!, (double)options["field_size"]!));
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(2, lines.Length);
        // 12 steps: the linear field was gone after step 8, and the last epoch logged s = 0.
        var last = JsonNode.Parse(lines[^1])!;
        Assert.Equal(0, (double)last["annealsgd_field_scale"]!);
        Assert.Equal(12, (double)last["annealsgd_steps"]!);
        Assert.InRange((double)last["test_error"]!, 0, 90);

        // A resume keeps the field settings: another field size is refused, extending the run continues t.
        var changed = Cli("train", "--out", run, "--resume", "--epochs", "3", "--field-size", "0.2");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--field-size 0.2 (the run has 0.05)", changed.Err);
        var resumed = Cli("train", "--out", run, "--resume", "--epochs", "3", "--no-tensorboard");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        var third = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        Assert.Equal((3, 18.0), ((int)third["epoch"]!, (double)third["annealsgd_steps"]!));
    }
}
