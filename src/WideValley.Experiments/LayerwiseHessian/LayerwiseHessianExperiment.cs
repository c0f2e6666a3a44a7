using WideValley.Data;
using WideValley.Landscape;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How `reproduce layerwise-hessian` runs: budget, seeds, model, density preset, data, folders, what the report quotes.</summary>
public sealed record LayerwiseHessianSettings : ReproductionSettings
{
    /// <summary>A model-zoo image classifier (default our <c>lenet</c>).</summary>
    public string Model { get; init; } = "lenet";

    /// <summary>The density preset: the authors' (default, for parity) or ours (with reorthogonalisation).</summary>
    public CurvatureSpectra Density { get; init; } = CurvatureSpectra.Authors;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ValidateShared();
        if (string.IsNullOrWhiteSpace(Model)) throw new ArgumentException("--model must name a model-zoo image classifier");
        if (Density is not (CurvatureSpectra.Authors or CurvatureSpectra.Ours)) throw new ArgumentException($"--density must be authors or ours, got {Density}");
    }
}

/// <summary>One seed's training run.</summary>
/// <param name="Seed">The seed.</param>
/// <param name="Config">Its configuration (with the curvature tracking that records the spectra).</param>
/// <param name="Folder">Its run folder.</param>
public sealed record LayerwisePlannedRun(long Seed, RunConfig Config, string Folder)
{
    /// <summary>MODEL/seed-K.</summary>
    public string Label => $"{Config.Model}/seed-{Seed}";
}

/// <summary>One layer's distance from the full spectrum in one run, per epoch and summed.</summary>
/// <param name="Layer">The layer's module name.</param>
/// <param name="RelativeDepth">Its relative depth.</param>
/// <param name="PerEpoch">Distance at every trained epoch (1..E).</param>
/// <param name="Normalized">Sum over epochs divided by the largest layer's sum (the authors' plot).</param>
public sealed record LayerDistance(string Layer, double RelativeDepth, IReadOnlyList<double> PerEpoch, double Normalized);

/// <summary>What one finished run shows.</summary>
/// <param name="Seed">The seed.</param>
/// <param name="Records">curvature.jsonl, epoch 0 (initial weights) to E.</param>
/// <param name="Distances">Per measure, every layer's distances.</param>
/// <param name="FinalTestError">Test error (%) after the last epoch.</param>
/// <param name="WallSeconds">The run's wall time (training, evaluation and the spectra), over all its sessions.</param>
public sealed record LayerwiseRunAnalysis(long Seed, IReadOnlyList<CurvatureRecord> Records,
    IReadOnlyDictionary<SimilarityMeasure, IReadOnlyList<LayerDistance>> Distances, double? FinalTestError, double WallSeconds = double.NaN)
{
    /// <summary>The layer closest to the full spectrum under <paramref name="measure"/> (smallest summed distance).</summary>
    public LayerDistance Closest(SimilarityMeasure measure) => Distances[measure].MinBy(d => d.Normalized)!;
}

/// <summary>What the experiment found.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run and, when finished, its analysis.</param>
/// <param name="Interrupted">Cancelled during a run (its checkpoint saved).</param>
/// <param name="Files">The report's files.</param>
public sealed record LayerwiseHessianOutcome(LayerwiseHessianSettings Settings, IReadOnlyList<(LayerwisePlannedRun Run, LayerwiseRunAnalysis? Analysis)> Runs,
    bool Interrupted, IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report.</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce layerwise-hessian` (issue 19 §1; Sankar et al., AAAI 2021): a classifier trained on Fashion-MNIST with the
/// authors' spectrum-study settings (SGD momentum 0.9, lr 1e-2 constant, batch 256, no weight decay), with the
/// eigenvalue density, lambda_max and trace of the full Hessian and of every layer's diagonal block recorded after every
/// epoch over 10 training examples per class (<see cref="CurvatureTracker"/>); then each layer's distance from the full
/// density under the authors' measure, W1 and KL, against relative depth, and the verdicts on "middle layers are
/// closest to the full spectrum" and "lambda_max and trace fall during training". One run folder per seed (the
/// trainer's checkpoint makes it resumable per epoch); finished runs are never trained again.
/// </summary>
public static class LayerwiseHessianExperiment
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "layerwise-hessian";

    /// <summary>Epochs of the paper budget (the authors' 50).</summary>
    public const int PaperEpochs = 50;

    /// <summary>Epochs of the small budget.</summary>
    public const int SmallEpochs = 5;

    /// <summary>Training images of the small budget (a fifth of Fashion-MNIST's 60,000).</summary>
    public const long SmallTrainingImages = 12_000;

    /// <summary>Training images of the smoke budget.</summary>
    public const long SmokeTrainingImages = 512;

    /// <summary>Hutchinson probes for the traces (full budget and small; the smoke budget uses 4).</summary>
    public const int TraceProbes = 100;

    /// <summary>What each budget means.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => $"the authors' protocol: {PaperEpochs} epochs on all 60,000 training images, spectra after every epoch",
        Budget.Small => $"{SmallEpochs} epochs on the first {SmallTrainingImages:N0} training images, spectra after every epoch " +
                        $"({SmallEpochs * SmallTrainingImages / (double)(PaperEpochs * 60_000):P0} of the paper's training steps and {(SmallEpochs + 1) / (double)(PaperEpochs + 1):P0} of its spectra)",
        Budget.Smoke => $"1 epoch on {SmokeTrainingImages} training images, 2 examples per class, 16-step densities: checks that everything runs, judges nothing",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>The run of one seed.</summary>
    public static RunConfig Config(LayerwiseHessianSettings s, long seed)
    {
        s.Validate();
        var smoke = s.Budget == Budget.Smoke;
        var (epochs, images) = s.Budget switch
        {
            Budget.Paper => (PaperEpochs, (long?)null),
            Budget.Small => (SmallEpochs, SmallTrainingImages),
            Budget.Smoke => (1, SmokeTrainingImages),
            _ => throw new ArgumentOutOfRangeException(nameof(s), s.Budget, "unknown budget"),
        };
        return new RunConfig
        {
            Model = s.Model,
            Data = DatasetCatalog.FashionMnist,
            DataDir = s.FashionMnistDir,
            BatchSize = 256,
            Epochs = epochs,
            LrSchedule = "const",
            MaxTrainSamples = images,
            Seed = seed,
            Threads = s.Threads,
            Device = s.Device,
            TensorBoard = false,
            CurvatureTracking = new CurvatureTrackingOptions
            {
                ExamplesPerClass = smoke ? 2 : 10,
                Seed = 0,
                LanczosIterations = 20,
                HutchinsonProbes = smoke ? 4 : TraceProbes,
                Spectra = s.Density,
                DensitySteps = smoke ? 16 : null,
            },
        }.WithOptimizer(new SgdOptions { LearningRate = 1e-2, Momentum = 0.9, WeightDecay = 0 });
    }

    /// <summary>RUNS/layerwise-hessian-BUDGET/MODEL-DENSITY/seed-K.</summary>
    public static string RunFolder(LayerwiseHessianSettings s, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", $"{s.Model}-{s.Density.ToString().ToLowerInvariant()}", $"seed-{seed}");

    /// <summary>Every run.</summary>
    public static IReadOnlyList<LayerwisePlannedRun> Plan(LayerwiseHessianSettings s)
    {
        s.Validate();
        var runs = new List<LayerwisePlannedRun>();
        for (var k = 0; k < s.Seeds; k++)
        {
            var seed = s.FirstSeed + k;
            var config = Config(s, seed);
            RunSetup.Validate(config);
            runs.Add(new LayerwisePlannedRun(seed, config, RunFolder(s, seed)));
        }
        return runs;
    }

    /// <summary>
    /// Inspects every run folder first (one holding another run is refused naming it), trains what is missing unless
    /// <see cref="ReproductionSettings.ReportOnly"/>, analyses every finished run and writes the report. Cancelling
    /// keeps the current run's checkpoint and still writes the report of what has finished.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings.</exception>
    public static LayerwiseHessianOutcome Run(LayerwiseHessianSettings s, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        var plan = Plan(s);
        var states = plan.ToDictionary(r => r, r => RunFolders.Inspect(r.Folder, r.Config));
        var todo = plan.Where(r => states[r] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        progress?.Report(new ComparisonPlanned(Name, plan.Count, plan.Count - todo.Count, todo.Count, s.ReportOnly));
        var interrupted = false;
        if (!s.ReportOnly)
            for (var i = 0; i < todo.Count && !interrupted; i++)
            {
                if (cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                var run = todo[i];
                var result = RunTraining.Train(run.Config, run.Folder, run.Label, new RunPosition(i + 1, todo.Count), progress, cancellation);
                interrupted = result?.Status == TrainingStatus.Interrupted;
            }
        var analyses = plan.Select(r => (r, RunFolders.Inspect(r.Folder, r.Config) == RunFolderState.Finished ? Analyse(r) : null)).ToList();
        var files = LayerwiseHessianReport.Write(s, analyses, message => progress?.Report(new ExperimentWarning(message)));
        return new LayerwiseHessianOutcome(s, analyses, interrupted, files);
    }

    /// <summary>The distances of a finished run's recorded densities.</summary>
    /// <exception cref="InvalidDataException">The run folder has no complete curvature.jsonl.</exception>
    public static LayerwiseRunAnalysis Analyse(LayerwisePlannedRun run)
    {
        var path = Path.Combine(run.Folder, CurvatureTracker.FileName);
        if (!File.Exists(path)) throw new InvalidDataException($"{path} is missing: the run in {run.Folder} did not record its spectra");
        var records = CurvatureTracker.Read(path).OrderBy(r => r.Epoch).ToList();
        var expected = Enumerable.Range(0, run.Config.Epochs + 1).ToList();
        if (!records.Select(r => r.Epoch).SequenceEqual(expected))
            throw new InvalidDataException($"{path} holds epochs {string.Join(",", records.Select(r => r.Epoch))}, expected 0..{run.Config.Epochs}");
        var summary = RunFolders.Read(run.Folder);
        return new LayerwiseRunAnalysis(run.Seed, records, Distances(records), summary.Final?.TestError, summary.TotalSeconds);
    }

    /// <summary>The measures, in the order of the report.</summary>
    public static IReadOnlyList<SimilarityMeasure> Measures { get; } = [SimilarityMeasure.W1OnGrid, SimilarityMeasure.KLOnGrid, SimilarityMeasure.AuthorsCode];

    /// <summary>Every layer's distance from the full density at every trained epoch (1..E) under every measure, summed and max-normalised as the authors plot it.</summary>
    /// <exception cref="InvalidDataException">A record without densities.</exception>
    public static IReadOnlyDictionary<SimilarityMeasure, IReadOnlyList<LayerDistance>> Distances(IReadOnlyList<CurvatureRecord> records)
    {
        var trained = records.Where(r => r.Epoch >= 1).ToList();
        if (trained.Count == 0) throw new InvalidDataException("no trained epoch was recorded");
        var layers = trained[0].Layers;
        var result = new Dictionary<SimilarityMeasure, IReadOnlyList<LayerDistance>>();
        foreach (var measure in Measures)
        {
            var perLayer = layers.Select(layer => trained.Select(r =>
            {
                var full = r.Full.Density?.ToResult() ?? throw new InvalidDataException($"epoch {r.Epoch}: the full Hessian's density was not recorded");
                var own = r.Layers.First(l => l.Name == layer.Name).Density?.ToResult()
                          ?? throw new InvalidDataException($"epoch {r.Epoch}: the density of {layer.Name} was not recorded");
                return SpectralSimilarity.Compare(full, own, measure);
            }).ToList()).ToList();
            var sums = perLayer.Select(d => d.Sum()).ToList();
            var max = sums.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();
            result[measure] = layers.Select((layer, i) => new LayerDistance(layer.Name, layer.RelativeDepth ?? 0, perLayer[i], sums[i] / max)).ToList();
        }
        return result;
    }
}
