using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Optim;
using WideValley.Reports;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="ParleReproduction"/>: per network, final test error (mean ± std over seeds) and wall time of
/// Parle, data-parallel SGD and Elastic-SGD at equal gradient evaluations; the effective epochs and wall seconds each
/// arm needs to reach data-parallel SGD's final error; the verdicts on the abstract's two claims ("2-4x faster than a
/// data-parallel implementation of SGD", comparable or better error); Markdown, a JSON twin, and per network test error
/// against effective epochs and against wall time.
/// </summary>
public static class ParleReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The claim's lower end: Parle at least this many times faster than data-parallel SGD to the same error.</summary>
    public const double ClaimedSpeedup = 2;

    /// <summary>Comparable error (ours): within this many points of data-parallel SGD's, or 2 standard errors of the difference if larger.</summary>
    public const double ErrorTolerancePoints = 0.2;

    /// <summary>One evaluation of a run.</summary>
    /// <param name="EffectiveEpochs">Effective epochs summed over the ranks (<see cref="ParleReproduction.TotalEffectiveEpochs"/>).</param>
    /// <param name="Seconds">Wall time since the run started (training and every evaluation so far).</param>
    /// <param name="TestError">Test error (%) of the evaluated weights (the replicas' mean for Parle and Elastic-SGD).</param>
    public readonly record struct Point(double EffectiveEpochs, double Seconds, double TestError);

    /// <summary>A run's evaluations in order (each point once).</summary>
    public static IReadOnlyList<Point> Curve(FinishedRun run, int replicas) =>
        [.. run.History
            .Where(m => m.TestError is double e && double.IsFinite(e))
            .GroupBy(m => m.GradEvals)
            .Select(g => g.Last())
            .OrderBy(m => m.GradEvals)
            .Select(m => new Point(ParleReproduction.TotalEffectiveEpochs(run.Config, m.EffectiveEpochs, replicas), m.TotalSeconds, m.TestError!.Value))];

    /// <summary>The mean curve of runs evaluated on the same grid: point i averages every run's i-th point (for the points all have).</summary>
    public static IReadOnlyList<Point> MeanCurve(IReadOnlyList<IReadOnlyList<Point>> curves)
    {
        if (curves.Count == 0) return [];
        var n = curves.Min(c => c.Count);
        return [.. Enumerable.Range(0, n).Select(i => new Point(curves.Average(c => c[i].EffectiveEpochs), curves.Average(c => c[i].Seconds), curves.Average(c => c[i].TestError)))];
    }

    /// <summary>The first point of <paramref name="curve"/> at or below <paramref name="target"/> (null: never).</summary>
    public static Point? FirstReach(IReadOnlyList<Point> curve, double target)
    {
        foreach (var p in curve)
            if (p.TestError <= target + 1e-9) return p;
        return null;
    }

    /// <summary>The finished, non-diverged runs of one arm of one network.</summary>
    /// <param name="Arm">One of <see cref="ParleReproduction.Arms"/>.</param>
    /// <param name="Runs">Seed and run of each finished, non-diverged run.</param>
    /// <param name="Curves">Each run's evaluations, in the order of <paramref name="Runs"/>.</param>
    /// <param name="Pending">Seeds not finished yet.</param>
    /// <param name="Diverged">Seeds that diverged.</param>
    public sealed record ArmResult(string Arm, IReadOnlyList<(long Seed, FinishedRun Run)> Runs, IReadOnlyList<IReadOnlyList<Point>> Curves, int Pending, int Diverged)
    {
        /// <summary>Final test error statistics (null before any run finished).</summary>
        public Stat? Error => Curves.Count(c => c.Count > 0) == 0 ? null : Stat.Of([.. Curves.Where(c => c.Count > 0).Select(c => c[^1].TestError)]);

        /// <summary>Wall-time statistics of the whole runs.</summary>
        public Stat? Time => Runs.Count == 0 ? null : Stat.Of([.. Runs.Select(r => r.Run.TotalSeconds)]);

        /// <summary>The mean curve over seeds.</summary>
        public IReadOnlyList<Point> Mean => MeanCurve(Curves);
    }

    /// <summary>How long an arm took to reach data-parallel SGD's final mean error.</summary>
    /// <param name="Arm">The arm.</param>
    /// <param name="Reached">The first point of its mean curve at that error (null: not within the budget).</param>
    /// <param name="EpochSpeedup">Data-parallel SGD's effective epochs to its final error over this arm's.</param>
    /// <param name="WallSpeedup">The same in wall seconds.</param>
    public sealed record Reach(string Arm, Point? Reached, double EpochSpeedup, double WallSpeedup);

    /// <summary>One network's results and verdicts.</summary>
    /// <param name="Network">The zoo name.</param>
    /// <param name="SkipReason">Why it did not run (null: it ran).</param>
    /// <param name="Arms">The arms, in <see cref="ParleRunSettings.Arms"/> order.</param>
    /// <param name="Judge">Whether the budget judges claims (not smoke).</param>
    public sealed record NetworkResult(string Network, string? SkipReason, IReadOnlyList<ArmResult> Arms, bool Judge)
    {
        /// <summary>The arm named <paramref name="arm"/> (null when not run).</summary>
        public ArmResult? Of(string arm) => Arms.FirstOrDefault(a => a.Arm == arm);

        /// <summary>Parle and data-parallel SGD each have a finished seed.</summary>
        public bool Complete => SkipReason is null && Of(ParleReproduction.ParleArm)?.Error is not null && Of(ParleReproduction.DataParallelArm)?.Error is not null;

        /// <summary>Data-parallel SGD's final mean test error: the target.</summary>
        public double Target => Of(ParleReproduction.DataParallelArm)?.Error is Stat s ? s.Mean : double.NaN;

        /// <summary>The reach of every arm (data-parallel SGD's own included: where its mean curve first reaches its final mean).</summary>
        public IReadOnlyList<Reach> Reaches
        {
            get
            {
                if (!Complete) return [];
                var dp = FirstReach(Of(ParleReproduction.DataParallelArm)!.Mean, Target);
                return [.. Arms.Where(a => a.Error is not null).Select(a =>
                {
                    var p = FirstReach(a.Mean, Target);
                    return new Reach(a.Arm, p,
                        p is Point q && dp is Point d && q.EffectiveEpochs > 0 ? d.EffectiveEpochs / q.EffectiveEpochs : double.NaN,
                        p is Point r && dp is Point e && r.Seconds > 0 ? e.Seconds / r.Seconds : double.NaN);
                })];
            }
        }

        /// <summary>Parle's reach.</summary>
        public Reach? ParleReach => Reaches.FirstOrDefault(r => r.Arm == ParleReproduction.ParleArm);

        /// <summary>The smaller of Parle's two speed-ups (effective epochs, wall time): the one the verdict uses.</summary>
        public double Speedup => ParleReach is { Reached: not null } r ? Math.Min(r.EpochSpeedup, r.WallSpeedup) : double.NaN;

        /// <summary>Parle's mean final error minus data-parallel SGD's (points).</summary>
        public double ErrorDifference => Complete ? Of(ParleReproduction.ParleArm)!.Error!.Value.Mean - Target : double.NaN;

        /// <summary>The tolerance of "comparable": <see cref="ErrorTolerancePoints"/>, or 2 standard errors of the difference when larger.</summary>
        public double ErrorTolerance
        {
            get
            {
                if (!Complete) return double.NaN;
                var a = Of(ParleReproduction.ParleArm)!.Error!.Value;
                var b = Of(ParleReproduction.DataParallelArm)!.Error!.Value;
                var se = a.Count > 1 && b.Count > 1 ? Math.Sqrt(a.StandardError * a.StandardError + b.StandardError * b.StandardError) : 0;
                return Math.Max(ErrorTolerancePoints, 2 * se);
            }
        }

        /// <summary>agrees / partly / disagrees / not judged on "2-4x faster than data-parallel SGD".</summary>
        public string SpeedVerdict => !Judge ? "not judged (smoke budget)"
            : !Complete ? "not judged: runs missing"
            : ParleReach?.Reached is null ? "disagrees"
            : Speedup >= ClaimedSpeedup ? "agrees"
            : Speedup > 1 ? "partly"
            : "disagrees";

        /// <summary>The speed verdict with its reason.</summary>
        public string SpeedText => !Judge || !Complete ? SpeedVerdict
            : ParleReach?.Reached is null ? $"disagrees: Parle did not reach data-parallel SGD's final {F(Target, "0.00")}% within the same gradient evaluations"
            : $"{SpeedVerdict}: {F(ParleReach!.EpochSpeedup, "0.00")}x in effective epochs, {F(ParleReach.WallSpeedup, "0.00")}x in wall time (claim: 2-4x)";

        /// <summary>agrees / disagrees / not judged on "comparable or better error".</summary>
        public string ErrorVerdict => !Judge ? "not judged (smoke budget)"
            : !Complete ? "not judged: runs missing"
            : ErrorDifference < ErrorTolerance ? "agrees"
            : "disagrees";

        /// <summary>The error verdict with its reason.</summary>
        public string ErrorText => !Judge || !Complete ? ErrorVerdict
            : $"{ErrorVerdict}: {(ErrorDifference <= -ErrorTolerance ? "better" : ErrorDifference < ErrorTolerance ? "comparable" : "worse")} " +
              $"({F(ErrorDifference, "+0.00;-0.00;0.00")} points, tolerance {F(ErrorTolerance, "0.00")})";
    }

    /// <summary>The results of every network.</summary>
    public static IReadOnlyList<NetworkResult> Results(ParleRunSettings s, IReadOnlyList<(ParlePlannedRun Run, FinishedRun? Result)> runs) =>
        [.. s.Networks.Select(network =>
        {
            var skip = ParleReproduction.SkipReason(s, network);
            var arms = skip is not null ? [] : s.Arms.Select(arm =>
            {
                var mine = runs.Where(x => x.Run.Network == network && x.Run.Arm == arm).ToList();
                var ok = mine.Where(x => x.Result is { Diverged: false }).Select(x => (x.Run.Seed, Run: x.Result!)).ToList();
                return new ArmResult(arm, ok, [.. ok.Select(x => Curve(x.Run, s.Replicas))], mine.Count(x => x.Result is null), mine.Count(x => x.Result is { Diverged: true }));
            }).ToList();
            return new NetworkResult(network, skip, arms, s.Budget != Budget.Smoke);
        })];

    /// <summary>The overall verdict on a claim from the networks' verdicts.</summary>
    public static string Overall(IEnumerable<string> verdicts)
    {
        var judged = verdicts.Where(v => v is "agrees" or "partly" or "disagrees").ToList();
        if (judged.Count == 0) return "not judged";
        return judged.All(v => v == "agrees") ? "agrees" : judged.All(v => v == "disagrees") ? "disagrees" : "partly";
    }

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths.</summary>
    public static IReadOnlyList<string> Write(ParleRunSettings s, IReadOnlyList<(ParlePlannedRun Run, FinishedRun? Result)> runs, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Stem(s);
        var results = Results(s, runs);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var plots = new Dictionary<string, (string? Epochs, string? Wall)>();
        foreach (var n in results.Where(n => n.SkipReason is null))
            plots[n.Network] = (
                Plot(s, n, false) is { } e ? figures.TrySave(e, Path.Combine(s.OutDir, $"{stem}-{n.Network}-epochs")) : null,
                Plot(s, n, true) is { } w ? figures.TrySave(w, Path.Combine(s.OutDir, $"{stem}-{n.Network}-wall")) : null);
        var json = Path.Combine(s.OutDir, stem + ".json");
        AtomicFile.WriteAllText(json, Json(s, stem, runs, results).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(s.OutDir, stem + ".md");
        AtomicFile.WriteAllText(markdown, Markdown(s, runs, results, plots));
        written.Add(markdown);
        return written;
    }

    /// <summary>parle[-kK][-BUDGET]: another replica count never overwrites the default's report.</summary>
    public static string Stem(ParleRunSettings s) => Budgets.ReportStem(ParleReproduction.Name +
        (s.Replicas == ParleReproduction.DefaultReplicas ? "" : string.Create(C, $"-k{s.Replicas}")), s.Budget);

    static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, C) : "n/a";

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    static string Title(ParleRunSettings s) =>
        $"Parle against data-parallel SGD with {s.Replicas} replicas at equal gradient evaluations (budget `{Budgets.Name(s.Budget)}`)";

    static Figure? Plot(ParleRunSettings s, NetworkResult n, bool wall)
    {
        var series = new List<LineSeries>();
        foreach (var a in n.Arms)
        {
            var mean = a.Mean;
            if (mean.Count == 0) continue;
            series.Add(new LineSeries(a.Runs.Count > 1 ? $"{ParleReproduction.ArmTitle(a.Arm)}, mean of {a.Runs.Count} seeds" : ParleReproduction.ArmTitle(a.Arm),
                [.. mean.Select(p => wall ? p.Seconds : p.EffectiveEpochs)], [.. mean.Select(p => p.TestError)])
            {
                ShowMarkers = mean.Count <= 40, Dashed = a.Arm == ParleReproduction.DataParallelArm,
            });
        }
        return series.Count == 0 ? null : LinePlot.Create(series,
            wall ? "wall time (s)" : $"effective epochs summed over the {s.Replicas} ranks", "test error (%)",
            new LinePlotOptions { Title = $"{ParleReproduction.Title(n.Network)}: test error against {(wall ? "wall time" : "gradient evaluations")}, {s.Replicas} ranks" });
    }

    static JsonObject Json(ParleRunSettings s, string stem, IReadOnlyList<(ParlePlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkResult> results)
    {
        var json = ReportHeader.Json(stem, Title(s), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = ParleReproduction.Name;
        json["claims"] = new JsonArray(
            "Parle converges 2-4x faster than a data-parallel implementation of SGD (abstract, arXiv 1707.00424)",
            "with comparable or better error rates (abstract: significantly improved error rates)");
        json["budget_description"] = ParleReproduction.DescribeBudget(s.Budget);
        json["replicas"] = s.Replicas;
        json["seeds"] = s.Seeds;
        json["batch_size_per_rank"] = ParleReproduction.BatchSize;
        json["claimed_speedup"] = ClaimedSpeedup;
        json["error_tolerance_points"] = ErrorTolerancePoints;
        var networks = new JsonArray();
        foreach (var n in results)
        {
            var node = new JsonObject { ["network"] = n.Network, ["skipped"] = n.SkipReason };
            if (n.SkipReason is null)
            {
                var arms = new JsonObject();
                foreach (var a in n.Arms)
                {
                    var config = runs.First(x => x.Run.Network == n.Network && x.Run.Arm == a.Arm).Run.Config;
                    var reach = n.Reaches.FirstOrDefault(r => r.Arm == a.Arm);
                    arms[a.Arm] = new JsonObject
                    {
                        ["optimizer"] = config.Optimizer,
                        ["distributed"] = config.Distributed,
                        ["settings"] = ComparisonReport.Settings(config),
                        ["seeds_finished"] = a.Runs.Count,
                        ["seeds_pending"] = a.Pending,
                        ["seeds_diverged"] = a.Diverged,
                        ["test_error_mean"] = a.Error is Stat e ? Number(e.Mean) : null,
                        ["test_error_std"] = a.Error is Stat d ? Number(d.Std) : null,
                        ["seconds_mean"] = a.Time is Stat t ? Number(t.Mean) : null,
                        ["seconds_std"] = a.Time is Stat u ? Number(u.Std) : null,
                        ["reach_effective_epochs"] = reach?.Reached is Point p ? p.EffectiveEpochs : null,
                        ["reach_seconds"] = reach?.Reached is Point q ? q.Seconds : null,
                        ["speedup_effective_epochs"] = reach is null ? null : Number(reach.EpochSpeedup),
                        ["speedup_wall"] = reach is null ? null : Number(reach.WallSpeedup),
                        ["runs"] = new JsonArray([.. a.Runs.Select((r, i) => (JsonNode)new JsonObject
                        {
                            ["seed"] = r.Seed,
                            ["status"] = r.Run.Status,
                            ["test_error"] = a.Curves[i].Count > 0 ? a.Curves[i][^1].TestError : null,
                            ["effective_epochs"] = ParleReproduction.TotalEffectiveEpochs(r.Run.Config, r.Run.EffectiveEpochs, s.Replicas),
                            ["seconds"] = r.Run.TotalSeconds,
                            ["folder"] = Path.GetRelativePath(s.RunsRoot, r.Run.Folder),
                            ["curve"] = new JsonArray([.. a.Curves[i].Select(p => (JsonNode)new JsonArray(p.EffectiveEpochs, p.Seconds, p.TestError))]),
                        })]),
                    };
                }
                node["arms"] = arms;
                node["target_test_error"] = Number(n.Target);
                node["speedup"] = Number(n.Speedup);
                node["speed_verdict"] = n.SpeedVerdict;
                node["error_difference_points"] = Number(n.ErrorDifference);
                node["error_tolerance_points"] = Number(n.ErrorTolerance);
                node["error_verdict"] = n.ErrorVerdict;
            }
            networks.Add(node);
        }
        json["networks"] = networks;
        json["speed_verdict"] = Overall(results.Select(n => n.SpeedVerdict));
        json["error_verdict"] = Overall(results.Select(n => n.ErrorVerdict));
        return json;
    }

    /// <summary>What the shared settings line leaves out of the replica optimizers: the outer momentum and the elastic coupling.</summary>
    static string MeanStd(Stat? stat, string format)
    {
        if (stat is not Stat st) return "n/a";
        return st.Count == 1 ? $"{F(st.Mean, format)} (1 seed)" : $"{F(st.Mean, format)} ± {F(st.Std, format)}";
    }

    static string Markdown(ParleRunSettings s, IReadOnlyList<(ParlePlannedRun Run, FinishedRun? Result)> runs, IReadOnlyList<NetworkResult> results,
        IReadOnlyDictionary<string, (string? Epochs, string? Wall)> plots)
    {
        var md = new StringBuilder();
        var k = s.Replicas;
        var intro = new List<string>
        {
            "Chaudhari et al.'s abstract (Parle, arXiv 1707.00424) says Parle **\"converges 2–4x faster than a data-parallel implementation of SGD\"**, with " +
            "**\"significantly improved error rates\"** and very infrequent communication. Only the abstract's claims are checked against the paper; its tables " +
            "(WRN on CIFAR, LeNet on MNIST) are not reproduced here. We judge two claims: Parle reaches data-parallel SGD's final error 2–4x sooner, and its error " +
            "is comparable or better.",
            $"**Protocol (our design).** {k} MPI ranks on one machine. **Parle**: {k} replicas, one per rank, with the authors' hyper-parameters as the " +
            "`parle` optimizer's defaults have them (docs/parle.md): L = 25 inner steps per synchronisation, inner Nesterov 0.9 at 0.1, no Langevin noise, " +
            "the last inner iterate as the average, gamma from 0.01 growing to at most 1, rho from 1 to at most 10, both growing by the authors' 0.5 / (minibatches " +
            $"per epoch) per outer step; outer Nesterov 0.9 at the baseline's learning rate {ParleReproduction.LearningRate.ToString("G3", C)}. **Data-parallel SGD**: " +
            $"every rank a slice of {ParleReproduction.BatchSize} of each global minibatch of {k} x {ParleReproduction.BatchSize}, gradients averaged by one allreduce " +
            $"per step, Nesterov {ParleReproduction.Momentum.ToString("G3", C)} at {ParleReproduction.LearningRate.ToString("G3", C)}. **Elastic-SGD** (the third arm, " +
            "informative only): SGD replicas with Nesterov 0.9 at 0.1 and Parle's rho, one allreduce per step. Every arm: batch 128 per rank, constant learning rate " +
            "(a trainer epoch of Parle is L passes, so an epoch-based schedule would not be the same schedule in every arm), no weight decay, the same initial " +
            "weights (the seed; rank 0's broadcast), Parle and Elastic-SGD evaluated at the replicas' mean with BatchNorm statistics recollected.",
            $"**Equal cost.** Every arm makes the same number of gradient evaluations of {ParleReproduction.BatchSize} images on every rank, so the same number in " +
            $"total: the x axis is effective epochs summed over the ranks (gradient evaluations x {ParleReproduction.BatchSize} / training images, all ranks). " +
            $"Data-parallel SGD thus makes {k} times as many passes of its {k}-times larger minibatch as each replica makes over the data. Every arm is evaluated on the test set every {ParleReproduction.EvaluationSpacing.ToString("0.##", C)} effective epoch(s) " +
            "on this grid (data-parallel SGD at its epoch ends when they are the grid, Parle at its first outer step past each point), and its wall time includes those evaluations.",
            $"Budget `{Budgets.Name(s.Budget)}`: {ParleReproduction.DescribeBudget(s.Budget)}. {s.Seeds} seed(s) from {s.FirstSeed}. Fashion-MNIST stands in for MNIST.",
        };
        ReportHeader.AppendMarkdown(md, Title(s), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);
        md.AppendLine("Final test error in % (mean ± sample standard deviation over finished seeds) and wall seconds per run. \"Reaches\" is the first point of the " +
                      "arm's mean curve at or below data-parallel SGD's final mean error, in effective epochs / wall seconds; the speed-up divides data-parallel " +
                      "SGD's own first point at that error by Parle's.");
        md.AppendLine($"Verdict rules (ours): **faster** agrees when the smaller of the two speed-ups is at least {ClaimedSpeedup.ToString("0", C)} (the claim's lower end), " +
                      "partly when it is above 1, disagrees when it is at most 1 or Parle never reaches the error; **error** agrees when Parle's mean final error is " +
                      $"below data-parallel SGD's plus a tolerance of {ErrorTolerancePoints.ToString("0.0", C)} points (or 2 standard errors of the difference when larger), " +
                      "disagrees otherwise. Networks combine as: all agree = agrees, all disagree = disagrees, else partly.");
        md.AppendLine();
        md.AppendLine("| network | arm | test error | seconds | reaches DP-SGD's final error at (effective epochs / s) | speed-up (epochs / wall) |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var n in results.Where(n => n.SkipReason is null))
            foreach (var a in n.Arms)
            {
                var reach = n.Reaches.FirstOrDefault(r => r.Arm == a.Arm);
                var at = reach is null ? "n/a" : reach.Reached is Point p ? $"{F(p.EffectiveEpochs, "0.0")} / {F(p.Seconds, "0")}" : "not reached";
                var speed = reach?.Reached is null || a.Arm == ParleReproduction.DataParallelArm ? "–" : $"{F(reach.EpochSpeedup, "0.00")}x / {F(reach.WallSpeedup, "0.00")}x";
                md.AppendLine($"| {ParleReproduction.Title(n.Network)} | {ParleReproduction.ArmTitle(a.Arm)} | {MeanStd(a.Error, "0.00")} | " +
                              $"{(a.Time is Stat t ? F(t.Mean, "0") : "n/a")} | {at} | {speed} |");
            }
        md.AppendLine();
        md.AppendLine("| network | \"2–4x faster than data-parallel SGD\" | \"comparable or better error\" |");
        md.AppendLine("|---|---|---|");
        foreach (var n in results)
            md.AppendLine(n.SkipReason is string why
                ? $"| {ParleReproduction.Title(n.Network)} | skipped: {why} | skipped |"
                : $"| {ParleReproduction.Title(n.Network)} | {n.SpeedText} | {n.ErrorText} |");
        md.AppendLine();
        md.AppendLine($"**Verdict on \"2–4x faster than data-parallel SGD\": {Overall(results.Select(n => n.SpeedVerdict))}.** " +
                      $"**Verdict on \"comparable or better error\": {Overall(results.Select(n => n.ErrorVerdict))}.**");
        md.AppendLine();
        md.AppendLine($"On one machine the ranks share memory, so communication costs little and wall time follows gradient evaluations; the paper's " +
                      $"wall-clock gain also counts communication across machines, which Parle makes {25}x less often than data-parallel SGD (see " +
                      "`widevalley bench distributed` for the scaling model). The wall times come from runs made one after another on a machine that may be " +
                      "shared with other jobs (their spread across seeds shows how much).");
        md.AppendLine();
        foreach (var n in results)
        {
            md.AppendLine($"## {ParleReproduction.Title(n.Network)}");
            md.AppendLine();
            if (n.SkipReason is string why)
            {
                md.AppendLine($"Skipped: {why}.");
                md.AppendLine();
                continue;
            }
            if (plots.TryGetValue(n.Network, out var figure))
            {
                if (figure.Epochs is string e) md.AppendLine($"![{n.Network}: test error against effective epochs]({e})");
                if (figure.Wall is string w) md.AppendLine($"![{n.Network}: test error against wall time]({w})");
                md.AppendLine();
            }
            foreach (var a in n.Arms)
            {
                var config = runs.First(x => x.Run.Network == n.Network && x.Run.Arm == a.Arm).Run.Config;
                md.AppendLine($"{ParleReproduction.ArmTitle(a.Arm)} (`--distributed {config.Distributed}`): {ComparisonReport.Settings(config)}" +
                              (a.Pending > 0 ? $" **{a.Pending} seed(s) not finished yet.**" : "") + (a.Diverged > 0 ? $" {a.Diverged} seed(s) diverged (left out)." : ""));
                md.AppendLine();
                for (var i = 0; i < a.Runs.Count; i++)
                {
                    var (seed, run) = a.Runs[i];
                    var final = a.Curves[i].Count > 0 ? a.Curves[i][^1].TestError : double.NaN;
                    md.AppendLine(string.Create(C, $"- seed {seed}: test error {F(final, "0.00")}%, {ParleReproduction.TotalEffectiveEpochs(run.Config, run.EffectiveEpochs, k):0.##} effective epochs over the ranks, {a.Curves[i].Count} evaluations, {run.TotalSeconds:0.0} s"));
                }
                md.AppendLine();
            }
        }
        return md.ToString();
    }
}
