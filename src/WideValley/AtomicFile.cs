using System.Text;

namespace WideValley;

/// <summary>
/// Writes files so that a reader (or a crash) only ever sees the old complete content or the new complete content:
/// the bytes go to a temporary file in the same folder, are flushed to disk, and the temporary file is renamed over
/// the target (rename is atomic within one file system).
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="path"/> atomically: <paramref name="write"/> fills a temporary file next to it, which is
    /// flushed to disk and renamed over the target. Creates the folder if needed. When <paramref name="write"/> throws, the
    /// temporary file is deleted, the target is left as it was, and the exception propagates.
    /// </summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="write">Writes the complete new content to the stream it is given (do not dispose the stream).</param>
    /// <param name="beforeReplace">
    /// Runs once the new content is safely on disk under the temporary name and before it replaces the target (e.g. to
    /// keep a copy of the old content); if it throws, the target is left as it was.
    /// </param>
    public static void Write(string path, Action<FileStream> write, Action? beforeReplace = null)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = TempPathNextTo(full);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            beforeReplace?.Invoke();
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// A fresh hidden name in the folder of <paramref name="path"/> (".name.GUID.part"), for writers that fill the
    /// temporary file themselves before the rename (downloads verify a checksum first).
    /// </summary>
    public static string TempPathNextTo(string path)
    {
        var full = Path.GetFullPath(path);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.part");
    }

    /// <summary>Deletes a file if it can; used to clean up temporaries, where failing to delete must not mask the real error.</summary>
    public static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>Writes UTF-8 text (no byte-order mark) atomically.</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, s => { var bytes = new UTF8Encoding(false).GetBytes(text); s.Write(bytes, 0, bytes.Length); });

    /// <summary>
    /// Deletes the temporary files that <see cref="Write"/> leaves behind when the process is killed mid-write
    /// (".NAME.GUID.part" beside each NAME of <paramref name="names"/> in <paramref name="directory"/>), and only
    /// those: other files, even similar ones, are not touched. Returns the paths deleted, sorted.
    /// </summary>
    /// <param name="directory">The folder the files were written into.</param>
    /// <param name="names">The file names (no folder) whose temporaries to remove, e.g. "checkpoint.bin".</param>
    public static IReadOnlyList<string> RemoveStaleTemporaries(string directory, IEnumerable<string> names)
    {
        var removed = new List<string>();
        if (!Directory.Exists(directory)) return removed;
        var wanted = names.ToHashSet(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(directory, ".*.part"))
        {
            var name = Path.GetFileName(file);
            // "." + target + "." + 32 hex digits + ".part"
            const int Tail = 1 + 32 + 5;
            if (name.Length <= 1 + Tail || !name.EndsWith(".part", StringComparison.Ordinal)) continue;
            var guid = name.AsSpan(name.Length - Tail + 1, 32);
            if (name[name.Length - Tail] != '.' || !IsLowerHex(guid)) continue;
            var target = name[1..(name.Length - Tail)];
            if (!wanted.Contains(target)) continue;
            try
            {
                File.Delete(file);
                removed.Add(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        removed.Sort(StringComparer.Ordinal);
        return removed;
    }

    static bool IsLowerHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
            if (!(c is >= '0' and <= '9' or >= 'a' and <= 'f')) return false;
        return true;
    }
}
