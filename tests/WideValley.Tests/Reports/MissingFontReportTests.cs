using System.Text.Json.Nodes;
using WideValley.Experiments;
using WideValley.Reports;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reports;

/// <summary>
/// The reproduce reports on a machine without the plotting font: their JSON, Markdown and tables are the result and are
/// written; the pictures are skipped, the Markdown links none, and the caller is warned once with what to install.
/// </summary>
public sealed class MissingFontReportTests
{
    static FinishedRun Run(string optimizer, long seed, params double[] errors)
    {
        var history = errors.Select((e, i) => new EpochMetrics
        {
            Epoch = i + 1, EffectiveEpochs = i + 1, TestError = e, TestLoss = e / 30, TrainLoss = 0.3, TrainEvalLoss = 0.2,
            Seconds = 10, TotalSeconds = 10 * (i + 1),
        }).ToList();
        var config = new RunConfig { Model = "lenet", Optimizer = optimizer, Seed = seed, Epochs = errors.Length };
        return new FinishedRun($"/runs/{optimizer}/seed-{seed}", config, "finished", 10 * errors.Length, errors.Length, history);
    }

    static ComparisonReportInput Input()
    {
        var rows = new[] { "lenet", "mnistfc" }.Select(name => new ComparisonRowResult(Table1.Row(name), "fashion-mnist", null,
            new ArmResult("adam", "Adam", false, [Run("adam", 1, 12, 10, 9)], 1),
            new ArmResult("entropy-sgd", "Entropy-SGD (L = 20)", true, [Run("entropy-sgd", 1, 11, 9.5, 9)], 1))).ToList();
        return new ComparisonReportInput("table1-test", "Table 1 test", ["Hand-made runs."], Budget.Paper, "widevalley reproduce table1", "test machine", rows);
    }

    [Fact]
    public void AComparisonReportWithoutTheFontWritesItsTextAndDataAndWarnsOnce()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var warnings = new List<string>();
        IReadOnlyList<string> files;
        using (new FontlessMachine()) files = ComparisonReport.Write(dir.Path, Input(), warnings.Add);

        var warning = Assert.Single(warnings);
        Assert.Contains($"apt-get install {PlotFonts.AptPackage}", warning);
        Assert.Equal(["table1-test.json", "table1-test.md"], files.Select(Path.GetFileName).ToArray());
        Assert.Empty(Directory.GetFiles(dir.Path, "*.png"));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.svg"));
        Assert.DoesNotContain(".png", File.ReadAllText(dir.File("table1-test.md")));
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(dir.File("table1-test.json"))));

        // With the font the same report draws a figure per row and links it.
        using var withFont = new TempDir();
        var drawn = ComparisonReport.Write(withFont.Path, Input(), warnings.Add);
        Assert.Single(warnings);
        Assert.Equal(2, drawn.Count(f => f.EndsWith(".png", StringComparison.Ordinal)));
        Assert.Contains("table1-test-lenet.png", File.ReadAllText(withFont.File("table1-test.md")));
    }

    [Fact]
    public void TheLocalEntropyToyReportWithoutTheFontLeavesTheFigureOutOfItsFilesAndMarkdown()
    {
        TestMachine.RequireDejaVu();
        var settings = LocalEntropyToySettings.For(Budget.Smoke) with { LangevinPoints = 2, LangevinChains = 2, Starts = 5, Replicas = 1, OuterSteps = 2 };
        var result = LocalEntropyToy.Run(settings);
        using var dir = new TempDir();
        var warnings = new List<string>();
        string summary;
        using (new FontlessMachine()) summary = LocalEntropyToyReport.Write(result, "widevalley reproduce local-entropy-toy", dir.Path, "toy", warnings.Add);

        Assert.Contains(PlotFonts.Family, Assert.Single(warnings));
        var listed = JsonNode.Parse(summary)!["files"]!.AsArray().Select(f => (string)f!).ToArray();
        Assert.Equal(LocalEntropyToyReport.Files("toy", withFigure: false), listed);
        Assert.Equal(listed.Order(), Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
        Assert.DoesNotContain("toy.png", File.ReadAllText(dir.File("toy.md")));
    }
}
