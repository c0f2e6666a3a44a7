using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// An external ("magnetic") field h of a spherical p-spin glass: H_h(w) = L(w) − ⟨h, w⟩. The sign convention is ours
/// (Chaudhari and Soatto's abstract does not fix one): a field pulls the minimiser towards the direction of h, and the
/// gradient of the field term is −h.
/// </summary>
public abstract record ExternalField
{
    ExternalField() { }

    /// <summary>A given field vector (its length must be the glass's N).</summary>
    /// <exception cref="ArgumentException">Empty or with a non-finite entry.</exception>
    public static ExternalField Given(IReadOnlyList<double> values) => new GivenField(values);

    /// <summary>
    /// A field of per-coordinate size <paramref name="strength"/> in a fixed random direction: h = strength·√N·u with u
    /// uniform on the unit sphere (drawn from <paramref name="seed"/>), so |h|² = strength²·N and ⟨h, w⟩ is of order
    /// strength·N when w is aligned with h, the same order as L.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative or non-finite strength.</exception>
    public static ExternalField RandomDirection(double strength, long seed) => new RandomDirectionField(strength, seed);

    /// <summary>The field as a vector of length <paramref name="n"/> (float64, on the CPU).</summary>
    /// <exception cref="ArgumentException">A given field whose length is not <paramref name="n"/>.</exception>
    public abstract double[] Values(int n);

    sealed record GivenField : ExternalField
    {
        readonly double[] _values;

        public GivenField(IReadOnlyList<double> values)
        {
            ArgumentNullException.ThrowIfNull(values);
            if (values.Count == 0) throw new ArgumentException("ExternalField.Given: the field vector is empty.", nameof(values));
            for (var i = 0; i < values.Count; i++)
                if (!double.IsFinite(values[i]))
                    throw new ArgumentException($"ExternalField.Given: entry {i} of the field is {values[i]}; every entry must be finite.", nameof(values));
            _values = [.. values];
        }

        public override double[] Values(int n) => _values.Length == n
            ? (double[])_values.Clone()
            : throw new ArgumentException($"ExternalField: the given field has length {_values.Length}, but the spin glass has N = {n} spins; the field must have length N.");
    }

    sealed record RandomDirectionField : ExternalField
    {
        public RandomDirectionField(double strength, long seed)
        {
            if (!double.IsFinite(strength) || strength < 0)
                throw new ArgumentOutOfRangeException(nameof(strength), strength, $"ExternalField.RandomDirection: the strength must be finite and non-negative; got {strength}.");
            Strength = strength;
            Seed = seed;
        }

        public double Strength { get; }

        public long Seed { get; }

        public override double[] Values(int n)
        {
            using var scope = NewDisposeScope();
            using var generator = new Generator(unchecked((ulong)Seed));
            var direction = randn(n, ScalarType.Float64, generator: generator);
            direction.DivideBy_(direction.norm().item<double>());
            direction.Scale_(Strength * Math.Sqrt(n));
            return direction.data<double>().ToArray();
        }
    }
}
