using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using WideValley.Data;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Settings of the loss-surface experiment (Choromanska et al. 2015, Sec. 5, Fig. 3 right, Fig. 4, Table 1).
/// <see cref="For"/> gives each budget's sizes. Every choice the paper does not state is ours and is named in the
/// report: the resampling to 10x10, the loss, batch size, learning rate and its decay, the reading of "uniformly
/// within the unit cube", the training subset and the data the Hessian is taken over.
/// </summary>
public sealed record LossSurfacesSettings
{
    /// <summary>The budget these settings were made for.</summary>
    public Budget Budget { get; init; } = Budget.Smoke;

    /// <summary>Hidden-layer widths n1 (the paper: 25, 50, 100, 250, 500).</summary>
    public IReadOnlyList<int> Sizes { get; init; } = [5, 10];

    /// <summary>Networks per size (the paper: 1,000).</summary>
    public int Networks { get; init; } = 8;

    /// <summary>Epochs of SGD (the paper: 200).</summary>
    public int Epochs { get; init; } = 2;

    /// <summary>Minibatch size (ours; the paper does not state it).</summary>
    public int BatchSize { get; init; } = 50;

    /// <summary>Learning rate of the first epoch (ours).</summary>
    public double Lr { get; init; } = 0.1;

    /// <summary>
    /// The learning rate of the last epoch as a fraction of the first (ours): lr_e = lr · ratio^(e / (E - 1)), an
    /// exponential decay per epoch that ends at the same fraction whatever the number of epochs.
    /// </summary>
    public double FinalLrRatio { get; init; } = 0.01;

    /// <summary>
    /// The training set: the first this many Fashion-MNIST training images (ours: the paper's 60,000 x 200 epochs x
    /// 1,000 networks is far beyond two CPU cores).
    /// </summary>
    public int TrainSamples { get; init; } = 200;

    /// <summary>The test set: the first this many Fashion-MNIST test images (10,000 is all of them).</summary>
    public int TestSamples { get; init; } = 200;

    /// <summary>Side of the downsampled images (the paper: 10, i.e. 100 inputs).</summary>
    public int ImageSize { get; init; } = 10;

    /// <summary>
    /// Initial weights and biases uniform on [InitLow, InitHigh] / sqrt(fan_in) (ours: the paper's "uniformly at
    /// random within the unit cube" read as the cube [-1, 1]^N scaled per layer by 1/sqrt(fan_in), PyTorch's default
    /// Linear initialisation; the unscaled cube puts n1 = 500's logits in the hundreds and SGD diverges).
    /// </summary>
    public double InitLow { get; init; } = -1;

    /// <summary>Upper end of the initial range (see <see cref="InitLow"/>).</summary>
    public double InitHigh { get; init; } = 1;

    /// <summary>Networks per size whose exact Hessian spectrum gives the normalised index (the first ones of the size).</summary>
    public int IndexNetworks { get; init; } = 1;

    /// <summary>Sizes above this n1 get no index (their dense Hessians are too large to diagonalise here).</summary>
    public int IndexMaxHidden { get; init; } = 5;

    /// <summary>|lambda| below this counts as zero in the index (the paper: 0.001).</summary>
    public double ZeroEigenvalue { get; init; } = 1e-3;

    /// <summary>Seed of everything: network i of size n1 starts from and shuffles with seeds derived from it, n1 and i.</summary>
    public long Seed { get; init; }

    /// <summary>Folder of the Fashion-MNIST files (null: the usual search, Debian's /usr/share/datasets/fashion-mnist).</summary>
    public string? DataDir { get; init; }

    /// <summary>libtorch threads (0 = libtorch's default); also the exact Hessian's column workers.</summary>
    public int Threads { get; init; }

    /// <summary>
    /// The sizes of a budget. Smoke: widths 5 and 10, 8 networks, 2 epochs on 200 images (seconds). Small: the paper's
    /// five widths, 100 networks each, 50 epochs on 6,000 training images, index of 5 networks at n1 = 25 (about half
    /// an hour on two busy cores). Paper: the paper's widths and 200 epochs, but 100 networks (not 1,000) on 12,000
    /// training images (not 60,000), index of 10 networks at n1 = 25 and 50: about three hours here; the paper's own
    /// 1,000 networks x 60,000 images x 200 epochs would take weeks on two cores.
    /// </summary>
    public static LossSurfacesSettings For(Budget budget) => budget switch
    {
        Budget.Smoke => new LossSurfacesSettings { Budget = budget },
        Budget.Small => new LossSurfacesSettings
        {
            Budget = budget, Sizes = [25, 50, 100, 250, 500], Networks = 100, Epochs = 50, BatchSize = 100, TrainSamples = 6_000, TestSamples = 10_000,
            IndexNetworks = 5, IndexMaxHidden = 25,
        },
        Budget.Paper => new LossSurfacesSettings
        {
            Budget = budget, Sizes = [25, 50, 100, 250, 500], Networks = 100, Epochs = 200, BatchSize = 100, TrainSamples = 12_000, TestSamples = 10_000,
            IndexNetworks = 10, IndexMaxHidden = 50,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>The learning rate of epoch <paramref name="epoch"/> (0-based).</summary>
    public double LrAt(int epoch) => Epochs == 1 ? Lr : Lr * Math.Pow(FinalLrRatio, (double)epoch / (Epochs - 1));

    /// <summary>Inputs per sample.</summary>
    public int Inputs => ImageSize * ImageSize;

    /// <summary>The seed of network <paramref name="index"/> of size <paramref name="hidden"/> (its start; its sample order uses the seed + 1 stream).</summary>
    public long NetworkSeed(int hidden, int index) => unchecked(Seed * 1_000_000_007L + hidden * 100_003L + index * 2L);

    /// <summary>What determines the training of one size: a piece on disk computed under other settings is computed again.</summary>
    public string TrainingKey(int hidden) => string.Create(CultureInfo.InvariantCulture,
        $"n1={hidden};keep={(IndexedSizes.Contains(hidden) ? IndexNetworks : 0)};M={Networks};E={Epochs};B={BatchSize};lr={Lr:R};final={FinalLrRatio:R};train={TrainSamples};test={TestSamples};side={ImageSize};init=[{InitLow:R},{InitHigh:R}];seed={Seed}");

    /// <summary>What determines the index of one size besides its training.</summary>
    public string IndexKey(int hidden) => TrainingKey(hidden) + string.Create(CultureInfo.InvariantCulture, $";index={IndexNetworks};zero={ZeroEigenvalue:R}");

    /// <summary>The sizes that get an index.</summary>
    public IEnumerable<int> IndexedSizes => Sizes.Where(n => n <= IndexMaxHidden && IndexNetworks > 0);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        if (Sizes is null || Sizes.Count == 0) throw new ArgumentException("--sizes: give at least one hidden-layer width");
        if (Sizes.Any(n => n < 1)) throw new ArgumentException($"--sizes: every width must be at least 1, got {string.Join(",", Sizes)}");
        if (Sizes.Distinct().Count() != Sizes.Count) throw new ArgumentException($"--sizes: each width once, got {string.Join(",", Sizes)}");
        if (Networks < 2) throw new ArgumentException($"--network-count must be at least 2 (a correlation needs two networks), got {Networks}");
        if (Epochs < 1) throw new ArgumentException($"--epochs must be at least 1, got {Epochs}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (!(Lr > 0) || !double.IsFinite(Lr)) throw new ArgumentException($"--lr must be positive and finite, got {Lr}");
        if (!(FinalLrRatio > 0 && FinalLrRatio <= 1)) throw new ArgumentException($"the final learning-rate ratio must be in (0, 1], got {FinalLrRatio}");
        if (TrainSamples < 1) throw new ArgumentException($"--max-train-samples must be at least 1, got {TrainSamples}");
        if (TestSamples < 1) throw new ArgumentException($"the test-set size must be at least 1, got {TestSamples}");
        if (ImageSize < 1 || ImageSize > 28) throw new ArgumentException($"the downsampled image side must be from 1 to 28, got {ImageSize}");
        if (!(double.IsFinite(InitLow) && double.IsFinite(InitHigh) && InitHigh > InitLow)) throw new ArgumentException($"the initial range [{InitLow}, {InitHigh}] is empty");
        if (IndexNetworks < 0 || IndexNetworks > Networks) throw new ArgumentException($"the index sample must be from 0 to --network-count ({Networks}) networks, got {IndexNetworks}");
        if (!(ZeroEigenvalue >= 0)) throw new ArgumentException($"the zero-eigenvalue threshold must be zero or positive, got {ZeroEigenvalue}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
    }
}

/// <summary>The trained networks of one size: per-network final losses and errors (full-batch, after the last epoch).</summary>
/// <param name="Hidden">n1.</param>
/// <param name="Parameters">Parameters per network.</param>
/// <param name="Seeds">Each network's seed.</param>
/// <param name="TrainLoss">Mean cross-entropy over the training set.</param>
/// <param name="TestLoss">Mean cross-entropy over the test set.</param>
/// <param name="TrainError">Training error rate.</param>
/// <param name="TestError">Test error rate.</param>
/// <param name="Seconds">Time spent training and evaluating this size.</param>
public sealed record LossSurfacesSize(int Hidden, long Parameters, long[] Seeds, double[] TrainLoss, double[] TestLoss, double[] TrainError, double[] TestError, double Seconds)
{
    /// <summary>The trained parameters (<see cref="LossSurfaces.Flatten"/>) of the first networks, kept for the index (sizes without an index keep none).</summary>
    public float[][]? KeptParameters { get; init; }

    /// <summary>Networks whose losses are finite (a diverged network is counted, not used in the statistics).</summary>
    public int[] Finite => Enumerable.Range(0, TestLoss.Length).Where(i => double.IsFinite(TestLoss[i]) && double.IsFinite(TrainLoss[i])).ToArray();
}

/// <summary>The exact Hessian spectrum of one trained network, summarised.</summary>
/// <param name="Hidden">n1.</param>
/// <param name="Network">The network's index within its size.</param>
/// <param name="Parameters">The Hessian's dimension.</param>
/// <param name="Negative">Eigenvalues below -threshold.</param>
/// <param name="NearZero">Eigenvalues with |lambda| below the threshold (counted as zero).</param>
/// <param name="NormalizedIndex">Negative / Parameters: the paper's normalised index.</param>
/// <param name="LambdaMin">The smallest eigenvalue.</param>
/// <param name="LambdaMax">The largest eigenvalue.</param>
/// <param name="GradientNorm">The training loss's gradient norm there (how near a critical point the network is).</param>
/// <param name="Seconds">Time for the Hessian and its eigenvalues.</param>
public sealed record IndexSample(int Hidden, int Network, long Parameters, int Negative, int NearZero, double NormalizedIndex, double LambdaMin, double LambdaMax,
    double GradientNorm, double Seconds);

/// <summary>Everything the report needs.</summary>
/// <param name="Settings">What ran.</param>
/// <param name="Sizes">One entry per finished size, in the order of the settings.</param>
/// <param name="Index">The index samples of the finished indexed sizes.</param>
/// <param name="Data">How the data were made.</param>
/// <param name="Seconds">Wall time of this invocation.</param>
/// <param name="ResumedPieces">Pieces read from disk instead of computed.</param>
/// <param name="Complete">Whether every size and every index was finished (false after a Ctrl-C).</param>
public sealed record LossSurfacesResult(LossSurfacesSettings Settings, IReadOnlyList<LossSurfacesSize> Sizes, IReadOnlyList<IndexSample> Index, string Data,
    double Seconds, int ResumedPieces, bool Complete);

/// <summary>
/// The loss-surface experiment on networks (Choromanska et al. 2015, Sec. 5): for each width n1, many one-hidden-layer
/// ReLU networks on 10x10 images trained together by SGD with learning-rate decay from independent random starts
/// (<see cref="BatchedOneHiddenLayer"/>: every network its own start and its own sample order), their final training
/// and test losses, and the exact Hessian spectrum of a sample of them. Each size's training and each size's index is
/// a piece kept in the work folder (written atomically) and never computed again under the same settings; the folder
/// is locked while the experiment runs; a cancellation stops between epochs and pieces, losing at most the size in
/// progress.
/// </summary>
public static class LossSurfaces
{
    /// <summary>Classes of Fashion-MNIST.</summary>
    public const int Classes = 10;

    /// <summary>The piece file of one size's training.</summary>
    public static string TrainingPiece(string workFolder, int hidden) => Path.Combine(workFolder, $"n1-{hidden}.json");

    /// <summary>The piece file of one size's index sample.</summary>
    public static string IndexPiece(string workFolder, int hidden) => Path.Combine(workFolder, $"n1-{hidden}-index.json");

    /// <summary>
    /// Runs (or resumes) the experiment in <paramref name="workFolder"/>. On cancellation returns what is finished,
    /// with <see cref="LossSurfacesResult.Complete"/> false.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="RunFolderLockedException">Another process runs in the folder.</exception>
    public static LossSurfacesResult Run(LossSurfacesSettings settings, string workFolder, IProgress<ExperimentEvent>? progress = null,
        CancellationToken cancellation = default)
    {
        settings.Validate();
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(workFolder);
        using var claim = RunFolderLock.Acquire(workFolder);
        void Log(string label, string message) => progress?.Report(new TrainingLog(label, message));

        var sizes = new List<LossSurfacesSize>();
        var index = new List<IndexSample>();
        var resumed = 0;
        var complete = true;
        LabeledData? train = null, test = null;
        string data = "";
        try
        {
            foreach (var hidden in settings.Sizes)
            {
                var label = $"n1 = {hidden}";
                var done = ReadPiece<LossSurfacesSize>(TrainingPiece(workFolder, hidden), settings.TrainingKey(hidden));
                if (done is not null)
                {
                    resumed++;
                    Log(label, "finished earlier (read from disk)");
                }
                else
                {
                    if (cancellation.IsCancellationRequested) { complete = false; break; }
                    if (train is null) (train, test, data) = LoadData(settings, message => Log("data", message));
                    done = TrainSize(settings, hidden, train, test!, message => Log(label, message), cancellation);
                    if (done is null) { complete = false; break; }
                    WritePiece(TrainingPiece(workFolder, hidden), settings.TrainingKey(hidden), done);
                }
                sizes.Add(done);
            }
            if (complete)
                foreach (var hidden in settings.IndexedSizes)
                {
                    var label = $"n1 = {hidden}";
                    var samples = ReadPiece<IndexSample[]>(IndexPiece(workFolder, hidden), settings.IndexKey(hidden));
                    if (samples is not null)
                    {
                        resumed++;
                        Log(label, "index finished earlier (read from disk)");
                    }
                    else
                    {
                        if (cancellation.IsCancellationRequested) { complete = false; break; }
                        if (train is null) (train, test, data) = LoadData(settings, message => Log("data", message));
                        var size = sizes.Single(s => s.Hidden == hidden);
                        samples = MeasureIndex(settings, size, train, message => progress?.Report(new MeasurementLog(label, message)), cancellation);
                        if (samples is null) { complete = false; break; }
                        WritePiece(IndexPiece(workFolder, hidden), settings.IndexKey(hidden), samples);
                    }
                    index.AddRange(samples);
                }
        }
        finally
        {
            train?.Dispose();
            test?.Dispose();
        }
        if (data.Length == 0) data = DescribeData(settings);
        return new LossSurfacesResult(settings, sizes, index, data, watch.Elapsed.TotalSeconds, resumed, complete);
    }

    /// <summary>How the inputs are made (the same words whether or not the data were loaded in this invocation).</summary>
    public static string DescribeData(LossSurfacesSettings s) => string.Create(CultureInfo.InvariantCulture,
        $"Fashion-MNIST (standing in for MNIST), pixels scaled to [0, 1], each 28x28 image area-averaged (adaptive average pooling) to {s.ImageSize}x{s.ImageSize} = {s.Inputs} inputs; " +
        $"training set: the first {s.TrainSamples:N0} training images; test set: the first {s.TestSamples:N0} test images");

    /// <summary>Loads Fashion-MNIST, downsampled and cut to the settings' sizes: inputs [N, side²] float32, labels [N].</summary>
    public static (LabeledData Train, LabeledData Test, string Description) LoadData(LossSurfacesSettings s, Action<string>? log = null)
    {
        using var full = DatasetCatalog.LoadClassification(DatasetCatalog.FashionMnist, new DataOptions
        {
            DataDir = s.DataDir, Scaling = PixelScaling.Unit, MaxTrainSamples = s.TrainSamples, Log = log,
        });
        if (full.Train.Count < s.TrainSamples || full.Test.Count < s.TestSamples)
            throw new ArgumentException($"the data set holds {full.Train.Count:N0} training and {full.Test.Count:N0} test images; the settings ask for {s.TrainSamples:N0} and {s.TestSamples:N0}");
        using var testPart = full.Test.Take(s.TestSamples);
        var train = new LabeledData(ImageDownsampling.AreaAverageFlat(full.Train.Inputs, s.ImageSize), full.Train.Labels.clone(), Classes);
        var test = new LabeledData(ImageDownsampling.AreaAverageFlat(testPart.Inputs, s.ImageSize), testPart.Labels.clone(), Classes);
        log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{train.Count:N0} training and {test.Count:N0} test images at {s.ImageSize}x{s.ImageSize}"));
        return (train, test, DescribeData(s));
    }

    /// <summary>
    /// Trains the M networks of one size together and evaluates them; null when cancelled (between epochs).
    /// </summary>
    public static LossSurfacesSize? TrainSize(LossSurfacesSettings s, int hidden, LabeledData train, LabeledData test, Action<string>? log = null,
        CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        var m = s.Networks;
        var seeds = Enumerable.Range(0, m).Select(i => s.NetworkSeed(hidden, i)).ToArray();
        using var model = new BatchedOneHiddenLayer(m, s.Inputs, hidden, Classes);
        model.InitializeUniform(seeds, s.InitLow, s.InitHigh);
        var generators = seeds.Select(seed => new Generator(unchecked((ulong)seed + 1))).ToArray();
        try
        {
            var n = train.Count;
            for (var epoch = 0; epoch < s.Epochs; epoch++)
            {
                if (cancellation.IsCancellationRequested) return null;
                using var scope = NewDisposeScope();
                var orders = stack(generators.Select(g => randperm(n, generator: g)).ToArray());
                var lr = s.LrAt(epoch);
                var losses = model.TrainEpoch(train.Inputs, train.Labels, orders, s.BatchSize, lr);
                if (epoch == 0 || epoch == s.Epochs - 1 || (epoch + 1) % Math.Max(1, s.Epochs / 10) == 0)
                {
                    var finite = losses.Where(double.IsFinite).ToArray();
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"epoch {epoch + 1}/{s.Epochs}, lr {lr:G3}: mean minibatch loss {(finite.Length > 0 ? finite.Average() : double.NaN):0.0000}{(finite.Length < m ? $" ({m - finite.Length} diverged)" : "")} ({watch.Elapsed.TotalSeconds:0} s)"));
                }
            }
        }
        finally
        {
            foreach (var g in generators) g.Dispose();
        }
        var (trainLoss, trainError) = model.Evaluate(train.Inputs, train.Labels);
        var (testLoss, testError) = model.Evaluate(test.Inputs, test.Labels);
        var keep = s.IndexedSizes.Contains(hidden) ? s.IndexNetworks : 0;
        var kept = Enumerable.Range(0, keep).Select(i => Flatten(model, i)).ToArray();
        log?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"trained: train loss {Mean(trainLoss):0.0000}, test loss {Mean(testLoss):0.0000} +- {Std(testLoss):0.0000}, test error {100 * Mean(testError):0.00}% ({watch.Elapsed.TotalSeconds:0} s)"));
        return new LossSurfacesSize(hidden, model.ParametersPerNetwork, seeds, trainLoss, testLoss, trainError, testError, watch.Elapsed.TotalSeconds)
        {
            KeptParameters = kept,
        };
    }

    /// <summary>
    /// The exact Hessian of the training loss (the whole training set, float64) of the first networks of a size, each
    /// rebuilt as a standalone module from the parameters its training piece kept; its eigenvalues give the
    /// normalised index. Null when cancelled.
    /// </summary>
    /// <exception cref="InvalidOperationException">The piece kept fewer networks than the settings index.</exception>
    public static IndexSample[]? MeasureIndex(LossSurfacesSettings s, LossSurfacesSize size, LabeledData train, Action<string>? log = null,
        CancellationToken cancellation = default)
    {
        var k = s.IndexNetworks;
        var kept = size.KeptParameters ?? [];
        if (kept.Length < k) throw new InvalidOperationException($"n1 = {size.Hidden}: the training piece kept {kept.Length} networks, the index needs {k}");
        using var inputs64 = train.Inputs.to(ScalarType.Float64);
        var batches = new List<(Tensor, Tensor)>();
        for (long start = 0; start < train.Count; start += 2000)
        {
            var b = Math.Min(2000, train.Count - start);
            batches.Add((inputs64.narrow(0, start, b), train.Labels.narrow(0, start, b)));
        }
        var samples = new List<IndexSample>();
        for (var i = 0; i < k; i++)
        {
            if (cancellation.IsCancellationRequested) return null;
            var watch = Stopwatch.StartNew();
            using var single = new BatchedOneHiddenLayer(1, s.Inputs, size.Hidden, Classes, ScalarType.Float64);
            Restore(single, kept[i]);
            using var net = single.ExtractNetwork(0, ScalarType.Float64);
            double gradientNorm;
            using (var hvp = new Hvp(net, batches))
            {
                var (gradient, _) = hvp.Gradient();
                using (gradient) gradientNorm = gradient.norm().item<double>();
            }
            double[] eigenvalues;
            try
            {
                using var analysis = new HessianAnalysis(net, batches);
                eigenvalues = analysis.AllEigenvalues(new ExactHessianOptions { Workers = 1, Cancellation = cancellation });
            }
            catch (OperationCanceledException)
            {
                return null;
            }
            var negative = eigenvalues.Count(v => v < -s.ZeroEigenvalue);
            var zero = eigenvalues.Count(v => Math.Abs(v) < s.ZeroEigenvalue);
            var sample = new IndexSample(size.Hidden, i, eigenvalues.Length, negative, zero, (double)negative / eigenvalues.Length, eigenvalues[0], eigenvalues[^1],
                gradientNorm, watch.Elapsed.TotalSeconds);
            samples.Add(sample);
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"network {i}: {negative} of {eigenvalues.Length} eigenvalues below -{s.ZeroEigenvalue:G3} (normalised index {sample.NormalizedIndex:0.#####}), {zero} near zero, " +
                $"lambda in [{sample.LambdaMin:G4}, {sample.LambdaMax:G4}], |grad| {gradientNorm:G3} ({sample.Seconds:0} s)"));
        }
        return samples.ToArray();
    }

    /// <summary>Network <paramref name="index"/>'s parameters as one flat vector: W1, B1, W2, B2 in the batch's layout.</summary>
    public static float[] Flatten(BatchedOneHiddenLayer model, int index)
    {
        using var scope = NewDisposeScope();
        return cat(model.Parameters.Select(p => p[index].reshape(-1).to(ScalarType.Float32)).ToArray()).data<float>().ToArray();
    }

    /// <summary>Network 0 of <paramref name="model"/> set from a vector of <see cref="Flatten"/>.</summary>
    public static void Restore(BatchedOneHiddenLayer model, float[] flat)
    {
        if (flat.Length != model.ParametersPerNetwork)
            throw new ArgumentException($"a kept network has {flat.Length} parameters, n1 = {model.Hidden} has {model.ParametersPerNetwork}");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var vector = tensor(flat).to(model.Dtype);
        long offset = 0;
        foreach (var p in model.Parameters)
        {
            var target = p[0];
            target.copy_(vector.narrow(0, offset, target.numel()).view(target.shape));
            offset += target.numel();
        }
    }

    static double Mean(double[] v)
    {
        var f = v.Where(double.IsFinite).ToArray();
        return f.Length == 0 ? double.NaN : f.Average();
    }

    static double Std(double[] v)
    {
        var f = v.Where(double.IsFinite).ToArray();
        if (f.Length < 2) return double.NaN;
        var mean = f.Average();
        return Math.Sqrt(f.Sum(x => (x - mean) * (x - mean)) / (f.Length - 1));
    }

    sealed record Piece<T>(string Key, T Value);

    static readonly JsonSerializerOptions PieceJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    static T? ReadPiece<T>(string path, string key) where T : class
    {
        if (!File.Exists(path)) return null;
        try
        {
            var piece = JsonSerializer.Deserialize<Piece<T>>(File.ReadAllText(path), PieceJson);
            return piece is not null && piece.Key == key ? piece.Value : null;
        }
        catch (JsonException)
        {
            return null; // a damaged piece is computed again
        }
    }

    static void WritePiece<T>(string path, string key, T value) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(new Piece<T>(key, value), PieceJson) + "\n");
}
