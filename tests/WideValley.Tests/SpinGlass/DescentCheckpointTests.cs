using WideValley.SpinGlass;
using WideValley.Tests.Support;
using static TorchSharp.torch;
using static WideValley.Tests.SpinGlass.SpinGlassFixtures;

namespace WideValley.Tests.SpinGlass;

/// <summary>
/// Resumable minimisation: a run stopped in either phase and continued from its checkpoint takes exactly the steps an
/// uninterrupted run takes; damaged or foreign checkpoints are refused and left as they are.
/// </summary>
public sealed class DescentCheckpointTests
{
    const int Size = 16, Starts = 24, StochasticSteps = 40;

    static ProjectedSgdOptions SgdOptions(DescentCheckpoint? checkpoint = null, CancellationToken? cancellation = null, IProgress<SpinGlassProgress>? progress = null) => new()
    {
        Parts = 2,
        SplitSeed = 5,
        StochasticSteps = StochasticSteps,
        Finish = new ProjectedGradientDescentOptions
        {
            StepSize = 0.2, StepDecay = 0.0015, MaxSteps = 300, GradientTolerance = 0.01,
            Checkpoint = checkpoint, Cancellation = cancellation ?? TestContext.Current.CancellationToken, Progress = progress,
        },
    };

    static SpinGlassMinimization RunSgd(SphericalPSpinGlass glass, ProjectedSgdOptions options) => ProjectedSgd.Run(glass, Starts, seed: 3, options);

    /// <summary>Cancels once the named phase reports the given step.</summary>
    sealed class CancelAt(string phase, int step, CancellationTokenSource source) : IProgress<SpinGlassProgress>
    {
        public void Report(SpinGlassProgress value)
        {
            if (value.Phase == phase && value.Step == step) source.Cancel();
        }
    }

    static void AssertSameResult(SpinGlassMinimization expected, SpinGlassMinimization actual)
    {
        Assert.Equal(expected.EnergyPerSpin, actual.EnergyPerSpin);
        Assert.Equal(expected.GradientNorm, actual.GradientNorm);
        Assert.Equal(expected.Steps, actual.Steps);
        Assert.Equal(expected.Converged, actual.Converged);
        Assert.True(expected.Points.allclose(actual.Points, rtol: 0, atol: 0), "the end points differ");
    }

    [Theory]
    [InlineData("stochastic gradient", 13)]
    [InlineData("quench", 4)]
    public void ProjectedSgdStoppedAndResumedEqualsAnUninterruptedRun(string phase, int step)
    {
        using var glass = Glass(Size, 3, seed: 7, dtype: ScalarType.Float32);
        using var expected = RunSgd(glass, SgdOptions());
        Assert.True(expected.Steps.Max() > StochasticSteps + step, "the quench must last long enough to be interrupted");

        using var dir = new TempDir();
        var checkpoint = new DescentCheckpoint(dir.File("progress.bin"), "test") { EverySteps = 5 };
        using var cancel = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => RunSgd(glass, SgdOptions(checkpoint, cancel.Token, new CancelAt(phase, step, cancel))));
        Assert.True(File.Exists(checkpoint.Path));
        Assert.Empty(dir.Leftovers());

        var resumedFrom = -1;
        using var resumed = RunSgd(glass, SgdOptions(checkpoint, progress: new InlineProgress(p => { if (resumedFrom < 0) resumedFrom = p.Step; })));
        AssertSameResult(expected, resumed);
        // It continued where it stopped: the first step it reported is the one after the interruption, not step 0.
        Assert.Equal(step + 1, resumedFrom);
    }

    [Fact]
    public void AFinishedCheckpointGivesTheResultAgainWithoutAStep()
    {
        using var glass = Glass(Size, 3, seed: 7, dtype: ScalarType.Float32);
        using var dir = new TempDir();
        var checkpoint = new DescentCheckpoint(dir.File("progress.bin"), "test");
        using var first = RunSgd(glass, SgdOptions(checkpoint));
        var reports = 0;
        using var again = RunSgd(glass, SgdOptions(checkpoint, progress: new InlineProgress(_ => reports++)));
        AssertSameResult(first, again);
        Assert.Equal(0, reports);
    }

    [Fact]
    public void ProjectedGradientDescentResumesToo()
    {
        using var glass = Glass(Size, 3, seed: 8, dtype: ScalarType.Float32);
        var options = new ProjectedGradientDescentOptions { MaxSteps = 400, Cancellation = TestContext.Current.CancellationToken };
        using var expected = ProjectedGradientDescent.Run(glass, Starts, seed: 4, options);
        using var dir = new TempDir();
        var checkpoint = new DescentCheckpoint(dir.File("gd.bin"), "gd") { EverySteps = 3 };
        using var cancel = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => ProjectedGradientDescent.Run(glass, Starts, seed: 4,
            options with { Checkpoint = checkpoint, Cancellation = cancel.Token, Progress = new CancelAt("gradient descent", 7, cancel) }));
        using var resumed = ProjectedGradientDescent.Run(glass, Starts, seed: 4, options with { Checkpoint = checkpoint });
        AssertSameResult(expected, resumed);
    }

    [Fact]
    public void ADamagedCheckpointIsRefusedAndLeftAsItIs()
    {
        using var glass = Glass(Size, 3, seed: 7, dtype: ScalarType.Float32);
        using var dir = new TempDir();
        var checkpoint = new DescentCheckpoint(dir.File("progress.bin"), "test");
        using (RunSgd(glass, SgdOptions(checkpoint))) { }
        var bytes = File.ReadAllBytes(checkpoint.Path);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(checkpoint.Path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => RunSgd(glass, SgdOptions(checkpoint)));
        Assert.Contains("damaged", e.Message);
        Assert.Contains(checkpoint.Path, e.Message);
        Assert.Equal(bytes, File.ReadAllBytes(checkpoint.Path));

        File.WriteAllBytes(checkpoint.Path, bytes.AsSpan(0, 20).ToArray());
        Assert.Throws<InvalidDataException>(() => RunSgd(glass, SgdOptions(checkpoint)));
    }

    [Fact]
    public void ACheckpointOfAnotherRunIsRefused()
    {
        using var glass = Glass(Size, 3, seed: 7, dtype: ScalarType.Float32);
        using var dir = new TempDir();
        var path = dir.File("progress.bin");
        using (RunSgd(glass, SgdOptions(new DescentCheckpoint(path, "seed=0")))) { }
        var before = File.ReadAllBytes(path);
        var e = Assert.Throws<InvalidDataException>(() => RunSgd(glass, SgdOptions(new DescentCheckpoint(path, "seed=1"))));
        Assert.Contains("another run", e.Message);
        Assert.Contains("seed=0", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        // Other starts (K) are another run too, whatever the caller's key says.
        Assert.Throws<InvalidDataException>(() => ProjectedSgd.Run(glass, Starts + 1, seed: 3, SgdOptions(new DescentCheckpoint(path, "seed=0"))));
    }

    [Fact]
    public void BadCheckpointSettingsAreNamed()
    {
        Assert.Contains("EverySteps", Assert.Throws<ArgumentException>(() => new DescentCheckpoint("x.bin", "k") { EverySteps = 0 }.Validate()).Message);
        Assert.Contains("Path", Assert.Throws<ArgumentException>(() => new DescentCheckpoint(" ", "k").Validate()).Message);
        Assert.Throws<ArgumentException>(() => new ProjectedGradientDescentOptions { Checkpoint = new DescentCheckpoint("x.bin", "k") { EverySteps = -1 } }.Validate());
    }

    sealed class InlineProgress(Action<SpinGlassProgress> action) : IProgress<SpinGlassProgress>
    {
        public void Report(SpinGlassProgress value) => action(value);
    }
}
