using TorchSharp;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

public class HessianTraceRegularizerTests
{
    /// <summary>L(θ) = ½ θᵀ A θ + cᵀθ with θ = (a, b): its Hessian is A whatever θ is.</summary>
    sealed class Quadratic : nn.Module
    {
        public readonly TorchSharp.Modules.Parameter a, b;
        readonly Tensor matrix, shift;

        public Quadratic(Tensor matrix, int first) : base(nameof(Quadratic))
        {
            var n = (int)matrix.shape[0];
            this.matrix = matrix;
            shift = linspace(-1, 1, n, float64);
            a = nn.Parameter(linspace(0.3, 0.9, first, float64));
            b = nn.Parameter(linspace(-0.5, 0.4, n - first, float64));
            RegisterComponents();
        }

        public Tensor Loss()
        {
            var theta = cat([a, b]);
            return theta.matmul(matrix).matmul(theta).mul(0.5).add(theta.dot(shift));
        }
    }

    static Tensor SymmetricMatrix(int n, long seed)
    {
        using var generator = new Generator((ulong)seed);
        var m = randn([n, n], float64, generator: generator);
        return m.add(m.t()).div(2.0);
    }

    static HessianTraceRegularizer Htr(HessianTraceProbe probe = HessianTraceProbe.Rademacher, int probes = 10,
        HessianTraceParameters? parameters = null, long seed = 3) =>
        new(new HessianTraceRegularizerOptions
        {
            Gamma = 1, Probes = probes, Probe = probe, Frequency = 1, Seed = seed, Parameters = parameters ?? HessianTraceParameters.All,
        });

    /// <summary>Mean of the estimate over <paramref name="streams"/> probe streams (streams x K probes in all).</summary>
    static double MeanEstimate(HessianTraceRegularizer htr, nn.Module model, Func<Tensor> loss, int streams)
    {
        double sum = 0;
        for (var s = 0; s < streams; s++)
        {
            using var scope = NewDisposeScope();
            sum += htr.TraceEstimate(model, loss(), s).ToDouble();
        }
        return sum / streams;
    }

    [Theory]
    [InlineData(HessianTraceProbe.Gaussian)]
    [InlineData(HessianTraceProbe.Rademacher)]
    public void ExpectationIsTheTraceOnAQuadratic(HessianTraceProbe probe)
    {
        using var scope = NewDisposeScope();
        var a = SymmetricMatrix(6, seed: 1);
        var model = new Quadratic(a, first: 2);
        var htr = Htr(probe, probes: 10);
        const int streams = 400;
        var mean = MeanEstimate(htr, model, model.Loss, streams);
        var trace = a.trace().ToDouble();
        var frobenius2 = a.pow(2).sum().ToDouble();
        var diagonal2 = a.diagonal().pow(2).sum().ToDouble();
        // Var[vᵀAv]: 2‖A‖_F² (Gaussian), 2(‖A‖_F² − Σ a_ii²) (Rademacher); five standard errors of the mean.
        var variance = probe == HessianTraceProbe.Gaussian ? 2 * frobenius2 : 2 * (frobenius2 - diagonal2);
        var tolerance = 5 * Math.Sqrt(variance / (streams * 10));
        Assert.InRange(mean, trace - tolerance, trace + tolerance);
        // One stream alone is not the trace (the estimator is random off a diagonal Hessian).
        Assert.NotEqual(trace, htr.TraceEstimate(model, model.Loss(), 0).ToDouble(), 6);
    }

    [Fact]
    public void RademacherIsExactForADiagonalHessian()
    {
        using var scope = NewDisposeScope();
        var a = diag(tensor(new[] { 3.0, -1.5, 0.25, 7.0, 2.0 }));
        var model = new Quadratic(a, first: 3);
        var htr = Htr(HessianTraceProbe.Rademacher, probes: 1);
        for (var s = 0; s < 20; s++)
            Assert.Equal(10.75, htr.TraceEstimate(model, model.Loss(), s).ToDouble(), 12);
    }

    [Fact]
    public void MaskedEstimateOnAQuadraticIsTheSelectedBlocksTrace()
    {
        using var scope = NewDisposeScope();
        var a = SymmetricMatrix(7, seed: 2);
        var model = new Quadratic(a, first: 3);
        var htr = Htr(HessianTraceProbe.Rademacher, probes: 10, parameters: HessianTraceParameters.Named(["b"]));
        var block = a[TensorIndex.Slice(3, 7), TensorIndex.Slice(3, 7)];
        // Deterministic: with the stream's own probes the estimate is (1/K) Σ v_kᵀ A_bb v_k.
        var probes = htr.DrawProbes(5, 4, float64);
        var expected = probes.matmul(block).mul(probes).sum().ToDouble() / 10;
        Assert.Equal(expected, htr.TraceEstimate(model, model.Loss(), 5).ToDouble(), 12);
        // In expectation: tr(A_bb).
        const int streams = 300;
        var mean = MeanEstimate(htr, model, model.Loss, streams);
        var variance = 2 * (block.pow(2).sum().ToDouble() - block.diagonal().pow(2).sum().ToDouble());
        var tolerance = 5 * Math.Sqrt(variance / (streams * 10));
        var trace = block.trace().ToDouble();
        Assert.InRange(mean, trace - tolerance, trace + tolerance);
    }

    /// <summary>A tanh network in float64 and a fixed minibatch; the MSE loss is smooth to all orders.</summary>
    static (nn.Module<Tensor, Tensor> Model, Func<Tensor> Loss) TinyNetwork(params int[] widths)
    {
        manual_seed(17);
        var layers = new List<nn.Module<Tensor, Tensor>>();
        for (var i = 0; i + 1 < widths.Length; i++)
        {
            layers.Add(nn.Linear(widths[i], widths[i + 1], dtype: float64));
            if (i + 2 < widths.Length) layers.Add(nn.Tanh());
        }
        var model = nn.Sequential(layers.ToArray());
        using var generator = new Generator(23);
        var x = randn([5, widths[0]], float64, generator: generator).DetachFromDisposeScope();
        var y = randn([5, widths[^1]], float64, generator: generator).DetachFromDisposeScope();
        return (model, () => nn.functional.mse_loss(model.call(x), y));
    }

    /// <summary>The exact Hessian over <paramref name="parameters"/> (in order, flattened), by double autograd.</summary>
    static Tensor ExactHessian(List<Tensor> parameters, Tensor loss)
    {
        var grads = autograd.grad([loss], parameters, create_graph: true, retain_graph: true);
        var flat = cat(grads.Select(g => g.reshape(-1)).ToList());
        var n = flat.shape[0];
        var h = zeros([n, n], float64);
        for (long i = 0; i < n; i++)
        {
            var row = autograd.grad([flat[i]], parameters, retain_graph: true, allow_unused: true);
            h[i] = cat(row.Select((r, j) => r.IsInvalid ? zeros(parameters[j].numel(), float64) : r.reshape(-1)).ToList());
        }
        return h;
    }

    /// <summary>Σ over the selected tensors of tr(H_ll): the diagonal of the exact Hessian, over the selection.</summary>
    static double ExactSelectedTrace(nn.Module model, Func<Tensor> loss, IReadOnlyList<string> selected)
    {
        using var scope = NewDisposeScope();
        var parameters = model.named_parameters().Where(p => selected.Contains(p.name)).Select(p => (Tensor)p.parameter).ToList();
        return ExactHessian(parameters, loss()).trace().ToDouble();
    }

    public static TheoryData<string, string[]> Selections => new()
    {
        { "all", ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"] },
        // Six tensors: the authors' middle is indices ⌊6/4⌋ = 1 .. ⌊18/4⌋ = 4.
        { "middle", ["0.bias", "2.weight", "2.bias", "4.weight"] },
        { "non-middle", ["0.weight", "4.bias"] },
        { "2,4.bias", ["2.weight", "2.bias", "4.bias"] },
    };

    [Theory]
    [MemberData(nameof(Selections))]
    public void MaskedEstimateOnANetworkIsTheSumOfTheSelectedBlocksTraces(string selection, string[] names)
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork(2, 3, 3, 2);
        var htr = Htr(HessianTraceProbe.Gaussian, probes: 4, parameters: HessianTraceParameters.Parse(selection));
        Assert.Equal(names, htr.SelectedNames(model));
        var selected = model.named_parameters().Where(p => names.Contains(p.name)).Select(p => (Tensor)p.parameter).ToList();
        var h = ExactHessian(selected, loss());
        var n = h.shape[0];
        Assert.Equal(n, htr.SelectedDimension(model));
        // The basis vectors as probes: (1/n) Σ e_iᵀ H e_i, the selected blocks' trace over n, exactly.
        Assert.Equal(h.trace().ToDouble(), htr.TraceEstimate(model, loss(), eye(n, dtype: float64)).ToDouble() * n, 10);
        // The stream's random probes: (1/K) Σ v_kᵀ H_SS v_k with the same v_k.
        var probes = htr.DrawProbes(9, n, float64);
        var expected = probes.matmul(h).mul(probes).sum().ToDouble() / 4;
        Assert.Equal(expected, htr.TraceEstimate(model, loss(), 9).ToDouble(), 10);
    }

    [Fact]
    public void AuthorsMiddleOnLeNetIsConv2Fc1Fc2WithBiases()
    {
        Assert.Equal((2, 7), HessianTraceParameters.AuthorsMiddleRange(10));
        Assert.Equal((0, 0), HessianTraceParameters.AuthorsMiddleRange(1));
        Assert.Equal((1, 3), HessianTraceParameters.AuthorsMiddleRange(4));
    }

    [Theory]
    [InlineData("all", 9)]
    [InlineData("middle", 5)] // four tensors: indices 1..3 = 0.bias, 2.weight, 2.bias
    public void PenaltyGradientMatchesFiniteDifferencesOfTheExactTrace(string selection, int dimension)
    {
        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork(2, 2, 1);
        var htr = Htr(parameters: HessianTraceParameters.Parse(selection));
        Assert.Equal(dimension, htr.SelectedDimension(model));
        var names = htr.SelectedNames(model);
        // Every Rademacher sign pattern once: E over the uniform patterns of v vᵀ is exactly I, so the estimate is tr(H_SS).
        var patterns = 1 << dimension;
        var signs = new double[patterns * dimension];
        for (var p = 0; p < patterns; p++)
            for (var i = 0; i < dimension; i++)
                signs[p * dimension + i] = (p >> i & 1) == 1 ? 1 : -1;
        var probes = tensor(signs, [patterns, dimension], float64);
        var estimate = htr.TraceEstimate(model, loss(), probes);
        Assert.Equal(ExactSelectedTrace(model, loss, names), estimate.ToDouble(), 10);
        estimate.backward();
        const double step = 1e-5;
        var checkedEntries = 0;
        foreach (var (name, parameter) in model.named_parameters())
        {
            var analytic = parameter.grad!.reshape(-1).data<double>().ToArray();
            var flat = parameter.detach().view(-1);
            for (var j = 0; j < flat.shape[0]; j++)
            {
                double Shifted(double by)
                {
                    var original = flat[j].ToDouble();
                    using (no_grad()) flat[j] = original + by;
                    var value = ExactSelectedTrace(model, loss, names);
                    using (no_grad()) flat[j] = original;
                    return value;
                }
                var numeric = (Shifted(step) - Shifted(-step)) / (2 * step);
                Assert.True(Math.Abs(numeric - analytic[j]) <= 1e-6 * (1 + Math.Abs(numeric)),
                    $"{name}[{j}]: back-propagated {analytic[j]}, central difference of the exact trace {numeric}");
                checkedEntries++;
            }
        }
        Assert.Equal(9, checkedEntries); // every parameter, selected or not, gets the penalty's gradient
    }

    [Fact]
    public void GatingAppliesOnEveryFreqthStepFromTheStartEpoch()
    {
        var htr = new HessianTraceRegularizer(new HessianTraceRegularizerOptions { Gamma = 0.5, Frequency = 3, StartEpoch = 2, Probes = 2 });
        for (var epoch = 1; epoch <= 3; epoch++)
            for (var step = 0; step < 8; step++)
                Assert.Equal(epoch >= 2 && step is 0 or 3 or 6, htr.AppliesAt(epoch, step));

        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork(2, 2, 1);
        Assert.Null(htr.Penalty(new RegularizationContext(model, loss(), 1, 0, 0)));
        Assert.Null(htr.Penalty(new RegularizationContext(model, loss(), 2, 4, 0)));
        var penalty = htr.Penalty(new RegularizationContext(model, loss(), 2, 3, 42));
        Assert.NotNull(penalty);
        Assert.Equal(0.5 * htr.TraceEstimate(model, loss(), 42).ToDouble(), penalty.ToDouble(), 12);
        Assert.Equal(1, htr.Applications);
        Assert.Equal(21, HessianTraceRegularizerOptions.StartEpochForAuthorsSp(20));
    }

    /// <summary>Records where the trainer asked, and passes the question on.</summary>
    sealed class Recording(ILossRegularizer inner) : ILossRegularizer
    {
        public readonly List<(int Epoch, long Step, long Evaluation, bool Applied)> Calls = [];

        public Tensor? Penalty(RegularizationContext context)
        {
            var penalty = inner.Penalty(context);
            Calls.Add((context.Epoch, context.StepInEpoch, context.GradientEvaluation, penalty is not null));
            return penalty;
        }
    }

    /// <summary>½λ‖θ‖²: its gradient is SGD's weight decay.</summary>
    sealed class HalfSquaredNorm(double lambda) : ILossRegularizer
    {
        public Tensor? Penalty(RegularizationContext context) =>
            context.Model.parameters().Select(p => p.pow(2).sum()).Aggregate((x, y) => x.add(y)).mul(lambda / 2);
    }

    static double[] Train(ILossRegularizer? regularizer, double weightDecay, int epochs)
    {
        var model = Synthetic.Mlp(dropout: 0);
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 3);
        var optimizer = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.1, WeightDecay = weightDecay },
            new OptimizerContext { TrainingSetSize = 320 });
        var result = new Trainer(task, optimizer, new TrainerOptions { Epochs = epochs, EvaluateTest = false, Regularizer = regularizer }).Run();
        Assert.Equal(TrainingStatus.Completed, result.Status);
        return Synthetic.Flatten(model);
    }

    [Fact]
    public void TrainerAppliesTheRegulariserOnTheGatedStepsOnly()
    {
        var htr = new HessianTraceRegularizer(new HessianTraceRegularizerOptions { Gamma = 1e-3, Frequency = 4, StartEpoch = 2, Probes = 1 });
        var recording = new Recording(htr);
        Train(recording, 0, epochs: 3);
        // 320 / 32 = 10 steps per epoch; one gradient evaluation per SGD step.
        Assert.Equal(30, recording.Calls.Count);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), recording.Calls.Select(c => c.Evaluation));
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (i / 10 + 1, (long)(i % 10))), recording.Calls.Select(c => (c.Epoch, c.Step)));
        var applied = recording.Calls.Where(c => c.Applied).Select(c => (c.Epoch, c.Step)).ToArray();
        Assert.Equal(new[] { (2, 0L), (2, 4L), (2, 8L), (3, 0L), (3, 4L), (3, 8L) }, applied);
        Assert.Equal(6, htr.Applications);
    }

    [Fact]
    public void TrainerBackPropagatesThroughTheRegulariser()
    {
        // ½λ‖θ‖² as a regulariser must train exactly as SGD's weight decay λ does.
        var decayed = Train(null, 0.01, epochs: 2);
        var regularised = Train(new HalfSquaredNorm(0.01), 0, epochs: 2);
        var plain = Train(null, 0, epochs: 2);
        for (var i = 0; i < decayed.Length; i++)
            Assert.Equal(decayed[i], regularised[i], 5);
        Assert.True(decayed.Zip(plain).Max(p => Math.Abs(p.First - p.Second)) > 1e-4, "weight decay should change the weights");
    }

    [Fact]
    public void AResumedRunDrawsTheSameProbesAndEndsBitIdentical()
    {
        static (ClassificationTask Task, optim.Optimizer Optimizer, TrainerOptions Options) Build(string dir)
        {
            var model = Synthetic.Mlp(dropout: 0);
            var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 3);
            var optimizer = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.1, Momentum = 0.9 },
                new OptimizerContext { TrainingSetSize = 320 });
            // A fresh regulariser each time, as a resumed process has: the probes may depend only on the run's position.
            var htr = new HessianTraceRegularizer(new HessianTraceRegularizerOptions { Gamma = 0.05, Frequency = 3, Probes = 1, Seed = 4 });
            return (task, optimizer, new TrainerOptions { Epochs = 2, EvaluateTest = false, OutputDirectory = dir, TensorBoard = false, Regularizer = htr });
        }
        using var dirA = new TempDir();
        using var dirB = new TempDir();
        double[] uninterrupted;
        var (taskA, optA, optionsA) = Build(dirA.Path);
        using (taskA)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskA, optA, optionsA).Run().Status);
            uninterrupted = Synthetic.Flatten(taskA.Model);
        }
        var (taskB, optB, optionsB) = Build(dirB.Path);
        using (taskB)
        {
            var trainer = new Trainer(taskB, optB, optionsB);
            trainer.EpochCompleted = m => { if (m.Epoch == 1) trainer.RequestStop(); };
            Assert.Equal(TrainingStatus.Interrupted, trainer.Run().Status);
        }
        var (taskC, optC, optionsC) = Build(dirB.Path);
        using (taskC)
        {
            Assert.Equal(TrainingStatus.Completed, new Trainer(taskC, optC, optionsC).Run(resume: true).Status);
            Assert.Equal(uninterrupted, Synthetic.Flatten(taskC.Model));
            Assert.Equal(4, ((HessianTraceRegularizer)optionsC.Regularizer!).Applications); // epoch 2's steps 0, 3, 6, 9
        }
    }

    [Fact]
    public void BadOptionsAndInputsAreRefusedClearly()
    {
        Assert.Contains("Gamma", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { Gamma = 0 })).Message);
        Assert.Contains("Gamma", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { Gamma = double.NaN })).Message);
        Assert.Contains("Gamma", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { Gamma = -1 })).Message);
        Assert.Contains("Probes", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { Probes = 0 })).Message);
        Assert.Contains("Frequency", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { Frequency = 0 })).Message);
        Assert.Contains("StartEpoch", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { StartEpoch = 0 })).Message);
        Assert.Contains("Probe", Assert.ThrowsAny<ArgumentException>(() => new HessianTraceRegularizer(new() { Probe = (HessianTraceProbe)7 })).Message);
        Assert.ThrowsAny<ArgumentException>(() => HessianTraceRegularizerOptions.StartEpochForAuthorsSp(-1));
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => HessianTraceParameters.Parse(" ")).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => HessianTraceParameters.Parse("fc1,fc1")).Message);
        Assert.Contains("blank", Assert.Throws<ArgumentException>(() => HessianTraceParameters.Parse("fc1,,fc2")).Message);
        Assert.Equal("2.weight,4", HessianTraceParameters.Parse(" 2.weight, 4 ").ToString());
        Assert.Same(HessianTraceParameters.AuthorsNonMiddle, HessianTraceParameters.Parse("Non-Middle"));
        Assert.Equal(new HessianTraceRegularizerOptions { Parameters = HessianTraceParameters.Parse("fc1,fc2") },
            new HessianTraceRegularizerOptions { Parameters = HessianTraceParameters.Named(["fc1", "fc2"]) });
        Assert.NotEqual(HessianTraceParameters.Parse("fc2,fc1"), HessianTraceParameters.Parse("fc1,fc2"));

        using var scope = NewDisposeScope();
        var (model, loss) = TinyNetwork(2, 2, 1);
        var unknown = Htr(parameters: HessianTraceParameters.Named(["fc9"]));
        var message = Assert.Throws<ArgumentException>(() => unknown.TraceEstimate(model, loss(), 0)).Message;
        Assert.Contains("'fc9'", message);
        Assert.Contains("0.weight, 0.bias, 2.weight, 2.bias", message);

        var htr = Htr();
        Assert.Contains("[K, 9]", Assert.Throws<ArgumentException>(() => htr.TraceEstimate(model, loss(), ones(3, 8, dtype: float64))).Message);
        Assert.Contains("[K, 9]", Assert.Throws<ArgumentException>(() => htr.TraceEstimate(model, loss(), ones(9, dtype: float64))).Message);
        Assert.Contains("scalar", Assert.Throws<ArgumentException>(() => htr.TraceEstimate(model, loss().expand(2), 0)).Message);
        using (no_grad())
            Assert.Contains("no gradient graph", Assert.Throws<ArgumentException>(() => htr.TraceEstimate(model, loss(), 0)).Message);

        model.named_parameters().First(p => p.name == "2.bias").parameter.requires_grad = false;
        var frozen = Htr(parameters: HessianTraceParameters.Named(["2"]));
        Assert.Contains("frozen", Assert.Throws<ArgumentException>(() => frozen.SelectedNames(model)).Message);
        Assert.Equal(["0.weight", "0.bias", "2.weight"], Htr().SelectedNames(model));
    }
}
