using TorchSharp;
using WideValley.SpinGlass;
using static TorchSharp.torch;
using static WideValley.Tests.SpinGlass.SpinGlassFixtures;

namespace WideValley.Tests.SpinGlass;

public sealed class SphericalPSpinGlassTests
{
    [Theory]
    [InlineData(CouplingDistribution.Gaussian)]
    [InlineData(CouplingDistribution.Bernoulli)]
    public void EnergyAtAFixedPointHasMeanZeroAndVarianceNOverCouplingDraws(CouplingDistribution distribution)
    {
        const int n = 8, draws = 3000;
        using var point = Sphere.RandomPoints(1, n, seed: 5, ScalarType.Float64);
        var energies = new double[draws];
        for (var d = 0; d < draws; d++)
        {
            using var glass = Glass(n, 3, seed: 1000 + d, distribution: distribution);
            using var e = glass.Energy(point);
            energies[d] = e.item<double>();
        }
        var mean = energies.Average();
        var variance = energies.Sum(e => (e - mean) * (e - mean)) / (draws - 1);
        // Var E = N^(−2)·Σ (w_i w_j w_k)² = N^(−2)·(|w|²)³ = N for any unit-variance couplings; Gaussian ones make E
        // normal, ±1 ones nearly so. The mean has standard error √(N/M), the sample variance relative error √(2/(M−1)).
        Assert.True(Math.Abs(mean) < 4 * Math.Sqrt((double)n / draws), $"mean {mean}");
        Assert.True(Math.Abs(variance / n - 1) < 4 * Math.Sqrt(2.0 / (draws - 1)), $"variance {variance}, N = {n}");
    }

    [Theory]
    [InlineData(2, 7, CouplingDistribution.Gaussian, false)]
    [InlineData(3, 6, CouplingDistribution.Gaussian, true)]
    [InlineData(3, 5, CouplingDistribution.Bernoulli, false)]
    [InlineData(4, 4, CouplingDistribution.Gaussian, true)]
    [InlineData(5, 3, CouplingDistribution.Bernoulli, true)]
    public void BatchedEnergyEqualsALoopOverEveryIndexTuple(int p, int n, CouplingDistribution distribution, bool withField)
    {
        var field = withField ? ExternalField.RandomDirection(0.7, seed: 3) : null;
        using var glass = Glass(n, p, seed: 11, field: field, distribution: distribution);
        using var raw = SphericalPSpinGlass.DrawCouplings(n, p, 11, distribution, ScalarType.Float64);
        var x = Values(raw);
        if (distribution == CouplingDistribution.Bernoulli) Assert.All(x, v => Assert.True(v is 1 or -1));
        using var points = Sphere.RandomPoints(5, n, seed: 2, ScalarType.Float64);
        using var energies = glass.Energy(points);
        for (var i = 0; i < 5; i++)
        {
            var expected = NaiveEnergy(x, n, p, Row(points, i), glass.Field);
            Assert.True(Math.Abs(energies[i].item<double>() - expected) < 1e-12 * Math.Max(1, Math.Abs(expected)), $"start {i}: {energies[i].item<double>()} vs {expected}");
        }
        // One point [N] gives a scalar equal to its row of the batch.
        using var single = glass.Energy(points[2]);
        Assert.Equal(0, single.dim());
        Assert.Equal(energies[2].item<double>(), single.item<double>(), 12);
    }

    [Fact]
    public void TheSeedFixesTheCouplings()
    {
        using var a = Glass(5, 3, seed: 17, dtype: ScalarType.Float32);
        using var b = Glass(5, 3, seed: 17, dtype: ScalarType.Float32);
        using var c = Glass(5, 3, seed: 18, dtype: ScalarType.Float32);
        Assert.Equal(0, MaxAbsDiff(a.SymmetrisedCouplings, b.SymmetrisedCouplings));
        Assert.True(MaxAbsDiff(a.SymmetrisedCouplings, c.SymmetrisedCouplings) > 0.1);
        using var symmetric = a.SymmetrisedCouplings.permute(2, 0, 1);
        Assert.True(MaxAbsDiff(a.SymmetrisedCouplings, symmetric) < 1e-6);
    }

    [Fact]
    public void GivenCouplingsGiveTheSameGlassAsTheSeed()
    {
        using var raw = SphericalPSpinGlass.DrawCouplings(6, 3, 21, dtype: ScalarType.Float64);
        using var fromSeed = Glass(6, 3, seed: 21);
        using var fromTensor = SphericalPSpinGlass.FromCouplings(raw, new SphericalPSpinGlassOptions { Size = 6, Order = 3, Dtype = ScalarType.Float64 });
        Assert.Equal(0, MaxAbsDiff(fromSeed.SymmetrisedCouplings, fromTensor.SymmetrisedCouplings));
        // The given tensor is not changed.
        using var again = SphericalPSpinGlass.DrawCouplings(6, 3, 21, dtype: ScalarType.Float64);
        Assert.Equal(0, MaxAbsDiff(raw, again));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void GradientMatchesCentralFiniteDifferencesInFloat64(int p)
    {
        const int n = 6;
        using var glass = Glass(n, p, seed: 4, field: ExternalField.RandomDirection(0.5, seed: 8));
        using var points = Sphere.RandomPoints(3, n, seed: 6, ScalarType.Float64);
        using var gradient = glass.Gradient(points);
        const double eps = 1e-6;
        for (var j = 0; j < n; j++)
        {
            using var shift = zeros([1, n], ScalarType.Float64);
            shift[0, j] = eps;
            using var plus = glass.Energy(points.add(shift));
            using var minus = glass.Energy(points.sub(shift));
            using var fd = plus.sub(minus).div(tensor(2 * eps, ScalarType.Float64));
            using var column = gradient.select(1, j);
            Assert.True(MaxAbsDiff(fd, column) < 1e-7, $"p = {p}, coordinate {j}: {MaxAbsDiff(fd, column):E2}");
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void EuclideanHessianMatchesFiniteDifferencesOfTheGradient(int p)
    {
        const int n = 5;
        using var glass = Glass(n, p, seed: 9, field: ExternalField.RandomDirection(0.3, seed: 1));
        using var points = Sphere.RandomPoints(1, n, seed: 10, ScalarType.Float64);
        using var w = points[0];
        using var hessian = glass.EuclideanHessian(w);
        const double eps = 1e-6;
        using var fd = zeros([n, n], ScalarType.Float64);
        for (var j = 0; j < n; j++)
        {
            using var shift = zeros(n, ScalarType.Float64);
            shift[j] = eps;
            using var plus = glass.Gradient(w.add(shift));
            using var minus = glass.Gradient(w.sub(shift));
            fd[.., j] = plus.sub(minus).div(tensor(2 * eps, ScalarType.Float64));
        }
        Assert.True(MaxAbsDiff(hessian, fd) < 1e-7 * Math.Max(1, MaxAbs(fd)), $"{MaxAbsDiff(hessian, fd):E2}");
        Assert.True(MaxAbsDiff(hessian, hessian.t()) < 1e-12);
    }

    [Theory]
    [InlineData(3, false)]
    [InlineData(3, true)]
    [InlineData(4, true)]
    public void TangentHessianSpectrumIsTheHessianOfTheRetractedEnergy(int p, bool withField)
    {
        // The metric projection onto the sphere is a second-order retraction, so the Hessian of y -> H(R(w + Q y)) at
        // y = 0 is the Riemannian Hessian at any w (not only at critical points). Q here is our own random basis.
        const int n = 6;
        using var glass = Glass(n, p, seed: 12, field: withField ? ExternalField.RandomDirection(0.8, seed: 2) : null);
        using var points = Sphere.RandomPoints(1, n, seed: 13, ScalarType.Float64);
        using var w = points[0];
        using var gen = new Generator(14);
        using var random = randn([n, n - 1], ScalarType.Float64, generator: gen);
        using var tangent = random.sub(w.unsqueeze(1).matmul(w.unsqueeze(0).matmul(random)).div(tensor((double)n, ScalarType.Float64)));
        var (q, _) = linalg.qr(tangent);
        double F(double[] y)
        {
            using var yt = tensor(y, ScalarType.Float64);
            using var moved = Sphere.Retract(w.add(q.matmul(yt)));
            using var e = glass.Energy(moved);
            return e.item<double>();
        }
        const double eps = 1e-4;
        var m = n - 1;
        var fd = new double[m * m];
        for (var a = 0; a < m; a++)
            for (var b = 0; b < m; b++)
            {
                double At(double da, double db)
                {
                    var y = new double[m];
                    y[a] += da;
                    y[b] += db;
                    return F(y);
                }
                fd[a * m + b] = (At(eps, eps) - At(eps, -eps) - At(-eps, eps) + At(-eps, -eps)) / (4 * eps * eps);
            }
        using var fdMatrix = tensor(fd, [m, m], ScalarType.Float64);
        using var fdSpectrum = linalg.eigvalsh(fdMatrix.add(fdMatrix.t()).div(tensor(2.0, ScalarType.Float64)));
        using var spectrum = glass.TangentHessianSpectrum(w);
        Assert.Equal(m, spectrum.shape[0]);
        Assert.True(MaxAbsDiff(spectrum, fdSpectrum) < 1e-5 * Math.Max(1, MaxAbs(fdSpectrum)), $"{MaxAbsDiff(spectrum, fdSpectrum):E2}");
        var negatives = Values(spectrum).Count(l => l < -1e-3);
        Assert.Equal(negatives, glass.Index(w));
        q.Dispose();
    }

    [Fact]
    public void Float32AgreesWithFloat64AndChunkedContractionsWithOneProduct()
    {
        using var raw = SphericalPSpinGlass.DrawCouplings(20, 3, 3, dtype: ScalarType.Float64);
        using var wide = SphericalPSpinGlass.FromCouplings(raw, new SphericalPSpinGlassOptions { Size = 20, Dtype = ScalarType.Float64 });
        using var narrow = SphericalPSpinGlass.FromCouplings(raw, new SphericalPSpinGlassOptions { Size = 20 });
        // 400 floats per row: a 4 kB workspace forces chunks of 2 rows.
        using var chunked = SphericalPSpinGlass.FromCouplings(raw, new SphericalPSpinGlassOptions { Size = 20, WorkspaceBytes = 4096 });
        using var points = Sphere.RandomPoints(7, 20, seed: 1, ScalarType.Float64);
        var (e64, g64) = wide.EnergyAndGradient(points);
        var (e32, g32) = narrow.EnergyAndGradient(points);
        var (ec, gc) = chunked.EnergyAndGradient(points);
        Assert.Equal(ScalarType.Float32, e32.dtype);
        Assert.True(MaxAbsDiff(e64, e32) < 1e-4 * MaxAbs(e64));
        Assert.True(MaxAbsDiff(g64, g32) < 1e-4 * MaxAbs(g64));
        Assert.True(MaxAbsDiff(e32, ec) < 1e-6 * MaxAbs(e64));
        Assert.True(MaxAbsDiff(g32, gc) < 1e-6 * MaxAbs(g64));
        foreach (var t in new[] { e64, g64, e32, g32, ec, gc }) t.Dispose();
    }

    [Fact]
    public void ProjectedGradientIsTangentAndTheRetractionLandsOnTheSphere()
    {
        using var glass = Glass(30, 3, seed: 2, dtype: ScalarType.Float32, field: ExternalField.RandomDirection(1, seed: 4));
        using var off = randn([9, 30]).mul(tensor(3.7f));
        using var on = Sphere.Retract(off);
        using var radii = on.square().sum(1);
        Assert.All(Values(radii), r => Assert.Equal(30, r, 3));
        using var projected = glass.ProjectedGradient(on);
        using var radial = projected.mul(on).sum(1);
        using var gradient = glass.Gradient(on);
        Assert.True(MaxAbs(radial) < 1e-4 * MaxAbs(gradient) * 30, $"{MaxAbs(radial)}");
    }

    [Fact]
    public void SplitPartsSumToTheCouplingsAndDifferFromEachOther()
    {
        using var glass = Glass(7, 3, seed: 5);
        using var split = glass.Split(4, seed: 6);
        Assert.Equal(4, split.Count);
        using var points = Sphere.RandomPoints(3, 7, seed: 7, ScalarType.Float64);
        var (energy, gradient) = glass.EnergyAndGradient(points);
        using var energySum = zeros_like(energy);
        using var gradientSum = zeros_like(gradient);
        var partEnergies = new List<double[]>();
        for (var i = 0; i < 4; i++)
        {
            var (pe, pg) = split.EnergyAndGradient(points, i);
            energySum.add_(pe);
            gradientSum.add_(pg);
            partEnergies.Add(Values(pe));
            pe.Dispose();
            pg.Dispose();
        }
        Assert.True(MaxAbsDiff(energySum, energy) < 1e-12 * Math.Max(1, MaxAbs(energy)));
        Assert.True(MaxAbsDiff(gradientSum, gradient) < 1e-12 * Math.Max(1, MaxAbs(gradient)));
        // The parts carry independent noise, not X/P each.
        Assert.True(Math.Abs(partEnergies[0][0] - partEnergies[1][0]) > 1e-3);
        Assert.Equal(1, split.PartOfStep(5));
        energy.Dispose();
        gradient.Dispose();
    }

    [Fact]
    public void AGlassTooLargeForMemoryIsRefusedBeforeAllocating()
    {
        TorchRuntime.EnsureInitialized();
        var e = Assert.Throws<InsufficientMemoryException>(() => SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 500, Order = 4 }));
        Assert.Contains("p = 4", e.Message);
        Assert.Contains("N = 500", e.Message);
        Assert.Contains("6.25E+10", e.Message);
        var plan = CouplingMemoryPlan.For(500, 3, ScalarType.Float32, 2, memoryLimitBytes: 2L << 30);
        Assert.True(plan.Fits);
        Assert.Equal(1e9, plan.PeakBytes);
        Assert.Throws<InsufficientMemoryException>(() => SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 50, Order = 3, MemoryLimitBytes = 100_000 }));
        using var glass = Glass(6, 3);
        Assert.Throws<InsufficientMemoryException>(() => glass.Split(3, 1, memoryLimitBytes: 1000));
    }

    [Fact]
    public void BadInputsGetSpecificErrors()
    {
        TorchRuntime.EnsureInitialized();
        Assert.Contains("p must be at least 2", Assert.Throws<ArgumentOutOfRangeException>(() =>
            SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 10, Order = 1 })).Message);
        Assert.Contains("N must be at least 2", Assert.Throws<ArgumentOutOfRangeException>(() =>
            SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 1 })).Message);
        Assert.Contains("length 3", Assert.Throws<ArgumentException>(() =>
            SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions { Size = 5, Field = ExternalField.Given([1.0, 2.0, 3.0]) })).Message);
        Assert.Throws<ArgumentException>(() => ExternalField.Given([1.0, double.NaN]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExternalField.RandomDirection(-1, 0));
        using var glass = Glass(5, 3);
        Assert.Throws<ArgumentException>(() => glass.Energy(zeros(4, ScalarType.Float64)));
        Assert.Contains("NaN", Assert.Throws<ArgumentException>(() => glass.Energy(full([2, 5], double.NaN, ScalarType.Float64))).Message);
        Assert.Throws<ArgumentException>(() => glass.TangentHessian(zeros([2, 5], ScalarType.Float64)));
        Assert.Throws<ArgumentException>(() => Sphere.Retract(zeros([2, 5])));
        Assert.Throws<ArgumentOutOfRangeException>(() => glass.Split(1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => glass.Index(ones(5, ScalarType.Float64), -1));
        using var raw = zeros([5, 4, 5]);
        Assert.Contains("[5, 4, 5]", Assert.Throws<ArgumentException>(() =>
            SphericalPSpinGlass.FromCouplings(raw, new SphericalPSpinGlassOptions { Size = 5 })).Message);
    }

    [Fact]
    public void WithFieldSharesTheCouplingsAndAddsTheFieldTerm()
    {
        using var glass = Glass(8, 3, seed: 3);
        var h = Enumerable.Range(0, 8).Select(i => 0.1 * i - 0.3).ToArray();
        using var withField = glass.WithField(ExternalField.Given(h));
        using var points = Sphere.RandomPoints(4, 8, seed: 2, ScalarType.Float64);
        using var plain = glass.Energy(points);
        using var shifted = withField.Energy(points);
        using var fieldTerm = points.matmul(tensor(h, ScalarType.Float64));
        Assert.True(MaxAbsDiff(shifted, plain.sub(fieldTerm)) < 1e-12);
        Assert.Equal(h, withField.Field!);
        Assert.Null(glass.Field);
    }
}
