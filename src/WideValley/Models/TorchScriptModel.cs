using System.Runtime.InteropServices;
using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// A TorchScript module saved from PyTorch (<c>torch.jit.script(model).save(path)</c> or <c>torch.jit.trace</c>), as an
/// <c>nn.Module&lt;Tensor, Tensor&gt;</c> that every WideValley measurement accepts. Its parameters and buffers are
/// the script's own tensors under the script's names (<c>conv.weight</c>, not prefixed), so gradients, Hessian-vector
/// products (double backward runs through the TorchScript interpreter's autograd) and weight updates act on the
/// loaded module. <c>train</c>/<c>eval</c> reach the whole script: a scripted Dropout or BatchNorm follows the flag as
/// in PyTorch (a traced one keeps the mode it was traced in). Conversion (<c>to(float64)</c>, devices) converts the
/// script in place.
/// </summary>
/// <example><code>
/// using var model = TorchScriptModel.Load("model.pt");     // saved in PyTorch by torch.jit.script(m).save("model.pt")
/// using var hvp = new Hvp(model, batches);
/// </code></example>
public sealed class TorchScriptModel : nn.Module<Tensor, Tensor>
{
    private readonly jit.ScriptModule script;

    private TorchScriptModel(jit.ScriptModule script, string path) : base("TorchScript")
    {
        this.script = script;
        Path = path;
        foreach (var (name, parameter) in script.named_parameters()) register_parameter(name, parameter);
        foreach (var (name, buffer) in script.named_buffers()) register_buffer(name, buffer);
    }

    /// <summary>The file the module was loaded from.</summary>
    public string Path { get; }

    /// <summary>
    /// Loads a TorchScript archive onto <paramref name="device"/> (CPU when null). The file must be a zip archive as
    /// <c>torch.jit.save</c> writes it (a <c>code/</c> folder and <c>constants.pkl</c>; other zip layouts are left to
    /// libtorch to judge); a plain <c>torch.save</c> pickle is refused with the way to convert it.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a TorchScript archive, or libtorch cannot read it.</exception>
    public static TorchScriptModel Load(string path, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file (expected a TorchScript archive saved by torch.jit.save)", path);
        var kind = ArchiveProbe.Classify(path);
        if (kind == ArchiveKind.PyTorchPickle)
            throw new InvalidDataException(
                $"{path}: a PyTorch pickle written by torch.save (a state_dict or whole module), not TorchScript; in PyTorch save the network " +
                "with torch.jit.script(model).save(path) (or torch.jit.trace(model, example).save(path)) and load that");
        if (kind == ArchiveKind.NotZip)
            throw new InvalidDataException($"{path}: not a TorchScript archive (expected a zip file with code/ and constants.pkl, as torch.jit.save writes)");
        // Another zip layout (ArchiveKind.OtherZip) goes to libtorch, which knows its own format best and says why it refuses.
        TorchRuntime.EnsureInitialized();
        jit.ScriptModule script;
        try
        {
            script = device is null ? jit.load(path) : jit.load(path, device);
        }
        catch (Exception e) when (e is ExternalException or InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: TorchSharp's libtorch could not load this TorchScript archive: {FirstLine(e.Message)}", e);
        }
        return new TorchScriptModel(script, path);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        var result = script.forward(input);
        return result as Tensor
               ?? throw new InvalidOperationException(
                   $"{Path}: the TorchScript module's forward returned {Describe(result)}; WideValley needs one tensor (e.g. logits (N, classes)). " +
                   "Wrap the network in PyTorch so that forward returns a single tensor, then save it again.");
    }

    /// <inheritdoc/>
    public override void train(bool on = true) => script.train(on);

    /// <inheritdoc/>
    public override bool training => script.training;

    /// <inheritdoc/>
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        // libtorch converts a script module's tensors in place (set_data), so the registered Parameter objects stay valid.
        script.to(device, dtype, non_blocking);
        return this;
    }

    /// <inheritdoc/>
    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        script.to(deviceType, deviceIndex, non_blocking);
        return this;
    }

    /// <inheritdoc/>
    protected override nn.Module _to(ScalarType dtype, bool non_blocking)
    {
        script.to(dtype, non_blocking);
        return this;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) script.Dispose();
        base.Dispose(disposing);
    }

    private static string Describe(object? value) => value switch
    {
        null => "nothing",
        object[] items => $"a tuple or list of {items.Length} values",
        _ => $"a {value.GetType().Name}",
    };

    private static string FirstLine(string message)
    {
        var end = message.IndexOf('\n');
        return end < 0 ? message : message[..end];
    }
}

/// <summary>What a file holding a network is, judged from its first bytes and, for zip files, its entry names.</summary>
internal enum ArchiveKind
{
    /// <summary>Not a zip file.</summary>
    NotZip,
    /// <summary>A zip written by torch.jit.save: entries under code/ and a constants.pkl.</summary>
    TorchScript,
    /// <summary>A zip written by torch.save: data.pkl but no code/.</summary>
    PyTorchPickle,
    /// <summary>Some other zip file.</summary>
    OtherZip,
}

internal static class ArchiveProbe
{
    private static readonly byte[] ZipMagic = [(byte)'P', (byte)'K', 3, 4];

    public static bool StartsWith(string path, ReadOnlySpan<byte> magic)
    {
        using var stream = File.OpenRead(path);
        Span<byte> head = stackalloc byte[magic.Length];
        var got = stream.ReadAtLeast(head, magic.Length, throwOnEndOfStream: false);
        return got == magic.Length && head.SequenceEqual(magic);
    }

    public static ArchiveKind Classify(string path)
    {
        if (!StartsWith(path, ZipMagic)) return ArchiveKind.NotZip;
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var names = zip.Entries.Select(e => e.FullName).ToArray();
            // Entries sit under one top folder named after the archive: <name>/code/..., <name>/constants.pkl.
            bool Has(Func<string, bool> test) => names.Any(test);
            if (Has(n => n.EndsWith("/constants.pkl", StringComparison.Ordinal) || n == "constants.pkl")
                && Has(n => n.Contains("/code/", StringComparison.Ordinal) || n.StartsWith("code/", StringComparison.Ordinal)))
                return ArchiveKind.TorchScript;
            if (Has(n => n.EndsWith("data.pkl", StringComparison.Ordinal))) return ArchiveKind.PyTorchPickle;
            return ArchiveKind.OtherZip;
        }
        catch (InvalidDataException)
        {
            return ArchiveKind.OtherZip;
        }
    }
}
