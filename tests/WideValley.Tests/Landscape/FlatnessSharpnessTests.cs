using TorchSharp;
using WideValley.Landscape;
using WideValley.Landscape.Flatness;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Landscape;

/// <summary>
/// The sharpness measures of the flatness report (<see cref="SamSharpnessMeasure"/> and its siblings) on models whose
/// answers are known: the runner tests' quadratic losses 0.5 w^T H w with a chosen rotated Hessian (SAM at the minimum
/// reaches rho^2 lambda_max / 2; sigma' with the loss criterion is sqrt(2 threshold / tr H)); the verdict's direction
/// (lower SAM sharpness and higher sigma' are flatter); the ReLU rescaling of Dinh et al.; the cost estimate; the budgets.
/// </summary>
public sealed class FlatnessSharpnessTests
{
    /// <summary>The runner tests' quadratic 0.5 w^T H w with a chosen rotated Hessian, at its minimum.</summary>
    private static FlatnessModel Quadratic(string name, double[] eigenvalues, long seed) => FlatnessRunnerTests.Quadratic(name, eigenvalues, seed);

    /// <summary>19 eigenvalues in [0.05, 0.95] x scale and a top one 2 x scale, well apart so that a few ascent steps reach it.</summary>
    private static double[] Spectrum(double scale) => [.. Enumerable.Range(1, 19).Select(i => scale * 0.05 * i), 2 * scale];

    [Fact]
    public void AtTheMinimumOfAQuadraticSamIsHalfRhoSquaredLambdaMaxAndTheComparisonJudgesSamLowerAndSigmaHigherAsFlatter()
    {
        using var dir = new TempDir();
        var sharp = Quadratic("sharp", Spectrum(3), seed: 1);
        var flat = Quadratic("flat", Spectrum(1), seed: 2);
        var budget = FlatnessBudget.Quick with { SharpnessAscentSteps = 40, PacBayesSamples = 100, PacBayesRelativeTolerance = 0.001 };
        var results = FlatnessRunner.Run([sharp, flat], new FlatnessRunSettings
        {
            Budget = budget, Seed = 7, OutDir = dir.Path, Interpolations = false,
            Measures = [new SamSharpnessMeasure(), new PacBayesSigmaMeasure(magnitudeAware: false, PacBayesCriterion.Loss)],
        });

        const double rho = 0.05;
        var lambdaMax = new[] { 6.0, 2.0 };
        var traces = new[] { Spectrum(3).Sum(), Spectrum(1).Sum() };
        for (var i = 0; i < 2; i++)
        {
            var model = results.Models[i];
            // At the minimum the gradient is zero: one step goes along a random direction (a lower bound), the ascent climbs to the top.
            Assert.Equal(0.5 * rho * rho * lambdaMax[i], model.Value("sam_sharpness_steps")!.Value, 10);
            Assert.True(model.Value("sam_sharpness")!.Value < model.Value("sam_sharpness_steps")!.Value);
            Assert.Null(model.Value("sam_sharpness_steps")!.StandardError);
            Assert.Contains(model.Measurements.Single(m => m.Measure == "sam-sharpness").Result.Notes, n => n.Contains("random direction", StringComparison.Ordinal));
            // sigma' = sqrt(2 threshold / tr H) for the loss criterion, to Monte Carlo accuracy (100 antithetic pairs).
            var sigma = model.Value("pac_bayes_sigma_loss")!;
            Assert.Null(sigma.StandardError);
            Assert.Equal(FlatterWhen.Higher, sigma.Flatter);
            var closedForm = Math.Sqrt(2 * 0.1 / traces[i]);
            Assert.True(Math.Abs(sigma.Value / closedForm - 1) < 0.1, $"{model.Name}: sigma' {sigma.Value} vs {closedForm}");
            var rise = model.Value("pac_bayes_sigma_loss_rise")!;
            Assert.True(rise.StandardError > 0);
            Assert.True(Math.Abs(rise.Value - 0.1) < 4 * rise.StandardError!.Value + 0.01, $"rise {rise.Value} ± {rise.StandardError}");
        }

        var sam = results.Comparison.Single(r => r.Name == "sam_sharpness_steps");
        Assert.Equal(1, sam.Flattest);
        Assert.Equal("flat flatter (no standard error)", sam.Verdict);
        var pac = results.Comparison.Single(r => r.Name == "pac_bayes_sigma_loss");
        Assert.True(results.Models[1].Value("pac_bayes_sigma_loss")!.Value > results.Models[0].Value("pac_bayes_sigma_loss")!.Value);
        Assert.Equal(1, pac.Flattest);
        Assert.Equal("flat flatter (no standard error)", pac.Verdict);
        Assert.Equal("not a flatness measure", results.Comparison.Single(r => r.Name == "pac_bayes_sigma_loss_rise").Verdict);
    }

    [Fact]
    public void ARiseWithoutSpreadAcrossTheDrawsGetsNoStandardErrorRatherThanZero()
    {
        using var dir = new TempDir();
        TorchRuntime.EnsureInitialized();
        // All-zero inputs and a linear network without bias: every logit is 0 whatever the noise, so every prediction
        // is class 0 at every sigma and every draw's error rise is exactly 0 (sigma' at the upper end of the bracket).
        var labels = tensor(new long[] { 0, 1, 2, 1, 0, 2, 1, 1 });
        List<(Tensor, Tensor)> train = [(zeros(8, 6, ScalarType.Float64), labels)];
        random.manual_seed(3);
        var net = nn.Sequential(("fc", nn.Linear(6, 3, hasBias: false))).to(ScalarType.Float64);
        var budget = FlatnessBudget.Quick with { PacBayesSamples = 8 };
        var results = FlatnessRunner.Run([new FlatnessModel { Name = "blind", Source = "blind", Module = net, Train = train }], new FlatnessRunSettings
        {
            Budget = budget, Seed = 5, OutDir = dir.Path, Interpolations = false, Measures = [new PacBayesSigmaMeasure(magnitudeAware: false)],
        });
        var model = results.Models[0];
        Assert.Equal(budget.PacBayesSigmaHigh, model.Value("pac_bayes_sigma")!.Value);
        var rise = model.Value("pac_bayes_sigma_rise")!;
        Assert.Equal(0, rise.Value);
        Assert.Null(rise.StandardError);
        Assert.Contains(model.Measurements.Single().Result.Notes, n => n.Contains("all 8 antithetic pairs gave the same error rise", StringComparison.Ordinal));
        Assert.DoesNotContain(model.Measurements.Single().Result.Notes, n => n.Contains("has its Monte Carlo one", StringComparison.Ordinal));
    }

    [Fact]
    public void UnderTheReluRescalingOfDinhEtAlTheSharpnessMeasuresStatedInvariantDoNotMoveAndTheOthersDo()
    {
        using var dir = new TempDir();
        TorchRuntime.EnsureInitialized();
        var (original, rescaled) = LandscapeFixtures.ReluRescaledPair();
        var train = LandscapeFixtures.RandomSet([24], seed: 3);
        FlatnessModel Model(string name, nn.Module<Tensor, Tensor> module) => new() { Name = name, Source = name, Module = module, Train = train };
        IFlatnessMeasure[] measures =
        [
            new EpsilonSharpnessMeasure(), new SamSharpnessMeasure(), new AdaptiveSharpnessMeasure(), new AdaptiveSharpnessMeasure(eta: 0),
            new PacBayesSigmaMeasure(magnitudeAware: false), new PacBayesSigmaMeasure(magnitudeAware: true),
            new PacBayesSigmaMeasure(magnitudeAware: true, PacBayesCriterion.Loss),
        ];
        Assert.Equal(
            [ReluRescaling.NotInvariant, ReluRescaling.NotInvariant, ReluRescaling.NotInvariant, ReluRescaling.Invariant, ReluRescaling.NotInvariant, ReluRescaling.Invariant, ReluRescaling.Invariant],
            measures.Select(m => m.Rescaling));
        var results = FlatnessRunner.Run([Model("original", original), Model("rescaled", rescaled)], new FlatnessRunSettings
        {
            Budget = FlatnessBudget.Quick, Seed = 5, OutDir = dir.Path, Interpolations = false, Measures = measures,
        });
        double Moved(IFlatnessMeasure measure)
        {
            double[] Numbers(int model) => [.. results.Models[model].Measurements.Single(m => m.Measure == measure.Name).Result.Values.Select(v => v.Value)];
            var (x, y) = (Numbers(0), Numbers(1));
            return Enumerable.Range(0, x.Length).Max(i => Math.Abs(x[i] - y[i]) / Math.Max(1e-3, Math.Abs(x[i])));
        }
        foreach (var measure in measures)
        {
            var moved = Moved(measure);
            if (measure.Rescaling == ReluRescaling.Invariant)
                Assert.True(moved < 1e-6, $"{measure.Name} is said to be invariant but moved by {moved:G3} (relative)");
            else
                Assert.True(moved > 1e-2, $"{measure.Name} is said not to be invariant but moved by only {moved:G3} (relative)");
        }
        // ASAM with eta = 0.01 is approximately invariant: it moves, but far less than SAM.
        Assert.True(Moved(measures[2]) < Moved(measures[1]) / 5, $"ASAM moved {Moved(measures[2]):G3}, SAM {Moved(measures[1]):G3}");
        Assert.Contains("approximately", measures[2].RescalingReason, StringComparison.Ordinal);
    }

    [Fact]
    public void TheCostEstimateBoundsTheWorkEachSharpnessMeasureDidAndTheBisectionBoundIsItsLongestPath()
    {
        using var dir = new TempDir();
        var net = LandscapeFixtures.TanhNet(dtype: ScalarType.Float32);
        var model = new FlatnessModel { Name = "tanh", Source = "tanh", Module = net, Train = LandscapeFixtures.RandomSet([16, 16], dtype: ScalarType.Float32) };
        IFlatnessMeasure[] measures =
        [
            new EpsilonSharpnessMeasure(), new SamSharpnessMeasure(), new AdaptiveSharpnessMeasure(), new PacBayesSigmaMeasure(magnitudeAware: false),
            new PacBayesSigmaMeasure(magnitudeAware: true),
        ];
        var settings = new FlatnessRunSettings { Budget = FlatnessBudget.Quick, OutDir = dir.Path, Interpolations = false, Measures = measures };
        var estimates = FlatnessRunner.Estimate([model], settings);
        var results = FlatnessRunner.Run([model], settings, estimates);
        foreach (var m in results.Models[0].Measurements)
        {
            var estimate = estimates[0].Measures.Single(e => e.Measure == m.Measure).Cost;
            var used = m.Result.Used;
            Assert.True(used.Hvps == 0 && used.ForwardPasses <= estimate.ForwardPasses && used.Gradients <= estimate.Gradients && used.ForwardPasses > 0,
                $"{m.Measure}: used {used}, estimated {estimate}");
        }
        // SAM and ASAM do exactly what they estimate unless the ascent stops at a stationary point: 1 + steps gradients, 2 loss passes.
        var sam = results.Models[0].Measurements.Single(m => m.Measure == "sam-sharpness").Result.Used;
        Assert.Equal((2.0, 1.0 + FlatnessBudget.Quick.SharpnessAscentSteps), (sam.ForwardPasses, sam.Gradients));

        // The bound on the bisection: [1e-4, 2] halved until the width is at most 1% of the upper end, when every midpoint fails.
        Assert.Equal(21, PacBayesSigmaMeasure.MostBisections(1e-4, 2, 0.01));
        Assert.Equal(7, PacBayesSigmaMeasure.MostBisections(1, 2, 0.01));
        // A quadratic whose sigma' (loss criterion: sqrt(2 x 0.1 / tr H) = 1.5e-4) lies just above the floor: every
        // midpoint but the last few fails, close to the longest path, and the estimate still bounds the work.
        var steep = Quadratic("steep", Enumerable.Repeat(0.2 / (1.5e-4 * 1.5e-4) / 20, 20).ToArray(), seed: 3);
        var loss = new PacBayesSigmaMeasure(magnitudeAware: false, PacBayesCriterion.Loss);
        var bound = loss.Cost(FlatnessBudget.Quick, steep.Size());
        var measured = FlatnessRunner.Run([steep], settings with { Measures = [loss] }).Models[0].Measurements[0].Result;
        Assert.InRange(measured.Values[0].Value, 1e-4, 2e-4);
        Assert.True(measured.Used.ForwardPasses <= bound.ForwardPasses, $"used {measured.Used}, bound {bound}");
        Assert.True(measured.Used.ForwardPasses >= 0.8 * bound.ForwardPasses, $"used {measured.Used}, bound {bound}: the bound is that of the longest path");
    }

    [Theory]
    [InlineData("SharpnessEpsilon")]
    [InlineData("EpsilonSharpnessSteps")]
    [InlineData("SamRho")]
    [InlineData("AsamRho")]
    [InlineData("SharpnessAscentSteps")]
    [InlineData("PacBayesThreshold")]
    [InlineData("PacBayesSamples")]
    [InlineData("PacBayesRelativeTolerance")]
    [InlineData("PacBayesSigmaLow")]
    [InlineData("PacBayesSigmaHigh")]
    public void ABudgetWithASharpnessSettingOutOfRangeIsRefusedByName(string parameter)
    {
        var budget = parameter switch
        {
            "SharpnessEpsilon" => FlatnessBudget.Quick with { SharpnessEpsilon = 0 },
            "EpsilonSharpnessSteps" => FlatnessBudget.Quick with { EpsilonSharpnessSteps = 0 },
            "SamRho" => FlatnessBudget.Quick with { SamRho = double.NaN },
            "AsamRho" => FlatnessBudget.Quick with { AsamRho = -0.5 },
            "SharpnessAscentSteps" => FlatnessBudget.Quick with { SharpnessAscentSteps = 1 },
            "PacBayesThreshold" => FlatnessBudget.Quick with { PacBayesThreshold = 1.5 },
            "PacBayesSamples" => FlatnessBudget.Quick with { PacBayesSamples = 1 },
            "PacBayesRelativeTolerance" => FlatnessBudget.Quick with { PacBayesRelativeTolerance = 1 },
            "PacBayesSigmaLow" => FlatnessBudget.Quick with { PacBayesSigmaLow = 0 },
            _ => FlatnessBudget.Quick with { PacBayesSigmaHigh = 1e-5 },
        };
        var e = Assert.Throws<ArgumentException>(budget.Validate);
        Assert.Contains(parameter, e.Message);
        Assert.Contains("'quick'", e.Message);
    }
}
