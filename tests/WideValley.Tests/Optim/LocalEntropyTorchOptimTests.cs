using TorchSharp;
using TorchSharp.Modules;
using WideValley.Optim;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

/// <summary>
/// The local-entropy optimizers behave like torch.optim: parameter groups and add_param_group, schedulers that act
/// per group and cycle momentum, gradients cleared by the estimator, and checkpoints that continue with either kernel.
/// </summary>
public class LocalEntropyTorchOptimTests
{
    /// <summary>
    /// Two parameter vectors with separate losses sum_i c_i (a_i - t_i)^2 plus a minibatch-like perturbation that
    /// changes with every call, so that parameter groups can be checked against separate single-group runs.
    /// </summary>
    sealed class TwoBlocks
    {
        public readonly Parameter A, B;
        readonly Tensor _ca, _ta, _cb, _tb;
        public int Calls;

        public TwoBlocks(long seed = 5, ScalarType dtype = ScalarType.Float32)
        {
            using var gen = new Generator((ulong)seed);
            A = new Parameter(randn(40, generator: gen).to(dtype).DetachFromDisposeScope());
            B = new Parameter(randn(24, generator: gen).to(dtype).DetachFromDisposeScope());
            _ca = (rand(40, generator: gen) + 0.5).to(dtype).DetachFromDisposeScope();
            _ta = randn(40, generator: gen).to(dtype).DetachFromDisposeScope();
            _cb = (rand(24, generator: gen) + 0.5).to(dtype).DetachFromDisposeScope();
            _tb = randn(24, generator: gen).to(dtype).DetachFromDisposeScope();
        }

        /// <summary>A closure that never zeroes the gradients (the estimator does).</summary>
        public Tensor Closure()
        {
            var shift = 0.01 * (Calls++ % 7);
            var loss = (_ca * (A - _ta - shift).square()).sum() + (_cb * (B - _tb + shift).square()).sum();
            loss.backward();
            return loss;
        }

        /// <summary>The gradient with respect to A that the next call (with this shift) must leave, at the current A.</summary>
        public Tensor GradientOfA(double shift)
        {
            using var noGrad = no_grad();
            return 2 * _ca * (A - _ta - shift);
        }

        public void Steps(optim.Optimizer opt, int n)
        {
            for (var i = 0; i < n; i++)
            {
                using var scope = NewDisposeScope();
                opt.step(Closure);
            }
        }
    }

    static LocalEntropyOptions Options => new()
    {
        L = 4, LangevinLr = 0.05, Noise = 1e-3, LangevinMomentum = 0.9, LangevinNesterov = true, Seed = 11,
        Scope = new ExponentialScope(0.1, 0.01),
    };

    static float[] Values(Tensor t)
    {
        using var c = t.detach().cpu().to(ScalarType.Float32);
        return c.data<float>().ToArray();
    }

    static double MaxDifference(float[] x, float[] y) => x.Zip(y, (u, v) => Math.Abs((double)u - v)).Max();

    /// <summary>
    /// Without noise the two blocks are independent, so a two-group optimizer whose second group overrides eta',
    /// gamma(t), the Langevin weight decay, the outer lr and momentum must move B exactly as a one-group optimizer
    /// with those settings moves it.
    /// </summary>
    [Fact]
    public void EachGroupRunsWithItsOwnOuterAndLangevinSettings()
    {
        var quiet = Options with { Noise = 0 };
        var own = new LangevinGroupOptions { LangevinLr = 0.02, Scope = new ConstantScope(0.5), LangevinWeightDecay = 0.01 };
        var grouped = new TwoBlocks();
        using (var opt = new EntropySgd(
            [new EntropySgd.ParamGroup([grouped.A]), new EntropySgd.ParamGroup([grouped.B], lr: 0.3, momentum: 0.5, langevin: own)],
            1.0, quiet, momentum: 0.9, nesterov: true))
        {
            Assert.Equal(own, ((ILocalEntropyParamGroup)opt.ParamGroups.ElementAt(1)).Langevin);
            Assert.Equal(0.02, opt.Estimator.GroupOptions(1).LangevinLr);
            grouped.Steps(opt, 6);
        }

        var first = new TwoBlocks();
        using (var opt = new EntropySgd([first.A], 1.0, quiet, momentum: 0.9, nesterov: true)) first.Steps(opt, 6);
        var second = new TwoBlocks();
        var merged = quiet with { LangevinLr = 0.02, Scope = new ConstantScope(0.5), LangevinWeightDecay = 0.01 };
        using (var opt = new EntropySgd([second.B], 0.3, merged, momentum: 0.5, nesterov: true)) second.Steps(opt, 6);

        Assert.Equal(Values(first.A), Values(grouped.A));
        Assert.Equal(Values(second.B), Values(grouped.B));
        // And the settings matter: B under group 0's settings ends elsewhere.
        var plain = new TwoBlocks();
        using (var opt = new EntropySgd([plain.B], 1.0, quiet, momentum: 0.9, nesterov: true)) plain.Steps(opt, 6);
        Assert.True(MaxDifference(Values(plain.B), Values(grouped.B)) > 1e-3);
    }

    [Fact]
    public void AGroupsNoiseOverrideSilencesOnlyThatGroup()
    {
        static (float[] A, float[] B) Run(LocalEntropyOptions options, LangevinGroupOptions? second)
        {
            var p = new TwoBlocks();
            using var opt = new EntropySgd([new EntropySgd.ParamGroup([p.A]), new EntropySgd.ParamGroup([p.B], langevin: second)], 1.0, options);
            p.Steps(opt, 3);
            return (Values(p.A), Values(p.B));
        }
        var noisy = Run(Options with { Noise = 1e-2 }, new LangevinGroupOptions { Noise = 0 });
        var silent = Run(Options with { Noise = 0 }, null);
        Assert.Equal(silent.B, noisy.B);
        Assert.True(MaxDifference(silent.A, noisy.A) > 1e-5, "group 0 keeps the optimizer's noise");
    }

    [Fact]
    public void InvalidGroupSettingsAreRejectedNamingTheGroup()
    {
        var p = new TwoBlocks();
        var error = Assert.Throws<ArgumentException>(() => new EntropySgd(
            [new EntropySgd.ParamGroup([p.A]), new EntropySgd.ParamGroup([p.B], langevin: new LangevinGroupOptions { LangevinLr = -1 })], 1.0, Options));
        Assert.Contains("parameter group 1", error.Message);
        Assert.Contains("LangevinLr", error.Message);   // the library names the property; the CLI maps it to --langevin-lr
        using var opt = new EntropySgd([p.A], 1.0, Options);
        Assert.Contains("already belongs", Assert.Throws<ArgumentException>(() => opt.add_param_group(new EntropySgd.ParamGroup([p.A]))).Message);
        Assert.Contains("SGD.Options", Assert.Throws<ArgumentException>(() =>
            opt.add_param_group(new ParamGroup { Parameters = [p.B], Options = new Adam.Options() })).Message);
    }

    /// <summary>
    /// add_param_group mid-run, then a state-dictionary round trip with two groups (outer lr, momentum buffers, the
    /// estimator's counters and the new group's Langevin settings) continues bit-identically.
    /// </summary>
    [Theory]
    [InlineData("entropy-sgd")]
    [InlineData("entropy-adam")]
    public void AddParamGroupAndStateDictRoundTrip(string name)
    {
        using var dir = new TempDir();
        var own = new LangevinGroupOptions { LangevinLr = 0.03, Noise = 2e-3, Scope = new LinearScope(0.2, 0.1) };
        LocalEntropyOptimizer Create(TwoBlocks p) => name == "entropy-sgd"
            ? new EntropySgd([p.A], 0.5, Options, momentum: 0.9, nesterov: true)
            : new EntropyAdam([p.A], 0.01, Options, beta1: 0.5);
        ParamGroup Second(TwoBlocks p, LangevinGroupOptions? langevin) => name == "entropy-sgd"
            ? new EntropySgd.ParamGroup([p.B], lr: 0.2, momentum: 0.5, langevin: langevin)
            : new EntropyAdam.ParamGroup([p.B], lr: 0.02, beta1: 0.8, langevin: langevin);

        var whole = new TwoBlocks();
        using (var opt = Create(whole))
        {
            var before = Values(whole.B);
            whole.Steps(opt, 3);
            Assert.Equal(before, Values(whole.B));            // not trained before it joins
            opt.add_param_group(Second(whole, own));
            Assert.Equal(2, opt.ParamGroups.Count());
            Assert.Equal(name == "entropy-sgd" ? 0.2 : 0.02, opt.ParamGroups.ElementAt(1).LearningRate);
            whole.Steps(opt, 6);
            Assert.NotEqual(before, Values(whole.B));
        }

        var first = new TwoBlocks();
        float[] a, b;
        using (var opt = Create(first))
        {
            first.Steps(opt, 3);
            opt.add_param_group(Second(first, own));
            first.Steps(opt, 3);
            opt.save_state_dict(dir.File("opt.bin"));
            (a, b) = (Values(first.A), Values(first.B));
        }
        var second = new TwoBlocks();
        using (var load = tensor(a)) second.A.detach().copy_(load);
        using (var load = tensor(b)) second.B.detach().copy_(load);
        second.Calls = first.Calls;
        using (var opt = Create(second))
        {
            opt.add_param_group(Second(second, null));             // the settings come back from the state
            opt.load_state_dict(dir.File("opt.bin"));
            Assert.Equal(own, ((ILocalEntropyParamGroup)opt.ParamGroups.ElementAt(1)).Langevin);
            Assert.Equal(6, opt.Estimator.OuterSteps);
            second.Steps(opt, 3);
        }
        Assert.Equal(Values(whole.A), Values(second.A));
        Assert.Equal(Values(whole.B), Values(second.B));
    }

    [Fact]
    public void LearningRateSchedulersActPerGroup()
    {
        var p = new TwoBlocks();
        using var opt = new EntropySgd([new EntropySgd.ParamGroup([p.A], lr: 1.0), new EntropySgd.ParamGroup([p.B], lr: 0.2)], 0.5, Options);
        var scheduler = optim.lr_scheduler.StepLR(opt, 1, 0.1);
        p.Steps(opt, 1);
        scheduler.step();
        Assert.Equal(0.1, opt.ParamGroups.ElementAt(0).LearningRate, 12);
        Assert.Equal(0.02, opt.ParamGroups.ElementAt(1).LearningRate, 12);
    }

    /// <summary>OneCycleLR with cycle_momentum reads and writes each group's momentum (SGD) or beta1 (Adam).</summary>
    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    [InlineData("entropy-sgd")]
    [InlineData("entropy-adam")]
    public void OneCycleLrCyclesTheMomentumOfEveryGroup(string name)
    {
        var p = new TwoBlocks();
        OptimizerHelper opt = name switch
        {
            "sgd" => new SgdOptimizer([new SGD.ParamGroup { Parameters = [p.A] }, new SGD.ParamGroup { Parameters = [p.B] }], 0.1, momentum: 0.9),
            "adam" => new AdamOptimizer([new Adam.ParamGroup { Parameters = [p.A] }, new Adam.ParamGroup { Parameters = [p.B] }], 0.01),
            "entropy-sgd" => new EntropySgd([new EntropySgd.ParamGroup([p.A]), new EntropySgd.ParamGroup([p.B])], 0.1, Options, momentum: 0.9),
            _ => new EntropyAdam([new EntropyAdam.ParamGroup([p.A]), new EntropyAdam.ParamGroup([p.B])], 0.01, Options),
        };
        using var _ = opt;
        double Momentum(int g) => opt.ParamGroups.ElementAt(g) switch
        {
            optim.IBetas betas => betas.Betas.Item1,
            optim.IMomentum m => m.Momentum,
            var other => throw new InvalidOperationException($"group {g} ({other.GetType().Name}) exposes no momentum"),
        };
        var scheduler = optim.lr_scheduler.OneCycleLR(opt, max_lr: 0.2, total_steps: 20, cycle_momentum: true, base_momentum: 0.8, max_momentum: 0.95);
        var momenta = new List<double>();
        var rates = new List<double>();
        var second = new List<double>();
        for (var step = 0; step < 19; step++)
        {
            momenta.Add(Momentum(0));
            second.Add(Momentum(1));
            rates.Add(opt.ParamGroups.First().LearningRate);
            using (NewDisposeScope()) opt.step(p.Closure);
            scheduler.step();
        }
        // TorchSharp 0.107's OneCycleLR picks the phase of group 1 by the group's index instead of the phase's, so
        // group 1 follows another curve; what matters here is that the scheduler reaches its momentum too.
        Assert.Equal(0.95, second[0], 9);
        Assert.True(second.Min() < 0.9, "the scheduler must write every group's momentum");
        // Momentum falls from max to base while the rate rises (the first 30%), then climbs back.
        Assert.Equal(0.95, momenta[0], 9);
        var lowest = momenta.IndexOf(momenta.Min());
        Assert.InRange(momenta.Min(), 0.8 - 1e-9, 0.82);
        Assert.Equal(rates.IndexOf(rates.Max()), lowest);
        Assert.True(momenta[^1] > 0.9, $"momentum at the end {momenta[^1]}");
        Assert.True(float.IsFinite(Values(p.A).Sum()));
    }

    /// <summary>
    /// The estimator sets the gradients to None before every closure call: a closure that never zeroes them sees
    /// exactly its own minibatch gradient in .grad, and training with it equals training with one that zeroes.
    /// </summary>
    [Fact]
    public void TheEstimatorClearsTheGradientsBeforeEveryClosureCall()
    {
        var p = new TwoBlocks();
        using var opt = new EntropySgd([p.A, p.B], 0.5, Options with { DiagnosticsEvery = 2, ExtraClosureEvaluation = true }, momentum: 0.9);
        var checkedCalls = 0;
        Tensor Checking()
        {
            using var expected = p.GradientOfA(0.01 * (p.Calls % 7));
            var loss = p.Closure();
            using var ga = p.A.grad;
            Assert.NotNull(ga);
            Assert.True(ga!.allclose(expected, rtol: 1e-5, atol: 1e-6), "the closure's gradient must not be added to an earlier one");
            checkedCalls++;
            return loss;
        }
        for (var i = 0; i < 4; i++)
        {
            using var scope = NewDisposeScope();
            opt.step(Checking);
        }
        Assert.Equal(4 * (4 + 1) + 2, checkedCalls);   // L + 1 per step, plus two diagnostic calls

        // Zeroing in the closure changes nothing.
        var zeroing = new TwoBlocks();
        using (var o = new EntropySgd([zeroing.A, zeroing.B], 0.5, Options, momentum: 0.9))
            for (var i = 0; i < 5; i++)
            {
                using var scope = NewDisposeScope();
                o.step(() => { o.zero_grad(); return zeroing.Closure(); });
            }
        var lazy = new TwoBlocks();
        using (var o = new EntropySgd([lazy.A, lazy.B], 0.5, Options, momentum: 0.9)) lazy.Steps(o, 5);
        Assert.Equal(Values(zeroing.A), Values(lazy.A));
        Assert.Equal(Values(zeroing.B), Values(lazy.B));
    }

    /// <summary>
    /// A checkpoint written with one kernel continues with the other on the same noise stream: k steps with kernel A,
    /// state saved, loaded into an optimizer running kernel B, continued, against an uninterrupted run of kernel B.
    /// </summary>
    [Theory]
    [InlineData(LangevinKernel.FusedCpu, LangevinKernel.TensorOps)]
    [InlineData(LangevinKernel.TensorOps, LangevinKernel.FusedCpu)]
    public void ResumingWithTheOtherKernelContinuesTheSameNoiseStream(LangevinKernel writer, LangevinKernel reader)
    {
        using var dir = new TempDir();
        // Loud noise, so that a different stream would show far above float rounding.
        var options = Options with { Noise = 0.05 };
        EntropySgd Create(TwoBlocks p, LangevinKernel kernel, long seed) =>
            new([p.A, p.B], 0.5, options with { Kernel = kernel, Seed = seed }, momentum: 0.9, nesterov: true);

        var whole = new TwoBlocks();
        using (var opt = Create(whole, reader, 11))
        {
            Assert.Equal(reader == LangevinKernel.FusedCpu ? "fused-cpu" : "tensor-ops", opt.Estimator.KernelName);
            whole.Steps(opt, 8);
        }

        var first = new TwoBlocks();
        using (var opt = Create(first, writer, 11))
        {
            first.Steps(opt, 4);
            opt.save_state_dict(dir.File("opt.bin"));
        }
        var second = new TwoBlocks();
        using (var load = tensor(Values(first.A))) second.A.detach().copy_(load);
        using (var load = tensor(Values(first.B))) second.B.detach().copy_(load);
        second.Calls = first.Calls;
        using (var opt = Create(second, reader, seed: 999))      // the seed comes back from the checkpoint
        {
            opt.load_state_dict(dir.File("opt.bin"));
            Assert.Equal(11, opt.Estimator.NoiseSeed);
            second.Steps(opt, 4);
        }
        // Float rounding differs between the kernels (fused multiply-adds against separate operations): 1e-5 of the
        // weights' scale, while another noise stream would move them by about 0.05 * sqrt(0.05 * 16) = 0.04.
        Assert.True(MaxDifference(Values(whole.A), Values(second.A)) < 1e-5);
        Assert.True(MaxDifference(Values(whole.B), Values(second.B)) < 1e-5);
        var otherSeed = new TwoBlocks();
        using (var opt = Create(otherSeed, reader, 12)) otherSeed.Steps(opt, 8);
        Assert.True(MaxDifference(Values(whole.A), Values(otherSeed.A)) > 1e-3);
    }

    /// <summary>
    /// States written before the counter-based stream (layout 2 with libtorch's generator state for the tensor-ops
    /// kernel; SGLD's layout 1) still load: counters and diagnostics come back, and the run continues on the stream of
    /// the seed it was built with.
    /// </summary>
    [Fact]
    public void StatesWrittenWithLibtorchsGeneratorStillLoad()
    {
        var p = new TwoBlocks(dtype: ScalarType.Float64);
        using var estimator = new LocalEntropy([p.A, p.B], Options with { Kernel = LangevinKernel.TensorOps, Seed = 21 });
        using var legacy = new MemoryStream();
        using (var w = new BinaryWriter(legacy, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write(-2L); w.Write(12L); w.Write(48L);                  // version 2, t, Langevin steps
            w.Write(3); w.Write(1.5); w.Write(2.5); w.Write(3.5); w.Write(0.25);
            var generator = new byte[5056];                           // libtorch's CPU generator state
            new Random(4).NextBytes(generator);
            w.Write(generator.Length); w.Write(generator);
        }
        legacy.Position = 0;
        using (var r = new BinaryReader(legacy)) estimator.Load(r);
        Assert.Equal((12L, 48L, 21L), (estimator.OuterSteps, estimator.LangevinSteps, estimator.NoiseSeed));
        Assert.Equal(3, estimator.TakeDiagnostics()!.Samples);
        using (var scope = NewDisposeScope()) estimator.Estimate(p.Closure);
        Assert.Equal(52, estimator.LangevinSteps);

        var x = new Parameter(zeros(10));
        using var sgld = new Sgld([x], 0.1, 10, seed: 3);
        using var old = new MemoryStream();
        using (var w = new BinaryWriter(old, System.Text.Encoding.UTF8, leaveOpen: true)) { w.Write(7L); w.Write(4); w.Write(new byte[4]); }
        old.Position = 0;
        using (var r = new BinaryReader(old)) ((IStateOwner)sgld).Load(r);
        Assert.Equal(7, sgld.Steps);
    }

    /// <summary>SGLD draws the same counter-based stream: its noise is element for element CounterNormalNoise's.</summary>
    [Fact]
    public void SgldDrawsTheSharedCounterBasedNoise()
    {
        const double lr = 0.5, temperature = 2;
        const long n = 8;
        var a = new Parameter(zeros(37));
        var b = new Parameter(zeros(20, ScalarType.Float32));
        using var opt = new Sgld([a, b], lr, n, decay: 0, temperature: temperature, seed: 77);
        for (var step = 0; step < 3; step++)
        {
            var before = Values(a).Concat(Values(b)).ToArray();
            a.grad = zeros(37);
            b.grad = zeros(20);
            opt.step(() => a);
            var moved = Values(a).Concat(Values(b)).Select((v, i) => (v - before[i]) / Math.Sqrt(2 * lr * temperature / n)).ToArray();
            var expected = new float[57];
            new CounterNormalNoise(77, 57).Fill(expected, 0, step);
            Assert.True(moved.Zip(expected, (u, v) => Math.Abs(u - v)).Max() < 1e-5, $"step {step}");
        }
    }

    /// <summary>
    /// A closure that throws in the middle of an Entropy-SGD step (a stop request, a loss that is not finite) leaves the
    /// step undone: weights, gradients, t and the noise stream's position as before it; taking the step again gives
    /// bit for bit the run that never failed. Calls 1 and 4 fail inside the chain; with L = 5 and diagnostics on every
    /// step, call 6 is the diagnostic evaluation after the chain (the weights are back already, the gradient is not).
    /// </summary>
    [Theory]
    [InlineData(LangevinKernel.FusedCpu, 1)]
    [InlineData(LangevinKernel.FusedCpu, 4)]
    [InlineData(LangevinKernel.FusedCpu, 6)]
    [InlineData(LangevinKernel.TensorOps, 1)]
    [InlineData(LangevinKernel.TensorOps, 4)]
    [InlineData(LangevinKernel.TensorOps, 6)]
    public void AStepWhoseClosureThrowsIsUndoneAndCanBeTakenAgain(LangevinKernel kernel, int failingCall)
    {
        var options = Options with { Kernel = kernel, L = 5, DiagnosticsEvery = 1 };
        var reference = new TwoBlocks();
        using (var opt = new EntropySgd([reference.A, reference.B], 0.5, options, momentum: 0.9, nesterov: true)) reference.Steps(opt, 3);

        var p = new TwoBlocks();
        using var interrupted = new EntropySgd([p.A, p.B], 0.5, options, momentum: 0.9, nesterov: true);
        p.Steps(interrupted, 1);
        var (a, b, calls) = (Values(p.A), Values(p.B), p.Calls);
        var (t, langevinSteps) = (interrupted.Estimator.OuterSteps, interrupted.Estimator.LangevinSteps);
        var made = 0;
        var error = Assert.Throws<InvalidOperationException>(() =>
        {
            using var scope = NewDisposeScope();
            interrupted.step(() => ++made == failingCall ? throw new InvalidOperationException("stop requested") : p.Closure());
        });
        Assert.Equal("stop requested", error.Message);
        Assert.Equal(a, Values(p.A));
        Assert.Equal(b, Values(p.B));
        Assert.Null(p.A.grad);
        Assert.Null(p.B.grad);
        Assert.Equal(t, interrupted.Estimator.OuterSteps);
        Assert.Equal(langevinSteps, interrupted.Estimator.LangevinSteps);

        p.Calls = calls;   // the trainer rewinds its data stream to where the step began
        p.Steps(interrupted, 2);
        Assert.Equal(Values(reference.A), Values(p.A));
        Assert.Equal(Values(reference.B), Values(p.B));
    }

    /// <summary>
    /// What a closure allocates is freed when the call returns, not when the step ends: the tensors alive at the start
    /// of each closure call do not grow with the number of calls (before, an Entropy-SGD step's memory grew linearly in
    /// L: 344 / 623 / 1,453 MB at L = 1 / 25 / 100 for mnistfc at batch 500).
    /// </summary>
    [Theory]
    [InlineData(LangevinKernel.FusedCpu)]
    [InlineData(LangevinKernel.TensorOps)]
    public void WhatAClosureAllocatesIsFreedWhenTheCallReturns(LangevinKernel kernel)
    {
        var p = new TwoBlocks();
        using var opt = new EntropySgd([p.A, p.B], 0.5, Options with { Kernel = kernel, L = 30 }, momentum: 0.9, nesterov: true);
        var live = new List<long>();
        using var scope = NewDisposeScope();
        var loss = opt.step(() =>
        {
            live.Add(scope.DisposablesCount);
            // A minibatch's worth of temporaries, created in whatever scope is current.
            for (var i = 0; i < 5; i++) _ = randn(1000) * 2;
            return p.Closure();
        });
        Assert.Equal(30, live.Count);
        Assert.All(live, n => Assert.Equal(live[0], n));
        Assert.False(loss.IsInvalid);
        Assert.True(float.IsFinite(loss.item<float>()));
    }
}
