using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using WideValley.Experiments;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reports;

/// <summary>
/// Committed reports are read on other machines: they name their inputs by what they are (file name, size, SHA-256)
/// and their runs relative to the reproduction's folder, never by a path of the machine that made them.
/// </summary>
public class ReportPathsTests
{
    static FinishedRun Run(string folder, string optimizer, long seed)
    {
        var history = new List<EpochMetrics>
        {
            new() { Epoch = 1, EffectiveEpochs = 1, TestError = 10, TestLoss = 0.3, TrainLoss = 0.3, TrainEvalLoss = 0.2, Seconds = 10, TotalSeconds = 10 },
        };
        var config = new RunConfig { Model = "lenet", Optimizer = optimizer, Seed = seed, Epochs = 1 };
        return new FinishedRun(folder, config, "finished", 10, 1, history);
    }

    [Fact]
    public void ComparisonReportNamesTheCorpusByNameSizeAndHashAndRunsRelativeToTheirFolder()
    {
        TestMachine.RequireDejaVu();
        using var machine = new TempDir();
        var corpus = machine.WriteText("private/corpora/fortunes-all.txt", "a fortune\n%\nanother one\n");
        var runs = machine.File("private/runs/table1-paper");
        var row = new ComparisonRowResult(Table1.Row("lenet"), "fashion-mnist", null,
            new ArmResult("adam", "Adam", false, [Run(Path.Combine(runs, "lenet", "adam", "seed-1"), "adam", 1)], 1),
            new ArmResult("entropy-sgd", "Entropy-SGD", true, [Run(Path.Combine(runs, "lenet", "entropy-sgd", "seed-1"), "entropy-sgd", 1)], 1));
        var input = new ComparisonReportInput("table1-test", "Table 1 test", [$"**char-LSTM corpus.** `{corpus}`, split 80/10/10."], Budget.Paper,
            $"widevalley reproduce table1 --rows lenet --corpus {corpus}", "test machine", [row]);

        using var output = new TempDir();
        ComparisonReport.Write(output.Path, input);
        var md = File.ReadAllText(output.File("table1-test.md"));
        var text = File.ReadAllText(output.File("table1-test.json"));
        Assert.DoesNotContain(machine.Path, md);
        Assert.DoesNotContain(machine.Path, text);

        var bytes = File.ReadAllBytes(corpus);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        Assert.Contains("widevalley reproduce table1 --rows lenet --corpus fortunes-all.txt\n", md);
        Assert.Contains("**char-LSTM corpus.** `fortunes-all.txt`, split", md);
        Assert.Contains($"`fortunes-all.txt`: a file of {bytes.Length} bytes, SHA-256 {sha}", md);

        var json = JsonNode.Parse(text)!.AsObject();
        Assert.Equal("widevalley reproduce table1 --rows lenet --corpus fortunes-all.txt", (string?)json["command"]);
        var described = json["inputs"]![0]!;
        Assert.Equal("fortunes-all.txt", (string?)described["name"]);
        Assert.Equal(bytes.Length, (long)described["bytes"]!);
        Assert.Equal(sha, (string?)described["sha256"]);
        Assert.Equal("adam/seed-1", (string?)json["rows"]![0]!["baseline"]!["runs"]![0]!["folder"]);
        Assert.Equal("entropy-sgd/seed-1", (string?)json["rows"]![0]!["entropy"]!["runs"]![0]!["folder"]);
    }

    [Fact]
    public void PathsUnderUsrAreKeptBecauseEveryDebianMachineHasThem()
    {
        var (command, inputs) = ReportHeader.Portable("widevalley reproduce hessian-universality --corpus /usr/share/games/fortunes/fortunes");
        Assert.Equal("widevalley reproduce hessian-universality --corpus /usr/share/games/fortunes/fortunes", command);
        Assert.Empty(inputs);
    }

    [Theory]
    [InlineData(new[] { "/r/mnistfc/adam/seed-1", "/r/lenet/adam/seed-2" }, "/r")]
    [InlineData(new[] { "/r/mnistfc/adam/seed-1" }, "/r/mnistfc/adam")]
    [InlineData(new[] { "/runs/adam/seed-1", "/runs/adam/seed-2" }, "/runs/adam")]
    public void RunsAreNamedRelativeToTheirCommonFolder(string[] folders, string root) =>
        Assert.Equal(root, ComparisonReport.RunsRoot(folders));

    [Fact]
    public void CommittedReportsNameNoFolderOfTheMachineThatMadeThem()
    {
        var results = Path.Combine(RepositoryRoot(), "docs", "results");
        var privatePath = new Regex(@"(?<![\w.])/(work|tmp|root|home|runs|mnt|srv|var/tmp)/", RegexOptions.CultureInvariant);
        var offenders = Directory.EnumerateFiles(results)
            .Where(f => f.EndsWith(".md", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetFileName(f), Line: i + 1, Text: line)))
            .Where(x => privatePath.IsMatch(x.Text))
            .Select(x => $"{x.File}:{x.Line}: {x.Text.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "reports name machine-specific paths:\n" + string.Join("\n", offenders));
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "WideValley.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no WideValley.slnx above {AppContext.BaseDirectory}");
    }
}
