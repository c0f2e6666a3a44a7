using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Benchmarks;
using WideValley.Cli.Commands.Reproduce;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Experiments.Flatness;
using WideValley.Landscape;
using WideValley.Landscape.Flatness;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley bench flatness --model lenet`: issue 20's speed targets for the flatness report. A zoo network is
/// initialised with --seed and trained briefly (a few SGD epochs on the evaluation samples, so the point measured is
/// not a random initialisation); then, per round, the whole report is made as `widevalley flatness` makes it (unit
/// times, every measure through <see cref="FlatnessRunner"/>, the report files written into a temporary folder) and
/// timed. Each measure's wall seconds are compared with the seconds its counted work (<see cref="MeasureResult.Used"/>)
/// takes at the measured unit times (target: at most <see cref="CostTarget"/>x), and the whole report with
/// <see cref="WallTargetSeconds"/>.
/// </summary>
public static class BenchFlatnessCommand
{
    /// <summary>Largest accepted ratio of a measure's wall seconds to the seconds its counted HVPs, passes and gradients take.</summary>
    public const double CostTarget = 1.2;

    /// <summary>Largest accepted wall time of the whole standard report (10 minutes on the 2-core machine).</summary>
    public const double WallTargetSeconds = 600;

    /// <summary>Training minibatch of the brief training that moves the network off its random initialisation.</summary>
    public const int TrainBatchSize = 100;

    /// <summary>Learning rate of that training (SGD, momentum <see cref="TrainMomentum"/>).</summary>
    public const double TrainLearningRate = 0.02;

    /// <summary>Momentum of that training.</summary>
    public const double TrainMomentum = 0.9;

    /// <summary>Samples per forward pass of the evaluation set: `widevalley flatness`'s default.</summary>
    public const int EvaluationBatchSize = 500;

    /// <summary>What the command line asks for.</summary>
    internal sealed record Options
    {
        public string Model { get; init; } = ModelZoo.LeNetName;
        public string Data { get; init; } = ConnectBenchmarkData.FashionMnist;
        public string? DataDir { get; init; }
        public int Samples { get; init; } = 1000;
        public string Budget { get; init; } = "standard";
        public string? Measures { get; init; }
        public int Epochs { get; init; } = 3;
        public long Seed { get; init; }
        public int Threads { get; init; }
        public int Rounds { get; init; } = 1;
        public int UnitRepeats { get; init; } = 5;

        /// <summary>Refuses what cannot be run, naming the option; returns the budget and measures.</summary>
        /// <exception cref="UsageException">The first bad option.</exception>
        public (FlatnessBudget Budget, IReadOnlyList<IFlatnessMeasure> Measures) Validate()
        {
            if (!ModelZoo.Names.Contains(Model))
                throw new UsageException($"--model: unknown network '{Model}'; known: {string.Join(", ", ModelZoo.Names)}");
            if (ModelZoo.Describe(Model).Kind != ModelKind.Classifier)
                throw new UsageException($"--model: '{Model}' is a {ModelZoo.Describe(Model).Kind switch { ModelKind.LanguageModel => "language model", var k => k.ToString() }}; " +
                                         "the flatness bench measures image classifiers (e.g. lenet, mnistfc)");
            if (!ConnectBenchmarkData.All.Contains(Data))
                throw new UsageException($"--data {Data}: expected {string.Join(" or ", ConnectBenchmarkData.All)}");
            if (Samples < 1) throw new UsageException($"--samples must be at least 1, got {Samples}");
            if (Epochs < 1) throw new UsageException($"--epochs must be at least 1 (the network is trained briefly so that the point is not a random initialisation), got {Epochs}");
            if (Rounds < 1) throw new UsageException($"--rounds must be at least 1, got {Rounds}");
            if (UnitRepeats < 1) throw new UsageException($"--unit-repeats must be at least 1, got {UnitRepeats}");
            if (Threads < 0) throw new UsageException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
            return (FlatnessCommand.ParseBudget(Budget, null, null), FlatnessCommand.ParseMeasures(Measures));
        }
    }

    /// <summary>One measure in one round: the estimate, the counted work, the wall seconds and the unit times of that round.</summary>
    internal sealed record MeasureRound(MeasureCost Estimate, MeasureCost Used, double Seconds, double SelfTimedSeconds, UnitTimes Units);

    /// <summary>One measure over every round, judged.</summary>
    /// <param name="Measure">Its name.</param>
    /// <param name="Estimate">The work stated up front (<see cref="IFlatnessMeasure.Cost"/>).</param>
    /// <param name="Used">The work it did, counted by the operators (first round; the seed fixes it).</param>
    /// <param name="Seconds">Median wall seconds (runner's MeasureStarted to MeasureFinished: the measure and the storing of its result).</param>
    /// <param name="SelfTimedSeconds">Median of the seconds the measure timed itself (<see cref="MeasureResult.Seconds"/>).</param>
    /// <param name="PredictedSeconds">Median of the used work at each round's unit times.</param>
    /// <param name="EstimatedSeconds">Median of the estimate at each round's unit times (what `widevalley flatness` states before measuring).</param>
    /// <param name="Ratio">Median over rounds of wall seconds / predicted seconds (NaN when no work was counted).</param>
    /// <param name="RoundSeconds">Each round's wall seconds.</param>
    /// <param name="RoundRatios">Each round's ratio.</param>
    internal sealed record MeasureRow(string Measure, MeasureCost Estimate, MeasureCost Used, double Seconds, double SelfTimedSeconds, double PredictedSeconds,
        double EstimatedSeconds, double Ratio, IReadOnlyList<double> RoundSeconds, IReadOnlyList<double> RoundRatios)
    {
        /// <summary>Whether the ratio is at most <see cref="CostTarget"/> (false when no work was counted).</summary>
        public bool Met => Ratio <= CostTarget;

        /// <summary>"met", "missed" or why there is no ratio.</summary>
        public string Status => double.IsNaN(Ratio) ? "no work counted" : Met ? "met" : "missed";
    }

    /// <summary>One round of the whole report: its parts' seconds.</summary>
    /// <param name="Units">The unit times the bench measured before it (medians of <see cref="Options.UnitRepeats"/> timings): they predict each measure's seconds.</param>
    /// <param name="UnitSeconds">Seconds of sizing, hashing and timing the units (FlatnessRunner.Estimate).</param>
    /// <param name="MeasureSeconds">Seconds of FlatnessRunner.Run (every measure, storing, comparing).</param>
    /// <param name="WriteSeconds">Seconds of writing the report files (Markdown, HTML, JSON, CSV, plots).</param>
    /// <param name="Files">Files the report wrote.</param>
    /// <param name="RunnerUnits">The unit times the report itself measured (once each, as `widevalley flatness` does for its estimate).</param>
    internal sealed record ReportRound(UnitTimes Units, double UnitSeconds, double MeasureSeconds, double WriteSeconds, int Files, UnitTimes RunnerUnits)
    {
        /// <summary>The whole report's wall seconds.</summary>
        public double TotalSeconds => UnitSeconds + MeasureSeconds + WriteSeconds;
    }

    /// <summary>Everything the bench measured.</summary>
    internal sealed record Result(Options Options, FlatnessBudget Budget, long Parameters, string DataDescription, int TestSamples, double TrainSeconds,
        double TrainLoss, double TrainErrorPercent, IReadOnlyList<MeasureRow> Rows, IReadOnlyList<ReportRound> Rounds, int Threads, int? Niceness, double? OtherProcessesShare)
    {
        /// <summary>Median over rounds of the whole report's wall seconds.</summary>
        public double ReportSeconds => Median(Rounds.Select(r => r.TotalSeconds).ToList());

        /// <summary>Whether the whole report took at most <see cref="WallTargetSeconds"/>.</summary>
        public bool ReportMet => ReportSeconds <= WallTargetSeconds;
    }

    /// <summary>Wall seconds over predicted seconds; NaN when nothing was predicted (no counted work).</summary>
    internal static double Ratio(double measuredSeconds, double predictedSeconds) => predictedSeconds > 0 ? measuredSeconds / predictedSeconds : double.NaN;

    /// <summary>The median (the mean of the middle two for an even count).</summary>
    internal static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("a median needs at least one value", nameof(values));
        var sorted = values.Order().ToArray();
        var n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    }

    /// <summary>A measure's row from its rounds: medians of the seconds and of the per-round ratios.</summary>
    internal static MeasureRow Row(string measure, IReadOnlyList<MeasureRound> rounds)
    {
        ArgumentNullException.ThrowIfNull(rounds);
        if (rounds.Count == 0) throw new ArgumentException($"{measure}: no rounds", nameof(rounds));
        var ratios = rounds.Select(r => Ratio(r.Seconds, r.Used.Seconds(r.Units))).ToList();
        return new MeasureRow(measure, rounds[0].Estimate, rounds[0].Used,
            Median(rounds.Select(r => r.Seconds).ToList()),
            Median(rounds.Select(r => r.SelfTimedSeconds).ToList()),
            Median(rounds.Select(r => r.Used.Seconds(r.Units)).ToList()),
            Median(rounds.Select(r => r.Estimate.Seconds(r.Units)).ToList()),
            ratios.Any(double.IsNaN) ? double.NaN : Median(ratios),
            rounds.Select(r => r.Seconds).ToList(), ratios);
    }

    /// <summary>The subcommand, to be added to `bench` (whose range checks then cover its numeric options).</summary>
    public static Command Create(CliContext ctx)
    {
        var defaults = new Options();
        var model = new Option<string>("--model") { Description = "Zoo image classifier (lenet, mnistfc, small-lenet, small-mnistfc, ...), initialised with --seed and trained for --epochs.", DefaultValueFactory = _ => defaults.Model };
        var data = new Option<string>("--data") { Description = $"Images: {string.Join(" or ", ConnectBenchmarkData.All)} (the evaluation set is the first --samples training images).", DefaultValueFactory = _ => defaults.Data };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder holding Fashion-MNIST's files (default: the usual search, see 'widevalley data list')." };
        var samples = new Option<int>("--samples") { Description = "Samples of the evaluation set (and test samples for the gap, or all if fewer).", DefaultValueFactory = _ => defaults.Samples };
        var budget = new Option<string>("--budget") { Description = $"Flatness budget: {string.Join(", ", FlatnessBudget.Names)}.", DefaultValueFactory = _ => defaults.Budget };
        var measures = new Option<string?>("--measures") { Description = $"Comma-separated measures (default all: {string.Join(", ", FlatnessMeasures.All.Select(m => m.Name))})." };
        var epochs = new Option<int>("--epochs") { Description = $"SGD epochs (lr {TrainLearningRate.ToString(CultureInfo.InvariantCulture)}, momentum {TrainMomentum.ToString(CultureInfo.InvariantCulture)}, batch {TrainBatchSize}) on the evaluation samples before measuring.", DefaultValueFactory = _ => defaults.Epochs };
        var seed = new Option<long>("--seed") { Description = "Seed of the weights, the training order, synthetic data and every probe.", DefaultValueFactory = _ => defaults.Seed };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var rounds = new Option<int>("--rounds") { Description = "Whole reports made and timed (medians); each takes minutes at the standard budget.", DefaultValueFactory = _ => defaults.Rounds };
        var unitRepeats = new Option<int>("--unit-repeats") { Description = "Unit timings (FlatnessRunner.MeasureUnitTimes) before each round whose medians predict each measure's seconds (not part of the report's time).", DefaultValueFactory = _ => defaults.UnitRepeats };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var output = new Option<string?>("--out") { Description = "Also write the JSON object to this file (atomically)." };
        var report = new Option<string?>("--report") { Description = "Also write a Markdown report to this .md file and the JSON beside it (.json)." };
        var command = new Command("flatness",
            $"Time the flatness report (`widevalley flatness`) of a briefly trained zoo network: each measure's wall seconds against the seconds its counted " +
            $"HVPs, forward passes and gradients take at the measured unit times (target <= {CostTarget.ToString(CultureInfo.InvariantCulture)}x), and the whole report " +
            $"(target <= {WallTargetSeconds.ToString(CultureInfo.InvariantCulture)} s for LeNet at the standard budget on 1,000 samples).")
        {
            model, data, dataDir, samples, budget, measures, epochs, seed, threads, rounds, unitRepeats, json, output, report,
        };
        command.SetAction(p =>
        {
            var options = new Options
            {
                Model = p.GetValue(model)!,
                Data = p.GetValue(data)!,
                DataDir = p.GetValue(dataDir),
                Samples = p.GetValue(samples),
                Budget = p.GetValue(budget)!,
                Measures = p.GetValue(measures),
                Epochs = p.GetValue(epochs),
                Seed = p.GetValue(seed),
                Threads = p.GetValue(threads),
                Rounds = p.GetValue(rounds),
                UnitRepeats = p.GetValue(unitRepeats),
            };
            var (flatnessBudget, chosen) = options.Validate();
            var reportPath = BenchOutputs.ReportPath(p.GetValue(report));
            var outPath = p.GetValue(output) is string file ? Path.GetFullPath(file) : null;
            var asJson = p.GetValue(json);
            var progress = asJson ? ctx.Error : ctx.Out;
            progress.WriteLine($"bench flatness: {options.Model} on {options.Samples:N0} {options.Data} samples, {flatnessBudget.Name} budget, {chosen.Count} measures, " +
                               $"{options.Rounds} round(s)");
            var result = Run(options, flatnessBudget, chosen, line => progress.WriteLine("  " + line));
            BenchOutputs.Write(ctx, p, asJson, outPath, reportPath, options.Threads, ToJson(result),
                (commandLine, machine, jsonName) => Markdown(result, commandLine, machine, jsonName), Summary(result));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Loads the data, trains the network briefly, then makes and times the whole report <see cref="Options.Rounds"/> times.</summary>
    internal static Result Run(Options o, FlatnessBudget budget, IReadOnlyList<IFlatnessMeasure> measures, Action<string> log)
    {
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(o.Threads);
        using var dataset = LoadData(o);
        if (o.Samples > dataset.Train.Count)
            throw new UsageException($"--samples {o.Samples}: {dataset.Name} has only {dataset.Train.Count:N0} training samples; ask for at most {dataset.Train.Count:N0}");
        var trainInputs = dataset.Train.Inputs.narrow(0, 0, o.Samples);
        var trainLabels = dataset.Train.Labels.narrow(0, 0, o.Samples);
        var testSamples = (int)Math.Min(o.Samples, dataset.Test.Count);
        var dataDescription = $"{dataset.Name}: the first {o.Samples:N0} training images ({dataset.Source}), {testSamples:N0} test images for the gap";

        TorchRuntime.Seed(o.Seed);
        using var module = (nn.Module<Tensor, Tensor>)ModelZoo.Create(o.Model, new ModelOptions
        {
            InputChannels = (int)dataset.SampleShape[0], ImageSize = (int)dataset.SampleShape[^1], NumClasses = dataset.NumClasses,
        });
        var parameters = ModelZoo.CountParameters(module);
        var trainWatch = Stopwatch.StartNew();
        var (trainLoss, trainError) = TrainBriefly(module, trainInputs, trainLabels, o);
        var trainSeconds = trainWatch.Elapsed.TotalSeconds;
        log(FormattableString.Invariant($"{o.Model} ({parameters:N0} parameters): {o.Epochs} SGD epochs on the evaluation samples in {trainSeconds:0.0} s; training loss {trainLoss:0.0000}, error {trainError:0.0}%"));

        var model = new FlatnessModel
        {
            Name = o.Model,
            Source = $"zoo {o.Model}, seed {o.Seed}, {o.Epochs} SGD epochs on the evaluation samples",
            Module = module,
            Train = MeasurableRun.Batches(trainInputs, trainLabels, o.Samples, EvaluationBatchSize),
            Test = MeasurableRun.Batches(dataset.Test.Inputs, dataset.Test.Labels, testSamples, EvaluationBatchSize),
            Data = dataDescription,
            Landscape = new LandscapeOptions(),
        };
        var machine = ReproduceOptions.Machine(o.Threads);
        var perMeasure = measures.ToDictionary(m => m.Name, _ => new List<MeasureRound>());
        var reports = new List<ReportRound>();
        var share = CpuShare.Start();
        for (var round = 0; round < o.Rounds; round++)
        {
            var units = MedianUnitTimes(model, o.UnitRepeats);
            var (report, items) = TimeOneReport(model, units, budget, measures, o.Seed, machine, log, round + 1);
            reports.Add(report);
            foreach (var (name, timed) in items) perMeasure[name].Add(timed);
        }
        var rows = measures.Select(m => Row(m.Name, perMeasure[m.Name])).ToList();
        return new Result(o, budget, parameters, dataDescription, testSamples, trainSeconds, trainLoss, trainError, rows, reports, get_num_threads(),
            Niceness(), share.OtherProcessesShare());
    }

    /// <summary>
    /// One whole report into a fresh temporary folder (deleted afterwards): unit times, every measure, the report files.
    /// Each measure's wall seconds run from the runner's MeasureStarted event to its MeasureFinished event.
    /// </summary>
    static (ReportRound Report, List<(string Measure, MeasureRound Timed)> Items) TimeOneReport(FlatnessModel model, UnitTimes units, FlatnessBudget budget,
        IReadOnlyList<IFlatnessMeasure> measures, long seed, string machine, Action<string> log, int round)
    {
        var outDir = Directory.CreateTempSubdirectory("widevalley-bench-flatness-").FullName;
        try
        {
            var clock = Stopwatch.StartNew();
            var started = new Dictionary<string, double>();
            var seconds = new Dictionary<string, double>();
            var settings = new FlatnessRunSettings
            {
                Budget = budget, Seed = seed, Measures = measures, Interpolations = false, OutDir = outDir,
                Events = e =>
                {
                    if (e.Measure is null) return;
                    if (e.Kind == FlatnessEventKind.MeasureStarted) started[e.Measure] = clock.Elapsed.TotalSeconds;
                    else if (e.Kind == FlatnessEventKind.MeasureFinished)
                    {
                        seconds[e.Measure] = clock.Elapsed.TotalSeconds - started[e.Measure];
                        log($"round {round}: {e.Message}");
                    }
                },
            };
            var estimates = FlatnessRunner.Estimate([model], settings);
            var unitSeconds = clock.Elapsed.TotalSeconds;
            var runnerUnits = estimates[0].Units;
            log(FormattableString.Invariant($"round {round}: unit times (medians of the bench's timings) HVP {units.HvpSeconds * 1e3:0.0} ms, forward {units.ForwardSeconds * 1e3:0.0} ms, ") +
                FormattableString.Invariant($"gradient {units.GradientSeconds * 1e3:0.0} ms, sample gradient {units.SampleGradientSeconds * 1e3:0.00} ms, Gauss-Newton product {units.GaussNewtonSeconds * 1e3:0.0} ms; ") +
                FormattableString.Invariant($"the report's own timing: HVP {runnerUnits.HvpSeconds * 1e3:0.0} ms, forward {runnerUnits.ForwardSeconds * 1e3:0.0} ms, ") +
                FormattableString.Invariant($"gradient {runnerUnits.GradientSeconds * 1e3:0.0} ms; estimated {FlatnessRunner.Say(estimates[0].SecondsToSpend)}"));
            var results = FlatnessRunner.Run([model], settings, estimates);
            var measured = clock.Elapsed.TotalSeconds;
            var files = FlatnessReport.Write(results, outDir, new FlatnessReportContext { Command = "widevalley bench flatness", Machine = machine, Estimates = estimates });
            var total = clock.Elapsed.TotalSeconds;
            var items = new List<(string, MeasureRound)>();
            foreach (var item in results.Models[0].Measurements)
            {
                var timed = new MeasureRound(item.Estimate, item.Result.Used, seconds[item.Measure], item.Result.Seconds, units);
                items.Add((item.Measure, timed));
                var predicted = timed.Used.Seconds(units);
                log(FormattableString.Invariant($"round {round}: {item.Measure}: {timed.Seconds:0.00} s wall; predicted {predicted:0.00} s from the work done, ratio {Ratio(timed.Seconds, predicted):0.000}"));
            }
            var report = new ReportRound(units, unitSeconds, measured - unitSeconds, total - measured, files.Files.Count, runnerUnits);
            log(FormattableString.Invariant($"round {round}: whole report {report.TotalSeconds:0.0} s (unit times {report.UnitSeconds:0.0} s, measures {report.MeasureSeconds:0.0} s, files {report.WriteSeconds:0.0} s)"));
            return (report, items);
        }
        finally
        {
            Directory.Delete(outDir, recursive: true);
        }
    }

    /// <summary>
    /// The median of <paramref name="repeats"/> unit timings, per unit: the report's own timing (two repetitions after a
    /// warm-up) moves by several times when other processes share the machine, and would make a ratio measure the noise.
    /// </summary>
    static UnitTimes MedianUnitTimes(FlatnessModel model, int repeats)
    {
        var timings = Enumerable.Range(0, repeats).Select(_ => FlatnessRunner.MeasureUnitTimes(model)).ToList();
        return new UnitTimes(Median(timings.Select(t => t.HvpSeconds).ToList()), Median(timings.Select(t => t.ForwardSeconds).ToList()),
            Median(timings.Select(t => t.GradientSeconds).ToList()), Median(timings.Select(t => t.SampleGradientSeconds).ToList()),
            Median(timings.Select(t => t.GaussNewtonSeconds).ToList()));
    }

    /// <summary>SGD with momentum over the evaluation samples in a seeded random order; returns the loss and error (%) afterwards in eval mode.</summary>
    static (double Loss, double ErrorPercent) TrainBriefly(nn.Module<Tensor, Tensor> module, Tensor inputs, Tensor labels, Options o)
    {
        var n = inputs.shape[0];
        using var generator = new Generator((ulong)o.Seed);
        using (var sgd = optim.SGD(module.parameters(), TrainLearningRate, TrainMomentum))
        {
            module.train();
            for (var epoch = 0; epoch < o.Epochs; epoch++)
            {
                using var scope = NewDisposeScope();
                var order = randperm(n, generator: generator);
                for (long start = 0; start < n; start += TrainBatchSize)
                {
                    using var step = NewDisposeScope();
                    var index = order.narrow(0, start, Math.Min(TrainBatchSize, n - start));
                    sgd.zero_grad();
                    var loss = nn.functional.cross_entropy(module.call(inputs.index_select(0, index)), labels.index_select(0, index));
                    loss.backward();
                    sgd.step();
                }
            }
        }
        module.eval();
        using var noGrad = no_grad();
        using var evaluation = NewDisposeScope();
        double lossSum = 0, wrong = 0;
        for (long start = 0; start < n; start += EvaluationBatchSize)
        {
            var length = Math.Min(EvaluationBatchSize, n - start);
            var x = inputs.narrow(0, start, length);
            var y = labels.narrow(0, start, length);
            var output = module.call(x);
            lossSum += nn.functional.cross_entropy(output, y).item<float>() * length;
            wrong += output.argmax(1).ne(y).sum().item<long>();
        }
        return (lossSum / n, 100.0 * wrong / n);
    }

    static ClassificationDataset LoadData(Options o)
    {
        if (o.Data == ConnectBenchmarkData.Synthetic)
        {
            using var generator = new Generator((ulong)o.Seed);
            using var scope = NewDisposeScope();
            var train = new LabeledData(randn([o.Samples, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [o.Samples], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            var test = new LabeledData(randn([o.Samples, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [o.Samples], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            return new ClassificationDataset { Name = "synthetic", Train = train, Test = test, Source = "standard normal images, uniform labels" };
        }
        return DatasetCatalog.LoadClassification(o.Data, new DataOptions { DataDir = o.DataDir });
    }

    /// <summary>The nice value of this process (field 19 of /proc/self/stat), null where unknown.</summary>
    static int? Niceness()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.TryParse(fields[16], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var nice) ? nice : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    static JsonObject Cost(MeasureCost c) => new()
    {
        ["hvps"] = c.Hvps, ["forward_passes"] = Math.Round(c.ForwardPasses, 4), ["gradients"] = c.Gradients, ["sample_gradients"] = c.SampleGradients, ["gauss_newton_products"] = c.GaussNewtonProducts,
    };

    static JsonNode? Number(double value, int digits) => double.IsFinite(value) ? JsonValue.Create(Math.Round(value, digits)) : null;

    static JsonArray Numbers(IEnumerable<double> values, int digits) => new(values.Select(v => Number(v, digits)).ToArray());

    /// <summary>The result with snake_case keys; null where a ratio has no counted work.</summary>
    internal static JsonObject ToJson(Result r) => new()
    {
        ["benchmark"] = "flatness",
        ["model"] = r.Options.Model,
        ["parameters"] = r.Parameters,
        ["data"] = r.DataDescription,
        ["samples"] = r.Options.Samples,
        ["test_samples"] = r.TestSamples,
        ["budget"] = r.Budget.Name,
        ["seed"] = r.Options.Seed,
        ["training"] = new JsonObject
        {
            ["epochs"] = r.Options.Epochs, ["learning_rate"] = TrainLearningRate, ["momentum"] = TrainMomentum, ["batch_size"] = TrainBatchSize,
            ["seconds"] = Math.Round(r.TrainSeconds, 3), ["loss"] = Number(r.TrainLoss, 6), ["error_percent"] = Number(r.TrainErrorPercent, 3),
        },
        ["rounds"] = r.Rounds.Count,
        ["unit_times"] = new JsonObject
        {
            ["hvp_seconds"] = Numbers(r.Rounds.Select(x => x.Units.HvpSeconds), 6),
            ["forward_seconds"] = Numbers(r.Rounds.Select(x => x.Units.ForwardSeconds), 6),
            ["gradient_seconds"] = Numbers(r.Rounds.Select(x => x.Units.GradientSeconds), 6),
            ["sample_gradient_seconds"] = Numbers(r.Rounds.Select(x => x.Units.SampleGradientSeconds), 7),
            ["gauss_newton_seconds"] = Numbers(r.Rounds.Select(x => x.Units.GaussNewtonSeconds), 6),
            ["repeats"] = r.Options.UnitRepeats,
        },
        ["runner_unit_times"] = new JsonObject
        {
            ["hvp_seconds"] = Numbers(r.Rounds.Select(x => x.RunnerUnits.HvpSeconds), 6),
            ["forward_seconds"] = Numbers(r.Rounds.Select(x => x.RunnerUnits.ForwardSeconds), 6),
            ["gradient_seconds"] = Numbers(r.Rounds.Select(x => x.RunnerUnits.GradientSeconds), 6),
            ["sample_gradient_seconds"] = Numbers(r.Rounds.Select(x => x.RunnerUnits.SampleGradientSeconds), 7),
            ["gauss_newton_seconds"] = Numbers(r.Rounds.Select(x => x.RunnerUnits.GaussNewtonSeconds), 6),
        },
        ["target_ratio"] = CostTarget,
        ["measures"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
        {
            ["measure"] = row.Measure,
            ["estimate"] = Cost(row.Estimate),
            ["used"] = Cost(row.Used),
            ["seconds"] = Number(row.Seconds, 3),
            ["self_timed_seconds"] = Number(row.SelfTimedSeconds, 3),
            ["predicted_seconds"] = Number(row.PredictedSeconds, 3),
            ["estimated_seconds"] = Number(row.EstimatedSeconds, 3),
            ["ratio"] = Number(row.Ratio, 4),
            ["target_met"] = row.Met,
            ["status"] = row.Status,
            ["round_seconds"] = Numbers(row.RoundSeconds, 3),
            ["round_ratios"] = Numbers(row.RoundRatios, 4),
        }).ToArray()),
        ["report"] = new JsonObject
        {
            ["seconds"] = Number(r.ReportSeconds, 2),
            ["target_seconds"] = WallTargetSeconds,
            ["target_met"] = r.ReportMet,
            ["round_seconds"] = Numbers(r.Rounds.Select(x => x.TotalSeconds), 2),
            ["unit_timing_seconds"] = Numbers(r.Rounds.Select(x => x.UnitSeconds), 2),
            ["measures_seconds"] = Numbers(r.Rounds.Select(x => x.MeasureSeconds), 2),
            ["writing_seconds"] = Numbers(r.Rounds.Select(x => x.WriteSeconds), 2),
            ["files"] = r.Rounds[0].Files,
        },
        ["threads"] = r.Threads,
        ["niceness"] = r.Niceness,
        ["other_processes_cpu_share"] = r.OtherProcessesShare is { } s ? Math.Round(s, 3) : null,
        ["processors"] = Environment.ProcessorCount,
    };

    static string F(double value, string format) => double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : "-";

    static string Work(MeasureCost c)
    {
        var parts = new List<string>();
        if (c.Hvps > 0) parts.Add($"{F(c.Hvps, "0")} HVP");
        if (c.ForwardPasses > 0) parts.Add($"{F(c.ForwardPasses, "0.##")} fwd");
        if (c.Gradients > 0) parts.Add($"{F(c.Gradients, "0")} grad");
        if (c.SampleGradients > 0) parts.Add($"{F(c.SampleGradients, "0")} sample grad");
        if (c.GaussNewtonProducts > 0) parts.Add($"{F(c.GaussNewtonProducts, "0")} GN");
        return parts.Count == 0 ? "none" : string.Join(" + ", parts);
    }

    /// <summary>The result as plain text lines.</summary>
    internal static IEnumerable<string> Summary(Result r)
    {
        foreach (var row in r.Rows)
            yield return $"{row.Measure}: {F(row.Seconds, "0.00")} s, predicted {F(row.PredictedSeconds, "0.00")} s from {Work(row.Used)}, ratio {F(row.Ratio, "0.000")} " +
                         $"(target <= {F(CostTarget, "0.0")}: {row.Status})";
        yield return $"whole report: {F(r.ReportSeconds, "0.0")} s (target <= {F(WallTargetSeconds, "0")} s: {(r.ReportMet ? "met" : "missed")})";
    }

    /// <summary>A Markdown report of <paramref name="r"/>, quoting <paramref name="command"/> and <paramref name="machine"/>.</summary>
    internal static string Markdown(Result r, string command, string machine, string jsonFileName)
    {
        var o = r.Options;
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# The flatness report's speed (`bench flatness`)").AppendLine();
        md.AppendLine(string.Format(c,
            "Issue 20's speed targets: the {0} flatness report of {1} on {2:N0} samples within {3:0} s ({4:0} minutes), and each measure's wall time within " +
            "{5:0.0}x of the seconds its work takes: the Hessian-vector products, forward passes, gradients, per-sample gradients and Gauss-Newton products it did " +
            "(counted by the operators, `MeasureResult.Used`) at the unit times: before each round the bench times the units as `widevalley flatness` " +
            "does (`FlatnessRunner.MeasureUnitTimes`: each unit twice after a warm-up) {6} times and takes the medians, outside the report's time; " +
            "the report's own single timing is shown beside them.",
            r.Budget.Name, o.Model, o.Samples, WallTargetSeconds, WallTargetSeconds / 60, CostTarget, o.UnitRepeats));
        md.AppendLine();
        md.AppendLine(string.Format(c,
            "The network: zoo {0} ({1:N0} parameters), initialised with seed {2}, then trained for {3} epoch(s) of SGD (lr {4}, momentum {5}, batch {6}) on the " +
            "evaluation samples in {7:0.0} s, so that the point measured is not a random initialisation (training loss {8:0.0000}, error {9:0.0}% afterwards). " +
            "Data: {10}. Evaluation batches of {11}; BatchNorm on running statistics, dropout off (the flatness command's defaults). " +
            "Each round makes the whole report into a fresh temporary folder (nothing is reused): unit times, every measure through the flatness runner, " +
            "then the report files (Markdown, HTML, JSON, CSV and plots). A measure's seconds run from the runner's start event to its finish event " +
            "(the measure and the storing of its result); with several rounds every number is a median over rounds.",
            o.Model, r.Parameters, o.Seed, o.Epochs, TrainLearningRate, TrainMomentum, TrainBatchSize, r.TrainSeconds, r.TrainLoss, r.TrainErrorPercent,
            r.DataDescription, EvaluationBatchSize));
        md.AppendLine();
        md.AppendLine("```sh").AppendLine(command).AppendLine("```").AppendLine();
        md.AppendLine($"Machine: {machine}.").AppendLine();
        md.AppendLine(string.Format(c, "{0} round(s); {1} libtorch threads{2}{3}.", r.Rounds.Count, r.Threads,
            r.Niceness is { } n ? $", nice {n}" : "",
            r.OtherProcessesShare is { } s ? string.Format(c, "; other processes used {0:0}% of the machine's CPU meanwhile{1}", 100 * s,
                s > 0.05 ? " (a shared machine: times are slower and noisier than on an idle one)" : "") : ""));
        md.AppendLine();

        md.AppendLine("## Unit times").AppendLine();
        md.AppendLine("| unit | seconds (the bench's medians; median over rounds) | the report's own timing |");
        md.AppendLine("|---|---|---|");
        string Unit(Func<UnitTimes, double> pick, string format) =>
            $"{F(Median(r.Rounds.Select(x => pick(x.Units)).ToList()), format)} | {F(Median(r.Rounds.Select(x => pick(x.RunnerUnits)).ToList()), format)}";
        md.AppendLine($"| HVP over the evaluation set | {Unit(u => u.HvpSeconds, "0.0000")} |");
        md.AppendLine($"| forward pass over it | {Unit(u => u.ForwardSeconds, "0.0000")} |");
        md.AppendLine($"| gradient over it | {Unit(u => u.GradientSeconds, "0.0000")} |");
        md.AppendLine($"| one sample's gradient | {Unit(u => u.SampleGradientSeconds, "0.000000")} |");
        md.AppendLine($"| Gauss-Newton product over the evaluation set | {Unit(u => u.GaussNewtonSeconds, "0.0000")} |");
        md.AppendLine();

        md.AppendLine("## Per measure and the whole report").AppendLine();
        md.AppendLine("`estimate` is the work stated up front (an upper bound where a method may stop early); `used` the work done; `predicted` the used work " +
                      "at the unit times; `ratio` = measured / predicted.");
        md.AppendLine();
        md.AppendLine("| measure | estimate | used | estimated s | predicted s | measured s | ratio | target | |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var row in r.Rows)
            md.AppendLine($"| {row.Measure} | {Work(row.Estimate)} | {Work(row.Used)} | {F(row.EstimatedSeconds, "0.00")} | {F(row.PredictedSeconds, "0.00")} | " +
                          $"{F(row.Seconds, "0.00")} | **{F(row.Ratio, "0.000")}** | <= {F(CostTarget, "0.0")} | {(row.Met ? "met" : $"**{row.Status}**")} |");
        var last = r.Rounds.Count == 1 ? r.Rounds[0] : null;
        var parts = last is null ? "median over rounds"
            : $"unit times {F(last.UnitSeconds, "0.0")} s + measures {F(last.MeasureSeconds, "0.0")} s + files {F(last.WriteSeconds, "0.0")} s";
        md.AppendLine($"| **whole report** | {parts} | | {F(r.Rows.Sum(x => x.EstimatedSeconds), "0.0")} | {F(r.Rows.Sum(x => x.PredictedSeconds), "0.0")} | " +
                      $"**{F(r.ReportSeconds, "0.0")}** | | <= {F(WallTargetSeconds, "0")} s | {(r.ReportMet ? "met" : "**missed**")} |");
        md.AppendLine();
        var met = r.Rows.Count(x => x.Met);
        md.AppendLine($"{met} of {r.Rows.Count} measures within {F(CostTarget, "0.0")}x" +
                      (met == r.Rows.Count ? "" : ": " + string.Join("; ", r.Rows.Where(x => !x.Met).Select(x => $"{x.Measure} at {F(x.Ratio, "0.000")}"))) +
                      $"; the whole report {(r.ReportMet ? "within" : "over")} {F(WallTargetSeconds / 60, "0")} minutes ({F(r.ReportSeconds, "0.0")} s).");
        md.AppendLine();
        md.AppendLine($"Raw output: [{jsonFileName}]({jsonFileName}) (the same object `--json` prints, with every round's numbers).");
        return md.ToString();
    }
}
