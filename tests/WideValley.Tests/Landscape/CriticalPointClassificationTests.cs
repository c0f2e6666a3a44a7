using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Tests.Landscape;

/// <summary>
/// <see cref="CriticalPoints"/>: exact band counts of diagonal matrices with known eigenvalues, the verdict's use of the
/// gradient norm and the index, and SLQ fractions against the exact ones within the stated error.
/// </summary>
public class CriticalPointClassificationTests
{
    // 3 below -1e-2; 1 in (-1e-2, -1e-3); 1 in (-1e-3, -1e-4); 5 within 1e-4; 2 in (1e-4, 1e-3]; 1 in (1e-3, 1e-2]; 3 above 1e-2.
    static readonly double[] Known = [-2, -0.5, -0.02, -5e-3, -5e-4, -5e-5, -1e-6, 0, 0, 3e-5, 2e-4, 1e-3, 7e-3, 0.05, 1.5, 40];

    static double[] EigenvaluesOfDiagonal(double[] diagonal)
    {
        using var matrix = diag(tensor(diagonal, ScalarType.Float64));
        using var values = ExactHessian.Eigenvalues(matrix);
        return values.data<double>().ToArray();
    }

    [Fact]
    public void TheBandsOfADiagonalMatrixAreCountedExactly()
    {
        var values = EigenvaluesOfDiagonal(Known);
        var c = CriticalPoints.FromEigenvalues(values, gradientNorm: 0);
        double n = Known.Length;
        Assert.Equal([1e-4, 1e-3, 1e-2], c.Bands.Select(b => b.Tau));
        // tau = 1e-4: below -1e-4: -2 -0.5 -0.02 -5e-3 -5e-4 = 5; within: -5e-5 -1e-6 0 0 3e-5 = 5; above: 6.
        Assert.Equal((5 / n, 5 / n, 6 / n, 5L), (c.Bands[0].Negative, c.Bands[0].NearZero, c.Bands[0].Positive, c.Bands[0].NegativeCount));
        // tau = 1e-3: below: 4; within (|l| <= 1e-3, 1e-3 itself included): -5e-4 ... 2e-4, 1e-3 = 8; above: 7e-3 0.05 1.5 40 = 4.
        Assert.Equal((4 / n, 8 / n, 4 / n, 4L), (c.Bands[1].Negative, c.Bands[1].NearZero, c.Bands[1].Positive, c.Bands[1].NegativeCount));
        // tau = 1e-2: below: 3; within: 10; above: 3.
        Assert.Equal((3 / n, 10 / n, 3 / n, 3L), (c.Bands[2].Negative, c.Bands[2].NearZero, c.Bands[2].Positive, c.Bands[2].NegativeCount));
        Assert.All(c.Bands, b => Assert.Equal((0.0, 0.0), (b.KernelError, b.ProbeStandardError)));
        Assert.Equal((4L, 0.5), (c.Index, c.Degeneracy));
        Assert.Equal((-2.0, 40.0), (c.LambdaMin, c.LambdaMax));
        Assert.Equal(CriticalPointKind.DegenerateSaddle, c.Kind);
        Assert.Contains("degenerate saddle (exact, n = 16)", c.Describe());
    }

    [Fact]
    public void TheVerdictNeedsASmallGradientAndTellsDegenerateMinimaFromSaddles()
    {
        var criteria = new CriticalPointCriteria { GradientTolerance = 1e-3 };
        Assert.Equal(CriticalPointKind.NotCritical, CriticalPoints.FromEigenvalues(Known, 2e-3, criteria).Kind);
        Assert.Equal(CriticalPointKind.NotCritical, CriticalPoints.FromEigenvalues(Known, double.NaN, criteria).Kind);
        Assert.Equal(CriticalPointKind.DegenerateSaddle, CriticalPoints.FromEigenvalues(Known, 1e-3, criteria).Kind);
        // The same spectrum without its negative eigenvalues: a degenerate minimum, not a saddle.
        var flat = Known.Select(l => l < -1e-3 ? -l : l).ToArray();
        Assert.Equal(CriticalPointKind.DegenerateMinimum, CriticalPoints.FromEigenvalues(flat, 0, criteria).Kind);
        // Mostly curved: a minimum or a saddle.
        double[] curved = [-0.3, 1, 2, 3, 4, 1e-5];
        Assert.Equal(CriticalPointKind.Saddle, CriticalPoints.FromEigenvalues(curved, 0, criteria).Kind);
        Assert.Equal(CriticalPointKind.Minimum, CriticalPoints.FromEigenvalues(curved.Select(Math.Abs).ToArray(), 0, criteria).Kind);
        // The tau of the verdict matters: at 1e-2 the eigenvalue -5e-3 is near zero, and the index falls to 3.
        Assert.Equal(3, CriticalPoints.FromEigenvalues(Known, 0, new CriticalPointCriteria { PrimaryTau = 1e-2 }).Index);
    }

    [Fact]
    public void BadInputIsRefusedByName()
    {
        Assert.Contains("no eigenvalues", Assert.Throws<ArgumentException>(() => CriticalPoints.FromEigenvalues([], 0)).Message);
        Assert.Contains("eigenvalue 1 is NaN", Assert.Throws<ArgumentException>(() => CriticalPoints.FromEigenvalues([1, double.NaN], 0)).Message);
        Assert.Contains("PrimaryTau 0.5 is not one of Taus",
            Assert.Throws<ArgumentException>(() => CriticalPoints.FromEigenvalues([1], 0, new CriticalPointCriteria { PrimaryTau = 0.5 })).Message);
        Assert.Contains("every tau must be a positive",
            Assert.Throws<ArgumentException>(() => CriticalPoints.FromEigenvalues([1], 0, new CriticalPointCriteria { Taus = [-1], PrimaryTau = -1 })).Message);
        Assert.Contains("GradientTolerance", Assert.Throws<ArgumentException>(() => new CriticalPointCriteria { GradientTolerance = 0 }.Validate()).Message);
        Assert.Contains("DegenerateFraction", Assert.Throws<ArgumentException>(() => new CriticalPointCriteria { DegenerateFraction = 1.5 }.Validate()).Message);
    }

    [Fact]
    public void SlqFractionsAgreeWithTheExactOnesWithinTheStatedError()
    {
        // n = 60 in a random orthonormal basis: 20 eigenvalues in [-1, -0.1], 25 within 5e-5 of zero, 15 in [0.05, 3]:
        // far from every band edge, so the kernel moves almost no mass and the error is the probes'.
        const int n = 60;
        var random = new Random(7);
        var eigenvalues = Enumerable.Range(0, 20).Select(_ => -0.1 - 0.9 * random.NextDouble())
            .Concat(Enumerable.Range(0, 25).Select(_ => (random.NextDouble() - 0.5) * 1e-4))
            .Concat(Enumerable.Range(0, 15).Select(_ => 0.05 + 2.95 * random.NextDouble())).ToArray();
        using var generator = new TorchSharp.torch.Generator(11);
        using var gaussian = randn(n, n, ScalarType.Float64, generator: generator);
        var (q, r) = linalg.qr(gaussian);
        using (q)
        using (r)
        using (var d = diag(tensor(eigenvalues, ScalarType.Float64)))
        using (var matrix = q.matmul(d).matmul(q.t()))
        using (var symmetric = (matrix + matrix.t()) / 2)
        {
            using var op = new DenseOperator(symmetric);
            var slq = Slq.Run(op, new SlqOptions { Probes = 40, Steps = n, Seed = 3 });
            var exact = CriticalPoints.FromEigenvalues(eigenvalues, 0);
            var estimated = CriticalPoints.FromSlq(slq, 0);
            foreach (var (e, s) in exact.Bands.Zip(estimated.Bands))
            {
                Assert.True(s.Error < 0.2, $"tau {s.Tau}: the stated error {s.Error} is too large for the test to mean anything");
                Assert.True(s.KernelError < 0.003, $"tau {s.Tau}: kernel error {s.KernelError}");
                Assert.True(Math.Abs(s.Negative - e.Negative) <= s.NegativeError, $"tau {s.Tau}: negative {s.Negative} vs {e.Negative} (error {s.Error})");
                Assert.True(Math.Abs(s.NearZero - e.NearZero) <= s.Error, $"tau {s.Tau}: near zero {s.NearZero} vs {e.NearZero} (error {s.Error})");
                Assert.True(Math.Abs(s.Positive - e.Positive) <= s.Error, $"tau {s.Tau}: positive {s.Positive} vs {e.Positive} (error {s.Error})");
                Assert.Equal(1, s.Negative + s.NearZero + s.Positive, 1e-9);
            }
            Assert.Equal(CriticalPointKind.Saddle, estimated.Kind);
            // With every step the nodes are the eigenvalues, each weighing about 1/60 per probe: the bracket is one node's weight.
            Assert.All(estimated.Bands, b => Assert.InRange(b.QuadratureNegativeError, 0.001, 0.08));
            // Few steps: one heavy node stands for the cluster at zero and the quadrature cannot place its mass: the error says so.
            var coarse = CriticalPoints.FromSlq(Slq.Run(op, new SlqOptions { Probes = 40, Steps = 4, Seed = 3 }), 0);
            Assert.True(coarse.Bands[1].Error > Math.Abs(coarse.Bands[1].NearZero - exact.Bands[1].NearZero),
                $"coarse: near zero {coarse.Bands[1].NearZero} vs {exact.Bands[1].NearZero}, error {coarse.Bands[1].Error}");
            Assert.True(coarse.Bands[1].QuadratureNegativeError + coarse.Bands[1].QuadraturePositiveError > 0.2, $"coarse quadrature error {coarse.Bands[1].QuadratureNegativeError} + {coarse.Bands[1].QuadraturePositiveError}");
            // A kernel far wider than tau straddles the edges: the stated error says so.
            var blurred = CriticalPoints.FromSlq(slq, 0, sigma: 0.05);
            Assert.True(blurred.Bands[1].KernelError > 0.3, $"kernel error {blurred.Bands[1].KernelError}");
        }
    }
}
