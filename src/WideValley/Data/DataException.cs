namespace WideValley.Data;

/// <summary>
/// A data file or folder is missing, unreadable or malformed. The message always names the file (or folder) and says
/// what was found and what was expected, so that a user can fix the input without reading code.
/// </summary>
public sealed class DataException : IOException
{
    /// <summary>The file or folder the problem is about.</summary>
    public string Path { get; }

    public DataException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        Path = path;
    }
}
