namespace WideValley.Reports;

/// <summary>
/// Argument checks shared by the plots. Messages say which argument, which index and what was expected, because the
/// data usually come from a long computation and the user needs to know exactly what went wrong in it.
/// </summary>
internal static class InputChecks
{
    public static void NotEmpty<T>(IReadOnlyList<T>? values, string name, string what)
    {
        ArgumentNullException.ThrowIfNull(values, name);
        if (values.Count == 0) throw new ArgumentException($"{name} is empty: {what}.", name);
    }

    /// <summary>Every value finite (no NaN, no infinity).</summary>
    public static void AllFinite(IReadOnlyList<double> values, string name)
    {
        for (var i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i]))
                throw new ArgumentException(
                    $"{name}[{i}] is {Describe(values[i])}; every value must be finite ({CountNonFinite(values)} of " +
                    $"{values.Count} are not).", name);
    }

    public static void SameLength(IReadOnlyList<double> a, string aName, IReadOnlyList<double> b, string bName)
    {
        if (a.Count != b.Count)
            throw new ArgumentException(
                $"{aName} has {a.Count} values but {bName} has {b.Count}; they must be the same length.", bName);
    }

    /// <summary>Strictly increasing, as a grid or an x axis must be.</summary>
    public static void StrictlyIncreasing(IReadOnlyList<double> values, string name)
    {
        for (var i = 1; i < values.Count; i++)
            if (!(values[i] > values[i - 1]))
                throw new ArgumentException(
                    $"{name} must be strictly increasing, but {name}[{i - 1}] = {Format(values[i - 1])} and " +
                    $"{name}[{i}] = {Format(values[i])}.", name);
    }

    public static void AllPositive(IReadOnlyList<double> values, string name, string why)
    {
        for (var i = 0; i < values.Count; i++)
            if (!(values[i] > 0))
                throw new ArgumentException($"{name}[{i}] = {Format(values[i])}, but {why} needs every value > 0.", name);
    }

    public static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }

    public static string Format(double value) => value.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);

    private static string Describe(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "+infinity" : "-infinity";

    private static int CountNonFinite(IReadOnlyList<double> values)
    {
        var count = 0;
        foreach (var v in values) if (!double.IsFinite(v)) count++;
        return count;
    }
}
