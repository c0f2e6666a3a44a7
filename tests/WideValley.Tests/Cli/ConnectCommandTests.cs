using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`widevalley connect`, run in-process on the tiny small-mnistfc and small-LeNet runs of <see cref="TrainedRunsFixture"/>.</summary>
public class ConnectCommandTests(TrainedRunsFixture runs) : IClassFixture<TrainedRunsFixture>
{
    /// <summary>Small budgets: few grid points, two depths, short bead training (the outcome is not the point; its bookkeeping is).</summary>
    private static readonly string[] Quick = ["--grid", "4", "--depth", "2", "--bead-max-steps", "40", "--check-every", "20", "--threads", "1"];

    private static JsonObject RunJson(params string[] args)
    {
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        return JsonNode.Parse(lines[0])!.AsObject();
    }

    private static string[][] CsvRows(string folder) =>
        File.ReadAllLines(Path.Combine(folder, "connect.csv")).Skip(1).Select(l => l.Split(',')).ToArray();

    private static double Cell(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    [Fact]
    public void TheStringWritesItsFilesAndTheJsonSummaryAgreesWithThem()
    {
        var folder = runs.NewFolder("connect-string");
        var json = RunJson(["connect", runs.A, runs.B, "--level", "60", .. Quick, "--out", folder, "--json"]);

        Assert.Equal("string", (string)json["method"]!);
        Assert.Equal("error", (string)json["metric"]!);
        Assert.Equal(60, (double)json["level"]!);
        Assert.Equal(61.2, (double)json["accept_bound"]!, 9);
        var beads = (int)json["beads"]!;
        Assert.True(beads >= 3);
        var weightsOnly = (double)json["normalized_length"]!["weights_only"]!;
        var allParameters = (double)json["normalized_length"]!["all_parameters"]!;
        Assert.True(weightsOnly >= 1 - 1e-9 && allParameters >= 1 - 1e-9, $"lengths {weightsOnly}, {allParameters}");
        Assert.Equal(folder, (string)json["out"]!);
        Assert.Equal(runs.A, (string)json["endpoints"]!["A"]!["name"]!);
        foreach (var name in new[] { "connect.json", "connect.csv", "connect.png", "connect.svg", "connect.checkpoint" })
            Assert.True(File.Exists(Path.Combine(folder, name)), name);

        var rows = CsvRows(folder);
        var path = rows.Where(r => r[0] == "string").ToArray();
        var straight = rows.Where(r => r[0] == "straight").ToArray();
        Assert.Equal((beads - 1) * 4 + 1, path.Length);
        Assert.Equal(path.Length, straight.Length);
        Assert.Equal((int)json["path_points"]!, path.Length);
        // The error is a percentage of the 10,000 test images; the maximum along the path is the CSV's.
        Assert.Equal((double)json["max_along_path"]!, path.Max(r => Cell(r[5])), 9);
        Assert.Equal((double)json["max_along_straight_line"]!, straight.Max(r => Cell(r[5])), 9);
        Assert.Equal((bool)json["connected"]!, (double)json["max_along_path"]! < 61.2);
        // The endpoints' rows are the endpoints' measures, the same on the path and on the straight line.
        Assert.Equal(Cell(path[0][4]), (double)json["endpoints"]!["A"]!["loss"]!, 12);
        Assert.Equal(Cell(straight[^1][5]), (double)json["endpoints"]!["B"]!["error_percent"]!, 12);
        Assert.Equal(Cell(path[^1][4]), Cell(straight[^1][4]), 12);

        // The same command again rebuilds the same files from the finished string without training.
        var csv = File.ReadAllText(Path.Combine(folder, "connect.csv"));
        var again = RunJson(["connect", runs.A, runs.B, "--level", "60", .. Quick, "--out", folder, "--json"]);
        Assert.Equal(beads, (int)again["beads"]!);
        Assert.Equal(csv, File.ReadAllText(Path.Combine(folder, "connect.csv")));
    }

    [Fact]
    public void ABezierCurveReportsItsBarrierBesideTheStraightLine()
    {
        var folder = runs.NewFolder("connect-bezier");
        var json = RunJson("connect", runs.A, runs.B, "--method", "bezier", "--steps", "20", "--grid", "4", "--metric", "loss", "--level", "5",
            "--threads", "1", "--out", folder, "--json");
        Assert.Equal("bezier", (string)json["method"]!);
        Assert.Equal("loss", (string)json["metric"]!);
        Assert.Equal(3, (int)json["beads"]!);
        Assert.Equal(5, (int)json["path_points"]!);
        // small-mnistfc has biases: the weights-only length (the authors') differs from the all-parameters one.
        var weightsOnly = (double)json["normalized_length"]!["weights_only"]!;
        var allParameters = (double)json["normalized_length"]!["all_parameters"]!;
        Assert.True(weightsOnly >= 1 - 1e-9 && allParameters >= 1 - 1e-9, $"lengths {weightsOnly}, {allParameters}");
        Assert.NotEqual(weightsOnly, allParameters);
        var rows = CsvRows(folder);
        Assert.Equal(5, rows.Count(r => r[0] == "bezier"));
        Assert.Equal(5, rows.Count(r => r[0] == "straight"));
        var losses = rows.Where(r => r[0] == "bezier").Select(r => Cell(r[4])).ToArray();
        Assert.Equal(losses.Max() - 0.5 * (losses[0] + losses[^1]), (double)json["barrier"]!["loss"]!, 9);
    }

    [Fact]
    public void ThePlainOutputSaysTheVerdictTheLengthsAndWhereTheFilesAre()
    {
        var folder = runs.NewFolder("connect-plain");
        var (code, output, err) = InProcessCli.Run(["connect", runs.A, runs.B, "--level", "60", .. Quick, "--out", folder]);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        Assert.Contains("connected at error L0 = 60", output);
        Assert.Contains("(weights only)", output);
        Assert.Contains($"wrote {folder}: connect.csv", output);
    }

    [Fact]
    public void ModelsOfDifferentArchitecturesAreRefusedNamingTheParameter()
    {
        var folder = runs.NewFolder("connect-arch");
        var (code, _, err) = InProcessCli.Run(["connect", runs.A, runs.LeNet, .. Quick, "--out", folder]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("not the same architecture", err);
        Assert.Matches("differs at '[a-z0-9_.]+'", err);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void ALevelBelowAnEndpointIsRefusedBeforeAnyTraining()
    {
        var folder = runs.NewFolder("connect-level");
        var (code, _, err) = InProcessCli.Run(["connect", runs.A, runs.B, "--level", "1", .. Quick, "--out", folder]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Matches(@"endpoint .* has error \(%\) [0-9.]+, above m·L0 = 1\.02 × 1 = 1\.02", err);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void ACorruptCheckpointIsNamedAndTheFolderIsLeftAsItWas()
    {
        var folder = runs.NewFolder("connect-corrupt");
        var (code, _, err) = InProcessCli.Run(["connect", runs.A, runs.B, "--level", "60", .. Quick, "--out", folder]);
        Assert.True(code == ExitCodes.Ok, $"exit {code}: {err}");
        var checkpoint = Path.Combine(folder, "connect.checkpoint");
        var bytes = File.ReadAllBytes(checkpoint);
        bytes[bytes.Length / 2] ^= 0x41;
        File.WriteAllBytes(checkpoint, bytes);
        var before = FolderSnapshot.Take(folder);

        var (again, _, error) = InProcessCli.Run(["connect", runs.A, runs.B, "--level", "60", .. Quick, "--out", folder]);
        Assert.Equal(ExitCodes.Usage, again);
        Assert.Contains(checkpoint, error);
        FolderSnapshot.AssertUnchanged(before, folder);
    }

    [Fact]
    public void TwoModelFilesAreConnectedOnANamedDataset()
    {
        var folder = runs.NewFolder("connect-files");
        Directory.CreateDirectory(folder);
        var a = Path.Combine(folder, "a.bin");
        var b = Path.Combine(folder, "b.bin");
        foreach (var (file, seed) in new[] { (a, 1), (b, 2) })
        {
            TorchSharp.torch.random.manual_seed(seed);
            using var model = WideValley.Models.ModelZoo.Create(WideValley.Models.ModelZoo.SmallMnistFcName, new WideValley.Models.ModelOptions());
            model.save(file);
        }
        var json = RunJson(["connect", a, b, "--model", "small-mnistfc", "--data", "fashion-mnist", "--metric", "loss", "--level", "3", .. Quick,
            "--out", Path.Combine(folder, "out"), "--json"]);
        Assert.Equal("loss", (string)json["metric"]!);
        Assert.Contains("small-mnistfc", (string)json["endpoints"]!["A"]!["description"]!);
        Assert.Contains("fashion-mnist", (string)json["settings"]!["data"]!);
        Assert.True(File.Exists(Path.Combine(folder, "out", "connect.csv")));

        var (code, _, err) = InProcessCli.Run(["connect", a, b, "--model", "small-mnistfc", .. Quick]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("name the data to connect them on with --data NAME", err);
    }

    [Theory]
    [InlineData("--depth must be at least 1, got 0", "--depth", "0")]
    [InlineData("--grid must be at least 1, got 0", "--grid", "0")]
    [InlineData("--level must be a positive number, got 0", "--level", "0")]
    [InlineData("--steps must be at least 1, got 0", "--steps", "0")]
    [InlineData("--accept must be at least 1", "--accept", "0.9")]
    [InlineData("--alpha must be in (0, 1]", "--alpha", "1.5")]
    [InlineData("--method zigzag: expected string, bezier or polychain", "--method", "zigzag")]
    [InlineData("--metric accuracy: expected loss, error or perplexity", "--metric", "accuracy")]
    [InlineData("--metric perplexity: A", "--metric", "perplexity")]
    [InlineData("--insert middle: expected midpoint or argmax", "--insert", "middle")]
    [InlineData("--bead-optimizer rmsprop: expected adam or sgd", "--bead-optimizer", "rmsprop")]
    [InlineData("--bn-minibatches", "--bn-minibatches", "-1")]
    public void BadOptionValuesAreRefusedWithExitCode2(string expected, string option, string value)
    {
        var folder = runs.NewFolder("connect-bad");
        var (code, _, err) = InProcessCli.Run("connect", runs.A, runs.B, option, value, "--threads", "1", "--out", folder);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void AMissingRunIsRefusedByName()
    {
        var missing = runs.NewFolder("no-such-run");
        var (code, _, err) = InProcessCli.Run("connect", runs.A, missing, "--threads", "1");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains($"B {missing}: no such run folder, checkpoint or model file", err);
    }
}
