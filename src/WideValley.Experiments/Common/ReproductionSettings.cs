namespace WideValley.Experiments;

/// <summary>
/// What every run-based reproduction's settings share: the budget, the seeds, where the runs and the report go, the
/// machine's threads and device, and the command and machine lines the report prints. Each reproduction derives its own
/// settings record from this one and adds what is specific to it (networks, arms, learning rates).
/// </summary>
public abstract record ReproductionSettings
{
    /// <summary>smoke, small or paper.</summary>
    public required Budget Budget { get; init; }

    /// <summary>Independent runs per configuration (seeds <see cref="FirstSeed"/>, <see cref="FirstSeed"/> + 1, ...).</summary>
    public int Seeds { get; init; } = 3;

    /// <summary>The first seed.</summary>
    public long FirstSeed { get; init; } = 1;

    /// <summary>A Fashion-MNIST folder (default: the usual search).</summary>
    public string? FashionMnistDir { get; init; }

    /// <summary>libtorch threads per run (0: libtorch's default).</summary>
    public int Threads { get; init; }

    /// <summary>cpu, cuda or cuda:N.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The folder of the run folders.</summary>
    public required string RunsRoot { get; init; }

    /// <summary>The report's folder.</summary>
    public required string OutDir { get; init; }

    /// <summary>Train nothing: report the runs that have finished, the others as pending.</summary>
    public bool ReportOnly { get; init; }

    /// <summary>The command that reproduces the report.</summary>
    public required string CommandLine { get; init; }

    /// <summary>The machine in one line.</summary>
    public required string Machine { get; init; }

    /// <summary>The seeds in order.</summary>
    public IEnumerable<long> SeedValues => Enumerable.Range(0, Seeds).Select(i => FirstSeed + i);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid shared value (with its command-line option).</summary>
    protected void ValidateShared()
    {
        if (Seeds < 1) throw new ArgumentException($"--seeds must be at least 1, got {Seeds}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless <paramref name="names"/> is a non-empty list of distinct members of
    /// <paramref name="known"/>; the message names <paramref name="option"/>.
    /// </summary>
    protected static void ValidateSubset(IReadOnlyList<string>? names, IReadOnlyList<string> known, string option, string what = "network")
    {
        if (names is null || names.Count == 0) throw new ArgumentException($"{option} must name at least one of {string.Join(", ", known)}");
        foreach (var n in names)
            if (!known.Contains(n)) throw new ArgumentException($"{option}: unknown {what} '{n}'; the {what}s are {string.Join(", ", known)}");
        if (names.Distinct().Count() != names.Count) throw new ArgumentException($"{option}: {what} '{names.GroupBy(n => n).First(g => g.Count() > 1).Key}' is given twice in {string.Join(",", names)}");
    }
}
