using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// The one place where <see cref="ModelSource"/> touches WideValley's run and checkpoint format (RunConfig, RunSetup,
/// Checkpoint): when that format changes, only this adapter follows.
/// </summary>
internal static class RunCheckpoints
{
    // The first bytes Checkpoint.Save writes ("WVCKPT\0" and the format byte).
    private static readonly byte[] Magic = Encoding.ASCII.GetBytes("WVCKPT\0");

    public static bool IsCheckpoint(string path) => ArchiveProbe.StartsWith(path, Magic);

    /// <summary>The checkpoint file of a run folder, or the file itself.</summary>
    public static string Resolve(string path) => ResolveIntact(path).File;

    /// <summary>
    /// The checkpoint file of a run folder, or the file itself. For a folder whose newest checkpoint is damaged and
    /// whose previous generation is intact, the previous one, with a notice that names the damage and the checkpoint
    /// used (as training's resume does); a file named explicitly is never swapped for another.
    /// </summary>
    public static (string File, string? Notice) ResolveIntact(string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            var file = Path.Combine(full, Trainer.CheckpointFileName);
            if (!File.Exists(file))
                throw new FileNotFoundException($"{full}: the folder holds no {Trainer.CheckpointFileName}; expected the folder of a 'widevalley train' run (or its checkpoint file)", file);
            var chosen = Checkpoint.SelectIntactForReading(file);
            return chosen.DamagedNewest is { } damaged
                ? (chosen.Path, $"{damaged.Message}; reading the previous checkpoint {chosen.Path} ({Checkpoint.DescribePosition(chosen.Meta)}) instead")
                : (file, null);
        }
        if (File.Exists(full)) return (full, null);
        throw new FileNotFoundException($"{full}: no such run folder or checkpoint file", full);
    }

    /// <summary>Loads only the network weights of <paramref name="checkpoint"/> into <paramref name="module"/> (built by the caller).</summary>
    public static void LoadWeights(nn.Module module, string checkpoint, string architecture)
    {
        try
        {
            Checkpoint.LoadWeights(checkpoint, module);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{e.Message} (architecture: {architecture})", e);
        }
    }

    /// <summary>Rebuilds the run's image classifier and data as the run did, and loads the checkpoint's weights.</summary>
    public static LoadedModel Open(string path, string? dataDir)
    {
        var (checkpoint, notice) = ResolveIntact(path);
        var meta = Checkpoint.ReadMeta(checkpoint);
        if (meta.RunConfig is not RunConfig stored)
            throw new InvalidDataException(
                (meta.Run is RunDescription run ? $"{checkpoint}: this run holds a custom model '{run.ModelName}' (type {run.ModelType}) and " : $"{checkpoint}: ") +
                "stores no run configuration, so its network cannot be rebuilt from it; name the architecture " +
                $"(a zoo model, or a model factory implementing {nameof(IModelFactory)}) and its weights are loaded into that");
        var config = stored with { TensorBoard = false };
        if (dataDir is not null) config = config with { DataDir = dataDir };
        if (ModelZoo.Describe(config.Model).Kind != ModelKind.Classifier)
            throw new ArgumentException($"{checkpoint}: the run trained '{config.Model}', a language model; model sources take image classifiers (inputs to logits)");
        var prepared = RunSetup.Prepare(config, outputDirectory: null);
        try
        {
            Checkpoint.LoadWeights(checkpoint, prepared.Task.Model);
            var task = (ClassificationTask)prepared.Task;
            var model = (nn.Module<Tensor, Tensor>)task.Model;
            var description = $"WideValley run {Path.GetDirectoryName(checkpoint)} ('{config.Model}' trained by {config.Optimizer}, epoch {meta.CompletedEpochs}, {meta.Parameters:N0} parameters)";
            return new LoadedModel(model, ModelFormat.Run, checkpoint, description, createCopy: null, task.Data, owner: prepared) { Notice = notice };
        }
        catch
        {
            prepared.Dispose();
            throw;
        }
    }
}
