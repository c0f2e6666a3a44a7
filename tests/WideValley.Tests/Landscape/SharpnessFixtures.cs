using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Tests.Landscape;

/// <summary>The closed-form landscapes and ReLU networks of the sharpness tests.</summary>
internal static class SharpnessFixtures
{
    /// <summary>
    /// L(x) = 1/2 (x - x*)^T A (x - x*) + c as a "network": x is held as two parameters, "head" (the first
    /// <c>split</c> coordinates) and "tail" (the rest), so that selections and the flat layout of several tensors are
    /// exercised; the output is L repeated once per input row, and the loss is its mean (<see cref="Options"/>).
    /// </summary>
    public sealed class Quadratic : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Parameter head;
        private readonly TorchSharp.Modules.Parameter tail;
        private readonly Tensor matrix;
        private readonly Tensor center;
        private readonly double constant;

        public Quadratic(Tensor matrix, Tensor center, Tensor start, int split, double constant = 0, ScalarType dtype = ScalarType.Float64,
            string headName = "head", string tailName = "tail")
            : base("quadratic")
        {
            this.matrix = matrix.to(dtype).DetachFromDisposeScope();
            this.center = center.to(dtype).DetachFromDisposeScope();
            this.constant = constant;
            var n = start.shape[0];
            head = new TorchSharp.Modules.Parameter(start.narrow(0, 0, split).to(dtype).clone().DetachFromDisposeScope());
            tail = new TorchSharp.Modules.Parameter(start.narrow(0, split, n - split).to(dtype).clone().DetachFromDisposeScope());
            register_parameter(headName, head);
            register_parameter(tailName, tail);
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var d = cat([head, tail], 0).sub(center);
            var value = d.dot(matrix.mv(d)).DividedBy(2).Plus(constant);
            return value.expand(input.shape[0]).MoveToOuterDisposeScope();
        }
    }

    /// <summary>The loss of <see cref="Quadratic"/>: the mean of its output.</summary>
    public static LandscapeOptions Options(ParameterSelection? selection = null) => new()
    {
        Loss = (output, _) => output.mean(),
        LossName = "quadratic-output",
        Parameters = selection ?? ParameterSelection.All,
    };

    /// <summary>One batch of two dummy rows (the quadratic ignores its input).</summary>
    public static List<(Tensor Inputs, Tensor Labels)> DummySet(ScalarType dtype = ScalarType.Float64) =>
        [(zeros(2, 1, dtype), zeros(2, ScalarType.Int64))];

    /// <summary>A seeded random point of length n with entries of size about 1 (float64).</summary>
    public static Tensor RandomPoint(int n, long seed)
    {
        using var gen = new Generator((ulong)seed);
        return randn(n, ScalarType.Float64, generator: gen);
    }

    /// <summary>The largest eigenvalue of a symmetric float64 matrix.</summary>
    public static double LambdaMax(Tensor symmetric)
    {
        using var scope = NewDisposeScope();
        return linalg.eigvalsh(symmetric).max().ToDouble();
    }

    /// <summary>in-hidden-out ReLU network (fc1, relu, fc2), float64, seeded.</summary>
    public static nn.Module<Tensor, Tensor> ReluNet(int inputs = 5, int hidden = 7, int outputs = 3, long seed = 17)
    {
        TorchRuntime.EnsureInitialized();
        random.manual_seed(seed);
        var net = nn.Sequential(("fc1", nn.Linear(inputs, hidden)), ("relu", nn.ReLU()), ("fc2", nn.Linear(hidden, outputs)));
        net.to(ScalarType.Float64);
        return net;
    }

    /// <summary>
    /// Dinh et al.'s rescaling of <see cref="ReluNet"/>: hidden neuron j's incoming weights and bias times alpha_j,
    /// its outgoing weights times 1 / alpha_j (fc2's bias unchanged). ReLU(a z) = a ReLU(z) for a &gt; 0, so the
    /// function is unchanged. One alpha for all neurons is the per-layer rescaling.
    /// </summary>
    public static void Rescale(nn.Module<Tensor, Tensor> net, Tensor alphas)
    {
        var p = net.named_parameters().ToDictionary(np => np.name, np => np.parameter);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var a = alphas.to(ScalarType.Float64);
        p["fc1.weight"].mul_(a.unsqueeze(1));
        p["fc1.bias"].mul_(a);
        p["fc2.weight"].div_(a.unsqueeze(0));
    }

    /// <summary>The raw bytes of every parameter and buffer, for bit-for-bit comparisons (-0 and +0 differ here).</summary>
    public static byte[][] Snapshot(nn.Module module) =>
        module.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv =>
        {
            using var c = kv.Value.detach().cpu().contiguous();
            return c.bytes.ToArray();
        }).ToArray();

    /// <summary>Reports synchronously (Progress&lt;T&gt; would post to a thread pool) and runs an action on each report.</summary>
    public sealed class SyncProgress(Action<CurvatureProgress> onReport) : IProgress<CurvatureProgress>
    {
        public int Reports { get; private set; }

        public void Report(CurvatureProgress value)
        {
            Reports++;
            onReport(value);
        }
    }
}
