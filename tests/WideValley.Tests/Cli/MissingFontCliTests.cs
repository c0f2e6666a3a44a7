using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Reports;
using WideValley.Tests.Support;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Cli;

/// <summary>
/// `widevalley hessian` and `widevalley landscape` on a machine without the plotting font (played by
/// <see cref="FontlessMachine"/>): the measurement's JSON and CSV are written, the PNG/SVG are not (and not listed),
/// and stderr carries one warning that names the font and how to install it or point at it.
/// </summary>
public sealed class MissingFontCliTests
{
    private static readonly string[] TinyConvNet =
        ["--model-file", Fixture("tiny_convnet.pt"), "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"), "--threads", "1", "--json"];

    private static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    private static void AssertOneFontWarning(string err, string plot)
    {
        var warnings = err.Split('\n').Where(line => line.Contains("warning", StringComparison.Ordinal)).ToArray();
        var warning = Assert.Single(warnings);
        Assert.Contains($"{plot}.png", warning);
        Assert.Contains($"\"{PlotFonts.Family}\"", warning);
        Assert.Contains($"apt-get install {PlotFonts.AptPackage}", warning);
        Assert.Contains(PlotFonts.FontFolderVariable, warning);
    }

    [Fact]
    public void HessianWritesItsJsonAndTablesWithoutThePlotAndWarnsOnce()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var outDir = dir.File("lanczos");
        int code;
        string output, err;
        using (new FontlessMachine())
            (code, output, err) = Run(["hessian", .. TinyConvNet, "--method", "lanczos", "--top", "2", "--which", "largest", "--out", outDir]);
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!.AsObject();
        Assert.True((double)json["lambda_max"]! > 0);
        Assert.True(File.Exists(Path.Combine(outDir, "hessian.json")));
        Assert.Equal(json.ToJsonString(), JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "hessian.json")))!.ToJsonString());
        Assert.Equal(3, File.ReadAllLines(Path.Combine(outDir, "eigenvalues.csv")).Length);
        Assert.False(File.Exists(Path.Combine(outDir, "eigenvalues.png")));
        Assert.False(File.Exists(Path.Combine(outDir, "eigenvalues.svg")));
        Assert.DoesNotContain("eigenvalues.png", File.ReadAllText(Path.Combine(outDir, "hessian.json")));
        AssertOneFontWarning(err, "eigenvalues");
    }

    [Fact]
    public void LandscapeWritesItsJsonAndCsvWithoutThePlotAndWarnsOnce()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var outDir = dir.File("1d");
        int code;
        string output, err;
        using (new FontlessMachine())
            (code, output, err) = Run(["landscape", .. TinyConvNet, "--slice", "1d", "--points", "3", "--out", outDir]);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Equal(3, JsonNode.Parse(output.Trim())!["loss"]!.AsArray().Count);
        Assert.True(File.Exists(Path.Combine(outDir, "landscape.json")));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(outDir, "1d.csv")).Length);
        Assert.False(File.Exists(Path.Combine(outDir, "1d.png")));
        Assert.False(File.Exists(Path.Combine(outDir, "1d.svg")));
        Assert.DoesNotContain("1d.png", File.ReadAllText(Path.Combine(outDir, "landscape.json")));
        AssertOneFontWarning(err, "1d");
    }
}
