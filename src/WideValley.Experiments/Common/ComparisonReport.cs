using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Experiments;
using WideValley.Optim;
using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>The runs of one optimizer of a Table 1 row, one per seed that has finished.</summary>
/// <param name="Key">Folder name of the arm (adam, entropy-sgd, ...).</param>
/// <param name="Label">Legend text.</param>
/// <param name="IsEntropy">Whether this is the local-entropy arm.</param>
/// <param name="Runs">Finished runs, in seed order.</param>
/// <param name="SeedsPlanned">Seeds the reproduction asked for.</param>
public sealed record ArmResult(string Key, string Label, bool IsEntropy, IReadOnlyList<FinishedRun> Runs, int SeedsPlanned);

/// <summary>A Table 1 row as reproduced: skipped (with the reason), or its two arms.</summary>
public sealed record ComparisonRowResult(ComparisonRow Row, string Dataset, string? SkipReason, ArmResult? Baseline, ArmResult? Entropy);

/// <summary>Everything a comparison report states.</summary>
/// <param name="Stem">File name stem, e.g. table1-fashion-mnist (see <see cref="Budgets.ReportStem"/>).</param>
/// <param name="Title">The report's heading.</param>
/// <param name="Introduction">Markdown paragraphs under the heading: what is compared, with which settings and data.</param>
/// <param name="Budget">The budget the runs used.</param>
/// <param name="Command">The command line that reproduces the report.</param>
/// <param name="Machine">A description of the machine.</param>
/// <param name="Rows">The rows asked for, in the paper's order.</param>
public sealed record ComparisonReportInput(string Stem, string Title, IReadOnlyList<string> Introduction, Budget Budget, string Command, string Machine,
    IReadOnlyList<ComparisonRowResult> Rows);

/// <summary>Mean, sample standard deviation (null for one value) and count.</summary>
public readonly record struct SeedStatistic(double Mean, double? Std, int Count)
{
    /// <summary>
    /// The statistic of the finite <paramref name="values"/> (NaN and infinities, e.g. a diverged run's loss, are left out);
    /// null when none is finite.
    /// </summary>
    public static SeedStatistic? Of(IEnumerable<double> values)
    {
        var v = values.Where(double.IsFinite).ToArray();
        if (v.Length == 0) return null;
        var mean = v.Average();
        double? std = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : null;
        return new SeedStatistic(mean, std, v.Length);
    }
}

/// <summary>
/// Writes a comparison of Entropy-SGD with a baseline over seeds (Table 1, App. C.1) as Markdown
/// (e.g. docs/results/table1-DATASET[-BUDGET].md), a JSON twin with every number, and one PNG/SVG per row of test
/// error (perplexity) against effective epochs, Entropy-SGD against the baseline (seed 003 Figs. 4-6). Runs that have not finished are listed as pending, so a partial reproduction
/// still gives an honest report.
/// </summary>
public static class ComparisonReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The quantity a row reports for one finished run: final test error (%) or perplexity.</summary>
    public static double? TestMetric(ComparisonRow row, EpochMetrics? m) =>
        m is null ? null : row.Metric == ComparisonMetric.Perplexity ? m.TestPerplexity : m.TestError;

    /// <summary>The final training loss: over the whole training set in evaluation mode when measured, else the
    /// mean minibatch loss of the last epoch (which, for Entropy-SGD, is taken at the Langevin iterates).</summary>
    public static double? FinalTrainingLoss(EpochMetrics? m) => m?.TrainEvalLoss ?? m?.TrainLoss;

    /// <summary>Writes the report files into <paramref name="folder"/> atomically and returns their paths.</summary>
    /// <param name="folder">The report folder.</param>
    /// <param name="input">What the report shows.</param>
    /// <param name="warning">Told once when the figures cannot be drawn (the plotting font is missing); the Markdown then
    /// links no figure, and the JSON and Markdown are written all the same.</param>
    public static IReadOnlyList<string> Write(string folder, ComparisonReportInput input, Action<string>? warning = null)
    {
        Directory.CreateDirectory(folder);
        var stem = input.Stem;
        var written = new List<string>();
        var plots = new Dictionary<string, string>();
        var figures = new ReportFigures(written, warning);
        foreach (var row in input.Rows)
        {
            if (PlotFor(row) is not Figure figure) continue;
            var basePath = Path.Combine(folder, $"{stem}-{row.Row.Name}");
            if (figures.TrySave(figure, basePath) is { } png) plots[row.Row.Name] = png;
        }
        var json = Path.Combine(folder, stem + ".json");
        AtomicFile.WriteAllText(json, ToJson(input).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(folder, stem + ".md");
        AtomicFile.WriteAllText(markdown, ToMarkdown(input, plots));
        written.Add(markdown);
        return written;
    }

    static Figure? PlotFor(ComparisonRowResult row)
    {
        var series = new List<LineSeries>();
        foreach (var arm in new[] { row.Baseline, row.Entropy })
        {
            if (arm is null || arm.Runs.Count == 0) continue;
            var curve = MeanCurve(row.Row, arm.Runs);
            if (curve.X.Count == 0) continue;
            var name = arm.Runs.Count > 1 ? $"{arm.Label}, mean of {arm.Runs.Count} seeds" : arm.Label;
            series.Add(new LineSeries(name, curve.X, curve.Y) { ShowMarkers = curve.X.Count <= 20, Dashed = false });
        }
        if (series.Count == 0) return null;
        var yLabel = row.Row.Metric == ComparisonMetric.Perplexity ? "test perplexity" : "test error (%)";
        return LinePlot.Create(series, "effective epochs", yLabel,
            new LinePlotOptions { Title = $"{row.Row.Title} on {row.Dataset}: {yLabel} against effective epochs" });
    }

    /// <summary>Per epoch, the mean over seeds of the test metric, at the mean effective epoch (runs of one arm share
    /// their schedule, so epoch k is the same point of training in each).</summary>
    static (List<double> X, List<double> Y) MeanCurve(ComparisonRow row, IReadOnlyList<FinishedRun> runs)
    {
        var x = new List<double>();
        var y = new List<double>();
        var epochs = runs.Min(r => r.History.Count);
        for (var e = 0; e < epochs; e++)
        {
            var values = runs.Select(r => TestMetric(row, r.History[e])).ToList();
            if (values.Any(v => v is not double d || !double.IsFinite(d))) continue;
            x.Add(runs.Average(r => r.History[e].EffectiveEpochs));
            y.Add(values.Average(v => v!.Value));
        }
        return (x, y);
    }

    static JsonObject ToJson(ComparisonReportInput input)
    {
        var runsRoot = RunsRoot(input.Rows.SelectMany(r => new[] { r.Baseline, r.Entropy }).SelectMany(a => a?.Runs ?? []).Select(r => r.Folder));
        var rows = new JsonArray();
        foreach (var row in input.Rows)
        {
            var o = new JsonObject
            {
                ["row"] = row.Row.Name,
                ["dataset"] = row.Dataset,
                ["metric"] = row.Row.Metric == ComparisonMetric.Perplexity ? "perplexity" : "error_percent",
                ["skipped"] = row.SkipReason is not null,
                ["skip_reason"] = row.SkipReason,
                ["paper_entropy"] = PaperJson(row.Row.PaperEntropy),
                ["paper_baseline"] = PaperJson(row.Row.PaperBaseline),
            };
            if (row.Baseline is not null) o["baseline"] = ArmJson(row.Row, row.Baseline, runsRoot);
            if (row.Entropy is not null) o["entropy"] = ArmJson(row.Row, row.Entropy, runsRoot);
            if (row.Entropy is not null && row.Baseline is not null && Stats(row.Row, row.Baseline).Test is SeedStatistic target)
                o["reach_baseline_final"] = new JsonObject
                {
                    ["target"] = target.Mean,
                    ["tolerance"] = ReachTolerance,
                    ["entropy_effective_epochs"] = EffectiveEpochsToReach(row.Row, row.Entropy.Runs, target.Mean),
                    ["baseline_effective_epochs"] = EffectiveEpochsToReach(row.Row, row.Baseline.Runs, target.Mean),
                };
            rows.Add(o);
        }
        var json = ReportHeader.Json(input.Stem, input.Title, input.Budget, input.Command, input.Machine);
        json["rows"] = rows;
        return json;
    }

    static JsonObject PaperJson(PaperValue p) => new() { ["mean"] = p.Mean, ["std"] = p.Std, ["effective_epochs"] = p.EffectiveEpochs };

    /// <summary>
    /// The folder that holds every run of the report (the command's output folder, or a folder in it), so that runs
    /// are named relative to it ("mnistfc/adam/seed-1") and the committed JSON names no folder of the machine that
    /// made it. Null when there are no runs.
    /// </summary>
    internal static string? RunsRoot(IEnumerable<string> folders)
    {
        var split = folders.Select(f => Path.GetFullPath(f).TrimEnd('/').Split('/')).ToList();
        if (split.Count == 0) return null;
        var common = split[0].Length;
        foreach (var parts in split)
        {
            var n = 0;
            while (n < Math.Min(common, parts.Length) && parts[n] == split[0][n]) n++;
            common = n;
        }
        // A run folder itself is never the root: its name is what the report should show.
        if (split.Any(parts => parts.Length == common)) common--;
        return string.Join('/', split[0][..Math.Max(common, 1)]) is { Length: > 0 } root ? root : "/";
    }

    static JsonObject ArmJson(ComparisonRow row, ArmResult arm, string? runsRoot)
    {
        var runs = new JsonArray();
        foreach (var r in arm.Runs)
            runs.Add(new JsonObject
            {
                ["seed"] = r.Config.Seed,
                ["status"] = r.Status,
                ["test"] = Finite(TestMetric(row, r.Final)),
                ["effective_epochs"] = r.EffectiveEpochs,
                ["final_training_loss"] = Finite(FinalTrainingLoss(r.Final)),
                ["seconds"] = r.TotalSeconds,
                ["threads"] = r.Config.Threads,
                ["folder"] = runsRoot is null ? Path.GetFileName(r.Folder) : Path.GetRelativePath(runsRoot, r.Folder),
            });
        var s = Stats(row, arm);
        return new JsonObject
        {
            ["optimizer"] = arm.Key,
            ["label"] = arm.Label,
            ["seeds_planned"] = arm.SeedsPlanned,
            ["seeds_finished"] = arm.Runs.Count,
            ["test_mean"] = s.Test?.Mean,
            ["test_std"] = s.Test?.Std,
            ["effective_epochs_mean"] = s.EffectiveEpochs?.Mean,
            ["final_training_loss_mean"] = s.TrainingLoss?.Mean,
            ["final_training_loss_std"] = s.TrainingLoss?.Std,
            ["seconds_per_effective_epoch"] = s.SecondsPerEffectiveEpoch?.Mean,
            ["runs"] = runs,
        };
    }

    static double? Finite(double? v) => v is double d && double.IsFinite(d) ? d : null;

    readonly record struct ArmStats(SeedStatistic? Test, SeedStatistic? EffectiveEpochs, SeedStatistic? TrainingLoss, SeedStatistic? SecondsPerEffectiveEpoch);

    static ArmStats Stats(ComparisonRow row, ArmResult arm)
    {
        var ok = arm.Runs.Where(r => !r.Diverged).ToList();
        return new ArmStats(
            SeedStatistic.Of(ok.Select(r => TestMetric(row, r.Final) ?? double.NaN)),
            SeedStatistic.Of(ok.Select(r => r.EffectiveEpochs)),
            SeedStatistic.Of(ok.Select(r => FinalTrainingLoss(r.Final) ?? double.NaN)),
            SeedStatistic.Of(ok.Where(r => r.EffectiveEpochs > 0).Select(r => r.TotalSeconds / r.EffectiveEpochs)));
    }

    /// <summary>
    /// The libtorch threads the finished runs used, as each last ran (a run resumed with other --threads records the
    /// later count): the machine line gives the report command's own, which need not be theirs.
    /// </summary>
    static string? ThreadsSentence(ComparisonReportInput input)
    {
        var runs = input.Rows.SelectMany(r => new[] { r.Entropy, r.Baseline }).OfType<ArmResult>().SelectMany(a => a.Runs).ToList();
        if (runs.Count == 0) return null;
        var groups = runs.GroupBy(r => r.Config.Threads).OrderBy(g => g.Key)
            .Select(g => $"{(g.Key > 0 ? g.Key.ToString(C) : "libtorch's default")} in {g.Count()} run{(g.Count() == 1 ? "" : "s")}");
        return "Libtorch threads per finished run, as it last ran: " + string.Join(", ", groups) + ". " +
               "A run's wall time also depends on what else the machine ran beside it; its effective epochs do not.";
    }

    static string Num(double? v, string format) => v is double d ? d.ToString(format, C) : "n/a";

    static string MeanStd(SeedStatistic? s, string format) =>
        s is not SeedStatistic v ? "n/a" : v.Std is double sd ? $"{v.Mean.ToString(format, C)} ± {sd.ToString(format, C)}" : $"{v.Mean.ToString(format, C)} (1 seed)";

    static string ToMarkdown(ComparisonReportInput input, IReadOnlyDictionary<string, string> plots)
    {
        var md = new StringBuilder();
        ReportHeader.AppendMarkdown(md, input.Title, input.Introduction, input.Budget,
            "A smoke run: these numbers only show that every step ran; they say nothing about the optimizers.", input.Command, input.Machine);
        md.AppendLine("Test error in % (perplexity for the LSTMs): mean ± sample standard deviation over the finished seeds.");
        md.AppendLine("Effective epochs count every minibatch gradient (an Entropy-SGD step with L Langevin steps costs L).");
        md.AppendLine("Final training loss is the cross-entropy over the whole training set in evaluation mode after the last epoch");
        md.AppendLine("(the same measurement for both optimizers); time per effective epoch is the run's wall time over its effective epochs,");
        md.AppendLine("including the evaluation after every epoch (test set and whole training set), which a baseline with many short");
        md.AppendLine("epochs does more often than Entropy-SGD with few long ones (100 against 5 evaluations for mnistfc).");
        if (ThreadsSentence(input) is { } threads) md.AppendLine(threads);
        md.AppendLine();
        md.AppendLine("| row | data | optimizer | seeds | test error (%) / perplexity | paper | effective epochs | paper | final training loss | s / effective epoch |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var row in input.Rows)
        {
            if (row.SkipReason is not null)
            {
                md.AppendLine($"| {row.Row.Title} | {row.Dataset} | skipped | 0 | n/a | {Paper(row.Row.PaperEntropy)} / {Paper(row.Row.PaperBaseline)} | n/a | | n/a | n/a |");
                continue;
            }
            foreach (var (arm, paper) in new[] { (row.Entropy, row.Row.PaperEntropy), (row.Baseline, row.Row.PaperBaseline) })
            {
                if (arm is null) continue;
                var s = Stats(row.Row, arm);
                var format = row.Row.Metric == ComparisonMetric.Perplexity ? "0.000" : "0.00";
                var diverged = arm.Runs.Count(r => r.Diverged);
                var seeds = $"{arm.Runs.Count - diverged} of {arm.SeedsPlanned}" + (diverged > 0 ? $" ({diverged} diverged)" : "");
                md.AppendLine($"| {row.Row.Title} | {row.Dataset} | {arm.Label} | {seeds} | {MeanStd(s.Test, format)} | {Paper(paper)} | " +
                              $"{Num(s.EffectiveEpochs?.Mean, "0.#")} | {paper.EffectiveEpochs.ToString("0", C)} | {MeanStd(s.TrainingLoss, "0.0000")} | {Num(s.SecondsPerEffectiveEpoch?.Mean, "0.0")} |");
            }
        }
        md.AppendLine();
        md.AppendLine("## Against the paper's claims");
        md.AppendLine();
        foreach (var row in input.Rows)
        {
            if (row.SkipReason is not null)
            {
                md.AppendLine($"- **{row.Row.Title}**: skipped: {row.SkipReason}.");
                continue;
            }
            md.AppendLine($"- **{row.Row.Title}**: {Verdict(row)}");
        }
        md.AppendLine();
        foreach (var row in input.Rows.Where(r => r.SkipReason is null))
        {
            md.AppendLine($"## {row.Row.Title}");
            md.AppendLine();
            if (plots.TryGetValue(row.Row.Name, out var png))
            {
                md.AppendLine($"![{row.Row.Title}: test metric against effective epochs]({png})");
                md.AppendLine();
            }
            foreach (var arm in new[] { row.Entropy, row.Baseline })
            {
                if (arm is null) continue;
                var pending = arm.SeedsPlanned - arm.Runs.Count;
                md.AppendLine($"{arm.Label}: {Settings(arm.Runs.FirstOrDefault()?.Config)}" +
                              (pending > 0 ? $" **{pending} seed(s) not finished yet.**" : ""));
                md.AppendLine();
            }
        }
        return md.ToString();
    }

    static string Paper(PaperValue p) => $"{p.Mean.ToString("0.###", C)} ± {p.Std.ToString("0.###", C)}";

    /// <summary>The run's settings in the words of the CLI, for the reports.</summary>
    internal static string Settings(RunConfig? c)
    {
        if (c is null) return "no run has finished.";
        var o = c.ResolvedOptimizerOptions;
        var parts = new List<string>
        {
            $"`{c.Optimizer}`", $"lr {o.LearningRate.ToString("G4", C)}", $"schedule `{c.LrSchedule}`", $"{c.Epochs} epochs", $"batch {c.BatchSize}",
        };
        var (momentum, nesterov, weightDecay, beta1) = o switch
        {
            SgdOptions s => (s.Momentum, s.Nesterov, s.WeightDecay, (double?)null),
            EntropySgdOptions s => (s.Momentum, s.Nesterov, s.WeightDecay, null),
            AdamOptions a => (0, false, a.WeightDecay, a.Beta1),
            EntropyAdamOptions a => (0, false, a.WeightDecay, a.Beta1),
            SgldOptions s => (0, false, s.WeightDecay, null),
            AnnealSgdOptions s => (s.Momentum, s.Nesterov, s.WeightDecay, null),
            ParleOptions s => (s.Momentum, s.Nesterov, s.WeightDecay, null),
            ElasticSgdOptions s => (s.Momentum, s.Nesterov, s.WeightDecay, null),
            _ => (0.0, false, 0.0, null),
        };
        if (momentum > 0) parts.Add($"momentum {momentum.ToString("G3", C)}{(nesterov ? " (Nesterov)" : "")}");
        if (weightDecay > 0) parts.Add($"weight decay {weightDecay.ToString("G3", C)}");
        if (beta1 is double b1) parts.Add($"beta1 {b1.ToString("G3", C)}");
        if (o is AnnealSgdOptions field)
            parts.Add($"field h0 {field.FieldSize.ToString("G3", C)} ({field.FieldMode.ToString().ToLowerInvariant()}), schedule {field.FieldSchedule.ToString().ToLowerInvariant()}" +
                      (field.FieldSchedule == AnnealSchedule.Linear ? $" to zero at step {field.FieldAnnealSteps.ToString(C)}" : ""));
        if (o is ILocalEntropyOptimizerOptions { LocalEntropy: var le })
        {
            parts.Add($"L = {le.L}, eta' = {le.LangevinLr.ToString("G3", C)}, eps = {le.Noise.ToString("G3", C)}, gamma0 = {le.Scope.Gamma(0).ToString("G3", C)}" +
                      (le.Scope is ConstantScope ? " (fixed)" : $", scoping `{le.Scope.Spec}`"));
            if (le.LangevinMomentum > 0) parts.Add($"Langevin momentum {le.LangevinMomentum.ToString("G3", C)}{(le.LangevinNesterov ? " (Nesterov)" : "")}");
        }
        // The replicas' coupling (Parle, Elastic-SGD): what makes one replica run differ from another.
        static string Rho(double rho0, double growth, double cap, string step) => growth == 0
            ? string.Create(C, $"rho {rho0:G3} (constant)")
            : string.Create(C, $"rho {rho0:G3} growing by {growth:G4} per {step} to at most {cap:G3}");
        if (o is ParleOptions parle)
            parts.Add(string.Create(C, $"gamma capped at {parle.GammaMax:G3}, ") + Rho(parle.ElasticRho, parle.ElasticRhoGrowth, parle.ElasticRhoMax, "outer step"));
        if (o is ElasticSgdOptions elastic) parts.Add(Rho(elastic.ElasticRho, elastic.ElasticRhoGrowth, elastic.ElasticRhoMax, "step"));
        if (c.Dropout is double d) parts.Add($"dropout {d.ToString("G3", C)}");
        if (c.ClipGradNorm > 0) parts.Add($"gradient norm clipped at {c.ClipGradNorm.ToString("G3", C)}");
        if (c.MaxTrainSamples is long n) parts.Add($"first {n:N0} training samples");
        if (c.EffectiveEpochBudget is double b) parts.Add($"stopped at {b.ToString("G3", C)} effective epochs");
        return string.Join(", ", parts) + ".";
    }

    /// <summary>How close counts as having reached a value: within 1% of it (relative), so that a curve that has
    /// flattened out is not judged by noise in its last digits.</summary>
    public const double ReachTolerance = 0.01;

    /// <summary>
    /// The first effective epoch at which the mean over an arm's non-diverged seeds of the test metric (lower is better:
    /// error or perplexity) came within <see cref="ReachTolerance"/> of <paramref name="target"/>; null when it never did.
    /// The answer is only as fine as the evaluations: one per epoch, which is L effective epochs apart for Entropy-SGD.
    /// </summary>
    public static double? EffectiveEpochsToReach(ComparisonRow row, IReadOnlyList<FinishedRun> runs, double target)
    {
        var ok = runs.Where(r => !r.Diverged).ToList();
        if (ok.Count == 0) return null;
        var (x, y) = MeanCurve(row, ok);
        var threshold = ReachThreshold(target);
        for (var i = 0; i < x.Count; i++)
            if (y[i] <= threshold) return x[i];
        return null;
    }

    /// <summary>The largest value that counts as having reached <paramref name="target"/> (lower is better).</summary>
    static double ReachThreshold(double target) => target * (1 + ReachTolerance);

    /// <summary>Effective epochs between evaluations: those of the first epoch, averaged over the arm's runs.</summary>
    static double? EvaluationSpacing(IReadOnlyList<FinishedRun> runs)
    {
        var first = runs.Where(r => !r.Diverged && r.History.Count > 0).Select(r => r.History[0].EffectiveEpochs).ToList();
        return first.Count == 0 ? null : first.Average();
    }

    /// <summary>
    /// The paper's speed claim in our numbers: how many effective epochs each arm took to come within 1% of the
    /// baseline's final mean test metric. The baseline reaches its own final value by definition, though often
    /// before its last epoch; the question is whether Entropy gets there sooner, later, or never.
    /// </summary>
    static string ReachSentence(ComparisonRowResult row, double baselineFinal, string format)
    {
        var what = row.Row.Metric == ComparisonMetric.Perplexity ? "perplexity" : "error";
        var within = $"within {ReachTolerance.ToString("0%", C)} of the baseline's final test {what} ({ReachThreshold(baselineFinal).ToString(format, C)} or less)";
        var entropy = EffectiveEpochsToReach(row.Row, row.Entropy!.Runs, baselineFinal);
        var baseline = EffectiveEpochsToReach(row.Row, row.Baseline!.Runs, baselineFinal);
        var spacing = $"(evaluated every {Num(EvaluationSpacing(row.Entropy.Runs), "0.#")} effective epochs for Entropy, every {Num(EvaluationSpacing(row.Baseline.Runs), "0.#")} for the baseline)";
        var baselineAt = baseline is double bAt ? $"the baseline first did at {bAt.ToString("0.#", C)}" : "the baseline's mean curve never did";
        if (entropy is not double eAt)
            return $"Entropy never came {within}, while {baselineAt} {spacing}: not faster. ";
        var verdict = baseline switch
        {
            double b when eAt < b => "faster than the baseline",
            double b when eAt == b => "as fast as the baseline",
            _ => "not faster than the baseline",
        };
        return $"Entropy first came {within} at {eAt.ToString("0.#", C)} effective epochs, " +
               $"{baselineAt} {spacing}: {verdict}. ";
    }

    /// <summary>What the numbers say about the paper's claims for one row, in plain words.</summary>
    static string Verdict(ComparisonRowResult row)
    {
        if (row.Entropy is null || row.Baseline is null) return "not run.";
        var e = Stats(row.Row, row.Entropy);
        var b = Stats(row.Row, row.Baseline);
        if (e.Test is not SeedStatistic et || b.Test is not SeedStatistic bt) return "no finished pair of runs yet.";
        var unit = row.Row.Metric == ComparisonMetric.Perplexity ? "" : " points";
        var format = row.Row.Metric == ComparisonMetric.Perplexity ? "0.000" : "0.00";
        var difference = et.Mean - bt.Mean;
        // Two standard errors of the difference of means; with one seed per arm there is no spread to judge by.
        double? noise = et.Std is double se && bt.Std is double sb ? 2 * Math.Sqrt(se * se / et.Count + sb * sb / bt.Count) : null;
        var sb1 = new StringBuilder();
        var better = difference < 0 ? "lower" : "higher";
        sb1.Append($"Entropy test {(row.Row.Metric == ComparisonMetric.Perplexity ? "perplexity" : "error")} {et.Mean.ToString(format, C)} vs {bt.Mean.ToString(format, C)}: ");
        sb1.Append($"{Math.Abs(difference).ToString(format, C)}{unit} {better}");
        if (noise is double n)
            sb1.Append(Math.Abs(difference) <= n
                ? $", within two standard errors ({n.ToString(format, C)}): comparable, as the paper claims"
                : $", more than two standard errors ({n.ToString(format, C)}): {(difference < 0 ? "better than" : "worse than")} the baseline");
        else sb1.Append(" (one seed per arm: no spread to judge the difference by)");
        sb1.Append($", at {Num(e.EffectiveEpochs?.Mean, "0.#")} vs {Num(b.EffectiveEpochs?.Mean, "0.#")} effective epochs. ");
        if (e.TrainingLoss is SeedStatistic el && b.TrainingLoss is SeedStatistic bl)
            sb1.Append(el.Mean < bl.Mean
                ? $"Final training loss lower for Entropy ({el.Mean.ToString("0.0000", C)} vs {bl.Mean.ToString("0.0000", C)}), as the paper claims. "
                : $"Final training loss **not** lower for Entropy ({el.Mean.ToString("0.0000", C)} vs {bl.Mean.ToString("0.0000", C)}), against the paper's claim. ");
        sb1.Append(ReachSentence(row, bt.Mean, format));
        if (e.SecondsPerEffectiveEpoch is SeedStatistic es && b.SecondsPerEffectiveEpoch is SeedStatistic bs && e.EffectiveEpochs is SeedStatistic ee && b.EffectiveEpochs is SeedStatistic be)
            sb1.Append($"Wall time {(es.Mean * ee.Mean).ToString("0", C)} s vs {(bs.Mean * be.Mean).ToString("0", C)} s per run.");
        return sb1.ToString().TrimEnd();
    }
}
