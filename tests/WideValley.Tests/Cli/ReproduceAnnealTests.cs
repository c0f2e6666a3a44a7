using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Tests.Support;

namespace WideValley.Tests.Cli;

/// <summary>`reproduce anneal-field` and `reproduce annealsgd` at the smoke budget, in-process, as CI runs them.</summary>
public class ReproduceAnnealTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Fact]
    public void AnnealFieldSmokeWritesAWellFormedReportAndASecondRunComputesNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "anneal-field", "--budget", "smoke", "--sizes", "20,30", "--starts", "16", "--fields", "0.1,30",
            "--field-directions", "2", "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        // Per N: h = 0, 0.1, 30 and two annealed directions.
        Assert.Contains("(10 pieces computed, 0 reused)", output);
        Assert.Contains(output.Split('\n'), l => l.StartsWith("(a) distinct minima fall from many to one", StringComparison.Ordinal));
        Assert.Contains(output.Split('\n'), l => l.StartsWith("(b) the annealed run ends lower", StringComparison.Ordinal));
        foreach (var file in new[] { "anneal-field-smoke.md", "anneal-field-smoke.json", "anneal-field-smoke.csv", "anneal-field-smoke-annealed.csv",
                     "anneal-field-smoke.png", "anneal-field-smoke.svg", "anneal-field-smoke-energies.png", "anneal-field-smoke-energies.svg" })
            Assert.True(File.Exists(dir.File($"report/{file}")), $"{file} was not written");
        Assert.Empty(dir.Leftovers());

        var md = dir.File("report/anneal-field-smoke.md");
        var text = File.ReadAllText(md);
        // --field-directions 2 is the smoke budget's own, so the command leaves it out.
        Assert.Contains("widevalley reproduce anneal-field --budget smoke --sizes 20,30 --starts 16 --fields 0.1,30 --out", text);
        Assert.Contains("| (a) distinct minima go from many to few to one as the field grows (abstract) | 20 |", text);
        Assert.Contains("| (b) an annealed run ends lower than plain projected descent (our question) | 30 |", text);
        Assert.Contains("UNVERIFIED", text);
        ReproduceReportChecks.AssertImagesExist(md);

        var json = ReproduceReportChecks.ReadJson(dir.File("report/anneal-field-smoke.json"));
        Assert.Equal("smoke", json["budget"]!.GetValue<string>());
        foreach (var key in new[] { "settings", "reference", "glasses", "claims", "command", "machine" }) Assert.True(json.ContainsKey(key), key);
        var glasses = json["glasses"]!.AsArray();
        Assert.Equal([20, 30], glasses.Select(g => g!["N"]!.GetValue<int>()));
        foreach (var g in glasses)
        {
            var sweep = g!["sweep"]!.AsArray();
            Assert.Equal([0, 0.1, 30], sweep.Select(p => p!["field"]!.GetValue<double>()));
            Assert.Equal(1, sweep[2]!["distinct_minima"]!.GetValue<int>());
            Assert.True(sweep[0]!["distinct_minima"]!.GetValue<int>() > 1);
            Assert.InRange(sweep[0]!["converged_fraction"]!.GetValue<double>(), 0, 1);
            Assert.Equal(2 * 16, g["comparison"]!["pairs"]!.GetValue<int>());
            Assert.Equal(2, g["annealed"]!.AsArray().Count);
            foreach (var claim in new[] { "many_to_one", "annealed_lower", "annealed_higher" }) Assert.NotNull(g["claims"]![claim]);
        }
        Assert.NotNull(json["claims"]!["distinct_minima_many_to_one"]);
        Assert.NotNull(json["claims"]!["annealed_ends_lower"]);

        var (again, secondOutput, secondErr) = Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Contains("(0 pieces computed, 10 reused)", secondOutput);
    }

    [Fact]
    public void AnnealSgdSmokeWritesAWellFormedReportAndASecondRunTrainsNothing()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "annealsgd", "--budget", "smoke", "--nets", "mnistfc", "--seeds", "2", "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("4 runs planned, 0 finished already, 4 to train", output);
        Assert.Contains("mnistfc: SGD 2 seed(s), AnnealSGD 2;", output);

        var md = dir.File("report/annealsgd-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("widevalley reproduce annealsgd --seeds 2 --budget smoke --nets mnistfc", text);
        Assert.Contains("| mnistfc |", text);
        Assert.Contains("our reading of the abstract", text);
        Assert.Contains("field h0 0.001 (fixed), schedule linear to zero at step 1", text);
        ReproduceReportChecks.AssertImagesExist(md);
        Assert.True(File.Exists(dir.File("report/annealsgd-smoke-mnistfc.png")));

        var json = ReproduceReportChecks.ReadJson(dir.File("report/annealsgd-smoke.json"));
        Assert.Equal(0.001, json["field_size"]!.GetValue<double>());
        Assert.Equal("fixed", json["field_mode"]!.GetValue<string>());
        var network = Assert.Single(json["networks"]!.AsArray())!;
        Assert.Equal("mnistfc", network["network"]!.GetValue<string>());
        Assert.Equal(2, network["paired_seeds"]!.GetValue<int>());
        foreach (var arm in new[] { "sgd", "annealsgd" })
        {
            Assert.Equal(2, network[arm]!["seeds_finished"]!.GetValue<int>());
            Assert.InRange(network[arm]!["test_error_mean"]!.GetValue<double>(), 0, 100);
            Assert.NotNull(network[arm]!["test_error_std"]);
        }
        Assert.Equal("sgd", network["sgd"]!["optimizer"]!.GetValue<string>());
        Assert.Equal("annealsgd", network["annealsgd"]!["optimizer"]!.GetValue<string>());
        Assert.NotNull(network["verdict"]);
        Assert.NotNull(json["claim_better_generalisation"]);

        var (again, secondOutput, secondErr) = Run(args);
        Assert.True(again == ExitCodes.Ok, secondErr);
        Assert.Contains("4 runs planned, 4 finished already, 0 to train", secondOutput);
    }

    [Theory]
    [InlineData(Budget.Paper, 100, 60_000)]
    [InlineData(Budget.Small, 10, 12_000)]
    public void AnnealSgdArmsDifferOnlyInTheFieldWhichIsGoneAtHalfTheRun(Budget budget, int epochs, long images)
    {
        var settings = new AnnealSgdRunSettings { Budget = budget, RunsRoot = "/tmp/runs", OutDir = "/tmp/out", CommandLine = "c", Machine = "m" };
        var (sgd, anneal) = AnnealSgdComparison.Arms(settings, "lenet", seed: 7);
        Assert.Equal(epochs, sgd.Epochs);
        Assert.Equal(sgd with { Optimizer = anneal.Optimizer, OptimizerOptions = anneal.OptimizerOptions }, anneal);
        var s = Assert.IsType<SgdOptions>(sgd.ResolvedOptimizerOptions);
        var a = Assert.IsType<AnnealSgdOptions>(anneal.ResolvedOptimizerOptions);
        Assert.Equal((s.LearningRate, s.Momentum, s.Nesterov, s.WeightDecay), (a.LearningRate, a.Momentum, a.Nesterov, a.WeightDecay));
        Assert.Equal((0.1, 0.9, true, 1e-3), (s.LearningRate, s.Momentum, s.Nesterov, s.WeightDecay));
        Assert.Equal(AnnealSchedule.Linear, a.FieldSchedule);
        Assert.Equal(AnnealFieldMode.Fixed, a.FieldMode);
        Assert.Equal(AnnealSgdComparison.DefaultFieldSize, a.FieldSize);
        var steps = epochs * (long)Math.Ceiling(images / 128.0);
        Assert.Equal(steps / 2, a.FieldAnnealSteps);
        Assert.Equal(0, a.ScheduleAt(steps / 2));
        Assert.NotEqual(AnnealSgdComparison.RunFolder(settings, "lenet", "sgd", 7), AnnealSgdComparison.RunFolder(settings, "lenet", "annealsgd", 7));
        // Another field writes its own report, never over the main one.
        var suffix = budget == Budget.Paper ? "" : "-small";
        Assert.Equal("annealsgd" + suffix, AnnealSgdReport.Stem(settings));
        Assert.Equal("annealsgd-fresh-h0.0001" + suffix, AnnealSgdReport.Stem(settings with { FieldMode = AnnealFieldMode.Fresh, FieldSize = 1e-4 }));
    }

    [Theory]
    [InlineData(new[] { "anneal-field", "--starts", "0" }, "--starts must be at least 1, got 0")]
    [InlineData(new[] { "anneal-field", "--starts", "1" }, "--starts must be at least 2")]
    [InlineData(new[] { "anneal-field", "--fields", "1,0.5" }, "--fields must be strictly ascending")]
    [InlineData(new[] { "anneal-field", "--fields", "0.1,abc" }, "--fields: 'abc' is not a number")]
    [InlineData(new[] { "anneal-field", "--sizes", "1" }, "--sizes: every N must be at least 2")]
    [InlineData(new[] { "anneal-field", "--overlap", "1.5" }, "--overlap must be in (0, 1], got 1.5")]
    [InlineData(new[] { "anneal-field", "--anneal-stages", "0" }, "--anneal-stages must be at least 1, got 0")]
    [InlineData(new[] { "anneal-field", "--field-directions", "0" }, "--field-directions must be at least 1, got 0")]
    [InlineData(new[] { "annealsgd", "--nets", "mnistfc,resnet" }, "--nets: unknown network 'resnet'")]
    [InlineData(new[] { "annealsgd", "--seeds", "0" }, "--seeds must be at least 1, got 0")]
    [InlineData(new[] { "annealsgd", "--field-size", "0" }, "--field-size must be positive")]
    [InlineData(new[] { "annealsgd", "--field-size", "-1" }, "--field-size must be zero or positive, got -1")]
    [InlineData(new[] { "annealsgd", "--field-mode", "sideways" }, "sideways")]
    [InlineData(new[] { "annealsgd", "--fashion-mnist-dir", "/nonexistent/fashion" }, "--fashion-mnist-dir /nonexistent/fashion: no such folder")]
    public void BadInputIsAUsageErrorThatSaysWhy(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["reproduce", .. args, "--runs", dir.File("runs"), "--out", dir.File("report")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.False(Directory.Exists(dir.File("report")));
        Assert.False(Directory.Exists(dir.File("runs")));
    }
}
