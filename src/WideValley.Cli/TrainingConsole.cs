using System.Globalization;
using System.Runtime.InteropServices;
using Spectre.Console;
using WideValley.Training;

namespace WideValley.Cli;

/// <summary>
/// Runs a trainer with a live progress bar on terminals and one plain summary line per epoch everywhere (a redirected
/// log shows no progress bar, so the lines are what it keeps), and turns Ctrl-C / SIGTERM into "finish the step,
/// save a checkpoint, stop".
/// </summary>
public static class TrainingConsole
{
    /// <summary>Trains <paramref name="run"/>; with <paramref name="quiet"/> (a distributed run's ranks above 0) nothing is printed but signal notices.</summary>
    public static TrainingResult Train(CliContext ctx, PreparedRun run, bool resume, string label, bool quiet = false)
    {
        var trainer = run.CreateTrainer();
        if (quiet)
        {
            using var quietSignals = new StopSignals(trainer, ctx);
            return trainer.Run(resume);
        }
        var epochs = run.TrainerOptions.Epochs;
        trainer.EpochCompleted = m => WriteLine(ctx, FormatEpoch(label, m, epochs));
        trainer.Notice = message => ctx.Error.WriteLine($"widevalley: {message}");
        using var signals = new StopSignals(trainer, ctx);
        if (!ctx.Interactive) return trainer.Run(resume);

        TrainingResult? result = null;
        ctx.ProgressBars()
            .Start(progress =>
            {
                ProgressTask? bar = null;
                var barEpoch = -1;
                trainer.StepCompleted = p =>
                {
                    if (p.Epoch != barEpoch)
                    {
                        if (bar is not null) bar.StopTask();
                        bar = progress.AddTask(Describe(label, p), maxValue: p.StepsPerEpoch);
                        barEpoch = p.Epoch;
                    }
                    bar!.Value = p.Step;
                    if (p.Step % 10 == 0 || p.Step == p.StepsPerEpoch) bar.Description = Describe(label, p);
                };
                result = trainer.Run(resume);
                bar?.StopTask();
            });
        return result!;
    }

    static string Describe(string label, StepProgress p) =>
        Markup.Escape($"{label} epoch {p.Epoch}/{p.Epochs}  loss {p.MeanTrainLoss:0.0000}  eff {p.EffectiveEpochs:0.00}");

    static void WriteLine(CliContext ctx, string line)
    {
        if (ctx.Interactive) ctx.Console.WriteLine(line);
        else
        {
            ctx.Out.WriteLine(line);
            ctx.Out.Flush();
        }
    }

    public static string FormatEpoch(string label, EpochMetrics m, int epochs)
    {
        var c = CultureInfo.InvariantCulture;
        var parts = new List<string>
        {
            $"{label} epoch {m.Epoch}/{epochs}".Trim(),
            string.Format(c, "eff {0:0.00}", m.EffectiveEpochs),
            string.Format(c, "lr {0:G4}", m.Lr),
            m.TrainPerplexity is double tp
                ? string.Format(c, "train loss {0:0.0000} ppl {1:0.000}", m.TrainLoss, tp)
                : string.Format(c, "train loss {0:0.0000} err {1:0.00}%", m.TrainLoss, m.TrainError),
        };
        if (m.ValLoss is double vl)
            parts.Add(m.ValPerplexity is double vp
                ? string.Format(c, "val loss {0:0.0000} ppl {1:0.000}", vl, vp)
                : string.Format(c, "val loss {0:0.0000} err {1:0.00}%", vl, m.ValError));
        if (m.TestLoss is double tl)
            parts.Add(m.TestPerplexity is double sp
                ? string.Format(c, "test loss {0:0.0000} ppl {1:0.000}", tl, sp)
                : string.Format(c, "test loss {0:0.0000} err {1:0.00}%", tl, m.TestError));
        if (m.TrainEvalLoss is double el)
            parts.Add(string.Format(c, "train(eval) loss {0:0.0000} err {1:0.00}%", el, m.TrainEvalError));
        if (m.Extra is not null)
            foreach (var (k, v) in m.Extra)
                if (v is double d) parts.Add(string.Format(c, "{0} {1:G4}", k, d));
        parts.Add(string.Format(c, "{0:0.0} s", m.Seconds));
        return string.Join("  ", parts);
    }

    /// <summary>First Ctrl-C or SIGTERM: stop after the current step and save. Second Ctrl-C: abort at once.</summary>
    sealed class StopSignals : IDisposable
    {
        readonly ConsoleCancelEventHandler _handler;
        readonly PosixSignalRegistration? _term;
        int _presses;

        public StopSignals(Trainer trainer, CliContext ctx)
        {
            _handler = (_, e) =>
            {
                if (Interlocked.Increment(ref _presses) > 1) { e.Cancel = false; return; }
                e.Cancel = true;
                trainer.RequestStop();
                ctx.Error.WriteLine("widevalley: stopping after the current step and saving a checkpoint (Ctrl-C again aborts without saving)");
            };
            Console.CancelKeyPress += _handler;
            if (!OperatingSystem.IsWindows())
                _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
                {
                    c.Cancel = true;
                    trainer.RequestStop();
                    ctx.Error.WriteLine("widevalley: SIGTERM received; stopping after the current step and saving a checkpoint");
                });
        }

        public void Dispose()
        {
            Console.CancelKeyPress -= _handler;
            _term?.Dispose();
        }
    }
}
