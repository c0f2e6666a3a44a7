using System.Globalization;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// Weights or a measurement that hold NaN or infinite values. A landscape measurement of such weights (a diverged
/// run, a damaged file) would only report NaN, or fail deep inside LAPACK; the landscape tools refuse them instead, by
/// this exception, which names the first non-finite parameter (or quantity). An <see cref="InvalidOperationException"/>:
/// the arguments are well formed, but the state of the weights makes the measurement impossible.
/// </summary>
public sealed class NonFiniteValuesException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="what"/> (a parameter or quantity name).</summary>
    public NonFiniteValuesException(string what, string message) : base(message) => What = what;

    /// <summary>The parameter (e.g. <c>fc1.weight</c>) or quantity (e.g. <c>trace</c>) that is not finite.</summary>
    public string What { get; }
}

/// <summary>The finite checks of the landscape tools: on the weights before measuring, on the results before writing.</summary>
public static class FiniteChecks
{
    /// <summary>
    /// Throws <see cref="NonFiniteValuesException"/> naming the first of <paramref name="names"/> (parameters of
    /// <paramref name="model"/>) that holds a NaN or infinite value, with the flat index and value of its first such entry.
    /// </summary>
    /// <param name="model">The network.</param>
    /// <param name="names">The parameters to check, in order (a selection).</param>
    /// <param name="where">The measurement, for the message.</param>
    public static void RequireFiniteParameters(nn.Module model, IEnumerable<string> names, string where)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(names);
        var byName = model.named_parameters().ToDictionary(np => np.name, np => np.parameter);
        using var noGrad = no_grad();
        foreach (var name in names)
        {
            if (!byName.TryGetValue(name, out var p)) continue;
            using var scope = NewDisposeScope();
            var flat = p.detach().reshape(-1);
            var bad = isfinite(flat).logical_not();
            if (!bad.any().item<bool>()) continue;
            var count = bad.sum().item<long>();
            var index = bad.nonzero()[0, 0].item<long>();
            var value = flat[index].to(ScalarType.Float64).item<double>();
            throw new NonFiniteValuesException(name,
                $"{where}: parameter '{name}' holds {count:N0} non-finite value{(count == 1 ? "" : "s")} (the first at index {index:N0}: {Show(value)}) " +
                "of its " + p.numel().ToString("N0", CultureInfo.InvariantCulture) + "; these weights (a diverged run, or a damaged file?) have no loss landscape to measure");
        }
    }

    /// <summary>
    /// Throws <see cref="NonFiniteValuesException"/> when the flat parameter vector <paramref name="flat"/> (laid out as
    /// <paramref name="layout"/> says) holds a NaN or infinite value, naming the parameter and the index within it.
    /// </summary>
    /// <param name="flat">The flat vector.</param>
    /// <param name="layout">Its layout.</param>
    /// <param name="whose">Whose weights they are, e.g. "the end point B".</param>
    /// <param name="where">The measurement, for the message.</param>
    public static void RequireFiniteFlat(Tensor flat, ParameterLayout layout, string whose, string where)
    {
        ArgumentNullException.ThrowIfNull(flat);
        ArgumentNullException.ThrowIfNull(layout);
        using var scope = NewDisposeScope();
        var bad = isfinite(flat.detach()).logical_not();
        if (!bad.any().item<bool>()) return;
        var index = bad.nonzero()[0, 0].item<long>();
        var value = flat[index].to(ScalarType.Float64).item<double>();
        var block = layout.Blocks[layout.BlockOf(index)];
        throw new NonFiniteValuesException(block.Name,
            $"{where}: {whose} has parameter '{block.Name}' with a non-finite value (the first at index {index - block.Offset:N0}: {Show(value)}); " +
            "these weights (a diverged run, or a damaged file?) have no loss landscape to measure");
    }

    /// <summary>Throws <see cref="NonFiniteValuesException"/> when <paramref name="value"/> is NaN or infinite.</summary>
    public static void RequireFinite(double value, string what, string where)
    {
        if (!double.IsFinite(value))
            throw new NonFiniteValuesException(what,
                $"{where}: the {what} came out {Show(value)} although the weights are finite (the loss overflows or is undefined here); nothing was written");
    }

    /// <summary>Throws <see cref="NonFiniteValuesException"/> naming the first NaN or infinite entry of <paramref name="values"/>.</summary>
    public static void RequireFinite(IReadOnlyList<double> values, string what, string where)
    {
        ArgumentNullException.ThrowIfNull(values);
        for (var i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i]))
                throw new NonFiniteValuesException(what,
                    $"{where}: {what} [{i:N0}] came out {Show(values[i])} although the weights are finite (the loss overflows or is undefined here); nothing was written");
    }

    static string Show(double value) => value.ToString(CultureInfo.InvariantCulture);
}
