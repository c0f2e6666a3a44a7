using System.Text;
using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>What kind of file or folder holds a network.</summary>
public enum ModelFormat
{
    /// <summary>Decide from the content: a folder or WideValley checkpoint is a run, a zip with code/ is TorchScript, else TorchSharp weights.</summary>
    Auto,
    /// <summary>A WideValley run folder (holding checkpoint.bin) or a checkpoint file: the run rebuilds its own network and data.</summary>
    Run,
    /// <summary>A TorchScript archive saved from PyTorch by torch.jit.save (torch.jit.script or torch.jit.trace).</summary>
    TorchScript,
    /// <summary>Weights saved by TorchSharp's <c>module.save(path)</c>; the architecture comes from the zoo or a user factory.</summary>
    TorchSharp,
}

/// <summary>How <see cref="ModelSource.Open"/> reads a network.</summary>
public sealed record ModelSourceOptions
{
    /// <summary>The file's format; <see cref="ModelFormat.Auto"/> (default) decides from the content.</summary>
    public ModelFormat Format { get; init; } = ModelFormat.Auto;

    /// <summary>TorchSharp weights: the zoo network they belong to (see <see cref="ModelZoo.Names"/>).</summary>
    public string? ZooModel { get; init; }

    /// <summary>TorchSharp weights of a zoo network: dropout and size options (input channels, image size and classes come from <see cref="Context"/> when it knows them).</summary>
    public ModelOptions? ZooOptions { get; init; }

    /// <summary>TorchSharp weights: the user factory that builds their network.</summary>
    public IModelFactory? Factory { get; init; }

    /// <summary>TorchSharp weights: a user factory as <c>path/to/My.dll:My.Namespace.MyFactory</c>, loaded by <see cref="UserModels.LoadFactory(string)"/>.</summary>
    public string? FactorySpecification { get; init; }

    /// <summary>What is known about the data and where to compute: sample shape, classes, dtype, device.</summary>
    public ModelFactoryContext Context { get; init; } = new();

    /// <summary>Runs: read the run's data from this folder instead of where the run found it.</summary>
    public string? RunDataDir { get; init; }
}

/// <summary>A network read by <see cref="ModelSource.Open"/>, with what it is and how to make another copy.</summary>
public sealed class LoadedModel : IDisposable
{
    private readonly IDisposable? owner;

    internal LoadedModel(nn.Module<Tensor, Tensor> module, ModelFormat format, string path, string description,
        Func<nn.Module<Tensor, Tensor>>? createCopy, ClassificationDataset? runData, IDisposable? owner)
    {
        Module = module;
        Format = format;
        Path = path;
        Description = description;
        CreateCopy = createCopy;
        RunData = runData;
        this.owner = owner;
    }

    /// <summary>The network with the stored weights, images (N, ...) to outputs (logits (N, classes) for classifiers).</summary>
    public nn.Module<Tensor, Tensor> Module { get; }

    /// <summary>The format that was read (never <see cref="ModelFormat.Auto"/>).</summary>
    public ModelFormat Format { get; }

    /// <summary>The file or folder read.</summary>
    public string Path { get; }

    /// <summary>One line: format, architecture, parameter count.</summary>
    public string Description { get; }

    /// <summary>
    /// What the reader worked around, for the caller to show as a warning: a run folder whose newest checkpoint is
    /// damaged is read at its intact previous generation (<see cref="Path"/> then names that file). Null: nothing.
    /// </summary>
    public string? Notice { get; internal set; }

    /// <summary>
    /// Builds another network of the same architecture (weights need not match), for
    /// <see cref="Landscape.LandscapeOptions.ModelFactory"/>: float64 copies and parallel replicas. Null for runs, whose
    /// zoo networks the landscape code copies by itself.
    /// </summary>
    public Func<nn.Module<Tensor, Tensor>>? CreateCopy { get; }

    /// <summary>Runs only: the data set the run trained on (train/validation/test), as the run prepares it.</summary>
    public ClassificationDataset? RunData { get; }

    /// <summary>Releases the network (and, for a run, its data).</summary>
    public void Dispose()
    {
        if (owner is not null) owner.Dispose();
        else Module.Dispose();
    }
}

/// <summary>
/// Opens a network from a file or folder: a WideValley run, a TorchScript archive from PyTorch, or TorchSharp weights
/// with the architecture from the zoo or from a user's <see cref="IModelFactory"/>. Every route returns an
/// <c>nn.Module&lt;Tensor, Tensor&gt;</c> that the landscape measurements (Hessian-vector products, Lanczos, ...) take.
/// </summary>
/// <example><code>
/// using var model = ModelSource.Open("model.pt");                                              // TorchScript
/// using var mine = ModelSource.Open("weights.bin", new ModelSourceOptions
/// {
///     FactorySpecification = "bin/MyModels.dll:MyModels.MlpFactory",
///     Context = new ModelFactoryContext { SampleShape = [1, 28, 28], NumClasses = 10 },
/// });
/// </code></example>
public static class ModelSource
{
    /// <summary>What <paramref name="path"/> holds, judged by its content (folder, checkpoint magic, zip entries).</summary>
    /// <exception cref="FileNotFoundException">Neither a file nor a folder exists there.</exception>
    /// <exception cref="InvalidDataException">A PyTorch pickle (torch.save), which only PyTorch can read.</exception>
    public static ModelFormat Detect(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) return ModelFormat.Run;
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file or folder (expected a run folder, a TorchScript archive or TorchSharp weights)", path);
        if (RunCheckpoints.IsCheckpoint(path)) return ModelFormat.Run;
        if (ArchiveProbe.StartsWith(path, [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y']))
            throw new InvalidDataException($"{path}: a NumPy .npy array, not a network; arrays are data (inputs and labels)");
        return ArchiveProbe.Classify(path) switch
        {
            ArchiveKind.TorchScript => ModelFormat.TorchScript,
            ArchiveKind.PyTorchPickle => throw new InvalidDataException(
                $"{path}: a PyTorch pickle written by torch.save, which only Python can read; in PyTorch save the network with " +
                "torch.jit.script(model).save(path) (or torch.jit.trace) and pass that file"),
            _ => ModelFormat.TorchSharp,
        };
    }

    /// <summary>Reads the network at <paramref name="path"/> as <paramref name="options"/> say.</summary>
    /// <exception cref="FileNotFoundException">The path, or a named factory assembly, does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is malformed, or its weights do not fit the named architecture
    /// (the message names the first parameter that differs).</exception>
    /// <exception cref="ArgumentException">Contradicting or missing options (e.g. TorchSharp weights without an architecture).</exception>
    public static LoadedModel Open(string path, ModelSourceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var o = options ?? new ModelSourceOptions();
        TorchRuntime.EnsureInitialized();
        var format = o.Format == ModelFormat.Auto ? Detect(path) : o.Format;
        var hasArchitecture = o.ZooModel is not null || o.Factory is not null || o.FactorySpecification is not null;
        if (format == ModelFormat.TorchScript && hasArchitecture)
            throw new ArgumentException(
                $"{path}: a {Name(format)} carries its own architecture; a zoo model or a model factory only applies to TorchSharp weights (module.save) and WideValley checkpoints");
        if (format != ModelFormat.Run && o.RunDataDir is not null)
            throw new ArgumentException($"{path}: a run's data folder only applies to WideValley runs; this is a {Name(format)}");
        return format switch
        {
            // A run with a named architecture: the checkpoint's weights on that network (e.g. a custom model that
            // WideValley's Trainer trained, whose checkpoint stores no run configuration to rebuild it from).
            ModelFormat.Run when hasArchitecture => OpenRunWeights(path, o),
            ModelFormat.Run => RunCheckpoints.Open(path, o.RunDataDir),
            ModelFormat.TorchScript => OpenTorchScript(path, o.Context),
            ModelFormat.TorchSharp => OpenWeights(path, o, path, LoadTorchSharpWeights, ModelFormat.TorchSharp, "TorchSharp weights"),
            _ => throw new ArgumentOutOfRangeException(nameof(options), o.Format, "unknown model format"),
        };
    }

    /// <summary>A run's checkpoint weights on a named architecture; a damaged newest checkpoint falls back to the previous one.</summary>
    private static LoadedModel OpenRunWeights(string path, ModelSourceOptions o)
    {
        var (checkpoint, notice) = RunCheckpoints.ResolveIntact(path);
        var loaded = OpenWeights(path, o, checkpoint, RunCheckpoints.LoadWeights, ModelFormat.Run, "checkpoint");
        loaded.Notice = notice;
        return loaded;
    }

    private static string Name(ModelFormat format) => format switch
    {
        ModelFormat.Run => "WideValley run",
        ModelFormat.TorchScript => "TorchScript archive",
        _ => "TorchSharp weights file",
    };

    private static LoadedModel OpenTorchScript(string path, ModelFactoryContext context)
    {
        TorchScriptModel Load()
        {
            var model = TorchScriptModel.Load(path, context.Device);
            if (model.parameters().FirstOrDefault() is { } first && first.dtype != context.Dtype) model.to(context.Dtype);
            return model;
        }

        var module = Load();
        var count = module.parameters().Sum(p => p.numel());
        return new LoadedModel(module, ModelFormat.TorchScript, path, $"TorchScript {System.IO.Path.GetFileName(path)} ({count:N0} parameters)",
            () => Load(), runData: null, owner: null);
    }

    private static LoadedModel OpenWeights(string path, ModelSourceOptions o, string file, Action<nn.Module, string, string> load, ModelFormat format, string what)
    {
        if (!File.Exists(file)) throw new FileNotFoundException($"{file}: no such file (expected TorchSharp weights written by module.save)", file);
        var chosen = (o.ZooModel is null ? 0 : 1) + (o.Factory is null ? 0 : 1) + (o.FactorySpecification is null ? 0 : 1);
        if (chosen == 0)
            throw new ArgumentException(
                $"{path}: TorchSharp weights (module.save) hold no architecture; name it with a zoo model ({string.Join(", ", ModelZoo.Names)}) or a model factory (ASSEMBLY:TYPE implementing {nameof(IModelFactory)})");
        if (chosen > 1) throw new ArgumentException($"{path}: name the architecture once: a zoo model or a model factory, not both");

        Func<nn.Module<Tensor, Tensor>> create;
        string architecture;
        if (o.ZooModel is string zoo)
        {
            var info = ModelZoo.Describe(zoo);
            if (info.Kind != ModelKind.Classifier)
                throw new ArgumentException($"{zoo} is a language model; open its TorchSharp weights through a WideValley run folder, which knows the corpus and vocabulary");
            var shape = o.Context.SampleShape
                        ?? throw new ArgumentException($"{path}: the zoo model '{zoo}' needs the input shape to be built (channels, image size); give the data first");
            if (shape.Count != 3 || shape[1] != shape[2])
                throw new ArgumentException($"{path}: the zoo model '{zoo}' takes square images (C, S, S); the data's samples are [{string.Join(", ", shape)}]");
            var zooOptions = (o.ZooOptions ?? new ModelOptions()) with
            {
                InputChannels = (int)shape[0],
                ImageSize = (int)shape[2],
                NumClasses = o.Context.NumClasses ?? o.ZooOptions?.NumClasses ?? 10,
            };
            create = () => (nn.Module<Tensor, Tensor>)ModelZoo.Create(zoo, zooOptions);
            architecture = $"zoo model {zoo}";
        }
        else
        {
            var factory = o.Factory ?? UserModels.LoadFactory(o.FactorySpecification!);
            create = () => factory.Create(o.Context)
                           ?? throw new InvalidOperationException($"model factory {factory.Name} ({factory.GetType().FullName}) returned null");
            architecture = $"model factory {factory.Name} ({factory.GetType().FullName})";
        }

        nn.Module<Tensor, Tensor> Build()
        {
            var module = create();
            try
            {
                module.to(o.Context.Device);
                if (module.parameters().FirstOrDefault() is { } first && first.dtype != o.Context.Dtype) module.to(o.Context.Dtype);
                return module;
            }
            catch
            {
                module.Dispose();
                throw;
            }
        }

        var model = Build();
        try
        {
            load(model, file, architecture);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        var count = model.parameters().Sum(p => p.numel());
        return new LoadedModel(model, format, file,
            $"{what} {System.IO.Path.GetFileName(file)} on {architecture} ({count:N0} parameters)", Build, runData: null, owner: null);
    }

    /// <summary>
    /// Loads weights written by TorchSharp's <c>module.save(path)</c> into <paramref name="module"/>, after checking
    /// every entry's name, dtype and shape against the module's state: a mismatch names the first entry that differs
    /// instead of TorchSharp's generic message.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is malformed or does not fit the module.</exception>
    public static void LoadTorchSharpWeights(nn.Module module, string path, string? architecture = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(path);
        var what = architecture ?? module.GetName();
        var state = module.state_dict();
        var stored = TorchSharpWeightsFile.ReadEntries(path);
        foreach (var entry in stored)
        {
            if (!state.TryGetValue(entry.Name, out var target))
                throw new InvalidDataException(
                    $"{path}: entry '{entry.Name}' ({entry.Dtype}, [{string.Join(", ", entry.Shape)}]) is not a parameter or buffer of {what}, " +
                    $"whose state holds {string.Join(", ", state.Keys.Take(8))}{(state.Count > 8 ? ", ..." : "")}; were these weights saved from another network?");
            if (!target.shape.SequenceEqual(entry.Shape))
                throw new InvalidDataException(
                    $"{path}: '{entry.Name}' has shape [{string.Join(", ", entry.Shape)}] in the file but [{string.Join(", ", target.shape)}] in {what}");
            if (target.dtype != entry.Dtype)
                throw new InvalidDataException($"{path}: '{entry.Name}' is {entry.Dtype} in the file but {target.dtype} in {what}");
        }
        var missing = state.Keys.Except(stored.Select(e => e.Name)).FirstOrDefault();
        if (missing is not null)
            throw new InvalidDataException($"{path}: holds no '{missing}', which {what} has ([{string.Join(", ", state[missing].shape)}])");
        try
        {
            module.load(path, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or EndOfStreamException or IOException)
        {
            throw new InvalidDataException($"{path}: TorchSharp could not load these weights into {what}: {e.Message}", e);
        }
    }
}

/// <summary>The entry list of a file written by TorchSharp's <c>Module.save</c>: LEB128 count, then per entry a string name, LEB128 dtype, rank, dimensions, raw data.</summary>
internal static class TorchSharpWeightsFile
{
    public sealed record Entry(string Name, ScalarType Dtype, long[] Shape);

    public static List<Entry> ReadEntries(string path)
    {
        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        var entries = new List<Entry>();
        try
        {
            var count = Decode(reader, path, "the entry count");
            if (count is < 0 or > 1_000_000)
                throw new InvalidDataException($"{path}: byte 0: {count} entries is not a TorchSharp weights file (module.save writes the number of tensors first)");
            for (long i = 0; i < count; i++)
            {
                var at = stream.Position;
                var name = reader.ReadString();
                var dtypeCode = Decode(reader, path, $"the dtype of '{name}'");
                if (dtypeCode > sbyte.MaxValue || !Enum.IsDefined(typeof(ScalarType), (sbyte)dtypeCode))
                    throw new InvalidDataException($"{path}: byte {at}: entry '{name}' has dtype code {dtypeCode}, which is no torch dtype; not a TorchSharp weights file?");
                var dtype = (ScalarType)(sbyte)dtypeCode;
                var rank = Decode(reader, path, $"the rank of '{name}'");
                if (rank is < 0 or > 64) throw new InvalidDataException($"{path}: byte {at}: entry '{name}' has rank {rank}; not a TorchSharp weights file?");
                var shape = new long[rank];
                long elements = 1;
                for (var d = 0; d < rank; d++)
                {
                    shape[d] = Decode(reader, path, $"the shape of '{name}'");
                    elements = checked(elements * shape[d]);
                }
                var bytes = checked(elements * ElementSize(dtype));
                if (stream.Position + bytes > stream.Length)
                    throw new InvalidDataException($"{path}: entry '{name}' needs {bytes:N0} bytes from byte {stream.Position}, but the file ends at byte {stream.Length}");
                stream.Seek(bytes, SeekOrigin.Current);
                entries.Add(new Entry(name, dtype, shape));
            }
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: the file ends at byte {stream.Length} inside entry {entries.Count + 1}; not a complete TorchSharp weights file (module.save)", e);
        }
        if (stream.Position != stream.Length)
            throw new InvalidDataException($"{path}: {stream.Length - stream.Position:N0} bytes follow the last of {entries.Count} entries at byte {stream.Position}; not a TorchSharp weights file (module.save)?");
        return entries;
    }

    private static long Decode(BinaryReader reader, string path, string what)
    {
        long result = 0;
        for (var i = 0; ; i++)
        {
            if (i > 9) throw new InvalidDataException($"{path}: byte {reader.BaseStream.Position}: {what} is not a valid LEB128 number; not a TorchSharp weights file?");
            long b = reader.ReadByte();
            result += (b & 0x7f) << (i * 7);
            if ((b & 0x80) == 0) return result;
        }
    }

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 => 4,
        ScalarType.Int64 or ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.ComplexFloat64 => 16,
        _ => throw new InvalidDataException($"dtype {dtype} is not one TorchSharp saves"),
    };
}
