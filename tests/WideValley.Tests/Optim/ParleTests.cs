using TorchSharp;
using WideValley.Distributed;
using WideValley.Optim;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using OptimizerHelper = TorchSharp.Modules.OptimizerHelper;

namespace WideValley.Tests.Optim;

/// <summary>
/// Parle and Elastic-SGD (issue 22 §2 and §4): the special cases as exact equivalences (one rank = Entropy-SGD, rho = 0
/// = independent Entropy-SGD replicas, L = 1 with gamma = 0 and no noise = Elastic-SGD), Elastic-SGD against EASGD's
/// formula in float64, the reference, checkpoints, options and registration. Several replicas run as threads
/// (<see cref="ThreadedCollectives"/>); every model and data set is built on the test's thread first, because the
/// global generator is shared.
/// </summary>
public class ParleTests
{
    /// <summary>A small classifier, its replayable minibatches, and the closure an optimizer runs.</summary>
    sealed class Replica
    {
        public readonly nn.Module<Tensor, Tensor> Model;
        readonly Tensor _x, _y;
        public int Calls;

        public Replica(long weightSeed, long dataSeed)
        {
            random.manual_seed(weightSeed);
            Model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3));
            using var gen = new Generator((ulong)dataSeed);
            _x = randn(256, 5, generator: gen).DetachFromDisposeScope();
            _y = randint(0, 3, 256, generator: gen).to(ScalarType.Int64).DetachFromDisposeScope();
        }

        public List<TorchSharp.Modules.Parameter> Parameters => [.. Model.parameters()];

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

        public float[] Weights() => [.. Model.parameters().SelectMany(p => p.data<float>().ToArray())];
    }

    static LocalEntropyOptions Inner(int l = 3) => new()
    {
        L = l, Scope = new ExponentialScope(0.03, 0.2), LangevinLr = 0.1, Noise = 1e-3, LangevinMomentum = 0.9, LangevinNesterov = true, Seed = 5,
    };

    static readonly ElasticSchedule Coupled = new(0.5, 0.3, 10);

    static Parle MakeParle(Replica r, ICollectives? collectives, ElasticSchedule? rho = null, LocalEntropyOptions? inner = null) =>
        new(r.Parameters, 0.5, inner ?? Inner(), rho ?? Coupled, collectives, momentum: 0.9, nesterov: true, weightDecay: 1e-3);

    static EntropySgd MakeEntropySgd(Replica r, LocalEntropyOptions? inner = null) =>
        new(r.Parameters, 0.5, inner ?? Inner(), momentum: 0.9, nesterov: true, weightDecay: 1e-3);

    [Fact]
    public void ThreadedCollectivesSumAverageAndBroadcastAcrossRanks()
    {
        var results = ThreadedCollectives.Run(3, c =>
        {
            using var sum = tensor(new[] { c.Rank + 1.0f, 10f * (c.Rank + 1) });
            c.AllReduceSum(sum);
            using var mean = tensor(new[] { c.Rank + 1.0, -2.0 * c.Rank });
            c.AllReduceAverage(mean);
            using var broadcast = tensor(new[] { 100f * c.Rank, 7f });
            c.Broadcast(broadcast, root: 1);
            c.Barrier();
            return (c.Rank, c.Size, Sum: sum.data<float>().ToArray(), Mean: mean.data<double>().ToArray(), Broadcast: broadcast.data<float>().ToArray());
        });
        for (var r = 0; r < 3; r++)
        {
            Assert.Equal((r, 3), (results[r].Rank, results[r].Size));
            Assert.Equal(new[] { 6f, 60f }, results[r].Sum);
            Assert.Equal(new[] { 2.0, -2.0 }, results[r].Mean);
            Assert.Equal(new[] { 100f, 7f }, results[r].Broadcast);
        }
        // A strided tensor is refused as MPI would refuse it; an abort on one rank releases the others from their barrier.
        var e = Assert.Throws<InvalidOperationException>(() => ThreadedCollectives.Run(2, c =>
        {
            if (c.Rank == 1) c.Abort("test abort");
            c.Barrier();
            return 0;
        }));
        Assert.Contains("rank 1", e.Message);
        Assert.Contains("test abort", e.Message);
        var strided = Assert.Throws<InvalidOperationException>(() => ThreadedCollectives.Run(1, c =>
        {
            using var matrix = zeros(3, 4);
            using var transposed = matrix.t();
            c.AllReduceSum(transposed);
            return 0;
        }));
        Assert.Contains("not contiguous", strided.InnerException!.Message);
    }

    [Fact]
    public void OneRankParleIsEntropySgdBitForBit()
    {
        var reference = new Replica(1, 2);
        using (var entropySgd = MakeEntropySgd(reference)) reference.Steps(entropySgd, 6);

        var single = new Replica(1, 2);
        using (var parle = MakeParle(single, null)) single.Steps(parle, 6);
        Assert.Equal(reference.Weights(), single.Weights());

        var threaded = new Replica(1, 2);
        ThreadedCollectives.Run(1, c =>
        {
            using var parle = MakeParle(threaded, c);
            threaded.Steps(parle, 6);
            return 0;
        });
        Assert.Equal(reference.Weights(), threaded.Weights());
        Assert.NotEqual(new Replica(1, 2).Weights(), threaded.Weights()); // it trained
    }

    [Fact]
    public void UncoupledReplicasEachFollowTheirOwnEntropySgdTrajectory()
    {
        var replicas = new[] { new Replica(1, 2), new Replica(3, 4) };
        ThreadedCollectives.Run(2, c =>
        {
            using var parle = MakeParle(replicas[c.Rank], c, rho: new ElasticSchedule(0, 0.3, 10));
            replicas[c.Rank].Steps(parle, 5);
            return 0;
        });
        var alone = new[] { new Replica(1, 2), new Replica(3, 4) };
        foreach (var r in alone)
            using (var entropySgd = MakeEntropySgd(r)) r.Steps(entropySgd, 5);
        Assert.Equal(alone[0].Weights(), replicas[0].Weights());
        Assert.Equal(alone[1].Weights(), replicas[1].Weights());
    }

    [Fact]
    public void AParleStepIsTheEntropySgdGradientPlusTheElasticForceToTheMean()
    {
        // Plain outer SGD: x1 = x0 - lr (g_LE + rho (x0 - r)), and Entropy-SGD from the same x0 on the same minibatches
        // gives x0 - lr g_LE, so the two differ by exactly -lr rho (x0 - r), r the mean of the starting replicas.
        const double lr = 0.5, rho = 0.7;
        var replicas = new[] { new Replica(1, 2), new Replica(3, 4) };
        var starts = replicas.Select(r => r.Weights()).ToArray();
        ThreadedCollectives.Run(2, c =>
        {
            using var parle = new Parle(replicas[c.Rank].Parameters, lr, Inner(), new ElasticSchedule(rho, 0, 10), c);
            replicas[c.Rank].Steps(parle, 1);
            return 0;
        });
        for (var a = 0; a < 2; a++)
        {
            var alone = new Replica(a == 0 ? 1 : 3, a == 0 ? 2 : 4);
            using (var entropySgd = new EntropySgd(alone.Parameters, lr, Inner())) alone.Steps(entropySgd, 1);
            var esgd = alone.Weights();
            var parle = replicas[a].Weights();
            for (var i = 0; i < esgd.Length; i++)
            {
                var mean = (starts[0][i] + starts[1][i]) / 2.0;
                var expected = esgd[i] - lr * rho * (starts[a][i] - mean);
                Assert.True(Math.Abs(parle[i] - expected) < 1e-6, $"replica {a}, element {i}: {parle[i]} vs {expected}");
            }
        }
    }

    [Fact]
    public void ElasticSgdFollowsTheEasgdFormulaInFloat64()
    {
        // A linear model under mean squared error has a closed-form gradient, so the reference below is EASGD's update
        // written out in float64: x^a <- x^a - lr * m(g^a + rho_t (x^a - mean_b x^b)), with PyTorch's heavy-ball
        // momentum m (buffer = first direction, then momentum * buffer + direction).
        const int ranks = 2, dims = 4, n = 16, steps = 12;
        const double lr = 0.05, momentum = 0.5;
        var schedule = new ElasticSchedule(0.8, 0.1, 1.5);
        var data = Enumerable.Range(0, ranks).Select(a =>
        {
            using var gen = new Generator((ulong)(10 + a));
            return (X: randn(n, dims, generator: gen).DetachFromDisposeScope(), Y: randn(n, 1, generator: gen).DetachFromDisposeScope());
        }).ToArray();
        var models = Enumerable.Range(0, ranks).Select(a =>
        {
            random.manual_seed(20 + a);
            return nn.Linear(dims, 1);
        }).ToArray();
        double[] Flat(nn.Module m) => [.. m.parameters().SelectMany(p => p.data<float>().ToArray().Select(v => (double)v))];
        var x = models.Select(Flat).ToArray(); // layout: weight (dims), bias (1)

        ThreadedCollectives.Run(ranks, c =>
        {
            var model = models[c.Rank];
            using var opt = new ElasticSgd(model.parameters(), lr, schedule, c, momentum);
            for (var t = 0; t < steps; t++)
            {
                using var scope = NewDisposeScope();
                opt.step(() =>
                {
                    opt.zero_grad();
                    var loss = nn.functional.mse_loss(model.forward(data[c.Rank].X), data[c.Rank].Y);
                    loss.backward();
                    return loss;
                });
            }
            return 0;
        });

        var xs = data.Select(d => d.X.to(ScalarType.Float64).data<double>().ToArray()).ToArray();
        var ys = data.Select(d => d.Y.to(ScalarType.Float64).data<double>().ToArray()).ToArray();
        var buffers = new double[ranks][];
        for (var t = 0; t < steps; t++)
        {
            var rho = Math.Min(schedule.Rho0 * Math.Pow(1 + schedule.Growth, t), schedule.Max);
            var mean = Enumerable.Range(0, dims + 1).Select(i => x.Average(v => v[i])).ToArray();
            var next = new double[ranks][];
            for (var a = 0; a < ranks; a++)
            {
                var g = new double[dims + 1];
                for (var s = 0; s < n; s++)
                {
                    var residual = x[a][dims] - ys[a][s];
                    for (var j = 0; j < dims; j++) residual += x[a][j] * xs[a][s * dims + j];
                    for (var j = 0; j < dims; j++) g[j] += 2.0 / n * residual * xs[a][s * dims + j];
                    g[dims] += 2.0 / n * residual;
                }
                var direction = g.Select((gi, i) => gi + rho * (x[a][i] - mean[i])).ToArray();
                buffers[a] = buffers[a] is null ? direction : buffers[a].Select((b, i) => momentum * b + direction[i]).ToArray();
                next[a] = x[a].Select((v, i) => v - lr * buffers[a][i]).ToArray();
            }
            x = next;
        }
        for (var a = 0; a < ranks; a++)
        {
            var trained = Flat(models[a]);
            for (var i = 0; i <= dims; i++)
                Assert.True(Math.Abs(trained[i] - x[a][i]) < 1e-5 * (1 + Math.Abs(x[a][i])), $"replica {a}, element {i}: float32 {trained[i]}, float64 reference {x[a][i]}");
        }
    }

    [Fact]
    public void ParleWithOneStepNoScopeAndNoNoiseIsElasticSgd()
    {
        // L = 1, gamma = 0, eps = 0, eta' = 1 and mu = the last iterate (alpha = 1): the estimator leaves x - (x - g) = g
        // in .grad up to the rounding of that difference, so Parle is Elastic-SGD to float tolerance.
        var inner = new LocalEntropyOptions { L = 1, Scope = new ConstantScope(0), LangevinLr = 1, Noise = 0, Alpha = 1 };
        var parleReplicas = new[] { new Replica(1, 2), new Replica(3, 4) };
        var elasticReplicas = new[] { new Replica(1, 2), new Replica(3, 4) };
        ThreadedCollectives.Run(2, c =>
        {
            using var parle = new Parle(parleReplicas[c.Rank].Parameters, 0.1, inner, Coupled, c, momentum: 0.9, nesterov: true);
            parleReplicas[c.Rank].Steps(parle, 6);
            using var elastic = new ElasticSgd(elasticReplicas[c.Rank].Parameters, 0.1, Coupled, c, momentum: 0.9, nesterov: true);
            elasticReplicas[c.Rank].Steps(elastic, 6);
            return 0;
        });
        for (var a = 0; a < 2; a++)
        {
            var p = parleReplicas[a].Weights();
            var e = elasticReplicas[a].Weights();
            Assert.Equal(p.Length, e.Length);
            for (var i = 0; i < p.Length; i++) Assert.True(Math.Abs(p[i] - e[i]) < 1e-5, $"replica {a}, element {i}: Parle {p[i]}, Elastic-SGD {e[i]}");
        }
    }

    [Fact]
    public void UseReferenceSwapsInTheMeanAndPutsEachReplicaBackBitForBit()
    {
        var replicas = new[] { new Replica(1, 2), new Replica(3, 4) };
        ThreadedCollectives.Run(2, c =>
        {
            using var parle = MakeParle(replicas[c.Rank], c);
            replicas[c.Rank].Steps(parle, 2);
            return 0;
        });
        var before = replicas.Select(r => r.Weights()).ToArray();
        var expectedMean = new float[before[0].Length];
        using (var sum = tensor(before[0]))
        using (var other = tensor(before[1]))
        {
            sum.add_(other).div_(2);
            expectedMean = sum.data<float>().ToArray();
        }
        var inside = ThreadedCollectives.Run(2, c =>
        {
            var r = replicas[c.Rank];
            using var parle = MakeParle(r, c);
            float[] mean;
            using (parle.UseReference())
            {
                mean = r.Weights();
                var refused = Assert.Throws<InvalidOperationException>(() => r.Steps(parle, 1));
                Assert.Contains("UseReference", refused.Message);
            }
            return mean;
        });
        Assert.Equal(expectedMean, inside[0]);
        Assert.Equal(expectedMean, inside[1]);
        Assert.Equal(before[0], replicas[0].Weights());
        Assert.Equal(before[1], replicas[1].Weights());
    }

    public static TheoryData<string, int> CheckpointCases => new() { { "parle", 1 }, { "parle", 2 }, { "elastic-sgd", 1 }, { "elastic-sgd", 2 } };

    [Theory]
    [MemberData(nameof(CheckpointCases))]
    public void AStateDictionaryRoundTripContinuesBitIdentically(string optimizer, int ranks)
    {
        using var dir = new TempDir();
        OptimizerHelper Make(Replica r, ICollectives c) => optimizer == "parle"
            ? MakeParle(r, c)
            : (OptimizerHelper) new ElasticSgd(r.Parameters, 0.1, Coupled, c, momentum: 0.9, nesterov: true, weightDecay: 1e-3);
        float[][] Train(bool split)
        {
            var replicas = Enumerable.Range(0, ranks).Select(a => new Replica(1 + 2 * a, 2 + 2 * a)).ToArray();
            ThreadedCollectives.Run(ranks, c =>
            {
                var r = replicas[c.Rank];
                var opt = Make(r, c);
                r.Steps(opt, 3);
                if (split)
                {
                    var file = dir.File($"{optimizer}-{c.Rank}.bin");
                    opt.save_state_dict(file);
                    opt.Dispose();
                    opt = Make(r, c);
                    opt.load_state_dict(file);
                }
                r.Steps(opt, 4);
                opt.Dispose();
                return 0;
            });
            return [.. replicas.Select(r => r.Weights())];
        }
        var whole = Train(false);
        var resumed = Train(true);
        for (var a = 0; a < ranks; a++) Assert.Equal(whole[a], resumed[a]);
    }

    [Fact]
    public void AReplicaStateLoadedOnAnotherRankIsRefused()
    {
        using var dir = new TempDir();
        var replicas = new[] { new Replica(1, 2), new Replica(3, 4) };
        var e = Assert.Throws<InvalidOperationException>(() => ThreadedCollectives.Run(2, c =>
        {
            using var opt = MakeParle(replicas[c.Rank], c);
            replicas[c.Rank].Steps(opt, 1);
            opt.save_state_dict(dir.File($"rank{c.Rank}.bin"));
            c.Barrier();
            opt.load_state_dict(dir.File($"rank{1 - c.Rank}.bin"));
            return 0;
        }));
        Assert.Contains("written by rank", e.ToString());
        Assert.Contains("each rank must load its own replica's state", e.ToString());
    }

    [Fact]
    public void TheCouplingsGrowGeometricallyPerOuterStepAndStopAtTheirCaps()
    {
        var r = new Replica(1, 2);
        using var parle = new Parle(r.Parameters, 0.1, Inner() with { Scope = new ExponentialScope(0.4, 1) }, new ElasticSchedule(2, 1, 5), gammaMax: 1);
        var seen = new List<(double Gamma, double Rho)>();
        for (var t = 0; t < 4; t++)
        {
            seen.Add((parle.Estimator.CurrentGamma, parle.CurrentRho));
            r.Steps(parle, 1);
        }
        Assert.Equal(new[] { (0.4, 2.0), (0.8, 4.0), (1.0, 5.0), (1.0, 5.0) }, seen);
        Assert.Equal(4, parle.OuterSteps);
        Assert.Equal(5.0, parle.TakeDiagnostics()["elastic_rho"]);
        Assert.Equal(0.0, new ElasticSchedule(0, 1, 5).Rho(10));
    }

    [Fact]
    public void BadOptionsAreRefusedByName()
    {
        OptionsException Refused(OptimizerOptionsBase o) => Assert.Throws<OptionsException>(o.Validate);
        Assert.Equal("ElasticRho", Refused(new ParleOptions { ElasticRho = -1 }).Parameter);
        Assert.Equal("ElasticRhoGrowth", Refused(new ParleOptions { ElasticRhoGrowth = double.NaN }).Parameter);
        var cap = Refused(new ElasticSgdOptions { ElasticRho = 20, ElasticRhoMax = 10 });
        Assert.Equal("ElasticRhoMax", cap.Parameter);
        Assert.Contains("at least ElasticRho (20)", cap.Message);
        Assert.Equal("GammaMax", Refused(new ParleOptions { GammaMax = 0 }).Parameter);
        Assert.Equal("LocalEntropy.L", Refused(new ParleOptions { LocalEntropy = new ParleOptions().LocalEntropy with { L = 0 } }).Parameter);
        Assert.Equal("Nesterov", Refused(new ElasticSgdOptions { Nesterov = true }).Parameter);
        Assert.Equal("LearningRate", Refused(new ElasticSgdOptions { LearningRate = 0 }).Parameter);
    }

    [Fact]
    public void BothAreRegisteredWithDescriptionsAndRunInOneProcessWithoutCollectives()
    {
        foreach (var name in new[] { "parle", "elastic-sgd" })
        {
            var d = OptimizerFactory.Describe(name);
            Assert.Contains("allreduce", d.Description);
            Assert.True(d.RecalibratesBatchNormByDefault);
            Assert.Equal(d.Defaults, d.FromJson(d.ToJson(d.Defaults)));
            var r = new Replica(1, 2);
            using var opt = d.Create(r.Parameters, null, new OptimizerContext { RunSeed = 4, StepsPerEpoch = 8 });
            var replica = Assert.IsAssignableFrom<IReplicaOptimizer>(opt);
            Assert.Equal(1, replica.Collectives.Size);
            var start = r.Weights();
            r.Steps(opt, 2);
            Assert.NotEqual(start, r.Weights());
            Assert.Contains(new[] { "elastic_rho" }[0], ((IOptimizerDiagnostics)opt).TakeDiagnostics().Keys);
        }
        Assert.True(OptimizerFactory.Describe("parle").IsLocalEntropy);
        Assert.False(OptimizerFactory.Describe("elastic-sgd").IsLocalEntropy);
        var parle = new ParleOptions();
        Assert.Equal((25, 0.01, 1.0, 10.0), (parle.LocalEntropy.L, parle.LocalEntropy.Scope.Gamma(0), parle.GammaMax, parle.ElasticRhoMax));
    }
}
