using System.Diagnostics;
using WideValley.Cli;
using WideValley.Landscape;
using WideValley.Tests.Cli;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.Models.UserModelTorchScriptTests;

namespace WideValley.Tests.Landscape;

/// <summary>
/// Issue 16: an interpolation slice stops between points when cancelled, like the 1d and 2d slices (before the fix
/// <see cref="Slices.Interpolation"/> swept with <see cref="CancellationToken.None"/>, and `landscape --slice interp`
/// ignored Ctrl-C and SIGTERM).
/// </summary>
public sealed class InterpolationCancellationTests
{
    private static readonly string Factory =
        $"{Path.Combine(AppContext.BaseDirectory, "test-factory", "WideValley.TestFactory.dll")}:WideValley.TestFactory.TinyConvNetFactory";

    private sealed class Reporter(Action<CurvatureProgress> report) : IProgress<CurvatureProgress>
    {
        public void Report(CurvatureProgress value) => report(value);
    }

    [Fact]
    public void ACancelledInterpolationStopsBetweenPointsAndRestoresTheWeights()
    {
        using var model = TinyConvNet.WithFixtureWeights();
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        var before = Slices.FlatParameters(model);
        var end = before.add(1e-2);
        using var cancelled = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var seen = 0;
        var progress = new Reporter(p =>
        {
            seen = (int)p.Done;
            if (p.Done == 2) cancelled.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            Slices.Interpolation(model, [(inputs, labels)], before, end, points: 7, progress: progress, cancellation: cancelled.Token));
        Assert.Equal(2, seen);
        Assert.True(before.eq(Slices.FlatParameters(model)).all().item<bool>());

        // The same sweep, not cancelled, runs to its end.
        var line = Slices.Interpolation(model, [(inputs, labels)], before, end, points: 7, cancellation: TestContext.Current.CancellationToken);
        Assert.Equal(7, line.Count);
    }

    [Fact]
    public void SigtermStopsALandscapeInterpolationBetweenPointsWritingNothing()
    {
        using var dir = new TempDir("widevalley-interp-stop");
        using (var a = TinyConvNet.WithFixtureWeights())
        {
            a.save(dir.File("a.dat"));
            using (no_grad())
                foreach (var p in a.parameters()) p.add_(0.01);
            a.save(dir.File("b.dat"));
        }
        var output = dir.File("out");
        // 100,000 passes over the 64 fixture samples: far longer than the moment between the first point and the signal.
        var info = new ProcessStartInfo(CliProcessTests.Executable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "landscape", "--slice", "interp", "--points", "100000", "--model-file", dir.File("a.dat"), "--other", dir.File("b.dat"),
                     "--model-factory", Factory, "--inputs", Fixture("inputs.npy"), "--labels", Fixture("labels.npy"), "--threads", "1", "--out", output,
                 })
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var said = new System.Text.StringBuilder();
        var errors = new System.Text.StringBuilder();
        var measuring = new ManualResetEventSlim();
        var readers = new[]
        {
            new Thread(() =>
            {
                while (process.StandardOutput.ReadLine() is { } line)
                {
                    lock (said) said.AppendLine(line);
                    if (line.Contains("the first evaluation took")) measuring.Set();
                }
            }),
            new Thread(() => { while (process.StandardError.ReadLine() is { } line) lock (errors) errors.AppendLine(line); }),
        };
        foreach (var r in readers) { r.IsBackground = true; r.Start(); }
        try
        {
            Assert.True(measuring.Wait(TimeSpan.FromSeconds(120), TestContext.Current.CancellationToken), $"the slice did not start: {said} {errors}");
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) kill.WaitForExit();
            Assert.True(process.WaitForExit(60_000), "the process did not stop after SIGTERM");
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
        foreach (var r in readers) r.Join();
        Assert.True(process.ExitCode == ExitCodes.Interrupted, $"exit code {process.ExitCode}; output: {said}; errors: {errors}");
        Assert.Contains("landscape interp: stopping after the current point; nothing will be written", said.ToString());
        Assert.Contains("widevalley: interrupted; nothing was written.", errors.ToString());
        Assert.False(Directory.Exists(output));
    }
}
