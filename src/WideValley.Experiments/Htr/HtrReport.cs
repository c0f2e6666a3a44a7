using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="HtrExperiment"/>: per arm, final test error and end-of-training Hessian trace, mean ± std
/// over seeds; paired differences against SGD; verdicts on the paper's claims; the authors' logged numbers as the
/// reference. Markdown, a JSON twin, and a figure of mean test error against epochs.
/// </summary>
public static class HtrReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The arms' names in the report.</summary>
    public static string Title(string arm) => arm switch
    {
        "sgd" => "SGD",
        "sgd-l2" => "SGD+L2",
        "sgd-htr" => "SGD+HTR",
        "sgd-htr-middle" => "SGD+HTR(middle)",
        HtrExperiment.EpochMatchedSgd => "SGD, HTR arms' epochs (ours)",
        _ => arm,
    };

    /// <summary>A comparison of one arm against an SGD arm, paired by seed.</summary>
    /// <param name="Claim">The claim in words.</param>
    /// <param name="Arm">The arm compared with SGD.</param>
    /// <param name="Quantity">"test error" (percentage points) or "trace".</param>
    /// <param name="Differences">Arm minus the baseline, one per seed both finished (and measured).</param>
    /// <param name="Smoke">A smoke run: nothing is judged.</param>
    /// <param name="Baseline">The arm compared against: the authors' SGD, or the epoch-matched SGD control (ours).</param>
    public sealed record Verdict(string Claim, string Arm, string Quantity, IReadOnlyList<double> Differences, bool Smoke, string Baseline = "sgd")
    {
        /// <summary>Mean paired difference.</summary>
        public double Mean => Differences.Count == 0 ? double.NaN : Differences.Average();
        /// <summary>Its standard error (NaN below two pairs).</summary>
        public double StandardError => Differences.Count < 2 ? double.NaN : Stat.Of(Differences).StandardError;
        /// <summary>agrees / partly / disagrees / not testable.</summary>
        public string Word => Smoke || Differences.Count < 2 ? "not testable"
            : Mean < 0 && -Mean > 2 * StandardError ? "agrees"
            : Mean > 0 && Mean > 2 * StandardError ? "disagrees"
            : Mean < 0 ? "partly" : "disagrees";
        /// <summary>The verdict's explanation.</summary>
        public string Text => Smoke ? "smoke budget: nothing is judged"
            : Differences.Count < 2 ? $"{Differences.Count} paired seed(s): no spread to judge by"
            : Word switch
            {
                "agrees" => $"lower by more than 2 SE of the paired difference",
                "partly" => $"lower on average, but within 2 SE",
                _ => Mean > 2 * StandardError ? "higher by more than 2 SE" : "not lower (higher on average, within 2 SE)",
            };
    }

    /// <summary>
    /// The verdicts: HTR and HTR(middle) lower the test error and the trace, first against the authors' SGD arm (their
    /// protocol), then against the epoch-matched SGD control (ours), which separates the penalty from the extra epochs.
    /// </summary>
    public static IReadOnlyList<Verdict> Verdicts(HtrRunSettings s, IReadOnlyList<HtrRunResult> runs)
    {
        var smoke = s.Budget == Budget.Smoke;
        const string Long = HtrExperiment.EpochMatchedSgd;
        IReadOnlyList<double> Paired(string arm, Func<HtrRunResult, double?> value, string baseline = "sgd")
        {
            Dictionary<long, double> Of(string a) => runs.Where(r => r.Run.Arm == a && r.Result is { Diverged: false } && value(r) is not null)
                .ToDictionary(r => r.Run.Seed, r => value(r)!.Value);
            var mine = Of(arm);
            var sgd = Of(baseline);
            return mine.Keys.Where(sgd.ContainsKey).Order().Select(k => mine[k] - sgd[k]).ToList();
        }
        double? Error(HtrRunResult r) => r.Result?.Final?.TestError;
        double? Trace(HtrRunResult r) => r.Trace?.Trace;
        return
        [
            new("HTR lowers the test error (authors' logged Fashion-MNIST numbers: 4.78% against SGD's 5.43%)", "sgd-htr", "test error", Paired("sgd-htr", Error), smoke),
            new("HTR on the middle layers only is \"promising\": it lowers the test error too", "sgd-htr-middle", "test error", Paired("sgd-htr-middle", Error), smoke),
            new("HTR pushes SGD to flatter minima: a lower Hessian trace at the end", "sgd-htr", "trace", Paired("sgd-htr", Trace), smoke),
            new("HTR(middle) also ends flatter: a lower Hessian trace", "sgd-htr-middle", "trace", Paired("sgd-htr-middle", Trace), smoke),
            new("HTR lowers the test error, against SGD trained as long (ours)", "sgd-htr", "test error", Paired("sgd-htr", Error, Long), smoke, Long),
            new("HTR(middle) lowers the test error, against SGD trained as long (ours)", "sgd-htr-middle", "test error", Paired("sgd-htr-middle", Error, Long), smoke, Long),
            new("HTR ends flatter than SGD trained as long (ours)", "sgd-htr", "trace", Paired("sgd-htr", Trace, Long), smoke, Long),
            new("HTR(middle) ends flatter than SGD trained as long (ours)", "sgd-htr-middle", "trace", Paired("sgd-htr-middle", Trace, Long), smoke, Long),
        ];
    }

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths.</summary>
    public static IReadOnlyList<string> Write(HtrRunSettings s, IReadOnlyList<HtrRunResult> runs, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Stem(s);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        string? png = Plot(s, runs) is { } figure ? figures.TrySave(figure, Path.Combine(s.OutDir, stem + "-test-error")) : null;
        var verdicts = Verdicts(s, runs);
        var json = Path.Combine(s.OutDir, stem + ".json");
        AtomicFile.WriteAllText(json, Json(s, stem, runs, verdicts).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(s.OutDir, stem + ".md");
        AtomicFile.WriteAllText(markdown, Markdown(s, runs, verdicts, png));
        written.Add(markdown);
        return written;
    }

    /// <summary>htr[-MODEL][-BUDGET]: the default network (lenet5) has the plain name.</summary>
    public static string Stem(HtrRunSettings s) =>
        Budgets.ReportStem(HtrExperiment.Name + (s.Model == Models.ModelZoo.LeNet5Name ? "" : "-" + s.Model), s.Budget);

    static string ReportTitle(HtrRunSettings s) =>
        $"Hessian-trace regularisation (HTR) on Fashion-MNIST: SGD, SGD+L2, SGD+HTR, SGD+HTR(middle) and an epoch-matched SGD control with `{s.Model}` (budget `{Budgets.Name(s.Budget)}`)";

    static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, C) : "n/a";

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static string MeanStd(IReadOnlyList<double> values, string format) =>
        values.Count == 0 ? "n/a" : values.Count == 1 ? $"{F(values[0], format)} (1 seed)" : $"{F(Stat.Of(values).Mean, format)} ± {F(Stat.Of(values).Std, format)}";

    static List<double> Errors(IReadOnlyList<HtrRunResult> runs, string arm) =>
        runs.Where(r => r.Run.Arm == arm && r.Result is { Diverged: false, Final.TestError: not null }).Select(r => r.Result!.Final!.TestError!.Value).ToList();

    static List<double> Traces(IReadOnlyList<HtrRunResult> runs, string arm) =>
        runs.Where(r => r.Run.Arm == arm && r.Trace is not null).Select(r => r.Trace!.Trace).ToList();

    static Figure? Plot(HtrRunSettings s, IReadOnlyList<HtrRunResult> runs)
    {
        var series = new List<LineSeries>();
        foreach (var arm in HtrExperiment.Arms)
        {
            var finished = runs.Where(r => r.Run.Arm == arm && r.Result is { Diverged: false }).Select(r => r.Result!).ToList();
            if (finished.Count == 0) continue;
            var epochs = finished.Min(r => r.History.Count);
            var x = new List<double>();
            var y = new List<double>();
            for (var e = 0; e < epochs; e++)
            {
                if (finished.Any(r => r.History[e].TestError is null)) continue;
                x.Add(e + 1);
                y.Add(finished.Average(r => r.History[e].TestError!.Value));
            }
            if (x.Count == 0) continue;
            series.Add(new LineSeries(finished.Count > 1 ? $"{Title(arm)}, mean of {finished.Count} seeds" : Title(arm), x, y) { ShowMarkers = x.Count <= 20 });
        }
        return series.Count == 0 ? null : LinePlot.Create(series, "epoch", "test error (%)",
            new LinePlotOptions { Title = $"{s.Model} on Fashion-MNIST: test error against epochs" });
    }

    static JsonObject Json(HtrRunSettings s, string stem, IReadOnlyList<HtrRunResult> runs, IReadOnlyList<Verdict> verdicts)
    {
        var json = ReportHeader.Json(stem, ReportTitle(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = HtrExperiment.Name;
        json["model"] = s.Model;
        json["budget_description"] = HtrExperiment.DescribeBudget(s.Budget);
        json["compute_fraction"] = HtrExperiment.ComputeFraction(s.Budget);
        json["seeds"] = s.Seeds;
        var arms = new JsonArray();
        foreach (var arm in HtrExperiment.Arms)
        {
            var mine = runs.Where(r => r.Run.Arm == arm).ToList();
            var errors = Errors(runs, arm);
            var traces = Traces(runs, arm);
            var config = mine[0].Run.Config;
            arms.Add(new JsonObject
            {
                ["arm"] = arm,
                ["name"] = Title(arm),
                ["settings"] = ComparisonReport.Settings(config),
                ["epochs"] = config.Epochs,
                ["htr"] = config.HessianTrace is { } h ? new JsonObject
                {
                    ["gamma"] = h.Gamma, ["probes"] = h.Probes, ["frequency"] = h.Frequency, ["start_epoch"] = h.StartEpoch,
                    ["parameters"] = h.Parameters.ToString(), ["probe"] = h.Probe.ToString().ToLowerInvariant(),
                } : null,
                ["seeds_finished"] = errors.Count,
                ["test_error_mean"] = errors.Count > 0 ? Number(Stat.Of(errors).Mean) : null,
                ["test_error_std"] = errors.Count > 1 ? Number(Stat.Of(errors).Std) : null,
                ["trace_mean"] = traces.Count > 0 ? Number(Stat.Of(traces).Mean) : null,
                ["trace_std"] = traces.Count > 1 ? Number(Stat.Of(traces).Std) : null,
                ["authors_logged_test_error"] = HtrExperiment.AuthorsLogged.FirstOrDefault(a => a.Arm == arm) is { Arm: not null } logged
                    ? new JsonObject { ["mean"] = logged.Mean, ["std"] = logged.Std, ["commit"] = "3d4ce32" } : null,
                ["runs"] = new JsonArray(mine.Select(r => (JsonNode)new JsonObject
                {
                    ["seed"] = r.Run.Seed,
                    ["status"] = r.Result?.Status ?? "pending",
                    ["test_error"] = r.Result?.Final?.TestError,
                    ["train_loss"] = r.Result?.Final is { } f && double.IsFinite(f.TrainLoss) ? f.TrainLoss : null,
                    ["epochs"] = r.Result?.History.Count,
                    ["seconds"] = r.Result?.TotalSeconds,
                    ["trace"] = r.Trace is { } t ? Number(t.Trace) : null,
                    ["trace_standard_error"] = r.Trace is { } u ? Number(u.StandardError) : null,
                    ["folder"] = Path.GetRelativePath(s.RunsRoot, r.Run.Folder),
                }).ToArray()),
            });
        }
        json["arms"] = arms;
        json["verdicts"] = new JsonArray(verdicts.Select(v => (JsonNode)new JsonObject
        {
            ["claim"] = v.Claim,
            ["arm"] = v.Arm,
            ["baseline"] = v.Baseline,
            ["quantity"] = v.Quantity,
            ["paired_seeds"] = v.Differences.Count,
            ["difference_mean"] = Number(v.Mean),
            ["difference_standard_error"] = Number(v.StandardError),
            ["verdict"] = v.Word,
            ["explanation"] = v.Text,
        }).ToArray());
        return json;
    }

    static string Markdown(HtrRunSettings s, IReadOnlyList<HtrRunResult> runs, IReadOnlyList<Verdict> verdicts, string? png)
    {
        var md = new StringBuilder();
        var scale = HtrExperiment.Scale(s.Budget);
        var intro = new List<string>
        {
            "Sankar et al. (AAAI 2021, arXiv 2012.03801) penalise the Hessian trace, γ·(1/K) Σ_k v_kᵀ∇²L_B v_k on every freq-th minibatch from epoch sp on, " +
            "and say it pushes SGD to flatter minima with better generalisation, penalising the middle layers only being \"promising\". " +
            "We run their Fashion-MNIST/LeNet grid from their code (`yashkhasbage25/HTR`, `Regularization/experiments/scripts.sh` at HEAD 192718f): " +
            string.Format(C, "SGD with momentum {0}, lr {1}, batch {2}, lr x {3} after epochs {4}; SGD and SGD+L2 (weight decay {5:0.###e+0}) for {6} epochs; " +
                             "SGD+HTR (γ {7:0.###e+0}, K {8} Gaussian probes, freq {9}, sp {10}, all tensors) and SGD+HTR(middle) (γ {11:0.###e+0}, the authors' middle mask: " +
                             "`named_parameters` indices ⌊n/4⌋..⌊3n/4⌋, for LeNet conv2, fc1, fc2 with biases) for {12} epochs.",
                HtrExperiment.Momentum, HtrExperiment.LearningRate, HtrExperiment.BatchSize, HtrExperiment.LrGamma, string.Join(" and ", HtrExperiment.Milestones),
                HtrExperiment.L2, HtrExperiment.Epochs, HtrExperiment.HtrGamma, HtrExperiment.HtrProbes, HtrExperiment.HtrFrequency, HtrExperiment.HtrSp,
                HtrExperiment.MiddleGamma, HtrExperiment.HtrEpochs),
            "**Reference.** The authors' own logged Fashion-MNIST test errors, SGD 5.43 ± 0.10 %, SGD+L2 5.41 ± 0.16 %, SGD+HTR 4.78 ± 0.15 % (3 reruns), are comments " +
            "in the history of their `scripts.sh` at commit 3d4ce32 (2020-09-10), made with **other hyper-parameters** than HEAD's grid used here (there HTR had γ 1e-3 " +
            "and sp 10); the paper's own table was not available. They are a sanity reference, not the same experiment.",
            "**Deviations (ours).** (1) No augmentation: the authors train with RandomHorizontalFlip, ColorJitter() and RandomRotation(15) on every dataset; " +
            "WideValley has no image augmentation, so our networks see the plain images (expect a lower training error and a somewhat higher test error than theirs). " +
            "(2) Pixels are x/255 without their Normalize(mean, std); the network zero-pads 28x28 to 32x32 in its first convolution, which is their black Pad exactly " +
            "at this scaling. (3) Their SGD+L2 weight decay 1e-13 is, at HEAD, the L2 of their combined HTR+L2 script; as the issue asks we use it without HTR. " +
            "In float32 a decay of lr·1e-13 per step is far below a weight's rounding, so this arm is SGD up to rounding. (4) The HTR arms train 40 epochs " +
            "against SGD's 30, as in the authors' grid: equal settings, unequal epochs. We add a fifth arm of our own, SGD with SGD's settings for the HTR arms' epochs, " +
            "so the penalty can be told from the extra epochs.",
            $"Budget `{Budgets.Name(s.Budget)}`: {HtrExperiment.DescribeBudget(s.Budget)}. {s.Seeds} seed(s) from {s.FirstSeed}; a seed fixes the initial weights, " +
            "the minibatch order and the HTR probes, so the arms are paired by seed. Test error: the final epoch's, on all 10,000 test images (as their `plot_penalization.py`). " +
            string.Format(C, "Trace: Hutchinson with {0} Rademacher probes (seed {1}, the same for every run) of the Hessian of the mean cross-entropy over the first {2:N0} " +
                             "training images, at the final weights in eval mode.", scale.TraceProbes, HtrExperiment.TraceProbeSeed,
                Math.Min(scale.TraceSamples, scale.Images ?? HtrExperiment.TrainingImages)),
        };
        ReportHeader.AppendMarkdown(md, ReportTitle(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);
        md.AppendLine("| arm | epochs | test error (%) | authors' logged (3d4ce32) | trace at the end | seeds finished |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var arm in HtrExperiment.Arms)
        {
            var mine = runs.Where(r => r.Run.Arm == arm).ToList();
            var logged = HtrExperiment.AuthorsLogged.FirstOrDefault(a => a.Arm == arm);
            md.AppendLine($"| {Title(arm)} | {mine[0].Run.Config.Epochs} | {MeanStd(Errors(runs, arm), "0.00")} | " +
                          $"{(logged.Arm is null ? "–" : $"{F(logged.Mean, "0.00")} ± {F(logged.Std, "0.00")}")} | {MeanStd(Traces(runs, arm), "0.0")} | " +
                          $"{mine.Count(r => r.Result is not null)} of {s.Seeds}{(mine.Any(r => r.Result?.Diverged == true) ? " (some diverged)" : "")} |");
        }
        md.AppendLine();
        md.AppendLine("Mean ± sample standard deviation over seeds. Verdict rule (ours): a claim agrees when the arm's value is lower than the baseline's (SGD, or the epoch-matched SGD control) by more than two " +
                      "standard errors of the difference paired by seed, partly when lower within that, disagrees otherwise; not testable below two pairs or in a smoke run.");
        md.AppendLine();
        md.AppendLine("| claim | arm − baseline (paired) | verdict |");
        md.AppendLine("|---|---|---|");
        foreach (var v in verdicts)
            md.AppendLine($"| {v.Claim} | {Title(v.Arm)} − {Title(v.Baseline)}, {v.Quantity}: {F(v.Mean, "+0.00;-0.00;0.00")} ± {F(v.StandardError, "0.00")} ({v.Differences.Count} seeds) | **{v.Word}**: {v.Text} |");
        md.AppendLine();
        var sgdEpochs = runs.First(r => r.Run.Arm == "sgd").Run.Config.Epochs;
        var htrEpochs = runs.First(r => r.Run.Arm == "sgd-htr").Run.Config.Epochs;
        if (htrEpochs != sgdEpochs)
        {
            md.AppendLine(string.Format(C,
                "**Caution: every HTR verdict is confounded by training length.** As in the authors' grid, the HTR arms train {0} epochs against SGD's {1}, " +
                "so an HTR arm differs from SGD in two ways: the penalty and {2} more epochs at the last learning rate. A lower test error or a higher trace may " +
                "come from the extra epochs alone (a run that trains longer typically ends both better fitted and sharper). With γ = {3:0.###e+0} and traces of the " +
                "order shown above, the penalty γ·tr(H) is of the order of γ times the table's trace, small beside the cross-entropy. The epoch-matched SGD " +
                "control (ours; not part of the authors' grid) trains {0} epochs with SGD's settings, and the verdicts marked (ours) compare against it: they " +
                "are the ones that isolate the penalty.", htrEpochs, sgdEpochs, htrEpochs - sgdEpochs, HtrExperiment.HtrGamma));
            md.AppendLine();
        }
        if (png is not null)
        {
            md.AppendLine($"![test error against epochs]({png})");
            md.AppendLine();
        }
        md.AppendLine("## Runs");
        md.AppendLine();
        foreach (var arm in HtrExperiment.Arms)
        {
            var mine = runs.Where(r => r.Run.Arm == arm).ToList();
            var config = mine[0].Run.Config;
            md.AppendLine($"{Title(arm)}: {ComparisonReport.Settings(config).TrimEnd('.')}" + (config.HessianTrace is { } h
                ? string.Create(C, $"; HTR γ {h.Gamma:0.###e+0}, K {h.Probes} ({h.Probe.ToString().ToLowerInvariant()}), freq {h.Frequency}, from epoch {h.StartEpoch}, tensors: {h.Parameters}")
                : ""));
            md.AppendLine();
            foreach (var r in mine)
                md.AppendLine(r.Result is null ? $"- seed {r.Run.Seed}: **not finished yet**"
                    : string.Create(C, $"- seed {r.Run.Seed}: test error {F(r.Result.Final?.TestError ?? double.NaN, "0.00")}%, training loss (running, last epoch) {F(r.Result.Final?.TrainLoss ?? double.NaN, "0.0000")}, " +
                                       $"trace {(r.Trace is { } t ? $"{F(t.Trace, "0.0")} ± {F(t.StandardError, "0.0")}" : "not measured")}, {r.Result.History.Count} epochs, {r.Result.TotalSeconds:0} s{(r.Result.Diverged ? " (diverged)" : "")}"));
            md.AppendLine();
        }
        return md.ToString();
    }
}
