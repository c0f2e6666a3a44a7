using TorchSharp;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;

namespace WideValley.Tests.Landscape;

public sealed class ExactHessianTests
{
    [Fact]
    public void DenseHessianOfATinyNetworkMatchesTheJacobianOfTheGradient()
    {
        var model = TanhNet();
        var data = RandomSet([9, 21]);
        using var hvp = new Hvp(model, data);
        using var result = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        using var reference = HessianByJacobian(model, data);
        Assert.Equal(hvp.Dimension, result.Hessian.shape[0]);
        Assert.True(MaxAbsDiff(result.Hessian, reference) < 1e-12 * Math.Max(1, MaxAbs(reference)), $"{MaxAbsDiff(result.Hessian, reference):E2}");
        Assert.True(result.MaxAsymmetry < 1e-12);
        Assert.Equal(hvp.Dimension, result.ComputedColumns);
    }

    [Fact]
    public void SoftmaxRegressionHessianMatchesItsClosedForm()
    {
        // Linear softmax without bias: H = (1/N) sum_i (diag(p_i) - p_i p_i^T) kron x_i x_i^T, with W (C x D) flattened row-major.
        TorchRuntime.EnsureInitialized();
        random.manual_seed(4);
        var model = nn.Sequential(("fc", nn.Linear(4, 3, hasBias: false)));
        model.to(ScalarType.Float64);
        var data = RandomSet([25], inputs: 4);
        using var hvp = new Hvp(model, data);
        using var result = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        using var scope = NewDisposeScope();
        var x = data[0].Inputs;
        var p = nn.functional.softmax(model.call(x).detach(), 1);
        var expected = zeros(12, 12, ScalarType.Float64);
        for (var i = 0; i < 25; i++)
        {
            var pi = p[i];
            var a = diag(pi).sub(pi.outer(pi));
            expected.add_(kron(a, x[i].outer(x[i])));
        }
        expected.div_(tensor(25.0, ScalarType.Float64));
        Assert.True(MaxAbsDiff(result.Hessian, expected) < 1e-14, $"{MaxAbsDiff(result.Hessian, expected):E2}");
    }

    [Fact]
    public void InertiaCountsMatchEigenvalueCountsOnAKnownSpectrum()
    {
        var eigenvalues = new double[] { -3, -0.5, -1e-3, -2e-5, 0, 0, 1e-6, 5e-5, 2e-3, 0.7, 0.7, 4, 10, 25 };
        using var m = MatrixWithSpectrum(eigenvalues);
        using var computed = ExactHessian.Eigenvalues(m);
        var sorted = eigenvalues.OrderBy(x => x).ToArray();
        Assert.Equal(sorted, computed.data<double>().ToArray(), (a, b) => Math.Abs(a - b) < 1e-12);
        foreach (var sigma in new[] { -4, -1, -1e-4, 1e-4, 1e-2, 0.8, 30 })
            Assert.Equal(eigenvalues.Count(l => l < sigma), ExactHessian.CountBelow(m, sigma));
        foreach (var t in new[] { 1e-5, 1e-4, 1e-2, 1 })
            Assert.Equal(eigenvalues.Count(l => Math.Abs(l) < t), ExactHessian.CountInBand(m, t));
        using var again = ExactHessian.Eigenvalues(m);
        Assert.Equal(computed.data<double>().ToArray(), again.data<double>().ToArray()); // the diagonal was restored exactly
        Assert.Equal(eigenvalues.Count(l => Math.Abs(l) < 1e-4) / (double)eigenvalues.Length, ExactHessian.FractionAbsBelow(computed, 1e-4));
    }

    [Fact]
    public void InterruptedRunResumesToTheIdenticalMatrixAndRefusesAChangedModel()
    {
        var model = TanhNet(hidden: 6);
        var data = RandomSet([30]);
        using var dir = new TempDir();
        using var hvp = new Hvp(model, data);
        using var uninterrupted = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, ColumnsPerBlock = 7 });

        using var cts = new CancellationTokenSource();
        var options = new ExactHessianOptions
        {
            MemoryLimitBytes = 1L << 30,
            ColumnsPerBlock = 7,
            CheckpointFolder = dir.Path,
            Cancellation = cts.Token,
            Progress = p => { if (p.ColumnsDone >= 20) cts.Cancel(); },
        };
        Assert.Throws<OperationCanceledException>(() => ExactHessian.Compute(hvp, options));
        Assert.Empty(dir.Leftovers());
        var blocks = Directory.GetFiles(dir.Path, "columns-*.bin").Length;
        Assert.Equal(2, blocks); // 20 columns done, blocks of 7: two complete blocks on disk

        ExactHessianProgress? first = null;
        using var resumed = ExactHessian.Compute(hvp, options with { Cancellation = default, Progress = p => first ??= p });
        Assert.Equal(14, resumed.ResumedColumns);
        Assert.Equal(14, first!.ResumedColumns);
        Assert.Equal(hvp.Dimension - 14, resumed.ComputedColumns);
        Assert.True(resumed.Hessian.eq(uninterrupted.Hessian).all().ToBoolean(), "resumed matrix must be bit-identical");

        // Same architecture, different weights: the folder's fingerprint does not match.
        var other = TanhNet(hidden: 6, seed: 77);
        using var otherHvp = new Hvp(other, data);
        var refused = Assert.Throws<ColumnStoreMismatchException>(() => ExactHessian.Compute(otherHvp, options with { Cancellation = default, Progress = null }));
        Assert.Contains("different model", refused.Message);
        // Different data: refused as well.
        using var otherData = new Hvp(model, RandomSet([30], seed: 6));
        Assert.Throws<ColumnStoreMismatchException>(() => ExactHessian.Compute(otherData, options with { Cancellation = default, Progress = null }));
    }

    [Fact]
    public void ColumnsFromSymmetryMatchFullColumnsOnAConvolutionalNetwork()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(31);
        // conv, ReLU, max-pool, fc: the pieces of small-LeNet, small enough for a float64 dense Hessian (n = 4 * 9 + 4 + 4 * 9 * 3 + 3 = 151).
        var model = nn.Sequential(("conv", nn.Conv2d(1, 4, 3)), ("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2, 2)),
            ("flatten", nn.Flatten()), ("fc", nn.Linear(36, 3)));
        model.to(ScalarType.Float64);
        using var gen = new Generator(9);
        var x = randn([40, 1, 8, 8], ScalarType.Float64, generator: gen);
        var y = randint(0, 3, [40], generator: gen).to(ScalarType.Int64);
        var data = new List<(Tensor, Tensor)> { (x.narrow(0, 0, 25), y.narrow(0, 0, 25)), (x.narrow(0, 25, 15), y.narrow(0, 25, 15)) };
        using var hvp = new Hvp(model, data);
        Assert.Equal(151, hvp.Dimension);
        using var full = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, UseSymmetry = false });
        using var halves = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        var scale = Math.Max(1, MaxAbs(full.Hessian));
        Assert.True(MaxAbsDiff(halves.Hessian, full.Hessian) < 1e-13 * scale, $"{MaxAbsDiff(halves.Hessian, full.Hessian):E2}");
        Assert.True(MaxAbsDiff(halves.Hessian, halves.Hessian.T) == 0, "completed matrix must be exactly symmetric");
        Assert.True(full.MaxAsymmetry < 1e-12 * scale && halves.MaxAsymmetry < 1e-12 * scale);
        // The cross-layer block is not zero (else the symmetry fill would go untested).
        Assert.True(MaxAbs(full.Hessian.narrow(0, 40, 111).narrow(1, 0, 40)) > 1e-3);
    }

    [Fact]
    public void ACheckpointFolderOfFullColumnsIsNotResumedAsHalfColumns()
    {
        var model = TanhNet(hidden: 4);
        var data = RandomSet([12]);
        using var dir = new TempDir();
        using var hvp = new Hvp(model, data);
        using (ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, CheckpointFolder = dir.Path, UseSymmetry = false })) { }
        var e = Assert.Throws<ColumnStoreMismatchException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, CheckpointFolder = dir.Path }));
        Assert.Contains("UseSymmetry", e.Message);
    }

    [Fact]
    public void ParallelWorkersOnReplicasGiveTheSameMatrixAndCountEveryProduct()
    {
        var model = TanhNet(hidden: 7);
        var data = RandomSet([13, 20]);
        var options = new LandscapeOptions { ModelFactory = () => TanhNet(hidden: 7, seed: 99) };
        using var hvp = new Hvp(model, data, options);
        using var before = hvp.Parameters();
        using var sequential = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, ColumnsPerBlock = 5 });
        var threadsBefore = get_num_threads();
        var calls = 0;
        using var parallel = ExactHessian.Compute(hvp, new ExactHessianOptions
        {
            MemoryLimitBytes = 1L << 30,
            ColumnsPerBlock = 5,
            Workers = 3,
            Progress = _ => Interlocked.Increment(ref calls),
        });
        // The replicas start from the caller's weights (not the factory's seed 99), so every column is the same product.
        Assert.True(MaxAbsDiff(parallel.Hessian, sequential.Hessian) < 1e-14 * Math.Max(1, MaxAbs(sequential.Hessian)),
            $"{MaxAbsDiff(parallel.Hessian, sequential.Hessian):E2}");
        Assert.Equal(hvp.Dimension, parallel.ComputedColumns);
        Assert.Equal(2 * hvp.Dimension, hvp.HvpCount); // both runs, the replicas' products included
        Assert.Equal(hvp.Dimension + 1, calls);
        Assert.Equal(threadsBefore, get_num_threads());
        using var after = hvp.Parameters();
        Assert.True(after.eq(before).all().ToBoolean(), "the caller's model must be untouched");
    }

    /// <summary>
    /// Two column workers while a third thread forces garbage collections: every scalar the products pass to libtorch
    /// must stay alive through its call (TorchScalarsTests). The paper-budget small-LeNet spectrum crashed here after
    /// eleven minutes before the column tail stopped using TorchSharp's one-argument add_.
    /// </summary>
    [Fact]
    public void ParallelWorkersGiveTheSameMatrixWhileAnotherThreadForcesCollections()
    {
        var model = TanhNet(hidden: 24);
        var data = RandomSet([10, 10, 10, 10]);
        using var hvp = new Hvp(model, data, new LandscapeOptions { ModelFactory = () => TanhNet(hidden: 24) });
        using var quiet = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, ColumnsPerBlock = 8, Workers = 2 });
        // At least six rounds, and more until the churn thread has forced enough collections: on a loaded machine the
        // churn thread may get little CPU time, and a fixed number of rounds would then prove nothing (and fail).
        var before = GC.CollectionCount(0);
        var collections = GarbageChurn.WhileCollecting(() =>
        {
            for (var round = 0; round < 6 || GC.CollectionCount(0) - before <= 10 && round < 500; round++)
            {
                using var noisy = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, ColumnsPerBlock = 8, Workers = 2 });
                Assert.True(MaxAbsDiff(noisy.Hessian, quiet.Hessian) < 1e-14 * Math.Max(1, MaxAbs(quiet.Hessian)),
                    $"round {round}: {MaxAbsDiff(noisy.Hessian, quiet.Hessian):E2}");
            }
        });
        Assert.True(collections > 10, $"the churn thread should have forced collections ({collections})");
    }

    [Fact]
    public void ParallelRunInterruptedMidwayResumesToTheSameMatrix()
    {
        var model = TanhNet(hidden: 6);
        var data = RandomSet([30]);
        using var dir = new TempDir();
        using var hvp = new Hvp(model, data, new LandscapeOptions { ModelFactory = () => TanhNet(hidden: 6) });
        using var reference = ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30 });
        using var cts = new CancellationTokenSource();
        var options = new ExactHessianOptions
        {
            MemoryLimitBytes = 1L << 30,
            ColumnsPerBlock = 4,
            Workers = 2,
            CheckpointFolder = dir.Path,
            Cancellation = cts.Token,
            Progress = p => { if (p.ColumnsDone >= 17) cts.Cancel(); },
        };
        Assert.Throws<OperationCanceledException>(() => ExactHessian.Compute(hvp, options));
        Assert.Empty(dir.Leftovers());
        var blocks = Directory.GetFiles(dir.Path, "columns-*.bin").Length;
        Assert.InRange(blocks, 2, 5); // each worker finishes or drops the block it holds; whole blocks only
        using var resumed = ExactHessian.Compute(hvp, options with { Cancellation = default, Progress = null });
        Assert.Equal(4L * blocks, resumed.ResumedColumns);
        Assert.True(MaxAbsDiff(resumed.Hessian, reference.Hessian) < 1e-14 * Math.Max(1, MaxAbs(reference.Hessian)));
    }

    [Fact]
    public void ReplicasNeedAWayToBuildTheModelAndWorkersNeedACount()
    {
        using var hvp = new Hvp(TanhNet(), RandomSet([10]));
        var e = Assert.Throws<ArgumentException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, Workers = 2, ColumnsPerBlock = 5 }));
        Assert.Contains("ModelFactory", e.Message);
        Assert.Contains("parallel worker", e.Message);
        var zero = Assert.Throws<ArgumentException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1L << 30, Workers = 0 }));
        Assert.Contains("Workers must be at least 1", zero.Message);
        Assert.Equal(0, hvp.HvpCount);
    }

    [Fact]
    public void AZooNetworkReplicatesWithTheZooFactoryAndGivesBitIdenticalProducts()
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(8);
        var model = (nn.Module<Tensor, Tensor>)WideValley.Models.ModelZoo.Create("small-lenet", new WideValley.Models.ModelOptions());
        using var gen = new Generator(3);
        var x = randn([6, 1, 28, 28], generator: gen);
        var y = randint(0, 10, [6], generator: gen).to(ScalarType.Int64);
        using var hvp = new Hvp(model, [(x, y)], new LandscapeOptions
        {
            Parameters = ParameterSelection.ByPrefix("body.fc4"),
            ModelFactory = WideValley.Models.ZooCopies.FactoryFor(model),
        });
        using var replica = hvp.Replicate();
        Assert.Equal(hvp.Dimension, replica.Dimension);
        using var v = randn(hvp.Dimension, generator: gen);
        using var a = hvp.Apply(v);
        using var b = replica.Apply(v);
        Assert.True(a.eq(b).all().ToBoolean());
        Assert.Equal(hvp.Fingerprint(), replica.Fingerprint());
    }

    [Fact]
    public void TooLittleMemoryAndTooManyParametersAreRefusedWithNumbers()
    {
        using var hvp = new Hvp(TanhNet(), RandomSet([10]));
        var memory = Assert.Throws<InsufficientMemoryException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MemoryLimitBytes = 1000 }));
        Assert.Contains($"n = {hvp.Dimension}", memory.Message);
        Assert.Contains("KiB", memory.Message); // sizes in a unit that shows them: 53^2 float64 is 21.9 KiB, not "0.00 GiB"
        Assert.Contains("limit 1000 bytes", memory.Message);
        Assert.Contains("limit", memory.Message);
        Assert.Equal(0, hvp.HvpCount); // refused before any work
        var size = Assert.Throws<ArgumentException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { MaxDimension = 10 }));
        Assert.Contains("MaxDimension = 10", size.Message);

        // small-LeNet's 47,658 parameters in float32: 8.46 GiB for the matrix and as much again for the eigen-solver.
        var plan = ExactHessian.PlanMemory(47_658, ScalarType.Float32, new ExactHessianOptions { MemoryLimitBytes = 22L << 30 });
        Assert.Equal(47_658L * 47_658 * 4, plan.HessianBytes);
        Assert.True(plan.Fits, plan.ToString());
        Assert.False(ExactHessian.PlanMemory(47_658, ScalarType.Float64, new ExactHessianOptions { MemoryLimitBytes = 22L << 30 }).Fits);
        Assert.True(ExactHessian.AvailableMemoryBytes() > 0);
    }
}
