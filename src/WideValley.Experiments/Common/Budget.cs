namespace WideValley.Experiments;

/// <summary>
/// How much compute a reproduction spends. <see cref="Paper"/> uses the paper's epochs, <see cref="Small"/> a stated
/// fraction of them, <see cref="Smoke"/> a few steps on a data subset, enough to exercise every code path and write
/// every report (what CI runs).
/// </summary>
public enum Budget
{
    Smoke,
    Small,
    Paper,
}

/// <summary>Parsing and naming of <see cref="Budget"/> values as the CLI spells them.</summary>
public static class Budgets
{
    public static IReadOnlyList<string> Names { get; } = ["smoke", "small", "paper"];

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
