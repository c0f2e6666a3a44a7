using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>The finite-difference estimator of the Hessian-trace penalty (ours), against the exact double-backward one.</summary>
public class HessianTraceFiniteDifferenceTests
{
    static HessianTraceRegularizer Htr(HessianTraceEstimator estimator, double step = 1e-4, HessianTraceParameters? parameters = null, int probes = 3) =>
        new(new HessianTraceRegularizerOptions
        {
            Gamma = 1, Probes = probes, Frequency = 1, Seed = 5, Estimator = estimator, FiniteDifferenceStep = step,
            Parameters = parameters ?? HessianTraceParameters.All,
        });

    /// <summary>A float64 tanh network (optionally with BatchNorm) and a fixed minibatch; the MSE loss is smooth to all orders.</summary>
    internal static (nn.Module<Tensor, Tensor> Model, Func<Tensor> Loss) TinyNetwork(bool batchNorm = false)
    {
        manual_seed(17);
        var model = batchNorm
            ? nn.Sequential(nn.Linear(3, 4, dtype: float64), nn.BatchNorm1d(4, dtype: float64), nn.Tanh(), nn.Linear(4, 2, dtype: float64))
            : nn.Sequential(nn.Linear(3, 4, dtype: float64), nn.Tanh(), nn.Linear(4, 2, dtype: float64));
        using var generator = new Generator(23);
        var x = randn([6, 3], float64, generator: generator).DetachFromDisposeScope();
        var y = randn([6, 2], float64, generator: generator).DetachFromDisposeScope();
        return (model, () => nn.functional.mse_loss(model.call(x), y));
    }

    static double[] Flat(IEnumerable<Tensor> tensors) =>
        tensors.SelectMany(t => t.IsInvalid ? [] : t.detach().reshape(-1).to(float64).data<double>().ToArray()).ToArray();

    /// <summary>The value and the gradient over every parameter of both estimators, for the same probes.</summary>
    static (double Exact, double[] ExactGradient, double Fd, double[] FdGradient) BothEstimates(HessianTraceParameters selection, double step = 1e-4)
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork();
        var exact = Htr(HessianTraceEstimator.Exact, parameters: selection);
        var fd = Htr(HessianTraceEstimator.FiniteDifference, step, selection);
        var parameters = model.parameters().Select(p => (Tensor)p).ToList();
        using var probes = exact.DrawProbes(0, exact.SelectedDimension(model), float64);
        var e = exact.TraceEstimate(model, loss(), probes);
        var eg = autograd.grad([e], parameters, allow_unused: true);
        var f = fd.FiniteDifferenceEstimate(model, loss(), loss, probes);
        var fg = autograd.grad([f], parameters, allow_unused: true);
        // The exact path leaves a tensor's gradient undefined where it is zero (a last-layer bias: H has no dependence on it).
        var exactGradient = parameters.Select((p, i) => eg[i].IsInvalid ? zeros_like(p) : eg[i]).ToList();
        return (e.ToDouble(), Flat(exactGradient), f.ToDouble(), Flat(fg));
    }

    static void AssertClose(double[] expected, double[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = expected.Max(Math.Abs);
        Assert.True(scale > 1e-6, "the reference gradient should not vanish");
        var worst = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst <= relative * scale, $"largest difference {worst:E3} > {relative:E0} x {scale:E3}");
    }

    [Fact]
    public void ValueAndGradientMatchTheExactEstimatorForTheSameProbes()
    {
        // float64, c = 1e-4: truncation O(c²‖θ‖²) ≈ 1e-8 relative, rounding ≈ 4u·L/ε² ≈ 1e-7; tolerance 1e-5 relative.
        var (exact, exactGradient, fd, fdGradient) = BothEstimates(HessianTraceParameters.All);
        Assert.True(Math.Abs(exact) > 1e-3);
        Assert.Equal(exact, fd, Math.Abs(exact) * 1e-5);
        AssertClose(exactGradient, fdGradient, 1e-5);
        // A coarse step is measurably biased (O(c²)): the test above can fail.
        var coarse = BothEstimates(HessianTraceParameters.All, step: 0.3);
        Assert.True(Math.Abs(coarse.Fd - exact) > Math.Abs(exact) * 1e-4, $"c = 0.3 should bias the estimate: {coarse.Fd} vs {exact}");
    }

    public static TheoryData<string> Masks => new() { "middle", "non-middle", "0", "2.weight" };

    [Theory]
    [MemberData(nameof(Masks))]
    public void MasksGiveWhatTheExactEstimatorsMasksGive(string mask)
    {
        var selection = HessianTraceParameters.Parse(mask);
        var (exact, exactGradient, fd, fdGradient) = BothEstimates(selection);
        Assert.Equal(exact, fd, Math.Max(Math.Abs(exact), 1e-3) * 1e-5);
        AssertClose(exactGradient, fdGradient, 1e-5);
        // The mask matters: the whole network's estimate differs.
        var all = BothEstimates(HessianTraceParameters.All);
        Assert.True(Math.Abs(all.Fd - fd) > 1e-3 * Math.Abs(all.Fd));
    }

    /// <summary>L(θ) = ½θᵀAθ + sᵀθ: the third derivative is 0, so the second difference is exact up to rounding.</summary>
    sealed class Quadratic : nn.Module
    {
        public readonly TorchSharp.Modules.Parameter theta;
        readonly Tensor matrix, shift;

        public Quadratic(Tensor matrix) : base(nameof(Quadratic))
        {
            var n = (int)matrix.shape[0];
            this.matrix = matrix;
            shift = linspace(-1, 1, n, float64);
            theta = nn.Parameter(linspace(0.3, 2.1, n, float64));
            RegisterComponents();
        }

        public Tensor Loss() => theta.matmul(matrix).matmul(theta).mul(0.5).add(theta.dot(shift));
    }

    [Fact]
    public void OnAQuadraticTheValueIsVAvAndTheGradientIsZero()
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(3);
        var m = randn([7, 7], float64, generator: generator);
        var a = m.add(m.t()).div(2.0);
        var model = new Quadratic(a);
        var htr = Htr(HessianTraceEstimator.FiniteDifference, step: 1e-3, probes: 4);
        using var probes = htr.DrawProbes(9, 7, float64);
        var estimate = htr.FiniteDifferenceEstimate(model, model.Loss(), model.Loss, probes);
        var expected = probes.matmul(a).mul(probes).sum(1).mean().ToDouble(); // (1/K) Σ vᵀAv
        Assert.Equal(expected, estimate.ToDouble(), Math.Abs(expected) * 1e-8);
        var gradient = autograd.grad([estimate], [model.theta])[0];
        var plainGradient = autograd.grad([model.Loss()], [model.theta])[0];
        // Cancellation leaves rounding of size u·|∇L|/ε² ≈ 1e-16 x 5 / 1e-6.
        Assert.True(gradient.abs().max().ToDouble() < 1e-7 * Math.Max(1, plainGradient.abs().max().ToDouble()),
            $"the penalty's gradient should vanish on a quadratic; got {gradient.abs().max().ToDouble():E3}");
    }

    [Fact]
    public void WeightsAndBatchNormStatisticsAreBitIdenticalAfterwardsAndTheLossGraphStaysUsable()
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork(batchNorm: true);
        model.train();
        var htr = Htr(HessianTraceEstimator.FiniteDifference, step: 0.01);
        var l = loss(); // the trainer's forward pass: updates the running statistics once
        var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var penalty = htr.Penalty(new RegularizationContext(model, l, 1, 0, 0, loss));
        Assert.NotNull(penalty);
        foreach (var (name, value) in model.state_dict())
            Assert.True(before[name].bytes.SequenceEqual(value.bytes), $"{name} changed");
        Assert.Equal(1, htr.Applications);
        // The trainer's backward pass through its loss and the penalty still works (no in-place version bump).
        l.add(penalty!).backward();
        Assert.All(model.parameters(), p => Assert.True(p.grad is not null && double.IsFinite(p.grad.abs().sum().ToDouble())));
    }

    [Fact]
    public void WithoutAReevaluationTheEstimatorSaysWhy()
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork();
        var htr = Htr(HessianTraceEstimator.FiniteDifference);
        var e = Assert.Throws<InvalidOperationException>(() => htr.Penalty(new RegularizationContext(model, loss(), 1, 0, 0)));
        Assert.Contains("--htr-estimator exact", e.Message);
    }

    [Fact]
    public void AClassificationTasksReevaluationRepeatsTheLossWithTheSameDropoutMasks()
    {
        using var scope = NewDisposeScope();
        var model = Synthetic.Mlp(dropout: 0.5);
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 64), 16, seed: 3);
        model.train();
        var mb = task.NextTrainingLoss();
        var next = random.get_rng_state();
        Assert.NotNull(mb.Reevaluate);
        Assert.Equal(mb.Value, mb.Reevaluate!().ToDouble());
        Assert.True(next.bytes.SequenceEqual(random.get_rng_state().bytes), "a re-evaluation must leave the random stream where it was");
    }

    [Fact]
    public void TheTrainerTrainsWithTheFiniteDifferenceEstimator()
    {
        // A ReLU + BatchNorm + dropout network in float32: the trainer hands the task's re-evaluation to the estimator.
        // (Its kinks make the two estimators differ, see the docs; the smooth network above compares them.)
        (double[] Weights, long Applications) Train(HessianTraceEstimator? estimator)
        {
            var model = Synthetic.Mlp(dropout: 0.2);
            using var task = new ClassificationTask(model, Synthetic.Blobs(train: 128), 32, seed: 3);
            var optimizer = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.1 }, new OptimizerContext { TrainingSetSize = 128 });
            var htr = estimator is { } e
                ? new HessianTraceRegularizer(new HessianTraceRegularizerOptions { Gamma = 1e-3, Frequency = 1, Probes = 2, Estimator = e })
                : null;
            var result = new Trainer(task, optimizer, new TrainerOptions { Epochs = 2, EvaluateTest = false, Regularizer = htr }).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            return (Synthetic.Flatten(model), htr?.Applications ?? 0);
        }
        var plain = Train(null);
        var fd = Train(HessianTraceEstimator.FiniteDifference);
        Assert.Equal(8, fd.Applications);
        Assert.All(fd.Weights, w => Assert.True(double.IsFinite(w)));
        Assert.True(plain.Weights.Zip(fd.Weights).Max(p => Math.Abs(p.First - p.Second)) > 1e-6, "the penalty should move the weights");
    }

    [Fact]
    public void TheEstimatorRoundTripsThroughJsonAndOldRunsAreExact()
    {
        var options = new HessianTraceRegularizerOptions { Estimator = HessianTraceEstimator.FiniteDifference, FiniteDifferenceStep = 0.02 };
        var json = JsonSerializer.Serialize(options, RunConfig.Json);
        Assert.Contains("\"finite_difference\"", json);
        Assert.Equal(options, JsonSerializer.Deserialize<HessianTraceRegularizerOptions>(json, RunConfig.Json));
        var old = JsonNode.Parse(json)!.AsObject();
        old.Remove("estimator");
        old.Remove("finite_difference_step");
        var read = old.Deserialize<HessianTraceRegularizerOptions>(RunConfig.Json)!;
        Assert.Equal(HessianTraceEstimator.Exact, read.Estimator);
        Assert.Equal(0.01, read.FiniteDifferenceStep);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void AStepOutsideTheOpenUnitIntervalIsRefused(double step)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new HessianTraceRegularizerOptions { FiniteDifferenceStep = step }.Validate());
        Assert.Contains("--htr-fd-step", e.Message);
    }

    [Theory]
    [InlineData(new[] { "--htr-gamma", "1e-3", "--htr-estimator", "secant" }, "--htr-estimator: expected exact, finite-difference or antithetic; got 'secant'")]
    [InlineData(new[] { "--htr-gamma", "1e-3", "--htr-fd-step", "0" }, "FiniteDifferenceStep (--htr-fd-step)")]
    [InlineData(new[] { "--htr-estimator", "finite-difference" }, "--htr-estimator sets the Hessian-trace regulariser, which is off")]
    public void BadEstimatorOptionsExitWithCode2AndSayWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run(["train", "--model", "small-mnistfc", .. args, "--max-train-samples", "256", "--no-tensorboard", "--out", dir.File("run")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void TheCommandLineRecordsTheEstimatorAndAResumeMayNotChangeIt()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        string[] common = ["train", "--model", "small-mnistfc", "--max-train-samples", "256", "--batch-size", "64", "--threads", "2", "--no-tensorboard", "--out", run];
        var (code, _, err) = InProcessCli.Run([.. common, "--epochs", "1", "--htr-gamma", "1e-3", "--htr-probes", "1", "--htr-freq", "2",
            "--htr-estimator", "finite-difference", "--htr-fd-step", "0.02"]);
        Assert.True(code == ExitCodes.Ok, err);
        var htr = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["config"]!["hessian_trace"]!;
        Assert.Equal("finite_difference", htr["estimator"]!.GetValue<string>());
        Assert.Equal(0.02, htr["finite_difference_step"]!.GetValue<double>());
        var changed = InProcessCli.Run([.. common, "--epochs", "2", "--resume", "--htr-estimator", "exact"]);
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--htr-estimator \"exact\" (the run has \"finite_difference\")", changed.Err);
    }
}
