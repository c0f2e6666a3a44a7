using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

public sealed class CurvatureOperatorTests
{
    private static ExactHessianOptions Dense => new() { MemoryLimitBytes = 1L << 30 };

    /// <summary>The Jacobian of the concatenated outputs (N*C) with respect to all parameters (N*C x n), row by row.</summary>
    private static Tensor OutputJacobian(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        using var scope = NewDisposeScope();
        var ps = model.parameters().ToArray();
        var output = model.call(x).reshape(-1);
        var n = ps.Sum(p => p.numel());
        var j = zeros(output.shape[0], n, ScalarType.Float64);
        for (long r = 0; r < output.shape[0]; r++)
        {
            var row = autograd.grad([output[r]], ps, retain_graph: true, allow_unused: true);
            j[r].copy_(cat(row.Select((g, k) => g.IsInvalid ? zeros(ps[k].numel(), ScalarType.Float64) : g.reshape(-1)).ToArray(), 0));
        }
        return j.MoveToOuterDisposeScope();
    }

    [Fact]
    public void GaussNewtonOfCrossEntropyIsJTransposeHJWithTheSoftmaxHessianAndPositiveSemiDefinite()
    {
        var model = TanhNet(hidden: 4);
        var data = RandomSet([4, 3]);
        using var ggn = new GaussNewton(model, data);
        using var dense = ExactHessian.Compute(ggn, Dense);
        Assert.Equal(ggn.Dimension, ggn.Applications);

        using var scope = NewDisposeScope();
        var x = cat(data.Select(d => d.Inputs).ToArray(), 0);
        var n = x.shape[0];
        var j = OutputJacobian(model, x);
        using (no_grad())
        {
            var p = F.softmax(model.call(x), 1);
            var classes = p.shape[1];
            // H_out of the mean cross-entropy: block diagonal, (diag(p_i) - p_i p_i^T) / N per sample.
            var hOut = zeros(n * classes, n * classes, ScalarType.Float64);
            for (long i = 0; i < n; i++)
            {
                var pi = p[i];
                hOut.narrow(0, i * classes, classes).narrow(1, i * classes, classes).copy_(diag(pi).sub(outer(pi, pi)).div(n));
            }
            var expected = j.T.matmul(hOut).matmul(j);
            var scale = MaxAbs(expected);
            Assert.True(MaxAbsDiff(dense.Hessian, expected) < 1e-12 * scale, $"GGN differs from J^T H J by {MaxAbsDiff(dense.Hessian, expected):E2}");
            Assert.True(dense.MaxAsymmetry < 1e-12 * scale);
            using var eigenvalues = ExactHessian.Eigenvalues(dense.Hessian);
            Assert.True(eigenvalues[0].ToDouble() > -1e-12 * scale, $"GGN must be PSD; smallest eigenvalue {eigenvalues[0].ToDouble():E2}");
        }
        // Not the Hessian: the tanh network's second derivatives make them differ.
        using var hvp = new Hvp(model, data);
        using var h = ExactHessian.Compute(hvp, Dense);
        Assert.True(MaxAbsDiff(h.Hessian, dense.Hessian) > 1e-6);
    }

    [Fact]
    public void GaussNewtonOfAGeneralLossUsesTheLossHessianInTheOutput()
    {
        // Mean squared error over (N, C): H_out = 2 / (N C) I, taken by double backward like any other loss.
        var model = TanhNet(hidden: 4);
        using var gen = new Generator(4);
        var x = randn(6, 6, ScalarType.Float64, generator: gen);
        var targets = randn(6, 3, ScalarType.Float64, generator: gen);
        var options = new LandscapeOptions { Loss = (output, t) => F.mse_loss(output, t) };
        using var ggn = new GaussNewton(model, [(x.narrow(0, 0, 2), targets.narrow(0, 0, 2)), (x.narrow(0, 2, 4), targets.narrow(0, 2, 4))], options);
        using var dense = ExactHessian.Compute(ggn, Dense);
        using var j = OutputJacobian(model, x);
        using var expected = j.T.matmul(j).mul(2.0 / (6 * 3));
        Assert.True(MaxAbsDiff(dense.Hessian, expected) < 1e-12 * MaxAbs(expected));
    }

    [Fact]
    public void GaussNewtonEqualsTheHessianForALinearModelWithSquaredError()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(2);
        var model = nn.Linear(5, 2);
        model.to(ScalarType.Float64);
        using var gen = new Generator(6);
        var x = randn(9, 5, ScalarType.Float64, generator: gen);
        var y = randn(9, 2, ScalarType.Float64, generator: gen);
        var options = new LandscapeOptions { Loss = (output, t) => F.mse_loss(output, t) };
        List<(Tensor, Tensor)> data = [(x.narrow(0, 0, 5), y.narrow(0, 0, 5)), (x.narrow(0, 5, 4), y.narrow(0, 5, 4))];
        using var ggn = new GaussNewton(model, data, options);
        using var hvp = new Hvp(model, data, options);
        using var g = ExactHessian.Compute(ggn, Dense);
        using var h = ExactHessian.Compute(hvp, Dense);
        Assert.True(MaxAbsDiff(g.Hessian, h.Hessian) < 1e-13 * MaxAbs(h.Hessian));
    }

    [Fact]
    public void EmpiricalFisherMatchesTheClosedFormPerSampleGradientsOfSoftmaxRegression()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(8);
        var model = nn.Linear(5, 3);
        model.to(ScalarType.Float64);
        var data = RandomSet([4, 6], inputs: 5);
        using var fisher = new EmpiricalFisher(model, data);
        Assert.Equal(10, fisher.SampleCount);
        using var dense = ExactHessian.Compute(fisher, Dense);

        using var scope = NewDisposeScope();
        using (no_grad())
        {
            var x = cat(data.Select(d => d.Inputs).ToArray(), 0);
            var y = cat(data.Select(d => d.Labels).ToArray(), 0);
            // d l_i / d logits = p_i - e_{y_i}; weight (3 x 5) gradient is its outer product with x_i, bias gradient itself.
            var residual = F.softmax(model.call(x), 1).sub(F.one_hot(y, 3).to(ScalarType.Float64));
            var perSample = cat([residual.unsqueeze(2).mul(x.unsqueeze(1)).reshape(10, 15), residual], 1);
            var expected = perSample.T.matmul(perSample).div(10);
            Assert.True(MaxAbsDiff(dense.Hessian, expected) < 1e-13 * MaxAbs(expected));
            using var diagonal = fisher.Diagonal();
            Assert.True(MaxAbsDiff(diagonal, expected.diagonal()) < 1e-13 * MaxAbs(expected));
            Assert.True(MaxAbsDiff(fisher.Gradients, perSample) < 1e-13);
        }
        Assert.Throws<ArgumentException>(() => new EmpiricalFisher(model, data, maxGradientBytes: 100));
    }

    [Fact]
    public void SolversTakeADenseOperatorAndReportProgressAndStopWhenCancelled()
    {
        double[] spectrum = [5, 3, 1, 0.5, 0, -0.25, -2];
        using var m = MatrixWithSpectrum(spectrum);
        using var op = new DenseOperator(m);
        var progress = new Recorder();
        var top = Lanczos.Run(op, 2, SpectrumEnd.Largest, new LanczosOptions { Progress = progress });
        Assert.Equal(5, top.Eigenvalues[0], 10);
        Assert.Equal(3, top.Eigenvalues[1], 10);
        Assert.Equal(top.Iterations, progress.Reports.Count);
        Assert.Equal(top.Iterations, progress.Reports[^1].Done);
        Assert.All(progress.Reports, r => Assert.Equal("lanczos", r.Method));

        progress.Reports.Clear();
        var trace = Hutchinson.Run(op, new HutchinsonOptions { Probes = 21, HutchPlusPlus = true, Progress = progress });
        Assert.Equal(spectrum.Sum(), trace.Total.Trace, 8); // Hutch++ with a sketch of n columns captures the whole range
        Assert.Equal(21, progress.Reports[^1].Done);
        Assert.Equal("hutch++", progress.Reports[^1].Method);

        progress.Reports.Clear();
        var slq = Slq.Run(op, new SlqOptions { Probes = 2, Steps = 7, Progress = progress });
        Assert.Equal(14, progress.Reports[^1].Done);
        // n steps make each probe's nodes the whole spectrum.
        Assert.Equal(-2, slq.Range.Min, 8);
        Assert.Equal(5, slq.Range.Max, 8);

        using var diagonal = op.Diagonal();
        Assert.Equal(spectrum.Sum(), diagonal.sum().ToDouble(), 10);
        var applied = op.Applications;
        Assert.Equal(top.OperatorApplications + 21 + 14, applied);

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => Lanczos.Run(op, 1, options: new LanczosOptions { Cancellation = cancelled.Token }));
        Assert.Throws<OperationCanceledException>(() => Slq.Run(op, new SlqOptions { Cancellation = cancelled.Token }));
        Assert.Throws<OperationCanceledException>(() => Hutchinson.Run(op, new HutchinsonOptions { Cancellation = cancelled.Token }));
        Assert.Equal(applied, op.Applications);
        using var stopper = new CancellationTokenSource();
        var stopAfterThree = new Recorder(r => { if (r.Done == 3) stopper.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => Lanczos.Run(op, 1, options: new LanczosOptions { Progress = stopAfterThree, Cancellation = stopper.Token }));
        Assert.Equal(3, stopAfterThree.Reports.Count);
    }

    [Fact]
    public void TheExactRouteTakesAnyOperatorButKeepsCheckpointsAndWorkersForAnHvp()
    {
        using var m = MatrixWithSpectrum([2, 1, -1]);
        using var op = new DenseOperator(m);
        using var dense = ExactHessian.Compute(op, Dense);
        Assert.True(MaxAbsDiff(dense.Hessian, m) < 1e-15);
        using var dir = new TempDir();
        Assert.Throws<ArgumentException>(() => ExactHessian.Compute(op, Dense with { CheckpointFolder = dir.Path }));
        Assert.Throws<ArgumentException>(() => ExactHessian.Compute(op, Dense with { Workers = 2 }));
    }

    /// <summary>A synchronous IProgress (System.Progress posts to the thread pool, so its reports would race the asserts).</summary>
    private sealed class Recorder(Action<CurvatureProgress>? also = null) : IProgress<CurvatureProgress>
    {
        public List<CurvatureProgress> Reports { get; } = [];

        public void Report(CurvatureProgress value)
        {
            Reports.Add(value);
            also?.Invoke(value);
        }
    }
}

public sealed class LandscapeDefectTests
{
    [Fact]
    public void APrefixSelectsWholeModulePathSegmentsOnly()
    {
        TorchRuntime.EnsureInitialized();
        var model = nn.Sequential(("fc1", nn.Linear(3, 2)), ("fc10", nn.Linear(2, 2)), ("block", nn.Sequential(("fc1", nn.Linear(2, 2)))));
        Assert.Equal(["fc1.weight", "fc1.bias"], ParameterSelection.ByPrefix("fc1").ResolveNames(model));
        Assert.Equal(["fc10.weight", "fc10.bias"], ParameterSelection.ByPrefix("fc10").ResolveNames(model));
        Assert.Equal(["block.fc1.weight", "block.fc1.bias"], ParameterSelection.ByPrefix("block").ResolveNames(model));
        Assert.Equal(["fc1.bias"], ParameterSelection.ByPrefix("fc1.bias").ResolveNames(model));
        var e = Assert.Throws<ArgumentException>(() => ParameterSelection.ByPrefix("fc").ResolveNames(model));
        Assert.Contains("no parameter name starts with 'fc'", e.Message);
        Assert.Throws<ArgumentException>(() => ParameterSelection.ByPrefix("fc1."));
    }

    [Fact]
    public void TwoCustomLossesNeverShareAColumnFolderAndAnAnonymousOneIsNotCheckpointed()
    {
        var model = TanhNet(hidden: 3);
        var data = RandomSet([10]);
        using var dir = new TempDir();
        var options = new ExactHessianOptions { MemoryLimitBytes = 1L << 30, CheckpointFolder = dir.Path };
        var smoothed = new LandscapeOptions { Loss = (o, y) => F.cross_entropy(o, y, label_smoothing: 0.1), LossName = "label-smoothing-0.1" };
        var plain = new LandscapeOptions { Loss = (o, y) => F.cross_entropy(o, y), LossName = "plain-cross-entropy" };
        using var a = new Hvp(model, data, smoothed);
        using var b = new Hvp(model, data, plain);
        Assert.NotEqual(a.Fingerprint(), b.Fingerprint());
        using (ExactHessian.Compute(a, options)) { }
        var refused = Assert.Throws<ColumnStoreMismatchException>(() => ExactHessian.Compute(b, options));
        Assert.Contains("different model, data set or options", refused.Message);

        using var anonymous = new Hvp(model, data, new LandscapeOptions { Loss = (o, y) => F.cross_entropy(o, y) });
        var e = Assert.Throws<ArgumentException>(() => ExactHessian.Compute(anonymous, options));
        Assert.Contains("LossName", e.Message);
        // Without a folder the anonymous loss is fine.
        using var free = ExactHessian.Compute(anonymous, options with { CheckpointFolder = null });
        Assert.Equal(anonymous.Dimension, free.ComputedColumns);
    }
}
