using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using WideValley.Optim;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Benchmarks;

/// <summary>What to measure in <see cref="DanteBenchmark"/>.</summary>
public sealed record DanteBenchmarkOptions
{
    /// <summary>Zoo networks, each measured on its own (default: the one- and two-hidden-layer ReLU MLPs of `reproduce dante`).</summary>
    public IReadOnlyList<string> Models { get; init; } = ["mlp1-relu", "mlp2-relu"];
    /// <summary>Images: Fashion-MNIST or synthetic (the cost does not depend on the values).</summary>
    public string Data { get; init; } = ConnectBenchmarkData.FashionMnist;
    /// <summary>Folder holding Fashion-MNIST's files (null: the catalogue's usual search).</summary>
    public string? DataDir { get; init; }
    /// <summary>Training images per epoch (the first ones; 0 = all).</summary>
    public int TrainSamples { get; init; }
    /// <summary>Minibatch size (`reproduce dante`'s).</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>Timed rounds (medians are reported).</summary>
    public int Rounds { get; init; } = 5;
    /// <summary>Untimed rounds first.</summary>
    public int WarmupRounds { get; init; } = 1;
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the weights, the synthetic data and the minibatch order.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value by its option.</summary>
    public void Validate()
    {
        if (Models is null || Models.Count == 0) throw new ArgumentException("--models must name at least one zoo classifier");
        foreach (var m in Models)
        {
            if (!ModelZoo.Names.Contains(m)) throw new ArgumentException($"--models {m}: unknown network; known: {string.Join(", ", ModelZoo.Names)}");
            if (ModelZoo.Describe(m).Kind != ModelKind.Classifier) throw new ArgumentException($"--models {m}: a language model; the bench trains image classifiers");
        }
        if (!ConnectBenchmarkData.All.Contains(Data)) throw new ArgumentException($"--data {Data}: expected {string.Join(" or ", ConnectBenchmarkData.All)}");
        if (TrainSamples < 0) throw new ArgumentException($"--train-samples must be 0 (all) or positive, got {TrainSamples}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
    }
}

/// <summary>One network's timings: per-epoch medians in milliseconds.</summary>
/// <param name="Model">The zoo name.</param>
/// <param name="Parameters">Its trainable parameters.</param>
/// <param name="Blocks">DANTE's blocks (one per Linear layer).</param>
/// <param name="StepsPerEpoch">Optimizer steps in one epoch (K of DANTE).</param>
/// <param name="SgdEpochMs">Every timed round's mean SGD epoch.</param>
/// <param name="DanteEpochMs">Every timed round's mean DANTE epoch (a sweep over the blocks divided by their number).</param>
/// <param name="DanteUnfrozenEpochMs">The same with <see cref="DanteOptions.FreezeInactive"/> off (every gradient computed).</param>
/// <param name="DanteBlockEpochMs">Per block (input layer first), every timed round's epoch with that block active.</param>
public sealed record DanteBenchmarkRow(string Model, long Parameters, int Blocks, long StepsPerEpoch, IReadOnlyList<double> SgdEpochMs,
    IReadOnlyList<double> DanteEpochMs, IReadOnlyList<double> DanteUnfrozenEpochMs, IReadOnlyList<IReadOnlyList<double>> DanteBlockEpochMs)
{
    /// <summary>Median SGD epoch.</summary>
    public double SgdMs => Medians.Of(SgdEpochMs.ToArray());
    /// <summary>Median DANTE epoch (averaged over a sweep).</summary>
    public double DanteMs => Medians.Of(DanteEpochMs.ToArray());
    /// <summary>Median DANTE epoch without freezing the inactive blocks.</summary>
    public double DanteUnfrozenMs => Medians.Of(DanteUnfrozenEpochMs.ToArray());
    /// <summary>Median DANTE epoch with block b active.</summary>
    public double BlockMs(int b) => Medians.Of(DanteBlockEpochMs[b].ToArray());
    /// <summary>Median over rounds of DANTE epoch / SGD epoch, each pair from the same round (a load change between rounds cancels).</summary>
    public double PairedRatio => Medians.Of(DanteEpochMs.Zip(SgdEpochMs, (d, s) => d / s).ToArray());
    /// <summary>Median over rounds of the unfrozen DANTE epoch / SGD epoch.</summary>
    public double UnfrozenPairedRatio => Medians.Of(DanteUnfrozenEpochMs.Zip(SgdEpochMs, (d, s) => d / s).ToArray());
}

/// <summary>Result of <see cref="DanteBenchmark"/>.</summary>
public sealed record DanteBenchmarkResult(DanteBenchmarkOptions Options, string DataDescription, IReadOnlyList<DanteBenchmarkRow> Rows, int Threads,
    int? Niceness, double? OtherProcessesShare);

/// <summary>
/// Issue 19's speed item: a DANTE epoch against an SGD epoch on the same network and data. One epoch = one pass of
/// minibatches through the same training loop (zero_grad, forward, cross-entropy, backward inside the closure,
/// <c>step(closure)</c>), the optimizer the only difference: SGD with momentum 0.9 (our fused CPU SGD), DANTE with
/// K = one epoch, so each DANTE epoch trains one layer; a round times a full sweep (one epoch per block) and reports the
/// mean epoch, beside as many SGD epochs, and DANTE again with every gradient computed (freezing off). The sides
/// alternate, the order turning every round, so all see the same machine load; the ratio is the median of the
/// per-round ratios.
/// </summary>
public static class DanteBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="log"/> gets a line per round (null: silent).</summary>
    public static DanteBenchmarkResult Run(DanteBenchmarkOptions options, Action<string>? log = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        var (train, description) = LoadData(options);
        using var _ = train;
        var rows = new List<DanteBenchmarkRow>();
        var share = CpuShare.Start();
        foreach (var name in options.Models) rows.Add(Measure(name, train, options, log));
        return new DanteBenchmarkResult(options, description, rows, get_num_threads(), ConnectBenchmark.Niceness(), share.OtherProcessesShare());
    }

    static DanteBenchmarkRow Measure(string name, LabeledData train, DanteBenchmarkOptions options, Action<string>? log)
    {
        TorchRuntime.Seed(options.Seed);
        using var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(name, new ModelOptions());
        model.train();
        using var stream = new MinibatchStream(train, options.BatchSize, options.Seed);
        var steps = (long)Math.Ceiling(stream.MinibatchesPerPass - 1e-9);
        var context = new OptimizerContext { TrainingSetSize = train.Count, RunSeed = options.Seed, StepsPerEpoch = steps };
        using var sgd = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.01, Momentum = 0.9 }, context);
        var blocks = Dante.LayerBlocks(model.parameters()).Count;
        var sgdTimes = new List<double>();
        var danteTimes = new List<double>();
        var unfrozenTimes = new List<double>();
        var blockTimes = Enumerable.Range(0, blocks).Select(_ => new List<double>()).ToArray();
        for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
        {
            var timed = round >= options.WarmupRounds;
            double[] perBlock = [];
            double sgdMs = 0, danteMs = 0, unfrozenMs = 0;
            var sides = new Action[]
            {
                () => sgdMs = Enumerable.Range(0, blocks).Sum(_ => Time(() => Epoch(model, sgd, stream, steps))) / blocks,
                () =>
                {
                    using var dante = OptimizerFactory.Create("dante", model.parameters(), new DanteOptions { LearningRate = 1e-3 }, context);
                    perBlock = Enumerable.Range(0, blocks).Select(_ => Time(() => Epoch(model, dante, stream, steps))).ToArray();
                    danteMs = perBlock.Average();
                },
                () =>
                {
                    using var dante = OptimizerFactory.Create("dante", model.parameters(), new DanteOptions { LearningRate = 1e-3, FreezeInactive = false }, context);
                    unfrozenMs = Enumerable.Range(0, blocks).Sum(_ => Time(() => Epoch(model, dante, stream, steps))) / blocks;
                },
            };
            // The order turns every round: no side always runs first (warm caches) or last.
            for (var k = 0; k < sides.Length; k++) sides[(k + round) % sides.Length]();
            if (timed)
            {
                sgdTimes.Add(sgdMs);
                danteTimes.Add(danteMs);
                unfrozenTimes.Add(unfrozenMs);
                for (var b = 0; b < blocks; b++) blockTimes[b].Add(perBlock[b]);
            }
            log?.Invoke(string.Format(CultureInfo.InvariantCulture, "{0} round {1}{2}: epoch SGD {3:0} ms, DANTE {4:0} ms (blocks {5}), DANTE unfrozen {6:0} ms",
                name, round + 1, timed ? "" : " (warm-up)", sgdMs, danteMs, string.Join(" / ", perBlock.Select(t => t.ToString("0", CultureInfo.InvariantCulture))), unfrozenMs));
        }
        return new DanteBenchmarkRow(name, ModelZoo.CountParameters(model), blocks, steps, sgdTimes, danteTimes, unfrozenTimes, blockTimes);
    }

    /// <summary>One epoch: <paramref name="steps"/> closure steps of the optimizer.</summary>
    static void Epoch(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, MinibatchStream stream, long steps)
    {
        for (var s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            optimizer.step(() =>
            {
                optimizer.zero_grad();
                var (x, y) = stream.Next();
                var loss = F.cross_entropy(model.call(x), y);
                loss.backward();
                return loss;
            });
        }
    }

    static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalMilliseconds;
    }

    static (LabeledData Train, string Description) LoadData(DanteBenchmarkOptions o)
    {
        if (o.Data == ConnectBenchmarkData.Synthetic)
        {
            var n = o.TrainSamples > 0 ? o.TrainSamples : 60_000;
            using var generator = new Generator((ulong)o.Seed);
            using var scope = NewDisposeScope();
            var data = new LabeledData(randn([n, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [n], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            return (data, $"synthetic: {n:N0} standard normal 1x28x28 images, uniform labels");
        }
        var full = DatasetCatalog.LoadClassification(o.Data, new DataOptions { DataDir = o.DataDir, MaxTrainSamples = o.TrainSamples > 0 ? o.TrainSamples : null });
        full.Test.Dispose();
        full.Validation?.Dispose();
        return (full.Train, $"{full.Name}: {full.Train.Count:N0} training images ({full.Source})");
    }

    /// <summary>The result as plain text lines.</summary>
    public static IEnumerable<string> Summary(DanteBenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        foreach (var row in r.Rows)
            yield return string.Format(c, "{0} ({1:N0} weights, {2} blocks, {3} steps/epoch): epoch SGD {4:0} ms, DANTE {5:0} ms (per block {6}), " +
                                          "ratio {7:0.000} (paired {8:0.000}); DANTE without freezing {9:0} ms (paired ratio {10:0.000})",
                row.Model, row.Parameters, row.Blocks, row.StepsPerEpoch, row.SgdMs, row.DanteMs,
                string.Join(" / ", Enumerable.Range(0, row.Blocks).Select(b => row.BlockMs(b).ToString("0", c))),
                row.DanteMs / row.SgdMs, row.PairedRatio, row.DanteUnfrozenMs, row.UnfrozenPairedRatio);
        yield return $"{r.Threads} threads{(r.Niceness is int n ? $", nice {n}" : "")}" +
                     (r.OtherProcessesShare is double s ? string.Format(c, ", other processes used {0:0%} of the machine", s) : "");
    }

    /// <summary>The result as one JSON object.</summary>
    public static JsonObject ToJson(DanteBenchmarkResult r)
    {
        static JsonArray Array(IEnumerable<double> values) => new(values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
        return new JsonObject
        {
            ["benchmark"] = "dante",
            ["data"] = r.DataDescription,
            ["batch_size"] = r.Options.BatchSize,
            ["rounds"] = r.Options.Rounds,
            ["warmup_rounds"] = r.Options.WarmupRounds,
            ["threads"] = r.Threads,
            ["niceness"] = r.Niceness,
            ["other_processes_share"] = r.OtherProcessesShare,
            ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
            {
                ["model"] = row.Model,
                ["parameters"] = row.Parameters,
                ["blocks"] = row.Blocks,
                ["steps_per_epoch"] = row.StepsPerEpoch,
                ["sgd_epoch_ms"] = row.SgdMs,
                ["dante_epoch_ms"] = row.DanteMs,
                ["dante_block_epoch_ms"] = Array(Enumerable.Range(0, row.Blocks).Select(row.BlockMs)),
                ["dante_unfrozen_epoch_ms"] = row.DanteUnfrozenMs,
                ["ratio"] = row.DanteMs / row.SgdMs,
                ["paired_ratio"] = row.PairedRatio,
                ["unfrozen_paired_ratio"] = row.UnfrozenPairedRatio,
                ["sgd_epoch_ms_all"] = Array(row.SgdEpochMs),
                ["dante_epoch_ms_all"] = Array(row.DanteEpochMs),
                ["dante_unfrozen_epoch_ms_all"] = Array(row.DanteUnfrozenEpochMs),
            }).ToArray()),
        };
    }

    /// <summary>A Markdown report: the command, the machine, a table and how to read it.</summary>
    public static string Markdown(DanteBenchmarkResult r, string commandLine, string machine, string jsonFile)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# DANTE epoch against SGD epoch (`widevalley bench dante`)");
        md.AppendLine();
        md.AppendLine("Issue 19's speed item: the time of one DANTE epoch against one SGD epoch on the same network and data. Both run the same loop " +
                      "(zero_grad, forward, cross-entropy, backward inside the closure, `step(closure)`); SGD has momentum 0.9 (our fused CPU SGD); DANTE has " +
                      "K = one epoch, so an epoch trains one layer: a round times one sweep (an epoch per layer) and takes the mean epoch, beside as many SGD " +
                      "epochs and a DANTE sweep with every gradient computed (`FreezeInactive` off). The sides alternate and the order turns every round; " +
                      "medians over rounds, and the ratio as the median of per-round ratios.");
        md.AppendLine();
        md.AppendLine("```sh");
        md.AppendLine(commandLine);
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"Machine: {machine}. Data: {r.DataDescription}; batch {r.Options.BatchSize}; {r.Options.WarmupRounds} warm-up + {r.Options.Rounds} timed rounds; " +
                      $"{r.Threads} threads{(r.Niceness is int n ? $", nice {n}" : "")}" +
                      (r.OtherProcessesShare is double s ? string.Format(c, "; other processes used {0:0%} of the machine meanwhile", s) : "") + ".");
        md.AppendLine();
        md.AppendLine("| network | weights | blocks | steps/epoch | SGD epoch (ms) | DANTE epoch (ms) | DANTE epoch per active block (ms, input layer first) | DANTE / SGD (paired) | DANTE, every gradient (ms) | its ratio (paired) |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var row in r.Rows)
            md.AppendLine(string.Format(c, "| {0} | {1:N0} | {2} | {3} | {4:0} | {5:0} | {6} | {7:0.000} | {8:0} | {9:0.000} |", row.Model, row.Parameters, row.Blocks,
                row.StepsPerEpoch, row.SgdMs, row.DanteMs, string.Join(" / ", Enumerable.Range(0, row.Blocks).Select(b => row.BlockMs(b).ToString("0", c))),
                row.PairedRatio, row.DanteUnfrozenMs, row.UnfrozenPairedRatio));
        md.AppendLine();
        md.AppendLine("Reading: below 1, a DANTE epoch is cheaper than an SGD epoch. With a layer's `requires_grad` off while it is inactive, backward " +
                      "computes no weight gradient for it and stops below the lowest active layer, and the step touches one layer; " +
                      "the epochs with the input layer active cost the most (the 784-wide weight gradient). The issue sets no numeric target for this item.");
        md.AppendLine();
        md.AppendLine($"Every timing is in `{jsonFile}`.");
        return md.ToString();
    }
}
