using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>
/// `reproduce saddles` (arXiv 1706.02052, protocol ours): the plan per budget, the smoke run end to end through the CLI
/// (report contents, classification against the stored spectrum, resume, refusal of another measurement), bad options.
/// </summary>
public class SaddlesExperimentTests
{
    static SaddlesSettings Settings(Budget budget, string root) => new()
    {
        Budget = budget, RunsRoot = Path.Combine(root, "runs"), OutDir = Path.Combine(root, "out"), CommandLine = "widevalley reproduce saddles", Machine = "test",
    };

    [Fact]
    public void ThePlanTrainsEveryNetworkWithEveryOptimizerAtEqualGradientEvaluations()
    {
        using var dir = new TempDir();
        var s = Settings(Budget.Small, dir.Path) with { Seeds = 2 };
        var (runs, skipped) = SaddlesExperiment.Plan(s);
        Assert.Equal(2 * 3 * 4, runs.Count);
        Assert.Empty(skipped);
        Assert.Equal(["small-lenet", "mnistfc", "lenet"], runs.Select(r => r.Network).Distinct());
        Assert.Equal(["sgd", "adam", "entropy-sgd", "pgd"], runs.Select(r => r.Optimizer).Distinct());
        Assert.All(runs, r => Assert.Equal((4.0, 6000L), (r.Config.EffectiveEpochBudget!.Value, r.Config.MaxTrainSamples!.Value)));
        var entropy = runs.First(r => r.Optimizer == "entropy-sgd").Config.OptimizerOptions as EntropySgdOptions;
        Assert.Equal(4, entropy!.LocalEntropy.L);
        var pgd = runs.First(r => r.Optimizer == "pgd").Config.OptimizerOptions as PerturbedGradientDescentOptions;
        Assert.Equal((0.5, 0.05, 50), (pgd!.GradientThreshold, pgd.PerturbationRadius, pgd.PerturbationInterval));
        Assert.Equal(Path.Combine(dir.Path, "runs", "saddles-small", "lenet", "pgd", "seed-2"), runs[^1].Folder);
        // All-CNN-BN runs only with CIFAR-10, and says why otherwise.
        var withAllCnn = s with { Networks = [.. SaddlesExperiment.ImageNetworks, "allcnn"] };
        var (_, allcnnSkipped) = SaddlesExperiment.Plan(withAllCnn);
        Assert.Contains(allcnnSkipped, x => x.Network == "allcnn" && x.Reason.Contains("--cifar10", StringComparison.Ordinal));
        Assert.Equal(new SaddlesMeasurementPlan(256, 256, 4, 30, "body.conv1,body.fc4"), SaddlesExperiment.Measurement(Budget.Small));
        Assert.Null(SaddlesExperiment.Measurement(Budget.Paper).ExactParameters);
    }

    [Theory]
    [InlineData(Budget.Small)]
    [InlineData(Budget.Smoke)]
    public void SmallLeNetsExactBlockSpansTwoLayersSoItsIndexCanBePositive(Budget budget)
    {
        // small-LeNet is piecewise linear, so its logits are locally linear in any one layer's weights and softmax
        // cross-entropy (convex in the logits) gives every single layer's block, the output layer's included, index 0 at
        // every point. Only a block across layers (with their cross terms) can show negative curvature.
        using var model = ModelZoo.Create(ModelZoo.SmallLeNetName, new ModelOptions());
        var parameters = model.named_parameters().Select(p => (p.name, p.parameter.numel())).ToList();
        var block = SaddlesExperiment.Measurement(budget).ExactParameters;
        Assert.Equal("body.conv1,body.fc4", block);
        var names = SaddlesExperiment.ExactBlock(block!).ResolveNames(model);
        Assert.Equal(["body.conv1.weight", "body.conv1.bias", "body.fc4.weight", "body.fc4.bias"], names);
        Assert.True(names.Select(n => n[..n.LastIndexOf('.')]).Distinct().Count() >= 2, "the block must span at least two layers");
        Assert.Equal(260 + 1290, parameters.Where(p => names.Contains(p.name)).Sum(p => p.Item2));
        Assert.Contains($"`{block}`", SaddlesExperiment.DescribeBudget(budget));
    }

    /// <summary>A measured small-LeNet point: SLQ puts all mass at +1 (a minimum when critical), the exact block has the given eigenvalues.</summary>
    static SaddlesMeasurement Point(SaddlesPlannedRun run, double gradientNorm, double[] block)
    {
        var slq = new SlqResult([[1.0]], [[1.0]], 47_658, 1);
        return new SaddlesMeasurement(run, new FinishedRun("/x", run.Config, "finished", 1, 4, []), 0.5, gradientNorm, null,
            CriticalPoints.FromSlq(slq, gradientNorm), null, CriticalPoints.FromEigenvalues(block, gradientNorm), null, block, block.Length, 1, slq, null);
    }

    [Fact]
    public void ABlockIndexAboveZeroProvesASaddleAndABlockIndexOfZeroProvesNothing()
    {
        using var dir = new TempDir();
        var run = SaddlesExperiment.Plan(Settings(Budget.Small, dir.Path)).Runs[0];
        var negative = Point(run, 1e-3, [-0.5, 0, 0, 1, 2]);
        var nonnegative = Point(run, 1e-3, [0, 0, 0, 1, 2]);
        var notCritical = Point(run, 1, [-0.5, 0, 0, 1, 2]);
        Assert.Equal(CriticalPointKind.Minimum, negative.Slq.Kind);
        // Interlacing: lambda_min(H) <= lambda_min(H_bb) < 0, so a critical point SLQ calls a minimum is a saddle.
        Assert.True(SaddlesReport.BlockProvesNegative(negative));
        Assert.True(SaddlesReport.HasNegative(negative));
        Assert.Equal(CriticalPointKind.Saddle, SaddlesReport.Kind(negative));
        // A block without negative eigenvalues says nothing: the SLQ classification stands.
        Assert.False(SaddlesReport.BlockProvesNegative(nonnegative));
        Assert.False(SaddlesReport.HasNegative(nonnegative));
        Assert.Equal(CriticalPointKind.Minimum, SaddlesReport.Kind(nonnegative));
        // Negative curvature does not make a non-critical point critical.
        Assert.True(SaddlesReport.HasNegative(notCritical));
        Assert.Equal(CriticalPointKind.NotCritical, SaddlesReport.Kind(notCritical));

        // How far from critical (ours): |grad|^2 / (2 lambda_max) with lambda_max = 1 (SLQ's only node), and its share of the loss 0.5.
        Assert.Equal((0.5, 1.0), SaddlesReport.CurvatureScaledGradient(notCritical));
        Assert.Equal(5e-7, SaddlesReport.CurvatureScaledGradient(negative).Decrease, 1e-18);

        var verdict = SaddlesReport.Verdicts([negative, nonnegative, notCritical])[0];
        Assert.Contains("3 measured points: 0 degenerate saddles, 1 minima (degenerate or not), 1 not critical", verdict.Evidence);
        Assert.Contains("2 have negative eigenvalues", verdict.Evidence);
        Assert.Contains("2 of the 3 small-LeNet points whose exact block was measured have a block index above 0", verdict.Evidence);
        Assert.Contains("the other 1 have block index 0, which proves nothing about the point", verdict.Evidence);
        Assert.Equal("disagrees", verdict.Verdict);
        // When no point is critical the claim about where training converges cannot be judged.
        var far = SaddlesReport.Verdicts([notCritical, Point(run, 2, [0, 0, 1])])[0];
        Assert.Equal("not testable", far.Verdict);
        Assert.Contains("no point is critical at this tolerance", far.Evidence);
    }

    [Fact]
    public void BadSettingsAreRefusedByOption()
    {
        using var dir = new TempDir();
        var s = Settings(Budget.Smoke, dir.Path);
        Assert.Contains("--seeds", Assert.Throws<ArgumentException>(() => (s with { Seeds = 0 }).Validate()).Message);
        Assert.Contains("--networks: unknown name 'resnet'", Assert.Throws<ArgumentException>(() => (s with { Networks = ["resnet"] }).Validate()).Message);
        Assert.Contains("--optimizers: name 'sgd' is given twice", Assert.Throws<ArgumentException>(() => (s with { Optimizers = ["sgd", "sgd"] }).Validate()).Message);
        var (code, _, err) = InProcessCli.Run("reproduce", "saddles", "--budget", "smoke", "--optimizers", "sgd,lbfgs", "--runs", dir.File("r"), "--out", dir.File("o"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("--optimizers: unknown name 'lbfgs'", err);
        var missing = InProcessCli.Run("reproduce", "saddles", "--budget", "smoke", "--fashion-mnist-dir", dir.File("nowhere"), "--runs", dir.File("r"), "--out", dir.File("o"));
        Assert.Equal(ExitCodes.Usage, missing.Code);
        Assert.Contains("--fashion-mnist-dir", missing.Err);
        Assert.False(Directory.Exists(dir.File("r")), "nothing ran");
    }

    [Fact]
    public void TheSmokeRunWritesAWellFormedReportResumesAndRefusesAnotherMeasurement()
    {
        TestMachine.RequireDejaVu();
        using var dir = new TempDir();
        string[] args = ["reproduce", "saddles", "--budget", "smoke", "--seeds", "1", "--networks", "small-lenet,mnistfc", "--optimizers", "sgd,pgd", "--threads", "2",
            "--runs", dir.File("runs"), "--out", dir.File("report")];
        var (code, output, err) = InProcessCli.Run(args);
        Assert.True(code == ExitCodes.Ok, err + output);
        Assert.Contains("4 runs planned, 0 finished already, 4 to train", output);
        Assert.Contains(output.Split('\n'), l => l.StartsWith("claim: DNNs converge to saddle points with high degeneracy", StringComparison.Ordinal));

        var md = dir.File("report/saddles-smoke.md");
        var text = File.ReadAllText(md);
        Assert.Contains("widevalley reproduce saddles --budget smoke --seeds 1 --networks small-lenet,mnistfc --optimizers sgd,pgd", text);
        Assert.Contains("| DNNs converge to saddle points with high degeneracy (\"good saddles\") | **", text);
        Assert.Contains("| the Hessian's spectrum follows Wigner's semicircle law | **", text);
        Assert.Contains("## small-LeNet: exact spectrum", text);
        Assert.Contains("The block of `body.conv1,body.fc4`", text);
        Assert.Contains("a block index of 0 **proves nothing** about the point", text);
        Assert.Contains("### How far from critical (ours)", text);
        Assert.Contains("| small-lenet | pgd | 1 of 1 |", text);
        Assert.Contains("Sec. 5.1", text);
        Assert.Contains("**ours**", text);
        ReproduceReportChecks.AssertImagesExist(md);

        var json = ReproduceReportChecks.ReadJson(dir.File("report/saddles-smoke.json"));
        Assert.Equal("smoke", json["budget"]!.GetValue<string>());
        Assert.Equal(3, json["verdicts"]!.AsArray().Count);
        Assert.All(json["verdicts"]!.AsArray(), v => Assert.Contains(v!["verdict"]!.GetValue<string>(), new[] { "agrees", "partly", "disagrees", "not testable" }));
        var runs = json["runs"]!.AsArray();
        Assert.Equal(4, runs.Count);
        foreach (var run in runs)
        {
            Assert.Equal("measured", run!["status"]!.GetValue<string>());
            var bands = run["slq"]!["bands"]!.AsArray();
            Assert.Equal([1e-4, 1e-3, 1e-2], bands.Select(b => b!["tau"]!.GetValue<double>()));
            Assert.All(bands, b => Assert.Equal(1, b!["negative"]!.GetValue<double>() + b["near_zero"]!.GetValue<double>() + b["positive"]!.GetValue<double>(), 1e-9));
            Assert.True(run["gradient_norm"]!.GetValue<double>() > 0);
            var lambdaMax = run["slq"]!["lambda_max"]!.GetValue<double>();
            Assert.Equal(Math.Pow(run["gradient_norm"]!.GetValue<double>(), 2) / (2 * lambdaMax), run["descent_lemma_decrease"]!.GetValue<double>(), 1e-12);
        }
        // small-LeNet's exact block: the report's fractions are the stored eigenvalues' counts.
        var stored = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("runs"), "saddles-smoke", "small-lenet", "sgd", "seed-1", SaddlesExperiment.MeasurementFileName)))!;
        var eigenvalues = stored["exact_eigenvalues"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        Assert.Equal(1550, eigenvalues.Length);
        var exact = runs.First(r => r!["network"]!.GetValue<string>() == "small-lenet" && r["optimizer"]!.GetValue<string>() == "sgd")!["exact"]!;
        Assert.Equal(eigenvalues.Count(l => Math.Abs(l) <= 1e-3) / 1550.0, exact["bands"]![1]!["near_zero"]!.GetValue<double>(), 1e-12);
        Assert.Equal(eigenvalues.Count(l => l < -1e-3), exact["index"]!.GetValue<long>());
        Assert.Null(runs.First(r => r!["network"]!.GetValue<string>() == "mnistfc")!["exact"]);
        Assert.NotNull(runs.First(r => r!["optimizer"]!.GetValue<string>() == "pgd")!["pgd_perturbations"]);
        Assert.Empty(dir.Leftovers());

        // Again: nothing to train or measure.
        var again = InProcessCli.Run(args);
        Assert.True(again.Code == ExitCodes.Ok, again.Err);
        Assert.Contains("4 runs planned, 4 finished already, 0 to train", again.Out);

        // A measurement made under other settings is refused, naming the file.
        var file = Path.Combine(dir.File("runs"), "saddles-smoke", "mnistfc", "sgd", "seed-1", SaddlesExperiment.MeasurementFileName);
        var node = JsonNode.Parse(File.ReadAllText(file))!;
        node["settings"]!["samples"] = 32;
        File.WriteAllText(file, node.ToJsonString());
        var refused = InProcessCli.Run(args);
        Assert.Equal(ExitCodes.Failure, refused.Code);
        Assert.Contains(file, refused.Err);
        Assert.Contains("samples: stored 32, wanted 64", refused.Err);
    }
}
