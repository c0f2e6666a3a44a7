using TorchSharp;
using WideValley.Connectivity;
using static TorchSharp.torch;

namespace WideValley.Tests.Connectivity;

/// <summary>Closed-form landscapes for the path searches.</summary>
internal static class ConnectivityToys
{
    /// <summary>A float64 vector.</summary>
    public static Tensor Vector(params double[] values) => tensor(values, ScalarType.Float64);

    /// <summary>Its values.</summary>
    public static double[] Values(Tensor t)
    {
        using var cpu = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return cpu.data<double>().ToArray();
    }

    /// <summary>A float64 copy of a tensor's values, compared bit for bit.</summary>
    public static bool SameValues(Tensor a, Tensor b) => Values(a).SequenceEqual(Values(b));

    /// <summary>f(w) = ‖w − centre‖²: convex, every level set a ball.</summary>
    public static FunctionProblem Bowl(double[] centre, FunctionProblemOptions? options = null)
    {
        var c = Vector(centre);
        return new FunctionProblem(w => w.sub(c).square().sum(), centre.Length, options);
    }

    /// <summary>
    /// f(w) = (‖w‖ − 1)² in 2-D: a ring-shaped valley whose zero set is the unit circle. Between (1, 0) and (0, 1) the
    /// geodesic inside a thin level set is the quarter arc, of normalised length (π/2)/√2.
    /// </summary>
    public static FunctionProblem Ring(FunctionProblemOptions? options = null) =>
        new(w => w.norm().sub(1.0).square(), 2, options ?? new FunctionProblemOptions { StepSize = 0.25 });

    /// <summary>The normalised length of the quarter arc from (1, 0) to (0, 1).</summary>
    public static readonly double QuarterArcRatio = Math.PI / 2 / Math.Sqrt(2);

    /// <summary>
    /// Freeman &amp; Bruna's App. E: three points at 120° on the unit circle, target the cyclic permutation
    /// x_k ↦ x_{k+1}, and a 2-3-2 network out = W2·relu(W1·x) without biases (12 weights: W1 = w[0..6) as 3×2,
    /// W2 = w[6..12) as 2×3). Loss = mean over the three points of ‖out − y‖².
    /// </summary>
    public static class PermutationNet
    {
        public const int Parameters = 12;

        public static readonly double[,] Points = PointsAt120Degrees();

        static double[,] PointsAt120Degrees()
        {
            var p = new double[3, 2];
            for (var k = 0; k < 3; k++)
            {
                p[k, 0] = Math.Cos(2 * Math.PI * k / 3);
                p[k, 1] = Math.Sin(2 * Math.PI * k / 3);
            }
            return p;
        }

        /// <summary>The inputs as columns (2×3) and the targets y_k = x_{k+1} as columns (2×3).</summary>
        public static (Tensor Inputs, Tensor Targets) Data()
        {
            var inputs = new double[6];
            var targets = new double[6];
            for (var k = 0; k < 3; k++)
                for (var d = 0; d < 2; d++)
                {
                    inputs[d * 3 + k] = Points[k, d];
                    targets[d * 3 + k] = Points[(k + 1) % 3, d];
                }
            return (tensor(inputs, [2, 3], ScalarType.Float64), tensor(targets, [2, 3], ScalarType.Float64));
        }

        /// <summary>The hidden activations H = relu(W1·X) (3×3; row j = unit j over the three points).</summary>
        public static Tensor Hidden(Tensor w, Tensor inputs) => nn.functional.relu(w.narrow(0, 0, 6).view(3, 2).matmul(inputs));

        public static Func<Tensor, Tensor> Loss()
        {
            var (inputs, targets) = Data();
            return w => w.narrow(0, 6, 6).view(2, 3).matmul(Hidden(w, inputs)).sub(targets).square().sum().div(3.0);
        }

        /// <summary>
        /// An exact zero-loss point: W1's rows are the points (unit k fires only on x_k, since x_j·x_k = −½ for j ≠ k,
        /// so H = I) and W2's columns the targets.
        /// </summary>
        public static double[] ExactSolution()
        {
            var w = new double[Parameters];
            for (var k = 0; k < 3; k++)
            {
                w[2 * k] = Points[k, 0];
                w[2 * k + 1] = Points[k, 1];
                w[6 + k] = Points[(k + 1) % 3, 0];
                w[9 + k] = Points[(k + 1) % 3, 1];
            }
            return w;
        }

        /// <summary>The same network with hidden units 0 and 1 swapped (rows of W1, columns of W2): the same function.</summary>
        public static double[] SwapFirstTwoUnits(double[] w)
        {
            var s = (double[])w.Clone();
            (s[0], s[2]) = (w[2], w[0]);
            (s[1], s[3]) = (w[3], w[1]);
            (s[6], s[7]) = (w[7], w[6]);
            (s[9], s[10]) = (w[10], w[9]);
            return s;
        }

        /// <summary>det H at <paramref name="w"/>: its sign tells which of the two unit orderings a zero-loss point has.</summary>
        public static double HiddenDeterminant(Tensor w)
        {
            var (inputs, targets) = Data();
            using (inputs)
            using (targets)
            using (var h = Hidden(w, inputs))
            using (var det = linalg.det(h))
                return det.item<double>();
        }
    }
}
