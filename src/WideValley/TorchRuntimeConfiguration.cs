namespace WideValley;

/// <summary>
/// Process-wide choices for libtorch's CPU backend and the C allocator, applied by
/// <see cref="TorchRuntime.Configure"/>. Nothing is applied unless someone calls it: the <c>widevalley</c> command does so
/// at start with <see cref="FromEnvironment"/>; a library user may do the same, or pick their own values.
/// See the remarks of <see cref="TorchRuntime.Configure"/> for the measurements behind the recommended values.
/// </summary>
public sealed record TorchRuntimeConfiguration
{
    /// <summary>
    /// Switch libtorch's oneDNN (mkldnn) CPU kernels off. Recommended: its float32 conv2d now and then returns NaN
    /// channels for finite inputs on AMD EPYC machines. False switches oneDNN on (libtorch's default).
    /// </summary>
    public bool DisableOneDnn { get; init; } = true;

    /// <summary>
    /// Switch NNPACK off. Recommended where it cannot initialise (libtorch then warns on every convolution). False
    /// switches it on (libtorch's default).
    /// </summary>
    public bool DisableNnpack { get; init; } = true;

    /// <summary>
    /// Keep blocks up to 32 MB on glibc's heap and stop trimming, so that large tensor temporaries do not pay page
    /// faults on every step (a LeNet Hessian-vector product: 635 ms with glibc's defaults, 297 ms tuned). The process
    /// keeps its peak memory. Linux with glibc only; cannot be undone within the process.
    /// </summary>
    public bool TuneMalloc { get; init; } = true;

    /// <summary>libtorch's intra-op thread count; 0 keeps libtorch's default (one per core).</summary>
    public int Threads { get; init; }

    /// <summary>The recommended set-up: oneDNN and NNPACK off, glibc malloc tuned, libtorch's default threads.</summary>
    public static TorchRuntimeConfiguration Recommended { get; } = new();

    /// <summary>Exactly libtorch's and glibc's defaults (oneDNN and NNPACK on, the allocator untouched).</summary>
    public static TorchRuntimeConfiguration LibTorchDefaults { get; } =
        new() { DisableOneDnn = false, DisableNnpack = false, TuneMalloc = false };

    /// <summary>
    /// <see cref="Recommended"/>, adjusted by the environment: <c>WIDEVALLEY_ONEDNN=1</c> keeps oneDNN on,
    /// <c>WIDEVALLEY_MALLOC_TUNING=0</c> leaves the allocator alone. The <c>widevalley</c> command's defaults.
    /// </summary>
    public static TorchRuntimeConfiguration FromEnvironment() => Recommended with
    {
        DisableOneDnn = Environment.GetEnvironmentVariable(TorchRuntime.OneDnnVariable) != "1",
        TuneMalloc = Environment.GetEnvironmentVariable(TorchRuntime.AllocatorVariable) != "0",
    };
}
