using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

namespace WideValley.Tests.Support;

/// <summary>Small, seeded learning problems for trainer and optimizer tests.</summary>
public static class Synthetic
{
    /// <summary>
    /// Gaussian blobs: <paramref name="classes"/> clusters in <paramref name="dims"/> dimensions, separable enough that
    /// a small network learns them in a few epochs.
    /// </summary>
    public static ClassificationDataset Blobs(int train = 512, int test = 256, int dims = 8, int classes = 3, long seed = 7, int validation = 0)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed);
        var centres = randn(classes, dims, generator: gen) * 3;
        LabeledData Make(int n)
        {
            var labels = randint(0, classes, n, generator: gen).to(ScalarType.Int64);
            var x = centres.index_select(0, labels) + randn(n, dims, generator: gen);
            return new LabeledData(x.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), classes);
        }
        var tr = Make(train + validation);
        LabeledData? val = null;
        if (validation > 0)
        {
            var (rest, held) = tr.SplitOff(validation, seed);
            tr.Dispose();
            tr = rest;
            val = held;
        }
        return new ClassificationDataset { Name = "blobs", Train = tr, Validation = val, Test = Make(test), Source = "synthetic" };
    }

    /// <summary>An MLP with BatchNorm and dropout, so that tests cover running statistics and dropout RNG.</summary>
    public static nn.Module<Tensor, Tensor> Mlp(int dims = 8, int classes = 3, int hidden = 16, double dropout = 0.2, long seed = 1)
    {
        random.manual_seed(seed);
        return nn.Sequential(
            ("fc1", nn.Linear(dims, hidden)),
            ("bn1", nn.BatchNorm1d(hidden)),
            ("relu1", nn.ReLU()),
            ("drop1", nn.Dropout(dropout)),
            ("fc2", nn.Linear(hidden, classes)));
    }

    /// <summary>All parameters and buffers flattened into one double array, for exact comparisons.</summary>
    public static double[] Flatten(nn.Module module)
    {
        using var scope = NewDisposeScope();
        var parts = module.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => kv.Value.detach().to(ScalarType.Float64).flatten());
        return cat(parts.ToList(), 0).data<double>().ToArray();
    }
}
