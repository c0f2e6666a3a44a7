using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// A symmetric linear operator on flat parameter vectors: a curvature matrix of a loss (the Hessian, the generalised
/// Gauss-Newton matrix, the empirical Fisher) or any explicit matrix. <see cref="Lanczos"/>, <see cref="Slq"/>,
/// <see cref="Hutchinson"/> and <see cref="ExactHessian.Compute(ICurvatureOperator, ExactHessianOptions?)"/> take any
/// implementation, so a spectrum, a trace or a dense matrix is measured the same way for each of them.
/// </summary>
public interface ICurvatureOperator
{
    /// <summary>n: the operator is n x n.</summary>
    long Dimension { get; }

    /// <summary>Floating type of the vectors <see cref="Apply"/> reads and writes.</summary>
    ScalarType Dtype { get; }

    /// <summary>Device of those vectors.</summary>
    Device Device { get; }

    /// <summary>Where each parameter tensor lies in the flat vectors (one block "all" for an operator without parameters).</summary>
    ParameterLayout Layout { get; }

    /// <summary>Applications of the operator so far (each a pass over the data for a network's curvature).</summary>
    long Applications { get; }

    /// <summary>
    /// Writes A v into <paramref name="result"/> (flat, <see cref="Dtype"/>, on <see cref="Device"/>).
    /// <paramref name="v"/> is a flat vector of length <see cref="Dimension"/> of any floating type.
    /// </summary>
    void Apply(Tensor v, Tensor result);

    /// <summary>Whether <see cref="Diagonal"/> is available without n applications.</summary>
    bool HasDiagonal { get; }

    /// <summary>The diagonal as a new flat vector in <see cref="Dtype"/>.</summary>
    /// <exception cref="NotSupportedException"><see cref="HasDiagonal"/> is false.</exception>
    Tensor Diagonal();
}

/// <summary>Conveniences over <see cref="ICurvatureOperator"/>.</summary>
public static class CurvatureOperators
{
    /// <summary>A v as a new flat vector in the operator's type and device.</summary>
    public static Tensor Apply(this ICurvatureOperator op, Tensor v)
    {
        ArgumentNullException.ThrowIfNull(op);
        var result = zeros(op.Dimension, op.Dtype, op.Device);
        try
        {
            op.Apply(v, result);
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>The operator as a function on flat vectors that returns a new tensor (for the <c>Func</c> overloads of the solvers).</summary>
    public static Func<Tensor, Tensor> AsFunction(this ICurvatureOperator op)
    {
        ArgumentNullException.ThrowIfNull(op);
        return v => op.Apply(v);
    }

    /// <summary>Checks an output vector for <see cref="ICurvatureOperator.Apply"/>.</summary>
    internal static void CheckResult(ICurvatureOperator op, Tensor result, string where)
    {
        op.Layout.CheckVector(result, nameof(result), where);
        if (result.dtype != op.Dtype || !result.IsOn(op.Device))
            throw new ArgumentException($"{where}: result must be {op.Dtype} on {op.Device}; got {result.dtype} on {result.device}.", nameof(result));
    }
}

/// <summary>Progress of an iterative curvature computation (Lanczos, SLQ, Hutchinson).</summary>
/// <param name="Method">"lanczos", "slq", "hutchinson" or "hutch++".</param>
/// <param name="Done">Work done, in operator applications.</param>
/// <param name="Total">The most work the run may take (it may stop earlier, e.g. when Lanczos converges).</param>
/// <param name="Elapsed">Time since the start of the call.</param>
public sealed record CurvatureProgress(string Method, long Done, long Total, TimeSpan Elapsed);

/// <summary>
/// An explicit symmetric matrix as a curvature operator: for tests against closed forms, and for spectra of a dense
/// Hessian already in memory (the inertia route's extremes). The matrix is used as given, not copied; the caller
/// keeps ownership unless <c>ownsMatrix</c> is set.
/// </summary>
public sealed class DenseOperator : ICurvatureOperator, IDisposable
{
    private readonly Tensor matrix;
    private readonly bool ownsMatrix;
    private long applications;

    /// <summary>Wraps the square floating-point <paramref name="matrix"/> (assumed symmetric).</summary>
    /// <param name="matrix">n x n, floating point, on any device.</param>
    /// <param name="layout">Names of the coordinates' blocks (default: one block "all").</param>
    /// <param name="ownsMatrix">Dispose the matrix with this operator.</param>
    public DenseOperator(Tensor matrix, ParameterLayout? layout = null, bool ownsMatrix = false)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if (matrix.dim() != 2 || matrix.shape[0] != matrix.shape[1] || matrix.shape[0] == 0)
            throw new ArgumentException($"DenseOperator: expected a non-empty square matrix; got shape ({string.Join(", ", matrix.shape)}).", nameof(matrix));
        if (!matrix.is_floating_point()) throw new ArgumentException($"DenseOperator: expected a floating-point matrix; got {matrix.dtype}.", nameof(matrix));
        var n = matrix.shape[0];
        Layout = layout ?? new ParameterLayout([new ParameterBlock("all", 0, n, [n])]);
        if (Layout.Dimension != n)
            throw new ArgumentException($"DenseOperator: the layout covers {Layout.Dimension} coordinates, the matrix has {n}.", nameof(layout));
        this.matrix = matrix;
        this.ownsMatrix = ownsMatrix;
    }

    /// <summary>The wrapped matrix.</summary>
    public Tensor Matrix => matrix;

    /// <inheritdoc/>
    public long Dimension => matrix.shape[0];

    /// <inheritdoc/>
    public ScalarType Dtype => matrix.dtype;

    /// <inheritdoc/>
    public Device Device => matrix.device;

    /// <inheritdoc/>
    public ParameterLayout Layout { get; }

    /// <inheritdoc/>
    public long Applications => Interlocked.Read(ref applications);

    /// <inheritdoc/>
    public bool HasDiagonal => true;

    /// <inheritdoc/>
    public void Apply(Tensor v, Tensor result)
    {
        Layout.CheckVector(v, nameof(v), "DenseOperator.Apply");
        CurvatureOperators.CheckResult(this, result, "DenseOperator.Apply");
        using var scope = NewDisposeScope();
        var x = v.dtype == Dtype && v.IsOn(Device) ? v : v.to(Dtype, Device);
        result.copy_(matrix.mv(x));
        Interlocked.Increment(ref applications);
    }

    /// <inheritdoc/>
    public Tensor Diagonal()
    {
        using var scope = NewDisposeScope();
        return matrix.diagonal().clone().MoveToOuterDisposeScope();
    }

    /// <summary>Frees the matrix if this operator owns it.</summary>
    public void Dispose()
    {
        if (ownsMatrix) matrix.Dispose();
    }
}
