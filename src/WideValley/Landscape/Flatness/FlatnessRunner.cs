using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace WideValley.Landscape.Flatness;

/// <summary>A model to measure, with its evaluation set.</summary>
public sealed record FlatnessModel
{
    /// <summary>A short name for tables and titles (the file or run folder's name).</summary>
    public required string Name { get; init; }

    /// <summary>Where it came from (a path), for the report.</summary>
    public required string Source { get; init; }

    /// <summary>The network at the weights to measure.</summary>
    public required nn.Module<Tensor, Tensor> Module { get; init; }

    /// <summary>The evaluation set: training samples.</summary>
    public required IReadOnlyList<(Tensor Inputs, Tensor Labels)> Train { get; init; }

    /// <summary>Test samples for the gap, or null.</summary>
    public IReadOnlyList<(Tensor Inputs, Tensor Labels)>? Test { get; init; }

    /// <summary>One line saying what the data is.</summary>
    public string Data { get; init; } = "";

    /// <summary>Loss, parameters, modes and compute type.</summary>
    public LandscapeOptions Landscape { get; init; } = new();

    /// <summary>The hash of the weights as they are now (<see cref="FlatnessIdentity.OfModel"/>; computed on each call, so the runner takes it once per run).</summary>
    public string Id => FlatnessIdentity.OfModel(Module);

    /// <summary>Sizes for the cost estimate.</summary>
    public FlatnessModelSize Size()
    {
        using var hvp = new Hvp(Module, Train, Landscape);
        return new FlatnessModelSize(hvp.Dimension, Train.Sum(b => b.Inputs.shape[0]), Test?.Sum(b => b.Inputs.shape[0]) ?? 0);
    }
}

/// <summary>What the runner is doing, for progress displays and log lines.</summary>
public enum FlatnessEventKind
{
    /// <summary>A model's measurements begin.</summary>
    ModelStarted,

    /// <summary>A measurement begins.</summary>
    MeasureStarted,

    /// <summary>A measurement was already stored under the same settings and is reused.</summary>
    MeasureReused,

    /// <summary>A stored measurement was made under other settings (or is unreadable) and is measured again.</summary>
    MeasureRedone,

    /// <summary>A measurement finished and was stored.</summary>
    MeasureFinished,

    /// <summary>A pair's interpolation was skipped (different architectures).</summary>
    PairSkipped,
}

/// <summary>A progress event.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Model">The model's name (for a pair, "A -> B").</param>
/// <param name="Measure">The measure's name, or null.</param>
/// <param name="Message">One plain line saying it.</param>
public sealed record FlatnessEvent(FlatnessEventKind Kind, string Model, string? Measure, string Message);

/// <summary>How to run: budget, seed, measures, where to store, and whom to tell.</summary>
public sealed record FlatnessRunSettings
{
    /// <summary>The measures' parameters.</summary>
    public required FlatnessBudget Budget { get; init; }

    /// <summary>Seed of every random probe and direction.</summary>
    public long Seed { get; init; }

    /// <summary>The measures (default: all built-in ones).</summary>
    public IReadOnlyList<IFlatnessMeasure> Measures { get; init; } = FlatnessMeasures.All;

    /// <summary>Measure the interpolation between every pair of models.</summary>
    public bool Interpolations { get; init; } = true;

    /// <summary>The output folder; measurements are stored under OUT/.flatness/.</summary>
    public required string OutDir { get; init; }

    /// <summary>Told of every step.</summary>
    public Action<FlatnessEvent>? Events { get; init; }

    /// <summary>Progress inside measures.</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Stops between (and inside) measurements; what is finished stays stored.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>The cost estimate of one measure on one model.</summary>
/// <param name="Measure">The measure's name.</param>
/// <param name="Cost">The work.</param>
/// <param name="Seconds">The work at the model's unit times.</param>
/// <param name="Stored">Whether a measurement under the same settings is already stored (it will be reused, costing nothing).</param>
public sealed record MeasureEstimate(string Measure, MeasureCost Cost, double Seconds, bool Stored);

/// <summary>The cost estimate for one model.</summary>
/// <param name="Model">The model's name.</param>
/// <param name="Id">Its identity.</param>
/// <param name="Size">Its sizes.</param>
/// <param name="Units">Its measured unit times.</param>
/// <param name="Measures">Each measure's estimate.</param>
public sealed record ModelEstimate(string Model, string Id, FlatnessModelSize Size, UnitTimes Units, IReadOnlyList<MeasureEstimate> Measures)
{
    /// <summary>Seconds still to spend (stored measurements excluded).</summary>
    public double SecondsToSpend => Measures.Where(m => !m.Stored).Sum(m => m.Seconds);
}

/// <summary>One model's finished measurement.</summary>
/// <param name="Measure">The measure's name.</param>
/// <param name="Title">Its title.</param>
/// <param name="Rescaling">Whether it is invariant to ReLU rescaling.</param>
/// <param name="RescalingReason">Why.</param>
/// <param name="Estimate">The estimated work.</param>
/// <param name="Reused">Whether it was read from an earlier run rather than measured now.</param>
/// <param name="Result">The values, tables and work done.</param>
public sealed record MeasuredItem(string Measure, string Title, ReluRescaling Rescaling, string RescalingReason, MeasureCost Estimate, bool Reused, MeasureResult Result);

/// <summary>Every measurement of one model.</summary>
/// <param name="Name">The model's name.</param>
/// <param name="Source">Where it came from.</param>
/// <param name="Id">Its identity (weights hash).</param>
/// <param name="Data">What the data is.</param>
/// <param name="Size">Its sizes.</param>
/// <param name="Units">Its unit times.</param>
/// <param name="Measurements">In measure order.</param>
public sealed record ModelMeasurements(string Name, string Source, string Id, string Data, FlatnessModelSize Size, UnitTimes Units, IReadOnlyList<MeasuredItem> Measurements)
{
    /// <summary>The value called <paramref name="name"/>, if any measure reported it.</summary>
    public FlatnessValue? Value(string name) => Measurements.SelectMany(m => m.Result.Values).FirstOrDefault(v => v.Name == name);
}

/// <summary>The interpolation between two models: loss along w(t) = A + t (B - A) on A's evaluation set.</summary>
/// <param name="From">Model A's name.</param>
/// <param name="To">Model B's name.</param>
/// <param name="Reused">Whether it was read from an earlier run.</param>
/// <param name="Result">The barrier value and the curve.</param>
public sealed record PairInterpolation(string From, string To, bool Reused, MeasureResult Result);

/// <summary>Everything a flatness run found: the report writers' input.</summary>
public sealed record FlatnessResults
{
    /// <summary>The budget used.</summary>
    public required FlatnessBudget Budget { get; init; }

    /// <summary>The seed.</summary>
    public long Seed { get; init; }

    /// <summary>One entry per model, in the order given.</summary>
    public required IReadOnlyList<ModelMeasurements> Models { get; init; }

    /// <summary>The interpolations between pairs of models.</summary>
    public IReadOnlyList<PairInterpolation> Interpolations { get; init; } = [];

    /// <summary>Per judged value, which model is flatter and by how many standard errors.</summary>
    public required IReadOnlyList<FlatnessComparisonRow> Comparison { get; init; }

    /// <summary>Wall-clock seconds of the run (measuring and reusing).</summary>
    public double Seconds { get; init; }
}

/// <summary>
/// Measures models one measure at a time, storing each finished measurement atomically as
/// OUT/.flatness/MODEL-ID/MEASURE.json with the settings that produced it. A rerun with the same settings reuses
/// what is stored; a measurement stored under other settings (or damaged) is measured again and replaced, and an
/// event says so. An interruption (the cancellation token) keeps every finished measurement. Over several ranks (the
/// models' <see cref="LandscapeOptions.Collectives"/>; every rank calls with the same models and settings), each rank
/// evaluates its share of every evaluation set, rank 0 reads the store and tells the others what it holds, every rank
/// returns the same results, and rank 0 alone stores (<see cref="WritesFiles"/>).
/// </summary>
public static class FlatnessRunner
{
    /// <summary>The folder under the output folder that holds the stored measurements.</summary>
    public const string StoreFolder = ".flatness";

    /// <summary>The file of a stored measurement.</summary>
    public static string StoredPath(string outDir, string modelId, string measure) => Path.Combine(outDir, StoreFolder, modelId, measure + ".json");

    /// <summary>The file of a stored interpolation between two models.</summary>
    public static string PairPath(string outDir, string fromId, string toId) => Path.Combine(outDir, StoreFolder, "pairs", $"{fromId}-{toId}", "interpolation.json");

    /// <summary>
    /// Times one forward pass, one gradient, one Hessian-vector product and one Gauss-Newton-vector product over the
    /// model's evaluation set (after a warm-up of each), and one single-sample gradient.
    /// </summary>
    public static UnitTimes MeasureUnitTimes(FlatnessModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        using var hvp = new Hvp(model.Module, model.Train, model.Landscape);
        var v = randn(hvp.Dimension, ScalarType.Float64, generator: new Generator(1)).to(hvp.Dtype, hvp.Device);
        double Time(Action action)
        {
            action();
            var watch = Stopwatch.StartNew();
            action();
            action();
            return watch.Elapsed.TotalSeconds / 2;
        }
        var forward = Time(() => hvp.Evaluate());
        var gradient = Time(() => hvp.Gradient().Gradient.Dispose());
        var product = Time(() => hvp.Apply(v).Dispose());
        var (inputs, labels) = model.Train[0];
        using var single = new Hvp(model.Module, [(inputs.narrow(0, 0, 1), labels.narrow(0, 0, 1))], model.Landscape);
        var sampleGradient = Time(() => single.Gradient().Gradient.Dispose());
        using var gaussNewton = new GaussNewton(model.Module, model.Train, model.Landscape);
        var gaussNewtonProduct = Time(() => gaussNewton.Apply(v).Dispose());
        return new UnitTimes(product, forward, gradient, sampleGradient, gaussNewtonProduct);
    }

    /// <summary>The settings key a stored measurement must match to be reused: the measure's budget parameters, the seed, the data and the options.</summary>
    public static string SettingsKey(IFlatnessMeasure measure, FlatnessModel model, FlatnessBudget budget, long seed)
    {
        ArgumentNullException.ThrowIfNull(measure);
        ArgumentNullException.ThrowIfNull(model);
        var key = new JsonObject
        {
            ["measure"] = measure.Name,
            ["settings"] = measure.Settings(budget),
            ["seed"] = seed,
            ["train"] = FlatnessIdentity.OfData(model.Train),
            ["test"] = measure is LossAndGap ? FlatnessIdentity.OfData(model.Test) : null,
            ["options"] = model.Landscape.Describe(),
        };
        return key.ToJsonString();
    }

    /// <summary>
    /// The cost of measuring <paramref name="models"/>: unit times measured on each, multiplied by each measure's
    /// counts; measurements already stored under the same settings cost nothing.
    /// </summary>
    public static IReadOnlyList<ModelEstimate> Estimate(IReadOnlyList<FlatnessModel> models, FlatnessRunSettings settings)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Budget.Validate();
        var estimates = new List<ModelEstimate>();
        foreach (var model in models)
        {
            settings.Cancellation.ThrowIfCancellationRequested();
            var size = model.Size();
            var units = MeasureUnitTimes(model);
            var id = model.Id;
            var measures = settings.Measures.Select(m =>
            {
                var cost = m.Cost(settings.Budget, size);
                var stored = ReadStored(model, StoredPath(settings.OutDir, id, m.Name), SettingsKey(m, model, settings.Budget, settings.Seed), out _) is not null;
                return new MeasureEstimate(m.Name, cost, cost.Seconds(units), stored);
            }).ToList();
            estimates.Add(new ModelEstimate(model.Name, id, size, units, measures));
        }
        return estimates;
    }

    /// <summary>
    /// Measures every model with every measure (reusing what is stored under the same settings), then the
    /// interpolation between every pair of models of the same architecture, and compares the models.
    /// </summary>
    /// <exception cref="OperationCanceledException">Interrupted; every finished measurement is stored.</exception>
    public static FlatnessResults Run(IReadOnlyList<FlatnessModel> models, FlatnessRunSettings settings, IReadOnlyList<ModelEstimate>? estimates = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Budget.Validate();
        if (models.Count == 0) throw new ArgumentException("FlatnessRunner.Run: give at least one model", nameof(models));
        if (File.Exists(settings.OutDir)) throw new IOException($"the output folder {settings.OutDir} is a file");
        var watch = Stopwatch.StartNew();
        var results = new List<ModelMeasurements>();
        var ids = models.Select(m => m.Id).ToList();
        for (var index = 0; index < models.Count; index++)
        {
            var model = models[index];
            var id = ids[index];
            var estimate = estimates?.FirstOrDefault(e => e.Id == id && e.Model == model.Name);
            var size = estimate?.Size ?? model.Size();
            var units = estimate?.Units ?? MeasureUnitTimes(model);
            settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.ModelStarted, model.Name, null, $"{model.Name} (id {id}): {size.Parameters:N0} parameters, {size.TrainSamples:N0} samples"));
            var items = new List<MeasuredItem>();
            foreach (var measure in settings.Measures)
            {
                settings.Cancellation.ThrowIfCancellationRequested();
                var path = StoredPath(settings.OutDir, id, measure.Name);
                var key = SettingsKey(measure, model, settings.Budget, settings.Seed);
                var cost = measure.Cost(settings.Budget, size);
                var stored = ReadStored(model, path, key, out var why);
                if (stored is not null)
                {
                    settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureReused, model.Name, measure.Name, $"{model.Name}: {measure.Name} already measured under these settings ({path})"));
                    items.Add(new MeasuredItem(measure.Name, measure.Title, measure.Rescaling, measure.RescalingReason, cost, true, stored));
                    continue;
                }
                if (why is not null)
                    settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureRedone, model.Name, measure.Name, $"{model.Name}: {measure.Name} is measured again: {why}"));
                settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureStarted, model.Name, measure.Name,
                    $"{model.Name}: {measure.Name} ({cost}; about {Say(cost.Seconds(units))})"));
                var context = new FlatnessContext
                {
                    Model = model.Module, Train = model.Train, Test = model.Test, Landscape = model.Landscape, Budget = settings.Budget, Seed = settings.Seed,
                    Progress = settings.Progress, Cancellation = settings.Cancellation,
                };
                var result = measure.Run(context);
                if (WritesFiles(model)) Store(path, new StoredMeasurement(measure.Name, id, model.Name, key, measure.Settings(settings.Budget), result));
                settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureFinished, model.Name, measure.Name,
                    $"{model.Name}: {measure.Name} done in {Say(result.Seconds)} ({result.Used})"));
                items.Add(new MeasuredItem(measure.Name, measure.Title, measure.Rescaling, measure.RescalingReason, cost, false, result));
            }
            results.Add(new ModelMeasurements(model.Name, model.Source, id, model.Data, size, units, items));
        }

        var pairs = new List<PairInterpolation>();
        if (settings.Interpolations)
            for (var i = 0; i < models.Count; i++)
                for (var j = i + 1; j < models.Count; j++)
                {
                    settings.Cancellation.ThrowIfCancellationRequested();
                    if (Interpolate(models[i], ids[i], models[j], ids[j], settings) is { } pair) pairs.Add(pair);
                }
        return new FlatnessResults
        {
            Budget = settings.Budget,
            Seed = settings.Seed,
            Models = results,
            Interpolations = pairs,
            Comparison = FlatnessComparison.Compare(results),
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }

    private static PairInterpolation? Interpolate(FlatnessModel a, string idA, FlatnessModel b, string idB, FlatnessRunSettings settings)
    {
        var name = $"{a.Name} -> {b.Name}";
        if (!SameArchitecture(a, b))
        {
            settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.PairSkipped, name, "interpolation", $"{name}: no interpolation, the two networks have different parameters"));
            return null;
        }
        var path = PairPath(settings.OutDir, idA, idB);
        var key = PairKey(a, idB, settings.Budget);
        var stored = ReadStored(a, path, key, out var why);
        if (stored is not null)
        {
            settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureReused, name, "interpolation", $"{name}: interpolation already measured ({path})"));
            return new PairInterpolation(a.Name, b.Name, true, stored);
        }
        if (why is not null) settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureRedone, name, "interpolation", $"{name}: interpolation is measured again: {why}"));
        settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureStarted, name, "interpolation", $"{name}: interpolation ({settings.Budget.SlicePoints} forward passes)"));
        var watch = Stopwatch.StartNew();
        using var from = Slices.FlatParameters(a.Module, a.Landscape.Parameters);
        using var to = Slices.FlatParameters(b.Module, a.Landscape.Parameters);
        var points = Slices.Interpolation(a.Module, a.Train, from, to, settings.Budget.SlicePoints, 0, 1, a.Landscape,
            FlatnessMeasures.Named(settings.Progress, "interpolation"), settings.Cancellation);
        // The barrier: the largest rise of the loss above the straight line between the end points' losses.
        var start = points[0].Loss;
        var end = points[^1].Loss;
        var barrier = points.Max(p => p.Loss - ((1 - p.Alpha) * start + p.Alpha * end));
        var result = new MeasureResult
        {
            Measure = "interpolation",
            Values = [new("barrier", "loss barrier above the straight line between the end points", barrier, null, FlatterWhen.NotJudged)],
            Tables = [new FlatnessTable("curve", $"Loss from {a.Name} (t = 0) to {b.Name} (t = 1)", FlatnessPlotKind.Line,
            [
                new FlatnessColumn("t", points.Select(p => p.Alpha).ToArray()),
                new FlatnessColumn("loss", points.Select(p => p.Loss).ToArray()),
                new FlatnessColumn("error_percent", points.Select(p => p.ErrorPercent).ToArray()),
            ])],
            Used = new MeasureCost(0, points.Count, 0),
            Seconds = watch.Elapsed.TotalSeconds,
        };
        if (WritesFiles(a)) Store(path, new StoredMeasurement("interpolation", idA, name, key, [], result));
        settings.Events?.Invoke(new FlatnessEvent(FlatnessEventKind.MeasureFinished, name, "interpolation", $"{name}: interpolation done in {Say(result.Seconds)}"));
        return new PairInterpolation(a.Name, b.Name, false, result);
    }

    /// <summary>Whether two models have the same parameters (names and shapes), so that one can be interpolated to the other.</summary>
    public static bool SameArchitecture(FlatnessModel a, FlatnessModel b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        static IEnumerable<string> Layout(FlatnessModel m) => m.Module.named_parameters().Select(p => $"{p.name}[{string.Join(",", p.parameter.shape)}]");
        return Layout(a).SequenceEqual(Layout(b));
    }

    private static string PairKey(FlatnessModel a, string idB, FlatnessBudget budget) => new JsonObject
    {
        ["measure"] = "interpolation", ["to"] = idB, ["points"] = budget.SlicePoints, ["train"] = FlatnessIdentity.OfData(a.Train),
        ["options"] = a.Landscape.Describe(),
    }.ToJsonString();

    /// <summary>
    /// Seconds the interpolations still to measure will take: for every pair of models of the same architecture whose
    /// interpolation is not stored, <see cref="FlatnessBudget.SlicePoints"/> forward passes at the first model's unit time.
    /// </summary>
    public static double InterpolationSeconds(IReadOnlyList<FlatnessModel> models, IReadOnlyList<ModelEstimate> estimates, FlatnessRunSettings settings)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(estimates);
        ArgumentNullException.ThrowIfNull(settings);
        if (!settings.Interpolations) return 0;
        double seconds = 0;
        for (var i = 0; i < models.Count; i++)
            for (var j = i + 1; j < models.Count; j++)
                if (SameArchitecture(models[i], models[j])
                    && TryReadStored(PairPath(settings.OutDir, estimates[i].Id, estimates[j].Id), PairKey(models[i], estimates[j].Id, settings.Budget), out _) is null)
                    seconds += settings.Budget.SlicePoints * estimates[i].Units.ForwardSeconds;
        return seconds;
    }

    /// <summary>A stored measurement: what it measured, under which settings, and the result.</summary>
    /// <param name="Measure">The measure's name.</param>
    /// <param name="ModelId">The model's identity.</param>
    /// <param name="ModelName">The model's name when it was measured.</param>
    /// <param name="SettingsKey">The key a rerun must match (<see cref="SettingsKey"/>).</param>
    /// <param name="Settings">The measure's budget parameters, for the reader.</param>
    /// <param name="Result">The result.</param>
    public sealed record StoredMeasurement(string Measure, string ModelId, string ModelName, string SettingsKey, JsonObject Settings, MeasureResult Result);

    private static void Store(string path, StoredMeasurement stored)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(stored, FlatnessJson.Options) + "\n");
    }

    /// <summary>
    /// Whether this process writes the store (and, in the command, the report): a single process, or rank 0 of the ranks
    /// in the model's <see cref="LandscapeOptions.Collectives"/>. Every rank measures the same numbers (each product is
    /// summed over the ranks and every probe and direction comes from the same seed); the others write nothing.
    /// </summary>
    public static bool WritesFiles(FlatnessModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return WideValley.Distributed.Collectives.SpeaksForTheJob(model.Landscape.Collectives);
    }

    /// <summary>What every rank is told about a stored measurement: rank 0's reading of the store.</summary>
    private sealed record StoredOnRanks(MeasureResult? Result, string? Why);

    /// <summary>
    /// <see cref="TryReadStored"/> for every rank of the model's collectives alike: rank 0 reads the store and broadcasts
    /// the result (or why there is none), so that every rank reuses or measures the same measurements, which keeps their
    /// collective calls in step. The store need not be visible to the other ranks.
    /// </summary>
    private static MeasureResult? ReadStored(FlatnessModel model, string path, string key, out string? why)
    {
        if (model.Landscape.Collectives is not { Size: > 1 } ranks) return TryReadStored(path, key, out why);
        byte[]? message = null;
        if (ranks.Rank == 0)
        {
            var result = TryReadStored(path, key, out var reason);
            message = JsonSerializer.SerializeToUtf8Bytes(new StoredOnRanks(result, reason), FlatnessJson.Options);
        }
        var shared = JsonSerializer.Deserialize<StoredOnRanks>(Distributed.CollectiveBytes.BroadcastBytes(ranks, message, 0), FlatnessJson.Options)
                     ?? throw new InvalidDataException("FlatnessRunner: rank 0's reading of the store did not arrive");
        why = shared.Why;
        return shared.Result;
    }

    /// <summary>The stored result at <paramref name="path"/> if it was made under <paramref name="key"/>; otherwise null and why (null when there is no file).</summary>
    public static MeasureResult? TryReadStored(string path, string key, out string? why)
    {
        why = null;
        if (!File.Exists(path)) return null;
        StoredMeasurement? stored;
        try
        {
            stored = JsonSerializer.Deserialize<StoredMeasurement>(File.ReadAllText(path), FlatnessJson.Options);
        }
        catch (JsonException e)
        {
            why = $"the stored file {path} is unreadable ({e.Message})";
            return null;
        }
        if (stored?.Result is null)
        {
            why = $"the stored file {path} holds no result";
            return null;
        }
        if (stored.SettingsKey != key)
        {
            why = $"{path} was made under other settings (budget, seed, data or options) and is replaced";
            return null;
        }
        return stored.Result;
    }

    /// <summary>Seconds as a short readable duration.</summary>
    public static string Say(double seconds) => seconds < 60 ? FormattableString.Invariant($"{seconds:0.#} s")
        : seconds < 3600 ? FormattableString.Invariant($"{(int)(seconds / 60)} min {(int)seconds % 60:00} s")
        : FormattableString.Invariant($"{(int)(seconds / 3600)} h {(int)(seconds / 60) % 60:00} min");
}
