using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

/// <summary>Small seeded networks and data sets for the landscape tests, and independent reference computations.</summary>
internal static class LandscapeFixtures
{
    /// <summary>in-hidden-out with tanh (smooth, so finite differences are clean), built in <paramref name="dtype"/>.</summary>
    public static nn.Module<Tensor, Tensor> TanhNet(int inputs = 6, int hidden = 5, int outputs = 3, long seed = 3, ScalarType dtype = ScalarType.Float64)
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(seed);
        var net = nn.Sequential(("fc1", nn.Linear(inputs, hidden)), ("act", nn.Tanh()), ("fc2", nn.Linear(hidden, outputs)));
        net.to(dtype);
        return net;
    }

    /// <summary>Gaussian inputs and random labels, split into batches of the given sizes.</summary>
    public static List<(Tensor Inputs, Tensor Labels)> RandomSet(int[] batchSizes, int inputs = 6, int classes = 3, long seed = 5, ScalarType dtype = ScalarType.Float64)
    {
        using var gen = new Generator((ulong)seed);
        var total = batchSizes.Sum();
        var x = randn(total, inputs, ScalarType.Float64, generator: gen).to(dtype).DetachFromDisposeScope();
        var y = randint(0, classes, [total], generator: gen).to(ScalarType.Int64).DetachFromDisposeScope();
        var list = new List<(Tensor, Tensor)>();
        long start = 0;
        foreach (var size in batchSizes)
        {
            list.Add((x.narrow(0, start, size), y.narrow(0, start, size)));
            start += size;
        }
        return list;
    }

    /// <summary>
    /// The Hessian of the mean cross-entropy over the whole set as one batch, row by row as the Jacobian of the gradient
    /// (autograd.grad of each gradient component): independent of the HVP path (no dot product, no batch weights).
    /// </summary>
    public static Tensor HessianByJacobian(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> data)
    {
        using var scope = NewDisposeScope();
        model.eval();
        var x = cat(data.Select(d => d.Inputs).ToArray(), 0);
        var y = cat(data.Select(d => d.Labels).ToArray(), 0);
        var ps = model.parameters().ToArray();
        var loss = F.cross_entropy(model.call(x), y);
        var grads = autograd.grad([loss], ps, create_graph: true, retain_graph: true);
        var flat = cat(grads.Select(g => g.reshape(-1)).ToArray(), 0);
        var n = flat.shape[0];
        var h = zeros(n, n, ScalarType.Float64);
        for (long i = 0; i < n; i++)
        {
            var row = autograd.grad([flat[i]], ps, retain_graph: true, allow_unused: true);
            h[i].copy_(cat(row.Select((r, k) => r.IsInvalid ? zeros(ps[k].numel(), ScalarType.Float64) : r.reshape(-1).to(ScalarType.Float64)).ToArray(), 0));
        }
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A 6-5-3 ReLU network in float64 and its copy with Dinh et al.'s rescaling: fc1 (weight and bias) times
    /// <paramref name="a"/>, fc2's weight over it. Both compute the same function.
    /// </summary>
    public static (nn.Module<Tensor, Tensor> Original, nn.Module<Tensor, Tensor> Rescaled) ReluRescaledPair(double a = 4)
    {
        nn.Module<Tensor, Tensor> Net()
        {
            random.manual_seed(11);
            return nn.Sequential(("fc1", nn.Linear(6, 5)), ("relu", nn.ReLU()), ("fc2", nn.Linear(5, 3))).to(ScalarType.Float64);
        }
        var original = Net();
        var rescaled = Net();
        using (no_grad())
        {
            var p = rescaled.named_parameters().ToDictionary(x => x.name, x => x.parameter);
            p["fc1.weight"].mul_(a);
            p["fc1.bias"].mul_(a);
            p["fc2.weight"].div_(a);
        }
        return (original, rescaled);
    }

    /// <summary>A symmetric matrix Q diag(eigenvalues) Q^T with a seeded random orthogonal Q (float64).</summary>
    public static Tensor MatrixWithSpectrum(double[] eigenvalues, long seed = 11)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed);
        var n = eigenvalues.Length;
        var (q, _) = linalg.qr(randn(n, n, ScalarType.Float64, generator: gen));
        var m = q.matmul(diag(tensor(eigenvalues, ScalarType.Float64))).matmul(q.T);
        return m.add(m.T).div(tensor(2.0, ScalarType.Float64)).MoveToOuterDisposeScope();
    }

    /// <summary>Exact Hessian via <see cref="ExactHessian"/> in float64.</summary>
    public static Tensor Dense(Hvp hvp)
    {
        var result = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 32 });
        return result.Hessian;
    }

    public static double MaxAbs(Tensor a) { using var s = NewDisposeScope(); return a.abs().max().ToDouble(); }
    public static double MaxAbsDiff(Tensor a, Tensor b) { using var s = NewDisposeScope(); return a.to(ScalarType.Float64).sub(b.to(ScalarType.Float64)).abs().max().ToDouble(); }
}
