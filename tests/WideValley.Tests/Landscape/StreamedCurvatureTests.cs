using TorchSharp;
using TorchSharp.Modules;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

/// <summary>
/// The generalised Gauss-Newton matrix, the empirical Fisher and the diagonal Fisher over a user's own batch type
/// (<see cref="StreamedOutputLoss{TBatch}"/>, <see cref="StreamedLoss{TBatch}"/>): the same matrices as the
/// (inputs, labels) forms on the same data, closed forms, and the errors for what does not fit. All in float64.
/// </summary>
public sealed class StreamedCurvatureTests
{
    private static ExactHessianOptions Dense => new() { MemoryLimitBytes = 1L << 30 };

    /// <summary>A batch of two inputs and class targets, which a tuple cannot hold.</summary>
    private sealed record TwoInputs(Tensor Left, Tensor Right, Tensor Target);

    /// <summary>
    /// A network of two inputs: out = fc(tanh(left(a) + right(b))). Its own <see cref="Pair"/> is what a user's forward
    /// function calls; <c>forward(x)</c> takes the two inputs side by side, for the (inputs, labels) reference.
    /// </summary>
    private sealed class TwoTower : nn.Module<Tensor, Tensor>
    {
        private readonly Linear left, right, fc;

        public TwoTower() : base(nameof(TwoTower))
        {
            left = nn.Linear(2, 4);
            right = nn.Linear(3, 4);
            fc = nn.Linear(4, 3);
            RegisterComponents();
        }

        public Tensor Pair(Tensor a, Tensor b) => fc.call(left.call(a).add(right.call(b)).tanh());

        public override Tensor forward(Tensor x) => Pair(x.narrow(1, 0, 2), x.narrow(1, 2, 3));
    }

    private static TwoTower NewTwoTower()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(12);
        var model = new TwoTower();
        model.to(ScalarType.Float64);
        return model;
    }

    /// <summary>The same data as (inputs, labels) batches (inputs side by side) and as two-input batches, with a pass counter.</summary>
    private static (List<(Tensor Inputs, Tensor Labels)> Tuples, Func<IEnumerable<TwoInputs>> Batches, Func<int> Passes) TwoInputData(int[] sizes)
    {
        var tuples = RandomSet(sizes, inputs: 5, seed: 9);
        var passes = 0;
        IEnumerable<TwoInputs> Batches()
        {
            passes++;
            foreach (var (x, y) in tuples) yield return new TwoInputs(x.narrow(1, 0, 2), x.narrow(1, 2, 3), y);
        }
        return (tuples, Batches, () => passes);
    }

    private static StreamedOutputLoss<TwoInputs> CrossEntropy(Func<IEnumerable<TwoInputs>> batches) => new(
        batches,
        (m, b) => ((TwoTower)m).Pair(b.Left, b.Right),
        (output, b) => F.cross_entropy(output, b.Target, reduction: nn.Reduction.None),
        b => b.Target.shape[0],
        identity: "two-inputs/cross-entropy");

    [Fact]
    public void TheGaussNewtonMatrixOfATwoInputBatchTypeIsTheTupleFormsAndItsHessianIsTheHessians()
    {
        var model = NewTwoTower();
        var (tuples, batches, passes) = TwoInputData([4, 7, 3]);
        var streamed = CrossEntropy(batches);
        using var fromStream = new GaussNewton(model, streamed);
        Assert.Equal(1, passes()); // counting the samples
        using var fromTuples = new GaussNewton(model, tuples);
        using var g = ExactHessian.Compute(fromStream, Dense);
        using var reference = ExactHessian.Compute(fromTuples, Dense);
        var scale = MaxAbs(reference.Hessian);
        Assert.True(scale > 1e-3);
        Assert.True(MaxAbsDiff(g.Hessian, reference.Hessian) < 1e-13 * scale, $"streamed GGN differs by {MaxAbsDiff(g.Hessian, reference.Hessian):E2}");
        // Nothing is held: every product enumerates the batches afresh.
        Assert.Equal(1 + fromStream.Dimension, passes());
        Assert.Equal(fromStream.Dimension, fromStream.Applications);

        // The same object is a StreamedLoss for the Hessian, which differs from the GGN by the network's curvature.
        using var hvp = new Hvp(model, streamed);
        using var hvpTuples = new Hvp(model, tuples);
        using var h = ExactHessian.Compute(hvp, Dense);
        using var hReference = ExactHessian.Compute(hvpTuples, Dense);
        Assert.True(MaxAbsDiff(h.Hessian, hReference.Hessian) < 1e-13 * MaxAbs(hReference.Hessian));
        Assert.True(MaxAbsDiff(h.Hessian, g.Hessian) > 1e-6);
        Assert.Equal(hvpTuples.Evaluate().Loss, hvp.Evaluate().Loss, 13);

        // The entry point measures the same matrix: its top eigenvalue is the dense matrix's.
        using var analysis = new HessianAnalysis(model, streamed, curvature: CurvatureKind.GaussNewton);
        Assert.Equal(CurvatureKind.GaussNewton, analysis.Curvature);
        using var eigenvalues = ExactHessian.Eigenvalues(reference.Hessian);
        var top = eigenvalues[-1].ToDouble();
        Assert.Equal(top, analysis.TopEigenvalues(1).Eigenvalues[0], 1e-9 * top);
    }

    [Fact]
    public void TheGaussNewtonMatrixOfALinearModelWithSquaredErrorIsTheClosedFormHessian()
    {
        // loss = (1/(N C)) sum_i ||W x_i + b - y_i||^2, so for each output c the block of (W_c, b_c) is
        // (2/(N C)) sum_i [x_i; 1][x_i; 1]^T, and outputs do not couple. The GGN drops nothing for a linear model.
        TorchRuntime.EnsureInitialized();
        random.manual_seed(2);
        var model = nn.Linear(5, 2);
        model.to(ScalarType.Float64);
        using var gen = new Generator(6);
        var x = randn(9, 5, ScalarType.Float64, generator: gen);
        var y = randn(9, 2, ScalarType.Float64, generator: gen);
        (Tensor X, Tensor Y)[] batches = [(x.narrow(0, 0, 5), y.narrow(0, 0, 5)), (x.narrow(0, 5, 4), y.narrow(0, 5, 4))];
        var streamed = new StreamedOutputLoss<(Tensor X, Tensor Y)>(() => batches, (m, b) => m.call(b.X),
            (output, b) => F.mse_loss(output, b.Y, reduction: nn.Reduction.None).mean([1]), b => b.X.shape[0]);
        using var ggn = new GaussNewton(model, streamed);
        using var g = ExactHessian.Compute(ggn, Dense);

        using var scope = NewDisposeScope();
        var augmented = cat([x, ones(9, 1, ScalarType.Float64)], 1);
        var block = augmented.T.matmul(augmented).mul(2.0 / (9 * 2));
        var expected = zeros(12, 12, ScalarType.Float64);
        for (var c = 0; c < 2; c++)
        {
            // Layout: weight (2 x 5, row-major) then bias (2).
            long[] index = [.. Enumerable.Range(c * 5, 5).Select(i => (long)i), 10 + c];
            for (var r = 0; r < 6; r++)
                for (var k = 0; k < 6; k++)
                    expected[index[r], index[k]] = block[r, k];
        }
        Assert.True(MaxAbsDiff(g.Hessian, expected) < 1e-13 * MaxAbs(expected), $"GGN differs from the closed form by {MaxAbsDiff(g.Hessian, expected):E2}");
        using var hvp = new Hvp(model, streamed);
        using var h = ExactHessian.Compute(hvp, Dense);
        Assert.True(MaxAbsDiff(h.Hessian, expected) < 1e-13 * MaxAbs(expected));
    }

    [Fact]
    public void TheEmpiricalFisherOfATwoInputBatchTypeHasTheTupleFormsPerSampleGradients()
    {
        var model = NewTwoTower();
        var (tuples, batches, passes) = TwoInputData([3, 5]);
        using var fromStream = new EmpiricalFisher(model, CrossEntropy(batches));
        Assert.Equal(2, passes()); // one to count, one for the gradients; nothing after
        using var fromTuples = new EmpiricalFisher(model, tuples);
        Assert.Equal(8, fromStream.SampleCount);
        Assert.True(MaxAbsDiff(fromStream.Gradients, fromTuples.Gradients) < 1e-14);

        using var scope = NewDisposeScope();
        // Row i is the gradient of sample i's own loss, taken here one sample at a time through the two-input forward.
        var ps = model.parameters().ToArray();
        var row = 0;
        foreach (var b in batches())
            for (long s = 0; s < b.Target.shape[0]; s++, row++)
            {
                var l = F.cross_entropy(model.Pair(b.Left.narrow(0, s, 1), b.Right.narrow(0, s, 1)), b.Target.narrow(0, s, 1));
                var own = cat(autograd.grad([l], ps).Select(t => t.reshape(-1)).ToArray(), 0);
                Assert.True(MaxAbsDiff(fromStream.Gradients[row], own) < 1e-14, $"sample {row}");
            }
        var v = randn(fromStream.Dimension, ScalarType.Float64, generator: new Generator(3));
        var product = fromStream.Apply(v);
        var expected = fromTuples.Gradients.T.matmul(fromTuples.Gradients.mv(v)).div(8);
        Assert.True(MaxAbsDiff(product, expected) < 1e-13 * MaxAbs(expected));
        Assert.True(MaxAbsDiff(fromStream.Diagonal(), fromTuples.Gradients.square().mean([0])) < 1e-14);
    }

    [Fact]
    public void TheDiagonalFisherTakesAnyStreamedLossAndCountsMinibatchesEqually()
    {
        var model = NewTwoTower();
        var (tuples, batches, _) = TwoInputData([4, 2, 6]);
        using var reference = DiagFisher.Compute(model, tuples);
        var plain = new StreamedLoss<TwoInputs>(batches, (m, b) => F.cross_entropy(((TwoTower)m).Pair(b.Left, b.Right), b.Target), b => b.Target.shape[0]);
        using var fromPlain = DiagFisher.Compute(model, plain);
        using var fromSplit = DiagFisher.Compute(model, CrossEntropy(batches));
        foreach (var result in new[] { fromPlain, fromSplit })
        {
            Assert.Equal(3, result.Minibatches);
            Assert.True(MaxAbsDiff(result.Diagonal, reference.Diagonal) < 1e-15 + 1e-13 * MaxAbs(reference.Diagonal));
            Assert.True(MaxAbsDiff(result.MeanGradient, reference.MeanGradient) < 1e-14);
        }

        // The closed form from the three minibatch gradients: each minibatch counts 1/3, whatever its size.
        using var scope = NewDisposeScope();
        var ps = model.parameters().ToArray();
        var gradients = stack(tuples.Select(t =>
            cat(autograd.grad([F.cross_entropy(model.call(t.Inputs), t.Labels)], ps).Select(g => g.reshape(-1)).ToArray(), 0)).ToArray());
        var mean = gradients.mean([0]);
        var variance = gradients.square().mean([0]).sub(mean.square());
        Assert.True(MaxAbsDiff(fromSplit.Diagonal, variance) < 1e-15 + 1e-13 * MaxAbs(variance));
        Assert.True(MaxAbsDiff(fromSplit.MeanGradient, mean) < 1e-14);
    }

    [Fact]
    public void WhatDoesNotFitIsRefusedWithWhatWasExpected()
    {
        var model = NewTwoTower();
        var (_, batches, _) = TwoInputData([3, 4]);
        // A batch-mean loss where per-sample losses belong.
        var scalar = new StreamedOutputLoss<TwoInputs>(batches, (m, b) => ((TwoTower)m).Pair(b.Left, b.Right),
            (output, b) => F.cross_entropy(output, b.Target), b => b.Target.shape[0]);
        using (var ggn = new GaussNewton(model, scalar))
        {
            var e = Assert.Throws<ArgumentException>(() => ggn.Apply(ones(ggn.Dimension, ScalarType.Float64)));
            Assert.Contains("batch 0", e.Message);
            Assert.Contains("a vector of 3", e.Message);
        }
        Assert.Throws<ArgumentException>(() => new EmpiricalFisher(model, scalar));
        // A sample count that does not match the losses.
        var miscounted = new StreamedOutputLoss<TwoInputs>(batches, (m, b) => ((TwoTower)m).Pair(b.Left, b.Right),
            (output, b) => F.cross_entropy(output, b.Target, reduction: nn.Reduction.None), _ => 5);
        Assert.Contains("a vector of 5", Assert.Throws<ArgumentException>(() => new EmpiricalFisher(model, miscounted)).Message);
        // A variance needs two minibatches.
        var one = new StreamedLoss<TwoInputs>(() => batches().Take(1), (m, b) => F.cross_entropy(((TwoTower)m).Pair(b.Left, b.Right), b.Target),
            b => b.Target.shape[0]);
        Assert.Contains("at least 2 minibatches", Assert.Throws<ArgumentException>(() => DiagFisher.Compute(model, one)).Message);
        Assert.Throws<ArgumentException>(() => new GaussNewton(model, CrossEntropy(() => [])));
        // A loss given only as batch means cannot give a Gauss-Newton matrix or an empirical Fisher; the error names the form that can.
        foreach (var kind in new[] { CurvatureKind.GaussNewton, CurvatureKind.EmpiricalFisher })
            Assert.Contains("StreamedOutputLoss", Assert.Throws<ArgumentException>(() => new HessianAnalysis(model, one, curvature: kind)).Message);
    }
}
