using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

public sealed class FisherEntropySliceTests
{
    [Fact]
    public void DiagonalFisherIsTheVarianceOfMinibatchGradients()
    {
        var model = TanhNet();
        var batches = RandomSet([8, 8, 8, 8, 8]);
        using var result = DiagFisher.Compute(model, batches);
        // Reference: plain backward per minibatch, variance over minibatches.
        using var scope = NewDisposeScope();
        var grads = new List<Tensor>();
        foreach (var (x, y) in batches)
        {
            model.zero_grad();
            F.cross_entropy(model.call(x), y).backward();
            grads.Add(cat(model.parameters().Select(p => p.grad!.reshape(-1).clone()).ToArray(), 0));
        }
        var stacked = stack(grads);
        var expected = stacked.var(0, unbiased: false);
        Assert.True(MaxAbsDiff(result.Diagonal, expected) < 1e-15, $"{MaxAbsDiff(result.Diagonal, expected):E2}");
        Assert.True(MaxAbsDiff(result.MeanGradient, stacked.mean([0])) < 1e-15);
        Assert.Equal(5, result.Minibatches);
        var summary = result.Summary();
        Assert.Equal(expected.sum().ToDouble(), summary.Sum, 12);
        Assert.True(summary.Min >= 0 && summary.Max >= summary.Median);
        var histogram = result.LogHistogram(bins: 10);
        Assert.Equal(result.Diagonal.numel(), histogram.Counts.Sum() + histogram.BelowRange);
        Assert.Throws<ArgumentException>(() => DiagFisher.Compute(model, batches.Take(1).ToList()));
    }

    /// <summary>A one-parameter "network" whose output is f(w) = (w^2 - 1)^2 / 2 + w / 4, for exact 1-D local entropy.</summary>
    private sealed class DoubleWell : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Parameter w;

        public DoubleWell(double start) : base("double-well")
        {
            w = new TorchSharp.Modules.Parameter(tensor(new[] { start }, ScalarType.Float64));
            register_parameter("w", w);
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var square = w.mul(w);
            var bump = square.sub(ones_like(square)).pow(tensor(2.0, ScalarType.Float64)).div(tensor(2.0, ScalarType.Float64));
            return bump.add(w.div(tensor(4.0, ScalarType.Float64))).expand(input.shape[0]).MoveToOuterDisposeScope();
        }

        public static double F(double x) => 0.5 * (x * x - 1) * (x * x - 1) + 0.25 * x;
    }

    [Fact]
    public void LocalEntropyEstimatorsAgreeWithQuadratureOnAOneDimensionalLandscape()
    {
        TorchRuntime.EnsureInitialized();
        var model = new DoubleWell(0.9);
        var batches = new List<(Tensor, Tensor)> { (zeros(1, ScalarType.Float64), zeros(1, ScalarType.Int64)) };
        const double gamma = 2, temperature = 0.5;
        var options = new LocalEntropyEstimateOptions
        {
            Gamma = gamma,
            Temperature = temperature,
            GaussianSamples = 4000,
            LangevinSteps = 20000,
            BurnIn = 500,
            LangevinStepSize = 0.01,
            Seed = 3,
            Landscape = new LandscapeOptions { Loss = (output, _) => output.mean() },
        };
        var estimate = LocalEntropyEstimate.Estimate(model, batches, options);
        var exact = LocalEntropyEstimate.Exact1D(DoubleWell.F, 0.9, gamma, -8, 8, temperature: temperature);
        var exactRelative = exact.LocalEntropy - LocalEntropyEstimate.FlatReference(DoubleWell.F(0.9), 1, gamma, temperature);
        Assert.Equal(DoubleWell.F(0.9), estimate.LossAtX, 12);
        Assert.True(Math.Abs(estimate.Relative - exactRelative) <= 3 * estimate.RelativeStandardError + 1e-3,
            $"direct {estimate.Relative} +- {estimate.RelativeStandardError} vs exact {exactRelative}");
        Assert.True(Math.Abs(estimate.LangevinRelative - exactRelative) < 0.05, $"Langevin {estimate.LangevinRelative} vs exact {exactRelative}");
        Assert.True(Math.Abs(estimate.LocalEntropyGradientNorm - Math.Abs(exact.NegativeGradient(0.9, gamma))) < 0.1,
            $"gradient {estimate.LocalEntropyGradientNorm} vs {exact.NegativeGradient(0.9, gamma)}");
        using var w = model.parameters().First().detach();
        Assert.Equal(0.9, w.ToDouble()); // weights restored
    }

    [Fact]
    public void SlicesRestoreWeightsAndModesHitTheEndpointsAndWriteCsv()
    {
        var model = Synthetic.Mlp(dropout: 0.3);
        model.train();
        using var data = Synthetic.Blobs(train: 64, test: 8);
        var batches = new List<(Tensor, Tensor)> { (data.Train.Inputs, data.Train.Labels) };
        var before = Synthetic.Flatten(model);
        using var a = Slices.FlatParameters(model);
        using var b = a.add(randn_like(a).mul(tensor(0.1f)));
        var line = Slices.Interpolation(model, batches, a, b, points: 9, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(9, line.Count);
        Assert.Equal(-0.5, line[0].Alpha);
        Assert.Equal(1.5, line[^1].Alpha);
        using var hvpAtA = new Hvp(model, batches);
        Assert.Equal(hvpAtA.Evaluate().Loss, line[2].Loss, 6); // t = 0
        Assert.Equal(before, Synthetic.Flatten(model));
        Assert.True(model.training);

        var options = new SliceOptions { Points = 5, Seed = 1 };
        var oneD = Slices.RandomDirection1D(model, batches, options);
        var twoD = Slices.RandomDirections2D(model, batches, options);
        Assert.Equal(25, twoD.Count);
        Assert.Equal(oneD[2].Loss, twoD[12].Loss, 6); // both centres are the unperturbed weights
        Assert.Equal(before, Synthetic.Flatten(model));
        Assert.True(model.training);

        using var hvp = new Hvp(model, batches);
        using var generator = new Generator(3);
        using var weights = hvp.Parameters();
        using var direction = Slices.FilterNormalizedDirection(hvp.Layout, weights, generator);
        foreach (var block in hvp.Layout.Blocks)
        {
            using var d = direction.narrow(0, block.Offset, block.Count);
            if (block.Shape.Length == 1) { Assert.Equal(0, d.abs().sum().ToDouble()); continue; }
            using var dn = d.view(block.Shape[0], -1).norm(1);
            using var wn = weights.narrow(0, block.Offset, block.Count).view(block.Shape[0], -1).norm(1);
            Assert.True(MaxAbsDiff(dn, wn) < 1e-5 * MaxAbs(wn));
        }

        using var dir = new TempDir();
        var path = dir.File("slice.csv");
        Slices.WriteCsv(path, twoD, twoDimensional: true);
        var lines = File.ReadAllLines(path);
        Assert.Equal("alpha,beta,loss,error_percent", lines[0]);
        Assert.Equal(26, lines.Length);
        Assert.Empty(dir.Leftovers());
    }
}
