using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley reproduce level-sets` in-process, end to end, and its refusals.</summary>
public class LevelSetsCommandTests
{
    const string Stem = "level-sets-smoke";

    static (int Code, string Out, string Err) Run(params string[] args) => LandscapeCliTests.Run(["reproduce", "level-sets", .. args]);

    /// <summary>The smoke budget cut further: one level per toy, one pair, 200 curve steps (seconds).</summary>
    static string[] Tiny(TempDir dir, params string[] extra) => TinyWith(dir, 200, extra);

    static string[] TinyWith(TempDir dir, int curveSteps, params string[] extra) =>
    [
        "--budget", "smoke", "--quadratic-levels", "0.125", "--cubic-levels", "0.32", "--pairs", "1", "--curve-steps", curveSteps.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--out", dir.File("out"), "--runs", dir.File("runs"), .. extra,
    ];

    static string Pieces(TempDir dir) => Path.Combine(dir.File("runs"), "level-sets-smoke-seed-1");

    [Fact]
    public void SmokeRunsTheToysWritesTheReportAndTheSecondRunReusesThePieces()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir("wv-levelsets-cli");
        // --part toys: the networks' part is another helper's and needs its data; it is tested with its runner.
        var (code, output, err) = Run(Tiny(dir, "--part", "toys", "--json"));
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}\n{output}");
        foreach (var file in LevelSetsReport.Files(Stem, ["quadratic", "cubic"])) Assert.True(File.Exists(dir.File(Path.Combine("out", file))), $"{file} was not written");
        Assert.Empty(dir.Leftovers());

        var json = JsonNode.Parse(Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)))!.AsObject();
        Assert.Equal(json.ToJsonString(), ReproduceReportChecks.ReadJson(dir.File($"out/{Stem}.json")).ToJsonString());
        Assert.Equal(("smoke", "level-sets"), ((string)json["budget"]!, (string)json["experiment"]!));
        Assert.Equal("widevalley reproduce level-sets --budget smoke --part toys --pairs 1 --quadratic-levels 0.125 --cubic-levels 0.32 --curve-steps 200", (string)json["command"]!);
        Assert.Equal(["quadratic", "cubic"], json["tasks"]!.AsArray().Select(t => (string)t!["task"]!));
        foreach (var task in json["tasks"]!.AsArray())
        {
            var level = Assert.Single(task!["levels"]!.AsArray());
            Assert.Equal(1, (int)level!["searched"]! + (int)level["skipped"]!);
            Assert.Equal((int)level["searched"]!, (int)level["curve_barrier"]!["n"]!);
        }
        Assert.Empty(json["missing"]!.AsArray());
        Assert.Contains(json["claims"]!.AsArray(), c => (string)c!["id"]! == "cubic_spike" && (string)c["verdict"]! == "not tested");
        Assert.Contains("Quadratic L0 = 0.125: pair 0 Bezier curve: barrier", err); // with --json the progress goes to stderr
        var md = File.ReadAllText(dir.File($"out/{Stem}.md"));
        Assert.Contains("## quadratic (L0 = evaluation MAE)", md);
        Assert.Contains("Smoke budget", md);
        ReproduceReportChecks.AssertImagesExist(dir.File($"out/{Stem}.md"));

        // Again: both levels are read from their pieces, nothing is trained, the report is written again.
        var piece = LevelSetsExperiment.PiecePath(Pieces(dir), "quadratic", 0.125);
        var stamp = File.GetLastWriteTimeUtc(piece);
        (code, output, err) = Run(Tiny(dir, "--part", "toys"));
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}\n{output}");
        Assert.Contains("Quadratic L0 = 0.125: finished before", output);
        Assert.Contains("computed 0 level(s) (2 finished before)", output);
        Assert.Contains("quadratic: ", output);
        Assert.DoesNotContain("not run:", output); // only the toys were asked for
        Assert.DoesNotContain("Not in this report", File.ReadAllText(dir.File($"out/{Stem}.md")));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(piece));

        // Other settings in the same folder: refused naming the piece, nothing rewritten.
        var report = File.GetLastWriteTimeUtc(dir.File($"out/{Stem}.md"));
        (code, _, err) = Run(TinyWith(dir, 300));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("other settings", err);
        Assert.Contains(piece, err);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(piece));
        Assert.Equal(report, File.GetLastWriteTimeUtc(dir.File($"out/{Stem}.md")));
    }

    /// <summary>Until LevelSetsNetworks is wired in (see LevelSetsCommand's NETWORKS comment): replace this test then.</summary>
    [Fact]
    public void MissingNetworkDataIsNamedBeforeAnythingRuns()
    {
        using var dir = new TempDir("wv-levelsets-cli");
        var missingImages = dir.File("no-such-folder");
        var (code, _, err) = Run(Tiny(dir, "--fashion-mnist", missingImages));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(missingImages, err);
        Assert.Contains("Fashion-MNIST", err);
        // Refused before the toys' part ran: no piece and no report.
        Assert.False(Directory.Exists(Pieces(dir)) && Directory.EnumerateFiles(Pieces(dir), "*.json").Any());
        Assert.False(File.Exists(dir.File($"out/{Stem}.md")));

        var missingText = dir.File("no-such-corpus.txt");
        (code, _, err) = Run(Tiny(dir, "--part", "networks", "--corpus", missingText));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(missingText, err);
        Assert.False(File.Exists(dir.File($"out/{Stem}.md")));
    }

    [Fact]
    public void APtbFolderThatIsMissingOrLacksAFileExitsWithCode2NamingItBeforeAnythingRuns()
    {
        using var dir = new TempDir("wv-levelsets-cli");
        // An existing folder for Fashion-MNIST: only existence is checked before the run, so PTB's check is reached on any machine.
        var missing = dir.File("no-such-ptb");
        var (code, _, err) = Run(Tiny(dir, "--part", "networks", "--fashion-mnist", dir.Path, "--ptb", missing));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(missing, err);
        Assert.Contains("PtbDir", err);

        var partial = dir.File("ptb");
        Directory.CreateDirectory(partial);
        File.WriteAllText(Path.Combine(partial, "ptb.train.txt"), "a b\n");
        File.WriteAllText(Path.Combine(partial, "ptb.test.txt"), "a b\n");
        (code, _, err) = Run(Tiny(dir, "--fashion-mnist", dir.Path, "--ptb", partial));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(partial, err);
        Assert.Contains("lacks ptb.valid.txt", err);
        // Refused before the toys' part ran: no piece and no report.
        Assert.False(Directory.Exists(Pieces(dir)) && Directory.EnumerateFiles(Pieces(dir), "*.json").Any());
        Assert.False(File.Exists(dir.File($"out/{Stem}.md")));
    }

    [Fact]
    public void AFolderInUseIsRefusedWithoutWriting()
    {
        using var dir = new TempDir("wv-levelsets-cli");
        using var claim = RunFolderLock.Acquire(Pieces(dir));
        var (code, _, err) = Run(Tiny(dir));
        Assert.NotEqual(ExitCodes.Ok, code);
        Assert.Contains("another process", err);
        Assert.False(File.Exists(dir.File($"out/{Stem}.md")));
    }

    [Theory]
    [InlineData("--pairs", "0", "--pairs")]
    [InlineData("--depth", "0", "--depth")]
    [InlineData("--depth", "-3", "--depth")]
    [InlineData("--curve-steps", "0", "--curve-steps")]
    [InlineData("--quadratic-levels", "0.1,-0.2", "--quadratic-levels")]
    [InlineData("--cubic-levels", "0.3,0.2", "--cubic-levels")]
    [InlineData("--cubic-levels", "abc", "--cubic-levels")]
    [InlineData("--part", "everything", "--part")]
    [InlineData("--budget", "huge", "--budget")]
    [InlineData("--seed", "-1", "--seed")]
    public void BadOptionsExitWithCode2NamingTheOption(string option, string value, string named)
    {
        using var dir = new TempDir("wv-levelsets-cli");
        var (code, _, err) = Run("--budget", "smoke", "--out", dir.File("out"), "--runs", dir.File("runs"), option, value);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(named, err);
        Assert.False(Directory.Exists(dir.File("runs")), "nothing may be computed for bad options");
    }
}
