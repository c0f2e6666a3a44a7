using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="DanteComparison"/>: per network, final test error (mean ± std over seeds), final training
/// loss and wall time of DANTE, SGD and Adam, and the verdict on the abstract's claim that DANTE is "competitive with
/// backprop both in quality of the solution and training speed"; Markdown, a JSON twin, and one figure per network (mean
/// test error against epochs).
/// </summary>
public static class DanteReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>Competitive quality (ours): DANTE's mean test error at most this many points above the better backprop arm's.</summary>
    public const double QualityMargin = 1.0;

    /// <summary>Competitive speed (ours): DANTE's mean wall time at most this multiple of SGD's, at equal epochs.</summary>
    public const double SpeedMargin = 1.1;

    /// <summary>The finished, non-diverged runs of one arm of one network.</summary>
    /// <param name="Arm">dante, sgd or adam.</param>
    /// <param name="TestErrors">Final test error (%) by seed.</param>
    /// <param name="TrainingLosses">Final training loss over the whole training set by seed (when evaluated).</param>
    /// <param name="Seconds">Wall time of the run (training and per-epoch evaluation) by seed.</param>
    /// <param name="Diverged">Seeds that diverged.</param>
    public sealed record ArmResult(string Arm, IReadOnlyDictionary<long, double> TestErrors, IReadOnlyDictionary<long, double> TrainingLosses,
        IReadOnlyDictionary<long, double> Seconds, int Diverged)
    {
        /// <summary>Test error statistics (null before any run finished).</summary>
        public Stat? Error => TestErrors.Count == 0 ? null : Stat.Of(TestErrors.Values.ToList());

        /// <summary>Training-loss statistics.</summary>
        public Stat? Loss => TrainingLosses.Count == 0 ? null : Stat.Of(TrainingLosses.Values.ToList());

        /// <summary>Wall-time statistics.</summary>
        public Stat? Time => Seconds.Count == 0 ? null : Stat.Of(Seconds.Values.ToList());
    }

    /// <summary>One network's judgement.</summary>
    /// <param name="Network">The zoo name.</param>
    /// <param name="Arms">DANTE, SGD and Adam, in that order.</param>
    public sealed record NetworkVerdict(string Network, IReadOnlyList<ArmResult> Arms)
    {
        /// <summary>DANTE's results.</summary>
        public ArmResult Dante => Arms[0];

        /// <summary>The backprop arm with the lower mean test error (null before both have a finished run).</summary>
        public ArmResult? BestBackprop => Arms.Skip(1).Where(a => a.Error is not null).OrderBy(a => a.Error!.Value.Mean).FirstOrDefault();

        /// <summary>DANTE's mean test error minus the better backprop arm's (points).</summary>
        public double QualityGap => Dante.Error is Stat d && BestBackprop?.Error is Stat b ? d.Mean - b.Mean : double.NaN;

        /// <summary>DANTE's mean wall time over SGD's.</summary>
        public double TimeRatio => Dante.Time is Stat d && Arms[1].Time is Stat s && s.Mean > 0 ? d.Mean / s.Mean : double.NaN;

        /// <summary>Every arm has at least one finished seed.</summary>
        public bool Judged => Arms.All(a => a.Error is not null);

        /// <summary>Quality within <see cref="QualityMargin"/> of the better backprop arm.</summary>
        public bool QualityCompetitive => Judged && QualityGap <= QualityMargin;

        /// <summary>Wall time within <see cref="SpeedMargin"/> of SGD's.</summary>
        public bool SpeedCompetitive => Judged && TimeRatio <= SpeedMargin;

        /// <summary>agrees / partly / disagrees / not judged yet.</summary>
        public string Verdict => !Judged ? "not judged: an arm has no finished run"
            : QualityCompetitive && SpeedCompetitive ? "agrees"
            : QualityCompetitive || SpeedCompetitive ? "partly"
            : "disagrees";

        /// <summary>The verdict with its reasons.</summary>
        public string Text => !Judged ? Verdict
            : $"{Verdict}: quality {(QualityCompetitive ? "competitive" : "not competitive")} ({F(QualityGap, "+0.00;-0.00;0.00")} points vs {BestBackprop!.Arm}), " +
              $"speed {(SpeedCompetitive ? "competitive" : "not competitive")} ({F(TimeRatio, "0.00")}x SGD's wall time)";
    }

    /// <summary>The verdict of each network.</summary>
    public static IReadOnlyList<NetworkVerdict> Verdicts(DanteRunSettings s, IReadOnlyList<(DantePlannedRun Run, FinishedRun? Result)> runs) =>
        s.Networks.Select(network => new NetworkVerdict(network, DanteComparison.Arms.Select(arm =>
        {
            var mine = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm).ToList();
            var ok = mine.Where(x => x.Result is { Diverged: false, Final.TestError: not null }).ToList();
            return new ArmResult(arm,
                ok.ToDictionary(x => x.Run.Seed, x => x.Result!.Final!.TestError!.Value),
                ok.Where(x => x.Result!.Final!.TrainEvalLoss is double l && double.IsFinite(l)).ToDictionary(x => x.Run.Seed, x => x.Result!.Final!.TrainEvalLoss!.Value),
                ok.ToDictionary(x => x.Run.Seed, x => x.Result!.TotalSeconds),
                mine.Count(x => x.Result is { Diverged: true }));
        }).ToList())).ToList();

    /// <summary>
    /// The overall verdict on the claim, a conjunction (quality and speed): agrees when it holds in both respects on every
    /// network, disagrees when one respect fails on every network, partly otherwise.
    /// </summary>
    public static string Overall(IReadOnlyList<NetworkVerdict> verdicts) =>
        verdicts.Count == 0 || verdicts.Any(v => !v.Judged) ? "not testable yet (runs missing)"
        : verdicts.All(v => v.Verdict == "agrees") ? "agrees"
        : verdicts.All(v => !v.QualityCompetitive) || verdicts.All(v => !v.SpeedCompetitive) ? "disagrees"
        : "partly";

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths.</summary>
    public static IReadOnlyList<string> Write(DanteRunSettings s, IReadOnlyList<(DantePlannedRun Run, FinishedRun? Result)> runs, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Stem(s);
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

    /// <summary>dante[-lrETA][-BUDGET]: another eta never overwrites the default's report.</summary>
    public static string Stem(DanteRunSettings s) => Budgets.ReportStem(DanteComparison.Name +
        (s.DanteLearningRate == DanteComparison.DefaultDanteLearningRate ? "" : string.Create(C, $"-lr{s.DanteLearningRate:R}")), s.Budget);

    static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, C) : "n/a";

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static string Label(string arm) => arm switch { "dante" => "DANTE", "sgd" => "SGD", _ => "Adam" };

    static string Title(DanteRunSettings s) =>
        $"DANTE (alternating minimisation by SNGD; our design) against backprop (SGD, Adam) on Fashion-MNIST MLPs (budget `{Budgets.Name(s.Budget)}`)";

    static Figure? Plot(string network, IReadOnlyList<(DantePlannedRun Run, FinishedRun? Result)> runs)
    {
        var series = new List<LineSeries>();
        foreach (var arm in DanteComparison.Arms)
        {
            var finished = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm && x.Result is { Diverged: false }).Select(x => x.Result!).ToList();
            if (finished.Count == 0) continue;
            var epochs = finished.Min(r => r.History.Count);
            var x = new List<double>();
            var y = new List<double>();
            for (var e = 0; e < epochs; e++)
            {
                if (finished.Any(r => r.History[e].TestError is null)) continue;
                x.Add(finished.Average(r => r.History[e].EffectiveEpochs));
                y.Add(finished.Average(r => r.History[e].TestError!.Value));
            }
            if (x.Count == 0) continue;
            series.Add(new LineSeries(finished.Count > 1 ? $"{Label(arm)}, mean of {finished.Count} seeds" : Label(arm), x, y) { ShowMarkers = x.Count <= 20 });
        }
        return series.Count == 0 ? null : LinePlot.Create(series, "epochs", "test error (%)",
            new LinePlotOptions { Title = $"{network} on Fashion-MNIST: test error against epochs" });
    }

    static JsonObject Json(DanteRunSettings s, string stem, IReadOnlyList<(DantePlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkVerdict> verdicts)
    {
        var json = ReportHeader.Json(stem, Title(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = DanteComparison.Name;
        json["claim"] = "DANTE is competitive with backprop both in quality of the solution and in training speed (abstract, arXiv 1902.00491)";
        json["budget_description"] = DanteComparison.DescribeBudget(s.Budget);
        json["seeds"] = s.Seeds;
        json["dante_learning_rate"] = s.DanteLearningRate;
        json["quality_margin_points"] = QualityMargin;
        json["speed_margin_ratio"] = SpeedMargin;
        var networks = new JsonArray();
        foreach (var v in verdicts)
        {
            var arms = new JsonObject();
            foreach (var a in v.Arms)
            {
                var list = new JsonArray();
                foreach (var (run, result) in runs.Where(x => x.Run.Network == v.Network && x.Run.Arm == a.Arm))
                    list.Add(new JsonObject
                    {
                        ["seed"] = run.Seed,
                        ["status"] = result?.Status ?? "pending",
                        ["test_error"] = result?.Final?.TestError is double te ? te : null,
                        ["final_training_loss"] = result?.Final?.TrainEvalLoss is double tl && double.IsFinite(tl) ? tl : null,
                        ["epochs"] = result?.History.Count,
                        ["seconds"] = result?.TotalSeconds,
                        ["folder"] = Path.GetRelativePath(s.RunsRoot, run.Folder),
                    });
                var config = runs.First(x => x.Run.Network == v.Network && x.Run.Arm == a.Arm).Run.Config;
                arms[a.Arm] = new JsonObject
                {
                    ["optimizer"] = config.Optimizer,
                    ["settings"] = ComparisonReport.Settings(config),
                    ["seeds_finished"] = a.TestErrors.Count,
                    ["seeds_diverged"] = a.Diverged,
                    ["test_error_mean"] = a.Error is Stat e ? Number(e.Mean) : null,
                    ["test_error_std"] = a.Error is Stat d ? Number(d.Std) : null,
                    ["training_loss_mean"] = a.Loss is Stat l ? Number(l.Mean) : null,
                    ["seconds_mean"] = a.Time is Stat t ? Number(t.Mean) : null,
                    ["seconds_std"] = a.Time is Stat u ? Number(u.Std) : null,
                    ["runs"] = list,
                };
            }
            networks.Add(new JsonObject
            {
                ["network"] = v.Network,
                ["arms"] = arms,
                ["best_backprop"] = v.BestBackprop?.Arm,
                ["quality_gap_points"] = Number(v.QualityGap),
                ["time_ratio_to_sgd"] = Number(v.TimeRatio),
                ["quality_competitive"] = v.QualityCompetitive,
                ["speed_competitive"] = v.SpeedCompetitive,
                ["verdict"] = v.Verdict,
            });
        }
        json["networks"] = networks;
        json["verdict"] = Overall(verdicts);
        json["networks_quality_competitive"] = verdicts.Count(v => v.QualityCompetitive);
        json["networks_speed_competitive"] = verdicts.Count(v => v.SpeedCompetitive);
        return json;
    }

    static string MeanStd(Stat? stat, string format)
    {
        if (stat is not Stat st) return "n/a";
        return st.Count == 1 ? $"{F(st.Mean, format)} (1 seed)" : $"{F(st.Mean, format)} ± {F(st.Std, format)}";
    }

    static string Markdown(DanteRunSettings s, IReadOnlyList<(DantePlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkVerdict> verdicts,
        IReadOnlyDictionary<string, string> plots)
    {
        var md = new StringBuilder();
        var intro = new List<string>
        {
            "Sinha et al.'s abstract (DANTE, arXiv 1902.00491; Neural Networks 2020) says alternating minimisation, each layer's sub-problem solved by " +
            "stochastic normalised gradient descent, handles sigmoid and ReLU (and a generalised ReLU), extends to several hidden layers, and is " +
            "**\"competitive with backprop both in terms of quality of the solution, as well as training speed\"**. The paper's body is not available: " +
            "DANTE here is **our design** (docs/seed-004.md): one layer (weight + bias) active at a time, x ← x − η g/(‖g‖ + ε) with the norm over the layer, " +
            "the next layer after one epoch of steps, input layer first; the generalised ReLU is ours too (x for x ≥ 0, 0.1 x below).",
            "**Protocol (ours).** Networks: 784-100-10 (`mlp1-*`) and 784-100-100-10 (`mlp2-*`) with sigmoid, ReLU and the generalised ReLU, no normalisation, " +
            $"no dropout. Every arm shares data, initial weights and minibatch order (the seed), batch {DanteComparison.BatchSize}, constant learning rate, " +
            $"no weight decay and the same number of epochs. DANTE: η = {s.DanteLearningRate.ToString("G3", C)}" +
            (s.DanteLearningRate == DanteComparison.DefaultDanteLearningRate
                ? " (chosen from 0.01, 0.03, 0.1, 0.3 by validation error in a pilot on 50,000 training images with 10,000 held out, mlp1-relu and mlp2-sigmoid, 10 epochs; the baselines keep their usual settings untuned, which favours DANTE)"
                : " (given on the command line)") +
            ", ε = 1e-8, one epoch per layer. " +
            $"SGD: lr {DanteComparison.SgdLearningRate.ToString("G3", C)}, momentum {DanteComparison.SgdMomentum.ToString("G3", C)}. " +
            $"Adam: lr {DanteComparison.AdamLearningRate.ToString("G3", C)}. Test error on the 10,000 test images after the last epoch.",
            $"Budget `{Budgets.Name(s.Budget)}`: {DanteComparison.DescribeBudget(s.Budget)}. {s.Seeds} seed(s) from {s.FirstSeed}. " +
            "The paper's own epochs, architectures and numbers are not in the abstract, so the budget is stated against our paper budget, not theirs.",
        };
        ReportHeader.AppendMarkdown(md, Title(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);
        md.AppendLine("Test error in %, final training loss (cross-entropy over the whole training set) and wall time per run (training plus the per-epoch evaluations, " +
                      "which are the same for every arm), mean ± sample standard deviation over finished seeds.");
        md.AppendLine($"Verdict rule (ours): quality is competitive when DANTE's mean test error is at most {QualityMargin.ToString("0.0", C)} point above the better backprop arm's; " +
                      $"speed is competitive when DANTE's mean wall time is at most {SpeedMargin.ToString("0.00", C)}x SGD's at equal epochs; both = agrees, one = partly, none = disagrees. " +
                      "`widevalley bench dante` measures the epoch times alone (docs/results/bench-dante.md).");
        md.AppendLine();
        md.AppendLine("| network | DANTE test error | SGD test error | Adam test error | DANTE / SGD / Adam training loss | DANTE / SGD / Adam seconds | verdict |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var v in verdicts)
            md.AppendLine($"| {v.Network} | {MeanStd(v.Dante.Error, "0.00")} | {MeanStd(v.Arms[1].Error, "0.00")} | {MeanStd(v.Arms[2].Error, "0.00")} | " +
                          $"{string.Join(" / ", v.Arms.Select(a => a.Loss is Stat l ? F(l.Mean, "0.000") : "n/a"))} | " +
                          $"{string.Join(" / ", v.Arms.Select(a => a.Time is Stat t ? F(t.Mean, "0") : "n/a"))} | {v.Text} |");
        md.AppendLine();
        var overall = Overall(verdicts);
        md.AppendLine(overall switch
        {
            "agrees" => "**Verdict on \"competitive with backprop in quality and speed\": agrees on every network.**",
            "disagrees" => "**Verdict on \"competitive with backprop in quality and speed\": disagrees** (one of the two fails on every network).",
            "partly" => "**Verdict on \"competitive with backprop in quality and speed\": partly** (see the table: it holds on some networks or in one respect only).",
            _ => "**Verdict: not testable yet** (some arms have no finished run).",
        });
        md.AppendLine();
        if (verdicts.Count > 0 && verdicts.All(v => v.Judged))
        {
            md.AppendLine($"Quality competitive on {verdicts.Count(v => v.QualityCompetitive)} of {verdicts.Count} networks; speed competitive on " +
                          $"{verdicts.Count(v => v.SpeedCompetitive)} of {verdicts.Count}. The wall times come from runs made one after another on a machine " +
                          "that may be shared with other jobs (their spread across seeds shows how much); the interleaved `widevalley bench dante` is the " +
                          "steadier measure of DANTE's cost per epoch.");
            md.AppendLine();
        }
        var diverged = verdicts.SelectMany(v => v.Arms.Where(a => a.Diverged > 0).Select(a => $"{v.Network}/{a.Arm}: {a.Diverged}")).ToList();
        if (diverged.Count > 0)
        {
            md.AppendLine($"Diverged runs (left out of the statistics): {string.Join(", ", diverged)}.");
            md.AppendLine();
        }
        foreach (var network in s.Networks)
        {
            md.AppendLine($"## {network}");
            md.AppendLine();
            if (plots.TryGetValue(network, out var png))
            {
                md.AppendLine($"![{network}: test error against epochs]({png})");
                md.AppendLine();
            }
            foreach (var arm in DanteComparison.Arms)
            {
                var mine = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm).ToList();
                var pending = mine.Count(x => x.Result is null);
                md.AppendLine($"{Label(arm)}: {ComparisonReport.Settings(mine[0].Run.Config)}" + (pending > 0 ? $" **{pending} seed(s) not finished yet.**" : ""));
                md.AppendLine();
                foreach (var (run, result) in mine.Where(x => x.Result is not null))
                    md.AppendLine(string.Create(C, $"- seed {run.Seed}: test error {F(result!.Final?.TestError ?? double.NaN, "0.00")}%, final training loss {F(result.Final?.TrainEvalLoss ?? double.NaN, "0.0000")}, {result.History.Count} epochs, {result.TotalSeconds:0.0} s{(result.Diverged ? " (diverged)" : "")}"));
                md.AppendLine();
            }
        }
        return md.ToString();
    }
}
