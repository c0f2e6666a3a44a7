using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Benchmarks;

/// <summary>What to measure in <see cref="Seed004Benchmark"/>.</summary>
public sealed record Seed004BenchmarkOptions
{
    /// <summary>Zoo image classifiers to measure (default: LeNet-BN and the HTR authors' LeNet).</summary>
    public IReadOnlyList<string> Models { get; init; } = [ModelZoo.LeNetName, ModelZoo.LeNet5Name];
    /// <summary>Images: <see cref="ConnectBenchmarkData.FashionMnist"/> or <see cref="ConnectBenchmarkData.Synthetic"/>.</summary>
    public string Data { get; init; } = ConnectBenchmarkData.FashionMnist;
    /// <summary>Folder holding Fashion-MNIST's files (null: the catalogue's usual search).</summary>
    public string? DataDir { get; init; }
    /// <summary>Minibatch size (the HTR authors' Fashion-MNIST batch, 256).</summary>
    public int BatchSize { get; init; } = 256;
    /// <summary>Optimizer steps per timed block of the every-step rows (HTR at freq 1, ADINE).</summary>
    public int Steps { get; init; } = 10;
    /// <summary>The amortised row's HTR frequency (the authors' 50); its timed block is exactly this many steps, one of them with the penalty.</summary>
    public int Frequency { get; init; } = 50;
    /// <summary>The amortised row's Hutchinson probes K (the authors' 10).</summary>
    public int Probes { get; init; } = 10;
    /// <summary>Timed rounds (medians are reported).</summary>
    public int Rounds { get; init; } = 5;
    /// <summary>Untimed rounds first.</summary>
    public int WarmupRounds { get; init; } = 1;
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the weights, the synthetic data and the minibatch orders.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>The rows to measure (<see cref="Seed004Benchmark.RowNames"/>); null or empty: all of them.</summary>
    public IReadOnlyList<string>? Rows { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value by its option.</summary>
    public void Validate()
    {
        if (Models is null || Models.Count == 0) throw new ArgumentException("--models must name at least one zoo image classifier");
        foreach (var model in Models)
        {
            if (!ModelZoo.Names.Contains(model))
                throw new ArgumentException($"--models: unknown network '{model}'; known: {string.Join(", ", ModelZoo.Names)}");
            if (ModelZoo.Describe(model).Kind != ModelKind.Classifier)
                throw new ArgumentException($"--models: '{model}' is a language model; the bench measures image classifiers on 1x28x28 images");
        }
        if (Models.Distinct().Count() != Models.Count) throw new ArgumentException($"--models: a network is named twice in {string.Join(",", Models)}");
        if (!ConnectBenchmarkData.All.Contains(Data))
            throw new ArgumentException($"--data {Data}: expected {string.Join(" or ", ConnectBenchmarkData.All)}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (Steps < 1) throw new ArgumentException($"--steps must be at least 1, got {Steps}");
        if (Frequency < 1) throw new ArgumentException($"--freq must be at least 1, got {Frequency}");
        if (Probes < 1) throw new ArgumentException($"--probes must be at least 1, got {Probes}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
        if (Rows?.FirstOrDefault(r => !Seed004Benchmark.RowNames.Contains(r)) is { } unknown)
            throw new ArgumentException($"--rows: unknown row '{unknown}'; known: {string.Join(", ", Seed004Benchmark.RowNames)}");
        if (Rows is not null && Rows.Distinct().Count() != Rows.Count) throw new ArgumentException($"--rows: a row is named twice in {string.Join(",", Rows)}");
    }
}

/// <summary>One comparison on one network: the method's block of steps against the baseline's block of the same size.</summary>
/// <param name="Model">Zoo name.</param>
/// <param name="Row">"htr-k1-freq1", "htr-k1-amortised", "htr-authors", their finite-difference twins "htr-fd-…" and antithetic twins "htr-anti-…", or "adine".</param>
/// <param name="Description">What the two sides do, in words.</param>
/// <param name="Steps">Optimizer steps per timed block (both sides).</param>
/// <param name="Target">The issue's target for <see cref="PairedRatio"/>.</param>
/// <param name="MethodTimesMs">Every timed block of the method, in milliseconds per step.</param>
/// <param name="BaselineTimesMs">Every timed block of the baseline, pair by pair, in milliseconds per step.</param>
/// <param name="Penalties">HTR penalties the method side computed in all rounds, warm-up included (0 for ADINE): checks the frequency.</param>
public sealed record Seed004BenchmarkRow(string Model, string Row, string Description, int Steps, double Target,
    IReadOnlyList<double> MethodTimesMs, IReadOnlyList<double> BaselineTimesMs, long Penalties)
{
    /// <summary>Median milliseconds per step of the method.</summary>
    public double MethodMs => Medians.Of(MethodTimesMs.ToArray());
    /// <summary>Median milliseconds per step of the baseline.</summary>
    public double BaselineMs => Medians.Of(BaselineTimesMs.ToArray());
    /// <summary>The ratio of the medians.</summary>
    public double Ratio => MethodMs / BaselineMs;
    /// <summary>The median over back-to-back pairs of method / baseline: what the target is judged on (a load change between pairs cancels in it).</summary>
    public double PairedRatio => Medians.Of(MethodTimesMs.Zip(BaselineTimesMs, (m, b) => m / b).ToArray());
    /// <summary>Whether <see cref="PairedRatio"/> is within <see cref="Target"/>.</summary>
    public bool TargetMet => PairedRatio <= Target;
}

/// <summary>Result of <see cref="Seed004Benchmark"/>.</summary>
/// <param name="Options">What was measured.</param>
/// <param name="Parameters">Trainable parameters of each network, by zoo name.</param>
/// <param name="DataDescription">The images.</param>
/// <param name="Rows">Seven rows per network.</param>
/// <param name="Threads">libtorch threads in use.</param>
/// <param name="Niceness">The process's nice value (null where unknown).</param>
/// <param name="OtherProcessesShare">Share of the machine's CPU other processes used during the measurement (null where unknown).</param>
public sealed record Seed004BenchmarkResult(Seed004BenchmarkOptions Options, IReadOnlyDictionary<string, long> Parameters, string DataDescription,
    IReadOnlyList<Seed004BenchmarkRow> Rows, int Threads, int? Niceness, double? OtherProcessesShare);

/// <summary>
/// Issue 19's speed targets (seed 004), each a block of training steps of the method against the same number of
/// baseline steps, both through the trainer's own step (the closure <see cref="Trainer"/> hands the optimizer:
/// zero_grad, <see cref="ClassificationTask.NextTrainingLoss"/>, the regulariser's <see cref="ILossRegularizer.Objective"/>
/// (loss + penalty, or the antithetic objective), backward, step):
/// <list type="bullet">
/// <item>HTR at K = 1, freq = 1 (a penalty on every step) against plain SGD: at most 3x.</item>
/// <item>HTR at the authors' freq = 50, K = 10 against plain SGD, amortised: a block of exactly 50 steps, one with
/// the penalty: at most 1.05x.</item>
/// <item>ADINE (its defaults, lr 0.01) against SGD with momentum 0.9 at lr 0.01: at most 1.05x.</item>
/// </list>
/// The baseline of the HTR rows is SGD with momentum 0.9 at lr 0.01 (the authors' optimizer), the same optimizer the
/// HTR side uses. Every side trains its own copy of the network (same initial weights) on its own minibatch stream (same
/// order). Method and baseline blocks alternate, the order flipping every round, so both see the same machine load.
/// </summary>
public static class Seed004Benchmark
{
    /// <summary>Target of HTR at K = 1, freq = 1.</summary>
    public const double HtrEveryStepTarget = 3.0;

    /// <summary>Every row, in the order measured: per network the exact, finite-difference and antithetic HTR rows, then ADINE.</summary>
    public static readonly IReadOnlyList<string> RowNames =
    [
        "htr-k1-freq1", "htr-fd-k1-freq1", "htr-k1-amortised", "htr-fd-k1-amortised", "htr-authors", "htr-fd-authors",
        "htr-anti-k1-freq1", "htr-anti-k1-amortised", "htr-anti-authors", "adine",
    ];
    /// <summary>Target of HTR at the authors' frequency, amortised.</summary>
    public const double HtrAuthorsTarget = 1.05;
    /// <summary>Target of ADINE's step against SGD's.</summary>
    public const double AdineTarget = 1.05;
    /// <summary>The learning rate of every side (the HTR authors' Fashion-MNIST lr; ADINE's default).</summary>
    public const double LearningRate = 0.01;

    const int SyntheticTrainingSamples = 10_000;

    /// <summary>Runs the benchmark; <paramref name="log"/> gets a line per round (null: silent).</summary>
    public static Seed004BenchmarkResult Run(Seed004BenchmarkOptions options, Action<string>? log = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        using var dataset = LoadData(options);
        var dataDescription = $"{dataset.Name}: {dataset.Train.Count:N0} training images ({dataset.Source})";
        var sgd = new SgdOptions { LearningRate = LearningRate, Momentum = 0.9 };
        var sides = new List<Side>();
        var parameters = new Dictionary<string, long>();
        var specs = new List<(string Model, string Row, string Description, int Steps, double Target, Side Method, Side Baseline)>();
        try
        {
            foreach (var model in options.Models)
            {
                Side Make(OptimizerOptionsBase optimizer, HessianTraceRegularizerOptions? htr)
                {
                    var side = new Side(model, dataset, optimizer, htr, options);
                    sides.Add(side);
                    return side;
                }
                var every = new HessianTraceRegularizerOptions { Gamma = 1e-5, Probes = 1, Frequency = 1, StartEpoch = 1, Seed = options.Seed };
                var amortised = every with { Frequency = options.Frequency };
                var authors = every with { Probes = options.Probes, Frequency = options.Frequency };
                var fd = HessianTraceEstimator.FiniteDifference;
                bool Wanted(string row) => options.Rows is not { Count: > 0 } || options.Rows.Contains(row);
                if (Wanted("htr-k1-freq1")) specs.Add((model, "htr-k1-freq1", $"SGD+HTR (K = 1, freq = 1, Gaussian probes, all tensors) vs SGD; blocks of {options.Steps} steps",
                    options.Steps, HtrEveryStepTarget, Make(sgd, every), Make(sgd, null)));
                if (Wanted("htr-fd-k1-freq1")) specs.Add((model, "htr-fd-k1-freq1", $"SGD+HTR finite differences (ours; K = 1, freq = 1) vs SGD; blocks of {options.Steps} steps",
                    options.Steps, HtrEveryStepTarget, Make(sgd, every with { Estimator = fd }), Make(sgd, null)));
                if (Wanted("htr-k1-amortised")) specs.Add((model, "htr-k1-amortised", $"SGD+HTR (K = 1, freq = {options.Frequency}) vs SGD; blocks of {options.Frequency} steps, one penalised",
                    options.Frequency, HtrAuthorsTarget, Make(sgd, amortised), Make(sgd, null)));
                if (Wanted("htr-fd-k1-amortised")) specs.Add((model, "htr-fd-k1-amortised", $"SGD+HTR finite differences (ours; K = 1, freq = {options.Frequency}) vs SGD; blocks of {options.Frequency} steps, one penalised",
                    options.Frequency, HtrAuthorsTarget, Make(sgd, amortised with { Estimator = fd }), Make(sgd, null)));
                if (Wanted("htr-authors")) specs.Add((model, "htr-authors", $"SGD+HTR (K = {options.Probes}, freq = {options.Frequency}) vs SGD; blocks of {options.Frequency} steps, one penalised",
                    options.Frequency, HtrAuthorsTarget, Make(sgd, authors), Make(sgd, null)));
                if (Wanted("htr-fd-authors")) specs.Add((model, "htr-fd-authors", $"SGD+HTR finite differences (ours; K = {options.Probes}, freq = {options.Frequency}) vs SGD; blocks of {options.Frequency} steps, one penalised",
                    options.Frequency, HtrAuthorsTarget, Make(sgd, authors with { Estimator = fd }), Make(sgd, null)));
                var anti = HessianTraceEstimator.Antithetic;
                if (Wanted("htr-anti-k1-freq1")) specs.Add((model, "htr-anti-k1-freq1", $"SGD+HTR antithetic (ours; K = 1, freq = 1) vs SGD; blocks of {options.Steps} steps",
                    options.Steps, HtrEveryStepTarget, Make(sgd, every with { Estimator = anti }), Make(sgd, null)));
                if (Wanted("htr-anti-k1-amortised")) specs.Add((model, "htr-anti-k1-amortised", $"SGD+HTR antithetic (ours; K = 1, freq = {options.Frequency}) vs SGD; blocks of {options.Frequency} steps, one penalised",
                    options.Frequency, HtrAuthorsTarget, Make(sgd, amortised with { Estimator = anti }), Make(sgd, null)));
                if (Wanted("htr-anti-authors")) specs.Add((model, "htr-anti-authors", $"SGD+HTR antithetic (ours; K = {options.Probes}, freq = {options.Frequency}) vs SGD; blocks of {options.Frequency} steps, one penalised",
                    options.Frequency, HtrAuthorsTarget, Make(sgd, authors with { Estimator = anti }), Make(sgd, null)));
                if (Wanted("adine")) specs.Add((model, "adine", $"ADINE (defaults: m 1.01/0.9, W 50) vs SGD momentum 0.9; blocks of {options.Steps} steps",
                    options.Steps, AdineTarget, Make(new AdineOptions { LearningRate = LearningRate }, null), Make(sgd, null)));
                using (var counted = ModelZoo.Create(model, new ModelOptions())) parameters[model] = ModelZoo.CountParameters(counted);
            }
            var methodTimes = specs.Select(_ => new List<double>()).ToArray();
            var baselineTimes = specs.Select(_ => new List<double>()).ToArray();
            var share = CpuShare.Start();
            for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
            {
                var timed = round >= options.WarmupRounds;
                var line = new StringBuilder(string.Format(CultureInfo.InvariantCulture, "round {0}{1}:", round + 1, timed ? "" : " (warm-up)"));
                for (var i = 0; i < specs.Count; i++)
                {
                    var s = specs[i];
                    double method, baseline;
                    if (round % 2 == 0)
                    {
                        method = s.Method.Block(s.Steps);
                        baseline = s.Baseline.Block(s.Steps);
                    }
                    else
                    {
                        baseline = s.Baseline.Block(s.Steps);
                        method = s.Method.Block(s.Steps);
                    }
                    if (timed)
                    {
                        methodTimes[i].Add(method);
                        baselineTimes[i].Add(baseline);
                    }
                    line.Append(string.Format(CultureInfo.InvariantCulture, " {0} {1} {2:0.0}/{3:0.0} ms;", s.Model, s.Row, method, baseline));
                }
                log?.Invoke(line.ToString().TrimEnd(';') + " (per step, method/baseline)");
            }
            var otherShare = share.OtherProcessesShare();
            var rows = specs.Select((s, i) => new Seed004BenchmarkRow(s.Model, s.Row, s.Description, s.Steps, s.Target, methodTimes[i], baselineTimes[i], s.Method.Penalties)).ToArray();
            return new Seed004BenchmarkResult(options, parameters, dataDescription, rows, get_num_threads(), ConnectBenchmark.Niceness(), otherShare);
        }
        finally
        {
            foreach (var side in sides) side.Dispose();
        }
    }

    /// <summary>One network, optimizer and (optional) regulariser, training through the trainer's closure.</summary>
    sealed class Side : IDisposable
    {
        readonly optim.Optimizer _optimizer;
        readonly HessianTraceRegularizer? _regularizer;
        long _step;

        public Side(string model, ClassificationDataset data, OptimizerOptionsBase optimizer, HessianTraceRegularizerOptions? htr, Seed004BenchmarkOptions options)
        {
            // Same seed for every side: the same initial weights and minibatch order.
            TorchRuntime.Seed(options.Seed);
            var network = (nn.Module<Tensor, Tensor>)ModelZoo.Create(model, new ModelOptions());
            network.train();
            Task = new ClassificationTask(network, data, options.BatchSize, options.Seed, ownsData: false);
            _optimizer = OptimizerFactory.Create(network.parameters(), optimizer);
            _regularizer = htr is null ? null : new HessianTraceRegularizer(htr);
        }

        public ClassificationTask Task { get; }

        /// <summary>Penalties the regulariser computed so far (0 without one).</summary>
        public long Penalties => _regularizer?.Applications ?? 0;

        /// <summary>Milliseconds per step over a block of <paramref name="steps"/> steps.</summary>
        public double Block(int steps)
        {
            var watch = Stopwatch.StartNew();
            for (var k = 0; k < steps; k++)
            {
                using var scope = NewDisposeScope();
                _optimizer.step(Closure);
            }
            return watch.Elapsed.TotalMilliseconds / steps;
        }

        /// <summary>What <see cref="Trainer"/>'s closure does (without its bookkeeping of counters).</summary>
        Tensor Closure()
        {
            _optimizer.zero_grad();
            var mb = Task.NextTrainingLoss();
            // Steps counted within blocks: a block of freq steps starts at a multiple of freq, so it holds one penalised step.
            var objective = _regularizer?.Objective(new RegularizationContext(Task.Model, mb.Loss, 1, _step, _step, mb.Reevaluate));
            _step++;
            if (objective is null) mb.Loss.backward();
            else
            {
                if (!double.IsFinite(objective.ToDouble())) throw new InvalidOperationException("the HTR objective is not finite");
                objective.backward();
            }
            return mb.Loss;
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            Task.Model.Dispose();
            Task.Dispose();
        }
    }

    static ClassificationDataset LoadData(Seed004BenchmarkOptions o)
    {
        if (o.Data == ConnectBenchmarkData.Synthetic)
        {
            using var generator = new Generator((ulong)o.Seed);
            using var scope = NewDisposeScope();
            var train = new LabeledData(randn([SyntheticTrainingSamples, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [SyntheticTrainingSamples], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            var test = new LabeledData(randn([16, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [16], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            return new ClassificationDataset { Name = "synthetic", Train = train, Test = test, Source = "standard normal images, uniform labels" };
        }
        return DatasetCatalog.LoadClassification(o.Data, new DataOptions { DataDir = o.DataDir });
    }

    static string Target(double target) => target.ToString("0.00", CultureInfo.InvariantCulture) + "x";

    /// <summary>The result as plain text lines.</summary>
    public static IEnumerable<string> Summary(Seed004BenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        foreach (var row in r.Rows)
            yield return string.Format(c, "{0} {1}: {2:0.00} ms/step vs {3:0.00} ms/step, ratio {4:0.000}, paired ratio {5:0.000} (target <= {6}: {7})",
                row.Model, row.Row, row.MethodMs, row.BaselineMs, row.Ratio, row.PairedRatio, Target(row.Target), row.TargetMet ? "met" : "NOT met");
        yield return string.Format(c, "{0} threads{1}{2}", r.Threads, r.Niceness is { } n ? $", nice {n}" : "",
            r.OtherProcessesShare is { } s ? string.Format(c, "; other processes used {0:0}% of the machine meanwhile", 100 * s) : "");
    }

    /// <summary>The result with the key names the reports use (snake_case).</summary>
    public static JsonObject ToJson(Seed004BenchmarkResult r)
    {
        var o = r.Options;
        return new JsonObject
        {
            ["benchmark"] = "seed-004",
            ["models"] = new JsonArray(o.Models.Select(m => (JsonNode?)JsonValue.Create(m)).ToArray()),
            ["parameters"] = new JsonObject(r.Parameters.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value)))),
            ["data"] = r.DataDescription,
            ["batch_size"] = o.BatchSize,
            ["steps"] = o.Steps,
            ["htr_frequency"] = o.Frequency,
            ["htr_probes"] = o.Probes,
            ["learning_rate"] = LearningRate,
            ["rounds"] = o.Rounds,
            ["warmup_rounds"] = o.WarmupRounds,
            ["targets_met"] = r.Rows.All(row => row.TargetMet),
            ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
            {
                ["model"] = row.Model,
                ["row"] = row.Row,
                ["description"] = row.Description,
                ["steps"] = row.Steps,
                ["target_ratio"] = row.Target,
                ["method_ms_per_step"] = Math.Round(row.MethodMs, 4),
                ["baseline_ms_per_step"] = Math.Round(row.BaselineMs, 4),
                ["ratio"] = Math.Round(row.Ratio, 4),
                ["paired_ratio"] = Math.Round(row.PairedRatio, 4),
                ["target_met"] = row.TargetMet,
                ["penalties"] = row.Penalties,
                ["method_times_ms"] = new JsonArray(row.MethodTimesMs.Select(t => (JsonNode?)JsonValue.Create(Math.Round(t, 4))).ToArray()),
                ["baseline_times_ms"] = new JsonArray(row.BaselineTimesMs.Select(t => (JsonNode?)JsonValue.Create(Math.Round(t, 4))).ToArray()),
            }).ToArray()),
            ["threads"] = r.Threads,
            ["processors"] = Environment.ProcessorCount,
            ["nice"] = r.Niceness,
            ["other_processes_share"] = r.OtherProcessesShare is { } s ? Math.Round(s, 3) : null,
        };
    }

    /// <summary>A Markdown report of <paramref name="r"/>, quoting <paramref name="command"/> and <paramref name="machine"/>.</summary>
    public static string Markdown(Seed004BenchmarkResult r, string command, string machine, string jsonFileName)
    {
        var o = r.Options;
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Seed 004: HTR's and ADINE's cost per training step");
        md.AppendLine();
        md.AppendLine("Issue 19's speed targets, each judged on the median over back-to-back pairs of (method ms per step) / (baseline ms per step):");
        md.AppendLine();
        md.AppendLine(string.Format(c, "- **htr-k1-freq1**: SGD (momentum 0.9, lr {0}) with the Hessian-trace penalty on every step, K = 1 Gaussian probe over all tensors, against plain SGD: target <= {1}.", LearningRate, Target(HtrEveryStepTarget)));
        md.AppendLine(string.Format(c, "- **htr-authors**: the authors' frequency, freq = {0}, K = {1}, amortised: a block of exactly {0} steps, the first with the penalty, against {0} plain SGD steps: target <= {2}.", o.Frequency, o.Probes, Target(HtrAuthorsTarget)));
        md.AppendLine(string.Format(c, "- **htr-k1-amortised**: K = 1 at freq = {0}, amortised as htr-authors: target <= {1}.", o.Frequency, Target(HtrAuthorsTarget)));
        md.AppendLine("- **htr-fd-…**: the same rows with the finite-difference estimator (ours, `--htr-estimator finite-difference`: (L(θ+εv) − 2L(θ) + L(θ−εv))/ε² and the same difference of gradients, two extra forward+backward passes per probe) instead of the authors' double backward; same targets.");
        md.AppendLine("- **htr-anti-…**: the same rows with the antithetic estimator (ours, `--htr-estimator antithetic`: the step trains on ½(L(θ+σv) + L(θ−σv)), σ = √(2γ), which is L + γ·vᵀHv up to O(γ²); two forward+backward passes per probe and no backward pass at θ); same targets.");
        md.AppendLine(string.Format(c, "- **adine**: ADINE with its defaults (m_high 1.01, m_low 0.9, window 50, lr {0}) against SGD with momentum 0.9 at the same lr: target <= {1}.", LearningRate, Target(AdineTarget)));
        md.AppendLine();
        md.AppendLine(string.Format(c,
            "Every step is the trainer's closure (zero_grad, forward and cross-entropy of a minibatch of {0}, the regulariser's term when it applies, backward, " +
            "optimizer step) on {1}. Each side trains its own copy of the network from the same initial weights on the same minibatch order; " +
            "the two sides of a row alternate, the order flipping every round; {2} warm-up and {3} timed rounds; every-step rows time blocks of {4} steps.",
            o.BatchSize, r.DataDescription, o.WarmupRounds, o.Rounds, o.Steps));
        md.AppendLine();
        md.AppendLine("```sh");
        md.AppendLine(command);
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"Machine: {machine}.");
        md.AppendLine();
        md.AppendLine("| network | parameters | row | method ms/step | baseline ms/step | ratio of medians | paired ratio | target | |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var row in r.Rows)
            md.AppendLine(string.Format(c, "| {0} | {1:N0} | {2} | {3:0.00} | {4:0.00} | {5:0.000} | **{6:0.000}** | <= {7} | {8} |",
                row.Model, r.Parameters[row.Model], row.Row, row.MethodMs, row.BaselineMs, row.Ratio, row.PairedRatio, Target(row.Target),
                row.TargetMet ? "met" : "**missed**"));
        md.AppendLine();
        var met = r.Rows.Count(row => row.TargetMet);
        md.AppendLine(string.Format(c, "{0} of {1} targets met{2}.", met, r.Rows.Count,
            met == r.Rows.Count ? "" : ": missed " + string.Join("; ", r.Rows.Where(row => !row.TargetMet).Select(row => $"{row.Model} {row.Row} at {row.PairedRatio.ToString("0.000", c)}"))));
        md.AppendLine();
        foreach (var (model, prefix, estimator) in o.Models.SelectMany(m => new[] { (m, "htr-", "exact"), (m, "htr-fd-", "finite differences"), (m, "htr-anti-", "antithetic") }))
        {
            var every = r.Rows.FirstOrDefault(row => row.Model == model && row.Row == prefix + "k1-freq1");
            var authors = r.Rows.FirstOrDefault(row => row.Model == model && row.Row == prefix + "authors");
            if (every is null || authors is null) continue; // --rows left one of the two out
            // One penalised step at K probes costs (ratio·freq − (freq − 1)) plain steps; at K = 1 it costs the every-step ratio.
            var penalisedStep = authors.PairedRatio * o.Frequency - (o.Frequency - 1);
            md.AppendLine(string.Format(c,
                "{0} ({7}): one penalised step with K = 1 costs {1:0.00} plain steps; with K = {2} about {3:0.0} plain steps (from the amortised row: ratio x {4} − {5}), " +
                "i.e. {6:0.00} plain steps per probe. The amortised ratio is bounded below by 1 + (that cost − 1) / {4}.",
                model, every.PairedRatio, o.Probes, penalisedStep, o.Frequency, o.Frequency - 1, (penalisedStep - 1) / o.Probes, estimator));
        }
        md.AppendLine();
        md.AppendLine(string.Format(c, "{0} libtorch threads{1}{2}. The machine is shared: other processes' CPU use moves both sides alike because they alternate, " +
                                       "but absolute times are slower than on an idle machine.",
            r.Threads,
            r.Niceness is { } n ? $", run at nice {n}" : "",
            r.OtherProcessesShare is { } s ? string.Format(c, "; other processes used {0:0}% of the machine's CPU during the measurement", 100 * s) : ""));
        md.AppendLine();
        md.AppendLine($"Raw output: [{jsonFileName}]({jsonFileName}) (the same object `--json` prints, with every round's times).");
        return md.ToString();
    }
}
