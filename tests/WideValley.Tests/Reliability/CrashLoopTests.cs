using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Models;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Reliability;

/// <summary>
/// The real widevalley process killed with SIGKILL at seeded random moments, again and again, and resumed each time:
/// the run that ends is the uninterrupted run, bit for bit (issue 16, "the suite that keeps it so").
/// </summary>
public class CrashLoopTests
{
    /// <summary>The kill moments' seed; WIDEVALLEY_CRASH_LOOP_SEED replaces it to try other moments or replay a failure.</summary>
    static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("WIDEVALLEY_CRASH_LOOP_SEED"), out var seed) ? seed : 16_2026;
    const int Kills = 24;
    /// <summary>Exit code of a process ended by SIGKILL as .NET reports it (128 + 9).</summary>
    const int KilledBySigkill = 137;

    /// <summary>
    /// Entropy-SGD with L = 3 (a kill can land between the Langevin steps of one outer step), checkpoints every 5 steps
    /// (a kill lands during a checkpoint write now and then), one thread (bit-identical resume needs the same
    /// --threads), 3,000 images in minibatches of 32: 94 steps and under a second per epoch on a 2-core machine; the whole test takes about 25 s.
    /// </summary>
    static readonly string[] RunSettings =
    [
        "--model", "small-mnistfc", "--optimizer", "entropy-sgd", "-L", "3", "--max-train-samples", "3000",
        "--batch-size", "32", "--epochs", "4", "--checkpoint-every", "5", "--threads", "1", "--no-tensorboard",
    ];

    /// <summary>One launch of the command, with its output read on dedicated threads as it comes.</summary>
    sealed class Launch : IDisposable
    {
        readonly Process _process;
        readonly Thread[] _readers;
        readonly StringBuilder _output = new();
        readonly Stopwatch _clock = Stopwatch.StartNew();

        public Launch(IEnumerable<string> args)
        {
            var info = new ProcessStartInfo(CliProcessTests.Executable())
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in args) info.ArgumentList.Add(a);
            _process = Process.Start(info)!;
            _readers =
            [
                new Thread(() => Read(_process.StandardOutput)),
                new Thread(() => Read(_process.StandardError)),
            ];
            foreach (var r in _readers) { r.IsBackground = true; r.Start(); }
        }

        void Read(StreamReader reader)
        {
            while (reader.ReadLine() is { } line)
            {
                lock (_output) _output.AppendLine(line);
                // Printed once data and network are set up, just before training (or restoring the checkpoint) begins.
                if (line.StartsWith("run folder", StringComparison.Ordinal))
                    StartupSeconds ??= _clock.Elapsed.TotalSeconds;
            }
        }

        /// <summary>Seconds from launch to the "run folder" line; null until it came.</summary>
        public double? StartupSeconds { get; private set; }

        public string Output { get { lock (_output) return _output.ToString(); } }

        /// <summary>
        /// Waits until the checkpoint at <paramref name="checkpoint"/> records at least <paramref name="step"/> outer
        /// steps; false when the process ended first. Checkpoints are replaced by renaming, so reading one is safe.
        /// </summary>
        public bool WaitForCheckpointStep(string checkpoint, long step, TimeSpan timeout)
        {
            var deadline = _clock.Elapsed + timeout;
            while (_clock.Elapsed < deadline && !_process.HasExited)
            {
                if (File.Exists(checkpoint))
                {
                    try
                    {
                        if (Checkpoint.ReadMeta(checkpoint).OuterSteps >= step) return true;
                    }
                    catch (IOException) { } // replaced between the existence check and the read
                }
                Thread.Sleep(5);
            }
            return false;
        }

        /// <summary>Seconds since launch.</summary>
        public double Seconds => _clock.Elapsed.TotalSeconds;

        /// <summary>True when the process ended by itself within <paramref name="seconds"/> (measured from launch).</summary>
        public bool ExitsWithin(double seconds)
        {
            var left = seconds - _clock.Elapsed.TotalSeconds;
            return _process.WaitForExit(TimeSpan.FromSeconds(Math.Max(0, left)));
        }

        /// <summary>SIGKILL (on Linux, <see cref="Process.Kill(bool)"/> sends it to every process of the tree).</summary>
        public double Kill()
        {
            var at = _clock.Elapsed.TotalSeconds;
            _process.Kill(entireProcessTree: true);
            return at;
        }

        public int Finish(TimeSpan timeout)
        {
            Assert.True(_process.WaitForExit(timeout), "the process did not end in time: " + Output);
            foreach (var r in _readers) r.Join();
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
    }

    static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [Fact]
    public void KilledTwentyFourTimesAtRandomMomentsTheRunResumesToTheUninterruptedRunBitForBit()
    {
        var wall = Stopwatch.StartNew();
        var log = TestContext.Current.TestOutputHelper;
        using var dir = new TempDir();
        var reference = dir.File("A");
        var crashed = dir.File("B");

        // The uninterrupted run: its start-up time and training time scale the kill delays to this machine.
        double startup, training;
        using (var run = new Launch(["train", .. RunSettings, "--out", reference]))
        {
            var exit = run.Finish(Patience);
            Assert.True(exit == ExitCodes.Ok, run.Output);
            startup = run.StartupSeconds ?? throw new InvalidOperationException("no 'run folder' line: " + run.Output);
            training = wall.Elapsed.TotalSeconds - startup;
        }
        var totalSteps = Checkpoint.ReadMeta(Path.Combine(reference, Trainer.CheckpointFileName)).OuterSteps;

        var random = new Random(Seed);
        var checkpoint = Path.Combine(crashed, Trainer.CheckpointFileName);
        var history = new StringBuilder();
        int kills = 0, freshStarts = 0, killsLeavingTemporaries = 0, killsBeforeTraining = 0;
        while (kills < Kills)
        {
            // No checkpoint yet (killed before the first one was written): the folder may hold a lock, a summary and an
            // empty metrics log of the killed start, and the command must accept a fresh start into it. With a
            // checkpoint, --resume alone continues the stored run.
            var resume = File.Exists(checkpoint);
            if (!resume) freshStarts++;
            var stepsBefore = resume ? Checkpoint.ReadMeta(Checkpoint.SelectIntact(checkpoint).Path).OuterSteps : 0;
            // About a third of the kills land in start-up (runtime, data, checkpoint restore): a delay from launch within
            // the reference run's start-up time. The others land in training: once the checkpoint has reached a seeded
            // step (a fraction of the steps still to do, so that the kills spread over the whole run and the run is not
            // over before the last one, however fast this machine is today), plus up to 100 ms, which is several steps
            // and checkpoint writes.
            var duringStartup = random.NextDouble() < 0.35;
            var remainingSteps = totalSteps - stepsBefore;
            var targetStep = Math.Min(totalSteps - 15, stepsBefore + 1 + (long)(random.NextDouble() * 2.0 * remainingSteps / (Kills - kills + 1)));
            var delay = duringStartup ? random.NextDouble() * startup : random.NextDouble() * 0.1;
            string[] args = resume ? ["train", "--out", crashed, "--resume"] : ["train", .. RunSettings, "--out", crashed];
            using var run = new Launch(args);
            var attempt = FormattableString.Invariant(
                $"attempt {kills + 1}: {(resume ? "resume" : "fresh")} from step {stepsBefore}/{totalSteps}, kill {delay:F3} s after {(duringStartup ? "launch" : $"the checkpoint reached step {targetStep}")}");
            var killMomentCame = (duringStartup || run.WaitForCheckpointStep(checkpoint, targetStep, Patience))
                                 && !run.ExitsWithin((duringStartup ? 0 : run.Seconds) + delay);
            if (!killMomentCame)
            {
                var exit = run.Finish(Patience);
                Assert.Fail($"seed {Seed}, {attempt}: the process ended by itself (exit {exit}) before the kill; " +
                            (exit == ExitCodes.Ok ? $"the run finished after {kills} kills, too soon for {Kills}" : "a resume failed") +
                            $"\n{history}\n{run.Output}");
            }
            var killedAt = run.Kill();
            var killedExit = run.Finish(Patience);
            Assert.True(killedExit == KilledBySigkill, $"seed {Seed}, {attempt}: exit {killedExit} after SIGKILL\n{run.Output}");
            kills++;
            if (killedAt < (run.StartupSeconds ?? double.MaxValue)) killsBeforeTraining++;
            var temporaries = Directory.Exists(crashed) ? Directory.GetFiles(crashed, "*.part") : [];
            if (temporaries.Length > 0) killsLeavingTemporaries++;
            history.AppendLine(FormattableString.Invariant(
                $"{attempt}: killed at {killedAt:F3} s (run start at {run.StartupSeconds?.ToString("F3", CultureInfo.InvariantCulture) ?? "-"} s), {temporaries.Length} .part file(s) left"));
        }

        // The last start runs to the end.
        using (var run = new Launch(File.Exists(checkpoint) ? ["train", "--out", crashed, "--resume"] : ["train", .. RunSettings, "--out", crashed]))
        {
            var exit = run.Finish(Patience);
            Assert.True(exit == ExitCodes.Ok, $"seed {Seed}: the final resume failed with exit {exit}\n{history}\n{run.Output}");
        }
        log?.WriteLine(history.ToString());
        log?.WriteLine(FormattableString.Invariant(
            $"{kills} kills ({killsBeforeTraining} before training began, {killsLeavingTemporaries} during a save that left .part files, {freshStarts} fresh starts); uninterrupted run: {startup:F2} s start-up + {training:F2} s; whole test {wall.Elapsed.TotalSeconds:F1} s"));

        Assert.Equal(Weights(reference), Weights(crashed));
        Assert.Equal(Epochs(reference), Epochs(crashed));
        Assert.Empty(Directory.GetFiles(crashed, "*.part"));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(crashed, Trainer.SummaryFileName)))!;
        Assert.Equal("finished", (string?)summary["status"]);
        Assert.Equal(4, (int)summary["epochs_completed"]!);
        var final = Checkpoint.ReadMeta(checkpoint);
        Assert.Equal((4, totalSteps), (final.CompletedEpochs, final.OuterSteps));
    }

    /// <summary>The final checkpoint's weights as raw float32 bits, in state-dictionary order.</summary>
    static int[] Weights(string folder)
    {
        using var scope = NewDisposeScope();
        using var model = ModelZoo.Create(ModelZoo.SmallMnistFcName, new ModelOptions());
        Checkpoint.LoadWeights(Path.Combine(folder, Trainer.CheckpointFileName), model);
        return model.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .SelectMany(kv => kv.Value.detach().contiguous().data<float>().ToArray())
            .Select(BitConverter.SingleToInt32Bits)
            .ToArray();
    }

    /// <summary>metrics.jsonl without its timings: what the run computed, epoch by epoch.</summary>
    static (int, double, double, double?, double?, long, long)[] Epochs(string folder) =>
        MetricsLog.Read(Path.Combine(folder, "metrics.jsonl"))
            .Select(m => (m.Epoch, m.TrainLoss, m.TrainError, m.TestLoss, m.TestError, m.GradEvals, m.OuterSteps))
            .ToArray();
}
