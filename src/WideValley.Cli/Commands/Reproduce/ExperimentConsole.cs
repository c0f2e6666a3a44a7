using System.Globalization;
using System.Runtime.InteropServices;
using Spectre.Console;
using WideValley.Experiments;
using WideValley.Training;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// Shows what an experiment runner reports (<see cref="ExperimentEvent"/>): one plain line per run start, set-up
/// message, epoch, measurement and end everywhere (a redirected log keeps them), plus the house progress bars
/// (<see cref="CliContext.ProgressBars"/>) for training steps and measurement phases on terminals. Turns the first
/// Ctrl-C / SIGTERM into a cancellation the runner honours (finish the step and save a checkpoint, or stop between
/// columns of an exact Hessian); a second Ctrl-C aborts at once.
/// </summary>
internal sealed class ExperimentConsole : IProgress<ExperimentEvent>
{
    readonly CliContext ctx;
    readonly Lock gate = new();
    bool _warnedAboutFigures;
    ProgressContext? bars;
    ProgressTask? bar;
    string? barKey;
    long barLast;
    /// <summary>What the runner does now, for the message a Ctrl-C prints: "training" or "measuring".</summary>
    volatile string phase = "training";

    ExperimentConsole(CliContext ctx) => this.ctx = ctx;

    /// <summary>
    /// Runs <paramref name="body"/> with this console as its progress sink and a token that Ctrl-C / SIGTERM cancel;
    /// on a terminal inside one live progress display.
    /// </summary>
    public static T Run<T>(CliContext ctx, Func<IProgress<ExperimentEvent>, CancellationToken, T> body)
    {
        var console = new ExperimentConsole(ctx);
        using var signals = new StopSignals(ctx, () => console.phase);
        if (!ctx.Interactive) return body(console, signals.Token);
        T result = default!;
        ctx.ProgressBars().Start(progress =>
        {
            console.bars = progress;
            try
            {
                result = body(console, signals.Token);
            }
            finally
            {
                lock (console.gate)
                {
                    console.bar?.StopTask();
                    console.bars = null;
                }
            }
        });
        return result;
    }

    /// <summary>A line of the experiment's log: on a terminal above the live display, else straight to the output.</summary>
    void Line(string text)
    {
        if (bars is not null) ctx.Console.WriteLine(text);
        else
        {
            ctx.Out.WriteLine(text);
            ctx.Out.Flush();
        }
    }

    static string Prefix(RunPosition? position) => position is RunPosition p ? $"[{p.Number}/{p.Count}] " : "";

    /// <summary>Handles one report at once, on the calling thread (exact-Hessian workers report from theirs: hence the lock).</summary>
    public void Report(ExperimentEvent value)
    {
        lock (gate) Handle(value);
    }

    void Handle(ExperimentEvent e)
    {
        var c = CultureInfo.InvariantCulture;
        switch (e)
        {
            case ComparisonPlanned p:
                Line(string.Format(c, "{0}: {1} runs planned, {2} finished already, {3} to {4}",
                    p.Name, p.Planned, p.Finished, p.ToTrain, p.ReportOnly ? "report as pending (--report-only)" : "train"));
                break;
            case TrainingFinishedElsewhere f:
                Line($"{Prefix(f.Position)}{f.Label}: finished meanwhile by another process");
                break;
            case TrainingStarted s:
                phase = "training";
                Line($"{Prefix(s.Position)}{s.Label}: {(s.Resuming ? "resuming" : "training")} in {s.Folder}");
                break;
            case TrainingLog l:
                Line("  " + l.Message);
                break;
            case TrainingStepCompleted s:
                Show($"{s.Label} epoch {s.Progress.Epoch}", s.Progress.Step, s.Progress.StepsPerEpoch,
                    () => string.Format(c, "{0} epoch {1}/{2}  loss {3:0.0000}  eff {4:0.00}", s.Label, s.Progress.Epoch, s.Progress.Epochs,
                        s.Progress.MeanTrainLoss, s.Progress.EffectiveEpochs),
                    s.Progress.Step % 10 == 0 || s.Progress.Step == s.Progress.StepsPerEpoch);
                break;
            case TrainingEpochCompleted m:
                Line(TrainingConsole.FormatEpoch(m.Label, m.Metrics, m.Epochs));
                break;
            case TrainingEnded end:
                EndBar();
                Line(end.Result.Status switch
                {
                    TrainingStatus.Interrupted => $"interrupted: {end.Result.Message}; run the same command again to continue",
                    TrainingStatus.Diverged => $"  {end.Label} diverged: {end.Result.Message} (reported as such; delete {end.Folder} to run it again)",
                    _ => string.Format(c, "  {0} finished: {1:0.0} s, {2:0.##} effective epochs", end.Label, end.Result.TotalSeconds, end.Result.EffectiveEpochs),
                });
                break;
            case MeasurementStarted m:
                phase = "measuring";
                Line($"{m.Label}: measuring ({m.Method}) into {m.Folder}");
                break;
            case MeasurementLog l:
                Line(l.Message);
                break;
            case MeasurementProgressed p:
                Show($"hessian {p.Progress.Method}", p.Progress.Done, p.Progress.Total, () => $"{p.Label}: hessian {p.Progress.Method}", false);
                break;
            case MeasurementColumnsProgressed p:
                Show("hessian columns", p.Progress.ColumnsDone, p.Progress.Columns, () => $"{p.Label}: hessian exact columns", false);
                break;
            case MeasurementEnded m:
                EndBar();
                foreach (var line in m.Measurement.Result.Lines) Line(line);
                Line($"wrote {m.Measurement.OutDir}: {string.Join(", ", m.Measurement.Files)}");
                if (m.Measurement.PlotsSkipped is { } skipped) Warn(skipped);
                break;
            case ExperimentWarning w:
                EndBar();
                Warn(w.Message);
                break;
            case MeasurementFailed f:
                EndBar();
                ctx.Error.WriteLine($"widevalley: {f.Message}");
                break;
            case MeasurementInterrupted i:
                EndBar();
                ctx.Error.WriteLine($"widevalley: {i.Message}");
                break;
        }
    }

    /// <summary>
    /// Prints a warning on stderr; only the first about missing figures (every figure of a run misses the same font, and
    /// one line says what to install).
    /// </summary>
    void Warn(string message)
    {
        if (_warnedAboutFigures) return;
        _warnedAboutFigures = true;
        ctx.Error.WriteLine($"widevalley: warning: {message}");
    }

    /// <summary>
    /// Moves the live bar of <paramref name="key"/> (a training epoch, a measurement phase) to <paramref name="done"/>
    /// of <paramref name="total"/>; a new key, or a count that went back (Lanczos starting the other end), gets a bar
    /// of its own. Nothing without a terminal.
    /// </summary>
    void Show(string key, long done, long total, Func<string> describe, bool redescribe)
    {
        if (bars is null) return;
        if (bar is null || key != barKey || done < barLast)
        {
            bar?.StopTask();
            bar = bars.AddTask(Markup.Escape(describe()), maxValue: Math.Max(1, total));
            barKey = key;
        }
        else if (redescribe) bar.Description = Markup.Escape(describe());
        bar.MaxValue = Math.Max(1, total);
        bar.Value = done;
        barLast = done;
    }

    void EndBar()
    {
        bar?.StopTask();
        bar = null;
        barKey = null;
        barLast = 0;
    }

    /// <summary>
    /// First Ctrl-C or SIGTERM: cancel, so the runner stops after the current training step (saving a checkpoint) or
    /// between columns of an exact Hessian (keeping finished blocks). A second Ctrl-C aborts at once.
    /// </summary>
    sealed class StopSignals : IDisposable
    {
        readonly CancellationTokenSource source = new();
        readonly ConsoleCancelEventHandler handler;
        readonly PosixSignalRegistration? term;
        int presses;

        public StopSignals(CliContext ctx, Func<string> phase)
        {
            handler = (_, e) =>
            {
                if (Interlocked.Increment(ref presses) > 1) { e.Cancel = false; return; }
                e.Cancel = true;
                source.Cancel();
                ctx.Error.WriteLine(phase() == "training"
                    ? "widevalley: stopping after the current step and saving a checkpoint (Ctrl-C again aborts without saving)"
                    : "exact: stopping after the current column (Ctrl-C again aborts at once)");
            };
            Console.CancelKeyPress += handler;
            if (!OperatingSystem.IsWindows())
                term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
                {
                    c.Cancel = true;
                    source.Cancel();
                    ctx.Error.WriteLine(phase() == "training"
                        ? "widevalley: SIGTERM received; stopping after the current step and saving a checkpoint"
                        : "exact: SIGTERM received; stopping after the current column");
                });
        }

        public CancellationToken Token => source.Token;

        public void Dispose()
        {
            Console.CancelKeyPress -= handler;
            term?.Dispose();
            source.Dispose();
        }
    }
}
