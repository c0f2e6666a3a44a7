using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;
using SgdGroup = TorchSharp.Modules.SGD.ParamGroup;

namespace WideValley.Tests.Optim;

/// <summary>
/// SAM (Foret et al. 2021) and ASAM (Kwon et al. 2021): the gradient the base optimizer receives is the gradient at the
/// perturbed point (closed form on a quadratic, finite differences on a network), ASAM's perturbation is scale
/// invariant where SAM's is not, rho = 0 is the base optimizer bit for bit in a trainer run that counts two gradient
/// evaluations per step, BatchNorm statistics come from the first pass, resume, options and the command line.
/// </summary>
public class SamTests
{
    /// <summary>A two-layer network as plain float64 parameters [W1, b1, W2, b2]: out = W2 act(W1 x + b1) + b2.</summary>
    sealed class TinyNetwork : IDisposable
    {
        public Parameter[] Parameters { get; }
        readonly Tensor _x, _y;
        readonly Func<Tensor, Tensor> _activation;

        public TinyNetwork(Func<Tensor, Tensor> activation, long seed = 3, int inputs = 3, int hidden = 5, int outputs = 2, int samples = 7)
        {
            _activation = activation;
            using var gen = new Generator((ulong)seed);
            Tensor R(params long[] shape) => randn(shape, ScalarType.Float64, generator: gen).DetachFromDisposeScope();
            Parameters = [new Parameter(R(hidden, inputs)), new Parameter(R(hidden)), new Parameter(R(outputs, hidden)), new Parameter(R(outputs))];
            _x = R(samples, inputs);
            _y = R(samples, outputs);
        }

        public Tensor Output(IReadOnlyList<Tensor> w) => _activation(_x.matmul(w[0].T) + w[1]).matmul(w[2].T) + w[3];

        public Tensor Loss(IReadOnlyList<Tensor> w) => (Output(w) - _y).pow(2).mean();

        public Tensor Closure(optim.Optimizer optimizer)
        {
            optimizer.zero_grad();
            var loss = Loss(Parameters);
            loss.backward();
            return loss;
        }

        public Tensor[] Copy() => Parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToArray();

        public void Dispose()
        {
            foreach (var p in Parameters) p.Dispose();
            _x.Dispose();
            _y.Dispose();
        }
    }

    static double[] Values(Tensor t) => t.detach().to(ScalarType.Float64).flatten().data<double>().ToArray();

    static double[] Flat(IEnumerable<Tensor> tensors) => tensors.SelectMany(Values).ToArray();

    static Sam Wrap(IEnumerable<Parameter> parameters, double lr, double rho, bool adaptive, double eta = 0.01) =>
        new(new SgdOptimizer(parameters, lr), rho, adaptive, eta, SamBatchNormStatistics.BothPasses);

    static void AssertClose(double[] expected, double[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + Math.Abs(expected[i])),
                $"element {i}: expected {expected[i]:R}, got {actual[i]:R}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OnAQuadraticTheBaseStepsWithTheClosedFormGradientAtThePerturbedPoint(bool adaptive)
    {
        // L(w) = 1/2 w^T A w + b^T w over w = (u, v): two parameters in two groups, so the norm must be the global one.
        const int n = 6;
        const double rho = 0.3, eta = 0.05, lr = 0.7;
        using var gen = new Generator(5);
        using var m = randn(n, n, ScalarType.Float64, generator: gen);
        using var a = m.matmul(m.T).add_(eye(n, dtype: ScalarType.Float64));
        using var b = randn(n, ScalarType.Float64, generator: gen);
        using var w0 = randn(n, ScalarType.Float64, generator: gen);
        using var u = new Parameter(w0[..2].clone());
        using var v = new Parameter(w0[2..].clone());
        using var sgd = new SgdOptimizer([new SgdGroup { Parameters = [u] }, new SgdGroup { Parameters = [v] }], lr);
        using var sam = new Sam(sgd, rho, adaptive, eta, SamBatchNormStatistics.BothPasses);
        var seen = new List<double[]>();
        Tensor Closure()
        {
            sam.zero_grad();
            var w = cat([u, v], 0);
            seen.Add(Values(w));
            var loss = 0.5 * w.dot(a.matmul(w)) + b.dot(w);
            loss.backward();
            return loss;
        }
        sam.step(Closure);

        // The pseudocode in float64 on the closed forms.
        var g = a.matmul(w0) + b;
        var t = adaptive ? w0.abs() + eta : ones_like(w0);
        var e = rho * t * t * g / (t * g).norm();
        var gAtPerturbed = a.matmul(w0 + e) + b;
        Assert.Equal(2, seen.Count);
        AssertClose(Values(w0), seen[0], 1e-15);
        AssertClose(Values(w0 + e), seen[1], 1e-14);
        AssertClose(Values(w0 - lr * gAtPerturbed), Flat([u, v]), 1e-13);
        Assert.Equal(1, sam.Steps);
    }

    [Fact]
    public void OnANetworkTheGradientMatchesFiniteDifferencesAtThePerturbedPoint()
    {
        using var net = new TinyNetwork(x => x.tanh());
        const double rho = 0.2, lr = 1;
        var w0 = net.Copy();
        Tensor[] g;
        using (var loss = net.Loss(w0.Select(w => w.requires_grad_(true)).ToArray()))
            g = autograd.grad([loss], w0).Select(x => x.detach().DetachFromDisposeScope()).ToArray();
        var norm = Math.Sqrt(g.Sum(x => x.pow(2).sum().item<double>()));
        var perturbed = w0.Zip(g, (w, gi) => (w.detach() + rho / norm * gi).DetachFromDisposeScope()).ToArray();

        using var sam = Wrap(net.Parameters, lr, rho, adaptive: false);
        sam.step(() => net.Closure(sam));
        // SGD with lr 1: what the base optimizer was given is w0 - w1.
        var given = Flat(w0.Zip(net.Parameters, (a, b) => a.detach() - b.detach()));

        // Central differences of the loss at w0 + e, coordinate by coordinate.
        const double h = 1e-6;
        var expected = new List<double>();
        using (no_grad())
            for (var k = 0; k < perturbed.Length; k++)
                for (var i = 0; i < perturbed[k].numel(); i++)
                {
                    var flat = perturbed[k].view(-1);
                    var x = flat[i].item<double>();
                    flat[i].fill_(x + h);
                    var up = net.Loss(perturbed).item<double>();
                    flat[i].fill_(x - h);
                    var down = net.Loss(perturbed).item<double>();
                    flat[i].fill_(x);
                    expected.Add((up - down) / (2 * h));
                }
        AssertClose(expected.ToArray(), given, 1e-7);
        // And it is not the gradient at w0 (the test would notice SAM degenerating to SGD).
        Assert.True(expected.Zip(Flat(g), (p, q) => Math.Abs(p - q)).Max() > 1e-3);
    }

    /// <summary>
    /// Kwon et al.'s statement: with T_w = |w| (eta = 0) and A a positive diagonal rescaling with T_{Aw}^-1 A = T_w^-1,
    /// the adaptive perturbation transforms as e' = A e, so the perturbed network computes the same function and the
    /// gradient the base optimizer receives is A^-1 times the original's (the base SGD step itself is not scale
    /// invariant, and is not claimed to be). Here A scales layer 1 (W1, b1) by alpha and W2 by 1/alpha, which leaves
    /// a ReLU network's function unchanged. SAM's perturbation is not invariant: the same check fails for it.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AsamsPerturbationIsScaleInvariantOnARescaledReluNetworkAndSamsIsNot(bool adaptive)
    {
        const double alpha = 3.7, rho = 0.5, lr = 1;
        var factors = new[] { alpha, alpha, 1 / alpha, 1.0 };
        using var original = new TinyNetwork(x => x.relu(), seed: 11);
        using var rescaled = new TinyNetwork(x => x.relu(), seed: 11);
        using (no_grad())
            for (var k = 0; k < 4; k++) rescaled.Parameters[k].mul_(factors[k]);
        using (var f = original.Output(original.Parameters))
        using (var f2 = rescaled.Output(rescaled.Parameters))
            AssertClose(Values(f), Values(f2), 1e-13); // the same function

        (Tensor[] Perturbed, Tensor[] Given, double[] Output) Step(TinyNetwork net)
        {
            var start = net.Copy();
            Tensor[]? perturbed = null;
            double[]? output = null;
            using var sam = Wrap(net.Parameters, lr, rho, adaptive, eta: 0);
            sam.step(() =>
            {
                if (sam.RepeatsMinibatch)
                {
                    perturbed = net.Copy();
                    using (no_grad()) output = Values(net.Output(net.Parameters));
                }
                return net.Closure(sam);
            });
            var e = perturbed!.Zip(start, (p, s) => (p - s).DetachFromDisposeScope()).ToArray();
            var given = start.Zip(net.Parameters, (s, w) => (s - w.detach()).DetachFromDisposeScope()).ToArray();
            return (e, given, output!);
        }
        var (e, g, output) = Step(original);
        var (e2, g2, output2) = Step(rescaled);
        var eMapped = Flat(e.Select((x, k) => x * factors[k]));
        var gMapped = Flat(g.Select((x, k) => x / factors[k]));
        if (adaptive)
        {
            AssertClose(eMapped, Flat(e2), 1e-12);       // e' = A e
            AssertClose(output, output2, 1e-12);         // the same function at the perturbed points
            AssertClose(gMapped, Flat(g2), 1e-11);       // g' = A^-1 g
        }
        else
        {
            var gap = eMapped.Zip(Flat(e2), (p, q) => Math.Abs(p - q)).Max();
            Assert.True(gap > 1e-2, $"SAM's perturbation moved with the rescaling (largest difference {gap})");
            Assert.True(output.Zip(output2, (p, q) => Math.Abs(p - q)).Max() > 1e-3);
        }
    }

    /// <summary>
    /// rho = 0: the perturbation is zero, the second pass re-evaluates the same minibatch with the same dropout masks at
    /// the same weights, and BatchNorm keeps the first pass's statistics, so the run is the base optimizer's bit for bit
    /// (weights, buffers, training loss), while every step counts two gradient evaluations.
    /// </summary>
    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    public void RhoZeroIsTheBaseOptimizerBitForBitAndEachStepCountsTwoGradientEvaluations(string baseName)
    {
        OptimizerOptionsBase baseOptions = baseName == "sgd"
            ? new SgdOptions { LearningRate = 0.05, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3 }
            : new AdamOptions { LearningRate = 1e-2, WeightDecay = 1e-3 };
        var samOptions = baseName == "sgd"
            ? new SamOptions { Rho = 0, Base = "sgd", LearningRate = 0.05, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3 }
            : new SamOptions { Rho = 0, Base = "adam", LearningRate = 1e-2, WeightDecay = 1e-3 };
        (double[] Weights, TrainingResult Result, long Steps) Train(OptimizerOptionsBase options)
        {
            var model = Synthetic.Mlp();
            using var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
            using var optimizer = OptimizerFactory.Create(model.parameters(), options, new OptimizerContext { TrainingSetSize = 320, Model = model });
            var trainer = new Trainer(task, optimizer, new TrainerOptions { Epochs = 2, TensorBoard = false });
            var result = trainer.Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            return (Synthetic.Flatten(model), result, trainer.StepsPerEpoch * 2);
        }
        var plain = Train(baseOptions);
        var sam = Train(samOptions);
        Assert.Equal(plain.Weights, sam.Weights);
        Assert.Equal(plain.Result.Epochs.Select(m => (m.TrainLoss, m.TrainError, m.TestError)), sam.Result.Epochs.Select(m => (m.TrainLoss, m.TrainError, m.TestError)));
        Assert.Equal(plain.Steps, plain.Result.GradEvals);
        Assert.Equal(2 * sam.Steps, sam.Result.GradEvals);
        Assert.Equal(2 * plain.Result.EffectiveEpochs, sam.Result.EffectiveEpochs, 12);
        Assert.Equal([2.0, 4.0], sam.Result.Epochs.Select(m => Math.Round(m.EffectiveEpochs, 9)));
    }

    [Fact]
    public void ARealSamRunDiffersFromItsBaseAndStillCountsTwoEvaluationsPerStep()
    {
        var model = Synthetic.Mlp();
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
        using var optimizer = OptimizerFactory.Create("asam", model.parameters(), new AsamOptions { LearningRate = 0.05, Rho = 0.5 },
            new OptimizerContext { Model = model });
        var trainer = new Trainer(task, optimizer, new TrainerOptions { Epochs = 1, TensorBoard = false });
        var result = trainer.Run();
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Equal(2 * trainer.StepsPerEpoch, result.GradEvals);
        Assert.Equal(trainer.StepsPerEpoch, ((Sam)optimizer).Steps);
        Assert.Equal(2.0, result.EffectiveEpochs, 9);
        Assert.True(Convert.ToDouble(result.Epochs[0].Extra!["sam_grad_norm"]) > 0, "the gradient norm is logged");
    }

    static nn.Module<Tensor, Tensor> BatchNormNetwork()
    {
        random.manual_seed(4);
        return nn.Sequential(("fc", nn.Linear(4, 6)), ("bn", nn.BatchNorm1d(6)), ("relu", nn.ReLU()), ("out", nn.Linear(6, 1)));
    }

    [Theory]
    [InlineData(SamBatchNormStatistics.FirstPass)]
    [InlineData(SamBatchNormStatistics.BothPasses)]
    public void BatchNormStatisticsComeFromTheFirstPassOnlyWhenAskedFor(SamBatchNormStatistics choice)
    {
        using var x = randn(16, 4, generator: new Generator(2));
        using var y = randn(16, 1, generator: new Generator(3));
        using var reference = BatchNormNetwork();
        using (no_grad()) reference.forward(x).Dispose(); // one plain forward pass in training mode
        var afterOnePass = reference.buffers().Select(b => Values(b)).ToList();

        using var model = BatchNormNetwork();
        using var sam = (Sam)OptimizerFactory.Create(model.parameters(), new SamOptions { Rho = 0.5, BatchNormStatistics = choice }, new OptimizerContext { Model = model });
        sam.step(() =>
        {
            sam.zero_grad();
            var loss = (model.forward(x) - y).pow(2).mean();
            loss.backward();
            return loss;
        });
        var after = model.buffers().Select(b => Values(b)).ToList();
        Assert.Equal(3, after.Count); // running mean, running variance, batches tracked
        if (choice == SamBatchNormStatistics.FirstPass) Assert.Equal(afterOnePass, after);
        else
        {
            Assert.Equal([2.0], after[2]);
            Assert.NotEqual(afterOnePass[0], after[0]);
        }
    }

    [Fact]
    public void AStopInsideTheSecondPassLeavesWeightsAndBaseStateUntouched()
    {
        using var net = new TinyNetwork(x => x.tanh());
        var before = Flat(net.Copy());
        using var sam = new Sam(new SgdOptimizer(net.Parameters, 0.1, momentum: 0.9), 0.3, batchNormStatistics: SamBatchNormStatistics.BothPasses);
        Assert.Throws<OperationCanceledException>(() => sam.step(() =>
        {
            if (sam.RepeatsMinibatch) throw new OperationCanceledException();
            return net.Closure(sam);
        }));
        Assert.Equal(before, Flat(net.Parameters));
        Assert.Equal(0, sam.Steps);
        Assert.False(sam.RepeatsMinibatch);
        Assert.Equal(0, ((SgdOptimizer)sam.BaseOptimizer).StateElements); // no momentum buffer: the base did not step
        sam.step(() => net.Closure(sam)); // and it steps normally afterwards
        Assert.Equal(1, sam.Steps);
    }

    [Fact]
    public void ATrainerRunStoppedMidEpochResumesBitIdentical()
    {
        var options = new AsamOptions { LearningRate = 0.01, Base = "adam", Rho = 0.3, Eta = 0.02 };
        (ClassificationTask, optim.Optimizer) Build()
        {
            var model = Synthetic.Mlp();
            var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
            return (task, OptimizerFactory.Create("asam", model.parameters(), options, new OptimizerContext { TrainingSetSize = 320, RunSeed = 6, Model = model }));
        }
        TrainerOptions Settings(string dir) => new() { Epochs = 3, OutputDirectory = dir, ModelName = "test-mlp", OptimizerName = "asam", TensorBoard = false };
        TrainerResumeCheck.StopAndResume(Build, Settings, stopEpoch: 2, stopStep: 4,
            resumed: o => Assert.Equal(30, ((Sam)o).Steps));
    }

    [Fact]
    public void TheStateDictionaryCarriesTheBaseStateAndSamsSettings()
    {
        using var net = new TinyNetwork(x => x.tanh());
        using var dir = new TempDir();
        using (var sam = new Sam(new SgdOptimizer(net.Parameters, 0.1, momentum: 0.9), 0.25, adaptive: true, eta: 0.03, SamBatchNormStatistics.BothPasses))
        {
            sam.step(() => net.Closure(sam));
            sam.step(() => net.Closure(sam));
            sam.save_state_dict(dir.File("sam.bin"));
        }
        using var other = new Sam(new SgdOptimizer(net.Parameters, 0.1, momentum: 0.9), 0.05, batchNormStatistics: SamBatchNormStatistics.BothPasses);
        other.load_state_dict(dir.File("sam.bin"));
        Assert.Equal((2L, 0.25, true, 0.03), (other.Steps, other.Rho, other.Adaptive, other.Eta));
        Assert.Equal(net.Parameters.Sum(p => p.numel()), ((SgdOptimizer)other.BaseOptimizer).StateElements); // the momentum buffers came back
    }

    [Fact]
    public void BadOptionsAreRefusedByName()
    {
        string Error(SharpnessAwareOptions o) => Assert.Throws<OptionsException>(o.Validate).Parameter;
        Assert.Equal("Rho", Error(new SamOptions { Rho = -0.1 }));
        Assert.Equal("Rho", Error(new AsamOptions { Rho = double.NaN }));
        Assert.Equal("Eta", Error(new AsamOptions { Eta = -1 }));
        Assert.Equal("LearningRate", Error(new SamOptions { LearningRate = 0 }));
        Assert.Equal("Momentum", Error(new SamOptions { Momentum = 1 }));
        Assert.Equal("Nesterov", Error(new SamOptions { Nesterov = true }));
        Assert.Equal("Beta2", Error(new SamOptions { Base = "adam", Beta2 = 1 }));
        Assert.Equal("BatchNormStatistics", Error(new SamOptions { BatchNormStatistics = (SamBatchNormStatistics)7 }));
        var unknown = Assert.Throws<OptionsException>(new SamOptions { Base = "rmsprop" }.Validate);
        Assert.Equal("Base must be one of sgd, adam, got 'rmsprop' (in code, Sam wraps any optimizer)", unknown.Message);
        var beta = Assert.Throws<OptionsException>(new SamOptions { Beta1 = 0.5 }.Validate);
        Assert.Equal("Beta1 applies only to Base adam, not sgd", beta.Message);
        var momentum = Assert.Throws<OptionsException>(new AsamOptions { Base = "adam", Momentum = 0.9 }.Validate);
        Assert.Equal("Momentum applies only to Base sgd, not adam", momentum.Message);

        using var p = new Parameter(zeros(3));
        var noModel = Assert.Throws<ArgumentException>(() => OptimizerFactory.Create("sam", [p]));
        Assert.Contains("needs the model", noModel.Message);
        Assert.Contains("rho must be zero or positive", Assert.Throws<ArgumentException>(() => new Sam(new SgdOptimizer([p], 0.1), -1)).Message);
        using var sam = new Sam(new SgdOptimizer([p], 0.1), 0.05, batchNormStatistics: SamBatchNormStatistics.BothPasses);
        Assert.Contains("closure", Assert.Throws<ArgumentNullException>(() => sam.step()).Message);
    }

    [Fact]
    public void ItIsRegisteredWithItsOptionsAndTheirJson()
    {
        var sam = OptimizerFactory.Describe("sam");
        var asam = OptimizerFactory.Describe("asam");
        Assert.Equal((typeof(SamOptions), typeof(AsamOptions)), (sam.OptionsType, asam.OptionsType));
        Assert.Equal((0.05, 0.5, 0.01), (((SamOptions)sam.Defaults).Rho, ((AsamOptions)asam.Defaults).Rho, ((AsamOptions)asam.Defaults).Eta));
        var options = new AsamOptions { Rho = 0.7, Base = "adam", Beta1 = 0.5, BatchNormStatistics = SamBatchNormStatistics.BothPasses };
        var json = asam.ToJson(options);
        Assert.Equal((0.7, "adam", "both_passes"), ((double)json["rho"]!, (string?)json["base"], (string?)json["batch_norm_statistics"]));
        Assert.Equal(options, asam.FromJson(JsonNode.Parse(json.ToJsonString())!));
        Assert.Same(sam, OptimizerFactory.DescribeOptions(new SamOptions()));
        Assert.Same(asam, OptimizerFactory.DescribeOptions(new AsamOptions()));
        Assert.False(sam.RecalibratesBatchNormByDefault);
        using var p = new Parameter(zeros(3));
        using var built = (Sam)OptimizerFactory.Create([p], new SamOptions { Base = "adam", LearningRate = 1e-3, BatchNormStatistics = SamBatchNormStatistics.BothPasses });
        Assert.IsType<AdamOptimizer>(built.BaseOptimizer);
        // The memory check counts e and the saved weights (ASAM: and T) besides the base's state.
        Assert.Equal(2 + 2 + 2, RunSetup.ParameterCopies(new SamOptions { Base = "adam" }));
        Assert.Equal(2 + 3 + 1, RunSetup.ParameterCopies(new AsamOptions { Momentum = 0.9 }));
        Assert.Equal(2 + 2, RunSetup.ParameterCopies(new SamOptions()));
    }

    [Fact]
    public void TheBenchSuiteChecksTheSamTargetOnTheL20RowsOfNetworksWithStatedTargets()
    {
        global::WideValley.Benchmarks.OptimizerBenchmarkResult Row(string model, int l, double samMs, double asamMs, double twoSgdMs = 10) => new()
        {
            Model = model, L = l, Parameters = 1, BatchSize = 128, SgdStepMs = 5, SgdSingleStepMedianMs = 5, EntropySgdStepMs = 5 * l,
            Ratio = 1, LangevinUpdateMs = 0.1, EntropySgdStateBuffers = 4, SgdStateBuffers = 1, ResidentGrowthMiB = 0, Rounds = 3,
            WarmupRounds = 1, Threads = 2, Device = "cpu", Data = "synthetic", Kernel = "fused-cpu",
            TwoSgdStepsMs = twoSgdMs, SamStepMs = samMs, AsamStepMs = asamMs,
        };
        var checks = global::WideValley.Benchmarks.BenchmarkTargets.Check(
            [Row("mnistfc", 20, 10.9, 11.5), Row("mnistfc", 5, 30, 30), Row("lenet", 20, 10, 10, twoSgdMs: 0), Row("small-mnistfc", 20, 50, 50)], []);
        Assert.Equal(new[] { "mnistfc sam_ratio met", "mnistfc asam_ratio missed" },
            checks.Where(c => c.Quantity.Contains("sam")).Select(c => $"{c.Model} {c.Quantity} {(c.Met ? "met" : "missed")}"));
        Assert.All(checks.Where(c => c.Quantity.Contains("sam")), c => Assert.Equal(1.1, c.AtMost));
    }

    static (int Code, string Out, string Err) Cli(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData("sam", new[] { "--rho", "-1" }, "--rho must be zero or positive, got -1")]
    [InlineData("asam", new[] { "--asam-eta", "-0.5" }, "--asam-eta must be zero or positive, got -0.5")]
    [InlineData("sam", new[] { "--sam-base", "rmsprop" }, "rmsprop")]
    [InlineData("sam", new[] { "--beta1", "0.5" }, "--beta1 applies only to --sam-base adam, not sgd")]
    [InlineData("sam", new[] { "--sam-base", "adam", "--momentum", "0.9" }, "--momentum applies only to --sam-base sgd, not adam")]
    [InlineData("sam", new[] { "--asam-eta", "0.1" }, "--asam-eta does not apply to --optimizer sam")]
    [InlineData("sgd", new[] { "--rho", "0.1" }, "--rho does not apply to --optimizer sgd")]
    [InlineData("sam", new[] { "--sam-bn-stats", "second" }, "second")]
    public void BadFlagsExitWithCode2AndNameTheFlag(string optimizer, string[] args, string expected)
    {
        var (code, _, err) = Cli(["train", "--optimizer", optimizer, .. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void TrainsFromTheCommandLineAndCountsTwoEffectiveEpochsPerEpoch()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Cli("train", "--model", "small-mnistfc", "--optimizer", "asam", "--sam-base", "adam", "--lr", "0.001",
            "--rho", "0.3", "--asam-eta", "0.02", "--sam-bn-stats", "both", "--max-train-samples", "600", "--batch-size", "100",
            "--epochs", "1", "--threads", "2", "--out", run, "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal(2 * (long)summary["final"]!["outer_steps"]!, (long)summary["grad_evals"]!);
    }
}
