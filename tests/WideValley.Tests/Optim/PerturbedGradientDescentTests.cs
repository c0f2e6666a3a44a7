using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>
/// Perturbed gradient descent (Jin et al. 2017, Algorithm 2): it leaves the strict saddle of x^2 - y^2 + y^4/4 started
/// exactly there where gradient descent stays; the kicks lie in the ball; the pseudocode in float64; resume; options.
/// </summary>
public class PerturbedGradientDescentTests
{
    /// <summary>f(x, y) = x^2 - y^2 + y^4 / 4: a strict saddle at 0 (eigenvalues 2, -2), minima at (0, ±sqrt 2) with f = -1.</summary>
    static Tensor Saddle(Parameter w)
    {
        var x = w[0];
        var y = w[1];
        return x * x - y * y + y.pow(4) / 4;
    }

    static Tensor Closure(optim.Optimizer optimizer, Parameter w)
    {
        optimizer.zero_grad();
        var loss = Saddle(w);
        loss.backward();
        return loss;
    }

    static double[] Run(optim.Optimizer optimizer, Parameter w, int steps)
    {
        for (var t = 0; t < steps; t++)
        {
            using var scope = NewDisposeScope();
            optimizer.step(() => Closure(optimizer, w));
        }
        return w.detach().data<double>().ToArray();
    }

    [Fact]
    public void ItEscapesTheStrictSaddleWherePlainGradientDescentStays()
    {
        using var gdPoint = new Parameter(zeros(2, ScalarType.Float64));
        using var gd = new SgdOptimizer([gdPoint], 0.05);
        var stuck = Run(gd, gdPoint, 400);
        Assert.Equal([0.0, 0.0], stuck);

        using var pgdPoint = new Parameter(zeros(2, ScalarType.Float64));
        using var pgd = new PerturbedGradientDescent([pgdPoint], new PerturbedGradientDescentOptions
        {
            LearningRate = 0.05, GradientThreshold = 1e-3, PerturbationRadius = 1e-2, PerturbationInterval = 50, LossDecreaseThreshold = 1e-2, Seed = 3,
        });
        var end = Run(pgd, pgdPoint, 400);
        // At a minimum: x = 0, |y| = sqrt 2, f = -1.
        Assert.Equal(0, end[0], 1e-3);
        Assert.Equal(Math.Sqrt(2), Math.Abs(end[1]), 1e-3);
        using (var f = Saddle(pgdPoint)) Assert.Equal(-1, f.item<double>(), 1e-5);
        // The first kick at step 0 escaped (the loss fell by far more than f_thres within 50 steps); at the minimum the
        // gradient is small again and later kicks are certified: the point is a second-order stationary point.
        Assert.True(pgd.Escapes >= 1, $"escapes {pgd.Escapes}");
        Assert.True(pgd.Certified >= 1, $"certified {pgd.Certified}");
        Assert.Equal(pgd.Perturbations, pgd.Escapes + pgd.Certified + (pgd.Steps - pgd.LastPerturbationStep <= 50 ? 1 : 0));
    }

    [Fact]
    public void TheStepFollowsThePseudocodeAndTheKickIsInTheBall()
    {
        // A large radius makes the kick visible; the first step must be x1 = (x0 + xi) - eta grad f(x0 + xi).
        var options = new PerturbedGradientDescentOptions { LearningRate = 0.1, GradientThreshold = 1e-6, PerturbationRadius = 0.5, PerturbationInterval = 3, Seed = 42 };
        using var w = new Parameter(zeros(2, ScalarType.Float64));
        using var pgd = new PerturbedGradientDescent([w], options);
        using (var scope = NewDisposeScope()) pgd.step(() => Closure(pgd, w));
        var x1 = w.detach().data<double>().ToArray();
        // Undo the GD step exactly in float64: x1 = p - eta (2 p_x, -2 p_y + p_y^3) solved for the kick p.
        var px = x1[0] / (1 - 0.1 * 2);
        var py = SolveY(x1[1], 0.1);
        var radius = Math.Sqrt(px * px + py * py);
        Assert.True(radius <= 0.5 && radius > 0, $"kick of length {radius}");
        // The same seed and draw give the same kick; another seed another.
        using var w2 = new Parameter(zeros(2, ScalarType.Float64));
        using var again = new PerturbedGradientDescent([w2], options);
        using (var scope = NewDisposeScope()) again.step(() => Closure(again, w2));
        Assert.Equal(x1, w2.detach().data<double>().ToArray());
        using var w3 = new Parameter(zeros(2, ScalarType.Float64));
        using var other = new PerturbedGradientDescent([w3], options with { Seed = 43 });
        using (var scope = NewDisposeScope()) other.step(() => Closure(other, w3));
        Assert.NotEqual(x1, w3.detach().data<double>().ToArray());
        // No further kick within t_thres = 3 steps even where the gradient is small.
        Assert.Equal((1L, 0L), (pgd.Perturbations, pgd.LastPerturbationStep));
    }

    static double SolveY(double y1, double eta)
    {
        // y1 = y - eta (-2 y + y^3) = y (1 + 2 eta) - eta y^3; Newton from y1 / (1 + 2 eta).
        var y = y1 / (1 + 2 * eta);
        for (var i = 0; i < 50; i++) y -= (y * (1 + 2 * eta) - eta * y * y * y - y1) / (1 + 2 * eta - 3 * eta * y * y);
        return y;
    }

    [Fact]
    public void KicksAreUniformInTheBall()
    {
        // Over many draws in d = 3: |xi| / r has E = d / (d + 1) = 0.75 and never exceeds 1; the mean direction is near 0.
        const int draws = 4000;
        var norms = new double[draws];
        var sum = new double[3];
        for (var k = 0; k < draws; k++)
        {
            using var w = new Parameter(zeros(3, ScalarType.Float64));
            using var pgd = new PerturbedGradientDescent([w], new PerturbedGradientDescentOptions { LearningRate = 1e-12, GradientThreshold = 1, PerturbationRadius = 1, Seed = k });
            using (var scope = NewDisposeScope())
                pgd.step(() =>
                {
                    pgd.zero_grad();
                    var loss = (w * 0).sum();
                    loss.backward();
                    return loss;
                });
            var v = w.detach().data<double>().ToArray();
            norms[k] = Math.Sqrt(v.Sum(e => e * e));
            for (var i = 0; i < 3; i++) sum[i] += v[i] / draws;
        }
        Assert.True(norms.Max() <= 1 + 1e-9);
        // Standard deviation of |xi| is sqrt(3/5 - 9/16) = 0.194; four standard errors.
        Assert.Equal(0.75, norms.Average(), 4 * 0.194 / Math.Sqrt(draws));
        Assert.All(sum, m => Assert.True(Math.Abs(m) < 4 * Math.Sqrt(0.6 / 3 / draws), $"mean coordinate {m}"));
    }

    [Fact]
    public void AClosureThatThrowsAfterTheKickLeavesTheWeightsAndCountersAsTheyWere()
    {
        using var w = new Parameter(tensor(new[] { 0.25, -0.5 }, ScalarType.Float64));
        using var pgd = new PerturbedGradientDescent([w], new PerturbedGradientDescentOptions { GradientThreshold = 100, PerturbationRadius = 0.3 });
        var before = w.detach().data<double>().ToArray();
        var calls = 0;
        Assert.Throws<OperationCanceledException>(() =>
        {
            using var scope = NewDisposeScope();
            pgd.step(() =>
            {
                if (++calls == 2) throw new OperationCanceledException("stop");
                return Closure(pgd, w);
            });
        });
        Assert.Equal(before, w.detach().data<double>().ToArray());
        Assert.Equal((0L, 0L, -1L), (pgd.Steps, pgd.Perturbations, pgd.LastPerturbationStep));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.9)]
    public void AStateDictionaryRoundTripContinuesBitIdentically(double momentum)
    {
        using var dir = new TempDir();
        var options = new PerturbedGradientDescentOptions
        {
            LearningRate = 0.05, GradientThreshold = 0.05, PerturbationRadius = 0.1, PerturbationInterval = 4, Momentum = momentum, WeightDecay = 1e-3, Seed = 9,
        };
        (double[] Values, long Steps, long Perturbations, long Last, long Escapes, long Certified) Train(bool split)
        {
            var w = new Parameter(zeros(2, ScalarType.Float64));
            var pgd = new PerturbedGradientDescent([w], options);
            Run(pgd, w, 13);
            if (split)
            {
                pgd.save_state_dict(dir.File("pgd.bin"));
                pgd.Dispose();
                pgd = new PerturbedGradientDescent([w], options with { Seed = 1234 });
                pgd.load_state_dict(dir.File("pgd.bin"));
                Assert.Equal(9, pgd.Settings.Seed);
            }
            var values = Run(pgd, w, 80);
            var result = (values, pgd.Steps, pgd.Perturbations, pgd.LastPerturbationStep, pgd.Escapes, pgd.Certified);
            pgd.Dispose();
            w.Dispose();
            return result;
        }
        var whole = Train(false);
        var resumed = Train(true);
        Assert.Equal(whole.Values, resumed.Values);
        Assert.Equal((whole.Steps, whole.Perturbations, whole.Last, whole.Escapes, whole.Certified),
            (resumed.Steps, resumed.Perturbations, resumed.Last, resumed.Escapes, resumed.Certified));
        Assert.True(whole.Perturbations >= 2, $"{whole.Perturbations} perturbations: the test must cross one");
    }

    [Fact]
    public void ATrainerRunStoppedMidEpochResumesBitIdentical()
    {
        var options = new PerturbedGradientDescentOptions { LearningRate = 0.05, GradientThreshold = 10, PerturbationRadius = 0.05, PerturbationInterval = 5 };
        (ClassificationTask, optim.Optimizer) Build()
        {
            var model = Synthetic.Mlp();
            var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
            return (task, OptimizerFactory.Create("pgd", model.parameters(), options, new OptimizerContext { TrainingSetSize = 320, RunSeed = 6 }));
        }
        TrainerOptions Settings(string dir) => new() { Epochs = 3, OutputDirectory = dir, ModelName = "test-mlp", OptimizerName = "pgd", TensorBoard = false };
        var metrics = TrainerResumeCheck.StopAndResume(Build, Settings, stopEpoch: 2, stopStep: 4,
            uninterrupted: o => Assert.True(((PerturbedGradientDescent)o).Perturbations >= 2, "the run must cross a perturbation"));
        Assert.All(metrics, m => Assert.True(m.Extra?.ContainsKey("pgd_perturbations"), "the perturbations are logged"));
    }

    [Fact]
    public void BadOptionsAreRefusedByName()
    {
        string Error(PerturbedGradientDescentOptions o) => Assert.Throws<OptionsException>(o.Validate).Parameter;
        Assert.Equal("GradientThreshold", Error(new() { GradientThreshold = 0 }));
        Assert.Equal("GradientThreshold", Error(new() { GradientThreshold = double.NaN }));
        Assert.Equal("PerturbationRadius", Error(new() { PerturbationRadius = -1 }));
        Assert.Equal("PerturbationInterval", Error(new() { PerturbationInterval = 0 }));
        Assert.Equal("LossDecreaseThreshold", Error(new() { LossDecreaseThreshold = -1e-3 }));
        Assert.Equal("Momentum", Error(new() { Momentum = 1 }));
        Assert.Equal("LearningRate", Error(new() { LearningRate = 0 }));
        Assert.Equal("WeightDecay", Error(new() { WeightDecay = double.PositiveInfinity }));
        var e = Assert.Throws<OptionsException>(new PerturbedGradientDescentOptions { PerturbationInterval = -2 }.Validate);
        Assert.Equal("PerturbationInterval must be at least 1 step, got -2", e.Message);
        using var p = new Parameter(zeros(3));
        Assert.Equal("PerturbationRadius", Assert.Throws<OptionsException>(() => new PerturbedGradientDescent([p], new() { PerturbationRadius = 0 })).Parameter);
        using var pgd = new PerturbedGradientDescent([p], new());
        Assert.Contains("closure that returns the loss", Assert.Throws<ArgumentNullException>(() => pgd.step()).Message);
    }

    [Fact]
    public void ItIsRegisteredWithItsOptionsAndTheirJson()
    {
        var d = OptimizerFactory.Describe("pgd");
        Assert.Equal(typeof(PerturbedGradientDescentOptions), d.OptionsType);
        var options = new PerturbedGradientDescentOptions { GradientThreshold = 0.2, PerturbationInterval = 7 };
        var json = d.ToJson(options);
        Assert.Equal((0.2, 7), ((double)json["gradient_threshold"]!, (int)json["perturbation_interval"]!));
        Assert.Equal(options, d.FromJson(JsonNode.Parse(json.ToJsonString())!));
    }

    static (int Code, string Out, string Err) Cli(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData(new[] { "--perturb-radius", "0" }, "--perturb-radius must be a positive number, got 0")]
    [InlineData(new[] { "--perturb-gradient", "-1" }, "--perturb-gradient must be a positive number, got -1")]
    [InlineData(new[] { "--perturb-interval", "0" }, "--perturb-interval must be at least 1, got 0")]
    [InlineData(new[] { "--perturb-decrease", "-1" }, "--perturb-decrease must be zero or positive, got -1")]
    [InlineData(new[] { "--beta1", "0.9" }, "--beta1 does not apply to --optimizer pgd")]
    public void BadFlagsExitWithCode2AndNameTheFlag(string[] args, string expected)
    {
        var (code, _, err) = Cli(["train", "--optimizer", "pgd", .. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void TrainsFromTheCommandLine()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Cli("train", "--model", "small-mnistfc", "--optimizer", "pgd", "--max-train-samples", "600",
            "--batch-size", "100", "--epochs", "2", "--lr", "0.05", "--perturb-gradient", "5", "--perturb-radius", "0.01",
            "--perturb-interval", "3", "--perturb-decrease", "0.001", "--threads", "2", "--out", run, "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("pgd", (string?)summary["config"]!["optimizer"]);
        var o = summary["config"]!["optimizer_options"]!;
        Assert.Equal((5.0, 0.01, 3, 0.001), ((double)o["gradient_threshold"]!, (double)o["perturbation_radius"]!, (int)o["perturbation_interval"]!, (double)o["loss_decrease_threshold"]!));
        var last = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        Assert.Equal(12, (double)last["pgd_steps"]!);
    }
}
