using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>Element types an <c>.npy</c> file may hold here (NumPy's <c>descr</c> without the byte-order mark).</summary>
public enum NpyElementType
{
    /// <summary><c>b1</c>: NumPy bool, one byte 0 or 1.</summary>
    Bool,
    /// <summary><c>u1</c>: uint8.</summary>
    UInt8,
    /// <summary><c>i1</c>: int8.</summary>
    Int8,
    /// <summary><c>i2</c>: int16.</summary>
    Int16,
    /// <summary><c>i4</c>: int32.</summary>
    Int32,
    /// <summary><c>i8</c>: int64.</summary>
    Int64,
    /// <summary><c>f4</c>: float32.</summary>
    Float32,
    /// <summary><c>f8</c>: float64.</summary>
    Float64,
}

/// <summary>
/// One <c>.npy</c> array in memory: element type, shape, and the elements in this machine's byte order, in C
/// (row-major) order: an array stored in Fortran order is transposed on reading, as NumPy would present it.
/// </summary>
public sealed class NpyArray
{
    internal NpyArray(string path, (int Major, int Minor) version, NpyElementType elementType, long[] shape, byte[] data)
    {
        Path = path;
        Version = version;
        ElementType = elementType;
        Shape = shape;
        Data = data;
    }

    /// <summary>The file this array was read from.</summary>
    public string Path { get; }

    /// <summary>The format version of the file: (1, 0), (2, 0) or (3, 0).</summary>
    public (int Major, int Minor) Version { get; }

    /// <summary>The element type from the header's <c>descr</c>.</summary>
    public NpyElementType ElementType { get; }

    /// <summary>Dimension sizes (empty for a 0-d array), as NumPy reports <c>shape</c>.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The elements in C order and host byte order.</summary>
    public byte[] Data { get; }

    /// <summary>Number of elements (the product of <see cref="Shape"/>; 1 for a 0-d array).</summary>
    public long ElementCount => Data.LongLength / Npy.ElementSize(ElementType);

    /// <summary>The array as a new tensor of the matching dtype and shape, in the caller's dispose scope.</summary>
    public Tensor ToTensor()
    {
        var tensor = empty(Shape.ToArray(), Npy.TorchType(ElementType));
        if (Data.Length > 0) tensor.bytes = Data;
        return tensor;
    }
}

/// <summary>
/// Reader for NumPy's <c>.npy</c> format (numpy.lib.format, versions 1.0, 2.0 and 3.0): the magic <c>\x93NUMPY</c>,
/// a version, a little-endian header length (2 bytes in 1.0, 4 bytes after), a Python dict literal with
/// <c>descr</c>, <c>fortran_order</c> and <c>shape</c>, then the raw elements. Reads both byte orders and both
/// memory orders; the element types are those of <see cref="NpyElementType"/> (structured and object arrays are
/// refused). Every error is a <see cref="DataException"/> naming the file, the byte offset and what was expected.
/// </summary>
/// <example><code>
/// using var data = Npy.ReadLabeled("x_test.npy", "y_test.npy");   // inputs (N, ...) and labels (N)
/// </code></example>
public static class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads the array in <paramref name="path"/>.</summary>
    /// <exception cref="DataException">Missing or malformed file; the message says where and what was expected.</exception>
    public static NpyArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new DataException(path, "no such file (expected a NumPy .npy array)");
        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    /// <summary>Reads an array from <paramref name="stream"/>, naming it <paramref name="path"/> in errors.</summary>
    /// <exception cref="DataException">Malformed content; the message says at which byte and what was expected.</exception>
    public static NpyArray Read(Stream stream, string path)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(path);
        var preamble = new byte[8];
        var got = ReadUpTo(stream, preamble);
        if (got < Magic.Length || !preamble.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new DataException(path, $"byte 0: expected the .npy magic \\x93NUMPY; found {Printable(preamble.AsSpan(0, got))} (is this a NumPy .npy file? .npz archives are zip files and are not read)");
        if (got < 8) throw new DataException(path, $"byte {got}: the file ends inside the format version (expected 2 bytes at byte 6)");
        var version = (Major: (int)preamble[6], Minor: (int)preamble[7]);
        if (version.Major is < 1 or > 3 || version.Minor != 0)
            throw new DataException(path, $"byte 6: format version {version.Major}.{version.Minor} is not supported; expected 1.0, 2.0 or 3.0");

        var lengthBytes = new byte[version.Major == 1 ? 2 : 4];
        if (ReadUpTo(stream, lengthBytes) < lengthBytes.Length)
            throw new DataException(path, $"byte 8: the file ends inside the header length (expected a {lengthBytes.Length}-byte little-endian integer)");
        long headerLength = version.Major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(lengthBytes) : BinaryPrimitives.ReadUInt32LittleEndian(lengthBytes);
        var headerStart = 8 + lengthBytes.Length;
        if (headerLength > 100_000_000)
            throw new DataException(path, $"byte 8: header length {headerLength} is implausible (expected a few hundred bytes)");
        var header = new byte[headerLength];
        var headerGot = ReadUpTo(stream, header);
        if (headerGot < headerLength)
            throw new DataException(path, $"byte {headerStart + headerGot}: the file ends inside the header (the header length at byte 8 says {headerLength} bytes from byte {headerStart})");
        var text = version.Major == 3 ? Encoding.UTF8.GetString(header) : Encoding.Latin1.GetString(header);
        var (descr, fortranOrder, shape) = ParseHeader(text, path, headerStart);

        var (elementType, size, bigEndian) = ParseDescr(descr, path, headerStart + Math.Max(0, text.IndexOf("descr", StringComparison.Ordinal)));
        long count = 1;
        foreach (var dimension in shape)
        {
            if (dimension < 0) throw new DataException(path, $"header (bytes {headerStart}-{headerStart + headerLength - 1}): negative dimension {dimension} in shape ({string.Join(", ", shape)})");
            count = checked(count * dimension);
        }
        var dataStart = headerStart + headerLength;
        var byteCount = checked(count * size);
        if (byteCount > Array.MaxLength)
            throw new DataException(path, $"shape ({string.Join(", ", shape)}) of {descr} needs {byteCount:N0} bytes, more than one array can hold here");
        var data = new byte[byteCount];
        var dataGot = ReadUpTo(stream, data);
        if (dataGot < byteCount)
            throw new DataException(path,
                $"byte {dataStart + dataGot}: the file ends inside the data; shape ({string.Join(", ", shape)}) of '{descr}' needs {byteCount:N0} bytes from byte {dataStart}, found {dataGot:N0}");
        if (stream.ReadByte() >= 0)
            throw new DataException(path,
                $"byte {dataStart + byteCount}: unexpected bytes after the data; shape ({string.Join(", ", shape)}) of '{descr}' ends there (a truncated shape in the header, or a file that is not one .npy array?)");

        if (size > 1 && bigEndian == BitConverter.IsLittleEndian) ReverseEachElement(data, size);
        if (fortranOrder && shape.Length > 1) data = FortranToC(data, shape, size);
        return new NpyArray(path, version, elementType, shape, data);
    }

    /// <summary>Reads the array in <paramref name="path"/> as a new tensor (matching dtype and shape).</summary>
    /// <exception cref="DataException">Missing or malformed file.</exception>
    public static Tensor ReadTensor(string path) => Read(path).ToTensor();

    /// <summary>
    /// Labelled samples from two files: inputs (N, ...) and integer labels (N). Floating inputs are converted to
    /// <paramref name="inputType"/>; uint8 inputs (images as stored by most tools) are scaled to [0, 1] in that type;
    /// other integer inputs (token ids) become int64 unchanged. Labels of any integer type become int64 and must lie
    /// in [0, <paramref name="numClasses"/>); without <paramref name="numClasses"/>, the number of classes is the
    /// largest label plus one.
    /// </summary>
    /// <exception cref="DataException">A file is missing or malformed, the labels are not integers or not 1-D, the
    /// first dimensions differ, or a label is out of range; the message names the file.</exception>
    public static LabeledData ReadLabeled(string inputsPath, string labelsPath, int? numClasses = null, ScalarType inputType = ScalarType.Float32)
    {
        if (!is_floating_point(inputType)) throw new ArgumentException($"Npy.ReadLabeled: inputType must be a floating type; got {inputType}.", nameof(inputType));
        if (numClasses is < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "Npy.ReadLabeled: numClasses must be at least 1.");
        var x = Read(inputsPath);
        var y = Read(labelsPath);
        if (x.Shape.Count == 0)
            throw new DataException(inputsPath, "holds a 0-d array; expected inputs (N, ...) with one row per sample");
        if (y.Shape.Count != 1)
            throw new DataException(labelsPath, $"holds labels of shape ({string.Join(", ", y.Shape)}); expected a 1-D array (N) of class indices");
        if (y.ElementType is NpyElementType.Float32 or NpyElementType.Float64 or NpyElementType.Bool)
            throw new DataException(labelsPath, $"holds {y.ElementType} labels; expected integer class indices (int64, int32, uint8, ...)");
        if (x.Shape[0] != y.Shape[0])
            throw new DataException(labelsPath,
                $"holds {y.Shape[0]:N0} labels but {inputsPath} holds {x.Shape[0]:N0} samples (shape ({string.Join(", ", x.Shape)})); the first dimensions must agree");

        using var scope = NewDisposeScope();
        var labels = y.ToTensor().to(ScalarType.Int64);
        if (labels.numel() > 0)
        {
            var min = labels.min().item<long>();
            var max = labels.max().item<long>();
            if (min < 0)
                throw new DataException(labelsPath, $"holds the label {min} at index {labels.argmin().item<long>()}; class indices must be non-negative");
            if (numClasses is int classes && max >= classes)
                throw new DataException(labelsPath, $"holds the label {max} at index {labels.argmax().item<long>()}; with {classes} classes labels must lie in [0, {classes - 1}]");
            numClasses ??= checked((int)(max + 1));
        }
        var raw = x.ToTensor();
        var inputs = x.ElementType switch
        {
            NpyElementType.Float32 or NpyElementType.Float64 => raw.to(inputType),
            NpyElementType.UInt8 => raw.to(inputType).div_(255.0),
            _ => raw.to(ScalarType.Int64),
        };
        return new LabeledData(inputs.MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope(), numClasses ?? 1);
    }

    /// <summary>Bytes per element of <paramref name="type"/>.</summary>
    public static int ElementSize(NpyElementType type) => type switch
    {
        NpyElementType.Bool or NpyElementType.UInt8 or NpyElementType.Int8 => 1,
        NpyElementType.Int16 => 2,
        NpyElementType.Int32 or NpyElementType.Float32 => 4,
        NpyElementType.Int64 or NpyElementType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>The torch dtype that holds <paramref name="type"/> exactly.</summary>
    public static ScalarType TorchType(NpyElementType type) => type switch
    {
        NpyElementType.Bool => ScalarType.Bool,
        NpyElementType.UInt8 => ScalarType.Byte,
        NpyElementType.Int8 => ScalarType.Int8,
        NpyElementType.Int16 => ScalarType.Int16,
        NpyElementType.Int32 => ScalarType.Int32,
        NpyElementType.Int64 => ScalarType.Int64,
        NpyElementType.Float32 => ScalarType.Float32,
        NpyElementType.Float64 => ScalarType.Float64,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    private static (string Descr, bool FortranOrder, long[] Shape) ParseHeader(string text, string path, long headerStart)
    {
        var parser = new HeaderParser(text, path, headerStart);
        var entries = parser.ParseDict();
        var where = $"header (bytes {headerStart}-{headerStart + text.Length - 1})";
        if (!entries.TryGetValue("descr", out var descr))
            throw new DataException(path, $"{where}: no 'descr' key; expected {{'descr': ..., 'fortran_order': ..., 'shape': ...}}, found {text.Trim()}");
        if (!entries.TryGetValue("fortran_order", out var fortran))
            throw new DataException(path, $"{where}: no 'fortran_order' key; found {text.Trim()}");
        if (!entries.TryGetValue("shape", out var shape))
            throw new DataException(path, $"{where}: no 'shape' key; found {text.Trim()}");
        var extra = entries.Keys.Except(["descr", "fortran_order", "shape"]).ToArray();
        if (extra.Length > 0)
            throw new DataException(path, $"{where}: unexpected key(s) {string.Join(", ", extra.Select(k => $"'{k}'"))}; expected only descr, fortran_order and shape");
        if (descr is not string descrText)
            throw new DataException(path, $"{where}: 'descr' is {Describe(descr)}; expected a type string such as '<f4' (structured arrays are not supported)");
        if (fortran is not bool fortranOrder)
            throw new DataException(path, $"{where}: 'fortran_order' is {Describe(fortran)}; expected True or False");
        if (shape is not long[] dims)
            throw new DataException(path, $"{where}: 'shape' is {Describe(shape)}; expected a tuple of integers such as (60000, 784)");
        return (descrText, fortranOrder, dims);
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"the string '{s}'",
        bool b => b ? "True" : "False",
        long[] t => $"the tuple ({string.Join(", ", t)})",
        long n => $"the integer {n}",
        _ => "a list or dict",
    };

    private static (NpyElementType Type, int Size, bool BigEndian) ParseDescr(string descr, string path, long offset)
    {
        if (descr.Length < 2)
            throw new DataException(path, $"byte {offset}: descr '{descr}' is not a type string; expected e.g. '<f4', '<i8', '|u1'");
        var order = descr[0];
        var code = descr[1..];
        if (order is not ('<' or '>' or '|' or '='))
        {
            // NumPy always writes a byte-order character; accept a bare code (e.g. 'f4') as native order anyway.
            order = '=';
            code = descr;
        }
        NpyElementType type = code switch
        {
            "b1" or "?" => NpyElementType.Bool,
            "u1" or "B" => NpyElementType.UInt8,
            "i1" or "b" => NpyElementType.Int8,
            "i2" or "h" => NpyElementType.Int16,
            "i4" or "i" => NpyElementType.Int32,
            "i8" or "q" or "l" => NpyElementType.Int64,
            "f4" or "f" => NpyElementType.Float32,
            "f8" or "d" => NpyElementType.Float64,
            _ => throw new DataException(path,
                $"byte {offset}: element type '{descr}' is not supported; expected float32 ('<f4'), float64 ('<f8'), uint8 ('|u1'), int8, int16, int32 ('<i4'), int64 ('<i8') or bool ('|b1'), either byte order"),
        };
        var size = ElementSize(type);
        var bigEndian = order switch
        {
            '>' => true,
            '<' => false,
            _ => !BitConverter.IsLittleEndian,
        };
        return (type, size, bigEndian);
    }

    private static void ReverseEachElement(byte[] data, int size)
    {
        for (var i = 0; i < data.Length; i += size) data.AsSpan(i, size).Reverse();
    }

    /// <summary>
    /// Reorders column-major elements to row-major: element (i_0, ..., i_{d-1}) sits at offset sum i_k * stride_k with
    /// Fortran strides (stride_0 = 1); walk the C-order indices and copy from there.
    /// </summary>
    private static byte[] FortranToC(byte[] data, long[] shape, int size)
    {
        var d = shape.Length;
        var fortranStride = new long[d];
        long stride = 1;
        for (var k = 0; k < d; k++)
        {
            fortranStride[k] = stride;
            stride *= shape[k];
        }
        var result = new byte[data.Length];
        var count = data.Length / size;
        var index = new long[d];
        long source = 0;
        for (long target = 0; target < count; target++)
        {
            Buffer.BlockCopy(data, (int)(source * size), result, (int)(target * size), size);
            // Increment the C-order index (last dimension fastest), keeping the Fortran offset in step.
            for (var k = d - 1; k >= 0; k--)
            {
                index[k]++;
                source += fortranStride[k];
                if (index[k] < shape[k]) break;
                source -= fortranStride[k] * shape[k];
                index[k] = 0;
            }
        }
        return result;
    }

    private static int ReadUpTo(Stream stream, byte[] buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = stream.Read(buffer, total, buffer.Length - total);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) return "an empty file";
        var sb = new StringBuilder("bytes ");
        foreach (var b in bytes) sb.Append(CultureInfo.InvariantCulture, $"{b:x2} ");
        return sb.ToString().TrimEnd();
    }

    /// <summary>The subset of Python literal syntax that NumPy writes into .npy headers.</summary>
    private sealed class HeaderParser(string text, string path, long headerStart)
    {
        private int position;

        public Dictionary<string, object?> ParseDict()
        {
            SkipSpace();
            Expect('{', "a Python dict literal starting with '{'");
            var result = new Dictionary<string, object?>(StringComparer.Ordinal);
            while (true)
            {
                SkipSpace();
                if (Peek() == '}') { position++; break; }
                var keyAt = position;
                if (ParseValue() is not string key) throw Error(keyAt, "a quoted key such as 'descr'");
                SkipSpace();
                Expect(':', "':' after a key");
                var value = ParseValue();
                if (!result.TryAdd(key, value)) throw Error(keyAt, $"each key once ('{key}' repeats)");
                SkipSpace();
                if (Peek() == ',') { position++; continue; }
                SkipSpace();
                Expect('}', "',' or '}' after a value");
                break;
            }
            SkipSpace();
            if (position != text.Length) throw Error(position, "only spaces and a newline after the closing '}'");
            return result;
        }

        private object? ParseValue()
        {
            SkipSpace();
            var c = Peek();
            if (c is '\'' or '"')
            {
                var start = ++position;
                var end = text.IndexOf(c, start);
                if (end < 0) throw Error(start - 1, "a closing quote");
                position = end + 1;
                return text[start..end];
            }
            if (c == '(') return ParseTuple();
            if (c is '[' or '{') throw Error(position, "a type string, a boolean or a tuple; structured dtypes (lists) and nested dicts are not supported");
            var wordStart = position;
            while (position < text.Length && (char.IsLetterOrDigit(text[position]) || text[position] is '_' or '-')) position++;
            var word = text[wordStart..position];
            return word switch
            {
                "True" => true,
                "False" => false,
                "None" => null,
                _ when long.TryParse(word, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => n,
                _ => throw Error(wordStart, "a quoted string, True, False, an integer or a tuple"),
            };
        }

        private long[] ParseTuple()
        {
            Expect('(', "'('");
            var items = new List<long>();
            while (true)
            {
                SkipSpace();
                if (Peek() == ')') { position++; return items.ToArray(); }
                var at = position;
                while (position < text.Length && (char.IsDigit(text[position]) || text[position] == '-')) position++;
                if (!long.TryParse(text.AsSpan(at, position - at), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
                    throw Error(at, "an integer dimension");
                items.Add(n);
                SkipSpace();
                if (Peek() == ',') { position++; continue; }
                Expect(')', "',' or ')' in the shape tuple");
                return items.ToArray();
            }
        }

        private char Peek() => position < text.Length ? text[position] : '\0';

        private void SkipSpace()
        {
            while (position < text.Length && char.IsWhiteSpace(text[position])) position++;
        }

        private void Expect(char c, string what)
        {
            if (Peek() != c) throw Error(position, what);
            position++;
        }

        private DataException Error(int at, string expected)
        {
            var found = at < text.Length ? $"'{text[at..Math.Min(text.Length, at + 20)].TrimEnd()}'" : "the end of the header";
            return new DataException(path, $"byte {headerStart + at} (header): expected {expected}; found {found} in header {text.Trim()}");
        }
    }
}
