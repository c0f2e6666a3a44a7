using TorchSharp;
using WideValley.Distributed;
using WideValley.Landscape;
using static TorchSharp.torch;
using static WideValley.Tests.Landscape.LandscapeFixtures;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Tests.Landscape;

/// <summary>
/// Landscape products over ranks, in one process (the mpirun tests are in Distributed/MpiLandscapeTests.cs):
/// <list type="bullet">
/// <item>a job of one process (<see cref="SingleProcessCollectives"/>) takes today's code path, bit for bit;</item>
/// <item>with a stand-in for rank r of K whose allreduce leaves each rank's share as it is, the K shares of every
/// product add up to the single-process product (so no batch is dropped, counted twice, or weighted by the share's
/// size instead of the whole set's), and each product makes exactly one allreduce.</item>
/// </list>
/// </summary>
public sealed class DistributedLandscapeTests
{
    /// <summary>Five batches of unequal sizes: with K = 2, rank 0 holds 3 + 30 + 9 samples and rank 1 holds 17 + 4.</summary>
    static readonly int[] BatchSizes = [3, 17, 30, 4, 9];

    /// <summary>
    /// Rank <paramref name="rank"/> of <paramref name="size"/> without the other ranks: the "sum" of an allreduce is this
    /// rank's own share, and every call is counted, so a test can add the shares of all ranks itself.
    /// </summary>
    sealed class ShareOfRank(int rank, int size) : ICollectives
    {
        public int Rank => rank;
        public int Size => size;
        public string Description => $"stand-in for rank {rank} of {size}";
        public int AllReduces { get; private set; }
        public int Broadcasts { get; private set; }

        public void AllReduceSum(Tensor tensor)
        {
            CollectiveTensors.Validate(tensor, nameof(AllReduceSum));
            AllReduces++;
        }

        public void AllReduceAverage(Tensor tensor) => throw new InvalidOperationException("landscape products sum over ranks; they never average");

        public void Broadcast(Tensor tensor, int root)
        {
            CollectiveTensors.Validate(tensor, nameof(Broadcast));
            Broadcasts++;
        }

        public void Barrier() { }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Abort(string reason, int exitCode = 1) => throw new InvalidOperationException(reason);

        public void Dispose() { }
    }

    static bool BitEqual(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();

    static double RelativeDifference(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        return actual.sub(expected).abs().max().ToDouble() / Math.Max(expected.abs().max().ToDouble(), 1e-300);
    }

    [Fact]
    public void AJobOfOneProcessGivesTheSingleProcessNumbersBitForBit()
    {
        var model = TanhNet(hidden: 7);
        var data = RandomSet(BatchSizes);
        var one = new LandscapeOptions { Collectives = new SingleProcessCollectives() };
        foreach (var keepGraph in new[] { true, false })
        {
            using var plain = new Hvp(model, data, new LandscapeOptions { ReuseGradientGraph = keepGraph });
            using var single = new Hvp(model, data, one with { ReuseGradientGraph = keepGraph });
            using var gen = new Generator(3);
            using var v = randn(plain.Dimension, ScalarType.Float64, generator: gen);
            using (var a = plain.Apply(v))
            using (var b = single.Apply(v))
                Assert.True(BitEqual(a, b), "Hessian-vector product");
            var (ga, la) = plain.Gradient();
            var (gb, lb) = single.Gradient();
            using (ga)
            using (gb)
            {
                Assert.True(BitEqual(ga, gb), "gradient");
                Assert.Equal(la, lb);
            }
            Assert.Equal(plain.Evaluate(), single.Evaluate());
            Assert.Equal(Lanczos.Run(plain, 3).Eigenvalues, Lanczos.Run(single, 3).Eigenvalues);
            var slqA = Slq.Run(plain, new SlqOptions { Probes = 3, Steps = 12, Seed = 4 });
            var slqB = Slq.Run(single, new SlqOptions { Probes = 3, Steps = 12, Seed = 4 });
            Assert.Equal(slqA.Nodes.SelectMany(x => x), slqB.Nodes.SelectMany(x => x));
            Assert.Equal(slqA.Weights.SelectMany(x => x), slqB.Weights.SelectMany(x => x));
            Assert.Equal(Hutchinson.Run(plain, new HutchinsonOptions { Probes = 9, Seed = 2 }).Total.Trace,
                Hutchinson.Run(single, new HutchinsonOptions { Probes = 9, Seed = 2 }).Total.Trace);
            using var exactA = ExactHessian.Compute(plain);
            using var exactB = ExactHessian.Compute(single);
            Assert.True(BitEqual(exactA.Hessian, exactB.Hessian), "exact Hessian");
        }
        using var gnA = new GaussNewton(model, data);
        using var gnB = new GaussNewton(model, data, one);
        using var u = ones(gnA.Dimension, ScalarType.Float64);
        using (var a = gnA.Apply(u))
        using (var b = gnB.Apply(u))
            Assert.True(BitEqual(a, b), "Gauss-Newton product");
        using var fisherA = new EmpiricalFisher(model, data);
        using var fisherB = new EmpiricalFisher(model, data, one);
        Assert.True(BitEqual(fisherA.Gradients, fisherB.Gradients), "per-sample gradients");
        using var diagA = DiagFisher.Compute(model, data);
        using var diagB = DiagFisher.Compute(model, data, one);
        Assert.True(BitEqual(diagA.Diagonal, diagB.Diagonal), "diagonal Fisher");
    }

    [Theory]
    [InlineData(2, true)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    [InlineData(7, true)]
    public void TheSharesOfTheRanksAddUpToTheWholeSetWithOneAllreducePerProduct(int size, bool keepGraph)
    {
        var model = TanhNet(hidden: 7);
        var data = RandomSet(BatchSizes);
        var options = new LandscapeOptions { ReuseGradientGraph = keepGraph };
        using var whole = new Hvp(model, data, options);
        using var gen = new Generator(8);
        using var v = randn(whole.Dimension, ScalarType.Float64, generator: gen);
        using var hv = whole.Apply(v);
        var (gradient, loss) = whole.Gradient();
        using var _ = gradient;
        var (evaluated, errorPercent) = whole.Evaluate();
        // Column 60 (in fc2.weight, the third parameter tensor) from its own tensor's rows on, as the exact Hessian takes it.
        const long column = 60;
        var own = whole.Layout.BlockOf(column);
        var tailLength = whole.Dimension - whole.Layout.Blocks[own].Offset;
        using var tail = zeros(tailLength, ScalarType.Float64);
        whole.Loss.HessianColumnTail(column, own, tail);

        using var hvSum = zeros_like(hv);
        using var gradientSum = zeros_like(gradient);
        using var tailSum = zeros_like(tail);
        double lossSum = 0, evaluatedSum = 0;
        var batchesSeen = 0;
        for (var rank = 0; rank < size; rank++)
        {
            var share = new ShareOfRank(rank, size);
            using var part = new Hvp(model, data, options with { Collectives = share });
            Assert.Equal(Enumerable.Range(0, BatchSizes.Length).Count(b => b % size == rank), part.Loss.LocalBatchCount);
            batchesSeen += part.Loss.LocalBatchCount;

            using (var partial = part.Apply(v)) hvSum.add_(partial);
            Assert.Equal(1, share.AllReduces);

            var (g, l) = part.Gradient();
            using (g) gradientSum.add_(g);
            lossSum += l;
            // Float64: the loss rides at the end of the gradient's buffer.
            Assert.Equal(2, share.AllReduces);

            evaluatedSum += part.Evaluate().Loss;
            Assert.Equal(3, share.AllReduces);

            using var partTail = zeros(tailLength, ScalarType.Float64);
            part.Loss.HessianColumnTail(column, own, partTail);
            tailSum.add_(partTail);
            Assert.Equal(4, share.AllReduces);
        }
        Assert.Equal(BatchSizes.Length, batchesSeen);
        Assert.True(RelativeDifference(hvSum, hv) < 1e-13, $"H v: relative difference {RelativeDifference(hvSum, hv):E2}");
        Assert.True(RelativeDifference(gradientSum, gradient) < 1e-13, $"gradient: relative difference {RelativeDifference(gradientSum, gradient):E2}");
        Assert.True(RelativeDifference(tailSum, tail) < 1e-13, $"column tail: relative difference {RelativeDifference(tailSum, tail):E2}");
        Assert.Equal(loss, lossSum, 1e-13 * Math.Abs(loss));
        Assert.Equal(evaluated, evaluatedSum, 1e-13 * Math.Abs(evaluated));
        Assert.False(double.IsNaN(errorPercent));
    }

    [Fact]
    public void GaussNewtonPerSampleGradientsAndTheDiagonalFisherSplitTheSameWay()
    {
        var model = TanhNet(hidden: 7);
        var data = RandomSet(BatchSizes);
        using var gn = new GaussNewton(model, data);
        using var v = ones(gn.Dimension, ScalarType.Float64);
        using var gv = gn.Apply(v);
        using var fisher = new EmpiricalFisher(model, data);
        using var diag = DiagFisher.Compute(model, data);
        using var gvSum = zeros_like(gv);
        using var rowsSum = zeros_like(fisher.Gradients);
        for (var rank = 0; rank < 2; rank++)
        {
            var share = new ShareOfRank(rank, 2);
            var options = new LandscapeOptions { Collectives = share };
            using var part = new GaussNewton(model, data, options);
            using (var partial = part.Apply(v)) gvSum.add_(partial);
            Assert.Equal(1, share.AllReduces);
            using var partFisher = new EmpiricalFisher(model, data, options);
            rowsSum.add_(partFisher.Gradients);
            Assert.Equal(2, share.AllReduces);
        }
        Assert.True(RelativeDifference(gvSum, gv) < 1e-13, $"G v: relative difference {RelativeDifference(gvSum, gv):E2}");
        // Each sample's row comes from exactly one rank (the others leave it zero), so the rows add up exactly.
        Assert.True(BitEqual(rowsSum, fisher.Gradients), "per-sample gradient rows");

        // The diagonal Fisher sums first and second moments over each rank's minibatches: with K = 1 of a pretend
        // 2-rank job (the allreduce leaves rank 0's share), only rank 0's minibatches enter, which must differ.
        var onlyRank0 = new ShareOfRank(0, 2);
        using var partial0 = DiagFisher.Compute(model, data, new LandscapeOptions { Collectives = onlyRank0 });
        Assert.Equal(1, onlyRank0.AllReduces);
        Assert.Equal(3, partial0.Minibatches);
        Assert.Equal(5, diag.Minibatches);
    }

    [Fact]
    public void AStreamedLossIsSplitByTheIndexOfItsBatches()
    {
        var model = TanhNet(hidden: 7);
        var data = RandomSet(BatchSizes);
        var evaluated = new List<int>();
        StreamedLoss<int> Streamed() => new(() => Enumerable.Range(0, data.Count),
            (m, b) =>
            {
                evaluated.Add(b);
                return F.cross_entropy(m.call(data[b].Inputs), data[b].Labels);
            },
            b => data[b].Inputs.shape[0]);
        using var whole = new Hvp(model, Streamed());
        using var v = ones(whole.Dimension, ScalarType.Float64);
        using var hv = whole.Apply(v);
        using var sum = zeros_like(hv);
        for (var rank = 0; rank < 2; rank++)
        {
            evaluated.Clear();
            using var part = new Hvp(model, Streamed(), new LandscapeOptions { Collectives = new ShareOfRank(rank, 2) });
            using (var partial = part.Apply(v)) sum.add_(partial);
            // Only this rank's batches are ever computed; the others are enumerated but their loss is never called.
            Assert.Equal(Enumerable.Range(0, data.Count).Where(b => b % 2 == rank), evaluated);
        }
        Assert.True(RelativeDifference(sum, hv) < 1e-13, $"streamed H v: relative difference {RelativeDifference(sum, hv):E2}");
    }

    [Fact]
    public void TheExactHessianOverRanksRefusesWorkerThreadsAndSaysWhy()
    {
        var model = TanhNet();
        using var hvp = new Hvp(model, RandomSet(BatchSizes), new LandscapeOptions { Collectives = new ShareOfRank(0, 2) });
        var e = Assert.Throws<ArgumentException>(() => ExactHessian.Compute(hvp, new ExactHessianOptions { Workers = 2 }));
        Assert.Contains("Workers = 2 with 2 ranks", e.Message);
        Assert.Contains("Use Workers = 1", e.Message);
    }

    [Fact]
    public void TheHessianMeasurementOverRanksTakesOneWorkerPerRankAndRefusesMore()
    {
        var model = TanhNet();
        var data = RandomSet(BatchSizes);
        using var columns = new Support.TempDir("widevalley-exact-measurement");
        var share = new ShareOfRank(1, 2);
        using var hvp = new Hvp(model, data, new LandscapeOptions { Collectives = share });
        var settings = new HessianMeasurementSettings { Method = HessianMethod.Exact, ColumnsFolder = columns.Path, Workers = 2 };
        var e = Assert.Throws<HessianSettingException>(() => HessianMeasurement.Measure(hvp, settings));
        Assert.Equal("Workers", e.Setting);
        Assert.Contains("cannot be combined with 2 ranks", e.Problem);
        // Without Workers, one per rank: the default of the libtorch thread count would be refused by ExactHessian.
        var measured = HessianMeasurement.Measure(hvp, settings with { Workers = null });
        Assert.Equal(hvp.Dimension, measured.Dimension);
        Assert.NotNull(measured.Eigenvalues);
        // Rank 1 wrote no column block (rank 0 writes them).
        Assert.Empty(Directory.EnumerateFiles(columns.Path, "columns-*.bin"));
    }

    [Fact]
    public void TheExactHessianOverRanksSumsEachColumnOnceAndOnlyRankZeroWritesTheColumnFolder()
    {
        var model = TanhNet();
        var data = RandomSet(BatchSizes);
        using var whole = new Hvp(model, data);
        using var reference = ExactHessian.Compute(whole);
        var n = whole.Dimension;
        using var sum = zeros(n, n, ScalarType.Float64);
        using var folder0 = new Support.TempDir("widevalley-exact-rank0");
        using var folder1 = new Support.TempDir("widevalley-exact-rank1");
        for (var rank = 0; rank < 2; rank++)
        {
            var share = new ShareOfRank(rank, 2);
            using var part = new Hvp(model, data, new LandscapeOptions { Collectives = share });
            var folder = rank == 0 ? folder0.Path : folder1.Path;
            // UseSymmetry off: each computed column is a plain share of H e_j, so the shares add up entry by entry.
            using var partial = ExactHessian.Compute(part, new ExactHessianOptions { UseSymmetry = false, CheckpointFolder = folder });
            sum.add_(partial.Hessian);
            Assert.Equal(n, share.AllReduces);
            // The done flags, then nothing more: no block was finished before.
            Assert.Equal(1, share.Broadcasts);
            Assert.Equal(rank == 0, Directory.EnumerateFiles(folder, "columns-*.bin").Any());
            Assert.Equal(rank == 0, File.Exists(Path.Combine(folder, "manifest.json")));
        }
        Assert.True(RelativeDifference(sum, reference.Hessian) < 1e-13, $"exact Hessian: relative difference {RelativeDifference(sum, reference.Hessian):E2}");

        // Rank 0 resumes from its folder and broadcasts the flags and the matrix: no column is computed again.
        var again = new ShareOfRank(0, 2);
        using var resumedHvp = new Hvp(model, data, new LandscapeOptions { Collectives = again });
        using var resumed = ExactHessian.Compute(resumedHvp, new ExactHessianOptions { UseSymmetry = false, CheckpointFolder = folder0.Path });
        Assert.Equal(n, resumed.ResumedColumns);
        Assert.Equal(0, resumed.ComputedColumns);
        Assert.Equal(0, again.AllReduces);
        Assert.Equal(2, again.Broadcasts);
    }
}
