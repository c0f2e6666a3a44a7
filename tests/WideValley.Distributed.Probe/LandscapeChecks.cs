using System.Security.Cryptography;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Distributed;
using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Distributed.Probe;

/// <summary>
/// `--landscape [--work-dir DIR]`: the landscape measurements over the ranks of this job against the same measurements
/// of one process, computed on every rank from the whole evaluation set (LandscapeOptions without collectives: the
/// single-process code path). A seeded 20-16-5 tanh network in float64 over 300 synthetic samples in batches of 64
/// (four of 64 and one of 44, so with 2 ranks the shares differ in batches and in samples). One line per quantity with
/// the largest difference relative to the quantity's scale, and a digest of the bits each rank holds, so the tests
/// (tests/WideValley.Tests/Distributed/MpiLandscapeTests.cs) can check both the agreement with one process and that
/// every rank ends with the same numbers.
/// </summary>
internal static class LandscapeChecks
{
    const int Inputs = 20, Hidden = 16, Classes = 5, Samples = 300, BatchSize = 64;

    public static int Run(ICollectives collectives, string[] args, Action<JsonObject> emit)
    {
        set_num_threads(1);
        var workDir = Option(args, "--work-dir");
        var model = Network(ScalarType.Float64);
        var data = Data(ScalarType.Float64);
        var one = new LandscapeOptions();
        var ranks = new LandscapeOptions { Collectives = collectives };
        using var single = new Hvp(model, data, one);
        using var shared = new Hvp(model, data, ranks);

        emit(new JsonObject
        {
            ["check"] = "landscape-setup",
            ["n"] = shared.Dimension,
            ["samples"] = shared.SampleCount,
            ["batches"] = data.Count,
            ["local_batches"] = shared.Loss.LocalBatchCount,
            ["local_samples"] = Enumerable.Range(0, data.Count).Where(shared.Loss.IsMine).Sum(b => data[b].Inputs.shape[0]),
        });

        // Hessian-vector product, and this rank's share alone: what the product would be if the allreduce were missing.
        using (var gen = new Generator(17))
        using (var v = randn(shared.Dimension, ScalarType.Float64, generator: gen))
        using (var expected = single.Apply(v))
        using (var actual = shared.Apply(v))
        {
            var mine = data.Where((_, b) => shared.Loss.IsMine(b)).ToList();
            double shareAlone;
            using (var alone = new Hvp(model, mine, one))
            using (var aloneProduct = alone.Apply(v))
                // Weighted by the share's own size, so rescale to the whole set's weights before comparing.
                shareAlone = Relative(aloneProduct.mul(alone.SampleCount / (double)single.SampleCount), expected);
            emit(Vector("landscape-hvp", actual, expected, new JsonObject { ["share_alone_relative_difference"] = shareAlone }));
        }

        // Gradient and loss (one allreduce of both), loss and error rate.
        {
            var (expected, expectedLoss) = single.Gradient();
            var (actual, actualLoss) = shared.Gradient();
            using (expected)
            using (actual)
                emit(Vector("landscape-gradient", actual, expected));
            emit(Scalars("landscape-loss", [actualLoss], [expectedLoss]));
            var (loss, error) = shared.Evaluate();
            var (loss1, error1) = single.Evaluate();
            emit(Scalars("landscape-evaluate", [loss, error], [loss1, error1]));
        }

        // Lanczos: the 4 largest and 2 smallest eigenvalues from the same seeded start vector.
        {
            var options = new LanczosOptions { Seed = 3, Tolerance = 1e-10 };
            var top = Lanczos.Run(shared, 4, SpectrumEnd.Largest, options);
            var top1 = Lanczos.Run(single, 4, SpectrumEnd.Largest, options);
            var bottom = Lanczos.Run(shared, 2, SpectrumEnd.Smallest, options);
            var bottom1 = Lanczos.Run(single, 2, SpectrumEnd.Smallest, options);
            emit(Scalars("landscape-lanczos", [.. top.Eigenvalues, .. bottom.Eigenvalues], [.. top1.Eigenvalues, .. bottom1.Eigenvalues],
                new JsonObject { ["iterations"] = top.Iterations + bottom.Iterations, ["single_iterations"] = top1.Iterations + bottom1.Iterations }));
        }

        // SLQ: 4 Rademacher probes of 25 steps each; the density's first moments and every node and weight.
        {
            var options = new SlqOptions { Probes = 4, Steps = 25, Seed = 5 };
            var slq = Slq.Run(shared, options);
            var slq1 = Slq.Run(single, options);
            double[] Moments(SlqResult r) => [r.Moment(1).Estimate, r.Moment(2).Estimate, r.Moment(3).Estimate];
            emit(Scalars("landscape-slq-moments", Moments(slq), Moments(slq1)));
            emit(Scalars("landscape-slq-nodes", [.. slq.Nodes.SelectMany(x => x)], [.. slq1.Nodes.SelectMany(x => x)]));
            emit(Scalars("landscape-slq-weights", [.. slq.Weights.SelectMany(x => x)], [.. slq1.Weights.SelectMany(x => x)]));
        }

        // Hutchinson (30 probes) and Hutch++ (30 products): the trace and the per-layer traces.
        foreach (var plusPlus in new[] { false, true })
        {
            var options = new HutchinsonOptions { Probes = 30, Seed = 7, HutchPlusPlus = plusPlus };
            var trace = Hutchinson.Run(shared, options);
            var trace1 = Hutchinson.Run(single, options);
            emit(Scalars(plusPlus ? "landscape-hutch++" : "landscape-hutchinson",
                [trace.Total.Trace, .. trace.Layers.Select(l => l.Trace)], [trace1.Total.Trace, .. trace1.Layers.Select(l => l.Trace)]));
        }

        // The exact Hessian: every column (half columns from symmetry, the default), one allreduce per column.
        using (var exact1 = ExactHessian.Compute(single))
        {
            var folder = workDir is null ? null : Path.Combine(workDir, "columns");
            using (var exact = ExactHessian.Compute(shared, new ExactHessianOptions { CheckpointFolder = folder }))
                emit(Vector("landscape-exact", exact.Hessian, exact1.Hessian, new JsonObject { ["computed_columns"] = exact.ComputedColumns }));
            if (folder is not null)
            {
                // Resumed: rank 0 reads its blocks and broadcasts them; no rank computes a column.
                collectives.Barrier();
                using var resumed = ExactHessian.Compute(shared, new ExactHessianOptions { CheckpointFolder = folder });
                emit(Vector("landscape-exact-resumed", resumed.Hessian, exact1.Hessian, new JsonObject
                {
                    ["computed_columns"] = resumed.ComputedColumns,
                    ["resumed_columns"] = resumed.ResumedColumns,
                }));
            }
        }

        // Gauss-Newton product.
        using (var gn = new GaussNewton(model, data, ranks))
        using (var gn1 = new GaussNewton(model, data, one))
        using (var gen = new Generator(19))
        using (var v = randn(gn.Dimension, ScalarType.Float64, generator: gen))
        using (var actual = gn.Apply(v))
        using (var expected = gn1.Apply(v))
            emit(Vector("landscape-gauss-newton", actual, expected));

        // Float32: the same product, to float32's precision.
        {
            var model32 = Network(ScalarType.Float32);
            var data32 = Data(ScalarType.Float32);
            using var single32 = new Hvp(model32, data32);
            using var shared32 = new Hvp(model32, data32, new LandscapeOptions { Collectives = collectives });
            using var gen = new Generator(17);
            using var v = randn(shared32.Dimension, ScalarType.Float32, generator: gen);
            using var expected = single32.Apply(v);
            using var actual = shared32.Apply(v);
            emit(Vector("landscape-hvp-float32", actual, expected));
        }
        emit(new JsonObject { ["check"] = "landscape-done" });
        return 0;
    }

    static nn.Module<Tensor, Tensor> Network(ScalarType dtype)
    {
        random.manual_seed(2026);
        var net = nn.Sequential(("fc1", nn.Linear(Inputs, Hidden)), ("act", nn.Tanh()), ("fc2", nn.Linear(Hidden, Classes)));
        net.to(dtype);
        return net;
    }

    static List<(Tensor Inputs, Tensor Labels)> Data(ScalarType dtype)
    {
        using var gen = new Generator(4242);
        var x = randn(Samples, Inputs, ScalarType.Float64, generator: gen).to(dtype).DetachFromDisposeScope();
        var y = randint(0, Classes, [Samples], generator: gen).DetachFromDisposeScope();
        var batches = new List<(Tensor, Tensor)>();
        for (long start = 0; start < Samples; start += BatchSize)
        {
            var length = Math.Min(BatchSize, Samples - start);
            batches.Add((x.narrow(0, start, length), y.narrow(0, start, length)));
        }
        return batches;
    }

    /// <summary>max |actual - expected| / max |expected|.</summary>
    static double Relative(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        return a.sub(e).abs().max().ToDouble() / Math.Max(e.abs().max().ToDouble(), double.Epsilon);
    }

    static JsonObject Vector(string check, Tensor actual, Tensor expected, JsonObject? extra = null)
    {
        using var scope = NewDisposeScope();
        var record = new JsonObject
        {
            ["check"] = check,
            ["dtype"] = actual.dtype.ToString(),
            ["elements"] = actual.numel(),
            ["max_relative_difference"] = Relative(actual, expected),
            ["bit_identical"] = actual.eq(expected).all().item<bool>(),
            ["digest"] = Digest(actual.contiguous().cpu().bytes),
        };
        foreach (var (key, value) in extra ?? []) record[key] = value?.DeepClone();
        return record;
    }

    static JsonObject Scalars(string check, double[] actual, double[] expected, JsonObject? extra = null)
    {
        if (actual.Length != expected.Length)
            throw new InvalidOperationException($"{check}: {actual.Length} values against {expected.Length} from one process");
        var scale = Math.Max(expected.Max(Math.Abs), double.Epsilon);
        var record = new JsonObject
        {
            ["check"] = check,
            ["elements"] = actual.Length,
            ["max_relative_difference"] = actual.Zip(expected).Max(p => Math.Abs(p.First - p.Second)) / scale,
            ["bit_identical"] = actual.SequenceEqual(expected),
            ["digest"] = Digest(System.Runtime.InteropServices.MemoryMarshal.AsBytes(actual.AsSpan())),
        };
        // Short lists only: mpirun forwards each rank's output in pieces, and a long line can be cut by another rank's.
        if (actual.Length <= 8) record["values"] = new JsonArray(actual.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        foreach (var (key, value) in extra ?? []) record[key] = value?.DeepClone();
        return record;
    }

    static string Digest(ReadOnlySpan<byte> bytes) => Convert.ToHexString(SHA256.HashData(bytes))[..16];

    static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
