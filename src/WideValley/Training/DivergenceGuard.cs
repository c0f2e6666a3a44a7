using System.Globalization;

namespace WideValley.Training;

/// <summary>
/// When a run counts as diverged although its loss is still finite (<see cref="DivergenceGuard"/>). Our design, not
/// the paper's; docs/run-format.md explains the defaults.
/// </summary>
public sealed record DivergenceGuardOptions
{
    /// <summary>Default of <see cref="LossFactor"/>.</summary>
    public const double DefaultLossFactor = 1000;
    /// <summary>Default of <see cref="GrowthChecks"/>.</summary>
    public const int DefaultGrowthChecks = 30;
    /// <summary>Checks per epoch: the training loss is averaged over a tenth of an epoch's steps.</summary>
    public const int ChecksPerEpoch = 10;

    /// <summary>Diverged when a check's mean training loss exceeds this multiple of the smallest so far (0 = off).</summary>
    public double LossFactor { get; init; } = DefaultLossFactor;
    /// <summary>Diverged when the mean training loss grew at this many consecutive checks (0 = off).</summary>
    public int GrowthChecks { get; init; } = DefaultGrowthChecks;

    /// <summary>No finite-loss check (non-finite losses still stop the run).</summary>
    public static DivergenceGuardOptions Off { get; } = new() { LossFactor = 0, GrowthChecks = 0 };
}

/// <summary>
/// Watches the training loss of a run and says when it diverged while finite: the loss of a check (the mean minibatch
/// loss over the steps since the previous check; the very first step is a check of its own, so that the untrained
/// network's loss is a reference) is non-finite, above <see cref="DivergenceGuardOptions.LossFactor"/> times the
/// smallest (positive) check so far, or larger than the previous check at <see cref="DivergenceGuardOptions.GrowthChecks"/>
/// consecutive checks. Its state starts afresh with each session of a resumed run.
/// </summary>
public sealed class DivergenceGuard
{
    readonly DivergenceGuardOptions _options;
    readonly long _stepsPerCheck;
    double _lossSum, _count;
    long _steps;
    bool _first = true;
    double _minimum = double.PositiveInfinity, _previous = double.NaN;
    int _growing;
    long _observed, _windowStart, _growthStart;

    /// <summary>A guard with a check every <paramref name="stepsPerEpoch"/> / <see cref="DivergenceGuardOptions.ChecksPerEpoch"/> steps.</summary>
    public DivergenceGuard(DivergenceGuardOptions options, long stepsPerEpoch)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!(options.LossFactor == 0 || (double.IsFinite(options.LossFactor) && options.LossFactor > 1)))
            throw new ArgumentOutOfRangeException(nameof(options), options.LossFactor, "the divergence factor must be 0 (off) or a finite number above 1");
        if (options.GrowthChecks < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.GrowthChecks, "the divergence patience must be 0 (off) or positive");
        _options = options;
        _stepsPerCheck = Math.Max(1, stepsPerEpoch / DivergenceGuardOptions.ChecksPerEpoch);
    }

    /// <summary>
    /// After <see cref="Observe"/> returned a reason: how many of the latest steps the diverging stretch covers (the
    /// window that tripped the guard, or every window of a growing run). Their losses were computed at the weights
    /// left by the step before each, so weights saved after <c>steps taken - SuspectSteps</c> steps or later may
    /// already be diverged (the trainer sets such a checkpoint aside, see <see cref="Trainer"/>).
    /// </summary>
    public long SuspectSteps { get; private set; }

    /// <summary>
    /// Records one optimizer step's summed minibatch loss over <paramref name="count"/> samples; returns why the run
    /// diverged, or null.
    /// </summary>
    public string? Observe(double lossSum, double count)
    {
        if (count <= 0) return null;
        if (_steps == 0) _windowStart = _observed;
        _observed++;
        _lossSum += lossSum;
        _count += count;
        _steps++;
        if (!_first && _steps < _stepsPerCheck) return null;
        _first = false;
        var loss = _lossSum / _count;
        (_lossSum, _count, _steps) = (0, 0, 0);
        SuspectSteps = _observed - _windowStart;
        var c = CultureInfo.InvariantCulture;
        if (!double.IsFinite(loss))
            return string.Format(c, "the mean training loss is {0}", loss);
        if (_options.LossFactor > 0 && _minimum > 0 && loss > _options.LossFactor * _minimum)
            return string.Format(c, "the mean training loss {0:G4} is more than {1:G4} times its smallest value so far ({2:G4}; --divergence-factor)",
                loss, _options.LossFactor, _minimum);
        if (!(loss > _previous)) _growthStart = _observed;
        _growing = loss > _previous ? _growing + 1 : 0;
        if (_options.GrowthChecks > 0 && _growing >= _options.GrowthChecks)
        {
            SuspectSteps = _observed - _growthStart;
            return string.Format(c, "the mean training loss grew at {0} consecutive checks (every {1} steps), to {2:G4} (--divergence-patience)",
                _growing, _stepsPerCheck, loss);
        }
        _previous = loss;
        _minimum = Math.Min(_minimum, loss);
        return null;
    }
}
