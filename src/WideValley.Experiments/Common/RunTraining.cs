using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>Training one run of a reproduction in its run folder: what every experiment runner does per run.</summary>
public static class RunTraining
{
    /// <summary>
    /// Trains <paramref name="config"/> in <paramref name="folder"/>, or continues it from its checkpoint, reporting
    /// the start, the set-up's log, every step and epoch and the end through <paramref name="progress"/>. The folder is
    /// locked while it trains, and what it holds is judged again under the lock, so two processes never train one run.
    /// Cancelling <paramref name="cancellation"/> stops after the current step and saves a checkpoint (the result is
    /// then <see cref="TrainingStatus.Interrupted"/>); the same call continues it later. A diverged run is a result,
    /// kept as such.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="folder">Its run folder (created when missing).</param>
    /// <param name="label">The run's name in the reports, e.g. "mnistfc/adam/seed-1".</param>
    /// <param name="position">Its place among the runs the caller trains in this invocation, for the reports.</param>
    /// <param name="progress">Receives the reports, synchronously (see <see cref="ExperimentEvent"/>).</param>
    /// <param name="cancellation">Stops the training after the current step.</param>
    /// <returns>How the run ended; null when another process finished it meanwhile (nothing was trained).</returns>
    /// <exception cref="IOException">Another process is training in the folder.</exception>
    /// <exception cref="InvalidDataException">The folder holds a run with other settings.</exception>
    public static TrainingResult? Train(RunConfig config, string folder, string label, RunPosition? position = null,
        IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        TrainingResult result;
        using (RunFolders.Lock(folder))
        {
            var state = RunFolders.Inspect(folder, config);
            if (state is RunFolderState.Finished or RunFolderState.Diverged)
            {
                progress?.Report(new TrainingFinishedElsewhere(label, position));
                return null;
            }
            var resume = state == RunFolderState.Resumable;
            progress?.Report(new TrainingStarted(label, folder, resume, position));
            using var prepared = RunSetup.Prepare(config, folder, message => progress?.Report(new TrainingLog(label, message)));
            var trainer = prepared.CreateTrainer();
            var epochs = prepared.TrainerOptions.Epochs;
            if (progress is not null)
            {
                trainer.StepCompleted = p => progress.Report(new TrainingStepCompleted(label, p));
                trainer.EpochCompleted = m => progress.Report(new TrainingEpochCompleted(label, m, epochs));
                // A damaged checkpoint's fallback, a repaired metrics log, removed temporaries: said, as train says them.
                trainer.Notice = message => progress.Report(new TrainingLog(label, message));
            }
            using (cancellation.Register(trainer.RequestStop))
                result = trainer.Run(resume);
        }
        progress?.Report(new TrainingEnded(label, folder, result));
        return result;
    }
}
