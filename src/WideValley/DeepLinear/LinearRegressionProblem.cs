using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.DeepLinear;

/// <summary>How the training inputs are drawn.</summary>
public enum InputDistribution
{
    /// <summary>
    /// Whitened: X = sqrt(N) Q^T with Q an N x n matrix of orthonormal columns (from a Gaussian matrix), so the
    /// empirical second moment X X^T / N is exactly the identity and the loss is 1/2 ||W - A||_F^2.
    /// </summary>
    Whitened,

    /// <summary>i.i.d. standard Gaussian entries: X X^T / N is the identity only in expectation.</summary>
    Gaussian,
}

/// <summary>
/// The teacher problem a deep linear network is trained on: a target A = U S V^T (outputs x inputs) of chosen singular
/// values S with Haar-random U and V, N training inputs X (columns), targets Y = A X, and the loss
/// L(W) = 1/(2N) ||W X - A X||_F^2 = 1/2 tr((W - A) Sigma (W - A)^T), Sigma = X X^T / N ("1/2 E||W x - A x||^2" over
/// the training set). The global optimum over products of rank at most k (k the narrowest width of the network) is
/// computed in closed form (<see cref="BestWithRankAtMost"/>). Everything is float64 on the CPU.
/// </summary>
public sealed class LinearRegressionProblem : IDisposable
{
    LinearRegressionProblem(Tensor teacher, Tensor inputs, Tensor targets, Tensor covariance, Tensor optimum, double optimalLoss, double zeroLoss,
        int maxRank, IReadOnlyList<double> singularValues)
    {
        Teacher = teacher;
        Inputs = inputs;
        Targets = targets;
        InputCovariance = covariance;
        Optimum = optimum;
        OptimalLoss = optimalLoss;
        ZeroLoss = zeroLoss;
        MaxRank = maxRank;
        SingularValues = singularValues;
    }

    /// <summary>A, [outputs, inputs], float64.</summary>
    public Tensor Teacher { get; }

    /// <summary>X, [inputs, N], float64 (one sample per column).</summary>
    public Tensor Inputs { get; }

    /// <summary>Y = A X, [outputs, N], float64.</summary>
    public Tensor Targets { get; }

    /// <summary>Sigma = X X^T / N, [inputs, inputs], float64.</summary>
    public Tensor InputCovariance { get; }

    /// <summary>The global optimum W* among matrices of rank at most <see cref="MaxRank"/> (A itself when that is no constraint).</summary>
    public Tensor Optimum { get; }

    /// <summary>L(W*), 0 when the rank constraint does not bind.</summary>
    public double OptimalLoss { get; }

    /// <summary>L(0) = 1/2 tr(A Sigma A^T): the scale against which excess losses are judged.</summary>
    public double ZeroLoss { get; }

    /// <summary>The rank constraint k of the optimum (the network's narrowest width).</summary>
    public int MaxRank { get; }

    /// <summary>The teacher's non-zero singular values, descending.</summary>
    public IReadOnlyList<double> SingularValues { get; }

    /// <summary>rank(A).</summary>
    public int TeacherRank => SingularValues.Count;

    /// <summary>
    /// Builds the problem from <paramref name="seed"/> alone: U, V, then X are drawn in that order from one float64
    /// generator.
    /// </summary>
    /// <param name="inputs">n, the input dimension.</param>
    /// <param name="outputs">m, the output dimension.</param>
    /// <param name="singularValues">The teacher's non-zero singular values (at most min(m, n), positive; sorted descending here).</param>
    /// <param name="samples">N, training samples (at least n, so that Sigma is invertible).</param>
    /// <param name="distribution">How X is drawn.</param>
    /// <param name="maxRank">k, the narrowest width of the network that will fit A (the optimum's rank constraint).</param>
    /// <param name="seed">The seed of U, V and X.</param>
    /// <exception cref="ArgumentException">Sizes or singular values out of range.</exception>
    public static LinearRegressionProblem Create(int inputs, int outputs, IReadOnlyList<double> singularValues, int samples,
        InputDistribution distribution, int maxRank, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputs);
        ArgumentNullException.ThrowIfNull(singularValues);
        if (singularValues.Count == 0 || singularValues.Count > Math.Min(inputs, outputs))
            throw new ArgumentException($"the teacher's rank must be between 1 and min(inputs, outputs) = {Math.Min(inputs, outputs)}, got {singularValues.Count} singular values");
        foreach (var value in singularValues)
            if (!(value > 0) || !double.IsFinite(value)) throw new ArgumentException($"the teacher's singular values must be positive and finite, got {value.ToString("G6", CultureInfo.InvariantCulture)}");
        if (samples < inputs) throw new ArgumentException($"at least as many samples as inputs are needed (Sigma = X X^T / N must be invertible): {samples} samples, {inputs} inputs");
        if (maxRank < 1) throw new ArgumentException($"the narrowest width must be at least 1, got {maxRank}");
        var sorted = singularValues.OrderByDescending(s => s).ToArray();
        var r = sorted.Length;
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)seed);
        var u = RandomOrthogonal(outputs, g).narrow(1, 0, r);
        var v = RandomOrthogonal(inputs, g).narrow(1, 0, r);
        var s = tensor(sorted, ScalarType.Float64);
        var a = u.mul(s.unsqueeze(0)).mm(v.t());
        Tensor x;
        if (distribution == InputDistribution.Whitened)
        {
            var gaussian = randn([samples, inputs], ScalarType.Float64, generator: g);
            var (q, rr) = linalg.qr(gaussian);
            x = q.t().mul(Math.Sqrt(samples));
        }
        else
        {
            x = randn([inputs, samples], ScalarType.Float64, generator: g);
        }
        var y = a.mm(x);
        var covariance = x.mm(x.t()).div(samples);
        var (optimum, optimalLoss) = BestWithRankAtMost(a, covariance, maxRank);
        var zeroLoss = Loss(zeros_like(a), a, covariance);
        return new LinearRegressionProblem(a.MoveToOuterDisposeScope(), x.contiguous().MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope(),
            covariance.MoveToOuterDisposeScope(), optimum.MoveToOuterDisposeScope(), optimalLoss, zeroLoss, maxRank, sorted);
    }

    /// <summary>A Haar-random d x d orthogonal matrix (QR of a Gaussian matrix, signs fixed by R's diagonal), float64.</summary>
    public static Tensor RandomOrthogonal(int d, Generator generator)
    {
        using var scope = NewDisposeScope();
        var gaussian = randn([d, d], ScalarType.Float64, generator: generator);
        var (q, r) = linalg.qr(gaussian);
        var signs = r.diagonal().sign();
        // A zero on R's diagonal has probability zero; keep the column rather than zero it if it ever happens.
        signs = signs.where(signs.ne(0), ones_like(signs));
        return q.mul(signs.unsqueeze(0)).MoveToOuterDisposeScope();
    }

    /// <summary>L(W) = 1/2 tr((W - A) Sigma (W - A)^T) for one W [m, n] (float64).</summary>
    public static double Loss(Tensor w, Tensor teacher, Tensor covariance)
    {
        using var scope = NewDisposeScope();
        var d = w.to(ScalarType.Float64).sub(teacher);
        return 0.5 * d.mm(covariance).mul(d).sum().ToDouble();
    }

    /// <summary>L(W) of this problem.</summary>
    public double Loss(Tensor w) => Loss(w, Teacher, InputCovariance);

    /// <summary>
    /// The minimiser of L over matrices of rank at most <paramref name="k"/>, and its loss. With B = A Sigma^(1/2) and
    /// B_k its best rank-k approximation (Eckart-Young: the top k singular triplets), W* = B_k Sigma^(-1/2) and
    /// L(W*) = 1/2 sum_{i &gt; k} sigma_i(B)^2; for whitened inputs (Sigma = I) this is A's own truncated SVD. When k is
    /// at least rank(A), W* = A and L(W*) = 0. Unique when sigma_k(B) &gt; sigma_{k+1}(B).
    /// </summary>
    /// <exception cref="ArgumentException">Sigma is not positive definite.</exception>
    public static (Tensor Optimum, double Loss) BestWithRankAtMost(Tensor teacher, Tensor covariance, int k)
    {
        using var scope = NewDisposeScope();
        var a = teacher.to(ScalarType.Float64);
        var singular = linalg.svdvals(a);
        var tolerance = ProductSpectrum.Tolerance(singular[0].ToDouble(), (int)a.shape[0], (int)a.shape[1]);
        var teacherRank = (int)singular.gt(tolerance).sum().ToInt64();
        if (k >= teacherRank) return (a.clone().MoveToOuterDisposeScope(), 0.0);
        var (eigenvalues, eigenvectors) = linalg.eigh(covariance.to(ScalarType.Float64));
        var smallest = eigenvalues[0].ToDouble();
        if (!(smallest > 0)) throw new ArgumentException($"the input covariance is not positive definite (smallest eigenvalue {smallest:G4}); use at least as many samples as inputs");
        var root = eigenvectors.mul(eigenvalues.sqrt().unsqueeze(0)).mm(eigenvectors.t());
        var inverseRoot = eigenvectors.mul(eigenvalues.rsqrt().unsqueeze(0)).mm(eigenvectors.t());
        var b = a.mm(root);
        var (u, s, vh) = linalg.svd(b, fullMatrices: false);
        var bk = u.narrow(1, 0, k).mul(s.narrow(0, 0, k).unsqueeze(0)).mm(vh.narrow(0, 0, k));
        var tail = s.narrow(0, k, s.shape[0] - k);
        var loss = 0.5 * tail.square().sum().ToDouble();
        return (bk.mm(inverseRoot).MoveToOuterDisposeScope(), loss);
    }

    /// <summary>Frees the tensors.</summary>
    public void Dispose()
    {
        Teacher.Dispose();
        Inputs.Dispose();
        Targets.Dispose();
        InputCovariance.Dispose();
        Optimum.Dispose();
    }
}
