namespace WideValley.Data;

/// <summary>
/// A data file or folder is missing, unreadable or malformed. The message always names the file (or folder) and says
/// what was found and what was expected, so that a user can fix the input without reading code.
/// </summary>
public class DataException : IOException
{
    /// <summary>The file or folder the problem is about.</summary>
    public string Path { get; }

    /// <summary>A problem with <paramref name="path"/>; the message is "path: problem".</summary>
    public DataException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        Path = path;
    }
}

/// <summary>
/// No folder in a dataset's search order holds the complete set (or the folder given explicitly does not). Callers
/// that have a fallback (the demo's built-in subset, the benchmark's synthetic data) catch this one and let every
/// other <see cref="DataException"/> (a corrupt file in a folder that was found) through.
/// </summary>
public sealed class DatasetNotFoundException : DataException
{
    /// <summary>Folders that exist but do not hold every file (each with what it lacks); empty when none did.</summary>
    public IReadOnlyList<string> IncompleteFolders { get; }

    /// <summary>Not found at <paramref name="path"/>; <paramref name="incompleteFolders"/> are the folders skipped as incomplete.</summary>
    public DatasetNotFoundException(string path, string problem, IReadOnlyList<string> incompleteFolders)
        : base(path, problem)
    {
        IncompleteFolders = incompleteFolders;
    }
}
