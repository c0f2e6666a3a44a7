using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Tests.Optim;

/// <summary>
/// A 1-D landscape like the paper's Fig. 2: a wide, shallow well (depth 1, width 0.6) at -1 and a sharp, deeper well
/// (depth 1.5, width 0.15) at +1, f(x) = -exp(-(x+1)^2 / (2 0.6^2)) - 1.5 exp(-(x-1)^2 / (2 0.15^2)).
/// A parameter tensor of K elements holds K independent copies of the problem (the loss is their sum), so one
/// optimizer run yields K independent runs; gradients are analytic and written straight into .grad.
/// </summary>
internal sealed class TwoWellLandscape
{
    public const double WideCentre = -1, WideWidth = 0.6, WideDepth = 1.0;
    public const double SharpCentre = 1, SharpWidth = 0.15, SharpDepth = 1.5;
    /// <summary>The largest curvature (bottom of the sharp well), which bounds stable step sizes.</summary>
    public const double MaxCurvature = SharpDepth / (SharpWidth * SharpWidth);

    public static double F(double x) =>
        -WideDepth * Math.Exp(-(x - WideCentre) * (x - WideCentre) / (2 * WideWidth * WideWidth))
        - SharpDepth * Math.Exp(-(x - SharpCentre) * (x - SharpCentre) / (2 * SharpWidth * SharpWidth));

    public static double Derivative(double x) =>
        WideDepth * Math.Exp(-(x - WideCentre) * (x - WideCentre) / (2 * WideWidth * WideWidth)) * (x - WideCentre) / (WideWidth * WideWidth)
        + SharpDepth * Math.Exp(-(x - SharpCentre) * (x - SharpCentre) / (2 * SharpWidth * SharpWidth)) * (x - SharpCentre) / (SharpWidth * SharpWidth);

    public Parameter X { get; }
    public int Calls { get; private set; }
    readonly Tensor _loss;

    public TwoWellLandscape(double[] starts, ScalarType dtype)
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
