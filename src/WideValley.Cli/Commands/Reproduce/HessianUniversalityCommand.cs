using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Experiments;
using WideValley.Landscape;
using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce hessian-universality`: seed 003 Sec. 5.1 (Figs. 1 and 3). Per network: train with the
/// paper's optimizer unless the run folder holds the finished run, measure the spectrum with `widevalley hessian`'s
/// methods unless the measurement folder holds it, then write the report from everything that has finished.
/// </summary>
public static class HessianUniversalityCommand
{
    /// <summary>Debian's fortunes file (package fortunes-min): the char-LSTM's text when --corpus is not given.</summary>
    public const string DefaultCorpus = "/usr/share/games/fortunes/fortunes";

    public static Command Create(CliContext ctx)
    {
        var networks = new Option<string>("--networks")
        {
            Description = $"Comma-separated networks: {string.Join(", ", HessianUniversality.NetworkNames)}.",
            DefaultValueFactory = _ => string.Join(",", HessianUniversality.NetworkNames),
        };
        var budget = ReproduceOptions.Budget();
        var runs = new Option<string>("--runs")
        {
            Description = "Folder of the run folders (RUNS/hessian-universality-BUDGET/NETWORK, measurements in its hessian-METHOD subfolders).",
            DefaultValueFactory = _ => Path.Combine("runs", "reproduce"),
        };
        var output = ReproduceOptions.Output();
        var mnistDir = new Option<string?>("--mnist-dir") { Description = "Folder with the MNIST files; without it Fashion-MNIST stands in for MNIST." };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var cifarDir = new Option<string?>("--cifar10-dir") { Description = "CIFAR-10 binary folder for All-CNN-BN's diagonal Fisher; without it that network is skipped." };
        var corpus = new Option<string?>("--corpus")
        {
            Description = $"UTF-8 text the char-LSTM's lines are cut from (default {DefaultCorpus} when installed; without any, the char-LSTM is skipped).",
        };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = libtorch's default); the exact Hessian runs as many column workers.", DefaultValueFactory = _ => 0 };
        var command = new Command("hessian-universality",
            "Sec. 5.1 (Figs. 1, 3): train small-LeNet, small-mnistfc and a small char-LSTM to a minimum, measure their Hessian spectra (All-CNN-BN: " +
            "diagonal Fisher) and report the near-zero fractions, extremes and tails beside the paper's; resumable; writes hessian-universality[-BUDGET].md/.json and plots.")
        {
            networks, budget, runs, output, mnistDir, fashionDir, cifarDir, corpus, threads,
        };
        command.SetAction(p =>
        {
            var selected = HessianUniversality.ParseNetworks(p.GetValue(networks)!);
            var t = p.GetValue(threads);
            if (t < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {t}");
            var data = new ExperimentData
            {
                MnistDir = ReproduceOptions.ExistingFolder(p.GetValue(mnistDir), "--mnist-dir"),
                FashionMnistDir = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir"),
                Cifar10Dir = ReproduceOptions.ExistingFolder(p.GetValue(cifarDir), "--cifar10-dir"),
                Corpus = ReproduceOptions.ExistingFile(p.GetValue(corpus), "--corpus") ?? (File.Exists(DefaultCorpus) ? DefaultCorpus : null),
            };
            return Execute(ctx, selected, Budgets.Parse(p.GetValue(budget)!), data, t,
                Path.GetFullPath(p.GetValue(runs)!), Path.GetFullPath(p.GetValue(output)!));
        });
        return command;
    }

    /// <summary>One `widevalley hessian` measurement of a trained network, in its own folder.</summary>
    sealed record MeasurementStep(string Method, HessianCommand.HessianSettings Settings, JsonObject Expected)
    {
        public string Folder => Settings.Out!;
        public string ResultFile => Path.Combine(Folder, "hessian.json");
    }

    /// <summary>A network's place in the plan: skipped, or its training run and measurements.</summary>
    sealed record NetworkPlan(UniversalityNetwork Network, string Dataset, string? SkipReason, RunConfig? Config, string? Folder, SpectrumPlan Spectrum,
        IReadOnlyList<MeasurementStep> Steps)
    {
        /// <summary>Why the measurement failed in this invocation (null: it did not fail).</summary>
        public string? Failure { get; set; }
    }

    static int Execute(CliContext ctx, IReadOnlyList<UniversalityNetwork> networks, Budget budget, ExperimentData data, int threads, string runsRoot, string outDir)
    {
        var c = CultureInfo.InvariantCulture;
        var loadAtStart = LoadAverage();
        var experiment = HessianUniversality.ExperimentFolder(runsRoot, budget);
        var plans = networks.Select(n => PlanFor(n, budget, data, threads, experiment, runsRoot)).ToList();

        // Look at every folder before training anything: one holding another experiment is an error now, not after
        // hours of training the networks before it.
        var states = plans.Where(p => p.SkipReason is null).ToDictionary(p => p, p => RunFolders.Inspect(p.Folder!, p.Config!));
        var toTrain = states.Count(kv => kv.Value is RunFolderState.Empty or RunFolderState.Resumable);
        var stepsPlanned = plans.Sum(p => p.Steps.Count);
        var stepsDone = states.Where(kv => kv.Value == RunFolderState.Finished).Sum(kv => kv.Key.Steps.Count(s => IsDone(s, FinalEpoch(kv.Key))));
        ctx.Out.WriteLine($"hessian-universality (budget {Budgets.Name(budget)}): {HessianUniversality.DescribeBudget(budget)}");
        foreach (var p in plans)
            ctx.Out.WriteLine(p.SkipReason is string why
                ? $"  {p.Network.Name}: skipped: {why}"
                : $"  {p.Network.Name}: training {Describe(states[p])}; {p.Spectrum.Describe()} over {p.Spectrum.Samples:N0} {SampleUnit(p.Network)}; in {p.Folder}");
        ctx.Out.WriteLine(string.Format(c, "hessian-universality: {0} trainings planned, {1} finished already, {2} to train; {3} measurements planned, {4} finished already, {5} to run",
            states.Count, states.Count - toTrain, toTrain, stepsPlanned, stepsDone, stepsPlanned - stepsDone));

        var exit = ExitCodes.Ok;
        var worked = 0;
        foreach (var plan in plans.Where(p => p.SkipReason is null))
        {
            var state = states[plan];
            if (state is RunFolderState.Empty or RunFolderState.Resumable)
            {
                worked++;
                var result = ReproduceRuns.Train(ctx, plan.Config!, plan.Folder!, plan.Network.Name);
                if (result?.Status == TrainingStatus.Interrupted)
                {
                    exit = ExitCodes.Interrupted;
                    break;
                }
                state = RunFolders.Inspect(plan.Folder!, plan.Config!);
            }
            if (state != RunFolderState.Finished) continue;
            var epoch = FinalEpoch(plan);
            foreach (var step in plan.Steps.Where(s => !IsDone(s, epoch)))
            {
                ctx.Out.WriteLine($"{plan.Network.Name}: measuring ({step.Method}) into {step.Folder}");
                worked++;
                // The measurement service itself, not the hessian command: its typed result and exceptions are the interface.
                string? failure = null;
                using (var stop = new HessianCommand.StopOnSignal(ctx.Error))
                {
                    try
                    {
                        var measured = HessianCommand.MeasureRun(step.Settings, ctx.Out, stop.Token);
                        foreach (var line in measured.Result.Lines) ctx.Out.WriteLine(line);
                        ctx.Out.WriteLine($"wrote {measured.OutDir}: {string.Join(", ", measured.Files)}");
                    }
                    catch (OperationCanceledException e)
                    {
                        ctx.Error.WriteLine($"widevalley: {e.Message}");
                        exit = ExitCodes.Interrupted;
                        break;
                    }
                    catch (Exception e) when (e is UsageException or ArgumentException or InvalidOperationException or InsufficientMemoryException
                                                  or IOException or InvalidDataException or UnauthorizedAccessException or NotSupportedException)
                    {
                        failure = e.Message;
                    }
                }
                if (failure is null) continue;
                ctx.Error.WriteLine($"widevalley: {failure}");
                plan.Failure = $"the {step.Method} measurement failed: {failure}";
                exit = ExitCodes.Failure;
                break;
            }
            if (exit == ExitCodes.Interrupted) break;
        }

        var input = new UniversalityReportInput(
            HessianUniversalityReport.FileStem(budget),
            $"Universality of the Hessian at local minima (seed 003 Sec. 5.1, Figs. 1 and 3), budget `{Budgets.Name(budget)}`",
            Introduction(networks, budget, data), budget, CommandLine(networks, budget, data),
            ReproduceOptions.Machine(threads) + (loadAtStart is null || worked == 0 ? "" :
                $"; load average (1, 5, 15 min) {loadAtStart} before and {LoadAverage()} after the {worked} training and measurement steps this invocation ran"),
            plans.Select(Result).ToList());
        var files = HessianUniversalityReport.Write(outDir, input);
        foreach (var r in input.Results) PrintResult(ctx, r);
        ctx.Out.WriteLine($"report {files[^1]} ({files.Count} files in {outDir})");
        if (exit == ExitCodes.Interrupted) ctx.Out.WriteLine("interrupted: run the same command again to continue where it stopped");
        return exit;
    }

    static NetworkPlan PlanFor(UniversalityNetwork network, Budget budget, ExperimentData data, int threads, string experiment, string runsRoot)
    {
        var dataset = HessianUniversality.DatasetOf(network, data);
        var spectrum = HessianUniversality.Plan(network, budget);
        if (HessianUniversality.SkipReason(network, data) is string why) return new NetworkPlan(network, dataset, why, null, null, spectrum, []);
        var lines = network.IsLanguageModel
            ? HessianUniversality.WriteCharacterLines(data.Corpus!, Path.Combine(experiment, "text"), HessianUniversality.TrainingLines(budget))
            : null;
        var config = HessianUniversality.TrainingConfig(network, budget, data, lines, threads);
        RunSetup.Validate(config);
        var folder = HessianUniversality.RunFolder(runsRoot, budget, network);
        return new NetworkPlan(network, dataset, null, config, folder, spectrum, Steps(spectrum, folder, threads));
    }

    /// <summary>The `hessian` runs a plan takes, each with the settings its stored hessian.json must show to count as done.</summary>
    static List<MeasurementStep> Steps(SpectrumPlan plan, string runFolder, int threads)
    {
        HessianCommand.HessianSettings Settings(string method) => new()
        {
            Checkpoint = runFolder,
            Method = method,
            Which = "both",
            Samples = plan.Samples,
            BatchSize = plan.BatchSize,
            ParamsText = plan.Parameters,
            Overrides = new RunOverrides(threads, null, null),
            Out = Path.Combine(runFolder, $"hessian-{method}"),
            LanguageModels = true,
        };
        JsonObject Expected(string method) => new()
        {
            ["method"] = method,
            ["samples"] = plan.Samples,
            ["batch_size"] = plan.BatchSize,
            ["params"] = plan.Parameters ?? "all",
            ["dtype"] = "float32",
        };
        return plan.Method switch
        {
            SpectrumMethod.Exact => [new("exact", Settings("exact"), Add(Expected("exact"), "eigen_route", "full"))],
            SpectrumMethod.LanczosAndSlq =>
            [
                new("lanczos", Settings("lanczos") with { Top = plan.LanczosTop, Steps = plan.LanczosSteps },
                    Add(Add(Add(Expected("lanczos"), "top", plan.LanczosTop), "which", "both"), "steps", plan.LanczosSteps)),
                new("slq", Settings("slq") with { Probes = plan.SlqProbes, Steps = plan.SlqSteps }, Add(Add(Expected("slq"), "probes", plan.SlqProbes), "steps", plan.SlqSteps)),
            ],
            _ => [new("diag-fisher", Settings("diag-fisher"), Expected("diag-fisher"))],
        };
    }

    static JsonObject Add(JsonObject o, string key, JsonNode? value)
    {
        o[key] = value;
        return o;
    }

    static int FinalEpoch(NetworkPlan plan) => RunFolders.Read(plan.Folder!).Final?.Epoch ?? 0;

    /// <summary>
    /// Whether the step's folder holds its finished measurement of the run's final weights. A hessian.json written
    /// with other settings is an error, not a reason to overwrite it.
    /// </summary>
    /// <exception cref="InvalidDataException">The folder holds another measurement, or a malformed hessian.json.</exception>
    static bool IsDone(MeasurementStep step, int epoch)
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

    static string Describe(RunFolderState state) => state switch
    {
        RunFolderState.Empty => "to run",
        RunFolderState.Resumable => "to resume",
        RunFolderState.Finished => "finished",
        _ => "diverged (reported as such)",
    };

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

    static string SampleUnit(UniversalityNetwork network) => network.IsLanguageModel ? "lines" : "images";

    // ---- the report's input --------------------------------------------------------------------------------------

    static UniversalityResult Result(NetworkPlan plan)
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
    static double[] ReadFisherColumn(string path)
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

    static void PrintResult(CliContext ctx, UniversalityResult r)
    {
        var c = CultureInfo.InvariantCulture;
        if (r.SkipReason is not null) ctx.Out.WriteLine($"{r.Network.Name}: skipped");
        else if (!r.Measured) ctx.Out.WriteLine($"{r.Network.Name}: {r.Pending}");
        else
        {
            var s = r.Summary!;
            var quoted = string.Join(", ", r.Network.Paper.FractionAbsBelow.Select(kv =>
                string.Format(c, "|λ| < {0:0.#####}: {1:0.00}% (paper about {2:0}%)", kv.Key, 100 * s.FractionBelow(kv.Key), 100 * kv.Value)));
            ctx.Out.WriteLine(string.Format(c, "{0}: {1}; {2}; λ_max {3:G4}, λ_min {4:G4}", r.Network.Name, r.TrainingOutcome, quoted, s.LambdaMax, s.LambdaMin));
        }
    }

    static List<string> Introduction(IReadOnlyList<UniversalityNetwork> networks, Budget budget, ExperimentData data)
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

    /// <summary>The command that reproduces the report (without machine-specific options).</summary>
    static string CommandLine(IReadOnlyList<UniversalityNetwork> networks, Budget budget, ExperimentData data)
    {
        var parts = new List<string>
        {
            "widevalley reproduce hessian-universality", $"--budget {Budgets.Name(budget)}", $"--networks {string.Join(",", networks.Select(n => n.Name))}",
        };
        if (data.MnistDir is not null) parts.Add("--mnist-dir MNIST_DIR");
        if (data.Cifar10Dir is not null) parts.Add("--cifar10-dir CIFAR10_DIR");
        if (data.Corpus is not null && networks.Any(n => n.IsLanguageModel)) parts.Add($"--corpus {data.Corpus}");
        return string.Join(" ", parts);
    }
}
