using TorchSharp;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Connectivity;

/// <summary>
/// A path search's checkpoint in a checkpoint file disagrees with the run asked for: made with other options, other
/// endpoints or another problem. <see cref="Setting"/> names the first differing setting. The file is left as it was.
/// </summary>
public sealed class ConnectivityCheckpointMismatchException(string path, string setting, string message) : IOException(message)
{
    /// <summary>The checkpoint file.</summary>
    public string Path { get; } = path;
    /// <summary>The first setting that differs (an option's name, "endpoint A", "endpoint B", "dimension", "dtype").</summary>
    public string Setting { get; } = setting;
}

/// <summary>
/// The single-file format of the connectivity checkpoints (string sampling and curves): 8 magic bytes naming the
/// kind, the format version (int32), the JSON header (int64 length + UTF-8), the raw tensor values (int64 length +
/// bytes, in the order the header lists them), and an XxHash64 over everything before it. Written atomically
/// (<see cref="AtomicFile"/>: temporary file, flushed, renamed); read fully and verified before anything is used, so
/// a damaged file is refused with <see cref="CheckpointDamagedException"/> naming the file and the damage.
/// </summary>
internal static class ConnectivityCheckpointFile
{
    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>Writes the checkpoint atomically (at most <see cref="Array.MaxLength"/> bytes, about 2 GiB, since it is read whole).</summary>
    public static void Write(string path, ReadOnlySpan<byte> magic, int version, JsonObject header, IReadOnlyList<Tensor> tensors)
    {
        var magicBytes = magic.ToArray();
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString(Json));
        var blocks = new List<Tensor>(tensors.Count);
        try
        {
            long rawLength = 0;
            foreach (var t in tensors)
            {
                var cpu = t.detach().cpu().contiguous();
                blocks.Add(cpu);
                rawLength += cpu.NumberOfElements * cpu.ElementSize;
            }
            AtomicFile.Write(path, stream =>
            {
                var hash = new XxHash64();
                void Put(ReadOnlySpan<byte> bytes)
                {
                    stream.Write(bytes);
                    hash.Append(bytes);
                }
                Span<byte> number = stackalloc byte[8];
                Put(magicBytes);
                BinaryPrimitives.WriteInt32LittleEndian(number, version);
                Put(number[..4]);
                BinaryPrimitives.WriteInt64LittleEndian(number, headerBytes.LongLength);
                Put(number);
                Put(headerBytes);
                BinaryPrimitives.WriteInt64LittleEndian(number, rawLength);
                Put(number);
                foreach (var block in blocks) Put(block.bytes);
                BinaryPrimitives.WriteUInt64LittleEndian(number, hash.GetCurrentHashAsUInt64());
                stream.Write(number);
            });
        }
        finally
        {
            foreach (var block in blocks) block.Dispose();
        }
    }

    /// <summary>The verified content of a checkpoint file.</summary>
    public sealed record Content(JsonObject Header, byte[] File, long RawStart, long RawLength);

    /// <summary>
    /// Reads and verifies a checkpoint of kind <paramref name="kindName"/> (magic <paramref name="magic"/>, version
    /// <paramref name="version"/>). Throws <see cref="CheckpointDamagedException"/> naming the file and the damage.
    /// </summary>
    public static Content Read(string path, ReadOnlySpan<byte> magic, int version, string kindName)
    {
        byte[] file;
        try
        {
            // The whole file is verified in memory before anything is used, which bounds it to one array.
            var size = new FileInfo(path).Length;
            if (size > Array.MaxLength)
                throw new NotSupportedException(
                    $"{path}: the {kindName} checkpoint has {size:N0} bytes; this format is read whole and is limited to {Array.MaxLength:N0} bytes");
            file = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointDamagedException(path, "file", $"{path}: cannot read the {kindName} checkpoint: {e.Message}", e);
        }
        if (file.Length < magic.Length || !file.AsSpan(0, magic.Length).SequenceEqual(magic))
            throw new CheckpointDamagedException(path, "magic bytes",
                $"{path}: not a {kindName} checkpoint (its first bytes are not the {kindName} magic bytes; {file.Length:N0} bytes)");
        var at = (long)magic.Length;
        const int Minimum = 4 + 8 + 8 + 8;
        if (file.Length < at + Minimum)
            throw new CheckpointDamagedException(path, "frame", $"{path}: the {kindName} checkpoint is truncated ({file.Length:N0} bytes, too short for its frame)");
        var fileVersion = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan((int)at, 4));
        at += 4;
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan((int)at, 8));
        at += 8;
        if (headerLength < 0 || headerLength > file.Length - at - 16)
            throw new CheckpointDamagedException(path, "header",
                $"{path}: the {kindName} checkpoint is truncated or damaged (its header claims {headerLength:N0} bytes, {Math.Max(0, file.Length - at - 16):N0} remain)");
        var headerStart = at;
        at += headerLength;
        var rawLength = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan((int)at, 8));
        at += 8;
        if (rawLength < 0 || rawLength != file.Length - at - 8)
            throw new CheckpointDamagedException(path, "values",
                $"{path}: the {kindName} checkpoint is truncated or damaged (its values claim {rawLength:N0} bytes, {Math.Max(0, file.Length - at - 8):N0} remain before the checksum)");
        var rawStart = at;
        var stored = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(file.Length - 8));
        var computed = XxHash64.HashToUInt64(file.AsSpan(0, file.Length - 8));
        if (stored != computed)
            throw new CheckpointDamagedException(path, "checksum",
                $"{path}: the {kindName} checkpoint's checksum does not match its content (stored {stored:x16}, computed {computed:x16}): the file is damaged");
        if (fileVersion != version)
            throw new CheckpointDamagedException(path, "format version",
                $"{path}: {kindName} checkpoint format {fileVersion}, this code reads format {version}");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(file.AsSpan((int)headerStart, (int)headerLength)) as JsonObject
                ?? throw new JsonException("the header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CheckpointDamagedException(path, "header", $"{path}: the {kindName} checkpoint's header is not valid JSON: {e.Message}", e);
        }
        return new Content(header, file, rawStart, rawLength);
    }

    /// <summary>Copies <paramref name="count"/> values of <paramref name="dtype"/> from the raw block into a new tensor.</summary>
    public static Tensor ReadTensor(string path, Content content, ref long offset, long count, ScalarType dtype, Device device, string what)
    {
        var tensor = empty(count, dtype: dtype);
        var bytes = count * tensor.ElementSize;
        if (offset + bytes > content.RawLength)
        {
            tensor.Dispose();
            throw new CheckpointDamagedException(path, "values",
                $"{path}: the checkpoint's values end before {what} ({content.RawLength:N0} bytes of values, {offset + bytes:N0} needed)");
        }
        tensor.bytes = content.File.AsSpan((int)(content.RawStart + offset), (int)bytes);
        offset += bytes;
        if (device.type == DeviceType.CPU) return tensor;
        using (tensor) return tensor.to(device);
    }

    /// <summary>XxHash64 of a tensor's values (a fingerprint that tells endpoints apart).</summary>
    public static string Fingerprint(Tensor t)
    {
        using var cpu = t.detach().cpu().contiguous();
        return $"{XxHash64.HashToUInt64(cpu.bytes):x16}";
    }

    /// <summary>A header field, or a damaged-header error naming it.</summary>
    public static JsonNode Field(string path, JsonObject header, string name) =>
        header[name] ?? throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint's header has no '{name}'");

    /// <summary>Deserialises a header field, or a damaged-header error naming it.</summary>
    public static T Get<T>(string path, JsonObject header, string name)
    {
        try
        {
            return Field(path, header, name).Deserialize<T>(Json)
                ?? throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint's header field '{name}' is null");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new CheckpointDamagedException(path, "header", $"{path}: the checkpoint's header field '{name}' is unreadable: {e.Message}", e);
        }
    }

    /// <summary>
    /// Compares the checkpoint's recorded settings with the ones asked for, in order, and throws
    /// <see cref="ConnectivityCheckpointMismatchException"/> naming the first that differs.
    /// </summary>
    public static void RequireSame(string path, string kindName, JsonObject stored, JsonObject expected)
    {
        foreach (var (name, value) in expected)
        {
            var was = stored[name];
            if (!JsonNode.DeepEquals(was, value))
                throw new ConnectivityCheckpointMismatchException(path, name,
                    $"{path}: this {kindName} checkpoint was made with {name} = {was?.ToJsonString() ?? "(absent)"}, this run has {name} = {value?.ToJsonString() ?? "(absent)"}. " +
                    "Resume with the same settings, or use another checkpoint path (the file was left as it is)");
        }
    }
}
