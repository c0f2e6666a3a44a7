using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>
/// f(x) = 1/2 x^T A x - b^T x with a known symmetric positive-definite A (eigenvalues in [lo, hi]) and exact,
/// full-batch gradients written straight into .grad: the setting where the local-entropy Gibbs measure is Gaussian
/// with mean (A + gamma I)^-1 (b + gamma x) and covariance T (A + gamma I)^-1.
/// </summary>
internal sealed class QuadraticProblem : IDisposable
{
    public Tensor A { get; }
    public Tensor B { get; }
    public Tensor Eigenvalues { get; }
    public Tensor Eigenvectors { get; }
    public Parameter X { get; }
    public int Calls { get; private set; }
    /// <summary>Called with the current iterate x' on every gradient evaluation.</summary>
    public Action<Tensor>? OnEvaluate { get; set; }
    readonly Tensor _loss;

    public QuadraticProblem(int n, double lo, double hi, ScalarType dtype, long seed = 1)
    {
        using var gen = new Generator((ulong)seed);
        using var scope = NewDisposeScope();
        var (q, _) = linalg.qr(randn(n, n, ScalarType.Float64, generator: gen));
        var eig = linspace(lo, hi, n, ScalarType.Float64);
        var a = q.matmul(diag(eig)).matmul(q.T);
        a = (a + a.T) / 2;
        Eigenvalues = eig.MoveToOuterDisposeScope();
        Eigenvectors = q.MoveToOuterDisposeScope();
        A = a.to(dtype).MoveToOuterDisposeScope();
        B = randn(n, ScalarType.Float64, generator: gen).to(dtype).MoveToOuterDisposeScope();
        X = new Parameter(randn(n, ScalarType.Float64, generator: gen).to(dtype).MoveToOuterDisposeScope());
        X.grad = zeros_like(X);
        _loss = zeros(1, dtype).DetachFromDisposeScope();
    }

    /// <summary>Writes A x' - b into .grad; the returned loss is a placeholder (the estimator only needs gradients).</summary>
    public Tensor Closure()
    {
        Calls++;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        OnEvaluate?.Invoke(X);
        // The local-entropy estimator sets .grad to None before each call, as torch's zero_grad(set_to_none=True) does.
        if (X.grad is null) X.grad = zeros_like(X);
        using var g = X.grad!;
        g.copy_(A.mv(X) - B);
        return _loss;
    }

    /// <summary>(A + gamma I)^-1 (b + gamma x) in float64.</summary>
    public Tensor GibbsMean(Tensor x, double gamma)
    {
        using var scope = NewDisposeScope();
        var a = A.to(ScalarType.Float64);
        var m = a + gamma * eye(a.shape[0], dtype: ScalarType.Float64);
        return linalg.solve(m, B.to(ScalarType.Float64) + gamma * x.to(ScalarType.Float64)).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        A.Dispose(); B.Dispose(); Eigenvalues.Dispose(); Eigenvectors.Dispose(); X.Dispose(); _loss.Dispose();
    }
}
