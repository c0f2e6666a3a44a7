using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>What a run of the Hessian-universality experiment (seed 003 Sec. 5.1) covers and where it keeps its work.</summary>
public sealed record UniversalityRequest
{
    /// <summary>The networks, in report order.</summary>
    public required IReadOnlyList<UniversalityNetwork> Networks { get; init; }

    /// <summary>The compute budget.</summary>
    public required Budget Budget { get; init; }

    /// <summary>Where the data are.</summary>
    public required ExperimentData Data { get; init; }

    /// <summary>libtorch threads for training and measuring (0: libtorch's default); the exact Hessian runs as many column workers.</summary>
    public int Threads { get; init; }

    /// <summary>The folder of the run folders (RUNS/hessian-universality-BUDGET/NETWORK, measurements in its hessian-METHOD subfolders).</summary>
    public required string RunsRoot { get; init; }

    /// <summary>The report's folder.</summary>
    public required string OutDir { get; init; }

    /// <summary>The command that reproduces the report, as the report quotes it.</summary>
    public required string CommandLine { get; init; }

    /// <summary>The machine in one line, as the report quotes it (the load averages of the invocation are appended).</summary>
    public required string Machine { get; init; }
}

/// <summary>One `widevalley hessian` measurement of a trained network, in its own folder.</summary>
/// <param name="Method">The method, as `hessian --method` spells it: exact, lanczos, slq or diag-fisher.</param>
/// <param name="Folder">Its output folder, inside the run folder.</param>
/// <param name="Settings">The method and its sizes (without log, progress or cancellation).</param>
/// <param name="Expected">The settings its stored hessian.json must show to count as done.</param>
public sealed record UniversalityMeasurement(string Method, string Folder, HessianMeasurementSettings Settings, JsonObject Expected)
{
    /// <summary>hessian.json, the last file written: its presence means the measurement is complete.</summary>
    public string ResultFile => Path.Combine(Folder, "hessian.json");
}

/// <summary>A network's place in the plan: skipped, or its training run, what its folder holds, and its measurements.</summary>
public sealed class UniversalityNetworkPlan
{
    internal UniversalityNetworkPlan(UniversalityNetwork network, string dataset, string? skipReason, RunConfig? config, string? folder, SpectrumPlan spectrum,
        IReadOnlyList<UniversalityMeasurement> steps)
    {
        Network = network;
        Dataset = dataset;
        SkipReason = skipReason;
        Config = config;
        Folder = folder;
        Spectrum = spectrum;
        Steps = steps;
    }

    /// <summary>The network.</summary>
    public UniversalityNetwork Network { get; }

    /// <summary>The dataset it trains on, as the report names it.</summary>
    public string Dataset { get; }

    /// <summary>Why it is skipped (null: it runs).</summary>
    public string? SkipReason { get; }

    /// <summary>Its training run (null when skipped).</summary>
    public RunConfig? Config { get; }

    /// <summary>Its run folder (null when skipped).</summary>
    public string? Folder { get; }

    /// <summary>How its spectrum is measured.</summary>
    public SpectrumPlan Spectrum { get; }

    /// <summary>The measurements, in order (none when skipped).</summary>
    public IReadOnlyList<UniversalityMeasurement> Steps { get; }

    /// <summary>What the run folder held when the plan was made (null when skipped).</summary>
    public RunFolderState? State { get; internal set; }

    /// <summary>"images", or "lines" for the char-LSTM: what <see cref="SpectrumPlan.Samples"/> counts.</summary>
    public string SampleUnit => HessianUniversalityRunner.SampleUnit(Network);

    /// <summary>Why the measurement failed in this invocation (null: it did not fail).</summary>
    internal string? Failure { get; set; }
}

/// <summary>A checked <see cref="UniversalityRequest"/>: every network's plan and how much is done already.</summary>
public sealed class UniversalityPlan
{
    internal UniversalityPlan(UniversalityRequest request, IReadOnlyList<UniversalityNetworkPlan> networks, string? loadAtStart)
    {
        Request = request;
        Networks = networks;
        LoadAtStart = loadAtStart;
    }

    /// <summary>The request.</summary>
    public UniversalityRequest Request { get; }

    /// <summary>Every network's plan, in request order.</summary>
    public IReadOnlyList<UniversalityNetworkPlan> Networks { get; }

    internal string? LoadAtStart { get; }

    /// <summary>Training runs of the networks that are not skipped.</summary>
    public int TrainingsPlanned => Networks.Count(n => n.State is not null);

    /// <summary>Training runs to train or resume.</summary>
    public int TrainingsToRun => Networks.Count(n => n.State is RunFolderState.Empty or RunFolderState.Resumable);

    /// <summary>Measurements of the networks that are not skipped.</summary>
    public int MeasurementsPlanned => Networks.Sum(n => n.Steps.Count);

    /// <summary>Measurements whose folders hold their finished result for the run's final weights.</summary>
    public int MeasurementsDone { get; internal set; }
}

/// <summary>How a run of the experiment ended.</summary>
public enum UniversalityStatus
{
    /// <summary>Everything planned was trained and measured (or was already).</summary>
    Completed,
    /// <summary>Cancelled; the training's checkpoint and the exact Hessian's finished columns are kept, the same request continues.</summary>
    Interrupted,
    /// <summary>A measurement failed (<see cref="MeasurementFailed"/> said why); the report shows it as pending.</summary>
    Failed,
}

/// <summary>What a run of the experiment did: how it ended, the report's input and the files written.</summary>
/// <param name="Status">How it ended.</param>
/// <param name="Report">What the report shows.</param>
/// <param name="Files">The report's files, the Markdown last.</param>
public sealed record UniversalityOutcome(UniversalityStatus Status, UniversalityReportInput Report, IReadOnlyList<string> Files);

/// <summary>
/// Runs seed 003 Sec. 5.1 (Figs. 1 and 3). Per network: train with the paper's optimizer unless the run folder holds
/// the finished run, measure the spectrum through the library's <see cref="HessianMeasurement"/> service (written as
/// `widevalley hessian` writes it, by <see cref="HessianFolders"/>) unless the measurement folder holds it, then write
/// the report from everything that has finished. Reports progress through <see cref="ExperimentEvent"/>s; writes no
/// console output.
/// </summary>
public static class HessianUniversalityRunner
{
    /// <summary>The evaluation-set size `widevalley hessian` takes when none is given (the plans always give one).</summary>
    const long DefaultSamples = 1000;

    /// <summary>
    /// Plans every network: writes the char-LSTM's lines (when it runs), checks every training configuration, and
    /// looks at every folder before anything trains (one holding another experiment is an error now, not after hours
    /// of training the networks before it).
    /// </summary>
    /// <exception cref="ArgumentException">A training configuration that cannot run.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run or measurement with other settings, or unreadable files.</exception>
    public static UniversalityPlan Plan(UniversalityRequest request)
    {
        var loadAtStart = LoadAverage();
        var experiment = HessianUniversality.ExperimentFolder(request.RunsRoot, request.Budget);
        var networks = request.Networks.Select(n => PlanFor(n, request, experiment)).ToList();
        foreach (var n in networks.Where(n => n.SkipReason is null)) n.State = RunFolders.Inspect(n.Folder!, n.Config!);
        var plan = new UniversalityPlan(request, networks, loadAtStart);
        plan.MeasurementsDone = networks.Where(n => n.State == RunFolderState.Finished).Sum(n => n.Steps.Count(s => IsDone(s, FinalEpoch(n))));
        return plan;
    }

    /// <summary>
    /// Trains what is missing, measures what is missing, then writes the report. Cancelling stops after the current
    /// training step (checkpoint saved) or between exact-Hessian columns (finished blocks kept); the report is still
    /// written. A failed measurement stops the run and is reported as pending.
    /// </summary>
    /// <exception cref="IOException">Another process trains in a run folder; the report cannot be written.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run or measurement with other settings.</exception>
    public static UniversalityOutcome Run(UniversalityPlan plan, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        bool interrupted = false, failed = false;
        var worked = 0;
        foreach (var network in plan.Networks.Where(p => p.SkipReason is null))
        {
            if (cancellation.IsCancellationRequested)
            {
                interrupted = true;
                break;
            }
            var state = network.State!.Value;
            if (state is RunFolderState.Empty or RunFolderState.Resumable)
            {
                worked++;
                var result = RunTraining.Train(network.Config!, network.Folder!, network.Network.Name, null, progress, cancellation);
                if (result?.Status == TrainingStatus.Interrupted)
                {
                    interrupted = true;
                    break;
                }
                state = RunFolders.Inspect(network.Folder!, network.Config!);
            }
            if (state != RunFolderState.Finished) continue;
            var epoch = FinalEpoch(network);
            foreach (var step in network.Steps.Where(s => !IsDone(s, epoch)))
            {
                if (cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                worked++;
                var measured = Measure(network, step, plan.Request.Threads, progress, cancellation);
                interrupted = measured == UniversalityStatus.Interrupted;
                // A failed measurement ends this network's measurements; the other networks still train and measure.
                failed |= measured == UniversalityStatus.Failed;
                if (measured != UniversalityStatus.Completed) break;
            }
            if (interrupted) break;
        }
        var status = interrupted ? UniversalityStatus.Interrupted : failed ? UniversalityStatus.Failed : UniversalityStatus.Completed;

        var request = plan.Request;
        var input = new UniversalityReportInput(
            HessianUniversalityReport.FileStem(request.Budget),
            $"Universality of the Hessian at local minima (seed 003 Sec. 5.1, Figs. 1 and 3), budget `{Budgets.Name(request.Budget)}`",
            Introduction(request.Networks, request.Budget, request.Data), request.Budget, request.CommandLine,
            request.Machine + (plan.LoadAtStart is null || worked == 0 ? "" :
                $"; load average (1, 5, 15 min) {plan.LoadAtStart} before and {LoadAverage()} after the {worked} training and measurement steps this invocation ran"),
            plan.Networks.Select(Result).ToList());
        var files = HessianUniversalityReport.Write(request.OutDir, input, message => progress?.Report(new ExperimentWarning(message)));
        return new UniversalityOutcome(status, input, files);
    }

    /// <summary>One measurement of a trained run into its folder; failures that are the measurement's own are reported, not thrown.</summary>
    static UniversalityStatus Measure(UniversalityNetworkPlan network, UniversalityMeasurement step, int threads, IProgress<ExperimentEvent>? progress,
        CancellationToken cancellation)
    {
        var label = network.Network.Name;
        progress?.Report(new MeasurementStarted(label, step.Method, step.Folder));
        try
        {
            var (checkpoint, meta, stored, notice) = MeasurableRun.ReadRun(network.Folder!);
            if (notice is not null) progress?.Report(new ExperimentWarning($"{label}: {notice}"));
            var spectrum = network.Spectrum;
            using var run = MeasurableRun.Open(checkpoint, meta, stored with { Threads = threads, TensorBoard = false }, spectrum.Samples, DefaultSamples, spectrum.BatchSize);
            var measured = HessianFolders.Measure(new HessianFolderRequest
            {
                Model = run.Model,
                EvaluationSet = run.EvaluationSet,
                Samples = run.Samples,
                BatchSize = spectrum.BatchSize,
                Name = meta.Model,
                Options = new LandscapeOptions
                {
                    Parameters = spectrum.Parameters is string prefixes
                        ? ParameterSelection.ByPrefix(prefixes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                        : ParameterSelection.All,
                    Loss = run.Loss,
                    LossName = run.LossName,
                    ModelFactory = ZooCopies.FactoryFor(run.Model),
                },
                ParametersText = spectrum.Parameters,
                Settings = step.Settings with
                {
                    ColumnsFolder = Path.Combine(step.Folder, "hessian-columns"),
                    Log = new LineWriter(line => progress?.Report(new MeasurementLog(label, line))),
                    Progress = progress is null ? null : new Forward<CurvatureProgress>(p => progress.Report(new MeasurementProgressed(label, p))),
                    ColumnProgress = progress is null ? null : p => progress.Report(new MeasurementColumnsProgressed(label, p)),
                    Cancellation = cancellation,
                },
                OutDir = step.Folder,
                Describe = run.Describe,
            });
            progress?.Report(new MeasurementEnded(label, measured));
            return UniversalityStatus.Completed;
        }
        catch (OperationCanceledException e)
        {
            progress?.Report(new MeasurementInterrupted(label, step.Method, e.Message));
            return UniversalityStatus.Interrupted;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InsufficientMemoryException or IOException
                                      or InvalidDataException or UnauthorizedAccessException or NotSupportedException)
        {
            progress?.Report(new MeasurementFailed(label, step.Method, e.Message));
            network.Failure = $"the {step.Method} measurement failed: {e.Message}";
            return UniversalityStatus.Failed;
        }
    }

    static UniversalityNetworkPlan PlanFor(UniversalityNetwork network, UniversalityRequest request, string experiment)
    {
        var (budget, data) = (request.Budget, request.Data);
        var dataset = HessianUniversality.DatasetOf(network, data);
        var spectrum = HessianUniversality.Plan(network, budget);
        if (HessianUniversality.SkipReason(network, data) is string why) return new UniversalityNetworkPlan(network, dataset, why, null, null, spectrum, []);
        var lines = network.IsLanguageModel
            ? HessianUniversality.WriteCharacterLines(data.Corpus!, Path.Combine(experiment, "text"), HessianUniversality.TrainingLines(budget))
            : null;
        var config = HessianUniversality.TrainingConfig(network, budget, data, lines, request.Threads);
        RunSetup.Validate(config);
        var folder = HessianUniversality.RunFolder(request.RunsRoot, budget, network);
        return new UniversalityNetworkPlan(network, dataset, null, config, folder, spectrum, Steps(spectrum, folder));
    }

    /// <summary>The measurements a plan takes, each with the settings its stored hessian.json must show to count as done.</summary>
    static List<UniversalityMeasurement> Steps(SpectrumPlan plan, string runFolder)
    {
        UniversalityMeasurement Step(HessianMethod method, HessianMeasurementSettings settings, params (string Key, JsonNode? Value)[] extra)
        {
            var name = HessianMeasurement.MethodName(method);
            var expected = new JsonObject
            {
                ["method"] = name,
                ["samples"] = plan.Samples,
                ["batch_size"] = plan.BatchSize,
                ["params"] = plan.Parameters ?? "all",
                ["dtype"] = "float32",
            };
            foreach (var (key, value) in extra) expected[key] = value;
            return new UniversalityMeasurement(name, Path.Combine(runFolder, $"hessian-{name}"), settings with { Method = method }, expected);
        }
        return plan.Method switch
        {
            SpectrumMethod.Exact => [Step(HessianMethod.Exact, new HessianMeasurementSettings(), ("eigen_route", "full"))],
            SpectrumMethod.LanczosAndSlq =>
            [
                Step(HessianMethod.Lanczos, new HessianMeasurementSettings { Top = plan.LanczosTop, Steps = plan.LanczosSteps },
                    ("top", plan.LanczosTop), ("which", "both"), ("steps", plan.LanczosSteps)),
                Step(HessianMethod.Slq, new HessianMeasurementSettings { Probes = plan.SlqProbes, Steps = plan.SlqSteps }, ("probes", plan.SlqProbes), ("steps", plan.SlqSteps)),
            ],
            _ => [Step(HessianMethod.DiagFisher, new HessianMeasurementSettings())],
        };
    }

    static int FinalEpoch(UniversalityNetworkPlan plan) => RunFolders.Read(plan.Folder!).Final?.Epoch ?? 0;

    /// <summary>
    /// Whether the step's folder holds its finished measurement of the run's final weights. A hessian.json written
    /// with other settings is an error, not a reason to overwrite it.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder holds another measurement, or a malformed hessian.json.</exception>
    static bool IsDone(UniversalityMeasurement step, int epoch)
    {
        if (!File.Exists(step.ResultFile)) return false;
        var stored = ReadJson(step.ResultFile);
        var differences = step.Expected.Append(new("epoch", epoch))
            .Select(kv => (kv.Key, Stored: stored[kv.Key]?.ToJsonString() ?? "null", Wanted: kv.Value?.ToJsonString() ?? "null"))
            .Where(x => x.Stored != x.Wanted)
            .Select(x => $"{x.Key}: stored {x.Stored}, wanted {x.Wanted}")
            .ToList();
        if (differences.Count > 0)
            throw new InvalidDataException($"{step.Folder} holds a measurement (hessian --method {step.Method}) with other settings ({string.Join("; ", differences)}). " +
                                           "Delete that folder to measure again, or use another --runs folder.");
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
            throw new InvalidDataException($"{path}: not a JSON object ({e.Message}); delete its folder to measure again", e);
        }
    }

    /// <summary>
    /// The 1, 5 and 15-minute load averages: times in the report only mean something next to how busy the machine
    /// was (training and measuring here share two cores with whatever else runs). Null where /proc is missing.
    /// </summary>
    static string? LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>"images", or "lines" for the char-LSTM: what a network's evaluation samples are.</summary>
    public static string SampleUnit(UniversalityNetwork network) => network.IsLanguageModel ? "lines" : "images";

    // ---- the report's input --------------------------------------------------------------------------------------

    static UniversalityResult Result(UniversalityNetworkPlan plan)
    {
        var result = new UniversalityResult { Network = plan.Network, Dataset = plan.Dataset, Plan = plan.Spectrum, SampleUnit = SampleUnit(plan.Network) };
        if (plan.SkipReason is not null) return result with { SkipReason = plan.SkipReason };
        var state = RunFolders.Inspect(plan.Folder!, plan.Config!);
        if (state is RunFolderState.Empty or RunFolderState.Resumable)
            return result with { Pending = "training has not finished; run the command again to continue it" };
        var run = RunFolders.Read(plan.Folder!);
        result = result with { TrainingConfig = run.Config, TrainingSeconds = run.TotalSeconds };
        if (run.Diverged) return result with { Pending = "training diverged (a non-finite loss); delete its run folder to train it again" };
        var final = run.Final!;
        result = plan.Network.IsLanguageModel && final.TrainEvalLoss is double loss
            ? result with
            {
                TrainingOutcome = string.Format(CultureInfo.InvariantCulture, "training perplexity {0:0.000} ({1:0.0}% of next characters wrong)", Math.Exp(loss), final.TrainEvalError ?? double.NaN),
                TrainingMetric = ("training_perplexity", Math.Exp(loss)),
            }
            : result with
            {
                TrainingOutcome = string.Format(CultureInfo.InvariantCulture, "test error {0:0.00}%", final.TestError ?? double.NaN),
                TrainingMetric = ("test_error_percent", final.TestError ?? double.NaN),
            };
        if (plan.Failure is not null) return result with { Pending = plan.Failure };
        if (!plan.Steps.All(s => IsDone(s, final.Epoch))) return result with { Pending = "not measured yet; run the command again" };

        var outputs = plan.Steps.ToDictionary(s => s.Method, s => ReadJson(s.ResultFile));
        var first = outputs.Values.First();
        result = result with
        {
            Parameters = first["model_params"]!.GetValue<long>(),
            Dimension = first["n_params"]!.GetValue<long>(),
            Samples = first["samples"]!.GetValue<long>(),
            Dtype = first["dtype"]!.GetValue<string>(),
            MeasurementSeconds = outputs.Values.Sum(o => o["seconds"]!.GetValue<double>()),
        };
        switch (plan.Spectrum.Method)
        {
            case SpectrumMethod.Exact:
            {
                var eigenvalues = Doubles(outputs["exact"]["eigenvalues"], plan.Steps[0].ResultFile, "eigenvalues");
                return result with { Eigenvalues = eigenvalues, Summary = SpectrumSummary.FromEigenvalues(eigenvalues) };
            }
            case SpectrumMethod.LanczosAndSlq:
            {
                var slq = outputs["slq"];
                var file = plan.Steps[1].ResultFile;
                var quadrature = new SlqResult(
                    slq["nodes"]!.AsArray().Select(a => Doubles(a, file, "nodes")).ToArray(),
                    slq["weights"]!.AsArray().Select(a => Doubles(a, file, "weights")).ToArray(),
                    slq["n_params"]!.GetValue<long>(), slq["hvps"]!.GetValue<long>());
                var lanczos = outputs["lanczos"];
                return result with
                {
                    Quadrature = quadrature,
                    Summary = SpectrumSummary.FromQuadrature(quadrature, lanczos["lambda_max"]!.GetValue<double>(), lanczos["lambda_min"]!.GetValue<double>()),
                };
            }
            default:
            {
                var values = ReadFisherColumn(Path.Combine(plan.Steps[0].Folder, "diag-fisher.csv"));
                return result with { Eigenvalues = values, Summary = SpectrumSummary.FromEigenvalues(values) };
            }
        }
    }

    static double[] Doubles(JsonNode? array, string file, string key) =>
        array?.AsArray().Select(v => v?.GetValue<double>() ?? throw new InvalidDataException($"{file}: '{key}' holds a non-finite value")).ToArray()
        ?? throw new InvalidDataException($"{file}: no '{key}' array");

    /// <summary>The "fisher" column of the diag-fisher.csv that `hessian --method diag-fisher` writes (index,fisher).</summary>
    internal static double[] ReadFisherColumn(string path)
    {
        using var lines = File.ReadLines(path).GetEnumerator();
        if (!lines.MoveNext() || lines.Current.Trim() != "index,fisher") throw new InvalidDataException($"{path}: expected the header 'index,fisher'");
        var values = new List<double>();
        var number = 1;
        while (lines.MoveNext())
        {
            number++;
            var comma = lines.Current.IndexOf(',');
            if (comma < 0 || !double.TryParse(lines.Current.AsSpan(comma + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                throw new InvalidDataException($"{path}: line {number} is not 'index,value'");
            values.Add(value);
        }
        return [.. values];
    }

    /// <summary>The report's introduction: what the experiment does at this budget and on which data.</summary>
    internal static List<string> Introduction(IReadOnlyList<UniversalityNetwork> networks, Budget budget, ExperimentData data)
    {
        var paragraphs = new List<string>
        {
            "Seed 003 (Chaudhari et al., *Entropy-SGD*, ICLR 2017) Sec. 5.1 trains small networks to a local minimum and finds their Hessian spectra " +
            "alike: most eigenvalues near zero, a long positive tail, a short negative one. Here each network is trained with the paper's optimizer " +
            "(Adam for small-LeNet and the char-LSTM, momentum SGD for small-mnistfc) and the Hessian of its mean training loss over its first " +
            "training samples is measured in evaluation mode with the methods of `widevalley hessian`. " +
            $"Budget `{Budgets.Name(budget)}`: {HessianUniversality.DescribeBudget(budget)}.",
        };
        if (networks.Any(n => n.Name is HessianUniversality.SmallLeNet or HessianUniversality.SmallMnistFc) && data.MnistDir is null)
            paragraphs.Add($"**Data.** No MNIST folder was given, so {data.MnistRowsDataset} stands in for MNIST: a harder data set, on which these " +
                           "networks end at a test error several times the paper's.");
        if (networks.Any(n => n.IsLanguageModel) && data.Corpus is not null)
            paragraphs.Add($"**char-LSTM text.** {HessianUniversality.TrainingLines(budget)} lines of {HessianUniversality.LineLength} characters cut from " +
                           $"`{data.Corpus}` (lines with other characters dropped, white space made single spaces), plus a tenth as many each for " +
                           "validation and test; the one-hot vocabulary is newline and printable ASCII, the paper's 96 characters, so the network " +
                           "has its 32,640 parameters. Every line is one sequence from the zero state and all lines are one batch, so one training " +
                           "\"epoch\" below is one Adam step; the result is the perplexity of re-generating the lines.");
        if (networks.Any(n => n.Name == HessianUniversality.AllCnn))
            paragraphs.Add(data.Cifar10Dir is null
                ? "**All-CNN-BN** needs CIFAR-10 (`--cifar10-dir`); without it the network is listed as skipped."
                : "**All-CNN-BN** is too large for a dense Hessian (about 1.67 M parameters); as in the paper, the diagonal of the empirical " +
                  "Fisher, E(g²) − (E g)², stands in for its eigenvalues, here over minibatch gradients at the final weights.");
        return paragraphs;
    }

    /// <summary>Reports on the calling thread, at once.</summary>
    sealed class Forward<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
