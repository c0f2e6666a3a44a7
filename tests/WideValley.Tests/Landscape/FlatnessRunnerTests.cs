using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Landscape;
using WideValley.Landscape.Flatness;
using WideValley.Tests.Support;
using static TorchSharp.torch;

namespace WideValley.Tests.Landscape;

/// <summary>
/// The flatness runner on models whose answers are known: quadratic losses 0.5 w^T H w with a chosen (rotated,
/// non-diagonal) Hessian, so that trace and lambda_max are known in closed form; the store's resume, redo and
/// interruption rules with a counting measure; the budgets' checks; and the cost estimate against the work done.
/// </summary>
public sealed class FlatnessRunnerTests
{
    /// <summary>A "network" whose output is its weight vector w (repeated per sample); with <see cref="QuadraticLoss"/> the loss is 0.5 w^T H w.</summary>
    private sealed class WeightsAsOutput : nn.Module<Tensor, Tensor>
    {
        public WeightsAsOutput(double[] start) : base("quadratic") =>
            register_parameter("w", new TorchSharp.Modules.Parameter(tensor(start, ScalarType.Float64)));

        public override Tensor forward(Tensor input) => get_parameter("w")!.unsqueeze(0).expand(input.shape[0], -1);
    }

    /// <summary>H = Q diag(eigenvalues) Q^T with a seeded random rotation Q (float64).</summary>
    private static Tensor Hessian(double[] eigenvalues, long seed)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        var n = eigenvalues.Length;
        var (q, _) = linalg.qr(randn(n, n, ScalarType.Float64, generator: generator));
        return q.matmul(diag(tensor(eigenvalues, ScalarType.Float64))).matmul(q.t()).MoveToOuterDisposeScope();
    }

    private static Func<Tensor, Tensor, Tensor> QuadraticLoss(Tensor h) => (output, _) => output.matmul(h).mul(output).sum(1).mul(0.5).mean();

    /// <summary>A flatness model whose loss is 0.5 w^T H w with H = Q diag(<paramref name="eigenvalues"/>) Q^T (seeded Q), at w = <paramref name="start"/> (default 0, the minimum).</summary>
    internal static FlatnessModel Quadratic(string name, double[] eigenvalues, long seed, double[]? start = null)
    {
        TorchRuntime.EnsureInitialized();
        var h = Hessian(eigenvalues, seed).DetachFromDisposeScope();
        var module = new WeightsAsOutput(start ?? new double[eigenvalues.Length]);
        var inputs = zeros(1, 1, ScalarType.Float64).DetachFromDisposeScope();
        var labels = zeros(1, ScalarType.Int64).DetachFromDisposeScope();
        return new FlatnessModel
        {
            Name = name,
            Source = name,
            Module = module,
            Train = [(inputs, labels)],
            Landscape = new LandscapeOptions { Loss = QuadraticLoss(h), LossName = $"quadratic-{name}" },
        };
    }

    private static double[] Spectrum(double scale) => Enumerable.Range(0, 20).Select(i => scale * (0.1 + 0.05 * i)).ToArray();

    [Fact]
    public void ComparisonPicksTheQuadraticWithTheSmallerTraceByManyStandardErrorsAndLanczosFindsLambdaMax()
    {
        using var dir = new TempDir();
        var sharp = Quadratic("sharp", Spectrum(3), seed: 1);
        var flat = Quadratic("flat", Spectrum(1), seed: 2);
        var budget = FlatnessBudget.Quick with { TraceProbes = 200, LanczosSteps = 40, LanczosTolerance = 1e-8 };
        var results = FlatnessRunner.Run([sharp, flat], new FlatnessRunSettings
        {
            Budget = budget, Seed = 7, OutDir = dir.Path, Measures = [new HessianTrace(), new HessianExtremes()], Interpolations = false,
        });

        var trueTraces = new[] { Spectrum(3).Sum(), Spectrum(1).Sum() };
        for (var i = 0; i < 2; i++)
        {
            var trace = results.Models[i].Value("hessian_trace")!;
            Assert.NotNull(trace.StandardError);
            Assert.True(trace.StandardError > 0, "a rotated Hessian gives the Hutchinson estimate a positive variance");
            Assert.True(Math.Abs(trace.Value - trueTraces[i]) < 5 * trace.StandardError!.Value,
                $"{results.Models[i].Name}: trace {trace.Value} ± {trace.StandardError} vs the closed form {trueTraces[i]}");
            Assert.Equal(new[] { 3.0, 1.0 }[i] * 1.05, results.Models[i].Value("lambda_max")!.Value, 8);
        }

        var traceRow = results.Comparison.Single(r => r.Name == "hessian_trace");
        Assert.Equal(1, traceRow.Flattest);
        Assert.NotNull(traceRow.Sigmas);
        Assert.True(traceRow.Sigmas > 3, $"{traceRow.Verdict}");
        Assert.StartsWith("flat flatter by", traceRow.Verdict);
        var lambdaRow = results.Comparison.Single(r => r.Name == "lambda_max");
        Assert.Equal(1, lambdaRow.Flattest);
        Assert.Null(lambdaRow.Sigmas);
        Assert.Equal("flat flatter (no standard error)", lambdaRow.Verdict);
    }

    [Fact]
    public void ComparisonSaysWhenThereIsNothingToJudge()
    {
        FlatnessValue V(double x, double? se, FlatterWhen w = FlatterWhen.Higher) => new("v", "v", x, se, w);
        // (5 - 2) / sqrt(1.6^2 + 1.2^2) = 1.5 standard errors.
        var judged = FlatnessComparison.Row("m", V(1, 0.3), ReluRescaling.Invariant, [V(5, 1.6), V(2, 1.2)], ["A", "B"]);
        Assert.Equal(0, judged.Flattest);
        Assert.Equal(1.5, judged.Sigmas!.Value, 12);
        Assert.Equal("A flatter by 1.5 standard errors", judged.Verdict);
        var tie = FlatnessComparison.Row("m", V(1, null), ReluRescaling.Invariant, [V(2, null), V(2, null)], ["A", "B"]);
        Assert.Null(tie.Flattest);
        Assert.Equal("a tie", tie.Verdict);
        var loss = FlatnessComparison.Row("m", V(1, null, FlatterWhen.NotJudged), ReluRescaling.Invariant, [V(2, null), V(1, null)], ["A", "B"]);
        Assert.Equal("not a flatness measure", loss.Verdict);
        var three = FlatnessComparison.Row("m", V(1, null, FlatterWhen.Lower), ReluRescaling.Invariant, [V(3, null), V(1, null), V(double.NaN, null)], ["A", "B", "C"]);
        Assert.Equal(1, three.Flattest);
        Assert.Equal("B flatter (no standard error)", three.Verdict);
    }

    /// <summary>A measure that counts its runs and reports the loss; it can cancel a token mid-run to stand for Ctrl-C.</summary>
    private sealed class CountingMeasure(string name, CancellationTokenSource? cancelInside = null) : IFlatnessMeasure
    {
        public int Runs { get; private set; }

        public string Name => name;
        public string Title => $"counting {name}";
        public ReluRescaling Rescaling => ReluRescaling.Invariant;
        public string RescalingReason => "a test measure";
        public JsonObject Settings(FlatnessBudget budget) => new() { ["points"] = budget.SlicePoints };
        public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(0, 1, 0);

        public MeasureResult Run(FlatnessContext context)
        {
            Runs++;
            if (cancelInside is not null)
            {
                cancelInside.Cancel();
                context.Cancellation.ThrowIfCancellationRequested();
            }
            using var hvp = new Hvp(context.Model, context.Train, context.Landscape);
            return new MeasureResult
            {
                Measure = Name,
                Values = [new($"loss_{name}", "loss", hvp.Evaluate().Loss, 0.5, FlatterWhen.Lower)],
                Tables = [new FlatnessTable("t", "t", FlatnessPlotKind.Line, [new FlatnessColumn("x", [0, 1]), new FlatnessColumn("y", [double.NaN, 2])], ["a", "b"])],
                Used = new MeasureCost(0, 1, 0),
            };
        }
    }

    [Fact]
    public void ARerunReusesWhatIsStoredRedoesWhatOtherSettingsOrADamagedFileMadeAndAChangedModelIsMeasuredAgain()
    {
        using var dir = new TempDir();
        var model = Quadratic("q", Spectrum(1), seed: 1, start: Enumerable.Repeat(0.5, 20).ToArray());
        var first = new CountingMeasure("first");
        var second = new CountingMeasure("second");
        var events = new List<FlatnessEvent>();
        FlatnessRunSettings Settings(FlatnessBudget budget) => new()
        {
            Budget = budget, OutDir = dir.Path, Measures = [first, second], Interpolations = false, Events = events.Add,
        };
        var run1 = FlatnessRunner.Run([model], Settings(FlatnessBudget.Quick));
        Assert.Equal((1, 1), (first.Runs, second.Runs));
        var stored = FlatnessRunner.StoredPath(dir.Path, model.Id, "first");
        Assert.True(File.Exists(stored));

        // Same settings: nothing is measured; the stored values (NaN in a table included) come back as they were.
        var run2 = FlatnessRunner.Run([model], Settings(FlatnessBudget.Quick));
        Assert.Equal((1, 1), (first.Runs, second.Runs));
        Assert.All(run2.Models[0].Measurements, m => Assert.True(m.Reused));
        Assert.Equal(run1.Models[0].Value("loss_first")!.Value, run2.Models[0].Value("loss_first")!.Value);
        Assert.True(double.IsNaN(run2.Models[0].Measurements[0].Result.Tables[0].Columns[1].Values[0]));
        Assert.Equal(["a", "b"], run2.Models[0].Measurements[0].Result.Tables[0].Labels!);

        // Other settings: redone and replaced, with an event saying why.
        events.Clear();
        FlatnessRunner.Run([model], Settings(FlatnessBudget.Quick with { SlicePoints = 7 }));
        Assert.Equal((2, 2), (first.Runs, second.Runs));
        Assert.Contains(events, e => e.Kind == FlatnessEventKind.MeasureRedone && e.Measure == "first" && e.Message.Contains("other settings", StringComparison.Ordinal));

        // A damaged file is measured again.
        File.WriteAllText(stored, "{ \"measure\": ");
        events.Clear();
        FlatnessRunner.Run([model], Settings(FlatnessBudget.Quick with { SlicePoints = 7 }));
        Assert.Equal((3, 2), (first.Runs, second.Runs));
        Assert.Contains(events, e => e.Kind == FlatnessEventKind.MeasureRedone && e.Message.Contains("unreadable", StringComparison.Ordinal));

        // Changed weights: a new identity, measured afresh; the old model's files stay.
        using (no_grad()) model.Module.parameters().First().add_(0.25);
        Assert.False(File.Exists(FlatnessRunner.StoredPath(dir.Path, model.Id, "first")));
        FlatnessRunner.Run([model], Settings(FlatnessBudget.Quick with { SlicePoints = 7 }));
        Assert.Equal((4, 3), (first.Runs, second.Runs));
        Assert.True(File.Exists(stored));
    }

    [Fact]
    public void AnInterruptionKeepsTheFinishedMeasurementsAndTheNextRunResumesAfterThem()
    {
        using var dir = new TempDir();
        var model = Quadratic("q", Spectrum(1), seed: 1);
        using var stop = new CancellationTokenSource();
        var first = new CountingMeasure("first");
        var interrupted = new CountingMeasure("second", stop);
        Assert.Throws<OperationCanceledException>(() => FlatnessRunner.Run([model], new FlatnessRunSettings
        {
            Budget = FlatnessBudget.Quick, OutDir = dir.Path, Measures = [first, interrupted], Interpolations = false, Cancellation = stop.Token,
        }));
        Assert.True(File.Exists(FlatnessRunner.StoredPath(dir.Path, model.Id, "first")));
        Assert.False(File.Exists(FlatnessRunner.StoredPath(dir.Path, model.Id, "second")));

        var second = new CountingMeasure("second");
        var results = FlatnessRunner.Run([model], new FlatnessRunSettings
        {
            Budget = FlatnessBudget.Quick, OutDir = dir.Path, Measures = [first, second], Interpolations = false,
        });
        Assert.Equal((1, 1), (first.Runs, second.Runs));
        Assert.True(results.Models[0].Measurements[0].Reused);
        Assert.False(results.Models[0].Measurements[1].Reused);
    }

    [Fact]
    public void TheCostEstimateBoundsTheWorkEachMeasureDidAndIsWithinAFactorTwoOfTheHvpsInAll()
    {
        using var dir = new TempDir();
        // A small tanh network on random data: every measure that runs on a classifier.
        var net = LandscapeFixtures.TanhNet(dtype: ScalarType.Float32);
        var model = new FlatnessModel
        {
            Name = "tanh", Source = "tanh", Module = net,
            Train = LandscapeFixtures.RandomSet([16, 16], dtype: ScalarType.Float32),
            Test = LandscapeFixtures.RandomSet([8], seed: 9, dtype: ScalarType.Float32),
        };
        var settings = new FlatnessRunSettings { Budget = FlatnessBudget.Quick, OutDir = dir.Path };
        var estimates = FlatnessRunner.Estimate([model], settings);
        var results = FlatnessRunner.Run([model], settings, estimates);
        var measured = results.Models[0].Measurements;
        Assert.Equal(FlatnessMeasures.All.Select(m => m.Name), measured.Select(m => m.Measure));
        foreach (var m in measured)
        {
            var estimate = estimates[0].Measures.Single(e => e.Measure == m.Measure).Cost;
            var used = m.Result.Used;
            Assert.True(used.Hvps <= estimate.Hvps && used.ForwardPasses <= estimate.ForwardPasses + 1e-9 && used.Gradients <= estimate.Gradients
                        && used.SampleGradients <= estimate.SampleGradients && used.GaussNewtonProducts <= estimate.GaussNewtonProducts,
                $"{m.Measure}: used {used}, estimated {estimate}");
        }
        // The Gauss-Newton products are their own unit: counted, timed, and not mixed into the HVPs.
        var gaussNewton = measured.Single(m => m.Measure == "gauss-newton-fisher").Result.Used;
        Assert.True(gaussNewton.GaussNewtonProducts == FlatnessBudget.Quick.GaussNewtonProbes && gaussNewton.Hvps == 0, $"gauss-newton-fisher used {gaussNewton}");
        Assert.True(estimates[0].Units.GaussNewtonSeconds > 0);
        var usedHvps = measured.Sum(m => m.Result.Used.Hvps);
        var estimatedHvps = estimates[0].Measures.Sum(m => m.Cost.Hvps);
        Assert.True(usedHvps >= estimatedHvps / 2, $"{usedHvps} HVPs used, {estimatedHvps} estimated");
        Assert.True(estimates[0].Units.HvpSeconds > 0 && estimates[0].SecondsToSpend > 0);
        // The gap is there because the model has a test set.
        Assert.NotNull(results.Models[0].Value("loss_gap"));
        // A second estimate knows that everything is stored.
        Assert.All(FlatnessRunner.Estimate([model], settings)[0].Measures, m => Assert.True(m.Stored));
    }

    [Fact]
    public void UnderTheReluRescalingOfDinhEtAlTheInvariantMeasuresDoNotMoveAndTheOthersDo()
    {
        using var dir = new TempDir();
        TorchRuntime.EnsureInitialized();
        var (original, rescaled) = LandscapeFixtures.ReluRescaledPair();
        var train = LandscapeFixtures.RandomSet([24], seed: 3);
        var test = LandscapeFixtures.RandomSet([8], seed: 4);
        FlatnessModel Model(string name, nn.Module<Tensor, Tensor> module) => new() { Name = name, Source = name, Module = module, Train = train, Test = test };
        var results = FlatnessRunner.Run([Model("original", original), Model("rescaled", rescaled)], new FlatnessRunSettings
        {
            Budget = FlatnessBudget.Quick with { LangevinStepTimesGamma = 0.01 }, Seed = 5, OutDir = dir.Path, Interpolations = false,
        });
        // Same function, so the same losses: the rescaling is exact.
        Assert.Equal(results.Models[0].Value("train_loss")!.Value, results.Models[1].Value("train_loss")!.Value, 10);
        foreach (var measure in FlatnessMeasures.All)
        {
            double[] Numbers(int model)
            {
                var result = results.Models[model].Measurements.Single(m => m.Measure == measure.Name).Result;
                return [.. result.Values.Select(v => v.Value), .. result.Tables.SelectMany(t => t.Columns.Last().Values)];
            }
            var (x, y) = (Numbers(0), Numbers(1));
            Assert.Equal(x.Length, y.Length);
            var largest = Enumerable.Range(0, x.Length).Max(i => Math.Abs(x[i] - y[i]) / Math.Max(1e-3, Math.Abs(x[i])));
            if (measure.Rescaling == ReluRescaling.Invariant)
                Assert.True(largest < 1e-6, $"{measure.Name} is said to be invariant but moved by {largest:G3} (relative)");
            else
                Assert.True(largest > 1e-2, $"{measure.Name} is said not to be invariant but moved by only {largest:G3} (relative)");
        }
    }

    [Fact]
    public void TheFisherTraceIsTheMeanSquaredPerSampleGradientNormWhetherTheSetIsSplitIntoChunksOrNot()
    {
        var net = LandscapeFixtures.TanhNet();
        var train = LandscapeFixtures.RandomSet([7, 6]);
        // The reference: (1/N) sum_i ||grad of sample i's loss||^2, one autograd call per sample.
        double reference = 0;
        var parameters = net.parameters().ToArray();
        foreach (var (inputs, labels) in train)
            for (long i = 0; i < inputs.shape[0]; i++)
            {
                using var scope = NewDisposeScope();
                var loss = nn.functional.cross_entropy(net.call(inputs.narrow(0, i, 1)), labels.narrow(0, i, 1));
                reference += torch.autograd.grad([loss], parameters).Sum(g => g.pow(2).sum().ToDouble());
            }
        reference /= 13;
        var context = new FlatnessContext { Model = net, Train = train, Budget = FlatnessBudget.Quick };
        var whole = GaussNewtonAndFisher.FisherTrace(context);
        // 8 bytes x 53 parameters x 3 samples: chunks of 3 samples that cut across the batches.
        var chunked = GaussNewtonAndFisher.FisherTrace(context, maxBytes: 8 * 53 * 3);
        Assert.Equal(13, whole.Samples);
        Assert.Equal(13, chunked.Samples);
        Assert.Equal(reference, whole.Trace, 10);
        Assert.Equal(reference, chunked.Trace, 10);
        Assert.Equal(reference, chunked.Layers.Sum(l => l.Trace), 10);
        Assert.Equal(["fc1", "fc2"], chunked.Layers.Select(l => l.Name));
    }

    [Theory]
    [InlineData("TraceProbes")]
    [InlineData("SliceRadius")]
    [InlineData("Scopes")]
    [InlineData("SlicePoints")]
    [InlineData("Temperature")]
    [InlineData("LanczosSteps")]
    public void ABudgetWithANonPositiveValueIsRefusedByName(string parameter)
    {
        var budget = parameter switch
        {
            "TraceProbes" => FlatnessBudget.Quick with { TraceProbes = 0 },
            "SliceRadius" => FlatnessBudget.Quick with { SliceRadius = -1 },
            "Scopes" => FlatnessBudget.Quick with { Scopes = [100, 0] },
            "SlicePoints" => FlatnessBudget.Quick with { SlicePoints = 1 },
            "LanczosSteps" => FlatnessBudget.Quick with { TopEigenvalues = 30 },
            _ => FlatnessBudget.Quick with { Temperature = double.NaN },
        };
        var e = Assert.Throws<ArgumentException>(budget.Validate);
        Assert.Contains(parameter == "Scopes" ? "scope gamma" : parameter, e.Message);
        foreach (var name in FlatnessBudget.Names) FlatnessBudget.Named(name).Validate();
        Assert.Throws<ArgumentException>(() => FlatnessBudget.Named("huge"));
    }
}
