using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>What an endpoint snapshot file says about its point.</summary>
/// <param name="Key">The settings key it was trained under (<see cref="LevelSetsNetworkSettings.Key"/>).</param>
/// <param name="Task">The network's name.</param>
/// <param name="Index">The endpoint's number (pair p has endpoints 2p and 2p + 1).</param>
/// <param name="Level">The level L0 it was trained for (to α·L0).</param>
/// <param name="Steps">Optimizer steps from its initialisation.</param>
/// <param name="Value">The level metric measured at the point.</param>
/// <param name="Reached">Whether the value is at or below α·L0 (false: the step budget ran out).</param>
public sealed record LevelSetsNetworkEndpointHeader(string Key, string Task, int Index, double Level, long Steps, double Value, bool Reached);

/// <summary>
/// Endpoint snapshots of the networks' level-set runs (ours): one file per (network, endpoint, level), so that an
/// interrupted run does not train its endpoints again. Format: 8 magic bytes <c>WVLSEND\0</c>, an int32 header length,
/// the UTF-8 JSON header (<see cref="LevelSetsNetworkEndpointHeader"/>), the int64 value count, the float32 values, and an
/// XxHash64 of everything before it. Written atomically.
/// </summary>
public static class LevelSetsNetworkEndpoint
{
    static readonly byte[] Magic = "WVLSEND\0"u8.ToArray();

    /// <summary>The snapshot of endpoint <paramref name="index"/> of <paramref name="task"/> at <paramref name="level"/>.</summary>
    public static string PathOf(string piecesDir, string task, int index, double level) =>
        Path.Combine(piecesDir, string.Create(CultureInfo.InvariantCulture, $"{task}-endpoint-{index}-L{level:R}.bin"));

    /// <summary>Writes <paramref name="point"/> (a float32 vector) with its header, atomically.</summary>
    public static void Write(string path, LevelSetsNetworkEndpointHeader header, Tensor point)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(point);
        float[] values;
        using (var scope = NewDisposeScope())
            values = point.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var buffer = new MemoryStream();
        buffer.Write(Magic);
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(number, json.Length);
        buffer.Write(number[..4]);
        buffer.Write(json);
        BinaryPrimitives.WriteInt64LittleEndian(number, values.LongLength);
        buffer.Write(number);
        buffer.Write(MemoryMarshal.AsBytes(values.AsSpan()));
        BinaryPrimitives.WriteUInt64LittleEndian(number, XxHash64.HashToUInt64(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)));
        buffer.Write(number);
        AtomicFile.Write(path, stream => stream.Write(buffer.GetBuffer(), 0, (int)buffer.Length));
    }

    /// <summary>Reads a snapshot: its header and its point as a new float32 vector (the caller owns it).</summary>
    /// <exception cref="InvalidDataException">The file is damaged or not a snapshot; the message names it and what is wrong.</exception>
    public static (LevelSetsNetworkEndpointHeader Header, Tensor Point) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length + 4 + 8 + 8 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException($"{path}: not a level-sets endpoint snapshot (wrong magic bytes or too short); delete it to train that endpoint again");
        var stored = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(bytes.Length - 8));
        if (XxHash64.HashToUInt64(bytes.AsSpan(0, bytes.Length - 8)) != stored)
            throw new InvalidDataException($"{path}: the endpoint snapshot's checksum does not match (damaged or truncated); delete it to train that endpoint again");
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(Magic.Length));
        var offset = Magic.Length + 4;
        if (headerLength < 2 || offset + (long)headerLength + 8 + 8 > bytes.Length)
            throw new InvalidDataException($"{path}: the endpoint snapshot's header length {headerLength} does not fit the file of {bytes.Length} bytes");
        LevelSetsNetworkEndpointHeader header;
        try
        {
            header = JsonSerializer.Deserialize<LevelSetsNetworkEndpointHeader>(bytes.AsSpan(offset, headerLength))
                     ?? throw new JsonException("the header is null");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: the endpoint snapshot's header is unreadable ({e.Message})", e);
        }
        offset += headerLength;
        var count = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(offset));
        offset += 8;
        if (count < 1 || offset + count * sizeof(float) + 8 != bytes.Length)
            throw new InvalidDataException($"{path}: the endpoint snapshot says {count} values but holds {(bytes.Length - offset - 8) / sizeof(float)}");
        var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(offset, (int)(count * sizeof(float)))).ToArray();
        return (header, tensor(values));
    }

    static string Describe(LevelSetsNetworkEndpointHeader h) =>
        string.Create(CultureInfo.InvariantCulture, $"{h.Task} endpoint {h.Index} at L0 = {h.Level}");

    /// <summary>Checks that a snapshot read from <paramref name="path"/> is the one asked for, made under <paramref name="key"/>.</summary>
    /// <exception cref="InvalidDataException">Another endpoint, level or key; the message names the file.</exception>
    public static void RequireMatch(string path, LevelSetsNetworkEndpointHeader header, string key, string task, int index, double level, long dimension, long count)
    {
        if (header.Task != task || header.Index != index || header.Level != level)
            throw new InvalidDataException(
                $"{path}: holds {Describe(header)}; expected {task} endpoint {index} at L0 = {level.ToString("R", CultureInfo.InvariantCulture)}. Delete it to train that endpoint again");
        if (header.Key != key)
            throw new InvalidDataException($"{path} was made with other settings ({header.Key}; now {key}). Use another --runs folder or delete it");
        if (count != dimension)
            throw new InvalidDataException($"{path}: holds {count:N0} parameters but {task} has {dimension:N0}. Delete it to train that endpoint again");
    }
}
