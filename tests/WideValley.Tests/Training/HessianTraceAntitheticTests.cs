using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>
/// The antithetic estimator of the Hessian-trace penalty (ours): ½(L(θ+σv) + L(θ−σv)) with σ = √(2γ), against the
/// exact penalised loss L + γ·vᵀHv.
/// </summary>
public class HessianTraceAntitheticTests
{
    static HessianTraceRegularizer Htr(HessianTraceEstimator estimator, double gamma, int probes = 3, HessianTraceParameters? parameters = null) =>
        new(new HessianTraceRegularizerOptions
        {
            Gamma = gamma, Probes = probes, Frequency = 1, Seed = 5, Estimator = estimator,
            Parameters = parameters ?? HessianTraceParameters.All,
        });

    static double[] Flat(IEnumerable<Tensor> tensors) =>
        tensors.SelectMany(t => t.IsInvalid ? [] : t.detach().reshape(-1).to(float64).data<double>().ToArray()).ToArray();

    static double Norm(IEnumerable<double> values) => Math.Sqrt(values.Sum(x => x * x));

    /// <summary>
    /// L(θ) = ½θᵀAθ + Σ c_i θ_i³ + (dᵀθ)³: a cubic, so ∂⁴L = 0 and the antithetic expansion has no remainder.
    /// </summary>
    sealed class Cubic : nn.Module
    {
        public readonly TorchSharp.Modules.Parameter theta;
        readonly Tensor matrix, cubes, direction;

        public Cubic(int n) : base(nameof(Cubic))
        {
            using var generator = new Generator(11);
            var m = randn([n, n], float64, generator: generator);
            matrix = m.matmul(m.t()).div(n).DetachFromDisposeScope();
            cubes = randn([n], float64, generator: generator).DetachFromDisposeScope();
            direction = randn([n], float64, generator: generator).div(Math.Sqrt(n)).DetachFromDisposeScope();
            theta = nn.Parameter(linspace(-0.8, 1.3, n, float64));
            RegisterComponents();
        }

        public Tensor Loss() => theta.matmul(matrix).matmul(theta).mul(0.5).add(cubes.mul(theta.pow(3)).sum()).add(theta.dot(direction).pow(3));
    }

    [Fact]
    public void OnACubicTheObjectiveIsExactlyThePenalisedLossAndItsGradient()
    {
        using var scope = NewDisposeScope();
        var model = new Cubic(6);
        const double gamma = 0.02; // large on purpose: a cubic has no O(γ²) remainder
        var anti = Htr(HessianTraceEstimator.Antithetic, gamma, probes: 4);
        var exact = Htr(HessianTraceEstimator.Exact, gamma, probes: 4);
        using var probes = anti.DrawProbes(3, 6, float64);
        var loss = model.Loss();
        var penalised = loss.add(exact.TraceEstimate(model, loss, probes).mul(gamma));
        var expectedGradient = Flat(autograd.grad([penalised], [model.theta]));
        var objective = anti.AntitheticObjective(model, model.Loss(), model.Loss, probes);
        var gradient = Flat(autograd.grad([objective], [model.theta]));
        Assert.Equal(penalised.ToDouble(), objective.ToDouble(), Math.Abs(penalised.ToDouble()) * 1e-12);
        var worst = expectedGradient.Zip(gradient).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst < 1e-12 * Norm(expectedGradient), $"largest difference {worst:E3}");
        // The penalty is not negligible here, so the comparison can fail: the plain gradient differs.
        var plain = Flat(autograd.grad([model.Loss()], [model.theta]));
        Assert.True(plain.Zip(gradient).Max(p => Math.Abs(p.First - p.Second)) > 1e-3 * Norm(plain));
    }

    /// <summary>A float64 tanh network and a fixed minibatch: smooth to all orders (the finite-difference tests' network).</summary>
    static (nn.Module<Tensor, Tensor> Model, Func<Tensor> Loss) TinyNetwork() => HessianTraceFiniteDifferenceTests.TinyNetwork();

    /// <summary>‖∇_anti − ∇(L + γ vᵀHv)‖ / ‖γ ∇(vᵀHv)‖ on the tanh network, the same probes for both.</summary>
    static double RelativeErrorOfThePenaltysGradient(double gamma, HessianTraceParameters selection)
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork();
        var parameters = model.parameters().Select(p => (Tensor)p).ToList();
        var anti = Htr(HessianTraceEstimator.Antithetic, gamma, parameters: selection);
        var exact = Htr(HessianTraceEstimator.Exact, gamma, parameters: selection);
        using var probes = anti.DrawProbes(0, anti.SelectedDimension(model), float64);
        var l = loss();
        var penalty = exact.TraceEstimate(model, l, probes).mul(gamma);
        var penaltyGradient = Flat(autograd.grad([penalty], parameters, retain_graph: true, allow_unused: true).Select((g, i) => g.IsInvalid ? zeros_like(parameters[i]) : g));
        var expected = Flat(autograd.grad([l.add(penalty)], parameters));
        var actual = Flat(autograd.grad([anti.AntitheticObjective(model, loss(), loss, probes)], parameters));
        return Norm(expected.Zip(actual).Select(p => p.First - p.Second)) / Norm(penaltyGradient);
    }

    [Fact]
    public void OnASmoothNetworkTheErrorIsSecondOrderInGamma()
    {
        // The remainder is (γ²/6)∇∂⁴L[v⁴]: relative to the penalty's γ∇(vᵀHv) it falls like γ.
        var coarse = RelativeErrorOfThePenaltysGradient(1e-3, HessianTraceParameters.All);
        var fine = RelativeErrorOfThePenaltysGradient(1e-4, HessianTraceParameters.All);
        Assert.True(fine < 0.05, $"at γ = 1e-4 the penalty's gradient should be within 5%; got {fine:P2}");
        Assert.InRange(coarse / fine, 5.0, 20.0);
    }

    [Theory]
    [InlineData("middle")]
    [InlineData("2.weight")]
    public void MasksPerturbOnlyTheSelectedTensors(string mask)
    {
        var masked = RelativeErrorOfThePenaltysGradient(1e-4, HessianTraceParameters.Parse(mask));
        Assert.True(masked < 0.05, $"the masked penalty's gradient should be within 5%; got {masked:P2}");
    }

    [Fact]
    public void TheObjectivesGraphDoesNotReachTheLossUnlessAProbeIsZero()
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork();
        var anti = Htr(HessianTraceEstimator.Antithetic, 1e-3, probes: 2);
        var marker = zeros([], float64, requires_grad: true);
        // The trainer's loss with a leaf marker in its graph: a backward pass through the loss reaches the marker.
        var tracked = loss().add(marker);
        var dimension = anti.SelectedDimension(model);
        using var probes = anti.DrawProbes(0, dimension, float64);
        anti.AntitheticObjective(model, tracked, loss, probes).backward();
        Assert.True(marker.grad is null || marker.grad.IsInvalid, "the objective must not back-propagate the loss's graph");
        // A zero probe contributes L(θ) (θ+σ·0 = θ) through the loss's own graph, weighted 1/K.
        var marker2 = zeros([], float64, requires_grad: true);
        var withZero = cat([probes[0].unsqueeze(0), zeros([1, dimension], float64)]);
        var objective = anti.AntitheticObjective(model, loss().add(marker2), loss, withZero);
        objective.backward();
        Assert.Equal(0.5, marker2.grad!.ToDouble(), 1e-15);
        var single = anti.AntitheticObjective(model, loss(), loss, probes[0].unsqueeze(0)).ToDouble();
        Assert.Equal((single + loss().ToDouble()) / 2, objective.ToDouble(), 1e-14);
    }

    [Fact]
    public void PenaltyIsTheObjectiveMinusTheLossAndTheWeightsAreRestored()
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork();
        var before = Flat(model.parameters());
        var anti = Htr(HessianTraceEstimator.Antithetic, 1e-4);
        var exact = Htr(HessianTraceEstimator.Exact, 1e-4);
        var l = loss();
        var penalty = anti.Penalty(new RegularizationContext(model, l, 1, 0, 7, loss))!.ToDouble();
        var objective = anti.Objective(new RegularizationContext(model, loss(), 1, 0, 7, loss))!.ToDouble();
        Assert.Equal(objective - l.ToDouble(), penalty, 1e-15);
        Assert.Equal(2, anti.Applications);
        Assert.True(before.SequenceEqual(Flat(model.parameters())), "the weights must be restored bit for bit");
        // γ·vᵀHv to O(γ²): the exact estimator's penalty for the same probes (stream 7).
        var reference = exact.Penalty(new RegularizationContext(model, loss(), 1, 0, 7))!.ToDouble();
        Assert.Equal(reference, penalty, Math.Abs(reference) * 0.02);
        // Off-schedule steps: no objective, no penalty.
        var gated = new HessianTraceRegularizer(new HessianTraceRegularizerOptions { Gamma = 1e-4, Frequency = 3, Estimator = HessianTraceEstimator.Antithetic });
        Assert.Null(gated.Objective(new RegularizationContext(model, loss(), 1, 1, 0, loss)));
        Assert.Null(gated.Penalty(new RegularizationContext(model, loss(), 1, 1, 0, loss)));
    }

    [Fact]
    public void WithoutAReevaluationTheEstimatorSaysWhy()
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork();
        var anti = Htr(HessianTraceEstimator.Antithetic, 1e-3);
        var e = Assert.Throws<InvalidOperationException>(() => anti.Objective(new RegularizationContext(model, loss(), 1, 0, 0)));
        Assert.Contains("antithetic estimator re-runs the minibatch", e.Message);
        Assert.Contains("--htr-estimator exact", e.Message);
    }

    [Fact]
    public void TheTrainersStepIsTheMeanOfThePerturbedGradients()
    {
        // One SGD step (no momentum) on one minibatch: the trainer's update must be −lr × the antithetic gradient,
        // computed here by hand on an identical model and minibatch with the same probes (stream 0).
        const double lr = 0.1, gamma = 1e-3;
        var options = new HessianTraceRegularizerOptions { Gamma = gamma, Frequency = 1, Probes = 2, Seed = 9, Estimator = HessianTraceEstimator.Antithetic };
        double[] start, trained, expected;
        {
            var model = Synthetic.Mlp(dropout: 0);
            start = Flat(model.parameters());
            using var task = new ClassificationTask(model, Synthetic.Blobs(train: 32), 32, seed: 3);
            var optimizer = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = lr }, new OptimizerContext { TrainingSetSize = 32 });
            var htr = new HessianTraceRegularizer(options);
            var result = new Trainer(task, optimizer, new TrainerOptions { Epochs = 1, EvaluateTest = false, Regularizer = htr }).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.Equal(1, htr.Applications);
            trained = Flat(model.parameters());
        }
        {
            using var scope = NewDisposeScope();
            var model = Synthetic.Mlp(dropout: 0);
            using var task = new ClassificationTask(model, Synthetic.Blobs(train: 32), 32, seed: 3);
            model.train();
            var mb = task.NextTrainingLoss();
            var htr = new HessianTraceRegularizer(options);
            using var probes = htr.DrawProbes(0, htr.SelectedDimension(model), float32);
            var objective = htr.AntitheticObjective(model, mb.Loss, mb.Reevaluate!, probes);
            var gradient = Flat(autograd.grad([objective], model.parameters().Select(p => (Tensor)p).ToList()));
            expected = start.Zip(gradient).Select(p => p.First - lr * p.Second).ToArray();
        }
        var worst = expected.Zip(trained).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst < 1e-6, $"the trainer's update differs from −lr × the antithetic gradient by {worst:E3}");
        Assert.True(start.Zip(trained).Max(p => Math.Abs(p.First - p.Second)) > 1e-4, "the step should move the weights");
    }

    [Theory]
    [InlineData("antithetic")]
    [InlineData("finite-difference")]
    public void ALanguageModelIsRefusedBeforeTrainingNotAtTheFirstPenalisedStep(string estimator)
    {
        using var dir = new TempDir();
        var corpus = dir.WriteText("corpus.txt", string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 300)));
        var run = dir.File("run");
        var (code, _, err) = InProcessCli.Run(["train", "--model", "char-lstm", "--data", "text", "--corpus", corpus, "--threads", "1", "--no-tensorboard",
            "--out", run, "--htr-gamma", "1e-4", "--htr-start-epoch", "3", "--htr-estimator", estimator]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains($"--htr-estimator {estimator} re-runs each penalised minibatch at perturbed weights", err);
        Assert.Contains("use --htr-estimator exact", err);
        Assert.False(File.Exists(Path.Combine(run, "checkpoint.bin")), "nothing should have trained");
    }

    [Fact]
    public void TheCommandLineRecordsTheEstimatorAndItRoundTripsThroughJson()
    {
        var options = new HessianTraceRegularizerOptions { Estimator = HessianTraceEstimator.Antithetic };
        var json = JsonSerializer.Serialize(options, RunConfig.Json);
        Assert.Contains("\"antithetic\"", json);
        Assert.Equal(options, JsonSerializer.Deserialize<HessianTraceRegularizerOptions>(json, RunConfig.Json));

        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, _, err) = InProcessCli.Run(["train", "--model", "small-mnistfc", "--max-train-samples", "256", "--batch-size", "64", "--threads", "2",
            "--no-tensorboard", "--out", run, "--epochs", "1", "--htr-gamma", "1e-4", "--htr-probes", "1", "--htr-freq", "2", "--htr-estimator", "antithetic"]);
        Assert.True(code == ExitCodes.Ok, err);
        var htr = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!["config"]!["hessian_trace"]!;
        Assert.Equal("antithetic", htr["estimator"]!.GetValue<string>());
    }
}
