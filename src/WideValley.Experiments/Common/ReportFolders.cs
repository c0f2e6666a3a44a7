namespace WideValley.Experiments;

/// <summary>Checks on a report's folder that an experiment makes before it computes anything.</summary>
public static class ReportFolders
{
    /// <summary>
    /// Fails before minutes of computation if the report folder cannot be written: creates it and a temporary file
    /// in it (named after <paramref name="stem"/>, the way the atomic writers name theirs), which is deleted again.
    /// </summary>
    /// <exception cref="IOException"><paramref name="outDir"/> is a file, or cannot be created or written (the message names it as --out).</exception>
    public static void CheckWritable(string outDir, string stem)
    {
        if (File.Exists(outDir)) throw new IOException($"--out {outDir} is a file; give a folder for the report");
        try
        {
            Directory.CreateDirectory(outDir);
            var probe = AtomicFile.TempPathNextTo(Path.Combine(outDir, stem));
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot write the report to --out {outDir}: {e.Message}", e);
        }
    }
}
