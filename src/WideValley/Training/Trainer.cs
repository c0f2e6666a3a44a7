using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Distributed;
using WideValley.Optim;
using static TorchSharp.torch;

namespace WideValley.Training;

/// <summary>How a <see cref="Trainer"/> runs. Everything here is independent of which optimizer is used.</summary>
public sealed record TrainerOptions
{
    /// <summary>Outer epochs: each takes ceil(training-set size / batch size) optimizer steps, whatever a step costs.</summary>
    public int Epochs { get; init; } = 1;
    /// <summary>Stop early once this many effective epochs (gradient evaluations x batch / set size) are done.</summary>
    public double? MaxEffectiveEpochs { get; init; }
    /// <summary>
    /// Also evaluate every this many effective epochs (null: at epoch ends only): after the optimizer step at which the
    /// effective-epoch count first reaches a multiple of it, also inside an outer epoch of many effective epochs (an
    /// Entropy-SGD epoch is L of them), so that runs of different optimizers are seen on the same grid. Such points are
    /// logged like epoch ends, marked <see cref="EpochMetrics.WithinEpoch"/>; a point that falls on the epoch's last
    /// step is the epoch end's evaluation. They do not change the training: BatchNorm statistics recalibrated for them
    /// are put back, and no optimizer diagnostics are taken.
    /// </summary>
    public double? EvaluateEveryEffectiveEpochs { get; init; }
    /// <summary>Factor applied to each parameter group's initial learning rate at the start of each epoch.</summary>
    public LearningRateSchedule Schedule { get; init; } = new ConstantSchedule();
    /// <summary>Clip the global gradient norm of every gradient evaluation to this (0 = off).</summary>
    public double ClipGradNorm { get; init; }
    /// <summary>When a finite but exploding training loss stops the run as diverged (<see cref="DivergenceGuard"/>).</summary>
    public DivergenceGuardOptions Divergence { get; init; } = new();
    /// <summary>Recollect BatchNorm statistics at the current weights before each evaluation.</summary>
    public bool RecalibrateBatchNorm { get; init; }
    /// <summary>Minibatches fed for the recalibration (0 = one full pass over the training set).</summary>
    public int RecalibrationMinibatches { get; init; }
    /// <summary>Also evaluate loss and error on the whole training set at the end of each epoch.</summary>
    public bool EvaluateTrainingSet { get; init; }
    /// <summary>Evaluate the test split at the end of each epoch.</summary>
    public bool EvaluateTest { get; init; } = true;
    /// <summary>Run folder for metrics.jsonl, summary.json, TensorBoard and the checkpoint; null writes nothing.</summary>
    public string? OutputDirectory { get; init; }
    /// <summary>Write the checkpoint after each epoch and on interruption (needs <see cref="OutputDirectory"/>).</summary>
    public bool WriteCheckpoints { get; init; } = true;
    /// <summary>
    /// Also write the checkpoint within epochs, every so many steps or minutes (null: at epoch ends and on
    /// interruption only), so that a crash loses at most that much; a resumed run continues from it bit-identically.
    /// </summary>
    public CheckpointInterval? CheckpointEvery { get; init; }
    /// <summary>Write TensorBoard event files into the run folder.</summary>
    public bool TensorBoard { get; init; } = true;
    /// <summary>The model's name for the checkpoint and summary (default: its type's name).</summary>
    public string ModelName { get; init; } = "";
    /// <summary>The optimizer's name for the checkpoint and summary (default: its registered name, else its type's name).</summary>
    public string OptimizerName { get; init; } = "";
    /// <summary>
    /// The configuration the run was built from, when it was built from one (<see cref="RunSetup.Prepare"/>); stored in
    /// checkpoint and summary so that the run can be resumed and its network rebuilt. Null for a library user's own
    /// model: the checkpoint then records what the trainer can see (<see cref="RunDescription"/>).
    /// </summary>
    public RunConfig? RunConfig { get; init; }
    /// <summary>What the data is, in words (e.g. "fashion-mnist (60000 train, ...)"), for the checkpoint's run description.</summary>
    public string? DataDescription { get; init; }
    /// <summary>
    /// A term added to every minibatch loss before back-propagation (e.g. <see cref="HessianTraceRegularizer"/>); null:
    /// none. Not stored in the checkpoint: a resumed run must be given the same regulariser.
    /// </summary>
    public ILossRegularizer? Regularizer { get; init; }
    /// <summary>
    /// A measurement run after every epoch's evaluation and before its checkpoint (e.g. <see cref="CurvatureTracker"/>);
    /// null: none. Not stored in the checkpoint: a resumed run must be given the same hook.
    /// </summary>
    public IEpochEndHook? EpochEndHook { get; init; }
    /// <summary>
    /// The ranks of the job (<c>train --distributed</c>); null: one process. Every rank runs a trainer with the same
    /// options; only rank 0 writes into <see cref="OutputDirectory"/>.
    /// </summary>
    public ICollectives? Collectives { get; init; }
    /// <summary>How the ranks share the training (<see cref="DistributedMode"/>); None without --distributed.</summary>
    public DistributedMode Distributed { get; init; }
}

/// <summary>How a <see cref="Trainer.Run"/> ended.</summary>
public enum TrainingStatus
{
    /// <summary>Every planned epoch (or the effective-epoch budget) is done.</summary>
    Completed,
    /// <summary>Stopped on request (<see cref="Trainer.RequestStop"/>); resumable from its checkpoint.</summary>
    Interrupted,
    /// <summary>A loss or weight became non-finite; the last good checkpoint is kept.</summary>
    Diverged,
}

/// <summary>Progress within an epoch, reported after every optimizer step.</summary>
public readonly record struct StepProgress(int Epoch, int Epochs, long Step, long StepsPerEpoch, double MeanTrainLoss, double EffectiveEpochs);

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
/// <param name="Status">Completed, interrupted on request, or diverged.</param>
/// <param name="Message">Why it stopped early, or null.</param>
/// <param name="Epochs">Every epoch's metrics, including those of earlier sessions of a resumed run.</param>
/// <param name="GradEvals">Gradient evaluations (closure calls) in total.</param>
/// <param name="EffectiveEpochs">Gradient evaluations / minibatches per pass.</param>
/// <param name="TotalSeconds">Training time over all sessions.</param>
public sealed record TrainingResult(
    TrainingStatus Status,
    string? Message,
    IReadOnlyList<EpochMetrics> Epochs,
    long GradEvals,
    double EffectiveEpochs,
    double TotalSeconds)
{
    /// <summary>
    /// The evaluations inside epochs (<see cref="TrainerOptions.EvaluateEveryEffectiveEpochs"/>), including those of
    /// earlier sessions of a resumed run; empty without that setting.
    /// </summary>
    public IReadOnlyList<EpochMetrics> WithinEpochEvaluations { get; init; } = [];

    /// <summary>The last epoch's metrics, or null when none finished.</summary>
    public EpochMetrics? Last => Epochs.Count > 0 ? Epochs[^1] : null;
}

/// <summary>Thrown (inside the closure) when a minibatch loss is not finite; caught by the trainer.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message)
{
    /// <summary>
    /// Outer steps taken when the weights that gave the first diverging loss were in place: a checkpoint written at
    /// this many steps or later may hold diverged weights. Null: only the current weights are in doubt.
    /// </summary>
    public long? SuspectFromOuterStep { get; init; }
}

/// <summary>
/// Trains any <see cref="ITrainingTask"/> with any TorchSharp optimizer. Each optimizer step receives a closure that
/// draws a fresh minibatch, computes its loss, back-propagates and returns the loss; the trainer counts closure calls
/// as gradient evaluations, so optimizers that evaluate several minibatches per step (Entropy-SGD) need no special
/// handling, and runs of different optimizers can be compared at equal effective epochs.
/// </summary>
public sealed class Trainer
{
    /// <summary>The checkpoint's file name in the run folder.</summary>
    public const string CheckpointFileName = "checkpoint.bin";
    /// <summary>The summary's file name in the run folder.</summary>
    public const string SummaryFileName = "summary.json";

    readonly ITrainingTask _task;
    readonly optim.Optimizer _optimizer;
    readonly TrainerOptions _options;
    readonly List<TorchSharp.Modules.Parameter> _parameters;
    volatile bool _stopRequested;
    RunDescription? _description;
    readonly DivergenceGuard _divergenceGuard;
    readonly ICollectives _collectives;
    readonly bool _isRoot;
    readonly IReplicaOptimizer? _replicas;
    GradientAverager? _gradientAverager;
    // Set by a stop request only after every rank has agreed on it (distributed runs), so all ranks stop at one step.
    bool _stopAgreed;
    // Why this rank's replica diverged inside a step (replica runs), told to the other ranks after the step.
    string? _localDivergence;

    // Counters and accumulators of the current run (restored from a checkpoint on resume).
    long _gradEvals, _outerSteps;
    double _lossSum;
    long _errors, _count;
    int _currentEpoch;
    long _currentStep;
    // False until the first save of a new run: an older run's checkpoint in the folder must not become its previous generation.
    bool _keepPreviousCheckpoint = true;
    readonly Stopwatch _sinceCheckpoint = new();

    /// <summary>Called after every optimizer step (for progress displays).</summary>
    public Action<StepProgress>? StepCompleted { get; set; }
    /// <summary>Called after every epoch, once its metrics are logged and its checkpoint written.</summary>
    public Action<EpochMetrics>? EpochCompleted { get; set; }
    /// <summary>
    /// Called with what the trainer repaired in the run folder before starting: a damaged checkpoint replaced by the
    /// previous generation, metrics lines dropped, stale temporary files removed (for the user to read).
    /// </summary>
    public Action<string>? Notice { get; set; }

    /// <summary>A trainer for <paramref name="task"/>'s model with <paramref name="optimizer"/> (built over that model's parameters).</summary>
    public Trainer(ITrainingTask task, optim.Optimizer optimizer, TrainerOptions options)
    {
        if (options.Epochs < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Epochs, "--epochs must be at least 1");
        if (options.MaxEffectiveEpochs is double b && !(b > 0))
            throw new ArgumentOutOfRangeException(nameof(options), b, "the effective-epoch budget must be positive");
        if (options.EvaluateEveryEffectiveEpochs is double every && (!(every > 0) || double.IsInfinity(every)))
            throw new ArgumentOutOfRangeException(nameof(options), every, "the evaluation interval in effective epochs must be a positive number");
        if (options.ClipGradNorm < 0) throw new ArgumentOutOfRangeException(nameof(options), options.ClipGradNorm, "--clip-grad-norm must be 0 (off) or positive");
        _task = task;
        _optimizer = optimizer;
        _options = options;
        _parameters = task.Model.parameters().Where(p => p.requires_grad).ToList();
        _divergenceGuard = new DivergenceGuard(options.Divergence, StepsPerEpoch);
        _collectives = options.Collectives ?? new SingleProcessCollectives();
        _isRoot = _collectives.Rank == 0;
        _replicas = optimizer as IReplicaOptimizer;
        switch (options.Distributed)
        {
            case DistributedMode.Replicas when _replicas is null:
                throw new ArgumentException(
                    $"replica training (--distributed parle or elastic) needs an optimizer that keeps one replica per rank (IReplicaOptimizer); {optimizer.GetType().Name} is not one");
            case DistributedMode.DataParallel when _replicas is not null:
                throw new ArgumentException(
                    $"{optimizer.GetType().Name} couples replicas of different weights; data-parallel training keeps the weights of all ranks identical. " +
                    "Use --distributed parle or elastic for it");
            case DistributedMode.None when _collectives.Size > 1:
                throw new ArgumentException($"the job has {_collectives.Size} ranks but no distributed mode was chosen; pass --distributed data-parallel, parle or elastic");
        }
        if (options.Distributed != DistributedMode.None && (options.Regularizer is not null || options.EpochEndHook is not null))
            throw new ArgumentException("distributed training does not yet support a loss regulariser (--htr-*) or an epoch-end measurement (--track-curvature)");
    }

    /// <summary>Whether the ranks must agree after every step (a job of several ranks).</summary>
    bool Coordinated => _collectives.Size > 1;

    /// <summary>The stop request every rank acts on: this process's own, or in a job of several ranks the agreed one.</summary>
    bool StopNow => Coordinated ? _stopAgreed : _stopRequested;

    /// <summary>Gradient evaluations (closure calls) so far.</summary>
    public long GradEvals => _gradEvals;
    /// <summary>Gradient evaluations / minibatches per pass: passes over the data, whatever an optimizer step costs.</summary>
    public double EffectiveEpochs => _gradEvals / _task.MinibatchesPerPass;

    /// <summary>Optimizer steps per outer epoch: ceil(minibatches per pass).</summary>
    public long StepsPerEpoch => (long)Math.Ceiling(_task.MinibatchesPerPass - 1e-9);

    /// <summary>
    /// Asks the run to stop; it then writes a checkpoint and returns <see cref="TrainingStatus.Interrupted"/>. Safe to
    /// call from another thread (e.g. a Ctrl-C handler). A step in progress stops at its next minibatch: the closure
    /// throws, the optimizer undoes the step (every WideValley optimizer does; an optimizer that changes its state
    /// between closure calls and does not undo it would be saved mid-step), and the checkpoint is the state before it,
    /// so that an Entropy-SGD step of many minibatches need not finish before the run stops.
    /// </summary>
    public void RequestStop() => _stopRequested = true;

    /// <summary>Where rank 0 writes <paramref name="name"/>; null on other ranks (they write nothing) and without an output folder.</summary>
    string? OutPath(string name) => _options.OutputDirectory is null || !_isRoot ? null : Path.Combine(_options.OutputDirectory, name);

    /// <summary>
    /// Trains until the configured epochs (or effective-epoch budget) are done. With <paramref name="resume"/>, first
    /// restores the checkpoint in the output folder and continues from exactly where it was written.
    /// </summary>
    public TrainingResult Run(bool resume = false)
    {
        var history = new List<EpochMetrics>();
        _withinEpoch.Clear();
        double priorSeconds = 0, partialEpochSeconds = 0;
        var startEpoch = 1;
        if (_options.OutputDirectory is string folder && _isRoot)
        {
            var stale = AtomicFile.RemoveStaleTemporaries(folder, [CheckpointFileName, Path.GetFileName(Checkpoint.PreviousGenerationPath(CheckpointFileName)), SummaryFileName, "metrics.jsonl"]);
            if (stale.Count > 0)
                Notice?.Invoke($"removed {stale.Count} temporary file(s) left by an interrupted save: {string.Join(", ", stale.Select(Path.GetFileName))}");
        }
        if (resume)
        {
            var path = _options.OutputDirectory is string runFolder ? Path.Combine(runFolder, CheckpointFileName)
                : throw new InvalidOperationException("resuming needs an output folder");
            // Every rank reads the same file (the run folder is on a file system all ranks see).
            var generation = Checkpoint.SelectIntact(path);
            if (generation.FallbackMessage is string fallback && _isRoot) Notice?.Invoke(fallback);
            var meta = Checkpoint.ReadMeta(generation.Path);
            RequireResumableHere(generation.Path, meta);
            // The main sections are rank 0's own state, except in a replica checkpoint, whose weights are the replicas'
            // mean and which stores every rank's own state beside them; the stored states are those of ranks 1 to K - 1
            // otherwise. A rank loads only its own state: a replica optimizer refuses another rank's.
            var everyRankStored = meta.WeightsAreReplicaMean == true;
            var index = everyRankStored ? _collectives.Rank : _collectives.Rank - 1;
            var others = index >= 0 ? Checkpoint.ReadOtherRanks(generation.Path) : [];
            if (index >= 0 && index < others.Count)
                Checkpoint.RestoreRankState(others[index], _task.Model, _optimizer, _task);
            else if (everyRankStored)
                throw new InvalidDataException($"{generation.Path} holds {others.Count} replica states; rank {_collectives.Rank} has none");
            else
                Checkpoint.Load(generation.Path, _task.Model, _optimizer, _task); // rank 0, or a data-parallel rank the writer did not have
            _gradEvals = meta.GradEvals;
            _outerSteps = meta.OuterSteps;
            priorSeconds = meta.ElapsedSeconds;
            startEpoch = meta.CompletedEpochs + 1;
            _currentStep = meta.StepInEpoch;
            _lossSum = meta.PartialLossSum;
            _errors = meta.PartialErrors;
            _count = meta.PartialCount;
            partialEpochSeconds = meta.PartialSeconds;
            if (_isRoot)
            {
                var repair = MetricsLog.RepairForResume(OutPath("metrics.jsonl")!, meta.CompletedEpochs, meta.GradEvals);
                if (repair.Message is string repaired) Notice?.Invoke(repaired);
                history.AddRange(repair.Kept.Where(m => m.WithinEpoch != true));
                _withinEpoch.AddRange(repair.Kept.Where(m => m.WithinEpoch == true));
            }
        }
        else if (OutPath(CheckpointFileName) is string path && _options.WriteCheckpoints)
        {
            _keepPreviousCheckpoint = false;
            AtomicFile.TryDelete(Checkpoint.PreviousGenerationPath(path));
        }

        if (_options.EpochEndHook?.Start(_task.Model, _options.OutputDirectory, startEpoch - 1, resume) is string hookNotice) Notice?.Invoke(hookNotice);
        // A fresh distributed run starts every rank from rank 0's weights (a resumed one from each rank's stored state).
        if (Coordinated && !resume) DistributedTraining.BroadcastModel(_collectives, _task.Model);
        using var log = _options.OutputDirectory is null || !_isRoot ? null
            : new MetricsLog(_options.OutputDirectory, resume ? startEpoch - 1 : null, _options.TensorBoard, resume ? _gradEvals : null);
        var total = Stopwatch.StartNew();
        _sinceCheckpoint.Restart();
        double Elapsed() => priorSeconds + total.Elapsed.TotalSeconds;
        var status = TrainingStatus.Completed;
        string? message = null;
        _task.Model.train();
        // A summary from the start: a run that fails later (a full disk) overwrites it in place with what happened.
        WriteSummary(history, TrainingStatus.Completed, null, Elapsed(), finished: false);

        try
        {
            for (var epoch = startEpoch; epoch <= _options.Epochs; epoch++)
            {
                if (BudgetReached()) break;
                _currentEpoch = epoch;
                var epochWatch = Stopwatch.StartNew();
                var lr = SetLearningRates(epoch);
                if (epoch != startEpoch) { _currentStep = 0; _lossSum = 0; _errors = 0; _count = 0; partialEpochSeconds = 0; }
                _task.Model.train();
                while (_currentStep < StepsPerEpoch && !BudgetReached())
                {
                    var (lossBefore, countBefore, gradEvalsBefore) = (_lossSum, _count, _gradEvals);
                    var errorsBefore = _errors;
                    var stepTaken = TryStep();
                    if (stepTaken) AgreeAfterStep(lossBefore, errorsBefore, countBefore);
                    if (stepTaken)
                    {
                        _currentStep++;
                        _outerSteps++;
                        GuardDivergence(epoch, _lossSum - lossBefore, _count - countBefore);
                        if (_currentStep < StepsPerEpoch && !BudgetReached() && CrossedEvaluationPoint(gradEvalsBefore))
                        {
                            var point = EvaluateWithinEpoch(epoch, lr, partialEpochSeconds + epochWatch.Elapsed.TotalSeconds, Elapsed());
                            _withinEpoch.Add(point);
                            log?.Append(point);
                        }
                        StepCompleted?.Invoke(new StepProgress(epoch, _options.Epochs, _currentStep, StepsPerEpoch,
                            _count > 0 ? _lossSum / _count : double.NaN, EffectiveEpochs));
                    }
                    if (stepTaken && _options.CheckpointEvery is CheckpointInterval && !StopNow && _currentStep < StepsPerEpoch
                        && _checkpointDue)
                    {
                        RequireFiniteWeights(epoch);
                        SaveCheckpoint(epoch - 1, _currentStep, Elapsed(), partialEpochSeconds + epochWatch.Elapsed.TotalSeconds, "periodic");
                    }
                    if (StopNow && (!stepTaken || _currentStep < StepsPerEpoch))
                    {
                        RequireFiniteWeights(epoch);
                        SaveCheckpoint(epoch - 1, _currentStep, Elapsed(), partialEpochSeconds + epochWatch.Elapsed.TotalSeconds, "interrupted");
                        status = TrainingStatus.Interrupted;
                        message = $"stopped on request in epoch {epoch} after step {_currentStep} of {StepsPerEpoch}; " +
                                  (_options.OutputDirectory is null ? "no output folder, nothing saved" : $"resume with --resume (checkpoint: {OutPath(CheckpointFileName)})");
                        return Finish(history, status, message, Elapsed());
                    }
                }

                var metrics = EndOfEpoch(epoch, lr, partialEpochSeconds + epochWatch.Elapsed.TotalSeconds, Elapsed());
                RequireFiniteWeights(epoch);
                _options.EpochEndHook?.EpochEnded(new EpochEndContext(_task.Model, epoch, metrics));
                history.Add(metrics);
                log?.Append(metrics);
                SaveCheckpoint(epoch, 0, Elapsed(), 0, "epoch-end");
                EpochCompleted?.Invoke(metrics);
                WriteSummary(history, TrainingStatus.Completed, null, Elapsed(), finished: false);
                if (StopNow && epoch < _options.Epochs)
                {
                    status = TrainingStatus.Interrupted;
                    message = $"stopped on request after epoch {epoch}; resume with --resume";
                    return Finish(history, status, message, Elapsed());
                }
            }
        }
        catch (IOException e) when (_options.OutputDirectory is not null)
        {
            // Disk full, folder gone, permissions: the summary must not keep saying "running".
            var failed = $"training stopped in epoch {_currentEpoch} by an I/O error ({e.Message}); " +
                         $"{Checkpoint.DescribeKept(OutPath(CheckpointFileName)!)}. Fix the cause (free disk space?) and resume with --resume";
            TryWriteFailedSummary(history, failed, Elapsed());
            throw new IOException(failed, e);
        }
        catch (TrainingDivergedException e)
        {
            status = TrainingStatus.Diverged;
            // A checkpoint written inside the diverging stretch (a periodic one, or an epoch end just before the guard's
            // check) holds weights that already gave bad losses: the earlier generation takes its place.
            (string Said, bool KeptIsSuspect)? setAside = null;
            if (e.SuspectFromOuterStep is long suspect && _options.WriteCheckpoints && OutPath(CheckpointFileName) is string checkpointPath)
                setAside = Checkpoint.SetAsideIfWrittenAfter(checkpointPath, suspect);
            // Said from the checkpoint actually kept: a periodic one (--checkpoint-every) may lie inside an epoch after
            // the last finished one, and one of an earlier session knows its own epoch.
            var keptMeta = KeptCheckpoint();
            var kept = keptMeta is not null
                ? $"the {(setAside is { KeptIsSuspect: true } ? "" : "last good ")}checkpoint ({Checkpoint.DescribePosition(keptMeta)}) is kept"
                : HasCheckpoint ? "no intact checkpoint is kept" : "no checkpoint was written";
            message = $"{e.Message}. Training stopped; " + (setAside is { } aside ? aside.Said + "; " : "") + kept +
                      (_options.OutputDirectory is null ? "." : $" in {_options.OutputDirectory}.") +
                      DivergenceAdvice(keptMeta);
        }
        return Finish(history, status, message, Elapsed());
    }

    /// <summary>Stops the run (<see cref="TrainingDivergedException"/>) when the guard sees a diverging loss; called after every step.</summary>
    void GuardDivergence(int epoch, double stepLossSum, long stepCount)
    {
        if (_divergenceGuard.Observe(stepLossSum, stepCount) is string why)
            throw new TrainingDivergedException($"training diverged in epoch {epoch}, step {_currentStep} of {StepsPerEpoch}: {why}")
            {
                // The losses of the last SuspectSteps steps were computed at the weights each step started from.
                SuspectFromOuterStep = _outerSteps - _divergenceGuard.SuspectSteps,
            };
    }

    bool HasCheckpoint => _options.WriteCheckpoints && OutPath(CheckpointFileName) is string path && File.Exists(path);

    /// <summary>The header of the newest intact checkpoint in the output folder; null when there is none.</summary>
    CheckpointMeta? KeptCheckpoint()
    {
        if (!HasCheckpoint) return null;
        try
        {
            return Checkpoint.SelectIntactForReading(OutPath(CheckpointFileName)!).Meta;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// What to do after a divergence: resume from the kept checkpoint (<paramref name="kept"/>) with a gentler step, or
    /// start again. A resumed run goes on in the epoch after the kept checkpoint's completed ones, so the gentler
    /// schedule starts there.
    /// </summary>
    string DivergenceAdvice(CheckpointMeta? kept)
    {
        var lastGoodEpoch = kept?.CompletedEpochs ?? 0;
        return kept is not null
            ? $" Resume it with a smaller learning rate or clipping: --resume --lr-schedule custom:{lastGoodEpoch + 1}=0.1 (a tenth of the learning rate from epoch {lastGoodEpoch + 1} on), " +
              "--clip-grad-norm 1, or both; or start again with a smaller --lr or more weight decay."
            : " Start again with a smaller --lr, --clip-grad-norm 1, or more weight decay.";
    }

    /// <summary>Evaluations inside epochs so far (<see cref="TrainerOptions.EvaluateEveryEffectiveEpochs"/>).</summary>
    readonly List<EpochMetrics> _withinEpoch = [];

    /// <summary>
    /// Whether the step that began at <paramref name="gradEvalsBefore"/> gradient evaluations carried the effective-epoch
    /// count onto or past a multiple of the evaluation interval. Judged from the counters alone, so that a resumed run
    /// evaluates exactly where an uninterrupted one would.
    /// </summary>
    bool CrossedEvaluationPoint(long gradEvalsBefore)
    {
        if (_options.EvaluateEveryEffectiveEpochs is not double every) return false;
        // A small tolerance: 0.1 + 0.1 + 0.1 must reach 0.3.
        static long Index(double effective, double every) => (long)Math.Floor(effective / every + 1e-9);
        return Index(_gradEvals / _task.MinibatchesPerPass, every) > Index(gradEvalsBefore / _task.MinibatchesPerPass, every);
    }

    /// <summary>
    /// An evaluation inside epoch <paramref name="epoch"/>, as at an epoch end but leaving the training untouched:
    /// BatchNorm statistics recalibrated for it are put back, optimizer diagnostics stay where they accumulate, and the
    /// epoch-end hook is not called.
    /// </summary>
    EpochMetrics EvaluateWithinEpoch(int epoch, double lr, double epochSeconds, double elapsedBefore)
    {
        Tensor[]? saved = null;
        if (_options.RecalibrateBatchNorm)
            saved = _task.Model.buffers().Select(b => b.detach().clone()).ToArray();
        try
        {
            var m = Evaluate(epoch, lr, epochSeconds, elapsedBefore, takeDiagnostics: false);
            m.WithinEpoch = true;
            return m;
        }
        finally
        {
            if (saved is not null)
            {
                using (no_grad())
                {
                    var buffers = _task.Model.buffers().ToArray();
                    for (var i = 0; i < buffers.Length; i++) buffers[i].copy_(saved[i]);
                }
                foreach (var t in saved) t.Dispose();
            }
        }
    }

    bool BudgetReached() => _options.MaxEffectiveEpochs is double budget && EffectiveEpochs >= budget - 1e-9;

    double SetLearningRates(int epoch)
    {
        var factor = _options.Schedule.Factor(epoch);
        double first = double.NaN;
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = group.InitialLearningRate * factor;
            if (double.IsNaN(first)) first = group.LearningRate;
        }
        return first;
    }

    /// <summary>
    /// Thrown by the closure when a stop was requested in the middle of an optimizer step that evaluates many
    /// minibatches (an Entropy-SGD step is L of them): the optimizer undoes the step (WideValley's do, see
    /// <see cref="LocalEntropy.Estimate"/>) and the trainer rewinds its data stream and counters to where the step began.
    /// </summary>
    sealed class StopInsideStepException() : OperationCanceledException("a stop was requested inside an optimizer step");

    readonly MemoryStream _stepStartTask = new();
    (long GradEvals, double LossSum, long Errors, long Count) _stepStartCounters;
    byte[] _stepStartRandom = [];
    Tensor[]? _modelBuffers, _stepStartBuffers;

    /// <summary>
    /// One optimizer step; false when a stop request interrupted it, in which case everything a checkpoint holds is as
    /// it was before the step, so that the checkpoint written next resumes bit for bit: the optimizer undoes its own
    /// part, and the trainer puts back the data stream, the counters, the global random generator (dropout masks drawn
    /// by the step's forward passes) and the model's buffers (batch-norm running statistics they updated).
    /// </summary>
    bool TryStep()
    {
        _stepStartTask.SetLength(0);
        using (var writer = new BinaryWriter(_stepStartTask, System.Text.Encoding.UTF8, leaveOpen: true)) _task.SaveState(writer);
        _stepStartCounters = (_gradEvals, _lossSum, _errors, _count);
        using (var rng = random.get_rng_state()) _stepStartRandom = rng.data<byte>().ToArray();
        // The model's buffers are the same tensors for the whole run (updated in place): fetched once, not per step.
        var buffers = _modelBuffers ??= _task.Model.buffers().Select(b => b.DetachFromDisposeScope()).ToArray();
        _stepStartBuffers ??= buffers.Select(b => b.detach().clone().DetachFromDisposeScope()).ToArray();
        using (no_grad())
            for (var i = 0; i < buffers.Length; i++) _stepStartBuffers[i].copy_(buffers[i]);
        try
        {
            using var scope = NewDisposeScope();
            _stepMinibatch = null;
            _stepAgreement = null;
            _globalInStep = default;
            _optimizer.step(Closure);
            return true;
        }
        catch (StopInsideStepException)
        {
            _stepStartTask.Position = 0;
            using (var reader = new BinaryReader(_stepStartTask, System.Text.Encoding.UTF8, leaveOpen: true)) _task.LoadState(reader);
            (_gradEvals, _lossSum, _errors, _count) = _stepStartCounters;
            using (var rng = tensor(_stepStartRandom, ScalarType.Byte)) random.set_rng_state(rng);
            using (no_grad())
                for (var i = 0; i < buffers.Length; i++) buffers[i].copy_(_stepStartBuffers[i]);
            return false;
        }
    }

    /// <summary>The closure handed to the optimizer: one fresh minibatch, one gradient evaluation.</summary>
    Tensor Closure()
    {
        // In a job of several ranks a stop waits for the end of the step, where the ranks agree on it (AgreeAfterStep).
        if (_stopRequested && !Coordinated) throw new StopInsideStepException();
        _optimizer.zero_grad();
        // SAM's second call in a step re-evaluates the step's minibatch at the perturbed weights: a gradient evaluation, not new data.
        var repeat = _optimizer is IMinibatchRepeatingOptimizer { RepeatsMinibatch: true };
        var mb = repeat ? RepeatStepMinibatch() : (_stepMinibatch = _task.NextTrainingLoss()).Value;
        var dataParallel = Coordinated && _options.Distributed == DistributedMode.DataParallel;
        if (!double.IsFinite(mb.Value) && Coordinated && _options.Distributed == DistributedMode.Replicas)
        {
            // The other replicas are inside the same step and will meet this one in its collectives: the step is
            // finished, and all ranks stop together after it (AgreeAfterStep).
            _localDivergence ??= $"rank {_collectives.Rank}'s minibatch loss is {mb.Value} (gradient evaluation {_gradEvals + 1:N0})";
        }
        else if (!double.IsFinite(mb.Value) && !dataParallel)
            throw new TrainingDivergedException(
                $"training diverged in epoch {_currentEpoch}, step {_currentStep + 1} of {StepsPerEpoch} " +
                $"(gradient evaluation {_gradEvals + 1:N0}): the minibatch loss is {mb.Value}")
            {
                SuspectFromOuterStep = _outerSteps, // the weights this step started from gave the non-finite loss
            };
        var objective = _options.Regularizer?.Objective(new RegularizationContext(_task.Model, mb.Loss, _currentEpoch, _currentStep, _gradEvals, mb.Reevaluate));
        if (objective is null) mb.Loss.backward();
        else
        {
            if (!double.IsFinite(objective.ToDouble()))
                throw new TrainingDivergedException(
                    $"training diverged in epoch {_currentEpoch}, step {_currentStep + 1} of {StepsPerEpoch} " +
                    $"(gradient evaluation {_gradEvals + 1:N0}): the minibatch loss is {mb.Value} but the regularised objective is {objective.ToDouble()}")
                {
                    SuspectFromOuterStep = _outerSteps,
                };
            objective.backward();
        }
        Tensor returned = mb.Loss;
        if (dataParallel)
        {
            // One allreduce: every rank's gradient becomes the global minibatch's, and every rank sees its loss, so
            // that all ranks stop together on a non-finite one and optimizers that read the loss decide alike.
            _gradientAverager ??= new GradientAverager(_collectives, _parameters);
            var agreement = _gradientAverager.Average(mb.Value, mb.Count, mb.Count * _collectives.Size, mb.Errors, _stopRequested, CheckpointDueAfterThisStep());
            var global = agreement.MeanLoss;
            if (!repeat)
            {
                // The step's metrics are the global minibatches' (AgreeAfterStep needs no collective of its own).
                _globalInStep = (_globalInStep.LossSum + agreement.LossSum, _globalInStep.Errors + agreement.Errors, _globalInStep.Count + agreement.Count);
            }
            _stepAgreement = agreement;
            if (!double.IsFinite(global))
                throw new TrainingDivergedException(
                    $"training diverged in epoch {_currentEpoch}, step {_currentStep + 1} of {StepsPerEpoch} " +
                    $"(gradient evaluation {_gradEvals + 1:N0}): the global minibatch loss over {_collectives.Size} ranks is {global}")
                {
                    SuspectFromOuterStep = _outerSteps,
                };
            returned = tensor(global, dtype: mb.Loss.dtype);
        }
        if (_options.ClipGradNorm > 0)
            nn.utils.clip_grad_norm_(_parameters, _options.ClipGradNorm);
        _gradEvals++;
        if (!repeat)
        {
            // The training loss and error are those at the weights kept, not at an optimizer's perturbed point.
            _lossSum += mb.Value * mb.Count;
            _errors += mb.Errors;
            _count += mb.Count;
        }
        return returned;
    }

    /// <summary>Whether a periodic checkpoint is due after the step just taken (agreed by all ranks in a distributed run).</summary>
    bool _checkpointDue;

    /// <summary>The last data-parallel gradient allreduce of the current step (null before the first, and outside data-parallel runs).</summary>
    DataParallelAgreement? _stepAgreement;
    /// <summary>The current step's global minibatch loss sums, errors and samples, from its data-parallel gradient allreduces.</summary>
    (double LossSum, long Errors, long Count) _globalInStep;

    /// <summary>Whether the periodic checkpoint interval has run out at the end of the step under way (this rank's clock).</summary>
    bool CheckpointDueAfterThisStep() => _options.CheckpointEvery is CheckpointInterval every && every.IsDue(_outerSteps + 1, _sinceCheckpoint.Elapsed);

    /// <summary>
    /// After every step: in a job of several ranks, one small allreduce sums the step's training-loss sums, errors and
    /// samples over the ranks (the metrics are those of the global minibatches, or of all replicas) and agrees on what
    /// only some ranks may know: a stop request (a signal reaches ranks at different times), a due periodic checkpoint
    /// (time-based intervals run on each rank's clock) and a diverged replica. Every rank then takes the same branch.
    /// Data-parallel steps need no collective here: their gradient allreduces carried the same sums and flags.
    /// </summary>
    void AgreeAfterStep(double lossBefore, long errorsBefore, long countBefore)
    {
        var due = CheckpointDueAfterThisStep();
        if (!Coordinated)
        {
            _checkpointDue = due;
            return;
        }
        if (_stepAgreement is DataParallelAgreement last)
        {
            // Data-parallel: the step's gradient allreduces already summed the metrics and carried the flags (the last
            // one's flags count), so the ranks agree without a second collective per step.
            _lossSum = lossBefore + _globalInStep.LossSum;
            _errors = errorsBefore + _globalInStep.Errors;
            _count = countBefore + _globalInStep.Count;
            _stopAgreed = last.StopRequested;
            _checkpointDue = last.CheckpointDue;
            return;
        }
        double[] agreed;
        using (var values = tensor(new[]
               {
                   _lossSum - lossBefore, _errors - errorsBefore, _count - countBefore,
                   _stopRequested ? 1.0 : 0.0, due ? 1.0 : 0.0, _localDivergence is null ? 0.0 : 1.0,
               }, ScalarType.Float64))
        {
            _collectives.AllReduceSum(values);
            agreed = values.data<double>().ToArray();
        }
        _lossSum = lossBefore + agreed[0];
        _errors = errorsBefore + (long)Math.Round(agreed[1]);
        _count = countBefore + (long)Math.Round(agreed[2]);
        _stopAgreed = agreed[3] > 0;
        _checkpointDue = agreed[4] > 0;
        if (agreed[5] > 0)
        {
            var why = _localDivergence ?? "another rank's replica had a non-finite minibatch loss";
            _localDivergence = null;
            throw new TrainingDivergedException(
                $"training diverged in epoch {_currentEpoch}, step {_currentStep + 1} of {StepsPerEpoch} ({_collectives.Size} ranks): {why}")
            {
                SuspectFromOuterStep = _outerSteps,
            };
        }
    }

    /// <summary>
    /// Refuses to resume a checkpoint this job cannot continue: another distributed mode, or replicas of another number
    /// of ranks. A data-parallel run may resume with another number of ranks (the global minibatch changes; said in a
    /// notice), and ranks beyond the stored ones start from rank 0's state. Every rank reads the same header, so all
    /// refuse alike.
    /// </summary>
    void RequireResumableHere(string path, CheckpointMeta meta)
    {
        var mode = DistributedTraining.CheckpointName(_options.Distributed);
        var storedMode = meta.Distributed;
        var storedRanks = meta.WorldSize ?? 1;
        string Describe(string? m, int ranks) => m is null ? "a run without --distributed" : $"a {m} run of {ranks} rank{(ranks == 1 ? "" : "s")}";
        if (storedMode != mode)
            throw new InvalidOperationException(
                $"{path} holds {Describe(storedMode, storedRanks)}; this job is {Describe(mode, _collectives.Size)}. A run resumes in the mode it was started in");
        if (_options.Distributed == DistributedMode.Replicas && storedRanks != _collectives.Size)
            throw new InvalidOperationException(
                $"{path} holds {storedRanks} replicas (one per rank); this job has {_collectives.Size} rank{(_collectives.Size == 1 ? "" : "s")}. " +
                $"Resume it with mpirun -np {storedRanks}: every replica's state is in the checkpoint and none can be dropped or invented");
        if (_options.Distributed == DistributedMode.DataParallel && storedRanks != _collectives.Size && _isRoot)
            Notice?.Invoke(
                $"the checkpoint was written by {storedRanks} ranks and this job has {_collectives.Size}: the global minibatch changes from " +
                $"{storedRanks} to {_collectives.Size} times --batch-size, so the run goes on, but not as the original job would have" +
                (_collectives.Size > storedRanks ? $"; ranks {storedRanks} and above start from rank 0's state" : ""));
    }

    /// <summary>The step's first minibatch this step, for optimizers that evaluate it twice (<see cref="IMinibatchRepeatingOptimizer"/>).</summary>
    MinibatchLoss? _stepMinibatch;

    MinibatchLoss RepeatStepMinibatch()
    {
        var first = _stepMinibatch ?? throw new InvalidOperationException(
            $"{_optimizer.GetType().Name} asked to re-evaluate this step's minibatch before the step evaluated one");
        var reevaluate = first.Reevaluate ?? throw new NotSupportedException(
            $"{_optimizer.GetType().Name} evaluates each minibatch twice (at the weights and at a perturbed point), " +
            $"but this training task ({_task.GetType().Name}) cannot re-evaluate a minibatch");
        var loss = reevaluate();
        return first with { Loss = loss, Value = loss.ToDouble() };
    }

    EpochMetrics EndOfEpoch(int epoch, double lr, double trainingSeconds, double elapsedBefore) =>
        Evaluate(epoch, lr, trainingSeconds, elapsedBefore, takeDiagnostics: true);

    EpochMetrics Evaluate(int epoch, double lr, double trainingSeconds, double elapsedBefore, bool takeDiagnostics)
    {
        var watch = Stopwatch.StartNew();
        // Replicas are judged by their mean (a collective call: every rank evaluates, rank 0 reports); the replica's own
        // weights come back bit for bit afterwards.
        using var reference = _options.Distributed == DistributedMode.Replicas ? _replicas!.UseReference() : null;
        if (_options.RecalibrateBatchNorm)
            BatchNormRecalibration.Recalibrate(_task, _options.RecalibrationMinibatches);
        var trainLoss = _count > 0 ? _lossSum / _count : double.NaN;
        var m = new EpochMetrics
        {
            Epoch = epoch,
            EffectiveEpochs = EffectiveEpochs,
            GradEvals = _gradEvals,
            OuterSteps = _outerSteps,
            Lr = lr,
            TrainLoss = trainLoss,
            TrainError = _count > 0 ? 100.0 * _errors / _count : double.NaN,
            TrainPerplexity = _task.IsLanguageModel ? Math.Exp(trainLoss) : null,
        };
        if (_task.HasValidation)
        {
            var v = _task.Evaluate(EvaluationSplit.Validation);
            (m.ValLoss, m.ValError, m.ValPerplexity) = (v.Loss, v.ErrorPercent, v.Perplexity);
        }
        if (_options.EvaluateTest)
        {
            var t = _task.Evaluate(EvaluationSplit.Test);
            (m.TestLoss, m.TestError, m.TestPerplexity) = (t.Loss, t.ErrorPercent, t.Perplexity);
        }
        if (_options.EvaluateTrainingSet)
        {
            var t = _task.Evaluate(EvaluationSplit.Train);
            (m.TrainEvalLoss, m.TrainEvalError) = (t.Loss, t.ErrorPercent);
        }
        if (takeDiagnostics && _optimizer is IOptimizerDiagnostics diagnostics)
        {
            var d = diagnostics.TakeDiagnostics();
            if (d.Count > 0) m.Extra = d.ToDictionary(kv => kv.Key, kv => (object)kv.Value);
        }
        m.Seconds = trainingSeconds + watch.Elapsed.TotalSeconds;
        m.TotalSeconds = elapsedBefore + watch.Elapsed.TotalSeconds;
        return m;
    }

    void RequireFiniteWeights(int epoch)
    {
        string? bad = null;
        foreach (var (name, p) in _task.Model.named_parameters())
        {
            using var finite = isfinite(p).all();
            if (!finite.item<bool>()) { bad = name; break; }
        }
        // Replicas differ: all ranks stop if any replica went bad (one stopping alone would leave the others waiting).
        if (!_collectives.AnyRank(bad is not null)) return;
        throw new TrainingDivergedException(bad is not null
            ? $"training diverged in epoch {epoch}: parameter '{bad}' has non-finite values{(Coordinated ? $" on rank {_collectives.Rank}" : "")}"
            : $"training diverged in epoch {epoch}: another rank's weights have non-finite values");
    }

    void SaveCheckpoint(int completedEpochs, long stepInEpoch, double elapsed, double partialSeconds, string reason)
    {
        if (_options.OutputDirectory is null || !_options.WriteCheckpoints) return;
        // Every rank sends its state to rank 0 (a collective call), which writes the one checkpoint.
        var states = _options.Distributed != DistributedMode.None
            ? _collectives.GatherBytes(Checkpoint.CaptureRankState(_task.Model, _optimizer, _task), 0)
            : null;
        // A replica run's checkpoint holds the model it evaluates, the replicas' mean (a collective call), so that
        // `evaluate`, `hessian`, `flatness` and every reader of the weights measure what the run reported; each rank's own
        // replica, rank 0's too, is in the rank states.
        var replicaMean = _options.Distributed == DistributedMode.Replicas;
        using var reference = replicaMean ? _replicas!.UseReference() : null;
        var path = OutPath(CheckpointFileName);
        if (path is null)
        {
            _sinceCheckpoint.Restart();
            return;
        }
        var meta = new CheckpointMeta
        {
            CompletedEpochs = completedEpochs,
            StepInEpoch = stepInEpoch,
            GradEvals = _gradEvals,
            OuterSteps = _outerSteps,
            ElapsedSeconds = elapsed,
            PartialLossSum = stepInEpoch > 0 ? _lossSum : 0,
            PartialErrors = stepInEpoch > 0 ? _errors : 0,
            PartialCount = stepInEpoch > 0 ? _count : 0,
            PartialSeconds = partialSeconds,
            Model = ModelName,
            Optimizer = OptimizerName,
            Parameters = Checkpoint.CountParameters(_task.Model),
            Reason = reason,
            SavedAtUtc = DateTime.UtcNow.ToString("O"),
            WideValleyVersion = typeof(Trainer).Assembly.GetName().Version?.ToString() ?? "",
            Run = _description ??= Describe(),
            RunConfig = _options.RunConfig,
            Distributed = DistributedTraining.CheckpointName(_options.Distributed),
            WorldSize = _options.Distributed != DistributedMode.None ? _collectives.Size : null,
            WeightsAreReplicaMean = replicaMean ? true : null,
        };
        Checkpoint.Save(path, meta, _task.Model, _optimizer, _task, keepPreviousGeneration: _keepPreviousCheckpoint,
            otherRanks: replicaMean ? states : states?.Skip(1).ToList());
        _keepPreviousCheckpoint = true;
        _sinceCheckpoint.Restart();
    }

    string ModelName => _options.ModelName.Length > 0 ? _options.ModelName : _task.Model.GetType().Name;

    string OptimizerName => _options.OptimizerName.Length > 0 ? _options.OptimizerName
        : OptimizerFactory.TryGetCreated(_optimizer, out var name, out _) ? name : _optimizer.GetType().Name;

    /// <summary>What this trainer can tell about the run, for checkpoints of models no configuration can rebuild.</summary>
    RunDescription Describe()
    {
        var modelType = _task.Model.GetType();
        JsonObject? options = null;
        if (OptimizerFactory.TryGetCreated(_optimizer, out var name, out var created) && created is not null)
            options = OptimizerFactory.DescribeOptions(created).ToJson(created);
        return new RunDescription
        {
            ModelName = ModelName,
            ModelType = $"{modelType.FullName}, {modelType.Assembly.GetName().Name}",
            Parameters = _task.Model.named_parameters().Select(p => new ParameterShape(p.name, p.parameter.shape)).ToList(),
            Optimizer = options is null ? OptimizerName : name,
            OptimizerOptions = options,
            Task = _task.GetType().Name,
            TrainingSize = _task.TrainingSize,
            Data = _options.DataDescription,
        };
    }

    static readonly JsonSerializerOptions DescriptionJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    TrainingResult Finish(List<EpochMetrics> history, TrainingStatus status, string? message, double elapsed)
    {
        WriteSummary(history, status, message, elapsed, finished: status == TrainingStatus.Completed);
        return new TrainingResult(status, message, history, _gradEvals, EffectiveEpochs, elapsed) { WithinEpochEvaluations = _withinEpoch.ToList() };
    }

    /// <summary>
    /// Writes summary.json with status "failed" after an I/O error. On a full disk the atomic write may find no room
    /// for its temporary file: the summary is then overwritten in place, which needs no new space when it fits the
    /// blocks the old one holds. If even that fails, the error that stopped the run is the one reported.
    /// </summary>
    void TryWriteFailedSummary(List<EpochMetrics> history, string message, double elapsed)
    {
        try
        {
            WriteSummary(history, TrainingStatus.Interrupted, message, elapsed, finished: false, statusText: "failed");
        }
        catch (IOException)
        {
            try
            {
                WriteSummary(history, TrainingStatus.Interrupted, message, elapsed, finished: false, statusText: "failed", inPlace: true);
            }
            catch (IOException) { }
        }
    }

    void WriteSummary(List<EpochMetrics> history, TrainingStatus status, string? message, double elapsed, bool finished,
        string? statusText = null, bool inPlace = false)
    {
        var path = OutPath(SummaryFileName);
        if (path is null) return;
        var last = history.Count > 0 ? history[^1] : null;
        var best = history.Where(h => h.ValError is not null).OrderBy(h => h.ValError).FirstOrDefault();
        var summary = new JsonObject
        {
            ["status"] = statusText ?? (finished ? "finished" : status == TrainingStatus.Completed ? "running" : status.ToString().ToLowerInvariant()),
            ["message"] = message,
            ["model"] = ModelName,
            ["optimizer"] = OptimizerName,
            ["parameters"] = Checkpoint.CountParameters(_task.Model),
            ["training_size"] = _task.TrainingSize,
            ["epochs_planned"] = _options.Epochs,
            ["epochs_completed"] = last?.Epoch ?? 0,
            ["effective_epochs"] = EffectiveEpochs,
            ["grad_evals"] = _gradEvals,
            ["total_seconds"] = elapsed,
            ["seconds_per_epoch"] = history.Count > 0 ? history.Average(h => h.Seconds) : null,
            ["final"] = last is null ? null : JsonNode.Parse(last.ToJsonLine()),
            ["best_val"] = best is null ? null : new JsonObject
            {
                ["epoch"] = best.Epoch,
                ["val_error"] = best.ValError,
                ["val_loss"] = best.ValLoss,
                ["test_error"] = best.TestError,
            },
            ["threads"] = get_num_threads(),
            ["config"] = _options.RunConfig?.ToJson(),
            ["run"] = _options.RunConfig is null ? JsonSerializer.SerializeToNode(_description ??= Describe(), DescriptionJson) : null,
        };
        var text = summary.ToJsonString(new JsonSerializerOptions
        {
            WriteIndented = true,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        }) + "\n";
        if (!inPlace)
        {
            AtomicFile.WriteAllText(path, text);
            return;
        }
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read);
        stream.Write(bytes);
        stream.SetLength(bytes.Length);
        stream.Flush(flushToDisk: true);
    }
}
