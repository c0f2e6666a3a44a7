using MathNet.Numerics.LinearAlgebra;
using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

namespace WideValley.Tests.Data;

public class ZcaTests
{
    /// <summary>
    /// n samples of d correlated features: z A + b with z standard normal and A a random mixing matrix plus a diagonal,
    /// so every covariance eigenvalue is comfortably away from 0 and the ε-bias of the whitening stays small.
    /// </summary>
    static double[,] Correlated(int n, int d, int seed)
    {
        var random = new Random(seed);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var mix = new double[d, d];
        for (var i = 0; i < d; i++)
            for (var j = 0; j < d; j++)
                mix[i, j] = 0.6 * Normal() + (i == j ? 1.5 : 0);
        var offset = Enumerable.Range(0, d).Select(j => 3.0 * j - 10).ToArray();
        var x = new double[n, d];
        var z = new double[d];
        for (var s = 0; s < n; s++)
        {
            for (var k = 0; k < d; k++) z[k] = Normal();
            for (var j = 0; j < d; j++)
            {
                var v = offset[j];
                for (var k = 0; k < d; k++) v += z[k] * mix[k, j];
                x[s, j] = v;
            }
        }
        return x;
    }

    static Matrix<double> Covariance(Matrix<double> x)
    {
        var mean = x.ColumnSums() / x.RowCount;
        var centred = x - Matrix<double>.Build.Dense(x.RowCount, x.ColumnCount, (_, j) => mean[j]);
        return centred.TransposeThisAndMultiply(centred) / (x.RowCount - 1);
    }

    /// <summary>The reference whitening computed independently with MathNet: W = U diag(1 / (√λ + ε)) Uᵀ.</summary>
    static (Vector<double> Mean, Matrix<double> W) ReferenceZca(Matrix<double> x, double epsilon)
    {
        var evd = Covariance(x).Evd(Symmetricity.Symmetric);
        var scale = evd.EigenValues.Map(l => 1 / (Math.Sqrt(Math.Max(l.Real, 0)) + epsilon));
        var u = evd.EigenVectors;
        return (x.ColumnSums() / x.RowCount, u * Matrix<double>.Build.DiagonalOfDiagonalVector(scale) * u.Transpose());
    }

    static Matrix<double> ToMatrix(Tensor t)
    {
        var values = t.to(ScalarType.Float64).data<double>().ToArray();
        var (rows, columns) = ((int)t.shape[0], (int)t.shape[1]);
        return Matrix<double>.Build.Dense(rows, columns, (i, j) => values[i * columns + j]);
    }

    [Theory]
    [InlineData(8, 1)]
    [InlineData(12, 2)]
    [InlineData(16, 3)]
    public void WhitenedTrainingCovarianceIsTheIdentity(int d, int seed)
    {
        using var scope = NewDisposeScope();
        var train = from_array(Correlated(2000, d, seed)).to(ScalarType.Float32);
        using var zca = ZcaWhitening.Fit(train, ZcaWhitening.DefaultEpsilon);
        var whitened = zca.Apply(train);
        Assert.Equal(ScalarType.Float32, whitened.dtype);
        var covariance = Covariance(ToMatrix(whitened));

        // Exactly, the whitened covariance is U diag(λ / (√λ + ε)²) Uᵀ, i.e. 1 − 2ε/√λ + O(ε²) per direction; the
        // float32 output adds relative rounding of ~1e-7 per value, far below 1e-5 after averaging 2000 samples.
        var lambdaMin = zca.Eigenvalues.min().item<double>();
        Assert.True(lambdaMin > 0.05, $"test data should be well conditioned, smallest eigenvalue {lambdaMin}");
        var tolerance = 2 * ZcaWhitening.DefaultEpsilon / Math.Sqrt(lambdaMin) + 1e-5;
        var deviation = (covariance - Matrix<double>.Build.DenseIdentity(d)).Enumerate().Max(Math.Abs);
        Assert.True(deviation < tolerance, $"max |cov - I| = {deviation:E3}, tolerance {tolerance:E3}");
        // and the centred output has mean zero
        Assert.True(ToMatrix(whitened).ColumnSums().AbsoluteMaximum() / 2000 < 1e-5);
    }

    [Fact]
    public void WithoutRegulariserTheCovarianceIsIdentityToFloatPrecision()
    {
        using var scope = NewDisposeScope();
        var train = from_array(Correlated(2000, 10, 7));
        using var zca = ZcaWhitening.Fit(train, epsilon: 0);
        var covariance = Covariance(ToMatrix(zca.Apply(train, ScalarType.Float64)));
        Assert.True((covariance - Matrix<double>.Build.DenseIdentity(10)).Enumerate().Max(Math.Abs) < 1e-10);
    }

    [Fact]
    public void MatrixAndMeanAgreeWithAnIndependentComputation()
    {
        using var scope = NewDisposeScope();
        var data = Correlated(2000, 12, 11);
        using var zca = ZcaWhitening.Fit(from_array(data), 1e-3);
        var (mean, w) = ReferenceZca(Matrix<double>.Build.DenseOfArray(data), 1e-3);
        var actualW = ToMatrix(zca.Matrix);
        Assert.True((actualW - w).Enumerate().Max(Math.Abs) < 1e-9 * w.Enumerate().Max(Math.Abs));
        var actualMean = zca.Mean.data<double>().ToArray();
        for (var j = 0; j < 12; j++) Assert.Equal(mean[j], actualMean[j], 1e-9);
        Assert.True((actualW - actualW.Transpose()).Enumerate().Max(Math.Abs) < 1e-12, "W must be symmetric");
    }

    [Fact]
    public void TheTransformFittedOnTrainingIsWhatIsAppliedToTest()
    {
        using var scope = NewDisposeScope();
        var train = Correlated(2000, 9, 21);
        var test = Correlated(300, 9, 22);
        for (var s = 0; s < 300; s++)
            for (var j = 0; j < 9; j++) test[s, j] = 2 * test[s, j] + 5; // a different distribution: fitting on it would differ

        using var zca = ZcaWhitening.Fit(from_array(train), ZcaWhitening.DefaultEpsilon);
        var applied = ToMatrix(zca.Apply(from_array(test), ScalarType.Float64));

        var (mean, w) = ReferenceZca(Matrix<double>.Build.DenseOfArray(train), ZcaWhitening.DefaultEpsilon);
        var testMatrix = Matrix<double>.Build.DenseOfArray(test);
        var expected = (testMatrix - Matrix<double>.Build.Dense(300, 9, (_, j) => mean[j])) * w;
        Assert.True((applied - expected).Enumerate().Max(Math.Abs) < 1e-8);

        var (testMean, testW) = ReferenceZca(testMatrix, ZcaWhitening.DefaultEpsilon);
        var fittedOnTest = (testMatrix - Matrix<double>.Build.Dense(300, 9, (_, j) => testMean[j])) * testW;
        Assert.True((applied - fittedOnTest).Enumerate().Max(Math.Abs) > 0.1, "applying a test-fitted whitening must give something else");
    }

    [Fact]
    public void ChunkingDoesNotChangeTheResult()
    {
        using var scope = NewDisposeScope();
        var x = from_array(Correlated(500, 8, 5));
        using var whole = ZcaWhitening.Fit(x, 1e-4, chunkRows: 4096);
        using var pieces = ZcaWhitening.Fit(x, 1e-4, chunkRows: 7);
        Assert.True((whole.Matrix - pieces.Matrix).abs().max().item<double>() < 1e-10);
        Assert.True((whole.Apply(x, ScalarType.Float64) - pieces.Apply(x, ScalarType.Float64, chunkRows: 13)).abs().max().item<double>() < 1e-9);
    }

    [Fact]
    public void RejectsBadInputs()
    {
        using var scope = NewDisposeScope();
        // A private generator: drawing from the global one would disturb tests elsewhere that seed it.
        using var generator = new Generator(17);
        Tensor randn(long rows, long columns, ScalarType dtype = ScalarType.Float32) =>
            torch.randn(rows, columns, dtype: dtype, generator: generator);
        Assert.Throws<ArgumentException>(() => ZcaWhitening.Fit(ones(1, 4)));
        Assert.Throws<ArgumentException>(() => ZcaWhitening.Fit(ones(4)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ZcaWhitening.Fit(randn(5, 3), -1));
        var singular = Assert.Throws<ArgumentException>(() => ZcaWhitening.Fit(randn(3, 6, dtype: ScalarType.Float64), 0));
        Assert.Contains("singular", singular.Message);
        using var zca = ZcaWhitening.Fit(randn(10, 3));
        Assert.Throws<ArgumentException>(() => zca.Apply(randn(4, 5)));
    }

    [Fact]
    public void ContrastNormalisationGivesEachRowMeanZeroAndUnitSampleStd()
    {
        using var scope = NewDisposeScope();
        var random = new Random(3);
        var rows = new double[6, 50];
        for (var i = 0; i < 6; i++)
            for (var j = 0; j < 50; j++)
                rows[i, j] = i == 5 ? 17 : random.Next(256) * (i + 1); // the last row is a constant image
        var normalised = ContrastNormalization.Global(from_array(rows).to(ScalarType.Byte).to(ScalarType.Int32), chunkRows: 4);
        Assert.Equal(ScalarType.Float32, normalised.dtype);
        var values = ToMatrix(normalised);
        for (var i = 0; i < 5; i++)
        {
            var row = values.Row(i);
            var mean = row.Average();
            var std = Math.Sqrt(row.Sum(v => (v - mean) * (v - mean)) / (row.Count - 1));
            Assert.Equal(0, mean, 1e-6);
            Assert.Equal(1, std, 1e-6);
        }
        // A constant row has std 0 < 1e-8: it is centred and left at zero rather than divided by zero.
        Assert.All(values.Row(5), v => Assert.Equal(0.0, v));

        // Exact values against the formula, for one row.
        var source = Enumerable.Range(0, 50).Select(j => (double)(byte)rows[0, j]).ToArray();
        var m = source.Average();
        var s = Math.Sqrt(source.Sum(v => (v - m) * (v - m)) / 49);
        for (var j = 0; j < 50; j++) Assert.Equal((float)((source[j] - m) / s), (float)values[0, j]);
    }
}
