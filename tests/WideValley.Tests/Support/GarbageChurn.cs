namespace WideValley.Tests.Support;

/// <summary>
/// Runs work while another thread allocates as fast as it can, so that garbage collections (and finalizers) happen in
/// the middle of the work's native calls: the condition under which TorchSharp frees a temporary Scalar too early.
/// </summary>
public static class GarbageChurn
{
    /// <summary>Runs <paramref name="work"/> beside the allocating thread; returns the generation-0 collections meanwhile.</summary>
    public static int WhileCollecting(Action work)
    {
        var stop = 0;
        var churn = new Thread(() =>
        {
            var keep = new List<byte[]>();
            while (Volatile.Read(ref stop) == 0)
            {
                keep.Add(new byte[2048]);
                if (keep.Count > 256) keep.Clear();
            }
        }) { IsBackground = true };
        var before = GC.CollectionCount(0);
        churn.Start();
        try { work(); }
        finally { Volatile.Write(ref stop, 1); churn.Join(); }
        return GC.CollectionCount(0) - before;
    }
}
