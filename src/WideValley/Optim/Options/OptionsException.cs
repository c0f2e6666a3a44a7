using System.Text.RegularExpressions;

namespace WideValley.Optim;

/// <summary>
/// An invalid value in an options record. <see cref="ArgumentException.ParamName"/> is the record's property path
/// (e.g. <c>LangevinLr</c>, or <c>LocalEntropy.LangevinLr</c> inside an optimizer's options), so that a front end can
/// name the setting the way its user typed it: <see cref="Describe"/> renders the message with any naming, and
/// the plain <see cref="Exception.Message"/> uses the property paths.
/// </summary>
public sealed partial class OptionsException : ArgumentException
{
    /// <summary>An invalid <paramref name="parameter"/>.</summary>
    /// <param name="parameter">Property path of the invalid value.</param>
    /// <param name="problem">
    /// What is wrong, to follow the parameter's name, e.g. "must be positive, got -1". Other settings it mentions are
    /// written as <c>{PropertyPath}</c>, so that <see cref="Describe"/> names them too.
    /// </param>
    public OptionsException(string parameter, string problem)
        : base(Render(parameter, problem, p => p), parameter)
    {
        Parameter = parameter;
        Problem = problem;
    }

    /// <summary>Property path of the invalid value (same as <see cref="ArgumentException.ParamName"/>).</summary>
    public string Parameter { get; }

    /// <summary>What is wrong, with other settings as <c>{PropertyPath}</c> placeholders.</summary>
    public string Problem { get; }

    /// <summary>"Path problem", without the "(Parameter ...)" suffix <see cref="ArgumentException"/> would add.</summary>
    public override string Message => Render(Parameter, Problem, p => p);

    /// <summary>The message with every property path replaced by <paramref name="name"/>(path), e.g. a CLI flag.</summary>
    public string Describe(Func<string, string> name) => Render(Parameter, Problem, name);

    /// <summary>The same error one record further out: paths get <paramref name="prefix"/> and a dot in front.</summary>
    public OptionsException Within(string prefix) =>
        new($"{prefix}.{Parameter}", Placeholder().Replace(Problem, m => $"{{{prefix}.{m.Groups[1].Value}}}"));

    static string Render(string parameter, string problem, Func<string, string> name) =>
        $"{name(parameter)} {Placeholder().Replace(problem, m => name(m.Groups[1].Value))}";

    [GeneratedRegex(@"\{([A-Za-z][A-Za-z0-9.]*)\}")]
    private static partial Regex Placeholder();
}

/// <summary>Checks shared by the options records' <c>Validate</c> methods; each throws <see cref="OptionsException"/>.</summary>
public static class OptionChecks
{
    /// <summary>Finite and greater than zero.</summary>
    public static void Positive(double value, string parameter)
    {
        if (!(value > 0) || double.IsInfinity(value)) throw new OptionsException(parameter, $"must be a positive number, got {value}");
    }

    /// <summary>Finite and zero or more.</summary>
    public static void NonNegative(double value, string parameter)
    {
        if (!(value >= 0) || double.IsInfinity(value)) throw new OptionsException(parameter, $"must be zero or positive, got {value}");
    }

    /// <summary>In [0, 1).</summary>
    public static void UnitInterval(double value, string parameter)
    {
        if (!(value >= 0 && value < 1)) throw new OptionsException(parameter, $"must be in [0, 1), got {value}");
    }
}
