using TorchSharp;
using WideValley.SpinGlass;
using static TorchSharp.torch;

namespace WideValley.Tests.SpinGlass;

/// <summary>Small glasses and float64 references shared by the spin-glass tests.</summary>
internal static class SpinGlassFixtures
{
    public static SphericalPSpinGlass Glass(int n, int p, long seed = 1, ScalarType dtype = ScalarType.Float64, ExternalField? field = null,
        CouplingDistribution distribution = CouplingDistribution.Gaussian, long? workspace = null)
    {
        TorchRuntime.EnsureInitialized();
        return SphericalPSpinGlass.Create(new SphericalPSpinGlassOptions
        {
            Size = n, Order = p, Seed = seed, Dtype = dtype, Field = field, Distribution = distribution,
            WorkspaceBytes = workspace ?? 256L << 20,
        });
    }

    /// <summary>H_h(w) by a plain loop over every index tuple of the raw couplings: N^(−(p−1)/2) Σ X Π w − ⟨h, w⟩.</summary>
    public static double NaiveEnergy(double[] couplings, int n, int p, double[] w, double[]? field)
    {
        var sum = 0.0;
        var index = new int[p];
        for (long flat = 0; flat < couplings.Length; flat++)
        {
            var rest = flat;
            for (var s = p - 1; s >= 0; s--)
            {
                index[s] = (int)(rest % n);
                rest /= n;
            }
            var product = couplings[flat];
            foreach (var i in index) product *= w[i];
            sum += product;
        }
        var energy = Math.Pow(n, -(p - 1) / 2.0) * sum;
        if (field is not null) for (var i = 0; i < n; i++) energy -= field[i] * w[i];
        return energy;
    }

    public static double[] Row(Tensor points, int i)
    {
        using var row = points[i].to(ScalarType.Float64, CPU);
        return row.data<double>().ToArray();
    }

    public static double[] Values(Tensor t)
    {
        using var c = t.to(ScalarType.Float64, CPU).contiguous();
        return c.data<double>().ToArray();
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = a.to(ScalarType.Float64, CPU).sub(b.to(ScalarType.Float64, CPU)).abs().max();
        return d.item<double>();
    }

    public static double MaxAbs(Tensor a)
    {
        using var d = a.to(ScalarType.Float64, CPU).abs().max();
        return d.item<double>();
    }
}
