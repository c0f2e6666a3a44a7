using TorchSharp;
using WideValley.Optim;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Optim;

/// <summary>Our SGD and Adam against TorchSharp's, and their safety when other threads trigger garbage collections.</summary>
public class BaselineOptimizerTests
{
    /// <summary>A fixed regression problem; the same minibatch sequence for every run.</summary>
    static (nn.Module<Tensor, Tensor> Model, Func<optim.Optimizer, Func<Tensor>> Closure) Problem(ScalarType dtype, long seed = 1)
    {
        random.manual_seed(seed);
        var model = nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, 2));
        model.to(dtype);
        var x = randn(64, 6).to(dtype);
        var y = randn(64, 2).to(dtype);
        var step = 0;
        // Index tensors made once: arange takes implicit Scalars, which is exactly the hazard the churn test looks for.
        var batches = Enumerable.Range(0, 4).Select(b => tensor(Enumerable.Range(b * 16, 16).Select(i => (long)i).ToArray())).ToArray();
        return (model, opt => () =>
        {
            opt.zero_grad();
            var idx = batches[step++ % 4];
            var loss = nn.functional.mse_loss(model.forward(x.index_select(0, idx)), y.index_select(0, idx));
            loss.backward();
            return loss;
        });
    }

    static double[] Train(Func<IEnumerable<TorchSharp.Modules.Parameter>, optim.Optimizer> create, ScalarType dtype, int steps = 40)
    {
        var (model, closure) = Problem(dtype);
        using var opt = create(model.parameters());
        var c = closure(opt);
        for (var i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            opt.step(c);
        }
        return Synthetic.Flatten(model);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 0.0, false, 0.0)]
    [InlineData(ScalarType.Float32, 0.9, true, 1e-3)]
    [InlineData(ScalarType.Float32, 0.9, false, 0.0)]
    [InlineData(ScalarType.Float64, 0.9, true, 1e-3)]
    public void SgdFollowsPyTorchsRule(ScalarType dtype, double momentum, bool nesterov, double weightDecay)
    {
        var ours = Train(p => new SgdOptimizer(p, 0.05, momentum, weightDecay: weightDecay, nesterov: nesterov), dtype);
        var theirs = Train(p => optim.SGD(p, 0.05, momentum, weight_decay: weightDecay, nesterov: nesterov), dtype);
        AssertClose(ours, theirs, dtype);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 0.0, false)]
    [InlineData(ScalarType.Float32, 1e-2, false)]
    [InlineData(ScalarType.Float32, 0.0, true)]
    [InlineData(ScalarType.Float64, 1e-2, true)]
    public void AdamFollowsPyTorchsRule(ScalarType dtype, double weightDecay, bool amsgrad)
    {
        var ours = Train(p => new AdamOptimizer(p, 1e-2, 0.8, 0.99, 1e-8, weightDecay, amsgrad), dtype);
        var theirs = Train(p => optim.Adam(p, 1e-2, 0.8, 0.99, 1e-8, weightDecay, amsgrad), dtype);
        AssertClose(ours, theirs, dtype);
    }

    static void AssertClose(double[] a, double[] b, ScalarType dtype)
    {
        var tolerance = dtype == ScalarType.Float64 ? 1e-12 : 2e-5;
        var worst = a.Zip(b, (x, y) => Math.Abs(x - y) / (1 + Math.Abs(y))).Max();
        Assert.True(worst < tolerance, $"largest relative difference {worst:E2}");
    }

    /// <summary>
    /// TorchSharp frees the native Scalar of a double argument in a finalizer and gives native code only its handle, so
    /// a collection started by another thread mid-call corrupts the value (see TorchScalars). With a thread allocating
    /// as fast as it can, every optimizer here must produce exactly the weights of a quiet run.
    /// </summary>
    [Theory]
    [InlineData("sgd", ScalarType.Float32)]
    [InlineData("sgd", ScalarType.Float64)]
    [InlineData("adam", ScalarType.Float32)]
    [InlineData("adam", ScalarType.Float64)]
    [InlineData("entropy-sgd", ScalarType.Float32)]
    [InlineData("entropy-sgd", ScalarType.Float64)]
    [InlineData("sgld", ScalarType.Float64)]
    public void UpdatesAreExactlyTheSameWhileAnotherThreadForcesCollections(string name, ScalarType dtype)
    {
        optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> p) => OptimizerFactory.Create(name, p, name switch
        {
            "sgd" => new SgdOptions { LearningRate = 0.01, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3 },
            "adam" => new AdamOptions { LearningRate = 0.01, WeightDecay = 1e-3 },
            "entropy-sgd" => new EntropySgdOptions
            {
                LearningRate = 0.5, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3,
                LocalEntropy = new LocalEntropyOptions { L = 3, Noise = 1e-3, LangevinMomentum = 0.9, Seed = 4 },
            },
            _ => (OptimizerOptionsBase)new SgldOptions { LearningRate = 0.01, WeightDecay = 1e-3, Seed = 9 },
        }, new OptimizerContext { TrainingSetSize = 64 });
        var quiet = Train(Create, dtype, steps: 150);
        var collections = GarbageChurn.WhileCollecting(() => Assert.Equal(quiet, Train(Create, dtype, steps: 150)), minimumCollections: 11);
        Assert.True(collections > 10, $"the churn thread should have forced collections ({collections})");
    }
}
