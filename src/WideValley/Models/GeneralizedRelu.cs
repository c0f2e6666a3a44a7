using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// The generalised ReLU of DANTE (ours: the paper's abstract names it without a formula): the two-slope, piecewise
/// linear f(x) = a x for x &gt;= 0 and f(x) = b x for x &lt; 0, with a, b &gt; 0. It is strictly increasing with slopes
/// bounded below by min(a, b) &gt; 0, which is what the quasi-convexity (SLQC) argument for a generalised linear model
/// needs of its link and what ReLU (b = 0) lacks; a = 1, b = 0.1 by default (ours). With a = 1 it is a leaky ReLU of
/// slope b.
/// </summary>
public sealed class GeneralizedRelu : nn.Module<Tensor, Tensor>
{
    /// <summary>The default slope for x &gt;= 0 (ours).</summary>
    public const double DefaultPositiveSlope = 1.0;

    /// <summary>The default slope for x &lt; 0 (ours).</summary>
    public const double DefaultNegativeSlope = 0.1;

    // Held for the module's life: a Scalar passed to native code must outlive the call (see TorchScalars).
    readonly Scalar _relativeNegativeSlope;
    readonly Scalar _positiveSlope;

    /// <summary>f(x) = <paramref name="positiveSlope"/> x for x &gt;= 0, <paramref name="negativeSlope"/> x for x &lt; 0.</summary>
    /// <exception cref="ArgumentException">A slope that is not finite and positive.</exception>
    public GeneralizedRelu(double positiveSlope = DefaultPositiveSlope, double negativeSlope = DefaultNegativeSlope) : base("GeneralizedRelu")
    {
        if (!(positiveSlope > 0) || !double.IsFinite(positiveSlope))
            throw new ArgumentException($"the generalised ReLU's slope for x >= 0 must be a positive number, got {positiveSlope}", nameof(positiveSlope));
        if (!(negativeSlope > 0) || !double.IsFinite(negativeSlope))
            throw new ArgumentException($"the generalised ReLU's slope for x < 0 must be a positive number (0 would be ReLU), got {negativeSlope}", nameof(negativeSlope));
        PositiveSlope = positiveSlope;
        NegativeSlope = negativeSlope;
        _relativeNegativeSlope = (negativeSlope / positiveSlope).ToScalar();
        _positiveSlope = positiveSlope.ToScalar();
    }

    /// <summary>a, the slope for x &gt;= 0.</summary>
    public double PositiveSlope { get; }

    /// <summary>b, the slope for x &lt; 0.</summary>
    public double NegativeSlope { get; }

    /// <summary>f applied elementwise: a * leaky_relu(x, b / a).</summary>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (PositiveSlope == 1) return input.leaky_relu(_relativeNegativeSlope);
        using var leaky = input.leaky_relu(_relativeNegativeSlope);
        return leaky.mul(_positiveSlope);
    }

    /// <summary>Frees the held scalars.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _relativeNegativeSlope.Dispose();
            _positiveSlope.Dispose();
        }
        base.Dispose(disposing);
    }
}
