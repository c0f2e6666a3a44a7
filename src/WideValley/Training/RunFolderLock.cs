using System.Diagnostics;
using System.Globalization;

namespace WideValley.Training;

/// <summary>
/// The claim a process holds on a run folder while it trains in it, so that two trainers never write one run (both
/// would append to its metrics and overwrite each other's checkpoint). The lock is the operating system's exclusive
/// lock on <see cref="FileName"/> (flock on Unix, a sharing lock on Windows): it is released when the process ends,
/// however it ends, so a killed trainer never leaves a stale claim. Two claims on one folder conflict even within one
/// process. While held, <see cref="OwnerFileName"/> says who holds it, for the refusal message of the next claimant.
/// </summary>
public static class RunFolderLock
{
    /// <summary>Name of the lock file a process holds while it trains in a run folder.</summary>
    public const string FileName = "training.lock";

    /// <summary>Name of the file that describes the holder (process id, machine, start time, command line).</summary>
    public const string OwnerFileName = "training.lock.owner";

    /// <summary>
    /// Claims <paramref name="folder"/> (created if missing) until the result is disposed.
    /// </summary>
    /// <exception cref="RunFolderLockedException">Another claim on the folder is held (by this or another process).</exception>
    public static IDisposable Acquire(string folder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, FileName);
        var ownerPath = Path.Combine(folder, OwnerFileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            // The holder's description; the lock file itself cannot be read while it is held.
            string? owner = null;
            try { owner = File.ReadAllText(ownerPath).Trim(); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw new RunFolderLockedException(folder,
                $"{folder} is being trained by another process or trainer ({(string.IsNullOrEmpty(owner) ? "holder unknown" : owner)}; it holds {path}). " +
                "Wait for it to finish or stop it first; nothing in the folder was changed.", e);
        }
        try
        {
            using var process = Process.GetCurrentProcess();
            File.WriteAllText(ownerPath, string.Create(CultureInfo.InvariantCulture,
                $"process {Environment.ProcessId} on {Environment.MachineName}, since {process.StartTime.ToUniversalTime():yyyy-MM-dd HH:mm:ss} UTC: {Environment.CommandLine}\n"));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new Claim(stream, ownerPath);
    }

    sealed class Claim(FileStream stream, string ownerPath) : IDisposable
    {
        bool _released;

        public void Dispose()
        {
            if (_released) return;
            _released = true;
            // The owner file first, while the lock still keeps the next claimant from writing its own.
            try { File.Delete(ownerPath); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            stream.Dispose();
        }
    }
}

/// <summary>A run folder is claimed by another trainer (<see cref="RunFolderLock"/>).</summary>
public sealed class RunFolderLockedException(string folder, string message, Exception? inner = null) : IOException(message, inner)
{
    /// <summary>The run folder that is held.</summary>
    public string Folder { get; } = folder;
}
