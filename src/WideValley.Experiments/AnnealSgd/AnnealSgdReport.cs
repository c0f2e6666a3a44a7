using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Optim;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="AnnealSgdComparison"/>: per network, test error mean ± std over seeds for SGD and AnnealSGD,
/// the paired difference by seed, and the verdict on the abstract's claim (better generalisation); Markdown, a JSON
/// twin, and one figure per network (mean test error against epochs). Pending runs are listed as such.
/// </summary>
public static class AnnealSgdReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>One network's judgement.</summary>
    /// <param name="Network">mnistfc or lenet.</param>
    /// <param name="Sgd">SGD's final test errors (%) of the finished, non-diverged runs, by seed.</param>
    /// <param name="AnnealSgd">AnnealSGD's, by seed.</param>
    /// <param name="Differences">AnnealSGD minus SGD for the seeds both finished.</param>
    public sealed record NetworkVerdict(string Network, IReadOnlyDictionary<long, double> Sgd, IReadOnlyDictionary<long, double> AnnealSgd, IReadOnlyList<double> Differences)
    {
        /// <summary>Mean paired difference (AnnealSGD − SGD, percentage points).</summary>
        public double MeanDifference => Differences.Count == 0 ? double.NaN : Differences.Average();

        /// <summary>Standard error of the mean paired difference (NaN below two pairs).</summary>
        public double DifferenceError => Differences.Count < 2 ? double.NaN : Stat.Of(Differences).StandardError;

        /// <summary>The claim holds: AnnealSGD's test error lower by more than two standard errors of the paired difference.</summary>
        public bool Better => Differences.Count >= 2 && MeanDifference < 0 && -MeanDifference > 2 * DifferenceError;

        /// <summary>The opposite: higher by more than two standard errors.</summary>
        public bool Worse => Differences.Count >= 2 && MeanDifference > 0 && MeanDifference > 2 * DifferenceError;

        /// <summary>The verdict in words.</summary>
        public string Text => Differences.Count == 0 ? "no finished pair of runs yet"
            : Differences.Count < 2 ? "one seed pair only: no spread to judge by"
            : Better ? "better generalisation (lower test error by more than 2 SE): agrees with the abstract"
            : Worse ? "worse generalisation (higher test error by more than 2 SE): does not agree"
            : "no difference beyond 2 SE: the claim is not supported here";
    }

    /// <summary>The verdict of each network.</summary>
    public static IReadOnlyList<NetworkVerdict> Verdicts(AnnealSgdRunSettings s, IReadOnlyList<(AnnealSgdPlannedRun Run, FinishedRun? Result)> runs) =>
        s.Networks.Select(network =>
        {
            Dictionary<long, double> Errors(string arm) => runs
                .Where(x => x.Run.Network == network && x.Run.Arm == arm && x.Result is { Diverged: false, Final.TestError: not null })
                .ToDictionary(x => x.Run.Seed, x => x.Result!.Final!.TestError!.Value);
            var sgd = Errors("sgd");
            var anneal = Errors("annealsgd");
            var differences = anneal.Keys.Where(sgd.ContainsKey).Order().Select(k => anneal[k] - sgd[k]).ToList();
            return new NetworkVerdict(network, sgd, anneal, differences);
        }).ToList();

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths.</summary>
    public static IReadOnlyList<string> Write(AnnealSgdRunSettings s, IReadOnlyList<(AnnealSgdPlannedRun Run, FinishedRun? Result)> runs, Action<string>? warning = null)
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

    /// <summary>
    /// annealsgd[-fresh][-hH0][-BUDGET]: the default field (fixed, h0 = <see cref="AnnealSgdComparison.DefaultFieldSize"/>)
    /// has the plain name, other fields their own, so that a run with another field never overwrites the main report.
    /// </summary>
    public static string Stem(AnnealSgdRunSettings s) => Budgets.ReportStem(AnnealSgdComparison.Name +
        (s.FieldMode == AnnealFieldMode.Fresh ? "-fresh" : "") +
        (s.FieldSize == AnnealSgdComparison.DefaultFieldSize ? "" : string.Create(C, $"-h{s.FieldSize:R}")), s.Budget);

    static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, C) : "n/a";

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static string Title(AnnealSgdRunSettings s) =>
        $"AnnealSGD (our reading of the abstract) against SGD with momentum on Fashion-MNIST (budget `{Budgets.Name(s.Budget)}`)";

    static Figure? Plot(string network, IReadOnlyList<(AnnealSgdPlannedRun Run, FinishedRun? Result)> runs)
    {
        var series = new List<LineSeries>();
        foreach (var (arm, label) in new[] { ("sgd", "SGD (Nesterov)"), ("annealsgd", "AnnealSGD") })
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
            series.Add(new LineSeries(finished.Count > 1 ? $"{label}, mean of {finished.Count} seeds" : label, x, y) { ShowMarkers = x.Count <= 20 });
        }
        return series.Count == 0 ? null : LinePlot.Create(series, "effective epochs", "test error (%)",
            new LinePlotOptions { Title = $"{network} on Fashion-MNIST: test error against effective epochs" });
    }

    static JsonObject Json(AnnealSgdRunSettings s, string stem, IReadOnlyList<(AnnealSgdPlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkVerdict> verdicts)
    {
        var json = ReportHeader.Json(stem, Title(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = AnnealSgdComparison.Name;
        json["budget_description"] = AnnealSgdComparison.DescribeBudget(s.Budget);
        json["seeds"] = s.Seeds;
        json["field_size"] = s.FieldSize;
        json["field_mode"] = s.FieldMode == AnnealFieldMode.Fixed ? "fixed" : "fresh";
        json["field_schedule"] = "linear to zero over the first half of the run's steps";
        var networks = new JsonArray();
        foreach (var v in verdicts)
        {
            JsonObject Arm(string arm, IReadOnlyDictionary<long, double> errors)
            {
                var list = new JsonArray();
                foreach (var (run, result) in runs.Where(x => x.Run.Network == v.Network && x.Run.Arm == arm))
                    list.Add(new JsonObject
                    {
                        ["seed"] = run.Seed,
                        ["status"] = result?.Status ?? "pending",
                        ["test_error"] = result?.Final?.TestError is double t ? t : null,
                        ["final_training_loss"] = result?.Final?.TrainEvalLoss is double l && double.IsFinite(l) ? l : null,
                        ["epochs"] = result?.History.Count,
                        ["seconds"] = result?.TotalSeconds,
                        ["folder"] = Path.GetRelativePath(s.RunsRoot, run.Folder),
                    });
                var stat = errors.Count == 0 ? (Stat?)null : Stat.Of(errors.Values.ToList());
                var config = runs.First(x => x.Run.Network == v.Network && x.Run.Arm == arm).Run.Config;
                return new JsonObject
                {
                    ["optimizer"] = config.Optimizer,
                    ["settings"] = ComparisonReport.Settings(config),
                    ["seeds_finished"] = errors.Count,
                    ["test_error_mean"] = stat is Stat m ? Number(m.Mean) : null,
                    ["test_error_std"] = stat is Stat d ? Number(d.Std) : null,
                    ["runs"] = list,
                };
            }
            networks.Add(new JsonObject
            {
                ["network"] = v.Network,
                ["sgd"] = Arm("sgd", v.Sgd),
                ["annealsgd"] = Arm("annealsgd", v.AnnealSgd),
                ["paired_seeds"] = v.Differences.Count,
                ["difference_mean"] = Number(v.MeanDifference),
                ["difference_standard_error"] = Number(v.DifferenceError),
                ["better_generalisation"] = v.Better,
                ["worse_generalisation"] = v.Worse,
                ["verdict"] = v.Text,
            });
        }
        json["networks"] = networks;
        json["claim_better_generalisation"] = verdicts.All(v => v.Better);
        return json;
    }

    static string Markdown(AnnealSgdRunSettings s, IReadOnlyList<(AnnealSgdPlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkVerdict> verdicts,
        IReadOnlyDictionary<string, string> plots)
    {
        var md = new StringBuilder();
        var intro = new List<string>
        {
            "Chaudhari & Soatto's abstract (arXiv 1511.06485, seed 000) says AnnealSGD generalises better than SGD, also for convolutional networks on MNIST. " +
            "The paper's body is not available: AnnealSGD here is **our reading of the abstract** (docs/annealsgd.md), and its settings below are **ours**.",
            "**Protocol (ours).** Both optimizers share everything but the field: Fashion-MNIST (standing in for MNIST), batch 128, the networks' default dropout, " +
            "lr 0.1 with Nesterov momentum 0.9 and weight decay 1e-3 (Table 1's SGD baseline, its All-CNN row), the schedule and length of Table 1's mnistfc/LeNet rows, " +
            $"equal epochs, the same seeds (hence the same initial weights and minibatch order). AnnealSGD adds a {(s.FieldMode == AnnealFieldMode.Fixed ? "fixed" : "fresh")} Gaussian field of " +
            string.Create(C, $"per-coordinate size h0 = {s.FieldSize:G3}, annealed linearly to zero over the first half of the steps (the second half is plain SGD). ") +
            (s.FieldSize == AnnealSgdComparison.DefaultFieldSize
                ? "h0 is a fixed choice, not tuned on any data (neither validation nor test): the field's norm h0·√P (1.4 for mnistfc, 0.36 for LeNet) is of the order of an early minibatch gradient, " +
                  "the regime where the glass's field and landscape gradient are comparable (anneal-field). One h0 is no sweep: a verdict here says nothing about other field sizes."
                : "h0 was given on the command line."),
            $"Budget `{Budgets.Name(s.Budget)}`: {AnnealSgdComparison.DescribeBudget(s.Budget)}. {s.Seeds} seed(s) from {s.FirstSeed}.",
        };
        ReportHeader.AppendMarkdown(md, Title(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);
        md.AppendLine("Test error in %, mean ± sample standard deviation over finished seeds; the difference is AnnealSGD − SGD paired by seed, ± its standard error.");
        md.AppendLine("Verdict rule (ours): better generalisation when AnnealSGD's test error is lower by more than two standard errors of the paired difference.");
        md.AppendLine();
        md.AppendLine("| network | SGD test error (%) | AnnealSGD test error (%) | seeds (SGD / AnnealSGD / paired) | AnnealSGD − SGD | verdict |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var v in verdicts)
        {
            static string MeanStd(IReadOnlyDictionary<long, double> e)
            {
                if (e.Count == 0) return "n/a";
                var st = Stat.Of(e.Values.ToList());
                return e.Count == 1 ? $"{F(st.Mean, "0.00")} (1 seed)" : $"{F(st.Mean, "0.00")} ± {F(st.Std, "0.00")}";
            }
            md.AppendLine($"| {v.Network} | {MeanStd(v.Sgd)} | {MeanStd(v.AnnealSgd)} | {v.Sgd.Count} / {v.AnnealSgd.Count} / {v.Differences.Count} of {s.Seeds} | " +
                          $"{F(v.MeanDifference, "+0.00;-0.00;0.00")} ± {F(v.DifferenceError, "0.00")} | {v.Text} |");
        }
        md.AppendLine();
        md.AppendLine(verdicts.All(v => v.Better)
            ? "**Verdict: better generalisation on every network, as the abstract claims.**"
            : verdicts.Any(v => v.Better)
                ? "**Verdict: better generalisation on some networks only** (see the table)."
                : "**Verdict: the abstract's claim of better generalisation is not supported by these runs** (see the table).");
        md.AppendLine();
        foreach (var network in s.Networks)
        {
            md.AppendLine($"## {network}");
            md.AppendLine();
            if (plots.TryGetValue(network, out var png))
            {
                md.AppendLine($"![{network}: test error against effective epochs]({png})");
                md.AppendLine();
            }
            foreach (var arm in new[] { "sgd", "annealsgd" })
            {
                var mine = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm).ToList();
                var pending = mine.Count(x => x.Result is null);
                md.AppendLine($"{(arm == "sgd" ? "SGD" : "AnnealSGD")}: {ComparisonReport.Settings(mine[0].Run.Config)}" + (pending > 0 ? $" **{pending} seed(s) not finished yet.**" : ""));
                md.AppendLine();
                foreach (var (run, result) in mine.Where(x => x.Result is not null))
                    md.AppendLine(string.Create(C, $"- seed {run.Seed}: test error {F(result!.Final?.TestError ?? double.NaN, "0.00")}%, final training loss {F(result.Final?.TrainEvalLoss ?? double.NaN, "0.0000")}, {result.History.Count} epochs, {result.TotalSeconds:0} s{(result.Diverged ? " (diverged)" : "")}"));
                md.AppendLine();
            }
        }
        return md.ToString();
    }
}
