using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Models;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Benchmarks;

/// <summary>What to measure in <see cref="BatchedNetworksBenchmark"/>.</summary>
public sealed record BatchedNetworksBenchmarkOptions
{
    /// <summary>M, the networks trained (issue 17's target is set at 100).</summary>
    public int Networks { get; init; } = 100;
    /// <summary>Hidden units n1 of every network (the target: at least 10x faster at n1 = 25).</summary>
    public int Hidden { get; init; } = 25;
    /// <summary>Inputs per sample: 100, a 10x10 image.</summary>
    public int Inputs { get; init; } = 100;
    /// <summary>Classes.</summary>
    public int Outputs { get; init; } = 10;
    /// <summary>Minibatch size of every network.</summary>
    public int BatchSize { get; init; } = 100;
    /// <summary>SGD steps of every network per timed round (each network sees this many of its own minibatches).</summary>
    public int Steps { get; init; } = 20;
    /// <summary>Timed rounds of each trainer (medians are reported).</summary>
    public int Rounds { get; init; } = 5;
    /// <summary>Untimed rounds of each trainer first.</summary>
    public int WarmupRounds { get; init; } = 1;
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the synthetic data, the orders and the starts.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value by its option.</summary>
    public void Validate()
    {
        if (Networks < 1) throw new ArgumentException($"--network-count must be at least 1, got {Networks}");
        if (Hidden < 1) throw new ArgumentException($"--hidden-size must be at least 1, got {Hidden}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (Steps < 1) throw new ArgumentException($"--steps must be at least 1, got {Steps}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
    }
}

/// <summary>Result of <see cref="BatchedNetworksBenchmark"/>; times are medians over rounds, in milliseconds per round.</summary>
/// <param name="Options">What was measured.</param>
/// <param name="BatchedMs">One round of <see cref="BatchedNetworksBenchmarkOptions.Steps"/> steps of all M networks as one batched model.</param>
/// <param name="SeparateMs">The same steps of the same networks as M plain TorchSharp modules, one after another, each with its own SGD.</param>
/// <param name="Speedup">SeparateMs / BatchedMs.</param>
/// <param name="SharedOrderMs">The same steps of all M networks as one batched model with one sample order for all (the loss-surface experiment's trainer): the first layer is then one large matrix product.</param>
/// <param name="SharedOrderSpeedup">SeparateMs / SharedOrderMs.</param>
/// <param name="MaxParameterDifference">After the timed rounds, max |batched - separate| over all parameters: both did the same arithmetic.</param>
/// <param name="Threads">libtorch threads in use.</param>
/// <param name="OtherProcessesShare">Share of the machine's CPU other processes used during the measurement (null where unknown).</param>
public sealed record BatchedNetworksBenchmarkResult(BatchedNetworksBenchmarkOptions Options, double BatchedMs, double SeparateMs, double Speedup,
    double SharedOrderMs, double SharedOrderSpeedup, double MaxParameterDifference, int Threads, double? OtherProcessesShare);

/// <summary>
/// The batched network trainer (<see cref="BatchedOneHiddenLayer"/>) against training the same networks one at a
/// time: M one-hidden-layer ReLU networks, each taking the same SGD steps on its own minibatches (synthetic standard
/// normal inputs and uniform labels: the cost does not depend on the values), once as one batched model and once as
/// M nn.Sequential modules with the library's SGD, alternating round by round so that both see the same machine load.
/// Issue 17's target: batched at least 10x faster at n1 = 25.
/// </summary>
public static class BatchedNetworksBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="log"/> gets a line per round (null: silent).</summary>
    public static BatchedNetworksBenchmarkResult Run(BatchedNetworksBenchmarkOptions options, Action<string>? log = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        var m = options.Networks;
        var samples = options.BatchSize * options.Steps;
        using var g = new Generator((ulong)options.Seed);
        using var inputs = randn([samples, options.Inputs], generator: g);
        using var labels = randint(0, options.Outputs, [samples], ScalarType.Int64, generator: g);
        using var orders = stack(Enumerable.Range(0, m).Select(_ => randperm(samples, generator: g)).ToArray());
        var seeds = Enumerable.Range(0, m).Select(i => options.Seed * 1_000_000 + i).ToArray();
        using var batched = new BatchedOneHiddenLayer(m, options.Inputs, options.Hidden, options.Outputs);
        batched.InitializeUniform(seeds, -1, 1);
        using var sharedOrder = new BatchedOneHiddenLayer(m, options.Inputs, options.Hidden, options.Outputs);
        sharedOrder.InitializeUniform(seeds, -1, 1);
        using var order = randperm(samples, generator: g);
        var separate = Enumerable.Range(0, m).Select(i => batched.ExtractNetwork(i, ScalarType.Float32)).ToArray();
        var optimizers = separate.Select(n => new SgdOptimizer(n.parameters(), Lr)).ToArray();
        var rowOrders = Enumerable.Range(0, m).Select(i => orders[i].clone()).ToArray();

        var batchedTimes = new List<double>();
        var separateTimes = new List<double>();
        var sharedTimes = new List<double>();
        var watch = new Stopwatch();
        var share = CpuShare.Start();
        for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
        {
            var timed = round >= options.WarmupRounds;
            watch.Restart();
            using (NewDisposeScope()) batched.TrainEpoch(inputs, labels, orders, options.BatchSize, Lr);
            watch.Stop();
            var b = watch.Elapsed.TotalMilliseconds;
            watch.Restart();
            for (var i = 0; i < m; i++) SeparateEpoch(separate[i], optimizers[i], inputs, labels, rowOrders[i], options.BatchSize);
            watch.Stop();
            var s = watch.Elapsed.TotalMilliseconds;
            watch.Restart();
            using (NewDisposeScope()) sharedOrder.TrainEpoch(inputs, labels, order, options.BatchSize, Lr);
            watch.Stop();
            var shared = watch.Elapsed.TotalMilliseconds;
            if (timed)
            {
                batchedTimes.Add(b);
                separateTimes.Add(s);
                sharedTimes.Add(shared);
            }
            log?.Invoke(string.Format(CultureInfo.InvariantCulture, "round {0}{1}: batched {2:0.0} ms (shared order {3:0.0} ms), one at a time {4:0.0} ms",
                round + 1, timed ? "" : " (warm-up)", b, shared, s));
        }
        var otherShare = share.OtherProcessesShare();
        var difference = 0.0;
        for (var i = 0; i < m; i++)
        {
            using var copy = batched.ExtractNetwork(i, ScalarType.Float32);
            foreach (var (a, c) in copy.parameters().Zip(separate[i].parameters()))
                using (var d = (a - c).abs().max()) difference = Math.Max(difference, d.item<float>());
        }
        foreach (var o in optimizers) o.Dispose();
        foreach (var n in separate) n.Dispose();
        foreach (var o in rowOrders) o.Dispose();
        var batchedMs = Medians.Of(batchedTimes);
        var separateMs = Medians.Of(separateTimes);
        var sharedMs = Medians.Of(sharedTimes);
        return new BatchedNetworksBenchmarkResult(options, batchedMs, separateMs, separateMs / batchedMs, sharedMs, separateMs / sharedMs, difference, get_num_threads(), otherShare);
    }

    /// <summary>Learning rate of both trainers (the cost does not depend on it; small, so that the weights stay finite over many rounds).</summary>
    const double Lr = 0.01;

    static void SeparateEpoch(nn.Module<Tensor, Tensor> net, SgdOptimizer sgd, Tensor inputs, Tensor labels, Tensor order, int batchSize)
    {
        var n = inputs.shape[0];
        for (long start = 0; start < n; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var index = order.narrow(0, start, Math.Min(batchSize, n - start));
            sgd.zero_grad();
            var loss = nn.functional.cross_entropy(net.call(inputs.index_select(0, index)), labels.index_select(0, index));
            loss.backward();
            sgd.step();
        }
    }

    /// <summary>The result as plain text lines.</summary>
    public static IEnumerable<string> Summary(BatchedNetworksBenchmarkResult r)
    {
        var o = r.Options;
        yield return string.Format(CultureInfo.InvariantCulture,
            "{0} networks {1}-{2}-{3}, {4} SGD steps of batch {5} each: batched {6:0.0} ms, one at a time {7:0.0} ms, speedup x{8:0.0} (target x10: {9})",
            o.Networks, o.Inputs, o.Hidden, o.Outputs, o.Steps, o.BatchSize, r.BatchedMs, r.SeparateMs, r.Speedup, r.Speedup >= 10 ? "met" : "NOT met");
        yield return string.Format(CultureInfo.InvariantCulture, "batched with one sample order for all networks: {0:0.0} ms, speedup x{1:0.0} (target x10: {2})",
            r.SharedOrderMs, r.SharedOrderSpeedup, r.SharedOrderSpeedup >= 10 ? "met" : "NOT met");
        yield return string.Format(CultureInfo.InvariantCulture, "max |batched - separate| parameter difference after all rounds: {0:G3}; {1} threads{2}",
            r.MaxParameterDifference, r.Threads,
            r.OtherProcessesShare is { } s ? string.Format(CultureInfo.InvariantCulture, "; other processes used {0:0}% of the machine meanwhile", 100 * s) : "");
    }

    /// <summary>The result with the key names the reports use (snake_case).</summary>
    public static JsonObject ToJson(BatchedNetworksBenchmarkResult r) => new()
    {
        ["benchmark"] = "batched-networks",
        ["networks"] = r.Options.Networks,
        ["inputs"] = r.Options.Inputs,
        ["hidden"] = r.Options.Hidden,
        ["outputs"] = r.Options.Outputs,
        ["batch_size"] = r.Options.BatchSize,
        ["steps_per_round"] = r.Options.Steps,
        ["rounds"] = r.Options.Rounds,
        ["warmup_rounds"] = r.Options.WarmupRounds,
        ["batched_ms"] = Math.Round(r.BatchedMs, 3),
        ["one_at_a_time_ms"] = Math.Round(r.SeparateMs, 3),
        ["speedup"] = Math.Round(r.Speedup, 2),
        ["shared_order_ms"] = Math.Round(r.SharedOrderMs, 3),
        ["shared_order_speedup"] = Math.Round(r.SharedOrderSpeedup, 2),
        ["target_speedup"] = 10,
        ["target_met"] = r.Speedup >= 10,
        ["shared_order_target_met"] = r.SharedOrderSpeedup >= 10,
        ["max_parameter_difference"] = r.MaxParameterDifference,
        ["threads"] = r.Threads,
        ["processors"] = Environment.ProcessorCount,
        ["other_processes_share"] = r.OtherProcessesShare is { } s ? Math.Round(s, 3) : null,
        ["data"] = "synthetic standard normal inputs, uniform labels",
    };

    /// <summary>A Markdown report of <paramref name="r"/>, quoting <paramref name="command"/> and <paramref name="machine"/>.</summary>
    public static string Markdown(BatchedNetworksBenchmarkResult r, string command, string machine)
    {
        var o = r.Options;
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Batched network trainer against one network at a time");
        md.AppendLine();
        md.AppendLine(string.Format(c,
            "{0} one-hidden-layer ReLU networks {1}-{2}-{3} (the loss-surface experiment's smallest size), each taking {4} SGD steps on its own minibatches of {5} " +
            "(synthetic inputs; every network its own sample order), timed as one batched model (`BatchedOneHiddenLayer`, batched matrix products) and as {0} " +
            "plain TorchSharp `nn.Sequential` modules with the library's SGD, trained one after another; and a third time as one batched model with one sample order shared by all networks. The three alternate round by round ({6} warm-up + {7} timed rounds); medians.",
            o.Networks, o.Inputs, o.Hidden, o.Outputs, o.Steps, o.BatchSize, o.WarmupRounds, o.Rounds));
        md.AppendLine();
        md.AppendLine("```sh");
        md.AppendLine(command);
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"Machine: {machine}.");
        md.AppendLine();
        md.AppendLine("| trainer | ms per round (median) | ms per network-step |");
        md.AppendLine("|---|---|---|");
        md.AppendLine(string.Format(c, "| batched (one model, M = {0}) | {1:0.0} | {2:0.000} |", o.Networks, r.BatchedMs, r.BatchedMs / (o.Networks * o.Steps)));
        md.AppendLine(string.Format(c, "| batched, one sample order for all networks | {0:0.0} | {1:0.000} |", r.SharedOrderMs, r.SharedOrderMs / (o.Networks * o.Steps)));
        md.AppendLine(string.Format(c, "| one at a time ({0} modules) | {1:0.0} | {2:0.000} |", o.Networks, r.SeparateMs, r.SeparateMs / (o.Networks * o.Steps)));
        md.AppendLine();
        md.AppendLine(string.Format(c, "**Speedup x{0:0.0}** with every network its own sample order (what `reproduce loss-surfaces` uses), **x{1:0.0}** with one order for all " +
            "(the first layer of all networks is then one matrix product). The one-at-a-time trainer is bound by per-call overhead (about the same time per step " +
            "whatever the batch), the batched one by arithmetic, so the ratio grows as the minibatch shrinks and as the machine is less busy. The target (at least x10 at n1 = 25) is **{2}** and **{3}** respectively.",
            r.Speedup, r.SharedOrderSpeedup, r.Speedup >= 10 ? "met" : "not met", r.SharedOrderSpeedup >= 10 ? "met" : "not met"));
        md.AppendLine();
        md.AppendLine(string.Format(c, "After all rounds the two trainers' parameters differ by at most {0:G3} (float32 rounding: both took the same steps). " +
            "{1} libtorch threads{2}.", r.MaxParameterDifference, r.Threads,
            r.OtherProcessesShare is { } s ? string.Format(c, "; other processes used {0:0}% of the machine's CPU during the measurement", 100 * s) : ""));
        return md.ToString();
    }
}
