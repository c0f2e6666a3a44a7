using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>How image pixels (0..255) are turned into network inputs.</summary>
public static class PixelScaling
{
    /// <summary>x / 255, pixels in [0, 1]. The default.</summary>
    public const string Unit = "unit";
    /// <summary>
    /// (x − mean) / std with the mean and standard deviation (ddof = 1) of the training pixels, per colour channel;
    /// the same numbers are applied to validation and test images.
    /// </summary>
    public const string Standard = "standard";
    /// <summary>The raw values 0..255 as float32, which is what the Entropy-SGD reference code fed its MNIST networks.</summary>
    public const string Raw = "raw";

    /// <summary>Every accepted value of <see cref="DataOptions.Scaling"/>.</summary>
    public static IReadOnlyList<string> All { get; } = [Unit, Standard, Raw];
}

/// <summary>Options for <see cref="DatasetCatalog.LoadClassification"/>.</summary>
public sealed record DataOptions
{
    /// <summary>
    /// The folder that holds the dataset's files. When null the folder is $WIDEVALLEY_DATA/NAME if that exists, else
    /// the dataset's default folder (see <see cref="DatasetCatalog.ResolveFolder(string, string?)"/>).
    /// </summary>
    public string? DataDir { get; init; }

    /// <summary>
    /// Samples carved out of the training set as a validation set (0 = no validation set), chosen by a permutation
    /// seeded with <see cref="Seed"/> (<see cref="LabeledData.SplitOff"/>).
    /// </summary>
    public long ValidationSize { get; init; }

    /// <summary>
    /// Keep only the first N training samples after the validation split (null = all); for quick runs. Preprocessing
    /// statistics (standardisation, ZCA) are still fitted on the whole training part, so a truncated run sees exactly
    /// the same inputs as a full one.
    /// </summary>
    public long? MaxTrainSamples { get; init; }

    /// <summary>Seed of the validation split.</summary>
    public long Seed { get; init; }

    /// <summary>
    /// One of <see cref="PixelScaling.All"/>; default <see cref="PixelScaling.Unit"/>. For CIFAR-10 with contrast
    /// normalisation (<see cref="CifarPreprocessing.Gcn"/>, <see cref="CifarPreprocessing.GcnZca"/>) the pixel scale
    /// makes no difference, since each image is normalised by its own statistics, and
    /// <see cref="PixelScaling.Standard"/> is rejected there.
    /// </summary>
    public string Scaling { get; init; } = PixelScaling.Unit;

    /// <summary>Where preprocessed tensors are cached; null = $XDG_CACHE_HOME/widevalley or ~/.cache/widevalley.</summary>
    public string? CacheDir { get; init; }

    /// <summary>Whether expensive preprocessing (CIFAR-10 contrast normalisation and whitening) is cached on disk.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>CIFAR-10 preprocessing; ignored by the other datasets.</summary>
    public CifarPreprocessing CifarPreprocessing { get; init; } = new();

    /// <summary>Receives progress and cache messages (cache hits, corrupt cache files being recomputed).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (!PixelScaling.All.Contains(Scaling))
            throw new ArgumentException($"unknown pixel scaling '{Scaling}'; expected one of: {string.Join(", ", PixelScaling.All)}", nameof(Scaling));
        if (ValidationSize < 0)
            throw new ArgumentOutOfRangeException(nameof(ValidationSize), ValidationSize, "validation size must be 0 (none) or positive");
        if (MaxTrainSamples is < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxTrainSamples), MaxTrainSamples, "the training-sample limit must be at least 1 (or unset)");
        CifarPreprocessing.Validate();
    }

    internal string ResolvedCacheDir => string.IsNullOrWhiteSpace(CacheDir) ? DataFiles.DefaultCacheDir() : CacheDir;
}

/// <summary>Where <see cref="DatasetCatalog.Locate(string, string?)"/> found a dataset.</summary>
/// <param name="Folder">The folder holding the files.</param>
/// <param name="Origin">Which rule chose it: "--data-dir", "$WIDEVALLEY_DATA", "user data folder" or "default folder".</param>
/// <param name="SkippedFolders">Candidate folders searched before it that exist but lack files, each with what it lacks.</param>
public sealed record DatasetLocation(string Folder, string Origin, IReadOnlyList<string> SkippedFolders);

/// <summary>
/// The named image-classification datasets and where their files are looked for. A dataset's folder is the explicit
/// <see cref="DataOptions.DataDir"/> (the folder holding the files) when given; else the first complete one of
/// $WIDEVALLEY_DATA/NAME, the user data folder (<see cref="UserFolder"/>, where downloads go by default) and the
/// system-wide default folder (Fashion-MNIST: /usr/share/datasets/fashion-mnist, where Debian's
/// dataset-fashion-mnist package installs it; MNIST and CIFAR-10 have none). Incomplete folders are skipped and
/// reported, never read (see <see cref="Locate(string, string?)"/>).
/// </summary>
public static class DatasetCatalog
{
    /// <summary>Environment variable naming a root folder with one subfolder per dataset name.</summary>
    public const string EnvironmentVariable = "WIDEVALLEY_DATA";

    /// <summary>Name of Fashion-MNIST (Xiao et al. 2017).</summary>
    public const string FashionMnist = "fashion-mnist";
    /// <summary>Name of MNIST (LeCun et al. 1998).</summary>
    public const string Mnist = "mnist";
    /// <summary>Name of CIFAR-10 (Krizhevsky 2009).</summary>
    public const string Cifar10Name = "cifar10";

    /// <summary>Known dataset names.</summary>
    public static IReadOnlyList<string> Names { get; } = [FashionMnist, Mnist, Cifar10Name];

    /// <summary>A one-line description of a dataset.</summary>
    public static string Describe(string name) => Canonical(name) switch
    {
        FashionMnist => "Fashion-MNIST: 28x28 grey-scale images of clothing in 10 classes, 60000 training and 10000 test images (IDX format)",
        Mnist => "MNIST: 28x28 grey-scale handwritten digits in 10 classes, 60000 training and 10000 test images (IDX format)",
        _ => "CIFAR-10: 32x32 colour images in 10 classes, 50000 training and 10000 test images (binary version)",
    };

    /// <summary>The file names a dataset folder must hold (the canonical spelling; see <see cref="Describe"/>).</summary>
    public static IReadOnlyList<string> ExpectedFiles(string name) =>
        Canonical(name) == Cifar10Name ? [.. Cifar10.TrainFiles, Cifar10.TestFile] : IdxRoles.Select(r => r.Stem).ToArray();

    /// <summary>The system-wide folder searched last, or null (only Fashion-MNIST has one, from its Debian package).</summary>
    public static string? DefaultFolder(string name) => SystemFolder(name, SystemRoot);

    /// <summary>Where Debian's dataset packages install their data (dataset-fashion-mnist: ROOT/fashion-mnist).</summary>
    internal const string SystemRoot = "/usr/share/datasets";

    /// <summary>
    /// Environment variable that replaces the system-wide root (/usr/share/datasets) in the search: a folder with one
    /// subfolder per dataset name, or <c>none</c> (or empty) for no system folder at all. The test suite sets it to
    /// play a machine without Debian's dataset packages, or to put its small built-in data set in their place.
    /// </summary>
    public const string SystemRootVariable = "WIDEVALLEY_SYSTEM_DATA";

    /// <summary>The system root given the value of <see cref="SystemRootVariable"/> (null: not set): the Debian root
    /// when unset, no root (null) for <c>none</c> or an empty value, else the value.</summary>
    internal static string? SystemRootFrom(string? variable) =>
        variable is null ? SystemRoot
        : string.IsNullOrWhiteSpace(variable) || variable.Trim().Equals("none", StringComparison.OrdinalIgnoreCase) ? null
        : variable;

    static string? SystemFolder(string name, string? systemRoot) =>
        Canonical(name) == FashionMnist && systemRoot is not null ? Path.Combine(systemRoot, FashionMnist) : null;

    /// <summary>
    /// The places searched when no folder is given: $WIDEVALLEY_DATA, the user data root and the system root (null:
    /// not searched). Tests replace them with <see cref="OverrideSearchPlaces"/> to play a machine without the
    /// Debian package, or one where an earlier download failed, without touching the real folders.
    /// </summary>
    internal sealed record SearchPlaces(string? EnvironmentRoot, string? UserDataRoot, string? SystemRoot)
    {
        /// <summary>This process's places: $WIDEVALLEY_DATA, $XDG_DATA_HOME/widevalley (or ~/.local/share/widevalley),
        /// /usr/share/datasets (or what $WIDEVALLEY_SYSTEM_DATA names instead).</summary>
        public static SearchPlaces FromEnvironment() =>
            new(Environment.GetEnvironmentVariable(EnvironmentVariable), DefaultUserDataRoot(),
                SystemRootFrom(Environment.GetEnvironmentVariable(SystemRootVariable)));
    }

    static readonly AsyncLocal<SearchPlaces?> PlacesOverride = new();

    static SearchPlaces CurrentPlaces => PlacesOverride.Value ?? SearchPlaces.FromEnvironment();

    /// <summary>
    /// Makes this execution context (the calling test and what it runs, commands included) search
    /// <paramref name="places"/> instead of the real ones until the result is disposed.
    /// </summary>
    internal static IDisposable OverrideSearchPlaces(SearchPlaces places)
    {
        var previous = PlacesOverride.Value;
        PlacesOverride.Value = places;
        return new Restore(() => PlacesOverride.Value = previous);
    }

    sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    /// <summary>
    /// The per-user folder for dataset <paramref name="name"/>: $XDG_DATA_HOME/widevalley/NAME, or
    /// ~/.local/share/widevalley/NAME. Downloads go there when no target is given, and it is searched after
    /// $WIDEVALLEY_DATA, so a downloaded dataset is found without further options.
    /// </summary>
    public static string UserFolder(string name) =>
        Path.Combine(CurrentPlaces.UserDataRoot ?? DefaultUserDataRoot(), Canonical(name));

    static string DefaultUserDataRoot()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        var root = !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(root, "widevalley");
    }

    /// <summary>
    /// The folder to read dataset <paramref name="name"/> from (see <see cref="Locate(string, string?)"/>).
    /// </summary>
    public static string ResolveFolder(string name, string? dataDir) => Locate(name, dataDir).Folder;

    /// <summary>
    /// <see cref="ResolveFolder(string, string?)"/> with $WIDEVALLEY_DATA and the user data root given (null: not
    /// searched) and the real system folder, so tests need not depend on the process environment or the home folder.
    /// </summary>
    internal static string ResolveFolder(string name, string? dataDir, string? root, string? userDataRoot = null) =>
        Locate(name, dataDir, new SearchPlaces(root, userDataRoot, SystemRoot)).Folder;

    /// <summary>
    /// Finds dataset <paramref name="name"/>. When <paramref name="dataDir"/> is given it is the folder holding the
    /// files and must hold all of them. Otherwise the candidates are, in order, $WIDEVALLEY_DATA/NAME,
    /// <see cref="UserFolder"/> and <see cref="DefaultFolder"/>, and the first that holds every file wins: a folder
    /// that is missing or incomplete (an interrupted copy, an empty folder left by an older version's failed
    /// download) is skipped, so it never hides a complete set further down, and the skipped folders are reported in
    /// <see cref="DatasetLocation.SkippedFolders"/>. When no candidate is complete, throws a
    /// <see cref="DatasetNotFoundException"/> that lists every place searched (the incomplete ones with the files they
    /// lack), the files expected, and how to get them.
    /// </summary>
    public static DatasetLocation Locate(string name, string? dataDir) => Locate(name, dataDir, CurrentPlaces);

    internal static DatasetLocation Locate(string name, string? dataDir, SearchPlaces places)
    {
        name = Canonical(name);
        var looked = new List<string>();
        var incomplete = new List<string>();
        if (!string.IsNullOrWhiteSpace(dataDir))
        {
            var folder = Path.GetFullPath(dataDir);
            return Check(folder, "--data-dir") is { } found
                ? new DatasetLocation(found, "--data-dir", [])
                : throw NotFound(name, looked, incomplete, folder, explicitFolder: true);
        }

        var candidates = new List<(string Folder, string Origin)>();
        if (!string.IsNullOrWhiteSpace(places.EnvironmentRoot))
            candidates.Add((Path.GetFullPath(Path.Combine(places.EnvironmentRoot, name)), $"${EnvironmentVariable}"));
        else looked.Add($"${EnvironmentVariable} is not set");
        if (places.UserDataRoot is not null)
            candidates.Add((Path.GetFullPath(Path.Combine(places.UserDataRoot, name)), "user data folder"));
        if (SystemFolder(name, places.SystemRoot) is { } system) candidates.Add((system, "default folder"));
        else if (SystemFolder(name, SystemRoot) is null) looked.Add($"{name} has no system-wide default folder");

        foreach (var (folder, origin) in candidates)
            if (Check(folder, origin) is { } found)
                return new DatasetLocation(found, origin, incomplete.ToArray());
        throw NotFound(name, looked, incomplete, candidates.Count > 0 ? candidates[^1].Folder : name);

        string? Check(string folder, string origin)
        {
            if (!Directory.Exists(folder))
            {
                looked.Add($"{folder} (from {origin}): folder does not exist");
                return null;
            }
            var effective = EffectiveFolder(name, folder);
            var missing = MissingFiles(name, effective);
            if (missing.Count == 0) return effective;
            var note = $"{folder} (from {origin}): incomplete, missing {string.Join(", ", missing)}";
            looked.Add(note);
            incomplete.Add(note);
            return null;
        }
    }

    /// <summary>
    /// Loads a named dataset (<see cref="Names"/>) as training, optional validation, and test sets, preprocessed as
    /// <paramref name="options"/> say. Unknown names throw <see cref="ArgumentException"/>; missing or malformed files
    /// throw <see cref="DataException"/> (<see cref="DatasetNotFoundException"/> when no complete folder was found).
    /// Incomplete folders skipped on the way are reported through <see cref="DataOptions.Log"/>.
    /// </summary>
    public static ClassificationDataset LoadClassification(string name, DataOptions options)
    {
        name = Canonical(name);
        options.Validate();
        var location = Locate(name, options.DataDir);
        foreach (var skipped in location.SkippedFolders) options.Log?.Invoke($"{name}: skipped {skipped}");
        return name == Cifar10Name ? Cifar10.Load(location.Folder, options) : LoadIdxImages(name, location.Folder, options);
    }

    static string Canonical(string name)
    {
        var lower = (name ?? "").Trim().ToLowerInvariant();
        return Names.Contains(lower)
            ? lower
            : throw new ArgumentException($"unknown dataset '{name}'; known datasets: {string.Join(", ", Names)}", nameof(name));
    }

    /// <summary>CIFAR-10's archive unpacks into cifar-10-batches-bin/; accept the folder above it too.</summary>
    static string EffectiveFolder(string name, string folder)
    {
        if (name != Cifar10Name || MissingFiles(name, folder).Count == 0) return folder;
        var nested = Path.Combine(folder, "cifar-10-batches-bin");
        return Directory.Exists(nested) && MissingFiles(name, nested).Count == 0 ? nested : folder;
    }

    static List<string> MissingFiles(string name, string folder) => name == Cifar10Name
        ? ExpectedFiles(name).Where(f => !File.Exists(Path.Combine(folder, f))).ToList()
        : IdxRoles.Where(r => FindIdxFile(folder, r) is null).Select(r => r.Stem).ToList();

    /// <summary>Whether <paramref name="folder"/> holds every file of dataset <paramref name="name"/> (CIFAR-10: possibly in its cifar-10-batches-bin subfolder).</summary>
    public static bool IsComplete(string name, string folder)
    {
        name = Canonical(name);
        return Directory.Exists(folder) && MissingFiles(name, EffectiveFolder(name, folder)).Count == 0;
    }

    static DatasetNotFoundException NotFound(string name, List<string> looked, List<string> incomplete, string path, bool explicitFolder = false)
    {
        var expected = name == Cifar10Name
            ? $"{string.Join(", ", ExpectedFiles(name))} (the binary version; they may also sit in a cifar-10-batches-bin subfolder)"
            : $"{string.Join(", ", ExpectedFiles(name))} (each may be gzip-compressed with a .gz suffix; " +
              "the spelling train-images.idx3-ubyte is accepted too)";
        var fixes = new List<string>();
        if (name == FashionMnist)
            fixes.Add($"install the Debian package: sudo apt-get install dataset-fashion-mnist (it puts the files in {DefaultFolder(name)})");
        fixes.Add($"download them: widevalley data download {name} --to DIR, then pass --data-dir DIR " +
                  $"(without --to they go to {UserFolder(name)}, which is searched automatically)");
        fixes.Add($"pass --data-dir DIR naming the folder that holds the files, or set {EnvironmentVariable}=ROOT with the files in ROOT/{name}/");
        var hint = looked.Count > 0 && Directory.Exists(Path.Combine(path, name)) && MissingFiles(name, Path.Combine(path, name)).Count == 0
            ? $" (note: {Path.Combine(path, name)} has them; --data-dir names the folder holding the files, not its parent)"
            : "";
        var skipped = incomplete.Count > 0 && !explicitFolder
            ? " Incomplete folders were skipped, not read (an interrupted copy or download: complete them or delete them)."
            : "";
        return new DatasetNotFoundException(path,
            $"{name} data not found{hint}. Searched: {string.Join("; ", looked)}.{skipped} " +
            $"Expected files: {expected}. To fix, do one of: " + string.Join("; or ", fixes) + ".",
            incomplete.ToArray());
    }

    // ---- MNIST and Fashion-MNIST (IDX files) ----

    internal readonly record struct IdxRole(string Stem, string AlternativeStem);

    /// <summary>train images, train labels, test images, test labels; the alternative spelling is LeCun's "train-images.idx3-ubyte".</summary>
    internal static readonly IdxRole[] IdxRoles =
    [
        new("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        new("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
        new("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        new("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    ];

    /// <summary>The first existing spelling of a role's file: plain before .gz (faster), canonical before alternative.</summary>
    internal static string? FindIdxFile(string folder, IdxRole role) =>
        new[] { role.Stem, role.Stem + ".gz", role.AlternativeStem, role.AlternativeStem + ".gz" }
            .Select(f => Path.Combine(folder, f))
            .FirstOrDefault(File.Exists);

    static ClassificationDataset LoadIdxImages(string name, string folder, DataOptions options)
    {
        var files = IdxRoles.Select(r => FindIdxFile(folder, r)!).ToArray();
        options.Log?.Invoke($"{name}: reading {folder}");
        using var train = ReadIdxImages(files[0], files[1]);
        using var test = ReadIdxImages(files[2], files[3]);
        return Assemble(name, folder, train, test, options);
    }

    /// <summary>Images (N, 1, 28, 28) uint8 and labels (N) int64 from one images/labels file pair, checked.</summary>
    internal static LabeledData ReadIdxImages(string imagesPath, string labelsPath)
    {
        var images = Idx.Read(imagesPath);
        var labels = Idx.Read(labelsPath);
        if (images.ElementType != IdxElementType.UnsignedByte || images.Shape.Count != 3 || images.Shape[1] != 28 || images.Shape[2] != 28)
            throw new DataException(imagesPath,
                $"expected 28x28 unsigned-byte images (shape N x 28 x 28), found {images.ElementType} of shape {DataFiles.ShapeText(images.Shape)}");
        if (labels.ElementType != IdxElementType.UnsignedByte || labels.Shape.Count != 1)
            throw new DataException(labelsPath,
                $"expected a 1-D array of unsigned-byte labels, found {labels.ElementType} of shape {DataFiles.ShapeText(labels.Shape)}");
        if (images.Shape[0] != labels.Shape[0])
            throw new DataException(labelsPath,
                $"holds {labels.Shape[0]} labels but {Path.GetFileName(imagesPath)} holds {images.Shape[0]} images; the counts must match");
        var bad = labels.Data.AsSpan().IndexOfAnyExceptInRange((byte)0, (byte)9);
        if (bad >= 0)
            throw new DataException(labelsPath, $"label {labels.Data[bad]} at index {bad} is out of range 0..9");

        using var scope = NewDisposeScope();
        var n = images.Shape[0];
        // Shares the freshly read array instead of copying it: the array is not used anywhere else.
        var inputs = n == 0 ? empty([0, 1, 28, 28], ScalarType.Byte) : frombuffer(images.Data, ScalarType.Byte).view(n, 1, 28, 28);
        var targets = labels.ToTensor().to(ScalarType.Int64);
        return new LabeledData(inputs, targets, 10);
    }

    /// <summary>
    /// Validation split, pixel scaling and truncation, shared by every image dataset whose inputs are raw uint8
    /// pixels (N, C, H, W). The raw sets are not consumed.
    /// </summary>
    internal static ClassificationDataset Assemble(string name, string folder, LabeledData rawTrain, LabeledData rawTest,
        DataOptions options)
    {
        var (fitPart, heldOut, splitNote) = SplitValidation(name, rawTrain, options);
        LabeledData? truncated = null;
        try
        {
            var (scale, note) = FitScaling(fitPart.Inputs, options.Scaling);
            var (kept, truncationNote) = Truncate(fitPart, options);
            if (!ReferenceEquals(kept, fitPart)) truncated = kept;
            return new ClassificationDataset
            {
                Name = name,
                Train = Scaled(kept, scale),
                Validation = heldOut is null ? null : Scaled(heldOut, scale),
                Test = Scaled(rawTest, scale),
                Source = folder,
                Preprocessing = note + splitNote + truncationNote,
            };
        }
        finally
        {
            if (!ReferenceEquals(fitPart, rawTrain)) fitPart.Dispose();
            heldOut?.Dispose();
            truncated?.Dispose();
        }
    }

    /// <summary>(training part, validation part or null, note). The training part is <paramref name="train"/> itself when nothing is split off.</summary>
    internal static (LabeledData Train, LabeledData? Validation, string Note) SplitValidation(string name, LabeledData train, DataOptions options)
    {
        if (options.ValidationSize == 0) return (train, null, "");
        if (options.ValidationSize >= train.Count)
            throw new ArgumentOutOfRangeException(nameof(options.ValidationSize), options.ValidationSize,
                $"the validation set must be smaller than the {train.Count} training samples of {name}");
        var (rest, held) = train.SplitOff(options.ValidationSize, options.Seed);
        return (rest, held, $"; {held.Count} training samples held out for validation (seed {options.Seed})");
    }

    /// <summary>
    /// The first <see cref="DataOptions.MaxTrainSamples"/> samples as a new set, or <paramref name="train"/> itself
    /// when there is no limit or the limit is not below its size.
    /// </summary>
    internal static (LabeledData Train, string Note) Truncate(LabeledData train, DataOptions options) =>
        options.MaxTrainSamples is { } max && max < train.Count
            ? (train.Take(max), $"; training set limited to its first {max} samples")
            : (train, "");

    internal sealed record PixelScale(double[] Mean, double[] Std)
    {
        public static PixelScale Identity(int channels, double divisor) =>
            new(new double[channels], Enumerable.Repeat(divisor, channels).ToArray());
    }

    /// <summary>The per-channel affine map x → (x − mean) / std that <paramref name="scaling"/> asks for, fitted on <paramref name="rawPixels"/> (N, C, H, W).</summary>
    internal static (PixelScale Scale, string Note) FitScaling(Tensor rawPixels, string scaling)
    {
        var channels = (int)rawPixels.shape[1];
        switch (scaling)
        {
            case PixelScaling.Unit:
                return (PixelScale.Identity(channels, 255), "pixels scaled to [0, 1] (x / 255)");
            case PixelScaling.Raw:
                return (PixelScale.Identity(channels, 1), "raw pixel values 0..255 as float32 (as the reference code fed them)");
            default:
                var (meanValues, stdValues) = ChannelStatistics(rawPixels);
                var text = string.Join("; ", meanValues.Zip(stdValues, (m, s) =>
                    string.Create(CultureInfo.InvariantCulture, $"mean {m:F3}, std {s:F3}")));
                return (new PixelScale(meanValues, stdValues.Select(s => s > 0 ? s : 1.0).ToArray()),
                    $"pixels standardised with the training set's per-channel statistics ({text}, in 0..255 units)");
        }
    }

    /// <summary>
    /// Per-channel mean and standard deviation (ddof = 1) of integer pixels (N, C, H, W), accumulated over chunks of
    /// images as float64 sums of x and x²; for 0..255 integers those sums are exact far beyond any dataset size, so
    /// the textbook formula loses nothing and no float64 copy of the whole set is needed.
    /// </summary>
    internal static (double[] Mean, double[] Std) ChannelStatistics(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var channels = pixels.shape[1];
        var sum = zeros(channels, ScalarType.Float64);
        var sumOfSquares = zeros(channels, ScalarType.Float64);
        const long chunk = 4096;
        for (long start = 0; start < pixels.shape[0]; start += chunk)
        {
            using var chunkScope = NewDisposeScope();
            var x = pixels.narrow(0, start, Math.Min(chunk, pixels.shape[0] - start)).to(ScalarType.Float64);
            sum.Accumulate_(x.sum([0L, 2L, 3L]));
            sumOfSquares.add_(x.square().sum([0L, 2L, 3L]));
        }
        var count = (double)(pixels.NumberOfElements / channels);
        var s1 = sum.data<double>().ToArray();
        var s2 = sumOfSquares.data<double>().ToArray();
        var mean = s1.Select(v => v / count).ToArray();
        var std = s1.Zip(s2, (a, b) => Math.Sqrt(Math.Max(0, (b - a * a / count) / (count - 1)))).ToArray();
        return (mean, std);
    }

    internal static LabeledData Scaled(LabeledData raw, PixelScale scale)
    {
        using var scope = NewDisposeScope();
        var channels = scale.Mean.Length;
        // In place after the one conversion: fresh memory is the expensive part of touching 60000 images.
        var inputs = raw.Inputs.to(ScalarType.Float32, copy: true);
        if (scale.Mean.Any(m => m != 0)) inputs.sub_(tensor(scale.Mean, ScalarType.Float32).view(1, channels, 1, 1));
        if (scale.Std.Any(s => s != 1)) inputs.div_(tensor(scale.Std, ScalarType.Float32).view(1, channels, 1, 1));
        return new LabeledData(inputs, raw.Labels.clone(), raw.NumClasses);
    }
}
