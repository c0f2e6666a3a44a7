using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Models;
using WideValley.Training;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley evaluate RUN`: loads a run's checkpoint and evaluates the network at its weights on whole splits, in
/// eval mode. The training loss logged during training is the mean minibatch loss with dropout on (and, for
/// Entropy-SGD, at the Langevin iterates rather than at the weights), so comparing optimizers needs this.
/// `widevalley evaluate --model-file PATH ...` does the same for a user's network (TorchScript from PyTorch, TorchSharp
/// weights with a zoo or factory architecture, or a run) on named data (.npy arrays, a named dataset, or a run's own).
/// </summary>
public static class EvaluateCommand
{
    public static Command Create(CliContext ctx)
    {
        var run = new Argument<string?>("run") { Description = "Run folder (holding checkpoint.bin). Or name the network with --model-file.", Arity = ArgumentArity.ZeroOrOne };
        var splits = new Option<string>("--splits") { Description = "Comma-separated splits: train, validation, test (.npy data is one set and ignores this).", DefaultValueFactory = _ => "train,test" };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var batchSize = new Option<int>("--batch-size") { Description = "Samples per forward pass with --model-file.", DefaultValueFactory = _ => 1000 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var source = new ModelSourceCommandOptions();
        var dataDir = source.DataDir;
        var corpus = new Option<string?>("--corpus")
        {
            Description = "With a run folder of a char-level model: where its UTF-8 text lies now (the run's own text; its identity is checked).",
        };
        var command = new Command("evaluate",
            "Evaluate a network on whole data splits (eval mode: dropout off, BatchNorm running statistics): a run's checkpoint, " +
            "or with --model-file a TorchScript archive from PyTorch or TorchSharp weights, on .npy arrays or a named dataset.")
        {
            run, splits, threads, batchSize, json, corpus,
        };
        source.AddTo(command);
        command.SetAction(p =>
        {
            if (source.Used(p))
            {
                if (p.GetValue(run) is string both)
                    throw new UsageException($"name the network once: the run folder {both} or --model-file, not both");
                if (p.GetResult(corpus) is { Implicit: false })
                    throw new UsageException("--corpus applies to a run folder; with --model-file name the data with --data or --inputs");
                return EvaluateModelFile(ctx, p, source, ParseSplits(p.GetValue(splits)!), p.GetValue(threads), p.GetValue(batchSize), p.GetValue(json));
            }
            foreach (var option in new Option[] { source.Format, source.Model, source.ModelFactory, source.Inputs, source.Labels, source.Data, source.Device, batchSize })
                if (p.GetResult(option) is { Implicit: false })
                    throw new UsageException($"{option.Name} applies with --model-file; a run folder brings its own network and data");
            if (p.GetValue(run) is null)
                throw new UsageException("name the network: a run folder (widevalley evaluate RUN) or --model-file PATH (see --help)");
            var folder = Path.GetFullPath(p.GetValue(run)!);
            var wanted = ParseSplits(p.GetValue(splits)!);
            if (!File.Exists(Path.Combine(folder, Trainer.CheckpointFileName)))
                throw new UsageException($"{folder} holds no checkpoint ({Trainer.CheckpointFileName}); expected the folder of a 'widevalley train' run");
            // A damaged newest checkpoint falls back to the run's previous generation, with a warning on stderr.
            var (checkpoint, meta, _) = MeasuredRun.SelectCheckpoint(folder, "evaluate", ctx.Error, "evaluating");
            var stored = meta.RequireRunConfig(checkpoint);
            // The run's data where it lies now: --data-dir / --corpus if given, else the stored (absolute, or for older
            // runs relative) paths located; RunSetup.Prepare refuses data other than the run's.
            var config = RunSetup.LocateData(stored, folder, p.GetValue(dataDir), p.GetValue(corpus)) with { Threads = p.GetValue(threads), TensorBoard = false };

            using var prepared = RunSetup.Prepare(config, outputDirectory: null);
            Checkpoint.LoadWeights(checkpoint, prepared.Task.Model);
            // A replica run (Parle, Elastic-SGD) reports its replicas' mean, which its checkpoints hold; older ones held
            // rank 0's own replica, which is all there is to evaluate then.
            var weights = meta.WeightsAreReplicaMean == true ? $"the mean of {meta.WorldSize} replicas"
                : meta.Distributed == DistributedTraining.CheckpointName(DistributedMode.Replicas) ? "rank 0's replica" : null;
            if (weights == "rank 0's replica")
                ctx.Error.WriteLine($"warning: {checkpoint} was written by a replica run before checkpoints held the replicas' mean: " +
                                    "evaluating rank 0's replica, not the mean the run reported");
            var result = new JsonObject
            {
                ["run"] = folder,
                ["model"] = config.Model,
                ["optimizer"] = config.Optimizer,
                ["epoch"] = meta.CompletedEpochs,
                ["checkpoint"] = checkpoint,
                ["effective_epochs"] = meta.GradEvals / prepared.Task.MinibatchesPerPass,
            };
            if (weights is not null)
            {
                result["weights"] = weights;
                if (!p.GetValue(json)) ctx.Out.WriteLine($"weights    {weights}");
            }
            foreach (var split in wanted)
            {
                if (split == EvaluationSplit.Validation && !prepared.Task.HasValidation)
                    throw new UsageException($"the run in {folder} has no validation split (it was trained without --validation-size)");
                var e = prepared.Task.Evaluate(split);
                var name = split.ToString().ToLowerInvariant();
                result[$"{name}_loss"] = e.Loss;
                result[$"{name}_error"] = e.ErrorPercent;
                if (e.Perplexity is double ppl) result[$"{name}_perplexity"] = ppl;
                if (!p.GetValue(json))
                    ctx.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-10} loss {1:0.0000}  error {2:0.00}%{3}  ({4:N0} samples)",
                        name, e.Loss, e.ErrorPercent, e.Perplexity is double q ? $"  perplexity {q:0.000}" : "", e.Count));
            }
            if (p.GetValue(json)) ctx.Out.WriteLine(result.ToJsonString());
            return ExitCodes.Ok;
        });
        return command.WithRanges();
    }

    static int EvaluateModelFile(CliContext ctx, ParseResult p, ModelSourceCommandOptions source, IReadOnlyList<EvaluationSplit> wanted,
        int threads, int batchSize, bool json)
    {
        if (batchSize < 1) throw new UsageException($"--batch-size must be at least 1, got {batchSize}");
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(threads);
        using var opened = source.Open(p);
        if (opened.Model.Notice is string notice) ctx.Error.WriteLine($"widevalley: warning: {notice}");
        var names = wanted.Select(s => s.ToString().ToLowerInvariant()).ToHashSet();
        // .npy data is one set ("data"); named datasets and runs have train/test (and validation, for some runs).
        var oneSet = opened.Splits.Any(s => s.Name == "data");
        var chosen = oneSet ? opened.Splits.ToList() : opened.Splits.Where(s => names.Contains(s.Name)).ToList();
        if (!oneSet)
            foreach (var name in names.Where(n => opened.Splits.All(s => s.Name != n)))
                throw new UsageException($"--splits: {opened.DataDescription} has no {name} split; it has {string.Join(", ", opened.Splits.Select(s => s.Name))}");
        var result = new JsonObject
        {
            ["model_file"] = opened.Model.Path,
            ["format"] = opened.Model.Format.ToString().ToLowerInvariant(),
            ["model"] = opened.Model.Description,
            ["data"] = opened.DataDescription,
        };
        if (!json)
        {
            ctx.Out.WriteLine($"model: {opened.Model.Description}");
            ctx.Out.WriteLine($"data:  {opened.DataDescription}");
        }
        foreach (var (name, data) in chosen)
        {
            var score = ClassifierEvaluation.Evaluate(opened.Model.Module, data, batchSize);
            result[$"{name}_loss"] = score.Loss;
            result[$"{name}_error"] = score.ErrorPercent;
            if (!json)
                ctx.Out.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0,-10} loss {1:0.0000}  error {2:0.00}%  ({3:N0} samples)",
                    name, score.Loss, score.ErrorPercent, score.Count));
        }
        if (json) ctx.Out.WriteLine(result.ToJsonString());
        return ExitCodes.Ok;
    }

    static IReadOnlyList<EvaluationSplit> ParseSplits(string text)
    {
        var result = new List<EvaluationSplit>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            result.Add(part.ToLowerInvariant() switch
            {
                "train" => EvaluationSplit.Train,
                "validation" or "val" => EvaluationSplit.Validation,
                "test" => EvaluationSplit.Test,
                _ => throw new UsageException($"--splits: unknown split '{part}'; expected train, validation or test"),
            });
        }
        if (result.Count == 0) throw new UsageException("--splits: name at least one of train, validation, test");
        return result.Distinct().ToList();
    }
}
