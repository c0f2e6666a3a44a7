using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Data;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>How `reproduce saddles` runs: budget, seeds, networks, optimizers, data, folders, what the report quotes.</summary>
public sealed record SaddlesSettings : ReproductionSettings
{
    /// <summary>The networks (zoo names), from <see cref="SaddlesExperiment.Networks"/> (allcnn needs <see cref="Cifar10Dir"/>).</summary>
    public IReadOnlyList<string> Networks { get; init; } = SaddlesExperiment.ImageNetworks;

    /// <summary>The optimizers, from <see cref="SaddlesExperiment.Optimizers"/>.</summary>
    public IReadOnlyList<string> Optimizers { get; init; } = SaddlesExperiment.Optimizers;

    /// <summary>The CIFAR-10 binary folder: adds the allcnn network; without it that network is skipped with the reason.</summary>
    public string? Cifar10Dir { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ValidateShared();
        ValidateSubset(Networks, SaddlesExperiment.Networks, "--networks", "name");
        ValidateSubset(Optimizers, SaddlesExperiment.Optimizers, "--optimizers", "name");
    }
}

/// <summary>How a trained network's Hessian is measured at one budget.</summary>
/// <param name="Samples">Evaluation samples: the first N training images.</param>
/// <param name="BatchSize">Samples per forward pass.</param>
/// <param name="SlqProbes">SLQ probes over the whole Hessian.</param>
/// <param name="SlqSteps">SLQ Lanczos steps per probe.</param>
/// <param name="ExactParameters">
/// small-LeNet's exact spectrum: null for every parameter (the whole Hessian), or the parameter-name prefixes (comma-separated)
/// of the block whose exact spectrum is taken (a principal submatrix H_bb: by Cauchy's interlacing lambda_min(H) &lt;= lambda_min(H_bb),
/// so a negative eigenvalue of the block proves one of the whole Hessian, while a block without one proves nothing).
/// </param>
public sealed record SaddlesMeasurementPlan(int Samples, int BatchSize, int SlqProbes, int SlqSteps, string? ExactParameters)
{
    /// <summary>The settings a stored measurement must show to count as this one's.</summary>
    public JsonObject Fingerprint(long seed, int epoch, bool exact) => new()
    {
        ["samples"] = Samples,
        ["batch_size"] = BatchSize,
        ["slq_probes"] = SlqProbes,
        ["slq_steps"] = SlqSteps,
        ["exact_parameters"] = exact ? ExactParameters ?? "all" : null,
        ["seed"] = seed,
        ["epoch"] = epoch,
        ["outlier_rule"] = $"top C = {SaddlesExperiment.Classes}",
    };
}

/// <summary>One training run and its measurement.</summary>
/// <param name="Network">Zoo name.</param>
/// <param name="Optimizer">Registered optimizer name.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The complete training configuration.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record SaddlesPlannedRun(string Network, string Optimizer, long Seed, RunConfig Config, string Folder)
{
    /// <summary>NET/OPTIMIZER/seed-K, the run's name in messages.</summary>
    public string Label => $"{Network}/{Optimizer}/seed-{Seed}";

    /// <summary>The measurement's file, written last and atomically (its presence means the measurement is complete).</summary>
    public string MeasurementFile => Path.Combine(Folder, SaddlesExperiment.MeasurementFileName);
}

/// <summary>What one measurement found at the end of one training run.</summary>
/// <param name="Run">The run.</param>
/// <param name="Training">The finished run (test error, history, time).</param>
/// <param name="Loss">Mean training loss over the evaluation set at the measured weights.</param>
/// <param name="GradientNorm">||grad L|| over the evaluation set.</param>
/// <param name="Perturbations">PGD: kicks over the run (null for other optimizers).</param>
/// <param name="Slq">The classification from the SLQ density of the whole Hessian.</param>
/// <param name="SlqFit">The semicircle fit to the SLQ density's bulk (null when the bulk could not be fitted).</param>
/// <param name="Exact">small-LeNet: the classification from the exact spectrum (of the block named in the plan).</param>
/// <param name="ExactFit">small-LeNet: the semicircle fit to the exact spectrum's bulk.</param>
/// <param name="ExactEigenvalues">small-LeNet: the exact eigenvalues, ascending.</param>
/// <param name="ExactDimension">small-LeNet: the dimension of the exactly measured block.</param>
/// <param name="Seconds">Wall time of the measurement.</param>
/// <param name="Quadrature">The SLQ quadrature (for plots).</param>
/// <param name="FitError">Why a fit failed, if one did.</param>
public sealed record SaddlesMeasurement(SaddlesPlannedRun Run, FinishedRun Training, double Loss, double GradientNorm, double? Perturbations,
    CriticalPointClassification Slq, SemicircleFitResult? SlqFit, CriticalPointClassification? Exact, SemicircleFitResult? ExactFit,
    double[]? ExactEigenvalues, long? ExactDimension, double Seconds, SlqResult Quadrature, string? FitError);

/// <summary>What `reproduce saddles` did.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run with its measurement (null: not finished).</param>
/// <param name="Skipped">Networks skipped, with the reason.</param>
/// <param name="Interrupted">Cancelled; what finished is kept and the same command continues.</param>
/// <param name="Files">The report's files, full paths, the Markdown last.</param>
public sealed record SaddlesOutcome(SaddlesSettings Settings, IReadOnlyList<(SaddlesPlannedRun Run, SaddlesMeasurement? Result)> Runs,
    IReadOnlyList<(string Network, string Reason)> Skipped, bool Interrupted, IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce saddles`: "Are saddles good enough?" (arXiv 1706.02052; abstract only, the protocol is ours). Networks are
/// trained on Fashion-MNIST with SGD, Adam, Entropy-SGD and perturbed gradient descent; at the end of training the
/// Hessian of the training loss over the first N training images is measured (SLQ density of the whole Hessian for
/// every network, plus small-LeNet's exact spectrum), the point is classified (<see cref="CriticalPoints"/>) and
/// Wigner's semicircle is fitted to the bulk (<see cref="SemicircleFit"/>). Each run and each measurement lives in its
/// own folder, written atomically (the measurement's JSON last), so an interrupted reproduction continues.
/// </summary>
public static class SaddlesExperiment
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "saddles";

    /// <summary>The measurement's file in a run folder.</summary>
    public const string MeasurementFileName = "saddles-measurement.json";

    /// <summary>C, the top outliers dropped before the semicircle fit: the number of classes (Sagun et al. 2017's bulk + C outliers).</summary>
    public const int Classes = 10;

    /// <summary>The Fashion-MNIST networks, in report order.</summary>
    public static IReadOnlyList<string> ImageNetworks { get; } = [ModelZoo.SmallLeNetName, ModelZoo.MnistFcName, ModelZoo.LeNetName];

    /// <summary>Every network: the Fashion-MNIST ones and All-CNN-BN on CIFAR-10 (with --cifar10).</summary>
    public static IReadOnlyList<string> Networks { get; } = [.. ImageNetworks, ModelZoo.AllCnnName];

    /// <summary>The optimizers (registered names).</summary>
    public static IReadOnlyList<string> Optimizers { get; } = ["sgd", "adam", "entropy-sgd", "pgd"];

    /// <summary>Fashion-MNIST's training images.</summary>
    public const long TrainingImages = 60_000;

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => "training on all 60,000 images for 30 effective epochs (Entropy-SGD: L = 20, so 1.5 outer epochs); the Hessian over the first 1,000 training images: " +
                        "SLQ with 10 probes x 90 steps for every network and small-LeNet's whole exact spectrum (47,658 x 47,658)",
        Budget.Small => "training on the first 6,000 images (a tenth) for 4 effective epochs (Entropy-SGD: L = 4, so 1 outer epoch); the Hessian over the first 256 " +
                        "training images: SLQ with 4 probes x 30 steps for every network, and the exact spectrum of small-LeNet's block of its first convolution and output layer together " +
                        "(`body.conv1,body.fc4`, 1,550 parameters; a block across two layers, since any one layer's block of this piecewise-linear network is positive semi-definite " +
                        "by construction and its index says nothing)",
        Budget.Smoke => "2 steps of 128 on 256 images (Entropy-SGD: L = 2); the Hessian over 64 images, SLQ 2 probes x 8 steps, small-LeNet's block of `body.conv1,body.fc4` (1,550 parameters) exact: " +
                        "for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>The share of the paper budget's compute the budget spends (training sample-passes), for the report.</summary>
    public static string ComputeFraction(Budget budget) => budget switch
    {
        Budget.Paper => "the paper budget (ours: the paper gives no training protocol)",
        Budget.Small => "about 1.3% of the paper budget's training sample-passes (6,000 x 4 against 60,000 x 30), about 3% of its SLQ work and 0.8% of small-LeNet's exact work " +
                        "(Hessian-vector products x samples: 1,550 x 256 against 47,658 x 1,000); 2 seeds by default instead of 3",
        _ => "a negligible fraction",
    };

    /// <summary>Seeds per network and optimizer when none are given: 1 (smoke), 2 (small: 3 would not fit in about 15 minutes on 2 cores), 3 (paper).</summary>
    public static int DefaultSeeds(Budget budget) => budget switch { Budget.Smoke => 1, Budget.Small => 2, _ => 3 };

    /// <summary>
    /// small-LeNet's exactly measured block at the small and smoke budgets: the first convolution and the output layer
    /// together (260 + 1,290 = 1,550 parameters), comma-separated prefixes. It must span two layers: small-LeNet is
    /// piecewise linear (ReLU, max-pooling), so at almost every point its logits are linear in any one layer's weights,
    /// and the loss (softmax cross-entropy, convex in the logits) has a positive semi-definite Hessian block for every
    /// single layer: index 0 by construction, whatever the point (measured: `body.fc4` and `body.conv2` both gave
    /// lambda_min of order -1e-7, rounding). The block across two layers has the cross terms that can make it
    /// indefinite, and a negative eigenvalue of it proves one of the whole Hessian (Cauchy interlacing).
    /// </summary>
    public const string SmallExactBlock = "body.conv1,body.fc4";

    /// <summary>The parameters of the exact block named by <see cref="SaddlesMeasurementPlan.ExactParameters"/>: comma-separated name prefixes.</summary>
    public static ParameterSelection ExactBlock(string prefixes) =>
        ParameterSelection.ByPrefix(prefixes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The measurement at <paramref name="budget"/>.</summary>
    public static SaddlesMeasurementPlan Measurement(Budget budget) => budget switch
    {
        Budget.Paper => new(1000, 500, 10, 90, null),
        Budget.Small => new(256, 256, 4, 30, SmallExactBlock),
        _ => new(64, 64, 2, 8, SmallExactBlock),
    };

    /// <summary>
    /// The training run of <paramref name="network"/> with <paramref name="optimizer"/> (ours; the paper names no
    /// optimizer settings): batch 128, constant learning rate, the networks' default dropout and BatchNorm, equal
    /// gradient evaluations (effective epochs) for every optimizer. SGD: lr 0.05, momentum 0.9. Adam: lr 1e-3.
    /// Entropy-SGD: lr 1, Nesterov momentum 0.9, the paper's Langevin settings with L per budget. PGD: lr 0.1 (plain
    /// gradient steps, Jin et al.'s form), g_thres 0.5, r 0.05, t_thres 50 steps, f_thres 1e-3.
    /// </summary>
    public static RunConfig TrainingConfig(SaddlesSettings s, string network, string optimizer, long seed)
    {
        var (images, effectiveEpochs, langevinSteps) = s.Budget switch
        {
            Budget.Paper => ((long?)null, 30, 20),
            Budget.Small => (6_000L, 4, 4),
            _ => (256L, 1, 2),
        };
        var cifar = network == ModelZoo.AllCnnName;
        var common = new RunConfig
        {
            Model = network,
            Data = cifar ? DatasetCatalog.Cifar10Name : DatasetCatalog.FashionMnist,
            DataDir = cifar ? s.Cifar10Dir : s.FashionMnistDir,
            BatchSize = 128,
            Epochs = effectiveEpochs,
            EffectiveEpochBudget = effectiveEpochs,
            MaxTrainSamples = images,
            Seed = seed,
            Threads = s.Threads,
            EvalTrain = false,
            TensorBoard = false,
        };
        OptimizerOptionsBase options = optimizer switch
        {
            "sgd" => new SgdOptions { LearningRate = 0.05, Momentum = 0.9 },
            "adam" => new AdamOptions { LearningRate = 1e-3 },
            "entropy-sgd" => new EntropySgdOptions
            {
                LearningRate = 1, Momentum = 0.9, Nesterov = true,
                LocalEntropy = new LocalEntropyOptions { L = langevinSteps, DiagnosticsEvery = 0 },
            },
            "pgd" => new PerturbedGradientDescentOptions
            {
                LearningRate = 0.1, GradientThreshold = 0.5, PerturbationRadius = 0.05, PerturbationInterval = 50, LossDecreaseThreshold = 1e-3,
            },
            _ => throw new ArgumentException($"unknown optimizer '{optimizer}'; expected one of {string.Join(", ", Optimizers)}"),
        };
        return common.WithOptimizer(options);
    }

    /// <summary>RUNS/saddles-BUDGET/NET/OPTIMIZER/seed-K.</summary>
    public static string RunFolder(SaddlesSettings s, string network, string optimizer, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", network, optimizer, $"seed-{seed}");

    /// <summary>Why a network cannot run (null: it can).</summary>
    public static string? SkipReason(SaddlesSettings s, string network) =>
        network == ModelZoo.AllCnnName && s.Cifar10Dir is null ? "no CIFAR-10 folder was given (--cifar10 DIR with the binary version's files)" : null;

    /// <summary>Every run, seeds outermost (so that a partial reproduction has every network and optimizer at the first seeds), and the skipped networks.</summary>
    public static (IReadOnlyList<SaddlesPlannedRun> Runs, IReadOnlyList<(string Network, string Reason)> Skipped) Plan(SaddlesSettings s)
    {
        s.Validate();
        var skipped = s.Networks.Select(n => (n, SkipReason(s, n))).Where(x => x.Item2 is not null).Select(x => (x.n, x.Item2!)).ToList();
        var runs = new List<SaddlesPlannedRun>();
        for (var k = 0; k < s.Seeds; k++)
        {
            var seed = s.FirstSeed + k;
            foreach (var network in s.Networks.Where(n => SkipReason(s, n) is null))
                foreach (var optimizer in s.Optimizers)
                {
                    var config = TrainingConfig(s, network, optimizer, seed);
                    RunSetup.Validate(config);
                    runs.Add(new SaddlesPlannedRun(network, optimizer, seed, config, RunFolder(s, network, optimizer, seed)));
                }
        }
        return (runs, skipped);
    }

    /// <summary>
    /// Looks at every folder first (one holding another run or measurement is an error before anything trains), then
    /// per run: trains it unless finished, measures it unless measured, and finally writes the report from everything
    /// that has finished. Cancelling stops the current training after its step (checkpoint saved) or the current
    /// measurement between products (nothing of it written); the report is still written.
    /// </summary>
    /// <exception cref="InvalidDataException">A folder holds a run or measurement with other settings.</exception>
    public static SaddlesOutcome Run(SaddlesSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var (plan, skipped) = Plan(s);
        foreach (var run in plan)
        {
            var state = RunFolders.Inspect(run.Folder, run.Config);
            if (state == RunFolderState.Finished && File.Exists(run.MeasurementFile)) _ = IsMeasured(run, s.Budget);
        }
        var todo = plan.Where(r => !(RunFolders.Inspect(r.Folder, r.Config) is RunFolderState.Diverged
                                     || (RunFolders.Inspect(r.Folder, r.Config) == RunFolderState.Finished && IsMeasured(r, s.Budget)))).ToList();
        progress?.Report(new ComparisonPlanned(Name, plan.Count, plan.Count - todo.Count, todo.Count, s.ReportOnly));
        var interrupted = false;
        if (!s.ReportOnly)
            for (var i = 0; i < todo.Count; i++)
            {
                if (cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                var run = todo[i];
                var state = RunFolders.Inspect(run.Folder, run.Config);
                if (state is RunFolderState.Empty or RunFolderState.Resumable)
                {
                    var result = RunTraining.Train(run.Config, run.Folder, run.Label, new RunPosition(i + 1, todo.Count), progress, cancellation);
                    if (result?.Status == TrainingStatus.Interrupted)
                    {
                        interrupted = true;
                        break;
                    }
                    state = RunFolders.Inspect(run.Folder, run.Config);
                }
                if (state != RunFolderState.Finished) continue;
                try
                {
                    Measure(run, s, progress, cancellation);
                }
                catch (OperationCanceledException)
                {
                    progress?.Report(new MeasurementInterrupted(run.Label, "saddles", "interrupted; nothing of this measurement was written"));
                    interrupted = true;
                    break;
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or InsufficientMemoryException or NonFiniteValuesException)
                {
                    progress?.Report(new MeasurementFailed(run.Label, "saddles", e.Message));
                }
            }
        var results = plan.Select(r => (r, Read(r, s.Budget))).ToList();
        var files = SaddlesReport.Write(s, results, skipped, message => progress?.Report(new ExperimentWarning(message)));
        return new SaddlesOutcome(s, results, skipped, interrupted, files);
    }

    static int FinalEpoch(SaddlesPlannedRun run) => RunFolders.Read(run.Folder).Final?.Epoch ?? 0;

    /// <summary>Whether the run folder holds this budget's measurement of the run's final weights; another measurement is an error.</summary>
    /// <exception cref="InvalidDataException">The measurement file holds other settings or is malformed.</exception>
    static bool IsMeasured(SaddlesPlannedRun run, Budget budget)
    {
        if (!File.Exists(run.MeasurementFile)) return false;
        var stored = ReadJson(run.MeasurementFile);
        var wanted = Measurement(budget).Fingerprint(run.Seed, FinalEpoch(run), run.Network == ModelZoo.SmallLeNetName);
        var have = stored["settings"] as JsonObject ?? throw new InvalidDataException($"{run.MeasurementFile}: no 'settings' object; delete the file to measure again");
        var differences = wanted.Where(kv => (have[kv.Key]?.ToJsonString() ?? "null") != (kv.Value?.ToJsonString() ?? "null"))
            .Select(kv => $"{kv.Key}: stored {have[kv.Key]?.ToJsonString() ?? "null"}, wanted {kv.Value?.ToJsonString() ?? "null"}").ToList();
        if (differences.Count > 0)
            throw new InvalidDataException($"{run.MeasurementFile} holds a measurement with other settings ({string.Join("; ", differences)}). " +
                                           "Delete that file to measure again, or use another --runs folder.");
        return true;
    }

    static JsonObject ReadJson(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new InvalidDataException($"{path}: empty file");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: not a JSON object ({e.Message}); delete it to measure again", e);
        }
    }

    /// <summary>
    /// The measurement of one finished run: the gradient norm and loss over the evaluation set, SLQ over the whole
    /// Hessian with its classification and semicircle fit, and for small-LeNet the exact spectrum (of the plan's block)
    /// with its own. Written atomically to the run folder.
    /// </summary>
    static void Measure(SaddlesPlannedRun run, SaddlesSettings s, IProgress<ExperimentEvent>? progress, CancellationToken cancellation)
    {
        var plan = Measurement(s.Budget);
        var label = run.Label;
        progress?.Report(new MeasurementStarted(label, "saddles", run.Folder));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (checkpoint, meta, stored, notice) = MeasurableRun.ReadRun(run.Folder);
        if (notice is not null) progress?.Report(new ExperimentWarning($"{label}: {notice}"));
        using var measurable = MeasurableRun.Open(checkpoint, meta, stored with { Threads = s.Threads, TensorBoard = false }, plan.Samples, plan.Samples, plan.BatchSize);
        var options = new LandscapeOptions { Loss = measurable.Loss, LossName = measurable.LossName, ModelFactory = ZooCopies.FactoryFor(measurable.Model) };
        using var hvp = new Hvp(measurable.Model, measurable.EvaluationSet, options);
        var (gradient, loss) = hvp.Gradient();
        double gradientNorm;
        using (gradient)
        using (var norm = gradient.norm())
            gradientNorm = norm.to(ScalarType.Float64).item<double>();
        FiniteChecks.RequireFinite(loss, "loss at the weights", $"saddles {label}");
        var log = new LineWriter(line => progress?.Report(new MeasurementLog(label, line)));
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"n = {hvp.Dimension:N0} parameters, {plan.Samples} samples: loss {loss:G6}, |grad| {gradientNorm:G4}"));
        var slq = Slq.Run(hvp, new SlqOptions
        {
            Probes = plan.SlqProbes, Steps = plan.SlqSteps, Seed = run.Seed, Cancellation = cancellation,
            Progress = progress is null ? null : new Forward<CurvatureProgress>(p => progress.Report(new MeasurementProgressed(label, p))),
        });
        var classification = CriticalPoints.FromSlq(slq, gradientNorm);
        log.WriteLine("slq: " + classification.Describe());
        var fitErrors = new List<string>();
        SemicircleFitResult? slqFit = null;
        try
        {
            slqFit = SemicircleFit.FromSlq(slq, options: new SemicircleFitOptions { TopOutliers = Classes });
            log.WriteLine(slqFit.Describe());
        }
        catch (ArgumentException e)
        {
            fitErrors.Add($"SLQ: {e.Message}");
        }

        CriticalPointClassification? exact = null;
        SemicircleFitResult? exactFit = null;
        double[]? eigenvalues = null;
        long? exactDimension = null;
        if (run.Network == ModelZoo.SmallLeNetName)
        {
            var blockOptions = plan.ExactParameters is string prefixes ? options with { Parameters = ExactBlock(prefixes) } : options;
            using var blockHvp = new Hvp(measurable.Model, measurable.EvaluationSet, blockOptions);
            exactDimension = blockHvp.Dimension;
            log.WriteLine($"exact: {blockHvp.Dimension:N0} x {blockHvp.Dimension:N0} Hessian ({plan.ExactParameters ?? "all parameters"})");
            var onCpu = blockHvp.Device.type == DeviceType.CPU;
            using (var dense = ExactHessian.Compute(blockHvp, new ExactHessianOptions
                   {
                       Workers = onCpu ? Math.Max(1, s.Threads > 0 ? s.Threads : get_num_threads()) : 1,
                       CheckpointFolder = Path.Combine(run.Folder, "saddles-hessian-columns"),
                       Cancellation = cancellation,
                       Progress = progress is null ? null : p => progress.Report(new MeasurementColumnsProgressed(label, p)),
                   }))
            using (var values = ExactHessian.Eigenvalues(dense.Hessian))
                eigenvalues = values.data<double>().ToArray();
            FiniteChecks.RequireFinite(eigenvalues, "eigenvalue", $"saddles {label}");
            exact = CriticalPoints.FromEigenvalues(eigenvalues, gradientNorm);
            log.WriteLine("exact: " + exact.Describe());
            try
            {
                exactFit = SemicircleFit.FromEigenvalues(eigenvalues, new SemicircleFitOptions { TopOutliers = Classes });
                log.WriteLine(exactFit.Describe());
            }
            catch (ArgumentException e)
            {
                fitErrors.Add($"exact: {e.Message}");
            }
        }
        var training = RunFolders.Read(run.Folder);
        var perturbations = run.Optimizer == "pgd" ? training.History.Sum(m => ExtraNumber(m.Extra?.GetValueOrDefault("pgd_perturbations"))) : (double?)null;
        var measurement = new SaddlesMeasurement(run, training, loss, gradientNorm, perturbations, classification, slqFit, exact, exactFit, eigenvalues, exactDimension,
            watch.Elapsed.TotalSeconds, slq, fitErrors.Count == 0 ? null : string.Join("; ", fitErrors));
        var json = ToJson(measurement, plan.Fingerprint(run.Seed, training.Final?.Epoch ?? 0, run.Network == ModelZoo.SmallLeNetName), slq);
        AtomicFile.WriteAllText(run.MeasurementFile, json.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + "\n");
        var columns = Path.Combine(run.Folder, "saddles-hessian-columns");
        if (Directory.Exists(columns)) HessianMeasurement.DeleteColumnStore(columns);
        progress?.Report(new TrainingLog(label, $"measured in {watch.Elapsed.TotalSeconds:0.0} s: {run.MeasurementFile}"));
    }

    /// <summary>A diagnostic read back from metrics.jsonl (a JSON element) or still in memory (a number); 0 when absent.</summary>
    static double ExtraNumber(object? value) => value switch
    {
        JsonElement { ValueKind: JsonValueKind.Number } e => e.GetDouble(),
        IConvertible c => Convert.ToDouble(c, CultureInfo.InvariantCulture),
        _ => 0,
    };

    // ---- the measurement file ---------------------------------------------------------------------------------------

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static JsonArray Numbers(IEnumerable<double> values) => new(values.Select(Number).ToArray());

    static JsonObject ToJson(SaddlesMeasurement m, JsonObject fingerprint, SlqResult slq)
    {
        return new JsonObject
        {
            ["settings"] = fingerprint,
            ["network"] = m.Run.Network,
            ["optimizer"] = m.Run.Optimizer,
            ["loss"] = Number(m.Loss),
            ["gradient_norm"] = Number(m.GradientNorm),
            ["pgd_perturbations"] = m.Perturbations is double p ? p : null,
            ["seconds"] = Math.Round(m.Seconds, 3),
            ["slq"] = new JsonObject
            {
                ["dimension"] = slq.Dimension,
                ["nodes"] = new JsonArray(slq.Nodes.Select(n => (JsonNode?)Numbers(n)).ToArray()),
                ["weights"] = new JsonArray(slq.Weights.Select(w => (JsonNode?)Numbers(w)).ToArray()),
                ["hvps"] = slq.OperatorApplications,
            },
            ["exact_dimension"] = m.ExactDimension,
            ["exact_eigenvalues"] = m.ExactEigenvalues is null ? null : Numbers(m.ExactEigenvalues),
            ["fit_error"] = m.FitError,
        };
    }

    /// <summary>The measurement of a run read back (and re-derived from the stored spectra), or null when it is not finished.</summary>
    static SaddlesMeasurement? Read(SaddlesPlannedRun run, Budget budget)
    {
        if (RunFolders.Inspect(run.Folder, run.Config) != RunFolderState.Finished || !IsMeasured(run, budget)) return null;
        var json = ReadJson(run.MeasurementFile);
        var file = run.MeasurementFile;
        double[] Doubles(JsonNode? node, string key) =>
            node?.AsArray().Select(v => v?.GetValue<double>() ?? throw new InvalidDataException($"{file}: '{key}' holds a non-finite value")).ToArray()
            ?? throw new InvalidDataException($"{file}: no '{key}' array");
        var slqNode = json["slq"] ?? throw new InvalidDataException($"{file}: no 'slq' object");
        var slq = new SlqResult(slqNode["nodes"]!.AsArray().Select(a => Doubles(a, "nodes")).ToArray(),
            slqNode["weights"]!.AsArray().Select(a => Doubles(a, "weights")).ToArray(),
            slqNode["dimension"]!.GetValue<long>(), slqNode["hvps"]!.GetValue<long>());
        var gradientNorm = json["gradient_norm"]?.GetValue<double>() ?? double.NaN;
        var classification = CriticalPoints.FromSlq(slq, gradientNorm);
        var errors = new List<string>();
        SemicircleFitResult? slqFit = null;
        try { slqFit = SemicircleFit.FromSlq(slq, options: new SemicircleFitOptions { TopOutliers = Classes }); }
        catch (ArgumentException e) { errors.Add($"SLQ: {e.Message}"); }
        double[]? eigenvalues = json["exact_eigenvalues"] is JsonArray ev ? Doubles(ev, "exact_eigenvalues") : null;
        CriticalPointClassification? exact = null;
        SemicircleFitResult? exactFit = null;
        if (eigenvalues is not null)
        {
            exact = CriticalPoints.FromEigenvalues(eigenvalues, gradientNorm);
            try { exactFit = SemicircleFit.FromEigenvalues(eigenvalues, new SemicircleFitOptions { TopOutliers = Classes }); }
            catch (ArgumentException e) { errors.Add($"exact: {e.Message}"); }
        }
        return new SaddlesMeasurement(run, RunFolders.Read(run.Folder), json["loss"]?.GetValue<double>() ?? double.NaN, gradientNorm,
            json["pgd_perturbations"]?.GetValue<double>(), classification, slqFit, exact, exactFit, eigenvalues, json["exact_dimension"]?.GetValue<long>(),
            json["seconds"]?.GetValue<double>() ?? double.NaN, slq, errors.Count == 0 ? null : string.Join("; ", errors));
    }

    /// <summary>Reports on the calling thread, at once.</summary>
    sealed class Forward<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
