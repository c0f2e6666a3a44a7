using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

using WideValley.Experiments;

namespace WideValley.Benchmarks;

/// <summary>Where <see cref="DataThroughputBenchmark"/> takes its images from.</summary>
public static class ThroughputData
{
    /// <summary>
    /// Fashion-MNIST when a complete folder is found (incomplete folders earlier in the search are skipped), else a
    /// synthetic set of the same shape; a folder that is found but unreadable is an error, not a reason to fall back.
    /// </summary>
    public const string Auto = "auto";
    /// <summary>Fashion-MNIST; missing files are an error.</summary>
    public const string FashionMnist = DatasetCatalog.FashionMnist;
    /// <summary>Standard normal images and uniform labels, generated in memory.</summary>
    public const string Synthetic = "synthetic";

    public static IReadOnlyList<string> All { get; } = [Auto, FashionMnist, Synthetic];
}

/// <summary>What to measure in <see cref="DataThroughputBenchmark"/>.</summary>
public sealed record DataThroughputOptions
{
    /// <summary>One of <see cref="ThroughputData.All"/>.</summary>
    public string Data { get; init; } = ThroughputData.Auto;
    /// <summary>The folder holding Fashion-MNIST's files (null: the catalogue's usual search).</summary>
    public string? DataDir { get; init; }
    public int BatchSize { get; init; } = 128;
    /// <summary>Timed rounds; each draws <see cref="BatchesPerRound"/> minibatches.</summary>
    public int Rounds { get; init; } = 7;
    public int WarmupRounds { get; init; } = 1;
    /// <summary>Minibatches per round; null = one pass over the training set (its size over the batch size, rounded down).</summary>
    public int? BatchesPerRound { get; init; }
    /// <summary>Times the data set is loaded from its files (the median is reported); ignored for synthetic data.</summary>
    public int LoadRepeats { get; init; } = 3;
    /// <summary>
    /// Minibatches per round drawn through TorchSharp's DataLoader over a TensorDataset of the same tensors, for
    /// comparison (0 = skip it). It gathers the samples one by one as tensors and stacks them; rounds of a few
    /// minibatches rarely include a garbage collection of those tensors' wrappers and look several times faster than
    /// a long run does, so rounds should be long enough to contain some.
    /// </summary>
    public int DataLoaderBatchesPerRound { get; init; } = 50;
    /// <summary>Samples of the synthetic set (Fashion-MNIST's training set has 60,000).</summary>
    public int SyntheticSamples { get; init; } = 60_000;
    public int Threads { get; init; }
    public long Seed { get; init; } = 1;

    public void Validate()
    {
        if (!ThroughputData.All.Contains(Data))
            throw new ArgumentException($"--data {Data}: expected one of {string.Join(", ", ThroughputData.All)}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (BatchesPerRound is < 1) throw new ArgumentException($"batches per round must be at least 1 (or unset for one pass), got {BatchesPerRound}");
        if (LoadRepeats < 1) throw new ArgumentException($"load repeats must be at least 1, got {LoadRepeats}");
        if (DataLoaderBatchesPerRound < 0) throw new ArgumentException($"DataLoader batches per round must be zero (skip) or positive, got {DataLoaderBatchesPerRound}");
        if (SyntheticSamples < BatchSize)
            throw new ArgumentException($"synthetic samples ({SyntheticSamples}) must be at least the batch size ({BatchSize})");
    }
}

/// <summary>
/// Result of <see cref="DataThroughputBenchmark"/>: medians over rounds. The DataLoader fields are null when the
/// comparison was skipped, the load times when the data were synthetic (nothing was read).
/// </summary>
public sealed record DataThroughputResult
{
    /// <summary>Which data were used, and why synthetic ones if Fashion-MNIST was asked for but not found.</summary>
    public required string Data { get; init; }
    public required bool RealData { get; init; }
    public required long Samples { get; init; }
    public required string SampleShape { get; init; }
    public required int BatchSize { get; init; }
    public required int BatchesPerRound { get; init; }
    /// <summary>Median over rounds of the images per second drawn by <see cref="MinibatchStream"/>.</summary>
    public required double ImagesPerSecond { get; init; }
    /// <summary>Milliseconds per minibatch at <see cref="ImagesPerSecond"/>.</summary>
    public required double BatchMs { get; init; }
    /// <summary>Median seconds to read the IDX files (gzip included) into scaled float32 tensors.</summary>
    public double? LoadSeconds { get; init; }
    /// <summary>
    /// The first of those loads: what a process pays once, including the JIT compilation of the readers and, when
    /// the files are not in the OS cache, the disk.
    /// </summary>
    public double? LoadFirstSeconds { get; init; }
    public required int LoadRepeats { get; init; }
    public double? DataLoaderImagesPerSecond { get; init; }
    public required int DataLoaderBatchesPerRound { get; init; }
    /// <summary>Our batcher's images per second over the DataLoader's.</summary>
    public double? SpeedupOverDataLoader { get; init; }
    public required int Rounds { get; init; }
    public required int WarmupRounds { get; init; }
    public required int Threads { get; init; }
}

/// <summary>
/// Images per second through the trainer's minibatch path (<see cref="MinibatchStream"/>: a fresh randperm per pass,
/// index_select of inputs and labels), on Fashion-MNIST held in memory as the trainer holds it (float32, scaled),
/// and the one-time cost of getting it there. For comparison, the same tensors through TorchSharp's DataLoader over a
/// TensorDataset, which gathers every sample as its own tensor and stacks them.
/// </summary>
public static class DataThroughputBenchmark
{
    public static DataThroughputResult Run(DataThroughputOptions options, Action<string>? progress = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        var (train, description, loadTimes, real) = Load(options, progress);
        using (train)
        {
            var perRound = options.BatchesPerRound ?? (int)Math.Max(1, train.Count / options.BatchSize);
            progress?.Invoke($"batcher: {options.WarmupRounds} warm-up + {options.Rounds} timed rounds of {perRound} minibatches of {options.BatchSize}");
            var ours = MedianImagesPerSecond(new BatcherSource(train, options), options, perRound);
            double? loader = null;
            if (options.DataLoaderBatchesPerRound > 0)
            {
                progress?.Invoke($"DataLoader: {options.WarmupRounds} warm-up + {options.Rounds} timed rounds of {options.DataLoaderBatchesPerRound} minibatches");
                loader = MedianImagesPerSecond(new DataLoaderSource(train, options), options, options.DataLoaderBatchesPerRound);
            }
            return new DataThroughputResult
            {
                Data = description,
                RealData = real,
                Samples = train.Count,
                SampleShape = string.Join("x", train.Inputs.shape.Skip(1)) + " " + train.Inputs.dtype.ToString().ToLowerInvariant(),
                BatchSize = options.BatchSize,
                BatchesPerRound = perRound,
                ImagesPerSecond = ours,
                BatchMs = 1000.0 * options.BatchSize / ours,
                LoadSeconds = loadTimes.Count > 0 ? Medians.Of(loadTimes) : null,
                LoadFirstSeconds = loadTimes.Count > 0 ? loadTimes[0] : null,
                LoadRepeats = real ? options.LoadRepeats : 0,
                DataLoaderImagesPerSecond = loader,
                DataLoaderBatchesPerRound = options.DataLoaderBatchesPerRound,
                SpeedupOverDataLoader = ours / loader,
                Rounds = options.Rounds,
                WarmupRounds = options.WarmupRounds,
                Threads = get_num_threads(),
            };
        }
    }

    /// <summary>The result as one plain text line.</summary>
    public static string Summary(DataThroughputResult r)
    {
        var c = CultureInfo.InvariantCulture;
        var load = r.LoadSeconds is { } seconds
            ? string.Format(c, "; loading the files took {0:0.00} s the first time, {1:0.00} s (median of {2})", r.LoadFirstSeconds, seconds, r.LoadRepeats)
            : "";
        var loader = r.DataLoaderImagesPerSecond is { } rate
            ? string.Format(c, "; DataLoader over a TensorDataset {0:N0} images/s (batcher x{1:0.0})", rate, r.SpeedupOverDataLoader)
            : "";
        return string.Format(c, "batcher (randperm + index_select) {0:N0} images/s, {1:0.000} ms per minibatch of {2}{3}{4}",
            r.ImagesPerSecond, r.BatchMs, r.BatchSize, loader, load);
    }

    /// <summary>The training set the trainer would hold, a description of it, the load times in order (none: synthetic), and whether it is real.</summary>
    static (LabeledData Train, string Description, IReadOnlyList<double> LoadTimes, bool Real) Load(DataThroughputOptions options, Action<string>? progress)
    {
        var why = "";
        if (options.Data != ThroughputData.Synthetic)
        {
            try
            {
                return LoadFashionMnist(options, progress);
            }
            catch (DatasetNotFoundException e) when (options.Data == ThroughputData.Auto)
            {
                var skipped = e.IncompleteFolders.Count > 0 ? $"; skipped {string.Join("; ", e.IncompleteFolders)}" : "";
                why = $" (Fashion-MNIST unavailable: {FirstSentence(e.Message)}{skipped})";
            }
        }
        using var generator = new Generator((ulong)options.Seed);
        var inputs = randn([options.SyntheticSamples, 1, 28, 28], generator: generator);
        var labels = randint(0, 10, [options.SyntheticSamples], dtype: ScalarType.Int64, generator: generator);
        progress?.Invoke($"data: synthetic {options.SyntheticSamples} x 1x28x28{why}");
        return (new LabeledData(inputs, labels, 10), $"synthetic {options.SyntheticSamples} x 1x28x28 float32{why}", [], false);
    }

    static (LabeledData, string, IReadOnlyList<double>, bool) LoadFashionMnist(DataThroughputOptions options, Action<string>? progress)
    {
        var dataOptions = new DataOptions { DataDir = options.DataDir, Seed = options.Seed };
        var times = new List<double>();
        var watch = new Stopwatch();
        ClassificationDataset? kept = null;
        for (var repeat = 0; repeat < options.LoadRepeats; repeat++)
        {
            // Only the last load is kept, so that at most two copies of the set are alive at once.
            kept?.Dispose();
            GC.Collect();
            watch.Restart();
            kept = DatasetCatalog.LoadClassification(ThroughputData.FashionMnist, dataOptions);
            watch.Stop();
            times.Add(watch.Elapsed.TotalSeconds);
            progress?.Invoke($"data: loaded {kept.Source} in {watch.Elapsed.TotalSeconds:0.00} s ({repeat + 1}/{options.LoadRepeats})");
        }
        var dataset = kept!;
        // The benchmark keeps the training set and lets the rest go: the trainer draws minibatches from it alone.
        var train = new LabeledData(dataset.Train.Inputs.alias(), dataset.Train.Labels.alias(), dataset.Train.NumClasses);
        var description = $"fashion-mnist training set from {dataset.Source}, {train.Count} x 1x28x28 float32 (pixels / 255)";
        dataset.Dispose();
        return (train, description, times, true);
    }

    static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..end];
    }

    /// <summary>Median over timed rounds of images per second, each round drawing <paramref name="batchesPerRound"/> minibatches.</summary>
    static double MedianImagesPerSecond(IMinibatchSource source, DataThroughputOptions options, int batchesPerRound)
    {
        using (source)
        {
            var rates = new List<double>();
            var watch = new Stopwatch();
            for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
            {
                long images = 0;
                watch.Restart();
                for (var b = 0; b < batchesPerRound; b++)
                {
                    using var scope = NewDisposeScope();
                    images += source.Next();
                }
                watch.Stop();
                if (round >= options.WarmupRounds) rates.Add(images / watch.Elapsed.TotalSeconds);
            }
            return Medians.Of(rates);
        }
    }

    /// <summary>Draws one minibatch (its tensors belong to the caller's dispose scope) and returns its sample count.</summary>
    interface IMinibatchSource : IDisposable
    {
        long Next();
    }

    /// <summary>The trainer's path: <see cref="MinibatchStream"/>, as ClassificationTask draws from it.</summary>
    sealed class BatcherSource(LabeledData train, DataThroughputOptions options) : IMinibatchSource
    {
        readonly MinibatchStream _stream = new(train, options.BatchSize, options.Seed);

        public long Next() => _stream.Next().Labels.shape[0];

        public void Dispose() => _stream.Dispose();
    }

    /// <summary>
    /// TorchSharp's DataLoader over a TensorDataset of the same tensors (aliases, which the dataset may dispose),
    /// shuffled, one worker, starting a new pass when one ends.
    /// </summary>
    sealed class DataLoaderSource : IMinibatchSource
    {
        readonly TorchSharp.Modules.TensorDataset _dataset;
        readonly TorchSharp.Modules.IterableDataLoader _loader;
        IEnumerator<IList<Tensor>> _batches;

        public DataLoaderSource(LabeledData train, DataThroughputOptions options)
        {
            _dataset = utils.data.TensorDataset(train.Inputs.alias(), train.Labels.alias());
            _loader = utils.data.DataLoader(_dataset, options.BatchSize, shuffle: true, seed: (int)options.Seed,
                drop_last: true, disposeBatch: true, disposeDataset: false);
            _batches = _loader.GetEnumerator();
        }

        public long Next()
        {
            if (!_batches.MoveNext())
            {
                _batches.Dispose();
                _batches = _loader.GetEnumerator();
                if (!_batches.MoveNext()) throw new InvalidOperationException("the DataLoader yielded no minibatch from a fresh pass");
            }
            return _batches.Current[1].shape[0];
        }

        public void Dispose()
        {
            _batches.Dispose();
            _loader.Dispose();
            _dataset.Dispose();
        }
    }
}
