using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using WideValley.DeepLinear;

namespace WideValley.Experiments;

/// <summary>One network's trajectory: measurements at the piece's log steps (clean network, clean data, float64).</summary>
/// <param name="Seed">The seed of its teacher, data and start.</param>
/// <param name="Kind">Its noise kind.</param>
/// <param name="Scale">Its sigma_0 (0 for none).</param>
/// <param name="ZeroLoss">L(0) of its problem.</param>
/// <param name="OptimalLoss">L(W*) of its problem (0 unless the narrowest width is below rank(A)).</param>
/// <param name="Loss">L(W) at each log step.</param>
/// <param name="ExcessLoss">L(W) - L(W*).</param>
/// <param name="Distance">||W - W*||_F.</param>
/// <param name="Rank">The product's numerical rank.</param>
/// <param name="Spectrum">The product's singular values, descending, at each log step.</param>
/// <param name="LayerRanks">Each layer's numerical rank at each log step.</param>
public sealed record NoiseRankRun(long Seed, NoiseRankKind Kind, double Scale, double ZeroLoss, double OptimalLoss, double[] Loss, double[] ExcessLoss,
    double[] Distance, int[] Rank, double[][] Spectrum, int[][] LayerRanks)
{
    /// <summary>The condition it ran under.</summary>
    [JsonIgnore]
    public NoiseRankCondition Condition => new(Kind, Scale);

    /// <summary>The product's smallest singular value at each log step.</summary>
    [JsonIgnore]
    public double[] SigmaMin => Spectrum.Select(s => s[^1]).ToArray();

    /// <summary>sigma_(k+1)/sigma_max at each log step: the first singular value a rank-k start lacks, relative to the largest.</summary>
    public double[] RelativeSingularValue(int k) => Spectrum.Select(s => k < s.Length && s[0] > 0 ? s[k] / s[0] : double.NaN).ToArray();

    /// <summary>Whether the final excess loss is at most <paramref name="fraction"/> of L(0) (a finite loss).</summary>
    public bool Reached(double fraction) => double.IsFinite(ExcessLoss[^1]) && ExcessLoss[^1] <= fraction * ZeroLoss;

    /// <summary>The first log index from which the excess loss stays at most <paramref name="fraction"/> of L(0), or null.</summary>
    public int? ReachedFrom(double fraction)
    {
        if (!Reached(fraction)) return null;
        var i = ExcessLoss.Length - 1;
        while (i > 0 && double.IsFinite(ExcessLoss[i - 1]) && ExcessLoss[i - 1] <= fraction * ZeroLoss) i--;
        return i;
    }
}

/// <summary>All runs of one configuration and start: every seed under every condition, trained as one batch.</summary>
/// <param name="Depth">L.</param>
/// <param name="Width">The hidden width.</param>
/// <param name="Dims">d_0 = d_L.</param>
/// <param name="Start">The start.</param>
/// <param name="InitRank">The rank-deficient start's rank in this configuration (recorded for the standard start too).</param>
/// <param name="LogSteps">The steps of the measurements.</param>
/// <param name="Runs">Seeds outer, conditions inner.</param>
/// <param name="Seconds">Wall time of the piece.</param>
public sealed record NoiseRankPiece(int Depth, int Width, int Dims, NoiseRankStart Start, int InitRank, int[] LogSteps, IReadOnlyList<NoiseRankRun> Runs, double Seconds)
{
    /// <summary>The runs of one condition, in seed order.</summary>
    public IReadOnlyList<NoiseRankRun> Of(NoiseRankCondition condition) => Runs.Where(r => r.Kind == condition.Kind && r.Scale == condition.Scale).ToList();
}

/// <summary>What <see cref="NoiseRankExperiment.Run"/> produced.</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Pieces">Configurations outer, starts inner (rank-deficient, then standard).</param>
/// <param name="Interrupted">Cancelled; the finished pieces are on disk and the next run continues.</param>
/// <param name="PiecesComputed">Pieces computed by this call.</param>
/// <param name="PiecesReused">Pieces read from the work folder.</param>
/// <param name="Seconds">Wall time of this call.</param>
public sealed record NoiseRankResult(NoiseRankSettings Settings, IReadOnlyList<NoiseRankPiece> Pieces, bool Interrupted, int PiecesComputed, int PiecesReused, double Seconds);

/// <summary>
/// Noise and the rank of the weight product (seed 004, arXiv 1807.08140; protocol ours): for each (depth, width) and
/// each start (rank-deficient, standard), every seed under every condition (no noise, and each noise kind at each
/// scale) is trained by full-batch gradient descent as one batch of deep linear networks, measuring the loss, the
/// distance to the global optimum, the product's numerical rank and singular spectrum and each layer's rank. One
/// piece per (configuration, start), written atomically to the work folder and read back on the next call.
/// </summary>
public static class NoiseRankExperiment
{
    static readonly JsonSerializerOptions PieceJson = new()
    {
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The work folder of a budget's pieces: RUNS/noise-rank-BUDGET.</summary>
    public static string WorkFolder(string runsRoot, Budget budget) => Path.Combine(runsRoot, $"noise-rank-{Budgets.Name(budget)}");

    /// <summary>The file of one piece.</summary>
    public static string PiecePath(string workFolder, int depth, int width, NoiseRankStart start) =>
        Path.Combine(workFolder, $"L{depth}-w{width}-{NoiseRankSettings.StartName(start)}.json");

    /// <summary>
    /// Runs (or continues) the experiment in <paramref name="workFolder"/>; <paramref name="log"/> receives progress
    /// lines. Cancelling stops between steps; the piece under way is discarded, finished ones are kept.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings.</exception>
    /// <exception cref="InvalidDataException">The work folder holds pieces made with other settings.</exception>
    /// <exception cref="IOException">Another process works in the folder.</exception>
    public static NoiseRankResult Run(NoiseRankSettings settings, string workFolder, Action<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(workFolder);
        using var folderLock = RunFolders.Lock(workFolder);
        CheckKey(settings, workFolder);
        var pieces = new List<NoiseRankPiece>();
        int computed = 0, reused = 0;
        try
        {
            foreach (var (depth, width) in settings.Configurations)
            {
                foreach (var start in new[] { NoiseRankStart.RankDeficient, NoiseRankStart.Standard })
                {
                    cancellation.ThrowIfCancellationRequested();
                    var path = PiecePath(workFolder, depth, width, start);
                    if (Read(path) is { } done)
                    {
                        pieces.Add(done);
                        reused++;
                        continue;
                    }
                    var label = $"L = {depth}, width {width}, {NoiseRankSettings.StartName(start)} start";
                    var piece = Train(settings, depth, width, start, line => log?.Invoke($"{label}: {line}"), cancellation);
                    AtomicFile.WriteAllText(path, JsonSerializer.Serialize(piece, PieceJson) + "\n");
                    computed++;
                    pieces.Add(piece);
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{label}: {piece.Runs.Count} runs in {piece.Seconds:0.0} s"));
                }
            }
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            return new NoiseRankResult(settings, pieces, true, computed, reused, watch.Elapsed.TotalSeconds);
        }
        return new NoiseRankResult(settings, pieces, false, computed, reused, watch.Elapsed.TotalSeconds);
    }

    const string KeyFile = "settings.json";

    static void CheckKey(NoiseRankSettings settings, string folder)
    {
        var path = Path.Combine(folder, KeyFile);
        var key = settings.PieceKey();
        if (File.Exists(path))
        {
            var stored = File.ReadAllText(path).Trim();
            if (stored != key)
                throw new InvalidDataException($"{folder} holds noise-rank pieces made with other settings ({stored}; now {key}); give another --runs folder or delete this one");
            return;
        }
        AtomicFile.WriteAllText(path, key + "\n");
    }

    static NoiseRankPiece? Read(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<NoiseRankPiece>(File.ReadAllText(path), PieceJson) ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a finished piece ({e.Message}); delete it to compute it again", e);
        }
    }

    /// <summary>The seed of problem (teacher and data) number <paramref name="seed"/>.</summary>
    static long ProblemSeed(long seed) => unchecked(seed * 1_000_003 + 11);

    /// <summary>The seed of the start of seed <paramref name="seed"/> (shared by both starts: the rank-deficient one projects the standard one).</summary>
    static long InitSeed(long seed) => unchecked(seed * 1_000_003 + 23);

    static long NoiseSeed(NoiseRankSettings s, int depth, int width, NoiseRankStart start) =>
        unchecked(((s.FirstSeed * 1_000_003 + depth) * 1_000_003 + width) * 4 + (int)start);

    /// <summary>Trains one piece: every seed under every condition of <paramref name="s"/>, one batch.</summary>
    public static NoiseRankPiece Train(NoiseRankSettings s, int depth, int width, NoiseRankStart start, Action<string>? log = null, CancellationToken cancellation = default)
    {
        var watch = Stopwatch.StartNew();
        var widths = s.NetworkWidths(depth, width);
        var dims = s.DimsFor(width);
        var narrowest = widths.Min();
        var initRank = s.InitRankFor(depth, width);
        var conditions = s.Conditions;
        var seeds = Enumerable.Range(0, s.Seeds).Select(i => s.FirstSeed + i).ToArray();
        var problems = seeds.Select(seed => LinearRegressionProblem.Create(dims, dims, s.TeacherSpectrum, s.Samples, s.Inputs, narrowest, ProblemSeed(seed))).ToList();
        try
        {
            var m = seeds.Length * conditions.Count;
            using var nets = new DeepLinearNetworks(m, widths, s.Dtype);
            var problemOf = new int[m];
            var noise = new DeepLinearNoise[m];
            for (var si = 0; si < seeds.Length; si++)
            {
                for (var c = 0; c < conditions.Count; c++)
                {
                    var i = si * conditions.Count + c;
                    problemOf[i] = si;
                    noise[i] = s.NoiseOf(conditions[c]);
                    if (start == NoiseRankStart.Standard) DeepLinearInit.Standard(nets, i, InitSeed(seeds[si]), s.InitScale);
                    else DeepLinearInit.RankDeficient(nets, i, InitSeed(seeds[si]), initRank, s.InitScale);
                }
            }
            using var training = new DeepLinearTraining(nets, problems, problemOf, noise, s.LearningRate, NoiseSeed(s, depth, width, start));
            var logSteps = s.LogSteps;
            var measurements = new List<DeepLinearMeasurement[]> { training.Measure() };
            var next = 1;
            var reportEvery = Math.Max(1, s.Steps / 5);
            for (var t = 1; t <= s.Steps; t++)
            {
                cancellation.ThrowIfCancellationRequested();
                training.Step();
                if (next < logSteps.Length && logSteps[next] == t)
                {
                    measurements.Add(training.Measure());
                    next++;
                }
                if (t % reportEvery == 0 && t < s.Steps)
                {
                    var last = measurements[^1];
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"step {t}/{s.Steps}: mean rank {last.Average(x => x.Rank):0.0}, mean excess loss {last.Average(x => x.ExcessLoss):G3} ({watch.Elapsed.TotalSeconds:0} s)"));
                }
            }
            var runs = new List<NoiseRankRun>();
            for (var si = 0; si < seeds.Length; si++)
            {
                for (var c = 0; c < conditions.Count; c++)
                {
                    var i = si * conditions.Count + c;
                    var series = measurements.Select(ms => ms[i]).ToArray();
                    runs.Add(new NoiseRankRun(seeds[si], conditions[c].Kind, conditions[c].Scale, problems[si].ZeroLoss, problems[si].OptimalLoss,
                        series.Select(x => x.Loss).ToArray(), series.Select(x => x.ExcessLoss).ToArray(), series.Select(x => x.DistanceToOptimum).ToArray(),
                        series.Select(x => x.Rank).ToArray(), series.Select(x => x.Spectrum).ToArray(), series.Select(x => x.LayerRanks).ToArray()));
                }
            }
            return new NoiseRankPiece(depth, width, dims, start, initRank, logSteps, runs, watch.Elapsed.TotalSeconds);
        }
        finally
        {
            foreach (var p in problems) p.Dispose();
        }
    }
}
