namespace WideValley.Experiments;

/// <summary>Comma-separated lists of named items on a reproduction's command line (Table 1 rows, Sec. 5.1 networks).</summary>
public static class NameLists
{
    /// <summary>
    /// The items of <paramref name="known"/> that <paramref name="text"/> names, in <paramref name="known"/>'s order
    /// (the paper's), whatever order they were given in. Names are trimmed and lower-cased; <paramref name="find"/>
    /// looks one up and throws, with its own message, for an unknown one.
    /// </summary>
    /// <exception cref="ArgumentException">No name (<paramref name="noneMessage"/>), an unknown one, or one named twice.</exception>
    public static IReadOnlyList<T> Parse<T>(string? text, IReadOnlyList<T> known, Func<T, string> nameOf, Func<string, T> find, string option, string noneMessage)
    {
        var names = (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Length == 0) throw new ArgumentException(noneMessage);
        var seen = new HashSet<string>();
        foreach (var name in names)
        {
            find(name.ToLowerInvariant());
            if (!seen.Add(name.ToLowerInvariant())) throw new ArgumentException($"{option} names '{name}' twice");
        }
        return known.Where(item => seen.Contains(nameOf(item))).ToList();
    }
}
