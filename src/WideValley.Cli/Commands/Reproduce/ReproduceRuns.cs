using System.Globalization;
using WideValley.Experiments;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>Training one run of a reproduction in its folder: what every `reproduce` subcommand does per run.</summary>
internal static class ReproduceRuns
{
    /// <summary>
    /// Trains <paramref name="config"/> in <paramref name="folder"/>, or continues it from its checkpoint, with console
    /// progress, and prints how it ended: finished, diverged (kept as a result), or interrupted (Ctrl-C saved a
    /// checkpoint; the same command continues it). The folder is locked while it trains, and what it holds is judged
    /// again under the lock, so two processes never train one run. Returns null when another process finished the run
    /// meanwhile. <paramref name="position"/> (e.g. "[3/18] ") prefixes the first line.
    /// </summary>
    /// <exception cref="IOException">Another process is training in the folder.</exception>
    /// <exception cref="InvalidDataException">The folder holds a run with other settings.</exception>
    public static TrainingResult? Train(CliContext ctx, RunConfig config, string folder, string label, string position = "")
    {
        TrainingResult result;
        using (RunFolders.Lock(folder))
        {
            var state = RunFolders.Inspect(folder, config);
            if (state is RunFolderState.Finished or RunFolderState.Diverged)
            {
                ctx.Out.WriteLine($"{position}{label}: finished meanwhile by another process");
                return null;
            }
            var resume = state == RunFolderState.Resumable;
            ctx.Out.WriteLine($"{position}{label}: {(resume ? "resuming" : "training")} in {folder}");
            using var prepared = RunSetup.Prepare(config, folder, message => ctx.Out.WriteLine("  " + message));
            result = TrainingConsole.Train(ctx, prepared, resume, label);
        }
        ctx.Out.WriteLine(result.Status switch
        {
            TrainingStatus.Interrupted => $"interrupted: {result.Message}; run the same command again to continue",
            TrainingStatus.Diverged => $"  {label} diverged: {result.Message} (reported as such; delete {folder} to run it again)",
            _ => string.Format(CultureInfo.InvariantCulture, "  {0} finished: {1:0.0} s, {2:0.##} effective epochs", label, result.TotalSeconds, result.EffectiveEpochs),
        });
        return result;
    }
}
