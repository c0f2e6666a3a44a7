namespace WideValley.DeepLinear;

/// <summary>
/// Numerical rank by NumPy's <c>matrix_rank</c> convention: the number of singular values above
/// tol = max(rows, cols) * sigma_max * eps, with eps the float32 machine epsilon 2^-23 (the weights may be float32, so
/// singular values below float32 resolution of the largest one count as zero even when computed in float64).
/// </summary>
public static class ProductSpectrum
{
    /// <summary>2^-23 = 1.1920929e-7, numpy.finfo(float32).eps (not <see cref="float.Epsilon"/>, the smallest denormal).</summary>
    public const double Float32Epsilon = 1.1920928955078125e-07;

    /// <summary>tol = max(rows, cols) * sigmaMax * <see cref="Float32Epsilon"/>.</summary>
    public static double Tolerance(double sigmaMax, int rows, int cols) => Math.Max(rows, cols) * sigmaMax * Float32Epsilon;

    /// <summary>
    /// The number of <paramref name="singularValues"/> above <see cref="Tolerance"/> of their largest, for a
    /// <paramref name="rows"/> x <paramref name="cols"/> matrix (0 for the zero matrix).
    /// </summary>
    /// <exception cref="ArgumentException">Negative or non-finite singular values.</exception>
    public static int NumericalRank(IReadOnlyList<double> singularValues, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(singularValues);
        if (singularValues.Count == 0) return 0;
        var max = 0.0;
        foreach (var s in singularValues)
        {
            if (!(s >= 0) || !double.IsFinite(s)) throw new ArgumentException($"singular values must be finite and >= 0, got {s}");
            max = Math.Max(max, s);
        }
        if (max == 0) return 0;
        var tolerance = Tolerance(max, rows, cols);
        return singularValues.Count(s => s > tolerance);
    }
}
