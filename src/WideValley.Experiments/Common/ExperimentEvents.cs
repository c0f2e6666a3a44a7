using WideValley.Landscape;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>
/// What an experiment runner reports while it works: the runners write no console output, their caller (the CLI, a
/// notebook, a test) shows these as it likes. Runners report synchronously on the thread that does the work, in order;
/// give them an <see cref="IProgress{T}"/> that handles each report at once (<see cref="System.Progress{T}"/> posts to
/// the thread pool and may reorder them).
/// </summary>
public abstract record ExperimentEvent;

/// <summary>Where a run stands in a runner's list of runs to train, e.g. the 3rd of 18.</summary>
/// <param name="Number">1-based position.</param>
/// <param name="Count">Number of runs the runner trains in this invocation.</param>
public readonly record struct RunPosition(int Number, int Count);

/// <summary>A run starts (or resumes from its checkpoint) in its folder.</summary>
/// <param name="Label">The run's name in messages, e.g. "mnistfc/adam/seed-1".</param>
/// <param name="Folder">Its run folder.</param>
/// <param name="Resuming">True when it continues from the checkpoint the folder holds.</param>
/// <param name="Position">Its place among the runs of this invocation (null when the runner trains runs one by one without a list).</param>
public sealed record TrainingStarted(string Label, string Folder, bool Resuming, RunPosition? Position) : ExperimentEvent;

/// <summary>A line of the run set-up's log (the data found, the model built).</summary>
/// <param name="Label">The run's name in messages.</param>
/// <param name="Message">The line.</param>
public sealed record TrainingLog(string Label, string Message) : ExperimentEvent;

/// <summary>A training step finished.</summary>
/// <param name="Label">The run's name in messages.</param>
/// <param name="Progress">The trainer's step report.</param>
public sealed record TrainingStepCompleted(string Label, StepProgress Progress) : ExperimentEvent;

/// <summary>A training epoch finished and was evaluated.</summary>
/// <param name="Label">The run's name in messages.</param>
/// <param name="Metrics">The epoch's metrics.</param>
/// <param name="Epochs">The run's number of epochs.</param>
public sealed record TrainingEpochCompleted(string Label, EpochMetrics Metrics, int Epochs) : ExperimentEvent;

/// <summary>A run ended: finished, diverged (kept as a result) or interrupted (its checkpoint saved).</summary>
/// <param name="Label">The run's name in messages.</param>
/// <param name="Folder">Its run folder.</param>
/// <param name="Result">How it ended.</param>
public sealed record TrainingEnded(string Label, string Folder, TrainingResult Result) : ExperimentEvent;

/// <summary>The run's folder was inspected again under its lock and holds a finished run: another process trained it meanwhile.</summary>
/// <param name="Label">The run's name in messages.</param>
/// <param name="Position">Its place among the runs of this invocation.</param>
public sealed record TrainingFinishedElsewhere(string Label, RunPosition? Position) : ExperimentEvent;

/// <summary>A landscape measurement of a trained run starts.</summary>
/// <param name="Label">The network's name, e.g. "small-lenet".</param>
/// <param name="Method">The measurement, as `widevalley hessian --method` spells it.</param>
/// <param name="Folder">Where its results go.</param>
public sealed record MeasurementStarted(string Label, string Method, string Folder) : ExperimentEvent;

/// <summary>A line of a measurement's log.</summary>
/// <param name="Label">The network's name.</param>
/// <param name="Message">The line.</param>
public sealed record MeasurementLog(string Label, string Message) : ExperimentEvent;

/// <summary>A measurement advanced: Lanczos iterations, SLQ probes, Hutchinson probes or diagonal-Fisher minibatches.</summary>
/// <param name="Label">The network's name.</param>
/// <param name="Progress">The measurement's report.</param>
public sealed record MeasurementProgressed(string Label, CurvatureProgress Progress) : ExperimentEvent;

/// <summary>The exact Hessian finished a block of columns.</summary>
/// <param name="Label">The network's name.</param>
/// <param name="Progress">Columns done and to do.</param>
public sealed record MeasurementColumnsProgressed(string Label, ExactHessianProgress Progress) : ExperimentEvent;

/// <summary>A measurement finished and its folder is written.</summary>
/// <param name="Label">The network's name.</param>
/// <param name="Measurement">What it wrote and found.</param>
public sealed record MeasurementEnded(string Label, HessianFolder Measurement) : ExperimentEvent;

/// <summary>A measurement failed; the runner goes on to write its report and says so there.</summary>
/// <param name="Label">The network's name.</param>
/// <param name="Method">The measurement that failed.</param>
/// <param name="Message">Why.</param>
public sealed record MeasurementFailed(string Label, string Method, string Message) : ExperimentEvent;

/// <summary>A measurement was interrupted (cancelled); the exact route keeps its finished column blocks for the next invocation.</summary>
/// <param name="Label">The network's name.</param>
/// <param name="Method">The measurement that was interrupted.</param>
/// <param name="Message">What was kept and how to continue.</param>
public sealed record MeasurementInterrupted(string Label, string Method, string Message) : ExperimentEvent;

/// <summary>A comparison looked at every run folder it needs and knows what is left to do.</summary>
/// <param name="Name">The comparison's name, e.g. "table1".</param>
/// <param name="Planned">Runs it needs.</param>
/// <param name="Finished">Runs whose folders hold the finished (or diverged) run already.</param>
/// <param name="ToTrain">Runs to train or resume.</param>
/// <param name="ReportOnly">True when nothing is trained: the report shows the missing runs as pending.</param>
public sealed record ComparisonPlanned(string Name, int Planned, int Finished, int ToTrain, bool ReportOnly) : ExperimentEvent;

/// <summary>
/// Something the user should know that did not stop the work, e.g. a report's figures were not drawn because the
/// plotting font is missing (its text, tables and JSON were written).
/// </summary>
/// <param name="Message">What happened and how to fix it.</param>
public sealed record ExperimentWarning(string Message) : ExperimentEvent;
