using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace WideValley.Landscape.Flatness;

/// <summary>
/// Content hashes that name what a stored measurement belongs to: a model by its weights (parameters and buffers, by
/// name, type and shape), so that renaming a file does not redo work and changing its weights does; an evaluation set
/// by its tensors.
/// </summary>
public static class FlatnessIdentity
{
    /// <summary>Hex characters of an identity (64 bits of SHA-256: enough to tell a user's models apart).</summary>
    public const int Length = 16;

    /// <summary>The identity of a model's weights: SHA-256 of its state (names, types, shapes and values), first <see cref="Length"/> hex characters.</summary>
    public static string OfModel(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, tensor) in model.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes(name + ";"));
            Append(hash, tensor);
        }
        return Finish(hash);
    }

    /// <summary>The identity of a set of (inputs, labels) batches (null or empty: "none").</summary>
    public static string OfData(IReadOnlyList<(Tensor Inputs, Tensor Labels)>? batches)
    {
        if (batches is null || batches.Count == 0) return "none";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (inputs, labels) in batches)
        {
            Append(hash, inputs);
            Append(hash, labels);
        }
        return Finish(hash);
    }

    private static void Append(IncrementalHash hash, Tensor t)
    {
        using var scope = NewDisposeScope();
        var c = t.detach().cpu().contiguous();
        hash.AppendData(Encoding.UTF8.GetBytes($"{c.dtype}:{string.Join("x", c.shape)};"));
        var flat = c.reshape(-1);
        // Span lengths are int: hash large tensors in slices.
        const long chunk = 1 << 26;
        for (long start = 0; start < flat.shape[0]; start += chunk)
        {
            using var part = flat.narrow(0, start, Math.Min(chunk, flat.shape[0] - start)).contiguous();
            hash.AppendData(part.bytes);
        }
    }

    private static string Finish(IncrementalHash hash) => Convert.ToHexString(hash.GetHashAndReset())[..Length].ToLowerInvariant();
}
