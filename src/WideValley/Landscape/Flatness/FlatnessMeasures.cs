using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape.Flatness;

/// <summary>The built-in flatness measures, in the order the report lists them. Each calls the library's own service.</summary>
public static class FlatnessMeasures
{
    /// <summary>Every built-in measure. A new measure is one more entry here.</summary>
    public static IReadOnlyList<IFlatnessMeasure> All { get; } =
    [
        new LossAndGap(),
        new HessianExtremes(),
        new HessianTrace(),
        new HessianDensity(),
        new GaussNewtonAndFisher(),
        new LocalEntropy(),
        new RandomSlices(),
        new EigenvectorSlice(),
        new Surface(),
        new EpsilonSharpnessMeasure(),
        new SamSharpnessMeasure(),
        new AdaptiveSharpnessMeasure(),
        new PacBayesSigmaMeasure(magnitudeAware: false),
        new PacBayesSigmaMeasure(magnitudeAware: true),
    ];

    /// <summary>The measure called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No such measure; the message lists the names.</exception>
    public static IFlatnessMeasure Named(string name) =>
        All.FirstOrDefault(m => m.Name == name)
        ?? throw new ArgumentException($"no flatness measure is called '{name}'; the measures are {string.Join(", ", All.Select(m => m.Name))}", nameof(name));

    /// <summary>Thresholds t of the fractions of |lambda| below t.</summary>
    public static IReadOnlyList<double> DensityThresholds { get; } = [1e-4, 1e-3, 1e-2, 1e-1];

    /// <summary>A scope or threshold as a key fragment: 1e-4, 1000.</summary>
    internal static string Key(double value) => value.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>Mean and standard error of the mean (NaN with fewer than two values).</summary>
    internal static (double Mean, double StandardError) MeanAndError(IReadOnlyList<double> values)
    {
        var mean = values.Average();
        if (values.Count < 2) return (mean, double.NaN);
        var variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1);
        return (mean, Math.Sqrt(variance / values.Count));
    }

    /// <summary>Progress of a measure under its own name, so a display can give it a bar.</summary>
    internal static IProgress<CurvatureProgress>? Named(IProgress<CurvatureProgress>? progress, string phase) =>
        progress is null ? null : new Renamed(progress, phase);

    private sealed class Renamed(IProgress<CurvatureProgress> inner, string phase) : IProgress<CurvatureProgress>
    {
        public void Report(CurvatureProgress value) => inner.Report(value with { Method = phase });
    }

    /// <summary>The mean rise of the loss over slice points above the loss at the weights.</summary>
    internal static double MeanRise(IReadOnlyList<SlicePoint> points, double lossAtWeights) => points.Average(p => p.Loss - lossAtWeights);
}

/// <summary>Train and test loss and error and the generalisation gap: context for every other measure, never judged.</summary>
public sealed class LossAndGap : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "loss";

    /// <inheritdoc/>
    public string Title => "Loss, error and generalisation gap";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.Invariant;

    /// <inheritdoc/>
    public string RescalingReason => "depends on the network's function only";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => [];

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) =>
        new(0, 1 + (double)size.TestSamples / Math.Max(1, size.TrainSamples), 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var watch = Stopwatch.StartNew();
        var (trainLoss, trainError) = Evaluate(context, context.Train);
        var values = new List<FlatnessValue>
        {
            new("train_loss", "train loss", trainLoss, null, FlatterWhen.NotJudged),
            new("train_error_percent", "train error (%)", trainError, null, FlatterWhen.NotJudged),
        };
        double forward = 1;
        if (context.Test is { Count: > 0 } test)
        {
            var (testLoss, testError) = Evaluate(context, test);
            forward += (double)test.Sum(b => b.Inputs.shape[0]) / Math.Max(1, context.Train.Sum(b => b.Inputs.shape[0]));
            values.Add(new("test_loss", "test loss", testLoss, null, FlatterWhen.NotJudged));
            values.Add(new("test_error_percent", "test error (%)", testError, null, FlatterWhen.NotJudged));
            values.Add(new("loss_gap", "generalisation gap (test - train loss)", testLoss - trainLoss, null, FlatterWhen.NotJudged));
            values.Add(new("error_gap_percent", "generalisation gap (test - train error, %)", testError - trainError, null, FlatterWhen.NotJudged));
        }
        return new MeasureResult
        {
            Measure = Name,
            Values = values,
            Used = new MeasureCost(0, forward, 0),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = context.Test is { Count: > 0 } ? [] : ["the data has no test split: no generalisation gap"],
        };
    }

    private static (double Loss, double ErrorPercent) Evaluate(FlatnessContext context, IReadOnlyList<(Tensor Inputs, Tensor Labels)> set)
    {
        context.Cancellation.ThrowIfCancellationRequested();
        using var hvp = new Hvp(context.Model, set, context.Landscape);
        return hvp.Evaluate();
    }
}

/// <summary>lambda_max, the top-k and the most negative eigenvalues of the Hessian, by Lanczos.</summary>
public sealed class HessianExtremes : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "hessian-extremes";

    /// <inheritdoc/>
    public string Title => "Hessian extreme eigenvalues (Lanczos)";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.NotInvariant;

    /// <inheritdoc/>
    public string RescalingReason => "the Hessian of a rescaled layer is scaled by 1/a^2 (Dinh et al. 2017 make lambda_max as large as they like)";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new()
    {
        ["top"] = budget.TopEigenvalues, ["bottom"] = budget.BottomEigenvalues, ["steps"] = budget.LanczosSteps, ["tolerance"] = budget.LanczosTolerance,
    };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(2 * Math.Min(budget.LanczosSteps, size.Parameters), 0, 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        using var hvp = new Hvp(context.Model, context.Train, context.Landscape);
        LanczosOptions Options(string phase) => new()
        {
            MaxIterations = b.LanczosSteps, Tolerance = b.LanczosTolerance, Seed = context.Seed,
            Progress = FlatnessMeasures.Named(context.Progress, phase), Cancellation = context.Cancellation,
        };
        var top = Lanczos.Run(hvp, (int)Math.Min(b.TopEigenvalues, hvp.Dimension), SpectrumEnd.Largest, Options("lanczos largest"));
        var bottom = Lanczos.Run(hvp, (int)Math.Min(b.BottomEigenvalues, hvp.Dimension), SpectrumEnd.Smallest, Options("lanczos smallest"));
        var notes = new List<string>();
        if (!top.Converged) notes.Add($"Lanczos (largest) stopped at {top.Iterations} steps before every residual met {FlatnessMeasures.Key(b.LanczosTolerance)}");
        if (!bottom.Converged) notes.Add($"Lanczos (smallest) stopped at {bottom.Iterations} steps before every residual met {FlatnessMeasures.Key(b.LanczosTolerance)}");
        return new MeasureResult
        {
            Measure = Name,
            Values =
            [
                new("lambda_max", "Hessian λ_max", top.Eigenvalues[0], null, FlatterWhen.Lower),
                new("lambda_min", "Hessian λ_min (most negative)", bottom.Eigenvalues[0], null, FlatterWhen.NotJudged),
            ],
            Tables =
            [
                new FlatnessTable("top", "Largest Hessian eigenvalues", FlatnessPlotKind.Spectrum,
                    [new FlatnessColumn("eigenvalue", top.Eigenvalues), new FlatnessColumn("error_bound", top.ErrorBounds)]),
                new FlatnessTable("bottom", "Most negative Hessian eigenvalues", FlatnessPlotKind.None,
                    [new FlatnessColumn("eigenvalue", bottom.Eigenvalues), new FlatnessColumn("error_bound", bottom.ErrorBounds)]),
            ],
            Used = new MeasureCost(hvp.HvpCount, 0, 0),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = notes,
        };
    }
}

/// <summary>The Hessian trace by Hutchinson's estimator, total and per layer, with standard errors.</summary>
public sealed class HessianTrace : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "hessian-trace";

    /// <inheritdoc/>
    public string Title => "Hessian trace (Hutchinson), total and per layer";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.NotInvariant;

    /// <inheritdoc/>
    public string RescalingReason => "the rescaled layers' diagonal blocks scale by 1/a^2 and a^2";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new() { ["probes"] = budget.TraceProbes };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(budget.TraceProbes, 0, 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var watch = Stopwatch.StartNew();
        using var hvp = new Hvp(context.Model, context.Train, context.Landscape);
        var trace = Hutchinson.Run(hvp, new HutchinsonOptions
        {
            Probes = context.Budget.TraceProbes, Seed = context.Seed, Progress = FlatnessMeasures.Named(context.Progress, "hutchinson"),
            Cancellation = context.Cancellation,
        });
        var layers = trace.Layers;
        return new MeasureResult
        {
            Measure = Name,
            Values = [new("hessian_trace", "Hessian trace", trace.Total.Trace, trace.Total.StandardError, FlatterWhen.Lower)],
            Tables =
            [
                new FlatnessTable("layers", "Hessian trace per layer", FlatnessPlotKind.None,
                [
                    new FlatnessColumn("parameters", layers.Select(l => (double)l.Count).ToArray()),
                    new FlatnessColumn("trace", layers.Select(l => l.Trace).ToArray()),
                    new FlatnessColumn("standard_error", layers.Select(l => l.StandardError).ToArray()),
                ], layers.Select(l => l.Name).ToArray()),
            ],
            Used = new MeasureCost(hvp.HvpCount, 0, 0),
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }
}

/// <summary>The SLQ spectral density and the fractions of eigenvalues with |lambda| below 1e-4 ... 1e-1.</summary>
public sealed class HessianDensity : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "hessian-density";

    /// <inheritdoc/>
    public string Title => "Hessian eigenvalue density (SLQ)";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.NotInvariant;

    /// <inheritdoc/>
    public string RescalingReason => "the spectrum of the rescaled Hessian moves, and with it the fractions below fixed thresholds";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new() { ["probes"] = budget.SlqProbes, ["steps"] = budget.SlqSteps };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new((double)budget.SlqProbes * Math.Min(budget.SlqSteps, size.Parameters), 0, 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var watch = Stopwatch.StartNew();
        using var hvp = new Hvp(context.Model, context.Train, context.Landscape);
        var slq = Slq.Run(hvp, new SlqOptions
        {
            Probes = context.Budget.SlqProbes, Steps = context.Budget.SlqSteps, Seed = context.Seed,
            Progress = FlatnessMeasures.Named(context.Progress, "slq"), Cancellation = context.Cancellation,
        });
        var values = new List<FlatnessValue>();
        foreach (var t in FlatnessMeasures.DensityThresholds)
        {
            var (fraction, error) = slq.Estimate(x => Math.Abs(x) < t ? 1 : 0);
            values.Add(new($"fraction_abs_below_{FlatnessMeasures.Key(t)}", $"fraction of |λ| < {FlatnessMeasures.Key(t)}", fraction,
                context.Budget.SlqProbes > 1 ? error : null, FlatterWhen.Higher));
        }
        var density = slq.Density(400);
        return new MeasureResult
        {
            Measure = Name,
            Values = values,
            Tables = [new FlatnessTable("density", "Hessian eigenvalue density (SLQ)", FlatnessPlotKind.Density,
                [new FlatnessColumn("lambda", density.Grid), new FlatnessColumn("density", density.Density)])],
            Used = new MeasureCost(hvp.HvpCount, 0, 0),
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }
}

/// <summary>The Gauss-Newton trace (Hutchinson) and the empirical-Fisher trace (exact over the set), beside the Hessian's.</summary>
public sealed class GaussNewtonAndFisher : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "gauss-newton-fisher";

    /// <inheritdoc/>
    public string Title => "Gauss-Newton and empirical-Fisher traces";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.NotInvariant;

    /// <inheritdoc/>
    public string RescalingReason => "the per-sample gradients of a rescaled layer scale by 1/a, their squares by 1/a^2";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new() { ["gauss_newton_probes"] = budget.GaussNewtonProbes, ["fisher"] = "exact" };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(0, 0, 0, size.TrainSamples, budget.GaussNewtonProbes);

    /// <summary>
    /// The exact empirical-Fisher trace (1/N) sum_i ||g_i||^2, total and per layer, from <see cref="EmpiricalFisher"/>
    /// on chunks of the evaluation set small enough that a chunk's N_c x n gradient matrix stays below
    /// <see cref="FisherChunks.MaxBytes"/>; chunk traces are combined with weights N_c / N.
    /// </summary>
    internal static (double Trace, List<(string Name, double Trace)> Layers, long Samples) FisherTrace(FlatnessContext context, long maxBytes = FisherChunks.MaxBytes)
    {
        long dimension;
        using (var hvp = new Hvp(context.Model, context.Train, context.Landscape)) dimension = hvp.Dimension;
        var perChunk = Math.Max(1, maxBytes / (8 * dimension));
        var chunks = new List<List<(Tensor Inputs, Tensor Labels)>>();
        var current = new List<(Tensor Inputs, Tensor Labels)>();
        long inCurrent = 0;
        foreach (var (inputs, labels) in context.Train)
            for (long start = 0; start < inputs.shape[0];)
            {
                var take = Math.Min(inputs.shape[0] - start, perChunk - inCurrent);
                current.Add((inputs.narrow(0, start, take), labels.narrow(0, start, take)));
                start += take;
                inCurrent += take;
                if (inCurrent == perChunk)
                {
                    chunks.Add(current);
                    current = [];
                    inCurrent = 0;
                }
            }
        if (current.Count > 0) chunks.Add(current);
        var total = chunks.Sum(c => c.Sum(b => b.Inputs.shape[0]));
        double trace = 0;
        var layers = new List<(string Name, double Trace)>();
        try
        {
            foreach (var chunk in chunks)
            {
                context.Cancellation.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                using var fisher = new EmpiricalFisher(context.Model, chunk, context.Landscape);
                var weight = (double)fisher.SampleCount / total;
                var diagonal = fisher.Diagonal();
                trace += weight * diagonal.sum().ToDouble();
                var groups = fisher.Layout.Groups(LayerGrouping.PerModule);
                if (layers.Count == 0) layers.AddRange(groups.Select(g => (g.Name, 0.0)));
                for (var k = 0; k < groups.Count; k++)
                    layers[k] = (groups[k].Name, layers[k].Trace + weight * diagonal.narrow(0, groups[k].Offset, groups[k].Count).sum().ToDouble());
            }
        }
        finally
        {
            foreach (var chunk in chunks)
                foreach (var (inputs, labels) in chunk)
                {
                    inputs.Dispose();
                    labels.Dispose();
                }
        }
        return (trace, layers, total);
    }

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var watch = Stopwatch.StartNew();
        long applications;
        HutchinsonResult gn;
        using (var gaussNewton = new GaussNewton(context.Model, context.Train, context.Landscape))
        {
            gn = Hutchinson.Run(gaussNewton, new HutchinsonOptions
            {
                Probes = context.Budget.GaussNewtonProbes, Seed = context.Seed, Progress = FlatnessMeasures.Named(context.Progress, "gauss-newton"),
                Cancellation = context.Cancellation,
            });
            applications = gaussNewton.Applications;
        }
        context.Cancellation.ThrowIfCancellationRequested();
        var (fisherTrace, fisherLayers, samples) = FisherTrace(context);
        return new MeasureResult
        {
            Measure = Name,
            Values =
            [
                new("gauss_newton_trace", "Gauss-Newton trace", gn.Total.Trace, gn.Total.StandardError, FlatterWhen.Lower),
                new("fisher_trace", "empirical-Fisher trace (exact)", fisherTrace, null, FlatterWhen.Lower),
            ],
            Tables =
            [
                new FlatnessTable("gauss-newton-layers", "Gauss-Newton trace per layer", FlatnessPlotKind.None,
                [
                    new FlatnessColumn("trace", gn.Layers.Select(l => l.Trace).ToArray()),
                    new FlatnessColumn("standard_error", gn.Layers.Select(l => l.StandardError).ToArray()),
                ], gn.Layers.Select(l => l.Name).ToArray()),
                new FlatnessTable("fisher-layers", "Empirical-Fisher trace per layer", FlatnessPlotKind.None,
                    [new FlatnessColumn("trace", fisherLayers.Select(l => l.Trace).ToArray())], fisherLayers.Select(l => l.Name).ToArray()),
            ],
            Used = new MeasureCost(0, 0, 0, samples, applications),
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }
}

/// <summary>Most bytes of per-sample gradients held at once by the empirical-Fisher trace (chunks of the evaluation set).</summary>
internal static class FisherChunks
{
    public const long MaxBytes = 256L << 20;
}

/// <summary>
/// The local entropy F(x, gamma) relative to a flat landscape at the same height, for each scope of the budget: the
/// Langevin estimator Entropy-SGD's inner loop uses, and the direct Gaussian estimator with its standard error
/// (<see cref="LocalEntropyEstimate"/>).
/// </summary>
public sealed class LocalEntropy : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "local-entropy";

    /// <inheritdoc/>
    public string Title => "Local entropy F(x, γ) - F_flat";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.NotInvariant;

    /// <inheritdoc/>
    public string RescalingReason => "the coupling gamma/2 ||x - x'||^2 is isotropic in weight space, so a rescaled layer sees relatively larger or smaller noise";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new()
    {
        ["scopes"] = new JsonArray(budget.Scopes.Select(g => (JsonNode?)g).ToArray()), ["temperature"] = budget.Temperature,
        ["gaussian_samples"] = budget.EntropySamples, ["langevin_steps"] = budget.LangevinSteps, ["burn_in"] = budget.LangevinBurnIn,
        ["step_times_gamma"] = budget.LangevinStepTimesGamma,
    };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) =>
        new(0, budget.Scopes.Count * (1.0 + budget.EntropySamples), budget.Scopes.Count * (double)(budget.LangevinBurnIn + budget.LangevinSteps));

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        var values = new List<FlatnessValue>();
        var rows = new List<LocalEntropyEstimateResult>();
        var progress = FlatnessMeasures.Named(context.Progress, "local entropy");
        foreach (var gamma in b.Scopes)
        {
            context.Cancellation.ThrowIfCancellationRequested();
            var r = LocalEntropyEstimate.Estimate(context.Model, context.Train, new LocalEntropyEstimateOptions
            {
                Gamma = gamma, Temperature = b.Temperature, GaussianSamples = b.EntropySamples, LangevinSteps = b.LangevinSteps, BurnIn = b.LangevinBurnIn,
                LangevinStepSize = b.LangevinStepTimesGamma / gamma, Seed = context.Seed, Landscape = context.Landscape,
            });
            rows.Add(r);
            var g = FlatnessMeasures.Key(gamma);
            values.Add(new($"local_entropy_langevin_gamma_{g}", $"F - F_flat, Langevin, γ = {g}", r.LangevinRelative, null, FlatterWhen.Higher));
            values.Add(new($"local_entropy_direct_gamma_{g}", $"F - F_flat, direct, γ = {g}", r.Relative, r.RelativeStandardError, FlatterWhen.Higher));
            progress?.Report(new CurvatureProgress("local entropy", rows.Count, b.Scopes.Count, watch.Elapsed));
        }
        var notes = rows.Zip(b.Scopes)
            .Where(x => x.First.EffectiveSampleSize < 0.1 * b.EntropySamples)
            .Select(x => $"γ = {FlatnessMeasures.Key(x.Second)}: the direct estimator's effective sample size is {x.First.EffectiveSampleSize:0.#} of {b.EntropySamples} (biased low)")
            .ToList();
        return new MeasureResult
        {
            Measure = Name,
            Values = values,
            Tables =
            [
                new FlatnessTable("scopes", "Local entropy against the scope γ", FlatnessPlotKind.Line,
                [
                    new FlatnessColumn("gamma", b.Scopes.ToArray()),
                    new FlatnessColumn("langevin", rows.Select(r => r.LangevinRelative).ToArray()),
                    new FlatnessColumn("direct", rows.Select(r => r.Relative).ToArray()),
                    new FlatnessColumn("direct_standard_error", rows.Select(r => r.RelativeStandardError).ToArray()),
                    new FlatnessColumn("effective_sample_size", rows.Select(r => r.EffectiveSampleSize).ToArray()),
                    new FlatnessColumn("gibbs_mean_loss", rows.Select(r => r.GibbsMeanLoss).ToArray()),
                ]),
            ],
            Used = Cost(b, new FlatnessModelSize(0, 1, 0)),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = notes,
        };
    }
}

/// <summary>1-D filter-normalised slices along random directions (Li et al. 2018), and the mean loss rise along them.</summary>
public sealed class RandomSlices : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "slice-random";

    /// <inheritdoc/>
    public string Title => "1-D slices along random filter-normalised directions";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.Invariant;

    /// <inheritdoc/>
    public string RescalingReason => "each direction's filters are scaled to the weights' filter norms (biases unperturbed), so the perturbed network is rescaled with the weights";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new()
    {
        ["directions"] = budget.SliceDirections, ["points"] = budget.SlicePoints, ["radius"] = budget.SliceRadius,
    };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(0, 1 + (double)budget.SliceDirections * budget.SlicePoints, 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        double lossAtWeights;
        using (var hvp = new Hvp(context.Model, context.Train, context.Landscape)) lossAtWeights = hvp.Evaluate().Loss;
        var slices = new List<IReadOnlyList<SlicePoint>>();
        for (var d = 0; d < b.SliceDirections; d++)
            slices.Add(Slices.RandomDirection1D(context.Model, context.Train, new SliceOptions
            {
                Points = b.SlicePoints, From = -b.SliceRadius, To = b.SliceRadius, Seed = context.Seed + d, Landscape = context.Landscape,
                Progress = FlatnessMeasures.Named(context.Progress, $"slice {d + 1}/{b.SliceDirections}"), Cancellation = context.Cancellation,
            }));
        var rises = slices.Select(s => FlatnessMeasures.MeanRise(s, lossAtWeights)).ToArray();
        var (rise, error) = FlatnessMeasures.MeanAndError(rises);
        var columns = new List<FlatnessColumn> { new("alpha", slices[0].Select(p => p.Alpha).ToArray()) };
        for (var d = 0; d < slices.Count; d++) columns.Add(new FlatnessColumn($"loss_direction_{d + 1}", slices[d].Select(p => p.Loss).ToArray()));
        return new MeasureResult
        {
            Measure = Name,
            Values = [new("random_slice_rise", $"mean loss rise on random slices, |α| ≤ {FlatnessMeasures.Key(b.SliceRadius)}", rise, error, FlatterWhen.Lower)],
            Tables = [new FlatnessTable("curves", "Loss along random filter-normalised directions", FlatnessPlotKind.Line, columns)],
            Used = new MeasureCost(0, 1 + slices.Sum(s => s.Count), 0),
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }
}

/// <summary>The 1-D slice along the top Hessian eigenvector (Lanczos), scaled to the norm of the weights.</summary>
public sealed class EigenvectorSlice : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "slice-eigenvector";

    /// <inheritdoc/>
    public string Title => "1-D slice along the top Hessian eigenvector";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.NotInvariant;

    /// <inheritdoc/>
    public string RescalingReason => "the top eigenvector of the rescaled Hessian points elsewhere and is scaled by the whole weight norm, not filter by filter";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new()
    {
        ["steps"] = budget.LanczosSteps, ["tolerance"] = budget.LanczosTolerance, ["points"] = budget.SlicePoints, ["radius"] = budget.SliceRadius,
    };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(Math.Min(budget.LanczosSteps, size.Parameters), 1 + budget.SlicePoints, 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var hvp = new Hvp(context.Model, context.Train, context.Landscape);
        var lossAtWeights = hvp.Evaluate().Loss;
        var top = Lanczos.Run(hvp, 1, SpectrumEnd.Largest, new LanczosOptions
        {
            MaxIterations = b.LanczosSteps, Tolerance = b.LanczosTolerance, Seed = context.Seed, ComputeEigenvectors = true,
            Progress = FlatnessMeasures.Named(context.Progress, "lanczos top eigenvector"), Cancellation = context.Cancellation,
        });
        using var vectors = top.Eigenvectors!;
        using var weights = hvp.Parameters();
        // A unit eigenvector scaled to ||w||, so alpha = 1 moves as far as the weights are from the origin (the random slices' scale).
        var direction = vectors.select(1, 0).mul(weights.to(ScalarType.Float64).norm()).to(weights.dtype);
        var points = Slices.AlongDirection(context.Model, context.Train, direction, new SliceOptions
        {
            Points = b.SlicePoints, From = -b.SliceRadius, To = b.SliceRadius, Landscape = context.Landscape,
            Progress = FlatnessMeasures.Named(context.Progress, "slice along the top eigenvector"), Cancellation = context.Cancellation,
        });
        return new MeasureResult
        {
            Measure = Name,
            Values = [new("eigenvector_slice_rise", $"mean loss rise along the top eigenvector, |α| ≤ {FlatnessMeasures.Key(b.SliceRadius)}",
                FlatnessMeasures.MeanRise(points, lossAtWeights), null, FlatterWhen.Lower)],
            Tables = [new FlatnessTable("curve", "Loss along the top Hessian eigenvector", FlatnessPlotKind.Line,
                [new FlatnessColumn("alpha", points.Select(p => p.Alpha).ToArray()), new FlatnessColumn("loss", points.Select(p => p.Loss).ToArray())])],
            Used = new MeasureCost(hvp.HvpCount, 1 + points.Count, 0),
            Seconds = watch.Elapsed.TotalSeconds,
            Notes = top.Converged ? [] : [$"Lanczos stopped at {top.Iterations} steps before the top pair met {FlatnessMeasures.Key(b.LanczosTolerance)}"],
        };
    }
}

/// <summary>A 2-D filter-normalised surface around the weights (two random directions).</summary>
public sealed class Surface : IFlatnessMeasure
{
    /// <inheritdoc/>
    public string Name => "surface";

    /// <inheritdoc/>
    public string Title => "2-D surface along two random filter-normalised directions";

    /// <inheritdoc/>
    public ReluRescaling Rescaling => ReluRescaling.Invariant;

    /// <inheritdoc/>
    public string RescalingReason => "filter-normalised directions, as for the random 1-D slices";

    /// <inheritdoc/>
    public JsonObject Settings(FlatnessBudget budget) => new() { ["points"] = budget.SurfacePoints, ["radius"] = budget.SliceRadius };

    /// <inheritdoc/>
    public MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size) => new(0, 1 + (double)budget.SurfacePoints * budget.SurfacePoints, 0);

    /// <inheritdoc/>
    public MeasureResult Run(FlatnessContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var b = context.Budget;
        var watch = Stopwatch.StartNew();
        double lossAtWeights;
        using (var hvp = new Hvp(context.Model, context.Train, context.Landscape)) lossAtWeights = hvp.Evaluate().Loss;
        var points = Slices.RandomDirections2D(context.Model, context.Train, new SliceOptions
        {
            Points = b.SurfacePoints, From = -b.SliceRadius, To = b.SliceRadius, Seed = context.Seed, Landscape = context.Landscape,
            Progress = FlatnessMeasures.Named(context.Progress, "surface"), Cancellation = context.Cancellation,
        });
        return new MeasureResult
        {
            Measure = Name,
            Values = [new("surface_rise", $"mean loss rise on the 2-D surface, |α|, |β| ≤ {FlatnessMeasures.Key(b.SliceRadius)}",
                FlatnessMeasures.MeanRise(points, lossAtWeights), null, FlatterWhen.Lower)],
            Tables = [new FlatnessTable("grid", "Loss surface", FlatnessPlotKind.Surface,
            [
                new FlatnessColumn("alpha", points.Select(p => p.Alpha).ToArray()),
                new FlatnessColumn("beta", points.Select(p => p.Beta).ToArray()),
                new FlatnessColumn("loss", points.Select(p => p.Loss).ToArray()),
            ])],
            Used = new MeasureCost(0, 1 + points.Count, 0),
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }
}
