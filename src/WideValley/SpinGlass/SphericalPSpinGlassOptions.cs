using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>Settings of <see cref="SphericalPSpinGlass.Create"/>.</summary>
public sealed record SphericalPSpinGlassOptions
{
    /// <summary>N, the number of spins (at least 2). The sphere is |w|² = N.</summary>
    public required int Size { get; init; }

    /// <summary>p, the order of the interaction (at least 2; default 3, the paper's H = 3).</summary>
    public int Order { get; init; } = 3;

    /// <summary>Seed of the couplings (a CPU torch generator; the same seed gives the same couplings).</summary>
    public long Seed { get; init; }

    /// <summary>Law of the couplings (default Gaussian, the paper's).</summary>
    public CouplingDistribution Distribution { get; init; } = CouplingDistribution.Gaussian;

    /// <summary>Storage and compute type: Float32 (default) or Float64. Hessians and indices are always float64.</summary>
    public ScalarType Dtype { get; init; } = ScalarType.Float32;

    /// <summary>Device of the couplings and of every computation (null: CPU). Couplings are drawn on the CPU and moved.</summary>
    public Device? Device { get; init; }

    /// <summary>External field (null: none). See <see cref="ExternalField"/> for the sign convention.</summary>
    public ExternalField? Field { get; init; }

    /// <summary>Memory the couplings may use, in bytes (null: MemAvailable of /proc/meminfo minus <see cref="MemoryMarginBytes"/>).</summary>
    public long? MemoryLimitBytes { get; init; }

    /// <summary>Memory left for everything else when the limit comes from the system (default 1 GiB).</summary>
    public long MemoryMarginBytes { get; init; } = 1L << 30;

    /// <summary>
    /// Largest intermediate of a batched contraction, in bytes (default 256 MiB): a batch of K starts is contracted in
    /// chunks of rows whose [rows, N^(p−1)] product fits. Larger chunks change nothing but memory use; the work is one
    /// matrix product per chunk either way.
    /// </summary>
    public long WorkspaceBytes { get; init; } = 256L << 20;

    /// <summary>Checks every setting; the message names the property and what was expected.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting out of range.</exception>
    public void Validate()
    {
        if (Order < 2)
            throw new ArgumentOutOfRangeException(nameof(Order), Order, $"SphericalPSpinGlassOptions.Order: p must be at least 2; got {Order}.");
        if (Size < 2)
            throw new ArgumentOutOfRangeException(nameof(Size), Size, $"SphericalPSpinGlassOptions.Size: N must be at least 2; got {Size}.");
        if (Dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentOutOfRangeException(nameof(Dtype), Dtype, $"SphericalPSpinGlassOptions.Dtype: Float32 or Float64 expected; got {Dtype}.");
        if (!Enum.IsDefined(Distribution))
            throw new ArgumentOutOfRangeException(nameof(Distribution), Distribution, "SphericalPSpinGlassOptions.Distribution: Gaussian or Bernoulli expected.");
        if (MemoryLimitBytes is <= 0)
            throw new ArgumentOutOfRangeException(nameof(MemoryLimitBytes), MemoryLimitBytes, "SphericalPSpinGlassOptions.MemoryLimitBytes: must be positive when given.");
        if (MemoryMarginBytes < 0)
            throw new ArgumentOutOfRangeException(nameof(MemoryMarginBytes), MemoryMarginBytes, "SphericalPSpinGlassOptions.MemoryMarginBytes: must not be negative.");
        if (WorkspaceBytes <= 0)
            throw new ArgumentOutOfRangeException(nameof(WorkspaceBytes), WorkspaceBytes, "SphericalPSpinGlassOptions.WorkspaceBytes: must be positive.");
    }
}
