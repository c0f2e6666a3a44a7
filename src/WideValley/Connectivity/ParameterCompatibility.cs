using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>One trainable parameter as a path search sees it: its name, shape and element type.</summary>
/// <param name="Name">The dotted name from <c>named_parameters()</c>, e.g. "fc2.weight".</param>
/// <param name="Shape">The tensor's shape.</param>
/// <param name="Dtype">The tensor's element type.</param>
public sealed record ParameterSignature(string Name, long[] Shape, ScalarType Dtype)
{
    /// <summary>The trainable parameters (requires_grad) of <paramref name="model"/>, in <c>named_parameters()</c> order.</summary>
    public static IReadOnlyList<ParameterSignature> Of(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.named_parameters().Where(np => np.parameter.requires_grad)
            .Select(np => new ParameterSignature(np.name, np.parameter.shape, np.parameter.dtype)).ToArray();
    }
}

/// <summary>What kind of difference <see cref="ParameterCompatibility.FirstDifference(IReadOnlyList{ParameterSignature}, IReadOnlyList{ParameterSignature}, string, string)"/> found.</summary>
public enum ParameterDifferenceKind
{
    /// <summary>The first model has the parameter, the second does not.</summary>
    Missing,
    /// <summary>The second model has a parameter the first does not.</summary>
    Extra,
    /// <summary>Both have the parameter, with different shapes.</summary>
    Shape,
    /// <summary>Both have the parameter, with the same shape but different element types.</summary>
    Dtype,
    /// <summary>Both have the same parameters, but in a different order (their flat vectors would not line up).</summary>
    Order,
}

/// <summary>The first parameter at which two models differ.</summary>
/// <param name="Name">The parameter's name.</param>
/// <param name="Kind">How it differs.</param>
/// <param name="Message">A sentence naming the parameter and both sides, e.g.
/// "model B differs at 'fc2.weight': shape [10, 500] in A, [10, 300] in B".</param>
public sealed record ParameterDifference(string Name, ParameterDifferenceKind Kind, string Message);

/// <summary>
/// Whether two models have the same architecture as far as a path between them is concerned: the same trainable
/// parameters (name, shape, element type) in the same order, so that their flat parameter vectors live in one space
/// and line up entry by entry. Buffers (BatchNorm running statistics) are not compared: they follow from the
/// parameters and are recomputed at every point.
/// </summary>
public static class ParameterCompatibility
{
    /// <summary>
    /// The first difference between two parameter lists, or null when they agree. "First" is by position: the lists are
    /// walked side by side, and at the first position where they disagree the difference is reported as a shape or
    /// dtype difference (same name), a parameter of <paramref name="a"/> missing from <paramref name="b"/>, a parameter
    /// of <paramref name="b"/> that <paramref name="a"/> lacks, or (both names present in both lists) an order difference.
    /// </summary>
    /// <param name="a">The reference model's parameters.</param>
    /// <param name="b">The compared model's parameters.</param>
    /// <param name="nameA">How messages call the reference model (e.g. its file name).</param>
    /// <param name="nameB">How messages call the compared model.</param>
    public static ParameterDifference? FirstDifference(IReadOnlyList<ParameterSignature> a, IReadOnlyList<ParameterSignature> b,
        string nameA = "A", string nameB = "B")
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var namesA = Positions(a, nameA);
        var namesB = Positions(b, nameB);
        var prefix = $"model {nameB} differs at";
        for (var i = 0; i < Math.Max(a.Count, b.Count); i++)
        {
            if (i >= b.Count)
                return Missing(a[i]);
            if (i >= a.Count)
                return Extra(b[i]);
            var (pa, pb) = (a[i], b[i]);
            if (pa.Name == pb.Name)
            {
                if (!pa.Shape.SequenceEqual(pb.Shape))
                    return new(pa.Name, ParameterDifferenceKind.Shape,
                        $"{prefix} '{pa.Name}': shape {Shape(pa.Shape)} in {nameA}, {Shape(pb.Shape)} in {nameB}");
                if (pa.Dtype != pb.Dtype)
                    return new(pa.Name, ParameterDifferenceKind.Dtype,
                        $"{prefix} '{pa.Name}': dtype {pa.Dtype} in {nameA}, {pb.Dtype} in {nameB}");
                continue;
            }
            if (!namesB.ContainsKey(pa.Name)) return Missing(pa);
            if (!namesA.ContainsKey(pb.Name)) return Extra(pb);
            return new(pa.Name, ParameterDifferenceKind.Order,
                $"{prefix} '{pa.Name}': it is parameter {i + 1} of {a.Count} in {nameA} but {namesB[pa.Name] + 1} of {b.Count} in {nameB} " +
                "(same parameters in another order: the flat parameter vectors would not line up)");
        }
        return null;

        ParameterDifference Missing(ParameterSignature p) => new(p.Name, ParameterDifferenceKind.Missing,
            $"{prefix} '{p.Name}': present in {nameA} (shape {Shape(p.Shape)}), missing in {nameB}");
        ParameterDifference Extra(ParameterSignature p) => new(p.Name, ParameterDifferenceKind.Extra,
            $"{prefix} '{p.Name}': not in {nameA}, present in {nameB} (shape {Shape(p.Shape)})");
    }

    /// <summary>The first difference between the trainable parameters of two models, or null when they agree.</summary>
    /// <inheritdoc cref="FirstDifference(IReadOnlyList{ParameterSignature}, IReadOnlyList{ParameterSignature}, string, string)"/>
    public static ParameterDifference? FirstDifference(nn.Module a, nn.Module b, string nameA = "A", string nameB = "B") =>
        FirstDifference(ParameterSignature.Of(a), ParameterSignature.Of(b), nameA, nameB);

    /// <summary>Throws when two models differ (see <see cref="FirstDifference(nn.Module, nn.Module, string, string)"/>).</summary>
    /// <exception cref="ArgumentException">The models differ; the message names the first differing parameter.</exception>
    public static void Require(nn.Module a, nn.Module b, string nameA = "A", string nameB = "B")
    {
        var difference = FirstDifference(a, b, nameA, nameB);
        if (difference is not null) throw new ArgumentException($"{difference.Message}; a path needs two models of the same architecture.");
    }

    private static Dictionary<string, int> Positions(IReadOnlyList<ParameterSignature> parameters, string model)
    {
        var positions = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < parameters.Count; i++)
            if (!positions.TryAdd(parameters[i].Name, i))
                throw new ArgumentException($"model {model} lists parameter '{parameters[i].Name}' twice (positions {positions[parameters[i].Name] + 1} and {i + 1}).");
        return positions;
    }

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}
