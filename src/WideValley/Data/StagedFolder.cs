namespace WideValley.Data;

/// <summary>
/// Fills a data folder so that its name only ever holds verified files: everything is written into a hidden staging
/// folder beside the target, and only when the writer returns is the staging folder renamed into place (or, when the
/// target already exists, its files moved in one by one, each rename atomic). When the writer throws, the staging
/// folder is deleted and the target is left exactly as it was; a target that did not exist is never created. So a
/// failed download cannot leave an empty or half-filled folder under a name the dataset search looks at.
/// </summary>
public static class StagedFolder
{
    /// <summary>Suffix of staging folders (".NAME.GUID.partial" beside the target); the dataset search never looks at such names.</summary>
    public const string Suffix = ".partial";

    /// <summary>
    /// Runs <paramref name="fill"/> on a fresh staging folder beside <paramref name="target"/>, then moves what it
    /// wrote into <paramref name="target"/> (created by a rename when absent; existing files of the same name are
    /// replaced, others kept). The parent folder of <paramref name="target"/> is created if needed. Returns the full
    /// path of the target.
    /// </summary>
    public static string Fill(string target, Action<string> fill)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(target);
        ArgumentNullException.ThrowIfNull(fill);
        var full = Path.GetFullPath(target.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        var parent = Path.GetDirectoryName(full) ?? throw new ArgumentException($"{target}: a file-system root cannot be filled", nameof(target));
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}{Suffix}");
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
            if (!Directory.Exists(full))
            {
                try
                {
                    Directory.Move(staging, full);
                    return full;
                }
                catch (IOException) when (Directory.Exists(full))
                {
                    // Someone created the target meanwhile: fall through and move the files into it.
                }
            }
            MoveContents(staging, full);
            return full;
        }
        finally
        {
            // After a rename into place the staging name no longer exists; otherwise this removes the partial work.
            TryDeleteFolder(staging);
        }
    }

    static void MoveContents(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
            File.Move(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        foreach (var folder in Directory.EnumerateDirectories(from))
            MoveContents(folder, Path.Combine(to, Path.GetFileName(folder)));
    }

    /// <summary>Deletes a folder and its contents if it can; cleanup must not mask the error that caused it.</summary>
    internal static void TryDeleteFolder(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
