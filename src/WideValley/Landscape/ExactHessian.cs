using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>Settings of <see cref="ExactHessian.Compute(ICurvatureOperator, ExactHessianOptions?)"/>.</summary>
public sealed record ExactHessianOptions
{
    /// <summary>Largest number of parameters accepted (default 60,000: small-LeNet's 47,658 fit).</summary>
    public long MaxDimension { get; init; } = 60_000;

    /// <summary>Memory the computation may use, in bytes. Null (default): <see cref="ExactHessian.AvailableMemoryBytes"/> (MemAvailable of /proc/meminfo, or less under a cgroup limit) minus <see cref="MemoryMarginBytes"/>.</summary>
    public long? MemoryLimitBytes { get; init; }

    /// <summary>Memory left for everything else when the limit is taken from the system (default 1 GiB).</summary>
    public long MemoryMarginBytes { get; init; } = 1L << 30;

    /// <summary>Floating type of the eigen-solver the plan must leave room for (null: <see cref="ExactHessian.DefaultEigenType"/>).</summary>
    public ScalarType? EigenType { get; init; }

    /// <summary>
    /// Folder that keeps finished columns (blocks written atomically) and a manifest (n, type, fingerprint of model,
    /// data and options). A run finds the blocks already there and computes only the rest; a folder written for a
    /// different model, data or settings is refused. Null: no checkpointing.
    /// </summary>
    public string? CheckpointFolder { get; init; }

    /// <summary>Columns per checkpoint block (0, the default: <see cref="ExactHessian.DefaultColumnsPerBlock"/>).</summary>
    public int ColumnsPerBlock { get; init; }

    /// <summary>
    /// Threads computing columns at once (default 1: the calling thread, with libtorch's intra-op threads). With more,
    /// each thread works on its own copy of the model (<see cref="Hvp.Replicate"/>) with one libtorch thread, taking
    /// whole blocks of columns in turn. CPU only; set it to the number of cores for small networks, whose products are
    /// too short to keep intra-op threads busy.
    /// </summary>
    public int Workers { get; init; } = 1;

    /// <summary>
    /// Compute each column only from its own parameter tensor's rows on and take the rest from symmetry (default
    /// true). A column of a late layer then differentiates only the late part of the network: for small-LeNet, whose
    /// fully connected layers hold 89% of the parameters, this is several times faster than full columns. False:
    /// every column in full, and the measured asymmetry covers the whole matrix instead of the diagonal blocks.
    /// </summary>
    public bool UseSymmetry { get; init; } = true;

    /// <summary>Called after every column (and once at the start with the resumed count); from the worker threads when <see cref="Workers"/> &gt; 1, one call at a time.</summary>
    public Action<ExactHessianProgress>? Progress { get; init; }

    /// <summary>Stops the computation between columns (finished blocks stay on disk); throws <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>
/// The checkpoint folder of <see cref="ExactHessian.Compute(Hvp, ExactHessianOptions?)"/> holds columns of another
/// measurement (another model, data set, loss or settings) or a file that is not a manifest: mixing them would give a
/// wrong matrix, so the computation refuses before any work. Every other failure keeps its own exception type.
/// </summary>
public sealed class ColumnStoreMismatchException : InvalidOperationException
{
    /// <summary>Creates the exception with a message naming the folder and what differs.</summary>
    public ColumnStoreMismatchException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the error that revealed the mismatch.</summary>
    public ColumnStoreMismatchException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Progress of a dense Hessian computation.</summary>
/// <param name="ColumnsDone">Columns available (computed or resumed).</param>
/// <param name="Columns">n.</param>
/// <param name="ResumedColumns">Columns read from the checkpoint folder.</param>
/// <param name="Elapsed">Time spent in this call.</param>
/// <param name="Remaining">Estimated time to finish (null until one column was computed).</param>
public sealed record ExactHessianProgress(long ColumnsDone, long Columns, long ResumedColumns, TimeSpan Elapsed, TimeSpan? Remaining);

/// <summary>Memory needed by a dense Hessian and its eigenvalues, against the limit.</summary>
/// <param name="Dimension">n.</param>
/// <param name="StorageType">Type of the stored Hessian.</param>
/// <param name="EigenType">Type the eigen-solver works in.</param>
/// <param name="HessianBytes">n^2 x element size.</param>
/// <param name="EigenSolverBytes">The solver's copy of the matrix (LAPACK overwrites its input), a converted copy when the types differ, and O(n) workspace.</param>
/// <param name="LimitBytes">What may be used.</param>
public sealed record HessianMemoryPlan(long Dimension, ScalarType StorageType, ScalarType EigenType, long HessianBytes, long EigenSolverBytes, long LimitBytes)
{
    /// <summary>Hessian plus eigen-solver.</summary>
    public long TotalBytes => HessianBytes + EigenSolverBytes;

    /// <summary>Whether <see cref="TotalBytes"/> is within <see cref="LimitBytes"/>.</summary>
    public bool Fits => TotalBytes <= LimitBytes;

    /// <summary>One line with the numbers.</summary>
    public override string ToString() =>
        $"n = {Dimension:N0}: Hessian {Size(HessianBytes)} ({StorageType}) + eigen-solver {Size(EigenSolverBytes)} ({EigenType}) = {Size(TotalBytes)}; limit {Size(LimitBytes)}";

    /// <summary>Bytes in the largest binary unit that keeps at least one whole unit (tiny plans would otherwise read "0.00 GiB").</summary>
    internal static string Size(long bytes) => Math.Abs(bytes) switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} bytes",
    };
}

/// <summary>A dense Hessian (symmetric, n x n) and facts about its computation. Dispose to free the matrix.</summary>
/// <param name="Hessian">The symmetrised matrix (H + H^T) / 2.</param>
/// <param name="MaxAsymmetry">max |H_ij - H_ji| before symmetrising, over the entries computed twice (the whole matrix, or
/// with <see cref="ExactHessianOptions.UseSymmetry"/> the diagonal blocks): round-off of the products (a large value signals a bug or a random loss).</param>
/// <param name="ComputedColumns">Columns computed in this call.</param>
/// <param name="ResumedColumns">Columns read from the checkpoint folder.</param>
/// <param name="Elapsed">Wall time of this call.</param>
/// <param name="Memory">The memory plan that was checked.</param>
public sealed record ExactHessianResult(Tensor Hessian, double MaxAsymmetry, long ComputedColumns, long ResumedColumns, TimeSpan Elapsed, HessianMemoryPlan Memory) : IDisposable
{
    /// <summary>Frees the matrix.</summary>
    public void Dispose() => Hessian.Dispose();
}

/// <summary>
/// The dense Hessian of a network's loss, column by column (H e_j by one Hessian-vector product each), with a memory
/// plan checked before any work, progress reports, and resumable on-disk checkpoints of finished columns; then all of
/// its eigenvalues, or, faster, exact counts of eigenvalues in a band from the inertia of H - sigma I.
/// </summary>
public static class ExactHessian
{
    private const string ManifestName = "manifest.json";
    private const string Format = "widevalley-exact-hessian";
    private static readonly byte[] BlockMagic = Encoding.ASCII.GetBytes("WVHCOL1\0");

    /// <summary>Largest n whose eigenvalues are computed in float64 by default (512 MiB for the matrix).</summary>
    public const long Float64EigenLimit = 8192;

    /// <summary>Float64 up to <see cref="Float64EigenLimit"/>, the storage type above (a float64 copy of a big matrix may not fit).</summary>
    public static ScalarType DefaultEigenType(long n, ScalarType storage) => n <= Float64EigenLimit ? ScalarType.Float64 : storage;

    /// <summary>
    /// The block policy: at most 64 MiB of columns per block (one atomic write each) and at most 2% of the columns, so
    /// that an interruption loses little work on small matrices too. At least one column.
    /// </summary>
    public static int DefaultColumnsPerBlock(long n, ScalarType storage)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), $"ExactHessian.DefaultColumnsPerBlock: n must be positive; got {n}.");
        var bySize = Math.Clamp((64L << 20) / (n * ElementSize(storage)), 1, n);
        return (int)Math.Max(1, Math.Min(bySize, (n + 49) / 50));
    }

    /// <summary>
    /// The memory this process may still use, in bytes: MemAvailable from /proc/meminfo (elsewhere: what the .NET
    /// runtime reports as available), lowered to the headroom under a cgroup memory limit when one is set
    /// (<see cref="MemoryBudget.Available()"/>).
    /// </summary>
    public static long AvailableMemoryBytes() => MemoryBudget.AvailableBytes();

    /// <summary>The memory a dense n x n Hessian and its eigenvalues need, against the limit the options give.</summary>
    public static HessianMemoryPlan PlanMemory(long n, ScalarType storage, ExactHessianOptions? options = null)
    {
        var o = options ?? new ExactHessianOptions();
        var eigen = o.EigenType ?? DefaultEigenType(n, storage);
        var hessian = checked(n * n * ElementSize(storage));
        var solverCopy = checked(n * n * ElementSize(eigen));
        var conversion = eigen == storage ? 0 : solverCopy;
        // syevd without vectors: 2n + 1 reals of work, plus eigenvalues and the tridiagonal (about 4n); round up generously.
        var workspace = 16 * n * ElementSize(eigen);
        var limit = o.MemoryLimitBytes ?? AvailableMemoryBytes() - o.MemoryMarginBytes;
        return new HessianMemoryPlan(n, storage, eigen, hessian, solverCopy + conversion + workspace, limit);
    }

    /// <summary>
    /// Computes the dense Hessian behind <paramref name="hvp"/> (one product per column, in <see cref="Hvp.Dtype"/>),
    /// after checking size and memory, resuming from and writing to the checkpoint folder if one is given.
    /// </summary>
    /// <exception cref="ArgumentException">n above MaxDimension, or the memory plan above the limit (message has the numbers).</exception>
    /// <exception cref="ColumnStoreMismatchException">The checkpoint folder belongs to another model, data set or settings.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; finished blocks are on disk.</exception>
    public static ExactHessianResult Compute(Hvp hvp, ExactHessianOptions? options = null) => Compute((ICurvatureOperator)hvp, options);

    /// <summary>
    /// The dense matrix of any curvature operator (a Hessian, Gauss-Newton matrix, Fisher), one application per
    /// column. The half-column shortcut (<see cref="ExactHessianOptions.UseSymmetry"/>), parallel workers and
    /// checkpoint folders need an <see cref="Hvp"/> (its replicas and fingerprint); other operators compute full
    /// columns on the calling thread.
    /// </summary>
    /// <exception cref="ArgumentException">n above MaxDimension, Workers or CheckpointFolder with an operator that is not an Hvp.</exception>
    /// <exception cref="InsufficientMemoryException">The memory plan is above the limit (message has the numbers).</exception>
    /// <exception cref="ColumnStoreMismatchException">The checkpoint folder belongs to another model, data set or settings.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; finished blocks are on disk.</exception>
    public static ExactHessianResult Compute(ICurvatureOperator op, ExactHessianOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(op);
        if (op is not Hvp hvp) return ComputeColumns(op, options ?? new ExactHessianOptions());
        var o = options ?? new ExactHessianOptions();
        var n = hvp.Dimension;
        if (n > o.MaxDimension)
            throw new ArgumentException(
                $"ExactHessian: the selection has n = {n:N0} parameters, above MaxDimension = {o.MaxDimension:N0}. A dense Hessian needs n^2 = " +
                $"{HessianMemoryPlan.Size(n * n * ElementSize(hvp.Dtype))} in {hvp.Dtype}; use Lanczos or Slq, select fewer parameters, or raise MaxDimension.");
        if (o.ColumnsPerBlock < 0) throw new ArgumentException($"ExactHessian: ColumnsPerBlock must be 0 (automatic) or positive; got {o.ColumnsPerBlock}.", nameof(options));
        if (o.Workers < 1) throw new ArgumentException($"ExactHessian: Workers must be at least 1; got {o.Workers}.", nameof(options));
        var ranks = hvp.Loss.Ranks;
        if (o.Workers > 1 && ranks is not null)
            throw new ArgumentException(
                $"ExactHessian: Workers = {o.Workers} with {ranks.Size} ranks sharing the evaluation set. Every column is summed over the ranks by one " +
                "allreduce, which every rank must make in the same order, and worker threads take columns in whatever order they finish. Use Workers = 1 " +
                "and run more ranks (each rank's libtorch threads still work on its products).", nameof(options));
        if (o.Workers > 1 && hvp.Device.type != DeviceType.CPU)
            throw new ArgumentException($"ExactHessian: parallel workers are for CPU; on {hvp.Device} use Workers = 1 (the device already runs each product in parallel).", nameof(options));
        var plan = PlanMemory(n, hvp.Dtype, o);
        if (!plan.Fits)
            throw new InsufficientMemoryException(
                $"ExactHessian: not enough memory. {plan}. Free memory, compute in float32, select fewer parameters, or set MemoryLimitBytes if the limit is wrong.");

        var watch = Stopwatch.StartNew();
        var rowBytes = n * ElementSize(hvp.Dtype);
        var perBlock = o.ColumnsPerBlock > 0 ? o.ColumnsPerBlock : DefaultColumnsPerBlock(n, hvp.Dtype);
        if (perBlock * rowBytes > int.MaxValue)
            throw new ArgumentException($"ExactHessian: a block of {perBlock} columns is {HessianMemoryPlan.Size(perBlock * rowBytes)}, above 2 GiB; use fewer ColumnsPerBlock.", nameof(options));
        var blockCount = (n + perBlock - 1) / perBlock;

        var hessian = zeros(n, n, hvp.Dtype, hvp.Device).DetachFromDisposeScope();
        var replicas = new List<Hvp>();
        try
        {
            var done = new bool[blockCount];
            if (o.CheckpointFolder is { } folder)
            {
                if (ranks is null) PrepareCheckpoint(folder, hvp, n, perBlock, o.UseSymmetry, hessian, done);
                else PrepareCheckpointOnRanks(ranks, folder, hvp, n, perBlock, o.UseSymmetry, hessian, done);
            }
            var resumed = Enumerable.Range(0, (int)blockCount).Where(b => done[b]).Sum(b => BlockLength(b, perBlock, n));
            o.Progress?.Invoke(new ExactHessianProgress(resumed, n, resumed, watch.Elapsed, null));
            var pending = Enumerable.Range(0, (int)blockCount).Where(b => !done[b]).ToArray();
            var workers = (int)Math.Min(o.Workers, Math.Max(1, pending.Length));
            for (var w = 1; w < workers; w++) replicas.Add(hvp.Replicate());
            // Over several ranks every rank holds every finished column; rank 0 alone writes them.
            var work = new ColumnWork(hessian, n, perBlock, pending, resumed, o, watch, hvp.Layout, writesBlocks: ranks is null || ranks.Rank == 0);
            if (workers == 1)
            {
                work.Run(hvp, singleThreaded: false);
            }
            else
            {
                RunInParallel(work, [hvp, .. replicas]);
            }
            foreach (var r in replicas) hvp.CountProducts(r.HvpCount);
            if (o.UseSymmetry) FillFromSymmetry(hessian, hvp.Layout);
            var asymmetry = Symmetrise(hessian);
            return new ExactHessianResult(hessian, asymmetry, work.Computed, resumed, watch.Elapsed, plan);
        }
        catch
        {
            hessian.Dispose();
            throw;
        }
        finally
        {
            foreach (var r in replicas) r.Dispose();
        }
    }

    private static ExactHessianResult ComputeColumns(ICurvatureOperator op, ExactHessianOptions options)
    {
        var o = options;
        var n = op.Dimension;
        if (n > o.MaxDimension)
            throw new ArgumentException(
                $"ExactHessian: the operator has n = {n:N0} rows, above MaxDimension = {o.MaxDimension:N0}; use Lanczos or Slq, or raise MaxDimension.");
        if (o.Workers != 1)
            throw new ArgumentException($"ExactHessian: parallel workers copy the model, which needs an Hvp; {op.GetType().Name} runs with Workers = 1.", nameof(options));
        if (o.CheckpointFolder is not null)
            throw new ArgumentException($"ExactHessian: a checkpoint folder needs the fingerprint of an Hvp's model, data and loss; {op.GetType().Name} has none. Leave CheckpointFolder null.", nameof(options));
        var plan = PlanMemory(n, op.Dtype, o);
        if (!plan.Fits)
            throw new InsufficientMemoryException(
                $"ExactHessian: not enough memory. {plan}. Free memory, compute in float32, select fewer parameters, or set MemoryLimitBytes if the limit is wrong.");
        var watch = Stopwatch.StartNew();
        var matrix = zeros(n, n, op.Dtype, op.Device).DetachFromDisposeScope();
        try
        {
            o.Progress?.Invoke(new ExactHessianProgress(0, n, 0, watch.Elapsed, null));
            using var unit = zeros(n, op.Dtype, op.Device);
            using var one = 1.0.ToScalar();
            for (long j = 0; j < n; j++)
            {
                o.Cancellation.ThrowIfCancellationRequested();
                using (var e = unit.narrow(0, j, 1)) e.fill_(one);
                using (var row = matrix[j]) op.Apply(unit, row);
                using (var e = unit.narrow(0, j, 1)) e.zero_();
                var elapsed = watch.Elapsed;
                o.Progress?.Invoke(new ExactHessianProgress(j + 1, n, 0, elapsed, elapsed / (j + 1) * (n - j - 1)));
            }
            var asymmetry = Symmetrise(matrix);
            return new ExactHessianResult(matrix, asymmetry, n, 0, watch.Elapsed, plan);
        }
        catch
        {
            matrix.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One thread per product source, each with a single libtorch thread: the products of a small network are too
    /// short for libtorch's intra-op threads to share well, while whole columns on separate model copies share nothing.
    /// </summary>
    private static void RunInParallel(ColumnWork work, IReadOnlyList<Hvp> sources)
    {
        var savedThreads = torch.get_num_threads();
        var errors = new List<Exception>();
        var threads = sources.Select(source => new Thread(() =>
        {
            try
            {
                work.Run(source, singleThreaded: true);
            }
            catch (Exception e)
            {
                work.Abort();
                lock (errors) errors.Add(e);
            }
        }) { IsBackground = true, Name = "exact-hessian-columns" }).ToList();
        try
        {
            foreach (var t in threads) t.Start();
        }
        finally
        {
            foreach (var t in threads.Where(t => t.ThreadState != System.Threading.ThreadState.Unstarted)) t.Join();
            // set_num_threads(1) on a worker also changes libtorch's process-wide default for new threads; restore it.
            torch.set_num_threads(savedThreads);
        }
        if (errors.Count == 0) return;
        // A cancellation is what the caller asked for; any other failure is the real news.
        var failure = errors.FirstOrDefault(e => e is not OperationCanceledException) ?? errors[0];
        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
    }

    /// <summary>The pending blocks of columns, handed out one at a time to whichever product source asks next.</summary>
    private sealed class ColumnWork(Tensor hessian, long n, int perBlock, int[] pending, long resumed, ExactHessianOptions options, Stopwatch watch,
        ParameterLayout layout, bool writesBlocks)
    {
        private int next = -1;
        private long computed;
        private volatile bool aborted;
        private readonly Lock progressLock = new();

        public long Computed => Interlocked.Read(ref computed);

        /// <summary>Makes every worker stop before its next column (another worker failed).</summary>
        public void Abort() => aborted = true;

        public void Run(Hvp source, bool singleThreaded)
        {
            if (singleThreaded) torch.set_num_threads(1);
            // The unit vector e_j is only needed for full columns; half columns differentiate g_j directly.
            using var unit = options.UseSymmetry ? null : zeros(n, source.Dtype, source.Device);
            using var one = 1.0.ToScalar();
            while (true)
            {
                var index = Interlocked.Increment(ref next);
                if (index >= pending.Length || aborted) return;
                long block = pending[index];
                var start = block * perBlock;
                var length = BlockLength(block, perBlock, n);
                for (var j = start; j < start + length; j++)
                {
                    options.Cancellation.ThrowIfCancellationRequested();
                    if (aborted) return;
                    // Column j is stored as row j (contiguous); the matrix is completed and symmetrised at the end.
                    if (options.UseSymmetry)
                    {
                        var own = layout.BlockOf(j);
                        var offset = layout.Blocks[own].Offset;
                        using var row = hessian[j];
                        using var tail = row.narrow(0, offset, n - offset);
                        source.ColumnTail(j, own, tail);
                    }
                    else
                    {
                        using (var e = unit!.narrow(0, j, 1)) e.fill_(one);
                        using (var row = hessian[j]) source.Apply(unit, row);
                        using (var e = unit.narrow(0, j, 1)) e.zero_();
                    }
                    var count = Interlocked.Increment(ref computed);
                    if (options.Progress is { } report)
                    {
                        var available = resumed + count;
                        var elapsed = watch.Elapsed;
                        lock (progressLock) report(new ExactHessianProgress(available, n, resumed, elapsed, elapsed / count * (n - available)));
                    }
                }
                if (writesBlocks && options.CheckpointFolder is { } f) WriteBlock(f, block, start, length, n, hessian);
            }
        }
    }

    /// <summary>
    /// An estimate of how long <see cref="Eigenvalues"/> takes for an n x n matrix of <paramref name="type"/> on
    /// <paramref name="device"/>: a calibration solve of a random symmetric matrix of min(n, 400) rows, timed, scaled
    /// by the n^3 cost of the tridiagonal reduction. Said before the real solve, which LAPACK runs to its end without
    /// reporting or stopping. Costs a few milliseconds.
    /// </summary>
    public static TimeSpan EstimateEigenvaluesTime(long n, ScalarType type, Device? device = null)
    {
        if (n < 1) return TimeSpan.Zero;
        var m = Math.Min(n, 400);
        using var scope = NewDisposeScope();
        using var generator = new Generator(12345);
        var a = randn([m, m], dtype: type, device: CPU, generator: generator).to(device ?? CPU);
        var symmetric = a.add(a.t());
        // A first call loads LAPACK's code paths; only the second is timed.
        using (var warm = linalg.eigvalsh(eye(4, dtype: type, device: device ?? CPU))) { }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using (var values = linalg.eigvalsh(symmetric).cpu()) { }
        var seconds = watch.Elapsed.TotalSeconds * Math.Pow((double)n / m, 3);
        return TimeSpan.FromSeconds(Math.Min(seconds, TimeSpan.MaxValue.TotalSeconds / 2));
    }

    /// <summary>
    /// All eigenvalues of a symmetric matrix, ascending, as a float64 CPU vector (torch.linalg.eigvalsh in
    /// <paramref name="eigenType"/>; default <see cref="DefaultEigenType"/>).
    /// </summary>
    public static Tensor Eigenvalues(Tensor symmetric, ScalarType? eigenType = null)
    {
        CheckSquare(symmetric, "ExactHessian.Eigenvalues");
        var type = eigenType ?? DefaultEigenType(symmetric.shape[0], symmetric.dtype);
        using var scope = NewDisposeScope();
        var matrix = symmetric.dtype == type ? symmetric : symmetric.to(type);
        return linalg.eigvalsh(matrix).to(ScalarType.Float64, CPU).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Number of eigenvalues of the symmetric matrix strictly below <paramref name="sigma"/>, exactly, by Sylvester's law
    /// of inertia: with H - sigma I = L D L^T (Bunch-Kaufman, torch.linalg.ldl_factor), it is the number of negative
    /// eigenvalues of the block-diagonal D (1x1 and 2x2 blocks). One factorisation costs about n^3/3 flops against
    /// about 4n^3/3 for the tridiagonal reduction inside eigvalsh, and LAPACK's sytrf is blocked (level-3) throughout.
    /// Needs one extra n^2 matrix (the factor). The diagonal is shifted in place and restored bit for bit.
    /// Eigenvalues within round-off of sigma may fall on either side, as they may with eigvalsh.
    /// </summary>
    public static long CountBelow(Tensor symmetric, double sigma)
    {
        CheckSquare(symmetric, "ExactHessian.CountBelow");
        if (!double.IsFinite(sigma)) throw new ArgumentException($"ExactHessian.CountBelow: sigma must be finite; got {sigma}.", nameof(sigma));
        var n = symmetric.shape[0];
        using var scope = NewDisposeScope();
        var diagonal = symmetric.diagonal();
        var saved = diagonal.clone();
        try
        {
            diagonal.Shift_(-sigma);
            var (ld, pivots, info) = linalg.ldl_factor_ex(symmetric, hermitian: false, check_errors: false);
            // info > 0 means D has an exact zero pivot (an eigenvalue equal to sigma): the factorisation is still valid.
            _ = info;
            var d = ld.diagonal().to(ScalarType.Float64, CPU).data<double>().ToArray();
            var sub = n > 1 ? ld.diagonal(-1).to(ScalarType.Float64, CPU).data<double>().ToArray() : [];
            var piv = pivots!.to(ScalarType.Int64, CPU).data<long>().ToArray();
            ld.Dispose();
            long negative = 0;
            for (var k = 0; k < n;)
            {
                if (piv[k] > 0 || k == n - 1)
                {
                    if (d[k] < 0) negative++;
                    k++;
                }
                else
                {
                    // A 2x2 block [[a, b], [b, c]] (LAPACK, lower storage: both pivots negative).
                    var a = d[k];
                    var b = sub[k];
                    var c = d[k + 1];
                    var det = a * c - b * b;
                    if (det < 0) negative += 1;
                    else if (det > 0 && a + c < 0) negative += 2;
                    else if (det == 0 && a + c < 0) negative += 1;
                    k += 2;
                }
            }
            return negative;
        }
        finally
        {
            diagonal.copy_(saved);
        }
    }

    /// <summary>
    /// Number of eigenvalues in the open band (-t, t), exactly, from two inertia counts:
    /// #(lambda &lt; t) - #(lambda &lt;= -t). See <see cref="CountBelow"/>.
    /// </summary>
    public static long CountInBand(Tensor symmetric, double halfWidth)
    {
        if (!(halfWidth > 0)) throw new ArgumentException($"ExactHessian.CountInBand: the half-width must be positive; got {halfWidth}.", nameof(halfWidth));
        // #(lambda <= -t) = #(lambda < -t) up to eigenvalues exactly at -t, which round-off decides either way.
        return CountBelow(symmetric, halfWidth) - CountBelow(symmetric, -halfWidth);
    }

    /// <summary>Fraction of eigenvalues (ascending float64 vector) with |lambda| &lt; t.</summary>
    public static double FractionAbsBelow(Tensor eigenvalues, double threshold)
    {
        using var scope = NewDisposeScope();
        return eigenvalues.abs().LessThan(threshold).sum().ToDouble() / eigenvalues.numel();
    }

    private static void CheckSquare(Tensor m, string where)
    {
        ArgumentNullException.ThrowIfNull(m);
        if (m.dim() != 2 || m.shape[0] != m.shape[1] || m.shape[0] == 0)
            throw new ArgumentException($"{where}: expected a non-empty square matrix; got shape ({string.Join(", ", m.shape)}).");
        if (!m.is_floating_point()) throw new ArgumentException($"{where}: expected a floating-point matrix; got {m.dtype}.");
    }

    /// <summary>
    /// Completes a matrix whose row j holds column j of H only from the offset of j's own parameter tensor on: the
    /// missing entries H[j, k] (k in an earlier tensor) are H[k, j], which row k has. Tiled, no n^2 temporary.
    /// </summary>
    private static void FillFromSymmetry(Tensor h, ParameterLayout layout)
    {
        const long tile = 1024;
        foreach (var block in layout.Blocks)
        {
            var offset = block.Offset;
            if (offset == 0) continue;
            for (var r = offset; r < offset + block.Count; r += tile)
            {
                using var scope = NewDisposeScope();
                var rows = Math.Min(tile, offset + block.Count - r);
                // Rows r.. of the earlier-columns part are the transpose of columns r.. of the earlier rows.
                h.narrow(0, r, rows).narrow(1, 0, offset).copy_(h.narrow(0, 0, offset).narrow(1, r, rows).T);
            }
        }
    }

    /// <summary>H = (H + H^T) / 2 in place, in tiles (no n^2 temporary); returns max |H_ij - H_ji| before.</summary>
    private static double Symmetrise(Tensor h)
    {
        const long tile = 1024;
        var n = h.shape[0];
        double asymmetry = 0;
        using var half = 0.5.ToScalar();
        for (long i = 0; i < n; i += tile)
        {
            var ri = Math.Min(tile, n - i);
            for (var j = i; j < n; j += tile)
            {
                using var scope = NewDisposeScope();
                var rj = Math.Min(tile, n - j);
                var upper = h.narrow(0, i, ri).narrow(1, j, rj);
                var lower = h.narrow(0, j, rj).narrow(1, i, ri);
                var lowerT = lower.T;
                asymmetry = Math.Max(asymmetry, upper.sub(lowerT).abs().max().ToDouble());
                var average = upper.Plus(lowerT).mul_(half);
                upper.copy_(average);
                lower.copy_(average.T);
            }
        }
        return asymmetry;
    }

    private static long BlockLength(long block, int perBlock, long n) => Math.Min(perBlock, n - block * perBlock);

    private static long ElementSize(ScalarType type) => type switch
    {
        ScalarType.Float64 => 8,
        ScalarType.Float32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => throw new ArgumentException($"ExactHessian: unsupported type {type}; use Float32 or Float64."),
    };

    // Rows: "all" (full columns) or "own-block-on" (UseSymmetry); absent in manifests written before the option existed.
    private sealed record Manifest(string Format, int Version, long N, string Dtype, int ColumnsPerBlock, string Fingerprint, string? Rows = null);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    private static string BlockPath(string folder, long block) => Path.Combine(folder, $"columns-{block:D6}.bin");

    /// <summary>Checks or writes the manifest and loads every intact block into the matrix.</summary>
    private static void PrepareCheckpoint(string folder, Hvp hvp, long n, int perBlock, bool useSymmetry, Tensor hessian, bool[] done)
    {
        if (hvp.Options.LossIdentity is null)
            throw new ArgumentException(
                $"ExactHessian: checkpoint folder {folder} would be shared by every custom loss, because a loss delegate has no identity that " +
                "survives a restart; set LandscapeOptions.LossName to a name that says what the loss computes (e.g. \"label-smoothing-0.1\"), " +
                "or compute without a CheckpointFolder.");
        Directory.CreateDirectory(folder);
        var rows = useSymmetry ? "own-block-on" : "all";
        var expected = new Manifest(Format, 1, n, hvp.Dtype.ToString(), perBlock, hvp.Fingerprint(), rows);
        var path = Path.Combine(folder, ManifestName);
        if (File.Exists(path))
        {
            Manifest? found;
            try { found = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path), Json); }
            catch (JsonException e)
            {
                throw new ColumnStoreMismatchException($"ExactHessian: {path} is not a readable manifest ({e.Message}); use an empty checkpoint folder.", e);
            }
            if (found is null || found.Format != Format)
                throw new ColumnStoreMismatchException($"ExactHessian: {path} is not an exact-Hessian manifest; use an empty checkpoint folder.");
            if (found.N != n || found.Dtype != expected.Dtype || found.ColumnsPerBlock != perBlock)
                throw new ColumnStoreMismatchException(
                    $"ExactHessian: checkpoint folder {folder} holds a run with n = {found.N}, {found.Dtype}, {found.ColumnsPerBlock} columns per block; " +
                    $"this run has n = {n}, {expected.Dtype}, {perBlock} columns per block. Use another folder (or the original settings).");
            if ((found.Rows ?? "all") != rows)
                throw new ColumnStoreMismatchException(
                    $"ExactHessian: checkpoint folder {folder} holds columns with rows '{found.Rows ?? "all"}', this run computes '{rows}' " +
                    "(UseSymmetry differs); use another folder or the original setting.");
            if (found.Fingerprint != expected.Fingerprint)
                throw new ColumnStoreMismatchException(
                    $"ExactHessian: checkpoint folder {folder} was written for a different model, data set or options " +
                    $"(fingerprint {found.Fingerprint[..12]}... there, {expected.Fingerprint[..12]}... now); refusing to mix their columns. Use another folder.");
        }
        else
        {
            AtomicFile.WriteAllText(path, JsonSerializer.Serialize(expected, Json));
        }
        for (long b = 0; b < done.Length; b++)
            done[b] = TryReadBlock(BlockPath(folder, b), b * perBlock, BlockLength(b, perBlock, n), n, hessian);
    }

    /// <summary>
    /// <see cref="PrepareCheckpoint"/> for ranks sharing the evaluation set: rank 0 alone checks or writes the manifest
    /// and reads the finished blocks (the folder need not be shared), then broadcasts which blocks are done and, when
    /// any are, the matrix, so every rank resumes from the same columns. A folder rank 0 refuses stops every rank:
    /// rank 0 with its own message, the others with one that points to it.
    /// </summary>
    private static void PrepareCheckpointOnRanks(Distributed.ICollectives ranks, string folder, Hvp hvp, long n, int perBlock, bool useSymmetry,
        Tensor hessian, bool[] done)
    {
        // Flags: one per block (1 = done), then rank 0's outcome (0 = ready, 1 = a foreign folder, 2 = any other failure).
        using var flags = zeros(done.Length + 1, ScalarType.Float64);
        Exception? failure = null;
        if (ranks.Rank == 0)
        {
            try
            {
                PrepareCheckpoint(folder, hvp, n, perBlock, useSymmetry, hessian, done);
                using var marks = tensor(done.Select(d => d ? 1.0 : 0.0).ToArray(), ScalarType.Float64);
                using var head = flags.narrow(0, 0, done.Length);
                head.copy_(marks);
            }
            catch (Exception e)
            {
                failure = e;
                flags[done.Length] = tensor(e is ColumnStoreMismatchException ? 1.0 : 2.0, ScalarType.Float64);
            }
        }
        ranks.Broadcast(flags, 0);
        var values = flags.data<double>().ToArray();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        var outcome = values[done.Length];
        if (outcome == 1)
            throw new ColumnStoreMismatchException(
                $"ExactHessian: rank 0 refused the checkpoint folder {folder} (it holds columns of another measurement; rank 0's message says which).");
        if (outcome != 0)
            throw new InvalidOperationException($"ExactHessian: rank 0 could not prepare the checkpoint folder {folder}; its message says why.");
        for (var b = 0; b < done.Length; b++) done[b] = values[b] == 1;
        if (!done.Any(d => d)) return;
        if (hessian.device_type == DeviceType.CPU)
        {
            ranks.Broadcast(hessian, 0);
            return;
        }
        using var staged = hessian.cpu();
        ranks.Broadcast(staged, 0);
        hessian.copy_(staged);
    }

    private static void WriteBlock(string folder, long block, long start, long length, long n, Tensor hessian)
    {
        using var scope = NewDisposeScope();
        var rows = hessian.narrow(0, start, length).cpu().contiguous();
        var bytes = rows.bytes;
        var hash = SHA256.HashData(bytes);
        AtomicFile.Write(BlockPath(folder, block), stream =>
        {
            using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            w.Write(BlockMagic);
            w.Write(n);
            w.Write(start);
            w.Write(length);
            w.Write((int)hessian.dtype);
            w.Write(hash);
            w.Flush();
            stream.Write(rows.bytes);
        });
    }

    /// <summary>Reads a block into the matrix if it exists and is intact (header and checksum); otherwise it will be recomputed.</summary>
    private static bool TryReadBlock(string path, long start, long length, long n, Tensor hessian)
    {
        if (!File.Exists(path)) return false;
        using var scope = NewDisposeScope();
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var r = new BinaryReader(stream, Encoding.UTF8);
            if (!r.ReadBytes(BlockMagic.Length).AsSpan().SequenceEqual(BlockMagic)) return false;
            if (r.ReadInt64() != n || r.ReadInt64() != start || r.ReadInt64() != length || r.ReadInt32() != (int)hessian.dtype) return false;
            var hash = r.ReadBytes(32);
            var rows = empty(length, n, hessian.dtype);
            var span = rows.bytes;
            var total = 0;
            while (total < span.Length)
            {
                var read = stream.Read(span[total..]);
                if (read == 0) return false;
                total += read;
            }
            if (!SHA256.HashData(rows.bytes).AsSpan().SequenceEqual(hash)) return false;
            hessian.narrow(0, start, length).copy_(rows);
            return true;
        }
        catch (Exception e) when (e is IOException or EndOfStreamException)
        {
            return false;
        }
    }
}
