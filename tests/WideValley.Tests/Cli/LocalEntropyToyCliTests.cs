using System.Globalization;
using System.Text.Json.Nodes;
using SkiaSharp;
using WideValley.Cli;
using WideValley.Tests.Reports;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>One smoke report, written once for all tests that need an existing report to protect.</summary>
public sealed class SmokeReportFixture : IDisposable
{
    readonly TempDir dir = new("widevalley-le-toy");
    bool written;

    /// <summary>A fresh folder holding a copy of the report, written on first use (after the tests' skip guards: it plots).</summary>
    public TempDir CopyReport()
    {
        if (!written)
        {
            var (code, _, err) = LandscapeCliTests.Run("reproduce", "local-entropy-toy", "--budget", "smoke", "--out", dir.Path);
            if (code != ExitCodes.Ok) throw new InvalidOperationException($"the smoke report failed: {err}");
            written = true;
        }
        var copy = new TempDir("widevalley-le-toy-copy");
        foreach (var file in Directory.GetFiles(dir.Path)) File.Copy(file, copy.File(Path.GetFileName(file)));
        return copy;
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>`widevalley reproduce local-entropy-toy --budget smoke`, run in-process as CI runs it.</summary>
public class LocalEntropyToyCliTests(SmokeReportFixture report) : IClassFixture<SmokeReportFixture>
{
    const string Command = "local-entropy-toy";
    // Smoke reports carry the budget in their names, so they never overwrite the committed paper-budget report.
    const string Stem = "local-entropy-toy-smoke";
    static readonly string[] ReportFiles = [$"{Stem}.md", $"{Stem}.png", $"{Stem}.svg", $"{Stem}.json", $"{Stem}.csv", $"{Stem}-langevin.csv", $"{Stem}-ends.csv"];

    static (int Code, string Out, string Err) Run(params string[] args) => LandscapeCliTests.Run(["reproduce", Command, .. args]);

    static Dictionary<string, byte[]> Snapshot(string folder) =>
        Directory.GetFiles(folder).ToDictionary(path => Path.GetFileName(path), File.ReadAllBytes);

    [Fact]
    public void SmokeWritesAWellFormedReport()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var (code, output, err) = Run("--budget", "smoke", "--out", dir.Path, "--json");
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        foreach (var file in ReportFiles) Assert.True(File.Exists(dir.File(file)), $"{file} was not written");
        Assert.Empty(dir.Leftovers());

        // --json prints exactly the object the folder holds, and every number in it parses.
        var line = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var json = JsonNode.Parse(line)!.AsObject();
        Assert.Equal(json.ToJsonString(), JsonNode.Parse(File.ReadAllText(dir.File($"{Stem}.json")))!.ToJsonString());
        Assert.Equal("smoke", (string)json["budget"]!);
        var scopes = json["scopes"]!.AsArray();
        Assert.Equal(2, scopes.Count);
        foreach (var scope in scopes)
        {
            Assert.True((double)scope!["gamma"]! > 0);
            Assert.True(double.IsFinite((double)scope["neg_F_argmin"]!));
            Assert.True((double)scope["langevin"]!["max_gibbs_mean_error"]! >= 0);
        }
        foreach (var optimizer in new[] { "sgd", "entropy_sgd" })
        {
            var o = json[optimizer]!;
            Assert.Equal((int)o["runs"]!, (int)o["wide"]! + (int)o["sharp"]! + (int)o["neither"]!);
            Assert.InRange((double)o["fraction_wide"]!, 0, 1);
        }
        Assert.Equal("wide", (string)scopes[0]!["neg_F_argmin_valley"]!);
        Assert.Equal("sharp", (string)scopes[1]!["neg_F_argmin_valley"]!);

        // The PNG is a real image of the stated size with a title drawn in its title band.
        ImageChecks.AssertPngFile(dir.File($"{Stem}.png"), 1000, 1250);
        using (var bitmap = ImageChecks.Decode(File.ReadAllBytes(dir.File($"{Stem}.png"))))
        {
            var titleInk = ImageChecks.DarkPixels(bitmap, new SKRectI(0, 0, bitmap.Width, 44));
            Assert.True(titleInk > 200, $"the title band has only {titleInk} dark pixels");
            Assert.True(ImageChecks.ColouredPixels(bitmap) > 2000, "the curves were not drawn");
        }
        var texts = ImageChecks.Texts(ImageChecks.AssertSvgFile(dir.File($"{Stem}.svg"), 1000, 1250));
        Assert.Contains(texts, t => t.Contains("Local entropy", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.Contains("Entropy-SGD", StringComparison.Ordinal));

        // Every CSV cell below the header is a number; the curve table has one row per curve point.
        foreach (var csv in ReportFiles.Where(f => f.EndsWith(".csv", StringComparison.Ordinal)))
        {
            var lines = File.ReadAllLines(dir.File(csv));
            Assert.True(lines.Length > 2, $"{csv} has no rows");
            var columns = lines[0].Split(',').Length;
            foreach (var row in lines.Skip(1))
            {
                var cells = row.Split(',');
                Assert.Equal(columns, cells.Length);
                Assert.All(cells, c => Assert.True(double.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out _), $"{csv}: '{c}' is not a number"));
            }
        }
        Assert.Equal((int)json["curve_points"]! + 1, File.ReadAllLines(dir.File($"{Stem}.csv")).Length);

        var markdown = File.ReadAllText(dir.File($"{Stem}.md"));
        Assert.Contains($"]({Stem}.png)", markdown);
        Assert.Contains("widevalley reproduce local-entropy-toy --budget smoke", markdown);
        Assert.Contains("**Verdict:", markdown);
    }

    [Theory]
    [InlineData(new[] { "--budget", "huge" }, "--budget must be one of smoke, small, paper, got 'huge'")]
    [InlineData(new[] { "--scopes", "0,100" }, "--scopes: gamma must be positive, got 0")]
    [InlineData(new[] { "--scopes=-1,100" }, "--scopes: gamma must be positive, got -1")]
    [InlineData(new[] { "--scopes", "100,1" }, "the large scope must exceed the small one")]
    [InlineData(new[] { "--scopes", "2" }, "--scopes must be two values SMALL,LARGE")]
    [InlineData(new[] { "--temperature", "0" }, "--temperature must be positive")]
    public void BadValuesExitWithCode2AndLeaveTheReportAlone(string[] args, string expected)
    {
        TestMachine.RequireDejaVu();
        using var dir = report.CopyReport();
        var before = Snapshot(dir.Path);
        Assert.Equal(ReportFiles.Order(), before.Keys.Order());

        var (code, _, err) = Run([.. args, "--out", dir.Path]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        var after = Snapshot(dir.Path);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} changed");
    }

    [Fact]
    public void AnOutputPathThatIsAFileFailsBeforeComputingAnything()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        var file = dir.WriteText("not-a-folder", "keep me");
        var (code, _, err) = Run("--budget", "smoke", "--out", file);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("is a file; give a folder", err);
        Assert.Equal("keep me", File.ReadAllText(file));

        (code, _, err) = Run("--budget", "smoke", "--out", Path.Combine(file, "report"));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("cannot write the report to --out", err);
        Assert.Empty(dir.Leftovers());
    }

    [Fact]
    public void AFailedWriteLeavesEveryFileWholeAndNoTemporaries()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        // A folder where the Markdown report should go: the last write fails after the others have been replaced.
        Directory.CreateDirectory(dir.File($"{Stem}.md"));
        var (code, _, err) = Run("--budget", "smoke", "--out", dir.Path);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("widevalley:", err);
        Assert.Empty(dir.Leftovers());
        ImageChecks.AssertPngFile(dir.File($"{Stem}.png"), 1000, 1250);
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(dir.File($"{Stem}.json"))));
        Assert.True(Directory.Exists(dir.File($"{Stem}.md")));
    }
}
