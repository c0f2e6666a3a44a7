using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>CIFAR-10 input preprocessing (<see cref="DataOptions.CifarPreprocessing"/>).</summary>
public sealed record CifarPreprocessing
{
    /// <summary>Pixels only scaled as <see cref="DataOptions.Scaling"/> says.</summary>
    public const string None = "none";
    /// <summary>Per-image global contrast normalisation: each image minus its mean, divided by its std (ddof = 1).</summary>
    public const string Gcn = "gcn";
    /// <summary>Contrast normalisation, then ZCA whitening fitted on the training images. The paper's setting and the default.</summary>
    public const string GcnZca = "gcn-zca";

    /// <summary>Every accepted value of <see cref="Mode"/>.</summary>
    public static IReadOnlyList<string> Modes { get; } = [None, Gcn, GcnZca];

    /// <summary>One of <see cref="Modes"/>.</summary>
    public string Mode { get; init; } = GcnZca;

    /// <summary>
    /// ZCA regulariser ε, added to the singular values √λ of the training covariance (as the reference code did):
    /// W = U diag(1 / (√λ + ε)) Uᵀ.
    /// </summary>
    public double ZcaEpsilon { get; init; } = ZcaWhitening.DefaultEpsilon;

    /// <summary>Throws <see cref="ArgumentException"/> for an unknown mode or a negative or non-finite ε.</summary>
    public void Validate()
    {
        if (!Modes.Contains(Mode))
            throw new ArgumentException($"unknown CIFAR-10 preprocessing '{Mode}'; expected one of: {string.Join(", ", Modes)}", nameof(Mode));
        if (!(ZcaEpsilon >= 0) || double.IsInfinity(ZcaEpsilon))
            throw new ArgumentOutOfRangeException(nameof(ZcaEpsilon), ZcaEpsilon, "the ZCA epsilon must be a finite number >= 0");
    }
}

/// <summary>
/// Reader for the binary version of CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html): data_batch_1.bin to
/// data_batch_5.bin and test_batch.bin, each a sequence of 3073-byte records: a label byte 0..9, then 3072 pixel
/// bytes holding the red, green and blue 32x32 planes in that order.
/// </summary>
public static class Cifar10
{
    /// <summary>Pixel bytes per image: three 32x32 planes.</summary>
    public const int ImageBytes = 3 * 32 * 32;
    /// <summary>Bytes per record: the label byte and the pixels.</summary>
    public const int RecordBytes = 1 + ImageBytes;

    /// <summary>The training batch files, in the order their records are concatenated.</summary>
    public static IReadOnlyList<string> TrainFiles { get; } =
        ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    /// <summary>The test batch file.</summary>
    public const string TestFile = "test_batch.bin";

    /// <summary>Class names by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>
    /// Bumped whenever the preprocessing arithmetic changes, so that caches written by older code are not reused.
    /// </summary>
    const string PreprocessingVersion = "cifar10-preprocessing-1";

    /// <summary>One batch file as images (N, 3, 32, 32) uint8 and labels (N) int64.</summary>
    public static LabeledData ReadBatch(string path) => ToLabeledData([ReadBatchBytes(path)]);

    /// <summary>The five training batches (concatenated in order) and the test batch of <paramref name="folder"/>, as raw uint8 images.</summary>
    public static (LabeledData Train, LabeledData Test) ReadRaw(string folder)
    {
        var raw = ReadFolder(folder);
        return (ToLabeledData(raw.Train), ToLabeledData([raw.Test]));
    }

    /// <summary>
    /// Loads the folder as a <see cref="ClassificationDataset"/>: validation split, then the preprocessing of
    /// <see cref="DataOptions.CifarPreprocessing"/> with every statistic fitted on the training part only, then the
    /// training-sample limit. Contrast-normalised results are cached in <see cref="DataOptions.CacheDir"/>, keyed by
    /// the SHA-256 of the six files' contents and by every option that changes the result.
    /// </summary>
    public static ClassificationDataset Load(string folder, DataOptions options)
    {
        options.Validate();
        var preprocessing = options.CifarPreprocessing;
        if (preprocessing.Mode != CifarPreprocessing.None && options.Scaling == PixelScaling.Standard)
            throw new ArgumentException(
                $"pixel scaling '{PixelScaling.Standard}' cannot be combined with CIFAR-10 preprocessing '{preprocessing.Mode}', " +
                $"which normalises every image itself; use preprocessing '{CifarPreprocessing.None}' to standardise pixels instead",
                nameof(options));

        options.Log?.Invoke($"cifar10: reading {folder}");
        var raw = ReadFolder(folder);
        using var rawTrain = ToLabeledData(raw.Train);
        using var rawTest = ToLabeledData([raw.Test]);
        var cacheKey = CacheKey(raw.Digests, options);
        raw = null; // the tensors hold copies; let the 180 MB of file bytes go before the heavy work
        if (preprocessing.Mode == CifarPreprocessing.None)
            return DatasetCatalog.Assemble(DatasetCatalog.Cifar10Name, folder, rawTrain, rawTest, options);

        var (fitPart, heldOut, splitNote) = DatasetCatalog.SplitValidation(DatasetCatalog.Cifar10Name, rawTrain, options);
        try
        {
            using var scope = NewDisposeScope();
            var inputs = CachedOrComputed(cacheKey, fitPart, heldOut, rawTest, options);
            var train = new LabeledData(inputs["train"], fitPart.Labels.clone(), 10);
            var (kept, truncationNote) = DatasetCatalog.Truncate(train, options);
            if (!ReferenceEquals(kept, train)) train.Dispose();
            var note = (preprocessing.Mode == CifarPreprocessing.Gcn
                           ? "per-image global contrast normalisation (each image's 3072 values to mean 0, std 1)"
                           : "per-image global contrast normalisation, then ZCA whitening " +
                             string.Create(CultureInfo.InvariantCulture, $"(eps {preprocessing.ZcaEpsilon:G3}) ") +
                             $"fitted on the {fitPart.Count} training images") + splitNote + truncationNote;
            return new ClassificationDataset
            {
                Name = DatasetCatalog.Cifar10Name,
                Train = kept,
                Validation = heldOut is null ? null : new LabeledData(inputs["validation"], heldOut.Labels.clone(), 10),
                Test = new LabeledData(inputs["test"], rawTest.Labels.clone(), 10),
                Source = folder,
                Preprocessing = note,
            };
        }
        finally
        {
            if (!ReferenceEquals(fitPart, rawTrain)) fitPart.Dispose();
            heldOut?.Dispose();
        }
    }

    /// <summary>Preprocessed float32 inputs named "train", "validation" (when split) and "test", from the cache if it holds them.</summary>
    static Dictionary<string, Tensor> CachedOrComputed(string key, LabeledData train, LabeledData? validation, LabeledData test,
        DataOptions options)
    {
        var preprocessing = options.CifarPreprocessing;
        var expected = new Dictionary<string, long[]> { ["train"] = train.Inputs.shape, ["test"] = test.Inputs.shape };
        if (validation is not null) expected["validation"] = validation.Inputs.shape;

        var cachePath = Path.Combine(options.ResolvedCacheDir,
            $"cifar10-{preprocessing.Mode}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16]}.wvcache");
        if (options.UseCache)
        {
            var cached = TensorCache.TryRead(cachePath, key, options.Log);
            if (cached is not null)
            {
                if (cached.Count == expected.Count && expected.All(e => cached.TryGetValue(e.Key, out var t) &&
                        t.dtype == ScalarType.Float32 && t.shape.SequenceEqual(e.Value)))
                {
                    options.Log?.Invoke($"cifar10: preprocessed inputs read from cache {cachePath}");
                    return cached;
                }
                options.Log?.Invoke($"cache file {cachePath} holds tensors of unexpected names or shapes; recomputing");
            }
        }

        var result = new Dictionary<string, Tensor>();
        var normalised = new Dictionary<string, Tensor>
        {
            ["train"] = ContrastNormalization.Global(Flat(train.Inputs)),
            ["test"] = ContrastNormalization.Global(Flat(test.Inputs)),
        };
        if (validation is not null) normalised["validation"] = ContrastNormalization.Global(Flat(validation.Inputs));

        if (preprocessing.Mode == CifarPreprocessing.GcnZca)
        {
            options.Log?.Invoke($"cifar10: fitting ZCA whitening on {train.Count} x {ImageBytes} training features (the full set takes tens of seconds; the result is cached)");
            using var zca = ZcaWhitening.Fit(normalised["train"], preprocessing.ZcaEpsilon);
            foreach (var (name, features) in normalised)
            {
                result[name] = zca.Apply(features).view(expected[name]);
                features.Dispose(); // not needed any more: frees 600 MB before the next set is whitened
            }
        }
        else
        {
            foreach (var (name, features) in normalised) result[name] = features.view(expected[name]);
        }

        if (options.UseCache)
        {
            try
            {
                TensorCache.Write(cachePath, key, result.Select(r => (r.Key, r.Value)).ToList());
                options.Log?.Invoke($"cifar10: preprocessed inputs cached in {cachePath}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                options.Log?.Invoke($"cifar10: could not write cache file {cachePath} ({e.Message}); continuing without cache");
            }
        }
        return result;
    }

    static Tensor Flat(Tensor images) => images.view(images.shape[0], ImageBytes);

    /// <summary>Everything that determines the preprocessed tensors: file contents, mode, ε, and the validation split.</summary>
    static string CacheKey(IEnumerable<(string Name, string Sha256, long Length)> digests, DataOptions options)
    {
        var text = new StringBuilder(PreprocessingVersion);
        foreach (var (name, digest, length) in digests) text.Append($"; {name} {length} bytes sha256 {digest}");
        text.Append($"; mode {options.CifarPreprocessing.Mode}");
        if (options.CifarPreprocessing.Mode == CifarPreprocessing.GcnZca)
            text.Append(string.Create(CultureInfo.InvariantCulture, $"; zca-eps {options.CifarPreprocessing.ZcaEpsilon:R}"));
        // The seed only matters when it chooses a validation split.
        text.Append(options.ValidationSize > 0 ? $"; validation {options.ValidationSize} seed {options.Seed}" : "; no validation");
        return text.ToString();
    }

    sealed record RawFiles(byte[][] Train, byte[] Test, (string Name, string Sha256, long Length)[] Digests);

    static RawFiles ReadFolder(string folder)
    {
        var names = TrainFiles.Append(TestFile).ToArray();
        if (!Directory.Exists(folder))
            throw new DataException(folder, $"folder not found; a CIFAR-10 folder holds {string.Join(", ", names)}");
        var missing = names.Where(n => !File.Exists(Path.Combine(folder, n))).ToList();
        if (missing.Count > 0)
            throw new DataException(folder,
                $"missing CIFAR-10 file(s): {string.Join(", ", missing)}; the folder must hold {string.Join(", ", names)} " +
                "(the binary version, cifar-10-binary.tar.gz)");
        var contents = names.Select(n => ReadBatchBytes(Path.Combine(folder, n))).ToArray();
        var digests = names.Select((n, i) => (n, Convert.ToHexStringLower(SHA256.HashData(contents[i])), contents[i].LongLength)).ToArray();
        return new RawFiles(contents[..^1], contents[^1], digests);
    }

    /// <summary>A batch file's bytes, checked: whole records only, labels 0..9.</summary>
    internal static byte[] ReadBatchBytes(string path)
    {
        byte[] bytes;
        using (var file = DataFiles.OpenRead(path))
        {
            var length = file.Length;
            if (length == 0)
                throw new DataException(path, $"is empty; expected {RecordBytes}-byte records (1 label byte, {ImageBytes} pixel bytes)");
            if (length % RecordBytes != 0)
                throw new DataException(path,
                    $"size {length} bytes is not a multiple of the {RecordBytes}-byte CIFAR-10 record " +
                    $"({length / RecordBytes} whole records and {length % RecordBytes} bytes left over); " +
                    "is this the binary version of CIFAR-10, complete?");
            if (length > Array.MaxLength)
                throw new DataException(path, $"size {length} bytes is far larger than a CIFAR-10 batch");
            bytes = new byte[length];
            file.ReadExactly(bytes);
        }
        for (var record = 0; record < bytes.Length / RecordBytes; record++)
        {
            var label = bytes[record * RecordBytes];
            if (label > 9)
                throw new DataException(path, $"record {record} (byte offset {(long)record * RecordBytes}): label {label} is out of range 0..9");
        }
        return bytes;
    }

    static LabeledData ToLabeledData(IReadOnlyList<byte[]> batches)
    {
        using var scope = NewDisposeScope();
        var records = cat(batches.Select(b => tensor(b, [b.LongLength / RecordBytes, RecordBytes])).ToList(), 0);
        var n = records.shape[0];
        var images = records.narrow(1, 1, ImageBytes).reshape(n, 3, 32, 32).contiguous();
        var labels = records.select(1, 0).to(ScalarType.Int64);
        return new LabeledData(images, labels, 10);
    }
}
