using WideValley.Experiments;
using WideValley.Tests.Support;

namespace WideValley.Tests.Experiments;

/// <summary>
/// The loss-surface experiment through the library: a tiny end-to-end run (two widths, a handful of networks, a
/// hundred images), resuming from its pieces, and the statistics the verdicts rest on against closed forms.
/// </summary>
public class LossSurfacesTests
{
    /// <summary>Seconds: 4 networks of widths 3 and 4 for 2 epochs on 100 images; the index of one width-3 network (343 parameters).</summary>
    static LossSurfacesSettings Tiny(string dataDir) => LossSurfacesSettings.For(Budget.Smoke) with
    {
        Sizes = [3, 4], Networks = 4, Epochs = 2, BatchSize = 25, TrainSamples = 100, TestSamples = 100, IndexNetworks = 1, IndexMaxHidden = 3,
        DataDir = dataDir, Seed = 7,
    };

    [Fact]
    public void ATinyRunFinishesEveryPieceAndAResumeRecomputesNothing()
    {
        using var work = new TempDir("widevalley-loss-surfaces");
        var settings = Tiny(TestMachine.FashionMnistFolder);
        var first = LossSurfaces.Run(settings, work.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.True(first.Complete);
        Assert.Equal(0, first.ResumedPieces);
        Assert.Equal([3, 4], first.Sizes.Select(s => s.Hidden));
        foreach (var size in first.Sizes)
        {
            Assert.Equal(100L * size.Hidden + size.Hidden + 10L * size.Hidden + 10, size.Parameters);
            Assert.Equal(4, size.TestLoss.Length);
            Assert.All(size.TestLoss, v => Assert.True(double.IsFinite(v) && v > 0));
            Assert.All(size.TestError, v => Assert.InRange(v, 0, 1));
            Assert.Equal(4, size.Seeds.Distinct().Count());
        }
        // Different starts end in different places.
        Assert.True(first.Sizes[0].TestLoss.Distinct().Count() > 1);
        var index = Assert.Single(first.Index);
        Assert.Equal(343, index.Parameters);
        Assert.InRange(index.Negative + index.NearZero, 0, 343);
        Assert.Equal((double)index.Negative / 343, index.NormalizedIndex, 12);
        Assert.True(index.LambdaMax >= index.LambdaMin);

        var pieces = Directory.GetFiles(work.Path, "*.json").ToDictionary(p => p, File.GetLastWriteTimeUtc);
        Assert.Equal(3, pieces.Count); // two widths and one index
        var second = LossSurfaces.Run(settings, work.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.True(second.Complete);
        Assert.Equal(3, second.ResumedPieces);
        foreach (var (path, time) in pieces) Assert.Equal(time, File.GetLastWriteTimeUtc(path));
        Assert.Equal(first.Sizes[1].TestLoss, second.Sizes[1].TestLoss);
        Assert.Equal(first.Index[0], second.Index[0]);

        // Other settings are not answered from the old pieces: a third width is trained, the others resumed.
        var third = LossSurfaces.Run(settings with { Sizes = [3, 4, 2] }, work.Path, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(3, third.ResumedPieces);
        Assert.Equal(3, third.Sizes.Count);
    }

    [Fact]
    public void ACancelledRunKeepsNothingHalfDoneAndContinuesLater()
    {
        using var work = new TempDir("widevalley-loss-surfaces");
        var settings = Tiny(TestMachine.FashionMnistFolder);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var stopped = LossSurfaces.Run(settings, work.Path, cancellation: cancelled.Token);
        Assert.False(stopped.Complete);
        Assert.Empty(stopped.Sizes);
        Assert.Empty(Directory.GetFiles(work.Path, "*.json"));
        Assert.True(LossSurfaces.Run(settings, work.Path, cancellation: TestContext.Current.CancellationToken).Complete);
    }

    [Fact]
    public void TheReportWritesItsFilesAndVerdicts()
    {
        using var work = new TempDir("widevalley-loss-surfaces");
        var result = LossSurfaces.Run(Tiny(TestMachine.FashionMnistFolder), work.Path, cancellation: TestContext.Current.CancellationToken);
        var files = LossSurfacesReport.Write(result, "widevalley reproduce loss-surfaces --budget smoke", "test machine", work.File("out"), "loss-surfaces-smoke");
        foreach (var name in new[] { "loss-surfaces-smoke.md", "loss-surfaces-smoke.json", "loss-surfaces-smoke.csv" })
            Assert.Contains(work.File(Path.Combine("out", name)), files);
        var csv = File.ReadAllLines(work.File("out/loss-surfaces-smoke.csv"));
        Assert.Equal(1 + 2 * 4, csv.Length); // a header and one row per network
        var md = File.ReadAllText(work.File("out/loss-surfaces-smoke.md"));
        Assert.Contains("the histogram of the scaled test loss narrows", md);
        Assert.Contains("Pearson correlation falls with n1", md);
    }

    [Fact]
    public void TheScalingFitRecoversAnExactLaw()
    {
        int[] n = [25, 50, 100, 250, 500];
        var means = n.Select(x => 0.3 * Math.Exp(-0.8 * Math.Pow(x, 0.25))).ToArray();
        var fit = LossScalingFit.Fit(n, means);
        Assert.Equal(0.25, fit.Beta, 0.01);
        Assert.Equal(-0.8, fit.Alpha, 0.05);
        Assert.True(fit.RmsLogResidual < 1e-3, $"residual {fit.RmsLogResidual}");
        // Scaled means are then all c = 0.3.
        for (var i = 0; i < n.Length; i++) Assert.Equal(0.3, means[i] / fit.Scale(n[i]), 0.01);
        Assert.DoesNotContain("edge", fit.Method);
        // A power law in n1 (log E linear in log n1) is the beta -> 0 limit of the family: the best beta is the grid's
        // lower edge, and the method says so.
        var logLaw = LossScalingFit.Fit(n, n.Select(x => 0.5 * Math.Pow(x, -0.03)).ToArray());
        Assert.Equal(0.02, logLaw.Beta, 12);
        Assert.Contains("lower edge", logLaw.Method);
        var two = LossScalingFit.Fit([10, 20], [1.0, 0.5]);
        Assert.Equal(1, two.Beta);
        Assert.Equal(Math.Log(0.5) / 10, two.Alpha, 12);
    }

    [Fact]
    public void PearsonAndTheVerdictsFollowTheirDefinitions()
    {
        Assert.Equal(1, LossSurfacesReport.Pearson([1, 2, 3], [2, 4, 6]), 12);
        Assert.Equal(-1, LossSurfacesReport.Pearson([1, 2, 3], [3, 2, 1]), 12);
        // x = (-1, 0, 1), y = (1, -2, 1): uncorrelated.
        Assert.Equal(0, LossSurfacesReport.Pearson([-1, 0, 1], [1, -2, 1]), 12);
        Assert.True(double.IsNaN(LossSurfacesReport.Pearson([1, 1, 1], [1, 2, 3])));

        LossSurfacesSizeStats Stats(int n, double std, double rho) => new(n, 10, 0, 1, std, 1, std, 1, 0.1, rho, null);
        var falling = LossSurfacesReport.Judge([Stats(25, 0.3, 0.8), Stats(50, 0.2, 0.6), Stats(100, 0.1, 0.4)], []);
        Assert.StartsWith("agrees", falling.Narrowing);
        Assert.StartsWith("agrees", falling.CorrelationFalls);
        Assert.Null(falling.IndexSmall);
        var bumpy = LossSurfacesReport.Judge([Stats(25, 0.3, 0.8), Stats(50, 0.35, 0.9), Stats(100, 0.1, 0.4)], []);
        Assert.StartsWith("partly", bumpy.Narrowing);
        Assert.StartsWith("partly", bumpy.CorrelationFalls);
        var rising = LossSurfacesReport.Judge([Stats(25, 0.1, 0.4), Stats(50, 0.3, 0.8)],
            [new IndexSample(25, 0, 100, 5, 3, 0.05, -1, 1, 0.01, 1)]);
        Assert.StartsWith("does not agree", rising.Narrowing);
        Assert.StartsWith("does not agree", rising.CorrelationFalls);
        Assert.StartsWith("does not agree", rising.IndexSmall);
    }

    [Fact]
    public void TheLearningRateDecaysFromTheFirstToTheLastEpochAndBadSettingsNameTheirOption()
    {
        var s = LossSurfacesSettings.For(Budget.Small);
        Assert.Equal(s.Lr, s.LrAt(0), 15);
        Assert.Equal(s.Lr * s.FinalLrRatio, s.LrAt(s.Epochs - 1), 12);
        Assert.True(s.LrAt(10) < s.LrAt(9));
        Assert.Equal([25, 50, 100, 250, 500], LossSurfacesSettings.For(Budget.Paper).Sizes);
        Assert.True(LossSurfacesSettings.For(Budget.Paper).Networks >= 100);
        Assert.Contains("--network-count", Assert.Throws<ArgumentException>(() => (s with { Networks = 1 }).Validate()).Message);
        Assert.Contains("--sizes", Assert.Throws<ArgumentException>(() => (s with { Sizes = [25, 25] }).Validate()).Message);
        Assert.Contains("--epochs", Assert.Throws<ArgumentException>(() => (s with { Epochs = 0 }).Validate()).Message);
    }
}
