using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// Where and how often a spin-glass minimisation saves its progress, so that a run of an hour (N = 500, K = 1,000) that
/// is stopped continues from its last save instead of from the start. The state is the points, the phase and step,
/// and per start the steps taken and whether it stopped; everything else (couplings, split, starts) is rebuilt from
/// the seeds, so a resumed run takes exactly the steps an uninterrupted one would.
/// </summary>
/// <param name="Path">The checkpoint file (written atomically: a temporary file, then a rename).</param>
/// <param name="Key">
/// Everything that decides the run besides the glass, starts and options the caller passes (e.g. the experiment's
/// settings): a checkpoint made under another key is refused, not silently continued.
/// </param>
public sealed record DescentCheckpoint(string Path, string Key)
{
    /// <summary>Save after every this-many steps (default 50), and when the run is cancelled.</summary>
    public int EverySteps { get; init; } = 50;

    /// <summary>Checks the settings; the message names the property.</summary>
    /// <exception cref="ArgumentException">An empty path or key, or a non-positive interval.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path)) throw new ArgumentException("DescentCheckpoint.Path: a file path is needed.");
        if (Key is null) throw new ArgumentException("DescentCheckpoint.Key: a key is needed (use \"\" for none).");
        if (EverySteps < 1) throw new ArgumentException($"DescentCheckpoint.EverySteps: must be at least 1; got {EverySteps}.");
    }
}

/// <summary>The phase a saved minimisation was in.</summary>
internal enum DescentPhase : byte
{
    /// <summary>ProjectedSgd's stochastic phase (split couplings).</summary>
    Stochastic = 0,
    /// <summary>Full-gradient descent with frozen finished starts.</summary>
    Descent = 1,
}

/// <summary>One saved state of a minimisation (see <see cref="DescentCheckpoint"/>).</summary>
/// <param name="Key">The caller's key plus the shape and method (checked on resume).</param>
/// <param name="Phase">The phase to continue in.</param>
/// <param name="Step">The next step of that phase.</param>
/// <param name="K">The number of starts.</param>
/// <param name="N">The number of spins.</param>
/// <param name="Dtype">The points' element type.</param>
/// <param name="Points">The points, [K, N] float32 or float64 values in row-major order.</param>
/// <param name="Active">In the descent phase, the starts still moving (ascending); empty in the stochastic phase.</param>
/// <param name="Steps">Steps taken per start so far.</param>
/// <param name="Converged">Whether each start met the tolerance (descent phase).</param>
/// <param name="Energy">Energy per spin at each start's last evaluated point (descent phase).</param>
/// <param name="GradientNorm">Projected gradient norm at each start's last evaluated point (descent phase).</param>
internal sealed record DescentState(string Key, DescentPhase Phase, int Step, int K, int N, ScalarType Dtype, byte[] Points,
    int[] Active, int[] Steps, bool[] Converged, double[] Energy, double[] GradientNorm)
{
    static readonly byte[] Magic = "WVSGDSC1"u8.ToArray();
    const int Version = 1;

    /// <summary>The key a minimisation writes: the caller's plus what the caller cannot get wrong silently.</summary>
    public static string FullKey(DescentCheckpoint checkpoint, string method, int k, int n, ScalarType dtype) =>
        $"{checkpoint.Key}|{method}|K={k}|N={n}|{dtype}";

    /// <summary>Writes the state atomically, with a SHA-256 of everything before it at the end.</summary>
    public void Save(string path)
    {
        AtomicFile.Write(path, stream =>
        {
            using var buffer = new MemoryStream();
            using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(Magic);
                w.Write(Version);
                w.Write(Key);
                w.Write((byte)Phase);
                w.Write(Step);
                w.Write(K);
                w.Write(N);
                w.Write((int)Dtype);
                w.Write(Points.Length);
                w.Write(Points);
                WriteArray(w, Active, (w2, v) => w2.Write(v));
                WriteArray(w, Steps, (w2, v) => w2.Write(v));
                WriteArray(w, Converged, (w2, v) => w2.Write(v));
                WriteArray(w, Energy, (w2, v) => w2.Write(v));
                WriteArray(w, GradientNorm, (w2, v) => w2.Write(v));
            }
            var bytes = buffer.ToArray();
            stream.Write(bytes);
            stream.Write(SHA256.HashData(bytes));
        });
    }

    static void WriteArray<T>(BinaryWriter w, T[] values, Action<BinaryWriter, T> write)
    {
        w.Write(values.Length);
        foreach (var v in values) write(w, v);
    }

    /// <summary>
    /// Reads a state, or null when <paramref name="path"/> does not exist. A damaged file or one made under another
    /// key is an error naming the file and the difference; the file is not touched.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is damaged, of another format, or of another run.</exception>
    public static DescentState? Load(string path, string expectedKey)
    {
        if (!File.Exists(path)) return null;
        var all = File.ReadAllBytes(path);
        if (all.Length < Magic.Length + 32 || !all.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException($"{path}: not a spin-glass descent checkpoint (wrong magic); delete it to start this size again.");
        var body = all.AsSpan(0, all.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(all.AsSpan(all.Length - 32)))
            throw new InvalidDataException($"{path}: the checkpoint is damaged (its SHA-256 does not match its content); delete it to start this size again.");
        try
        {
            using var r = new BinaryReader(new MemoryStream(all, 0, all.Length - 32), Encoding.UTF8);
            r.ReadBytes(Magic.Length);
            var version = r.ReadInt32();
            if (version != Version)
                throw new InvalidDataException($"{path}: checkpoint format {version}; this version reads format {Version}.");
            var key = r.ReadString();
            if (key != expectedKey)
                throw new InvalidDataException($"{path} was saved by another run ({key}; this run is {expectedKey}); delete it or use another folder.");
            var phase = (DescentPhase)r.ReadByte();
            if (!Enum.IsDefined(phase)) throw new InvalidDataException($"{path}: unknown phase {(byte)phase}.");
            var step = r.ReadInt32();
            var k = r.ReadInt32();
            var n = r.ReadInt32();
            var dtype = (ScalarType)r.ReadInt32();
            var points = r.ReadBytes(r.ReadInt32());
            var active = ReadArray(r, r2 => r2.ReadInt32());
            var steps = ReadArray(r, r2 => r2.ReadInt32());
            var converged = ReadArray(r, r2 => r2.ReadBoolean());
            var energy = ReadArray(r, r2 => r2.ReadDouble());
            var norm = ReadArray(r, r2 => r2.ReadDouble());
            var elementSize = dtype == ScalarType.Float64 ? 8 : 4;
            if (step < 0 || points.Length != (long)k * n * elementSize || steps.Length != k || converged.Length != k || energy.Length != k ||
                norm.Length != k || active.Any(i => i < 0 || i >= k))
                throw new InvalidDataException($"{path}: the checkpoint's arrays do not fit K = {k}, N = {n}.");
            return new DescentState(key, phase, step, k, n, dtype, points, active, steps, converged, energy, norm);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: the checkpoint ends early; delete it to start this size again.", e);
        }
    }

    static T[] ReadArray<T>(BinaryReader r, Func<BinaryReader, T> read)
    {
        var length = r.ReadInt32();
        if (length < 0 || length > 100_000_000) throw new InvalidDataException($"an array length of {length} in a descent checkpoint");
        var values = new T[length];
        for (var i = 0; i < length; i++) values[i] = read(r);
        return values;
    }

    /// <summary>The raw values of <paramref name="points"/> ([K, N], on any device).</summary>
    public static byte[] RawPoints(Tensor points)
    {
        using var cpu = points.detach().cpu().contiguous();
        return cpu.bytes.ToArray();
    }

    /// <summary>Copies the saved points into <paramref name="points"/> (same shape and type).</summary>
    public void RestorePoints(Tensor points)
    {
        using var saved = zeros([K, N], Dtype);
        saved.bytes = Points;
        points.copy_(saved.to(points.device));
    }
}
