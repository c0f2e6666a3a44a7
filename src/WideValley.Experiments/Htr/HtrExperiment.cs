using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Data;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How `reproduce htr` runs: budget, seeds, network, data, folders, what the report quotes.</summary>
public sealed record HtrRunSettings : ReproductionSettings
{
    /// <summary>Zoo image classifier (default the authors' LeNet, <see cref="ModelZoo.LeNet5Name"/>).</summary>
    public string Model { get; init; } = ModelZoo.LeNet5Name;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ValidateShared();
        if (!ModelZoo.Names.Contains(Model) || ModelZoo.Describe(Model).Kind != ModelKind.Classifier)
            throw new ArgumentException($"--model {Model}: expected a zoo image classifier ({string.Join(", ", ModelZoo.Names.Where(n => ModelZoo.Describe(n).Kind == ModelKind.Classifier))})");
    }
}

/// <summary>One training run of the reproduction.</summary>
/// <param name="Arm">One of <see cref="HtrExperiment.Arms"/>.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The complete configuration.</param>
/// <param name="Folder">Its run folder.</param>
public sealed record HtrPlannedRun(string Arm, long Seed, RunConfig Config, string Folder)
{
    /// <summary>MODEL/ARM/seed-K, the run's name in messages.</summary>
    public string Label => $"{Config.Model}/{Arm}/seed-{Seed}";
}

/// <summary>The Hutchinson trace of a finished run's training-loss Hessian (stored as <see cref="HtrExperiment.TraceFileName"/> in its run folder).</summary>
/// <param name="Trace">The estimate of tr ∇²L over the measured training images (mean cross-entropy).</param>
/// <param name="StandardError">Its standard error over probes.</param>
/// <param name="Probes">Rademacher probes.</param>
/// <param name="Samples">The first this many training images of the run's (sub)set.</param>
/// <param name="ProbeSeed">The probes' seed (the same for every run: paired comparisons share probes).</param>
/// <param name="Epoch">The checkpoint's epoch.</param>
public sealed record HtrTrace(double Trace, double StandardError, int Probes, long Samples, long ProbeSeed, int Epoch);

/// <summary>A planned run with what it produced.</summary>
/// <param name="Run">The plan.</param>
/// <param name="Result">Its finished training (null: pending).</param>
/// <param name="Trace">Its end-of-training trace (null: not measured yet, or diverged).</param>
public sealed record HtrRunResult(HtrPlannedRun Run, FinishedRun? Result, HtrTrace? Trace);

/// <summary>What the reproduction found.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run and what it produced.</param>
/// <param name="Interrupted">Cancelled during a run or a measurement (the finished pieces are kept).</param>
/// <param name="Files">The report's files, full paths.</param>
public sealed record HtrOutcome(HtrRunSettings Settings, IReadOnlyList<HtrRunResult> Runs, bool Interrupted, IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce htr` (issue 19 §2): the Hessian-trace regulariser of Sankar et al. (AAAI 2021) as the authors ran it on
/// LeNet and Fashion-MNIST (<c>yashkhasbage25/HTR</c>, <c>Regularization/experiments/scripts.sh</c> at HEAD): four
/// arms, SGD, SGD+L2, SGD+HTR (all tensors) and SGD+HTR(middle) (the authors' middle mask), each over several seeds,
/// the final-epoch test error, and the Hutchinson trace of the training-loss Hessian at the end of every run. Runs live
/// in their own folders (finished runs are never trained again, interrupted ones resume); each trace is one atomic
/// file in its run's folder.
/// </summary>
public static class HtrExperiment
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "htr";

    /// <summary>
    /// The arms, in report order. The last, SGD trained for the HTR arms' epochs, is ours, not the authors': their grid
    /// trains the HTR arms longer than SGD, so without it an HTR verdict cannot tell the penalty from the extra epochs.
    /// </summary>
    public static IReadOnlyList<string> Arms { get; } = ["sgd", "sgd-l2", "sgd-htr", "sgd-htr-middle", EpochMatchedSgd];

    /// <summary>The epoch-matched control (ours): plain SGD for the HTR arms' number of epochs.</summary>
    public const string EpochMatchedSgd = "sgd-long";

    /// <summary>The authors' Fashion-MNIST learning rate.</summary>
    public const double LearningRate = 1e-2;
    /// <summary>Their momentum.</summary>
    public const double Momentum = 0.9;
    /// <summary>Their batch size.</summary>
    public const int BatchSize = 256;
    /// <summary>Their MultiStepLR gamma: the rate is multiplied by it at each milestone.</summary>
    public const double LrGamma = 0.25;
    /// <summary>Their milestones (0-based epochs at which MultiStepLR decays, i.e. after epochs 10 and 20 counted from 1).</summary>
    public static IReadOnlyList<int> Milestones { get; } = [10, 20];
    /// <summary>Epochs of the SGD and SGD+L2 arms.</summary>
    public const int Epochs = 30;
    /// <summary>Epochs of the two HTR arms.</summary>
    public const int HtrEpochs = 40;
    /// <summary>The authors' -sp (0-based first epoch with the penalty) of both HTR arms.</summary>
    public const int HtrSp = 20;
    /// <summary>γ of SGD+HTR.</summary>
    public const double HtrGamma = 1e-5;
    /// <summary>γ of SGD+HTR(middle).</summary>
    public const double MiddleGamma = 1e-6;
    /// <summary>The penalty's frequency.</summary>
    public const int HtrFrequency = 50;
    /// <summary>Hutchinson probes per penalty (the authors' -hi).</summary>
    public const int HtrProbes = 10;
    /// <summary>The weight decay of SGD+L2 (the authors' -l2 for Fashion-MNIST).</summary>
    public const double L2 = 1e-13;

    /// <summary>Fashion-MNIST's training images.</summary>
    public const long TrainingImages = 60_000;

    /// <summary>Name of the trace file in a run folder.</summary>
    public const string TraceFileName = "htr-trace.json";

    /// <summary>Seed of the trace probes, the same for every run.</summary>
    public const long TraceProbeSeed = 0;

    /// <summary>The authors' logged Fashion-MNIST test errors (%), commit 3d4ce32, SGD / SGD+L2 / SGD+HTR: mean and std of 3 reruns.</summary>
    public static IReadOnlyList<(string Arm, double Mean, double Std)> AuthorsLogged { get; } =
        [("sgd", 5.43, 0.10), ("sgd-l2", 5.41, 0.16), ("sgd-htr", 4.78, 0.15)];

    /// <summary>What a budget scales.</summary>
    /// <param name="Images">Training images (null: all 60,000).</param>
    /// <param name="EpochDivisor">Epochs, milestones and sp are the authors' divided by this.</param>
    /// <param name="TraceSamples">Training images the end-of-run trace is measured on.</param>
    /// <param name="TraceProbes">Rademacher probes of that trace.</param>
    public readonly record struct BudgetScale(long? Images, int EpochDivisor, long TraceSamples, int TraceProbes);

    /// <summary>The scale of <paramref name="budget"/>.</summary>
    public static BudgetScale Scale(Budget budget) => budget switch
    {
        Budget.Paper => new(null, 1, 10_000, 30),
        Budget.Small => new(15_000, 2, 2_000, 10),
        Budget.Smoke => new(512, 10, 64, 2),
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>Fraction of the paper budget's training compute (images × epochs) a budget spends.</summary>
    public static double ComputeFraction(Budget budget)
    {
        var s = Scale(budget);
        return (s.Images ?? TrainingImages) / (double)TrainingImages / s.EpochDivisor;
    }

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget)
    {
        var s = Scale(budget);
        var c = CultureInfo.InvariantCulture;
        return budget switch
        {
            Budget.Paper => string.Format(c, "the authors' grid: {0} epochs (HTR arms {1}), lr x {2} after epochs {3}, HTR from epoch {4} (their -sp {5}), all {6:N0} training images; " +
                                             "trace on the first {7:N0} training images with {8} probes", Epochs, HtrEpochs, LrGamma, string.Join(" and ", Milestones), HtrSp + 1, HtrSp,
                TrainingImages, s.TraceSamples, s.TraceProbes),
            Budget.Small => string.Format(c, "the first {0:N0} training images and half the epochs ({1}, HTR arms {2}; milestones after epochs {3}, HTR from epoch {4}): " +
                                             "{5:0.###} of the paper's training compute; trace on the first {6:N0} training images with {7} probes",
                s.Images, Epochs / s.EpochDivisor, HtrEpochs / s.EpochDivisor, string.Join(" and ", Milestones.Select(m => m / s.EpochDivisor)), HtrSp / s.EpochDivisor + 1,
                ComputeFraction(budget), s.TraceSamples, s.TraceProbes),
            Budget.Smoke => string.Format(c, "{0} training images, {1} epochs (HTR arms {2}), trace on {3} images with {4} probes: for checking that everything runs, not for results",
                s.Images, Epochs / s.EpochDivisor, HtrEpochs / s.EpochDivisor, s.TraceSamples, s.TraceProbes),
            _ => throw new ArgumentOutOfRangeException(nameof(budget)),
        };
    }

    /// <summary>
    /// The run of <paramref name="arm"/> for a seed: the authors' Fashion-MNIST settings scaled by the budget. Pixels are
    /// x/255 (so the network's zero padding is their black <c>Pad</c>); no augmentation (see the report's deviations).
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings or an unknown arm.</exception>
    public static RunConfig Config(HtrRunSettings s, string arm, long seed)
    {
        s.Validate();
        if (!Arms.Contains(arm)) throw new ArgumentException($"unknown HTR arm '{arm}'; the arms are {string.Join(", ", Arms)}");
        var scale = Scale(s.Budget);
        var htr = arm is "sgd-htr" or "sgd-htr-middle";
        var milestones = Milestones.Select(m => Math.Max(1, m / scale.EpochDivisor)).Distinct().ToList();
        var common = new RunConfig
        {
            Model = s.Model,
            Data = DatasetCatalog.FashionMnist,
            DataDir = s.FashionMnistDir,
            BatchSize = BatchSize,
            Epochs = Math.Max(1, (htr || arm == EpochMatchedSgd ? HtrEpochs : Epochs) / scale.EpochDivisor),
            LrSchedule = string.Create(CultureInfo.InvariantCulture, $"after:{1 / LrGamma:R}:{string.Join(",", milestones)}"),
            MaxTrainSamples = scale.Images,
            Seed = seed,
            Threads = s.Threads,
            Device = s.Device,
            Scaling = PixelScaling.Unit,
            EvalTrain = false,
            TensorBoard = false,
        };
        var config = common.WithOptimizer(new SgdOptions { LearningRate = LearningRate, Momentum = Momentum, WeightDecay = arm == "sgd-l2" ? L2 : 0 });
        if (!htr) return config;
        return config with
        {
            HessianTrace = new HessianTraceRegularizerOptions
            {
                Gamma = arm == "sgd-htr" ? HtrGamma : MiddleGamma,
                Probes = HtrProbes,
                Probe = HessianTraceProbe.Gaussian,
                Frequency = HtrFrequency,
                StartEpoch = HessianTraceRegularizerOptions.StartEpochForAuthorsSp(HtrSp / scale.EpochDivisor),
                Parameters = arm == "sgd-htr" ? HessianTraceParameters.All : HessianTraceParameters.AuthorsMiddle,
                Seed = seed,
            },
        };
    }

    /// <summary>RUNS/htr-BUDGET/MODEL/ARM/seed-K.</summary>
    public static string RunFolder(HtrRunSettings s, string arm, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", s.Model, arm, $"seed-{seed}");

    /// <summary>Every run, seeds outermost (so that a partial reproduction has every arm at the first seeds).</summary>
    public static IReadOnlyList<HtrPlannedRun> Plan(HtrRunSettings s)
    {
        s.Validate();
        var runs = new List<HtrPlannedRun>();
        for (var k = 0; k < s.Seeds; k++)
        {
            var seed = s.FirstSeed + k;
            foreach (var arm in Arms)
            {
                var config = Config(s, arm, seed);
                RunSetup.Validate(config);
                runs.Add(new HtrPlannedRun(arm, seed, config, RunFolder(s, arm, seed)));
            }
        }
        return runs;
    }

    /// <summary>
    /// Looks at every run folder and trace file first (a folder holding another run, or a trace measured with other
    /// settings, is an error before anything trains), trains what is missing and measures each finished run's trace
    /// (unless <see cref="ReproductionSettings.ReportOnly"/>), then writes the report. Cancelling keeps what has finished and
    /// still writes the report.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings, or a trace file other trace settings.</exception>
    public static HtrOutcome Run(HtrRunSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var plan = Plan(s);
        var scale = Scale(s.Budget);
        var states = plan.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Config));
        foreach (var run in plan) ReadTrace(run.Folder, scale);
        var todo = plan.Where(r => states[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        progress?.Report(new ComparisonPlanned(Name, plan.Count, plan.Count - todo.Count, todo.Count, s.ReportOnly));
        var interrupted = false;
        if (!s.ReportOnly)
        {
            var position = 0;
            foreach (var run in plan)
            {
                if (cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                if (todo.Contains(run))
                {
                    var result = RunTraining.Train(run.Config, run.Folder, run.Label, new RunPosition(++position, todo.Count), progress, cancellation);
                    if (result?.Status == TrainingStatus.Interrupted)
                    {
                        interrupted = true;
                        break;
                    }
                }
                if (RunFolders.Inspect(run.Folder, run.Config) == RunFolderState.Finished && ReadTrace(run.Folder, scale) is null)
                {
                    try
                    {
                        MeasureTrace(run, s, progress, cancellation);
                    }
                    catch (OperationCanceledException)
                    {
                        interrupted = true;
                        break;
                    }
                }
            }
        }
        var results = plan.Select(r =>
        {
            var finished = RunFolders.Inspect(r.Folder, r.Config) is RunFolderState.Finished or RunFolderState.Diverged ? RunFolders.Read(r.Folder) : null;
            return new HtrRunResult(r, finished, ReadTrace(r.Folder, scale));
        }).ToList();
        var files = HtrReport.Write(s, results, message => progress?.Report(new ExperimentWarning(message)));
        return new HtrOutcome(s, results, interrupted, files);
    }

    /// <summary>
    /// Measures the Hutchinson trace of the mean training loss's Hessian at a finished run's final weights (eval mode:
    /// BatchNorm's running statistics, no dropout) and stores it atomically in the run folder.
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled between probes (nothing is stored).</exception>
    public static HtrTrace MeasureTrace(HtrPlannedRun run, HtrRunSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var scale = Scale(s.Budget);
        progress?.Report(new MeasurementLog(run.Label, string.Create(CultureInfo.InvariantCulture,
            $"Hutchinson trace of the training-loss Hessian: {scale.TraceSamples:N0} training images, {scale.TraceProbes} Rademacher probes")));
        var (checkpoint, meta, stored, notice) = MeasurableRun.ReadRun(run.Folder);
        if (notice is not null) progress?.Report(new ExperimentWarning($"{run.Label}: {notice}"));
        using var measurable = MeasurableRun.Open(checkpoint, meta, stored with { Threads = s.Threads, TensorBoard = false, DataDir = s.FashionMnistDir },
            (int)Math.Min(scale.TraceSamples, stored.MaxTrainSamples ?? TrainingImages), scale.TraceSamples, 1000);
        using var hvp = new Hvp(measurable.Model, measurable.EvaluationSet, new LandscapeOptions());
        var result = Hutchinson.Run(hvp, new HutchinsonOptions { Probes = scale.TraceProbes, Seed = TraceProbeSeed, Cancellation = cancellation });
        var trace = new HtrTrace(result.Total.Trace, result.Total.StandardError, scale.TraceProbes, measurable.Samples, TraceProbeSeed, meta.CompletedEpochs);
        var json = new JsonObject
        {
            ["trace"] = trace.Trace,
            ["standard_error"] = double.IsFinite(trace.StandardError) ? trace.StandardError : null,
            ["probes"] = trace.Probes,
            ["samples"] = trace.Samples,
            ["probe_seed"] = trace.ProbeSeed,
            ["epoch"] = trace.Epoch,
            ["layers"] = new JsonArray(result.Layers.Select(l => (JsonNode)new JsonObject { ["name"] = l.Name, ["trace"] = l.Trace }).ToArray()),
        };
        AtomicFile.WriteAllText(Path.Combine(run.Folder, TraceFileName), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        progress?.Report(new MeasurementLog(run.Label, string.Create(CultureInfo.InvariantCulture, $"trace {trace.Trace:G4} ± {trace.StandardError:G2} (SE)")));
        return trace;
    }

    /// <summary>The trace stored in <paramref name="folder"/>, null when none is.</summary>
    /// <exception cref="InvalidDataException">The file is unreadable or was measured with other settings than <paramref name="scale"/>'s (named).</exception>
    public static HtrTrace? ReadTrace(string folder, BudgetScale scale)
    {
        var path = Path.Combine(folder, TraceFileName);
        if (!File.Exists(path)) return null;
        HtrTrace trace;
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path))!;
            trace = new HtrTrace((double)node["trace"]!, node["standard_error"] is { } se ? (double)se : double.NaN, (int)node["probes"]!, (long)node["samples"]!,
                (long)node["probe_seed"]!, (int)node["epoch"]!);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new InvalidDataException($"{path}: not a trace file this WideValley wrote ({e.Message}); delete it to measure again", e);
        }
        var samples = Math.Min(scale.TraceSamples, scale.Images ?? TrainingImages);
        if (trace.Probes != scale.TraceProbes || trace.ProbeSeed != TraceProbeSeed || trace.Samples != samples)
            throw new InvalidDataException(
                $"{path}: measured with {trace.Probes} probes (seed {trace.ProbeSeed}) on {trace.Samples} images, but this budget measures {scale.TraceProbes} probes " +
                $"(seed {TraceProbeSeed}) on {samples}; delete the file or use the budget it was made with");
        return trace;
    }
}
