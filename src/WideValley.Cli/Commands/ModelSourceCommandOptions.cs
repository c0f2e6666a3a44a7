using System.CommandLine;
using WideValley.Data;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.Cli.Commands;

/// <summary>
/// The options that name a user's model and data, shared by the commands that measure a model (evaluate, hessian,
/// landscape): <c>--model-file PATH [--format F] [--model NAME | --model-factory
/// ASSEMBLY:TYPE]</c> and <c>--inputs X.npy --labels Y.npy | --data NAME [--data-dir DIR]</c>. The library does the
/// work (<see cref="ModelSource"/>, <see cref="Npy"/>, <see cref="DatasetCatalog"/>); this class only maps options.
/// </summary>
public sealed class ModelSourceCommandOptions
{
    /// <summary>--model-file: the network's file or run folder.</summary>
    public Option<string?> ModelFile { get; } = new("--model-file")
    {
        Description = "The network: a TorchScript archive saved from PyTorch (torch.jit.save), TorchSharp weights (module.save; name the " +
                      "architecture with --model or --model-factory), or a WideValley run folder or checkpoint.",
    };

    /// <summary>--format: how to read --model-file.</summary>
    public Option<string> Format { get; } = new("--format")
    {
        Description = "What --model-file is: auto (default: a folder or WideValley checkpoint is a run, a zip with code/ is TorchScript, " +
                      "anything else TorchSharp weights), run, torchscript or torchsharp.",
        DefaultValueFactory = _ => "auto",
    };

    /// <summary>--model: the zoo architecture of TorchSharp weights.</summary>
    public Option<string?> Model { get; } = new("--model")
    {
        Description = $"TorchSharp weights (or a checkpoint that stores no run configuration): the zoo network they belong to ({string.Join(", ", ModelZoo.Names.Where(n => ModelZoo.Describe(n).Kind == ModelKind.Classifier))}).",
    };

    /// <summary>--model-factory: a user factory for TorchSharp weights.</summary>
    public Option<string?> ModelFactory { get; } = new("--model-factory")
    {
        Description = $"TorchSharp weights (or a checkpoint of your own network): ASSEMBLY:TYPE, a class implementing WideValley.Models.{nameof(IModelFactory)} in your DLL " +
                      "(e.g. bin/Release/net10.0/MyModels.dll:MyModels.MlpFactory); see docs/user-models.md.",
    };

    /// <summary>--inputs: an .npy array of inputs.</summary>
    public Option<string?> Inputs { get; } = new("--inputs")
    {
        Description = "Inputs as a NumPy .npy array (N, ...): float32/float64 as stored, uint8 scaled to [0, 1]. Needs --labels.",
    };

    /// <summary>--labels: an .npy array of labels.</summary>
    public Option<string?> Labels { get; } = new("--labels") { Description = "Integer class labels as a NumPy .npy array (N). Needs --inputs." };

    /// <summary>--data: a named dataset.</summary>
    public Option<string?> Data { get; } = new("--data")
    {
        Description = $"A named dataset ({string.Join(", ", DatasetCatalog.Names)}), read from --data-dir or the usual places ('widevalley data list').",
    };

    /// <summary>--data-dir: where the named dataset's files are (or a run's data).</summary>
    public Option<string?> DataDir { get; } = new("--data-dir")
    {
        Description = "Folder with the data files: IDX files for --data fashion-mnist/mnist, CIFAR-10 batches for --data cifar10; " +
                      "for a run, read its data from here instead of where the run found it.",
    };

    /// <summary>--device: where to compute (null: cpu for a model file, a run's own device for a run).</summary>
    public Option<string?> Device { get; } = new("--device") { Description = "cpu, cuda or cuda:N (default: cpu for a model file, the run's own device for a run)." };

    /// <summary>The options that describe a model file or its data, each of which needs a model named by file.</summary>
    public IReadOnlyList<Option> SourceOptions => [Format, Model, ModelFactory, Inputs, Labels, Data];

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { ModelFile, Format, Model, ModelFactory, Inputs, Labels, Data, DataDir, Device })
            command.Options.Add(option);
    }

    /// <summary>Whether the command line names a model by --model-file.</summary>
    public bool Used(ParseResult p) => p.GetValue(ModelFile) is not null;

    /// <summary>The source options given explicitly on the command line (--format, --model, --model-factory, --inputs, --labels, --data).</summary>
    public IReadOnlyList<Option> Given(ParseResult p) => SourceOptions.Where(o => p.GetResult(o) is { Implicit: false }).ToList();

    /// <summary>
    /// The request the command line makes, checked for contradictions before anything is read. <paramref name="file"/>
    /// and <paramref name="fileOption"/> name the network when it comes from another option (e.g. `--checkpoint RUN
    /// --model-factory ...`, a run of a custom model); by default it is --model-file.
    /// </summary>
    public ModelSourceRequest Parse(ParseResult p, string? file = null, string fileOption = "--model-file", ModelFormat? format = null)
    {
        var path = file ?? p.GetValue(ModelFile) ?? throw new UsageException($"{fileOption}: name the network's file or run folder");
        var chosenFormat = format ?? p.GetValue(Format)!.ToLowerInvariant() switch
        {
            "auto" => ModelFormat.Auto,
            "run" => ModelFormat.Run,
            "torchscript" => ModelFormat.TorchScript,
            "torchsharp" => ModelFormat.TorchSharp,
            var other => throw new UsageException($"--format {other}: expected auto, run, torchscript or torchsharp"),
        };
        var inputs = p.GetValue(Inputs);
        var labels = p.GetValue(Labels);
        var named = p.GetValue(Data);
        var dataDir = p.GetValue(DataDir);
        if ((inputs is null) != (labels is null))
            throw new UsageException(inputs is null ? "--labels needs --inputs (the .npy array of inputs)" : "--inputs needs --labels (the .npy array of class labels)");
        if (inputs is not null && named is not null) throw new UsageException("name the data once: --inputs/--labels or --data, not both");
        if (inputs is not null && dataDir is not null) throw new UsageException("--data-dir applies to --data NAME or a run's data, not to --inputs/--labels");
        return new ModelSourceRequest
        {
            File = path,
            FileOption = fileOption,
            Format = chosenFormat,
            ZooModel = p.GetValue(Model),
            FactorySpecification = p.GetValue(ModelFactory),
            Inputs = inputs,
            Labels = labels,
            Data = named,
            DataDir = dataDir,
            Device = p.GetValue(Device),
        };
    }

    /// <summary>
    /// Reads the data (if named) and then the model, sized from the data: the zoo and factory architectures learn the
    /// sample shape and class count from it. Without --inputs or --data, a run's own data is used; other models
    /// need data named.
    /// </summary>
    public OpenedModelAndData Open(ParseResult p) => Parse(p).Open();

    /// <summary>
    /// For the measurement commands, which name a run by <c>--checkpoint RUN</c> or any network by --model-file:
    /// null for a plain run (<c>--checkpoint RUN</c> alone: the run rebuilds its network and data), else the model
    /// source to open: --model-file, or a run with a named architecture or other data (<c>--checkpoint RUN
    /// --model-factory ASSEMBLY:TYPE --data NAME</c>, e.g. a run that WideValley's Trainer wrote for a custom model).
    /// </summary>
    public ModelSourceRequest? ForMeasurement(ParseResult p, string? checkpoint)
    {
        var file = p.GetValue(ModelFile);
        if (file is not null && checkpoint is not null)
            throw new UsageException($"name the network once: --checkpoint {checkpoint} (a WideValley run) or --model-file {file}, not both");
        if (file is not null) return Parse(p);
        if (checkpoint is null)
            throw new UsageException("name the network: --checkpoint RUN (a WideValley run) or --model-file FILE (a TorchScript archive from PyTorch, " +
                                     "TorchSharp weights with --model or --model-factory, or a run); see --help");
        var given = Given(p);
        if (given.Count == 0) return null;
        if (given.Contains(Format))
            throw new UsageException($"--format applies to --model-file; --checkpoint {checkpoint} is a WideValley run (or give it as --model-file with --format)");
        return Parse(p, checkpoint, "--checkpoint", ModelFormat.Run);
    }
}

/// <summary>
/// A model file (or run) and the data to measure it on, as the command line names them (<see
/// cref="ModelSourceCommandOptions.Parse"/>); nothing is read until <see cref="Open"/>.
/// </summary>
public sealed record ModelSourceRequest
{
    /// <summary>The network's file or run folder.</summary>
    public required string File { get; init; }

    /// <summary>The option that named <see cref="File"/>, for messages (--model-file, --checkpoint, --other).</summary>
    public string FileOption { get; init; } = "--model-file";

    /// <summary>How to read <see cref="File"/>.</summary>
    public ModelFormat Format { get; init; } = ModelFormat.Auto;

    /// <summary>--model: the zoo architecture of TorchSharp weights or a checkpoint.</summary>
    public string? ZooModel { get; init; }

    /// <summary>--model-factory: ASSEMBLY:TYPE of a user factory.</summary>
    public string? FactorySpecification { get; init; }

    /// <summary>--inputs: .npy inputs (with <see cref="Labels"/>).</summary>
    public string? Inputs { get; init; }

    /// <summary>--labels: .npy labels (with <see cref="Inputs"/>).</summary>
    public string? Labels { get; init; }

    /// <summary>--data: a named dataset.</summary>
    public string? Data { get; init; }

    /// <summary>--data-dir: the named dataset's folder, or a run's data folder.</summary>
    public string? DataDir { get; init; }

    /// <summary>--device (null: cpu).</summary>
    public string? Device { get; init; }

    /// <summary>
    /// Reads the data (if named) and then the model, sized from the data: the zoo and factory architectures learn the
    /// sample shape and class count from it. Without --inputs or --data, a run's own data is used; other models
    /// need data named.
    /// </summary>
    public OpenedModelAndData Open()
    {
        var device = TorchRuntime.ResolveDevice(Device ?? "cpu");
        var splits = new List<(string Name, LabeledData Data)>();
        ClassificationDataset? dataset = null;
        LoadedModel? model = null;
        try
        {
            string? dataDescription = null;
            if (Inputs is not null)
            {
                var data = Npy.ReadLabeled(Inputs, Labels!);
                splits.Add(("data", data));
                dataDescription = $"{Inputs} + {Labels} ({data.Count:N0} samples, {data.NumClasses} classes)";
            }
            else if (Data is not null)
            {
                dataset = DatasetCatalog.LoadClassification(Data, new DataOptions { DataDir = DataDir });
                splits.Add(("train", dataset.Train));
                splits.Add(("test", dataset.Test));
                dataDescription = $"{dataset.Name} ({dataset.Train.Count:N0} train, {dataset.Test.Count:N0} test; {dataset.Source})";
            }
            var first = splits.Count > 0 ? splits[0].Data : null;
            model = OpenModel(first, device);
            if (splits.Count == 0)
            {
                if (model.RunData is not ClassificationDataset runData)
                    throw new UsageException($"{FileOption} {File}: name the data to measure it on: --inputs X.npy --labels Y.npy, or --data NAME [--data-dir DIR]");
                splits.Add(("train", runData.Train));
                if (runData.Validation is not null) splits.Add(("validation", runData.Validation));
                splits.Add(("test", runData.Test));
                dataDescription = "the run's own data";
            }
            return new OpenedModelAndData(model, splits, dataDescription!, dataset);
        }
        catch
        {
            model?.Dispose();
            if (dataset is not null) dataset.Dispose();
            else foreach (var (_, data) in splits) data.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads the network of <paramref name="file"/> (default <see cref="File"/>) as this request says, sized from
    /// <paramref name="data"/>: for the other end point of an interpolation, read like the first.
    /// </summary>
    public LoadedModel OpenModel(LabeledData? data, Device device, string? file = null) =>
        ModelSource.Open(file ?? File, new ModelSourceOptions
        {
            Format = Format,
            ZooModel = ZooModel,
            FactorySpecification = FactorySpecification,
            RunDataDir = Data is null && Inputs is null ? DataDir : null,
            Context = new ModelFactoryContext
            {
                SampleShape = data?.Inputs.shape.Skip(1).ToArray(),
                NumClasses = data?.NumClasses,
                Device = device,
            },
        });
}

/// <summary>A model and the labelled splits to measure it on, as <see cref="ModelSourceCommandOptions.Open"/> read them.</summary>
public sealed class OpenedModelAndData(LoadedModel model, IReadOnlyList<(string Name, LabeledData Data)> splits, string dataDescription, IDisposable? dataOwner)
    : IDisposable
{
    /// <summary>The network and what it is.</summary>
    public LoadedModel Model { get; } = model;

    /// <summary>Named labelled sets: "data" for .npy arrays, "train"/"test" for a named dataset, the run's splits for a run.</summary>
    public IReadOnlyList<(string Name, LabeledData Data)> Splits { get; } = splits;

    /// <summary>One line saying where the data came from.</summary>
    public string DataDescription { get; } = dataDescription;

    /// <summary>Releases the model and the data this object read (a run's data goes with the run).</summary>
    public void Dispose()
    {
        if (dataOwner is not null) dataOwner.Dispose();
        else if (Model.RunData is null || !Splits.Any(s => ReferenceEquals(s.Data, Model.RunData.Train)))
            foreach (var (_, data) in Splits) data.Dispose();
        Model.Dispose();
    }
}
