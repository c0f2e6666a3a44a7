namespace WideValley.Experiments;

/// <summary>
/// How much compute a reproduction spends. <see cref="Paper"/> uses the paper's epochs, <see cref="Small"/> a stated
/// fraction of them, <see cref="Smoke"/> a few steps on a data subset, enough to exercise every code path and write
/// every report (what CI runs).
/// </summary>
public enum Budget
{
    /// <summary>A few steps on a data subset: exercises every code path and writes every report (what CI runs); its numbers judge nothing.</summary>
    Smoke,
    /// <summary>A stated fraction of the paper's epochs or training data (each experiment says which).</summary>
    Small,
    /// <summary>The paper's own epochs and data; the committed reports under docs/results use this budget.</summary>
    Paper,
}

/// <summary>Parsing and naming of <see cref="Budget"/> values as the CLI spells them.</summary>
public static class Budgets
{
    /// <summary>The CLI's spelling of every budget, in the order of <see cref="Budget"/>: smoke, small, paper.</summary>
    public static IReadOnlyList<string> Names { get; } = ["smoke", "small", "paper"];

    /// <summary>The CLI's spelling of <paramref name="budget"/> (one of <see cref="Names"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value outside the enum.</exception>
    public static string Name(Budget budget) => budget switch
    {
        Budget.Smoke => "smoke",
        Budget.Small => "small",
        Budget.Paper => "paper",
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>
    /// File name stem of a report: NAME for the paper budget, NAME-BUDGET otherwise, so that a quick run never
    /// overwrites the committed paper-budget report.
    /// </summary>
    public static string ReportStem(string name, Budget budget) => budget == Budget.Paper ? name : $"{name}-{Name(budget)}";

    /// <exception cref="ArgumentException">Not one of <see cref="Names"/>.</exception>
    public static Budget Parse(string text) => (text ?? "").Trim().ToLowerInvariant() switch
    {
        "smoke" => Budget.Smoke,
        "small" => Budget.Small,
        "paper" => Budget.Paper,
        _ => throw new ArgumentException($"--budget must be one of {string.Join(", ", Names)}, got '{text}'"),
    };
}
