using System.Globalization;

namespace WideValley.Experiments;

/// <summary>
/// A one-dimensional landscape like the cartoon of seed 003, Fig. 2: a wide, shallow well and a sharp, deeper one,
/// f(x) = -A_w exp(-(x - c_w)^2 / (2 s_w^2)) - A_s exp(-(x - c_s)^2 / (2 s_s^2)). The defaults put the wide well
/// (depth 1, width 0.6) at -1 and the sharp well (depth 1.5, width 0.15) at +1: the sharp one is the global minimum,
/// deeper by half the temperature-1 energy scale, and four times narrower, so at the paper's temperature T = 1 the
/// wide one holds more Gibbs mass. f vanishes far from both wells, which makes "f = 0" the natural flat reference.
/// </summary>
public sealed record TwoWellLandscape
{
    /// <summary>c_w, the centre of the wide well (default -1).</summary>
    public double WideCentre { get; init; } = -1;
    /// <summary>s_w, the wide well's standard deviation (default 0.6; positive, larger than <see cref="SharpWidth"/>).</summary>
    public double WideWidth { get; init; } = 0.6;
    /// <summary>A_w, the wide well's depth (default 1; positive, below <see cref="SharpDepth"/>).</summary>
    public double WideDepth { get; init; } = 1;
    /// <summary>c_s, the centre of the sharp well (default +1).</summary>
    public double SharpCentre { get; init; } = 1;
    /// <summary>s_s, the sharp well's standard deviation (default 0.15; positive).</summary>
    public double SharpWidth { get; init; } = 0.15;
    /// <summary>A_s, the sharp well's depth (default 1.5; positive).</summary>
    public double SharpDepth { get; init; } = 1.5;

    /// <summary>f(x).</summary>
    public double Value(double x) => Evaluate(x).Value;

    /// <summary>f'(x).</summary>
    public double Derivative(double x) => Evaluate(x).Derivative;

    /// <summary>f(x) and f'(x) together: they share the two exponentials, which is most of the cost.</summary>
    public (double Value, double Derivative) Evaluate(double x)
    {
        var wide = Well(x, WideCentre, WideWidth, WideDepth);
        var sharp = Well(x, SharpCentre, SharpWidth, SharpDepth);
        return (-wide - sharp,
            wide * (x - WideCentre) / (WideWidth * WideWidth) + sharp * (x - SharpCentre) / (SharpWidth * SharpWidth));
    }

    /// <summary>
    /// An upper bound on |f''| (a Gaussian well of depth A and width s has its largest curvature A / s^2 at its bottom),
    /// which sets stable and accurate step sizes for gradient descent and Langevin dynamics on f.
    /// </summary>
    public double MaxCurvature => WideDepth / (WideWidth * WideWidth) + SharpDepth / (SharpWidth * SharpWidth);

    static double Well(double x, double centre, double width, double depth) =>
        depth * Math.Exp(-(x - centre) * (x - centre) / (2 * width * width));

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value that does not describe a wide shallow and a sharp deep well.</summary>
    public void Validate()
    {
        foreach (var (name, value) in new[]
        {
            ("wide-well centre", WideCentre), ("wide-well width", WideWidth), ("wide-well depth", WideDepth),
            ("sharp-well centre", SharpCentre), ("sharp-well width", SharpWidth), ("sharp-well depth", SharpDepth),
        })
            if (!double.IsFinite(value)) throw new ArgumentException($"the {name} must be a finite number, got {Text(value)}");
        if (!(WideWidth > 0 && SharpWidth > 0)) throw new ArgumentException($"well widths must be positive, got {Text(WideWidth)} and {Text(SharpWidth)}");
        if (!(WideDepth > 0 && SharpDepth > 0)) throw new ArgumentException($"well depths must be positive, got {Text(WideDepth)} and {Text(SharpDepth)}");
        if (!(SharpWidth < WideWidth)) throw new ArgumentException($"the sharp well must be narrower than the wide one, got widths {Text(SharpWidth)} and {Text(WideWidth)}");
        if (!(SharpDepth > WideDepth)) throw new ArgumentException($"the sharp well must be deeper than the wide one, got depths {Text(SharpDepth)} and {Text(WideDepth)}");
        // Wells that overlap too much merge into one minimum; the experiment needs two valleys and a barrier between them.
        _ = Analyze();
    }

    /// <summary>The two minima of f and the barrier top between them, located numerically.</summary>
    /// <param name="WideMinimum">The local minimum in the wide well.</param>
    /// <param name="SharpMinimum">The local minimum in the sharp well (the global one).</param>
    /// <param name="Watershed">The local maximum between them: gradient descent from either side of it ends in that side's well.</param>
    public readonly record struct Valleys(double WideMinimum, double SharpMinimum, double Watershed);

    /// <summary>
    /// Finds the sign changes of f' on a grid fine enough for the narrower well and refines each by bisection.
    /// </summary>
    /// <exception cref="ArgumentException">f does not have exactly two minima with a maximum between them.</exception>
    public Valleys Analyze()
    {
        var reach = 6 * WideWidth;
        var lo = Math.Min(WideCentre, SharpCentre) - reach;
        var hi = Math.Max(WideCentre, SharpCentre) + reach;
        var h = SharpWidth / 50;
        var n = (int)Math.Ceiling((hi - lo) / h);
        var minima = new List<double>();
        var maxima = new List<double>();
        var previous = Derivative(lo);
        for (var i = 1; i <= n; i++)
        {
            var a = lo + (i - 1) * h;
            var b = lo + i * h;
            var current = Derivative(b);
            if (previous < 0 && current >= 0) minima.Add(Bisect(a, b));
            else if (previous > 0 && current <= 0) maxima.Add(Bisect(a, b));
            previous = current;
        }
        if (minima.Count != 2 || maxima.Count != 1)
            throw new ArgumentException(
                $"the wells at {Text(WideCentre)} and {Text(SharpCentre)} overlap so much that f has {minima.Count} minima " +
                "instead of two; move them apart or make them narrower");
        var wide = minima.MinBy(m => Math.Abs(m - WideCentre));
        var sharp = minima.MinBy(m => Math.Abs(m - SharpCentre));
        if (wide == sharp) throw new ArgumentException("both minima of f lie closest to the same well centre; move the wells apart");
        return new Valleys(wide, sharp, maxima[0]);
    }

    /// <summary>The zero of f' in [a, b], where f' changes sign.</summary>
    double Bisect(double a, double b)
    {
        var fa = Derivative(a);
        for (var i = 0; i < 100 && b - a > 1e-13; i++)
        {
            var m = 0.5 * (a + b);
            var fm = Derivative(m);
            if (Math.Sign(fm) == Math.Sign(fa)) { a = m; fa = fm; }
            else b = m;
        }
        return 0.5 * (a + b);
    }

    static string Text(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
