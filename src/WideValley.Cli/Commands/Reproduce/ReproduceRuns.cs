using System.Globalization;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>Training one run of a reproduction in its folder: what every `reproduce` subcommand does per run.</summary>
internal static class ReproduceRuns
{
    /// <summary>
    /// Trains (or, with <paramref name="resume"/>, continues) <paramref name="config"/> in <paramref name="folder"/> with
    /// console progress, and prints how it ended: finished, diverged (kept as a result), or interrupted (Ctrl-C saved a
    /// checkpoint; the same command continues it).
    /// </summary>
    public static TrainingResult Train(CliContext ctx, RunConfig config, string folder, bool resume, string label)
    {
        Directory.CreateDirectory(folder);
        TrainingResult result;
        using (var prepared = RunSetup.Prepare(config, folder, message => ctx.Out.WriteLine("  " + message)))
            result = TrainingConsole.Train(ctx, prepared, resume, label);
        ctx.Out.WriteLine(result.Status switch
        {
            TrainingStatus.Interrupted => $"interrupted: {result.Message}; run the same command again to continue",
            TrainingStatus.Diverged => $"  {label} diverged: {result.Message} (reported as such; delete {folder} to run it again)",
            _ => string.Format(CultureInfo.InvariantCulture, "  {0} finished: {1:0.0} s, {2:0.##} effective epochs", label, result.TotalSeconds, result.EffectiveEpochs),
        });
        return result;
    }
}
