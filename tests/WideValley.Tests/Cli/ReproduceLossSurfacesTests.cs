using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley reproduce loss-surfaces`, run in-process on a tiny subset as CI runs it.</summary>
public class ReproduceLossSurfacesTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => LandscapeCliTests.Run(["reproduce", "loss-surfaces", .. args]);

    static string[] Tiny(TempDir dir) =>
    [
        "--budget", "smoke", "--sizes", "3,4", "--network-count", "4", "--epochs", "1", "--max-train-samples", "100",
        "--fashion-mnist-dir", TestMachine.FashionMnistFolder, "--out", dir.File("out"), "--runs", dir.File("runs"),
    ];

    [Fact]
    public void SmokeWritesTheReportWithItsKeysAndVerdictRows()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir("widevalley-loss-surfaces-cli");
        var (code, output, err) = Run(Tiny(dir));
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}\n{output}");
        const string stem = "loss-surfaces-smoke";
        foreach (var file in new[] { $"{stem}.md", $"{stem}.json", $"{stem}.csv", $"{stem}-histograms.png", $"{stem}-histograms.svg", $"{stem}-spread.png", $"{stem}-spread.svg" })
            Assert.True(File.Exists(dir.File(Path.Combine("out", file))), $"{file} was not written");
        Assert.Empty(dir.Leftovers());
        var json = ReproduceReportChecks.ReadJson(dir.File($"out/{stem}.json"));
        foreach (var key in new[] { "report", "budget", "command", "machine", "settings", "data", "fit", "sizes", "index", "verdicts", "complete" })
            Assert.True(json.ContainsKey(key), $"the JSON lacks '{key}'");
        Assert.Equal("smoke", (string)json["budget"]!);
        Assert.Equal(2, json["sizes"]!.AsArray().Count);
        Assert.Equal(4, (int)json["sizes"]![0]!["networks"]!);
        var verdicts = json["verdicts"]!.AsObject();
        Assert.NotNull((string?)verdicts["narrowing_histograms"]);
        Assert.NotNull((string?)verdicts["correlation_falls_with_n1"]);
        var md = File.ReadAllText(dir.File($"out/{stem}.md"));
        Assert.Contains("| 2. the histogram of the scaled test loss narrows as n1 grows |", md);
        Assert.Contains("| 3. the train/test Pearson correlation falls with n1", md);
        ReproduceReportChecks.AssertImagesExist(dir.File($"out/{stem}.md"));
        Assert.Contains("narrowing histograms:", output);

        // Again: everything is read from the work folder.
        var (again, output2, err2) = Run(Tiny(dir));
        Assert.True(again == ExitCodes.Ok, $"exit {again}: {err2}");
        Assert.Contains("finished earlier", output2);
    }

    [Theory]
    [InlineData(new[] { "--network-count", "0" }, "--network-count")]
    [InlineData(new[] { "--network-count", "1" }, "--network-count")]
    [InlineData(new[] { "--epochs", "0" }, "--epochs")]
    [InlineData(new[] { "--sizes", "25,x" }, "--sizes")]
    [InlineData(new[] { "--sizes", "25,25" }, "--sizes")]
    [InlineData(new[] { "--lr", "-1" }, "--lr")]
    [InlineData(new[] { "--batch-size", "0" }, "--batch-size")]
    [InlineData(new[] { "--max-train-samples", "0" }, "--max-train-samples")]
    [InlineData(new[] { "--budget", "huge" }, "--budget")]
    [InlineData(new[] { "--fashion-mnist-dir", "/no/such/folder" }, "--fashion-mnist-dir")]
    public void BadOptionsExitWithCode2NamingTheOption(string[] args, string option)
    {
        using var dir = new TempDir("widevalley-loss-surfaces-cli");
        var (code, _, err) = Run([.. args, "--out", dir.File("out"), "--runs", dir.File("runs")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(option, err);
        Assert.False(Directory.Exists(dir.File("runs")), "nothing may be computed for bad options");
    }
}
