using TorchSharp;
using WideValley.Optim;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

/// <summary>Entropy-SGD / Entropy-Adam as TorchSharp optimizers: contract, limits, state, resources.</summary>
public class EntropySgdTests
{
    /// <summary>A small classifier and a closure over a fixed, replayable minibatch sequence.</summary>
    sealed class Problem
    {
        public readonly nn.Module<Tensor, Tensor> Model;
        readonly Tensor _x, _y;
        public int Calls;

        public Problem(long seed = 1, ScalarType dtype = ScalarType.Float32)
        {
            random.manual_seed(seed);
            Model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3));
            Model.to(dtype);
            using var gen = new Generator(7);
            _x = randn(256, 5, generator: gen).to(dtype).DetachFromDisposeScope();
            _y = randint(0, 3, 256, generator: gen).to(ScalarType.Int64).DetachFromDisposeScope();
        }

        public Func<Tensor> Closure(optim.Optimizer opt) => () =>
        {
            opt.zero_grad();
            var start = Calls++ % 8 * 32;
            var loss = nn.functional.cross_entropy(Model.forward(_x.narrow(0, start, 32)), _y.narrow(0, start, 32));
            loss.backward();
            return loss;
        };

        public void Steps(optim.Optimizer opt, int n)
        {
            var closure = Closure(opt);
            for (var i = 0; i < n; i++)
            {
                using var scope = NewDisposeScope();
                opt.step(closure);
            }
        }
    }

    static LocalEntropyOptions Options(int l = 5) => new() { L = l, LangevinLr = 0.1, Noise = 1e-3, LangevinMomentum = 0.9, LangevinNesterov = true, Seed = 3 };

    [Theory]
    [InlineData(1, false)]
    [InlineData(5, false)]
    [InlineData(20, false)]
    [InlineData(5, true)]
    public void EvaluatesTheClosureExactlyLTimesPerStep(int l, bool extra)
    {
        var problem = new Problem();
        using var opt = new EntropySgd(problem.Model.parameters(), 1, Options(l) with { ExtraClosureEvaluation = extra }, momentum: 0.9, nesterov: true);
        problem.Steps(opt, 7);
        Assert.Equal(7 * (l + (extra ? 1 : 0)), problem.Calls);
    }

    [Fact]
    public void ScopeSchedulesFollowTheirFormulas()
    {
        Assert.Equal(1e-4 * Math.Pow(1.001, 500), ScopeSchedule.Parse("exp:1e-4:1e-3").Gamma(500), 15);
        Assert.Equal(0.03, ScopeSchedule.Parse("const:0.03").Gamma(12345), 15);
        Assert.Equal(0.1 * (1 + 0.01 * 50), ScopeSchedule.Parse("linear:0.1:0.01").Gamma(50), 15);
        Assert.Equal(0.1 * Math.Pow(1 + 0.01 * 50, 2), ScopeSchedule.Parse("quadratic:0.1:0.01").Gamma(50), 15);
        Assert.Equal(0.5 * (1 - Math.Exp(-0.02 * 50)), ScopeSchedule.Parse("bounded:0.5:0.02").Gamma(50), 15);
        Assert.Equal(0.0, ScopeSchedule.Parse("bounded:0.5:0.02").Gamma(0));
        foreach (var spec in new[] { "exp:0.0001:0.001", "const:0.03", "linear:0.1:0.01", "quadratic:0.1:0.01", "bounded:0.5:0.02" })
            Assert.Equal(spec, ScopeSchedule.Parse(spec).Spec);
        Assert.Contains("G0", Assert.Throws<FormatException>(() => ScopeSchedule.Parse("exp:-1:0.1")).Message);
        Assert.Contains("unknown form", Assert.Throws<FormatException>(() => ScopeSchedule.Parse("cosine:1:2")).Message);
    }

    [Fact]
    public void TheCounterTCountsOuterUpdatesUnlessFrozenAsInTheReference()
    {
        var problem = new Problem();
        using var opt = new EntropySgd(problem.Model.parameters(), 1, Options(2) with { Scope = new ExponentialScope(1e-2, 0.1) });
        problem.Steps(opt, 4);
        Assert.Equal(4, opt.Estimator.OuterSteps);
        Assert.Equal(1e-2 * Math.Pow(1.1, 4), opt.Estimator.CurrentGamma, 15);
        var frozen = new Problem();
        using var reference = new EntropySgd(frozen.Model.parameters(), 1, Options(2) with { Scope = new ExponentialScope(1e-2, 0.1), ScopeCounting = ScopeCounting.FrozenAsReference });
        frozen.Steps(reference, 4);
        Assert.Equal(1e-2, reference.Estimator.CurrentGamma, 15);
    }

    /// <summary>
    /// With one noiseless Langevin step, alpha = 1 and eta' = 1, the chain's first step is x' = x - g(x) and mu = x',
    /// so the local-entropy gradient x - mu is exactly the minibatch gradient: Entropy-SGD is SGD with the same outer
    /// optimizer settings, minibatch for minibatch.
    /// </summary>
    [Theory]
    [InlineData(0.0, false)]
    [InlineData(0.9, true)]
    public void ReducesToPlainSgdWithOneNoiselessStep(double momentum, bool nesterov)
    {
        var limit = new LocalEntropyOptions { L = 1, LangevinLr = 1, Noise = 0, Alpha = 1, Scope = new ConstantScope(0.5) };
        var a = new Problem();
        using (var esgd = new EntropySgd(a.Model.parameters(), 0.05, limit, momentum, nesterov)) a.Steps(esgd, 30);
        var b = new Problem();
        using (var sgd = new SgdOptimizer(b.Model.parameters(), 0.05, momentum, nesterov: nesterov)) b.Steps(sgd, 30);
        var x = Synthetic.Flatten(a.Model);
        var y = Synthetic.Flatten(b.Model);
        Assert.True(x.Zip(y, (u, v) => Math.Abs(u - v)).Max() < 1e-5, "Entropy-SGD in this limit must track SGD");
    }

    [Theory]
    [InlineData(LangevinKernel.FusedCpu, "entropy-sgd")]
    [InlineData(LangevinKernel.TensorOps, "entropy-sgd")]
    [InlineData(LangevinKernel.FusedCpu, "entropy-adam")]
    public void StateDictRoundTripContinuesBitIdentically(LangevinKernel kernel, string name)
    {
        using var dir = new TempDir();
        optim.Optimizer Create(nn.Module model) => OptimizerFactory.Create(name, model.parameters(), name == "entropy-sgd"
            ? new EntropySgdOptions
            {
                LearningRate = 1, Momentum = 0.9, Nesterov = true,
                LocalEntropy = Options(4) with { Kernel = kernel, Scope = new ExponentialScope(1e-3, 1e-2) },
            }
            : new EntropyAdamOptions
            {
                LearningRate = 0.01,
                LocalEntropy = Options(4) with { Kernel = kernel, Scope = new ExponentialScope(1e-3, 1e-2) },
            });
        var whole = new Problem();
        using (var opt = Create(whole.Model)) whole.Steps(opt, 12);

        var first = new Problem();
        using (var opt = Create(first.Model))
        {
            first.Steps(opt, 6);
            ((TorchSharp.Modules.OptimizerHelper)opt).save_state_dict(dir.File("opt.bin"));
            first.Model.save(dir.File("model.bin"));
        }
        var second = new Problem();
        second.Model.load(dir.File("model.bin"));
        second.Calls = first.Calls; // the data stream continues where it was
        using (var opt = Create(second.Model))
        {
            ((TorchSharp.Modules.OptimizerHelper)opt).load_state_dict(dir.File("opt.bin"));
            Assert.Equal(6, ((LocalEntropyOptimizer)opt).Estimator.OuterSteps);
            second.Steps(opt, 6);
        }
        Assert.Equal(Synthetic.Flatten(whole.Model), Synthetic.Flatten(second.Model));
    }

    [Fact]
    public void LearningRateSchedulersChangeTheOuterRate()
    {
        var problem = new Problem();
        using var opt = new EntropySgd(problem.Model.parameters(), 1.0, Options(3), momentum: 0.9, nesterov: true);
        var scheduler = optim.lr_scheduler.StepLR(opt, 1, 0.1);
        Assert.Equal(1.0, opt.ParamGroups.Single().LearningRate, 12);
        problem.Steps(opt, 1);
        scheduler.step();
        Assert.Equal(0.1, opt.BaseOptimizer.ParamGroups.Single().LearningRate, 12);
        // A zero outer rate leaves the weights where they are, although the Langevin chain still runs.
        foreach (var g in opt.ParamGroups) g.LearningRate = 0;
        var before = Synthetic.Flatten(problem.Model);
        problem.Steps(opt, 2);
        Assert.Equal(before, Synthetic.Flatten(problem.Model));
    }

    [Theory]
    [InlineData(LangevinKernel.FusedCpu)]
    [InlineData(LangevinKernel.TensorOps)]
    public void NativeTensorCountStaysFlatOver2000Steps(LangevinKernel kernel)
    {
        var problem = new Problem();
        using var opt = new EntropySgd(problem.Model.parameters(), 0.5, Options(2) with { Kernel = kernel, DiagnosticsEvery = 5 }, momentum: 0.9, nesterov: true);
        problem.Steps(opt, 100);
        opt.TakeDiagnostics();
        // The count is process-wide: let earlier garbage (other tests', leaked wrappers) be finalized first.
        static long Live() { GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect(); return torch.Tensor.TotalCount; }
        var after100 = Live();
        problem.Steps(opt, 1900);
        opt.TakeDiagnostics();
        Assert.Equal(after100, Live());
    }

    [Theory]
    [InlineData(LangevinKernel.FusedCpu)]
    [InlineData(LangevinKernel.TensorOps)]
    public void DiagnosticsCostOneClosureCallAndLeaveTheGradientAlone(LangevinKernel kernel)
    {
        var dtype = kernel == LangevinKernel.FusedCpu ? ScalarType.Float32 : ScalarType.Float64;
        var digits = kernel == LangevinKernel.FusedCpu ? 4 : 9;
        LocalEntropyOptions Options(int every) => new()
        {
            L = 50, Scope = new ConstantScope(1), LangevinLr = 0.1, Noise = 0, DiagnosticsEvery = every, Kernel = kernel,
        };
        using var plain = new QuadraticProblem(32, 0.5, 4, dtype);
        using (var estimator = new LocalEntropy([plain.X], Options(0))) estimator.Estimate(plain.Closure);
        Assert.Equal(50, plain.Calls);

        using var q = new QuadraticProblem(32, 0.5, 4, dtype);
        using var g0 = q.A.mv(q.X.detach()) - q.B;      // the plain (full-batch) gradient at x
        using var estimator2 = new LocalEntropy([q.X], Options(1));
        estimator2.Estimate(q.Closure);
        Assert.Equal(51, q.Calls);
        // The extra evaluation happens with x restored, and .grad still holds x - mu afterwards.
        Assert.Equal(ValuesOf(plain.X), ValuesOf(q.X));
        Assert.Equal(ValuesOf(plain.X.grad!), ValuesOf(q.X.grad!));
        var d = estimator2.TakeDiagnostics()!;
        using var le = q.X.grad!.to(ScalarType.Float64);     // x - mu
        using var g = g0.to(ScalarType.Float64);
        Assert.Equal(1, d.Samples);
        Assert.Equal(le.norm().ToDouble(), d.MeanDistance, digits);
        Assert.Equal(g.norm().ToDouble(), d.MeanSgdGradientNorm, digits);
        Assert.Equal((le * g).sum().ToDouble() / (le.norm().ToDouble() * g.norm().ToDouble()), d.MeanCosine, digits);
        // x - mu is a sum of positive multiples of gradients along the path: on a convex quadratic it points downhill.
        Assert.True(d.MeanCosine > 0.5);
        Assert.Null(estimator2.TakeDiagnostics());
    }

    [Fact]
    public void EstimatorStateWrittenBeforeVersioningStillLoads()
    {
        using var q = new QuadraticProblem(8, 0.5, 4, ScalarType.Float32);
        using var estimator = new LocalEntropy([q.X], new LocalEntropyOptions { L = 2, Kernel = LangevinKernel.FusedCpu });
        // Layout 1: t, Langevin steps, generator state (none for the fused kernel); no diagnostics.
        using var legacy = new MemoryStream();
        using (var w = new BinaryWriter(legacy, System.Text.Encoding.UTF8, leaveOpen: true)) { w.Write(37L); w.Write(740L); w.Write(0); }
        legacy.Position = 0;
        using (var r = new BinaryReader(legacy)) estimator.Load(r);
        Assert.Equal(37, estimator.OuterSteps);
        Assert.Equal(740, estimator.LangevinSteps);

        using var current = new MemoryStream();
        using (var w = new BinaryWriter(current, System.Text.Encoding.UTF8, leaveOpen: true)) estimator.Save(w);
        current.Position = 0;
        using var copy = new LocalEntropy([q.X], new LocalEntropyOptions { L = 2, Kernel = LangevinKernel.FusedCpu });
        using (var r = new BinaryReader(current)) copy.Load(r);
        Assert.Equal((37L, 740L), (copy.OuterSteps, copy.LangevinSteps));

        using var future = new MemoryStream();
        using (var w = new BinaryWriter(future, System.Text.Encoding.UTF8, leaveOpen: true)) w.Write(-99L);
        future.Position = 0;
        using var reader = new BinaryReader(future);
        Assert.Contains("version 99", Assert.Throws<InvalidDataException>(() => copy.Load(reader)).Message);
    }

    static double[] ValuesOf(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).cpu();
        return d.data<double>().ToArray();
    }

    [Fact]
    public void OptionsAreValidatedWithClearMessages()
    {
        // Errors name the property (ParamName); front ends map it to their own spelling (the CLI: --alpha, ...).
        Assert.Contains("at least 1", Assert.Throws<OptionsException>(() => new LocalEntropyOptions { L = 0 }.Validate()).Message);
        Assert.Equal("Alpha", Assert.Throws<OptionsException>(() => new LocalEntropyOptions { Alpha = 1.5 }.Validate()).ParamName);
        Assert.Equal("Noise", Assert.Throws<OptionsException>(() => new LocalEntropyOptions { Noise = -1 }.Validate()).ParamName);
        Assert.Contains("LangevinMomentum", Assert.Throws<OptionsException>(() => new LocalEntropyOptions { LangevinNesterov = true }.Validate()).Message);
        var problem = new Problem();
        using var opt = new EntropySgd(problem.Model.parameters(), 1, Options());
        Assert.Contains("closure", Assert.Throws<ArgumentNullException>(() => opt.step()).Message);
    }

    [Fact]
    public void ReferencePresetSwitchesEveryDeviation()
    {
        var r = new LocalEntropyOptions().AsReferenceCode();
        Assert.Equal(LangevinNoiseScaling.Reference, r.NoiseScaling);
        Assert.Equal(LangevinAverage.Reference, r.Average);
        Assert.Equal(LangevinMomentumTarget.LossGradient, r.MomentumTarget);
        Assert.Equal(ScopeCounting.FrozenAsReference, r.ScopeCounting);
        Assert.True(r.ExtraClosureEvaluation);
        Assert.Equal(0.25, r.NewSampleWeight, 15);
        Assert.Equal(Math.Sqrt(2 * 0.1) * 1e-3, r.NoiseStd, 15);
        Assert.Equal(1e-6, r.Temperature, 1e-18);
        var paper = new LocalEntropyOptions();
        Assert.Equal(Math.Sqrt(0.1) * 1e-3, paper.NoiseStd, 15);
        Assert.Equal(0.5e-6, paper.Temperature, 1e-18);
    }
}
