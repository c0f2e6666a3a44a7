using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>
/// Per-sample global contrast normalisation, as the Entropy-SGD reference code applied it to CIFAR-10: each row of an
/// (n, d) matrix has its own mean subtracted and is divided by its own standard deviation (ddof = 1); a row whose
/// standard deviation is below <see cref="MinStd"/> (a constant image) is only centred, not blown up.
/// </summary>
internal static class ContrastNormalization
{
    public const double MinStd = 1e-8;

    /// <summary>
    /// Normalises the rows of <paramref name="features"/> (n, d) with d ≥ 2. The arithmetic is float64; the result is
    /// float32, computed a chunk of rows at a time so that no float64 copy of the whole set is ever held.
    /// </summary>
    public static Tensor Global(Tensor features, long chunkRows = ZcaWhitening.DefaultChunkRows)
    {
        if (features.dim() != 2 || features.shape[1] < 2)
            throw new ArgumentException($"expected an (n, d) matrix with d >= 2, got shape ({string.Join(", ", features.shape)})", nameof(features));
        using var scope = NewDisposeScope();
        var n = features.shape[0];
        var output = empty(features.shape, ScalarType.Float32);
        for (long start = 0; start < n; start += chunkRows)
        {
            using var chunkScope = NewDisposeScope();
            var len = Math.Min(chunkRows, n - start);
            var rows = features.narrow(0, start, len).to(ScalarType.Float64, copy: true);
            var (std, mean) = rows.std_mean(1, unbiased: true, keepdim: true);
            output.narrow(0, start, len).copy_(rows.sub_(mean).div_(std.Where(std.LessThan(MinStd), 1.0)));
        }
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// ZCA whitening fitted on one set of feature vectors and applicable to any other, for any feature dimension d.
/// With the fitting rows centred by their per-feature mean m, C = Xᵀ X / (n − 1) = U diag(λ) Uᵀ (float64,
/// <c>torch.linalg.eigh</c>), the whitening matrix is W = U diag(1 / (√λ + ε)) Uᵀ and a row x maps to (x − m) W.
/// The regulariser ε is added to the singular values √λ, not to λ, because that is what the Entropy-SGD reference
/// preprocessing did; the whitened training covariance is therefore U diag(λ / (√λ + ε)²) Uᵀ, which is the identity
/// up to a relative 2ε/√λ per direction.
/// </summary>
internal sealed class ZcaWhitening : IDisposable
{
    public const double DefaultEpsilon = 1e-5;

    /// <summary>
    /// Rows per float64 chunk (12 MB at d = 3072). Small on purpose: large temporaries are fresh memory each time and
    /// first-touch page faults then cost more than the arithmetic; blocks this size are recycled by the allocator.
    /// </summary>
    public const long DefaultChunkRows = 512;

    /// <summary>Per-feature mean m of the fitting set, (d) float64.</summary>
    public Tensor Mean { get; }
    /// <summary>The symmetric whitening matrix W, (d, d) float64.</summary>
    public Tensor Matrix { get; }
    /// <summary>Eigenvalues λ of the fitting covariance, ascending, (d) float64 (negative rounding noise clipped to 0).</summary>
    public Tensor Eigenvalues { get; }
    public double Epsilon { get; }
    public long Dimension => Mean.shape[0];

    ZcaWhitening(Tensor mean, Tensor matrix, Tensor eigenvalues, double epsilon)
    {
        Mean = mean.DetachFromDisposeScope();
        Matrix = matrix.DetachFromDisposeScope();
        Eigenvalues = eigenvalues.DetachFromDisposeScope();
        Epsilon = epsilon;
    }

    /// <summary>
    /// Fits the whitening on the rows of <paramref name="features"/> (n, d), n ≥ 2. Mean and covariance are
    /// accumulated in float64 over chunks of rows (two passes, so the covariance is of centred data and does not
    /// suffer the cancellation of E[x xᵀ] − m mᵀ).
    /// </summary>
    public static ZcaWhitening Fit(Tensor features, double epsilon = DefaultEpsilon, long chunkRows = DefaultChunkRows)
    {
        if (features.dim() != 2)
            throw new ArgumentException($"expected an (n, d) matrix, got shape ({string.Join(", ", features.shape)})", nameof(features));
        if (!(epsilon >= 0) || double.IsInfinity(epsilon))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "the ZCA regulariser must be a finite number >= 0");
        var (n, d) = (features.shape[0], features.shape[1]);
        if (n < 2) throw new ArgumentException($"ZCA needs at least 2 samples to estimate a covariance, got {n}", nameof(features));

        using var scope = NewDisposeScope();
        var sum = zeros(d, ScalarType.Float64);
        foreach (var rows in Chunks(features, chunkRows))
            sum.Accumulate_(rows.sum([0L])); // not sum(0): a literal 0 converts to ScalarType and picks the dtype overload
        var mean = sum / n;

        var covariance = zeros(d, d, ScalarType.Float64);
        foreach (var rows in Chunks(features, chunkRows))
        {
            var centred = rows.sub_(mean); // the chunk is a private float64 copy
            covariance.addmm_(centred.t(), centred);
        }
        covariance.DivideBy_(n - 1);

        var (eigenvalues, eigenvectors) = linalg.eigh(covariance);
        eigenvalues = eigenvalues.AtLeast(0.0);
        var singular = eigenvalues.sqrt();
        if (epsilon == 0 && singular.min().item<double>() == 0)
            throw new ArgumentException(
                "the covariance of the fitting set is singular (fewer independent samples than features, or constant features); use a ZCA epsilon > 0");
        var scale = singular.Plus(epsilon).reciprocal();
        var matrix = (eigenvectors * scale).matmul(eigenvectors.t());
        return new ZcaWhitening(mean, matrix, eigenvalues, epsilon);
    }

    /// <summary>
    /// (x − m) W for every row of <paramref name="features"/> (n, d), computed in float64 a chunk at a time and
    /// returned as <paramref name="outputType"/> (float32 by default, what the networks consume).
    /// </summary>
    public Tensor Apply(Tensor features, ScalarType outputType = ScalarType.Float32, long chunkRows = DefaultChunkRows)
    {
        if (features.dim() != 2 || features.shape[1] != Dimension)
            throw new ArgumentException(
                $"expected an (n, {Dimension}) matrix (the dimension the whitening was fitted on), got shape ({string.Join(", ", features.shape)})",
                nameof(features));
        using var scope = NewDisposeScope();
        var output = empty(features.shape, outputType);
        long start = 0;
        foreach (var rows in Chunks(features, chunkRows))
        {
            output.narrow(0, start, rows.shape[0]).copy_(rows.sub_(Mean).matmul(Matrix));
            start += rows.shape[0];
        }
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Consecutive row blocks as private float64 copies (callers may modify them in place); each block lives in its
    /// own dispose scope until the next is made.
    /// </summary>
    static IEnumerable<Tensor> Chunks(Tensor features, long chunkRows)
    {
        var n = features.shape[0];
        for (long start = 0; start < n; start += chunkRows)
        {
            using var chunkScope = NewDisposeScope();
            yield return features.narrow(0, start, Math.Min(chunkRows, n - start)).to(ScalarType.Float64, copy: true);
        }
    }

    public void Dispose()
    {
        Mean.Dispose();
        Matrix.Dispose();
        Eigenvalues.Dispose();
    }
}
