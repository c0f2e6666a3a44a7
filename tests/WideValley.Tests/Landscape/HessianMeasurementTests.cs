using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Tests.Support;
using static WideValley.Tests.Landscape.LandscapeFixtures;

namespace WideValley.Tests.Landscape;

public sealed class HessianMeasurementTests
{
    [Fact]
    public void TheInertiaRouteCountsWhatTheFullSpectrumCountsAndTheWriterPutsHessianJsonLast()
    {
        var model = TanhNet(hidden: 5);
        var data = RandomSet([20]);
        using var dir = new TempDir();
        using var hvp = new Hvp(model, data);
        var settings = new HessianMeasurementSettings
        {
            Method = HessianMethod.Exact, ColumnsFolder = dir.File("columns"), Workers = 1, MemoryLimitBytes = 1L << 30, Layerwise = true,
        };
        var full = HessianMeasurement.Measure(hvp, settings);
        Assert.Equal(hvp.Dimension, full.Eigenvalues!.Length);
        Assert.Equal(full.Eigenvalues.Sum(), full.Trace!.Value, 10);
        Assert.Equal(dir.File("columns"), full.ColumnFolderToDelete);

        var inertia = HessianMeasurement.Measure(hvp, settings with { Eigen = EigenRoute.Inertia, BandIndices = [1, 3], ColumnsFolder = dir.File("columns2") });
        Assert.Null(inertia.Eigenvalues);
        foreach (var i in new[] { 1, 3 })
            Assert.Equal(full.Eigenvalues.Count(l => Math.Abs(l) < HessianMeasurement.Thresholds[i]) / (double)hvp.Dimension, inertia.Fractions![i]);
        Assert.True(double.IsNaN(inertia.Fractions![0]));
        Assert.Equal(full.LambdaMax!.Value, inertia.LambdaMax!.Value, 8);
        Assert.Equal(full.LambdaMin!.Value, inertia.LambdaMin!.Value, 8);

        var outDir = dir.File("out");
        var text = HessianMeasurement.Write(outDir, full, new JsonObject { ["model"] = "tanh" }, ["spectrum.png"]);
        var json = JsonNode.Parse(text)!.AsObject();
        Assert.Equal("exact", (string)json["method"]!);
        Assert.Equal(hvp.Dimension, (long)json["n_params"]!);
        Assert.Equal("tanh", (string)json["model"]!);
        Assert.Equal(["layers.csv", "eigenvalues.csv", "spectrum.png", "hessian.json"], json["files"]!.AsArray().Select(f => (string)f!).ToArray());
        Assert.Equal("hessian.json", (string)json["files"]!.AsArray()[^1]!);
        Assert.Equal("index,eigenvalue", File.ReadLines(Path.Combine(outDir, "eigenvalues.csv")).First());
        Assert.Equal("layer,params,trace,trace_stderr", File.ReadLines(Path.Combine(outDir, "layers.csv")).First());
        Assert.False(Directory.Exists(dir.File("columns")), "the column store is deleted once the outputs are written");
    }

    [Fact]
    public void ASettingThatDoesNotFitTheOperatorNamesTheSetting()
    {
        using var hvp = new Hvp(TanhNet(hidden: 2), RandomSet([6]));
        var e = Assert.Throws<HessianSettingException>(() => HessianMeasurement.Measure(hvp, new HessianMeasurementSettings { Method = HessianMethod.Lanczos, Top = 500 }));
        Assert.Equal("Top", e.Setting);
        Assert.Equal("500", e.Value);
        Assert.Contains($"n = {hvp.Dimension}", e.Message);
    }
}
