using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using WideValley.Training;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley evaluate RUN`: loads a run's checkpoint and evaluates the network at its weights on whole splits, in
/// eval mode. The training loss logged during training is the mean minibatch loss with dropout on (and, for
/// Entropy-SGD, at the Langevin iterates rather than at the weights), so comparing optimizers needs this.
/// </summary>
public static class EvaluateCommand
{
    public static Command Create(CliContext ctx)
    {
        var run = new Argument<string>("run") { Description = "Run folder (holding checkpoint.bin)." };
        var splits = new Option<string>("--splits") { Description = "Comma-separated splits: train, validation, test.", DefaultValueFactory = _ => "train,test" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Read the data from here instead of where the run found it." };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("evaluate", "Evaluate a run's checkpoint on whole data splits (eval mode: dropout off, BatchNorm running statistics).")
        {
            run, splits, dataDir, threads, json,
        };
        command.SetAction(p =>
        {
            var folder = Path.GetFullPath(p.GetValue(run)!);
            var wanted = ParseSplits(p.GetValue(splits)!);
            var checkpoint = Path.Combine(folder, Trainer.CheckpointFileName);
            if (!File.Exists(checkpoint))
                throw new UsageException($"{folder} holds no checkpoint ({Trainer.CheckpointFileName}); expected the folder of a 'widevalley train' run");
            var (meta, stored) = MeasuredRun.ReadConfig(checkpoint);
            var config = stored with { Threads = p.GetValue(threads), TensorBoard = false };
            if (p.GetValue(dataDir) is string dir) config = config with { DataDir = dir };

            using var prepared = RunSetup.Prepare(config, outputDirectory: null);
            Checkpoint.LoadWeights(checkpoint, prepared.Task.Model);
            var result = new JsonObject
            {
                ["run"] = folder,
                ["model"] = config.Model,
                ["optimizer"] = config.Optimizer,
                ["epoch"] = meta.CompletedEpochs,
                ["effective_epochs"] = meta.GradEvals / prepared.Task.MinibatchesPerPass,
            };
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
        return command;
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
