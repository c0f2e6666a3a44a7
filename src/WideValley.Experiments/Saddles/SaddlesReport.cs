using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Landscape;
using WideValley.Models;
using WideValley.Reports;

namespace WideValley.Experiments;

/// <summary>
/// The report of <see cref="SaddlesExperiment"/>: the classification table (fractions at each tau, index, degeneracy,
/// gradient norm, verdict counts) per network and optimizer over seeds, small-LeNet's exact spectrum, the semicircle
/// fits with their distances and rivals, one figure per network (bulk density with the fitted semicircle, per
/// optimizer), and the verdicts on the abstract's claims. Markdown, a JSON twin, PNG + SVG.
/// </summary>
public static class SaddlesReport
{
    static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>One claim of the abstract and what the measurements say.</summary>
    /// <param name="Claim">The claim, quoted or paraphrased from the abstract.</param>
    /// <param name="Verdict">agrees, partly, disagrees or not testable.</param>
    /// <param name="Evidence">Why.</param>
    public sealed record ClaimVerdict(string Claim, string Verdict, string Evidence);

    /// <summary>The report's file stem: saddles[-BUDGET].</summary>
    public static string Stem(Budget budget) => Budgets.ReportStem(SaddlesExperiment.Name, budget);

    /// <summary>The classification that speaks for a run: small-LeNet's exact one when its whole Hessian was measured, else SLQ's.</summary>
    static CriticalPointClassification Deciding(SaddlesMeasurement m) => m.Exact is { } e && !IsBlock(m) ? e : m.Slq;

    /// <summary>Whether the run's exact spectrum is of a block (a principal submatrix) rather than of the whole Hessian.</summary>
    static bool IsBlock(SaddlesMeasurement m) => m.Exact is not null && m.ExactDimension != m.Slq.Dimension;

    /// <summary>
    /// Whether the exact block has an eigenvalue below -tau: by Cauchy's interlacing the whole Hessian's smallest eigenvalue
    /// is at most the block's, so the point then has negative curvature. A block index of 0 says nothing about the point.
    /// </summary>
    public static bool BlockProvesNegative(SaddlesMeasurement m) => IsBlock(m) && m.Exact!.Index > 0;

    /// <summary>Whether the point has negative eigenvalues: the deciding classification's, or an exact block's (interlacing).</summary>
    public static bool HasNegative(SaddlesMeasurement m) => Deciding(m).Primary.HasNegative || BlockProvesNegative(m);

    /// <summary>
    /// The point's kind: the deciding classification's, except that a critical point the deciding classification calls a
    /// minimum is a saddle (degenerate or not, by the deciding classification's degeneracy) when its exact block proves a
    /// negative eigenvalue. A block without one never turns a saddle into a minimum.
    /// </summary>
    public static CriticalPointKind Kind(SaddlesMeasurement m)
    {
        var d = Deciding(m);
        if (d.Kind is CriticalPointKind.Minimum or CriticalPointKind.DegenerateMinimum && BlockProvesNegative(m))
            return d.Degeneracy >= d.Criteria.DegenerateFraction ? CriticalPointKind.DegenerateSaddle : CriticalPointKind.Saddle;
        return d.Kind;
    }

    /// <summary>
    /// How far from critical a point is on the scale of its own curvature (ours; the verdict does not use it): with
    /// lambda_max the largest eigenvalue (SLQ's largest Ritz value), one full-batch gradient step of length 1/lambda_max
    /// lowers a quadratic model of the loss by at least |grad|^2 / (2 lambda_max) (the descent lemma), a decrease in the
    /// loss's own units. Returned with that decrease as a fraction of the loss; NaN when lambda_max is not positive.
    /// </summary>
    public static (double Decrease, double OfLoss) CurvatureScaledGradient(SaddlesMeasurement m)
    {
        var lambdaMax = m.Slq.LambdaMax;
        if (!(lambdaMax > 0)) return (double.NaN, double.NaN);
        var decrease = m.GradientNorm * m.GradientNorm / (2 * lambdaMax);
        return (decrease, m.Loss > 0 ? decrease / m.Loss : double.NaN);
    }

    /// <summary>The verdicts on the abstract's three claims, from the measured runs.</summary>
    public static IReadOnlyList<ClaimVerdict> Verdicts(IReadOnlyList<SaddlesMeasurement> measured)
    {
        ClaimVerdict Degenerate(string claim, IReadOnlyList<SaddlesMeasurement> runs)
        {
            if (runs.Count == 0) return new(claim, "not testable", "no run has been measured yet");
            var kinds = runs.Select(Kind).ToList();
            var saddles = kinds.Count(k => k == CriticalPointKind.DegenerateSaddle);
            var minima = kinds.Count(k => k is CriticalPointKind.DegenerateMinimum or CriticalPointKind.Minimum);
            var notCritical = kinds.Count(k => k == CriticalPointKind.NotCritical);
            var degenerate = runs.Count(r => Deciding(r).Degeneracy >= Deciding(r).Criteria.DegenerateFraction);
            var withNegative = runs.Count(HasNegative);
            var blocks = runs.Where(IsBlock).ToList();
            var evidence = string.Create(C,
                $"{runs.Count} measured points: {saddles} degenerate saddles, {minima} minima (degenerate or not), {notCritical} not critical (|grad| above {runs[0].Slq.Criteria.GradientTolerance:G2}); " +
                $"{degenerate} have at least half their eigenvalues within tau = {CriticalPoints.DefaultTau:G1} of zero and {withNegative} have negative eigenvalues (SLQ: a negative mass beyond its stated error; or an exact index above 0)");
            if (blocks.Count > 0)
                evidence += string.Create(C,
                    $"; {blocks.Count(BlockProvesNegative)} of the {blocks.Count} small-LeNet points whose exact block was measured have a block index above 0, which proves negative eigenvalues of the whole Hessian (Cauchy interlacing: lambda_min(H) <= lambda_min(H_bb))");
            if (blocks.Count(b => !BlockProvesNegative(b)) is var silent and > 0)
                evidence += string.Create(C, $"; the other {silent} have block index 0, which proves nothing about the point");
            var verdict = saddles == runs.Count ? "agrees"
                : saddles * 2 >= runs.Count ? "partly"
                : degenerate * 2 >= runs.Count && withNegative * 2 >= runs.Count ? "partly"
                : "disagrees";
            // The claim is about the points training converges to. When training reached none (every point is far from
            // critical, as at a small budget), the runs cannot support or refute it: say so rather than "disagrees".
            if (notCritical == runs.Count)
                return new(claim, "not testable", evidence + "; no point is critical at this tolerance, so training did not reach the kind of point the claim is about " +
                                                  "(train longer: the paper budget)");
            if (verdict != "agrees" && notCritical * 2 > runs.Count)
                evidence += "; most points are not critical at this tolerance, so what training reached here is not a critical point of the measured loss";
            return new(claim, verdict, evidence);
        }
        var all = Degenerate("DNNs converge to saddle points with high degeneracy (\"good saddles\")", measured);
        var pgd = Degenerate("saddle-escaping methods (here perturbed gradient descent) also finally converge to saddles with high degeneracy",
            measured.Where(m => m.Run.Optimizer == "pgd").ToList());
        var fits = measured.SelectMany(m => new[] { m.SlqFit, m.ExactFit }).Where(f => f is not null).Select(f => f!).ToList();
        ClaimVerdict semicircle;
        if (fits.Count == 0) semicircle = new("the Hessian's spectrum follows Wigner's semicircle law", "not testable", "no bulk has been fitted yet");
        else
        {
            var good = fits.Count(f => f.SemicircleFits);
            var closest = fits.GroupBy(f => f.Best.Name).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} closest in {g.Count()}").ToList();
            semicircle = new("the Hessian's spectrum follows Wigner's semicircle law",
                good == fits.Count ? "agrees" : good * 2 >= fits.Count ? "partly" : "disagrees",
                $"{good} of {fits.Count} bulk fits pass the rule (semicircle the closest of semicircle, Gaussian and Marchenko-Pastur, and within the distance bound); {string.Join(", ", closest)}");
        }
        return [all, pgd, semicircle];
    }

    /// <summary>Writes the report files atomically into the settings' output folder and returns their paths (the Markdown last).</summary>
    public static IReadOnlyList<string> Write(SaddlesSettings s, IReadOnlyList<(SaddlesPlannedRun Run, SaddlesMeasurement? Result)> runs,
        IReadOnlyList<(string Network, string Reason)> skipped, Action<string>? warning = null)
    {
        Directory.CreateDirectory(s.OutDir);
        var stem = Stem(s.Budget);
        var written = new List<string>();
        var figures = new ReportFigures(written, warning);
        var plots = new Dictionary<string, string>();
        var measured = runs.Where(r => r.Result is not null).Select(r => r.Result!).ToList();
        foreach (var network in s.Networks)
        {
            if (SlqFigure(network, measured) is { } figure && figures.TrySave(figure, Path.Combine(s.OutDir, $"{stem}-{network}-slq")) is { } png)
                plots[network + "/slq"] = png;
            if (ExactFigure(network, measured) is { } exact && figures.TrySave(exact, Path.Combine(s.OutDir, $"{stem}-{network}-exact")) is { } png2)
                plots[network + "/exact"] = png2;
        }
        var verdicts = Verdicts(measured);
        var json = Path.Combine(s.OutDir, stem + ".json");
        AtomicFile.WriteAllText(json, Json(s, stem, runs, skipped, verdicts).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        written.Add(json);
        var markdown = Path.Combine(s.OutDir, stem + ".md");
        AtomicFile.WriteAllText(markdown, Markdown(s, runs, skipped, verdicts, plots));
        written.Add(markdown);
        return written;
    }

    static string Title(Budget budget) => $"Are saddles good enough? Hessian classification and the semicircle at the end of training (arXiv 1706.02052, budget `{Budgets.Name(budget)}`)";

    static string F(double v, string format = "G3") => double.IsFinite(v) ? v.ToString(format, C) : "n/a";

    static string Pct(double v) => double.IsFinite(v) ? (100 * v).ToString("0.00", C) : "n/a";

    static string MeanStd(IReadOnlyList<double> values, Func<double, string> format)
    {
        var finite = values.Where(double.IsFinite).ToList();
        if (finite.Count == 0) return "n/a";
        var st = Stat.Of(finite);
        return finite.Count == 1 ? format(st.Mean) : $"{format(st.Mean)} ± {format(st.Std)}";
    }

    static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    // ---- figures ----------------------------------------------------------------------------------------------------

    /// <summary>Per optimizer (first measured seed): the SLQ density's bulk, the fitted semicircle and the Gaussian rival.</summary>
    static Figure? SlqFigure(string network, IReadOnlyList<SaddlesMeasurement> measured)
    {
        var panels = new List<LinePanel>();
        foreach (var group in measured.Where(m => m.Run.Network == network && m.SlqFit is not null).GroupBy(m => m.Run.Optimizer))
        {
            var m = group.OrderBy(x => x.Run.Seed).First();
            var fit = m.SlqFit!;
            var lo = fit.Center - 1.6 * fit.Radius;
            var hi = fit.Center + 1.6 * fit.Radius;
            var grid = Enumerable.Range(0, 401).Select(i => lo + (hi - lo) * i / 400).ToArray();
            // The nodes smoothed at a tenth of R on the bulk's range: the default kernel (1% of the whole Ritz range) is wider than the bulk.
            var density = m.Quadrature.Density(400, sigma: fit.Radius / 10, lo: lo, hi: hi);
            // In units of the fit, u = (l - l0) / R, density times R: the panels share one axis, and fits of different widths stay visible.
            var xs = density.Grid.Select(x => (x - fit.Center) / fit.Radius).ToArray();
            var ys = density.Density.Select(y => y * fit.Radius).ToArray();
            var us = grid.Select(x => (x - fit.Center) / fit.Radius).ToArray();
            var gaussian = fit.Candidates.First(c => c.Name == "gaussian").Parameters;
            var series = new List<LineSeries>
            {
                new($"SLQ density, kernel R/10 (seed {m.Run.Seed})", xs, ys),
                new(string.Create(C, $"semicircle l0 {fit.Center:G3}, R {fit.Radius:G3}, W1/R {fit.Semicircle.W1 / fit.Radius:G2}"), us,
                    grid.Select(x => SemicircleFit.Density(x, fit.Center, fit.Radius) * fit.Radius).ToArray()) { Dashed = true },
                new("Gaussian (moments)", us, grid.Select(x => fit.Radius * Math.Exp(-0.5 * Math.Pow((x - gaussian["mean"]) / gaussian["std"], 2)) / (Math.Sqrt(2 * Math.PI) * gaussian["std"])).ToArray()) { Dashed = true },
            };
            panels.Add(new LinePanel("density x R", series) { Title = $"{network}, {group.Key}: bulk (top {SaddlesExperiment.Classes} dropped) and fits", LogY = false });
        }
        return panels.Count == 0 ? null : LinePlot.Stacked(panels, "(eigenvalue - l0) / R", new LinePlotOptions { Title = $"{network}: Hessian bulk by SLQ against Wigner's semicircle" });
    }

    /// <summary>small-LeNet: a histogram of the exact spectrum's bulk (first measured seed per optimizer) with the fitted semicircle.</summary>
    static Figure? ExactFigure(string network, IReadOnlyList<SaddlesMeasurement> measured)
    {
        var panels = new List<LinePanel>();
        foreach (var group in measured.Where(m => m.Run.Network == network && m.ExactFit is not null && m.ExactEigenvalues is not null).GroupBy(m => m.Run.Optimizer))
        {
            var m = group.OrderBy(x => x.Run.Seed).First();
            var fit = m.ExactFit!;
            var bulk = m.ExactEigenvalues!.Take(m.ExactEigenvalues!.Length - SaddlesExperiment.Classes).ToArray();
            // The window around the fitted semicircle: a bulk with a long tail would squeeze it into one bin. The histogram is
            // normalised by the whole bulk, so the mass outside the window is what the curve misses.
            var lo = fit.Center - 3 * fit.Radius;
            var hi = fit.Center + 3 * fit.Radius;
            const int bins = 60;
            var width = (hi - lo) / bins;
            var counts = new double[bins];
            var inView = 0;
            foreach (var v in bulk)
                if (v >= lo && v < hi)
                {
                    counts[Math.Clamp((int)((v - lo) / width), 0, bins - 1)]++;
                    inView++;
                }
            var stepX = new List<double>();
            var stepY = new List<double>();
            for (var b = 0; b < bins; b++)
            {
                var h = counts[b] / (bulk.Length * width);
                stepX.Add(lo + b * width);
                stepY.Add(h);
                stepX.Add(lo + (b + 1) * width);
                stepY.Add(h);
            }
            var grid = Enumerable.Range(0, 401).Select(i => lo + (hi - lo) * i / 400).ToArray();
            panels.Add(new LinePanel("density", [
                new LineSeries(string.Create(C, $"histogram of the bulk (seed {m.Run.Seed}, {100.0 * inView / bulk.Length:0.#}% of {bulk.Length:N0} in view)"), stepX, stepY),
                new LineSeries(string.Create(C, $"semicircle R {fit.Radius:G3}, KS {fit.Semicircle.Ks:G2}"), grid, grid.Select(x => SemicircleFit.Density(x, fit.Center, fit.Radius)).ToArray()) { Dashed = true },
            ]) { Title = $"{network}, {group.Key}: exact spectrum" });
        }
        return panels.Count == 0 ? null : LinePlot.Stacked(panels, "eigenvalue", new LinePlotOptions { Title = $"{network}: exact Hessian bulk against Wigner's semicircle" });
    }

    // ---- JSON ---------------------------------------------------------------------------------------------------------

    static JsonObject Json(SaddlesSettings s, string stem, IReadOnlyList<(SaddlesPlannedRun Run, SaddlesMeasurement? Result)> runs,
        IReadOnlyList<(string Network, string Reason)> skipped, IReadOnlyList<ClaimVerdict> verdicts)
    {
        var json = ReportHeader.Json(stem, Title(s.Budget), s.Budget, s.CommandLine, s.Machine);
        json["experiment"] = SaddlesExperiment.Name;
        json["budget_description"] = SaddlesExperiment.DescribeBudget(s.Budget);
        json["compute_fraction"] = SaddlesExperiment.ComputeFraction(s.Budget);
        json["seeds"] = s.Seeds;
        json["taus"] = new JsonArray(CriticalPoints.DefaultTaus.Select(t => (JsonNode?)t).ToArray());
        json["primary_tau"] = CriticalPoints.DefaultTau;
        json["gradient_tolerance"] = new CriticalPointCriteria().GradientTolerance;
        json["degenerate_fraction"] = new CriticalPointCriteria().DegenerateFraction;
        json["skipped"] = new JsonArray(skipped.Select(x => (JsonNode?)new JsonObject { ["network"] = x.Network, ["reason"] = x.Reason }).ToArray());
        json["runs"] = new JsonArray(runs.Select(x =>
        {
            var (run, m) = x;
            var o = new JsonObject
            {
                ["network"] = run.Network,
                ["optimizer"] = run.Optimizer,
                ["seed"] = run.Seed,
                ["folder"] = Path.GetRelativePath(s.RunsRoot, run.Folder),
                ["status"] = m is null ? "pending" : "measured",
            };
            if (m is null) return (JsonNode?)o;
            o["test_error"] = m.Training.Final?.TestError is double t ? t : null;
            o["training_seconds"] = m.Training.TotalSeconds;
            o["loss"] = Number(m.Loss);
            o["gradient_norm"] = Number(m.GradientNorm);
            var (decrease, ofLoss) = CurvatureScaledGradient(m);
            o["descent_lemma_decrease"] = Number(decrease);
            o["descent_lemma_decrease_of_loss"] = Number(ofLoss);
            o["pgd_perturbations"] = m.Perturbations is double p ? p : null;
            o["slq"] = m.Slq.ToJson();
            o["slq_semicircle"] = m.SlqFit?.ToJson();
            o["exact"] = m.Exact?.ToJson();
            o["exact_semicircle"] = m.ExactFit?.ToJson();
            o["fit_error"] = m.FitError;
            o["measurement_seconds"] = Number(m.Seconds);
            return o;
        }).ToArray());
        json["training_seconds"] = runs.Where(r => r.Result is not null).Sum(r => r.Result!.Training.TotalSeconds);
        json["measurement_seconds"] = runs.Where(r => r.Result is not null && double.IsFinite(r.Result.Seconds)).Sum(r => r.Result!.Seconds);
        json["verdicts"] = new JsonArray(verdicts.Select(v => (JsonNode?)new JsonObject { ["claim"] = v.Claim, ["verdict"] = v.Verdict, ["evidence"] = v.Evidence }).ToArray());
        return json;
    }

    // ---- Markdown ---------------------------------------------------------------------------------------------------------

    static string Markdown(SaddlesSettings s, IReadOnlyList<(SaddlesPlannedRun Run, SaddlesMeasurement? Result)> runs,
        IReadOnlyList<(string Network, string Reason)> skipped, IReadOnlyList<ClaimVerdict> verdicts, IReadOnlyDictionary<string, string> plots)
    {
        var md = new StringBuilder();
        var criteria = new CriticalPointCriteria();
        var intro = new List<string>
        {
            "The abstract of \"Are saddles good enough?\" (arXiv 1706.02052) claims that deep networks converge to **saddle points with high degeneracy**, " +
            "that **saddle-escaping methods finally converge to such saddles too**, and that the Hessian **verifies Wigner's semicircle law**. Only the abstract is " +
            "available to us: the paper's Sec. 5.1 statistics (its eigenvalue bands), networks, optimizers and numbers are **not**, so every threshold and protocol " +
            "below is **ours** (docs/seed-004.md).",
            $"**Protocol (ours).** Each network is trained on {(s.Cifar10Dir is null ? "Fashion-MNIST (standing in for MNIST)" : "Fashion-MNIST and CIFAR-10")} with SGD (momentum 0.9, lr 0.05), " +
            "Adam (lr 1e-3), Entropy-SGD (lr 1, Nesterov 0.9, the paper's Langevin settings) and perturbed gradient descent (Jin et al. 2017: lr 0.1 gradient steps, a uniform kick of radius 0.05 " +
            "when the minibatch gradient's norm is at most 0.5, at most one per 50 steps), batch 128, constant learning rate, equal gradient evaluations. At the end of training the Hessian of the " +
            "mean training loss over the first training images is measured in evaluation mode (BatchNorm running statistics, dropout off), with the full-batch gradient norm over the same images. " +
            $"Bands: fraction of eigenvalues below -tau (normalised index), within [-tau, tau] (degeneracy) and above tau, tau in {{1e-4, 1e-3, 1e-2}}; the verdict uses tau = {F(CriticalPoints.DefaultTau, "G1")} " +
            $"(Choromanska et al.'s cut-off), a gradient tolerance of {F(criteria.GradientTolerance, "G2")} (above it a point is *not critical*, whatever its Hessian) and calls a point *degenerate* when at least " +
            $"{F(100 * criteria.DegenerateFraction, "0")}% of its eigenvalues are within tau. A degenerate point with negative eigenvalues is a degenerate saddle; without them it is a degenerate *minimum*, not a saddle.",
            "**Spectra.** SLQ over the whole Hessian for every network: the band fractions integrate the density smoothed by a Gaussian of width tau/10 over each band, with a stated error " +
            "(the weight of nodes within 3 kernel widths of ±tau plus 2Φ(−3); the Chebyshev-Markov-Stieltjes bracket at each band edge, i.e. the weight of the Gauss nodes on either side of it, since a node is not an eigenvalue and a heavy node near zero may stand for mass on either side of -tau; plus three standard errors across probes); " +
            "\"negative eigenvalues\" then means a negative mass above its error, and a large error means that SLQ at this size cannot tell. " +
            $"small-LeNet also gets an exact spectrum ({(SaddlesExperiment.Measurement(s.Budget).ExactParameters is string p ? $"of the block of `{p}` only: a principal submatrix, whose index is a lower bound on the whole Hessian's (Cauchy interlacing), while its degeneracy says nothing about the whole" : "of the whole Hessian")}). " +
            $"Semicircle: the top C = {SaddlesExperiment.Classes} eigenvalues (the number of classes; SLQ: a mass of C/n) are dropped as outliers; the bulk is fitted by least squares (exact: to a histogram; SLQ: least W1 to the nodes' distribution) " +
            "and compared with a Gaussian and a Marchenko-Pastur law fitted by moments. Rule (ours): the semicircle fits when it is the closest of the three and its KS distance is within Kolmogorov's 1% bound 1.63/√n (exact), or its W1 distance is below 5% of R (SLQ).",
            $"Budget `{Budgets.Name(s.Budget)}`: {SaddlesExperiment.DescribeBudget(s.Budget)}; {SaddlesExperiment.ComputeFraction(s.Budget)}. {s.Seeds} seed(s) from {s.FirstSeed}.",
        };
        ReportHeader.AppendMarkdown(md, Title(s.Budget), intro, s.Budget, "A smoke run: these numbers only show that every step ran; they judge nothing.", s.CommandLine, s.Machine);

        var finished = runs.Where(r => r.Result is not null).Select(r => r.Result!).ToList();
        if (finished.Count > 0)
            md.AppendLine(string.Create(C, $"Wall time of the {finished.Count} measured runs: {finished.Sum(m => m.Training.TotalSeconds) / 60:0.0} min training and " +
                                          $"{finished.Where(m => double.IsFinite(m.Seconds)).Sum(m => m.Seconds) / 60:0.0} min measuring (summed over runs, on the machine above; it is shared, so these include waiting)."))
              .AppendLine();
        md.AppendLine("## Verdicts");
        md.AppendLine();
        md.AppendLine("| claim (abstract) | verdict | evidence |");
        md.AppendLine("|---|---|---|");
        foreach (var v in verdicts) md.AppendLine($"| {v.Claim} | **{v.Verdict}** | {v.Evidence} |");
        md.AppendLine();
        foreach (var (network, reason) in skipped) md.AppendLine($"- {network} skipped: {reason}.");
        if (skipped.Count > 0) md.AppendLine();

        md.AppendLine("## Classification at the end of training (SLQ, whole Hessian)");
        md.AppendLine();
        md.AppendLine("Mean ± sample standard deviation over seeds. Fractions in %, negative / near zero / positive; ± is the spread over seeds (each fraction's own stated error is in the JSON).");
        md.AppendLine();
        md.AppendLine("| network | optimizer | seeds | test error (%) | \\|grad\\| | tau 1e-4 | tau 1e-3 | tau 1e-2 | index (tau 1e-3) | degeneracy | stated error (tau 1e-3) | verdicts |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var group in runs.GroupBy(r => (r.Run.Network, r.Run.Optimizer)))
        {
            var done = group.Where(g => g.Result is not null).Select(g => g.Result!).ToList();
            if (done.Count == 0)
            {
                md.AppendLine($"| {group.Key.Network} | {group.Key.Optimizer} | 0 of {group.Count()} | pending | | | | | | | | |");
                continue;
            }
            string Band(int i) => string.Join(" / ",
                new Func<EigenvalueBands, double>[] { b => b.Negative, b => b.NearZero, b => b.Positive }.Select(f => MeanStd(done.Select(d => f(d.Slq.Bands[i])).ToList(), Pct)));
            var kinds = string.Join(", ", done.GroupBy(d => d.Slq.KindName).Select(k => $"{k.Count()} {k.Key}"));
            md.AppendLine($"| {group.Key.Network} | {group.Key.Optimizer} | {done.Count} of {group.Count()} | {MeanStd(done.Select(d => d.Training.Final?.TestError ?? double.NaN).ToList(), v => F(v, "0.00"))} | " +
                          $"{MeanStd(done.Select(d => d.GradientNorm).ToList(), v => F(v))} | {Band(0)} | {Band(1)} | {Band(2)} | " +
                          $"{MeanStd(done.Select(d => (double)d.Slq.Index).ToList(), v => F(v, "0"))} | {MeanStd(done.Select(d => d.Slq.Degeneracy).ToList(), Pct)}% | ±{MeanStd(done.Select(d => d.Slq.Bands[1].Error).ToList(), Pct)}% | {kinds} |");
        }
        md.AppendLine();
        md.AppendLine("### How far from critical (ours)");
        md.AppendLine();
        md.AppendLine(string.Create(C, $"The verdicts call a point critical when its full-batch |grad| is at most {criteria.GradientTolerance:G2} (ours, unchanged). On the scale of each point's own curvature: ") +
                                      "one full-batch gradient step of length 1/λmax (λmax: SLQ's largest Ritz value) lowers a quadratic model of the loss by at least |grad|²/(2 λmax) (the descent lemma). " +
                                      "A decrease that is a sizeable share of the loss means the point is far from critical; a negligible one, that it is nearly critical at the resolution of its sharpest direction. " +
                                      "Mean ± sample standard deviation over seeds; this measure is ours and the verdicts do not use it.");
        md.AppendLine();
        md.AppendLine("| network | optimizer | loss | \\|grad\\| | λmax (SLQ) | \\|grad\\|²/(2 λmax) | share of the loss (%) |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var group in runs.GroupBy(r => (r.Run.Network, r.Run.Optimizer)))
        {
            var done = group.Where(g => g.Result is not null).Select(g => g.Result!).ToList();
            if (done.Count == 0) continue;
            md.AppendLine($"| {group.Key.Network} | {group.Key.Optimizer} | {MeanStd(done.Select(d => d.Loss).ToList(), v => F(v))} | {MeanStd(done.Select(d => d.GradientNorm).ToList(), v => F(v))} | " +
                          $"{MeanStd(done.Select(d => d.Slq.LambdaMax).ToList(), v => F(v))} | {MeanStd(done.Select(d => CurvatureScaledGradient(d).Decrease).ToList(), v => F(v))} | " +
                          $"{MeanStd(done.Select(d => CurvatureScaledGradient(d).OfLoss).ToList(), Pct)} |");
        }
        md.AppendLine();
        var pgdRuns = runs.Where(r => r.Result?.Perturbations is not null).Select(r => r.Result!).ToList();
        if (pgdRuns.Count > 0)
        {
            md.AppendLine("PGD kicks per run: " + string.Join(", ", pgdRuns.Select(r => $"{r.Run.Network} seed {r.Run.Seed}: {F(r.Perturbations!.Value, "0")}")) + ".");
            md.AppendLine();
        }

        var exact = runs.Where(r => r.Result?.Exact is not null).Select(r => r.Result!).ToList();
        if (exact.Count > 0)
        {
            md.AppendLine("## small-LeNet: exact spectrum");
            md.AppendLine();
            var block = SaddlesExperiment.Measurement(s.Budget).ExactParameters;
            md.AppendLine(block is null ? "The whole Hessian." : $"The block of `{block}` (a principal submatrix H_bb of the Hessian).");
            md.AppendLine();
            md.AppendLine("| optimizer | seed | n | \\|grad\\| | tau 1e-4 (%) | tau 1e-3 (%) | tau 1e-2 (%) | index (tau 1e-3) | λmin | λmax | what it shows |");
            md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var m in exact)
            {
                var e = m.Exact!;
                string Band(int i) => $"{Pct(e.Bands[i].Negative)} / {Pct(e.Bands[i].NearZero)} / {Pct(e.Bands[i].Positive)}";
                var shows = !IsBlock(m) ? e.KindName
                    : BlockProvesNegative(m) ? "the whole Hessian has a negative eigenvalue (interlacing)"
                    : "nothing about the point (block index 0)";
                md.AppendLine($"| {m.Run.Optimizer} | {m.Run.Seed} | {e.Dimension:N0} | {F(m.GradientNorm)} | {Band(0)} | {Band(1)} | {Band(2)} | {e.Index} | {F(e.LambdaMin)} | {F(e.LambdaMax)} | {shows} |");
            }
            md.AppendLine();
            if (exact.Any(IsBlock))
            {
                md.AppendLine("This is a block of the Hessian, so only one direction of the argument holds. By Cauchy's interlacing the whole Hessian's smallest eigenvalue is at most the block's " +
                              "(lambda_min(H) <= lambda_min(H_bb)): a block index above 0 **proves** that the whole Hessian has a negative eigenvalue (the verdicts count it), while a block index of 0 " +
                              "**proves nothing** about the point, and the block's degeneracy says nothing about the whole Hessian's. The block spans two layers on purpose: small-LeNet is piecewise linear (ReLU, max-pooling), " +
                              "so its logits are locally linear in any one layer's weights and, cross-entropy of a softmax being convex in the logits, every single layer's block is positive semi-definite " +
                              "by construction (index 0 whatever the point: the output layer's `body.fc4` and the inner `body.conv2` both measured λmin of order -1e-7 at this budget, i.e. rounding). " +
                              "Only the cross terms between layers can make a block indefinite. The whole Hessian is measured exactly at the paper budget.");
                md.AppendLine();
            }
            if (plots.TryGetValue(ModelZoo.SmallLeNetName + "/exact", out var png))
            {
                md.AppendLine($"![small-LeNet exact bulk with the fitted semicircle]({png})");
                md.AppendLine();
            }
        }

        md.AppendLine("## Semicircle fits");
        md.AppendLine();
        md.AppendLine("| network | optimizer | seed | source | l0 | R | semicircle distance | Gaussian | Marchenko-Pastur | closest | fits |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var m in runs.Where(r => r.Result is not null).Select(r => r.Result!))
            foreach (var fit in new[] { m.ExactFit, m.SlqFit }.Where(f => f is not null).Select(f => f!))
            {
                var slq = fit.Source == "slq";
                string D(string name) => fit.Candidates.FirstOrDefault(c => c.Name == name) is { } c ? (slq ? $"W1 {F(c.W1)}" : $"KS {F(c.Ks)}") : "n/a";
                md.AppendLine($"| {m.Run.Network} | {m.Run.Optimizer} | {m.Run.Seed} | {fit.Source} | {F(fit.Center)} | {F(fit.Radius)} | {D("semicircle")}" +
                              (slq ? $" ({F(fit.Semicircle.W1 / fit.Radius, "0.00")} R)" : $" (bound {F(fit.KsBound)})") +
                              $" | {D("gaussian")} | {D("marchenko-pastur")} | {fit.Best.Name} | {(fit.SemicircleFits ? "yes" : "no")} |");
            }
        md.AppendLine();
        foreach (var network in s.Networks)
            if (plots.TryGetValue(network + "/slq", out var png))
            {
                md.AppendLine($"![{network}: SLQ bulk and the fitted semicircle]({png})");
                md.AppendLine();
            }
        var failures = runs.Where(r => r.Result?.FitError is not null).Select(r => $"{r.Run.Label}: {r.Result!.FitError}").ToList();
        if (failures.Count > 0)
        {
            md.AppendLine("Fits that could not be made: " + string.Join("; ", failures) + ".");
            md.AppendLine();
        }
        var pending = runs.Count(r => r.Result is null);
        if (pending > 0)
        {
            md.AppendLine($"**{pending} of {runs.Count} runs are not trained and measured yet; run the same command again to continue.**");
            md.AppendLine();
        }
        return md.ToString();
    }
}
