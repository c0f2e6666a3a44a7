using System.Runtime.ExceptionServices;
using WideValley.Distributed;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Decisions that read files, taken on rank 0 and broadcast, so that every rank of an MPI job acts alike (is this run
/// finished? resume it? refuse the folder?). A refusal on rank 0 is raised on every rank with rank 0's message and
/// exception kind, so no rank is left waiting in a collective for one that gave up.
/// </summary>
public static class RankAgreement
{
    /// <summary>
    /// Runs <paramref name="decide"/> on rank 0 and gives every rank its <paramref name="length"/> numbers. A collective
    /// call: every rank must make it, in the same order.
    /// </summary>
    /// <exception cref="InvalidDataException">Rank 0's decision raised it (the same kind on every rank).</exception>
    /// <exception cref="IOException">Likewise.</exception>
    /// <exception cref="ArgumentException">Likewise.</exception>
    public static double[] FromRoot(ICollectives collectives, int length, Func<double[]> decide)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        ArgumentNullException.ThrowIfNull(decide);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var values = new double[length];
        Exception? failure = null;
        if (collectives.Rank == 0)
        {
            try
            {
                values = decide();
                if (values.Length != length)
                    throw new InvalidOperationException($"rank 0 decided {values.Length} values where {length} were agreed");
            }
            catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException)
            {
                failure = e;
            }
        }
        if (collectives.Size == 1)
        {
            if (failure is not null) ExceptionDispatchInfo.Throw(failure);
            return values;
        }
        var kind = failure switch { null => 0, InvalidDataException => 1, IOException => 2, _ => 3 };
        var message = Text(collectives, failure?.Message);
        var agreedKind = (int)Numbers(collectives, [kind])[0];
        if (agreedKind != 0)
        {
            if (failure is not null) ExceptionDispatchInfo.Throw(failure);
            throw agreedKind switch
            {
                1 => new InvalidDataException(message),
                2 => new IOException(message),
                _ => new ArgumentException(message),
            };
        }
        return length == 0 ? values : Numbers(collectives, values);
    }

    /// <summary>Rank 0's flag on every rank (e.g. "a stop was requested before the next run").</summary>
    public static bool FromRoot(ICollectives collectives, Func<bool> decide) =>
        FromRoot(collectives, 1, () => [decide() ? 1 : 0])[0] != 0;

    static double[] Numbers(ICollectives collectives, double[] values)
    {
        using var scope = NewDisposeScope();
        var t = tensor(values, ScalarType.Float64);
        collectives.Broadcast(t, 0);
        return t.data<double>().ToArray();
    }

    /// <summary>Rank 0's text (null allowed) on every rank: its length, then its UTF-16 code units as float64.</summary>
    static string? Text(ICollectives collectives, string? text)
    {
        var length = (int)Numbers(collectives, [text?.Length ?? -1])[0];
        if (length < 0) return null;
        if (length == 0) return "";
        var codes = Numbers(collectives, collectives.Rank == 0 ? [.. text!.Select(c => (double)c)] : new double[length]);
        return new string(codes.Select(c => (char)c).ToArray());
    }
}
