using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="AdineExperiment"/>: per network, the epochs ADINE needs to reach SGD's final training loss
/// (seed by seed), both arms' final training loss and test error, and verdicts on the abstract's two claims; Markdown, a
/// JSON twin, and one figure per network (training loss against epochs).
/// </summary>
public static class AdineReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>One seed's pair of runs on one network.</summary>
    /// <param name="Seed">The seed.</param>
    /// <param name="SgdFinalLoss">SGD's final whole-training-set loss (eval mode): the target.</param>
    /// <param name="SgdEpochs">The first epoch SGD was at or below its own final loss (its last epoch unless the loss rose at the end).</param>
    /// <param name="AdineEpochs">The first epoch ADINE was at or below the target; null: never (or it diverged).</param>
    /// <param name="SgdTestError">SGD's final test error (%).</param>
    /// <param name="AdineTestError">ADINE's final test error (%); null when it diverged.</param>
    /// <param name="AdineFinalLoss">ADINE's final whole-training-set loss; null when it diverged.</param>
    public sealed record SeedPair(long Seed, double SgdFinalLoss, int SgdEpochs, int? AdineEpochs, double SgdTestError, double? AdineTestError, double? AdineFinalLoss);

    /// <summary>One network's judgement.</summary>
    /// <param name="Network">The network.</param>
    /// <param name="Pairs">The seeds both arms finished (SGD without divergence).</param>
    /// <param name="Smoke">A smoke run: nothing is judged.</param>
    public sealed record NetworkVerdict(string Network, IReadOnlyList<SeedPair> Pairs, bool Smoke)
    {
        /// <summary>ADINE − SGD final test error for the seeds where both have one.</summary>
        public IReadOnlyList<double> TestErrorDifferences => Pairs.Where(p => p.AdineTestError is not null).Select(p => p.AdineTestError!.Value - p.SgdTestError).ToList();

        /// <summary>Mean of <see cref="TestErrorDifferences"/>.</summary>
        public double TestErrorDifference => TestErrorDifferences.Count == 0 ? double.NaN : TestErrorDifferences.Average();

        /// <summary>Its standard error (NaN below two pairs).</summary>
        public double TestErrorDifferenceError => TestErrorDifferences.Count < 2 ? double.NaN : Stat.Of(TestErrorDifferences).StandardError;

        /// <summary>"Much faster convergence": agrees / partly / disagrees / not testable (rule in <see cref="ConvergenceText"/>).</summary>
        public string Convergence => Smoke || Pairs.Count < 2 ? "not testable"
            : Pairs.All(p => p.AdineEpochs is int a && a <= AdineExperiment.MuchFasterFraction * p.SgdEpochs) ? "agrees"
            : Pairs.All(p => p.AdineEpochs is not null) && Pairs.Any(p => p.AdineEpochs < p.SgdEpochs) ? "partly"
            : "disagrees";

        /// <summary>The convergence verdict's reason.</summary>
        public string ConvergenceText => Smoke ? "smoke budget: nothing is judged"
            : Pairs.Count < 2 ? $"{Pairs.Count} paired seed(s): too few to judge"
            : Convergence switch
            {
                "agrees" => string.Create(C, $"on every seed ADINE reaches SGD's final training loss within {AdineExperiment.MuchFasterFraction:0.##} of SGD's epochs"),
                "partly" => "ADINE reaches SGD's final training loss on every seed, earlier on some, but not within 2/3 of SGD's epochs on all",
                _ => Pairs.Any(p => p.AdineEpochs is null)
                    ? $"ADINE does not reach SGD's final training loss on {Pairs.Count(p => p.AdineEpochs is null)} of {Pairs.Count} seeds"
                    : "ADINE is never earlier than SGD",
            };

        /// <summary>"Without compromising generalisation": agrees unless ADINE's test error is higher by more than 2 SE of the paired difference.</summary>
        public string Generalisation => Smoke || TestErrorDifferences.Count < 2 ? "not testable"
            : TestErrorDifference > 2 * TestErrorDifferenceError ? "disagrees" : "agrees";

        /// <summary>The generalisation verdict's reason.</summary>
        public string GeneralisationText => Smoke ? "smoke budget: nothing is judged"
            : TestErrorDifferences.Count < 2 ? $"{TestErrorDifferences.Count} paired seed(s): too few to judge"
            : Generalisation == "disagrees" ? "ADINE's test error is higher by more than 2 SE"
            : TestErrorDifference < -2 * TestErrorDifferenceError ? "ADINE's test error is lower by more than 2 SE" : "no difference beyond 2 SE";
    }

    /// <summary>The verdict of each network.</summary>
    public static IReadOnlyList<NetworkVerdict> Verdicts(AdineRunSettings s, IReadOnlyList<(AdinePlannedRun Run, FinishedRun? Result)> runs) =>
        s.Networks.Select(network =>
        {
            var pairs = new List<SeedPair>();
            foreach (var (sgdRun, sgd) in runs.Where(x => x.Run.Network == network && x.Run.Arm == "sgd"))
            {
                if (sgd is not { Diverged: false, Final: { TrainEvalLoss: double target, TestError: double sgdError } }) continue;
                var adine = runs.FirstOrDefault(x => x.Run.Network == network && x.Run.Arm == "adine" && x.Run.Seed == sgdRun.Seed).Result;
                if (adine is null) continue;
                pairs.Add(new SeedPair(sgdRun.Seed, target, AdineExperiment.EpochsToReach(sgd.History, target) ?? sgd.History.Count,
                    AdineExperiment.EpochsToReach(adine.History, target), sgdError,
                    adine.Diverged ? null : adine.Final?.TestError, adine.Diverged ? null : adine.Final?.TrainEvalLoss));
            }
            return new NetworkVerdict(network, pairs, s.Budget == Budget.Smoke);
        }).ToList();

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths.</summary>
    public static IReadOnlyList<string> Write(AdineRunSettings s, IReadOnlyList<(AdinePlannedRun Run, FinishedRun? Result)> runs, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Budgets.ReportStem(AdineExperiment.Name, s.Budget);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var plots = new Dictionary<string, string>();
        foreach (var network in s.Networks)
            if (Plot(network, runs) is { } figure && figures.TrySave(figure, Path.Combine(s.OutDir, $"{stem}-{network}")) is { } png)
                plots[network] = png;
        var verdicts = Verdicts(s, runs);
        var json = Path.Combine(s.OutDir, stem + ".json");
        AtomicFile.WriteAllText(json, Json(s, stem, runs, verdicts).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(s.OutDir, stem + ".md");
        AtomicFile.WriteAllText(markdown, Markdown(s, runs, verdicts, plots));
        written.Add(markdown);
        return written;
    }

    static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, C) : "n/a";

    static JsonNode? Number(double? v) => v is double d && double.IsFinite(d) ? JsonValue.Create(d) : null;

    static string Title(AdineRunSettings s) => $"ADINE against SGD with momentum 0.9 on Fashion-MNIST (budget `{Budgets.Name(s.Budget)}`)";

    static string MeanStd(IReadOnlyList<double> values, string format) =>
        values.Count == 0 ? "n/a" : values.Count == 1 ? $"{F(values[0], format)} (1 seed)" : $"{F(Stat.Of(values).Mean, format)} ± {F(Stat.Of(values).Std, format)}";

    static Figure? Plot(string network, IReadOnlyList<(AdinePlannedRun Run, FinishedRun? Result)> runs)
    {
        var series = new List<LineSeries>();
        foreach (var (arm, label) in new[] { ("sgd", "SGD, momentum 0.9"), ("adine", "ADINE") })
        {
            var finished = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm && x.Result is { Diverged: false }).Select(x => x.Result!).ToList();
            if (finished.Count == 0) continue;
            var epochs = finished.Min(r => r.History.Count);
            var x = new List<double>();
            var y = new List<double>();
            for (var e = 0; e < epochs; e++)
            {
                if (finished.Any(r => r.History[e].TrainEvalLoss is not double l || !double.IsFinite(l))) continue;
                x.Add(e + 1);
                y.Add(finished.Average(r => r.History[e].TrainEvalLoss!.Value));
            }
            if (x.Count == 0) continue;
            series.Add(new LineSeries(finished.Count > 1 ? $"{label}, mean of {finished.Count} seeds" : label, x, y) { ShowMarkers = x.Count <= 20 });
        }
        return series.Count == 0 ? null : LinePlot.Create(series, "epoch", "training loss (whole set, eval mode)",
            new LinePlotOptions { Title = $"{network} on Fashion-MNIST: training loss against epochs" });
    }

    static JsonObject Json(AdineRunSettings s, string stem, IReadOnlyList<(AdinePlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkVerdict> verdicts)
    {
        var json = ReportHeader.Json(stem, Title(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = AdineExperiment.Name;
        json["budget_description"] = AdineExperiment.DescribeBudget(s.Budget);
        json["compute_fraction"] = AdineExperiment.ComputeFraction(s.Budget);
        json["seeds"] = s.Seeds;
        json["learning_rate"] = AdineExperiment.LearningRate;
        json["training_loss_measure"] = "mean cross-entropy over the whole training (sub)set in eval mode at each epoch end";
        json["networks"] = new JsonArray(verdicts.Select(v => (JsonNode)new JsonObject
        {
            ["network"] = v.Network,
            ["sgd_settings"] = ComparisonReport.Settings(runs.First(x => x.Run.Network == v.Network && x.Run.Arm == "sgd").Run.Config),
            ["adine_settings"] = ComparisonReport.Settings(runs.First(x => x.Run.Network == v.Network && x.Run.Arm == "adine").Run.Config),
            ["pairs"] = new JsonArray(v.Pairs.Select(p => (JsonNode)new JsonObject
            {
                ["seed"] = p.Seed,
                ["sgd_final_training_loss"] = p.SgdFinalLoss,
                ["sgd_epochs_to_reach"] = p.SgdEpochs,
                ["adine_epochs_to_reach"] = p.AdineEpochs,
                ["adine_final_training_loss"] = Number(p.AdineFinalLoss),
                ["sgd_test_error"] = p.SgdTestError,
                ["adine_test_error"] = Number(p.AdineTestError),
            }).ToArray()),
            ["runs"] = new JsonArray(runs.Where(x => x.Run.Network == v.Network).Select(x => (JsonNode)new JsonObject
            {
                ["arm"] = x.Run.Arm,
                ["seed"] = x.Run.Seed,
                ["status"] = x.Result?.Status ?? "pending",
                ["test_error"] = x.Result?.Final?.TestError,
                ["final_training_loss"] = Number(x.Result?.Final?.TrainEvalLoss),
                ["training_loss_by_epoch"] = x.Result is null ? null : new JsonArray(x.Result.History.Select(m => Number(m.TrainEvalLoss)).ToArray()),
                ["adine_low_momentum_fraction"] = x.Result is null ? null : Number(AdineExperiment.LowMomentumFraction(x.Result.History)),
                ["seconds"] = x.Result?.TotalSeconds,
                ["folder"] = Path.GetRelativePath(s.RunsRoot, x.Run.Folder),
            }).ToArray()),
            ["test_error_difference_mean"] = Number(v.TestErrorDifference),
            ["test_error_difference_standard_error"] = Number(v.TestErrorDifferenceError),
            ["convergence_verdict"] = v.Convergence,
            ["convergence_explanation"] = v.ConvergenceText,
            ["generalisation_verdict"] = v.Generalisation,
            ["generalisation_explanation"] = v.GeneralisationText,
        }).ToArray());
        return json;
    }

    static string Markdown(AdineRunSettings s, IReadOnlyList<(AdinePlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkVerdict> verdicts,
        IReadOnlyDictionary<string, string> plots)
    {
        var md = new StringBuilder();
        var defaults = new Optim.AdineOptions();
        var intro = new List<string>
        {
            "Srinivasan, Sankar & Balasubramanian (ADINE, arXiv 1712.07424) let heavy-ball momentum exceed 1 while the loss falls and claim " +
            "**\"much faster convergence\"** than momentum below 1 **\"without compromising on the generalization error\"**. The paper's update, switch rule, " +
            "settings and numbers were not available: ADINE here is **our design** (docs/seed-004.md: a loss-triggered switch between m_high and m_low on an EMA of " +
            string.Create(C, $"minibatch losses), with its defaults m_high {defaults.MomentumHigh}, m_low {defaults.MomentumLow}, window {defaults.Window}, tolerance {defaults.Tolerance}, lr {defaults.LearningRate}."),
            "**Protocol (ours).** Both arms share everything but the optimizer: Fashion-MNIST, batch " + AdineExperiment.BatchSize +
            ", the networks' default dropout, a constant learning rate " + AdineExperiment.LearningRate.ToString(C) + " (ADINE's default) for both, no weight decay, " +
            "equal epochs, the same seeds (same initial weights and minibatch order). The baseline is heavy-ball SGD with momentum 0.9. " +
            "Convergence is measured on the training loss, the same way for both arms: the mean cross-entropy over the whole training (sub)set in eval mode " +
            "(no dropout, BatchNorm running statistics) at every epoch end. Per seed, the target is SGD's final training loss; the report gives the first epoch " +
            "at which ADINE is at or below it (and SGD's own first such epoch, normally its last).",
            "**Verdict rules (ours).** \"Much faster convergence\" agrees when, on every seed, ADINE reaches SGD's final training loss within 2/3 of SGD's epochs " +
            "(a speed-up of at least 1.5x); partly when it reaches it on every seed and earlier on some; disagrees otherwise. \"Without compromising generalisation\" " +
            "agrees unless ADINE's final test error is higher than SGD's by more than two standard errors of the difference paired by seed.",
            $"Budget `{Budgets.Name(s.Budget)}`: {AdineExperiment.DescribeBudget(s.Budget)}. {s.Seeds} seed(s) from {s.FirstSeed}.",
        };
        ReportHeader.AppendMarkdown(md, Title(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);
        md.AppendLine("| network | SGD final training loss | ADINE final training loss | epochs to SGD's final loss: SGD / ADINE, by seed | SGD test error (%) | ADINE test error (%) | ADINE − SGD | much faster convergence | generalisation not compromised |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var v in verdicts)
        {
            var epochs = string.Join("; ", v.Pairs.Select(p => $"{p.SgdEpochs} / {(p.AdineEpochs is int a ? a.ToString(C) : "never")}"));
            md.AppendLine($"| {v.Network} | {MeanStd(v.Pairs.Select(p => p.SgdFinalLoss).ToList(), "0.0000")} | " +
                          $"{MeanStd(v.Pairs.Where(p => p.AdineFinalLoss is not null).Select(p => p.AdineFinalLoss!.Value).ToList(), "0.0000")} | {(epochs.Length == 0 ? "n/a" : epochs)} | " +
                          $"{MeanStd(v.Pairs.Select(p => p.SgdTestError).ToList(), "0.00")} | {MeanStd(v.Pairs.Where(p => p.AdineTestError is not null).Select(p => p.AdineTestError!.Value).ToList(), "0.00")} | " +
                          $"{F(v.TestErrorDifference, "+0.00;-0.00;0.00")} ± {F(v.TestErrorDifferenceError, "0.00")} | **{v.Convergence}**: {v.ConvergenceText} | " +
                          $"**{v.Generalisation}**: {v.GeneralisationText} |");
        }
        md.AppendLine();
        md.AppendLine("Mean ± sample standard deviation over the seeds both arms finished; the difference is paired by seed, ± its standard error.");
        md.AppendLine();
        foreach (var network in s.Networks)
        {
            md.AppendLine($"## {network}");
            md.AppendLine();
            if (plots.TryGetValue(network, out var png))
            {
                md.AppendLine($"![{network}: training loss against epochs]({png})");
                md.AppendLine();
            }
            foreach (var arm in AdineExperiment.Arms)
            {
                var mine = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm).ToList();
                var pending = mine.Count(x => x.Result is null);
                md.AppendLine($"{(arm == "sgd" ? "SGD" : "ADINE")}: {ComparisonReport.Settings(mine[0].Run.Config)}" + (pending > 0 ? $" **{pending} seed(s) not finished yet.**" : ""));
                md.AppendLine();
                foreach (var (run, result) in mine.Where(x => x.Result is not null))
                {
                    var low = arm == "adine" ? AdineExperiment.LowMomentumFraction(result!.History) : null;
                    md.AppendLine(string.Create(C, $"- seed {run.Seed}: test error {F(result!.Final?.TestError ?? double.NaN, "0.00")}%, final training loss {F(result.Final?.TrainEvalLoss ?? double.NaN, "0.0000")}, " +
                                                   $"{result.History.Count} epochs, {result.TotalSeconds:0} s{(low is double f ? $", steps at m_low {100 * f:0.#}%" : "")}{(result.Diverged ? " (diverged)" : "")}"));
                }
                md.AppendLine();
            }
        }
        return md.ToString();
    }
}
