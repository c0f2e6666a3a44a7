using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using WideValley.Experiments;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>
/// K independent optimizer runs on the two-well landscape of seed 003's Fig. 2 (the experiments' <see cref="TwoWellLandscape"/>
/// with its defaults: a wide, shallow well at -1 and a sharp, deeper one at +1): a parameter tensor of K elements holds
/// K copies of the problem (the loss is their sum), and the closure writes the analytic gradients straight into .grad.
/// </summary>
internal sealed class TwoWellParticles
{
    /// <summary>The landscape every copy runs on.</summary>
    public static readonly TwoWellLandscape Landscape = new();

    public static double F(double x) => Landscape.Value(x);

    public static double Derivative(double x) => Landscape.Derivative(x);

    public Parameter X { get; }
    public int Calls { get; private set; }
    readonly Tensor _loss;

    public TwoWellParticles(double[] starts, ScalarType dtype)
    {
        X = new Parameter(tensor(starts, ScalarType.Float64).to(dtype).DetachFromDisposeScope());
        X.grad = zeros_like(X);
        _loss = zeros(1, dtype).DetachFromDisposeScope();
    }

    public Tensor Closure()
    {
        Calls++;
        // The local-entropy estimator sets .grad to None before each call, as torch's zero_grad(set_to_none=True) does.
        using (var existing = X.grad)
            if (existing is null)
            {
                using var fresh = zeros_like(X);
                X.grad = fresh;
            }
        using var g = X.grad!;
        if (X.dtype == ScalarType.Float32)
        {
            var xs = MemoryMarshal.Cast<byte, float>(X.bytes);
            var gs = MemoryMarshal.Cast<byte, float>(g.bytes);
            for (var i = 0; i < xs.Length; i++) gs[i] = (float)Derivative(xs[i]);
        }
        else
        {
            var xs = MemoryMarshal.Cast<byte, double>(X.bytes);
            var gs = MemoryMarshal.Cast<byte, double>(g.bytes);
            for (var i = 0; i < xs.Length; i++) gs[i] = Derivative(xs[i]);
        }
        return _loss;
    }
}
