using static TorchSharp.torch;

namespace WideValley.TestFactory.Layers;

/// <summary>Helpers of the test factory's network, in an assembly of their own so that loading it needs the factory's folder.</summary>
public static class Features
{
    /// <summary>Side of a 5x5, stride-3 convolution's output for an input of side <paramref name="side"/>.</summary>
    public static long OutputSide(long side) => (side - 5) / 3 + 1;

    /// <summary>tanh of the convolution's output, flattened per sample.</summary>
    public static Tensor TanhFlatten(Tensor convolved) => tanh(convolved).flatten(1);
}
