using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley hessian --classify` on a user's trained run: the classification agrees with the eigenvalues it printed; usage errors.</summary>
public class HessianClassifyTests
{
    static string TrainTinyRun(TempDir dir)
    {
        var run = dir.File("run");
        var (code, _, err) = InProcessCli.Run("train", "--model", "small-mnistfc", "--optimizer", "adam", "--max-train-samples", "200", "--epochs", "1",
            "--batch-size", "100", "--threads", "1", "--no-tensorboard", "--out", run);
        Assert.True(code == ExitCodes.Ok, err);
        return run;
    }

    [Fact]
    public void ExactClassificationCountsTheEigenvaluesAndTheSlqOneStatesItsError()
    {
        using var dir = new TempDir();
        var run = TrainTinyRun(dir);
        var (code, output, err) = InProcessCli.Run("hessian", "--checkpoint", run, "--method", "exact", "--params", "body.fc2", "--samples", "100",
            "--threads", "1", "--classify", "--outliers", "10", "--out", dir.File("exact"), "--json");
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output)!.AsObject();
        var eigenvalues = json["eigenvalues"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var point = json["classification"]!["point"]!;
        Assert.Equal("exact", point["source"]!.GetValue<string>());
        Assert.Equal(eigenvalues.Length, point["dimension"]!.GetValue<long>());
        var bands = point["bands"]!.AsArray();
        foreach (var band in bands)
        {
            var tau = band!["tau"]!.GetValue<double>();
            Assert.Equal(eigenvalues.Count(l => l < -tau) / (double)eigenvalues.Length, band["negative"]!.GetValue<double>(), 1e-12);
            Assert.Equal(eigenvalues.Count(l => Math.Abs(l) <= tau) / (double)eigenvalues.Length, band["near_zero"]!.GetValue<double>(), 1e-12);
        }
        Assert.True(point["gradient_norm"]!.GetValue<double>() > 0);
        // Trained one epoch: the gradient is far from zero, so the verdict cannot call it a critical point.
        Assert.Equal("not a critical point", point["kind"]!.GetValue<string>());
        var semicircle = json["classification"]!["semicircle"]!;
        Assert.Equal("top C = 10", semicircle["outlier_rule"]!.GetValue<string>());
        Assert.Equal(eigenvalues.Length - 10, semicircle["bulk"]!.GetValue<long>());
        Assert.Equal(["semicircle", "gaussian"], semicircle["candidates"]!.AsArray().Take(2).Select(c => c!["name"]!.GetValue<string>()));
        Assert.Contains("classification.json", json["files"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal("hessian.json", json["files"]!.AsArray()[^1]!.GetValue<string>());
        // The folder's hessian.json is what was printed; classification.json holds the same classification.
        Assert.Equal(output.Trim(), File.ReadAllText(Path.Combine(dir.File("exact"), "hessian.json")).Trim());
        var file = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("exact"), "classification.json")))!;
        Assert.True(JsonNode.DeepEquals(file["point"], point));

        var slq = InProcessCli.Run("hessian", "--checkpoint", run, "--method", "slq", "--probes", "3", "--steps", "20", "--samples", "100", "--threads", "1",
            "--classify", "--out", dir.File("slq"));
        Assert.True(slq.Code == ExitCodes.Ok, slq.Err);
        Assert.Contains("not a critical point (slq, n = 50,890)", slq.Out);
        Assert.Contains("semicircle (slq)", slq.Out);
        var slqPoint = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("slq"), "classification.json")))!["point"]!;
        Assert.All(slqPoint["bands"]!.AsArray(), b => Assert.True(b!["error"]!.GetValue<double>() > 0, "an SLQ fraction states its error"));
    }

    [Theory]
    [InlineData(new[] { "--method", "trace", "--classify" }, "--classify needs every eigenvalue or a density")]
    [InlineData(new[] { "--method", "exact", "--eigen", "inertia", "--classify" }, "--classify needs every eigenvalue or a density")]
    [InlineData(new[] { "--method", "slq", "--outliers", "3" }, "--outliers applies to --classify")]
    [InlineData(new[] { "--method", "slq", "--classify", "--outliers", "-1" }, "--outliers must be zero or positive, got -1")]
    public void MisusedFlagsExitWithCode2(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = InProcessCli.Run(["hessian", "--checkpoint", dir.File("no-run"), .. args]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }
}
