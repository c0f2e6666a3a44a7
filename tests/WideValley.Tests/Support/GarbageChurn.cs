namespace WideValley.Tests.Support;

/// <summary>
/// Runs work while another thread forces garbage collections (and so finalizers) in the middle of the work's native
/// calls: the condition under which TorchSharp frees a temporary Scalar too early.
/// </summary>
/// <remarks>
/// The thread forces generation-0 collections itself instead of allocating until the runtime decides to collect: how
/// many collections an allocation loop causes depends on the gen-0 budget and on how much CPU the thread gets, so on a
/// loaded machine the tests' "enough collections happened" precondition failed (4 failures in 8 concurrent runs).
/// Forced collections make the count depend only on the thread being scheduled, and the work starts only after the
/// first one. Even so, a short piece of work on a busy machine saw 2 collections (a CI run): a caller that needs a
/// number of collections asks for it, and the work is repeated until they have happened during it.
/// </remarks>
public static class GarbageChurn
{
    /// <summary>
    /// Runs <paramref name="work"/> beside the collecting thread, again until the thread has forced at least
    /// <paramref name="minimumCollections"/> collections meanwhile (at most <paramref name="maxRounds"/> times; the
    /// work must give the same result each time and check it itself); returns the collections forced meanwhile.
    /// </summary>
    public static int WhileCollecting(Action work, int minimumCollections = 0, int maxRounds = 500)
    {
        var stop = 0;
        var forced = 0;
        using var started = new ManualResetEventSlim();
        var churn = new Thread(() =>
        {
            var keep = new List<byte[]>();
            while (Volatile.Read(ref stop) == 0)
            {
                for (var i = 0; i < 64; i++) keep.Add(new byte[2048]);
                if (keep.Count > 256) keep.Clear();
                GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                Interlocked.Increment(ref forced);
                started.Set();
            }
        }) { IsBackground = true };
        churn.Start();
        started.Wait();
        var before = Volatile.Read(ref forced);
        try
        {
            var rounds = 0;
            do { work(); rounds++; }
            while (Volatile.Read(ref forced) - before < minimumCollections && rounds < maxRounds);
        }
        finally { Volatile.Write(ref stop, 1); churn.Join(); }
        return Volatile.Read(ref forced) - before;
    }
}
