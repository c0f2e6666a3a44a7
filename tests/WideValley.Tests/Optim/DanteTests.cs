using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Cli;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>
/// DANTE (our design where arXiv 1902.00491 is silent): block-cyclic stochastic normalised gradient descent. The update
/// against hand computation, the schedule, that only the active block moves (and that skipping the inactive gradients
/// changes nothing), Hazan, Levy &amp; Shalev-Shwartz's NGD/SNGD guarantee on an idealised sigmoid GLM, monotone descent
/// per sweep on a small two-hidden-layer net, bit-identical resume, options, flags and the CLI.
/// </summary>
public class DanteTests
{
    static double[] Values(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        return cat(parameters.Select(p => p.detach().to(ScalarType.Float64).flatten()).ToList(), 0).data<double>().ToArray();
    }

    [Fact]
    public void OneStepMovesTheActiveBlockByEtaAlongItsNormalisedGradientAndNothingElse()
    {
        // Two blocks: {w (2x2), b (2)} and {v (1x2)}. Gradients set by hand: block 0's is (3, 0, 0, 4 | 0, 0): norm 5.
        using var w = new Parameter(tensor(new double[] { 1, 2, 3, 4 }, ScalarType.Float64).reshape(2, 2));
        using var b = new Parameter(tensor(new double[] { -1, 1 }, ScalarType.Float64));
        using var v = new Parameter(tensor(new double[] { 0.5, -0.5 }, ScalarType.Float64).reshape(1, 2));
        using var dante = new Dante([w, b, v], new DanteOptions { LearningRate = 0.1, NormEpsilon = 1e-8, StepsPerBlock = 1 });
        Assert.Equal(2, dante.BlockCount);
        Assert.Equal(new[] { w.Handle, b.Handle }, dante.Block(0).Select(p => p.Handle));
        Assert.Equal(new[] { v.Handle }, dante.Block(1).Select(p => p.Handle));
        Assert.True(w.requires_grad && b.requires_grad);
        Assert.False(v.requires_grad); // inactive: no gradient is computed for it
        dante.step(() =>
        {
            w.grad = tensor(new double[] { 3, 0, 0, 4 }, ScalarType.Float64).reshape(2, 2).DetachFromDisposeScope();
            b.grad = zeros(2, ScalarType.Float64).DetachFromDisposeScope();
            return tensor(0.0);
        });
        var scale = 0.1 / (5 + 1e-8);
        Assert.Equal(new[] { 1 - 3 * scale, 2, 3, 4 - 4 * scale, -1, 1 }, Values([w, b]));
        Assert.Equal(new[] { 0.5, -0.5 }, Values([v]));
        Assert.Equal(1, dante.ActiveBlock);
        Assert.False(w.requires_grad || b.requires_grad);
        Assert.True(v.requires_grad);
        // Block 1 now: its gradient (0, -2) has norm 2, so v moves by 0.1 (0, -1).
        dante.step(() =>
        {
            v.grad = tensor(new double[] { 0, -2 }, ScalarType.Float64).reshape(1, 2).DetachFromDisposeScope();
            return tensor(0.0);
        });
        Assert.Equal(new[] { 0.5, -0.5 + 2 * (0.1 / (2 + 1e-8)) }, Values([v]));
        Assert.Equal((2L, 1L, 0), (dante.Steps, dante.Sweeps, dante.ActiveBlock));
        dante.Dispose();
        Assert.True(w.requires_grad && b.requires_grad && v.requires_grad); // flags restored
    }

    [Theory]
    [InlineData(DanteOrder.Forward, new[] { 0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0 })]
    [InlineData(DanteOrder.Backward, new[] { 2, 2, 2, 1, 1, 1, 0, 0, 0, 2, 2 })]
    public void TheActiveBlockCyclesEveryKStepsInTheChosenOrder(DanteOrder order, int[] expected)
    {
        var ps = Enumerable.Range(0, 3).Select(_ => new Parameter(ones(2, 2, ScalarType.Float64))).ToList();
        var dante = new Dante(ps, new DanteOptions { StepsPerBlock = 3, SweepOrder = order });
        var seen = new List<int>();
        for (var t = 0; t < expected.Length; t++)
        {
            seen.Add(dante.ActiveBlock);
            Assert.Equal(dante.BlockAt(t), dante.ActiveBlock);
            dante.step();
        }
        Assert.Equal(expected, seen);
        Assert.Equal(1, dante.Sweeps);
        foreach (var p in ps) p.Dispose();
        dante.Dispose(); // after its parameters: must not touch them
    }

    [Fact]
    public void BlocksFollowTheLayersWeightThenItsBiasAndNormalisation()
    {
        using var net = Synthetic.Mlp(); // fc1, bn1 (weight, bias), fc2
        var parameters = net.named_parameters().ToList();
        var byShape = Dante.LayerBlocks(net.parameters());
        var byModule = Dante.BlocksOf(net);
        string[][] Names(IEnumerable<IEnumerable<Parameter>> blocks) =>
            blocks.Select(b => b.Select(p => parameters.First(np => np.parameter.Handle == p.Handle).name).ToArray()).ToArray();
        var expected = new[] { new[] { "fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias" }, new[] { "fc2.weight", "fc2.bias" } };
        Assert.Equal(expected, Names(byShape));
        Assert.Equal(expected, Names(byModule.Select(g => g.Parameters)));
        using var mlp = new Mlp("t", 1, 4, 3, [5, 6], MlpActivation.GeneralizedRelu);
        Assert.Equal(3, Dante.LayerBlocks(mlp.parameters()).Count);
        Assert.Equal(3, Dante.BlocksOf(mlp).Count);
    }

    static Tensor FullBatchLoss(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y) =>
        nn.functional.cross_entropy(model.call(x), y);

    static (Tensor X, Tensor Y) SmallImages(int n = 96, long seed = 3, ScalarType dtype = ScalarType.Float64)
    {
        using var gen = new Generator((ulong)seed);
        var x = randn(n, 1, 4, 4, dtype, generator: gen);
        var y = randint(0, 3, n, generator: gen).to(ScalarType.Int64);
        return (x, y);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OnlyTheActiveBlockMovesAndFreezingTheInactiveOnesChangesNoBit(bool checkEveryStep)
    {
        double[] Train(bool freeze, List<int[]>? moved)
        {
            random.manual_seed(4);
            using var model = new Mlp("t", 1, 4, 3, [6, 5], MlpActivation.Sigmoid);
            model.to(ScalarType.Float64);
            var (x, y) = SmallImages();
            using var _x = x;
            using var _y = y;
            using var dante = new Dante(model.parameters(), new DanteOptions { LearningRate = 0.05, StepsPerBlock = 4, FreezeInactive = freeze });
            for (var t = 0; t < 30; t++)
            {
                using var scope = NewDisposeScope();
                var before = Enumerable.Range(0, dante.BlockCount).Select(k => Values(dante.Block(k))).ToArray();
                var active = dante.ActiveBlock;
                dante.step(() =>
                {
                    dante.zero_grad();
                    var loss = FullBatchLoss(model, x, y);
                    loss.backward();
                    if (freeze)
                        for (var k = 0; k < dante.BlockCount; k++)
                            foreach (var p in dante.Block(k))
                            {
                                using var g = p.grad;
                                Assert.Equal(k == active, g is not null); // backward skipped the inactive blocks
                            }
                    return loss;
                });
                var changed = Enumerable.Range(0, dante.BlockCount).Where(k => !Values(dante.Block(k)).SequenceEqual(before[k])).ToArray();
                moved?.Add(changed);
                Assert.Equal(new[] { active }, changed);
            }
            return Values(model.parameters());
        }
        var moves = checkEveryStep ? new List<int[]>() : null;
        var frozen = Train(true, moves);
        var unfrozen = Train(false, null);
        Assert.Equal(unfrozen, frozen);
        if (moves is not null) Assert.Equal(Enumerable.Range(0, 30).Select(t => new[] { t / 4 % 3 }), moves);
    }

    // ---- Hazan, Levy & Shalev-Shwartz (2015), on the idealised sigmoid GLM ----

    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    /// <summary>
    /// m unit-norm inputs x_i = normalise(s_i u + 0.5 n_i) (s_i = ±1, n_i Gaussian) and labels y_i = sigma(w* . x_i) with
    /// w* = W u: realisable, |x_i| &lt;= 1, |w*| = W.
    /// </summary>
    static (double[][] X, double[] Y, double[] WStar) Glm(int m, int d, double radius, int seed)
    {
        var rng = new Random(seed);
        double Gauss() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var u = Enumerable.Range(0, d).Select(_ => Gauss()).ToArray();
        var un = Math.Sqrt(u.Sum(a => a * a));
        u = u.Select(a => a / un).ToArray();
        var wStar = u.Select(a => radius * a).ToArray();
        var xs = new double[m][];
        var ys = new double[m];
        for (var i = 0; i < m; i++)
        {
            var s = rng.Next(2) == 0 ? -1.0 : 1.0;
            var x = u.Select(a => s * a + 0.5 * Gauss()).ToArray();
            var n = Math.Sqrt(x.Sum(a => a * a));
            xs[i] = x.Select(a => a / n).ToArray();
            ys[i] = Sigmoid(xs[i].Zip(wStar, (a, b) => a * b).Sum());
        }
        return (xs, ys, wStar);
    }

    /// <summary>The error ê(w) = (1/m) sum (y_i - sigma(w . x_i))^2 and its gradient, in float64.</summary>
    static (double Loss, double[] Gradient) GlmLoss(double[][] xs, double[] ys, double[] w, IEnumerable<int>? rows = null)
    {
        var index = (rows ?? Enumerable.Range(0, xs.Length)).ToArray();
        var g = new double[w.Length];
        double loss = 0;
        foreach (var i in index)
        {
            var p = Sigmoid(xs[i].Zip(w, (a, b) => a * b).Sum());
            var r = p - ys[i];
            loss += r * r;
            for (var k = 0; k < w.Length; k++) g[k] += 2 * r * p * (1 - p) * xs[i][k];
        }
        return (loss / index.Length, g.Select(a => a / index.Length).ToArray());
    }

    static Tensor GlmTorchLoss(Tensor x, Tensor y, Parameter w)
    {
        using var z = x.matmul(w);
        using var p = z.sigmoid();
        using var r = p - y;
        return r.square().mean();
    }

    /// <summary>
    /// Hazan, Levy &amp; Shalev-Shwartz (arXiv 1507.02030), Theorem 4.1 (NGD): if f is (eps, kappa, x*)-SLQC at every
    /// iterate, NGD with eta = eps / kappa satisfies min_{t &lt;= T} f(x_t) - f(x*) &lt;= eps for
    /// T &gt;= kappa^2 |x_1 - x*|^2 / eps^2. For the idealised GLM with the sigmoid and |x_i| &lt;= 1, |w*| &lt;= W, their
    /// Lemma gives kappa = e^W. We run DANTE with one block (so it is NGD, full batch) from x_1 = -w* on realisable
    /// data, check the hypothesis (SLQC with that kappa: &lt;grad f(x), x - x*&gt; &gt;= (eps / kappa) |grad f(x)| wherever
    /// f(x) - f(x*) &gt; eps) at every iterate, and the conclusion within T.
    /// </summary>
    [Fact]
    public void NgdOnTheIdealisedSigmoidGlmReachesEpsWithinTheTheoremsIterationCount()
    {
        const int m = 64, d = 3;
        const double radius = 1, eps = 0.02;
        var (xs, ys, wStar) = Glm(m, d, radius, seed: 11);
        var kappa = Math.Exp(radius);
        var start = wStar.Select(a => -a).ToArray();
        var distance = Math.Sqrt(start.Zip(wStar, (a, b) => (a - b) * (a - b)).Sum());
        var iterations = (long)Math.Ceiling(kappa * kappa * distance * distance / (eps * eps));
        Assert.True(GlmLoss(xs, ys, start).Loss > 5 * eps, "the start must be far from the bound for the test to mean anything");

        using var x = tensor(xs.SelectMany(r => r).ToArray(), ScalarType.Float64).reshape(m, d);
        using var y = tensor(ys, ScalarType.Float64);
        using var w = new Parameter(tensor(start, ScalarType.Float64));
        using var dante = new Dante([w], new DanteOptions { LearningRate = eps / kappa, StepsPerBlock = 1 });
        var best = double.PositiveInfinity;
        long t = 0;
        for (; t < iterations && best > eps; t++)
        {
            var current = Values([w]);
            var (loss, g) = GlmLoss(xs, ys, current);
            best = Math.Min(best, loss);
            if (loss > eps)
            {
                var inner = g.Zip(current.Zip(wStar, (a, b) => a - b), (a, b) => a * b).Sum();
                var norm = Math.Sqrt(g.Sum(a => a * a));
                Assert.True(inner >= eps / kappa * norm, $"SLQC fails at iterate {t}: <g, x - x*> = {inner}, (eps/kappa)|g| = {eps / kappa * norm}");
            }
            using var scope = NewDisposeScope();
            dante.step(() =>
            {
                dante.zero_grad();
                var l = GlmTorchLoss(x, y, w);
                l.backward();
                return l;
            });
        }
        Assert.True(best <= eps, $"after T = {iterations:N0} NGD steps the best loss is {best}, above eps = {eps}");
        // NGD moves exactly eta per step, so reaching the level set near w* from -w* takes at least this many steps.
        Assert.True(t >= (distance - 1) / (eps / kappa), $"reached eps after {t} steps, faster than steps of length eta allow");
    }

    /// <summary>
    /// The stochastic version (SNGD, their Theorem 5.1: minibatch functions SLQC at the iterates, eta = eps / kappa,
    /// T &gt;= kappa^2 |x_1 - x*|^2 / eps^2; x_bar = the iterate with the smallest minibatch loss has
    /// f(x_bar) - f(x*) &lt;= 3 eps with probability &gt;= 1 - 2 delta). On realisable data every minibatch is itself an
    /// idealised GLM with the same w*, so the SLQC hypothesis holds with kappa = e^W; the theorem's sufficient minibatch
    /// (~M^2 log(4T/delta) / (2 eps^2), some 10^4 here) is far above ours (16 of 256), so this checks the conclusion
    /// where the theorem does not promise it, with DANTE's minibatches coming through the closure.
    /// </summary>
    [Fact]
    public void SngdWithMinibatchesMeetsTheTheoremsThreeEpsBoundWithinT()
    {
        const int m = 256, d = 3, batch = 16;
        const double radius = 1, eps = 0.03;
        var (xs, ys, wStar) = Glm(m, d, radius, seed: 5);
        var kappa = Math.Exp(radius);
        var start = wStar.Select(a => -a).ToArray();
        var iterations = (long)Math.Ceiling(kappa * kappa * 4 * radius * radius / (eps * eps));
        Assert.True(GlmLoss(xs, ys, start).Loss > 3 * eps, "the start must not meet the bound already");
        using var x = tensor(xs.SelectMany(r => r).ToArray(), ScalarType.Float64).reshape(m, d);
        using var y = tensor(ys, ScalarType.Float64);
        using var w = new Parameter(tensor(start, ScalarType.Float64));
        using var dante = new Dante([w], new DanteOptions { LearningRate = eps / kappa, StepsPerBlock = 1 });
        using var gen = new Generator(17);
        var bestMinibatch = double.PositiveInfinity;
        double[] chosen = start;
        for (long t = 0; t < iterations; t++)
        {
            using var scope = NewDisposeScope();
            var rows = randperm(m, generator: gen).narrow(0, 0, batch);
            var xb = x.index_select(0, rows);
            var yb = y.index_select(0, rows);
            var current = Values([w]);
            var loss = dante.step(() =>
            {
                dante.zero_grad();
                var l = GlmTorchLoss(xb, yb, w);
                l.backward();
                return l;
            }).ToDouble();
            if (loss < bestMinibatch) (bestMinibatch, chosen) = (loss, current);
        }
        var full = GlmLoss(xs, ys, chosen).Loss;
        Assert.True(full <= 3 * eps, $"f(x_bar) = {full} exceeds 3 eps = {3 * eps} after T = {iterations:N0} SNGD steps");
        var error = Math.Sqrt(chosen.Zip(wStar, (a, b) => (a - b) * (a - b)).Sum());
        Assert.True(error < 2 * radius, $"x_bar is {error} from w*, no closer than the start");
    }

    /// <summary>
    /// The multi-layer version on a two-hidden-layer sigmoid net (three blocks), full batch, small eta: the loss after
    /// every sweep is below the loss after the one before (descent lemma: an eta-step along -g/|g| lowers a smooth loss
    /// while |g| &gt; L eta / 2).
    /// </summary>
    [Fact]
    public void FullBatchDanteLowersTheLossEverySweepOnATwoHiddenLayerNet()
    {
        random.manual_seed(9);
        using var model = new Mlp("t", 1, 4, 3, [8, 6], MlpActivation.Sigmoid);
        model.to(ScalarType.Float64);
        var (x, y) = SmallImages(128, seed: 21);
        using var _x = x;
        using var _y = y;
        const int k = 25, sweeps = 6;
        using var dante = new Dante(model.parameters(), new DanteOptions { LearningRate = 2e-3, StepsPerBlock = k });
        double Loss()
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return FullBatchLoss(model, x, y).ToDouble();
        }
        var losses = new List<double> { Loss() };
        for (var s = 0; s < sweeps; s++)
        {
            for (var t = 0; t < k * 3; t++)
            {
                using var scope = NewDisposeScope();
                dante.step(() =>
                {
                    dante.zero_grad();
                    var l = FullBatchLoss(model, x, y);
                    l.backward();
                    return l;
                });
            }
            losses.Add(Loss());
        }
        Assert.Equal(sweeps, dante.Sweeps);
        for (var s = 1; s < losses.Count; s++)
            Assert.True(losses[s] < losses[s - 1], $"sweep {s} raised the loss: {string.Join(", ", losses)}");
        Assert.True(losses[^1] < losses[0] - 1e-3, $"the loss barely moved: {string.Join(", ", losses)}");
    }

    // ---- resume ----

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void AStateDictionaryRoundTripMidBlockContinuesBitIdentically(ScalarType dtype)
    {
        using var dir = new TempDir();
        var options = new DanteOptions { LearningRate = 0.03, StepsPerBlock = 5, SweepOrder = DanteOrder.Backward };
        (double[] Values, long Steps, int Active, bool[] Flags) Train(bool split)
        {
            random.manual_seed(2);
            using var model = new Mlp("t", 1, 4, 3, [7, 5], MlpActivation.Relu);
            model.to(dtype);
            var (xd, y) = SmallImages(64, seed: 8, dtype);
            using var _x = xd;
            using var _y = y;
            var dante = new Dante(model.parameters(), options);
            void Run(Dante o, int from, int to)
            {
                for (var t = from; t < to; t++)
                {
                    using var scope = NewDisposeScope();
                    var rows = arange(t % 4 * 16, t % 4 * 16 + 16);
                    o.step(() =>
                    {
                        o.zero_grad();
                        var l = FullBatchLoss(model, xd.index_select(0, rows), y.index_select(0, rows));
                        l.backward();
                        return l;
                    });
                }
            }
            Run(dante, 0, 12);
            if (split)
            {
                dante.save_state_dict(dir.File("dante.bin"));
                dante.Dispose();
                Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
                dante = new Dante(model.parameters(), options);
                dante.load_state_dict(dir.File("dante.bin"));
            }
            Run(dante, 12, 37);
            var result = (Values(model.parameters()), dante.Steps, dante.ActiveBlock, model.parameters().Select(p => p.requires_grad).ToArray());
            dante.Dispose();
            return result;
        }
        var whole = Train(false);
        var resumed = Train(true);
        Assert.Equal(whole.Values, resumed.Values);
        Assert.Equal((whole.Steps, whole.Active), (resumed.Steps, resumed.Active));
        Assert.Equal(whole.Flags, resumed.Flags);
    }

    static (ClassificationTask Task, optim.Optimizer Optimizer) BuildRun(DanteOptions options)
    {
        var model = Synthetic.Mlp();
        var task = new ClassificationTask(model, Synthetic.Blobs(train: 320), 32, seed: 11, evalBatchSize: 100);
        return (task, OptimizerFactory.Create("dante", model.parameters(), options,
            new OptimizerContext { TrainingSetSize = 320, RunSeed = 6, StepsPerEpoch = 10 }));
    }

    static TrainerOptions TrainerSettings(string dir) => new()
    {
        Epochs = 3, OutputDirectory = dir, ModelName = "test-mlp", OptimizerName = "dante", TensorBoard = false,
        Schedule = LearningRateSchedule.Parse("after:10:2"),
    };

    [Fact]
    public void ATrainerRunStoppedMidEpochResumesFromItsCheckpointBitIdentical()
    {
        var options = new DanteOptions { LearningRate = 0.05 }; // K = one epoch = 10 steps
        var metrics = TrainerResumeCheck.StopAndResume(() => BuildRun(options), TrainerSettings, stopEpoch: 2, stopStep: 4,
            uninterrupted: o => Assert.Equal((30L, 10L), (((Dante)o).Steps, ((Dante)o).StepsPerBlock)), stopped: o => Assert.Equal(14, ((Dante)o).Steps), resumed: o => Assert.Equal(30, ((Dante)o).Steps));
        Assert.All(metrics, m => Assert.True(m.Extra?.ContainsKey("dante_active_block"), "the active block is logged"));
    }

    // ---- options ----

    [Fact]
    public void BadOptionsAreRefusedWithClearErrors()
    {
        (string Parameter, string Message) Error(DanteOptions o)
        {
            var e = Assert.Throws<OptionsException>(o.Validate);
            return (e.Parameter, e.Message);
        }
        Assert.Equal(("LearningRate", "LearningRate must be a positive number, got 0"), Error(new DanteOptions { LearningRate = 0 }));
        Assert.Equal("LearningRate", Error(new DanteOptions { LearningRate = double.NaN }).Parameter);
        Assert.Equal(("NormEpsilon", "NormEpsilon must be a positive number, got -1E-08"), Error(new DanteOptions { NormEpsilon = -1e-8 }));
        Assert.Equal(("StepsPerBlock", "StepsPerBlock must be at least 1 step, or 0 for one epoch's steps; got -2"), Error(new DanteOptions { StepsPerBlock = -2 }));
        Assert.Equal(("SweepOrder", "SweepOrder must be forward or backward, got 7"), Error(new DanteOptions { SweepOrder = (DanteOrder)7 }));

        using var p = new Parameter(zeros(3, 2));
        using var q = new Parameter(zeros(2));
        Assert.Equal("NormEpsilon", Assert.Throws<OptionsException>(() => new Dante([p], new DanteOptions { NormEpsilon = 0, StepsPerBlock = 1 })).Parameter);
        var unknownK = Assert.Throws<ArgumentException>(() => OptimizerFactory.Create("dante", [p], new DanteOptions()));
        Assert.Contains("steps per epoch are unknown", unknownK.Message);
        Assert.Contains("StepsPerBlock", unknownK.Message);
        var twice = Assert.Throws<ArgumentException>(() => new Dante(new[] { new TorchSharp.Modules.ParamGroup { Parameters = [p] }, new TorchSharp.Modules.ParamGroup { Parameters = [q, p] } },
            new DanteOptions { StepsPerBlock = 1 }));
        Assert.Contains("appears twice", twice.Message);
        var empty = Assert.Throws<ArgumentException>(() => new Dante(new[] { new TorchSharp.Modules.ParamGroup { Parameters = [] } }, new DanteOptions { StepsPerBlock = 1 }));
        Assert.Contains("block 0 holds no parameters", empty.Message);
        Assert.Throws<ArgumentException>(() => new Dante(Array.Empty<Parameter>(), new DanteOptions { StepsPerBlock = 1 }));
        Assert.True(p.requires_grad && q.requires_grad);

        // A state from another block layout or K is refused by name, not loaded into the wrong blocks.
        using var dir = new TempDir();
        using (var two = new Dante([p, new Parameter(zeros(2, 2))], new DanteOptions { StepsPerBlock = 3 })) two.save_state_dict(dir.File("two.bin"));
        using var one = new Dante([p], new DanteOptions { StepsPerBlock = 3 });
        Assert.ThrowsAny<Exception>(() => one.load_state_dict(dir.File("two.bin")));
        using (var k4 = new Dante([p], new DanteOptions { StepsPerBlock = 4 })) k4.save_state_dict(dir.File("k4.bin"));
        var otherK = Assert.Throws<InvalidDataException>(() => one.load_state_dict(dir.File("k4.bin")));
        Assert.Contains("saved with 4 steps per block; this optimizer has 3", otherK.Message);
    }

    [Fact]
    public void ItIsRegisteredWithItsOptionsAndTheirJson()
    {
        var d = OptimizerFactory.Describe("dante");
        Assert.Equal(typeof(DanteOptions), d.OptionsType);
        Assert.Equal((0.01, 1e-8, 0L, DanteOrder.Forward, true),
            d.Defaults is DanteOptions o ? (o.LearningRate, o.NormEpsilon, o.StepsPerBlock, o.SweepOrder, o.FreezeInactive) : default);
        var options = new DanteOptions { StepsPerBlock = 7, SweepOrder = DanteOrder.Backward, NormEpsilon = 1e-6 };
        var json = d.ToJson(options);
        Assert.Equal((7L, "backward", 1e-6), ((long)json["steps_per_block"]!, (string)json["sweep_order"]!, (double)json["norm_epsilon"]!));
        Assert.Equal(options, d.FromJson(JsonNode.Parse(json.ToJsonString())!));
        using var p = new Parameter(zeros(4, 5));
        using var optimizer = (Dante)d.Create([p], null, new OptimizerContext { StepsPerEpoch = 12 });
        Assert.Equal((12L, 0L), (optimizer.StepsPerBlock, optimizer.StateElements));
    }

    static (int Code, string Out, string Err) Cli(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData(new[] { "--dante-steps-per-block", "-1" }, "--dante-steps-per-block must be at least 0 (0 = one epoch's steps), got -1")]
    [InlineData(new[] { "--dante-eps", "0" }, "--dante-eps must be a positive number, got 0")]
    [InlineData(new[] { "--dante-order", "sideways" }, "sideways")]
    [InlineData(new[] { "--lr", "-0.1" }, "--lr must be a positive number, got -0.1")]
    [InlineData(new[] { "--momentum", "0.9" }, "--momentum does not apply to --optimizer dante")]
    [InlineData(new[] { "--adam-eps", "1e-6" }, "--adam-eps does not apply to --optimizer dante")]
    public void BadFlagsExitWithCode2AndNameTheFlag(string[] args, string expected)
    {
        var (code, _, err) = Cli(["train", "--optimizer", "dante", .. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void DantesFlagsDoNotApplyToOtherOptimizers()
    {
        foreach (var flag in new[] { new[] { "--dante-eps", "1e-6" }, ["--dante-order", "backward"], ["--dante-steps-per-block", "3"] })
        {
            var (code, _, err) = Cli(["train", "--optimizer", "adam", .. flag, "--max-train-samples", "256", "--no-tensorboard"]);
            Assert.Equal(ExitCodes.Usage, code);
            Assert.Contains($"{flag[0]} does not apply to --optimizer adam", err);
        }
    }

    [Fact]
    public void TrainsFromTheCommandLineAndResumes()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Cli("train", "--model", "mlp2-grelu", "--optimizer", "dante", "--max-train-samples", "600",
            "--batch-size", "100", "--epochs", "2", "--lr", "0.05", "--dante-steps-per-block", "2", "--dante-order", "backward",
            "--dante-eps", "1e-7", "--threads", "2", "--out", run, "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("dante", (string?)summary["config"]!["optimizer"]);
        var options = summary["config"]!["optimizer_options"]!;
        Assert.Equal((2L, "backward", 1e-7), ((long)options["steps_per_block"]!, (string)options["sweep_order"]!, (double)options["norm_epsilon"]!));
        var last = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        // 12 steps, 3 blocks of 2 steps: two sweeps; the next block is the last layer again (backward order).
        Assert.Equal((12.0, 2.0, 2.0), ((double)last["dante_steps"]!, (double)last["dante_sweeps"]!, (double)last["dante_active_block"]!));

        var changed = Cli("train", "--out", run, "--resume", "--epochs", "3", "--dante-steps-per-block", "5");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--dante-steps-per-block 5 (the run has 2)", changed.Err);
        var resumed = Cli("train", "--out", run, "--resume", "--epochs", "3", "--no-tensorboard");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        var third = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        Assert.Equal((3, 18.0), ((int)third["epoch"]!, (double)third["dante_steps"]!));
    }
}
